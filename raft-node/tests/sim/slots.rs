//! The simulation's slot model, after the real store's (`store/src/claims.rs`, README
//! "Slot migration"): [`SLOTS`] simulated hash slots, split among the groups at the start
//! ([`initial_owned`]); a client write names its slot, and a group applies a write of a
//! slot it does not own as a refusal (certainly not applied, the real `-TRYAGAIN`); a slot
//! moves by its source applying `REMOVE(slot, fence)` (from then on it refuses the slot)
//! and then, once that committed, its target applying `ADD(slot, fence)` (from then on it
//! serves it). A command fenced below the group's last applied fence is stale and changes
//! nothing.
//!
//! [`Claims`] is the node-local registry of which hosted group claims each slot, as the
//! real store's: a replica claims its slots once it holds state (its first apply, a
//! restore, a restart with applied state), takes a slot by an ADD and releases it by a
//! REMOVE; an ADD waits ([`raft_node::StateMachine::must_wait`]) while another local group
//! still claims the slot and has not applied a later migration. (A replica that never
//! applied anything claims nothing: in the simulation a node may be a member of one group
//! and not of another, whose empty replica would otherwise block it for good.)

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Simulated hash slots.
pub const SLOTS: u16 = 12;

/// One decoded state machine command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmd {
    /// Client write number `n` of `slot` (`None`: the slotless commands of the runs
    /// without the slot model, always served).
    Write { n: u64, slot: Option<u16> },
    /// The source gives the slot up (migration `fence`).
    Remove { slot: u16, fence: u64 },
    /// The target takes the slot over (migration `fence`).
    Add { slot: u16, fence: u64 },
}

impl Cmd {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Cmd::Write { n, slot: None } => format!("c{n}"),
            Cmd::Write { n, slot: Some(s) } => format!("c{n}:{s}"),
            Cmd::Remove { slot, fence } => format!("R{slot}:{fence}"),
            Cmd::Add { slot, fence } => format!("A{slot}:{fence}"),
        }
        .into_bytes()
    }

    pub fn decode(c: &[u8]) -> Option<Cmd> {
        let s = std::str::from_utf8(c).ok()?;
        let (tag, rest) = s.split_at_checked(1)?;
        let (a, b) = match rest.split_once(':') {
            Some((a, b)) => (a, Some(b)),
            None => (rest, None),
        };
        let pair = || -> Option<(u16, u64)> { Some((a.parse().ok()?, b?.parse().ok()?)) };
        match tag {
            "c" => Some(Cmd::Write {
                n: a.parse().ok()?,
                slot: match b {
                    Some(b) => Some(b.parse().ok()?),
                    None => None,
                },
            }),
            "R" => pair().map(|(slot, fence)| Cmd::Remove { slot, fence }),
            "A" => pair().map(|(slot, fence)| Cmd::Add { slot, fence }),
            _ => None,
        }
    }
}

/// True when `c` is an ADD (the only command that may wait for another group).
pub fn is_add(c: &[u8]) -> bool {
    c.first() == Some(&b'A')
}

/// The slots `group` owns at the start (fence 0): slot `s` goes to `groups[s % len]`; no
/// slot model: none.
pub fn initial_owned(groups: &[u64], group: u64, model: bool) -> BTreeMap<u16, u64> {
    if !model {
        return BTreeMap::new();
    }
    (0..SLOTS)
        .filter(|s| groups.get(usize::from(*s) % groups.len()) == Some(&group))
        .map(|s| (s, 0))
        .collect()
}

#[derive(Debug, Default)]
struct Registry {
    /// Slot → the local group claiming it.
    owner: BTreeMap<u16, u64>,
    /// Group → the fence of its last applied slot command.
    fences: BTreeMap<u64, u64>,
}

/// The node-local registry of slot claims (see the module doc), shared by the node's
/// state machines.
#[derive(Debug, Default, Clone)]
pub struct Claims(Arc<Mutex<Registry>>);

impl Claims {
    fn with<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// `group` (at `fence`) claims exactly `slots` (a replica holding state, or restored).
    pub fn claim_all(&self, group: u64, slots: impl Iterator<Item = u16>, fence: u64) {
        self.with(|r| {
            r.owner.retain(|_, g| *g != group);
            for s in slots {
                r.owner.insert(s, group);
            }
            r.fences.insert(group, fence);
        })
    }

    /// `group` took `slot` by the ADD of migration `fence`.
    pub fn take(&self, group: u64, slot: u16, fence: u64) {
        self.with(|r| {
            r.owner.insert(slot, group);
            r.fences.insert(group, fence);
        })
    }

    /// `group` gave `slot` up by the REMOVE of migration `fence` (a slot another group
    /// claims stays theirs).
    pub fn release(&self, group: u64, slot: u16, fence: u64) {
        self.with(|r| {
            if r.owner.get(&slot) == Some(&group) {
                r.owner.remove(&slot);
            }
            r.fences.insert(group, fence);
        })
    }

    /// The node stops hosting `group`.
    pub fn forget(&self, group: u64) {
        self.with(|r| {
            r.owner.retain(|_, g| *g != group);
            r.fences.remove(&group);
        })
    }

    /// True when another group than `group` claims `slot` and has not applied a later
    /// migration than `fence`: the ADD must wait.
    pub fn must_wait(&self, group: u64, slot: u16, fence: u64) -> bool {
        self.with(|r| match r.owner.get(&slot) {
            Some(&g) if g != group => r.fences.get(&g).is_none_or(|&f| f <= fence),
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_and_claims() {
        for c in [
            Cmd::Write { n: 7, slot: None },
            Cmd::Write {
                n: 8,
                slot: Some(11),
            },
            Cmd::Remove { slot: 3, fence: 9 },
            Cmd::Add { slot: 0, fence: 1 },
        ] {
            assert_eq!(Cmd::decode(&c.encode()), Some(c));
        }
        assert_eq!(Cmd::decode(b"x1"), None);
        assert_eq!(Cmd::decode(b"R1"), None);
        let cl = Claims::default();
        cl.claim_all(1, [3, 4].into_iter(), 0);
        assert!(cl.must_wait(2, 3, 5));
        cl.release(1, 3, 5);
        assert!(!cl.must_wait(2, 3, 5));
        cl.take(2, 3, 5);
        assert!(cl.must_wait(1, 3, 5));
        // Group 2 applied a later migration (7) than an old ADD's (5): no wait.
        cl.take(2, 4, 7);
        assert!(!cl.must_wait(1, 3, 5));
        cl.forget(2);
        assert!(!cl.must_wait(1, 3, 9));
    }
}
