//! One outbound SMTP session (RFC 5321) to one [`Hop`].
//!
//! [`Client::connect`] does everything up to the first transaction:
//! greeting, EHLO (HELO when EHLO is refused), STARTTLS as the hop's
//! [`RelayTls`] policy says, and AUTH PLAIN or LOGIN when the hop carries
//! credentials. [`Client::send`] runs one transaction and may be called
//! again on the same connection.
//!
//! Replies are read by a small reader of our own rather than smtp-proto's
//! receiver: a bounce must quote the server's words, enhanced status code
//! included, and a hostile server must not make us buffer without bound
//! (every line and the number of lines are capped).
//!
//! The message is sent with dot-stuffing done here and every line ending
//! made CRLF, so no byte sequence in a stored message can end DATA early
//! at a server that accepts bare LF (SMTP smuggling).
//!
//! To a server that offers DSN (RFC 3461), MAIL carries the client's RET
//! and ENVID and each RCPT its NOTIFY and ORCPT, as the client wrote them
//! (Postfix passes them on the same way); to one that does not, nothing,
//! and the queue manager reports `relayed` where success was asked.

use std::fmt;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use common::config::{RelayConfig, RelayTls};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use store::{DsnReturn, Notify, RecipientDsn};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::route::Hop;

/// Longest reply line we read (RFC 5321 4.5.3.1.5 allows 512 octets; some
/// servers send more).
const MAX_REPLY_LINE: usize = 2048;
/// Most lines in one reply (an EHLO reply has a dozen or two).
const MAX_REPLY_LINES: usize = 100;
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

/// A server's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Every line's text after the code and separator, including the
    /// enhanced status code if the server sent one; lines joined with
    /// `\n`. Control characters are replaced by spaces.
    pub text: String,
}

impl Reply {
    /// 2xx.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 5xx: the server will never accept this.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// The reply as it came, its lines joined with spaces: `550-5.1.1
    /// first line 550 5.1.1 last line`, as Postfix quotes a reply in a
    /// report's `Diagnostic-Code: smtp;`.
    pub fn as_sent(&self) -> String {
        let lines: Vec<&str> = self.text.lines().collect();
        let last = lines.len().saturating_sub(1);
        let mut out = Vec::with_capacity(lines.len().max(1));
        for (i, line) in lines.iter().enumerate() {
            let separator = if i == last { ' ' } else { '-' };
            out.push(format!("{}{separator}{line}", self.code));
        }
        if out.is_empty() {
            out.push(self.code.to_string());
        }
        out.join(" ")
    }

    /// The enhanced status code (RFC 3463) at the start of the first line,
    /// e.g. `5.1.1`.
    pub fn enhanced_code(&self) -> Option<&str> {
        let first = self.text.split_whitespace().next()?;
        crate::reply::is_enhanced_status(first).then_some(first)
    }
}

/// On one line, as a bounce or a log quotes it: `550 5.1.1 No such user`.
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        for line in self.text.lines() {
            write!(f, " {line}")?;
        }
        Ok(())
    }
}

/// Where in the session something happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Greeting,
    Ehlo,
    StartTls,
    Auth,
    Mail,
    Rcpt,
    Data,
    /// Writing the message.
    Body,
    /// Waiting for the reply to the final dot.
    EndOfData,
    Rset,
    Quit,
}

impl Stage {
    /// The command a reply answered, for "(in reply to …)".
    pub fn command(self) -> &'static str {
        match self {
            Stage::Connect | Stage::Greeting => "the initial greeting",
            Stage::Ehlo => "EHLO",
            Stage::StartTls => "STARTTLS",
            Stage::Auth => "AUTH",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::Body | Stage::EndOfData => "end of DATA",
            Stage::Rset => "RSET",
            Stage::Quit => "QUIT",
        }
    }

    /// What we were doing, for "lost connection … while …".
    pub fn activity(self) -> &'static str {
        match self {
            Stage::Connect => "connecting",
            Stage::Greeting => "receiving the initial server greeting",
            Stage::Ehlo => "performing the EHLO handshake",
            Stage::StartTls => "performing the TLS handshake",
            Stage::Auth => "authenticating",
            Stage::Mail => "sending MAIL FROM",
            Stage::Rcpt => "sending RCPT TO",
            Stage::Data => "sending DATA",
            Stage::Body => "sending message body",
            Stage::EndOfData => {
                "waiting for the reply to end of DATA (the message may be delivered twice)"
            }
            Stage::Rset => "sending RSET",
            Stage::Quit => "sending QUIT",
        }
    }
}

/// `host mx.example.org[192.0.2.1]:25 said: 550 5.1.1 No such user (in
/// reply to RCPT TO)`: how a rejection reads in a bounce, for a failed
/// session and for one recipient alike.
pub fn describe_reply(peer: &str, reply: &Reply, stage: Stage) -> String {
    format!(
        "host {peer} said: {reply} (in reply to {})",
        stage.command()
    )
}

/// What went wrong, beyond the stage and the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// The TCP connection could not be made.
    Connect(String),
    /// The server refused (or answered something we did not expect).
    Reply(Reply),
    /// The server closed the connection.
    Closed,
    /// No reply, or no progress writing, within the time limit.
    TimedOut,
    /// A read or write failed.
    Io(String),
    /// The server's reply made no sense.
    Protocol(String),
    /// TLS was required and could not be had, or the handshake failed.
    Tls(String),
    /// We will not go on, for a reason of our own (no way to
    /// authenticate, credentials without TLS, SMTPUTF8 not offered, message
    /// too big for the server).
    Refused { reason: String, permanent: bool },
}

/// A session or transaction that failed as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `host[ip]:port`.
    pub peer: String,
    pub stage: Stage,
    pub kind: FailureKind,
}

impl Failure {
    /// Whether trying again later (or at another hop) may work.
    pub fn is_temporary(&self) -> bool {
        match &self.kind {
            // Postfix's soft bounce for AUTH and TLS: a rejected login or
            // STARTTLS is the sender's configuration to fix, not the
            // recipient's address to bounce.
            FailureKind::Reply(reply) => {
                !reply.is_permanent() || matches!(self.stage, Stage::Auth | Stage::StartTls)
            }
            FailureKind::Refused { permanent, .. } => !permanent,
            _ => true,
        }
    }

    /// The server's reply, when the failure is one.
    pub fn reply(&self) -> Option<&Reply> {
        match &self.kind {
            FailureKind::Reply(reply) => Some(reply),
            _ => None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let peer = &self.peer;
        let activity = self.stage.activity();
        match &self.kind {
            FailureKind::Connect(why) => write!(f, "connect to {peer}: {why}"),
            FailureKind::Reply(reply) if self.stage == Stage::Greeting => {
                write!(f, "host {peer} refused to talk to me: {reply}")
            }
            FailureKind::Reply(reply) => f.write_str(&describe_reply(peer, reply, self.stage)),
            FailureKind::Closed => write!(f, "lost connection with {peer} while {activity}"),
            FailureKind::TimedOut => {
                write!(f, "conversation with {peer} timed out while {activity}")
            }
            FailureKind::Io(why) => {
                write!(f, "lost connection with {peer} while {activity}: {why}")
            }
            FailureKind::Protocol(why) => {
                write!(f, "protocol error with {peer} while {activity}: {why}")
            }
            FailureKind::Tls(why) => write!(f, "TLS with {peer} failed: {why}"),
            FailureKind::Refused { reason, .. } => write!(f, "{reason} ({peer})"),
        }
    }
}

impl std::error::Error for Failure {}

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
        let connector = match tls_connector(hop.tls == RelayTls::Verify) {
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
        let name = server_name(&hop.host, hop.addr.ip());
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

/// Reads one reply, single- or multi-line, within the line limits.
async fn read_reply<R: tokio::io::AsyncBufRead + Unpin>(
    stream: &mut R,
) -> Result<Reply, FailureKind> {
    let mut code = None;
    let mut text = String::new();
    let mut line = Vec::with_capacity(128);
    for count in 0.. {
        if count == MAX_REPLY_LINES {
            return Err(FailureKind::Protocol(format!(
                "reply longer than {MAX_REPLY_LINES} lines"
            )));
        }
        line.clear();
        let n = (&mut *stream)
            .take(MAX_REPLY_LINE as u64)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| io_failure(&e))?;
        if n == 0 {
            return Err(FailureKind::Closed);
        }
        if line.last() != Some(&b'\n') {
            return Err(if n == MAX_REPLY_LINE {
                FailureKind::Protocol(format!("reply line longer than {MAX_REPLY_LINE} bytes"))
            } else {
                FailureKind::Closed
            });
        }
        let (this_code, last, rest) = parse_reply_line(&line)?;
        let code = *code.get_or_insert(this_code);
        if !text.is_empty() {
            text.push('\n');
        }
        text.extend(String::from_utf8_lossy(rest).chars().map(|c| {
            if c.is_control() {
                ' '
            } else {
                c
            }
        }));
        if last {
            return Ok(Reply {
                code,
                text: text.trim_end().to_string(),
            });
        }
    }
    unreachable!("the loop returns")
}

/// `250-text` → (250, false, "text"); `250 text` or `250` → last line.
fn parse_reply_line(line: &[u8]) -> Result<(u16, bool, &[u8]), FailureKind> {
    let line = line
        .strip_suffix(b"\n")
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .unwrap_or(line);
    let garbled = || {
        FailureKind::Protocol(format!(
            "malformed reply line {:?}",
            String::from_utf8_lossy(&line[..line.len().min(80)])
        ))
    };
    if line.len() < 3
        || !line[..3].iter().all(u8::is_ascii_digit)
        || !(b'2'..=b'5').contains(&line[0])
    {
        return Err(garbled());
    }
    let code = line[..3]
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    match line.get(3) {
        None => Ok((code, true, &[])),
        Some(b' ') => Ok((code, true, &line[4..])),
        Some(b'-') => Ok((code, false, &line[4..])),
        Some(_) => Err(garbled()),
    }
}

/// Dot-stuffing (RFC 5321 4.5.2) with line ends made CRLF, fed in pieces.
#[derive(Default)]
struct DotStuffer {
    /// The previous byte was a CR whose line end is not yet written.
    pending_cr: bool,
    /// Something has been written on the current line.
    mid_line: bool,
}

impl DotStuffer {
    fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        for &b in bytes {
            if self.pending_cr {
                self.pending_cr = false;
                out.extend_from_slice(b"\r\n");
                self.mid_line = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' => self.pending_cr = true,
                b'\n' => {
                    out.extend_from_slice(b"\r\n");
                    self.mid_line = false;
                }
                _ => {
                    if b == b'.' && !self.mid_line {
                        out.push(b'.');
                    }
                    out.push(b);
                    self.mid_line = true;
                }
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.pending_cr || self.mid_line {
            out.extend_from_slice(b"\r\n");
        }
        self.pending_cr = false;
        self.mid_line = false;
        out.extend_from_slice(b".\r\n");
    }
}

/// "Connection refused", without the "(os error 111)" that a bounce's
/// reader has no use for.
fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

fn io_failure(e: &std::io::Error) -> FailureKind {
    use std::io::ErrorKind::*;
    match e.kind() {
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe => FailureKind::Closed,
        _ => FailureKind::Io(io_reason(e)),
    }
}

/// The name for SNI and the certificate check: the host as named, or its
/// address when the name is not a DNS name.
fn server_name(host: &str, ip: IpAddr) -> ServerName<'static> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return ServerName::IpAddress(ip.into());
    }
    ServerName::try_from(host.to_string()).unwrap_or(ServerName::IpAddress(ip.into()))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// One connector per policy for the whole process: loading the system's
/// roots reads many files.
fn tls_connector(verify: bool) -> Result<TlsConnector, String> {
    static VERIFYING: OnceLock<Result<TlsConnector, String>> = OnceLock::new();
    static OPPORTUNISTIC: OnceLock<Result<TlsConnector, String>> = OnceLock::new();
    if verify {
        VERIFYING.get_or_init(verifying_connector).clone()
    } else {
        OPPORTUNISTIC.get_or_init(opportunistic_connector).clone()
    }
}

fn verifying_connector() -> Result<TlsConnector, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(format!(
            "no trusted root certificates found on this system ({} errors loading them)",
            found.errors.len()
        ));
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

fn opportunistic_connector() -> Result<TlsConnector, String> {
    let provider = provider();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Accepts any certificate, for `may` and `encrypt`: most MX hosts have
/// no certificate a sender could check (RFC 7435, opportunistic security),
/// and encryption without authentication still defeats passive listeners.
/// Handshake signatures are still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> Result<Reply, FailureKind> {
        let mut reader = BufReader::new(bytes);
        read_reply(&mut reader).await
    }

    #[tokio::test]
    async fn replies_single_and_multi_line() {
        let r = parse(b"250 2.1.0 Ok\r\n").await.unwrap();
        assert_eq!(r.code, 250);
        assert_eq!(r.text, "2.1.0 Ok");
        assert_eq!(r.enhanced_code(), Some("2.1.0"));
        let r = parse(b"550-5.7.1 first\r\n550-5.7.1 second\r\n550 5.7.1 third\r\n")
            .await
            .unwrap();
        assert_eq!(r.code, 550);
        assert_eq!(r.text, "5.7.1 first\n5.7.1 second\n5.7.1 third");
        assert_eq!(r.to_string(), "550 5.7.1 first 5.7.1 second 5.7.1 third");
        let r = parse(b"354\r\n").await.unwrap();
        assert_eq!(
            (r.code, r.text.as_str(), r.enhanced_code()),
            (354, "", None)
        );
        // Bare LF line ends, control characters.
        let r = parse(b"421 bye\x07now\n").await.unwrap();
        assert_eq!(r.text, "bye now");
        assert_eq!(
            parse(b"220 host ESMTP ready\r\n")
                .await
                .unwrap()
                .enhanced_code(),
            None
        );
    }

    #[tokio::test]
    async fn bad_replies_are_errors_not_allocations() {
        assert!(matches!(parse(b"").await, Err(FailureKind::Closed)));
        assert!(matches!(
            parse(b"250-more coming\r\n").await,
            Err(FailureKind::Closed)
        ));
        assert!(matches!(
            parse(b"hello\r\n").await,
            Err(FailureKind::Protocol(_))
        ));
        assert!(matches!(
            parse(b"250x\r\n").await,
            Err(FailureKind::Protocol(_))
        ));
        assert!(matches!(
            parse(b"999 no\r\n").await,
            Err(FailureKind::Protocol(_))
        ));
        let long = [b"250 ".as_slice(), &vec![b'a'; 10_000], b"\r\n"].concat();
        assert!(matches!(parse(&long).await, Err(FailureKind::Protocol(_))));
        let many = b"250-x\r\n".repeat(1000);
        assert!(matches!(parse(&many).await, Err(FailureKind::Protocol(_))));
    }

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

    fn stuff(pieces: &[&[u8]]) -> Vec<u8> {
        let mut stuffer = DotStuffer::default();
        let mut out = Vec::new();
        for piece in pieces {
            stuffer.push(piece, &mut out);
        }
        stuffer.finish(&mut out);
        out
    }

    #[test]
    fn dot_stuffing_and_line_ends() {
        assert_eq!(stuff(&[b"a\r\n.b\r\n..\r\n"]), b"a\r\n..b\r\n...\r\n.\r\n");
        assert_eq!(stuff(&[b".start"]), b"..start\r\n.\r\n");
        assert_eq!(stuff(&[b""]), b".\r\n");
        assert_eq!(stuff(&[b"x\r\n"]), b"x\r\n.\r\n");
        // Bare LF and bare CR become CRLF: nothing can end DATA early.
        assert_eq!(stuff(&[b"a\n.\nb\rc"]), b"a\r\n..\r\nb\r\nc\r\n.\r\n");
        // Split anywhere, even inside CRLF or before a dot.
        let whole = b"line\r\n.dot\r\nend\r\n";
        for at in 0..whole.len() {
            assert_eq!(
                stuff(&[&whole[..at], &whole[at..]]),
                stuff(&[whole]),
                "split at {at}"
            );
        }
    }

    #[test]
    fn failures_read_well() {
        let reply = Reply {
            code: 550,
            text: "5.7.1 relaying denied".into(),
        };
        let f = Failure {
            peer: "mx.example.org[192.0.2.1]:25".into(),
            stage: Stage::Mail,
            kind: FailureKind::Reply(reply.clone()),
        };
        assert_eq!(
            f.to_string(),
            "host mx.example.org[192.0.2.1]:25 said: 550 5.7.1 relaying denied (in reply to MAIL FROM)"
        );
        assert!(!f.is_temporary());
        assert_eq!(f.reply(), Some(&reply));
        let f = Failure {
            stage: Stage::Body,
            kind: FailureKind::Closed,
            ..f
        };
        assert_eq!(
            f.to_string(),
            "lost connection with mx.example.org[192.0.2.1]:25 while sending message body"
        );
        assert!(f.is_temporary());
        let auth = Failure {
            stage: Stage::Auth,
            kind: FailureKind::Reply(Reply {
                code: 535,
                text: "5.7.8 bad credentials".into(),
            }),
            ..f
        };
        assert!(auth.is_temporary());
    }
}
