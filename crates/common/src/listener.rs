//! Accept loops shared by every daemon: connection limits (total and per IP,
//! with a permit taken before the session starts), implicit TLS, back-off on
//! accept errors, and graceful shutdown (stop accepting when the token is
//! cancelled; sessions see the same token and finish within the grace time).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

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

impl Refusal {
    /// Why, in words a client shows its user; the daemon frames them
    /// (`* BYE …`, `-ERR [SYS/TEMP] …`).
    pub fn text(self) -> &'static str {
        match self {
            Refusal::ShuttingDown => "Server shutting down",
            Refusal::TooManyConnections | Refusal::TooManyFromAddress => {
                "Too many connections; try again later"
            }
        }
    }
}

impl Connection {
    /// Writes `reply` (a refusal in the protocol's words) and closes the
    /// connection; a client already gone is no error.
    async fn refuse_with(mut self, reply: &[u8]) {
        use tokio::io::AsyncWriteExt as _;
        let _ = self.stream.write_all(reply).await;
        let _ = self.stream.shutdown().await;
    }
}

/// What a daemon's listener is for (`smtp`, `submission`, `imaps`, …).
pub trait ListenerRole: Copy + Send + Sync + 'static {
    /// The role's name, note and TLS, in one place per daemon.
    fn info(self) -> RoleInfo;

    /// The listener's name in logs and in `postern: NAME listening on …`.
    fn name(self) -> &'static str {
        self.info().name
    }

    /// What the `listening on` line adds in parentheses (may be empty).
    fn note(self) -> &'static str {
        self.info().note
    }

    /// Whether the listener speaks TLS from the first byte (SMTPS, IMAPS,
    /// POP3S, HTTPS). Such listeners are not started without TLS.
    fn implicit_tls(self) -> bool {
        self.info().implicit_tls
    }
}

/// What a [`ListenerRole`] says of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleInfo {
    pub name: &'static str,
    pub note: &'static str,
    pub implicit_tls: bool,
}

impl RoleInfo {
    /// A listener that starts in plain text (STARTTLS may follow).
    pub const fn plain(name: &'static str, note: &'static str) -> RoleInfo {
        RoleInfo {
            name,
            note,
            implicit_tls: false,
        }
    }

    /// A listener that speaks TLS from the first byte.
    pub const fn tls(name: &'static str, note: &'static str) -> RoleInfo {
        RoleInfo {
            name,
            note,
            implicit_tls: true,
        }
    }
}

/// A listener a daemon has bound.
#[derive(Debug, Clone)]
pub struct Bound<R> {
    pub role: R,
    pub addr: SocketAddr,
}

impl<R: ListenerRole> Bound<R> {
    /// The `listening on` line for this listener.
    pub fn announcement(&self) -> crate::daemon::Announcement {
        crate::daemon::Announcement {
            name: self.role.name(),
            addr: self.addr,
            note: self.role.note(),
        }
    }
}

/// Binds every address of `plan` (each role with its configured
/// addresses), then starts them all on `tracker` with the service
/// `service_for` gives each role, and returns what listens where.
/// Implicit-TLS roles are left out when `tls` is `None`. Nothing accepts
/// until every address is bound, so a port in use fails the whole start.
pub async fn start<R: ListenerRole, S: Service>(
    plan: &[(R, &[SocketAddr])],
    tls: Option<&TlsAcceptor>,
    limits: &ListenerLimits,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
    mut service_for: impl FnMut(R) -> Arc<S>,
) -> std::io::Result<Vec<Bound<R>>> {
    let mut listeners = Vec::new();
    for &(role, addrs) in plan {
        let implicit = match (role.implicit_tls(), tls) {
            (false, _) => None,
            (true, Some(tls)) => Some(tls.clone()),
            (true, None) => continue,
        };
        for &addr in addrs {
            let listener = Listener::bind(role.name(), addr, implicit.clone()).await?;
            listeners.push((role, listener));
        }
    }
    let mut bound = Vec::new();
    for (role, listener) in listeners {
        bound.push(Bound {
            role,
            addr: listener.local_addr(),
        });
        listener.spawn(service_for(role), limits.clone(), shutdown.clone(), tracker);
    }
    Ok(bound)
}

/// A daemon's session logic, as the listener sees it.
pub trait Service: Send + Sync + 'static {
    /// Runs one session to its end.
    fn serve(self: Arc<Self>, conn: Connection) -> impl Future<Output = ()> + Send;
    /// Why a connection is refused, in the protocol's words (e.g. SMTP
    /// `421 4.7.0 …`): the listener writes it, within a bounded time, and
    /// closes the connection.
    fn refusal(&self, why: Refusal) -> Vec<u8>;
}

/// A bound listening socket, not yet accepting.
pub struct Listener {
    pub name: &'static str,
    pub socket: TcpListener,
    /// `Some` for implicit TLS (SMTPS, IMAPS, POP3S).
    pub implicit_tls: Option<TlsAcceptor>,
}

impl Listener {
    /// Binds `addr` (port 0 picks a free port; see `local_addr`). The error
    /// names the listener and the address: `cannot listen for smtp on
    /// 127.0.0.1:2525: Address already in use`.
    pub async fn bind(
        name: &'static str,
        addr: SocketAddr,
        implicit_tls: Option<TlsAcceptor>,
    ) -> std::io::Result<Listener> {
        let socket = TcpListener::bind(addr).await.map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot listen for {name} on {addr}: {e}"))
        })?;
        Ok(Listener {
            name,
            socket,
            implicit_tls,
        })
    }

    /// The address actually bound (the unspecified address, port 0, in the
    /// unlikely case the OS cannot say).
    pub fn local_addr(&self) -> SocketAddr {
        self.socket
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Spawns the accept loop on `tracker`; it and every session it starts
    /// are tracked there. The loop stops when `shutdown` is cancelled: it
    /// refuses (`ShuttingDown`) the connections already waiting, then closes
    /// the socket. Each session gets a child of `shutdown` and runs in a
    /// `session` tracing span. Finish with [`drain`].
    pub fn spawn<S: Service>(
        self,
        service: Arc<S>,
        limits: ListenerLimits,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) {
        let name = self.name;
        let addr = self.local_addr();
        let state = Arc::new(State {
            name,
            tls: self.implicit_tls,
            sessions: Arc::new(Semaphore::new(
                limits.max_connections.min(Semaphore::MAX_PERMITS),
            )),
            refusals: Arc::new(Semaphore::new(MAX_REFUSALS)),
            per_ip: Arc::new(PerIp {
                max: limits.max_connections_per_ip,
                counts: Mutex::new(HashMap::new()),
            }),
            handshake_timeout: Duration::from_secs(limits.tls_handshake_timeout_secs),
            tracker: tracker.clone(),
            service,
            shutdown,
        });
        tracker.spawn(
            accept_loop(self.socket, state)
                .instrument(tracing::info_span!("listener", listener = name, %addr)),
        );
    }
}

/// Closes `tracker` and waits up to `grace` for every task on it (accept
/// loops and sessions) to end. True if all ended in time; on false the
/// caller may simply return, dropping the runtime and with it the sessions.
pub async fn drain(tracker: &TaskTracker, grace: Duration) -> bool {
    tracker.close();
    tokio::time::timeout(grace, tracker.wait()).await.is_ok()
}

/// Refusals being said at once, per listener; past this, refused
/// connections are closed without a word.
const MAX_REFUSALS: usize = 32;
/// Time a refusal (TLS handshake included) may take.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections waiting in the backlog that are told `ShuttingDown` when the
/// listener stops.
const MAX_SHUTDOWN_REFUSALS: usize = 64;
const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

struct State<S> {
    name: &'static str,
    tls: Option<TlsAcceptor>,
    /// One permit per running session.
    sessions: Arc<Semaphore>,
    /// One permit per refusal in progress.
    refusals: Arc<Semaphore>,
    per_ip: Arc<PerIp>,
    handshake_timeout: Duration,
    tracker: TaskTracker,
    service: Arc<S>,
    shutdown: CancellationToken,
}

async fn accept_loop<S: Service>(socket: TcpListener, state: Arc<State<S>>) {
    tracing::debug!("accepting connections");
    let mut backoff = MIN_BACKOFF;
    loop {
        let accepted = tokio::select! {
            biased;
            () = state.shutdown.cancelled() => break,
            r = socket.accept() => r,
        };
        match accepted {
            Ok((tcp, peer)) => {
                backoff = MIN_BACKOFF;
                state.admit(tcp, peer);
            }
            Err(e) if is_per_connection_error(&e) => {
                tracing::debug!("accept: {e}");
            }
            Err(e) => {
                // Typically out of file descriptors: wait rather than spin.
                tracing::warn!("accept failed: {e}; retrying in {backoff:?}");
                tokio::select! {
                    () = state.shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    // Tell the clients already waiting in the backlog, then close.
    for _ in 0..MAX_SHUTDOWN_REFUSALS {
        match tokio::time::timeout(Duration::ZERO, socket.accept()).await {
            Ok(Ok((tcp, peer))) => {
                prepare(&tcp);
                state.refuse(tcp, peer, Refusal::ShuttingDown);
            }
            _ => break,
        }
    }
    drop(socket);
    tracing::debug!("stopped accepting connections");
}

/// Accept errors that concern one connection only, not the listener.
fn is_per_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock
    )
}

fn prepare(tcp: &TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!("cannot set TCP_NODELAY: {e}");
    }
}

impl<S: Service> State<S> {
    /// Starts a session for a new connection, or refuses it.
    fn admit(self: &Arc<Self>, tcp: TcpStream, peer: SocketAddr) {
        prepare(&tcp);
        let Ok(permit) = self.sessions.clone().try_acquire_owned() else {
            tracing::info!(%peer, "refused: too many connections");
            return self.refuse(tcp, peer, Refusal::TooManyConnections);
        };
        let Some(ip_slot) = PerIp::enter(&self.per_ip, peer.ip()) else {
            tracing::info!(%peer, "refused: too many connections from this address");
            return self.refuse(tcp, peer, Refusal::TooManyFromAddress);
        };
        let span = tracing::info_span!("session", listener = self.name, peer = %peer);
        let state = self.clone();
        self.tracker.spawn(
            async move {
                let _permit = permit;
                let _ip_slot = ip_slot;
                let shutdown = state.shutdown.child_token();
                let local = local_addr_of(&tcp, peer);
                let stream = match &state.tls {
                    None => MaybeTlsStream::plain(tcp),
                    Some(acceptor) => {
                        let handshake = tokio::time::timeout(
                            state.handshake_timeout,
                            MaybeTlsStream::accept(acceptor, tcp),
                        );
                        let result = tokio::select! {
                            () = shutdown.cancelled() => return,
                            r = handshake => r,
                        };
                        match result {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(e)) => {
                                tracing::info!("TLS handshake failed: {e}");
                                return;
                            }
                            Err(_) => {
                                tracing::info!("TLS handshake timed out");
                                return;
                            }
                        }
                    }
                };
                tracing::debug!("session started");
                let conn = Connection {
                    stream,
                    peer,
                    local,
                    shutdown,
                };
                state.service.clone().serve(conn).await;
                tracing::debug!("session ended");
                // What the session held is free now.
                crate::memory::Trimmer::work_ended();
            }
            .instrument(span),
        );
    }

    /// Lets the service say why, within a bounded time and a bounded
    /// number of refusals at once; past that, just closes the connection.
    fn refuse(self: &Arc<Self>, tcp: TcpStream, peer: SocketAddr, why: Refusal) {
        let Ok(permit) = self.refusals.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many refusals in progress; closing silently");
            return;
        };
        let span = tracing::info_span!("session", listener = self.name, peer = %peer);
        let state = self.clone();
        self.tracker.spawn(
            async move {
                let _permit = permit;
                let local = local_addr_of(&tcp, peer);
                let refusal = async {
                    let stream = match &state.tls {
                        None => MaybeTlsStream::plain(tcp),
                        Some(acceptor) => match MaybeTlsStream::accept(acceptor, tcp).await {
                            Ok(tls) => tls,
                            Err(e) => {
                                tracing::debug!("TLS handshake failed: {e}");
                                return;
                            }
                        },
                    };
                    let conn = Connection {
                        stream,
                        peer,
                        local,
                        shutdown: state.shutdown.child_token(),
                    };
                    conn.refuse_with(&state.service.refusal(why)).await;
                };
                if tokio::time::timeout(REFUSAL_TIMEOUT, refusal)
                    .await
                    .is_err()
                {
                    tracing::debug!("refusal timed out");
                }
            }
            .instrument(span),
        );
    }
}

fn local_addr_of(tcp: &TcpStream, peer: SocketAddr) -> SocketAddr {
    tcp.local_addr().unwrap_or_else(|_| match peer {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    })
}

/// Connections per client address (IPv4-mapped IPv6 counted as IPv4).
struct PerIp {
    max: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIp {
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a slot for `ip`, or `None` if it has `max` already.
    fn enter(this: &Arc<PerIp>, ip: IpAddr) -> Option<IpSlot> {
        let ip = ip.to_canonical();
        let mut counts = this.counts();
        let count = counts.entry(ip).or_insert(0);
        if *count >= this.max {
            if *count == 0 {
                counts.remove(&ip);
            }
            return None;
        }
        *count += 1;
        Some(IpSlot {
            table: this.clone(),
            ip,
        })
    }
}

/// One connection's place in [`PerIp`]; given back on drop.
struct IpSlot {
    table: Arc<PerIp>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.table.counts();
        if let Some(count) = counts.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{connector_trusting, tls_connect};
    use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncWrite, AsyncWriteExt as _, BufReader};

    /// Greets with `hello <tls> nodelay=<bool>`, echoes lines, says `bye`
    /// on shutdown; refuses with `refused <why>`.
    struct Echo;

    impl Service for Echo {
        async fn serve(self: Arc<Self>, conn: Connection) {
            let nodelay = conn.stream.tcp().and_then(|tcp| tcp.nodelay().ok()) == Some(true);
            let tls = conn.stream.tls_description().unwrap_or("plain".into());
            let mut stream = BufReader::new(conn.stream);
            let greeting = format!("hello {tls} nodelay={nodelay}\n");
            if stream
                .get_mut()
                .write_all(greeting.as_bytes())
                .await
                .is_err()
            {
                return;
            }
            let mut line = String::new();
            loop {
                line.clear();
                tokio::select! {
                    () = conn.shutdown.cancelled() => {
                        let _ = stream.get_mut().write_all(b"bye\n").await;
                        return;
                    }
                    r = stream.read_line(&mut line) => match r {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {
                            if stream.get_mut().write_all(line.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    },
                }
            }
        }

        fn refusal(&self, why: Refusal) -> Vec<u8> {
            format!("refused {why:?}\n").into_bytes()
        }
    }

    /// Ignores shutdown entirely.
    struct Stubborn;

    impl Service for Stubborn {
        async fn serve(self: Arc<Self>, mut conn: Connection) {
            let _ = conn.stream.write_all(b"hello\n").await;
            std::future::pending::<()>().await;
        }
        fn refusal(&self, _why: Refusal) -> Vec<u8> {
            Vec::new()
        }
    }

    fn limits(total: usize, per_ip: usize) -> ListenerLimits {
        ListenerLimits {
            max_connections: total,
            max_connections_per_ip: per_ip,
            tls_handshake_timeout_secs: 1,
            shutdown_grace_secs: 5,
        }
    }

    async fn start<S: Service>(
        service: S,
        limits: ListenerLimits,
        tls: Option<TlsAcceptor>,
    ) -> (SocketAddr, CancellationToken, TaskTracker) {
        let listener = Listener::bind("test", "127.0.0.1:0".parse().unwrap(), tls)
            .await
            .unwrap();
        let addr = listener.local_addr();
        assert_ne!(addr.port(), 0);
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        listener.spawn(Arc::new(service), limits, shutdown.clone(), &tracker);
        (addr, shutdown, tracker)
    }

    async fn line<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> String {
        let mut s = String::new();
        tokio::time::timeout(Duration::from_secs(5), r.read_line(&mut s))
            .await
            .expect("no answer within 5 s")
            .unwrap();
        s
    }

    async fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
        BufReader::new(TcpStream::connect(addr).await.unwrap())
    }

    async fn send<W: AsyncRead + AsyncWrite + Unpin>(w: &mut BufReader<W>, text: &str) {
        w.get_mut().write_all(text.as_bytes()).await.unwrap();
    }

    /// Connects until a greeting comes (a closed session's slot is given
    /// back asynchronously).
    async fn connect_when_free(addr: SocketAddr) -> BufReader<TcpStream> {
        for _ in 0..100 {
            let mut c = connect(addr).await;
            if line(&mut c).await.starts_with("hello") {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("never admitted");
    }

    #[tokio::test]
    async fn accepts_and_serves() {
        let (addr, shutdown, tracker) = start(Echo, limits(10, 10), None).await;
        let mut a = connect(addr).await;
        let mut b = connect(addr).await;
        assert_eq!(line(&mut a).await, "hello plain nodelay=true\n");
        assert_eq!(line(&mut b).await, "hello plain nodelay=true\n");
        send(&mut a, "ping a\n").await;
        send(&mut b, "ping b\n").await;
        assert_eq!(line(&mut b).await, "ping b\n");
        assert_eq!(line(&mut a).await, "ping a\n");
        shutdown.cancel();
        assert!(drain(&tracker, Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn per_ip_limit_refuses() {
        let (addr, shutdown, tracker) = start(Echo, limits(10, 2), None).await;
        let mut a = connect(addr).await;
        assert!(line(&mut a).await.starts_with("hello"));
        let mut b = connect(addr).await;
        assert!(line(&mut b).await.starts_with("hello"));
        let mut c = connect(addr).await;
        assert_eq!(line(&mut c).await, "refused TooManyFromAddress\n");
        // The refused connection is closed after the refusal.
        assert_eq!(line(&mut c).await, "");
        drop(a);
        let mut d = connect_when_free(addr).await;
        send(&mut d, "still here\n").await;
        assert_eq!(line(&mut d).await, "still here\n");
        shutdown.cancel();
        assert!(drain(&tracker, Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn total_limit_refuses() {
        let (addr, shutdown, tracker) = start(Echo, limits(1, 100), None).await;
        let mut a = connect(addr).await;
        assert!(line(&mut a).await.starts_with("hello"));
        let mut b = connect(addr).await;
        assert_eq!(line(&mut b).await, "refused TooManyConnections\n");
        assert_eq!(line(&mut b).await, "");
        drop(a);
        connect_when_free(addr).await;
        shutdown.cancel();
        assert!(drain(&tracker, Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn zero_limits_refuse_everything() {
        let (addr, shutdown, tracker) = start(Echo, limits(0, 0), None).await;
        let mut a = connect(addr).await;
        assert_eq!(line(&mut a).await, "refused TooManyConnections\n");
        shutdown.cancel();
        assert!(drain(&tracker, Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn shutdown_stops_accepting_and_sessions_finish() {
        let (addr, shutdown, tracker) = start(Echo, limits(10, 10), None).await;
        let mut a = connect(addr).await;
        assert!(line(&mut a).await.starts_with("hello"));
        shutdown.cancel();
        assert_eq!(line(&mut a).await, "bye\n");
        assert!(drain(&tracker, Duration::from_secs(5)).await);
        // The listening socket is closed: connecting fails, or the
        // connection is closed at once.
        match TcpStream::connect(addr).await {
            Err(_) => {}
            Ok(tcp) => {
                let mut c = BufReader::new(tcp);
                let mut s = String::new();
                let r = tokio::time::timeout(Duration::from_secs(5), c.read_line(&mut s))
                    .await
                    .expect("connection left open after shutdown");
                assert!(
                    r.is_err() || s.is_empty() || s.starts_with("refused"),
                    "{s}"
                );
            }
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn waiting_connections_are_told_on_shutdown() {
        let (addr, shutdown, tracker) = start(Echo, limits(10, 10), None).await;
        // The accept loop has not run yet (one thread, no await since
        // spawn): this connection waits in the backlog when shutdown comes.
        let waiting = std::net::TcpStream::connect(addr).unwrap();
        waiting.set_nonblocking(true).unwrap();
        shutdown.cancel();
        let mut c = BufReader::new(TcpStream::from_std(waiting).unwrap());
        assert_eq!(line(&mut c).await, "refused ShuttingDown\n");
        assert!(drain(&tracker, Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn drain_reports_sessions_that_do_not_finish() {
        let (addr, shutdown, tracker) = start(Stubborn, limits(10, 10), None).await;
        let mut a = connect(addr).await;
        assert_eq!(line(&mut a).await, "hello\n");
        shutdown.cancel();
        assert!(!drain(&tracker, Duration::from_millis(200)).await);
    }

    #[tokio::test]
    async fn implicit_tls() {
        let dir = tempfile::tempdir().unwrap();
        let acc = crate::tls::acceptor(&Default::default(), dir.path()).unwrap();
        let (addr, shutdown, tracker) = start(Echo, limits(10, 1), Some(acc)).await;
        let connector = connector_trusting(&dir.path().join("tls/cert.pem"));
        let mut a = BufReader::new(tls_connect(&connector, addr, "localhost").await.unwrap());
        let greeting = line(&mut a).await;
        assert!(greeting.starts_with("hello TLSv1_3 TLS13_"), "{greeting}");
        send(&mut a, "secret\n").await;
        assert_eq!(line(&mut a).await, "secret\n");
        // Refusals on an implicit-TLS listener are said over TLS.
        let mut b = BufReader::new(tls_connect(&connector, addr, "127.0.0.1").await.unwrap());
        assert_eq!(line(&mut b).await, "refused TooManyFromAddress\n");
        shutdown.cancel();
        assert_eq!(line(&mut a).await, "bye\n");
        assert!(drain(&tracker, Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn stalled_tls_handshake_is_dropped_and_frees_its_slot() {
        let dir = tempfile::tempdir().unwrap();
        let acc = crate::tls::acceptor(&Default::default(), dir.path()).unwrap();
        let (addr, shutdown, tracker) = start(Echo, limits(10, 1), Some(acc)).await;
        // A client that never starts the handshake is closed after
        // tls_handshake_timeout_secs (1 s here).
        let mut silent = connect(addr).await;
        let started = std::time::Instant::now();
        assert_eq!(line(&mut silent).await, "");
        assert!(started.elapsed() < Duration::from_secs(4));
        // Its per-IP slot is free again.
        let connector = connector_trusting(&dir.path().join("tls/cert.pem"));
        let mut a = BufReader::new(tls_connect(&connector, addr, "localhost").await.unwrap());
        assert!(line(&mut a).await.starts_with("hello TLS"));
        shutdown.cancel();
        assert!(drain(&tracker, Duration::from_secs(5)).await);
    }

    #[test]
    fn per_ip_slots_are_returned_and_entries_removed() {
        let table = Arc::new(PerIp {
            max: 2,
            counts: Mutex::new(HashMap::new()),
        });
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let a = PerIp::enter(&table, v4).unwrap();
        let b = PerIp::enter(&table, mapped).unwrap();
        assert!(PerIp::enter(&table, v4).is_none());
        drop(a);
        let c = PerIp::enter(&table, v4).unwrap();
        drop(b);
        drop(c);
        assert!(table.counts().is_empty());
        let zero = Arc::new(PerIp {
            max: 0,
            counts: Mutex::new(HashMap::new()),
        });
        assert!(PerIp::enter(&zero, v4).is_none());
        assert!(zero.counts().is_empty());
    }
}
