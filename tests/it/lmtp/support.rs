//! Test support: an in-process LMTP server on port 0 with a fresh database, and a
//! blocking LMTP client.

use rebound::lmtp::{Delivery, Endpoints, LmtpConfig, Server};
use rebound::store::writer::{Writer, WriterOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;

/// A running server; stops (draining) when dropped.
pub struct TestServer {
    /// The bound TCP address (or unix:PATH).
    pub addrs: Vec<String>,
    /// The database file.
    pub db: PathBuf,
    writer: Option<Writer>,
    /// The intake spool, when the config has it on (the default).
    spool: Option<(rebound::spool::Spool, rebound::spool::SpoolThreads)>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server with this config on 127.0.0.1:0 (and any unix sockets given).
    pub fn start(config: LmtpConfig) -> TestServer {
        Self::start_with(config, vec!["127.0.0.1:0".into()], Vec::new())
    }

    /// Starts a server on these endpoints.
    pub fn start_with(config: LmtpConfig, tcp: Vec<String>, unix: Vec<PathBuf>) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("rebound.db");
        let conn = rebound::store::open(&db).unwrap();
        let (writer, writer_thread) = Writer::start(conn, WriterOptions::default(), |_| {}).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let mut delivery = Delivery {
            classifier: Arc::new(rebound::classify::shared::SharedClassifier::new(rebound::classify::Classifier::with_default_rules())),
            verp: Arc::new(Default::default()),
            writer: writer.clone(),
            keep_raw: true,
            spool: None,
        };
        let spool = config.spool.then(|| {
            let (spool, threads) = rebound::lmtp::spooled::start(&db, &delivery, Default::default()).unwrap();
            delivery.spool = Some(spool.clone());
            (spool, threads)
        });
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let endpoints = Endpoints { tcp, unix, inherited: Vec::new() };
                let server = Server::bind(&config, endpoints, delivery).await.unwrap();
                addr_tx.send(server.local_addrs()).unwrap();
                server
                    .run(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
            drop(rt);
            writer_thread.join();
        });
        let addrs = addr_rx.recv().unwrap();
        TestServer { addrs, db, writer: Some(writer), spool, stop: Some(stop), thread: Some(thread), _dir: dir }
    }

    /// Handle to the server's writer (to change the connection under test).
    pub fn writer(&self) -> &Writer {
        self.writer.as_ref().unwrap()
    }

    /// A client connected to the first address, greeting read.
    pub fn client(&self) -> Client {
        let mut c = Client::connect(&self.addrs[0]);
        assert!(c.reply().starts_with("220 "));
        c
    }

    /// A connection to the database, once every message acknowledged so far is in it.
    pub fn db(&self) -> rusqlite::Connection {
        if let Some((spool, _)) = &self.spool {
            assert!(spool.wait_applied(std::time::Duration::from_secs(30)), "spooled messages not stored within 30 s");
        }
        rusqlite::Connection::open(&self.db).unwrap()
    }

    /// The intake spool, if on.
    pub fn spool(&self) -> Option<&rebound::spool::Spool> {
        self.spool.as_ref().map(|(s, _)| s)
    }

    /// Rows in a table.
    pub fn count(&self, table: &str) -> i64 {
        self.db().query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        // The spool's applier holds a writer handle: drain and stop it first.
        if let Some((_, threads)) = self.spool.take() {
            threads.close();
        }
        // The writer thread stops once every handle is gone, ours included.
        self.writer = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A blocking LMTP client.
pub struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    /// Connects to ADDR:PORT.
    pub fn connect(addr: &str) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
        Client { reader: BufReader::new(s) }
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
    }

    /// Reads one (possibly multi-line) reply, lines joined with "\n"; "" at EOF.
    pub fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).unwrap() == 0 {
                return lines.join("\n");
            }
            let line = line.trim_end().to_string();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    /// Sends one command line and reads its reply.
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Reads `n` replies.
    pub fn replies(&mut self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.reply()).collect()
    }

    /// True once the server closed the connection (reads to EOF).
    pub fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).is_ok()
    }

    /// LHLO, MAIL FROM:<>, the recipients, DATA with `body` (CRLF, not yet dot-stuffed
    /// unless the caller did); returns the per-recipient replies.
    pub fn deliver(&mut self, rcpts: &[&str], body: &[u8]) -> Vec<String> {
        let mut out = format!("MAIL FROM:<> BODY=8BITMIME SIZE={}\r\n", body.len()).into_bytes();
        for r in rcpts {
            out.extend_from_slice(format!("RCPT TO:<{r}>\r\n").as_bytes());
        }
        out.extend_from_slice(b"DATA\r\n");
        self.send(&out);
        for r in self.replies(rcpts.len() + 1) {
            assert!(r.starts_with("250 "), "{r}");
        }
        let go = self.reply();
        assert!(go.starts_with("354 "), "{go}");
        // One write: a separate small ".\r\n" would wait out Nagle and the server's
        // delayed ACK (40 ms a message).
        let mut data = Vec::with_capacity(body.len() + 3);
        data.extend_from_slice(body);
        data.extend_from_slice(b".\r\n");
        self.send(&data);
        self.replies(rcpts.len())
    }
}

/// A short message body (CRLF line ends).
pub const BODY: &[u8] = b"From: MAILER-DAEMON@example.test\r\nSubject: test\r\n\r\nhello\r\n";

/// The harness samples directory (../shared beside the repository).
pub fn samples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/postfix-harness/samples")
}

/// The whole response to `GET path` from the HTTP server at `addr` (it answers one
/// request and closes).
pub fn http_get(addr: &str, path: &str) -> String {
    let mut c = Client::connect(addr);
    c.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    let mut text = String::new();
    c.reader.read_to_string(&mut text).unwrap();
    text
}

impl Client {
    /// The underlying socket (to write from another thread).
    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }
}
