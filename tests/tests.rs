//! The integration tests, in one binary (each test binary links libzmq).

mod common;
mod libraries;
mod routing_ids;
mod wire;
