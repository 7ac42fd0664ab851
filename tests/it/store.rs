//! The store: the single writer's group commit and failure isolation, raw evidence,
//! `db migrate` / `db check`, and refusing a database newer than the binary.

use rebound::store::writer::{BatchStats, Writer, WriterOptions};
use std::process::Command;
use std::sync::{mpsc, Arc, Mutex};

fn rebound(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rebound")).args(args).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// A writer on a fresh database with a scratch table; batches are recorded.
fn writer() -> (Writer, rebound::store::writer::WriterThread, Arc<Mutex<Vec<BatchStats>>>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let conn = rebound::store::open(&dir.path().join("w.db")).unwrap();
    conn.execute_batch("CREATE TABLE t (v INTEGER NOT NULL)").unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let (w, thread) = Writer::start(conn, WriterOptions::default(), move |b| s.lock().unwrap().push(*b)).unwrap();
    (w, thread, seen, dir)
}

#[test]
fn queued_jobs_commit_as_one_batch_and_a_failing_job_fails_alone() {
    let (w, thread, seen, _dir) = writer();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // A first job holds the writer until the others are queued behind it.
    let (release, wait) = mpsc::channel::<()>();
    let wait = Mutex::new(wait);
    let (started_tx, started) = mpsc::channel::<()>();
    let blocker = {
        let w = w.clone();
        rt.spawn(async move {
            w.submit(move |_tx| {
                let _ = started_tx.send(());
                let _ = wait.lock().unwrap().recv();
                Ok(())
            })
            .await
        })
    };
    started.recv().unwrap();
    let mut jobs = Vec::new();
    for v in [1i64, 2, -1, 3] {
        let w = w.clone();
        jobs.push(rt.spawn(async move {
            w.submit(move |tx| {
                if v < 0 {
                    tx.execute("INSERT INTO no_such_table VALUES (1)", [])?;
                }
                tx.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
                Ok(v)
            })
            .await
        }));
    }
    // All four wait in the channel behind the blocker: they form one batch.
    while w.queued() < 4 {
        std::thread::yield_now();
    }
    release.send(()).unwrap();
    assert!(rt.block_on(blocker).unwrap().is_ok());
    let results: Vec<_> = jobs.into_iter().map(|j| rt.block_on(j).unwrap()).collect();
    assert_eq!(results[0].as_ref().ok(), Some(&1));
    assert_eq!(results[1].as_ref().ok(), Some(&2));
    assert!(results[2].is_err(), "the failing job fails");
    assert_eq!(results[3].as_ref().ok(), Some(&3));
    drop(w);
    thread.join();
    let batches = seen.lock().unwrap().clone();
    let total: usize = batches.iter().map(|b| b.jobs).sum();
    assert_eq!(total, 5);
    assert_eq!(batches.len(), 5, "blocker, then the batch of four retried job by job: {batches:?}");
    assert!(batches[1..].iter().all(|b| !b.grouped && b.jobs == 1), "{batches:?}");
    let conn = rusqlite::Connection::open(_dir.path().join("w.db")).unwrap();
    let mut stmt = conn.prepare("SELECT v FROM t ORDER BY v").unwrap();
    let rows: Vec<i64> = stmt.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(rows, vec![1, 2, 3]);
}

#[test]
fn an_ok_means_flushed_and_a_failed_flush_fails_every_later_write() {
    let (w, thread, seen, dir) = writer();
    let insert = |v: i64| move |tx: &rusqlite::Transaction<'_>| Ok(tx.execute("INSERT INTO t (v) VALUES (?1)", [v])?);
    assert_eq!(w.submit_blocking(insert(1)).unwrap(), 1);
    {
        let first = seen.lock().unwrap()[0];
        assert!(first.sync.seq >= 1 && first.sync.transactions >= 1, "answered by a WAL flush: {first:?}");
        assert!(first.durable_time >= first.commit_time, "{first:?}");
    }
    // The WAL vanishes under the writer: no flush can succeed, so nothing is acknowledged.
    std::fs::remove_file(dir.path().join("w.db-wal")).unwrap();
    assert!(w.submit_blocking(insert(2)).is_err());
    // A failed flush is final: the kernel may have dropped the pages it could not write.
    assert!(w.submit_blocking(insert(3)).is_err());
    drop(w);
    thread.join();
}

#[test]
fn group_commit_batches_what_is_queued() {
    let (w, thread, seen, _dir) = writer();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (release, wait) = mpsc::channel::<()>();
    let wait = Mutex::new(wait);
    let (started_tx, started) = mpsc::channel::<()>();
    let w2 = w.clone();
    let blocker = rt.spawn(async move {
        w2.submit(move |_| {
            let _ = started_tx.send(());
            let _ = wait.lock().unwrap().recv();
            Ok(())
        })
        .await
    });
    started.recv().unwrap();
    let jobs: Vec<_> = (0..10i64)
        .map(|v| {
            let w = w.clone();
            rt.spawn(async move { w.submit(move |tx| Ok(tx.execute("INSERT INTO t (v) VALUES (?1)", [v])?)).await })
        })
        .collect();
    // Every job is in the channel once the queue holds them all: poll its capacity.
    while w.queued() < 10 {
        std::thread::yield_now();
    }
    release.send(()).unwrap();
    rt.block_on(blocker).unwrap().unwrap();
    for j in jobs {
        assert_eq!(rt.block_on(j).unwrap().unwrap(), 1);
    }
    drop(w);
    thread.join();
    let batches = seen.lock().unwrap().clone();
    assert_eq!(batches.len(), 2, "{batches:?}");
    assert_eq!(batches[1].jobs, 10);
    assert!(batches[1].grouped);
}

#[test]
fn db_migrate_and_check() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let db = db.to_str().unwrap();
    let known = rebound::store::MIGRATIONS.len();
    let (code, out, err) = rebound(&["db", "migrate", "--db", db]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("schema version {known}")), "{out}");
    let (code, out, _) = rebound(&["db", "migrate", "--db", db]);
    assert_eq!(code, 0);
    assert!(out.contains("up to date"), "{out}");
    let (code, out, err) = rebound(&["db", "check", "--db", db]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("schema_version: {known}")), "{out}");
    assert!(out.contains("integrity_check: ok"), "{out}");
}

#[test]
fn a_newer_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    drop(rebound::store::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);
    let db = path.to_str().unwrap();
    for args in [&["db", "migrate", "--db", db][..], &["db", "check", "--db", db], &["serve", "--listen", "127.0.0.1:0", "--db", db]] {
        let (code, _, err) = rebound(args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains("newer"), "{args:?}: {err}");
    }
}

#[test]
fn raw_evidence_round_trips() {
    let msg = b"Subject: x\r\n\r\nbody body body body body body\r\n".repeat(50);
    let packed = rebound::store::raw::deflate(&msg);
    assert!(packed.len() < msg.len() / 4);
    assert_eq!(rebound::store::raw::decode(&packed, rebound::store::raw::RawEncoding::Deflate, 1 << 30).unwrap(), msg);
}

#[test]
fn deflate_reuses_its_compressor_correctly() {
    for size in [0usize, 1, 100, 70_000, 300_000] {
        let msg: Vec<u8> = (0..size).map(|i| (i.wrapping_mul(2654435761) >> 7) as u8).collect();
        assert_eq!(rebound::store::raw::decode(&rebound::store::raw::deflate(&msg), rebound::store::raw::RawEncoding::Deflate, 1 << 30).unwrap(), msg, "{size}");
    }
}

#[test]
fn another_process_closing_the_store_keeps_the_wal_of_the_process_that_created_it() {
    // A store created by this process, written to and left open (as `serve` does).
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let conn = rebound::store::open(&db).unwrap();
    conn.execute("UPDATE spool_state SET applied_seq = 1", []).unwrap();
    let wal = dir.path().join("r.db-wal");
    assert!(wal.exists());
    // An app reads the store with the system's SQLite and closes: it must see it is
    // not the last connection (rebound's own commands never delete the WAL on close).
    let read = "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.execute('SELECT count(*) FROM messages').fetchone()\nc.close()";
    let out = Command::new("python3").args(["-c", read]).arg(&db).output().expect("python3 (the CI installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(wal.exists(), "the other process deleted the WAL of a store still open here");
    conn.execute("UPDATE spool_state SET applied_seq = 2", []).unwrap();
    drop(conn);
    let seq: i64 = rusqlite::Connection::open(&db).unwrap().query_row("SELECT applied_seq FROM spool_state", [], |r| r.get(0)).unwrap();
    assert_eq!(seq, 2);
}
