//! Accept loops shared by every daemon: connection limits (total and per IP,
//! with a permit taken before the session starts), implicit TLS, back-off on
//! accept errors, and graceful shutdown (stop accepting when the token is
//! cancelled; sessions see the same token and finish within the grace time).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ListenerLimits;
use crate::tls::{MaybeTlsStream, TlsAcceptor};

/// One accepted client connection, handed to a [`Service`].
pub struct Connection {
    /// Already TLS if the listener is implicit-TLS.
    pub stream: MaybeTlsStream,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// Cancelled when the server shuts down: finish the current command,
    /// say goodbye in the protocol's words, close.
    pub shutdown: CancellationToken,
}

/// Why a connection was refused before its session started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TooManyConnections,
    TooManyFromAddress,
    ShuttingDown,
}

/// A daemon's session logic, as the listener sees it.
pub trait Service: Send + Sync + 'static {
    /// Runs one session to its end.
    fn serve(self: Arc<Self>, conn: Connection) -> impl Future<Output = ()> + Send;
    /// Says, in the protocol's words, why the connection is refused (e.g.
    /// SMTP `421 4.7.0 …`), then returns; the listener closes it. Called
    /// with a bounded time.
    fn refuse(self: Arc<Self>, conn: Connection, why: Refusal) -> impl Future<Output = ()> + Send;
}

/// A bound listening socket, not yet accepting.
pub struct Listener {
    pub name: &'static str,
    pub socket: TcpListener,
    /// `Some` for implicit TLS (SMTPS, IMAPS, POP3S).
    pub implicit_tls: Option<TlsAcceptor>,
}

impl Listener {
    /// Binds `addr` (port 0 picks a free port; see `local_addr`).
    pub async fn bind(
        _name: &'static str,
        _addr: SocketAddr,
        _implicit_tls: Option<TlsAcceptor>,
    ) -> std::io::Result<Listener> {
        todo!()
    }

    pub fn local_addr(&self) -> SocketAddr {
        todo!()
    }

    /// Spawns the accept loop on `tracker`; it and every session it starts
    /// are tracked there. The loop stops when `shutdown` is cancelled.
    pub fn spawn<S: Service>(
        self,
        _service: Arc<S>,
        _limits: ListenerLimits,
        _shutdown: CancellationToken,
        _tracker: &TaskTracker,
    ) {
        todo!()
    }
}
