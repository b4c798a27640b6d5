//! IMAP SEARCH and UID SEARCH, black-box: imapd in this process beside
//! smtpd, a raw line client for exact responses and Python's imaplib as a
//! real client.
//!
//! `\Recent` is not yet set by SELECT, so RECENT and NEW match nothing here
//! and OLD everything.

use std::time::{SystemTime, UNIX_EPOCH};

use postern_tests::*;

const ALICE: &str = "alice@localhost";

/// Four messages that the key families tell apart. Sizes: the third is
/// over 4000 octets, the others well under.
fn corpus() -> Vec<Vec<u8>> {
    let one = "From: Alice Smith <alice@example.com>\r\n\
To: bob@example.org\r\n\
Cc: Carol <carol@example.net>\r\n\
Subject: Quarterly report\r\n\
Date: Mon, 02 Feb 2026 10:00:00 +0000\r\n\
X-Priority: high\r\n\
\r\n\
The numbers are attached.\r\n";
    let two = "From: bob@example.org\r\n\
To: Alice <alice@localhost>\r\n\
Bcc: dave@example.com\r\n\
Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\n\
Date: Sun, 15 Mar 2026 23:30:00 -0500\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Caf=C3=A9 meeting tomorrow\r\n";
    let three = format!(
        "From: Carol <carol@example.net>\r\n\
To: alice@localhost\r\n\
Subject: lunch?\r\n\
\r\n\
{}\r\nthe secret word\r\n",
        "filler line\r\n".repeat(400)
    );
    let four = "From: Dave <dave@example.com>\r\n\
To: alice@localhost\r\n\
Subject: Re: Quarterly report\r\n\
Date: Tue, 10 Nov 2026 08:00:00 +0100\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"sep\"\r\n\
\r\n\
--sep\r\n\
Content-Type: text/plain\r\n\
\r\n\
See below.\r\n\
--sep\r\n\
Content-Type: text/plain\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
aGlkZGVuIHRyZWFzdXJl\r\n\
--sep--\r\n";
    vec![one.into(), two.into(), three.into_bytes(), four.into()]
}

async fn deliver(server: &Server, messages: &[Vec<u8>]) {
    server.send_messages(ALICE, messages).await;
    server.wait_for_inbox(ALICE, messages.len()).await;
}

async fn connect(imap: &ImapServer) -> Pop3Client {
    let (client, greeting) = Pop3Client::connect(imap.imap).await;
    assert!(greeting.starts_with("* OK "), "{greeting}");
    client
}

async fn exchange(c: &mut Pop3Client, tag: &str, command: &str) -> Vec<String> {
    c.imap(tag, command).await
}

async fn read_to_tag(c: &mut Pop3Client, tag: &str) -> Vec<String> {
    c.until_tag(tag).await
}

async fn login_select(c: &mut Pop3Client) {
    let r = exchange(c, "L", &format!("LOGIN {ALICE} \"{PASSWORD}\"")).await;
    assert!(r[0].starts_with("L OK "), "{r:?}");
    let r = exchange(c, "S", "SELECT INBOX").await;
    assert!(r.last().expect("reply").starts_with("S OK "), "{r:?}");
}

/// The numbers of a `SEARCH` that must succeed.
async fn search(c: &mut Pop3Client, criteria: &str) -> Vec<u32> {
    let r = exchange(c, "s", &format!("SEARCH {criteria}")).await;
    numbers(&r, "s OK SEARCH completed", criteria)
}

async fn uid_search(c: &mut Pop3Client, criteria: &str) -> Vec<u32> {
    let r = exchange(c, "u", &format!("UID SEARCH {criteria}")).await;
    numbers(&r, "u OK UID SEARCH completed", criteria)
}

fn numbers(r: &[String], ok: &str, criteria: &str) -> Vec<u32> {
    assert_eq!(r.len(), 2, "{criteria}: {r:?}");
    assert_eq!(r[1], ok, "{criteria}: {r:?}");
    let rest = r[0]
        .strip_prefix("* SEARCH")
        .unwrap_or_else(|| panic!("{criteria}: {r:?}"));
    rest.split_whitespace()
        .map(|n| n.parse().unwrap_or_else(|_| panic!("{criteria}: {r:?}")))
        .collect()
}

/// Today (UTC) as a SEARCH date, with the day before and after.
fn days_around_today() -> [String; 3] {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let day = |days: i64| {
        // Days since 1970-01-01 to a civil date.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        format!("{d}-{}-{y}", MONTHS[(m - 1) as usize])
    };
    let today = secs.div_euclid(86_400);
    [day(today - 1), day(today), day(today + 1)]
}

async fn start_with_corpus() -> (Server, ImapServer, Pop3Client) {
    let server = Server::start().await;
    let imap = ImapServer::start_with(&server, |_| {}).await;
    deliver(&server, &corpus()).await;
    let mut c = connect(&imap).await;
    login_select(&mut c).await;
    (server, imap, c)
}

#[tokio::test]
async fn address_subject_and_date_keys() {
    let (_server, _imap, mut c) = start_with_corpus().await;
    let cases: &[(&str, &[u32])] = &[
        ("ALL", &[1, 2, 3, 4]),
        ("FROM alice", &[1]),
        ("FROM \"Alice Smith\"", &[1]),
        ("FROM EXAMPLE.COM", &[1, 4]),
        ("FROM \"smith <alice@\"", &[1]),
        ("TO alice", &[2, 3, 4]),
        ("TO example.org", &[1]),
        ("CC carol", &[1]),
        ("BCC dave@example.com", &[2]),
        ("BCC nobody", &[]),
        ("SUBJECT quarterly", &[1, 4]),
        ("SUBJECT \"re: quarterly\"", &[4]),
        ("SUBJECT K", &[2]),
        ("SUBJECT \"\"", &[1, 2, 3, 4]),
        ("SENTBEFORE 1-Mar-2026", &[1]),
        // Message 2's Date: is the 15th in its own zone (the 16th in UTC).
        ("SENTON 15-Mar-2026", &[2]),
        ("SENTON 16-Mar-2026", &[]),
        ("SENTSINCE 15-Mar-2026", &[2, 4]),
        // No Date: field, no match, either way.
        ("SENTSINCE 1-Jan-1970", &[1, 2, 4]),
        ("NOT SENTSINCE 1-Jan-1970", &[3]),
        ("SINCE 1-Jan-2000", &[1, 2, 3, 4]),
        ("BEFORE 1-Jan-2000", &[]),
    ];
    for (criteria, want) in cases {
        assert_eq!(search(&mut c, criteria).await, *want, "{criteria}");
    }
    // Internal dates are today's, in UTC.
    let [yesterday, today, tomorrow] = days_around_today();
    let on_today = search(&mut c, &format!("ON {today}")).await;
    let since_yesterday = search(&mut c, &format!("SINCE {yesterday}")).await;
    assert_eq!(since_yesterday, [1, 2, 3, 4]);
    assert!(
        on_today == [1, 2, 3, 4] || on_today.is_empty(),
        "{on_today:?}"
    );
    assert_eq!(
        search(&mut c, &format!("BEFORE {tomorrow}")).await,
        [1, 2, 3, 4]
    );
    assert_eq!(
        search(&mut c, &format!("SINCE {tomorrow}")).await,
        [0u32; 0]
    );
    assert_eq!(
        search(&mut c, &format!("BEFORE {yesterday}")).await,
        [0u32; 0]
    );
}

#[tokio::test]
async fn header_body_and_text_keys() {
    let (_server, _imap, mut c) = start_with_corpus().await;
    let cases: &[(&str, &[u32])] = &[
        ("HEADER X-Priority \"\"", &[1]),
        ("HEADER x-priority HIGH", &[1]),
        ("HEADER X-Priority low", &[]),
        ("HEADER Subject \"aus K\"", &[2]),
        ("HEADER Content-Transfer-Encoding base64", &[]),
        ("HEADER MIME-Version \"\"", &[2, 4]),
        ("BODY numbers", &[1]),
        ("BODY \"secret word\"", &[3]),
        // Decoded from base64.
        ("BODY \"hidden treasure\"", &[4]),
        ("BODY aGlkZGVu", &[]),
        ("BODY X-Priority", &[]),
        ("TEXT X-Priority", &[1]),
        ("TEXT treasure", &[4]),
        ("TEXT \"Quarterly REPORT\"", &[1, 4]),
        ("TEXT nowhere-to-be-found", &[]),
    ];
    for (criteria, want) in cases {
        assert_eq!(search(&mut c, criteria).await, *want, "{criteria}");
    }
}

#[tokio::test]
async fn flag_size_and_sequence_keys() {
    let (_server, _imap, mut c) = start_with_corpus().await;
    for (tag, store) in [
        ("a", "STORE 1 +FLAGS.SILENT (\\Seen \\Flagged)"),
        ("b", "STORE 2 +FLAGS.SILENT (\\Answered $Work)"),
        ("c", "STORE 3 +FLAGS.SILENT (\\Deleted \\Draft)"),
    ] {
        let r = exchange(&mut c, tag, store).await;
        assert_eq!(r.last().unwrap(), &format!("{tag} OK STORE completed"));
    }
    let cases: &[(&str, &[u32])] = &[
        ("SEEN", &[1]),
        ("UNSEEN", &[2, 3, 4]),
        ("FLAGGED", &[1]),
        ("UNFLAGGED", &[2, 3, 4]),
        ("ANSWERED", &[2]),
        ("UNANSWERED", &[1, 3, 4]),
        ("DELETED", &[3]),
        ("UNDELETED", &[1, 2, 4]),
        ("DRAFT", &[3]),
        ("UNDRAFT", &[1, 2, 4]),
        ("KEYWORD $work", &[2]),
        ("UNKEYWORD $WORK", &[1, 3, 4]),
        ("KEYWORD $Other", &[]),
        // This session selected the mailbox first: all are recent here.
        ("RECENT", &[1, 2, 3, 4]),
        ("NEW", &[2, 3, 4]),
        ("OLD", &[]),
        ("LARGER 4000", &[3]),
        ("SMALLER 4000", &[1, 2, 4]),
        ("2:*", &[2, 3, 4]),
        ("*", &[4]),
        ("*:3", &[3, 4]),
        ("1,3:10", &[1, 3, 4]),
        ("7:9", &[]),
        ("UID 2,4", &[2, 4]),
        ("UID 3:*", &[3, 4]),
        ("UID 90:99", &[]),
        // Cheap and dear keys together, nested.
        ("SEEN SUBJECT quarterly", &[1]),
        ("UNSEEN SUBJECT quarterly", &[4]),
        ("OR FROM alice (UNSEEN NOT FLAGGED)", &[1, 2, 3, 4]),
        ("OR FROM alice (ANSWERED BODY cafe)", &[1]),
        ("NOT (OR SEEN ANSWERED)", &[3, 4]),
        (
            "OR (SUBJECT quarterly LARGER 1) NOT BODY treasure",
            &[1, 2, 3, 4],
        ),
        ("NOT OR SUBJECT lunch (DELETED BODY nothing)", &[1, 2, 4]),
        (
            "(UNDELETED (NOT SEEN (OR TO example.org TEXT treasure)))",
            &[4],
        ),
        ("OR OR 1 2 NOT 1:3", &[1, 2, 4]),
    ];
    for (criteria, want) in cases {
        assert_eq!(search(&mut c, criteria).await, *want, "{criteria}");
    }
    // MODSEQ answers with the highest modseq of what it found; as the
    // session's first use of CONDSTORE it is told HIGHESTMODSEQ first
    // (RFC 7162 3.1).
    let r = exchange(&mut c, "m", "SEARCH MODSEQ 1 SEEN").await;
    assert!(r[0].starts_with("* OK [HIGHESTMODSEQ "), "{r:?}");
    assert!(
        r[1].starts_with("* SEARCH 1 (MODSEQ ") && r[1].ends_with(')'),
        "{r:?}"
    );
    assert_eq!(r[2], "m OK SEARCH completed");
    let r = exchange(&mut c, "n", "SEARCH MODSEQ 999999").await;
    assert_eq!(r, ["* SEARCH", "n OK SEARCH completed"]);
}

#[tokio::test]
async fn uid_search_answers_uids() {
    let server = Server::start().await;
    let imap = ImapServer::start_with(&server, |_| {}).await;
    deliver(&server, &corpus()).await;
    // Expunge the first two so that UIDs and sequence numbers differ.
    let account = server.account(ALICE).await;
    server
        .store
        .expunge(account, "INBOX", &[store::Uid(1), store::Uid(2)])
        .await
        .expect("expunge");
    let mut c = connect(&imap).await;
    login_select(&mut c).await;
    assert_eq!(uid_search(&mut c, "ALL").await, [3, 4]);
    assert_eq!(search(&mut c, "ALL").await, [1, 2]);
    assert_eq!(uid_search(&mut c, "SUBJECT re:").await, [4]);
    assert_eq!(search(&mut c, "SUBJECT re:").await, [2]);
    assert_eq!(uid_search(&mut c, "1").await, [3]);
    assert_eq!(uid_search(&mut c, "UID 4:*").await, [4]);
    assert_eq!(uid_search(&mut c, "UID 1:2").await, [0u32; 0]);
    assert_eq!(search(&mut c, "UID *").await, [2]);
    assert_eq!(uid_search(&mut c, "BODY treasure").await, [4]);
}

#[tokio::test]
async fn messages_expunged_elsewhere_never_match() {
    let (server, _imap, mut c) = start_with_corpus().await;
    let account = server.account(ALICE).await;
    server
        .store
        .expunge(account, "INBOX", &[store::Uid(3)])
        .await
        .expect("expunge");
    assert_eq!(search(&mut c, "ALL").await, [1, 2, 4]);
    assert_eq!(search(&mut c, "NOT SUBJECT quarterly").await, [2]);
    assert_eq!(search(&mut c, "NOT BODY treasure").await, [1, 2]);
}

#[tokio::test]
async fn charsets_and_literals() {
    let (_server, _imap, mut c) = start_with_corpus().await;
    let koeln = "köln".as_bytes();
    // A synchronising literal: the server asks for it with `+`.
    c.send(format!("a SEARCH CHARSET UTF-8 SUBJECT {{{}}}\r\n", koeln.len()).as_bytes())
        .await;
    let cont = c.line().await;
    assert!(cont.starts_with("+ "), "{cont}");
    c.send(koeln).await;
    c.send(b"\r\n").await;
    assert_eq!(
        read_to_tag(&mut c, "a").await,
        ["* SEARCH 2", "a OK SEARCH completed"]
    );
    // A non-synchronising one, upper case, in a header and a body.
    let mut cmd = format!(
        "b UID SEARCH CHARSET utf-8 HEADER SUBJECT {{{}+}}\r\n",
        "GRÜSSE".len()
    )
    .into_bytes();
    cmd.extend_from_slice("GRÜSSE".as_bytes());
    cmd.extend_from_slice(format!(" BODY {{{}+}}\r\n", "CAFÉ".len()).as_bytes());
    cmd.extend_from_slice("CAFÉ".as_bytes());
    cmd.extend_from_slice(b"\r\n");
    c.send(&cmd).await;
    // ß lower-cases to itself, not to "ss": no match on the subject.
    assert_eq!(
        read_to_tag(&mut c, "b").await,
        ["* SEARCH", "b OK UID SEARCH completed"]
    );
    let mut cmd = format!("c SEARCH CHARSET UTF-8 BODY {{{}+}}\r\n", "CAFÉ".len()).into_bytes();
    cmd.extend_from_slice("CAFÉ".as_bytes());
    cmd.extend_from_slice(b"\r\n");
    c.send(&cmd).await;
    assert_eq!(
        read_to_tag(&mut c, "c").await,
        ["* SEARCH 2", "c OK SEARCH completed"]
    );
    assert_eq!(
        exchange(&mut c, "d", "SEARCH CHARSET US-ASCII FROM carol").await,
        ["* SEARCH 3", "d OK SEARCH completed"]
    );
    assert_eq!(
        exchange(&mut c, "e", "SEARCH CHARSET ISO-8859-1 FROM carol").await,
        ["e NO [BADCHARSET (UTF-8 US-ASCII)] Charset not supported"]
    );
    assert_eq!(
        exchange(&mut c, "f", "SEARCH CHARSET \"KOI8-R\" ALL").await,
        ["f NO [BADCHARSET (UTF-8 US-ASCII)] Charset not supported"]
    );
    // The session goes on.
    assert_eq!(search(&mut c, "FROM carol").await, [3]);
}

#[tokio::test]
async fn search_needs_a_selected_mailbox_and_valid_syntax() {
    let server = Server::start().await;
    let imap = ImapServer::start_with(&server, |_| {}).await;
    let mut c = connect(&imap).await;
    assert_eq!(
        exchange(&mut c, "a", "SEARCH ALL").await,
        ["a BAD Command not valid in this state"]
    );
    let r = exchange(&mut c, "L", &format!("LOGIN {ALICE} \"{PASSWORD}\"")).await;
    assert!(r[0].starts_with("L OK "), "{r:?}");
    assert_eq!(
        exchange(&mut c, "b", "UID SEARCH ALL").await,
        ["b BAD Command not valid in this state"]
    );
    let r = exchange(&mut c, "S", "SELECT INBOX").await;
    assert!(r.last().expect("reply").starts_with("S OK "), "{r:?}");
    // An empty mailbox.
    assert_eq!(
        exchange(&mut c, "c", "SEARCH ALL").await,
        ["* SEARCH", "c OK SEARCH completed"]
    );
    assert_eq!(
        exchange(&mut c, "d", "SEARCH 1:*").await,
        ["* SEARCH", "d OK SEARCH completed"]
    );
    for bad in [
        "SEARCH",
        "SEARCH FOO",
        "SEARCH SINCE yesterday",
        "SEARCH (SEEN",
    ] {
        let r = exchange(&mut c, "e", bad).await;
        assert_eq!(r.len(), 1, "{bad}: {r:?}");
        assert!(r[0].starts_with("e BAD "), "{bad}: {r:?}");
    }
}

#[tokio::test]
async fn search_over_hundreds_of_messages() {
    let server = Server::start().await;
    let imap = ImapServer::start_with(&server, |_| {}).await;
    let count = 300;
    let messages: Vec<Vec<u8>> = (0..count)
        .map(|i| message(&format!("msg-{i}"), &format!("payload n{i}x")))
        .collect();
    deliver(&server, &messages).await;
    let mut c = connect(&imap).await;
    login_select(&mut c).await;
    let all: Vec<u32> = (1..=count).collect();
    assert_eq!(search(&mut c, "ALL").await, all);
    // msg-1, msg-10..19, msg-100..199.
    let want: Vec<u32> = (0..count)
        .filter(|i| format!("msg-{i}").starts_with("msg-1"))
        .map(|i| i + 1)
        .collect();
    assert_eq!(want.len(), 111);
    assert_eq!(uid_search(&mut c, "SUBJECT msg-1").await, want);
    // Raw bytes are read in batches; the last ones must be searched too.
    assert_eq!(search(&mut c, "BODY n299x").await, [300]);
    assert_eq!(search(&mut c, "BODY n0x").await, [1]);
    assert_eq!(
        search(&mut c, "OR BODY n5x (SUBJECT msg-29 NOT TEXT n29x)").await,
        [6, 291, 292, 293, 294, 295, 296, 297, 298, 299, 300]
    );
    assert_eq!(search(&mut c, "NOT TEXT payload").await, [0u32; 0]);
    let r = exchange(&mut c, "f", "STORE 250:* +FLAGS.SILENT (\\Flagged)").await;
    assert_eq!(r, ["f OK STORE completed"]);
    assert_eq!(
        search(&mut c, "FLAGGED BODY n25").await,
        [251, 252, 253, 254, 255, 256, 257, 258, 259, 260]
    );
}

/// imaplib: SEARCH and UID SEARCH as a real client sends them.
const IMAPLIB_SEARCH: &str = r#"
typ, data = m.search(None, 'FROM', '"alice"')
print("FROM", typ, data)
typ, data = m.search(None, '(OR SUBJECT "report" BODY "secret word")')
print("OR", typ, data)
typ, data = m.uid("SEARCH", "SUBJECT", "lunch")
print("UID", typ, data)
m.literal = "köln".encode("utf-8")
typ, data = m.search("UTF-8", "SUBJECT")
print("UTF8", typ, data)
typ, data = m.search("ISO-8859-1", "ALL")
print("CHARSET", typ, data)
m.logout()
"#;

#[tokio::test]
async fn imaplib_searches() {
    let server = Server::start().await;
    let imap = ImapServer::start_with(&server, |_| {}).await;
    deliver(&server, &corpus()).await;
    let stdout = imaplib_as_alice(&imap, IMAPLIB_SEARCH).await;
    assert!(stdout.contains("FROM OK [b'1']"), "{stdout}");
    assert!(stdout.contains("OR OK [b'1 3 4']"), "{stdout}");
    assert!(stdout.contains("UID OK [b'3']"), "{stdout}");
    assert!(stdout.contains("UTF8 OK [b'2']"), "{stdout}");
    assert!(
        stdout.contains("BADCHARSET") && stdout.contains("BADCHARSET (UTF-8 US-ASCII)"),
        "{stdout}"
    );
}
