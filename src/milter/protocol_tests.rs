//! Unit tests of the milter state machine: negotiation, macros, each command, the
//! RCPT-time token check, end of message, and hostile input.

use super::*;
use crate::milter::codec::{self, Packet};
use proptest::prelude::*;

const ALL_PROTOCOL: u32 = 0x001f_ffff;

fn policy(on_eom: OnEom, reject: bool, max: usize) -> Arc<Policy> {
    Arc::new(Policy {
        bounce_domains: vec!["bounce.example.com".into()],
        reject_invalid_verp: reject,
        on_eom,
        max_message_bytes: max,
    })
}

/// Tokens: local part "forged..." is forged, "expired..." expired, "bounce+..." valid.
fn check() -> Arc<dyn TokenCheck> {
    Arc::new(|addr: &str| {
        if addr.starts_with("forged") {
            TokenStatus::Forged
        } else if addr.starts_with("expired") {
            TokenStatus::Expired
        } else if addr.starts_with("bounce+") {
            TokenStatus::Valid
        } else {
            TokenStatus::Absent
        }
    })
}

fn optneg(version: u32, protocol: u32) -> Command {
    Command::OptNeg { version, actions: 0x1ff, protocol }
}

fn milter_with(p: Arc<Policy>, protocol: u32) -> Milter {
    let mut m = Milter::new(p, check());
    m.handle(optneg(6, protocol)).unwrap();
    m
}

fn milter() -> Milter {
    milter_with(policy(OnEom::Accept, true, 1 << 20), ALL_PROTOCOL)
}

fn cont() -> Step {
    Step::Reply(Reply::Continue)
}

fn rcpt(addr: &str) -> Command {
    Command::Rcpt { recipient: format!("<{addr}>"), args: vec![] }
}

fn header(name: &str, value: &str) -> Command {
    Command::Header { name: name.as_bytes().to_vec(), value: value.as_bytes().to_vec() }
}

/// Drives MAIL .. EOM with one header and one body chunk; returns the EOM step.
fn message(m: &mut Milter, rcpts: &[&str]) -> Step {
    assert_eq!(m.handle(Command::Mail { sender: "<>".into(), args: vec!["BODY=8BITMIME".into()] }).unwrap(), cont());
    for r in rcpts {
        m.handle(rcpt(r)).unwrap();
    }
    if let Step::Reply(Reply::Accept) = m.handle(Command::Data).unwrap() {
        return Step::Reply(Reply::Accept);
    }
    m.handle(header("Subject", " Undelivered Mail")).unwrap();
    m.handle(Command::EndOfHeaders).unwrap();
    m.handle(Command::Body(b"body line\r\n".to_vec())).unwrap();
    m.handle(Command::EndOfMessage(Vec::new())).unwrap()
}

#[test]
fn negotiation_asks_only_for_offered_bits_and_no_actions() {
    let mut m = Milter::new(policy(OnEom::Accept, false, 100), check());
    let step = m.handle(optneg(6, ALL_PROTOCOL)).unwrap();
    assert_eq!(step, Step::Reply(Reply::OptNeg { version: 6, actions: 0, protocol: WANTED_PROTOCOL }));

    let mut m = Milter::new(policy(OnEom::Accept, false, 100), check());
    let step = m.handle(optneg(2, 0x7f)).unwrap();
    assert_eq!(step, Step::Reply(Reply::OptNeg { version: 2, actions: 0, protocol: 0 }));
}

#[test]
fn negotiation_refuses_version_1_and_commands_before_it() {
    let mut m = Milter::new(policy(OnEom::Accept, false, 100), check());
    assert_eq!(m.handle(optneg(1, 0)), Err(ProtocolError::Version(1)));
    let mut m = Milter::new(policy(OnEom::Accept, false, 100), check());
    assert_eq!(m.handle(Command::Helo("x".into())), Err(ProtocolError::NotNegotiated('H')));
}

#[test]
fn optneg_reply_encodes_as_13_bytes() {
    let mut out = Vec::new();
    Reply::OptNeg { version: 6, actions: 0, protocol: 0x80 }.encode(&mut out);
    assert_eq!(out, [0, 0, 0, 13, b'O', 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0x80]);
}

#[test]
fn macros_are_kept_and_queue_id_reaches_the_delivery() {
    let mut m = milter();
    let p = Packet { code: b'D', data: b"M{mail_addr}\0\0i\0ABC123\0".to_vec() };
    assert_eq!(m.handle_packet(&p).unwrap(), Step::Silent);
    assert_eq!(m.macro_value("i"), "ABC123");
    assert_eq!(m.macro_value("mail_addr"), "");
    let Step::Store(d) = message(&mut m, &["bounce+x@bounce.example.com"]) else { panic!("no store") };
    assert_eq!(d.queue_id, "ABC123");
}

#[test]
fn connect_helo_unknown_get_continue() {
    let mut m = milter();
    let c = Packet { code: b'C', data: b"mx.example.org\x004\x00\x19127.0.0.1\0".to_vec() };
    assert_eq!(
        Command::decode(&c).unwrap(),
        Command::Connect { hostname: "mx.example.org".into(), family: b'4', port: 25, address: "127.0.0.1".into() }
    );
    assert_eq!(m.handle_packet(&c).unwrap(), cont());
    assert_eq!(m.handle(Command::Helo("mx.example.org".into())).unwrap(), cont());
    assert_eq!(m.handle(Command::Unknown(b"XYZZY".to_vec())).unwrap(), cont());
    let unknown_family = Packet { code: b'C', data: b"localhost\0U".to_vec() };
    assert_eq!(m.handle_packet(&unknown_family).unwrap(), cont());
}

#[test]
fn full_message_is_assembled_and_accepted_after_commit() {
    let mut m = milter();
    let Step::Store(d) = message(&mut m, &["bounce+abc@Bounce.Example.COM"]) else { panic!("no store") };
    assert_eq!(d.sender, "");
    assert_eq!(d.recipients, vec!["bounce+abc@Bounce.Example.COM".to_string()]);
    // HDR_LEADSPC negotiated: the value keeps its own leading space.
    assert_eq!(d.raw, b"Subject: Undelivered Mail\r\n\r\nbody line\r\n");
    assert!(m.in_message());
    assert_eq!(m.stored(true), Reply::Accept);
    assert!(!m.in_message());
}

#[test]
fn without_leadspc_a_space_is_added_and_folds_become_crlf() {
    let mut m = milter_with(policy(OnEom::Accept, false, 1000), 0);
    m.handle(Command::Mail { sender: "<>".into(), args: vec![] }).unwrap();
    m.handle(rcpt("bounce+a@bounce.example.com")).unwrap();
    assert_eq!(m.handle(header("X-Long", "one\n\ttwo")).unwrap(), cont());
    m.handle(Command::EndOfHeaders).unwrap();
    let Step::Store(d) = m.handle(Command::EndOfMessage(b"last\r\n".to_vec())).unwrap() else { panic!() };
    assert_eq!(d.raw, b"X-Long: one\r\n\ttwo\r\n\r\nlast\r\n");
}

#[test]
fn no_reply_bits_silence_header_and_body() {
    let mut m = milter();
    m.handle(Command::Mail { sender: "<>".into(), args: vec![] }).unwrap();
    m.handle(rcpt("bounce+a@bounce.example.com")).unwrap();
    assert_eq!(m.handle(header("A", " b")).unwrap(), Step::Silent);
    assert_eq!(m.handle(Command::EndOfHeaders).unwrap(), cont());
    assert_eq!(m.handle(Command::Body(b"x".to_vec())).unwrap(), Step::Silent);
}

#[test]
fn discard_only_when_every_recipient_is_a_bounce_address() {
    let p = policy(OnEom::Discard, false, 1 << 20);
    let mut m = milter_with(p.clone(), ALL_PROTOCOL);
    assert!(matches!(message(&mut m, &["bounce+a@bounce.example.com"]), Step::Store(_)));
    assert_eq!(m.stored(true), Reply::Discard);
    let mut m = milter_with(p, ALL_PROTOCOL);
    assert!(matches!(message(&mut m, &["bounce+a@bounce.example.com", "alice@example.com"]), Step::Store(_)));
    assert_eq!(m.stored(true), Reply::Accept);
}

#[test]
fn store_failure_tempfails() {
    let mut m = milter_with(policy(OnEom::Discard, false, 1 << 20), ALL_PROTOCOL);
    assert!(matches!(message(&mut m, &["bounce+a@bounce.example.com"]), Step::Store(_)));
    assert_eq!(m.stored(false), Reply::Tempfail);
}

#[test]
fn other_mail_is_accepted_at_data_without_buffering() {
    let mut m = milter();
    assert_eq!(message(&mut m, &["alice@example.com"]), Step::Reply(Reply::Accept));
    // An MTA that goes on anyway gets accept at the end, and nothing is stored.
    assert_eq!(m.handle(Command::EndOfMessage(Vec::new())).unwrap(), Step::Reply(Reply::Accept));
}

#[test]
fn forged_and_expired_tokens_are_refused_at_rcpt_when_enabled() {
    let mut m = milter();
    m.handle(Command::Mail { sender: "<>".into(), args: vec![] }).unwrap();
    let Step::Reply(Reply::ReplyCode(text)) = m.handle(rcpt("forged+x@bounce.example.com")).unwrap() else { panic!() };
    assert!(text.starts_with("550 5.7.1 "), "{text}");
    let Step::Reply(Reply::ReplyCode(text)) = m.handle(rcpt("expired+x@bounce.example.com")).unwrap() else { panic!() };
    assert!(text.starts_with("550 5.7.1 ") && text.contains("Expired"), "{text}");
    assert_eq!(m.handle(rcpt("postmaster@bounce.example.com")).unwrap(), cont());
    assert_eq!(m.handle(rcpt("bounce+ok@bounce.example.com")).unwrap(), cont());
    // Forged-looking local parts elsewhere are none of rebound's business.
    assert_eq!(m.handle(rcpt("forged@example.org")).unwrap(), cont());
    assert_eq!(m.handle(Command::Data).unwrap(), cont());
    m.handle(Command::EndOfHeaders).unwrap();
    let Step::Store(d) = m.handle(Command::EndOfMessage(Vec::new())).unwrap() else { panic!() };
    assert_eq!(d.recipients, vec!["postmaster@bounce.example.com", "bounce+ok@bounce.example.com"]);
}

#[test]
fn forged_tokens_pass_when_rejecting_is_off() {
    let mut m = milter_with(policy(OnEom::Accept, false, 1 << 20), ALL_PROTOCOL);
    m.handle(Command::Mail { sender: "<>".into(), args: vec![] }).unwrap();
    assert_eq!(m.handle(rcpt("forged+x@bounce.example.com")).unwrap(), cont());
}

#[test]
fn replycode_doubles_percent_and_ends_with_nul() {
    let mut out = Vec::new();
    Reply::ReplyCode("550 5.7.1 100% forged\r\n".into()).encode(&mut out);
    assert_eq!(&out[4..], b"y550 5.7.1 100%% forged  \0");
}

#[test]
fn oversized_messages_are_refused_only_where_discarding() {
    let mut m = milter_with(policy(OnEom::Discard, false, 16), ALL_PROTOCOL);
    let Step::Reply(Reply::ReplyCode(text)) = message(&mut m, &["bounce+a@bounce.example.com"]) else { panic!() };
    assert!(text.starts_with("552 5.3.4"));
    assert!(!m.in_message());
    assert_eq!(m.oversized(), 1);
    let mut m = milter_with(policy(OnEom::Accept, false, 16), ALL_PROTOCOL);
    assert_eq!(message(&mut m, &["bounce+a@bounce.example.com"]), Step::Reply(Reply::Accept));
}

#[test]
fn abort_forgets_the_message_and_quit_closes() {
    let mut m = milter();
    m.handle(Command::Mail { sender: "<>".into(), args: vec![] }).unwrap();
    m.handle(rcpt("bounce+a@bounce.example.com")).unwrap();
    assert!(m.in_message());
    assert_eq!(m.handle(Command::Abort).unwrap(), Step::Silent);
    assert!(!m.in_message());
    assert_eq!(m.handle(Command::EndOfMessage(Vec::new())).unwrap(), cont());
    assert_eq!(m.handle(Command::QuitNewConnection).unwrap(), Step::Silent);
    // Still negotiated after 'K': the next SMTP connection reuses this milter connection.
    assert_eq!(m.handle(Command::Helo("x".into())).unwrap(), cont());
    assert_eq!(m.handle(Command::Quit).unwrap(), Step::Close);
}

#[test]
fn bad_packets_are_errors_not_panics() {
    let mut m = Milter::new(policy(OnEom::Accept, false, 100), check());
    let short = Packet { code: b'O', data: vec![0, 0, 0, 6, 0] };
    assert!(matches!(m.handle_packet(&short), Err(ProtocolError::Command(_))));
    let mut m = milter();
    for p in [
        Packet { code: b'L', data: b"NoNul".to_vec() },
        Packet { code: b'C', data: b"host".to_vec() },
        Packet { code: b'C', data: b"host\x004\x00".to_vec() },
        Packet { code: b'D', data: vec![] },
        Packet { code: b'M', data: vec![] },
        Packet { code: b'Z', data: vec![] },
    ] {
        assert!(m.handle_packet(&p).is_err(), "{p:?}");
    }
}

fn arb_packet() -> impl Strategy<Value = Packet> {
    let codes = prop::sample::select(b"OCDHMRTLNBEAQKUZ".to_vec());
    (codes, prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(code, data)| Packet { code, data })
}

proptest! {
    #[test]
    fn any_packet_sequence_is_handled_without_panic(packets in prop::collection::vec(arb_packet(), 0..40)) {
        let mut m = Milter::new(policy(OnEom::Discard, true, 64), check());
        m.handle(optneg(6, ALL_PROTOCOL)).unwrap();
        for p in &packets {
            match m.handle_packet(p) {
                Ok(Step::Store(d)) => {
                    prop_assert!(d.raw.len() <= 64);
                    let _ = m.stored(true);
                }
                Ok(Step::Close) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    #[test]
    fn any_bytes_decode_and_drive_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut m = Milter::new(policy(OnEom::Accept, true, 64), check());
        let mut buf = bytes.as_slice();
        while let Ok(Some((p, used))) = codec::decode(buf) {
            buf = &buf[used..];
            if m.handle_packet(&p).is_err() {
                break;
            }
        }
    }
}
