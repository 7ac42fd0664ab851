//! Accuracy on the Sisimai corpus (../shared/corpus/sisimai), scored the way
//! score.py scores it: `rebound parse --format jsonl DIR` is run and each expected
//! record is matched by file, message index and recipient (case-insensitive).
//! Skipped with a notice when the corpus is absent. Fails below the bars:
//! recipient 99.5 %, reason 97 %, hard 99 %, status 97 %, no record for ordinary mail.

use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus_dir() -> Option<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/sisimai");
    d.join("expected.json").is_file().then_some(d)
}

#[derive(Default, Debug)]
struct Score {
    total: usize,
    recipient: usize,
    reason: usize,
    hard: usize,
    status_total: usize,
    status: usize,
    stated_total: usize,
    stated: usize,
    feedback_total: usize,
    feedback: usize,
    extra: Vec<String>,
    misses: Vec<String>,
}

fn pct(hit: usize, total: usize) -> f64 {
    if total == 0 {
        100.0
    } else {
        100.0 * hit as f64 / total as f64
    }
}

fn score(expected: &Value, output: &str) -> Score {
    let mut out: HashMap<(String, u64), Vec<(Value, bool)>> = HashMap::new();
    for line in output.lines().filter(|l| !l.trim().is_empty()) {
        let o: Value = serde_json::from_str(line).expect("jsonl line");
        let file = o["file"].as_str().unwrap_or("");
        let name = Path::new(file).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let msg = o["message"].as_u64().unwrap_or(1);
        out.entry((name, msg)).or_default().push((o, false));
    }
    let mut s = Score::default();
    let samples = expected["samples"].as_object().expect("samples");
    let mut names: Vec<&String> = samples.keys().collect();
    names.sort();
    for name in names {
        for r in samples[name]["records"].as_array().into_iter().flatten() {
            s.total += 1;
            let want_status = r["status"].as_str().unwrap_or("");
            let want_fb = r["feedbacktype"].as_str().unwrap_or("");
            if !want_status.is_empty() {
                s.status_total += 1;
            }
            if !want_fb.is_empty() {
                s.feedback_total += 1;
            }
            let key = (name.clone(), r["message"].as_u64().unwrap_or(1));
            let rcpt = r["recipient"].as_str().unwrap_or("").to_lowercase();
            let Some(cands) = out.get_mut(&key) else {
                s.misses.push(format!("{name}: no record for {rcpt}"));
                continue;
            };
            let Some((o, used)) = cands.iter_mut().find(|(o, used)| !*used && o["recipient"].as_str().unwrap_or("").to_lowercase() == rcpt) else {
                s.misses.push(format!("{name}: no record for {rcpt}"));
                continue;
            };
            *used = true;
            s.recipient += 1;
            s.reason += usize::from(o["reason"] == r["reason"]);
            s.hard += usize::from(o["hard"].as_bool().unwrap_or(false) == r["hardbounce"].as_bool().unwrap_or(false));
            if !want_status.is_empty() && o["status"].as_str() == Some(want_status) {
                s.status += 1;
            }
            // Codes the bounce states (not x.0.9xx, which Sisimai derives from the reason).
            if !want_status.is_empty() && !want_status.contains(".0.9") {
                s.stated_total += 1;
                s.stated += usize::from(o["status"].as_str() == Some(want_status));
            }
            if !want_fb.is_empty() && o["feedback_type"].as_str() == Some(want_fb) {
                s.feedback += 1;
            }
        }
    }
    for ((name, msg), recs) in &out {
        for (o, used) in recs {
            if !used {
                s.extra.push(format!("{name}#{msg}: {}", o["recipient"]));
            }
        }
    }
    s
}

#[test]
fn sisimai_corpus_meets_the_thresholds() {
    let Some(dir) = corpus_dir() else {
        eprintln!("NOTICE: ../shared/corpus/sisimai not found: corpus accuracy test skipped");
        return;
    };
    let expected: Value = serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rebound")).args(["parse", "--format", "jsonl"]).arg(&dir).output().unwrap();
    assert!(out.status.success(), "rebound parse failed: {}", String::from_utf8_lossy(&out.stderr));
    let s = score(&expected, &String::from_utf8_lossy(&out.stdout));
    let (recipient, status) = (pct(s.recipient, s.total), pct(s.status, s.status_total));
    let (reason, hard) = (pct(s.reason, s.total), pct(s.hard, s.total));
    eprintln!(
        "corpus: recipient {recipient:.2}% reason {reason:.2}% hard {hard:.2}% status {status:.2}% feedback {:.2}% extra {} ({} records)",
        pct(s.feedback, s.feedback_total),
        s.extra.len(),
        s.total
    );
    // Non-bounce samples must yield nothing.
    let non_bounce: Vec<&String> = expected["samples"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| v["bounce"] == Value::Bool(false))
        .map(|(k, _)| k)
        .collect();
    for name in non_bounce {
        assert!(!s.extra.iter().any(|e| e.starts_with(&format!("{name}#"))), "record for non-bounce {name}");
    }
    let stated = pct(s.stated, s.stated_total);
    eprintln!("corpus: status stated by the bounce {stated:.2}% ({} records)", s.stated_total);
    assert!(recipient >= 99.5, "recipient {recipient:.2}% < 99.5; misses: {:?}", s.misses);
    assert!(stated >= 97.0, "stated status {stated:.2}% < 97");
    assert!(status >= 97.0, "status {status:.2}% < 97");
    assert!(reason >= 97.0, "reason {reason:.2}% < 97");
    assert!(hard >= 99.0, "hard {hard:.2}% < 99");
}
