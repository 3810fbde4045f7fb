#!/usr/bin/env bash
# The benchmark suite, in one command:
#
#   benchmarks/run.sh                 # full run (about 6 minutes), report in benchmarks/results/<stamp>/
#   QUICK=1 benchmarks/run.sh         # 1 pass, short windows: a smoke test
#   ONLY=echo,udp benchmarks/run.sh   # parts: echo, connect, udp, shutdown, upload, scale,
#                                 # or case ids: ONLY=udp,echo-16k-16
#
# Servers run pinned to CPU 0 (taskset), the load generator (one mio/epoll
# thread) to CPU 1. Each server is its own process, started with port 0,
# found through its `listening on <addr>` line and stopped by PID; they also
# die with the suite (PR_SET_PDEATHSIG), and the trap below stops the suite.
# Everything goes to 127.0.0.1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
HARNESS="$ROOT/benchmarks/harness"
export CARGO_TARGET_DIR="${BENCH_TARGET_DIR:-$HARNESS/target}"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="${OUT:-$ROOT/benchmarks/results/$STAMP}"
mkdir -p "$OUT"

SUITE_PID=""
cleanup() {
    if [[ -n "$SUITE_PID" ]] && kill -0 "$SUITE_PID" 2>/dev/null; then
        kill -TERM "$SUITE_PID" 2>/dev/null || true
        wait "$SUITE_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT INT TERM

# --- tools -------------------------------------------------------------------
PIN_ARGS=()
PIN_LOAD=()
if ! command -v taskset >/dev/null 2>&1; then
    echo "taskset missing: installing util-linux" >&2
    (apt-get install -y util-linux >/dev/null 2>&1 || true)
fi
if command -v taskset >/dev/null 2>&1 && [[ "$(nproc)" -ge 2 ]]; then
    PIN_LOAD=(taskset -c 1)
else
    echo "WARNING: no taskset or fewer than 2 CPUs: running unpinned" >&2
    PIN_ARGS=(--no-pin)
fi
PYTHON="$(command -v python3)"
# Resolve shims (pyenv) to the real interpreter so its PID is the server's.
PYTHON="$("$PYTHON" -c 'import sys; print(sys.executable)')"

# 10,000 idle connections: the suite holds one end, the server the other.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [[ "$(ulimit -n)" != unlimited && "$(ulimit -n)" -lt 10100 ]]; then
    echo "WARNING: ulimit -n is $(ulimit -n); the scale test will stop early" >&2
fi

# --- build -------------------------------------------------------------------
echo "building the harness (release) into $CARGO_TARGET_DIR" >&2
cargo build --release --manifest-path "$HARNESS/Cargo.toml" >&2
BIN="$CARGO_TARGET_DIR/release/sockbench"

# The echo example (the echo-16k and UDP rows), release.
EX_TARGET="$CARGO_TARGET_DIR/crate-examples"
ECHO_ARGS=()
echo "building the echo example (release) into $EX_TARGET" >&2
if CARGO_TARGET_DIR="$EX_TARGET" cargo build --release --example echo >"$OUT/echo-build.log" 2>&1; then
    ECHO_ARGS=(--echo-example "$EX_TARGET/release/examples/echo")
else
    echo "WARNING: the echo example did not build (see echo-build.log): no echo example rows" >&2
fi

UPLOAD_ARGS=()
if [[ -e examples/upload_server/main.rs && -e examples/upload_client/main.rs ]]; then
    echo "building the upload examples (release) into $EX_TARGET" >&2
    if CARGO_TARGET_DIR="$EX_TARGET" cargo build --release \
        --example upload_server --example upload_client >"$OUT/examples-build.log" 2>&1; then
        UPLOAD_ARGS=(--upload-server "$EX_TARGET/release/examples/upload_server"
            --upload-client "$EX_TARGET/release/examples/upload_client")
    else
        UPLOAD_ARGS=(--upload-skip "the upload examples did not build (see examples-build.log)")
    fi
else
    UPLOAD_ARGS=(--upload-skip "examples/upload_server/ or upload_client/ missing")
fi

# --- run ---------------------------------------------------------------------
{
    echo "date: $(date -u +%FT%TZ)"
    echo "nproc: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "kernel: $(uname -sr)"
    echo "rustc: $(rustc --version)"
    echo "python: $("$PYTHON" --version 2>&1)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "loadavg before: $(cut -d' ' -f1-3 /proc/loadavg)"
    # How busy the machine is without us (other users of the 2 cores).
    a=($(head -1 /proc/stat)); sleep 2; b=($(head -1 /proc/stat))
    busy=$(( (b[1]+b[2]+b[3]+b[6]+b[7]+b[8]) - (a[1]+a[2]+a[3]+a[6]+a[7]+a[8]) ))
    total=$(( busy + (b[4]+b[5]) - (a[4]+a[5]) ))
    echo "cpu busy (all cpus, 2 s before the run): $(( 100 * busy / (total > 0 ? total : 1) ))%"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

SUITE_ARGS=(--out "$OUT" --python "$PYTHON" --py-script "$ROOT/benchmarks/py/servers.py")
if [[ -n "${QUICK:-}" ]]; then
    SUITE_ARGS+=(--passes 1 --duration 0.5 --warmup 0.2 --shutdown-runs 50
        --scale-conns 2000 --upload-bytes $((256 << 20)))
else
    SUITE_ARGS+=(--passes 3 --duration 2 --warmup 0.3 --shutdown-runs 200)
fi
[[ -n "${ONLY:-}" ]] && SUITE_ARGS+=(--only "$ONLY")

"${PIN_LOAD[@]}" "$BIN" suite "${SUITE_ARGS[@]}" "${PIN_ARGS[@]}" "${UPLOAD_ARGS[@]}" "${ECHO_ARGS[@]}" &
SUITE_PID=$!
wait "$SUITE_PID"
SUITE_PID=""
echo "loadavg after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
echo "report: $OUT/report.md" >&2
cat "$OUT/report.md"
