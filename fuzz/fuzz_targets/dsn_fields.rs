//! Any text as a message/delivery-status body: the field-group parser must not panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = rebound::parse::dsn::fields(&text);
    let _ = rebound::parse::dsn::has_recipient_fields(&text);
    let _ = rebound::parse::dsn::parse(&text);
});
