//! Reports: events and rates per domain, provider, reason, class or campaign.
