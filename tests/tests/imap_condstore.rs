//! IMAP, black-box: CONDSTORE and QRESYNC (RFC 7162). Several sessions on
//! one mailbox see the same modseqs and hear of expunges as EXPUNGE or
//! VANISHED as each asked; a client that comes back with QRESYNC after
//! another session expunged learns exactly what went and what changed;
//! STORE UNCHANGEDSINCE refuses messages changed meanwhile with
//! `[MODIFIED]`; and a client whose modseq is older than the change feed
//! the store kept still gets a correct (larger) VANISHED answer.

use postern_tests::*;

const ALICE: &str = "alice@localhost";

/// A server whose store keeps the changes of only `keep` modseqs per
/// mailbox.
async fn start_keeping(keep: u64) -> (Server, ImapServer) {
    ImapServer::keeping_changes(keep).await
}

/// A logged-in session.
async fn session(imap: &ImapServer) -> Pop3Client {
    imap.login(ALICE).await
}

/// A logged-in session with `enable` (e.g. `QRESYNC`) turned on.
async fn enabled(imap: &ImapServer, enable: &str) -> Pop3Client {
    let mut c = session(imap).await;
    let r = c.imap("e", &format!("ENABLE {enable}")).await;
    assert_eq!(
        r,
        [
            format!("* ENABLED {enable}"),
            "e OK ENABLE completed".into()
        ]
    );
    c
}

/// `tag OK ...` as the last line.
fn ok(r: &[String], tag: &str) {
    assert!(
        r.last()
            .is_some_and(|l| l.starts_with(&format!("{tag} OK"))),
        "{r:?}"
    );
}

/// Appends messages with these subjects to INBOX and selects it once, so
/// that no later session sees them `\Recent`.
async fn fill_inbox(imap: &ImapServer, subjects: &[&str]) {
    let mut c = session(imap).await;
    for s in subjects {
        let message = format!("Subject: {s}\r\n\r\nbody {s}\r\n");
        let command = format!("APPEND INBOX {{{}+}}\r\n{message}", message.len());
        ok(&c.imap("ap", &command).await, "ap");
    }
    ok(&c.imap("s", "SELECT INBOX").await, "s");
    ok(&c.imap("o", "LOGOUT").await, "o");
}

/// The number in `[NAME n]` or `NAME n` of the first line that has it.
fn number_after(lines: &[String], name: &str) -> u64 {
    lines
        .iter()
        .find_map(|l| {
            let rest = &l[l.find(name)? + name.len()..];
            let digits: String = rest
                .trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
        .unwrap_or_else(|| panic!("no {name} in {lines:?}"))
}

/// `uid -> modseq` from `* n FETCH (UID u ... MODSEQ (m))` lines.
fn modseqs(lines: &[String]) -> Vec<(u64, u64)> {
    lines
        .iter()
        .filter(|l| l.contains(" FETCH ("))
        .map(|l| {
            (
                number_after(std::slice::from_ref(l), "UID "),
                number_after(std::slice::from_ref(l), "MODSEQ ("),
            )
        })
        .collect()
}

/// Reads lines in IDLE until one starts with `last`; returns them all.
async fn until_line(c: &mut Pop3Client, last: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    while lines.last().is_none_or(|l| !l.starts_with(last)) {
        lines.push(c.line().await);
    }
    lines
}

#[tokio::test]
async fn capabilities_and_enable() {
    let (_server, imap) = start_keeping(10_000).await;
    let (mut c, greeting) = Pop3Client::connect(imap.imap).await;
    assert!(!greeting.contains("CONDSTORE"), "{greeting}");
    let r = c.imap("L", &format!("LOGIN {ALICE} \"{PASSWORD}\"")).await;
    ok(&r, "L");
    let r = c.imap("c", "CAPABILITY").await;
    assert!(r[0].contains(" CONDSTORE QRESYNC"), "{r:?}");
    // QRESYNC turns CONDSTORE on with it; asking again turns nothing on.
    let r = c.imap("e", "ENABLE QRESYNC X-UNKNOWN").await;
    assert_eq!(r, ["* ENABLED QRESYNC", "e OK ENABLE completed"]);
    let r = c.imap("e", "ENABLE CONDSTORE QRESYNC").await;
    assert_eq!(r, ["* ENABLED", "e OK ENABLE completed"]);
    // STATUS HIGHESTMODSEQ and SELECT's agree.
    let status = c.imap("t", "STATUS INBOX (HIGHESTMODSEQ)").await;
    let select = c.imap("s", "SELECT INBOX").await;
    ok(&select, "s");
    assert_eq!(
        number_after(&status, "HIGHESTMODSEQ"),
        number_after(&select, "[HIGHESTMODSEQ")
    );
    // ENABLE is for the authenticated state only (RFC 5161).
    let r = c.imap("e", "ENABLE CONDSTORE").await;
    assert!(r[0].starts_with("e BAD"), "{r:?}");

    // Without QRESYNC, SELECT's QRESYNC parameter is an error.
    let mut plain = session(&imap).await;
    let r = plain.imap("s", "SELECT INBOX (QRESYNC (1 1))").await;
    assert!(r[0].starts_with("s BAD"), "{r:?}");
    // So does STATUS (HIGHESTMODSEQ), as in Dovecot.
    let mut status_first = session(&imap).await;
    ok(
        &status_first.imap("t", "STATUS INBOX (HIGHESTMODSEQ)").await,
        "t",
    );
    let r = status_first.imap("s", "SELECT INBOX").await;
    assert!(
        r.iter().any(|l| l.starts_with("* OK [HIGHESTMODSEQ ")),
        "{r:?}"
    );
    // SELECT (CONDSTORE) turns it on for that session.
    let r = plain.imap("s", "EXAMINE INBOX (CONDSTORE)").await;
    assert!(
        r.iter().any(|l| l.starts_with("* OK [HIGHESTMODSEQ ")),
        "{r:?}"
    );
    ok(&r, "s");
}

#[tokio::test]
async fn sessions_see_the_same_modseqs_and_expunges_in_their_own_words() {
    let (_server, imap) = start_keeping(10_000).await;
    fill_inbox(&imap, &["one", "two", "three", "four"]).await;
    // A: CONDSTORE by using it; B: QRESYNC, in IDLE; C: neither.
    let mut a = session(&imap).await;
    ok(&a.imap("s", "SELECT INBOX").await, "s");
    let r = a.imap("f", "FETCH 1 (MODSEQ)").await;
    assert!(r[0].starts_with("* OK [HIGHESTMODSEQ "), "{r:?}");
    ok(&r, "f");
    let mut b = enabled(&imap, "QRESYNC").await;
    let r = b.imap("s", "SELECT INBOX").await;
    ok(&r, "s");
    let start = number_after(&r, "[HIGHESTMODSEQ");
    let mut c = session(&imap).await;
    let r = c.imap("s", "SELECT INBOX").await;
    assert!(!r.iter().any(|l| l.contains("HIGHESTMODSEQ")), "{r:?}");
    b.send(b"i IDLE\r\n").await;
    assert_eq!(b.line().await, "+ idling");

    // A flags message 2: its answer has the new modseq, B hears the same.
    let r = a.imap("t", "STORE 2 +FLAGS (\\Flagged)").await;
    ok(&r, "t");
    let flagged = start + 1;
    assert_eq!(
        r[0],
        format!("* 2 FETCH (FLAGS (\\Flagged) MODSEQ ({flagged}))")
    );
    assert_eq!(
        b.line().await,
        format!("* 2 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ ({flagged}))")
    );
    // .SILENT still tells a CONDSTORE client the new modseq.
    let r = a.imap("t", "UID STORE 1,3 +FLAGS.SILENT (\\Deleted)").await;
    assert_eq!(
        r[..2],
        [
            format!("* 1 FETCH (UID 1 MODSEQ ({}))", start + 2),
            format!("* 3 FETCH (UID 3 MODSEQ ({}))", start + 3),
        ]
    );
    let heard = until_line(&mut b, "* 3 FETCH").await;
    assert_eq!(
        heard,
        [
            format!("* 1 FETCH (UID 1 FLAGS (\\Deleted) MODSEQ ({}))", start + 2),
            format!("* 3 FETCH (UID 3 FLAGS (\\Deleted) MODSEQ ({}))", start + 3),
        ]
    );

    // The expunge: EXPUNGE to A, VANISHED to B, EXPUNGE without MODSEQ
    // anywhere to C.
    let r = a.imap("x", "EXPUNGE").await;
    assert_eq!(r[..2], ["* 3 EXPUNGE", "* 1 EXPUNGE"]);
    ok(&r, "x");
    assert_eq!(b.line().await, "* VANISHED 1,3");
    let r = c.imap("n", "NOOP").await;
    assert_eq!(
        r,
        [
            "* 3 EXPUNGE",
            "* 1 EXPUNGE",
            "* 1 FETCH (UID 2 FLAGS (\\Flagged))",
            "n OK Done",
        ]
    );
    b.send(b"DONE\r\n").await;
    assert_eq!(b.until_tag("i").await, ["i OK IDLE terminated"]);

    // Everyone ends with the same modseqs, and STATUS's HIGHESTMODSEQ is
    // the largest of them and of the expunges.
    let from_a = a.imap("f", "UID FETCH 1:* (MODSEQ)").await;
    let from_b = b.imap("f", "UID FETCH 1:* (FLAGS)").await;
    assert_eq!(modseqs(&from_a), [(2, flagged), (4, 5)], "{from_a:?}");
    assert_eq!(modseqs(&from_a), modseqs(&from_b), "{from_b:?}");
    let mut d = session(&imap).await;
    let status = d.imap("t", "STATUS INBOX (HIGHESTMODSEQ)").await;
    assert_eq!(number_after(&status, "HIGHESTMODSEQ"), start + 5);
    // A NOOP has nothing more for A or B.
    assert_eq!(a.imap("n", "NOOP").await, ["n OK Done"]);
    assert_eq!(b.imap("n", "NOOP").await, ["n OK Done"]);
    // With QRESYNC every FETCH answer names its UID, by number or not.
    let r = b.imap("f", "FETCH 1 (FLAGS)").await;
    assert_eq!(
        r[0],
        format!("* 1 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ ({flagged}))")
    );
    let r = b.imap("t", "STORE 2 +FLAGS.SILENT (\\Seen)").await;
    assert_eq!(r[0], format!("* 2 FETCH (UID 4 MODSEQ ({}))", start + 6));
}

#[tokio::test]
async fn a_client_reconnecting_with_qresync_learns_what_another_session_did() {
    let (_server, imap) = start_keeping(10_000).await;
    fill_inbox(&imap, &["one", "two", "three", "four", "five"]).await;
    let mut q = enabled(&imap, "QRESYNC").await;
    let r = q.imap("s", "SELECT INBOX").await;
    let uidvalidity = number_after(&r, "[UIDVALIDITY");
    let known = number_after(&r, "[HIGHESTMODSEQ");
    ok(&q.imap("o", "LOGOUT").await, "o");

    // Meanwhile: 2 is read, 4 and 5 expunged, a sixth message arrives.
    let mut other = session(&imap).await;
    ok(&other.imap("s", "SELECT INBOX").await, "s");
    ok(&other.imap("t", "STORE 2 +FLAGS (\\Seen)").await, "t");
    ok(&other.imap("t", "STORE 4:5 +FLAGS (\\Deleted)").await, "t");
    ok(&other.imap("x", "EXPUNGE").await, "x");
    let message = "Subject: six\r\n\r\nbody six\r\n";
    let append = format!("APPEND INBOX {{{}+}}\r\n{message}", message.len());
    ok(&other.imap("ap", &append).await, "ap");
    ok(&other.imap("n", "NOOP").await, "n");

    let mut q = enabled(&imap, "QRESYNC").await;
    let r = q
        .imap(
            "s",
            &format!("SELECT INBOX (QRESYNC ({uidvalidity} {known} 1:5))"),
        )
        .await;
    ok(&r, "s");
    let now = number_after(&r, "[HIGHESTMODSEQ");
    let vanished = r.iter().position(|l| l.starts_with("* VANISHED")).unwrap();
    assert_eq!(r[vanished], "* VANISHED (EARLIER) 4:5");
    // Only message 2 changed among those the client knows (6 is new; the
    // client learns of it from EXISTS).
    assert_eq!(
        r[vanished + 1..],
        [
            format!("* 2 FETCH (UID 2 FLAGS (\\Seen) MODSEQ ({}))", known + 1),
            "s OK [READ-WRITE] SELECT completed".into(),
        ]
    );
    assert!(r.contains(&"* 4 EXISTS".to_owned()), "{r:?}");

    // Selecting again with every UID: the new one is fetched too, and the
    // old mailbox is CLOSED first.
    let r = q
        .imap(
            "s",
            &format!("SELECT INBOX (QRESYNC ({uidvalidity} {known}))"),
        )
        .await;
    assert_eq!(r[0], "* OK [CLOSED] Previous mailbox closed");
    assert!(r.contains(&"* VANISHED (EARLIER) 4:5".to_owned()), "{r:?}");
    let fetched: Vec<&String> = r.iter().filter(|l| l.contains(" FETCH ")).collect();
    assert_eq!(fetched.len(), 2, "{r:?}");
    assert!(fetched[1].starts_with("* 4 FETCH (UID 6 FLAGS ("), "{r:?}");

    // UID FETCH with VANISHED says the same, in the range asked.
    let r = q
        .imap(
            "f",
            &format!("UID FETCH 3:* (FLAGS) (CHANGEDSINCE {known} VANISHED)"),
        )
        .await;
    assert_eq!(r[0], "* VANISHED (EARLIER) 4:5");
    assert!(r[1].starts_with("* 4 FETCH (UID 6 FLAGS ("), "{r:?}");
    ok(&r, "f");
    assert_eq!(r.len(), 3, "{r:?}");
    // Nothing changed since now.
    let r = q
        .imap(
            "f",
            &format!("UID FETCH 1:* (FLAGS) (CHANGEDSINCE {now} VANISHED)"),
        )
        .await;
    assert_eq!(r, ["f OK UID FETCH completed"]);
    // VANISHED needs UID FETCH.
    let r = q
        .imap(
            "f",
            &format!("FETCH 1:* (FLAGS) (CHANGEDSINCE {known} VANISHED)"),
        )
        .await;
    assert!(r[0].starts_with("f BAD"), "{r:?}");

    // Another UIDVALIDITY: the client's cache is no use, nothing is said.
    let r = q
        .imap(
            "s",
            &format!("SELECT INBOX (QRESYNC ({} {known}))", uidvalidity + 1),
        )
        .await;
    assert!(
        !r.iter()
            .any(|l| l.contains("VANISHED") || l.contains("FETCH")),
        "{r:?}"
    );
    ok(&r, "s");
}

#[tokio::test]
async fn unchangedsince_refuses_what_another_session_changed() {
    let (_server, imap) = start_keeping(10_000).await;
    fill_inbox(&imap, &["one", "two", "three"]).await;
    let mut a = enabled(&imap, "CONDSTORE").await;
    ok(&a.imap("s", "SELECT INBOX").await, "s");
    let r = a.imap("f", "FETCH 1:3 (MODSEQ)").await;
    let before = modseqs(&a.imap("f", "UID FETCH 1:3 (MODSEQ)").await);
    ok(&r, "f");
    let seen_by_a = before.iter().map(|m| m.1).max().unwrap();

    let mut b = session(&imap).await;
    ok(&b.imap("s", "SELECT INBOX").await, "s");
    ok(&b.imap("t", "STORE 2 +FLAGS (\\Seen)").await, "t");

    // Message 2 changed after the modseq A knows: refused, the others not.
    let r = a
        .imap(
            "t",
            &format!("STORE 1:3 (UNCHANGEDSINCE {seen_by_a}) +FLAGS (\\Flagged)"),
        )
        .await;
    let last = r.last().unwrap();
    assert_eq!(last, "t OK [MODIFIED 2] Conditional STORE failed");
    // (B's change to message 2 may come with it, as an update.)
    let fetches: Vec<&String> = r.iter().filter(|l| l.contains("(\\Flagged)")).collect();
    assert_eq!(fetches.len(), 2, "{r:?}");
    assert!(
        fetches[0].starts_with("* 1 FETCH (FLAGS (\\Flagged) MODSEQ ("),
        "{r:?}"
    );
    assert!(
        fetches[1].starts_with("* 3 FETCH (FLAGS (\\Flagged) MODSEQ ("),
        "{r:?}"
    );
    // B's change reaches A as an update (with its modseq), not as a
    // STORE answer; message 2 is not flagged.
    let flags = a.imap("f", "FETCH 2 (FLAGS)").await;
    assert!(
        flags
            .iter()
            .any(|l| l.starts_with("* 2 FETCH (FLAGS (\\Seen) MODSEQ (")),
        "{flags:?}"
    );

    // UID STORE names UIDs; UNCHANGEDSINCE 0 always fails.
    let r = a
        .imap("t", "UID STORE 1:3 (UNCHANGEDSINCE 0) -FLAGS (\\Flagged)")
        .await;
    assert_eq!(r, ["t OK [MODIFIED 1:3] Conditional STORE failed"]);
    // A store that passes and changes nothing still shows MODSEQ.
    let now = number_after(
        &a.imap("n", "STATUS INBOX (HIGHESTMODSEQ)").await,
        "HIGHESTMODSEQ",
    );
    let r = a
        .imap(
            "t",
            &format!("UID STORE 1 (UNCHANGEDSINCE {now}) +FLAGS (\\Flagged)"),
        )
        .await;
    assert!(
        r[0].starts_with("* 1 FETCH (FLAGS (\\Flagged) UID 1 MODSEQ ("),
        "{r:?}"
    );
    assert_eq!(r[1], "t OK UID STORE completed");

    // SEARCH MODSEQ, with the entry name and type set aside, and the
    // highest modseq of what matched.
    let flagged_at = modseqs(&a.imap("f", "UID FETCH 3 (MODSEQ)").await)[0].1;
    let r = a
        .imap(
            "q",
            &format!("SEARCH MODSEQ \"/flags/\\\\Flagged\" all {flagged_at}"),
        )
        .await;
    assert_eq!(r[0], format!("* SEARCH 3 (MODSEQ {flagged_at})"));
    let r = a.imap("q", &format!("UID SEARCH MODSEQ {}", now + 1)).await;
    assert_eq!(r[0], "* SEARCH");
    // CHANGEDSINCE: only what changed after it, with MODSEQ.
    let r = a
        .imap(
            "f",
            &format!("FETCH 1:* (UID) (CHANGEDSINCE {})", flagged_at - 1),
        )
        .await;
    assert_eq!(r[0], format!("* 3 FETCH (UID 3 MODSEQ ({flagged_at}))"));
    ok(&r, "f");
}

#[tokio::test]
async fn qresync_past_the_pruned_feed_still_reports_every_expunge() {
    let (server, imap) = start_keeping(5).await;
    fill_inbox(&imap, &["one", "two", "three", "four", "five", "six"]).await;
    let alice = server.store.account(ALICE).await.unwrap().unwrap();
    let mut other = session(&imap).await;
    ok(&other.imap("s", "SELECT INBOX").await, "s");
    // UID 1 goes before the client's modseq, UID 3 after it.
    ok(
        &other.imap("t", "UID STORE 1 +FLAGS (\\Deleted)").await,
        "t",
    );
    ok(&other.imap("x", "UID EXPUNGE 1").await, "x");

    let mut q = enabled(&imap, "QRESYNC").await;
    let r = q.imap("s", "SELECT INBOX").await;
    let uidvalidity = number_after(&r, "[UIDVALIDITY");
    let known = number_after(&r, "[HIGHESTMODSEQ");
    ok(&q.imap("o", "LOGOUT").await, "o");

    ok(
        &other.imap("t", "UID STORE 3 +FLAGS (\\Deleted)").await,
        "t",
    );
    ok(&other.imap("x", "UID EXPUNGE 3").await, "x");
    for round in 0..10 {
        let op = if round % 2 == 0 { '+' } else { '-' };
        let command = format!("UID STORE 5 {op}FLAGS (\\Answered)");
        ok(&other.imap("t", &command).await, "t");
    }
    // Wait until the tombstone of UID 3 is beyond what the store keeps.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let inbox = server
        .store
        .mailbox_index(alice.id, "INBOX")
        .await
        .unwrap()
        .mailbox;
    loop {
        match server
            .store
            .expunged_since(inbox, store::ModSeq(known))
            .await
        {
            Ok(store::ExpungedSince::Pruned { .. }) => break,
            other => assert!(
                std::time::Instant::now() < deadline,
                "not pruned: {other:?}"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let mut q = enabled(&imap, "QRESYNC").await;
    // The client knew UIDs 2:6: exactly 3 went.
    let r = q
        .imap(
            "s",
            &format!("SELECT INBOX (QRESYNC ({uidvalidity} {known} 2:6))"),
        )
        .await;
    ok(&r, "s");
    assert!(r.contains(&"* VANISHED (EARLIER) 3".to_owned()), "{r:?}");
    let fetched: Vec<&String> = r.iter().filter(|l| l.contains(" FETCH ")).collect();
    assert_eq!(fetched.len(), 1, "{r:?}");
    assert!(
        fetched[0].starts_with("* 3 FETCH (UID 5 FLAGS () MODSEQ ("),
        "{r:?}"
    );
    // Without the known UIDs, every gap: 1 again as well (RFC 7162
    // 3.2.5.1 lets the server say more than happened, never less).
    let r = q
        .imap(
            "s",
            &format!("SELECT INBOX (QRESYNC ({uidvalidity} {known}))"),
        )
        .await;
    assert!(r.contains(&"* VANISHED (EARLIER) 1,3".to_owned()), "{r:?}");
    let r = q
        .imap(
            "f",
            &format!("UID FETCH 2:* (FLAGS) (CHANGEDSINCE {known} VANISHED)"),
        )
        .await;
    assert_eq!(r[0], "* VANISHED (EARLIER) 3");
    ok(&r, "f");
    // With seq-match data (RFC 7162 3.2.5.2): the client had UIDs 2 and 3
    // at 1 and 2; 2 is still first, so nothing below it went since.
    let r = q
        .imap(
            "s",
            &format!("SELECT INBOX (QRESYNC ({uidvalidity} {known} (1:2 2:3)))"),
        )
        .await;
    assert!(r.contains(&"* VANISHED (EARLIER) 3".to_owned()), "{r:?}");
    ok(&r, "s");
}

#[tokio::test]
async fn esearch_and_sort_with_modseq_report_the_modseq_of_what_they_return() {
    let (_server, imap) = start_keeping(1000).await;
    fill_inbox(&imap, &["c", "a", "b"]).await;
    let mut c = session(&imap).await;
    ok(&c.imap("s", "SELECT INBOX (CONDSTORE)").await, "s");
    // Message 3 changed last, then message 1: modseqs 1 < 3 < 2 by
    // message number, after these flag changes.
    ok(&c.imap("f1", "STORE 3 +FLAGS (\\Flagged)").await, "f1");
    ok(&c.imap("f2", "STORE 1 +FLAGS (\\Seen)").await, "f2");
    let r = c.imap("m", "FETCH 1:3 (MODSEQ)").await;
    let by_number: Vec<u64> = (1..=3)
        .map(|n| {
            let line = r
                .iter()
                .find(|l| l.starts_with(&format!("* {n} FETCH")))
                .unwrap();
            number_after(std::slice::from_ref(line), "MODSEQ (")
        })
        .collect();
    assert!(
        by_number[0] > by_number[2] && by_number[2] > by_number[1],
        "{r:?}"
    );
    let highest = by_number[0];

    // MIN alone: message 1's modseq; MAX alone: message 3's, which is
    // not the highest of the result.
    let r = c.imap("e1", "SEARCH RETURN (MIN) MODSEQ 1").await;
    assert_eq!(
        r[0],
        format!("* ESEARCH (TAG \"e1\") MIN 1 MODSEQ {}", by_number[0])
    );
    let r = c.imap("e2", "SEARCH RETURN (MAX) MODSEQ 1").await;
    assert_eq!(
        r[0],
        format!("* ESEARCH (TAG \"e2\") MAX 3 MODSEQ {}", by_number[2])
    );
    let r = c.imap("e3", "SEARCH RETURN (COUNT) MODSEQ 1").await;
    assert_eq!(
        r[0],
        format!("* ESEARCH (TAG \"e3\") COUNT 3 MODSEQ {highest}")
    );
    // In sort order (subject a, b, c = messages 2, 3, 1), MIN is the first.
    let r = c
        .imap("e4", "SORT RETURN (MIN) (SUBJECT) UTF-8 MODSEQ 1")
        .await;
    assert_eq!(
        r[0],
        format!("* ESEARCH (TAG \"e4\") MIN 2 MODSEQ {}", by_number[1])
    );
    let r = c.imap("e5", "SORT (SUBJECT) UTF-8 MODSEQ 1").await;
    assert_eq!(r[0], format!("* SORT 2 3 1 (MODSEQ {highest})"));
    ok(&r, "e5");
    // Without a MODSEQ key, no MODSEQ.
    let r = c.imap("e6", "SORT (SUBJECT) UTF-8 ALL").await;
    assert_eq!(r[0], "* SORT 2 3 1");
}
