#!/usr/bin/env bash
# Measures the rebalance 3 -> 4 groups with data (issue #11):
#   1. three founders with --groups 1 and a joined node 4 (group 1 on nodes 1-4); DATA_MB of
#      values over all slots; then three groups, rebalanced automatically as each joins:
#      group 2 on node 4 only, group 3 on node 3 only (setup, not timed);
#   2. the p50/p99 of redis-benchmark SETs on slots that do not move (one hash tag in group
#      1's low slots: a rebalance takes each group's highest slots), quiet;
#   3. RAFT.SHARDGROUP JOIN 4 1: group 4 on node 1 only, and the automatic rebalance moves a
#      quarter of the slots to it: group 1's handed over on node 1 (collected on nodes 2-4),
#      groups 2's and 3's records copied to node 1 (from nodes 4 and 3), while the same
#      redis-benchmark runs again and again: the time from JOIN until group 4 owns its
#      share and nothing is pending, MB/s and keys/s copied, and the other slots' p50/p99
#      meanwhile (median of the runs, and the worst run's p99).
#
# Environment:
#   DATA_MB=64          approximate size of the dataset (values of VALUE_BYTES bytes)
#   VALUE_BYTES=1000
#   PIPES=4             parallel loading connections
#   N=5000              requests per redis-benchmark run (c=20)
#   MIGRATE_MAX_MBPS=   --migrate-max-mbps of every node (empty: the node's default)
#   KEEP_TMP=1          keep the temp dir (data, logs)
#   NO_BUILD=1          skip scripts/setup.sh (deps + release build)
#   RAFTKV_BIN=path     binary to run (default target/release/raftkv)
#   PORT_BASE=28790     client ports PORT_BASE+1..4, raft ports PORT_BASE-10+1..4
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

DATA_MB="${DATA_MB:-64}"
VALUE_BYTES="${VALUE_BYTES:-1000}"
PIPES="${PIPES:-4}"
N="${N:-5000}"
BASE="${PORT_BASE:-28790}"
bench_setup rebalbench

kv=(0 $((BASE + 1)) $((BASE + 2)) $((BASE + 3)) $((BASE + 4)))
raft=(0 $((BASE - 9)) $((BASE - 8)) $((BASE - 7)) $((BASE - 6)))
cluster="127.0.0.1:${raft[1]},127.0.0.1:${raft[2]},127.0.0.1:${raft[3]}"
common=(--groups 1 --log-level info)
if [ -n "${MIGRATE_MAX_MBPS:-}" ]; then common+=(--migrate-max-mbps "$MIGRATE_MAX_MBPS"); fi
for i in 1 2 3; do
    "$BIN" --id "$i" --cluster "$cluster" --port "${kv[$i]}" --data-dir "$tmp/node$i" \
        "${common[@]}" >>"$tmp/node$i.log" 2>&1 &
    pids[$i]=$!
done
wait_until 60 "the cluster" bash -c "redis-cli -p ${kv[1]} SET bench:probe ok 2>/dev/null | grep -q OK"
"$BIN" --id 4 --join "127.0.0.1:${kv[1]}" --peer-addr "127.0.0.1:${raft[4]}" --port "${kv[4]}" \
    --data-dir "$tmp/node4" "${common[@]}" >>"$tmp/node4.log" 2>&1 &
pids[4]=$!

keys=$((DATA_MB * 1024 * 1024 / VALUE_BYTES))
log "loading $keys keys of $VALUE_BYTES random bytes (~$DATA_MB MB) over all slots"
t=$(now)
loads=()
for j in $(seq 0 $((PIPES - 1))); do
    random_sets "$keys" "$VALUE_BYTES" "$j" "$PIPES" | redis-cli -p "${kv[$((j % 3 + 1))]}" --pipe >"$tmp/load.$j.out" &
    loads+=($!)
done
wait "${loads[@]}"
log "loaded in $(elapsed "$t")s"

field() { # node, section, field
    redis-cli -p "${kv[$1]}" INFO "$2" 2>/dev/null | tr -d '\r' | awk -F: -v f="$3" '$1 == f { print $2 }'
}
sum_field() { local s=0; for i in 1 2 3 4; do s=$((s + $(field "$i" cluster "$1" || echo 0))); done; echo "$s"; }
# Group $1 owns its share ($2 slots) and nothing is pending.
rebalanced() {
    local q
    q=$(redis-cli -p "${kv[2]}" RAFT.SHARDGROUP QUERY 2>/dev/null) || return 1
    grep -q "^group $1 .* slots $2 " <<<"$q" && ! grep -q "^migration " <<<"$q"
}
join() { # group node share: created (rebalanced automatically), led, and rebalanced
    wait_until 300 "JOIN $1 $2" bash -c "redis-cli -p ${kv[2]} RAFT.SHARDGROUP JOIN $1 $2 | grep -q OK"
    wait_until 300 "group $1's leader" bash -c \
        "redis-cli -p ${kv[$2]} RAFT.SHARDGROUP QUERY | grep -q '^group $1 leader [1-9]'"
    wait_until 600 "group $1's share" rebalanced "$1" "$3"
}
t=$(now)
join 2 4 8192
join 3 3 "546[12]"
log "setup: group 2 on node 4, group 3 on node 3, rebalanced in $(elapsed "$t")s"
# A hash tag in group 1's low slots (0-4095), which stay in group 1.
tag=""
for c in $(seq 0 200); do
    s=$(redis-cli -p "${kv[1]}" CLUSTER KEYSLOT "t$c")
    if [ "$s" -lt 4096 ]; then tag="t$c"; break; fi
done
bench() { # csv line: "SET",rps,avg,min,p50,p95,p99,max
    redis-benchmark -p "${kv[1]}" -n "$N" -c 20 -r 100000 --csv SET "{$tag}k:__rand_int__" v 2>/dev/null | tail -1 | tr -d '"'
}
col() { # column, csv lines...: the median of that column
    local c=$1; shift
    printf '%s\n' "$@" | awk -F, -v c="$c" 'NF > 1 { print $c }' | sort -g | awk '{ a[NR] = $1 } END { print (NR ? a[int((NR + 1) / 2)] : "-") }'
}
worst() { # column, csv lines...: the largest value of that column
    local c=$1; shift
    printf '%s\n' "$@" | awk -F, -v c="$c" 'NF > 1 { print $c }' | sort -g | tail -1
}
quiet=()
for _ in 1 2 3; do quiet+=("$(bench)"); done
log "quiet: $(col 2 "${quiet[@]}") SET/s, p50 $(col 5 "${quiet[@]}") ms, p99 $(col 7 "${quiet[@]}") ms (worst p99 $(worst 7 "${quiet[@]}") ms; {$tag} in group 1)"

b0=$(sum_field raftkv_migration_copied_bytes); r0=$(sum_field raftkv_migration_copied_records)
log "RAFT.SHARDGROUP JOIN 4 1: group 4 on node 1, rebalanced automatically"
t=$(now)
redis-cli -p "${kv[2]}" RAFT.SHARDGROUP JOIN 4 1 >/dev/null
during=()
while ! rebalanced 4 4096; do during+=("$(bench)"); done
s=$(elapsed "$t")
b=$(( $(sum_field raftkv_migration_copied_bytes) - b0 )); r=$(( $(sum_field raftkv_migration_copied_records) - r0 ))
awk -v s="$s" -v b="$b" -v r="$r" 'BEGIN {
    printf "rebalance 3 -> 4: %.2f s; copied %d records, %.1f MB: %.1f MB/s, %.0f keys/s\n",
        s, r, b / 1e6, b / 1e6 / s, r / s }'
if [ "${#during[@]}" -gt 0 ]; then
    log "during: ${#during[@]} runs, $(col 2 "${during[@]}") SET/s, p50 $(col 5 "${during[@]}") ms, p99 $(col 7 "${during[@]}") ms (worst p99 $(worst 7 "${during[@]}") ms)"
fi
grep -h "slots migrated" "$tmp/node"*.log | tail -1
