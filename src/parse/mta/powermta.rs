//! PowerMTA: its DSNs carry a per-recipient X-PowerMTA-BounceCategory field, the MTA's
//! own reading of the remote reply. The categories that name one cause become hints.

/// The reason a PowerMTA bounce category names, if it names one.
pub fn category_hint(category: &str) -> Option<&'static str> {
    Some(match category.trim() {
        "bad-mailbox" => "userunknown",
        "bad-domain" => "hostunknown",
        "inactive-mailbox" => "suspend",
        "quota-issues" => "mailboxfull",
        "virus-related" => "virusdetected",
        "relaying-issues" => "norelaying",
        "message-expired" => "expired",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories() {
        assert_eq!(category_hint("bad-mailbox"), Some("userunknown"));
        assert_eq!(category_hint("other"), None);
        assert_eq!(category_hint(""), None);
    }
}
