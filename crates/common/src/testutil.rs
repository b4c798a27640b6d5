//! Helpers for tests, this crate's and the daemons' (feature `testutil`):
//! a TLS client that trusts one certificate; for the tests of the daemon
//! binaries, a daemon process started on a data dir and a line client for
//! its ports; and for a daemon's unit tests, what a whole session needs to
//! run in memory ([`shared_with_account`], [`spawn_session`]) on a real store.

use std::path::Path;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::config::Config;
use crate::daemon::Shared;
use crate::tls::MaybeTlsStream;

/// A connector whose only trust anchor is the certificate(s) in `cert_pem`.
pub fn connector_trusting(cert_pem: &Path) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cert_pem).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    crate::tls::client::trusting(roots).unwrap()
}

/// Connects over TCP and does the client handshake for `name` (a DNS name
/// or an IP address).
pub async fn tls_connect(
    connector: &TlsConnector,
    addr: std::net::SocketAddr,
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    // An IP address must be checked against IP-address SANs, not DNS names.
    let server_name = match name.parse::<std::net::IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::DnsName(name.to_string().try_into().unwrap()),
    };
    connector.connect(server_name, tcp).await
}

/// A free TCP port on 127.0.0.1 (bound and released, so a race with
/// another process is possible but unlikely).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A daemon binary running on a data dir, started by [`DaemonProcess::start`].
pub struct DaemonProcess {
    name: String,
    child: std::process::Child,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    /// What it printed up to `postern: ready …`, one line each (with the
    /// line end): the `listening on` lines, then `ready`.
    pub announced: Vec<String>,
}

impl DaemonProcess {
    /// Runs `binary --data-dir data --config CONFIG` with `config` written
    /// to `config_path`, and returns once it has said it is ready.
    pub fn start(binary: &Path, data: &Path, config_path: &Path, config: &str) -> DaemonProcess {
        use std::io::BufRead as _;
        std::fs::write(config_path, config).unwrap();
        let mut child = std::process::Command::new(binary)
            .arg("--data-dir")
            .arg(data)
            .arg("--config")
            .arg(config_path)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let name = binary.file_name().unwrap().to_string_lossy().into_owned();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut announced = Vec::new();
        loop {
            let mut line = String::new();
            assert!(
                stdout.read_line(&mut line).unwrap() > 0,
                "{name} exited early: {announced:?}"
            );
            let ready = line.starts_with("postern: ready");
            announced.push(line);
            if ready {
                break;
            }
        }
        DaemonProcess {
            name,
            child,
            stdout,
            announced,
        }
    }

    /// Sends SIGTERM and checks that the daemon exits, successfully,
    /// within 15 seconds.
    pub fn stop(mut self) {
        use std::io::Read as _;
        std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            let name = &self.name;
            assert!(
                std::time::Instant::now() < deadline,
                "{name} did not stop on SIGTERM"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert!(status.success(), "{status}");
        let mut rest = String::new();
        let _ = self.stdout.read_to_string(&mut rest);
    }
}

impl Drop for DaemonProcess {
    /// A test that fails half-way leaves no daemon behind.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A blocking client of a line protocol (SMTP, POP3, IMAP) on 127.0.0.1.
pub struct LineClient {
    writer: std::net::TcpStream,
    reader: std::io::BufReader<std::net::TcpStream>,
}

impl LineClient {
    /// Connects to `port` (reads time out after 20 seconds).
    pub fn connect(port: u16) -> LineClient {
        let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        LineClient {
            writer: stream.try_clone().unwrap(),
            reader: std::io::BufReader::new(stream),
        }
    }

    /// Reads one CRLF-ended line, without its CRLF.
    pub fn line(&mut self) -> String {
        use std::io::BufRead as _;
        let mut line = String::new();
        assert!(
            self.reader.read_line(&mut line).unwrap() > 0,
            "connection closed"
        );
        assert!(line.ends_with("\r\n"), "{line:?}");
        line.truncate(line.len() - 2);
        line
    }

    /// Sends `bytes` as they are.
    pub fn send(&mut self, bytes: &[u8]) {
        use std::io::Write as _;
        self.writer.write_all(bytes).unwrap();
    }

    /// Sends `command` and CRLF, and reads one line.
    pub fn cmd(&mut self, command: &str) -> String {
        self.send(format!("{command}\r\n").as_bytes());
        self.line()
    }
}

/// Before any daemon runs on `data`: opens the store there (making it if
/// need be), adds the account `address` with `password`, and delivers
/// `inbox` into its INBOX.
pub fn seed_account(data: &Path, address: &str, password: &str, inbox: &[&[u8]]) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = store::Store::open(data).unwrap();
        let account = store.add_account(address, password).await.unwrap();
        for raw in inbox {
            deliver_to_inbox(&store, &account, raw).await;
        }
    });
}

/// Puts `raw` into the INBOX of an existing account `to` the way smtpd's
/// queue manager would: queued from `bob@example.com`, claimed, delivered.
async fn deliver_to_inbox(store: &store::Store, to: &store::Account, raw: &[u8]) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    store
        .enqueue(store::NewQueuedMessage {
            raw: raw.to_vec(),
            sender: "bob@example.com".into(),
            recipients: vec![to.address.clone()],
            auth_user: None,
            body_type: store::BodyType::SevenBit,
            smtputf8: false,
            received_at: now,
        })
        .await
        .unwrap();
    let lease = std::time::Duration::from_secs(30);
    for m in store.claim_due(now, lease, 10).await.unwrap() {
        let deliveries = m
            .recipients
            .iter()
            .map(|r| store::LocalDelivery {
                recipient: r.id,
                account: to.id,
                mailbox: "INBOX".into(),
            })
            .collect();
        store.deliver_local(m.id, deliveries).await.unwrap();
    }
}

/// What a process gives its daemons, over `store`: TLS from the config's
/// data dir (a self-signed certificate made there) and a login throttle of
/// their own.
pub fn shared(config: std::sync::Arc<Config>, store: store::Store) -> Shared {
    let tls = crate::tls::acceptor(&config.tls, &config.data_dir).expect("tls");
    Shared {
        throttle: std::sync::Arc::new(crate::sasl::AuthThrottle::new(&config.auth)),
        tls: Some(tls),
        config,
        store,
    }
}

/// What a daemon's sessions share, for a unit test: the default config on
/// the data dir `data`, the store opened there as the daemons open it, and
/// in it the account `address` (password `password`) whose INBOX holds
/// `inbox`.
pub async fn shared_with_account(
    data: &Path,
    address: &str,
    password: &str,
    inbox: &[&[u8]],
) -> Shared {
    let config = Config {
        data_dir: data.to_path_buf(),
        ..Config::default()
    };
    let store = crate::daemon::open_store(&config).unwrap();
    let account = store.add_account(address, password).await.unwrap();
    for raw in inbox {
        deliver_to_inbox(&store, &account, raw).await;
    }
    shared(std::sync::Arc::new(config), store)
}

/// Starts, as a task, the session `start` makes over an in-memory stream
/// from a loopback client, as the listener would over TCP; returns the
/// task and the client's end.
pub fn spawn_session<F, Fut>(start: F) -> (tokio::task::JoinHandle<()>, SessionClient)
where
    F: FnOnce(MaybeTlsStream, std::net::SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (server, client) = tokio::io::duplex(64 * 1024);
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 40000));
    let session = tokio::spawn(start(MaybeTlsStream::plain(server), peer));
    let client = SessionClient {
        stream: tokio::io::BufReader::new(client),
    };
    (session, client)
}

/// The client's end of [`spawn_session`]: sends commands, reads
/// CRLF-ended reply lines (each within 20 seconds).
pub struct SessionClient {
    stream: tokio::io::BufReader<tokio::io::DuplexStream>,
}

impl SessionClient {
    /// Reads one CRLF-ended line, without its CRLF.
    pub async fn line(&mut self) -> String {
        use tokio::io::AsyncBufReadExt as _;
        let mut line = String::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            self.stream.read_line(&mut line),
        );
        let n = read.await.expect("a reply within 20 s").unwrap();
        assert!(n > 0, "session closed the stream");
        assert!(line.ends_with("\r\n"), "{line:?}");
        line.truncate(line.len() - 2);
        line
    }

    /// Reads lines up to and including the first that starts with `prefix`.
    pub async fn lines_until(&mut self, prefix: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.line().await;
            let last = line.starts_with(prefix);
            lines.push(line);
            if last {
                return lines;
            }
        }
    }

    /// Sends `bytes` as they are.
    pub async fn send(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt as _;
        self.stream.get_mut().write_all(bytes).await.unwrap();
    }

    /// Sends `command` and CRLF, and reads one line.
    pub async fn cmd(&mut self, command: &str) -> String {
        self.send(format!("{command}\r\n").as_bytes()).await;
        self.line().await
    }

    /// Whether the session has closed its end (reads end of stream).
    pub async fn is_closed(&mut self) -> bool {
        use tokio::io::AsyncReadExt as _;
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            self.stream.read(&mut byte),
        );
        matches!(read.await, Ok(Ok(0)))
    }
}
