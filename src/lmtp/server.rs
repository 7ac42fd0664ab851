//! The LMTP server: binds TCP and unix listeners (or takes systemd's), accepts with a
//! connection limit, runs one [`session`] per connection, and shuts
//! down gracefully: stop accepting, tell idle sessions 421, let transactions in flight
//! finish (bounded by a grace period).

use super::delivery::Delivery;
use super::session::{self, SessionConfig};
use super::LmtpError;
use crate::systemd::InheritedListener;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, Semaphore};

/// Where to listen, after command-line overrides.
#[derive(Debug, Default)]
pub struct Endpoints {
    /// TCP addresses (ADDR:PORT).
    pub tcp: Vec<String>,
    /// Unix socket paths.
    pub unix: Vec<PathBuf>,
    /// Sockets passed by systemd (used instead of the above when present).
    pub inherited: Vec<InheritedListener>,
}

enum Listener {
    Tcp(TcpListener),
    /// The path is removed at shutdown when rebound created the socket.
    Unix(UnixListener, Option<PathBuf>),
}

struct Shared {
    session: SessionConfig,
    delivery: Delivery,
    slots: Arc<Semaphore>,
}

/// A bound, not yet running, LMTP server.
pub struct Server {
    listeners: Vec<Listener>,
    shared: Arc<Shared>,
    max_connections: usize,
    grace: Duration,
}

impl Server {
    /// Binds every endpoint (removing stale unix socket files, setting their mode).
    pub async fn bind(config: &super::LmtpConfig, endpoints: Endpoints, delivery: Delivery) -> Result<Server, LmtpError> {
        let mut listeners = Vec::new();
        if !endpoints.inherited.is_empty() {
            for l in endpoints.inherited {
                listeners.push(match l {
                    InheritedListener::Tcp(l) => {
                        l.set_nonblocking(true).map_err(LmtpError::Inherit)?;
                        Listener::Tcp(TcpListener::from_std(l).map_err(LmtpError::Inherit)?)
                    }
                    InheritedListener::Unix(l) => {
                        l.set_nonblocking(true).map_err(LmtpError::Inherit)?;
                        Listener::Unix(UnixListener::from_std(l).map_err(LmtpError::Inherit)?, None)
                    }
                });
            }
        } else {
            let mode = config.socket_mode_bits().ok_or_else(|| LmtpError::SocketMode(config.socket_mode.clone()))?;
            for addr in &endpoints.tcp {
                let l = TcpListener::bind(addr.as_str()).await.map_err(|e| LmtpError::Bind(addr.clone(), e))?;
                listeners.push(Listener::Tcp(l));
            }
            for path in &endpoints.unix {
                listeners.push(Listener::Unix(bind_unix(path, mode)?, Some(path.clone())));
            }
        }
        if listeners.is_empty() {
            return Err(LmtpError::NoListener);
        }
        let hostname = if config.hostname.is_empty() { system_hostname() } else { config.hostname.clone() };
        let session = SessionConfig {
            hostname,
            limits: super::protocol::ProtocolLimits {
                max_message_bytes: config.max_message_bytes,
                max_recipients: config.max_recipients.max(1),
                max_errors: 20,
            },
            max_line_bytes: config.max_line_bytes,
            idle_timeout: Duration::from_secs(config.idle_timeout_secs.max(1)),
        };
        let max_connections = config.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        let shared = Arc::new(Shared { session, delivery, slots: Arc::new(Semaphore::new(max_connections)) });
        Ok(Server { listeners, shared, max_connections, grace: Duration::from_secs(config.shutdown_grace_secs) })
    }

    /// The bound addresses: `ADDR:PORT` for TCP, `unix:PATH` for unix sockets.
    pub fn local_addrs(&self) -> Vec<String> {
        self.listeners
            .iter()
            .map(|l| match l {
                Listener::Tcp(t) => t.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| "tcp:?".into()),
                Listener::Unix(u, _) => match u.local_addr().ok().and_then(|a| a.as_pathname().map(|p| p.to_owned())) {
                    Some(p) => format!("unix:{}", p.display()),
                    None => "unix:?".into(),
                },
            })
            .collect()
    }

    /// Serves until `shutdown` resolves, then drains: returns once every session ended
    /// (or the grace period passed).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut accepters = tokio::task::JoinSet::new();
        for listener in self.listeners {
            accepters.spawn(accept_loop(listener, self.shared.clone(), stop_rx.clone()));
        }
        shutdown.await;
        tracing::info!("shutting down: no new connections, finishing transactions in flight");
        let _ = stop_tx.send(true);
        while accepters.join_next().await.is_some() {}
        let all = u32::try_from(self.max_connections).unwrap_or(u32::MAX);
        match tokio::time::timeout(self.grace, self.shared.slots.acquire_many(all)).await {
            Ok(_) => tracing::info!("all sessions ended"),
            Err(_) => tracing::warn!(grace_secs = self.grace.as_secs(), "sessions still open after the grace period"),
        }
    }
}

async fn accept_loop(listener: Listener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => break,
            a = accept(&listener) => a,
        };
        match accepted {
            Ok(stream) => {
                crate::metrics::global().connection();
                let shared = shared.clone();
                let stop = stop.clone();
                match shared.slots.clone().try_acquire_owned() {
                    Ok(permit) => {
                        tokio::spawn(async move {
                            let mut stream = stream;
                            let result = match &mut stream {
                                Stream::Tcp(s) => {
                                    let _ = s.set_nodelay(true);
                                    session::run(s, &shared.session, &shared.delivery, stop).await
                                }
                                Stream::Unix(s) => session::run(s, &shared.session, &shared.delivery, stop).await,
                            };
                            if let Err(e) = result {
                                tracing::debug!(error = %e, "session ended with an I/O error");
                            }
                            // Free the slot before the peer can see the close.
                            drop(permit);
                            drop(stream);
                        });
                    }
                    Err(_) => {
                        tracing::warn!("connection refused: max_connections reached");
                        crate::metrics::global().reply(421);
                        tokio::spawn(async move {
                            let msg = b"421 4.3.2 Too many connections, try again later\r\n";
                            let _ = match stream {
                                Stream::Tcp(mut s) => s.write_all(msg).await,
                                Stream::Unix(mut s) => s.write_all(msg).await,
                            };
                        });
                    }
                }
            }
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    if let Listener::Unix(_, Some(path)) = &listener {
        let _ = std::fs::remove_file(path);
    }
}

enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> std::io::Result<Stream> {
    match listener {
        Listener::Tcp(l) => l.accept().await.map(|(s, _)| Stream::Tcp(s)),
        Listener::Unix(l, _) => l.accept().await.map(|(s, _)| Stream::Unix(s)),
    }
}

/// Tokio worker threads for the server: one per core but one, which the store's writer
/// thread keeps busy (SQLite and the WAL flush); at least one. `TOKIO_WORKER_THREADS`
/// overrides. On the 2-core build VM one worker against two cut context switches from
/// about 4 to 3 per message and the server's CPU per message by 5-10 % at 8 sessions
/// (the second worker was mostly woken to find nothing to steal), same at 32.
pub fn worker_threads() -> usize {
    if let Some(n) = std::env::var("TOKIO_WORKER_THREADS").ok().and_then(|v| v.trim().parse::<usize>().ok()) {
        return n.max(1);
    }
    std::thread::available_parallelism().map(|n| n.get().saturating_sub(1)).unwrap_or(1).max(1)
}

/// Binds a unix socket, replacing a stale socket file but never a live one.
fn bind_unix(path: &std::path::Path, mode: u32) -> Result<UnixListener, LmtpError> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let err = |e| LmtpError::Bind(path.display().to_string(), e);
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, "exists and is not a socket")));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(err(std::io::Error::new(std::io::ErrorKind::AddrInUse, "another server is listening")));
        }
        std::fs::remove_file(path).map_err(err)?;
    }
    let listener = UnixListener::bind(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(err)?;
    Ok(listener)
}

/// The system host name ("localhost" if it cannot be read).
fn system_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is ours and its length is passed.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    match (rc, std::str::from_utf8(buf.get(..end).unwrap_or_default())) {
        (0, Ok(name)) if !name.is_empty() => name.to_string(),
        _ => "localhost".into(),
    }
}
