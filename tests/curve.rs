//! CURVE (26/CURVEZMQ): that libzmq is built with it, that certificate
//! files round-trip and are the ones pyzmq reads and writes, and that the
//! crate's `Client`, `AsyncClient` and `Worker` talk through a CURVE broker
//! and get nowhere with the wrong server key. The broker is a raw ROUTER
//! set up as a CURVE server, so that tests see the exact frames (the real
//! broker's CURVE is tested in tests/security.rs); its socket monitor
//! tells when a handshake failed, so the tests wait for that event instead
//! of sleeping.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;
use majordomo::curve::{self, Certificate, CurveClient, CurveError, CurveServer, KeyPair};
use majordomo::{AsyncClient, Client, ClientConfig, ClientError, Version, Worker};

/// A raw ROUTER that is a CURVE server, standing in for a broker, with a
/// monitor on its handshakes. Every receive has a deadline.
struct CurveBroker {
    socket: zmq::Socket,
    monitor: zmq::Socket,
    endpoint: String,
    public: curve::PublicKey,
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
        let server = CurveServer {
            keys: KeyPair::generate().expect("key pair"),
        };
        let socket = context().socket(zmq::ROUTER).expect("socket");
        socket.set_linger(0).expect("linger");
        socket.set_sndtimeo(1000).expect("sndtimeo");
        server.apply(&socket).expect("CURVE server");
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
            public: server.keys.public,
        }
    }

    /// The next message (routing id first), or None after `within`.
    fn recv_within(&self, within: Duration) -> Option<Vec<Vec<u8>>> {
        poll_recv(&self.socket, within)
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

    /// A client's settings for this broker, with its own new keys.
    fn client(&self) -> CurveClient {
        CurveClient {
            server: self.public,
            keys: KeyPair::generate().expect("key pair"),
        }
    }
}

/// A client's settings with a server key that is not this broker's.
fn wrong_client() -> CurveClient {
    CurveClient {
        server: KeyPair::generate().expect("key pair").public,
        keys: KeyPair::generate().expect("key pair"),
    }
}

fn client_config(curve: CurveClient) -> ClientConfig {
    let mut config = ClientConfig::default();
    config.timeout = Duration::from_secs(2);
    config.curve = Some(curve);
    config
}

#[test]
fn libzmq_has_curve() {
    assert_eq!(zmq::has("curve"), Some(true));
}

#[test]
fn raw_sockets_complete_a_curve_handshake() {
    let broker = CurveBroker::bind();
    let socket = context().socket(zmq::DEALER).expect("socket");
    socket.set_linger(0).expect("linger");
    socket.set_rcvtimeo(50).expect("rcvtimeo");
    broker.client().apply(&socket).expect("CURVE client");
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

#[test]
fn a_worker_and_an_async_client_talk_through_a_curve_broker() {
    let broker = CurveBroker::bind();
    let mut config = worker_config(Version::V01);
    config.curve = Some(broker.client());
    // The fake broker never heartbeats: a long interval keeps the worker
    // from taking it for dead (and registering again) mid-test.
    config.heartbeat_interval = Duration::from_secs(10);
    let mut worker = Worker::connect(&broker.endpoint, "echo", config).expect("worker");
    let ready = broker.recv();
    assert_eq!(ready[1..], frames(&[b"", b"MDPW01", &[1], b"echo"])[..]);

    let mut client = AsyncClient::connect(&broker.endpoint, client_config(broker.client())).expect("client");
    client.send("echo", ["hello"]).expect("send");
    let request = broker.recv();
    assert_eq!(request[1..], frames(&[b"", b"MDPC01", b"echo", b"hello"])[..]);
    broker.send(&[&ready[0], b"", b"MDPW01", &[2], &request[0], b"", b"hello"]);

    let mut work = worker.recv().expect("request");
    let body = std::mem::take(&mut work.body);
    worker.reply(work, body).expect("reply");
    let reply = broker.recv();
    assert_eq!(
        reply[1..],
        frames(&[b"", b"MDPW01", &[3], &request[0], b"", b"hello"])[..]
    );
    broker.send(&[&request[0], b"", b"MDPC01", b"echo", b"hello"]);
    let answer = client.recv().expect("reply");
    assert_eq!(&answer.body[0][..], b"hello");
}

#[test]
fn a_client_gets_its_reply_through_a_curve_broker() {
    let broker = CurveBroker::bind();
    let config = client_config(broker.client());
    let endpoint = broker.endpoint.clone();
    let client = std::thread::spawn(move || Client::new(&endpoint, config).request("echo", ["hello"]));
    let request = broker.recv();
    assert_eq!(request[1..], frames(&[b"", b"MDPC01", b"echo", b"hello"])[..]);
    broker.send(&[&request[0], b"", b"MDPC01", b"echo", b"hi"]);
    let reply = client.join().expect("client thread").expect("reply");
    assert_eq!(&reply[0][..], b"hi");
}

#[test]
fn a_worker_reconnects_with_curve() {
    let broker = CurveBroker::bind();
    let mut config = worker_config(Version::V01);
    config.curve = Some(broker.client());
    let _worker = Worker::connect(&broker.endpoint, "echo", config).expect("worker");
    let first = broker.recv();
    // The broker stays silent: past its expiry the worker takes it for
    // dead and registers again, on a new socket.
    let again = broker.recv();
    assert_eq!(again[1..], frames(&[b"", b"MDPW01", &[1], b"echo"])[..]);
    assert_ne!(again[0], first[0], "the same connection");
}

#[test]
fn a_client_retries_with_curve() {
    let broker = CurveBroker::bind();
    let mut config = client_config(broker.client());
    config.timeout = Duration::from_secs(1);
    config.attempts = 2;
    let endpoint = broker.endpoint.clone();
    let client = std::thread::spawn(move || Client::new(&endpoint, config).request("echo", ["hello"]));
    let ignored = broker.recv();
    let retry = broker.recv();
    assert_ne!(retry[0], ignored[0], "the retry came on the same socket");
    broker.send(&[&retry[0], b"", b"MDPC01", b"echo", b"hi"]);
    let reply = client.join().expect("client thread").expect("reply");
    assert_eq!(&reply[0][..], b"hi");
}

#[test]
fn a_client_with_the_wrong_server_key_gets_nowhere() {
    let broker = CurveBroker::bind();
    let mut config = client_config(wrong_client());
    config.attempts = 1;
    config.timeout = Duration::from_millis(500);
    let endpoint = broker.endpoint.clone();
    let client = std::thread::spawn(move || Client::new(&endpoint, config).request("echo", ["hello"]));
    broker.expect_refusal();
    let result = client.join().expect("client thread");
    assert!(matches!(result, Err(ClientError::Unreachable { .. })), "{result:?}");
}

#[test]
fn a_worker_with_the_wrong_server_key_gets_nowhere() {
    let broker = CurveBroker::bind();
    let mut config = worker_config(Version::V01);
    config.curve = Some(wrong_client());
    let _worker = Worker::connect(&broker.endpoint, "echo", config).expect("worker");
    broker.expect_refusal();
}

/// A fresh directory, removed at the end of the test.
fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary directory")
}

#[test]
fn certificates_round_trip() {
    let dir = temp_dir();
    let keys = KeyPair::generate().expect("key pair");
    let (public, secret) = Certificate::from(keys.clone()).save(dir.path(), "alice").expect("save");
    assert_eq!(public, dir.path().join("alice.key"));
    assert_eq!(secret, dir.path().join("alice.key_secret"));
    let mode = std::fs::metadata(&secret).expect("metadata").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let loaded = Certificate::load(&secret).expect("load secret");
    assert_eq!(loaded.key_pair(), Some(keys.clone()));
    let loaded = Certificate::load(&public).expect("load public");
    assert_eq!((loaded.public, loaded.secret), (keys.public, None));

    let again = Certificate::from(KeyPair::generate().expect("key pair")).save(dir.path(), "alice");
    let Err(CurveError::Io { source, .. }) = again else {
        panic!("overwrote a certificate: {again:?}");
    };
    assert_eq!(source.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(Certificate::load(&secret).expect("load").key_pair(), Some(keys));
}

#[test]
fn a_public_directory_lists_its_key_files_and_names_a_bad_one() {
    let dir = temp_dir();
    for name in ["bob", "alice"] {
        Certificate::from(KeyPair::generate().expect("key pair"))
            .save(dir.path(), name)
            .expect("save");
    }
    let keys = curve::load_public_dir(dir.path()).expect("load");
    let names: Vec<&str> = keys.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);
    let alice = Certificate::load(dir.path().join("alice.key_secret")).expect("load");
    assert_eq!(keys[0].1, alice.public);

    let bad = dir.path().join("mallory.key");
    std::fs::write(&bad, "curve\n    public-key = \"too short\"\n").expect("write");
    match curve::load_public_dir(dir.path()) {
        Err(CurveError::Key { path, line: 2, .. }) => assert_eq!(path, bad),
        other => panic!("expected a bad key in {}: {other:?}", bad.display()),
    }
}

/// Runs `script` in python3 with `args`; `None` (and says why) if python3
/// or pyzmq is missing.
fn pyzmq(script: &str, args: &[&Path]) -> Option<String> {
    let output = match Command::new("python3").arg("-c").arg(script).args(args).output() {
        Ok(output) => output,
        Err(e) => {
            eprintln!("skipped: python3 cannot run ({e})");
            return None;
        }
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("No module named 'zmq'") {
        eprintln!("skipped: pyzmq is not installed for python3");
        return None;
    }
    assert!(output.status.success(), "python3 failed: {stderr}");
    Some(String::from_utf8(output.stdout).expect("utf-8"))
}

#[test]
fn certificates_written_by_pyzmq_load() {
    let dir = temp_dir();
    let script = "import sys, zmq.auth\n\
                  pub, sec = zmq.auth.create_certificates(sys.argv[1], 'py')\n\
                  p, s = zmq.auth.load_certificate(sec)\n\
                  print(p.decode(), s.decode())";
    let Some(out) = pyzmq(script, &[dir.path()]) else {
        return;
    };
    let (public, secret) = out.trim().split_once(' ').expect("two keys");
    let cert = Certificate::load(dir.path().join("py.key_secret")).expect("load secret");
    assert_eq!(cert.public.to_z85(), public);
    assert_eq!(cert.secret.expect("secret key").to_z85(), secret);
    let cert = Certificate::load(dir.path().join("py.key")).expect("load public");
    assert_eq!((cert.public.to_z85().as_str(), cert.secret), (public, None));
}

#[test]
fn certificates_we_write_load_in_pyzmq() {
    let dir = temp_dir();
    let keys = KeyPair::generate().expect("key pair");
    let (public, secret) = Certificate::from(keys.clone()).save(dir.path(), "rs").expect("save");
    let script = "import sys, zmq.auth\n\
                  for path in sys.argv[1:]:\n    \
                      p, s = zmq.auth.load_certificate(path)\n    \
                      print(p.decode(), s.decode() if s else '-')\n\
                  print(len(zmq.auth.load_certificates(sys.argv[1].rsplit('/', 1)[0])))";
    let Some(out) = pyzmq(script, &[&public, &secret]) else {
        return;
    };
    let expected = format!(
        "{public} -\n{public} {secret}\n1\n",
        public = keys.public.to_z85(),
        secret = keys.secret.to_z85()
    );
    assert_eq!(out, expected);
}
