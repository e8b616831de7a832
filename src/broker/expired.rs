//! Workers recently deleted for silence, so that one heard from again soon
//! afterwards is recognised.
//!
//! A worker whose heartbeat interval is longer than the broker's expiry
//! (liveness x interval) is expired before its first heartbeat, sent
//! DISCONNECT when that heartbeat comes, registers again, and so on for
//! ever: `mmi.service` answers 200 half the time and nothing says why. The
//! broker keeps, for a while, when it last heard from each worker it
//! expired; if the same worker speaks again, the gap is its heartbeat
//! period, and the broker says so with both figures (see `core`).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Most expired workers remembered at once (the oldest are forgotten).
const MAX_REMEMBERED: usize = 4096;

/// What is remembered of an expired worker.
#[derive(Debug)]
pub struct Silent {
    /// The service it served.
    pub service: Box<[u8]>,
    /// When the broker last heard from it.
    pub last_heard: Instant,
}

/// Recently expired workers, by routing id.
#[derive(Debug)]
pub struct Expired {
    workers: HashMap<Box<[u8]>, Silent>,
    order: VecDeque<(Instant, Box<[u8]>)>,
    keep: Duration,
}

impl Expired {
    /// Remembers each expired worker for `keep`.
    pub fn new(keep: Duration) -> Expired {
        Expired {
            workers: HashMap::new(),
            order: VecDeque::new(),
            keep,
        }
    }

    /// Remembers that `identity` was expired at `now`.
    pub fn record(&mut self, identity: &[u8], silent: Silent, now: Instant) {
        self.forget_old(now);
        if self.order.len() >= MAX_REMEMBERED
            && let Some((_, oldest)) = self.order.pop_front()
        {
            self.workers.remove(&oldest);
        }
        self.workers.insert(identity.into(), silent);
        self.order.push_back((now + self.keep, identity.into()));
    }

    /// If `identity` was expired lately, forgets it and says what is known.
    pub fn heard_again(&mut self, identity: &[u8], now: Instant) -> Option<Silent> {
        self.forget_old(now);
        self.workers.remove(identity)
    }

    fn forget_old(&mut self, now: Instant) {
        while let Some((until, identity)) = self.order.front() {
            if *until > now {
                return;
            }
            self.workers.remove(identity);
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expired_worker_is_recognised_for_a_while_then_forgotten() {
        let t0 = Instant::now();
        let mut expired = Expired::new(Duration::from_secs(10));
        let silent = |at| Silent {
            service: b"echo"[..].into(),
            last_heard: at,
        };
        expired.record(b"w1", silent(t0), t0);
        expired.record(b"w2", silent(t0), t0);
        let heard = expired.heard_again(b"w1", t0 + Duration::from_secs(1)).unwrap();
        assert_eq!((&heard.service[..], heard.last_heard), (&b"echo"[..], t0));
        assert!(expired.heard_again(b"w1", t0).is_none(), "once");
        assert!(
            expired.heard_again(b"w2", t0 + Duration::from_secs(11)).is_none(),
            "forgotten"
        );
    }
}
