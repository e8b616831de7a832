//! The Majordomo broker, in two layers:
//!
//! * [`Broker`] (`core`) is the protocol state machine and holds no socket:
//!   it is fed each message a peer sent (identity, frames, the current time)
//!   and the passing of time ([`Broker::tick`]), and it queues the messages
//!   to send in an outbox the I/O loop drains ([`Broker::take_outbox`]). It
//!   says when it next needs to wake ([`Broker::next_deadline`]), and what a
//!   message that could not be delivered means ([`Broker::send_failed`]).
//!   Every rule of 7/MDP, 18/MDP and 8/MMI is therefore exercised in unit
//!   tests that drive time by hand.
//! * [`server`] is the thin loop that owns the ROUTER socket, polls it, and
//!   moves frames between the socket and the core.
//!
//! Beneath the core: `service` (a service's request queue and idle-worker
//! queue), `queue` (the fair request queue: a lane per client, taking
//! turns), `worker` (one registered worker and its timing rules), `timers`
//! (the deadline heap and its grid), `mmi` (8/MMI answers) and `config`
//! (the tunables and their defaults).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)
)]

mod access;
mod backlog;
mod clients;
mod clock;
mod config;
mod core;
mod endpoint;
mod expired;
mod mmi;
mod queue;
pub(crate) mod ratelimit;
mod reclaimed;
pub mod server;
mod service;
mod stats;
#[cfg(test)]
mod tests;
mod timers;
mod worker;

pub use self::core::{Broker, Outbound, Recipient, ServiceKey, WorkerKey};
pub use access::{Access, Open};
pub use config::Config;
pub use server::{Server, ServerError, StopHandle};
pub use stats::Stats;
