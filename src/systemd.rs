//! systemd integration without libsystemd: readiness notification (sd_notify, a
//! datagram to `$NOTIFY_SOCKET`) and socket activation (`LISTEN_FDS`/`LISTEN_PID`,
//! descriptors from 3 on). Both are no-ops outside systemd.

use std::os::fd::{FromRawFd, RawFd};

/// First descriptor systemd passes (SD_LISTEN_FDS_START).
const LISTEN_FDS_START: RawFd = 3;

/// A listening socket inherited from systemd.
#[derive(Debug)]
pub enum InheritedListener {
    /// A TCP (or other inet) stream socket.
    Tcp(std::net::TcpListener),
    /// A unix stream socket.
    Unix(std::os::unix::net::UnixListener),
}

/// Sends a state string (e.g. "READY=1") to systemd; false if not under systemd.
pub fn notify(state: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return false };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else { return false };
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        // Abstract socket namespace (Linux).
        use std::os::linux::net::SocketAddrExt;
        match std::os::unix::net::SocketAddr::from_abstract_name(name) {
            Ok(addr) => sock.send_to_addr(state.as_bytes(), &addr).is_ok(),
            Err(_) => false,
        }
    } else {
        sock.send_to(state.as_bytes(), &path).is_ok()
    };
    if !sent {
        tracing::warn!("sd_notify to NOTIFY_SOCKET failed");
    }
    sent
}

/// Takes the listening sockets systemd passed to this process (none when not socket
/// activated), and clears LISTEN_* so children do not inherit them.
pub fn listen_fds() -> Vec<InheritedListener> {
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    let count = std::env::var("LISTEN_FDS").ok().and_then(|n| n.parse::<RawFd>().ok()).unwrap_or(0);
    if !pid_ok || count <= 0 {
        return Vec::new();
    }
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    (LISTEN_FDS_START..LISTEN_FDS_START.saturating_add(count)).filter_map(inherit).collect()
}

/// Wraps one inherited descriptor after checking it is a listening stream socket.
fn inherit(fd: RawFd) -> Option<InheritedListener> {
    // SAFETY: plain syscalls on an integer descriptor; the storage is ours and sized.
    unsafe {
        let mut storage: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        if libc::getsockname(fd, &mut storage as *mut _ as *mut libc::sockaddr, &mut len) != 0 {
            tracing::warn!(fd, "LISTEN_FDS: descriptor is not a socket; ignored");
            return None;
        }
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        match storage.ss_family as libc::c_int {
            libc::AF_UNIX => Some(InheritedListener::Unix(std::os::unix::net::UnixListener::from_raw_fd(fd))),
            libc::AF_INET | libc::AF_INET6 => Some(InheritedListener::Tcp(std::net::TcpListener::from_raw_fd(fd))),
            family => {
                tracing::warn!(fd, family, "LISTEN_FDS: unsupported socket family; ignored");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn notify_reaches_a_datagram_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        std::env::set_var("NOTIFY_SOCKET", &path);
        assert!(super::notify("READY=1"));
        std::env::remove_var("NOTIFY_SOCKET");
        let mut buf = [0u8; 64];
        let n = sock.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
