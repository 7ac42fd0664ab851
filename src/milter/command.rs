//! The milter verbs: packets from the MTA decoded into [`Command`]s, and the
//! [`Reply`]s rebound sends back. Sendmail milter protocol version 6 as spoken by
//! Sendmail 8.14+ and Postfix's smtpd_milters. Pure.

use super::codec::{be_u32, encode, split_cstrings, Packet};

/// Protocol version rebound speaks.
pub const VERSION: u32 = 6;

/// SMFIP_* protocol bits (what the MTA may skip or send without waiting for a reply).
pub mod proto {
    /// Do not send SMFIC_CONNECT.
    pub const NOCONNECT: u32 = 0x0000_0001;
    /// Do not send SMFIC_HELO.
    pub const NOHELO: u32 = 0x0000_0002;
    /// Do not send SMFIC_MAIL.
    pub const NOMAIL: u32 = 0x0000_0004;
    /// Do not send SMFIC_RCPT.
    pub const NORCPT: u32 = 0x0000_0008;
    /// Do not send SMFIC_BODY.
    pub const NOBODY: u32 = 0x0000_0010;
    /// Do not send SMFIC_HEADER.
    pub const NOHDRS: u32 = 0x0000_0020;
    /// Do not send SMFIC_EOH.
    pub const NOEOH: u32 = 0x0000_0040;
    /// No reply to SMFIC_HEADER.
    pub const NR_HDR: u32 = 0x0000_0080;
    /// Do not send SMFIC_UNKNOWN.
    pub const NOUNKNOWN: u32 = 0x0000_0100;
    /// Do not send SMFIC_DATA.
    pub const NODATA: u32 = 0x0000_0200;
    /// The MTA understands SMFIR_SKIP.
    pub const SKIP: u32 = 0x0000_0400;
    /// Also send rejected RCPTs.
    pub const RCPT_REJ: u32 = 0x0000_0800;
    /// No reply to SMFIC_CONNECT.
    pub const NR_CONN: u32 = 0x0000_1000;
    /// No reply to SMFIC_HELO.
    pub const NR_HELO: u32 = 0x0000_2000;
    /// No reply to SMFIC_MAIL.
    pub const NR_MAIL: u32 = 0x0000_4000;
    /// No reply to SMFIC_RCPT.
    pub const NR_RCPT: u32 = 0x0000_8000;
    /// No reply to SMFIC_DATA.
    pub const NR_DATA: u32 = 0x0001_0000;
    /// No reply to SMFIC_UNKNOWN.
    pub const NR_UNKN: u32 = 0x0002_0000;
    /// No reply to SMFIC_EOH.
    pub const NR_EOH: u32 = 0x0004_0000;
    /// No reply to SMFIC_BODY.
    pub const NR_BODY: u32 = 0x0008_0000;
    /// Header values keep their leading space.
    pub const HDR_LEADSPC: u32 = 0x0010_0000;
}

/// A command from the MTA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// 'O': option negotiation (the MTA's version, offered actions and protocol bits).
    OptNeg {
        /// The milter protocol version the MTA speaks.
        version: u32,
        /// SMFIF_* bits: the message changes the MTA allows the filter to make.
        actions: u32,
        /// SMFIP_* bits ([`proto`]) the MTA offers: steps it may skip or send without reply.
        protocol: u32,
    },
    /// 'D': macros for the command that follows (`stage` is that command's code).
    Macro {
        /// Code of the command the macros are for (b'C', b'H', b'M', b'R' ...).
        stage: u8,
        /// (name, value) pairs as sent, e.g. ("{mail_addr}", ...); value "" when missing.
        pairs: Vec<(String, String)>,
    },
    /// 'C': the SMTP client's connection.
    Connect {
        /// The SMTP client's host name as the MTA sent it.
        hostname: String,
        /// SMFIA_* address family: b'4' IPv4, b'6' IPv6, b'L' Unix socket, b'U' unknown.
        family: u8,
        /// The client's TCP port (0 when the family is unknown).
        port: u16,
        /// The client's IP address (or socket path) as text; "" when the family is unknown.
        address: String,
    },
    /// 'H': HELO/EHLO name.
    Helo(String),
    /// 'M': MAIL FROM (address with its angle brackets) and ESMTP arguments.
    Mail {
        /// The envelope sender as sent, angle brackets included ("<>" for the null sender).
        sender: String,
        /// ESMTP arguments of MAIL FROM (e.g. "SIZE=1024"), one per entry; may be empty.
        args: Vec<String>,
    },
    /// 'R': RCPT TO (address with its angle brackets) and ESMTP arguments.
    Rcpt {
        /// The recipient as sent, angle brackets included.
        recipient: String,
        /// ESMTP arguments of RCPT TO (e.g. "NOTIFY=NEVER"), one per entry; may be empty.
        args: Vec<String>,
    },
    /// 'T': the DATA command.
    Data,
    /// 'L': one header (value as the MTA sent it, possibly folded).
    Header {
        /// The header field name, raw bytes without the colon.
        name: Vec<u8>,
        /// The field value as the MTA sent it (possibly folded), without the trailing NUL.
        value: Vec<u8>,
    },
    /// 'N': end of headers.
    EndOfHeaders,
    /// 'B': a body chunk.
    Body(Vec<u8>),
    /// 'E': end of message (may carry a last body chunk).
    EndOfMessage(Vec<u8>),
    /// 'A': abort the current message.
    Abort,
    /// 'Q': close the connection.
    Quit,
    /// 'K': quit, but a new SMTP connection follows on this milter connection.
    QuitNewConnection,
    /// 'U': an SMTP command the MTA did not know.
    Unknown(Vec<u8>),
}

/// Errors decoding a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// A code that is no milter command.
    #[error("unknown milter command code 0x{0:02x}")]
    UnknownCode(u8),
    /// The data does not have the command's shape.
    #[error("malformed milter command '{code}': {what}", code = char::from(*code))]
    Malformed {
        /// The command code byte of the packet.
        code: u8,
        /// What is missing or wrong (e.g. "no NUL after the name").
        what: &'static str,
    },
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn malformed(code: u8, what: &'static str) -> CommandError {
    CommandError::Malformed { code, what }
}

impl Command {
    /// Decodes a packet from the MTA.
    pub fn decode(p: &Packet) -> Result<Command, CommandError> {
        let d = p.data.as_slice();
        let code = p.code;
        Ok(match code {
            b'O' => {
                let field = |at| be_u32(d, at).ok_or(malformed(code, "shorter than 12 bytes"));
                Command::OptNeg { version: field(0)?, actions: field(4)?, protocol: field(8)? }
            }
            b'D' => {
                let (&stage, rest) = d.split_first().ok_or(malformed(code, "no stage"))?;
                let strings = split_cstrings(rest);
                let pairs = strings.chunks(2).filter_map(|kv| match kv {
                    [k, v] => Some((text(k), text(v))),
                    [k] => Some((text(k), String::new())),
                    _ => None,
                });
                Command::Macro { stage, pairs: pairs.collect() }
            }
            b'C' => decode_connect(d)?,
            b'H' => Command::Helo(split_cstrings(d).first().map(|s| text(s)).unwrap_or_default()),
            b'M' | b'R' => {
                let strings = split_cstrings(d);
                let (first, rest) = strings.split_first().ok_or(malformed(code, "no address"))?;
                let args = rest.iter().map(|s| text(s)).collect();
                if code == b'M' {
                    Command::Mail { sender: text(first), args }
                } else {
                    Command::Rcpt { recipient: text(first), args }
                }
            }
            b'T' => Command::Data,
            b'L' => {
                let nul = d.iter().position(|&b| b == 0).ok_or(malformed(code, "no NUL after the name"))?;
                let (name, value) = (&d[..nul], &d[nul + 1..]);
                let value = value.strip_suffix(&[0]).unwrap_or(value);
                Command::Header { name: name.to_vec(), value: value.to_vec() }
            }
            b'N' => Command::EndOfHeaders,
            b'B' => Command::Body(d.to_vec()),
            b'E' => Command::EndOfMessage(d.to_vec()),
            b'A' => Command::Abort,
            b'Q' => Command::Quit,
            b'K' => Command::QuitNewConnection,
            b'U' => Command::Unknown(d.strip_suffix(&[0]).unwrap_or(d).to_vec()),
            other => return Err(CommandError::UnknownCode(other)),
        })
    }
}

fn decode_connect(d: &[u8]) -> Result<Command, CommandError> {
    let code = b'C';
    let nul = d.iter().position(|&b| b == 0).ok_or(malformed(code, "no NUL after the host name"))?;
    let hostname = text(&d[..nul]);
    let rest = &d[nul + 1..];
    let Some((&family, rest)) = rest.split_first() else {
        return Err(malformed(code, "no address family"));
    };
    if family == b'U' {
        // SMFIA_UNKNOWN omits port and address.
        return Ok(Command::Connect { hostname, family, port: 0, address: String::new() });
    }
    let port = rest.get(..2).map(|p| u16::from_be_bytes([p[0], p[1]])).ok_or(malformed(code, "no port"))?;
    let address = split_cstrings(rest.get(2..).unwrap_or_default()).first().map(|s| text(s)).unwrap_or_default();
    Ok(Command::Connect { hostname, family, port, address })
}

/// A reply to the MTA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// 'O': the negotiated version, actions and protocol bits.
    OptNeg {
        /// The protocol version to speak: the MTA's, at most [`VERSION`].
        version: u32,
        /// SMFIF_* bits: the message changes the filter may make (rebound asks for none: 0).
        actions: u32,
        /// SMFIP_* bits ([`proto`]) the filter asks for, out of those the MTA offered.
        protocol: u32,
    },
    /// 'c': go on.
    Continue,
    /// 'a': accept the message (or connection) without further milter calls.
    Accept,
    /// 'r': reject with the MTA's default 5xx.
    Reject,
    /// 'd': accept, then silently drop the message.
    Discard,
    /// 't': reject with the MTA's default 4xx.
    Tempfail,
    /// 'y': reject with this exact SMTP reply ("550 5.7.1 text").
    ReplyCode(String),
}

impl Reply {
    /// Encodes the reply as one packet onto `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Reply::OptNeg { version, actions, protocol } => {
                let mut d = Vec::with_capacity(12);
                for v in [version, actions, protocol] {
                    d.extend_from_slice(&v.to_be_bytes());
                }
                encode(b'O', &d, out);
            }
            Reply::Continue => encode(b'c', &[], out),
            Reply::Accept => encode(b'a', &[], out),
            Reply::Reject => encode(b'r', &[], out),
            Reply::Discard => encode(b'd', &[], out),
            Reply::Tempfail => encode(b't', &[], out),
            Reply::ReplyCode(text) => {
                // The MTA formats the text printf-style: a lone '%' would be read as a
                // conversion, and a NUL would cut the reply short.
                let mut d: Vec<u8> = text.replace('%', "%%").replace(['\0', '\r', '\n'], " ").into_bytes();
                d.push(0);
                encode(b'y', &d, out);
            }
        }
    }
}
