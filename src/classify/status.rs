//! RFC 3463 enhanced status codes (and RFC 5321 reply codes): parsing, the patterns
//! rules use to match them, and what each code means as a reason when nothing more
//! specific decides.

use super::verdict::Reason;

/// A parsed enhanced status code `class.subject.detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusCode {
    /// 2 success, 4 persistent transient, 5 permanent.
    pub class: u8,
    /// 0 other, 1 addressing, 2 mailbox, 3 mail system, 4 network, 5 protocol, 6 content,
    /// 7 security or policy.
    pub subject: u16,
    /// The detail within the subject.
    pub detail: u16,
}

impl StatusCode {
    /// Parses "5.1.1" (surrounding blanks allowed); `None` when it is not a status code.
    pub fn parse(s: &str) -> Option<StatusCode> {
        // Three numbers of one to three digits, split by dots (as `num` reads them),
        // read in one pass: this runs for every record, twice.
        let mut parts = [0u16; 3];
        let (mut part, mut digits) = (0usize, 0usize);
        for &b in s.trim().as_bytes() {
            match b {
                b'0'..=b'9' if digits < 3 => {
                    let slot = parts.get_mut(part)?;
                    *slot = *slot * 10 + u16::from(b - b'0');
                    digits += 1;
                }
                b'.' if digits > 0 && part < 2 => (part, digits) = (part + 1, 0),
                _ => return None,
            }
        }
        let [class, subject, detail] = parts;
        if part != 2 || digits == 0 || !matches!(class, 2 | 4 | 5) {
            return None;
        }
        Some(StatusCode { class: class as u8, subject, detail })
    }

    /// True for codes that say little beyond success/failure: x.0.0, x.x.0 of the
    /// address, mailbox, protocol and security subjects and 5.7.1, which servers use for
    /// everything from spam to blocklists to unknown users.
    pub fn is_generic(self) -> bool {
        self.detail == 0 || (self.subject == 7 && self.detail == 1) || self.detail >= 900
    }

    /// The reason RFC 3463 (and the registry's later codes) gives this code, if any.
    pub fn reason(self) -> Option<Reason> {
        use Reason::*;
        if self.class == 2 {
            return Some(Delivered);
        }
        let r = match (self.subject, self.detail) {
            (1, 1) | (1, 3) | (1, 4) => UserUnknown,
            (1, 2) => HostUnknown,
            (1, 6) => HasMoved,
            (1, 7) | (1, 8) => Rejected,
            (1, 10) => NotAccept,
            (2, 1) => Suspend,
            (2, 2) => MailboxFull,
            (2, 3) => ExceedLimit,
            (2, 4) => SystemError,
            (3, 0) | (3, 5) => SystemError,
            (3, 1) => SystemFull,
            (3, 2) => NotAccept,
            (3, 3) => SystemError,
            (3, 4) => MesgTooBig,
            (4, 1) | (4, 2) | (4, 5) => NetworkError,
            (4, 3) => SystemError,
            (4, 4) => HostUnknown,
            (4, 6) => NetworkError,
            (4, 7) => Expired,
            (5, 1) | (5, 2) | (5, 4) | (5, 5) => SyntaxError,
            (5, 3) => TooManyConn,
            (6, _) => ContentError,
            (7, 1) => Blocked,
            (7, 13) => Suspend,
            (7, 17) | (7, 18) => HasMoved,
            (7, 20) | (7, 21) | (7, 22) | (7, 23) | (7, 24) | (7, 26) => AuthFailure,
            (7, 25) => RequirePtr,
            (7, 27) => Rejected,
            (7, _) => SecurityError,
            _ => return None,
        };
        Some(r)
    }
}

fn num(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A status code pattern: "5.1.1", "5.7.*", "*.1.1", "4.*.*".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusPattern {
    class: Option<u16>,
    subject: Option<u16>,
    detail: Option<u16>,
}

impl StatusPattern {
    /// Parses a pattern; `*` matches any number in its place.
    pub fn parse(s: &str) -> Option<StatusPattern> {
        let part = |p: &str| if p == "*" { Some(None) } else { num(p).map(Some) };
        let mut it = s.trim().split('.');
        let class = part(it.next()?)?;
        let subject = part(it.next()?)?;
        let detail = part(it.next()?)?;
        if it.next().is_some() {
            return None;
        }
        Some(StatusPattern { class, subject, detail })
    }

    /// True when `code` fits the pattern.
    pub fn matches(&self, code: StatusCode) -> bool {
        self.class.is_none_or(|c| c == u16::from(code.class))
            && self.subject.is_none_or(|s| s == code.subject)
            && self.detail.is_none_or(|d| d == code.detail)
    }

    /// A concrete code fitting the pattern (wildcards as 0), for examples.
    pub fn example(&self) -> String {
        format!("{}.{}.{}", self.class.unwrap_or(5), self.subject.unwrap_or(0), self.detail.unwrap_or(0))
    }
}

/// A reply code pattern: "550", "55x", "5xx" (`x` or `*` for any digit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyPattern([Option<u8>; 3]);

impl ReplyPattern {
    /// Parses a pattern of three digits or wildcards.
    pub fn parse(s: &str) -> Option<ReplyPattern> {
        let b = s.trim().as_bytes();
        if b.len() != 3 {
            return None;
        }
        let mut out = [None; 3];
        for (slot, &c) in out.iter_mut().zip(b) {
            *slot = match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'x' | b'X' | b'*' => None,
                _ => return None,
            };
        }
        if !matches!(out[0], None | Some(2..=5)) {
            return None;
        }
        Some(ReplyPattern(out))
    }

    /// True when `code` fits the pattern.
    pub fn matches(&self, code: u16) -> bool {
        if !(200..=599).contains(&code) {
            return false;
        }
        let digits = [(code / 100) as u8, (code / 10 % 10) as u8, (code % 10) as u8];
        self.0.iter().zip(digits).all(|(p, d)| p.is_none_or(|p| p == d))
    }

    /// A concrete code fitting the pattern (wildcards as 0, class 5), for examples.
    pub fn example(&self) -> u16 {
        let [a, b, c] = self.0;
        u16::from(a.unwrap_or(5)) * 100 + u16::from(b.unwrap_or(0)) * 10 + u16::from(c.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let c = StatusCode::parse(" 5.7.26 ").unwrap();
        assert_eq!((c.class, c.subject, c.detail), (5, 7, 26));
        assert!(StatusPattern::parse("5.7.*").unwrap().matches(c));
        assert!(StatusPattern::parse("*.7.26").unwrap().matches(c));
        assert!(!StatusPattern::parse("5.7.2").unwrap().matches(c));
        assert!(StatusCode::parse("5.1").is_none());
        assert!(StatusCode::parse("9.1.1").is_none());
        assert!(StatusCode::parse("5.1.1.1").is_none());
        assert!(StatusCode::parse("5.x.1").is_none());
        assert!(ReplyPattern::parse("55x").unwrap().matches(552));
        assert!(!ReplyPattern::parse("55x").unwrap().matches(452));
        assert!(ReplyPattern::parse("650").is_none());
    }

    /// The one-pass reader answers as splitting on dots and reading each number did.
    #[test]
    fn one_pass_parse_equals_the_split_reading() {
        let split = |s: &str| -> Option<StatusCode> {
            let mut it = s.trim().split('.');
            let class = num(it.next()?)?;
            let subject = num(it.next()?)?;
            let detail = num(it.next()?)?;
            if it.next().is_some() || !matches!(class, 2 | 4 | 5) {
                return None;
            }
            Some(StatusCode { class: class as u8, subject, detail })
        };
        let pieces = ["", "0", "2", "4", "5", "9", "05", "005", "0005", "10", "999", "1000", "x", " ", "+1", "\u{e9}"];
        let mut texts = vec![String::new(), ".".into(), "..".into(), "...".into(), " 5.1.1\t".into(), "\u{a0}5.1.1".into()];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    texts.push(format!("{a}.{b}.{c}"));
                    texts.push(format!("{a}.{b}.{c}.1"));
                    texts.push(format!("{a}.{b}"));
                }
            }
        }
        for t in &texts {
            assert_eq!(StatusCode::parse(t), split(t), "{t:?}");
        }
    }

    #[test]
    fn generic_and_meaning() {
        assert!(StatusCode::parse("5.7.1").unwrap().is_generic());
        assert!(StatusCode::parse("4.0.0").unwrap().is_generic());
        assert!(!StatusCode::parse("5.1.1").unwrap().is_generic());
        assert_eq!(StatusCode::parse("5.2.2").unwrap().reason(), Some(Reason::MailboxFull));
        assert_eq!(StatusCode::parse("5.7.26").unwrap().reason(), Some(Reason::AuthFailure));
    }
}
