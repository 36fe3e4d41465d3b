//! Snapshot streams. A raft `MsgSnapshot` carries only a descriptor (files, sizes,
//! CRC-32s, address book); the sender offers it on a connection of its own, the receiver
//! answers how much of each file it already holds (a broken transfer resumes there), and
//! the files follow in chunks, each with a CRC-32; whole-file CRCs are checked at the end
//! (and again by the Raft loop right before it restores). Only then is the message handed
//! to the receiver's Raft loop, and the sender's loop told the outcome.
//!
//! One receiver per snapshot: a stream that starts for a snapshot another stream is
//! still receiving (the sender gave up on a stalled connection and retried) takes over;
//! the older stream stops before its next write, so it can never append to the files the
//! newer one is writing.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use slog::{info, warn};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::Notify;

use super::auth::KIND_SNAPSHOT;
use super::frame::{invalid, read_frame, within, write_frame, MAX_FRAME};
use super::{outbound, OnMessage, Transport};
use crate::proto::{
    SnapshotChunk, SnapshotDescriptor, SnapshotDone, SnapshotOffer, SnapshotResume,
};
use crate::snap;

/// Most files one snapshot may have.
const MAX_SNAPSHOT_FILES: usize = 64;

/// The receive slot of one snapshot directory: the newest stream's generation, a wake-up
/// for older streams waiting on a read, and the lock the writing stream holds.
#[derive(Default)]
pub struct RecvSlot {
    generation: AtomicU64,
    superseded: Notify,
    writing: tokio::sync::Mutex<()>,
}

/// Receive slots by directory name.
#[derive(Default)]
pub struct RecvSlots(Mutex<HashMap<String, Arc<RecvSlot>>>);

impl RecvSlots {
    /// Claims the slot of `name` for a new stream: older streams of it stop. Returns the
    /// slot and this stream's generation.
    fn claim(&self, name: &str) -> (Arc<RecvSlot>, u64) {
        let slot = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone();
        let generation = slot.generation.fetch_add(1, Ordering::AcqRel) + 1;
        slot.superseded.notify_waiters();
        (slot, generation)
    }

    /// Drops the slot of `name` if no newer stream claimed it.
    fn release(&self, name: &str, generation: u64) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map
            .get(name)
            .is_some_and(|s| s.generation.load(Ordering::Acquire) == generation)
        {
            map.remove(name);
        }
    }
}

/// A stream's claim on its slot; checks it is still the newest.
struct Claim<'a> {
    slot: Arc<RecvSlot>,
    generation: u64,
    stats: &'a AtomicU64,
}

impl Claim<'_> {
    fn current(&self) -> std::io::Result<()> {
        if self.slot.generation.load(Ordering::Acquire) == self.generation {
            Ok(())
        } else {
            self.stats.fetch_add(1, Ordering::Relaxed);
            Err(invalid("a newer stream of this snapshot took over"))
        }
    }

    /// Reads a frame unless a newer stream takes over first.
    async fn read<R: AsyncRead + Unpin>(&self, r: &mut R, d: Duration) -> std::io::Result<Vec<u8>> {
        let superseded = self.slot.superseded.notified();
        tokio::pin!(superseded);
        superseded.as_mut().enable();
        self.current()?;
        tokio::select! {
            f = within(d, read_frame(r, MAX_FRAME)) => f,
            _ = superseded => {
                self.current()?;
                Err(invalid("woken without a newer stream"))
            }
        }
    }
}

fn check_offer(m: &Message, from: u64, me: u64) -> std::io::Result<SnapshotDescriptor> {
    if m.get_msg_type() != MessageType::MsgSnapshot || m.from != from || m.to != me {
        return Err(invalid(
            "snapshot offer is not a snapshot message for this node",
        ));
    }
    let meta = m.get_snapshot().get_metadata();
    let desc = SnapshotDescriptor::parse_from_bytes(&m.get_snapshot().data).map_err(invalid)?;
    if desc.files.len() > MAX_SNAPSHOT_FILES
        || desc.files.iter().any(|f| !snap::safe_name(&f.name))
        || desc.index != meta.index
        || desc.term != meta.term
        || desc.pending
    {
        return Err(invalid("malformed snapshot descriptor"));
    }
    Ok(desc)
}

/// Bytes already held of each file in `dir` (a partial file longer than expected is
/// discarded).
async fn held(dir: &Path, desc: &SnapshotDescriptor) -> std::io::Result<Vec<u64>> {
    let mut have = Vec::with_capacity(desc.files.len());
    for f in &desc.files {
        let path = dir.join(&f.name);
        let len = match tokio::fs::metadata(&path).await {
            Ok(md) if md.len() <= f.size => md.len(),
            Ok(_) => {
                tokio::fs::remove_file(&path).await?;
                0
            }
            Err(_) => 0,
        };
        have.push(len);
    }
    Ok(have)
}

impl Transport {
    /// Receives one snapshot stream from authenticated peer `from`.
    pub(super) async fn receive_snapshot<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
        &self,
        from: u64,
        r: &mut R,
        w: &mut W,
        on_message: &OnMessage,
    ) -> std::io::Result<()> {
        let offer = within(Duration::from_secs(10), read_frame(r, MAX_FRAME)).await?;
        let offer = SnapshotOffer::parse_from_bytes(&offer).map_err(invalid)?;
        let m = Message::parse_from_bytes(&offer.msg).map_err(invalid)?;
        let desc = check_offer(&m, from, self.cfg.id)?;
        let (index, term, group) = (desc.index, desc.term, offer.group);
        let root = crate::node::group_snap_dir(&self.cfg.snap_dir, group);
        let name = format!("{group}/{}", snap::recv_name(from, term, index));
        let (slot, generation) = self.recv_slots.claim(&name);
        let claim = Claim {
            slot,
            generation,
            stats: &self.stats.snap_streams_superseded,
        };
        // Wait for an older stream of this snapshot to let go (it stops at its next step).
        let _writing = within(Duration::from_secs(10), async {
            Ok(claim.slot.writing.lock().await)
        })
        .await?;
        // Receive, verify and move into place while holding the slot, so no other stream
        // of this snapshot writes into the directory meanwhile.
        let result = async {
            let (dir, started, fetched) = self
                .receive_files(from, &root, r, w, &m, &desc, &claim)
                .await?;
            self.verify_received(&dir, &desc).await?;
            claim.current()?;
            let done = root.join(snap::done_name(term, index));
            let same = tokio::fs::metadata(&done).await.is_ok()
                && self.verify_received(&done, &desc).await.is_ok();
            if same {
                tokio::fs::remove_dir_all(&dir).await?;
            } else {
                replace_dir(&root, &dir, &done, term, index).await?;
            }
            Ok::<_, std::io::Error>((started, fetched))
        }
        .await;
        drop(_writing);
        self.recv_slots.release(&name, generation);
        let (started, fetched) = result?;
        let secs = started.elapsed().as_secs_f64().max(1e-6);
        info!(self.logger, "snapshot received"; "group" => group, "from" => from, "index" => index, "bytes" => snap::total_bytes(&desc), "mb_per_s" => format!("{:.1}", fetched as f64 / secs / 1e6));
        on_message(group, m);
        Ok(())
    }

    /// Whole-file checks (also covers bytes written before a resume).
    async fn verify_received(&self, dir: &Path, desc: &SnapshotDescriptor) -> std::io::Result<()> {
        let (dir, desc) = (dir.to_path_buf(), desc.clone());
        tokio::task::spawn_blocking(move || snap::verify(&dir, &desc))
            .await
            .map_err(invalid)?
    }

    /// Receives the files of `desc` into their `recv-` directory; returns it, when the
    /// transfer started and how many bytes came on this stream.
    #[allow(clippy::too_many_arguments)]
    async fn receive_files<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
        &self,
        from: u64,
        root: &Path,
        r: &mut R,
        w: &mut W,
        m: &Message,
        desc: &SnapshotDescriptor,
        claim: &Claim<'_>,
    ) -> std::io::Result<(std::path::PathBuf, Instant, u64)> {
        let meta = m.get_snapshot().get_metadata();
        let (index, term) = (meta.index, meta.term);
        let total = snap::total_bytes(desc);
        let dir = root.join(snap::recv_name(from, term, index));
        tokio::fs::create_dir_all(&dir).await?;
        let mut have = held(&dir, desc).await?;
        let held: u64 = have.iter().sum();
        if held > 0 {
            info!(self.logger, "resuming snapshot receive"; "from" => from, "index" => index, "have" => held, "total" => total);
        } else {
            info!(self.logger, "receiving snapshot"; "from" => from, "index" => index, "total" => total);
        }
        self.snap_stats.recv_total.store(total, Ordering::Relaxed);
        self.snap_stats.recv_bytes.store(held, Ordering::Relaxed);
        let resume = SnapshotResume {
            offsets: have.clone(),
            ..Default::default()
        };
        write_frame(w, &resume.write_to_bytes().map_err(invalid)?).await?;
        w.flush().await?;
        let mut files: Vec<Option<tokio::fs::File>> = (0..desc.files.len()).map(|_| None).collect();
        let started = Instant::now();
        while have.iter().zip(&desc.files).any(|(h, f)| *h < f.size) {
            let frame = claim.read(r, Duration::from_secs(30)).await?;
            let c = SnapshotChunk::parse_from_bytes(&frame).map_err(invalid)?;
            let i = c.file as usize;
            let Some(f) = desc.files.get(i) else {
                return Err(invalid("chunk of an unknown file"));
            };
            if c.offset != have[i] || c.offset + c.data.len() as u64 > f.size {
                return Err(invalid("chunk out of order"));
            }
            if crc32fast::hash(&c.data) != c.crc32 {
                return Err(invalid("chunk checksum mismatch"));
            }
            if files[i].is_none() {
                files[i] = Some(
                    tokio::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(dir.join(&f.name))
                        .await?,
                );
            }
            claim.current()?;
            if let Some(file) = files[i].as_mut() {
                file.write_all(&c.data).await?;
            }
            have[i] += c.data.len() as u64;
            self.snap_stats
                .recv_bytes
                .fetch_add(c.data.len() as u64, Ordering::Relaxed);
        }
        for file in files.into_iter().flatten() {
            file.sync_all().await?;
        }
        Ok((dir, started, total - held))
    }

    /// Streams the snapshot of `m` (a `MsgSnapshot`) to its receiver.
    pub(super) async fn send_snapshot(self: Arc<Self>, group: u64, m: Message) {
        let to = m.to;
        let ok = match self.try_send_snapshot(group, &m).await {
            Ok(()) => {
                self.snap_stats.sends_ok.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(e) => {
                warn!(self.logger, "snapshot send failed"; "group" => group, "to" => to, "err" => %e);
                self.snap_stats.sends_failed.fetch_add(1, Ordering::Relaxed);
                false
            }
        };
        (self.on_snapshot_status)(group, to, ok);
    }

    async fn try_send_snapshot(&self, group: u64, m: &Message) -> std::io::Result<()> {
        let to = m.to;
        let meta = m.get_snapshot().get_metadata();
        let index = meta.index;
        let desc = SnapshotDescriptor::parse_from_bytes(&m.get_snapshot().data).map_err(invalid)?;
        let dir = crate::node::group_snap_dir(&self.cfg.snap_dir, group)
            .join(snap::done_name(meta.term, index));
        let addr = self
            .route_addr(to)
            .ok_or_else(|| invalid(format!("no address for peer {to}")))?;
        let (mut r, w) =
            outbound::connect(self, to, &addr, KIND_SNAPSHOT, Duration::from_secs(3)).await?;
        let mut w = BufWriter::with_capacity(self.cfg.snapshot_chunk + 64, w);
        let offer = SnapshotOffer {
            msg: m.write_to_bytes().map_err(invalid)?,
            group,
            ..Default::default()
        };
        write_frame(&mut w, &offer.write_to_bytes().map_err(invalid)?).await?;
        w.flush().await?;
        let resume = within(Duration::from_secs(30), read_frame(&mut r, MAX_FRAME)).await?;
        let resume = SnapshotResume::parse_from_bytes(&resume).map_err(invalid)?;
        let total = snap::total_bytes(&desc);
        let held: u64 = resume.offsets.iter().sum();
        info!(self.logger, "sending snapshot"; "to" => to, "index" => index, "total" => total, "resume_at" => held);
        self.snap_stats.send_total.store(total, Ordering::Relaxed);
        self.snap_stats.send_bytes.store(held, Ordering::Relaxed);
        let started = Instant::now();
        let sent = self
            .send_files(to, &mut w, &dir, &desc, &resume.offsets, held)
            .await?;
        w.flush().await?;
        let done = within(Duration::from_secs(300), read_frame(&mut r, MAX_FRAME)).await?;
        let done = SnapshotDone::parse_from_bytes(&done).map_err(invalid)?;
        if !done.ok {
            return Err(invalid(format!(
                "receiver refused the snapshot: {}",
                done.error
            )));
        }
        let secs = started.elapsed().as_secs_f64().max(1e-6);
        info!(self.logger, "snapshot sent"; "to" => to, "index" => index, "bytes" => sent, "mb_per_s" => format!("{:.1}", sent as f64 / secs / 1e6));
        Ok(())
    }

    /// Writes the chunks of every file from its resume offset; returns the bytes sent.
    async fn send_files<W: AsyncWrite + Unpin>(
        &self,
        to: u64,
        w: &mut W,
        dir: &Path,
        desc: &SnapshotDescriptor,
        offsets: &[u64],
        held: u64,
    ) -> std::io::Result<u64> {
        let total = snap::total_bytes(desc);
        let started = Instant::now();
        let mut sent = 0u64;
        let mut next_log = total / 10;
        let mut buf = vec![0u8; self.cfg.snapshot_chunk.clamp(4096, MAX_FRAME / 2)];
        for (i, f) in desc.files.iter().enumerate() {
            let mut offset = offsets.get(i).copied().unwrap_or(0).min(f.size);
            if offset >= f.size {
                continue;
            }
            let mut file = tokio::fs::File::open(dir.join(&f.name)).await?;
            tokio::io::AsyncSeekExt::seek(&mut file, std::io::SeekFrom::Start(offset)).await?;
            while offset < f.size {
                let want = buf.len().min((f.size - offset) as usize);
                file.read_exact(&mut buf[..want]).await?;
                let chunk = SnapshotChunk {
                    file: i as u32,
                    offset,
                    crc32: crc32fast::hash(&buf[..want]),
                    data: buf[..want].to_vec(),
                    ..Default::default()
                };
                write_frame(w, &chunk.write_to_bytes().map_err(invalid)?).await?;
                offset += want as u64;
                sent += want as u64;
                self.snap_stats
                    .send_bytes
                    .fetch_add(want as u64, Ordering::Relaxed);
                if sent >= next_log && total > 0 {
                    info!(self.logger, "snapshot send progress"; "to" => to, "sent" => held + sent, "total" => total);
                    next_log += (total / 10).max(1);
                }
                if self.cfg.snapshot_rate > 0 {
                    let due = Duration::from_secs_f64(sent as f64 / self.cfg.snapshot_rate as f64);
                    let elapsed = started.elapsed();
                    if due > elapsed {
                        w.flush().await?;
                        tokio::time::sleep(due - elapsed).await;
                    }
                }
            }
        }
        Ok(sent)
    }
}

/// Moves a received snapshot into place as `done`. A directory already there that does
/// not hold these files (another leader's snapshot at the same index and term, whose SST
/// files differ, or a leftover) is replaced: the message about to be handed on names
/// these files, and its restore checks them.
async fn replace_dir(
    root: &Path,
    dir: &Path,
    done: &Path,
    term: u64,
    index: u64,
) -> std::io::Result<()> {
    if tokio::fs::metadata(done).await.is_ok() {
        // Not a `snap-` name: pruning removes it if a crash leaves it behind.
        let old = root.join(format!("old-{term}-{index}"));
        let _ = tokio::fs::remove_dir_all(&old).await;
        tokio::fs::rename(done, &old).await?;
        tokio::fs::rename(dir, done).await?;
        snap::sync_dir(root)?;
        let _ = tokio::fs::remove_dir_all(&old).await;
    } else {
        tokio::fs::rename(dir, done).await?;
        snap::sync_dir(root)?;
    }
    Ok(())
}
