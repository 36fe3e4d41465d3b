#!/usr/bin/env bash
# Benchmarks scripts and Pub/Sub (issue #12's Benchmark section) against two redis-servers in
# the same run (appendfsync always, and no persistence), on a 3-node raftkv cluster with
# `--groups 1`; redis-benchmark talks to the leader (looked up again before every run).
#
# Part 1: `redis-benchmark -t set,get` next to EVALSHA of the one-line script
# `return redis.call('SET', KEYS[1], ARGV[1])` (SCRIPT LOAD first), ROUNDS interleaved rounds,
# medians and the ratios EVALSHA / SET on each server.
# Part 2: PUBLISH throughput with SUBS subscribers (redis-cli SUBSCRIBE, output discarded):
# on raftkv spread round-robin over the three nodes (so two thirds of every message travel
# the peer transport), on each redis-server all on it. The publisher talks to node 1; every
# PUBLISH reply counts that node's receivers only (Redis Cluster's rule). After each raftkv
# run the script prints the peer messages sent and dropped (INFO stats) and the messages
# delivered on every node, so a figure never hides dropped messages.
#
# Environment:
#   N=30000 C=50 ROUNDS=3     requests and clients per run; rounds (medians are reported)
#   SUBS=50 PAYLOAD=64        subscribers and PUBLISH payload bytes
#   PUBLISH=1                 0 skips part 2 (SET, GET and EVALSHA only)
#   RAFTKV_PORTS=63791,63792,63793   RAFT_PORTS=12379,22379,32379
#   SETTLE_CPU=20 SETTLE_SECS=10 LOG_LEVEL=warning WAIT_SECS=60 BENCH_TIMEOUT=900 KEEP_TMP=1 NO_BUILD=1
#   RAFTKV_BIN=path           as in scripts/bench.sh
# Exits non-zero if any run failed. Every process it started is killed on exit.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=scripts/bench-lib.sh
. "$REPO_ROOT/scripts/bench-lib.sh"

N="${N:-30000}"
C="${C:-50}"
PUBLISH="${PUBLISH:-1}"
SUBS="${SUBS:-50}"
PAYLOAD="${PAYLOAD:-64}"
RAFTKV_PORTS="${RAFTKV_PORTS:-63791,63792,63793}"
RAFT_PORTS="${RAFT_PORTS:-12379,22379,32379}"
SCRIPT="return redis.call('SET', KEYS[1], ARGV[1])"

bench_require
start_cluster kv 1 forward "$RAFTKV_PORTS" "$RAFT_PORTS"
start_redis always always
start_redis none none
wait_ready kv
IFS=, read -r -a kv_ports <<<"$RAFTKV_PORTS"

# The script is loaded once per server (raftkv replicates it to every node).
SHA=$(redis-cli -p "${kv_ports[0]}" SCRIPT LOAD "$SCRIPT" | tr -d '\r')
for s in always none; do redis-cli -p "${RS_PORT[$s]}" SCRIPT LOAD "$SCRIPT" >/dev/null; done
[ ${#SHA} = 40 ] || { echo "SCRIPT LOAD failed: $SHA" >&2; exit 1; }
payload=$(head -c "$PAYLOAD" /dev/zero | tr '\0' x)
# redis-benchmark names a custom command's CSV row by the whole command.
ROW_EVAL="EVALSHA $SHA 1 key:__rand_int__ v"
ROW_PUB="PUBLISH bench $payload"

# bench_on SERVER NAME ROW REQUESTS ARGS...: run_bench on raftkv's leader or a redis-server.
bench_on() {
    local s=$1 name=$2 row=$3 reqs=$4 port
    shift 4
    settle "${CL_PIDS[kv]}"
    if [ "$s" = kv ]; then
        port=$(leader_port kv)
        [ -n "$port" ] || { echo "no leader found" >&2; exit 1; }
        IDLE_PIDS="" STATS_PORTS=$RAFTKV_PORTS
        run_bench "$name" "$row" "$reqs" "$(pids_target_first kv "$port")" -h 127.0.0.1 -p "$port" "$@"
    else
        IDLE_PIDS=${CL_PIDS[kv]} STATS_PORTS=""
        run_bench "$name" "$row" "$reqs" "${RS_PID[$s]}" -h 127.0.0.1 -p "${RS_PORT[$s]}" "$@"
    fi
}

servers=(kv always none)
for round in $(seq 1 "$ROUNDS"); do
    for s in "${servers[@]}"; do
        bench_on "$s" "$s-setget-$round" SET "$((2 * N))" -t set,get -n "$N" -c "$C" -r 100000
        bench_on "$s" "$s-evalsha-$round" "$ROW_EVAL" "$N" -n "$N" -c "$C" -r 100000 \
            EVALSHA "$SHA" 1 key:__rand_int__ v
    done
done

# Part 2: subscribers, then PUBLISH runs. sub_start SERVER: SUBS redis-cli subscribers.
sub_pids=()
sub_start() {
    local s=$1 i port
    for ((i = 0; i < SUBS; i++)); do
        if [ "$s" = kv ]; then port=${kv_ports[$((i % ${#kv_ports[@]}))]}; else port=${RS_PORT[$s]}; fi
        redis-cli -p "$port" SUBSCRIBE bench >/dev/null 2>&1 &
        pids+=($!)
        sub_pids+=($!)
    done
}
sub_stop() {
    local p
    for p in "${sub_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${sub_pids[@]}"; do { wait "$p"; } 2>/dev/null || true; done
    sub_pids=()
}
# subscribed PORT...: the bench channel's subscribers over these servers.
subscribed() {
    local n=0 p
    for p in "$@"; do
        n=$((n + $(redis-cli -p "$p" PUBSUB NUMSUB bench | sed -n 2p | tr -d '\r')))
    done
    echo "$n"
}
for round in $(seq 1 "$ROUNDS"); do
    [ "$PUBLISH" = 1 ] || break
    for s in "${servers[@]}"; do
        sub_start "$s"
        if [ "$s" = kv ]; then ports=("${kv_ports[@]}"); else ports=("${RS_PORT[$s]}"); fi
        for _ in $(seq 1 100); do
            [ "$(subscribed "${ports[@]}")" = "$SUBS" ] && break
            sleep 0.1
        done
        if [ "$s" = kv ]; then
            before=$(stat_sum "$RAFTKV_PORTS" pubsub_messages_delivered)
            IDLE_PIDS="" STATS_PORTS=""
            settle "${CL_PIDS[kv]}"
            run_bench "$s-publish-$round" "$ROW_PUB" "$N" "${CL_PIDS[kv]}" -h 127.0.0.1 -p "${kv_ports[0]}" \
                -n "$N" -c "$C" PUBLISH bench "$payload"
            for _ in $(seq 1 50); do
                delivered=$(($(stat_sum "$RAFTKV_PORTS" pubsub_messages_delivered) - before))
                [ "$delivered" -ge $((N * SUBS)) ] && break
                sleep 0.2
            done
            echo "$delivered $(stat_sum "$RAFTKV_PORTS" pubsub_peer_messages_sent) $(stat_sum "$RAFTKV_PORTS" pubsub_peer_messages_dropped)" \
                >"$TMP/$s-publish-$round.delivery"
        else
            bench_on "$s" "$s-publish-$round" "$ROW_PUB" "$N" -n "$N" -c "$C" PUBLISH bench "$payload"
        fi
        sub_stop
    done
done

med() {
    local vals=() r
    for r in $(seq 1 "$ROUNDS"); do vals+=("$(field "$TMP/$1-$2-$r.csv" "$3" rps)"); done
    median "${vals[@]}"
}
row_out() { local c out="|"; for c in "$@"; do out="$out $c |"; done; echo "$out"; }

echo
echo "raftkv: 3 nodes, --groups 1; redis always: appendonly yes, appendfsync always; redis none: no persistence."
echo "N=$N C=$C, medians of $ROUNDS interleaved rounds; $(version_line)"
echo
row_out test "redis alw" "redis none" raftkv "kv/alw" "kv/none"
row_out "---" "---:" "---:" "---:" "---:" "---:"
tests="SET GET EVALSHA"
[ "$PUBLISH" = 1 ] && tests="$tests PUBLISH"
for t in $tests; do
    case $t in
        SET | GET) run=setget row=$t ;;
        EVALSHA) run=evalsha row=$ROW_EVAL ;;
        PUBLISH) run=publish row=$ROW_PUB ;;
    esac
    a=$(med always "$run" "$row"); z=$(med none "$run" "$row"); k=$(med kv "$run" "$row")
    row_out "$t" "$a" "$z" "$k" "$(ratio "$k" "$a")" "$(ratio "$k" "$z")"
done
echo
for s in kv always none; do
    echo "EVALSHA / SET on $s: $(ratio "$(med "$s" evalsha "$ROW_EVAL")" "$(med "$s" setget SET)")"
done
[ "$PUBLISH" = 1 ] && echo "PUBLISH: $SUBS subscribers of one channel ($PAYLOAD-byte payload); raftkv's spread over the 3 nodes, the publisher on node 1."
for r in $(seq 1 "$ROUNDS"); do
    [ "$PUBLISH" = 1 ] || break
    read -r d sent dropped <"$TMP/kv-publish-$r.delivery"
    echo "  raftkv round $r: $d of $((N * SUBS)) messages delivered; peer messages sent $sent, dropped $dropped (cumulative)"
done
print_commands
exit "$failed"
