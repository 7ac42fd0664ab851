//! au (KDDI) EZweb: "Mail System Error - Returned Mail" from Postmaster@ezweb.ne.jp. After
//! a Japanese explanation, one English sentence states why the mail came back ("The
//! user(s) account is disabled.", "Each of the following recipients was rejected by a
//! remote mail server.") for all the recipients listed with it, above or below them; a
//! recipient's own line may add the reply of au's internal server. The sentence is au's
//! verdict on its own subscriber, so it leads each recipient's diagnostic.

use crate::parse::context::Context;
use crate::parse::record::Record;
use crate::parse::text;

/// Whether the report is EZweb's own notice.
pub fn is_ezweb(ctx: &Context) -> bool {
    let from = text::first_address(ctx.headers.get_or_empty("from")).unwrap_or("");
    let domain = from.rsplit('@').next().unwrap_or("").as_bytes();
    let sub = domain.len().checked_sub(12).and_then(|k| domain.get(k..)).is_some_and(|t| t.eq_ignore_ascii_case(b".ezweb.ne.jp"));
    if from.contains('@') && (domain.eq_ignore_ascii_case(b"ezweb.ne.jp") || sub) {
        return true;
    }
    text::is_system_address(from) && ctx.headers.get_all("received").any(|v| text::contains_ci(v, "(EZweb Mail)"))
}

/// The notice's English statement: the first paragraph of plain ASCII prose (not
/// ISO-2022-JP left undecoded) that is neither a recipient line, a session transcript
/// nor a returned header block.
pub fn statement(report: &str) -> Option<String> {
    let mut para: Vec<&str> = Vec::new();
    for line in text::prefix(report, 8192).lines().map(str::trim) {
        let prose = !line.is_empty()
            && line.is_ascii()
            && !line.contains('\x1b')
            && !line.contains('@')
            && !line.starts_with(">>>")
            && !line.starts_with("<<<")
            && !line.starts_with("---")
            && !looks_like_header(line);
        if prose {
            para.push(line);
        } else if !para.is_empty() {
            break;
        }
    }
    let s = text::collapse(&para.join(" "));
    // One sentence: a longer paragraph is some other template's preamble.
    (s.split_whitespace().count() >= 3 && s.len() <= 160).then_some(s)
}

/// "Received: from ...", "Content-Type: ...": a header field, not prose.
fn looks_like_header(line: &str) -> bool {
    line.split_once(':').is_some_and(|(name, _)| !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// Puts the notice's statement in front of each recipient's diagnostic read from the
/// text (a Diagnostic-Code field is a standard report's own, left as it is).
pub fn refine(ctx: &Context, records: &mut [Record]) {
    let from_field = |r: &Record| r.provenance.iter().any(|&(f, src)| f == "diagnostic" && src == "Diagnostic-Code");
    // With no record to change (none, or all from Diagnostic-Code fields), the headers
    // are not searched.
    if records.iter().all(from_field) || !is_ezweb(ctx) {
        return;
    }
    let Some(s) = statement(&ctx.text) else { return };
    for r in records.iter_mut().filter(|r| !from_field(r)) {
        r.agent = "EZweb".into();
        if !text::contains_ci(&r.diagnostic, &s) {
            r.diagnostic = text::collapse(&format!("{s} {}", r.diagnostic));
            r.provenance.push(("diagnostic", "EZweb: the notice's statement, then the recipient's line"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::statement;

    #[test]
    fn a_standard_report_s_diagnostic_code_is_left_alone() {
        let m = "From: MAILER-DAEMON@lsean.ezweb.ne.jp\nSubject: Undelivered Mail Returned to Sender\n\
                 Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n\n\
                 --b\nContent-Type: text/plain\n\nThis is the mail system at host lsean.ezweb.ne.jp.\n\n\
                 <a@ezweb.ne.jp>: host x[192.0.2.1] said: 550 5.1.1 no such user\n\n\
                 --b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; lsean.ezweb.ne.jp\n\n\
                 Final-Recipient: rfc822; a@ezweb.ne.jp\nAction: failed\nStatus: 5.1.1\n\
                 Diagnostic-Code: smtp; 550 5.1.1 no such user\n--b--\n";
        let pm = crate::parse::parse_message(m.as_bytes());
        assert_eq!(pm.records[0].diagnostic, "550 5.1.1 no such user");
    }

    #[test]
    fn the_statement_is_the_english_prose_paragraph() {
        let t = "\u{3042}\u{3044}\n\nThe user(s) account is disabled.\n\n\n<a@ezweb.ne.jp>: 550 user unknown\n";
        assert_eq!(statement(t).as_deref(), Some("The user(s) account is disabled."));
        let t = "<a@ezweb.ne.jp>\n\nEach of the following recipients was rejected by a remote\nmail server.\n----\nReceived: from x\n";
        assert_eq!(statement(t).as_deref(), Some("Each of the following recipients was rejected by a remote mail server."));
        assert_eq!(statement("Recipient: <a@ezweb.ne.jp>\n>>> RCPT TO:<a@ezweb.ne.jp>\n"), None);
        assert_eq!(statement("I'm sorry to have to inform you that your message could not\nbe delivered to one or more recipients. It's attached below. For further\nassistance, please send mail to postmaster.\n"), None);
    }
}
