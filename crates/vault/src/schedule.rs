//! When to read a reference next: the pure rules of the refresher, tested without a clock.

use std::time::Duration;

/// The first retry after a failure; it doubles per consecutive failure, up to the interval.
pub const FIRST_RETRY: Duration = Duration::from_secs(5);

/// The delay before the next read of a version-less reference: `interval` after a success,
/// a doubling backoff after failures (never longer than `interval`), both jittered by up to
/// ±10 % (`jitter` in [-1, 1]) so that many references do not hit the vault in the same second.
pub fn next_delay(interval: Duration, consecutive_failures: u32, jitter: f64) -> Duration {
    let base = if consecutive_failures == 0 {
        interval
    } else {
        let backoff = FIRST_RETRY.saturating_mul(1u32 << consecutive_failures.saturating_sub(1).min(16));
        backoff.min(interval)
    };
    base.mul_f64(1.0 + 0.1 * jitter.clamp(-1.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successes_wait_the_interval_and_failures_back_off_up_to_it() {
        let hours4 = Duration::from_secs(4 * 3600);
        assert_eq!(next_delay(hours4, 0, 0.0), hours4);
        assert_eq!(next_delay(hours4, 1, 0.0), Duration::from_secs(5));
        assert_eq!(next_delay(hours4, 2, 0.0), Duration::from_secs(10));
        assert_eq!(next_delay(hours4, 5, 0.0), Duration::from_secs(80));
        assert_eq!(next_delay(hours4, 40, 0.0), hours4, "capped at the interval");
        let second = Duration::from_secs(1);
        assert_eq!(next_delay(second, 3, 0.0), second, "a short interval is never exceeded");
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let interval = Duration::from_secs(100);
        assert_eq!(next_delay(interval, 0, 1.0), Duration::from_secs(110));
        assert_eq!(next_delay(interval, 0, -1.0), Duration::from_secs(90));
        assert_eq!(next_delay(interval, 0, 7.0), Duration::from_secs(110), "clamped");
    }
}
