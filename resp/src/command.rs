//! Typed Redis commands: the parsed, arity- and syntax-checked form of a client request.
//!
//! `Command::parse` (in [`crate::cmd`]) turns a request's argument vector into a `Command` or
//! into the exact error reply Redis would send, through the table entry of the command's
//! family (`cmd/<family>.rs`). The same parser runs on every replica when a committed
//! `RaftCommit` is applied (`Command::parse_replicated`), so replicas agree on meaning.
//! Relative expiry times stay relative here; the store resolves them against the time the
//! leader stamped into the commit. This module holds the types; the table, the parsers and
//! `kind` / `keys` / `name` live in `cmd/`, re-exported here so `resp::command::*` paths stay.

use bytes::Bytes;

pub use crate::cmd::bitmap::{
    BitOp, BitmapCmd, BitmapOp, FieldAction, FieldOp, Overflow, Span, MAX_BITMAP_BYTES,
};
pub use crate::cmd::coll::{ScanArgs, Typed};
pub use crate::cmd::dump::{DumpCmd, DumpOp};
pub use crate::cmd::geo::{GeoAddOpts, GeoCmd, GeoFrom, GeoOp, GeoSearch, GeoShape, GeoSort};
pub use crate::cmd::hash::{HashCmd, HashOp};
pub use crate::cmd::hll::{HllCmd, HllOp};
pub use crate::cmd::lcs::{LcsCmd, LcsOpts};
pub use crate::cmd::list::{ListCmd, ListOp};
pub use crate::cmd::pubsub::{PubSubCmd, PubSubOp};
pub use crate::cmd::scripting::{FunctionCmd, RestorePolicy, ScriptAdmin, ScriptCall, ScriptKind};
pub use crate::cmd::set::{Algebra, SetCmd, SetOp};
pub use crate::cmd::sort::{SortArgs, SortCmd};
pub use crate::cmd::zset::{ZAddOpts, ZAggregate, ZAlgebra, ZBy, ZSetCmd, ZSetOp};
pub use crate::cmd::{
    command_table, lookup, lookup_subcommand, parse_float, subcommand_table, Args, BeginSearch,
    ClusterCmd, CommandSpec, FindKeys, KeySpec, Kind, ParseFn, MAX_GETKEYSINSLOT,
};
pub use crate::cmd::{LAT_MAX, LAT_MIN, LON_MAX, LON_MIN};

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
    List(ClientFilter),
    /// CLIENT SETINFO LIB-NAME|LIB-VER value
    SetInfo {
        attr: String,
        value: Bytes,
    },
    /// CLIENT HELP
    Help,
}

/// CLIENT LIST's filter (Redis 7.0: `TYPE` and `ID` are mutually exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFilter {
    All,
    /// `TYPE normal|master|replica|pubsub` (`slave` is `replica`), lower-cased.
    Type(String),
    /// `ID id [id ...]`.
    Ids(Vec<i64>),
}

/// OBJECT's subcommands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectSub {
    Encoding,
    Freq,
    IdleTime,
    RefCount,
    Help,
}

/// OBJECT: the subcommand and the arguments after `OBJECT` (subcommand name, then key), so
/// the subcommand's key spec (index 2) applies to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectCmd {
    pub sub: ObjectSub,
    pub args: Vec<Bytes>,
}

impl ObjectCmd {
    /// The key (none for HELP).
    pub fn key(&self) -> Option<&Bytes> {
        self.args.get(1)
    }
}

/// COMMAND subcommands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandCmd {
    /// Plain `COMMAND`: list every command's info.
    List,
    Count,
    Info(Vec<Bytes>),
    Docs(Vec<Bytes>),
    /// `COMMAND GETKEYS <command> <arg>...`: the argument vector after GETKEYS.
    GetKeys(Vec<Bytes>),
    /// `COMMAND GETKEYSANDFLAGS <command> <arg>...`.
    GetKeysAndFlags(Vec<Bytes>),
    /// `COMMAND LIST [FILTERBY MODULE name|ACLCAT category|PATTERN pattern]`: names only.
    Names(Option<ListFilter>),
    /// `COMMAND HELP`.
    Help,
}

/// The filter of `COMMAND LIST FILTERBY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListFilter {
    Module(Bytes),
    AclCat(Bytes),
    Pattern(Bytes),
}

/// SLOWLOG subcommands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlowlogCmd {
    /// `GET [count]`: the newest `count` entries (-1: all; 10 when absent).
    Get(i64),
    Len,
    Reset,
    Help,
}

/// LATENCY subcommands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LatencyCmd {
    Latest,
    History(Bytes),
    /// `RESET [event ...]` (none: every event).
    Reset(Vec<Bytes>),
    Help,
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
    /// `RAFT.NODE ADD <id> <raft-addr> [GROUP <group>]`: add a member (as a learner,
    /// promoted to voter once caught up) to every group, or to one data group.
    NodeAdd {
        id: u64,
        addr: String,
        group: Option<u64>,
    },
    /// `RAFT.NODE REMOVE <id> [GROUP <group>]`: remove a member (of every group, or of one
    /// data group).
    NodeRemove { id: u64, group: Option<u64> },
    /// `RAFT.NODE REPLACE <old-id> <new-id> [GROUP <group>]`: in one joint-consensus
    /// change, make member `new` (a learner) a voter and remove voter `old`.
    NodeReplace {
        old: u64,
        new: u64,
        group: Option<u64>,
    },
    /// `RAFT.TRANSFER-LEADER [<id> [GROUP <group>]]`: move leadership (to the given voter,
    /// or the most up-to-date one) of every group, or of one data group.
    TransferLeader { to: Option<u64>, group: Option<u64> },
    /// `RAFT.SHARDGROUP QUERY`: the cluster configuration and the pending migrations.
    ShardQuery,
    /// `RAFT.SHARDGROUP MOVE <gid> <slot>|<lo>-<hi>...`: migrate the slots to the group.
    ShardMove { group: u64, ranges: Vec<(u16, u16)> },
    /// `RAFT.SHARDGROUP JOIN <gid> <node-id>...`: a new data group on those nodes.
    ShardJoin { group: u64, nodes: Vec<u64> },
    /// `RAFT.SHARDGROUP LEAVE <gid>`: move the group's slots away, then remove it.
    ShardLeave { group: u64 },
    /// `RAFT.REBALANCE`: migrate slots until every group's count differs by at most one.
    Rebalance,
}

/// What an internal slot-ownership command does to the applying group's slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotsOp {
    /// `RAFTKV.SLOTS.ADD`: the group serves these slots from now on.
    Add,
    /// `RAFTKV.SLOTS.REMOVE`: the group stops serving these slots (their data stays).
    Remove,
    /// `RAFTKV.SLOTS.DROP`: after a cut-over, the former owner's replicas on nodes that do
    /// not host the new owner delete the slots' records (garbage collection).
    Drop,
    /// `RAFTKV.SLOTS.SEAL`: before a cut-over, the target takes no more copied records of
    /// the migration (a late or repeated copy must not overwrite the writes after it).
    Seal,
}

/// A key WATCH saw: its modification version and whether it was live (see
/// `store::txn`), as carried by the internal `RAFTKV.EXEC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedKey {
    pub key: Bytes,
    pub version: u64,
    pub live: bool,
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
    Slowlog(SlowlogCmd),
    Latency(LatencyCmd),
    Info(Vec<String>),
    Time,
    /// `SHUTDOWN [NOSAVE|SAVE|NOW|FORCE|ABORT]`: stop this node cleanly.
    Shutdown,
    /// CLUSTER subcommands (answered from the node's cluster view).
    Cluster(ClusterCmd),
    /// READONLY / READWRITE / ASKING: per-connection Redis Cluster flags.
    ReadOnly,
    ReadWrite,
    Asking,
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
    /// RANDOMKEY (a read: local randomness).
    RandomKey,
    /// OBJECT ENCODING|FREQ|IDLETIME|REFCOUNT key, and OBJECT HELP.
    Object(ObjectCmd),
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
    /// COPY source destination [DB 0] [REPLACE].
    Copy {
        src: Bytes,
        dst: Bytes,
        replace: bool,
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
    /// `RAFTKV.FLUSHALL <ranges>`: one group's share of a FLUSHALL over several groups,
    /// applied only where the group serves exactly these slots (the entry node's layout).
    FlushSlots(Vec<(u16, u16)>),
    /// `RAFTKV.READSLOTS <ranges> KEYS <pattern>` / `... DBSIZE`: one group's share of a
    /// KEYS or DBSIZE over several groups, over exactly these slots (the entry node's
    /// layout), refused unless the group serves them all.
    ReadSlots {
        expect: Vec<(u16, u16)>,
        read: Box<Command>,
    },
    // ---- internal, replicated only; never produced from client input ----
    /// Delete up to `limit` keys whose expiry is at or before the commit's stamped time.
    SweepExpired {
        limit: u64,
    },
    /// Delete each of these keys if it has expired at the commit's stamped time (lazy expiry).
    DelIfExpired(Vec<Bytes>),
    /// Record node `id`'s client address in the replicated cluster state.
    NodeAddr {
        id: u64,
        addr: String,
    },
    /// `RAFTKV.SLOTS.ADD` / `RAFTKV.SLOTS.REMOVE [FENCE <n>] ranges...`: change the hash
    /// slots the applying group serves (inclusive `(lo, hi)` ranges, each `lo <= hi <
    /// 16384`). `fence` (0: none) is the migration's id: a group ignores a slot command
    /// whose fence is below the last one it applied (a stale retry of an older migration).
    /// `peer` (0: none given) is the migration's other group: its source for an ADD
    /// (`FROM <g>`), its target for a DROP (`TO <g>`).
    Slots {
        op: SlotsOp,
        ranges: Vec<(u16, u16)>,
        fence: u64,
        peer: u64,
    },
    /// `RAFTKV.SLOTS.INGEST FENCE <n> (<column family> <key> <value>)...`: records of
    /// slots migration `n` moves into the applying group, copied from the source (see
    /// `store::ingest`).
    SlotsIngest {
        fence: u64,
        records: Vec<(Bytes, Bytes, Bytes)>,
    },
    // ---- transactions: the session keeps the MULTI state (see `cmd/transaction.rs`) ----
    Multi,
    Exec,
    Discard,
    Watch(Vec<Bytes>),
    Unwatch,
    /// Internal `RAFTKV.EXEC`: abort (nil) if a watched key changed, else run `body` (whole
    /// argument vectors) in order, atomically, at apply time.
    Transaction {
        watches: Vec<WatchedKey>,
        body: Vec<Vec<Bytes>>,
    },
    /// Remove the records of up to `limit` stale collection versions from `cursor` (hex).
    CleanStale {
        cursor: Bytes,
        limit: u64,
    },
    // ---- collections: one variant per family (reads and writes; kind from the entry) ----
    Hash(HashCmd),
    List(ListCmd),
    /// Sets (`Set` is the string command).
    Sets(SetCmd),
    ZSet(ZSetCmd),
    /// Geo indexes (sorted sets of geohashes).
    Geo(GeoCmd),
    /// SORT / SORT_RO.
    Sort(SortCmd),
    /// DUMP / RESTORE.
    Dump(DumpCmd),
    // ---- string-encoded families (strings underneath, so TYPE says `string`) ----
    /// SETBIT GETBIT BITCOUNT BITPOS BITOP BITFIELD BITFIELD_RO.
    Bitmap(BitmapCmd),
    /// PFADD PFCOUNT PFMERGE.
    Hll(HllCmd),
    /// LCS.
    Lcs(LcsCmd),
    // ---- scripting (see `cmd/scripting.rs`) ----
    /// EVAL, EVALSHA, FCALL and their `_RO` forms.
    Script(ScriptCall),
    /// SCRIPT LOAD / EXISTS / FLUSH / KILL / HELP.
    ScriptAdmin(ScriptAdmin),
    /// FUNCTION LOAD / DELETE / FLUSH / LIST / DUMP / RESTORE / KILL / STATS / HELP.
    Function(FunctionCmd),
    // ---- Pub/Sub (answered by the session; see `cmd/pubsub.rs`) ----
    PubSub(PubSubCmd),
}
