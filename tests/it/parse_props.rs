//! Property tests: the parser never panics on mutated corpus messages, and bounds its
//! work on huge or pathological input (asserted on kept sizes and counters, not time).

use proptest::prelude::*;
use rebound::parse::context::Context;
use rebound::parse::{mime, parse_message};
use std::path::Path;
use std::sync::LazyLock;

/// Seed messages: the Sisimai corpus when present, else the project's samples.
static SEEDS: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in [root.join("../shared/corpus/sisimai"), root.join("samples/rfc"), root.join("samples/postfix")] {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        let mut files: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "eml")).collect();
        files.sort();
        out.extend(files.iter().filter_map(|f| std::fs::read(f).ok()));
    }
    assert!(!out.is_empty(), "no seed messages");
    out
});

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Mutation::Flip(p, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), prop::collection::vec(prop_oneof![Just(b'\n'), Just(b':'), Just(b'-'), Just(b'@'), Just(b'<'), Just(b'='), any::<u8>()], 0..64))
            .prop_map(|(p, v)| Mutation::Insert(p, v)),
        (any::<usize>(), 0usize..512).prop_map(|(p, n)| Mutation::Delete(p, n)),
        (any::<usize>(), 0usize..256).prop_map(|(p, n)| Mutation::Duplicate(p, n)),
    ]
}

fn apply(msg: &mut Vec<u8>, m: &Mutation) {
    if msg.is_empty() {
        return;
    }
    let len = msg.len();
    match m {
        Mutation::Flip(p, b) => msg[p % len] ^= b | 1,
        Mutation::Truncate(p) => msg.truncate(p % len),
        Mutation::Insert(p, v) => {
            let at = p % len;
            msg.splice(at..at, v.iter().copied());
        }
        Mutation::Delete(p, n) => {
            let at = p % len;
            let end = (at + n).min(len);
            msg.drain(at..end);
        }
        Mutation::Duplicate(p, n) => {
            let at = p % len;
            let end = (at + n).min(len);
            let chunk = msg[at..end].to_vec();
            msg.splice(at..at, chunk);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn mutated_corpus_messages_never_panic(seed in any::<usize>(), muts in prop::collection::vec(mutation(), 1..8)) {
        let mut msg = SEEDS[seed % SEEDS.len()].clone();
        for m in &muts {
            apply(&mut msg, m);
        }
        let pm = parse_message(&msg);
        for r in &pm.records {
            prop_assert!(r.diagnostic.len() <= 8 * 1024);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let _ = parse_message(&bytes);
    }
}

/// A 50 MB message: the text kept, the parts visited and the diagnostic are bounded,
/// so the work is linear in the input (one pass to split) plus a constant.
#[test]
fn fifty_megabyte_message_is_bounded() {
    let mut m = b"From: MAILER-DAEMON@mx.example.org\nSubject: Undelivered Mail\nContent-Type: multipart/mixed; boundary=\"B\"\n\n--B\nContent-Type: text/plain\n\n<big@example.net>: 550 5.1.1 unknown\n".to_vec();
    let line = b"filler text that goes on and on and on, with no address in it at all......\n";
    while m.len() < 50 * 1024 * 1024 {
        m.extend_from_slice(line);
    }
    m.extend_from_slice(b"--B\nContent-Type: message/rfc822\n\nSubject: x\n\n");
    m.extend(std::iter::repeat_n(b'y', 1024 * 1024));
    m.extend_from_slice(b"\n--B--\n");
    let ctx = Context::build(&m);
    assert!(ctx.text.len() <= 128 * 1024 + 2, "text kept: {}", ctx.text.len());
    assert!(ctx.original.as_ref().map_or(0, |o| o.len()) <= 64 * 1024 + 2);
    let pm = parse_message(&m);
    assert_eq!(pm.records.len(), 1);
    assert_eq!(pm.records[0].recipient, "big@example.net");
    assert!(pm.records[0].diagnostic.len() <= 2000);
}

/// Many MIME parts and deep nesting are cut at fixed limits.
#[test]
fn part_count_and_depth_are_bounded() {
    let mut m = b"Content-Type: multipart/mixed; boundary=\"p\"\n\n".to_vec();
    for _ in 0..10_000 {
        m.extend_from_slice(b"--p\nContent-Type: text/plain\n\nx\n");
    }
    m.extend_from_slice(b"--p--\n");
    let ctx = Context::build(&m);
    assert!(ctx.parts_seen <= mime::MAX_PARTS + 1, "parts visited: {}", ctx.parts_seen);

    let mut deep = Vec::new();
    for i in 0..1000 {
        deep.extend_from_slice(format!("Content-Type: multipart/mixed; boundary=\"d{i}\"\n\n--d{i}\n").as_bytes());
    }
    let ctx = Context::build(&deep);
    assert!(ctx.parts_seen <= mime::MAX_DEPTH + 2, "parts visited: {}", ctx.parts_seen);
}

/// A pathological header block: one field folded over a million lines and 100,000
/// fields. Kept sizes stay within the fixed caps.
#[test]
fn pathological_headers_are_capped() {
    let mut h = b"Subject: start\n".to_vec();
    for _ in 0..1_000_000 {
        h.extend_from_slice(b" folded\n");
    }
    for i in 0..100_000 {
        h.extend_from_slice(format!("X-F{i}: v\n").as_bytes());
    }
    let headers = mime::parse_headers(&h);
    let subject = headers.get("subject").unwrap_or("");
    assert!(subject.len() <= 17 * 1024, "subject kept: {}", subject.len());
    assert!(headers.iter().count() <= 512);
    let mut msg = h.clone();
    msg.extend_from_slice(b"\nbody\n");
    let pm = parse_message(&msg);
    assert!(pm.records.is_empty());
}
