//! tracing set-up: one line per event on stderr, one span per session.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber with `filter` (an `EnvFilter` string;
/// `RUST_LOG` overrides it when set). Calling it twice is harmless: the
/// second call changes nothing. A filter that does not parse falls back to
/// `info`, with a warning once the subscriber is up.
pub fn init(filter: &str) {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let (wanted, source) = match from_env {
        Some(v) => (v, "RUST_LOG"),
        None => (filter.to_string(), "configured log filter"),
    };
    let (env_filter, problem) = match EnvFilter::try_new(&wanted) {
        Ok(f) => (f, None),
        Err(e) => (EnvFilter::new("info"), Some(e.to_string())),
    };
    // Colour codes only for a person at a terminal, never into a file or
    // a pipe (`NO_COLOR` turns them off there too).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    // Unit tests: let the test harness capture the output.
    #[cfg(test)]
    let builder = builder.with_test_writer();
    let installed = builder.try_init().is_ok();
    if let (true, Some(problem)) = (installed, problem) {
        tracing::warn!("{source} {wanted:?} is invalid ({problem}); using \"info\"");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn init_twice_and_bad_filter_are_harmless() {
        super::init("common=[[[not a filter");
        super::init("debug");
        tracing::info!("logging works");
    }
}
