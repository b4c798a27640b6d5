//! The `smtpd` binary: smtpd alone, on a data dir the other daemons may
//! share. See the library's documentation for what it does.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use common::daemon::{load_config, Process};

#[derive(Parser)]
#[command(
    name = "smtpd",
    version,
    about = "Postern's SMTP daemon and queue manager"
)]
struct Args {
    #[arg(long, env = "POSTERN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[arg(long, env = "POSTERN_CONFIG")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("smtpd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(args));
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("smtpd: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let config = load_config(args.config.as_deref(), args.data_dir)?;
    let process = Process::prepare(config)?;
    let store = store::Store::open(&process.config.data_dir).map_err(|e| e.to_string())?;
    let ctx = Arc::new(smtpd::SmtpContext {
        config: process.config.clone(),
        store,
        tls: Some(process.tls.clone()),
        throttle: process.throttle.clone(),
        queue: smtpd::QueueHandle::default(),
    });
    let bound = smtpd::start(ctx, process.shutdown.clone(), &process.tracker)
        .await
        .map_err(|e| e.to_string())?;
    for b in &bound {
        process.announce(b.role.name(), b.addr, "");
    }
    process.announce_ready();
    process.run_until_shutdown().await;
    Ok(())
}
