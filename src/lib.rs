//! # majordomo
//!
//! A [Majordomo Protocol](https://rfc.zeromq.org/spec/7/) broker for
//! ZeroMQ: clients send requests to named services, workers register for a
//! service and answer them, and the broker in between queues requests,
//! gives each to the least recently used idle worker, watches workers with
//! heartbeats and hands the request of a worker that dies to another one.
//!
//! One broker socket serves both protocol versions at once, recognised per
//! message by its header:
//!
//! * **MDP/0.1** (7/MDP): one REPLY per request;
//! * **MDP/0.2** (18/MDP): zero or more PARTIAL replies, then one FINAL;
//! * **MMI** (8/MMI): `mmi.service` and the reserved `mmi.` namespace,
//!   answered by the broker itself.
//!
//! ## Quick start
//!
//! Run the daemon with `cargo run --release --bin mdbroker -- -v`, or run a
//! broker inside a program:
//!
//! ```no_run
//! use majordomo::broker::{Config, Server};
//!
//! let server = Server::bind(&["tcp://127.0.0.1:5555"], Config::default())?;
//! let stop = server.stop_handle();
//! let thread = std::thread::spawn(move || server.run());
//! // ... later:
//! stop.stop();
//! thread.join().expect("broker thread")?;
//! # Ok::<(), majordomo::broker::ServerError>(())
//! ```
//!
//! ## Modules
//!
//! * [`protocol`]: the wire format, typed commands for both versions,
//!   decode and encode; no sockets, no state.
//! * [`broker`]: the broker state machine ([`broker::Broker`], sans-IO:
//!   fed messages and time, returns messages and its next deadline) and
//!   [`broker::server`], the thin loop that owns the ROUTER socket.
//! * [`client`]: [`Client`] (one request at a time, timeout and retries on
//!   a fresh socket) and [`AsyncClient`] (many requests in flight).
//! * [`worker`]: [`Worker`], which registers a service and keeps
//!   heartbeating while the program works: the program's thread does the
//!   link's work inside `recv` (no thread hop per request), and a keeper
//!   thread takes over only while the program holds a request; it
//!   reconnects by itself.
//! * [`curve`]: CURVE keys and certificate files, and the CURVE settings
//!   of clients and workers ([`curve::CurveClient`]).
//! * [`security`]: CURVE and ZAP on the broker's endpoints (which keys
//!   and addresses are admitted) and service access rules by peer name.
//! * [`frame`]: a ZeroMQ frame that moves and is shared without copying its
//!   bytes, so bodies pass through the broker untouched; the only module
//!   with `unsafe` code.
//! * [`hex`]: peer identities and names in logs, cut and escaped.
//!
//! The `mdbroker` daemon and the `mdbench` benchmark are crates of their
//! own in this workspace, so a program that uses this library compiles
//! neither their command-line parser nor their logger.
// `unsafe` lives in `frame` alone, each block with its SAFETY argument.
#![deny(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod broker;
pub mod client;
pub mod curve;
#[allow(unsafe_code)]
pub mod frame;
pub mod hex;
mod poll;
pub mod protocol;
pub mod security;
mod small_file;
pub mod worker;

pub use client::{AsyncClient, Client, ClientConfig, ClientError, Reply};
pub use protocol::Version;
pub use worker::{Request, Worker, WorkerConfig, WorkerError};

/// The README's and the guide's code, compiled as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
#[doc = include_str!("../docs/guide.md")]
struct DocumentationExamples;
