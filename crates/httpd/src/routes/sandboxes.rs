//! Sandboxes: a fresh domain whose mail only its token sees, for one test
//! job among many on one Postern.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::ok;
use crate::access::{Caller, Identity};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiPath;
use crate::view::time;
use crate::AppState;

#[derive(Debug, Serialize)]
pub struct NewSandbox {
    domain: String,
    token: String,
}

fn may_manage(caller: &Caller) -> ApiResult<()> {
    if caller.sees_all() {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "only the admin token (or open access) manages sandboxes",
        ))
    }
}

/// `POST /api/v1/sandboxes`: `201 {"domain", "token"}`.
pub async fn create(State(state): State<Arc<AppState>>, caller: Caller) -> ApiResult<Response> {
    may_manage(&caller)?;
    let sandbox = state.ctx.shared.store.create_sandbox().await?;
    Ok((
        StatusCode::CREATED,
        Json(NewSandbox {
            domain: sandbox.domain,
            token: sandbox.token,
        }),
    )
        .into_response())
}

#[derive(Debug, Serialize)]
pub struct SandboxInfo {
    domain: String,
    created_at: String,
}

#[derive(Debug, Serialize)]
pub struct Sandboxes {
    sandboxes: Vec<SandboxInfo>,
}

/// `GET /api/v1/sandboxes`: every sandbox, oldest first.
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<Json<Sandboxes>> {
    may_manage(&caller)?;
    let sandboxes = state.ctx.shared.store.sandboxes().await?;
    Ok(Json(Sandboxes {
        sandboxes: sandboxes
            .into_iter()
            .map(|(domain, created)| SandboxInfo {
                domain,
                created_at: time(created),
            })
            .collect(),
    }))
}

/// `DELETE /api/v1/sandboxes/{domain}`: the sandbox and all its mail go;
/// with the sandbox's own token or the admin token.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(domain): ApiPath<String>,
) -> ApiResult<Response> {
    let domain = domain.trim().to_lowercase();
    let allowed = match &caller.identity {
        Identity::Admin => true,
        Identity::Sandbox(own) => own.eq_ignore_ascii_case(&domain),
        Identity::Open | Identity::Account(..) => false,
    };
    if !allowed {
        return Err(ApiError::forbidden(
            "a sandbox is deleted with its own token or the admin token",
        ));
    }
    if !state.ctx.shared.store.delete_sandbox(&domain).await? {
        return Err(ApiError::not_found(format!("no sandbox {domain}")));
    }
    Ok(ok())
}
