//! redis-py, an ordinary client library, used as its users use it against a real cluster:
//! `Lock` (SET NX PX and its Lua release/extend scripts through EVALSHA), `register_script`,
//! the transaction pipeline (`pipeline(transaction=True)`, `transaction()` with WATCH
//! retrying on a concurrent write from another node), a blocking-pop job queue across
//! nodes, and `RedisCluster` on the sharded cluster in both routing modes. Skipped when no
//! Python with redis-py is installed (see `common::python`); scripts/test.sh requires it.

mod common;

use common::{python, Cluster};

fn ports(cl: &Cluster, n: usize) -> Vec<String> {
    (0..n).map(|i| cl.port(i).to_string()).collect()
}

#[test]
fn lock_and_registered_scripts() {
    let Some(py) = python::python() else { return };
    let cl = Cluster::start(3);
    const PY: &str = r#"
import sys, redis
r = redis.Redis(port=int(sys.argv[1]))
r2 = redis.Redis(port=int(sys.argv[3]))
lock = r.lock("pylock", timeout=10)
assert lock.acquire(blocking=False)
other = r2.lock("pylock", timeout=10)
assert not other.acquire(blocking=False)
assert lock.extend(20)
assert r2.pttl("pylock") > 10000, r2.pttl("pylock")
assert lock.reacquire()
lock.release()
assert r2.get("pylock") is None
try:
    lock.release()
    raise SystemExit("released twice")
except redis.exceptions.LockError:
    pass
assert other.acquire(blocking=False)
other.release()
with r.lock("ctx", timeout=5, blocking_timeout=5):
    assert r2.exists("ctx") == 1
assert r2.exists("ctx") == 0
s = r.register_script("return redis.call('incrby', KEYS[1], ARGV[1])")
assert s(keys=["pyc"], args=[5]) == 5
assert r2.evalsha(s.sha, 1, "pyc", 2) == 7
print("ok")
"#;
    python::run(&py, PY, &ports(&cl, 3));
}

#[test]
fn transaction_pipeline_and_watch_retry() {
    let Some(py) = python::python() else { return };
    let cl = Cluster::start(3);
    const PY: &str = r#"
import sys, redis
r = redis.Redis(port=int(sys.argv[1]))
r3 = redis.Redis(port=int(sys.argv[3]))
with r.pipeline() as p:              # transaction=True is redis-py's default
    p.set("tx:a", 1).incr("tx:a").lpush("tx:l", "x", "y").hset("tx:h", "f", "v").get("tx:a")
    assert p.execute() == [True, 2, 2, 1, b"2"], "pipeline"
assert r3.get("tx:a") == b"2" and r3.llen("tx:l") == 2
attempts = []
def bump(pipe):
    attempts.append(1)
    v = int(pipe.get("tx:a"))
    if len(attempts) == 1:
        r3.set("tx:a", 100)          # a concurrent write from another node
    pipe.multi()
    pipe.set("tx:a", v + 1)
res = r.transaction(bump, "tx:a")
assert res == [True], res
assert len(attempts) == 2, attempts
assert r3.get("tx:a") == b"101", r3.get("tx:a")
with r.pipeline() as p:
    p.watch("tx:w")
    p.multi()
    p.set("tx:w", 1)
    r3.set("tx:w", 2)
    try:
        p.execute()
        raise SystemExit("EXEC ran despite the watched write")
    except redis.exceptions.WatchError:
        pass
assert r.get("tx:w") == b"2"
print("ok")
"#;
    python::run(&py, PY, &ports(&cl, 3));
}

#[test]
fn blocking_pop_queue_across_nodes() {
    let Some(py) = python::python() else { return };
    let cl = Cluster::start(3);
    const PY: &str = r#"
import sys, threading, redis
r1 = redis.Redis(port=int(sys.argv[1]))
r3 = redis.Redis(port=int(sys.argv[3]))
got = []
def worker():
    c = redis.Redis(port=int(sys.argv[3]))
    for _ in range(3):
        got.append(c.blpop(["jobs"], timeout=20))
t = threading.Thread(target=worker)
t.start()
for i in range(3):
    r1.rpush("jobs", "job%d" % i)
t.join(30)
assert not t.is_alive(), "worker still blocked"
assert got == [(b"jobs", b"job0"), (b"jobs", b"job1"), (b"jobs", b"job2")], got
assert r3.brpop(["jobs"], timeout=0.2) is None
r1.rpush("src", "a")
assert r3.blmove("src", "dst", 5, "LEFT", "RIGHT") == b"a"
assert r1.lrange("dst", 0, -1) == [b"a"]
print("ok")
"#;
    python::run(&py, PY, &ports(&cl, 3));
}

/// redis-py's RedisCluster: slot map from CLUSTER SLOTS, keys over every slot, multi-key
/// commands per slot, hash-tagged pipelines, in both routing modes.
fn redis_cluster_client(mode: &str) {
    let Some(py) = python::python() else { return };
    let cl = Cluster::start_with(3, &["--groups", "3", "--redirect", mode]);
    for i in 0..3 {
        cl.wait_group_leaders(i, 3);
    }
    const PY: &str = r#"
import sys, redis
from redis.cluster import RedisCluster
rc = RedisCluster(host="127.0.0.1", port=int(sys.argv[1]))
masters = {n.name for n in rc.get_primaries()}
assert len(masters) >= 1, masters
for i in range(300):
    assert rc.set("k%d" % i, i)
for i in range(300):
    assert rc.get("k%d" % i) == str(i).encode(), i
assert rc.mset_nonatomic({"m1": 1, "m2": 2, "m3": 3})
assert rc.mget_nonatomic(["m1", "m2", "m3", "nope"]) == [b"1", b"2", b"3", None]
assert rc.mset({"{t}a": 1, "{t}b": 2})
try:
    rc.execute_command("MSET", "a", 1, "b", 2)
    raise SystemExit("CROSSSLOT not raised")
except redis.exceptions.RedisClusterException:
    pass
except redis.exceptions.ResponseError as e:
    assert "CROSSSLOT" in str(e), e
p = rc.pipeline()
for i in range(50):
    p.incr("{p}c")
assert p.execute()[-1] == 50
assert rc.delete("k1", "k2", "nope") == 2
assert rc.keyslot("foo") == 12182
print("ok")
"#;
    let mut args = ports(&cl, 3);
    args.truncate(1);
    python::run(&py, PY, &args);
}

#[test]
fn redis_cluster_client_forward_mode() {
    redis_cluster_client("forward");
}

#[test]
fn redis_cluster_client_moved_mode() {
    redis_cluster_client("moved");
}
