//! The byte side of a mail session, written once for smtpd, pop3d and
//! imapd: a client's stream with an input buffer and an output buffer.
//!
//! It owns reading (lines with a length limit, or raw bytes for SMTP DATA
//! and BDAT and IMAP literals), waiting for input under a timeout and, between
//! commands, the shutdown token; queued replies and their flushing (under
//! a timeout, and early once they pass [`OUTPUT_HIGH_WATER`]); the memory a
//! session holds while it waits; the STARTTLS stream swap; noticing a
//! client that leaves while its session waits on long work
//! ([`Transport::until_gone`]); and the goodbye (flush, then shut the
//! stream down within five seconds).
//!
//! Replies are queued in [`Transport::output`] and written only when the
//! session must wait for input: a client that pipelines commands gets its
//! replies as one batch, in order (RFC 2920, RFC 2449 PIPELINING, IMAP's
//! command pipelining), without special cases in the daemons.
//!
//! Reads adapt to the client: the next read may take from [`MIN_READ`] to
//! [`MAX_READ`] bytes, doubled after a read that filled it and halved after
//! one that used less than half, so a message streams in large reads while
//! an idle session holds a small buffer. Whatever a message or a burst of
//! replies made the buffers grow to is given back when the session waits
//! with little buffered.
//!
//! It knows no protocol: replies, states and commands stay in the daemons,
//! which map [`End`] into why their session ended.

use std::future::Future;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::config::ListenerLimits;
use crate::tls::{MaybeTlsStream, TlsAcceptor};

/// The smallest and largest read (see the module doc).
pub const MIN_READ: usize = 512;
pub const MAX_READ: usize = 64 * 1024;
/// Queued replies beyond this are written out at once (a big RETR or
/// FETCH) by [`Transport::flush_if_full`].
pub const OUTPUT_HIGH_WATER: usize = 256 * 1024;
/// What the output buffer may keep of its capacity while the session waits
/// for input; anything more (a burst of replies grew it) is given back.
pub const OUTPUT_KEEP: usize = 64 * 1024;
/// How long the goodbye waits for the stream to shut down.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a session ended: the I/O reasons the transport reports, and
/// [`End::Done`] for a session that closed by its own decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// QUIT or LOGOUT, or the session decided to close after its last
    /// reply. The transport never returns it.
    Done,
    /// The client closed the connection, it broke, or a TLS handshake
    /// failed.
    Disconnected,
    /// No input (or no progress writing) within the timeout.
    Timeout,
    /// The server is shutting down.
    Shutdown,
}

/// A line read from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// The line without its CRLF (or bare LF).
    Complete(Vec<u8>),
    /// The line was longer than the limit; it has been read to its end and
    /// dropped, so the session stays in step with the client.
    TooLong,
}

/// A session's stream and its buffers. `S` is
/// [`crate::tls::MaybeTlsStream`] in the daemons (over TCP, or over an
/// in-memory duplex when a unit test drives a whole session) and a bare
/// duplex in this module's tests.
pub struct Transport<S> {
    /// `None` once a STARTTLS handshake failed: the stream is gone.
    stream: Option<S>,
    input: Vec<u8>,
    /// Start of unread input in `input`.
    pos: usize,
    /// How much the next read may take ([`MIN_READ`] to [`MAX_READ`]).
    read_size: usize,
    /// Inside an over-long line: its bytes are dropped up to its LF.
    discarding: bool,
    /// The longest line [`Transport::read_line`] accepts, line end included.
    max_line: usize,
    /// How long a flush may take before the session times out.
    write_timeout: Duration,
    /// Ends a wait for input between commands.
    shutdown: CancellationToken,
    /// Replies queued for the client; written by [`Transport::flush`].
    pub output: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Transport<S> {
    /// `max_line`: the longest command line, CRLF included.
    /// `write_timeout`: how long writing queued replies may take.
    pub fn new(
        stream: S,
        max_line: usize,
        write_timeout: Duration,
        shutdown: CancellationToken,
    ) -> Transport<S> {
        Transport {
            stream: Some(stream),
            input: Vec::new(),
            pos: 0,
            read_size: MIN_READ,
            discarding: false,
            max_line,
            write_timeout,
            shutdown,
            output: Vec::new(),
        }
    }

    /// The stream, unless a failed STARTTLS took it.
    pub fn stream(&self) -> Option<&S> {
        self.stream.as_ref()
    }

    /// The token that ends waits between commands.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Writes out queued replies.
    pub async fn flush(&mut self) -> Result<(), End> {
        if self.output.is_empty() {
            return Ok(());
        }
        write_all(self.stream.as_mut(), self.write_timeout, &self.output).await?;
        self.output.clear();
        Ok(())
    }

    /// Writes out queued replies if they have piled up.
    pub async fn flush_if_full(&mut self) -> Result<(), End> {
        if self.output.len() >= OUTPUT_HIGH_WATER {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes out queued replies, then `bytes` straight from where they
    /// lie: a large literal (a message FETCHed whole) is not copied into
    /// the output buffer first.
    pub async fn write_through(&mut self, bytes: &[u8]) -> Result<(), End> {
        self.flush().await?;
        write_all(self.stream.as_mut(), self.write_timeout, bytes).await
    }

    /// Reads more input after writing out the replies so far; gives back
    /// buffer memory first. `interruptible` lets a shutdown end the wait
    /// (between commands, never inside a message).
    pub async fn fill(&mut self, timeout: Duration, interruptible: bool) -> Result<(), End> {
        self.flush().await?;
        self.compact();
        let size = self.read_size;
        let shutdown = self.shutdown.clone();
        let read = tokio::time::timeout(timeout, self.read_more(size));
        let result = if interruptible {
            tokio::select! {
                r = read => r,
                () = shutdown.cancelled() => return Err(End::Shutdown),
            }
        } else {
            read.await
        };
        let n = result.map_err(|_| End::Timeout)??;
        if n == size {
            self.read_size = (size * 2).min(MAX_READ);
        } else if n < size / 2 {
            self.read_size = (size / 2).max(MIN_READ);
        }
        Ok(())
    }

    /// Reads what the client sent, at most `room` bytes, into the input
    /// buffer, without flushing and without a timeout: for a session that
    /// waits on other things too (IMAP IDLE). Safe to cancel.
    pub async fn read_more(&mut self, room: usize) -> Result<usize, End> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(End::Disconnected);
        };
        self.input.reserve(room);
        let mut limited = (&mut *stream).take(room as u64);
        match limited.read_buf(&mut self.input).await {
            Ok(0) | Err(_) => Err(End::Disconnected),
            Ok(n) => Ok(n),
        }
    }

    /// Runs `work` (a password check, a big SEARCH, a FETCH waiting on
    /// the store) while watching the client: if it closes the connection
    /// or the connection breaks first, `work` is dropped, and with it what
    /// the store was still to do for it, and the session learns
    /// [`End::Disconnected`] at once instead of at its next read.
    ///
    /// Whatever the client pipelined meanwhile is kept in the input buffer
    /// for the commands after this one. Once a line's worth of bytes (at
    /// least [`MAX_READ`]) waits there unread, the watch stops reading and
    /// `work` simply runs on: a client that floods is not buffered without
    /// bound. Queued replies stay queued.
    pub async fn until_gone<F: Future>(&mut self, work: F) -> Result<F::Output, End> {
        let enough = self.max_line.max(MAX_READ);
        let watch = async {
            loop {
                let unread = self.unread().len();
                if unread >= enough {
                    return std::future::pending::<End>().await;
                }
                if let Err(end) = self.read_more((enough - unread).min(self.read_size)).await {
                    return end;
                }
            }
        };
        tokio::select! {
            // Work finished in the same poll as the close wins: its result
            // is already paid for.
            biased;
            done = work => Ok(done),
            end = watch => Err(end),
        }
    }

    /// Drops consumed input and gives back what the buffers grew to beyond
    /// what the session needs while it waits.
    fn compact(&mut self) {
        if self.pos > 0 {
            self.input.drain(..self.pos);
            self.pos = 0;
        }
        let want = self.input.len() + self.read_size;
        if self.input.capacity() > 2 * want.max(MIN_READ) {
            self.input.shrink_to(want);
        }
        if self.output.capacity() > OUTPUT_KEEP {
            self.output = Vec::new();
        }
    }

    /// Gives back all buffer memory not holding bytes, for a long wait
    /// (IMAP IDLE).
    pub fn release_buffers(&mut self) {
        self.compact();
        if self.input.is_empty() {
            self.input = Vec::new();
        } else {
            self.input.shrink_to_fit();
        }
        if self.output.is_empty() {
            self.output = Vec::new();
        }
    }

    /// The next line if the buffer holds one, without reading. A line
    /// longer than the limit is dropped as it arrives; its end gives
    /// [`Line::TooLong`].
    pub fn take_line(&mut self) -> Option<Line> {
        let unread = &self.input[self.pos..];
        match unread.iter().position(|&b| b == b'\n') {
            Some(lf) => {
                let start = self.pos;
                self.pos += lf + 1;
                if std::mem::take(&mut self.discarding) || lf + 1 > self.max_line {
                    return Some(Line::TooLong);
                }
                let mut end = start + lf;
                if end > start && self.input[end - 1] == b'\r' {
                    end -= 1;
                }
                Some(Line::Complete(self.input[start..end].to_vec()))
            }
            None => {
                if unread.len() > self.max_line {
                    self.discarding = true;
                    self.input.truncate(self.pos);
                }
                None
            }
        }
    }

    /// Reads one line (see [`Transport::take_line`]). `interruptible`
    /// lets a shutdown end the wait, though never inside an over-long line.
    pub async fn read_line(&mut self, timeout: Duration, interruptible: bool) -> Result<Line, End> {
        loop {
            if let Some(line) = self.take_line() {
                return Ok(line);
            }
            self.fill(timeout, interruptible && !self.discarding)
                .await?;
        }
    }

    /// The buffered, unread input (for SMTP DATA and BDAT, IMAP's parser).
    pub fn unread(&self) -> &[u8] {
        &self.input[self.pos..]
    }

    /// Marks the first `n` unread bytes as read.
    pub fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.input.len());
    }

    /// STARTTLS: writes out queued replies (the "go ahead"), discards
    /// everything the client pipelined after the command (the injection
    /// defence of RFC 3207 4.2, RFC 2595 3.1 and 4), then swaps the stream
    /// for what `upgrade` makes of it within `timeout`. The session goes on
    /// over the new stream.
    pub async fn start_tls<F, Fut>(&mut self, timeout: Duration, upgrade: F) -> Result<(), End>
    where
        F: FnOnce(S) -> Fut,
        Fut: Future<Output = io::Result<S>>,
    {
        self.flush().await?;
        self.input.clear();
        self.pos = 0;
        self.discarding = false;
        let Some(stream) = self.stream.take() else {
            return Err(End::Disconnected);
        };
        match tokio::time::timeout(timeout, upgrade(stream)).await {
            Ok(Ok(upgraded)) => {
                self.stream = Some(upgraded);
                Ok(())
            }
            Ok(Err(e)) => {
                tracing::info!(error = %e, "TLS handshake failed");
                Err(End::Disconnected)
            }
            Err(_) => Err(End::Timeout),
        }
    }

    /// The session's last words: writes out queued replies, then shuts the
    /// stream down, waiting at most five seconds for the client.
    pub async fn goodbye(&mut self) {
        let _ = self.flush().await;
        if let Some(stream) = self.stream.as_mut() {
            let _ = tokio::time::timeout(GOODBYE_TIMEOUT, stream.shutdown()).await;
        }
    }
}

impl Transport<MaybeTlsStream> {
    /// Whether the client's stream is TLS (implicit, or after STARTTLS).
    pub fn is_tls(&self) -> bool {
        self.stream().is_some_and(MaybeTlsStream::is_tls)
    }

    /// The server side of STARTTLS (SMTP) and STLS (POP3), STARTTLS
    /// (IMAP): [`Transport::start_tls`] with our certificate, the
    /// handshake bounded by `[limits] tls_handshake_timeout_secs`.
    pub async fn accept_tls(
        &mut self,
        acceptor: TlsAcceptor,
        limits: &ListenerLimits,
    ) -> Result<(), End> {
        let timeout = Duration::from_secs(limits.tls_handshake_timeout_secs);
        self.start_tls(
            timeout,
            |stream| async move { stream.upgrade(&acceptor).await },
        )
        .await
    }
}

impl Transport<MaybeTlsStream> {
    /// COMPRESS=DEFLATE (RFC 4978): writes out queued replies (the tagged
    /// OK goes out uncompressed), then compresses both directions from
    /// here on. Input the client sent after its command and already read
    /// is compressed too: it is handed to the inflater, not discarded.
    pub async fn start_compression(&mut self) -> Result<(), End> {
        self.flush().await?;
        let Some(stream) = self.stream.take() else {
            return Err(End::Disconnected);
        };
        let pending = self.input[self.pos..].to_vec();
        self.input.clear();
        self.pos = 0;
        self.stream = Some(stream.compressed(&pending));
        Ok(())
    }

    /// Whether COMPRESS is in force.
    pub fn is_compressed(&self) -> bool {
        self.stream().is_some_and(MaybeTlsStream::is_compressed)
    }
}

/// Writes `bytes` to the client within `timeout`.
async fn write_all<S: AsyncWrite + Unpin>(
    stream: Option<&mut S>,
    timeout: Duration,
    bytes: &[u8],
) -> Result<(), End> {
    let Some(stream) = stream else {
        return Err(End::Disconnected);
    };
    let write = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    match tokio::time::timeout(timeout, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(End::Disconnected),
        Err(_) => Err(End::Timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, DuplexStream};

    const LONG: Duration = Duration::from_secs(60);

    fn transport(max_line: usize) -> (Transport<DuplexStream>, DuplexStream) {
        let (server, client) = duplex(1 << 20);
        let shutdown = CancellationToken::new();
        (Transport::new(server, max_line, LONG, shutdown), client)
    }

    fn complete(text: &[u8]) -> Line {
        Line::Complete(text.to_vec())
    }

    /// Every way of splitting the input into two writes gives the same
    /// lines.
    #[tokio::test]
    async fn lines_split_at_every_byte_give_the_same_lines() {
        let text = b"EHLO a\r\nMAIL FROM:<x@y>\nNOOP\r\n\r\nQUIT\r\n";
        for cut in 0..=text.len() {
            let (mut io, mut client) = transport(64);
            client.write_all(&text[..cut]).await.unwrap();
            let mut lines = Vec::new();
            let mut sent_rest = false;
            while lines.len() < 5 {
                if let Some(line) = io.take_line() {
                    lines.push(line);
                    continue;
                }
                if !sent_rest {
                    client.write_all(&text[cut..]).await.unwrap();
                    sent_rest = true;
                }
                io.fill(LONG, true).await.unwrap();
            }
            assert_eq!(
                lines,
                [
                    complete(b"EHLO a"),
                    complete(b"MAIL FROM:<x@y>"),
                    complete(b"NOOP"),
                    complete(b""),
                    complete(b"QUIT")
                ],
                "cut at {cut}"
            );
        }
    }

    #[tokio::test]
    async fn lines_arriving_a_byte_at_a_time() {
        let (mut io, client) = transport(64);
        let writer = tokio::spawn(async move {
            let mut client = client;
            for &b in b"NOOP\r\nRSET\r\n" {
                client.write_all(&[b]).await.unwrap();
                tokio::task::yield_now().await;
            }
            client
        });
        assert_eq!(io.read_line(LONG, true).await, Ok(complete(b"NOOP")));
        assert_eq!(io.read_line(LONG, true).await, Ok(complete(b"RSET")));
        drop(writer.await.unwrap());
        assert_eq!(io.read_line(LONG, true).await, Err(End::Disconnected));
    }

    /// A line over the limit is read to its end, whether it arrives whole
    /// or in pieces, and the next one is read as usual.
    #[tokio::test]
    async fn too_long_lines_are_read_to_their_end() {
        // The limit counts the CRLF: 8 octets is "123456\r\n".
        let (mut io, mut client) = transport(8);
        client.write_all(b"123456\r\n1234567\r\n").await.unwrap();
        assert_eq!(io.read_line(LONG, true).await, Ok(complete(b"123456")));
        assert_eq!(io.read_line(LONG, true).await, Ok(Line::TooLong));
        let long = vec![b'x'; 5000];
        for piece in long.chunks(300) {
            client.write_all(piece).await.unwrap();
        }
        client.write_all(b"\r\nQUIT\r\n").await.unwrap();
        assert_eq!(io.read_line(LONG, true).await, Ok(Line::TooLong));
        assert_eq!(io.read_line(LONG, true).await, Ok(complete(b"QUIT")));
        // What was dropped is not held.
        assert!(io.input.capacity() < 5000 + MIN_READ);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_times_out() {
        let (mut io, _client) = transport(64);
        let started = tokio::time::Instant::now();
        let waited = io.read_line(Duration::from_secs(300), true).await;
        assert_eq!(waited, Err(End::Timeout));
        assert!(started.elapsed() >= Duration::from_secs(300));
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_reads_nothing_times_out_a_flush() {
        let (server, _client) = duplex(64);
        let mut io = Transport::new(
            server,
            64,
            Duration::from_secs(30),
            CancellationToken::new(),
        );
        io.output.extend_from_slice(&[b'a'; 1000]);
        assert_eq!(io.flush().await, Err(End::Timeout));
    }

    #[tokio::test]
    async fn shutdown_ends_a_wait_between_commands_only() {
        let (mut io, mut client) = transport(64);
        io.shutdown_token().cancel();
        assert_eq!(io.read_line(LONG, true).await, Err(End::Shutdown));
        // Inside a message the wait goes on until the bytes come.
        client.write_all(b"body\r\n").await.unwrap();
        io.fill(LONG, false).await.unwrap();
        assert_eq!(io.unread(), b"body\r\n");
    }

    #[tokio::test]
    async fn a_closed_connection_is_disconnected() {
        let (mut io, client) = transport(64);
        drop(client);
        assert_eq!(io.fill(LONG, true).await, Err(End::Disconnected));
        io.output.extend_from_slice(b"221 bye\r\n");
        assert_eq!(io.flush().await, Err(End::Disconnected));
    }

    #[tokio::test]
    async fn replies_wait_for_a_fill_or_the_high_water_mark() {
        let (mut io, mut client) = transport(64);
        io.output.extend_from_slice(b"250 ok\r\n");
        io.flush_if_full().await.unwrap();
        assert_eq!(io.output.len(), 8, "below the mark nothing is written");
        client.write_all(b"NOOP\r\n").await.unwrap();
        assert_eq!(io.read_line(LONG, true).await, Ok(complete(b"NOOP")));
        let mut got = [0u8; 8];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"250 ok\r\n");

        io.output.resize(OUTPUT_HIGH_WATER, b'x');
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; OUTPUT_HIGH_WATER];
            client.read_exact(&mut got).await.unwrap();
            client
        });
        io.flush_if_full().await.unwrap();
        assert!(io.output.is_empty());
        reader.await.unwrap();
    }

    #[tokio::test]
    async fn write_through_goes_after_queued_replies() {
        let (mut io, mut client) = transport(64);
        io.output.extend_from_slice(b"* 1 FETCH (BODY[] {5}\r\n");
        io.write_through(b"hello").await.unwrap();
        assert!(io.output.is_empty());
        let mut got = vec![0u8; 28];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(got, b"* 1 FETCH (BODY[] {5}\r\nhello");
    }

    /// A message makes the reads and the buffer grow; waiting after it with
    /// nothing buffered gives the memory back.
    #[tokio::test]
    async fn buffers_grow_for_a_message_and_shrink_when_idle() {
        let (mut io, mut client) = transport(1000);
        let message = vec![b'm'; 1 << 20];
        let writer = tokio::spawn(async move {
            client.write_all(&message).await.unwrap();
            client
        });
        let mut got = 0;
        while got < 1 << 20 {
            io.fill(LONG, false).await.unwrap();
            let n = io.unread().len();
            io.consume(n);
            got += n;
        }
        // The last read, the tail of the message, halves it once.
        assert!(
            io.read_size >= MAX_READ / 2,
            "a stream of bytes reads large"
        );
        let mut client = writer.await.unwrap();
        io.output.resize(OUTPUT_KEEP * 2, b'r');
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; OUTPUT_KEEP * 2];
            client.read_exact(&mut got).await.unwrap();
            for _ in 0..8 {
                client.write_all(b"NOOP\r\n").await.unwrap();
                tokio::task::yield_now().await;
            }
            client
        });
        for _ in 0..8 {
            assert_eq!(io.read_line(LONG, true).await, Ok(complete(b"NOOP")));
        }
        assert!(io.output.capacity() <= OUTPUT_KEEP);
        reader.await.unwrap();
        assert!(io.read_size < MAX_READ, "short commands read small");
        // One more wait shrinks what the message grew.
        let mut after = io;
        after.compact();
        assert!(
            after.input.capacity() <= 2 * (after.read_size + after.unread().len()).max(MIN_READ),
            "capacity {} after the message",
            after.input.capacity()
        );
        after.release_buffers();
        assert_eq!(after.input.capacity(), 0);
        assert_eq!(after.output.capacity(), 0);
    }

    #[tokio::test]
    async fn unread_and_consume_serve_raw_receivers() {
        let (mut io, mut client) = transport(64);
        client.write_all(b"BDAT 3\r\nabcNOOP\r\n").await.unwrap();
        assert_eq!(io.read_line(LONG, true).await, Ok(complete(b"BDAT 3")));
        assert_eq!(&io.unread()[..3], b"abc");
        io.consume(3);
        assert_eq!(io.read_line(LONG, true).await, Ok(complete(b"NOOP")));
        io.consume(100);
        assert!(io.unread().is_empty());
    }

    /// STARTTLS: the go-ahead goes out, what was pipelined after the
    /// command is gone, and the session reads from the new stream.
    #[tokio::test]
    async fn start_tls_discards_pipelined_input_and_swaps_the_stream() {
        let (mut io, mut client) = transport(64);
        client
            .write_all(b"STARTTLS\r\nMAIL FROM:<evil@x>\r\n")
            .await
            .unwrap();
        assert_eq!(io.read_line(LONG, true).await, Ok(complete(b"STARTTLS")));
        io.output.extend_from_slice(b"220 go ahead\r\n");
        let (upgraded, mut new_client) = duplex(1024);
        io.start_tls(LONG, |_old| async move { Ok(upgraded) })
            .await
            .unwrap();
        let mut got = [0u8; 14];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"220 go ahead\r\n");
        assert!(io.unread().is_empty());
        new_client.write_all(b"EHLO a\r\n").await.unwrap();
        assert_eq!(io.read_line(LONG, true).await, Ok(complete(b"EHLO a")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_or_slow_handshake_ends_the_session() {
        let (mut io, _client) = transport(64);
        let failed = io
            .start_tls(LONG, |_old| async { Err(io::Error::other("bad hello")) })
            .await;
        assert_eq!(failed, Err(End::Disconnected));
        assert!(io.stream().is_none());
        io.output.extend_from_slice(b"x");
        assert_eq!(io.flush().await, Err(End::Disconnected));

        let (mut io, _client) = transport(64);
        let slow = io
            .start_tls(Duration::from_secs(10), |old| async move {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(old)
            })
            .await;
        assert_eq!(slow, Err(End::Timeout));
    }

    /// A client that closes while the session waits on long work ends
    /// the wait at once, and the work is dropped (the store skips it).
    #[tokio::test]
    async fn until_gone_drops_the_work_of_a_client_that_left() {
        let (mut io, client) = transport(64);
        let (work_done, work) = tokio::sync::oneshot::channel::<()>();
        let closer = tokio::spawn(async move {
            tokio::task::yield_now().await;
            drop(client);
        });
        let waited = tokio::time::timeout(LONG, io.until_gone(work)).await;
        assert_eq!(waited.expect("not left waiting"), Err(End::Disconnected));
        assert!(work_done.is_closed(), "the work was dropped");
        closer.await.unwrap();
    }

    /// Commands the client pipelines during the work are kept for after
    /// it, and replies queued before it stay queued.
    #[tokio::test]
    async fn until_gone_keeps_what_the_client_pipelined() {
        let (mut io, mut client) = transport(64);
        io.output.extend_from_slice(b"* 1 EXISTS\r\n");
        let (finish, work) = tokio::sync::oneshot::channel::<u32>();
        let writer = tokio::spawn(async move {
            client.write_all(b"a NOOP\r\nb LOG").await.unwrap();
            tokio::task::yield_now().await;
            client.write_all(b"OUT\r\n").await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            finish.send(7).unwrap();
            client
        });
        assert_eq!(io.until_gone(work).await, Ok(Ok(7)));
        let _client = writer.await.unwrap();
        assert_eq!(io.output, b"* 1 EXISTS\r\n");
        assert_eq!(io.take_line(), Some(complete(b"a NOOP")));
        assert_eq!(io.take_line(), Some(complete(b"b LOGOUT")));
    }

    /// A client that sends and sends is not buffered without bound: the
    /// watch stops reading and the work runs on to its end.
    #[tokio::test]
    async fn until_gone_stops_reading_a_flood() {
        let (mut io, mut client) = transport(64);
        let flooder = tokio::spawn(async move {
            let _ = client.write_all(&vec![b'x'; 4 * MAX_READ]).await;
            client
        });
        let work = tokio::time::sleep(Duration::from_millis(50));
        assert_eq!(io.until_gone(work).await, Ok(()));
        assert!(io.unread().len() <= MAX_READ, "{}", io.unread().len());
        assert!(io.unread().len() >= MAX_READ / 2, "the watch kept reading");
        drop(flooder);
    }

    /// Work done before anything arrives returns as it is.
    #[tokio::test]
    async fn until_gone_returns_finished_work() {
        let (mut io, _client) = transport(64);
        assert_eq!(io.until_gone(async { 5 }).await, Ok(5));
        assert!(io.unread().is_empty());
    }

    #[tokio::test]
    async fn goodbye_flushes_then_closes() {
        let (mut io, mut client) = transport(64);
        io.output.extend_from_slice(b"221 bye\r\n");
        io.goodbye().await;
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"221 bye\r\n");
    }
}
