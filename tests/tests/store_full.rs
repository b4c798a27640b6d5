//! A full store (`[store] max_size_mb`, which fails writes the way a full
//! disk does) is named as such by every protocol, loses nothing it took,
//! and recovers by itself once space is made: SMTP `452 4.3.1
//! Insufficient system storage` (Postfix's words), IMAP APPEND `NO
//! [OVERQUOTA]` (Dovecot's answer on a full disk), and the session goes
//! on. POP3 reads and deletes while full (a deletion needs no new space),
//! so its answer to a full store, `-ERR [SYS/TEMP]`, is checked beside
//! the code (pop3d's `store_code`); `store_locked` checks it black-box
//! for a store that cannot write for now.

use std::time::{Duration, Instant};

use postern_tests::*;

const ADDRESS: &str = "app@full.test";
const PASSWORD_FOR_CAPTURE: &str = "capture-pw";

/// A message of about `kib` KiB that compresses poorly (each line differs).
fn message(n: usize, kib: usize) -> Vec<u8> {
    let mut m =
        format!("Subject: filler {n}\r\nMessage-ID: <filler-{n}@full.test>\r\n\r\n").into_bytes();
    let mut i = 0u64;
    while m.len() < kib * 1024 {
        // A cheap pseudo-random line.
        i = i
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407 + n as u64);
        m.extend_from_slice(format!("{i:016x}{:016x}{i:020}\r\n", i.rotate_left(17)).as_bytes());
    }
    m
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_store_is_named_and_recovers_by_itself() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let extra =
        format!("[store]\nmax_size_mb = 2\n[capture]\npassword = \"{PASSWORD_FOR_CAPTURE}\"\n");
    let server = tokio::task::block_in_place(|| Binary::start_up(&data, &extra, &["--capture"]));

    // Fill it: 256 KiB messages until one is refused.
    let (mut smtp, greeting) = SmtpClient::connect(server.smtp).await;
    assert_eq!(greeting.code, 220);
    assert_eq!(smtp.cmd("EHLO app.test").await.code, 250);
    let mut taken = 0;
    let refused = loop {
        let r = smtp
            .send_mail("app@app.test", &[ADDRESS], &message(taken, 256))
            .await;
        if r.code != 250 {
            break r;
        }
        taken += 1;
        assert!(taken < 40, "2 MiB store took {taken} messages of 256 KiB");
    };
    assert!(taken >= 2, "the store took only {taken} messages");
    assert_eq!(refused.code, 452, "{refused:?}");
    assert!(
        refused.text().contains("4.3.1 Insufficient system storage"),
        "{refused:?}"
    );
    // The session goes on: a small message still fits or gets the same
    // answer, never a broken session.
    assert_eq!(smtp.cmd("NOOP").await.code, 250);

    // IMAP: what was taken is all there; APPEND of a big one is OVERQUOTA.
    let (mut imap, greeting) = Pop3Client::connect(server.imap).await;
    assert!(greeting.starts_with("* OK"), "{greeting}");
    let r = imap
        .imap("a", &format!("LOGIN {ADDRESS} {PASSWORD_FOR_CAPTURE}"))
        .await;
    assert!(r.last().unwrap().starts_with("a OK"), "{r:?}");
    let r = imap.imap("b", "SELECT INBOX").await;
    assert!(
        r.iter().any(|l| *l == format!("* {taken} EXISTS")),
        "{taken} taken: {r:?}"
    );
    let big = message(999, 512);
    imap.send(format!("c APPEND INBOX {{{}}}\r\n", big.len()).as_bytes())
        .await;
    let go = imap.line().await;
    assert!(go.starts_with('+'), "{go}");
    imap.send(&big).await;
    imap.send(b"\r\n").await;
    let r = imap.until_tag("c").await;
    assert_eq!(
        r.last().unwrap(),
        "c NO [OVERQUOTA] Not enough disk space",
        "{r:?}"
    );

    // POP3: every message taken is there and readable while the store is
    // full, and deleting one (the way a POP3 user makes space) works.
    let (mut pop3, _) = Pop3Client::connect(server.pop3).await;
    pop3.login(ADDRESS, PASSWORD_FOR_CAPTURE).await;
    let stat = pop3.cmd("STAT").await;
    assert!(stat.starts_with(&format!("+OK {taken} ")), "{stat}");
    let (status, lines) = pop3.multi("TOP 1 0").await;
    assert!(status.starts_with("+OK"), "{status}");
    assert!(lines.iter().any(|l| l == "Subject: filler 0"), "{lines:?}");
    assert!(pop3.cmd("DELE 1").await.starts_with("+OK"));
    let quit = pop3.cmd("QUIT").await;
    assert_eq!(
        quit,
        format!(
            "+OK Postern POP3 server signing off ({} messages left)",
            taken - 1
        )
    );

    // Space made (every message expunged): mail is taken again, by itself.
    let r = imap.imap("d", "STORE 1:* +FLAGS.SILENT (\\Deleted)").await;
    assert!(r.last().unwrap().starts_with("d OK"), "{r:?}");
    let r = imap.imap("e", "EXPUNGE").await;
    assert!(r.last().unwrap().starts_with("e OK"), "{r:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = smtp
            .send_mail("app@app.test", &[ADDRESS], &message(1000, 256))
            .await;
        if r.code == 250 {
            break;
        }
        assert_eq!(r.code, 452, "{r:?}");
        assert!(Instant::now() < deadline, "never recovered: {r:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = imap.imap("f", "NOOP").await;
    assert!(r.iter().any(|l| l == "* 1 EXISTS"), "{r:?}");
}
