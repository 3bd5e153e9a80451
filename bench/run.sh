#!/usr/bin/env bash
# Side-by-side benchmark: chat-server vs Redis pub/sub vs NATS vs the zero-logic broadcaster
# (the ceiling), all on 127.0.0.1, each server started fresh for every run.
#
#   bench/run.sh                 # the default matrix, ~10 minutes on 2 cores
#   REPS=5 bench/run.sh          # 5 repetitions, medians and min-max
#   SUBS="10 100" QUICK=1 bench/run.sh
#
# Environment: REPS (1), SUBS ("10 100 1000 10000"), SERVERS ("ceiling chat redis nats"),
# PIN (1: server on core 0, load tool on core 1), IDLE ("1000 10000"), QUICK (shorter runs),
# CARGO_TARGET_DIR (target). Writes bench/results/DATE.md and the raw JSON lines next to it.
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=${REPS:-1}
SUBS=${SUBS:-"10 100 1000 10000"}
SERVERS=${SERVERS:-"ceiling chat chat-db redis nats"}
IDLE=${IDLE:-"1000 10000"}
PIN=${PIN:-1}
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/release
STAMP=$(date -u +%Y-%m-%d-%H%M)
OUT=bench/results
mkdir -p "$OUT"
RAW=$OUT/$STAMP.jsonl
REPORT=$OUT/$STAMP.md
: >"$RAW"

command -v cargo >/dev/null || source "$HOME/.cargo/env"
if ! command -v redis-server >/dev/null || ! command -v nats-server >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server nats-server
fi
CARGO_TARGET_DIR=$TARGET cargo build --release -q -p chat-bench -p chat-server
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

declare -A PORT=([ceiling]=17777 [chat]=16666 [chat-db]=16667 [redis]=16379 [nats]=14222)
declare -A PROTO=([ceiling]=line [chat]=chat [chat-db]=chat [redis]=redis [nats]=nats)
CHAT_FLAGS=(--rate-burst 1000000000 --rate-per-sec 1000000000 --max-conns-per-ip 30000
    --max-conns 30000 --outbound-queue 4096)
DATA_DIR=
SRV_CPU=() BENCH_CPU=()
if [[ $PIN == 1 && $(nproc) -ge 2 ]]; then SRV_CPU=(taskset -c 0) BENCH_CPU=(taskset -c 1); fi
SERVER_PID=

start() { # start SERVER: fresh process on its port, PID in SERVER_PID
    local port=${PORT[$1]}
    case $1 in
    ceiling) "${SRV_CPU[@]}" "$BIN/chat-bench" ceiling --bind "127.0.0.1:$port" --for 600 & ;;
    chat) RUST_LOG=warn "${SRV_CPU[@]}" "$BIN/chat-server" --bind "127.0.0.1:$port" \
        --history memory "${CHAT_FLAGS[@]}" 2>>"/tmp/chat-bench-server.log" & ;;
    chat-db) # the durable default (SQLite), in a fresh directory every time
        DATA_DIR=$(mktemp -d /tmp/chat-bench-db.XXXXXX)
        RUST_LOG=warn "${SRV_CPU[@]}" "$BIN/chat-server" --bind "127.0.0.1:$port" \
            --history sqlite --data-dir "$DATA_DIR" "${CHAT_FLAGS[@]}" \
            2>>"/tmp/chat-bench-server.log" & ;;
    redis) "${SRV_CPU[@]}" redis-server --bind 127.0.0.1 --port "$port" --save '' \
        --appendonly no --maxclients 30000 --loglevel warning >/dev/null & ;;
    nats) "${SRV_CPU[@]}" nats-server -a 127.0.0.1 -p "$port" >/dev/null 2>&1 & ;;
    esac
    SERVER_PID=$!
    for _ in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "!! $1 did not start" >&2
    return 1
}

stop() {
    [[ -n $SERVER_PID ]] || return 0
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
    if [[ -n $DATA_DIR ]]; then rm -rf "$DATA_DIR"; DATA_DIR=; fi
}
trap stop EXIT

# run SERVER LABEL chat-bench-args... : one fresh server, one run, one JSON line in $RAW.
run() {
    local server=$1 label=$2
    shift 2
    start "$server" || return 0
    local line status=0 load
    load=$(cut -d' ' -f1 /proc/loadavg) # other work on the machine shows up here
    line=$(timeout 180 "${BENCH_CPU[@]}" "$BIN/chat-bench" "$@" --proto "${PROTO[$server]}" \
        --addr "127.0.0.1:${PORT[$server]}" --server-pid "$SERVER_PID" --json --timeout 150) || status=$?
    stop
    [[ -n $line ]] || line='{"failure":"no report (exit '$status')"}'
    echo "{\"server\":\"$server\",\"label\":\"$label\",\"load\":\"$load\",\"report\":$line}" >>"$RAW"
    python3 bench/table.py --line "$line" "$server" "$label"
}

msgs_for() { # messages so that each fan-out run delivers about 5 M messages (1 M with QUICK)
    local total=5000000 m
    [[ -n ${QUICK:-} ]] && total=1000000
    m=$((total / $1))
    echo $((m < 500 ? 500 : m))
}
DURATION=5
[[ -n ${QUICK:-} ]] && DURATION=2

echo "== chat-bench matrix: servers [$SERVERS], subs [$SUBS], reps $REPS, pin $PIN"
for rep in $(seq "$REPS"); do
    for subs in $SUBS; do
        for server in $SERVERS; do # interleaved: every server once per configuration
            run "$server" "fanout-$subs" fanout --subs "$subs" --messages "$(msgs_for "$subs")"
        done
    done
    for server in $SERVERS; do
        run "$server" "latency-100x10k" latency --subs 100 --rate 10000 --duration "$DURATION"
    done
    for n in $IDLE; do
        for server in $SERVERS; do
            [[ $server == ceiling || $server == chat-db ]] && continue
            run "$server" "idle-$n" idle --conns "$n" --settle 2
        done
    done
    for server in $SERVERS; do
        [[ $server == ceiling || $server == chat-db ]] && continue
        run "$server" "slow-100" slow --subs 100 --messages 100000
    done
done

python3 bench/table.py "$RAW" "$STAMP" "$PIN" >"$REPORT"
echo "== wrote $REPORT"
cat "$REPORT"
