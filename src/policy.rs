//! Event + current address status → new status: the suppression rules. Pure: the
//! clock is a parameter.
//!
//! Only verified events with recipient fault, complaints, opt-outs and deliveries change
//! an address. Sender-fault (blocked, reputation, authentication, policy ...), transient
//! failures and auto-replies never do: they are our problem or nobody's, not the
//! address's.

use serde::{Deserialize, Serialize};

const DAY: i64 = 86_400;

/// The `[policy]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Soft recipient-fault failures that suppress an address (within the window).
    pub soft_threshold: u32,
    /// Those failures must be spread over at least this many days.
    pub soft_spread_days: u32,
    /// The window, counted from the first soft failure, in which they must fall.
    pub soft_window_days: u32,
    /// Days after which a soft suppression lifts by itself.
    pub soft_suppress_days: u32,
    /// Days after which a hard suppression lifts (0: never, until an operator acts).
    pub hard_suppress_days: u32,
    /// Count soft recipient-fault delays (4xx, still being retried) like bounces.
    pub count_delays: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            soft_threshold: 3,
            soft_spread_days: 3,
            soft_window_days: 30,
            soft_suppress_days: 90,
            hard_suppress_days: 0,
            count_delays: false,
        }
    }
}

/// States of an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Nothing against it.
    #[default]
    Active,
    /// Soft failures counted, not (yet) enough to suppress.
    SoftBouncing,
    /// Do not send: hard failure, or enough soft ones.
    Suppressed,
    /// The recipient complained (ARF abuse report): do not send.
    Complained,
    /// The recipient opted out through a feedback report: do not send.
    Unsubscribed,
}

impl State {
    /// The name stored in `address_status.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Active => "active",
            State::SoftBouncing => "soft_bouncing",
            State::Suppressed => "suppressed",
            State::Complained => "complained",
            State::Unsubscribed => "unsubscribed",
        }
    }

    /// The state with this stored name.
    pub fn from_name(s: &str) -> Option<State> {
        Some(match s {
            "active" => State::Active,
            "soft_bouncing" => State::SoftBouncing,
            "suppressed" => State::Suppressed,
            "complained" => State::Complained,
            "unsubscribed" => State::Unsubscribed,
            _ => return None,
        })
    }
}

/// One `address_status` row.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct AddressStatus {
    /// Lower-case address.
    pub address: String,
    /// Lower-case domain.
    pub domain: String,
    /// Current state.
    pub state: State,
    /// Reason of the event that set the state.
    pub reason: String,
    /// Class of that event.
    pub class: String,
    /// Rule that classified it.
    pub rule: String,
    /// When the address entered this state.
    pub since: i64,
    /// First counted event.
    pub first_event_at: i64,
    /// Last counted event.
    pub last_event_at: i64,
    /// The event that last changed this row.
    pub last_event_id: Option<i64>,
    /// Hard recipient-fault failures.
    pub hard_count: i64,
    /// Soft recipient-fault failures in the current window.
    pub soft_count: i64,
    /// First soft failure of the current window.
    pub soft_first_at: Option<i64>,
    /// Complaints and opt-outs.
    pub complaint_count: i64,
    /// Successful deliveries reported.
    pub delivered_count: i64,
    /// None: until further notice; else when the suppression lifts.
    pub suppressed_until: Option<i64>,
    /// When the row was last written.
    pub updated_at: i64,
}

/// What the policy needs to know of an event.
#[derive(Debug, Clone, Default)]
pub struct PolicyEvent<'a> {
    /// The event's id, if stored.
    pub id: Option<i64>,
    /// Its address.
    pub recipient: &'a str,
    /// bounce, delay, delivered, relayed, autoreply, complaint, unknown.
    pub kind: &'a str,
    /// Sisimai reason.
    pub reason: &'a str,
    /// Coarse class.
    pub class: &'a str,
    /// recipient, sender, transient, none.
    pub fault: &'a str,
    /// Permanent failure of the address itself.
    pub hard: bool,
    /// ARF Feedback-Type.
    pub feedback_type: &'a str,
    /// Rule that classified it.
    pub rule: &'a str,
    /// Token valid (or trusted source): only verified events change anything.
    pub verified: bool,
}

/// What an event does to an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Nothing,
    Delivered,
    Hard,
    Soft,
    Complaint,
    OptOut,
}

fn effect(cfg: &PolicyConfig, e: &PolicyEvent<'_>) -> Effect {
    if !e.verified || e.recipient.is_empty() {
        return Effect::Nothing;
    }
    let ft = e.feedback_type.to_ascii_lowercase();
    match e.kind {
        "complaint" => match ft.as_str() {
            "opt-out" | "optout" | "unsubscribe" => Effect::OptOut,
            "not-spam" => Effect::Nothing,
            _ => Effect::Complaint,
        },
        "delivered" => Effect::Delivered,
        "bounce" | "delay" if e.fault == "recipient" => {
            if e.kind == "bounce" && e.hard {
                Effect::Hard
            } else if e.kind == "bounce" || cfg.count_delays {
                Effect::Soft
            } else {
                Effect::Nothing
            }
        }
        _ => Effect::Nothing,
    }
}

/// Whether `event` can change any address at all (false for unverified, sender-fault,
/// transient and auto-reply events), without looking at the address's row.
pub fn may_change(cfg: &PolicyConfig, event: &PolicyEvent<'_>) -> bool {
    effect(cfg, event) != Effect::Nothing
}

/// The new status of an address after `event` at time `now`; None when the event
/// changes nothing (unverified, sender-fault, transient, auto-reply ...).
pub fn apply(cfg: &PolicyConfig, current: Option<&AddressStatus>, event: &PolicyEvent<'_>, now: i64) -> Option<AddressStatus> {
    let eff = effect(cfg, event);
    // A delivery to an address with no history changes nothing: no row for every send
    // a mail log reports as delivered.
    if eff == Effect::Nothing || (eff == Effect::Delivered && current.is_none()) {
        return None;
    }
    let address = event.recipient.trim().to_ascii_lowercase();
    let mut s = match current {
        Some(c) => lifted(c, now),
        None => AddressStatus {
            domain: address.rsplit_once('@').map(|(_, d)| d.to_string()).unwrap_or_default(),
            address,
            since: now,
            first_event_at: now,
            ..Default::default()
        },
    };
    s.last_event_at = now;
    s.last_event_id = event.id;
    s.updated_at = now;
    let before = s.state;
    let user_choice = matches!(before, State::Complained | State::Unsubscribed);
    match eff {
        Effect::Nothing => return None,
        Effect::Delivered => {
            s.delivered_count += 1;
            s.soft_count = 0;
            s.soft_first_at = None;
            let soft_suppression = before == State::Suppressed && s.suppressed_until.is_some();
            if before == State::SoftBouncing || soft_suppression {
                set_state(&mut s, State::Active, event, now, None);
            }
        }
        Effect::Hard => {
            s.hard_count += 1;
            if !user_choice {
                let until = (cfg.hard_suppress_days > 0).then(|| now + i64::from(cfg.hard_suppress_days) * DAY);
                set_state(&mut s, State::Suppressed, event, now, until);
            }
        }
        Effect::Soft => {
            let window_open = s.soft_first_at.is_some_and(|t| now - t <= i64::from(cfg.soft_window_days) * DAY);
            if window_open {
                s.soft_count += 1;
            } else {
                s.soft_count = 1;
                s.soft_first_at = Some(now);
            }
            let spread = now - s.soft_first_at.unwrap_or(now);
            let enough = s.soft_count >= i64::from(cfg.soft_threshold.max(1))
                && spread >= i64::from(cfg.soft_spread_days) * DAY;
            match before {
                State::Active | State::SoftBouncing if enough => {
                    let until = Some(now + i64::from(cfg.soft_suppress_days) * DAY);
                    set_state(&mut s, State::Suppressed, event, now, until);
                }
                State::Active => set_state(&mut s, State::SoftBouncing, event, now, None),
                State::SoftBouncing => {
                    s.reason = event.reason.to_string();
                    s.class = event.class.to_string();
                    s.rule = event.rule.to_string();
                }
                _ => {}
            }
        }
        Effect::Complaint => {
            s.complaint_count += 1;
            if before != State::Unsubscribed {
                set_state(&mut s, State::Complained, event, now, None);
            }
        }
        Effect::OptOut => {
            s.complaint_count += 1;
            if before != State::Complained {
                set_state(&mut s, State::Unsubscribed, event, now, None);
            }
        }
    }
    Some(s)
}

/// The row as it stands at `now`: a suppression whose time has passed is lifted, with
/// its soft counts cleared.
pub fn lifted(current: &AddressStatus, now: i64) -> AddressStatus {
    let mut s = current.clone();
    if s.state == State::Suppressed && s.suppressed_until.is_some_and(|t| t <= now) {
        s.state = State::Active;
        s.since = s.suppressed_until.unwrap_or(now);
        s.suppressed_until = None;
        s.soft_count = 0;
        s.soft_first_at = None;
    }
    s
}

fn set_state(s: &mut AddressStatus, state: State, e: &PolicyEvent<'_>, now: i64, until: Option<i64>) {
    if s.state != state {
        s.since = now;
    }
    s.state = state;
    s.reason = e.reason.to_string();
    s.class = e.class.to_string();
    s.rule = e.rule.to_string();
    s.suppressed_until = until;
}
