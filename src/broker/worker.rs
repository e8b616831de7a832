//! A worker as the broker sees it: who it is, which service it serves, how
//! it frames its commands, when it is due a heartbeat or dead, and the
//! request it holds, if any.

use std::time::{Duration, Instant};

use crate::protocol::Dialect;

use super::ServiceKey;
use super::service::Request;
use super::timers::Grid;

/// A request handed to a worker, kept until the worker's final reply.
#[derive(Debug)]
pub struct Job {
    /// The request itself, kept for redelivery should the worker die.
    pub request: Request,
    /// When the worker got it.
    pub since: Instant,
}

/// One registered worker.
#[derive(Debug)]
pub struct Worker {
    /// Its ROUTER identity.
    pub identity: Box<[u8]>,
    /// The service it registered for.
    pub service: ServiceKey,
    /// How it frames its commands; the broker answers in kind.
    pub dialect: Dialect,
    /// When it is dead unless heard from again (refreshed by any command).
    pub expires_at: Instant,
    /// When the broker next sends it a HEARTBEAT.
    pub heartbeat_at: Instant,
    /// Its ticket in the idle queue while idle.
    pub idle_ticket: Option<u64>,
    /// The request it is processing while busy.
    pub job: Option<Job>,
    /// Whether it has ever sent a HEARTBEAT while busy; such a worker is
    /// held to the normal liveness even while busy.
    pub heartbeats_while_busy: bool,
    /// The instant of its current entry in the worker timers.
    pub timer_at: Instant,
}

impl Worker {
    /// When it is to be taken for dead: normally its heartbeat expiry; while
    /// busy, a worker not known to heartbeat while busy gets the busy
    /// timeout instead, counted from when it got its request.
    pub fn deadline(&self, busy_timeout: Duration) -> Instant {
        match &self.job {
            Some(job) if !self.heartbeats_while_busy => self.expires_at.max(job.since + busy_timeout),
            _ => self.expires_at,
        }
    }

    /// When its timer entry should next fire: the grid tick at or before
    /// its next heartbeat, or the one at or after its deadline.
    pub fn next_timer(&self, busy_timeout: Duration, grid: &Grid) -> Instant {
        grid.floor(self.heartbeat_at)
            .min(grid.ceil(self.deadline(busy_timeout)))
    }
}
