//! Warnings a peer can cause are written at most once per interval per
//! kind, so that a misbehaving or hostile peer cannot flood the log (and,
//! with it, the disk or the pipe the log goes to). What was held back is
//! counted and said with the next line.

use std::time::{Duration, Instant};

/// How often each kind of peer-caused warning may be written.
pub const EVERY: Duration = Duration::from_secs(10);

/// One kind of line's allowance: up to `burst` lines per [`EVERY`].
#[derive(Debug)]
pub struct RateLimit {
    burst: u32,
    window_ends: Option<Instant>,
    written: u32,
    held_back: u64,
}

impl Default for RateLimit {
    /// One line per [`EVERY`]: for warnings.
    fn default() -> RateLimit {
        RateLimit::with_burst(1)
    }
}

impl RateLimit {
    /// Up to `burst` lines per [`EVERY`]: for lines each peer causes once
    /// in normal running (a worker registering), which only a misbehaving
    /// peer repeats.
    pub fn with_burst(burst: u32) -> RateLimit {
        RateLimit {
            burst: burst.max(1),
            window_ends: None,
            written: 0,
            held_back: 0,
        }
    }

    /// Whether a line may be written at `now`: `Some(n)` with the number of
    /// lines held back since the last one written, or `None` (counted).
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        if self.window_ends.is_none_or(|end| now >= end) {
            self.window_ends = Some(now + EVERY);
            self.written = 0;
        }
        if self.written >= self.burst {
            self.held_back += 1;
            return None;
        }
        self.written += 1;
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
        let mut burst = RateLimit::with_burst(3);
        assert_eq!((0..5).filter(|_| burst.allow(t0).is_some()).count(), 3);
        assert_eq!(burst.allow(t0 + EVERY), Some(2));
    }
}
