//! The milter conversation as a pure state machine: commands in, replies (or a message
//! to store) out. No I/O, no clock: the session does the reading, writing and storing,
//! which keeps this part testable and fuzzable like the LMTP session.

use super::codec::{CodecError, Packet};
use super::command::{proto, Command, CommandError, Reply, VERSION};
use std::collections::HashMap;
use std::sync::Arc;

/// What to do with a message rebound recorded, once it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnEom {
    /// Let it continue to its mailbox as before.
    #[default]
    Accept,
    /// Drop it after recording (rebound is its only consumer).
    Discard,
}

/// The decisions the milter makes, from the `[milter]` section.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Lower-case domains whose recipients are return paths (bounce addresses).
    pub bounce_domains: Vec<String>,
    /// Refuse forged or expired tokens at RCPT with 550 5.7.1.
    pub reject_invalid_verp: bool,
    /// Accept or discard a recorded message.
    pub on_eom: OnEom,
    /// Largest message (headers and body) assembled for parsing.
    pub max_message_bytes: usize,
}

/// What the return-path token of a bounce-domain recipient says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStatus {
    /// A valid signed token (or one that cannot be judged before the message, e.g. classic VERP).
    Valid,
    /// A token whose signature does not verify.
    Forged,
    /// A correctly signed token past its expiry day.
    Expired,
    /// No token at all (postmaster@, abuse@ ...): never refused.
    Absent,
}

/// Verifies the token of a recipient address (`local@domain`, no angle brackets).
pub trait TokenCheck: Send + Sync {
    /// The status of the token in `address`.
    fn check(&self, address: &str) -> TokenStatus;
}

impl<F: Fn(&str) -> TokenStatus + Send + Sync> TokenCheck for F {
    fn check(&self, address: &str) -> TokenStatus {
        self(address)
    }
}

/// A message for the bounce domains, assembled at end of message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// The MTA's queue id (macro `i`), "" when not sent.
    pub queue_id: String,
    /// MAIL FROM without angle brackets ("" for <>).
    pub sender: String,
    /// The accepted recipients in the bounce domains.
    pub recipients: Vec<String>,
    /// Headers as received and the body, CRLF line ends.
    pub raw: Vec<u8>,
}

/// What the session must do after a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this reply.
    Reply(Reply),
    /// Send nothing (the command expects no reply).
    Silent,
    /// Store the message, then send [`Milter::stored`]'s reply.
    Store(Delivery),
    /// Close the connection.
    Close,
}

/// Errors that end a milter connection (the MTA then applies its default action).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A command came before option negotiation.
    #[error("milter command '{0}' before option negotiation")]
    NotNegotiated(char),
    /// The MTA speaks a version too old to negotiate with.
    #[error("milter protocol version {0} is not supported (need 2 to 6)")]
    Version(u32),
    /// The packet layer failed.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A command could not be decoded.
    #[error(transparent)]
    Command(#[from] CommandError),
}

/// Protocol bits rebound asks for when offered: no reply per header or body chunk
/// (saves a round trip each), header values with their leading space (so headers are
/// reassembled as received), and no unknown SMTP commands.
const WANTED_PROTOCOL: u32 = proto::NR_HDR | proto::NR_BODY | proto::HDR_LEADSPC | proto::NOUNKNOWN;

#[derive(Debug, Default)]
struct Transaction {
    sender: String,
    ours: Vec<String>,
    others: usize,
    raw: Vec<u8>,
    in_body: bool,
    overflow: bool,
    /// Answered with accept already (not for rebound): ignore the rest.
    passed: bool,
}

/// One milter connection's state.
pub struct Milter {
    policy: Arc<Policy>,
    check: Arc<dyn TokenCheck>,
    /// Negotiated protocol bits (None until SMFIC_OPTNEG).
    protocol: Option<u32>,
    macros: HashMap<u8, Vec<(String, String)>>,
    tx: Option<Transaction>,
    oversized: u64,
}

impl Milter {
    /// A fresh connection.
    pub fn new(policy: Arc<Policy>, check: Arc<dyn TokenCheck>) -> Milter {
        Milter { policy, check, protocol: None, macros: HashMap::new(), tx: None, oversized: 0 }
    }

    /// Decodes a packet and handles the command.
    pub fn handle_packet(&mut self, p: &Packet) -> Result<Step, ProtocolError> {
        let cmd = Command::decode(p)?;
        self.handle(cmd)
    }

    /// The value of macro `name` sent for any stage ("" when not sent).
    pub fn macro_value(&self, name: &str) -> &str {
        let braced = format!("{{{name}}}");
        self.macros
            .values()
            .flat_map(|pairs| pairs.iter())
            .find(|(k, _)| k == name || *k == braced)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// How many bounce-domain messages were too big to record on this connection.
    pub fn oversized(&self) -> u64 {
        self.oversized
    }

    /// True between MAIL and the end (or abort) of that message.
    pub fn in_message(&self) -> bool {
        self.tx.is_some()
    }

    /// Handles one command.
    pub fn handle(&mut self, cmd: Command) -> Result<Step, ProtocolError> {
        let Some(protocol) = self.protocol else {
            return match cmd {
                Command::OptNeg { version, actions: _, protocol } => self.negotiate(version, protocol),
                Command::Quit => Ok(Step::Close),
                other => Err(ProtocolError::NotNegotiated(code_of(&other))),
            };
        };
        let ack = |no_reply_bit: u32| if protocol & no_reply_bit != 0 { Step::Silent } else { Step::Reply(Reply::Continue) };
        Ok(match cmd {
            // A second negotiation is not in the protocol; answer it the same way.
            Command::OptNeg { version, protocol, .. } => self.negotiate(version, protocol)?,
            Command::Macro { stage, pairs } => {
                self.macros.insert(stage, pairs);
                Step::Silent
            }
            Command::Connect { .. } => ack(proto::NR_CONN),
            Command::Helo(_) => ack(proto::NR_HELO),
            Command::Mail { sender, .. } => {
                self.tx = Some(Transaction { sender: strip_brackets(&sender).to_string(), ..Default::default() });
                ack(proto::NR_MAIL)
            }
            Command::Rcpt { recipient, .. } => self.rcpt(&recipient, ack(proto::NR_RCPT)),
            Command::Data => self.pass_unless_ours().unwrap_or(ack(proto::NR_DATA)),
            Command::Header { name, value } => {
                let leadspc = protocol & proto::HDR_LEADSPC != 0;
                self.with_tx(|tx, max| {
                    let mut line = Vec::with_capacity(name.len() + value.len() + 4);
                    line.extend_from_slice(&name);
                    line.push(b':');
                    if !leadspc {
                        line.push(b' ');
                    }
                    push_crlf_normalised(&mut line, &value);
                    line.extend_from_slice(b"\r\n");
                    append(tx, &line, max);
                });
                ack(proto::NR_HDR)
            }
            Command::EndOfHeaders => match self.pass_unless_ours() {
                Some(step) => step,
                None => {
                    self.with_tx(start_body);
                    ack(proto::NR_EOH)
                }
            },
            Command::Body(chunk) => {
                self.with_tx(|tx, max| {
                    start_body(tx, max);
                    append(tx, &chunk, max);
                });
                ack(proto::NR_BODY)
            }
            Command::EndOfMessage(chunk) => self.end_of_message(&chunk),
            Command::Abort => {
                self.tx = None;
                Step::Silent
            }
            Command::Quit => Step::Close,
            Command::QuitNewConnection => {
                self.tx = None;
                self.macros.clear();
                Step::Silent
            }
            Command::Unknown(_) => ack(proto::NR_UNKN),
        })
    }

    /// The reply to the end of a message after the store answered: accept or discard
    /// per configuration when it committed, tempfail (the MTA keeps the message) when not.
    pub fn stored(&mut self, committed: bool) -> Reply {
        let tx = self.tx.take();
        if !committed {
            return Reply::Tempfail;
        }
        match tx {
            Some(tx) if may_discard(&self.policy, &tx) => Reply::Discard,
            _ => Reply::Accept,
        }
    }

    fn negotiate(&mut self, version: u32, offered: u32) -> Result<Step, ProtocolError> {
        if version < 2 {
            return Err(ProtocolError::Version(version));
        }
        let protocol = WANTED_PROTOCOL & offered;
        self.protocol = Some(protocol);
        // No actions: rebound never modifies a message.
        Ok(Step::Reply(Reply::OptNeg { version: version.min(VERSION), actions: 0, protocol }))
    }

    fn rcpt(&mut self, recipient: &str, ok: Step) -> Step {
        let address = strip_brackets(recipient);
        let ours = self.is_bounce_domain(address);
        if ours && self.policy.reject_invalid_verp {
            let text = match self.check.check(address) {
                TokenStatus::Forged => Some("550 5.7.1 Invalid return-path token: forged bounce refused"),
                TokenStatus::Expired => Some("550 5.7.1 Expired return-path token: bounce refused"),
                TokenStatus::Valid | TokenStatus::Absent => None,
            };
            if let Some(text) = text {
                return Step::Reply(Reply::ReplyCode(text.to_string()));
            }
        }
        let tx = self.tx.get_or_insert_with(Transaction::default);
        if ours {
            tx.ours.push(address.to_string());
        } else {
            tx.others += 1;
        }
        ok
    }

    /// Accepts (ends milter processing of) a message with no bounce-domain recipient.
    fn pass_unless_ours(&mut self) -> Option<Step> {
        let tx = self.tx.get_or_insert_with(Transaction::default);
        if tx.passed {
            return Some(Step::Reply(Reply::Accept));
        }
        if tx.ours.is_empty() {
            tx.passed = true;
            tx.raw = Vec::new();
            return Some(Step::Reply(Reply::Accept));
        }
        None
    }

    fn with_tx(&mut self, f: impl FnOnce(&mut Transaction, usize)) {
        let max = self.policy.max_message_bytes;
        if let Some(tx) = self.tx.as_mut().filter(|tx| !tx.passed && !tx.ours.is_empty()) {
            f(tx, max);
        }
    }

    fn end_of_message(&mut self, chunk: &[u8]) -> Step {
        self.with_tx(|tx, max| {
            if !chunk.is_empty() {
                start_body(tx, max);
                append(tx, chunk, max);
            }
        });
        let queue_id = self.macro_value("i").to_string();
        let Some(tx) = self.tx.as_mut() else { return Step::Reply(Reply::Continue) };
        if tx.passed || tx.ours.is_empty() {
            self.tx = None;
            return Step::Reply(Reply::Accept);
        }
        if tx.overflow {
            self.oversized += 1;
            // Too big to parse: refuse it only where rebound is its only consumer (a
            // bounce refused at the door is the sender's to keep); otherwise let it pass.
            let step = if may_discard(&self.policy, tx) {
                Step::Reply(Reply::ReplyCode("552 5.3.4 Message too big for bounce processing".into()))
            } else {
                Step::Reply(Reply::Accept)
            };
            self.tx = None;
            return step;
        }
        let delivery = Delivery {
            queue_id,
            sender: tx.sender.clone(),
            recipients: tx.ours.clone(),
            raw: std::mem::take(&mut tx.raw),
        };
        Step::Store(delivery)
    }

    fn is_bounce_domain(&self, address: &str) -> bool {
        let domain = address.rsplit_once('@').map(|(_, d)| d.trim_end_matches('.')).unwrap_or("");
        !domain.is_empty() && self.policy.bounce_domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }
}

/// Discard only when configured and every recipient is a bounce address: other
/// recipients' copies must not be lost.
fn may_discard(policy: &Policy, tx: &Transaction) -> bool {
    policy.on_eom == OnEom::Discard && tx.others == 0
}

fn code_of(cmd: &Command) -> char {
    match cmd {
        Command::OptNeg { .. } => 'O',
        Command::Macro { .. } => 'D',
        Command::Connect { .. } => 'C',
        Command::Helo(_) => 'H',
        Command::Mail { .. } => 'M',
        Command::Rcpt { .. } => 'R',
        Command::Data => 'T',
        Command::Header { .. } => 'L',
        Command::EndOfHeaders => 'N',
        Command::Body(_) => 'B',
        Command::EndOfMessage(_) => 'E',
        Command::Abort => 'A',
        Command::Quit => 'Q',
        Command::QuitNewConnection => 'K',
        Command::Unknown(_) => 'U',
    }
}

/// `<a@b>` → `a@b` (the MTA sends addresses with their angle brackets).
pub fn strip_brackets(address: &str) -> &str {
    let a = address.trim();
    a.strip_prefix('<').and_then(|a| a.strip_suffix('>')).unwrap_or(a)
}

fn start_body(tx: &mut Transaction, max: usize) {
    if !tx.in_body {
        tx.in_body = true;
        append(tx, b"\r\n", max);
    }
}

fn append(tx: &mut Transaction, bytes: &[u8], max: usize) {
    if tx.overflow {
        return;
    }
    if tx.raw.len().saturating_add(bytes.len()) > max {
        tx.overflow = true;
        tx.raw = Vec::new();
        return;
    }
    tx.raw.extend_from_slice(bytes);
}

/// Appends a header value with its folds as CRLF (MTAs send bare LF inside values).
fn push_crlf_normalised(out: &mut Vec<u8>, value: &[u8]) {
    let mut prev = 0u8;
    for &b in value {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
