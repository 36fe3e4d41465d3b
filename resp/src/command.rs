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

const W: &[&str] = &["write", "denyoom"];
const WF: &[&str] = &["write", "fast"];
const R: &[&str] = &["readonly"];
const RF: &[&str] = &["readonly", "fast"];
const C: &[&str] = &["fast", "loading", "stale"];

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

static TABLE: &[CommandSpec] = &[
    spec!("PING", -1, C, 0, 0, 0, "Returns the server's liveliness response."),
    spec!("ECHO", 2, C, 0, 0, 0, "Returns the given string."),
    spec!("SELECT", 2, C, 0, 0, 0, "Changes the selected database."),
    spec!("QUIT", -1, C, 0, 0, 0, "Closes the connection."),
    spec!("HELLO", -1, C, 0, 0, 0, "Handshakes with the Redis server."),
    spec!("AUTH", -2, C, 0, 0, 0, "Authenticates the connection."),
    spec!("CLIENT", -2, C, 0, 0, 0, "A container for client connection commands."),
    spec!("COMMAND", -1, C, 0, 0, 0, "Returns detailed information about all commands."),
    spec!("CONFIG", -2, &["admin", "loading", "stale"], 0, 0, 0, "A container for server configuration commands."),
    spec!("INFO", -1, &["loading", "stale"], 0, 0, 0, "Returns information and statistics about the server."),
    spec!("TIME", 1, C, 0, 0, 0, "Returns the server time."),
    spec!("GET", 2, RF, 1, 1, 1, "Returns the string value of a key."),
    spec!("MGET", -2, RF, 1, -1, 1, "Atomically returns the string values of one or more keys."),
    spec!("EXISTS", -2, RF, 1, -1, 1, "Determines whether one or more keys exist."),
    spec!("STRLEN", 2, RF, 1, 1, 1, "Returns the length of a string value."),
    spec!("GETRANGE", 4, R, 1, 1, 1, "Returns a substring of the string stored at a key."),
    spec!("SUBSTR", 4, R, 1, 1, 1, "Returns a substring from a string value."),
    spec!("KEYS", 2, R, 0, 0, 0, "Returns all key names that match a pattern."),
    spec!("SCAN", -2, R, 0, 0, 0, "Iterates over the key names in the database."),
    spec!("TYPE", 2, RF, 1, 1, 1, "Determines the type of value stored at a key."),
    spec!("TTL", 2, RF, 1, 1, 1, "Returns the expiration time in seconds of a key."),
    spec!("PTTL", 2, RF, 1, 1, 1, "Returns the expiration time in milliseconds of a key."),
    spec!("EXPIRETIME", 2, RF, 1, 1, 1, "Returns the expiration time of a key as a Unix timestamp."),
    spec!("PEXPIRETIME", 2, RF, 1, 1, 1, "Returns the expiration time of a key as a Unix milliseconds timestamp."),
    spec!("DBSIZE", 1, RF, 0, 0, 0, "Returns the number of keys in the database."),
    spec!("SET", -3, W, 1, 1, 1, "Sets the string value of a key, ignoring its type."),
    spec!("SETNX", 3, &["write", "denyoom", "fast"], 1, 1, 1, "Set the string value of a key only when the key doesn't exist."),
    spec!("SETEX", 4, W, 1, 1, 1, "Sets the string value and expiration time of a key."),
    spec!("PSETEX", 4, W, 1, 1, 1, "Sets both string value and expiration time in milliseconds of a key."),
    spec!("GETSET", 3, &["write", "denyoom", "fast"], 1, 1, 1, "Returns the previous string value of a key after setting it to a new value."),
    spec!("GETDEL", 2, WF, 1, 1, 1, "Returns the string value of a key after deleting the key."),
    spec!("GETEX", -2, WF, 1, 1, 1, "Returns the string value of a key after setting its expiration time."),
    spec!("MSET", -3, W, 1, -1, 2, "Atomically creates or modifies the string values of one or more keys."),
    spec!("MSETNX", -3, W, 1, -1, 2, "Atomically modifies the string values of one or more keys only when all keys don't exist."),
    spec!("DEL", -2, &["write"], 1, -1, 1, "Deletes one or more keys."),
    spec!("UNLINK", -2, WF, 1, -1, 1, "Asynchronously deletes one or more keys."),
    spec!("TOUCH", -2, RF, 1, -1, 1, "Returns the number of existing keys out of those specified after updating the time they were last accessed."),
    spec!("INCR", 2, &["write", "denyoom", "fast"], 1, 1, 1, "Increments the integer value of a key by one."),
    spec!("DECR", 2, &["write", "denyoom", "fast"], 1, 1, 1, "Decrements the integer value of a key by one."),
    spec!("INCRBY", 3, &["write", "denyoom", "fast"], 1, 1, 1, "Increments the integer value of a key by a number."),
    spec!("DECRBY", 3, &["write", "denyoom", "fast"], 1, 1, 1, "Decrements a number from the integer value of a key."),
    spec!("INCRBYFLOAT", 3, &["write", "denyoom", "fast"], 1, 1, 1, "Increment the floating point value of a key by a number."),
    spec!("APPEND", 3, &["write", "denyoom", "fast"], 1, 1, 1, "Appends a string to the value of a key."),
    spec!("SETRANGE", 4, W, 1, 1, 1, "Overwrites a part of a string value with another by an offset."),
    spec!("RENAME", 3, &["write"], 1, 2, 1, "Renames a key and overwrites the destination."),
    spec!("RENAMENX", 3, WF, 1, 2, 1, "Renames a key only when the target key name doesn't exist."),
    spec!("EXPIRE", -3, WF, 1, 1, 1, "Sets the expiration time of a key in seconds."),
    spec!("PEXPIRE", -3, WF, 1, 1, 1, "Sets the expiration time of a key in milliseconds."),
    spec!("EXPIREAT", -3, WF, 1, 1, 1, "Sets the expiration time of a key to a Unix timestamp."),
    spec!("PEXPIREAT", -3, WF, 1, 1, 1, "Sets the expiration time of a key to a Unix milliseconds timestamp."),
    spec!("PERSIST", 2, WF, 1, 1, 1, "Removes the expiration time of a key."),
    spec!("FLUSHALL", -1, &["write"], 0, 0, 0, "Removes all keys from all databases."),
    spec!("FLUSHDB", -1, &["write"], 0, 0, 0, "Remove all keys from the current database."),
];

/// Every command raftkv serves.
pub fn command_table() -> &'static [CommandSpec] {
    TABLE
}

/// Looks a command up by name, case-insensitively.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    TABLE
        .iter()
        .find(|s| s.name.as_bytes().eq_ignore_ascii_case(name))
}

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

fn int(b: &[u8]) -> Result<i64, Reply> {
    // Redis accepts no leading '+', spaces or leading zeros ("01" is fine in strtoll but
    // Redis's string2ll rejects it); keep to canonical decimal.
    let s = std::str::from_utf8(b).map_err(|_| not_int())?;
    let ok = match s.as_bytes() {
        [] => false,
        [b'0'] => true,
        [b'-', rest @ ..] => matches!(rest.first(), Some(b'1'..=b'9')),
        [b'1'..=b'9', ..] => true,
        _ => false,
    };
    if !ok {
        return Err(not_int());
    }
    s.parse().map_err(|_| not_int())
}

/// Parses a float like Redis's `getLongDoubleFromObject` (no spaces, no nan).
pub fn parse_float(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty() || s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return None;
    }
    let f: f64 = match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        l if l.contains("nan") => return None,
        _ => s.parse().ok()?,
    };
    Some(f)
}

fn upper(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_uppercase()
}

fn expire_ms(amount: i64, unit_ms: i64, absolute: bool, cmd: &str) -> Result<ExpireAt, Reply> {
    let bad = || Reply::err(format!("ERR invalid expire time in '{cmd}' command"));
    let ms = amount.checked_mul(unit_ms).ok_or_else(bad)?;
    Ok(if absolute {
        ExpireAt::AbsoluteMs(ms)
    } else {
        ExpireAt::RelativeMs(ms)
    })
}

fn unknown_command(argv: &[Bytes]) -> Reply {
    let mut args = String::new();
    for a in argv.iter().skip(1) {
        let piece = format!("'{}' ", String::from_utf8_lossy(a));
        if args.len() + piece.len() > 128 {
            break;
        }
        args.push_str(&piece);
    }
    Reply::err(format!(
        "ERR unknown command '{}', with args beginning with: {}",
        String::from_utf8_lossy(&argv[0]),
        args
    ))
}

fn unknown_sub(cmd: &str, sub: &[u8]) -> Reply {
    Reply::err(format!(
        "ERR unknown subcommand '{}'. Try {cmd} HELP.",
        String::from_utf8_lossy(sub)
    ))
}

impl Command {
    /// Parses a client request.
    pub fn parse(argv: &[Bytes]) -> Result<Command, Reply> {
        let Some(name) = argv.first() else {
            return Err(Reply::err("ERR empty command"));
        };
        let Some(spec) = lookup(name) else {
            return Err(unknown_command(argv));
        };
        let n = argv.len() as i32;
        if (spec.arity > 0 && n != spec.arity) || (spec.arity < 0 && n < -spec.arity) {
            return Err(arity(spec.name));
        }
        parse_known(spec.name, argv)
    }

    /// Parses a command from a committed log entry: client commands plus internal ones.
    pub fn parse_replicated(argv: &[Bytes]) -> Result<Command, Reply> {
        match argv.first().map(|n| upper(n)).as_deref() {
            Some("RAFTKV.SWEEP") if argv.len() == 2 => Ok(Command::SweepExpired {
                limit: int(&argv[1])?.max(0) as u64,
            }),
            Some("RAFTKV.DELIFEXPIRED") => Ok(Command::DelIfExpired(argv[1..].to_vec())),
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
        let mut v = vec![Bytes::from_static(b"RAFTKV.DELIFEXPIRED")];
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
            _ => Kind::Write,
        }
    }

    /// The keys the command touches (for slot routing).
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
            | Persist(k) => {
                vec![k]
            }
            MGet(ks) | Exists(ks) | Del(ks) | Touch(ks) | DelIfExpired(ks) => ks.iter().collect(),
            MSet(kv) | MSetNx(kv) => kv.iter().map(|(k, _)| k).collect(),
            Rename { src, dst, .. } => vec![src, dst],
            _ => vec![],
        }
    }

    /// The command's name (upper case).
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

fn pairs(name: &str, args: &[Bytes]) -> Result<Vec<(Bytes, Bytes)>, Reply> {
    if args.is_empty() || args.len() % 2 != 0 {
        return Err(arity(name));
    }
    Ok(args
        .chunks(2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect())
}

fn parse_known(name: &'static str, argv: &[Bytes]) -> Result<Command, Reply> {
    let a = &argv[1..];
    let key = || a[0].clone();
    Ok(match name {
        "PING" => match a.len() {
            0 => Command::Ping(None),
            1 => Command::Ping(Some(a[0].clone())),
            _ => return Err(arity("ping")),
        },
        "ECHO" => Command::Echo(key()),
        "SELECT" => Command::Select(int(&a[0])?),
        "QUIT" => Command::Quit,
        "TIME" => Command::Time,
        "HELLO" => parse_hello(a)?,
        "AUTH" => match a.len() {
            1 => Command::Auth {
                username: None,
                password: a[0].clone(),
            },
            2 => Command::Auth {
                username: Some(a[0].clone()),
                password: a[1].clone(),
            },
            _ => return Err(syntax()),
        },
        "CLIENT" => Command::Client(parse_client(a)?),
        "COMMAND" => Command::Command(match a.first().map(|s| upper(s)).as_deref() {
            None => CommandCmd::List,
            Some("COUNT") if a.len() == 1 => CommandCmd::Count,
            Some("COUNT") => return Err(arity("command|count")),
            Some("INFO") => CommandCmd::Info(a[1..].to_vec()),
            Some("DOCS") => CommandCmd::Docs(a[1..].to_vec()),
            Some(_) => return Err(unknown_sub("COMMAND", &a[0])),
        }),
        "CONFIG" => Command::Config(match upper(&a[0]).as_str() {
            "GET" if a.len() >= 2 => ConfigCmd::Get(a[1..].to_vec()),
            "GET" => return Err(arity("config|get")),
            "SET" if a.len() >= 3 && a.len() % 2 == 1 => ConfigCmd::Set(
                a[1..]
                    .chunks(2)
                    .map(|c| (c[0].clone(), c[1].clone()))
                    .collect(),
            ),
            "SET" => return Err(arity("config|set")),
            "RESETSTAT" => ConfigCmd::ResetStat,
            _ => return Err(unknown_sub("CONFIG", &a[0])),
        }),
        "INFO" => Command::Info(
            a.iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
        ),
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
        "TTL" => Command::Ttl {
            key: key(),
            unit: TimeUnit::Seconds,
        },
        "PTTL" => Command::Ttl {
            key: key(),
            unit: TimeUnit::Milliseconds,
        },
        "EXPIRETIME" => Command::ExpireTime {
            key: key(),
            unit: TimeUnit::Seconds,
        },
        "PEXPIRETIME" => Command::ExpireTime {
            key: key(),
            unit: TimeUnit::Milliseconds,
        },
        "DBSIZE" => Command::DbSize,
        "SET" => parse_set(a)?,
        "SETNX" => Command::SetNx {
            key: key(),
            value: a[1].clone(),
        },
        "SETEX" | "PSETEX" => {
            let lname = name.to_ascii_lowercase();
            let t = int(&a[1])?;
            if t <= 0 {
                return Err(Reply::err(format!(
                    "ERR invalid expire time in '{lname}' command"
                )));
            }
            let unit = if name == "SETEX" { 1000 } else { 1 };
            let opts = SetOptions {
                expire: Some(expire_ms(t, unit, false, &lname)?),
                ..Default::default()
            };
            Command::Set {
                key: key(),
                value: a[2].clone(),
                opts,
            }
        }
        "GETSET" => Command::Set {
            key: key(),
            value: a[1].clone(),
            opts: SetOptions {
                get: true,
                ..Default::default()
            },
        },
        "GETDEL" => Command::GetDel(key()),
        "GETEX" => parse_getex(a)?,
        "MSET" => Command::MSet(pairs("mset", a)?),
        "MSETNX" => Command::MSetNx(pairs("msetnx", a)?),
        "DEL" | "UNLINK" => Command::Del(a.to_vec()),
        "TOUCH" => Command::Touch(a.to_vec()),
        "INCR" => Command::IncrBy {
            key: key(),
            delta: 1,
        },
        "DECR" => Command::IncrBy {
            key: key(),
            delta: -1,
        },
        "INCRBY" => Command::IncrBy {
            key: key(),
            delta: int(&a[1])?,
        },
        "DECRBY" => {
            let d = int(&a[1])?;
            let delta = d
                .checked_neg()
                .ok_or_else(|| Reply::err("ERR decrement would overflow"))?;
            Command::IncrBy { key: key(), delta }
        }
        "INCRBYFLOAT" => Command::IncrByFloat {
            key: key(),
            delta: parse_float(&a[1])
                .filter(|f| f.is_finite())
                .ok_or_else(|| Reply::err("ERR value is not a valid float"))?,
        },
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
        "RENAME" => Command::Rename {
            src: key(),
            dst: a[1].clone(),
            nx: false,
        },
        "RENAMENX" => Command::Rename {
            src: key(),
            dst: a[1].clone(),
            nx: true,
        },
        "EXPIRE" | "PEXPIRE" | "EXPIREAT" | "PEXPIREAT" => parse_expire(name, a)?,
        "PERSIST" => Command::Persist(key()),
        "FLUSHALL" | "FLUSHDB" => {
            if a.len() > 1 {
                return Err(syntax());
            }
            if let Some(mode) = a.first() {
                if !matches!(upper(mode).as_str(), "ASYNC" | "SYNC") {
                    return Err(syntax());
                }
            }
            Command::FlushAll
        }
        _ => return Err(unknown_command(argv)),
    })
}

fn parse_hello(a: &[Bytes]) -> Result<Command, Reply> {
    let mut protover = None;
    let mut auth = None;
    let mut setname = None;
    let mut i = 0;
    if let Some(v) = a.first() {
        let v = int(v)
            .map_err(|_| Reply::err("ERR Protocol version is not an integer or out of range"))?;
        if v != 2 && v != 3 {
            return Err(Reply::err("NOPROTO unsupported protocol version"));
        }
        protover = Some(v);
        i = 1;
    }
    while i < a.len() {
        let left = a.len() - i - 1;
        match upper(&a[i]).as_str() {
            "AUTH" if left >= 2 => {
                auth = Some((a[i + 1].clone(), a[i + 2].clone()));
                i += 3;
            }
            "SETNAME" if left >= 1 => {
                check_client_name(&a[i + 1])?;
                setname = Some(a[i + 1].clone());
                i += 2;
            }
            _ => {
                return Err(Reply::err(format!(
                    "ERR Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(&a[i])
                )))
            }
        }
    }
    Ok(Command::Hello {
        protover,
        auth,
        setname,
    })
}

fn check_client_name(name: &[u8]) -> Result<(), Reply> {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(Reply::err(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

fn parse_client(a: &[Bytes]) -> Result<ClientCmd, Reply> {
    let sub = upper(&a[0]);
    let want = |n: usize, name: &str| {
        if a.len() == n {
            Ok(())
        } else {
            Err(arity(name))
        }
    };
    Ok(match sub.as_str() {
        "SETNAME" => {
            want(2, "client|setname")?;
            check_client_name(&a[1])?;
            ClientCmd::SetName(a[1].clone())
        }
        "GETNAME" => {
            want(1, "client|getname")?;
            ClientCmd::GetName
        }
        "ID" => {
            want(1, "client|id")?;
            ClientCmd::Id
        }
        "INFO" => {
            want(1, "client|info")?;
            ClientCmd::Info
        }
        "LIST" => ClientCmd::List,
        "HELP" => ClientCmd::Help,
        "SETINFO" => {
            want(3, "client|setinfo")?;
            let attr = upper(&a[1]);
            if attr != "LIB-NAME" && attr != "LIB-VER" {
                return Err(Reply::err(format!(
                    "ERR Unrecognized option '{}'",
                    String::from_utf8_lossy(&a[1])
                )));
            }
            ClientCmd::SetInfo {
                attr,
                value: a[2].clone(),
            }
        }
        _ => return Err(unknown_sub("CLIENT", &a[0])),
    })
}

fn parse_scan(a: &[Bytes]) -> Result<Command, Reply> {
    let cursor = std::str::from_utf8(&a[0])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| Reply::err("ERR invalid cursor"))?;
    let (mut pattern, mut count, mut type_) = (None, 10u64, None);
    let mut i = 1;
    while i < a.len() {
        if i + 1 >= a.len() {
            return Err(syntax());
        }
        match upper(&a[i]).as_str() {
            "MATCH" => pattern = Some(a[i + 1].clone()),
            "COUNT" => {
                let c = int(&a[i + 1])?;
                if c < 1 {
                    return Err(syntax());
                }
                count = c as u64;
            }
            "TYPE" => type_ = Some(a[i + 1].clone()),
            _ => return Err(syntax()),
        }
        i += 2;
    }
    Ok(Command::Scan {
        cursor,
        pattern,
        count,
        type_,
    })
}

fn parse_set(a: &[Bytes]) -> Result<Command, Reply> {
    let mut opts = SetOptions::default();
    let mut i = 2;
    while i < a.len() {
        let opt = upper(&a[i]);
        let next = a.get(i + 1);
        match opt.as_str() {
            "NX" if opts.condition.is_none() => opts.condition = Some(SetCondition::Nx),
            "XX" if opts.condition.is_none() => opts.condition = Some(SetCondition::Xx),
            "GET" => opts.get = true,
            "KEEPTTL" if opts.expire.is_none() => opts.keep_ttl = true,
            "EX" | "PX" | "EXAT" | "PXAT"
                if opts.expire.is_none() && !opts.keep_ttl && next.is_some() =>
            {
                let t = int(next.map_or(&[][..], |b| &b[..]))?;
                if t <= 0 {
                    return Err(Reply::err("ERR invalid expire time in 'set' command"));
                }
                let unit = if opt == "EX" || opt == "EXAT" {
                    1000
                } else {
                    1
                };
                opts.expire = Some(expire_ms(t, unit, opt.ends_with("AT"), "set")?);
                i += 1;
            }
            _ => return Err(syntax()),
        }
        i += 1;
    }
    Ok(Command::Set {
        key: a[0].clone(),
        value: a[1].clone(),
        opts,
    })
}

fn parse_getex(a: &[Bytes]) -> Result<Command, Reply> {
    let key = a[0].clone();
    let action = match a.len() {
        1 => None,
        2 if upper(&a[1]) == "PERSIST" => Some(GetExAction::Persist),
        3 => {
            let opt = upper(&a[1]);
            let unit = match opt.as_str() {
                "EX" | "EXAT" => 1000,
                "PX" | "PXAT" => 1,
                _ => return Err(syntax()),
            };
            let t = int(&a[2])?;
            if t <= 0 {
                return Err(Reply::err("ERR invalid expire time in 'getex' command"));
            }
            Some(GetExAction::Expire(expire_ms(
                t,
                unit,
                opt.ends_with("AT"),
                "getex",
            )?))
        }
        _ => return Err(syntax()),
    };
    Ok(Command::GetEx { key, action })
}

fn parse_expire(name: &str, a: &[Bytes]) -> Result<Command, Reply> {
    let t = int(&a[1])?;
    let unit = if name == "EXPIRE" || name == "EXPIREAT" {
        1000
    } else {
        1
    };
    let at = expire_ms(t, unit, name.ends_with("AT"), &name.to_ascii_lowercase())?;
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for o in &a[2..] {
        match upper(o).as_str() {
            "NX" => nx = true,
            "XX" => xx = true,
            "GT" => gt = true,
            "LT" => lt = true,
            other => return Err(Reply::err(format!("ERR Unsupported option {other}"))),
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
    // XX combined with GT/LT: GT/LT already require an existing key with a TTL semantics.
    Ok(Command::Expire {
        key: a[0].clone(),
        at,
        condition,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command, Reply> {
        let argv: Vec<Bytes> = s.split(' ').map(|x| Bytes::from(x.to_string())).collect();
        Command::parse(&argv)
    }

    fn err(s: &str) -> String {
        match p(s) {
            Err(Reply::Error(e)) => e,
            other => panic!("{s}: expected error, got {other:?}"),
        }
    }

    fn b(s: &str) -> Bytes {
        Bytes::from(s.to_string())
    }

    #[test]
    fn unknown_and_arity() {
        assert_eq!(
            err("FOO a b"),
            "ERR unknown command 'FOO', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            err("get"),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            err("GET a b"),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            err("MSET a"),
            "ERR wrong number of arguments for 'mset' command"
        );
        assert_eq!(
            err("MSET a b c"),
            "ERR wrong number of arguments for 'mset' command"
        );
        assert_eq!(
            err("CLIENT SETNAME"),
            "ERR wrong number of arguments for 'client|setname' command"
        );
        assert_eq!(
            err("CLIENT FOO"),
            "ERR unknown subcommand 'FOO'. Try CLIENT HELP."
        );
    }

    #[test]
    fn set_options() {
        assert_eq!(
            p("SET k v EX 10 NX GET").unwrap(),
            Command::Set {
                key: b("k"),
                value: b("v"),
                opts: SetOptions {
                    expire: Some(ExpireAt::RelativeMs(10_000)),
                    condition: Some(SetCondition::Nx),
                    get: true,
                    keep_ttl: false
                }
            }
        );
        assert_eq!(
            p("set k v pxat 5").unwrap(),
            Command::Set {
                key: b("k"),
                value: b("v"),
                opts: SetOptions {
                    expire: Some(ExpireAt::AbsoluteMs(5)),
                    ..Default::default()
                }
            }
        );
        assert_eq!(err("SET k v NX XX"), "ERR syntax error");
        assert_eq!(err("SET k v EX 1 PX 1"), "ERR syntax error");
        assert_eq!(err("SET k v EX 1 KEEPTTL"), "ERR syntax error");
        assert_eq!(err("SET k v EX"), "ERR syntax error");
        assert_eq!(
            err("SET k v EX 0"),
            "ERR invalid expire time in 'set' command"
        );
        assert_eq!(
            err("SET k v EX x"),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err("SET k v EX 9223372036854775807"),
            "ERR invalid expire time in 'set' command"
        );
        assert_eq!(
            err("SETEX k 0 v"),
            "ERR invalid expire time in 'setex' command"
        );
        assert_eq!(
            err("PSETEX k -1 v"),
            "ERR invalid expire time in 'psetex' command"
        );
        assert!(matches!(
            p("GETSET k v").unwrap(),
            Command::Set {
                opts: SetOptions { get: true, .. },
                ..
            }
        ));
    }

    #[test]
    fn counters() {
        assert_eq!(
            p("INCR k").unwrap(),
            Command::IncrBy {
                key: b("k"),
                delta: 1
            }
        );
        assert_eq!(
            p("DECRBY k 5").unwrap(),
            Command::IncrBy {
                key: b("k"),
                delta: -5
            }
        );
        assert_eq!(
            err("DECRBY k -9223372036854775808"),
            "ERR decrement would overflow"
        );
        assert_eq!(
            err("INCRBY k 1.5"),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err("INCRBY k 01"),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(err("INCRBYFLOAT k abc"), "ERR value is not a valid float");
        assert_eq!(
            p("INCRBYFLOAT k 1.5e1").unwrap(),
            Command::IncrByFloat {
                key: b("k"),
                delta: 15.0
            }
        );
        assert_eq!(err("SETRANGE k -1 v"), "ERR offset is out of range");
    }

    #[test]
    fn expire_family() {
        assert_eq!(
            p("EXPIRE k 10 GT").unwrap(),
            Command::Expire {
                key: b("k"),
                at: ExpireAt::RelativeMs(10_000),
                condition: Some(ExpireCondition::Gt)
            }
        );
        assert_eq!(
            p("PEXPIREAT k 10").unwrap(),
            Command::Expire {
                key: b("k"),
                at: ExpireAt::AbsoluteMs(10),
                condition: None
            }
        );
        assert_eq!(
            err("EXPIRE k 10 NX XX"),
            "ERR NX and XX, GT or LT options at the same time are not compatible"
        );
        assert_eq!(
            err("EXPIRE k 10 GT LT"),
            "ERR GT and LT options at the same time are not compatible"
        );
        assert_eq!(err("EXPIRE k 10 FOO"), "ERR Unsupported option FOO");
        assert_eq!(
            err("EXPIRE k 9223372036854775807"),
            "ERR invalid expire time in 'expire' command"
        );
        assert_eq!(
            err("GETEX k EX 0"),
            "ERR invalid expire time in 'getex' command"
        );
        assert_eq!(
            p("GETEX k PERSIST").unwrap(),
            Command::GetEx {
                key: b("k"),
                action: Some(GetExAction::Persist)
            }
        );
    }

    #[test]
    fn scan_and_connection() {
        assert_eq!(
            p("SCAN 5 MATCH a* COUNT 100").unwrap(),
            Command::Scan {
                cursor: 5,
                pattern: Some(b("a*")),
                count: 100,
                type_: None
            }
        );
        assert_eq!(err("SCAN x"), "ERR invalid cursor");
        assert_eq!(err("SCAN 0 COUNT 0"), "ERR syntax error");
        assert_eq!(err("HELLO 4"), "NOPROTO unsupported protocol version");
        assert_eq!(
            err("HELLO x"),
            "ERR Protocol version is not an integer or out of range"
        );
        assert_eq!(
            p("HELLO 3 SETNAME me").unwrap(),
            Command::Hello {
                protover: Some(3),
                auth: None,
                setname: Some(b("me"))
            }
        );
        assert_eq!(
            p("CLIENT SETINFO lib-name redis-rs").unwrap().kind(),
            Kind::Local
        );
        assert_eq!(p("FLUSHALL ASYNC").unwrap(), Command::FlushAll);
        assert_eq!(err("FLUSHALL NOW"), "ERR syntax error");
    }

    #[test]
    fn kinds_keys_and_internal() {
        assert_eq!(p("GET k").unwrap().kind(), Kind::Read);
        assert_eq!(p("SET k v").unwrap().kind(), Kind::Write);
        assert_eq!(p("PING").unwrap().kind(), Kind::Local);
        assert_eq!(p("MSET a 1 b 2").unwrap().keys(), vec![&b("a"), &b("b")]);
        assert!(Command::parse(&Command::sweep_argv(10)).is_err());
        assert_eq!(
            Command::parse_replicated(&Command::sweep_argv(10)).unwrap(),
            Command::SweepExpired { limit: 10 }
        );
        assert_eq!(
            Command::parse_replicated(&Command::del_if_expired_argv(&[b("x")])).unwrap(),
            Command::DelIfExpired(vec![b("x")])
        );
        for s in command_table() {
            assert!(lookup(s.name.to_ascii_lowercase().as_bytes()).is_some());
        }
    }
}
