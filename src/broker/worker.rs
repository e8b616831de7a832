//! A worker as the broker sees it: who it is, which service it serves, how
//! it frames its commands, when it is due a heartbeat or dead, and the
//! request it holds, if any.

use std::time::Instant;

use crate::frame::Frame;
use crate::protocol::Dialect;

use super::config::Config;
use super::core::ServiceKey;
use super::service::Request;
use super::timers::Grid;

/// A request handed to a worker, kept until the worker's final reply.
#[derive(Debug)]
pub struct Job {
    /// The request itself, kept for redelivery should the worker die.
    pub request: Request,
    /// When the worker got it.
    pub since: Instant,
    /// For an MDP/0.1 client, which has no PARTIAL: the frames of the
    /// PARTIALs so far, sent with the FINAL's as its one REPLY; `None`
    /// once they outgrew the bounds (the client then gets no reply).
    pub gathered: Option<Gathered>,
    /// HEARTBEATs received from the worker while it held this request.
    pub heartbeats: u32,
}

/// PARTIAL bodies gathered for an MDP/0.1 client.
#[derive(Debug, Default)]
pub struct Gathered {
    /// The frames, in order.
    pub frames: Vec<Frame>,
    /// Their size, counted against the backlog bounds.
    pub bytes: usize,
}

/// One registered worker.
#[derive(Debug)]
pub struct Worker {
    /// Its ROUTER identity.
    pub identity: Box<[u8]>,
    /// The service it registered for.
    pub service: ServiceKey,
    /// Where it connects from (libzmq's peer address), for logs.
    pub address: Box<str>,
    /// How it frames its commands; the broker answers in kind.
    pub dialect: Dialect,
    /// A frame of its READY: its connection's properties (see
    /// `Broker::set_access`).
    pub credentials: Frame,
    /// When it is dead unless heard from again (refreshed by any command).
    pub expires_at: Instant,
    /// When the broker last heard from it.
    pub last_heard: Instant,
    /// When the broker next sends it a HEARTBEAT.
    pub heartbeat_at: Instant,
    /// Its ticket in the idle queue while idle.
    pub idle_ticket: Option<u64>,
    /// The request it is processing while busy.
    pub job: Option<Job>,
    /// Whether it has shown that it heartbeats while busy (two HEARTBEATs
    /// while holding one request: see [`Worker::heartbeat`]); such a worker
    /// is held to the normal liveness even while busy.
    pub heartbeats_while_busy: bool,
    /// The instant of its current entry in the worker timers.
    pub timer_at: Instant,
}

/// Who sent a READY: the peer a new [`Worker`] stands for.
#[derive(Debug)]
pub struct Registration {
    /// Its ROUTER identity.
    pub identity: Box<[u8]>,
    /// Where it connects from.
    pub address: Box<str>,
    /// How it frames its commands.
    pub dialect: Dialect,
    /// The service it registers for.
    pub service: ServiceKey,
    /// A frame of its READY, which carries its connection's properties
    /// (the name the handshake gave it), for access checks later.
    pub credentials: Frame,
}

impl Worker {
    /// A worker that has just sent READY at `now`: idle under `ticket`,
    /// heard from now, and due its first heartbeat one interval later.
    pub fn new(registration: Registration, ticket: u64, now: Instant, config: &Config, grid: &Grid) -> Worker {
        let Registration {
            identity,
            address,
            dialect,
            service,
            credentials,
        } = registration;
        let mut worker = Worker {
            identity,
            address,
            service,
            dialect,
            credentials,
            expires_at: now,
            last_heard: now,
            heartbeat_at: now,
            idle_ticket: Some(ticket),
            job: None,
            heartbeats_while_busy: false,
            timer_at: now,
        };
        worker.heard_from(now, config);
        worker.sent_command(now, config);
        worker.timer_at = worker.next_timer(config, grid);
        worker
    }

    /// Any command from the worker shows it alive: it is dead only after
    /// liveness x interval of silence from now (7/MDP).
    pub fn heard_from(&mut self, now: Instant, config: &Config) {
        self.last_heard = now;
        self.expires_at = now + config.expiry();
    }

    /// Any command to the worker does for a heartbeat: the next HEARTBEAT
    /// is due one interval after it.
    pub fn sent_command(&mut self, now: Instant, config: &Config) {
        self.heartbeat_at = now + config.heartbeat_interval;
    }

    /// Whether its HEARTBEAT is due at `now`: heartbeats go out on the grid
    /// tick at or before they fall due, so a worker never waits longer than
    /// the interval.
    pub fn heartbeat_due(&self, now: Instant, grid: &Grid) -> bool {
        now >= grid.floor(self.heartbeat_at)
    }

    /// When it is to be deleted: normally its heartbeat expiry. While busy,
    /// a worker not known to heartbeat while busy gets the busy timeout
    /// instead, counted from when it got its request; one that heartbeats
    /// while busy gets whichever comes first.
    pub fn deadline(&self, config: &Config) -> Instant {
        match &self.job {
            Some(job) if self.heartbeats_while_busy => self.expires_at.min(job.since + config.busy_timeout),
            Some(job) => self.expires_at.max(job.since + config.busy_timeout),
            None => self.expires_at,
        }
    }

    /// It sent a HEARTBEAT. Two while it holds one request show that it
    /// heartbeats while busy. One does not: a classic worker busy past its
    /// heartbeat time sends one as it finishes a request, after its reply,
    /// and the broker may have handed it the next request by the time it
    /// arrives (each delivery starts the count afresh). Nor does any that
    /// may have been sent before the request reached it (`stale`: read
    /// just after the broker itself did not run for a while, when its
    /// backlog of messages arrives in no telling order).
    pub fn heartbeat(&mut self, stale: bool) {
        if stale {
            return;
        }
        if let Some(job) = &mut self.job {
            job.heartbeats += 1;
            self.heartbeats_while_busy |= job.heartbeats >= 2;
        }
    }

    /// Whether it has held its request for the busy timeout at `now`.
    pub fn busy_for_too_long(&self, now: Instant, config: &Config) -> bool {
        self.job
            .as_ref()
            .is_some_and(|job| now >= job.since + config.busy_timeout)
    }

    /// When its timer entry should next fire: the grid tick at or before
    /// its next heartbeat, or the one at or after its deadline.
    pub fn next_timer(&self, config: &Config, grid: &Grid) -> Instant {
        grid.floor(self.heartbeat_at).min(grid.ceil(self.deadline(config)))
    }
}
