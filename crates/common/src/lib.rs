//! # common — Postern's shared plumbing
//!
//! What every daemon needs and none of them should write twice:
//!
//! - [`config`]: the one TOML file (every key optional; no file needed) and
//!   its defaults;
//! - [`tls`]: rustls (ring provider) server configuration from the configured
//!   PEM files, or a self-signed certificate for `localhost`/`127.0.0.1`
//!   generated into the data dir on first run and reused after; the
//!   [`tls::MaybeTlsStream`] that implicit TLS and STARTTLS/STLS share,
//!   over TCP or any other [`tls::Io`] (a test's in-memory duplex); and
//!   [`tls::client`], the connectors for connections out (the system's
//!   roots, or any certificate for opportunistic TLS);
//! - [`transport`]: a session's stream and buffers, for all three mail
//!   daemons: line reading, flushing, timeouts, STARTTLS, the goodbye;
//!   and [`compress`], DEFLATE over a session's stream (IMAP COMPRESS);
//! - [`listener`]: accept loops with connection limits (in total and per IP),
//!   the implicit-TLS handshake, and graceful shutdown;
//! - [`sasl`]: SASL PLAIN and LOGIN decoding, and the throttle on failed
//!   logins;
//! - [`login`]: the one login path of the three mail daemons (SASL
//!   exchange, throttle delay, password check, failure limit);
//! - [`events`]: the in-process bus on which daemons tell each other (and
//!   httpd's event stream) what happened to mail;
//! - [`logging`] and [`shutdown`]: tracing set-up and SIGINT/SIGTERM;
//! - [`memory`]: how the process asks the C allocator to give back large
//!   buffers (the one `unsafe` call in the workspace);
//! - [`enhanced_status`]: the SMTP enhanced status code (RFC 3463) as a
//!   value, which smtpd's replies and the failure rules share;
//! - [`rules`]: the failure rules (and Mailpit's chaos) that smtpd applies
//!   and the HTTP API sets.
//!
//! It holds no protocol logic: replies, states and commands belong to the
//! daemons.
// Denied everywhere but in `memory`, which calls the C allocator.
#![deny(unsafe_code)]

pub mod compress;
pub mod config;
pub mod daemon;
pub mod enhanced_status;
pub mod events;
pub mod listener;
pub mod logging;
pub mod login;
pub mod memory;
pub mod rules;
pub mod sasl;
pub mod shutdown;
pub mod tls;
pub mod transport;

#[cfg(any(test, feature = "testutil"))]
pub mod testutil;
