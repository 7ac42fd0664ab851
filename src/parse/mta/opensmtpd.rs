//! OpenSMTPD: "This is the MAILER-DAEMON, please DO NOT REPLY to this e-mail." followed
//! by one "address: error" line per recipient. The delivery-status part beside it is
//! coarser than the text: its Status is x.0.0 when no remote code was given, and an
//! envelope that expired is written with the "delayed" template (Action delayed, Status
//! 4.4.7) although OpenSMTPD has dropped the message. The text line is the report.

use crate::parse::context::Context;
use crate::parse::record::{Kind, Record};
use crate::parse::text;

/// Whether the report is OpenSMTPD's.
pub fn is_opensmtpd(ctx: &Context) -> bool {
    text::contains_ci(text::prefix(&ctx.text, 2048), "this is the mailer-daemon, please do not reply")
}

/// Drops the coarse delivery-status values the text contradicts or says nothing beyond.
pub fn refine(ctx: &Context, records: &mut [Record]) {
    // Only a delivery-status part's records are refined: without one, the text is
    // not searched for the greeting.
    if !records.iter().any(|r| r.agent == "RFC3464") || !is_opensmtpd(ctx) {
        return;
    }
    for r in records.iter_mut().filter(|r| r.agent == "RFC3464") {
        r.agent = "OpenSMTPD".into();
        if text::contains_ci(&r.diagnostic, "envelope expired") {
            // Given up: a final failure whatever the template said.
            r.kind = Kind::Bounce;
            r.action = "failed".into();
            r.status.clear();
            r.reason_hint = "expired".into();
            r.provenance.push(("status", "OpenSMTPD: envelope expired (the delayed template's 4.4.7 dropped)"));
        } else if r.status.ends_with(".0.0") && text::status_in_text(&r.diagnostic).is_none() {
            r.status.clear();
            r.provenance.push(("status", "OpenSMTPD: x.0.0 says no code was given"));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::parse::{parse_message, Kind};

    fn report(line: &str, action: &str, status: &str) -> String {
        format!(
            "From: MAILER-DAEMON@mx.example.org\nSubject: Delivery status notification\nContent-Type: multipart/mixed; boundary=\"b\"\n\n\
             --b\nContent-Type: text/plain\n\n    Hi!\n\n    This is the MAILER-DAEMON, please DO NOT REPLY to this email.\n\n\
             {line}\n\n    Below is a copy of the original message:\n\n--b\nContent-Type: message/delivery-status\n\n\
             Reporting-MTA: dns; mx.example.org\n\nFinal-Recipient: rfc822; a@example.net\nAction: {action}\nStatus: {status}\n--b--\n"
        )
    }

    #[test]
    fn an_expired_envelope_is_a_final_failure() {
        let pm = parse_message(report("a@example.net: Envelope expired", "delayed", "4.4.7").as_bytes());
        let r = &pm.records[0];
        assert_eq!((r.kind, r.status.as_str(), r.reason_hint.as_str()), (Kind::Bounce, "", "expired"));
    }

    #[test]
    fn a_generic_status_is_dropped_and_a_specific_one_kept() {
        let pm = parse_message(report("a@example.net: Domain does not exist", "failed", "5.0.0").as_bytes());
        assert_eq!(pm.records[0].status, "");
        assert_eq!(pm.records[0].diagnostic, "Domain does not exist");
        let pm = parse_message(report("a@example.net: 550 5.1.1 no such user", "failed", "5.1.1").as_bytes());
        assert_eq!(pm.records[0].status, "5.1.1");
    }
}
