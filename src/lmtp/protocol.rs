//! The LMTP command state machine (RFC 2033 over RFC 5321 verbs): command lines in,
//! replies and actions out. Pure: no I/O, no clock, so it is unit tested and fuzzed
//! directly. The session feeds it lines and DATA outcomes and writes what it returns.

use super::data::DataEnd;
use std::fmt::Write as _;

/// One reply: a code and one or more text lines (the enhanced code is part of the text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code.
    pub code: u16,
    /// Text lines; more than one makes a multi-line reply.
    pub lines: Vec<String>,
}

impl Reply {
    /// A one-line reply.
    pub fn new(code: u16, text: impl Into<String>) -> Reply {
        Reply { code, lines: vec![text.into()] }
    }

    /// Appends the wire form (`250-a\r\n250 b\r\n`) to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut s = String::new();
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            let _ = write!(s, "{}{}{}\r\n", self.code, sep, line);
        }
        if self.lines.is_empty() {
            let _ = write!(s, "{} \r\n", self.code);
        }
        out.extend_from_slice(s.as_bytes());
    }
}

/// Limits the state machine enforces.
#[derive(Debug, Clone)]
pub struct ProtocolLimits {
    /// Largest message accepted (SIZE announced, DATA checked).
    pub max_message_bytes: usize,
    /// Most recipients in one transaction.
    pub max_recipients: usize,
    /// Syntax errors and unknown commands tolerated before the connection is closed.
    pub max_errors: usize,
}

impl Default for ProtocolLimits {
    fn default() -> Self {
        ProtocolLimits { max_message_bytes: 50 << 20, max_recipients: 1000, max_errors: 20 }
    }
}

/// What the session must do after a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this reply and read the next command.
    Reply(Reply),
    /// Send this reply (354) and read the message until the lone dot.
    StartData(Reply),
    /// Send this reply and close the connection.
    Close(Reply),
}

/// A complete mail transaction, handed to the store after DATA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// MAIL FROM ("" for the null sender).
    pub sender: String,
    /// Accepted RCPT TO addresses, in order.
    pub recipients: Vec<String>,
    /// The message, dot-unstuffed, line ends as received.
    pub message: Vec<u8>,
}

/// What the session must do once the message is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterData {
    /// Store it, then call [`Protocol::delivered`] for the replies.
    Deliver(Transaction),
    /// Send these replies (one per recipient); nothing to store.
    Replies(Vec<Reply>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Greeted; LHLO not yet seen.
    Start,
    /// LHLO seen, no transaction.
    Ready,
    /// MAIL accepted (recipients may follow).
    Mail,
    /// DATA accepted; the session reads the message.
    Data,
    /// The store has the message; waiting for its outcome.
    Delivering,
}

/// The state of one LMTP connection.
#[derive(Debug)]
pub struct Protocol {
    hostname: String,
    limits: ProtocolLimits,
    state: State,
    sender: String,
    recipients: Vec<String>,
    pending: usize,
    errors: usize,
    /// `reject_invalid_verp`: refuse invalid return-path tokens at RCPT.
    rcpt_gate: Option<std::sync::Arc<crate::verp::RcptGate>>,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// LHLO domain.
    Lhlo(String),
    /// HELO or EHLO (not LMTP).
    Helo,
    /// `MAIL FROM:<addr> params`.
    Mail {
        /// The reverse path without angle brackets or source route ("" for the null sender <>).
        from: String,
        /// ESMTP parameters as (upper-cased keyword, value), value "" when none; may be empty.
        params: Vec<(String, String)>,
    },
    /// `RCPT TO:<addr> params`.
    Rcpt {
        /// The forward path without angle brackets or source route.
        to: String,
        /// ESMTP parameters as (upper-cased keyword, value), value "" when none; may be empty.
        params: Vec<(String, String)>,
    },
    /// DATA.
    Data,
    /// RSET.
    Rset,
    /// NOOP.
    Noop,
    /// QUIT.
    Quit,
    /// VRFY or EXPN.
    Vrfy,
    /// Any verb rebound does not implement.
    Unknown,
}

/// Why a command line could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyntaxError {
    /// MAIL/RCPT without a `<path>`.
    Path(&'static str),
    /// Not UTF-8 or a control character.
    Encoding,
}

/// Parses one command line (without or with its CRLF).
pub fn parse_command(line: &[u8]) -> Result<Command, SyntaxError> {
    let text = std::str::from_utf8(line).map_err(|_| SyntaxError::Encoding)?;
    let text = text.trim_end_matches(['\r', '\n']);
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(SyntaxError::Encoding);
    }
    let (verb, rest) = match text.find(' ') {
        Some(i) => (&text[..i], text[i + 1..].trim()),
        None => (text, ""),
    };
    let verb = verb.to_ascii_uppercase();
    Ok(match verb.as_str() {
        "LHLO" => Command::Lhlo(rest.to_string()),
        "HELO" | "EHLO" => Command::Helo,
        "MAIL" => {
            let (from, params) = parse_path(rest, "FROM:").ok_or(SyntaxError::Path("MAIL FROM:<address>"))?;
            Command::Mail { from, params }
        }
        "RCPT" => {
            let (to, params) = parse_path(rest, "TO:").ok_or(SyntaxError::Path("RCPT TO:<address>"))?;
            Command::Rcpt { to, params }
        }
        "DATA" => Command::Data,
        "RSET" => Command::Rset,
        "NOOP" => Command::Noop,
        "QUIT" => Command::Quit,
        "VRFY" | "EXPN" => Command::Vrfy,
        _ => Command::Unknown,
    })
}

/// Splits `FROM:<addr> K=V K2` into the address and its parameters.
fn parse_path(rest: &str, prefix: &str) -> Option<(String, Vec<(String, String)>)> {
    let head = rest.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = rest.get(prefix.len()..)?.trim_start();
    let rest = rest.strip_prefix('<')?;
    // The closing '>' is the first one outside a quoted local part.
    let mut quoted = false;
    let mut escaped = false;
    let mut end = None;
    for (i, c) in rest.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => {
                end = Some(i);
                break;
            }
            _ => {}
        }
    }
    let end = end?;
    let mut addr = &rest[..end];
    // A source route (@a,@b:user@c) is allowed and ignored (RFC 5321 4.1.2).
    if addr.starts_with('@') {
        addr = addr.split_once(':').map(|(_, a)| a).unwrap_or("");
    }
    let params = rest[end + 1..]
        .split_whitespace()
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_ascii_uppercase(), v.to_string()),
            None => (p.to_ascii_uppercase(), String::new()),
        })
        .collect();
    Some((addr.to_string(), params))
}

fn ok(code: u16, text: &str) -> Action {
    Action::Reply(Reply::new(code, text))
}

impl Protocol {
    /// A new connection's state; `hostname` is announced in replies.
    pub fn new(hostname: &str, limits: ProtocolLimits) -> Protocol {
        Protocol {
            hostname: hostname.to_string(),
            limits,
            state: State::Start,
            sender: String::new(),
            recipients: Vec::new(),
            pending: 0,
            errors: 0,
            rcpt_gate: None,
        }
    }

    /// The same, refusing RCPT addresses whose VERP token is invalid (550 5.7.1) when a
    /// gate is given.
    pub fn with_rcpt_gate(mut self, gate: Option<std::sync::Arc<crate::verp::RcptGate>>) -> Protocol {
        self.rcpt_gate = gate;
        self
    }

    /// The 220 greeting.
    pub fn greeting(&self) -> Reply {
        Reply::new(220, format!("{} LMTP rebound ready", self.hostname))
    }

    /// True while a mail transaction is open (MAIL given, not yet answered).
    pub fn in_transaction(&self) -> bool {
        matches!(self.state, State::Mail | State::Data | State::Delivering)
    }

    /// The reply to a command line longer than the limit (the line is discarded).
    pub fn line_too_long(&mut self) -> Action {
        self.error(Reply::new(500, "5.5.2 Line too long"))
    }

    /// Handles one command line.
    pub fn command(&mut self, line: &[u8]) -> Action {
        if matches!(self.state, State::Data | State::Delivering) {
            // The session never sends lines in these states; answer defensively.
            return ok(503, "5.5.1 Bad sequence of commands");
        }
        let cmd = match parse_command(line) {
            Ok(c) => c,
            Err(SyntaxError::Path(usage)) => return self.error(Reply::new(501, format!("5.5.4 Syntax: {usage}"))),
            Err(SyntaxError::Encoding) => return self.error(Reply::new(500, "5.5.2 Invalid characters in command")),
        };
        match cmd {
            Command::Lhlo(domain) => self.lhlo(&domain),
            Command::Helo => self.error(Reply::new(500, "5.5.1 This is LMTP: use LHLO")),
            Command::Mail { from, params } => self.mail(from, &params),
            Command::Rcpt { to, params } => self.rcpt(to, &params),
            Command::Data => self.data(),
            Command::Rset => {
                self.reset();
                if self.state != State::Start {
                    self.state = State::Ready;
                }
                ok(250, "2.0.0 Ok")
            }
            Command::Noop => ok(250, "2.0.0 Ok"),
            Command::Quit => Action::Close(Reply::new(221, format!("2.0.0 {} closing connection", self.hostname))),
            Command::Vrfy => ok(252, "2.5.0 Cannot VRFY user, but will accept message"),
            Command::Unknown => self.error(Reply::new(500, "5.5.1 Command unrecognized")),
        }
    }

    fn error(&mut self, reply: Reply) -> Action {
        self.errors += 1;
        if self.errors > self.limits.max_errors {
            return Action::Close(Reply::new(421, "4.7.0 Too many errors, closing connection"));
        }
        Action::Reply(reply)
    }

    fn bad_sequence(&mut self, text: &str) -> Action {
        self.error(Reply::new(503, format!("5.5.1 {text}")))
    }

    fn reset(&mut self) {
        self.sender.clear();
        self.recipients.clear();
    }

    fn lhlo(&mut self, domain: &str) -> Action {
        if domain.is_empty() {
            return self.error(Reply::new(501, "5.5.4 Syntax: LHLO hostname"));
        }
        self.reset();
        self.state = State::Ready;
        let lines = vec![
            self.hostname.clone(),
            "PIPELINING".into(),
            "ENHANCEDSTATUSCODES".into(),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            format!("SIZE {}", self.limits.max_message_bytes),
        ];
        Action::Reply(Reply { code: 250, lines })
    }

    fn mail(&mut self, from: String, params: &[(String, String)]) -> Action {
        match self.state {
            State::Start => return self.bad_sequence("Send LHLO first"),
            State::Mail => return self.bad_sequence("Nested MAIL command"),
            _ => {}
        }
        for (key, value) in params {
            match key.as_str() {
                "SIZE" => match value.parse::<u64>() {
                    Ok(n) if n > self.limits.max_message_bytes as u64 => {
                        return ok(552, "5.3.4 Message size exceeds fixed maximum message size");
                    }
                    Ok(_) => {}
                    Err(_) => return self.error(Reply::new(501, "5.5.4 Bad SIZE parameter")),
                },
                "BODY" => {
                    let v = value.to_ascii_uppercase();
                    if v != "7BIT" && v != "8BITMIME" {
                        return self.error(Reply::new(555, "5.5.4 Unsupported BODY type"));
                    }
                }
                "SMTPUTF8" if value.is_empty() => {}
                _ => return self.error(Reply::new(555, "5.5.4 Unsupported MAIL parameter")),
            }
        }
        self.reset();
        self.sender = from;
        self.state = State::Mail;
        ok(250, "2.1.0 Ok")
    }

    fn rcpt(&mut self, to: String, params: &[(String, String)]) -> Action {
        if self.state != State::Mail {
            return self.bad_sequence("Need MAIL command");
        }
        if !params.is_empty() {
            return self.error(Reply::new(555, "5.5.4 Unsupported RCPT parameter"));
        }
        if to.is_empty() {
            return self.error(Reply::new(501, "5.1.3 Bad recipient address syntax"));
        }
        if self.recipients.len() >= self.limits.max_recipients {
            return ok(452, "4.5.3 Too many recipients");
        }
        if let Some(gate) = &self.rcpt_gate {
            // Backscatter stops here: a bounce for a token we never issued (or one long
            // expired) is refused before its data is read.
            if let Err(e) = gate.check(&to, chrono::Utc::now().timestamp()) {
                tracing::info!(recipient_domain = %crate::store::event::domain_of(&to), error = %e, "RCPT refused: invalid return-path token");
                return ok(550, &crate::verp::RcptGate::refusal(&e));
            }
        }
        self.recipients.push(to);
        ok(250, "2.1.5 Ok")
    }

    fn data(&mut self) -> Action {
        if self.state != State::Mail {
            return self.bad_sequence("Need MAIL command");
        }
        if self.recipients.is_empty() {
            return self.bad_sequence("No valid recipients");
        }
        self.state = State::Data;
        Action::StartData(Reply::new(354, "End data with <CR><LF>.<CR><LF>"))
    }

    /// Handles the end of DATA: the message to store, or the replies that refuse it.
    pub fn data_received(&mut self, end: DataEnd) -> AfterData {
        let n = self.recipients.len();
        let refuse = |reply: Reply| AfterData::Replies(vec![reply; n]);
        let result = match end {
            DataEnd::Complete(message) => {
                self.state = State::Delivering;
                self.pending = n;
                return AfterData::Deliver(Transaction {
                    sender: self.sender.clone(),
                    recipients: self.recipients.clone(),
                    message,
                });
            }
            DataEnd::TooBig => refuse(Reply::new(552, "5.3.4 Message size exceeds fixed maximum message size")),
            DataEnd::LineTooLong => refuse(Reply::new(500, "5.5.2 Line too long")),
        };
        self.reset();
        self.state = State::Ready;
        result
    }

    /// The per-recipient replies once the store has answered (`committed` false: 451).
    pub fn delivered(&mut self, committed: bool) -> Vec<Reply> {
        let n = std::mem::take(&mut self.pending);
        self.reset();
        self.state = State::Ready;
        let reply = if committed {
            Reply::new(250, "2.0.0 Ok: stored")
        } else {
            Reply::new(451, "4.3.0 Temporary storage failure, try again later")
        };
        vec![reply; n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(a: &Action) -> u16 {
        match a {
            Action::Reply(r) | Action::StartData(r) | Action::Close(r) => r.code,
        }
    }

    fn proto() -> Protocol {
        Protocol::new("mx.test", ProtocolLimits { max_message_bytes: 100, max_recipients: 2, max_errors: 5 })
    }

    #[test]
    fn full_transaction() {
        let mut p = proto();
        assert_eq!(code(&p.command(b"LHLO client\r\n")), 250);
        assert_eq!(code(&p.command(b"MAIL FROM:<> BODY=8BITMIME SIZE=50 SMTPUTF8\r\n")), 250);
        assert_eq!(code(&p.command(b"RCPT TO:<a@b>\r\n")), 250);
        assert_eq!(code(&p.command(b"RCPT TO:<c@d>\r\n")), 250);
        assert_eq!(code(&p.command(b"RCPT TO:<e@f>\r\n")), 452);
        assert!(matches!(p.command(b"DATA\r\n"), Action::StartData(_)));
        let AfterData::Deliver(t) = p.data_received(DataEnd::Complete(b"x\r\n".to_vec())) else { panic!() };
        assert_eq!(t.sender, "");
        assert_eq!(t.recipients, vec!["a@b", "c@d"]);
        let replies = p.delivered(true);
        assert_eq!(replies.iter().map(|r| r.code).collect::<Vec<_>>(), vec![250, 250]);
        assert!(!p.in_transaction());
        assert_eq!(code(&p.command(b"RCPT TO:<a@b>\r\n")), 503);
    }

    #[test]
    fn sequence_and_params() {
        let mut p = proto();
        assert_eq!(code(&p.command(b"MAIL FROM:<>\r\n")), 503);
        assert_eq!(code(&p.command(b"EHLO x\r\n")), 500);
        assert_eq!(code(&p.command(b"LHLO x\r\n")), 250);
        assert_eq!(code(&p.command(b"MAIL FROM:<> SIZE=101\r\n")), 552);
        assert_eq!(code(&p.command(b"mail from: <a@b> RET=FULL\r\n")), 555);
        assert_eq!(code(&p.command(b"DATA\r\n")), 503);
        assert!(matches!(p.command(b"QUIT\r\n"), Action::Close(_)));
    }

    #[test]
    fn too_many_errors_closes() {
        let mut p = proto();
        for _ in 0..5 {
            assert_eq!(code(&p.command(b"BOGUS\r\n")), 500);
        }
        assert!(matches!(p.command(b"BOGUS\r\n"), Action::Close(Reply { code: 421, .. })));
    }

    #[test]
    fn paths() {
        assert_eq!(
            parse_command(b"MAIL FROM:<\"a>b\"@c> BODY=7BIT").unwrap(),
            Command::Mail { from: "\"a>b\"@c".into(), params: vec![("BODY".into(), "7BIT".into())] }
        );
        assert_eq!(
            parse_command(b"RCPT TO:<@r1,@r2:u@d>").unwrap(),
            Command::Rcpt { to: "u@d".into(), params: vec![] }
        );
        assert!(parse_command(b"RCPT TO:u@d").is_err());
        assert!(parse_command(b"RCPT T").is_err());
        assert!(parse_command(b"\xff\xfe").is_err());
    }

    #[test]
    fn multiline_reply_format() {
        let mut out = Vec::new();
        Reply { code: 250, lines: vec!["a".into(), "b".into()] }.write_to(&mut out);
        assert_eq!(out, b"250-a\r\n250 b\r\n");
    }

    proptest::proptest! {
        #[test]
        fn any_command_line_gets_a_reply(lines in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80), 0..20)) {
            let mut p = Protocol::new("mx.test", ProtocolLimits::default());
            for line in &lines {
                let a = p.command(line);
                proptest::prop_assert!((200..600).contains(&code(&a)));
            }
        }
    }
}
