//! TLS for every daemon: one server configuration, one stream type for
//! implicit TLS and for STARTTLS/STLS upgrades, and (in [`client`]) the
//! client side for connections out.

pub mod client;

use std::any::Any;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls_pki_types::pem::{self, PemObject as _};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::compress::Deflate;
use crate::config::TlsConfig;

pub use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("{0}")]
    Invalid(String),
}

/// Builds the acceptor: from `config.cert`/`config.key` if given (both or
/// neither, else `Invalid`), otherwise from `data_dir/tls/cert.pem` and
/// `data_dir/tls/key.pem`, generating a self-signed certificate for
/// `localhost`, `127.0.0.1` and `::1` there first if they do not exist (key
/// file mode 0600). Uses the ring provider explicitly (never the process
/// default).
pub fn acceptor(config: &TlsConfig, data_dir: &Path) -> Result<TlsAcceptor, TlsError> {
    let (cert_path, key_path) = match (&config.cert, &config.key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        (None, None) => ensure_self_signed(data_dir)?,
        (Some(_), None) => {
            return Err(TlsError::Invalid(
                "tls.cert is set but tls.key is not; give both or neither".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(TlsError::Invalid(
                "tls.key is set but tls.cert is not; give both or neither".into(),
            ))
        }
    };
    let certs = load_certs(&cert_path)?;
    let key = load_key(&key_path)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Invalid(format!("TLS protocol versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                TlsError::Invalid(format!(
                    "the private key in {} does not match the certificate in {}",
                    key_path.display(),
                    cert_path.display()
                ))
            }
            e => TlsError::Invalid(format!(
                "{} / {}: {e}",
                cert_path.display(),
                key_path.display()
            )),
        })?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// Names the self-signed certificate covers.
const SELF_SIGNED_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Makes sure `data_dir/tls/{cert,key}.pem` exist, generating them if not,
/// and returns their paths.
fn ensure_self_signed(data_dir: &Path) -> Result<(PathBuf, PathBuf), TlsError> {
    let dir = data_dir.join("tls");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let (cert_pem, key_pem) = generate_self_signed()?;
    std::fs::create_dir_all(data_dir).map_err(|e| read_error(data_dir, e))?;

    if dir.exists() {
        // A hand-made directory, or one with a file missing: write both
        // (replacing the survivor, so the pair matches).
        if cert.exists() || key.exists() {
            tracing::warn!(
                "{} lacks cert.pem or key.pem; generating a new self-signed pair",
                dir.display()
            );
        }
        write_new(&key, key_pem.as_bytes(), 0o600, true)?;
        write_new(&cert, cert_pem.as_bytes(), 0o644, true)?;
        return Ok((cert, key));
    }

    // Write the pair into a private directory, then rename it into place:
    // if several processes start at once on one data dir, the first rename
    // wins and the others use its pair.
    let tmp = data_dir.join(format!(
        ".tls-tmp-{}-{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&tmp)
            .map_err(|e| read_error(&tmp, e))?;
        write_new(&tmp.join("key.pem"), key_pem.as_bytes(), 0o600, false)?;
        write_new(&tmp.join("cert.pem"), cert_pem.as_bytes(), 0o644, false)?;
        std::fs::rename(&tmp, &dir).map_err(|e| read_error(&dir, e))
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        if cert.exists() && key.exists() {
            // Another process got there first.
            return Ok((cert, key));
        }
        return Err(e);
    }
    tracing::info!(
        "generated a self-signed TLS certificate for localhost in {}",
        dir.display()
    );
    Ok((cert, key))
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh self-signed certificate and key, as PEM.
fn generate_self_signed() -> Result<(String, String), TlsError> {
    let bad = |e: rcgen::Error| TlsError::Invalid(format!("cannot generate a certificate: {e}"));
    let names: Vec<String> = SELF_SIGNED_NAMES.iter().map(|s| s.to_string()).collect();
    // Names that parse as IP addresses become IP-address SANs.
    let mut params = rcgen::CertificateParams::new(names).map_err(bad)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Postern self-signed");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate().map_err(bad)?;
    let cert = params.self_signed(&key).map_err(bad)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes `bytes` to a file with `mode`; `replace` allows overwriting (the
/// mode is then set again, in case the file existed with another).
fn write_new(path: &Path, bytes: &[u8], mode: u32, replace: bool) -> Result<(), TlsError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(mode);
    if replace {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(|e| read_error(path, e))?;
    if replace {
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| read_error(path, e))?;
    }
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| read_error(path, e))
}

fn read_error(path: &Path, source: io::Error) -> TlsError {
    TlsError::Read {
        path: path.display().to_string(),
        source,
    }
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(|e| read_error(path, e))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid(format!("{}: bad PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError::Invalid(format!(
            "{}: no certificate (BEGIN CERTIFICATE) found",
            path.display()
        )));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = std::fs::read(path).map_err(|e| read_error(path, e))?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::Invalid(format!(
            "{}: no private key (PKCS#8, PKCS#1 or SEC1 PEM) found",
            path.display()
        )),
        e => TlsError::Invalid(format!("{}: bad PEM: {e}", path.display())),
    })
}

/// What a client's bytes travel over below TLS: a TCP connection from the
/// listener, or an in-memory duplex when a test drives a whole session.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + Any {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + Any> Io for T {}

/// A client connection, plain or TLS, over any [`Io`]. Sessions hold this;
/// an upgrade consumes it and returns the TLS variant over the same stream.
pub enum MaybeTlsStream {
    Plain(Box<dyn Io>),
    Tls(Box<tokio_rustls::server::TlsStream<Box<dyn Io>>>),
    /// COMPRESS=DEFLATE over either of the others.
    Compressed(Box<Deflate<MaybeTlsStream>>),
}

impl MaybeTlsStream {
    /// A plain connection over `stream` (TLS may come later, by upgrade).
    pub fn plain(stream: impl Io) -> MaybeTlsStream {
        MaybeTlsStream::Plain(Box::new(stream))
    }

    /// Performs the server side of the TLS handshake for implicit TLS
    /// (SMTPS, IMAPS, POP3S) on a fresh connection.
    pub async fn accept(acceptor: &TlsAcceptor, stream: impl Io) -> io::Result<MaybeTlsStream> {
        MaybeTlsStream::plain(stream).upgrade(acceptor).await
    }

    pub fn is_tls(&self) -> bool {
        match self {
            MaybeTlsStream::Plain(_) => false,
            MaybeTlsStream::Tls(_) => true,
            MaybeTlsStream::Compressed(c) => c.get_ref().is_tls(),
        }
    }

    pub fn is_compressed(&self) -> bool {
        matches!(self, MaybeTlsStream::Compressed(_))
    }

    /// The same connection with both directions DEFLATE-compressed from
    /// now on; `pending` are bytes already read from it (compressed).
    pub fn compressed(self, pending: &[u8]) -> MaybeTlsStream {
        MaybeTlsStream::Compressed(Box::new(Deflate::new(self, pending)))
    }

    /// Performs the server side of the TLS handshake on a plain stream.
    /// The caller must already have discarded any bytes the client sent
    /// after the STARTTLS command (they were read into the caller's buffer,
    /// never into the TLS layer). Errors if already TLS.
    pub async fn upgrade(self, acceptor: &TlsAcceptor) -> io::Result<MaybeTlsStream> {
        match self {
            MaybeTlsStream::Plain(stream) => {
                let tls = acceptor.accept(stream).await?;
                Ok(MaybeTlsStream::Tls(Box::new(tls)))
            }
            MaybeTlsStream::Tls(_) | MaybeTlsStream::Compressed(_) => {
                Err(io::Error::other("connection is already TLS or compressed"))
            }
        }
    }

    /// Negotiated protocol and cipher suite, for `Received:` lines and logs,
    /// e.g. `TLSv1_3 TLS13_AES_256_GCM_SHA384`.
    pub fn tls_description(&self) -> Option<String> {
        let tls = match self {
            MaybeTlsStream::Tls(tls) => tls,
            MaybeTlsStream::Compressed(c) => return c.get_ref().tls_description(),
            MaybeTlsStream::Plain(_) => return None,
        };
        let (_, conn) = tls.get_ref();
        let version = conn.protocol_version()?;
        let suite = conn.negotiated_cipher_suite()?;
        Some(format!("{version:?} {:?}", suite.suite()))
    }

    /// The underlying TCP connection, if the client came over TCP (for
    /// socket options).
    pub fn tcp(&self) -> Option<&TcpStream> {
        let below_tls: &dyn Io = match self {
            MaybeTlsStream::Plain(stream) => stream.as_ref(),
            MaybeTlsStream::Tls(tls) => tls.get_ref().0.as_ref(),
            MaybeTlsStream::Compressed(c) => return c.get_ref().tcp(),
        };
        (below_tls as &dyn Any).downcast_ref()
    }
}

impl AsyncRead for MaybeTlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            MaybeTlsStream::Compressed(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            MaybeTlsStream::Compressed(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            MaybeTlsStream::Compressed(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTlsStream::Plain(s) => s.is_write_vectored(),
            MaybeTlsStream::Tls(s) => s.is_write_vectored(),
            MaybeTlsStream::Compressed(s) => s.is_write_vectored(),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            MaybeTlsStream::Compressed(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            MaybeTlsStream::Compressed(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[allow(dead_code)]
fn _assert_send(_: Arc<MaybeTlsStream>) {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{connector_trusting, tls_connect};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    fn self_signed(dir: &Path) -> TlsAcceptor {
        acceptor(&TlsConfig::default(), dir).unwrap()
    }

    #[test]
    fn generates_once_and_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        self_signed(&data);
        let cert = std::fs::read(data.join("tls/cert.pem")).unwrap();
        let key = std::fs::read(data.join("tls/key.pem")).unwrap();
        assert!(String::from_utf8_lossy(&cert).contains("BEGIN CERTIFICATE"));
        assert!(String::from_utf8_lossy(&key).contains("PRIVATE KEY"));
        let mode = std::fs::metadata(data.join("tls/key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        self_signed(&data);
        assert_eq!(std::fs::read(data.join("tls/cert.pem")).unwrap(), cert);
        assert_eq!(std::fs::read(data.join("tls/key.pem")).unwrap(), key);
        // No temporary directories left behind.
        let entries: Vec<_> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(entries, vec![std::ffi::OsString::from("tls")]);
    }

    #[test]
    fn regenerates_when_one_file_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        self_signed(dir.path());
        let cert = std::fs::read(dir.path().join("tls/cert.pem")).unwrap();
        std::fs::remove_file(dir.path().join("tls/key.pem")).unwrap();
        self_signed(dir.path());
        assert_ne!(
            std::fs::read(dir.path().join("tls/cert.pem")).unwrap(),
            cert
        );
        let mode = std::fs::metadata(dir.path().join("tls/key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    /// Serves one TLS connection on loopback: reads a line, answers with the
    /// description, and returns what the server saw.
    async fn handshake(acceptor: TlsAcceptor, cert: &Path, bind: &str, name: &str) -> String {
        let listener = TcpListener::bind(bind).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let plain = MaybeTlsStream::plain(tcp);
            assert!(!plain.is_tls());
            assert_eq!(plain.tls_description(), None);
            let mut tls = plain.upgrade(&acceptor).await.unwrap();
            assert!(tls.is_tls());
            let mut buf = [0u8; 5];
            tls.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"ping\n");
            let description = tls.tls_description().unwrap();
            tls.write_all(format!("{description}\n").as_bytes())
                .await
                .unwrap();
            tls.flush().await.unwrap();
            tls.shutdown().await.unwrap();
            // Upgrading twice is an error, not a panic.
            assert!(tls.upgrade(&acceptor).await.is_err());
            description
        });
        let connector = connector_trusting(cert);
        let mut client = tls_connect(&connector, addr, name).await.unwrap();
        client.write_all(b"ping\n").await.unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        let description = server.await.unwrap();
        assert_eq!(answer, format!("{description}\n"));
        description
    }

    #[tokio::test]
    async fn handshake_for_localhost_name() {
        let dir = tempfile::tempdir().unwrap();
        let acc = self_signed(dir.path());
        let d = handshake(
            acc,
            &dir.path().join("tls/cert.pem"),
            "127.0.0.1:0",
            "localhost",
        )
        .await;
        assert!(d.starts_with("TLSv1_3 TLS13_"), "{d}");
    }

    #[tokio::test]
    async fn handshake_for_ipv4_address() {
        let dir = tempfile::tempdir().unwrap();
        let acc = self_signed(dir.path());
        handshake(
            acc,
            &dir.path().join("tls/cert.pem"),
            "127.0.0.1:0",
            "127.0.0.1",
        )
        .await;
    }

    #[tokio::test]
    async fn handshake_for_ipv6_address() {
        if TcpListener::bind("[::1]:0").await.is_err() {
            eprintln!("no IPv6 loopback here; skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let acc = self_signed(dir.path());
        handshake(acc, &dir.path().join("tls/cert.pem"), "[::1]:0", "::1").await;
    }

    /// The upgrade works over any stream, not only TCP: here an in-memory
    /// duplex, as a session in a unit test has.
    #[tokio::test]
    async fn upgrade_over_an_in_memory_stream() {
        let dir = tempfile::tempdir().unwrap();
        let acc = self_signed(dir.path());
        let (server, client) = tokio::io::duplex(16 * 1024);
        let plain = MaybeTlsStream::plain(server);
        assert!(plain.tcp().is_none());
        let server = tokio::spawn(async move {
            let mut tls = plain.upgrade(&acc).await.unwrap();
            assert!(tls.tcp().is_none());
            tls.write_all(b"hello\n").await.unwrap();
            tls.shutdown().await.unwrap();
            tls.tls_description().unwrap()
        });
        let connector = connector_trusting(&dir.path().join("tls/cert.pem"));
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let mut client = connector.connect(name, client).await.unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert_eq!(answer, "hello\n");
        assert!(server.await.unwrap().starts_with("TLSv1_3 "));
    }

    #[tokio::test]
    async fn wrong_name_is_rejected_by_client() {
        let dir = tempfile::tempdir().unwrap();
        let acc = self_signed(dir.path());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = MaybeTlsStream::plain(tcp).upgrade(&acc).await;
        });
        let connector = connector_trusting(&dir.path().join("tls/cert.pem"));
        assert!(tls_connect(&connector, addr, "mail.example.org")
            .await
            .is_err());
    }

    /// Writes a fresh certificate and key for `name` into `dir`.
    fn write_pair(dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = generate_self_signed().unwrap();
        let cert_path = dir.join(format!("{stem}.crt"));
        let key_path = dir.join(format!("{stem}.key"));
        std::fs::write(&cert_path, cert).unwrap();
        std::fs::write(&key_path, key).unwrap();
        (cert_path, key_path)
    }

    #[tokio::test]
    async fn explicit_paths_work() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), "mine");
        let config = TlsConfig {
            cert: Some(cert.clone()),
            key: Some(key),
        };
        let data = dir.path().join("data");
        let acc = acceptor(&config, &data).unwrap();
        // Nothing generated when paths are given.
        assert!(!data.exists());
        handshake(acc, &cert, "127.0.0.1:0", "localhost").await;
    }

    #[test]
    fn bad_paths_and_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), "a");
        let (_, other_key) = write_pair(dir.path(), "b");
        let missing = dir.path().join("missing.pem");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "this is not PEM\n").unwrap();
        let try_pair = |c: &Path, k: &Path| {
            acceptor(
                &TlsConfig {
                    cert: Some(c.to_path_buf()),
                    key: Some(k.to_path_buf()),
                },
                dir.path(),
            )
            .map(|_| ())
            .unwrap_err()
        };

        let e = try_pair(&missing, &key);
        assert!(matches!(e, TlsError::Read { .. }));
        assert!(e.to_string().contains("missing.pem"), "{e}");
        let e = try_pair(&cert, &missing);
        assert!(matches!(e, TlsError::Read { .. }));
        assert!(e.to_string().contains("missing.pem"), "{e}");

        let e = try_pair(&garbage, &key);
        assert!(e.to_string().contains("no certificate"), "{e}");
        let e = try_pair(&cert, &garbage);
        assert!(e.to_string().contains("no private key"), "{e}");
        // A certificate where the key should be.
        let e = try_pair(&cert, &cert);
        assert!(e.to_string().contains("no private key"), "{e}");

        let e = try_pair(&cert, &other_key);
        assert!(e.to_string().contains("does not match"), "{e}");

        let only_cert = TlsConfig {
            cert: Some(cert.clone()),
            key: None,
        };
        let e = acceptor(&only_cert, dir.path()).map(|_| ()).unwrap_err();
        assert!(matches!(e, TlsError::Invalid(_)));
        assert!(e.to_string().contains("tls.key"), "{e}");
        let only_key = TlsConfig {
            cert: None,
            key: Some(key.clone()),
        };
        let e = acceptor(&only_key, dir.path()).map(|_| ()).unwrap_err();
        assert!(e.to_string().contains("tls.cert"), "{e}");
    }

    #[test]
    fn unwritable_data_dir_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, "x").unwrap();
        // The data dir is below a regular file: cannot be created.
        let e = acceptor(&TlsConfig::default(), &file.join("data"))
            .map(|_| ())
            .unwrap_err();
        assert!(matches!(e, TlsError::Read { .. }), "{e}");
    }
}
