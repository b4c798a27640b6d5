//! What every daemon process does around its sessions: find the
//! configuration, set up logging, TLS, the login throttle and signal
//! handling; announce what listens where; and shut down gracefully.
//! `postern up` and the single-daemon binaries (`smtpd`, …) share it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::sasl::AuthThrottle;
use crate::tls::TlsAcceptor;

/// Reads the configuration: `config` if given (an error if it cannot be
/// read), else built-in defaults; `data_dir` overrides the file's.
pub fn load_config(config: Option<&Path>, data_dir: Option<PathBuf>) -> Result<Config, String> {
    let mut loaded = match config {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    if let Some(dir) = data_dir {
        loaded.data_dir = dir;
    }
    Ok(loaded)
}

/// A running daemon process's shared parts.
pub struct Process {
    pub config: Arc<Config>,
    pub tls: TlsAcceptor,
    pub throttle: Arc<AuthThrottle>,
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
        Ok(Process {
            throttle: Arc::new(AuthThrottle::new(&config.auth)),
            config: Arc::new(config),
            tls,
            shutdown: crate::shutdown::on_signal(),
            tracker: TaskTracker::new(),
            started: Instant::now(),
        })
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
