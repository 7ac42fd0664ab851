//! `rebound serve`: opens (creating and migrating) the store, starts the single writer,
//! binds the LMTP listeners (or takes systemd's), serves until SIGTERM or Ctrl-C, then
//! drains and exits 0.
use clap::Args;
use rebound::classify::shared::SharedClassifier;
use rebound::lmtp::{Delivery, Endpoints, Server};
use rebound::store::writer::{BatchStats, Writer, WriterOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Arguments of `serve`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  rebound serve                                   # 127.0.0.1:2424, ./rebound.db\n  rebound serve --listen 127.0.0.1:2424 --socket /run/rebound/lmtp.sock --db /var/lib/rebound/rebound.db\n  rebound --config /etc/rebound/rebound.toml serve")]
pub struct ServeArgs {
    /// TCP address to listen on, ADDR:PORT (repeatable; replaces lmtp.listen).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Vec<String>,
    /// Unix socket to listen on (repeatable; replaces lmtp.sockets).
    #[arg(long, value_name = "PATH")]
    pub socket: Vec<PathBuf>,
}

/// Group-commit totals for the periodic and final log lines.
#[derive(Default)]
struct BatchLog {
    batches: u64,
    jobs: u64,
    max: usize,
    commit_micros: u64,
    durable_micros: u64,
    flushes: u64,
    flush_micros: u64,
    last_flush: u64,
    last_log: Option<Instant>,
}

impl BatchLog {
    fn add(&mut self, s: &BatchStats) {
        self.batches += 1;
        self.jobs += s.jobs as u64;
        self.max = self.max.max(s.jobs);
        self.commit_micros += s.commit_time.as_micros() as u64;
        self.durable_micros += s.durable_time.as_micros() as u64;
        if s.sync.seq != self.last_flush {
            self.last_flush = s.sync.seq;
            self.flushes += 1;
            self.flush_micros += s.sync.sync_time.as_micros() as u64;
        }
    }

    fn log(&self, what: &str) {
        tracing::info!(
            batches = self.batches,
            batch_jobs = self.jobs,
            batch_mean = mean(self.jobs, self.batches),
            batch_max = self.max,
            commit_ms_mean = mean_ms(self.commit_micros, self.batches),
            flushes = self.flushes,
            flush_jobs_mean = mean(self.jobs, self.flushes),
            flush_ms_mean = mean_ms(self.flush_micros, self.flushes),
            durable_ms_mean = mean_ms(self.durable_micros, self.batches),
            "{what}"
        );
    }
}

/// `n / d` with one decimal, for the totals logged at exit ("0.0" when `d` is 0).
fn mean(n: u64, d: u64) -> String {
    format!("{:.1}", if d > 0 { n as f64 / d as f64 } else { 0.0 })
}

/// `micros / d` in milliseconds with two decimals ("0.00" when `d` is 0).
fn mean_ms(micros: u64, d: u64) -> String {
    format!("{:.2}", if d > 0 { micros as f64 / d as f64 / 1000.0 } else { 0.0 })
}

/// Runs the LMTP server until SIGTERM or Ctrl-C.
pub fn run(g: &super::Globals, a: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = g.config()?;
    let config_path = g.config.clone();
    // Read (or create) the VERP keys now: a bad key file fails the start, not every message.
    rebound::verp_keys::cached(&config.verp)?;
    let conn = rebound::store::open(&config.store.db)
        .map_err(|e| anyhow::anyhow!("{}: {e}", config.store.db.display()))?;
    tracing::info!(db = %config.store.db.display(), "store open");
    let stats = Arc::new(Mutex::new(BatchLog::default()));
    let observer_stats = stats.clone();
    let (writer, writer_thread) = Writer::start(conn, WriterOptions::default(), move |s| {
        let m = rebound::metrics::global();
        m.batch_jobs.observe(s.jobs as f64);
        m.commit_seconds.observe(s.durable_time.as_secs_f64());
        if let Ok(mut log) = observer_stats.lock() {
            log.add(s);
            let due = log.last_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(10));
            if due {
                log.last_log = Some(Instant::now());
                log.log("group commit");
            }
        }
    })?;
    let classifier = Arc::new(SharedClassifier::new(rebound::classify::Classifier::for_server(&config.classify)?));
    // Mail logs named in [follow] are followed beside the LMTP server (same store).
    let followers =
        rebound::maillog::spawn_followers(&config.follow, &config.verp, &config.store.db, classifier.clone());
    let mut delivery = Delivery {
        classifier: classifier.clone(),
        verp: Arc::new(config.verp.clone()),
        writer,
        keep_raw: config.lmtp.keep_raw,
        spool: None,
    };
    // Messages spooled before the last stop are stored before anything is accepted.
    let spool = if config.lmtp.spool {
        let (spool, threads) = rebound::lmtp::spooled::start(&config.store.db, &delivery, config.lmtp.spool_options())?;
        tracing::info!(dir = %rebound::spool::dir_for(&config.store.db).display(), "intake spool open");
        delivery.spool = Some(spool.clone());
        Some((spool, threads))
    } else {
        None
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(rebound::lmtp::worker_threads())
        .enable_all()
        .build()?;
    let served = runtime.block_on(async move {
        // Handlers first: a SIGTERM that arrives once we listen must drain, not kill.
        let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        // SIGHUP (systemctl reload) re-reads the config's [classify] rules; without a
        // handler its default action would kill the server.
        let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        tokio::spawn(reload_on_hangup(hup, config_path.clone(), classifier.clone()));
        let (tcp, unix) = if a.listen.is_empty() && a.socket.is_empty() {
            (config.lmtp.listen.clone(), config.lmtp.sockets.clone())
        } else {
            (a.listen, a.socket)
        };
        let endpoints = Endpoints { tcp, unix, inherited: rebound::systemd::listen_fds() };
        let server = Server::bind(&config.lmtp, endpoints, delivery).await?;
        for address in server.local_addrs() {
            tracing::info!(%address, "listening");
        }
        if let Some(addr) = &config.metrics.metrics_listen {
            let listener = rebound::metrics::bind(addr).await?;
            tracing::info!(address = %listener.local_addr()?, "metrics endpoint");
            tokio::spawn(rebound::metrics::serve(listener));
        }
        rebound::systemd::notify("READY=1");
        server.run(shutdown_signal(term)).await;
        rebound::systemd::notify("STOPPING=1");
        anyhow::Ok(())
    });
    // The server (and with it every Writer handle) is gone: the writer drains and stops.
    runtime.shutdown_timeout(Duration::from_secs(1));
    if let Some((spool, threads)) = spool {
        // Everything acknowledged goes into the store before the writer stops.
        let emptied = threads.close();
        let s = spool.stats();
        tracing::info!(
            spool_flushes = s.flushes,
            spool_records = s.records,
            spool_flush_records_mean = mean(s.records, s.flushes),
            spool_flush_ms_mean = mean_ms(s.flush_micros, s.flushes),
            spool_applies = s.applies,
            spool_apply_records_mean = mean(s.applied_records, s.applies),
            spool_direct = s.direct,
            spool_read_back = s.spilled_records,
            emptied,
            "spool totals"
        );
    }
    for follower in followers {
        follower.stop();
    }
    writer_thread.join();
    if let Ok(log) = stats.lock() {
        log.log("group commit totals");
    }
    served?;
    Ok(ExitCode::SUCCESS)
}

/// Rebuilds the classifier from the configuration file on every SIGHUP; a broken file
/// is logged and the rules in force stay.
async fn reload_on_hangup(mut hup: tokio::signal::unix::Signal, config: Option<PathBuf>, classifier: Arc<SharedClassifier>) {
    while hup.recv().await.is_some() {
        // Compiling the rules takes a while: off the (possibly single) worker thread.
        let (config, classifier) = (config.clone(), classifier.clone());
        let reloaded = tokio::task::spawn_blocking(move || {
            rebound::config::Config::load(config.as_deref())
                .map_err(|e| e.to_string())
                .and_then(|c| classifier.reload(&c.classify).map_err(|e| e.to_string()))
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        match reloaded {
            Ok(rules) => tracing::info!(rules, "SIGHUP: classification rules reloaded"),
            Err(e) => tracing::error!(error = %e, "SIGHUP: reload failed; the rules in force stay"),
        }
    }
}

/// Resolves on SIGTERM (through the handler installed at start) or Ctrl-C (SIGINT).
async fn shutdown_signal(mut term: tokio::signal::unix::Signal) {
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received"),
    }
}
