//! Several `postern up` nodes on one PostgreSQL database, under failure:
//! the failed-login throttle counts across nodes; a node killed with
//! `kill -9` under load loses and duplicates nothing it acknowledged (the
//! other node finishes its queue once the dead node's claims' lease runs
//! out); and a database restarted under load is answered with temporary
//! failures while it is down, then served again by the same nodes with
//! nothing acknowledged lost.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postern_tests::fake_smtp::{Behaviour, FakeSmtp, Step};
use postern_tests::pg_cluster::PgCluster;
use postern_tests::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn store_section(url: &str) -> String {
    format!("[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n")
}

fn node(dir: &Path, extra: &str) -> Binary {
    std::fs::create_dir_all(dir).unwrap();
    tokio::task::block_in_place(|| Binary::start_with(dir, extra))
}

fn add_user(dir: &Path, user: &str) {
    let out = tokio::task::block_in_place(|| {
        postern_cli(
            dir,
            &[
                "--config",
                dir.with_extension("toml").to_str().unwrap(),
                "user",
                "add",
                user,
                "--password-stdin",
            ],
            &format!("{PASSWORD}\n"),
        )
    });
    assert!(out.status.success(), "{out:?}");
}

/// A line-based client for IMAP and POP3 that never panics on a lost
/// connection: `None` instead.
struct Lines {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Lines {
    async fn connect(addr: SocketAddr) -> Option<(Lines, String)> {
        let (read, writer) = TcpStream::connect(addr).await.ok()?.into_split();
        let mut lines = Lines {
            reader: BufReader::new(read),
            writer,
        };
        let greeting = lines.line().await?;
        Some((lines, greeting))
    }

    async fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        match tokio::time::timeout(Duration::from_secs(20), self.reader.read_line(&mut line)).await
        {
            Ok(Ok(n)) if n > 0 => Some(line),
            _ => None,
        }
    }

    async fn send(&mut self, line: &str) -> Option<()> {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .ok()
    }

    /// An IMAP command: every line up to and with its tagged answer.
    async fn command(&mut self, line: &str) -> Option<Vec<String>> {
        let tag = line.split(' ').next().unwrap().to_owned();
        self.send(line).await?;
        let mut lines = Vec::new();
        loop {
            let l = self.line().await?;
            let done = l.starts_with(&format!("{tag} "));
            lines.push(l);
            if done {
                return Some(lines);
            }
        }
    }
}

/// One message over a connection of its own: the final reply's code (of
/// the first command that was not accepted), `None` if the connection was
/// lost before an answer.
async fn try_send(addr: SocketAddr, to: &str, id: &str) -> Option<u16> {
    let (read, mut writer) = TcpStream::connect(addr).await.ok()?.into_split();
    let mut reader = BufReader::new(read);
    async fn reply(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<u16> {
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(60), reader.read_line(&mut line))
                .await
                .ok()?
                .ok()?;
            if n == 0 || line.len() < 4 {
                return None;
            }
            if line.as_bytes()[3] != b'-' {
                return line[..3].parse().ok();
            }
        }
    }
    let expect = |code: Option<u16>, want: u16| match code {
        Some(c) if c == want => Ok(()),
        other => Err(other),
    };
    let step = async {
        expect(reply(&mut reader).await, 220)?;
        let commands = [
            ("EHLO client.test".to_string(), 250),
            ("MAIL FROM:<app@client.test>".to_string(), 250),
            (format!("RCPT TO:<{to}>"), 250),
            ("DATA".to_string(), 354),
        ];
        for (command, want) in commands {
            writer
                .write_all(format!("{command}\r\n").as_bytes())
                .await
                .map_err(|_| None)?;
            expect(reply(&mut reader).await, want)?;
        }
        let message = format!("Subject: load\r\nMessage-ID: <{id}>\r\n\r\nmessage {id}\r\n.\r\n");
        writer
            .write_all(message.as_bytes())
            .await
            .map_err(|_| None)?;
        let code = reply(&mut reader).await;
        let _ = writer.write_all(b"QUIT\r\n").await;
        Err(code)
    };
    match step.await {
        Ok(()) => None,
        Err(code) => code,
    }
}

/// The Message-IDs in alice's INBOX, each with how often it is there;
/// read through `imap`.
async fn inbox_ids(imap: SocketAddr) -> BTreeMap<String, usize> {
    let (mut c, _) = Lines::connect(imap).await.expect("IMAP");
    let ok = c
        .command(&format!("a LOGIN alice@localhost \"{PASSWORD}\""))
        .await
        .expect("LOGIN");
    assert!(ok.last().unwrap().starts_with("a OK"), "{ok:?}");
    c.command("b SELECT INBOX").await.expect("SELECT");
    let lines = c
        .command("c FETCH 1:* BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]")
        .await
        .expect("FETCH");
    count_ids(lines.iter().map(String::as_str))
}

fn count_ids<'a>(texts: impl Iterator<Item = &'a str>) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for text in texts {
        let mut rest = text;
        while let Some(start) = rest.find("Message-ID: <") {
            let after = &rest[start + 13..];
            let end = after.find('>').expect("a whole Message-ID");
            *ids.entry(after[..end].to_string()).or_insert(0) += 1;
            rest = &after[end..];
        }
    }
    ids
}

/// The store on the same database, from the test (for the queue).
fn open_store(url: &str, dir: &Path) -> store::Store {
    let options = store::StoreOptions {
        postgres_url: Some(url.to_owned()),
        ..store::StoreOptions::default()
    };
    store::Store::open_with(dir, options).expect("open the store")
}

async fn wait_for<F, Fut>(what: &str, limit: Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_logins_on_one_node_delay_the_same_address_on_the_other() {
    let url = Postgres::get().new_database();
    let dir = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    let extra = format!(
        "{}[auth]\nfailures_before_delay = 3\ndelay_step_secs = 3\nmax_delay_secs = 3\n",
        store_section(&url)
    );
    let a = node(&a_dir, &extra);
    let b = node(&b_dir, &extra);
    add_user(&a_dir, "alice@localhost");

    let login = |addr: SocketAddr, password: &'static str| async move {
        let (mut c, _) = Lines::connect(addr).await.expect("IMAP");
        let started = Instant::now();
        let answer = c
            .command(&format!("a LOGIN alice@localhost \"{password}\""))
            .await
            .expect("an answer");
        (answer.last().unwrap().clone(), started.elapsed())
    };
    // Before any failure, B answers at once.
    let (answer, took) = login(b.imap, PASSWORD).await;
    assert!(answer.starts_with("a OK"), "{answer}");
    assert!(took < Duration::from_secs(2), "{took:?}");

    // Three failures on A, from two sessions at once.
    let (one, two) = tokio::join!(login(a.imap, "wrong"), login(a.imap, "wrong"));
    assert!(one.0.starts_with("a NO"), "{one:?}");
    assert!(two.0.starts_with("a NO"), "{two:?}");
    let (three, _) = login(a.imap, "wrong").await;
    assert!(three.starts_with("a NO"), "{three}");

    // B, which saw none of them, delays the same address: even the right
    // password waits.
    let (answer, took) = login(b.imap, PASSWORD).await;
    assert!(answer.starts_with("a OK"), "{answer}");
    assert!(
        took >= Duration::from_millis(2900),
        "not delayed on B: {took:?}"
    );

    // That success forgot the address on every node: A answers at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (answer, took) = login(a.imap, PASSWORD).await;
    assert!(answer.starts_with("a OK"), "{answer}");
    assert!(
        took < Duration::from_secs(2),
        "still delayed on A: {took:?}"
    );

    // POP3 on B counts into the same table (a failure there delays IMAP
    // on A once past the threshold).
    for _ in 0..3 {
        let (mut p, _) = Lines::connect(b.pop3).await.expect("POP3");
        p.send("USER alice@localhost").await.unwrap();
        p.line().await.unwrap();
        p.send("PASS wrong").await.unwrap();
        let answer = p.line().await.unwrap();
        assert!(answer.starts_with("-ERR"), "{answer}");
    }
    let (answer, took) = login(a.imap, PASSWORD).await;
    assert!(answer.starts_with("a OK"), "{answer}");
    assert!(
        took >= Duration::from_millis(2900),
        "POP3 failures on B not seen on A: {took:?}"
    );
}

/// What the load's clients were told, by Message-ID.
#[derive(Default)]
struct Acks {
    /// Acknowledged with 250: must arrive exactly once.
    accepted: Vec<(String, bool)>,
    /// Final replies other than 250, by code (0: connection lost).
    refused: BTreeMap<u16, usize>,
}

/// `clients` clients, each sending `per_client` messages in turn to the
/// nodes `targets` gives, alternating a local recipient and a relayed
/// one; a 250 is recorded as acknowledged.
fn load(
    acks: &Arc<Mutex<Acks>>,
    clients: usize,
    per_client: usize,
    prefix: &str,
    targets: Arc<dyn Fn(usize, usize) -> SocketAddr + Send + Sync>,
    pause: Duration,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..clients)
        .map(|c| {
            let acks = acks.clone();
            let targets = targets.clone();
            let prefix = prefix.to_owned();
            tokio::spawn(async move {
                for i in 0..per_client {
                    let relayed = (c + i) % 2 == 1;
                    let to = if relayed {
                        "bob@example.org"
                    } else {
                        "alice@localhost"
                    };
                    let id = format!("{prefix}-{c}-{i}@client.test");
                    let code = try_send(targets(c, i), to, &id).await;
                    {
                        let mut acks = acks.lock().unwrap();
                        match code {
                            Some(250) => acks.accepted.push((id, relayed)),
                            other => *acks.refused.entry(other.unwrap_or(0)).or_insert(0) += 1,
                        }
                    }
                    tokio::time::sleep(pause).await;
                }
            })
        })
        .collect()
}

/// Waits until every acknowledged message is where it belongs (local:
/// alice's INBOX, read on `imap`; relayed: the sink) and the queue is
/// empty, then counts losses and duplicates.
async fn check_exactly_once(
    acks: &Acks,
    imap: SocketAddr,
    sink: &FakeSmtp,
    store: &store::Store,
    limit: Duration,
) {
    let delivered = || {
        count_ids(
            sink.transactions()
                .iter()
                .filter(|t| t.reply.starts_with("250"))
                .map(|t| std::str::from_utf8(&t.message).unwrap_or("")),
        )
    };
    let deadline = Instant::now() + limit;
    loop {
        let inbox = inbox_ids(imap).await;
        let relayed = delivered();
        let queue_empty = store.queue().await.map(|q| q.is_empty()).unwrap_or(false);
        let all_there = acks.accepted.iter().all(|(id, relayed_one)| {
            if *relayed_one {
                relayed.contains_key(id)
            } else {
                inbox.contains_key(id)
            }
        });
        if (all_there && queue_empty) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A duplicate would come late: give it the time of a retry.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let inbox = inbox_ids(imap).await;
    let relayed = delivered();
    let mut lost = Vec::new();
    let mut duplicated = Vec::new();
    for (id, relayed_one) in &acks.accepted {
        let seen = if *relayed_one {
            relayed.get(id)
        } else {
            inbox.get(id)
        };
        match seen.copied().unwrap_or(0) {
            0 => lost.push(id.clone()),
            1 => {}
            _ => duplicated.push(id.clone()),
        }
    }
    // Nothing turns up twice, acknowledged or not.
    duplicated.extend(
        inbox
            .iter()
            .filter(|(_, &n)| n > 1)
            .map(|(id, _)| id.clone()),
    );
    duplicated.extend(
        relayed
            .iter()
            .filter(|(_, &n)| n > 1)
            .map(|(id, _)| id.clone()),
    );
    duplicated.sort();
    duplicated.dedup();
    eprintln!(
        "acknowledged {} (refused {:?}); lost {lost:?}; duplicated {duplicated:?}",
        acks.accepted.len(),
        acks.refused
    );
    assert_eq!(
        (lost.len(), duplicated.len()),
        (0, 0),
        "lost {lost:?}, duplicated {duplicated:?}"
    );
    assert!(
        store.queue().await.unwrap().is_empty(),
        "the queue did not empty"
    );
}

/// One value from a query, by `psql`.
fn psql(url: &str, sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .args(["-X", "-A", "-t", "-d", url, "-c", sql])
        .output()
        .expect("run psql");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The claim owner ids of the node with this data dir (its lock files).
fn claim_owners(data_dir: &Path) -> Vec<String> {
    std::fs::read_dir(data_dir.join("claims"))
        .map(|dir| {
            dir.filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".lock").map(str::to_owned)
            })
            .collect()
        })
        .unwrap_or_default()
}

fn relay_section(sink: SocketAddr) -> String {
    format!(
        r#"[relay]
trusted_networks = ["127.0.0.1/32"]
connect_timeout_secs = 1
command_timeout_secs = 2
data_timeout_secs = 2
[relay.transport."example.org"]
host = "{sink}"
tls = "none"
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_killed_under_load_loses_and_duplicates_nothing_acknowledged() {
    // A slow peer: each delivery holds its claim for a second at MAIL,
    // so the kill finds claims held.
    let sink = FakeSmtp::start(Behaviour {
        slow_at: Some((Step::Mail, Duration::from_millis(1000))),
        ..Behaviour::default()
    })
    .await;
    let url = Postgres::get().new_database();
    let dir = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    let extra = format!("{}{}", store_section(&url), relay_section(sink.addr()));
    let mut a = node(&a_dir, &extra);
    let b = node(&b_dir, &extra);
    add_user(&a_dir, "alice@localhost");

    let acks = Arc::new(Mutex::new(Acks::default()));
    let (a_smtp, b_smtp) = (a.smtp, b.smtp);
    // Half the clients on each node.
    let clients = load(
        &acks,
        6,
        12,
        "kill",
        Arc::new(move |c, _| if c % 2 == 0 { a_smtp } else { b_smtp }),
        Duration::from_millis(100),
    );
    // Kill A once it has accepted some and holds claims on relayed mail
    // (its deliveries wait on the slow peer).
    let held_by_a = || {
        let owners = claim_owners(&a_dir);
        let held = owners.iter().map(|id| {
            psql(
                &url,
                &format!(
                    "SELECT count(*) FROM queue_recipients WHERE leased_by = '{id}' \
                     AND state IN ('pending', 'deferred') \
                     AND leased_until > extract(epoch FROM now())"
                ),
            )
            .parse::<u64>()
            .unwrap_or(0)
        });
        held.sum::<u64>()
    };
    wait_for("A holding claims", Duration::from_secs(30), || {
        let enough = acks.lock().unwrap().accepted.len() >= 12;
        let held = enough && tokio::task::block_in_place(held_by_a) > 0;
        async move { held }
    })
    .await;
    tokio::task::block_in_place(|| a.signal_and_wait("KILL", Duration::from_secs(10)))
        .expect("A ended");
    let held = tokio::task::block_in_place(held_by_a);
    eprintln!("A held {held} claims when killed");
    assert!(held > 0, "A held no claims when killed");
    for client in clients {
        client.await.unwrap();
    }
    let acks = std::mem::take(&mut *acks.lock().unwrap());
    assert!(
        acks.accepted.len() >= 20,
        "too few acknowledged: {}",
        acks.accepted.len()
    );

    let store_dir = dir.path().join("observer");
    let store = tokio::task::block_in_place(|| open_store(&url, &store_dir));
    // A's claims free when their lease (30 s at most) runs out; B then
    // delivers what A held.
    check_exactly_once(&acks, b.imap, &sink, &store, Duration::from_secs(90)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_restarted_under_load_is_served_again() {
    let sink = FakeSmtp::start(Behaviour::default()).await;
    let cluster = tokio::task::block_in_place(PgCluster::start);
    let url = cluster.url();
    let dir = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    let extra = format!("{}{}", store_section(&url), relay_section(sink.addr()));
    let a = node(&a_dir, &extra);
    let b = node(&b_dir, &extra);
    add_user(&a_dir, "alice@localhost");

    let acks = Arc::new(Mutex::new(Acks::default()));
    let (a_smtp, b_smtp) = (a.smtp, b.smtp);
    let clients = load(
        &acks,
        4,
        40,
        "restart",
        Arc::new(move |c, i| if (c + i) % 2 == 0 { a_smtp } else { b_smtp }),
        Duration::from_millis(100),
    );
    wait_for("some mail accepted", Duration::from_secs(30), || {
        let acks = acks.clone();
        async move { acks.lock().unwrap().accepted.len() >= 10 }
    })
    .await;

    // A session that stays logged in across the restart.
    let (mut kept, _) = Lines::connect(b.imap).await.expect("IMAP");
    let answer = kept
        .command(&format!("k1 LOGIN alice@localhost \"{PASSWORD}\""))
        .await
        .unwrap();
    assert!(answer.last().unwrap().starts_with("k1 OK"), "{answer:?}");
    let answer = kept.command("k2 SELECT INBOX").await.unwrap();
    assert!(answer.last().unwrap().starts_with("k2 OK"), "{answer:?}");

    // Down: every protocol says "try again later".
    tokio::task::block_in_place(|| cluster.down());
    let answer = kept
        .command("k3 STATUS INBOX (MESSAGES)")
        .await
        .expect("an answer");
    assert!(
        answer.last().unwrap().starts_with("k3 NO [UNAVAILABLE]"),
        "IMAP STATUS while down: {answer:?}"
    );
    let code = try_send(a.smtp, "alice@localhost", "while-down@client.test").await;
    assert_eq!(code, Some(451), "SMTP while the database is down");
    let (mut imap, _) = Lines::connect(b.imap).await.expect("IMAP");
    let answer = imap
        .command(&format!("a LOGIN alice@localhost \"{PASSWORD}\""))
        .await
        .expect("an IMAP answer");
    let last = answer.last().unwrap();
    assert!(last.starts_with("a NO [UNAVAILABLE]"), "IMAP: {answer:?}");
    let (mut pop, _) = Lines::connect(a.pop3).await.expect("POP3");
    pop.send("USER alice@localhost").await.unwrap();
    pop.line().await.unwrap();
    pop.send(&format!("PASS {PASSWORD}")).await.unwrap();
    let answer = pop.line().await.expect("a POP3 answer");
    assert!(answer.starts_with("-ERR [SYS/TEMP]"), "POP3: {answer}");
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Back: the same nodes serve again by themselves.
    tokio::task::block_in_place(|| cluster.up());
    for client in clients {
        client.await.unwrap();
    }
    let after: Vec<SocketAddr> = vec![a.smtp, b.smtp];
    for (n, addr) in after.iter().enumerate() {
        let mut code = None;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            code = try_send(*addr, "alice@localhost", &format!("after-{n}@client.test")).await;
            if code == Some(250) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert_eq!(code, Some(250), "node {n} does not accept mail again");
        acks.lock()
            .unwrap()
            .accepted
            .push((format!("after-{n}@client.test"), false));
    }
    let acks = std::mem::take(&mut *acks.lock().unwrap());
    assert!(
        acks.refused
            .keys()
            .all(|&code| code == 451 || code == 0 || code == 421),
        "only temporary failures: {:?}",
        acks.refused
    );
    let store_dir: PathBuf = dir.path().join("observer");
    let store = tokio::task::block_in_place(|| open_store(&url, &store_dir));
    check_exactly_once(&acks, a.imap, &sink, &store, Duration::from_secs(60)).await;
    // The session kept across the restart reads again, and POP3 and
    // IMAP log in again.
    let answer = kept.command("k4 FETCH 1 (FLAGS)").await.expect("an answer");
    assert!(answer.last().unwrap().starts_with("k4 OK"), "{answer:?}");
    let (mut pop, _) = Lines::connect(a.pop3).await.expect("POP3");
    pop.send("USER alice@localhost").await.unwrap();
    pop.line().await.unwrap();
    pop.send(&format!("PASS {PASSWORD}")).await.unwrap();
    let answer = pop.line().await.expect("a POP3 answer");
    assert!(
        answer.starts_with("+OK"),
        "POP3 after the restart: {answer}"
    );
    // IMAP on B logs in again.
    let (mut imap, _) = Lines::connect(b.imap).await.expect("IMAP");
    let answer = imap
        .command(&format!("a LOGIN alice@localhost \"{PASSWORD}\""))
        .await
        .expect("an IMAP answer");
    assert!(answer.last().unwrap().starts_with("a OK"), "{answer:?}");
}
