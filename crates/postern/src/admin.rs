//! The administration subcommands: users, domains, aliases, mail, queue.

use std::io::{BufRead, IsTerminal};

use clap::{Args, Subcommand};
use common::config::Config;
use store::{Store, StoreError, Uid};

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
    /// List queued messages and each recipient's state.
    List {
        #[arg(long)]
        json: bool,
    },
}

pub fn open_store(config: &Config) -> Result<Store, String> {
    Store::open(&config.data_dir).map_err(|e| {
        format!(
            "cannot open the store in {}: {e}",
            config.data_dir.display()
        )
    })
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
                        m.summary.subject.unwrap_or_default()
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
            }
            for m in queue {
                let sender = if m.sender.is_empty() { "<>" } else { &m.sender };
                println!(
                    "{}  {}  {} bytes  from {}",
                    m.id,
                    date(m.received_at),
                    m.size,
                    sender
                );
                for r in m.recipients {
                    println!(
                        "    {:<30} {:<9} attempts {}  next {}  {}",
                        r.address,
                        format!("{:?}", r.state).to_lowercase(),
                        r.attempts,
                        date(r.next_attempt_at),
                        r.last_error.unwrap_or_default()
                    );
                }
            }
        }
    }
    Ok(())
}
