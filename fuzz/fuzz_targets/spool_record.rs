//! Any bytes as a spool segment: the scan must not panic, and every record it returns
//! must frame again to the same bytes it was read from.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rebound::spool::record;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Some((r, used)) = record::read(rest) {
        let mut again = Vec::new();
        record::frame(&mut again, r.seq, &record::encode_payload(r.received_at, &r.sender, &r.recipients, &r.message));
        assert_eq!(again.as_slice(), &rest[..used], "record {} does not frame back to its bytes", r.seq);
        rest = &rest[used..];
    }
});
