//! Any byte stream as an LMTP client: command lines go to the state machine, DATA to
//! the incremental reader; neither may panic, and every accepted recipient gets exactly
//! one reply after DATA.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let commit_ok = data.first().map(|b| b & 1 == 0).unwrap_or(true);
    rebound::lmtp::replay::drive_client_bytes(data, commit_ok);
});
