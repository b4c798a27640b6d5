//! IMAP SORT (RFC 5256, SORT=DISPLAY RFC 5957), ESORT and CONTEXT=SORT,
//! ESEARCH (RFC 4731), SEARCHRES (RFC 5182), WITHIN (RFC 5032) and
//! CONTEXT=SEARCH (RFC 5267), black-box: imapd in this process beside
//! smtpd, raw line clients (two sessions where one watches what the other
//! does) and Python's imaplib as a real client.
//!
//! The corpus has international subjects and names, RFC 2047 encoded, that
//! only sort right under i;unicode-casemap: `Äpfel` between `apple` and
//! `banana`, `über` and `ÜBER` equal, `Émile` with the E's.

use postern_tests::*;

const ALICE: &str = "alice@localhost";

/// Five messages, in arrival order. Sizes grow with the number, but for
/// the padding that makes the fourth the largest.
fn corpus() -> Vec<Vec<u8>> {
    vec![
        // 1
        "From: =?utf-8?q?Zo=C3=AB_Zander?= <zoe@example.org>\r\n\
To: bob@example.org\r\n\
Cc: carol@example.org\r\n\
Subject: =?utf-8?q?=C3=9Cber_alles?=\r\n\
Date: Sun, 01 Mar 2026 10:00:00 +0000\r\n\
\r\n\
one\r\n"
            .into(),
        // 2
        "From: adam@example.org\r\n\
To: Yves <yves@example.org>\r\n\
Subject: Re: =?iso-8859-1?q?=FCber_ALLES?=\r\n\
Date: Thu, 01 Jan 2026 10:00:00 +0000\r\n\
\r\n\
two two\r\n"
            .into(),
        // 3
        "From: =?utf-8?q?=C3=89mile?= <emile@example.org>\r\n\
To: =?utf-8?q?=C3=84nne?= <xavier@example.org>\r\n\
Cc: Bob <aaron@example.org>\r\n\
Subject: =?iso-8859-1?q?=C4pfel?=\r\n\
Date: Sun, 01 Feb 2026 10:00:00 +0100\r\n\
\r\n\
three three three\r\n"
            .into(),
        // 4
        format!(
            "From: Eve <eve@example.org>\r\n\
To: adam@example.org\r\n\
Subject: [list] Fwd: banana (fwd)\r\n\
Date: Sun, 01 Feb 2026 08:00:00 +0000\r\n\
\r\n\
{}\r\n",
            "padding ".repeat(200)
        )
        .into_bytes(),
        // 5: no Date:, so its arrival (today) is its date.
        "From: Bob <bob@example.org>\r\n\
To: zed@example.org\r\n\
Subject: apple\r\n\
\r\n\
five five five five\r\n"
            .into(),
    ]
}

async fn start() -> (Server, ImapServer, Pop3Client) {
    let server = Server::start().await;
    let imap = ImapServer::start_with(&server, |_| {}).await;
    let corpus = corpus();
    server.send_messages(ALICE, &corpus).await;
    server.wait_for_inbox(ALICE, corpus.len()).await;
    let c = alice_in_inbox(&imap).await;
    (server, imap, c)
}

/// The untagged `* NAME …` line of a command that must succeed, without
/// `* NAME `.
async fn answer(c: &mut Pop3Client, name: &str, command: &str) -> String {
    let r = c.imap("t", command).await;
    assert!(
        r.last().expect("reply").starts_with("t OK "),
        "{command}: {r:?}"
    );
    let prefix = format!("* {name}");
    let lines: Vec<&String> = r.iter().filter(|l| l.starts_with(&prefix)).collect();
    assert_eq!(lines.len(), 1, "{command}: {r:?}");
    lines[0][prefix.len()..].trim_start().to_owned()
}

async fn sort(c: &mut Pop3Client, command: &str) -> String {
    answer(c, "SORT", command).await
}

#[tokio::test]
async fn every_sort_key_with_international_text() {
    let (_server, _imap, mut c) = start().await;
    let caps = answer(&mut c, "CAPABILITY", "CAPABILITY").await;
    for cap in [
        "SORT",
        "SORT=DISPLAY",
        "ESORT",
        "I18NLEVEL=1",
        "ESEARCH",
        "SEARCHRES",
        "WITHIN",
        "CONTEXT=SEARCH",
        "CONTEXT=SORT",
    ] {
        assert!(caps.split(' ').any(|c| c == cap), "{cap}: {caps}");
    }
    let cases = [
        // Base subjects: APPLE, ÄPFEL, BANANA, ÜBER ALLES twice (a tie
        // keeps mailbox order; "Re:" and the encoding make no difference).
        ("SORT (SUBJECT) UTF-8 ALL", "5 3 4 1 2"),
        ("SORT (REVERSE SUBJECT) UTF-8 ALL", "1 2 4 3 5"),
        // Dates in UTC (3's 10:00 +0100 is after 4's 08:00); the undated
        // message takes its arrival (today).
        ("SORT (DATE) UTF-8 ALL", "2 4 3 1 5"),
        ("SORT (REVERSE DATE) US-ASCII ALL", "5 1 3 4 2"),
        // Delivered in order (within a second or so: equal internal
        // dates keep mailbox order).
        ("SORT (ARRIVAL) UTF-8 ALL", "1 2 3 4 5"),
        // Local parts: adam, bob, emile, eve, zoe.
        ("SORT (FROM) UTF-8 ALL", "2 5 3 4 1"),
        // Display names: adam@…, Bob, Eve, Émile, Zoë: É decomposes to E
        // and a combining accent, which sorts after V.
        ("SORT (DISPLAYFROM) UTF-8 ALL", "2 5 4 3 1"),
        // To local parts: adam, bob, xavier, yves, zed.
        ("SORT (TO) UTF-8 ALL", "4 1 3 2 5"),
        // Display: adam@…, Änne (as Anne), bob@…, Yves, zed@….
        ("SORT (DISPLAYTO) UTF-8 ALL", "4 3 1 2 5"),
        // Cc: none (empty, first) for 2, 4, 5; then aaron, carol.
        ("SORT (CC) UTF-8 ALL", "2 4 5 3 1"),
        // Several keys: subject, then newest first among equals.
        ("SORT (SUBJECT REVERSE DATE) UTF-8 ALL", "5 3 4 1 2"),
        ("SORT (SUBJECT) UTF-8 NOT SUBJECT apple", "3 4 1 2"),
        ("SORT (SUBJECT) UTF-8 2:4", "3 4 2"),
    ];
    for (command, want) in cases {
        assert_eq!(sort(&mut c, command).await, want, "{command}");
    }
    // SIZE: as RFC822.SIZE says, ties in mailbox order.
    let r = c.imap("f", "FETCH 1:* (RFC822.SIZE)").await;
    let mut sizes: Vec<(u64, u32)> = r
        .iter()
        .filter_map(|l| {
            let seq = l.strip_prefix("* ")?.split(' ').next()?.parse().ok()?;
            let size = l.split("RFC822.SIZE ").nth(1)?.trim_end_matches(')');
            Some((size.parse().ok()?, seq))
        })
        .collect();
    assert_eq!(sizes.len(), 5, "{r:?}");
    sizes.sort();
    let by_size: Vec<String> = sizes.iter().map(|(_, s)| s.to_string()).collect();
    assert_eq!(
        sort(&mut c, "SORT (SIZE) UTF-8 ALL").await,
        by_size.join(" ")
    );
    assert_eq!(sizes.last().map(|s| s.1), Some(4), "{sizes:?}");
    sizes.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let by_size: Vec<String> = sizes.iter().map(|(_, s)| s.to_string()).collect();
    assert_eq!(
        sort(&mut c, "SORT (REVERSE SIZE) UTF-8 ALL").await,
        by_size.join(" ")
    );
    // UID SORT answers UIDs, which are 1..5 here too; after an expunge
    // the two differ.
    let r = c.imap("d", "STORE 3 +FLAGS (\\Deleted)").await;
    assert!(r.last().unwrap().starts_with("d OK"), "{r:?}");
    let r = c.imap("e", "EXPUNGE").await;
    assert!(r.iter().any(|l| l == "* 3 EXPUNGE"), "{r:?}");
    assert_eq!(sort(&mut c, "SORT (SUBJECT) UTF-8 ALL").await, "4 3 1 2");
    assert_eq!(
        sort(&mut c, "UID SORT (SUBJECT) UTF-8 ALL").await,
        "5 4 1 2"
    );
    // An unknown charset is refused with the ones that work.
    let r = c.imap("x", "SORT (SUBJECT) KOI8-R ALL").await;
    assert!(
        r.last()
            .unwrap()
            .starts_with("x NO [BADCHARSET (UTF-8 US-ASCII)]"),
        "{r:?}"
    );
    let r = c.imap("y", "SORT (SUBJECT COLOUR) UTF-8 ALL").await;
    assert!(r.last().unwrap().starts_with("y BAD"), "{r:?}");
}

#[tokio::test]
async fn esearch_esort_and_partial() {
    let (_server, _imap, mut c) = start().await;
    let r = c.imap("s", "STORE 2,4 +FLAGS (\\Seen)").await;
    assert!(r.last().unwrap().starts_with("s OK"), "{r:?}");
    let cases = [
        (
            "SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN",
            "(TAG \"t\") MIN 1 MAX 5 COUNT 3 ALL 1,3,5",
        ),
        ("SEARCH RETURN () ALL", "(TAG \"t\") ALL 1:5"),
        ("UID SEARCH RETURN (COUNT) SEEN", "(TAG \"t\") UID COUNT 2"),
        ("SEARCH RETURN (MIN MAX) 99", "(TAG \"t\")"),
        (
            "SEARCH RETURN (COUNT) SUBJECT nowhere",
            "(TAG \"t\") COUNT 0",
        ),
        (
            "SEARCH RETURN (PARTIAL 2:3) ALL",
            "(TAG \"t\") PARTIAL (2:3 2:3)",
        ),
        (
            "SEARCH RETURN (PARTIAL 4:9) UNSEEN",
            "(TAG \"t\") PARTIAL (4:9 NIL)",
        ),
        // ESORT: MIN and MAX are first and last in sort order.
        (
            "SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 ALL",
            "(TAG \"t\") MIN 5 MAX 2 COUNT 5 ALL 5,3:4,1:2",
        ),
        (
            "SORT RETURN (PARTIAL 2:3) (REVERSE DATE) UTF-8 ALL",
            "(TAG \"t\") PARTIAL (2:3 1,3)",
        ),
        (
            "UID SORT RETURN (ALL) (DATE) UTF-8 SEEN",
            "(TAG \"t\") UID ALL 2,4",
        ),
    ];
    for (command, want) in cases {
        assert_eq!(answer(&mut c, "ESEARCH", command).await, want, "{command}");
    }
    // ESEARCH says MODSEQ when the criteria ask about modseqs.
    let r = answer(&mut c, "ESEARCH", "SEARCH RETURN (COUNT) MODSEQ 1").await;
    assert!(r.starts_with("(TAG \"t\") COUNT 5 MODSEQ "), "{r}");
    let r = c.imap("b", "SEARCH RETURN (PARTIAL 1:*) ALL").await;
    assert!(r.last().unwrap().starts_with("b BAD"), "{r:?}");
}

#[tokio::test]
async fn saved_results_stand_in_for_sets() {
    let (_server, _imap, mut c) = start().await;
    // SAVE alone answers nothing but the tagged OK.
    let r = c.imap("a", "SEARCH RETURN (SAVE) SUBJECT apple").await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].starts_with("a OK"), "{r:?}");
    // "apple" is in 5 only (ÄPFEL is not "apple").
    let r = c.imap("b", "FETCH $ (UID)").await;
    assert_eq!(r[0], "* 5 FETCH (UID 5)", "{r:?}");
    assert_eq!(r.len(), 2, "{r:?}");
    // Pipelined: save, then use it at once (RFC 5182's point).
    c.send(
        b"c UID SEARCH RETURN (SAVE) OR SUBJECT alles FROM eve\r\n\
d UID STORE $ +FLAGS (\\Flagged)\r\n",
    )
    .await;
    let r = c.until_tag("d").await;
    assert!(r.last().unwrap().starts_with("d OK"), "{r:?}");
    let flagged: Vec<&String> = r.iter().filter(|l| l.contains("\\Flagged")).collect();
    assert_eq!(flagged.len(), 3, "{r:?}");
    assert_eq!(
        answer(&mut c, "SEARCH", "SEARCH FLAGGED").await,
        "1 2 4",
        "STORE $ flagged the saved messages"
    );
    // $ as a search key, and in a UID set key.
    assert_eq!(
        answer(&mut c, "SEARCH", "SEARCH $ SUBJECT alles").await,
        "1 2"
    );
    assert_eq!(answer(&mut c, "SEARCH", "SEARCH NOT UID $").await, "3 5");
    // MIN and MAX with SAVE keep only those.
    let r = answer(&mut c, "ESEARCH", "SEARCH RETURN (SAVE MIN MAX) ALL").await;
    assert_eq!(r, "(TAG \"t\") MIN 1 MAX 5");
    assert_eq!(answer(&mut c, "SEARCH", "SEARCH $").await, "1 5");
    // COPY $ and an expunge: the saved result follows the messages.
    let r = c.imap("k", "CREATE Kept").await;
    assert!(r.last().unwrap().starts_with("k OK"), "{r:?}");
    let r = c.imap("m", "COPY $ Kept").await;
    assert!(r.last().unwrap().starts_with("m OK"), "{r:?}");
    let r = c.imap("n", "STATUS Kept (MESSAGES)").await;
    assert!(r[0].ends_with("(MESSAGES 2)"), "{r:?}");
    let r = c.imap("x", "STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    assert!(r.last().unwrap().starts_with("x OK"), "{r:?}");
    let r = c.imap("y", "EXPUNGE").await;
    assert!(r.last().unwrap().starts_with("y OK"), "{r:?}");
    // 5 is now 4; 1 is gone.
    assert_eq!(answer(&mut c, "SEARCH", "SEARCH $").await, "4");
    let r = c.imap("f", "FETCH $ (UID)").await;
    assert_eq!(r[0], "* 4 FETCH (UID 5)", "{r:?}");
    // A failed SAVE empties it; so does SELECT.
    let r = c.imap("g", "SEARCH RETURN (SAVE) CHARSET KOI8-R ALL").await;
    assert!(r.last().unwrap().starts_with("g NO [BADCHARSET"), "{r:?}");
    assert_eq!(answer(&mut c, "SEARCH", "SEARCH $").await, "");
    let r = c.imap("h", "SEARCH RETURN (SAVE) ALL").await;
    assert!(r.last().unwrap().starts_with("h OK"), "{r:?}");
    let r = c.imap("i", "SELECT INBOX").await;
    assert!(r.last().unwrap().starts_with("i OK"), "{r:?}");
    let r = c.imap("j", "FETCH $ (UID)").await;
    assert_eq!(r.len(), 1, "an empty $ fetches nothing: {r:?}");
    assert!(r[0].starts_with("j OK"), "{r:?}");
}

#[tokio::test]
async fn within_compares_the_internal_date() {
    let (_server, _imap, mut c) = start().await;
    // Delivered just now: younger than an hour, none older.
    assert_eq!(
        answer(&mut c, "SEARCH", "SEARCH YOUNGER 3600").await,
        "1 2 3 4 5"
    );
    assert_eq!(answer(&mut c, "SEARCH", "SEARCH OLDER 3600").await, "");
    // An APPEND with an old internal date is older.
    let message = "Subject: old\r\n\r\nold\r\n";
    let r = c
        .imap(
            "a",
            &format!(
                "APPEND INBOX \"01-Jan-2020 00:00:00 +0000\" {{{}+}}\r\n{message}",
                message.len()
            ),
        )
        .await;
    assert!(r.last().unwrap().starts_with("a OK"), "{r:?}");
    let noop = c.imap("n", "NOOP").await;
    assert!(
        r.iter().chain(&noop).any(|l| l == "* 6 EXISTS"),
        "{r:?} {noop:?}"
    );
    assert_eq!(answer(&mut c, "SEARCH", "SEARCH OLDER 3600").await, "6");
    assert_eq!(
        answer(&mut c, "SEARCH", "SEARCH NOT YOUNGER 86400 SUBJECT old").await,
        "6"
    );
    // Its Date: field does not count: SORT (ARRIVAL) is by internal date.
    assert_eq!(
        sort(&mut c, "SORT (ARRIVAL) UTF-8 ALL").await,
        "6 1 2 3 4 5"
    );
    let reverse = sort(&mut c, "SORT (REVERSE ARRIVAL) UTF-8 ALL").await;
    assert!(reverse.ends_with(" 6"), "{reverse}");
}

/// One session keeps a search and a sort live; another changes flags,
/// delivers and expunges; the first learns of it after its next command.
#[tokio::test]
async fn live_results_follow_other_sessions() {
    let (server, imap, mut watcher) = start().await;
    let mut other = alice_in_inbox(&imap).await;
    let r = watcher
        .imap("s1", "SEARCH RETURN (UPDATE COUNT) FLAGGED")
        .await;
    assert_eq!(r[0], "* ESEARCH (TAG \"s1\") COUNT 0", "{r:?}");
    let r = watcher
        .imap("s2", "SORT RETURN (UPDATE ALL) (SUBJECT) UTF-8 UNSEEN")
        .await;
    assert_eq!(r[0], "* ESEARCH (TAG \"s2\") ALL 5,3:4,1:2", "{r:?}");

    let r = other
        .imap("a", "STORE 2,4 +FLAGS.SILENT (\\Flagged \\Seen)")
        .await;
    assert!(r.last().unwrap().starts_with("a OK"), "{r:?}");
    let r = watcher.imap("n1", "NOOP").await;
    assert!(
        r.contains(&"* ESEARCH (TAG \"s1\") ADDTO (1 2,4)".to_owned()),
        "{r:?}"
    );
    // 4 and 2 leave the sorted unseen list at positions 3 and 5.
    assert!(
        r.contains(&"* ESEARCH (TAG \"s2\") REMOVEFROM (3 4 5 2)".to_owned()),
        "{r:?}"
    );

    // New mail: unseen, and subject "aardvark" sorts first.
    let aardvark = b"Subject: aardvark\r\n\r\nhi\r\n".to_vec();
    server.send_messages(ALICE, &[aardvark]).await;
    server.wait_for_inbox(ALICE, 6).await;
    let r = watcher.imap("n2", "NOOP").await;
    assert!(r.contains(&"* 6 EXISTS".to_owned()), "{r:?}");
    assert!(
        r.contains(&"* ESEARCH (TAG \"s2\") ADDTO (1 6)".to_owned()),
        "{r:?}"
    );
    assert!(!r.iter().any(|l| l.contains("\"s1\"")), "{r:?}");

    // The other session expunges a flagged message: it leaves s1 before
    // its EXPUNGE is announced, numbered as the watcher still knows it.
    let r = other.imap("b", "STORE 4 +FLAGS.SILENT (\\Deleted)").await;
    assert!(r.last().unwrap().starts_with("b OK"), "{r:?}");
    let r = other.imap("c", "EXPUNGE").await;
    assert!(r.last().unwrap().starts_with("c OK"), "{r:?}");
    let r = watcher.imap("n3", "NOOP").await;
    let removed = r
        .iter()
        .position(|l| l == "* ESEARCH (TAG \"s1\") REMOVEFROM (2 4)")
        .unwrap_or_else(|| panic!("{r:?}"));
    let expunged = r
        .iter()
        .position(|l| l == "* 4 EXPUNGE")
        .unwrap_or_else(|| panic!("{r:?}"));
    assert!(removed < expunged, "{r:?}");

    // CANCELUPDATE stops one; the other goes on.
    let r = watcher.imap("x", "CANCELUPDATE \"s1\"").await;
    assert!(r.last().unwrap().starts_with("x OK"), "{r:?}");
    let r = watcher.imap("y", "CANCELUPDATE \"s1\"").await;
    assert!(r.last().unwrap().starts_with("y BAD"), "{r:?}");
    let r = other
        .imap("d", "STORE 1 +FLAGS.SILENT (\\Flagged \\Seen)")
        .await;
    assert!(r.last().unwrap().starts_with("d OK"), "{r:?}");
    let r = watcher.imap("n4", "NOOP").await;
    assert!(!r.iter().any(|l| l.contains("\"s1\"")), "{r:?}");
    // Unseen sorted was 6 (aardvark), 5, 3, 1: 1 leaves at position 4.
    assert!(
        r.contains(&"* ESEARCH (TAG \"s2\") REMOVEFROM (4 1)".to_owned()),
        "{r:?}"
    );
    // A new SELECT forgets the rest.
    let r = watcher.imap("z", "SELECT INBOX").await;
    assert!(r.last().unwrap().starts_with("z OK"), "{r:?}");
    let r = other.imap("e", "STORE 3 +FLAGS.SILENT (\\Seen)").await;
    assert!(r.last().unwrap().starts_with("e OK"), "{r:?}");
    let r = watcher.imap("n5", "NOOP").await;
    assert!(!r.iter().any(|l| l.contains("ESEARCH")), "{r:?}");
}

/// imaplib: SORT and UID SORT as a real client sends them.
const IMAPLIB_SORT: &str = r#"
typ, data = m.capability()
assert b"SORT" in data[0].split(), data
typ, data = m.sort("(SUBJECT)", "UTF-8", "ALL")
print("SUBJECT", typ, data)
typ, data = m.sort("(REVERSE DATE)", "UTF-8", "ALL")
print("DATE", typ, data)
typ, data = m.uid("SORT", "(DISPLAYFROM)", "UTF-8", "ALL")
print("UID", typ, data)
m.logout()
"#;

#[tokio::test]
async fn imaplib_sorts() {
    let server = Server::start().await;
    let imap = ImapServer::start_with(&server, |_| {}).await;
    let corpus = corpus();
    server.send_messages(ALICE, &corpus).await;
    server.wait_for_inbox(ALICE, corpus.len()).await;
    let stdout = imaplib_as_alice(&imap, IMAPLIB_SORT).await;
    assert!(stdout.contains("SUBJECT OK [b'5 3 4 1 2']"), "{stdout}");
    assert!(stdout.contains("DATE OK [b'5 1 3 4 2']"), "{stdout}");
    assert!(stdout.contains("UID OK [b'2 5 4 3 1']"), "{stdout}");
}

/// During IDLE a live search reports at once what another session did.
#[tokio::test]
async fn live_results_during_idle() {
    let (_server, imap, mut watcher) = start().await;
    let mut other = alice_in_inbox(&imap).await;
    let r = watcher
        .imap("s1", "UID SEARCH RETURN (UPDATE ALL) UNSEEN")
        .await;
    assert_eq!(r[0], "* ESEARCH (TAG \"s1\") UID ALL 1:5", "{r:?}");
    watcher.send(b"i IDLE\r\n").await;
    assert_eq!(watcher.line().await, "+ idling");
    let r = other.imap("a", "STORE 3 +FLAGS.SILENT (\\Seen)").await;
    assert!(r.last().unwrap().starts_with("a OK"), "{r:?}");
    let mut seen = Vec::new();
    loop {
        let line = watcher.line().await;
        let done = line.starts_with("* ESEARCH");
        seen.push(line);
        if done {
            break;
        }
    }
    assert_eq!(
        seen.last().unwrap(),
        "* ESEARCH (TAG \"s1\") UID REMOVEFROM (3 3)",
        "{seen:?}"
    );
    watcher.send(b"DONE\r\n").await;
    let r = watcher.until_tag("i").await;
    assert!(r.last().unwrap().starts_with("i OK"), "{r:?}");
}

/// SORT and THREAD keep what they compare of each message in a
/// per-mailbox index shared by every session: it stays right while
/// another session changes flags, expunges and gets new mail, and two
/// sessions that sort at once (filling it together) agree. The same with
/// `[imap] sort_cache_mb = 0`, where nothing is kept between commands.
#[tokio::test]
async fn the_sort_index_follows_other_sessions_changes() {
    for budget in [16, 0] {
        let server = Server::start().await;
        let imap = ImapServer::start_with(&server, |c| c.imap.sort_cache_mb = budget).await;
        let corpus = corpus();
        server.send_messages(ALICE, &corpus).await;
        server.wait_for_inbox(ALICE, corpus.len()).await;
        let mut a = alice_in_inbox(&imap).await;
        let mut b = alice_in_inbox(&imap).await;

        // Both sessions sort at once, before anything is kept.
        let (x, y) = tokio::join!(
            sort(&mut a, "SORT (SUBJECT) UTF-8 ALL"),
            sort(&mut b, "SORT (REVERSE DATE) UTF-8 ALL")
        );
        assert_eq!((x.as_str(), y.as_str()), ("5 3 4 1 2", "5 1 3 4 2"));
        let (x, y) = tokio::join!(
            answer(&mut a, "THREAD", "THREAD REFERENCES UTF-8 ALL"),
            answer(&mut b, "THREAD", "THREAD ORDEREDSUBJECT UTF-8 ALL")
        );
        // 2 is a reply to 1 by subject; 3 (09:00Z) is after 4 (08:00Z).
        assert_eq!(x, "(4)(3)(1 2)(5)", "budget {budget}");
        assert_eq!(y, "(2 1)(4)(3)(5)", "budget {budget}");

        // Flags change what matches, not how it sorts.
        let r = b.imap("f", "STORE 2,5 +FLAGS.SILENT (\\Seen)").await;
        assert!(r.last().unwrap().starts_with("f OK"), "{r:?}");
        assert_eq!(sort(&mut a, "SORT (SUBJECT) UTF-8 UNSEEN").await, "3 4 1");
        assert_eq!(sort(&mut a, "SORT (SUBJECT) UTF-8 ALL").await, "5 3 4 1 2");

        // b expunges 3 (Äpfel); a sorts by UID (which may tell it of the
        // expunge), then by its new sequence numbers.
        let r = b.imap("d", "STORE 3 +FLAGS.SILENT (\\Deleted)").await;
        assert!(r.last().unwrap().starts_with("d OK"), "{r:?}");
        let r = b.imap("e", "EXPUNGE").await;
        assert!(r.last().unwrap().starts_with("e OK"), "{r:?}");
        assert_eq!(sort(&mut b, "SORT (SUBJECT) UTF-8 ALL").await, "4 3 1 2");
        assert_eq!(
            sort(&mut a, "UID SORT (SUBJECT) UTF-8 ALL").await,
            "5 4 1 2"
        );
        let r = a.imap("n", "NOOP").await;
        assert!(r.last().unwrap().starts_with("n OK"), "{r:?}");
        assert_eq!(sort(&mut a, "SORT (SUBJECT) UTF-8 ALL").await, "4 3 1 2");

        // New mail: a new first subject, and a reply to a message that
        // is not there.
        let reply = b"Subject: Re: anything\r\n\
Message-ID: <r@x>\r\n\
In-Reply-To: <none@x>\r\n\
Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n\
\r\n\
hi\r\n"
            .to_vec();
        let aardvark = b"Subject: aardvark\r\n\r\nhi\r\n".to_vec();
        server.send_messages(ALICE, &[aardvark, reply]).await;
        server.wait_for_inbox(ALICE, 6).await;
        for c in [&mut a, &mut b] {
            let r = c.imap("n", "NOOP").await;
            assert!(r.contains(&"* 6 EXISTS".to_owned()), "{r:?}");
        }
        let (x, y) = tokio::join!(
            sort(&mut a, "UID SORT (SUBJECT) UTF-8 ALL"),
            sort(&mut b, "UID SORT (SUBJECT) UTF-8 ALL")
        );
        assert_eq!(x, "6 7 5 4 1 2", "budget {budget}");
        assert_eq!(x, y);
        assert_eq!(
            answer(&mut a, "THREAD", "UID THREAD REFERENCES UTF-8 ALL").await,
            "(4)(1 2)(7)(5)(6)",
            "budget {budget}"
        );
    }
}
