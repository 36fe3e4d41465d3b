//! INFO: Redis 7.0's sections (`# Server`, `# Clients`, `# Memory`, `# Persistence`, `# Stats`,
//! `# Replication`, `# CPU`, `# Cluster`, `# Keyspace`) with Redis's field names, plus raftkv's
//! own `# Raft`. Section selection follows Redis: no argument or `default` gives the default
//! sections, `all` and `everything` every section, several names give their union in the
//! canonical order, unknown names are skipped (so an unknown section alone is empty).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use crate::admin::REDIS_VERSION;
use crate::server::{wall_ms, Server};

/// Every section in output order, and whether `INFO` / `INFO default` includes it.
const SECTIONS: &[(&str, bool)] = &[
    ("server", true),
    ("clients", true),
    ("memory", true),
    ("persistence", true),
    ("stats", true),
    ("replication", true),
    ("cpu", true),
    ("modules", true),
    ("commandstats", false),
    ("errorstats", true),
    ("latencystats", false),
    ("raft", true),
    ("cluster", true),
    ("keyspace", true),
];

/// The sections `names` selects, in output order.
pub fn select(names: &[String]) -> Vec<&'static str> {
    let lower: Vec<String> = names.iter().map(|s| s.to_ascii_lowercase()).collect();
    let has = |n: &str| lower.iter().any(|s| s == n);
    let every = has("all") || has("everything");
    let default = lower.is_empty() || has("default");
    SECTIONS
        .iter()
        .filter(|(name, dflt)| every || (default && *dflt) || has(name))
        .map(|(name, _)| *name)
        .collect()
}

/// Redis's `bytesToHuman`: `512B`, `894.77K`, `11.46M`, ...
pub fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut v = n as f64 / 1024.0;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.2}{}", UNITS[i])
}

/// Resident set size in bytes, from `/proc/self/statm` (0 where unavailable).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

/// A `kB` field of a `/proc` status-style file, in bytes.
fn proc_kb(path: &str, field: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// `used_cpu_sys` and `used_cpu_user` of `who` (RUSAGE_SELF / RUSAGE_CHILDREN), as Redis prints them.
fn cpu(who: libc::c_int) -> (String, String) {
    // SAFETY: an all-zero rusage is a valid value for getrusage to fill.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    if unsafe { libc::getrusage(who, &mut ru) } != 0 {
        return ("0.000000".into(), "0.000000".into());
    }
    let t = |tv: libc::timeval| format!("{}.{:06}", tv.tv_sec, tv.tv_usec);
    (t(ru.ru_stime), t(ru.ru_utime))
}

/// `os:` as Redis prints it: `<sysname> <release> <machine>`.
fn os_name() -> String {
    // SAFETY: an all-zero utsname is valid for uname to fill.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return std::env::consts::OS.into();
    }
    let s = |f: &[libc::c_char]| {
        let b: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&b).into_owned()
    };
    format!("{} {} {}", s(&u.sysname), s(&u.release), s(&u.machine))
}

/// The raft log's WAL fsyncs (one per driver round that persisted the group): the cumulative
/// histogram (`le_<µs>=count`, then `le_inf`) and Redis-style percentiles (`p50=<µs>`...,
/// the upper bound of the bucket holding each; `inf` above every bound, 0 before any).
fn sync_histogram_lines(h: &raft_node::status::SyncHistogram) -> String {
    let (buckets, total) = h.cumulative();
    let mut hist: Vec<String> = buckets
        .iter()
        .map(|(le, n)| format!("le_{le}={n}"))
        .collect();
    hist.push(format!("le_inf={total}"));
    let pct = [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)]
        .iter()
        .map(|(name, q)| match h.quantile_bound(*q) {
            None => format!("{name}=0"),
            Some(u64::MAX) => format!("{name}=inf"),
            Some(le) => format!("{name}={le}"),
        })
        .collect::<Vec<_>>();
    format!(
        "raft_log_sync_histogram_usec:{}\r\nraft_log_sync_percentiles_usec:{}\r\n",
        hist.join(","),
        pct.join(",")
    )
}

fn join_ids(ids: &[u64]) -> String {
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

/// Splits a recorded `host:port` client address.
fn host_port(addr: &str) -> Option<(&str, &str)> {
    addr.rsplit_once(':')
}

impl Server {
    /// The INFO text for the requested sections.
    pub fn info(&self, sections: &[String]) -> String {
        let mut out = String::new();
        for (i, sec) in select(sections).into_iter().enumerate() {
            if i > 0 {
                out.push_str("\r\n");
            }
            match sec {
                "server" => self.info_server(&mut out),
                "clients" => self.info_clients(&mut out),
                "memory" => info_memory(&mut out),
                "persistence" => self.info_persistence(&mut out),
                "stats" => self.info_stats(&mut out),
                "replication" => self.info_replication(&mut out),
                "cpu" => info_cpu(&mut out),
                "raft" => self.info_raft(&mut out),
                "cluster" => {
                    out.push_str("# Cluster\r\ncluster_enabled:1\r\n");
                    out.push_str(&self.migration_info());
                }
                "keyspace" => self.info_keyspace(&mut out),
                "modules" => out.push_str("# Modules\r\n"),
                "commandstats" => crate::stats::global().info_commandstats(&mut out),
                "errorstats" => crate::stats::global().info_errorstats(&mut out),
                "latencystats" => crate::stats::global().info_latencystats(&mut out),
                _ => {}
            }
        }
        out
    }

    fn info_server(&self, out: &mut String) {
        let up = self.started.elapsed().as_secs();
        let now_ms = wall_ms();
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let _ = write!(
            out,
            "# Server\r\nredis_version:{REDIS_VERSION}\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_build_id:0\r\nredis_mode:cluster\r\nraftkv_version:{}\r\nos:{}\r\narch_bits:64\r\nmonotonic_clock:POSIX clock_gettime\r\nmultiplexing_api:epoll\r\natomicvar_api:c11-builtin\r\ngcc_version:0.0.0\r\nprocess_id:{}\r\nprocess_supervised:no\r\nrun_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{up}\r\nuptime_in_days:{}\r\nhz:10\r\nconfigured_hz:10\r\nlru_clock:{}\r\nexecutable:{exe}\r\nconfig_file:\r\nio_threads_active:0\r\n",
            env!("CARGO_PKG_VERSION"),
            os_name(),
            std::process::id(),
            self.run_id,
            self.cfg.port,
            now_ms * 1000,
            up / 86400,
            (now_ms / 1000) & ((1 << 24) - 1),
        );
    }

    fn info_clients(&self, out: &mut String) {
        let _ = write!(
            out,
            "# Clients\r\nconnected_clients:{}\r\ncluster_connections:0\r\nmaxclients:{}\r\nclient_recent_max_input_buffer:0\r\nclient_recent_max_output_buffer:0\r\nblocked_clients:{}\r\ntracking_clients:0\r\nclients_in_timeout_table:0\r\n",
            self.clients_lock().len(),
            crate::live::maxclients(),
            crate::blocking::blocked().client_count(),
        );
    }

    fn info_persistence(&self, out: &mut String) {
        let home = self.groups.home();
        let st = &home.node.status;
        let started = wall_ms() / 1000 - self.started.elapsed().as_secs() as i64;
        let _ = write!(
            out,
            "# Persistence\r\nloading:0\r\nasync_loading:0\r\nrdb_changes_since_last_save:0\r\nrdb_bgsave_in_progress:{}\r\nrdb_last_save_time:{started}\r\nrdb_last_bgsave_status:ok\r\nrdb_last_bgsave_time_sec:-1\r\nrdb_current_bgsave_time_sec:-1\r\nrdb_saves:{}\r\naof_enabled:1\r\naof_rewrite_in_progress:0\r\naof_rewrite_scheduled:0\r\naof_last_rewrite_time_sec:-1\r\naof_current_rewrite_time_sec:-1\r\naof_last_bgrewrite_status:ok\r\naof_rewrites:0\r\naof_last_write_status:ok\r\n",
            u8::from(st.snapshot_running.load(Ordering::Relaxed)),
            st.snapshots_taken.load(Ordering::Relaxed),
        );
    }

    fn info_stats(&self, out: &mut String) {
        let s = &self.stats;
        let _ = write!(
            out,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nrejected_connections:{}\r\nevicted_keys:0\r\n{}total_error_replies:{}\r\ntotal_reads:{}\r\ntotal_writes:{}\r\ntotal_forwarded_writes:{}\r\ntotal_moved_replies:{}\r\n",
            s.connections.load(Ordering::Relaxed),
            s.commands.load(Ordering::Relaxed),
            s.rejected.load(Ordering::Relaxed),
            crate::pubsub::info_lines(&self.transport),
            crate::stats::global().total_errors.load(Ordering::Relaxed),
            s.reads.load(Ordering::Relaxed),
            s.writes.load(Ordering::Relaxed),
            s.forwarded.load(Ordering::Relaxed),
            s.moved.load(Ordering::Relaxed),
        );
    }

    /// `# Replication`: the Raft leader is the master, every other member a replica; a
    /// replica's master address is the leader's recorded client address.
    fn info_replication(&self, out: &mut String) {
        let home = self.groups.home();
        let st = &home.node.status;
        let applied = st.applied.load(Ordering::Relaxed);
        let addrs = self.redis_addrs();
        let _ = write!(out, "# Replication\r\nrole:{}\r\n", self.role(false));
        if st.is_leader() {
            let m = st.members();
            // Members whose client address is not recorded yet are left out: a client
            // could not connect to them.
            let others: Vec<(u64, &str, &str)> = m
                .voters
                .iter()
                .chain(&m.learners)
                .filter(|&&id| id != self.cfg.id)
                .filter_map(|&id| {
                    let (ip, port) = host_port(addrs.get(&id)?)?;
                    Some((id, ip, port))
                })
                .collect();
            let _ = write!(out, "connected_slaves:{}\r\n", others.len());
            for (n, (id, ip, port)) in others.iter().enumerate() {
                let offset = m.matched.get(id).copied().unwrap_or(0);
                let _ = write!(
                    out,
                    "slave{n}:ip={ip},port={port},state=online,offset={offset},lag=0\r\n"
                );
            }
        } else {
            let leader = st.leader();
            if let Some((host, port)) = addrs.get(&leader).and_then(|a| host_port(a)) {
                let _ = write!(out, "master_host:{host}\r\nmaster_port:{port}\r\n");
            }
            let _ = write!(
                out,
                "master_link_status:{}\r\nmaster_last_io_seconds_ago:-1\r\nmaster_sync_in_progress:0\r\nslave_read_repl_offset:{applied}\r\nslave_repl_offset:{applied}\r\nslave_priority:100\r\nslave_read_only:1\r\nreplica_announced:1\r\nconnected_slaves:0\r\n",
                if leader == 0 { "down" } else { "up" },
            );
        }
        let _ = write!(
            out,
            "master_failover_state:no-failover\r\nmaster_replid:{}\r\nmaster_replid2:0000000000000000000000000000000000000000\r\nmaster_repl_offset:{applied}\r\nsecond_repl_offset:-1\r\nrepl_backlog_active:0\r\n",
            self.run_id,
        );
    }

    /// `# Raft`: this node's consensus state, peer links and snapshot transfers.
    fn info_raft(&self, out: &mut String) {
        let home = self.groups.home();
        let st = &home.node.status;
        let m = st.members();
        let ss = &self.transport.snap_stats;
        let _ = write!(
            out,
            "# Raft\r\nraft_node_id:{}\r\nraft_group_id:1\r\nraft_role:{}\r\nraft_leader_id:{}\r\nraft_term:{}\r\nraft_commit_index:{}\r\nraft_applied_index:{}\r\nraft_first_log_index:{}\r\nraft_last_log_index:{}\r\nraft_proposed_commands:{}\r\nraft_proposed_entries:{}\r\nraft_read_requests:{}\r\nraft_readies:{}\r\nraft_log_syncs:{}\r\nraft_log_sync_micros:{}\r\nraft_ready_micros:{}\r\nraft_members:{}\r\nraft_voters:{}\r\nraft_learners:{}\r\nraft_voters_outgoing:{}\r\nraft_removed:{}\r\nraft_snapshot_index:{}\r\nraft_snapshot_in_progress:{}\r\nraft_snapshots_taken:{}\r\nraft_snapshots_restored:{}\r\nraft_snapshot_last_ms:{}\r\nraft_snapshot_send_bytes:{}\r\nraft_snapshot_send_total:{}\r\nraft_snapshot_sends_ok:{}\r\nraft_snapshot_sends_failed:{}\r\nraft_snapshot_recv_bytes:{}\r\nraft_snapshot_recv_total:{}\r\nraft_snapshot_recvs_ok:{}\r\nraft_snapshot_recvs_failed:{}\r\n",
            self.cfg.id,
            st.role_name(),
            st.leader(),
            st.term.load(Ordering::Relaxed),
            st.commit.load(Ordering::Relaxed),
            st.applied.load(Ordering::Relaxed),
            st.first_index.load(Ordering::Relaxed),
            st.last_index.load(Ordering::Relaxed),
            st.proposals.load(Ordering::Relaxed),
            st.entries_proposed.load(Ordering::Relaxed),
            st.reads.load(Ordering::Relaxed),
            st.readies.load(Ordering::Relaxed),
            st.syncs.load(Ordering::Relaxed),
            st.sync_micros.load(Ordering::Relaxed),
            st.ready_micros.load(Ordering::Relaxed),
            m.voters
                .iter()
                .chain(&m.learners)
                .map(|i| format!(
                    "{i}@{}",
                    m.addrs.get(i).map_or("?", String::as_str)
                ))
                .collect::<Vec<_>>()
                .join(","),
            join_ids(&m.voters),
            join_ids(&m.learners),
            join_ids(&m.voters_outgoing),
            u8::from(st.removed.load(Ordering::Relaxed)),
            st.snapshot_index.load(Ordering::Relaxed),
            u8::from(st.snapshot_running.load(Ordering::Relaxed)),
            st.snapshots_taken.load(Ordering::Relaxed),
            st.snapshots_restored.load(Ordering::Relaxed),
            st.snapshot_last_ms.load(Ordering::Relaxed),
            ss.send_bytes.load(Ordering::Relaxed),
            ss.send_total.load(Ordering::Relaxed),
            ss.sends_ok.load(Ordering::Relaxed),
            ss.sends_failed.load(Ordering::Relaxed),
            ss.recv_bytes.load(Ordering::Relaxed),
            ss.recv_total.load(Ordering::Relaxed),
            ss.recvs_ok.load(Ordering::Relaxed),
            ss.recvs_failed.load(Ordering::Relaxed),
        );
        out.push_str(&sync_histogram_lines(&st.sync_hist));
        // Peer links (sent/dropped/oversized per peer) and filtered messages.
        out.push_str(&self.transport.info_lines());
        let _ = write!(
            out,
            "raft_msgs_filtered:{}\r\n",
            st.msgs_filtered.load(Ordering::Relaxed)
        );
        // Every hosted group, one line each (the fields above are the home group's).
        let asleep = self
            .groups
            .all()
            .iter()
            .filter(|g| g.node.status.hibernating.load(Ordering::Relaxed))
            .count();
        let _ = write!(
            out,
            "raft_groups:{}\r\nraft_groups_hibernating:{asleep}\r\n",
            self.groups.all().len()
        );
        let meta = &self.groups.meta().node.status;
        let _ = write!(
            out,
            "raft_meta:role={},leader={},term={},applied={},snapshot_index={},snapshots_restored={},epoch={}\r\n",
            meta.role_name(),
            meta.leader(),
            meta.term.load(Ordering::Relaxed),
            meta.applied.load(Ordering::Relaxed),
            meta.snapshot_index.load(Ordering::Relaxed),
            meta.snapshots_restored.load(Ordering::Relaxed),
            self.groups.meta_state().epoch,
        );
        for g in self.groups.all().iter() {
            let st = &g.node.status;
            let _ = write!(
                out,
                "raft_group_{}:role={},leader={},term={},commit={},applied={},last_index={},snapshot_index={},hibernating={}\r\n",
                g.id,
                st.role_name(),
                st.leader(),
                st.term.load(Ordering::Relaxed),
                st.commit.load(Ordering::Relaxed),
                st.applied.load(Ordering::Relaxed),
                st.last_index.load(Ordering::Relaxed),
                st.snapshot_index.load(Ordering::Relaxed),
                u8::from(st.hibernating.load(Ordering::Relaxed)),
            );
        }
        let meta_id = self.groups.meta().id;
        for g in self.groups.every() {
            let name = if g.id == meta_id {
                "raft_meta".to_string()
            } else {
                format!("raft_group_{}", g.id)
            };
            write_members(out, &name, &g.node.status.members());
        }
        let state = self.groups.meta_state();
        // Data groups on other nodes only: the members the metadata records, the leader
        // last seen (0: none yet).
        for g in state.data_groups() {
            if !self.groups.hosts(g) {
                let _ = write!(
                    out,
                    "raft_remote_group_{g}:leader={},voters={}\r\n",
                    self.groups.hint(g),
                    store::cluster_meta::ids_text(&state.members_of(g).voters)
                );
            }
        }
        let recorded: Vec<u64> = state.nodes.keys().copied().collect();
        let prefer: Vec<String> = state
            .prefer
            .iter()
            .map(|(g, n)| format!("{g}={n}"))
            .collect();
        let _ = write!(
            out,
            "raft_meta_nodes:{}\r\nraft_meta_preferred_leaders:{}\r\n",
            store::cluster_meta::ids_text(&recorded),
            if prefer.is_empty() {
                "-".to_string()
            } else {
                prefer.join(",")
            }
        );
    }

    fn info_keyspace(&self, out: &mut String) {
        out.push_str("# Keyspace\r\n");
        let all = self.groups.all();
        let keys: u64 = all.iter().map(|g| g.reader.key_count()).sum();
        if keys > 0 {
            let _ = write!(
                out,
                "db0:keys={keys},expires={},avg_ttl=0\r\n",
                all.iter().map(|g| g.reader.expires_count()).sum::<u64>()
            );
        }
    }
}

/// `# Memory`: there is no allocator accounting, so `used_memory` is the resident set size
/// (`/proc/self/statm`), and the peak is the kernel's high-water mark (`VmHWM`).
fn info_memory(out: &mut String) {
    let rss = rss_bytes();
    let peak = proc_kb("/proc/self/status", "VmHWM:").max(rss);
    let total = proc_kb("/proc/meminfo", "MemTotal:");
    let perc = if peak > 0 {
        rss as f64 * 100.0 / peak as f64
    } else {
        0.0
    };
    let _ = write!(
        out,
        "# Memory\r\nused_memory:{rss}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{peak}\r\nused_memory_peak_human:{}\r\nused_memory_peak_perc:{perc:.2}%\r\ntotal_system_memory:{total}\r\ntotal_system_memory_human:{}\r\nused_memory_lua:0\r\nused_memory_scripts:0\r\nmaxmemory:0\r\nmaxmemory_human:0B\r\nmaxmemory_policy:noeviction\r\nmem_fragmentation_ratio:1.00\r\nmem_fragmentation_bytes:0\r\nmem_allocator:libc\r\nlazyfree_pending_objects:0\r\n",
        human(rss),
        human(rss),
        human(peak),
        human(total),
    );
}

fn info_cpu(out: &mut String) {
    let (sys, user) = cpu(libc::RUSAGE_SELF);
    let (csys, cuser) = cpu(libc::RUSAGE_CHILDREN);
    let _ = write!(
        out,
        "# CPU\r\nused_cpu_sys:{sys}\r\nused_cpu_user:{user}\r\nused_cpu_sys_children:{csys}\r\nused_cpu_user_children:{cuser}\r\n"
    );
}

/// `<name>_voters:` and `<name>_learners:` lines: a group's members as this node sees them
/// (sorted ids, comma-separated, `-` for none; outgoing voters of a joint configuration
/// count as voters).
fn write_members(out: &mut String, name: &str, m: &raft_node::status::Members) {
    let mut voters = m.voters.clone();
    voters.extend(m.voters_outgoing.iter().filter(|i| !m.voters.contains(i)));
    voters.sort_unstable();
    let mut learners = m.learners.clone();
    learners.sort_unstable();
    let text = store::cluster_meta::ids_text;
    let _ = write!(
        out,
        "{name}_voters:{}\r\n{name}_learners:{}\r\n",
        text(&voters),
        text(&learners)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn default_and_all() {
        let d = select(&[]);
        assert_eq!(d, select(&s(&["DEFAULT"])));
        assert!(d.contains(&"memory") && d.contains(&"raft") && !d.contains(&"commandstats"));
        let all = select(&s(&["all"]));
        assert_eq!(all.len(), SECTIONS.len());
        assert_eq!(all, select(&s(&["everything"])));
    }

    #[test]
    fn several_names_in_canonical_order_unknown_skipped() {
        assert_eq!(
            select(&s(&["keyspace", "Clients", "server", "nosuch"])),
            vec!["server", "clients", "keyspace"]
        );
        assert!(select(&s(&["nosuch"])).is_empty());
    }

    #[test]
    fn human_sizes_as_redis() {
        assert_eq!(human(0), "0B");
        assert_eq!(human(1023), "1023B");
        assert_eq!(human(916240), "894.77K");
        assert_eq!(human(12017664), "11.46M");
        assert_eq!(human(25276510208), "23.54G");
    }

    #[test]
    fn memory_and_cpu_fields_parse() {
        let mut out = String::new();
        info_memory(&mut out);
        info_cpu(&mut out);
        let field = |n: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(n)?.strip_prefix(':'))
                .map(str::to_string)
        };
        let rss: u64 = field("used_memory_rss")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!(rss > 0, "{out}");
        let user: f64 = field("used_cpu_user")
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1.0);
        assert!(user >= 0.0, "{out}");
        assert!(field("used_cpu_sys_children").is_some());
        assert_eq!(field("maxmemory").as_deref(), Some("0"));
    }

    #[test]
    fn host_port_splits_last_colon() {
        assert_eq!(host_port("127.0.0.1:63791"), Some(("127.0.0.1", "63791")));
        assert_eq!(host_port("nocolon"), None);
    }
}
