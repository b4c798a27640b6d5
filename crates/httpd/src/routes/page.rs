//! The web page: `GET /` and its files under `/ui/`, embedded in the
//! binary at build time (rust-embed, also in debug builds), never read
//! from disk or the network at run time. Plain HTML, CSS and JavaScript
//! modules: there is no build step, the files in `crates/httpd/web/` are
//! what the browser gets.
//!
//! Every page response carries a strict Content-Security-Policy
//! ([`PAGE_CSP`]: scripts, styles and connections to this origin only, no
//! inline script, frames only from this origin, never framed by another
//! site), `X-Content-Type-Options: nosniff` and `Referrer-Policy:
//! no-referrer`. Files are revalidated by ETag (their SHA-256), so a new
//! binary's page is picked up at once.

use axum::http::header::{
    HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::extract::ApiPath;

#[derive(rust_embed::RustEmbed)]
#[folder = "web/"]
struct PageFiles;

/// The page's policy. `img-src data:` for the icons the stylesheet
/// carries; `frame-src 'self'` for the message view's sandboxed frame
/// (`/api/v1/message/{ID}/html`, with a policy of its own).
pub const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; font-src 'self'; connect-src 'self'; frame-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The headers every page response carries.
pub fn security_headers(headers: &mut HeaderMap, csp: &str) {
    let set = |headers: &mut HeaderMap, name: HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set(headers, CONTENT_SECURITY_POLICY, csp);
    set(headers, X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, REFERRER_POLICY, "no-referrer");
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

fn serve(path: &str, request: &HeaderMap) -> Response {
    let Some(file) = PageFiles::get(path) else {
        return ApiError::not_found("no such file").into_response();
    };
    let etag = format!("\"{}\"", hex::encode(file.metadata.sha256_hash()));
    let fresh = request
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        file.data.into_owned().into_response()
    };
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(ETAG, value);
    }
    security_headers(headers, PAGE_CSP);
    response
}

/// `GET /`: the page.
pub async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /ui/{file}`: the page's scripts, styles and icons.
pub async fn file(ApiPath(path): ApiPath<String>, headers: HeaderMap) -> Response {
    if path
        .split('/')
        .any(|p| p.is_empty() || p == "." || p == "..")
        || path == "index.html"
    {
        return ApiError::not_found("no such file").into_response();
    }
    serve(&path, &headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_embedded() {
        assert!(PageFiles::get("index.html").is_some());
        assert!(PageFiles::get("app.js").is_some());
        assert_eq!(content_type("x/app.js"), "text/javascript; charset=utf-8");
        let response = serve("style.css", &HeaderMap::new());
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers[CONTENT_SECURITY_POLICY], PAGE_CSP);
        assert_eq!(headers[X_CONTENT_TYPE_OPTIONS], "nosniff");
        let mut again = HeaderMap::new();
        again.insert(IF_NONE_MATCH, headers[ETAG].clone());
        assert_eq!(
            serve("style.css", &again).status(),
            StatusCode::NOT_MODIFIED
        );
    }
}
