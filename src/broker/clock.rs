//! The broker's clock: monotonic time that stands still while the broker
//! could not run.
//!
//! Workers are judged by when their heartbeats reach the broker's host, but
//! the broker reads them only when it runs. If its process is stopped
//! (`SIGSTOP`, a VM's stolen time, a throttled container, a page swapped
//! out), the heartbeats workers sent meanwhile wait in the kernel and in
//! libzmq, and the first thing the broker would do on waking is its timers:
//! every worker would look silent for the length of the pause and be
//! deleted, and its request run again elsewhere. Reading everything first
//! is not enough: after a pause libzmq's own I/O thread has not yet moved
//! those heartbeats off the sockets either.
//!
//! So the broker keeps its own time. Each time it runs it compares the real
//! time with the earliest deadline it was waiting for: if it is later than
//! that by more than the slack ([`SLACK`], well above ordinary scheduling
//! delays, so that a busy machine does not slow the broker's time down),
//! the broker did not run for the excess, which is added to a running total
//! and not counted as time at all. Every deadline (heartbeats, worker expiry, request
//! expiry) is kept in this time, so a pause shorter than the expiry deletes
//! no worker, and the timers fire as if the broker had woken on time.

use std::time::{Duration, Instant};

use log::{debug, warn};

/// How late past a deadline a wake-up may be before the excess is taken
/// for time the broker did not run.
pub const SLACK: Duration = Duration::from_millis(100);
/// Gaps at least this long are logged at warn level; shorter ones at debug.
const WARN_GAP: Duration = Duration::from_secs(1);

/// Maps real instants to the broker's time and back.
#[derive(Debug, Clone)]
pub struct Clock {
    /// Total time the broker was found not to have run.
    paused: Duration,
    /// How late past a deadline counts as not having run.
    slack: Duration,
    /// Broker time at which the broker last resumed after a gap, and how
    /// long that gap was.
    resumed: Option<(Instant, Duration)>,
}

impl Clock {
    /// A clock that agrees with the real one until the first gap.
    pub fn new() -> Clock {
        Clock::with_slack(SLACK)
    }

    fn with_slack(slack: Duration) -> Clock {
        Clock {
            paused: Duration::ZERO,
            slack,
            resumed: None,
        }
    }

    /// The broker's time at the real instant `real`, given the earliest
    /// deadline (broker time) it was due to wake for. A wake-up later than
    /// that deadline by more than the slack is a gap: the broker resumes one
    /// slack past the deadline, as if it had woken that late.
    pub fn now(&mut self, real: Instant, due: Option<Instant>) -> Instant {
        let now = real.checked_sub(self.paused).unwrap_or(real);
        match due {
            Some(due) if now > due + self.slack => {
                let resumed = due + self.slack;
                let gap = now - resumed;
                self.paused += gap;
                self.resumed = Some((resumed, gap));
                if gap >= WARN_GAP {
                    warn!(
                        "the broker did not run for {gap:?} (process stopped or starved of CPU): deadlines moved by as much"
                    );
                } else {
                    debug!("the broker did not run for {gap:?}: deadlines moved by as much");
                }
                resumed
            }
            _ => now,
        }
    }

    /// The last gap, if the broker resumed from it less than its own
    /// length before `now` (broker time): what it reads then was mostly
    /// sent while it did not run, and arrives in an order that says nothing
    /// of when it was sent.
    pub fn recent_gap(&self, now: Instant) -> Option<Duration> {
        self.resumed
            .filter(|(at, gap)| now.saturating_duration_since(*at) < *gap)
            .map(|(_, gap)| gap)
    }

    /// The real instant of the broker-time instant `at`.
    pub fn real(&self, at: Instant) -> Instant {
        at + self.paused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_wake_up_is_not_counted_as_time() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut clock = Clock::with_slack(ms(50));
        let due = t0 + ms(100);
        // On time, and late within the slack: real time.
        assert_eq!(clock.now(t0 + ms(100), Some(due)), t0 + ms(100));
        assert_eq!(clock.now(t0 + ms(140), Some(due)), t0 + ms(140));
        // 1.4 s late: the broker resumes one slack past the deadline.
        assert_eq!(clock.now(t0 + ms(1500), Some(due)), due + ms(50));
        assert_eq!(clock.real(due + ms(50)), t0 + ms(1500));
        // Afterwards broker time runs 1.35 s behind real time.
        assert_eq!(clock.now(t0 + ms(1600), Some(t0 + ms(300))), t0 + ms(250));
        // Nothing due: nothing to be late for.
        assert_eq!(clock.now(t0 + ms(9600), None), t0 + ms(8250));
        assert_eq!(Clock::new().slack, SLACK);
    }
}
