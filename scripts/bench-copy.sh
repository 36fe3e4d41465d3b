#!/usr/bin/env bash
# Measures slot migration with a data copy (README "Groups on some nodes"):
#   1. three founders with --groups 1 and a joined node 4; DATA_MB of values over all slots;
#   2. group 2 on node 4 only (RAFT.SHARDGROUP JOIN 2 4) takes every slot from group 1;
#   3. group 3 on node 1 only (JOIN 3 1) takes every slot from group 2: node 1 hosts no
#      replica of group 2, so every record is copied to it (and collected on node 4).
# Reports the time of step 3 and its MB/s and keys/s (bytes as INFO cluster counts them:
# keys and values as stored).
#
# Environment:
#   DATA_MB=64          approximate size of the dataset (values of VALUE_BYTES bytes)
#   VALUE_BYTES=1000
#   PIPES=4             parallel loading connections
#   MIGRATE_MAX_MBPS=0  --migrate-max-mbps of every node (0 = unlimited: the copy's own speed)
#   KEEP_TMP=1          keep the temp dir (data, logs)
#   NO_BUILD=1          skip scripts/setup.sh (deps + release build)
#   RAFTKV_BIN=path     binary to run (default target/release/raftkv)
#   PORT_BASE=26790     client ports PORT_BASE+1..4, raft ports PORT_BASE-10+1..4
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

DATA_MB="${DATA_MB:-64}"
VALUE_BYTES="${VALUE_BYTES:-1000}"
PIPES="${PIPES:-4}"
BASE="${PORT_BASE:-26790}"
bench_setup copybench

kv=(0 $((BASE + 1)) $((BASE + 2)) $((BASE + 3)) $((BASE + 4)))
raft=(0 $((BASE - 9)) $((BASE - 8)) $((BASE - 7)) $((BASE - 6)))
cluster="127.0.0.1:${raft[1]},127.0.0.1:${raft[2]},127.0.0.1:${raft[3]}"
common=(--groups 1 --auto-rebalance no --log-level info --migrate-max-mbps "${MIGRATE_MAX_MBPS:-0}")
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
loads=()
for j in $(seq 0 $((PIPES - 1))); do
    random_sets "$keys" "$VALUE_BYTES" "$j" "$PIPES" | redis-cli -p "${kv[$((j % 3 + 1))]}" --pipe >"$tmp/load.$j.out" &
    loads+=($!)
done
wait "${loads[@]}"

field() { # node, section, field
    redis-cli -p "${kv[$1]}" INFO "$2" 2>/dev/null | tr -d '\r' | awk -F: -v f="$3" '$1 == f { print $2 }'
}
copied_bytes() { local s=0; for i in 1 2 3 4; do s=$((s + $(field "$i" cluster raftkv_migration_copied_bytes || echo 0))); done; echo "$s"; }
copied_records() { local s=0; for i in 1 2 3 4; do s=$((s + $(field "$i" cluster raftkv_migration_copied_records || echo 0))); done; echo "$s"; }
owns_all() { # group
    redis-cli -p "${kv[2]}" RAFT.SHARDGROUP QUERY 2>/dev/null | grep -q "^group $1 .* slots 16384 " &&
        ! redis-cli -p "${kv[2]}" RAFT.SHARDGROUP QUERY 2>/dev/null | grep -q "^migration "
}
join() { # group node: created, and led (asked on its node: a group hosted elsewhere shows a guess)
    wait_until 300 "JOIN $1 $2" bash -c "redis-cli -p ${kv[2]} RAFT.SHARDGROUP JOIN $1 $2 | grep -q OK"
    wait_until 300 "group $1's leader" bash -c \
        "redis-cli -p ${kv[$2]} RAFT.SHARDGROUP QUERY | grep -q '^group $1 leader [1-9]'"
}

join 2 4
log "group 2 (node 4) takes every slot from group 1"
t=$(now)
redis-cli -p "${kv[2]}" RAFT.SHARDGROUP MOVE 2 0-16383 >/dev/null
wait_until 600 "the first move" owns_all 2
log "moved in $(elapsed "$t")s"

join 3 1
b0=$(copied_bytes); r0=$(copied_records)
log "group 3 (node 1) takes every slot from group 2: every record copied to node 1"
t=$(now)
redis-cli -p "${kv[2]}" RAFT.SHARDGROUP MOVE 3 0-16383 >/dev/null
wait_until 600 "the copying move" owns_all 3
s=$(elapsed "$t")
b=$(( $(copied_bytes) - b0 )); r=$(( $(copied_records) - r0 ))
dbsize=$(redis-cli -p "${kv[3]}" DBSIZE)
awk -v s="$s" -v b="$b" -v r="$r" -v k="$dbsize" 'BEGIN {
    printf "copy: %d records, %.1f MB in %.2f s: %.1f MB/s, %.0f keys/s (DBSIZE after: %d)\n",
        r, b / 1e6, s, b / 1e6 / s, r / s, k }'
