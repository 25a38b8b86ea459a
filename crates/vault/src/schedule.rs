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

/// When to renew a short-lived (PKI) certificate read at `issued_at` and valid until
/// `not_after` (Unix seconds): at about two thirds of its lifetime, jittered by ±5 % of it;
/// after failures, retry with the doubling backoff but never later than the remaining third.
pub fn renewal_delay(issued_at: i64, not_after: i64, now: i64, consecutive_failures: u32, jitter: f64) -> Duration {
    let lifetime = u64::try_from(not_after.saturating_sub(issued_at)).unwrap_or(0).max(1);
    if consecutive_failures > 0 {
        let left = u64::try_from(not_after.saturating_sub(now)).unwrap_or(0).max(1);
        return next_delay(
            Duration::from_secs(left).div_f64(3.0).max(Duration::from_secs(1)),
            consecutive_failures,
            jitter,
        );
    }
    let target = Duration::from_secs(lifetime).mul_f64(2.0 / 3.0 + 0.05 * jitter.clamp(-1.0, 1.0));
    let elapsed = Duration::from_secs(u64::try_from(now.saturating_sub(issued_at)).unwrap_or(0));
    target.saturating_sub(elapsed)
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
    fn short_lived_certificates_renew_at_two_thirds() {
        assert_eq!(renewal_delay(1000, 1030, 1000, 0, 0.0), Duration::from_secs(20));
        assert_eq!(renewal_delay(1000, 1030, 1010, 0, 0.0), Duration::from_secs(10));
        assert_eq!(renewal_delay(1000, 1030, 1025, 0, 0.0), Duration::ZERO, "overdue: now");
        assert!(renewal_delay(1000, 1030, 1021, 1, 0.0) <= Duration::from_secs(3), "retries before expiry");
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let interval = Duration::from_secs(100);
        assert_eq!(next_delay(interval, 0, 1.0), Duration::from_secs(110));
        assert_eq!(next_delay(interval, 0, -1.0), Duration::from_secs(90));
        assert_eq!(next_delay(interval, 0, 7.0), Duration::from_secs(110), "clamped");
    }
}
