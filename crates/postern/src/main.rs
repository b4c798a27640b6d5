//! # postern — the command
//!
//! `postern up` runs every daemon in one process; the other subcommands
//! administer the store (users, domains, aliases), show what arrived
//! (`mail`) and what waits to be delivered (`queue`, which also retries,
//! flushes and deletes queued mail) and `store copy` moves a SQLite store
//! into PostgreSQL. Every subcommand takes
//! `--data-dir` and `--config` before it; errors go to stderr with a
//! non-zero exit code (1 for failures, 2 for usage).
#![forbid(unsafe_code)]

mod admin;
mod store_cmd;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, Parser, Subcommand};
use common::daemon::{load_config, run_main, serve};

#[derive(Parser)]
#[command(
    name = "postern",
    version,
    about = "Postern mail server: SMTP, POP3, IMAP and an HTTP API over one SQLite store"
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
    Up {
        /// Capture mode: accept mail for every address on every domain,
        /// keep it (a mailbox per recipient) and never relay it; the same
        /// as `[capture] enabled = true`. `POSTERN_CAPTURE` takes `1`,
        /// `true`, `yes`, `on` (and `0`, `false`, `no`, `off`), as every
        /// boolean config variable does.
        #[arg(
            long,
            env = "POSTERN_CAPTURE",
            action = clap::ArgAction::SetTrue,
            value_parser = clap::builder::BoolishValueParser::new()
        )]
        capture: bool,
    },
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
    /// See and manage the delivery queue.
    ///
    /// A running queue manager (`postern up`, `smtpd`) looks at the queue
    /// every few seconds (at most five), so what `retry` and `flush` make due
    /// is tried within that time.
    #[command(subcommand)]
    Queue(admin::QueueCommand),
    /// The store itself: copy a SQLite store into PostgreSQL.
    #[command(subcommand)]
    Store(store_cmd::StoreCommand),
    /// Print the `user.js` line that points a Thunderbird on this machine
    /// at this server's autoconfig (the HTTP listener of the config).
    Autoconfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    run_main("postern", async move {
        let config = load_config(&Cli::command(), cli.config.as_deref(), cli.data_dir)?;
        match cli.command {
            Command::Up { capture } => up(config, capture).await,
            Command::User(cmd) => admin::user(&config, cmd).await,
            Command::Domain(cmd) => admin::domain(&config, cmd).await,
            Command::Alias(cmd) => admin::alias(&config, cmd).await,
            Command::Mail(cmd) => admin::mail(&config, cmd).await,
            Command::Queue(cmd) => admin::queue(&config, cmd).await,
            Command::Store(cmd) => store_cmd::store(&config, cmd).await,
            Command::Autoconfig => autoconfig(&config),
        }
    })
}

/// `postern autoconfig`: Thunderbird's `mailnews.auto_config_url` set to
/// this server's `/autoconfig/v1.1/`, which answers for the local domains
/// with the ports of the config.
fn autoconfig(config: &common::config::Config) -> Result<(), String> {
    let http = &config.http;
    let (scheme, addr) = match (http.listen.first(), http.https_listen.first()) {
        (Some(addr), _) if !http.tls => ("http", addr),
        (Some(addr), _) => ("https", addr),
        (None, Some(addr)) => ("https", addr),
        (None, None) => return Err("no HTTP listener is configured ([http] listen)".into()),
    };
    // A wildcard bind is reached through the host name.
    let host = if addr.ip().is_unspecified() {
        format!("{}:{}", config.hostname, addr.port())
    } else {
        addr.to_string()
    };
    println!("// In Thunderbird's profile directory, in user.js (Thunderbird closed):");
    println!("user_pref(\"mailnews.auto_config_url\", \"{scheme}://{host}/autoconfig/v1.1/\");");
    Ok(())
}

/// `postern up`: every daemon built so far, in one process, on one store,
/// TLS acceptor and login throttle.
async fn up(mut config: common::config::Config, capture: bool) -> Result<(), String> {
    config.capture.enabled |= capture;
    // Printed below when made here: tests log in with it.
    let generated = if config.capture.enabled && config.capture.password.is_none() {
        let mut bytes = [0u8; 9];
        getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
        let password = hex::encode(bytes);
        config.capture.password = Some(password.clone());
        Some(password)
    } else {
        None
    };
    serve(config, |process| {
        let store = admin::open_store(&process.config);
        // One set of failure rules for the process: smtpd applies them,
        // the HTTP API sets them.
        let rules = common::rules::Rules::new(&process.config.rules);
        let (shutdown, tracker) = (process.shutdown.clone(), process.tracker.clone());
        let contexts = store.map(|store| {
            let shared = process.shared(store);
            let smtp = Arc::new(smtpd::SmtpContext {
                shared: shared.clone(),
                queue: smtpd::QueueHandle::default(),
                rules: rules.clone(),
                events: process.events.clone(),
            });
            let pop3 = Arc::new(pop3d::Pop3Context::new(shared.clone()));
            let imap = Arc::new(imapd::ImapContext::new(shared.clone()));
            let http = Arc::new(httpd::HttpContext::new(
                shared,
                process.events.clone(),
                Some(rules),
            ));
            (smtp, pop3, imap, http)
        });
        async move {
            let (smtp, pop3, imap, http) = contexts?;
            let capture = &smtp.shared.config.capture;
            if let (true, Some(password)) = (capture.enabled, capture.password.as_deref()) {
                smtp.shared
                    .store
                    .set_capture_password(password)
                    .await
                    .map_err(|e| format!("capture password: {e}"))?;
                let login = match generated.as_deref() {
                    Some(password) => format!("password {password}"),
                    None => "the [capture] password".to_owned(),
                };
                println!(
                    "postern: capture mode: mail for every address is kept, none relayed; \
                     captured addresses log in (IMAP, POP3) with {login}"
                );
            }
            let mut announced: Vec<_> = smtpd::start(smtp, shutdown.clone(), &tracker)
                .await
                .map_err(|e| e.to_string())?
                .iter()
                .map(smtpd::Bound::announcement)
                .collect();
            announced.extend(
                pop3d::start(pop3, shutdown.clone(), &tracker)
                    .await
                    .map_err(|e| e.to_string())?
                    .iter()
                    .map(pop3d::Bound::announcement),
            );
            announced.extend(
                imapd::start(imap, shutdown.clone(), &tracker)
                    .await
                    .map_err(|e| e.to_string())?
                    .iter()
                    .map(imapd::Bound::announcement),
            );
            // Autoconfig tells mail clients the ports really listening.
            let _ = http.listeners.set(
                announced
                    .iter()
                    .map(|a| (a.name.to_owned(), a.addr))
                    .collect(),
            );
            announced.extend(
                httpd::start(http, shutdown, &tracker)
                    .await
                    .map_err(|e| e.to_string())?
                    .iter()
                    .map(httpd::Bound::announcement),
            );
            Ok(announced)
        }
    })
    .await
}
