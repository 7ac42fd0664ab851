//! An INSERT run through SQLite's C interface with its values bound in place
//! (`SQLITE_STATIC`): rusqlite binds every text and blob `SQLITE_TRANSIENT`, so SQLite
//! allocates and copies each one before building the row, which copies it again. For
//! ingest's writer thread (a `messages` row with its raw bytes and an `events` row of
//! 26 values per message) that was ~17 % of its CPU. The values are only borrowed for
//! the call: the statement is reset and its bindings cleared before it returns.

use rusqlite::{ffi, Connection};
use std::marker::PhantomData;
use std::os::raw::{c_char, c_int, c_void};
use std::ptr;

/// A value to bind.
pub(super) enum Value<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Blob(&'a [u8]),
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match *self {
            Value::Null => ValueRef::Null,
            Value::Int(n) => ValueRef::Integer(n),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

/// A prepared INSERT on a connection, used on that connection's thread only (the raw
/// pointers make it neither `Send` nor `Sync`) and finalized before it closes (the
/// borrow of the connection).
pub(super) struct RawInsert<'c> {
    db: *mut ffi::sqlite3,
    stmt: *mut ffi::sqlite3_stmt,
    _conn: PhantomData<&'c Connection>,
}

impl<'c> RawInsert<'c> {
    /// Prepares `sql` on `conn`.
    pub(super) fn prepare(conn: &'c Connection, sql: &str) -> rusqlite::Result<Self> {
        let len = c_int::try_from(sql.len()).map_err(|_| misuse("statement too long"))?;
        // SAFETY: the handle stays valid while `conn` is borrowed (the lifetime 'c), and
        // SQLite reads `len` bytes of `sql`, which outlives the call.
        unsafe {
            let db = conn.handle();
            let mut stmt = ptr::null_mut();
            let rc = ffi::sqlite3_prepare_v3(
                db,
                sql.as_ptr().cast::<c_char>(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT as _,
                &mut stmt,
                ptr::null_mut(),
            );
            if rc != ffi::SQLITE_OK {
                ffi::sqlite3_finalize(stmt);
                return Err(error(db, rc));
            }
            if stmt.is_null() {
                return Err(misuse("empty statement"));
            }
            Ok(RawInsert { db, stmt, _conn: PhantomData })
        }
    }

    /// Runs the insert with `values` bound to ?1, ?2, ... in order; returns the new rowid.
    pub(super) fn insert(&mut self, values: &[Value<'_>]) -> rusqlite::Result<i64> {
        // SAFETY: `stmt` is a live statement of `db`. Texts and blobs are bound
        // SQLITE_STATIC from borrows that outlive this call, and `reset_and_clear` drops
        // every binding before it returns, so SQLite never reads them afterwards.
        unsafe {
            for (i, v) in values.iter().enumerate() {
                let rc = self.bind(i as c_int + 1, v);
                if rc != ffi::SQLITE_OK {
                    let e = error(self.db, rc);
                    self.reset_and_clear();
                    return Err(e);
                }
            }
            let rc = ffi::sqlite3_step(self.stmt);
            let rowid = ffi::sqlite3_last_insert_rowid(self.db);
            // After a failed step, reset returns the error (and errmsg describes it).
            let reset = self.reset_and_clear();
            match rc {
                ffi::SQLITE_DONE => Ok(rowid),
                ffi::SQLITE_ROW => Err(misuse("INSERT returned rows")),
                _ => Err(error(self.db, if reset != ffi::SQLITE_OK { reset } else { rc })),
            }
        }
    }

    unsafe fn bind(&mut self, i: c_int, v: &Value<'_>) -> c_int {
        match *v {
            Value::Null => ffi::sqlite3_bind_null(self.stmt, i),
            Value::Int(n) => ffi::sqlite3_bind_int64(self.stmt, i, n),
            // An empty value gets a pointer that is valid forever (a non-null pointer
            // with length 0 is '', a null one would be NULL).
            Value::Text(s) => {
                let p = if s.is_empty() { c"".as_ptr() } else { s.as_ptr().cast::<c_char>() };
                ffi::sqlite3_bind_text64(self.stmt, i, p, s.len() as u64, ffi::SQLITE_STATIC(), ffi::SQLITE_UTF8 as u8)
            }
            Value::Blob([]) => ffi::sqlite3_bind_zeroblob(self.stmt, i, 0),
            Value::Blob(b) => ffi::sqlite3_bind_blob64(self.stmt, i, b.as_ptr().cast::<c_void>(), b.len() as u64, ffi::SQLITE_STATIC()),
        }
    }

    unsafe fn reset_and_clear(&mut self) -> c_int {
        let rc = ffi::sqlite3_reset(self.stmt);
        ffi::sqlite3_clear_bindings(self.stmt);
        rc
    }
}

impl Drop for RawInsert<'_> {
    fn drop(&mut self) {
        // SAFETY: finalized once, while the connection is still open (borrowed).
        unsafe {
            ffi::sqlite3_finalize(self.stmt);
        }
    }
}

/// The connection's error for result code `rc`, as rusqlite reports it.
///
/// # Safety
/// `db` must be a live connection handle.
unsafe fn error(db: *mut ffi::sqlite3, rc: c_int) -> rusqlite::Error {
    let code = ffi::sqlite3_extended_errcode(db);
    let code = if code & 0xff == rc & 0xff { code } else { rc };
    let msg = ffi::sqlite3_errmsg(db);
    let msg = (!msg.is_null()).then(|| std::ffi::CStr::from_ptr(msg).to_string_lossy().into_owned());
    rusqlite::Error::SqliteFailure(ffi::Error::new(code), msg)
}

fn misuse(what: &str) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_MISUSE), Some(what.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_every_kind_and_reports_constraint_errors() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a INTEGER, b TEXT NOT NULL, c BLOB, d TEXT)").unwrap();
        let mut ins = RawInsert::prepare(&conn, "INSERT INTO t (a, b, c, d) VALUES (?1, ?2, ?3, ?4)").unwrap();
        let text = String::from("héllo");
        let blob = vec![0u8, 1, 2, 255];
        assert_eq!(ins.insert(&[Value::Int(7), Value::Text(&text), Value::Blob(&blob), Value::Null]).unwrap(), 1);
        assert_eq!(ins.insert(&[Value::Null, Value::Text(""), Value::Blob(&[]), Value::Text("x")]).unwrap(), 2);
        let e = ins.insert(&[Value::Int(1), Value::Null, Value::Null, Value::Null]).unwrap_err();
        assert!(e.to_string().contains("NOT NULL"), "{e}");
        assert_eq!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::ConstraintViolation));
        // The statement is usable again after an error.
        assert_eq!(ins.insert(&[Value::Int(3), Value::Text("y"), Value::Null, Value::Null]).unwrap(), 3);
        drop(ins);
        type Row = (Option<i64>, String, Option<Vec<u8>>, Option<String>);
        let rows: Vec<Row> = conn
            .prepare("SELECT a, b, c, d FROM t ORDER BY rowid")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows[0], (Some(7), "héllo".into(), Some(blob), None));
        assert_eq!(rows[1], (None, String::new(), Some(Vec::new()), Some("x".into())));
        assert_eq!(rows[2], (Some(3), "y".into(), None, None));
        let types: Vec<String> =
            conn.prepare("SELECT typeof(b) || typeof(c) FROM t ORDER BY rowid").unwrap().query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap();
        assert_eq!(types, ["textblob", "textblob", "textnull"]);
    }
}
