//! `rebound db backup` and `rebound db prune`.
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `db backup`.
#[derive(Args, Debug)]
#[command(after_help = "Example:
  rebound db backup /var/backups/rebound/rebound-$(date +%F).db

Safe while `rebound serve` runs: the copy is one consistent snapshot (SQLite VACUUM INTO),
written to a temp file beside FILE, fsynced and renamed, so FILE is never half written.")]
pub struct BackupArgs {
    /// Where to write the copy (replaced atomically if it exists).
    pub file: PathBuf,
}

/// Arguments of `db prune`.
#[derive(Args, Debug)]
#[command(after_help = "Example:
  rebound db prune --older-than 180d

Drops the raw bytes of messages received before then (their evidence); the events,
address states and message rows stay. SQLite reuses the freed pages; run VACUUM to
shrink the file. Also sets suppressions whose term has ended back to active, so apps
that read address_status.state directly see them lifted (run it daily from cron).")]
pub struct PruneArgs {
    /// Retention: prune messages received longer ago than this (90d, 26w, 12h).
    #[arg(long, default_value = "180d")]
    pub older_than: String,
    /// Only count what would be pruned.
    #[arg(long)]
    pub dry_run: bool,
}

/// Writes a consistent copy of the database.
pub fn backup(g: &super::Globals, a: BackupArgs) -> anyhow::Result<ExitCode> {
    let db = g.config()?.store.db;
    let conn = rebound::store::open_current(&db).map_err(|e| anyhow::anyhow!("{}: {e}", db.display()))?;
    let dir = match a.file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = a.file.file_name().ok_or_else(|| anyhow::anyhow!("{}: not a file name", a.file.display()))?;
    let tmp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let result = (|| -> anyhow::Result<u64> {
        let tmp_str = tmp.to_str().ok_or_else(|| anyhow::anyhow!("{}: path is not UTF-8", tmp.display()))?;
        conn.execute("VACUUM INTO ?1", [tmp_str]).map_err(|e| anyhow::anyhow!("{}: {e}", a.file.display()))?;
        let f = std::fs::File::open(&tmp)?;
        f.sync_all()?;
        let size = f.metadata()?.len();
        std::fs::rename(&tmp, &a.file).map_err(|e| anyhow::anyhow!("{}: {e}", a.file.display()))?;
        std::fs::File::open(&dir).and_then(|d| d.sync_all())?;
        Ok(size)
    })();
    match result {
        Ok(size) => {
            println!("backup: {} ({size} bytes, schema version {})", a.file.display(), rebound::store::schema_version(&conn)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Drops raw message bytes past retention.
pub fn prune(g: &super::Globals, a: PruneArgs) -> anyhow::Result<ExitCode> {
    let secs = match rebound::report::parse_duration_secs(&a.older_than) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rebound: --older-than: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let db = g.config()?.store.db;
    let mut conn = rebound::store::open_current(&db).map_err(|e| anyhow::anyhow!("{}: {e}", db.display()))?;
    let before = chrono::Utc::now().timestamp() - secs;
    let tx = conn.transaction()?;
    let (n, bytes) = rebound::store::query::prune_raw(&tx, before)?;
    let lifted = rebound::store::status::lift_expired(&tx, chrono::Utc::now().timestamp())?;
    if a.dry_run {
        tx.rollback()?;
        println!("prune: would drop the raw bytes of {n} messages ({bytes} bytes) received before {}", rebound::export::rfc3339(before));
        println!("prune: would lift {lifted} suppressions whose term has ended");
    } else {
        tx.commit()?;
        println!("prune: dropped the raw bytes of {n} messages ({bytes} bytes) received before {}; events kept", rebound::export::rfc3339(before));
        println!("prune: lifted {lifted} suppressions whose term has ended");
    }
    Ok(ExitCode::SUCCESS)
}
