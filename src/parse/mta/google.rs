//! Google: Gmail/Workspace bounces are read by the generic reader (the remote reply
//! follows "The response was:" or "The error that the other server returned was:");
//! Google Groups refusals (a post the group does not accept) are marked "rejected".

use crate::parse::context::Context;
use crate::parse::record::Record;
use crate::parse::text;

/// Whether the report is a Google Groups refusal.
pub fn is_groups_refusal(ctx: &Context) -> bool {
    if ctx.headers.get("x-failed-recipients").is_none() {
        return false;
    }
    let head = text::prefix(&ctx.text, 8192);
    // Both phrases hold "google": one search settles the usual report that names
    // neither (rather than one per phrase).
    text::contains_ci(head, "google") && (text::contains_ci(head, "google groups") || text::contains_ci(head, "groups.google.com"))
}

/// Marks Google Groups refusals.
pub fn refine(ctx: &Context, records: &mut [Record]) {
    if !is_groups_refusal(ctx) {
        return;
    }
    for r in records {
        r.agent = "GoogleGroups".into();
        if r.reason_hint.is_empty() {
            r.reason_hint = "rejected".into();
            r.provenance.push(("reason_hint", "Google Groups refusal"));
        }
    }
}
