//! RFC 5965 Abuse Reporting Format (and the Microsoft JMRP variant that sends the
//! complained-of message without a feedback-report part).

use super::context::Context;
use super::dsn;
use super::mime::Headers;
use super::record::{Kind, Record};
use super::text;

/// The recipient of a complaint whose recipient is not disclosed.
pub const UNDISCLOSED: &str = "undisclosed-recipient-in-headers@libsisimai.org.invalid";

/// Complaint records from a feedback report, one per reported recipient.
pub fn parse(ctx: &Context, orig: &Headers) -> Option<Vec<Record>> {
    let fields = match &ctx.feedback {
        Some(f) => dsn::fields(f),
        None if is_jmrp(ctx, orig) => vec![("feedback-type".into(), "abuse".into())],
        None => return None,
    };
    let get = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_ref()).unwrap_or("");
    let feedback_type = get("feedback-type").split_whitespace().next().unwrap_or("abuse").to_ascii_lowercase();
    let mut recipients: Vec<String> = fields
        .iter()
        .filter(|(k, _)| k == "original-rcpt-to" || k == "removal-recipient")
        .map(|(_, v)| text::clean_address(v))
        .filter(|a| a.contains('@'))
        .collect();
    if recipients.is_empty() {
        for v in [orig.get_or_empty("x-hmxmroriginalrecipient"), orig.get_or_empty("to")] {
            recipients.extend(text::addresses(v).map(|f| f.addr.to_string()));
            if !recipients.is_empty() {
                break;
            }
        }
    }
    if recipients.is_empty() {
        // The complaint stands even when the recipient is undisclosed: a placeholder in
        // the reserved .invalid domain (the name Sisimai uses) keeps the record.
        recipients.push(UNDISCLOSED.to_string());
    }
    let diagnostic = text::collapse(text::prefix(&ctx.text, 1000));
    let records = recipients
        .into_iter()
        .map(|recipient| Record {
            kind: Kind::Complaint,
            recipient,
            feedback_type: feedback_type.clone(),
            diagnostic: diagnostic.clone(),
            reporting_mta: text::clean_address(get("reporting-mta")),
            arrival_date: get("arrival-date").to_string(),
            agent: "ARF".into(),
            reason_hint: "feedback".into(),
            provenance: vec![("recipient", "Original-Rcpt-To or the original's To"), ("feedback_type", "Feedback-Type")],
            ..Default::default()
        })
        .collect();
    Some(records)
}

/// Microsoft's JMRP complaints: a message/rfc822 part carrying X-HmXmrOriginalRecipient.
fn is_jmrp(ctx: &Context, orig: &Headers) -> bool {
    orig.get("x-hmxmroriginalrecipient").is_some()
        && text::contains_ci(ctx.headers.get_or_empty("subject"), "complaint")
}
