//! Counters of what the broker did with messages it could not deliver as
//! asked, for logs now and for the metrics to come. Each counts events
//! since the broker started.

/// Event counts, read with [`crate::broker::Broker::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Queued requests dropped because their client's connection had
    /// closed before a worker could take them.
    pub requests_for_departed_clients: u64,
    /// Replies (or parts) dropped because their client's connection had
    /// closed (a routing id that connects again is another client).
    pub replies_for_departed_clients: u64,
    /// Replies delivered from workers that had been taken for dead (their
    /// requests had been given to another worker).
    pub late_replies_delivered: u64,
    /// Parts of replies dropped because another delivery of the same
    /// request had answered, or had started answering, first.
    pub duplicate_reply_parts: u64,
    /// Workers heard from again after they were expired, later than one
    /// heartbeat interval after their last message: their heartbeat
    /// interval is longer than the broker's.
    pub heartbeat_mismatches: u64,
    /// Replies to MDP/0.1 clients (which have no PARTIAL) dropped because
    /// the PARTIALs gathered for them outgrew the backlog bounds.
    pub gathered_replies_dropped: u64,
    /// Requests dropped on arrival because their service's queue held
    /// [`Config::max_queued`](super::Config::max_queued) requests already.
    pub requests_dropped_queue_full: u64,
    /// Requests dropped after waiting
    /// [`Config::request_timeout`](super::Config::request_timeout) for a
    /// worker.
    pub requests_expired: u64,
    /// Workers that heartbeat while busy and were sent DISCONNECT for
    /// holding one request past
    /// [`Config::busy_timeout`](super::Config::busy_timeout).
    pub busy_timeouts: u64,
    /// Requests dropped after
    /// [`Config::max_deliveries`](super::Config::max_deliveries) deliveries
    /// to workers that died or were disconnected holding them.
    pub requests_dropped_max_deliveries: u64,
    /// Requests dropped because their worker's reply could not fit in the
    /// bounds on peers' messages (frames, bytes).
    pub requests_too_large: u64,
    /// Requests dropped because the access policy does not let their
    /// client request their service (`mdbroker --acl`).
    pub requests_refused: u64,
    /// READYs refused (DISCONNECT sent, nothing registered) because the
    /// access policy does not let their worker serve the service.
    pub registrations_refused: u64,
}
