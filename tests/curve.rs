//! CURVE (26/CURVEZMQ) in our libzmq: it is compiled in, a handshake
//! between two raw sockets carries messages, and a CURVE server refuses a
//! peer without CURVE. The server's socket monitor tells when a handshake
//! failed, so the tests wait for that event instead of sleeping.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;

/// A raw ROUTER that is a CURVE server, with a monitor on its handshakes.
/// Every receive has a deadline.
struct CurveBroker {
    socket: zmq::Socket,
    monitor: zmq::Socket,
    endpoint: String,
    public: [u8; 32],
}

/// Numbers the monitors' inproc endpoints.
static MONITORS: AtomicUsize = AtomicUsize::new(0);

fn monitor_endpoint() -> String {
    format!("inproc://curve-monitor-{}", MONITORS.fetch_add(1, Ordering::Relaxed))
}

impl Drop for CurveBroker {
    /// Stops the monitor before its reader goes: libzmq sends monitor
    /// events blocking, from the I/O thread, so one sent with no reader
    /// left would stall every socket of the tests' shared context. Moving
    /// the monitor to a new endpoint with no events stops the old one at
    /// once (the `zmq` crate cannot pass the NULL endpoint that stops it).
    fn drop(&mut self) {
        self.socket
            .monitor(&monitor_endpoint(), 0)
            .expect("stopping the monitor");
    }
}

impl CurveBroker {
    fn bind() -> CurveBroker {
        let keys = zmq::CurveKeyPair::new().expect("key pair");
        let socket = context().socket(zmq::ROUTER).expect("socket");
        socket.set_linger(0).expect("linger");
        socket.set_sndtimeo(1000).expect("sndtimeo");
        socket.set_curve_server(true).expect("CURVE server");
        socket.set_curve_secretkey(&keys.secret_key).expect("secret key");
        let monitored = monitor_endpoint();
        let events = zmq::SocketEvent::HANDSHAKE_SUCCEEDED as i32
            | zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL as i32
            | zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL as i32
            | zmq::SocketEvent::HANDSHAKE_FAILED_AUTH as i32;
        socket.monitor(&monitored, events).expect("monitor");
        let monitor = context().socket(zmq::PAIR).expect("monitor socket");
        monitor.connect(&monitored).expect("monitor connect");
        socket.bind("tcp://127.0.0.1:*").expect("bind");
        let endpoint = socket.get_last_endpoint().expect("endpoint").expect("utf-8");
        CurveBroker {
            socket,
            monitor,
            endpoint,
            public: keys.public_key,
        }
    }

    /// The next message (routing id first), or None after `within`.
    fn recv_within(&self, within: Duration) -> Option<Vec<Vec<u8>>> {
        let timeout = i64::try_from(within.as_millis()).unwrap_or(i64::MAX);
        match self.socket.poll(zmq::POLLIN, timeout).expect("poll") {
            0 => None,
            _ => Some(self.socket.recv_multipart(0).expect("recv")),
        }
    }

    /// The next message that is not a heartbeat; fails after [`WAIT`].
    fn recv(&self) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + WAIT;
        loop {
            let msg = self
                .recv_within(deadline.saturating_duration_since(Instant::now()))
                .expect("no message within the deadline");
            if !is_heartbeat(&msg[1..]) {
                return msg;
            }
        }
    }

    fn send(&self, parts: &[&[u8]]) {
        self.socket.send_multipart(parts.iter(), 0).expect("send");
    }

    /// The next handshake event; fails the test after [`WAIT`].
    fn handshake(&self) -> zmq::SocketEvent {
        let timeout = i64::try_from(WAIT.as_millis()).expect("WAIT fits");
        assert!(
            self.monitor.poll(zmq::POLLIN, timeout).expect("poll monitor") > 0,
            "no handshake within the deadline"
        );
        let msg = self.monitor.recv_multipart(0).expect("monitor event");
        let event = u16::from_ne_bytes([msg[0][0], msg[0][1]]);
        zmq::SocketEvent::from_raw(event)
    }

    /// Asserts a handshake failed, and that no message came through.
    fn expect_refusal(&self) {
        let event = self.handshake();
        assert_ne!(event, zmq::SocketEvent::HANDSHAKE_SUCCEEDED, "the handshake succeeded");
        assert_eq!(self.recv_within(Duration::from_millis(100)), None);
    }
}

#[test]
fn libzmq_has_curve() {
    assert_eq!(zmq::has("curve"), Some(true));
}

#[test]
fn raw_sockets_complete_a_curve_handshake() {
    let broker = CurveBroker::bind();
    let keys = zmq::CurveKeyPair::new().expect("key pair");
    let socket = context().socket(zmq::DEALER).expect("socket");
    socket.set_linger(0).expect("linger");
    socket.set_rcvtimeo(50).expect("rcvtimeo");
    socket.set_curve_serverkey(&broker.public).expect("server key");
    socket.set_curve_publickey(&keys.public_key).expect("public key");
    socket.set_curve_secretkey(&keys.secret_key).expect("secret key");
    socket.connect(&broker.endpoint).expect("connect");
    let peer = Peer { socket };
    peer.send(&[b"hello"]);
    let msg = broker.recv();
    assert_eq!(msg[1..], frames(&[b"hello"])[..]);
    assert_eq!(broker.handshake(), zmq::SocketEvent::HANDSHAKE_SUCCEEDED);
    broker.send(&[&msg[0], b"back"]);
    assert_eq!(peer.recv(), frames(&[b"back"]));
}

#[test]
fn a_curve_server_refuses_a_null_peer() {
    let broker = CurveBroker::bind();
    let peer = Peer::connect(&broker.endpoint);
    peer.send(&[b"hello"]);
    broker.expect_refusal();
}
