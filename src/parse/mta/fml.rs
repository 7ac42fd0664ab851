//! Mailing-list managers (fml and the like) that refuse a post from a non-member:
//! the "recipient" that failed is the list address.

use crate::parse::context::Context;
use crate::parse::record::{Kind, Record};
use crate::parse::text;
use regex::Regex;
use std::sync::LazyLock;

static REFUSAL: LazyLock<Regex> = LazyLock::new(|| {
    crate::parse::text::re(r"(?i)(?:not a member of this (?:mailing )?list|only members (?:of this list )?(?:can|may) post|posting (?:is )?restricted to members|rejected by the list)[^<\n]*<([^>\s]+@[^>\s]+)>").expect("regex") // ok: constant pattern, compiled by the unit tests
});

/// Whether the message is a list manager's refusal.
pub fn is_fml(ctx: &Context) -> bool {
    ctx.headers.get("x-mlserver").is_some() && REFUSAL.is_match(&ctx.text)
        || REFUSAL.is_match(ctx.text.get(..ctx.text.len().min(2000)).unwrap_or(""))
}

/// The refusal record, if the text is one.
pub fn parse(ctx: &Context) -> Option<Vec<Record>> {
    let head = ctx.text.get(..ctx.text.len().min(4000)).unwrap_or(&ctx.text);
    // The match test first: it needs only the forward search, and nearly no report
    // is a refusal (the captures are then never asked for).
    if !REFUSAL.is_match(head) {
        return None;
    }
    let c = REFUSAL.captures(head)?;
    let list = c.get(1)?.as_str().to_string();
    let mut r = Record {
        kind: Kind::Bounce,
        recipient: list,
        action: "failed".into(),
        agent: "FML".into(),
        reason_hint: "rejected".into(),
        ..Default::default()
    };
    r.diagnostic = text::prefix(&text::collapse(head), 1000).to_string();
    r.provenance.push(("recipient", "list address in the refusal"));
    Some(vec![r])
}
