//! The threads behind a [`Store`](crate::Store), for either engine: one
//! writer doing group commit, a pool of readers, and a watcher noticing
//! other processes' commits (SQLite: a poller) or other nodes' (PostgreSQL:
//! a listener).
//!
//! Async callers send boxed closures over bounded queues
//! ([`crate::work_queue`]; sizes in [`StoreOptions`]) and wait on tokio
//! oneshots. Only SQLite lookups by key run on the caller's thread
//! ([`Inner::lookup`], `crate::sqlite::inline`).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::db::{Connection, Dialect};
use crossbeam_channel::RecvTimeoutError as JobTimeout;
use tokio::sync::{oneshot, watch};

use crate::db::SqlResult;
use crate::sql::prune::Pruner;
use crate::sql::wakeups::{PendingWake, Wakeups};
use crate::sqlite::checkpoint;
use crate::sqlite::inline::InlineReads;
use crate::sqlite::schema;
use crate::work_queue::{Queued, SharedJobs, WorkQueue};
use crate::{Result, StoreError, StoreOptions};

type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// Opens a new connection to replace one that was lost (PostgreSQL), for
/// every thread of a store.
#[derive(Clone)]
struct Reconnect {
    open: Arc<dyn Fn() -> Result<Connection> + Send + Sync>,
    /// Connections found lost so far, by any thread. A thread whose own
    /// connection is older than the last loss opens a new one before its
    /// next request instead of failing that request on a connection the
    /// database has closed meanwhile (restarted): the listener finds a
    /// loss at once, the others only when they next talk.
    losses: Arc<AtomicU64>,
}

impl Reconnect {
    fn new(open: impl Fn() -> Result<Connection> + Send + Sync + 'static) -> Reconnect {
        Reconnect {
            open: Arc::new(open),
            losses: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// How commits by others are noticed.
enum Watcher {
    /// SQLite: `PRAGMA data_version`, polled.
    Poll(Connection),
    /// PostgreSQL: LISTEN on [`crate::pg::CHANNEL`].
    Listen(Connection),
}

/// A thread's connection, opened again when it was lost (PostgreSQL
/// restarted, a network cut): requests fail with a temporary error
/// meanwhile and the store recovers by itself.
struct Link {
    conn: Connection,
    reconnect: Option<Reconnect>,
    /// When to try again after a failed reconnect.
    retry_at: Option<Instant>,
    /// Since when the connection is lost, and when that was last logged
    /// (every thread retries twice a second: one warning per
    /// [`LOST_LOG_EVERY`], not one per try).
    lost: Option<(Instant, Instant)>,
    /// [`Reconnect::losses`] when this connection was opened.
    epoch: u64,
}

/// How often a thread says again that the database is still unreachable.
const LOST_LOG_EVERY: Duration = Duration::from_secs(30);

impl Link {
    fn new(conn: Connection, reconnect: Option<Reconnect>) -> Link {
        Link {
            conn,
            epoch: reconnect
                .as_ref()
                .map_or(0, |r| r.losses.load(Ordering::Relaxed)),
            reconnect,
            retry_at: None,
            lost: None,
        }
    }

    /// The connection, reopened first if it was lost; `false` if it is
    /// still lost.
    fn check(&mut self) -> bool {
        let closed = match &self.conn {
            Connection::Postgres(pg) => pg.is_closed(),
            Connection::Sqlite(_) => false,
        };
        let Some(reconnect) = &self.reconnect else {
            return !closed;
        };
        let losses = reconnect.losses.load(Ordering::Relaxed);
        if closed && self.lost.is_none() && losses == self.epoch {
            // The first of this loss: the other threads' connections are
            // likely gone too.
            reconnect.losses.fetch_add(1, Ordering::Relaxed);
        }
        if !closed && losses == self.epoch {
            return true;
        }
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return false;
        }
        let epoch = reconnect.losses.load(Ordering::Relaxed);
        match (reconnect.open)() {
            Ok(conn) => {
                let after = self.lost.take().map(|(since, _)| since.elapsed());
                tracing::info!(?after, "store: connected to the database again");
                self.conn = conn;
                self.epoch = epoch;
                self.retry_at = None;
                true
            }
            Err(e) => {
                let now = Instant::now();
                match &mut self.lost {
                    Some((_, logged)) if now.duration_since(*logged) < LOST_LOG_EVERY => {
                        tracing::debug!(error = %e, "store: the database is still unreachable");
                    }
                    Some((since, logged)) => {
                        *logged = now;
                        let since = now.duration_since(*since);
                        tracing::warn!(error = %e, ?since, "store: the database is still unreachable");
                    }
                    None => {
                        self.lost = Some((now, now));
                        tracing::warn!(error = %e, "store: the database is unreachable");
                    }
                }
                self.retry_at = Some(now + Duration::from_millis(500));
                false
            }
        }
    }
}

/// One write request, type-erased so that a batch can hold many kinds.
trait WriteJob: Send {
    /// Runs the request; `true` if it succeeded.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Records an error for a request that could not be run.
    fn fail(&mut self, error: StoreError);
    /// Whether a successful run changed mail (watchers are to be told).
    fn notifies(&self) -> bool;
    /// Whether the request must be on disk before it is answered
    /// ([`Durability::Disk`]).
    fn needs_disk(&self) -> bool;
    /// Whether the run failed for want of space ([`StoreError::Full`]).
    fn failed_full(&self) -> bool;
    /// Sends the result: the request's own, or `commit_error` if the batch
    /// did not commit.
    fn finish(self: Box<Self>, commit_error: Option<&CommitError>);
}

/// Why a batch did not commit.
struct CommitError {
    message: String,
    /// For want of space: every request of the batch is told
    /// [`StoreError::Full`], which the protocols name as such.
    full: bool,
}

struct Job<T, F> {
    f: Option<F>,
    result: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
    notify: bool,
    durability: Durability,
}

/// How far a write request's commit must have gone before it is answered.
///
/// Mail that is accepted or created (a `250` to DATA, an APPEND or COPY,
/// an account and its password) is [`Durability::Disk`]: the commit waits
/// for the write-ahead log's fsync, so not even a power cut loses it.
/// Changes to mail that already exists (flags, expunges, MOVE, `\Recent`
/// claims, leases), queue claims, local deliveries of queued mail
/// (the queue keeps the message until the delivery commits), and records
/// about mail rather than mail (an SMTP session's transcript) are
/// [`Durability::Os`]: the commit is in the operating system's hands when
/// answered, which a `kill -9` of the process cannot undo; a power cut may
/// undo the last of them, never mail: SQLite's WAL keeps commits in order,
/// so what is lost is only a tail, and the next `Disk` commit syncs
/// everything before it (an undone delivery leaves its message queued, to
/// be delivered again). That is Dovecot's default too (`mail_fsync =
/// optimized`: saved mail is fsynced, index changes are not); with
/// `[store] sync_every_commit = true` every commit is `Disk`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    Disk,
    Os,
}

impl<T, F> WriteJob for Job<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(f) = self.f.take() else {
            return false;
        };
        let result = catch_unwind(AssertUnwindSafe(|| f(conn))).unwrap_or_else(|_| {
            Err(StoreError::Database(
                "internal error: a write request panicked".into(),
            ))
        });
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn fail(&mut self, error: StoreError) {
        self.f = None;
        self.result = Some(Err(error));
    }

    fn notifies(&self) -> bool {
        self.notify && matches!(self.result, Some(Ok(_)))
    }

    fn needs_disk(&self) -> bool {
        self.durability == Durability::Disk
    }

    fn failed_full(&self) -> bool {
        matches!(self.result, Some(Err(StoreError::Full(_))))
    }

    fn finish(self: Box<Self>, commit_error: Option<&CommitError>) {
        let result = match (self.result, commit_error) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(value)), None) => Ok(value),
            (_, Some(e)) if e.full => Err(StoreError::Full(e.message.clone())),
            (_, Some(e)) => Err(StoreError::Database(e.message.clone())),
            (None, None) => Err(StoreError::Database(
                "internal error: a write request was not run".into(),
            )),
        };
        // The caller may have given up waiting; that is its business.
        let _ = self.reply.send(result);
    }
}

/// Everything the [`Store`](crate::Store) handles share.
///
/// Field order matters: the queues are dropped first, which lets the
/// threads finish, and then `threads` joins them.
pub(crate) struct Inner {
    writer: WorkQueue<Box<dyn WriteJob>>,
    readers: WorkQueue<ReadJob>,
    changes: Arc<watch::Sender<u64>>,
    /// Per-mailbox wake-ups, from the same commits as `changes`.
    wakeups: Arc<Wakeups>,
    /// Transactions the writer has committed (for tests and diagnostics).
    commits: Arc<AtomicU64>,
    _stop_poller: mpsc::Sender<()>,
    /// Lookups by key on the caller's thread ([`Inner::lookup`]); SQLite
    /// only.
    inline: Option<InlineReads>,
    _threads: Threads,
}

struct Threads(Vec<JoinHandle<()>>);

impl Drop for Threads {
    fn drop(&mut self) {
        let me = thread::current().id();
        for handle in self.0.drain(..) {
            if handle.thread().id() != me {
                let _ = handle.join();
            }
        }
    }
}

impl Inner {
    pub(crate) fn open(data_dir: &Path, options: &StoreOptions) -> Result<Inner> {
        std::fs::create_dir_all(data_dir)?;
        if let Some(url) = &options.postgres_url {
            return Self::open_postgres(url, options);
        }
        let path = data_dir.join(schema::DB_FILE);

        let mut sqlite_writer = schema::open_writer(&path)?;
        schema::limit_size(&sqlite_writer, options.max_size)?;
        let checkpointer = checkpoint::start(&path, &mut sqlite_writer, options.checkpoint_bytes)?;
        let reader_conns = (0..options.readers.max(1))
            .map(|_| {
                let conn = schema::open_reader(&path)?;
                schema::limit_page_cache(&conn, options.reader_cache_bytes)?;
                Ok(Connection::Sqlite(conn))
            })
            .collect::<Result<Vec<_>>>()?;
        let poller_conn = Connection::Sqlite(schema::open_reader(&path)?);
        Self::start(
            Connection::Sqlite(sqlite_writer),
            reader_conns,
            Watcher::Poll(poller_conn),
            Some(InlineReads::new(&path)),
            vec![checkpointer],
            None,
            options,
        )
    }

    /// The store in PostgreSQL ([`crate::pg`]): the same threads, with
    /// LISTEN in place of the poller and no inline reads.
    fn open_postgres(url: &str, options: &StoreOptions) -> Result<Inner> {
        // The blocking client runs a runtime of its own, which cannot be
        // entered from a tokio worker (the caller may be one): connect
        // and prepare on a thread of ours.
        thread::scope(|scope| {
            scope
                .spawn(|| Self::open_postgres_here(url, options))
                .join()
                .unwrap_or_else(|_| {
                    Err(StoreError::Database(
                        "internal error: opening the PostgreSQL store panicked".into(),
                    ))
                })
        })
    }

    fn open_postgres_here(url: &str, options: &StoreOptions) -> Result<Inner> {
        let target = crate::pg::Target::new(url, options.postgres_ca_file.as_deref())?;
        let writer_conn = crate::pg::open_writer(&target)?;
        let reader_conns = (0..options.readers.max(1))
            .map(|_| crate::pg::connect(&target))
            .collect::<Result<Vec<_>>>()?;
        let listener = crate::pg::connect(&target)?;
        Self::start(
            writer_conn,
            reader_conns,
            Watcher::Listen(listener),
            None,
            Vec::new(),
            Some(Reconnect::new(move || crate::pg::connect(&target))),
            options,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn start(
        writer_conn: Connection,
        reader_conns: Vec<Connection>,
        watcher: Watcher,
        inline: Option<InlineReads>,
        engine_threads: Vec<JoinHandle<()>>,
        reconnect: Option<Reconnect>,
        options: &StoreOptions,
    ) -> Result<Inner> {
        // Before any request: nothing may read or cache an outdated summary.
        crate::sql::reparse::bring_up_to_date(&writer_conn)?;

        let (changes, _) = watch::channel(0u64);
        let changes = Arc::new(changes);
        let origin = notify_origin();
        let wakeups = Arc::new(Wakeups::new());
        wakeups.start(&writer_conn)?;
        let writer_wakeups = Arc::clone(&wakeups);
        let mut threads = Threads(engine_threads);

        let (writer_tx, writer_rx) = WorkQueue::<Box<dyn WriteJob>>::new(options.writer_queue);
        let max_batch = options.max_batch.max(1);
        let writer_changes = Arc::clone(&changes);
        let commits = Arc::new(AtomicU64::new(0));
        let writer_commits = Arc::clone(&commits);
        let pruner = Pruner::new(options.prune.clone());
        let sync_every_commit = options.sync_every_commit;
        let writer_reconnect = reconnect.clone();
        let writer_origin = Arc::clone(&origin);
        threads.0.push(
            thread::Builder::new()
                .name("store-writer".into())
                .spawn(move || {
                    writer_loop(
                        Link::new(writer_conn, writer_reconnect),
                        writer_rx,
                        max_batch,
                        Notify {
                            changes: writer_changes,
                            wakeups: writer_wakeups,
                            origin: writer_origin,
                        },
                        writer_commits,
                        pruner,
                        sync_every_commit,
                    )
                })?,
        );

        let (reader_tx, reader_rx) = WorkQueue::<ReadJob>::shared(options.reader_queue);
        for (i, conn) in reader_conns.into_iter().enumerate() {
            let rx = reader_rx.clone();
            let link = Link::new(conn, reconnect.clone());
            threads.0.push(
                thread::Builder::new()
                    .name(format!("store-reader-{i}"))
                    .spawn(move || reader_loop(link, rx))?,
            );
        }

        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let poller_notify = Notify {
            changes: Arc::clone(&changes),
            wakeups: Arc::clone(&wakeups),
            origin,
        };
        let interval = options.poll_interval.max(Duration::from_millis(1));
        threads.0.push(match watcher {
            Watcher::Poll(conn) => thread::Builder::new()
                .name("store-poller".into())
                .spawn(move || poller_loop(conn, stop_rx, interval, poller_notify))?,
            Watcher::Listen(conn) => {
                let link = Link::new(conn, reconnect);
                thread::Builder::new()
                    .name("store-listener".into())
                    .spawn(move || listener_loop(link, stop_rx, interval, poller_notify))?
            }
        });

        Ok(Inner {
            writer: writer_tx,
            readers: reader_tx,
            changes,
            wakeups,
            commits,
            _stop_poller: stop_tx,
            inline,
            _threads: threads,
        })
    }

    /// Runs `f` on the writer inside the next batch's transaction (in its own
    /// savepoint); resolves once the batch has committed. `notify`: a
    /// success changes mail, so watchers are told after the commit.
    pub(crate) async fn write<T, F>(&self, notify: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.write_durable(Durability::Disk, notify, f).await
    }

    /// [`Inner::write`] for a change to mail that already exists, answered
    /// once the commit is in the operating system's hands ([`Durability::Os`]).
    pub(crate) async fn write_change<T, F>(&self, notify: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.write_durable(Durability::Os, notify, f).await
    }

    async fn write_durable<T, F>(&self, durability: Durability, notify: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            f: Some(f),
            result: None,
            reply,
            notify,
            durability,
        };
        self.writer.send(Box::new(job)).await?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` on a reader connection, inside one read transaction (a
    /// consistent snapshot).
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn: &Connection| {
            // Nobody waits for it any more (a session that ended, a
            // timeout): not worth a transaction.
            if reply.is_closed() {
                return;
            }
            let _ = reply.send(read_transaction(conn, f));
        });
        self.readers.send(job).await?;
        rx.await.map_err(|_| {
            StoreError::Database("internal error: a read request was abandoned".into())
        })?
    }

    /// [`Inner::read`] for a lookup of a few rows by key in ONE statement:
    /// on the calling thread when it can be ([`InlineReads`], SQLite),
    /// else on a reader thread. On PostgreSQL the statement runs without a
    /// transaction around it: a single statement is its own consistent
    /// snapshot, and `BEGIN`/`COMMIT` were two of its three round trips.
    pub(crate) async fn lookup<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T> + Send + 'static,
    {
        if let Some(result) = self.inline.as_ref().and_then(|inline| inline.read(&f)) {
            return result;
        }
        let (reply, rx) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn: &Connection| {
            if reply.is_closed() {
                return;
            }
            let result = match conn.dialect() {
                Dialect::Postgres => single_statement(conn, f),
                Dialect::Sqlite => read_transaction(conn, f),
            };
            let _ = reply.send(result);
        });
        self.readers.send(job).await?;
        rx.await.map_err(|_| {
            StoreError::Database("internal error: a read request was abandoned".into())
        })?
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub(crate) fn wakeups(&self) -> &Wakeups {
        &self.wakeups
    }

    /// How many write transactions have committed so far.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

fn bump(changes: &watch::Sender<u64>) {
    changes.send_modify(|n| *n = n.wrapping_add(1));
}

/// Whom the writer and the poller tell of commits.
struct Notify {
    /// The global counter ([`Store::watch_changes`](crate::Store)).
    changes: Arc<watch::Sender<u64>>,
    wakeups: Arc<Wakeups>,
    /// This store's name in its NOTIFY payloads (PostgreSQL): its listener
    /// skips its own writer's commits, which the writer announced itself.
    origin: Arc<str>,
}

/// A name for this store's NOTIFY payloads, unlike any other node's: the
/// process id and the time it opened, in hex (safe in an SQL literal).
fn notify_origin() -> Arc<str> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    static OPENED: AtomicU64 = AtomicU64::new(0);
    let n = OPENED.fetch_add(1, Ordering::Relaxed);
    format!("{:x}-{nanos:x}-{n:x}", std::process::id()).into()
}

impl Notify {
    /// After a commit that changed mail (`conn` outside any transaction):
    /// the mailboxes' watchers first, then the global counter.
    fn committed(&self, conn: &Connection) {
        self.wakeups.scan_and_wake(conn);
        bump(&self.changes);
    }

    /// [`Notify::committed`] for the writer's own batch, whose feed rows
    /// were read before its commit ([`Wakeups::scan_before_commit`]).
    fn batch_committed(&self, conn: &Connection, pending: Option<PendingWake>) {
        self.wakeups.announce(conn, pending);
        bump(&self.changes);
    }
}

/// Runs one transaction-control statement (`BEGIN`, `SAVEPOINT request`,
/// `COMMIT`...) from the connection's statement cache: each batch and each
/// request runs several, and compiling them again every time was a good
/// part of the writer's time per message.
fn control(conn: &Connection, sql: &str) -> crate::db::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Opens a read transaction: one snapshot for the whole request.
fn begin_read(conn: &Connection) -> crate::db::Result<()> {
    match conn.dialect() {
        Dialect::Sqlite => control(conn, "BEGIN"),
        Dialect::Postgres => control(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"),
    }
}

/// Opens a write transaction. SQLite's `BEGIN IMMEDIATE` takes the
/// database's one write lock; on PostgreSQL the advisory
/// [`crate::pg::WRITE_LOCK`] does the same for every node.
pub(crate) fn begin_write(conn: &Connection) -> crate::db::Result<()> {
    match conn.dialect() {
        Dialect::Sqlite => control(conn, "BEGIN IMMEDIATE"),
        // One round trip for both (a simple-query batch); a lock that
        // fails leaves no transaction open behind it.
        Dialect::Postgres => conn
            .execute_batch(&format!(
                "BEGIN; SELECT pg_advisory_xact_lock({})",
                crate::pg::WRITE_LOCK
            ))
            .inspect_err(|_| {
                let _ = conn.execute_batch("ROLLBACK");
            }),
    }
}

/// Commits the writer's transaction; on PostgreSQL with `NOTIFY` of
/// [`crate::pg::CHANNEL`] in the same round trip when `notify` (a NOTIFY
/// is delivered only if its transaction commits).
fn commit_write(conn: &Connection, notify: Option<&str>) -> crate::db::Result<()> {
    match (conn.dialect(), notify) {
        (Dialect::Postgres, Some(origin)) => conn.execute_batch(&format!(
            "NOTIFY {}, '{origin}'; COMMIT",
            crate::pg::CHANNEL
        )),
        _ => control(conn, "COMMIT"),
    }
}

/// Runs a read of one statement outside any transaction (PostgreSQL: the
/// statement is its own snapshot).
fn single_statement<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(|| f(conn))).unwrap_or_else(|_| {
        Err(StoreError::Database(
            "internal error: a read request panicked".into(),
        ))
    })
}

pub(crate) fn read_transaction<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    begin_read(conn).db()?;
    let result = catch_unwind(AssertUnwindSafe(|| f(conn))).unwrap_or_else(|_| {
        Err(StoreError::Database(
            "internal error: a read request panicked".into(),
        ))
    });
    // Nothing was written; ending the snapshot cannot lose anything.
    if control(conn, "COMMIT").is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

fn writer_loop(
    mut link: Link,
    rx: crossbeam_channel::Receiver<Queued<Box<dyn WriteJob>>>,
    max_batch: usize,
    notify: Notify,
    commits: Arc<AtomicU64>,
    mut pruner: Pruner,
    sync_every_commit: bool,
) {
    // Connections open with `synchronous = FULL` (schema::open_connection).
    let mut syncing = SyncMode {
        disk: true,
        always: sync_every_commit,
    };
    loop {
        // With pruning to do, wait for requests only a little; then prune
        // in a transaction of its own.
        let first = match pruner.wait(Instant::now()) {
            None => match rx.recv() {
                Ok(job) => job.take(),
                Err(_) => break,
            },
            Some(wait) => match rx.recv_timeout(wait) {
                Ok(job) => job.take(),
                Err(JobTimeout::Timeout) => {
                    if pruner.due(Instant::now())
                        && link.check()
                        && prune_alone(&link.conn, &mut pruner)
                    {
                        // Pruning may have taken the feed's newest rows,
                        // whose ids SQLite then gives again: look now.
                        notify.wakeups.scan_and_wake(&link.conn);
                    }
                    continue;
                }
                Err(JobTimeout::Disconnected) => break,
            },
        };
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job.take()),
                Err(_) => break,
            }
        }
        if !link.check() {
            let error = CommitError {
                message: "the database is unreachable".into(),
                full: false,
            };
            for job in batch {
                job.finish(Some(&error));
            }
            continue;
        }
        let conn = &link.conn;
        syncing.prepare(conn, &batch);
        if run_batch(conn, batch, &notify, &mut pruner) {
            commits.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The writer connection's `PRAGMA synchronous`, set before each batch:
/// `FULL` (the commit waits for the WAL's fsync) when a request of the
/// batch needs [`Durability::Disk`] or `always`, else `NORMAL`.
struct SyncMode {
    disk: bool,
    always: bool,
}

impl SyncMode {
    fn prepare(&mut self, conn: &Connection, batch: &[Box<dyn WriteJob>]) {
        let disk = self.always || batch.iter().any(|job| job.needs_disk());
        if disk == self.disk {
            return;
        }
        let level = if disk { "FULL" } else { "NORMAL" };
        let Some(sqlite) = conn.as_sqlite() else {
            return;
        };
        match sqlite.pragma_update(None, "synchronous", level) {
            Ok(()) => self.disk = disk,
            // Still at the old level: FULL if that failed to lower it,
            // which only costs time.
            Err(e) => tracing::warn!(error = %e, "store: cannot set synchronous = {level}"),
        }
    }
}

/// One pruning step inside the current transaction, in its own savepoint:
/// a failure is logged and undone, and never fails the batch's requests.
fn prune_step(conn: &Connection, pruner: &mut Pruner) {
    let now = Instant::now();
    if control(conn, "SAVEPOINT prune").is_err() {
        return;
    }
    match pruner.run(conn, now) {
        Ok(_) => {
            let _ = control(conn, "RELEASE prune");
        }
        Err(e) => {
            tracing::warn!(error = %e, "store: pruning the change feed failed; will retry");
            pruner.reset(now);
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK TO prune; RELEASE prune");
            }
        }
    }
}

/// A pruning step in a transaction of its own (the writer is idle; not
/// counted in [`Inner::commits`], which counts request batches). Returns
/// whether it committed.
fn prune_alone(conn: &Connection, pruner: &mut Pruner) -> bool {
    if let Err(e) = begin_write(conn) {
        tracing::warn!(error = %e, "store: could not begin a pruning transaction");
        pruner.reset(Instant::now());
        return false;
    }
    prune_step(conn, pruner);
    if conn.is_autocommit() {
        return false;
    }
    if let Err(e) = control(conn, "COMMIT") {
        tracing::warn!(error = %e, "store: a pruning transaction failed to commit");
        let _ = conn.execute_batch("ROLLBACK");
        pruner.reset(Instant::now());
        return false;
    }
    true
}

/// Runs a batch in one transaction, each request but the first in its own
/// savepoint (the first one's failure rolls the transaction back, and the
/// others run in a new one), and answers every request only once the commit has succeeded
/// (or failed). Returns whether the batch committed.
fn run_batch(
    conn: &Connection,
    mut batch: Vec<Box<dyn WriteJob>>,
    notify: &Notify,
    pruner: &mut Pruner,
) -> bool {
    let alone = batch.len() == 1;
    if let Err(e) = begin_write(conn) {
        let error = CommitError {
            message: e.to_string(),
            full: e.is_full(),
        };
        tracing::error!(error = %error.message, "store: could not begin a write transaction");
        for job in batch {
            job.finish(Some(&error));
        }
        return false;
    }

    let mut fatal: Option<String> = None;
    let mut full = false;
    // The batch's first request runs without a savepoint of its own: if
    // it fails, rolling the whole transaction back undoes exactly what
    // the savepoint would have, and the others begin again after it.
    // Inside a savepoint SQLite copies every page into the statement
    // journal before its first change; for a lone delivery that copy and
    // the two statements were a tenth of the writer's work (issue 13); on
    // PostgreSQL each is a round trip.
    if let Some(job) = batch.first_mut() {
        let ok = job.run(conn);
        if conn.is_autocommit() {
            fatal = Some("the write transaction was rolled back by the database".into());
            full = job.failed_full();
        } else if !ok {
            let _ = conn.execute_batch("ROLLBACK");
            if alone {
                for job in batch {
                    job.finish(None);
                }
                return false;
            }
            full |= job.failed_full();
            if let Err(e) = begin_write(conn) {
                let error = CommitError {
                    message: e.to_string(),
                    full: full || e.is_full(),
                };
                tracing::error!(error = %error.message, "store: could not begin a write transaction");
                for job in batch {
                    job.finish(Some(&error));
                }
                return false;
            }
        }
    }
    // The others each in a savepoint. On PostgreSQL a request's savepoint
    // is released together with the next one's start (one round trip for
    // both), the last by the COMMIT.
    let postgres = conn.dialect() == Dialect::Postgres;
    let mut savepoint_open = false;
    for job in batch.iter_mut().skip(1) {
        if fatal.is_some() {
            break;
        }
        let begun = if postgres && savepoint_open {
            conn.execute_batch("RELEASE request; SAVEPOINT request")
        } else {
            control(conn, "SAVEPOINT request")
        };
        if let Err(e) = begun {
            savepoint_open = false;
            job.fail(crate::db::db_error(e));
            continue;
        }
        savepoint_open = true;
        let ok = job.run(conn);
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back (I/O error, disk
            // full, ...): nothing of this batch is left to commit.
            fatal = Some("the write transaction was rolled back by the database".into());
            full = job.failed_full();
            break;
        }
        // A request that failed for want of space (its savepoint is
        // rolled back below) is the batch's too: the others wrote into
        // the same full database, and their commit would fail alike.
        full |= job.failed_full();
        let end = match (ok, postgres) {
            (true, true) => Ok(()),
            (true, false) => control(conn, "RELEASE request"),
            (false, true) => conn.execute_batch("ROLLBACK TO request; RELEASE request"),
            (false, false) => {
                control(conn, "ROLLBACK TO request").and_then(|()| control(conn, "RELEASE request"))
            }
        };
        savepoint_open &= ok;
        if let Err(e) = end {
            fatal = Some(e.to_string());
            break;
        }
    }

    // Pruning shares the batch's commit and sync; one bounded step.
    if fatal.is_none() && pruner.due(Instant::now()) {
        prune_step(conn, pruner);
        if conn.is_autocommit() {
            fatal = Some("the write transaction was rolled back by the database".into());
        }
    }

    // What the commit adds to the change feed, read while the transaction
    // is still open: after the commit, only the watchers are woken before
    // the requests are answered.
    let changed = fatal.is_none() && batch.iter().any(|job| job.notifies());
    let pending = if changed {
        notify.wakeups.scan_before_commit(conn)
    } else {
        None
    };
    // Other nodes on the same PostgreSQL database hear of it at the
    // commit (a NOTIFY sent with it).
    let commit = match fatal {
        Some(message) => Err(CommitError { message, full }),
        None => commit_write(conn, changed.then_some(&*notify.origin)).map_err(|e| CommitError {
            message: e.to_string(),
            full: full || e.is_full(),
        }),
    };
    match commit {
        Ok(()) => {
            if changed {
                pruner.note_change();
                notify.batch_committed(conn, pending);
            }
            for job in batch {
                job.finish(None);
            }
            true
        }
        Err(error) => {
            tracing::error!(error = %error.message, full = error.full, "store: a write batch failed to commit");
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            for job in batch {
                job.finish(Some(&error));
            }
            false
        }
    }
}

fn reader_loop(mut link: Link, jobs: SharedJobs<ReadJob>) {
    while let Some(job) = jobs.next() {
        // Still lost, the job runs anyway and fails: its caller is told.
        link.check();
        // A panicking job drops its reply sender; its caller sees that.
        let _ = catch_unwind(AssertUnwindSafe(|| job(&link.conn)));
    }
}

/// LISTENs for other nodes' commits (PostgreSQL) and, for each, reads the
/// change feed and wakes the sessions concerned; stops when the store is
/// dropped. After a lost connection it listens again and reads the feed
/// once, for what it missed meanwhile.
fn listener_loop(mut link: Link, stop: mpsc::Receiver<()>, interval: Duration, notify: Notify) {
    // Notifications are pushed: the interval only bounds how long a wait
    // lasts before the stop signal is looked at again (a store being
    // dropped joins this thread), so it is kept short whatever the
    // configured poll interval.
    let interval = interval.min(Duration::from_millis(200));
    let mut listening = false;
    loop {
        match stop.try_recv() {
            Err(mpsc::TryRecvError::Empty) => {}
            _ => return,
        }
        if !link.check() {
            listening = false;
            thread::sleep(interval);
            continue;
        }
        let Some(pg) = link.conn.as_postgres() else {
            return;
        };
        if !listening {
            match pg.with_client(|c| c.batch_execute(&format!("LISTEN {}", crate::pg::CHANNEL))) {
                Ok(()) => {
                    listening = true;
                    notify.committed(&link.conn);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "store: cannot LISTEN for other nodes' changes");
                    thread::sleep(interval);
                    continue;
                }
            }
        }
        let heard = pg.with_client(|c| {
            use postgres::fallible_iterator::FallibleIterator;
            let mut notifications = c.notifications();
            let first = notifications.timeout_iter(interval).next()?;
            if first.is_none() {
                return Ok(0usize);
            }
            // Take what else is already there, then act once, if any
            // came from another node (this node's writer announced its
            // own commits already).
            let others = |n: &postgres::Notification| n.payload() != &*notify.origin;
            let mut heard = usize::from(first.as_ref().is_some_and(others));
            let mut more = notifications.iter();
            while let Ok(Some(n)) = more.next() {
                heard += usize::from(others(&n));
            }
            Ok::<_, postgres::Error>(heard)
        });
        match heard {
            Ok(0) => {}
            Ok(_) => notify.committed(&link.conn),
            Err(e) => {
                tracing::warn!(error = %e, "store: lost the database connection that listens for changes");
                listening = false;
            }
        }
    }
}

/// Polls `PRAGMA data_version`, which moves when another connection (this
/// process's writer included) commits; stops when the store is dropped.
fn poller_loop(conn: Connection, stop: mpsc::Receiver<()>, interval: Duration, notify: Notify) {
    let mut last = conn.data_version().ok();
    // Any message or a disconnect (the store was dropped) ends the loop.
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(interval) {
        let now = conn.data_version().ok();
        if now.is_some() && now != last {
            last = now;
            // Mostly this process's own writer, whose commits are already
            // announced: the shared cursor then finds nothing new.
            notify.committed(&conn);
        }
    }
}
