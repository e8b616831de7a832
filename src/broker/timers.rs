//! Deadlines kept in a min-heap, checked lazily, on a coarse grid.
//!
//! Every worker and every non-empty service queue has at most one entry
//! here, at the instant it next needs attention. Entries are never removed
//! or moved when the object changes: a worker that speaks just updates its
//! own expiry (O(1) per message). When an entry comes due, its owner checks
//! whether the entry is still its current one (same instant) and what is
//! really due, then schedules its next entry. So the broker touches each
//! worker about once per heartbeat interval, never all of them at once, and
//! never on the hot path of a message.
//!
//! Entries sit on the ticks of a [`Grid`]: heartbeats are rounded down (sent
//! a little early, so a worker never waits longer than the interval) and
//! expiries are rounded up (a peer is never given up on early). Without it,
//! 10,000 workers that registered at scattered instants would wake the
//! broker 4,000 times a second, once per heartbeat, and each lone send
//! would wake libzmq's I/O thread too; on the grid, the heartbeats due in
//! one tick go out together, in one wake-up of each thread.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// Instants `origin + n * step`, for whole `n` of either sign.
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    origin: Instant,
    step: Duration,
}

impl Grid {
    /// A grid through `origin`; a zero `step` leaves every instant as it is.
    pub fn new(origin: Instant, step: Duration) -> Grid {
        Grid { origin, step }
    }

    /// The last tick at or before `at`.
    pub fn floor(&self, at: Instant) -> Instant {
        let step = self.step.as_nanos();
        if step == 0 {
            return at;
        }
        let tick = |n: u128| Duration::from_nanos(u64::try_from(n * step).unwrap_or(u64::MAX));
        let floored = match at.checked_duration_since(self.origin) {
            Some(after) => self.origin.checked_add(tick(after.as_nanos() / step)),
            None => self
                .origin
                .checked_sub(tick((self.origin - at).as_nanos().div_ceil(step))),
        };
        floored.unwrap_or(at)
    }

    /// The first tick at or after `at`.
    pub fn ceil(&self, at: Instant) -> Instant {
        let floor = self.floor(at);
        if floor == at {
            at
        } else {
            floor.checked_add(self.step).unwrap_or(at)
        }
    }
}

/// A min-heap of `(deadline, key)` entries.
#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
}

impl Timers {
    /// Adds an entry for `key` at `at`.
    pub fn schedule(&mut self, at: Instant, key: u64) {
        self.heap.push(Reverse((at, key)));
    }

    /// The earliest entry's instant.
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, u64)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(entry)| entry),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_due_entries_in_deadline_order_only() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.schedule(t0 + Duration::from_millis(30), 3);
        timers.schedule(t0 + Duration::from_millis(10), 1);
        timers.schedule(t0 + Duration::from_millis(20), 2);
        assert_eq!(timers.next(), Some(t0 + Duration::from_millis(10)));
        assert_eq!(timers.pop_due(t0), None);
        let now = t0 + Duration::from_millis(25);
        assert_eq!(timers.pop_due(now).map(|e| e.1), Some(1));
        assert_eq!(timers.pop_due(now).map(|e| e.1), Some(2));
        assert_eq!(timers.pop_due(now), None);
        assert_eq!(timers.next(), Some(t0 + Duration::from_millis(30)));
    }

    #[test]
    fn grid_rounds_down_and_up_to_its_ticks_on_either_side_of_its_origin() {
        let origin = Instant::now() + Duration::from_secs(10);
        let grid = Grid::new(origin, Duration::from_millis(100));
        let ms = |n: u64| Duration::from_millis(n);
        assert_eq!(grid.floor(origin), origin);
        assert_eq!(grid.ceil(origin), origin);
        assert_eq!(grid.floor(origin + ms(250)), origin + ms(200));
        assert_eq!(grid.ceil(origin + ms(250)), origin + ms(300));
        assert_eq!(grid.ceil(origin + ms(300)), origin + ms(300));
        assert_eq!(grid.floor(origin - ms(250)), origin - ms(300));
        assert_eq!(grid.ceil(origin - ms(250)), origin - ms(200));
        assert_eq!(grid.floor(origin - ms(200)), origin - ms(200));
    }

    #[test]
    fn a_zero_step_grid_leaves_instants_alone() {
        let origin = Instant::now();
        let grid = Grid::new(origin, Duration::ZERO);
        let at = origin + Duration::from_nanos(12_345);
        assert_eq!((grid.floor(at), grid.ceil(at)), (at, at));
    }
}
