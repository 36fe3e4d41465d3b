#!/usr/bin/env bash
# Measures the Raft lifecycle on a large dataset (issue: snapshots, membership):
#   1. loads DATA_MB of incompressible values into a 3-node cluster while node 3 is down;
#   2. times RAFT.SNAPSHOT on the leader (snapshot creation) and the log compaction;
#   3. restarts node 3: it catches up by snapshot; reports the transfer throughput (MB/s,
#      from the sender's log) and the catch-up time (restart -> applied index caught up);
#   4. starts node 4 with --join: reports the time until it is a voter;
#   5. kill -9 node 1 and restarts it: reports restart-to-serving (a linearizable GET works).
#
# Environment:
#   DATA_MB=1024        approximate size of the dataset (values of VALUE_BYTES bytes)
#   VALUE_BYTES=1000
#   MAX_MBPS=0          --snapshot-max-mbps (0 = unlimited)
#   PIPES=16            parallel loading connections
#   KEEP_TMP=1          keep the temp dir (data, logs)
#   SNAP_GROUPS=1       --groups of every node (one group: the dataset is one snapshot)
#   NO_BUILD=1          skip scripts/setup.sh (deps + release build)
#   RAFTKV_BIN=path     binary to run (default target/release/raftkv)
#   PORT_BASE=24790     client ports PORT_BASE+1..4, raft ports PORT_BASE-10+1..4
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

DATA_MB="${DATA_MB:-1024}"
VALUE_BYTES="${VALUE_BYTES:-1000}"
MAX_MBPS="${MAX_MBPS:-0}"
PIPES="${PIPES:-16}"
bench_setup snapbench

BASE="${PORT_BASE:-24790}"
kv=(0 $((BASE + 1)) $((BASE + 2)) $((BASE + 3)) $((BASE + 4)))
raft=(0 $((BASE - 9)) $((BASE - 8)) $((BASE - 7)) $((BASE - 6)))
cluster="127.0.0.1:${raft[1]},127.0.0.1:${raft[2]},127.0.0.1:${raft[3]}"
common=(--groups "${SNAP_GROUPS:-1}" --snapshot-entries 0 --snapshot-bytes 0 --snapshot-max-mbps "$MAX_MBPS" --log-level info)

start_node() {
    local i=$1
    "$BIN" --id "$i" --cluster "$cluster" --port "${kv[$i]}" --data-dir "$tmp/node$i" \
        "${common[@]}" >>"$tmp/node$i.log" 2>&1 &
    pids[$i]=$!
}
field() { redis-cli -p "$1" INFO raft 2>/dev/null | tr -d '\r' | awk -F: -v f="$2" '$1 == f { print $2 }'; }
serving() { [ "$(redis-cli -p "$1" GET bench:probe 2>/dev/null)" = ok ]; }

for i in 1 2 3; do start_node "$i"; done
wait_until 30 "a leader" bash -c "redis-cli -p ${kv[1]} SET bench:probe ok 2>/dev/null | grep -q OK"
leader_id=$(field "${kv[1]}" raft_leader_id)
log "leader is node $leader_id"
# Node 3 goes down for the load, unless it leads: then node 2.
down=3
[ "$leader_id" = 3 ] && down=2
kill -9 "${pids[$down]}"; wait "${pids[$down]}" 2>/dev/null || true; unset "pids[$down]"

keys=$((DATA_MB * 1024 * 1024 / VALUE_BYTES))
log "loading $keys keys of $VALUE_BYTES random bytes (~$DATA_MB MB): $PIPES parallel redis-cli --pipe"
# One pipelining connection waits for each batch's commit before sending the next (Redis
# per-connection order), so the load runs on several connections at once.
t=$(now)
for j in $(seq 0 $((PIPES - 1))); do
    random_sets "$keys" "$VALUE_BYTES" "$j" "$PIPES" | redis-cli -p "${kv[$leader_id]}" --pipe >"$tmp/load.$j.out" &
done
wait_loads() {
    local j
    for j in $(seq 0 $((PIPES - 1))); do
        while ! grep -q "replies" "$tmp/load.$j.out" 2>/dev/null; do sleep 0.2; done
    done
}
wait_loads
cat "$tmp"/load.*.out | grep -h "errors" | awk '{ e += $2; r += $4 } END { printf "errors: %d, replies: %d\n", e, r }'
load_s=$(elapsed "$t")
log "loaded in ${load_s}s"

t=$(now)
snap_index=$(redis-cli -p "${kv[$leader_id]}" RAFT.SNAPSHOT)
snap_s=$(elapsed "$t")
# One snapshot per group, in snap/group-<id>/snap-<index>-<term>. A large group's snapshot
# is a RocksDB checkpoint at first (hard links of the live table files: no new data on disk)
# and gets its SST files when a follower first needs it.
snap_mb=$(du -smc --exclude=checkpoint "$tmp/node$leader_id"/snap/group-*/snap-* | tail -1 | cut -f1)
ckpt_mb=$( (du -smc "$tmp/node$leader_id"/snap/group-*/snap-*/checkpoint 2>/dev/null || echo 0) | tail -1 | cut -f1)
log "snapshot at index $snap_index: ${snap_s}s, ${snap_mb} MB of files, checkpoint linking ${ckpt_mb} MB"

target_applied=$(field "${kv[$leader_id]}" raft_applied_index)
t=$(now)
start_node "$down"
wait_until 600 "node $down to catch up" bash -c \
    "[ \"\$(redis-cli -p ${kv[$down]} INFO raft 2>/dev/null | tr -d '\r' | awk -F: '\$1==\"raft_applied_index\"{print \$2}')\" -ge $target_applied ] 2>/dev/null"
catchup_s=$(elapsed "$t")
mbps=$(grep -h "snapshot sent" "$tmp/node$leader_id.log" | tail -1 | sed -n 's/.*mb_per_s: \([0-9.]*\).*/\1/p')
restore_ms=$(grep -h "snapshot restored" "$tmp/node$down.log" | tail -1 | sed -n 's/.*ms: \([0-9]*\).*/\1/p')
log "node $down caught up by snapshot in ${catchup_s}s (transfer ${mbps} MB/s, restore ${restore_ms} ms)"

t=$(now)
"$BIN" --id 4 --peer-addr "127.0.0.1:${raft[4]}" --join "127.0.0.1:${kv[1]}" --port "${kv[4]}" \
    --data-dir "$tmp/node4" "${common[@]}" >>"$tmp/node4.log" 2>&1 &
pids[4]=$!
wait_until 600 "node 4 to become a voter" bash -c \
    "redis-cli -p ${kv[1]} RAFT.NODES 2>/dev/null | grep -q '^4 .* voter '"
join_s=$(elapsed "$t")
log "node 4 joined and became a voter in ${join_s}s"

# Restart-to-serving of a node holding the dataset (a follower).
r=1
[ "$leader_id" = 1 ] && r=2
kill -9 "${pids[$r]}"; wait "${pids[$r]}" 2>/dev/null || true; unset "pids[$r]"
t=$(now)
start_node "$r"
wait_until 120 "node $r to serve" serving "${kv[$r]}"
restart_s=$(elapsed "$t")
log "node $r restart-to-serving: ${restart_s}s"

echo
echo "| measure | value |"
echo "|---|---|"
echo "| dataset | $keys keys x $VALUE_BYTES B (~$DATA_MB MB), loaded in ${load_s} s |"
echo "| snapshot creation (RAFT.SNAPSHOT on the leader) | ${snap_s} s, ${snap_mb} MB of files, checkpoint of ${ckpt_mb} MB (links) |"
echo "| snapshot transfer to a restarted follower | ${mbps} MB/s |"
echo "| follower catch-up (restart -> applied caught up, incl. transfer + restore ${restore_ms} ms) | ${catchup_s} s |"
echo "| new node --join -> voter | ${join_s} s |"
echo "| restart-to-serving of a node holding the dataset | ${restart_s} s |"
