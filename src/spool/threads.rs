//! Starting and stopping the spool's threads: the flushers ([`super::flush`]), which
//! make queued messages durable and answer the sessions, and the applier
//! ([`super::apply`]), which stores them. Closing drains both and empties the
//! spool when the store holds everything.

use super::apply::{apply_loop, Durable};
use super::flush::{flush_loop, Sequencer, Writing, FLUSHERS};
use super::segment::{self, Segment};
use super::{Record, Shared, SpoolOptions, SpoolThreads};
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};

/// Starts the applier and the flushers; writing begins in `first` at `next_seq`.
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
    let applier_shared = shared.clone();
    let applier = std::thread::Builder::new()
        .name("rebound-apply".into())
        .spawn(move || apply_loop(&applier_shared, from_flushers, &options, apply))?;
    let writing = Arc::new(Mutex::new(Writing::new(dir.clone(), first, next_seq)));
    // The flushers hold the only sender: the applier ends after the last of them.
    let sequencer = Arc::new(Mutex::new(Sequencer::new(next_seq, to_applier)));
    let mut flushers = Vec::new();
    for _ in 0..FLUSHERS {
        let (shared, writing, sequencer) = (shared.clone(), writing.clone(), sequencer.clone());
        flushers.push(std::thread::Builder::new().name("rebound-spool".into()).spawn(move || flush_loop(&shared, &writing, &sequencer))?);
    }
    drop(sequencer);
    let close = move || {
        {
            let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            st.closed = true;
        }
        shared.wake.notify_all();
        for f in flushers {
            let _ = f.join();
        }
        let _ = applier.join();
        let mut w = writing.lock().unwrap_or_else(|e| e.into_inner());
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
