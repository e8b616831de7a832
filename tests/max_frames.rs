//! The bound on frames per message (`Config::max_frames_per_message`, our
//! libzmq's `ZMQ_MAXFRAMES_MD`): a peer that sends a message with too many
//! frames loses its connection, its message never reaches anyone, and
//! every other peer is served as before.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use majordomo::frame;

use crate::common::*;

/// The bound the tests run with: small, so that messages over it are cheap.
const BOUND: u32 = 100;

/// A peer whose disconnections are watched through a libzmq monitor.
///
/// libzmq sends monitor events from its I/O thread and blocks while the
/// reader is gone, stalling every socket of the context (the tests share
/// one): the monitor is stopped before its reader goes (see `Drop`).
struct Watched {
    peer: Peer,
    monitor: zmq::Socket,
}

/// Numbers the monitors' inproc endpoints.
fn monitor_endpoint() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("inproc://max-frames-monitor-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

impl Watched {
    fn new(peer: Peer) -> Watched {
        let endpoint = monitor_endpoint();
        peer.socket
            .monitor(&endpoint, zmq::SocketEvent::DISCONNECTED as i32)
            .expect("monitor");
        let monitor = context().socket(zmq::PAIR).expect("monitor socket");
        monitor.set_rcvtimeo(50).expect("rcvtimeo");
        monitor.connect(&endpoint).expect("connect monitor");
        Watched { peer, monitor }
    }

    /// Whether the socket's connection closed within `within`.
    fn seen_within(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            match self.monitor.recv_multipart(0) {
                Ok(event) => {
                    let code = u16::from_ne_bytes([event[0][0], event[0][1]]);
                    if code == zmq::SocketEvent::DISCONNECTED as u16 {
                        return true;
                    }
                }
                Err(zmq::Error::EAGAIN) => continue,
                Err(e) => panic!("monitor: {e}"),
            }
        }
        false
    }
}

impl Drop for Watched {
    /// A new monitor with no events replaces the one being read (the zmq
    /// crate cannot pass the null endpoint that would just stop it).
    fn drop(&mut self) {
        let _ = self.peer.socket.monitor(&monitor_endpoint(), 0);
    }
}

/// An MDP/0.1 client REQUEST for `echo` with `total` frames in all.
fn request_of(total: u32) -> Vec<Vec<u8>> {
    let mut parts = frames(&[b"", b"MDPC01", b"echo"]);
    parts.extend((3..total).map(|i| i.to_be_bytes().to_vec()));
    parts
}

/// libzmq itself: the ROUTER receives messages up to the bound, and a
/// message over it only as its sender's departure notice.
#[test]
fn a_router_drops_the_connection_that_sends_too_many_frames() {
    let mut router = context().socket(zmq::ROUTER).expect("router");
    router.set_linger(0).expect("linger");
    router.set_rcvtimeo(50).expect("rcvtimeo");
    frame::notify_disconnects(&mut router).expect("notify");
    frame::set_max_frames(&mut router, Some(BOUND)).expect("max frames");
    router.bind("tcp://127.0.0.1:*").expect("bind");
    let endpoint = router.get_last_endpoint().expect("endpoint").expect("utf-8");

    let vandal = Watched::new(Peer::connect_as(&endpoint, Some(b"vandal")));
    let neighbour = Peer::connect_as(&endpoint, Some(b"neighbour"));
    vandal.peer.send(&vec![&b""[..]; BOUND as usize + 1]);
    assert!(vandal.seen_within(WAIT), "the vandal's connection closes");
    let at_bound = vec![&b"x"[..]; BOUND as usize];
    neighbour.send(&at_bound);

    expect_departure_and_neighbour(&router, BOUND as usize + 1);
}

/// The broker: a client's REQUEST over the bound never reaches the worker,
/// that client's connection closes, and others are served.
#[test]
fn a_request_over_the_frame_bound_costs_only_its_senders_connection() {
    let mut config = patient_config();
    config.max_frames_per_message = Some(BOUND);
    let broker = TestBroker::start_with(config);
    let worker = v01_worker(&broker.endpoint, "echo");
    let client = Peer::connect(&broker.endpoint);
    assert_served(&client);

    let vandal = Watched::new(Peer::connect(&broker.endpoint));
    assert_served(&vandal.peer);
    vandal.peer.send(&parts(&request_of(BOUND + 1)));
    assert!(vandal.seen_within(WAIT), "the broker closes the vandal's connection");

    // The largest request the broker hands out: its worker's reply, two
    // frames longer, must fit the bound too.
    client.send(&parts(&request_of(BOUND - 3)));
    let request = worker.recv_skipping_heartbeats();
    // [empty, MDPW01, REQUEST, client, empty, body...]: the client's body.
    assert_eq!(
        request.len(),
        5 + (BOUND as usize - 6),
        "only the request within the bound arrives"
    );
    assert_eq!(request[5], 3u32.to_be_bytes());
    worker.send(&[b"", b"MDPW01", &[3], &request[3], b"", b"ok"]);
    assert_eq!(client.recv()[3], b"ok");
    worker.expect_silence(Duration::from_millis(200));
}

fn parts(message: &[Vec<u8>]) -> Vec<&[u8]> {
    message.iter().map(Vec::as_slice).collect()
}

/// Our libzmq applies `ZMQ_MAXMSGSIZE` to whole messages: frames each
/// within the limit but over it together cost their sender's connection.
#[test]
fn a_router_drops_the_connection_whose_message_is_too_large_in_all() {
    const LIMIT: usize = 64 * 1024;
    let mut router = context().socket(zmq::ROUTER).expect("router");
    router.set_linger(0).expect("linger");
    router.set_rcvtimeo(50).expect("rcvtimeo");
    frame::notify_disconnects(&mut router).expect("notify");
    router.set_maxmsgsize(LIMIT as i64).expect("maxmsgsize");
    router.bind("tcp://127.0.0.1:*").expect("bind");
    let endpoint = router.get_last_endpoint().expect("endpoint").expect("utf-8");

    let vandal = Watched::new(Peer::connect_as(&endpoint, Some(b"vandal")));
    let neighbour = Peer::connect_as(&endpoint, Some(b"neighbour"));
    let half = vec![7u8; LIMIT / 2];
    vandal.peer.send(&[&half, &half, b"x"]);
    assert!(vandal.seen_within(WAIT), "the vandal's connection closes");
    neighbour.send(&[&half, &half[1..], b"x"]);

    expect_departure_and_neighbour(&router, 4);
}

/// Reads `router` until it has the vandal's departure notice and the
/// neighbour's message of `frames` frames (routing id included), which
/// must come within [`WAIT`]; anything else fails the test.
fn expect_departure_and_neighbour(router: &zmq::Socket, frames: usize) {
    let deadline = Instant::now() + WAIT;
    let (mut notice, mut served) = (false, false);
    while !(notice && served) && Instant::now() < deadline {
        let Ok(msg) = router.recv_multipart(0) else { continue };
        match (msg[0].as_slice(), msg.len()) {
            (b"vandal", 2) if msg[1].is_empty() => notice = true,
            (b"neighbour", n) if n == frames => served = true,
            (id, n) => panic!("unexpected message from {id:?} with {n} frames"),
        }
    }
    assert!(notice, "the router hears that the vandal left");
    assert!(served, "a message of exactly the limit passes");
}
