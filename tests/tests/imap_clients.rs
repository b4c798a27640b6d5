//! IMAP, black-box, with what real clients send when CONDSTORE and QRESYNC
//! are offered: imapflow (npm, the published library; tests/imapflow pins
//! it) syncing a mailbox and resyncing it after another session changed
//! flags and expunged, and Thunderbird's command set (`ENABLE CONDSTORE`,
//! `SELECT "INBOX" (CONDSTORE)`, `UID fetch 1:* (FLAGS) (CHANGEDSINCE n)`,
//! its header fetch, `uid store`, IDLE) across two sessions, each answer's
//! form checked against what Dovecot 2.3 answers to the same commands.
//!
//! node and `npm ci` in tests/imapflow are required (`.ci/run` does it): a
//! missing one fails the test, it is never skipped.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use postern_tests::*;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

const ALICE: &str = "alice@localhost";

async fn start() -> (Server, ImapServer) {
    let server = Server::start().await;
    let imap = ImapServer::start_with(&server, |_| {}).await;
    (server, imap)
}

fn imapflow_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("imapflow");
    assert!(
        dir.join("node_modules/imapflow").exists(),
        "run `npm ci` in {} first (.ci/run does)",
        dir.display()
    );
    dir
}

/// `node resync.mjs args…`, started with its stdout read line by line.
struct Node {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Node {
    fn start(args: &[&str]) -> Node {
        let dir = imapflow_dir();
        let mut child = tokio::process::Command::new("node")
            .arg("resync.mjs")
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run node (Debian package `nodejs`): {e}"));
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Node { child, lines }
    }

    /// The next JSON line the script prints.
    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
            .await
            .expect("imapflow printed nothing within 60 s")
            .expect("read stdout");
        match line {
            Some(l) => serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}")),
            None => panic!("imapflow ended early: {}", self.stderr().await),
        }
    }

    async fn stderr(&mut self) -> String {
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use tokio::io::AsyncReadExt;
            let _ = e.read_to_string(&mut err).await;
        }
        err
    }

    async fn success(mut self) {
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("imapflow did not exit")
            .expect("wait");
        assert!(
            status.success(),
            "imapflow: {status}: {}",
            self.stderr().await
        );
    }
}

fn uids(v: &Value) -> Vec<u64> {
    let mut u: Vec<u64> = v
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|x| x.as_u64().unwrap_or_else(|| panic!("{x}")))
        .collect();
    u.sort_unstable();
    u
}

/// `[{uid, flags}]` as `(uid, "flag flag")`, by UID.
fn flag_list(v: &Value) -> Vec<(u64, String)> {
    let mut out: Vec<(u64, String)> = v
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|m| {
            let flags: Vec<&str> = m["flags"]
                .as_array()
                .unwrap_or_else(|| panic!("{m}"))
                .iter()
                .map(|f| f.as_str().unwrap())
                .collect();
            (m["uid"].as_u64().unwrap(), flags.join(" "))
        })
        .collect();
    out.sort();
    out
}

/// The tagged reply to `command`, which must be OK; the untagged lines.
async fn ok(c: &mut Pop3Client, command: &str) -> Vec<String> {
    let mut r = c.imap("t", command).await;
    let tagged = r.pop().unwrap();
    assert!(
        tagged.starts_with("t OK"),
        "{command}: {tagged} after {r:?}"
    );
    r
}

#[tokio::test]
async fn imapflow_resyncs_with_qresync_what_another_session_changed() {
    let (server, imap) = start().await;
    server
        .send_subjects(ALICE, &["one", "two", "three", "four", "five"])
        .await;
    server.wait_for_inbox(ALICE, 5).await;
    let port = imap.imap.port().to_string();

    // imapflow syncs the INBOX and keeps what a client keeps.
    let mut sync = Node::start(&["sync", &port, ALICE, PASSWORD]);
    let state = sync.next().await;
    sync.success().await;
    let validity = state["uidValidity"].as_str().unwrap().to_string();
    let modseq = state["highestModseq"].as_str().unwrap().to_string();
    assert_eq!(
        flag_list(&state["messages"]),
        (1..=5).map(|u| (u, String::new())).collect::<Vec<_>>(),
        "{state}"
    );

    // Meanwhile another session flags two messages and expunges two.
    let mut other = alice_in_inbox(&imap).await;
    ok(&mut other, "UID STORE 2 +FLAGS (\\Flagged)").await;
    ok(&mut other, "UID STORE 4 +FLAGS (\\Seen $Work)").await;
    ok(&mut other, "UID STORE 1,5 +FLAGS (\\Deleted)").await;
    ok(&mut other, "EXPUNGE").await;

    // imapflow reopens with its UIDVALIDITY and modseq (QRESYNC): it is told
    // exactly those changes, and a CHANGEDSINCE fetch agrees.
    let mut resync = Node::start(&["resync", &port, ALICE, PASSWORD, &validity, &modseq]);
    let seen = resync.next().await;
    assert_eq!(seen["step"], "resynced", "{seen}");
    let changed = vec![
        (2, "\\Flagged".to_string()),
        (4, "$Work \\Seen".to_string()),
    ];
    for step in ["open", "fetch"] {
        // Both name the two expunged UIDs as VANISHED (EARLIER); SELECT
        // also gives the two changed messages' flags.
        let events = &seen[step];
        assert_eq!(uids(&events["vanished"]), vec![1, 5], "{step}: {seen}");
        assert!(
            events["earlier"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e == true),
            "{step}: {seen}"
        );
        assert_eq!(
            uids(&events["expunged"]),
            Vec::<u64>::new(),
            "{step}: {seen}"
        );
    }
    assert_eq!(flag_list(&seen["open"]["flags"]), changed, "{seen}");
    assert_eq!(flag_list(&seen["changed"]), changed, "{seen}");
    assert_eq!(seen["exists"], 3, "{seen}");
    assert!(
        seen["highestModseq"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > modseq.parse::<u64>().unwrap(),
        "{seen}"
    );

    // While imapflow stays selected (IDLE), the other session changes a
    // flag and expunges: imapflow hears both at once.
    ok(&mut other, "UID STORE 3 +FLAGS (\\Answered)").await;
    ok(&mut other, "UID STORE 2 +FLAGS (\\Deleted)").await;
    ok(&mut other, "UID EXPUNGE 2").await;
    let live = resync.next().await;
    resync.success().await;
    assert_eq!(live["step"], "live", "{live}");
    let answered = live["flags"].as_array().unwrap().iter().any(|f| {
        f["uid"] == 3
            && f["flags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == "\\Answered")
    });
    assert!(answered, "{live}");
    assert_eq!(
        uids(&live["vanished"]),
        vec![2],
        "VANISHED under QRESYNC: {live}"
    );
    assert_eq!(uids(&live["expunged"]), Vec::<u64>::new(), "{live}");
    assert_eq!(live["exists"], 2, "{live}");
}

// ---- Thunderbird with CONDSTORE ----

/// The header fields Thunderbird fetches for its message list.
const TB_HEADERS: &str = "From To Cc Bcc Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type Reply-To";

fn tb_message(i: u32) -> String {
    format!(
        "From: Bob <bob@example.com>\r\nTo: alice@localhost\r\nSubject: message {i}\r\n\
         Date: Thu, 03 Dec 2026 10:0{i}:00 +0000\r\nMessage-ID: <m{i}@example.com>\r\n\
         Content-Type: text/plain\r\n\r\nbody {i}\r\n"
    )
}

/// `line` with the number after each of `MODSEQ (`, `HIGHESTMODSEQ `,
/// `UIDVALIDITY ` put as `M`, `M`, `V`; the modseqs, in order.
fn forms(line: &str) -> (String, Vec<u64>) {
    let mut out = String::new();
    let mut modseqs = Vec::new();
    let mut rest = line;
    loop {
        let next = [
            ("MODSEQ (", "M"),
            ("HIGHESTMODSEQ ", "M"),
            ("UIDVALIDITY ", "V"),
        ]
        .iter()
        .filter_map(|(p, r)| rest.find(p).map(|i| (i, *p, *r)))
        .min_by_key(|(i, p, _)| (*i, usize::MAX - p.len()));
        let Some((i, prefix, stand_in)) = next else {
            out.push_str(rest);
            return (out, modseqs);
        };
        out.push_str(&rest[..i + prefix.len()]);
        rest = &rest[i + prefix.len()..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if prefix != "UIDVALIDITY " {
            modseqs.push(rest[..digits].parse().unwrap());
        }
        out.push_str(stand_in);
        rest = &rest[digits..];
    }
}

/// `command`'s answer, each line as [`forms`] puts it, and its modseqs.
async fn tb(c: &mut Pop3Client, tag: &str, command: &str) -> (Vec<String>, Vec<u64>) {
    let (untagged, tagged) = c.responses(tag, command).await;
    let mut lines = Vec::new();
    let mut modseqs = Vec::new();
    for l in untagged
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
    {
        let (f, m) = forms(&l);
        lines.push(f);
        modseqs.extend(m);
    }
    lines.push(tagged);
    (lines, modseqs)
}

/// What Thunderbird sends with CONDSTORE on (`mail.server.*.use_condstore`)
/// and another session changing the mailbox meanwhile. Each answer's form
/// was compared with Dovecot 2.3.19's to the same commands; they differ
/// only where the RFCs leave it open: Postern puts MODSEQ in every FETCH
/// answer once CONDSTORE is on (Dovecot only where it was asked for or the
/// flags changed), orders a STORE answer's items `FLAGS UID MODSEQ`
/// (Dovecot `UID MODSEQ FLAGS`), says UID in a flag change another
/// session made (Dovecot `MODSEQ (n) FLAGS (...)` alone), gives `\Recent`
/// for a message another session APPENDed to the session that sees it
/// first (Dovecot to the appending session), and says `[HIGHESTMODSEQ]` on
/// a SELECT only once CONDSTORE is on (Dovecot on every SELECT; Thunderbird
/// asks with `(CONDSTORE)` anyway). The conditional STORE at the end is
/// RFC 7162's form, answered as Dovecot answers it.
#[tokio::test]
async fn thunderbird_with_condstore_across_two_sessions() {
    let (_server, imap) = start().await;
    let mut other = imap.login(ALICE).await;
    for i in 1..=3 {
        let m = tb_message(i);
        let r = other
            .imap("a", &format!("APPEND INBOX {{{}+}}\r\n{m}", m.len()))
            .await;
        assert!(r.last().unwrap().starts_with("a OK [APPENDUID "), "{r:?}");
    }

    let mut c = imap.login(ALICE).await;
    let (r, _) = tb(
        &mut c,
        "3",
        "ID (\"name\" \"Thunderbird\" \"version\" \"128.5.0\")",
    )
    .await;
    assert!(r[0].starts_with("* ID (\"name\" \"Postern\""), "{r:?}");
    let (r, _) = tb(&mut c, "4", "ENABLE CONDSTORE").await;
    assert_eq!(r, ["* ENABLED CONDSTORE", "4 OK ENABLE completed"]);
    let (r, m) = tb(&mut c, "5", "select \"INBOX\" (CONDSTORE)").await;
    for line in [
        "* 3 EXISTS",
        "* 3 RECENT",
        "* OK [UIDVALIDITY V] UIDs valid",
        "* OK [UIDNEXT 4] Predicted next UID",
        "* OK [HIGHESTMODSEQ M] Highest mailbox modseq",
    ] {
        assert!(r.iter().any(|l| l == line), "{line} in {r:?}");
    }
    assert!(r.last().unwrap().starts_with("5 OK [READ-WRITE]"), "{r:?}");
    let highest = m[0];

    // The first sync: every message's flags, then the headers.
    let (r, m) = tb(&mut c, "6", "UID fetch 1:* (FLAGS)").await;
    assert_eq!(
        r,
        [
            "* 1 FETCH (UID 1 FLAGS (\\Recent) MODSEQ (M))",
            "* 2 FETCH (UID 2 FLAGS (\\Recent) MODSEQ (M))",
            "* 3 FETCH (UID 3 FLAGS (\\Recent) MODSEQ (M))",
            "6 OK UID FETCH completed",
        ]
    );
    assert!(m.iter().all(|&n| n <= highest), "{m:?} {highest}");
    let fields = TB_HEADERS.to_ascii_uppercase();
    let (r, _) = tb(
        &mut c,
        "7",
        &format!("UID fetch 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS ({TB_HEADERS})])"),
    )
    .await;
    assert_eq!(r.len(), 4, "{r:?}");
    for (i, line) in r[..3].iter().enumerate() {
        let n = i + 1;
        let m = tb_message(n as u32);
        let header = &m[..m.find("\r\n\r\n").unwrap() + 4];
        assert_eq!(
            *line,
            format!(
                "* {n} FETCH (UID {n} RFC822.SIZE {} FLAGS (\\Recent) BODY[HEADER.FIELDS ({fields})] {{{}}}\r\n{header} MODSEQ (M))",
                m.len(),
                header.len()
            )
        );
    }
    let (r, m) = tb(&mut c, "8", "uid store 1 +Flags (\\Seen)").await;
    assert_eq!(
        r,
        [
            "* 1 FETCH (FLAGS (\\Seen \\Recent) UID 1 MODSEQ (M))",
            "8 OK UID STORE completed"
        ]
    );
    assert!(m[0] > highest);

    // Thunderbird idles; the other sessions flag, append and expunge.
    c.send(b"9 IDLE\r\n").await;
    assert_eq!(c.line().await, "+ idling");
    assert!(other
        .imap("s", "SELECT INBOX")
        .await
        .last()
        .unwrap()
        .starts_with("s OK"));
    assert!(other
        .imap("f", "STORE 2 +FLAGS (\\Flagged)")
        .await
        .last()
        .unwrap()
        .starts_with("f OK"));
    let (l, m) = forms(&c.line().await);
    assert_eq!(l, "* 2 FETCH (UID 2 FLAGS (\\Flagged \\Recent) MODSEQ (M))");
    assert!(m[0] > highest);
    // A session with no mailbox selected appends, so that Thunderbird's,
    // the only one selected that can claim it, gets its \Recent.
    let mut third = imap.login(ALICE).await;
    let m4 = tb_message(4);
    let r = third
        .imap("a", &format!("APPEND INBOX {{{}+}}\r\n{m4}", m4.len()))
        .await;
    assert!(r.last().unwrap().starts_with("a OK [APPENDUID "), "{r:?}");
    assert_eq!(c.line().await, "* 4 EXISTS");
    assert_eq!(c.line().await, "* 4 RECENT");
    assert!(other
        .imap("d", "STORE 3 +FLAGS (\\Deleted)")
        .await
        .last()
        .unwrap()
        .starts_with("d OK"));
    assert_eq!(
        forms(&c.line().await).0,
        "* 3 FETCH (UID 3 FLAGS (\\Deleted \\Recent) MODSEQ (M))"
    );
    assert!(other
        .imap("e", "EXPUNGE")
        .await
        .last()
        .unwrap()
        .starts_with("e OK"));
    assert_eq!(c.line().await, "* 3 EXPUNGE");
    c.send(b"DONE\r\n").await;
    assert_eq!(c.line().await, "9 OK IDLE terminated");

    // The flag resync since the SELECT: the changed and the new message,
    // not the expunged one; then the new message's headers.
    let (r, m) = tb(
        &mut c,
        "10",
        &format!("UID fetch 1:* (FLAGS) (CHANGEDSINCE {highest})"),
    )
    .await;
    assert_eq!(
        r,
        [
            "* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent) MODSEQ (M))",
            "* 2 FETCH (UID 2 FLAGS (\\Flagged \\Recent) MODSEQ (M))",
            "* 3 FETCH (UID 4 FLAGS (\\Recent) MODSEQ (M))",
            "10 OK UID FETCH completed",
        ]
    );
    assert!(m.iter().all(|&n| n > highest), "{m:?}");
    let (r, _) = tb(
        &mut c,
        "11",
        &format!("UID fetch 4:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS ({TB_HEADERS})])"),
    )
    .await;
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(
        r[0].starts_with(&format!(
            "* 3 FETCH (UID 4 RFC822.SIZE {} FLAGS (\\Recent) BODY[",
            m4.len()
        )),
        "{r:?}"
    );
    assert!(r[0].ends_with(" MODSEQ (M))"), "{r:?}");

    // Flag changes: Thunderbird's own, then a conditional one with the
    // modseq of its SELECT, which both messages have passed since.
    let (r, _) = tb(&mut c, "12", "uid store 2 -Flags (\\Flagged)").await;
    assert_eq!(
        r,
        [
            "* 2 FETCH (FLAGS (\\Recent) UID 2 MODSEQ (M))",
            "12 OK UID STORE completed"
        ]
    );
    let (r, _) = tb(
        &mut c,
        "13",
        &format!("UID STORE 1,2 (UNCHANGEDSINCE {highest}) +FLAGS (\\Answered)"),
    )
    .await;
    assert_eq!(r, ["13 OK [MODIFIED 1:2] Conditional STORE failed"]);
    // With the modseq it has now, it goes through.
    let (_, now) = tb(&mut c, "14", "UID fetch 2 (FLAGS)").await;
    let (r, m) = tb(
        &mut c,
        "15",
        &format!(
            "UID STORE 2 (UNCHANGEDSINCE {}) +FLAGS (\\Answered)",
            now[0]
        ),
    )
    .await;
    assert_eq!(
        r,
        [
            "* 2 FETCH (FLAGS (\\Answered \\Recent) UID 2 MODSEQ (M))",
            "15 OK UID STORE completed"
        ]
    );
    assert!(m[0] > now[0]);
    // The other session, without CONDSTORE, hears the flags alone.
    let r = other.imap("n", "NOOP").await;
    assert!(
        r.iter()
            .any(|l| l == "* 2 FETCH (UID 2 FLAGS (\\Answered))"),
        "{r:?}"
    );
    assert!(!r.iter().any(|l| l.contains("MODSEQ")), "{r:?}");
}
