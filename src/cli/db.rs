//! `rebound db`: schema migrate/check here; backup and prune in `db_maint.rs`.
use anyhow::Context;
use clap::{Args, Subcommand};
use rusqlite::OpenFlags;
use std::path::PathBuf;
use std::process::ExitCode;

/// Subcommands of `db`.
#[derive(Subcommand, Debug)]
pub enum DbCommand {
    /// Create the database if needed and apply the schema migrations it lacks.
    #[command(after_help = "Example:\n  rebound db migrate --db /var/lib/rebound/rebound.db")]
    Migrate,
    /// Report the schema version and run SQLite's integrity check.
    #[command(after_help = "Example:\n  rebound db check --db /var/lib/rebound/rebound.db   # exit 1 if not ok")]
    Check,
    /// Write a consistent copy of the database (safe while serve runs).
    Backup(super::db_maint::BackupArgs),
    /// Drop raw message bytes past retention; events are kept.
    Prune(super::db_maint::PruneArgs),
}

/// Arguments naming a file.
#[derive(Args, Debug)]
pub struct FileArg {
    /// The file.
    pub file: PathBuf,
}

/// Manages the database.
pub fn run(g: &super::Globals, c: DbCommand) -> anyhow::Result<ExitCode> {
    match c {
        DbCommand::Migrate => migrate(g),
        DbCommand::Check => check(g),
        DbCommand::Backup(a) => super::db_maint::backup(g, a),
        DbCommand::Prune(a) => super::db_maint::prune(g, a),
    }
}

fn migrate(g: &super::Globals) -> anyhow::Result<ExitCode> {
    let path = g.config()?.store.db;
    let mut conn = rusqlite::Connection::open(&path).with_context(|| path.display().to_string())?;
    rebound::store::configure(&conn).with_context(|| path.display().to_string())?;
    let applied = rebound::store::migrate(&mut conn).with_context(|| path.display().to_string())?;
    let version = rebound::store::schema_version(&conn)?;
    if applied.is_empty() {
        println!("{}: schema version {version}, up to date", path.display());
    } else {
        let list: Vec<String> = applied.iter().map(|v| v.to_string()).collect();
        println!("{}: schema version {version} (applied {})", path.display(), list.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

fn check(g: &super::Globals) -> anyhow::Result<ExitCode> {
    let path = g.config()?.store.db;
    let conn = rusqlite::Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("{}: cannot open", path.display()))?;
    let version = rebound::store::schema_version(&conn).with_context(|| path.display().to_string())?;
    let known = rebound::store::MIGRATIONS.len() as i64;
    let mut ok = true;
    println!("schema_version: {version} (this rebound: {known})");
    if version > known {
        eprintln!("{}: schema version {version} is newer than this rebound knows ({known}); upgrade rebound", path.display());
        ok = false;
    } else if version < known {
        eprintln!("{}: schema version {version} is older than {known}; run `rebound db migrate`", path.display());
        ok = false;
    }
    let mut stmt = conn.prepare("PRAGMA integrity_check")?;
    let lines: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    for line in &lines {
        println!("integrity_check: {line}");
    }
    if lines != ["ok"] {
        ok = false;
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
