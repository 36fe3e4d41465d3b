//! Commands the session answers itself: connection state (PING, ECHO, SELECT, QUIT,
//! HELLO, AUTH, CLIENT) and server introspection (INFO, CONFIG, COMMAND, TIME).

use std::sync::atomic::Ordering;

use bytes::Bytes;
use resp::{ClientCmd, ClientFilter, Command, CommandCmd, ConfigCmd, Protocol, Reply, SlowlogCmd};

use crate::server::{ClientInfo, Server};
use crate::session::Conn;

/// Redis version we report for client compatibility.
pub const REDIS_VERSION: &str = "7.0.0";

fn bulk(s: impl Into<String>) -> Reply {
    Reply::Bulk(Bytes::from(s.into()))
}

fn glob(pattern: &[u8], s: &[u8]) -> bool {
    store::glob_match(pattern, s, true)
}

impl Server {
    /// Answers a connection-level or introspection command.
    pub fn local(&self, conn: &mut Conn, cmd: Command) -> Reply {
        match cmd {
            Command::Ping(None) => Reply::Status("PONG".into()),
            Command::Ping(Some(m)) => Reply::Bulk(m),
            Command::Echo(m) => Reply::Bulk(m),
            Command::Select(0) => Reply::ok(),
            Command::Select(_) => Reply::err("ERR DB index is out of range"),
            Command::Quit => {
                conn.closing = true;
                Reply::ok()
            }
            Command::Time => {
                let us = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_micros())
                    .unwrap_or(0);
                Reply::Array(vec![
                    bulk((us / 1_000_000).to_string()),
                    bulk((us % 1_000_000).to_string()),
                ])
            }
            Command::Auth { username, password } => {
                match self.check_auth(username.as_deref(), &password) {
                    Ok(()) => {
                        conn.authenticated = true;
                        Reply::ok()
                    }
                    Err(e) => e,
                }
            }
            Command::Hello {
                protover,
                auth,
                setname,
            } => {
                if let Some((user, pass)) = auth {
                    if let Err(e) = self.check_auth(Some(&user), &pass) {
                        return e;
                    }
                    conn.authenticated = true;
                } else if !conn.authenticated {
                    return Reply::err(NOAUTH_HELLO);
                }
                match protover {
                    Some(2) => conn.proto = Protocol::Resp2,
                    Some(3) => conn.proto = Protocol::Resp3,
                    Some(_) => return Reply::err("NOPROTO unsupported protocol version"),
                    None => {}
                }
                if let Some(name) = setname {
                    if let Some(c) = self.clients_lock().get_mut(&conn.id) {
                        c.name = name;
                    }
                }
                if let Some(c) = self.clients_lock().get_mut(&conn.id) {
                    c.resp = if conn.proto == Protocol::Resp3 { 3 } else { 2 };
                }
                Reply::Map(vec![
                    (bulk("server"), bulk("redis")),
                    (bulk("version"), bulk(REDIS_VERSION)),
                    (
                        bulk("proto"),
                        Reply::Int(if conn.proto == Protocol::Resp3 { 3 } else { 2 }),
                    ),
                    (bulk("id"), Reply::Int(conn.id as i64)),
                    (bulk("mode"), bulk("cluster")),
                    // As INFO replication says: the Raft leader is the master.
                    (bulk("role"), bulk(self.role(true))),
                    (bulk("modules"), Reply::Array(vec![])),
                ])
            }
            Command::Client(c) => self.client_cmd(conn, c),
            Command::Command(c) => command_cmd(c),
            Command::Config(c) => self.config_cmd(c),
            Command::Info(sections) => Reply::Verbatim(self.info(&sections)),
            Command::Slowlog(c) => self.slowlog_cmd(c),
            Command::Latency(c) => crate::latency::command(c),
            Command::Object(_) => store::object_help(),
            ref other if self.script_local(other).is_some() => {
                self.script_local(other).unwrap_or(Reply::Nil)
            }
            other => Reply::err(format!(
                "ERR command '{}' cannot be served locally",
                other.name()
            )),
        }
    }

    fn client_cmd(&self, conn: &mut Conn, c: ClientCmd) -> Reply {
        match c {
            ClientCmd::Id => Reply::Int(conn.id as i64),
            ClientCmd::SetName(name) => {
                if let Some(ci) = self.clients_lock().get_mut(&conn.id) {
                    ci.name = name;
                }
                Reply::ok()
            }
            ClientCmd::GetName => match self.clients_lock().get(&conn.id) {
                Some(ci) if !ci.name.is_empty() => Reply::Bulk(ci.name.clone()),
                _ => Reply::Nil,
            },
            ClientCmd::SetInfo { attr, value } => {
                if let Some(ci) = self.clients_lock().get_mut(&conn.id) {
                    if attr.eq_ignore_ascii_case("lib-name") {
                        ci.lib_name = value;
                    } else {
                        ci.lib_ver = value;
                    }
                }
                Reply::ok()
            }
            ClientCmd::Info => {
                let clients = self.clients_lock();
                match clients.get(&conn.id) {
                    Some(ci) => Reply::Verbatim(client_line(ci)),
                    None => Reply::Nil,
                }
            }
            ClientCmd::List(filter) => {
                let clients = self.clients_lock();
                // Every client of a raftkv node is a normal one (no replication links,
                // no pub/sub); IDs are listed in the order given, as Redis does.
                let text = match filter {
                    ClientFilter::All => clients.values().map(client_line).collect(),
                    // Redis: a subscribed client is of type pubsub, not normal.
                    ClientFilter::Type(t) if t == "normal" || t == "pubsub" => {
                        let pubsub = t == "pubsub";
                        let subscribed =
                            |c: &&ClientInfo| crate::pubsub::hub().client_counts(c.id) != [0; 3];
                        clients
                            .values()
                            .filter(|c| subscribed(c) == pubsub)
                            .map(client_line)
                            .collect()
                    }
                    ClientFilter::Type(_) => String::new(),
                    ClientFilter::Ids(ids) => ids
                        .iter()
                        .filter_map(|&id| u64::try_from(id).ok())
                        .filter_map(|id| clients.get(&id))
                        .map(client_line)
                        .collect(),
                };
                Reply::Verbatim(text)
            }
            ClientCmd::Help => Reply::Array(
                [
                    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                    "GETNAME",
                    "    Return the name of the current connection.",
                    "ID",
                    "    Return the ID of the current connection.",
                    "INFO",
                    "    Return information about the current client connection.",
                    "LIST",
                    "    Return information about client connections.",
                    "SETINFO <option> <value>",
                    "    Set client meta attr. Options are:",
                    "    * LIB-NAME: the client lib name.",
                    "    * LIB-VER: the client lib version.",
                    "SETNAME <name>",
                    "    Assign the name <name> to the current connection.",
                    "HELP",
                    "    Print this help.",
                ]
                .iter()
                .map(|s| Reply::Status(s.to_string()))
                .collect(),
            ),
        }
    }

    fn config_values(&self) -> Vec<(&'static str, String)> {
        let c = &self.cfg;
        vec![
            ("save", String::new()),
            // Every acknowledged write is fsynced (by a quorum), as with appendfsync always;
            // INFO persistence says aof_enabled:1 for the same reason.
            ("appendonly", "yes".into()),
            ("appendfsync", "always".into()),
            ("databases", "1".into()),
            ("port", c.port.to_string()),
            ("bind", c.bind.clone()),
            ("dir", c.data_dir().display().to_string()),
            ("maxclients", crate::live::maxclients().to_string()),
            ("loglevel", crate::live::loglevel().into()),
            ("proto-max-bulk-len", c.proto_max_bulk_len.to_string()),
            ("cluster-enabled", "yes".into()),
            ("raft-id", c.id.to_string()),
            ("raft-cluster", c.cluster.join(",")),
            ("raft-tick-ms", c.tick_ms.to_string()),
            ("raft-election-ticks", c.election_ticks.to_string()),
            ("raft-heartbeat-ticks", c.heartbeat_ticks.to_string()),
            ("raft-snapshot-entries", c.snapshot_entries.to_string()),
            ("raft-snapshot-bytes", c.snapshot_bytes.to_string()),
            (
                "raft-snapshot-chunk-bytes",
                c.snapshot_chunk_bytes.to_string(),
            ),
            ("raft-snapshot-max-mbps", c.snapshot_max_mbps.to_string()),
            ("migrate-max-mbps", c.migrate_max_mbps().to_string()),
            ("raft-log-cache-bytes", c.raft_log_cache_bytes.to_string()),
            (
                "raft-log-cache-node-bytes",
                c.raft_log_cache_node_bytes.to_string(),
            ),
            ("leader-wait-ms", c.leader_wait_ms.to_string()),
            (
                "request-timeout-ms",
                c.request_timeout().as_millis().to_string(),
            ),
            ("timeout", crate::live::idle_timeout().to_string()),
            ("expire-sweep-ms", c.expire_sweep_ms.to_string()),
            ("read-mode", c.read_mode.clone()),
            ("redirect", c.redirect.clone()),
            ("max-write-bytes", c.max_write_bytes.to_string()),
            (
                "slowlog-log-slower-than",
                crate::slowlog::SLOWER_THAN
                    .load(Ordering::Relaxed)
                    .to_string(),
            ),
            (
                "slowlog-max-len",
                crate::slowlog::MAX_LEN.load(Ordering::Relaxed).to_string(),
            ),
            (
                "latency-monitor-threshold",
                crate::latency::THRESHOLD
                    .load(Ordering::Relaxed)
                    .to_string(),
            ),
        ]
        .into_iter()
        .chain(self.pubsub_config_values())
        .collect()
    }

    fn config_cmd(&self, c: ConfigCmd) -> Reply {
        match c {
            ConfigCmd::Get(patterns) => {
                let values = self.config_values();
                let mut out = Vec::new();
                for (k, v) in &values {
                    if patterns
                        .iter()
                        .any(|p| glob(&p.to_ascii_lowercase(), k.as_bytes()))
                        && !out.iter().any(|(kk, _): &(Reply, Reply)| kk == &bulk(*k))
                    {
                        out.push((bulk(*k), bulk(v.clone())));
                    }
                }
                Reply::Map(out)
            }
            ConfigCmd::Set(pairs) => {
                if let Some(r) = crate::live::config_set(&pairs) {
                    return r;
                }
                if let Some(r) = self.pubsub_config_set(&pairs) {
                    return r;
                }
                self.config_set_refusal(&pairs)
            }
            ConfigCmd::ResetStat => {
                let s = &self.stats;
                for c in [
                    &s.commands,
                    &s.connections,
                    &s.rejected,
                    &s.reads,
                    &s.writes,
                    &s.forwarded,
                    &s.moved,
                    &s.errors,
                ] {
                    c.store(0, Ordering::Relaxed);
                }
                crate::stats::global().reset();
                Reply::ok()
            }
        }
    }
}

impl Server {
    /// Redis's errors for a CONFIG SET this node cannot do: an unknown setting, or one
    /// fixed at start-up.
    fn config_set_refusal(&self, pairs: &[(Bytes, Bytes)]) -> Reply {
        let known = self.config_values();
        for (k, _) in pairs {
            let name = String::from_utf8_lossy(k).to_ascii_lowercase();
            if !known.iter().any(|(n, _)| *n == name) {
                return Reply::err(format!(
                    "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
                ));
            }
        }
        let name = pairs
            .first()
            .map(|(k, _)| String::from_utf8_lossy(k).to_ascii_lowercase())
            .unwrap_or_default();
        Reply::err(format!(
            "ERR CONFIG SET failed (possibly related to argument '{name}') - can't set immutable config"
        ))
    }

    fn slowlog_cmd(&self, c: SlowlogCmd) -> Reply {
        match c {
            SlowlogCmd::Get(n) => crate::slowlog::get(n, |id| {
                self.clients_lock()
                    .get(&id)
                    .map(|c| c.name.clone())
                    .unwrap_or_default()
            }),
            SlowlogCmd::Len => Reply::Int(crate::slowlog::len() as i64),
            SlowlogCmd::Reset => {
                crate::slowlog::reset();
                Reply::ok()
            }
            SlowlogCmd::Help => crate::slowlog::help(),
        }
    }
}

impl Server {
    /// This node's Redis role: `master` while it leads the Raft group, else `slave` (INFO)
    /// or `replica` (HELLO), the words Redis uses in each place.
    pub(crate) fn role(&self, hello: bool) -> &'static str {
        match (self.groups.home().node.status.is_leader(), hello) {
            (true, _) => "master",
            (false, false) => "slave",
            (false, true) => "replica",
        }
    }
}

const NO_PASSWORD: &str = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
const NOAUTH_HELLO: &str = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time";

impl Server {
    /// Checks AUTH / HELLO AUTH credentials against `--requirepass` (user `default` only).
    fn check_auth(&self, user: Option<&[u8]>, password: &[u8]) -> Result<(), Reply> {
        let Some(required) = &self.cfg.requirepass else {
            return Err(Reply::err(NO_PASSWORD));
        };
        let user_ok = user.is_none_or(|u| u == b"default");
        if user_ok && raft_node::transport::secret_eq(required.as_bytes(), password) {
            Ok(())
        } else {
            Err(Reply::err(WRONGPASS))
        }
    }
}

fn client_line(ci: &ClientInfo) -> String {
    let [sub, psub, ssub] = crate::pubsub::hub().client_counts(ci.id);
    let flags = if sub + psub + ssub > 0 { "P" } else { "N" };
    format!(
        "id={} addr={} laddr= fd=0 name={} age={} idle=0 flags={flags} db=0 sub={sub} psub={psub} ssub={ssub} multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}\n",
        ci.id,
        ci.addr,
        String::from_utf8_lossy(&ci.name),
        ci.created.elapsed().as_secs(),
        ci.last_cmd
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .to_ascii_lowercase(),
        ci.resp,
        String::from_utf8_lossy(&ci.lib_name),
        String::from_utf8_lossy(&ci.lib_ver),
    )
}

fn command_cmd(c: CommandCmd) -> Reply {
    resp::cmd::introspect::reply(&c, &glob)
}
