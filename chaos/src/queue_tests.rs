//! Hand-made queue histories, valid and invalid, for [`super::check_queue`].

use super::*;
use crate::checker::check;

/// One op on queue `q`: `(client, call, invoke, complete, outcome)`.
type Spec = (usize, Call, u64, Option<u64>, Outcome);

fn h(spec: &[Spec]) -> Vec<Op> {
    spec.iter()
        .enumerate()
        .map(|(id, (client, call, inv, comp, out))| Op {
            id,
            client: *client,
            node: 1,
            key: "q0".into(),
            call: call.clone(),
            invoke_us: *inv,
            complete_us: *comp,
            outcome: out.clone(),
            final_read: matches!(call, Call::LRange),
        })
        .collect()
}

fn push(v: &str) -> Call {
    Call::RPush { value: v.into() }
}
fn got(v: &str) -> Outcome {
    Outcome::Value(Some(v.into()))
}
fn unknown() -> Outcome {
    Outcome::Unknown("UNCERTAIN".into())
}
fn list(vs: &[&str]) -> Outcome {
    Outcome::List(vs.iter().map(|v| v.to_string()).collect())
}
const EMPTY: Outcome = Outcome::Value(None);
const OK1: Outcome = Outcome::Int(1);

fn verdict(ops: &[Op]) -> Verdict {
    let r = check(ops);
    assert_eq!(r.keys.len(), 1);
    assert_eq!(r.keys[0].model, Model::Queue);
    r.keys[0].verdict.clone()
}
fn assert_ok(ops: &[Op]) {
    match verdict(ops) {
        Verdict::Linearizable => {}
        v => panic!("expected a valid queue history, got {v:?}"),
    }
}
/// The counter-example, and whether it is a lost write.
fn assert_violation(ops: &[Op], says: &str) -> bool {
    match verdict(ops) {
        Verdict::Violation {
            counter_example,
            lost_write,
        } => {
            assert!(counter_example.contains(says), "{counter_example}");
            lost_write
        }
        v => panic!("expected a violation ({says}), got {v:?}"),
    }
}

#[test]
fn sequential_queue_is_valid() {
    assert_ok(&h(&[
        (0, Call::LPop, 0, Some(1), EMPTY),
        (0, push("a"), 2, Some(3), OK1),
        (1, push("b"), 4, Some(5), Outcome::Int(2)),
        (0, Call::LPop, 6, Some(7), got("a")),
        (1, push("c"), 8, Some(9), Outcome::Int(2)),
        (9, Call::LRange, 20, Some(21), list(&["b", "c"])),
        (9, Call::LRange, 22, Some(23), list(&["b", "c"])),
    ]));
}

#[test]
fn concurrent_pushes_may_come_out_either_way() {
    assert_ok(&h(&[
        (0, push("a"), 0, Some(10), OK1),
        (1, push("b"), 1, Some(9), OK1),
        (2, Call::LPop, 11, Some(12), got("b")),
        (2, Call::LPop, 13, Some(14), got("a")),
        (9, Call::LRange, 20, Some(21), list(&[])),
    ]));
}

#[test]
fn indeterminate_operations_are_handled_soundly() {
    // An indeterminate push that applied, popped; one that never applied; an indeterminate
    // pop that took "b" (acknowledged, gone from the final list).
    assert_ok(&h(&[
        (0, push("a"), 0, None, unknown()),
        (1, push("x"), 1, None, unknown()),
        (2, push("b"), 2, Some(3), OK1),
        (2, Call::LPop, 4, Some(5), got("a")),
        (3, Call::LPop, 6, None, unknown()),
        (2, push("c"), 7, Some(8), OK1),
        (9, Call::LRange, 20, Some(21), list(&["c"])),
    ]));
    // An indeterminate pop may also have taken nothing.
    assert_ok(&h(&[
        (0, push("a"), 0, Some(1), OK1),
        (3, Call::LPop, 2, None, unknown()),
        (9, Call::LRange, 20, Some(21), list(&["a"])),
    ]));
}

#[test]
fn duplicate_pop_is_a_violation() {
    assert_violation(
        &h(&[
            (0, push("a"), 0, Some(1), OK1),
            (1, Call::LPop, 2, Some(3), got("a")),
            (2, Call::LPop, 4, Some(5), got("a")),
        ]),
        "popped twice",
    );
    // Popped, and still in the list after healing.
    assert_violation(
        &h(&[
            (0, push("a"), 0, Some(1), OK1),
            (1, Call::LPop, 2, Some(3), got("a")),
            (9, Call::LRange, 20, Some(21), list(&["a"])),
        ]),
        "popped, yet still listed",
    );
}

#[test]
fn lost_push_is_a_lost_write() {
    let lost = assert_violation(
        &h(&[
            (0, push("a"), 0, Some(1), OK1),
            (0, push("b"), 2, Some(3), OK1),
            (9, Call::LRange, 20, Some(21), list(&["b"])),
        ]),
        "lost write",
    );
    assert!(lost);
    // One indeterminate pop can account for one missing value, not two.
    assert_violation(
        &h(&[
            (0, push("a"), 0, Some(1), OK1),
            (0, push("b"), 2, Some(3), OK1),
            (1, Call::LPop, 4, None, unknown()),
            (9, Call::LRange, 20, Some(21), list(&[])),
        ]),
        "lost write",
    );
    // Nor one sent after the value had to be gone: "a" was ahead of "b", popped at 5.
    assert_violation(
        &h(&[
            (0, push("a"), 0, Some(1), OK1),
            (0, push("b"), 2, Some(3), OK1),
            (1, Call::LPop, 4, Some(5), got("b")),
            (1, Call::LPop, 6, None, unknown()),
            (9, Call::LRange, 20, Some(21), list(&[])),
        ]),
        "lost write",
    );
}

#[test]
fn reordering_is_a_violation() {
    // Pops in the wrong order.
    assert_violation(
        &h(&[
            (0, push("a"), 0, Some(1), OK1),
            (0, push("b"), 2, Some(3), OK1),
            (1, Call::LPop, 4, Some(5), got("b")),
            (1, Call::LPop, 6, Some(7), got("a")),
        ]),
        "popped out of push order",
    );
    // The final list in the wrong order.
    assert_violation(
        &h(&[
            (0, push("a"), 0, Some(1), OK1),
            (0, push("b"), 2, Some(3), OK1),
            (9, Call::LRange, 20, Some(21), list(&["b", "a"])),
        ]),
        "listed out of push order",
    );
    // A later value popped while an earlier one stays.
    assert_violation(
        &h(&[
            (0, push("a"), 0, Some(1), OK1),
            (0, push("b"), 2, Some(3), OK1),
            (1, Call::LPop, 4, Some(5), got("b")),
            (9, Call::LRange, 20, Some(21), list(&["a"])),
        ]),
        "later-pushed value was popped",
    );
}

#[test]
fn pop_of_a_never_pushed_value_is_a_violation() {
    assert_violation(
        &h(&[
            (0, push("a"), 0, Some(1), OK1),
            (1, Call::LPop, 2, Some(3), got("zzz")),
        ]),
        "no RPUSH pushed",
    );
    // A refused push never happened.
    assert_violation(
        &h(&[
            (
                0,
                push("a"),
                0,
                Some(1),
                Outcome::Fail("CLUSTERDOWN".into()),
            ),
            (1, Call::LPop, 2, Some(3), got("a")),
        ]),
        "no RPUSH pushed",
    );
    // Nor can a pop return a value before its push was sent.
    assert_violation(
        &h(&[
            (1, Call::LPop, 0, Some(1), got("a")),
            (0, push("a"), 2, None, unknown()),
        ]),
        "before its RPUSH was sent",
    );
    // Nor can the final list hold one.
    assert_violation(
        &h(&[(9, Call::LRange, 20, Some(21), list(&["zzz"]))]),
        "never pushed",
    );
}

#[test]
fn empty_reply_while_a_value_was_queued_is_a_violation() {
    assert_violation(
        &h(&[
            (0, push("a"), 0, Some(1), OK1),
            (1, Call::LPop, 2, Some(3), EMPTY),
            (1, Call::LPop, 4, Some(5), got("a")),
        ]),
        "found the queue empty",
    );
    assert_violation(
        &h(&[
            (0, push("a"), 0, Some(1), OK1),
            (1, Call::LPop, 2, Some(3), EMPTY),
            (9, Call::LRange, 20, Some(21), list(&["a"])),
        ]),
        "found the queue empty",
    );
    // Concurrent with the push, an empty reply is fine.
    assert_ok(&h(&[
        (0, push("a"), 0, Some(10), OK1),
        (1, Call::LPop, 2, Some(3), EMPTY),
        (1, Call::LPop, 11, Some(12), got("a")),
    ]));
}

#[test]
fn long_queue_history_checks_quickly() {
    // 3000 pushes, each popped right after, one pop in seven indeterminate (it took the
    // value); then the empty final list.
    let mut spec = Vec::new();
    for i in 0..3000u64 {
        let v = format!("v{i}");
        let t = i * 10;
        spec.push((0, push(&v), t, Some(t + 5), OK1));
        if i % 7 == 3 {
            spec.push((1, Call::LPop, t + 6, None, unknown()));
        } else {
            spec.push((1, Call::LPop, t + 6, Some(t + 9), got(&v)));
        }
    }
    spec.push((9, Call::LRange, 40_000, Some(40_001), list(&[])));
    let t = std::time::Instant::now();
    assert_ok(&h(&spec));
    // Without one of the indeterminate pops, one value is lost.
    let short: Vec<Spec> = spec.iter().filter(|s| s.2 != 36).cloned().collect();
    assert_violation(&h(&short), "lost write");
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
}
