//! The `httpd` binary: the HTTP API alone, on a data dir the other daemons
//! may share. See the library's documentation for what it serves.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    common::daemon::daemon_main("httpd", "Postern's HTTP API", |run| async move {
        let ctx = httpd::HttpContext::new(
            run.shared, run.events,
            // Failure rules act only on an smtpd in this process.
            None,
        );
        httpd::start(Arc::new(ctx), run.shutdown, &run.tracker).await
    })
}
