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
}
