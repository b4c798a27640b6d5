//! The configuration file: TOML, every key optional, defaults built in.
//! README.md documents every key; keep the two in step.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The whole configuration. `Config::default()` is what runs with no file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the database, TLS certificate and key live. Default
    /// `./postern-data`.
    pub data_dir: PathBuf,
    /// This server's name, used in greetings and `Received:` lines. Default
    /// `localhost`.
    pub hostname: String,
    /// Domains that are local in addition to those in the store. Default
    /// `["localhost"]`.
    pub local_domains: Vec<String>,
    /// tracing filter, e.g. `info` or `smtpd=debug`. Default `info`.
    pub log: String,
    pub tls: TlsConfig,
    pub limits: ListenerLimits,
    pub auth: AuthConfig,
    pub smtp: SmtpConfig,
    pub queue: QueueConfig,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain. If both `cert` and `key` are absent, a
    /// self-signed certificate is made in the data dir.
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
}

/// Limits every listener applies.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenerLimits {
    /// Connections at once, per listener (default 1000).
    pub max_connections: usize,
    /// Connections at once from one IP address, per listener (default 100).
    pub max_connections_per_ip: usize,
    /// Seconds the implicit-TLS handshake may take (default 30).
    pub tls_handshake_timeout_secs: u64,
    /// On shutdown, seconds sessions get to finish before they are cut
    /// (default 10).
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Allow plaintext logins (AUTH PLAIN/LOGIN, USER/PASS, LOGIN) without
    /// TLS from loopback addresses (default true).
    pub plaintext_on_loopback: bool,
    /// Allow plaintext logins without TLS from anywhere (default false).
    pub plaintext_anywhere: bool,
    /// Failed logins from one IP address before further attempts are delayed
    /// (default 3).
    pub failures_before_delay: u32,
    /// Seconds added per failure past that threshold, capped at
    /// `max_delay_secs` (default 2).
    pub delay_step_secs: u64,
    /// Largest delay (default 15).
    pub max_delay_secs: u64,
    /// Failed logins in one session before it is closed (default 3).
    pub max_failures_per_session: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// MX-role listeners: local recipients only, no AUTH needed
    /// (default `["127.0.0.1:2525"]`; empty disables).
    pub listen: Vec<SocketAddr>,
    /// Submission with STARTTLS; AUTH required before MAIL
    /// (default `["127.0.0.1:2587"]`).
    pub submission_listen: Vec<SocketAddr>,
    /// Submission over implicit TLS (default `["127.0.0.1:2465"]`).
    pub submissions_listen: Vec<SocketAddr>,
    /// Largest message in bytes, advertised with SIZE (default 52428800,
    /// 50 MiB).
    pub max_message_size: u64,
    /// Recipients per message (default 100, RFC 5321's minimum).
    pub max_recipients: usize,
    /// Longest command line in bytes, CRLF included (default 2048).
    pub max_line_length: usize,
    /// Error replies in one session before it is closed with 421
    /// (default 10).
    pub max_errors: u32,
    /// Seconds to wait for a command (default 300, RFC 5321 4.5.3.2.7).
    pub command_timeout_secs: u64,
    /// Seconds to wait for each block of message data (default 300).
    pub data_timeout_secs: u64,
    /// Sub-address separator: mail for `alice+tag@…` goes to `alice@…`
    /// (default `+`; empty disables).
    pub recipient_delimiter: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// First retry delay in seconds (default 300, as Postfix).
    pub min_backoff_secs: u64,
    /// Largest retry delay in seconds (default 4000, as Postfix).
    pub max_backoff_secs: u64,
    /// Seconds a message may stay queued before it bounces (default 432000,
    /// five days).
    pub max_lifetime_secs: u64,
    /// Deliveries in progress at once (default 16).
    pub concurrency: usize,
}

impl Default for Config {
    fn default() -> Self {
        todo!()
    }
}
impl Default for ListenerLimits {
    fn default() -> Self {
        todo!()
    }
}
impl Default for AuthConfig {
    fn default() -> Self {
        todo!()
    }
}
impl Default for SmtpConfig {
    fn default() -> Self {
        todo!()
    }
}
impl Default for QueueConfig {
    fn default() -> Self {
        todo!()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
}

impl Config {
    /// Reads a TOML file; unknown keys are errors that name the key.
    pub fn load(_path: &Path) -> Result<Config, ConfigError> {
        todo!()
    }

    /// Parses TOML text (`origin` names it in errors).
    pub fn from_toml(_text: &str, _origin: &Path) -> Result<Config, ConfigError> {
        todo!()
    }
}
