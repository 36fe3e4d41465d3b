//! The queue model: a list key used as a queue, `RPUSH` of values pushed once only and
//! `LPOP`, read back after healing with `LRANGE 0 -1` on every node.
//!
//! Instead of a search, the checker tests properties every linearizable FIFO history has,
//! each sound with indeterminate operations (an indeterminate push may have happened at any
//! time after its invocation, or never; an indeterminate pop may have taken any value, or
//! none):
//! - every popped value was pushed (by an acknowledged or indeterminate `RPUSH` invoked
//!   before the pop returned), and no value is popped twice or both popped and left in a
//!   final list, nor twice in one list;
//! - values leave in push order: if push *a* completed before push *b* was invoked, no pop
//!   of *a* is invoked after a pop of *b* returned, *a* is not left in a final list while *b*
//!   was popped, and *a* is ahead of *b* in every final list;
//! - a pop that found the queue empty did so while no acknowledged value was certainly in
//!   it (one pushed before that pop began and popped after it ended, or never);
//! - no lost writes: for every final list, each acknowledged push that is neither popped nor
//!   in that list was taken by an indeterminate pop, each by a different one, invoked before
//!   the value had to be gone (before a later-pushed value was popped, an empty reply after
//!   its push, or the final read itself).
//!
//! These are necessary conditions, not a full linearizability check of the queue.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use crate::checker::{KeyReport, Model, Verdict};
use crate::history::{Call, Op, Outcome};

/// One contradiction found; `final_read` when it rests on a final read.
struct Problem {
    final_read: bool,
    text: String,
}

/// A queue key's operations, sorted by what they tell.
struct Queue<'a> {
    /// Pushes that may have happened, by value.
    pushes: HashMap<&'a str, &'a Op>,
    /// Pops that returned a value.
    pops: Vec<(&'a str, &'a Op)>,
    /// Pops that found the queue empty.
    empties: Vec<&'a Op>,
    /// Invocation times of indeterminate pops, ascending.
    unknown_pops: Vec<u64>,
    /// Final reads and the list each returned.
    finals: Vec<(&'a Op, &'a [String])>,
}

/// Checks the queue key `key` (every op in `ops` is on it).
pub fn check_queue(key: String, ops: &[&Op]) -> KeyReport {
    let live: Vec<&Op> = ops
        .iter()
        .copied()
        .filter(|o| !matches!(o.outcome, Outcome::Fail(_)))
        .collect();
    let ops_checked = live.len();
    let verdict = match Queue::build(&live) {
        Err(why) => Verdict::Inconclusive(why),
        Ok(q) => {
            let problems = q.problems();
            if problems.is_empty() {
                Verdict::Linearizable
            } else {
                let lost_write = problems.iter().all(|p| p.final_read);
                Verdict::Violation {
                    lost_write,
                    counter_example: render(&key, &problems),
                }
            }
        }
    };
    KeyReport {
        key,
        model: Model::Queue,
        ops_checked,
        verdict,
    }
}

fn render(key: &str, problems: &[Problem]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "key {key:?} (Queue): {} contradiction(s) with a FIFO queue",
        problems.len()
    );
    for p in problems.iter().take(10) {
        let _ = writeln!(s, "  - {}", p.text.trim_end().replace('\n', "\n    "));
    }
    if problems.len() > 10 {
        let _ = writeln!(s, "  ... and {} more", problems.len() - 10);
    }
    s
}

fn done(op: &Op) -> u64 {
    op.complete_us.unwrap_or(u64::MAX)
}

impl<'a> Queue<'a> {
    fn build(ops: &[&'a Op]) -> Result<Queue<'a>, String> {
        let mut q = Queue {
            pushes: HashMap::new(),
            pops: Vec::new(),
            empties: Vec::new(),
            unknown_pops: Vec::new(),
            finals: Vec::new(),
        };
        for &op in ops {
            match (&op.call, &op.outcome) {
                (Call::RPush { value }, _) => {
                    if q.pushes.insert(value.as_str(), op).is_some() {
                        return Err(format!("value {value:?} pushed twice"));
                    }
                }
                (Call::LPop, Outcome::Value(Some(v))) => q.pops.push((v.as_str(), op)),
                (Call::LPop, Outcome::Value(None)) => q.empties.push(op),
                (Call::LPop, Outcome::Unknown(_)) => q.unknown_pops.push(op.invoke_us),
                (Call::LRange, Outcome::List(vs)) if op.final_read => q.finals.push((op, vs)),
                (Call::LRange, _) => {}
                (Call::LPop, other) => return Err(format!("LPOP answered {other:?}")),
                _ => return Err("key mixes list commands with others".into()),
            }
        }
        q.unknown_pops.sort_unstable();
        Ok(q)
    }

    fn push(&self, v: &str) -> Option<&'a Op> {
        self.pushes.get(v).copied()
    }

    /// Completion of the acknowledged push of `v`.
    fn acked(&self, v: &str) -> Option<u64> {
        self.push(v).and_then(|p| p.complete_us)
    }

    fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let popped = self.check_pops(&mut out);
        self.check_pop_order(&mut out);
        self.check_empties(&mut out);
        for &(read, list) in &self.finals {
            self.check_final(read, list, &popped, &mut out);
            self.check_lost(read, list, &popped, &mut out);
        }
        out
    }

    /// Every popped value was pushed before, and popped once; returns the popped values.
    fn check_pops(&self, out: &mut Vec<Problem>) -> HashMap<&'a str, &'a Op> {
        let mut popped: HashMap<&str, &Op> = HashMap::new();
        for &(v, pop) in &self.pops {
            match self.push(v) {
                None => out.push(problem(false, "popped a value no RPUSH pushed", &[pop])),
                Some(push) if done(pop) < push.invoke_us => out.push(problem(
                    false,
                    "popped a value before its RPUSH was sent",
                    &[push, pop],
                )),
                Some(_) => {}
            }
            if let Some(first) = popped.insert(v, pop) {
                out.push(problem(false, "value popped twice", &[first, pop]));
            }
        }
        popped
    }

    /// A value pushed before another is not popped after it.
    fn check_pop_order(&self, out: &mut Vec<Problem>) {
        // Pops of pushed values by completion, with the latest push invocation so far.
        let mut by_done: Vec<(u64, &Op, &Op)> = self
            .pops
            .iter()
            .filter_map(|&(v, pop)| self.push(v).map(|push| (done(pop), pop, push)))
            .collect();
        by_done.sort_by_key(|e| e.0);
        let mut latest: Vec<(&Op, &Op)> = Vec::with_capacity(by_done.len());
        for &(_, pop, push) in &by_done {
            let keep = latest
                .last()
                .filter(|(_, best)| best.invoke_us >= push.invoke_us)
                .copied();
            latest.push(keep.unwrap_or((pop, push)));
        }
        for &(v, pop_a) in &self.pops {
            let Some((push_a, acked_a)) = self.push(v).zip(self.acked(v)) else {
                continue;
            };
            let k = by_done.partition_point(|e| e.0 < pop_a.invoke_us);
            let Some(&(pop_b, push_b)) = k.checked_sub(1).map(|i| &latest[i]) else {
                continue;
            };
            if push_b.invoke_us > acked_a {
                out.push(problem(
                    false,
                    "popped out of push order (the first push completed before the second was sent, the second value was popped before the first)",
                    &[push_a, push_b, pop_b, pop_a],
                ));
            }
        }
    }

    /// An empty reply while an acknowledged value was certainly queued.
    fn check_empties(&self, out: &mut Vec<Problem>) {
        // Pops of acknowledged values by push completion, with the latest pop invocation.
        let mut by_push: Vec<(u64, &Op, &Op)> = self
            .pops
            .iter()
            .filter_map(|&(v, pop)| Some((self.acked(v)?, self.push(v)?, pop)))
            .collect();
        by_push.sort_by_key(|e| e.0);
        let mut latest: Vec<(&Op, &Op)> = Vec::with_capacity(by_push.len());
        for &(_, push, pop) in &by_push {
            let keep = latest
                .last()
                .filter(|(_, best)| best.invoke_us >= pop.invoke_us)
                .copied();
            latest.push(keep.unwrap_or((push, pop)));
        }
        let left = self.oldest_left();
        for &e in &self.empties {
            let k = by_push.partition_point(|x| x.0 < e.invoke_us);
            if let Some(&(push, pop)) = k.checked_sub(1).map(|i| &latest[i]) {
                if pop.invoke_us > done(e) {
                    out.push(problem(
                        false,
                        "LPOP found the queue empty while an acknowledged value was in it",
                        &[push, e, pop],
                    ));
                }
            }
            if let Some((push, read)) = left.filter(|(p, _)| done(p) < e.invoke_us) {
                out.push(problem(
                    true,
                    "LPOP found the queue empty, yet a value pushed before it is still there",
                    &[push, e, read],
                ));
            }
        }
    }

    /// Of the acknowledged values left in final lists, the one pushed earliest, with the read.
    fn oldest_left(&self) -> Option<(&'a Op, &'a Op)> {
        self.finals
            .iter()
            .flat_map(|&(read, list)| list.iter().map(move |v| (v, read)))
            .filter_map(|(v, read)| Some((self.acked(v)?, self.push(v)?, read)))
            .min_by_key(|e| e.0)
            .map(|(_, push, read)| (push, read))
    }

    /// One final list: values pushed, not popped, once, in push order, and nothing pushed
    /// after one of them popped.
    fn check_final(
        &self,
        read: &'a Op,
        list: &[String],
        popped: &HashMap<&str, &'a Op>,
        out: &mut Vec<Problem>,
    ) {
        let mut seen = HashSet::new();
        let mut latest: Option<&Op> = None;
        for v in list {
            if !seen.insert(v.as_str()) {
                out.push(problem(true, &format!("{v:?} twice in the list"), &[read]));
            }
            let Some(push) = self.push(v) else {
                out.push(problem(
                    true,
                    &format!("{v:?} listed, never pushed"),
                    &[read],
                ));
                continue;
            };
            if let Some(&pop) = popped.get(v.as_str()) {
                out.push(problem(
                    true,
                    "value popped, yet still listed",
                    &[push, pop, read],
                ));
            }
            if let Some(before) = latest.filter(|b| b.invoke_us > done(push)) {
                out.push(problem(
                    true,
                    "listed out of push order (the first push completed before the second was sent, yet comes after it)",
                    &[push, before, read],
                ));
            }
            if latest.is_none_or(|b| b.invoke_us < push.invoke_us) {
                latest = Some(push);
            }
        }
        let oldest = list
            .iter()
            .filter_map(|v| Some((self.acked(v)?, self.push(v)?)))
            .min_by_key(|e| e.0);
        let newest_popped = self
            .pops
            .iter()
            .filter_map(|&(v, pop)| Some((self.push(v)?, pop)))
            .max_by_key(|(push, _)| push.invoke_us);
        if let (Some((acked, push_a)), Some((push_b, pop_b))) = (oldest, newest_popped) {
            if acked < push_b.invoke_us {
                out.push(problem(
                    true,
                    "a later-pushed value was popped while an earlier one is still listed",
                    &[push_a, push_b, pop_b, read],
                ));
            }
        }
    }

    /// No lost writes: acknowledged values missing from `list` and never popped are matched
    /// to distinct indeterminate pops invoked early enough.
    fn check_lost(
        &self,
        read: &'a Op,
        list: &[String],
        popped: &HashMap<&str, &'a Op>,
        out: &mut Vec<Problem>,
    ) {
        let listed: HashSet<&str> = list.iter().map(String::as_str).collect();
        let deadline = Deadlines::new(self);
        let mut missing: Vec<(u64, &Op)> = self
            .pushes
            .iter()
            .filter(|(v, _)| !listed.contains(*v) && !popped.contains_key(*v))
            .filter_map(|(_, &push)| {
                let acked = push.complete_us?;
                Some((deadline.of(acked).min(done(read)), push))
            })
            .collect();
        missing.sort_by_key(|&(t, push)| (t, push.id));
        for (i, &(by, push)) in missing.iter().enumerate() {
            let takers = self.unknown_pops.partition_point(|&t| t <= by);
            if takers <= i {
                let text = format!(
                    "lost write: acknowledged, neither popped nor listed; {} values like it had to be gone by {:.3} ms, only {takers} indeterminate LPOPs were sent by then",
                    i + 1,
                    by as f64 / 1000.0
                );
                out.push(problem(true, &text, &[push, read]));
                return;
            }
        }
    }
}

/// When a value acknowledged at a given time must have left the queue at the latest.
struct Deadlines {
    /// (push invocation of a popped value, earliest completion of a pop of a value pushed
    /// at or after it), ascending by invocation.
    pops: Vec<(u64, u64)>,
    /// (invocation of an empty reply, earliest completion of one invoked at or after it).
    empties: Vec<(u64, u64)>,
}

impl Deadlines {
    fn new(q: &Queue) -> Deadlines {
        let pops = q
            .pops
            .iter()
            .filter_map(|&(v, pop)| Some((q.push(v)?.invoke_us, done(pop))))
            .collect();
        let empties = q.empties.iter().map(|e| (e.invoke_us, done(e))).collect();
        Deadlines {
            pops: suffix_min(pops),
            empties: suffix_min(empties),
        }
    }

    /// The deadline of a value whose push completed at `acked`: before a value pushed later
    /// was popped, and before the queue was found empty.
    fn of(&self, acked: u64) -> u64 {
        let first = |v: &[(u64, u64)]| {
            let i = v.partition_point(|e| e.0 <= acked);
            v.get(i).map_or(u64::MAX, |e| e.1)
        };
        first(&self.pops).min(first(&self.empties))
    }
}

fn suffix_min(mut v: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    v.sort_unstable();
    for i in (0..v.len().saturating_sub(1)).rev() {
        v[i].1 = v[i].1.min(v[i + 1].1);
    }
    v
}

fn problem(final_read: bool, what: &str, ops: &[&Op]) -> Problem {
    let mut text = format!("{what}:\n");
    for op in ops {
        let _ = writeln!(text, "{}", op.describe());
    }
    Problem { final_read, text }
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
