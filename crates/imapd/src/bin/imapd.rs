//! The `imapd` binary: imapd alone, on a data dir the other daemons may
//! share. See the library's documentation for what it does.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    common::daemon::daemon_main("imapd", "Postern's IMAP daemon", |run| async move {
        let ctx = imapd::ImapContext::new(run.shared);
        imapd::start(Arc::new(ctx), run.shutdown, &run.tracker).await
    })
}
