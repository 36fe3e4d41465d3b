//! The data copy of a migration whose target has replicas on nodes without its source (see
//! `store::ingest` for the apply side): the coordinator reads the slots' records from a
//! source replica (this node's after a ReadIndex barrier, else a member's, asked with the
//! forwarded, never proposed `RAFTKV.SLOTS.EXPORT <ranges> <cursor>`) in chunks of at most
//! [`CHUNK_BYTES`], and proposes each to the target as one `RAFTKV.SLOTS.INGEST` entry,
//! written straight from the export reply's bytes (`super::relay`: no decoding into
//! records and encoding again).
//! The source is frozen (it applied its REMOVE), so every read sees its final records; a
//! coordinator that dies mid-copy leaves a migration its successor copies again (an
//! ingest rewrites identical records: idempotent). The next chunks are read while the
//! last ones commit, two at once (chunks hold distinct records, so their order does not
//! matter; the pieces of a big record go one after the other). The copy runs at most at
//! `--migrate-max-mbps` and logs its rate when done (`super::pace`).

use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use resp::Reply;
use slog::info;
use store::cluster_meta::ClusterMeta;
use store::ingest::Chunk;
use store::migrations::{ranges_words, Migration};

use super::pace::{self, Bucket};
use super::relay::Entry;
use crate::server::Server;

/// Most bytes of records in one exported chunk (one target log entry; far below the
/// entry and frame limits).
pub const CHUNK_BYTES: usize = 256 << 10;

/// Chunks exported ahead of those committing in the target (bounded memory: this many
/// chunks of [`CHUNK_BYTES`] queued, plus at most two committing and one being read).
pub const PIPELINE: usize = 2;

/// The forwarded export request's name (served by `Server::serve_export`).
pub const EXPORT: &[u8] = b"RAFTKV.SLOTS.EXPORT";

/// Whether migration `m` must copy records (a node of the target hosts no replica of the
/// source) and whether the source's records must be collected afterwards (a node of the
/// source hosts no replica of the target). Always both when either group was created by
/// `RAFT.SHARDGROUP JOIN`: the recorded members are the leaders' last reports, which lag
/// a node just added to a group, and such a node's replica takes the slots fresh and would
/// wait for a copy that never came (chaos seed 1111, session 11: a node joined during a
/// LEAVE answered nil for keys its group's other replicas held). A copy where the
/// records were adopted rewrites identical bytes, a DROP where the target is hosted
/// deletes nothing, so the extra steps are safe. The same holds for a bootstrap group
/// whose reported members are not every node of the metadata (moved by `RAFT.NODE ...
/// GROUP`, or a node joining it).
pub fn needs(meta: &ClusterMeta, m: &Migration) -> (bool, bool) {
    let everywhere = |g: u64| {
        g <= meta.groups
            && meta.members.get(&g).is_none_or(|x| {
                let mut ids: Vec<u64> = x.voters.iter().chain(&x.learners).copied().collect();
                ids.sort_unstable();
                ids.iter().eq(meta.nodes.keys())
            })
    };
    if meta.groups > 0 && !(everywhere(m.from) && everywhere(m.to)) {
        return (true, true);
    }
    let all = |g: u64| {
        let x = meta.members_of(g);
        let mut v = x.voters;
        v.extend(x.learners);
        v
    };
    let (src, dst) = (all(m.from), all(m.to));
    (
        dst.iter().any(|id| !src.contains(id)),
        src.iter().any(|id| !dst.contains(id)),
    )
}

/// The export reply: the next cursor (empty: done), then `cf key value` per record.
fn encode_chunk((records, next): Chunk) -> Reply {
    let mut out = Vec::with_capacity(1 + records.len() * 3);
    out.push(Reply::Bulk(Bytes::from(next.unwrap_or_default())));
    for (cf, k, v) in records {
        out.extend([Reply::Bulk(cf), Reply::Bulk(k), Reply::Bulk(v)]);
    }
    Reply::Array(out)
}

impl Server {
    /// Bytes of records per chunk: [`CHUNK_BYTES`], or half of `--max-write-bytes` when
    /// that is smaller (an ingest entry must pass the write limit); and the pieces of a
    /// record bigger than that: half of `--max-write-bytes` (few re-reads of a huge value).
    fn chunk_bytes(&self) -> (usize, usize) {
        let half = self.cfg.write_limit() / 2;
        (CHUNK_BYTES.min(half), half)
    }

    /// Copies migration `id`'s records from its source to its target (module doc), at most
    /// at `--migrate-max-mbps` (see `super::pace`). The next chunks are exported while the
    /// last ones commit in the target ([`PIPELINE`] chunks read ahead at most, and up to
    /// two ingests in flight).
    pub(super) async fn copy_slots(&self, id: u64, m: &Migration) -> Result<(), String> {
        let started = Instant::now();
        let live = &self.migration.live;
        live.copy_started(started);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Entry>(PIPELINE);
        let export = async move {
            let mut at: Vec<u8> = Vec::new();
            loop {
                let (entry, next) = self.export_chunk(id, m.from, &m.ranges, &at).await?;
                // A closed channel: the ingest failed, and says why.
                if entry.records > 0 && tx.send(entry).await.is_err() {
                    return Ok(());
                }
                match next {
                    Some(n) => at = n,
                    None => return Ok::<(), String>(()),
                }
            }
        };
        let ingest = async move {
            let mut bucket = Bucket::new(started);
            while let Some(first) = rx.recv().await {
                // A second chunk read already commits with the first (one fsync round).
                let second = rx.try_recv().ok();
                for c in std::iter::once(&first).chain(second.as_ref()) {
                    let rate = pace::bytes_per_sec(self.cfg.migrate_max_mbps());
                    let wait = bucket.take(Instant::now(), c.bytes, rate);
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                }
                // The pieces of a big record go in order (the last one assembles them).
                if first.piece || second.as_ref().is_some_and(|s| s.piece) {
                    self.ingest_chunk(id, m.to, first).await?;
                    self.ingest_some(id, m.to, second).await?;
                    continue;
                }
                let (a, b) = tokio::join!(
                    self.ingest_chunk(id, m.to, first),
                    self.ingest_some(id, m.to, second)
                );
                a?;
                b?;
            }
            Ok::<(), String>(())
        };
        let (exported, ingested) = tokio::join!(export, ingest);
        exported?;
        ingested?;
        let secs = started.elapsed().as_secs_f64();
        let bytes = live.copy_bytes.load(Ordering::Relaxed);
        info!(self.logger, "slots copied"; "migration" => id, "from" => m.from, "to" => m.to,
            "slots" => ranges_words(&m.ranges).join(","), "records" => live.copy_records.load(Ordering::Relaxed),
            "bytes" => bytes, "ms" => (secs * 1000.0) as u64,
            "mb_per_s" => format!("{:.1}", bytes as f64 / 1e6 / secs.max(1e-6)));
        Ok(())
    }

    /// [`Server::ingest_chunk`] of a chunk, if any.
    async fn ingest_some(&self, id: u64, to: u64, chunk: Option<Entry>) -> Result<(), String> {
        match chunk {
            Some(c) => self.ingest_chunk(id, to, c).await,
            None => Ok(()),
        }
    }

    /// Proposes one chunk's `RAFTKV.SLOTS.INGEST` (fenced by migration `id`, encoded by
    /// `super::relay`) to group `to`, and counts its records and bytes.
    async fn ingest_chunk(&self, id: u64, to: u64, e: Entry) -> Result<(), String> {
        let (n, bytes) = (e.records, e.bytes);
        match self
            .group_call_encoded(to, e.data, "RAFTKV.SLOTS.INGEST")
            .await?
        {
            Reply::Int(_) => {
                let p = &self.migration;
                p.copied_records.fetch_add(n, Ordering::Relaxed);
                p.copied_bytes.fetch_add(bytes, Ordering::Relaxed);
                p.live.copied(n, bytes, Instant::now());
                Ok(())
            }
            other => Err(format!(
                "ingest of migration {id} into group {to}: {other:?}"
            )),
        }
    }

    /// One chunk of group `gid`'s records of `ranges` from `at`, as migration `id`'s ingest
    /// entry, and the next cursor: read here when hosted, else relayed from a member's
    /// export reply (`super::relay`).
    async fn export_chunk(
        &self,
        id: u64,
        gid: u64,
        ranges: &[(u16, u16)],
        at: &[u8],
    ) -> Result<(Entry, Option<Vec<u8>>), String> {
        if let Some(g) = self.groups.get(gid) {
            self.read_barrier_in(&g)
                .await
                .map_err(|e| format!("export from group {gid}: {e:?}"))?;
            let (reader, ranges, at) = (g.reader.clone(), ranges.to_vec(), at.to_vec());
            let chunk = self.chunk_bytes();
            let (records, next) =
                tokio::task::spawn_blocking(move || reader.export_slots(&ranges, &at, chunk))
                    .await
                    .map_err(|e| e.to_string())??;
            return Ok((Entry::from_records(id, &records), next));
        }
        let argv = vec![
            Bytes::from_static(EXPORT),
            Bytes::from(ranges_words(ranges).join(",")),
            Bytes::copy_from_slice(at),
        ];
        match self.remote_call(gid, vec![argv], false).await {
            crate::session::Outcome::Raw(raw) => Entry::from_reply(id, &raw),
            crate::session::Outcome::Replies(mut rs) => {
                Err(format!("export from group {gid}: {:?}", rs.pop()))
            }
            crate::session::Outcome::Overflow(_) => Err("export reply too large".into()),
        }
    }

    /// Serves a forwarded `RAFTKV.SLOTS.EXPORT <ranges> <cursor>` of group `gid` from this
    /// node's replica (after a ReadIndex barrier); `None` when it does not host the group.
    pub async fn serve_export(&self, gid: u64, argv: &[Bytes]) -> Option<Reply> {
        let g = self.groups.get(gid)?;
        let [_, ranges, at] = argv else {
            return Some(Reply::err("ERR malformed export request"));
        };
        let Ok(ranges) = resp::cmd::parse_slot_ranges(ranges) else {
            return Some(Reply::err("ERR malformed export request"));
        };
        if let Err(e) = self.read_barrier_in(&g).await {
            return Some(e);
        }
        let (reader, at) = (g.reader.clone(), at.to_vec());
        let chunk = self.chunk_bytes();
        let chunk =
            tokio::task::spawn_blocking(move || reader.export_slots(&ranges, &at, chunk)).await;
        Some(match chunk {
            Ok(Ok(c)) => encode_chunk(c),
            Ok(Err(e)) => Reply::err(format!("ERR export failed: {e}")),
            Err(e) => Reply::err(format!("ERR export failed: {e}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_and_the_copy_is_needed_only_where_nodes_differ() {
        let rec = (
            Bytes::from_static(b"data"),
            Bytes::from_static(b"\x00\x01k"),
            Bytes::from_static(b"v"),
        );
        // A source's export reply, relayed, is the entry of its records (`super::relay`).
        let relayed = |c: Chunk| {
            let mut out = bytes::BytesMut::new();
            resp::encode::encode(&encode_chunk(c), resp::Protocol::Resp2, &mut out);
            Entry::from_reply(9, &out)
        };
        let c: Chunk = (vec![rec.clone()], Some(vec![0, 1, 2]));
        let want = Entry::from_records(9, &c.0);
        assert_eq!(relayed(c), Ok((want.clone(), Some(vec![0, 1, 2]))));
        let done: Chunk = (vec![rec], None);
        assert_eq!(relayed(done), Ok((want, None)));
        let on_1_to_3 = || store::cluster_meta::GroupMembers {
            voters: vec![1, 2, 3],
            learners: vec![],
        };
        let mut meta = ClusterMeta::default();
        meta.added.insert(4, vec![4, 5]);
        meta.members.insert(1, on_1_to_3());
        let m = Migration {
            from: 1,
            to: 4,
            ranges: vec![(0, 9)],
        };
        assert_eq!(needs(&meta, &m), (true, true));
        // Between bootstrap groups (on every node): adopted in place.
        meta.groups = 3;
        for id in 1..=3 {
            meta.nodes.insert(id, Default::default());
        }
        for g in 1..=3 {
            meta.members.insert(g, on_1_to_3());
        }
        let m = Migration {
            from: 1,
            to: 2,
            ranges: vec![(0, 9)],
        };
        assert_eq!(needs(&meta, &m), (false, false));
        // A bootstrap group not on every node (node 4 recorded, not yet a member).
        meta.nodes.insert(4, Default::default());
        assert_eq!(needs(&meta, &m), (true, true));
        meta.nodes.remove(&4);
        // Into or out of a created group, even where the recorded members agree: a node
        // just added to the target may not be recorded yet (chaos seed 1111).
        meta.added.insert(100, vec![1, 2, 3]);
        for (from, to) in [(100, 1), (1, 100)] {
            let m = Migration {
                from,
                to,
                ranges: vec![(0, 9)],
            };
            assert_eq!(needs(&meta, &m), (true, true), "{from} -> {to}");
        }
    }
}
