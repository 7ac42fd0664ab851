//! Non-standard bounce formats, one family per module. Each family is recognised by
//! what its bounces say (headers, phrases, layout), never by a single sample's details.
//! `generic` reads the layout most families share; family modules refine it.

pub mod amazonses;
pub mod domino;
pub mod ezweb;
pub mod fml;
pub mod generic;
pub mod google;
pub mod lines;
pub mod mcafee;
pub mod opensmtpd;
pub mod powermta;

use super::context::Context;
use super::mime::Headers;
use super::record::Record;
use super::text;
use crate::parse::gate::Gated;
use std::sync::LazyLock;

static BOUNCE_SUBJECT: LazyLock<Gated> = LazyLock::new(|| {
    crate::parse::text::gated(r"(?i)undeliver|undelivered|delivery (?:status|failure|failed|report|notification|problem)|mail delivery|failure notice|returned mail|returned to sender|delivery has failed|could not be delivered|not delivered|non[- ]?delivery|nondeliverable|rejected|warning: could not send|delayed mail|mail system error|message not delivered|failed delivery|unzustellbar|non remis|no se puede entregar|delivery unsuccessful|fehlgeschlagen|error sending|mail error|bounce|notification|mail could not|echec|失敗|エラー|不達|配信").expect("regex") // ok: constant pattern, compiled by the unit tests
});

/// Whether the message presents itself as a delivery report (not ordinary mail).
pub fn looks_like_bounce(ctx: &Context) -> bool {
    let h = &ctx.headers;
    if h.get("x-failed-recipients").is_some() || ctx.is_report || !ctx.dsn.is_empty() {
        return true;
    }
    let from = h.get_or_empty("from");
    let from_addr = text::first_address(from).unwrap_or("");
    let from_lc = from.to_ascii_lowercase();
    if text::is_system_address(from_addr) || from_lc.contains("mailer-daemon") || from_lc.contains("postmaster") || from.trim() == "<>" || from_lc.contains("mail delivery") {
        return true;
    }
    // Borrowed when the subject holds no encoded words (nearly always).
    let subject = super::mime::decode_words(h.get_or_empty("subject"));
    if BOUNCE_SUBJECT.is_match(&subject) || fml::is_fml(ctx) {
        return true;
    }
    BOUNCE_TEXT.is_match(text::prefix(&ctx.text, 3000))
}

static BOUNCE_TEXT: LazyLock<crate::parse::gate::Folded> = LazyLock::new(|| {
    crate::parse::text::folded(r#"(?i)could not be delivered|undeliverable|delivery (?:has )?failed|permanent(?:ly)? (?:error|fail)|invalid (?:user|recipient|final delivery)|no such (?:user|mailbox)|unable to deliver|wasn't able to deliver|was not delivered|not be delivered|delivery to the following|"notificationtype"\s*:"#).expect("regex") // ok: constant pattern, compiled by the unit tests
});

/// Records read from the report text when no delivery-status part gave any (never one
/// for an `exclude`d address unless it is the only one).
pub fn scan(ctx: &Context, exclude: &generic::Excluded) -> Vec<Record> {
    let known: Vec<String> = ctx
        .headers
        .get_all("x-failed-recipients")
        .flat_map(|v| text::addresses(v).map(|f| f.addr.to_string()))
        .collect();
    if let Some(r) = amazonses::parse(ctx) {
        return r;
    }
    if let Some(r) = fml::parse(ctx) {
        return r;
    }
    let mut records = generic::scan(ctx, exclude.get(), &known, true);
    google::refine(ctx, &mut records);
    records
}

/// Last resort: nothing in the report names the recipient, the original's To does.
pub fn scan_original_to(ctx: &Context, orig: &Headers, exclude: &generic::Excluded) -> Vec<Record> {
    if ctx.original.is_none() {
        return Vec::new();
    }
    let to: Vec<String> = text::addresses(orig.get_or_empty("to")).map(|f| f.addr.to_string()).collect();
    if to.is_empty() || to.len() > 3 {
        return Vec::new();
    }
    generic::scan(ctx, exclude.get(), &to, false)
}
