//! `GET /api/v1/info` (Mailpit's `AppInformation`) and the health checks
//! `/livez` and `/readyz` (Mailpit's, for Docker and Kubernetes).

#![allow(non_snake_case)]

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::ok;
use crate::access::Caller;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// How long `/readyz` waits for the store.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize)]
pub struct RuntimeStats {
    Memory: u64,
    MessagesDeleted: u64,
    SMTPAccepted: u64,
    SMTPAcceptedSize: u64,
    SMTPIgnored: u64,
    SMTPRejected: u64,
    Uptime: u64,
}

#[derive(Debug, Serialize)]
pub struct AppInformation {
    Version: String,
    LatestVersion: String,
    Database: String,
    DatabaseSize: u64,
    Messages: u64,
    Unread: u64,
    Tags: BTreeMap<String, u64>,
    RuntimeStats: RuntimeStats,
}

/// This process's resident memory in bytes (Linux; 0 elsewhere).
fn resident_memory() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                let kib = line.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?;
                kib.trim().parse::<u64>().ok()
            })
        })
        .map_or(0, |kib| kib * 1024)
}

/// `GET /api/v1/info`: counts within the caller's scope; the database's
/// path and size only for callers who see everything.
pub async fn info(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<Json<AppInformation>> {
    let (messages, unread) = state
        .ctx
        .shared
        .store
        .arrival_counts(caller.scope())
        .await?;
    let (database, size) = if caller.sees_all() {
        let path = state.ctx.shared.config.data_dir.join("postern.db");
        let size = ["", "-wal"]
            .iter()
            .filter_map(|suffix| {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                std::fs::metadata(p).ok()
            })
            .map(|m| m.len())
            .sum();
        (path.display().to_string(), size)
    } else {
        (String::new(), 0)
    };
    Ok(Json(AppInformation {
        Version: env!("CARGO_PKG_VERSION").to_owned(),
        LatestVersion: String::new(),
        Database: database,
        DatabaseSize: size,
        Messages: messages,
        Unread: unread,
        Tags: BTreeMap::new(),
        RuntimeStats: RuntimeStats {
            Memory: resident_memory(),
            MessagesDeleted: state.deleted.load(Ordering::Relaxed),
            SMTPAccepted: 0,
            SMTPAcceptedSize: 0,
            SMTPIgnored: 0,
            SMTPRejected: 0,
            Uptime: state.started.elapsed().as_secs(),
        },
    }))
}

/// `GET /livez`: the process answers.
pub async fn livez() -> Response {
    ok()
}

/// `GET /readyz`: `ok` once the store answers a read, else `503`.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match tokio::time::timeout(READY_TIMEOUT, state.ctx.shared.store.last_arrival()).await {
        Ok(Ok(_)) => ok(),
        Ok(Err(e)) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the store does not answer: {e}"),
        )
        .into_response(),
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the store does not answer in time",
        )
        .into_response(),
    }
}
