//! The client workload: concurrent clients issuing SET/GET/DEL on register keys (some SETs
//! with large values), INCR/GET on counter keys, RPUSH of unique values and LPOP on a few
//! queue keys, HSET/HGET/HDEL on a few fields of a few hash keys, and now and then an MSET,
//! an MGET or a pipeline of several commands (see [`crate::batch`]); each operation sent to a
//! random node, every operation recorded with its invocation and completion time; plus the
//! final reads after healing (LRANGE 0 -1 of queues, HGET of every hash field).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use redis::aio::MultiplexedConnection;

use crate::batch::{self, Batch};
use crate::client;
use crate::cluster::Targets;
use crate::history::{Call, Op, Outcome};

/// Collects the history; times are microseconds since `start`.
pub struct Recorder {
    start: Instant,
    next_id: AtomicUsize,
    ops: Mutex<Vec<Op>>,
}

impl Recorder {
    pub fn new(start: Instant) -> Recorder {
        Recorder {
            start,
            next_id: AtomicUsize::new(0),
            ops: Mutex::new(Vec::new()),
        }
    }

    pub fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn push(&self, mut op: Op) {
        op.id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).push(op);
    }

    /// The history so far, in id order.
    pub fn take(&self) -> Vec<Op> {
        let mut ops = std::mem::take(&mut *self.ops.lock().unwrap_or_else(|p| p.into_inner()));
        ops.sort_by_key(|o| o.id);
        ops
    }
}

/// The keys of a run: `n` registers and counters (even positions `reg<n>`, odd ones
/// `ctr<n>`), then a minority of queues (`q<n>`, lists under RPUSH/LPOP) and hashes (`h<n>`,
/// HSET/HGET/HDEL on the fields [`FIELDS`]): one of each, and one more of each per 8 keys.
pub fn keys(n: usize) -> Vec<String> {
    let n = n.max(2);
    let mut keys: Vec<String> = (0..n)
        .map(|i| {
            if i % 2 == 0 {
                // Hash-tagged in four families: MSET / MGET take keys of one tag, so they
                // stay in one slot on a sharded cluster (one group: atomic).
                format!("reg{}{{t{}}}", i / 2, (i / 2) % TAGS)
            } else {
                format!("ctr{}", i / 2)
            }
        })
        .collect();
    for i in 0..1 + n / 8 {
        keys.push(format!("q{i}"));
        keys.push(format!("h{i}"));
    }
    keys
}

/// The fields of every hash key.
pub const FIELDS: [&str; 3] = ["f0", "f1", "f2"];

/// What a key of [`keys`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Register,
    Counter,
    Queue,
    Hash,
}

/// Hash tags of the register keys.
const TAGS: usize = 4;

/// A key's `{tag}`, if any.
fn tag(key: &str) -> Option<&str> {
    let start = key.find('{')?;
    let end = key[start..].find('}')? + start;
    Some(&key[start + 1..end])
}

fn kind(key: &str) -> Kind {
    if key.starts_with("ctr") {
        Kind::Counter
    } else if key.starts_with('q') {
        Kind::Queue
    } else if key.starts_with('h') {
        Kind::Hash
    } else {
        Kind::Register
    }
}

/// The reads of `key` made after healing.
fn final_calls(key: &str) -> Vec<Call> {
    match kind(key) {
        Kind::Queue => vec![Call::LRange],
        Kind::Hash => FIELDS
            .iter()
            .map(|f| Call::HGet {
                field: f.to_string(),
            })
            .collect(),
        Kind::Register | Kind::Counter => vec![Call::Get],
    }
}

/// One client: one operation at a time, each to a random node, until `stop`.
pub struct Client {
    pub id: usize,
    targets: Arc<Targets>,
    /// Open connections by node index.
    conns: HashMap<usize, MultiplexedConnection>,
    op_timeout: Duration,
    rec: Arc<Recorder>,
}

impl Client {
    pub fn new(id: usize, targets: Arc<Targets>, op_timeout: Duration, rec: Arc<Recorder>) -> Self {
        Client {
            id,
            targets,
            conns: HashMap::new(),
            op_timeout,
            rec,
        }
    }

    /// Runs `call` on `key` at node `node` (0-based index, Redis port `port`) and records
    /// it.
    pub async fn run(
        &mut self,
        (node, port): (usize, u16),
        key: &str,
        call: Call,
        final_read: bool,
    ) -> Outcome {
        let invoke_us = self.rec.now_us();
        let outcome = self.execute(node, port, key, &call).await;
        let complete_us = match outcome {
            Outcome::Unknown(_) => None,
            _ => Some(self.rec.now_us()),
        };
        self.rec.push(Op {
            id: 0,
            client: self.id,
            node: node + 1,
            key: key.to_string(),
            call,
            invoke_us,
            complete_us,
            outcome: outcome.clone(),
            final_read,
        });
        outcome
    }

    /// Sends `parts` as one batch to node `node` and records each part as an operation with
    /// the batch's times.
    pub async fn run_batch(
        &mut self,
        (node, port): (usize, u16),
        kind: Batch,
        parts: Vec<(String, Call)>,
    ) {
        let invoke_us = self.rec.now_us();
        let op_timeout = self.op_timeout;
        let outcomes = match self.connection(node, port).await {
            None => vec![Outcome::Fail("no connection".into()); parts.len()],
            Some(conn) => {
                let pipe = batch::request(kind, &parts);
                let reply = tokio::time::timeout(
                    op_timeout + Duration::from_millis(500),
                    pipe.query_async::<Vec<redis::Value>>(conn),
                )
                .await;
                let fail = |o: Outcome| vec![o; parts.len()];
                match reply {
                    Ok(Ok(vals)) => batch::outcomes(kind, &parts, vals),
                    // One part refused says nothing certain of the others in a pipeline.
                    Ok(Err(e)) if kind != Batch::Pipeline && client::certainly_not_applied(&e) => {
                        fail(Outcome::Fail(e.to_string()))
                    }
                    Ok(Err(e)) => fail(Outcome::Unknown(e.to_string())),
                    Err(_) => fail(Outcome::Unknown("timeout".into())),
                }
            }
        };
        if outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Unknown(_) | Outcome::Fail(_)))
        {
            self.conns.remove(&node);
        }
        let complete_us = self.rec.now_us();
        for ((key, call), outcome) in parts.into_iter().zip(outcomes) {
            let complete_us = match outcome {
                Outcome::Unknown(_) => None,
                _ => Some(complete_us),
            };
            self.rec.push(Op {
                id: 0,
                client: self.id,
                node: node + 1,
                key,
                call,
                invoke_us,
                complete_us,
                outcome,
                final_read: false,
            });
        }
    }

    async fn connection(&mut self, node: usize, port: u16) -> Option<&mut MultiplexedConnection> {
        if !self.conns.contains_key(&node) {
            let c = client::connect(port, self.op_timeout).await?;
            self.conns.insert(node, c);
        }
        self.conns.get_mut(&node)
    }

    async fn execute(&mut self, node: usize, port: u16, key: &str, call: &Call) -> Outcome {
        let op_timeout = self.op_timeout;
        let Some(conn) = self.connection(node, port).await else {
            return Outcome::Fail("no connection".into());
        };
        let cmd = client::command(key, call);
        // The response timeout bounds the wait; this outer bound is a backstop.
        let reply = tokio::time::timeout(
            op_timeout + Duration::from_millis(500),
            cmd.query_async::<redis::Value>(conn),
        )
        .await;
        let outcome = match reply {
            Ok(Ok(v)) => client::outcome(call, v),
            Ok(Err(e)) if client::certainly_not_applied(&e) => Outcome::Fail(e.to_string()),
            Ok(Err(e)) => Outcome::Unknown(e.to_string()),
            Err(_) => Outcome::Unknown("timeout".into()),
        };
        if matches!(outcome, Outcome::Unknown(_) | Outcome::Fail(_)) {
            // The connection may be broken or out of step: start afresh.
            self.conns.remove(&node);
        }
        outcome
    }

    /// Random operations until `stop` is set.
    pub async fn random_ops(&mut self, seed: u64, keys: &[String], stop: &AtomicBool) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut seq = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let targets = self.targets.get();
            if targets.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let node = targets[rng.gen_range(0..targets.len())];
            if rng.gen_range(0..100) < 15 {
                let (kind, parts) = self.random_batch(&mut rng, keys, &mut seq);
                self.run_batch(node, kind, parts).await;
                continue;
            }
            let key = &keys[rng.gen_range(0..keys.len())];
            let call = self.random_call(&mut rng, key, &mut seq);
            let out = self.run(node, key, call, false).await;
            if matches!(out, Outcome::Fail(_)) {
                // Nothing listening there right now: do not spin.
                tokio::time::sleep(Duration::from_millis(rng.gen_range(20..60))).await;
            }
        }
    }

    /// One random single-key operation on `key`.
    fn random_call(&self, rng: &mut ChaCha8Rng, key: &str, seq: &mut u64) -> Call {
        let roll = rng.gen_range(0..100);
        match kind(key) {
            Kind::Counter if roll < 65 => Call::Incr,
            Kind::Counter => Call::Get,
            Kind::Register if roll < 45 => self.new_value(rng, seq),
            Kind::Register if roll < 85 => Call::Get,
            Kind::Register => Call::Del,
            Kind::Queue if roll < 55 => {
                *seq += 1;
                Call::RPush {
                    value: format!("c{}-{seq}", self.id),
                }
            }
            Kind::Queue => Call::LPop,
            Kind::Hash => {
                let field = FIELDS[rng.gen_range(0..FIELDS.len())].to_string();
                if roll < 45 {
                    *seq += 1;
                    let value = format!("c{}-{seq}", self.id);
                    Call::HSet { field, value }
                } else if roll < 85 {
                    Call::HGet { field }
                } else {
                    Call::HDel { field }
                }
            }
        }
    }

    /// A SET of a fresh value: one in twenty is large (64 KiB to 1 MiB).
    fn new_value(&self, rng: &mut ChaCha8Rng, seq: &mut u64) -> Call {
        *seq += 1;
        let mut value = format!("c{}-{seq}", self.id);
        if rng.gen_range(0..20) == 0 {
            value.push_str(&format!("/{}", rng.gen_range(64 << 10..1 << 20)));
        }
        Call::Set { value }
    }

    /// An MSET or MGET over two or three register keys, or a pipeline of two to four single
    /// operations on any keys.
    fn random_batch(
        &self,
        rng: &mut ChaCha8Rng,
        keys: &[String],
        seq: &mut u64,
    ) -> (Batch, Vec<(String, Call)>) {
        let mut regs: Vec<&String> = keys.iter().filter(|k| kind(k) == Kind::Register).collect();
        let kind = match rng.gen_range(0..3) {
            0 if regs.len() >= 2 => Batch::MSet,
            1 if regs.len() >= 2 => Batch::MGet,
            _ => Batch::Pipeline,
        };
        if kind == Batch::Pipeline {
            let n = rng.gen_range(2..=4);
            let parts = (0..n)
                .map(|_| {
                    let key = keys[rng.gen_range(0..keys.len())].clone();
                    let call = self.random_call(rng, &key, seq);
                    (key, call)
                })
                .collect();
            return (kind, parts);
        }
        // One tag (one slot), of a family with two keys at least.
        let first = regs[rng.gen_range(0..regs.len())].clone();
        regs.retain(|k| tag(k) == tag(&first));
        if regs.len() < 2 {
            return (Batch::Pipeline, vec![(first, Call::Get)]);
        }
        // Distinct keys: MSET with one key twice would record two writes at one instant.
        let n = rng.gen_range(2..=regs.len().min(3));
        let mut parts = Vec::with_capacity(n);
        for _ in 0..n {
            let key = regs.swap_remove(rng.gen_range(0..regs.len())).clone();
            let call = match kind {
                Batch::MSet => self.new_value(rng, seq),
                _ => Call::Get,
            };
            parts.push((key, call));
        }
        (kind, parts)
    }
}

/// After healing: reads every key from every node still in the cluster, retrying each
/// read until it succeeds or `deadline`. Returns the keys and nodes (ids) no read
/// succeeded on, each with the last read's outcome.
pub async fn final_reads(
    targets: Arc<Targets>,
    keys: &[String],
    rec: Arc<Recorder>,
    client_id: usize,
    deadline: Instant,
) -> Vec<(String, usize, String)> {
    let nodes = targets.get();
    let mut c = Client::new(client_id, targets, Duration::from_secs(3), rec);
    let mut missing = Vec::new();
    for key in keys {
        for call in final_calls(key) {
            for &(node, port) in &nodes {
                loop {
                    let out = c.run((node, port), key, call.clone(), true).await;
                    if matches!(out, Outcome::Value(_) | Outcome::List(_)) {
                        break;
                    }
                    if Instant::now() >= deadline {
                        missing.push((key.clone(), node + 1, format!("{out:?}")));
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_and_hashes_are_a_minority_of_keys() {
        assert_eq!(
            keys(6),
            ["reg0{t0}", "ctr0", "reg1{t1}", "ctr1", "reg2{t2}", "ctr2", "q0", "h0"]
        );
        let many = keys(16);
        let special = many
            .iter()
            .filter(|k| matches!(kind(k), Kind::Queue | Kind::Hash))
            .count();
        assert_eq!((many.len(), special), (22, 6));
        assert_eq!(final_calls("q0"), [Call::LRange]);
        assert_eq!(final_calls("h0").len(), FIELDS.len());
        assert_eq!(final_calls("reg0"), [Call::Get]);
    }
}
