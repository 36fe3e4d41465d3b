//! The client workload: concurrent clients issuing SET/GET/DEL on register keys and
//! INCR/GET on counter keys, each operation sent to a random node, every operation recorded
//! with its invocation and completion time; plus the final reads after healing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use redis::aio::MultiplexedConnection;

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

/// The keys of a run: even positions are registers (`reg<n>`), odd ones counters (`ctr<n>`).
pub fn keys(n: usize) -> Vec<String> {
    (0..n.max(2))
        .map(|i| {
            if i % 2 == 0 {
                format!("reg{}", i / 2)
            } else {
                format!("ctr{}", i / 2)
            }
        })
        .collect()
}

fn is_counter(key: &str) -> bool {
    key.starts_with("ctr")
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

    async fn execute(&mut self, node: usize, port: u16, key: &str, call: &Call) -> Outcome {
        if !self.conns.contains_key(&node) {
            match client::connect(port, self.op_timeout).await {
                Some(c) => self.conns.insert(node, c),
                None => return Outcome::Fail("no connection".into()),
            };
        }
        let Some(conn) = self.conns.get_mut(&node) else {
            return Outcome::Fail("no connection".into());
        };
        let cmd = client::command(key, call);
        // The response timeout bounds the wait; this outer bound is a backstop.
        let reply = tokio::time::timeout(
            self.op_timeout + Duration::from_millis(500),
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
            let key = &keys[rng.gen_range(0..keys.len())];
            let roll = rng.gen_range(0..100);
            let call = if is_counter(key) {
                if roll < 65 {
                    Call::Incr
                } else {
                    Call::Get
                }
            } else if roll < 45 {
                seq += 1;
                Call::Set {
                    value: format!("c{}-{seq}", self.id),
                }
            } else if roll < 85 {
                Call::Get
            } else {
                Call::Del
            };
            let out = self.run(node, key, call, false).await;
            if matches!(out, Outcome::Fail(_)) {
                // Nothing listening there right now: do not spin.
                tokio::time::sleep(Duration::from_millis(rng.gen_range(20..60))).await;
            }
        }
    }
}

/// After healing: reads every key from every node still in the cluster, retrying each
/// read until it succeeds or `deadline`. Returns the keys and nodes (ids) no read
/// succeeded on.
pub async fn final_reads(
    targets: Arc<Targets>,
    keys: &[String],
    rec: Arc<Recorder>,
    client_id: usize,
    deadline: Instant,
) -> Vec<(String, usize)> {
    let nodes = targets.get();
    let mut c = Client::new(client_id, targets, Duration::from_secs(3), rec);
    let mut missing = Vec::new();
    for key in keys {
        for &(node, port) in &nodes {
            loop {
                let out = c.run((node, port), key, Call::Get, true).await;
                if matches!(out, Outcome::Value(_)) {
                    break;
                }
                if Instant::now() >= deadline {
                    missing.push((key.clone(), node + 1));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    missing
}
