//! Helpers shared by the integration tests: a broker on a thread bound to an
//! ephemeral loopback port, and raw DEALER peers with deadlines on every
//! receive. Nothing here sleeps to synchronise: waits poll until a deadline.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use majordomo::broker::{Config, Server, StopHandle};
use majordomo::curve::CurveClient;

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(5);

/// A short heartbeat, so expiry tests take a fraction of a second.
pub const INTERVAL: Duration = Duration::from_millis(50);

/// The configuration integration tests run brokers with.
pub fn test_config() -> Config {
    let mut config = Config::default();
    config.heartbeat_interval = INTERVAL;
    config.heartbeat_liveness = 3;
    config.busy_timeout = Duration::from_secs(2);
    config.request_timeout = Some(Duration::from_secs(5));
    config.max_deliveries = 3;
    config
}

/// For tests about something other than expiry: raw test workers that do
/// not heartbeat stay registered for seconds.
pub fn patient_config() -> Config {
    let mut config = test_config();
    config.heartbeat_liveness = 100;
    config
}

/// A broker running on its own thread; stopped and joined on drop.
pub struct TestBroker {
    pub endpoint: String,
    pub endpoints: Vec<String>,
    stop: StopHandle,
    thread: Option<JoinHandle<()>>,
}

impl TestBroker {
    pub fn start() -> TestBroker {
        TestBroker::start_with(test_config())
    }

    pub fn start_with(config: Config) -> TestBroker {
        TestBroker::bind(&["tcp://127.0.0.1:*".to_string()], config)
    }

    pub fn bind(endpoints: &[String], config: Config) -> TestBroker {
        TestBroker::serve(Server::bind(endpoints, config).expect("bind test broker"))
    }

    /// A broker on loopback with `security` on its endpoint.
    pub fn start_secure(security: majordomo::security::Security) -> TestBroker {
        let endpoints = ["tcp://127.0.0.1:*"];
        TestBroker::serve(Server::bind_secure(&endpoints, test_config(), security).expect("bind test broker"))
    }

    /// Runs a bound `server` on a thread.
    pub fn serve(server: Server) -> TestBroker {
        let endpoints = server.endpoints().to_vec();
        let stop = server.stop_handle();
        let thread = std::thread::spawn(move || server.run().expect("broker run"));
        TestBroker {
            endpoint: endpoints[0].clone(),
            endpoints,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the broker and waits for its thread.
    pub fn stop(&mut self) {
        self.stop.stop();
        if let Some(thread) = self.thread.take() {
            thread.join().expect("broker thread");
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One test process-wide context (each context costs threads).
pub fn context() -> zmq::Context {
    static CONTEXT: std::sync::OnceLock<zmq::Context> = std::sync::OnceLock::new();
    CONTEXT.get_or_init(zmq::Context::new).clone()
}

/// A raw DEALER socket speaking frames, for wire-level tests.
pub struct Peer {
    pub socket: zmq::Socket,
}

impl Peer {
    pub fn connect(endpoint: &str) -> Peer {
        Peer::connect_as(endpoint, None)
    }

    /// A peer that claims the routing id `id` (`ZMQ_ROUTING_ID`), if given.
    pub fn connect_as(endpoint: &str, id: Option<&[u8]>) -> Peer {
        let socket = context().socket(zmq::DEALER).expect("socket");
        socket.set_ipv6(true).expect("ipv6");
        if let Some(id) = id {
            socket.set_identity(id).expect("routing id");
        }
        socket.set_linger(0).expect("linger");
        socket.set_rcvtimeo(50).expect("rcvtimeo");
        socket.set_sndtimeo(1000).expect("sndtimeo");
        socket.connect(endpoint).expect("connect");
        Peer { socket }
    }

    pub fn send(&self, parts: &[&[u8]]) {
        self.socket.send_multipart(parts.iter(), 0).expect("send");
    }

    /// The next message, or None once `within` has passed.
    pub fn recv_within(&self, within: Duration) -> Option<Vec<Vec<u8>>> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            match self.socket.recv_multipart(0) {
                Ok(frames) => return Some(frames),
                Err(zmq::Error::EAGAIN) => continue,
                Err(e) => panic!("recv: {e}"),
            }
        }
        None
    }

    /// The next message; fails the test after [`WAIT`].
    pub fn recv(&self) -> Vec<Vec<u8>> {
        self.recv_within(WAIT).expect("no message within the deadline")
    }

    /// The next message that is not a heartbeat; fails after [`WAIT`].
    pub fn recv_skipping_heartbeats(&self) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(msg) = self.recv_within(deadline - Instant::now())
                && !is_heartbeat(&msg)
            {
                return msg;
            }
        }
        panic!("no non-heartbeat message within the deadline");
    }

    /// Asserts that nothing but heartbeats arrive during `during`.
    pub fn expect_silence(&self, during: Duration) {
        let deadline = Instant::now() + during;
        while Instant::now() < deadline {
            if let Some(msg) = self.recv_within(deadline - Instant::now()) {
                assert!(is_heartbeat(&msg), "expected silence, got {msg:?}");
            }
        }
    }
}

/// The next message on any socket (a ROUTER's with its routing id
/// first), or None once `within` has passed.
pub fn poll_recv(socket: &zmq::Socket, within: Duration) -> Option<Vec<Vec<u8>>> {
    let timeout = i64::try_from(within.as_millis()).unwrap_or(i64::MAX);
    match socket.poll(zmq::POLLIN, timeout).expect("poll") {
        0 => None,
        _ => Some(socket.recv_multipart(0).expect("recv")),
    }
}

pub fn is_heartbeat(msg: &[Vec<u8>]) -> bool {
    let parts: Vec<&[u8]> = msg.iter().map(|f| f.as_slice()).collect();
    matches!(
        parts.as_slice(),
        [b"", b"MDPW01", [4]] | [b"MDPW02", [5]] | [b"", b"MDPW02", [5]]
    )
}

pub fn frames(parts: &[&[u8]]) -> Vec<Vec<u8>> {
    parts.iter().map(|p| p.to_vec()).collect()
}

/// Registers a raw MDP/0.1 worker and waits until the broker knows it
/// (an mmi.service query answers 200).
pub fn v01_worker(endpoint: &str, service: &str) -> Peer {
    let worker = Peer::connect(endpoint);
    worker.send(&[b"", b"MDPW01", &[1], service.as_bytes()]);
    wait_for_service(endpoint, service);
    worker
}

/// Registers a raw MDP/0.2 worker (18/MDP framing) and waits for it.
pub fn v02_worker(endpoint: &str, service: &str) -> Peer {
    let worker = Peer::connect(endpoint);
    worker.send(&[b"MDPW02", &[1], service.as_bytes()]);
    wait_for_service(endpoint, service);
    worker
}

/// Asks mmi.service until it answers `code`; fails after [`WAIT`].
pub fn wait_for_mmi(endpoint: &str, service: &str, code: &[u8]) {
    let client = Peer::connect(endpoint);
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        client.send(&[b"", b"MDPC01", b"mmi.service", service.as_bytes()]);
        let reply = client.recv();
        if reply[3] == code {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!(
        "mmi.service for {service} never answered {}",
        String::from_utf8_lossy(code)
    );
}

pub fn wait_for_service(endpoint: &str, service: &str) {
    wait_for_mmi(endpoint, service, b"200");
}

/// The first automatic id of every stock libzmq 4.3 ROUTER: a zero byte and
/// the first value of glibc's unseeded `rand()`, 0x6b8b4567.
pub const STOCK_FIRST_ID: u32 = 0x6b8b_4567;

pub fn automatic_id(counter: u32) -> Vec<u8> {
    let mut id = vec![0];
    id.extend_from_slice(&counter.to_be_bytes());
    id
}

/// Asks mmi.service through `peer` and checks the broker answers it.
pub fn assert_served(peer: &Peer) {
    peer.send(&[b"", b"MDPC01", b"mmi.service", b"echo"]);
    let reply = peer.recv();
    assert_eq!(reply[..3], frames(&[b"", b"MDPC01", b"mmi.service"])[..]);
}

/// A worker library configuration on the tests' short heartbeat.
pub fn worker_config(version: majordomo::Version) -> majordomo::WorkerConfig {
    let mut config = majordomo::WorkerConfig::default();
    config.version = version;
    config.heartbeat_interval = INTERVAL;
    config.heartbeat_liveness = 3;
    config.reconnect_delay = Duration::from_millis(20);
    config.max_reconnect_delay = Duration::from_millis(200);
    config
}

/// The path of a built example program, if `cargo test` built it.
pub fn built_example(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::current_exe()
        .ok()?
        .parent()?
        .parent()?
        .join("examples")
        .join(name);
    path.exists().then_some(path)
}

/// Numbers the monitors' inproc endpoints.
static MONITORS: AtomicUsize = AtomicUsize::new(0);

fn monitor_endpoint() -> String {
    format!("inproc://watched-monitor-{}", MONITORS.fetch_add(1, Ordering::Relaxed))
}

/// A raw DEALER with optional CURVE settings and source address, and a
/// monitor on how its handshakes end.
pub struct Watched {
    pub peer: Peer,
    monitor: zmq::Socket,
}

impl Drop for Watched {
    /// Stops the monitor before its reader goes (see tests/curve.rs: a
    /// monitor event with no reader stalls the shared context).
    fn drop(&mut self) {
        self.peer
            .socket
            .monitor(&monitor_endpoint(), 0)
            .expect("stopping the monitor");
    }
}

impl std::ops::Deref for Watched {
    type Target = Peer;
    fn deref(&self) -> &Peer {
        &self.peer
    }
}

impl Watched {
    pub fn connect(endpoint: &str, curve: Option<&CurveClient>, source: Option<&str>) -> Watched {
        let socket = context().socket(zmq::DEALER).expect("socket");
        socket.set_linger(0).expect("linger");
        socket.set_rcvtimeo(50).expect("rcvtimeo");
        socket.set_sndtimeo(1000).expect("sndtimeo");
        if let Some(curve) = curve {
            curve.apply(&socket).expect("CURVE client");
        }
        let monitored = monitor_endpoint();
        let events = zmq::SocketEvent::HANDSHAKE_SUCCEEDED as i32
            | zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL as i32
            | zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL as i32
            | zmq::SocketEvent::HANDSHAKE_FAILED_AUTH as i32
            | zmq::SocketEvent::DISCONNECTED as i32;
        socket.monitor(&monitored, events).expect("monitor");
        let monitor = context().socket(zmq::PAIR).expect("monitor socket");
        monitor.connect(&monitored).expect("monitor connect");
        let target = match source {
            Some(source) => format!("tcp://{source}:0;{}", endpoint.trim_start_matches("tcp://")),
            None => endpoint.to_owned(),
        };
        socket.connect(&target).expect("connect");
        Watched {
            peer: Peer { socket },
            monitor,
        }
    }

    /// How its first handshake ended; fails the test after [`WAIT`].
    pub fn handshake(&self) -> zmq::SocketEvent {
        let timeout = i64::try_from(WAIT.as_millis()).expect("WAIT fits");
        assert!(
            self.monitor.poll(zmq::POLLIN, timeout).expect("poll monitor") > 0,
            "no handshake within the deadline"
        );
        let msg = self.monitor.recv_multipart(0).expect("monitor event");
        zmq::SocketEvent::from_raw(u16::from_ne_bytes([msg[0][0], msg[0][1]]))
    }

    /// Asserts its handshake failed.
    pub fn expect_refused(&self) {
        let event = self.handshake();
        assert_ne!(event, zmq::SocketEvent::HANDSHAKE_SUCCEEDED, "admitted");
    }
}

/// Asks `service`'s status through `peer`: 200 if it has workers.
pub fn mmi_service(peer: &Peer, service: &str) -> Vec<u8> {
    peer.send(&[b"", b"MDPC01", b"mmi.service", service.as_bytes()]);
    let reply = peer.recv();
    assert_eq!(reply[..3], frames(&[b"", b"MDPC01", b"mmi.service"])[..]);
    reply[3].clone()
}

/// Asks until `service` has a worker; fails after [`WAIT`].
pub fn wait_served(peer: &Peer, service: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    while mmi_service(peer, service) != b"200" {
        assert!(std::time::Instant::now() < deadline, "{service} never got a worker");
    }
}
