//! One POP3 session: the I/O loop and the session state.
//!
//! The loop reads into a [`LineBuffer`] and answers every complete command
//! in it before it reads again; replies go to an output buffer that is
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

use common::tls::MaybeTlsStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::protocol::{self, Command, Input, LineBuffer, RespCode};
use crate::Pop3Context;
use maildrop::Maildrop;

/// The RFC 3206 code for a store failure: `SYS/PERM` for what trying
/// again will not cure, `SYS/TEMP` for the rest.
pub(crate) fn store_code(error: &store::StoreError) -> RespCode {
    use store::StoreError as E;
    match error {
        E::NotFound(_) | E::MailboxGone(_) | E::Invalid(_) | E::SchemaTooNew { .. } => {
            RespCode::SysPerm
        }
        E::AlreadyExists(_) | E::Closed | E::Database(_) | E::Full(_) | E::Io(_) => {
            RespCode::SysTemp
        }
    }
}

/// Why a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// QUIT, or the session decided to close after its last reply.
    Done,
    /// The client closed the connection or it broke.
    Disconnected,
    /// RFC 1939's autologout timer.
    Timeout,
    Shutdown,
}

pub(crate) enum State {
    /// Before login; the name from USER, waiting for PASS.
    Authorization {
        user: Option<String>,
    },
    Transaction(Maildrop),
}

pub(crate) struct Session {
    ctx: Arc<Pop3Context>,
    stream: Option<MaybeTlsStream>,
    peer: SocketAddr,
    shutdown: CancellationToken,
    input: LineBuffer,
    /// Where each read lands before it is framed.
    read_buf: Box<[u8]>,
    output: Vec<u8>,
    state: State,
    auth_failures: u32,
    /// Set by a handler when the session must close after its reply.
    closing: bool,
    /// Lines since the last valid command that were not one (unknown,
    /// malformed, too long, or not allowed in this state); at
    /// `pop3.max_bad_commands` the session is closed.
    bad_in_a_row: u32,
}

/// A POP3 client sends only command lines (a long SASL response arrives
/// over several reads and is framed in `input`), so a small read buffer
/// serves; it is held by every session, idle ones included.
const READ_CHUNK: usize = 1024;
/// Output beyond this is written out at once (a RETR of a big message).
const OUTPUT_HIGH_WATER: usize = 256 * 1024;

impl Session {
    pub fn new(
        ctx: Arc<Pop3Context>,
        stream: MaybeTlsStream,
        peer: SocketAddr,
        shutdown: CancellationToken,
    ) -> Session {
        let max_line = ctx.config.pop3.max_line_length;
        Session {
            ctx,
            stream: Some(stream),
            peer,
            shutdown,
            input: LineBuffer::new(max_line),
            read_buf: vec![0u8; READ_CHUNK].into_boxed_slice(),
            output: Vec::with_capacity(1024),
            state: State::Authorization { user: None },
            auth_failures: 0,
            closing: false,
            bad_in_a_row: 0,
        }
    }

    fn is_tls(&self) -> bool {
        self.stream.as_ref().is_some_and(MaybeTlsStream::is_tls)
    }

    fn command_timeout(&self) -> Duration {
        Duration::from_secs(self.ctx.config.pop3.command_timeout_secs)
    }

    fn ok(&mut self, text: &str) {
        protocol::ok(&mut self.output, text);
    }

    fn err(&mut self, code: Option<RespCode>, text: &str) {
        tracing::debug!(code = code.map(RespCode::as_str), text, "error reply");
        protocol::err(&mut self.output, code, text);
    }

    /// Runs the session to its end.
    pub async fn run(mut self) {
        self.ok("Postern POP3 server ready");
        let end = self.command_loop().await;
        if end == End::Shutdown {
            self.err(Some(RespCode::SysTemp), "Server shutting down");
        }
        if end != End::Disconnected {
            let _ = self.flush().await;
            if let Some(stream) = self.stream.as_mut() {
                let _ = tokio::time::timeout(Duration::from_secs(5), stream.shutdown()).await;
            }
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
                Input::TooLong => {
                    let max = self.ctx.config.pop3.max_line_length;
                    self.err(None, &format!("Line too long (at most {max} octets)"));
                    self.bad_in_a_row += 1;
                }
                Input::Line(line) => {
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
            let max = self.ctx.config.pop3.max_bad_commands;
            if max > 0 && self.bad_in_a_row >= max {
                tracing::info!(bad = self.bad_in_a_row, "too many bad commands");
                self.err(None, "Too many bad commands.");
                return End::Done;
            }
        }
    }

    /// Writes out queued replies.
    async fn flush(&mut self) -> Result<(), End> {
        if self.output.is_empty() {
            return Ok(());
        }
        let timeout = self.command_timeout();
        let Some(stream) = self.stream.as_mut() else {
            return Err(End::Disconnected);
        };
        let write = async {
            stream.write_all(&self.output).await?;
            stream.flush().await
        };
        match tokio::time::timeout(timeout, write).await {
            Ok(Ok(())) => {
                self.output.clear();
                Ok(())
            }
            Ok(Err(_)) => Err(End::Disconnected),
            Err(_) => Err(End::Timeout),
        }
    }

    /// Writes out queued replies if they have piled up.
    async fn flush_if_full(&mut self) -> Result<(), End> {
        if self.output.len() >= OUTPUT_HIGH_WATER {
            self.flush().await?;
        }
        Ok(())
    }

    /// Reads more input, after writing out the replies so far. A shutdown
    /// ends the wait.
    async fn fill(&mut self) -> Result<(), End> {
        self.flush().await?;
        let timeout = self.command_timeout();
        let Some(stream) = self.stream.as_mut() else {
            return Err(End::Disconnected);
        };
        let read = tokio::time::timeout(timeout, stream.read(&mut self.read_buf));
        let result = tokio::select! {
            r = read => r,
            () = self.shutdown.cancelled() => return Err(End::Shutdown),
        };
        match result {
            Ok(Ok(0)) | Ok(Err(_)) => Err(End::Disconnected),
            Ok(Ok(n)) => {
                self.input.push(&self.read_buf[..n]);
                Ok(())
            }
            Err(_) => {
                tracing::info!("autologout: idle too long");
                Err(End::Timeout)
            }
        }
    }

    /// The next line from the client.
    async fn read_line(&mut self) -> Result<Input, End> {
        loop {
            if let Some(input) = self.input.next_line() {
                return Ok(input);
            }
            self.fill().await?;
        }
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
            Command::Pass(password) => self.pass(password).await,
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
