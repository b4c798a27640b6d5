//! `postern store copy [--to URL]`: a SQLite store filled by a real
//! `postern up` (SMTP deliveries, IMAP APPEND, flags, expunge, a second
//! mailbox, metadata, a URLAUTH key, an alias, a second account, a message
//! for a remote recipient that stays deferred) is copied into an empty
//! PostgreSQL database, and `postern up` on the copy shows IMAP clients
//! the same mailboxes: UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, every UID's
//! flags and modseq, a QRESYNC resync's answer, subscriptions, metadata;
//! new mail takes the next UID and a queue id never given before; the
//! queue is as it was. Copying into a database that is not empty, or one
//! that cannot be reached, fails clearly.

use std::path::Path;
use std::time::{Duration, Instant};

use postern_tests::fake_smtp::{Behaviour, FakeSmtp};
use postern_tests::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A plain IMAP client: each response with its literals inline.
struct Imap {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Imap {
    async fn login(addr: std::net::SocketAddr, user: &str) -> Imap {
        let (read, writer) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut imap = Imap {
            reader: BufReader::new(read),
            writer,
        };
        imap.response().await;
        imap.ok(&format!("l LOGIN {user} \"{PASSWORD}\"")).await;
        imap
    }

    /// One response: a line, with each literal it announces and the rest
    /// of the line after it.
    async fn response(&mut self) -> String {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            tokio::time::timeout(Duration::from_secs(10), self.reader.read_line(&mut line))
                .await
                .expect("an answer within 10 s")
                .unwrap();
            assert!(!line.is_empty(), "connection closed after {text:?}");
            text.push_str(&line);
            let Some(size) = line
                .strip_suffix("}\r\n")
                .and_then(|l| l.rsplit_once('{'))
                .and_then(|(_, n)| n.trim_end_matches('+').parse::<usize>().ok())
            else {
                return text;
            };
            let mut bytes = vec![0; size];
            self.reader.read_exact(&mut bytes).await.unwrap();
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
    }

    /// Sends a tagged command; its untagged responses and the tagged one.
    async fn command(&mut self, line: &str) -> (Vec<String>, String) {
        let tag = line.split(' ').next().unwrap().to_owned();
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
        let mut untagged = Vec::new();
        loop {
            let r = self.response().await;
            if r.starts_with(&format!("{tag} ")) {
                return (untagged, r);
            }
            untagged.push(r);
        }
    }

    async fn ok(&mut self, line: &str) -> Vec<String> {
        let (untagged, done) = self.command(line).await;
        assert!(done.contains(" OK"), "{line}: {untagged:?} {done}");
        untagged
    }
}

/// What an IMAP client sees of alice's mail.
async fn view(imap_addr: std::net::SocketAddr, uidvalidity: &str) -> Vec<String> {
    let mut c = Imap::login(imap_addr, "alice@localhost").await;
    let mut seen = Vec::new();
    seen.extend(c.ok("a ENABLE QRESYNC").await);
    seen.extend(
        c.ok("b LIST \"\" \"*\" RETURN (SUBSCRIBED SPECIAL-USE STATUS (MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ))")
            .await,
    );
    seen.extend(c.ok("c SELECT INBOX").await);
    seen.extend(
        c.ok("d UID FETCH 1:* (FLAGS MODSEQ INTERNALDATE SAVEDATE RFC822.SIZE EMAILID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            .await,
    );
    seen.extend(c.ok("e UNSELECT").await);
    // A client that last saw modseq 1 resyncs: what was expunged
    // (VANISHED) and what changed.
    seen.extend(
        c.ok(&format!("f SELECT INBOX (QRESYNC ({uidvalidity} 1))"))
            .await,
    );
    seen.extend(c.ok("g EXAMINE Projects").await);
    seen.extend(c.ok("h UID FETCH 1:* (FLAGS MODSEQ)").await);
    seen.extend(c.ok("i GETMETADATA \"\" /shared/comment").await);
    seen.extend(c.ok("j GETMETADATA INBOX /private/comment").await);
    seen.extend(c.ok("k GETQUOTAROOT INBOX").await);
    seen
}

/// INBOX's UIDVALIDITY from `* OK [UIDVALIDITY n]` of a SELECT.
async fn inbox_uidvalidity(imap_addr: std::net::SocketAddr) -> String {
    let mut c = Imap::login(imap_addr, "alice@localhost").await;
    let lines = c.ok("s EXAMINE INBOX").await;
    lines
        .iter()
        .find_map(|l| {
            l.strip_prefix("* OK [UIDVALIDITY ")
                .and_then(|r| r.split(']').next())
        })
        .unwrap_or_else(|| panic!("{lines:?}"))
        .to_owned()
}

/// The HTTP API's admin token on both nodes.
const TOKEN: &str = "copy-test-token";

/// The HTTP API's list of SMTP sessions.
async fn smtp_sessions(http: std::net::SocketAddr) -> Vec<serde_json::Value> {
    let text = reqwest::Client::new()
        .get(format!("http://{http}/api/v1/sessions?limit=100"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let list: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{text}"));
    list["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("{text}"))
        .clone()
}

/// `queued as N` of an SMTP reply.
fn queue_id(reply: &SmtpReply) -> u64 {
    let text = reply.text();
    text.rsplit("queued as ")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no queue id in {text}"))
}

fn cli(data_dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> std::process::Output {
    tokio::task::block_in_place(|| {
        postern_command()
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .envs(vars.iter().copied())
            .output()
            .unwrap()
    })
}

fn ok_cli(data_dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> String {
    let out = cli(data_dir, args, vars);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn add_user(data_dir: &Path, address: &str) {
    let out = tokio::task::block_in_place(|| {
        postern_cli(
            data_dir,
            &["user", "add", address, "--password-stdin"],
            &format!("{PASSWORD}\n"),
        )
    });
    assert!(out.status.success(), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copied_store_looks_the_same_to_imap_clients() {
    let fake = FakeSmtp::start(
        Behaviour::default().reject_recipient("bob@example.org", "451 4.3.0 not now"),
    )
    .await;
    let root = tempfile::tempdir().unwrap();
    let sqlite_dir = root.path().join("sqlite");
    let relay = format!(
        "[relay]\ntrusted_networks = [\"127.0.0.1/32\"]\nconnect_timeout_secs = 2\n\
         command_timeout_secs = 2\ndata_timeout_secs = 3\n\
         [relay.transport.\"example.org\"]\nhost = \"{}\"\ntls = \"none\"\n",
        fake.addr()
    );
    std::fs::create_dir_all(&sqlite_dir).unwrap();
    add_user(&sqlite_dir, "alice@localhost");
    add_user(&sqlite_dir, "carol@localhost");
    ok_cli(
        &sqlite_dir,
        &["alias", "add", "al@localhost", "alice@localhost"],
        &[],
    );
    ok_cli(
        &sqlite_dir,
        &["user", "quota", "alice@localhost", "--storage", "10M"],
        &[],
    );
    let mut old = tokio::task::block_in_place(|| {
        Binary::start_up_env(&sqlite_dir, &relay, &[], &[("POSTERN_HTTP_TOKEN", TOKEN)])
    });

    // Mail: three for alice (one through the alias), one for carol, one
    // for a remote recipient whose server defers it.
    let mut queue_ids = Vec::new();
    let (mut smtp, _) = SmtpClient::connect(old.smtp).await;
    assert_eq!(smtp.cmd("EHLO app.test").await.code, 250);
    for (i, to) in [
        "alice@localhost",
        "al@localhost",
        "alice@localhost",
        "carol@localhost",
    ]
    .iter()
    .enumerate()
    {
        let r = smtp
            .send_mail(
                "app@app.test",
                &[to],
                &message(&format!("local {i}"), &format!("body {i}")),
            )
            .await;
        assert_eq!(r.code, 250, "{r:?}");
        queue_ids.push(queue_id(&r));
    }
    let r = smtp
        .send_mail(
            "app@app.test",
            &["bob@example.org"],
            &message("remote", "for bob"),
        )
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    queue_ids.push(queue_id(&r));
    assert_eq!(smtp.cmd("QUIT").await.code, 221);
    drop(smtp);

    // IMAP: flags, a keyword, an APPEND, a second mailbox with a copy, an
    // expunge, metadata, a URLAUTH key.
    let uidvalidity = inbox_uidvalidity(old.imap).await;
    let mut c = Imap::login(old.imap, "alice@localhost").await;
    c.ok("a ENABLE QRESYNC").await;
    c.ok("b SELECT INBOX").await;
    c.ok("c UID STORE 1 +FLAGS (\\Seen \\Flagged)").await;
    c.ok("d UID STORE 3 +FLAGS ($Important)").await;
    c.ok("e CREATE Projects").await;
    c.ok("f UID COPY 1:3 Projects").await;
    c.ok("g UID STORE 2 +FLAGS (\\Deleted)").await;
    c.ok("h EXPUNGE").await;
    let appended = "Subject: appended\r\n\r\ndraft\r\n";
    c.ok(&format!(
        "i APPEND INBOX (\\Draft) \"01-Feb-2024 10:00:00 +0000\" {{{}+}}\r\n{appended}",
        appended.len()
    ))
    .await;
    c.ok("j SETMETADATA \"\" (/shared/comment \"moved to PostgreSQL\")")
        .await;
    c.ok("k SETMETADATA INBOX (/private/comment \"inbox note\")")
        .await;
    let r = c
        .ok(&format!(
            "l GENURLAUTH \"imap://alice%40localhost@localhost/INBOX;UIDVALIDITY={uidvalidity}/;UID=1;URLAUTH=authuser\" INTERNAL"
        ))
        .await;
    let auth_url = r[0]
        .trim_end()
        .strip_prefix("* GENURLAUTH \"")
        .and_then(|u| u.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{r:?}"))
        .to_owned();
    c.ok("m UNSUBSCRIBE Trash").await;
    // Every recipient of the remote message tried and deferred.
    let deadline = Instant::now() + Duration::from_secs(20);
    let queue = loop {
        let list = ok_cli(&sqlite_dir, &["queue", "list", "--json"], &[]);
        if list.contains("\"deferred\"") {
            break list;
        }
        assert!(Instant::now() < deadline, "not deferred: {list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // A session that saw every message, so none is \Recent later.
    let mut seer = Imap::login(old.imap, "alice@localhost").await;
    seer.ok("a SELECT INBOX").await;
    seer.ok("b SELECT Projects").await;
    drop(seer);
    let before = view(old.imap, &uidvalidity).await;
    let users = ok_cli(&sqlite_dir, &["user", "list", "--json"], &[]);
    // What the view holds, so that comparing it means something.
    for expected in [
        "* VANISHED (EARLIER) 2\r\n",
        "* OK [HIGHESTMODSEQ 9] Highest mailbox modseq\r\n",
        "* 0 RECENT\r\n",
        "* LIST (\\HasNoChildren \\Trash) \"/\" Trash\r\n",
        "* METADATA \"\" (/shared/comment \"moved to PostgreSQL\")\r\n",
        "* METADATA INBOX (/private/comment \"inbox note\")\r\n",
    ] {
        assert!(
            before.iter().any(|l| l == expected),
            "{expected} {before:?}"
        );
    }
    assert!(
        before
            .iter()
            .any(|l| l.contains("UID 3 FLAGS ($Important) MODSEQ (6)")),
        "{before:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let sessions_before = loop {
        let sessions = smtp_sessions(old.http).await;
        if !sessions.is_empty() && sessions.iter().all(|s| !s["ended_at"].is_null()) {
            break sessions;
        }
        assert!(Instant::now() < deadline, "{sessions:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    drop(c);
    // While the server runs on it, the store is not copied.
    let url = Postgres::get().new_database();
    let busy = cli(&sqlite_dir, &["store", "copy", "--to", &url], &[]);
    assert!(!busy.status.success());
    let stderr = String::from_utf8_lossy(&busy.stderr);
    assert!(
        stderr.contains("in use") && stderr.contains("stop it first"),
        "{stderr}"
    );
    tokio::task::block_in_place(|| old.signal_and_wait("TERM", Duration::from_secs(20)))
        .expect("postern up stops");
    // The queue as it was when the node stopped (an attempt may have
    // ended in between).
    let queue_at_stop = ok_cli(&sqlite_dir, &["queue", "list", "--json"], &[]);
    assert!(queue_at_stop.contains("\"deferred\""), "{queue_at_stop}");
    drop(queue);

    // The copy.
    let out = ok_cli(&sqlite_dir, &["store", "copy", "--to", &url], &[]);
    assert!(out.contains("messages"), "{out}");
    assert!(out.contains("committed"), "{out}");
    let messages_line = out
        .lines()
        .find(|l| l.trim_start().starts_with("messages "))
        .unwrap_or_else(|| panic!("{out}"));
    // Three in INBOX (one expunged, one appended), three in Projects, one
    // for carol.
    assert_eq!(messages_line.split_whitespace().nth(1), Some("7"), "{out}");

    // A second copy into the same database is refused, and changes
    // nothing.
    let again = cli(&sqlite_dir, &["store", "copy", "--to", &url], &[]);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("not empty"), "{stderr}");

    // The copy as the store of a new node.
    let pg_dir = root.path().join("pg");
    std::fs::create_dir_all(&pg_dir).unwrap();
    let pg_vars = [
        ("POSTERN_STORE_BACKEND", "postgres"),
        ("POSTERN_STORE_URL", url.as_str()),
    ];
    assert_eq!(
        ok_cli(&pg_dir, &["queue", "list", "--json"], &pg_vars),
        queue_at_stop
    );
    assert_eq!(
        ok_cli(&pg_dir, &["user", "list", "--json"], &pg_vars),
        users
    );
    let store_section = format!("[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n");
    let new = tokio::task::block_in_place(|| {
        Binary::start_up_env(
            &pg_dir,
            &format!("{store_section}{relay}"),
            &[],
            &[("POSTERN_HTTP_TOKEN", TOKEN)],
        )
    });
    assert_eq!(inbox_uidvalidity(new.imap).await, uidvalidity);
    let after = view(new.imap, &uidvalidity).await;
    assert_eq!(after, before);

    // The URLAUTH key came along: the URL made before still works.
    let mut c = Imap::login(new.imap, "alice@localhost").await;
    let r = c.ok(&format!("u URLFETCH \"{auth_url}\"")).await;
    assert!(r[0].contains("local 0"), "{r:?}");

    // New mail: the next UID, and a queue id never given before.
    let (mut smtp, _) = SmtpClient::connect(new.smtp).await;
    assert_eq!(smtp.cmd("EHLO app.test").await.code, 250);
    let r = smtp
        .send_mail(
            "app@app.test",
            &["alice@localhost"],
            &message("after", "new"),
        )
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    let id = queue_id(&r);
    // SMTP sessions: the old ones as they were, a new one numbered after
    // them.
    let sessions_after = smtp_sessions(new.http).await;
    let highest = sessions_before
        .iter()
        .map(|s| s["id"].as_u64().unwrap())
        .max()
        .unwrap();
    for old in &sessions_before {
        let same = sessions_after.iter().find(|s| s["id"] == old["id"]);
        assert_eq!(same, Some(old), "{sessions_after:?}");
    }
    let newer: Vec<_> = sessions_after
        .iter()
        .filter(|s| !sessions_before.contains(s))
        .collect();
    assert!(!newer.is_empty(), "{sessions_after:?}");
    assert!(
        newer.iter().all(|s| s["id"].as_u64().unwrap() > highest),
        "{newer:?} after {highest}"
    );
    assert!(
        queue_ids.iter().all(|&old| id > old),
        "{id} after {queue_ids:?}"
    );
    let uidnext: u32 = before
        .iter()
        .find_map(|l| {
            l.strip_prefix("* OK [UIDNEXT ")
                .and_then(|r| r.split(']').next())
        })
        .unwrap()
        .parse()
        .unwrap();
    let r = c.ok("v SELECT INBOX").await;
    assert!(r.iter().any(|l| l == "* 4 EXISTS\r\n"), "{r:?}");
    let r = c
        .ok("w FETCH 4 (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        .await;
    assert!(
        r[0].contains(&format!("UID {uidnext} ")) && r[0].contains("after"),
        "{r:?}"
    );
    // A new mailbox gets a UIDVALIDITY never given before.
    c.ok("x CREATE Later").await;
    let r = c.ok("y STATUS Later (UIDVALIDITY)").await;
    let later: u64 = r[0]
        .split("UIDVALIDITY ")
        .nth(1)
        .and_then(|v| v.trim_end().trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("{r:?}"));
    assert!(
        before
            .iter()
            .filter_map(|l| l.split("UIDVALIDITY ").nth(1))
            .filter_map(|v| v.split([')', ' ', ']']).next()?.parse::<u64>().ok())
            .all(|v| v != later),
        "{later} {before:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn copying_needs_a_store_and_a_reachable_database() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    add_user(&dir, "alice@localhost");

    // Nobody listens there.
    let port = free_port();
    let out = cli(
        &dir,
        &[
            "store",
            "copy",
            "--to",
            &format!("postgres://postgres@127.0.0.1:{port}/postern"),
        ],
        &[],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot copy the store to PostgreSQL") && stderr.contains("cannot connect"),
        "{stderr}"
    );

    // A data dir without a SQLite store.
    let empty = root.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let url = Postgres::get().new_database();
    let out = cli(&empty, &["store", "copy", "--to", &url], &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not found"), "{stderr}");

    // A database with the schema but no data (a node started on it,
    // here a command run against it) is still a target.
    ok_cli(
        &empty,
        &["user", "list"],
        &[
            ("POSTERN_STORE_BACKEND", "postgres"),
            ("POSTERN_STORE_URL", url.as_str()),
        ],
    );
    let out = ok_cli(&dir, &["store", "copy", "--to", &url], &[]);
    assert!(out.contains("accounts"), "{out}");
    // Without `--to` and without `[store] url` there is nowhere to copy to.
    let out = cli(&dir, &["store", "copy"], &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--to") && stderr.contains("[store] url"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_to_the_copy_goes_to_the_configured_url() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    add_user(&dir, "alice@localhost");
    let url = Postgres::get().new_database();
    // As an operator does: the config already names the new store.
    let config = root.path().join("postern.toml");
    std::fs::write(
        &config,
        format!("[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n"),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let out = ok_cli(&dir, &["--config", config, "store", "copy"], &[]);
    assert!(
        out.contains("[store] url") && out.contains("accounts"),
        "{out}"
    );
    // The copy is the store that config opens.
    let listed = ok_cli(&dir, &["--config", config, "user", "list"], &[]);
    assert!(listed.contains("alice@localhost"), "{listed}");
    // The refusal rules hold as with --to: the database is no longer empty.
    let again = cli(&dir, &["--config", config, "store", "copy"], &[]);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("not empty"), "{stderr}");
    // --to wins over [store] url (here from the environment).
    let other = Postgres::get().new_database();
    let out = ok_cli(
        &dir,
        &["store", "copy", "--to", &other],
        &[("POSTERN_STORE_URL", url.as_str())],
    );
    assert!(!out.contains("[store] url of the configuration"), "{out}");
    let help = ok_cli(&dir, &["store", "copy", "--help"], &[]);
    assert!(help.contains("Default: `[store] url`"), "{help}");
}
