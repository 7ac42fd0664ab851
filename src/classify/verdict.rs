//! The verdict vocabulary: Sisimai v5 reasons, coarse classes and fault.

use serde::Serialize;

macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident => $s:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vm])* $v,)* }
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$v,)*];
            /// The name used in JSON, TOML and the store.
            pub fn as_str(self) -> &'static str { match self { $($name::$v => $s,)* } }
            /// The value with this name, if any.
            pub fn from_name(s: &str) -> Option<$name> {
                match s { $($s => Some($name::$v),)* _ => None }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) }
        }
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> { s.serialize_str(self.as_str()) }
        }
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::from_name(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown {}: {s}", stringify!($name))))
            }
        }
    };
}

named_enum! {
    /// Why delivery failed, in Sisimai v5's vocabulary.
    Reason {
        AuthFailure => "authfailure",
        BadReputation => "badreputation",
        Blocked => "blocked",
        ContentError => "contenterror",
        Delivered => "delivered",
        ExceedLimit => "exceedlimit",
        Expired => "expired",
        Feedback => "feedback",
        Filtered => "filtered",
        HasMoved => "hasmoved",
        HostUnknown => "hostunknown",
        MailboxFull => "mailboxfull",
        MailerError => "mailererror",
        MesgTooBig => "mesgtoobig",
        NetworkError => "networkerror",
        NoRelaying => "norelaying",
        NotAccept => "notaccept",
        NotCompliantRfc => "notcompliantrfc",
        OnHold => "onhold",
        PolicyViolation => "policyviolation",
        Rejected => "rejected",
        RequirePtr => "requireptr",
        SecurityError => "securityerror",
        SpamDetected => "spamdetected",
        Speeding => "speeding",
        Suspend => "suspend",
        SyntaxError => "syntaxerror",
        SystemError => "systemerror",
        SystemFull => "systemfull",
        TooManyConn => "toomanyconn",
        Undefined => "undefined",
        UserUnknown => "userunknown",
        Vacation => "vacation",
        VirusDetected => "virusdetected",
    }
}

named_enum! {
    /// A coarse grouping of reasons for reports and policy.
    Class {
        InvalidRecipient => "invalid_recipient",
        InvalidDomain => "invalid_domain",
        InactiveMailbox => "inactive_mailbox",
        MailboxFull => "mailbox_full",
        TooLarge => "too_large",
        Content => "content",
        Reputation => "reputation",
        Authentication => "authentication",
        Policy => "policy",
        RateLimited => "rate_limited",
        Transient => "transient",
        Protocol => "protocol",
        AutoReply => "auto_reply",
        Complaint => "complaint",
        Delivered => "delivered",
        Unknown => "unknown",
    }
}

named_enum! {
    /// Whose condition made the delivery fail.
    Fault {
        /// The address itself: unknown, full, disabled, moved.
        Recipient => "recipient",
        /// Our IP, domain, authentication, envelope or content was refused.
        Sender => "sender",
        /// Try again later: rate limits, busy or broken systems, greylisting.
        Transient => "transient",
        /// Not a failure (delivered, auto-reply, complaint, unknown).
        None => "none",
    }
}

/// The classification of one record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Sisimai v5 reason.
    pub reason: Reason,
    /// Coarse class.
    pub class: Class,
    /// Whose fault it was.
    pub fault: Fault,
    /// Permanent failure of the address itself.
    pub hard: bool,
    /// Id of the rule that decided.
    pub rule: String,
    /// The text the rule matched, for `--explain`.
    pub matched: String,
}

impl Reason {
    /// The class a reason belongs to by default.
    pub fn class(self) -> Class {
        use Reason::*;
        match self {
            UserUnknown => Class::InvalidRecipient,
            HostUnknown | NotAccept => Class::InvalidDomain,
            Suspend | HasMoved => Class::InactiveMailbox,
            MailboxFull => Class::MailboxFull,
            MesgTooBig | ExceedLimit => Class::TooLarge,
            SpamDetected | VirusDetected | Filtered | ContentError | NotCompliantRfc => Class::Content,
            Blocked | BadReputation | RequirePtr => Class::Reputation,
            AuthFailure | SecurityError => Class::Authentication,
            PolicyViolation | Rejected | NoRelaying => Class::Policy,
            Speeding | TooManyConn => Class::RateLimited,
            NetworkError | SystemError | SystemFull | Expired | MailerError => Class::Transient,
            SyntaxError => Class::Protocol,
            Vacation => Class::AutoReply,
            Feedback => Class::Complaint,
            Delivered => Class::Delivered,
            Undefined | OnHold => Class::Unknown,
        }
    }

    /// Whose fault a failure for this reason is, by default.
    pub fn fault(self) -> Fault {
        use Reason::*;
        match self {
            UserUnknown | HostUnknown | HasMoved | NotAccept | MailboxFull | Suspend => Fault::Recipient,
            Blocked | BadReputation | AuthFailure | RequirePtr | SpamDetected | VirusDetected
            | Filtered | PolicyViolation | Rejected | NoRelaying | SecurityError | NotCompliantRfc
            | ContentError | MesgTooBig | ExceedLimit | SyntaxError => Fault::Sender,
            Speeding | TooManyConn | NetworkError | SystemError | SystemFull | Expired
            | MailerError => Fault::Transient,
            Vacation | Feedback | Delivered | Undefined | OnHold => Fault::None,
        }
    }

    /// True for the reasons that say the address itself cannot receive mail (hard when
    /// the failure is permanent).
    pub fn is_address_failure(self) -> bool {
        matches!(self, Reason::UserUnknown | Reason::HostUnknown | Reason::HasMoved | Reason::NotAccept)
    }
}
