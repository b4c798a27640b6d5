//! A scripted remote SMTP server: the world outside for tests of the
//! relay client and the queue manager.
//!
//! ```ignore
//! let fake = FakeSmtp::start(Behaviour::default()).await;
//! // … point a Hop or a transport at fake.addr() …
//! fake.set_behaviour(|b| b.mail_reply = "451 4.3.0 try later".into());
//! let seen = fake.transactions();
//! ```
//!
//! It binds a free port of 127.0.0.1, answers what its [`Behaviour`]
//! says, and records every session's commands and every message it
//! received (dot-stuffing undone). STARTTLS uses a fresh self-signed
//! certificate for `localhost`. A behaviour change applies from the next
//! session on, so a test can say "4xx now, 2xx at the retry".

use std::future::pending;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use common::tls::{MaybeTlsStream, TlsAcceptor};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// A point in the session where the fake can stop answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Greeting,
    Ehlo,
    Mail,
    Rcpt,
    Data,
    /// After the whole message was received (and recorded).
    EndOfData,
}

/// Decides the reply to one RCPT from the address (without `<>`).
pub type RcptReply = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// What the fake says. Replies are whole reply lines without the final
/// CRLF; a multi-line reply separates its lines with `\r\n`.
#[derive(Clone)]
pub struct Behaviour {
    /// Default `220 fake.test ESMTP`. Anything but 2xx makes every later
    /// command but QUIT get `503`.
    pub greeting: String,
    /// EHLO keywords after the greeting line, e.g. `PIPELINING`,
    /// `SIZE 1000`, `STARTTLS`, `AUTH PLAIN LOGIN`. STARTTLS is dropped
    /// from the list once TLS is on. Default: PIPELINING, 8BITMIME,
    /// ENHANCEDSTATUSCODES, SIZE 10240000.
    pub capabilities: Vec<String>,
    /// Replaces the whole EHLO reply (e.g. `502 5.5.1 no EHLO here`);
    /// HELO still gets 250.
    pub ehlo_reply: Option<String>,
    /// After `220` to STARTTLS, send garbage instead of a handshake.
    pub tls_handshake_fails: bool,
    /// Credentials AUTH must give (PLAIN or LOGIN) before MAIL is
    /// accepted.
    pub require_auth: Option<(String, String)>,
    /// Default `250 2.1.0 Ok`.
    pub mail_reply: String,
    /// Default: `250 2.1.5 Ok` for everyone.
    pub rcpt_reply: RcptReply,
    /// Default `354 End data with <CR><LF>.<CR><LF>`.
    pub data_reply: String,
    /// The reply to the final dot. Default `250 2.0.0 Ok: queued`.
    pub end_of_data_reply: String,
    /// Close the connection once this many bytes of the message (as sent,
    /// dot-stuffed) have arrived.
    pub drop_after_data_bytes: Option<usize>,
    /// Read the command at this step but never answer (the connection
    /// stays open).
    pub hang_at: Option<Step>,
    /// Wait this long before answering the command at this step (a slow
    /// peer: the client's delivery stays in progress meanwhile).
    pub slow_at: Option<(Step, std::time::Duration)>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            greeting: "220 fake.test ESMTP".into(),
            capabilities: [
                "PIPELINING",
                "8BITMIME",
                "ENHANCEDSTATUSCODES",
                "SIZE 10240000",
            ]
            .map(String::from)
            .to_vec(),
            ehlo_reply: None,
            tls_handshake_fails: false,
            require_auth: None,
            mail_reply: "250 2.1.0 Ok".into(),
            rcpt_reply: Arc::new(|_| "250 2.1.5 Ok".into()),
            data_reply: "354 End data with <CR><LF>.<CR><LF>".into(),
            end_of_data_reply: "250 2.0.0 Ok: queued".into(),
            drop_after_data_bytes: None,
            hang_at: None,
            slow_at: None,
        }
    }
}

impl Behaviour {
    /// The default behaviour offering exactly these EHLO keywords.
    pub fn with_capabilities(capabilities: &[&str]) -> Behaviour {
        Behaviour {
            capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
            ..Behaviour::default()
        }
    }

    /// Answers RCPT for `address` (case-insensitive) with `reply`, others
    /// with 250.
    pub fn reject_recipient(mut self, address: &str, reply: &str) -> Behaviour {
        let address = address.to_ascii_lowercase();
        let reply = reply.to_string();
        self.rcpt_reply = Arc::new(move |rcpt| {
            if rcpt.eq_ignore_ascii_case(&address) {
                reply.clone()
            } else {
                "250 2.1.5 Ok".into()
            }
        });
        self
    }
}

/// One message the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// The EHLO or HELO argument of the session.
    pub helo: String,
    /// Everything after `MAIL FROM:`, e.g. `<a@b.test> BODY=8BITMIME`.
    pub mail_from: String,
    /// Recipients answered 2xx, without `<>`.
    pub recipients: Vec<String>,
    /// The message with dot-stuffing undone, every line with its CRLF.
    pub message: Vec<u8>,
    /// The session was under TLS.
    pub tls: bool,
    /// The user name that authenticated, if any.
    pub authenticated: Option<String>,
    /// What the fake answered to the final dot (empty if it hung).
    pub reply: String,
}

impl Transaction {
    /// The reverse path without `<>`.
    pub fn sender(&self) -> &str {
        let path = self.mail_from.split_whitespace().next().unwrap_or("");
        path.trim_start_matches('<').trim_end_matches('>')
    }

    /// The MAIL FROM parameters, e.g. `["BODY=8BITMIME", "SIZE=12"]`.
    pub fn params(&self) -> Vec<&str> {
        self.mail_from.split_whitespace().skip(1).collect()
    }
}

#[derive(Default)]
struct Record {
    transactions: Vec<Transaction>,
    commands: Vec<String>,
    protocol_errors: Vec<String>,
    pipelined: usize,
}

struct Shared {
    behaviour: Mutex<Behaviour>,
    record: Mutex<Record>,
    sessions: AtomicUsize,
    tls: TlsAcceptor,
}

/// The running fake; stops (with every session) when dropped.
pub struct FakeSmtp {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
    _tls_dir: TempDir,
}

impl FakeSmtp {
    pub async fn start(behaviour: Behaviour) -> FakeSmtp {
        let tls_dir = tempfile::tempdir().expect("temp dir");
        let tls = common::tls::acceptor(&common::config::TlsConfig::default(), tls_dir.path())
            .expect("self-signed TLS");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let shared = Arc::new(Shared {
            behaviour: Mutex::new(behaviour),
            record: Mutex::default(),
            sessions: AtomicUsize::new(0),
            tls,
        });
        let accepting = shared.clone();
        let accept = tokio::spawn(async move {
            // Owned here, so aborting this task ends every session.
            let mut sessions = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((tcp, _)) = accepted else { continue };
                        accepting.sessions.fetch_add(1, Ordering::SeqCst);
                        let behaviour = accepting.behaviour.lock().unwrap().clone();
                        sessions.spawn(Session::new(accepting.clone(), behaviour).run(tcp));
                    }
                    Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
                }
            }
        });
        FakeSmtp {
            addr,
            shared,
            accept,
            _tls_dir: tls_dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes the behaviour for sessions that start from now on.
    pub fn set_behaviour(&self, change: impl FnOnce(&mut Behaviour)) {
        change(&mut self.shared.behaviour.lock().unwrap());
    }

    /// Every message received so far, in order.
    pub fn transactions(&self) -> Vec<Transaction> {
        self.shared.record.lock().unwrap().transactions.clone()
    }

    /// Every command line received so far, over all sessions, in order
    /// (message bodies and AUTH responses excluded).
    pub fn commands(&self) -> Vec<String> {
        self.shared.record.lock().unwrap().commands.clone()
    }

    /// Client misbehaviour seen: commands pipelined without PIPELINING,
    /// lines without CRLF.
    pub fn protocol_errors(&self) -> Vec<String> {
        self.shared.record.lock().unwrap().protocol_errors.clone()
    }

    /// Commands that arrived with the next one already waiting behind
    /// them (the client pipelined).
    pub fn pipelined_commands(&self) -> usize {
        self.shared.record.lock().unwrap().pipelined
    }

    /// Connections accepted so far.
    pub fn sessions(&self) -> usize {
        self.shared.sessions.load(Ordering::SeqCst)
    }
}

impl Drop for FakeSmtp {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Longest command line the fake reads.
const LINE_LIMIT: u64 = 64 * 1024;

struct Session {
    shared: Arc<Shared>,
    behaviour: Behaviour,
    helo: String,
    tls: bool,
    authenticated: Option<String>,
    mail_from: Option<String>,
    recipients: Vec<String>,
}

enum Next {
    Continue,
    Close,
}

impl Session {
    fn new(shared: Arc<Shared>, behaviour: Behaviour) -> Session {
        Session {
            shared,
            behaviour,
            helo: String::new(),
            tls: false,
            authenticated: None,
            mail_from: None,
            recipients: Vec::new(),
        }
    }

    async fn run(mut self, tcp: tokio::net::TcpStream) {
        let mut stream = BufReader::new(MaybeTlsStream::plain(tcp));
        self.hang_if(Step::Greeting).await;
        let refusing = !self.behaviour.greeting.starts_with('2');
        let greeting = self.behaviour.greeting.clone();
        if send(&mut stream, &greeting).await.is_err() {
            return;
        }
        loop {
            let Some(line) = self.read_line(&mut stream).await else {
                return;
            };
            let pipelining = self.offers("PIPELINING");
            let verb = line
                .split([' ', ':'])
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            let more_waiting = !stream.buffer().is_empty();
            // Without PIPELINING a client must wait for each reply.
            if !pipelining && more_waiting && verb != "QUIT" {
                self.error(format!("pipelined without PIPELINING after {line:?}"));
            }
            if more_waiting {
                self.shared.record.lock().unwrap().pipelined += 1;
            }
            self.shared
                .record
                .lock()
                .unwrap()
                .commands
                .push(line.clone());
            if refusing && verb != "QUIT" {
                if send(&mut stream, "503 5.5.1 go away").await.is_err() {
                    return;
                }
                continue;
            }
            let next = match verb.as_str() {
                "STARTTLS" => match self.start_tls(stream).await {
                    Some(upgraded) => {
                        stream = upgraded;
                        continue;
                    }
                    None => return,
                },
                "DATA" => self.data(&mut stream).await,
                "AUTH" => self.auth(&mut stream, &line).await,
                _ => {
                    let reply = self.answer(&verb, &line).await;
                    match send(&mut stream, &reply).await {
                        Ok(()) if verb == "QUIT" => Next::Close,
                        Ok(()) => Next::Continue,
                        Err(_) => Next::Close,
                    }
                }
            };
            if let Next::Close = next {
                return;
            }
        }
    }

    fn offers(&self, keyword: &str) -> bool {
        self.behaviour
            .capabilities
            .iter()
            .any(|c| c.split_whitespace().next() == Some(keyword))
    }

    fn error(&self, what: String) {
        self.shared
            .record
            .lock()
            .unwrap()
            .protocol_errors
            .push(what);
    }

    async fn hang_if(&self, step: Step) {
        if let Some((slow, wait)) = self.behaviour.slow_at {
            if slow == step {
                tokio::time::sleep(wait).await;
            }
        }
        if self.behaviour.hang_at == Some(step) {
            pending::<()>().await;
        }
    }

    /// One CRLF line without its CRLF, or `None` at EOF.
    async fn read_line(&self, stream: &mut BufReader<MaybeTlsStream>) -> Option<String> {
        let mut line = Vec::new();
        let n = (&mut *stream)
            .take(LINE_LIMIT)
            .read_until(b'\n', &mut line)
            .await
            .ok()?;
        if n == 0 {
            return None;
        }
        if !line.ends_with(b"\r\n") {
            self.error(format!(
                "line without CRLF: {:?}",
                String::from_utf8_lossy(&line)
            ));
        }
        let text = String::from_utf8_lossy(&line);
        Some(text.trim_end_matches(['\r', '\n']).to_string())
    }

    /// The reply to a command that needs nothing but a reply.
    async fn answer(&mut self, verb: &str, line: &str) -> String {
        let arg = |prefix: &str| line.get(prefix.len()..).unwrap_or("").trim().to_string();
        match verb {
            "EHLO" => {
                self.hang_if(Step::Ehlo).await;
                self.reset();
                self.helo = arg("EHLO");
                if let Some(reply) = &self.behaviour.ehlo_reply {
                    return reply.clone();
                }
                let mut lines = vec!["fake.test greets you".to_string()];
                lines.extend(
                    self.behaviour
                        .capabilities
                        .iter()
                        .filter(|c| !(self.tls && c.as_str() == "STARTTLS"))
                        .cloned(),
                );
                multiline(250, &lines)
            }
            "HELO" => {
                self.reset();
                self.helo = arg("HELO");
                "250 fake.test".into()
            }
            "MAIL" => {
                self.hang_if(Step::Mail).await;
                if self.behaviour.require_auth.is_some() && self.authenticated.is_none() {
                    return "530 5.7.0 Authentication required".into();
                }
                if self.mail_from.is_some() {
                    return "503 5.5.1 Nested MAIL command".into();
                }
                let reply = self.behaviour.mail_reply.clone();
                if reply.starts_with('2') {
                    self.mail_from = Some(arg("MAIL FROM:"));
                }
                reply
            }
            "RCPT" => {
                self.hang_if(Step::Rcpt).await;
                if self.mail_from.is_none() {
                    return "503 5.5.1 MAIL first".into();
                }
                let address = arg("RCPT TO:");
                let address = address
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string();
                let reply = (self.behaviour.rcpt_reply)(&address);
                if reply.starts_with('2') {
                    self.recipients.push(address);
                }
                reply
            }
            "RSET" => {
                self.reset();
                "250 2.0.0 Ok".into()
            }
            "NOOP" => "250 2.0.0 Ok".into(),
            "QUIT" => "221 2.0.0 Bye".into(),
            _ => "502 5.5.2 Command not recognized".into(),
        }
    }

    fn reset(&mut self) {
        self.mail_from = None;
        self.recipients.clear();
    }

    async fn start_tls(
        &mut self,
        mut stream: BufReader<MaybeTlsStream>,
    ) -> Option<BufReader<MaybeTlsStream>> {
        if self.tls || !self.offers("STARTTLS") {
            send(&mut stream, "502 5.5.1 STARTTLS not offered")
                .await
                .ok()?;
            return Some(stream);
        }
        send(&mut stream, "220 2.0.0 Ready to start TLS")
            .await
            .ok()?;
        if self.behaviour.tls_handshake_fails {
            let _ = stream.get_mut().write_all(b"this is not TLS\r\n").await;
            return None;
        }
        // Whatever the client sent before the handshake is dropped.
        let upgraded = stream.into_inner().upgrade(&self.shared.tls).await.ok()?;
        self.tls = true;
        self.reset();
        Some(BufReader::new(upgraded))
    }

    async fn auth(&mut self, stream: &mut BufReader<MaybeTlsStream>, line: &str) -> Next {
        let mut words = line.split_whitespace().skip(1);
        let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
        let initial = words.next().map(str::to_string);
        let decode = |s: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        let credentials = match mechanism.as_str() {
            "PLAIN" => {
                let token = match initial {
                    Some(token) => token,
                    None => {
                        if send(stream, "334 ").await.is_err() {
                            return Next::Close;
                        }
                        match self.read_line(stream).await {
                            Some(line) => line,
                            None => return Next::Close,
                        }
                    }
                };
                let decoded = decode(&token);
                let mut parts = decoded.split('\0').skip(1);
                (
                    parts.next().unwrap_or("").to_string(),
                    parts.next().unwrap_or("").to_string(),
                )
            }
            "LOGIN" => {
                let mut answers = Vec::new();
                for prompt in ["334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6"] {
                    if send(stream, prompt).await.is_err() {
                        return Next::Close;
                    }
                    match self.read_line(stream).await {
                        Some(line) => answers.push(decode(&line)),
                        None => return Next::Close,
                    }
                }
                (answers[0].clone(), answers[1].clone())
            }
            _ => {
                return match send(stream, "504 5.5.4 Unrecognized mechanism").await {
                    Ok(()) => Next::Continue,
                    Err(_) => Next::Close,
                }
            }
        };
        let reply = match &self.behaviour.require_auth {
            Some((user, password)) if (user, password) == (&credentials.0, &credentials.1) => {
                self.authenticated = Some(credentials.0);
                "235 2.7.0 Authentication successful"
            }
            _ => "535 5.7.8 Authentication credentials invalid",
        };
        match send(stream, reply).await {
            Ok(()) => Next::Continue,
            Err(_) => Next::Close,
        }
    }

    async fn data(&mut self, stream: &mut BufReader<MaybeTlsStream>) -> Next {
        self.hang_if(Step::Data).await;
        let reply = if self.mail_from.is_none() {
            "503 5.5.1 MAIL first".to_string()
        } else if self.recipients.is_empty() {
            "554 5.5.1 No valid recipients".to_string()
        } else {
            self.behaviour.data_reply.clone()
        };
        if send(stream, &reply).await.is_err() {
            return Next::Close;
        }
        if !reply.starts_with("354") {
            return Next::Continue;
        }
        let mut message = Vec::new();
        let mut received = 0usize;
        loop {
            let mut line = Vec::new();
            let n = match stream.read_until(b'\n', &mut line).await {
                Ok(n) => n,
                Err(_) => return Next::Close,
            };
            if n == 0 {
                return Next::Close;
            }
            received += n;
            if self
                .behaviour
                .drop_after_data_bytes
                .is_some_and(|limit| received >= limit)
            {
                return Next::Close;
            }
            if line == b".\r\n" {
                break;
            }
            if !line.ends_with(b"\r\n") {
                self.error("message line without CRLF".into());
            }
            let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
            message.extend_from_slice(unstuffed);
        }
        let hang = self.behaviour.hang_at == Some(Step::EndOfData);
        let reply = if hang {
            String::new()
        } else {
            self.behaviour.end_of_data_reply.clone()
        };
        self.shared
            .record
            .lock()
            .unwrap()
            .transactions
            .push(Transaction {
                helo: self.helo.clone(),
                mail_from: self.mail_from.take().unwrap_or_default(),
                recipients: std::mem::take(&mut self.recipients),
                message,
                tls: self.tls,
                authenticated: self.authenticated.clone(),
                reply: reply.clone(),
            });
        self.hang_if(Step::EndOfData).await;
        match send(stream, &reply).await {
            Ok(()) => Next::Continue,
            Err(_) => Next::Close,
        }
    }
}

/// `code-line` … `code line` from the lines' texts.
fn multiline(code: u16, lines: &[String]) -> String {
    let last = lines.len().saturating_sub(1);
    lines
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let sep = if i == last { ' ' } else { '-' };
            format!("{code}{sep}{text}")
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

async fn send(stream: &mut BufReader<MaybeTlsStream>, reply: &str) -> std::io::Result<()> {
    let inner = stream.get_mut();
    inner.write_all(format!("{reply}\r\n").as_bytes()).await?;
    inner.flush().await
}
