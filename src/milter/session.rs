//! One MTA connection: reads packets, runs the [`Milter`] state machine, stores
//! finished messages on a blocking thread and writes the replies.

use super::codec;
use super::command::{Command, Reply};
use super::protocol::{Milter, Policy, ProtocolError, Step, TokenCheck};
use super::record::Recorder;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

/// What every session of a server shares.
pub struct SessionContext {
    /// Protocol decisions.
    pub policy: Arc<Policy>,
    /// VERP token verification at RCPT.
    pub check: Arc<dyn TokenCheck>,
    /// Where finished messages are committed.
    pub recorder: Arc<dyn Recorder>,
    /// How long the MTA may stay silent.
    pub idle_timeout: Duration,
}

/// Why a session ended other than by the MTA's quit or close.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Reading or writing the socket failed.
    #[error("milter connection: {0}")]
    Io(#[from] std::io::Error),
    /// The MTA broke the protocol.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The MTA sent nothing for the idle timeout.
    #[error("milter connection idle for {0:?}")]
    Idle(Duration),
}

/// Serves one connection until the MTA quits or closes it, or until shutdown is
/// signalled while no message is in progress.
pub async fn serve<S>(mut stream: S, ctx: Arc<SessionContext>, mut shutdown: watch::Receiver<bool>) -> Result<(), SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut milter = Milter::new(ctx.policy.clone(), ctx.check.clone());
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(64);
    let mut stopping = *shutdown.borrow();
    loop {
        let packet = match codec::decode(&buf).map_err(ProtocolError::from)? {
            Some((packet, used)) => {
                buf.drain(..used);
                packet
            }
            None => {
                // Between messages a draining server hangs up; the MTA opens a new
                // connection (to the next instance) for its next message.
                if stopping && !milter.in_message() {
                    return Ok(());
                }
                if let Some(len) = codec::packet_len(&buf).map_err(ProtocolError::from)? {
                    buf.reserve((len + 4).saturating_sub(buf.len()));
                }
                tokio::select! {
                    read = tokio::time::timeout(ctx.idle_timeout, stream.read_buf(&mut buf)) => {
                        match read {
                            Err(_) => return Err(SessionError::Idle(ctx.idle_timeout)),
                            Ok(Err(e)) => return Err(e.into()),
                            Ok(Ok(0)) => return Ok(()),
                            Ok(Ok(_)) => {}
                        }
                    }
                    changed = shutdown.changed(), if !stopping => {
                        stopping = changed.is_err() || *shutdown.borrow();
                    }
                }
                continue;
            }
        };
        let cmd = Command::decode(&packet).map_err(ProtocolError::from)?;
        let rcpt_domain = match &cmd {
            Command::Rcpt { recipient, .. } => Some(crate::store::event::domain_of(recipient)),
            _ => None,
        };
        let oversized = milter.oversized();
        let step = milter.handle(cmd)?;
        if milter.oversized() > oversized {
            tracing::warn!(queue_id = milter.macro_value("i"), max_message_bytes = ctx.policy.max_message_bytes, "milter: message too big to record");
        }
        let reply = match step {
            Step::Silent => continue,
            Step::Close => return Ok(()),
            Step::Reply(reply) => {
                if let (Some(domain), Reply::ReplyCode(text)) = (&rcpt_domain, &reply) {
                    tracing::warn!(recipient_domain = %domain, reply = %text, queue_id = milter.macro_value("i"), "milter: refused recipient at RCPT");
                }
                reply
            }
            Step::Store(delivery) => {
                let recorder = ctx.recorder.clone();
                let queue_id = delivery.queue_id.clone();
                let domain = delivery.recipients.first().map(|r| crate::store::event::domain_of(r)).unwrap_or_default();
                let result = tokio::task::spawn_blocking(move || recorder.record(&delivery)).await;
                let committed = match result {
                    Ok(Ok(rec)) => {
                        tracing::info!(queue_id = %queue_id, recipient_domain = %domain, kind = %rec.kind, events = rec.events, message_id = rec.message_id, "milter: message recorded");
                        true
                    }
                    Ok(Err(e)) => {
                        tracing::error!(queue_id = %queue_id, error = %e, "milter: store failed; answering tempfail");
                        false
                    }
                    Err(e) => {
                        tracing::error!(queue_id = %queue_id, error = %e, "milter: store task failed; answering tempfail");
                        false
                    }
                };
                milter.stored(committed)
            }
        };
        out.clear();
        reply.encode(&mut out);
        stream.write_all(&out).await?;
        stream.flush().await?;
    }
}
