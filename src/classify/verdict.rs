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
    /// What a report says happened to a recipient, in Sisimai v5's vocabulary (failures,
    /// plus delivered, vacation and feedback).
    Reason {
        /// SPF, DKIM or DMARC authentication of the sender failed.
        AuthFailure => "authfailure",
        /// The sending IP or domain's reputation is too low.
        BadReputation => "badreputation",
        /// The sending IP or host is blocked (blocklist, refused at connect or HELO).
        Blocked => "blocked",
        /// The content is malformed (8-bit or oversized headers, invalid MIME).
        ContentError => "contenterror",
        /// Not a failure: the message was delivered.
        Delivered => "delivered",
        /// The message exceeds the recipient's own size limit (x.2.3).
        ExceedLimit => "exceedlimit",
        /// Delivery was retried until it timed out, or is still being retried.
        Expired => "expired",
        /// A complaint: an ARF feedback report about the message.
        Feedback => "feedback",
        /// Refused by the recipient's filter or preferences, not for the address itself.
        Filtered => "filtered",
        /// The recipient has moved to another address.
        HasMoved => "hasmoved",
        /// The recipient's domain does not exist or has no mail host.
        HostUnknown => "hostunknown",
        /// The recipient's mailbox is over its quota.
        MailboxFull => "mailboxfull",
        /// A local delivery program (pipe, procmail ...) failed on the receiving side.
        MailerError => "mailererror",
        /// The message exceeds the receiving server's size limit (x.3.4).
        MesgTooBig => "mesgtoobig",
        /// A DNS or network failure reaching the receiving host.
        NetworkError => "networkerror",
        /// The server refused to relay: the recipient domain is not its own.
        NoRelaying => "norelaying",
        /// The recipient domain accepts no mail (null MX, x.1.10, x.3.2).
        NotAccept => "notaccept",
        /// The message does not comply with the RFCs (e.g. no or several From: fields).
        NotCompliantRfc => "notcompliantrfc",
        /// Undecided: the recipient's fate is unknown (e.g. the sender was refused first).
        OnHold => "onhold",
        /// Refused by the receiving site's policy (attachments, content rules ...).
        PolicyViolation => "policyviolation",
        /// The envelope sender was refused (at MAIL FROM, or the sender address).
        Rejected => "rejected",
        /// The sending IP has no or a mismatching reverse DNS (PTR) record.
        RequirePtr => "requireptr",
        /// The server requires authentication or TLS the client did not provide.
        SecurityError => "securityerror",
        /// The message was judged to be spam.
        SpamDetected => "spamdetected",
        /// Too many messages too fast: a sending rate or quota was exceeded.
        Speeding => "speeding",
        /// The recipient's mailbox is disabled or suspended.
        Suspend => "suspend",
        /// An SMTP syntax or protocol error.
        SyntaxError => "syntaxerror",
        /// The receiving system failed or is unavailable (internal error, busy).
        SystemError => "systemerror",
        /// The receiving system's disk or queue is full.
        SystemFull => "systemfull",
        /// Too many connections from the sending host.
        TooManyConn => "toomanyconn",
        /// Nothing in the report said why.
        Undefined => "undefined",
        /// The recipient address does not exist.
        UserUnknown => "userunknown",
        /// Not a failure: an auto-reply (vacation, out of office).
        Vacation => "vacation",
        /// The message was found to carry a virus or malware.
        VirusDetected => "virusdetected",
    }
}

named_enum! {
    /// A coarse grouping of reasons for reports and policy.
    Class {
        /// The address does not exist (userunknown).
        InvalidRecipient => "invalid_recipient",
        /// The domain does not exist or accepts no mail (hostunknown, notaccept).
        InvalidDomain => "invalid_domain",
        /// The mailbox is disabled or has moved (suspend, hasmoved).
        InactiveMailbox => "inactive_mailbox",
        /// The mailbox is full (mailboxfull).
        MailboxFull => "mailbox_full",
        /// The message is too big (mesgtoobig, exceedlimit).
        TooLarge => "too_large",
        /// The content was refused (spam, virus, filters, malformed or non-RFC content).
        Content => "content",
        /// The sending IP or domain was refused (blocked, badreputation, requireptr).
        Reputation => "reputation",
        /// Sender authentication failed or was missing (authfailure, securityerror).
        Authentication => "authentication",
        /// Refused by policy: site rules, the envelope sender, relaying (policyviolation ...).
        Policy => "policy",
        /// Too many messages or connections (speeding, toomanyconn).
        RateLimited => "rate_limited",
        /// Network or system trouble, or retried until expired (networkerror, expired ...).
        Transient => "transient",
        /// An SMTP protocol error (syntaxerror).
        Protocol => "protocol",
        /// An auto-reply, not a failure (vacation).
        AutoReply => "auto_reply",
        /// A complaint (feedback).
        Complaint => "complaint",
        /// A delivery report, not a failure (delivered).
        Delivered => "delivered",
        /// No reason could be told (undefined, onhold).
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
