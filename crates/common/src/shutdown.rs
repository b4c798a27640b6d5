//! SIGINT and SIGTERM become a cancelled token.

use tokio_util::sync::CancellationToken;

/// Returns a token cancelled on the first SIGINT or SIGTERM. Must be called
/// inside a tokio runtime.
pub fn on_signal() -> CancellationToken {
    todo!()
}
