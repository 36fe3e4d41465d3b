# Sourced by bench.sh and bench-types.sh (after lib.sh): temp dir and cleanup of every process
# started, raftkv clusters and redis-servers, one redis-benchmark run with its CPU / context
# switch samples and error checks, and the CSV / median / ratio helpers.
# shellcheck shell=bash

LOG_LEVEL="${LOG_LEVEL:-warning}"
WAIT_SECS="${WAIT_SECS:-60}"
BENCH_TIMEOUT="${BENCH_TIMEOUT:-900}"
ROUNDS="${ROUNDS:-3}"

# The binary and the tools (after scripts/setup.sh unless NO_BUILD=1).
bench_require() {
    if [ "${NO_BUILD:-0}" != 1 ]; then
        "$REPO_ROOT/scripts/setup.sh"
    fi
    BIN="${RAFTKV_BIN:-$REPO_ROOT/target/release/raftkv}"
    [ -x "$BIN" ] || { echo "$BIN not found: build it with scripts/setup.sh" >&2; exit 1; }
    local tool
    for tool in redis-benchmark redis-cli redis-server; do
        command -v "$tool" >/dev/null || { echo "$tool not found: run scripts/setup.sh" >&2; exit 1; }
    done
}

# True when something accepts TCP connections on 127.0.0.1:$1.
listening() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# Ports taken by this run (comma-separated, with leading and trailing commas).
USED_PORTS=","

# reserve_ports NAME P1,P2,...: fails when one of them is in use or reserved already.
reserve_ports() {
    local p list
    IFS=, read -r -a list <<<"$2"
    for p in "${list[@]}"; do
        if [[ "$USED_PORTS" == *",$p,"* ]]; then
            echo "$1: port $p is given twice" >&2
            exit 2
        fi
        if listening "$p"; then
            echo "$1: port $p is in use (is scripts/start-cluster.sh running?); stop it or choose other ports" >&2
            exit 1
        fi
        USED_PORTS="$USED_PORTS$p,"
    done
}

# A free port for a redis-server, never Redis's default 6379 (a system redis-server may own it),
# reserved for this run. Sets FREE_PORT (no $(...): the reservation must stay in this shell).
free_redis_port() {
    local p
    for _ in $(seq 1 50); do
        # Below the ephemeral range (32768+), where outgoing connections could hold the port.
        p=$((20000 + RANDOM % 12000))
        if [ "$p" != 6379 ] && [[ "$USED_PORTS" != *",$p,"* ]] && ! listening "$p"; then
            USED_PORTS="$USED_PORTS$p,"
            FREE_PORT=$p
            return
        fi
    done
    echo "no free port found for redis-server" >&2
    exit 1
}

TMP="$(mktemp -d "${TMPDIR:-/tmp}/raftkv-bench.XXXXXX")"
pids=()
# shellcheck disable=SC2034 # read by the scripts
failed=0

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    # Give them 10 s to exit, then SIGKILL. (No $(...) in here: bash runs the EXIT trap again
    # in a command substitution made inside the trap handler.)
    local i
    for ((i = 0; i < 100; i++)); do
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
    local words=() a sq="'" esc="'\\''"
    for a in "$@"; do
        if [[ "$a" =~ ^[A-Za-z0-9_./:,=+@%-]+$ ]]; then
            words+=("$a")
        else
            words+=("'${a//$sq/$esc}'")
        fi
    done
    echo "${words[*]}"
}

# Commands shown at the end (each once, in the order first run).
commands=()
record() {
    local c have
    c=$(shquote "$@")
    for have in "${commands[@]}"; do [ "$have" = "$c" ] && return; done
    commands+=("$c")
}
print_commands() {
    local c
    echo "Commands:"
    for c in "${commands[@]}"; do echo "  $c"; done
}

# Per cluster NAME: its Redis ports and node pids, comma-separated, node 1 first.
declare -A CL_PORTS CL_PIDS CL_GROUPS

# start_cluster NAME GROUPS REDIRECT REDIS_PORTS RAFT_PORTS: a raftkv cluster, one node per
# port pair, data in $TMP/NAME/node<i>, logs in $TMP/NAME-node<i>.log.
start_cluster() {
    local name=$1 groups=$2 redirect=$3 kv raft i id cmd plist=""
    IFS=, read -r -a kv <<<"$4"
    IFS=, read -r -a raft <<<"$5"
    if [ "${#kv[@]}" -ne "${#raft[@]}" ]; then
        echo "$name: $4 and $5 must have the same number of ports" >&2
        exit 2
    fi
    reserve_ports "$name" "$4"
    reserve_ports "$name" "$5"
    local cluster
    cluster="$(printf '127.0.0.1:%s,' "${raft[@]}")"
    cluster="${cluster%,}"
    for i in "${!kv[@]}"; do
        id=$((i + 1))
        cmd=("$BIN" --id "$id" --cluster "$cluster" --port "${kv[$i]}" --groups "$groups"
             --redirect "$redirect" --data-dir "$TMP/$name/node$id" --log-level "$LOG_LEVEL")
        # shellcheck disable=SC2206 # RAFTKV_ARGS is split into flags on purpose
        cmd+=(${RAFTKV_ARGS:-})
        record "${cmd[@]}"
        "${cmd[@]}" >"$TMP/$name-node$id.log" 2>&1 &
        pids+=($!)
        plist="$plist,$!"
    done
    CL_PORTS[$name]=$4
    CL_PIDS[$name]=${plist#,}
    CL_GROUPS[$name]=$groups
}

# Per redis-server NAME: its port and pid.
declare -A RS_PORT RS_PID

# start_redis NAME always|none: a redis-server on a free port, appendfsync always or no
# persistence, data in $TMP/NAME.
start_redis() {
    local name=$1 cmd
    free_redis_port
    mkdir -p "$TMP/$name"
    if [ "$2" = always ]; then
        cmd=(redis-server --port "$FREE_PORT" --bind 127.0.0.1 --appendonly yes --appendfsync always
             --save '' --dir "$TMP/$name")
    else
        cmd=(redis-server --port "$FREE_PORT" --bind 127.0.0.1 --appendonly no --save ''
             --dir "$TMP/$name")
    fi
    record "${cmd[@]}"
    "${cmd[@]}" >"$TMP/$name.log" 2>&1 &
    pids+=($!)
    RS_PORT[$name]=$FREE_PORT
    # shellcheck disable=SC2034 # read by the scripts
    RS_PID[$name]=$!
}

# group_leaders PORT: the leader id of every data group as node PORT sees it, space-separated
# in group order (0 = none known).
group_leaders() {
    timeout 3 redis-cli -p "$1" INFO raft 2>/dev/null | tr -d '\r' \
        | sed -n 's/^raft_group_[0-9]*:.*leader=\([0-9]*\).*/\1/p' | tr '\n' ' ' | sed 's/ $//'
}

# cluster_ready NAME: every node sees a leader in every group, all nodes agree, every group is
# led by its preferred node (so with as many groups as nodes every node leads one); then a SET
# through every node (following -MOVED) succeeds.
cluster_ready() {
    local name=$1 ports p first="" view groups=${CL_GROUPS[$1]}
    IFS=, read -r -a ports <<<"${CL_PORTS[$name]}"
    for p in "${ports[@]}"; do
        view=$(group_leaders "$p")
        [ -n "$view" ] || return 1
        [[ " $view " == *" 0 "* ]] && return 1
        [ "$(wc -w <<<"$view")" = "$groups" ] || return 1
        if [ -z "$first" ]; then first=$view; elif [ "$view" != "$first" ]; then return 1; fi
    done
    # With 2+ groups, group i (1-based) is handed to node ((i - 1) mod nodes) + 1 (its preferred
    # leader, src/leaders.rs) a few seconds after start: wait for that, or the hand-over would
    # come during the first runs (-MOVED replies, forwarded writes).
    if [ "$groups" -ge 2 ]; then
        local want="" g
        for ((g = 0; g < groups; g++)); do want="$want $((g % ${#ports[@]} + 1))"; done
        [ "$first" = "${want# }" ] || return 1
    fi
    for p in "${ports[@]}"; do
        [ "$(timeout 3 redis-cli -c -p "$p" SET "__probe:$p" 1 2>/dev/null)" = OK ] || return 1
    done
}

# wait_ready CLUSTER...: until every cluster is ready and every redis-server answers PING;
# fails when a server exits or after WAIT_SECS.
wait_ready() {
    log "waiting up to ${WAIT_SECS}s for raftkv ($*) and redis-server (${RS_PORT[*]})"
    local deadline=$((SECONDS + WAIT_SECS)) pid ok c r
    while [ "$SECONDS" -lt "$deadline" ]; do
        for pid in "${pids[@]}"; do
            if ! kill -0 "$pid" 2>/dev/null; then
                echo "a server exited early (pid $pid); see the logs below" >&2
                exit 1
            fi
        done
        ok=1
        for c in "$@"; do cluster_ready "$c" || { ok=0; break; }; done
        if [ "$ok" = 1 ]; then
            for r in "${!RS_PORT[@]}"; do
                [ "$(timeout 3 redis-cli -p "${RS_PORT[$r]}" PING 2>/dev/null)" = PONG ] || { ok=0; break; }
            done
        fi
        [ "$ok" = 1 ] && return
        sleep 0.5
    done
    echo "timed out waiting for the servers" >&2
    for c in "$@"; do
        IFS=, read -r -a ports <<<"${CL_PORTS[$c]}"
        for p in "${ports[@]}"; do echo "$c port $p: group leaders $(group_leaders "$p")" >&2; done
    done
    exit 1
}

# hibernating PORT: true when every group of node PORT hibernates (INFO raft).
hibernating() {
    timeout 3 redis-cli -p "$1" INFO raft 2>/dev/null | tr -d '\r' | awk -F: '
        $1 == "raft_groups" { g = $2 } $1 == "raft_groups_hibernating" { h = $2 }
        END { exit !(g != "" && g == h) }'
}

# hibernation_line CLUSTER...: "<cluster>: <hibernating groups>/<groups> per node; ...".
hibernation_line() {
    local c ports p out="" v
    for c in "$@"; do
        out="$out$c:"
        IFS=, read -r -a ports <<<"${CL_PORTS[$c]}"
        for p in "${ports[@]}"; do
            v=$(timeout 3 redis-cli -p "$p" INFO raft 2>/dev/null | tr -d '\r' | awk -F: '
                $1 == "raft_groups" { g = $2 } $1 == "raft_groups_hibernating" { h = $2 } END { print h "/" g }')
            out="$out $v"
        done
        out="$out; "
    done
    echo "${out%; }"
}

# settle PIDS: waits (at most SETTLE_SECS, default 10) until the processes (comma-separated)
# together use less than SETTLE_CPU percent of one core (default 20) over half a second, so
# the next run does not share the machine with the tail of the previous one (RocksDB flushes,
# followers applying). Counts the waits that timed out in SETTLE_TIMEOUTS. (Waiting for the
# groups to hibernate would be the exact test, but see docs/benchmarks.md, session 5: at
# 92e624b they never do.)
SETTLE_TIMEOUTS=0
settle() {
    local deadline=$((SECONDS + ${SETTLE_SECS:-10})) spids p t0 t1 s
    IFS=, read -r -a spids <<<"$1"
    [ "${#spids[@]}" -gt 0 ] || return 0
    while :; do
        t0=0 t1=0
        for p in "${spids[@]}"; do s=$(sample "$p"); t0=$((t0 + ${s%% *})); done
        sleep 0.5
        for p in "${spids[@]}"; do s=$(sample "$p"); t1=$((t1 + ${s%% *})); done
        # ticks in 0.5 s * 200 / HZ = percent of one core
        if [ $(((t1 - t0) * 200 / HZ)) -lt "${SETTLE_CPU:-20}" ]; then return 0; fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            SETTLE_TIMEOUTS=$((SETTLE_TIMEOUTS + 1))
            return 0
        fi
    done
}

# fsync_probe: milliseconds per 4 KiB write with O_DSYNC in $TMP (the disk's fsync latency now).
fsync_probe() {
    local t0 t1
    t0=$(date +%s%N)
    dd if=/dev/zero of="$TMP/fsync.probe" bs=4k count=100 oflag=dsync 2>/dev/null || true
    t1=$(date +%s%N)
    rm -f "$TMP/fsync.probe"
    awk -v d="$((t1 - t0))" 'BEGIN { printf "%.2f", d / 1e6 / 100 }'
}

# leader_port NAME: the Redis port of the node leading the cluster's first group.
leader_port() {
    local ports p
    IFS=, read -r -a ports <<<"${CL_PORTS[$1]}"
    for p in "${ports[@]}"; do
        if redis-cli -p "$p" INFO raft 2>/dev/null | tr -d '\r' | grep -qx 'raft_role:leader'; then
            echo "$p"
            return
        fi
    done
}

# pids_target_first NAME PORT: the cluster's node pids, comma-separated, the node on PORT first.
pids_target_first() {
    local ports cpids i first="" rest=""
    IFS=, read -r -a ports <<<"${CL_PORTS[$1]}"
    IFS=, read -r -a cpids <<<"${CL_PIDS[$1]}"
    for i in "${!ports[@]}"; do
        if [ "${ports[$i]}" = "$2" ]; then first=${cpids[$i]}; else rest="$rest,${cpids[$i]}"; fi
    done
    echo "$first$rest"
}

# follow_leader NAME VAR: when the leader of cluster NAME is no longer on the port in variable
# VAR, sets VAR to the leader's port and counts the move in LEADER_MOVES (a leader-targeted
# run must not silently go through a follower after an election).
LEADER_MOVES=0
follow_leader() {
    local now
    now=$(leader_port "$1")
    if [ -n "$now" ] && [ "$now" != "${!2}" ]; then
        log "$1: the leader moved from port ${!2} to $now"
        printf -v "$2" '%s' "$now"
        LEADER_MOVES=$((LEADER_MOVES + 1))
    fi
}

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

# sample_threads PID: "<thread name> <cpu ticks> <context switches>" per thread name of a
# process (its threads of one name summed: the tokio workers, RocksDB's pools), by name.
sample_threads() {
    local t
    for t in /proc/"$1"/task/*; do
        awk -v c="$(cat "$t/comm" 2>/dev/null)" '
            FNR == 1 && FILENAME ~ /stat$/ { sub(/^.*\) /, ""); ticks = $12 + $13 }
            /^(voluntary|nonvoluntary)_ctxt_switches/ { cs += $2 }
            END { gsub(/[^A-Za-z0-9_:.-]/, "_", c); print c, ticks + 0, cs + 0 }' \
            "$t/stat" "$t/status" 2>/dev/null || true
    done | awk '{ t[$1] += $2; s[$1] += $3 } END { for (k in t) print k, t[k], s[k] }' | sort
}

# thread_cost BEFORE AFTER REQUESTS: per thread name, "<name> <CPU us per request> <context
# switches per request>" between two sample_threads outputs (threads that ended are left out).
thread_cost() {
    awk -v n="$3" -v hz="$HZ" 'NR == FNR { t[$1] = $2; s[$1] = $3; next }
        { printf "%s %.2f %.3f\n", $1, ($2 - t[$1]) * 1e6 / hz / n, ($3 - s[$1]) / n }' \
        <(echo "$1") <(echo "$2")
}

# per_request BEFORE AFTER REQUESTS: "<CPU us per request> <context switches per request>".
per_request() {
    awk -v b="$1" -v a="$2" -v n="$3" -v hz="$HZ" 'BEGIN {
        split(b, x, " "); split(a, y, " ");
        printf "%.2f %.3f", (y[1] - x[1]) * 1e6 / hz / n, (y[2] - x[2]) / n }'
}

# stat_sum PORTS FIELD: the sum of one INFO stats counter over the nodes on PORTS.
stat_sum() {
    local ports p s=0 v
    IFS=, read -r -a ports <<<"$1"
    for p in "${ports[@]}"; do
        v=$(timeout 3 redis-cli -p "$p" INFO stats 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p")
        s=$((s + ${v:-0}))
    done
    echo "$s"
}

# Pids of servers idle during a run whose CPU is sampled too (comma-separated; may be empty),
# and the Redis ports whose INFO counters (MOVED replies, forwarded writes) are read around it.
IDLE_PIDS=""
STATS_PORTS=""

# run_bench NAME ROW REQUESTS PIDS ARGS...: one `redis-benchmark -q --csv ARGS` run. Its CSV
# goes to $TMP/NAME.csv; the per-request CPU and context switches of each pid in the
# comma-separated PIDS to $TMP/NAME.cost (one line per pid, in order), and per thread name of
# the first two of them to $TMP/NAME.threads ("<1|2> <thread> <cpu us> <cs>"); the CPU of IDLE_PIDS
# during the run to $TMP/NAME.idle ("<cpu us> <wall us>"); with STATS_PORTS, the MOVED replies
# and forwarded writes of those nodes during the run to $TMP/NAME.stats. A run fails on a
# non-zero exit, a timeout (redis-benchmark can hang when the server goes away), an error reply
# (redis-benchmark prints them; with --cluster it swallows -MOVED, retrying nothing, so a MOVED
# reply on any node fails the run too), or no CSV row named ROW.
run_bench() {
    local name=$1 row=$2 reqs=$3 pidlist=$4
    shift 4
    local cmd=(redis-benchmark -q --csv "$@")
    record "${cmd[@]}"
    log "$name: $(shquote "${cmd[@]}")"
    local rc=0 p before=() idle_before=() i=0 watched idle_list moved0=0 fwd0=0 t0 t1
    IFS=, read -r -a watched <<<"$pidlist"
    IFS=, read -r -a idle_list <<<"$IDLE_PIDS"
    if [ -n "$STATS_PORTS" ]; then
        moved0=$(stat_sum "$STATS_PORTS" total_moved_replies)
        fwd0=$(stat_sum "$STATS_PORTS" total_forwarded_writes)
    fi
    for p in "${watched[@]}"; do before+=("$(sample "$p")"); done
    # Per thread, for the first two watched processes (the target / leader and a follower).
    local tw=("${watched[@]:0:2}") tbefore=()
    for p in "${tw[@]}"; do tbefore+=("$(sample_threads "$p")"); done
    for p in "${idle_list[@]}"; do idle_before+=("$(sample "$p")"); done
    t0=$(date +%s%N)
    timeout --kill-after=10 "$BENCH_TIMEOUT" "${cmd[@]}" >"$TMP/$name.csv" 2>"$TMP/$name.err" || rc=$?
    t1=$(date +%s%N)
    : >"$TMP/$name.threads"
    for i in "${!tw[@]}"; do
        thread_cost "${tbefore[$i]}" "$(sample_threads "${tw[$i]}")" "$reqs" \
            | sed "s/^/$((i + 1)) /" >>"$TMP/$name.threads"
    done
    i=0
    : >"$TMP/$name.cost"
    for p in "${watched[@]}"; do
        per_request "${before[$i]}" "$(sample "$p")" "$reqs" >>"$TMP/$name.cost"
        echo >>"$TMP/$name.cost"
        i=$((i + 1))
    done
    local ticks=0 a b
    i=0
    for p in "${idle_list[@]}"; do
        a=$(sample "$p"); b=${idle_before[$i]}
        ticks=$((ticks + ${a%% *} - ${b%% *}))
        i=$((i + 1))
    done
    echo "$((ticks * 1000000 / HZ)) $(((t1 - t0) / 1000))" >"$TMP/$name.idle"
    local why=""
    if [ -n "$STATS_PORTS" ]; then
        local moved fwd
        moved=$(($(stat_sum "$STATS_PORTS" total_moved_replies) - moved0))
        fwd=$(($(stat_sum "$STATS_PORTS" total_forwarded_writes) - fwd0))
        echo "$moved $fwd" >"$TMP/$name.stats"
        if [ "$moved" -gt 0 ]; then why="; $moved -MOVED replies during the run"; fi
    fi
    if [ "$rc" != 0 ]; then why="$why; exit $rc"; fi
    if grep -qi 'error' "$TMP/$name.csv" "$TMP/$name.err"; then why="$why; error replies"; fi
    if [ -z "$(field "$TMP/$name.csv" "$row" rps)" ]; then why="$why; no row \"$row\""; fi
    if [ -n "$why" ]; then
        echo "FAILED: $name (${why#; })" >&2
        cat "$TMP/$name.csv" "$TMP/$name.err" >&2
        # shellcheck disable=SC2034 # read by the scripts
        failed=1
    fi
}

# field FILE ROW COLUMN: one value of redis-benchmark's CSV
# ("test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"),
# from the row named ROW or "ROW (...)" (e.g. "MSET (10 keys)"). Lines before the header
# (--cluster prints the masters first) are skipped.
field() {
    awk -F, -v t="$2" -v col="$3" '
        !hdr { if ($1 == "\"test\"") { hdr = 1; for (i = 1; i <= NF; i++) { h = $i; gsub(/"/, "", h); idx[h] = i } }; next }
        { name = $1; gsub(/"/, "", name) }
        (name == t || index(name, t " (") == 1) && (col in idx) { v = $(idx[col]); gsub(/"/, "", v); print v; exit }
    ' "$1" 2>/dev/null || true
}

# median V...: the middle value (the lower middle for an even count); "-" when none.
median() {
    printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "-" }'
}

# ratio A B: A / B with two decimals, "-" unless both are positive numbers.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }'; }

# mean_lines FILE LINES FIELD: the mean of FIELD over lines LINES ("1", "2-3") of FILE;
# sum_lines: their sum.
mean_lines() {
    awk -v lines="$2" -v f="$3" 'BEGIN { split(lines, l, "-"); lo = l[1]; hi = (l[2] == "" ? l[1] : l[2]) }
        NR >= lo && NR <= hi { s += $f; n++ } END { if (n) printf "%.3f", s / n }' "$1" 2>/dev/null || true
}
sum_lines() {
    awk -v lines="$2" -v f="$3" 'BEGIN { split(lines, l, "-"); lo = l[1]; hi = (l[2] == "" ? l[1] : l[2]) }
        NR >= lo && NR <= hi { s += $f; n++ } END { if (n) printf "%.3f", s }' "$1" 2>/dev/null || true
}

# version_line: redis-benchmark's version, cores, raftkv's commit.
version_line() {
    echo "$(redis-benchmark --version 2>/dev/null || true); $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg);" \
         "raftkv $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo '+dirty')"
}
