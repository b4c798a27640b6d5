//! `postern up` configured by environment variables alone, as a container
//! or a CI job starts it: every config key is also `POSTERN_<SECTION>_<KEY>`
//! (or `POSTERN_<KEY>` at the top level).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use postern_tests::{
    free_port, postern_cli, postern_command, Binary, Pop3Client, SmtpClient, PASSWORD,
};

/// Runs `postern up` with `vars` and expects it to fail at once; returns
/// its stderr.
fn failed_start(vars: &[(&str, &str)]) -> String {
    let mut child = postern_command()
        .arg("up")
        .envs(vars.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run postern up");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("postern up with {vars:?} did not stop");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("output");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The data dir inside `dir`, with the account `a@localhost`.
fn data_dir(dir: &Path) -> String {
    let data = dir.join("data");
    let out = postern_cli(
        &data,
        &["user", "add", "a@localhost", "--password-stdin"],
        PASSWORD,
    );
    assert!(out.status.success(), "{out:?}");
    data.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_setting_from_the_environment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = data_dir(dir.path());
    let smtp = format!(r#"["127.0.0.1:{}"]"#, free_port());
    // The comma-separated form of a list.
    let pop3 = format!("127.0.0.1:{}", free_port());
    let imap = format!("127.0.0.1:{}", free_port());
    let server = tokio::task::block_in_place(|| {
        Binary::start_env(&[
            ("POSTERN_DATA_DIR", &data),
            ("POSTERN_LOG", "warn"),
            ("POSTERN_HOSTNAME", "mx.env.test"),
            ("POSTERN_SMTP_LISTEN", &smtp),
            ("POSTERN_SMTP_SUBMISSION_LISTEN", "[]"),
            ("POSTERN_SMTP_SUBMISSIONS_LISTEN", ""),
            ("POSTERN_SMTP_MAX_MESSAGE_SIZE", "1000"),
            ("POSTERN_SMTP_MAX_RECIPIENTS", "1"),
            ("POSTERN_POP3_LISTEN", &pop3),
            ("POSTERN_POP3_POP3S_LISTEN", ""),
            ("POSTERN_IMAP_LISTEN", &imap),
            ("POSTERN_IMAP_IMAPS_LISTEN", ""),
            ("POSTERN_HTTP_LISTEN", ""),
            // The command line's own (`up --capture`), not a config key.
            ("POSTERN_CAPTURE", "1"),
        ])
    });
    assert!(
        server
            .stdout_lines
            .iter()
            .any(|l| l.starts_with("postern: capture mode")),
        "{:?}",
        server.stdout_lines
    );
    // Only the listeners the variables name, on their ports.
    let listening: Vec<&String> = server
        .stdout_lines
        .iter()
        .filter(|l| l.contains("listening on"))
        .collect();
    assert_eq!(listening.len(), 3, "{listening:?}");
    assert_eq!(format!(r#"["{}"]"#, server.smtp), smtp);
    assert_eq!(server.pop3.to_string(), pop3);
    assert_eq!(server.imap.to_string(), imap);
    assert!(server.stdout_lines.iter().any(|l| l.contains(&data)));

    let (mut c, greeting) = SmtpClient::connect(server.smtp).await;
    assert_eq!(greeting.code, 220);
    assert!(greeting.text().starts_with("mx.env.test "), "{greeting:?}");
    let ehlo = c.cmd("EHLO client.test").await;
    assert!(ehlo.lines.iter().any(|l| l == "SIZE 1000"), "{ehlo:?}");
    assert_eq!(c.cmd("MAIL FROM:<a@b.test> SIZE=2000").await.code, 552);
    assert_eq!(c.cmd("MAIL FROM:<a@b.test>").await.code, 250);
    assert_eq!(c.cmd("RCPT TO:<a@localhost>").await.code, 250);
    let second = c.cmd("RCPT TO:<a@localhost>").await;
    assert_eq!(second.code, 452, "{second:?}");

    let (_pop3, greeting) = Pop3Client::connect(server.pop3).await;
    assert!(greeting.starts_with("+OK"), "{greeting}");
    let (_imap, greeting) = Pop3Client::connect(server.imap).await;
    assert!(greeting.starts_with("* OK"), "{greeting}");
}

/// `POSTERN_CONFIG` still names the file; variables win over it, and
/// `--data-dir` over both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_override_the_config_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("postern.toml");
    let port = free_port();
    std::fs::write(
        &config,
        format!(
            "hostname = \"file.test\"\ndata_dir = \"/nonexistent/by-file\"\nlog = \"warn\"\n[smtp]\nlisten = [\"127.0.0.1:{port}\"]\nsubmission_listen = []\nsubmissions_listen = []\nmax_recipients = 1\n[pop3]\nlisten = []\npop3s_listen = []\n[imap]\nlisten = []\nimaps_listen = []\n"
        ),
    )
    .expect("write config");
    let data = data_dir(dir.path());
    let config_text = config.display().to_string();
    let server = tokio::task::block_in_place(|| {
        Binary::start_env(&[
            ("POSTERN_CONFIG", &config_text),
            ("POSTERN_DATA_DIR", &data),
            ("POSTERN_HOSTNAME", "env.test"),
            ("POSTERN_HTTP_LISTEN", ""),
        ])
    });
    assert_eq!(server.smtp.port(), port);
    assert!(
        Path::new(&data).join("tls").exists(),
        "data dir from the environment"
    );
    let (mut c, greeting) = SmtpClient::connect(server.smtp).await;
    assert!(greeting.text().starts_with("env.test "), "{greeting:?}");
    assert_eq!(c.cmd("EHLO client.test").await.code, 250);
    assert_eq!(c.cmd("MAIL FROM:<a@b.test>").await.code, 250);
    assert_eq!(c.cmd("RCPT TO:<a@localhost>").await.code, 250);
    // The file's key the variables left alone.
    assert_eq!(c.cmd("RCPT TO:<a@localhost>").await.code, 452);
}

#[test]
fn unknown_variables_and_bad_values_stop_the_start_and_are_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = data_dir(dir.path());
    let stderr = failed_start(&[
        ("POSTERN_DATA_DIR", &data),
        ("POSTERN_SMTP_MAX_RECIPIENTZ", "7"),
    ]);
    assert!(stderr.contains("POSTERN_SMTP_MAX_RECIPIENTZ"), "{stderr}");
    let stderr = failed_start(&[
        ("POSTERN_DATA_DIR", &data),
        ("POSTERN_SMTP_MAX_RECIPIENTS", "many"),
    ]);
    assert!(stderr.contains("POSTERN_SMTP_MAX_RECIPIENTS"), "{stderr}");
    assert!(stderr.contains("many"), "{stderr}");
    let stderr = failed_start(&[
        ("POSTERN_DATA_DIR", &data),
        ("POSTERN_IMAP_LISTEN", "127.0.0.1"),
    ]);
    assert!(stderr.contains("POSTERN_IMAP_LISTEN"), "{stderr}");
    // Nothing was started: no TLS certificate made.
    assert!(!Path::new(&data).join("tls").exists());
}

/// The log is plain text when it goes to a file or a pipe: no ANSI colour
/// codes (`\x1b[`) for a log collector to choke on.
#[test]
fn the_log_into_a_pipe_has_no_colour_codes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut child = postern_command()
        .arg("up")
        .envs([
            ("POSTERN_DATA_DIR", data.to_str().unwrap()),
            ("POSTERN_LOG", "info"),
            ("POSTERN_SMTP_LISTEN", "127.0.0.1:0"),
            ("POSTERN_SMTP_SUBMISSION_LISTEN", ""),
            ("POSTERN_SMTP_SUBMISSIONS_LISTEN", ""),
            ("POSTERN_POP3_LISTEN", ""),
            ("POSTERN_POP3_POP3S_LISTEN", ""),
            ("POSTERN_IMAP_LISTEN", ""),
            ("POSTERN_IMAP_IMAPS_LISTEN", ""),
            ("POSTERN_HTTP_LISTEN", ""),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run postern up");
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while std::io::BufRead::read_line(&mut stdout, &mut line).unwrap_or(0) > 0 {
        if line.starts_with("postern: ready") {
            break;
        }
        line.clear();
    }
    let _ = child.kill();
    let output = child.wait_with_output().expect("output");
    let log = String::from_utf8_lossy(&output.stderr);
    // The first start makes a certificate, and says so at info level.
    assert!(log.contains("self-signed"), "{log}");
    assert!(!log.contains('\u{1b}'), "{log:?}");
}
