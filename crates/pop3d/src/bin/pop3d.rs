//! The `pop3d` binary: pop3d alone, on a data dir the other daemons may
//! share. See the library's documentation for what it does.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use common::daemon::{load_config, Process};

#[derive(Parser)]
#[command(name = "pop3d", version, about = "Postern's POP3 daemon")]
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
            eprintln!("pop3d: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(args));
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pop3d: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let config = load_config(args.config.as_deref(), args.data_dir)?;
    let process = Process::prepare(config)?;
    let store = store::Store::open(&process.config.data_dir).map_err(|e| e.to_string())?;
    let ctx = Arc::new(pop3d::Pop3Context::new(
        process.config.clone(),
        store,
        Some(process.tls.clone()),
        process.throttle.clone(),
    ));
    let bound = pop3d::start(ctx, process.shutdown.clone(), &process.tracker)
        .await
        .map_err(|e| e.to_string())?;
    for b in &bound {
        process.announce(b.role.name(), b.addr, b.role.note());
    }
    process.announce_ready();
    process.run_until_shutdown().await;
    Ok(())
}
