//! The command table and the parsers, one family per file (kvrocks' `cmd_<family>.cc` is the
//! model): each `cmd/<family>.rs` holds its commands' table entries (name, arity, flags, key
//! specs, ACL categories, docs), their parsers and their unit tests, and ends in its
//! registration table. This module joins the families into one registry, dispatches
//! `Command::parse` to the entry's parser with one lookup, and derives `kind()`, `keys()` and
//! `name()` of a parsed command from its entry.
//!
//! Entries of Redis's commands carry Redis 7.2's data (`src/commands/*.json`: arity, flags,
//! key specs, ACL categories, tips, docs); a new family adds its file, its registration table
//! to `FAMILIES`, and its variants to [`Command::entry`].
//!
//! The one hand-written link from a typed [`Command`] back to its entry is [`Command::entry`]
//! (one arm per variant, checked exhaustive by the compiler); everything else about a
//! command is table data.

use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;

use crate::{Command, Reply};

pub mod bitmap;
mod bitmap_parse;
mod cluster;
pub mod coll;
mod connection;
mod diag;
pub mod docargs;
pub mod dump;
mod expiry;
pub mod geo;
mod geo_parse;
pub mod hash;
pub mod hll;
pub mod introspect;
mod keyspace;
pub mod lcs;
pub mod list;
pub mod pubsub;
mod raft;
pub mod scripting;
mod scripting_help;
mod server;
pub mod set;
mod shardgroup;
pub mod sort;
mod spec;
mod string;
mod string_set;
#[cfg(test)]
mod test_util;
mod transaction;
mod util;
pub mod zset;
mod zset_parse;

pub use cluster::{ClusterCmd, MAX_GETKEYSINSLOT};
pub use geo_parse::{unit as geo_unit, LAT_MAX, LAT_MIN, LON_MAX, LON_MIN};
pub use raft::parse_slot_ranges;
pub use spec::{Args, BeginSearch, CommandSpec, FindKeys, KeySpec, Kind, ParseFn};
pub use transaction::queue_error;
pub use util::parse_float;
use util::{check_arity, unknown_command};

/// Every family's registration table, in the order `COMMAND` lists them.
static FAMILIES: &[&[&CommandSpec]] = &[
    connection::COMMANDS,
    server::COMMANDS,
    diag::COMMANDS,
    raft::COMMANDS,
    shardgroup::COMMANDS,
    string::COMMANDS,
    string_set::COMMANDS,
    lcs::COMMANDS,
    keyspace::COMMANDS,
    expiry::COMMANDS,
    cluster::COMMANDS,
    transaction::COMMANDS,
    hash::COMMANDS,
    list::COMMANDS,
    set::COMMANDS,
    zset::COMMANDS,
    geo::COMMANDS,
    sort::COMMANDS,
    dump::COMMANDS,
    bitmap::COMMANDS,
    hll::COMMANDS,
    scripting::COMMANDS,
    pubsub::COMMANDS,
];

/// Longest command name the lookup considers (longer names are unknown commands).
const MAX_NAME: usize = 32;

struct Registry {
    all: Vec<&'static CommandSpec>,
    subs: Vec<&'static CommandSpec>,
    /// Upper-case name → entry.
    by_name: HashMap<&'static [u8], &'static CommandSpec>,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let all: Vec<&'static CommandSpec> =
            FAMILIES.iter().flat_map(|f| f.iter().copied()).collect();
        let subs = all.iter().flat_map(|c| c.subcommands.iter()).collect();
        let by_name = all.iter().map(|s| (s.name.as_bytes(), *s)).collect();
        Registry { all, subs, by_name }
    })
}

/// Every top-level command raftkv serves (upper-case names).
pub fn command_table() -> &'static [&'static CommandSpec] {
    &registry().all
}

/// Subcommands of the container commands, named `container|sub` in lower case.
pub fn subcommand_table() -> &'static [&'static CommandSpec] {
    &registry().subs
}

/// Looks a command up by name, case-insensitively (no allocation: the hot path).
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    if name.len() > MAX_NAME {
        return None;
    }
    let mut buf = [0u8; MAX_NAME];
    let up = &mut buf[..name.len()];
    up.copy_from_slice(name);
    up.make_ascii_uppercase();
    registry().by_name.get(&*up).copied()
}

/// Looks up `container sub` (e.g. `CLIENT`, `setname`), case-insensitively.
pub fn lookup_subcommand(container: &[u8], sub: &[u8]) -> Option<&'static CommandSpec> {
    util::find_sub(lookup(container)?, sub)
}

/// Internal commands: replicated only, never parsed from client input, not listed.
static INTERNAL: &[&CommandSpec] = &[
    &expiry::RAFTKV_SWEEP,
    &expiry::RAFTKV_DELIFEXPIRED,
    &cluster::RAFTKV_NODEADDR,
    &transaction::RAFTKV_EXEC,
    &coll::RAFTKV_CLEAN,
    &raft::RAFTKV_SLOTS_ADD,
    &raft::RAFTKV_SLOTS_REMOVE,
    &raft::RAFTKV_SLOTS_DROP,
    &raft::RAFTKV_SLOTS_SEAL,
    &raft::RAFTKV_SLOTS_INGEST,
    &server::RAFTKV_FLUSHALL,
    &server::RAFTKV_READSLOTS,
];

impl Command {
    /// Parses a client request (`argv[0]` is the command name, any case) into a command,
    /// or into the exact error reply Redis would send. Never yields internal commands.
    pub fn parse(argv: &[Bytes]) -> Result<Command, Reply> {
        let Some(name) = argv.first() else {
            return Err(Reply::err("ERR empty command"));
        };
        let spec = lookup(name).ok_or_else(|| unknown_command(argv))?;
        check_arity(spec, argv.len())?;
        (spec.parse)(spec, argv)
    }

    /// Parses a command from a committed log entry: client commands plus the internal
    /// ones (`RAFTKV.SWEEP limit`, `RAFTKV.DELIFEXPIRED key...`, `RAFTKV.SLOTS.ADD`, ...).
    pub fn parse_replicated(argv: &[Bytes]) -> Result<Command, Reply> {
        let name = argv.first().map_or(&b""[..], |n| &n[..]);
        match INTERNAL
            .iter()
            .find(|s| s.name.as_bytes().eq_ignore_ascii_case(name))
        {
            Some(spec) => {
                check_arity(spec, argv.len())?;
                (spec.parse)(spec, argv)
            }
            None => Command::parse(argv),
        }
    }

    /// The internal sweep command's argument vector.
    pub fn sweep_argv(limit: u64) -> Vec<Bytes> {
        vec![
            Bytes::from_static(b"RAFTKV.SWEEP"),
            Bytes::from(limit.to_string()),
        ]
    }

    /// The internal cleaner command's argument vector (`cursor`: the store's, as hex).
    pub fn clean_argv(cursor: &str, limit: u64) -> Vec<Bytes> {
        vec![
            Bytes::from_static(b"RAFTKV.CLEAN"),
            Bytes::from(cursor.to_string()),
            Bytes::from(limit.to_string()),
        ]
    }

    /// The internal slot-ownership command's argument vector (`ranges` as
    /// [`parse_slot_ranges`] reads them, e.g. `0-5460,5461`).
    pub fn slots_argv(op: crate::SlotsOp, ranges: &str) -> Vec<Bytes> {
        let name: &'static [u8] = match op {
            crate::SlotsOp::Add => b"RAFTKV.SLOTS.ADD",
            crate::SlotsOp::Remove => b"RAFTKV.SLOTS.REMOVE",
            crate::SlotsOp::Drop => b"RAFTKV.SLOTS.DROP",
            crate::SlotsOp::Seal => b"RAFTKV.SLOTS.SEAL",
        };
        vec![Bytes::from_static(name), Bytes::from(ranges.to_string())]
    }

    /// The internal one-group FLUSHALL's argument vector (`ranges` as
    /// [`parse_slot_ranges`] reads them: the slots the group must serve to apply it).
    pub fn flush_slots_argv(ranges: &str) -> Vec<Bytes> {
        vec![
            Bytes::from_static(b"RAFTKV.FLUSHALL"),
            Bytes::from(ranges.to_string()),
        ]
    }

    /// The internal one-group KEYS / DBSIZE's argument vector: `read` (the client's argv)
    /// over the slots `ranges` (as [`parse_slot_ranges`] reads them).
    pub fn read_slots_argv(ranges: &str, read: &[Bytes]) -> Vec<Bytes> {
        let mut v = Vec::with_capacity(read.len() + 2);
        v.push(Bytes::from_static(b"RAFTKV.READSLOTS"));
        v.push(Bytes::from(ranges.to_string()));
        v.extend_from_slice(read);
        v
    }

    /// The internal lazy-expiry command's argument vector.
    pub fn del_if_expired_argv(keys: &[Bytes]) -> Vec<Bytes> {
        let mut v = Vec::with_capacity(keys.len() + 1);
        v.push(Bytes::from_static(b"RAFTKV.DELIFEXPIRED"));
        v.extend_from_slice(keys);
        v
    }

    /// The table entry this command answers to (aliases share one: UNLINK → DEL,
    /// SETEX/GETSET → SET, DECRBY → INCRBY, PEXPIRE → EXPIRE, FLUSHDB → FLUSHALL, ...).
    pub fn spec(&self) -> &'static CommandSpec {
        self.entry().0
    }

    /// How the command is executed (from its entry's flags).
    pub fn kind(&self) -> Kind {
        self.spec().kind
    }

    /// The command's canonical upper-case name (its entry's).
    pub fn name(&self) -> &'static str {
        self.spec().name
    }

    /// The keys the command touches, in argument order (for slot routing): the entry's key
    /// specs applied to the command's leading arguments.
    pub fn keys(&self) -> Vec<&Bytes> {
        let (spec, args) = self.entry();
        let pos = spec.key_positions(args.argc(), |i| args.get(i).map(|b| &b[..]));
        pos.unwrap_or_default()
            .into_iter()
            .filter_map(|i| args.get(i))
            .collect()
    }

    /// The command's entry and its leading arguments in argument order.
    pub fn entry(&self) -> (&'static CommandSpec, Args<'_>) {
        use self::Command::*;
        use crate::RaftCmd as R;
        use {connection as c, expiry as e, keyspace as k, raft as r, server as s};
        use {string as st, string_set as ss, transaction as t};
        match self {
            Ping(_) => (&c::PING, Args::None),
            Echo(_) => (&c::ECHO, Args::None),
            Select(_) => (&c::SELECT, Args::None),
            Quit => (&c::QUIT, Args::None),
            Hello { .. } => (&c::HELLO, Args::None),
            Auth { .. } => (&c::AUTH, Args::None),
            Client(_) => (&c::CLIENT, Args::None),
            Command(_) => (&s::COMMAND, Args::None),
            Config(_) => (&s::CONFIG, Args::None),
            Slowlog(_) => (&diag::SLOWLOG, Args::None),
            Latency(_) => (&diag::LATENCY, Args::None),
            Info(_) => (&s::INFO, Args::None),
            Time => (&s::TIME, Args::None),
            Shutdown => (&s::SHUTDOWN, Args::None),
            DbSize => (&s::DBSIZE, Args::None),
            FlushAll => (&s::FLUSHALL, Args::None),
            Raft(R::Snapshot) => (&r::SNAPSHOT, Args::None),
            Raft(R::Nodes) => (&r::NODES, Args::None),
            Raft(R::NodeAdd { .. } | R::NodeRemove { .. } | R::NodeReplace { .. }) => {
                (&r::NODE, Args::None)
            }
            Raft(R::TransferLeader { .. }) => (&r::TRANSFER_LEADER, Args::None),
            Raft(
                R::ShardQuery | R::ShardMove { .. } | R::ShardJoin { .. } | R::ShardLeave { .. },
            ) => (&shardgroup::SHARDGROUP, Args::None),
            Raft(R::Rebalance) => (&shardgroup::REBALANCE, Args::None),
            Get(key) => (&st::GET, Args::One(key)),
            MGet(keys) => (&st::MGET, Args::List(keys)),
            StrLen(key) => (&st::STRLEN, Args::One(key)),
            GetRange { key, .. } => (&st::GETRANGE, Args::One(key)),
            GetDel(key) => (&st::GETDEL, Args::One(key)),
            MSet(kv) => (&st::MSET, Args::Pairs(kv)),
            MSetNx(kv) => (&st::MSETNX, Args::Pairs(kv)),
            Append { key, .. } => (&st::APPEND, Args::One(key)),
            SetRange { key, .. } => (&st::SETRANGE, Args::One(key)),
            SetNx { key, .. } => (&st::SETNX, Args::One(key)),
            IncrBy { key, .. } => (&st::INCRBY, Args::One(key)),
            IncrByFloat { key, .. } => (&st::INCRBYFLOAT, Args::One(key)),
            Set { key, .. } => (&ss::SET, Args::One(key)),
            GetEx { key, .. } => (&ss::GETEX, Args::One(key)),
            Exists(keys) => (&k::EXISTS, Args::List(keys)),
            Touch(keys) => (&k::TOUCH, Args::List(keys)),
            Del(keys) => (&k::DEL, Args::List(keys)),
            Keys(_) => (&k::KEYS, Args::None),
            Scan { .. } => (&k::SCAN, Args::None),
            Type(key) => (&k::TYPE, Args::One(key)),
            Rename { src, dst, .. } => (&k::RENAME, Args::Two(src, dst)),
            Copy { src, dst, .. } => (&k::COPY, Args::Two(src, dst)),
            RandomKey => (&k::RANDOMKEY, Args::None),
            Object(o) => (k::object_spec(o.sub), Args::List(&o.args)),
            Ttl { key, .. } => (&e::TTL, Args::One(key)),
            ExpireTime { key, .. } => (&e::EXPIRETIME, Args::One(key)),
            Expire { key, .. } => (&e::EXPIRE, Args::One(key)),
            Persist(key) => (&e::PERSIST, Args::One(key)),
            SweepExpired { .. } => (&e::RAFTKV_SWEEP, Args::None),
            DelIfExpired(keys) => (&e::RAFTKV_DELIFEXPIRED, Args::List(keys)),
            Cluster(_) => (&cluster::CLUSTER, Args::None),
            ReadOnly => (&cluster::READONLY, Args::None),
            ReadWrite => (&cluster::READWRITE, Args::None),
            Asking => (&cluster::ASKING, Args::None),
            NodeAddr { .. } => (&cluster::RAFTKV_NODEADDR, Args::None),
            Slots { op, .. } => match op {
                crate::SlotsOp::Add => (&r::RAFTKV_SLOTS_ADD, Args::None),
                crate::SlotsOp::Remove => (&r::RAFTKV_SLOTS_REMOVE, Args::None),
                crate::SlotsOp::Drop => (&r::RAFTKV_SLOTS_DROP, Args::None),
                crate::SlotsOp::Seal => (&r::RAFTKV_SLOTS_SEAL, Args::None),
            },
            SlotsIngest { .. } => (&r::RAFTKV_SLOTS_INGEST, Args::None),
            FlushSlots(_) => (&s::RAFTKV_FLUSHALL, Args::None),
            ReadSlots { .. } => (&s::RAFTKV_READSLOTS, Args::None),
            Multi => (&t::MULTI, Args::None),
            Exec => (&t::EXEC, Args::None),
            Discard => (&t::DISCARD, Args::None),
            Watch(keys) => (&t::WATCH, Args::List(keys)),
            Unwatch => (&t::UNWATCH, Args::None),
            Transaction { .. } => (&t::RAFTKV_EXEC, Args::None),
            CleanStale { .. } => (&coll::RAFTKV_CLEAN, Args::None),
            Hash(c) => (c.spec, Args::List(&c.args)),
            List(c) => (c.spec, Args::List(&c.args)),
            Sets(c) => (c.spec, Args::List(&c.args)),
            ZSet(c) => (c.spec, Args::List(&c.args)),
            Geo(c) => (c.spec, Args::List(&c.args)),
            Sort(c) => (c.spec, Args::List(&c.args)),
            Dump(c) => (c.spec, Args::List(&c.args)),
            Bitmap(c) => (c.spec, Args::List(&c.args)),
            Hll(c) => (c.spec, Args::List(&c.args)),
            Lcs(c) => (c.spec, Args::List(&c.args)),
            Script(c) => (c.spec, Args::List(&c.args)),
            ScriptAdmin(s) => (scripting::script_spec(s), Args::None),
            Function(f) => (scripting::function_spec(f), Args::None),
            PubSub(c) => (c.spec, Args::List(&c.args)),
        }
    }
}

#[cfg(test)]
mod tests;
