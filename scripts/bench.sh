#!/usr/bin/env bash
# Benchmarks a 3-node raftkv cluster against a single redis-server with the same durability
# (appendonly, appendfsync always), with redis-benchmark SET/GET, plain and pipelined.
#
# Environment:
#   N=100000 C=50            requests and clients per redis-benchmark run
#   PIPELINE=16              depth of the pipelined runs (-P)
#   RAFTKV_PORTS=63791,63792,63793   Redis ports of the nodes (as in Procfile)
#   RAFT_PORTS=12379,22379,32379     Raft ports of the nodes (as in Procfile)
#   TARGET_PORT=63791        which node redis-benchmark talks to (one of RAFTKV_PORTS, or
#                            `leader`: whichever node leads once the cluster is up)
#   LOG_LEVEL=warning        raftkv --log-level
#   WAIT_SECS=60             how long to wait for the cluster to accept a write
#   BENCH_TIMEOUT=900        limit of one redis-benchmark run (seconds)
#   KEEP_TMP=1               keep the temp dir (data, logs) after the run
#   NO_BUILD=1               skip scripts/setup.sh (deps + release build)
#   RAFTKV_BIN=path          binary to run (default target/release/raftkv)
# Exits non-zero if any run failed. The cluster and redis-server are killed on exit.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

N="${N:-100000}"
C="${C:-50}"
PIPELINE="${PIPELINE:-16}"
RAFTKV_PORTS="${RAFTKV_PORTS:-63791,63792,63793}"
RAFT_PORTS="${RAFT_PORTS:-12379,22379,32379}"
LOG_LEVEL="${LOG_LEVEL:-warning}"
WAIT_SECS="${WAIT_SECS:-60}"
BENCH_TIMEOUT="${BENCH_TIMEOUT:-900}"

IFS=, read -r -a kv_ports <<<"$RAFTKV_PORTS"
IFS=, read -r -a raft_ports <<<"$RAFT_PORTS"
TARGET_PORT="${TARGET_PORT:-${kv_ports[0]}}"
want_leader=0
if [ "$TARGET_PORT" = leader ]; then
    want_leader=1
    TARGET_PORT=${kv_ports[0]}
fi
if [ "${#kv_ports[@]}" -ne "${#raft_ports[@]}" ]; then
    echo "RAFTKV_PORTS and RAFT_PORTS must have the same number of ports" >&2
    exit 2
fi
if [[ ",$RAFTKV_PORTS," != *",$TARGET_PORT,"* ]]; then
    echo "TARGET_PORT=$TARGET_PORT is not one of RAFTKV_PORTS=$RAFTKV_PORTS" >&2
    exit 2
fi

if [ "${NO_BUILD:-0}" != 1 ]; then
    "$REPO_ROOT/scripts/setup.sh"
fi
BIN="${RAFTKV_BIN:-$REPO_ROOT/target/release/raftkv}"
[ -x "$BIN" ] || { echo "$BIN not found: build it with scripts/setup.sh" >&2; exit 1; }
for tool in redis-benchmark redis-cli redis-server; do
    command -v "$tool" >/dev/null || { echo "$tool not found: run scripts/setup.sh" >&2; exit 1; }
done

# True when something accepts TCP connections on 127.0.0.1:$1.
listening() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

for p in "${kv_ports[@]}" "${raft_ports[@]}"; do
    if listening "$p"; then
        echo "port $p is in use (is scripts/start-cluster.sh running?); stop it or set RAFTKV_PORTS/RAFT_PORTS" >&2
        exit 1
    fi
done

# A free port for redis-server, never Redis's default 6379 (a system redis-server may own it).
REDIS_PORT=""
for _ in $(seq 1 50); do
    # Below the ephemeral range (32768+), where outgoing connections could hold the port.
    p=$((20000 + RANDOM % 12000))
    if [ "$p" != 6379 ] && [[ ",$RAFTKV_PORTS,$RAFT_PORTS," != *",$p,"* ]] && ! listening "$p"; then
        REDIS_PORT=$p
        break
    fi
done
[ -n "$REDIS_PORT" ] || { echo "no free port found for redis-server" >&2; exit 1; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/raftkv-bench.XXXXXX")"
pids=()
failed=0

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    # Give them 5 s to exit, then SIGKILL. (No $(...) in here: bash runs the EXIT trap again
    # in a command substitution made inside the trap handler.)
    local i
    for ((i = 0; i < 50; i++)); do
        local alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do { wait "$pid"; } 2>/dev/null || true; done
    if [ "$rc" != 0 ]; then
        for f in "$TMP"/*.log; do
            [ -f "$f" ] || continue
            echo "--- last lines of $f" >&2
            tail -n 20 "$f" >&2 || true
        done
    fi
    if [ "${KEEP_TMP:-0}" = 1 ]; then
        echo "kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Shell-quotes its arguments, readably: plain words stay bare, others go in single quotes.
shquote() {
    local out=() a sq="'" esc="'\\''"
    for a in "$@"; do
        if [[ "$a" =~ ^[A-Za-z0-9_./:,=+@%-]+$ ]]; then
            out+=("$a")
        else
            out+=("'${a//$sq/$esc}'")
        fi
    done
    echo "${out[*]}"
}

# Commands shown at the end.
commands=()
record() { commands+=("$(shquote "$@")"); }

cluster="$(printf '127.0.0.1:%s,' "${raft_ports[@]}")"
cluster="${cluster%,}"
for i in "${!kv_ports[@]}"; do
    id=$((i + 1))
    cmd=("$BIN" --id "$id" --cluster "$cluster" --port "${kv_ports[$i]}"
         --data-dir "$TMP/node$id" --log-level "$LOG_LEVEL")
    record "${cmd[@]}"
    "${cmd[@]}" >"$TMP/node$id.log" 2>&1 &
    pids+=($!)
done

mkdir -p "$TMP/redis"
cmd=(redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --appendonly yes --appendfsync always
     --save '' --dir "$TMP/redis")
record "${cmd[@]}"
"${cmd[@]}" >"$TMP/redis-server.log" 2>&1 &
pids+=($!)

# Wait until the target node accepts a write (a leader is elected and commits) and
# redis-server answers.
log "waiting up to ${WAIT_SECS}s for raftkv on port $TARGET_PORT and redis-server on port $REDIS_PORT"
deadline=$((SECONDS + WAIT_SECS))
ready_kv=0
ready_redis=0
while [ "$SECONDS" -lt "$deadline" ]; do
    for pid in "${pids[@]}"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "a server exited early (pid $pid); see the logs below" >&2
            exit 1
        fi
    done
    if [ "$ready_kv" = 0 ] && [ "$(timeout 3 redis-cli -p "$TARGET_PORT" SET __probe 1 2>/dev/null)" = OK ]; then
        ready_kv=1
    fi
    if [ "$ready_redis" = 0 ] && [ "$(timeout 3 redis-cli -p "$REDIS_PORT" PING 2>/dev/null)" = PONG ]; then
        ready_redis=1
    fi
    [ "$ready_kv" = 1 ] && [ "$ready_redis" = 1 ] && break
    sleep 0.2
done
if [ "$ready_kv" != 1 ] || [ "$ready_redis" != 1 ]; then
    echo "timed out: raftkv ready=$ready_kv, redis-server ready=$ready_redis" >&2
    exit 1
fi
if [ "$want_leader" = 1 ]; then
    for p in "${kv_ports[@]}"; do
        if redis-cli -p "$p" INFO raft 2>/dev/null | tr -d '\r' | grep -qx 'raft_role:leader'; then
            TARGET_PORT=$p
        fi
    done
    log "leader is on port $TARGET_PORT"
fi

# run_bench NAME PORT [EXTRA ARGS...]: one redis-benchmark run; its CSV goes to $TMP/NAME.csv.
# A run fails on a non-zero exit, a timeout (redis-benchmark can hang when the server goes
# away), an error reply from the server, or missing SET/GET rows.
run_bench() {
    local name=$1 port=$2
    shift 2
    local cmd=(redis-benchmark -h 127.0.0.1 -p "$port" -t "set,get" -n "$N" -c "$C" -r 100000 -q --csv "$@")
    record "${cmd[@]}"
    log "$(shquote "${cmd[@]}")"
    local rc=0
    timeout --kill-after=10 "$BENCH_TIMEOUT" "${cmd[@]}" >"$TMP/$name.csv" 2>"$TMP/$name.err" || rc=$?
    if [ "$rc" != 0 ] || grep -qi 'error' "$TMP/$name.csv" "$TMP/$name.err" \
        || ! grep -q '^"SET"' "$TMP/$name.csv" || ! grep -q '^"GET"' "$TMP/$name.csv"; then
        echo "FAILED: $name (exit $rc)" >&2
        cat "$TMP/$name.csv" "$TMP/$name.err" >&2
        failed=1
    fi
}

for mode in plain pipelined; do
    extra=()
    [ "$mode" = pipelined ] && extra=(-P "$PIPELINE")
    run_bench "raftkv-$mode" "$TARGET_PORT" "${extra[@]}"
    run_bench "redis-$mode" "$REDIS_PORT" "${extra[@]}"
done

# field FILE TEST COLUMN: one value of redis-benchmark's CSV
# ("test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms").
field() {
    awk -F, -v t="$2" -v col="$3" '
        NR == 1 { for (i = 1; i <= NF; i++) { h = $i; gsub(/"/, "", h); idx[h] = i }; next }
        { name = $1; gsub(/"/, "", name) }
        name == t && (col in idx) { v = $(idx[col]); gsub(/"/, "", v); print v; exit }
    ' "$1" 2>/dev/null || true
}

target_role=$(redis-cli -p "$TARGET_PORT" INFO raft 2>/dev/null | tr -d '\r' | sed -n 's/^raft_role://p' || true)
echo
echo "raftkv: 3 nodes, target port $TARGET_PORT (Raft role at the end: ${target_role:-unknown}; a follower forwards writes to the leader); redis-server: appendonly yes, appendfsync always"
echo "N=$N C=$C keyspace=100000; $(redis-benchmark --version 2>/dev/null || true); $(nproc) cores;" \
     "raftkv $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo '+dirty')"
echo
printf '| %-12s | %14s | %14s | %6s | %10s | %10s | %10s | %10s |\n' \
    test "raftkv req/s" "redis req/s" ratio "raftkv p50" "raftkv p99" "redis p50" "redis p99"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|\n' -------------- ---------------: ---------------: -------: \
    -----------: -----------: -----------: -----------:
for mode in plain pipelined; do
    for t in SET GET; do
        label=$t
        [ "$mode" = pipelined ] && label="$t -P $PIPELINE"
        k="$TMP/raftkv-$mode.csv"
        r="$TMP/redis-$mode.csv"
        k_rps=$(field "$k" "$t" rps); r_rps=$(field "$r" "$t" rps)
        ratio=$(awk -v a="$k_rps" -v b="$r_rps" 'BEGIN { if (a != "" && b + 0 > 0) printf "%.2f", a / b; else print "-" }')
        printf '| %-12s | %14s | %14s | %6s | %10s | %10s | %10s | %10s |\n' "$label" \
            "${k_rps:-FAILED}" "${r_rps:-FAILED}" "$ratio" \
            "$(field "$k" "$t" p50_latency_ms)" "$(field "$k" "$t" p99_latency_ms)" \
            "$(field "$r" "$t" p50_latency_ms)" "$(field "$r" "$t" p99_latency_ms)"
    done
done
echo
echo "ratio = raftkv req/s / redis req/s; latencies in ms."
echo
echo "Commands:"
for c in "${commands[@]}"; do echo "  $c"; done

if [ "$failed" != 0 ]; then
    echo "some benchmark runs failed" >&2
    exit 1
fi
