//! Replays every input kept under fuzz/regressions/<target>/ through the code its fuzz
//! target drives: inputs that once crashed must now pass without a panic.

use rebound::classify::Classifier;
use std::path::Path;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions").join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut files: Vec<_> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    files.into_iter().map(|p| (p.display().to_string(), std::fs::read(&p).unwrap())).collect()
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
        rebound::lmtp::replay::drive_client_bytes(&data, true);
        n += 1;
    }
    for (_, data) in inputs("verp") {
        let _ = rebound::verp::parse_return_path(&String::from_utf8_lossy(&data), "bounce");
        n += 1;
    }
    for (_, data) in inputs("spool_record") {
        let _ = rebound::spool::record::read_all(&data);
        let _ = rebound::spool::record::decode_payload(7, &data);
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
