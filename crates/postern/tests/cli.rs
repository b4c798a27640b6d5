//! Black-box tests of the `postern` command: the administration subcommands
//! on a temporary data dir, and `postern up` end to end (SMTP in, the CLI
//! reads what arrived).
//!
//! This package has no dev-dependencies, so the few helpers these tests need
//! (a temporary dir, a blocking SMTP client, base64) are small and local.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct horse battery staple";
const POSTERN: &str = env!("CARGO_BIN_EXE_postern");
/// How long one CLI command may take before the test gives up on it.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

// ---- helpers ----

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path =
            std::env::temp_dir().join(format!("postern-cli-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    /// The data dir inside (not created: the CLI must create it).
    fn data(&self) -> PathBuf {
        self.0.join("data")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `postern` with no influence from the caller's environment (every
/// `POSTERN_…` variable is a config key).
fn postern() -> Command {
    let mut command = Command::new(POSTERN);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("POSTERN_") {
            command.env_remove(name);
        }
    }
    command.env_remove("RUST_LOG");
    command
}

/// Runs a prepared command to completion (at most [`COMMAND_LIMIT`]),
/// feeding `stdin` if it is `Some`, else with stdin on /dev/null.
fn run_command(mut command: Command, stdin: Option<&str>) -> Output {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn postern");
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        let _ = input.write_all(text.as_bytes());
    }
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let status = wait_for_exit(&mut child, COMMAND_LIMIT)
        .unwrap_or_else(|| panic!("{command:?} did not finish within {COMMAND_LIMIT:?}"));
    Output {
        status,
        stdout: stdout.recv().unwrap_or_default(),
        stderr: stderr.recv().unwrap_or_default(),
    }
}

/// Reads a pipe to its end on a thread.
fn drain(mut pipe: impl Read + Send + 'static) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = tx.send(bytes);
    });
    rx
}

/// Waits for the child to exit; kills it and returns `None` past `limit`.
fn wait_for_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `postern --data-dir DATA args…` with `stdin` fed.
fn cli(data: &Path, args: &[&str], stdin: &str) -> Output {
    let mut command = postern();
    command.arg("--data-dir").arg(data).args(args);
    run_command(command, Some(stdin))
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts success and returns stdout.
#[track_caller]
fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "expected success, got {}\nstdout: {}\nstderr: {}",
        output.status,
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

/// Asserts a failure (exit 1, as documented for failures), a `postern: `
/// message on stderr that contains every one of `needles`, and returns
/// stderr.
#[track_caller]
fn fails(output: Output, needles: &[&str]) -> String {
    let err = stderr(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "expected exit code 1, got {}\nstdout: {}\nstderr: {err}",
        output.status,
        stdout(&output)
    );
    assert!(
        err.starts_with("postern: "),
        "stderr should be a `postern: ` message: {err:?}"
    );
    for needle in needles {
        assert!(
            err.contains(needle),
            "stderr should mention {needle:?}: {err:?}"
        );
    }
    err
}

fn add_user(data: &Path, address: &str, password: &str) {
    let out = ok(cli(
        data,
        &["user", "add", address, "--password-stdin"],
        &format!("{password}\n"),
    ));
    assert_eq!(out, format!("added {}\n", address.to_lowercase()));
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The part of a stored message after the `Return-Path:` line of local
/// delivery and the `Received:` header smtpd adds.
fn without_received(raw: &[u8]) -> &[u8] {
    let raw = match raw.strip_prefix(b"Return-Path: <") {
        Some(rest) => match rest.windows(3).position(|w| w == b">\r\n") {
            Some(end) => &rest[end + 3..],
            None => raw,
        },
        None => raw,
    };
    assert!(
        raw.starts_with(b"Received: "),
        "no Received line first: {:?}",
        String::from_utf8_lossy(&raw[..raw.len().min(200)])
    );
    let mut i = 0;
    while i + 2 < raw.len() {
        if &raw[i..i + 2] == b"\r\n" && raw[i + 2] != b'\t' && raw[i + 2] != b' ' {
            return &raw[i + 2..];
        }
        i += 1;
    }
    &raw[raw.len()..]
}

/// A small blocking SMTP client.
struct Smtp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Smtp {
    /// Connects and checks the `220` greeting.
    fn connect(addr: SocketAddr) -> Smtp {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        let mut smtp = Smtp {
            reader: BufReader::new(stream.try_clone().expect("clone stream")),
            writer: stream,
        };
        let (code, text) = smtp.reply();
        assert_eq!(code, 220, "greeting: {text}");
        smtp
    }

    /// Reads one reply: its code and its lines joined by `\n`.
    fn reply(&mut self) -> (u16, String) {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("read reply");
            assert!(n > 0, "connection closed; reply so far: {lines:?}");
            let line = line.trim_end_matches(['\r', '\n']).to_string();
            assert!(line.len() >= 3, "short reply line {line:?}");
            let code: u16 = line[..3].parse().expect("reply code");
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return (code, lines.join("\n"));
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write");
        self.writer.flush().expect("flush");
    }

    fn cmd(&mut self, line: &str) -> (u16, String) {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// `cmd`, asserting the reply code.
    #[track_caller]
    fn expect(&mut self, line: &str, code: u16) -> String {
        let (got, text) = self.cmd(line);
        assert_eq!(got, code, "{line}: {text}");
        text
    }

    /// MAIL, RCPT, DATA; `message` must be CRLF and have no line starting
    /// with a dot. Returns the final reply.
    fn send_mail(&mut self, from: &str, to: &str, message: &[u8]) -> (u16, String) {
        self.expect(&format!("MAIL FROM:<{from}>"), 250);
        self.expect(&format!("RCPT TO:<{to}>"), 250);
        self.expect("DATA", 354);
        assert!(message.ends_with(b"\r\n"));
        self.send(message);
        self.send(b".\r\n");
        self.reply()
    }
}

/// `postern up` as a child, with its announced listeners.
struct Up {
    child: Child,
    lines: Vec<String>,
    stderr: Receiver<Vec<u8>>,
}

impl Up {
    /// Starts `postern [--config CONFIG] --data-dir DATA up` in `cwd`, and
    /// reads stdout up to the `postern: ready` line. `Err` holds the exit
    /// status and stderr if the process ended before it was ready.
    fn start(data: &Path, config: Option<&Path>, cwd: &Path) -> Result<Up, (ExitStatus, String)> {
        let mut command = postern();
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let mut child = command
            .arg("--data-dir")
            .arg(data)
            .arg("up")
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn postern up");
        let stderr = drain(child.stderr.take().expect("stderr"));
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let ready = line.starts_with("postern: ready");
                    lines.push(line);
                    if ready {
                        return Ok(Up {
                            child,
                            lines,
                            stderr,
                        });
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // stdout closed: the process is ending.
                    let status = wait_for_exit(&mut child, Duration::from_secs(30))
                        .expect("postern up closed stdout but did not exit");
                    let err =
                        String::from_utf8_lossy(&stderr.recv().unwrap_or_default()).into_owned();
                    return Err((status, err));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let err =
                        String::from_utf8_lossy(&stderr.recv().unwrap_or_default()).into_owned();
                    panic!("postern up not ready within 30 s; stdout {lines:?}; stderr {err}");
                }
            }
        }
    }

    /// The address announced for a listener (`smtp`, `submission`, …).
    fn addr(&self, name: &str) -> SocketAddr {
        let prefix = format!("postern: {name} listening on ");
        self.lines
            .iter()
            .find_map(|l| {
                l.strip_prefix(&prefix)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no {name} listener in {:?}", self.lines))
    }

    /// Sends SIGTERM and waits (at most `limit`) for the exit.
    fn terminate(mut self, limit: Duration) -> (ExitStatus, String) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let exit = wait_for_exit(&mut self.child, limit);
        let err = match self.stderr.recv_timeout(Duration::from_secs(10)) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(_) => String::new(),
        };
        let exit = exit.unwrap_or_else(|| {
            panic!("postern up did not exit within {limit:?} of SIGTERM; stderr: {err}")
        });
        (exit, err)
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config with every listener on a free port of 127.0.0.1 (port 0).
fn write_config(dir: &TempDir) -> PathBuf {
    let path = dir.0.join("postern.toml");
    std::fs::write(
        &path,
        "log = \"warn\"\n[smtp]\nlisten = [\"127.0.0.1:0\"]\nsubmission_listen = [\"127.0.0.1:0\"]\nsubmissions_listen = [\"127.0.0.1:0\"]\n[pop3]\nlisten = [\"127.0.0.1:0\"]\npop3s_listen = [\"127.0.0.1:0\"]\n[imap]\nlisten = [\"127.0.0.1:0\"]\nimaps_listen = [\"127.0.0.1:0\"]\n[http]\nlisten = [\"127.0.0.1:0\"]\n",
    )
    .expect("write config");
    path
}

// ---- users ----

#[test]
fn user_add_list_passwd_del() {
    let dir = TempDir::new();
    let data = dir.data();
    add_user(&data, "alice@localhost", PASSWORD);
    // Addresses are stored lower-cased.
    add_user(&data, "Bob@LocalHost", "another password");

    let err = fails(
        cli(
            &data,
            &["user", "add", "alice@localhost", "--password-stdin"],
            "x\n",
        ),
        &["already exists", "alice@localhost"],
    );
    assert_eq!(err.lines().count(), 1, "one line of error: {err:?}");
    // Case does not make a new account either.
    fails(
        cli(
            &data,
            &["user", "add", "ALICE@localhost", "--password-stdin"],
            "x\n",
        ),
        &["already exists"],
    );

    let list = ok(cli(&data, &["user", "list"], ""));
    assert_eq!(sorted_lines(&list), ["alice@localhost", "bob@localhost"]);

    let listed = json(&ok(cli(&data, &["user", "list", "--json"], "")));
    let array = listed.as_array().expect("user list --json is an array");
    let mut addresses: Vec<&str> = array
        .iter()
        .map(|a| a["address"].as_str().expect("address is a string"))
        .collect();
    addresses.sort();
    assert_eq!(addresses, ["alice@localhost", "bob@localhost"]);
    for account in array {
        assert!(account["id"].is_number(), "id: {account}");
        assert!(account["created_at"].is_number(), "created_at: {account}");
    }

    let out = ok(cli(
        &data,
        &["user", "passwd", "alice@localhost", "--password-stdin"],
        "a new password\n",
    ));
    assert_eq!(out, "password changed for alice@localhost\n");
    fails(
        cli(
            &data,
            &["user", "passwd", "carol@localhost", "--password-stdin"],
            "whatever\n",
        ),
        &["carol@localhost"],
    );

    let out = ok(cli(&data, &["user", "del", "bob@localhost"], ""));
    assert_eq!(out, "deleted bob@localhost\n");
    let list = ok(cli(&data, &["user", "list"], ""));
    assert_eq!(sorted_lines(&list), ["alice@localhost"]);
    fails(
        cli(&data, &["user", "del", "bob@localhost"], ""),
        &["bob@localhost", "not found"],
    );
    // The account can be made again after deletion.
    add_user(&data, "bob@localhost", PASSWORD);
}

#[test]
fn user_add_rejects_invalid_addresses() {
    let dir = TempDir::new();
    let data = dir.data();
    for address in [
        "no-at-sign",
        "@localhost",
        "alice@",
        "a b@localhost",
        "two@at@localhost",
        "tab\t@localhost",
    ] {
        let out = cli(
            &data,
            &["user", "add", address, "--password-stdin"],
            "secret\n",
        );
        let err = stderr(&out);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{address:?} accepted? stdout {} stderr {err}",
            stdout(&out)
        );
        assert!(err.contains("invalid address"), "{address:?}: {err:?}");
    }
    let list = ok(cli(&data, &["user", "list", "--json"], ""));
    assert_eq!(json(&list), json("[]"));
}

#[test]
fn user_add_needs_a_password() {
    let dir = TempDir::new();
    let data = dir.data();
    // No --password-stdin and stdin is not a terminal: no prompt, no hang.
    let mut command = postern();
    command
        .arg("--data-dir")
        .arg(&data)
        .args(["user", "add", "alice@localhost"]);
    fails(run_command(command, None), &["--password-stdin"]);
    // Same with a pipe that has a password in it: still not a terminal.
    fails(
        cli(&data, &["user", "add", "alice@localhost"], "secret\n"),
        &["--password-stdin"],
    );
    // An empty line is no password.
    fails(
        cli(
            &data,
            &["user", "add", "alice@localhost", "--password-stdin"],
            "\n",
        ),
        &["empty password"],
    );
    let list = ok(cli(&data, &["user", "list"], ""));
    assert_eq!(list, "", "no account was made");
}

// ---- domains and aliases ----

#[test]
fn domain_add_and_list() {
    let dir = TempDir::new();
    let data = dir.data();
    let list = ok(cli(&data, &["domain", "list"], ""));
    assert_eq!(list, "localhost\n", "the configured default domain");
    ok(cli(&data, &["domain", "add", "Example.ORG"], ""));
    // Adding it again is fine.
    ok(cli(&data, &["domain", "add", "example.org"], ""));
    let list = ok(cli(&data, &["domain", "list"], ""));
    assert_eq!(list, "example.org\nlocalhost\n");
    fails(
        cli(&data, &["domain", "add", "bad domain"], ""),
        &["invalid domain"],
    );
}

#[test]
fn alias_add() {
    let dir = TempDir::new();
    let data = dir.data();
    add_user(&data, "alice@localhost", PASSWORD);
    let out = ok(cli(
        &data,
        &["alias", "add", "info@localhost", "alice@localhost"],
        "",
    ));
    assert_eq!(out, "info@localhost -> alice@localhost\n");
    fails(
        cli(
            &data,
            &["alias", "add", "sales@localhost", "nobody@localhost"],
            "",
        ),
        &["not found"],
    );
    fails(
        cli(
            &data,
            &["alias", "add", "info@localhost", "alice@localhost"],
            "",
        ),
        &["already exists"],
    );
    // An account's own address cannot become an alias.
    fails(
        cli(
            &data,
            &["alias", "add", "alice@localhost", "alice@localhost"],
            "",
        ),
        &["already exists"],
    );
    // The alias is not an account.
    let list = ok(cli(&data, &["user", "list"], ""));
    assert_eq!(list, "alice@localhost\n");
}

// ---- mail and queue ----

#[test]
fn mail_and_queue_on_an_empty_store() {
    let dir = TempDir::new();
    let data = dir.data();
    add_user(&data, "alice@localhost", PASSWORD);

    let list = ok(cli(
        &data,
        &["mail", "list", "alice@localhost", "--json"],
        "",
    ));
    assert_eq!(json(&list), json("[]"));
    let text = ok(cli(&data, &["mail", "list", "alice@localhost"], ""));
    assert_eq!(text.lines().count(), 1, "only the heading: {text:?}");
    assert!(text.contains("SUBJECT"), "{text:?}");

    fails(
        cli(&data, &["mail", "list", "nobody@localhost", "--json"], ""),
        &["no such account: nobody@localhost"],
    );
    fails(
        cli(
            &data,
            &["mail", "list", "alice@localhost", "--mailbox", "Nope"],
            "",
        ),
        &["Nope"],
    );
    fails(
        cli(&data, &["mail", "show", "alice@localhost", "7"], ""),
        &["no message with UID 7 in INBOX of alice@localhost"],
    );
    fails(
        cli(&data, &["mail", "show", "nobody@localhost", "1"], ""),
        &["no such account: nobody@localhost"],
    );

    let boxes = json(&ok(cli(
        &data,
        &["mail", "mailboxes", "alice@localhost", "--json"],
        "",
    )));
    let names: Vec<&str> = boxes
        .as_array()
        .expect("array")
        .iter()
        .map(|b| b["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names.first(), Some(&"INBOX"), "{names:?}");
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"]
    );

    let queue = ok(cli(&data, &["queue", "list", "--json"], ""));
    assert_eq!(json(&queue), json("[]"));
    let queue = ok(cli(&data, &["queue", "list"], ""));
    assert_eq!(queue, "queue is empty\n");
}

// ---- the command line itself ----

#[test]
fn version() {
    let mut command = postern();
    command.arg("--version");
    let out = ok(run_command(command, None));
    assert_eq!(
        out.trim_end(),
        format!("postern {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_2() {
    let dir = TempDir::new();
    let data = dir.data();
    for args in [
        &["user", "frobnicate"][..],
        &["user", "add"][..],
        &["mail", "show", "alice@localhost", "not-a-number"][..],
        &["no-such-command"][..],
    ] {
        let out = cli(&data, args, "");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).is_empty(), "{args:?}: usage on stderr");
    }
}

#[test]
fn bad_config_file_names_the_key() {
    let dir = TempDir::new();
    let data = dir.data();
    let config = dir.0.join("bad.toml");
    std::fs::write(&config, "[smtp]\nmax_recipientz = 7\n").expect("write config");
    let config_arg = config.to_str().expect("utf-8 path");
    let mut command = postern();
    command
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .args(["user", "list"]);
    fails(run_command(command, None), &["max_recipientz", config_arg]);

    // The same through the environment, and for `up`.
    let mut command = postern();
    command
        .env("POSTERN_CONFIG", &config)
        .arg("--data-dir")
        .arg(&data)
        .arg("up");
    fails(run_command(command, None), &["max_recipientz", config_arg]);

    // A top-level unknown key.
    std::fs::write(&config, "frobnicate = true\n").expect("write config");
    let mut command = postern();
    command.arg("--config").arg(&config).args(["queue", "list"]);
    fails(run_command(command, None), &["frobnicate"]);

    // A config file that does not exist is an error, not defaults.
    let missing = dir.0.join("missing.toml");
    let mut command = postern();
    command.arg("--config").arg(&missing).args(["user", "list"]);
    fails(
        run_command(command, None),
        &[missing.to_str().expect("utf-8 path")],
    );
}

// ---- postern up ----

#[test]
fn up_accepts_mail_that_the_cli_then_shows() {
    let dir = TempDir::new();
    let data = dir.data();
    add_user(&data, "alice@localhost", PASSWORD);
    ok(cli(
        &data,
        &["alias", "add", "info@localhost", "alice@localhost"],
        "",
    ));
    let config = write_config(&dir);
    let up = Up::start(&data, Some(&config), &dir.0).unwrap_or_else(|(status, err)| {
        panic!("postern up exited with {status}: {err}");
    });
    let smtp = up.addr("smtp");
    let submission = up.addr("submission");
    let submissions = up.addr("submissions");
    for addr in [smtp, submission, submissions] {
        assert!(
            addr.ip().is_loopback() && addr.port() != 0,
            "{:?}",
            up.lines
        );
    }
    assert!(
        up.lines.iter().any(|l| l.contains("(STARTTLS, AUTH)")),
        "{:?}",
        up.lines
    );

    let first = b"From: Bob <bob@example.com>\r\nTo: Alice <alice@localhost>\r\nSubject: first\r\nDate: Sat, 21 Nov 2026 12:00:00 +0000\r\nMessage-ID: <first@example.com>\r\n\r\nHello Alice.\r\n\r\n  Indented line, trailing space \r\n";
    let second = b"From: Bob <bob@example.com>\r\nTo: info@localhost\r\nSubject: second\r\nMessage-ID: <second@example.com>\r\n\r\nFor the alias.\r\n";
    let mut client = Smtp::connect(smtp);
    client.expect("EHLO client.example.com", 250);
    let (code, text) = client.send_mail("bob@example.com", "alice@localhost", first);
    assert_eq!(code, 250, "end of DATA: {text}");
    let (code, text) = client.send_mail("bob@example.com", "info@localhost", second);
    assert_eq!(code, 250, "end of DATA: {text}");
    client.expect("QUIT", 221);

    // Delivery is asynchronous: poll the CLI.
    let deadline = Instant::now() + Duration::from_secs(20);
    let listed = loop {
        let list = json(&ok(cli(
            &data,
            &["mail", "list", "alice@localhost", "--json"],
            "",
        )));
        if list.as_array().map_or(0, Vec::len) >= 2 || Instant::now() > deadline {
            break list;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let listed = listed.as_array().expect("array");
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0]["uid"], 1, "{listed:?}");
    assert_eq!(listed[0]["subject"], "first");
    // Kept with its angle brackets, as IMAP's ENVELOPE wants it.
    assert_eq!(listed[0]["message_id"], "<first@example.com>");
    assert_eq!(listed[0]["from"][0]["address"], "bob@example.com");
    assert_eq!(listed[0]["from"][0]["name"], "Bob");
    assert_eq!(listed[1]["uid"], 2, "{listed:?}");
    assert_eq!(listed[1]["subject"], "second");

    let shown = cli(&data, &["mail", "show", "alice@localhost", "1"], "");
    assert!(shown.status.success(), "{}", stderr(&shown));
    assert_eq!(
        String::from_utf8_lossy(without_received(&shown.stdout)),
        String::from_utf8_lossy(first)
    );
    assert_eq!(without_received(&shown.stdout), first);
    assert_eq!(
        listed[0]["size"],
        shown.stdout.len(),
        "size is the stored size"
    );
    let shown = cli(&data, &["mail", "show", "alice@localhost", "2"], "");
    assert_eq!(without_received(&shown.stdout), second);

    let queue = ok(cli(&data, &["queue", "list", "--json"], ""));
    assert_eq!(json(&queue), json("[]"), "delivered mail leaves the queue");

    // A password changed by the CLI while the server runs is the one that
    // works (plaintext AUTH is allowed on loopback by default).
    ok(cli(
        &data,
        &["user", "passwd", "alice@localhost", "--password-stdin"],
        "a new password\n",
    ));
    let mut client = Smtp::connect(submission);
    let ehlo = client.expect("EHLO client.example.com", 250);
    assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    let old = base64(format!("\0alice@localhost\0{PASSWORD}").as_bytes());
    let (code, text) = client.cmd(&format!("AUTH PLAIN {old}"));
    assert_eq!(code, 535, "old password: {text}");
    let new = base64(b"\0alice@localhost\0a new password");
    client.expect(&format!("AUTH PLAIN {new}"), 235);
    client.expect("QUIT", 221);

    let (status, err) = up.terminate(Duration::from_secs(15));
    assert!(
        status.success(),
        "exit after SIGTERM: {status}; stderr {err}"
    );
}

/// Which of the default ports is taken, in the order `up` binds them.
fn first_busy_default_port() -> Option<(&'static str, u16)> {
    [
        ("smtp", 2525),
        ("submission", 2587),
        ("submissions", 2465),
        ("pop3", 1110),
        ("pop3s", 1995),
        ("imap", 1143),
        ("imaps", 1993),
    ]
    .into_iter()
    .find(|(_, port)| TcpListener::bind(("127.0.0.1", *port)).is_err())
}

#[test]
fn up_runs_with_no_config_at_all() {
    let dir = TempDir::new();
    let data = dir.data();
    let busy = first_busy_default_port();
    match (busy, Up::start(&data, None, &dir.0)) {
        (None, Ok(up)) => {
            for expected in [
                "postern: smtp listening on 127.0.0.1:2525",
                "postern: submission listening on 127.0.0.1:2587 (STARTTLS, AUTH)",
                "postern: submissions listening on 127.0.0.1:2465 (implicit TLS, AUTH)",
                "postern: pop3 listening on 127.0.0.1:1110 (STLS)",
                "postern: pop3s listening on 127.0.0.1:1995 (implicit TLS)",
                "postern: imap listening on 127.0.0.1:1143 (STARTTLS)",
                "postern: imaps listening on 127.0.0.1:1993 (implicit TLS)",
            ] {
                assert!(
                    up.lines.iter().any(|l| l == expected),
                    "missing {expected:?} in {:?}",
                    up.lines
                );
            }
            let ready = up.lines.last().expect("ready line");
            assert!(
                ready.contains(&format!("(data dir {})", data.display())),
                "{ready}"
            );
            assert!(
                data.join("tls/cert.pem").exists(),
                "a certificate is made on first run"
            );
            let mut client = Smtp::connect(up.addr("smtp"));
            client.expect("QUIT", 221);
            let (status, err) = up.terminate(Duration::from_secs(15));
            assert!(
                status.success(),
                "exit after SIGTERM: {status}; stderr {err}"
            );
        }
        (Some((name, port)), Err((status, err))) => {
            assert_eq!(status.code(), Some(1), "{err}");
            let expected = format!("cannot listen for {name} on 127.0.0.1:{port}");
            assert!(
                err.contains(&expected),
                "stderr should say {expected:?}: {err}"
            );
        }
        (None, Err((status, err))) => {
            panic!("the default ports were free, but postern up exited with {status}: {err}")
        }
        (Some((name, port)), Ok(up)) => {
            panic!(
                "port {port} ({name}) was busy, yet postern up became ready: {:?}",
                up.lines
            )
        }
    }
}
