//! The RFC 2033 LMTP server: `server` owns the listeners, limits and shutdown,
//! `session` one connection, `protocol` the pure command state machine, `data` the
//! DATA reader, `delivery` the step from a received message to committed rows, `spooled`
//! the intake spool's start and apply step, `replay` a byte-stream driver of the state
//! machine for fuzzing.

mod config;
pub mod data;
pub mod delivery;
pub mod protocol;
pub mod replay;
pub mod server;
pub mod session;
pub mod spooled;

pub use config::LmtpConfig;
pub use delivery::Delivery;
pub use server::{worker_threads, Endpoints, Server};

/// Errors starting the LMTP server.
#[derive(Debug, thiserror::Error)]
pub enum LmtpError {
    /// A listener could not be bound.
    #[error("listen {0}: {1}")]
    Bind(String, std::io::Error),
    /// A socket inherited from systemd could not be used.
    #[error("socket from systemd: {0}")]
    Inherit(std::io::Error),
    /// `socket_mode` is not octal permission bits.
    #[error("lmtp.socket_mode {0:?}: not an octal mode such as \"0660\"")]
    SocketMode(String),
    /// Nothing to listen on.
    #[error("no listener configured (lmtp.listen, lmtp.sockets, --listen or --socket)")]
    NoListener,
}
