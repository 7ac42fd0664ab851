//! The mailbox provider behind a recipient domain, for reports: a built-in table of
//! well-known consumer domains grouped by the provider whose MX hosts serve them
//! (gmail.com and googlemail.com are both Google). Any other domain is its own provider:
//! rebound does no DNS lookups, so a company domain hosted by Google shows as itself.

/// Exact domain → provider. Grouped by who runs the MX, as of 2026.
const PROVIDERS: &[(&str, &[&str])] = &[
    ("google", &["gmail.com", "googlemail.com", "google.com"]),
    ("microsoft", &["outlook.com", "hotmail.com", "live.com", "msn.com", "passport.com", "windowslive.com"]),
    // Verizon and AOL mailboxes moved onto Yahoo's MX (mx-aol.mail.gm0.yahoodns.net).
    (
        "yahoo",
        &["yahoo.com", "ymail.com", "rocketmail.com", "aol.com", "aim.com", "verizon.net", "yahoo.co.uk", "yahoo.fr"],
    ),
    ("apple", &["icloud.com", "me.com", "mac.com"]),
    ("gmx", &["gmx.de", "gmx.net", "gmx.com", "gmx.at", "gmx.ch", "gmx.fr", "web.de", "mail.com"]),
    ("mailru", &["mail.ru", "inbox.ru", "list.ru", "bk.ru", "internet.ru"]),
    ("yandex", &["yandex.ru", "yandex.com", "ya.ru", "yandex.by", "yandex.kz", "yandex.ua", "narod.ru"]),
    ("comcast", &["comcast.net", "xfinity.com"]),
    (
        "att",
        &["att.net", "sbcglobal.net", "bellsouth.net", "pacbell.net", "swbell.net", "prodigy.net", "flash.net", "ameritech.net"],
    ),
    ("cox", &["cox.net"]),
    ("charter", &["charter.net", "spectrum.net", "twc.com", "roadrunner.com", "rr.com"]),
    ("proton", &["protonmail.com", "protonmail.ch", "proton.me", "pm.me"]),
    ("zoho", &["zoho.com", "zohomail.com"]),
    ("fastmail", &["fastmail.com", "fastmail.fm"]),
    ("orange", &["orange.fr", "wanadoo.fr"]),
    ("free", &["free.fr"]),
    ("laposte", &["laposte.net"]),
    ("telekom", &["t-online.de"]),
    ("italiaonline", &["libero.it", "virgilio.it"]),
    ("tencent", &["qq.com", "foxmail.com"]),
    ("netease", &["163.com", "126.com", "yeah.net"]),
    ("naver", &["naver.com"]),
    ("seznam", &["seznam.cz", "email.cz"]),
    ("wp", &["wp.pl", "o2.pl"]),
];

/// First labels that, followed by a country suffix (hotmail.co.uk, outlook.fr,
/// yahoo.de, gmx.es ...), still mean the same provider.
const COUNTRY_VARIANTS: &[(&str, &str)] = &[
    ("hotmail", "microsoft"),
    ("outlook", "microsoft"),
    ("live", "microsoft"),
    ("msn", "microsoft"),
    ("yahoo", "yahoo"),
    ("ymail", "yahoo"),
    ("aol", "yahoo"),
    ("gmx", "gmx"),
    ("googlemail", "google"),
];

/// The mailbox provider of a domain: a name from the built-in table, else the domain.
pub fn provider_of(domain: &str) -> String {
    let d = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    for (name, domains) in PROVIDERS {
        if domains.contains(&d.as_str()) {
            return (*name).to_string();
        }
    }
    if let Some((first, rest)) = d.split_once('.') {
        if is_country_suffix(rest) {
            if let Some((_, p)) = COUNTRY_VARIANTS.iter().find(|(l, _)| *l == first) {
                return (*p).to_string();
            }
        }
    }
    d
}

/// "de", "fr", "co.uk", "com.br", "co.jp" (but not yahoo.co.jp, which is a different
/// company: see below): a country code, optionally under a two- or three-letter
/// second-level label.
fn is_country_suffix(rest: &str) -> bool {
    // Yahoo Japan is run by LY Corporation on its own MX, not by Yahoo.
    if rest == "co.jp" || rest == "jp" {
        return false;
    }
    let labels: Vec<&str> = rest.split('.').collect();
    let cc_ok = |l: &str| l.len() == 2 && l.bytes().all(|b| b.is_ascii_lowercase());
    match labels.as_slice() {
        [cc] => cc_ok(cc),
        [sld, cc] => matches!(*sld, "co" | "com" | "net" | "org") && cc_ok(cc),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::provider_of;

    #[test]
    fn groups_well_known_domains() {
        assert_eq!(provider_of("gmail.com"), "google");
        assert_eq!(provider_of("GoogleMail.com"), "google");
        assert_eq!(provider_of("hotmail.co.uk"), "microsoft");
        assert_eq!(provider_of("outlook.fr"), "microsoft");
        assert_eq!(provider_of("msn.com"), "microsoft");
        assert_eq!(provider_of("aol.com"), "yahoo");
        assert_eq!(provider_of("yahoo.de"), "yahoo");
        assert_eq!(provider_of("me.com"), "apple");
        assert_eq!(provider_of("web.de"), "gmx");
        assert_eq!(provider_of("gmx.es"), "gmx");
        assert_eq!(provider_of("ya.ru"), "yandex");
    }

    #[test]
    fn unknown_domain_is_its_own_provider() {
        assert_eq!(provider_of("Example.ORG."), "example.org");
        assert_eq!(provider_of("yahoo.co.jp"), "yahoo.co.jp");
        assert_eq!(provider_of("live.example.com"), "live.example.com");
        assert_eq!(provider_of(""), "");
    }
}
