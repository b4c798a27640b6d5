//! Failure rules: `GET/PUT/DELETE /api/v1/rules` (deterministic refusals,
//! delays and dropped connections that smtpd applies), `GET/DELETE
//! /api/v1/rules/log` (which rule fired on which session), and Mailpit's
//! `GET/PUT /api/v1/chaos`. httpd only sets and shows them
//! ([`common::rules::Rules`]); smtpd decides what they do to a session
//! (DESIGN.md: httpd must not decide SMTP policy).
//!
//! Who may: the admin token (or open access) sets every rule. A sandbox's
//! token sees and sets only the rules for its own domain: each rule it
//! puts gets `match.sandbox` = its domain, and a `PUT` replaces only
//! those, so parallel test jobs never touch each other's rules; its fire
//! log shows only what fired on its addresses. Chaos is process-wide:
//! admin only. An account's login may do neither.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use common::rules::{ChaosTriggers, Firing, Rule, RuleStatus};
use serde::{Deserialize, Serialize};

use super::ok;
use crate::access::{Caller, Identity};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Params};
use crate::AppState;

/// The process's rules, or 501 where no smtpd shares the process.
fn rules_of(state: &AppState) -> ApiResult<&common::rules::Rules> {
    state.ctx.rules.as_ref().ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::NOT_IMPLEMENTED,
            "failure rules act on an smtpd in the same process: use `postern up`",
        )
    })
}

/// The rule routes, relative to `/api/v1`.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/rules", get(list).put(replace).delete(clear))
        .route("/rules/log", get(log).delete(clear_log))
        .route("/chaos", get(chaos).put(set_chaos))
}

/// Whose rules a caller handles: all, or one sandbox's.
enum Reach {
    All,
    Sandbox(String),
}

impl Reach {
    fn of(caller: &Caller) -> ApiResult<Reach> {
        match &caller.identity {
            Identity::Admin | Identity::Open => Ok(Reach::All),
            Identity::Sandbox(domain) => Ok(Reach::Sandbox(domain.to_lowercase())),
            Identity::Account(..) => Err(ApiError::forbidden(
                "failure rules need the admin token or a sandbox token",
            )),
        }
    }

    fn owns(&self, rule: &Rule) -> bool {
        match self {
            Reach::All => true,
            Reach::Sandbox(domain) => rule
                .matches
                .sandbox
                .as_deref()
                .is_some_and(|d| d.eq_ignore_ascii_case(domain)),
        }
    }

    fn sees_firing(&self, firing: &Firing) -> bool {
        match self {
            Reach::All => true,
            Reach::Sandbox(domain) => firing
                .address
                .as_deref()
                .and_then(|a| a.rsplit_once('@'))
                .is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain)),
        }
    }
}

/// `GET /api/v1/rules`: the rules in force with how often each fired.
async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<Json<Vec<RuleStatus>>> {
    let reach = Reach::of(&caller)?;
    Ok(Json(
        rules_of(&state)?
            .list()
            .into_iter()
            .filter(|s| reach.owns(&s.rule))
            .collect(),
    ))
}

/// The body of `PUT /api/v1/rules`: a list of rules, bare or as
/// `{"rules": [...]}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RulesBody {
    List(Vec<Rule>),
    Wrapped { rules: Vec<Rule> },
}

/// `PUT /api/v1/rules`: replaces the caller's rules (all of them with the
/// admin token; a sandbox's own with its token); answers the rules now in
/// force for the caller. Nothing changes if one rule is bad (400).
async fn replace(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(body): JsonBody<RulesBody>,
) -> ApiResult<Json<Vec<RuleStatus>>> {
    let reach = Reach::of(&caller)?;
    let mut rules = match body {
        Some(RulesBody::List(rules) | RulesBody::Wrapped { rules }) => rules,
        None => Vec::new(),
    };
    let all = match &reach {
        Reach::All => rules,
        Reach::Sandbox(domain) => {
            for rule in &mut rules {
                match rule.matches.sandbox.as_deref() {
                    Some(d) if !d.eq_ignore_ascii_case(domain) => {
                        return Err(ApiError::forbidden(format!(
                            "a sandbox token sets rules for {domain} only"
                        )));
                    }
                    _ => rule.matches.sandbox = Some(domain.clone()),
                }
            }
            // The others' rules stay as they are, in front.
            let mut kept: Vec<Rule> = rules_of(&state)?
                .list()
                .into_iter()
                .map(|s| s.rule)
                .filter(|r| !reach.owns(r))
                .collect();
            kept.extend(rules);
            kept
        }
    };
    let statuses = rules_of(&state)?
        .replace(all)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Json(
        statuses
            .into_iter()
            .filter(|s| reach.owns(&s.rule))
            .collect(),
    ))
}

/// `DELETE /api/v1/rules`: the caller's rules go.
async fn clear(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<axum::response::Response> {
    let reach = Reach::of(&caller)?;
    match reach {
        Reach::All => rules_of(&state)?.clear(),
        Reach::Sandbox(_) => {
            let kept: Vec<Rule> = rules_of(&state)?
                .list()
                .into_iter()
                .map(|s| s.rule)
                .filter(|r| !reach.owns(r))
                .collect();
            rules_of(&state)?
                .replace(kept)
                .map_err(|e| ApiError::internal(e.to_string()))?;
        }
    }
    Ok(ok())
}

#[derive(Serialize)]
struct FireLog {
    /// Give this as `after` to see only what fires next.
    last: u64,
    fired: Vec<Firing>,
}

/// `GET /api/v1/rules/log[?after=SEQ]`: what fired, oldest first.
async fn log(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
) -> ApiResult<Json<FireLog>> {
    let reach = Reach::of(&caller)?;
    let after = params.number("after", 0)?;
    let fired: Vec<Firing> = rules_of(&state)?
        .fired_since(after)
        .into_iter()
        .filter(|f| reach.sees_firing(f))
        .collect();
    let last = fired.last().map_or(after, |f| f.seq);
    Ok(Json(FireLog { last, fired }))
}

/// `DELETE /api/v1/rules/log`: empties the fire log (admin only: it is
/// shared).
async fn clear_log(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<axum::response::Response> {
    if !caller.sees_all() {
        return Err(ApiError::forbidden(
            "only the admin token clears the fire log",
        ));
    }
    rules_of(&state)?.clear_fired();
    Ok(ok())
}

/// `GET /api/v1/chaos`: Mailpit's chaos triggers.
async fn chaos(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<Json<ChaosTriggers>> {
    if !caller.sees_all() {
        return Err(ApiError::forbidden(
            "chaos is process-wide: admin token only",
        ));
    }
    Ok(Json(rules_of(&state)?.chaos()))
}

/// `PUT /api/v1/chaos`: sets the triggers (one left out goes back to 0 %,
/// as in Mailpit); answers the triggers in force.
async fn set_chaos(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(body): JsonBody<ChaosTriggers>,
) -> ApiResult<Json<ChaosTriggers>> {
    if !caller.sees_all() {
        return Err(ApiError::forbidden(
            "chaos is process-wide: admin token only",
        ));
    }
    let triggers = rules_of(&state)?
        .set_chaos(body.unwrap_or_default())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Json(triggers))
}
