//! `rebound serve` for the end-to-end tests: started with --listen/--socket, or the way
//! systemd starts it from packaging/systemd/rebound.socket (LISTEN_FDS); ready when it
//! sends READY=1 to $NOTIFY_SOCKET (what Type=notify waits for); SIGTERM on drop.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The release binary, run in `dir` (where the default VERP key file is created, so
/// `verp sign` and `serve` share it).
pub fn rebound(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rebound"));
    c.current_dir(dir).env_remove("REBOUND_CONFIG").stdin(Stdio::null());
    c
}

/// A running `rebound serve`.
pub struct Rebound {
    child: Child,
    stderr: PathBuf,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// Its unix socket.
    pub socket: PathBuf,
    stopped: bool,
    /// The child is strace; serve is its child.
    traced: bool,
}

impl Rebound {
    /// `rebound serve --listen 127.0.0.1:PORT --socket DIR/lmtp.sock --db DB`.
    pub fn with_listeners(dir: &Path, db: &Path) -> Rebound {
        let port = super::harness::free_port();
        let socket = dir.join("lmtp.sock");
        let mut cmd = rebound(dir);
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--socket"]).arg(&socket).arg("--db").arg(db);
        let server = Rebound::spawn(dir, cmd, port, socket, false);
        // Postfix's lmtp client runs as user postfix; serve's default mode is 0660 root.
        std::fs::set_permissions(&server.socket, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        server
    }

    /// `rebound --config CONFIG serve --listen 127.0.0.1:PORT --db DB` run by `strace -f`,
    /// which writes every system call of every thread to `trace`. As root, serve runs as
    /// `nobody` (`dir` is made writable for it), as the unit runs it as a system user.
    /// [`Rebound::stop`] signals serve itself. `nice_limit` sets RLIMIT_NICE, as the
    /// unit's `LimitNICE=`, where the hard limit allows (a container may lack
    /// CAP_SYS_RESOURCE).
    pub fn traced(dir: &Path, db: &Path, config: &Path, trace: &Path, nice_limit: Option<u64>) -> Rebound {
        let port = super::harness::free_port();
        let mut cmd = Command::new("strace");
        cmd.current_dir(dir).env_remove("REBOUND_CONFIG").stdin(Stdio::null());
        cmd.args(["-f", "-qq", "-o"]).arg(trace);
        // SAFETY: geteuid(2) has no arguments.
        if unsafe { libc::geteuid() } == 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
            cmd.args(["-u", "nobody"]);
        }
        cmd.arg(env!("CARGO_BIN_EXE_rebound"));
        cmd.arg("--config").arg(config);
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--db"]).arg(db);
        if let Some(limit) = nice_limit {
            // SAFETY: setrlimit(2) between fork and exec, on a value on the stack.
            unsafe {
                cmd.pre_exec(move || {
                    let rl = libc::rlimit { rlim_cur: limit, rlim_max: limit };
                    libc::setrlimit(libc::RLIMIT_NICE, &rl);
                    Ok(())
                });
            }
        }
        Rebound::spawn(dir, cmd, port, dir.join("unused.sock"), true)
    }

    /// Serve under socket activation, with the listeners of packaging/systemd/rebound.socket
    /// (its 127.0.0.1:2424 becomes a free port, /run/rebound/ becomes `dir`), passed as
    /// descriptors 3 and up with LISTEN_FDS/LISTEN_PID as systemd does.
    pub fn socket_activated(dir: &Path, db: &Path) -> Rebound {
        let unit = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/systemd/rebound.socket"))
            .expect("rebound.socket");
        fn values<'a>(unit: &'a str, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
            unit.lines().filter_map(move |l| l.strip_prefix(key)).map(str::trim)
        }
        let value = |key: &'static str| values(&unit, key);
        let mode = value("SocketMode=").next().and_then(|m| u32::from_str_radix(m, 8).ok()).expect("SocketMode");
        let (mut port, mut socket, mut fds) = (0, PathBuf::new(), Vec::new());
        let (mut tcp_keep, mut unix_keep) = (Vec::new(), Vec::new());
        for listen in value("ListenStream=") {
            if listen.starts_with('/') {
                socket = dir.join(Path::new(listen).file_name().expect("socket name"));
                let l = UnixListener::bind(&socket).expect("bind unix");
                std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(mode)).expect("SocketMode");
                fds.push(l.as_raw_fd());
                unix_keep.push(l);
            } else {
                assert!(listen.starts_with("127.0.0.1:"), "rebound.socket listens beyond loopback: {listen}");
                let l = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
                port = l.local_addr().expect("addr").port();
                fds.push(l.as_raw_fd());
                tcp_keep.push(l);
            }
        }
        assert!(port != 0 && fds.len() == 2, "rebound.socket should list one TCP and one unix listener");
        // LISTEN_PID must be serve's own pid: the shell sets it, then execs serve in place.
        let mut cmd = Command::new("sh");
        cmd.current_dir(dir).env_remove("REBOUND_CONFIG").stdin(Stdio::null());
        cmd.args(["-c", "LISTEN_PID=$$ LISTEN_FDS=2 exec \"$0\" \"$@\"", env!("CARGO_BIN_EXE_rebound"), "serve", "--db"])
            .arg(db);
        let fds = [fds[0], fds[1]];
        // SAFETY: between fork and exec only fcntl/dup2/close (async-signal-safe), no allocation.
        unsafe {
            cmd.pre_exec(move || {
                // Move both out of the way first: either may already sit on 3 or 4.
                let high = [libc::fcntl(fds[0], libc::F_DUPFD, 10), libc::fcntl(fds[1], libc::F_DUPFD, 10)];
                for (target, fd) in [(3, high[0]), (4, high[1])] {
                    if fd < 0 || libc::dup2(fd, target) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::close(fd);
                }
                Ok(())
            });
        }
        let server = Rebound::spawn(dir, cmd, port, socket, false);
        drop((tcp_keep, unix_keep)); // serve holds its own copies now
        server
    }

    fn spawn(dir: &Path, mut cmd: Command, port: u16, socket: PathBuf, traced: bool) -> Rebound {
        let notify_path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&notify_path);
        let notify = UnixDatagram::bind(&notify_path).expect("bind notify socket");
        // serve may run as another user (traced as root).
        std::fs::set_permissions(&notify_path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        notify.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        let stderr = dir.join("rebound.stderr");
        let child = cmd
            .env("NOTIFY_SOCKET", &notify_path)
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn rebound serve");
        let server = Rebound { child, stderr, port, socket, stopped: false, traced };
        let mut buf = [0u8; 4096];
        loop {
            let n = notify.recv(&mut buf).unwrap_or_else(|e| panic!("no READY=1 from serve: {e}; {}", server.log()));
            if String::from_utf8_lossy(&buf[..n]).lines().any(|l| l == "READY=1") {
                return server;
            }
        }
    }

    /// The pid of serve: the child, or when traced the child's only child.
    fn serve_pid(&self) -> libc::pid_t {
        let pid = self.child.id();
        if !self.traced {
            return pid as libc::pid_t;
        }
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        children.split_whitespace().next().and_then(|p| p.parse().ok()).unwrap_or(pid as libc::pid_t)
    }

    /// What serve wrote on standard error so far.
    pub fn log(&self) -> String {
        format!("rebound stderr:\n{}", std::fs::read_to_string(&self.stderr).unwrap_or_default())
    }
}

impl Rebound {
    /// SIGTERM and wait: serve drains, so every message it acknowledged is stored
    /// (with the intake spool the rows follow the 250 by a few ms).
    pub fn stop(&mut self) -> bool {
        // SAFETY: kill(2) on our own child's pid (or, traced, its child's), not yet reaped.
        unsafe { libc::kill(self.serve_pid(), libc::SIGTERM) };
        self.stopped = true;
        self.child.wait().is_ok_and(|s| s.success())
    }
}

impl Drop for Rebound {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        unsafe { libc::kill(self.serve_pid(), libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
