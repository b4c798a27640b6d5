//! IMAP, black-box, with the `[memory]` settings at their most eager: one
//! heap arena for every thread and the free pages given back after every
//! session that ends. Sessions ending (each one a trim) while another
//! reads big messages leave that session's answers whole.

use postern_tests::*;

const ALICE: &str = "alice@localhost";

async fn login(addr: std::net::SocketAddr) -> Pop3Client {
    let (mut c, greeting) = Pop3Client::connect(addr).await;
    assert!(greeting.starts_with("* OK"), "{greeting}");
    let r = c.imap("L", &format!("LOGIN {ALICE} \"{PASSWORD}\"")).await;
    assert!(r.last().is_some_and(|l| l.starts_with("L OK")), "{r:?}");
    c
}

/// The bytes of every `BODY[TEXT]` literal the FETCH returned, in order.
async fn fetch_texts(c: &mut Pop3Client, tag: &str, count: usize) -> Vec<Vec<u8>> {
    c.send(format!("{tag} FETCH 1:* (BODY.PEEK[TEXT])\r\n").as_bytes())
        .await;
    let mut texts = Vec::new();
    loop {
        let line = c.line().await;
        if line.starts_with(&format!("{tag} ")) {
            assert!(line.starts_with(&format!("{tag} OK")), "{line}");
            break;
        }
        let open = line.rfind('{').expect("a literal");
        let n: usize = line[open + 1..line.len() - 1].parse().expect("size");
        texts.push(c.read_bytes(n).await);
        let rest = c.line().await;
        assert_eq!(rest, ")", "{line}");
    }
    assert_eq!(texts.len(), count);
    texts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_ending_in_turn_with_a_trim_each_leave_a_busy_session_whole() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_alice(&data);
    let server = tokio::task::block_in_place(|| {
        Binary::start_with(&data, "[memory]\narena_max = 1\ntrim_interval_ms = 1\n")
    });

    let mut busy = login(server.imap).await;
    let mut bodies = Vec::new();
    for i in 0..12u8 {
        // 40-80 KiB each: buffers that grow and are freed again.
        let line = format!("{:0>76}\r\n", i);
        let body = line.repeat(500 + 50 * usize::from(i));
        let message = format!("Subject: m{i}\r\n\r\n{body}");
        let r = busy
            .imap(
                "A",
                &format!("APPEND INBOX {{{}+}}\r\n{message}", message.len()),
            )
            .await;
        assert!(r.last().is_some_and(|l| l.starts_with("A OK")), "{r:?}");
        bodies.push(body.into_bytes());
    }
    let r = busy.imap("S", "SELECT INBOX").await;
    assert!(r.last().is_some_and(|l| l.starts_with("S OK")), "{r:?}");

    for round in 0..6 {
        // Another session reads everything and leaves: a trim each time.
        let mut other = login(server.imap).await;
        let r = other.imap("S", "EXAMINE INBOX").await;
        assert!(r.last().is_some_and(|l| l.starts_with("S OK")), "{r:?}");
        assert_eq!(fetch_texts(&mut other, "F", bodies.len()).await, bodies);
        let r = other.imap("O", "LOGOUT").await;
        assert!(r.last().is_some_and(|l| l.starts_with("O OK")), "{r:?}");
        drop(other);
        // The busy session goes on meanwhile.
        let tag = format!("B{round}");
        assert_eq!(fetch_texts(&mut busy, &tag, bodies.len()).await, bodies);
    }
    let r = busy.imap("N", "NOOP").await;
    assert!(r.last().is_some_and(|l| l.starts_with("N OK")), "{r:?}");
}
