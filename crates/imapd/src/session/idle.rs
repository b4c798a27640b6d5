//! IDLE (RFC 2177): after `+ idling`, the session reports every change to
//! the selected mailbox as it happens (a store commit in this process at
//! once; in another process within the store's poll interval), and what it
//! does to searches kept live (CONTEXT=SEARCH's ADDTO and REMOVEFROM),
//! until the client sends `DONE`.
//!
//! While idling the session holds no read buffer beyond what the socket
//! delivered, so a thousand idle clients stay cheap. IDLE ends by
//! autologout after `[imap] idle_command_timeout_secs` (default 3600;
//! clients re-issue IDLE every 29 minutes, RFC 2177) or at shutdown.

use std::time::Duration;

/// Room made for input while idling: enough for `DONE` and a little more.
const IDLE_CHUNK: usize = 64;

use common::transport::Line;

use super::{End, Session};
use crate::protocol::encode;
use crate::protocol::Tag;

impl Session {
    pub(super) async fn idle(&mut self, tag: &Tag) -> Result<(), End> {
        encode::continuation(&mut self.io.output, "idling");
        // With NOTIFY on and no events asked for the selected mailbox,
        // nothing about it (RFC 5465 3.1).
        let muted = self.selected_muted();
        if !muted {
            self.sync_mailbox(true).await;
        }
        self.flush().await?;
        self.io.release_buffers();
        let timeout = Duration::from_secs(self.ctx.shared.config.imap.idle_command_timeout_secs);
        let deadline = tokio::time::Instant::now() + timeout;
        let shutdown = self.io.shutdown_token().clone();
        loop {
            // `DONE` may already be here (pipelined, or read with IDLE).
            match self.io.take_line() {
                Some(Line::Complete(line)) if line.trim_ascii().eq_ignore_ascii_case(b"DONE") => {
                    break
                }
                Some(_) => {
                    // Anything else ends IDLE with an error (RFC 2177).
                    self.bad(tag, "Expected DONE");
                    return Ok(());
                }
                None => {}
            }
            tokio::select! {
                read = self.io.read_more(IDLE_CHUNK) => {
                    read?;
                }
                changed = super::updates::selected_changed(&mut self.changes), if !muted => {
                    if !changed {
                        return Err(End::Shutdown);
                    }
                    // `changed()` marked the change seen: report it now.
                    let before = self.view_for_updates();
                    if let Some((account, mailbox)) = self.selected_mailbox() {
                        self.report_changes(account, mailbox, true).await;
                    }
                    if self.closing {
                        return Ok(());
                    }
                    // Live search results (RFC 5267) as they change.
                    self.report_updates(before).await?;
                    self.flush().await?;
                }
                // NOTIFY's events for other mailboxes (RFC 5465 4).
                () = Session::notify_account_moved(&mut self.notify) => {
                    self.notify_during_idle().await?;
                }
                () = tokio::time::sleep_until(deadline) => return Err(End::Timeout),
                () = shutdown.cancelled() => return Err(End::Shutdown),
            }
        }
        self.ok(tag, "IDLE terminated");
        Ok(())
    }
}
