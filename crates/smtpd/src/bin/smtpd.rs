//! The `smtpd` binary: smtpd alone, on a data dir the other daemons may
//! share. See the library's documentation for what it does.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    common::daemon::daemon_main(
        "smtpd",
        "Postern's SMTP daemon and queue manager",
        |run| async move {
            let ctx = smtpd::SmtpContext {
                rules: common::rules::Rules::new(&run.shared.config.rules),
                shared: run.shared,
                queue: smtpd::QueueHandle::default(),
                events: run.events,
            };
            smtpd::start(Arc::new(ctx), run.shutdown, &run.tracker).await
        },
    )
}
