//! The failure rules ([`common::rules`]) in a session: handlers ask for a
//! verdict where they are about to say yes, and give way to it.

use std::time::Duration;

use common::rules::{Attempt, Outcome, Stage, Verdict};

use super::Session;
use crate::reply::Reply;

impl Session {
    /// What the rules say about `stage` now (one atomic load when none
    /// are set).
    pub(super) fn rule_verdict(
        &self,
        stage: Stage,
        sender: Option<&str>,
        recipients: &[String],
    ) -> Verdict {
        self.ctx.rules.check(&Attempt {
            stage,
            session: self.id,
            client: self.peer,
            sender,
            recipients,
        })
    }

    /// Waits out the verdict's delay, then gives its reply or drops the
    /// connection. True if it did either: the command then has no effect.
    pub(super) async fn apply_rules(&mut self, verdict: Verdict) -> bool {
        if verdict.delay > Duration::ZERO {
            // The client sees the wait after the replies it already has
            // coming, not before them.
            let _ = self.flush().await;
            tokio::select! {
                () = tokio::time::sleep(verdict.delay) => {}
                () = self.io.shutdown_token().cancelled() => {}
            }
        }
        match verdict.outcome {
            None => false,
            Some(Outcome::Reply(r)) => {
                self.reply(Reply::new(r.code, r.enhanced, r.text));
                true
            }
            Some(Outcome::Drop) => {
                tracing::info!("connection dropped by a failure rule");
                self.dropped = true;
                true
            }
        }
    }
}
