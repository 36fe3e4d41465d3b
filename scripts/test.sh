#!/usr/bin/env bash
# The project's test command (README, CI): deps, formatting, lints, all tests of the workspace.
# TEST_TIMEOUT (seconds, default 1800) bounds `cargo test` so a hung test fails instead of
# eating CI's time.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

"$REPO_ROOT/scripts/setup.sh" --no-build
# setup.sh installed python3-redis: tests/redis_py.rs must run, not skip.
export RAFTKV_REQUIRE_REDIS_PY=1

log "cargo fmt --all --check"
cargo fmt --all --check -- --color never

log "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

log "cargo test --workspace"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
timeout --kill-after=30 "${TEST_TIMEOUT:-1800}" cargo test --workspace --no-fail-fast 2>&1 | tee "$out" || status=$?
# One closing line for the whole workspace (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "%d passed, %d failed\n", p, f }' "$out"
exit "$status"
