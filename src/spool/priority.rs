//! CPU priority of the threads that store spooled messages: the applier and the
//! store's writer. Nobody waits on them, so while the spool keeps up they run as
//! SCHED_IDLE: they get a core only when nothing else wants it, and a session or the
//! flusher that wakes takes the core from them at once (nice 10 still let them delay
//! a wake-up). LMTP at 8 sessions on 2 cores: 6,335-7,847 -> 7,115-9,773 messages/s,
//! at 32 sessions 7,761-9,372 -> 10,084-11,006, in alternating runs.
//!
//! A machine kept busy by other work would starve SCHED_IDLE threads, so they are
//! raised to normal while the store falls behind (the backlog reaches 1/8 of its limit,
//! or nothing was stored for a second while messages wait) and lowered again once the
//! backlog is under 1/64. Leaving SCHED_IDLE needs root, CAP_SYS_NICE or an
//! RLIMIT_NICE of 20 (systemd: `LimitNICE=+0`); a process that may not do so runs the
//! threads at nice 10 throughout.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

thread_local! {
    /// Takes an enlisted thread off the list as it exits, so a thread id the kernel
    /// hands to some other thread later is never changed.
    static ENLISTED: RefCell<Vec<Departure>> = const { RefCell::new(Vec::new()) };
}

struct Departure {
    threads: Arc<Mutex<Vec<libc::pid_t>>>,
    tid: libc::pid_t,
}

impl Drop for Departure {
    fn drop(&mut self) {
        let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        threads.retain(|&t| t != self.tid);
    }
}

/// How long messages may wait with nothing stored before the threads are raised.
const STALLED: Duration = Duration::from_secs(1);

/// Nice value of the store's threads where SCHED_IDLE could not be left again.
const FIXED_NICE: libc::c_int = 10;

/// Raised-priority notices are logged at info at most this often (debug otherwise).
const NOTICE_EVERY: Duration = Duration::from_secs(60);

/// The store's threads and the level they run at.
pub(super) struct StorePriority {
    /// SCHED_IDLE can be left again, so the level follows the backlog.
    adaptive: bool,
    /// Thread ids enlisted and still running.
    threads: Arc<Mutex<Vec<libc::pid_t>>>,
    raised: AtomicBool,
    epoch: Instant,
    /// Milliseconds after `epoch` when the store last made progress (or messages
    /// started waiting).
    progress_ms: AtomicU64,
    /// Milliseconds after `epoch` of the last info-level notice (0: none yet).
    noticed_ms: AtomicU64,
    stalled: Duration,
}

impl StorePriority {
    /// Probes whether SCHED_IDLE may be left again in this process.
    pub(super) fn new() -> StorePriority {
        StorePriority::with_stall(can_leave_idle(), STALLED)
    }

    fn with_stall(adaptive: bool, stalled: Duration) -> StorePriority {
        StorePriority {
            adaptive,
            threads: Arc::new(Mutex::new(Vec::new())),
            raised: AtomicBool::new(false),
            epoch: Instant::now(),
            progress_ms: AtomicU64::new(0),
            noticed_ms: AtomicU64::new(0),
            stalled,
        }
    }

    /// Makes the calling thread one of the store's threads, at the current level.
    pub(super) fn enlist(&self) {
        // SAFETY: gettid(2) has no arguments.
        let tid = unsafe { libc::gettid() };
        {
            // Under the lock: a raise or a lowering cannot slip in between.
            let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
            threads.push(tid);
            if !self.adaptive {
                set_nice(tid, FIXED_NICE);
            } else if !self.raised.load(Ordering::SeqCst) {
                set_idle(tid, true);
            }
        }
        let departure = Departure { threads: self.threads.clone(), tid };
        ENLISTED.with(|e| e.borrow_mut().push(departure));
    }

    /// A message was accepted when `before` bytes were waiting for the store.
    pub(super) fn appended(&self, before: usize, max: usize) {
        if !self.adaptive {
            return;
        }
        let now = self.now_ms();
        if before == 0 {
            // Messages start waiting now.
            self.progress_ms.store(now, Ordering::Relaxed);
            return;
        }
        if self.raised.load(Ordering::Relaxed) {
            return;
        }
        let stalled_ms = now.saturating_sub(self.progress_ms.load(Ordering::Relaxed));
        if (before >= max / 8 || stalled_ms >= self.stalled.as_millis() as u64) && self.set_raised(true) {
            crate::metrics::global().spool_store_raised.fetch_add(1, Ordering::Relaxed);
            let last = self.noticed_ms.load(Ordering::Relaxed);
            if last == 0 || now.saturating_sub(last) >= NOTICE_EVERY.as_millis() as u64 {
                self.noticed_ms.store(now.max(1), Ordering::Relaxed);
                tracing::info!(backlog_bytes = before, stalled_ms, "store falling behind: its threads raised to normal priority");
            } else {
                tracing::debug!(backlog_bytes = before, stalled_ms, "store threads raised to normal priority");
            }
        }
    }

    /// Someone waits for the store (a stop, [`super::Spool::wait_applied`]): normal
    /// priority until it has caught up.
    pub(super) fn hurry(&self) {
        if self.adaptive && self.set_raised(true) {
            tracing::debug!("store awaited: its threads raised to normal priority");
        }
    }

    /// The store took a batch; `backlog` bytes still wait.
    pub(super) fn stored(&self, backlog: usize, max: usize) {
        if !self.adaptive {
            return;
        }
        self.progress_ms.store(self.now_ms(), Ordering::Relaxed);
        if backlog <= max / 64 && self.raised.load(Ordering::Relaxed) && self.set_raised(false) {
            tracing::debug!(backlog_bytes = backlog, "store caught up: its threads back to idle priority");
        }
    }

    /// Whether the threads run at normal priority now.
    #[cfg(test)]
    pub(super) fn is_raised(&self) -> bool {
        self.raised.load(Ordering::SeqCst)
    }

    /// Moves every enlisted thread to normal (`raise`) or idle priority; false if they
    /// were there already.
    fn set_raised(&self, raise: bool) -> bool {
        let threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        if self.raised.swap(raise, Ordering::SeqCst) == raise {
            return false;
        }
        for &tid in threads.iter() {
            set_idle(tid, !raise);
        }
        true
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

/// Puts thread `tid` in SCHED_IDLE (`idle`) or back in SCHED_OTHER; false if refused.
fn set_idle(tid: libc::pid_t, idle: bool) -> bool {
    let policy = if idle { libc::SCHED_IDLE } else { libc::SCHED_OTHER };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler(2) on a thread of this process; `param` outlives the call.
    let done = unsafe { libc::sched_setscheduler(tid, policy, &param) } == 0;
    if !done {
        tracing::debug!(error = %std::io::Error::last_os_error(), idle, "thread scheduling policy unchanged");
    }
    done
}

/// Sets thread `tid`'s nice value.
fn set_nice(tid: libc::pid_t, nice: libc::c_int) {
    // SAFETY: setpriority(2) on a thread of this process; no memory is passed.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) } != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "thread priority unchanged");
    }
}

/// Whether a thread of this process may enter SCHED_IDLE and leave it again (tried on
/// a throwaway thread).
fn can_leave_idle() -> bool {
    std::thread::Builder::new()
        .name("rebound-probe".into())
        .spawn(|| {
            // SAFETY: gettid(2) has no arguments.
            let tid = unsafe { libc::gettid() };
            set_idle(tid, true) && set_idle(tid, false)
        })
        .ok()
        .and_then(|t| t.join().ok())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> libc::c_int {
        // SAFETY: sched_getscheduler(2) of the calling thread.
        unsafe { libc::sched_getscheduler(0) }
    }

    fn nice() -> libc::c_int {
        // SAFETY: getpriority(2) of the calling thread.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    #[test]
    fn enlisting_touches_only_the_calling_thread() {
        let before = (policy(), nice());
        let p = StorePriority::new();
        let adaptive = p.adaptive;
        let inside = std::thread::scope(|s| {
            s.spawn(|| {
                p.enlist();
                (policy(), nice())
            })
            .join()
            .unwrap()
        });
        if adaptive {
            assert_eq!(inside.0, libc::SCHED_IDLE);
        } else {
            assert!(inside.1 >= FIXED_NICE, "nice {}", inside.1);
        }
        assert_eq!((policy(), nice()), before, "the caller's own thread is untouched");
    }

    #[test]
    fn a_thread_that_exits_leaves_the_list() {
        let p = StorePriority::with_stall(false, STALLED);
        // join (pthread_join) returns after the thread's exit, its destructors included.
        let while_running = std::thread::scope(|s| {
            s.spawn(|| {
                p.enlist();
                p.threads.lock().unwrap().len()
            })
            .join()
            .unwrap()
        });
        assert_eq!(while_running, 1);
        assert!(p.threads.lock().unwrap().is_empty(), "its id may belong to another thread by now");
    }

    #[test]
    fn the_level_follows_the_backlog() {
        let p = StorePriority::with_stall(true, Duration::from_secs(3600));
        let max = 64 << 20;
        p.appended(0, max);
        p.appended(100, max);
        assert!(!p.is_raised(), "a small backlog stays idle");
        p.appended(max / 8, max);
        assert!(p.is_raised(), "1/8 of the limit raises");
        p.stored(max / 16, max);
        assert!(p.is_raised(), "still behind");
        p.stored(max / 64, max);
        assert!(!p.is_raised(), "caught up");
    }

    #[test]
    fn a_stalled_store_is_raised() {
        let p = StorePriority::with_stall(true, Duration::ZERO);
        p.appended(0, 1 << 20);
        assert!(!p.is_raised(), "the first message only starts the clock");
        p.appended(10, 1 << 20);
        assert!(p.is_raised(), "messages waited and nothing was stored");
        p.stored(0, 1 << 20);
        assert!(!p.is_raised(), "caught up");
        p.hurry();
        assert!(p.is_raised(), "a waiter raises");
        let fixed = StorePriority::with_stall(false, Duration::ZERO);
        fixed.appended(0, 1 << 20);
        fixed.appended(1 << 20, 1 << 20);
        fixed.hurry();
        assert!(!fixed.is_raised(), "without SCHED_IDLE there is nothing to raise");
    }

    #[test]
    fn raising_and_lowering_moves_enlisted_threads() {
        let p = StorePriority::new();
        if !p.adaptive {
            eprintln!("NOTICE: SCHED_IDLE cannot be left here (not root, RLIMIT_NICE < 20); check skipped");
            return;
        }
        let (to_thread, check) = std::sync::mpsc::channel::<()>();
        let (report, seen) = std::sync::mpsc::channel::<libc::c_int>();
        let pr = &p;
        std::thread::scope(|s| {
            s.spawn(move || {
                pr.enlist();
                while check.recv().is_ok() {
                    report.send(policy()).unwrap();
                }
            });
            let look = || {
                to_thread.send(()).unwrap();
                seen.recv().unwrap()
            };
            assert_eq!(look(), libc::SCHED_IDLE);
            p.set_raised(true);
            assert_eq!(look(), libc::SCHED_OTHER);
            p.set_raised(false);
            assert_eq!(look(), libc::SCHED_IDLE);
            drop(to_thread);
        });
    }
}
