#!/usr/bin/env bash
# Benchmarks raftkv's collection commands against two redis-servers in the same run (one with
# appendonly + appendfsync always, one with no persistence), on a 3-node raftkv cluster with
# `--groups 1` that redis-benchmark reaches through TARGET_PORT (default: its leader).
#
# Part 1: redis-benchmark's collection tests (LPUSH RPUSH LPOP RPOP SADD HSET SPOP ZADD ZPOPMIN
# LRANGE_100 LRANGE_600 MSET), each its own `-t <test>` run, ROUNDS rounds interleaved per round
# and test (raftkv, redis always, redis none), medians, ratios to both redis-servers (the
# issue's target: >= 0.3 of redis always for each), CPU us per request.
# These tests hit one key each (mylist, myset, myhash, myzset; MSET 10 random keys), in
# redis-benchmark's order, so every server sees the same sequence: pops follow the pushes.
#
# Part 2, growth curves: a hash, a list and a sorted set grow from 0 to GROWTH_TOTAL elements,
# each on ONE key, in GROWTH_SLICE-element slices of pipelined writes:
#   HSET growth:hash f:<random> v   RPUSH growth:list e:<random>   ZADD growth:zset <random> m:<random>
# (redis-benchmark -r 1000000000 -P GROWTH_PIPELINE -c GROWTH_C, random 12-digit numbers, so a
# few hundred of the million hash fields / zset members repeat: the collections end slightly
# below GROWTH_TOTAL). Slices are interleaved (slice k of every collection on raftkv and redis
# always, then slice k+1), and the script prints ops/s and CPU us per op of every slice: the
# curve must stay flat as n grows; it compares the last three slices with the first three.
#
# Before every run the script waits until the raftkv nodes use less than SETTLE_CPU% of a core
# (at most SETTLE_SECS), so a run never shares the machine with the tail of the previous one.
#
# Environment:
#   N=30000 C=50             requests and clients per part-1 run (keyspace -r 100000)
#   TESTS=lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange_100,lrange_600,mset
#   ROUNDS=3                 part-1 rounds; medians are reported
#   TARGET_RATIO=0.3         part 1's target (raftkv / redis always), per test
#   GROWTH=1                 0 skips part 2
#   GROWTH_TOTAL=1000000 GROWTH_SLICE=100000   part 2: final size and slice of each collection
#   GROWTH_PIPELINE=16 GROWTH_C=50             part 2: pipeline depth and clients
#   RAFTKV_PORTS=63791,63792,63793   RAFT_PORTS=12379,22379,32379   the nodes' ports
#   TARGET_PORT=leader       the node redis-benchmark talks to (one of RAFTKV_PORTS, or `leader`:
#                            whichever node leads, looked up again before every run)
#   SETTLE_CPU=20 SETTLE_SECS=10 LOG_LEVEL=warning WAIT_SECS=60 BENCH_TIMEOUT=900 KEEP_TMP=1 NO_BUILD=1
#   RAFTKV_BIN=path          as in scripts/bench.sh
# Exits non-zero if any run failed. Every server it started is killed on exit.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=scripts/bench-lib.sh
. "$REPO_ROOT/scripts/bench-lib.sh"

N="${N:-30000}"
C="${C:-50}"
TESTS="${TESTS:-lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange_100,lrange_600,mset}"
TARGET_RATIO="${TARGET_RATIO:-0.3}"
GROWTH="${GROWTH:-1}"
GROWTH_TOTAL="${GROWTH_TOTAL:-1000000}"
GROWTH_SLICE="${GROWTH_SLICE:-100000}"
GROWTH_PIPELINE="${GROWTH_PIPELINE:-16}"
GROWTH_C="${GROWTH_C:-50}"
RAFTKV_PORTS="${RAFTKV_PORTS:-63791,63792,63793}"
RAFT_PORTS="${RAFT_PORTS:-12379,22379,32379}"
TARGET_PORT="${TARGET_PORT:-leader}"

if [ "$TARGET_PORT" != leader ] && [[ ",$RAFTKV_PORTS," != *",$TARGET_PORT,"* ]]; then
    echo "TARGET_PORT=$TARGET_PORT is not one of RAFTKV_PORTS=$RAFTKV_PORTS" >&2
    exit 2
fi
if [ "$GROWTH" = 1 ] && { [ "$GROWTH_SLICE" -le 0 ] || [ $((GROWTH_TOTAL % GROWTH_SLICE)) != 0 ]; }; then
    echo "GROWTH_TOTAL=$GROWTH_TOTAL must be a multiple of GROWTH_SLICE=$GROWTH_SLICE" >&2
    exit 2
fi
IFS=, read -r -a tests <<<"$TESTS"

bench_require
start_cluster kv 1 forward "$RAFTKV_PORTS" "$RAFT_PORTS"
start_redis always always
start_redis none none
wait_ready kv

want_leader=0
if [ "$TARGET_PORT" = leader ]; then
    want_leader=1
    TARGET_PORT=$(leader_port kv)
    [ -n "$TARGET_PORT" ] || { echo "no leader found" >&2; exit 1; }
    log "the leader is on port $TARGET_PORT"
fi

# bench_on SERVER NAME ROW REQUESTS ARGS...: run_bench against raftkv's target (kv) or a
# redis-server, after the cluster settled.
bench_on() {
    local s=$1 name=$2 row=$3 reqs=$4
    shift 4
    settle "${CL_PIDS[kv]}"
    if [ "$s" = kv ]; then
        [ "$want_leader" = 1 ] && follow_leader kv TARGET_PORT
        IDLE_PIDS="" STATS_PORTS=$RAFTKV_PORTS
        run_bench "$name" "$row" "$reqs" "$(pids_target_first kv "$TARGET_PORT")" \
            -h 127.0.0.1 -p "$TARGET_PORT" "$@"
    else
        IDLE_PIDS=${CL_PIDS[kv]} STATS_PORTS=""
        run_bench "$name" "$row" "$reqs" "${RS_PID[$s]}" -h 127.0.0.1 -p "${RS_PORT[$s]}" "$@"
    fi
}

upper() { echo "$1" | tr '[:lower:]' '[:upper:]'; }

FSYNC_START=$(fsync_probe)
servers=(kv always none)
for round in $(seq 1 "$ROUNDS"); do
    for t in "${tests[@]}"; do
        for s in "${servers[@]}"; do
            # An LRANGE test first runs N LPUSHes (redis-benchmark's "LPUSH (needed to
            # benchmark LRANGE)"): the CPU per request is over both.
            reqs=$N
            [[ "$t" == lrange* ]] && reqs=$((2 * N))
            bench_on "$s" "$s-$t-$round" "$(upper "$t")" "$reqs" -t "$t" -n "$N" -c "$C" -r 100000
        done
    done
done

# Part 2: slices of pipelined writes to one growing key per type.
types=(hash list zset)
declare -A GROW_CMD=(
    [hash]="HSET growth:hash f:__rand_int__ v"
    [list]="RPUSH growth:list e:__rand_int__"
    [zset]="ZADD growth:zset __rand_int__ m:__rand_int__"
)
slices=$((GROWTH_TOTAL / GROWTH_SLICE))
grow_servers=(kv always)
if [ "$GROWTH" = 1 ]; then
    for k in $(seq 1 "$slices"); do
        for ty in "${types[@]}"; do
            for s in "${grow_servers[@]}"; do
                read -r -a gcmd <<<"${GROW_CMD[$ty]}"
                bench_on "$s" "grow-$s-$ty-$k" "${GROW_CMD[$ty]}" "$GROWTH_SLICE" \
                    -n "$GROWTH_SLICE" -c "$GROWTH_C" -P "$GROWTH_PIPELINE" -r 1000000000 "${gcmd[@]}"
            done
        done
    done
fi

FSYNC_END=$(fsync_probe)

# med SERVER TEST COLUMN: median over rounds of one CSV column.
med() {
    local vals=() r
    for r in $(seq 1 "$ROUNDS"); do vals+=("$(field "$TMP/$1-$2-$r.csv" "$(upper "$2")" "$3")"); done
    median "${vals[@]}"
}
# cost SERVER TEST LINES [sum]: median over rounds of the mean (or sum) of CPU us per request
# over lines LINES of .cost.
cost() {
    local vals=() r
    for r in $(seq 1 "$ROUNDS"); do
        if [ "${4:-}" = sum ]; then
            vals+=("$(sum_lines "$TMP/$1-$2-$r.cost" "$3" 1)")
        else
            vals+=("$(mean_lines "$TMP/$1-$2-$r.cost" "$3" 1)")
        fi
    done
    median "${vals[@]}"
}
row_out() { local c out="|"; for c in "$@"; do out="$out $c |"; done; echo "$out"; }
sep_out() { local out="|-----------|" i; for ((i = 1; i < $1; i++)); do out="$out----------:|"; done; echo "$out"; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { if (r == "-") print "?"; else if (r + 0 >= t + 0) print "met"; else printf "missed by %.0f%%", (1 - r / t) * 100 }'; }

target_role=$(redis-cli -p "$TARGET_PORT" INFO raft 2>/dev/null | tr -d '\r' | sed -n 's/^raft_role://p' || true)
echo
echo "raftkv: 3 nodes, --groups 1, target port $TARGET_PORT (Raft role at the end: ${target_role:-unknown})."
echo "redis always: appendonly yes, appendfsync always; redis none: no persistence."
echo "Part 1: N=$N C=$C -r 100000, medians of $ROUNDS interleaved rounds; $(version_line)"
echo "fsync of 4 KiB (dd oflag=dsync): $FSYNC_START ms at the start, $FSYNC_END ms at the end."
echo
row_out test "redis alw" "redis none" raftkv "/alw" "/none" "target >= $TARGET_RATIO" "kv p99" "alw p99" "kv cpu" "all kv cpu" "alw cpu"
sep_out 12
missed=()
for t in "${tests[@]}"; do
    a=$(med always "$t" rps); z=$(med none "$t" rps); k=$(med kv "$t" rps)
    r=$(ratio "$k" "$a"); v=$(verdict "$r" "$TARGET_RATIO")
    [ "$v" = met ] || missed+=("$(upper "$t") $r ($v)")
    row_out "$(upper "$t")" "$a" "$z" "$k" "$r" "$(ratio "$k" "$z")" "$v" \
        "$(med kv "$t" p99_latency_ms)" "$(med always "$t" p99_latency_ms)" \
        "$(cost kv "$t" 1)" "$(cost kv "$t" 1-9 sum)" "$(cost always "$t" 1)"
done
echo
echo "p99 in ms; cpu = CPU us per request: kv = the target node, all kv = the sum over the three nodes, alw = redis always"
echo "(LRANGE rows: per request of the whole run, its N prefill LPUSHes and the N LRANGEs)."
if [ "${#missed[@]}" -gt 0 ]; then
    echo "Missed the >= $TARGET_RATIO target: ${missed[*]}."
else
    echo "Every test met the >= $TARGET_RATIO target."
fi

if [ "$GROWTH" = 1 ]; then
    echo
    echo "Part 2: growth of one hash, one list and one sorted set to $GROWTH_TOTAL elements, slices of $GROWTH_SLICE pipelined writes" \
         "(-P $GROWTH_PIPELINE -c $GROWTH_C); ops/s and CPU us per op of each slice (raftkv: sum over the three nodes)."
    echo
    hdr=(elements)
    for ty in "${types[@]}"; do hdr+=("kv $ty/s" "alw $ty/s" "kv $ty us" "alw $ty us"); done
    row_out "${hdr[@]}"
    sep_out "${#hdr[@]}"
    for k in $(seq 1 "$slices"); do
        cells=("$(((k - 1) * GROWTH_SLICE))-$((k * GROWTH_SLICE))")
        for ty in "${types[@]}"; do
            for s in "${grow_servers[@]}"; do
                cells+=("$(field "$TMP/grow-$s-$ty-$k.csv" "${GROW_CMD[$ty]}" rps | awk '{ printf "%.0f", $1 }')")
            done
            cells+=("$(sum_lines "$TMP/grow-kv-$ty-$k.cost" 1-9 1)" "$(sum_lines "$TMP/grow-always-$ty-$k.cost" 1 1)")
        done
        row_out "${cells[@]}"
    done
    # ends SERVER TYPE WHAT: "<median of the last 3 slices> / <median of the first 3>" of ops/s
    # (WHAT = rps) or CPU us per op (WHAT = cpu).
    ends() {
        local k a=() b=() v
        for k in $(seq 1 "$slices"); do
            if [ "$3" = rps ]; then
                v=$(field "$TMP/grow-$1-$2-$k.csv" "${GROW_CMD[$2]}" rps)
            elif [ "$1" = kv ]; then
                v=$(sum_lines "$TMP/grow-kv-$2-$k.cost" 1-9 1)
            else
                v=$(sum_lines "$TMP/grow-$1-$2-$k.cost" 1 1)
            fi
            [ "$k" -le 3 ] && a+=("$v")
            [ "$k" -gt $((slices - 3)) ] && b+=("$v")
        done
        ratio "$(median "${b[@]}")" "$(median "${a[@]}")"
    }
    echo
    echo "Last 3 slices / first 3 slices (medians): flat is 1.00 (ops/s falls below 1 when a write's cost grows with n;"
    echo "CPU per op rises above 1). Final sizes (HLEN / LLEN / ZCARD):"
    echo
    row_out type "kv ops/s" "alw ops/s" "kv cpu/op" "alw cpu/op" "kv size" "alw size"
    sep_out 7
    sizecmd=(HLEN LLEN ZCARD)
    for i in "${!types[@]}"; do
        ty=${types[$i]}
        cmdname=${sizecmd[$i]}
        row_out "$ty" "$(ends kv "$ty" rps)" "$(ends always "$ty" rps)" "$(ends kv "$ty" cpu)" "$(ends always "$ty" cpu)" \
            "$(redis-cli -p "$TARGET_PORT" "$cmdname" "growth:$ty" 2>/dev/null)" \
            "$(redis-cli -p "${RS_PORT[always]}" "$cmdname" "growth:$ty" 2>/dev/null)"
    done
fi
echo
[ "$want_leader" = 1 ] && echo "The leader moved $LEADER_MOVES times between runs (the target followed it)."
# (with GROWTH=0 there are no grow-kv files: cat fails, which pipefail would make fatal)
fwd_runs=$({ cat "$TMP"/kv-*.stats "$TMP"/grow-kv-*.stats 2>/dev/null || true; } | awk '$2 > 0' | wc -l)
echo "raftkv runs with forwarded writes (the target was not the leader for part of the run): $fwd_runs;" \
     "stepped-down leaders in the node logs: $(cat "$TMP"/kv-node*.log | grep -c 'stepped down' || true)."
echo "Before every run the script waited for the raftkv nodes to use < ${SETTLE_CPU:-20}% of a core (at most ${SETTLE_SECS:-10} s): $SETTLE_TIMEOUTS waits timed out."
echo
print_commands

if [ "$failed" != 0 ]; then
    echo "some benchmark runs failed" >&2
    exit 1
fi
