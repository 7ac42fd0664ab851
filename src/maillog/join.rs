//! The queue-id join: remembers each queued message's sender and Message-ID (and the
//! recipients still deferred) so a delivery line can be tied to its VERP return path.
//! Bounded: at most `cap` queue ids, least recently seen dropped first; a result whose
//! sender line was never seen (rotated away, follower started late) is still emitted,
//! without a sender. Pure; the follower persists the changed entries.

use super::{DeliveryResult, DeliveryStatus, LogEntry, ParsedLine};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Recipients still being retried that one queue id remembers, at most.
const MAX_DEFERRED_PER_MESSAGE: usize = 64;

/// A delivery result with what the join knows of its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedResult {
    /// The logged result.
    pub result: DeliveryResult,
    /// The envelope sender (VERP return path); None when its line was not seen.
    pub sender: Option<String>,
    /// The message's Message-ID (without brackets), when seen.
    pub message_id: Option<String>,
}

/// What is remembered of one queued message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Envelope sender ("" for the null sender).
    pub sender: Option<String>,
    /// Message-ID without brackets.
    pub message_id: Option<String>,
    /// Recipients deferred and not yet delivered or bounced (for `status=expired`).
    pub deferred: Vec<DeliveryResult>,
    #[serde(skip)]
    seq: u64,
}

/// Counters of the join.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JoinStats {
    /// Entries dropped because the cap was reached.
    pub evicted: u64,
    /// Results emitted without a known sender.
    pub without_sender: u64,
    /// Expiries of messages the join had no entry for (recipients unknown).
    pub expired_unknown: u64,
}

/// The bounded queue-id join.
#[derive(Debug)]
pub struct Join {
    cap: usize,
    seq: u64,
    entries: HashMap<String, Pending>,
    by_age: BTreeMap<u64, String>,
    dirty: HashSet<String>,
    /// Counters.
    pub stats: JoinStats,
}

impl Join {
    /// An empty join keeping at most `cap` queue ids.
    pub fn new(cap: usize) -> Join {
        Join {
            cap: cap.max(1),
            seq: 0,
            entries: HashMap::new(),
            by_age: BTreeMap::new(),
            dirty: HashSet::new(),
            stats: JoinStats::default(),
        }
    }

    /// Number of queue ids remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Puts back an entry saved earlier (not marked changed).
    pub fn restore(&mut self, queue_id: &str, pending: Pending) {
        let e = self.entry(queue_id);
        e.sender = pending.sender;
        e.message_id = pending.message_id;
        e.deferred = pending.deferred;
        self.touch(queue_id);
        self.dirty.remove(queue_id);
    }

    /// The entry for a queue id, if remembered.
    pub fn get(&self, queue_id: &str) -> Option<&Pending> {
        self.entries.get(queue_id)
    }

    /// Queue ids changed since the last call, with their entry (None: removed).
    pub fn take_changes(&mut self) -> Vec<(String, Option<Pending>)> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty.into_iter().map(|q| {
            let p = self.entries.get(&q).cloned();
            (q, p)
        }).collect()
    }

    /// Feeds one parsed line; returns the results it completes.
    pub fn feed(&mut self, line: ParsedLine) -> Vec<JoinedResult> {
        match line.entry {
            LogEntry::Sender { queue_id, sender, message_id } => {
                let e = self.entry(&queue_id);
                e.sender = Some(sender);
                if message_id.is_some() {
                    e.message_id = message_id;
                }
                self.changed(&queue_id);
                Vec::new()
            }
            LogEntry::MessageId { queue_id, message_id } => {
                self.entry(&queue_id).message_id = Some(message_id);
                self.changed(&queue_id);
                Vec::new()
            }
            LogEntry::Results(results) => results.into_iter().map(|r| self.result(r)).collect(),
            LogEntry::Expired { queue_id, sender } => self.expired(&queue_id, sender, line.time),
            LogEntry::Removed { queue_id } => {
                if let Some(p) = self.entries.remove(&queue_id) {
                    self.by_age.remove(&p.seq);
                    self.dirty.insert(queue_id);
                }
                Vec::new()
            }
            LogEntry::Ignored | LogEntry::Unknown => Vec::new(),
        }
    }

    fn result(&mut self, r: DeliveryResult) -> JoinedResult {
        let queue_id = r.queue_id.clone();
        let known = self.entries.contains_key(&queue_id);
        if !known {
            self.stats.without_sender += 1;
        }
        let e = self.entry(&queue_id);
        e.deferred.retain(|d| !d.recipient.eq_ignore_ascii_case(&r.recipient));
        if r.status == DeliveryStatus::Deferred && e.deferred.len() < MAX_DEFERRED_PER_MESSAGE {
            e.deferred.push(r.clone());
        }
        let (sender, message_id) = (e.sender.clone(), e.message_id.clone());
        self.changed(&queue_id);
        JoinedResult { result: r, sender, message_id }
    }

    fn expired(&mut self, queue_id: &str, sender: String, time: Option<i64>) -> Vec<JoinedResult> {
        let Some(e) = self.entries.get_mut(queue_id) else {
            self.stats.expired_unknown += 1;
            return Vec::new();
        };
        let message_id = e.message_id.clone();
        let deferred = std::mem::take(&mut e.deferred);
        self.changed(queue_id);
        deferred
            .into_iter()
            .map(|mut r| {
                r.status = DeliveryStatus::Expired;
                r.time = time.or(r.time);
                JoinedResult { result: r, sender: Some(sender.clone()), message_id: message_id.clone() }
            })
            .collect()
    }

    fn entry(&mut self, queue_id: &str) -> &mut Pending {
        if !self.entries.contains_key(queue_id) {
            while self.entries.len() >= self.cap {
                let Some((_, oldest)) = self.by_age.pop_first() else { break };
                self.entries.remove(&oldest);
                self.dirty.insert(oldest);
                self.stats.evicted += 1;
            }
            self.seq += 1;
            self.by_age.insert(self.seq, queue_id.to_string());
            self.entries.insert(queue_id.to_string(), Pending { seq: self.seq, ..Default::default() });
        }
        // Just inserted or present: the map holds it.
        self.entries.entry(queue_id.to_string()).or_default()
    }

    fn touch(&mut self, queue_id: &str) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(p) = self.entries.get_mut(queue_id) {
            self.by_age.remove(&p.seq);
            p.seq = seq;
            self.by_age.insert(seq, queue_id.to_string());
        }
    }

    fn changed(&mut self, queue_id: &str) {
        self.touch(queue_id);
        self.dirty.insert(queue_id.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maillog::{parse_line, LogFormat};

    fn feed_all(j: &mut Join, text: &str) -> Vec<JoinedResult> {
        text.lines().flat_map(|l| j.feed(parse_line(l, LogFormat::Auto, 1_795_974_000))).collect()
    }

    #[test]
    fn harness_log_joins_senders_and_expiries() {
        let mut j = Join::new(1000);
        let out = feed_all(&mut j, include_str!("../../tests/data/maillog-postfix-harness.txt"));
        let bounced: Vec<_> = out.iter().filter(|r| r.result.status == DeliveryStatus::Bounced).collect();
        assert!(bounced.iter().any(|r| r.result.recipient == "user1@remote.example.test"
            && r.sender.as_deref() == Some("bounces+s1.abc@bounces.example.test")
            && r.message_id.as_deref() == Some("m1@app.example.test")));
        let expired: Vec<_> = out.iter().filter(|r| r.result.status == DeliveryStatus::Expired).collect();
        let mut rcpts: Vec<_> = expired.iter().map(|r| r.result.recipient.as_str()).collect();
        rcpts.sort();
        assert_eq!(rcpts, ["b7@tempfail.example.test", "user2@tempfail.example.test"]);
        assert!(expired.iter().all(|r| r.result.dsn == "4.2.0" && r.result.reply_code == Some(450)));
        // Every message was removed from the queue: nothing is left pending.
        assert!(j.is_empty(), "{} left", j.len());
        assert_eq!(j.stats.without_sender, 0);
    }

    #[test]
    fn bounded_and_late_start() {
        let mut j = Join::new(10);
        for i in 0..1000 {
            j.feed(parse_line(&format!("Q{i:08}: from=<a@b>, size=1, nrcpt=1 (queue active)"), LogFormat::Postfix, 0));
        }
        assert_eq!(j.len(), 10);
        assert_eq!(j.stats.evicted, 990);
        let r = j.feed(parse_line("QZZZZZZ1: to=<x@y>, relay=none, dsn=5.0.0, status=bounced (no)", LogFormat::Postfix, 0));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].sender, None);
        assert_eq!(j.stats.without_sender, 1);
        assert!(j.feed(parse_line("QNOTSEEN: from=<a@b>, status=expired, returned to sender", LogFormat::Postfix, 0)).is_empty());
        assert_eq!(j.stats.expired_unknown, 1);
    }
}
