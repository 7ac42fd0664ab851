//! A raw milter client (the MTA side) and an in-process milter server for the tests.

use rebound::milter::record::{Recorded, Recorder, SqliteRecorder};
use rebound::milter::server::{self, Limits};
use rebound::milter::session::SessionContext;
use rebound::milter::{Delivery, OnEom, Policy, TokenCheck, TokenStatus};
use rebound::store::StoreError;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Everything the MTA offers in protocol version 6.
pub const ALL_PROTOCOL: u32 = 0x001f_ffff;

/// A byte stream to a milter.
pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// The MTA end of one milter connection, with a read timeout that bounds every test.
pub struct MtaConn {
    stream: Box<dyn Stream>,
}

impl MtaConn {
    /// Connects to a milter on TCP.
    pub fn connect(addr: SocketAddr) -> MtaConn {
        let stream = TcpStream::connect(addr).expect("connect to milter");
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        MtaConn { stream: Box::new(stream) }
    }

    /// Connects to a milter on a unix socket.
    pub fn connect_unix(path: &Path) -> MtaConn {
        let stream = std::os::unix::net::UnixStream::connect(path).expect("connect to milter socket");
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        MtaConn { stream: Box::new(stream) }
    }

    /// Sends one packet.
    pub fn send(&mut self, code: u8, data: &[u8]) {
        let mut p = ((data.len() + 1) as u32).to_be_bytes().to_vec();
        p.push(code);
        p.extend_from_slice(data);
        self.stream.write_all(&p).expect("write packet");
    }

    /// Sends raw bytes (for broken packets).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Reads one reply packet; None when the milter closed the connection.
    pub fn recv(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut len = [0u8; 4];
        if let Err(e) = self.stream.read_exact(&mut len) {
            let closed = matches!(e.kind(), std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset);
            assert!(closed, "read: {e}");
            return None;
        }
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body).expect("read packet body");
        let code = body.remove(0);
        Some((code, body))
    }

    /// Sends a packet and returns the reply code.
    pub fn ask(&mut self, code: u8, data: &[u8]) -> u8 {
        self.send(code, data);
        self.recv().expect("reply").0
    }

    /// True when the milter has closed the connection (EOF on read).
    pub fn closed(&mut self) -> bool {
        self.recv().is_none()
    }

    /// SMFIC_OPTNEG; returns (version, actions, protocol) of the reply.
    pub fn negotiate(&mut self, protocol: u32) -> (u32, u32, u32) {
        let mut d = Vec::new();
        for v in [6u32, 0x1ff, protocol] {
            d.extend_from_slice(&v.to_be_bytes());
        }
        self.send(b'O', &d);
        let (code, r) = self.recv().expect("optneg reply");
        assert_eq!(code, b'O');
        let f = |i: usize| u32::from_be_bytes(r[i..i + 4].try_into().unwrap());
        (f(0), f(4), f(8))
    }
}

/// NUL-joined strings, each NUL-terminated.
pub fn cstrings(parts: &[&str]) -> Vec<u8> {
    let mut d = Vec::new();
    for p in parts {
        d.extend_from_slice(p.as_bytes());
        d.push(0);
    }
    d
}

/// Token rule for the tests: "bounce+ok..." valid, "bounce+forged..." forged, rest absent.
pub fn test_check() -> Arc<dyn TokenCheck> {
    Arc::new(|addr: &str| {
        if addr.starts_with("bounce+forged") {
            TokenStatus::Forged
        } else if addr.starts_with("bounce+") {
            TokenStatus::Valid
        } else {
            TokenStatus::Absent
        }
    })
}

/// A store that always fails (to check the tempfail answer).
pub struct BrokenStore;

impl Recorder for BrokenStore {
    fn record(&self, _: &Delivery) -> Result<Recorded, StoreError> {
        Err(StoreError::Sqlite(rusqlite::Error::InvalidQuery))
    }
}

/// A milter server on 127.0.0.1:0 in its own thread and runtime; stops on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Server options for the tests.
pub struct Setup {
    pub on_eom: OnEom,
    pub reject: bool,
    pub max_connections: usize,
    pub recorder: Arc<dyn Recorder>,
    pub socket: Option<PathBuf>,
}

impl Setup {
    /// Defaults: accept at EOM, rejecting invalid tokens, SQLite at `db`.
    pub fn with_db(db: &Path) -> Setup {
        // Keys beside the database: correlation would otherwise create ./rebound-verp.key.
        let key_file = db.with_file_name("verp.key");
        let verp = rebound::verp::VerpConfig { key_file, ..Default::default() };
        let recorder = SqliteRecorder::open(db, Default::default(), verp).expect("open db");
        Setup { on_eom: OnEom::Accept, reject: true, max_connections: 16, recorder: Arc::new(recorder), socket: None }
    }
}

impl TestServer {
    /// Starts a server with these options.
    pub fn start(s: Setup) -> TestServer {
        let policy = Policy {
            bounce_domains: vec!["bounces.example.test".into()],
            reject_invalid_verp: s.reject,
            on_eom: s.on_eom,
            max_message_bytes: 1 << 20,
        };
        let ctx = Arc::new(SessionContext {
            policy: Arc::new(policy),
            check: test_check(),
            recorder: s.recorder,
            idle_timeout: Duration::from_secs(30),
        });
        let limits = Limits { max_connections: s.max_connections, drain_timeout: Duration::from_secs(10) };
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let sockets: Vec<PathBuf> = s.socket.into_iter().collect();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let l = server::bind(&["127.0.0.1:0".to_string()], &sockets, 0o600).await.unwrap();
                addr_tx.send(l.tcp_addrs()[0]).unwrap();
                server::run(l, ctx, limits, async move {
                    let _ = stop_rx.await;
                })
                .await;
            });
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(20)).expect("server bound");
        TestServer { addr, stop: Some(stop), thread: Some(thread) }
    }

    /// Signals shutdown (drain) without waiting.
    pub fn begin_shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    /// Signals shutdown and waits for the server to finish.
    pub fn stop(&mut self) {
        self.begin_shutdown();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `rebound milter` binary on 127.0.0.1:0; killed on drop if still running.
pub struct RunningRebound {
    child: Option<std::process::Child>,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl RunningRebound {
    /// Starts `rebound [pre args] milter --listen 127.0.0.1:0 [args]` and waits for its
    /// "listening on" line.
    pub fn start(global: &[&str], args: &[&str]) -> RunningRebound {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let mut child = Command::new(env!("CARGO_BIN_EXE_rebound"))
            .args(global)
            .args(["milter", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn rebound");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("rebound milter printed no listening line");
        let addr = line
            .trim()
            .rsplit_once("inet:")
            .and_then(|(_, a)| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        RunningRebound { child: Some(child), addr }
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let (tx, rx) = std::sync::mpsc::channel();
        let pid = child.id();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(status) => status.expect("wait"),
            Err(_) => {
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                panic!("rebound milter did not exit within 30 s of SIGTERM");
            }
        }
    }
}

impl Drop for RunningRebound {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
