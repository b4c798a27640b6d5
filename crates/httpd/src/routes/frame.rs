//! `GET /api/v1/message/{ID}/html[?remote=1]`: a message's HTML as a
//! document of its own, for the page's message frame (Postern's own).
//!
//! Message HTML is hostile input; three walls keep it from running
//! script or calling home:
//!
//! 1. The page frames it `sandbox` without `allow-scripts` (and without
//!    `allow-same-origin`: an opaque origin, no cookies, no API).
//! 2. The response's own Content-Security-Policy: `sandbox` (the same,
//!    also when the URL is opened directly), `default-src 'none'`, no
//!    `script-src` at all, inline styles only, images only as `data:`
//!    (inline parts are turned into `data:` URLs here), no forms, no
//!    `<base href>`. Remote images are blocked by the policy before any
//!    request leaves; `remote=1` (the page's "load remote images" button)
//!    allows `http:` and `https:` images, and nothing else.
//! 3. `http-equiv` attributes are disarmed (a `<meta http-equiv=refresh>`
//!    would navigate the frame to a remote address), and `<base
//!    target=_blank>` makes links open in a new tab, outside the sandbox,
//!    without a `Referer`.
//!
//! It does not mark the message read: the page's JSON view does.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{HeaderValue, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use mail_parser::{MessageParser, MimeHeaders, PartType};

use super::page::security_headers;
use super::resolve_id;
use crate::access::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, Params};
use crate::AppState;

/// Inline parts larger than this in all stay out of the document (their
/// `cid:` references then show nothing).
const INLINE_LIMIT: usize = 16 * 1024 * 1024;

/// The frame document's policy.
pub fn frame_csp(remote_images: bool) -> String {
    let images = if remote_images {
        "data: http: https:"
    } else {
        "data:"
    };
    format!(
        "sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; \
         img-src {images}; style-src 'unsafe-inline'; font-src data:; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'self'"
    )
}

/// Replaces every ASCII-case-insensitive `needle` (ASCII) in `text`.
fn replace_ignore_case(text: &str, needle: &str, with: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (at, _) in lower.match_indices(needle) {
        out.push_str(&text[last..at]);
        out.push_str(with);
        last = at + needle.len();
    }
    out.push_str(&text[last..]);
    out
}

/// The frame document of a raw message: its HTML parts, inline parts as
/// `data:` URLs, `http-equiv` disarmed, links to a new tab. Empty for a
/// message without HTML.
pub fn frame_document(raw: &[u8]) -> String {
    use base64::Engine as _;
    let Some(parsed) = MessageParser::default().parse(raw) else {
        return String::new();
    };
    let mut html: String = parsed
        .html_body
        .iter()
        .filter_map(|&i| match &parsed.parts.get(i as usize)?.body {
            PartType::Html(h) => Some(h.as_ref()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n");
    if html.is_empty() {
        return html;
    }
    let mut budget = INLINE_LIMIT;
    for part in &parsed.parts {
        let Some(cid) = part.content_id() else {
            continue;
        };
        if matches!(part.body, PartType::Multipart(_)) {
            continue;
        }
        let cid = cid.trim().trim_start_matches('<').trim_end_matches('>');
        let reference = format!("cid:{cid}");
        if cid.is_empty() || !html.contains(&reference) {
            continue;
        }
        let contents = part.contents();
        if contents.len() > budget {
            continue;
        }
        budget -= contents.len();
        let content_type = crate::view::content_type(part);
        let url = format!(
            "data:{};base64,{}",
            content_type
                .split(';')
                .next()
                .unwrap_or("application/octet-stream"),
            base64::engine::general_purpose::STANDARD.encode(contents)
        );
        html = html.replace(&reference, &url);
    }
    let html = replace_ignore_case(&html, "http-equiv", "data-disarmed-http-equiv");
    // Before <html>, the parser moves it into the head.
    format!("<base target=\"_blank\">{html}")
}

/// `GET /api/v1/message/{ID}/html`.
pub async fn html(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    params: Params,
) -> ApiResult<Response> {
    let scope = caller.scope();
    let arrival = resolve_id(&state, &scope, &id).await?;
    let raw = state
        .ctx
        .shared
        .store
        .arrival_raw(scope, arrival)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("message {id} not found")))?;
    let remote = matches!(
        params.get("remote").map(str::trim),
        Some("1" | "true" | "yes")
    );
    let document = tokio::task::spawn_blocking(move || frame_document(&raw))
        .await
        .map_err(|_| ApiError::internal("parsing the message failed"))?;
    let mut response = document.into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert("x-dns-prefetch-control", HeaderValue::from_static("off"));
    security_headers(headers, &frame_csp(remote));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &[u8] = b"Subject: x\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/related; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
<META HTTP-EQUIV=\"refresh\" content=\"0;url=http://evil.test/\"><p>Hi <img src=\"cid:logo@x\"></p>\r\n\
--b\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0K\r\n\
--b--\r\n";

    #[test]
    fn inline_parts_become_data_and_refreshes_are_disarmed() {
        let doc = frame_document(MESSAGE);
        assert!(doc.starts_with("<base target=\"_blank\">"), "{doc}");
        assert!(
            doc.contains("<img src=\"data:image/png;base64,iVBORw0K\">"),
            "{doc}"
        );
        assert!(!doc.contains("cid:"));
        assert!(
            doc.contains("data-disarmed-http-equiv=\"refresh\""),
            "{doc}"
        );
        assert!(!doc.to_ascii_lowercase().contains(" http-equiv"));
        assert_eq!(frame_document(b"Subject: x\r\n\r\nplain text\r\n"), "");
    }

    #[test]
    fn the_policy_allows_remote_images_only_when_asked() {
        let blocked = frame_csp(false);
        assert!(blocked.contains("img-src data:;"));
        assert!(blocked.starts_with("sandbox "));
        assert!(!blocked.contains("allow-scripts"));
        assert!(!blocked.contains("script-src"));
        assert!(frame_csp(true).contains("img-src data: http: https:;"));
    }
}
