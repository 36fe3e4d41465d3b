#!/usr/bin/env bash
# Restart-to-serving of a node holding a large dataset, after a burst of writes (so its WAL
# holds what a kill -9 leaves to replay), A/B between binaries on the same data:
#   on the data dirs kept by `KEEP_TMP=1 scripts/bench-snapshot.sh` (DIR), starts the four
#   nodes; then ROUNDS times, for each binary of BINS: restarts node R with it, writes
#   WRITE_MB of overwrites through node 1, kill -9 node R, restarts it with that binary
#   again and times until a
#   linearizable GET answers on it. Prints the WAL bytes at the kill and the times; the
#   restarted node's log has the open's steps (RAFTKV_LOG shows them with timestamps).
#
# Environment:
#   DIR=/tmp/raftkv-snapbench.XXXXXX   (required) kept by bench-snapshot.sh
#   BINS="old new"      raftkv binaries (default target/release/raftkv)
#   ROUNDS=2  WRITE_MB=128  R=2  VALUE_BYTES=1000  PIPES=8
#   PORT_BASE=24790     must be the PORT_BASE the dataset was made with (the ports are
#                       recorded in the nodes' Raft state)
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

DIR="${DIR:?DIR= a data dir kept by bench-snapshot.sh}"
BINS="${BINS:-$REPO_ROOT/target/release/raftkv}"
ROUNDS="${ROUNDS:-2}"
WRITE_MB="${WRITE_MB:-128}"
R="${R:-2}"
VALUE_BYTES="${VALUE_BYTES:-1000}"
PIPES="${PIPES:-8}"
BASE="${PORT_BASE:-24790}"
kv=(0 $((BASE + 1)) $((BASE + 2)) $((BASE + 3)) $((BASE + 4)))
raft=(0 $((BASE - 9)) $((BASE - 8)) $((BASE - 7)) $((BASE - 6)))
cluster="127.0.0.1:${raft[1]},127.0.0.1:${raft[2]},127.0.0.1:${raft[3]}"
common=(--groups "${SNAP_GROUPS:-1}" --snapshot-entries 0 --snapshot-bytes 0 --log-level info)

declare -A pids
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

start_node() { # id binary
    local i=$1 bin=$2
    if [ "$i" = 4 ]; then
        "$bin" --id 4 --peer-addr "127.0.0.1:${raft[4]}" --join "127.0.0.1:${kv[1]}" \
            --port "${kv[4]}" --data-dir "$DIR/node4" "${common[@]}" >>"$DIR/node4.log" 2>&1 &
    else
        "$bin" --id "$i" --cluster "$cluster" --port "${kv[$i]}" --data-dir "$DIR/node$i" \
            "${common[@]}" >>"$DIR/node$i.log" 2>&1 &
    fi
    pids[$i]=$!
}
serving() { [ "$(redis-cli -p "$1" GET bench:probe 2>/dev/null)" = ok ]; }
wal_mb() { find "$DIR/node$R" -maxdepth 1 -name '*.log' -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f", s / 1048576 }'; }

first=${BINS%% *}
for i in 1 2 3 4; do start_node "$i" "$first"; done
wait_until 120 "the cluster to serve" serving "${kv[1]}"
keys=$((WRITE_MB * 1024 * 1024 / VALUE_BYTES))
echo "| round | binary | WAL of node $R at the kill | restart-to-serving |"
echo "|---|---|---:|---:|"
for round in $(seq 1 "$ROUNDS"); do
    for bin in $BINS; do
        # The WAL at the kill is written by the binary under test: node R runs it first.
        kill -9 "${pids[$R]}"; wait "${pids[$R]}" 2>/dev/null || true
        start_node "$R" "$bin"
        wait_until 120 "node $R to serve" serving "${kv[$R]}"
        loads=()
        for j in $(seq 0 $((PIPES - 1))); do
            random_sets "$keys" "$VALUE_BYTES" "$j" "$PIPES" | redis-cli -p "${kv[1]}" --pipe >/dev/null &
            loads+=($!)
        done
        wait "${loads[@]}"
        wait_until 60 "node $R to apply the writes" serving "${kv[$R]}"
        wal=$(wal_mb)
        kill -9 "${pids[$R]}"; wait "${pids[$R]}" 2>/dev/null || true; unset "pids[$R]"
        t=$(now)
        start_node "$R" "$bin"
        wait_until 120 "node $R to serve" serving "${kv[$R]}"
        echo "| $round | $(basename "$bin") | ${wal} MB | $(elapsed "$t") s |"
    done
done
