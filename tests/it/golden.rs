//! Golden tests: every `samples/**/*.eml` has a `.json` beside it with the parse
//! result (records and what the bounce says about the original). Each sample is parsed
//! with LF and with CRLF line ends; both must give the golden. `UPDATE_GOLDEN=1`
//! rewrites the .json files (review the diff).

use rebound::parse::{parse_message, ParsedMessage};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The stable projection of a parse result that goldens hold.
pub fn projection(pm: &ParsedMessage) -> Value {
    let records: Vec<Value> = pm
        .records
        .iter()
        .map(|r| {
            json!({
                "kind": r.kind.as_str(),
                "recipient": r.recipient,
                "action": r.action,
                "status": r.status,
                "reply_code": r.reply_code,
                "smtp_command": r.smtp_command,
                "remote_mta": r.remote_mta,
                "reporting_mta": r.reporting_mta,
                "feedback_type": r.feedback_type,
                "return_date": r.return_date,
                "reason_hint": r.reason_hint,
                "diagnostic": r.diagnostic,
            })
        })
        .collect();
    json!({
        "records": records,
        "original": {
            "message_id": pm.original.message_id,
            "from": pm.original.from,
            "subject": pm.original.subject,
            "return_path": pm.original.return_path,
            "list_unsubscribe": pm.original.list_unsubscribe,
        },
        "verp_candidates": pm.verp_candidates,
    })
}

/// One projection for a message; an array of them for an mbox file.
fn project_file(raw: &[u8]) -> Value {
    if raw.starts_with(b"From ") {
        Value::Array(rebound::parse::mbox::split_messages(raw).into_iter().map(|m| projection(&parse_message(m))).collect())
    } else {
        projection(&parse_message(raw))
    }
}

fn samples(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for e in entries {
        if e.is_dir() {
            samples(&e, out);
        } else if e.extension().is_some_and(|x| x == "eml" || x == "mbox") {
            out.push(e);
        }
    }
}

/// The bytes with every CRLF made LF (a lone CR is kept).
pub(crate) fn to_lf(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\r' && b.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// The bytes with every line ending CRLF.
pub(crate) fn to_crlf(b: &[u8]) -> Vec<u8> {
    let lf = to_lf(b);
    let mut out = Vec::with_capacity(lf.len() + lf.len() / 40);
    for &c in &lf {
        if c == b'\n' {
            out.push(b'\r');
        }
        out.push(c);
    }
    out
}

#[test]
fn samples_match_goldens_in_lf_and_crlf() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let mut files = Vec::new();
    samples(&root, &mut files);
    assert!(files.len() >= 20, "expected the project's samples under {}", root.display());
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    for f in &files {
        let raw = std::fs::read(f).unwrap();
        let lf = project_file(&to_lf(&raw));
        let crlf = project_file(&to_crlf(&raw));
        let golden_path = f.with_extension("json");
        if update {
            std::fs::write(&golden_path, serde_json::to_string_pretty(&lf).unwrap() + "\n").unwrap();
        }
        let golden: Value = match std::fs::read(&golden_path) {
            Ok(b) => serde_json::from_slice(&b).unwrap(),
            Err(_) => {
                failures.push(format!("{}: no golden (run with UPDATE_GOLDEN=1)", f.display()));
                continue;
            }
        };
        if lf != golden {
            failures.push(format!("{} (LF):\n  got    {lf}\n  golden {golden}", f.display()));
        }
        if crlf != golden {
            failures.push(format!("{} (CRLF):\n  got    {crlf}\n  golden {golden}", f.display()));
        }
    }
    assert!(failures.is_empty(), "{} golden mismatches:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn non_bounce_samples_yield_no_record() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let mut files = Vec::new();
    samples(&root, &mut files);
    let mut n = 0;
    for f in files.iter().filter(|f| f.to_string_lossy().contains("not-bounce")) {
        let pm = parse_message(&std::fs::read(f).unwrap());
        assert!(pm.records.is_empty(), "{}: {:?}", f.display(), pm.records);
        n += 1;
    }
    assert!(n >= 2);
}
