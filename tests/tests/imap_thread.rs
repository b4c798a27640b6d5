//! IMAP THREAD (RFC 5256: ORDEREDSUBJECT and REFERENCES; Dovecot's
//! REFS), black-box: imapd in this process beside smtpd, raw line clients
//! (a second session expunging a thread's root) and Python's imaplib.
//!
//! The conversation is about "Ärger im Büro", its subject RFC 2047
//! encoded in two charsets and written in three cases, so that only base
//! subjects compared under i;unicode-casemap bring it together.

use postern_tests::*;

const ALICE: &str = "alice@localhost";

/// `(subject, day in January 2026, Message-ID, extra header)`.
const MESSAGES: [(&str, u32, &str, &str); 8] = [
    // 1: the start of it.
    ("=?utf-8?q?=C3=84rger_im_B=C3=BCro?=", 1, "a1", ""),
    // 2: a reply to 1, by In-Reply-To.
    (
        "Re: =?iso-8859-1?q?=C4rger_im_B=FCro?=",
        3,
        "a2",
        "In-Reply-To: <a1@example.org>\r\n",
    ),
    // 3: a reply to 2, by References (written a day before 2's date).
    (
        "Re: Re: =?utf-8?q?=C3=A4rger_IM_b=C3=BCro?=",
        2,
        "a3",
        "References: <a1@example.org>\r\n <a2@example.org>\r\n",
    ),
    // 4: another conversation.
    ("Lunch", 5, "b1", ""),
    // 5: a reply to a message that is not here: joined to 1 by subject.
    (
        "Re: =?utf-8?q?=C3=84RGER_im_B=C3=BCro?=",
        4,
        "a4",
        "References: <missing@example.org>\r\n",
    ),
    // 6: a forward of 4, by subject only.
    ("Fwd: lunch", 6, "b2", ""),
    // 7 and 8: two replies to the same missing message.
    ("Budget", 7, "c1", "References: <gone@example.org>\r\n"),
    ("Re: Budget", 8, "c2", "References: <gone@example.org>\r\n"),
];

fn corpus() -> Vec<Vec<u8>> {
    MESSAGES
        .iter()
        .map(|(subject, day, id, extra)| {
            format!(
                "From: someone@example.org\r\n\
To: alice@localhost\r\n\
Subject: {subject}\r\n\
Date: Thu, {day:02} Jan 2026 10:00:00 +0000\r\n\
Message-ID: <{id}@example.org>\r\n\
{extra}\
\r\n\
text\r\n"
            )
            .into_bytes()
        })
        .collect()
}

async fn start() -> (Server, ImapServer) {
    let server = Server::start().await;
    let imap = ImapServer::start_with(&server, |_| {}).await;
    let corpus = corpus();
    server.send_messages(ALICE, &corpus).await;
    server.wait_for_inbox(ALICE, corpus.len()).await;
    (server, imap)
}

/// The `* THREAD` data of a THREAD that must succeed.
async fn thread(c: &mut Pop3Client, command: &str) -> String {
    let r = c.imap("t", command).await;
    assert_eq!(r.len(), 2, "{command}: {r:?}");
    assert!(r[1].starts_with("t OK "), "{command}: {r:?}");
    r[0].strip_prefix("* THREAD")
        .unwrap_or_else(|| panic!("{command}: {r:?}"))
        .trim_start()
        .to_owned()
}

#[tokio::test]
async fn the_three_algorithms() {
    let (_server, imap) = start().await;
    let mut c = alice_in_inbox(&imap).await;
    let r = c.imap("c", "CAPABILITY").await;
    for cap in ["THREAD=REFERENCES", "THREAD=ORDEREDSUBJECT", "THREAD=REFS"] {
        assert!(r[0].split(' ').any(|c| c == cap), "{cap}: {r:?}");
    }
    // REFERENCES: 2 and 3 by their headers, 5 and 6 by subject; the two
    // replies to a missing message under a dummy; each level by date.
    assert_eq!(
        thread(&mut c, "THREAD REFERENCES UTF-8 ALL").await,
        "(1 (2 3)(5))(4 6)((7)(8))"
    );
    // REFS: no gathering by subject; threads by their newest message.
    assert_eq!(
        thread(&mut c, "THREAD REFS UTF-8 ALL").await,
        "(1 2 3)(5)(4)(6)((7)(8))"
    );
    // ORDEREDSUBJECT: by base subject, each thread's first message the
    // parent of the rest in date order.
    assert_eq!(
        thread(&mut c, "THREAD ORDEREDSUBJECT UTF-8 ALL").await,
        "(1 (3)(2)(5))(4 6)(7 8)"
    );
    // Only the messages the criteria find are threaded.
    assert_eq!(
        thread(&mut c, "THREAD REFERENCES US-ASCII SUBJECT lunch").await,
        "(4 6)"
    );
    assert_eq!(
        thread(&mut c, "THREAD REFERENCES UTF-8 SUBJECT nothing").await,
        ""
    );
    let r = c.imap("x", "THREAD REFERENCES KOI8-R ALL").await;
    assert!(r[0].starts_with("x NO [BADCHARSET"), "{r:?}");
    let r = c.imap("y", "THREAD KNOTS UTF-8 ALL").await;
    assert!(r[0].starts_with("y BAD"), "{r:?}");
}

/// Another session expunges the conversation's first message: its replies
/// now hang from a missing message, and the UIDs and sequence numbers of
/// the answers differ.
#[tokio::test]
async fn threads_after_another_session_expunges() {
    let (_server, imap) = start().await;
    let mut reader = alice_in_inbox(&imap).await;
    let mut other = alice_in_inbox(&imap).await;
    let r = other.imap("d", "STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    assert!(r.last().unwrap().starts_with("d OK"), "{r:?}");
    let r = other.imap("e", "EXPUNGE").await;
    assert!(r.contains(&"* 1 EXPUNGE".to_owned()), "{r:?}");
    let r = reader.imap("n", "NOOP").await;
    assert!(r.contains(&"* 1 EXPUNGE".to_owned()), "{r:?}");
    // 2 (with 3 below it) and 5 are both replies now: a dummy over them.
    assert_eq!(
        thread(&mut reader, "UID THREAD REFERENCES UTF-8 ALL").await,
        "((2 3)(5))(4 6)((7)(8))"
    );
    assert_eq!(
        thread(&mut reader, "THREAD REFERENCES UTF-8 ALL").await,
        "((1 2)(4))(3 5)((6)(7))"
    );
    assert_eq!(
        thread(&mut reader, "UID THREAD ORDEREDSUBJECT UTF-8 ALL").await,
        "(3 (2)(5))(4 6)(7 8)"
    );
}

/// imaplib: THREAD and UID THREAD as a real client sends them.
const IMAPLIB_THREAD: &str = r#"
typ, data = m.thread("REFERENCES", "UTF-8", "ALL")
print("REFERENCES", typ, data)
typ, data = m.uid("THREAD", "ORDEREDSUBJECT", "UTF-8", "ALL")
print("UID", typ, data)
m.logout()
"#;

#[tokio::test]
async fn imaplib_threads() {
    let (_server, imap) = start().await;
    let stdout = imaplib_as_alice(&imap, IMAPLIB_THREAD).await;
    assert!(
        stdout.contains("REFERENCES OK [b'(1 (2 3)(5))(4 6)((7)(8))']"),
        "{stdout}"
    );
    assert!(
        stdout.contains("UID OK [b'(1 (3)(2)(5))(4 6)(7 8)']"),
        "{stdout}"
    );
}
