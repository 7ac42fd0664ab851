//! The milter listeners: TCP and unix sockets, a connection limit (extra connections are
//! closed at once, so the MTA applies its default action), and the SIGTERM drain.

use super::session::{self, SessionContext};
use super::MilterConfig;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{watch, Semaphore};

/// Bound listening sockets.
pub struct Listeners {
    tcp: Vec<TcpListener>,
    unix: Vec<(UnixListener, PathBuf)>,
}

/// Binds the TCP addresses and unix socket paths (a stale socket file is replaced).
pub async fn bind(listen: &[String], sockets: &[PathBuf], socket_mode: u32) -> io::Result<Listeners> {
    let mut tcp = Vec::new();
    for addr in listen {
        let l = TcpListener::bind(addr.as_str())
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("listen {addr}: {e}")))?;
        tcp.push(l);
    }
    let mut unix = Vec::new();
    for path in sockets {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        if std::fs::symlink_metadata(path).map(|m| m.file_type().is_socket()).unwrap_or(false) {
            std::fs::remove_file(path)?;
        }
        let l = UnixListener::bind(path)
            .map_err(|e| io::Error::new(e.kind(), format!("socket {}: {e}", path.display())))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(socket_mode))?;
        unix.push((l, path.clone()));
    }
    Ok(Listeners { tcp, unix })
}

impl Listeners {
    /// Binds what a `[milter]` section lists.
    pub async fn from_config(c: &MilterConfig) -> io::Result<Listeners> {
        bind(&c.listen, &c.sockets, c.socket_mode_bits()).await
    }

    /// The TCP addresses actually bound (port 0 resolved).
    pub fn tcp_addrs(&self) -> Vec<SocketAddr> {
        self.tcp.iter().filter_map(|l| l.local_addr().ok()).collect()
    }

    /// The endpoints in the MTA's notation (`inet:127.0.0.1:8894`, `unix:/path`).
    pub fn endpoints(&self) -> Vec<String> {
        let tcp = self.tcp_addrs().into_iter().map(|a| format!("inet:{a}"));
        tcp.chain(self.unix.iter().map(|(_, p)| format!("unix:{}", p.display()))).collect()
    }
}

/// Limits of a running server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// How long shutdown waits for messages in progress.
    pub drain_timeout: Duration,
}

/// Serves until `shutdown` resolves, then stops accepting, lets sessions finish the
/// message in progress (up to the drain timeout) and removes the unix socket files.
pub async fn run(listeners: Listeners, ctx: Arc<SessionContext>, limits: Limits, shutdown: impl Future<Output = ()>) {
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let permits = Arc::new(Semaphore::new(max));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut accept_tasks = tokio::task::JoinSet::new();
    let mut paths = Vec::new();
    for l in listeners.tcp {
        accept_tasks.spawn(accept_loop(l, ctx.clone(), permits.clone(), stop_rx.clone()));
    }
    for (l, path) in listeners.unix {
        paths.push(path);
        accept_tasks.spawn(accept_loop(l, ctx.clone(), permits.clone(), stop_rx.clone()));
    }
    shutdown.await;
    tracing::info!("milter: shutting down; finishing messages in progress");
    let _ = stop_tx.send(true);
    while accept_tasks.join_next().await.is_some() {}
    let max_u32 = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.drain_timeout, permits.acquire_many(max_u32)).await.is_err() {
        tracing::warn!("milter: drain timeout; closing sessions still open (the MTA applies its default action)");
    }
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
}

/// A listening socket the milter accepts connections on.
trait Accept: Send + 'static {
    /// A connection.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The next connection.
    fn next(&self) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

impl Accept for TcpListener {
    type Stream = TcpStream;
    async fn next(&self) -> io::Result<TcpStream> {
        self.accept().await.map(|(s, _)| s)
    }
}

impl Accept for UnixListener {
    type Stream = UnixStream;
    async fn next(&self) -> io::Result<UnixStream> {
        self.accept().await.map(|(s, _)| s)
    }
}

/// Accepts connections on `listener` and serves each within the connection limit,
/// until `stop` changes.
async fn accept_loop<L: Accept>(listener: L, ctx: Arc<SessionContext>, permits: Arc<Semaphore>, mut stop: watch::Receiver<bool>) {
    loop {
        let stream = tokio::select! {
            r = listener.next() => r,
            _ = stop.changed() => return,
        };
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "milter: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!("milter: too many connections; closing one (the MTA applies its default action)");
            drop(stream);
            continue;
        };
        let (ctx, stop) = (ctx.clone(), stop.clone());
        tokio::spawn(async move {
            if let Err(e) = session::serve(stream, ctx, stop).await {
                tracing::warn!(error = %e, "milter: connection ended");
            }
            drop(permit);
        });
    }
}
