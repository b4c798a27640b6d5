//! TLS to the database: the URL's `sslmode` over rustls (ring), as the
//! `postgres` client's [`MakeTlsConnect`] / [`TlsConnect`].
//!
//! What each `sslmode` does (the URL's; `prefer` when it names none, as
//! libpq):
//!
//! - `disable`: never TLS.
//! - `prefer`: TLS when the server offers it, plaintext when it does not.
//!   The certificate is checked only when a CA is given (`[store]
//!   ca_file`), then as for `require`; without one any certificate is
//!   taken (libpq's `prefer`: it defeats passive listeners only), while
//!   the handshake's signatures are still checked.
//! - `require`: TLS or no connection, and the server's certificate must
//!   chain to the system's trusted roots or to the certificates of
//!   `ca_file`, and name the host the URL connects to (libpq calls this
//!   `verify-full`; libpq's `require` checks nothing unless a root file
//!   is present, which an operator who asked for `require` rarely means).
//!
//! Channel binding is not offered (SCRAM then runs without it, as it
//! does over plaintext).

use std::fmt;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use postgres::config::SslMode;
use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use postgres::{Client, Socket};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::{Result, StoreError};

/// One database: its connection settings and how TLS to it is made. Made
/// once per store (the CA file and the system's roots are read then).
#[derive(Clone)]
pub(crate) struct Target {
    config: postgres::Config,
    tls: PgTls,
}

impl Target {
    /// `url` as `[store] url`; `ca_file` a PEM file of certificates
    /// trusted besides the system's roots.
    pub(crate) fn new(url: &str, ca_file: Option<&Path>) -> Result<Target> {
        let config = postgres::Config::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("PostgreSQL URL: {e}")))?;
        let verify = match config.get_ssl_mode() {
            SslMode::Disable => None,
            SslMode::Prefer if ca_file.is_none() => Some(false),
            _ => Some(true),
        };
        let tls = match verify {
            None => PgTls(None),
            Some(verify) => PgTls(Some(client_config(verify, ca_file)?)),
        };
        Ok(Target { config, tls })
    }

    /// A new session (blocking; not on a tokio worker).
    pub(crate) fn client(&self) -> std::result::Result<Client, postgres::Error> {
        self.config.connect(self.tls.clone())
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(verify: bool, ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Database(format!("TLS: {e}")))?;
    let config = if verify {
        builder
            .with_root_certificates(roots(ca_file)?)
            .with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// The system's trusted roots and those of `ca_file`.
fn roots(ca_file: Option<&Path>) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = ca_file {
        let unreadable = |e: &dyn fmt::Display| {
            StoreError::Invalid(format!(
                "[store] ca_file {}: {e} (a PEM file of CA certificates)",
                path.display()
            ))
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| unreadable(&e))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| unreadable(&e))?;
        if certs.is_empty() {
            return Err(unreadable(&"no certificate in it"));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| unreadable(&e))?;
        }
    }
    Ok(roots)
}

/// The client's TLS, for `prefer` and `require` (`None`: `disable`).
#[derive(Clone)]
struct PgTls(Option<Arc<rustls::ClientConfig>>);

impl MakeTlsConnect<Socket> for PgTls {
    type Stream = PgTlsStream;
    type TlsConnect = PgTlsConnect;
    type Error = io::Error;

    /// `host` is the URL's host ("" over a Unix socket, where the server
    /// never offers TLS): checked when the handshake starts, not here.
    fn make_tls_connect(&mut self, host: &str) -> io::Result<PgTlsConnect> {
        Ok(PgTlsConnect {
            config: self.0.clone(),
            host: host.to_owned(),
        })
    }
}

struct PgTlsConnect {
    config: Option<Arc<rustls::ClientConfig>>,
    host: String,
}

impl TlsConnect<Socket> for PgTlsConnect {
    type Stream = PgTlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<PgTlsStream>> + Send>>;

    fn connect(self, socket: Socket) -> Self::Future {
        Box::pin(async move {
            let config = self
                .config
                .ok_or_else(|| io::Error::other("TLS is disabled"))?;
            let name = ServerName::try_from(self.host.clone()).map_err(|_| {
                io::Error::other(format!(
                    "{:?} is not a host name to check a certificate against",
                    self.host
                ))
            })?;
            tokio_rustls::TlsConnector::from(config)
                .connect(name, socket)
                .await
                .map(|stream| PgTlsStream(Box::new(stream)))
                .map_err(|e| explained(e, &self.host))
        })
    }
}

/// A handshake's failure in the operator's terms: what is wrong with the
/// certificate, and what to set.
fn explained(e: io::Error, host: &str) -> io::Error {
    let Some(rustls::Error::InvalidCertificate(problem)) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return e;
    };
    let text = match problem {
        CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
            "the server's certificate is not trusted ({problem:?}): no trusted root \
             signed it; give its CA's certificate as [store] ca_file (POSTERN_STORE_CA_FILE)"
        ),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!(
                "the server's certificate is not valid for {host:?}, the host [store] url \
                 connects to ({problem:?})"
            )
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            format!("the server's certificate has expired ({problem:?})")
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            format!("the server's certificate is not valid yet ({problem:?})")
        }
        other => format!("the server's certificate was refused: {other:?}"),
    };
    io::Error::new(e.kind(), text)
}

/// A TLS session to the server.
pub(crate) struct PgTlsStream(Box<tokio_rustls::client::TlsStream<Socket>>);

impl TlsStream for PgTlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl AsyncRead for PgTlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for PgTlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

/// Takes any certificate (`prefer` without a CA), still checking the
/// handshake's signatures.
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
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
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
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
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
