//! The RCPT-time token check on the VERP module ([`Keys::check_rcpt`], the same rule
//! LMTP uses): an address with the configured prefix must carry a signed token that
//! verifies and has not expired; other addresses and classic VERP pass.

use super::protocol::{TokenCheck, TokenStatus};
use crate::verp::{Keys, VerpConfig, VerpError};
use std::sync::Arc;

/// Verifies return-path tokens with the site keys at the current time.
pub struct VerpTokenCheck {
    keys: Arc<Keys>,
    config: VerpConfig,
    now: fn() -> i64,
}

impl VerpTokenCheck {
    /// A check with these keys and `[verp]` settings, on the system clock.
    pub fn new(keys: Arc<Keys>, config: VerpConfig) -> VerpTokenCheck {
        VerpTokenCheck { keys, config, now: || chrono::Utc::now().timestamp() }
    }

    /// The same check at a fixed time (tests).
    pub fn at(keys: Arc<Keys>, config: VerpConfig, now: fn() -> i64) -> VerpTokenCheck {
        VerpTokenCheck { keys, config, now }
    }
}

impl TokenCheck for VerpTokenCheck {
    fn check(&self, address: &str) -> TokenStatus {
        match self.keys.check_rcpt(&self.config, address, (self.now)()) {
            Ok(()) => TokenStatus::Valid,
            Err(VerpError::Expired { .. }) => TokenStatus::Expired,
            // Forged, or claims our prefix but is no token of ours.
            Err(_) => TokenStatus::Forged,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn valid_forged_expired_and_foreign_addresses() {
        let keys = Keys::new(vec![b"0123456789abcdef0123".to_vec()]);
        let config = VerpConfig { prefix: "bounce".into(), ..Default::default() };
        let c = VerpTokenCheck::at(Arc::new(keys.clone()), config, || NOW);
        let day = crate::verp::day_of(NOW);
        let good = keys.sign("bounce", "b.example", "s1", day + 3).unwrap();
        assert_eq!(c.check(&good), TokenStatus::Valid);
        assert_eq!(c.check(&good.to_ascii_uppercase()), TokenStatus::Valid, "MTAs fold case");
        let old = keys.sign("bounce", "b.example", "s1", day).unwrap();
        assert_eq!(c.check(&old), TokenStatus::Expired);
        let theirs = Keys::new(vec![b"another key, not ours".to_vec()]).sign("bounce", "b.example", "s1", day + 3).unwrap();
        assert_eq!(c.check(&theirs), TokenStatus::Forged);
        assert_eq!(c.check("bounce+garbage@b.example"), TokenStatus::Forged);
        assert_eq!(c.check("bounce+alice=example.org@b.example"), TokenStatus::Valid);
        assert!(matches!(c.check("postmaster@b.example"), TokenStatus::Valid | TokenStatus::Absent));
    }
}
