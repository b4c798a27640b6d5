//! The `httpd` binary: the HTTP API alone, on a data dir the other daemons
//! may share. See the library's documentation for what it serves.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, Parser};
use common::daemon::{load_config, open_store, run_main, serve, DaemonArgs};

#[derive(Parser)]
#[command(name = "httpd", version, about = "Postern's HTTP API")]
struct Args {
    #[command(flatten)]
    daemon: DaemonArgs,
}

fn main() -> ExitCode {
    let args = Args::parse().daemon;
    run_main("httpd", async move {
        let config = load_config(&Args::command(), args.config.as_deref(), args.data_dir)?;
        serve(config, |process| {
            let store = open_store(&process.config);
            let ctx = store.map(|store| {
                Arc::new(httpd::HttpContext::new(
                    process.config.clone(),
                    store,
                    Some(process.tls.clone()),
                    process.throttle.clone(),
                    process.events.clone(),
                    // Failure rules act only on an smtpd in this process.
                    None,
                ))
            });
            let (shutdown, tracker) = (process.shutdown.clone(), process.tracker.clone());
            async move {
                let bound = httpd::start(ctx?, shutdown, &tracker)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(bound.iter().map(httpd::Bound::announcement).collect())
            }
        })
        .await
    })
}
