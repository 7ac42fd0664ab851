//! Tests: the suppression policy, table-driven with an injected clock.

use rebound::policy::{apply, lifted, AddressStatus, PolicyConfig, PolicyEvent, State};

const DAY: i64 = 86_400;
const T0: i64 = 1_800_000_000;
const ADDR: &str = "Alice@Example.org";

/// A compact event: (kind, reason, class, fault, hard, feedback type).
#[derive(Clone, Copy)]
struct Ev(&'static str, &'static str, &'static str, &'static str, bool, &'static str);

const HARD: Ev = Ev("bounce", "userunknown", "invalid_recipient", "recipient", true, "");
const FULL: Ev = Ev("bounce", "mailboxfull", "mailbox_full", "recipient", false, "");
const FULL_DELAY: Ev = Ev("delay", "mailboxfull", "mailbox_full", "recipient", false, "");
const BLOCKED: Ev = Ev("bounce", "blocked", "reputation", "sender", false, "");
const BLOCKED_HARD: Ev = Ev("bounce", "blocked", "reputation", "sender", true, "");
const RATE: Ev = Ev("delay", "speeding", "rate_limited", "transient", false, "");
const VACATION: Ev = Ev("autoreply", "vacation", "auto_reply", "none", false, "");
const DELIVERED: Ev = Ev("delivered", "delivered", "delivered", "none", false, "");
const ABUSE: Ev = Ev("complaint", "feedback", "complaint", "none", false, "abuse");
const OPTOUT: Ev = Ev("complaint", "feedback", "complaint", "none", false, "opt-out");
const NOTSPAM: Ev = Ev("complaint", "feedback", "complaint", "none", false, "not-spam");

/// (name, (day, event, verified) steps, expected state (None = no row), expected soft_count).
type Case = (&'static str, Vec<(i64, Ev, bool)>, Option<State>, i64);

/// Runs (day, event, verified) steps; returns the final row (None: never written).
fn run(cfg: &PolicyConfig, steps: &[(i64, Ev, bool)]) -> Option<AddressStatus> {
    let mut row: Option<AddressStatus> = None;
    for (i, (day, Ev(kind, reason, class, fault, hard, ft), verified)) in steps.iter().enumerate() {
        let ev = PolicyEvent {
            id: Some(i as i64 + 1),
            recipient: ADDR,
            kind,
            reason,
            class,
            fault,
            hard: *hard,
            feedback_type: ft,
            rule: "test",
            verified: *verified,
        };
        if let Some(new) = apply(cfg, row.as_ref(), &ev, T0 + day * DAY) {
            row = Some(new);
        }
    }
    row
}

fn v(steps: &[(i64, Ev)]) -> Vec<(i64, Ev, bool)> {
    steps.iter().map(|&(d, e)| (d, e, true)).collect()
}

#[test]
fn table() {
    let cfg = PolicyConfig::default();
    let cases: Vec<Case> = vec![
        ("hard suppresses at once", v(&[(0, HARD)]), Some(State::Suppressed), 0),
        ("one soft: soft_bouncing", v(&[(0, FULL)]), Some(State::SoftBouncing), 1),
        ("3 soft within 2 days: not spread enough", v(&[(0, FULL), (1, FULL), (2, FULL)]), Some(State::SoftBouncing), 3),
        ("3 soft over 3 days suppress", v(&[(0, FULL), (1, FULL), (3, FULL)]), Some(State::Suppressed), 3),
        ("2 soft over 10 days: below threshold", v(&[(0, FULL), (10, FULL)]), Some(State::SoftBouncing), 2),
        ("window decays after 30 days", v(&[(0, FULL), (10, FULL), (31, FULL)]), Some(State::SoftBouncing), 1),
        ("delivery resets soft counts", v(&[(0, FULL), (2, FULL), (3, DELIVERED), (4, FULL)]), Some(State::SoftBouncing), 1),
        ("delivery clears soft_bouncing", v(&[(0, FULL), (1, DELIVERED)]), Some(State::Active), 0),
        ("delivery to an unknown address writes no row", v(&[(0, DELIVERED), (1, DELIVERED)]), None, 0),
        ("sender fault never suppresses", (0..10).map(|d| (d * 2, BLOCKED, true)).collect(), None, 0),
        ("sender fault marked hard still never suppresses", v(&[(0, BLOCKED_HARD)]), None, 0),
        ("transient never changes", v(&[(0, RATE), (5, RATE), (9, RATE)]), None, 0),
        ("auto-replies never change", v(&[(0, VACATION), (4, VACATION), (8, VACATION)]), None, 0),
        ("delays do not count by default", v(&[(0, FULL_DELAY), (2, FULL_DELAY), (4, FULL_DELAY)]), None, 0),
        ("unverified hard changes nothing", vec![(0, HARD, false)], None, 0),
        ("unverified soft changes nothing", vec![(0, FULL, false), (2, FULL, false), (4, FULL, false)], None, 0),
        ("complaint", v(&[(0, ABUSE)]), Some(State::Complained), 0),
        ("opt-out unsubscribes", v(&[(0, OPTOUT)]), Some(State::Unsubscribed), 0),
        ("not-spam report changes nothing", v(&[(0, NOTSPAM)]), None, 0),
        ("hard after complaint stays complained", v(&[(0, ABUSE), (1, HARD)]), Some(State::Complained), 0),
        ("complaint after hard: complained", v(&[(0, HARD), (1, ABUSE)]), Some(State::Complained), 0),
        ("delivery does not lift a hard suppression", v(&[(0, HARD), (1, DELIVERED)]), Some(State::Suppressed), 0),
        ("soft suppression lifts after 90 days", v(&[(0, FULL), (1, FULL), (3, FULL), (94, FULL)]), Some(State::SoftBouncing), 1),
        ("soft suppression holds before 90 days", v(&[(0, FULL), (1, FULL), (3, FULL), (92, FULL)]), Some(State::Suppressed), 1),
    ];
    for (name, steps, want_state, want_soft) in cases {
        let row = run(&cfg, &steps);
        assert_eq!(row.as_ref().map(|r| r.state), want_state, "{name}: {row:?}");
        if let Some(r) = row {
            assert_eq!(r.soft_count, want_soft, "{name}: soft_count");
            assert_eq!(r.address, "alice@example.org", "{name}");
            assert_eq!(r.domain, "example.org", "{name}");
        }
    }
}

#[test]
fn suppression_times() {
    let cfg = PolicyConfig::default();
    let hard = run(&cfg, &v(&[(5, HARD)])).unwrap();
    assert_eq!(hard.suppressed_until, None, "hard: until further notice");
    assert_eq!(hard.since, T0 + 5 * DAY);
    assert_eq!(hard.hard_count, 1);
    assert_eq!(hard.reason, "userunknown");
    assert_eq!(hard.last_event_id, Some(1));

    let soft = run(&cfg, &v(&[(0, FULL), (1, FULL), (3, FULL)])).unwrap();
    assert_eq!(soft.suppressed_until, Some(T0 + 93 * DAY));
    assert_eq!(soft.since, T0 + 3 * DAY);
    assert_eq!(soft.first_event_at, T0);
    // As read at day 92 it is still suppressed; at day 93 it is lifted.
    assert_eq!(lifted(&soft, T0 + 92 * DAY).state, State::Suppressed);
    let after = lifted(&soft, T0 + 93 * DAY);
    assert_eq!((after.state, after.soft_count, after.suppressed_until), (State::Active, 0, None));
}

#[test]
fn configurable() {
    let cfg = PolicyConfig { soft_threshold: 2, soft_spread_days: 0, hard_suppress_days: 7, count_delays: true, ..Default::default() };
    assert_eq!(run(&cfg, &v(&[(0, FULL_DELAY), (0, FULL_DELAY)])).unwrap().state, State::Suppressed);
    let hard = run(&cfg, &v(&[(0, HARD)])).unwrap();
    assert_eq!(hard.suppressed_until, Some(T0 + 7 * DAY));
    let toml = rebound::config::Config::from_toml("[policy]\nsoft_threshold = 5\nsoft_window_days = 60\n").unwrap();
    assert_eq!(toml.policy.soft_threshold, 5);
    assert_eq!(toml.policy.soft_spread_days, 3);
}

/// Events inserted through the store's shared insert: the policy runs in the same
/// transaction and only verified recipient-fault events write `address_status`.
#[test]
fn store_applies_policy_in_the_insert_transaction() {
    use rebound::store::event::{insert_event, NewEvent};
    use rebound::store::status::{get_status, lift_expired};
    let dir = tempfile::tempdir().unwrap();
    let mut conn = rebound::store::open(&dir.path().join("p.db")).unwrap();
    let ev = |day: i64, recipient: &str, reason: &str, fault: &str, hard: bool, verified: bool| NewEvent {
        occurred_at: T0 + day * DAY,
        source: "ingest".into(),
        recipient: recipient.into(),
        kind: "bounce".into(),
        reason: reason.into(),
        class: "x".into(),
        fault: fault.into(),
        hard,
        verified,
        ..Default::default()
    };
    let tx = conn.transaction().unwrap();
    for day in [0, 2, 4] {
        insert_event(&tx, None, &ev(day, "Full@Example.org", "mailboxfull", "recipient", false, true)).unwrap();
        insert_event(&tx, None, &ev(day, "blocked@example.org", "blocked", "sender", false, true)).unwrap();
        insert_event(&tx, None, &ev(day, "forged@example.org", "userunknown", "recipient", true, false)).unwrap();
    }
    let last = insert_event(&tx, None, &ev(5, "gone@example.org", "userunknown", "recipient", true, true)).unwrap();
    tx.commit().unwrap();

    let full = get_status(&conn, "full@example.org").unwrap().unwrap();
    assert_eq!((full.state, full.soft_count, full.suppressed_until), (State::Suppressed, 3, Some(T0 + 94 * DAY)));
    assert_eq!(get_status(&conn, "blocked@example.org").unwrap(), None);
    assert_eq!(get_status(&conn, "forged@example.org").unwrap(), None);
    let gone = get_status(&conn, "GONE@example.org").unwrap().unwrap();
    assert_eq!((gone.state, gone.last_event_id, gone.reason.as_str()), (State::Suppressed, Some(last), "userunknown"));

    // A rolled-back transaction leaves no status behind.
    let tx = conn.transaction().unwrap();
    insert_event(&tx, None, &ev(6, "rolled@example.org", "userunknown", "recipient", true, true)).unwrap();
    drop(tx);
    assert_eq!(get_status(&conn, "rolled@example.org").unwrap(), None);

    // The sweep lifts soft suppressions that have run out, and only those.
    assert_eq!(lift_expired(&conn, T0 + 93 * DAY).unwrap(), 0);
    assert_eq!(lift_expired(&conn, T0 + 95 * DAY).unwrap(), 1);
    assert_eq!(get_status(&conn, "full@example.org").unwrap().unwrap().state, State::Active);
    assert_eq!(get_status(&conn, "gone@example.org").unwrap().unwrap().state, State::Suppressed);
}
