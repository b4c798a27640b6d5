//! The `pop3d` binary: pop3d alone, on a data dir the other daemons may
//! share. See the library's documentation for what it does.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    common::daemon::daemon_main("pop3d", "Postern's POP3 daemon", |run| async move {
        let ctx = pop3d::Pop3Context::new(run.shared);
        pop3d::start(Arc::new(ctx), run.shutdown, &run.tracker).await
    })
}
