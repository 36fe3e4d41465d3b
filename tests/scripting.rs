//! Lua scripting on a real 3-node cluster: EVAL's replies per type on the wire (RESP2 and
//! RESP3) and Redis's error texts, the `Lock` pattern (SET NX PX, the release and
//! extend scripts), a script using TIME and math.random leaving identical state on every
//! node, a runaway script aborted without effects while the cluster keeps serving, EVALSHA
//! after SCRIPT LOAD on another node, after a restart and after a catch-up by snapshot, and
//! FUNCTION LOAD / FCALL / FCALL_RO / FUNCTION LIST surviving a restart.

mod common;

use std::io::Write;
use std::time::Duration;

use common::raw::Raw;
use common::{wait_for, Cluster};

/// EVAL on a raw connection.
trait Eval {
    fn eval(&mut self, body: &str, keys: &[&str], args: &[&str]) -> String;
}

impl Eval for Raw {
    fn eval(&mut self, body: &str, keys: &[&str], args: &[&str]) -> String {
        let n = keys.len().to_string();
        let mut a = vec!["EVAL", body, n.as_str()];
        a.extend_from_slice(keys);
        a.extend_from_slice(args);
        self.cmd(&a)
    }
}

fn bulk(s: &str) -> String {
    format!("${}\r\n{s}\r\n", s.len())
}

#[test]
fn eval_replies_and_errors_on_the_wire() {
    let cl = Cluster::start(3);
    let mut c = Raw::to(&cl, 1);
    resp2_replies(&mut c);
    errors(&mut c);
    resp3_replies(&mut c);
}

/// Lua values and command replies as a RESP2 client gets them.
fn resp2_replies(c: &mut Raw) {
    assert_eq!(c.eval("return 'hello'", &[], &[]), bulk("hello"));
    assert_eq!(c.eval("return 100.5", &[], &[]), ":100\r\n");
    assert_eq!(c.eval("return true", &[], &[]), ":1\r\n");
    assert_eq!(c.eval("return false", &[], &[]), "$-1\r\n");
    assert_eq!(c.eval("return {ok='fine'}", &[], &[]), "+fine\r\n");
    assert_eq!(
        c.eval("return {err='ERR this is an error'}", &[], &[]),
        "-ERR this is an error\r\n"
    );
    assert_eq!(
        c.eval("return {1,2,3,'ciao',{1,2}}", &[], &[]),
        "*5\r\n:1\r\n:2\r\n:3\r\n$4\r\nciao\r\n*2\r\n:1\r\n:2\r\n"
    );
    assert_eq!(
        c.eval(
            "return {KEYS[1],KEYS[2],ARGV[1],ARGV[2]}",
            &["a{t}", "b{t}"],
            &["c", "d"]
        ),
        "*4\r\n$4\r\na{t}\r\n$4\r\nb{t}\r\n$1\r\nc\r\n$1\r\nd\r\n"
    );
    c.cmd(&["SET", "mykey", "myval"]);
    assert_eq!(
        c.eval("return redis.call('get',KEYS[1])", &["mykey"], &[]),
        bulk("myval")
    );
    assert_eq!(
        c.cmd(&[
            "EVALSHA",
            "fd758d1589d044dd850a6f05d52f2eefd27f033f",
            "1",
            "mykey"
        ]),
        bulk("myval"),
        "EVAL caches its script"
    );
    assert_eq!(
        c.cmd(&["EVALSHA", "ffd632c7d33e571e9f24556ebed26c3479a87130", "0"]),
        "-NOSCRIPT No matching script. Please use EVAL.\r\n"
    );
}

/// Redis's error texts, with the script's name and line.
fn errors(c: &mut Raw) {
    assert_eq!(
        c.cmd(&["EVAL", "return 1", "2", "a"]),
        "-ERR Number of keys can't be greater than number of args\r\n"
    );
    assert_eq!(
        c.cmd(&["EVAL", "return 1", "-12"]),
        "-ERR Number of keys can't be negative\r\n"
    );
    assert_eq!(
        c.eval("return 1", &["a", "b"], &[]),
        "-CROSSSLOT Keys in the request don't hash to the same slot\r\n"
    );
    let sha = script_sha("return a");
    let e = c.eval("return a", &[], &[]);
    assert_eq!(e, format!("-ERR user_script:1: Script attempted to access nonexistent global variable 'a' script: {sha}, on @user_script:1.\r\n"));
    let e = c.eval("a = 10", &[], &[]);
    assert!(e.contains("Attempt to modify a readonly table"), "{e}");
    c.cmd(&["SET", "str", "x"]);
    let e = c.eval("return redis.call('incr', KEYS[1])", &["str"], &[]);
    assert!(
        e.starts_with("-ERR value is not an integer or out of range script: ")
            && e.ends_with(", on @user_script:1.\r\n"),
        "{e}"
    );
    let e = c.eval("return redis.call('nosuch')", &[], &[]);
    assert!(
        e.starts_with("-ERR Unknown Redis command called from script"),
        "{e}"
    );
    let e = c.eval("return redis.call('get', 'other')", &["mykey"], &[]);
    assert!(
        e.starts_with("-ERR Script attempted to access keys that do not hash to the same slot"),
        "{e}"
    );
    let e = c.cmd(&["EVAL_RO", "return redis.call('del', KEYS[1])", "1", "mykey"]);
    assert!(
        e.starts_with("-ERR Write commands are not allowed from read-only scripts."),
        "{e}"
    );
    assert_eq!(c.cmd(&["GET", "mykey"]), bulk("myval"));
    assert_eq!(
        c.cmd(&["SCRIPT", "KILL"]),
        "-NOTBUSY No scripts in execution right now.\r\n"
    );
}

/// RESP3: the script chooses its protocol with redis.setresp.
fn resp3_replies(c: &mut Raw) {
    assert!(c.cmd(&["HELLO", "3"]).starts_with('%'));
    assert_eq!(c.eval("return nil", &[], &[]), "_\r\n");
    assert_eq!(c.eval("return false", &[], &[]), "_\r\n");
    assert_eq!(c.eval("redis.setresp(3) return true", &[], &[]), "#t\r\n");
    assert_eq!(
        c.eval("redis.setresp(3) return {double=1.5}", &[], &[]),
        ",1.5\r\n"
    );
    assert_eq!(
        c.eval("redis.setresp(3) return {map={a=1}}", &[], &[]),
        "%1\r\n$1\r\na\r\n:1\r\n"
    );
    assert_eq!(
        c.eval(
            "redis.setresp(3) return {big_number='123456789012345678901234567890'}",
            &[],
            &[]
        ),
        "(123456789012345678901234567890\r\n"
    );
    c.cmd(&["HSET", "h", "f", "v"]);
    assert_eq!(
        c.eval(
            "redis.setresp(3) return redis.call('hgetall', KEYS[1]).map.f",
            &["h"],
            &[]
        ),
        bulk("v")
    );
    assert_eq!(
        c.eval("return redis.call('hgetall', KEYS[1])", &["h"], &[]),
        "*2\r\n$1\r\nf\r\n$1\r\nv\r\n"
    );
}

const RELEASE: &str =
    "if redis.call(\"get\",KEYS[1]) == ARGV[1] then return redis.call(\"del\",KEYS[1]) else return 0 end";
const EXTEND: &str =
    "if redis.call(\"get\",KEYS[1]) ~= ARGV[1] then return 0 end return redis.call(\"pexpire\",KEYS[1],ARGV[2])";

#[test]
fn lock_pattern_acquire_extend_release() {
    let cl = Cluster::start(3);
    let mut a = Raw::to(&cl, 0);
    let mut b = Raw::to(&cl, 2);
    assert_eq!(
        a.cmd(&["SET", "lock", "tok-a", "NX", "PX", "10000"]),
        "+OK\r\n"
    );
    assert_eq!(
        b.cmd(&["SET", "lock", "tok-b", "NX", "PX", "10000"]),
        "$-1\r\n"
    );
    // Only the holder's token releases or extends it.
    assert_eq!(b.eval(RELEASE, &["lock"], &["tok-b"]), ":0\r\n");
    assert_eq!(b.eval(EXTEND, &["lock"], &["tok-b", "60000"]), ":0\r\n");
    assert_eq!(a.eval(EXTEND, &["lock"], &["tok-a", "60000"]), ":1\r\n");
    let ttl: i64 = b.cmd(&["PTTL", "lock"]).trim()[1..].parse().unwrap();
    assert!(ttl > 10000, "extended: {ttl}");
    let sha = a.cmd(&["SCRIPT", "LOAD", RELEASE]);
    let sha = sha.lines().nth(1).unwrap().to_string();
    assert_eq!(b.cmd(&["EVALSHA", &sha, "1", "lock", "tok-b"]), ":0\r\n");
    assert_eq!(b.cmd(&["EVALSHA", &sha, "1", "lock", "tok-a"]), ":1\r\n");
    for i in 0..3 {
        assert_eq!(
            Raw::to(&cl, i).cmd(&["EXISTS", "lock"]),
            ":0\r\n",
            "node {i}"
        );
    }
    assert_eq!(
        b.cmd(&["SET", "lock", "tok-b", "NX", "PX", "10000"]),
        "+OK\r\n"
    );
}

/// SCRIPT KILL stops a runaway EVAL_RO on its node while other clients keep being served;
/// with nothing running it answers NOTBUSY; FUNCTION KILL does not reach an EVAL_RO run.
#[test]
fn script_kill_stops_a_read_only_runaway() {
    let cl = Cluster::start(3);
    let port = cl.port(1);
    let runner = std::thread::spawn(move || {
        let mut r = Raw::port(port);
        r.cmd(&["EVAL_RO", "local i = 0 while true do i = i + 1 end", "0"])
    });
    let mut admin = Raw::to(&cl, 1);
    wait_for(
        Duration::from_secs(20),
        "SCRIPT KILL reaching the run",
        || {
            // Served while the script runs.
            assert_eq!(admin.cmd(&["SET", "k", "v"]), "+OK\r\n");
            assert_eq!(
                admin.cmd(&["FUNCTION", "KILL"]),
                "-NOTBUSY No scripts in execution right now.\r\n"
            );
            (admin.cmd(&["SCRIPT", "KILL"]) == "+OK\r\n").then_some(())
        },
    );
    let reply = runner.join().expect("runner");
    assert!(
        reply.starts_with("-ERR Script killed by user with SCRIPT KILL..."),
        "{reply}"
    );
    assert_eq!(
        admin.cmd(&["SCRIPT", "KILL"]),
        "-NOTBUSY No scripts in execution right now.\r\n"
    );
}

#[test]
fn time_and_random_give_the_same_state_on_every_node() {
    let cl = Cluster::start(3);
    let mut c = Raw::to(&cl, 1);
    let body = "local t = redis.call('time') \
        redis.call('set', KEYS[1], t[1] .. '.' .. t[2] .. ':' .. math.random(1000000) .. ':' .. math.random()) \
        redis.call('sadd', KEYS[2], 'a', 'b', 'c', 'd', 'e', 'f') \
        redis.call('set', KEYS[3], redis.call('srandmember', KEYS[2]) .. redis.call('spop', KEYS[2])) \
        redis.call('set', KEYS[1] .. 'px', 'v', 'PX', 100000) \
        return redis.call('get', KEYS[1])";
    let keys = ["{r}t", "{r}s", "{r}p"];
    let first = c.eval(body, &keys, &[]);
    let second = c.eval(body, &keys, &[]);
    assert!(
        first.starts_with('$') && second.starts_with('$'),
        "{first} {second}"
    );
    assert_ne!(first, second, "each entry has its own time and seed");
    let state = |i: usize| {
        let mut r = Raw::to(&cl, i);
        [
            r.cmd(&["GET", "{r}t"]),
            r.cmd(&["GET", "{r}p"]),
            r.cmd(&["SMEMBERS", "{r}s"]),
            r.cmd(&["PEXPIRETIME", "{r}tpx"]),
        ]
    };
    let want = state(1);
    assert_eq!(want[0], second);
    for i in [0, 2] {
        wait_for(Duration::from_secs(20), "replicas agree", || {
            (state(i) == want).then_some(())
        });
    }
}

#[test]
fn a_runaway_script_is_aborted_without_effects() {
    let cl = Cluster::start(3);
    let mut c = Raw::to(&cl, 0);
    c.cmd(&["SET", "{k}a", "before"]);
    for body in [
        "redis.call('set', KEYS[1], 'during') redis.call('del', '{k}a') while true do end",
        "redis.call('set', KEYS[1], 'during') while true do pcall(function() while true do end end) end",
    ] {
        let e = c.eval(body, &["{k}b"], &[]);
        assert!(e.contains("Lua instructions (none of its writes were applied)"), "{e}");
    }
    for i in 0..3 {
        let mut r = Raw::to(&cl, i);
        assert_eq!(r.cmd(&["GET", "{k}a"]), bulk("before"), "node {i}");
        assert_eq!(r.cmd(&["EXISTS", "{k}b"]), ":0\r\n", "node {i}");
    }
    // The cluster still serves writes and reads everywhere.
    for i in 0..3 {
        let mut r = Raw::to(&cl, i);
        assert_eq!(r.cmd(&["SET", &format!("after{i}"), "x"]), "+OK\r\n");
        assert_eq!(
            r.eval(
                "return redis.call('get', KEYS[1])",
                &[&format!("after{i}")],
                &[]
            ),
            bulk("x")
        );
    }
}

#[test]
fn evalsha_works_on_other_nodes_after_restart_and_snapshot() {
    let mut cl = Cluster::start_with(3, &["--snapshot-entries", "0"]);
    let body = "return redis.call('incr', KEYS[1])";
    let sha = Raw::to(&cl, 0).cmd(&["SCRIPT", "LOAD", body]);
    let sha = sha.lines().nth(1).unwrap().to_string();
    assert_eq!(sha, script_sha(body));
    for (i, want) in [(1, ":1\r\n"), (2, ":2\r\n")] {
        assert_eq!(
            Raw::to(&cl, i).cmd(&["EVALSHA", &sha, "1", "n"]),
            want,
            "node {i}"
        );
    }
    let ro = "#!lua flags=no-writes\nreturn redis.call('get', KEYS[1])";
    let ro_sha = Raw::to(&cl, 1).cmd(&["SCRIPT", "LOAD", ro]);
    let ro_sha = ro_sha.lines().nth(1).unwrap().to_string();
    assert_eq!(
        Raw::to(&cl, 2).cmd(&["EVALSHA_RO", &ro_sha, "1", "n"]),
        bulk("2")
    );
    assert_eq!(
        Raw::to(&cl, 2).cmd(&["EVALSHA", &ro_sha, "1", "n"]),
        bulk("2")
    );
    cl.kill(2);
    cl.restart(2);
    cl.wait_serving(2);
    let mut c = Raw::to(&cl, 2);
    assert_eq!(
        c.cmd(&["SCRIPT", "EXISTS", &sha, &ro_sha, "0000"]),
        "*3\r\n:1\r\n:1\r\n:0\r\n"
    );
    assert_eq!(c.cmd(&["EVALSHA", &sha, "1", "n"]), ":3\r\n");
    // A follower that misses the SCRIPT LOAD and catches up by snapshot has the script too.
    let leader = cl.wait_leader();
    let f = (leader + 1) % 3;
    cl.kill(f);
    let mut l = Raw::to(&cl, leader);
    let late = "return 'late'";
    let late_sha = l
        .cmd(&["SCRIPT", "LOAD", late])
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    let lib = "#!lua name=snaplib\nredis.register_function('snapf', function() return 'fn' end)";
    assert_eq!(l.cmd(&["FUNCTION", "LOAD", lib]), bulk("snaplib"));
    for i in 0..20 {
        l.cmd(&["SET", &format!("w{i}"), "x"]);
    }
    assert!(l.cmd(&["RAFT.SNAPSHOT"]).starts_with(':'));
    cl.restart(f);
    wait_for(
        Duration::from_secs(60),
        "follower restored a snapshot",
        || {
            (cl.info_field(f, "raft_snapshots_restored")?
                .parse::<u64>()
                .ok()?
                >= 1)
                .then_some(())
        },
    );
    let mut c = Raw::to(&cl, f);
    assert_eq!(c.cmd(&["EVALSHA", &late_sha, "0"]), bulk("late"));
    let ro = c.cmd(&["FCALL_RO", "snapf", "0"]);
    assert!(ro.contains("Can not execute"), "{ro}");
    assert_eq!(c.cmd(&["FCALL", "snapf", "0"]), bulk("fn"));
}

fn script_sha(body: &str) -> String {
    // The sha Redis names the script by, as SCRIPT LOAD answered on another node.
    let out = std::process::Command::new("sha1sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut ch| {
            ch.stdin.take().unwrap().write_all(body.as_bytes())?;
            ch.wait_with_output()
        })
        .expect("sha1sum");
    String::from_utf8_lossy(&out.stdout)[..40].to_string()
}

#[test]
fn functions_load_call_list_and_survive_a_restart() {
    let mut cl = Cluster::start(3);
    let lib = "#!lua name=mylib\n\
        redis.register_function('incrby2', function(keys, args) return redis.call('incrby', keys[1], 2) end)\n\
        redis.register_function{function_name='getit', callback=function(keys) return redis.call('get', keys[1]) end, flags={'no-writes'}, description='reads'}";
    let mut c = Raw::to(&cl, 1);
    assert_eq!(c.cmd(&["FUNCTION", "LOAD", lib]), bulk("mylib"));
    assert_eq!(
        c.cmd(&["FUNCTION", "LOAD", lib]),
        "-ERR Library 'mylib' already exists\r\n"
    );
    assert_eq!(c.cmd(&["FUNCTION", "LOAD", "REPLACE", lib]), bulk("mylib"));
    assert_eq!(
        Raw::to(&cl, 2).cmd(&["FCALL", "incrby2", "1", "fk"]),
        ":2\r\n"
    );
    assert_eq!(
        Raw::to(&cl, 0).cmd(&["FCALL_RO", "getit", "1", "fk"]),
        bulk("2")
    );
    assert_eq!(
        Raw::to(&cl, 0).cmd(&["FCALL", "getit", "1", "fk"]),
        bulk("2")
    );
    assert_eq!(
        Raw::to(&cl, 0).cmd(&["FCALL", "nosuch", "0"]),
        "-ERR Function not found\r\n"
    );
    let e = Raw::to(&cl, 0).cmd(&["FCALL_RO", "incrby2", "1", "fk"]);
    assert_eq!(
        e,
        "-ERR Can not execute a script with write flag using *_ro command.\r\n"
    );
    let list = |cl: &Cluster, i: usize| Raw::to(cl, i).cmd(&["FUNCTION", "LIST"]);
    let want = list(&cl, 1);
    assert!(want.contains("library_name") && want.contains("mylib") && want.contains("LUA"));
    assert!(
        want.contains("+no-writes\r\n") && want.contains("$5\r\nreads\r\n"),
        "{want}"
    );
    for i in [0, 2] {
        wait_for(Duration::from_secs(20), "FUNCTION LIST agrees", || {
            (list(&cl, i) == want).then_some(())
        });
    }
    cl.kill(0);
    cl.restart(0);
    cl.wait_serving(0);
    wait_for(
        Duration::from_secs(20),
        "FUNCTION LIST after restart",
        || (list(&cl, 0) == want).then_some(()),
    );
    assert_eq!(
        Raw::to(&cl, 0).cmd(&["FCALL", "incrby2", "1", "fk"]),
        ":4\r\n"
    );
    let dump = Raw::to(&cl, 0).cmd(&["FUNCTION", "DUMP"]);
    assert!(dump.starts_with('$'));
    assert_eq!(
        Raw::to(&cl, 0).cmd(&["FUNCTION", "DELETE", "mylib"]),
        "+OK\r\n"
    );
    assert_eq!(Raw::to(&cl, 0).cmd(&["FUNCTION", "LIST"]), "*0\r\n");
    assert_eq!(
        Raw::to(&cl, 0).cmd(&["FUNCTION", "DELETE", "mylib"]),
        "-ERR Library not found\r\n"
    );
}
