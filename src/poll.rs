//! Poll timeouts. libzmq's poll takes whole milliseconds; rounding a
//! deadline down would wake just before it and either spin or give up a
//! little early, so every timeout is rounded up, in this one place.

use std::time::{Duration, Instant};

/// `d` in milliseconds for `zmq::poll`, rounded up.
pub fn timeout_ms(d: Duration) -> i64 {
    i64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(i64::MAX)
}

/// Milliseconds from now until `deadline` (0 if it has passed), rounded up.
pub fn until_ms(deadline: Instant) -> i64 {
    timeout_ms(deadline.saturating_duration_since(Instant::now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_up_to_whole_milliseconds() {
        assert_eq!(timeout_ms(Duration::ZERO), 0);
        assert_eq!(timeout_ms(Duration::from_micros(1)), 1);
        assert_eq!(timeout_ms(Duration::from_micros(149_990)), 150);
        assert_eq!(timeout_ms(Duration::from_millis(150)), 150);
        assert_eq!(until_ms(Instant::now() - Duration::from_secs(1)), 0);
    }
}
