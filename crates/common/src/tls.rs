//! TLS for every daemon: one server configuration, one stream type for
//! implicit TLS and for STARTTLS/STLS upgrades.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

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
pub fn acceptor(_config: &TlsConfig, _data_dir: &Path) -> Result<TlsAcceptor, TlsError> {
    todo!()
}

/// A connection that is plain TCP or TLS over TCP. Sessions hold this; an
/// upgrade consumes it and returns the TLS variant.
pub enum MaybeTlsStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl MaybeTlsStream {
    pub fn is_tls(&self) -> bool {
        matches!(self, MaybeTlsStream::Tls(_))
    }

    /// Performs the server side of the TLS handshake on a plain stream.
    /// The caller must already have discarded any bytes the client sent
    /// after the STARTTLS command (they were read into the caller's buffer,
    /// never into the TLS layer). Errors if already TLS.
    pub async fn upgrade(self, _acceptor: &TlsAcceptor) -> io::Result<MaybeTlsStream> {
        todo!()
    }

    /// Negotiated protocol and cipher suite, for `Received:` lines and logs,
    /// e.g. `TLSv1_3 TLS13_AES_256_GCM_SHA384`.
    pub fn tls_description(&self) -> Option<String> {
        todo!()
    }
}

impl AsyncRead for MaybeTlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        todo!()
    }
}

impl AsyncWrite for MaybeTlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        todo!()
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        todo!()
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        todo!()
    }
}

#[allow(dead_code)]
fn _assert_send(_: Arc<MaybeTlsStream>) {}
