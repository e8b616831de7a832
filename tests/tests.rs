//! The integration tests, in one binary (each test binary links libzmq).

mod common;
mod curve;
mod field_inputs;
mod first_contact;
mod hostile;
mod libraries;
mod max_frames;
mod routing_ids;
mod security;
mod wire;
mod worker;
