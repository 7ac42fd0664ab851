//! Drives the LMTP state machine with an arbitrary byte stream, as a client would: shared
//! by the `lmtp_session` fuzz target and the regression replay in the test suite, so the
//! two exercise the same path.

use super::data::DataReader;
use super::protocol::{Action, AfterData, Protocol, ProtocolLimits};

/// Feeds `data` to a fresh session (commands, then DATA through the dot reader) and
/// checks that every accepted recipient gets exactly one reply after DATA.
///
/// `commit_ok` says whether the simulated store commits. Panics only when that
/// invariant breaks, which is a bug in the state machine, never on odd input.
pub fn drive_client_bytes(data: &[u8], commit_ok: bool) {
    let limits = ProtocolLimits { max_message_bytes: 4096, max_recipients: 8, max_errors: 50 };
    let mut p = Protocol::new("fuzz.test", limits);
    let mut rest = data;
    let mut reader: Option<DataReader> = None;
    while !rest.is_empty() {
        if let Some(r) = reader.as_mut() {
            let (used, end) = r.feed(rest);
            rest = rest.get(used..).unwrap_or(&[]);
            if used == 0 && end.is_none() {
                return;
            }
            if let Some(end) = end {
                reader = None;
                if let AfterData::Deliver(tx) = p.data_received(end) {
                    let replies = p.delivered(commit_ok);
                    assert_eq!(replies.len(), tx.recipients.len(), "one reply per accepted recipient");
                }
            }
            continue;
        }
        let i = rest.iter().position(|&b| b == b'\n').map(|i| i + 1).unwrap_or(rest.len());
        let (line, tail) = rest.split_at(i);
        rest = tail;
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        match p.command(line.strip_suffix(b"\r").unwrap_or(line)) {
            Action::StartData(_) => reader = Some(DataReader::new(4096, 1000)),
            Action::Close(_) => return,
            Action::Reply(_) => {}
        }
    }
}
