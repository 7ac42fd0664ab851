//! One LMTP connection: reads buffered input, feeds command lines and DATA to the pure
//! [`Protocol`], stores messages through [`Delivery`], and writes replies. Replies are
//! queued and flushed only when the input buffer holds no complete command, which is
//! what makes pipelining (RFC 2920) cheap: a pipelined group gets one write.

use super::data::DataReader;
use super::delivery::Delivery;
use super::protocol::{Action, AfterData, Protocol, ProtocolLimits, Reply};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

/// Settings every session shares.
#[derive(Clone)]
pub struct SessionConfig {
    /// Host name in the greeting.
    pub hostname: String,
    /// Protocol limits (size, recipients, errors).
    pub limits: ProtocolLimits,
    /// Longest line, without its line end.
    pub max_line_bytes: usize,
    /// Silence allowed before 421 4.4.2.
    pub idle_timeout: Duration,
}

/// How reading more input ended.
enum Input {
    Data,
    Eof,
    Idle,
    Shutdown,
}

struct Conn<S> {
    stream: S,
    buf: Vec<u8>,
    start: usize,
    out: Vec<u8>,
    /// The idle timer, armed once and moved forward only when it fires early: a
    /// timeout per read registered and removed a timer entry about four times a
    /// message (a few percent of the server's CPU).
    idle: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn pending(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }

    fn queue(&mut self, reply: &Reply) {
        crate::metrics::global().reply(reply.code);
        reply.write_to(&mut self.out);
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Flushes replies, then reads more input (waiting at most `idle`; a shutdown
    /// request ends the wait only when `interruptible`).
    async fn fill(&mut self, idle: Duration, shutdown: &mut watch::Receiver<bool>, interruptible: bool) -> std::io::Result<Input> {
        self.flush().await?;
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.capacity() - self.buf.len() < 16 << 10 {
            self.buf.reserve(64 << 10);
        }
        if interruptible && *shutdown.borrow() {
            return Ok(Input::Shutdown);
        }
        // The idle clock restarts at each wait for input, as a timeout per read would.
        let deadline = tokio::time::Instant::now() + idle;
        let Conn { stream, buf, idle: timer, .. } = self;
        let read = stream.read_buf(buf);
        tokio::pin!(read);
        loop {
            tokio::select! {
                r = &mut read => {
                    return match r {
                        Ok(0) => Ok(Input::Eof),
                        Ok(_) => Ok(Input::Data),
                        Err(e) => Err(e),
                    };
                }
                () = timer.as_mut() => {
                    if tokio::time::Instant::now() >= deadline {
                        return Ok(Input::Idle);
                    }
                    // Armed for an earlier wait: move it to this one's deadline.
                    timer.as_mut().reset(deadline);
                }
                _ = shutdown.changed(), if interruptible => return Ok(Input::Shutdown),
            }
        }
    }
}

/// Serves one connection until QUIT, EOF, idle timeout, an I/O error or shutdown.
pub async fn run<S>(stream: S, config: &SessionConfig, delivery: &Delivery, mut shutdown: watch::Receiver<bool>) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // A session waits on the writer only without the spool (then the writer may hold a
    // commit briefly for the other sessions' messages).
    let _producer = delivery.spool.is_none().then(|| delivery.writer.producer());
    let idle = Box::pin(tokio::time::sleep(config.idle_timeout));
    let mut conn = Conn { stream, buf: Vec::with_capacity(64 << 10), start: 0, out: Vec::with_capacity(4096), idle };
    let mut proto = Protocol::new(&config.hostname, config.limits.clone()).with_rcpt_gate(delivery.rcpt_gate());
    conn.queue(&proto.greeting());
    let mut data: Option<DataReader> = None;
    // While discarding the rest of an over-long command line.
    let mut discarding = false;
    loop {
        if let Some(reader) = data.as_mut() {
            let (used, end) = reader.feed(conn.pending());
            conn.start += used;
            if let Some(end) = end {
                data = None;
                let replies = match proto.data_received(end) {
                    AfterData::Deliver(t) => {
                        let committed = delivery.deliver(t).await;
                        proto.delivered(committed)
                    }
                    AfterData::Replies(r) => r,
                };
                for r in &replies {
                    conn.queue(r);
                }
                continue;
            }
        } else if let Some(nl) = memchr::memchr(b'\n', conn.pending()) {
            let line_end = conn.start + nl + 1;
            if discarding {
                conn.start = line_end;
                discarding = false;
                continue;
            }
            let line = conn.buf.get(conn.start..line_end).unwrap_or_default();
            let action = if line.len() > config.max_line_bytes + 2 { proto.line_too_long() } else { proto.command(line) };
            conn.start = line_end;
            match action {
                Action::Reply(r) => conn.queue(&r),
                Action::StartData(r) => {
                    conn.queue(&r);
                    data = Some(DataReader::new(config.limits.max_message_bytes, config.max_line_bytes));
                }
                Action::Close(r) => {
                    conn.queue(&r);
                    conn.flush().await?;
                    return Ok(());
                }
            }
            continue;
        } else if conn.pending().len() > config.max_line_bytes + 2 && !discarding {
            // No line end in sight: answer now and drop the line as it arrives.
            conn.start = conn.buf.len();
            discarding = true;
            match proto.line_too_long() {
                Action::Close(r) => {
                    conn.queue(&r);
                    conn.flush().await?;
                    return Ok(());
                }
                Action::Reply(r) | Action::StartData(r) => conn.queue(&r),
            }
        } else if discarding {
            conn.start = conn.buf.len();
        }
        let interruptible = data.is_none() && !proto.in_transaction();
        match conn.fill(config.idle_timeout, &mut shutdown, interruptible).await? {
            Input::Data => {}
            Input::Eof => return Ok(()),
            Input::Idle => {
                conn.queue(&Reply::new(421, "4.4.2 Idle timeout, closing connection"));
                let _ = conn.flush().await;
                return Ok(());
            }
            Input::Shutdown => {
                conn.queue(&Reply::new(421, "4.3.2 Service shutting down, closing connection"));
                let _ = conn.flush().await;
                return Ok(());
            }
        }
    }
}
