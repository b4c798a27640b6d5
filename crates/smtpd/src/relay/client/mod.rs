//! One outbound SMTP session (RFC 5321) to one [`Hop`].
//!
//! [`Client::connect`] does everything up to the first transaction:
//! greeting, EHLO (HELO when EHLO is refused), STARTTLS as the hop's
//! [`RelayTls`] policy says, and AUTH PLAIN or LOGIN when the hop carries
//! credentials. [`Client::send`] runs one transaction and may be called
//! again on the same connection.
//!
//! To a server that offers DSN (RFC 3461), MAIL carries the client's RET
//! and ENVID and each RCPT its NOTIFY and ORCPT, as the client wrote them
//! (Postfix passes them on the same way); to one that does not, nothing,
//! and the queue manager reports `relayed` where success was asked.
//!
//! The session is this module; the rest by job:
//! - [`reply`]: reading the server's replies, and quoting them;
//! - `dot_stuff`: the message after DATA, dot-stuffed with CRLF line ends;
//! - [`failure`]: what went wrong, where, and whether it may pass.
//!
//! The TLS client side (which certificates a hop's policy accepts) is
//! [`common::tls::client`]'s.

mod dot_stuff;
pub mod failure;
pub mod reply;

use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use base64::Engine as _;
use common::config::{RelayConfig, RelayTls};
use common::tls::client as tls_client;
use store::{DsnReturn, Notify, RecipientDsn};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::route::Hop;
use dot_stuff::DotStuffer;
use failure::{io_failure, io_reason};
pub use failure::{Failure, FailureKind, Stage};
use reply::read_reply;
pub use reply::{describe_reply, Reply};

/// The message goes out in writes of about this size.
const WRITE_CHUNK: usize = 64 * 1024;

/// Time limits of a session, from `[relay]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// For the TCP connection.
    pub connect: Duration,
    /// For the greeting, every reply before the message, and every write.
    pub command: Duration,
    /// For the reply to the final dot, while the server may be scanning
    /// the message.
    pub data: Duration,
}

impl Timeouts {
    pub fn from_config(config: &RelayConfig) -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(config.connect_timeout_secs),
            command: Duration::from_secs(config.command_timeout_secs),
            data: Duration::from_secs(config.data_timeout_secs),
        }
    }
}

/// What the server offered in its EHLO reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub eight_bit_mime: bool,
    pub smtputf8: bool,
    pub pipelining: bool,
    /// SIZE (RFC 1870): `Some(0)` when offered without a fixed limit.
    pub size: Option<u64>,
    pub starttls: bool,
    /// This session runs over TLS (set by us, not by the server).
    pub tls_active: bool,
    pub chunking: bool,
    /// DSN (RFC 3461): the server takes NOTIFY, ORCPT, RET and ENVID.
    pub dsn: bool,
    /// AUTH mechanisms, upper case.
    pub auth: Vec<String>,
}

impl Capabilities {
    /// Reads the keyword lines of an EHLO reply (the first line is the
    /// server's name and greeting).
    fn from_ehlo(reply: &Reply) -> Capabilities {
        let mut caps = Capabilities::default();
        for line in reply.text.lines().skip(1) {
            let mut words = line.split_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            let keyword = keyword.to_ascii_uppercase();
            // Old servers say "AUTH=LOGIN PLAIN".
            if let Some(first) = keyword.strip_prefix("AUTH=") {
                caps.add_auth(std::iter::once(first).chain(words));
                continue;
            }
            match keyword.as_str() {
                "8BITMIME" => caps.eight_bit_mime = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "PIPELINING" => caps.pipelining = true,
                "STARTTLS" => caps.starttls = true,
                "CHUNKING" => caps.chunking = true,
                "DSN" => caps.dsn = true,
                "SIZE" => caps.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                "AUTH" => caps.add_auth(words),
                _ => {}
            }
        }
        caps
    }

    fn add_auth<'a>(&mut self, mechanisms: impl Iterator<Item = &'a str>) {
        for mechanism in mechanisms {
            let mechanism = mechanism.to_ascii_uppercase();
            if !self.auth.contains(&mechanism) {
                self.auth.push(mechanism);
            }
        }
    }
}

/// The BODY parameter of MAIL FROM (RFC 6152).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BodyParam {
    #[default]
    None,
    /// Sent only when the server offers 8BITMIME; otherwise the message
    /// goes as it is (converting to 7 bit is not done here).
    EightBitMime,
}

/// One transaction's envelope.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    /// Empty for the null sender (bounces).
    pub sender: &'a str,
    pub recipients: &'a [String],
    pub body: BodyParam,
    /// SMTPUTF8 (RFC 6531): the transaction fails permanently if the
    /// server does not offer it.
    pub smtputf8: bool,
    /// The SIZE parameter, sent when the server offers SIZE; `None` omits
    /// it.
    pub size: Option<u64>,
    /// DSN parameters (RFC 3461), passed on as the client gave them when
    /// the server offers DSN: RET, ENVID (xtext) …
    pub ret: Option<DsnReturn>,
    pub envid: Option<&'a str>,
    /// … and NOTIFY and ORCPT of each recipient, in the order of
    /// `recipients` (empty: none).
    pub recipient_dsn: &'a [RecipientDsn],
}

impl Envelope<'_> {
    /// `RCPT TO:<…>` for recipient `i`, with its NOTIFY and ORCPT if the
    /// server takes them.
    fn rcpt_command(&self, i: usize, dsn: bool) -> String {
        let mut line = format!("RCPT TO:<{}>", self.recipients[i]);
        if let Some(params) = self.recipient_dsn.get(i).filter(|_| dsn) {
            if let Some(notify) = params.notify {
                line.push_str(" NOTIFY=");
                line.push_str(&notify_param(notify));
            }
            if let Some(orcpt) = &params.orcpt {
                line.push_str(" ORCPT=");
                line.push_str(orcpt);
            }
        }
        line.push_str("\r\n");
        line
    }
}

/// `NEVER`, or the notices asked for: `SUCCESS,FAILURE,DELAY`.
fn notify_param(notify: Notify) -> String {
    let words: Vec<&str> = [
        (notify.success, "SUCCESS"),
        (notify.failure, "FAILURE"),
        (notify.delay, "DELAY"),
    ]
    .into_iter()
    .filter_map(|(on, word)| on.then_some(word))
    .collect();
    if words.is_empty() {
        "NEVER".to_string()
    } else {
        words.join(",")
    }
}

/// What the server said to one RCPT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientResult {
    Accepted,
    Rejected(Reply),
}

/// The outcome of a transaction that got as far as the recipients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// One per envelope recipient, in order.
    pub recipients: Vec<RecipientResult>,
    /// The reply that decides for every accepted recipient: to the final
    /// dot, or to DATA when DATA was refused. `None` when no recipient was
    /// accepted (the message was not sent).
    pub data: Option<Reply>,
    /// Which command `data` answers: [`Stage::Data`] or
    /// [`Stage::EndOfData`].
    pub data_stage: Stage,
}

/// The connection under the session: TCP, then perhaps TLS over it.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// An SMTP session with one server.
pub struct Client {
    stream: BufReader<Pin<Box<dyn Stream>>>,
    peer: String,
    capabilities: Capabilities,
    timeouts: Timeouts,
    /// A transaction was started and not finished: RSET before the next.
    needs_rset: bool,
    /// The connection is lost or out of step; nothing more can be sent.
    broken: bool,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.peer)
            .field("capabilities", &self.capabilities)
            .finish()
    }
}

impl Client {
    /// Connects to `hop` and gets the session ready for a transaction.
    pub async fn connect(
        hop: &Hop,
        helo_name: &str,
        timeouts: &Timeouts,
    ) -> Result<Client, Failure> {
        let peer = format!("{}[{}]:{}", hop.host, hop.addr.ip(), hop.addr.port());
        let connect_failure = |why: String| Failure {
            peer: peer.clone(),
            stage: Stage::Connect,
            kind: FailureKind::Connect(why),
        };
        let tcp = match tokio::time::timeout(timeouts.connect, TcpStream::connect(hop.addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(connect_failure(io_reason(&e))),
            Err(_) => return Err(connect_failure("connection timed out".into())),
        };
        // Commands are small and each waits for a reply: no Nagle delay.
        let _ = tcp.set_nodelay(true);
        let stream: Pin<Box<dyn Stream>> = Box::pin(tcp);
        let mut client = Client {
            stream: BufReader::new(stream),
            peer,
            capabilities: Capabilities::default(),
            timeouts: *timeouts,
            needs_rset: false,
            broken: false,
        };
        let greeting = client.read_reply(Stage::Greeting).await?;
        if greeting.code != 220 {
            // RFC 5321 3.1: after a 554 greeting the client sends QUIT.
            client.goodbye().await;
            return Err(client.failure(Stage::Greeting, FailureKind::Reply(greeting)));
        }
        client.hello(helo_name).await?;
        client.start_tls(hop, helo_name).await?;
        if let Some((user, password)) = &hop.auth {
            client.authenticate(hop.tls, user, password).await?;
        }
        Ok(client)
    }

    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// `host[ip]:port`, for logs and a DSN's Remote-MTA.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Runs one transaction. A 4xx/5xx to MAIL fails it whole; RCPT
    /// rejections come back per recipient; the reply to DATA or to the
    /// final dot comes back in [`Delivery::data`] for the caller to apply
    /// to every accepted recipient.
    pub async fn send(
        &mut self,
        envelope: &Envelope<'_>,
        message: &[u8],
    ) -> Result<Delivery, Failure> {
        if self.broken {
            return Err(self.failure(Stage::Mail, FailureKind::Closed));
        }
        if self.needs_rset {
            self.write(b"RSET\r\n", Stage::Rset).await?;
            let reply = self.read_reply(Stage::Rset).await?;
            if !reply.is_positive() {
                self.broken = true;
                return Err(self.failure(Stage::Rset, FailureKind::Reply(reply)));
            }
            self.needs_rset = false;
        }
        let mail = self.mail_command(envelope)?;
        self.needs_rset = true;
        let (mail_reply, recipients, data_reply) = if self.capabilities.pipelining {
            self.pipelined_envelope(&mail, envelope).await?
        } else {
            self.stepwise_envelope(&mail, envelope).await?
        };
        if !mail_reply.is_positive() {
            if data_reply.as_ref().is_some_and(|r| r.code == 354) {
                self.abandon_data().await;
            }
            return Err(self.failure(Stage::Mail, FailureKind::Reply(mail_reply)));
        }
        let any_accepted = recipients.contains(&RecipientResult::Accepted);
        if !any_accepted {
            // RFC 2920 3.1: a pipelined DATA may have been accepted even
            // with no valid recipient; end it empty, then start over.
            if data_reply.as_ref().is_some_and(|r| r.code == 354) {
                self.abandon_data().await;
            }
            self.reset().await;
            return Ok(Delivery {
                recipients,
                data: None,
                data_stage: Stage::Data,
            });
        }
        let data_reply = match data_reply {
            Some(reply) => reply,
            None => {
                self.write(b"DATA\r\n", Stage::Data).await?;
                self.read_reply(Stage::Data).await?
            }
        };
        if data_reply.code != 354 {
            return Ok(Delivery {
                recipients,
                data: Some(data_reply),
                data_stage: Stage::Data,
            });
        }
        self.write_message(message).await?;
        let reply = self
            .read_reply_within(Stage::EndOfData, self.timeouts.data)
            .await?;
        // Whatever the answer, the transaction is over (RFC 5321 4.1.1.4).
        self.needs_rset = false;
        Ok(Delivery {
            recipients,
            data: Some(reply),
            data_stage: Stage::EndOfData,
        })
    }

    /// Says QUIT and closes, ignoring what goes wrong: the mail is already
    /// delivered or not.
    pub async fn quit(mut self) {
        self.goodbye().await;
    }

    async fn goodbye(&mut self) {
        if self.broken {
            return;
        }
        if self.write(b"QUIT\r\n", Stage::Quit).await.is_ok() {
            let limit = self.timeouts.command.min(Duration::from_secs(10));
            let _ = self.read_reply_within(Stage::Quit, limit).await;
        }
        let _ =
            tokio::time::timeout(Duration::from_secs(1), self.stream.get_mut().shutdown()).await;
        self.broken = true;
    }

    /// EHLO, or HELO when the server refuses EHLO permanently.
    async fn hello(&mut self, helo_name: &str) -> Result<(), Failure> {
        self.write(format!("EHLO {helo_name}\r\n").as_bytes(), Stage::Ehlo)
            .await?;
        let reply = self.read_reply(Stage::Ehlo).await?;
        if reply.is_positive() {
            let tls_active = self.capabilities.tls_active;
            self.capabilities = Capabilities::from_ehlo(&reply);
            self.capabilities.tls_active = tls_active;
            return Ok(());
        }
        if !reply.is_permanent() || self.capabilities.tls_active {
            return Err(self.failure(Stage::Ehlo, FailureKind::Reply(reply)));
        }
        self.write(format!("HELO {helo_name}\r\n").as_bytes(), Stage::Ehlo)
            .await?;
        let reply = self.read_reply(Stage::Ehlo).await?;
        if !reply.is_positive() {
            return Err(self.failure(Stage::Ehlo, FailureKind::Reply(reply)));
        }
        self.capabilities = Capabilities::default();
        Ok(())
    }

    /// STARTTLS as `hop.tls` says, then EHLO again.
    async fn start_tls(&mut self, hop: &Hop, helo_name: &str) -> Result<(), Failure> {
        let required = matches!(hop.tls, RelayTls::Encrypt | RelayTls::Verify);
        if hop.tls == RelayTls::None {
            return Ok(());
        }
        if !self.capabilities.starttls {
            if required {
                self.goodbye().await;
                return Err(self.failure(
                    Stage::StartTls,
                    FailureKind::Tls(
                        "TLS is required but the server does not offer STARTTLS".into(),
                    ),
                ));
            }
            return Ok(());
        }
        let connector = match tls_client::connector(hop.tls == RelayTls::Verify) {
            Ok(connector) => connector,
            Err(why) => {
                self.goodbye().await;
                return Err(self.failure(Stage::StartTls, FailureKind::Tls(why)));
            }
        };
        self.write(b"STARTTLS\r\n", Stage::StartTls).await?;
        let reply = self.read_reply(Stage::StartTls).await?;
        if reply.code != 220 {
            if required {
                self.goodbye().await;
                return Err(self.failure(Stage::StartTls, FailureKind::Reply(reply)));
            }
            // Opportunistic TLS: a refused STARTTLS leaves plain text.
            tracing::info!(peer = %self.peer, %reply, "STARTTLS refused; going on without TLS");
            return Ok(());
        }
        // Bytes sent before the handshake but after the 220 would be read
        // as if they came over TLS: a man in the middle's injection.
        if !self.stream.buffer().is_empty() {
            self.broken = true;
            return Err(self.failure(
                Stage::StartTls,
                FailureKind::Protocol("the server sent data after its 220 to STARTTLS".into()),
            ));
        }
        let name = tls_client::server_name(&hop.host, hop.addr.ip());
        let plain = std::mem::replace(
            &mut self.stream,
            BufReader::new(Box::pin(tokio::io::empty())),
        );
        self.broken = true;
        let handshake = connector.connect(name, plain.into_inner());
        let tls = match tokio::time::timeout(self.timeouts.command, handshake).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                return Err(self.failure(Stage::StartTls, FailureKind::Tls(e.to_string())))
            }
            Err(_) => return Err(self.failure(Stage::StartTls, FailureKind::TimedOut)),
        };
        let stream: Pin<Box<dyn Stream>> = Box::pin(tls);
        self.stream = BufReader::new(stream);
        self.broken = false;
        self.capabilities.tls_active = true;
        // RFC 3207 4.2: forget what was learnt before TLS.
        self.hello(helo_name).await
    }

    /// AUTH PLAIN, else AUTH LOGIN (RFC 4954).
    async fn authenticate(
        &mut self,
        tls: RelayTls,
        user: &str,
        password: &str,
    ) -> Result<(), Failure> {
        if !self.capabilities.tls_active && tls != RelayTls::None {
            self.goodbye().await;
            return Err(self.refused(
                Stage::Auth,
                "will not send the relay password without TLS (the server offers no STARTTLS, or it failed)",
                false,
            ));
        }
        let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
        let offered = |m: &str| self.capabilities.auth.iter().any(|a| a == m);
        let reply = if offered("PLAIN") {
            let token = b64(format!("\0{user}\0{password}").as_bytes());
            self.write(format!("AUTH PLAIN {token}\r\n").as_bytes(), Stage::Auth)
                .await?;
            self.read_reply(Stage::Auth).await?
        } else if offered("LOGIN") {
            self.write(b"AUTH LOGIN\r\n", Stage::Auth).await?;
            let mut reply = self.read_reply(Stage::Auth).await?;
            for secret in [user, password] {
                if reply.code != 334 {
                    break;
                }
                self.write(
                    format!("{}\r\n", b64(secret.as_bytes())).as_bytes(),
                    Stage::Auth,
                )
                .await?;
                reply = self.read_reply(Stage::Auth).await?;
            }
            reply
        } else {
            let offers = if self.capabilities.auth.is_empty() {
                "none".to_string()
            } else {
                self.capabilities.auth.join(" ")
            };
            self.goodbye().await;
            return Err(self.refused(
                Stage::Auth,
                &format!("no AUTH mechanism we can use is offered (offered: {offers})"),
                false,
            ));
        };
        if reply.code == 235 {
            return Ok(());
        }
        if reply.code == 334 {
            // A challenge where success or failure was due: cancel it.
            let _ = self.write(b"*\r\n", Stage::Auth).await;
            let _ = self.read_reply(Stage::Auth).await;
        }
        self.goodbye().await;
        Err(self.failure(Stage::Auth, FailureKind::Reply(reply)))
    }

    /// `MAIL FROM:<…>` with the parameters this envelope and server call
    /// for.
    fn mail_command(&self, envelope: &Envelope<'_>) -> Result<String, Failure> {
        let caps = &self.capabilities;
        if envelope.smtputf8 && !caps.smtputf8 {
            return Err(self.refused(
                Stage::Mail,
                "the message needs SMTPUTF8 and the server does not offer it",
                true,
            ));
        }
        // An address (or a DSN parameter, checked at receipt but stored
        // since) must not smuggle a second command into the session.
        let unsafe_address = |a: &str| a.chars().any(|c| c.is_control() || c == '<' || c == '>');
        let unsafe_param = |p: &str| p.chars().any(|c| c.is_control() || c == ' ');
        let unsafe_dsn = envelope.envid.is_some_and(unsafe_param)
            || envelope
                .recipient_dsn
                .iter()
                .any(|r| r.orcpt.as_deref().is_some_and(unsafe_param));
        if unsafe_address(envelope.sender)
            || envelope.recipients.iter().any(|r| unsafe_address(r))
            || unsafe_dsn
        {
            return Err(self.refused(
                Stage::Mail,
                "an envelope address contains a control character or an angle bracket",
                true,
            ));
        }
        let mut line = format!("MAIL FROM:<{}>", envelope.sender);
        if envelope.body == BodyParam::EightBitMime && caps.eight_bit_mime {
            line.push_str(" BODY=8BITMIME");
        }
        if envelope.smtputf8 {
            line.push_str(" SMTPUTF8");
        }
        if let (Some(size), Some(limit)) = (envelope.size, caps.size) {
            if limit > 0 && size > limit {
                return Err(self.refused(
                    Stage::Mail,
                    &format!("message size {size} exceeds the server's limit of {limit} bytes"),
                    true,
                ));
            }
            line.push_str(&format!(" SIZE={size}"));
        }
        if caps.dsn {
            match envelope.ret {
                Some(DsnReturn::Full) => line.push_str(" RET=FULL"),
                Some(DsnReturn::Headers) => line.push_str(" RET=HDRS"),
                None => {}
            }
            if let Some(envid) = envelope.envid {
                line.push_str(" ENVID=");
                line.push_str(envid);
            }
        }
        line.push_str("\r\n");
        Ok(line)
    }

    /// MAIL, every RCPT and DATA in one write, then their replies in order
    /// (RFC 2920).
    async fn pipelined_envelope(
        &mut self,
        mail: &str,
        envelope: &Envelope<'_>,
    ) -> Result<(Reply, Vec<RecipientResult>, Option<Reply>), Failure> {
        let mut batch = mail.to_string();
        for i in 0..envelope.recipients.len() {
            batch.push_str(&envelope.rcpt_command(i, self.capabilities.dsn));
        }
        batch.push_str("DATA\r\n");
        self.write(batch.as_bytes(), Stage::Mail).await?;
        let mail_reply = self.read_reply(Stage::Mail).await?;
        let mut results = Vec::with_capacity(envelope.recipients.len());
        for _ in envelope.recipients {
            results.push(recipient_result(self.read_reply(Stage::Rcpt).await?));
        }
        let data_reply = self.read_reply(Stage::Data).await?;
        Ok((mail_reply, results, Some(data_reply)))
    }

    /// MAIL and each RCPT, one reply at a time; DATA is left to the caller.
    async fn stepwise_envelope(
        &mut self,
        mail: &str,
        envelope: &Envelope<'_>,
    ) -> Result<(Reply, Vec<RecipientResult>, Option<Reply>), Failure> {
        self.write(mail.as_bytes(), Stage::Mail).await?;
        let mail_reply = self.read_reply(Stage::Mail).await?;
        let mut results = Vec::with_capacity(envelope.recipients.len());
        if mail_reply.is_positive() {
            for i in 0..envelope.recipients.len() {
                let rcpt = envelope.rcpt_command(i, self.capabilities.dsn);
                self.write(rcpt.as_bytes(), Stage::Rcpt).await?;
                results.push(recipient_result(self.read_reply(Stage::Rcpt).await?));
            }
        }
        Ok((mail_reply, results, None))
    }

    /// Ends a DATA that should not have been accepted, sending no message.
    async fn abandon_data(&mut self) {
        if self.write(b".\r\n", Stage::Body).await.is_ok() {
            let _ = self.read_reply(Stage::EndOfData).await;
        }
    }

    /// RSET now, so the next transaction starts clean; a failure here only
    /// marks the connection unusable.
    async fn reset(&mut self) {
        if self.write(b"RSET\r\n", Stage::Rset).await.is_err() {
            return;
        }
        match self.read_reply(Stage::Rset).await {
            Ok(reply) if reply.is_positive() => self.needs_rset = false,
            _ => self.broken = true,
        }
    }

    /// The message, dot-stuffed, with CRLF line ends and the final dot.
    async fn write_message(&mut self, message: &[u8]) -> Result<(), Failure> {
        let mut out = Vec::with_capacity(WRITE_CHUNK.min(message.len() + 5) + 8);
        let mut stuffer = DotStuffer::default();
        for piece in message.chunks(WRITE_CHUNK) {
            stuffer.push(piece, &mut out);
            self.write(&out, Stage::Body).await?;
            out.clear();
        }
        stuffer.finish(&mut out);
        self.write(&out, Stage::Body).await
    }

    async fn write(&mut self, bytes: &[u8], stage: Stage) -> Result<(), Failure> {
        let stream = self.stream.get_mut();
        let written = async {
            stream.write_all(bytes).await?;
            stream.flush().await
        };
        match tokio::time::timeout(self.timeouts.command, written).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.broken = true;
                Err(self.failure(stage, io_failure(&e)))
            }
            Err(_) => {
                self.broken = true;
                Err(self.failure(stage, FailureKind::TimedOut))
            }
        }
    }

    async fn read_reply(&mut self, stage: Stage) -> Result<Reply, Failure> {
        self.read_reply_within(stage, self.timeouts.command).await
    }

    async fn read_reply_within(&mut self, stage: Stage, limit: Duration) -> Result<Reply, Failure> {
        match tokio::time::timeout(limit, read_reply(&mut self.stream)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(kind)) => {
                self.broken = true;
                Err(self.failure(stage, kind))
            }
            Err(_) => {
                self.broken = true;
                Err(self.failure(stage, FailureKind::TimedOut))
            }
        }
    }

    fn failure(&self, stage: Stage, kind: FailureKind) -> Failure {
        Failure {
            peer: self.peer.clone(),
            stage,
            kind,
        }
    }

    fn refused(&self, stage: Stage, reason: &str, permanent: bool) -> Failure {
        self.failure(
            stage,
            FailureKind::Refused {
                reason: reason.to_string(),
                permanent,
            },
        )
    }
}

fn recipient_result(reply: Reply) -> RecipientResult {
    if reply.is_positive() {
        RecipientResult::Accepted
    } else {
        RecipientResult::Rejected(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reply::tests::parse;

    #[tokio::test]
    async fn capabilities_from_ehlo() {
        let r = parse(
            b"250-mx.example.org greets you\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8bitmime\r\n\
              250-STARTTLS\r\n250-AUTH PLAIN login\r\n250-AUTH=CRAM-MD5\r\n250-SMTPUTF8\r\n250-DSN\r\n\
              250 CHUNKING\r\n",
        )
        .await
        .unwrap();
        let caps = Capabilities::from_ehlo(&r);
        assert_eq!(
            caps,
            Capabilities {
                eight_bit_mime: true,
                smtputf8: true,
                pipelining: true,
                size: Some(10_240_000),
                starttls: true,
                tls_active: false,
                chunking: true,
                dsn: true,
                auth: vec!["PLAIN".into(), "LOGIN".into(), "CRAM-MD5".into()],
            }
        );
        assert_eq!(
            r.as_sent(),
            "250-mx.example.org greets you 250-PIPELINING 250-SIZE 10240000 250-8bitmime \
             250-STARTTLS 250-AUTH PLAIN login 250-AUTH=CRAM-MD5 250-SMTPUTF8 250-DSN 250 CHUNKING"
        );
        let r = parse(b"250-mx\r\n250 SIZE\r\n").await.unwrap();
        assert_eq!(Capabilities::from_ehlo(&r).size, Some(0));
        // The greeting line is not a keyword.
        let r = parse(b"250 STARTTLS\r\n").await.unwrap();
        assert!(!Capabilities::from_ehlo(&r).starttls);
    }
}
