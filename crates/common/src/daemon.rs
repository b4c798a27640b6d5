//! What every daemon process does around its sessions: find the
//! configuration, set up logging, TLS, the login throttle and signal
//! handling; announce what listens where; and shut down gracefully.
//! `postern up` and the single-daemon binaries (`smtpd`, `pop3d`, …) share
//! it: a daemon binary is its own `start` and nothing else.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::listener::{self, Bound, ListenerRole, Service};
use crate::login::Gate;
use crate::sasl::AuthThrottle;
use crate::tls::TlsAcceptor;

/// The flags every daemon binary takes.
#[derive(Debug, Clone, clap::Args)]
pub struct DaemonArgs {
    /// Data directory (default ./postern-data, or the config file's).
    #[arg(long, env = "POSTERN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Configuration file (TOML); none is needed.
    #[arg(long, env = "POSTERN_CONFIG")]
    pub config: Option<PathBuf>,
}

/// One listener to announce: `postern: NAME listening on ADDR (NOTE)`.
#[derive(Debug, Clone)]
pub struct Announcement {
    pub name: &'static str,
    pub addr: SocketAddr,
    pub note: &'static str,
}

/// A command's `main`: runs `work` on a multi-threaded runtime and turns
/// its outcome into an exit code, printing `NAME: error` on failure.
/// Sessions still running when `work` returns are given up after a second.
pub fn run_main(name: &str, work: impl Future<Output = Result<(), String>>) -> ExitCode {
    crate::memory::pin_mmap_threshold();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name}: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(work);
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What every session of every daemon in a process uses: the
/// configuration, the store, TLS (STARTTLS and the implicit-TLS
/// listeners) and the login throttle, one for the process so that an
/// address's failed logins count in every protocol. Each daemon's context
/// holds it beside what is the daemon's own.
#[derive(Clone)]
pub struct Shared {
    pub config: Arc<Config>,
    pub store: store::Store,
    /// `None` disables STARTTLS and the implicit-TLS listeners.
    pub tls: Option<TlsAcceptor>,
    pub throttle: Arc<AuthThrottle>,
}

impl Shared {
    /// What the login path needs for a client at `peer`.
    pub fn gate(&self, peer: IpAddr) -> Gate {
        Gate::new(&self.config, &self.throttle, &self.store, peer)
    }

    /// Binds every listener of `plan` with this process's TLS and
    /// `[limits]`, all served by `service` (see [`listener::start`]).
    pub async fn listen<R: ListenerRole, S: Service>(
        &self,
        plan: &[(R, &[SocketAddr])],
        service: Arc<S>,
        shutdown: &CancellationToken,
        tracker: &TaskTracker,
    ) -> std::io::Result<Vec<Bound<R>>> {
        let limits = &self.config.limits;
        listener::start(plan, self.tls.as_ref(), limits, shutdown, tracker, |_| {
            service.clone()
        })
        .await
    }
}

/// What a single daemon's start gets from [`daemon_main`]: the process's
/// shared parts and the opened store, owned, so that the start may keep
/// them.
pub struct Launch {
    pub shared: Shared,
    pub events: crate::events::EventBus,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
}

/// The whole `main` of a daemon binary (`smtpd`, `pop3d`, `imapd`,
/// `httpd`): the [`DaemonArgs`] flags, the configuration, the store in
/// the data dir; then `start` builds the daemon's context and binds its
/// listeners, which are announced, and the process runs until
/// SIGINT/SIGTERM.
pub fn daemon_main<R, Fut>(
    name: &'static str,
    about: &'static str,
    start: impl FnOnce(Launch) -> Fut,
) -> ExitCode
where
    R: ListenerRole,
    Fut: Future<Output = std::io::Result<Vec<Bound<R>>>>,
{
    use clap::{Args as _, FromArgMatches as _};
    // After the flags, whose doc comment would otherwise be the `about`.
    let cli = DaemonArgs::augment_args(clap::Command::new(name))
        .version(env!("CARGO_PKG_VERSION"))
        .about(about);
    let args = match DaemonArgs::from_arg_matches(&cli.clone().get_matches()) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    run_main(name, async move {
        let config = load_config(&cli, args.config.as_deref(), args.data_dir)?;
        serve(config, |process| {
            let launch = open_store(&process.config).map(|store| Launch {
                shared: process.shared(store),
                events: process.events.clone(),
                shutdown: process.shutdown.clone(),
                tracker: process.tracker.clone(),
            });
            async move {
                let bound = start(launch?).await.map_err(|e| e.to_string())?;
                Ok(bound.iter().map(Bound::announcement).collect())
            }
        })
        .await
    })
}

/// A daemon's whole life: prepares the process, lets `start` bind and
/// spawn its listeners (on `process.tracker`, stopping on
/// `process.shutdown`), announces them, and runs until SIGINT/SIGTERM.
pub async fn serve<F, Fut>(config: Config, start: F) -> Result<(), String>
where
    F: FnOnce(&Process) -> Fut,
    Fut: Future<Output = Result<Vec<Announcement>, String>>,
{
    let process = Process::prepare(config)?;
    for a in start(&process).await? {
        process.announce(a.name, a.addr, a.note);
    }
    process.announce_ready();
    process.run_until_shutdown().await;
    Ok(())
}

/// Reads the configuration: `config` if given (an error if it cannot be
/// read), else built-in defaults; then every `POSTERN_…` variable of the
/// environment that names a config key (see [`Config::load_with_env`]),
/// except those `cli` reads itself (its `env = …` arguments); then
/// `data_dir` over all of them.
pub fn load_config(
    cli: &clap::Command,
    config: Option<&Path>,
    data_dir: Option<PathBuf>,
) -> Result<Config, String> {
    let reserved = cli_env_names(cli);
    let reserved: Vec<&str> = reserved.iter().map(String::as_str).collect();
    let mut vars = Vec::new();
    for (name, value) in std::env::vars_os() {
        // A name that is not UTF-8 cannot be one of ours.
        let Ok(name) = name.into_string() else {
            continue;
        };
        if !name.starts_with(crate::config::ENV_PREFIX) {
            continue;
        }
        let value = value
            .into_string()
            .map_err(|_| format!("environment variable {name}: not UTF-8"))?;
        vars.push((name, value));
    }
    let mut loaded = Config::load_with_env(config, vars, &reserved).map_err(|e| e.to_string())?;
    if let Some(dir) = data_dir {
        loaded.data_dir = dir;
    }
    Ok(loaded)
}

/// The environment variables a command line reads (clap's `env = …`), in
/// the command and all its subcommands.
pub fn cli_env_names(cli: &clap::Command) -> Vec<String> {
    let mut names: Vec<String> = cli
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .filter_map(|name| name.to_str().map(str::to_string))
        .collect();
    for sub in cli.get_subcommands() {
        names.extend(cli_env_names(sub));
    }
    names.sort();
    names.dedup();
    names
}

/// Opens the store in the configured data dir, with the configured
/// bounds on its history, size, work queues and caches (`[store]`).
pub fn open_store(config: &Config) -> Result<store::Store, String> {
    let s = &config.store;
    let options = store::StoreOptions {
        prune: store::PruneOptions {
            keep_changes: s.changes_keep,
            max_age: Duration::from_secs(s.changes_max_age_secs),
            batch: s.prune_batch,
            interval: Duration::from_secs(s.prune_interval_secs),
        },
        max_size: s.max_size_mb.saturating_mul(1024 * 1024),
        writer_queue: s.writer_queue,
        reader_queue: s.reader_queue,
        password_queue: s.password_queue,
        index_cache_bytes: s.index_cache_mb.saturating_mul(1024 * 1024),
        envelope_cache_bytes: s.envelope_cache_mb.saturating_mul(1024 * 1024),
        search_fields_cache_bytes: s.search_fields_cache_mb.saturating_mul(1024 * 1024),
        arrival_list_cache_bytes: s.arrival_list_cache_mb.saturating_mul(1024 * 1024),
        reader_cache_bytes: s.reader_cache_kb.saturating_mul(1024),
        checkpoint_bytes: s.checkpoint_kb.saturating_mul(1024),
        sync_every_commit: s.sync_every_commit,
        postgres_url: s.postgres_url()?,
        postgres_ca_file: s.ca_file.clone(),
        ..store::StoreOptions::default()
    };
    let postgres = options.postgres_url.is_some();
    store::Store::open_with(&config.data_dir, options).map_err(|e| {
        if postgres {
            format!("cannot open the store in PostgreSQL ([store] url): {e}")
        } else {
            format!(
                "cannot open the store in {}: {e}",
                config.data_dir.display()
            )
        }
    })
}

/// A running daemon process's shared parts.
pub struct Process {
    pub config: Arc<Config>,
    pub tls: TlsAcceptor,
    pub throttle: Arc<AuthThrottle>,
    /// What daemons tell each other about mail (httpd's event stream).
    pub events: crate::events::EventBus,
    /// Cancelled on SIGINT/SIGTERM (or by the caller).
    pub shutdown: CancellationToken,
    /// Every listener, session and background task of the process.
    pub tracker: TaskTracker,
    started: Instant,
}

impl Process {
    /// Sets up logging, the data dir, TLS and signals. Call inside a tokio
    /// runtime.
    pub fn prepare(config: Config) -> Result<Process, String> {
        crate::logging::init(&config.log);
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| format!("cannot create data dir {}: {e}", config.data_dir.display()))?;
        let tls =
            crate::tls::acceptor(&config.tls, &config.data_dir).map_err(|e| format!("TLS: {e}"))?;
        // Before the store's threads start allocating.
        crate::memory::limit_arenas(config.memory.arena_max);
        let shutdown = crate::shutdown::on_signal();
        let tracker = TaskTracker::new();
        crate::memory::Trimmer::start(
            Duration::from_millis(config.memory.trim_interval_ms),
            &shutdown,
            &tracker,
        );
        Ok(Process {
            throttle: Arc::new(AuthThrottle::new(&config.auth)),
            events: crate::events::EventBus::default(),
            config: Arc::new(config),
            tls,
            shutdown,
            tracker,
            started: Instant::now(),
        })
    }

    /// The parts every daemon's sessions share, over `store`.
    pub fn shared(&self, store: store::Store) -> Shared {
        Shared {
            config: self.config.clone(),
            store,
            tls: Some(self.tls.clone()),
            throttle: self.throttle.clone(),
        }
    }

    /// Prints one listener on stdout: `postern: smtp listening on
    /// 127.0.0.1:2525`. Scripts and tests read these lines.
    pub fn announce(&self, name: &str, addr: SocketAddr, note: &str) {
        let note = if note.is_empty() {
            String::new()
        } else {
            format!(" ({note})")
        };
        println!("postern: {name} listening on {addr}{note}");
    }

    /// Prints `postern: ready …` once everything listens.
    pub fn announce_ready(&self) {
        println!(
            "postern: ready in {} ms (data dir {})",
            self.started.elapsed().as_millis(),
            self.config.data_dir.display()
        );
    }

    /// Waits for the shutdown signal, then gives sessions the configured
    /// grace time to finish. Returns false if some had to be cut off.
    pub async fn run_until_shutdown(self) -> bool {
        self.shutdown.cancelled().await;
        tracing::info!("shutting down");
        let grace = Duration::from_secs(self.config.limits.shutdown_grace_secs);
        let finished = crate::listener::drain(&self.tracker, grace).await;
        if !finished {
            tracing::warn!(
                "sessions still open after {} s; closing them",
                grace.as_secs()
            );
        }
        finished
    }
}
