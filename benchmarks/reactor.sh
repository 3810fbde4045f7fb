#!/usr/bin/env bash
# Issue 13 in one interleaved run: the reactor strategy against tokio
# (current_thread), the std thread-per-connection floor and the crate's
# threading strategy on echo (ping-pong and pipelined, server CPU per
# request), and examples/mini_redis against `redis-server --save ''
# --appendonly no` (and tokio's mini-redis, if installed) under
# redis-benchmark -t set,get at -c 16/256, -P 1/16.
#
#   benchmarks/reactor.sh                  # 3 passes, 2 s windows
#   PASSES=1 DURATION=1 benchmarks/reactor.sh
#   SCALE=19000 benchmarks/reactor.sh      # also hold 19,000 idle connections
#   PARTS=redis benchmarks/reactor.sh      # only some parts (echo, redis)
#
# Servers are pinned to CPU 0, load generators to CPU 1; every pass runs
# the servers of a case back to back in a rotated order, so a slow moment
# of the machine does not land on one server only. Output:
# benchmarks/results/<stamp>-reactor/{results.jsonl,report.md}. Traffic goes to
# 127.0.0.1 only, on ports the OS picks.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
HARNESS="$ROOT/benchmarks/harness"
export CARGO_TARGET_DIR="${BENCH_TARGET_DIR:-$HARNESS/target}"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="${OUT:-$ROOT/benchmarks/results/$STAMP-reactor}"
PASSES="${PASSES:-3}"
DURATION="${DURATION:-2}"
mkdir -p "$OUT"
JSONL="$OUT/results.jsonl"
: > "$JSONL"

for tool in redis-server redis-benchmark redis-cli taskset; do
    command -v "$tool" >/dev/null || {
        echo "$tool missing: apt-get install -y redis-server redis-tools util-linux" >&2
        exit 1
    }
done
TOKIO_REDIS="${TOKIO_MINI_REDIS:-$(command -v mini-redis-server || true)}"

echo "building the harness and mini_redis (release)" >&2
cargo build --release --manifest-path "$HARNESS/Cargo.toml" >&2
BIN="$CARGO_TARGET_DIR/release/sockbench"
cargo build --release --example mini_redis --target-dir "$ROOT/target" >&2
MINI="$ROOT/target/release/examples/mini_redis"

{ uname -a; nproc; grep -m1 'model name' /proc/cpuinfo; redis-server --version; uptime; } > "$OUT/machine.txt"

PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

# start NAME CMD...: runs CMD on CPU 0, waits for `listening on`, sets ADDR/PID.
start() {
    local log="$OUT/server.out"
    # Truncate here, not in the background redirection: a grep racing that
    # truncation would read the previous server's line.
    : > "$log"
    ADDR=""
    taskset -c 0 "$@" >> "$log" 2>/dev/null &
    PID=$!
    PIDS+=("$PID")
    for _ in $(seq 1 300); do
        ADDR="$(sed -n 's/^listening on \(.*:[0-9][0-9]*\)$/\1/p' "$log" | head -1)"
        [[ -n "$ADDR" ]] && return 0
        sleep 0.01
    done
    echo "server $* did not start" >&2
    exit 1
}
stop() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

PARTS="${PARTS:-echo,redis}"
# --- echo ---------------------------------------------------------------------
ECHO_SERVERS=("std|$BIN serve-std" "tokio|$BIN serve-tokio"
    "reactor|$BIN serve-crate --strategy reactor --workers 1"
    "threading|$BIN serve-crate --strategy threading")
ECHO_CASES=("echo 16 64 1" "echo 256 64 1" "echo 16 16384 1" "connect 16 64 1"
    "echo 16 64 16" "echo 256 64 16")
for pass in $(seq 1 "$PASSES"); do
    [[ ",$PARTS," == *,echo,* ]] || break
    for c in "${ECHO_CASES[@]}"; do
        read -r mode conns size depth <<< "$c"
        n=${#ECHO_SERVERS[@]}
        for i in $(seq 0 $((n - 1))); do
            entry="${ECHO_SERVERS[$(((i + pass) % n))]}"
            name="${entry%%|*}"
            # shellcheck disable=SC2086
            start ${entry#*|}
            r="$(taskset -c 1 "$BIN" load --addr "$ADDR" --mode "$mode" --conns "$conns" \
                --size "$size" --depth "$depth" --duration "$DURATION" --warmup 0.5 --server-pid "$PID")"
            stop
            echo "{\"bench\":\"echo\",\"pass\":$pass,\"server\":\"$name\",\"case\":\"$mode c$conns ${size}B x$depth\",\"r\":$r}" >> "$JSONL"
            echo "pass $pass $mode c$conns ${size}B x$depth $name" >&2
        done
    done
done

# --- redis ---------------------------------------------------------------------
REDIS_SERVERS=("redis-server" "mini_redis reactor" "mini_redis threading")
[[ -n "$TOKIO_REDIS" ]] && REDIS_SERVERS+=("tokio mini-redis")
start_redis() {
    case "$1" in
        redis-server)
            local port; port="$(free_port)"
            taskset -c 0 redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
                --daemonize no --logfile /dev/null &
            PID=$!; PIDS+=("$PID"); ADDR="127.0.0.1:$port"
            for _ in $(seq 1 300); do redis-cli -p "$port" ping >/dev/null 2>&1 && return 0; sleep 0.01; done
            echo "redis-server did not start" >&2; exit 1 ;;
        "mini_redis reactor") start "$MINI" --addr 127.0.0.1:0 --strategy reactor --loops 1 ;;
        "mini_redis threading") start "$MINI" --addr 127.0.0.1:0 --strategy threading ;;
        "tokio mini-redis")
            local port; port="$(free_port)"
            taskset -c 0 "$TOKIO_REDIS" --port "$port" >/dev/null 2>&1 &
            PID=$!; PIDS+=("$PID"); ADDR="127.0.0.1:$port"
            for _ in $(seq 1 300); do redis-cli -p "$port" ping >/dev/null 2>&1 && return 0; sleep 0.01; done
            echo "tokio mini-redis did not start" >&2; exit 1 ;;
    esac
}
for pass in $(seq 1 "$PASSES"); do
    [[ ",$PARTS," == *,redis,* ]] || break
    for c in "16 1" "256 1" "16 16" "256 16"; do
        read -r clients pipe <<< "$c"
        requests=$((pipe == 1 ? 200000 : 2000000))
        n=${#REDIS_SERVERS[@]}
        for i in $(seq 0 $((n - 1))); do
            name="${REDIS_SERVERS[$(((i + pass) % n))]}"
            start_redis "$name"
            before="$(cpu_ticks "$PID")"
            t0="$(date +%s.%N)"
            # A server that cannot finish (tokio's mini-redis caps connections
            # at 250 and is slow pipelined) is stopped after 60 s: no row.
            csv="$(timeout 60 taskset -c 1 redis-benchmark -h 127.0.0.1 -p "${ADDR##*:}" -t set,get \
                -c "$clients" -P "$pipe" -n "$requests" -q --csv 2>/dev/null || true)"
            t1="$(date +%s.%N)"
            after="$(cpu_ticks "$PID")"
            stop
            python3 - "$pass" "$name" "$clients" "$pipe" "$requests" "$before" "$after" "$t0" "$t1" "$csv" >> "$JSONL" <<'EOF'
import csv, io, json, os, sys
pass_, name, c, p, n, before, after, t0, t1, text = sys.argv[1:]
hz = os.sysconf("SC_CLK_TCK")
rows = {r[0]: r for r in csv.reader(io.StringIO(text)) if r and r[0] in ("SET", "GET")}
out = {"bench": "redis", "pass": int(pass_), "server": name, "case": f"c{c} P{p}",
       "requests": int(n) * len(rows), "server_cpu_s": (int(after) - int(before)) / hz,
       "wall_s": float(t1) - float(t0)}
for t, r in rows.items():
    out[t] = {"rps": float(r[1]), "p50_ms": float(r[4]), "p99_ms": float(r[6])}
print(json.dumps(out))
EOF
            echo "pass $pass redis c$clients P$pipe $name" >&2
        done
    done
done

# --- idle connections --------------------------------------------------------------
if [[ -n "${SCALE:-}" ]]; then
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    taskset -c 1 "$BIN" suite --out "$OUT/scale" --only scale --scale-conns "$SCALE" \
        --scale-servers "reactor,tokio" >&2 || true
fi

python3 "$ROOT/benchmarks/reactor_report.py" "$JSONL" > "$OUT/report.md"
cat "$OUT/report.md"
