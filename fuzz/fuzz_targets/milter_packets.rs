//! Any byte stream from an MTA: the milter codec and protocol state machine must not
//! panic, whatever order the packets come in.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rebound::milter::codec::decode;
use rebound::milter::{Milter, OnEom, Policy, TokenStatus};
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let policy = Policy {
        bounce_domains: vec!["bounces.example".into()],
        reject_invalid_verp: true,
        on_eom: OnEom::Accept,
        max_message_bytes: 8192,
    };
    let check = |a: &str| if a.contains("forged") { TokenStatus::Forged } else { TokenStatus::Valid };
    let mut milter = Milter::new(Arc::new(policy), Arc::new(check));
    let mut rest = data;
    while let Ok(Some((packet, used))) = decode(rest) {
        if milter.handle_packet(&packet).is_err() || used == 0 {
            break;
        }
        if milter.in_message() && rest.len() % 3 == 0 {
            let _ = milter.stored(rest.len() % 2 == 0);
        }
        rest = rest.get(used..).unwrap_or(&[]);
    }
});
