//! The `[milter]` section.

use super::protocol::{OnEom, Policy};
use serde::Deserialize;
use std::path::PathBuf;

/// The `[milter]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MilterConfig {
    /// TCP addresses to listen on (Postfix: `smtpd_milters = inet:127.0.0.1:8894`).
    pub listen: Vec<String>,
    /// Unix socket paths to listen on (Postfix: `smtpd_milters = unix:/path`).
    pub sockets: Vec<PathBuf>,
    /// Permissions of the unix sockets, octal (the MTA's user must be able to connect).
    pub socket_mode: String,
    /// Domains whose recipients are return paths (bounce addresses); mail to no other
    /// domain is looked at. Empty: the `[verp]` domain.
    pub bounce_domains: Vec<String>,
    /// Refuse recipients with a forged or expired VERP token at RCPT (550 5.7.1); also on
    /// when `[verp] reject_invalid_verp` is.
    pub reject_invalid_verp: bool,
    /// After a message is recorded: `accept` (it goes on to its mailbox) or `discard`.
    pub on_eom: OnEom,
    /// Largest message assembled for parsing; bigger ones are not recorded.
    pub max_message_bytes: usize,
    /// Keep each recorded message's raw bytes (compressed) in `messages.raw` as
    /// evidence, as `[lmtp] keep_raw` does for LMTP.
    pub keep_raw: bool,
    /// Most MTA connections served at once; more are closed (the MTA tempfails).
    pub max_connections: usize,
    /// Seconds a connection may stay silent before it is closed.
    pub idle_timeout_secs: u64,
    /// Seconds SIGTERM waits for messages in progress before exiting.
    pub drain_timeout_secs: u64,
}

impl Default for MilterConfig {
    fn default() -> Self {
        MilterConfig {
            listen: vec!["127.0.0.1:8894".into()],
            sockets: Vec::new(),
            socket_mode: "0660".into(),
            bounce_domains: Vec::new(),
            reject_invalid_verp: false,
            on_eom: OnEom::Accept,
            max_message_bytes: 10 << 20,
            keep_raw: true,
            max_connections: 256,
            idle_timeout_secs: 600,
            drain_timeout_secs: 30,
        }
    }
}

impl MilterConfig {
    /// The protocol decisions this configuration makes, with the `[verp]` section's
    /// domain and reject setting as fallbacks.
    pub fn policy(&self, verp: &crate::verp::VerpConfig) -> Policy {
        let domains = if self.bounce_domains.is_empty() { std::slice::from_ref(&verp.domain) } else { &self.bounce_domains[..] };
        Policy {
            bounce_domains: domains
                .iter()
                .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
                .filter(|d| !d.is_empty())
                .collect(),
            reject_invalid_verp: self.reject_invalid_verp || verp.reject_invalid_verp,
            on_eom: self.on_eom,
            max_message_bytes: self.max_message_bytes,
        }
    }

    /// The unix socket mode as a number (0660 when unparsable).
    pub fn socket_mode_bits(&self) -> u32 {
        u32::from_str_radix(self.socket_mode.trim_start_matches("0o"), 8).unwrap_or(0o660)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::milter::OnEom;

    #[test]
    fn milter_section_parses_and_normalises_domains() {
        let c = Config::from_toml(
            "[milter]\nlisten = [\"127.0.0.1:9999\"]\nbounce_domains = [\" Bounce.Example.COM. \"]\n\
             reject_invalid_verp = true\non_eom = \"discard\"\nsocket_mode = \"0666\"\n",
        )
        .unwrap();
        let p = c.milter.policy(&c.verp);
        assert_eq!(p.bounce_domains, vec!["bounce.example.com"]);
        assert!(p.reject_invalid_verp);
        assert_eq!(p.on_eom, OnEom::Discard);
        assert_eq!(c.milter.socket_mode_bits(), 0o666);
        assert_eq!(c.milter.listen, vec!["127.0.0.1:9999"]);
    }

    #[test]
    fn verp_section_fills_in() {
        let c = Config::from_toml("[verp]\ndomain = \"B.example\"\nreject_invalid_verp = true\n").unwrap();
        let p = c.milter.policy(&c.verp);
        assert_eq!(p.bounce_domains, vec!["b.example"]);
        assert!(p.reject_invalid_verp);
    }

    #[test]
    fn defaults_are_safe() {
        let c = Config::from_toml("").unwrap();
        assert!(!c.milter.policy(&c.verp).reject_invalid_verp);
        assert_eq!(c.milter.on_eom, OnEom::Accept);
        assert!(c.milter.keep_raw);
        assert!(!Config::from_toml("[milter]\nkeep_raw = false\n").unwrap().milter.keep_raw);
        assert!(Config::from_toml("[milter]\non_eom = \"bounce\"\n").is_err());
    }
}
