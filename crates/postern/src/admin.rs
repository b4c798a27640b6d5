//! The administration subcommands: users, domains, aliases, mail, queue.

use std::io::{BufRead, IsTerminal};

use clap::{Args, Subcommand};
use common::config::Config;
use store::{
    BodyType, QueueId, QueuedMessage, QuotaLimit, RecipientState, Store, StoreError, Timestamp, Uid,
};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create an account (and its default mailboxes).
    Add {
        address: String,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// List accounts.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Change an account's password.
    Passwd {
        address: String,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Delete an account with all its mail.
    Del { address: String },
    /// Show an account's quota and usage, or set its limits (IMAP QUOTA).
    Quota {
        address: String,
        /// Storage limit: a size in KiB, or with a unit (`500K`, `500M`,
        /// `2G`, `1T`), or `none` for no limit.
        #[arg(long, value_parser = parse_storage)]
        storage: Option<QuotaLimit>,
        /// Message count limit, or `none` for no limit.
        #[arg(long, value_parser = parse_message_limit)]
        messages: Option<QuotaLimit>,
    },
}

/// `none` (or `unlimited`): no limit.
fn is_no_limit(s: &str) -> bool {
    s.eq_ignore_ascii_case("none") || s.eq_ignore_ascii_case("unlimited")
}

/// A storage limit in KiB: a number of KiB (RFC 9208's unit), or one
/// with a unit `K`, `M`, `G` or `T`
/// (powers of 1024, `B`/`iB` after it allowed), or `none`.
fn parse_storage(s: &str) -> Result<QuotaLimit, String> {
    if is_no_limit(s) {
        return Ok(QuotaLimit::Unlimited);
    }
    let invalid = || format!("invalid size {s:?}: use e.g. 500M, 2G, 102400 (KiB) or none");
    let upper = s.trim().to_ascii_uppercase();
    let unit_text = upper.trim_start_matches(|c: char| c.is_ascii_digit());
    let digits = &upper[..upper.len() - unit_text.len()];
    let number: u64 = digits.parse().map_err(|_| invalid())?;
    let unit = unit_text
        .strip_suffix("IB")
        .or_else(|| unit_text.strip_suffix('B'))
        .unwrap_or(unit_text);
    let kib_per_unit: u64 = match unit {
        "" | "K" => 1,
        "M" => 1 << 10,
        "G" => 1 << 20,
        "T" => 1 << 30,
        _ => return Err(invalid()),
    };
    number
        .checked_mul(kib_per_unit)
        .filter(|&kib| i64::try_from(kib).is_ok())
        .map(QuotaLimit::Set)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

fn parse_message_limit(s: &str) -> Result<QuotaLimit, String> {
    if is_no_limit(s) {
        return Ok(QuotaLimit::Unlimited);
    }
    s.trim()
        .parse::<u64>()
        .ok()
        .filter(|&n| i64::try_from(n).is_ok())
        .map(QuotaLimit::Set)
        .ok_or_else(|| format!("invalid message count {s:?}: use a number or none"))
}

/// KiB as people read them: `512 KiB`, `500 MiB`, `1.5 GiB`.
fn kib_text(kib: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "TiB"), (1 << 20, "GiB"), (1 << 10, "MiB")];
    for (size, unit) in UNITS {
        if kib >= size {
            let value = kib as f64 / size as f64;
            return if kib.is_multiple_of(size) {
                format!("{} {unit}", kib / size)
            } else {
                format!("{value:.1} {unit}")
            };
        }
    }
    format!("{kib} KiB")
}

fn print_quota(address: &str, quota: &store::Quota) {
    let storage = match quota.storage_limit_kib {
        Some(limit) => {
            let percent = quota.used_bytes.saturating_mul(100) / limit.saturating_mul(1024).max(1);
            format!(
                "{} of {} ({percent}%)",
                kib_text(quota.used_kib()),
                kib_text(limit)
            )
        }
        None => format!("{} (no limit)", kib_text(quota.used_kib())),
    };
    let messages = match quota.message_limit {
        Some(limit) => format!("{} of {limit}", quota.used_messages),
        None => format!("{} (no limit)", quota.used_messages),
    };
    println!("{address}");
    println!("  storage   {storage}");
    println!("  messages  {messages}");
}

#[derive(Args)]
pub struct PasswordSource {
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Subcommand)]
pub enum DomainCommand {
    /// Accept mail for another local domain.
    Add { domain: String },
    /// List local domains (configured and stored).
    List,
}

#[derive(Subcommand)]
pub enum AliasCommand {
    /// Deliver mail for ALIAS to the account TARGET.
    Add { alias: String, target: String },
}

#[derive(Subcommand)]
pub enum MailCommand {
    /// List the messages in a mailbox.
    List {
        address: String,
        #[arg(long, default_value = "INBOX")]
        mailbox: String,
        #[arg(long)]
        json: bool,
    },
    /// Print one message, byte for byte as stored.
    Show {
        address: String,
        uid: u32,
        #[arg(long, default_value = "INBOX")]
        mailbox: String,
    },
    /// List an account's mailboxes.
    Mailboxes {
        address: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum QueueCommand {
    /// List queued messages and each recipient's state (like `postqueue -p`).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one queued message: envelope, recipients and main headers.
    Show {
        /// Queue id, as `postern queue list` shows it.
        #[arg(value_parser = parse_queue_id)]
        id: QueueId,
        /// Print the whole message, byte for byte as queued, instead.
        #[arg(long)]
        raw: bool,
    },
    /// Make a message's deferred recipients due now (like `postqueue -i`);
    /// a running queue manager tries them within a few seconds. Pending
    /// recipients are due already, or being delivered.
    Retry {
        /// Queue id, as `postern queue list` shows it.
        #[arg(value_parser = parse_queue_id)]
        id: QueueId,
    },
    /// Make every deferred recipient due now (like `postqueue -f`); a running
    /// queue manager tries them within a few seconds.
    Flush,
    /// Remove a message from the queue without delivering or bouncing it
    /// (like `postsuper -d`).
    Delete {
        /// Queue id, as `postern queue list` shows it.
        #[arg(
            value_parser = parse_queue_id,
            required_unless_present = "all",
            conflicts_with = "all"
        )]
        id: Option<QueueId>,
        /// Remove every queued message.
        #[arg(long)]
        all: bool,
    },
}

fn parse_queue_id(s: &str) -> Result<QueueId, String> {
    s.parse::<i64>()
        .ok()
        .filter(|&n| n > 0)
        .map(QueueId)
        .ok_or_else(|| "a queue id is a positive number, as `postern queue list` shows".into())
}

pub fn open_store(config: &Config) -> Result<Store, String> {
    common::daemon::open_store(config)
}

fn err(e: StoreError) -> String {
    e.to_string()
}

fn read_password(source: &PasswordSource) -> Result<String, String> {
    let password = if source.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read password: {e}"))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        if !std::io::stdin().is_terminal() {
            return Err("no terminal to prompt on; use --password-stdin".into());
        }
        let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let again = rpassword::prompt_password("Again: ").map_err(|e| e.to_string())?;
        if first != again {
            return Err("passwords do not match".into());
        }
        first
    };
    if password.is_empty() {
        return Err("empty password".into());
    }
    Ok(password)
}

pub async fn user(config: &Config, command: UserCommand) -> Result<(), String> {
    let store = open_store(config)?;
    match command {
        UserCommand::Add { address, password } => {
            let password = read_password(&password)?;
            let account = store.add_account(&address, &password).await.map_err(err)?;
            println!("added {}", account.address);
        }
        UserCommand::List { json } => {
            let accounts = store.accounts().await.map_err(err)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&accounts).map_err(|e| e.to_string())?
                );
            } else {
                for a in accounts {
                    println!("{}", a.address);
                }
            }
        }
        UserCommand::Passwd { address, password } => {
            let password = read_password(&password)?;
            store.set_password(&address, &password).await.map_err(err)?;
            println!("password changed for {address}");
        }
        UserCommand::Del { address } => {
            store.delete_account(&address).await.map_err(err)?;
            println!("deleted {address}");
        }
        UserCommand::Quota {
            address,
            storage,
            messages,
        } => {
            let (storage, messages) = (storage.unwrap_or_default(), messages.unwrap_or_default());
            let quota = if storage == QuotaLimit::Keep && messages == QuotaLimit::Keep {
                let account = account_id(&store, &address).await?;
                store.quota(account).await.map_err(err)?
            } else {
                store
                    .set_quota(&address, storage, messages)
                    .await
                    .map_err(|e| match e {
                        StoreError::NotFound(_) => format!("no such account: {address}"),
                        e => err(e),
                    })?
            };
            print_quota(&address.to_lowercase(), &quota);
        }
    }
    Ok(())
}

pub async fn domain(config: &Config, command: DomainCommand) -> Result<(), String> {
    let store = open_store(config)?;
    match command {
        DomainCommand::Add { domain } => {
            store.add_domain(&domain).await.map_err(err)?;
            println!("added {domain}");
        }
        DomainCommand::List => {
            let mut domains: Vec<String> = config
                .local_domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect();
            domains.extend(store.domains().await.map_err(err)?);
            domains.sort();
            domains.dedup();
            for d in domains {
                println!("{d}");
            }
        }
    }
    Ok(())
}

pub async fn alias(config: &Config, command: AliasCommand) -> Result<(), String> {
    let store = open_store(config)?;
    match command {
        AliasCommand::Add { alias, target } => {
            store.add_alias(&alias, &target).await.map_err(err)?;
            println!("{alias} -> {target}");
        }
    }
    Ok(())
}

async fn account_id(store: &Store, address: &str) -> Result<store::AccountId, String> {
    match store.account(address).await.map_err(err)? {
        Some(a) => Ok(a.id),
        None => Err(format!("no such account: {address}")),
    }
}

fn date(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|d| d.to_rfc3339())
        .unwrap_or_else(|| ts.to_string())
}

pub async fn mail(config: &Config, command: MailCommand) -> Result<(), String> {
    let store = open_store(config)?;
    match command {
        MailCommand::List {
            address,
            mailbox,
            json,
        } => {
            let id = account_id(&store, &address).await?;
            let messages = store.messages(id, &mailbox).await.map_err(err)?;
            if json {
                let list: Vec<serde_json::Value> = messages
                    .iter()
                    .map(|m| {
                        serde_json::json!({
                            "uid": m.uid,
                            "size": m.size,
                            "internal_date": date(m.internal_date),
                            "flags": m.flags,
                            // The Return-Path recorded at delivery: ""
                            // for the null sender, null when there is none
                            // (a message put there by IMAP APPEND).
                            "envelope_sender": m.summary.return_path,
                            "from": m.summary.from,
                            "to": m.summary.to,
                            "subject": m.summary.subject,
                            "message_id": m.summary.message_id,
                            "date": m.summary.date.map(date),
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list).map_err(|e| e.to_string())?
                );
            } else {
                println!(
                    "{:>6}  {:<25}  {:>8}  {:<30}  SUBJECT",
                    "UID", "RECEIVED", "SIZE", "FROM"
                );
                for m in messages {
                    let from = m
                        .summary
                        .from
                        .first()
                        .and_then(|a| a.address.clone().or(a.name.clone()))
                        .unwrap_or_default();
                    println!(
                        "{:>6}  {:<25}  {:>8}  {:<30}  {}",
                        m.uid,
                        date(m.internal_date),
                        m.size,
                        from,
                        m.summary.subject.clone().unwrap_or_default()
                    );
                }
            }
        }
        MailCommand::Show {
            address,
            uid,
            mailbox,
        } => {
            let id = account_id(&store, &address).await?;
            match store
                .message_raw(id, &mailbox, Uid(uid))
                .await
                .map_err(err)?
            {
                Some(raw) => {
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    out.write_all(&raw)
                        .and_then(|()| out.flush())
                        .map_err(|e| e.to_string())?;
                }
                None => {
                    return Err(format!(
                        "no message with UID {uid} in {mailbox} of {address}"
                    ))
                }
            }
        }
        MailCommand::Mailboxes { address, json } => {
            let id = account_id(&store, &address).await?;
            let boxes = store.mailboxes(id).await.map_err(err)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&boxes).map_err(|e| e.to_string())?
                );
            } else {
                for b in boxes {
                    println!(
                        "{:<20} {:>6} messages {:>6} unseen {}",
                        b.name,
                        b.messages,
                        b.unseen,
                        b.special_use.unwrap_or_default()
                    );
                }
            }
        }
    }
    Ok(())
}

pub async fn queue(config: &Config, command: QueueCommand) -> Result<(), String> {
    let store = open_store(config)?;
    let now = chrono::Utc::now().timestamp();
    match command {
        QueueCommand::List { json } => {
            let queue = store.queue().await.map_err(err)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&queue).map_err(|e| e.to_string())?
                );
                return Ok(());
            }
            if queue.is_empty() {
                println!("queue is empty");
                return Ok(());
            }
            for m in &queue {
                print_queued(m, now);
            }
            let waiting = queue
                .iter()
                .flat_map(|m| &m.recipients)
                .filter(|r| is_waiting(r.state))
                .count();
            println!(
                "{}, {} waiting",
                plural(queue.len(), "message"),
                plural(waiting, "recipient")
            );
        }
        QueueCommand::Show { id, raw } => {
            let message = queued(&store, id).await?;
            let bytes = store.queued_message_raw(id).await.map_err(err)?;
            if raw {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                return out
                    .write_all(&bytes)
                    .and_then(|()| out.flush())
                    .map_err(|e| e.to_string());
            }
            print_queued(&message, now);
            println!(
                "auth user: {}",
                message.auth_user.as_deref().unwrap_or("(none)")
            );
            // As MAIL FROM's BODY= parameter names them.
            let body_type = match message.body_type {
                BodyType::SevenBit => "7bit",
                BodyType::EightBitMime => "8bitmime",
                BodyType::BinaryMime => "binarymime",
            };
            println!("body type: {body_type}");
            println!("smtputf8: {}", if message.smtputf8 { "yes" } else { "no" });
            println!();
            for (name, value) in
                header_fields(&bytes, &["From", "To", "Subject", "Date", "Message-ID"])
            {
                println!("{name}: {value}");
            }
        }
        QueueCommand::Retry { id } => {
            let message = queued(&store, id).await?;
            let due = store.retry_queued(id, now).await.map_err(err)?;
            let waiting = message
                .recipients
                .iter()
                .filter(|r| is_waiting(r.state))
                .count();
            println!(
                "{id}: {} made due now ({waiting} still to deliver in all)",
                plural(due, "recipient")
            );
        }
        QueueCommand::Flush => {
            let due = store.flush_queue(now).await.map_err(err)?;
            println!("{} made due now", plural(due, "deferred recipient"));
        }
        QueueCommand::Delete { id, all } => {
            let targets = if all {
                store.queue().await.map_err(err)?
            } else {
                let id = id.ok_or("give a queue id or --all")?;
                vec![queued(&store, id).await?]
            };
            let mut deleted = 0;
            for m in &targets {
                // An entry may have finished since it was read.
                if store.delete_queued(m.id).await.map_err(err)? {
                    deleted += 1;
                    println!(
                        "deleted {} (from {}, {})",
                        m.id,
                        sender(&m.sender),
                        plural(m.recipients.len(), "recipient")
                    );
                }
            }
            if all {
                println!("{} deleted", plural(deleted, "message"));
            }
        }
    }
    Ok(())
}

async fn queued(store: &Store, id: QueueId) -> Result<QueuedMessage, String> {
    store
        .queued_message(id)
        .await
        .map_err(err)?
        .ok_or_else(|| format!("no message {id} in the queue"))
}

/// Still to be tried: the queue manager will (or does) work on it.
fn is_waiting(state: RecipientState) -> bool {
    matches!(state, RecipientState::Pending | RecipientState::Deferred)
}

fn sender(address: &str) -> &str {
    if address.is_empty() {
        "<>"
    } else {
        address
    }
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `2026-11-22 03:30:00 UTC`.
fn utc(ts: Timestamp) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ts.to_string())
}

/// A duration in its two largest units: `45s`, `12m`, `3h 5m`, `2d`.
fn span(secs: i64) -> String {
    let secs = secs.max(0);
    let units = [
        (secs / 86_400, "d"),
        (secs % 86_400 / 3600, "h"),
        (secs % 3600 / 60, "m"),
        (secs % 60, "s"),
    ];
    let first = units.iter().position(|&(n, _)| n > 0).unwrap_or(3);
    units[first..]
        .iter()
        .take(2)
        .enumerate()
        .filter(|&(i, &(n, _))| i == 0 || n > 0)
        .map(|(_, (n, unit))| format!("{n}{unit}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One message as `queue list` and `queue show` print it.
fn print_queued(m: &QueuedMessage, now: Timestamp) {
    println!(
        "{}  arrived {} ({} ago)  {} bytes  from {}",
        m.id,
        utc(m.received_at),
        span(now - m.received_at),
        m.size,
        sender(&m.sender)
    );
    for r in &m.recipients {
        let state = match r.state {
            RecipientState::Pending => "pending",
            RecipientState::Deferred => "deferred",
            RecipientState::Delivered => "delivered",
            RecipientState::Bounced => "bounced",
        };
        let next = if !is_waiting(r.state) {
            String::new()
        } else if r.leased_until > now {
            "  being delivered".to_owned()
        } else if r.next_attempt_at <= now {
            "  next attempt now".to_owned()
        } else {
            format!(
                "  next attempt {} (in {})",
                utc(r.next_attempt_at),
                span(r.next_attempt_at - now)
            )
        };
        println!("    {}  {state}  attempts {}{next}", r.address, r.attempts);
        if let Some(error) = &r.last_error {
            println!("        last error: {error}");
        }
    }
}

/// The named fields of the message's header section, unfolded, in the
/// order they appear, as written (encoded words are left encoded).
fn header_fields<'a>(raw: &[u8], names: &[&'a str]) -> Vec<(&'a str, String)> {
    let text = String::from_utf8_lossy(raw);
    let mut fields: Vec<(&'a str, String)> = Vec::new();
    let mut current: Option<usize> = None;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(field) = current.and_then(|i| fields.get_mut(i)) {
                field.1.push(' ');
                field.1.push_str(line.trim());
            }
            continue;
        }
        current = None;
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if let Some(&known) = names.iter().find(|n| n.eq_ignore_ascii_case(name.trim())) {
            current = Some(fields.len());
            fields.push((known, value.trim().to_owned()));
        }
    }
    fields
}
