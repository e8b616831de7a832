//! The inputs of the field-inputs issue (bug reports against other MDP
//! brokers and libraries, replayed against ours), one test or more each,
//! with raw sockets against an in-process broker.

use crate::common::*;

/// An MDP/0.1 worker that answers with a REPLY that has the client address
/// and the delimiter but no body frame (zguide's Python worker API sends
/// that for an empty reply) goes on serving, and the client gets the reply.
#[test]
fn an_empty_v01_reply_reaches_the_client_and_the_worker_serves_on() {
    let broker = TestBroker::start_with(patient_config());
    let worker = v01_worker(&broker.endpoint, "echo");
    let client = Peer::connect(&broker.endpoint);
    for round in 0..3 {
        client.send(&[b"", b"MDPC01", b"echo", b"anything"]);
        let request = worker.recv_skipping_heartbeats();
        worker.send(&[b"", b"MDPW01", &[3], &request[3], b""]);
        worker.send(&[b"", b"MDPW01", &[4]]);
        assert_eq!(client.recv(), frames(&[b"", b"MDPC01", b"echo"]), "round {round}");
    }
    wait_for_mmi(&broker.endpoint, "echo", b"200");
}

/// The same in MDP/0.2, in 18/MDP's framing and in majortomo's (a leading
/// empty frame: majortomo's `send_reply_final(client, [])`).
#[test]
fn an_empty_v02_final_reaches_the_client_in_both_framings() {
    let broker = TestBroker::start_with(patient_config());
    let bare = v02_worker(&broker.endpoint, "bare");
    let delimited = Peer::connect(&broker.endpoint);
    delimited.send(&[b"", b"MDPW02", &[1], b"delimited"]);
    wait_for_service(&broker.endpoint, "delimited");
    let client = Peer::connect(&broker.endpoint);

    client.send(&[b"MDPC02", &[1], b"bare", b"q"]);
    let request = bare.recv_skipping_heartbeats();
    bare.send(&[b"MDPW02", &[3], &request[2], b""]);
    bare.send(&[b"MDPW02", &[4], &request[2], b""]);
    assert_eq!(client.recv(), frames(&[b"MDPC02", &[2], b"bare"]));
    assert_eq!(client.recv(), frames(&[b"MDPC02", &[3], b"bare"]));

    client.send(&[b"MDPC02", &[1], b"delimited", b"q"]);
    let request = delimited.recv_skipping_heartbeats();
    delimited.send(&[b"", b"MDPW02", &[4], &request[3], b""]);
    assert_eq!(client.recv(), frames(&[b"MDPC02", &[3], b"delimited"]));

    // Both workers are free: the next requests are served.
    client.send(&[b"MDPC02", &[1], b"bare", b"again"]);
    let request = bare.recv_skipping_heartbeats();
    assert_eq!(request[4], b"again");
}

/// A request with no body frame (majortomo's `Client.send(service)`) is
/// refused, as both specifications' frame counts require: majortomo's own
/// worker fails on a REQUEST without a body.
#[test]
fn a_request_without_a_body_never_reaches_a_worker() {
    use std::time::Duration;
    let broker = TestBroker::start_with(patient_config());
    let worker = v02_worker(&broker.endpoint, "noargs");
    let client = Peer::connect(&broker.endpoint);
    client.send(&[b"", b"MDPC02", &[2], b"noargs"]);
    worker.expect_silence(Duration::from_millis(200));
    client.send(&[b"", b"MDPC02", &[2], b"noargs", b""]);
    let request = worker.recv_skipping_heartbeats();
    assert_eq!(request.len(), 5, "one empty body frame is a body: {request:?}");
}

/// A worker that holds a request and sends a malformed message is treated
/// as invalid (18/MDP): DISCONNECT, and its request goes to another worker.
#[test]
fn a_malformed_message_from_a_busy_worker_frees_its_request() {
    let broker = TestBroker::start_with(patient_config());
    let broken = v01_worker(&broker.endpoint, "echo");
    let client = Peer::connect(&broker.endpoint);
    client.send(&[b"", b"MDPC01", b"echo", b"job"]);
    let request = broken.recv_skipping_heartbeats();
    broken.send(&[b"", b"MDPW01", &[3], &request[3]]); // no delimiter, no body
    assert_eq!(broken.recv_skipping_heartbeats(), frames(&[b"", b"MDPW01", &[5]]));
    let good = v01_worker(&broker.endpoint, "echo");
    let request = good.recv_skipping_heartbeats();
    assert_eq!(request[5], b"job");
    good.send(&[b"", b"MDPW01", &[3], &request[3], b"", b"done"]);
    assert_eq!(client.recv(), frames(&[b"", b"MDPC01", b"echo", b"done"]));
}

/// The field input of section 6: a worker that takes a while per request,
/// and 7/MDP's recommended client (on timeout it closes its socket and
/// sends the request again on a new one, three attempts). The worker must
/// execute only the request it already holds, not each retry of a client
/// that has gone.
#[test]
fn retries_of_departed_clients_are_not_dispatched() {
    use std::time::Duration;
    let broker = TestBroker::start_with(patient_config());
    let worker = v01_worker(&broker.endpoint, "slow");
    let client_timeout = Duration::from_millis(150);
    let mut held = None;
    for attempt in 0..3 {
        let client = Peer::connect(&broker.endpoint);
        client.send(&[b"", b"MDPC01", b"slow", b"work"]);
        if attempt == 0 {
            held = Some(worker.recv_skipping_heartbeats());
        }
        assert_eq!(client.recv_within(client_timeout), None, "the worker is still busy");
    }
    // The worker is still busy (the input's worker takes 1 s); the broker
    // hears of the closed sockets meanwhile.
    worker.expect_silence(Duration::from_millis(300));
    let request = held.expect("the worker got the first attempt");
    worker.send(&[b"", b"MDPW01", &[3], &request[3], b"", b"too late"]);
    // Nothing more for the worker: both retries came from closed sockets.
    worker.expect_silence(Duration::from_millis(300));
    // And the worker is idle: a live client is served at once.
    let live = Peer::connect(&broker.endpoint);
    live.send(&[b"", b"MDPC01", b"slow", b"now"]);
    let request = worker.recv_skipping_heartbeats();
    assert_eq!(request[5], b"now");
}

/// Section 3: an MDP/0.2 worker streams `parts` PARTIALs of `size` bytes
/// and a FINAL to an MDP/0.2 client that reads nothing for `stall`. Returns
/// the sequence numbers of the PARTIALs the client got, and whether the
/// FINAL came.
fn stream_to_a_stalled_client(
    config: majordomo::broker::Config,
    parts: u32,
    size: usize,
    stall: std::time::Duration,
) -> (Vec<u32>, bool) {
    use std::time::Duration;
    let broker = TestBroker::start_with(config);
    let worker = v02_worker(&broker.endpoint, "stream");
    let client = Peer::connect(&broker.endpoint);
    client.send(&[b"MDPC02", &[1], b"stream", b"go"]);
    let request = worker.recv_skipping_heartbeats();
    let address = request[2].clone();
    let started = std::time::Instant::now();
    let mut body = vec![0u8; size];
    for seq in 0..parts {
        body[..4].copy_from_slice(&seq.to_be_bytes());
        worker.send(&[b"MDPW02", &[3], &address, b"", &body]);
    }
    worker.send(&[b"MDPW02", &[4], &address, b"", b"end"]);
    // The client reads nothing for a while (the input's slow reader).
    if let Some(rest) = stall.checked_sub(started.elapsed()) {
        std::thread::sleep(rest);
    }
    let mut seen = Vec::new();
    let mut final_came = false;
    while let Some(msg) = client.recv_within(Duration::from_millis(1000)) {
        match msg[1][..] {
            [2] => seen.push(u32::from_be_bytes([msg[3][0], msg[3][1], msg[3][2], msg[3][3]])),
            [3] => {
                final_came = true;
                break;
            }
            _ => panic!("unexpected {msg:?}"),
        }
    }
    (seen, final_came)
}

#[test]
fn a_stream_to_a_client_that_reads_late_arrives_whole_and_in_order() {
    use std::time::Duration;
    let (seen, final_came) = stream_to_a_stalled_client(patient_config(), 20_000, 1024, Duration::from_millis(1500));
    assert_eq!(seen.len(), 20_000);
    assert!(
        seen.iter().enumerate().all(|(i, seq)| *seq == i as u32),
        "in order, no holes"
    );
    assert!(final_came);
}

#[test]
fn a_stream_past_the_backlog_bound_stops_without_its_final() {
    use std::time::Duration;
    let mut config = patient_config();
    config.max_client_backlog = 2 << 20;
    let (seen, final_came) = stream_to_a_stalled_client(config, 5_000, 16 * 1024, Duration::from_millis(1000));
    assert!(!final_came, "a stream with a hole must not end with a FINAL");
    assert!(seen.len() < 5_000);
    assert!(
        seen.iter().enumerate().all(|(i, seq)| *seq == i as u32),
        "what came is a prefix, in order"
    );
}

/// A fresh directory for ipc endpoints, removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("mdbroker-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    fn ipc(&self, file: &str) -> String {
        format!("ipc://{}/{file}", self.0.display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Section 4A: a second broker on a live ipc path is refused and the first
/// keeps serving; a stale socket file does not stop a new broker; a broker
/// removes its socket file when it stops.
#[test]
fn an_ipc_path_in_use_is_refused_a_stale_one_reused_and_ours_removed() {
    use majordomo::broker::{Server, ServerError};
    let dir = TempDir::new("ipc");
    let ipc = dir.ipc("mdp.sock");
    let path = dir.0.join("mdp.sock");
    let mut first = TestBroker::bind(std::slice::from_ref(&ipc), patient_config());
    let worker = v01_worker(&first.endpoint, "echo");
    match Server::bind(std::slice::from_ref(&ipc), patient_config()) {
        Err(ServerError::Bind { source, .. }) => assert_eq!(source, zmq::Error::EADDRINUSE),
        other => panic!("a second broker on a live path must be refused: {other:?}"),
    }
    // The first broker still serves over the path.
    let client = Peer::connect(&ipc);
    client.send(&[b"", b"MDPC01", b"echo", b"still here"]);
    let request = worker.recv_skipping_heartbeats();
    worker.send(&[b"", b"MDPW01", &[3], &request[3], b"", b"yes"]);
    assert_eq!(client.recv()[3], b"yes");
    first.stop();
    assert!(!path.exists(), "a broker removes its socket file when it stops");

    // A stale file (a broker killed with no chance to clean up) is reused.
    drop(std::os::unix::net::UnixListener::bind(&path).expect("stale socket"));
    assert!(path.exists());
    let second = TestBroker::bind(std::slice::from_ref(&ipc), patient_config());
    wait_for_mmi(&second.endpoint, "echo", b"404");
    // A file that is not a socket is never deleted.
    let precious = dir.0.join("notes.txt");
    std::fs::write(&precious, b"keep me").expect("file");
    let endpoint = format!("ipc://{}", precious.display());
    assert!(Server::bind(&[endpoint], patient_config()).is_err());
    assert_eq!(std::fs::read(&precious).expect("still there"), b"keep me");
}

/// Section 4B: IPv6 endpoints bind, a wildcard serves IPv4 and IPv6
/// clients, and the client library reaches an IPv6 broker.
#[test]
fn ipv6_endpoints_and_a_wildcard_serve_both_families() {
    use majordomo::{Client, ClientConfig};
    let v6 = TestBroker::bind(&["tcp://[::1]:*".to_string()], patient_config());
    assert!(v6.endpoint.starts_with("tcp://[::1]:"), "{}", v6.endpoint);
    let worker = v01_worker(&v6.endpoint, "echo");
    let mut client = Client::new(&v6.endpoint, ClientConfig::default());
    let answer = std::thread::spawn(move || {
        let request = worker.recv_skipping_heartbeats();
        worker.send(&[b"", b"MDPW01", &[3], &request[3], b"", b"over ipv6"]);
    });
    let reply = client.request("echo", ["q"]).expect("an IPv6 broker answers");
    assert_eq!(&reply[0][..], b"over ipv6");
    answer.join().expect("worker thread");

    // And the worker library registers with an IPv6 broker.
    let mut config = majordomo::WorkerConfig::default();
    config.heartbeat_interval = INTERVAL;
    let mut worker = majordomo::Worker::connect(&v6.endpoint, "v6worker", config).expect("worker");
    let serve = std::thread::spawn(move || {
        let request = worker.recv().expect("a request");
        worker.reply(request, ["served"]).expect("reply");
    });
    let reply = client.request("v6worker", ["q"]).expect("the IPv6 worker answers");
    assert_eq!(&reply[0][..], b"served");
    serve.join().expect("worker thread");

    let wildcard = TestBroker::bind(&["tcp://*:*".to_string()], patient_config());
    let port = wildcard.endpoint.rsplit(':').next().expect("port").to_string();
    for host in ["127.0.0.1", "[::1]"] {
        wait_for_mmi(&format!("tcp://{host}:{port}"), "nothing", b"404");
    }
}

/// Section 5B: a worker whose heartbeats queue behind a slow reply is taken
/// for dead and its request goes to another worker; its reply, when it
/// comes, is delivered (the client still waits), and the second worker's
/// reply is dropped: one reply per request.
#[test]
fn a_reply_from_a_worker_taken_for_dead_is_delivered_once() {
    use std::time::Duration;
    let broker = TestBroker::start(); // 50 ms heartbeats: expiry 150 ms
    let slow = v01_worker(&broker.endpoint, "echo");
    let client = Peer::connect(&broker.endpoint);
    client.send(&[b"", b"MDPC01", b"echo", b"job"]);
    let request = slow.recv_skipping_heartbeats();
    // Heartbeats while busy (two tell the broker so), then nothing.
    slow.send(&[b"", b"MDPW01", &[4]]);
    slow.send(&[b"", b"MDPW01", &[4]]);
    let fast = v01_worker(&broker.endpoint, "echo");
    let redelivered = fast.recv_skipping_heartbeats();
    assert_eq!(redelivered[5], b"job", "the silent worker was taken for dead");
    slow.send(&[b"", b"MDPW01", &[3], &request[3], b"", b"slow but first"]);
    assert_eq!(client.recv(), frames(&[b"", b"MDPC01", b"echo", b"slow but first"]));
    fast.send(&[b"", b"MDPW01", &[3], &redelivered[3], b"", b"second"]);
    // The second worker is free at once, and its reply never reaches the
    // client: the client's next message answers its next request.
    client.send(&[b"", b"MDPC01", b"echo", b"next"]);
    let request = fast.recv_skipping_heartbeats();
    assert_eq!(request[5], b"next");
    fast.send(&[b"", b"MDPW01", &[3], &request[3], b"", b"next done"]);
    assert_eq!(client.recv(), frames(&[b"", b"MDPC01", b"echo", b"next done"]));
    // The late worker is told to register again.
    let disconnect = frames(&[b"", b"MDPW01", &[5]]);
    assert!(
        std::iter::from_fn(|| slow.recv_within(Duration::from_millis(500)))
            .take(50)
            .any(|msg| msg == disconnect)
    );
}

/// A reply for a connection that has closed does not go to a new
/// connection that claims the same routing id (a client retrying with a
/// fixed id, or anyone claiming a departed client's id).
#[test]
fn a_reply_for_a_closed_connection_never_reaches_a_new_one_with_the_same_id() {
    use std::time::Duration;
    let broker = TestBroker::start_with(patient_config());
    let worker = v01_worker(&broker.endpoint, "echo");
    let first = Peer::connect_as(&broker.endpoint, Some(b"fixed-client"));
    first.send(&[b"", b"MDPC01", b"echo", b"first"]);
    let request = worker.recv_skipping_heartbeats();
    drop(first);
    worker.expect_silence(Duration::from_millis(200)); // the broker hears of the close
    let second = Peer::connect_as(&broker.endpoint, Some(b"fixed-client"));
    second.send(&[b"", b"MDPC01", b"echo", b"second"]);
    worker.send(&[b"", b"MDPW01", &[3], &request[3], b"", b"first"]);
    let next = worker.recv_skipping_heartbeats();
    assert_eq!(next[5], b"second");
    worker.send(&[b"", b"MDPW01", &[3], &next[3], b"", b"second"]);
    assert_eq!(
        second.recv(),
        frames(&[b"", b"MDPC01", b"echo", b"second"]),
        "not the old reply"
    );
}
