//! Runs Python snippets that use redis-py against a test cluster: the way to check that
//! an ordinary client library's own patterns (Lock, transaction pipelines, blocking pops,
//! RedisCluster) work unchanged.

use std::process::Command;

/// A Python interpreter that imports redis-py: `RAFTKV_PYTHON`, else Debian's
/// `/usr/bin/python3` (package python3-redis), else `python3` on PATH. None when none of
/// them has it, unless `RAFTKV_REQUIRE_REDIS_PY=1` (set by scripts/test.sh when the package
/// is installed), which makes a missing redis-py a test failure instead of a skip.
pub fn python() -> Option<String> {
    let candidates = std::env::var("RAFTKV_PYTHON")
        .into_iter()
        .chain(["/usr/bin/python3".to_string(), "python3".to_string()]);
    for py in candidates {
        let ok = Command::new(&py)
            .args(["-c", "import redis"])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(py);
        }
    }
    let required = std::env::var("RAFTKV_REQUIRE_REDIS_PY").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "RAFTKV_REQUIRE_REDIS_PY=1 but no Python imports redis"
    );
    eprintln!("skipped: no Python with redis-py (install python3-redis or set RAFTKV_PYTHON)");
    None
}

/// Runs `script` with `args` (sys.argv[1..]) and asserts it exits 0 printing `ok` last.
pub fn run(python: &str, script: &str, args: &[String]) {
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("ok"),
        "python failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
