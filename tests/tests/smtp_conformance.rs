//! SMTP answers compared with Postfix 3.7.11 and the RFCs (issue 10):
//! recipients without a mailbox, postmaster for every local domain,
//! Return-Path at final delivery, and BDAT held to the same line-end rule
//! and SIZE limit as DATA. Postfix's answers to the same bytes are quoted
//! where they decided.

use std::path::Path;
use std::time::{Duration, Instant};

use postern_tests::*;

async fn ehlo(client: &mut SmtpClient) -> SmtpReply {
    let r = client.cmd("EHLO client.example").await;
    assert_eq!(r.code, 250, "{r:?}");
    r
}

fn code_and_status(r: &SmtpReply) -> (u16, &str) {
    (r.code, r.lines[0].split(' ').next().unwrap_or(""))
}

// ---- item 9: a forward-path needs a mailbox ----

/// RFC 5321 4.1.2: `RCPT TO:<>` and a source route with no mailbox are
/// not forward-paths. Postfix 3.7.11 answered both `501 5.1.3 Bad
/// recipient address syntax`; `<postmaster>` (and other addresses) still
/// `250 2.1.5`.
#[tokio::test(flavor = "multi_thread")]
async fn rcpt_without_a_mailbox_is_a_syntax_error() {
    let server = Server::start().await;
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    ehlo(&mut c).await;
    assert_eq!(c.cmd("MAIL FROM:<a@b.test>").await.code, 250);
    for path in ["<>", "<@a.test:>", "<@a.test,@b.test:>"] {
        let r = c.cmd(&format!("RCPT TO:{path}")).await;
        assert_eq!(code_and_status(&r), (501, "5.1.3"), "{path}: {r:?}");
        assert!(r.text().contains("Bad recipient address syntax"), "{r:?}");
    }
    // Nothing was taken: DATA has no recipient.
    assert_eq!(c.cmd("DATA").await.code, 554);
    let r = c.cmd("RCPT TO:<postmaster>").await;
    assert_eq!(code_and_status(&r), (250, "2.1.5"), "{r:?}");
    let r = c.cmd("RCPT TO:<@a.test:alice@localhost>").await;
    assert_eq!(code_and_status(&r), (250, "2.1.5"), "{r:?}");
}

// ---- item 10: postmaster for every local domain ----

/// A config like the harness's (every listener on a free port), with
/// top-level keys of our own, at `data_dir.toml` where [`Binary`] finds
/// it.
fn write_config(data_dir: &Path, top: &str) {
    let ports: Vec<u16> = (0..8).map(|_| free_port()).collect();
    let text = format!(
        "{top}\nlog = \"warn\"\n[smtp]\nlisten = [\"127.0.0.1:{}\"]\nsubmission_listen = [\"127.0.0.1:{}\"]\nsubmissions_listen = [\"127.0.0.1:{}\"]\n[queue]\nmin_backoff_secs = 1\nmax_backoff_secs = 2\n[pop3]\nlisten = [\"127.0.0.1:{}\"]\npop3s_listen = [\"127.0.0.1:{}\"]\n[imap]\nlisten = [\"127.0.0.1:{}\"]\nimaps_listen = [\"127.0.0.1:{}\"]\n[http]\nlisten = [\"127.0.0.1:{}\"]\n",
        ports[0], ports[1], ports[2], ports[3], ports[4], ports[5], ports[6], ports[7]
    );
    std::fs::write(data_dir.with_extension("toml"), text).unwrap();
}

/// `postern` with the config of [`write_config`].
fn cli(data_dir: &Path, args: &[&str], stdin: &str) -> String {
    let config = data_dir.with_extension("toml");
    let mut all = vec!["--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = postern_cli(data_dir, &all, stdin);
    assert!(
        out.status.success(),
        "postern {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `postern mail list ADDRESS --json`, once it lists `count` messages.
fn wait_for_list(data_dir: &Path, address: &str, count: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = cli(data_dir, &["mail", "list", address, "--json"], "");
        let list: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        if list.len() >= count {
            return list;
        }
        assert!(Instant::now() < deadline, "{address}: {list:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// RFC 5321 4.5.1: postmaster MUST be accepted for every local domain.
/// With `local_domains = ["localhost", "bench.test"]` and accounts only
/// at bench.test, Postfix 3.7.11 answered `250 2.1.5 Ok` to
/// `RCPT TO:<postmaster>`, `<postmaster@localhost>` and
/// `<POSTMASTER@bench.test>`. Without an alias and without the
/// `postmaster` key, the mail goes to the domain's oldest account, else
/// the oldest of all (here bob@bench.test for every one of them).
#[tokio::test(flavor = "multi_thread")]
async fn postmaster_is_taken_for_every_local_domain() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_config(&data, "local_domains = [\"localhost\", \"bench.test\"]");
    cli(
        &data,
        &["user", "add", "bob@bench.test", "--password-stdin"],
        "pw\n",
    );
    cli(
        &data,
        &["user", "add", "carol@bench.test", "--password-stdin"],
        "pw\n",
    );
    let server = Binary::start(&data);
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    ehlo(&mut c).await;
    assert_eq!(c.cmd("MAIL FROM:<ext@example.com>").await.code, 250);
    for path in [
        "<postmaster>",
        "<postmaster@localhost>",
        "<POSTMASTER@bench.test>",
    ] {
        let r = c.cmd(&format!("RCPT TO:{path}")).await;
        assert_eq!(code_and_status(&r), (250, "2.1.5"), "{path}: {r:?}");
        assert!(!r.text().contains("<>"), "{r:?}");
    }
    // A domain added later, with no account of its own.
    cli(&data, &["domain", "add", "other.test"], "");
    let r = c.cmd("RCPT TO:<postmaster@other.test>").await;
    assert_eq!(code_and_status(&r), (250, "2.1.5"), "{r:?}");
    // Not postmaster: still unknown.
    let r = c.cmd("RCPT TO:<abuse@other.test>").await;
    assert_eq!(code_and_status(&r), (550, "5.1.1"), "{r:?}");
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.send(b"Subject: to the postmaster\r\n\r\nHello.\r\n.\r\n")
        .await;
    assert_eq!(c.reply().await.code, 250);
    // Four postmasters, one account: one copy, with the envelope sender.
    let list = wait_for_list(&data, "bob@bench.test", 1);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["envelope_sender"], "ext@example.com", "{list:?}");
    assert_eq!(list[0]["subject"], "to the postmaster");
    let shown = cli(&data, &["mail", "show", "bob@bench.test", "1"], "");
    assert!(
        shown.starts_with("Return-Path: <ext@example.com>\r\nReceived: "),
        "{shown}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(wait_for_list(&data, "carol@bench.test", 0).is_empty());
}

/// The top-level `postmaster` key says where postmaster mail goes when no
/// account or alias has the address; an alias still wins.
#[tokio::test(flavor = "multi_thread")]
async fn the_postmaster_key_and_an_alias_decide_where_it_goes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_config(
        &data,
        "local_domains = [\"localhost\", \"bench.test\"]\npostmaster = \"admin@bench.test\"",
    );
    cli(
        &data,
        &["user", "add", "bob@bench.test", "--password-stdin"],
        "pw\n",
    );
    cli(
        &data,
        &["user", "add", "admin@bench.test", "--password-stdin"],
        "pw\n",
    );
    cli(
        &data,
        &["user", "add", "dave@localhost", "--password-stdin"],
        "pw\n",
    );
    cli(
        &data,
        &["alias", "add", "postmaster@localhost", "dave@localhost"],
        "",
    );
    let server = Binary::start(&data);
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    ehlo(&mut c).await;
    for (rcpt, subject) in [
        ("postmaster@bench.test", "to the key"),
        ("postmaster@localhost", "to the alias"),
    ] {
        let r = c
            .send_mail("ext@example.com", &[rcpt], &message(subject, "x"))
            .await;
        assert_eq!(r.code, 250, "{rcpt}: {r:?}");
    }
    let admin = wait_for_list(&data, "admin@bench.test", 1);
    assert_eq!(admin[0]["subject"], "to the key");
    let dave = wait_for_list(&data, "dave@localhost", 1);
    assert_eq!(dave[0]["subject"], "to the alias");
    assert!(wait_for_list(&data, "bob@bench.test", 0).is_empty());
}

/// With no account at all there is nowhere to put postmaster mail: 550,
/// and the reply names the address (never `<>`).
#[tokio::test(flavor = "multi_thread")]
async fn postmaster_without_any_account_is_refused_by_name() {
    let server = Server::start().await;
    server
        .store
        .delete_account("alice@localhost")
        .await
        .unwrap();
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    ehlo(&mut c).await;
    assert_eq!(c.cmd("MAIL FROM:<a@b.test>").await.code, 250);
    let r = c.cmd("RCPT TO:<postmaster>").await;
    assert_eq!(code_and_status(&r), (550, "5.1.1"), "{r:?}");
    assert!(r.text().contains("<postmaster@localhost>"), "{r:?}");
}

// ---- item 11: Return-Path at final delivery ----

/// One FETCH response carrying a literal: the line up to `{n}`, the
/// bytes, and the closing line.
async fn fetch_literal(c: &mut Pop3Client) -> (String, Vec<u8>) {
    let head = c.line().await;
    let n: usize = head
        .rsplit_once('{')
        .and_then(|(_, n)| n.strip_suffix('}'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no literal in {head}"));
    let bytes = c.read_bytes(n).await;
    assert_eq!(c.line().await, ")");
    (head, bytes)
}

/// RFC 5321 4.4: the delivering server inserts `Return-Path: <sender>`
/// (`<>` for a bounce) at the top of the message. POP3 and IMAP serve it,
/// and every size they report is the size they send; the summary's
/// offsets (BODY[TEXT], BODY[HEADER]) fit those bytes.
#[tokio::test(flavor = "multi_thread")]
async fn return_path_is_written_at_final_delivery() {
    let server = Server::start().await;
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    ehlo(&mut c).await;
    let body = "First line\r\nlast line";
    let r = c
        .send_mail(
            "bob@example.com",
            &["alice@localhost"],
            &message("one", body),
        )
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    let r = c
        .send_mail("", &["alice@localhost"], &message("bounce", body))
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    let inbox = server.wait_for_inbox("alice@localhost", 2).await;
    let first = server.raw("alice@localhost", inbox[0].uid).await;
    let second = server.raw("alice@localhost", inbox[1].uid).await;
    assert!(
        first.starts_with(b"Return-Path: <bob@example.com>\r\nReceived: from client.example"),
        "{}",
        String::from_utf8_lossy(&first)
    );
    assert!(second.starts_with(b"Return-Path: <>\r\nReceived: "));
    assert!(first.ends_with(&message("one", body)));
    assert_eq!(inbox[0].size, first.len() as u64);

    // POP3: LIST and STAT say what RETR sends.
    let pop3 = Pop3Server::start(&server).await;
    let (mut p, _) = Pop3Client::connect(pop3.pop3).await;
    p.login("alice@localhost", PASSWORD).await;
    let stat = p.cmd("STAT").await;
    assert_eq!(
        stat,
        format!("+OK 2 {}", first.len() + second.len()),
        "STAT"
    );
    let (list, _) = p.multi("LIST").await;
    assert!(list.starts_with("+OK"), "{list}");
    let one = p.cmd("LIST 1").await;
    assert_eq!(one, format!("+OK 1 {}", first.len()));
    assert!(p.cmd("RETR 1").await.starts_with("+OK"));
    assert_eq!(p.body().await, first, "RETR sends the stored bytes");
    assert_eq!(p.cmd("QUIT").await.split(' ').next(), Some("+OK"));

    // IMAP: RFC822.SIZE, BODY[], and sections cut by the stored offsets.
    let imap = ImapServer::start_with(&server, |_| {}).await;
    let (mut i, _) = Pop3Client::connect(imap.imap).await;
    i.imap("L", &format!("LOGIN alice@localhost \"{PASSWORD}\""))
        .await;
    i.imap("S", "SELECT INBOX").await;
    i.send(b"F1 UID FETCH 1 (RFC822.SIZE BODY.PEEK[])\r\n")
        .await;
    let (head, bytes) = fetch_literal(&mut i).await;
    assert!(
        head.contains(&format!("RFC822.SIZE {}", first.len())),
        "{head}"
    );
    assert_eq!(bytes, first);
    assert!(i.until_tag("F1").await.last().unwrap().starts_with("F1 OK"));
    i.send(b"F2 UID FETCH 1 (BODY.PEEK[TEXT])\r\n").await;
    let (_, text) = fetch_literal(&mut i).await;
    assert_eq!(text, format!("{body}\r\n").as_bytes());
    i.until_tag("F2").await;
    i.send(b"F3 UID FETCH 1 (BODY.PEEK[HEADER.FIELDS (RETURN-PATH)])\r\n")
        .await;
    let (_, field) = fetch_literal(&mut i).await;
    assert_eq!(field, b"Return-Path: <bob@example.com>\r\n\r\n");
    i.until_tag("F3").await;
}

/// Ten local recipients of one message still share one stored copy (with
/// its Return-Path), and the relayed copy of the same message goes out
/// without one (it is not a final delivery).
#[tokio::test(flavor = "multi_thread")]
async fn ten_local_recipients_share_one_copy_and_relayed_mail_has_no_return_path() {
    use postern_tests::fake_smtp::{Behaviour, FakeSmtp};
    let fake = FakeSmtp::start(Behaviour::default()).await;
    let server = Server::start_with(|c| {
        c.relay.transport.insert(
            "example.org".into(),
            common::config::Transport {
                host: fake.addr().to_string(),
                tls: common::config::RelayTls::None,
                username: None,
                password: None,
            },
        );
        c.relay.trusted_networks = vec!["127.0.0.1/32".into()];
    })
    .await;
    let mut to = vec!["bob@example.org".to_string()];
    for i in 0..10 {
        let address = format!("user{i}@localhost");
        server.store.add_account(&address, PASSWORD).await.unwrap();
        to.push(address);
    }
    let to: Vec<&str> = to.iter().map(String::as_str).collect();
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    ehlo(&mut c).await;
    let msg = message("ten", "For ten and one.");
    let r = c.send_mail("sender@client.test", &to, &msg).await;
    assert_eq!(r.code, 250, "{r:?}");
    let mut stored = Vec::new();
    for address in &to[1..] {
        let inbox = server.wait_for_inbox(address, 1).await;
        stored.push(server.raw(address, inbox[0].uid).await);
    }
    assert!(stored[0].starts_with(b"Return-Path: <sender@client.test>\r\nReceived: "));
    assert!(stored.iter().all(|s| *s == stored[0]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.store.queue().await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "queue not empty");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.store.blob_count().await.unwrap(), 1, "one copy");
    let relayed = &fake.transactions()[0].message;
    assert!(relayed.starts_with(b"Received: "), "relayed as received");
    assert!(relayed.ends_with(&msg));
    assert_eq!(
        &stored[0][b"Return-Path: <sender@client.test>\r\n".len()..],
        &relayed[..]
    );
}

// ---- item 12: one line-end rule for DATA and BDAT ----

/// A message with a bare LF and a bare CR: `550 5.5.2` through DATA, and
/// now through `BDAT … LAST` too (before, BDAT stored it, and POP3 said
/// LIST 162 octets while RETR sent 165). The session goes on.
#[tokio::test(flavor = "multi_thread")]
async fn bdat_gets_the_same_bare_line_end_rule_as_data() {
    let server = Server::start().await;
    let bare = b"Subject: bare\r\n\r\nline one\nline two\rline three\r\n";
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    ehlo(&mut c).await;
    // DATA (the dot-stuffing is the client's; there is none to do here).
    assert_eq!(c.cmd("MAIL FROM:<bob@example.com>").await.code, 250);
    assert_eq!(c.cmd("RCPT TO:<alice@localhost>").await.code, 250);
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.send(bare).await;
    c.send(b".\r\n").await;
    let r = c.reply().await;
    assert_eq!(code_and_status(&r), (550, "5.5.2"), "DATA: {r:?}");
    // BDAT, whole and split into chunks.
    for chunks in [vec![&bare[..]], vec![&bare[..20], &bare[20..]]] {
        assert_eq!(c.cmd("MAIL FROM:<bob@example.com>").await.code, 250);
        assert_eq!(c.cmd("RCPT TO:<alice@localhost>").await.code, 250);
        let last = chunks.len() - 1;
        for (n, chunk) in chunks.iter().enumerate() {
            let end = if n == last { " LAST" } else { "" };
            let mut command = format!("BDAT {}{end}\r\n", chunk.len()).into_bytes();
            command.extend_from_slice(chunk);
            c.send(&command).await;
            let r = c.reply().await;
            if n == last {
                assert_eq!(code_and_status(&r), (550, "5.5.2"), "BDAT: {r:?}");
            } else {
                assert_eq!(r.code, 250, "{r:?}");
            }
        }
        // The transaction is over.
        assert_eq!(c.cmd("RCPT TO:<alice@localhost>").await.code, 503);
    }
    // A CRLF split across two chunks is no bare line end.
    let good = b"Subject: split\r\n\r\nline\r\nend\r\n";
    assert_eq!(c.cmd("MAIL FROM:<bob@example.com>").await.code, 250);
    assert_eq!(c.cmd("RCPT TO:<alice@localhost>").await.code, 250);
    c.send(b"BDAT 23\r\n").await;
    c.send(&good[..23]).await;
    assert_eq!(c.reply().await.code, 250);
    c.send(format!("BDAT {} LAST\r\n", good.len() - 23).as_bytes())
        .await;
    c.send(&good[23..]).await;
    let r = c.reply().await;
    assert_eq!(r.code, 250, "{r:?}");
    let inbox = server.wait_for_inbox("alice@localhost", 1).await;
    assert_eq!(inbox.len(), 1);
    let raw = server.raw("alice@localhost", inbox[0].uid).await;
    assert!(raw.ends_with(good));
}

// ---- item 13: BDAT and the advertised SIZE ----

/// BDAT chunk: the command and its bytes.
fn bdat(data: &[u8], last: bool) -> Vec<u8> {
    let end = if last { " LAST" } else { "" };
    let mut out = format!("BDAT {}{end}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out
}

/// MAIL and RCPT for alice.
async fn begin(c: &mut SmtpClient) {
    assert_eq!(c.cmd("MAIL FROM:<bob@example.com>").await.code, 250);
    assert_eq!(c.cmd("RCPT TO:<alice@localhost>").await.code, 250);
}

/// `n` octets of a message with CRLF line ends.
fn octets(n: usize) -> Vec<u8> {
    let mut m = b"Subject: big\r\n\r\n".to_vec();
    while m.len() < n {
        m.extend_from_slice(b"0123456789012345678901234567890123456789012345678\r\n");
    }
    m.truncate(n - 2);
    m.extend_from_slice(b"\r\n");
    m
}

/// RFC 1870 6 and RFC 3030: with `SIZE 10000` a message of 10,000 octets
/// is taken and one of 10,001 is not (before, up to 13,900 were), whether
/// in one chunk or several: `552 5.3.4` for the chunk that passes the
/// limit and for every later one, whose bytes are read and dropped; LAST
/// ends the transaction and the session goes on. (Postfix 3.7.11, which
/// counts its queue file rather than the client's octets, refused 9,500
/// octets already; it answers later chunks `551 5.0.0 Discarded N bytes
/// after earlier error`.)
#[tokio::test(flavor = "multi_thread")]
async fn bdat_honours_the_advertised_size_exactly() {
    let server = Server::start_with(|c| c.smtp.max_message_size = 10_000).await;
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    let r = ehlo(&mut c).await;
    assert!(r.lines.iter().any(|l| l == "SIZE 10000"), "{r:?}");
    // Exactly the limit: taken.
    begin(&mut c).await;
    c.send(&bdat(&octets(10_000), true)).await;
    let r = c.reply().await;
    assert_eq!(r.code, 250, "{r:?}");
    // One more, in one chunk: refused.
    begin(&mut c).await;
    c.send(&bdat(&octets(10_001), true)).await;
    let r = c.reply().await;
    assert_eq!(code_and_status(&r), (552, "5.3.4"), "{r:?}");
    assert_eq!(c.cmd("RCPT TO:<alice@localhost>").await.code, 503);
    // Over the limit in the second of four chunks.
    begin(&mut c).await;
    let big = octets(10_201);
    c.send(&bdat(&big[..6000], false)).await;
    assert_eq!(c.reply().await.code, 250);
    c.send(&bdat(&big[6000..10_001], false)).await;
    let r = c.reply().await;
    assert_eq!(code_and_status(&r), (552, "5.3.4"), "{r:?}");
    c.send(&bdat(&big[10_001..10_101], false)).await;
    let r = c.reply().await;
    assert_eq!(code_and_status(&r), (552, "5.3.4"), "{r:?}");
    c.send(&bdat(&big[10_101..], true)).await;
    let r = c.reply().await;
    assert_eq!(code_and_status(&r), (552, "5.3.4"), "{r:?}");
    // The transaction is over, the session is not.
    assert_eq!(c.cmd("RCPT TO:<alice@localhost>").await.code, 503);
    assert_eq!(c.cmd("NOOP").await.code, 250);
    begin(&mut c).await;
    c.send(&bdat(&octets(5_000), true)).await;
    assert_eq!(c.reply().await.code, 250);
    let inbox = server.wait_for_inbox("alice@localhost", 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(inbox.len(), 2, "the 10,000 and 5,000 octet messages");
    assert_eq!(
        server
            .store
            .messages(server.account("alice@localhost").await, "INBOX")
            .await
            .unwrap()
            .len(),
        2
    );
}
