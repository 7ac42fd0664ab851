//! The SMTP command a reply text says it answered ("after RCPT TO", ">>> DATA"), from
//! a list of wordings matched as one multi-pattern regex.

#[cfg(test)]
use super::collapse;
use std::sync::LazyLock;

/// The wordings of each SMTP command, in order of preference (matched ignoring case;
/// written in lower case so they also run case-sensitively over lower-cased text).
const COMMAND_WORDINGS: [(&str, &str); 6] = [
    ("RCPT", r"\b(?:after|in reply to|response to|did not like our|while sending|for)\s+(?:the\s+)?rcpt\b|\brcpt to (?:command|response)|\brcpt to:\s*<|\[rcpt_to\]|>>> rcpt\b|\bdoes not like recipient"),
    ("MAIL", r"\b(?:after|in reply to|response to|did not like our|while sending|for)\s+(?:the\s+)?mail\b|\bmail from (?:command|response)|\bmail from:\s*<|\[mail_from\]|>>> mail\b"),
    ("DATA", r"\b(?:after|in reply to|response to|did not like our)\s+(?:the\s+)?(?:end of\s+)?(?:final\s+)?data\b|\bend of data\b|\bdata (?:command|response)|\bafter (?:sending|transmitting) (?:the )?(?:message|data)|>>> data\b|\[data\]"),
    ("EHLO", r"\b(?:after|in reply to|response to|did not like our)\s+(?:the\s+)?ehlo\b|>>> ehlo\b"),
    ("HELO", r"\b(?:after|in reply to|response to|did not like our)\s+(?:the\s+)?helo\b|>>> helo\b"),
    ("CONN", r"\bafter (?:initial connection|connect)|\bgreeting\b|\bconnection (?:refused|timed out)|\bconnect to\b"),
];

/// The wordings as multi-pattern regexes (the pattern that matches leftmost, the
/// earlier at a tie, names the command: one search, no capture groups): matching
/// case-insensitively behind the literal gate of their alternation, and
/// case-sensitively for lower-cased ASCII text (see `gate::Folded`).
struct CommandWordings {
    ci: regex_automata::meta::Regex,
    gate: crate::parse::gate::Gate,
    lower: regex_automata::meta::Regex,
}

impl CommandWordings {
    /// The wordings, each pattern passed through `shape` first.
    fn build(shape: impl Fn(&str) -> String) -> Option<CommandWordings> {
        let ascii_wb = |p: &str| shape(p).replace("\\b", "(?-u:\\b)");
        let ci: Vec<String> = COMMAND_WORDINGS.iter().map(|(_, p)| format!("(?i){}", ascii_wb(p))).collect();
        let lower: Vec<String> = COMMAND_WORDINGS.iter().map(|(_, p)| ascii_wb(p)).collect();
        let joined = format!("(?i){}", COMMAND_WORDINGS.iter().map(|(_, p)| format!("(?:{})", ascii_wb(p))).collect::<Vec<_>>().join("|"));
        Some(CommandWordings {
            ci: regex_automata::meta::Regex::new_many(&ci).ok()?,
            gate: crate::parse::gate::Gate::new(&joined, true),
            lower: lower_ascii_many(&lower)?,
        })
    }

    /// The command the leftmost wording found in `s` names.
    fn find(&self, s: &str) -> &'static str {
        let pattern = if s.is_ascii() {
            // The gate's words (rcpt, data, greeting ...) say "no" more often than the
            // regex's own prefixes ("for", "after") on long texts.
            crate::parse::gate::with_lower(s.as_bytes(), |l| if self.gate.may_match_lower(l, true) { self.lower.find(l).map(|m| m.pattern()) } else { None })
        } else if self.gate.may_match(s.as_bytes()) {
            self.ci.find(s).map(|m| m.pattern())
        } else {
            None
        };
        pattern.and_then(|p| COMMAND_WORDINGS.get(p.as_usize())).map_or("", |(cmd, _)| cmd)
    }
}

/// Patterns for lower-cased ASCII text, compiled without Unicode classes: on ASCII
/// text `\s` and `\d` mean what they mean with Unicode, and the automaton the lazy
/// DFA builds from them is a fraction of the size (its cache no longer fills and
/// clears while it runs).
fn lower_ascii_many(patterns: &[String]) -> Option<regex_automata::meta::Regex> {
    regex_automata::meta::Regex::builder()
        .syntax(regex_automata::util::syntax::Config::new().unicode(false).utf8(false))
        .build_many(patterns)
        .ok()
}

static COMMAND: LazyLock<Option<CommandWordings>> = LazyLock::new(|| CommandWordings::build(str::to_string));

/// The wordings with each space widened to `\s+`: over raw text they match where the
/// wordings match the text's [`collapse`](super::collapse) (every wording starts and ends with a
/// non-space and has no class or `.` a space could fall in), so the collapsed copy
/// need not be built.
static COMMAND_SPACED: LazyLock<Option<CommandWordings>> = LazyLock::new(|| CommandWordings::build(|p| p.replace(' ', r"\s+")));

/// The SMTP command a reply text says it answered, if stated.
pub fn smtp_command(s: &str) -> &'static str {
    COMMAND.as_ref().map_or("", |c| c.find(s))
}

/// [`smtp_command`] of [`collapse`](super::collapse)`(s)`.
pub fn smtp_command_collapsed(s: &str) -> &'static str {
    COMMAND_SPACED.as_ref().map_or("", |c| c.find(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::text::clean_address;

    #[test]
    fn commands() {
        assert!(COMMAND.is_some(), "the command wordings compile");
        assert_eq!(smtp_command("did not like our final DATA: 550"), "DATA");
        assert_eq!(smtp_command("SMTP error from remote mail server after RCPT TO:<a@b.c>:"), "RCPT");
        assert_eq!(smtp_command("SMTP error from remote mail server after RCPT TO:<a@b.c>: Bitte überprüfen"), "RCPT");
        assert_eq!(smtp_command(">>> DATA\n<<< 554 no"), "DATA");
        // A transcript line naming an address that starts like a command is no command.
        assert_eq!(smtp_command(">>> mailadmin@example.org <mailadmin@example.org>"), "");
        assert_eq!(clean_address("rfc822; <A@b.c>"), "A@b.c");
        assert!(COMMAND_SPACED.is_some(), "the widened wordings compile");
        for t in [
            "after  RCPT\n TO:<a@b.c>",
            "in reply to\tthe\nrcpt to\n   command",
            "x\n\nafter end of\ndata: 550",
            "did not like our\r\nfinal  DATA",
            "connection\u{3000}refused by greeting",
            "after sending\nthe  message",
            "  >>> MAIL From:<a@b.c>\n<<< 550 no",
            "host said: 550 5.1.1 no such user",
            "RCPT TO:\n<a@b.c>\n[rcpt_to] after connect",
        ] {
            assert_eq!(smtp_command_collapsed(t), smtp_command(&collapse(t)), "{t:?}");
        }
    }
}
