//! Any text as a return-path address: decoding and verification must not panic, and a
//! token signed here must verify.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rebound::verp::{parse_return_path, Keys};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let keys = Keys::new(vec![b"fuzz-key-0123456789".to_vec()]);
    let _ = parse_return_path(&text, "bounce");
    let _ = keys.verify(&text, "bounce", 1_700_000_000);
    let id: String = text.chars().filter(|c| c.is_ascii_alphanumeric()).take(32).collect();
    if !id.is_empty() {
        if let Ok(addr) = keys.sign("bounce", "b.example", &id, 30_000) {
            assert!(keys.verify(&addr, "bounce", 1_700_000_000).is_ok(), "{addr}");
        }
    }
});
