//! McAfee Email Gateway (X-NAI-Header): the appliance relays and lists, per recipient,
//! the reply the next hop gave to that recipient (`<addr>   (Unknown user addr)`). A
//! reply there saying the address does not exist is a recipient refusal, whatever
//! SMTP command the report leaves unstated.

use crate::parse::context::Context;
use crate::parse::record::Record;
use crate::parse::text;
use regex::Regex;
use std::sync::LazyLock;

static NO_SUCH_USER: LazyLock<Regex> = LazyLock::new(|| {
    text::re(r"(?i)\b(?:unknown\s+(?:user|recipient)|(?:user|recipient)\s+unknown|no\s+such\s+(?:user|mailbox|recipient)|invalid\s+recipient)\b").expect("regex") // ok: constant pattern, compiled by the unit tests
});

/// Whether the report comes from a McAfee appliance.
pub fn is_mcafee(ctx: &Context) -> bool {
    ctx.headers.get_all("x-nai-header").any(|v| text::contains_ci(v, "mcafee"))
}

/// Marks unknown-recipient replies relayed by a McAfee appliance.
pub fn refine(ctx: &Context, records: &mut [Record]) {
    if !is_mcafee(ctx) {
        return;
    }
    for r in records {
        r.agent = "McAfee".into();
        if r.reason_hint.is_empty() && NO_SUCH_USER.is_match(&r.diagnostic) {
            r.reason_hint = "userunknown".into();
            r.provenance.push(("reason_hint", "McAfee per-recipient reply: address unknown"));
        }
    }
}
