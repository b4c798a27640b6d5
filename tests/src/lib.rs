//! Test harness for Postern's black-box tests: real servers on free ports
//! with temporary data dirs, and raw-protocol clients (plain and TLS).
//!
//! Two ways to run a server:
//! - [`Server::start`]: smtpd in this process (fast, and the test can look
//!   in the store directly);
//! - [`Binary::start`]: the real `postern` binary as a child process (for
//!   signals, kill -9 and the CLI). Cargo builds it for `cargo test
//!   --workspace` because the `postern` package has integration tests.
#![forbid(unsafe_code)]

pub mod fake_smtp;
pub mod pg_cluster;

use std::io::{BufRead, BufReader as StdBufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::config::Config;
use store::{AccountId, MessageInfo, Store};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub const PASSWORD: &str = "correct horse battery staple";

/// A config with every listener on a free port of 127.0.0.1.
pub fn test_config(data_dir: &Path) -> Config {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    };
    let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
    config.smtp.listen = vec![any];
    config.smtp.submission_listen = vec![any];
    config.smtp.submissions_listen = vec![any];
    config.queue.min_backoff_secs = 1;
    config.queue.max_backoff_secs = 2;
    config
}

pub use common::testutil::shared;

/// smtpd running inside the test process.
pub struct Server {
    pub dir: TempDir,
    pub store: Store,
    pub config: Arc<Config>,
    pub smtp: SocketAddr,
    pub submission: SocketAddr,
    pub submissions: SocketAddr,
    /// The failure rules smtpd applies: set them here as the HTTP API
    /// would.
    pub rules: common::rules::Rules,
    /// Where smtpd tells of refused commands.
    pub events: common::events::EventBus,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    /// The tasks on `tracker` before any session (listeners, the queue
    /// manager): see [`Server::sessions`].
    background: usize,
}

impl Server {
    /// Starts with defaults (on free ports) and the account
    /// `alice@localhost`.
    pub async fn start() -> Server {
        Self::start_with(|_| {}).await
    }

    /// Starts after `adjust` has changed the config.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(dir.path());
        adjust(&mut config);
        let config = Arc::new(config);
        // As the daemons open it: `[store]` bounds its history.
        let store = common::daemon::open_store(&config).expect("open store");
        store
            .add_account("alice@localhost", PASSWORD)
            .await
            .expect("add alice");
        let rules = common::rules::Rules::new(&config.rules);
        let events = common::events::EventBus::default();
        let ctx = Arc::new(smtpd::SmtpContext {
            shared: shared(config.clone(), store.clone()),
            queue: smtpd::QueueHandle::default(),
            rules: rules.clone(),
            events: events.clone(),
        });
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let bound = smtpd::start(ctx, shutdown.clone(), &tracker)
            .await
            .expect("start smtpd");
        let find = |role: smtpd::Role| bound.iter().find(|b| b.role == role).map(|b| b.addr);
        let unbound: SocketAddr = "127.0.0.1:9".parse().expect("address");
        Server {
            smtp: find(smtpd::Role::Mx).unwrap_or(unbound),
            submission: find(smtpd::Role::Submission).unwrap_or(unbound),
            submissions: find(smtpd::Role::Submissions).unwrap_or(unbound),
            dir,
            store,
            config,
            rules,
            events,
            shutdown,
            background: tracker.len(),
            tracker,
        }
    }

    /// How many SMTP sessions are running (their tasks have not ended).
    pub fn sessions(&self) -> usize {
        self.tracker.len().saturating_sub(self.background)
    }

    pub async fn account(&self, address: &str) -> AccountId {
        self.store
            .account(address)
            .await
            .expect("lookup")
            .expect("account exists")
            .id
    }

    /// Waits until `address`'s INBOX holds `count` messages (at most 20 s).
    /// Sends one message per subject from bob@example.com to `to` over SMTP
    /// (each answered 250); delivery happens in the background.
    pub async fn send_subjects(&self, to: &str, subjects: &[&str]) {
        let messages: Vec<Vec<u8>> = subjects.iter().map(|s| message(s, "body")).collect();
        self.send_messages(to, &messages).await;
    }

    /// Sends these messages from bob@example.com to `to` over SMTP, one
    /// session, each answered 250; delivery happens in the background.
    pub async fn send_messages(&self, to: &str, messages: &[Vec<u8>]) {
        let (mut smtp, greeting) = SmtpClient::connect(self.smtp).await;
        assert_eq!(greeting.code, 220);
        assert_eq!(smtp.cmd("EHLO client.example").await.code, 250);
        for m in messages {
            let r = smtp.send_mail("bob@example.com", &[to], m).await;
            assert_eq!(r.code, 250, "{}", r.text());
        }
    }

    pub async fn wait_for_inbox(&self, address: &str, count: usize) -> Vec<MessageInfo> {
        let id = self.account(address).await;
        wait_for_messages(&self.store, id, "INBOX", count).await
    }

    /// The raw bytes of a message.
    pub async fn raw(&self, address: &str, uid: store::Uid) -> Vec<u8> {
        let id = self.account(address).await;
        self.store
            .message_raw(id, "INBOX", uid)
            .await
            .expect("read")
            .expect("message exists")
    }

    /// Stops accepting and waits for sessions (at most 10 s).
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.tracker.wait()).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Polls until the mailbox holds `count` messages; panics after 20 s with
/// what it holds.
pub async fn wait_for_messages(
    store: &Store,
    account: AccountId,
    mailbox: &str,
    count: usize,
) -> Vec<MessageInfo> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let messages = store
            .messages(account, mailbox)
            .await
            .expect("list messages");
        if messages.len() >= count {
            return messages;
        }
        if Instant::now() > deadline {
            panic!(
                "expected {count} messages in {mailbox}, found {}",
                messages.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Where cargo put the workspace's binaries (next to `deps/`).
pub fn binary_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (which builds it) or `cargo build --bins` first",
        path.display()
    );
    path
}

/// The `postern` binary running `up` as a child process.
pub struct Binary {
    pub child: Child,
    pub data_dir: PathBuf,
    pub config_path: PathBuf,
    pub smtp: SocketAddr,
    pub submission: SocketAddr,
    pub submissions: SocketAddr,
    pub pop3: SocketAddr,
    pub pop3s: SocketAddr,
    pub imap: SocketAddr,
    pub imaps: SocketAddr,
    pub http: SocketAddr,
    pub stdout_lines: Vec<String>,
}

/// The first line of a config [`Binary::start_up_env`] writes (and may
/// write again with other ports); a test's own config is left alone.
const GENERATED: &str = "# written by postern-tests with picked ports\n";

impl Binary {
    /// Writes a config with free ports into `data_dir/../postern.toml`
    /// (unless one exists) and starts `postern up`, waiting for `ready`.
    /// A config of one's own must give every listener (SMTP, POP3, IMAP,
    /// HTTP) an address: `Binary` finds each in the `listening on` lines.
    pub fn start(data_dir: &Path) -> Binary {
        Self::start_with(data_dir, "")
    }

    /// [`Binary::start`], with `extra` TOML (whole sections, such as
    /// `[relay]`) after the written config's own.
    pub fn start_with(data_dir: &Path, extra: &str) -> Binary {
        Self::start_up(data_dir, extra, &[])
    }

    /// [`Binary::start_with`], with `args` after `up` (`--capture`).
    pub fn start_up(data_dir: &Path, extra: &str, args: &[&str]) -> Binary {
        Self::start_up_env(data_dir, extra, args, &[])
    }

    /// [`Binary::start_up`], with `POSTERN_…` variables set for keys of
    /// sections the written config already has (`[queue]`).
    pub fn start_up_env(
        data_dir: &Path,
        extra: &str,
        args: &[&str],
        vars: &[(&str, &str)],
    ) -> Binary {
        // A port picked for the config may be taken by the time the
        // server binds it (another test's client connection got it as its
        // local port): a server that exits before it is ready gets a new
        // config with other ports, twice at most.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let config_path = data_dir.with_extension("toml");
            if !config_path.exists() {
                let ports: Vec<u16> = (0..8).map(|_| free_port()).collect();
                let mut text = format!(
                    "{GENERATED}log = \"warn\"\n[smtp]\nlisten = [\"127.0.0.1:{}\"]\nsubmission_listen = [\"127.0.0.1:{}\"]\nsubmissions_listen = [\"127.0.0.1:{}\"]\n[queue]\nmin_backoff_secs = 1\nmax_backoff_secs = 2\n[pop3]\nlisten = [\"127.0.0.1:{}\"]\npop3s_listen = [\"127.0.0.1:{}\"]\n[imap]\nlisten = [\"127.0.0.1:{}\"]\nimaps_listen = [\"127.0.0.1:{}\"]\n[http]\nlisten = [\"127.0.0.1:{}\"]\n",
                    ports[0], ports[1], ports[2], ports[3], ports[4], ports[5], ports[6], ports[7]
                );
                text.push_str(extra);
                std::fs::write(&config_path, text).expect("write config");
            }
            let mut command = postern_command();
            command
                .arg("--data-dir")
                .arg(data_dir)
                .arg("--config")
                .arg(&config_path)
                .arg("up")
                .args(args)
                .envs(vars.iter().copied());
            // Only a config written here (its ports picked here) is made
            // anew; a test's own is kept.
            let generated =
                std::fs::read_to_string(&config_path).is_ok_and(|t| t.starts_with(GENERATED));
            match Self::launch(command, data_dir, config_path.clone(), true) {
                Ok(binary) => return binary,
                Err(lines) if attempts < 3 && generated => {
                    eprintln!("postern up exited before it was ready ({lines:?}); new ports");
                    let _ = std::fs::remove_file(&config_path);
                }
                Err(lines) => panic!("postern up exited before it was ready; stdout: {lines:?}"),
            }
        }
    }

    /// `postern up` with no config file and no flags: everything from
    /// `vars`, the `POSTERN_…` environment variables (the caller's own
    /// `POSTERN_` variables are not passed on). Listeners the variables
    /// disable get the unused address 127.0.0.1:9.
    pub fn start_env(vars: &[(&str, &str)]) -> Binary {
        let mut command = postern_command();
        command.arg("up").envs(vars.iter().copied());
        let data_dir = vars
            .iter()
            .find(|(k, _)| *k == "POSTERN_DATA_DIR")
            .map(|(_, v)| PathBuf::from(v))
            .unwrap_or_else(|| PathBuf::from("./postern-data"));
        Self::launch(command, &data_dir, PathBuf::new(), false).unwrap_or_else(|lines| {
            panic!("postern up exited before it was ready; stdout: {lines:?}")
        })
    }

    /// Spawns `command`, waits for `postern: ready` and reads the
    /// listeners from the `listening on` lines (each must be there if
    /// `every_listener`); the lines it printed if it exited first.
    fn launch(
        mut command: Command,
        data_dir: &Path,
        config_path: PathBuf,
        every_listener: bool,
    ) -> Result<Binary, Vec<String>> {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn postern up");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in StdBufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let ready = line.starts_with("postern: ready");
                    lines.push(line);
                    if ready {
                        break;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(lines);
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    panic!("postern up did not become ready; stdout: {lines:?}");
                }
            }
        }
        let unbound: SocketAddr = "127.0.0.1:9".parse().expect("address");
        let find = |name: &str| {
            lines
                .iter()
                .find_map(|l| {
                    let rest = l.strip_prefix(&format!("postern: {name} listening on "))?;
                    rest.split_whitespace().next()?.parse().ok()
                })
                .or((!every_listener).then_some(unbound))
                .unwrap_or_else(|| panic!("no {name} listener in {lines:?}"))
        };
        Ok(Binary {
            smtp: find("smtp"),
            submission: find("submission"),
            submissions: find("submissions"),
            pop3: find("pop3"),
            pop3s: find("pop3s"),
            imap: find("imap"),
            imaps: find("imaps"),
            http: find("http"),
            child,
            data_dir: data_dir.to_path_buf(),
            config_path,
            stdout_lines: lines,
        })
    }

    /// Sends a signal with the `kill` command and waits for the exit.
    pub fn signal_and_wait(
        &mut self,
        signal: &str,
        limit: Duration,
    ) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `postern` binary without the caller's `POSTERN_…` variables, which
/// would be read as config keys.
pub fn postern_command() -> Command {
    let mut command = Command::new(binary_path("postern"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("POSTERN_") {
            command.env_remove(name);
        }
    }
    command
}

/// Runs `postern --data-dir DIR args…` to completion, feeding `stdin`.
pub fn postern_cli(data_dir: &Path, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = postern_command()
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn postern");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    child.wait_with_output().expect("postern output")
}

/// `postern user add alice@localhost` with [`PASSWORD`] on `data_dir`, as
/// a user would (from a multi-threaded tokio test: it blocks in place).
pub fn add_alice(data_dir: &Path) {
    let out = tokio::task::block_in_place(|| {
        postern_cli(
            data_dir,
            &["user", "add", "alice@localhost", "--password-stdin"],
            &format!("{PASSWORD}\n"),
        )
    });
    assert!(
        out.status.success(),
        "user add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A rustls client config that trusts the data dir's generated certificate.
pub fn client_tls(data_dir: &Path) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(data_dir.join("tls/cert.pem")).expect("cert file") {
        roots.add(cert.expect("cert")).expect("add root");
    }
    common::tls::client::trusting(roots).expect("client TLS config")
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One SMTP reply as the client saw it.
#[derive(Debug, Clone)]
pub struct SmtpReply {
    pub code: u16,
    /// Each line's text after `NNN-` / `NNN `.
    pub lines: Vec<String>,
}

impl SmtpReply {
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// A raw SMTP client: send bytes, read replies.
pub struct SmtpClient {
    stream: BufReader<Box<dyn Stream>>,
}

impl SmtpClient {
    /// Connects and reads the greeting.
    pub async fn connect(addr: SocketAddr) -> (SmtpClient, SmtpReply) {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let mut client = SmtpClient {
            stream: BufReader::new(Box::new(tcp)),
        };
        let greeting = client.reply().await;
        (client, greeting)
    }

    /// Connects with implicit TLS and reads the greeting.
    pub async fn connect_tls(addr: SocketAddr, data_dir: &Path) -> (SmtpClient, SmtpReply) {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        let tls = client_tls(data_dir)
            .connect(name, tcp)
            .await
            .expect("TLS handshake");
        let mut client = SmtpClient {
            stream: BufReader::new(Box::new(tls)),
        };
        let greeting = client.reply().await;
        (client, greeting)
    }

    /// After a `220` to STARTTLS: performs the client handshake. Anything
    /// buffered but unread is dropped, as a client must.
    pub async fn start_tls(self, data_dir: &Path) -> SmtpClient {
        let inner = self.stream.into_inner();
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        let tls = client_tls(data_dir)
            .connect(name, inner)
            .await
            .expect("TLS handshake");
        SmtpClient {
            stream: BufReader::new(Box::new(tls)),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        let stream = self.stream.get_mut();
        stream.write_all(bytes).await.expect("write");
        stream.flush().await.expect("flush");
    }

    /// Sends one command line (CRLF added) and reads the reply.
    pub async fn cmd(&mut self, line: &str) -> SmtpReply {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// Reads one (possibly multi-line) reply; panics on EOF or after 30 s.
    pub async fn reply(&mut self) -> SmtpReply {
        match tokio::time::timeout(Duration::from_secs(30), self.try_reply()).await {
            Ok(Some(reply)) => reply,
            Ok(None) => panic!("connection closed while waiting for a reply"),
            Err(_) => panic!("no reply within 30 s"),
        }
    }

    /// Reads one reply, or `None` at EOF.
    pub async fn try_reply(&mut self) -> Option<SmtpReply> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = self.stream.read_line(&mut line).await.ok()?;
            if n == 0 {
                return None;
            }
            let line = line.trim_end_matches(['\r', '\n']);
            assert!(line.len() >= 3, "short reply line {line:?}");
            let code: u16 = line[..3].parse().expect("reply code");
            let sep = line.as_bytes().get(3).copied().unwrap_or(b' ');
            lines.push(line.get(4..).unwrap_or("").to_string());
            if sep != b'-' {
                return Some(SmtpReply { code, lines });
            }
        }
    }

    /// True if the server closed the connection (reads EOF within 10 s).
    pub async fn is_closed(&mut self) -> bool {
        let mut buf = String::new();
        matches!(
            tokio::time::timeout(Duration::from_secs(10), self.stream.read_line(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    /// AUTH PLAIN with the credentials on the command line; asserts 235.
    pub async fn auth_plain(&mut self, user: &str, password: &str) {
        use base64::Engine as _;
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        let r = self.cmd(&format!("AUTH PLAIN {credentials}")).await;
        assert_eq!(r.code, 235, "AUTH PLAIN as {user}: {r:?}");
    }

    /// MAIL, RCPT…, DATA, the message (dot-stuffed here), and the final
    /// reply.
    pub async fn send_mail(&mut self, from: &str, to: &[&str], message: &[u8]) -> SmtpReply {
        self.send_mail_with(from, "", to, message).await
    }

    /// [`SmtpClient::send_mail`] with MAIL parameters (`BODY=8BITMIME`,
    /// `SMTPUTF8`, …) after the address.
    pub async fn send_mail_with(
        &mut self,
        from: &str,
        params: &str,
        to: &[&str],
        message: &[u8],
    ) -> SmtpReply {
        let params = if params.is_empty() {
            String::new()
        } else {
            format!(" {params}")
        };
        let r = self.cmd(&format!("MAIL FROM:<{from}>{params}")).await;
        assert_eq!(r.code, 250, "MAIL: {r:?}");
        for rcpt in to {
            let r = self.cmd(&format!("RCPT TO:<{rcpt}>")).await;
            assert_eq!(r.code, 250, "RCPT {rcpt}: {r:?}");
        }
        let r = self.cmd("DATA").await;
        assert_eq!(r.code, 354, "DATA: {r:?}");
        self.send(&dot_stuff(message)).await;
        self.send(b".\r\n").await;
        self.reply().await
    }
}

/// Dot-stuffs a CRLF message and makes sure it ends with CRLF.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    let mut line_start = true;
    for &b in message {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A small well-formed message.
pub fn message(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Bob <bob@example.com>\r\nTo: Alice <alice@localhost>\r\nSubject: {subject}\r\nDate: Sat, 21 Nov 2026 12:00:00 +0000\r\nMessage-ID: <{subject}@example.com>\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// The part of a stored message after the `Return-Path:` line of local
/// delivery (if there is one) and smtpd's `Received:` header.
pub fn without_received(raw: &[u8]) -> &[u8] {
    let raw = match raw.strip_prefix(b"Return-Path: <") {
        Some(rest) => match rest.windows(3).position(|w| w == b">\r\n") {
            Some(end) => &rest[end + 3..],
            None => raw,
        },
        None => raw,
    };
    assert!(raw.starts_with(b"Received: "), "no Received line first");
    let mut i = 0;
    // The Received header ends at the first CRLF not followed by a tab.
    while i + 2 < raw.len() {
        if &raw[i..i + 2] == b"\r\n" && raw[i + 2] != b'\t' {
            return &raw[i + 2..];
        }
        i += 1;
    }
    &raw[raw.len()..]
}

// ---- POP3 ----

/// pop3d running inside the test process, beside a [`Server`] (or on any
/// store), on free ports.
pub struct Pop3Server {
    pub pop3: SocketAddr,
    pub pop3s: SocketAddr,
    pub ctx: Arc<pop3d::Pop3Context>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    /// The tasks on `tracker` before any session: see [`Pop3Server::sessions`].
    background: usize,
}

impl Pop3Server {
    /// Starts on the server's store and config.
    pub async fn start(server: &Server) -> Pop3Server {
        Self::start_with(server, |_| {}).await
    }

    /// Starts on the server's store and config, after `adjust`.
    pub async fn start_with(server: &Server, adjust: impl FnOnce(&mut Config)) -> Pop3Server {
        let mut config = (*server.config).clone();
        adjust(&mut config);
        Self::start_on(server.store.clone(), config).await
    }

    /// Starts on `store` with `config`, its POP3 listeners moved to free
    /// ports; TLS from the config's data dir.
    pub async fn start_on(store: Store, mut config: Config) -> Pop3Server {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
        config.pop3.listen = vec![any];
        config.pop3.pop3s_listen = vec![any];
        let ctx = Arc::new(pop3d::Pop3Context::new(shared(Arc::new(config), store)));
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let bound = pop3d::start(ctx.clone(), shutdown.clone(), &tracker)
            .await
            .expect("start pop3d");
        let find = |role: pop3d::Role| {
            bound
                .iter()
                .find(|b| b.role == role)
                .map(|b| b.addr)
                .expect("listener")
        };
        Pop3Server {
            pop3: find(pop3d::Role::Pop3),
            pop3s: find(pop3d::Role::Pop3s),
            ctx,
            shutdown,
            background: tracker.len(),
            tracker,
        }
    }

    /// How many sessions are running (their tasks have not ended).
    pub fn sessions(&self) -> usize {
        self.tracker.len().saturating_sub(self.background)
    }

    /// Stops accepting and waits for sessions (at most 10 s).
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.tracker.wait()).await;
    }
}

impl Drop for Pop3Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A raw POP3 client: send bytes, read response lines.
pub struct Pop3Client {
    stream: BufReader<Box<dyn Stream>>,
}

impl Pop3Client {
    /// Connects and reads the greeting.
    pub async fn connect(addr: SocketAddr) -> (Pop3Client, String) {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let mut client = Pop3Client {
            stream: BufReader::new(Box::new(tcp)),
        };
        let greeting = client.line().await;
        (client, greeting)
    }

    /// Connects with implicit TLS (trusting the data dir's certificate)
    /// and reads the greeting.
    pub async fn connect_tls(addr: SocketAddr, data_dir: &Path) -> (Pop3Client, String) {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        let tls = client_tls(data_dir)
            .connect(name, tcp)
            .await
            .expect("TLS handshake");
        let mut client = Pop3Client {
            stream: BufReader::new(Box::new(tls)),
        };
        let greeting = client.line().await;
        (client, greeting)
    }

    /// After `+OK` to STLS: the client handshake. Anything buffered but
    /// unread is dropped, as a client must.
    pub async fn start_tls(self, data_dir: &Path) -> Pop3Client {
        let inner = self.stream.into_inner();
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        let tls = client_tls(data_dir)
            .connect(name, inner)
            .await
            .expect("TLS handshake");
        Pop3Client {
            stream: BufReader::new(Box::new(tls)),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        let stream = self.stream.get_mut();
        stream.write_all(bytes).await.expect("write");
        stream.flush().await.expect("flush");
    }

    /// Reads one line without its CRLF; panics on EOF or after 30 s.
    pub async fn line(&mut self) -> String {
        match tokio::time::timeout(Duration::from_secs(30), self.try_line()).await {
            Ok(Some(line)) => line,
            Ok(None) => panic!("connection closed while waiting for a response"),
            Err(_) => panic!("no response within 30 s"),
        }
    }

    /// Reads one line, or `None` at EOF.
    pub async fn try_line(&mut self) -> Option<String> {
        let mut line = Vec::new();
        let n = self.stream.read_until(b'\n', &mut line).await.ok()?;
        if n == 0 {
            return None;
        }
        assert!(line.ends_with(b"\r\n"), "line without CRLF: {line:?}");
        line.truncate(line.len() - 2);
        Some(String::from_utf8_lossy(&line).into_owned())
    }

    /// Sends one command (CRLF added) and reads the one-line response.
    pub async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.line().await
    }

    /// Sends a command whose `+OK` has a multi-line body; returns the
    /// status line and the body lines (dot-unstuffed). On `-ERR`, no body.
    pub async fn multi(&mut self, line: &str) -> (String, Vec<String>) {
        self.send(format!("{line}\r\n").as_bytes()).await;
        let status = self.line().await;
        if !status.starts_with("+OK") {
            return (status, Vec::new());
        }
        let body = self.body().await;
        let text = String::from_utf8_lossy(&body).into_owned();
        let lines = text.split_terminator("\r\n").map(str::to_string).collect();
        (status, lines)
    }

    /// Reads a multi-line body up to the terminating `.` line; returns the
    /// bytes with dot-stuffing undone (every line keeps its CRLF).
    pub async fn body(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut line = Vec::new();
            let read = tokio::time::timeout(
                Duration::from_secs(60),
                self.stream.read_until(b'\n', &mut line),
            )
            .await
            .expect("body within 60 s")
            .expect("read");
            assert!(read > 0, "connection closed inside a multi-line response");
            assert!(line.ends_with(b"\r\n"), "body line without CRLF");
            if line == b".\r\n" {
                return out;
            }
            if line.starts_with(b".") {
                out.extend_from_slice(&line[1..]);
            } else {
                out.extend_from_slice(&line);
            }
        }
    }

    /// USER and PASS; asserts `+OK`.
    pub async fn login(&mut self, user: &str, password: &str) {
        let r = self.cmd(&format!("USER {user}")).await;
        assert!(r.starts_with("+OK"), "USER: {r}");
        let r = self.cmd(&format!("PASS {password}")).await;
        assert!(r.starts_with("+OK"), "PASS: {r}");
    }

    /// True if the server closed the connection (reads EOF within 10 s).
    /// IMAP: sends `tag command` and reads every line up to and including
    /// the tagged reply.
    pub async fn imap(&mut self, tag: &str, command: &str) -> Vec<String> {
        self.send(format!("{tag} {command}\r\n").as_bytes()).await;
        self.until_tag(tag).await
    }

    /// IMAP: reads lines up to and including the one tagged `tag`.
    pub async fn until_tag(&mut self, tag: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.line().await;
            let done = line.starts_with(&format!("{tag} "));
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    pub async fn is_closed(&mut self) -> bool {
        let mut buf = Vec::new();
        matches!(
            tokio::time::timeout(
                Duration::from_secs(10),
                self.stream.read_until(b'\n', &mut buf)
            )
            .await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

// ---- IMAP ----

/// imapd running inside the test process, beside a [`Server`], on free
/// ports. Use [`Pop3Client`] as a raw line client for it.
pub struct ImapServer {
    pub imap: SocketAddr,
    pub imaps: SocketAddr,
    pub ctx: Arc<imapd::ImapContext>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    /// The tasks on `tracker` before any session: see [`ImapServer::sessions`].
    background: usize,
}

impl ImapServer {
    /// Starts on the server's store and config, after `adjust`.
    pub async fn start_with(server: &Server, adjust: impl FnOnce(&mut Config)) -> ImapServer {
        let mut config = (*server.config).clone();
        adjust(&mut config);
        let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
        config.imap.listen = vec![any];
        config.imap.imaps_listen = vec![any];
        let ctx = Arc::new(imapd::ImapContext::new(shared(
            Arc::new(config),
            server.store.clone(),
        )));
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let bound = imapd::start(ctx.clone(), shutdown.clone(), &tracker)
            .await
            .expect("start imapd");
        let find = |role: imapd::Role| {
            bound
                .iter()
                .find(|b| b.role == role)
                .map(|b| b.addr)
                .expect("listener")
        };
        ImapServer {
            imap: find(imapd::Role::Imap),
            imaps: find(imapd::Role::Imaps),
            ctx,
            shutdown,
            background: tracker.len(),
            tracker,
        }
    }

    /// How many sessions are running (their tasks have not ended).
    pub fn sessions(&self) -> usize {
        self.tracker.len().saturating_sub(self.background)
    }

    /// Stops accepting and waits for sessions (at most 10 s).
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.tracker.wait()).await;
    }
}

impl ImapServer {
    /// A session on the `imap` port logged in as `user` (password
    /// [`PASSWORD`]).
    pub async fn login(&self, user: &str) -> Pop3Client {
        let (mut c, greeting) = Pop3Client::connect(self.imap).await;
        assert!(greeting.starts_with("* OK"), "{greeting}");
        let r = c.imap("L", &format!("LOGIN {user} \"{PASSWORD}\"")).await;
        assert!(r.last().unwrap().starts_with("L OK"), "{r:?}");
        c
    }

    /// A server whose store keeps the change feed (and expunge tombstones)
    /// of only the newest `keep` modseqs per mailbox, pruned at every
    /// chance, with imapd on it.
    pub async fn keeping_changes(keep: u64) -> (Server, ImapServer) {
        let server = Server::start_with(|c| {
            c.store.changes_keep = keep;
            c.store.prune_interval_secs = 0;
        })
        .await;
        let imap = ImapServer::start_with(&server, |_| {}).await;
        (server, imap)
    }
}

impl Drop for ImapServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Pop3Client {
    /// Reads exactly `n` bytes (an IMAP literal); panics on EOF or after 30 s.
    pub async fn read_bytes(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        let read = tokio::io::AsyncReadExt::read_exact(&mut self.stream, &mut buf);
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .expect("no data within 30 s")
            .expect("read");
        buf
    }

    /// Reads one IMAP response, with its literals' bytes in place (their
    /// `{n}` or `~{n}` kept before them, CRLF after it dropped).
    pub async fn response(&mut self) -> Vec<u8> {
        let mut resp = Vec::new();
        loop {
            let line = self.line().await;
            resp.extend_from_slice(line.as_bytes());
            let n = line
                .strip_suffix('}')
                .and_then(|l| l.rsplit_once('{'))
                .and_then(|(_, n)| n.trim_end_matches('+').parse::<usize>().ok());
            match n {
                Some(n) => {
                    resp.extend_from_slice(b"\r\n");
                    resp.extend(self.read_bytes(n).await);
                }
                None => return resp,
            }
        }
    }

    /// Sends `tag command`; returns the untagged responses (as
    /// [`Pop3Client::response`] reads them) and the tagged one.
    pub async fn responses(&mut self, tag: &str, command: &str) -> (Vec<Vec<u8>>, String) {
        self.send(format!("{tag} {command}\r\n").as_bytes()).await;
        let mut out = Vec::new();
        loop {
            let resp = self.response().await;
            if resp.starts_with(format!("{tag} ").as_bytes()) {
                return (out, String::from_utf8_lossy(&resp).into_owned());
            }
            out.push(resp);
        }
    }
}

// ---- HTTP ----

/// httpd running inside the test process, beside a [`Server`] (on its
/// store), on a free port of 127.0.0.1.
pub struct HttpServer {
    pub addr: SocketAddr,
    pub ctx: Arc<httpd::HttpContext>,
    /// The bus the server's event stream reads (publish `rejected` events
    /// here as smtpd would).
    pub events: common::events::EventBus,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl HttpServer {
    /// Starts on the server's store, config, failure rules and event bus
    /// (as `postern up` shares them), after `adjust`.
    pub async fn start_with(server: &Server, adjust: impl FnOnce(&mut Config)) -> HttpServer {
        let mut config = (*server.config).clone();
        adjust(&mut config);
        Self::start_shared(
            server.store.clone(),
            config,
            server.events.clone(),
            Some(server.rules.clone()),
        )
        .await
    }

    /// Starts on `store` with `config`, its HTTP listener moved to a free
    /// port (no HTTPS).
    pub async fn start_on(store: Store, config: Config) -> HttpServer {
        let rules = common::rules::Rules::new(&config.rules);
        Self::start_shared(
            store,
            config,
            common::events::EventBus::default(),
            Some(rules),
        )
        .await
    }

    async fn start_shared(
        store: Store,
        mut config: Config,
        events: common::events::EventBus,
        rules: Option<common::rules::Rules>,
    ) -> HttpServer {
        config.http.listen = vec!["127.0.0.1:0".parse().expect("address")];
        config.http.tls = false;
        config.http.https_listen = Vec::new();
        let ctx = Arc::new(httpd::HttpContext::new(
            shared(Arc::new(config), store),
            events.clone(),
            rules,
        ));
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let bound = httpd::start(ctx.clone(), shutdown.clone(), &tracker)
            .await
            .expect("start httpd");
        HttpServer {
            addr: bound.first().expect("listener").addr,
            ctx,
            events,
            shutdown,
            tracker,
        }
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops accepting and waits for requests (at most 10 s).
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.tracker.wait()).await;
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// HTTP API: events read from a `text/event-stream` response: (name, id, data).
pub struct SseEvents {
    response: reqwest::Response,
    buffer: String,
}

impl SseEvents {
    pub async fn open(request: reqwest::RequestBuilder) -> SseEvents {
        let response = request.send().await.expect("events");
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        SseEvents {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped), within 10 s.
    pub async fn next(&mut self) -> (String, Option<String>, serde_json::Value) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut name, mut id, mut data) = (String::from("message"), None, String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                return (name, id, serde_json::from_str(&data).expect("event JSON"));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.response.chunk())
                .await
                .expect("an event within 10 s")
                .expect("read")
                .expect("stream open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// True if no event comes within `wait`.
    pub async fn quiet_for(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.next()).await.is_err()
    }
}

// ---- real clients ----

/// One client-program run may take this long.
pub const TOOL_LIMIT: Duration = Duration::from_secs(60);

/// Runs a client program (curl, python3, …) to completion with `args`;
/// fails clearly if it is missing (`.ci/run` installs every one) or hangs.
pub async fn run_tool(program: &str, package: &str, args: &[&str]) -> std::process::Output {
    let mut command = tokio::process::Command::new(program);
    command.args(args);
    finish_tool(command, program, package, args).await
}

/// [`run_tool`] in the directory `dir`, with `vars` added to the
/// environment (a test suite run as its CI job would run it).
pub async fn run_tool_in(
    program: &str,
    package: &str,
    args: &[&str],
    dir: &Path,
    vars: &[(&str, &str)],
) -> std::process::Output {
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .current_dir(dir)
        .envs(vars.iter().copied());
    finish_tool(command, program, package, args).await
}

async fn finish_tool(
    mut command: tokio::process::Command,
    program: &str,
    package: &str,
    args: &[&str],
) -> std::process::Output {
    let child = command.stdin(Stdio::null()).kill_on_drop(true).output();
    match tokio::time::timeout(TOOL_LIMIT, child).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("{program} is not installed; `.ci/run` installs it (Debian package `{package}`)")
        }
        Ok(Err(e)) => panic!("cannot run {program}: {e}"),
        Err(_) => panic!("{program} {args:?} did not finish within {TOOL_LIMIT:?}"),
    }
}

/// An IMAP session on `imap` logged in as alice with INBOX selected.
pub async fn alice_in_inbox(imap: &ImapServer) -> Pop3Client {
    let (mut c, greeting) = Pop3Client::connect(imap.imap).await;
    assert!(greeting.starts_with("* OK "), "{greeting}");
    let r = c
        .imap("L", &format!("LOGIN alice@localhost \"{PASSWORD}\""))
        .await;
    assert!(r[0].starts_with("L OK "), "{r:?}");
    let r = c.imap("S", "SELECT INBOX").await;
    assert!(r.last().expect("reply").starts_with("S OK "), "{r:?}");
    c
}

/// Runs `script` with Python's imaplib against `imap`, starting as alice
/// logged in with INBOX selected (as `m`); returns its stdout, asserting
/// exit 0.
pub async fn imaplib_as_alice(imap: &ImapServer, script: &str) -> String {
    let script = format!(
        "import imaplib, sys\n\
         port, user, password = sys.argv[1:4]\n\
         m = imaplib.IMAP4(\"localhost\", int(port), timeout=30)\n\
         m.login(user, password)\n\
         typ, data = m.select(\"INBOX\")\n\
         assert typ == \"OK\", (typ, data)\n\
         {script}"
    );
    let port = imap.imap.port().to_string();
    let args = ["-c", &script, &port, "alice@localhost", PASSWORD];
    run_tool_ok("python3", "python3", &args).await
}

/// [`run_tool`], asserting exit 0; returns stdout (lossy UTF-8).
pub async fn run_tool_ok(program: &str, package: &str, args: &[&str]) -> String {
    let output = run_tool(program, package, args).await;
    assert!(
        output.status.success(),
        "{program} {args:?} exited with {}:\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A PostgreSQL server for the tests that keep the store there: the one
/// `POSTERN_TEST_POSTGRES` names (a key=value connection string to a
/// database the tests may create databases from, as `.ci/run` sets), or
/// else a private cluster ([`pg_cluster::PgCluster`]) this test process
/// starts once, which stops when the process ends.
pub struct Postgres {
    /// `host=127.0.0.1 port=… user=…` (no dbname).
    base: String,
    _cluster: Option<pg_cluster::PgCluster>,
}

impl Postgres {
    pub fn get() -> &'static Postgres {
        static POSTGRES: std::sync::OnceLock<Postgres> = std::sync::OnceLock::new();
        POSTGRES.get_or_init(|| match std::env::var("POSTERN_TEST_POSTGRES") {
            Ok(conn) if !conn.is_empty() => Postgres {
                // The database it names is only where new ones are made
                // from; each test gets its own.
                base: conn
                    .split_whitespace()
                    .filter(|kv| !kv.starts_with("dbname="))
                    .collect::<Vec<_>>()
                    .join(" "),
                _cluster: None,
            },
            _ => {
                let cluster = pg_cluster::PgCluster::start();
                Postgres {
                    base: cluster.base(),
                    _cluster: Some(cluster),
                }
            }
        })
    }

    /// A new, empty database; its connection string.
    pub fn new_database(&self) -> String {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "postern_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let mut last = String::new();
        for _ in 0..50 {
            let out = Command::new("psql")
                .args(["-X", "-q", "-d"])
                .arg(format!("{} dbname=postgres", self.base))
                .args(["-c", &format!("CREATE DATABASE {name}")])
                .output()
                .expect("run psql (Debian: postgresql-client)");
            if out.status.success() {
                return format!("{} dbname={name}", self.base);
            }
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("cannot create a test database: {last}");
    }
}

/// Where `initdb` and `postgres` are: `pg_config --bindir`, else the
/// newest `/usr/lib/postgresql/*/bin`.
fn postgres_bin_dir() -> Option<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("postgres").exists() {
            return Some(dir);
        }
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| d.join("postgres").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}
