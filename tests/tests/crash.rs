//! Durability: `kill -9` of `postern up` under load loses no message that
//! got a `250` to DATA, and duplicates none.
//!
//! Each cycle starts the binary on the same data dir, runs several SMTP
//! sessions that send messages back to back (MAIL/RCPT/DATA repeated, each
//! with a unique Message-ID), and kills the process while they are still
//! sending. With the process dead the test opens the store itself and checks
//! that every acknowledged Message-ID is in alice's INBOX or still in the
//! queue, exactly once. Messages in flight at the kill (no 250 seen) may or
//! may not be there.
//!
//! At the end the server runs once more and must deliver every acknowledged
//! message, exactly once. A recipient that a killed process had claimed is
//! leased for 30 s (so that no second process takes it meanwhile), so this
//! last phase may wait that long.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postern_tests::{add_alice, dot_stuff, message, Binary, PASSWORD};
use store::{RecipientState, Store, StoreError};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const CYCLES: usize = 3;
const SENDERS: usize = 8;
/// Messages one session sends at most per cycle (bounds the loop).
const MAX_PER_SESSION: usize = 5_000;
/// Load runs at least this long before the kill...
const MIN_LOAD: Duration = Duration::from_millis(1500);
/// ...and until this many messages are acknowledged in the cycle, for at
/// most `MAX_LOAD`.
const MIN_ACKED: usize = 20;
const MAX_LOAD: Duration = Duration::from_secs(10);
/// Time for one SMTP reply before a sender gives up.
const REPLY_LIMIT: Duration = Duration::from_secs(30);

/// What the senders saw: every Message-ID whose DATA they started, and
/// those that got `250`.
#[derive(Default)]
struct Ledger {
    attempted: HashSet<String>,
    acked: Vec<String>,
}

/// Reads one SMTP reply's code; `None` at EOF, on an error or a timeout.
async fn reply(stream: &mut BufReader<TcpStream>) -> Option<u16> {
    let read = async {
        loop {
            let mut line = String::new();
            if stream.read_line(&mut line).await.ok()? == 0 {
                return None;
            }
            let code: u16 = line.get(..3)?.parse().ok()?;
            if line.as_bytes().get(3) != Some(&b'-') {
                return Some(code);
            }
        }
    };
    tokio::time::timeout(REPLY_LIMIT, read).await.ok().flatten()
}

async fn command(stream: &mut BufReader<TcpStream>, bytes: &[u8]) -> Option<u16> {
    stream.get_mut().write_all(bytes).await.ok()?;
    reply(stream).await
}

/// One session sending messages until `stop` or until the connection dies.
async fn sender(
    addr: SocketAddr,
    cycle: usize,
    task: usize,
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
) {
    let Ok(tcp) = TcpStream::connect(addr).await else {
        return;
    };
    let mut stream = BufReader::new(tcp);
    if reply(&mut stream).await != Some(220) {
        return;
    }
    if command(&mut stream, b"EHLO load.example\r\n").await != Some(250) {
        return;
    }
    for n in 0..MAX_PER_SESSION {
        if stop.load(Ordering::Relaxed) {
            let _ = command(&mut stream, b"QUIT\r\n").await;
            return;
        }
        let subject = format!("crash-c{cycle}-t{task}-n{n}");
        let id = format!("{subject}@example.com");
        let body = format!(
            "Message {n} of session {task} in cycle {cycle}.\r\n{}",
            "0123456789abcdef".repeat(8 + n % 64)
        );
        if command(&mut stream, b"MAIL FROM:<bob@example.com>\r\n").await != Some(250) {
            return;
        }
        if command(&mut stream, b"RCPT TO:<alice@localhost>\r\n").await != Some(250) {
            return;
        }
        if command(&mut stream, b"DATA\r\n").await != Some(354) {
            return;
        }
        ledger.lock().expect("ledger").attempted.insert(id.clone());
        let mut data = dot_stuff(&message(&subject, &body));
        data.extend_from_slice(b".\r\n");
        match command(&mut stream, &data).await {
            Some(250) => ledger.lock().expect("ledger").acked.push(id),
            // A temporary failure is not an acknowledgement; go on.
            Some(code) if (400..500).contains(&code) => {}
            _ => return,
        }
    }
}

/// The Message-ID header of a raw message, without angle brackets.
fn header_message_id(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let header = text.split("\r\n\r\n").next()?;
    header.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("message-id").then(|| {
            value
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

/// What the store holds: Message-IDs in the INBOX (with repeats), and per
/// Message-ID in the queue, whether it is held by a lease (every open
/// recipient's next attempt more than a minute away).
struct Snapshot {
    inbox: Vec<String>,
    queued: Vec<(String, bool)>,
}

/// `server_running`: a server may be delivering while this reads.
async fn snapshot(store: &Store, server_running: bool) -> Snapshot {
    // The queue first: a message delivered between the two reads then shows
    // up twice (which `check` allows only while a server runs), never zero
    // times.
    let now = unix_now();
    let mut queued = Vec::new();
    for entry in store.queue().await.expect("read the queue") {
        let raw = match store.queued_message_raw(entry.id).await {
            Ok(raw) => raw,
            // Delivered since `queue()` read it: the INBOX, read next, has it.
            Err(StoreError::NotFound(_)) if server_running => continue,
            Err(e) => panic!("queued message {}: {e}", entry.id),
        };
        let id = header_message_id(&raw)
            .unwrap_or_else(|| panic!("queued message {} has no Message-ID", entry.id));
        let open: Vec<_> = entry
            .recipients
            .iter()
            .filter(|r| matches!(r.state, RecipientState::Pending | RecipientState::Deferred))
            .collect();
        let leased = !open.is_empty() && open.iter().all(|r| r.next_attempt_at > now + 60);
        queued.push((id, leased));
    }
    let account = store
        .account("alice@localhost")
        .await
        .expect("lookup")
        .expect("alice exists");
    let inbox = store
        .messages(account.id, "INBOX")
        .await
        .expect("list INBOX")
        .into_iter()
        .map(|m| {
            let id = m
                .summary
                .message_id
                .clone()
                .unwrap_or_else(|| panic!("UID {} has no Message-ID", m.uid));
            id.trim_start_matches('<').trim_end_matches('>').to_string()
        })
        .collect();
    Snapshot { inbox, queued }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// Checks a snapshot taken with no server running.
fn check(snapshot: &Snapshot, ledger: &Ledger, when: &str) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &snapshot.inbox {
        *counts.entry(id).or_default() += 1;
    }
    let duplicated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicated.is_empty(),
        "{when}: duplicates in the INBOX: {duplicated:?}"
    );
    let mut queued: HashSet<&str> = HashSet::new();
    for (id, _) in &snapshot.queued {
        assert!(queued.insert(id), "{when}: {id} is queued twice");
        assert!(
            !counts.contains_key(id.as_str()),
            "{when}: {id} is both delivered and still queued"
        );
    }
    let unknown: Vec<_> = counts
        .keys()
        .copied()
        .chain(queued.iter().copied())
        .filter(|id| !ledger.attempted.contains(*id))
        .collect();
    assert!(
        unknown.is_empty(),
        "{when}: messages nobody sent: {unknown:?}"
    );
    let lost: Vec<_> = ledger
        .acked
        .iter()
        .filter(|id| !counts.contains_key(id.as_str()) && !queued.contains(id.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{when}: {} of {} acknowledged messages lost: {lost:?}",
        lost.len(),
        ledger.acked.len()
    );
}

/// `kill -9` of the server under load; then the load's tasks are told to
/// stop and must notice the dead server and end.
async fn kill_9(
    mut binary: Binary,
    stop: &AtomicBool,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    cycle: usize,
) {
    let status =
        tokio::task::block_in_place(|| binary.signal_and_wait("KILL", Duration::from_secs(10)))
            .expect("postern up did not die of SIGKILL");
    assert!(
        !status.success(),
        "cycle {cycle}: killed process exited with {status}"
    );
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(40), task)
            .await
            .expect("a load task did not notice the kill")
            .expect("load task panicked");
    }
}

fn start(data: &Path, config: &[(&str, &str)]) -> Binary {
    tokio::task::block_in_place(|| Binary::start_up_env(data, "", &[], config))
}

/// Mail for a local account goes into the INBOX before its `250`
/// (the default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_message() {
    kill_9_under_load(&[]).await;
}

/// Every message goes through the queue: killed processes leave
/// claimed and queued mail behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_queued_message() {
    kill_9_under_load(&[("POSTERN_QUEUE_DIRECT_LOCAL_DELIVERY", "false")]).await;
}

/// The kill cycles and the last run, with `config` (`POSTERN_…`
/// variables) set for the binary.
async fn kill_9_under_load(config: &[(&str, &str)]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    add_alice(&data);

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    for cycle in 0..CYCLES {
        let binary = start(&data, config);
        let stop = Arc::new(AtomicBool::new(false));
        let acked_before = ledger.lock().expect("ledger").acked.len();
        let tasks: Vec<_> = (0..SENDERS)
            .map(|task| {
                tokio::spawn(sender(
                    binary.smtp,
                    cycle,
                    task,
                    stop.clone(),
                    ledger.clone(),
                ))
            })
            .collect();
        let started = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(25)).await;
            let acked = ledger.lock().expect("ledger").acked.len() - acked_before;
            let elapsed = started.elapsed();
            if (elapsed >= MIN_LOAD && acked >= MIN_ACKED) || elapsed >= MAX_LOAD {
                break;
            }
        }
        let acked = ledger.lock().expect("ledger").acked.len() - acked_before;
        assert!(
            acked >= MIN_ACKED,
            "cycle {cycle}: only {acked} messages acknowledged in {MAX_LOAD:?}"
        );
        let busy = tasks.iter().filter(|t| !t.is_finished()).count();
        assert!(
            busy > 0,
            "cycle {cycle}: every sender stopped before the kill"
        );

        kill_9(binary, &stop, tasks, cycle).await;

        let store = Store::open(&data).expect("open the store after kill -9");
        let snap = snapshot(&store, false).await;
        drop(store);
        let ledger = ledger.lock().expect("ledger");
        check(&snap, &ledger, &format!("after kill {}", cycle + 1));
        eprintln!(
            "cycle {cycle}: {acked} acknowledged ({} in all); store holds {} delivered, {} queued",
            ledger.acked.len(),
            snap.inbox.len(),
            snap.queued.len()
        );
    }

    // Once more, without a kill: everything due must be delivered, once.
    let mut binary = start(&data, config);
    let store = Store::open(&data).expect("open the store");
    let ledger = std::mem::take(&mut *ledger.lock().expect("ledger"));
    // The killed processes' leases (30 s) must run out first.
    let deadline = Instant::now() + Duration::from_secs(50);
    loop {
        let snap = snapshot(&store, true).await;
        let inbox: HashSet<&str> = snap.inbox.iter().map(String::as_str).collect();
        let waiting: Vec<&String> = ledger
            .acked
            .iter()
            .filter(|id| !inbox.contains(id.as_str()))
            .collect();
        if waiting.is_empty() {
            assert_eq!(
                inbox.len(),
                snap.inbox.len(),
                "duplicates in the INBOX after restart"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} acknowledged messages not delivered 50 s after restart: {:?}",
            waiting.len(),
            &waiting[..waiting.len().min(20)]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "{} acknowledged messages in all, each delivered once",
        ledger.acked.len()
    );
    let status =
        tokio::task::block_in_place(|| binary.signal_and_wait("TERM", Duration::from_secs(15)))
            .expect("postern up did not exit after SIGTERM");
    assert!(status.success(), "exit after SIGTERM: {status}");
    drop(store);
    // With no server running, one last consistent look.
    let store = Store::open(&data).expect("open the store");
    check(&snapshot(&store, false).await, &ledger, "at the end");
}

/// IMAP sessions that change flags, for [`kill_9_keeps_every_answered_flag_change`]:
/// session `n` owns message `n + 1` and sets its keywords to `$k<j>` for
/// j = 1, 2, ...; `acked[n]` is the last j answered `OK`, `sent[n]` the
/// last j sent.
async fn flag_changer(
    imap: SocketAddr,
    n: usize,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<u32>>>,
    sent: Arc<Mutex<Vec<u32>>>,
) {
    let Ok(stream) = TcpStream::connect(imap).await else {
        return;
    };
    let mut stream = BufReader::new(stream);
    // Sends a command and reads up to its tagged reply: whether it was OK,
    // `None` once the server is gone.
    async fn run(stream: &mut BufReader<TcpStream>, tag: &str, command: &str) -> Option<bool> {
        stream
            .get_mut()
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .await
            .ok()?;
        loop {
            let mut line = String::new();
            match tokio::time::timeout(REPLY_LIMIT, stream.read_line(&mut line)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            }
            if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
                return Some(rest.starts_with("OK"));
            }
        }
    }
    let mut greeting = String::new();
    if stream.read_line(&mut greeting).await.is_err() {
        return;
    }
    // A session that cannot log in or select shows as no STORE answered.
    if run(
        &mut stream,
        "l",
        &format!("LOGIN alice@localhost \"{PASSWORD}\""),
    )
    .await
        != Some(true)
        || run(&mut stream, "s", "SELECT INBOX").await != Some(true)
    {
        return;
    }
    for j in 1.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        sent.lock().expect("sent")[n] = j;
        let command = format!("UID STORE {} FLAGS.SILENT ($k{j})", n + 1);
        match run(&mut stream, &format!("t{j}"), &command).await {
            Some(true) => acked.lock().expect("acked")[n] = j,
            Some(false) => panic!("session {n}: STORE {j} refused"),
            None => return,
        }
    }
}

/// Flag changes are committed without waiting for the disk (only mail that
/// is accepted or created is fsynced): a `kill -9` right after the `OK`
/// must still not undo them, since the commit is in the kernel's hands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_keeps_every_answered_flag_change() {
    const SESSIONS: usize = 6;
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    add_alice(&data);
    {
        let store = Store::open(&data).expect("open the store");
        let alice = store.account("alice@localhost").await.unwrap().unwrap();
        for i in 0..SESSIONS {
            store
                .append(
                    alice.id,
                    "INBOX",
                    message(&format!("m{i}"), "flags"),
                    &[],
                    1_700_000_000,
                )
                .await
                .expect("append");
        }
    }

    for cycle in 0..2 {
        let binary = start(&data, &[]);
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(vec![0u32; SESSIONS]));
        let sent = Arc::new(Mutex::new(vec![0u32; SESSIONS]));
        let tasks: Vec<_> = (0..SESSIONS)
            .map(|n| {
                tokio::spawn(flag_changer(
                    binary.imap,
                    n,
                    stop.clone(),
                    acked.clone(),
                    sent.clone(),
                ))
            })
            .collect();
        let started = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(25)).await;
            let least = acked
                .lock()
                .expect("acked")
                .iter()
                .copied()
                .min()
                .unwrap_or(0);
            if (started.elapsed() >= MIN_LOAD && least >= 5) || started.elapsed() >= MAX_LOAD {
                break;
            }
        }
        kill_9(binary, &stop, tasks, cycle).await;

        let store = Store::open(&data).expect("open the store after kill -9");
        let alice = store.account("alice@localhost").await.unwrap().unwrap();
        let index = store.mailbox_index(alice.id, "INBOX").await.expect("index");
        let (acked, sent) = (acked.lock().unwrap().clone(), sent.lock().unwrap().clone());
        assert!(
            acked.iter().all(|j| *j > 0),
            "cycle {cycle}: a session had no STORE answered: {acked:?}"
        );
        for n in 0..SESSIONS {
            let entry = index
                .messages
                .iter()
                .find(|m| m.uid.0 == n as u32 + 1)
                .expect("message is there");
            let j: u32 = entry
                .flags
                .iter()
                .find_map(|f| f.strip_prefix("$k"))
                .and_then(|j| j.parse().ok())
                .unwrap_or_else(|| panic!("message {}: no $k flag: {:?}", n + 1, entry.flags));
            assert!(
                j >= acked[n] && j <= sent[n],
                "cycle {cycle}, message {}: $k{j} on disk, but $k{} was answered OK (last sent $k{})",
                n + 1,
                acked[n],
                sent[n]
            );
        }
        eprintln!("cycle {cycle}: answered STOREs per session {acked:?}; all on disk");
    }
}
