//! IMAP NOTIFY (RFC 5465), black-box: one session asks to be told, others
//! (and SMTP delivery) change mailboxes, and what the first is told while
//! it sends nothing is checked line by line: `* STATUS` for other
//! mailboxes' messages, `* LIST` for mailboxes created, renamed and
//! deleted and for subscriptions, the selected mailbox's EXPUNGE, FETCH
//! and EXISTS outside IDLE, `NOTIFY NONE`, and the refusals (BAD for
//! what does not parse, `NO [BADEVENT]`, `NO [NOTIFICATIONOVERFLOW]`).
//! The lines follow RFC 5465's examples and Dovecot's answers.

use std::time::Duration;

use postern_tests::*;

const ALICE: &str = "alice@localhost";

async fn start() -> (Server, ImapServer) {
    start_with(|_| {}).await
}

async fn start_with(adjust: impl FnOnce(&mut common::config::Config)) -> (Server, ImapServer) {
    let server = Server::start().await;
    let imap = ImapServer::start_with(&server, adjust).await;
    (server, imap)
}

/// `tag OK ...` as the last line.
fn ok(r: &[String], tag: &str) {
    assert!(
        r.last()
            .is_some_and(|l| l.starts_with(&format!("{tag} OK"))),
        "{r:?}"
    );
}

async fn command(c: &mut Pop3Client, tag: &str, command: &str) -> Vec<String> {
    let r = c.imap(tag, command).await;
    ok(&r, tag);
    r
}

/// Reads what the server sends unasked until a line equal to `want`
/// comes (within 10 s); returns the lines before it.
async fn told(c: &mut Pop3Client, want: &str) -> Vec<String> {
    let mut before = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), c.try_line()).await {
            Ok(Some(line)) if line == want => return before,
            Ok(Some(line)) => before.push(line),
            Ok(None) => panic!("closed while waiting for {want:?}; got {before:?}"),
            Err(_) => panic!("not told {want:?} within 10 s; got {before:?}"),
        }
    }
}

/// [`told`], for a line that starts with `want` (a STATUS whose
/// HIGHESTMODSEQ the test does not know); returns that line.
async fn told_starting(c: &mut Pop3Client, want: &str) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), c.try_line()).await {
            Ok(Some(line)) if line.starts_with(want) => return line,
            Ok(Some(_)) => {}
            Ok(None) => panic!("closed while waiting for {want:?}"),
            Err(_) => panic!("not told {want:?} within 10 s"),
        }
    }
}

/// Asserts that nothing comes unasked within half a second.
async fn told_nothing(c: &mut Pop3Client) {
    if let Ok(line) = tokio::time::timeout(Duration::from_millis(500), c.try_line()).await {
        panic!("told {line:?}");
    }
}

/// APPENDs a small message with a LITERAL+ literal.
async fn append(c: &mut Pop3Client, mailbox: &str, subject: &str) {
    let message = format!("Subject: {subject}\r\n\r\nbody {subject}\r\n");
    command(
        c,
        "ap",
        &format!("APPEND {mailbox} {{{}+}}\r\n{message}", message.len()),
    )
    .await;
}

/// The mailbox's UIDVALIDITY, from STATUS.
async fn uid_validity(c: &mut Pop3Client, mailbox: &str) -> u32 {
    let r = command(c, "uv", &format!("STATUS {mailbox} (UIDVALIDITY)")).await;
    let line = &r[0];
    let n = line.rsplit(' ').next().unwrap().trim_end_matches(')');
    n.parse().unwrap_or_else(|_| panic!("{r:?}"))
}

#[tokio::test]
async fn other_mailboxes_are_told_as_they_change() {
    let (server, imap) = start().await;
    let mut a = imap.login(ALICE).await;
    let mut b = imap.login(ALICE).await;
    command(
        &mut a,
        "n1",
        "NOTIFY SET (PERSONAL (MessageNew MessageExpunge FlagChange MailboxName))",
    )
    .await;

    // Created by another session: a LIST, while A sends nothing.
    command(&mut b, "b1", "CREATE Work").await;
    assert_eq!(
        told(&mut a, "* LIST () \"/\" Work").await,
        Vec::<String>::new()
    );
    let validity = uid_validity(&mut b, "Work").await;

    // A message appended there: its STATUS.
    append(&mut b, "Work", "first").await;
    told_starting(
        &mut a,
        &format!("* STATUS Work (MESSAGES 1 UIDNEXT 2 UIDVALIDITY {validity} HIGHESTMODSEQ "),
    )
    .await;

    // Its flag changed (HIGHESTMODSEQ moves).
    command(&mut b, "b2", "SELECT Work").await;
    command(&mut b, "b3", "STORE 1 +FLAGS.SILENT (\\Seen)").await;
    told_starting(
        &mut a,
        &format!("* STATUS Work (MESSAGES 1 UIDNEXT 2 UIDVALIDITY {validity} HIGHESTMODSEQ "),
    )
    .await;

    // Expunged.
    command(&mut b, "b4", "STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    command(&mut b, "b5", "EXPUNGE").await;
    told_starting(
        &mut a,
        &format!("* STATUS Work (MESSAGES 0 UIDNEXT 2 UIDVALIDITY {validity} HIGHESTMODSEQ "),
    )
    .await;
    command(&mut b, "b6", "UNSELECT").await;

    // Renamed, then deleted.
    command(&mut b, "b7", "RENAME Work Play").await;
    told(&mut a, "* LIST () \"/\" Play (\"OLDNAME\" (Work))").await;
    command(&mut b, "b8", "DELETE Play").await;
    told(&mut a, "* LIST (\\NonExistent) \"/\" Play").await;

    // Mail delivered over SMTP to the INBOX.
    let inbox_validity = uid_validity(&mut b, "INBOX").await;
    server.send_subjects(ALICE, &["by smtp"]).await;
    told_starting(
        &mut a,
        &format!(
            "* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UIDVALIDITY {inbox_validity} HIGHESTMODSEQ "
        ),
    )
    .await;

    // NOTIFY NONE stops it all.
    command(&mut a, "n2", "NOTIFY NONE").await;
    command(&mut b, "b9", "CREATE Quiet").await;
    append(&mut b, "INBOX", "second").await;
    told_nothing(&mut a).await;
    let noop = command(&mut a, "n3", "NOOP").await;
    assert_eq!(noop.len(), 1, "{noop:?}");
}

#[tokio::test]
async fn condstore_adds_highestmodseq_and_flag_changes() {
    let (_server, imap) = start().await;
    let mut a = imap.login(ALICE).await;
    let mut b = imap.login(ALICE).await;
    command(&mut b, "b1", "CREATE Work").await;
    append(&mut b, "Work", "one").await;
    command(&mut a, "e", "ENABLE CONDSTORE").await;
    command(
        &mut a,
        "n1",
        "NOTIFY SET (MAILBOXES Work (MessageNew MessageExpunge FlagChange))",
    )
    .await;
    let validity = uid_validity(&mut b, "Work").await;
    command(&mut b, "b2", "SELECT Work").await;
    // A keyword moves no count, only HIGHESTMODSEQ: told with CONDSTORE.
    let r = command(&mut b, "b3", "STORE 1 +FLAGS ($Work)").await;
    assert!(r.iter().any(|l| l.contains("$Work")), "{r:?}");
    let line = tokio::time::timeout(Duration::from_secs(10), a.line())
        .await
        .expect("told");
    let prefix =
        format!("* STATUS Work (MESSAGES 1 UIDNEXT 2 UIDVALIDITY {validity} HIGHESTMODSEQ ");
    assert!(line.starts_with(&prefix), "{line}");
}

#[tokio::test]
async fn set_status_reports_the_named_mailboxes_at_once() {
    let (_server, imap) = start().await;
    let mut a = imap.login(ALICE).await;
    command(&mut a, "c1", "CREATE Work").await;
    command(&mut a, "c2", "CREATE Other").await;
    append(&mut a, "Work", "one").await;
    let work = uid_validity(&mut a, "Work").await;
    let inbox = uid_validity(&mut a, "INBOX").await;
    let r = command(
        &mut a,
        "n1",
        "NOTIFY SET STATUS (MAILBOXES (INBOX Work) (MessageNew MessageExpunge)) (SUBTREE Other (MailboxName))",
    )
    .await;
    assert_eq!(
        r,
        [
            format!("* STATUS INBOX (MESSAGES 0 UIDNEXT 1 UIDVALIDITY {inbox})"),
            format!("* STATUS Work (MESSAGES 1 UIDNEXT 2 UIDVALIDITY {work})"),
            "n1 OK NOTIFY completed".to_owned(),
        ]
    );
    // The selected mailbox gets no STATUS.
    command(&mut a, "s", "SELECT INBOX").await;
    let r = command(
        &mut a,
        "n2",
        "NOTIFY SET STATUS (SELECTED (MessageNew MessageExpunge)) (PERSONAL (MessageNew MessageExpunge))",
    )
    .await;
    // Every other mailbox (the special-use ones made at first login
    // included), Work with its message.
    assert!(!r.iter().any(|l| l.starts_with("* STATUS INBOX ")), "{r:?}");
    assert!(r.iter().any(|l| l.starts_with("* STATUS Other ")), "{r:?}");
    assert!(
        r.contains(&format!(
            "* STATUS Work (MESSAGES 1 UIDNEXT 2 UIDVALIDITY {work})"
        )),
        "{r:?}"
    );
    assert_eq!(r.len(), 8, "{r:?}");
}

#[tokio::test]
async fn subscriptions_are_told_to_subscribed_and_personal_filters() {
    let (_server, imap) = start().await;
    let mut a = imap.login(ALICE).await;
    let mut b = imap.login(ALICE).await;
    command(&mut b, "b1", "CREATE Work").await;
    command(
        &mut a,
        "n1",
        "NOTIFY SET (PERSONAL (SubscriptionChange)) (SUBSCRIBED (MessageNew MessageExpunge))",
    )
    .await;
    command(&mut b, "b2", "SUBSCRIBE Work").await;
    told(&mut a, "* LIST (\\Subscribed) \"/\" Work").await;
    // Subscribed now: its new messages are told too.
    append(&mut b, "Work", "one").await;
    let line = tokio::time::timeout(Duration::from_secs(10), a.line())
        .await
        .expect("told");
    assert!(line.starts_with("* STATUS Work (MESSAGES 1 "), "{line}");
    command(&mut b, "b3", "UNSUBSCRIBE Work").await;
    told(&mut a, "* LIST () \"/\" Work").await;
    // Not subscribed any more: nothing of its messages.
    append(&mut b, "Work", "two").await;
    told_nothing(&mut a).await;
}

/// RFC 5465 3.1: a filter with NONE hides its mailboxes from the filters
/// after it; a subscription to a name with no mailbox is `\NonExistent`.
#[tokio::test]
async fn none_hides_a_mailbox_and_subscriptions_need_no_mailbox() {
    let (_server, imap) = start().await;
    let mut a = imap.login(ALICE).await;
    let mut b = imap.login(ALICE).await;
    command(&mut b, "b0", "CREATE Work").await;
    command(
        &mut a,
        "n1",
        "NOTIFY SET (MAILBOXES Junk NONE) (PERSONAL (MessageNew MessageExpunge SubscriptionChange))",
    )
    .await;
    append(&mut b, "Junk", "spam").await;
    append(&mut b, "Work", "ham").await;
    let before = tokio::time::timeout(Duration::from_secs(10), a.line())
        .await
        .expect("told");
    assert!(before.starts_with("* STATUS Work "), "{before}");
    command(&mut b, "b1", "SUBSCRIBE nothere").await;
    told(&mut a, "* LIST (\\Subscribed \\NonExistent) \"/\" nothere").await;
    command(&mut b, "b2", "UNSUBSCRIBE nothere").await;
    told(&mut a, "* LIST (\\NonExistent) \"/\" nothere").await;
    told_nothing(&mut a).await;
}

#[tokio::test]
async fn the_selected_mailbox_is_told_outside_idle() {
    let (_server, imap) = start().await;
    let mut a = imap.login(ALICE).await;
    let mut b = imap.login(ALICE).await;
    append(&mut b, "INBOX", "old").await;
    command(&mut a, "s", "SELECT INBOX").await;
    command(
        &mut a,
        "n1",
        "NOTIFY SET (SELECTED (MessageNew (UID BODY[HEADER.FIELDS (SUBJECT)]) MessageExpunge FlagChange)) (PERSONAL (MessageNew MessageExpunge))",
    )
    .await;
    // A new message: EXISTS and the fetch attributes asked for, while A
    // sends nothing; no STATUS for the selected mailbox.
    append(&mut b, "INBOX", "pushed").await;
    told(&mut a, "* 2 EXISTS").await;
    let header = "Subject: pushed\r\n\r\n";
    let fetch = format!(
        "* 2 FETCH (UID 2 BODY[HEADER.FIELDS (SUBJECT)] {{{}}}",
        header.len()
    );
    let before = told(&mut a, &fetch).await;
    assert_eq!(before, ["* 2 RECENT"]);
    assert_eq!(a.read_bytes(header.len()).await, header.as_bytes());
    assert_eq!(a.line().await, ")");
    // The notification's fetch sets no \Seen.
    command(&mut b, "b0", "SELECT INBOX").await;
    let r = command(&mut b, "b1", "FETCH 2 FLAGS").await;
    assert!(!r[0].contains("\\Seen"), "{r:?}");
    // A flag change and an expunge by B.
    command(&mut b, "b2", "STORE 1 +FLAGS.SILENT (\\Flagged)").await;
    told(&mut a, "* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent))").await;
    command(&mut b, "b3", "STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    command(&mut b, "b4", "EXPUNGE").await;
    told(&mut a, "* 1 EXPUNGE").await;
    told_nothing(&mut a).await;
    let noop = command(&mut a, "n2", "NOOP").await;
    assert_eq!(noop.len(), 1, "{noop:?}");
}

#[tokio::test]
async fn selected_delayed_holds_expunges_for_a_command() {
    let (_server, imap) = start().await;
    let mut a = imap.login(ALICE).await;
    let mut b = imap.login(ALICE).await;
    append(&mut b, "INBOX", "one").await;
    append(&mut b, "INBOX", "two").await;
    command(&mut a, "s", "SELECT INBOX").await;
    command(
        &mut a,
        "n1",
        "NOTIFY SET (SELECTED-DELAYED (MessageNew MessageExpunge))",
    )
    .await;
    command(&mut b, "b0", "SELECT INBOX").await;
    command(&mut b, "b1", "STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    command(&mut b, "b2", "EXPUNGE").await;
    // Without FlagChange, flag changes are not told (as Dovecot).
    command(&mut b, "b3", "UID STORE 2 +FLAGS.SILENT (\\Flagged)").await;
    append(&mut b, "INBOX", "three").await;
    // The arrival is told; the expunged message keeps its number.
    assert_eq!(told(&mut a, "* 3 EXISTS").await, Vec::<String>::new());
    // (\\Recent goes to whichever session claims it first: A or B.)
    let recent = a.line().await;
    assert!(recent.ends_with(" RECENT"), "{recent}");
    told_nothing(&mut a).await;
    let noop = command(&mut a, "n2", "NOOP").await;
    assert_eq!(noop[0], "* 1 EXPUNGE", "{noop:?}");
    assert!(!noop.iter().any(|l| l.contains("Flagged")), "{noop:?}");
}

#[tokio::test]
async fn no_events_for_the_selected_mailbox_sends_nothing_of_it() {
    let (_server, imap) = start().await;
    let mut a = imap.login(ALICE).await;
    let mut b = imap.login(ALICE).await;
    command(&mut a, "s", "SELECT INBOX").await;
    command(
        &mut a,
        "n1",
        "NOTIFY SET (SELECTED NONE) (PERSONAL (MailboxName))",
    )
    .await;
    append(&mut b, "INBOX", "quiet").await;
    command(&mut b, "b1", "CREATE Loud").await;
    // Only the LIST: nothing of the new message, not even after a
    // command (RFC 5465 3.1; Dovecot sends no EXISTS either).
    told(&mut a, "* LIST () \"/\" Loud").await;
    told_nothing(&mut a).await;
    let noop = command(&mut a, "n2", "NOOP").await;
    assert_eq!(noop.len(), 1, "{noop:?}");
    // Nor in IDLE.
    a.send(b"i IDLE\r\n").await;
    assert_eq!(a.line().await, "+ idling");
    append(&mut b, "INBOX", "quieter").await;
    told_nothing(&mut a).await;
    a.send(b"DONE\r\n").await;
    assert!(a.line().await.starts_with("i OK"));
    // Asked for again, the view catches up before NOTIFY's OK.
    let r = command(
        &mut a,
        "n3",
        "NOTIFY SET (SELECTED (MessageNew MessageExpunge))",
    )
    .await;
    assert_eq!(r[0], "* 2 EXISTS", "{r:?}");
    // NOTIFY NONE: no events at all, also none IMAP sends without NOTIFY.
    command(&mut a, "n4", "NOTIFY NONE").await;
    append(&mut b, "INBOX", "third").await;
    command(&mut b, "b2", "CREATE Silent").await;
    told_nothing(&mut a).await;
    let noop = command(&mut a, "n5", "NOOP").await;
    assert_eq!(noop.len(), 1, "{noop:?}");
}

#[tokio::test]
async fn idle_tells_other_mailboxes_too() {
    let (_server, imap) = start().await;
    let mut a = imap.login(ALICE).await;
    let mut b = imap.login(ALICE).await;
    command(&mut a, "n1", "NOTIFY SET (PERSONAL (MailboxName))").await;
    command(&mut a, "s", "SELECT INBOX").await;
    a.send(b"i IDLE\r\n").await;
    assert_eq!(a.line().await, "+ idling");
    command(&mut b, "b1", "CREATE During").await;
    told(&mut a, "* LIST () \"/\" During").await;
    a.send(b"DONE\r\n").await;
    assert!(a.line().await.starts_with("i OK"));
}

#[tokio::test]
async fn bad_filters_and_events_are_refused() {
    let (_server, imap) = start_with(|c| c.imap.max_notify_mailboxes = 2).await;
    // Not before login.
    let (mut c, _) = Pop3Client::connect(imap.imap).await;
    let r = c.imap("x", "NOTIFY NONE").await;
    assert!(r[0].starts_with("x BAD"), "{r:?}");
    let mut a = imap.login(ALICE).await;
    for bad in [
        "NOTIFY",
        "NOTIFY SET",
        "NOTIFY MAYBE",
        "NOTIFY SET (PERSONAL)",
        "NOTIFY SET (PERSONAL ())",
        "NOTIFY SET (EVERYWHERE (MessageNew MessageExpunge))",
        "NOTIFY SET (SELECTED (MessageNew))",
        "NOTIFY SET (SELECTED (MessageExpunge))",
        "NOTIFY SET (SELECTED-DELAYED (FlagChange))",
        "NOTIFY SET (PERSONAL (NoSuchEvent))",
        "NOTIFY SET (PERSONAL (MessageNew (UID) MessageExpunge))",
        "NOTIFY SET (SELECTED (MessageNew MessageExpunge)) (SELECTED-DELAYED NONE)",
        "NOTIFY SET (SUBTREE (MessageNew MessageExpunge))",
        "NOTIFY SET (SELECTED (MessageNew MessageExpunge SubscriptionChange))",
        "NOTIFY SET STATUS",
        "NOTIFY SET (PERSONAL (MailboxName)",
    ] {
        let r = a.imap("b", bad).await;
        assert_eq!(r.len(), 1, "{bad}: {r:?}");
        assert!(r[0].starts_with("b BAD "), "{bad}: {r:?}");
    }
    let r = a
        .imap(
            "n",
            "NOTIFY SET (PERSONAL (MessageNew MessageExpunge AnnotationChange))",
        )
        .await;
    assert_eq!(
        r,
        ["n NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)] Unsupported NOTIFY events: AnnotationChange"]
    );
    let r = a
        .imap("m", "NOTIFY SET (PERSONAL (MailboxMetadataChange))")
        .await;
    assert!(r[0].starts_with("m NO [BADEVENT ("), "{r:?}");
    let r = a
        .imap("o", "NOTIFY SET (MAILBOXES (a b c) (MailboxName))")
        .await;
    assert_eq!(r, ["o NO [NOTIFICATIONOVERFLOW] Too many mailbox names"]);
    // Within the limit, and mailboxes that do not exist, are fine.
    command(&mut a, "p", "NOTIFY SET (SUBTREE (a b) (MailboxName))").await;
    // The session goes on.
    command(&mut a, "q", "NOOP").await;
}

/// Python's imaplib as the client: NOTIFY through `xatom`, and what
/// another session does arrives as untagged responses imaplib files
/// under LIST, STATUS and EXISTS.
#[tokio::test]
async fn imaplib_hears_what_another_client_does() {
    let (_server, imap) = start().await;
    let port = imap.imap.port();
    let out = imaplib_as_alice(
        &imap,
        &format!(
            "typ, data = m.xatom('NOTIFY', 'SET (SELECTED (MessageNew MessageExpunge)) (PERSONAL (MessageNew MessageExpunge MailboxName))')\n\
             assert typ == 'OK', (typ, data)\n\
             other = imaplib.IMAP4('localhost', {port}, timeout=30)\n\
             other.login(user, password)\n\
             assert other.create('Py')[0] == 'OK'\n\
             assert other.append('Py', None, None, b'Subject: py\\r\\n\\r\\nhi\\r\\n')[0] == 'OK'\n\
             assert other.append('INBOX', None, None, b'Subject: in\\r\\n\\r\\nhi\\r\\n')[0] == 'OK'\n\
             import time\n\
             time.sleep(1)\n\
             m.noop()\n\
             print(m.response('LIST')[1])\n\
             print(m.response('STATUS')[1])\n\
             print(m.response('EXISTS')[1])\n"
        ),
    )
    .await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "[b'() \"/\" Py']", "{out}");
    assert!(
        lines[1].starts_with("[b'Py (MESSAGES 1 UIDNEXT 2 UIDVALIDITY "),
        "{out}"
    );
    // SELECT's `0 EXISTS`, then the one pushed.
    assert_eq!(lines[2], "[b'0', b'1']", "{out}");
}

/// While part of a command is in, nothing is told: a command is in
/// progress. Once it is answered, the events come.
#[tokio::test]
async fn nothing_is_told_in_the_middle_of_a_command() {
    let (_server, imap) = start().await;
    let mut a = imap.login(ALICE).await;
    let mut b = imap.login(ALICE).await;
    command(&mut a, "n1", "NOTIFY SET (PERSONAL (MailboxName))").await;
    // Half a command, then a synchronising literal announced.
    a.send(b"c1 STATUS INBOX").await;
    command(&mut b, "b1", "CREATE Early").await;
    told_nothing(&mut a).await;
    a.send(b" (MESSAGES)\r\nc2 CREATE {4}\r\n").await;
    // The STATUS is answered, then the literal asked for; the LIST waits.
    let r = a.until_tag("c1").await;
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(r[0].starts_with("* STATUS INBOX"), "{r:?}");
    assert!(a.line().await.starts_with("+ "));
    told_nothing(&mut a).await;
    a.send(b"Late\r\n").await;
    let r = a.until_tag("c2").await;
    assert!(r.last().unwrap().starts_with("c2 OK"), "{r:?}");
    // Now both mailboxes are told.
    let mut rest = vec![a.line().await, a.line().await];
    rest.sort();
    assert_eq!(rest, ["* LIST () \"/\" Early", "* LIST () \"/\" Late"]);
}

/// Another process's changes (a store opened on the same data dir beside
/// `postern up`) reach a NOTIFY session of the real binary, through the
/// store's poller: a mailbox created, a message appended, a subscription.
#[tokio::test(flavor = "multi_thread")]
async fn another_process_is_told_too() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = tokio::task::block_in_place(|| {
        postern_cli(&data, &["user", "add", ALICE, "--password-stdin"], PASSWORD)
    });
    assert!(out.status.success(), "{out:?}");
    let binary = tokio::task::block_in_place(|| Binary::start(&data));
    let (mut a, greeting) = Pop3Client::connect(binary.imap).await;
    assert!(greeting.starts_with("* OK"), "{greeting}");
    command(&mut a, "l", &format!("LOGIN {ALICE} \"{PASSWORD}\"")).await;
    command(
        &mut a,
        "n1",
        "NOTIFY SET (PERSONAL (MessageNew MessageExpunge MailboxName SubscriptionChange))",
    )
    .await;
    let other = store::Store::open(&data).unwrap();
    let alice = other.account(ALICE).await.unwrap().unwrap().id;
    other.create_mailbox(alice, "Elsewhere").await.unwrap();
    told(&mut a, "* LIST () \"/\" Elsewhere").await;
    other
        .append(
            alice,
            "Elsewhere",
            b"Subject: far\r\n\r\naway\r\n".to_vec(),
            &[],
            1_700_000_000,
        )
        .await
        .unwrap();
    let line = tokio::time::timeout(Duration::from_secs(10), a.line())
        .await
        .expect("told");
    assert!(
        line.starts_with("* STATUS Elsewhere (MESSAGES 1 UIDNEXT 2 "),
        "{line}"
    );
    other
        .set_subscribed(alice, "Elsewhere", true)
        .await
        .unwrap();
    told(&mut a, "* LIST (\\Subscribed) \"/\" Elsewhere").await;
    command(&mut a, "z", "LOGOUT").await;
    drop(binary);
}

/// As Dovecot (and its imaptest `notify` script): outside the selected
/// filter an event may come alone, and `NOTIFY SET STATUS` gives the
/// STATUS items each event implies.
#[tokio::test]
async fn set_status_gives_what_each_event_implies() {
    let (_server, imap) = start().await;
    let mut a = imap.login(ALICE).await;
    command(&mut a, "c1", "CREATE Work").await;
    append(&mut a, "Work", "one").await;
    let work = uid_validity(&mut a, "Work").await;
    let r = command(
        &mut a,
        "n1",
        "NOTIFY SET STATUS (MAILBOXES Work (MessageExpunge))",
    )
    .await;
    assert_eq!(r, ["* STATUS Work (MESSAGES 1)", "n1 OK NOTIFY completed"]);
    let r = command(
        &mut a,
        "n2",
        "NOTIFY SET STATUS (MAILBOXES Work (MessageNew))",
    )
    .await;
    assert_eq!(
        r,
        [
            format!("* STATUS Work (MESSAGES 1 UIDNEXT 2 UIDVALIDITY {work})"),
            "n2 OK NOTIFY completed".into()
        ]
    );
    let r = command(
        &mut a,
        "n4",
        "NOTIFY SET STATUS (MAILBOXES Work (FlagChange))",
    )
    .await;
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(
        r[0].starts_with(&format!("* STATUS Work (UIDVALIDITY {work} HIGHESTMODSEQ ")),
        "{r:?}"
    );
    let r = command(
        &mut a,
        "n5",
        "NOTIFY SET (MAILBOXES Work (MessageNew MessageExpunge))",
    )
    .await;
    assert_eq!(r, ["n5 OK NOTIFY completed"]);
}
