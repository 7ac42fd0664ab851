//! Return-path tokens (VERP): signed `bounce+ID.EXP.MAC@domain` and classic
//! `bounce+local=domain@domain`. Pure: keys are passed in (see `verp_keys` for files).
//!
//! The signed form carries the send id, the expiry day (days since 1970) and a MAC:
//! HMAC-SHA256 over a version byte, the lower-cased id and the expiry day, truncated to
//! 60 bits. Every part is lower-case base32 (RFC 4648 alphabet) and compared without
//! regard to case, because MTAs fold the case of local parts.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::path::PathBuf;

/// Seconds in a day.
pub const DAY_SECS: i64 = 86_400;
/// Bits of HMAC kept in a token (12 base32 characters).
pub const MAC_BITS: u32 = 60;
const MAC_CHARS: usize = (MAC_BITS / 5) as usize;
const VERSION: u8 = 1;
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Longest send id accepted (keeps the local part near the 64-octet limit of RFC 5321).
pub const MAX_ID_LEN: usize = 64;

/// The `[verp]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct VerpConfig {
    /// Domain of the return-path addresses (the bounce domain routed to rebound).
    pub domain: String,
    /// Local-part prefix before the `+` (e.g. `bounce` in `bounce+TOKEN@domain`).
    pub prefix: String,
    /// Key file: one hex key per line; the first signs, all verify. Created (0600) if missing.
    pub key_file: PathBuf,
    /// More key files whose keys still verify but never sign (for rotation).
    pub verify_key_files: Vec<PathBuf>,
    /// Days a token stays valid when no expiry is given.
    pub expiry_days: u32,
    /// Answer 550 5.7.1 at RCPT for an address with our prefix whose token is invalid.
    pub reject_invalid_verp: bool,
}

impl Default for VerpConfig {
    fn default() -> Self {
        VerpConfig {
            domain: "bounce.example.com".into(),
            prefix: "bounce".into(),
            key_file: PathBuf::from("rebound-verp.key"),
            verify_key_files: Vec::new(),
            expiry_days: 30,
            reject_invalid_verp: false,
        }
    }
}

/// Why an address is not a valid token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerpError {
    /// The address is not a token of this site (or is broken).
    #[error("malformed: {0}")]
    Malformed(String),
    /// The MAC does not match any key.
    #[error("forged: signature does not match any key")]
    Forged,
    /// The token was genuine but its expiry day has passed.
    #[error("expired on day {expiry_day} (send {id})")]
    Expired {
        /// The send id it carried.
        id: String,
        /// The first day it no longer verified.
        expiry_day: i64,
    },
    /// A send id that cannot be put in a token.
    #[error("invalid send id {0:?}: use 1-64 letters, digits, '-' or '_'")]
    InvalidId(String),
    /// No key to sign with.
    #[error("no signing key")]
    NoKey,
}

/// A return-path address split into its parts (not yet verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReturnPath {
    /// `prefix+ID.EXP.MAC@domain`.
    Signed {
        /// Send id as written (case may be folded by MTAs).
        id: String,
        /// Expiry day (days since 1970).
        expiry_day: i64,
        /// The MAC, lower case.
        mac: String,
    },
    /// `prefix+local=domain@bounce-domain`: the recipient address it encodes.
    Classic {
        /// The recipient address, `local@domain`.
        recipient: String,
    },
}

/// A token whose MAC and expiry checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The send id, as written in the token.
    pub id: String,
    /// The first day (since 1970) on which it no longer verifies.
    pub expiry_day: i64,
}

/// The site keys: the first signs, all verify.
#[derive(Clone, Default)]
pub struct Keys {
    // Keyed once: cloning a keyed HMAC skips hashing the key pads for every token.
    keys: Vec<Hmac<Sha256>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({} keys)", self.keys.len())
    }
}

impl Keys {
    /// Keys from raw bytes, signing key first.
    pub fn new(keys: Vec<Vec<u8>>) -> Keys {
        let keys = keys
            .iter()
            .filter(|k| !k.is_empty())
            .filter_map(|k| <Hmac<Sha256> as Mac>::new_from_slice(k).ok())
            .collect();
        Keys { keys }
    }

    /// How many keys verify.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when there is no key at all.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The local part `prefix+ID.EXP.MAC` for a send id and expiry day.
    pub fn sign_local(&self, prefix: &str, id: &str, expiry_day: i64) -> Result<String, VerpError> {
        check_id(id)?;
        let key = self.keys.first().ok_or(VerpError::NoKey)?;
        let exp = encode_u64(expiry_day.max(0) as u64, 1);
        Ok(format!("{prefix}+{id}.{exp}.{}", mac(key, id, &exp)))
    }

    /// The full return-path address for a send id and expiry day.
    pub fn sign(&self, prefix: &str, domain: &str, id: &str, expiry_day: i64) -> Result<String, VerpError> {
        Ok(format!("{}@{domain}", self.sign_local(prefix, id, expiry_day)?))
    }

    /// Checks a signed token's MAC against every key, then its expiry against `now`.
    pub fn verify_parts(&self, id: &str, expiry_day: i64, mac_text: &str, now: i64) -> Result<Verified, VerpError> {
        let exp = encode_u64(expiry_day.max(0) as u64, 1);
        let given = mac_text.to_ascii_lowercase();
        let genuine = self.keys.iter().any(|k| constant_time_eq(mac(k, id, &exp).as_bytes(), given.as_bytes()));
        if !genuine {
            return Err(VerpError::Forged);
        }
        if day_of(now) >= expiry_day {
            return Err(VerpError::Expired { id: id.to_string(), expiry_day });
        }
        Ok(Verified { id: id.to_string(), expiry_day })
    }

    /// Parses and verifies a signed return-path address (classic ones are `Malformed`
    /// here: they carry no signature).
    pub fn verify(&self, address: &str, prefix: &str, now: i64) -> Result<Verified, VerpError> {
        match parse_return_path(address, prefix)? {
            ReturnPath::Signed { id, expiry_day, mac } => self.verify_parts(&id, expiry_day, &mac, now),
            ReturnPath::Classic { .. } => Err(VerpError::Malformed("classic VERP carries no signature".into())),
        }
    }
}

impl Keys {
    /// For `reject_invalid_verp` at LMTP RCPT: an error for an address that claims our
    /// prefix but whose signed token is forged, expired or malformed. Addresses without
    /// our prefix and classic VERP (checked against `sends` later) pass.
    pub fn check_rcpt(&self, config: &VerpConfig, address: &str, now: i64) -> Result<(), VerpError> {
        if !has_prefix(address, &config.prefix) {
            return Ok(());
        }
        match parse_return_path(address, &config.prefix)? {
            ReturnPath::Classic { .. } => Ok(()),
            ReturnPath::Signed { id, expiry_day, mac } => self.verify_parts(&id, expiry_day, &mac, now).map(|_| ()),
        }
    }
}

/// The RCPT-time check of `reject_invalid_verp`: the keys and settings an LMTP or
/// milter session needs to refuse invalid tokens before DATA.
#[derive(Debug, Clone)]
pub struct RcptGate {
    /// The keys that verify.
    pub keys: Keys,
    /// The `[verp]` section (prefix).
    pub config: VerpConfig,
}

impl RcptGate {
    /// Ok for an acceptable RCPT address at `now`, else why it must be refused.
    pub fn check(&self, address: &str, now: i64) -> Result<(), VerpError> {
        self.keys.check_rcpt(&self.config, address, now)
    }

    /// The 550 reply text for a refused token (without the code).
    pub fn refusal(e: &VerpError) -> String {
        let why = match e {
            VerpError::Expired { .. } => "expired",
            VerpError::Forged => "forged",
            _ => "malformed",
        };
        format!("5.7.1 Return path token {why}: this address accepts no bounce for it")
    }
}

/// The day (since 1970, UTC) that a Unix time falls on.
pub fn day_of(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(DAY_SECS)
}

/// The expiry day for a token made at `now` that must stay valid for `valid_secs`
/// (0 gives a token that has already expired).
pub fn expiry_day_for(now: i64, valid_secs: i64) -> i64 {
    if valid_secs <= 0 {
        day_of(now)
    } else {
        day_of(now.saturating_add(valid_secs)) + 1
    }
}

/// Splits a return-path address (angle brackets and case tolerated) into its parts.
pub fn parse_return_path(address: &str, prefix: &str) -> Result<ReturnPath, VerpError> {
    let addr = address.trim().trim_start_matches('<').trim_end_matches('>').trim();
    let (local, _domain) = addr.rsplit_once('@').ok_or_else(|| VerpError::Malformed("no @".into()))?;
    let (pre, token) = local.split_once('+').ok_or_else(|| VerpError::Malformed("no '+' in local part".into()))?;
    if !pre.eq_ignore_ascii_case(prefix) {
        return Err(VerpError::Malformed(format!("prefix is not {prefix:?}")));
    }
    if let Some((rlocal, rdomain)) = token.rsplit_once('=') {
        if rlocal.is_empty() || rdomain.is_empty() || !rdomain.contains('.') && !rdomain.eq_ignore_ascii_case("localhost") {
            return Err(VerpError::Malformed("classic VERP needs local=domain".into()));
        }
        return Ok(ReturnPath::Classic { recipient: format!("{rlocal}@{}", rdomain.to_ascii_lowercase()) });
    }
    let mut parts = token.rsplitn(3, '.');
    let (Some(mac), Some(exp), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(VerpError::Malformed("signed token needs ID.EXP.MAC".into()));
    };
    check_id(id).map_err(|_| VerpError::Malformed("bad send id".into()))?;
    if mac.len() != MAC_CHARS || decode_u64(mac).is_none() {
        return Err(VerpError::Malformed("bad MAC".into()));
    }
    let expiry_day = decode_u64(exp)
        .filter(|_| exp.len() <= 7)
        .ok_or_else(|| VerpError::Malformed("bad expiry".into()))? as i64;
    Ok(ReturnPath::Signed { id: id.to_string(), expiry_day, mac: mac.to_ascii_lowercase() })
}

/// True when `address` starts with `prefix+` (case-insensitive), i.e. claims to be ours.
pub fn has_prefix(address: &str, prefix: &str) -> bool {
    let addr = address.trim().trim_start_matches('<');
    addr.len() > prefix.len()
        && addr.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix))
        && addr.as_bytes().get(prefix.len()) == Some(&b'+')
}

fn check_id(id: &str) -> Result<(), VerpError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(VerpError::InvalidId(id.chars().take(80).collect()))
    }
}

/// Truncated HMAC over version, lower-cased id and the expiry text, as base32.
fn mac(key: &Hmac<Sha256>, id: &str, exp: &str) -> String {
    let mut m = key.clone();
    m.update(&[VERSION]);
    m.update(id.to_ascii_lowercase().as_bytes());
    m.update(b".");
    m.update(exp.as_bytes());
    let out = m.finalize().into_bytes();
    let mut first = [0u8; 8];
    first.copy_from_slice(&out[..8]);
    encode_u64(u64::from_be_bytes(first) >> (64 - MAC_BITS), MAC_CHARS)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Big-endian base32 digits of `v`, at least `min_len` long.
fn encode_u64(mut v: u64, min_len: usize) -> String {
    let mut digits = Vec::with_capacity(13);
    while v > 0 || digits.len() < min_len {
        digits.push(ALPHABET[(v & 31) as usize]);
        v >>= 5;
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

/// Inverse of [`encode_u64`], case-insensitive; None on a bad digit or overflow.
fn decode_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 13 {
        return None;
    }
    s.bytes().try_fold(0u64, |acc, b| {
        let d = match b.to_ascii_lowercase() {
            c @ b'a'..=b'z' => c - b'a',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        acc.checked_mul(32)?.checked_add(u64::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_roundtrip() {
        for v in [0u64, 1, 31, 32, 20_000, u64::MAX >> 4] {
            assert_eq!(decode_u64(&encode_u64(v, 1)), Some(v));
        }
        assert_eq!(encode_u64(0, 3), "aaa");
        assert_eq!(decode_u64("A7"), decode_u64("a7"));
        assert_eq!(decode_u64("a1"), None);
    }

    #[test]
    fn rcpt_check() {
        let k = Keys::new(vec![b"0123456789abcdef".to_vec()]);
        let cfg = VerpConfig::default();
        let good = k.sign("bounce", "b.example", "s1", 10).unwrap();
        assert_eq!(k.check_rcpt(&cfg, &good, 0), Ok(()));
        assert_eq!(k.check_rcpt(&cfg, &good, 11 * DAY_SECS).map_err(|e| matches!(e, VerpError::Expired { .. })), Err(true));
        assert_eq!(k.check_rcpt(&cfg, &good.replacen("s1", "s2", 1), 0), Err(VerpError::Forged));
        assert!(matches!(k.check_rcpt(&cfg, "bounce+junk@b.example", 0), Err(VerpError::Malformed(_))));
        assert_eq!(k.check_rcpt(&cfg, "postmaster@b.example", 0), Ok(()));
        assert_eq!(k.check_rcpt(&cfg, "bounce+a=example.org@b.example", 0), Ok(()));
    }

    #[test]
    fn parses_classic() {
        let rp = parse_return_path("<Bounce+alice=Example.org@b.example.com>", "bounce").unwrap();
        assert_eq!(rp, ReturnPath::Classic { recipient: "alice@example.org".into() });
    }
}
