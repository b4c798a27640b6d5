//! Failure rules and chaos through the HTTP API, applied by smtpd in the
//! same process, as `postern up` runs them; and smtpd's refusals as
//! `rejected` events on the event stream.

use std::time::Duration;

use postern_tests::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// smtpd in capture mode and the HTTP API beside it, sharing rules and
/// events; open on loopback, as capture mode makes it.
async fn start() -> (Server, HttpServer) {
    let server = Server::start_with(|c| c.capture.enabled = true).await;
    let http = HttpServer::start_with(&server, |_| {}).await;
    (server, http)
}

async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"));
    (status, value)
}

async fn put(
    http: &HttpServer,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    let mut request = client().put(http.url(path)).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    json_of(request.send().await.unwrap()).await
}

async fn get(http: &HttpServer, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = client().get(http.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    json_of(request.send().await.unwrap()).await
}

/// One SMTP transaction up to RCPT; the RCPT reply's code.
async fn rcpt_code(server: &Server, to: &str) -> u16 {
    let (mut smtp, _) = SmtpClient::connect(server.smtp).await;
    assert_eq!(smtp.cmd("EHLO app.example").await.code, 250);
    assert_eq!(smtp.cmd("MAIL FROM:<app@example.org>").await.code, 250);
    let code = smtp.cmd(&format!("RCPT TO:<{to}>")).await.code;
    smtp.cmd("QUIT").await;
    code
}

#[tokio::test]
async fn a_rule_set_over_http_refuses_twice_then_lets_the_app_through() {
    let (server, http) = start().await;
    let (status, rules) = put(
        &http,
        "/api/v1/rules",
        None,
        json!([{
            "id": "greylist",
            "stage": "rcpt",
            "match": {"recipient": "customer@gmail.com"},
            "times": 2,
            "action": {"type": "reply", "code": 450, "enhanced": "4.2.0", "text": "try later"}
        }]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rules}");
    assert_eq!(rules[0]["id"], "greylist");
    assert_eq!(rules[0]["fired"], 0);

    assert_eq!(rcpt_code(&server, "other@gmail.com").await, 250);
    assert_eq!(rcpt_code(&server, "customer@gmail.com").await, 450);
    assert_eq!(rcpt_code(&server, "customer@gmail.com").await, 450);
    assert_eq!(rcpt_code(&server, "customer@gmail.com").await, 250);

    let (_, rules) = get(&http, "/api/v1/rules", None).await;
    assert_eq!(rules[0]["fired"], 2, "{rules}");
    let (_, log) = get(&http, "/api/v1/rules/log", None).await;
    let fired = log["fired"].as_array().unwrap();
    assert_eq!(fired.len(), 2, "{log}");
    assert_eq!(fired[0]["rule"], "greylist");
    assert_eq!(fired[0]["stage"], "rcpt");
    assert_eq!(fired[0]["address"], "customer@gmail.com");
    assert_ne!(fired[0]["session"], fired[1]["session"]);
    // Reading on from the last seen firing gives nothing new.
    let (_, later) = get(
        &http,
        &format!("/api/v1/rules/log?after={}", log["last"]),
        None,
    )
    .await;
    assert!(later["fired"].as_array().unwrap().is_empty(), "{later}");

    // A bad rule changes nothing.
    let (status, body) = put(
        &http,
        "/api/v1/rules",
        None,
        json!([{"stage": "rcpt", "action": {"type": "reply", "code": 250, "enhanced": "2.0.0", "text": "x"}}]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["Error"].as_str().is_some());
    let (_, rules) = get(&http, "/api/v1/rules", None).await;
    assert_eq!(rules.as_array().unwrap().len(), 1);
    let response = client()
        .delete(http.url("/api/v1/rules"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (_, rules) = get(&http, "/api/v1/rules", None).await;
    assert!(rules.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_sandbox_sets_only_its_own_rules() {
    let (server, http) = start().await;
    let sandbox = |r: reqwest::Response| async { json_of(r).await.1 };
    let a = sandbox(
        client()
            .post(http.url("/api/v1/sandboxes"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let b = sandbox(
        client()
            .post(http.url("/api/v1/sandboxes"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let (a_domain, a_token) = (a["domain"].as_str().unwrap(), a["token"].as_str().unwrap());
    let (b_domain, b_token) = (b["domain"].as_str().unwrap(), b["token"].as_str().unwrap());
    let refuse = json!([{
        "stage": "rcpt",
        "action": {"type": "reply", "code": 550, "enhanced": "5.1.1", "text": "no such user"}
    }]);
    // Without a match, a sandbox's rule is made to match its domain only.
    let (status, mine) = put(&http, "/api/v1/rules", Some(a_token), refuse.clone()).await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(mine[0]["match"]["sandbox"], a_domain);
    let (_, theirs) = put(&http, "/api/v1/rules", Some(b_token), refuse.clone()).await;
    assert_eq!(theirs[0]["match"]["sandbox"], b_domain);
    // Each sees its own; the admin (open access here) sees both.
    let (_, seen) = get(&http, "/api/v1/rules", Some(a_token)).await;
    assert_eq!(seen.as_array().unwrap().len(), 1);
    let (_, all) = get(&http, "/api/v1/rules", None).await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    // Setting another sandbox's rule is refused.
    let mut foreign = refuse.clone();
    foreign[0]["match"] = json!({"sandbox": b_domain});
    let (status, _) = put(&http, "/api/v1/rules", Some(a_token), foreign).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    assert_eq!(rcpt_code(&server, &format!("x@{a_domain}")).await, 550);
    assert_eq!(rcpt_code(&server, "x@elsewhere.example").await, 250);
    let (_, log) = get(&http, "/api/v1/rules/log", Some(b_token)).await;
    assert!(log["fired"].as_array().unwrap().is_empty(), "{log}");

    // Clearing with a's token leaves b's rule.
    let response = client()
        .delete(http.url("/api/v1/rules"))
        .bearer_auth(a_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(rcpt_code(&server, &format!("x@{a_domain}")).await, 250);
    assert_eq!(rcpt_code(&server, &format!("x@{b_domain}")).await, 550);
    // Chaos is the admin's alone.
    let (status, _) = get(&http, "/api/v1/chaos", Some(a_token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn mailpits_chaos_endpoint_sets_the_triggers() {
    let (server, http) = start().await;
    let (status, triggers) = get(&http, "/api/v1/chaos", None).await;
    assert_eq!(status, StatusCode::OK, "{triggers}");
    assert_eq!(triggers["Sender"]["Probability"], 0);
    let (status, triggers) = put(
        &http,
        "/api/v1/chaos",
        None,
        json!({"Sender": {"ErrorCode": 451, "Probability": 100}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{triggers}");
    assert_eq!(triggers["Sender"]["Probability"], 100);
    assert_eq!(triggers["Recipient"]["Probability"], 0);
    let (mut smtp, _) = SmtpClient::connect(server.smtp).await;
    assert_eq!(smtp.cmd("EHLO app.example").await.code, 250);
    assert_eq!(smtp.cmd("MAIL FROM:<app@example.org>").await.code, 451);
    // Mailpit's reset: a body without triggers puts them back to 0 %.
    let (_, triggers) = put(&http, "/api/v1/chaos", None, json!({})).await;
    assert_eq!(triggers["Sender"]["Probability"], 0);
    assert_eq!(smtp.cmd("MAIL FROM:<app@example.org>").await.code, 250);
    let (status, body) = put(
        &http,
        "/api/v1/chaos",
        None,
        json!({"Sender": {"ErrorCode": 200, "Probability": 50}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn smtpd_refusals_are_rejected_events() {
    // Normal mode: an unknown local user is refused at RCPT.
    let server = Server::start().await;
    let http = HttpServer::start_with(&server, |c| c.capture.enabled = true).await;
    let mut events = SseEvents::open(client().get(http.url("/api/v1/events"))).await;
    assert_eq!(rcpt_code(&server, "nobody@localhost").await, 550);
    let (name, _, data) = events.next().await;
    assert_eq!(name, "rejected", "{data}");
    assert_eq!(data["stage"], "rcpt");
    assert_eq!(data["code"], 550);
    assert_eq!(data["enhanced_code"], "5.1.1");
    assert_eq!(data["sender"], "app@example.org");
    assert_eq!(data["recipient"], "nobody@localhost");
    assert!(data["client"].as_str().unwrap().starts_with("127.0.0.1:"));

    // A rule's refusal at MAIL is one too, with the rule's codes.
    let (status, _) = put(
        &http,
        "/api/v1/rules",
        None,
        json!([{"stage": "mail", "action": {"type": "reply", "code": 421, "enhanced": "4.3.2", "text": "going down"}}]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (mut smtp, _) = SmtpClient::connect(server.smtp).await;
    assert_eq!(smtp.cmd("EHLO app.example").await.code, 250);
    assert_eq!(smtp.cmd("MAIL FROM:<app@example.org>").await.code, 421);
    let (name, _, data) = events.next().await;
    assert_eq!(name, "rejected", "{data}");
    assert_eq!(data["stage"], "mail");
    assert_eq!(data["code"], 421);
    assert_eq!(data["enhanced_code"], "4.3.2");
    assert_eq!(data["text"], "going down");
    // Commands outside the six stages (an unknown verb) are not events.
    assert_eq!(smtp.cmd("FROB").await.code, 500);
    assert!(events.quiet_for(Duration::from_millis(500)).await);
}
