//! A throw-away LMTP sink (RFC 2033, just enough for Postfix's lmtp client) that hands
//! every message it accepts to the test over a channel. It stands in for `rebound serve`
//! where the test is about the Postfix recipe, not about rebound.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::mpsc::{channel, Receiver, Sender};

/// Which listener a message came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Tcp,
    Unix,
}

/// One message delivered to the sink.
#[derive(Debug)]
pub struct Delivery {
    pub via: Via,
    pub mail_from: String,
    pub rcpts: Vec<String>,
    pub data: String,
}

/// Starts the sink on a fresh loopback port and on `socket` (mode 0666, so Postfix's
/// lmtp client, running as user postfix, can connect). Returns the port and the feed.
pub fn start(socket: &Path) -> (u16, Receiver<Delivery>) {
    use std::os::unix::fs::PermissionsExt;
    let (tx, rx) = channel();
    let tcp = TcpListener::bind("127.0.0.1:0").expect("bind sink");
    let port = tcp.local_addr().expect("addr").port();
    let unix = UnixListener::bind(socket).expect("bind sink socket");
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666)).expect("chmod socket");
    let t = tx.clone();
    std::thread::spawn(move || {
        for conn in tcp.incoming().flatten() {
            let t = t.clone();
            let w = conn.try_clone().expect("clone");
            std::thread::spawn(move || session(BufReader::new(conn), w, Via::Tcp, t));
        }
    });
    std::thread::spawn(move || {
        for conn in unix.incoming().flatten() {
            let t = tx.clone();
            let w = conn.try_clone().expect("clone");
            std::thread::spawn(move || session(BufReader::new(conn), w, Via::Unix, t));
        }
    });
    (port, rx)
}

/// Angle-bracketed address after `MAIL FROM:` / `RCPT TO:`.
fn path_of(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line[start..].find('>').map_or(line.len(), |i| start + i);
    line[start..end].to_string()
}

fn session(mut r: impl BufRead, mut w: impl Write, via: Via, tx: Sender<Delivery>) -> std::io::Result<()> {
    w.write_all(b"220 sink.example.test LMTP\r\n")?;
    let (mut from, mut rcpts) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "LHLO" => w.write_all(
                b"250-sink.example.test\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n\
                  250-8BITMIME\r\n250 SMTPUTF8\r\n",
            )?,
            "MAIL" => {
                from = path_of(&line);
                rcpts.clear();
                w.write_all(b"250 2.1.0 ok\r\n")?
            }
            "RCPT" => {
                rcpts.push(path_of(&line));
                w.write_all(b"250 2.1.5 ok\r\n")?
            }
            "DATA" => {
                w.write_all(b"354 go ahead\r\n")?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line)? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                for _ in &rcpts {
                    w.write_all(b"250 2.0.0 stored\r\n")?;
                }
                let d = Delivery { via, mail_from: from.clone(), rcpts: std::mem::take(&mut rcpts), data };
                let _ = tx.send(d);
            }
            "RSET" => {
                rcpts.clear();
                w.write_all(b"250 2.0.0 ok\r\n")?
            }
            "NOOP" => w.write_all(b"250 2.0.0 ok\r\n")?,
            "QUIT" => {
                w.write_all(b"221 2.0.0 bye\r\n")?;
                return Ok(());
            }
            _ => w.write_all(b"500 5.5.1 unknown command\r\n")?,
        }
        w.flush()?;
    }
}
