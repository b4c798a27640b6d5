//! IDLE (RFC 2177): after `+ idling`, the session reports every change to
//! the selected mailbox as it happens (a store commit in this process at
//! once; in another process within the store's poll interval) until the
//! client sends `DONE`.
//!
//! While idling the session holds no read buffer beyond what the socket
//! delivered, so a thousand idle clients stay cheap. IDLE ends by
//! autologout after `[imap] idle_command_timeout_secs` (default 3600;
//! clients re-issue IDLE every 29 minutes, RFC 2177) or at shutdown.

use std::time::Duration;

/// Room made for input while idling: enough for `DONE` and a little more.
const IDLE_CHUNK: usize = 64;

use super::{End, Session};
use crate::protocol::encode;
use crate::protocol::Tag;

impl Session {
    pub(super) async fn idle(&mut self, tag: &Tag) -> Result<(), End> {
        encode::continuation(&mut self.output, "idling");
        self.sync_mailbox(true).await;
        self.flush().await?;
        self.shrink_buffers();
        let timeout = Duration::from_secs(self.ctx.config.imap.idle_command_timeout_secs);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // `DONE` may already be here (pipelined, or read with IDLE).
            if let Some(i) = self.input.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.input.drain(..=i).collect();
                let text = line.trim_ascii();
                if text.eq_ignore_ascii_case(b"DONE") {
                    break;
                }
                // Anything else ends IDLE with an error (RFC 2177).
                self.bad(tag, "Expected DONE");
                return Ok(());
            }
            if self.input.len() > self.limits.max_line {
                self.input.clear();
                self.skip_line = true;
                self.bad(tag, "Expected DONE");
                return Ok(());
            }
            let Some(stream) = self.stream.as_mut() else {
                return Err(End::Disconnected);
            };
            tokio::select! {
                read = super::read_some(stream, &mut self.input, IDLE_CHUNK) => {
                    if read == 0 {
                        return Err(End::Disconnected);
                    }
                }
                changed = super::updates::selected_changed(&mut self.changes) => {
                    if !changed {
                        return Err(End::Shutdown);
                    }
                    // `changed()` marked the change seen: report it now.
                    if let Some((account, mailbox)) = self.selected_mailbox() {
                        self.report_changes(account, mailbox, true).await;
                    }
                    if self.closing {
                        return Ok(());
                    }
                    self.flush().await?;
                }
                () = tokio::time::sleep_until(deadline) => return Err(End::Timeout),
                () = self.shutdown.cancelled() => return Err(End::Shutdown),
            }
        }
        self.ok(tag, "IDLE terminated");
        Ok(())
    }
}
