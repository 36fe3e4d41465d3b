# Sourced by the scripts in this folder: repo root, sudo, cargo on PATH, package list.
# shellcheck shell=bash

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT" || exit 1

# Empty when we are root; "sudo" otherwise.
# shellcheck disable=SC2034 # used by the scripts that source this file
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)

# rustup puts cargo in ~/.cargo/bin, which a non-login shell may not have on PATH.
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

# The Debian packages, from scripts/apt-packages.txt (comments and blank lines dropped).
apt_packages() {
    sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$REPO_ROOT/scripts/apt-packages.txt"
}

log() { printf '==> %s\n' "$*" >&2; }

# Timing and bounded waits of the benchmark scripts: `now` (seconds, fractional), `elapsed T`
# (seconds since a `now`, two decimals), `wait_until SECONDS WHAT COMMAND...` (polls COMMAND
# every 50 ms; exits the script when SECONDS pass first).
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
wait_until() { # seconds, description, command...
    local limit=$1 what=$2; shift 2
    local deadline=$((SECONDS + limit))
    until "$@"; do
        if [ $SECONDS -ge $deadline ]; then echo "timed out waiting for $what" >&2; exit 1; fi
        sleep 0.05
    done
}

# `random_sets KEYS VALUE_BYTES J STEP`: RESP SETs of key:J, key:J+STEP, ... below KEYS, each
# value VALUE_BYTES random hex bytes, for `redis-cli --pipe` (the benchmarks' loaders).
random_sets() {
    python3 - "$@" <<'EOF'
import os, sys
n, size, j, step = (int(a) for a in sys.argv[1:5])
out = sys.stdout.buffer
half = size // 2
for i in range(j, n, step):
    k = b"key:%d" % i
    v = os.urandom(half).hex().encode()
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
EOF
}

# `bench_setup NAME`, for the benchmark scripts that start their own nodes: builds (unless
# NO_BUILD=1), sets BIN (RAFTKV_BIN, else the release binary) and the temp dir `tmp`
# (/tmp/raftkv-NAME.XXXXXX), and on exit kills every process in the `pids` array and removes
# `tmp` (kept with KEEP_TMP=1).
bench_setup() {
    if [ "${NO_BUILD:-0}" != 1 ]; then
        "$REPO_ROOT/scripts/setup.sh"
    fi
    BIN="${RAFTKV_BIN:-$REPO_ROOT/target/release/raftkv}"
    tmp=$(mktemp -d "/tmp/raftkv-$1.XXXXXX")
    declare -gA pids
    trap bench_cleanup EXIT
}
bench_cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
