//! Two `postern up` nodes over one PostgreSQL database (`[store] backend
//! = "postgres"`): mail accepted by one is seen at once by IMAP IDLE on
//! the other, flag changes cross too, the POP3 maildrop lock holds across
//! nodes; and a database that cannot be reached at start is a clear error.

use std::path::Path;
use std::time::Duration;

use postern_tests::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn store_section(url: &str) -> String {
    format!("[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n")
}

fn node(dir: &Path, url: &str) -> Binary {
    std::fs::create_dir_all(dir).unwrap();
    Binary::start_with(dir, &store_section(url))
}

struct Imap {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Imap {
    async fn login(addr: std::net::SocketAddr) -> Imap {
        let (read, writer) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut imap = Imap {
            reader: BufReader::new(read),
            writer,
        };
        imap.line().await;
        imap.command("a LOGIN alice@localhost secret").await;
        imap.command("b SELECT INBOX").await;
        imap
    }

    async fn line(&mut self) -> String {
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(10), self.reader.read_line(&mut line))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        line
    }

    async fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
    }

    /// Sends a tagged command; every line up to its tagged OK.
    async fn command(&mut self, line: &str) -> Vec<String> {
        let tag = line.split(' ').next().unwrap().to_owned();
        self.send(line).await;
        let mut lines = Vec::new();
        loop {
            let l = self.line().await;
            let done = l.starts_with(&format!("{tag} "));
            lines.push(l.clone());
            if done {
                assert!(l.starts_with(&format!("{tag} OK")), "{line}: {lines:?}");
                return lines;
            }
        }
    }
}

#[tokio::test]
async fn two_nodes_share_mailboxes_idle_and_the_pop3_lock() {
    let url = Postgres::get().new_database();
    let dir = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    let a = node(&a_dir, &url);
    let b = node(&b_dir, &url);
    // An account made through node A's data dir is node B's too.
    let out = postern_cli(
        &a_dir,
        &[
            "--config",
            a_dir.with_extension("toml").to_str().unwrap(),
            "user",
            "add",
            "alice@localhost",
            "--password-stdin",
        ],
        "secret\n",
    );
    assert!(out.status.success(), "{out:?}");

    let mut idle = Imap::login(b.imap).await;
    idle.send("c IDLE").await;
    assert!(idle.line().await.starts_with("+ "));

    // Mail into A: B's IDLE hears of it (LISTEN/NOTIFY), well within a
    // second.
    let started = std::time::Instant::now();
    let (mut smtp, _) = SmtpClient::connect(a.smtp).await;
    smtp.cmd("EHLO client.example").await;
    let reply = smtp
        .send_mail("sender@example.org", &["alice@localhost"], &message("across", "hi"))
        .await;
    assert_eq!(reply.code, 250, "{}", reply.text());
    assert_eq!(idle.line().await, "* 1 EXISTS\r\n");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());

    // A flag set on A reaches B's IDLE.
    let mut setter = Imap::login(a.imap).await;
    setter.command("d STORE 1 +FLAGS (\\Flagged)").await;
    let mut seen = Vec::new();
    loop {
        let line = idle.line().await;
        if line.contains("FETCH") {
            assert!(line.contains("\\Flagged"), "{line}");
            break;
        }
        seen.push(line);
        assert!(seen.len() < 5, "{seen:?}");
    }
    idle.send("DONE").await;
    loop {
        if idle.line().await.starts_with("c OK") {
            break;
        }
    }

    // B reads the message A accepted.
    let fetched = idle.command("e FETCH 1 BODY.PEEK[TEXT]").await.join("");
    assert!(fetched.contains("hi"), "{fetched}");

    // The maildrop lock: a POP3 session on A keeps B's out.
    let (mut pop_a, _) = Pop3Client::connect(a.pop3).await;
    pop_a.cmd("USER alice@localhost").await;
    assert!(pop_a.cmd("PASS secret").await.starts_with("+OK"));
    let (mut pop_b, _) = Pop3Client::connect(b.pop3).await;
    pop_b.cmd("USER alice@localhost").await;
    let refused = pop_b.cmd("PASS secret").await;
    assert!(refused.starts_with("-ERR [IN-USE]"), "{refused}");
}

#[tokio::test]
async fn an_unreachable_database_at_start_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let out = postern_command()
        .arg("--data-dir")
        .arg(dir.path())
        .args(["user", "list"])
        .env("POSTERN_STORE_BACKEND", "postgres")
        .env(
            "POSTERN_STORE_URL",
            format!("postgres://postern@127.0.0.1:{port}/postern"),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot open the store in PostgreSQL") && stderr.contains("cannot connect"),
        "{stderr}"
    );

    // A backend without its url is refused before anything starts.
    let out = postern_command()
        .arg("--data-dir")
        .arg(dir.path())
        .args(["user", "list"])
        .env("POSTERN_STORE_BACKEND", "postgres")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("needs [store] url"), "{stderr}");
}
