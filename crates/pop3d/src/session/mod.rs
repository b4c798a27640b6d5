//! One POP3 session: the I/O loop and the session state.
//!
//! The loop reads lines through a [`Transport`] and answers every complete
//! command buffered before it reads again; replies go to its output buffer,
//! written out only when the loop must wait for input (or when it grows
//! large, as during a big RETR). That is RFC 2449 PIPELINING without special
//! cases: a batch of commands gets its replies as a batch, in order.
//!
//! The states are RFC 1939's: AUTHORIZATION until a login succeeds,
//! TRANSACTION with a [`Maildrop`] after, and UPDATE only at QUIT. A session
//! that ends any other way (the client vanishes, times out, the server shuts
//! down) deletes nothing.
//!
//! Handlers live beside this file: `auth` (USER, PASS, AUTH), `transaction`
//! (STAT, LIST, UIDL, RETR, TOP, DELE, RSET, NOOP), `misc` (CAPA, STLS,
//! QUIT).

mod auth;
pub(crate) mod maildrop;
mod misc;
mod transaction;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::login::LoginState;
use common::tls::MaybeTlsStream;
use common::transport::{Line, Transport};
use tokio_util::sync::CancellationToken;

use crate::protocol::{self, Command, RespCode};
use crate::Pop3Context;
use maildrop::Maildrop;

/// The RFC 3206 code for a store failure, as the store classifies it
/// ([`store::StoreError::is_temporary`], where the table of every daemon's
/// answers is): `SYS/TEMP` when trying again may work (a full store
/// included), `SYS/PERM` for what it will not cure.
pub(crate) fn store_code(error: &store::StoreError) -> RespCode {
    if error.is_temporary() {
        RespCode::SysTemp
    } else {
        RespCode::SysPerm
    }
}

/// Why a session ends (`Timeout` is RFC 1939's autologout timer).
pub(crate) use common::transport::End;

pub(crate) enum State {
    /// Before login; the name from USER, waiting for PASS.
    Authorization {
        user: Option<String>,
    },
    Transaction(Maildrop),
}

pub(crate) struct Session {
    ctx: Arc<Pop3Context>,
    /// The client's stream, the commands read and the replies queued.
    io: Transport<MaybeTlsStream>,
    state: State,
    login_state: LoginState,
    /// Set by a handler when the session must close after its reply.
    closing: bool,
    /// Lines since the last valid command that were not one (unknown,
    /// malformed, too long, or not allowed in this state); at
    /// `pop3.max_bad_commands` the session is closed.
    bad_in_a_row: u32,
}

impl Session {
    pub fn new(
        ctx: Arc<Pop3Context>,
        stream: MaybeTlsStream,
        peer: SocketAddr,
        shutdown: CancellationToken,
    ) -> Session {
        let max_line = ctx.shared.config.pop3.max_line_length.max(16);
        let timeout = Duration::from_secs(ctx.shared.config.pop3.command_timeout_secs);
        Session {
            login_state: LoginState::new(ctx.shared.gate(peer.ip()), timeout),
            ctx,
            io: Transport::new(stream, max_line, timeout, shutdown),
            state: State::Authorization { user: None },
            closing: false,
            bad_in_a_row: 0,
        }
    }

    fn command_timeout(&self) -> Duration {
        Duration::from_secs(self.ctx.shared.config.pop3.command_timeout_secs)
    }

    fn ok(&mut self, text: &str) {
        protocol::ok(&mut self.io.output, text);
    }

    fn err(&mut self, code: Option<RespCode>, text: &str) {
        tracing::debug!(code = code.map(RespCode::as_str), text, "error reply");
        protocol::err(&mut self.io.output, code, text);
    }

    /// Runs the session to its end.
    pub async fn run(mut self) {
        self.ok("Postern POP3 server ready");
        let end = self.command_loop().await;
        match end {
            End::Shutdown => self.err(Some(RespCode::SysTemp), "Server shutting down"),
            End::Timeout => tracing::info!("autologout: idle too long"),
            End::Done | End::Disconnected => {}
        }
        if end != End::Disconnected {
            self.io.goodbye().await;
        }
        // QUIT leaves the TRANSACTION state; still in it, nothing is
        // deleted.
        if let State::Transaction(maildrop) = &self.state {
            tracing::info!(
                user = %maildrop.account.address,
                ?end,
                "session ended without QUIT; nothing deleted"
            );
        }
        tracing::debug!(?end, "session ended");
        // Dropping the state releases the maildrop lock.
    }

    async fn command_loop(&mut self) -> End {
        loop {
            let input = match self.read_line().await {
                Ok(input) => input,
                Err(end) => return end,
            };
            match input {
                Line::TooLong => {
                    let max = self.ctx.shared.config.pop3.max_line_length;
                    self.err(None, &format!("Line too long (at most {max} octets)"));
                    self.bad_in_a_row += 1;
                }
                Line::Complete(line) => {
                    if let Err(end) = self.command(&line).await {
                        return end;
                    }
                }
            }
            if self.closing {
                return End::Done;
            }
            // A client that keeps sending what is not a command is broken
            // or probing; Dovecot closes it the same way (after more than
            // 20 in a row, with this text).
            let max = self.ctx.shared.config.pop3.max_bad_commands;
            if max > 0 && self.bad_in_a_row >= max {
                tracing::info!(bad = self.bad_in_a_row, "too many bad commands");
                self.err(None, "Too many bad commands.");
                return End::Done;
            }
        }
    }

    /// The next line from the client, after writing out the replies so
    /// far. A shutdown ends the wait.
    async fn read_line(&mut self) -> Result<Line, End> {
        let timeout = self.command_timeout();
        self.io.read_line(timeout, true).await
    }

    /// Parses and dispatches one command line.
    async fn command(&mut self, line: &[u8]) -> Result<(), End> {
        let command = match protocol::parse(line) {
            Ok(command) => command,
            Err(e) => {
                self.err(None, &e.to_string());
                self.bad_in_a_row += 1;
                return Ok(());
            }
        };
        tracing::trace!(command = command.name(), "command");
        let authorized = matches!(self.state, State::Transaction(_));
        // Login commands after login and mail commands before it are as
        // bad as unknown ones; anything else valid starts the count again
        // (a failed PASS or a RETR of no message is not a bad command).
        let misplaced = match &command {
            Command::Capa | Command::Quit | Command::Stls => false,
            Command::User(_) | Command::Pass(_) | Command::Auth(_) => authorized,
            _ => !authorized,
        };
        if misplaced {
            self.bad_in_a_row += 1;
        } else {
            self.bad_in_a_row = 0;
        }
        match command {
            Command::Capa => self.capa(),
            Command::Quit => self.quit().await,
            Command::Stls => self.stls().await?,
            Command::User(_) | Command::Pass(_) | Command::Auth(_) if authorized => {
                self.err(None, "Already logged in")
            }
            Command::User(name) => self.user(name),
            Command::Pass(password) => self.pass(password).await?,
            Command::Auth(None) => self.auth_mechanisms(),
            Command::Auth(Some((mechanism, initial))) => self.auth(mechanism, initial).await?,
            _ if !authorized => self.err(None, "Not logged in: USER/PASS or AUTH first"),
            Command::Stat => self.stat(),
            Command::List(n) => self.list(n),
            Command::Uidl(n) => self.uidl(n),
            Command::Retr(n) => self.retr(n, None).await?,
            Command::Top(n, lines) => self.retr(n, Some(lines)).await?,
            Command::Dele(n) => self.dele(n),
            Command::Rset => self.rset(),
            Command::Noop => self.ok(""),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::testutil::{shared_with_account, spawn_session};
    use store::StoreError as E;

    /// A whole session over an in-memory stream, on a real store with one
    /// message in the INBOX.
    #[tokio::test]
    async fn a_session_over_a_duplex_stream_logs_in_and_counts_the_maildrop() {
        let dir = tempfile::tempdir().unwrap();
        let message = b"Subject: over a duplex\r\n\r\nHello, Alice.\r\n";
        let shared = shared_with_account(dir.path(), "alice@localhost", "pw", &[message]).await;
        let ctx = Arc::new(Pop3Context::new(shared));
        let (session, mut client) = spawn_session(|stream, peer| {
            Session::new(ctx, stream, peer, CancellationToken::new()).run()
        });

        assert!(client.line().await.starts_with("+OK "));
        assert!(client.cmd("USER alice@localhost").await.starts_with("+OK"));
        let pass = client.cmd("PASS pw").await;
        assert!(pass.starts_with("+OK"), "{pass}");
        assert_eq!(client.cmd("STAT").await, format!("+OK 1 {}", message.len()));
        assert!(client.cmd("QUIT").await.starts_with("+OK"));
        assert!(client.is_closed().await);
        session.await.unwrap();
    }

    #[test]
    fn store_failures_follow_the_stores_classification() {
        let temporary = [
            E::Full("disk".into()),
            E::Closed,
            E::Database("database is locked".into()),
            E::Io(std::io::Error::other("EIO")),
        ];
        for e in &temporary {
            assert_eq!(store_code(e), RespCode::SysTemp, "{e}");
        }
        let permanent = [
            E::NotFound("account a@localhost".into()),
            // The store calls this permanent, and so does POP3 now.
            E::AlreadyExists("mailbox INBOX".into()),
            E::Invalid("uid".into()),
            E::SchemaTooNew {
                found: 9,
                supported: 1,
            },
        ];
        for e in &permanent {
            assert_eq!(store_code(e), RespCode::SysPerm, "{e}");
        }
    }
}
