#!/usr/bin/env bash
# Benchmarks raftkv, single-group and sharded, against two redis-servers in the same run: one
# with the same durability (appendonly, appendfsync always) and one with no persistence. Three
# 3-node raftkv clusters ("configs"):
#   kv1   --groups 1: one Raft group owns every slot; redis-benchmark talks to TARGET_PORT
#         (default: its leader)
#   kv3   --groups 3 (default forwarding): plain redis-benchmark against node 1, which leads one
#         group and forwards the writes of the others' slots to their leaders
#   kv3c  --groups 3 --redirect moved: `redis-benchmark --cluster` against node 1, which reads
#         CLUSTER NODES and spreads its clients over the three masters (one per group)
# redis-benchmark SET and GET, plain and pipelined (-P), each its own run, ROUNDS rounds
# interleaved per round and test (kv1, kv3, kv3c, redis always, redis none), medians. Around
# every run it samples each server's CPU time and context switches (/proc/<pid>/stat and
# /proc/<pid>/task/*/status) and prints them per request: for kv1 on the target node and on
# the others, for kv3 / kv3c the mean of the three nodes (every node leads a group), for redis
# on its one process.
#
# The three clusters run at the same time on distinct ports rather than one after another:
# that is what lets every round measure every config under the same machine load (this is a
# shared 2-core VM, where load moves figures by tens of percent within minutes), and an idle
# cluster costs little (quiet groups are meant to hibernate: no ticks, no heartbeats, one
# keepalive per node per tick; at 92e624b they never do, and six idle nodes use ~5% of a
# core). The script measures that cost: the CPU the idle raftkv nodes used during each run is
# printed as a share of a core, with each node's count of hibernating groups at the end. Before
# every run it waits until all raftkv nodes together use < SETTLE_CPU% of a core, so no run
# shares the machine with the tail of the run before (RocksDB flushes, followers applying).
# It also probes the disk's fsync latency (dd oflag=dsync) at the start and at the end, and
# prints per-round ratios beside the ratios of the medians.
# It also reads INFO stats around each raftkv run: forwarded writes (kv3) and -MOVED replies
# (redis-benchmark --cluster counts a -MOVED reply as a finished request and retries nothing,
# so a run that got any fails).
#
# Environment:
#   N=100000 C=50            requests and clients per redis-benchmark run
#   ROUNDS=3                 rounds of every (test, server) run; medians are reported
#   PIPELINE=16              depth of the pipelined runs (-P)
#   CONFIGS=kv1,kv3,kv3c     which raftkv clusters to start and measure (any of them, in order)
#                            (kv1f: kv1's cluster again, redis-benchmark on one of its followers)
#   RAFTKV_ARGS="..."        extra flags for every raftkv node (e.g. "--io-threads 1")
#   SHARDED_GROUPS=3         --groups of kv3 and kv3c
#   RAFTKV_PORTS=63791,63792,63793   kv1: Redis ports of the nodes (as in Procfile)
#   RAFT_PORTS=12379,22379,32379     kv1: Raft ports of the nodes (as in Procfile)
#   TARGET_PORT=leader       which kv1 node redis-benchmark talks to: one of RAFTKV_PORTS, or
#                            `leader`: whichever node leads, looked up again before every run
#   KV3_PORTS=63801,63802,63803  KV3_RAFT_PORTS=12381,22381,32381    kv3's ports
#   KV3C_PORTS=63811,63812,63813 KV3C_RAFT_PORTS=12391,22391,32391   kv3c's ports
#   KV3_TARGET_PORT=63801    which kv3 node plain redis-benchmark talks to (default its node 1)
#   SETTLE_CPU=20 SETTLE_SECS=10   before every run, wait at most SETTLE_SECS until all raftkv
#                            nodes together use less than SETTLE_CPU% of one core
#   LOG_LEVEL=warning        raftkv --log-level
#   WAIT_SECS=60             how long to wait for the clusters (a leader in every group, the
#                            leadership spread, a SET through every node)
#   BENCH_TIMEOUT=900        limit of one redis-benchmark run (seconds)
#   KEEP_TMP=1               keep the temp dir (data, logs, CSVs) after the run
#   NO_BUILD=1               skip scripts/setup.sh (deps + release build)
#   RAFTKV_BIN=path          binary to run (default target/release/raftkv)
# Exits non-zero if any run failed. Every server it started is killed on exit.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=scripts/bench-lib.sh
. "$REPO_ROOT/scripts/bench-lib.sh"

N="${N:-100000}"
C="${C:-50}"
PIPELINE="${PIPELINE:-16}"
CONFIGS="${CONFIGS:-kv1,kv3,kv3c}"
SHARDED_GROUPS="${SHARDED_GROUPS:-3}"
RAFTKV_PORTS="${RAFTKV_PORTS:-63791,63792,63793}"
RAFT_PORTS="${RAFT_PORTS:-12379,22379,32379}"
TARGET_PORT="${TARGET_PORT:-leader}"
KV3_PORTS="${KV3_PORTS:-63801,63802,63803}"
KV3_RAFT_PORTS="${KV3_RAFT_PORTS:-12381,22381,32381}"
KV3C_PORTS="${KV3C_PORTS:-63811,63812,63813}"
KV3C_RAFT_PORTS="${KV3C_RAFT_PORTS:-12391,22391,32391}"
KV3_TARGET_PORT="${KV3_TARGET_PORT:-${KV3_PORTS%%,*}}"

IFS=, read -r -a configs <<<"$CONFIGS"
for cfg in "${configs[@]}"; do
    case "$cfg" in
        kv1 | kv1f | kv3 | kv3c) ;;
        *) echo "CONFIGS: unknown config '$cfg' (kv1, kv1f, kv3, kv3c)" >&2; exit 2 ;;
    esac
done
has() { [[ ",$CONFIGS," == *",$1,"* ]]; }
if has kv1f && ! has kv1; then
    echo "CONFIGS: kv1f (kv1's cluster through a follower) needs kv1" >&2
    exit 2
fi
if has kv1 && [ "$TARGET_PORT" != leader ] && [[ ",$RAFTKV_PORTS," != *",$TARGET_PORT,"* ]]; then
    echo "TARGET_PORT=$TARGET_PORT is not one of RAFTKV_PORTS=$RAFTKV_PORTS" >&2
    exit 2
fi
if has kv3 && [[ ",$KV3_PORTS," != *",$KV3_TARGET_PORT,"* ]]; then
    echo "KV3_TARGET_PORT=$KV3_TARGET_PORT is not one of KV3_PORTS=$KV3_PORTS" >&2
    exit 2
fi

bench_require

has kv1 && start_cluster kv1 1 forward "$RAFTKV_PORTS" "$RAFT_PORTS"
has kv3 && start_cluster kv3 "$SHARDED_GROUPS" forward "$KV3_PORTS" "$KV3_RAFT_PORTS"
has kv3c && start_cluster kv3c "$SHARDED_GROUPS" moved "$KV3C_PORTS" "$KV3C_RAFT_PORTS"
start_redis always always
start_redis none none
clusters=()
for cfg in "${configs[@]}"; do [ "$cfg" = kv1f ] || clusters+=("$cfg"); done
wait_ready "${clusters[@]}"
if has kv1f; then
    CL_PORTS[kv1f]=${CL_PORTS[kv1]} CL_PIDS[kv1f]=${CL_PIDS[kv1]} CL_GROUPS[kv1f]=${CL_GROUPS[kv1]}
fi

# follower_port NAME: a port of the cluster's nodes that is not its leader's.
follower_port() {
    local ports p leader
    leader=$(leader_port "$1")
    IFS=, read -r -a ports <<<"${CL_PORTS[$1]}"
    for p in "${ports[@]}"; do
        if [ "$p" != "$leader" ]; then echo "$p"; return; fi
    done
}

# Per config: the port redis-benchmark is given, its extra arguments, and the node pids with
# the target node first.
declare -A TARGET ARGS PIDS_OF LEADERS_AT_START
for cfg in "${configs[@]}"; do
    IFS=, read -r -a ports <<<"${CL_PORTS[$cfg]}"
    case "$cfg" in
        kv1)
            t=$TARGET_PORT
            if [ "$t" = leader ]; then
                t=$(leader_port kv1)
                [ -n "$t" ] || { echo "kv1: no leader found" >&2; exit 1; }
                log "kv1: the leader is on port $t"
            fi
            ARGS[$cfg]="" ;;
        kv1f) t=$(follower_port kv1f); ARGS[$cfg]="" ;;
        kv3) t=$KV3_TARGET_PORT; ARGS[$cfg]="" ;;
        kv3c) t=${ports[0]}; ARGS[$cfg]="--cluster" ;;
    esac
    TARGET[$cfg]=$t
    PIDS_OF[$cfg]=$(pids_target_first "$cfg" "$t")
    LEADERS_AT_START[$cfg]=$(group_leaders "$t")
done
all_kv_pids=$(for c in "${clusters[@]}"; do echo "${CL_PIDS[$c]}"; done | paste -sd,)

# others_than CFG: the raftkv pids of the other configs (idle while CFG runs).
others_than() {
    local c out=""
    for c in "${clusters[@]}"; do
        [ "$c" = "$1" ] || [ "$c-$1" = kv1-kv1f ] || out="$out,${CL_PIDS[$c]}"
    done
    echo "${out#,}"
}

FSYNC_START=$(fsync_probe)
servers=("${configs[@]}" always none)
modes=(plain pipelined)
tests=(set get)
for round in $(seq 1 "$ROUNDS"); do
    for mode in "${modes[@]}"; do
        extra=()
        [ "$mode" = pipelined ] && extra=(-P "$PIPELINE")
        for t in "${tests[@]}"; do
            row=$(echo "$t" | tr '[:lower:]' '[:upper:]')
            for s in "${servers[@]}"; do
                settle "$all_kv_pids"
                common=(-t "$t" -n "$N" -c "$C" -r 100000 "${extra[@]}")
                if [ "$s" = always ] || [ "$s" = none ]; then
                    IDLE_PIDS=$all_kv_pids STATS_PORTS=""
                    run_bench "$s-$mode-$t-$round" "$row" "$N" "${RS_PID[$s]}" \
                        -h 127.0.0.1 -p "${RS_PORT[$s]}" "${common[@]}"
                else
                    if [ "$s" = kv1 ] && [ "$TARGET_PORT" = leader ]; then
                        kv1_target=${TARGET[kv1]}
                        follow_leader kv1 kv1_target
                        TARGET[kv1]=$kv1_target
                        PIDS_OF[kv1]=$(pids_target_first kv1 "$kv1_target")
                    fi
                    if [ "$s" = kv1f ] && [ "${TARGET[kv1f]}" = "$(leader_port kv1f)" ]; then
                        TARGET[kv1f]=$(follower_port kv1f)
                        log "kv1f: the leader moved onto the target, now port ${TARGET[kv1f]}"
                        PIDS_OF[kv1f]=$(pids_target_first kv1f "${TARGET[kv1f]}")
                    fi
                    IDLE_PIDS=$(others_than "$s") STATS_PORTS=${CL_PORTS[$s]}
                    # shellcheck disable=SC2086 # ARGS is empty or one word
                    run_bench "$s-$mode-$t-$round" "$row" "$N" "${PIDS_OF[$s]}" \
                        ${ARGS[$s]} -h 127.0.0.1 -p "${TARGET[$s]}" "${common[@]}"
                fi
            done
        done
    done
done

FSYNC_END=$(fsync_probe)

# med SERVER MODE TEST COLUMN: median over rounds of one CSV column.
med() {
    local vals=() r row
    row=$(echo "$3" | tr '[:lower:]' '[:upper:]')
    for r in $(seq 1 "$ROUNDS"); do vals+=("$(field "$TMP/$1-$2-$3-$r.csv" "$row" "$4")"); done
    median "${vals[@]}"
}

# cost SERVER MODE TEST LINES FIELD [sum]: median over rounds of the mean (or the sum) of
# FIELD (1 = CPU us, 2 = context switches, per request) over lines LINES ("1", "2-3") of .cost.
cost() {
    local vals=() r
    for r in $(seq 1 "$ROUNDS"); do
        if [ "${6:-}" = sum ]; then
            vals+=("$(sum_lines "$TMP/$1-$2-$3-$r.cost" "$4" "$5")")
        else
            vals+=("$(mean_lines "$TMP/$1-$2-$3-$r.cost" "$4" "$5")")
        fi
    done
    median "${vals[@]}"
}

# rounds A B MODE TEST: the req/s ratio A / B of every round, space-separated.
rounds() {
    local r out=""
    for r in $(seq 1 "$ROUNDS"); do
        out="$out $(ratio "$(field "$TMP/$1-$3-$4-$r.csv" "$(echo "$4" | tr '[:lower:]' '[:upper:]')" rps)" \
            "$(field "$TMP/$2-$3-$4-$r.csv" "$(echo "$4" | tr '[:lower:]' '[:upper:]')" rps)")"
    done
    echo "${out# }"
}

# stat SERVER MODE TEST FIELD: median over rounds of .stats FIELD (1 = MOVED, 2 = forwarded).
stat() {
    local vals=() r
    for r in $(seq 1 "$ROUNDS"); do
        vals+=("$(awk -v f="$4" '{ print $f }' "$TMP/$1-$2-$3-$r.stats" 2>/dev/null || true)")
    done
    median "${vals[@]}"
}

label_of() {
    local l
    l=$(echo "$2" | tr '[:lower:]' '[:upper:]')
    [ "$1" = pipelined ] && l="$l -P$PIPELINE"
    echo "$l"
}

# One Markdown table row / separator from the given cells.
row_out() { local c out="|"; for c in "$@"; do out="$out $c |"; done; echo "$out"; }
sep_out() { local out="|-----------|" i; for ((i = 1; i < $1; i++)); do out="$out----------:|"; done; echo "$out"; }

echo
desc=()
has kv1 && desc+=("kv1 = --groups 1, target port ${TARGET[kv1]} (TARGET_PORT=$TARGET_PORT; Raft role at the end: $(redis-cli -p "${TARGET[kv1]}" INFO raft 2>/dev/null | tr -d '\r' | sed -n 's/^raft_role://p'));")
has kv1f && desc+=("kv1f = kv1's cluster through a follower, port ${TARGET[kv1f]} (role at the end: $(redis-cli -p "${TARGET[kv1f]}" INFO raft 2>/dev/null | tr -d '\r' | sed -n 's/^raft_role://p'));")
has kv3 && desc+=("kv3 = --groups $SHARDED_GROUPS, plain redis-benchmark on port ${TARGET[kv3]} (forwards the writes of the slots it does not lead);")
has kv3c && desc+=("kv3c = --groups $SHARDED_GROUPS --redirect moved, redis-benchmark --cluster -p ${TARGET[kv3c]};")
echo "raftkv, 3 nodes each: ${desc[*]} configs run: $CONFIGS."
echo "redis always: appendonly yes, appendfsync always; redis none: no persistence. Medians of $ROUNDS interleaved rounds."
echo "N=$N C=$C keyspace=100000; $(version_line)"
echo "fsync of 4 KiB (dd oflag=dsync): $FSYNC_START ms at the start, $FSYNC_END ms at the end."
echo
hdr=(test "redis alw" "redis none")
for cfg in "${configs[@]}"; do hdr+=("$cfg" "/alw" "/none"); done
row_out "${hdr[@]}"
sep_out "${#hdr[@]}"
for mode in "${modes[@]}"; do
    for t in "${tests[@]}"; do
        a=$(med always "$mode" "$t" rps); z=$(med none "$mode" "$t" rps)
        cells=("$(label_of "$mode" "$t")" "$a" "$z")
        for cfg in "${configs[@]}"; do
            k=$(med "$cfg" "$mode" "$t" rps)
            cells+=("$k" "$(ratio "$k" "$a")" "$(ratio "$k" "$z")")
        done
        row_out "${cells[@]}"
    done
done
echo
echo "p99 latency (ms) and its ratio to redis always:"
echo
hdr=(test "redis alw")
for cfg in "${configs[@]}"; do hdr+=("$cfg" "x alw"); done
row_out "${hdr[@]}"
sep_out "${#hdr[@]}"
for mode in "${modes[@]}"; do
    for t in "${tests[@]}"; do
        a=$(med always "$mode" "$t" p99_latency_ms)
        cells=("$(label_of "$mode" "$t")" "$a")
        for cfg in "${configs[@]}"; do
            k=$(med "$cfg" "$mode" "$t" p99_latency_ms)
            cells+=("$k" "$(ratio "$k" "$a")")
        done
        row_out "${cells[@]}"
    done
done

if has kv1 && { has kv3 || has kv3c; }; then
    echo
    echo "Sharded / single group (req/s ratio of the medians, and of each round; the issue's targets are on SET):"
    echo
    hdr=(test)
    has kv3c && hdr+=("kv3c / kv1" "per round")
    has kv3 && hdr+=("kv3 / kv1" "per round")
    row_out "${hdr[@]}"
    sep_out "${#hdr[@]}"
    for mode in "${modes[@]}"; do
        for t in "${tests[@]}"; do
            k1=$(med kv1 "$mode" "$t" rps)
            cells=("$(label_of "$mode" "$t")")
            has kv3c && cells+=("$(ratio "$(med kv3c "$mode" "$t" rps)" "$k1")" "$(rounds kv3c kv1 "$mode" "$t")")
            has kv3 && cells+=("$(ratio "$(med kv3 "$mode" "$t" rps)" "$k1")" "$(rounds kv3 kv1 "$mode" "$t")")
            row_out "${cells[@]}"
        done
    done
    echo
    verdict() { awk -v r="$1" -v t="$2" 'BEGIN { if (r == "-") print "?"; else if (r + 0 >= t + 0) print "met"; else printf "missed by %.0f%%", (1 - r / t) * 100 }'; }
    k1=$(med kv1 plain set rps)
    if has kv3c; then
        r=$(ratio "$(med kv3c plain set rps)" "$k1")
        echo "kv3c SET / kv1 SET = $r (target >= 1.3: $(verdict "$r" 1.3))"
    fi
    if has kv3; then
        r=$(ratio "$(med kv3 plain set rps)" "$k1")
        echo "kv3 SET / kv1 SET = $r (target >= 1.0: $(verdict "$r" 1.0))"
    fi
fi

echo
echo "Per request (CPU us of the process, context switches of all its threads; medians of the rounds):"
echo
row_out test server "node cpu" "node cs" "others cpu" "others cs" "all nodes cpu"
sep_out 7
for mode in "${modes[@]}"; do
    for t in "${tests[@]}"; do
        for cfg in "${configs[@]}"; do
            if [ "$cfg" = kv1 ] || [ "$cfg" = kv1f ]; then
                row_out "$(label_of "$mode" "$t")" "$cfg" \
                    "$(cost "$cfg" "$mode" "$t" 1 1)" "$(cost "$cfg" "$mode" "$t" 1 2)" \
                    "$(cost "$cfg" "$mode" "$t" 2-9 1)" "$(cost "$cfg" "$mode" "$t" 2-9 2)" \
                    "$(cost "$cfg" "$mode" "$t" 1-9 1 sum)"
            else
                row_out "$(label_of "$mode" "$t")" "$cfg" \
                    "$(cost "$cfg" "$mode" "$t" 1-9 1)" "$(cost "$cfg" "$mode" "$t" 1-9 2)" "" "" \
                    "$(cost "$cfg" "$mode" "$t" 1-9 1 sum)"
            fi
        done
        row_out "$(label_of "$mode" "$t")" "redis alw" \
            "$(cost always "$mode" "$t" 1 1)" "$(cost always "$mode" "$t" 1 2)" "" "" ""
        row_out "$(label_of "$mode" "$t")" "redis none" \
            "$(cost none "$mode" "$t" 1 1)" "$(cost none "$mode" "$t" 1 2)" "" "" ""
    done
done
echo
echo "node = kv1's target node (its leader with TARGET_PORT=leader; kv1f: the follower), for kv3 / kv3c the mean of the three nodes (each leads"
echo "a group). others = mean of kv1's other nodes (its followers). all nodes cpu = the sum over the cluster's nodes."

# tcost SERVER MODE TEST WHO THREAD FIELD: median over rounds of one thread's figure in .threads
# (WHO 1 = the target node, 2 = the next one; FIELD 3 = CPU us, 4 = context switches).
tcost() {
    local vals=() r
    for r in $(seq 1 "$ROUNDS"); do
        vals+=("$(awk -v w="$4" -v n="$5" -v f="$6" '$1 == w && $2 == n { print $f }' \
            "$TMP/$1-$2-$3-$r.threads" 2>/dev/null)")
    done
    median "${vals[@]}"
}
if has kv1; then
    echo
    echo "kv1 per thread (CPU us and context switches per request; threads of one name summed; medians of the rounds):"
    echo
    row_out test thread "node cpu" "node cs" "other cpu" "other cs"
    sep_out 6
    for mode in "${modes[@]}"; do
        for t in "${tests[@]}"; do
            awk '$3 + 0 >= 0.05 || $4 + 0 >= 0.005 { print $2 }' "$TMP/kv1-$mode-$t-"*.threads 2>/dev/null \
                | sort -u | while read -r th; do
                row_out "$(label_of "$mode" "$t")" "$th" \
                    "$(tcost kv1 "$mode" "$t" 1 "$th" 3)" "$(tcost kv1 "$mode" "$t" 1 "$th" 4)" \
                    "$(tcost kv1 "$mode" "$t" 2 "$th" 3)" "$(tcost kv1 "$mode" "$t" 2 "$th" 4)"
            done
        done
    done
    echo
    echo "node = kv1's target node as above; other = one of its other nodes (a follower with TARGET_PORT=leader)."
fi

# Forwarded writes (kv3) and MOVED replies (kv3c) per run, and the idle clusters' CPU.
echo
for cfg in "${configs[@]}"; do
    line="$cfg:"
    for mode in "${modes[@]}"; do
        for t in "${tests[@]}"; do
            line="$line $(label_of "$mode" "$t") fwd $(stat "$cfg" "$mode" "$t" 2) moved $(stat "$cfg" "$mode" "$t" 1);"
        done
    done
    echo "$line group leaders (ids) at start ${LEADERS_AT_START[$cfg]}, at the end $(group_leaders "${TARGET[$cfg]}");" \
         "step-downs in the node logs: $(cat "$TMP/${cfg%f}"-node*.log | grep -c 'stepped down' || true)"
done
echo "(fwd / moved = writes forwarded by / -MOVED replies of all the cluster's nodes during one run, medians)"
if [ "${#configs[@]}" -gt 0 ]; then
    idle=$(cat "$TMP"/*.idle 2>/dev/null | awk '$2 > 0 { print 100 * $1 / $2 }' | sort -g \
        | awk '{ v[NR] = $1 } END { if (NR) printf "median %.1f%%, max %.1f%% of one core", v[int((NR + 1) / 2)], v[NR]; else print "-" }')
    echo "CPU of the idle raftkv nodes (all configs not under test) during each run: $idle"
    [ "$TARGET_PORT" = leader ] && has kv1 && echo "kv1's leader moved $LEADER_MOVES times between runs (the target followed it)."
    echo "Hibernating groups / groups per node at the end: $(hibernation_line "${configs[@]}")"
    echo "Before every run the script waited for the raftkv nodes to use < ${SETTLE_CPU:-20}% of a core (at most ${SETTLE_SECS:-10} s): $SETTLE_TIMEOUTS waits timed out."
fi
echo
print_commands

if [ "$failed" != 0 ]; then
    echo "some benchmark runs failed" >&2
    exit 1
fi
