//! Deadlines kept in a min-heap, checked lazily.
//!
//! Every worker and every non-empty service queue has at most one entry
//! here, at the instant it next needs attention. Entries are never removed
//! or moved when the object changes: a worker that speaks just updates its
//! own expiry (O(1) per message). When an entry comes due, its owner checks
//! whether the entry is still its current one (same instant) and what is
//! really due, then schedules its next entry. So the broker touches each
//! worker about once per heartbeat interval, never all of them at once, and
//! never on the hot path of a message.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

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
    use std::time::Duration;

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
}
