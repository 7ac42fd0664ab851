//! Any bytes as a spool segment, and as the payload of a record whose checksum holds:
//! neither may panic, and every record read must frame again to the bytes it was read
//! from.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rebound::spool::record;

fn framed(r: &record::Record) -> Vec<u8> {
    let mut out = Vec::new();
    record::frame(&mut out, r.seq, &record::encode_payload(r.received_at, &r.sender, &r.recipients, &r.message));
    out
}

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Some((r, used)) = record::read(rest) {
        assert_eq!(framed(&r).as_slice(), &rest[..used], "record {} does not frame back to its bytes", r.seq);
        rest = &rest[used..];
    }
    let _ = record::read_all(data);
    // A checksum the fuzzer cannot forge: frame the bytes, so the payload decoder runs.
    let mut whole = Vec::new();
    record::frame(&mut whole, 7, data);
    match record::read(&whole) {
        Some((r, used)) => assert_eq!((framed(&r), used), (whole.clone(), whole.len())),
        None => assert!(record::decode_payload(7, data).is_none()),
    }
});
