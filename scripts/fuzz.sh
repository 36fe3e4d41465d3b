#!/usr/bin/env bash
# Builds and runs raftkv's cargo-fuzz targets (fuzz/).
#   scripts/fuzz.sh [seconds-per-target] [target...]
# Defaults: 60 seconds, every target. Needs the nightly toolchain (rustup toolchain install
# nightly) and installs cargo-fuzz when missing. New corpus entries stay in
# fuzz/corpus/<target>/ (git-ignored except the seed-* files); crashes go to
# fuzz/artifacts/<target>/. Prints the executions and result of each target.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

secs="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(resp_request command_parse raft_commit peer_message)
fi

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz
fi

cargo +nightly fuzz build -O
summary=()
status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log="$(mktemp)"
    echo "== $t: ${secs}s"
    if cargo +nightly fuzz run -O "$t" "corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 -max_len=4096 >"$log" 2>&1; then
        result=ok
    else
        result="FAILED (see fuzz/artifacts/$t, log $log)"
        status=1
    fi
    execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)"
    cov="$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)"
    rss="$(grep -o 'stat::peak_rss_mb: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)"
    tail -n 5 "$log"
    summary+=("$t: ${execs:-?} executions in ${secs}s, ${cov:-cov ?}, peak RSS ${rss:-?} MB, $result")
    [ "$result" = ok ] && rm -f "$log"
done
echo
echo "== summary"
printf '%s\n' "${summary[@]}"
exit $status
