//! TLS to the database: a private cluster with `ssl=on`, a server
//! certificate for 127.0.0.1 and localhost signed by a test CA, and
//! `hostssl` only in pg_hba.conf (plaintext refused). `postern up` with
//! `sslmode=require` and `[store] ca_file` delivers and reads mail;
//! without the CA, or with `sslmode=disable`, it stops at start with a
//! message that names the problem.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use postern_tests::pg_cluster::{PgCluster, PgSetup};
use postern_tests::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

struct TlsDatabase {
    cluster: PgCluster,
    /// The test CA's certificate (PEM).
    ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl TlsDatabase {
    fn start() -> TlsDatabase {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Postern test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().unwrap();
        let mut server_params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        server_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_cert.pem()).unwrap();
        let cluster = PgCluster::start_with(PgSetup {
            settings: vec![
                "ssl=on".into(),
                "ssl_cert_file=server.crt".into(),
                "ssl_key_file=server.key".into(),
            ],
            files: vec![
                ("server.crt".into(), server_cert.pem().into_bytes()),
                ("server.key".into(), server_key.serialize_pem().into_bytes()),
            ],
            hba: Some(
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n"
                    .into(),
            ),
        });
        TlsDatabase {
            cluster,
            ca_file,
            _dir: dir,
        }
    }

    fn url(&self, sslmode: &str) -> String {
        format!("{} sslmode={sslmode}", self.cluster.url())
    }
}

fn store_section(url: &str, ca_file: Option<&Path>) -> String {
    let mut section = format!("[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n");
    if let Some(ca) = ca_file {
        section.push_str(&format!("ca_file = \"{}\"\n", ca.display()));
    }
    section
}

/// `postern up` that is expected to stop at start: its exit status and
/// stderr (it is killed, and the test fails, if it still runs after 30 s).
fn up_fails(data_dir: &Path, vars: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut child = postern_command()
        .arg("--data-dir")
        .arg(data_dir)
        .arg("up")
        .env("POSTERN_LOG", "warn")
        .env("POSTERN_SMTP_LISTEN", "")
        .env("POSTERN_SMTP_SUBMISSION_LISTEN", "")
        .env("POSTERN_SMTP_SUBMISSIONS_LISTEN", "")
        .env("POSTERN_POP3_LISTEN", "")
        .env("POSTERN_POP3_POP3S_LISTEN", "")
        .env("POSTERN_IMAP_LISTEN", "")
        .env("POSTERN_IMAP_IMAPS_LISTEN", "")
        .env("POSTERN_HTTP_LISTEN", "")
        .envs(vars.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            use std::io::Read as _;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            return (status.code(), stderr);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("postern up still runs after 30 s; it should have stopped at start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn require_with_the_ca_delivers_and_reads_mail() {
    let db = tokio::task::block_in_place(TlsDatabase::start);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    std::fs::create_dir_all(&data).unwrap();
    let extra = store_section(&db.url("require"), Some(&db.ca_file));
    let node = tokio::task::block_in_place(|| Binary::start_with(&data, &extra));
    let config = data.with_extension("toml");
    let out = tokio::task::block_in_place(|| {
        postern_cli(
            &data,
            &[
                "--config",
                config.to_str().unwrap(),
                "user",
                "add",
                "alice@localhost",
                "--password-stdin",
            ],
            &format!("{PASSWORD}\n"),
        )
    });
    assert!(out.status.success(), "{out:?}");

    let (mut smtp, _) = SmtpClient::connect(node.smtp).await;
    smtp.cmd("EHLO client.example").await;
    let reply = smtp
        .send_mail(
            "sender@example.org",
            &["alice@localhost"],
            &message("over TLS", "to the database and back"),
        )
        .await;
    assert_eq!(reply.code, 250, "{}", reply.text());

    let (mut imap, _) = Pop3Client::connect(node.imap).await;
    let answer = imap
        .imap("a", &format!("LOGIN alice@localhost \"{PASSWORD}\""))
        .await;
    assert!(answer.last().unwrap().starts_with("a OK"), "{answer:?}");
    // Local delivery runs from the queue: wait for it.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = imap.imap("b", "STATUS INBOX (MESSAGES)").await;
        if answer.iter().any(|l| l.contains("MESSAGES 1")) {
            break;
        }
        assert!(Instant::now() < deadline, "not delivered: {answer:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    imap.imap("c", "SELECT INBOX").await;
    let fetched = imap.imap("d", "FETCH 1 BODY.PEEK[TEXT]").await;
    assert!(
        fetched.join("").contains("to the database and back"),
        "{fetched:?}"
    );

    // Every session of Postern's is encrypted (the server takes no
    // other, but say so plainly).
    let out = std::process::Command::new("psql")
        .args(["-X", "-At", "-d", &db.url("require"), "-c"])
        .arg(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_ssl s \
             JOIN pg_stat_activity a USING (pid) WHERE a.backend_type = 'client backend' \
             AND a.pid <> pg_backend_pid()",
        )
        .env("PGSSLMODE", "require")
        .output()
        .unwrap();
    let counts = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (tls, all) = counts.split_once('|').unwrap_or(("", ""));
    assert!(
        !all.is_empty() && all != "0" && tls == all,
        "{counts:?} {out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_untrusted_certificate_or_no_tls_stops_the_start() {
    let db = tokio::task::block_in_place(TlsDatabase::start);
    let dir = tempfile::tempdir().unwrap();

    // `require` without the CA: the system's roots do not know it.
    let url = db.url("require");
    let (code, stderr) = tokio::task::block_in_place(|| {
        up_fails(
            &dir.path().join("a"),
            &[
                ("POSTERN_STORE_BACKEND", "postgres"),
                ("POSTERN_STORE_URL", &url),
            ],
        )
    });
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot open the store in PostgreSQL")
            && stderr.contains("certificate is not trusted")
            && stderr.contains("UnknownIssuer")
            && stderr.contains("[store] ca_file"),
        "{stderr}"
    );

    // The CA given, but the certificate names neither this host.
    let ca = db.ca_file.to_str().unwrap();
    let other_host = url.replace("host=127.0.0.1", "host=127.0.0.2 hostaddr=127.0.0.1");
    let (code, stderr) = tokio::task::block_in_place(|| {
        up_fails(
            &dir.path().join("b"),
            &[
                ("POSTERN_STORE_BACKEND", "postgres"),
                ("POSTERN_STORE_URL", &other_host),
                ("POSTERN_STORE_CA_FILE", ca),
            ],
        )
    });
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("not valid for \"127.0.0.2\""), "{stderr}");

    // `disable` against a server that takes TLS only.
    let url = db.url("disable");
    let (code, stderr) = tokio::task::block_in_place(|| {
        up_fails(
            &dir.path().join("c"),
            &[
                ("POSTERN_STORE_BACKEND", "postgres"),
                ("POSTERN_STORE_URL", &url),
                ("POSTERN_STORE_CA_FILE", ca),
            ],
        )
    });
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot connect to PostgreSQL")
            && stderr.contains("pg_hba.conf")
            && stderr.contains("no encryption"),
        "{stderr}"
    );

    // A CA file that is not there is named.
    let url = db.url("require");
    let (code, stderr) = tokio::task::block_in_place(|| {
        up_fails(
            &dir.path().join("d"),
            &[
                ("POSTERN_STORE_BACKEND", "postgres"),
                ("POSTERN_STORE_URL", &url),
                ("POSTERN_STORE_CA_FILE", "/nonexistent/ca.pem"),
            ],
        )
    });
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("ca_file /nonexistent/ca.pem"), "{stderr}");

    // `prefer` (the default) with the CA: TLS, checked, and it works;
    // `store copy` goes the same way.
    let src = dir.path().join("e");
    std::fs::create_dir_all(&src).unwrap();
    let out = tokio::task::block_in_place(|| {
        postern_cli(
            &src,
            &["user", "add", "bob@localhost", "--password-stdin"],
            &format!("{PASSWORD}\n"),
        )
    });
    assert!(out.status.success(), "{out:?}");
    let url = db.cluster.url();
    let out = tokio::task::block_in_place(|| {
        postern_command()
            .arg("--data-dir")
            .arg(&src)
            .args(["store", "copy"])
            .env("POSTERN_STORE_URL", &url)
            .env("POSTERN_STORE_CA_FILE", ca)
            .output()
            .unwrap()
    });
    assert!(out.status.success(), "{out:?}");
    let out = tokio::task::block_in_place(|| {
        postern_command()
            .arg("--data-dir")
            .arg(dir.path().join("f"))
            .args(["user", "list"])
            .env("POSTERN_STORE_BACKEND", "postgres")
            .env("POSTERN_STORE_URL", &url)
            .env("POSTERN_STORE_CA_FILE", ca)
            .output()
            .unwrap()
    });
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("bob@localhost"),
        "{out:?}"
    );
}
