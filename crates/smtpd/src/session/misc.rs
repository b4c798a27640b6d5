//! STARTTLS and HELP.

use super::{End, Session};
use crate::reply::{self, Reply};

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
        self.reply(Reply::multiline(
            214,
            Some("2.0.0"),
            vec![
                "Postern SMTP; commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH".to_string(),
                "See RFC 5321".to_string(),
            ],
        ));
    }
}
