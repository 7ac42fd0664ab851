//! Prometheus text metrics (exposition format 0.0.4): process-wide counters and
//! histograms, and a tiny HTTP endpoint that serves them on a loopback address.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The `[metrics]` section.
#[derive(Debug, Clone, serde::Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Loopback address for the Prometheus endpoint (e.g. "127.0.0.1:9425"); unset = off.
    pub metrics_listen: Option<String>,
}

/// Errors of the metrics endpoint.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address does not parse.
    #[error("metrics_listen {0:?}: not an ADDRESS:PORT")]
    BadAddress(String),
    /// The address is not loopback (the endpoint has no authentication).
    #[error("metrics_listen {0}: only loopback addresses are allowed")]
    NotLoopback(SocketAddr),
    /// Binding failed.
    #[error("metrics_listen {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// A histogram with fixed upper bounds.
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
    scale: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64], scale: f64) -> Histogram {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
            scale,
        }
    }

    /// Records one observation.
    pub fn observe(&self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            if let Some(c) = self.counts.get(i) {
                c.fetch_add(1, Relaxed);
            }
        }
        self.sum_micros.fetch_add((value * self.scale) as u64, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Relaxed) as f64 / self.scale);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Every metric rebound exports.
pub struct Metrics {
    messages: Mutex<BTreeMap<String, u64>>,
    events: Mutex<BTreeMap<(String, String), u64>>,
    replies: Vec<AtomicU64>,
    connections: AtomicU64,
    /// Jobs per group commit.
    pub batch_jobs: Histogram,
    /// Seconds per group commit (BEGIN to COMMIT done).
    pub commit_seconds: Histogram,
    /// Messages per intake-spool flush (one durable write).
    pub spool_flush_messages: Histogram,
    /// Seconds per intake-spool durable write.
    pub spool_flush_seconds: Histogram,
    /// Message bytes acknowledged and not yet in the store.
    pub spool_backlog_bytes: AtomicU64,
    /// Times the store's threads were raised from idle priority (the store fell behind).
    pub spool_store_raised: AtomicU64,
    /// Messages the applier read back from the spool's files instead of memory.
    pub spool_read_back: AtomicU64,
}

const REPLY_BASE: u16 = 200;

impl Metrics {
    fn new() -> Metrics {
        Metrics {
            messages: Mutex::new(BTreeMap::new()),
            events: Mutex::new(BTreeMap::new()),
            replies: (REPLY_BASE..600).map(|_| AtomicU64::new(0)).collect(),
            connections: AtomicU64::new(0),
            batch_jobs: Histogram::new(&[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0], 1.0),
            commit_seconds: Histogram::new(
                &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0],
                1e6,
            ),
            spool_flush_messages: Histogram::new(&[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0], 1.0),
            spool_flush_seconds: Histogram::new(&[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25], 1e6),
            spool_backlog_bytes: AtomicU64::new(0),
            spool_store_raised: AtomicU64::new(0),
            spool_read_back: AtomicU64::new(0),
        }
    }

    /// Counts one stored message of this kind.
    pub fn message(&self, kind: &str) {
        if let Ok(mut m) = self.messages.lock() {
            *m.entry(kind.to_string()).or_default() += 1;
        }
    }

    /// Counts one stored event.
    pub fn event(&self, kind: &str, class: &str) {
        if let Ok(mut m) = self.events.lock() {
            *m.entry((kind.to_string(), class.to_string())).or_default() += 1;
        }
    }

    /// Counts one LMTP reply sent.
    pub fn reply(&self, code: u16) {
        if let Some(c) = code.checked_sub(REPLY_BASE).and_then(|i| self.replies.get(i as usize)) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// Counts one accepted connection.
    pub fn connection(&self) {
        self.connections.fetch_add(1, Relaxed);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP rebound_messages_total Messages stored, by kind.\n# TYPE rebound_messages_total counter\n");
        if let Ok(m) = self.messages.lock() {
            for (kind, n) in m.iter() {
                let _ = writeln!(out, "rebound_messages_total{{kind=\"{}\"}} {n}", escape(kind));
            }
        }
        out.push_str("# HELP rebound_events_total Events stored, by kind and class.\n# TYPE rebound_events_total counter\n");
        if let Ok(m) = self.events.lock() {
            for ((kind, class), n) in m.iter() {
                let _ = writeln!(out, "rebound_events_total{{kind=\"{}\",class=\"{}\"}} {n}", escape(kind), escape(class));
            }
        }
        out.push_str("# HELP rebound_lmtp_replies_total LMTP replies sent, by code.\n# TYPE rebound_lmtp_replies_total counter\n");
        for (i, c) in self.replies.iter().enumerate() {
            let n = c.load(Relaxed);
            if n > 0 {
                let _ = writeln!(out, "rebound_lmtp_replies_total{{code=\"{}\"}} {n}", REPLY_BASE as usize + i);
            }
        }
        let _ = writeln!(
            out,
            "# HELP rebound_lmtp_connections_total LMTP connections accepted.\n# TYPE rebound_lmtp_connections_total counter\nrebound_lmtp_connections_total {}",
            self.connections.load(Relaxed)
        );
        self.batch_jobs.render("rebound_store_batch_jobs", "Jobs per group commit.", &mut out);
        self.commit_seconds.render("rebound_store_commit_seconds", "Group commit latency in seconds.", &mut out);
        self.spool_flush_messages.render("rebound_spool_flush_messages", "Messages per intake-spool durable write.", &mut out);
        self.spool_flush_seconds.render("rebound_spool_flush_seconds", "Intake-spool durable write latency in seconds.", &mut out);
        let _ = writeln!(
            out,
            "# HELP rebound_spool_backlog_bytes Message bytes acknowledged and not yet stored.\n# TYPE rebound_spool_backlog_bytes gauge\nrebound_spool_backlog_bytes {}",
            self.spool_backlog_bytes.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP rebound_spool_store_raised_total Times the store's threads left idle CPU priority because the store fell behind.\n# TYPE rebound_spool_store_raised_total counter\nrebound_spool_store_raised_total {}",
            self.spool_store_raised.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP rebound_spool_read_back_total Messages the store got from the spool's files because too much waited in memory.\n# TYPE rebound_spool_read_back_total counter\nrebound_spool_read_back_total {}",
            self.spool_read_back.load(Relaxed)
        );
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    static M: std::sync::OnceLock<Metrics> = std::sync::OnceLock::new();
    M.get_or_init(Metrics::new)
}

/// Binds the endpoint; refuses a non-loopback address.
pub async fn bind(addr: &str) -> Result<tokio::net::TcpListener, MetricsError> {
    let sa: SocketAddr = addr.parse().map_err(|_| MetricsError::BadAddress(addr.to_string()))?;
    if !sa.ip().is_loopback() {
        return Err(MetricsError::NotLoopback(sa));
    }
    tokio::net::TcpListener::bind(sa).await.map_err(|e| MetricsError::Bind(sa, e))
}

/// Serves `GET /metrics` on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors or similar: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), answer(stream)).await;
        });
    }
}

async fn answer(mut stream: tokio::net::TcpStream) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() > 8192 {
            break;
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, body) = if method == "GET" && (path == "/metrics" || path == "/") {
        ("200 OK", global().render())
    } else {
        ("404 Not Found", "not found\n".to_string())
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_histograms_cumulatively() {
        let m = Metrics::new();
        m.batch_jobs.observe(1.0);
        m.batch_jobs.observe(3.0);
        m.reply(250);
        m.message("bounce");
        m.spool_flush_seconds.observe(0.0002);
        m.spool_backlog_bytes.store(4096, Relaxed);
        let text = m.render();
        assert!(text.contains("rebound_spool_flush_seconds_bucket{le=\"0.00025\"} 1"), "{text}");
        assert!(text.contains("rebound_spool_backlog_bytes 4096"), "{text}");
        assert!(text.contains("rebound_spool_store_raised_total "), "{text}");
        m.spool_read_back.fetch_add(3, Relaxed);
        assert!(m.render().contains("rebound_spool_read_back_total 3"));
        assert!(text.contains("rebound_store_batch_jobs_bucket{le=\"4\"} 2"), "{text}");
        assert!(text.contains("rebound_store_batch_jobs_bucket{le=\"1\"} 1"), "{text}");
        assert!(text.contains("rebound_lmtp_replies_total{code=\"250\"} 1"), "{text}");
        assert!(text.contains("rebound_messages_total{kind=\"bounce\"} 1"), "{text}");
    }
}
