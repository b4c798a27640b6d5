//! The queue survives a kill -9 of the real `postern up` process with mail
//! deferred for a remote hop: after the restart every message reaches the
//! hop exactly once, and the queue empties.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use postern_tests::fake_smtp::{Behaviour, FakeSmtp};
use postern_tests::{Binary, SmtpClient};

#[tokio::test(flavor = "multi_thread")]
async fn deferred_mail_is_delivered_once_after_kill_9() {
    let fake = FakeSmtp::start(
        Behaviour::default().reject_recipient("bob@example.org", "451 4.3.0 not now"),
    )
    .await;
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    // Binary's own config retries after 1 to 2 s.
    let relay = format!(
        r#"[relay]
trusted_networks = ["127.0.0.1/32"]
connect_timeout_secs = 2
command_timeout_secs = 2
data_timeout_secs = 3
[relay.transport."example.org"]
host = "{}"
tls = "none"
"#,
        fake.addr()
    );
    let mut binary = tokio::task::block_in_place(|| Binary::start_with(&data_dir, &relay));

    let (mut c, _) = SmtpClient::connect(binary.smtp).await;
    assert_eq!(c.cmd("EHLO app.test").await.code, 250);
    let mut ids = BTreeSet::new();
    for i in 0..5 {
        let id = format!("restart-{i}@app.test");
        let msg = format!("Subject: restart {i}\r\nMessage-ID: <{id}>\r\n\r\nbody {i}\r\n");
        let r = c
            .send_mail("app@app.test", &["bob@example.org"], msg.as_bytes())
            .await;
        assert_eq!(r.code, 250, "{r:?}");
        ids.insert(id);
    }
    // Every recipient has been tried and deferred at least once.
    let store = store::Store::open(&data_dir).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let q = store.queue().await.unwrap();
        if q.len() == 5 && q.iter().all(|m| m.recipients[0].attempts >= 1) {
            break;
        }
        assert!(Instant::now() < deadline, "not all deferred: {q:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::task::block_in_place(|| binary.signal_and_wait("KILL", Duration::from_secs(10)));
    drop(binary);

    fake.set_behaviour(|b| *b = Behaviour::default());
    let _binary = tokio::task::block_in_place(|| Binary::start(&data_dir));
    // A delivery cut by the kill holds its lease (about 20 s with these
    // timeouts) before it is tried again.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !store.queue().await.unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "queue did not empty after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivered: Vec<String> = fake
        .transactions()
        .into_iter()
        .filter(|t| t.reply.starts_with("250"))
        .map(|t| {
            let text = String::from_utf8_lossy(&t.message).into_owned();
            let start = text.find("Message-ID: <").expect("a Message-ID") + 13;
            let end = start + text[start..].find('>').unwrap();
            text[start..end].to_string()
        })
        .collect();
    assert_eq!(delivered.len(), 5, "each message once: {delivered:?}");
    assert_eq!(delivered.into_iter().collect::<BTreeSet<_>>(), ids);
}

/// A delivery cut by `kill -9` is not left to its 30 s lease: the
/// restarted process sees that the claim's owner is gone (its lock in the
/// data dir is free) and delivers at once.
#[tokio::test(flavor = "multi_thread")]
async fn claims_of_a_killed_process_are_taken_back_at_restart() {
    // The first session hangs after MAIL: the delivery is in progress
    // (claimed) when the process is killed.
    let fake = FakeSmtp::start(Behaviour {
        hang_at: Some(postern_tests::fake_smtp::Step::Mail),
        ..Behaviour::default()
    })
    .await;
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    let relay = format!(
        r#"[relay]
trusted_networks = ["127.0.0.1/32"]
connect_timeout_secs = 60
command_timeout_secs = 60
data_timeout_secs = 60
[relay.transport."example.org"]
host = "{}"
tls = "none"
"#,
        fake.addr()
    );
    let mut binary = tokio::task::block_in_place(|| Binary::start_with(&data_dir, &relay));
    let (mut c, _) = SmtpClient::connect(binary.smtp).await;
    assert_eq!(c.cmd("EHLO app.test").await.code, 250);
    let msg = b"Subject: claimed\r\nMessage-ID: <claimed@app.test>\r\n\r\nbody\r\n";
    let r = c.send_mail("app@app.test", &["bob@example.org"], msg).await;
    assert_eq!(r.code, 250, "{r:?}");
    // Wait until the relay has sent MAIL (and hangs there).
    let deadline = Instant::now() + Duration::from_secs(15);
    while !fake.commands().iter().any(|c| c.starts_with("MAIL")) {
        assert!(Instant::now() < deadline, "no delivery started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::task::block_in_place(|| binary.signal_and_wait("KILL", Duration::from_secs(10)));
    drop(binary);

    fake.set_behaviour(|b| *b = Behaviour::default());
    let restarted = Instant::now();
    let _binary = tokio::task::block_in_place(|| Binary::start(&data_dir));
    // Well within the 30 s lease the claim would otherwise hold.
    let deadline = restarted + Duration::from_secs(12);
    while !fake
        .transactions()
        .iter()
        .any(|t| t.reply.starts_with("250"))
    {
        assert!(
            Instant::now() < deadline,
            "not delivered within 12 s of the restart: the dead process's claim was waited out"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivered = fake
        .transactions()
        .into_iter()
        .filter(|t| t.reply.starts_with("250"))
        .count();
    assert_eq!(delivered, 1);
}
