#!/usr/bin/env bash
# Syscalls per request, server side, for the std floor and the crate's
# strategies: the evidence behind the per-request overheads discussed in
# docs/benchmarks.md. Counts, unlike timings, do not depend on how busy the
# machine is (strace slows everything down; only the counts are used).
#
#   benchmarks/syscalls.sh            # needs strace; builds the harness first
#   ONLY='reactor|tokio|threading' benchmarks/syscalls.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HARNESS="$ROOT/benchmarks/harness"
export CARGO_TARGET_DIR="${BENCH_TARGET_DIR:-$HARNESS/target}"
command -v strace >/dev/null || { echo "strace is needed (apt-get install -y strace)" >&2; exit 1; }
cargo build --release --manifest-path "$HARNESS/Cargo.toml" >&2
BIN="$CARGO_TARGET_DIR/release/sockbench"
TMP="$(mktemp -d -p "$CARGO_TARGET_DIR")"
STRACE_PID=""
cleanup() {
    if [[ -n "$STRACE_PID" ]]; then
        for c in $(pgrep -P "$STRACE_PID" || true); do kill -TERM "$c" 2>/dev/null || true; done
        wait "$STRACE_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

measure() { # mode label server-args... (or a server binary's path and its args)
    # INFLIGHT (UDP datagrams per client) and SIZE (bytes) from the environment.
    local mode="$1" label="$2" inflight="${INFLIGHT:-1}" size="${SIZE:-64}"
    shift 2
    # ONLY='reactor|tokio' measures only the servers whose label matches.
    if [[ -n "${ONLY:-}" ]] && ! [[ "$label" =~ $ONLY ]]; then return 0; fi
    local cmd=("$BIN" "$@")
    [[ "$1" == /* ]] && cmd=("$@")
    strace -f -c -o "$TMP/strace.txt" "${cmd[@]}" >"$TMP/out.txt" 2>/dev/null &
    STRACE_PID=$!
    local addr=""
    for _ in $(seq 200); do
        addr="$(sed -n 's/^listening on //p' "$TMP/out.txt")"
        [[ -n "$addr" ]] && break
        sleep 0.05
    done
    [[ -n "$addr" ]] || { echo "$label: no listening line" >&2; return 1; }
    local reqs
    reqs="$("$BIN" load --addr "$addr" --mode "$mode" --conns 16 --size "$size" \
        --inflight "$inflight" --warmup 0 --duration 1 |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])')"
    for c in $(pgrep -P "$STRACE_PID"); do kill -TERM "$c"; done
    wait "$STRACE_PID" 2>/dev/null || true
    STRACE_PID=""
    echo "== $label ($mode, ${size} B, ${inflight} in flight, $reqs requests): syscalls per request"
    # strace -c columns: % time, seconds, usecs/call, calls, [errors], syscall
    awk -v n="$reqs" '$1 ~ /^[0-9.]+$/ && NF >= 5 {
        calls = $4; name = $NF; err = (NF == 6) ? $5 : 0
        if (calls / n >= 0.05) printf "  %-16s %6.2f  (errors %.2f)\n", name, calls / n, err / n
    }' "$TMP/strace.txt" | sort -k2 -nr
}

measure connect "std floor" serve-std
measure connect "crate threading" serve-crate --strategy threading
measure connect "crate pool(16)" serve-crate --strategy pool --workers 16
measure connect "crate sequential" serve-crate --strategy sequential
measure connect "tokio" serve-tokio
measure udp "std floor" serve-std --udp
measure udp "crate sequential" serve-crate --strategy sequential --udp
measure udp "crate pool(16)" serve-crate --strategy pool --workers 16 --udp
measure udp "crate threading" serve-crate --strategy threading --udp
measure udp "tokio" serve-tokio --udp
export INFLIGHT=8
measure udp "std floor" serve-std --udp
measure udp "std recvmmsg/sendmmsg" serve-std --udp --mmsg
measure udp "crate sequential" serve-crate --strategy sequential --udp
measure udp "crate pool(16)" serve-crate --strategy pool --workers 16 --udp
measure udp "crate threading" serve-crate --strategy threading --udp
measure udp "tokio" serve-tokio --udp
unset INFLIGHT
measure echo "std floor" serve-std
measure echo "crate threading" serve-crate --strategy threading
measure echo "crate pool(16)" serve-crate --strategy pool --workers 16
measure echo "tokio" serve-tokio
measure echo "crate reactor (1 loop)" serve-crate --strategy reactor --workers 1
measure connect "crate reactor (1 loop)" serve-crate --strategy reactor --workers 1
ECHO_EXAMPLE="$CARGO_TARGET_DIR/crate-examples/release/examples/echo"
export SIZE=16384
measure echo "std floor" serve-std
if [[ -x "$ECHO_EXAMPLE" ]]; then
    measure echo "echo example (threading)" "$ECHO_EXAMPLE" --addr 127.0.0.1:0
fi
measure echo "crate threading, io::copy handler" serve-crate --strategy threading --handler copy --nodelay
