//! Tests of the linearizability checker (`checker.rs`): registers, counters, indeterminate
//! operations, the reductions and the budget.

use super::*;

/// Builds ops from `(client, call, invoke, complete, outcome)` on one key.
fn h(key: &str, spec: &[(usize, Call, u64, Option<u64>, Outcome)]) -> Vec<Op> {
    spec.iter()
        .enumerate()
        .map(|(id, (client, call, inv, comp, out))| Op {
            id,
            client: *client,
            node: 1,
            key: key.into(),
            call: call.clone(),
            invoke_us: *inv,
            complete_us: *comp,
            outcome: out.clone(),
            final_read: false,
        })
        .collect()
}

fn set(v: &str) -> Call {
    Call::Set { value: v.into() }
}
fn val(v: &str) -> Outcome {
    Outcome::Value(Some(v.into()))
}
fn unknown() -> Outcome {
    Outcome::Unknown("timeout".into())
}
const NIL_V: Outcome = Outcome::Value(None);

fn verdict(ops: &[Op]) -> Verdict {
    let r = check(ops);
    assert_eq!(r.keys.len(), 1);
    r.keys[0].verdict.clone()
}
fn assert_ok(ops: &[Op]) {
    match verdict(ops) {
        Verdict::Linearizable => {}
        v => panic!("expected linearizable, got {v:?}"),
    }
}
fn assert_violation(ops: &[Op]) -> String {
    match verdict(ops) {
        Verdict::Violation {
            counter_example, ..
        } => counter_example,
        v => panic!("expected a violation, got {v:?}"),
    }
}

#[test]
fn sequential_register_is_linearizable() {
    assert_ok(&h(
        "r",
        &[
            (0, Call::Get, 0, Some(1), NIL_V),
            (0, set("a"), 2, Some(3), Outcome::Ok),
            (1, Call::Get, 4, Some(5), val("a")),
            (1, Call::Del, 6, Some(7), Outcome::Int(1)),
            (0, Call::Del, 8, Some(9), Outcome::Int(0)),
            (0, Call::Get, 10, Some(11), NIL_V),
        ],
    ));
}

#[test]
fn concurrent_reads_may_see_either_side_of_a_write() {
    assert_ok(&h(
        "r",
        &[
            (0, set("a"), 0, Some(1), Outcome::Ok),
            (1, set("b"), 2, Some(10), Outcome::Ok),
            (2, Call::Get, 3, Some(4), val("b")),
            (3, Call::Get, 5, Some(6), val("b")),
            (0, Call::Get, 3, Some(9), val("b")),
        ],
    ));
    // Reading the old value during the write is fine too, if nobody saw the new one yet.
    assert_ok(&h(
        "r",
        &[
            (0, set("a"), 0, Some(1), Outcome::Ok),
            (1, set("b"), 2, Some(10), Outcome::Ok),
            (2, Call::Get, 3, Some(4), val("a")),
            (3, Call::Get, 5, Some(6), val("b")),
        ],
    ));
}

#[test]
fn stale_read_is_a_violation() {
    let ce = assert_violation(&h(
        "r",
        &[
            (0, set("a"), 0, Some(1), Outcome::Ok),
            (0, set("b"), 2, Some(3), Outcome::Ok),
            (1, Call::Get, 4, Some(5), val("a")),
        ],
    ));
    assert!(ce.contains("GET r"), "{ce}");
    assert!(ce.contains("ending in state \"b\""), "{ce}");
    assert!(ce.contains("fits nowhere"), "{ce}");
}

#[test]
fn read_going_back_in_time_is_a_violation() {
    // b is being written; one reader sees b, a later reader sees a again.
    assert_violation(&h(
        "r",
        &[
            (0, set("a"), 0, Some(1), Outcome::Ok),
            (1, set("b"), 2, Some(20), Outcome::Ok),
            (2, Call::Get, 3, Some(4), val("b")),
            (3, Call::Get, 5, Some(6), val("a")),
        ],
    ));
}

#[test]
fn lost_write_is_a_violation() {
    // An acknowledged SET followed by a read of nil.
    assert_violation(&h(
        "r",
        &[
            (0, set("a"), 0, Some(1), Outcome::Ok),
            (1, Call::Get, 2, Some(3), NIL_V),
        ],
    ));
}

#[test]
fn read_of_never_written_value_is_a_violation() {
    assert_violation(&h(
        "r",
        &[
            (0, set("a"), 0, Some(1), Outcome::Ok),
            (1, Call::Get, 2, Some(3), val("zzz")),
        ],
    ));
}

#[test]
fn wrong_del_count_is_a_violation() {
    assert_violation(&h(
        "r",
        &[
            (0, set("a"), 0, Some(1), Outcome::Ok),
            (1, Call::Del, 2, Some(3), Outcome::Int(0)),
        ],
    ));
    assert_violation(&h("r", &[(1, Call::Del, 2, Some(3), Outcome::Int(1))]));
}

#[test]
fn indeterminate_write_may_apply_or_not() {
    // It applied: a later read sees it.
    assert_ok(&h(
        "r",
        &[
            (0, set("a"), 0, Some(1), Outcome::Ok),
            (1, set("b"), 2, None, unknown()),
            (2, Call::Get, 10, Some(11), val("b")),
        ],
    ));
    // It never applied.
    assert_ok(&h(
        "r",
        &[
            (0, set("a"), 0, Some(1), Outcome::Ok),
            (1, set("b"), 2, None, unknown()),
            (2, Call::Get, 10, Some(11), val("a")),
        ],
    ));
    // It applied late: after a read of the old value.
    assert_ok(&h(
        "r",
        &[
            (0, set("a"), 0, Some(1), Outcome::Ok),
            (1, set("b"), 2, None, unknown()),
            (2, Call::Get, 10, Some(11), val("a")),
            (2, Call::Get, 12, Some(13), val("b")),
        ],
    ));
    // But it cannot apply before it was invoked.
    assert_violation(&h(
        "r",
        &[
            (0, set("a"), 0, Some(1), Outcome::Ok),
            (2, Call::Get, 2, Some(3), val("b")),
            (1, set("b"), 5, None, unknown()),
        ],
    ));
    // Nor apply twice: a then b then a again.
    assert_violation(&h(
        "r",
        &[
            (0, set("a"), 0, None, unknown()),
            (1, Call::Get, 2, Some(3), val("a")),
            (1, set("b"), 4, Some(5), Outcome::Ok),
            (1, Call::Get, 6, Some(7), val("b")),
            (1, Call::Get, 8, Some(9), val("a")),
        ],
    ));
}

#[test]
fn indeterminate_set_that_only_a_del_saw_is_kept() {
    // DEL returned 1 only because the unknown SET applied: linearizable.
    assert_ok(&h(
        "r",
        &[
            (1, set("b"), 2, None, unknown()),
            (2, Call::Del, 10, Some(11), Outcome::Int(1)),
        ],
    ));
}

#[test]
fn counter_sequence_is_linearizable() {
    assert_ok(&h(
        "c",
        &[
            (0, Call::Get, 0, Some(1), NIL_V),
            (0, Call::Incr, 2, Some(3), Outcome::Int(1)),
            (1, Call::Incr, 4, Some(8), Outcome::Int(3)),
            (2, Call::Incr, 5, Some(7), Outcome::Int(2)),
            (0, Call::Get, 9, Some(10), val("3")),
        ],
    ));
}

#[test]
fn counter_skip_is_a_violation() {
    assert_violation(&h(
        "c",
        &[
            (0, Call::Incr, 0, Some(1), Outcome::Int(1)),
            (0, Call::Incr, 2, Some(3), Outcome::Int(3)),
        ],
    ));
}

#[test]
fn counter_duplicate_is_a_violation() {
    assert_violation(&h(
        "c",
        &[
            (0, Call::Incr, 0, Some(5), Outcome::Int(1)),
            (1, Call::Incr, 1, Some(6), Outcome::Int(1)),
        ],
    ));
}

#[test]
fn counter_read_going_backwards_is_a_violation() {
    assert_violation(&h(
        "c",
        &[
            (0, Call::Incr, 0, Some(1), Outcome::Int(1)),
            (0, Call::Incr, 2, Some(3), Outcome::Int(2)),
            (1, Call::Get, 4, Some(5), val("1")),
        ],
    ));
}

#[test]
fn indeterminate_incr_may_apply_or_not() {
    let base = |last: Outcome| {
        h(
            "c",
            &[
                (0, Call::Incr, 0, Some(1), Outcome::Int(1)),
                (1, Call::Incr, 2, None, unknown()),
                (1, Call::Incr, 3, None, unknown()),
                (0, Call::Get, 10, Some(11), last),
            ],
        )
    };
    assert_ok(&base(val("1")));
    assert_ok(&base(val("2")));
    assert_ok(&base(val("3")));
    assert_violation(&base(val("4")));
    assert_violation(&base(NIL_V));
}

#[test]
fn many_indeterminate_incrs_stay_cheap() {
    // 60 pending increments would be 2^60 subsets without the symmetry reduction.
    let mut spec = vec![(0, Call::Incr, 0, Some(1), Outcome::Int(1))];
    for i in 0..60 {
        spec.push((1 + i, Call::Incr, 2 + i as u64, None, unknown()));
    }
    spec.push((99, Call::Incr, 100, Some(101), Outcome::Int(40)));
    spec.push((99, Call::Get, 102, Some(103), val("41")));
    let ops = h("c", &spec);
    let r = check_with_budget(&ops, 1_000_000);
    assert!(matches!(r.keys[0].verdict, Verdict::Linearizable));
    spec.push((99, Call::Get, 104, Some(105), val("40")));
    let r = check_with_budget(&h("c", &spec), 1_000_000);
    assert!(matches!(r.keys[0].verdict, Verdict::Violation { .. }));
}

#[test]
fn final_read_contradicting_acked_write_is_a_lost_write() {
    let mut ops = h(
        "r",
        &[
            (0, set("a"), 0, Some(1), Outcome::Ok),
            (1, set("b"), 2, Some(3), Outcome::Ok),
            (9, Call::Get, 10, Some(11), val("a")),
        ],
    );
    ops[2].final_read = true;
    match verdict(&ops) {
        Verdict::Violation {
            lost_write: true,
            counter_example,
        } => assert!(counter_example.contains("lost write"), "{counter_example}"),
        v => panic!("expected a lost write, got {v:?}"),
    }
}

#[test]
fn keys_are_checked_independently() {
    let mut ops = h(
        "r1",
        &[
            (0, set("a"), 0, Some(1), Outcome::Ok),
            (0, Call::Get, 2, Some(3), val("a")),
        ],
    );
    let mut other = h(
        "r2",
        &[
            (1, set("x"), 0, Some(1), Outcome::Ok),
            (1, Call::Get, 2, Some(3), NIL_V),
        ],
    );
    for (k, o) in other.iter_mut().enumerate() {
        o.id = 10 + k;
    }
    ops.append(&mut other);
    let r = check(&ops);
    assert_eq!(r.keys.len(), 2);
    assert!(matches!(r.keys[0].verdict, Verdict::Linearizable));
    assert!(matches!(r.keys[1].verdict, Verdict::Violation { .. }));
    assert_eq!(r.violations().count(), 1);
    assert_eq!(r.lost_writes(), 0);
}

#[test]
fn failed_ops_never_happened() {
    assert_ok(&h(
        "r",
        &[
            (0, set("a"), 0, Some(1), Outcome::Ok),
            (1, set("b"), 2, Some(3), Outcome::Fail("refused".into())),
            (2, Call::Get, 4, Some(5), val("a")),
        ],
    ));
}

#[test]
fn indeterminate_reads_are_ignored() {
    assert_ok(&h(
        "r",
        &[
            (0, set("a"), 0, Some(1), Outcome::Ok),
            (1, Call::Get, 2, None, unknown()),
        ],
    ));
}

#[test]
fn long_concurrent_register_history_checks_quickly() {
    // 4 clients, 2000 ops, overlapping writes and reads that follow a valid order.
    let mut spec = Vec::new();
    let mut t = 0u64;
    let mut last = None::<String>;
    for i in 0..500 {
        let v = format!("v{i}");
        // Write overlapping a read that still sees the previous value.
        spec.push((0, set(&v), t, Some(t + 10), Outcome::Ok));
        spec.push((
            1,
            Call::Get,
            t + 1,
            Some(t + 2),
            Outcome::Value(last.clone()),
        ));
        spec.push((2, Call::Get, t + 11, Some(t + 12), val(&v)));
        spec.push((3, Call::Get, t + 5, Some(t + 13), val(&v)));
        last = Some(v);
        t += 20;
    }
    assert_ok(&h("r", &spec));
}
