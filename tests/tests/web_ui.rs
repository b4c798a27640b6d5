//! The web page (issue 12) from outside: the real `postern up`, driven in
//! Debian's headless Chromium by the Playwright scripts in tests/browser
//! (playwright-core, which downloads no browser), checked here on what
//! each script reports and, for webmail, over IMAP with Python's imaplib;
//! and the page's security with a plain HTTP client: the CSRF token on
//! every change, the session cookie over TLS, the login throttle shared
//! with IMAP, the Content-Security-Policy of the page and of message HTML.
//!
//! Chromium, node and `npm ci` in tests/browser are required: a missing
//! one fails these tests with what to install (`.ci/run` installs them),
//! it never skips them. Screenshots land in the target directory's
//! `tmp/web-ui/`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use postern_tests::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const ALICE: &str = "alice@localhost";
const BOB: &str = "bob@localhost";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// One browser at a time: three Chromiums at once on a small CI machine
/// make the scripts' waits a matter of luck.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// tests/browser, after checking that Chromium and playwright-core are
/// there (a clear failure if not, never a skip).
fn browser_dir() -> PathBuf {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: install Debian's `chromium` package (.ci/run does), or set CHROMIUM"
    );
    let dir = repo().join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run `npm ci` in {} (.ci/run does)",
        dir.display()
    );
    dir
}

/// Where a test's screenshots go (kept after the run, for a look).
fn screenshots(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("web-ui")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

fn show(output: &std::process::Output) -> String {
    format!(
        "exit {}\n--- stdout\n{}--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `node SCRIPT args…` in tests/browser; its report (the last line
/// of its output, JSON). A script that fails fails the test with its
/// output.
async fn run_script(script: &str, args: &[&str]) -> Value {
    let dir = browser_dir();
    let _one = BROWSER.lock().await;
    let mut all = vec![script];
    all.extend_from_slice(args);
    let output = run_tool_in("node", "nodejs", &all, &dir, &[]).await;
    assert!(output.status.success(), "{script}: {}", show(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{script}: {e}: {}", show(&output)))
}

fn assert_screenshot(report: &Value) {
    let path = report["screenshot"].as_str().expect("screenshot path");
    let png = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{path} is no PNG");
    assert!(png.len() > 10_000, "{path}: only {} bytes", png.len());
}

fn add_account(data: &Path, address: &str, password: &str) {
    let out = postern_cli(
        data,
        &["user", "add", address, "--password-stdin"],
        &format!("{password}\n"),
    );
    assert!(out.status.success(), "user add {address}: {out:?}");
}

/// Writes the config [`Binary::start`] then uses: every listener on a
/// free port of 127.0.0.1, with `http` added to its `[http]` table.
fn write_config(data: &Path, http: &str) {
    let mut text = String::from("log = \"warn\"\n");
    for (table, keys) in [
        (
            "smtp",
            &["listen", "submission_listen", "submissions_listen"][..],
        ),
        ("pop3", &["listen", "pop3s_listen"]),
        ("imap", &["listen", "imaps_listen"]),
        ("http", &["listen"]),
    ] {
        text.push_str(&format!("[{table}]\n"));
        for key in keys {
            text.push_str(&format!("{key} = [\"127.0.0.1:{}\"]\n", free_port()));
        }
    }
    text.push_str(http);
    std::fs::write(data.with_extension("toml"), text).expect("write config");
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// Sends `message` over plain SMTP (the MX port) and checks the 250.
async fn smtp_send(server: &Binary, from: &str, to: &[&str], message: &str) {
    let (mut smtp, greeting) = SmtpClient::connect(server.smtp).await;
    assert_eq!(greeting.code, 220);
    assert_eq!(smtp.cmd("EHLO test.example").await.code, 250);
    let reply = smtp.send_mail(from, to, message.as_bytes()).await;
    assert_eq!(reply.code, 250, "{reply:?}");
    smtp.cmd("QUIT").await;
}

/// Waits until `address` (Basic login) sees `count` messages.
async fn wait_for_total(server: &Binary, address: &str, password: &str, count: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body: Value = client()
            .get(format!("http://{}/api/v1/messages", server.http))
            .basic_auth(address, Some(password))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if body["total"] == count {
            return;
        }
        assert!(Instant::now() < deadline, "{address}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---- the fixture view ----

#[tokio::test]
async fn the_fixture_view_shows_mail_arriving_live_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // An account to release a message to: it arrives there through the
    // queue and local delivery.
    add_account(&data, "released@localhost", PASSWORD);
    let server = Binary::start_up(&data, "", &["--capture"]);
    let shots = screenshots("fixture");
    let base = format!("http://{}", server.http);
    let smtp = server.smtp.to_string();
    let report = run_script(
        "fixture.mjs",
        &[&base, &smtp, shots.to_str().unwrap(), "released@localhost"],
    )
    .await;

    // The message with a Bcc arrived as two rows, live, one per envelope
    // recipient, each listed under its envelope address.
    assert_eq!(report["rows"], 2, "{report}");
    assert_eq!(
        report["listedTo"],
        json!(["audit@example.net", "bob@example.com"]),
        "{report}"
    );
    assert_eq!(report["unreadBefore"], true, "{report}");
    assert_eq!(report["unreadAfter"], false, "opening marks read: {report}");
    assert_eq!(report["subject"], "Your order has shipped", "{report}");
    // The HTML tab shows the HTML part, in a frame that runs no script.
    assert_eq!(report["headline"], "Order 1234 shipped", "{report}");
    assert_eq!(report["htmlBold"], "Bob", "{report}");
    let sandbox = report["frameSandbox"].as_str().unwrap();
    assert!(
        !sandbox.contains("allow-scripts") && !sandbox.contains("allow-same-origin"),
        "{sandbox}"
    );
    // The envelope tab names the Bcc recipient the header does not.
    let envelope: Vec<&str> = report["envelope"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(envelope.contains(&"MAIL FROM<ann@example.org>"), "{report}");
    assert!(envelope.contains(&"RCPT TO<audit@example.net>"), "{report}");
    assert!(envelope.contains(&"RCPT TO<bob@example.com>"), "{report}");
    assert_eq!(report["transcriptHasRcpt"], true, "{report}");
    assert_eq!(
        report["text"], "Hello Bob, order 1234 is on its way.",
        "{report}"
    );
    assert_screenshot(&report);
    // Headers, raw, the .eml download.
    let headers = report["headers"].as_array().unwrap();
    assert!(headers.contains(&json!("Subject")), "{report}");
    assert!(headers.contains(&json!("Received")), "{report}");
    assert_eq!(report["rawHasBoundary"], true, "{report}");
    assert!(
        report["emlName"].as_str().unwrap().ends_with(".eml"),
        "{report}"
    );
    assert_eq!(report["emlHasSubject"], true, "{report}");
    // Marked unread, and still so on a fresh load.
    assert_eq!(report["unreadButton"], "Mark read", "{report}");
    assert_eq!(report["unreadAfterReload"], true, "{report}");
    // The attachment: marked in the list, listed, downloaded whole.
    assert_eq!(report["attachmentMark"], 1, "{report}");
    assert_eq!(report["orderAttachmentMark"], 0, "{report}");
    assert_eq!(report["attachments"], json!(["invoice-77.csv"]), "{report}");
    assert_eq!(report["attachmentName"], "invoice-77.csv", "{report}");
    assert_eq!(
        report["attachmentBody"], "item,amount\nwidget,12.50\n",
        "{report}"
    );
    assert_eq!(report["searchRows"], json!(["Invoice 77"]), "{report}");
    // Released through the queue to the account, and shown as it arrived.
    assert_eq!(
        report["releaseStatus"], "released to released@localhost",
        "{report}"
    );
    assert_eq!(
        report["releasedSubject"], "Your order has shipped",
        "{report}"
    );
    // Delete, then delete all: gone from the store, not just the page.
    assert_eq!(report["rowsAfterDelete"], 3, "{report}");
    assert_eq!(report["rowsAfterDeleteAll"], 0, "{report}");
    let body: Value = client()
        .get(format!("{base}/api/v1/messages"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["total"], 0, "{body}");
}

// ---- message HTML ----

#[tokio::test]
async fn message_html_runs_no_script_and_loads_remote_images_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let server = Binary::start_up(&dir.path().join("data"), "", &["--capture"]);
    let shots = screenshots("security");
    let base = format!("http://{}", server.http);
    let smtp = server.smtp.to_string();
    let report = run_script("security.mjs", &[&base, &smtp, shots.to_str().unwrap()]).await;
    // No request left before the reader asked: no script, handler,
    // refresh, stylesheet, frame or image.
    assert_eq!(report["beforeAsking"], json!([]), "{report}");
    assert_eq!(report["remoteNoteShown"], true, "{report}");
    // Asked: the two images and nothing else (no script ran meanwhile,
    // the form posted nowhere).
    assert_eq!(
        report["afterAsking"],
        json!(["/background.png", "/remote.png"]),
        "{report}"
    );
    assert_eq!(report["titleUnchanged"], true, "{report}");
    assert!(report["blocked"].as_u64().unwrap() > 0, "{report}");
    assert_screenshot(&report);

    // The policies behind it.
    let page = client().get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    for part in [
        "default-src 'self'",
        "script-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let script = client()
        .get(format!("{base}/ui/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.headers()["content-security-policy"], csp);
    for (query, images) in [
        ("", "img-src data:;"),
        ("?remote=1", "img-src data: http: https:;"),
    ] {
        let frame = client()
            .get(format!("{base}/api/v1/message/latest/html{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(frame.status(), StatusCode::OK);
        let csp = frame.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.starts_with("sandbox "), "{csp}");
        assert!(!csp.contains("allow-scripts") && !csp.contains("script-src"));
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains(images), "{csp}");
        let html = frame.text().await.unwrap();
        assert!(html.contains("id=\"hello\""), "{html}");
    }
}

// ---- webmail ----

/// Prints, as JSON, every message of INBOX, Archive, Sent and Trash:
/// subject, addresses, threading headers, flags, text, attachments.
const FOLDERS_PY: &str = r#"
import email, imaplib, json, sys
from email import policy
port, user, password = sys.argv[1:4]
m = imaplib.IMAP4("127.0.0.1", int(port), timeout=30)
m.login(user, password)
out = {}
for name in ["INBOX", "Archive", "Sent", "Trash"]:
    typ, _ = m.select(name, readonly=True)
    assert typ == "OK", (name, typ)
    typ, data = m.uid("SEARCH", None, "ALL")
    out[name] = []
    for uid in data[0].split():
        typ, parts = m.uid("FETCH", uid, "(FLAGS BODY.PEEK[])")
        meta, raw = parts[0]
        msg = email.message_from_bytes(raw, policy=policy.default)
        text = msg.get_body(("plain",))
        out[name].append({
            "subject": msg["Subject"], "from": msg["From"], "to": msg["To"],
            "in_reply_to": msg["In-Reply-To"], "references": msg["References"],
            "flags": sorted(f.decode() for f in imaplib.ParseFlags(meta) if f != b"\\Recent"),
            "text": text.get_content() if text else "",
            "attachments": [[a.get_filename(), a.get_content_type(), a.get_content()]
                            for a in msg.iter_attachments()],
        })
m.logout()
print(json.dumps(out))
"#;

async fn folders_over_imap(imap: SocketAddr, address: &str) -> Value {
    let out = run_tool_ok(
        "python3",
        "python3",
        &[
            "-c",
            FOLDERS_PY,
            &imap.port().to_string(),
            address,
            PASSWORD,
        ],
    )
    .await;
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[tokio::test]
async fn webmail_reads_flags_moves_and_sends_as_the_account_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_account(&data, ALICE, PASSWORD);
    add_account(&data, BOB, PASSWORD);
    let server = Binary::start(&data);
    smtp_send(
        &server,
        BOB,
        &[ALICE],
        "From: Bob <bob@localhost>\r\nTo: alice@localhost\r\nSubject: Plans for Friday\r\n\
         Message-ID: <plans-1@example.org>\r\nReferences: <earlier-0@example.org>\r\n\
         Date: Wed, 02 Dec 2026 09:00:00 +0000\r\n\r\nShall we meet on Friday at noon?\r\n",
    )
    .await;
    smtp_send(
        &server,
        "carol@example.org",
        &[ALICE],
        "From: Carol <carol@example.org>\r\nTo: alice@localhost\r\nSubject: Second note\r\n\
         Message-ID: <note-2@example.org>\r\nDate: Wed, 02 Dec 2026 09:05:00 +0000\r\n\r\nAnother note.\r\n",
    )
    .await;
    wait_for_total(&server, ALICE, PASSWORD, 2).await;
    let cursor: Value = client()
        .get(format!("http://{}/api/v1/cursor", server.http))
        .basic_auth(ALICE, Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let shots = screenshots("webmail");
    let base = format!("http://{}", server.http);
    let imap = server.imap.to_string();
    let report = run_script(
        "webmail.mjs",
        &[&base, &imap, ALICE, PASSWORD, shots.to_str().unwrap()],
    )
    .await;
    assert_eq!(
        report["wrongPassword"], "wrong address, password or token",
        "{report}"
    );
    assert_eq!(report["who"], ALICE, "{report}");
    // The event stream starts from what is there: one from 0 would first
    // replay every message of the account (10,000 events for a big one).
    assert_eq!(
        report["eventsAfter"],
        json!([cursor["cursor"].to_string()]),
        "{report}"
    );
    // The session cookie: HttpOnly and SameSite=Strict; not Secure over
    // plain HTTP (the browser would not send it back).
    assert_eq!(
        report["cookies"],
        json!([{"name": "postern_session", "httpOnly": true, "sameSite": "Strict", "secure": false}]),
        "{report}"
    );
    assert_eq!(
        report["folders"],
        json!(["INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"]),
        "{report}"
    );
    assert_eq!(report["inboxUnread"], "2", "{report}");
    assert_eq!(
        report["text"], "Shall we meet on Friday at noon?",
        "{report}"
    );
    assert_eq!(report["readInList"], true, "{report}");
    assert_eq!(report["flagButton"], "Unflag", "{report}");
    // What an IMAP client did showed on the page without a reload.
    assert_eq!(report["imapFlagShown"], true, "{report}");
    assert_eq!(report["imapAppendShown"], true, "{report}");
    assert_eq!(report["replyTo"], "Bob <bob@localhost>", "{report}");
    assert_eq!(report["replySubject"], "Re: Plans for Friday", "{report}");
    assert!(
        report["sentStatus"].as_str().unwrap().starts_with("sent"),
        "{report}"
    );
    assert_eq!(report["trashRows"], 0, "{report}");
    assert_eq!(report["sentAttachments"], json!(["agenda.txt"]), "{report}");
    assert_eq!(report["searchFound"], json!(["Third note"]), "{report}");
    assert_eq!(report["searchEmpty"], true, "{report}");
    assert_screenshot(&report);

    // What the page did, as an IMAP client sees it.
    let alice = folders_over_imap(server.imap, ALICE).await;
    let subjects = |folder: &str| -> Vec<String> {
        alice[folder]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["subject"].as_str().unwrap().to_owned())
            .collect()
    };
    // Moved to Archive, read and flagged there; the second note went to
    // Trash and from there for good; the filed note is unread again.
    assert_eq!(subjects("INBOX"), ["Third note"], "{alice}");
    assert_eq!(alice["INBOX"][0]["flags"], json!([]), "{alice}");
    assert_eq!(subjects("Archive"), ["Plans for Friday"], "{alice}");
    assert_eq!(
        alice["Archive"][0]["flags"],
        json!(["\\Flagged", "\\Seen"]),
        "{alice}"
    );
    assert_eq!(subjects("Trash"), Vec::<String>::new(), "{alice}");
    // The sent copy: from the account, threaded on the message answered,
    // with the text typed and the file attached.
    assert_eq!(subjects("Sent"), ["Re: Plans for Friday"], "{alice}");
    let sent = &alice["Sent"][0];
    assert_eq!(sent["flags"], json!(["\\Seen"]), "{alice}");
    assert_eq!(sent["from"], ALICE, "{alice}");
    assert_eq!(sent["to"], BOB, "{alice}");
    assert_eq!(sent["in_reply_to"], "<plans-1@example.org>", "{alice}");
    assert_eq!(
        sent["references"], "<earlier-0@example.org> <plans-1@example.org>",
        "{alice}"
    );
    let text = sent["text"].as_str().unwrap();
    assert!(
        text.starts_with("Friday works for me. Agenda attached."),
        "{text}"
    );
    assert!(
        text.contains("> Shall we meet on Friday at noon?"),
        "{text}"
    );
    assert_eq!(
        sent["attachments"],
        json!([["agenda.txt", "text/plain", "1. Plans\n2. Lunch\n"]]),
        "{alice}"
    );
    // Bob got it through the queue, as sent.
    let deadline = Instant::now() + Duration::from_secs(20);
    let bob = loop {
        let bob = folders_over_imap(server.imap, BOB).await;
        if !bob["INBOX"].as_array().unwrap().is_empty() || Instant::now() > deadline {
            break bob;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let got = &bob["INBOX"][0];
    assert_eq!(got["subject"], "Re: Plans for Friday", "{bob}");
    assert_eq!(got["in_reply_to"], sent["in_reply_to"], "{bob}");
    assert_eq!(got["attachments"], sent["attachments"], "{bob}");
}

// ---- login, CSRF, cookies, throttle ----

/// A web login: the cookie to send back and the CSRF token.
struct WebLogin {
    cookie: String,
    csrf: String,
    set_cookie: String,
}

async fn web_login(base: &str, body: Value) -> WebLogin {
    let response = client()
        .post(format!("{base}/api/v1/login"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "login {body}");
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let session: Value = response.json().await.unwrap();
    WebLogin {
        cookie,
        csrf: session["csrf_token"].as_str().unwrap().to_owned(),
        set_cookie,
    }
}

/// Every request that changes something (each `POST`, `PUT` and
/// `DELETE` route of the API, with a body that would work), for message
/// `id`.
fn changes(id: u64) -> Vec<(reqwest::Method, String, Option<Value>)> {
    use reqwest::Method;
    vec![
        (
            Method::PUT,
            "/api/v1/messages".into(),
            Some(json!({"IDs": [id.to_string()], "Read": true})),
        ),
        (
            Method::DELETE,
            "/api/v1/messages".into(),
            Some(json!({"IDs": [id.to_string()]})),
        ),
        (Method::DELETE, "/api/v1/search?query=plans".into(), None),
        (
            Method::PUT,
            format!("/api/v1/message/{id}/flags"),
            Some(json!({"Add": ["\\Flagged"]})),
        ),
        (
            Method::POST,
            format!("/api/v1/message/{id}/move"),
            Some(json!({"Mailbox": "Archive"})),
        ),
        (
            Method::POST,
            format!("/api/v1/message/{id}/release"),
            Some(json!({"To": [BOB]})),
        ),
        (
            Method::POST,
            "/api/v1/send".into(),
            Some(json!({"To": [{"Email": BOB}], "Subject": "forged", "Text": "x"})),
        ),
        (Method::POST, "/api/v1/sandboxes".into(), None),
        (
            Method::DELETE,
            "/api/v1/sandboxes/x.sandbox.test".into(),
            None,
        ),
        (Method::PUT, "/api/v1/rules".into(), Some(json!([]))),
        (Method::DELETE, "/api/v1/rules".into(), None),
        (Method::DELETE, "/api/v1/rules/log".into(), None),
        (Method::PUT, "/api/v1/chaos".into(), Some(json!({}))),
        (Method::POST, "/api/v1/logout".into(), None),
    ]
}

#[tokio::test]
async fn every_change_through_a_web_login_needs_its_csrf_token() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_account(&data, ALICE, PASSWORD);
    add_account(&data, BOB, PASSWORD);
    write_config(&data, "token = \"admin-token\"\n");
    let server = Binary::start(&data);
    smtp_send(
        &server,
        BOB,
        &[ALICE],
        "From: bob@localhost\r\nTo: alice@localhost\r\nSubject: Plans\r\n\r\nHello.\r\n",
    )
    .await;
    wait_for_total(&server, ALICE, PASSWORD, 1).await;
    let base = format!("http://{}", server.http);
    let id: u64 = {
        let body: Value = client()
            .get(format!("{base}/api/v1/messages"))
            .basic_auth(ALICE, Some(PASSWORD))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["messages"][0]["ID"].as_str().unwrap().parse().unwrap()
    };

    // An account's login and an admin's (a token login): with the cookie
    // alone, or a wrong token, or the right token from another site's
    // page, every change is refused, and nothing changes.
    for login in [
        json!({"username": ALICE, "password": PASSWORD}),
        json!({"token": "admin-token"}),
    ] {
        let session = web_login(&base, login.clone()).await;
        for (method, path, body) in changes(id) {
            for (token, origin) in [
                (None, None),
                (Some("wrong"), None),
                (Some(session.csrf.as_str()), Some("http://evil.example")),
            ] {
                let mut request = client()
                    .request(method.clone(), format!("{base}{path}"))
                    .header("Cookie", &session.cookie);
                if let Some(token) = token {
                    request = request.header("X-CSRF-Token", token);
                }
                if let Some(origin) = origin {
                    request = request.header("Origin", origin);
                }
                if let Some(body) = &body {
                    request = request.json(body);
                }
                let response = request.send().await.unwrap();
                let status = response.status();
                let text = response.text().await.unwrap();
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{login} {method} {path} token {token:?} origin {origin:?}: {text}"
                );
                let why = if origin.is_some() {
                    "another site"
                } else {
                    "X-CSRF-Token"
                };
                assert!(text.contains(why), "{method} {path}: {text}");
            }
        }
        // Reads need no token.
        let session_info: Value = client()
            .get(format!("{base}/api/v1/session"))
            .header("Cookie", &session.cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(session_info["csrf_token"], session.csrf.as_str());
    }
    let inbox = folders_over_imap(server.imap, ALICE).await;
    assert_eq!(inbox["INBOX"][0]["subject"], "Plans", "{inbox}");
    assert_eq!(inbox["INBOX"][0]["flags"], json!([]), "{inbox}");
    assert_eq!(inbox["Sent"], json!([]), "{inbox}");

    // Another account's login sees none of it, token or not.
    let bob = web_login(&base, json!({"username": BOB, "password": PASSWORD})).await;
    let as_bob = |method: reqwest::Method, path: String| {
        client()
            .request(method, format!("{base}{path}"))
            .header("Cookie", &bob.cookie)
            .header("X-CSRF-Token", &bob.csrf)
    };
    for request in [
        as_bob(reqwest::Method::GET, format!("/api/v1/message/{id}")),
        as_bob(reqwest::Method::PUT, format!("/api/v1/message/{id}/flags"))
            .json(&json!({"Add": ["\\Flagged"]})),
        as_bob(reqwest::Method::POST, format!("/api/v1/message/{id}/move"))
            .json(&json!({"Mailbox": "Trash"})),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
    // (A delete leaves out IDs it cannot see, as Mailpit's does; the
    // message is still there below.)
    let deleted = as_bob(reqwest::Method::DELETE, "/api/v1/messages".into())
        .json(&json!({"IDs": [id.to_string()]}))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
    let listed: Value = as_bob(
        reqwest::Method::GET,
        "/api/v1/mailboxes/INBOX/messages".into(),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(listed["total"], 0, "{listed}");

    // With the token, the same requests go through.
    let session = web_login(&base, json!({"username": ALICE, "password": PASSWORD})).await;
    let with_token = |method: reqwest::Method, path: &str| {
        client()
            .request(method, format!("{base}{path}"))
            .header("Cookie", &session.cookie)
            .header("X-CSRF-Token", &session.csrf)
    };
    let flagged = with_token(reqwest::Method::PUT, &format!("/api/v1/message/{id}/flags"))
        .json(&json!({"Add": ["\\Flagged"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(flagged.status(), StatusCode::OK);
    let moved = with_token(reqwest::Method::POST, &format!("/api/v1/message/{id}/move"))
        .json(&json!({"Mailbox": "Archive"}))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), StatusCode::OK);
    let sent = with_token(reqwest::Method::POST, "/api/v1/send")
        .json(&json!({"To": [{"Email": BOB}], "Subject": "with the token", "Text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        sent.status(),
        StatusCode::OK,
        "{}",
        sent.text().await.unwrap()
    );
    let out = with_token(reqwest::Method::POST, "/api/v1/logout")
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::OK);
    // Logged out: the cookie is worth nothing now.
    let after = client()
        .get(format!("{base}/api/v1/mailboxes"))
        .header("Cookie", &session.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    let alice = folders_over_imap(server.imap, ALICE).await;
    assert_eq!(
        alice["Archive"][0]["flags"],
        json!(["\\Flagged"]),
        "{alice}"
    );
    assert_eq!(alice["Sent"][0]["subject"], "with the token", "{alice}");

    // A login posted from another site's page is refused too.
    let response = client()
        .post(format!("{base}/api/v1/login"))
        .header("Origin", "http://evil.example")
        .json(&json!({"username": ALICE, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn the_session_cookie_is_secure_and_httponly_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_account(&data, ALICE, PASSWORD);
    let https = free_port();
    // An HTTPS listener beside the HTTP one.
    write_config(&data, &format!("https_listen = [\"127.0.0.1:{https}\"]\n"));
    let server = Binary::start(&data);
    assert!(
        server
            .stdout_lines
            .iter()
            .any(|l| l.starts_with(&format!("postern: https listening on 127.0.0.1:{https}"))),
        "{:?}",
        server.stdout_lines
    );
    let cert = server.data_dir.join("tls/cert.pem");
    let login = format!(r#"{{"username": "{ALICE}", "password": "{PASSWORD}"}}"#);
    let out = run_tool_ok(
        "curl",
        "curl",
        &[
            "-sS",
            "-i",
            "--cacert",
            cert.to_str().unwrap(),
            "-H",
            "Content-Type: application/json",
            "--data",
            &login,
            &format!("https://localhost:{https}/api/v1/login"),
        ],
    )
    .await;
    let set_cookie = out
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("{out}"));
    for part in ["postern_session=", "HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(set_cookie.contains(part), "{set_cookie}");
    }
    // Over plain HTTP the browser would drop a Secure cookie: none there.
    let plain = web_login(
        &format!("http://{}", server.http),
        json!({"username": ALICE, "password": PASSWORD}),
    )
    .await;
    assert!(
        plain.set_cookie.contains("HttpOnly"),
        "{}",
        plain.set_cookie
    );
    assert!(!plain.set_cookie.contains("Secure"), "{}", plain.set_cookie);
}

/// How long `LOGIN` takes on a fresh IMAP connection, and its reply.
async fn imap_login(imap: SocketAddr, password: &str) -> (Duration, String) {
    let (mut c, greeting) = Pop3Client::connect(imap).await;
    assert!(greeting.starts_with("* OK"), "{greeting}");
    let started = Instant::now();
    let reply = c
        .imap("a", &format!("LOGIN {ALICE} \"{password}\""))
        .await
        .pop()
        .unwrap();
    (started.elapsed(), reply)
}

/// How long a web login takes, and its status.
async fn timed_web_login(base: &str, password: &str) -> (Duration, StatusCode) {
    let started = Instant::now();
    let response = client()
        .post(format!("{base}/api/v1/login"))
        .json(&json!({"username": ALICE, "password": password}))
        .send()
        .await
        .unwrap();
    (started.elapsed(), response.status())
}

#[tokio::test]
async fn the_web_login_shares_the_login_throttle_with_imap() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_account(&data, ALICE, PASSWORD);
    // From the first failure on, the next attempt waits 2 s.
    let server = Binary::start_with(
        &data,
        "[auth]\nfailures_before_delay = 1\ndelay_step_secs = 2\nmax_delay_secs = 2\n",
    );
    let base = format!("http://{}", server.http);
    let delayed = Duration::from_millis(1500);

    let (took, status) = timed_web_login(&base, PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    assert!(took < delayed, "no failures, no delay: {took:?}");
    // A wrong password on the page delays the next IMAP login…
    let (_, status) = timed_web_login(&base, "wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (took, reply) = imap_login(server.imap, PASSWORD).await;
    assert!(reply.starts_with("a OK"), "{reply}");
    assert!(
        took >= delayed,
        "IMAP login after a failed web login: {took:?}"
    );
    // …whose success clears it; a wrong IMAP password delays the page.
    let (took, reply) = imap_login(server.imap, "wrong").await;
    assert!(reply.starts_with("a NO"), "{reply}");
    assert!(took < delayed, "{took:?}");
    let (took, status) = timed_web_login(&base, PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        took >= delayed,
        "web login after a failed IMAP login: {took:?}"
    );
}
