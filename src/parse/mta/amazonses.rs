//! Amazon SES notifications delivered by e-mail (SNS): a JSON document with
//! notificationType Bounce, Complaint or Delivery. Also SES receiving's own DSNs
//! (Reporting-MTA inbound-smtp.REGION.amazonaws.com): each is a receipt rule's Bounce
//! action, the reply code, status and text being what the account configured.

use crate::parse::context::Context;
use crate::parse::record::{Kind, Record};
use crate::parse::text;
use serde_json::Value;

/// Records from an SES JSON notification, if the text is one.
pub fn parse(ctx: &Context) -> Option<Vec<Record>> {
    let t = ctx.text.as_str();
    let start = t.find('{')?;
    if !t.get(start..start + 200.min(t.len() - start))?.contains("notificationType") && !t.contains("\"notificationType\"") {
        return None;
    }
    // The JSON may be cut by a line wrap ("!\n " is an SNS artefact); rejoin.
    let body: String = t.get(start..)?.replace("!\n ", "").replace('\n', "");
    let end = body.rfind('}')?;
    let mut v: Value = serde_json::from_str(body.get(..=end)?).ok()?;
    // An SNS envelope carries the SES document as a string in "Message".
    if let Some(inner) = v.get("Message").and_then(Value::as_str) {
        v = serde_json::from_str(inner).ok()?;
    }
    let kind = v.get("notificationType").or_else(|| v.get("eventType"))?.as_str()?.to_string();
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut out = Vec::new();
    match kind.as_str() {
        "Bounce" => {
            let b = v.get("bounce")?;
            let temp = s(b, "bounceType") == "Transient";
            for r in b.get("bouncedRecipients")?.as_array()? {
                let mut rec = Record {
                    kind: if temp { Kind::Delay } else { Kind::Bounce },
                    recipient: s(r, "emailAddress"),
                    action: if s(r, "action").is_empty() { if temp { "delayed".into() } else { "failed".into() } } else { s(r, "action") },
                    reporting_mta: s(b, "reportingMTA").rsplit(';').next().unwrap_or("").trim().to_string(),
                    agent: "AmazonSES".into(),
                    ..Default::default()
                };
                let diag = s(r, "diagnosticCode");
                let diag = diag.split_once(';').map(|(t, d)| if t.len() < 12 { d.to_string() } else { diag.clone() }).unwrap_or(diag.clone());
                rec.status = text::better_status(&s(r, "status"), &diag);
                super::generic::fill_from_diagnostic(&mut rec, &text::collapse(&diag), "SES diagnosticCode");
                if s(b, "bounceSubType") == "Suppressed" {
                    rec.reason_hint = "suppressed".into();
                }
                out.push(rec);
            }
        }
        "Complaint" => {
            let c = v.get("complaint")?;
            for r in c.get("complainedRecipients")?.as_array()? {
                out.push(Record {
                    kind: Kind::Complaint,
                    recipient: s(r, "emailAddress"),
                    feedback_type: { let f = s(c, "complaintFeedbackType"); if f.is_empty() { "abuse".into() } else { f } },
                    agent: "AmazonSES".into(),
                    reason_hint: "feedback".into(),
                    ..Default::default()
                });
            }
        }
        "Delivery" => {
            let d = v.get("delivery")?;
            for r in d.get("recipients")?.as_array()? {
                let mut rec = Record {
                    kind: Kind::Delivered,
                    recipient: r.as_str().unwrap_or("").to_string(),
                    action: "delivered".into(),
                    remote_mta: s(d, "remoteMtaIp"),
                    reporting_mta: s(d, "reportingMTA"),
                    agent: "AmazonSES".into(),
                    reason_hint: "delivered".into(),
                    ..Default::default()
                };
                let diag = s(d, "smtpResponse");
                super::generic::fill_from_diagnostic(&mut rec, &diag, "SES smtpResponse");
                out.push(rec);
            }
        }
        _ => return None,
    }
    out.retain(|r| r.recipient.contains('@'));
    Some(out)
}

/// Whether a host is an SES receiving endpoint (inbound-smtp.REGION.amazonaws.com).
fn is_ses_inbound(host: &str) -> bool {
    let h = host.trim().trim_end_matches('.').to_ascii_lowercase();
    h.starts_with("inbound-smtp.") && h.ends_with(".amazonaws.com")
}

/// Marks the reports SES receiving writes itself (after accepting the mail: a receipt
/// rule's Bounce action) that refuse an address as a filter's: the rule chose the reply,
/// so its "Mailbox does not exist" (x.1.1) is the account's rule refusing the mail, not
/// a lookup that found no such mailbox. SES's refusal of a recipient during the SMTP
/// session (it is then the remote MTA in another MTA's report) is its own check, and
/// stays what it says.
pub fn refine_receiving(records: &mut [Record]) {
    for r in records.iter_mut().filter(|r| is_ses_inbound(&r.reporting_mta)) {
        r.agent = "ReceivingSES".into();
        if r.reason_hint.is_empty() && r.status.get(1..) == Some(".1.1") {
            r.reason_hint = "filtered".into();
            r.provenance.push(("reason_hint", "SES receiving: a receipt rule's Bounce action"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ses_receiving_refusals_are_a_rule_s() {
        let mut rs = vec![
            Record { reporting_mta: "inbound-smtp.eu-west-1.amazonaws.com".into(), status: "5.1.1".into(), ..Default::default() },
            Record { reporting_mta: "inbound-smtp.us-east-1.amazonaws.com".into(), status: "5.3.4".into(), ..Default::default() },
            Record { reporting_mta: "ec2-192-0-2-1.compute-1.amazonaws.com".into(), status: "5.1.1".into(), ..Default::default() },
            Record { reporting_mta: "mx.example.com".into(), remote_mta: "inbound-smtp.us-west-2.amazonaws.com".into(), status: "5.1.1".into(), ..Default::default() },
        ];
        refine_receiving(&mut rs);
        let hints: Vec<&str> = rs.iter().map(|r| r.reason_hint.as_str()).collect();
        assert_eq!(hints, ["filtered", "", "", ""]);
    }
}
