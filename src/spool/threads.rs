//! Starting and stopping the spool's threads: the flusher ([`super::flush`]), which
//! makes queued messages durable and answers the sessions, and the applier
//! ([`super::apply`]), which stores them. Closing drains both and empties the
//! spool when the store holds everything.

use super::apply::{apply_loop, Durable};
use super::flush::{flush_loop, Writing};
use super::segment::{self, Segment};
use super::{Record, Shared, SpoolOptions, SpoolThreads};
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};

/// Starts the applier and the flusher; writing begins in `first` at `next_seq`.
pub(super) fn spawn<A>(
    shared: Arc<Shared>,
    dir: PathBuf,
    lock: File,
    first: Segment,
    next_seq: u64,
    options: SpoolOptions,
    apply: A,
) -> std::io::Result<SpoolThreads>
where
    A: FnMut(&[Record], bool) -> Result<(), String> + Send + 'static,
{
    let (to_applier, from_flushers) = mpsc::channel::<Durable>();
    let max_held_bytes = options.max_held_bytes;
    let applier_shared = shared.clone();
    let applier = std::thread::Builder::new()
        .name("rebound-apply".into())
        .spawn({
            let dir = dir.clone();
            move || apply_loop(&applier_shared, from_flushers, &dir, &options, apply)
        })?;
    let writing = Writing::new(dir.clone(), first, next_seq);
    // The flusher holds the only sender: the applier ends after it.
    let flusher_shared = shared.clone();
    let flusher = std::thread::Builder::new()
        .name("rebound-spool".into())
        .spawn(move || flush_loop(&flusher_shared, writing, max_held_bytes, to_applier))?;
    let close = move || {
        {
            let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            st.closed = true;
        }
        shared.wake.notify_all();
        // The stop waits on the store now.
        shared.priority.hurry();
        let writing = flusher.join();
        let _ = applier.join();
        // A flusher that panicked leaves its segments (and any records) to the next start.
        let Ok(mut w) = writing else { return false };
        let last_seq = w.next_seq - 1;
        let segments = w.segments();
        let empty = shared.applied.load(Ordering::SeqCst) >= last_seq;
        if empty {
            for n in segments {
                if let Err(e) = segment::remove(&dir, n) {
                    tracing::warn!(error = %e, "spool segment not removed");
                }
            }
        } else {
            tracing::error!(dir = %dir.display(), "spool closed with records the store lacks; the next start applies them");
        }
        drop(lock);
        empty
    };
    Ok(SpoolThreads { close: Box::new(close) })
}
