//! IMAP COMPRESS=DEFLATE (RFC 4978), black-box: a client that compresses
//! its side with zlib's raw DEFLATE (flate2) and inflates the server's,
//! over plain TCP and over implicit TLS, pipelining across the switch.

use std::time::Duration;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use postern_tests::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const ALICE: &str = "alice@localhost";

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An IMAP client that reads lines in the clear until COMPRESS, and
/// compresses and inflates after it.
struct Client {
    stream: Box<dyn Io>,
    /// Bytes from the server not yet inflated (once compressed) or not yet
    /// returned as lines (before).
    raw: Vec<u8>,
    /// Inflated bytes not yet returned as lines.
    plain: Vec<u8>,
    deflate: Option<(Compress, Decompress)>,
    /// Compressed bytes the server has sent, all told.
    wire_in: usize,
}

impl Client {
    async fn connect(stream: Box<dyn Io>) -> Client {
        let mut c = Client {
            stream,
            raw: Vec::new(),
            plain: Vec::new(),
            deflate: None,
            wire_in: 0,
        };
        let greeting = c.line().await;
        assert!(greeting.starts_with("* OK"), "{greeting}");
        c
    }

    /// The bytes of `text` as they go on the wire.
    fn encode(&mut self, text: &[u8]) -> Vec<u8> {
        match self.deflate.as_mut() {
            None => text.to_vec(),
            Some((deflate, _)) => {
                let mut out = Vec::with_capacity(text.len() + 64);
                deflate
                    .compress_vec(text, &mut out, FlushCompress::Sync)
                    .unwrap();
                out
            }
        }
    }

    async fn send(&mut self, text: &[u8]) {
        let bytes = self.encode(text);
        self.stream.write_all(&bytes).await.unwrap();
    }

    /// Moves what can be inflated from `raw` to `plain`.
    fn inflate(&mut self) {
        let Some((_, inflate)) = self.deflate.as_mut() else {
            self.plain.append(&mut self.raw);
            return;
        };
        let mut input = &self.raw[..];
        while !input.is_empty() {
            self.plain.reserve(64 * 1024);
            let before = inflate.total_in();
            inflate
                .decompress_vec(input, &mut self.plain, FlushDecompress::None)
                .expect("the server's DEFLATE stream");
            let used = (inflate.total_in() - before) as usize;
            input = &input[used..];
        }
        self.raw.clear();
    }

    async fn read_more(&mut self) {
        let mut buf = vec![0; 64 * 1024];
        let n = tokio::time::timeout(Duration::from_secs(30), self.stream.read(&mut buf))
            .await
            .expect("the server answers within 30 s")
            .unwrap();
        assert!(n > 0, "the server closed the connection");
        if self.deflate.is_some() {
            self.wire_in += n;
        }
        self.raw.extend_from_slice(&buf[..n]);
        self.inflate();
    }

    /// One line (without CRLF), or `n` bytes of a literal.
    async fn take(&mut self, n: Option<usize>) -> Vec<u8> {
        loop {
            let end = match n {
                Some(n) => (self.plain.len() >= n).then_some(n),
                None => self
                    .plain
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .map(|at| at + 2),
            };
            if let Some(end) = end {
                let mut taken: Vec<u8> = self.plain.drain(..end).collect();
                if n.is_none() {
                    taken.truncate(taken.len() - 2);
                }
                return taken;
            }
            self.read_more().await;
        }
    }

    async fn line(&mut self) -> String {
        String::from_utf8(self.take(None).await).unwrap()
    }

    /// Sends `tag command` and reads up to the tagged reply; literals in
    /// the answers come back inline.
    async fn command(&mut self, tag: &str, command: &str) -> Vec<String> {
        self.send(format!("{tag} {command}\r\n").as_bytes()).await;
        self.until_tag(tag).await
    }

    async fn until_tag(&mut self, tag: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let mut line = self.line().await;
            // A literal: `{n}` at the end; its bytes follow.
            while let Some(size) = literal_size(&line) {
                let bytes = self.take(Some(size)).await;
                line.push_str(&String::from_utf8_lossy(&bytes));
                let rest = self.line().await;
                line.push_str(&rest);
            }
            let done = line.starts_with(&format!("{tag} "));
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    /// COMPRESS DEFLATE, with `pipelined` (compressed) in the same write;
    /// the tagged OK comes in the clear, everything after it compressed.
    async fn compress(&mut self, tag: &str, pipelined: &[u8]) -> String {
        let mut deflate = Compress::new(Compression::fast(), false);
        let mut bytes = format!("{tag} COMPRESS DEFLATE\r\n").into_bytes();
        if !pipelined.is_empty() {
            let mut out = Vec::with_capacity(pipelined.len() + 64);
            deflate
                .compress_vec(pipelined, &mut out, FlushCompress::Sync)
                .unwrap();
            bytes.extend_from_slice(&out);
        }
        self.stream.write_all(&bytes).await.unwrap();
        // Read the OK line in the clear; what follows it is compressed.
        let ok = loop {
            if let Some(at) = self.plain.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.plain.drain(..at + 2).collect();
                break String::from_utf8(line[..line.len() - 2].to_vec()).unwrap();
            }
            let mut buf = vec![0; 4096];
            let n = self.stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before the COMPRESS reply");
            self.plain.extend_from_slice(&buf[..n]);
        };
        assert!(ok.starts_with(&format!("{tag} OK")), "{ok}");
        self.raw = std::mem::take(&mut self.plain);
        self.wire_in = self.raw.len();
        self.deflate = Some((deflate, Decompress::new(false)));
        self.inflate();
        ok
    }
}

fn literal_size(line: &str) -> Option<usize> {
    let open = line.rfind('{')?;
    line.strip_suffix('}')?[open + 1..].parse().ok()
}

async fn setup() -> (Server, ImapServer) {
    let server = Server::start().await;
    let imap = ImapServer::start_with(&server, |_| {}).await;
    (server, imap)
}

async fn login(c: &mut Client) {
    let r = c
        .command("L", &format!("LOGIN {ALICE} \"{PASSWORD}\""))
        .await;
    assert!(r.last().unwrap().starts_with("L OK"), "{r:?}");
    assert!(r.last().unwrap().contains("COMPRESS=DEFLATE"), "{r:?}");
}

/// A message of about `size` bytes of text that compresses well, as mail
/// does.
fn big_message(size: usize) -> Vec<u8> {
    let mut body = String::new();
    let mut i = 0;
    while body.len() < size {
        body.push_str(&format!(
            "Line {i} of a long report: nothing to see here, move along.\r\n"
        ));
        i += 1;
    }
    message("big one", &body)
}

#[tokio::test(flavor = "multi_thread")]
async fn compress_deflate_over_tcp_with_pipelining_and_a_big_fetch() {
    let (server, imap) = setup().await;
    let raw = big_message(1 << 20);
    let (mut smtp, _) = SmtpClient::connect(server.smtp).await;
    smtp.cmd("EHLO client.example").await;
    let r = smtp.send_mail("bob@example.com", &[ALICE], &raw).await;
    assert_eq!(r.code, 250, "{r:?}");
    let stored = server.wait_for_inbox(ALICE, 1).await;
    let stored_raw = server.raw(ALICE, stored[0].uid).await;

    let mut c = Client::connect(Box::new(TcpStream::connect(imap.imap).await.unwrap())).await;
    // Not before login.
    let r = c.command("P", "COMPRESS DEFLATE").await;
    assert!(r[0].starts_with("P BAD"), "{r:?}");
    login(&mut c).await;
    let r = c.command("U", "COMPRESS LZMA").await;
    assert!(r[0].starts_with("U BAD"), "{r:?}");

    // SELECT pipelined right behind COMPRESS, already compressed.
    let ok = c.compress("C", b"S SELECT INBOX\r\n").await;
    assert_eq!(ok, "C OK DEFLATE active");
    let r = c.until_tag("S").await;
    assert!(r.last().unwrap().starts_with("S OK [READ-WRITE]"), "{r:?}");
    assert!(r.iter().any(|l| l == "* 1 EXISTS"), "{r:?}");

    let r = c.command("A", "COMPRESS DEFLATE").await;
    assert_eq!(r, ["A NO [COMPRESSIONACTIVE] DEFLATE active via COMPRESS"]);
    let r = c.command("K", "CAPABILITY").await;
    assert!(!r[0].contains("COMPRESS=DEFLATE"), "{r:?}");

    let before = c.wire_in;
    c.send(b"F UID FETCH 1 BODY.PEEK[]\r\n").await;
    let line = c.line().await;
    let size = literal_size(&line).expect("a literal");
    assert_eq!(size, stored_raw.len());
    let body = c.take(Some(size)).await;
    assert!(body == stored_raw, "the message changed on the way");
    let rest = c.until_tag("F").await;
    assert!(rest.last().unwrap().starts_with("F OK"), "{rest:?}");
    let wire = c.wire_in - before;
    assert!(
        wire < size / 5,
        "{size} bytes of text took {wire} compressed bytes"
    );
    let r = c.command("Z", "LOGOUT").await;
    assert!(r.last().unwrap().starts_with("Z OK"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn compress_deflate_inside_tls() {
    let (server, imap) = setup().await;
    server.send_subjects(ALICE, &["one", "two"]).await;
    server.wait_for_inbox(ALICE, 2).await;
    let tcp = TcpStream::connect(imap.imaps).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = client_tls(server.dir.path())
        .connect(name, tcp)
        .await
        .unwrap();
    let mut c = Client::connect(Box::new(tls)).await;
    login(&mut c).await;
    c.compress("C", b"").await;
    let r = c.command("S", "EXAMINE INBOX").await;
    assert!(r.iter().any(|l| l == "* 2 EXISTS"), "{r:?}");
    let r = c
        .command("F", "FETCH 1:2 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        .await;
    let text = r.join("\n");
    assert!(text.contains("Subject: one"), "{text}");
    assert!(text.contains("Subject: two"), "{text}");
    // A session that sends garbage instead of DEFLATE data is closed.
    c.stream.write_all(&[0xff; 32]).await.unwrap();
    let mut buf = [0u8; 256];
    let mut closed = false;
    for _ in 0..10 {
        match tokio::time::timeout(Duration::from_secs(10), c.stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) => continue,
            Err(_) => break,
        }
    }
    assert!(
        closed,
        "the session stayed open after a broken DEFLATE stream"
    );
    drop(c);
    // And the server goes on serving others.
    let mut d = Client::connect(Box::new(TcpStream::connect(imap.imap).await.unwrap())).await;
    login(&mut d).await;
}
