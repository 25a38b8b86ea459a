//! What the accept loop does when it cannot accept: back off from errors that repeat at once
//! (out of file descriptors, out of memory) and say so at most once a second.

use std::io;
use std::time::Duration;

use tokio::time::Instant;

/// The first pause after a failed accept; it doubles on every further failure.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
/// The longest pause: a node out of descriptors retries once a second.
const LONGEST_PAUSE: Duration = Duration::from_secs(1);
/// At most one log line of a kind per this interval.
const LOG_INTERVAL: Duration = Duration::from_secs(1);

/// How long to pause before the next accept after consecutive failures.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    pause: Option<Duration>,
}

impl Backoff {
    /// One more failure: the pause to take now (10 ms, 20 ms, … up to 1 s).
    pub(crate) fn failed(&mut self) -> Duration {
        let pause = self.pause.map_or(FIRST_PAUSE, |pause| (pause * 2).min(LONGEST_PAUSE));
        self.pause = Some(pause);
        pause
    }

    /// An accept succeeded: the next failure starts from the shortest pause again.
    pub(crate) fn succeeded(&mut self) {
        self.pause = None;
    }
}

/// Lets one kind of log line through at most once a second, counting the ones held back.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    last_logged: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    /// `Some(suppressed since the last line)` when a line may be logged at `now`.
    pub(crate) fn admit(&mut self, now: Instant) -> Option<u64> {
        match self.last_logged {
            Some(last) if now.saturating_duration_since(last) < LOG_INTERVAL => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last_logged = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// The peer gave up between its SYN and our accept: nothing is wrong here, accept the next.
pub(crate) fn is_peer_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionRefused
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_doubles_up_to_a_second_and_starts_over_after_a_success() {
        let mut backoff = Backoff::default();
        let pauses: Vec<u64> = (0..9).map(|_| backoff.failed().as_millis() as u64).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        backoff.succeeded();
        assert_eq!(backoff.failed(), FIRST_PAUSE);
    }

    #[test]
    fn one_line_a_second_with_the_count_of_those_held_back() {
        let start = Instant::now();
        let mut throttle = Throttle::default();
        assert_eq!(throttle.admit(start), Some(0));
        for ms in (50..1000).step_by(50) {
            assert_eq!(throttle.admit(start + Duration::from_millis(ms)), None, "at {ms} ms");
        }
        assert_eq!(throttle.admit(start + Duration::from_millis(1000)), Some(19));
        assert_eq!(throttle.admit(start + Duration::from_millis(1001)), None);
        assert_eq!(throttle.admit(start + Duration::from_millis(2500)), Some(1));
    }

    #[test]
    fn only_a_peer_giving_up_is_not_worth_a_pause() {
        assert!(is_peer_error(&io::Error::from(io::ErrorKind::ConnectionAborted)));
        let emfile = io::Error::from_raw_os_error(24);
        assert!(!is_peer_error(&emfile), "{emfile}");
    }
}
