//! Interop with real IMAP clients against imapd running in this process
//! beside smtpd: Python's imaplib (STARTTLS and implicit TLS, a whole
//! session), curl (LIST, fetch by UID, APPEND) and mbsync (two-way sync
//! with a local maildir: new messages, flags and expunges both ways). Each
//! test checks the client's exit code and what the store holds afterwards.
//! None of these clients needs SEARCH (mbsync 1.4 finds its uploads by
//! APPENDUID).
//!
//! The tools are required: a missing one fails the test (`.ci/run` installs
//! them), it is never skipped.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use postern_tests::*;
use store::FlagChange;

const ALICE: &str = "alice@localhost";

/// One client run may take this long.
const TOOL_LIMIT: Duration = Duration::from_secs(60);

async fn start() -> (Server, ImapServer) {
    let server = Server::start().await;
    let imap = ImapServer::start_with(&server, |_| {}).await;
    (server, imap)
}

/// The self-signed certificate imapd serves (names `localhost`,
/// `127.0.0.1`, `::1`).
fn cert(server: &Server) -> PathBuf {
    server.dir.path().join("tls/cert.pem")
}

/// Delivers messages to alice through the in-process smtpd and waits until
/// the INBOX holds `total` messages.
async fn deliver(server: &Server, subjects: &[&str], total: usize) -> Vec<store::MessageInfo> {
    server.send_subjects(ALICE, subjects).await;
    server.wait_for_inbox(ALICE, total).await
}

async fn messages(server: &Server, mailbox: &str) -> Vec<store::MessageInfo> {
    let id = server.account(ALICE).await;
    server.store.messages(id, mailbox).await.expect("list")
}

async fn raw_in(server: &Server, mailbox: &str, uid: store::Uid) -> Vec<u8> {
    let id = server.account(ALICE).await;
    server
        .store
        .message_raw(id, mailbox, uid)
        .await
        .expect("read")
        .expect("message exists")
}

fn has_flag(info: &store::MessageInfo, flag: &str) -> bool {
    info.flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
}

/// Runs a client program to completion; fails clearly if it is missing.
async fn output(mut command: tokio::process::Command, program: &str, package: &str) -> Output {
    let child = command
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(TOOL_LIMIT, child).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("{program} is not installed; `.ci/run` installs it (Debian package `{package}`)")
        }
        Ok(Err(e)) => panic!("cannot run {program}: {e}"),
        Err(_) => panic!("{command:?} did not finish within {TOOL_LIMIT:?}"),
    }
}

async fn run(program: &str, package: &str, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(program);
    command.args(args);
    output(command, program, package).await
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs a program, asserts exit 0, returns its stdout bytes.
async fn run_ok(program: &str, package: &str, args: &[&str]) -> Vec<u8> {
    let out = run(program, package, args).await;
    assert!(
        out.status.success(),
        "{program} {args:?} exited with {}:\n{}",
        out.status,
        text(&out)
    );
    out.stdout
}

// ---- Python imaplib ----

/// A whole imaplib session over TLS (mode `starttls` or `ssl`), the
/// certificate verified against `cafile` for 127.0.0.1: LIST, SELECT,
/// FETCH, STORE, COPY, CREATE, APPEND, DELETE, LOGOUT. Prints one result
/// per line for the test to check; message bytes are hex-encoded.
const IMAPLIB: &str = r#"
import imaplib, ssl, sys
mode, port, cafile, user, password, folder = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=cafile)
assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
if mode == "ssl":
    m = imaplib.IMAP4_SSL("127.0.0.1", int(port), ssl_context=ctx, timeout=30)
else:
    m = imaplib.IMAP4("127.0.0.1", int(port), timeout=30)
    assert "STARTTLS" in m.capabilities, m.capabilities
    m.starttls(ssl_context=ctx)
    assert "STARTTLS" not in m.capabilities, m.capabilities

def ok(result):
    typ, data = result
    assert typ == "OK", (typ, data)
    return data

ok(m.login(user, password))
for line in ok(m.list()):
    print("LIST", line.decode())
print("EXISTS", ok(m.select("INBOX"))[0].decode())
data = ok(m.fetch("1", "(UID RFC822)"))
print("RFC822", data[0][1].hex())
print("STORE", ok(m.store("1", "+FLAGS", "(\\Flagged)"))[0].decode())
print("COPY", ok(m.copy("1", "Archive"))[0].decode())
ok(m.create(folder))
appended = b"From: alice@localhost\r\nSubject: appended by imaplib\r\n\r\nAppended " + mode.encode() + b"\r\n"
typ, data = m.append(folder, "(\\Seen)", imaplib.Time2Internaldate(1763726400), appended)
assert typ == "OK", (typ, data)
print("APPEND", data[0].decode())
print("SELECTED", ok(m.select(folder))[0].decode())
data = ok(m.fetch("1", "(FLAGS BODY.PEEK[])"))
assert data[0][1] == appended, data
print("FETCHED", data[0][0].decode())
ok(m.close())
ok(m.delete(folder))
names = [line.decode() for line in ok(m.list())]
assert not any(n.endswith(" " + folder) for n in names), names
typ, data = m.logout()
assert typ == "BYE", (typ, data)
print("DONE")
"#;

async fn imaplib(server: &Server, mode: &str, port: u16, folder: &str) -> Vec<String> {
    let cafile = cert(server);
    let stdout = run_ok(
        "python3",
        "python3",
        &[
            "-c",
            IMAPLIB,
            mode,
            &port.to_string(),
            cafile.to_str().expect("utf-8 path"),
            ALICE,
            PASSWORD,
            folder,
        ],
    )
    .await;
    String::from_utf8(stdout)
        .expect("utf-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn hex_decode(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn imaplib_starttls_and_ssl_sessions() {
    let (server, imap) = start().await;
    let infos = deliver(&server, &["one", "two"], 2).await;
    let raw = server.raw(ALICE, infos[0].uid).await;

    let runs = [
        ("starttls", imap.imap.port(), "Imaplib/StartTls"),
        ("ssl", imap.imaps.port(), "Imaplib-Ssl"),
    ];
    for (i, (mode, port, folder)) in runs.into_iter().enumerate() {
        let lines = imaplib(&server, mode, port, folder).await;
        let has = |l: &str| lines.iter().any(|x| x == l);
        assert!(has("LIST (\\HasNoChildren) \"/\" INBOX"), "{lines:?}");
        assert!(
            has("LIST (\\HasNoChildren \\Drafts) \"/\" Drafts"),
            "{lines:?}"
        );
        assert!(has("EXISTS 2"), "{lines:?}");
        let fetched = lines
            .iter()
            .find_map(|l| l.strip_prefix("RFC822 "))
            .unwrap_or_else(|| panic!("no RFC822 line: {lines:?}"));
        assert_eq!(hex_decode(fetched), raw, "{mode}: fetched bytes differ");
        let store = lines
            .iter()
            .find(|l| l.starts_with("STORE "))
            .expect("STORE line");
        assert!(store.contains("\\Flagged"), "{store}");
        assert!(store.contains("\\Seen"), "RFC822 sets \\Seen: {store}");
        assert!(
            lines.iter().any(|l| l.starts_with("APPEND [APPENDUID ")),
            "{mode}: {lines:?}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with("COPY [COPYUID ")),
            "{mode}: {lines:?}"
        );
        assert!(has("SELECTED 1"), "{lines:?}");
        let fetched = lines
            .iter()
            .find(|l| l.starts_with("FETCHED "))
            .expect("FETCHED line");
        assert!(fetched.contains("\\Seen"), "{fetched}");
        assert_eq!(lines.last().map(String::as_str), Some("DONE"));

        let archive = messages(&server, "Archive").await;
        assert_eq!(archive.len(), i + 1, "{mode}: one copy per run");
        assert_eq!(
            raw_in(&server, "Archive", archive[i].uid).await,
            raw,
            "the copy is the message"
        );
    }
    let inbox = messages(&server, "INBOX").await;
    assert!(has_flag(&inbox[0], "\\Flagged") && has_flag(&inbox[0], "\\Seen"));
    assert!(inbox[1].flags.is_empty(), "{:?}", inbox[1].flags);
    let id = server.account(ALICE).await;
    let names: Vec<String> = server
        .store
        .mailboxes(id)
        .await
        .expect("mailboxes")
        .into_iter()
        .map(|b| b.name)
        .collect();
    // CREATE made the parent `Imaplib`; DELETE of the child leaves it.
    assert!(
        names.contains(&"Imaplib".to_owned())
            && !names.contains(&"Imaplib/StartTls".to_owned())
            && !names.contains(&"Imaplib-Ssl".to_owned()),
        "{names:?}"
    );
}

// ---- curl ----

#[tokio::test(flavor = "multi_thread")]
async fn curl_list_fetch_tls_and_append() {
    let (server, imap) = start().await;
    let infos = deliver(&server, &["one", "two", "three"], 3).await;
    let user = format!("{ALICE}:{PASSWORD}");
    let plain = |path: &str| format!("imap://127.0.0.1:{}/{path}", imap.imap.port());

    // LIST of the top level.
    let listing = run_ok("curl", "curl", &["-sS", "--user", &user, &plain("")]).await;
    let listing = String::from_utf8(listing).expect("utf-8");
    for name in ["INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"] {
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with("* LIST (") && l.ends_with(&format!("\"/\" {name}"))),
            "{name} missing:\n{listing}"
        );
    }

    // One message by UID, byte for byte.
    let first = run_ok(
        "curl",
        "curl",
        &["-sS", "--user", &user, &plain("INBOX;UID=1")],
    )
    .await;
    assert_eq!(first, server.raw(ALICE, infos[0].uid).await);

    // STARTTLS required by the client (certificate not checked: -k).
    let second = run_ok(
        "curl",
        "curl",
        &[
            "-sS",
            "--ssl-reqd",
            "-k",
            "--user",
            &user,
            &plain("INBOX;UID=2"),
        ],
    )
    .await;
    assert_eq!(second, server.raw(ALICE, infos[1].uid).await);

    // Implicit TLS.
    let third = run_ok(
        "curl",
        "curl",
        &[
            "-sS",
            "-k",
            "--user",
            &user,
            &format!("imaps://127.0.0.1:{}/INBOX;UID=3", imap.imaps.port()),
        ],
    )
    .await;
    assert_eq!(third, server.raw(ALICE, infos[2].uid).await);

    // Upload is APPEND.
    let draft = message("curl draft", "Uploaded by curl.");
    let file = server.dir.path().join("curl-draft.eml");
    std::fs::write(&file, &draft).expect("write draft");
    run_ok(
        "curl",
        "curl",
        &[
            "-sS",
            "--ssl-reqd",
            "-k",
            "--user",
            &user,
            "-T",
            file.to_str().expect("utf-8 path"),
            &plain("Drafts"),
        ],
    )
    .await;
    let drafts = messages(&server, "Drafts").await;
    assert_eq!(drafts.len(), 1);
    assert_eq!(drafts[0].summary.subject.as_deref(), Some("curl draft"));
    assert_eq!(raw_in(&server, "Drafts", drafts[0].uid).await, draft);
}

// ---- mbsync ----

/// A temp dir with an `.mbsyncrc` syncing alice's whole account (STARTTLS,
/// the server's certificate trusted) with a maildir tree under `mail/`.
struct Mbsync {
    home: tempfile::TempDir,
}

impl Mbsync {
    fn new(server: &Server, imap: &ImapServer) -> Mbsync {
        let home = tempfile::tempdir().expect("temp dir");
        let mail = home.path().join("mail");
        std::fs::create_dir(&mail).expect("mail dir");
        let rc = format!(
            "IMAPAccount postern\n\
             Host 127.0.0.1\n\
             Port {port}\n\
             User {ALICE}\n\
             Pass \"{PASSWORD}\"\n\
             SSLType STARTTLS\n\
             CertificateFile {cert}\n\
             AuthMechs LOGIN\n\
             Timeout 30\n\
             \n\
             IMAPStore remote\n\
             Account postern\n\
             \n\
             MaildirStore local\n\
             Path {mail}/\n\
             Inbox {mail}/INBOX\n\
             SubFolders Verbatim\n\
             \n\
             Channel everything\n\
             Far :remote:\n\
             Near :local:\n\
             Patterns *\n\
             Create Both\n\
             Expunge Both\n\
             SyncState *\n",
            port = imap.imap.port(),
            cert = cert(server).display(),
            mail = mail.display(),
        );
        std::fs::write(home.path().join("mbsyncrc"), rc).expect("write mbsyncrc");
        Mbsync { home }
    }

    fn maildir(&self, folder: &str) -> PathBuf {
        self.home.path().join("mail").join(folder)
    }

    /// `mbsync -a` with the network traced; asserts exit 0 and returns the
    /// transcript.
    async fn sync(&self) -> String {
        let mut command = tokio::process::Command::new("mbsync");
        command
            .arg("-c")
            .arg(self.home.path().join("mbsyncrc"))
            .args(["-V", "-Dn", "-a"])
            .env("HOME", self.home.path());
        let out = output(command, "mbsync", "isync").await;
        let transcript = text(&out);
        assert!(
            out.status.success(),
            "mbsync exited with {}:\n{transcript}",
            out.status
        );
        transcript
    }

    /// Every message file of a folder (`cur` and `new`).
    fn files(&self, folder: &str) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for sub in ["cur", "new"] {
            let Ok(entries) = std::fs::read_dir(self.maildir(folder).join(sub)) else {
                continue;
            };
            for entry in entries {
                files.push(entry.expect("dir entry").path());
            }
        }
        files.sort();
        files
    }

    /// The file of `folder` whose Subject is `subject`.
    fn file_with_subject(&self, folder: &str, subject: &str) -> PathBuf {
        // Maildir files have bare LF line ends; mbsync converts.
        let wanted = format!("\nSubject: {subject}\n");
        self.files(folder)
            .into_iter()
            .find(|f| {
                String::from_utf8_lossy(&std::fs::read(f).expect("read message")).contains(&wanted)
            })
            .unwrap_or_else(|| panic!("no {subject:?} in {folder}: {:?}", self.files(folder)))
    }

    /// Every file name under `mail/`, with its folder (a snapshot to
    /// compare).
    fn snapshot(&self) -> Vec<String> {
        let mut all = Vec::new();
        let mut stack = vec![self.home.path().join("mail")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("read dir") {
                let path = entry.expect("dir entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else if !is_sync_state(&path) {
                    all.push(path.display().to_string());
                }
            }
        }
        all.sort();
        all
    }
}

/// mbsync's own bookkeeping files in a maildir.
fn is_sync_state(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(".mbsync") || n.starts_with(".uidvalidity"))
}

/// The maildir flags of a message file (after `:2,`).
fn maildir_flags(path: &Path) -> String {
    let name = path.file_name().and_then(|n| n.to_str()).expect("name");
    name.rsplit_once(":2,")
        .map(|(_, flags)| flags.to_owned())
        .unwrap_or_default()
}

/// Renames a message file to carry one more maildir flag (kept sorted, as
/// the maildir convention asks).
fn add_maildir_flag(path: &Path, flag: char) {
    let name = path.file_name().and_then(|n| n.to_str()).expect("name");
    let (base, flags) = name.rsplit_once(":2,").unwrap_or((name, ""));
    let mut flags: Vec<char> = flags.chars().chain([flag]).collect();
    flags.sort_unstable();
    flags.dedup();
    let flags: String = flags.into_iter().collect();
    let target = path
        .parent()
        .expect("folder")
        .join(format!("{base}:2,{flags}"));
    std::fs::rename(path, target).expect("rename");
}

/// Every message of every mailbox with its flags (a snapshot to compare).
async fn server_snapshot(server: &Server) -> Vec<(String, u32, Vec<String>)> {
    let id = server.account(ALICE).await;
    let mut all = Vec::new();
    for b in server.store.mailboxes(id).await.expect("mailboxes") {
        for m in messages(server, &b.name).await {
            all.push((b.name.clone(), m.uid.0, m.flags));
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn mbsync_two_way_sync() {
    let (server, imap) = start().await;
    deliver(&server, &["one", "two", "three"], 3).await;
    let mbsync = Mbsync::new(&server, &imap);

    // First run: everything comes down, every folder is created locally.
    let log = mbsync.sync().await;
    assert_eq!(mbsync.files("INBOX").len(), 3, "{log}");
    for folder in ["Sent", "Drafts", "Trash", "Junk", "Archive"] {
        assert!(
            mbsync.maildir(folder).join("cur").is_dir(),
            "{folder} not created locally:\n{log}"
        );
    }

    // Changes on both sides.
    add_maildir_flag(&mbsync.file_with_subject("INBOX", "two"), 'S');
    let draft = message("local draft", "Written offline.");
    let draft_lf = String::from_utf8(draft.clone())
        .expect("utf-8")
        .replace("\r\n", "\n");
    std::fs::write(
        mbsync
            .maildir("Drafts")
            .join("cur")
            .join("1763726400.local-draft:2,D"),
        draft_lf,
    )
    .expect("write local draft");
    let inbox = deliver(&server, &["four"], 4).await;
    let id = server.account(ALICE).await;
    server
        .store
        .store_flags(
            id,
            "INBOX",
            &[inbox[0].uid],
            FlagChange::Add,
            &["\\Flagged".to_owned()],
        )
        .await
        .expect("flag message 1");

    let log = mbsync.sync().await;
    assert_eq!(mbsync.files("INBOX").len(), 4, "{log}");
    mbsync.file_with_subject("INBOX", "four");
    let drafts = messages(&server, "Drafts").await;
    assert_eq!(drafts.len(), 1, "{log}");
    assert_eq!(drafts[0].summary.subject.as_deref(), Some("local draft"));
    assert!(has_flag(&drafts[0], "\\Draft"), "{:?}", drafts[0].flags);
    // mbsync adds an `X-TUID:` header to what it uploads; the rest is the
    // file, with CRLF line ends.
    let stored = String::from_utf8(raw_in(&server, "Drafts", drafts[0].uid).await).expect("utf-8");
    let without_tuid: String = stored
        .split_inclusive("\r\n")
        .filter(|l| !l.starts_with("X-TUID: "))
        .collect();
    assert_eq!(without_tuid.as_bytes(), &draft[..], "{stored}");
    let inbox = messages(&server, "INBOX").await;
    let two = inbox
        .iter()
        .find(|m| m.summary.subject.as_deref() == Some("two"))
        .expect("two on the server");
    assert!(has_flag(two, "\\Seen"), "{:?}\n{log}", two.flags);
    let one = mbsync.file_with_subject("INBOX", "one");
    assert!(
        maildir_flags(&one).contains('F'),
        "\\Flagged not synced: {}\n{log}",
        one.display()
    );

    // Third run: nothing left to do.
    let local = mbsync.snapshot();
    let remote = server_snapshot(&server).await;
    let log = mbsync.sync().await;
    assert_eq!(mbsync.snapshot(), local, "{log}");
    assert_eq!(server_snapshot(&server).await, remote, "{log}");

    // A message deleted locally is expunged on the server (`Expunge Both`).
    std::fs::remove_file(mbsync.file_with_subject("INBOX", "three")).expect("delete locally");
    let log = mbsync.sync().await;
    let subjects: Vec<Option<String>> = messages(&server, "INBOX")
        .await
        .into_iter()
        .map(|m| m.summary.subject.clone())
        .collect();
    assert_eq!(
        subjects,
        [Some("one"), Some("two"), Some("four")].map(|s| s.map(str::to_owned)),
        "{log}"
    );
    assert_eq!(mbsync.files("INBOX").len(), 3, "{log}");
}
