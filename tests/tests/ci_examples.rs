//! The README's "Use it in CI", black-box: its two examples (an app's
//! signup-mail tests in Python and JavaScript) run against the real
//! `postern up --capture` the way its GitHub Actions job runs them, with
//! only `SMTP_URL`, `SMTP_CA` and `MAIL_API` to go on: once over plain
//! SMTP on the MX port, once over STARTTLS on the submission port with
//! a login that needs decoding. An example that fails, or that runs
//! fewer tests than it has, fails these. The job's own start step runs
//! here too, and the job in the README is the file in examples/ci.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use postern_tests::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// `postern up --capture` on free ports.
fn start_capture(dir: &Path) -> Binary {
    Binary::start_up(&dir.join("data"), "", &["--capture"])
}

/// The two ways the examples are run: what each sets, and a name for
/// failure messages.
fn settings(server: &Binary) -> [(&'static str, Vec<(&'static str, String)>); 2] {
    let api = format!("http://{}", server.http);
    let cert = server.data_dir.join("tls/cert.pem");
    [
        (
            "plain SMTP on the MX port",
            vec![
                (
                    "SMTP_URL",
                    format!("smtp://app-user:app-secret@{}", server.smtp),
                ),
                // Empty is unset, whatever the caller's environment has.
                ("SMTP_CA", String::new()),
                ("MAIL_API", api.clone()),
            ],
        ),
        (
            "STARTTLS on the submission port",
            vec![
                (
                    "SMTP_URL",
                    format!("smtp://app%40acme.example:s%3Acret@{}", server.submission),
                ),
                ("SMTP_CA", cert.display().to_string()),
                ("MAIL_API", api),
            ],
        ),
    ]
}

fn show(output: &std::process::Output) -> String {
    format!(
        "exit {}\n--- stdout\n{}--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn the_python_example_passes_against_capture_mode() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_capture(dir.path());
    for (how, vars) in settings(&server) {
        let mut vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        vars.push(("PYTHONDONTWRITEBYTECODE", "1"));
        // As the job runs it.
        let output = run_tool_in(
            "python3",
            "python3",
            &["-m", "unittest", "discover", "-v", "-s", "examples/python"],
            &repo(),
            &vars,
        )
        .await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{how}: {}", show(&output));
        assert!(stderr.contains("\nRan 2 tests in "), "{how}: {stderr}");
        assert!(stderr.trim_end().ends_with("\nOK"), "{how}: {stderr}");
    }
}

#[tokio::test]
async fn the_javascript_example_passes_against_capture_mode() {
    let dir = repo().join("examples/js");
    assert!(
        dir.join("node_modules/nodemailer").exists(),
        "run `npm ci` in {} first (.ci/run does)",
        dir.display()
    );
    let temp = tempfile::tempdir().unwrap();
    let server = start_capture(temp.path());
    for (how, vars) in settings(&server) {
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let output = run_tool_in(
            "node",
            "nodejs",
            &["--test", "--test-reporter=tap", "signup-mail.test.mjs"],
            &dir,
            &vars,
        )
        .await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{how}: {}", show(&output));
        assert!(stdout.contains("\n# pass 2\n"), "{how}: {stdout}");
        assert!(stdout.contains("\n# fail 0\n"), "{how}: {stdout}");
    }
    // The examples' mail is there, as an app's would be: each welcome
    // went to the new user and, by Bcc, to the audit address.
    let response = reqwest::get(format!(
        "http://{}/api/v1/search?query=to:audit@acme.example",
        server.http
    ))
    .await
    .unwrap();
    let found: serde_json::Value = response.json().await.unwrap();
    assert_eq!(found["messages_count"], 4, "{found}");
}

/// One step of the job: its `env:` and its `run: |` script.
fn job_step(yaml: &str, name: &str) -> (Vec<(String, String)>, String) {
    let mut lines = yaml
        .lines()
        .skip_while(|l| l.trim() != format!("- name: {name}"))
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with("- ") && !l.trim().is_empty());
    let (mut env, mut script) = (Vec::new(), String::new());
    let mut in_env = false;
    for line in lines.by_ref() {
        match line.trim() {
            "env:" => in_env = true,
            "run: |" => break,
            entry if in_env => {
                let (key, value) = entry.split_once(": ").expect("KEY: value");
                env.push((key.to_owned(), value.to_owned()));
            }
            _ => {}
        }
    }
    for line in lines {
        script.push_str(line.get(10..).unwrap_or(""));
        script.push('\n');
    }
    assert!(!script.is_empty(), "no step {name:?} with a script");
    (env, script)
}

/// Stops a process group (`kill -KILL -- -PGID`) when dropped.
struct Group(u32);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0)])
            .status();
    }
}

#[tokio::test]
async fn the_jobs_start_step_starts_postern_in_capture_mode() {
    let yaml = std::fs::read_to_string(repo().join("examples/ci/github-actions.yml")).unwrap();
    let (env, script) = job_step(&yaml, "Start Postern in capture mode");
    assert!(script.contains("postern up --capture"), "{script}");
    // The runner's home, with the cached binary where the job puts it,
    // and its workspace.
    let home = tempfile::tempdir().unwrap();
    let bin = home.path().join(".postern-bin/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(binary_path("postern"), bin.join("postern")).unwrap();
    let workspace = tempfile::tempdir().unwrap();
    let github_env = workspace.path().join("github-env");

    // As GitHub runs a `run:` script, with the step's env and none of the
    // caller's POSTERN_ variables.
    let mut command = std::process::Command::new("bash");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("POSTERN_") {
            command.env_remove(name);
        }
    }
    command
        .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", &script])
        .current_dir(workspace.path())
        .env("HOME", home.path())
        .env("GITHUB_ENV", &github_env)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Free ports in place of the defaults, which another server on this
    // machine may hold.
    let http = free_port();
    for name in [
        "SMTP_LISTEN",
        "SMTP_SUBMISSION_LISTEN",
        "SMTP_SUBMISSIONS_LISTEN",
        "POP3_LISTEN",
        "POP3_POP3S_LISTEN",
        "IMAP_LISTEN",
        "IMAP_IMAPS_LISTEN",
    ] {
        command.env(
            format!("POSTERN_{name}"),
            format!("127.0.0.1:{}", free_port()),
        );
    }
    command.env("POSTERN_HTTP_LISTEN", format!("127.0.0.1:{http}"));
    // Its own process group: the postern it leaves running in the
    // background is stopped with it, whatever the checks find.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let child = command.spawn().expect("spawn bash");
    let _group = Group(child.id());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", show(&output));
    assert!(stdout.contains("postern: capture mode: "), "{stdout}");
    assert!(
        stdout.contains(&format!("postern: http listening on 127.0.0.1:{http}\n")),
        "{stdout}"
    );
    assert!(stdout.contains("postern: ready in "), "{stdout}");

    // The capture password, for later steps.
    let printed = stdout
        .lines()
        .find_map(|l| l.split("with password ").nth(1))
        .expect("capture password");
    assert_eq!(
        std::fs::read_to_string(&github_env).unwrap(),
        format!("CAPTURE_PASSWORD={printed}\n")
    );
    // The certificate where the job's SMTP_CA says.
    let ca = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("SMTP_CA: "))
        .expect("SMTP_CA in the job");
    let ca = ca.replace(
        "${{ github.workspace }}",
        &workspace.path().display().to_string(),
    );
    assert!(Path::new(&ca).exists(), "{ca}");
    // Capture mode's open API, where MAIL_API points (with this port).
    let answer = reqwest::get(format!("http://127.0.0.1:{http}/api/v1/cursor"))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
}

/// The README shows the job in examples/ci/github-actions.yml, exactly.
#[test]
fn the_readme_shows_the_job_file() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let job = std::fs::read_to_string(repo().join("examples/ci/github-actions.yml")).unwrap();
    let section = &readme[readme.find("## Use it in CI").expect("the CI section")..];
    let block = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```\n").next())
        .expect("a yaml block in the CI section");
    assert_eq!(block, job);
}
