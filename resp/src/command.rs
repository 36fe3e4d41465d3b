//! Typed Redis commands: the parsed, arity- and syntax-checked form of a client request.
//!
//! `Command::parse` turns a request's argument vector into a `Command` or into the exact
//! error reply Redis would send. The same parser runs on every replica when a committed
//! `RaftCommit` is applied (`Command::parse_replicated`), so replicas agree on meaning.
//! Relative expiry times stay relative here; the store resolves them against the time the
//! leader stamped into the commit.

use bytes::Bytes;

use crate::Reply;

/// When a key should expire, as the client said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpireAt {
    /// Milliseconds from the commit's stamped time (EX, PX, EXPIRE, PEXPIRE, SETEX, PSETEX).
    RelativeMs(i64),
    /// Absolute unix time in milliseconds (EXAT, PXAT, EXPIREAT, PEXPIREAT).
    AbsoluteMs(i64),
}

/// SET's NX / XX condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetCondition {
    /// Only set if the key does not exist.
    Nx,
    /// Only set if the key exists.
    Xx,
}

/// EXPIRE family's NX / XX / GT / LT condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpireCondition {
    Nx,
    Xx,
    Gt,
    Lt,
}

/// Options of SET (and of SETEX / PSETEX / GETSET, which normalize to SET).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetOptions {
    pub expire: Option<ExpireAt>,
    pub keep_ttl: bool,
    pub condition: Option<SetCondition>,
    /// Reply with the old value (SET ... GET, GETSET).
    pub get: bool,
}

/// What GETEX does to the key's TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetExAction {
    Expire(ExpireAt),
    Persist,
}

/// Time unit of TTL-style replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    Seconds,
    Milliseconds,
}

/// CLIENT subcommands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCmd {
    SetName(Bytes),
    GetName,
    Id,
    Info,
    List,
    /// CLIENT SETINFO LIB-NAME|LIB-VER value
    SetInfo {
        attr: String,
        value: Bytes,
    },
    /// CLIENT HELP
    Help,
}

/// COMMAND subcommands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandCmd {
    /// Plain `COMMAND`: list every command's info.
    List,
    Count,
    Info(Vec<Bytes>),
    Docs(Vec<Bytes>),
}

/// CONFIG subcommands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigCmd {
    Get(Vec<Bytes>),
    Set(Vec<(Bytes, Bytes)>),
    ResetStat,
}

/// raftkv's cluster administration commands (the `RAFT.*` family).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RaftCmd {
    /// `RAFT.SNAPSHOT`: take a snapshot on this node now and compact its log.
    Snapshot,
    /// `RAFT.NODES`: list the members as this node knows them.
    Nodes,
    /// `RAFT.NODE ADD <id> <raft-addr>`: add a member (as a learner, promoted to voter once
    /// caught up).
    NodeAdd { id: u64, addr: String },
    /// `RAFT.NODE REMOVE <id>`: remove a member.
    NodeRemove { id: u64 },
    /// `RAFT.NODE REPLACE <old-id> <new-id>`: in one joint-consensus change, make member
    /// `new` (a learner) a voter and remove voter `old`.
    NodeReplace { old: u64, new: u64 },
    /// `RAFT.TRANSFER-LEADER [<id>]`: move leadership (to the given voter, or the most
    /// up-to-date one).
    TransferLeader(Option<u64>),
}

/// A parsed request. Key-carrying variants hold the raw key bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    // ---- connection / server (answered by the session, never replicated) ----
    Ping(Option<Bytes>),
    Echo(Bytes),
    Select(i64),
    Quit,
    Hello {
        protover: Option<i64>,
        auth: Option<(Bytes, Bytes)>,
        setname: Option<Bytes>,
    },
    Auth {
        username: Option<Bytes>,
        password: Bytes,
    },
    Client(ClientCmd),
    Command(CommandCmd),
    Config(ConfigCmd),
    Info(Vec<String>),
    Time,
    /// `SHUTDOWN [NOSAVE|SAVE|NOW|FORCE|ABORT]`: stop this node cleanly.
    Shutdown,
    // ---- administration (async, may be forwarded to the leader) ----
    Raft(RaftCmd),
    // ---- reads (linearizable via ReadIndex, run on the local store) ----
    Get(Bytes),
    MGet(Vec<Bytes>),
    Exists(Vec<Bytes>),
    StrLen(Bytes),
    GetRange {
        key: Bytes,
        start: i64,
        end: i64,
    },
    Keys(Bytes),
    Scan {
        cursor: u64,
        pattern: Option<Bytes>,
        count: u64,
        type_: Option<Bytes>,
    },
    Type(Bytes),
    Ttl {
        key: Bytes,
        unit: TimeUnit,
    },
    ExpireTime {
        key: Bytes,
        unit: TimeUnit,
    },
    DbSize,
    // ---- writes (replicated through Raft, applied by the store) ----
    Set {
        key: Bytes,
        value: Bytes,
        opts: SetOptions,
    },
    SetNx {
        key: Bytes,
        value: Bytes,
    },
    GetDel(Bytes),
    GetEx {
        key: Bytes,
        action: Option<GetExAction>,
    },
    MSet(Vec<(Bytes, Bytes)>),
    MSetNx(Vec<(Bytes, Bytes)>),
    /// DEL and UNLINK.
    Del(Vec<Bytes>),
    /// TOUCH: counts existing keys (a write in Redis because it updates LRU; here it only counts).
    Touch(Vec<Bytes>),
    /// INCR, DECR, INCRBY, DECRBY.
    IncrBy {
        key: Bytes,
        delta: i64,
    },
    IncrByFloat {
        key: Bytes,
        delta: f64,
    },
    Append {
        key: Bytes,
        value: Bytes,
    },
    SetRange {
        key: Bytes,
        offset: i64,
        value: Bytes,
    },
    Rename {
        src: Bytes,
        dst: Bytes,
        nx: bool,
    },
    /// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT.
    Expire {
        key: Bytes,
        at: ExpireAt,
        condition: Option<ExpireCondition>,
    },
    Persist(Bytes),
    /// FLUSHALL and FLUSHDB (ASYNC/SYNC accepted and ignored).
    FlushAll,
    // ---- internal, replicated only; never produced from client input ----
    /// Delete up to `limit` keys whose expiry is at or before the commit's stamped time.
    SweepExpired {
        limit: u64,
    },
    /// Delete each of these keys if it has expired at the commit's stamped time (lazy expiry).
    DelIfExpired(Vec<Bytes>),
}

/// How a command is executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Answered by the session itself (connection state, server info).
    Local,
    /// Needs a linearizable read of the store.
    Read,
    /// Must be replicated through Raft.
    Write,
    /// Cluster administration: served by the node (or its leader), may wait.
    Admin,
}

/// Static facts about a command, as `COMMAND INFO` reports them.
#[derive(Debug, Clone, Copy)]
pub struct CommandSpec {
    pub name: &'static str,
    /// Positive: exact argument count (name included); negative: at least -arity.
    pub arity: i32,
    pub flags: &'static [&'static str],
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    pub summary: &'static str,
}

// Flag sets, in the order Redis 7 lists them in `COMMAND INFO`.
const RO: &[&str] = &["readonly"];
const ROF: &[&str] = &["readonly", "fast"];
const WR: &[&str] = &["write"];
const WRF: &[&str] = &["write", "fast"];
const WD: &[&str] = &["write", "denyoom"];
const WDF: &[&str] = &["write", "denyoom", "fast"];
const LS: &[&str] = &["loading", "stale"];
const LSF: &[&str] = &["loading", "stale", "fast"];
const CONN: &[&str] = &[
    "noscript",
    "loading",
    "stale",
    "fast",
    "no_auth",
    "allow_busy",
];
const NLS: &[&str] = &["noscript", "loading", "stale"];
const ANLS: &[&str] = &["admin", "noscript", "loading", "stale"];

macro_rules! spec {
    ($n:expr, $a:expr, $f:expr, $fk:expr, $lk:expr, $st:expr, $s:expr) => {
        CommandSpec {
            name: $n,
            arity: $a,
            flags: $f,
            first_key: $fk,
            last_key: $lk,
            step: $st,
            summary: $s,
        }
    };
}

// Arity, flags, key positions and summaries as in Redis 7.2's src/commands/*.json.
#[rustfmt::skip]
static TABLE: &[CommandSpec] = &[
    spec!("PING", -1, &["fast"], 0, 0, 0, "Returns the server's liveliness response."),
    spec!("ECHO", 2, LSF, 0, 0, 0, "Returns the given string."),
    spec!("SELECT", 2, LSF, 0, 0, 0, "Changes the selected database."),
    spec!("QUIT", -1, CONN, 0, 0, 0, "Closes the connection."),
    spec!("HELLO", -1, CONN, 0, 0, 0, "Handshakes with the Redis server."),
    spec!("AUTH", -2, CONN, 0, 0, 0, "Authenticates the connection."),
    spec!("CLIENT", -2, &[], 0, 0, 0, "A container for client connection commands."),
    spec!("COMMAND", -1, LS, 0, 0, 0, "Returns detailed information about all commands."),
    spec!("CONFIG", -2, &[], 0, 0, 0, "A container for server configuration commands."),
    spec!("INFO", -1, LS, 0, 0, 0, "Returns information and statistics about the server."),
    spec!("TIME", 1, LSF, 0, 0, 0, "Returns the server time."),
    spec!("SHUTDOWN", -1, ANLS, 0, 0, 0, "Synchronously saves the database(s) to disk and shuts down the Redis server."),
    spec!("RAFT.SNAPSHOT", 1, ANLS, 0, 0, 0, "Takes a snapshot of this node's state now and compacts its Raft log."),
    spec!("RAFT.NODES", 1, ANLS, 0, 0, 0, "Lists the Raft group's members: id, address, suffrage, role, matched index."),
    spec!("RAFT.NODE", -3, ANLS, 0, 0, 0, "A container for membership commands (ADD, REMOVE)."),
    spec!("RAFT.TRANSFER-LEADER", -1, ANLS, 0, 0, 0, "Moves Raft leadership to another voter."),
    spec!("GET", 2, ROF, 1, 1, 1, "Returns the string value of a key."),
    spec!("MGET", -2, ROF, 1, -1, 1, "Atomically returns the string values of one or more keys."),
    spec!("EXISTS", -2, ROF, 1, -1, 1, "Determines whether one or more keys exist."),
    spec!("STRLEN", 2, ROF, 1, 1, 1, "Returns the length of a string value."),
    spec!("GETRANGE", 4, RO, 1, 1, 1, "Returns a substring of the string stored at a key."),
    spec!("SUBSTR", 4, RO, 1, 1, 1, "Returns a substring from a string value."),
    spec!("KEYS", 2, RO, 0, 0, 0, "Returns all key names that match a pattern."),
    spec!("SCAN", -2, RO, 0, 0, 0, "Iterates over the key names in the database."),
    spec!("TYPE", 2, ROF, 1, 1, 1, "Determines the type of value stored at a key."),
    spec!("TTL", 2, ROF, 1, 1, 1, "Returns the expiration time in seconds of a key."),
    spec!("PTTL", 2, ROF, 1, 1, 1, "Returns the expiration time in milliseconds of a key."),
    spec!("EXPIRETIME", 2, ROF, 1, 1, 1, "Returns the expiration time of a key as a Unix timestamp."),
    spec!("PEXPIRETIME", 2, ROF, 1, 1, 1, "Returns the expiration time of a key as a Unix milliseconds timestamp."),
    spec!("DBSIZE", 1, ROF, 0, 0, 0, "Returns the number of keys in the database."),
    spec!("SET", -3, WD, 1, 1, 1, "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist."),
    spec!("SETNX", 3, WDF, 1, 1, 1, "Set the string value of a key only when the key doesn't exist."),
    spec!("SETEX", 4, WD, 1, 1, 1, "Sets the string value and expiration time of a key. Creates the key if it doesn't exist."),
    spec!("PSETEX", 4, WD, 1, 1, 1, "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist."),
    spec!("GETSET", 3, WDF, 1, 1, 1, "Returns the previous string value of a key after setting it to a new value."),
    spec!("GETDEL", 2, WRF, 1, 1, 1, "Returns the string value of a key after deleting the key."),
    spec!("GETEX", -2, WRF, 1, 1, 1, "Returns the string value of a key after setting its expiration time."),
    spec!("MSET", -3, WD, 1, -1, 2, "Atomically creates or modifies the string values of one or more keys."),
    spec!("MSETNX", -3, WD, 1, -1, 2, "Atomically modifies the string values of one or more keys only when all keys don't exist."),
    spec!("DEL", -2, WR, 1, -1, 1, "Deletes one or more keys."),
    spec!("UNLINK", -2, WRF, 1, -1, 1, "Asynchronously deletes one or more keys."),
    spec!("TOUCH", -2, ROF, 1, -1, 1, "Returns the number of existing keys out of those specified after updating the time they were last accessed."),
    spec!("INCR", 2, WDF, 1, 1, 1, "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."),
    spec!("DECR", 2, WDF, 1, 1, 1, "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."),
    spec!("INCRBY", 3, WDF, 1, 1, 1, "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist."),
    spec!("DECRBY", 3, WDF, 1, 1, 1, "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist."),
    spec!("INCRBYFLOAT", 3, WDF, 1, 1, 1, "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist."),
    spec!("APPEND", 3, WDF, 1, 1, 1, "Appends a string to the value of a key. Creates the key if it doesn't exist."),
    spec!("SETRANGE", 4, WD, 1, 1, 1, "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist."),
    spec!("RENAME", 3, WR, 1, 2, 1, "Renames a key and overwrites the destination."),
    spec!("RENAMENX", 3, WRF, 1, 2, 1, "Renames a key only when the target key name doesn't exist."),
    spec!("EXPIRE", -3, WRF, 1, 1, 1, "Sets the expiration time of a key in seconds."),
    spec!("PEXPIRE", -3, WRF, 1, 1, 1, "Sets the expiration time of a key in milliseconds."),
    spec!("EXPIREAT", -3, WRF, 1, 1, 1, "Sets the expiration time of a key to a Unix timestamp."),
    spec!("PEXPIREAT", -3, WRF, 1, 1, 1, "Sets the expiration time of a key to a Unix milliseconds timestamp."),
    spec!("PERSIST", 2, WRF, 1, 1, 1, "Removes the expiration time of a key."),
    spec!("FLUSHALL", -1, WR, 0, 0, 0, "Removes all keys from all databases."),
    spec!("FLUSHDB", -1, WR, 0, 0, 0, "Remove all keys from the current database."),
];

// Subcommands of the container commands CLIENT, COMMAND and CONFIG; arity counts the
// container name too (`CLIENT SETNAME x` has 3 arguments).
#[rustfmt::skip]
static SUBCOMMANDS: &[CommandSpec] = &[
    spec!("client|setname", 3, NLS, 0, 0, 0, "Sets the connection name."),
    spec!("client|getname", 2, NLS, 0, 0, 0, "Returns the name of the connection."),
    spec!("client|id", 2, NLS, 0, 0, 0, "Returns the unique client ID of the connection."),
    spec!("client|info", 2, NLS, 0, 0, 0, "Returns information about the connection."),
    spec!("client|list", -2, ANLS, 0, 0, 0, "Lists open connections."),
    spec!("client|setinfo", 4, NLS, 0, 0, 0, "Sets information specific to the client or connection."),
    spec!("client|help", 2, LS, 0, 0, 0, "Returns helpful text about the different subcommands."),
    spec!("command|count", 2, LS, 0, 0, 0, "Returns a count of commands."),
    spec!("command|info", -2, LS, 0, 0, 0, "Returns information about one, multiple or all commands."),
    spec!("command|docs", -2, LS, 0, 0, 0, "Returns documentary information about one, multiple or all commands."),
    spec!("config|get", -3, ANLS, 0, 0, 0, "Returns the effective values of configuration parameters."),
    spec!("config|set", -4, ANLS, 0, 0, 0, "Sets configuration parameters in-flight."),
    spec!("config|resetstat", 2, ANLS, 0, 0, 0, "Resets the server's statistics."),
    spec!("raft.node|add", 4, ANLS, 0, 0, 0, "Adds a member: RAFT.NODE ADD <id> <raft-host:port>."),
    spec!("raft.node|remove", 3, ANLS, 0, 0, 0, "Removes a member: RAFT.NODE REMOVE <id>."),
    spec!("raft.node|replace", 4, ANLS, 0, 0, 0, "Swaps voter <old-id> for member <new-id> in one joint-consensus change."),
];

/// Every top-level command raftkv serves (upper-case names).
pub fn command_table() -> &'static [CommandSpec] {
    TABLE
}

/// Subcommands of CLIENT, COMMAND and CONFIG, named `container|sub` in lower case.
pub fn subcommand_table() -> &'static [CommandSpec] {
    SUBCOMMANDS
}

/// Looks a command up by name, case-insensitively.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    TABLE
        .iter()
        .find(|s| s.name.as_bytes().eq_ignore_ascii_case(name))
}

/// Looks up `container sub` (e.g. `CLIENT`, `setname`), case-insensitively.
pub fn lookup_subcommand(container: &[u8], sub: &[u8]) -> Option<&'static CommandSpec> {
    SUBCOMMANDS.iter().find(|s| {
        s.name.split_once('|').is_some_and(|(c, n)| {
            c.as_bytes().eq_ignore_ascii_case(container) && n.as_bytes().eq_ignore_ascii_case(sub)
        })
    })
}

// ---- error replies and argument helpers ----

fn syntax() -> Reply {
    Reply::err("ERR syntax error")
}

fn not_int() -> Reply {
    Reply::err("ERR value is not an integer or out of range")
}

fn arity(name: &str) -> Reply {
    Reply::err(format!(
        "ERR wrong number of arguments for '{}' command",
        name.to_ascii_lowercase()
    ))
}

fn expire_time_err(cmd: &str) -> Reply {
    Reply::err(format!("ERR invalid expire time in '{cmd}' command"))
}

/// Text of at most `max` bytes of `b` (Redis's `%.128s`), lossily decoded.
fn text(b: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&b[..b.len().min(max)]).into_owned()
}

fn check_arity(spec: &CommandSpec, argc: usize) -> Result<(), Reply> {
    let want = spec.arity.unsigned_abs() as usize;
    let ok = if spec.arity >= 0 {
        argc == want
    } else {
        argc >= want
    };
    if ok {
        Ok(())
    } else {
        Err(arity(spec.name))
    }
}

/// Parses an integer like Redis's `string2ll` (strict canonical decimal within i64).
fn int(b: &[u8]) -> Result<i64, Reply> {
    crate::request::string2ll(b).ok_or_else(not_int)
}

/// Parses a float like Redis's `string2ld` (used by INCRBYFLOAT): no surrounding spaces,
/// no NaN, no overflow; `inf` / `-inf` are accepted (the increment then fails in the store
/// with "increment would produce NaN or Infinity", as in Redis).
pub fn parse_float(b: &[u8]) -> Option<f64> {
    const MAX_LONG_DOUBLE_CHARS: usize = 5 * 1024;
    if b.is_empty() || b.len() >= MAX_LONG_DOUBLE_CHARS {
        return None;
    }
    let s = std::str::from_utf8(b).ok()?;
    let lower = s.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if lower.len() - body.len() > 1 {
        return None;
    }
    if body == "inf" || body == "infinity" {
        return Some(if lower.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    // Rust also accepts "nan" and "inf" spellings; those are handled above or rejected here.
    if !body.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let f: f64 = s.parse().ok()?;
    f.is_finite().then_some(f)
}

fn upper(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_uppercase()
}

fn unknown_command(argv: &[Bytes]) -> Reply {
    let name = argv.first().map_or(&b""[..], |n| &n[..]);
    let mut args: Vec<u8> = Vec::new();
    for a in argv.iter().skip(1) {
        if args.len() >= 128 {
            break;
        }
        let room = 128 - args.len();
        args.push(b'\'');
        args.extend_from_slice(&a[..a.len().min(room)]);
        args.extend_from_slice(b"' ");
    }
    Reply::err(format!(
        "ERR unknown command '{}', with args beginning with: {}",
        text(name, 128),
        String::from_utf8_lossy(&args)
    ))
}

/// A Raft node id: a positive integer.
fn node_id(b: &[u8]) -> Result<u64, Reply> {
    match int(b) {
        Ok(i) if i > 0 => Ok(i as u64),
        _ => Err(Reply::err(
            "ERR invalid node id: expected a positive integer",
        )),
    }
}

/// A peer address `host:port`.
fn peer_addr(b: &[u8]) -> Result<String, Reply> {
    let s = std::str::from_utf8(b).ok().filter(|s| {
        s.rsplit_once(':').is_some_and(|(h, p)| {
            !h.is_empty()
                && p.parse::<u16>().is_ok_and(|p| p > 0)
                && !s.contains(char::is_whitespace)
        })
    });
    s.map(str::to_string)
        .ok_or_else(|| Reply::err("ERR invalid address: expected host:port"))
}

fn unknown_sub(container: &str, sub: &[u8]) -> Reply {
    Reply::err(format!(
        "ERR unknown subcommand '{}'. Try {container} HELP.",
        text(sub, 128)
    ))
}

/// Resolves and arity-checks the subcommand `argv[1]` of a container command; returns its
/// lower-case name (the part after `|`).
fn subcommand(container: &str, argv: &[Bytes]) -> Result<&'static str, Reply> {
    let Some(sub) = argv.get(1) else {
        return Err(arity(container));
    };
    let spec =
        lookup_subcommand(container.as_bytes(), sub).ok_or_else(|| unknown_sub(container, sub))?;
    check_arity(spec, argv.len())?;
    Ok(spec.name.split_once('|').map_or(spec.name, |(_, n)| n))
}

fn pairs(name: &str, args: &[Bytes]) -> Result<Vec<(Bytes, Bytes)>, Reply> {
    if args.is_empty() || !args.len().is_multiple_of(2) {
        return Err(arity(name));
    }
    Ok(args
        .chunks_exact(2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect())
}

impl Command {
    /// Parses a client request (`argv[0]` is the command name, any case) into a command,
    /// or into the exact error reply Redis would send. Never yields internal commands.
    pub fn parse(argv: &[Bytes]) -> Result<Command, Reply> {
        let Some(name) = argv.first() else {
            return Err(Reply::err("ERR empty command"));
        };
        let spec = lookup(name).ok_or_else(|| unknown_command(argv))?;
        check_arity(spec, argv.len())?;
        parse_known(spec.name, argv)
    }

    /// Parses a command from a committed log entry: client commands plus the internal
    /// `RAFTKV.SWEEP limit` and `RAFTKV.DELIFEXPIRED key...`.
    pub fn parse_replicated(argv: &[Bytes]) -> Result<Command, Reply> {
        let name = argv.first().map(|n| upper(n));
        match (name.as_deref(), argv.get(1..).unwrap_or_default()) {
            (Some("RAFTKV.SWEEP"), [limit]) => Ok(Command::SweepExpired {
                limit: u64::try_from(int(limit)?).map_err(|_| not_int())?,
            }),
            (Some("RAFTKV.SWEEP"), _) => Err(arity("raftkv.sweep")),
            (Some("RAFTKV.DELIFEXPIRED"), keys) => Ok(Command::DelIfExpired(keys.to_vec())),
            _ => Command::parse(argv),
        }
    }

    /// The internal sweep command's argument vector.
    pub fn sweep_argv(limit: u64) -> Vec<Bytes> {
        vec![
            Bytes::from_static(b"RAFTKV.SWEEP"),
            Bytes::from(limit.to_string()),
        ]
    }

    /// The internal lazy-expiry command's argument vector.
    pub fn del_if_expired_argv(keys: &[Bytes]) -> Vec<Bytes> {
        let mut v = Vec::with_capacity(keys.len() + 1);
        v.push(Bytes::from_static(b"RAFTKV.DELIFEXPIRED"));
        v.extend_from_slice(keys);
        v
    }

    /// How the command is executed.
    pub fn kind(&self) -> Kind {
        use self::Command::*;
        match self {
            Ping(_)
            | Echo(_)
            | Select(_)
            | Quit
            | Hello { .. }
            | Auth { .. }
            | Client(_)
            | Command(_)
            | Config(_)
            | Info(_)
            | Time => Kind::Local,
            Shutdown | Raft(_) => Kind::Admin,
            Get(_)
            | MGet(_)
            | Exists(_)
            | StrLen(_)
            | GetRange { .. }
            | Keys(_)
            | Scan { .. }
            | Type(_)
            | Ttl { .. }
            | ExpireTime { .. }
            | DbSize
            | Touch(_) => Kind::Read,
            Set { .. }
            | SetNx { .. }
            | GetDel(_)
            | GetEx { .. }
            | MSet(_)
            | MSetNx(_)
            | Del(_)
            | IncrBy { .. }
            | IncrByFloat { .. }
            | Append { .. }
            | SetRange { .. }
            | Rename { .. }
            | Expire { .. }
            | Persist(_)
            | FlushAll
            | SweepExpired { .. }
            | DelIfExpired(_) => Kind::Write,
        }
    }

    /// The keys the command touches, in argument order (for slot routing).
    pub fn keys(&self) -> Vec<&Bytes> {
        use self::Command::*;
        match self {
            Get(k)
            | StrLen(k)
            | GetRange { key: k, .. }
            | Type(k)
            | Ttl { key: k, .. }
            | ExpireTime { key: k, .. }
            | Set { key: k, .. }
            | SetNx { key: k, .. }
            | GetDel(k)
            | GetEx { key: k, .. }
            | IncrBy { key: k, .. }
            | IncrByFloat { key: k, .. }
            | Append { key: k, .. }
            | SetRange { key: k, .. }
            | Expire { key: k, .. }
            | Persist(k) => vec![k],
            MGet(ks) | Exists(ks) | Del(ks) | Touch(ks) | DelIfExpired(ks) => ks.iter().collect(),
            MSet(kv) | MSetNx(kv) => kv.iter().map(|(k, _)| k).collect(),
            Rename { src, dst, .. } => vec![src, dst],
            Ping(_)
            | Echo(_)
            | Select(_)
            | Quit
            | Hello { .. }
            | Auth { .. }
            | Client(_)
            | Command(_)
            | Config(_)
            | Info(_)
            | Time
            | Shutdown
            | Raft(_)
            | Keys(_)
            | Scan { .. }
            | DbSize
            | FlushAll
            | SweepExpired { .. } => vec![],
        }
    }

    /// The command's canonical upper-case name (aliases map to one name: UNLINK → DEL,
    /// SETEX/GETSET → SET, DECRBY → INCRBY, PEXPIRE → EXPIRE, FLUSHDB → FLUSHALL, ...).
    pub fn name(&self) -> &'static str {
        use self::Command::*;
        match self {
            Ping(_) => "PING",
            Echo(_) => "ECHO",
            Select(_) => "SELECT",
            Quit => "QUIT",
            Hello { .. } => "HELLO",
            Auth { .. } => "AUTH",
            Client(_) => "CLIENT",
            Command(_) => "COMMAND",
            Config(_) => "CONFIG",
            Info(_) => "INFO",
            Shutdown => "SHUTDOWN",
            Raft(RaftCmd::Snapshot) => "RAFT.SNAPSHOT",
            Raft(RaftCmd::Nodes) => "RAFT.NODES",
            Raft(
                RaftCmd::NodeAdd { .. } | RaftCmd::NodeRemove { .. } | RaftCmd::NodeReplace { .. },
            ) => "RAFT.NODE",
            Raft(RaftCmd::TransferLeader(_)) => "RAFT.TRANSFER-LEADER",
            Time => "TIME",
            Get(_) => "GET",
            MGet(_) => "MGET",
            Exists(_) => "EXISTS",
            StrLen(_) => "STRLEN",
            GetRange { .. } => "GETRANGE",
            Keys(_) => "KEYS",
            Scan { .. } => "SCAN",
            Type(_) => "TYPE",
            Ttl { .. } => "TTL",
            ExpireTime { .. } => "EXPIRETIME",
            DbSize => "DBSIZE",
            Set { .. } => "SET",
            SetNx { .. } => "SETNX",
            GetDel(_) => "GETDEL",
            GetEx { .. } => "GETEX",
            MSet(_) => "MSET",
            MSetNx(_) => "MSETNX",
            Del(_) => "DEL",
            Touch(_) => "TOUCH",
            IncrBy { .. } => "INCRBY",
            IncrByFloat { .. } => "INCRBYFLOAT",
            Append { .. } => "APPEND",
            SetRange { .. } => "SETRANGE",
            Rename { .. } => "RENAME",
            Expire { .. } => "EXPIRE",
            Persist(_) => "PERSIST",
            FlushAll => "FLUSHALL",
            SweepExpired { .. } => "RAFTKV.SWEEP",
            DelIfExpired(_) => "RAFTKV.DELIFEXPIRED",
        }
    }
}

/// Dispatches on the canonical (table) name; arity has been checked against the table.
fn parse_known(name: &'static str, argv: &[Bytes]) -> Result<Command, Reply> {
    let a = &argv[1..];
    let key = || a[0].clone();
    let ttl = |unit| Command::Ttl { key: key(), unit };
    let exptime = |unit| Command::ExpireTime { key: key(), unit };
    Ok(match name {
        "PING" | "ECHO" | "SELECT" | "QUIT" | "TIME" | "AUTH" | "HELLO" | "INFO" => {
            parse_connection(name, a)?
        }
        "CLIENT" => Command::Client(parse_client(argv)?),
        "COMMAND" => Command::Command(parse_command_cmd(argv)?),
        "CONFIG" => Command::Config(parse_config(argv)?),
        "SHUTDOWN" => {
            for arg in a {
                let ok = [&b"NOSAVE"[..], b"SAVE", b"NOW", b"FORCE"]
                    .iter()
                    .any(|o| arg.eq_ignore_ascii_case(o));
                if !ok {
                    return Err(syntax());
                }
            }
            Command::Shutdown
        }
        "RAFT.SNAPSHOT" => Command::Raft(RaftCmd::Snapshot),
        "RAFT.NODES" => Command::Raft(RaftCmd::Nodes),
        "RAFT.NODE" => Command::Raft(match subcommand("RAFT.NODE", argv)? {
            "add" => RaftCmd::NodeAdd {
                id: node_id(&argv[2])?,
                addr: peer_addr(&argv[3])?,
            },
            "remove" => RaftCmd::NodeRemove {
                id: node_id(&argv[2])?,
            },
            "replace" => RaftCmd::NodeReplace {
                old: node_id(&argv[2])?,
                new: node_id(&argv[3])?,
            },
            _ => return Err(unknown_sub("RAFT.NODE", &argv[1])),
        }),
        "RAFT.TRANSFER-LEADER" => match a {
            [] => Command::Raft(RaftCmd::TransferLeader(None)),
            [id] => Command::Raft(RaftCmd::TransferLeader(Some(node_id(id)?))),
            _ => return Err(syntax()),
        },
        "GET" => Command::Get(key()),
        "MGET" => Command::MGet(a.to_vec()),
        "EXISTS" => Command::Exists(a.to_vec()),
        "STRLEN" => Command::StrLen(key()),
        "GETRANGE" | "SUBSTR" => Command::GetRange {
            key: key(),
            start: int(&a[1])?,
            end: int(&a[2])?,
        },
        "KEYS" => Command::Keys(key()),
        "SCAN" => parse_scan(a)?,
        "TYPE" => Command::Type(key()),
        "TTL" => ttl(TimeUnit::Seconds),
        "PTTL" => ttl(TimeUnit::Milliseconds),
        "EXPIRETIME" => exptime(TimeUnit::Seconds),
        "PEXPIRETIME" => exptime(TimeUnit::Milliseconds),
        "DBSIZE" => Command::DbSize,
        "SET" | "SETEX" | "PSETEX" | "GETSET" | "GETEX" => parse_set_family(name, a)?,
        "SETNX" => Command::SetNx {
            key: key(),
            value: a[1].clone(),
        },
        "GETDEL" => Command::GetDel(key()),
        "MSET" => Command::MSet(pairs("mset", a)?),
        "MSETNX" => Command::MSetNx(pairs("msetnx", a)?),
        "DEL" | "UNLINK" => Command::Del(a.to_vec()),
        "TOUCH" => Command::Touch(a.to_vec()),
        "INCR" | "DECR" | "INCRBY" | "DECRBY" | "INCRBYFLOAT" => parse_counter(name, a)?,
        "APPEND" => Command::Append {
            key: key(),
            value: a[1].clone(),
        },
        "SETRANGE" => {
            let offset = int(&a[1])?;
            if offset < 0 {
                return Err(Reply::err("ERR offset is out of range"));
            }
            Command::SetRange {
                key: key(),
                offset,
                value: a[2].clone(),
            }
        }
        "RENAME" | "RENAMENX" => Command::Rename {
            src: key(),
            dst: a[1].clone(),
            nx: name == "RENAMENX",
        },
        "EXPIRE" | "PEXPIRE" | "EXPIREAT" | "PEXPIREAT" => parse_expire(name, a)?,
        "PERSIST" => Command::Persist(key()),
        "FLUSHALL" | "FLUSHDB" => match a {
            [] => Command::FlushAll,
            [mode] if matches!(upper(mode).as_str(), "ASYNC" | "SYNC") => Command::FlushAll,
            _ => return Err(syntax()),
        },
        _ => return Err(unknown_command(argv)),
    })
}

/// PING, ECHO, SELECT, QUIT, TIME, AUTH, HELLO, INFO.
fn parse_connection(name: &str, a: &[Bytes]) -> Result<Command, Reply> {
    Ok(match (name, a) {
        ("PING", []) => Command::Ping(None),
        ("PING", [msg]) => Command::Ping(Some(msg.clone())),
        ("PING", _) => return Err(arity("ping")),
        ("ECHO", [msg]) => Command::Echo(msg.clone()),
        ("SELECT", [db]) => {
            // getIntFromObjectOrReply: an i64 outside the C int range has its own message.
            let id = int(db)?;
            if i32::try_from(id).is_err() {
                return Err(Reply::err(
                    "ERR value is out of range, value must between -2147483648 and 2147483647",
                ));
            }
            Command::Select(id)
        }
        ("QUIT", _) => Command::Quit,
        ("TIME", _) => Command::Time,
        ("AUTH", [password]) => Command::Auth {
            username: None,
            password: password.clone(),
        },
        ("AUTH", [user, password]) => Command::Auth {
            username: Some(user.clone()),
            password: password.clone(),
        },
        ("AUTH", _) => return Err(syntax()),
        ("HELLO", _) => parse_hello(a)?,
        ("INFO", _) => Command::Info(
            a.iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
        ),
        _ => return Err(arity(name)),
    })
}

fn parse_hello(a: &[Bytes]) -> Result<Command, Reply> {
    let mut protover = None;
    let mut auth = None;
    let mut setname = None;
    let mut rest = a;
    if let Some((v, tail)) = a.split_first() {
        let v = int(v)
            .map_err(|_| Reply::err("ERR Protocol version is not an integer or out of range"))?;
        if v != 2 && v != 3 {
            return Err(Reply::err("NOPROTO unsupported protocol version"));
        }
        protover = Some(v);
        rest = tail;
    }
    loop {
        rest = match rest {
            [] => break,
            [opt, user, pass, tail @ ..] if upper(opt) == "AUTH" => {
                auth = Some((user.clone(), pass.clone()));
                tail
            }
            [opt, name, tail @ ..] if upper(opt) == "SETNAME" => {
                setname = Some(name.clone());
                tail
            }
            [opt, ..] => {
                return Err(Reply::err(format!(
                    "ERR Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(opt)
                )))
            }
        };
    }
    if let Some(name) = &setname {
        check_client_attr(name).map_err(|_| bad_client_name())?;
    }
    Ok(Command::Hello {
        protover,
        auth,
        setname,
    })
}

fn bad_client_name() -> Reply {
    Reply::err("ERR Client names cannot contain spaces, newlines or special characters.")
}

/// Redis's `validateClientAttr`: printable ASCII without spaces.
fn check_client_attr(v: &[u8]) -> Result<(), ()> {
    if v.iter().all(|c| (b'!'..=b'~').contains(c)) {
        Ok(())
    } else {
        Err(())
    }
}

fn parse_client(argv: &[Bytes]) -> Result<ClientCmd, Reply> {
    let a = &argv[1..];
    Ok(match subcommand("CLIENT", argv)? {
        "setname" => {
            check_client_attr(&a[1]).map_err(|_| bad_client_name())?;
            ClientCmd::SetName(a[1].clone())
        }
        "getname" => ClientCmd::GetName,
        "id" => ClientCmd::Id,
        "info" => ClientCmd::Info,
        "list" => ClientCmd::List,
        "help" => ClientCmd::Help,
        "setinfo" => {
            let attr = upper(&a[1]);
            if attr != "LIB-NAME" && attr != "LIB-VER" {
                return Err(Reply::err(format!(
                    "ERR Unrecognized option '{}'",
                    String::from_utf8_lossy(&a[1])
                )));
            }
            check_client_attr(&a[2]).map_err(|_| {
                Reply::err(format!(
                    "ERR {} cannot contain spaces, newlines or special characters.",
                    String::from_utf8_lossy(&a[1])
                ))
            })?;
            ClientCmd::SetInfo {
                attr,
                value: a[2].clone(),
            }
        }
        _ => return Err(unknown_sub("CLIENT", &a[0])),
    })
}

fn parse_command_cmd(argv: &[Bytes]) -> Result<CommandCmd, Reply> {
    if argv.len() == 1 {
        return Ok(CommandCmd::List);
    }
    let names = || argv[2..].to_vec();
    Ok(match subcommand("COMMAND", argv)? {
        "count" => CommandCmd::Count,
        "info" => CommandCmd::Info(names()),
        "docs" => CommandCmd::Docs(names()),
        _ => return Err(unknown_sub("COMMAND", &argv[1])),
    })
}

fn parse_config(argv: &[Bytes]) -> Result<ConfigCmd, Reply> {
    Ok(match subcommand("CONFIG", argv)? {
        "get" => ConfigCmd::Get(argv[2..].to_vec()),
        // CONFIG SET takes name/value pairs; an odd count is an arity error in Redis.
        "set" => ConfigCmd::Set(pairs("config|set", &argv[2..])?),
        "resetstat" => ConfigCmd::ResetStat,
        _ => return Err(unknown_sub("CONFIG", &argv[1])),
    })
}

fn parse_scan(a: &[Bytes]) -> Result<Command, Reply> {
    // Redis's string2ull: plain decimal within u64.
    let cursor = std::str::from_utf8(&a[0])
        .ok()
        .filter(|s| s.bytes().all(|c| c.is_ascii_digit()))
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| Reply::err("ERR invalid cursor"))?;
    let (mut pattern, mut count, mut type_) = (None, 10u64, None);
    let mut rest = &a[1..];
    while let [opt, val, tail @ ..] = rest {
        match upper(opt).as_str() {
            "MATCH" => pattern = Some(val.clone()),
            "COUNT" => {
                count = u64::try_from(int(val)?)
                    .ok()
                    .filter(|&c| c >= 1)
                    .ok_or_else(syntax)?;
            }
            "TYPE" => type_ = Some(val.clone()),
            _ => return Err(syntax()),
        }
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(syntax());
    }
    Ok(Command::Scan {
        cursor,
        pattern,
        count,
        type_,
    })
}

/// The expiry option seen while parsing SET / GETEX options.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ExpOpt {
    Ex,
    Px,
    ExAt,
    PxAt,
}

/// Turns an EX/PX/EXAT/PXAT amount into an expiry like Redis's
/// `getExpireMillisecondsOrReply`: must be positive and not overflow when scaled.
fn set_expire(opt: ExpOpt, amount: &[u8], cmd: &str) -> Result<ExpireAt, Reply> {
    let t = int(amount)?;
    let unit = if matches!(opt, ExpOpt::Ex | ExpOpt::ExAt) {
        1000
    } else {
        1
    };
    let ms = t
        .checked_mul(unit)
        .filter(|_| t > 0)
        .ok_or_else(|| expire_time_err(cmd))?;
    Ok(match opt {
        ExpOpt::Ex | ExpOpt::Px => ExpireAt::RelativeMs(ms),
        ExpOpt::ExAt | ExpOpt::PxAt => ExpireAt::AbsoluteMs(ms),
    })
}

/// SET, SETEX, PSETEX, GETSET and GETEX. Options are parsed like Redis's
/// `parseExtendedStringArgumentsOrReply`: repeating an option is allowed, conflicting
/// ones are a syntax error, and the time is validated only after all options parsed.
fn parse_set_family(name: &str, a: &[Bytes]) -> Result<Command, Reply> {
    let key = a[0].clone();
    match name {
        "SETEX" | "PSETEX" => {
            let opt = if name == "SETEX" {
                ExpOpt::Ex
            } else {
                ExpOpt::Px
            };
            let lname = name.to_ascii_lowercase();
            let opts = SetOptions {
                expire: Some(set_expire(opt, &a[1], &lname)?),
                ..Default::default()
            };
            return Ok(Command::Set {
                key,
                value: a[2].clone(),
                opts,
            });
        }
        "GETSET" => {
            let opts = SetOptions {
                get: true,
                ..Default::default()
            };
            return Ok(Command::Set {
                key,
                value: a[1].clone(),
                opts,
            });
        }
        _ => {}
    }
    let is_set = name == "SET";
    let mut opts = SetOptions::default();
    let mut persist = false;
    let mut expire: Option<(ExpOpt, &Bytes)> = None;
    let mut i = if is_set { 2 } else { 1 };
    while i < a.len() {
        let opt = upper(&a[i]);
        let next = a.get(i + 1);
        let exp_kind = match opt.as_str() {
            "EX" => Some(ExpOpt::Ex),
            "PX" => Some(ExpOpt::Px),
            "EXAT" => Some(ExpOpt::ExAt),
            "PXAT" => Some(ExpOpt::PxAt),
            _ => None,
        };
        // Another expiry option may only repeat the same kind (the last value wins).
        let exp_ok = exp_kind
            .is_some_and(|k| !opts.keep_ttl && !persist && expire.is_none_or(|(e, _)| e == k));
        match (opt.as_str(), exp_kind, next) {
            ("NX", _, _) if is_set && opts.condition != Some(SetCondition::Xx) => {
                opts.condition = Some(SetCondition::Nx)
            }
            ("XX", _, _) if is_set && opts.condition != Some(SetCondition::Nx) => {
                opts.condition = Some(SetCondition::Xx)
            }
            ("GET", _, _) if is_set => opts.get = true,
            ("KEEPTTL", _, _) if is_set && expire.is_none() => opts.keep_ttl = true,
            ("PERSIST", _, _) if !is_set && expire.is_none() => persist = true,
            (_, Some(kind), Some(v)) if exp_ok => {
                expire = Some((kind, v));
                i += 1;
            }
            _ => return Err(syntax()),
        }
        i += 1;
    }
    let lname = name.to_ascii_lowercase();
    let expire = match expire {
        Some((kind, v)) => Some(set_expire(kind, v, &lname)?),
        None => None,
    };
    if is_set {
        opts.expire = expire;
        return Ok(Command::Set {
            key,
            value: a[1].clone(),
            opts,
        });
    }
    let action = match (expire, persist) {
        (Some(at), _) => Some(GetExAction::Expire(at)),
        (None, true) => Some(GetExAction::Persist),
        (None, false) => None,
    };
    Ok(Command::GetEx { key, action })
}

/// INCR, DECR, INCRBY, DECRBY, INCRBYFLOAT.
fn parse_counter(name: &str, a: &[Bytes]) -> Result<Command, Reply> {
    let key = a[0].clone();
    let delta = match name {
        "INCR" => 1,
        "DECR" => -1,
        "INCRBY" => int(&a[1])?,
        "DECRBY" => int(&a[1])?
            .checked_neg()
            .ok_or_else(|| Reply::err("ERR decrement would overflow"))?,
        _ => {
            let delta =
                parse_float(&a[1]).ok_or_else(|| Reply::err("ERR value is not a valid float"))?;
            return Ok(Command::IncrByFloat { key, delta });
        }
    };
    Ok(Command::IncrBy { key, delta })
}

/// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT, like Redis's `expireGenericCommand`: options
/// are checked first, then the time (negative allowed; only overflow is an error).
fn parse_expire(name: &str, a: &[Bytes]) -> Result<Command, Reply> {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for o in &a[2..] {
        match upper(o).as_str() {
            "NX" => nx = true,
            "XX" => xx = true,
            "GT" => gt = true,
            "LT" => lt = true,
            _ => {
                return Err(Reply::err(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(o)
                )))
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err(Reply::err(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(Reply::err(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    let t = int(&a[1])?;
    let unit = if name == "EXPIRE" || name == "EXPIREAT" {
        1000
    } else {
        1
    };
    let ms = t
        .checked_mul(unit)
        .ok_or_else(|| expire_time_err(&name.to_ascii_lowercase()))?;
    let at = if name.ends_with("AT") {
        ExpireAt::AbsoluteMs(ms)
    } else {
        ExpireAt::RelativeMs(ms)
    };
    // XX together with GT behaves like GT (a key without TTL never passes GT). XX with LT
    // is approximated by LT (which also accepts keys without a TTL).
    let condition = if nx {
        Some(ExpireCondition::Nx)
    } else if gt {
        Some(ExpireCondition::Gt)
    } else if lt {
        Some(ExpireCondition::Lt)
    } else if xx {
        Some(ExpireCondition::Xx)
    } else {
        None
    };
    Ok(Command::Expire {
        key: a[0].clone(),
        at,
        condition,
    })
}
#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::from(s.to_string())
    }

    fn argv(s: &str) -> Vec<Bytes> {
        s.split(' ').map(b).collect()
    }

    fn p(s: &str) -> Command {
        match Command::parse(&argv(s)) {
            Ok(c) => c,
            Err(e) => panic!("{s}: unexpected error {e:?}"),
        }
    }

    fn err(s: &str) -> String {
        err_argv(&argv(s))
    }

    fn err_argv(a: &[Bytes]) -> String {
        match Command::parse(a) {
            Err(Reply::Error(e)) => e,
            other => panic!("{a:?}: expected error, got {other:?}"),
        }
    }

    const NOT_INT: &str = "ERR value is not an integer or out of range";
    const SYNTAX: &str = "ERR syntax error";

    fn set(key: &str, value: &str, opts: SetOptions) -> Command {
        Command::Set {
            key: b(key),
            value: b(value),
            opts,
        }
    }

    #[test]
    fn unknown_command_format() {
        assert_eq!(
            err("FOO a b"),
            "ERR unknown command 'FOO', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            err("foo"),
            "ERR unknown command 'foo', with args beginning with: "
        );
        // Arguments are cut once 128 characters have been written.
        let long = format!("x {} {} z", "a".repeat(100), "b".repeat(100));
        let e = err(&long);
        let args = e
            .strip_prefix("ERR unknown command 'x', with args beginning with: ")
            .unwrap();
        assert_eq!(
            args,
            format!("'{}' '{}' ", "a".repeat(100), "b".repeat(128 - 103))
        );
        assert!(Command::parse(&[]).is_err());
        // Internal commands are unknown to clients.
        assert!(err("RAFTKV.SWEEP 10").starts_with("ERR unknown command 'RAFTKV.SWEEP'"));
    }

    #[test]
    fn arity_errors() {
        for (cmd, name) in [
            ("get", "get"),
            ("GET a b", "get"),
            ("SET k", "set"),
            ("MGET", "mget"),
            ("TIME x", "time"),
            ("DBSIZE x", "dbsize"),
            ("SETEX k 1", "setex"),
            ("ECHO", "echo"),
            ("PING a b", "ping"),
            ("SELECT", "select"),
            ("AUTH", "auth"),
            ("MSET a", "mset"),
            ("MSET a b c", "mset"),
            ("MSETNX a b c", "msetnx"),
            ("CLIENT", "client"),
            ("CONFIG", "config"),
            ("CLIENT SETNAME", "client|setname"),
            ("CLIENT GETNAME x", "client|getname"),
            ("CLIENT ID x", "client|id"),
            ("CLIENT INFO x", "client|info"),
            ("CLIENT SETINFO lib-name", "client|setinfo"),
            ("CLIENT HELP x", "client|help"),
            ("COMMAND COUNT x", "command|count"),
            ("CONFIG GET", "config|get"),
            ("CONFIG SET a", "config|set"),
            ("CONFIG SET a b c", "config|set"),
            ("CONFIG RESETSTAT x", "config|resetstat"),
            ("EXPIRE k", "expire"),
            ("GETRANGE k 1", "getrange"),
            ("SUBSTR k 1", "substr"),
        ] {
            assert_eq!(
                err(cmd),
                format!("ERR wrong number of arguments for '{name}' command"),
                "{cmd}"
            );
        }
    }

    #[test]
    fn connection_commands() {
        assert_eq!(p("ping"), Command::Ping(None));
        assert_eq!(p("PING hi"), Command::Ping(Some(b("hi"))));
        assert_eq!(p("echo x"), Command::Echo(b("x")));
        assert_eq!(p("SELECT 0"), Command::Select(0));
        assert_eq!(p("SELECT 5"), Command::Select(5));
        assert_eq!(err("SELECT x"), NOT_INT);
        assert_eq!(
            err("SELECT 9999999999"),
            "ERR value is out of range, value must between -2147483648 and 2147483647"
        );
        assert_eq!(p("QUIT"), Command::Quit);
        assert_eq!(p("TIME"), Command::Time);
        assert_eq!(
            p("AUTH pw"),
            Command::Auth {
                username: None,
                password: b("pw")
            }
        );
        assert_eq!(
            p("AUTH u pw"),
            Command::Auth {
                username: Some(b("u")),
                password: b("pw")
            }
        );
        assert_eq!(err("AUTH a b c"), SYNTAX);
        assert_eq!(p("INFO"), Command::Info(vec![]));
        assert_eq!(
            p("INFO server keyspace"),
            Command::Info(vec!["server".into(), "keyspace".into()])
        );
    }

    #[test]
    fn hello() {
        assert_eq!(
            p("HELLO"),
            Command::Hello {
                protover: None,
                auth: None,
                setname: None
            }
        );
        assert_eq!(
            p("hello 3 auth u p setname me"),
            Command::Hello {
                protover: Some(3),
                auth: Some((b("u"), b("p"))),
                setname: Some(b("me"))
            }
        );
        assert_eq!(err("HELLO 4"), "NOPROTO unsupported protocol version");
        assert_eq!(err("HELLO 1"), "NOPROTO unsupported protocol version");
        assert_eq!(
            err("HELLO x"),
            "ERR Protocol version is not an integer or out of range"
        );
        assert_eq!(
            err("HELLO 3 AUTH u"),
            "ERR Syntax error in HELLO option 'AUTH'"
        );
        assert_eq!(err("HELLO 2 foo"), "ERR Syntax error in HELLO option 'foo'");
        assert_eq!(
            err_argv(&[b("HELLO"), b("3"), b("SETNAME"), b("a b")]),
            "ERR Client names cannot contain spaces, newlines or special characters."
        );
    }

    #[test]
    fn client_subcommands() {
        assert_eq!(
            p("CLIENT SETNAME me"),
            Command::Client(ClientCmd::SetName(b("me")))
        );
        assert_eq!(
            p("client setname "),
            Command::Client(ClientCmd::SetName(b("")))
        );
        for bad in ["a b", "a\nb", "é"] {
            assert_eq!(
                err_argv(&[b("CLIENT"), b("SETNAME"), b(bad)]),
                "ERR Client names cannot contain spaces, newlines or special characters."
            );
        }
        assert_eq!(p("CLIENT GETNAME"), Command::Client(ClientCmd::GetName));
        assert_eq!(p("client id"), Command::Client(ClientCmd::Id));
        assert_eq!(p("CLIENT INFO"), Command::Client(ClientCmd::Info));
        assert_eq!(p("CLIENT LIST"), Command::Client(ClientCmd::List));
        assert_eq!(p("CLIENT HELP"), Command::Client(ClientCmd::Help));
        assert_eq!(
            p("CLIENT SETINFO lib-name redis-rs"),
            Command::Client(ClientCmd::SetInfo {
                attr: "LIB-NAME".into(),
                value: b("redis-rs")
            })
        );
        assert_eq!(err("CLIENT SETINFO foo x"), "ERR Unrecognized option 'foo'");
        assert_eq!(
            err_argv(&[b("CLIENT"), b("SETINFO"), b("lib-ver"), b("1 2")]),
            "ERR lib-ver cannot contain spaces, newlines or special characters."
        );
        assert_eq!(
            err("CLIENT foo"),
            "ERR unknown subcommand 'foo'. Try CLIENT HELP."
        );
        assert_eq!(p("CLIENT ID").kind(), Kind::Local);
    }

    #[test]
    fn command_and_config() {
        assert_eq!(p("COMMAND"), Command::Command(CommandCmd::List));
        assert_eq!(p("command count"), Command::Command(CommandCmd::Count));
        assert_eq!(
            p("COMMAND INFO get set"),
            Command::Command(CommandCmd::Info(vec![b("get"), b("set")]))
        );
        assert_eq!(
            p("COMMAND INFO"),
            Command::Command(CommandCmd::Info(vec![]))
        );
        assert_eq!(
            p("COMMAND DOCS get"),
            Command::Command(CommandCmd::Docs(vec![b("get")]))
        );
        assert_eq!(
            err("COMMAND FOO"),
            "ERR unknown subcommand 'FOO'. Try COMMAND HELP."
        );
        assert_eq!(
            p("CONFIG GET maxmemory save"),
            Command::Config(ConfigCmd::Get(vec![b("maxmemory"), b("save")]))
        );
        assert_eq!(
            p("config set a 1 b 2"),
            Command::Config(ConfigCmd::Set(vec![(b("a"), b("1")), (b("b"), b("2"))]))
        );
        assert_eq!(p("CONFIG RESETSTAT"), Command::Config(ConfigCmd::ResetStat));
        assert_eq!(
            err("CONFIG FOO"),
            "ERR unknown subcommand 'FOO'. Try CONFIG HELP."
        );
    }

    #[test]
    fn reads() {
        assert_eq!(p("get k"), Command::Get(b("k")));
        assert_eq!(p("MGET a b"), Command::MGet(vec![b("a"), b("b")]));
        assert_eq!(p("EXISTS a a"), Command::Exists(vec![b("a"), b("a")]));
        assert_eq!(p("STRLEN k"), Command::StrLen(b("k")));
        let gr = Command::GetRange {
            key: b("k"),
            start: 0,
            end: -1,
        };
        assert_eq!(p("GETRANGE k 0 -1"), gr);
        assert_eq!(p("substr k 0 -1"), gr);
        assert_eq!(err("GETRANGE k a 1"), NOT_INT);
        assert_eq!(err("GETRANGE k 0 1.5"), NOT_INT);
        assert_eq!(p("KEYS *"), Command::Keys(b("*")));
        assert_eq!(p("TYPE k"), Command::Type(b("k")));
        let ttl = |unit| Command::Ttl { key: b("k"), unit };
        assert_eq!(p("TTL k"), ttl(TimeUnit::Seconds));
        assert_eq!(p("PTTL k"), ttl(TimeUnit::Milliseconds));
        let et = |unit| Command::ExpireTime { key: b("k"), unit };
        assert_eq!(p("EXPIRETIME k"), et(TimeUnit::Seconds));
        assert_eq!(p("PEXPIRETIME k"), et(TimeUnit::Milliseconds));
        assert_eq!(p("DBSIZE"), Command::DbSize);
        assert_eq!(p("TOUCH a b"), Command::Touch(vec![b("a"), b("b")]));
    }

    #[test]
    fn scan() {
        assert_eq!(
            p("SCAN 0"),
            Command::Scan {
                cursor: 0,
                pattern: None,
                count: 10,
                type_: None
            }
        );
        assert_eq!(
            p("scan 18446744073709551615 match a* count 100 type string"),
            Command::Scan {
                cursor: u64::MAX,
                pattern: Some(b("a*")),
                count: 100,
                type_: Some(b("string"))
            }
        );
        assert_eq!(err("SCAN x"), "ERR invalid cursor");
        assert_eq!(err("SCAN -1"), "ERR invalid cursor");
        assert_eq!(err("SCAN 18446744073709551616"), "ERR invalid cursor");
        assert_eq!(err("SCAN 0 COUNT 0"), SYNTAX);
        assert_eq!(err("SCAN 0 COUNT -5"), SYNTAX);
        assert_eq!(err("SCAN 0 COUNT x"), NOT_INT);
        assert_eq!(err("SCAN 0 COUNT"), SYNTAX);
        assert_eq!(err("SCAN 0 FOO bar"), SYNTAX);
    }

    #[test]
    fn set_options() {
        assert_eq!(p("SET k v"), set("k", "v", SetOptions::default()));
        assert_eq!(
            p("SET k v EX 10 NX GET"),
            set(
                "k",
                "v",
                SetOptions {
                    expire: Some(ExpireAt::RelativeMs(10_000)),
                    condition: Some(SetCondition::Nx),
                    get: true,
                    keep_ttl: false
                }
            )
        );
        let exp = |e| SetOptions {
            expire: Some(e),
            ..Default::default()
        };
        assert_eq!(
            p("set k v px 5"),
            set("k", "v", exp(ExpireAt::RelativeMs(5)))
        );
        assert_eq!(
            p("set k v exat 5"),
            set("k", "v", exp(ExpireAt::AbsoluteMs(5000)))
        );
        assert_eq!(
            p("set k v pxat 5"),
            set("k", "v", exp(ExpireAt::AbsoluteMs(5)))
        );
        // Repeating the same option is fine in Redis; the last value wins.
        assert_eq!(
            p("SET k v EX 1 EX 2"),
            set("k", "v", exp(ExpireAt::RelativeMs(2000)))
        );
        assert_eq!(
            p("SET k v XX XX KEEPTTL"),
            set(
                "k",
                "v",
                SetOptions {
                    condition: Some(SetCondition::Xx),
                    keep_ttl: true,
                    ..Default::default()
                }
            )
        );
        for bad in [
            "SET k v NX XX",
            "SET k v XX NX",
            "SET k v EX 1 PX 1",
            "SET k v EX 1 EXAT 1",
            "SET k v PXAT 1 PX 1",
            "SET k v EX 1 KEEPTTL",
            "SET k v KEEPTTL EX 1",
            "SET k v EX",
            "SET k v FOO",
            "SET k v PERSIST",
            // Syntax is checked before the time value.
            "SET k v EX abc FOO",
        ] {
            assert_eq!(err(bad), SYNTAX, "{bad}");
        }
        for bad in [
            "SET k v EX 0",
            "SET k v PX -1",
            "SET k v EX 9223372036854775807",
        ] {
            assert_eq!(
                err(bad),
                "ERR invalid expire time in 'set' command",
                "{bad}"
            );
        }
        assert_eq!(err("SET k v EX x"), NOT_INT);
        assert_eq!(err("SET k v EX 01"), NOT_INT);
    }

    #[test]
    fn set_aliases() {
        assert_eq!(
            p("SETNX k v"),
            Command::SetNx {
                key: b("k"),
                value: b("v")
            }
        );
        let exp = |e| SetOptions {
            expire: Some(e),
            ..Default::default()
        };
        assert_eq!(
            p("SETEX k 2 v"),
            set("k", "v", exp(ExpireAt::RelativeMs(2000)))
        );
        assert_eq!(
            p("PSETEX k 2 v"),
            set("k", "v", exp(ExpireAt::RelativeMs(2)))
        );
        assert_eq!(
            err("SETEX k 0 v"),
            "ERR invalid expire time in 'setex' command"
        );
        assert_eq!(
            err("SETEX k 9223372036854775807 v"),
            "ERR invalid expire time in 'setex' command"
        );
        assert_eq!(
            err("PSETEX k -1 v"),
            "ERR invalid expire time in 'psetex' command"
        );
        assert_eq!(err("SETEX k x v"), NOT_INT);
        assert_eq!(
            p("GETSET k v"),
            set(
                "k",
                "v",
                SetOptions {
                    get: true,
                    ..Default::default()
                }
            )
        );
        assert_eq!(p("GETDEL k"), Command::GetDel(b("k")));
        assert_eq!(
            p("MSET a 1 b 2"),
            Command::MSet(vec![(b("a"), b("1")), (b("b"), b("2"))])
        );
        assert_eq!(p("MSETNX a 1"), Command::MSetNx(vec![(b("a"), b("1"))]));
        assert_eq!(
            p("APPEND k v"),
            Command::Append {
                key: b("k"),
                value: b("v")
            }
        );
        assert_eq!(
            p("SETRANGE k 3 v"),
            Command::SetRange {
                key: b("k"),
                offset: 3,
                value: b("v")
            }
        );
        assert_eq!(err("SETRANGE k -1 v"), "ERR offset is out of range");
        assert_eq!(err("SETRANGE k x v"), NOT_INT);
    }

    #[test]
    fn getex() {
        let g = |action| Command::GetEx {
            key: b("k"),
            action,
        };
        assert_eq!(p("GETEX k"), g(None));
        assert_eq!(p("getex k persist"), g(Some(GetExAction::Persist)));
        assert_eq!(
            p("GETEX k EX 3"),
            g(Some(GetExAction::Expire(ExpireAt::RelativeMs(3000))))
        );
        assert_eq!(
            p("GETEX k PX 3"),
            g(Some(GetExAction::Expire(ExpireAt::RelativeMs(3))))
        );
        assert_eq!(
            p("GETEX k EXAT 3"),
            g(Some(GetExAction::Expire(ExpireAt::AbsoluteMs(3000))))
        );
        assert_eq!(
            p("GETEX k PXAT 3"),
            g(Some(GetExAction::Expire(ExpireAt::AbsoluteMs(3))))
        );
        for bad in [
            "GETEX k EX 1 PERSIST",
            "GETEX k PERSIST EX 1",
            "GETEX k EX 1 PX 1",
            "GETEX k NX",
            "GETEX k GET",
            "GETEX k KEEPTTL",
            "GETEX k EX",
        ] {
            assert_eq!(err(bad), SYNTAX, "{bad}");
        }
        assert_eq!(
            err("GETEX k EX 0"),
            "ERR invalid expire time in 'getex' command"
        );
        assert_eq!(err("GETEX k EX x"), NOT_INT);
    }

    #[test]
    fn deletes_and_flush() {
        assert_eq!(p("DEL a b"), Command::Del(vec![b("a"), b("b")]));
        assert_eq!(p("UNLINK a"), Command::Del(vec![b("a")]));
        assert_eq!(
            p("RENAME a b"),
            Command::Rename {
                src: b("a"),
                dst: b("b"),
                nx: false
            }
        );
        assert_eq!(
            p("RENAMENX a b"),
            Command::Rename {
                src: b("a"),
                dst: b("b"),
                nx: true
            }
        );
        assert_eq!(p("PERSIST k"), Command::Persist(b("k")));
        for ok in ["FLUSHALL", "FLUSHDB", "flushall async", "FLUSHDB SYNC"] {
            assert_eq!(p(ok), Command::FlushAll);
        }
        assert_eq!(err("FLUSHALL NOW"), SYNTAX);
        assert_eq!(err("FLUSHALL ASYNC SYNC"), SYNTAX);
    }

    #[test]
    fn counters() {
        let by = |delta| Command::IncrBy { key: b("k"), delta };
        assert_eq!(p("INCR k"), by(1));
        assert_eq!(p("DECR k"), by(-1));
        assert_eq!(p("INCRBY k -7"), by(-7));
        assert_eq!(p("DECRBY k 5"), by(-5));
        assert_eq!(p("DECRBY k -9223372036854775807"), by(i64::MAX));
        assert_eq!(
            err("DECRBY k -9223372036854775808"),
            "ERR decrement would overflow"
        );
        for bad in [
            "1.5",
            "01",
            "+1",
            "-0",
            " 1",
            "",
            "9223372036854775808",
            "abc",
        ] {
            assert_eq!(err_argv(&[b("INCRBY"), b("k"), b(bad)]), NOT_INT, "{bad:?}");
        }
        let f = |delta| Command::IncrByFloat { key: b("k"), delta };
        assert_eq!(p("INCRBYFLOAT k 1.5e1"), f(15.0));
        assert_eq!(p("INCRBYFLOAT k -.5"), f(-0.5));
        assert_eq!(p("INCRBYFLOAT k 3"), f(3.0));
        assert_eq!(p("INCRBYFLOAT k inf"), f(f64::INFINITY));
        for bad in ["abc", "nan", "1e400", " 1", "1 ", "", "--1", "1.5x"] {
            assert_eq!(
                err_argv(&[b("INCRBYFLOAT"), b("k"), b(bad)]),
                "ERR value is not a valid float",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn expire_family() {
        let e = |at, condition| Command::Expire {
            key: b("k"),
            at,
            condition,
        };
        assert_eq!(p("EXPIRE k 10"), e(ExpireAt::RelativeMs(10_000), None));
        assert_eq!(p("PEXPIRE k -10"), e(ExpireAt::RelativeMs(-10), None));
        assert_eq!(p("EXPIREAT k 10"), e(ExpireAt::AbsoluteMs(10_000), None));
        assert_eq!(p("PEXPIREAT k 10"), e(ExpireAt::AbsoluteMs(10), None));
        for (opt, c) in [
            ("nx", ExpireCondition::Nx),
            ("XX", ExpireCondition::Xx),
            ("GT", ExpireCondition::Gt),
            ("lt", ExpireCondition::Lt),
            ("XX GT", ExpireCondition::Gt),
        ] {
            assert_eq!(
                p(&format!("EXPIRE k 1 {opt}")),
                e(ExpireAt::RelativeMs(1000), Some(c))
            );
        }
        for bad in ["NX XX", "NX GT", "LT NX"] {
            assert_eq!(
                err(&format!("EXPIRE k 10 {bad}")),
                "ERR NX and XX, GT or LT options at the same time are not compatible"
            );
        }
        assert_eq!(
            err("EXPIRE k 10 GT LT"),
            "ERR GT and LT options at the same time are not compatible"
        );
        assert_eq!(err("EXPIRE k 10 foo"), "ERR Unsupported option foo");
        // Options are checked before the time.
        assert_eq!(err("EXPIRE k x foo"), "ERR Unsupported option foo");
        assert_eq!(err("EXPIRE k x"), NOT_INT);
        assert_eq!(
            err("EXPIRE k 9223372036854775807"),
            "ERR invalid expire time in 'expire' command"
        );
        assert_eq!(
            err("EXPIREAT k -9223372036854775807"),
            "ERR invalid expire time in 'expireat' command"
        );
        assert_eq!(
            p("PEXPIRE k 9223372036854775807"),
            e(ExpireAt::RelativeMs(i64::MAX), None)
        );
    }

    #[test]
    fn kinds_keys_names() {
        assert_eq!(p("GET k").kind(), Kind::Read);
        assert_eq!(p("TOUCH k").kind(), Kind::Read);
        assert_eq!(p("SET k v").kind(), Kind::Write);
        assert_eq!(p("FLUSHDB").kind(), Kind::Write);
        assert_eq!(p("PING").kind(), Kind::Local);
        assert_eq!(p("MSET a 1 b 2").keys(), vec![&b("a"), &b("b")]);
        assert_eq!(p("RENAME a b").keys(), vec![&b("a"), &b("b")]);
        assert_eq!(p("GETEX k").keys(), vec![&b("k")]);
        assert!(p("KEYS *").keys().is_empty());
        assert_eq!(p("unlink a").name(), "DEL");
        assert_eq!(p("psetex k 1 v").name(), "SET");
        assert_eq!(p("getrange k 0 1").name(), "GETRANGE");
    }

    #[test]
    fn internal_commands() {
        assert!(Command::parse(&Command::sweep_argv(10)).is_err());
        assert!(Command::parse(&Command::del_if_expired_argv(&[b("x")])).is_err());
        let sweep = Command::parse_replicated(&Command::sweep_argv(10));
        assert_eq!(sweep, Ok(Command::SweepExpired { limit: 10 }));
        assert_eq!(sweep.map(|c| c.kind()), Ok(Kind::Write));
        let del = Command::parse_replicated(&Command::del_if_expired_argv(&[b("x"), b("y")]));
        assert_eq!(del, Ok(Command::DelIfExpired(vec![b("x"), b("y")])));
        assert!(Command::parse_replicated(&argv("RAFTKV.SWEEP -1")).is_err());
        assert!(Command::parse_replicated(&argv("RAFTKV.SWEEP")).is_err());
        assert_eq!(
            Command::parse_replicated(&argv("set k v")),
            Ok(set("k", "v", SetOptions::default()))
        );
    }

    #[test]
    fn admin_commands() {
        assert_eq!(p("raft.snapshot"), Command::Raft(RaftCmd::Snapshot));
        assert_eq!(p("RAFT.NODES"), Command::Raft(RaftCmd::Nodes));
        assert_eq!(
            p("raft.node add 4 127.0.0.1:7000"),
            Command::Raft(RaftCmd::NodeAdd {
                id: 4,
                addr: "127.0.0.1:7000".into()
            })
        );
        assert_eq!(
            p("RAFT.NODE remove 2"),
            Command::Raft(RaftCmd::NodeRemove { id: 2 })
        );
        assert_eq!(
            p("RAFT.TRANSFER-LEADER"),
            Command::Raft(RaftCmd::TransferLeader(None))
        );
        assert_eq!(
            p("RAFT.TRANSFER-LEADER 3"),
            Command::Raft(RaftCmd::TransferLeader(Some(3)))
        );
        assert_eq!(
            p("RAFT.NODE REPLACE 1 4"),
            Command::Raft(RaftCmd::NodeReplace { old: 1, new: 4 })
        );
        assert_eq!(p("shutdown nosave"), Command::Shutdown);
        assert_eq!(p("SHUTDOWN").kind(), Kind::Admin);
        let err = |s: &str| match Command::parse(&argv(s)) {
            Err(Reply::Error(e)) => e.to_string(),
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(
            err("RAFT.NODE ADD 0 127.0.0.1:1"),
            "ERR invalid node id: expected a positive integer"
        );
        assert_eq!(
            err("RAFT.NODE ADD 4 nowhere"),
            "ERR invalid address: expected host:port"
        );
        assert_eq!(
            err("RAFT.NODE ADD 4 h:99999"),
            "ERR invalid address: expected host:port"
        );
        assert_eq!(
            err("RAFT.NODE"),
            "ERR wrong number of arguments for 'raft.node' command"
        );
        assert!(err("RAFT.NODE JUMP 1").starts_with("ERR unknown subcommand 'JUMP'"));
        assert_eq!(err("RAFT.TRANSFER-LEADER 1 2"), "ERR syntax error");
        assert_eq!(err("SHUTDOWN LATER"), "ERR syntax error");
        assert_eq!(
            err("RAFT.SNAPSHOT now"),
            "ERR wrong number of arguments for 'raft.snapshot' command"
        );
    }

    #[test]
    fn table() {
        assert_eq!(command_table().len(), 58);
        for s in command_table() {
            assert_eq!(
                lookup(s.name.to_ascii_lowercase().as_bytes()).map(|x| x.name),
                Some(s.name)
            );
            assert!(s.arity != 0 && !s.summary.is_empty());
        }
        let get = lookup(b"gEt").map(|s| (s.arity, s.flags, s.first_key, s.last_key, s.step));
        assert_eq!(get, Some((2, &["readonly", "fast"][..], 1, 1, 1)));
        let mset = lookup(b"mset").map(|s| (s.arity, s.first_key, s.last_key, s.step));
        assert_eq!(mset, Some((-3, 1, -1, 2)));
        assert!(lookup(b"nope").is_none());
        assert_eq!(
            lookup_subcommand(b"client", b"SETNAME").map(|s| s.arity),
            Some(3)
        );
        assert_eq!(subcommand_table().len(), 16);
        // Every command in the table parses (given enough plausible arguments).
        for s in command_table() {
            let mut a = vec![b(s.name)];
            let filler = match s.name {
                "CLIENT" => vec!["ID"],
                "CONFIG" => vec!["GET", "x"],
                "RAFT.NODE" => vec!["REMOVE", "2"],
                "SHUTDOWN" | "RAFT.TRANSFER-LEADER" => vec![],
                "SCAN" => vec!["0"],
                "SELECT" => vec!["0"],
                "HELLO" | "PING" | "QUIT" | "COMMAND" | "INFO" | "TIME" | "DBSIZE" | "FLUSHALL"
                | "FLUSHDB" => vec![],
                "MSET" | "MSETNX" => vec!["k", "v"],
                _ => vec!["1"; s.arity.unsigned_abs() as usize - 1],
            };
            a.extend(filler.into_iter().map(b));
            assert!(Command::parse(&a).is_ok(), "{a:?}");
        }
    }
}
