//! # postern — the command
//!
//! `postern up` runs every daemon in one process; the other subcommands
//! administer the store (users, domains, aliases), show what arrived
//! (`mail`) and what waits to be delivered (`queue`). Every subcommand takes
//! `--data-dir` and `--config` before it; errors go to stderr with a
//! non-zero exit code (1 for failures, 2 for usage).
#![forbid(unsafe_code)]

mod admin;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use common::daemon::{load_config, Process};

#[derive(Parser)]
#[command(
    name = "postern",
    version,
    about = "Postern mail server: SMTP, POP3 and IMAP over one SQLite store"
)]
struct Cli {
    /// Data directory (default ./postern-data, or the config file's).
    #[arg(long, global = true, env = "POSTERN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Configuration file (TOML); none is needed.
    #[arg(long, global = true, env = "POSTERN_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every daemon in the foreground until SIGINT/SIGTERM.
    Up,
    /// Manage accounts.
    #[command(subcommand)]
    User(admin::UserCommand),
    /// Manage local domains.
    #[command(subcommand)]
    Domain(admin::DomainCommand),
    /// Manage aliases.
    #[command(subcommand)]
    Alias(admin::AliasCommand),
    /// See what arrived in a mailbox.
    #[command(subcommand)]
    Mail(admin::MailCommand),
    /// See the delivery queue.
    #[command(subcommand)]
    Queue(admin::QueueCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match load_config(cli.config.as_deref(), cli.data_dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("postern: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("postern: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Up => up(config).await,
            Command::User(cmd) => admin::user(&config, cmd).await,
            Command::Domain(cmd) => admin::domain(&config, cmd).await,
            Command::Alias(cmd) => admin::alias(&config, cmd).await,
            Command::Mail(cmd) => admin::mail(&config, cmd).await,
            Command::Queue(cmd) => admin::queue(&config, cmd).await,
        }
    });
    // Sessions cut off after the grace time must not keep the process.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("postern: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `postern up`: every daemon built so far, in one process.
async fn up(config: common::config::Config) -> Result<(), String> {
    let process = Process::prepare(config)?;
    let store = admin::open_store(&process.config)?;
    let smtp = Arc::new(smtpd::SmtpContext {
        config: process.config.clone(),
        store: store.clone(),
        tls: Some(process.tls.clone()),
        throttle: process.throttle.clone(),
        queue: smtpd::QueueHandle::default(),
    });
    let bound = smtpd::start(smtp, process.shutdown.clone(), &process.tracker)
        .await
        .map_err(|e| e.to_string())?;
    for b in &bound {
        let note = match b.role {
            smtpd::Role::Mx => "",
            smtpd::Role::Submission => "STARTTLS, AUTH",
            smtpd::Role::Submissions => "implicit TLS, AUTH",
        };
        process.announce(b.role.name(), b.addr, note);
    }
    let pop3 = Arc::new(pop3d::Pop3Context::new(
        process.config.clone(),
        store.clone(),
        Some(process.tls.clone()),
        process.throttle.clone(),
    ));
    let bound = pop3d::start(pop3, process.shutdown.clone(), &process.tracker)
        .await
        .map_err(|e| e.to_string())?;
    for b in &bound {
        process.announce(b.role.name(), b.addr, b.role.note());
    }
    process.announce_ready();
    process.run_until_shutdown().await;
    Ok(())
}
