//! `postern store …`: the store itself. `store copy [--to URL]` copies the
//! data dir's SQLite store into an empty PostgreSQL database
//! ([`store::copy_to_postgres`]), the way to move a server to
//! `[store] backend = "postgres"`.

use clap::Subcommand;
use common::config::Config;

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Copy the data dir's SQLite store into an empty PostgreSQL database
    /// (mailboxes, UIDs, flags, the change feed, the queue... all as they
    /// are), in one transaction. Stop `postern up` first: a store a
    /// running process has open is refused.
    Copy {
        /// The PostgreSQL database (`postgres://user:password@host/db` or
        /// `host=… dbname=…`; TLS as its `sslmode` asks, trusting `[store]
        /// ca_file`). Default: `[store] url` of the configuration
        /// (POSTERN_STORE_URL).
        #[arg(long, value_name = "URL")]
        to: Option<String>,
    },
}

pub async fn store(config: &Config, command: StoreCommand) -> Result<(), String> {
    match command {
        StoreCommand::Copy { to } => copy(config, to).await,
    }
}

async fn copy(config: &Config, to: Option<String>) -> Result<(), String> {
    let url =
        match to {
            Some(url) if url.trim().is_empty() => return Err("--to needs a PostgreSQL URL".into()),
            Some(url) => url,
            None => match &config.store.url {
                Some(url) if !url.trim().is_empty() => {
                    println!("to [store] url of the configuration");
                    url.clone()
                }
                _ => return Err(
                    "no database to copy to: give --to URL, or set [store] url (POSTERN_STORE_URL)"
                        .into(),
                ),
            },
        };
    let ca_file = config.store.ca_file.clone();
    let data_dir = config.data_dir.clone();
    println!(
        "copying the SQLite store in {} to PostgreSQL (one transaction: nothing is kept unless all is copied)",
        data_dir.display()
    );
    println!("  {:<18} {:>10} {:>12}", "table", "rows", "bytes");
    let copied = tokio::task::spawn_blocking(move || {
        store::copy_to_postgres(&data_dir, &url, ca_file.as_deref(), &mut |table| {
            println!(
                "  {:<18} {:>10} {:>12}",
                table.table,
                table.rows,
                bytes_text(table.bytes)
            );
        })
    })
    .await
    .map_err(|e| format!("internal error: {e}"))?
    .map_err(|e| format!("cannot copy the store to PostgreSQL: {e}"))?;
    let rows: u64 = copied.iter().map(|t| t.rows).sum();
    let bytes: u64 = copied.iter().map(|t| t.bytes).sum();
    println!(
        "copied {rows} rows ({}) in {} tables; committed",
        bytes_text(bytes),
        copied.len()
    );
    println!(
        "to use it: [store] backend = \"postgres\" and url = the URL copied to \
         (POSTERN_STORE_BACKEND, POSTERN_STORE_URL)"
    );
    Ok(())
}

/// Bytes as people read them: `512 B`, `3.2 KiB`, `1.5 GiB`.
fn bytes_text(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (size, unit) in UNITS {
        if bytes >= size {
            return format!("{:.1} {unit}", bytes as f64 / size as f64);
        }
    }
    format!("{bytes} B")
}
