//! Thunderbird's autoconfig: the `clientConfig` XML (version 1.1) that
//! tells a mail client where the IMAP, POP3 and submission ports are and
//! how to secure them, served where Thunderbird looks for it:
//!
//! - `/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=…` and
//!   `/mail/config-v1.1.xml?emailaddress=…` (the domain's own web server,
//!   the first places Thunderbird tries for `autoconfig.<domain>` and
//!   `<domain>`);
//! - `/autoconfig/v1.1/{domain}`: the form of Thunderbird's ISP database,
//!   so that `mailnews.auto_config_url` can point a local Thunderbird at
//!   this server (`postern autoconfig` prints that line).
//!
//! The ports are the ones really listening (in `postern up`), else the
//! configured ones; the host name is `hostname` from the config. The MX
//! port is left out: clients send on submission. Only local domains (or
//! any, in capture mode) get an answer; no login is needed, as for
//! Thunderbird's own lookups.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, Params};
use crate::AppState;

/// The autoconfig routes, at the top level.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/.well-known/autoconfig/mail/config-v1.1.xml",
            get(by_address),
        )
        .route("/mail/config-v1.1.xml", get(by_address))
        .route("/autoconfig/v1.1/{domain}", get(by_domain))
}

/// One server entry: the protocol Thunderbird names, the port and the
/// socket type.
struct Server {
    kind: &'static str,
    port: u16,
    socket: &'static str,
}

/// The listeners a client can use, best first (implicit TLS before
/// STARTTLS, IMAP before POP3), from (role name, address) pairs.
fn servers(listeners: &[(String, SocketAddr)]) -> (Vec<Server>, Vec<Server>) {
    const ORDER: &[(&str, &str, &str, bool)] = &[
        ("imaps", "imap", "SSL", true),
        ("imap", "imap", "STARTTLS", true),
        ("pop3s", "pop3", "SSL", true),
        ("pop3", "pop3", "STARTTLS", true),
        ("submissions", "smtp", "SSL", false),
        ("submission", "smtp", "STARTTLS", false),
    ];
    let (mut incoming, mut outgoing) = (Vec::new(), Vec::new());
    for &(role, kind, socket, is_incoming) in ORDER {
        for (name, addr) in listeners {
            if name == role {
                let server = Server {
                    kind,
                    port: addr.port(),
                    socket,
                };
                if is_incoming {
                    incoming.push(server);
                } else {
                    outgoing.push(server);
                }
            }
        }
    }
    (incoming, outgoing)
}

/// The configured listeners, for a process that did not say what is
/// really listening (the standalone `httpd`).
fn configured(config: &common::config::Config) -> Vec<(String, SocketAddr)> {
    let mut out = Vec::new();
    let mut add = |role: &str, addrs: &[SocketAddr]| {
        out.extend(
            addrs
                .iter()
                .filter(|a| a.port() != 0)
                .map(|a| (role.to_owned(), *a)),
        );
    };
    add("imaps", &config.imap.imaps_listen);
    add("imap", &config.imap.listen);
    add("pop3s", &config.pop3.pop3s_listen);
    add("pop3", &config.pop3.listen);
    add("submissions", &config.smtp.submissions_listen);
    add("submission", &config.smtp.submission_listen);
    out
}

/// XML text: the five characters that need it escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The clientConfig document for `domain`.
fn document(domain: &str, hostname: &str, listeners: &[(String, SocketAddr)]) -> String {
    use std::fmt::Write as _;
    let (domain, hostname) = (escape(domain), escape(hostname));
    let (incoming, outgoing) = servers(listeners);
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str("<clientConfig version=\"1.1\">\n");
    let _ = writeln!(xml, "  <emailProvider id=\"{domain}\">");
    let _ = writeln!(xml, "    <domain>{domain}</domain>");
    let _ = writeln!(xml, "    <displayName>Postern ({domain})</displayName>");
    xml.push_str("    <displayShortName>Postern</displayShortName>\n");
    let mut server = |tag: &str, s: &Server| {
        let _ = writeln!(xml, "    <{tag} type=\"{}\">", s.kind);
        let _ = writeln!(xml, "      <hostname>{hostname}</hostname>");
        let _ = writeln!(xml, "      <port>{}</port>", s.port);
        let _ = writeln!(xml, "      <socketType>{}</socketType>", s.socket);
        xml.push_str("      <authentication>password-cleartext</authentication>\n");
        xml.push_str("      <username>%EMAILADDRESS%</username>\n");
        let _ = writeln!(xml, "    </{tag}>");
    };
    for s in &incoming {
        server("incomingServer", s);
    }
    for s in &outgoing {
        server("outgoingServer", s);
    }
    xml.push_str("  </emailProvider>\n</clientConfig>\n");
    xml
}

/// The answer for `domain`: 404 unless mail for it is taken here.
async fn answer(state: &AppState, domain: &str) -> ApiResult<Response> {
    let domain = domain.trim().trim_end_matches('.').to_lowercase();
    let valid = !domain.is_empty()
        && domain.len() <= 253
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
    if !valid {
        return Err(ApiError::bad_request("not a domain name"));
    }
    let config = &state.ctx.shared.config;
    let local = config.capture.enabled
        || config
            .local_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(&domain))
        || state.ctx.shared.store.is_local_domain(&domain).await?;
    if !local {
        return Err(ApiError::not_found(format!("no mail for {domain} here")));
    }
    let listeners = match state.ctx.listeners.get() {
        Some(listening) => listening.clone(),
        None => configured(config),
    };
    let xml = document(&domain, &config.hostname, &listeners);
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml; charset=utf-8"),
        )],
        xml,
    )
        .into_response())
}

/// `?emailaddress=user@domain` (Thunderbird sends it; the domain decides).
async fn by_address(State(state): State<Arc<AppState>>, params: Params) -> ApiResult<Response> {
    let address = params
        .get("emailaddress")
        .ok_or_else(|| ApiError::bad_request("emailaddress is missing"))?;
    let (_, domain) = address
        .rsplit_once('@')
        .ok_or_else(|| ApiError::bad_request("emailaddress needs a domain"))?;
    answer(&state, domain).await
}

/// `/autoconfig/v1.1/{domain}`.
async fn by_domain(
    State(state): State<Arc<AppState>>,
    ApiPath(domain): ApiPath<String>,
) -> ApiResult<Response> {
    answer(&state, &domain).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_servers_first_and_no_mx_port() {
        let listeners: Vec<(String, SocketAddr)> = [
            ("smtp", "127.0.0.1:2525"),
            ("submission", "127.0.0.1:2587"),
            ("submissions", "127.0.0.1:2465"),
            ("pop3", "127.0.0.1:1110"),
            ("imap", "127.0.0.1:1143"),
            ("imaps", "127.0.0.1:1993"),
        ]
        .iter()
        .map(|(n, a)| (n.to_string(), a.parse().unwrap()))
        .collect();
        let xml = document("exa<mple.test", "mail.example.test", &listeners);
        assert!(xml.contains("<domain>exa&lt;mple.test</domain>"), "{xml}");
        let imaps = xml.find("<port>1993</port>").unwrap();
        let imap = xml.find("<port>1143</port>").unwrap();
        let pop3 = xml.find("<port>1110</port>").unwrap();
        let smtps = xml.find("<port>2465</port>").unwrap();
        let smtp = xml.find("<port>2587</port>").unwrap();
        assert!(
            imaps < imap && imap < pop3 && pop3 < smtps && smtps < smtp,
            "{xml}"
        );
        assert!(!xml.contains("2525"), "{xml}");
        assert_eq!(xml.matches("<incomingServer").count(), 3);
        assert_eq!(xml.matches("<outgoingServer").count(), 2);
        assert!(xml.contains("<incomingServer type=\"pop3\">"));
        assert!(xml.contains("<socketType>STARTTLS</socketType>"));
    }
}
