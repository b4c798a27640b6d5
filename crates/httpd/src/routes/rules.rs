//! The place for failure rules: `PUT/GET /api/v1/rules` (deterministic
//! refusals, delays and dropped connections that smtpd applies, with the
//! log of which rule fired on which session) and Mailpit's
//! `/api/v1/chaos`. httpd only stores and shows rules through the store or
//! `common`; smtpd decides what they do to a session (DESIGN.md: httpd
//! must not decide SMTP policy).
//!
//! Not built yet: the routes go here and are merged under `/api/v1` by
//! `routes::router`.

use std::sync::Arc;

use axum::Router;

use crate::AppState;

/// The rule routes, relative to `/api/v1`. None yet.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
}
