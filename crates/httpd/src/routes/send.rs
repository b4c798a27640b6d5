//! `POST /api/v1/send`: Mailpit's send endpoint, and the page's compose
//! form. The body is Mailpit's `SendRequest`:
//!
//! ```json
//! {"From": {"Email": "a@x", "Name": "A"}, "To": [{"Email": "b@y", "Name": ""}],
//!  "Cc": [..], "Bcc": ["c@z"], "ReplyTo": [..], "Subject": "…", "Text": "…",
//!  "HTML": "…", "Attachments": [{"Content": "<base64>", "Filename": "f.pdf",
//!  "ContentType": "", "ContentID": ""}], "Headers": {"In-Reply-To": "<id>"},
//!  "Tags": ["keyword"]}
//! ```
//!
//! answered with `{"ID": "…"}`. The message is built with mail-builder
//! (a `Date`, a new `Message-ID` unless `Headers` gives one; `Bcc` is an
//! envelope recipient only, never a header of what is sent). Then:
//!
//! - In capture mode, it is captured as smtpd captures mail: a copy per
//!   recipient, with an envelope (`role` `http`), nothing relayed, as
//!   Mailpit stores what its send endpoint gets. `ID` is the first
//!   recipient's copy. A sandbox may send only to its own domain.
//! - Otherwise only an account's login may send, under the submission
//!   policy smtpd applies to an authenticated client: the envelope sender
//!   (`From`) must be one of the account's addresses or aliases unless
//!   `[relay] require_sender_login_match = false`, and local recipients
//!   must exist. It is queued with the account as its AUTH user (the
//!   queue manager delivers or relays it, as if sent on port 587), and a
//!   copy with its `Bcc` goes to the account's Sent folder, marked
//!   `\Seen`; `ID` is that copy.
//!
//! `Tags` become IMAP keywords of the stored copies. The body may be as
//! large as the largest message smtpd takes, base64 included.

#![allow(non_snake_case)]

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::{Extension, Json};
use base64::Engine as _;
use mail_builder::headers::address::Address;
use mail_builder::headers::date::Date;
use mail_builder::headers::text::Text;
use mail_builder::MessageBuilder;
use serde::{Deserialize, Serialize};
use smtpd::policy::{self, Verdict};
use store::{
    AccountId, ArrivalScope, BodyType, EnvelopeRecipient, FlagChange, NewEnvelope,
    NewQueuedMessage, SmtpSessionStart,
};

use super::message::valid_address;
use crate::access::{Caller, ConnInfo, Identity};
use crate::error::{ApiError, ApiResult};
use crate::extract::json_body;
use crate::AppState;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AddressIn {
    Email: String,
    Name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AttachmentIn {
    Content: String,
    Filename: String,
    ContentType: String,
    ContentID: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SendRequest {
    From: Option<AddressIn>,
    To: Vec<AddressIn>,
    Cc: Vec<AddressIn>,
    Bcc: Vec<String>,
    ReplyTo: Vec<AddressIn>,
    Subject: String,
    Text: String,
    HTML: String,
    Attachments: Vec<AttachmentIn>,
    Headers: BTreeMap<String, String>,
    Tags: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Sent {
    ID: String,
}

/// Header fields the request's own fields write; `Headers` may not.
const RESERVED: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "subject",
    "date",
    "sender",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
    "return-path",
    "received",
];

/// A field name as RFC 5322 3.6.8 allows: printable ASCII but `:`.
fn valid_field_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 76
        && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

/// A content type for a file that came without one.
fn guess_type(filename: &str) -> &'static str {
    let ext = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" => "text/plain",
        "html" | "htm" => "text/html",
        "csv" => "text/csv",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "zip" => "application/zip",
        "json" => "application/json",
        "ics" => "text/calendar",
        _ => "application/octet-stream",
    }
}

/// `<id>`, `id` → `id`.
fn bare_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned()
}

/// What the request asks for, checked.
pub struct Draft {
    pub from: (String, String),
    pub to: Vec<(String, String)>,
    pub cc: Vec<(String, String)>,
    pub bcc: Vec<String>,
    pub reply_to: Vec<(String, String)>,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub attachments: Vec<(String, String, String, Vec<u8>)>,
    pub headers: Vec<(String, String)>,
    pub tags: Vec<String>,
}

impl Draft {
    /// Every envelope recipient: To, Cc, Bcc, once each.
    pub fn recipients(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for address in self
            .to
            .iter()
            .chain(&self.cc)
            .map(|(_, a)| a)
            .chain(&self.bcc)
        {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(address)) {
                out.push(address.clone());
            }
        }
        out
    }

    /// The message, with a `Bcc:` field (the sender's copy) or without.
    pub fn build(&self, message_id: &str, date: i64, with_bcc: bool) -> Vec<u8> {
        let list = |items: &[(String, String)]| -> Vec<Address<'static>> {
            items
                .iter()
                .map(|(name, email)| {
                    Address::new_address((!name.is_empty()).then(|| name.clone()), email.clone())
                })
                .collect()
        };
        let mut builder = MessageBuilder::new()
            .from(Address::new_address(
                (!self.from.0.is_empty()).then(|| self.from.0.clone()),
                self.from.1.clone(),
            ))
            .subject(self.subject.clone())
            .date(Date::new(date))
            .message_id(message_id.to_owned());
        if !self.to.is_empty() {
            builder = builder.to(list(&self.to));
        }
        if !self.cc.is_empty() {
            builder = builder.cc(list(&self.cc));
        }
        if with_bcc && !self.bcc.is_empty() {
            let bcc: Vec<Address<'static>> = self
                .bcc
                .iter()
                .map(|a| Address::new_address(None::<String>, a.clone()))
                .collect();
            builder = builder.bcc(bcc);
        }
        if !self.reply_to.is_empty() {
            builder = builder.reply_to(list(&self.reply_to));
        }
        for (name, value) in &self.headers {
            let lower = name.to_ascii_lowercase();
            builder = match lower.as_str() {
                "in-reply-to" => builder.in_reply_to(bare_id(value)),
                "references" => builder.references(
                    value
                        .split_whitespace()
                        .map(bare_id)
                        .filter(|id| !id.is_empty())
                        .collect::<Vec<_>>(),
                ),
                _ => builder.header(name.clone(), Text::new(value.clone())),
            };
        }
        if !self.text.is_empty() || self.html.is_empty() {
            builder = builder.text_body(self.text.clone());
        }
        if !self.html.is_empty() {
            builder = builder.html_body(self.html.clone());
        }
        for (content_type, filename, cid, bytes) in &self.attachments {
            builder = if cid.is_empty() {
                builder.attachment(content_type.clone(), filename.clone(), bytes.clone())
            } else {
                builder.inline(content_type.clone(), cid.clone(), bytes.clone())
            };
        }
        builder.write_to_vec().unwrap_or_default()
    }
}

fn check_address(field: &str, address: &str) -> ApiResult<String> {
    let address = address.trim();
    if !valid_address(address) {
        return Err(ApiError::bad_request(format!(
            "{field}: invalid address {address:?}"
        )));
    }
    Ok(address.to_owned())
}

fn one_line(field: &str, text: &str) -> ApiResult<String> {
    if text.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
        return Err(ApiError::bad_request(format!(
            "{field}: line breaks are not allowed"
        )));
    }
    Ok(text.trim().to_owned())
}

fn named(field: &str, list: &[AddressIn]) -> ApiResult<Vec<(String, String)>> {
    list.iter()
        .map(|a| Ok((one_line(field, &a.Name)?, check_address(field, &a.Email)?)))
        .collect()
}

/// Checks a request, `default_from` standing in for a missing `From`.
pub fn draft(body: SendRequest, default_from: Option<&str>) -> ApiResult<Draft> {
    let from = match (&body.From, default_from) {
        (Some(f), _) if !f.Email.trim().is_empty() => {
            (one_line("From", &f.Name)?, check_address("From", &f.Email)?)
        }
        (_, Some(address)) => (String::new(), address.to_owned()),
        _ => return Err(ApiError::bad_request("From: a sender address is required")),
    };
    let mut headers = Vec::new();
    for (name, value) in &body.Headers {
        if !valid_field_name(name) {
            return Err(ApiError::bad_request(format!(
                "Headers: invalid field name {name:?}"
            )));
        }
        if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(ApiError::bad_request(format!(
                "Headers: {name} is set by its own field of the request"
            )));
        }
        headers.push((name.clone(), one_line(&format!("Headers {name}"), value)?));
    }
    let mut attachments = Vec::new();
    for a in &body.Attachments {
        let filename = one_line("Attachments Filename", &a.Filename)?;
        if filename.is_empty() {
            return Err(ApiError::bad_request("Attachments: Filename is required"));
        }
        let compact: String = a.Content.split_ascii_whitespace().collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|_| {
                ApiError::bad_request(format!("Attachments: {filename}: Content is not base64"))
            })?;
        let content_type = match one_line("Attachments ContentType", &a.ContentType)? {
            t if t.is_empty() => guess_type(&filename).to_owned(),
            t if t.contains('/') && !t.contains(char::is_whitespace) => t,
            t => {
                return Err(ApiError::bad_request(format!(
                    "Attachments: invalid ContentType {t:?}"
                )))
            }
        };
        let cid = bare_id(&one_line("Attachments ContentID", &a.ContentID)?);
        attachments.push((content_type, filename, cid, bytes));
    }
    let draft = Draft {
        from,
        to: named("To", &body.To)?,
        cc: named("Cc", &body.Cc)?,
        bcc: body
            .Bcc
            .iter()
            .map(|a| check_address("Bcc", a))
            .collect::<ApiResult<_>>()?,
        reply_to: named("ReplyTo", &body.ReplyTo)?,
        subject: one_line("Subject", &body.Subject)?,
        text: body.Text,
        html: body.HTML,
        attachments,
        headers,
        tags: body.Tags,
    };
    if draft.recipients().is_empty() {
        return Err(ApiError::bad_request(
            "To, Cc or Bcc: at least one recipient is needed",
        ));
    }
    Ok(draft)
}

/// A new Message-ID for mail this server writes.
fn new_message_id(hostname: &str) -> String {
    let mut bytes = [0u8; 12];
    let _ = getrandom::fill(&mut bytes);
    format!(
        "{}.{}@{}",
        chrono::Utc::now().timestamp(),
        hex::encode(bytes),
        hostname
    )
}

fn session_start(info: &ConnInfo, now: i64) -> SmtpSessionStart {
    SmtpSessionStart {
        client: info.peer.to_string(),
        role: "http".to_owned(),
        started_at: now,
    }
}

/// `POST /api/v1/send`.
pub async fn send(
    State(state): State<Arc<AppState>>,
    Extension(info): Extension<ConnInfo>,
    caller: Caller,
    request: Request,
) -> ApiResult<Json<Sent>> {
    let config = &state.ctx.shared.config;
    // Room for the largest message smtpd takes, base64 and JSON around it.
    let limit = usize::try_from(config.smtp.max_message_size.saturating_mul(4) / 3)
        .unwrap_or(usize::MAX)
        .saturating_add(64 * 1024)
        .max(config.http.max_body_size);
    let body = json_body::<SendRequest>(request, &state, limit)
        .await?
        .0
        .ok_or_else(|| ApiError::bad_request("a JSON body is required"))?;
    let account = match &caller.identity {
        Identity::Account(id, address) => Some((*id, address.clone())),
        _ => None,
    };
    let draft = draft(body, account.as_ref().map(|(_, a)| a.as_str()))?;
    let recipients = draft.recipients();
    if recipients.len() > config.smtp.max_recipients {
        return Err(ApiError::bad_request(format!(
            "at most {} recipients",
            config.smtp.max_recipients
        )));
    }
    let now = chrono::Utc::now().timestamp();
    let message_id = draft
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("message-id"))
        .map(|(_, v)| bare_id(v))
        .unwrap_or_else(|| new_message_id(&config.hostname));
    let mut draft = draft;
    draft
        .headers
        .retain(|(n, _)| !n.eq_ignore_ascii_case("message-id"));
    let raw = draft.build(&message_id, now, false);
    if raw.len() as u64 > config.smtp.max_message_size {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the message is larger than the largest smtpd takes ({} bytes)",
                config.smtp.max_message_size
            ),
        ));
    }
    let transcript_line =
        |who: &str| format!("HTTP POST /api/v1/send from {} as {who}\n", info.peer);
    if config.capture.enabled {
        if let Identity::Sandbox(_) = caller.identity {
            if let Some(other) = recipients.iter().find(|r| !caller.owns_address(r)) {
                return Err(ApiError::forbidden(format!(
                    "a sandbox sends only to its own domain, not to {other}"
                )));
            }
        }
        let who = match &caller.identity {
            Identity::Account(_, a) => a.clone(),
            Identity::Sandbox(d) => format!("sandbox {d}"),
            Identity::Admin => "admin".to_owned(),
            Identity::Open => "anyone (open)".to_owned(),
        };
        let smtputf8 = !draft.from.1.is_ascii() || recipients.iter().any(|r| !r.is_ascii());
        let start = session_start(&info, now);
        let envelope = NewEnvelope {
            session: None,
            session_start: start.clone(),
            mail_from: draft.from.1.clone(),
            mail_params: String::new(),
            recipients: recipients
                .iter()
                .map(|r| EnvelopeRecipient {
                    address: r.clone(),
                    params: String::new(),
                })
                .collect(),
            helo: None,
            tls: None,
            auth_user: account.as_ref().map(|(_, a)| a.clone()),
            warnings: Vec::new(),
        };
        let (arrivals, session) = state
            .ctx
            .shared
            .store
            .capture(
                NewQueuedMessage {
                    raw,
                    sender: draft.from.1.clone(),
                    recipients: recipients.clone(),
                    auth_user: account.as_ref().map(|(_, a)| a.clone()),
                    body_type: BodyType::SevenBit,
                    smtputf8,
                    received_at: now,
                },
                envelope,
            )
            .await?;
        state
            .ctx
            .shared
            .store
            .end_smtp_session(Some(session), start, now, 0, transcript_line(&who))
            .await?;
        tag(&state, ArrivalScope::All, &arrivals, &draft.tags).await?;
        let first = arrivals
            .first()
            .ok_or_else(|| ApiError::internal("nothing was stored"))?;
        return Ok(Json(Sent {
            ID: first.to_string(),
        }));
    }
    let Some((account_id, login)) = account else {
        return Err(ApiError::forbidden(
            "sending needs an account's login (HTTP Basic or the page's login form)",
        ));
    };
    let store = &state.ctx.shared.store;
    // The submission policy smtpd applies to an authenticated client.
    if config.relay.require_sender_login_match
        && !policy::sender_matches_login(config, store, &login, &draft.from.1).await?
    {
        return Err(ApiError::forbidden(format!(
            "{login} may not send as {}: not one of its addresses",
            draft.from.1
        )));
    }
    for r in &recipients {
        match policy::check_recipient(config, store, r, true).await? {
            Verdict::Local(_) | Verdict::Remote | Verdict::Captured => {}
            Verdict::UnknownUser => {
                return Err(ApiError::bad_request(format!("{r}: no such user here")))
            }
            Verdict::RelayDenied | Verdict::Unroutable => {
                return Err(ApiError::bad_request(format!(
                    "{r}: not a deliverable address"
                )))
            }
        }
    }
    let received = format!(
        "Received: from [{}]\r\n\tby {} (Postern) with {}\r\n\tfor <{}>; {}\r\n",
        info.peer.ip().to_canonical(),
        config.hostname,
        if info.tls { "HTTPS" } else { "HTTP" },
        login,
        chrono::Utc::now().to_rfc2822()
    );
    let mut queued = received.into_bytes();
    queued.extend_from_slice(&raw);
    let smtputf8 = !draft.from.1.is_ascii() || recipients.iter().any(|r| !r.is_ascii());
    let body_type = if queued.is_ascii() {
        BodyType::SevenBit
    } else {
        BodyType::EightBitMime
    };
    let start = session_start(&info, now);
    let envelope = NewEnvelope {
        session: None,
        session_start: start.clone(),
        mail_from: draft.from.1.clone(),
        mail_params: String::new(),
        recipients: recipients
            .iter()
            .map(|r| EnvelopeRecipient {
                address: r.clone(),
                params: String::new(),
            })
            .collect(),
        helo: None,
        tls: info.tls.then(|| "HTTPS".to_owned()),
        auth_user: Some(login.clone()),
        warnings: Vec::new(),
    };
    let (_, session) = store
        .enqueue_received(
            NewQueuedMessage {
                raw: queued,
                sender: draft.from.1.clone(),
                recipients: recipients.clone(),
                auth_user: Some(login.clone()),
                body_type,
                smtputf8,
                received_at: now,
            },
            store::DsnRequest::default(),
            envelope,
        )
        .await?;
    store
        .end_smtp_session(Some(session), start, now, 0, transcript_line(&login))
        .await?;
    let id = file_in_sent(&state, account_id, draft.build(&message_id, now, true), now).await?;
    if let Some(id) = id {
        tag(
            &state,
            ArrivalScope::Account(account_id),
            &[id],
            &draft.tags,
        )
        .await?;
    }
    Ok(Json(Sent {
        ID: id.map(|i| i.to_string()).unwrap_or_default(),
    }))
}

/// Keywords on stored copies (Mailpit's tags).
async fn tag(
    state: &AppState,
    scope: ArrivalScope,
    arrivals: &[u64],
    tags: &[String],
) -> ApiResult<()> {
    if tags.is_empty() || arrivals.is_empty() {
        return Ok(());
    }
    state
        .ctx
        .shared
        .store
        .set_arrival_flags(scope, arrivals, FlagChange::Add, tags)
        .await
        .map_err(|_| {
            ApiError::bad_request("Tags are IMAP keywords: letters, digits and -_. without spaces")
        })?;
    Ok(())
}

/// Puts the sender's copy in the account's Sent folder (`\Sent`, else
/// `Sent`, made if missing), read. Its arrival number, if found.
async fn file_in_sent(
    state: &AppState,
    account: AccountId,
    raw: Vec<u8>,
    now: i64,
) -> ApiResult<Option<u64>> {
    let store = &state.ctx.shared.store;
    let boxes = store.mailboxes(account).await?;
    let sent = boxes
        .iter()
        .find(|b| b.special_use.as_deref() == Some("\\Sent"))
        .or_else(|| boxes.iter().find(|b| b.name == "Sent"));
    let name = match sent {
        Some(b) => b.name.clone(),
        None => {
            store.create_mailbox(account, "Sent").await?;
            "Sent".to_owned()
        }
    };
    let (_, uid) = store
        .append(account, &name, raw, &["\\Seen".to_owned()], now)
        .await?;
    let Some(mailbox) = store
        .mailboxes(account)
        .await?
        .into_iter()
        .find(|b| b.name == name)
    else {
        return Ok(None);
    };
    let newest = store
        .arrivals_newest(ArrivalScope::Mailbox(mailbox.id), None, 100)
        .await?;
    Ok(newest.iter().find(|m| m.uid == uid).map(|m| m.arrival))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: &str) -> SendRequest {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_reply_with_an_attachment_is_built_as_asked() {
        let d = draft(
            request(
                r#"{"To": [{"Email": "bob@example.org", "Name": "Bob"}], "Bcc": ["eve@example.org"],
                    "Subject": "Re: plans", "Text": "Yes.\n",
                    "Attachments": [{"Content": "aGVsbG8=", "Filename": "a.txt"}],
                    "Headers": {"In-Reply-To": "<m1@x>", "References": "<m0@x> <m1@x>", "X-Mood": "fine"}}"#,
            ),
            Some("alice@localhost"),
        )
        .unwrap();
        assert_eq!(d.recipients(), ["bob@example.org", "eve@example.org"]);
        let sent = String::from_utf8(d.build("id1@h", 1_700_000_000, false)).unwrap();
        let kept = String::from_utf8(d.build("id1@h", 1_700_000_000, true)).unwrap();
        assert!(sent.contains("From: <alice@localhost>\r\n"), "{sent}");
        assert!(sent.contains("To: \"Bob\" <bob@example.org>\r\n"), "{sent}");
        assert!(sent.contains("In-Reply-To: <m1@x>\r\n"), "{sent}");
        assert!(sent.contains("References: <m0@x> <m1@x>\r\n"), "{sent}");
        assert!(sent.contains("Message-ID: <id1@h>\r\n"), "{sent}");
        assert!(sent.contains("X-Mood: fine\r\n"), "{sent}");
        assert!(sent.contains("filename=\"a.txt\""), "{sent}");
        assert!(!sent.contains("eve@"), "Bcc stays off what is sent");
        assert!(kept.contains("Bcc: <eve@example.org>\r\n"), "{kept}");
    }

    #[test]
    fn bad_requests_are_refused() {
        let refused = |json: &str| draft(request(json), Some("a@localhost")).is_err();
        assert!(refused(r#"{"Subject": "nobody"}"#));
        assert!(refused(r#"{"To": [{"Email": "not an address"}]}"#));
        assert!(refused(
            r#"{"To": [{"Email": "b@x"}], "Subject": "a\r\nBcc: c@y"}"#
        ));
        assert!(refused(
            r#"{"To": [{"Email": "b@x"}], "Headers": {"X-A": "1\r\nBcc: c@y"}}"#
        ));
        assert!(refused(
            r#"{"To": [{"Email": "b@x"}], "Headers": {"From": "c@y"}}"#
        ));
        assert!(refused(
            r#"{"To": [{"Email": "b@x"}], "Headers": {"Bad Name": "v"}}"#
        ));
        assert!(refused(
            r#"{"To": [{"Email": "b@x"}], "Attachments": [{"Content": "!!", "Filename": "f"}]}"#
        ));
        assert!(draft(request(r#"{"To": [{"Email": "b@x"}]}"#), None).is_err());
        assert!(!refused(r#"{"To": [{"Email": "b@x"}]}"#));
    }
}
