//! The `pop3d` binary: pop3d alone, on a data dir the other daemons may
//! share. See the library's documentation for what it does.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, Parser};
use common::daemon::{load_config, open_store, run_main, serve, DaemonArgs};

#[derive(Parser)]
#[command(name = "pop3d", version, about = "Postern's POP3 daemon")]
struct Args {
    #[command(flatten)]
    daemon: DaemonArgs,
}

fn main() -> ExitCode {
    let args = Args::parse().daemon;
    run_main("pop3d", async move {
        let config = load_config(&Args::command(), args.config.as_deref(), args.data_dir)?;
        serve(config, |process| {
            let store = open_store(&process.config);
            let ctx = store.map(|store| {
                Arc::new(pop3d::Pop3Context::new(
                    process.config.clone(),
                    store,
                    Some(process.tls.clone()),
                    process.throttle.clone(),
                ))
            });
            let (shutdown, tracker) = (process.shutdown.clone(), process.tracker.clone());
            async move {
                let bound = pop3d::start(ctx?, shutdown, &tracker)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(bound.iter().map(pop3d::Bound::announcement).collect())
            }
        })
        .await
    })
}
