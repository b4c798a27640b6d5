//! One SMTP session: the I/O loop and the session state.
//!
//! The loop reads into a buffer and answers every complete command in it
//! before it reads again; replies are written to an output buffer that is
//! flushed only when the loop must wait for input. That is PIPELINING
//! (RFC 2920) without special cases: a client that sends a batch gets its
//! replies as one batch, in order.
//!
//! Command handlers live beside this file, one per command family:
//! `greeting` (EHLO/HELO), `envelope` (MAIL/RCPT), `message` (DATA/BDAT),
//! `auth` (AUTH), `misc` (the rest).

mod auth;
mod envelope;
mod greeting;
mod message;
mod misc;
mod record;
mod rules;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::listener::ListenerRole as _;
use common::login::LoginState;
use common::tls::MaybeTlsStream;
use common::transport::{self, Line, Transport};
use tokio_util::sync::CancellationToken;

use crate::reply::{self, Reply};
use crate::{Role, SmtpContext};
use common::events::{MailEvent, Rejection, SmtpStage};

/// Why a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// QUIT, or the session decided to close after its last reply.
    Done,
    /// The client closed the connection or it broke.
    Disconnected,
    Timeout,
    Shutdown,
    /// A failure rule said to hang up without a reply.
    Dropped,
}

impl From<transport::End> for End {
    fn from(end: transport::End) -> End {
        match end {
            transport::End::Done => End::Done,
            transport::End::Disconnected => End::Disconnected,
            transport::End::Timeout => End::Timeout,
            transport::End::Shutdown => End::Shutdown,
        }
    }
}

/// What the client said at HELO/EHLO.
#[derive(Debug, Clone)]
pub(crate) struct Helo {
    pub name: String,
    pub esmtp: bool,
}

/// The mail transaction between MAIL and the end of DATA/BDAT LAST.
#[derive(Debug)]
pub(crate) struct Transaction {
    pub sender: String,
    pub body_type: store::BodyType,
    pub smtputf8: bool,
    /// `MAIL FROM ... RET=` and `ENVID=` (RFC 3461).
    pub dsn_ret: Option<store::DsnReturn>,
    pub dsn_envid: Option<String>,
    pub recipients: Vec<String>,
    /// `NOTIFY=` and `ORCPT=` of each recipient, in the same order.
    pub recipient_dsn: Vec<store::RecipientDsn>,
    /// Message bytes gathered from BDAT chunks so far.
    pub chunks: Option<Chunks>,
    /// What the session changed or let through in the accepted message
    /// that a stricter server would have refused ("bare line feeds made
    /// CRLF"), to keep with its envelope.
    pub warnings: Vec<String>,
    /// The MAIL parameters as written, for the envelope.
    pub mail_params: String,
    /// The RCPT parameters as written, one per recipient.
    pub recipient_params: Vec<String>,
    /// The local account each recipient resolved to at RCPT (`None`:
    /// relayed or captured), one per recipient.
    pub recipient_accounts: Vec<Option<store::AccountId>>,
}

/// A BDAT transfer in progress.
#[derive(Debug, Default)]
pub(crate) struct Chunks {
    /// Our `Received:` line and the chunks' bytes.
    pub message: Vec<u8>,
    /// Octets the client sent in chunks so far: what SIZE limits.
    pub received: u64,
    /// The chunks passed the size limit: the rest are read and dropped
    /// until LAST, which ends the transaction.
    pub too_big: bool,
}

/// Numbers sessions, for the failure rules' fire log.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

pub(crate) struct Session {
    /// This session's number in the process, from 1.
    pub id: u64,
    pub ctx: Arc<SmtpContext>,
    pub role: Role,
    /// The client's stream, the commands read and the replies queued.
    io: Transport<MaybeTlsStream>,
    pub peer: SocketAddr,
    pub helo: Option<Helo>,
    pub auth_user: Option<String>,
    /// The client's address is in `[relay] trusted_networks`.
    pub trusted_network: bool,
    pub tx: Option<Transaction>,
    errors: u32,
    pub login_state: LoginState,
    /// Set by a handler when the session must close after its reply.
    pub closing: bool,
    /// Set when a failure rule drops the connection: close it without a
    /// reply to the command.
    pub dropped: bool,
    /// Its transcript and store row.
    pub record: record::SessionRecord,
    /// The stage of the command being answered, for `rejected` events.
    stage: Option<SmtpStage>,
    /// The recipient a RCPT being answered names.
    pub refusing_recipient: Option<String>,
}

impl Session {
    pub fn new(
        ctx: Arc<SmtpContext>,
        role: Role,
        stream: MaybeTlsStream,
        peer: SocketAddr,
        trusted_network: bool,
        shutdown: CancellationToken,
    ) -> Session {
        let smtp = &ctx.shared.config.smtp;
        let max_line = smtp.max_line_length.max(64);
        let write_timeout = Duration::from_secs(smtp.command_timeout_secs);
        Session {
            id: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
            role,
            io: Transport::new(stream, max_line, write_timeout, shutdown),
            peer,
            helo: None,
            auth_user: None,
            trusted_network,
            tx: None,
            errors: 0,
            login_state: LoginState::new(ctx.shared.gate(peer.ip()), write_timeout),
            closing: false,
            dropped: false,
            stage: None,
            refusing_recipient: None,
            record: record::SessionRecord::new(
                peer,
                role.name(),
                ctx.shared.config.smtp.transcript_limit,
            ),
            ctx,
        }
    }

    /// Capture mode: every recipient is kept here, none relayed.
    pub fn capturing(&self) -> bool {
        self.ctx.shared.config.capture.enabled
    }

    pub fn is_tls(&self) -> bool {
        self.io.is_tls()
    }

    pub fn tls_description(&self) -> Option<String> {
        self.io.stream().and_then(MaybeTlsStream::tls_description)
    }

    fn command_timeout(&self) -> Duration {
        Duration::from_secs(self.ctx.shared.config.smtp.command_timeout_secs)
    }

    pub fn data_timeout(&self) -> Duration {
        Duration::from_secs(self.ctx.shared.config.smtp.data_timeout_secs)
    }

    /// Runs the session to its end.
    pub async fn run(mut self) {
        let connect = self.rule_verdict(common::rules::Stage::Connect, None, &[]);
        self.stage = Some(SmtpStage::Connect);
        let refused = self.apply_rules(connect).await;
        self.stage = None;
        let end = if refused {
            // A rule's reply is the greeting, and the session ends with it
            // (RFC 5321 3.1); or the rule hung up.
            if self.dropped {
                End::Dropped
            } else {
                End::Done
            }
        } else {
            let greeting = Reply::plain(
                220,
                format!("{} ESMTP Postern", self.ctx.shared.config.hostname),
            );
            self.reply(greeting);
            self.command_loop().await
        };
        match end {
            End::Timeout => self.reply(reply::timeout()),
            End::Shutdown => self.reply(reply::shutting_down()),
            End::Done | End::Disconnected | End::Dropped => {}
        }
        if end != End::Disconnected {
            self.io.goodbye().await;
        }
        tracing::debug!(?end, "session ended");
        self.keep_record().await;
    }

    /// Stores the session's transcript, if it is worth keeping; every so
    /// often, drops the oldest sessions beyond `smtp.sessions_keep`.
    async fn keep_record(&mut self) {
        if !self.record.keep {
            return;
        }
        let store = &self.ctx.shared.store;
        let ended = store
            .end_smtp_session(
                self.record.id,
                self.record.start.clone(),
                chrono::Utc::now().timestamp(),
                self.record.refusals,
                self.record.text(),
            )
            .await;
        match ended {
            Ok(id) if id.0 % 256 == 0 => {
                if let Err(e) = store
                    .prune_smtp_sessions(self.ctx.shared.config.smtp.sessions_keep)
                    .await
                {
                    tracing::warn!(error = %e, "cannot prune recorded SMTP sessions");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot record the SMTP session"),
        }
    }

    async fn command_loop(&mut self) -> End {
        loop {
            let line = match self.read_line(self.command_timeout(), true).await {
                Ok(line) => line,
                Err(end) => return end,
            };
            match line {
                Line::TooLong => self.reply(reply::line_too_long()),
                Line::Complete(line) => {
                    if let Err(end) = self.command(line).await {
                        return end;
                    }
                }
            }
            if self.dropped {
                return End::Dropped;
            }
            if self.closing {
                return End::Done;
            }
            if self.errors >= self.ctx.shared.config.smtp.max_errors {
                tracing::info!(errors = self.errors, "too many errors");
                self.reply(reply::too_many_errors());
                return End::Done;
            }
        }
    }

    /// Queues a reply; permanent errors count towards `max_errors`.
    pub fn reply(&mut self, reply: Reply) {
        if reply.is_permanent() {
            self.errors += 1;
        }
        if reply.is_error() {
            tracing::debug!(%reply, "error reply");
        }
        let start = self.io.output.len();
        reply.write_to(&mut self.io.output);
        self.record
            .reply(&self.io.output[start..], reply.is_error());
        if let (true, Some(stage)) = (reply.is_error(), self.stage) {
            self.publish_rejection(stage, &reply);
        }
    }

    /// Tells the process's event bus (the HTTP API's `rejected` events)
    /// that a command of one of the SMTP stages was refused.
    fn publish_rejection(&self, stage: SmtpStage, reply: &Reply) {
        self.ctx.events.publish(MailEvent::Rejected(Rejection {
            stage,
            code: reply.code,
            enhanced_code: reply.status.clone(),
            text: reply.lines.join("\n"),
            client: self.peer.to_string(),
            sender: self.tx.as_ref().map(|tx| tx.sender.clone()),
            recipient: match stage {
                SmtpStage::Rcpt => self.refusing_recipient.clone(),
                _ => None,
            },
            session: self.record.id.map(|id| id.0),
            at: chrono::Utc::now().timestamp(),
        }));
    }

    /// Writes out queued replies.
    pub async fn flush(&mut self) -> Result<(), End> {
        Ok(self.io.flush().await?)
    }

    /// Reads one line; one over `smtp.max_line_length` is read to its end
    /// and reported as too long. `interruptible` lets a shutdown end the
    /// wait (between commands, never inside a message).
    pub async fn read_line(&mut self, timeout: Duration, interruptible: bool) -> Result<Line, End> {
        Ok(self.io.read_line(timeout, interruptible).await?)
    }

    /// STARTTLS: discards anything the client pipelined after the command
    /// (RFC 3207 section 4.2, the injection defence), performs the
    /// handshake and forgets everything learnt before it.
    pub async fn start_tls(&mut self) -> Result<(), End> {
        let Some(acceptor) = self.ctx.shared.tls.clone() else {
            self.flush().await?;
            return Err(End::Done);
        };
        self.io
            .accept_tls(acceptor, &self.ctx.shared.config.limits)
            .await?;
        self.helo = None;
        self.auth_user = None;
        self.tx = None;
        let tls = self.tls_description().unwrap_or_default();
        tracing::debug!(%tls, "STARTTLS done");
        self.record.server_note(&format!("[TLS: {tls}]"));
        Ok(())
    }

    /// Dispatches one command line.
    async fn command(&mut self, line: Vec<u8>) -> Result<(), End> {
        self.record.command(&line);
        // Set again below once the command is known.
        self.stage = None;
        // RFC 6531 (3.3, 3.7.1) allows UTF-8 in the EHLO domain and the
        // addresses, never other 8-bit bytes; smtp-proto would turn them
        // into U+FFFD and an altered address or domain would be taken.
        // Postfix refuses any such line before looking at its verb, with
        // these words, whether or not MAIL said SMTPUTF8 (valid UTF-8
        // without SMTPUTF8 still gets 553 5.6.7 at MAIL and RCPT).
        if std::str::from_utf8(&line).is_err() {
            self.reply(reply::bad_utf8());
            return Ok(());
        }
        // The DSN parameters of MAIL and RCPT are ours to parse
        // ([`crate::dsn`]); smtp-proto gets the rest of the line.
        let mut params = crate::dsn::Params::default();
        let line = match crate::dsn::Verb::of(&line) {
            Some(verb) => {
                params = crate::dsn::take_params(&line, verb);
                std::mem::take(&mut params.rest)
            }
            None => line,
        };
        // smtp-proto wants the line with its LF.
        let mut with_lf = line;
        with_lf.extend_from_slice(b"\r\n");
        let parsed = smtp_proto::Request::parse(&mut with_lf.iter()).map(|r| r.into_owned());
        let request = match parsed {
            Ok(request) => request,
            Err(e) => {
                self.reply(parse_error_reply(&e));
                return Ok(());
            }
        };
        tracing::trace!(command = request.name(), "command");
        use smtp_proto::Request as R;
        self.stage = match &request {
            R::Ehlo { .. } | R::Helo { .. } => Some(SmtpStage::Helo),
            R::Auth { .. } => Some(SmtpStage::Auth),
            R::Mail { .. } => Some(SmtpStage::Mail),
            R::Rcpt { .. } => Some(SmtpStage::Rcpt),
            R::Data | R::Bdat { .. } => Some(SmtpStage::Data),
            _ => None,
        };
        match request {
            R::Ehlo { host } => self.ehlo(host, true).await,
            R::Helo { host } => self.ehlo(host, false).await,
            R::Lhlo { .. } => self.reply(reply::syntax_unrecognized()),
            R::Mail { from } => self.mail(from, params).await,
            R::Rcpt { to } => self.rcpt(to, params).await,
            R::Data => self.data().await?,
            R::Bdat {
                chunk_size,
                is_last,
            } => self.bdat(chunk_size, is_last).await?,
            R::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, initial_response).await?,
            R::StartTls => self.starttls().await?,
            R::Rset => {
                self.tx = None;
                self.reply(reply::ok());
            }
            R::Noop { .. } => self.reply(reply::ok()),
            R::Quit => {
                self.reply(reply::bye());
                self.closing = true;
            }
            R::Vrfy { .. } => self.reply(reply::vrfy()),
            R::Help { .. } => self.help(),
            R::Expn { .. } | R::Etrn { .. } | R::Atrn { .. } | R::Burl { .. } => {
                self.reply(reply::not_implemented())
            }
        }
        Ok(())
    }
}

fn parse_error_reply(error: &smtp_proto::Error) -> Reply {
    use smtp_proto::Error as E;
    match error {
        E::UnknownCommand => reply::syntax_unrecognized(),
        E::InvalidSenderAddress => reply::bad_sender_address(),
        E::InvalidRecipientAddress => reply::bad_recipient_address(),
        E::SyntaxError { syntax } => reply::syntax(syntax),
        E::InvalidParameter { param } => reply::invalid_parameter(param),
        E::UnsupportedParameter { param } => reply::unsupported_parameter(param),
        E::NeedsMoreData { .. } | E::ResponseTooLong | E::InvalidResponse { .. } => {
            reply::syntax_unrecognized()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::testutil::{shared_with_account, spawn_session};

    /// A whole session over an in-memory stream: the message it accepts
    /// is in the store's queue, byte for byte, under our `Received:` line.
    #[tokio::test]
    async fn a_session_over_a_duplex_stream_delivers_the_message() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared_with_account(dir.path(), "alice@localhost", "pw", &[]).await;
        let store = shared.store.clone();
        let ctx = Arc::new(SmtpContext {
            rules: common::rules::Rules::new(&shared.config.rules),
            shared,
            queue: crate::QueueHandle::default(),
            events: common::events::EventBus::default(),
        });
        let (session, mut client) = spawn_session(|stream, peer| {
            let shutdown = CancellationToken::new();
            Session::new(ctx, Role::Mx, stream, peer, false, shutdown).run()
        });

        assert!(client.line().await.starts_with("220 "));
        client.send(b"EHLO client.example\r\n").await;
        let ehlo = client.lines_until("250 ").await;
        assert!(ehlo.iter().any(|l| l == "250-STARTTLS"), "{ehlo:?}");
        let from = client.cmd("MAIL FROM:<bob@example.com>").await;
        assert!(from.starts_with("250 "), "{from}");
        let rcpt = client.cmd("RCPT TO:<alice@localhost>").await;
        assert!(rcpt.starts_with("250 "), "{rcpt}");
        assert!(client.cmd("DATA").await.starts_with("354 "));
        let body = b"Subject: over a duplex\r\n\r\nHello, Alice.\r\n";
        client.send(body).await;
        let queued = client.cmd(".").await;
        assert!(queued.starts_with("250 "), "{queued}");
        assert!(client.cmd("QUIT").await.starts_with("221 "));
        assert!(client.is_closed().await);
        session.await.unwrap();

        // Mail for local accounts only is in the mailbox by the 250 and
        // never waits in the queue.
        assert!(store.queue().await.unwrap().is_empty());
        let alice = store.account("alice@localhost").await.unwrap().unwrap();
        let inbox = store.messages(alice.id, "INBOX").await.unwrap();
        assert_eq!(inbox.len(), 1);
        let raw = store
            .message_raw(alice.id, "INBOX", inbox[0].uid)
            .await
            .unwrap()
            .unwrap();
        assert!(
            raw.starts_with(b"Return-Path: <bob@example.com>\r\nReceived: from client.example"),
            "{raw:?}"
        );
        assert!(raw.ends_with(body));
        assert!(queued.starts_with("250 2.0.0 "), "{queued}");
    }
}
