//! The TRANSACTION state's commands: STAT, LIST, UIDL, RETR, TOP, DELE and
//! RSET, all over the snapshot taken at login.

use super::maildrop::INBOX;
use super::{store_code, End, Session, State};
use crate::protocol::{self, MessageEncoder};

/// RETR and TOP encode the message in pieces this big, writing out between
/// them, so a big message is never held twice.
const PIECE: usize = 64 * 1024;

impl Session {
    pub(super) fn stat(&mut self) {
        let State::Transaction(maildrop) = &self.state else {
            return;
        };
        let (count, octets) = maildrop.stat();
        protocol::ok(&mut self.io.output, &format!("{count} {octets}"));
    }

    pub(super) fn list(&mut self, n: Option<u32>) {
        let State::Transaction(maildrop) = &self.state else {
            return;
        };
        match n {
            Some(n) => match maildrop.get(n) {
                Ok(m) => protocol::ok(&mut self.io.output, &format!("{n} {}", m.size)),
                Err(e) => protocol::err(&mut self.io.output, None, &e.text(n)),
            },
            None => {
                let (count, octets) = maildrop.stat();
                let lines = maildrop.live().map(|(n, m)| format!("{n} {}", m.size));
                protocol::multiline(
                    &mut self.io.output,
                    &format!("{count} messages ({octets} octets)"),
                    lines,
                );
            }
        }
    }

    pub(super) fn uidl(&mut self, n: Option<u32>) {
        let State::Transaction(maildrop) = &self.state else {
            return;
        };
        let validity = maildrop.uid_validity;
        match n {
            Some(n) => match maildrop.get(n) {
                Ok(m) => protocol::ok(
                    &mut self.io.output,
                    &format!("{n} {}", protocol::unique_id(validity, m.uid.0)),
                ),
                Err(e) => protocol::err(&mut self.io.output, None, &e.text(n)),
            },
            None => {
                let lines = maildrop
                    .live()
                    .map(|(n, m)| format!("{n} {}", protocol::unique_id(validity, m.uid.0)));
                protocol::multiline(&mut self.io.output, "Unique-ID listing follows", lines);
            }
        }
    }

    /// The answer for a message another client removed meanwhile.
    fn message_gone(&mut self, n: u32) {
        self.err(
            None,
            &format!("Message {n} is no longer available: another client removed it"),
        );
    }

    /// RETR (`top` is `None`) and TOP: the message, or its header and first
    /// lines, from the store. Only RETR marks the message retrieved.
    pub(super) async fn retr(&mut self, n: u32, top: Option<u32>) -> Result<(), End> {
        let State::Transaction(maildrop) = &mut self.state else {
            return Ok(());
        };
        let account = maildrop.account.id;
        let (uid, size) = match maildrop.get(n) {
            Ok(m) => (m.uid, m.size),
            Err(e) => {
                let text = e.text(n);
                self.err(None, &text);
                return Ok(());
            }
        };
        let raw = match maildrop.raw(&self.ctx.shared.store, n, top.is_some()).await {
            Ok(Some(raw)) => raw,
            Ok(None) => {
                self.message_gone(n);
                return Ok(());
            }
            Err(e) => {
                tracing::error!(%uid, error = %e, "cannot read message");
                self.err(Some(store_code(&e)), "Cannot read the message");
                return Ok(());
            }
        };
        let part = match top {
            None => {
                self.ok(&format!("{size} octets"));
                &raw[..]
            }
            Some(lines) => {
                // Where the header ends is the store's answer, the one
                // IMAP gives too.
                let header_len = match self
                    .ctx
                    .shared
                    .store
                    .envelopes(account, INBOX, &[uid])
                    .await
                {
                    Ok(found) => found.first().map(|m| m.summary.header_len),
                    Err(e) => {
                        tracing::error!(%uid, error = %e, "cannot read message summary");
                        self.err(Some(store_code(&e)), "Cannot read the message");
                        return Ok(());
                    }
                };
                let Some(header_len) = header_len else {
                    self.message_gone(n);
                    return Ok(());
                };
                self.ok(&format!("Top of message {n} follows"));
                protocol::top_part(&raw, header_len, lines)
            }
        };
        let mut encoder = MessageEncoder::default();
        for piece in part.chunks(PIECE) {
            encoder.encode(piece, &mut self.io.output);
            self.io.flush_if_full().await?;
        }
        encoder.finish(&mut self.io.output);
        if top.is_none() {
            if let State::Transaction(maildrop) = &mut self.state {
                if let Ok(m) = maildrop.get_mut(n) {
                    m.retrieved = true;
                }
            }
        }
        Ok(())
    }

    pub(super) fn dele(&mut self, n: u32) {
        let State::Transaction(maildrop) = &mut self.state else {
            return;
        };
        match maildrop.get_mut(n) {
            Ok(m) => {
                m.deleted = true;
                protocol::ok(&mut self.io.output, &format!("Message {n} deleted"));
            }
            Err(e) => protocol::err(&mut self.io.output, None, &e.text(n)),
        }
    }

    pub(super) fn rset(&mut self) {
        let State::Transaction(maildrop) = &mut self.state else {
            return;
        };
        maildrop.reset();
        let (count, octets) = maildrop.stat();
        protocol::ok(
            &mut self.io.output,
            &format!("Maildrop has {count} messages ({octets} octets)"),
        );
    }
}
