//! Store operations, end to end through the public API.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::sql::accounts;
use crate::sqlite::schema;
use crate::*;

/// Argon2 is slow in debug builds: most tests create accounts with one
/// cached hash (password "secret") instead of hashing every time.
async fn quick_account(store: &Store, address: &str) -> Account {
    static HASH: OnceLock<String> = OnceLock::new();
    let hash = HASH
        .get_or_init(|| accounts::hash_password("secret").unwrap())
        .clone();
    let address = address.to_lowercase();
    store
        .inner
        .write(false, move |conn| {
            accounts::insert_account(conn, &address, &hash, 0)
        })
        .await
        .unwrap()
}

/// With `POSTERN_TEST_POSTGRES` set (a key=value connection string, such
/// as `host=127.0.0.1 port=5432 user=postgres dbname=postern_test`),
/// every store the unit tests open is kept in that PostgreSQL database
/// instead, in a schema of its own named after its data dir (so opening
/// the same dir again finds the same store): the one suite runs on both
/// engines. `.ci/run` runs it both ways.
pub(crate) fn on_test_postgres(dir: &std::path::Path, mut options: StoreOptions) -> StoreOptions {
    use std::hash::{Hash, Hasher};
    let Some(base) = test_postgres() else {
        return options;
    };
    if options.postgres_url.is_some() {
        return options;
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut hasher);
    let schema = format!("t_{:016x}", hasher.finish());
    // On a thread of its own: the blocking client cannot run on a tokio
    // worker.
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut client = postgres::Client::connect(&base, postgres::NoTls)
                .expect("POSTERN_TEST_POSTGRES names a database the tests can use");
            client
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .expect("create a test schema");
        });
    });
    options.postgres_url = Some(format!("{base} options='-c search_path={schema}'"));
    options
}

/// Whether a test about SQLite itself is to be left out, because this
/// run keeps its stores in PostgreSQL (`POSTERN_TEST_POSTGRES`); says so.
pub(crate) fn sqlite_only(what: &str) -> bool {
    let postgres = test_postgres().is_some();
    if postgres {
        eprintln!("not run on PostgreSQL: this test is about {what}");
    }
    postgres
}

/// The test database's connection string, if the tests run on PostgreSQL.
pub(crate) fn test_postgres() -> Option<String> {
    std::env::var("POSTERN_TEST_POSTGRES")
        .ok()
        .filter(|s| !s.is_empty())
}

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open_with(
        dir.path(),
        StoreOptions {
            poll_interval: Duration::from_millis(50),
            ..StoreOptions::default()
        },
    )
    .unwrap()
}

fn message(raw: &[u8], recipients: &[&str]) -> NewQueuedMessage {
    NewQueuedMessage {
        raw: raw.to_vec(),
        sender: "sender@example.org".into(),
        recipients: recipients.iter().map(|r| r.to_string()).collect(),
        auth_user: None,
        body_type: BodyType::EightBitMime,
        smtputf8: false,
        received_at: 1_700_000_000,
    }
}

fn now() -> Timestamp {
    chrono::Utc::now().timestamp()
}

const LEASE: Duration = Duration::from_secs(60);

/// Claims everything due and delivers each recipient to its account's
/// INBOX.
async fn deliver_all(store: &Store) {
    for queued in store.claim_due(now(), LEASE, 1000).await.unwrap() {
        let mut deliveries = Vec::new();
        for rcpt in &queued.recipients {
            let account = store
                .resolve_recipient(&rcpt.address)
                .await
                .unwrap()
                .expect("local recipient");
            deliveries.push(LocalDelivery {
                recipient: rcpt.id,
                account: account.id,
                mailbox: "INBOX".into(),
            });
        }
        store.deliver_local(queued.id, deliveries).await.unwrap();
    }
}

fn raw_message(subject: &str) -> Vec<u8> {
    format!(
        "Received: from client by localhost\r\nFrom: Sender <sender@example.org>\r\n\
         To: alice@localhost\r\nSubject: {subject}\r\n\
         Date: Mon, 13 Nov 2023 10:00:00 +0000\r\n\r\nBody of {subject}.\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn accounts_crud_and_authenticate() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);

    let alice = store
        .add_account("Alice@LocalHost", "hunter2")
        .await
        .unwrap();
    assert_eq!(alice.address, "alice@localhost");
    assert!(matches!(
        store.add_account("ALICE@localhost", "other").await,
        Err(StoreError::AlreadyExists(_))
    ));
    for bad in [
        "",
        "alice",
        "@localhost",
        "alice@",
        "a@b@c",
        "al ice@x",
        "a\u{7}@x",
    ] {
        assert!(
            matches!(
                store.add_account(bad, "pw").await,
                Err(StoreError::Invalid(_))
            ),
            "{bad:?} accepted"
        );
    }

    let listed = store.accounts().await.unwrap();
    assert_eq!(listed, vec![alice.clone()]);
    assert_eq!(
        store.account("ALICE@LOCALHOST").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(store.account("bob@localhost").await.unwrap(), None);

    assert_eq!(
        store
            .authenticate("alice@localhost", "hunter2")
            .await
            .unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        store
            .authenticate("Alice@localhost", "wrong")
            .await
            .unwrap(),
        None
    );
    let started = std::time::Instant::now();
    assert_eq!(
        store
            .authenticate("nobody@localhost", "hunter2")
            .await
            .unwrap(),
        None
    );
    // The unknown account went through argon2 as well (tens of ms at least).
    assert!(started.elapsed() > Duration::from_millis(10));

    store
        .set_password("alice@localhost", "new-pass")
        .await
        .unwrap();
    assert_eq!(
        store
            .authenticate("alice@localhost", "hunter2")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .authenticate("alice@localhost", "new-pass")
            .await
            .unwrap(),
        Some(alice.clone())
    );
    assert!(matches!(
        store.set_password("nobody@localhost", "x").await,
        Err(StoreError::NotFound(_))
    ));

    store.delete_account("ALICE@localhost").await.unwrap();
    assert!(store.accounts().await.unwrap().is_empty());
    assert!(matches!(
        store.delete_account("alice@localhost").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.mailboxes(alice.id).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn default_mailboxes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    let bob = quick_account(&store, "bob@localhost").await;

    let boxes = store.mailboxes(alice.id).await.unwrap();
    let names: Vec<_> = boxes.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(
        names,
        ["INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"]
    );
    let special: Vec<_> = boxes.iter().map(|b| b.special_use.as_deref()).collect();
    assert_eq!(
        special,
        [
            None,
            Some("\\Archive"),
            Some("\\Drafts"),
            Some("\\Junk"),
            Some("\\Sent"),
            Some("\\Trash")
        ]
    );
    for b in &boxes {
        assert!(b.subscribed);
        assert_ne!(b.uid_validity, 0);
        assert_eq!(b.uid_next, Uid(1));
        assert_eq!(b.highest_modseq, ModSeq(1));
        assert_eq!((b.messages, b.unseen), (0, 0));
    }
    let mut validities: Vec<u32> = boxes.iter().map(|b| b.uid_validity).collect();
    validities.extend(
        store
            .mailboxes(bob.id)
            .await
            .unwrap()
            .iter()
            .map(|b| b.uid_validity),
    );
    let count = validities.len();
    validities.sort_unstable();
    validities.dedup();
    assert_eq!(validities.len(), count, "UIDVALIDITY values repeat");
}

#[tokio::test]
async fn domains_aliases_and_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    assert_eq!(store.domains().await.unwrap(), ["localhost"]);

    store.add_domain("Example.ORG").await.unwrap();
    store.add_domain("example.org").await.unwrap();
    assert!(matches!(
        store.add_domain("bad domain").await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(store.domains().await.unwrap(), ["example.org", "localhost"]);
    assert!(store.is_local_domain("EXAMPLE.org").await.unwrap());
    assert!(store.is_local_domain("LocalHost").await.unwrap());
    assert!(!store.is_local_domain("elsewhere.net").await.unwrap());

    store
        .add_alias("Postmaster@Example.org", "ALICE@localhost")
        .await
        .unwrap();
    store
        .add_alias("info@alias-domain.test", "alice@localhost")
        .await
        .unwrap();
    assert!(store.is_local_domain("alias-domain.test").await.unwrap());
    assert!(matches!(
        store
            .add_alias("postmaster@example.org", "alice@localhost")
            .await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.add_alias("alice@localhost", "alice@localhost").await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.add_alias("x@localhost", "nobody@localhost").await,
        Err(StoreError::NotFound(_))
    ));
    // An alias's address cannot become an account either.
    assert!(matches!(
        store.add_account("POSTMASTER@example.org", "pw").await,
        Err(StoreError::AlreadyExists(_))
    ));

    for address in [
        "alice@localhost",
        "ALICE@LOCALHOST",
        "postmaster@EXAMPLE.ORG",
        "Info@Alias-Domain.test",
    ] {
        assert_eq!(
            store.resolve_recipient(address).await.unwrap(),
            Some(alice.clone()),
            "{address}"
        );
    }
    assert_eq!(
        store.resolve_recipient("bob@localhost").await.unwrap(),
        None
    );
    assert_eq!(
        store
            .resolve_recipient("alice+tag@localhost")
            .await
            .unwrap(),
        None
    );

    // Deleting the account removes its aliases.
    store.delete_account("alice@localhost").await.unwrap();
    assert_eq!(
        store
            .resolve_recipient("postmaster@example.org")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn enqueue_claim_deliver_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    let bob = quick_account(&store, "bob@localhost").await;

    // Bytes that must come back exactly: bare LF, trailing spaces, 8-bit.
    let raw = b"Received: from x\r\nFrom: s@example.org\r\nSubject: caf\xc3\xa9 \r\n\r\nline\nbare LF \r\n\x00\xff end".to_vec();
    let mut msg = message(&raw, &["alice@localhost", "Bob@LOCALHOST"]);
    msg.auth_user = Some("submitter".into());
    msg.smtputf8 = true;
    let id = store.enqueue(msg).await.unwrap();

    let listed = store.queue().await.unwrap();
    assert_eq!(listed.len(), 1);
    let q = &listed[0];
    assert_eq!(q.id, id);
    assert_eq!(q.sender, "sender@example.org");
    assert_eq!(q.auth_user.as_deref(), Some("submitter"));
    assert_eq!(q.body_type, BodyType::EightBitMime);
    assert!(q.smtputf8);
    assert_eq!(q.size, raw.len() as u64);
    assert_eq!(q.received_at, 1_700_000_000);
    assert_eq!(q.recipients.len(), 2);
    assert!(q
        .recipients
        .iter()
        .all(|r| r.state == RecipientState::Pending && r.attempts == 0 && r.last_error.is_none()));
    assert_eq!(q.recipients[1].address, "Bob@LOCALHOST");

    assert_eq!(*store.queued_message_raw(id).await.unwrap(), raw);

    let t = now();
    let claimed = store.claim_due(t, LEASE, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].recipients.len(), 2);
    assert!(claimed[0]
        .recipients
        .iter()
        .all(|r| r.leased_until == t + 60));
    let r = &claimed[0].recipients;
    store
        .deliver_local(
            id,
            vec![
                LocalDelivery {
                    recipient: r[0].id,
                    account: alice.id,
                    mailbox: "INBOX".into(),
                },
                LocalDelivery {
                    recipient: r[1].id,
                    account: bob.id,
                    mailbox: "inbox".into(),
                },
            ],
        )
        .await
        .unwrap();

    for account in [alice.id, bob.id] {
        let messages = store.messages(account, "Inbox").await.unwrap();
        assert_eq!(messages.len(), 1);
        let m = &messages[0];
        assert_eq!(m.uid, Uid(1));
        assert_eq!(m.modseq, ModSeq(2));
        assert!(m.flags.is_empty());
        assert_eq!(m.internal_date, 1_700_000_000);
        assert_eq!(m.size, raw.len() as u64);
        assert_eq!(m.summary.subject.as_deref(), Some("café"));
        assert_eq!(
            store.message_raw(account, "INBOX", Uid(1)).await.unwrap(),
            Some(raw.clone())
        );
        assert_eq!(
            store.message_raw(account, "INBOX", Uid(2)).await.unwrap(),
            None
        );
        let inbox = &store.mailboxes(account).await.unwrap()[0];
        assert_eq!((inbox.messages, inbox.unseen), (1, 1));
    }
    assert!(matches!(
        store.messages(alice.id, "Nope").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.message_raw(alice.id, "Nope", Uid(1)).await,
        Err(StoreError::NotFound(_))
    ));
    // All recipients done: the entry is gone, the blob stays for the mail.
    assert!(store.queue().await.unwrap().is_empty());
    assert!(matches!(
        store.queued_message_raw(id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.blob_count().await.unwrap(), 1);
}

#[tokio::test]
async fn blob_dedup_and_refcounts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut addresses = Vec::new();
    for i in 0..10 {
        let address = format!("user{i}@localhost");
        quick_account(&store, &address).await;
        addresses.push(address);
    }
    let rcpts: Vec<&str> = addresses.iter().map(String::as_str).collect();
    let raw = raw_message("to everyone");
    store.enqueue(message(&raw, &rcpts)).await.unwrap();
    // The same bytes queued again share the blob too.
    let second = store
        .enqueue(message(&raw, &["elsewhere@remote.test"]))
        .await
        .unwrap();
    assert_eq!(store.blob_count().await.unwrap(), 1);

    // Deliver the first entry only (the second is for a remote address).
    let claimed = store.claim_due(now(), LEASE, 10).await.unwrap();
    for queued in claimed {
        if queued.id == second {
            continue;
        }
        let mut deliveries = Vec::new();
        for r in &queued.recipients {
            let account = store.resolve_recipient(&r.address).await.unwrap().unwrap();
            deliveries.push(LocalDelivery {
                recipient: r.id,
                account: account.id,
                mailbox: "INBOX".into(),
            });
        }
        store.deliver_local(queued.id, deliveries).await.unwrap();
    }
    assert_eq!(store.blob_count().await.unwrap(), 1);
    assert_eq!(store.queue().await.unwrap().len(), 1);

    // Finish the second entry; the mailboxes still hold the blob.
    let r = store.queue().await.unwrap()[0].recipients[0].id;
    store.mark_delivered(second, &[r]).await.unwrap();
    assert!(store.queue().await.unwrap().is_empty());
    assert_eq!(store.blob_count().await.unwrap(), 1);

    for (i, address) in addresses.iter().enumerate() {
        assert_eq!(store.blob_count().await.unwrap(), 1, "after {i} deletions");
        store.delete_account(address).await.unwrap();
    }
    assert_eq!(store.blob_count().await.unwrap(), 0);
}

#[tokio::test]
async fn uids_and_modseqs_increase() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    for i in 0..3 {
        store
            .enqueue(message(
                &raw_message(&format!("m{i}")),
                &["alice@localhost"],
            ))
            .await
            .unwrap();
        deliver_all(&store).await;
    }
    // One more into Sent: its counters are its own.
    let id = store
        .enqueue(message(&raw_message("sent"), &["alice@localhost"]))
        .await
        .unwrap();
    let claimed = store.claim_due(now(), LEASE, 10).await.unwrap();
    store
        .deliver_local(
            id,
            vec![LocalDelivery {
                recipient: claimed[0].recipients[0].id,
                account: alice.id,
                mailbox: "Sent".into(),
            }],
        )
        .await
        .unwrap();

    let messages = store.messages(alice.id, "INBOX").await.unwrap();
    let got: Vec<(u32, u64, Option<String>)> = messages
        .iter()
        .map(|m| (m.uid.0, m.modseq.0, m.summary.subject.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, 2, Some("m0".into())),
            (2, 3, Some("m1".into())),
            (3, 4, Some("m2".into()))
        ]
    );
    let boxes = store.mailboxes(alice.id).await.unwrap();
    let inbox = boxes.iter().find(|b| b.name == "INBOX").unwrap();
    assert_eq!((inbox.uid_next, inbox.highest_modseq), (Uid(4), ModSeq(4)));
    assert_eq!((inbox.messages, inbox.unseen), (3, 3));
    let sent = boxes.iter().find(|b| b.name == "Sent").unwrap();
    assert_eq!((sent.uid_next, sent.highest_modseq), (Uid(2), ModSeq(2)));
    assert_eq!(sent.messages, 1);
    let drafts = boxes.iter().find(|b| b.name == "Drafts").unwrap();
    assert_eq!(
        (drafts.uid_next, drafts.highest_modseq),
        (Uid(1), ModSeq(1))
    );
}

#[tokio::test]
async fn claim_leases_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut ids = Vec::new();
    for i in 0..3 {
        let mut m = message(&raw_message(&format!("m{i}")), &["r@remote.test"]);
        m.received_at = 1_700_000_000 + i;
        ids.push(store.enqueue(m).await.unwrap());
    }
    // After the enqueues, which make their mail due at their own `now`: a
    // second that ends between them and this would leave nothing due at t.
    let t = now();

    let first = store.claim_due(t, LEASE, 2).await.unwrap();
    assert_eq!(
        first.iter().map(|m| m.id).collect::<Vec<_>>(),
        ids[..2].to_vec()
    );
    let rest = store.claim_due(t, LEASE, 10).await.unwrap();
    assert_eq!(rest.iter().map(|m| m.id).collect::<Vec<_>>(), vec![ids[2]]);
    assert!(store.claim_due(t, LEASE, 10).await.unwrap().is_empty());
    assert!(store.claim_due(t + 59, LEASE, 10).await.unwrap().is_empty());
    // The lease has run out: everything is due again.
    let again = store.claim_due(t + 60, LEASE, 10).await.unwrap();
    assert_eq!(again.len(), 3);
    assert!(store.claim_due(t + 60, LEASE, 0).await.unwrap().is_empty());
}

/// A message for three remote recipients, all claimed at `t` (leased until
/// `t + 60`).
async fn three_remote_recipients_claimed(
    store: &Store,
    t: Timestamp,
) -> (QueueId, Vec<RecipientId>) {
    let id = store
        .enqueue(message(
            &raw_message("x"),
            &["a@remote.test", "b@remote.test", "c@remote.test"],
        ))
        .await
        .unwrap();
    let claimed = store.claim_due(t, LEASE, 10).await.unwrap();
    (id, claimed[0].recipients.iter().map(|r| r.id).collect())
}

#[tokio::test]
async fn defer_bounce_and_states() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let t = now();
    let (id, r) = three_remote_recipients_claimed(&store, t).await;

    store
        .defer(id, &[r[0]], "451 4.7.1 try later", t + 300)
        .await
        .unwrap();
    store
        .bounce(id, &[r[1]], "550 5.1.1 no such user")
        .await
        .unwrap();
    store.mark_delivered(id, &[r[2]]).await.unwrap();

    let q = store.queue().await.unwrap();
    assert_eq!(q.len(), 1);
    let rs = &q[0].recipients;
    assert_eq!(rs[0].state, RecipientState::Deferred);
    assert_eq!(rs[0].attempts, 1);
    assert_eq!(rs[0].next_attempt_at, t + 300);
    assert_eq!(rs[0].last_error.as_deref(), Some("451 4.7.1 try later"));
    assert_eq!(rs[1].state, RecipientState::Bounced);
    assert_eq!(rs[1].attempts, 1);
    assert_eq!(rs[1].last_error.as_deref(), Some("550 5.1.1 no such user"));
    assert_eq!(rs[2].state, RecipientState::Delivered);

    assert!(store
        .claim_due(t + 299, LEASE, 10)
        .await
        .unwrap()
        .is_empty());
    let due = store.claim_due(t + 300, LEASE, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].recipients.len(), 1);
    assert_eq!(due[0].recipients[0].id, r[0]);
    store
        .defer(id, &[r[0]], "451 again", t + 900)
        .await
        .unwrap();
    assert_eq!(store.queue().await.unwrap()[0].recipients[0].attempts, 2);

    // Unknown recipients or entries are refused, and change nothing.
    assert!(matches!(
        store.bounce(id, &[r[0], RecipientId(9999)], "x").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.queue().await.unwrap()[0].recipients[0].state,
        RecipientState::Deferred
    );
    assert!(matches!(
        store.defer(QueueId(9999), &[r[0]], "x", t).await,
        Err(StoreError::NotFound(_))
    ));

    store.bounce(id, &[r[0]], "expired").await.unwrap();
    assert!(store.queue().await.unwrap().is_empty());
    assert_eq!(store.blob_count().await.unwrap(), 0);
}

#[tokio::test]
async fn queued_message_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let raw = raw_message("one");
    let id = store
        .enqueue(message(&raw, &["a@remote.test", "b@remote.test"]))
        .await
        .unwrap();
    let found = store.queued_message(id).await.unwrap().unwrap();
    assert_eq!(found.id, id);
    assert_eq!(found.sender, "sender@example.org");
    assert_eq!(found.size, raw.len() as u64);
    let addresses: Vec<&str> = found
        .recipients
        .iter()
        .map(|r| r.address.as_str())
        .collect();
    assert_eq!(addresses, ["a@remote.test", "b@remote.test"]);
    assert!(found
        .recipients
        .iter()
        .all(|r| r.state == RecipientState::Pending));
    assert!(store.queued_message(QueueId(9999)).await.unwrap().is_none());
}

#[tokio::test]
async fn retry_makes_waiting_recipients_due() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let t = now();
    let (id, r) = three_remote_recipients_claimed(&store, t).await;
    store
        .defer(id, &[r[0]], "451 later", t + 3600)
        .await
        .unwrap();
    store.bounce(id, &[r[1]], "550 no").await.unwrap();
    // r[2] stays pending, leased until t + 60 to a delivery under way.
    assert!(store.claim_due(t + 1, LEASE, 10).await.unwrap().is_empty());

    assert_eq!(store.retry_queued(id, t + 1).await.unwrap(), 1);
    let q = store.queued_message(id).await.unwrap().unwrap();
    assert_eq!(q.recipients[0].next_attempt_at, t + 1);
    assert_eq!(q.recipients[0].state, RecipientState::Deferred);
    assert_eq!(q.recipients[0].attempts, 1);
    assert_eq!(q.recipients[1].state, RecipientState::Bounced);
    // The lease is kept: no second delivery while the first runs.
    assert_eq!(q.recipients[2].leased_until, t + 60);
    let due = store.claim_due(t + 1, LEASE, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        due[0].recipients.iter().map(|r| r.id).collect::<Vec<_>>(),
        [r[0]]
    );
    // Due again once the lease is over: nothing to cut short.
    assert_eq!(store.retry_queued(id, t + 200).await.unwrap(), 0);

    // A flush while a deferred recipient is being delivered does not hand
    // it to a second claimer.
    store
        .defer(id, &[r[0]], "451 later", t + 3600)
        .await
        .unwrap();
    let due = store.claim_due(t + 3600, LEASE, 10).await.unwrap();
    assert_eq!(
        due[0].recipients.len(),
        2,
        "r[0] and r[2] (its lease ran out)"
    );
    store.flush_queue(t + 3601).await.unwrap();
    assert!(store
        .claim_due(t + 3601, LEASE, 10)
        .await
        .unwrap()
        .is_empty());

    assert!(matches!(
        store.retry_queued(QueueId(9999), t).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn flush_makes_every_deferred_recipient_due() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let first = store
        .enqueue(message(
            &raw_message("1"),
            &["a@remote.test", "b@remote.test"],
        ))
        .await
        .unwrap();
    let second = store
        .enqueue(message(&raw_message("2"), &["c@remote.test"]))
        .await
        .unwrap();
    // After both are due (taken before, a second turning over between
    // the two enqueues left the second one out of the claim).
    let t = now();
    let claimed = store.claim_due(t, LEASE, 10).await.unwrap();
    for m in &claimed {
        let ids: Vec<RecipientId> = m.recipients.iter().map(|r| r.id).collect();
        store.defer(m.id, &ids, "451 later", t + 600).await.unwrap();
    }
    let third = store
        .enqueue(message(&raw_message("3"), &["d@remote.test"]))
        .await
        .unwrap();
    assert_eq!(store.flush_queue(t + 1).await.unwrap(), 3);
    assert_eq!(store.flush_queue(t + 1).await.unwrap(), 0);
    let due = store.claim_due(t + 1, LEASE, 10).await.unwrap();
    let mut ids: Vec<QueueId> = due.iter().map(|m| m.id).collect();
    ids.sort();
    assert_eq!(ids, [first, second, third]);
    assert_eq!(due.iter().map(|m| m.recipients.len()).sum::<usize>(), 4);
}

#[tokio::test]
async fn delete_queued_releases_the_blob() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    quick_account(&store, "alice@localhost").await;
    let raw = raw_message("shared");
    let remote = store
        .enqueue(message(&raw, &["bob@remote.test"]))
        .await
        .unwrap();
    let local = store
        .enqueue(message(&raw, &["alice@localhost"]))
        .await
        .unwrap();
    // The local copy delivered: the mailbox holds the blob too.
    store
        .deliver_local(
            local,
            vec![LocalDelivery {
                recipient: store
                    .queued_message(local)
                    .await
                    .unwrap()
                    .unwrap()
                    .recipients[0]
                    .id,
                account: store.account("alice@localhost").await.unwrap().unwrap().id,
                mailbox: "INBOX".into(),
            }],
        )
        .await
        .unwrap();
    assert_eq!(store.blob_count().await.unwrap(), 1);
    assert!(store.delete_queued(remote).await.unwrap());
    assert!(store.queued_message(remote).await.unwrap().is_none());
    assert!(store.queue().await.unwrap().is_empty());
    // Still referenced by alice's INBOX.
    assert_eq!(store.blob_count().await.unwrap(), 1);
    assert!(!store.delete_queued(remote).await.unwrap());

    let alone = store
        .enqueue(message(&raw_message("alone"), &["bob@remote.test"]))
        .await
        .unwrap();
    assert_eq!(store.blob_count().await.unwrap(), 2);
    assert!(store.delete_queued(alone).await.unwrap());
    assert_eq!(store.blob_count().await.unwrap(), 1);
    assert!(matches!(
        store.queued_message_raw(alone).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(!store.delete_queued(QueueId(9999)).await.unwrap());
}

#[tokio::test]
async fn deliver_to_missing_mailbox_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    let id = store
        .enqueue(message(
            &raw_message("x"),
            &["alice@localhost", "alice@localhost"],
        ))
        .await
        .unwrap();
    let claimed = store.claim_due(now(), LEASE, 10).await.unwrap();
    let r = &claimed[0].recipients;
    let result = store
        .deliver_local(
            id,
            vec![
                LocalDelivery {
                    recipient: r[0].id,
                    account: alice.id,
                    mailbox: "INBOX".into(),
                },
                LocalDelivery {
                    recipient: r[1].id,
                    account: alice.id,
                    mailbox: "No Such Box".into(),
                },
            ],
        )
        .await;
    assert!(matches!(result, Err(StoreError::NotFound(_))));
    assert!(store.messages(alice.id, "INBOX").await.unwrap().is_empty());
    let q = store.queue().await.unwrap();
    assert!(q[0]
        .recipients
        .iter()
        .all(|r| r.state == RecipientState::Pending));
    let inbox = &store.mailboxes(alice.id).await.unwrap()[0];
    assert_eq!((inbox.uid_next, inbox.highest_modseq), (Uid(1), ModSeq(1)));

    // Delivering again (twice, even) appends once per recipient.
    let good = vec![LocalDelivery {
        recipient: r[0].id,
        account: alice.id,
        mailbox: "INBOX".into(),
    }];
    store.deliver_local(id, good.clone()).await.unwrap();
    store.deliver_local(id, good).await.unwrap();
    assert_eq!(store.messages(alice.id, "INBOX").await.unwrap().len(), 1);
    assert!(matches!(
        store
            .deliver_local(
                QueueId(9999),
                vec![LocalDelivery {
                    recipient: r[0].id,
                    account: alice.id,
                    mailbox: "INBOX".into(),
                }]
            )
            .await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_enqueues_group_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let raw = raw_message(&format!("concurrent {i}"));
            store
                .enqueue(message(&raw, &["a@remote.test", "b@remote.test"]))
                .await
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap().unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200);
    let queued = store.queue().await.unwrap();
    assert_eq!(queued.len(), 200);
    assert!(queued.iter().all(|q| q.recipients.len() == 2));
    assert_eq!(store.blob_count().await.unwrap(), 200);
    // Group commit: concurrent requests shared transactions.
    let commits = store.inner.commits();
    assert!(commits < 200, "200 enqueues took {commits} commits");
}

/// A request alone in its batch runs without a savepoint: when it fails,
/// the whole transaction is rolled back, nothing of it stays, and the
/// writer goes on with the next request.
#[tokio::test]
async fn a_lone_failing_request_is_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let id = store
        .enqueue(message(&raw_message("x"), &["a@remote.test"]))
        .await
        .unwrap();
    let good = store.queue().await.unwrap()[0].recipients[0].id;
    // Touches a real recipient first, then fails: all undone.
    let result = store
        .defer(id, &[good, RecipientId(999_999)], "boom", 1)
        .await;
    assert!(matches!(result, Err(StoreError::NotFound(_))), "{result:?}");
    let first = &store.queue().await.unwrap()[0].recipients[0];
    assert_eq!(
        (first.state, first.attempts, first.last_error.as_deref()),
        (RecipientState::Pending, 0, None)
    );
    store.defer(id, &[good], "later", 1).await.unwrap();
    let first = &store.queue().await.unwrap()[0].recipients[0];
    assert_eq!(
        (first.state, first.attempts, first.last_error.as_deref()),
        (RecipientState::Deferred, 1, Some("later"))
    );
}

/// The first request of a batch runs without a savepoint: when it fails,
/// the transaction begins again and the batch's other requests commit,
/// in one commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_first_request_leaves_its_batch_to_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let id = store
        .enqueue(message(&raw_message("x"), &["a@remote.test"]))
        .await
        .unwrap();
    let good = store.queue().await.unwrap()[0].recipients[0].id;
    let before = store.inner.commits();
    // Holds the writer while the next requests queue up behind it.
    let (started, mut running) = tokio::sync::oneshot::channel();
    let hold = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .inner
                .write(false, move |_| {
                    let _ = started.send(());
                    std::thread::sleep(Duration::from_millis(400));
                    Ok(())
                })
                .await
        })
    };
    (&mut running).await.unwrap();
    let failing = {
        let store = store.clone();
        tokio::spawn(async move {
            // Touches a real recipient first, then fails: all undone.
            store
                .defer(id, &[good, RecipientId(999_999)], "boom", 1)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut others = Vec::new();
    for i in 0..3 {
        let store = store.clone();
        others.push(tokio::spawn(async move {
            store
                .enqueue(message(&raw_message(&format!("m{i}")), &["b@remote.test"]))
                .await
        }));
    }
    hold.await.unwrap().unwrap();
    let result = failing.await.unwrap();
    assert!(matches!(result, Err(StoreError::NotFound(_))), "{result:?}");
    for task in others {
        task.await.unwrap().unwrap();
    }
    // The writer counts a commit after it has answered the batch.
    for _ in 0..100 {
        if store.inner.commits() >= before + 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.inner.commits(), before + 2);
    let queue = store.queue().await.unwrap();
    assert_eq!(queue.len(), 4);
    let first = &queue.iter().find(|q| q.id == id).unwrap().recipients[0];
    assert_eq!(
        (first.state, first.attempts, first.last_error.as_deref()),
        (RecipientState::Pending, 0, None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_requests_roll_back_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let id = store
        .enqueue(message(&raw_message("x"), &["a@remote.test"]))
        .await
        .unwrap();
    let good = store.queue().await.unwrap()[0].recipients[0].id;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                store
                    .enqueue(message(&raw_message(&format!("m{i}")), &["b@remote.test"]))
                    .await
                    .map(|_| ())
            } else {
                // Touches a real recipient first, then fails: all undone.
                store
                    .defer(id, &[good, RecipientId(999_999)], "boom", 1)
                    .await
            }
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let result = task.await.unwrap();
        if i % 2 == 0 {
            result.unwrap();
        } else {
            assert!(matches!(result, Err(StoreError::NotFound(_))));
        }
    }
    let queue = store.queue().await.unwrap();
    assert_eq!(queue.len(), 51);
    let first = &queue.iter().find(|q| q.id == id).unwrap().recipients[0];
    assert_eq!(
        (first.state, first.attempts, first.last_error.as_deref()),
        (RecipientState::Pending, 0, None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deliveries_keep_uids_unique() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    for i in 0..50 {
        store
            .enqueue(message(
                &raw_message(&format!("m{i}")),
                &["alice@localhost"],
            ))
            .await
            .unwrap();
    }
    let claimed = store.claim_due(now(), LEASE, 100).await.unwrap();
    assert_eq!(claimed.len(), 50);
    let mut tasks = Vec::new();
    for queued in claimed {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .deliver_local(
                    queued.id,
                    vec![LocalDelivery {
                        recipient: queued.recipients[0].id,
                        account: alice.id,
                        mailbox: "INBOX".into(),
                    }],
                )
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let messages = store.messages(alice.id, "INBOX").await.unwrap();
    let uids: Vec<u32> = messages.iter().map(|m| m.uid.0).collect();
    assert_eq!(uids, (1..=50).collect::<Vec<_>>());
    let modseqs: Vec<u64> = messages.iter().map(|m| m.modseq.0).collect();
    assert_eq!(modseqs, (2..=51).collect::<Vec<_>>());
}

#[tokio::test]
async fn migrations_fresh_reopen_and_too_new() {
    if crate::tests::sqlite_only(
        "SQLite's user_version (PostgreSQL's: postgres_schema_too_new_is_refused)",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nested").join("data");
    {
        let store = Store::open(&db).unwrap();
        quick_account(&store, "alice@localhost").await;
    }
    let version = |path: &std::path::Path| -> i64 {
        let conn = rusqlite::Connection::open(path.join("postern.db")).unwrap();
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(version(&db), schema::supported_version());
    {
        let conn = rusqlite::Connection::open(db.join("postern.db")).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    // Reopening keeps the data and the version.
    let store = Store::open(&db).unwrap();
    assert_eq!(store.accounts().await.unwrap().len(), 1);
    drop(store);
    assert_eq!(version(&db), schema::supported_version());

    // A newer schema is refused, and left alone.
    {
        let conn = rusqlite::Connection::open(db.join("postern.db")).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    match Store::open(&db) {
        Err(StoreError::SchemaTooNew { found, supported }) => {
            assert_eq!(found, 99);
            assert_eq!(supported, schema::supported_version());
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a too-new schema was opened"),
    }
    assert_eq!(version(&db), 99);
}

#[tokio::test]
async fn drop_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3 {
        let store = open(&dir);
        let clone = store.clone();
        quick_account(&store, &format!("user{round}@localhost")).await;
        drop(store);
        // A clone keeps it alive.
        assert_eq!(clone.accounts().await.unwrap().len(), round + 1);
        drop(clone);
    }
    let store = open(&dir);
    assert_eq!(store.accounts().await.unwrap().len(), 3);
}

#[tokio::test]
async fn watch_changes_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        dir.path(),
        StoreOptions {
            // Slow poller: the bump below must come from the commit itself.
            poll_interval: Duration::from_secs(3600),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    quick_account(&store, "alice@localhost").await;
    let mut rx = store.watch_changes();
    let before = *rx.borrow_and_update();
    store
        .enqueue(message(&raw_message("x"), &["alice@localhost"]))
        .await
        .unwrap();
    deliver_all(&store).await;
    assert!(rx.has_changed().unwrap());
    assert!(*rx.borrow_and_update() > before);
}

#[tokio::test]
async fn watch_changes_across_stores() {
    let dir = tempfile::tempdir().unwrap();
    // Two stores on one dir: separate connections, as two processes have.
    let a = open(&dir);
    let b = open(&dir);
    quick_account(&a, "alice@localhost").await;
    let mut rx = b.watch_changes();
    rx.borrow_and_update();
    a.enqueue(message(&raw_message("x"), &["alice@localhost"]))
        .await
        .unwrap();
    deliver_all(&a).await;
    tokio::time::timeout(Duration::from_millis(500), rx.changed())
        .await
        .expect("the other store noticed within the poll interval")
        .unwrap();
    let alice = b.account("alice@localhost").await.unwrap().unwrap();
    assert_eq!(b.messages(alice.id, "INBOX").await.unwrap().len(), 1);
}

// ---- per-mailbox wake-ups (issue 13) ----

/// A store whose poller is slow: a wake-up seen at once came from the
/// commit itself.
fn open_slow_poller(dir: &tempfile::TempDir) -> Store {
    Store::open_with(
        dir.path(),
        StoreOptions {
            poll_interval: Duration::from_secs(3600),
            ..StoreOptions::default()
        },
    )
    .unwrap()
}

async fn mailbox_id(store: &Store, account: AccountId, name: &str) -> MailboxId {
    store.mailbox_index(account, name).await.unwrap().mailbox
}

#[tokio::test]
async fn a_commit_wakes_only_the_watchers_of_its_mailbox() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_slow_poller(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    let bob = quick_account(&store, "bob@localhost").await;
    let alice_inbox = mailbox_id(&store, alice.id, "INBOX").await;
    let bob_inbox = mailbox_id(&store, bob.id, "INBOX").await;
    let mut a = store.watch_mailbox(alice_inbox);
    let b = store.watch_mailbox(bob_inbox);
    let mut all = store.watch_changes();
    all.borrow_and_update();

    store
        .enqueue(message(&raw_message("x"), &["alice@localhost"]))
        .await
        .unwrap();
    deliver_all(&store).await;
    assert!(a.has_changed().unwrap(), "alice's watcher is woken");
    assert!(!b.has_changed().unwrap(), "bob's watcher sleeps on");
    assert!(all.has_changed().unwrap(), "the global counter still moves");
    a.borrow_and_update();

    // Flags and expunges wake too, and still only their mailbox.
    let uid = store.messages(alice.id, "INBOX").await.unwrap()[0].uid;
    store
        .store_flags(
            alice.id,
            "INBOX",
            &[uid],
            FlagChange::Add,
            &["\\Deleted".into()],
        )
        .await
        .unwrap();
    assert!(a.has_changed().unwrap());
    a.borrow_and_update();
    store.expunge(alice.id, "INBOX", &[uid]).await.unwrap();
    assert!(a.has_changed().unwrap());
    assert!(!b.has_changed().unwrap());

    // A mark taken before a read, and a watch taken after it: a value
    // above the mark says the read may have missed a change.
    let mark = store.wake_mark();
    store
        .append(bob.id, "INBOX", raw_message("y"), &[], 1_700_000_000)
        .await
        .unwrap();
    let late = store.watch_mailbox(bob_inbox);
    assert!(*late.borrow() > mark);
    assert!(b.has_changed().unwrap());
}

#[tokio::test]
async fn another_store_committing_wakes_the_mailbox_watcher() {
    let dir = tempfile::tempdir().unwrap();
    // Two stores on one dir: separate connections, as two processes have.
    let writer = open(&dir);
    let watcher = open(&dir);
    let alice = quick_account(&writer, "alice@localhost").await;
    let bob = quick_account(&writer, "bob@localhost").await;
    let alice_inbox = mailbox_id(&watcher, alice.id, "INBOX").await;
    let bob_inbox = mailbox_id(&watcher, bob.id, "INBOX").await;
    let mut a = watcher.watch_mailbox(alice_inbox);
    let mut b = watcher.watch_mailbox(bob_inbox);
    // Let the watcher's poller take in the account creation (it adds no
    // change rows, and must not count as a change to a mailbox).
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.borrow_and_update();
    b.borrow_and_update();

    writer
        .append(alice.id, "INBOX", raw_message("x"), &[], 1_700_000_000)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_millis(1000), a.changed())
        .await
        .expect("the other store noticed within the poll interval")
        .unwrap();
    // The poller has run past the commit: bob's watcher was not woken.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!b.has_changed().unwrap());
}

#[tokio::test]
async fn deleting_or_renaming_a_mailbox_wakes_its_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_slow_poller(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    store.create_mailbox(alice.id, "Work").await.unwrap();
    store.create_mailbox(alice.id, "Old").await.unwrap();
    let work = mailbox_id(&store, alice.id, "Work").await;
    let old = mailbox_id(&store, alice.id, "Old").await;
    let mut w = store.watch_mailbox(work);
    let mut o = store.watch_mailbox(old);
    store
        .rename_mailbox(alice.id, "Old", "Older")
        .await
        .unwrap();
    assert!(o.has_changed().unwrap(), "a rename wakes");
    o.borrow_and_update();
    w.borrow_and_update();
    store.delete_mailbox(alice.id, "Work").await.unwrap();
    assert!(w.has_changed().unwrap(), "a delete wakes");

    // The same from another store (process), through its poller.
    let other = open(&dir);
    let mut o2 = other.watch_mailbox(old);
    tokio::time::sleep(Duration::from_millis(200)).await;
    o2.borrow_and_update();
    store.delete_mailbox(alice.id, "Older").await.unwrap();
    tokio::time::timeout(Duration::from_millis(1000), o2.changed())
        .await
        .expect("the other store noticed the delete")
        .unwrap();
}

#[tokio::test]
async fn mailbox_watchers_nobody_holds_are_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_slow_poller(&dir);
    for i in 0..1000 {
        drop(store.watch_mailbox(MailboxId(i)));
    }
    let held = store.watch_mailbox(MailboxId(5000));
    assert!(store.inner.wakeups().entries() < 200);
    drop(held);
}

/// IMAP NOTIFY's account wake-up: a change to any mailbox it names,
/// a mailbox created and a subscription changed wake it; mailbox
/// watchers sleep through creations and subscriptions.
#[tokio::test]
async fn an_account_watcher_is_woken_by_its_mailboxes_and_names() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_slow_poller(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    let bob = quick_account(&store, "bob@localhost").await;
    store.create_mailbox(alice.id, "Work").await.unwrap();
    let inbox = mailbox_id(&store, alice.id, "INBOX").await;
    let work = mailbox_id(&store, alice.id, "Work").await;
    let bob_inbox = mailbox_id(&store, bob.id, "INBOX").await;
    let mut account = store.watch_account(alice.id, &[inbox, work]);
    let mut selected = store.watch_mailbox(inbox);
    let mut bobs = store.watch_mailbox(bob_inbox);

    // A message in a mailbox it names wakes it.
    store
        .append(alice.id, "Work", raw_message("x"), &[], 1_700_000_000)
        .await
        .unwrap();
    assert!(account.has_changed().unwrap());
    assert!(!selected.has_changed().unwrap(), "INBOX did not change");
    account.borrow_and_update();
    // Another account's mail does not.
    store
        .append(bob.id, "INBOX", raw_message("y"), &[], 1_700_000_000)
        .await
        .unwrap();
    assert!(!account.has_changed().unwrap());
    bobs.borrow_and_update();

    // Creating a mailbox and (un)subscribing wake account watchers only.
    store.create_mailbox(alice.id, "New").await.unwrap();
    assert!(account.has_changed().unwrap(), "a creation wakes");
    assert!(!selected.has_changed().unwrap());
    assert!(!bobs.has_changed().unwrap());
    account.borrow_and_update();
    store.set_subscribed(alice.id, "Work", true).await.unwrap();
    assert!(account.has_changed().unwrap(), "a subscription wakes");
    account.borrow_and_update();
    store.set_subscribed(alice.id, "Work", false).await.unwrap();
    assert!(account.has_changed().unwrap(), "an unsubscription wakes");
    account.borrow_and_update();
    // Renames and deletes wake everybody, the account included.
    store
        .rename_mailbox(alice.id, "New", "Newer")
        .await
        .unwrap();
    assert!(account.has_changed().unwrap());
    assert!(selected.has_changed().unwrap());
    account.borrow_and_update();
    selected.borrow_and_update();

    // Watching again replaces its mailboxes: Work no longer wakes it.
    let mut narrower = store.watch_account(alice.id, &[inbox]);
    drop(account);
    narrower.borrow_and_update();
    store
        .append(alice.id, "Work", raw_message("z"), &[], 1_700_000_000)
        .await
        .unwrap();
    assert!(!narrower.has_changed().unwrap());
    store
        .append(alice.id, "INBOX", raw_message("w"), &[], 1_700_000_000)
        .await
        .unwrap();
    assert!(narrower.has_changed().unwrap());

    // From another store (process), through its poller.
    let other = open(&dir);
    let mut far = other.watch_account(alice.id, &[inbox]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    far.borrow_and_update();
    store.create_mailbox(alice.id, "Far").await.unwrap();
    tokio::time::timeout(Duration::from_millis(1000), far.changed())
        .await
        .expect("the other store noticed the creation")
        .unwrap();
}

#[tokio::test]
async fn mailboxes_are_counted_only_where_asked() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_slow_poller(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    store.create_mailbox(alice.id, "Work").await.unwrap();
    for name in ["INBOX", "Work", "Work"] {
        store
            .append(alice.id, name, raw_message("x"), &[], 1_700_000_000)
            .await
            .unwrap();
    }
    let full = store.mailboxes(alice.id).await.unwrap();
    let some = store
        .mailboxes_counting(alice.id, |m| m.name == "Work")
        .await
        .unwrap();
    assert_eq!(full.len(), some.len());
    for (f, s) in full.iter().zip(&some) {
        assert_eq!(
            (f.id, &f.name, f.uid_next, f.highest_modseq),
            (s.id, &s.name, s.uid_next, s.highest_modseq)
        );
        if f.name == "Work" {
            assert_eq!((s.messages, s.unseen, s.recent), (2, 2, f.recent));
        } else {
            assert_eq!((s.messages, s.unseen), (0, 0));
        }
    }
}

#[tokio::test]
async fn summary_is_parsed_once_per_blob() {
    if crate::tests::sqlite_only("reads the SQLite file directly") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    quick_account(&store, "alice@localhost").await;
    let raw = raw_message("cached");
    store
        .enqueue(message(&raw, &["alice@localhost"]))
        .await
        .unwrap();
    deliver_all(&store).await;
    // Tamper with the cache: a second delivery of the same bytes must use it.
    {
        let conn = rusqlite::Connection::open(dir.path().join("postern.db")).unwrap();
        let mut summary = parse::summarize(&raw);
        summary.subject = Some("from the cache".into());
        conn.execute(
            "UPDATE summaries SET summary = ?1",
            [serde_json::to_string(&summary).unwrap()],
        )
        .unwrap();
    }
    store
        .enqueue(message(&raw, &["alice@localhost"]))
        .await
        .unwrap();
    deliver_all(&store).await;
    let alice = store.account("alice@localhost").await.unwrap().unwrap();
    let messages = store.messages(alice.id, "INBOX").await.unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(
        messages[1].summary.subject.as_deref(),
        Some("from the cache")
    );
}

#[tokio::test]
async fn unparseable_mail_is_still_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    let raw = b"\xff\xfe garbage without any header\r\n".to_vec();
    store
        .enqueue(message(&raw, &["alice@localhost"]))
        .await
        .unwrap();
    deliver_all(&store).await;
    let messages = store.messages(alice.id, "INBOX").await.unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].summary.body.content_type, "text");
    assert_eq!(messages[0].summary.body.body_end, raw.len() as u64);
    assert_eq!(
        store.message_raw(alice.id, "INBOX", Uid(1)).await.unwrap(),
        Some(raw)
    );
}

#[tokio::test]
async fn enqueue_needs_recipients() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert!(matches!(
        store.enqueue(message(b"x", &[])).await,
        Err(StoreError::Invalid(_))
    ));
}

#[test]
fn dummy_hash_is_a_real_argon2id_hash() {
    // If the dummy hash did not parse, unknown accounts would answer fast.
    use argon2::password_hash::PasswordVerifier;
    let result = argon2::Argon2::default().verify_password(b"guess", accounts::DUMMY_HASH);
    assert!(matches!(
        result,
        Err(argon2::password_hash::Error::PasswordInvalid)
    ));
}

/// Alice with `n` messages delivered to her INBOX (subjects m0, m1, ...).
async fn alice_with_messages(store: &Store, n: usize) -> Account {
    let alice = quick_account(store, "alice@localhost").await;
    for i in 0..n {
        store
            .enqueue(message(
                &raw_message(&format!("m{i}")),
                &["alice@localhost"],
            ))
            .await
            .unwrap();
    }
    deliver_all(store).await;
    alice
}

fn strings(flags: &[&str]) -> Vec<String> {
    flags.iter().map(|f| f.to_string()).collect()
}

#[tokio::test]
async fn mailbox_index_after_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = alice_with_messages(&store, 3).await;

    let index = store.mailbox_index(alice.id, "inbox").await.unwrap();
    let boxes = store.mailboxes(alice.id).await.unwrap();
    let inbox = boxes.iter().find(|b| b.name == "INBOX").unwrap();
    assert_eq!(index.mailbox, inbox.id);
    assert_eq!(index.uid_validity, inbox.uid_validity);
    assert_eq!(index.uid_next, Uid(4));
    assert_eq!(index.highest_modseq, ModSeq(4));
    let messages = store.messages(alice.id, "INBOX").await.unwrap();
    let expected: Vec<IndexEntry> = messages
        .iter()
        .map(|m| IndexEntry {
            uid: m.uid,
            size: m.size,
            modseq: m.modseq,
            flags: m.flags.clone(),
        })
        .collect();
    assert_eq!(index.messages, expected);
    assert_eq!(
        index.messages.iter().map(|e| e.uid.0).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    for (entry, i) in index.messages.iter().zip(0..) {
        assert_eq!(entry.size, raw_message(&format!("m{i}")).len() as u64);
        assert!(entry.flags.is_empty());
    }

    let drafts = store.mailbox_index(alice.id, "Drafts").await.unwrap();
    assert!(drafts.messages.is_empty());
    assert_eq!(
        (drafts.uid_next, drafts.highest_modseq),
        (Uid(1), ModSeq(1))
    );
    assert!(matches!(
        store.mailbox_index(alice.id, "Nope").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.mailbox_index(AccountId(999), "INBOX").await,
        Err(StoreError::NotFound(_))
    ));
}

/// RFC 7162 UNCHANGEDSINCE: a message changed after the client's modseq
/// is left alone and named, the others change, in one transaction.
#[tokio::test]
async fn store_flags_unchanged_since_leaves_newer_messages_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = alice_with_messages(&store, 3).await;
    // Appends gave modseqs 2, 3 and 4; message 3 then changes (5).
    let seen = strings(&["\\Seen"]);
    store
        .store_flags(alice.id, "INBOX", &[Uid(3)], FlagChange::Add, &seen)
        .await
        .unwrap();
    let answered = strings(&["\\Answered"]);
    let stored = store
        .store_flags_unchanged_since(
            alice.id,
            "INBOX",
            &[Uid(1), Uid(2), Uid(3), Uid(42)],
            FlagChange::Add,
            &answered,
            Some(ModSeq(3)),
        )
        .await
        .unwrap();
    // Message 1 (modseq 2) and 2 (modseq 3) pass; 3 (modseq 5) does not.
    assert_eq!(
        stored,
        ConditionalStore {
            changed: vec![
                (Uid(1), ModSeq(6), answered.clone()),
                (Uid(2), ModSeq(7), answered.clone()),
            ],
            modified: vec![Uid(3)],
        }
    );
    let index = store.mailbox_index(alice.id, "INBOX").await.unwrap();
    assert_eq!(index.highest_modseq, ModSeq(7));
    assert_eq!(index.messages[2].flags, seen, "message 3 is untouched");

    // A message that passes but whose flags stay the same keeps its modseq.
    let stored = store
        .store_flags_unchanged_since(
            alice.id,
            "INBOX",
            &[Uid(1)],
            FlagChange::Add,
            &answered,
            Some(ModSeq(7)),
        )
        .await
        .unwrap();
    assert_eq!(stored, ConditionalStore::default());

    // UNCHANGEDSINCE 0 always fails: every message has a modseq.
    let stored = store
        .store_flags_unchanged_since(
            alice.id,
            "INBOX",
            &[Uid(1), Uid(2), Uid(3)],
            FlagChange::Replace,
            &[],
            Some(ModSeq(0)),
        )
        .await
        .unwrap();
    assert!(stored.changed.is_empty());
    assert_eq!(stored.modified, vec![Uid(1), Uid(2), Uid(3)]);
    let after = store.mailbox_index(alice.id, "INBOX").await.unwrap();
    assert_eq!(after.highest_modseq, ModSeq(7));
}

#[tokio::test]
async fn store_flags_add_remove_replace() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = alice_with_messages(&store, 3).await;
    // Highest modseq is 4 after three appends.

    let changed = store
        .store_flags(
            alice.id,
            "INBOX",
            &[Uid(3), Uid(1), Uid(99), Uid(1)],
            FlagChange::Add,
            &strings(&["\\seen", "\\FLAGGED"]),
        )
        .await
        .unwrap();
    let seen_flagged = strings(&["\\Seen", "\\Flagged"]);
    assert_eq!(
        changed,
        vec![
            (Uid(1), ModSeq(5), seen_flagged.clone()),
            (Uid(3), ModSeq(6), seen_flagged.clone()),
        ]
    );
    let index = store.mailbox_index(alice.id, "INBOX").await.unwrap();
    assert_eq!(index.highest_modseq, ModSeq(6));
    let got: Vec<(u32, u64, Vec<String>)> = index
        .messages
        .iter()
        .map(|e| (e.uid.0, e.modseq.0, e.flags.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, 5, seen_flagged.clone()),
            (2, 3, vec![]),
            (3, 6, seen_flagged.clone()),
        ]
    );
    let boxes = store.mailboxes(alice.id).await.unwrap();
    let inbox = boxes.iter().find(|b| b.name == "INBOX").unwrap();
    assert_eq!((inbox.unseen, inbox.highest_modseq), (1, ModSeq(6)));

    // Adding what is there already changes nothing, modseq included.
    let changed = store
        .store_flags(
            alice.id,
            "INBOX",
            &[Uid(1), Uid(3)],
            FlagChange::Add,
            &strings(&["\\Seen"]),
        )
        .await
        .unwrap();
    assert!(changed.is_empty());
    // Removing what is not there neither.
    let changed = store
        .store_flags(
            alice.id,
            "INBOX",
            &[Uid(2)],
            FlagChange::Remove,
            &strings(&["\\Deleted"]),
        )
        .await
        .unwrap();
    assert!(changed.is_empty());
    assert_eq!(
        store
            .mailbox_index(alice.id, "INBOX")
            .await
            .unwrap()
            .highest_modseq,
        ModSeq(6)
    );

    // Remove from all three: only 1 and 3 change.
    let changed = store
        .store_flags(
            alice.id,
            "INBOX",
            &[Uid(1), Uid(2), Uid(3)],
            FlagChange::Remove,
            &strings(&["\\Flagged"]),
        )
        .await
        .unwrap();
    assert_eq!(
        changed,
        vec![
            (Uid(1), ModSeq(7), strings(&["\\Seen"])),
            (Uid(3), ModSeq(8), strings(&["\\Seen"])),
        ]
    );

    // Replace: 2 gains flags; 1 and 3 keep \Seen but get \Answered.
    let changed = store
        .store_flags(
            alice.id,
            "INBOX",
            &[Uid(1), Uid(2), Uid(3)],
            FlagChange::Replace,
            &strings(&["\\Answered", "\\Seen", "$Forwarded"]),
        )
        .await
        .unwrap();
    let all = strings(&["\\Seen", "\\Answered", "$Forwarded"]);
    assert_eq!(
        changed,
        vec![
            (Uid(1), ModSeq(9), all.clone()),
            (Uid(2), ModSeq(10), all.clone()),
            (Uid(3), ModSeq(11), all.clone()),
        ]
    );
    // The same replace again is no change.
    let changed = store
        .store_flags(
            alice.id,
            "INBOX",
            &[Uid(1), Uid(2), Uid(3)],
            FlagChange::Replace,
            &strings(&["\\seen", "$forwarded", "\\answered"]),
        )
        .await
        .unwrap();
    assert!(changed.is_empty());
    // Replace with nothing clears.
    let changed = store
        .store_flags(alice.id, "INBOX", &[Uid(2)], FlagChange::Replace, &[])
        .await
        .unwrap();
    assert_eq!(changed, vec![(Uid(2), ModSeq(12), vec![])]);
    let index = store.mailbox_index(alice.id, "INBOX").await.unwrap();
    assert_eq!(index.highest_modseq, ModSeq(12));
    assert_eq!(index.messages[1].flags, Vec::<String>::new());
    assert_eq!(index.messages[0].flags, all);

    // Messages and the flags they list agree.
    let messages = store.messages(alice.id, "INBOX").await.unwrap();
    assert_eq!(messages[2].flags, all);
    assert_eq!(messages[2].modseq, ModSeq(11));

    assert!(matches!(
        store
            .store_flags(
                alice.id,
                "Nope",
                &[Uid(1)],
                FlagChange::Add,
                &strings(&["\\Seen"])
            )
            .await,
        Err(StoreError::NotFound(_))
    ));
    // Empty UID sets and missing UIDs are fine.
    assert!(store
        .store_flags(alice.id, "INBOX", &[], FlagChange::Add, &strings(&["x"]))
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .store_flags(
            alice.id,
            "INBOX",
            &[Uid(0), Uid(4), Uid(u32::MAX)],
            FlagChange::Add,
            &strings(&["x"])
        )
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn store_flags_keywords() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = alice_with_messages(&store, 1).await;
    let one = [Uid(1)];

    let changed = store
        .store_flags(
            alice.id,
            "INBOX",
            &one,
            FlagChange::Add,
            &strings(&[
                "$Label1",
                "NonJunk",
                "$label1",
                "Seen",
                "a.b-c_d~!#&'+,/:;<=>?@[^`|}",
            ]),
        )
        .await
        .unwrap();
    let expected = strings(&["$Label1", "NonJunk", "Seen", "a.b-c_d~!#&'+,/:;<=>?@[^`|}"]);
    assert_eq!(changed, vec![(Uid(1), ModSeq(3), expected.clone())]);

    // Keywords compare without case; the stored spelling stays.
    let changed = store
        .store_flags(
            alice.id,
            "INBOX",
            &one,
            FlagChange::Add,
            &strings(&["NONJUNK", "$LABEL1"]),
        )
        .await
        .unwrap();
    assert!(changed.is_empty());
    let changed = store
        .store_flags(
            alice.id,
            "INBOX",
            &one,
            FlagChange::Remove,
            &strings(&["nonjunk", "seen"]),
        )
        .await
        .unwrap();
    assert_eq!(
        changed,
        vec![(
            Uid(1),
            ModSeq(4),
            strings(&["$Label1", "a.b-c_d~!#&'+,/:;<=>?@[^`|}"])
        )]
    );
    let changed = store
        .store_flags(
            alice.id,
            "INBOX",
            &one,
            FlagChange::Replace,
            &strings(&["$LABEL1", "\\Draft", "Work"]),
        )
        .await
        .unwrap();
    assert_eq!(
        changed,
        vec![(Uid(1), ModSeq(5), strings(&["\\Draft", "$Label1", "Work"]))]
    );

    for bad in [
        "",
        "two words",
        "(paren",
        "paren)",
        "{brace",
        "quo\"te",
        "back\\slash",
        "per%cent",
        "star*",
        "brack]et",
        "tab\there",
        "del\u{7f}",
        "nul\u{0}",
        "caf\u{e9}",
        "\\Recent",
        "\\recent",
        "\\Xyz",
        "\\",
        "\\*",
    ] {
        let result = store
            .store_flags(
                alice.id,
                "INBOX",
                &one,
                FlagChange::Add,
                &strings(&["\\Seen", bad]),
            )
            .await;
        assert!(
            matches!(result, Err(StoreError::Invalid(_))),
            "{bad:?} accepted: {result:?}"
        );
    }
    // Nothing of the refused requests was applied.
    let index = store.mailbox_index(alice.id, "INBOX").await.unwrap();
    assert_eq!(index.highest_modseq, ModSeq(5));
    assert_eq!(
        index.messages[0].flags,
        strings(&["\\Draft", "$Label1", "Work"])
    );
}

#[tokio::test]
async fn expunge_removes_and_leaves_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = alice_with_messages(&store, 3).await;
    assert_eq!(store.blob_count().await.unwrap(), 3);

    let removed = store
        .expunge(alice.id, "inbox", &[Uid(3), Uid(7), Uid(1), Uid(3)])
        .await
        .unwrap();
    assert_eq!(removed, vec![Uid(1), Uid(3)]);
    let index = store.mailbox_index(alice.id, "INBOX").await.unwrap();
    assert_eq!(
        index.messages.iter().map(|e| e.uid).collect::<Vec<_>>(),
        vec![Uid(2)]
    );
    assert_eq!(index.highest_modseq, ModSeq(6));
    assert_eq!(index.uid_next, Uid(4));
    assert_eq!(store.blob_count().await.unwrap(), 1);
    assert_eq!(
        store.message_raw(alice.id, "INBOX", Uid(1)).await.unwrap(),
        None
    );

    // Expunging again removes nothing and changes nothing.
    let removed = store
        .expunge(alice.id, "INBOX", &[Uid(1), Uid(3)])
        .await
        .unwrap();
    assert!(removed.is_empty());
    assert_eq!(
        store
            .mailbox_index(alice.id, "INBOX")
            .await
            .unwrap()
            .highest_modseq,
        ModSeq(6)
    );
    // Flags cannot be stored on an expunged message.
    assert!(store
        .store_flags(
            alice.id,
            "INBOX",
            &[Uid(1)],
            FlagChange::Add,
            &strings(&["\\Seen"])
        )
        .await
        .unwrap()
        .is_empty());

    // Tombstones and the change feed, as the database holds them.
    let (tombstones, feed) = store
        .inner
        .read(|conn| {
            let tombstones = conn
                .prepare("SELECT uid, modseq FROM expunged ORDER BY uid")
                .unwrap()
                .query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)))
                .unwrap()
                .collect::<crate::db::Result<Vec<_>>>()
                .unwrap();
            let feed = conn
                .prepare("SELECT uid, modseq, kind FROM changes ORDER BY modseq")
                .unwrap()
                .query_map([], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, String>(2)?,
                    ))
                })
                .unwrap()
                .collect::<crate::db::Result<Vec<_>>>()
                .unwrap();
            Ok((tombstones, feed))
        })
        .await
        .unwrap();
    assert_eq!(tombstones, vec![(1, 5), (3, 6)]);
    assert_eq!(
        feed,
        vec![
            (1, 2, "append".to_string()),
            (2, 3, "append".to_string()),
            (3, 4, "append".to_string()),
            (1, 5, "expunge".to_string()),
            (3, 6, "expunge".to_string()),
        ]
    );

    // UIDs are never reused: new mail gets a UID past the expunged ones.
    store
        .enqueue(message(&raw_message("again"), &["alice@localhost"]))
        .await
        .unwrap();
    deliver_all(&store).await;
    let index = store.mailbox_index(alice.id, "INBOX").await.unwrap();
    assert_eq!(
        index.messages.iter().map(|e| e.uid).collect::<Vec<_>>(),
        vec![Uid(2), Uid(4)]
    );
    assert_eq!(index.messages[1].modseq, ModSeq(7));
    assert_eq!(index.uid_next, Uid(5));
    // Expunging everything leaves the counters where they were.
    let removed = store
        .expunge(alice.id, "INBOX", &[Uid(2), Uid(4)])
        .await
        .unwrap();
    assert_eq!(removed, vec![Uid(2), Uid(4)]);
    let index = store.mailbox_index(alice.id, "INBOX").await.unwrap();
    assert!(index.messages.is_empty());
    assert_eq!((index.uid_next, index.highest_modseq), (Uid(5), ModSeq(9)));
    assert_eq!(store.blob_count().await.unwrap(), 0);

    assert!(matches!(
        store.expunge(alice.id, "Nope", &[Uid(1)]).await,
        Err(StoreError::NotFound(_))
    ));
    // Deleting the account afterwards still works (tombstones go with it).
    store.delete_account("alice@localhost").await.unwrap();
}

#[tokio::test]
async fn expunge_releases_shared_blob_on_last_reference() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    let bob = quick_account(&store, "bob@localhost").await;
    store
        .enqueue(message(
            &raw_message("shared"),
            &["alice@localhost", "bob@localhost"],
        ))
        .await
        .unwrap();
    deliver_all(&store).await;
    assert_eq!(store.blob_count().await.unwrap(), 1);

    assert_eq!(
        store.expunge(alice.id, "INBOX", &[Uid(1)]).await.unwrap(),
        vec![Uid(1)]
    );
    // Bob's copy still holds the blob.
    assert_eq!(store.blob_count().await.unwrap(), 1);
    assert_eq!(
        store.message_raw(bob.id, "INBOX", Uid(1)).await.unwrap(),
        Some(raw_message("shared"))
    );
    assert_eq!(
        store.expunge(bob.id, "INBOX", &[Uid(1)]).await.unwrap(),
        vec![Uid(1)]
    );
    assert_eq!(store.blob_count().await.unwrap(), 0);
}

#[tokio::test]
async fn store_flags_and_expunge_notify_watchers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        dir.path(),
        StoreOptions {
            // Slow poller: the bumps below must come from the commits.
            poll_interval: Duration::from_secs(3600),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let alice = alice_with_messages(&store, 2).await;
    let mut rx = store.watch_changes();
    let before = *rx.borrow_and_update();
    store
        .store_flags(
            alice.id,
            "INBOX",
            &[Uid(1)],
            FlagChange::Add,
            &strings(&["\\Deleted"]),
        )
        .await
        .unwrap();
    assert!(rx.has_changed().unwrap());
    let after_flags = *rx.borrow_and_update();
    assert!(after_flags > before);
    store.expunge(alice.id, "INBOX", &[Uid(1)]).await.unwrap();
    assert!(rx.has_changed().unwrap());
    assert!(*rx.borrow_and_update() > after_flags);
}

#[tokio::test]
async fn index_snapshot_is_consistent_under_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = alice_with_messages(&store, 5).await;
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for round in 0..20 {
                let flags = if round % 2 == 0 {
                    "\\Seen"
                } else {
                    "\\Flagged"
                };
                store
                    .store_flags(
                        alice.id,
                        "INBOX",
                        &[Uid(1), Uid(2), Uid(3), Uid(4), Uid(5)],
                        FlagChange::Replace,
                        &strings(&[flags]),
                    )
                    .await
                    .unwrap();
            }
        })
    };
    for _ in 0..20 {
        let index = store.mailbox_index(alice.id, "INBOX").await.unwrap();
        // Every message's modseq is at most the mailbox's, and the highest
        // one equals it (each write touches all five).
        let max = index.messages.iter().map(|e| e.modseq).max().unwrap();
        assert_eq!(max, index.highest_modseq);
    }
    writer.await.unwrap();
}

#[tokio::test]
async fn postmaster_falls_back_to_the_domains_then_any_oldest_account() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.postmaster_account("localhost").await.unwrap(), None);
    let first = quick_account(&store, "first@localhost").await;
    quick_account(&store, "second@localhost").await;
    quick_account(&store, "other@example_x.test").await;
    let pm = store.postmaster_account("LOCALHOST").await.unwrap();
    assert_eq!(pm.map(|a| a.id), Some(first.id));
    // `_` in a domain is not a LIKE wildcard: a domain without accounts
    // gets the oldest account of all.
    let none_here = store.postmaster_account("examplexx.test").await.unwrap();
    assert_eq!(none_here.map(|a| a.id), Some(first.id));
    let other = store.postmaster_account("example_x.test").await.unwrap();
    assert_eq!(
        other.map(|a| a.address),
        Some("other@example_x.test".to_string())
    );
    // resolve_recipient is exact: an alias, never the fallback.
    assert_eq!(
        store
            .resolve_recipient("postmaster@localhost")
            .await
            .unwrap(),
        None
    );
    store
        .add_alias("postmaster@localhost", "second@localhost")
        .await
        .unwrap();
    let pm = store
        .resolve_recipient("PostMaster@localhost")
        .await
        .unwrap();
    assert_eq!(pm.map(|a| a.address), Some("second@localhost".to_string()));
}

#[tokio::test]
async fn dsn_requests_are_kept_with_the_queue_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let dsn = DsnRequest {
        ret: Some(DsnReturn::Headers),
        envid: Some("QQ+2B1".into()),
        recipients: vec![
            RecipientDsn {
                notify: Some(Notify {
                    success: true,
                    failure: true,
                    delay: false,
                }),
                orcpt: Some("rfc822;Bob+2Bx@example.org".into()),
            },
            RecipientDsn {
                notify: Some(Notify::default()),
                orcpt: None,
            },
            RecipientDsn::default(),
        ],
    };
    let id = store
        .enqueue_with_dsn(
            message(b"Subject: x\r\n\r\n", &["a@x.test", "b@x.test", "c@x.test"]),
            dsn.clone(),
        )
        .await
        .unwrap();
    let queued = store.queued_message(id).await.unwrap().unwrap();
    assert_eq!(queued.dsn_ret, dsn.ret);
    assert_eq!(queued.dsn_envid, dsn.envid);
    let kept: Vec<RecipientDsn> = queued.recipients.iter().map(|r| r.dsn.clone()).collect();
    assert_eq!(kept, dsn.recipients);
    // Without DSN parameters nothing is kept.
    let plain = store
        .enqueue(message(b"Subject: y\r\n\r\n", &["a@x.test"]))
        .await
        .unwrap();
    let plain = store.queued_message(plain).await.unwrap().unwrap();
    assert_eq!((plain.dsn_ret, plain.dsn_envid), (None, None));
    assert_eq!(plain.recipients[0].dsn, RecipientDsn::default());
    // One entry per recipient or none.
    let short = DsnRequest {
        recipients: vec![RecipientDsn::default()],
        ..DsnRequest::default()
    };
    assert!(matches!(
        store
            .enqueue_with_dsn(message(b"x", &["a@x.test", "b@x.test"]), short)
            .await,
        Err(StoreError::Invalid(_))
    ));
}

#[tokio::test]
async fn a_delivered_copy_with_lines_on_top_is_one_blob_for_every_mailbox() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut accounts = Vec::new();
    for i in 0..10 {
        accounts.push(quick_account(&store, &format!("user{i}@localhost")).await);
    }
    let raw = raw_message("ten");
    let to: Vec<String> = accounts.iter().map(|a| a.address.clone()).collect();
    let to: Vec<&str> = to.iter().map(String::as_str).collect();
    store.enqueue(message(&raw, &to)).await.unwrap();
    let queued = store.claim_due(now(), LEASE, 10).await.unwrap().remove(0);
    let deliveries: Vec<LocalDelivery> = queued
        .recipients
        .iter()
        .zip(&accounts)
        .map(|(r, a)| LocalDelivery {
            recipient: r.id,
            account: a.id,
            mailbox: "INBOX".into(),
        })
        .collect();
    let prepend = b"Return-Path: <sender@example.org>\r\n".to_vec();
    let notice = message(b"Subject: delivered\r\n\r\n", &["sender@example.org"]);
    let options = DeliveryOptions {
        prepend: prepend.clone(),
        notice: Some(NewQueuedMessage {
            sender: String::new(),
            ..notice
        }),
    };
    store
        .deliver_local_with(queued.id, deliveries.clone(), options.clone())
        .await
        .unwrap();
    // The queued blob is gone with its entry; the copy is one blob, and
    // the notice another.
    assert_eq!(store.blob_count().await.unwrap(), 2);
    let queue = store.queue().await.unwrap();
    assert_eq!(queue.len(), 1, "the notice is queued");
    assert_eq!(queue[0].recipients[0].address, "sender@example.org");
    let mut expected = prepend.clone();
    expected.extend_from_slice(&raw);
    for a in &accounts {
        let listed = store.messages(a.id, "INBOX").await.unwrap();
        assert_eq!(listed.len(), 1);
        let stored = store
            .message_raw(a.id, "INBOX", listed[0].uid)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored, expected);
        // Size and offsets are those of the bytes served.
        assert_eq!(listed[0].size, expected.len() as u64);
        let summary = &listed[0].summary;
        assert_eq!(summary.return_path.as_deref(), Some("sender@example.org"));
        assert_eq!(summary.body.body_end, expected.len() as u64);
        let body = &stored[summary.header_len as usize..];
        assert_eq!(body, b"Body of ten.\r\n");
        assert_eq!(summary.subject.as_deref(), Some("ten"));
    }
    // A second call delivers nothing more and queues no second notice.
    store
        .deliver_local_with(queued.id, deliveries, options)
        .await
        .ok();
    assert_eq!(store.queue().await.unwrap().len(), 1);
    assert_eq!(store.blob_count().await.unwrap(), 2);
}

#[tokio::test]
async fn a_notice_is_queued_with_the_remote_delivery_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let id = store
        .enqueue(message(b"Subject: r\r\n\r\n", &["a@x.test", "b@x.test"]))
        .await
        .unwrap();
    let queued = store.queued_message(id).await.unwrap().unwrap();
    let first = queued.recipients[0].id;
    let notice = || {
        Some(NewQueuedMessage {
            sender: String::new(),
            ..message(b"Subject: relayed\r\n\r\n", &["sender@example.org"])
        })
    };
    store
        .mark_delivered_with_notice(id, &[first], notice())
        .await
        .unwrap();
    assert_eq!(store.queue().await.unwrap().len(), 2);
    // Already delivered: no second notice.
    store
        .mark_delivered_with_notice(id, &[first], notice())
        .await
        .unwrap();
    assert_eq!(store.queue().await.unwrap().len(), 2);
    assert!(matches!(
        store
            .mark_delivered_with_notice(id, &[RecipientId(9999)], notice())
            .await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn leases_exclude_other_processes_until_released_or_expired() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // A second Store is what another process would have.
    let other = Store::open(dir.path()).unwrap();
    let ttl = Duration::from_secs(60);
    assert!(store.acquire_lease("pop3:1", "p1", 1, ttl).await.unwrap());
    assert!(!other.acquire_lease("pop3:1", "p2", 1, ttl).await.unwrap());
    assert!(
        other.acquire_lease("pop3:2", "p2", 1, ttl).await.unwrap(),
        "other names are free"
    );
    assert!(
        store.acquire_lease("pop3:1", "p1", 1, ttl).await.unwrap(),
        "renewal"
    );
    other.release_lease("pop3:1", "p2", 1).await.unwrap();
    assert!(
        !other.acquire_lease("pop3:1", "p2", 1, ttl).await.unwrap(),
        "only the holder releases"
    );
    // A process takes over its own ended session's lease; the late release
    // of that ended session does not drop the new one.
    assert!(store.acquire_lease("pop3:1", "p1", 2, ttl).await.unwrap());
    store.release_lease("pop3:1", "p1", 1).await.unwrap();
    assert!(
        !other.acquire_lease("pop3:1", "p2", 1, ttl).await.unwrap(),
        "session 2 still holds it"
    );
    store.release_lease("pop3:1", "p1", 2).await.unwrap();
    assert!(other.acquire_lease("pop3:1", "p2", 1, ttl).await.unwrap());
    // An expired lease is free for anyone.
    assert!(store
        .acquire_lease("pop3:3", "p1", 1, Duration::from_secs(1))
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(other.acquire_lease("pop3:3", "p2", 1, ttl).await.unwrap());
}

#[tokio::test]
async fn messages_raw_reads_several_in_the_order_asked() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    for subject in ["one", "two", "three"] {
        store
            .enqueue(message(&raw_message(subject), &["alice@localhost"]))
            .await
            .unwrap();
    }
    deliver_all(&store).await;
    store.expunge(alice.id, "INBOX", &[Uid(2)]).await.unwrap();
    let got = store
        .messages_raw(alice.id, "inbox", &[Uid(3), Uid(2), Uid(1), Uid(99)])
        .await
        .unwrap();
    let uids: Vec<u32> = got.iter().map(|(u, _)| u.0).collect();
    assert_eq!(uids, vec![3, 1], "missing UIDs left out, order kept");
    assert_eq!(got[0].1, raw_message("three"));
    assert_eq!(got[1].1, raw_message("one"));
    assert!(matches!(
        store.messages_raw(alice.id, "Nope", &[Uid(1)]).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn messages_by_uid_lists_only_the_uids_asked() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    for subject in ["one", "two", "three"] {
        store
            .enqueue(message(&raw_message(subject), &["alice@localhost"]))
            .await
            .unwrap();
    }
    deliver_all(&store).await;
    let all = store.messages(alice.id, "INBOX").await.unwrap();
    let got = store
        .messages_by_uid(alice.id, "inbox", &[Uid(3), Uid(1), Uid(99)])
        .await
        .unwrap();
    let subjects: Vec<_> = got.iter().map(|m| m.summary.subject.clone()).collect();
    assert_eq!(subjects, vec![Some("three".into()), Some("one".into())]);
    assert_eq!(got[0].flags, all[2].flags);
    assert_eq!(got[1].size, all[0].size);
    assert_eq!(got[1].summary, all[0].summary);
}

#[tokio::test]
async fn create_delete_rename_and_subscribe_mailboxes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    let names = |list: Vec<MailboxInfo>| -> Vec<(String, bool)> {
        list.into_iter().map(|m| (m.name, m.subscribed)).collect()
    };

    store
        .create_mailbox(alice.id, "Work/2026/Q4")
        .await
        .unwrap();
    let all = names(store.mailboxes(alice.id).await.unwrap());
    for level in ["Work", "Work/2026", "Work/2026/Q4"] {
        assert!(
            all.contains(&(level.to_owned(), false)),
            "{level} in {all:?}"
        );
    }
    assert!(matches!(
        store.create_mailbox(alice.id, "Work").await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.create_mailbox(alice.id, "inbox").await,
        Err(StoreError::AlreadyExists(_))
    ));
    for bad in [
        "",
        "a//b",
        "/a",
        "a/",
        "a*",
        "b%",
        "c\u{7}",
        ".",
        "..",
        "a/./b",
        "a/..",
        "../other@localhost/INBOX",
        "~",
        "~root/mail",
    ] {
        assert!(
            matches!(
                store.create_mailbox(alice.id, bad).await,
                Err(StoreError::Invalid(_))
            ),
            "{bad:?}"
        );
    }

    store.set_subscribed(alice.id, "Work", true).await.unwrap();
    assert!(names(store.mailboxes(alice.id).await.unwrap()).contains(&("Work".into(), true)));
    // A subscription is a name: it may precede, and outlive, its mailbox.
    store.set_subscribed(alice.id, "Nope", true).await.unwrap();
    assert!(store
        .subscriptions(alice.id)
        .await
        .unwrap()
        .contains(&"Nope".to_owned()));

    // A level with levels below it stays; INBOX always stays.
    assert!(matches!(
        store.delete_mailbox(alice.id, "Work").await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.delete_mailbox(alice.id, "INBOX").await,
        Err(StoreError::Invalid(_))
    ));

    // Rename carries the levels below and keeps UIDVALIDITY.
    let before = store.mailboxes(alice.id).await.unwrap();
    let q4 = before.iter().find(|m| m.name == "Work/2026/Q4").unwrap();
    store
        .rename_mailbox(alice.id, "Work", "Old/Jobs")
        .await
        .unwrap();
    let after = store.mailboxes(alice.id).await.unwrap();
    let moved = after.iter().find(|m| m.name == "Old/Jobs/2026/Q4").unwrap();
    assert_eq!(moved.uid_validity, q4.uid_validity);
    assert!(after.iter().any(|m| m.name == "Old"));
    assert!(!after.iter().any(|m| m.name.starts_with("Work")));
    assert!(matches!(
        store.rename_mailbox(alice.id, "Old", "Old/Jobs/x").await,
        Err(StoreError::AlreadyExists(_) | StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.rename_mailbox(alice.id, "Old/Jobs", "Sent").await,
        Err(StoreError::AlreadyExists(_))
    ));

    for name in ["Old/Jobs/2026/Q4", "Old/Jobs/2026", "Old/Jobs", "Old"] {
        store.delete_mailbox(alice.id, name).await.unwrap();
    }
    assert!(!store
        .mailboxes(alice.id)
        .await
        .unwrap()
        .iter()
        .any(|m| m.name.starts_with("Old")));
}

#[tokio::test]
async fn append_copy_move_and_delete_keep_blobs_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    let raw = raw_message("appended");
    let (validity, uid) = store
        .append(
            alice.id,
            "Drafts",
            raw.clone(),
            &strings(&["\\Draft", "$Todo"]),
            1_600_000_000,
        )
        .await
        .unwrap();
    let drafts = store.mailbox_index(alice.id, "Drafts").await.unwrap();
    assert_eq!(drafts.uid_validity, validity);
    assert_eq!(drafts.messages[0].uid, uid);
    assert_eq!(drafts.messages[0].flags, strings(&["\\Draft", "$Todo"]));
    let info = store.messages(alice.id, "Drafts").await.unwrap();
    assert_eq!(info[0].internal_date, 1_600_000_000);
    assert_eq!(info[0].summary.subject.as_deref(), Some("appended"));
    assert_eq!(
        store
            .message_raw(alice.id, "Drafts", uid)
            .await
            .unwrap()
            .unwrap(),
        raw
    );
    assert!(matches!(
        store.append(alice.id, "Nope", raw.clone(), &[], 0).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .append(alice.id, "Drafts", raw.clone(), &strings(&["\\Recent"]), 0)
            .await,
        Err(StoreError::Invalid(_))
    ));

    // The same bytes twice are one blob.
    store
        .append(alice.id, "INBOX", raw.clone(), &[], 0)
        .await
        .unwrap();
    assert_eq!(store.blob_count().await.unwrap(), 1);

    let (archive_validity, pairs) = store
        .copy_messages(alice.id, "Drafts", &[uid, Uid(999)], "Archive")
        .await
        .unwrap();
    assert_eq!(pairs.len(), 1);
    let archive = store.mailbox_index(alice.id, "Archive").await.unwrap();
    assert_eq!(archive.uid_validity, archive_validity);
    assert_eq!(archive.messages[0].uid, pairs[0].1);
    assert_eq!(archive.messages[0].flags, strings(&["\\Draft", "$Todo"]));

    let (_, moved) = store
        .move_messages(alice.id, "Archive", &[pairs[0].1], "Trash")
        .await
        .unwrap();
    assert_eq!(moved.len(), 1);
    assert!(store
        .mailbox_index(alice.id, "Archive")
        .await
        .unwrap()
        .messages
        .is_empty());
    assert_eq!(
        store
            .mailbox_index(alice.id, "Trash")
            .await
            .unwrap()
            .messages
            .len(),
        1
    );

    // Three references (Drafts, INBOX, Trash); the blob goes with the last.
    store.create_mailbox(alice.id, "Scratch").await.unwrap();
    store
        .copy_messages(alice.id, "Trash", &[moved[0].1], "Scratch")
        .await
        .unwrap();
    store.delete_mailbox(alice.id, "Scratch").await.unwrap();
    store.delete_mailbox(alice.id, "Trash").await.unwrap();
    store.expunge(alice.id, "Drafts", &[uid]).await.unwrap();
    assert_eq!(store.blob_count().await.unwrap(), 1);
    let inbox = store.mailbox_index(alice.id, "INBOX").await.unwrap();
    store
        .expunge(alice.id, "INBOX", &[inbox.messages[0].uid])
        .await
        .unwrap();
    assert_eq!(store.blob_count().await.unwrap(), 0);
}

#[tokio::test]
async fn renaming_inbox_moves_its_messages() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = alice_with_messages(&store, 3).await;
    store
        .rename_mailbox(alice.id, "inbox", "Old Inbox")
        .await
        .unwrap();
    assert!(store
        .mailbox_index(alice.id, "INBOX")
        .await
        .unwrap()
        .messages
        .is_empty());
    let old = store.mailbox_index(alice.id, "Old Inbox").await.unwrap();
    assert_eq!(old.messages.len(), 3);
}

#[tokio::test]
async fn recent_is_claimed_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = alice_with_messages(&store, 2).await;
    assert_eq!(store.claim_recent(alice.id, "INBOX").await.unwrap(), Uid(1));
    assert_eq!(store.claim_recent(alice.id, "INBOX").await.unwrap(), Uid(3));
    store
        .append(alice.id, "INBOX", raw_message("new"), &[], 0)
        .await
        .unwrap();
    assert_eq!(store.claim_recent(alice.id, "INBOX").await.unwrap(), Uid(3));
    assert_eq!(store.claim_recent(alice.id, "INBOX").await.unwrap(), Uid(4));
}

/// THREAD=REFERENCES reads a message's `References:` from its envelope
/// summary, not from the raw message.
#[tokio::test]
async fn envelopes_carry_the_references() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = alice_with_messages(&store, 1).await;
    let reply = b"From: bob@example.org\r\nSubject: Re: plan\r\n\
        Message-ID: <r2@example.org>\r\n\
        References: <r0@example.org>\r\n <r1@example.org>\r\n\r\nok\r\n";
    let (_, uid) = store
        .append(alice.id, "INBOX", reply.to_vec(), &[], 0)
        .await
        .unwrap();
    let got = store
        .envelopes(alice.id, "INBOX", &[Uid(1), uid])
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].summary.references, None);
    assert_eq!(
        got[1].summary.references.as_deref(),
        Some("<r0@example.org> <r1@example.org>")
    );
    assert_eq!(
        got[1].summary.message_id.as_deref(),
        Some("<r2@example.org>")
    );
}

#[tokio::test]
async fn envelopes_match_the_full_summaries() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = alice_with_messages(&store, 5).await;
    let uids = [Uid(4), Uid(2), Uid(9)];
    let full = store
        .messages_by_uid(alice.id, "INBOX", &uids)
        .await
        .unwrap();
    let light = store.envelopes(alice.id, "INBOX", &uids).await.unwrap();
    // UID order, missing ones left out.
    assert_eq!(
        light.iter().map(|m| m.uid).collect::<Vec<_>>(),
        [Uid(2), Uid(4)]
    );
    for l in &light {
        let f = full.iter().find(|f| f.uid == l.uid).unwrap();
        assert_eq!(
            (l.size, l.internal_date, &l.flags),
            (f.size, f.internal_date, &f.flags)
        );
        assert_eq!(l.summary.subject, f.summary.subject);
        assert_eq!(l.summary.from, f.summary.from);
        assert_eq!(l.summary.to, f.summary.to);
        assert_eq!(l.summary.date, f.summary.date);
        assert_eq!(l.summary.message_id, f.summary.message_id);
        assert_eq!(l.summary.references, f.summary.references);
        assert_eq!(l.summary.raw, f.summary.raw);
        assert_eq!(l.summary.header_len, f.summary.header_len);
    }
    // A second read comes from the per-blob cache, the same.
    let again = store.envelopes(alice.id, "INBOX", &uids).await.unwrap();
    assert_eq!(
        again.iter().map(|m| &m.summary).collect::<Vec<_>>(),
        light.iter().map(|m| &m.summary).collect::<Vec<_>>()
    );
}

/// `envelopes_each` hands over what `envelopes` gives, message by
/// message in UID order, before and after the envelope cache holds them.
#[tokio::test]
async fn envelopes_each_sees_what_envelopes_gives() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = alice_with_messages(&store, 5).await;
    let uids = [Uid(4), Uid(2), Uid(9), Uid(1)];
    let each = |m: &MessageInfo| {
        (
            m.uid,
            m.size,
            m.internal_date,
            m.summary.subject.clone(),
            m.summary.message_id.clone(),
            m.summary.date,
        )
    };
    let before = store
        .envelopes_each(alice.id, "INBOX", &uids, each)
        .await
        .unwrap();
    assert_eq!(
        before.iter().map(|m| m.0).collect::<Vec<_>>(),
        [Uid(1), Uid(2), Uid(4)]
    );
    let light = store.envelopes(alice.id, "INBOX", &uids).await.unwrap();
    assert_eq!(before, light.iter().map(each).collect::<Vec<_>>());
    let after = store
        .envelopes_each(alice.id, "INBOX", &uids, each)
        .await
        .unwrap();
    assert_eq!(before, after);
    assert!(before.iter().all(|m| m.3.is_some()));
}

/// SEARCH's compact fields are those of the full summaries, kept per
/// blob, and small: a few hundred bytes each, so that the default budget
/// holds a mailbox of tens of thousands of messages and a repeated SEARCH
/// over all of them is served from memory.
#[tokio::test]
async fn search_infos_match_the_summaries_and_are_kept_compactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = alice_with_messages(&store, 30).await;
    let uids: Vec<Uid> = (1..=40).rev().map(Uid).collect();
    let full = store
        .messages_by_uid(alice.id, "INBOX", &uids)
        .await
        .unwrap();
    let infos = store.search_infos(alice.id, "INBOX", &uids).await.unwrap();
    // UID order, missing ones left out.
    assert_eq!(
        infos.iter().map(|i| i.uid).collect::<Vec<_>>(),
        (1..=30).map(Uid).collect::<Vec<_>>()
    );
    for i in &infos {
        let f = full.iter().find(|f| f.uid == i.uid).unwrap();
        assert_eq!(i.internal_date, f.internal_date);
        assert_eq!(*i.fields, crate::SearchFields::of(&f.summary));
        assert_eq!(i.fields.header_len, f.summary.header_len);
        let subject = f.summary.subject.as_deref().unwrap().to_lowercase();
        assert!(i.fields.subject_contains(&subject));
        assert!(i
            .fields
            .address_contains(crate::AddressHeader::From, "sender <sender@example.org>"));
        let charge = crate::kept::search_fields_bytes(&i.fields);
        assert!(charge < 250, "{charge} bytes");
    }
    let default_budget = StoreOptions::default().search_fields_cache_bytes;
    let per_entry =
        crate::kept::search_fields_bytes(&infos[0].fields) + 2 * 32 + crate::kept::ENTRY_OVERHEAD;
    assert!(
        default_budget / per_entry > 20_000,
        "{per_entry} bytes each"
    );

    // A second read comes from the cache; with no budget, made anew.
    let again = store.search_infos(alice.id, "INBOX", &uids).await.unwrap();
    for (a, b) in infos.iter().zip(&again) {
        assert!(Arc::ptr_eq(&a.fields, &b.fields));
    }
    let none = Store::open_with(
        dir.path(),
        StoreOptions {
            search_fields_cache_bytes: 0,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let first = none.search_infos(alice.id, "INBOX", &uids).await.unwrap();
    let again = none.search_infos(alice.id, "INBOX", &uids).await.unwrap();
    for (a, b) in first.iter().zip(&again) {
        assert!(!Arc::ptr_eq(&a.fields, &b.fields));
        assert_eq!(a.fields, b.fields);
    }
}

#[tokio::test]
async fn cached_index_follows_changes_from_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = alice_with_messages(&store, 2).await;
    let first = store.mailbox_index(alice.id, "INBOX").await.unwrap();
    // Unchanged: the same index, shared.
    let again = store.mailbox_index(alice.id, "inbox").await.unwrap();
    assert!(Arc::ptr_eq(&first, &again));
    // Another store on the same data dir stands for another process.
    let other = open(&dir);
    other
        .store_flags(
            alice.id,
            "INBOX",
            &[Uid(1)],
            FlagChange::Add,
            &strings(&["\\Flagged"]),
        )
        .await
        .unwrap();
    let index = store.mailbox_index(alice.id, "INBOX").await.unwrap();
    assert_eq!(index.messages[0].flags, ["\\Flagged"]);
    other
        .append(alice.id, "INBOX", raw_message("x"), &[], 0)
        .await
        .unwrap();
    assert_eq!(
        store
            .mailbox_index(alice.id, "INBOX")
            .await
            .unwrap()
            .messages
            .len(),
        3
    );
    other.expunge(alice.id, "INBOX", &[Uid(2)]).await.unwrap();
    let index = store.mailbox_index(alice.id, "INBOX").await.unwrap();
    assert_eq!(
        index.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
        [Uid(1), Uid(3)]
    );
}

fn open_with_caches(dir: &tempfile::TempDir, index_bytes: u64, envelope_bytes: u64) -> Store {
    Store::open_with(
        dir.path(),
        StoreOptions {
            poll_interval: Duration::from_millis(50),
            index_cache_bytes: index_bytes,
            envelope_cache_bytes: envelope_bytes,
            ..StoreOptions::default()
        },
    )
    .unwrap()
}

/// The caches hold what fits their byte budgets: an index that fits is
/// shared by later reads; one bigger than the whole budget is read anew
/// each time (the same index all the same) and pushes out nothing; a
/// budget of 0 keeps nothing, envelopes alike.
#[tokio::test]
async fn indexes_and_envelopes_are_kept_within_their_byte_budgets() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = alice_with_messages(&store, 30).await;
    store.create_mailbox(alice.id, "Small").await.unwrap();
    store
        .append(alice.id, "Small", raw_message("small"), &[], 0)
        .await
        .unwrap();
    let big = crate::kept::index_bytes(&store.mailbox_index(alice.id, "INBOX").await.unwrap());
    let small = crate::kept::index_bytes(&store.mailbox_index(alice.id, "Small").await.unwrap());
    assert!(small < big, "{small} vs {big}");
    let same = |a: &MailboxIndex, b: &MailboxIndex| {
        serde_json::to_string(a).unwrap() == serde_json::to_string(b).unwrap()
    };

    // Room for the small index only.
    let tight = open_with_caches(&dir, small + crate::kept::ENTRY_OVERHEAD, 0);
    let small_first = tight.mailbox_index(alice.id, "Small").await.unwrap();
    let big_first = tight.mailbox_index(alice.id, "INBOX").await.unwrap();
    let big_again = tight.mailbox_index(alice.id, "INBOX").await.unwrap();
    assert!(!Arc::ptr_eq(&big_first, &big_again));
    assert!(same(&big_first, &big_again));
    assert_eq!(big_again.messages.len(), 30);
    let small_again = tight.mailbox_index(alice.id, "Small").await.unwrap();
    assert!(Arc::ptr_eq(&small_first, &small_again));

    // No envelope budget: each read decodes again, to the same envelopes.
    let uids: Vec<Uid> = (1..=30).map(Uid).collect();
    let first = tight.envelopes(alice.id, "INBOX", &uids).await.unwrap();
    let again = tight.envelopes(alice.id, "INBOX", &uids).await.unwrap();
    assert_eq!(first.len(), 30);
    for (a, b) in first.iter().zip(&again) {
        assert!(!Arc::ptr_eq(&a.summary, &b.summary));
        assert_eq!(a.summary, b.summary);
    }
    // With the default budget, a second read is served from the cache.
    let first = store.envelopes(alice.id, "INBOX", &uids).await.unwrap();
    let again = store.envelopes(alice.id, "INBOX", &uids).await.unwrap();
    for (a, b) in first.iter().zip(&again) {
        assert!(Arc::ptr_eq(&a.summary, &b.summary));
    }

    let none = open_with_caches(&dir, 0, 0);
    let a = none.mailbox_index(alice.id, "Small").await.unwrap();
    let b = none.mailbox_index(alice.id, "Small").await.unwrap();
    assert!(!Arc::ptr_eq(&a, &b));
    assert!(same(&a, &b));
}

#[tokio::test]
async fn bounce_and_report_in_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let id = store
        .enqueue(message(
            &raw_message("x"),
            &["a@remote.test", "b@remote.test", "c@remote.test"],
        ))
        .await
        .unwrap();
    // Taken after the enqueue: a second turning over in between would
    // leave the message not yet due.
    let claimed = store.claim_due(now(), LEASE, 10).await.unwrap();
    let r: Vec<RecipientId> = claimed[0].recipients.iter().map(|r| r.id).collect();
    let report = |to: &str| NewQueuedMessage {
        sender: String::new(),
        ..message(b"Subject: report\r\n\r\nfailed\r\n", &[to])
    };

    let first = store
        .bounce_with_report(
            id,
            vec![(r[0], "550 5.1.1 a".into()), (r[1], "550 5.1.1 b".into())],
            Some(report("sender@example.org")),
        )
        .await
        .unwrap()
        .expect("a report");
    let q = store.queue().await.unwrap();
    assert_eq!(q.len(), 2, "the original (c still open) and the report");
    let original = q.iter().find(|m| m.id == id).unwrap();
    assert_eq!(original.recipients[0].state, RecipientState::Bounced);
    assert_eq!(
        original.recipients[0].last_error.as_deref(),
        Some("550 5.1.1 a")
    );
    assert_eq!(
        original.recipients[1].last_error.as_deref(),
        Some("550 5.1.1 b")
    );
    let report_entry = q.iter().find(|m| m.id == first).unwrap();
    assert_eq!(report_entry.sender, "");
    assert_eq!(report_entry.recipients[0].address, "sender@example.org");

    // Already bounced: nothing marked, so no second report.
    let again = store
        .bounce_with_report(id, vec![(r[0], "x".into())], Some(report("x@y.test")))
        .await
        .unwrap();
    assert_eq!(again, None);
    assert_eq!(store.queue().await.unwrap().len(), 2);

    // The last open recipient: the original leaves the queue.
    store
        .bounce_with_report(id, vec![(r[2], "expired".into())], None)
        .await
        .unwrap();
    let q = store.queue().await.unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].id, first);
}

#[tokio::test]
async fn a_mailbox_ref_never_reaches_a_recreated_namesake() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    store.create_mailbox(alice.id, "r").await.unwrap();
    for s in ["one", "two", "three"] {
        store
            .append(alice.id, "r", raw_message(s), &[], 0)
            .await
            .unwrap();
    }
    let old = store.mailbox_index(alice.id, "r").await.unwrap();
    let old_ref = old.mailbox_ref();
    assert_eq!(old.messages.len(), 3);

    // Deleted and created again: `r` is now the newest mailbox, so SQLite
    // may well hand it the old row id; the UIDVALIDITY still differs.
    store.delete_mailbox(alice.id, "r").await.unwrap();
    store.create_mailbox(alice.id, "r").await.unwrap();
    store
        .append(alice.id, "r", raw_message("four"), &[], 0)
        .await
        .unwrap();
    let new = store.mailbox_index(alice.id, "r").await.unwrap();
    assert!(new.uid_validity > old_ref.uid_validity);

    let gone = |r: Result<(), StoreError>| match r {
        Err(StoreError::MailboxGone(m)) => assert_eq!(m, old_ref),
        other => panic!("expected MailboxGone, got {other:?}"),
    };
    let uid1 = [Uid(1)];
    gone(store.mailbox_index(alice.id, old_ref).await.map(drop));
    gone(
        store
            .messages_by_uid(alice.id, old_ref, &uid1)
            .await
            .map(drop),
    );
    gone(store.envelopes(alice.id, old_ref, &uid1).await.map(drop));
    gone(store.messages_raw(alice.id, old_ref, &uid1).await.map(drop));
    gone(store.message_raw(alice.id, old_ref, Uid(1)).await.map(drop));
    gone(store.messages(alice.id, old_ref).await.map(drop));
    gone(store.claim_recent(alice.id, old_ref).await.map(drop));
    gone(
        store
            .store_flags(
                alice.id,
                old_ref,
                &uid1,
                FlagChange::Add,
                &["\\Deleted".into()],
            )
            .await
            .map(drop),
    );
    gone(store.expunge(alice.id, old_ref, &uid1).await.map(drop));
    gone(
        store
            .copy_messages(alice.id, old_ref, &uid1, "INBOX")
            .await
            .map(drop),
    );
    gone(
        store
            .move_messages(alice.id, old_ref, &uid1, "INBOX")
            .await
            .map(drop),
    );

    // The new mailbox's message is untouched, and nothing was copied.
    let now = store.messages(alice.id, "r").await.unwrap();
    assert_eq!(now.len(), 1);
    assert!(now[0].flags.is_empty());
    assert!(store.messages(alice.id, "INBOX").await.unwrap().is_empty());
    // Its own reference works; another account's reference does not.
    let bob = quick_account(&store, "bob@localhost").await;
    assert_eq!(
        store
            .messages(alice.id, new.mailbox_ref())
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(matches!(
        store.messages(bob.id, new.mailbox_ref()).await,
        Err(StoreError::MailboxGone(_))
    ));
}

#[tokio::test]
async fn inbox_is_case_insensitive_as_a_hierarchy_level() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    store.create_mailbox(alice.id, "Inbox/kid").await.unwrap();
    let names: Vec<String> = store
        .mailboxes(alice.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert!(names.contains(&"INBOX/kid".to_owned()), "{names:?}");
    assert!(!names.iter().any(|n| n == "Inbox/kid" || n == "Inbox"));
    for other in ["INBOX/kid", "inbox/kid", "iNbOx/kid"] {
        assert!(matches!(
            store.create_mailbox(alice.id, other).await,
            Err(StoreError::AlreadyExists(_))
        ));
    }
    // The rest of the name stays case-sensitive; a longer first level is
    // not INBOX.
    store.create_mailbox(alice.id, "inbox/KID").await.unwrap();
    store.create_mailbox(alice.id, "inboxes/a").await.unwrap();
    store
        .append(alice.id, "inbox/kid", raw_message("x"), &[], 0)
        .await
        .unwrap();
    assert_eq!(
        store.messages(alice.id, "INBOX/kid").await.unwrap().len(),
        1
    );
    store
        .set_subscribed(alice.id, "inbox/kid", true)
        .await
        .unwrap();
    let subs = store.subscriptions(alice.id).await.unwrap();
    assert!(subs.contains(&"INBOX/kid".to_owned()), "{subs:?}");
    store
        .rename_mailbox(alice.id, "Inbox/KID", "inbox/k2")
        .await
        .unwrap();
    let names: Vec<String> = store
        .mailboxes(alice.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert!(names.contains(&"INBOX/k2".to_owned()), "{names:?}");
    assert!(names.contains(&"inboxes/a".to_owned()), "{names:?}");
    store.delete_mailbox(alice.id, "INBOX/k2").await.unwrap();
    store
        .delete_mailbox(alice.id, "Inbox/Kid")
        .await
        .unwrap_err();
    store.delete_mailbox(alice.id, "Inbox/kid").await.unwrap();
}

#[tokio::test]
async fn inbox_level_names_of_older_versions_are_migrated() {
    if crate::tests::sqlite_only("an SQLite migration") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A database as the version before the INBOX migration left it, with
    // the same level spelled several ways.
    let step = schema::MIGRATIONS
        .iter()
        .position(|m| m.contains("'inbox/'"))
        .expect("the INBOX migration");
    let alice = AccountId(1);
    {
        let conn = rusqlite::Connection::open(dir.path().join("postern.db")).unwrap();
        for migration in &schema::MIGRATIONS[..step] {
            conn.execute_batch(migration).unwrap();
        }
        conn.execute(
            "INSERT INTO accounts (id, address, password_hash, created_at)
             VALUES (1, 'alice@localhost', 'x', 0)",
            [],
        )
        .unwrap();
        for (id, name) in [
            (900, "Inbox/kid"),
            (901, "inbox/kid"),
            (902, "INBOX/x"),
            (903, "inbox/x"),
            (904, "inBox/solo"),
        ] {
            conn.execute(
                "INSERT INTO mailboxes (id, account_id, name, uid_validity) VALUES (?1, ?2, ?3, ?1)",
                rusqlite::params![id, alice.0, name],
            )
            .unwrap();
        }
        conn.execute(
            "INSERT INTO subscriptions (account_id, name) VALUES (?1, 'inbox/kid'), (?1, 'INBOX/kid')",
            [alice.0],
        )
        .unwrap();
        conn.pragma_update(None, "user_version", step as i64)
            .unwrap();
    }
    let store = open(&dir);
    let mut names: Vec<String> = store
        .mailboxes(alice)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .filter(|n| n.starts_with("INBOX/"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "INBOX/kid",
            "INBOX/kid (901)",
            "INBOX/solo",
            "INBOX/x",
            "INBOX/x (903)"
        ]
    );
    let subs = store.subscriptions(alice).await.unwrap();
    assert!(!subs.iter().any(|s| s.starts_with("inbox")), "{subs:?}");
    assert_eq!(subs.iter().filter(|s| *s == "INBOX/kid").count(), 1);
}

fn envelope_for(recipients: &[&str]) -> NewEnvelope {
    NewEnvelope {
        session: None,
        session_start: SmtpSessionStart {
            client: "127.0.0.1:40000".into(),
            role: "smtp".into(),
            started_at: 1_700_000_000,
        },
        mail_from: "app@example.org".into(),
        mail_params: "BODY=8BITMIME".into(),
        recipients: recipients
            .iter()
            .map(|r| EnvelopeRecipient {
                address: r.to_string(),
                params: String::new(),
            })
            .collect(),
        helo: Some("app.example.org".into()),
        tls: None,
        auth_user: None,
        warnings: vec![],
    }
}

#[tokio::test]
async fn capture_keeps_each_recipient_apart_with_the_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.set_capture_password("capture-pw").await.unwrap();
    let to = [
        "customer@gmail.com",
        "Ops@Acme.example",
        "hidden@bcc.example",
    ];
    let (arrivals, session) = store
        .capture(message(&raw_message("hello"), &to), envelope_for(&to))
        .await
        .unwrap();
    assert_eq!(arrivals.len(), 3);
    assert!(arrivals.windows(2).all(|w| w[0] < w[1]));
    // Each address is an account of its own, with an INBOX, and can log in
    // with the capture password; its domain is not made local.
    for address in [
        "customer@gmail.com",
        "ops@acme.example",
        "hidden@bcc.example",
    ] {
        let account = store
            .authenticate(address, "capture-pw")
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{address} cannot log in"));
        let inbox = store.messages(account.id, "INBOX").await.unwrap();
        assert_eq!(inbox.len(), 1);
    }
    assert!(!store.is_local_domain("gmail.com").await.unwrap());
    // The envelope is data, with the Bcc recipient, the bytes untouched.
    let first = store
        .arrival(ArrivalScope::All, arrivals[0])
        .await
        .unwrap()
        .unwrap();
    let envelope = store
        .envelope(first.envelope.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(envelope.session, Some(session));
    assert_eq!(envelope.mail_from, "app@example.org");
    assert_eq!(envelope.recipients.len(), 3);
    assert_eq!(envelope.recipients[2].address, "hidden@bcc.example");
    assert_eq!(
        store
            .arrival_raw(ArrivalScope::All, arrivals[2])
            .await
            .unwrap()
            .unwrap(),
        raw_message("hello")
    );
    // A second message to the same address goes to the same account.
    let (again, _) = store
        .capture(
            message(&raw_message("again"), &["customer@gmail.com"]),
            NewEnvelope {
                session: Some(session),
                ..envelope_for(&["customer@gmail.com"])
            },
        )
        .await
        .unwrap();
    assert!(again[0] > arrivals[2]);
    let customer = store.account("customer@gmail.com").await.unwrap().unwrap();
    assert_eq!(store.messages(customer.id, "INBOX").await.unwrap().len(), 2);
    assert_eq!(store.session_envelopes(session).await.unwrap().len(), 2);
    // The session's end is recorded on the same row.
    store
        .end_smtp_session(
            Some(session),
            envelope_for(&[]).session_start,
            1_700_000_100,
            1,
            "C: QUIT\r\nS: 221 bye\r\n".into(),
        )
        .await
        .unwrap();
    let record = store.smtp_session(session).await.unwrap().unwrap();
    assert_eq!(record.refusals, 1);
    assert_eq!(record.ended_at, Some(1_700_000_100));
    assert!(record.transcript.contains("221 bye"));
}

#[tokio::test]
async fn arrivals_of_one_mailbox() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = store.add_account("alice@localhost", "pw").await.unwrap();
    let bob = store.add_account("bob@localhost", "pw").await.unwrap();
    for (account, mailbox, subject) in [
        (alice.id, "INBOX", "a1"),
        (alice.id, "Sent", "a2"),
        (alice.id, "INBOX", "a3"),
        (bob.id, "INBOX", "b1"),
    ] {
        store
            .append(account, mailbox, raw_message(subject), &[], 0)
            .await
            .unwrap();
    }
    let boxes = store.mailboxes(alice.id).await.unwrap();
    let inbox = boxes.iter().find(|b| b.name == "INBOX").unwrap().id;
    let scope = ArrivalScope::Mailbox(inbox);
    let listed = store
        .arrivals_newest(scope.clone(), None, 10)
        .await
        .unwrap();
    let subjects: Vec<_> = listed
        .iter()
        .map(|m| m.summary.subject.clone().unwrap())
        .collect();
    assert_eq!(subjects, ["a3", "a1"]);
    assert!(listed.iter().all(|m| m.mailbox_name == "INBOX"));
    assert_eq!(store.arrival_counts(scope.clone()).await.unwrap(), (2, 2));
    // A move gives the copy a new arrival number in its new mailbox.
    let moved = listed[0].clone();
    store
        .move_messages(alice.id, moved.mailbox, &[moved.uid], "Trash")
        .await
        .unwrap();
    assert!(store
        .arrival(scope.clone(), moved.arrival)
        .await
        .unwrap()
        .is_none());
    let trash = boxes.iter().find(|b| b.name == "Trash").unwrap().id;
    let in_trash = store
        .arrivals_newest(ArrivalScope::Mailbox(trash), None, 10)
        .await
        .unwrap();
    assert_eq!(in_trash.len(), 1);
    assert!(in_trash[0].arrival > moved.arrival);
}

#[tokio::test]
async fn arrivals_page_wait_and_scope() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let sandbox = store.create_sandbox().await.unwrap();
    assert!(sandbox.domain.ends_with(".sandbox.test"));
    assert_eq!(
        store.sandbox_for_token(&sandbox.token).await.unwrap(),
        Some(sandbox.domain.clone())
    );
    assert_eq!(store.sandbox_for_token("nope").await.unwrap(), None);
    let cursor = store.last_arrival().await.unwrap();
    let inside = format!("user@{}", sandbox.domain);
    for (i, to) in ["a@x.example", inside.as_str(), "b@x.example"]
        .iter()
        .enumerate()
    {
        store
            .capture(
                message(&raw_message(&format!("m{i}")), &[to]),
                envelope_for(&[to]),
            )
            .await
            .unwrap();
    }
    let all = store
        .arrivals_newest(ArrivalScope::All, None, 10)
        .await
        .unwrap();
    let subjects: Vec<_> = all
        .iter()
        .map(|m| m.summary.subject.clone().unwrap())
        .collect();
    assert_eq!(subjects, ["m2", "m1", "m0"]);
    let page = store
        .arrivals_newest(ArrivalScope::All, Some(all[0].arrival), 1)
        .await
        .unwrap();
    assert_eq!(page[0].summary.subject.as_deref(), Some("m1"));
    let after = store
        .arrivals_after(ArrivalScope::All, cursor, 10)
        .await
        .unwrap();
    assert_eq!(after.len(), 3);
    assert_eq!(after[0].summary.subject.as_deref(), Some("m0"));
    assert_eq!(after[0].summary.preview.as_deref(), Some("Body of m0."));

    let scope = ArrivalScope::Domain(sandbox.domain.clone());
    let mine = store
        .arrivals_newest(scope.clone(), None, 10)
        .await
        .unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].address, inside);
    assert!(store
        .arrival(scope.clone(), all[0].arrival)
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.arrival_counts(scope.clone()).await.unwrap(), (1, 1));
    store
        .set_arrival_flags(
            scope.clone(),
            &[mine[0].arrival],
            FlagChange::Add,
            &["\\Seen".into()],
        )
        .await
        .unwrap();
    assert_eq!(store.arrival_counts(scope.clone()).await.unwrap(), (1, 0));
    // Deleting within a scope never reaches outside it.
    assert_eq!(
        store
            .delete_arrivals(scope.clone(), &[all[0].arrival, mine[0].arrival])
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.arrival_counts(ArrivalScope::All).await.unwrap().0, 2);
    // Arrival numbers are never given again after a delete.
    let last = store.last_arrival().await.unwrap();
    store
        .capture(
            message(&raw_message("m3"), &[&inside]),
            envelope_for(&[&inside]),
        )
        .await
        .unwrap();
    assert_eq!(store.last_arrival().await.unwrap(), last + 1);
    assert!(store.delete_sandbox(&sandbox.domain).await.unwrap());
    assert!(store.account(&inside).await.unwrap().is_none());
    assert_eq!(store.sandbox_for_token(&sandbox.token).await.unwrap(), None);
    assert_eq!(store.arrival_counts(ArrivalScope::All).await.unwrap().0, 2);
}

/// A store whose lists come from one reader connection and whose poller
/// looks for other processes' commits only once an hour: what it sees at
/// once of another store's commit, it sees by its own looking.
fn open_one_reader(dir: &tempfile::TempDir) -> Store {
    Store::open_with(
        dir.path(),
        StoreOptions {
            readers: 1,
            poll_interval: Duration::from_secs(3600),
            ..StoreOptions::default()
        },
    )
    .unwrap()
}

async fn capture_to(store: &Store, subject: &str, to: &str) -> u64 {
    store
        .capture(message(&raw_message(subject), &[to]), envelope_for(&[to]))
        .await
        .unwrap()
        .0[0]
}

#[tokio::test]
async fn arrival_list_is_one_snapshot_kept_until_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_one_reader(&dir);
    let sandbox = store.create_sandbox().await.unwrap();
    let inside = format!("user@{}", sandbox.domain);
    let mut arrivals = Vec::new();
    for (i, to) in ["a@x.example", inside.as_str(), "b@x.example"]
        .iter()
        .enumerate()
    {
        arrivals.push(capture_to(&store, &format!("m{i}"), to).await);
    }
    let list = store.arrival_list(ArrivalScope::All, 100).await.unwrap();
    let subjects: Vec<_> = list
        .messages
        .iter()
        .map(|m| m.summary.subject.clone().unwrap())
        .collect();
    assert_eq!(subjects, ["m2", "m1", "m0"]);
    assert_eq!((list.total, list.unseen), (3, 3));
    assert!(list.complete());
    // Nothing committed: the very same list again.
    let again = store.arrival_list(ArrivalScope::All, 100).await.unwrap();
    assert!(Arc::ptr_eq(&list, &again));
    // The newest `max` only, with the scope's counts; another scope is
    // another list.
    let newest = store.arrival_list(ArrivalScope::All, 2).await.unwrap();
    assert_eq!(newest.messages.len(), 2);
    assert_eq!(newest.total, 3);
    assert!(!newest.complete());
    let scope = ArrivalScope::Domain(sandbox.domain.clone());
    let mine = store.arrival_list(scope.clone(), 100).await.unwrap();
    assert_eq!(mine.messages.len(), 1);
    assert_eq!(mine.messages[0].address, inside);
    // A flag change is a commit: a new list that shows it.
    store
        .set_arrival_flags(
            ArrivalScope::All,
            &[arrivals[0]],
            FlagChange::Add,
            &["\\Seen".into()],
        )
        .await
        .unwrap();
    let after = store.arrival_list(ArrivalScope::All, 100).await.unwrap();
    assert!(!Arc::ptr_eq(&list, &after));
    assert_eq!((after.total, after.unseen), (3, 2));
    assert!(after.messages[2].flags.iter().any(|f| f == "\\Seen"));
    // So is a delete.
    store
        .delete_arrivals(ArrivalScope::All, &[arrivals[2]])
        .await
        .unwrap();
    let after = store.arrival_list(ArrivalScope::All, 100).await.unwrap();
    assert_eq!(after.total, 2);
    assert_eq!(after.messages[0].arrival, arrivals[1]);
}

#[tokio::test]
async fn arrival_list_sees_another_stores_commit_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // Two stores on one dir, as two processes: b's poller would notice a's
    // commits only after an hour.
    let a = open(&dir);
    let b = open_one_reader(&dir);
    capture_to(&a, "first", "a@x.example").await;
    let list = b.arrival_list(ArrivalScope::All, 100).await.unwrap();
    assert_eq!(list.total, 1);
    let second = capture_to(&a, "second", "a@x.example").await;
    let list = b.arrival_list(ArrivalScope::All, 100).await.unwrap();
    assert_eq!(list.total, 2);
    assert_eq!(list.messages[0].arrival, second);
    a.set_arrival_flags(
        ArrivalScope::All,
        &[second],
        FlagChange::Add,
        &["\\Seen".into()],
    )
    .await
    .unwrap();
    assert_eq!(
        b.arrival_list(ArrivalScope::All, 100).await.unwrap().unseen,
        1
    );
}

#[tokio::test]
async fn arrivals_raw_reads_many_in_one_go_within_the_scope() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let sandbox = store.create_sandbox().await.unwrap();
    let inside = format!("user@{}", sandbox.domain);
    let a = capture_to(&store, "a", "a@x.example").await;
    let b = capture_to(&store, "b", &inside).await;
    let c = capture_to(&store, "c", "c@x.example").await;
    let got = store
        .arrivals_raw(ArrivalScope::All, &[c, 999_999, a])
        .await
        .unwrap();
    assert_eq!(got, vec![(c, raw_message("c")), (a, raw_message("a"))]);
    let scope = ArrivalScope::Domain(sandbox.domain.clone());
    let got = store.arrivals_raw(scope, &[a, b, c]).await.unwrap();
    assert_eq!(got, vec![(b, raw_message("b"))]);
    assert!(store
        .arrivals_raw(ArrivalScope::All, &[])
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn queued_mail_keeps_its_envelope_through_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    let (queue, session) = store
        .enqueue_received(
            message(&raw_message("queued"), &["alice@localhost"]),
            DsnRequest::default(),
            envelope_for(&["alice@localhost"]),
        )
        .await
        .unwrap();
    assert!(queue.0 > 0);
    deliver_all(&store).await;
    let inbox = store
        .arrivals_newest(ArrivalScope::Account(alice.id), None, 10)
        .await
        .unwrap();
    assert_eq!(inbox.len(), 1);
    let envelope = store
        .envelope(inbox[0].envelope.expect("envelope linked"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(envelope.session, Some(session));
    assert_eq!(envelope.helo.as_deref(), Some("app.example.org"));
    // Pruning sessions keeps the envelope of a stored message.
    store.prune_smtp_sessions(0).await.unwrap();
    let envelope = store.envelope(envelope.id).await.unwrap().unwrap();
    assert_eq!(envelope.session, None);
}

#[tokio::test]
async fn envelope_ids_survive_the_autoincrement_rebuild() {
    if crate::tests::sqlite_only("an SQLite migration") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A database as the version before envelope ids came from `meta`:
    // envelope 7 with a message and a queue entry pointing at it, and
    // AUTOINCREMENT's high-water mark at 9 (envelopes 8 and 9 gone).
    let step = schema::MIGRATIONS
        .iter()
        .position(|m| m.contains("last_envelope_id"))
        .expect("the envelope id migration");
    let path = dir.path().join(schema::DB_FILE);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for migration in &schema::MIGRATIONS[..step] {
            conn.execute_batch(migration).unwrap();
        }
        conn.execute_batch(
            "INSERT INTO accounts (id, address, password_hash, created_at)
                 VALUES (1, 'alice@localhost', 'x', 0);
             INSERT INTO mailboxes (id, account_id, name, uid_validity) VALUES (1, 1, 'INBOX', 1);
             INSERT INTO blobs (hash, size, refcount, data) VALUES ('h', 1, 2, x'41');
             INSERT INTO envelopes (id, mail_from, recipients, received_at)
                 VALUES (7, 'a@example.org', '[]', 0);
             INSERT INTO messages (mailbox_id, uid, blob_hash, modseq, internal_date, size,
                                   envelope_id, arrival)
                 VALUES (1, 1, 'h', 2, 0, 1, 7, 1);
             INSERT INTO queue (id, blob_hash, sender, body_type, smtputf8, size, received_at,
                                envelope_id)
                 VALUES (1, 'h', 'a@example.org', '7bit', 0, 1, 0, 7);
             INSERT OR REPLACE INTO meta (key, value) VALUES ('last_queue_id', 1);
             UPDATE sqlite_sequence SET seq = 9 WHERE name = 'envelopes';",
        )
        .unwrap();
        conn.pragma_update(None, "user_version", step as i64)
            .unwrap();
    }
    let store = open(&dir);
    store
        .enqueue_received(
            message(&raw_message("after"), &["alice@localhost"]),
            DsnRequest::default(),
            envelope_for(&["alice@localhost"]),
        )
        .await
        .unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let pointers: (i64, i64) = conn
        .query_row(
            "SELECT (SELECT envelope_id FROM messages), (SELECT envelope_id FROM queue WHERE id = 1)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        pointers,
        (7, 7),
        "the rebuild kept what points at envelope 7"
    );
    let ids: Vec<i64> = conn
        .prepare("SELECT id FROM envelopes ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        ids,
        [7, 10],
        "no id below the old high-water mark is given again"
    );
    let sql: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'envelopes'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!sql.contains("AUTOINCREMENT"), "{sql}");
    let indexed: bool = conn
        .query_row(
            "SELECT count(*) = 1 FROM sqlite_master WHERE name = 'envelopes_session'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(indexed);
    let violations: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(violations, 0);
}

// ---- pruning the change feed and tombstones ----

fn open_pruning(dir: &tempfile::TempDir, prune: PruneOptions) -> Store {
    Store::open_with(
        dir.path(),
        StoreOptions {
            poll_interval: Duration::from_millis(50),
            prune,
            ..StoreOptions::default()
        },
    )
    .unwrap()
}

/// A mailbox's history as the database holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Feed {
    changes: i64,
    tombstones: i64,
    /// The lowest modseq left in the feed (0 if empty).
    oldest: i64,
    horizon: i64,
    highest: i64,
}

async fn feed_of(store: &Store, mailbox: MailboxId) -> Feed {
    store
        .inner
        .read(move |conn| {
            let (changes, oldest): (i64, i64) = conn
                .query_row(
                    "SELECT count(*), coalesce(min(modseq), 0) FROM changes WHERE mailbox_id = ?1",
                    [mailbox.0],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            let tombstones: i64 = conn
                .query_row(
                    "SELECT count(*) FROM expunged WHERE mailbox_id = ?1",
                    [mailbox.0],
                    |r| r.get(0),
                )
                .unwrap();
            let (horizon, highest): (i64, i64) = conn
                .query_row(
                    "SELECT horizon_modseq, highest_modseq FROM mailboxes WHERE id = ?1",
                    [mailbox.0],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            Ok(Feed {
                changes,
                tombstones,
                oldest,
                horizon,
                highest,
            })
        })
        .await
        .unwrap()
}

/// Waits (up to 10 s) until the writer has pruned the mailbox to `keep`
/// modseqs, or to `horizon` if given.
async fn pruned(store: &Store, mailbox: MailboxId, keep: i64, horizon: Option<i64>) -> Feed {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let feed = feed_of(store, mailbox).await;
        let done = match horizon {
            Some(h) => feed.horizon == h,
            None => feed.highest - feed.horizon <= keep,
        };
        if done {
            return feed;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not pruned to {keep} modseqs / horizon {horizon:?}: {feed:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn pruning_bounds_the_feed_and_keeps_mail() {
    let dir = tempfile::tempdir().unwrap();
    let keep = 40;
    let store = open_pruning(
        &dir,
        PruneOptions {
            keep_changes: keep as u64,
            max_age: Duration::ZERO,
            batch: 16,
            interval: Duration::ZERO,
        },
    );
    let alice = alice_with_messages(&store, 5).await;
    let inbox = store
        .mailbox_index(alice.id, "INBOX")
        .await
        .unwrap()
        .mailbox;
    let uids: Vec<Uid> = (1..=5).map(Uid).collect();
    store
        .store_flags(
            alice.id,
            "INBOX",
            &[Uid(3)],
            FlagChange::Add,
            &strings(&["$Important"]),
        )
        .await
        .unwrap();

    // 1,000 flag changes, and 20 messages appended and expunged again.
    let mut expunges = Vec::new();
    let mut largest_feed = 0;
    for round in 0..=200 {
        let change = if round % 2 == 0 {
            FlagChange::Add
        } else {
            FlagChange::Remove
        };
        let changed = store
            .store_flags(alice.id, "INBOX", &uids, change, &strings(&["\\Seen"]))
            .await
            .unwrap();
        assert_eq!(changed.len(), 5);
        if round % 10 == 5 {
            let raw = raw_message(&format!("passing {round}"));
            let (_, uid) = store
                .append(alice.id, "INBOX", raw, &[], 1_700_000_000)
                .await
                .unwrap();
            assert_eq!(
                store.expunge(alice.id, "INBOX", &[uid]).await.unwrap(),
                vec![uid]
            );
            let modseq = store
                .mailbox_index(alice.id, "INBOX")
                .await
                .unwrap()
                .highest_modseq;
            expunges.push((uid, modseq));
        }
        if round % 20 == 0 {
            largest_feed = largest_feed.max(feed_of(&store, inbox).await.changes);
        }
    }
    // Pruned as it went: the feed never got far past the bound.
    assert!(
        largest_feed <= 2 * keep,
        "the feed reached {largest_feed} rows"
    );

    let feed = pruned(&store, inbox, keep, None).await;
    assert!(feed.highest > 25 * keep, "{feed:?}");
    // Exactly the newest `keep` modseqs are left, one row each.
    assert_eq!(feed.horizon, feed.highest - keep, "{feed:?}");
    assert_eq!(feed.changes, keep, "{feed:?}");
    assert_eq!(feed.oldest, feed.horizon + 1, "{feed:?}");
    // Tombstones: those above the horizon, and QRESYNC can tell which.
    let recent: Vec<Uid> = expunges
        .iter()
        .filter(|(_, m)| m.0 as i64 > feed.horizon)
        .map(|(u, _)| *u)
        .collect();
    assert!(recent.len() < expunges.len(), "{expunges:?} {feed:?}");
    assert_eq!(feed.tombstones, recent.len() as i64, "{feed:?}");
    let horizon = ModSeq(feed.horizon as u64);
    assert_eq!(
        store.expunged_since(inbox, horizon).await.unwrap(),
        ExpungedSince::Known(recent)
    );
    assert_eq!(
        store
            .expunged_since(inbox, ModSeq(horizon.0 - 1))
            .await
            .unwrap(),
        ExpungedSince::Pruned { horizon }
    );
    assert!(matches!(
        store.expunged_since(MailboxId(9999), horizon).await,
        Err(StoreError::NotFound(_))
    ));

    // The mail itself is untouched: five messages, \Seen from the last
    // round, the keyword set once at the start, the bytes, the blobs.
    let index = store.mailbox_index(alice.id, "INBOX").await.unwrap();
    let listed: Vec<(Uid, Vec<String>)> = index
        .messages
        .iter()
        .map(|m| (m.uid, m.flags.clone()))
        .collect();
    let expected: Vec<(Uid, Vec<String>)> = uids
        .iter()
        .map(|&u| {
            let flags = if u == Uid(3) {
                strings(&["\\Seen", "$Important"])
            } else {
                strings(&["\\Seen"])
            };
            (u, flags)
        })
        .collect();
    assert_eq!(listed, expected);
    assert_eq!(index.highest_modseq, ModSeq(feed.highest as u64));
    assert_eq!(index.uid_next, Uid(26));
    let raw = store
        .message_raw(alice.id, "INBOX", Uid(1))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&raw).contains("Subject: m0"));
    assert_eq!(store.blob_count().await.unwrap(), 5);
    // Other mailboxes had no history to prune.
    for mailbox in store.mailboxes(alice.id).await.unwrap() {
        if mailbox.id != inbox {
            assert_eq!(feed_of(&store, mailbox.id).await.horizon, 0);
        }
    }
}

#[tokio::test]
async fn pruning_an_older_feed_on_open_and_by_age() {
    let dir = tempfile::tempdir().unwrap();
    // Written without a small bound (as before pruning): the whole feed.
    let store = open(&dir);
    let alice = alice_with_messages(&store, 3).await;
    let inbox = store
        .mailbox_index(alice.id, "INBOX")
        .await
        .unwrap()
        .mailbox;
    let uids = [Uid(1), Uid(2), Uid(3)];
    for round in 0..100 {
        let change = if round % 2 == 0 {
            FlagChange::Add
        } else {
            FlagChange::Remove
        };
        store
            .store_flags(alice.id, "INBOX", &uids, change, &strings(&["\\Flagged"]))
            .await
            .unwrap();
    }
    let expunged = store.expunge(alice.id, "INBOX", &[Uid(2)]).await.unwrap();
    assert_eq!(expunged, vec![Uid(2)]);
    let before = feed_of(&store, inbox).await;
    assert_eq!(
        (before.changes, before.tombstones, before.horizon),
        (304, 1, 0)
    );
    drop(store);

    // Reopened with a bound of 100: pruned at once, without a write.
    let store = open_pruning(
        &dir,
        PruneOptions {
            keep_changes: 100,
            max_age: Duration::ZERO,
            batch: 64,
            interval: Duration::from_secs(3600),
        },
    );
    let feed = pruned(&store, inbox, 100, None).await;
    assert_eq!(feed.horizon, before.highest - 100);
    assert_eq!((feed.changes, feed.tombstones), (100, 1));
    drop(store);

    // Reopened with an age limit of a second, two seconds later: all of it
    // is old, all of it goes but the feed's newest row (which holds the
    // highest id, so that no id is ever given twice); a change made now
    // stays.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let store = open_pruning(
        &dir,
        PruneOptions {
            keep_changes: 10_000,
            max_age: Duration::from_secs(1),
            batch: 1000,
            interval: Duration::ZERO,
        },
    );
    let feed = pruned(&store, inbox, 0, Some(before.highest)).await;
    assert_eq!((feed.changes, feed.tombstones), (1, 0), "{feed:?}");
    store
        .store_flags(
            alice.id,
            "INBOX",
            &[Uid(1)],
            FlagChange::Add,
            &strings(&["\\Seen"]),
        )
        .await
        .unwrap();
    // Give the writer time for a look; the young change stays (and the
    // old newest row, below the horizon, until the horizon moves again).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let feed = feed_of(&store, inbox).await;
    assert_eq!(
        (feed.changes, feed.horizon, feed.highest),
        (2, before.highest, before.highest + 1)
    );
    assert_eq!(
        store
            .expunged_since(inbox, ModSeq(before.highest as u64))
            .await
            .unwrap(),
        ExpungedSince::Known(vec![])
    );
    assert_eq!(
        store.expunged_since(inbox, ModSeq(1)).await.unwrap(),
        ExpungedSince::Pruned {
            horizon: ModSeq(before.highest as u64)
        }
    );
    // The messages are all still there.
    let index = store.mailbox_index(alice.id, "INBOX").await.unwrap();
    let listed: Vec<(Uid, Vec<String>)> = index
        .messages
        .iter()
        .map(|m| (m.uid, m.flags.clone()))
        .collect();
    assert_eq!(
        listed,
        vec![(Uid(1), strings(&["\\Seen"])), (Uid(3), strings(&[]))]
    );
}

#[tokio::test]
async fn queue_ids_are_never_given_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    quick_account(&store, "alice@localhost").await;
    let mut seen = Vec::new();
    for i in 0..3 {
        let id = store
            .enqueue(message(
                &raw_message(&format!("m{i}")),
                &["alice@localhost"],
            ))
            .await
            .unwrap();
        // Delivered and gone before the next one comes.
        deliver_all(&store).await;
        assert!(store.queue().await.unwrap().is_empty());
        seen.push(id.0);
    }
    assert_eq!(seen, [1, 2, 3]);
    drop(store);
    let store = open(&dir);
    let next = store
        .enqueue(message(&raw_message("after reopen"), &["alice@localhost"]))
        .await
        .unwrap();
    assert_eq!(next.0, 4);
}

#[tokio::test]
async fn arrival_page_reads_one_page_with_the_scopes_counts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_one_reader(&dir);
    let mut arrivals = Vec::new();
    for i in 0..5 {
        arrivals.push(capture_to(&store, &format!("m{i}"), "a@x.example").await);
    }
    store
        .set_arrival_flags(
            ArrivalScope::All,
            &[arrivals[4]],
            FlagChange::Add,
            &["\\Seen".into()],
        )
        .await
        .unwrap();
    let subjects = |page: &ArrivalList| -> Vec<String> {
        page.messages
            .iter()
            .map(|m| m.summary.subject.clone().unwrap())
            .collect()
    };
    let page = store
        .arrival_page(ArrivalScope::All, None, 1, 2)
        .await
        .unwrap();
    assert_eq!(subjects(&page), ["m3", "m2"]);
    assert_eq!((page.total, page.unseen), (5, 4));
    // Below a cursor; past the end; nothing skipped.
    let page = store
        .arrival_page(ArrivalScope::All, Some(arrivals[2]), 1, 5)
        .await
        .unwrap();
    assert_eq!(subjects(&page), ["m0"]);
    let page = store
        .arrival_page(ArrivalScope::All, None, 9, 5)
        .await
        .unwrap();
    assert!(page.messages.is_empty());
    assert_eq!(page.total, 5);
    let page = store
        .arrival_page(ArrivalScope::Domain("y.example".into()), None, 0, 5)
        .await
        .unwrap();
    assert_eq!((page.messages.len(), page.total), (0, 0));
}

#[test]
fn temporary_errors_are_the_ones_worth_retrying() {
    let temporary = [
        StoreError::Full("disk".into()),
        StoreError::Closed,
        StoreError::Database("database is locked".into()),
        StoreError::Io(std::io::Error::other("EIO")),
    ];
    for e in &temporary {
        assert!(e.is_temporary(), "{e} should be temporary");
    }
    let permanent = [
        StoreError::NotFound("account a@example.com".into()),
        StoreError::MailboxGone(MailboxRef {
            id: MailboxId(1),
            uid_validity: 7,
        }),
        StoreError::AlreadyExists("mailbox Foo".into()),
        StoreError::Invalid("address".into()),
        StoreError::SchemaTooNew {
            found: 99,
            supported: 1,
        },
    ];
    for e in &permanent {
        assert!(!e.is_temporary(), "{e} should be permanent");
    }
}

/// Queues of one: every caller beyond the first waits for room, and all of
/// them are served, writes, reads and password checks alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_full_queues_wait_and_are_all_served() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        dir.path(),
        StoreOptions {
            readers: 1,
            writer_queue: 1,
            reader_queue: 1,
            password_queue: 1,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    quick_account(&store, "queue@example.com").await;

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let store = store.clone();
        tasks.spawn(async move {
            store.add_domain(&format!("d{i}.example.net")).await?;
            store.is_local_domain(&format!("d{i}.example.net")).await
        });
    }
    for _ in 0..4 {
        let store = store.clone();
        tasks.spawn(async move {
            let who = store.authenticate("queue@example.com", "secret").await?;
            Ok(who.is_some())
        });
    }
    let mut answered = 0;
    while let Some(result) = tasks.join_next().await {
        assert!(result.unwrap().unwrap());
        answered += 1;
    }
    assert_eq!(answered, 44);
    assert_eq!(store.domains().await.unwrap().len(), 41);
}

#[tokio::test]
async fn received_mail_for_local_accounts_is_delivered_at_once_or_queued_if_one_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    let bob = quick_account(&store, "bob@localhost").await;
    let first = store
        .enqueue(message(&raw_message("queued first"), &["alice@localhost"]))
        .await
        .unwrap();
    deliver_all(&store).await;

    // Two addresses of alice and one of bob: one copy each, with the
    // Return-Path on top, and no queue entry.
    let recipients = ["alice@localhost", "alice+tag@localhost", "bob@localhost"];
    let received = store
        .deliver_received(
            message(&raw_message("at once"), &recipients),
            DsnRequest::default(),
            envelope_for(&recipients),
            vec![alice.id, alice.id, bob.id],
            b"Return-Path: <sender@example.org>\r\n".to_vec(),
        )
        .await
        .unwrap();
    assert!(received.delivered);
    assert_eq!(received.queue.0, first.0 + 1, "queue ids are one sequence");
    assert!(store.queue().await.unwrap().is_empty());
    for (account, count) in [(alice.id, 2), (bob.id, 1)] {
        let inbox = store
            .arrivals_newest(ArrivalScope::Account(account), None, 10)
            .await
            .unwrap();
        assert_eq!(inbox.len(), count);
        let envelope = store
            .envelope(inbox[0].envelope.expect("envelope linked"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(envelope.session, Some(received.session));
        let raw = store
            .message_raw(account, "INBOX", Uid(count as u32))
            .await
            .unwrap()
            .expect("the copy");
        assert!(raw.starts_with(b"Return-Path: <sender@example.org>\r\n"));
        assert!(raw.ends_with(&raw_message("at once")));
    }

    // bob is gone since RCPT: nothing is delivered, the message is queued
    // as received (no Return-Path) for the queue manager.
    store.delete_account("bob@localhost").await.unwrap();
    let received = store
        .deliver_received(
            message(&raw_message("bob went away"), &recipients),
            DsnRequest::default(),
            envelope_for(&recipients),
            vec![alice.id, alice.id, bob.id],
            b"Return-Path: <sender@example.org>\r\n".to_vec(),
        )
        .await
        .unwrap();
    assert!(!received.delivered);
    let queued = store.queue().await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].id, received.queue);
    assert_eq!(queued[0].recipients.len(), 3);
    assert_eq!(
        *store.queued_message_raw(received.queue).await.unwrap(),
        raw_message("bob went away")
    );
    let inbox = store
        .arrivals_newest(ArrivalScope::Account(alice.id), None, 10)
        .await
        .unwrap();
    assert_eq!(inbox.len(), 2, "nothing delivered before the queue runs");

    // One account per recipient, or nothing.
    assert!(matches!(
        store
            .deliver_received(
                message(&raw_message("short"), &recipients),
                DsnRequest::default(),
                envelope_for(&recipients),
                vec![alice.id],
                Vec::new(),
            )
            .await,
        Err(StoreError::Invalid(_))
    ));
}

/// The writer leaves checkpoints to their own thread: a commit that fills
/// the WAL past its limit (`checkpoint_bytes`) gets its pages copied into
/// the database file without a further write.
#[tokio::test]
async fn a_full_wal_is_checkpointed_without_the_writer() {
    if crate::tests::sqlite_only("SQLite's WAL") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        dir.path(),
        StoreOptions {
            checkpoint_bytes: 4 << 20,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    quick_account(&store, "alice@localhost").await;
    let db = dir.path().join(crate::sqlite::schema::DB_FILE);
    let before = std::fs::metadata(&db).unwrap().len();
    // About 1,500 pages of 4 KiB: past the 4 MiB limit in one commit.
    let mut raw = raw_message("big");
    raw.resize(raw.len() + (6 << 20), b'x');
    store
        .enqueue(message(&raw, &["alice@localhost"]))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let size = std::fs::metadata(&db).unwrap().len();
        if size >= before + (6 << 20) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the database file stayed at {size} bytes (from {before}): no checkpoint"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Recipient lookups run on the caller's thread: each sees every commit
/// before it, this store's and another's on the same data dir, and a
/// thread lets go of the connection of a store that is dropped.
#[tokio::test]
async fn lookups_on_the_callers_thread_see_every_commit() {
    if crate::tests::sqlite_only("SQLite's inline reads") {
        return;
    }
    use crate::sqlite::inline::connections_on_this_thread;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let other = open(&dir);
    let before = connections_on_this_thread();
    assert_eq!(
        store.resolve_recipient("alice@localhost").await.unwrap(),
        None
    );
    assert_eq!(connections_on_this_thread(), before + 1);
    let alice = quick_account(&store, "alice@localhost").await;
    assert_eq!(
        store.resolve_recipient("Alice@Localhost").await.unwrap(),
        Some(alice.clone())
    );
    // Another store (as another process would) adds an alias and a domain.
    other
        .add_alias("al@example.org", "alice@localhost")
        .await
        .unwrap();
    assert_eq!(
        store.resolve_recipient("al@example.org").await.unwrap(),
        Some(alice)
    );
    assert!(store.is_local_domain("example.org").await.unwrap());
    other.delete_account("alice@localhost").await.unwrap();
    assert_eq!(
        store.resolve_recipient("alice@localhost").await.unwrap(),
        None
    );
    drop(store);
    assert_eq!(connections_on_this_thread(), before);
}

fn new_message(subject: &str, flags: &[&str]) -> NewMessage {
    NewMessage {
        raw: raw_message(subject),
        flags: strings(flags),
        internal_date: 1_700_000_000,
    }
}

#[tokio::test]
async fn append_messages_adds_all_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    let (validity, uids) = store
        .append_messages(
            alice.id,
            "INBOX",
            vec![new_message("one", &["\\Seen"]), new_message("two", &[])],
        )
        .await
        .unwrap();
    assert_eq!(uids, vec![Uid(1), Uid(2)]);
    let index = store.mailbox_index(alice.id, "INBOX").await.unwrap();
    assert_eq!(index.uid_validity, validity);
    assert_eq!(index.messages.len(), 2);
    assert_eq!(index.messages[0].flags, strings(&["\\Seen"]));
    // A bad second message: the first is not appended either.
    let refused = store
        .append_messages(
            alice.id,
            "INBOX",
            vec![
                new_message("three", &[]),
                new_message("four", &["\\Recent"]),
            ],
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Invalid(_))),
        "{refused:?}"
    );
    let refused = store
        .append_messages(alice.id, "Nope", vec![new_message("five", &[])])
        .await;
    assert!(
        matches!(refused, Err(StoreError::NotFound(_))),
        "{refused:?}"
    );
    let index = store.mailbox_index(alice.id, "INBOX").await.unwrap();
    assert_eq!(index.messages.len(), 2);
    assert_eq!(index.uid_next, Uid(3));
}

#[tokio::test]
async fn replace_message_appends_and_expunges_together() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    let (_, old) = store
        .append(alice.id, "Drafts", raw_message("draft 1"), &[], 0)
        .await
        .unwrap();
    let (_, new) = store
        .replace_message(
            alice.id,
            "Drafts",
            new_message("draft 2", &["\\Draft"]),
            "Drafts",
            old,
        )
        .await
        .unwrap();
    assert!(new > old);
    let info = store.messages(alice.id, "Drafts").await.unwrap();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].uid, new);
    assert_eq!(info[0].summary.subject.as_deref(), Some("draft 2"));
    // The old one is gone: nothing is appended.
    let again = store
        .replace_message(
            alice.id,
            "INBOX",
            new_message("draft 3", &[]),
            "Drafts",
            old,
        )
        .await;
    assert!(matches!(again, Err(StoreError::NotFound(_))), "{again:?}");
    assert!(store.messages(alice.id, "INBOX").await.unwrap().is_empty());
}

/// Hierarchy by name works for names that are not ASCII: SQLite's
/// `substr` counts characters, not bytes.
#[tokio::test]
async fn children_of_non_ascii_names_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    store.create_mailbox(alice.id, "日本語/子").await.unwrap();
    assert!(matches!(
        store.delete_mailbox(alice.id, "日本語").await,
        Err(StoreError::Invalid(_))
    ));
    store
        .create_mailbox(alice.id, "Grün/Blätter")
        .await
        .unwrap();
    store
        .set_subscribed(alice.id, "Grün/Blätter", true)
        .await
        .unwrap();
    store.rename_mailbox(alice.id, "Grün", "Rot").await.unwrap();
    let names: Vec<String> = store
        .mailboxes(alice.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .filter(|n| n.starts_with("Gr") || n.starts_with("Rot"))
        .collect();
    assert_eq!(names, ["Rot", "Rot/Blätter"]);
    let subs = store.subscriptions(alice.id).await.unwrap();
    assert!(subs.contains(&"Rot/Blätter".to_string()), "{subs:?}");
    store.delete_mailbox(alice.id, "日本語/子").await.unwrap();
    store.delete_mailbox(alice.id, "日本語").await.unwrap();
}

#[tokio::test]
async fn deleted_in_mailbox_counts_the_deleted_flag() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    assert_eq!(
        store.deleted_in_mailbox(alice.id, "INBOX").await.unwrap().0,
        0
    );
    let deleted = ["\\Deleted".to_string()];
    store
        .append(alice.id, "INBOX", raw_message("a"), &deleted, 0)
        .await
        .unwrap();
    store
        .append(alice.id, "INBOX", raw_message("b"), &[], 0)
        .await
        .unwrap();
    let seen_deleted = ["\\Seen".to_string(), "\\Deleted".to_string()];
    let (_, uid) = store
        .append(alice.id, "INBOX", raw_message("c"), &seen_deleted, 0)
        .await
        .unwrap();
    assert_eq!(
        store.deleted_in_mailbox(alice.id, "INBOX").await.unwrap().0,
        2
    );
    store.expunge(alice.id, "INBOX", &[uid]).await.unwrap();
    assert_eq!(
        store.deleted_in_mailbox(alice.id, "INBOX").await.unwrap().0,
        1
    );
    assert!(matches!(
        store.deleted_in_mailbox(alice.id, "Nope").await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn mailbox_size_sums_the_messages() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    assert_eq!(store.mailbox_size(alice.id, "INBOX").await.unwrap(), 0);
    let (a, b) = (raw_message("a"), raw_message("a longer subject"));
    let total = (a.len() + b.len()) as u64;
    store.append(alice.id, "INBOX", a, &[], 0).await.unwrap();
    let (_, uid) = store.append(alice.id, "INBOX", b, &[], 0).await.unwrap();
    assert_eq!(store.mailbox_size(alice.id, "INBOX").await.unwrap(), total);
    store.expunge(alice.id, "INBOX", &[uid]).await.unwrap();
    assert!(store.mailbox_size(alice.id, "INBOX").await.unwrap() < total);
    assert!(matches!(
        store.mailbox_size(alice.id, "Nope").await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn content_hashes_name_the_same_bytes_alike() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    let (same, other) = (raw_message("same"), raw_message("other"));
    let (_, a) = store
        .append(alice.id, "INBOX", same.clone(), &[], 0)
        .await
        .unwrap();
    let (_, b) = store
        .append(alice.id, "INBOX", other, &[], 0)
        .await
        .unwrap();
    let (_, c) = store.append(alice.id, "INBOX", same, &[], 0).await.unwrap();
    let (_, copy) = store
        .copy_messages(alice.id, "INBOX", &[a], "Drafts")
        .await
        .unwrap();
    let hashes = store
        .content_hashes(alice.id, "INBOX", &[c, a, b, Uid(99)])
        .await
        .unwrap();
    assert_eq!(
        hashes.iter().map(|h| h.0).collect::<Vec<_>>(),
        vec![a, b, c]
    );
    assert_eq!(hashes[0].1, hashes[2].1);
    assert_ne!(hashes[0].1, hashes[1].1);
    let copied = store
        .content_hashes(alice.id, "Drafts", &[copy[0].1])
        .await
        .unwrap();
    assert_eq!(copied[0].1, hashes[0].1);
    assert_eq!(
        store
            .uids_with_content(alice.id, "INBOX", &hashes[0].1)
            .await
            .unwrap(),
        vec![a, c]
    );
    assert!(store
        .uids_with_content(alice.id, "INBOX", "nope")
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn saved_dates_are_when_a_message_entered_its_mailbox() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let before = now();
    // An internal date long ago: the save date is now all the same.
    let (_, uid) = store
        .append(alice.id, "INBOX", raw_message("old"), &[], 1_000_000_000)
        .await
        .unwrap();
    let (_, moved) = store
        .move_messages(alice.id, "INBOX", &[uid], "Archive")
        .await
        .unwrap();
    let after = now();
    let saved = store
        .saved_dates(alice.id, "Archive", &[moved[0].1, Uid(9)])
        .await
        .unwrap();
    assert_eq!(saved.len(), 1);
    assert!(before <= saved[0].1 && saved[0].1 <= after, "{saved:?}");
    let found = store
        .uids_saved_between(alice.id, "Archive", before, after + 1)
        .await
        .unwrap();
    assert_eq!(found, vec![moved[0].1]);
    assert!(store
        .uids_saved_between(alice.id, "Archive", 0, before)
        .await
        .unwrap()
        .is_empty());
}

/// A message of about `kib` KiB.
fn sized_message(subject: &str, kib: usize) -> Vec<u8> {
    let mut raw = format!("Subject: {subject}\r\n\r\n").into_bytes();
    while raw.len() < kib * 1024 {
        raw.extend_from_slice(
            b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n",
        );
    }
    raw.truncate(kib * 1024);
    raw
}

fn sized_new_message(raw: Vec<u8>) -> NewMessage {
    NewMessage {
        raw,
        flags: Vec::new(),
        internal_date: 1_700_000_000,
    }
}

#[tokio::test]
async fn quota_usage_follows_appends_copies_moves_and_expunges() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    let bob = quick_account(&store, "bob@localhost").await;
    let quota = store.quota(alice.id).await.unwrap();
    assert_eq!(
        quota,
        Quota {
            storage_limit_kib: None,
            message_limit: None,
            used_bytes: 0,
            used_messages: 0
        }
    );
    assert!(!quota.is_limited());

    for i in 0..3 {
        store
            .append(
                alice.id,
                "INBOX",
                sized_message(&format!("m{i}"), 2),
                &[],
                0,
            )
            .await
            .unwrap();
    }
    store
        .append(bob.id, "INBOX", sized_message("bob's", 5), &[], 0)
        .await
        .unwrap();
    let quota = store.quota(alice.id).await.unwrap();
    assert_eq!((quota.used_bytes, quota.used_messages), (6 * 1024, 3));
    assert_eq!(quota.used_kib(), 6);
    assert_eq!(store.quota(bob.id).await.unwrap().used_messages, 1);

    // A copy counts, a move does not, an expunge gives back.
    store
        .copy_messages(alice.id, "INBOX", &[Uid(1)], "Archive")
        .await
        .unwrap();
    assert_eq!(store.quota(alice.id).await.unwrap().used_messages, 4);
    store
        .move_messages(alice.id, "INBOX", &[Uid(2)], "Trash")
        .await
        .unwrap();
    let quota = store.quota(alice.id).await.unwrap();
    assert_eq!((quota.used_bytes, quota.used_messages), (8 * 1024, 4));
    store
        .expunge(alice.id, "INBOX", &[Uid(1), Uid(3)])
        .await
        .unwrap();
    let quota = store.quota(alice.id).await.unwrap();
    assert_eq!((quota.used_bytes, quota.used_messages), (4 * 1024, 2));

    // Deleting a mailbox gives its messages back; bob is untouched.
    store.delete_mailbox(alice.id, "Trash").await.unwrap();
    let quota = store.quota(alice.id).await.unwrap();
    assert_eq!((quota.used_bytes, quota.used_messages), (2 * 1024, 1));
    assert_eq!(store.quota(bob.id).await.unwrap().used_bytes, 5 * 1024);

    // Queue delivery counts too.
    store
        .enqueue(message(&raw_message("queued"), &["alice@localhost"]))
        .await
        .unwrap();
    deliver_all(&store).await;
    assert_eq!(store.quota(alice.id).await.unwrap().used_messages, 2);

    // The counters are what the mailboxes hold, after renaming INBOX
    // (a move) and REPLACE too.
    store
        .rename_mailbox(alice.id, "INBOX", "Old inbox")
        .await
        .unwrap();
    store
        .replace_message(
            alice.id,
            "Archive",
            sized_new_message(sized_message("new", 3)),
            "Old inbox",
            Uid(1),
        )
        .await
        .unwrap();
    let (mut bytes, mut count) = (0, 0);
    for m in store.mailboxes(alice.id).await.unwrap() {
        bytes += store.mailbox_size(alice.id, m.name.as_str()).await.unwrap();
        count += m.messages as u64;
    }
    let quota = store.quota(alice.id).await.unwrap();
    assert_eq!((quota.used_bytes, quota.used_messages), (bytes, count));
    assert_eq!(count, 2);
}

#[tokio::test]
async fn quota_limits_are_set_kept_and_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    quick_account(&store, "alice@localhost").await;
    let q = store
        .set_quota("Alice@Localhost", QuotaLimit::Set(500), QuotaLimit::Keep)
        .await
        .unwrap();
    assert_eq!((q.storage_limit_kib, q.message_limit), (Some(500), None));
    let q = store
        .set_quota("alice@localhost", QuotaLimit::Keep, QuotaLimit::Set(10))
        .await
        .unwrap();
    assert_eq!(
        (q.storage_limit_kib, q.message_limit),
        (Some(500), Some(10))
    );
    assert!(q.is_limited());
    let q = store
        .set_quota("alice@localhost", QuotaLimit::Unlimited, QuotaLimit::Keep)
        .await
        .unwrap();
    assert_eq!((q.storage_limit_kib, q.message_limit), (None, Some(10)));
    assert!(matches!(
        store
            .set_quota("nobody@localhost", QuotaLimit::Set(1), QuotaLimit::Keep)
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .set_quota(
                "alice@localhost",
                QuotaLimit::Set(u64::MAX),
                QuotaLimit::Keep
            )
            .await,
        Err(StoreError::Invalid(_))
    ));
}

#[tokio::test]
async fn quota_refuses_appends_and_copies_but_not_moves() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    store
        .set_quota("alice@localhost", QuotaLimit::Set(5), QuotaLimit::Keep)
        .await
        .unwrap();
    store
        .append(alice.id, "INBOX", sized_message("a", 2), &[], 0)
        .await
        .unwrap();
    store
        .append(alice.id, "INBOX", sized_message("b", 3), &[], 0)
        .await
        .unwrap();
    // Exactly at the limit: nothing more fits.
    let quota = store.quota(alice.id).await.unwrap();
    assert!(quota.is_full());
    let over = store
        .append(
            alice.id,
            "INBOX",
            b"Subject: x\r\n\r\nx\r\n".to_vec(),
            &[],
            0,
        )
        .await;
    assert!(matches!(over, Err(StoreError::OverQuota(_))), "{over:?}");
    assert!(over.unwrap_err().is_over_quota());
    // A missing mailbox is still reported as such.
    assert!(matches!(
        store
            .append(alice.id, "Nope", b"x\r\n".to_vec(), &[], 0)
            .await,
        Err(StoreError::NotFound(_))
    ));
    let over = store
        .copy_messages(alice.id, "INBOX", &[Uid(1)], "Archive")
        .await;
    assert!(matches!(over, Err(StoreError::OverQuota(_))), "{over:?}");
    // A move within the account changes nothing.
    store
        .move_messages(alice.id, "INBOX", &[Uid(1), Uid(2)], "Archive")
        .await
        .unwrap();
    let quota = store.quota(alice.id).await.unwrap();
    assert_eq!((quota.used_bytes, quota.used_messages), (5 * 1024, 2));

    // MULTIAPPEND: all or none.
    store
        .set_quota("alice@localhost", QuotaLimit::Set(8), QuotaLimit::Keep)
        .await
        .unwrap();
    let over = store
        .append_messages(
            alice.id,
            "INBOX",
            vec![
                sized_new_message(sized_message("c", 2)),
                sized_new_message(sized_message("d", 2)),
            ],
        )
        .await;
    assert!(matches!(over, Err(StoreError::OverQuota(_))), "{over:?}");
    assert_eq!(store.quota(alice.id).await.unwrap().used_messages, 2);

    // The message count limit too; REPLACE frees the old one first.
    store
        .set_quota("alice@localhost", QuotaLimit::Unlimited, QuotaLimit::Set(2))
        .await
        .unwrap();
    let over = store
        .append(
            alice.id,
            "INBOX",
            b"Subject: x\r\n\r\nx\r\n".to_vec(),
            &[],
            0,
        )
        .await;
    assert!(matches!(over, Err(StoreError::OverQuota(_))), "{over:?}");
    store
        .replace_message(
            alice.id,
            "Archive",
            sized_new_message(sized_message("e", 1)),
            "Archive",
            Uid(1),
        )
        .await
        .unwrap();
    let quota = store.quota(alice.id).await.unwrap();
    assert_eq!((quota.used_bytes, quota.used_messages), (4 * 1024, 2));
}

#[tokio::test]
async fn quota_holds_against_concurrent_appends() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    store
        .set_quota("alice@localhost", QuotaLimit::Set(10), QuotaLimit::Keep)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append(
                        alice.id,
                        "INBOX",
                        sized_message(&format!("m{i}"), 1),
                        &[],
                        0,
                    )
                    .await
            })
        })
        .collect();
    let mut stored = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => stored += 1,
            Err(e) => assert!(e.is_over_quota(), "{e}"),
        }
    }
    assert_eq!(stored, 10);
    let quota = store.quota(alice.id).await.unwrap();
    assert_eq!((quota.used_bytes, quota.used_messages), (10 * 1024, 10));
}

#[tokio::test]
async fn quota_in_local_delivery_leaves_the_full_recipient_and_direct_delivery_queues() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = quick_account(&store, "alice@localhost").await;
    let bob = quick_account(&store, "bob@localhost").await;
    store
        .set_quota("bob@localhost", QuotaLimit::Keep, QuotaLimit::Set(1))
        .await
        .unwrap();
    store
        .append(
            bob.id,
            "INBOX",
            b"Subject: first\r\n\r\nx\r\n".to_vec(),
            &[],
            0,
        )
        .await
        .unwrap();

    // Direct delivery: bob is full, so the message is queued whole.
    let recipients = ["alice@localhost", "bob@localhost"];
    let received = store
        .deliver_received(
            message(&raw_message("for both"), &recipients),
            DsnRequest::default(),
            envelope_for(&recipients),
            vec![alice.id, bob.id],
            Vec::new(),
        )
        .await
        .unwrap();
    assert!(!received.delivered);
    assert_eq!(store.quota(alice.id).await.unwrap().used_messages, 0);

    // The queue delivers alice's copy and leaves bob's recipient open.
    let claimed = store.claim_due(now(), LEASE, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let deliveries: Vec<LocalDelivery> = claimed[0]
        .recipients
        .iter()
        .map(|r| LocalDelivery {
            recipient: r.id,
            account: if r.address.starts_with("bob") {
                bob.id
            } else {
                alice.id
            },
            mailbox: "INBOX".into(),
        })
        .collect();
    let bobs = claimed[0]
        .recipients
        .iter()
        .find(|r| r.address.starts_with("bob"))
        .unwrap()
        .id;
    let over = store
        .deliver_local(claimed[0].id, deliveries)
        .await
        .unwrap();
    assert_eq!(over, vec![bobs]);
    assert_eq!(store.quota(alice.id).await.unwrap().used_messages, 1);
    assert_eq!(store.quota(bob.id).await.unwrap().used_messages, 1);
    let queued = store.queue().await.unwrap();
    assert_eq!(queued.len(), 1, "bob's recipient is still to settle");
    let states: Vec<_> = queued[0]
        .recipients
        .iter()
        .map(|r| (r.address.as_str(), r.state))
        .collect();
    assert!(states.contains(&("alice@localhost", RecipientState::Delivered)));
    assert!(states.contains(&("bob@localhost", RecipientState::Pending)));
}

#[tokio::test]
async fn quota_usage_is_counted_for_mail_stored_before_the_migration() {
    if crate::tests::sqlite_only("an SQLite migration") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let alice = {
        let store = open(&dir);
        let alice = quick_account(&store, "alice@localhost").await;
        for i in 0..2 {
            store
                .append(
                    alice.id,
                    "INBOX",
                    sized_message(&format!("m{i}"), 3),
                    &[],
                    0,
                )
                .await
                .unwrap();
        }
        alice
    };
    // Undo the counters, as a database from before quotas had none,
    // and run the quota step again.
    let step = schema::MIGRATIONS
        .iter()
        .position(|m| m.contains("quota_storage_kib"))
        .unwrap();
    {
        let conn = rusqlite::Connection::open(dir.path().join(schema::DB_FILE)).unwrap();
        conn.execute_batch(
            "ALTER TABLE accounts DROP COLUMN quota_storage_kib;
             ALTER TABLE accounts DROP COLUMN quota_messages;
             ALTER TABLE accounts DROP COLUMN used_bytes;
             ALTER TABLE accounts DROP COLUMN used_messages;",
        )
        .unwrap();
        conn.pragma_update(None, "user_version", step as i64)
            .unwrap();
    }
    let store = open(&dir);
    let quota = store.quota(alice.id).await.unwrap();
    assert_eq!((quota.used_bytes, quota.used_messages), (6 * 1024, 2));
}

/// PostgreSQL's schema versions: a fresh database is migrated once (two
/// stores opening it together agree), and a newer one is refused.
#[tokio::test]
async fn postgres_schema_too_new_is_refused() {
    if test_postgres().is_none() {
        eprintln!("not run on SQLite: this test is about PostgreSQL's schema_version");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let again = open(&dir);
    quick_account(&store, "alice@localhost").await;
    assert!(again.account("alice@localhost").await.unwrap().is_some());
    store
        .inner
        .write(false, |conn| {
            conn.execute("UPDATE schema_version SET version = version + 1", [])
                .map_err(|e| StoreError::Database(e.to_string()))
        })
        .await
        .unwrap();
    drop((store, again));
    match Store::open_with(dir.path(), StoreOptions::default()) {
        Err(StoreError::SchemaTooNew { found, supported }) => {
            assert_eq!(found, supported + 1);
        }
        Err(e) => panic!("expected SchemaTooNew, got {e}"),
        Ok(_) => panic!("a newer schema was opened"),
    }
}
