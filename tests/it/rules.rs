//! Tests: classification rules (operator overrides, `rebound rules check|list|try`).

use rebound::classify::{classify_reply, Classifier, ClassifyConfig, Fault, Reason};
use std::process::Command;

/// The text of `samples/rfc/NAME`.
fn sample(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/rfc").join(name);
    String::from_utf8(std::fs::read(&path).unwrap()).unwrap()
}

fn rebound() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rebound"));
    c.env_remove("REBOUND_CONFIG").env_remove("REBOUND_DB");
    c
}

const OPERATOR: &str = r#"
[[rule]]
id = "local.acme-quota"
reason = "mailboxfull"
text = ['ACME-Q17']
examples = ["550 ACME-Q17 try later"]

[[rule]]
id = "blocked.block-word"
reason = "policyviolation"
text = ['\bblocked\b']
examples = ["550 permanent failure (a@example.com:blocked)"]
"#;

#[test]
fn operator_rules_add_and_override_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, OPERATOR).unwrap();
    let c = Classifier::from_config(&ClassifyConfig { rules: Some(path) }).unwrap();
    let v = c.classify_reply(Some(550), "5.0.0", "550 ACME-Q17 try later");
    assert_eq!((v.reason, v.rule.as_str()), (Reason::MailboxFull, "local.acme-quota"));
    let v = c.classify_reply(Some(550), "5.0.0", "550 permanent failure (a@example.com:blocked)");
    assert_eq!((v.reason, v.rule.as_str()), (Reason::PolicyViolation, "blocked.block-word"));
    // The defaults are unchanged elsewhere.
    let v = c.classify_reply(Some(550), "5.1.1", "550 5.1.1 user unknown");
    assert_eq!(v.reason, Reason::UserUnknown);
    assert_eq!(classify_reply(Some(550), "5.0.0", "550 ACME-Q17 try later").reason, Reason::Undefined);
}

#[test]
fn a_missing_operator_file_is_an_error() {
    let err = Classifier::from_config(&ClassifyConfig { rules: Some("/nonexistent/rules.toml".into()) });
    assert!(err.is_err());
}

#[test]
fn rules_check_accepts_the_defaults_and_a_good_file() {
    let out = rebound().args(["rules", "check"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("all decided by their own rule"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, OPERATOR).unwrap();
    let out = rebound().args(["rules", "check"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn rules_check_reports_a_failing_example_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "\n[[rule]]\nid = \"local.never\"\nreason = \"blocked\"\ntext = ['zzz-never']\nexamples = [\"550 5.1.1 user unknown\"]\n").unwrap();
    let out = rebound().args(["rules", "check"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:3: rule local.never"), "{err}");
}

#[test]
fn rules_check_rejects_a_bad_regex_and_a_rule_without_examples() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[[rule]]\nid = \"local.bad\"\nreason = \"blocked\"\ntext = ['(unclosed']\nexamples = [\"x\"]\n").unwrap();
    let out = rebound().args(["rules", "check"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("local.bad"));
    std::fs::write(&path, "[[rule]]\nid = \"local.bare\"\nreason = \"blocked\"\ntext = ['x']\n").unwrap();
    let out = rebound().args(["rules", "check"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("example"));
}

#[test]
fn rules_list_and_try() {
    let out = rebound().args(["rules", "list", "--format", "jsonl"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["id"], "kind.autoreply");
    assert!(text.lines().count() > 40);
    let out = rebound()
        .args(["rules", "try", "--code", "550", "--status", "5.7.1", "550 5.7.1 client blocked using zen.spamhaus.org"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["reason"].as_str(), v["fault"].as_str(), v["hard"].as_bool()), (Some("blocked"), Some("sender"), Some(false)));
}

/// Provider wording where a careless reading says "dead address" but the sender is at fault.
#[test]
fn sender_blocks_are_not_dead_addresses() {
    let cases = [
        (550, "5.7.1", "550 5.7.1 Service unavailable, Client host [192.0.2.1] blocked using Spamhaus."),
        (554, "5.7.1", "554 5.7.1 <a@example.com>: Client host rejected: Access denied"),
        (550, "5.7.1", "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150)."),
        (550, "5.7.26", "550 5.7.26 This mail is unauthenticated, which poses a security risk to the sender and Gmail users, and has been blocked."),
        (421, "4.7.0", "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints"),
        (550, "5.7.1", "550 5.7.1 Our system has detected that this message is likely unsolicited mail. To reduce the amount of spam sent to Gmail, this message has been blocked."),
        (553, "5.7.1", "553 5.7.1 [BL21] Connections will not be accepted from 192.0.2.1, because the ip is in Spamhaus's list"),
        (550, "5.1.1", "550 5.1.1 <a@example.com>: Recipient address rejected: blocked using zen.spamhaus.org"),
    ];
    for (code, status, text) in cases {
        let v = classify_reply(Some(code), status, text);
        assert_eq!(v.fault, Fault::Sender, "{text}: {v:?}");
        assert!(!v.hard, "{text}");
    }
}

/// au/EZweb states why in one English sentence for all the recipients it lists; that
/// sentence, not the internal server's reply quoted beside the address, decides, and a
/// sentence that only frames a quoted reply leaves the reply to decide.
#[test]
fn ezweb_notice_statement_decides_over_the_quoted_reply() {
    let c = Classifier::with_default_rules();
    let raw = sample("ezweb-account-disabled.eml");
    let p = rebound::pipeline::process_message(raw.as_bytes(), &c);
    let v = &p.records[0].verdict;
    assert_eq!((v.reason, v.hard), (Reason::Suspend, false), "{:?}", p.records[0].record.diagnostic);

    let framed = raw.replace("The user(s) account is disabled.", "Each of the following recipients was rejected by a remote\nmail server.");
    let p = rebound::pipeline::process_message(framed.as_bytes(), &c);
    let v = &p.records[0].verdict;
    assert_eq!((v.reason, v.hard), (Reason::UserUnknown, true), "{:?}", p.records[0].record.diagnostic);
}

/// A notice that names the recipient but not why (InterScan's "Unable to deliver message
/// to") takes the reason from the message it returns when that is itself a failure
/// report for the same recipient; an ordinary returned message adds nothing.
#[test]
fn a_returned_failure_report_says_why_when_the_notice_does_not() {
    let c = Classifier::with_default_rules();
    let raw = sample("interscan-returned-report.eml");
    let p = rebound::pipeline::process_message(raw.as_bytes(), &c);
    let v = &p.records[0].verdict;
    assert_eq!((v.reason, v.hard), (Reason::UserUnknown, true), "{:?}", p.records[0].record.diagnostic);
    assert_eq!(p.records[0].record.status, "", "the notice itself states no status");

    let start = raw.find("This is the mail system").unwrap();
    let end = raw.find("--------------InterScan_NT_MIME_Boundary--").unwrap();
    let plain = format!("{}See you on Monday.\n\n{}", &raw[..start], &raw[end..]);
    let p = rebound::pipeline::process_message(plain.as_bytes(), &c);
    assert_eq!(p.records[0].record.recipient, "jan.devries@example.nl");
    assert!(!p.records[0].verdict.hard);
    assert_eq!(p.records[0].verdict.reason, Reason::Undefined);
}

/// Amazon SES receiving writes a DSN only for a receipt rule's Bounce action, whose reply
/// the account chose: its "Mailbox does not exist" is that rule refusing the mail (soft,
/// the recipient side's doing), while the same words from any other reporter stay an
/// unknown address.
#[test]
fn an_ses_receipt_rule_bounce_is_a_filter_not_a_dead_address() {
    let c = Classifier::with_default_rules();
    let raw = sample("ses-receiving-receipt-rule.eml");
    let p = rebound::pipeline::process_message(raw.as_bytes(), &c);
    let v = &p.records[0].verdict;
    assert_eq!((v.reason, v.hard, v.fault), (Reason::Filtered, false, Fault::Recipient));
    assert_eq!(p.records[0].record.status, "5.1.1");

    let other = raw.replace("Reporting-MTA: dns; inbound-smtp.eu-west-1.amazonaws.com", "Reporting-MTA: dns; mx.support.example.org");
    let p = rebound::pipeline::process_message(other.as_bytes(), &c);
    let v = &p.records[0].verdict;
    assert_eq!((v.reason, v.hard), (Reason::UserUnknown, true));
}
