//! The spool end to end on a temporary directory: what is acknowledged is applied in
//! order, survives a store that fails (read back by the next start), is deleted once
//! applied, and a full backlog refuses new messages.

use super::*;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

fn payload(i: usize, size: usize) -> Vec<u8> {
    let message = format!("Subject: {i}\r\n\r\n{}\r\n", "x".repeat(size));
    record::encode_payload(1_700_000_000 + i as i64, "", &[format!("r{i}@example.test")], message.as_bytes())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().unwrap()
}

/// Starts a spool on `dir` whose store is `ok` (when false, every apply fails) and
/// which records the sequence numbers applied.
fn start(dir: &Path, ok: Arc<AtomicBool>, options: SpoolOptions) -> (Spool, SpoolThreads, Arc<Mutex<Vec<u64>>>) {
    let applied = Arc::new(Mutex::new(Vec::new()));
    let seen = applied.clone();
    let recovered = recover(dir, 0).unwrap();
    assert_eq!(recovered.pending(), 0);
    let (spool, threads) = recovered
        .start(options, move |batch: &[Record], _flush| {
            if !ok.load(Ordering::SeqCst) {
                return Err("store down".into());
            }
            seen.lock().unwrap().extend(batch.iter().map(|r| r.seq));
            Ok(())
        })
        .unwrap();
    (spool, threads, applied)
}

/// Every record `recovered` replays, in batches of at most `batch` (checked).
fn replayed(recovered: &Recovered, batch: usize) -> Vec<Record> {
    let mut out = Vec::new();
    recovered
        .replay(batch, usize::MAX, |b: &[Record]| -> Result<(), SpoolError> {
            assert!(!b.is_empty() && b.len() <= batch, "batch of {}", b.len());
            out.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
    out
}

#[test]
fn acknowledged_records_are_applied_in_order_then_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, threads, applied) = start(dir.path(), Arc::new(AtomicBool::new(true)), SpoolOptions::default());
    // ~3 MiB: past the first two segments (1 and 2 MiB).
    runtime().block_on(async {
        for i in 0..700 {
            spool.append(payload(i, 4000)).await.unwrap();
        }
    });
    assert!(spool.wait_applied(Duration::from_secs(30)));
    assert!(segment::list(dir.path()).unwrap().len() >= 2, "rotated into further segments");
    assert!(threads.close(), "everything applied: the spool is emptied");
    assert_eq!(*applied.lock().unwrap(), (1..=700).collect::<Vec<u64>>());
    assert_eq!(segment::list(dir.path()).unwrap(), Vec::<u64>::new());
    let s = spool.stats();
    assert_eq!((s.records, s.applied_records), (700, 700));
}

/// A session wakes the flusher only when it sleeps; a lost wake would cost a message
/// the flusher's idle timeout (1 s), so 40 one-at-a-time appends would take half a minute.
#[test]
fn a_message_to_an_idle_spool_wakes_the_flusher() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, threads, applied) = start(dir.path(), Arc::new(AtomicBool::new(true)), SpoolOptions::default());
    let started = std::time::Instant::now();
    runtime().block_on(async {
        for i in 0..40 {
            spool.append(payload(i, 100)).await.unwrap();
        }
    });
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "40 appends took {took:?}: a wake was lost");
    assert!(threads.close());
    assert_eq!(applied.lock().unwrap().len(), 40);
}

#[test]
fn a_failing_store_leaves_every_acknowledged_record_for_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let ok = Arc::new(AtomicBool::new(false));
    let options = SpoolOptions { close_patience: Duration::ZERO, ..SpoolOptions::default() };
    let (spool, threads, applied) = start(dir.path(), ok, options);
    runtime().block_on(async {
        for i in 0..400 {
            spool.append(payload(i, 4000)).await.unwrap();
        }
    });
    assert!(!threads.close(), "nothing could be applied");
    assert!(applied.lock().unwrap().is_empty());
    // The next start reads them back, across segments, in order and intact.
    let back = recover(dir.path(), 0).unwrap();
    assert_eq!(back.pending(), 400);
    let records = replayed(&back, 64);
    assert_eq!(records.len(), 400);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1);
        assert_eq!(r.recipients, vec![format!("r{i}@example.test")]);
        assert_eq!(r.received_at, 1_700_000_000 + i as i64);
    }
    drop(back);
    // With the store's watermark at 390 only the last ten are wanted; numbering goes on.
    let back = recover(dir.path(), 390).unwrap();
    assert_eq!(back.pending(), 10);
    assert_eq!(replayed(&back, 3).iter().map(|r| r.seq).collect::<Vec<_>>(), (391..=400).collect::<Vec<u64>>());
    let (spool, threads) = back.start(SpoolOptions::default(), |_: &[Record], _| Ok(())).unwrap();
    runtime().block_on(spool.append(payload(0, 10))).unwrap();
    assert!(threads.close());
    assert_eq!(spool.applied(), 401);
}

#[test]
fn a_full_backlog_refuses_new_messages_until_the_store_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let ok = Arc::new(AtomicBool::new(false));
    let options = SpoolOptions { max_backlog_bytes: 20_000, close_patience: Duration::ZERO, ..SpoolOptions::default() };
    let (spool, threads, applied) = start(dir.path(), ok.clone(), options);
    let rt = runtime();
    let mut refused = None;
    for i in 0..10 {
        match rt.block_on(spool.append(payload(i, 4000))) {
            Ok(()) => {}
            Err(e) => {
                refused = Some((i, e));
                break;
            }
        }
    }
    let (i, e) = refused.expect("the backlog limit refused a message");
    assert!(matches!(e, SpoolError::Backlog(_)), "{e}");
    assert!(i >= 4, "{i} messages fit in 20,000 bytes");
    ok.store(true, Ordering::SeqCst);
    assert!(spool.wait_applied(Duration::from_secs(30)));
    rt.block_on(spool.append(payload(99, 4000))).unwrap();
    assert!(threads.close());
    assert_eq!(applied.lock().unwrap().len(), i + 1);
}

#[test]
fn a_second_server_on_the_same_spool_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = recover(dir.path(), 0).unwrap();
    let err = recover(dir.path(), 0).err().expect("locked");
    assert!(err.to_string().contains("in use"), "{err}");
    drop(first);
    assert!(recover(dir.path(), 0).is_ok(), "the lock goes with the first");
}


#[test]
fn a_store_that_falls_behind_gets_what_was_left_on_disk_intact_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let ok = Arc::new(AtomicBool::new(false));
    // Held in memory: at most ~3 messages; the rest is read back from the segments.
    let options = SpoolOptions { max_held_bytes: 10_000, max_apply_batch: 50, ..SpoolOptions::default() };
    let applied = Arc::new(Mutex::new(Vec::new()));
    let seen = applied.clone();
    let gate = ok.clone();
    let (spool, threads) = recover(dir.path(), 0)
        .unwrap()
        .start(options, move |batch: &[Record], _flush| {
            if !gate.load(Ordering::SeqCst) {
                return Err("store busy".into());
            }
            seen.lock().unwrap().extend(batch.iter().map(|r| (r.seq, r.recipients.clone(), r.message.clone())));
            Ok(())
        })
        .unwrap();
    // ~1.6 MB: past the first segment (1 MiB) while the store takes nothing.
    runtime().block_on(async {
        for i in 0..400 {
            spool.append(payload(i, 4000)).await.unwrap();
        }
    });
    assert!(spool.stats().spilled_records >= 390, "{:?}", spool.stats());
    ok.store(true, Ordering::SeqCst);
    assert!(spool.wait_applied(Duration::from_secs(30)));
    assert!(threads.close());
    let applied = applied.lock().unwrap();
    assert_eq!(applied.len(), 400);
    for (i, (seq, recipients, message)) in applied.iter().enumerate() {
        assert_eq!(*seq, i as u64 + 1);
        assert_eq!(*recipients, vec![format!("r{i}@example.test")]);
        assert_eq!(*message, format!("Subject: {i}\r\n\r\n{}\r\n", "x".repeat(4000)).into_bytes());
    }
    assert_eq!(segment::list(dir.path()).unwrap(), Vec::<u64>::new());
}

#[test]
fn a_replay_stops_at_the_first_batch_the_store_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let options = SpoolOptions { close_patience: Duration::ZERO, ..SpoolOptions::default() };
    let (spool, threads, _) = start(dir.path(), Arc::new(AtomicBool::new(false)), options);
    runtime().block_on(async {
        for i in 0..10 {
            spool.append(payload(i, 100)).await.unwrap();
        }
    });
    assert!(!threads.close());
    let back = recover(dir.path(), 0).unwrap();
    let mut offered = Vec::new();
    let result = back.replay(4, usize::MAX, |b: &[Record]| {
        offered.push(b.len());
        if offered.len() == 2 {
            return Err(SpoolError::Failed("store down".into()));
        }
        Ok(())
    });
    assert!(matches!(result, Err(SpoolError::Failed(_))), "{:?}", result.err());
    assert_eq!(offered, vec![4, 4], "nothing is offered after the refusal");
}
