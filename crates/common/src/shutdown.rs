//! SIGINT and SIGTERM become a cancelled token.

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// Returns a token cancelled on the first SIGINT or SIGTERM. Must be called
/// inside a tokio runtime. If a handler cannot be installed (which should
/// not happen), that is logged and the other signal still works.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    // Install the handlers now, so a signal that arrives right after this
    // returns is already caught.
    let int = signal(SignalKind::interrupt())
        .map_err(|e| tracing::error!("cannot handle SIGINT: {e}"))
        .ok();
    let term = signal(SignalKind::terminate())
        .map_err(|e| tracing::error!("cannot handle SIGTERM: {e}"))
        .ok();
    let cancel = token.clone();
    tokio::spawn(async move {
        let wait_int = async {
            match int {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let wait_term = async {
            match term {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = wait_int => tracing::info!("SIGINT received, shutting down"),
            _ = wait_term => tracing::info!("SIGTERM received, shutting down"),
            _ = cancel.cancelled() => return,
        }
        cancel.cancel();
    });
    token
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[tokio::test]
    async fn sigterm_cancels_the_token() {
        let token = super::on_signal();
        assert!(!token.is_cancelled());
        // The handler is installed before on_signal returns, so this does
        // not kill the test process.
        let status = std::process::Command::new("sh")
            .args(["-c", "kill -TERM \"$1\"", "sh"])
            .arg(std::process::id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(5), token.cancelled())
            .await
            .expect("token not cancelled by SIGTERM");
    }
}
