//! Linearizability checker: a Wing-Gong / Lowe search with memoization of (linearized set,
//! state), run separately for every key (P-compositionality, as in porcupine).
//!
//! Two models: a register (`SET`/`GET`/`DEL`; `GET` of a missing key is nil; `DEL` returns
//! how many keys it removed) and a counter (`INCR`/`GET`; a missing counter reads as nil and
//! counts as 0). A key's model follows from its operations: any `INCR` makes it a counter.
//! Every field of a hash key is checked as a register of its own (see [`crate::hash`]), and
//! list keys used as queues get the property checks of [`crate::queue`] instead of a search.
//!
//! Indeterminate operations (error or timeout) may take effect at any time after their
//! invocation, or never: they get an infinite completion time and their output is not
//! checked. Indeterminate reads change nothing and are dropped. Two reductions keep the
//! search small without changing its answer:
//! - an indeterminate `SET` whose value nobody ever read, on a key where no later `DEL`
//!   returned 1, is dropped (placing it last, after every other operation, is always
//!   allowed and observes the same thing);
//! - indeterminate `INCR`s (and indeterminate `DEL`s) are interchangeable, so at any point
//!   of the search only the earliest-invoked pending one is tried.
//!
//! A failure reports the longest linearizable prefix found and the operations that could
//! not be placed after it.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use crate::history::{Call, Op, Outcome};

/// Which sequential specification a key follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    Register,
    Counter,
    /// A list under `RPUSH`/`LPOP` ([`crate::queue`]).
    Queue,
}

/// Result of checking one key.
#[derive(Debug, Clone)]
pub enum Verdict {
    Linearizable,
    /// Not linearizable; `lost_write` when the history without the final reads is
    /// linearizable (the value left after healing contradicts acknowledged writes).
    Violation {
        lost_write: bool,
        counter_example: String,
    },
    /// The search hit its budget or the history is malformed.
    Inconclusive(String),
}

/// Verdict of one key.
#[derive(Debug, Clone)]
pub struct KeyReport {
    pub key: String,
    pub model: Model,
    /// Operations given to the search (after dropping indeterminate reads).
    pub ops_checked: usize,
    pub verdict: Verdict,
}

/// Verdicts of a whole history.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub keys: Vec<KeyReport>,
}

impl Report {
    pub fn ops_checked(&self) -> usize {
        self.keys.iter().map(|k| k.ops_checked).sum()
    }

    pub fn violations(&self) -> impl Iterator<Item = &KeyReport> {
        self.keys
            .iter()
            .filter(|k| matches!(k.verdict, Verdict::Violation { .. }))
    }

    /// Keys whose final reads contradict acknowledged writes.
    pub fn lost_writes(&self) -> usize {
        self.keys
            .iter()
            .filter(|k| {
                matches!(
                    k.verdict,
                    Verdict::Violation {
                        lost_write: true,
                        ..
                    }
                )
            })
            .count()
    }

    pub fn inconclusive(&self) -> impl Iterator<Item = &KeyReport> {
        self.keys
            .iter()
            .filter(|k| matches!(k.verdict, Verdict::Inconclusive(_)))
    }

    pub fn ok(&self) -> bool {
        self.keys
            .iter()
            .all(|k| matches!(k.verdict, Verdict::Linearizable))
    }
}

/// Most search steps spent on one key before giving up as inconclusive.
pub const DEFAULT_BUDGET: u64 = 20_000_000;

/// Checks every key of `ops` independently.
pub fn check(ops: &[Op]) -> Report {
    check_with_budget(ops, DEFAULT_BUDGET)
}

/// [`check`] with an explicit per-key step budget.
pub fn check_with_budget(ops: &[Op], budget: u64) -> Report {
    let fields: Vec<Op> = ops.iter().filter_map(crate::hash::as_register).collect();
    let plain = ops.iter().filter(|o| !is_hash(o));
    let mut by_key: Vec<(String, Vec<&Op>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for op in plain.chain(&fields) {
        let i = *index.entry(op.key.as_str()).or_insert_with(|| {
            by_key.push((op.key.clone(), Vec::new()));
            by_key.len() - 1
        });
        by_key[i].1.push(op);
    }
    let keys = by_key
        .into_iter()
        .map(|(key, ops)| check_key(key, &ops, budget))
        .collect();
    Report { keys }
}

fn is_hash(op: &Op) -> bool {
    matches!(
        op.call,
        Call::HSet { .. } | Call::HGet { .. } | Call::HDel { .. }
    )
}

fn is_list(op: &Op) -> bool {
    matches!(op.call, Call::RPush { .. } | Call::LPop | Call::LRange)
}

fn check_key(key: String, ops: &[&Op], budget: u64) -> KeyReport {
    if ops.iter().any(|o| is_list(o)) {
        return crate::queue::check_queue(key, ops);
    }
    let model = if ops.iter().any(|o| o.call == Call::Incr) {
        Model::Counter
    } else {
        Model::Register
    };
    let mixed = model == Model::Counter
        && ops
            .iter()
            .any(|o| matches!(o.call, Call::Set { .. } | Call::Del));
    if mixed {
        return KeyReport {
            key,
            model,
            ops_checked: 0,
            verdict: Verdict::Inconclusive("key mixes INCR with SET/DEL".into()),
        };
    }
    let kept = reduce(model, ops);
    let ops_checked = kept.len();
    let verdict = match search(model, &kept, budget) {
        Search::Ok => Verdict::Linearizable,
        Search::Budget => Verdict::Inconclusive(format!(
            "search budget of {budget} steps exhausted on {ops_checked} operations"
        )),
        Search::Fail(failure) => {
            let without_final: Vec<&Op> = kept.iter().copied().filter(|o| !o.final_read).collect();
            let lost_write = without_final.len() < kept.len()
                && matches!(search(model, &without_final, budget), Search::Ok);
            Verdict::Violation {
                lost_write,
                counter_example: failure.render(&key, model, &kept, lost_write),
            }
        }
    };
    KeyReport {
        key,
        model,
        ops_checked,
        verdict,
    }
}

/// Drops operations that cannot change the answer (see the module comment).
fn reduce<'a>(model: Model, ops: &[&'a Op]) -> Vec<&'a Op> {
    let read: HashSet<&str> = ops
        .iter()
        .filter_map(|o| match &o.outcome {
            Outcome::Value(Some(v)) => Some(v.as_str()),
            _ => None,
        })
        .collect();
    // Latest completion of a DEL that found the key: an unknown SET invoked after it
    // cannot be what that DEL removed.
    let last_del_hit = ops
        .iter()
        .filter(|o| o.call == Call::Del && o.outcome == Outcome::Int(1))
        .filter_map(|o| o.complete_us)
        .max();
    ops.iter()
        .copied()
        .filter(|o| {
            if matches!(o.outcome, Outcome::Fail(_)) {
                return false;
            }
            if o.call == Call::Get && o.indeterminate() {
                return false;
            }
            if model == Model::Register && o.indeterminate() {
                if let Call::Set { value } = &o.call {
                    let unread = !read.contains(value.as_str());
                    let no_del_after = last_del_hit.is_none_or(|t| t < o.invoke_us);
                    return !(unread && no_del_after);
                }
            }
            true
        })
        .collect()
}

/// One operation compiled for the search. States are `i64`: a register holds -1 (missing)
/// or the index of its value; a counter holds its count (0 = missing).
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Register write of a value index.
    Set(i64),
    /// Read expecting this state.
    Read(i64),
    /// `DEL`, with the count it returned if known.
    Del(Option<i64>),
    /// `INCR`, with the value it returned if known.
    Incr(Option<i64>),
    /// An output no model state can produce.
    Impossible,
}

const MISSING: i64 = -1;

/// Compiles `ops`; also returns the register values by index.
fn compile<'a>(model: Model, ops: &[&'a Op]) -> (Vec<Step>, Vec<&'a str>) {
    let mut index: HashMap<&'a str, i64> = HashMap::new();
    let mut values: Vec<&'a str> = Vec::new();
    let mut intern = |v: &'a str| {
        *index.entry(v).or_insert_with(|| {
            values.push(v);
            values.len() as i64 - 1
        })
    };
    let steps = ops
        .iter()
        .map(|o| {
            let unknown = o.indeterminate();
            match (model, &o.call, &o.outcome) {
                (Model::Register, Call::Set { value }, Outcome::Ok | Outcome::Unknown(_)) => {
                    Step::Set(intern(value))
                }
                (Model::Register, Call::Get, Outcome::Value(None)) => Step::Read(MISSING),
                (Model::Register, Call::Get, Outcome::Value(Some(v))) => Step::Read(intern(v)),
                (Model::Register, Call::Del, Outcome::Int(n)) => Step::Del(Some(*n)),
                (Model::Register, Call::Del, _) if unknown => Step::Del(None),
                (Model::Counter, Call::Incr, Outcome::Int(n)) => Step::Incr(Some(*n)),
                (Model::Counter, Call::Incr, _) if unknown => Step::Incr(None),
                (Model::Counter, Call::Get, Outcome::Value(None)) => Step::Read(0),
                (Model::Counter, Call::Get, Outcome::Value(Some(v))) => {
                    v.parse().map(Step::Read).unwrap_or(Step::Impossible)
                }
                _ => Step::Impossible,
            }
        })
        .collect();
    (steps, values)
}

fn initial(model: Model) -> i64 {
    match model {
        Model::Register | Model::Queue => MISSING,
        Model::Counter => 0,
    }
}

/// Applies `step` to `state`; `None` if the recorded output contradicts the state.
fn apply(model: Model, state: i64, step: Step) -> Option<i64> {
    match step {
        Step::Set(v) => Some(v),
        Step::Read(v) => (v == state).then_some(state),
        Step::Del(out) => {
            let removed = i64::from(state != MISSING);
            out.is_none_or(|n| n == removed).then_some(MISSING)
        }
        Step::Incr(out) => {
            let next = match model {
                Model::Counter => state.checked_add(1)?,
                Model::Register | Model::Queue => return None,
            };
            out.is_none_or(|n| n == next).then_some(next)
        }
        Step::Impossible => None,
    }
}

/// Interchangeable indeterminate operations: only the earliest pending one of a class is
/// tried at each point (bit 0: indeterminate INCR, bit 1: indeterminate DEL).
fn symmetry_class(step: Step) -> u8 {
    match step {
        Step::Incr(None) => 1,
        Step::Del(None) => 2,
        _ => 0,
    }
}

/// Where the search ended up when it failed.
struct Failure {
    /// Indices (into the key's ops) of the longest linearizable prefix, in order.
    prefix: Vec<usize>,
    /// State after that prefix, readable.
    state: String,
    /// Pending operations that could not be placed next.
    candidates: Vec<usize>,
    /// The operation that had to be placed (it completed) but could not be.
    blocked: Option<usize>,
}

enum Search {
    Ok,
    Fail(Failure),
    Budget,
}

const NIL: usize = usize::MAX;

fn search(model: Model, ops: &[&Op], budget: u64) -> Search {
    let n = ops.len();
    if n == 0 {
        return Search::Ok;
    }
    let (steps, values) = compile(model, ops);
    let show = |state: i64| match model {
        Model::Register if state == MISSING => "(nil)".to_string(),
        Model::Register => values
            .get(state as usize)
            .map_or_else(|| format!("value #{state}"), |v| format!("{v:?}")),
        Model::Counter | Model::Queue => state.to_string(),
    };
    // Events: a call and a return per op; returns of indeterminate ops never happen.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, o) in ops.iter().enumerate() {
        events.push((o.invoke_us, false, i));
        events.push((o.complete_us.unwrap_or(u64::MAX), true, i));
    }
    // Calls before returns at equal times: treat touching operations as concurrent.
    events.sort_by_key(|&(t, is_ret, i)| (t, is_ret, i));
    // Doubly linked list over nodes 1..=2n; node 0 is the head.
    let len = 2 * n + 1;
    let mut next = vec![NIL; len];
    let mut prev = vec![NIL; len];
    let mut op_of = vec![0usize; len];
    let mut is_call = vec![false; len];
    let mut partner = vec![0usize; len];
    let mut call_node = vec![0usize; n];
    for (k, &(_, is_ret, i)) in events.iter().enumerate() {
        let node = k + 1;
        op_of[node] = i;
        is_call[node] = !is_ret;
        if is_ret {
            partner[call_node[i]] = node;
        } else {
            call_node[i] = node;
        }
        prev[node] = node - 1;
        next[node - 1] = node;
    }
    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, x: usize| {
        next[prev[x]] = next[x];
        if next[x] != NIL {
            prev[next[x]] = prev[x];
        }
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, x: usize| {
        next[prev[x]] = x;
        if next[x] != NIL {
            prev[next[x]] = x;
        }
    };

    let words = n.div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, i64)> = HashSet::new();
    // (call node, state before it, symmetry classes already tried at its level)
    let mut stack: Vec<(usize, i64, u8)> = Vec::new();
    let mut state = initial(model);
    let mut entry = next[0];
    let mut seen: u8 = 0;
    let mut best: Option<Failure> = None;
    let mut spent = 0u64;

    let snapshot = |stack: &[(usize, i64, u8)], state: i64, next: &[usize]| {
        let mut candidates = Vec::new();
        let mut blocked = None;
        let mut e = next[0];
        while e != NIL {
            if is_call[e] {
                candidates.push(op_of[e]);
            } else {
                blocked = Some(op_of[e]);
                break;
            }
            e = next[e];
        }
        Failure {
            prefix: stack.iter().map(|&(c, _, _)| op_of[c]).collect(),
            state: show(state),
            candidates,
            blocked,
        }
    };

    while next[0] != NIL {
        spent += 1;
        if spent > budget {
            return Search::Budget;
        }
        if entry == NIL {
            // Unreachable with well-formed events (every call precedes its return).
            break;
        }
        if is_call[entry] {
            let i = op_of[entry];
            let class = symmetry_class(steps[i]);
            if class != 0 && seen & class != 0 {
                entry = next[entry];
                continue;
            }
            let mut placed = false;
            if let Some(ns) = apply(model, state, steps[i]) {
                linearized[i / 64] |= 1 << (i % 64);
                if cache.insert((linearized.clone(), ns)) {
                    stack.push((entry, state, seen | class));
                    state = ns;
                    unlink(&mut next, &mut prev, entry);
                    unlink(&mut next, &mut prev, partner[entry]);
                    entry = next[0];
                    seen = 0;
                    placed = true;
                    if best.as_ref().is_none_or(|b| b.prefix.len() < stack.len()) {
                        best = Some(snapshot(&stack, state, &next));
                    }
                } else {
                    linearized[i / 64] &= !(1 << (i % 64));
                }
            }
            if !placed {
                seen |= class;
                entry = next[entry];
            }
        } else {
            // A return of an op not yet placed: backtrack.
            let Some((call, before, tried)) = stack.pop() else {
                let fail = best.unwrap_or_else(|| snapshot(&[], state, &next));
                return Search::Fail(fail);
            };
            let i = op_of[call];
            linearized[i / 64] &= !(1 << (i % 64));
            state = before;
            relink(&mut next, &mut prev, partner[call]);
            relink(&mut next, &mut prev, call);
            seen = tried;
            entry = next[call];
        }
    }
    Search::Ok
}

impl Failure {
    fn render(&self, key: &str, model: Model, ops: &[&Op], lost_write: bool) -> String {
        let mut s = String::new();
        let what = if lost_write {
            "final value after healing contradicts the acknowledged history (lost write)"
        } else {
            "not linearizable"
        };
        let _ = writeln!(s, "key {key:?} ({model:?}): {what}");
        let state = &self.state;
        let _ = writeln!(
            s,
            "longest linearizable prefix: {} of {} ops, ending in state {state}; its last ops:",
            self.prefix.len(),
            ops.len()
        );
        let from = self.prefix.len().saturating_sub(6);
        for &i in &self.prefix[from..] {
            let _ = writeln!(s, "    {}", ops[i].describe());
        }
        let _ = writeln!(
            s,
            "no pending op can be linearized next; pending ops invoked before the blocking one returned:"
        );
        let mut pending = self.candidates.clone();
        pending.sort_by_key(|&i| ops[i].invoke_us);
        for &i in pending.iter().take(20) {
            let mark = if Some(i) == self.blocked {
                "  <== completed here, yet fits nowhere"
            } else {
                ""
            };
            let _ = writeln!(s, "    {}{mark}", ops[i].describe());
        }
        if pending.len() > 20 {
            let _ = writeln!(s, "    ... and {} more", pending.len() - 20);
        }
        s
    }
}

#[cfg(test)]
#[path = "checker_tests.rs"]
mod tests;
