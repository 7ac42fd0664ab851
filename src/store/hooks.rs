//! What an inserted event changes beyond its own row (address_status through the
//! policy). Runs inside the inserting transaction.

use super::event::NewEvent;
use super::StoreError;
use crate::policy::{self, PolicyConfig, PolicyEvent};
use rusqlite::Transaction;
use std::sync::{Arc, RwLock};

// `insert_event` is a shared contract without a config parameter, so the policy in
// force is process-wide: commands install the configured one at start.
static POLICY: RwLock<Option<Arc<PolicyConfig>>> = RwLock::new(None);

/// Installs the `[policy]` section every later event in this process is judged by.
pub fn set_policy(config: PolicyConfig) {
    *POLICY.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(config));
}

/// The policy in force (the defaults until [`set_policy`] is called).
pub fn policy() -> Arc<PolicyConfig> {
    POLICY.read().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_default()
}

/// Applies the consequences of event `id` (address status) in the same transaction.
pub fn after_event(tx: &Transaction<'_>, id: i64, e: &NewEvent) -> Result<(), StoreError> {
    // The same result seen twice (log line now, the MTA's DSN later) counts once.
    if super::dedup::is_duplicate(tx, id, e)? {
        return Ok(());
    }
    if !e.verified || e.recipient.trim().is_empty() {
        return Ok(());
    }
    let ev = PolicyEvent {
        id: Some(id),
        recipient: e.recipient.trim(),
        kind: &e.kind,
        reason: &e.reason,
        class: &e.class,
        fault: &e.fault,
        hard: e.hard,
        feedback_type: &e.feedback_type,
        rule: &e.rule,
        verified: e.verified,
    };
    let cfg = policy();
    // Cheap exit before the read for events the policy ignores anyway.
    if !policy::may_change(&cfg, &ev) {
        return Ok(());
    }
    let current = super::status::get_status(tx, &e.recipient)?;
    if let Some(new) = policy::apply(&cfg, current.as_ref(), &ev, e.occurred_at) {
        if current.as_ref().map(|c| c.state) != Some(new.state) {
            tracing::info!(
                recipient_domain = %new.domain,
                state = new.state.as_str(),
                reason = %new.reason,
                event_id = id,
                "address state changed"
            );
        }
        super::status::put_status(tx, &new)?;
    }
    Ok(())
}
