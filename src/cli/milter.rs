//! `rebound milter`.
use clap::Args;
use rebound::classify::Classifier;
use rebound::milter::record::WriterRecorder;
use rebound::store::writer::{Writer, WriterOptions};
use rebound::milter::server::{self, Limits, Listeners};
use rebound::milter::session::SessionContext;
use rebound::milter::token::VerpTokenCheck;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `milter`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  rebound milter --listen 127.0.0.1:8894 --bounce-domain bounce.example.com
  rebound milter --config /etc/rebound/rebound.toml --socket /run/rebound/milter.sock

Postfix main.cf:  smtpd_milters = inet:127.0.0.1:8894
                  milter_default_action = tempfail
                  milter_protocol = 6")]
pub struct MilterArgs {
    /// TCP address to listen on (repeatable; replaces the config's [milter] listen).
    #[arg(long = "listen", value_name = "ADDR:PORT")]
    pub listen: Vec<String>,
    /// Unix socket to listen on (repeatable; replaces the config's [milter] sockets).
    #[arg(long = "socket", value_name = "PATH")]
    pub socket: Vec<PathBuf>,
    /// Domain whose recipients are return paths (repeatable; added to bounce_domains,
    /// which default to the [verp] domain).
    #[arg(long = "bounce-domain", value_name = "DOMAIN")]
    pub bounce_domain: Vec<String>,
    /// Refuse forged or expired VERP tokens at RCPT with 550 5.7.1.
    #[arg(long)]
    pub reject_invalid_verp: bool,
}

/// Runs the milter server until SIGTERM or Ctrl-C.
pub fn run(g: &super::Globals, a: MilterArgs) -> anyhow::Result<ExitCode> {
    let config = g.config()?;
    let mut mc = config.milter.clone();
    if !a.listen.is_empty() || !a.socket.is_empty() {
        mc.listen = a.listen;
        mc.sockets = a.socket;
    }
    mc.bounce_domains.extend(a.bounce_domain);
    mc.reject_invalid_verp |= a.reject_invalid_verp;
    let policy = mc.policy(&config.verp);
    if policy.bounce_domains.is_empty() {
        eprintln!("rebound milter: no bounce domain: set [milter] bounce_domains, [verp] domain or pass --bounce-domain");
        return Ok(ExitCode::from(2));
    }
    let keys = rebound::verp_keys::cached(&config.verp)?;
    let check = Arc::new(VerpTokenCheck::new(keys, config.verp.clone()));
    let conn = rebound::store::open(&config.store.db).map_err(|e| anyhow::anyhow!("{}: {e}", config.store.db.display()))?;
    let (writer, writer_thread) = Writer::start(conn, WriterOptions::default(), |_| {})?;
    let classifier = Arc::new(Classifier::for_server(&config.classify)?);
    let recorder = WriterRecorder::new(writer, classifier, Arc::new(config.verp.clone())).keep_raw(config.milter.keep_raw);
    let ctx = Arc::new(SessionContext {
        policy: Arc::new(policy),
        check,
        recorder: Arc::new(recorder),
        idle_timeout: Duration::from_secs(mc.idle_timeout_secs.max(1)),
    });
    let limits = Limits { max_connections: mc.max_connections, drain_timeout: Duration::from_secs(mc.drain_timeout_secs) };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let served = rt.block_on(async move {
        let listeners = Listeners::from_config(&mc).await?;
        {
            // One line per endpoint on stdout, so scripts and tests know where to connect.
            let mut out = std::io::stdout().lock();
            for e in listeners.endpoints() {
                writeln!(out, "rebound milter: listening on {e}")?;
            }
            out.flush()?;
        }
        tracing::info!(endpoints = ?listeners.endpoints(), "milter: listening");
        server::run(listeners, ctx, limits, shutdown_signal()).await;
        anyhow::Ok(())
    });
    // Sessions left after the drain hold writer handles: end them, then let the writer
    // finish what it was given.
    drop(rt);
    writer_thread.join();
    served?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
