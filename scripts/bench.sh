#!/usr/bin/env bash
# Benchmarks a 3-node raftkv cluster against two redis-servers run side by side in the same
# run: one with the same durability (appendonly, appendfsync always) and one with no
# persistence, with redis-benchmark SET and GET, plain and pipelined, ROUNDS rounds
# interleaved (raftkv, redis always, redis none, per test), reporting medians. Around every
# run it samples each server's CPU time and context switches (/proc/<pid>/stat and
# /proc/<pid>/task/*/status) and prints them per request: for raftkv on the leader and on
# the followers, for redis on its one process.
#
# Environment:
#   N=100000 C=50            requests and clients per redis-benchmark run
#   ROUNDS=3                 rounds of every (test, server) run; medians are reported
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

# A free port for a redis-server, never Redis's default 6379 (a system redis-server may own it).
free_redis_port() {
    local p
    for _ in $(seq 1 50); do
        # Below the ephemeral range (32768+), where outgoing connections could hold the port.
        p=$((20000 + RANDOM % 12000))
        if [ "$p" != 6379 ] && [ "$p" != "${REDIS_PORT:-}" ] \
            && [[ ",$RAFTKV_PORTS,$RAFT_PORTS," != *",$p,"* ]] && ! listening "$p"; then
            echo "$p"
            return
        fi
    done
    echo "no free port found for redis-server" >&2
    exit 1
}
REDIS_PORT=$(free_redis_port)
REDIS_NONE_PORT=$(free_redis_port)
ROUNDS="${ROUNDS:-3}"

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

mkdir -p "$TMP/redis" "$TMP/redis-none"
cmd=(redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --appendonly yes --appendfsync always
     --save '' --dir "$TMP/redis")
record "${cmd[@]}"
"${cmd[@]}" >"$TMP/redis-server.log" 2>&1 &
pids+=($!)
REDIS_PID=$!
cmd=(redis-server --port "$REDIS_NONE_PORT" --bind 127.0.0.1 --appendonly no --save ''
     --dir "$TMP/redis-none")
record "${cmd[@]}"
"${cmd[@]}" >"$TMP/redis-none.log" 2>&1 &
pids+=($!)
REDIS_NONE_PID=$!

# Wait until the target node accepts a write (a leader is elected and commits) and both
# redis-servers answer.
log "waiting up to ${WAIT_SECS}s for raftkv on port $TARGET_PORT and redis-server on ports $REDIS_PORT, $REDIS_NONE_PORT"
deadline=$((SECONDS + WAIT_SECS))
ready=0
while [ "$SECONDS" -lt "$deadline" ]; do
    for pid in "${pids[@]}"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "a server exited early (pid $pid); see the logs below" >&2
            exit 1
        fi
    done
    if [ "$(timeout 3 redis-cli -p "$TARGET_PORT" SET __probe 1 2>/dev/null)" = OK ] \
        && [ "$(timeout 3 redis-cli -p "$REDIS_PORT" PING 2>/dev/null)" = PONG ] \
        && [ "$(timeout 3 redis-cli -p "$REDIS_NONE_PORT" PING 2>/dev/null)" = PONG ]; then
        ready=1
        break
    fi
    sleep 0.2
done
[ "$ready" = 1 ] || { echo "timed out waiting for the servers" >&2; exit 1; }

# The raftkv node pids by port (node i is pids[i-1]); the leader's port.
leader_port() {
    local p
    for p in "${kv_ports[@]}"; do
        if redis-cli -p "$p" INFO raft 2>/dev/null | tr -d '\r' | grep -qx 'raft_role:leader'; then
            echo "$p"
            return
        fi
    done
}
if [ "$want_leader" = 1 ]; then
    TARGET_PORT=$(leader_port)
    [ -n "$TARGET_PORT" ] || { echo "no leader found" >&2; exit 1; }
    log "leader is on port $TARGET_PORT"
fi

# sample PID: "<cpu ticks> <context switches>" of a process (all its live threads).
sample() {
    local ticks cs=0 f
    ticks=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0)
    for f in /proc/"$1"/task/*/status; do
        cs=$((cs + $(awk '/^(voluntary|nonvoluntary)_ctxt_switches/ { s += $2 } END { print s + 0 }' "$f" 2>/dev/null || echo 0)))
    done
    echo "$ticks $cs"
}
HZ=$(getconf CLK_TCK)

# per_request BEFORE AFTER REQUESTS: "<CPU us per request> <context switches per request>".
per_request() {
    awk -v b="$1" -v a="$2" -v n="$3" -v hz="$HZ" 'BEGIN {
        split(b, x, " "); split(a, y, " ");
        printf "%.2f %.3f", (y[1] - x[1]) * 1e6 / hz / n, (y[2] - x[2]) / n }'
}

# run_bench NAME PORT TEST PIDS [EXTRA ARGS...]: one redis-benchmark run of TEST (set or get);
# its CSV goes to $TMP/NAME.csv, and the per-request CPU and context switches of each pid in
# the comma-separated PIDS to $TMP/NAME.cost (one line per pid). A run fails on a non-zero
# exit, a timeout (redis-benchmark can hang when the server goes away), an error reply from
# the server, or a missing row.
run_bench() {
    local name=$1 port=$2 test=$3 pidlist=$4
    shift 4
    local cmd=(redis-benchmark -h 127.0.0.1 -p "$port" -t "$test" -n "$N" -c "$C" -r 100000 -q --csv "$@")
    record "${cmd[@]}"
    log "$name: $(shquote "${cmd[@]}")"
    local rc=0 p before=() i=0
    IFS=, read -r -a watched <<<"$pidlist"
    for p in "${watched[@]}"; do before+=("$(sample "$p")"); done
    timeout --kill-after=10 "$BENCH_TIMEOUT" "${cmd[@]}" >"$TMP/$name.csv" 2>"$TMP/$name.err" || rc=$?
    : >"$TMP/$name.cost"
    for p in "${watched[@]}"; do
        per_request "${before[$i]}" "$(sample "$p")" "$N" >>"$TMP/$name.cost"
        echo >>"$TMP/$name.cost"
        i=$((i + 1))
    done
    local row
    row=$(echo "$test" | tr '[:lower:]' '[:upper:]')
    if [ "$rc" != 0 ] || grep -qi 'error' "$TMP/$name.csv" "$TMP/$name.err" \
        || ! grep -q "^\"$row\"" "$TMP/$name.csv"; then
        echo "FAILED: $name (exit $rc)" >&2
        cat "$TMP/$name.csv" "$TMP/$name.err" >&2
        failed=1
    fi
}

# The raftkv pids: the target node first, then the others.
target_pid=""
other_pids=()
for i in "${!kv_ports[@]}"; do
    if [ "${kv_ports[$i]}" = "$TARGET_PORT" ]; then
        target_pid=${pids[$i]}
    else
        other_pids+=("${pids[$i]}")
    fi
done
kv_pids="$target_pid$(printf ',%s' "${other_pids[@]}")"

modes=(plain pipelined)
tests=(set get)
for round in $(seq 1 "$ROUNDS"); do
    for mode in "${modes[@]}"; do
        extra=()
        [ "$mode" = pipelined ] && extra=(-P "$PIPELINE")
        for t in "${tests[@]}"; do
            run_bench "raftkv-$mode-$t-$round" "$TARGET_PORT" "$t" "$kv_pids" "${extra[@]}"
            run_bench "always-$mode-$t-$round" "$REDIS_PORT" "$t" "$REDIS_PID" "${extra[@]}"
            run_bench "none-$mode-$t-$round" "$REDIS_NONE_PORT" "$t" "$REDIS_NONE_PID" "${extra[@]}"
        done
    done
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

# median V...: the middle value (the lower middle for an even count); "-" when none.
median() {
    printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "-" }'
}

# med SERVER MODE TEST COLUMN: median over rounds of one CSV column.
med() {
    local vals=() r row
    row=$(echo "$3" | tr '[:lower:]' '[:upper:]')
    for r in $(seq 1 "$ROUNDS"); do vals+=("$(field "$TMP/$1-$2-$3-$r.csv" "$row" "$4")"); done
    median "${vals[@]}"
}

# cost SERVER MODE TEST LINES FIELD: median over rounds of the mean of FIELD (1 = CPU us,
# 2 = context switches, per request) over the pids on lines LINES ("1" or "2-3") of .cost.
cost() {
    local vals=() r
    for r in $(seq 1 "$ROUNDS"); do
        vals+=("$(awk -v lines="$4" -v f="$5" 'BEGIN { split(lines, l, "-"); lo = l[1]; hi = (l[2] == "" ? l[1] : l[2]) }
            NR >= lo && NR <= hi { s += $f; n++ } END { if (n) printf "%.3f", s / n }' "$TMP/$1-$2-$3-$r.cost")")
    done
    median "${vals[@]}"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }'; }

target_role=$(redis-cli -p "$TARGET_PORT" INFO raft 2>/dev/null | tr -d '\r' | sed -n 's/^raft_role://p' || true)
others="2-${#kv_ports[@]}"
echo
echo "raftkv: ${#kv_ports[@]} nodes, target port $TARGET_PORT (Raft role at the end: ${target_role:-unknown}; a follower forwards writes to the leader)."
echo "redis always: appendonly yes, appendfsync always; redis none: no persistence. Medians of $ROUNDS interleaved rounds."
echo "N=$N C=$C keyspace=100000; $(redis-benchmark --version 2>/dev/null || true); $(nproc) cores;" \
     "raftkv $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo '+dirty')"
echo
printf '| %-9s | %9s | %9s | %5s | %9s | %5s | %7s | %7s | %7s |\n' \
    test raftkv "redis alw" ratio "redis none" ratio "kv p99" "alw p99" "p99 x"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' ----------- ----------: ----------: ------: ----------: ------: --------: --------: --------:
for mode in "${modes[@]}"; do
    for t in "${tests[@]}"; do
        label=$(echo "$t" | tr '[:lower:]' '[:upper:]')
        [ "$mode" = pipelined ] && label="$label -P$PIPELINE"
        k=$(med raftkv "$mode" "$t" rps); a=$(med always "$mode" "$t" rps); z=$(med none "$mode" "$t" rps)
        kp=$(med raftkv "$mode" "$t" p99_latency_ms); ap=$(med always "$mode" "$t" p99_latency_ms)
        printf '| %-9s | %9s | %9s | %5s | %9s | %5s | %7s | %7s | %7s |\n' "$label" "$k" "$a" "$(ratio "$k" "$a")" \
            "$z" "$(ratio "$k" "$z")" "$kp" "$ap" "$(ratio "$kp" "$ap")"
    done
done
echo
echo "Per request (CPU us of the process, context switches of all its threads; medians of the rounds):"
echo
printf '| %-9s | %10s | %10s | %10s | %10s | %10s | %10s |\n' test "target cpu" "target cs" "others cpu" "others cs" "redis cpu" "redis cs"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' ----------- -----------: -----------: -----------: -----------: -----------: -----------:
for mode in "${modes[@]}"; do
    for t in "${tests[@]}"; do
        label=$(echo "$t" | tr '[:lower:]' '[:upper:]')
        [ "$mode" = pipelined ] && label="$label -P$PIPELINE"
        printf '| %-9s | %10s | %10s | %10s | %10s | %10s | %10s |\n' "$label" \
            "$(cost raftkv "$mode" "$t" 1 1)" "$(cost raftkv "$mode" "$t" 1 2)" \
            "$(cost raftkv "$mode" "$t" "$others" 1)" "$(cost raftkv "$mode" "$t" "$others" 2)" \
            "$(cost always "$mode" "$t" 1 1)" "$(cost always "$mode" "$t" 1 2)"
    done
done
echo
echo "ratio = raftkv req/s / redis req/s; p99 in ms, 'p99 x' = raftkv p99 / redis-always p99."
echo "target = the raftkv node redis-benchmark talks to; others = mean of the other nodes; redis = the appendfsync-always server."
echo
echo "Commands:"
for c in "${commands[@]}"; do echo "  $c"; done

if [ "$failed" != 0 ]; then
    echo "some benchmark runs failed" >&2
    exit 1
fi
