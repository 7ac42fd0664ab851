//! Whole-message parsing tests: small hand-written reports, one behaviour each.

use super::*;

fn one(msg: &str) -> Record {
    let pm = parse_message(msg.as_bytes());
    assert_eq!(pm.records.len(), 1, "{:?}", pm.records);
    pm.records.into_iter().next().unwrap_or_default()
}

#[test]
fn fields_inline_in_the_text_do_not_leak_into_diagnostics() {
    let m = "From: MAILER-DAEMON@mx.example.org\nSubject: Returned mail\n\n\
        --- The following addresses had delivery problems ---\n<a@example.net> (unrecoverable error)\n\n\
        Reporting-MTA: dns; mx.example.org\n\n\
        Final-Recipient: rfc822;a@example.net\nAction: failed\nStatus: 5.0.0\nDiagnostic-Code: smtp; 550 user unknown\n\n\
        Final-Recipient: rfc822;b@example.net\nAction: delayed\nStatus: 4.0.0\n";
    let pm = parse_message(m.as_bytes());
    assert_eq!(pm.records.len(), 2);
    assert_eq!(pm.records[0].diagnostic, "550 user unknown");
    assert!(!pm.records[1].diagnostic.contains("Final-Recipient"), "{}", pm.records[1].diagnostic);
}

#[test]
fn an_x_unix_diagnostic_is_a_local_mailer_failure() {
    let m = "From: MAILER-DAEMON@mx.example.org\nSubject: Returned mail\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n\n\
        --b\n\nDelivery to a local program failed.\n--b\nContent-Type: message/delivery-status\n\n\
        Reporting-MTA: dns; mx.example.org\n\nFinal-Recipient: rfc822; a@example.org\nAction: delayed\nStatus: 4.5.0\nDiagnostic-Code: X-Unix; 71\n--b--\n";
    let r = one(m);
    assert_eq!(r.reason_hint, "mailererror");
}
