//! Replays every input kept under fuzz/regressions/<target>/ through the code its fuzz
//! target drives: inputs that once crashed must now pass without a panic.

use rebound::classify::Classifier;
use rebound::lmtp::data::DataReader;
use rebound::lmtp::protocol::{Action, AfterData, Protocol, ProtocolLimits};
use std::path::Path;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions").join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut files: Vec<_> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    files.into_iter().map(|p| (p.display().to_string(), std::fs::read(&p).unwrap())).collect()
}

fn lmtp_stream(data: &[u8]) {
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
                    assert_eq!(p.delivered(true).len(), tx.recipients.len());
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

#[test]
fn fuzz_regressions() {
    let classifier = Classifier::with_default_rules();
    let mut n = 0;
    for (name, data) in inputs("parse_message") {
        eprintln!("replaying {name}");
        let p = rebound::pipeline::process_message(&data, &classifier);
        let _ = rebound::pipeline::event_rows(&p, &Default::default(), 0);
        n += 1;
    }
    for (_, data) in inputs("dsn_fields") {
        let _ = rebound::parse::dsn::parse(&String::from_utf8_lossy(&data));
        n += 1;
    }
    for (_, data) in inputs("lmtp_session") {
        lmtp_stream(&data);
        n += 1;
    }
    for (_, data) in inputs("verp") {
        let _ = rebound::verp::parse_return_path(&String::from_utf8_lossy(&data), "bounce");
        n += 1;
    }
    for (_, data) in inputs("maillog_line") {
        let _ = rebound::maillog::parse_line(&String::from_utf8_lossy(&data), Default::default(), 0);
        n += 1;
    }
    for (_, data) in inputs("milter_packets") {
        let mut rest = &data[..];
        while let Ok(Some((_, used))) = rebound::milter::codec::decode(rest) {
            if used == 0 {
                break;
            }
            rest = rest.get(used..).unwrap_or(&[]);
        }
        n += 1;
    }
    eprintln!("{n} fuzz regression inputs replayed");
}
