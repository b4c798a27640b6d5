//! STARTTLS and HELP.

use super::{End, Session};
use crate::reply;

impl Session {
    pub(super) async fn starttls(&mut self) -> Result<(), End> {
        if self.is_tls() {
            self.reply(reply::bad_sequence("TLS already active"));
            return Ok(());
        }
        if self.ctx.shared.tls.is_none() {
            self.reply(reply::not_implemented());
            return Ok(());
        }
        self.reply(reply::ready_for_tls());
        self.start_tls().await
    }

    pub(super) fn help(&mut self) {
        self.reply(reply::help());
    }
}
