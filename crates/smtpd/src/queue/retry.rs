//! When to try again: the delay doubles from a minimum to a maximum, as in
//! Postfix (`minimal_backoff_time`, `maximal_backoff_time`), and a message
//! lives at most `max_lifetime_secs` (`maximal_queue_lifetime`).

use common::config::QueueConfig;

/// Delay before the next attempt after `attempts` failed ones (1 = the first
/// failure).
pub fn backoff_secs(config: &QueueConfig, attempts: u32) -> u64 {
    let min = config.min_backoff_secs.max(1);
    let max = config.max_backoff_secs.max(min);
    let doublings = attempts.saturating_sub(1).min(32);
    min.saturating_mul(1u64 << doublings).min(max)
}

/// Has a message received at `received_at` outlived the queue lifetime?
pub fn expired(config: &QueueConfig, received_at: i64, now: i64) -> bool {
    now.saturating_sub(received_at) >= i64::try_from(config.max_lifetime_secs).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(min: u64, max: u64) -> QueueConfig {
        QueueConfig {
            min_backoff_secs: min,
            max_backoff_secs: max,
            max_lifetime_secs: 100,
            ..QueueConfig::default()
        }
    }

    #[test]
    fn doubles_from_min_to_max() {
        let c = config(300, 4000);
        let delays: Vec<u64> = (1..=6).map(|a| backoff_secs(&c, a)).collect();
        assert_eq!(delays, vec![300, 600, 1200, 2400, 4000, 4000]);
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        assert_eq!(backoff_secs(&config(300, 4000), u32::MAX), 4000);
    }

    #[test]
    fn lifetime() {
        let c = config(1, 1);
        assert!(!expired(&c, 1000, 1099));
        assert!(expired(&c, 1000, 1100));
    }
}
