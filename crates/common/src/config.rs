//! The configuration file: TOML, every key optional, defaults built in;
//! and every key again as a `POSTERN_…` environment variable ([`env`]).
//! README.md documents every key; keep the two in step.

mod env;

pub use env::PREFIX as ENV_PREFIX;

use std::collections::BTreeMap;
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
    /// Where `postmaster@` a local domain goes when no account or alias
    /// has that address: an address of an account or alias. Default unset:
    /// the domain's oldest account, else the oldest account of all.
    pub postmaster: Option<String>,
    pub tls: TlsConfig,
    pub limits: ListenerLimits,
    pub auth: AuthConfig,
    pub smtp: SmtpConfig,
    pub queue: QueueConfig,
    pub relay: RelayConfig,
    pub pop3: Pop3Config,
    pub imap: ImapConfig,
    pub http: HttpConfig,
    pub capture: CaptureConfig,
    pub store: StoreConfig,
    pub rules: RulesConfig,
    pub memory: MemoryConfig,
}

/// `[memory]`: how the process gives memory back to the system
/// ([`crate::memory`]; glibc's allocator, elsewhere ignored).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// Heap arenas the allocator may make (default 4; 0: glibc's own
    /// limit, eight per core). Each thread that allocates while the
    /// others' arenas are busy gets one, and each keeps its own free
    /// memory. The environment's `MALLOC_ARENA_MAX` wins.
    pub arena_max: usize,
    /// When a session ends, the free pages of every arena go back to the
    /// system (`malloc_trim`), at most once per this many milliseconds
    /// (default 1000; 0: never).
    pub trim_interval_ms: u64,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            arena_max: 4,
            trim_interval_ms: 1000,
        }
    }
}

/// `[rules]`: the failure rules a test sets through the HTTP API
/// ([`crate::rules`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// Longest delay a rule may ask for, in milliseconds (default 60000).
    pub max_delay_ms: u64,
    /// Rules in force at once (default 1000).
    pub max_rules: usize,
    /// Firings the fire log keeps, the oldest dropped first (default
    /// 1000; 0 keeps none).
    pub fire_log_size: usize,
    /// Seed of the chaos draws, for runs that repeat exactly (default:
    /// from the clock).
    pub chaos_seed: Option<u64>,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            max_delay_ms: 60_000,
            max_rules: 1000,
            fire_log_size: 1000,
            chaos_seed: None,
        }
    }
}

/// Capture mode: Postern as the mail fixture of a test suite.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptureConfig {
    /// Accept mail for every address on every domain, keep it (each
    /// recipient in a mailbox of its own) and never relay it; SMTP AUTH
    /// takes any credentials (default false; `postern up --capture`).
    pub enabled: bool,
    /// The password captured addresses log in with over IMAP and POP3.
    /// Default: a random one made at start and printed.
    pub password: Option<String>,
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
    /// Largest transcript kept per SMTP session, in bytes (default 65536);
    /// beyond it the transcript says it was cut.
    pub transcript_limit: usize,
    /// Recorded SMTP sessions kept, newest first (default 10000); older
    /// ones go, with the envelopes no stored message points at.
    pub sessions_keep: usize,
    /// What a message with a bare LF or bare CR gets (default `reject`;
    /// capture mode always normalizes).
    pub bare_newline: BareNewline,
}

/// How smtpd treats a message whose lines do not all end in CRLF (RFC
/// 5321 2.3.8), as Postfix 3.9's `smtpd_forbid_bare_newline`. Either way
/// the data ends only at `<CRLF>.<CRLF>`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BareNewline {
    /// Refuse the whole message with `550 5.5.2`.
    #[default]
    Reject,
    /// Accept it with every bare LF and bare CR made CRLF.
    Normalize,
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
    /// Deliveries in progress at once (default 64; local deliveries share
    /// group commits, so more in flight means fewer syncs per message).
    pub concurrency: usize,
    /// Mail whose recipients are all local accounts goes into their
    /// mailboxes in the transaction that accepts it, before the `250`,
    /// instead of through the queue (default true). A recipient that asks
    /// for a success report (`NOTIFY=SUCCESS`) sends the message through
    /// the queue, as does `false`.
    pub direct_local_delivery: bool,
}

/// `[relay]`: who may send mail to other domains, and how the queue manager
/// reaches them.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    /// Networks whose clients may relay without AUTH, as CIDR strings
    /// (`"10.0.0.0/8"`, `"::1/128"`). Default empty: only authenticated
    /// submission relays.
    pub trusted_networks: Vec<String>,
    /// An authenticated user's envelope sender must be one of the user's
    /// addresses or aliases (default true; false lets any sender through,
    /// as Postfix does without `reject_sender_login_mismatch`).
    pub require_sender_login_match: bool,
    /// Where mail for non-local domains goes when no `transport` entry
    /// matches. Absent (the default): MX lookup.
    pub smarthost: Option<Transport>,
    /// Per-domain routes that win over MX lookup and the smarthost, keyed
    /// by domain (`[relay.transport."example.org"]`). A key `".example.org"`
    /// also matches every subdomain.
    pub transport: BTreeMap<String, Transport>,
    /// DNS servers for MX, A and AAAA lookups (`"127.0.0.1:5353"`). Empty
    /// (the default): the system's `/etc/resolv.conf`.
    pub dns_servers: Vec<SocketAddr>,
    /// Port used for hosts found by MX lookup (default 25).
    pub mx_port: u16,
    /// Name sent in EHLO (default: the top-level `hostname`).
    pub helo_name: Option<String>,
    /// TLS towards hosts found by MX lookup (default `may`).
    pub tls: RelayTls,
    /// Seconds to wait for the TCP connection (default 30, Postfix's
    /// `smtp_connect_timeout`).
    pub connect_timeout_secs: u64,
    /// Seconds to wait for the greeting and for each reply before DATA is
    /// sent (default 300, RFC 5321 4.5.3.2).
    pub command_timeout_secs: u64,
    /// Seconds to wait for the reply to the final dot (default 600, RFC
    /// 5321 4.5.3.2.6).
    pub data_timeout_secs: u64,
    /// Outbound SMTP sessions at once to one destination (default 20, as
    /// Postfix's `default_destination_concurrency_limit`).
    pub max_sessions_per_destination: usize,
    /// Seconds an outbound session stays open after a delivery, for the
    /// next message to the same host (default 2, Postfix's
    /// `smtp_connection_cache_time_limit`; 0 closes every session at once).
    pub connection_cache_secs: u64,
    /// Seconds after which a session is no longer reused, however busy
    /// (default 300, Postfix's `smtp_connection_reuse_time_limit`).
    pub connection_reuse_secs: u64,
    /// A message with more `Received:` headers than this is bounced as a
    /// mail loop (default 50, Postfix's `hopcount_limit`).
    pub max_received_headers: usize,
    /// Largest original a bounce returns whole; larger ones come back as
    /// their headers only (default 50000, Postfix's `bounce_size_limit`).
    pub bounce_size_limit: usize,
}

/// How to reach one destination.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Transport {
    /// `host:port`, `host` (port 25) or `[ip]:port`. A host name is looked
    /// up for A/AAAA records, not MX.
    pub host: String,
    /// TLS towards this host (default `may`).
    #[serde(default)]
    pub tls: RelayTls,
    /// AUTH PLAIN/LOGIN with these credentials (only over TLS unless `tls =
    /// "none"` was chosen on purpose).
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

/// TLS policy for an outbound SMTP session, as Postfix's
/// `smtp_tls_security_level`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayTls {
    /// Never STARTTLS.
    None,
    /// STARTTLS when offered; the certificate is not checked
    /// (opportunistic TLS, RFC 7435). If the handshake fails the message
    /// is retried later.
    #[default]
    May,
    /// STARTTLS required, certificate not checked.
    Encrypt,
    /// STARTTLS required, certificate checked against the web PKI roots and
    /// the host name.
    Verify,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            trusted_networks: Vec::new(),
            require_sender_login_match: true,
            smarthost: None,
            transport: BTreeMap::new(),
            dns_servers: Vec::new(),
            mx_port: 25,
            helo_name: None,
            tls: RelayTls::May,
            connect_timeout_secs: 30,
            command_timeout_secs: 300,
            data_timeout_secs: 600,
            max_sessions_per_destination: 20,
            connection_cache_secs: 2,
            connection_reuse_secs: 300,
            max_received_headers: 50,
            bounce_size_limit: 50_000,
        }
    }
}

/// What a POP3 `DELE` (made final by `QUIT`) does to a message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pop3DeleteMode {
    /// Remove the message from the store, for every protocol (default).
    #[default]
    Expunge,
    /// Keep the message but give it the keyword `$POP3Deleted`: later POP3
    /// sessions skip it, IMAP still shows it.
    Hide,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Pop3Config {
    /// POP3 listeners, STLS offered (default `["127.0.0.1:1110"]`; empty
    /// disables).
    pub listen: Vec<SocketAddr>,
    /// POP3 over implicit TLS (default `["127.0.0.1:1995"]`).
    pub pop3s_listen: Vec<SocketAddr>,
    /// What DELE does at QUIT (default `expunge`).
    pub delete_mode: Pop3DeleteMode,
    /// Whether messages sent with RETR get `\Seen` at QUIT (default true;
    /// TOP never marks).
    pub mark_seen: bool,
    /// Longest command line in bytes, CRLF included (default 1024; RFC 1939
    /// needs 255 for commands, SASL responses need more).
    pub max_line_length: usize,
    /// Seconds a session may sit idle (default 600, RFC 1939's ten-minute
    /// autologout minimum).
    pub command_timeout_secs: u64,
    /// Bad commands in a row (unknown, malformed, too long, or not valid
    /// before/after login) after which the session is closed with `-ERR Too
    /// many bad commands.` (default 20, about Dovecot's limit; 0 never
    /// closes). Any valid command starts the count again.
    pub max_bad_commands: u32,
    /// Per-account overrides of `delete_mode` and `mark_seen`, keyed by
    /// address (`[pop3.accounts."alice@localhost"]`).
    pub accounts: BTreeMap<String, Pop3AccountOverride>,
}

/// One account's POP3 settings where they differ from `[pop3]`'s.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Pop3AccountOverride {
    pub delete_mode: Option<Pop3DeleteMode>,
    pub mark_seen: Option<bool>,
}

/// The POP3 settings that apply to one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pop3Policy {
    pub delete_mode: Pop3DeleteMode,
    pub mark_seen: bool,
}

impl Pop3Config {
    /// The settings for `address` (case-insensitive): its override where
    /// given, else the section's.
    pub fn policy_for(&self, address: &str) -> Pop3Policy {
        let found = self
            .accounts
            .iter()
            .find(|(a, _)| a.eq_ignore_ascii_case(address))
            .map(|(_, o)| o);
        Pop3Policy {
            delete_mode: found
                .and_then(|o| o.delete_mode)
                .unwrap_or(self.delete_mode),
            mark_seen: found.and_then(|o| o.mark_seen).unwrap_or(self.mark_seen),
        }
    }
}

impl Default for Pop3Config {
    fn default() -> Self {
        Pop3Config {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 1110))],
            pop3s_listen: vec![SocketAddr::from(([127, 0, 0, 1], 1995))],
            delete_mode: Pop3DeleteMode::Expunge,
            mark_seen: true,
            max_line_length: 1024,
            command_timeout_secs: 600,
            max_bad_commands: 20,
            accounts: BTreeMap::new(),
        }
    }
}

/// `[imap]`: the IMAP daemon.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImapConfig {
    /// IMAP listeners, STARTTLS offered (default `["127.0.0.1:1143"]`;
    /// empty disables).
    pub listen: Vec<SocketAddr>,
    /// IMAP over implicit TLS (default `["127.0.0.1:1993"]`).
    pub imaps_listen: Vec<SocketAddr>,
    /// Longest command line between literals, CRLF included (default
    /// 65536: UID sets and SEARCH make IMAP lines long).
    pub max_line_length: usize,
    /// Largest literal a command may carry, e.g. an APPENDed message
    /// (default 52428800).
    pub max_literal_size: u32,
    /// Seconds a session may sit idle before autologout (default 1800, RFC
    /// 3501's 30 minutes).
    pub idle_timeout_secs: u64,
    /// Seconds one IDLE command may last before autologout (default 3600;
    /// clients re-issue IDLE every 29 minutes, RFC 2177).
    pub idle_command_timeout_secs: u64,
    /// Sessions one account may have open at once (default 50; Thunderbird
    /// opens about five per account).
    pub max_connections_per_user: usize,
    /// Commands answered `BAD` in a row after which the session is closed
    /// with `* BYE Too many invalid IMAP commands.` (default 20, Dovecot's
    /// limit; 0 never closes). A command answered OK or NO starts the
    /// count again.
    pub max_bad_commands: u32,
    /// The server's `/shared/admin` METADATA entry (RFC 5464 3.2.1.1): how
    /// to reach its administrator, as a URI such as
    /// `mailto:postmaster@example.org` (default unset: NIL).
    pub admin_contact: Option<String>,
    /// Largest METADATA value in octets (default 65536); a larger one gets
    /// `NO [METADATA MAXSIZE n]`.
    pub max_metadata_size: u32,
    /// METADATA entries one mailbox (or the server) may hold, `/private`
    /// and `/shared` together (default 100); one more gets `NO [METADATA
    /// TOOMANY]`.
    pub max_metadata_entries: u32,
    /// The account a submission server logs in as to fetch URLAUTH URLs
    /// authorized for `submit+user` (RFC 4467 3; default unset: nobody
    /// may fetch those).
    pub urlauth_submit_user: Option<String>,
    /// Mailbox names one NOTIFY command may list in its SUBTREE and
    /// MAILBOXES filters, all told (default 100, Dovecot's limit); more
    /// are refused with `NO [NOTIFICATIONOVERFLOW]`.
    pub max_notify_mailboxes: usize,
    /// MiB SORT's and THREAD's per-mailbox indexes may hold in all
    /// (default 16; a 50,000-message mailbox's is some 6 MiB): what they
    /// compare of each message, made once and kept. Past it the least
    /// recently used mailbox's goes; one bigger than all of it is made
    /// again for each SORT or THREAD; 0 keeps none.
    pub sort_cache_mb: u64,
}

impl Default for ImapConfig {
    fn default() -> Self {
        ImapConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 1143))],
            imaps_listen: vec![SocketAddr::from(([127, 0, 0, 1], 1993))],
            max_line_length: 65536,
            max_literal_size: 52_428_800,
            idle_timeout_secs: 1800,
            idle_command_timeout_secs: 3600,
            max_connections_per_user: 50,
            max_bad_commands: 20,
            admin_contact: None,
            max_metadata_size: 65536,
            max_metadata_entries: 100,
            urlauth_submit_user: None,
            max_notify_mailboxes: 100,
            sort_cache_mb: 16,
        }
    }
}

/// `[store]`: how much history the mailbox store keeps. Every change to
/// a mailbox (a message added, flags changed, a message expunged) is a row
/// in its change feed, and every expunge leaves a tombstone that QRESYNC
/// clients need; both are pruned to these bounds.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Changes and tombstones kept per mailbox: those of its newest this
    /// many modseqs (default 10000; at least 1). A QRESYNC client that was
    /// away for fewer changes resyncs exactly.
    pub changes_keep: u64,
    /// Changes and tombstones older than this are pruned however few
    /// (default 2592000, 30 days; 0: no age limit).
    pub changes_max_age_secs: u64,
    /// Rows deleted from each table in one transaction (default 1000): the
    /// most pruning adds to one write.
    pub prune_batch: u64,
    /// Seconds between looks for mailboxes past the bounds, made only
    /// after mail changed (default 10).
    pub prune_interval_secs: u64,
    /// The most MiB the database may grow to (default 0: as much as the
    /// disk holds). Past it, mail is refused for now as on a full disk:
    /// `452 4.3.1 Insufficient system storage`, IMAP `NO [OVERQUOTA]`,
    /// POP3 `-ERR [SYS/TEMP]`.
    pub max_size_mb: u64,
    /// Write requests that may wait for the store's writer (default
    /// 1024; at least 1). When that many wait, another waits for room
    /// before it is queued, holding no thread.
    pub writer_queue: usize,
    /// Read requests that may wait for the store's readers (default 1024;
    /// at least 1); past it, as for `writer_queue`.
    pub reader_queue: usize,
    /// Password hashes and checks that may wait for the password workers
    /// (default 256; at least 1); past it, as for `writer_queue`. A login
    /// whose client hung up before its turn costs no hash.
    pub password_queue: usize,
    /// MiB the mailbox indexes kept for reuse may hold (default 8; one
    /// of a 50,000-message mailbox is some MiB); past it the least
    /// recently used go, and an index bigger than all of it is read anew
    /// for each SELECT.
    pub index_cache_mb: u64,
    /// MiB the envelopes decoded for FETCH, POP3 and the HTTP API may
    /// hold (default 4, some 1,400 envelopes of about 3 KiB); past it, as
    /// for `index_cache_mb`.
    pub envelope_cache_mb: u64,
    /// MiB the header fields SEARCH compares (subject and addresses
    /// lower-cased, the sent day) may hold (default 8, some 25,000
    /// messages; a SEARCH over more makes the rest again each time); past
    /// it, as for `index_cache_mb`.
    pub search_fields_cache_mb: u64,
    /// MiB the arrival lists the HTTP API's searches read may hold, their
    /// envelopes included (default 16); past it, as for `index_cache_mb`.
    pub arrival_list_cache_mb: u64,
    /// KiB of SQLite page cache each reader connection keeps (default
    /// 1024; SQLite's own default is 2000): pages read again before
    /// another connection commits are not copied from the operating
    /// system again. There are four readers.
    pub reader_cache_kb: u64,
    /// KiB of write-ahead log after which a checkpoint copies it into the
    /// database file (default 32768; at least SQLite's 1,000 pages). A
    /// page written many times between two checkpoints is copied once, so
    /// a bigger log costs disk space (the WAL file keeps its largest
    /// size), not time.
    pub checkpoint_kb: u64,
    /// Every commit waits for the disk's fsync (default false). Mail that
    /// is accepted or created (SMTP `250`, APPEND, COPY, accounts) always
    /// does; changes to existing mail (flags, expunges, MOVE, `\Recent`,
    /// leases), queue claims and local deliveries of queued mail (the
    /// queue keeps it until the delivery commits) are answered once the
    /// operating system has them: a crash of the process cannot undo them,
    /// a power cut can undo the last few (an undone delivery is made
    /// again), as with Dovecot's default `mail_fsync = optimized`.
    pub sync_every_commit: bool,
    /// Where the store lives (default `sqlite`: `postern.db` in the data
    /// dir, nothing to set up). `postgres`: the PostgreSQL database at
    /// `url`, which several Postern nodes may share.
    pub backend: StoreBackend,
    /// The PostgreSQL database for `backend = "postgres"`:
    /// `postgres://user:password@host:port/dbname` or the key=value form
    /// (`host=… port=… user=… dbname=…`). Default unset. TLS to the
    /// database follows its `sslmode`: `disable`, `prefer` (the default:
    /// TLS when the server offers it, the certificate checked only when
    /// `ca_file` is set) or `require` (TLS, and the certificate must chain
    /// to the system's roots or `ca_file` and name the URL's host).
    pub url: Option<String>,
    /// A PEM file of CA certificates that the PostgreSQL server's
    /// certificate may chain to, besides the system's trusted roots
    /// (default unset). Also used by `postern store copy`.
    pub ca_file: Option<PathBuf>,
}

/// `[store] backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    #[default]
    Sqlite,
    Postgres,
}

impl StoreConfig {
    /// The PostgreSQL URL when the store is there; an error for a
    /// backend and url that do not go together.
    pub fn postgres_url(&self) -> Result<Option<String>, String> {
        match (self.backend, &self.url) {
            (StoreBackend::Sqlite, None) => Ok(None),
            (StoreBackend::Postgres, Some(url)) if !url.trim().is_empty() => Ok(Some(url.clone())),
            (StoreBackend::Postgres, _) => {
                Err("[store] backend = \"postgres\" needs [store] url (POSTERN_STORE_URL)".into())
            }
            (StoreBackend::Sqlite, Some(_)) => Err(
                "[store] url is set but backend is \"sqlite\": set backend = \"postgres\" (POSTERN_STORE_BACKEND=postgres) to use it".into(),
            ),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            changes_keep: 10_000,
            changes_max_age_secs: 30 * 24 * 3600,
            prune_batch: 1000,
            prune_interval_secs: 10,
            max_size_mb: 0,
            writer_queue: 1024,
            reader_queue: 1024,
            password_queue: 256,
            index_cache_mb: 8,
            envelope_cache_mb: 4,
            search_fields_cache_mb: 8,
            arrival_list_cache_mb: 16,
            reader_cache_kb: 1024,
            checkpoint_kb: 32 * 1024,
            sync_every_commit: false,
            backend: StoreBackend::Sqlite,
            url: None,
            ca_file: None,
        }
    }
}

/// `[http]`: the HTTP API (httpd).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// HTTP listeners (default `["127.0.0.1:8025"]`; empty disables).
    pub listen: Vec<SocketAddr>,
    /// Serve `listen` over TLS (the `[tls]` certificate) instead of plain
    /// HTTP (default false).
    pub tls: bool,
    /// HTTPS listeners besides `listen`, with the `[tls]` certificate
    /// (default none).
    pub https_listen: Vec<SocketAddr>,
    /// The admin token: `Authorization: Bearer <token>` sees every
    /// message. Default unset: no admin token.
    pub token: Option<String>,
    /// Largest `limit` a list or search takes (default 1000).
    pub max_page_size: usize,
    /// Largest request body in bytes (default 1048576).
    pub max_body_size: usize,
    /// Longest `timeout` the wait endpoint takes, in seconds (default 300).
    pub max_wait_secs: u64,
    /// Event-stream clients at once (default 100).
    pub max_event_clients: usize,
    /// Most messages one search looks at, newest first (default 20000).
    pub max_search_scan: usize,
    /// Seconds a client may take to send a request's header, and again
    /// its body (default 30).
    pub request_timeout_secs: u64,
    /// A web page login (session cookie) ends after this many seconds
    /// without a request (default 3600).
    pub session_idle_secs: u64,
    /// Web page logins kept at once; the least recently used goes first
    /// (default 10000).
    pub max_sessions: usize,
    /// MiB the search caches may hold (each message's lower-cased header
    /// text and the trigram filter of its body text, which spare later
    /// searches their work); past it they start again (default 32).
    pub search_cache_mb: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8025))],
            tls: false,
            https_listen: Vec::new(),
            token: None,
            max_page_size: 1000,
            max_body_size: 1_048_576,
            max_wait_secs: 300,
            max_event_clients: 100,
            max_search_scan: 20_000,
            request_timeout_secs: 30,
            session_idle_secs: 3600,
            max_sessions: 10_000,
            search_cache_mb: 32,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./postern-data"),
            hostname: "localhost".to_string(),
            local_domains: vec!["localhost".to_string()],
            log: "info".to_string(),
            postmaster: None,
            tls: TlsConfig::default(),
            limits: ListenerLimits::default(),
            auth: AuthConfig::default(),
            smtp: SmtpConfig::default(),
            queue: QueueConfig::default(),
            relay: RelayConfig::default(),
            pop3: Pop3Config::default(),
            imap: ImapConfig::default(),
            http: HttpConfig::default(),
            capture: CaptureConfig::default(),
            rules: RulesConfig::default(),
            store: StoreConfig::default(),
            memory: MemoryConfig::default(),
        }
    }
}
impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            max_connections: 1000,
            max_connections_per_ip: 100,
            tls_handshake_timeout_secs: 30,
            shutdown_grace_secs: 10,
        }
    }
}
impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            plaintext_on_loopback: true,
            plaintext_anywhere: false,
            failures_before_delay: 3,
            delay_step_secs: 2,
            max_delay_secs: 15,
            max_failures_per_session: 3,
        }
    }
}
impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 2525))],
            submission_listen: vec![SocketAddr::from(([127, 0, 0, 1], 2587))],
            submissions_listen: vec![SocketAddr::from(([127, 0, 0, 1], 2465))],
            max_message_size: 52_428_800,
            max_recipients: 100,
            max_line_length: 2048,
            max_errors: 10,
            command_timeout_secs: 300,
            data_timeout_secs: 300,
            recipient_delimiter: "+".to_string(),
            bare_newline: BareNewline::Reject,
            transcript_limit: 64 * 1024,
            sessions_keep: 10_000,
        }
    }
}
impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            min_backoff_secs: 300,
            max_backoff_secs: 4000,
            max_lifetime_secs: 432_000,
            concurrency: 64,
            direct_local_delivery: true,
        }
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
    /// A `POSTERN_…` variable that names no key, or whose value the key
    /// cannot take.
    #[error("environment variable {variable}: {message}")]
    Env { variable: String, message: String },
}

impl Config {
    /// Reads a TOML file; unknown keys are errors that name the key.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml(&text, path)
    }

    /// Parses TOML text (`origin` names it in errors).
    pub fn from_toml(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })
    }

    /// The file at `path` (or the defaults without one), then every
    /// `POSTERN_<SECTION>_<KEY>` / `POSTERN_<KEY>` variable in `vars` over
    /// the key it names. Variables in `reserved` belong to the command
    /// line (`POSTERN_CONFIG`, …) and are skipped; any other `POSTERN_`
    /// variable must name a key and hold a value it can take, or the
    /// error names the variable.
    pub fn load_with_env<I>(
        path: Option<&Path>,
        vars: I,
        reserved: &[&str],
    ) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let (file, mut table) = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                let config = Config::from_toml(&text, path)?;
                // from_toml took it, so this cannot fail; the error is
                // kept for form's sake.
                let table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: e.to_string().trim_end().to_string(),
                })?;
                (config, table)
            }
            None => (Config::default(), toml::Table::new()),
        };
        let overrides = Config::env_overrides(vars, reserved)?;
        if overrides.is_empty() {
            return Ok(file);
        }
        let base = table.clone();
        for (_, path, value) in &overrides {
            env::set(&mut table, path, value.clone());
        }
        if let Ok(config) = toml::Value::Table(table).try_into::<Config>() {
            return Ok(config);
        }
        // Name the variable at fault: the first that fails on its own.
        let mut together = Vec::new();
        for (variable, path, value) in &overrides {
            let mut alone = base.clone();
            env::set(&mut alone, path, value.clone());
            if let Err(e) = toml::Value::Table(alone).try_into::<Config>() {
                return Err(ConfigError::Env {
                    variable: variable.clone(),
                    message: format!(
                        "{} (key {}): {}",
                        value_text(value),
                        path.join("."),
                        e.to_string().trim_end().replace('\n', " ")
                    ),
                });
            }
            together.push(variable.as_str());
        }
        Err(ConfigError::Env {
            variable: together.join(", "),
            message: "these variables do not fit together".to_string(),
        })
    }

    /// The `POSTERN_` variables of `vars` that are config keys: each
    /// one's name, key path and TOML value (`None`: unset the key).
    #[allow(clippy::type_complexity)]
    fn env_overrides<I>(
        vars: I,
        reserved: &[&str],
    ) -> Result<Vec<(String, Vec<&'static str>, Option<toml::Value>)>, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut ours: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(name, _)| name.starts_with(env::PREFIX) && !reserved.contains(&name.as_str()))
            .collect();
        if ours.is_empty() {
            return Ok(Vec::new());
        }
        // Sorted, so that errors come in the same order on every run.
        ours.sort();
        let shape = env::Shape::of::<Config>().map_err(|message| ConfigError::Env {
            variable: env::PREFIX.to_string(),
            message,
        })?;
        let keys = shape.variables();
        let mut overrides = Vec::new();
        for (name, raw) in ours {
            let Some((path, key_shape)) = keys.get(&name[env::PREFIX.len()..]) else {
                return Err(ConfigError::Env {
                    message: "no such configuration key (`POSTERN_<KEY>` names a top-level key, `POSTERN_<SECTION>_<KEY>` a key in a section, as POSTERN_SMTP_LISTEN)".to_string(),
                    variable: name,
                });
            };
            overrides.push((name, path.clone(), env::value_for(&raw, key_shape)));
        }
        Ok(overrides)
    }
}

/// A value as an error message shows it.
fn value_text(value: &Option<toml::Value>) -> String {
    match value {
        Some(v) => format!("value {v}"),
        None => "empty value".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("test.toml"))
    }

    #[test]
    fn empty_file_is_defaults() {
        let c = parse("").unwrap();
        let d = Config::default();
        assert_eq!(c.data_dir, d.data_dir);
        assert_eq!(c.data_dir, PathBuf::from("./postern-data"));
        assert_eq!(c.hostname, "localhost");
        assert_eq!(c.local_domains, vec!["localhost".to_string()]);
        assert_eq!(c.log, "info");
        assert!(c.tls.cert.is_none() && c.tls.key.is_none());
        assert_eq!(c.limits.max_connections, 1000);
        assert_eq!(c.limits.max_connections_per_ip, 100);
        assert_eq!(c.limits.tls_handshake_timeout_secs, 30);
        assert_eq!(c.limits.shutdown_grace_secs, 10);
        assert!(c.auth.plaintext_on_loopback);
        assert!(!c.auth.plaintext_anywhere);
        assert_eq!(c.auth.failures_before_delay, 3);
        assert_eq!(c.auth.delay_step_secs, 2);
        assert_eq!(c.auth.max_delay_secs, 15);
        assert_eq!(c.auth.max_failures_per_session, 3);
        assert_eq!(c.smtp.listen, vec!["127.0.0.1:2525".parse().unwrap()]);
        assert_eq!(
            c.smtp.submission_listen,
            vec!["127.0.0.1:2587".parse().unwrap()]
        );
        assert_eq!(
            c.smtp.submissions_listen,
            vec!["127.0.0.1:2465".parse().unwrap()]
        );
        assert_eq!(c.smtp.max_message_size, 52_428_800);
        assert_eq!(c.smtp.max_recipients, 100);
        assert_eq!(c.smtp.max_line_length, 2048);
        assert_eq!(c.smtp.max_errors, 10);
        assert_eq!(c.smtp.command_timeout_secs, 300);
        assert_eq!(c.smtp.data_timeout_secs, 300);
        assert_eq!(c.smtp.recipient_delimiter, "+");
        assert_eq!(c.smtp.bare_newline, BareNewline::Reject);
        assert!(!c.capture.enabled);
        assert_eq!(c.capture.password, None);
        assert_eq!(c.rules.max_delay_ms, 60_000);
        assert_eq!(c.rules.max_rules, 1000);
        assert_eq!(c.rules.fire_log_size, 1000);
        assert_eq!(c.rules.chaos_seed, None);
        assert_eq!(c.queue.min_backoff_secs, 300);
        assert_eq!(c.queue.max_backoff_secs, 4000);
        assert_eq!(c.queue.max_lifetime_secs, 432_000);
        assert_eq!(c.queue.concurrency, 64);
        assert_eq!(c.pop3.listen, vec!["127.0.0.1:1110".parse().unwrap()]);
        assert_eq!(c.pop3.pop3s_listen, vec!["127.0.0.1:1995".parse().unwrap()]);
        assert_eq!(c.pop3.delete_mode, Pop3DeleteMode::Expunge);
        assert!(c.pop3.mark_seen);
        assert_eq!(c.pop3.max_line_length, 1024);
        assert_eq!(c.pop3.command_timeout_secs, 600);
        assert_eq!(c.pop3.max_bad_commands, 20);
        assert!(c.pop3.accounts.is_empty());
    }

    #[test]
    fn imap_section_defaults_and_values() {
        let c = Config::default();
        assert_eq!(c.imap.listen, vec!["127.0.0.1:1143".parse().unwrap()]);
        assert_eq!(c.imap.imaps_listen, vec!["127.0.0.1:1993".parse().unwrap()]);
        assert_eq!(c.imap.max_line_length, 65536);
        assert_eq!(c.imap.max_literal_size, 52_428_800);
        assert_eq!(c.imap.idle_timeout_secs, 1800);
        assert_eq!(c.imap.max_bad_commands, 20);
        let c = parse("[imap]\nlisten = []\nidle_timeout_secs = 60\nmax_literal_size = 1000\n")
            .unwrap();
        assert!(c.imap.listen.is_empty());
        assert_eq!(c.imap.imaps_listen, vec!["127.0.0.1:1993".parse().unwrap()]);
        assert_eq!(c.imap.idle_timeout_secs, 60);
        assert_eq!(c.imap.max_literal_size, 1000);
        assert!(parse("[imap]\nidle_timeout = 5\n").is_err());
    }

    #[test]
    fn http_section_defaults_and_values() {
        let c = Config::default();
        assert_eq!(c.http.listen, vec!["127.0.0.1:8025".parse().unwrap()]);
        assert!(!c.http.tls && c.http.https_listen.is_empty());
        assert_eq!(c.http.token, None);
        assert_eq!(c.http.max_page_size, 1000);
        assert_eq!(c.http.max_body_size, 1_048_576);
        assert_eq!(c.http.max_wait_secs, 300);
        assert_eq!(c.http.max_event_clients, 100);
        assert_eq!(c.http.max_search_scan, 20_000);
        assert_eq!(c.http.request_timeout_secs, 30);
        assert_eq!(c.http.session_idle_secs, 3600);
        assert_eq!(c.http.max_sessions, 10_000);
        assert!(!c.capture.enabled && c.capture.password.is_none());
        let c = parse("[http]\nsession_idle_secs = 60\n").unwrap();
        assert_eq!(c.http.session_idle_secs, 60);
        let c = parse("[http]\nlisten = []\ntoken = \"t0k\"\n[capture]\nenabled = true\n").unwrap();
        assert!(c.http.listen.is_empty());
        assert_eq!(c.http.token.as_deref(), Some("t0k"));
        assert!(c.capture.enabled);
        assert!(parse("[http]\nmax_pagesize = 5\n").is_err());
    }

    #[test]
    fn pop3_section_and_account_overrides() {
        let c = parse(
            "[pop3]\ndelete_mode = \"hide\"\nlisten = []\n[pop3.accounts.\"Bob@localhost\"]\ndelete_mode = \"expunge\"\n[pop3.accounts.\"carol@localhost\"]\nmark_seen = false\n",
        )
        .unwrap();
        assert!(c.pop3.listen.is_empty());
        assert_eq!(c.pop3.pop3s_listen, vec!["127.0.0.1:1995".parse().unwrap()]);
        let hide_seen = Pop3Policy {
            delete_mode: Pop3DeleteMode::Hide,
            mark_seen: true,
        };
        assert_eq!(c.pop3.policy_for("alice@localhost"), hide_seen);
        assert_eq!(
            c.pop3.policy_for("bob@LOCALHOST"),
            Pop3Policy {
                delete_mode: Pop3DeleteMode::Expunge,
                mark_seen: true
            }
        );
        assert_eq!(
            c.pop3.policy_for("carol@localhost"),
            Pop3Policy {
                delete_mode: Pop3DeleteMode::Hide,
                mark_seen: false
            }
        );
        assert_eq!(
            Config::default().pop3.policy_for("anyone@localhost"),
            Pop3Policy {
                delete_mode: Pop3DeleteMode::Expunge,
                mark_seen: true
            }
        );
    }

    #[test]
    fn pop3_bad_values_are_named() {
        let e = parse("[pop3]\ndelete_mode = \"shred\"\n").unwrap_err();
        assert!(e.to_string().contains("shred"), "{e}");
        let e = parse("[pop3]\nmark_seeen = true\n").unwrap_err();
        assert!(e.to_string().contains("mark_seeen"), "{e}");
        let e = parse("[pop3.accounts.\"a@localhost\"]\nkeep = true\n").unwrap_err();
        assert!(e.to_string().contains("keep"), "{e}");
    }

    #[test]
    fn partial_file_overrides_one_key() {
        let c = parse("hostname = \"mx.example.org\"\n[smtp]\nmax_recipients = 7\n").unwrap();
        assert_eq!(c.hostname, "mx.example.org");
        assert_eq!(c.smtp.max_recipients, 7);
        // Everything else in the section keeps its default.
        assert_eq!(c.smtp.max_errors, 10);
        assert_eq!(c.smtp.listen, vec!["127.0.0.1:2525".parse().unwrap()]);
        assert_eq!(c.log, "info");
    }

    #[test]
    fn bare_newline_and_capture() {
        let c = parse("[smtp]\nbare_newline = \"normalize\"\n[capture]\nenabled = true\n").unwrap();
        assert_eq!(c.smtp.bare_newline, BareNewline::Normalize);
        assert!(c.capture.enabled);
        let e = parse("[smtp]\nbare_newline = \"strip\"\n").unwrap_err();
        assert!(e.to_string().contains("strip"), "{e}");
        let c = from_env(&[
            ("POSTERN_SMTP_BARE_NEWLINE", "normalize"),
            ("POSTERN_CAPTURE_ENABLED", "1"),
            ("POSTERN_CAPTURE_PASSWORD", "1234"),
        ])
        .unwrap();
        assert_eq!(c.smtp.bare_newline, BareNewline::Normalize);
        assert!(c.capture.enabled);
        assert_eq!(c.capture.password.as_deref(), Some("1234"));
    }

    #[test]
    fn max_bad_commands_from_file_and_environment() {
        let c = parse("[imap]\nmax_bad_commands = 5\n[pop3]\nmax_bad_commands = 0\n").unwrap();
        assert_eq!((c.imap.max_bad_commands, c.pop3.max_bad_commands), (5, 0));
        let c = from_env(&[
            ("POSTERN_IMAP_MAX_BAD_COMMANDS", "7"),
            ("POSTERN_POP3_MAX_BAD_COMMANDS", "3"),
        ])
        .unwrap();
        assert_eq!((c.imap.max_bad_commands, c.pop3.max_bad_commands), (7, 3));
    }

    #[test]
    fn max_notify_mailboxes_from_file_and_environment() {
        assert_eq!(parse("").unwrap().imap.max_notify_mailboxes, 100);
        let c = parse("[imap]\nmax_notify_mailboxes = 5\n").unwrap();
        assert_eq!(c.imap.max_notify_mailboxes, 5);
        let c = from_env(&[("POSTERN_IMAP_MAX_NOTIFY_MAILBOXES", "7")]).unwrap();
        assert_eq!(c.imap.max_notify_mailboxes, 7);
    }

    #[test]
    fn empty_listen_list_disables() {
        let c = parse("[smtp]\nlisten = []\n").unwrap();
        assert!(c.smtp.listen.is_empty());
    }

    #[test]
    fn unknown_key_is_named() {
        let e = parse("[smtp]\nmax_recipientz = 7\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("test.toml"), "{msg}");
        assert!(msg.contains("max_recipientz"), "{msg}");
        let e = parse("frobnicate = true\n").unwrap_err();
        assert!(e.to_string().contains("frobnicate"), "{e}");
    }

    #[test]
    fn bad_type_is_an_error() {
        let e = parse("[smtp]\nmax_recipients = \"many\"\n").unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }));
        assert!(e.to_string().contains("test.toml"));
        assert!(parse("[smtp]\nlisten = [\"not an address\"]\n").is_err());
        assert!(parse("[queue]\nconcurrency = -1\n").is_err());
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn from_env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::load_with_env(None, vars(pairs), &["POSTERN_CONFIG", "POSTERN_DATA_DIR"])
    }

    #[test]
    fn every_key_has_a_variable() {
        let shape = env::Shape::of::<Config>().expect("the config's shape");
        let names = shape.variables();
        for name in [
            "DATA_DIR",
            "HOSTNAME",
            "LOCAL_DOMAINS",
            "LOG",
            "POSTMASTER",
            "TLS_CERT",
            "TLS_KEY",
            "LIMITS_MAX_CONNECTIONS",
            "AUTH_PLAINTEXT_ANYWHERE",
            "SMTP_LISTEN",
            "SMTP_SUBMISSION_LISTEN",
            "SMTP_MAX_MESSAGE_SIZE",
            "SMTP_RECIPIENT_DELIMITER",
            "QUEUE_CONCURRENCY",
            "RELAY_TRUSTED_NETWORKS",
            "RELAY_SMARTHOST",
            "RELAY_SMARTHOST_HOST",
            "RELAY_TRANSPORT",
            "RELAY_TLS",
            "RELAY_HELO_NAME",
            "POP3_DELETE_MODE",
            "POP3_ACCOUNTS",
            "IMAP_LISTEN",
            "IMAP_MAX_LITERAL_SIZE",
            "SMTP_BARE_NEWLINE",
            "CAPTURE_ENABLED",
            "CAPTURE_PASSWORD",
            "RULES_CHAOS_SEED",
            "RULES_FIRE_LOG_SIZE",
        ] {
            assert!(names.contains_key(name), "POSTERN_{name} is missing");
        }
        // User-keyed maps are reachable only whole.
        assert!(!names.keys().any(|n| n.starts_with("POP3_ACCOUNTS_")));
    }

    #[test]
    fn env_overrides_defaults() {
        let c = from_env(&[
            ("POSTERN_SMTP_LISTEN", r#"["127.0.0.1:2526"]"#),
            ("POSTERN_SMTP_MAX_MESSAGE_SIZE", "1000"),
            ("POSTERN_HOSTNAME", "mx.test"),
            ("POSTERN_IMAP_LISTEN", ""),
            ("POSTERN_POP3_LISTEN", "127.0.0.1:1111, [::1]:1111"),
            ("POSTERN_AUTH_PLAINTEXT_ANYWHERE", "1"),
            ("POSTERN_POP3_DELETE_MODE", "hide"),
            ("POSTERN_TLS_CERT", "/etc/ssl/cert.pem"),
            ("POSTERN_SMTP_RECIPIENT_DELIMITER", ""),
            ("POSTERN_LOG", "smtpd=debug,info"),
            (
                "POSTERN_RELAY_SMARTHOST",
                r#"{ host = "smtp.example:587", tls = "encrypt" }"#,
            ),
            ("HOME", "/root"),
            ("POSTERN_CONFIG", "/not/read/here.toml"),
        ])
        .unwrap();
        assert_eq!(c.smtp.listen, vec!["127.0.0.1:2526".parse().unwrap()]);
        assert_eq!(c.smtp.max_message_size, 1000);
        assert_eq!(c.hostname, "mx.test");
        assert!(c.imap.listen.is_empty());
        assert_eq!(
            c.pop3.listen,
            vec![
                "127.0.0.1:1111".parse().unwrap(),
                "[::1]:1111".parse().unwrap()
            ]
        );
        assert!(c.auth.plaintext_anywhere);
        assert_eq!(c.pop3.delete_mode, Pop3DeleteMode::Hide);
        assert_eq!(c.tls.cert, Some(PathBuf::from("/etc/ssl/cert.pem")));
        assert_eq!(c.smtp.recipient_delimiter, "");
        assert_eq!(c.log, "smtpd=debug,info");
        let smarthost = c.relay.smarthost.unwrap();
        assert_eq!(smarthost.host, "smtp.example:587");
        assert_eq!(smarthost.tls, RelayTls::Encrypt);
        // Untouched keys keep their defaults.
        assert_eq!(c.smtp.max_recipients, 100);
        assert_eq!(c.imap.imaps_listen, vec!["127.0.0.1:1993".parse().unwrap()]);
    }

    #[test]
    fn env_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("postern.toml");
        std::fs::write(
            &path,
            "hostname = \"file.test\"\npostmaster = \"pm@localhost\"\n[smtp]\nmax_recipients = 7\nmax_errors = 3\n[relay]\nsmarthost = { host = \"a:25\" }\n",
        )
        .unwrap();
        let c = Config::load_with_env(
            Some(&path),
            vars(&[
                ("POSTERN_SMTP_MAX_ERRORS", "5"),
                ("POSTERN_POSTMASTER", ""),
                ("POSTERN_RELAY_SMARTHOST_USERNAME", "u"),
            ]),
            &[],
        )
        .unwrap();
        assert_eq!(c.hostname, "file.test");
        assert_eq!(c.smtp.max_recipients, 7);
        assert_eq!(c.smtp.max_errors, 5);
        // An empty value unsets an optional key.
        assert_eq!(c.postmaster, None);
        // One key of a table the file gave; the rest stays.
        let smarthost = c.relay.smarthost.unwrap();
        assert_eq!(
            (smarthost.host.as_str(), smarthost.username.as_deref()),
            ("a:25", Some("u"))
        );
        // A bad file is still the file's error.
        std::fs::write(&path, "[smtp]\nmax_recipientz = 1\n").unwrap();
        let e = Config::load_with_env(Some(&path), vars(&[("POSTERN_LOG", "x")]), &[]).unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }), "{e}");
    }

    #[test]
    fn env_errors_name_the_variable() {
        let e = from_env(&[("POSTERN_SMTP_MAX_RECIPIENTZ", "7")]).unwrap_err();
        assert!(matches!(e, ConfigError::Env { .. }));
        assert!(e.to_string().contains("POSTERN_SMTP_MAX_RECIPIENTZ"), "{e}");
        let e = from_env(&[("POSTERN_FROBNICATE", "1")]).unwrap_err();
        assert!(e.to_string().contains("POSTERN_FROBNICATE"), "{e}");
        // A map's entries are not keys.
        let e = from_env(&[("POSTERN_POP3_ACCOUNTS_ALICE", "{}")]).unwrap_err();
        assert!(e.to_string().contains("POSTERN_POP3_ACCOUNTS_ALICE"), "{e}");
        for (name, value) in [
            ("POSTERN_SMTP_MAX_RECIPIENTS", "many"),
            ("POSTERN_QUEUE_CONCURRENCY", "-1"),
            ("POSTERN_SMTP_LISTEN", "not an address"),
            ("POSTERN_AUTH_PLAINTEXT_ANYWHERE", "maybe"),
            ("POSTERN_POP3_DELETE_MODE", "shred"),
            ("POSTERN_RELAY_SMARTHOST_USERNAME", "u"),
        ] {
            let e = from_env(&[("POSTERN_HOSTNAME", "fine"), (name, value)]).unwrap_err();
            let text = e.to_string();
            assert!(text.contains(name), "{name}={value}: {text}");
            assert!(!text.contains("POSTERN_HOSTNAME"), "{text}");
        }
    }

    #[test]
    fn reserved_variables_are_left_to_the_command_line() {
        let c = Config::load_with_env(
            None,
            vars(&[("POSTERN_CONFIG", "x.toml"), ("POSTERN_CAPTURE", "1")]),
            &["POSTERN_CONFIG", "POSTERN_CAPTURE"],
        )
        .unwrap();
        assert_eq!(c.hostname, "localhost");
        assert!(from_env(&[("POSTERN_CAPTURE", "1")]).is_err());
    }

    #[test]
    fn store_queue_sizes_default_to_the_stores_and_are_set_by_file_or_environment() {
        let c = Config::default();
        let defaults = store::StoreOptions::default();
        assert_eq!(c.store.writer_queue, defaults.writer_queue);
        assert_eq!(c.store.reader_queue, defaults.reader_queue);
        assert_eq!(c.store.password_queue, defaults.password_queue);

        let c = parse("[store]\nwriter_queue = 8\npassword_queue = 2\n").unwrap();
        assert_eq!(c.store.writer_queue, 8);
        assert_eq!(c.store.password_queue, 2);
        assert_eq!(c.store.reader_queue, defaults.reader_queue);

        let c = Config::load_with_env(None, vars(&[("POSTERN_STORE_READER_QUEUE", "16")]), &[])
            .unwrap();
        assert_eq!(c.store.reader_queue, 16);
        assert!(from_env(&[("POSTERN_STORE_READER_QUEUE", "-1")]).is_err());
    }

    #[test]
    fn store_cache_budgets_default_to_the_stores_and_are_set_by_file_or_environment() {
        let mib = 1024 * 1024;
        let c = Config::default();
        let defaults = store::StoreOptions::default();
        assert_eq!(c.store.index_cache_mb * mib, defaults.index_cache_bytes);
        assert_eq!(
            c.store.envelope_cache_mb * mib,
            defaults.envelope_cache_bytes
        );
        assert_eq!(
            c.store.arrival_list_cache_mb * mib,
            defaults.arrival_list_cache_bytes
        );
        assert_eq!(
            c.store.search_fields_cache_mb * mib,
            defaults.search_fields_cache_bytes
        );

        let c = parse(
            "[store]\nindex_cache_mb = 64\nenvelope_cache_mb = 0\nsearch_fields_cache_mb = 2\n",
        )
        .unwrap();
        assert_eq!(c.store.index_cache_mb, 64);
        assert_eq!(c.store.envelope_cache_mb, 0);
        assert_eq!(c.store.search_fields_cache_mb, 2);
        assert_eq!(c.store.arrival_list_cache_mb, 16);

        let c = from_env(&[
            ("POSTERN_STORE_ENVELOPE_CACHE_MB", "12"),
            ("POSTERN_STORE_ARRIVAL_LIST_CACHE_MB", "1"),
        ])
        .unwrap();
        assert_eq!(c.store.envelope_cache_mb, 12);
        assert_eq!(c.store.arrival_list_cache_mb, 1);
        assert_eq!(c.store.index_cache_mb, 8);
        assert!(from_env(&[("POSTERN_STORE_INDEX_CACHE_MB", "lots")]).is_err());
    }

    #[test]
    fn reader_page_cache_and_memory_keys_by_file_or_environment() {
        let c = Config::default();
        assert_eq!(
            c.store.reader_cache_kb * 1024,
            store::StoreOptions::default().reader_cache_bytes
        );
        assert_eq!(
            c.store.checkpoint_kb * 1024,
            store::StoreOptions::default().checkpoint_bytes
        );
        assert_eq!(c.memory.arena_max, 4);
        assert_eq!(c.memory.trim_interval_ms, 1000);
        let c = parse("[store]\ncheckpoint_kb = 4000\n").unwrap();
        assert_eq!(c.store.checkpoint_kb, 4000);

        let c = parse("[store]\nreader_cache_kb = 256\n[memory]\narena_max = 0\n").unwrap();
        assert_eq!(c.store.reader_cache_kb, 256);
        assert_eq!(c.memory.arena_max, 0);
        assert_eq!(c.memory.trim_interval_ms, 1000);
        assert!(parse("[memory]\ntrim_every_ms = 5\n").is_err());

        let c = from_env(&[
            ("POSTERN_MEMORY_TRIM_INTERVAL_MS", "0"),
            ("POSTERN_STORE_READER_CACHE_KB", "4096"),
        ])
        .unwrap();
        assert_eq!(c.memory.trim_interval_ms, 0);
        assert_eq!(c.store.reader_cache_kb, 4096);
        assert!(from_env(&[("POSTERN_MEMORY_ARENA_MAX", "-1")]).is_err());
    }

    #[test]
    fn store_section_defaults_file_and_environment() {
        let c = Config::default();
        assert_eq!(c.store.changes_keep, 10_000);
        assert_eq!(c.store.changes_max_age_secs, 2_592_000);
        assert_eq!(c.store.prune_batch, 1000);
        assert_eq!(c.store.prune_interval_secs, 10);

        let c = parse("[store]\nchanges_keep = 500\nprune_batch = 50\n").unwrap();
        assert_eq!(c.store.changes_keep, 500);
        assert_eq!(c.store.prune_batch, 50);
        assert_eq!(c.store.changes_max_age_secs, 2_592_000);
        assert!(parse("[store]\nchanges_kept = 5\n").is_err());

        // The environment wins over the file; other keys stay.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("postern.toml");
        std::fs::write(&path, "[store]\nchanges_keep = 500\nprune_batch = 50\n").unwrap();
        let env = vars(&[
            ("POSTERN_STORE_CHANGES_KEEP", "42"),
            ("POSTERN_STORE_CHANGES_MAX_AGE_SECS", " 0 "),
        ]);
        let c = Config::load_with_env(Some(&path), env, &[]).unwrap();
        assert_eq!(c.store.changes_keep, 42);
        assert_eq!(c.store.changes_max_age_secs, 0);
        assert_eq!(c.store.prune_batch, 50);
        assert_eq!(c.store.prune_interval_secs, 10);

        let e = from_env(&[("POSTERN_STORE_PRUNE_BATCH", "lots")]).unwrap_err();
        assert!(e.to_string().contains("POSTERN_STORE_PRUNE_BATCH"), "{e}");
        assert!(e.to_string().contains("lots"), "{e}");
    }

    #[test]
    fn load_reads_file_and_names_missing_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("postern.toml");
        std::fs::write(&path, "[limits]\nmax_connections = 5\n").unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(c.limits.max_connections, 5);
        assert_eq!(c.limits.max_connections_per_ip, 100);

        let missing = dir.path().join("nope.toml");
        let e = Config::load(&missing).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }));
        assert!(e.to_string().contains("nope.toml"));
    }
}
