//! The broker's tunables, with the defaults operators get from `mdbroker`.
//! Each derived figure (such as the silence after which a worker is dead)
//! is computed here and nowhere else.

use std::time::Duration;

/// The coarsest [`Config::timer_resolution`].
const MAX_TIMER_RESOLUTION: Duration = Duration::from_millis(100);

/// How the broker times heartbeats, expiry and redelivery. The defaults
/// are `mdbroker`'s; start from [`Config::default`] and change the fields
/// you need:
///
/// ```
/// use std::time::Duration;
/// use majordomo::broker::Config;
///
/// let mut config = Config::default();
/// config.heartbeat_interval = Duration::from_millis(500);
/// assert_eq!(config.expiry(), Duration::from_millis(1500));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// How often the broker sends HEARTBEAT to each worker, and how often it
    /// expects to hear from each worker. Default: 2,500 ms.
    pub heartbeat_interval: Duration,
    /// How many intervals of silence make a worker dead (7/MDP: usually 3-5).
    /// Default: 3.
    pub heartbeat_liveness: u32,
    /// How long any worker may hold one request. A worker that heartbeats
    /// while busy is held to the normal liveness meanwhile, and past this
    /// gets DISCONNECT (it answers no more: a hung program, or a peer that
    /// keeps requests hostage). A worker that never heartbeated while busy
    /// (classic single-threaded workers, such as zguide's mdwrkapi, cannot
    /// while the application works) may stay silent this long before it
    /// is taken for dead. Either way the request goes to another worker,
    /// counting as a delivery. Default: 300,000 ms.
    pub busy_timeout: Duration,
    /// How long a request may wait in its service's queue for a worker
    /// before it is dropped; `None` keeps it until a worker takes it.
    /// Default: 60,000 ms.
    pub request_timeout: Option<Duration>,
    /// How many times one request is handed to a worker before the broker
    /// gives up on it (a request that kills every worker must not loop).
    /// Default: 3.
    pub max_deliveries: u32,
    /// Most requests waiting in one service's queue; a request that arrives
    /// at a full queue is dropped (logged at warn, rate-limited, and
    /// counted in [`Stats::requests_dropped_queue_full`]), and its client's
    /// timeout applies; but a request from a client with fewer waiting
    /// than the one with the most takes the place of that client's newest
    /// instead (see `queue`). Requests given back by dying workers are not
    /// counted against it. A waiting request with a 16-byte body costs
    /// about 110 bytes (measured: 104-113), plus its body beyond 33 bytes.
    /// `None` for no limit.
    /// Default: 100,000.
    ///
    /// [`Stats::requests_dropped_queue_full`]: super::Stats::requests_dropped_queue_full
    pub max_queued: Option<usize>,
    /// Most requests waiting in all services' queues together: a flood of
    /// requests for as many service names as requests gets round
    /// [`Config::max_queued`], and each such request costs about 1.5 KB (its
    /// service with it). A request that arrives when they are full is
    /// dropped, logged and counted like one for a full queue. `None` for no
    /// limit. Default: 1,000,000.
    pub max_queued_total: Option<usize>,
    /// How long a new connection may take to complete ZeroMQ's handshake
    /// (libzmq's `ZMQ_HANDSHAKE_IVL`) before it is closed. Every
    /// connection holds a file descriptor from the moment it is accepted:
    /// with libzmq's default of 30 s, a peer that opens connections and
    /// never speaks can hold all of them that long. Real peers complete it
    /// in milliseconds (CURVE's included). Default: 5,000 ms.
    pub handshake_timeout: Duration,
    /// Most bytes of replies kept for one client whose pipe is full (it
    /// reads slowly); past it, the stream being sent stops without its
    /// FINAL. Default: 32 MiB.
    pub max_client_backlog: usize,
    /// Most bytes of replies kept for all such clients together.
    /// Default: 256 MiB.
    pub max_total_backlog: usize,
    /// Largest message a peer may send, in bytes, all its frames together
    /// (libzmq's `ZMQ_MAXMSGSIZE`, which our patched libzmq applies to the
    /// whole message as well as to each frame): a peer that sends a larger
    /// one is disconnected by libzmq before the broker holds it, and nobody
    /// else is affected. A request whose worker's reply could not fit (its
    /// body within 512 bytes of the limit) is dropped by the broker, so that
    /// a client cannot get a worker disconnected. `None` for no limit.
    /// Default: 64 MiB.
    pub max_message_size: Option<u64>,
    /// Most frames one message from a peer may have: a peer that sends more
    /// is disconnected by libzmq (our patched one, `ZMQ_MAXFRAMES_MD`) and
    /// its partial message discarded before the broker sees any of it;
    /// nobody else is affected. Why a bound on frames as well as bytes:
    /// libzmq holds a message's frames until its last one arrives, at 64
    /// bytes of bookkeeping each, and an empty frame is 2 bytes on the wire,
    /// so without it one peer could make the broker hold 32 bytes per byte
    /// it sends, without end. A message being received costs at most
    /// `frames x 64 B + its bytes`: 256 KiB of bookkeeping at the default,
    /// while MDP itself needs at most 6 frames around a body. A request
    /// whose body has more than this less 6 frames is dropped by the broker
    /// (its worker's reply, 2 frames longer, would cost the worker its
    /// connection). `None` (or `Some(0)`) for no limit. Default: 4,096.
    pub max_frames_per_message: Option<u32>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            heartbeat_interval: Duration::from_millis(2500),
            heartbeat_liveness: 3,
            busy_timeout: Duration::from_secs(300),
            request_timeout: Some(Duration::from_secs(60)),
            max_deliveries: 3,
            max_queued: Some(100_000),
            max_queued_total: Some(1_000_000),
            handshake_timeout: Duration::from_secs(5),
            max_client_backlog: 32 << 20,
            max_total_backlog: 256 << 20,
            max_message_size: Some(64 << 20),
            max_frames_per_message: Some(4096),
        }
    }
}

impl Config {
    /// Silence after which a worker is dead: liveness x interval.
    pub fn expiry(&self) -> Duration {
        self.heartbeat_interval * self.heartbeat_liveness
    }

    /// The step of the grid the broker's timers fire on: a tenth of the
    /// heartbeat interval, and at most 100 ms. Heartbeats go out up to one
    /// step early, expiries happen up to one step late, and timers wake the
    /// broker at most once per step.
    pub fn timer_resolution(&self) -> Duration {
        (self.heartbeat_interval / 10).min(MAX_TIMER_RESOLUTION)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_liveness_times_interval() {
        let config = Config {
            heartbeat_interval: Duration::from_millis(100),
            heartbeat_liveness: 4,
            ..Config::default()
        };
        assert_eq!(config.expiry(), Duration::from_millis(400));
        assert_eq!(Config::default().expiry(), Duration::from_millis(7500));
    }

    #[test]
    fn timer_resolution_is_a_tenth_of_the_interval_up_to_100_ms() {
        assert_eq!(Config::default().timer_resolution(), Duration::from_millis(100));
        let fast = Config {
            heartbeat_interval: Duration::from_millis(50),
            ..Config::default()
        };
        assert_eq!(fast.timer_resolution(), Duration::from_millis(5));
    }
}
