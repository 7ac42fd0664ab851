//! Variant invariance on the Sisimai corpus (../shared/corpus/sisimai): every message is
//! rewritten the ways real mail differs in transit (line ends, an mbox separator, a
//! re-encoded text part, other local parts and Message-IDs, other header folding), and
//! rebound's verdicts (kind, recipient, reason, hard, status, reply code) must not move.
//! A verdict that depends on such incidental bytes will not carry over to held-out mail.
//! Skipped with a notice when the corpus is absent.

mod rewrite;

use rebound::classify::Classifier;
use rebound::parse::{mbox, parse_message};
use rebound::pipeline::reported_status;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use rewrite::{flip_line_ends, mbox_pair, new_boundaries, reencode, refold, renames, lower_field_names, replace_token, with_mbox_line, Encoding};

/// Variants known not to be realistic for one file, with the reason (file, variant).
const EXCLUDED: &[(&str, &str, &str)] = &[
    ("lhost-amazonses-09.eml", "rename", "the simulator's local part (bounce) is also a JSON key of the notification"),
    ("lhost-amazonses-10.eml", "rename", "the simulator's local part (bounce) is also a JSON key of the notification"),
    ("lhost-amazonses-11.eml", "rename", "the simulator's local part (complaint) is also a JSON key of the notification"),
];

fn corpus_dir() -> Option<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/sisimai");
    d.join("expected.json").is_file().then_some(d)
}

/// The verdict fields compared across variants, one tuple per record.
type Verdicts = Vec<(String, String, String, bool, String, Option<u16>)>;

fn verdicts(c: &Classifier, raw: &[u8], rename: &dyn Fn(&str) -> String) -> Verdicts {
    let pm = parse_message(raw);
    let mut v: Verdicts = pm
        .records
        .iter()
        .map(|r| {
            let d = c.classify(r);
            let status = reported_status(r, &d);
            (r.kind.as_str().to_string(), rename(&r.recipient.to_lowercase()), d.reason.as_str().to_string(), d.hard, status, r.reply_code)
        })
        .collect();
    v.sort();
    v
}

/// The messages of a file, as `rebound parse` splits them.
fn messages_of(data: &[u8]) -> Vec<&[u8]> {
    if data.starts_with(b"From ") {
        mbox::split_messages(data)
    } else {
        vec![data]
    }
}

#[test]
fn verdicts_do_not_depend_on_incidental_bytes() {
    let Some(dir) = corpus_dir() else {
        eprintln!("NOTICE: ../shared/corpus/sisimai not found; variant invariance test skipped");
        return;
    };
    let c = Classifier::with_default_rules();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    let same = |s: &str| s.to_string();
    let mut changed: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut tried: BTreeMap<&str, usize> = BTreeMap::new();
    for path in &files {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let data = std::fs::read(path).expect("read corpus file");
        for (idx, msg) in messages_of(&data).into_iter().enumerate() {
            let base = verdicts(&c, msg, &same);
            let mut check = |kind: &'static str, variant: Option<Vec<u8>>, rename: &dyn Fn(&str) -> String| {
                let Some(v) = variant else { return };
                if EXCLUDED.iter().any(|(f, k, _)| *f == name && *k == kind) {
                    return;
                }
                *tried.entry(kind).or_default() += 1;
                // Split as `rebound parse` would: the mbox variant must still be one message.
                let parts = messages_of(&v);
                let want_parts = if kind == "mbox-pair" { 2 } else { 1 };
                let mut got = if parts.len() == want_parts { verdicts(&c, parts[0], rename) } else { Vec::new() };
                if want_parts == 2 && parts.len() == 2 && verdicts(&c, parts[1], rename) != got {
                    got.clear();
                }
                let want: Verdicts = base.iter().map(|t| (t.0.clone(), rename(&t.1), t.2.clone(), t.3, t.4.clone(), t.5)).collect();
                let mut want = want;
                want.sort();
                if got != want {
                    if let Ok(d) = std::env::var("REBOUND_VARIANT_DUMP") {
                        let _ = std::fs::write(Path::new(&d).join(format!("{name}.{kind}")), &v);
                    }
                    changed.entry(kind).or_default().push(format!("{name}#{}: {want:?} -> {got:?}", idx + 1));
                }
            };
            check("line-ends", Some(flip_line_ends(msg)), &same);
            check("mbox-line", Some(with_mbox_line(msg)), &same);
            check("mbox-pair", Some(mbox_pair(msg)), &same);
            check("boundary", new_boundaries(msg), &same);
            check("field-case", lower_field_names(msg), &same);
            check("base64", reencode(msg, Encoding::Base64), &same);
            check("line-ends+base64", reencode(&flip_line_ends(msg), Encoding::Base64), &same);
            check("quoted-printable", reencode(msg, Encoding::QuotedPrintable), &same);
            let recips: Vec<String> = base.iter().map(|t| t.1.clone()).collect();
            let map = renames(msg, &recips);
            if !map.is_empty() {
                let mut v = msg.to_vec();
                for (f, t) in &map {
                    v = replace_token(&v, f, t);
                }
                let rename = |r: &str| {
                    let (local, domain) = r.split_once('@').unwrap_or((r, ""));
                    match map.iter().find(|(f, _)| f.eq_ignore_ascii_case(local)) {
                        Some((_, t)) if !domain.is_empty() => format!("{}@{domain}", t.to_lowercase()),
                        Some((_, t)) => t.to_lowercase(),
                        None => r.to_string(),
                    }
                };
                check("rename", Some(v), &rename);
            }
            check("refold", refold(msg, &["subject", "to"], false), &same);
            check("refold-all", refold(msg, &["subject", "to", "diagnostic-code"], true), &same);
        }
    }
    let mut total = 0;
    for (kind, n) in &tried {
        let bad = changed.get(kind).map(Vec::len).unwrap_or(0);
        total += bad;
        eprintln!("variant {kind:<17} tried {n:>4}  changed {bad:>3}");
        for line in changed.get(kind).into_iter().flatten() {
            eprintln!("    {}", line.chars().take(400).collect::<String>());
        }
    }
    assert_eq!(total, 0, "verdicts changed under realistic variants (see above)");
}
