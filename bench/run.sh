#!/usr/bin/env bash
# Side-by-side benchmark: chat-server vs Redis pub/sub vs NATS vs the zero-logic broadcaster
# (the ceiling), all on 127.0.0.1, each server started fresh for every run.
#
#   bench/run.sh                 # the whole matrix, 5 repetitions: about an hour on 2 cores
#   REPS=1 bench/run.sh          # one repetition, ~12 minutes
#   SUBS="10 100" SIZES=64 PUBS=1 REPS=1 QUICK=1 bench/run.sh    # a quick look
#
# Environment: REPS (5), SUBS ("1 10 100 1000 10000"), SIZES ("64 1024": payload bytes),
# PUBS ("1 10": publishers), SERVERS ("ceiling chat chat-db redis nats"), PIN (1: server on
# core 0, load tool on core 1), IDLE ("1000 10000"), LATENCY ("100x10000 1000x1000 1x10000":
# subscribers x msg/s), QUICK (shorter runs), CARGO_TARGET_DIR (target). Writes
# bench/results/DATE.md and the raw JSON lines next to it.
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=${REPS:-5}
SUBS=${SUBS:-"1 10 100 1000 10000"}
SIZES=${SIZES:-"64 1024"}
PUBS=${PUBS:-"1 10"}
LATENCY=${LATENCY:-"100x10000 1000x1000 1x10000"}
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

msgs_for() { # SUBS SIZE: messages so that each run delivers ~5 M 64-byte messages or ~2 GB
    local total=5000000 m
    (($2 > 64)) && total=2000000
    [[ -n ${QUICK:-} ]] && total=$((total / 5))
    m=$((total / $1))
    echo $((m < 500 ? 500 : m))
}
DURATION=5
[[ -n ${QUICK:-} ]] && DURATION=2

echo "== chat-bench matrix: servers [$SERVERS], subs [$SUBS], sizes [$SIZES], publishers" \
    "[$PUBS], reps $REPS, pin $PIN"
for rep in $(seq "$REPS"); do
    for size in $SIZES; do
        for pubs in $PUBS; do
            for subs in $SUBS; do
                for server in $SERVERS; do # interleaved: every server once per configuration
                    run "$server" "fanout-$subs-${size}b-${pubs}p" fanout --subs "$subs" \
                        --size "$size" --publishers "$pubs" --messages "$(msgs_for "$subs" "$size")"
                done
            done
        done
    done
    for scenario in $LATENCY; do
        subs=${scenario%x*} rate=${scenario#*x}
        for server in $SERVERS; do
            run "$server" "latency-${subs}x$((rate / 1000))k" latency --subs "$subs" --rate "$rate" \
                --duration "$DURATION"
        done
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
