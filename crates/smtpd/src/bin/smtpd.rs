//! The `smtpd` binary: smtpd alone, on a data dir the other daemons may
//! share. See the library's documentation for what it does.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, Parser};
use common::daemon::{load_config, open_store, run_main, serve, DaemonArgs};

#[derive(Parser)]
#[command(
    name = "smtpd",
    version,
    about = "Postern's SMTP daemon and queue manager"
)]
struct Args {
    #[command(flatten)]
    daemon: DaemonArgs,
}

fn main() -> ExitCode {
    let args = Args::parse().daemon;
    run_main("smtpd", async move {
        let config = load_config(&Args::command(), args.config.as_deref(), args.data_dir)?;
        serve(config, |process| {
            let store = open_store(&process.config);
            let rules = common::rules::Rules::new(&process.config.rules);
            let ctx = store.map(|store| {
                Arc::new(smtpd::SmtpContext {
                    config: process.config.clone(),
                    store,
                    tls: Some(process.tls.clone()),
                    throttle: process.throttle.clone(),
                    queue: smtpd::QueueHandle::default(),
                    rules: rules.clone(),
                    events: process.events.clone(),
                })
            });
            let (shutdown, tracker) = (process.shutdown.clone(), process.tracker.clone());
            async move {
                let bound = smtpd::start(ctx?, shutdown, &tracker)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(bound.iter().map(smtpd::Bound::announcement).collect())
            }
        })
        .await
    })
}
