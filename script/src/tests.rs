//! The engine against a fake host: replies per type, errors with script names and lines,
//! the sandbox's protections, determinism of `math.random`, the budget, libraries.

use super::*;

/// Answers GET from a map, SET into it, errors for INCR on a non-number; records calls.
#[derive(Default)]
struct Fake {
    data: HashMap<Vec<u8>, Vec<u8>>,
    calls: Vec<Vec<Bytes>>,
}

impl Host for Fake {
    fn call(&mut self, argv: Vec<Bytes>) -> Reply {
        self.calls.push(argv.clone());
        let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
        match (name.as_str(), &argv[1..]) {
            ("get", [k]) => self
                .data
                .get(&k[..])
                .map_or(Reply::Nil, |v| Reply::bulk(v.clone())),
            ("set", [k, v]) => {
                self.data.insert(k.to_vec(), v.to_vec());
                Reply::ok()
            }
            ("incr", [_]) => Reply::err("ERR value is not an integer or out of range"),
            ("hgetall", _) => Reply::Map(vec![(Reply::bulk("f"), Reply::bulk("v"))]),
            ("ping", _) => Reply::Status("PONG".into()),
            _ => Reply::err("ERR Unknown Redis command called from script"),
        }
    }
}

fn eval_with(host: &mut Fake, body: &str, keys: &[&str], args: &[&str]) -> Outcome {
    let keys: Vec<Bytes> = keys.iter().map(|k| Bytes::from(k.to_string())).collect();
    let args: Vec<Bytes> = args.iter().map(|k| Bytes::from(k.to_string())).collect();
    let sha = sha1_hex(body.as_bytes());
    let inv = Invocation {
        name: &sha,
        keys: &keys,
        args: &args,
        seed: 42,
        killable: false,
    };
    Engine::new().eval(host, body.as_bytes(), &inv)
}

fn eval(body: &str) -> Reply {
    match eval_with(&mut Fake::default(), body, &[], &[]) {
        Outcome::Done(r) => r,
        Outcome::Aborted(r) => panic!("aborted: {r:?}"),
    }
}

fn err(body: &str) -> String {
    match eval(body) {
        Reply::Error(e) => e,
        other => panic!("not an error: {other:?}"),
    }
}

#[test]
fn returns_each_type() {
    assert_eq!(eval("return 'hello'"), Reply::bulk("hello"));
    assert_eq!(eval("return 100.5"), Reply::Int(100));
    assert_eq!(eval("return true"), Reply::Int(1));
    assert_eq!(eval("return false"), Reply::Nil);
    assert_eq!(eval("return {ok='fine'}"), Reply::Status("fine".into()));
    assert_eq!(
        eval("return {err='ERR this is an error'}"),
        Reply::err("ERR this is an error")
    );
    assert_eq!(eval("return _G"), Reply::Array(vec![]));
    assert_eq!(
        eval("redis.setresp(3) return {map={a=1}}"),
        Reply::Map(vec![(Reply::bulk("a"), Reply::Int(1))])
    );
    assert_eq!(eval("redis.setresp(3) return true"), Reply::Bool(true));
    assert_eq!(
        eval("redis.setresp(3) return {double=1.5}"),
        Reply::Double(1.5)
    );
    assert_eq!(
        eval("return redis.status_reply('OK')"),
        Reply::Status("OK".into())
    );
    assert_eq!(
        eval("return redis.error_reply('My Error')"),
        Reply::err("My Error")
    );
    assert_eq!(
        eval("return redis.sha1hex('Pizza & Mandolino')"),
        Reply::bulk("74822d82031af7493c20eefa13bd07ec4fada82f")
    );
    assert_eq!(eval("return redis.REDIS_VERSION"), Reply::bulk("7.0.0"));
    assert_eq!(eval("return redis.LOG_WARNING"), Reply::Int(3));
    assert_eq!(
        eval("return cjson.encode({1,'a'})"),
        Reply::bulk("[1,\"a\"]")
    );
    assert_eq!(eval("return bit.band(7, 3)"), Reply::Int(3));
    assert_eq!(
        eval("local a, b = cmsgpack.unpack(cmsgpack.pack({1, 'x'}, 7)) return {a[2], b}"),
        Reply::Array(vec![Reply::bulk("x"), Reply::Int(7)])
    );
    assert_eq!(
        eval("return {struct.unpack('>I2 s', struct.pack('>I2 s', 258, 'hi'))}"),
        Reply::Array(vec![Reply::Int(258), Reply::bulk("hi"), Reply::Int(6)])
    );
    assert_eq!(eval("return struct.size('i4 d')"), Reply::Int(12));
    assert!(err("return struct.unpack('c18446744073709551615', 'x', 2)")
        .contains("data string too short"));
    assert_eq!(
        eval("return bit.tohex(1, -2147483648)"),
        Reply::bulk("00000001")
    );
    assert!(err("return struct.pack('q')").contains("user_script:1: invalid format option 'q'"));
    assert!(err("cmsgpack.pack = 1").contains("Attempt to modify a readonly table"));
    assert_eq!(eval("return tostring({}) == tostring({})"), Reply::Nil);
    assert_eq!(
        eval("return tostring({})"),
        Reply::bulk("table: 0x00000001")
    );
}

#[test]
fn keys_argv_and_calls() {
    let mut h = Fake::default();
    let out = eval_with(
        &mut h,
        "redis.call('set', KEYS[1], ARGV[1]) return {KEYS[1], ARGV[1], redis.call('get', KEYS[1]), 3.0, 0.1}",
        &["k"],
        &["v"],
    );
    assert_eq!(
        out,
        Outcome::Done(Reply::Array(vec![
            Reply::bulk("k"),
            Reply::bulk("v"),
            Reply::bulk("v"),
            Reply::Int(3),
            Reply::Int(0)
        ]))
    );
    let out = eval_with(&mut h, "return redis.call('set', 'n', 0.1)", &[], &[]);
    assert_eq!(out, Outcome::Done(Reply::ok()));
    assert_eq!(
        h.data.get(&b"n"[..]),
        Some(&b"0.10000000000000001".to_vec())
    );
    assert_eq!(eval("return redis.call('get', 'nothing')"), Reply::Nil);
    assert_eq!(
        eval("return type(redis.call('get', 'nothing'))"),
        Reply::bulk("boolean")
    );
    assert_eq!(
        eval("return redis.call('hgetall', 'h')"),
        Reply::Array(vec![Reply::bulk("f"), Reply::bulk("v")])
    );
    assert_eq!(
        eval("redis.setresp(3) return redis.call('hgetall', 'h')"),
        Reply::Map(vec![(Reply::bulk("f"), Reply::bulk("v"))])
    );
    assert_eq!(
        eval("return redis.call('ping')"),
        Reply::Status("PONG".into())
    );
}

#[test]
fn errors_name_the_script_and_line() {
    let body = "redis.call('incr', 'x')";
    let sha = sha1_hex(body.as_bytes());
    assert_eq!(
        err(body),
        format!("ERR value is not an integer or out of range script: {sha}, on @user_script:1.")
    );
    let tail = "\nreturn redis.call('incr', 'x')";
    let sha = sha1_hex(tail.as_bytes());
    assert_eq!(
        err(tail),
        format!("ERR value is not an integer or out of range script: {sha}, on @user_script:2.")
    );
    let e = err("return cjson.decode('[')");
    assert!(e.starts_with("ERR user_script:1: Expected value"), "{e}");
    let e = err("local a = 1\nreturn a + nil");
    assert!(
        e.starts_with("ERR user_script:2: attempt to perform arithmetic"),
        "{e}"
    );
    assert!(e.ends_with(", on @user_script:2."), "{e}");
    let e = err("error('boom')");
    assert!(e.starts_with("ERR user_script:1: boom script: "), "{e}");
    assert_eq!(
        eval("local ok, e = pcall(redis.call, 'incr', 'x') return e"),
        Reply::bulk("ERR value is not an integer or out of range")
    );
    assert_eq!(
        eval("return redis.pcall('incr', 'x')"),
        Reply::err("ERR value is not an integer or out of range")
    );
    assert!(err("return redis.call()").contains("Please specify at least one argument"));
    assert!(err("return redis.call('get', {})")
        .starts_with("ERR Lua redis lib command arguments must be strings or integers"));
    assert!(err("redis.sha1hex()").contains("wrong number of arguments"));
    assert!(
        err("return x +").starts_with("ERR Error compiling script (new function): user_script:1:")
    );
    assert!(err("redis.setresp(4)").contains("RESP version must be 2 or 3."));
    assert!(err("redis.log(9, 'x')").contains("Invalid debug level."));
    assert!(err("return cjson.decode('[')").contains("user_script:1: Expected value"));
}

#[test]
fn globals_are_protected() {
    let e = err("return a");
    assert!(
        e.starts_with(
            "ERR user_script:1: Script attempted to access nonexistent global variable 'a'"
        ),
        "{e}"
    );
    for body in [
        "a = 10",
        "setmetatable(_G, {})",
        "local g = getmetatable(_G) g.__index = {}",
        "redis = function() return 1 end",
        "_G = {}",
        "redis.call = function() return 1 end",
        "cjson.encode = function() return 1 end",
        "bit.lshift = function() return 1 end",
        "rawset(_G, 'x', 1)",
        "string.x = 1",
    ] {
        let e = err(body);
        assert!(
            e.contains("Attempt to modify a readonly table"),
            "{body}: {e}"
        );
    }
    for name in ["print", "loadfile", "dofile", "debug"] {
        let e = err(&format!("return {name}"));
        assert!(
            e.contains(&format!("nonexistent global variable '{name}'")),
            "{name}: {e}"
        );
    }
    assert!(
        err("return loadstring(string.dump(function() return 1 end))()")
            .contains("attempt to call a nil value")
    );
    assert_eq!(eval("return loadstring('return 7')()"), Reply::Int(7));
    assert_eq!(
        eval("local n = 0 for k in pairs(redis) do n = n + 1 end return n > 5"),
        Reply::Int(1)
    );
    assert_eq!(eval("return rawget(redis, 'call') ~= nil"), Reply::Int(1));
}

#[test]
fn random_is_seeded_by_the_run() {
    let body = "return {math.random(1000000), math.random(1000000), math.random()}";
    let a = eval_with(&mut Fake::default(), body, &[], &[]);
    let b = eval_with(&mut Fake::default(), body, &[], &[]);
    assert_eq!(a, b);
    assert_eq!(
        eval("math.randomseed(7) local a = math.random() math.randomseed(7) return a == math.random()"),
        Reply::Int(1)
    );
    assert!(err("return math.random(0)").contains("interval is empty"));
}

#[test]
fn runaway_scripts_are_aborted() {
    for body in [
        "while true do end",
        "while true do pcall(function() while true do end end) end",
        "local co = coroutine.create(function() while true do end end) while true do coroutine.resume(co) end",
        "while true do xpcall(function() while true do end end, function(e) return e end) end",
    ] {
        match eval_with(&mut Fake::default(), body, &[], &[]) {
            Outcome::Aborted(Reply::Error(e)) => {
                assert!(e.contains("exceeded 100000000 Lua instructions"), "{e}")
            }
            other => panic!("{body}: {other:?}"),
        }
    }
    match eval_with(
        &mut Fake::default(),
        "local t = {} local s = string.rep('x', 1024 * 1024) for i = 1, 1000 do t[i] = s .. i end",
        &[],
        &[],
    ) {
        Outcome::Aborted(Reply::Error(e)) => assert!(e.contains("bytes of Lua memory"), "{e}"),
        other => panic!("{other:?}"),
    }
    match eval_with(&mut Fake::default(), "local t = {} local s = string.rep('x', 1024 * 1024) for i = 1, 1000 do pcall(function() t[i] = s .. i end) end", &[], &[]) {
        Outcome::Aborted(Reply::Error(e)) => assert!(e.contains("bytes of Lua memory"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn libraries_load_and_run() {
    let mut e = Engine::new();
    let code = "#!lua name=mylib\nredis.register_function('f1', function(keys, args) return {keys[1], args[1]} end)\nredis.register_function{function_name='f2', callback=function() return redis.call('ping') end, flags={'no-writes'}, description='d'}";
    let lib = e.load_library(code.as_bytes()).unwrap();
    assert_eq!(lib.name, "mylib");
    assert_eq!(lib.functions.len(), 2);
    assert_eq!(lib.functions[1].name, "f2");
    assert!(lib.functions[1].flags.no_writes());
    assert_eq!(lib.functions[1].description.as_deref(), Some("d"));
    let keys = [Bytes::from("k")];
    let args = [Bytes::from("a")];
    let inv = Invocation {
        name: "f1",
        keys: &keys,
        args: &args,
        seed: 1,
        killable: false,
    };
    assert_eq!(
        e.fcall(&mut Fake::default(), code.as_bytes(), "f1", &inv),
        Outcome::Done(Reply::Array(vec![Reply::bulk("k"), Reply::bulk("a")]))
    );
    let inv = Invocation { name: "f2", ..inv };
    assert_eq!(
        e.fcall(&mut Fake::default(), code.as_bytes(), "f2", &inv),
        Outcome::Done(Reply::Status("PONG".into()))
    );
    for (code, want) in [
        ("#!lua name=l\nreturn 1", "No functions registered"),
        ("#!lua name=l\nlocal a = math.random()", "nonexistent global variable 'math'"),
        ("#!lua name=l\nredis.call('ping')", "nonexistent global variable 'call'"),
        ("#!lua name=l\nredis.register_function()", "wrong number of arguments to redis.register_function"),
        ("#!lua name=l\nredis.register_function('f', 1)", "second argument to redis.register_function must be a function"),
        ("#!lua name=l\nredis.register_function{function_name='f', callback=function() end, flags={'bad'}}", "unknown flag given"),
        ("#!lua name=l\nredis.register_function('f', function() end) redis.register_function('f', function() end)", "Function already exists in the library"),
        ("#!lua name=l\nx y", "Error compiling function: user_function:2:"),
        ("#!lua name=l\nwhile true do end", "FUNCTION LOAD timeout"),
    ] {
        let got = e.load_library(code.as_bytes()).unwrap_err();
        assert!(got.contains(want), "{code}: {got}");
    }
}

#[test]
fn a_killable_run_stops_on_kill_and_a_write_run_is_not_reached() {
    use crate::kill::{kill, Killed, RunKind};
    assert_eq!(kill(RunKind::Script), Killed::None);
    let runner = std::thread::spawn(|| {
        let inv = Invocation {
            name: "k",
            keys: &[],
            args: &[],
            seed: 1,
            killable: true,
        };
        Engine::new().eval(&mut Fake::default(), b"while true do end", &inv)
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while kill(RunKind::Script) == Killed::None {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never registered"
        );
        // FUNCTION KILL does not reach an EVAL run.
        assert_eq!(kill(RunKind::Function), Killed::None);
        std::thread::yield_now();
    }
    match runner.join().expect("runner") {
        Outcome::Aborted(Reply::Error(e)) => assert!(
            e.starts_with("ERR Script killed by user with SCRIPT KILL..."),
            "{e}"
        ),
        other => panic!("not killed: {other:?}"),
    }
    assert_eq!(kill(RunKind::Script), Killed::None);
}

/// Where a run's time goes (not a test of speed: `cargo test --release -p script -- --ignored
/// eval_cost --nocapture` prints the figures, the fastest of 5 batches; it only asserts that
/// the runs succeed).
#[test]
#[ignore]
fn eval_cost() {
    use std::time::{Duration, Instant};
    const N: u32 = 400;
    fn fastest(mut f: impl FnMut()) -> Duration {
        (0..5)
            .map(|_| {
                let t = Instant::now();
                (0..N).for_each(|_| f());
                t.elapsed() / N
            })
            .min()
            .unwrap_or_default()
    }
    let body = "return redis.call('SET', KEYS[1], ARGV[1])";
    let keys = [Bytes::from_static(b"k")];
    let args = [Bytes::from_static(b"v")];
    let inv = Invocation {
        name: "x",
        keys: &keys,
        args: &args,
        seed: 1,
        killable: false,
    };
    let mut engine = Engine::new();
    let mut host = Fake::default();
    let eval = fastest(|| {
        let r = engine.eval(&mut host, body.as_bytes(), &inv);
        assert_eq!(r, Outcome::Done(Reply::ok()));
    });
    let json = fastest(|| {
        let r = engine.eval(&mut host, b"return cjson.encode({1})", &inv);
        assert_eq!(r, Outcome::Done(Reply::bulk("[1]")));
    });
    let bare = fastest(|| {
        let libs = StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG;
        // SAFETY: as vm::run (no script runs in this VM).
        let lua = unsafe { Lua::unsafe_new_with(libs, LuaOptions::new()) };
        assert!(lua.used_memory() > 0);
    });
    let prelude = engine.prelude.clone();
    let setup = fastest(|| {
        let r = vm::run(
            &prelude,
            &mut host,
            1,
            vm::Bounds::of(None, ""),
            |_, _, _| Ok(()),
        );
        assert!(matches!(r, Ok(())));
    });
    println!("eval {eval:?}, cjson eval {json:?}, vm setup {setup:?}, bare Lua state {bare:?}");
}
