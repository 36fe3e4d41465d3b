#!/usr/bin/env bash
# Measures online slot migration (issue #11) on a 3-node, 3-group cluster:
#   1. loads DATA_MB of incompressible values over all slots;
#   2. the p50/p99 of redis-benchmark SETs on slots that do not move (one hash tag in group 3),
#      quiet;
#   3. RAFT.SHARDGROUP MOVE 2 0-5460 (all of group 1's slots and their data to group 2) while
#      the same redis-benchmark runs again and again: the time to move, MB/s and keys/s
#      (data moved = the keys of those slots), and the other slots' p50/p99 meanwhile;
#   4. RAFT.REBALANCE back to even counts: the time.
#
# Environment:
#   DATA_MB=256         approximate size of the dataset (values of VALUE_BYTES bytes)
#   VALUE_BYTES=1000
#   PIPES=8             parallel loading connections
#   N=5000              requests per redis-benchmark run (c=20)
#   KEEP_TMP=1          keep the temp dir (data, logs)
#   NO_BUILD=1          skip scripts/setup.sh (deps + release build)
#   RAFTKV_BIN=path     binary to run (default target/release/raftkv)
#   PORT_BASE=25790     client ports PORT_BASE+1..3, raft ports PORT_BASE-10+1..3
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

DATA_MB="${DATA_MB:-256}"
VALUE_BYTES="${VALUE_BYTES:-1000}"
PIPES="${PIPES:-8}"
N="${N:-5000}"
BASE="${PORT_BASE:-25790}"
bench_setup migbench

kv=(0 $((BASE + 1)) $((BASE + 2)) $((BASE + 3)))
raft=(0 $((BASE - 9)) $((BASE - 8)) $((BASE - 7)))
cluster="127.0.0.1:${raft[1]},127.0.0.1:${raft[2]},127.0.0.1:${raft[3]}"
for i in 1 2 3; do
    "$BIN" --id "$i" --cluster "$cluster" --port "${kv[$i]}" --data-dir "$tmp/node$i" \
        --groups 3 --log-level info >>"$tmp/node$i.log" 2>&1 &
    pids[$i]=$!
done
cluster_field() { redis-cli -p "${kv[1]}" INFO cluster 2>/dev/null | tr -d '\r' | awk -F: -v f="$1" '$1 == f { print $2 }'; }
migrated() { [ "$(cluster_field raftkv_migrations_pending)" = 0 ]; }
wait_until 60 "the cluster" bash -c "redis-cli -p ${kv[1]} SET bench:probe ok 2>/dev/null | grep -q OK"
wait_until 60 "leaders" bash -c "[ \$(redis-cli -p ${kv[1]} INFO raft | grep -c 'raft_group_.*leader=[1-9]') = 3 ]"

keys=$((DATA_MB * 1024 * 1024 / VALUE_BYTES))
log "loading $keys keys of $VALUE_BYTES random bytes (~$DATA_MB MB) over all slots"
t=$(now)
loads=()
for j in $(seq 0 $((PIPES - 1))); do
    random_sets "$keys" "$VALUE_BYTES" "$j" "$PIPES" | redis-cli -p "${kv[$((j % 3 + 1))]}" --pipe >"$tmp/load.$j.out" &
    loads+=($!)
done
wait "${loads[@]}"
log "loaded in $(elapsed "$t")s; $(cat "$tmp"/load.*.out | grep -h errors | awk '{ e += $2; r += $4 } END { printf "errors %d, replies %d", e, r }')"

# A hash tag in group 3's slots (10922-16383), which never move here.
tag=""
for c in $(seq 0 200); do
    s=$(redis-cli -p "${kv[1]}" CLUSTER KEYSLOT "t$c")
    if [ "$s" -ge 10922 ]; then tag="t$c"; break; fi
done
bench() { # csv line: "SET",rps,avg,min,p50,p95,p99,max
    redis-benchmark -p "${kv[1]}" -n "$N" -c 20 -r 100000 --csv SET "{$tag}k:__rand_int__" v 2>/dev/null | tail -1 | tr -d '"'
}
quiet=()
for _ in 1 2 3; do quiet+=("$(bench)"); done
col() { # column, csv lines...: the median of that column
    local c=$1; shift
    printf '%s\n' "$@" | awk -F, -v c="$c" 'NF > 1 { print $c }' | sort -g | awk '{ a[NR] = $1 } END { print (NR ? a[int((NR + 1) / 2)] : "-") }'
}
q50=$(col 5 "${quiet[@]}"); q99=$(col 7 "${quiet[@]}"); qrps=$(col 2 "${quiet[@]}")
log "quiet: ${qrps} SET/s, p50 ${q50} ms, p99 ${q99} ms (slot of {$tag} in group 3)"

moved_keys=$(python3 - "$keys" <<'EOF'
import sys
def crc16(b):
    c = 0
    for x in b:
        c ^= x << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) & 0xFFFF if c & 0x8000 else (c << 1) & 0xFFFF
    return c
print(sum(1 for i in range(int(sys.argv[1])) if crc16(b"key:%d" % i) % 16384 <= 5460))
EOF
)
log "moving group 1's slots (0-5460, $moved_keys keys) to group 2"
t=$(now)
redis-cli -p "${kv[2]}" RAFT.SHARDGROUP MOVE 2 0-5460 >/dev/null
during=()
while ! migrated; do during+=("$(bench)"); done
move_s=$(elapsed "$t")
mb=$(awk -v k="$moved_keys" -v b="$VALUE_BYTES" 'BEGIN { printf "%.1f", k * b / 1048576 }')
log "moved in ${move_s}s: $(awk -v m="$mb" -v s="$move_s" 'BEGIN { printf "%.1f", m / s }') MB/s, $(awk -v k="$moved_keys" -v s="$move_s" 'BEGIN { printf "%.0f", k / s }') keys/s ($mb MB)"
if [ "${#during[@]}" -gt 0 ]; then
    log "during: ${#during[@]} runs, $(col 2 "${during[@]}") SET/s, p50 $(col 5 "${during[@]}") ms, p99 $(col 7 "${during[@]}") ms"
fi
redis-cli -p "${kv[3]}" RAFT.SHARDGROUP QUERY | head -4
t=$(now)
n=$(redis-cli -p "${kv[3]}" RAFT.REBALANCE)
wait_until 600 "the rebalance" migrated
log "rebalanced ($n migrations) in $(elapsed "$t")s"
redis-cli -p "${kv[3]}" RAFT.SHARDGROUP QUERY | head -4
for i in 1 2 3; do log "node $i DBSIZE $(redis-cli -p "${kv[$i]}" DBSIZE)"; done
grep -h "slots migrated" "$tmp/node"*.log | tail -2
