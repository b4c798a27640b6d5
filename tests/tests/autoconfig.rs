//! Thunderbird autoconfig, black-box: the real `postern up` answers the
//! three places Thunderbird asks with the ports that really listen, and
//! `postern autoconfig` prints the line that points Thunderbird here.

use postern_tests::*;

/// GET `url`: the status and body.
async fn fetch(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// Parses the document with Python's XML parser (a real, strict one) and
/// returns `kind port socket` per server, in order.
async fn servers_of(xml: &str) -> Vec<String> {
    let script = r#"
import sys, xml.etree.ElementTree as ET
root = ET.fromstring(sys.argv[1])
assert root.tag == "clientConfig" and root.get("version") == "1.1"
p = root.find("emailProvider")
print(p.find("domain").text)
for s in p:
    if s.tag in ("incomingServer", "outgoingServer"):
        assert s.find("username").text == "%EMAILADDRESS%"
        assert s.find("authentication").text == "password-cleartext"
        print(s.tag, s.get("type"), s.find("hostname").text, s.find("port").text, s.find("socketType").text)
"#;
    run_tool_ok("python3", "python3", &["-c", script, xml])
        .await
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn thunderbird_finds_the_real_ports_in_all_three_places() {
    let dir = tempfile::tempdir().unwrap();
    let server = Binary::start(&dir.path().join("data"));
    let base = format!("http://{}", server.http);
    let expected = vec![
        "localhost".to_owned(),
        format!("incomingServer imap localhost {} SSL", server.imaps.port()),
        format!(
            "incomingServer imap localhost {} STARTTLS",
            server.imap.port()
        ),
        format!("incomingServer pop3 localhost {} SSL", server.pop3s.port()),
        format!(
            "incomingServer pop3 localhost {} STARTTLS",
            server.pop3.port()
        ),
        format!(
            "outgoingServer smtp localhost {} SSL",
            server.submissions.port()
        ),
        format!(
            "outgoingServer smtp localhost {} STARTTLS",
            server.submission.port()
        ),
    ];
    for path in [
        "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice%40localhost",
        "/mail/config-v1.1.xml?emailaddress=alice@localhost",
        "/autoconfig/v1.1/localhost",
    ] {
        let (status, xml) = fetch(&format!("{base}{path}")).await;
        assert_eq!(status, 200, "{path}: {xml}");
        assert_eq!(servers_of(&xml).await, expected, "{path}");
        // The MX port is not for clients.
        assert!(!xml.contains(&format!(">{}<", server.smtp.port())), "{xml}");
    }
    // A domain that is not ours gets no answer; nonsense is refused.
    let (status, _) = fetch(&format!("{base}/autoconfig/v1.1/example.org")).await;
    assert_eq!(status, 404);
    let (status, _) = fetch(&format!("{base}/mail/config-v1.1.xml?emailaddress=nobody")).await;
    assert_eq!(status, 400);
    let (status, _) = fetch(&format!("{base}/autoconfig/v1.1/a%3Cb")).await;
    assert_eq!(status, 400);
    // A domain added later is answered at once.
    let out = postern_cli(&server.data_dir, &["domain", "add", "example.test"], "");
    assert!(out.status.success(), "{out:?}");
    let (status, _) = fetch(&format!("{base}/autoconfig/v1.1/Example.Test")).await;
    assert_eq!(status, 200);

    // `postern autoconfig` points Thunderbird at this server.
    let out = std::process::Command::new(binary_path("postern"))
        .arg("--config")
        .arg(&server.config_path)
        .arg("autoconfig")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "user_pref(\"mailnews.auto_config_url\", \"{base}/autoconfig/v1.1/\");"
        )),
        "{text}"
    );
}
