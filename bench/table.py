#!/usr/bin/env python3
"""Turns bench/run.sh's JSON lines into a Markdown report (medians, min-max, ratios).

    table.py RAW.jsonl STAMP PIN      -> Markdown on stdout
    table.py --line JSON SERVER LABEL -> one progress line
"""
import json
import platform
import statistics
import subprocess
import sys

SERVERS = ["ceiling", "chat", "chat-db", "redis", "nats"]


def progress(line, server, label):
    r = json.loads(line)
    lat = r.get("latency", {}).get("p99_us", 0) / 1000
    print(f"   {server:8} {label:18} {r.get('delivered_per_s', 0) / 1e6:7.2f} M/s"
          f"  p99 {lat:8.3f} ms  {r.get('failure') or 'ok'}", flush=True)


def cmd(*args):
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


LOADS = []


def load(path):
    runs = {}
    for line in open(path):
        row = json.loads(line)
        if row["label"].startswith("fanout-") and row["label"].count("-") == 1:
            row["label"] += "-64b-1p"  # older runs: 64 bytes, one publisher
        runs.setdefault((row["label"], row["server"]), []).append(row["report"])
        if row.get("load"):
            LOADS.append(float(row["load"]))
    return runs


def fmt_rate(v):
    return f"{v / 1e6:.2f} M" if v >= 1e5 else f"{v / 1e3:.0f} k"


def cell(reports, get, fmt):
    ok = [get(r) for r in reports if not r.get("failure") and get(r) is not None]
    if not ok:
        return "FAIL" if reports else "—"
    med = fmt(statistics.median(ok))
    if len(ok) > 1:
        med += f" ({fmt(min(ok))}–{fmt(max(ok))})"
    return med


def median(reports, get):
    ok = [get(r) for r in reports if not r.get("failure") and get(r) is not None]
    return statistics.median(ok) if ok else None


def main(path, stamp, pin):
    runs = load(path)
    labels = sorted({label for label, _ in runs})
    servers = [s for s in SERVERS if any(s == srv for _, srv in runs)]
    reps = max((len(v) for v in runs.values()), default=0)
    out = []
    p = out.append
    p(f"# chat-bench results {stamp} UTC\n")
    p(f"- machine: {cpu_model()}, {cmd('nproc')} cores, Linux {platform.release()}")
    p(f"- chat-server: git {cmd('git', 'rev-parse', '--short', 'HEAD')}; "
      f"{cmd('redis-server', '--version').split(' sha=')[0]}; {cmd('nats-server', '--version')}")
    p(f"- pinned: {'server on core 0, load tool on core 1' if pin == '1' else 'no'}; "
      f"repetitions: {reps} (median, min–max when more than one)")
    if LOADS:
        p(f"- 1-minute load average at the start of each run: {min(LOADS):.2f}–{max(LOADS):.2f} "
          "(above ~2, other work on the machine competed with the runs)")
    p("- chat = chat-server with `--history memory`; chat-db = the durable default (SQLite, "
      "fresh data directory per run). ceiling = `chat-bench ceiling`, the zero-logic broadcaster.")
    p("- Loopback. Noise between runs is ±25 %: compare ratios within one run only.\n")

    # Fan-out labels: fanout-SUBS-SIZEb-PUBSp.
    groups = {}
    for l in labels:
        if not l.startswith("fanout-"):
            continue
        parts = l.split("-")
        size, pubs = int(parts[2].rstrip("b")), int(parts[3].rstrip("p"))
        groups.setdefault((size, pubs), []).append((int(parts[1]), l))
    get = lambda r: r.get("delivered_per_s")
    for (size, pubs), fan in sorted(groups.items()):
        fan.sort()
        who = "one publisher" if pubs == 1 else f"{pubs} publishers"
        p(f"## Fan-out, {size}-byte messages, {who}: delivered messages per second\n")
        p("Closed loop, 1000 messages in flight in all.\n")
        p("| server | " + " | ".join(f"{n} subs" for n, _ in fan) + " |")
        p("|---|" + "---|" * len(fan))
        for s in servers:
            p(f"| {s} | " + " | ".join(cell(runs.get((l, s), []), get, fmt_rate)
                                     for _, l in fan) + " |")
        for ours, other in [("chat", "redis"), ("chat", "nats"), ("chat", "ceiling"),
                            ("chat-db", "redis")]:
            if ours in servers and other in servers:
                row = []
                for _, l in fan:
                    a, b = median(runs.get((l, ours), []), get), median(runs.get((l, other), []), get)
                    row.append(f"{a / b:.2f}×" if a and b else "—")
                p(f"| {ours} ÷ {other} | " + " | ".join(row) + " |")
        p("")
    goals(runs, p)

    lat = [l for l in labels if l.startswith("latency-")]
    for l in lat:
        p(f"## Latency, open loop: {l.split('-', 1)[1].replace('x', ' subs × ')} msg/s\n")
        p("Measured from the scheduled send time (no coordinated omission).\n")
        p("| server | p50 | p99 | p99.9 | max | delivered msg/s |")
        p("|---|---|---|---|---|---|")
        for s in servers:
            rs = runs.get((l, s), [])
            ms = lambda k: (lambda r: r.get("latency", {}).get(k, 0) / 1000)
            p(f"| {s} | " + " | ".join(cell(rs, ms(k), lambda v: f"{v:.3f} ms")
                                     for k in ["p50_us", "p99_us", "p999_us", "max_us"])
              + f" | {cell(rs, get_rate, fmt_rate)} |")
        p("")

    idle = sorted((int(l.split("-")[1]), l) for l in labels if l.startswith("idle-"))
    if idle:
        p("## Idle connections: time to connect and join, server RSS per connection\n")
        p("| server | " + " | ".join(f"{n}: join time | {n}: KB/conn" for n, _ in idle) + " |")
        p("|---|" + "---|---|" * len(idle))
        for s in servers:
            if not any((l, s) in runs for _, l in idle):
                continue
            row = []
            for _, l in idle:
                rs = runs.get((l, s), [])
                row.append(cell(rs, lambda r: r["extra"].get("connect_s"), lambda v: f"{v:.2f} s"))
                row.append(cell(rs, lambda r: r["extra"].get("rss_per_conn_kb"), lambda v: f"{v:.1f}"))
            p(f"| {s} | " + " | ".join(row) + " |")
        p("")

    if any(l.startswith("slow-") for l in labels):
        p("## Slow consumer: 100 readers + 1 subscriber that never reads\n")
        p("| server | baseline msg/s | with stalled msg/s | ratio | server RSS peak | stalled one |")
        p("|---|---|---|---|---|---|")
        for s in servers:
            rs = runs.get(("slow-100", s), [])
            if not rs:
                continue
            r = rs[-1]
            e = r.get("extra", {})
            p(f"| {s} | {fmt_rate(e.get('baseline_msgs_per_s', 0))} | "
              f"{fmt_rate(r.get('delivered_per_s', 0))} | {e.get('vs_baseline', '—')} | "
              f"{e.get('server_rss_peak_kb', 0) / 1024:.0f} MB | "
              f"{e.get('stalled_received', '?')} msgs, {e.get('stalled_fate', '?')}"
              f"{' — FAILED: ' + r['failure'] if r.get('failure') else ''} |")
        p("")

    fails = [(l, s, r["failure"]) for (l, s), rs in runs.items() for r in rs if r.get("failure")]
    if fails:
        p("## Failed runs\n")
        for l, s, f in fails:
            p(f"- {s} {l}: {f}")
        p("")
    print("\n".join(out))


def ratio(runs, label, ours, other, get):
    a, b = median(runs.get((label, ours), []), get), median(runs.get((label, other), []), get)
    return a / b if a and b else None


def goals(runs, p):
    """Issue 8's goals, checked against this run's medians."""
    rate = lambda r: r.get("delivered_per_s")
    p99 = lambda r: r.get("latency", {}).get("p99_us")
    p999 = lambda r: r.get("latency", {}).get("p999_us")
    rows = []

    def check(goal, value, ok, shown):
        if value is None:
            return
        rows.append(f"| {goal} | {shown} | {'met' if ok else '**not met**'} |")

    for subs, want, other in [(10, 1.3, "redis"), (100, 1.3, "redis"), (1000, 1.3, "redis"),
                              (10000, 1.0, "redis"), (100, 0.5, "ceiling"),
                              (1000, 0.5, "ceiling")]:
        r = ratio(runs, f"fanout-{subs}-64b-1p", "chat", other, rate)
        if r is not None:
            check(f"fan-out {subs} subs ≥ {want}× {other}", r, r >= want, f"{r:.2f}×")
    for subs in [1, 10, 100, 1000, 10000]:
        r = ratio(runs, f"fanout-{subs}-64b-1p", "chat", "nats", rate)
        if r is not None:
            check(f"fan-out {subs} subs ≥ 1.0× NATS", r, r >= 1.0, f"{r:.2f}×")
    # tokio's examples/chat.rs on this kind of machine, as issue 8 gives them (not rerun here).
    for subs, tokio_chat in [(10, 0.30e6), (100, 0.24e6), (1000, 0.19e6)]:
        ours = median(runs.get((f"fanout-{subs}-64b-1p", "chat"), []), rate)
        if ours:
            check(f"fan-out {subs} subs ≥ 20× tokio's chat example ({tokio_chat / 1e6:.2f} M)",
                  ours, ours >= 20 * tokio_chat, f"{ours / tokio_chat:.0f}×")
    r = ratio(runs, "fanout-100-64b-1p", "chat-db", "redis", rate)
    check("durable fan-out 100 subs ≥ 1.0× Redis", r, r is not None and r >= 1.0,
          f"{r:.2f}×" if r is not None else "")
    for label in ["latency-100x10k", "latency-1000x1k"]:
        ours, theirs = median(runs.get((label, "chat"), []), p99), median(runs.get((label, "redis"), []), p99)
        if ours and theirs:
            check(f"{label}: p99 ≤ Redis p99", ours, ours <= theirs,
                  f"{ours / 1000:.2f} ms vs {theirs / 1000:.2f} ms")
        tail = median(runs.get((label, "chat"), []), p999)
        if ours and tail:
            check(f"{label}: p99.9 ≤ 2 × p99", tail, tail <= 2 * ours,
                  f"{tail / 1000:.2f} ms vs 2 × {ours / 1000:.2f} ms")
    one = median(runs.get(("latency-1x10k", "chat"), []), p99)
    if one:
        check("1 sub @ 10 k/s p99 ≤ 0.5 ms", one, one <= 500, f"{one / 1000:.3f} ms")
    kb = median(runs.get(("idle-10000", "chat"), []), lambda r: r["extra"].get("rss_per_conn_kb"))
    check("≤ 4 KB per idle connection at 10,000", kb, kb is not None and kb <= 4,
          f"{kb:.1f} KB" if kb is not None else "")
    join = median(runs.get(("idle-10000", "chat"), []), lambda r: r["extra"].get("connect_s"))
    check("10,000 joined in ≤ 2 s", join, join is not None and join <= 2,
          f"{join:.2f} s" if join is not None else "")
    slow = median(runs.get(("slow-100", "chat"), []), lambda r: r["extra"].get("vs_baseline"))
    check("a stalled reader costs the others ≤ 10 %", slow, slow is not None and slow >= 0.9,
          f"{slow:.2f}× of baseline" if slow is not None else "")
    if rows:
        p("## Against the goals of issue 8 (chat = memory history)\n")
        p("| goal | this run | |")
        p("|---|---|---|")
        for row in rows:
            p(row)
        p("")


def get_rate(r):
    return r.get("delivered_per_s")


if __name__ == "__main__":
    if sys.argv[1] == "--line":
        progress(*sys.argv[2:5])
    else:
        main(*sys.argv[1:4])
