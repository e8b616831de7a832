//! Warnings a peer can cause are written at most once per interval per
//! kind, so that a misbehaving or hostile peer cannot flood the log (and,
//! with it, the disk or the pipe the log goes to). What was held back is
//! counted and said with the next line.

use std::time::{Duration, Instant};

/// How often each kind of peer-caused warning may be written.
pub const EVERY: Duration = Duration::from_secs(10);

/// One kind of warning's allowance.
#[derive(Debug, Default)]
pub struct RateLimit {
    next: Option<Instant>,
    held_back: u64,
}

impl RateLimit {
    /// Whether a line may be written at `now`: `Some(n)` with the number of
    /// lines held back since the last one written, or `None` (counted).
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        if self.next.is_some_and(|next| now < next) {
            self.held_back += 1;
            return None;
        }
        self.next = Some(now + EVERY);
        Some(std::mem::take(&mut self.held_back))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_and_a_count_of_the_rest() {
        let t0 = Instant::now();
        let mut limit = RateLimit::default();
        assert_eq!(limit.allow(t0), Some(0));
        assert_eq!(limit.allow(t0 + Duration::from_secs(1)), None);
        assert_eq!(limit.allow(t0 + Duration::from_secs(2)), None);
        assert_eq!(limit.allow(t0 + EVERY), Some(2));
        assert_eq!(limit.allow(t0 + EVERY), None);
    }
}
