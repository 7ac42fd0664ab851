//! Any byte stream as an LMTP client: command lines go to the state machine, DATA to
//! the incremental reader; neither may panic, and every accepted recipient gets exactly
//! one reply after DATA.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rebound::lmtp::data::DataReader;
use rebound::lmtp::protocol::{Action, AfterData, Protocol, ProtocolLimits};

fuzz_target!(|data: &[u8]| {
    let commit_ok = data.first().map(|b| b & 1 == 0).unwrap_or(true);
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
                match p.data_received(end) {
                    AfterData::Deliver(tx) => {
                        let n = tx.recipients.len();
                        let replies = p.delivered(commit_ok);
                        assert_eq!(replies.len(), n);
                    }
                    AfterData::Replies(_) => {}
                }
            }
            continue;
        }
        let (line, tail) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        rest = tail;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match p.command(line) {
            Action::StartData(_) => reader = Some(DataReader::new(4096, 1000)),
            Action::Close(_) => return,
            Action::Reply(_) => {}
        }
    }
});
