//! IBM/HCL Domino (Lotus Notes): "Your message ... was not delivered to: ADDR because:
//! REASON". The text names the address as the sender wrote it; the delivery-status part
//! may name the address after Domino's own rewriting, so the text wins.

use crate::parse::context::Context;
use crate::parse::record::Record;
use crate::parse::text;

/// The recipients listed by a Domino report text, if it is one.
pub fn text_recipients(ctx: &Context) -> Option<Vec<String>> {
    let t = text::prefix(&ctx.text, 8192);
    // memmem: SIMD search (this runs on every report text), its searcher built once.
    static LEAD: std::sync::LazyLock<memchr::memmem::Finder<'static>> = std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"was not delivered to:"));
    let start = LEAD.find(t.as_bytes())? + "was not delivered to:".len();
    let rest = t.get(start..)?;
    let end = rest.find("because:").unwrap_or(rest.len().min(1000));
    let list = rest.get(..end)?;
    let found: Vec<String> = text::addresses(list).map(|f| f.addr.to_string()).collect();
    (!found.is_empty()).then_some(found)
}

/// Replaces the delivery-status recipients by the text's when they disagree one to one.
pub fn refine(ctx: &Context, records: &mut [Record]) {
    let Some(names) = text_recipients(ctx) else { return };
    if names.len() != records.len() {
        return;
    }
    for (r, n) in records.iter_mut().zip(names) {
        if !r.recipient.eq_ignore_ascii_case(&n) {
            r.original_recipient = std::mem::replace(&mut r.recipient, n);
            r.agent = "Domino".into();
            r.provenance.push(("recipient", "Domino report text (was not delivered to:)"));
        }
    }
}
