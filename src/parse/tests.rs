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

#[test]
fn the_error_below_a_lead_in_line_is_the_diagnostic() {
    let m = "From: MAILER-DAEMON <>\nTo: s@example.jp\nSubject: Mail delivery failed\n\n\
        This is the mail agent at example.jp.\n\nThere was an error delivering your mail to <a@example.org>.\n\n\
        DNS lookup failure: host example.org not found\n\nMessage headers follow.\n\n\
        Received: from x\nSubject: hi\nTo: <a@example.org>\nMessage-Id: <1@example.jp>\nFrom: <s@example.jp>\n";
    let r = one(m);
    assert_eq!(r.recipient, "a@example.org");
    assert_eq!(r.diagnostic, "DNS lookup failure: host example.org not found");
}

#[test]
fn a_sendmail_transcript_entry_takes_the_remote_reply_above_it_and_nothing_below() {
    let m = "From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.jp>\nTo: s@example.jp\nSubject: Returned mail: Service unavailable\n\n\
        ----- Transcript of session follows -----\nWhile talking to mx.example.org:\n>>> MAIL From:<s@example.jp>\n\
        <<< 501 <s@example.jp>... sender refused\n554 <a@example.org>... Remote protocol error\n\
        550 example.net (smtp)... 550 Host unknown\n554 <b@example.net>... 550 Host unknown (Authoritative answer from name server)\n\n\
        ----- Unsent message follows -----\nSubject: x\n";
    let pm = parse_message(m.as_bytes());
    let d: Vec<(&str, &str)> = pm.records.iter().map(|r| (r.recipient.as_str(), r.diagnostic.as_str())).collect();
    assert_eq!(
        d,
        vec![
            ("a@example.org", "Remote protocol error >>> MAIL From:<s@example.jp> <<< 501 <s@example.jp>... sender refused"),
            ("b@example.net", "550 Host unknown (Authoritative answer from name server)"),
        ]
    );
    assert_eq!(pm.records[0].smtp_command, "MAIL");
}

#[test]
fn a_code_in_the_remote_replies_of_the_transcript_beats_a_made_up_status() {
    let m = "From: MAILER-DAEMON@mx.example.jp\nSubject: Returned mail\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n\n\
        --b\n\n   ----- Transcript of session follows -----\n... while talking to mx1.example.com.:\n\
        <<< 554 mx1.example.com ESMTP not accepting connections\n>>> QUIT\n<<< 421 4.7.0 mx1.example.com Error: too many errors\n\
        554 5.0.0 Service unavailable\n--b\nContent-Type: message/delivery-status\n\n\
        Reporting-MTA: dns; mx.example.jp\n\nFinal-Recipient: RFC822; a@example.com\nAction: failed\nStatus: 5.5.0\n\
        Diagnostic-Code: SMTP; 554 mx1.example.com ESMTP not accepting connections\n--b--\n";
    let r = one(m);
    assert_eq!(r.status, "4.7.0");
}

#[test]
fn a_specific_status_is_not_replaced_from_the_transcript() {
    let m = "From: MAILER-DAEMON@mx.example.jp\nSubject: Returned mail\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n\n\
        --b\n\n   ----- Transcript of session follows -----\n... while talking to mx1.example.com.:\n\
        >>> RCPT To:<a@example.com>\n<<< 550 User unknown\n>>> DATA\n<<< 503 5.5.1 No recipients\n\
        --b\nContent-Type: message/delivery-status\n\n\
        Reporting-MTA: dns; mx.example.jp\n\nFinal-Recipient: RFC822; a@example.com\nAction: failed\nStatus: 5.1.1\n\
        Diagnostic-Code: SMTP; 550 User unknown\n--b--\n";
    assert_eq!(one(m).status, "5.1.1");
}
