//! The broker secured (27/ZAP, 26/CURVEZMQ): CURVE with a list of client
//! keys, source address allow-lists and service rules, each rule of
//! docs/security.md proved in-process with real handshakes.
//!
//! A refused peer is watched through a monitor on its own socket: the test
//! waits for its handshake to end (in failure) instead of sleeping, then
//! asks the broker, through an admitted peer, whether the refused one got
//! anywhere (`mmi.service` answers 404 for a READY that never arrived).

use std::path::PathBuf;
use std::time::Duration;

use crate::common::*;
use majordomo::curve::{Certificate, CurveClient, KeyPair, PublicKey};
use majordomo::security::{Security, SecurityConfig, parse_net};
use majordomo::{Client, ClientConfig, Version, Worker};

/// Key files for one test: the broker's pair, and a pair per peer name
/// (public ones in `clients/`, the broker's `--curve-clients`).
struct Keys {
    dir: tempfile::TempDir,
    broker: PublicKey,
}

impl Keys {
    fn new(names: &[&str]) -> Keys {
        let dir = tempfile::tempdir().expect("temporary directory");
        for sub in ["clients", "secrets"] {
            std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        let broker = KeyPair::generate().expect("key pair");
        Certificate::from(broker.clone())
            .save(dir.path(), "broker")
            .expect("save");
        let keys = Keys {
            dir,
            broker: broker.public,
        };
        for name in names {
            keys.add(name);
        }
        keys
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Makes a pair for `name` and lists its public key.
    fn add(&self, name: &str) {
        let pair = Certificate::from(KeyPair::generate().expect("key pair"));
        let (public, _) = pair.save(self.path("secrets"), name).expect("save");
        std::fs::copy(public, self.path("clients").join(format!("{name}.key"))).expect("copy");
    }

    /// `name`'s CURVE settings for this broker.
    fn client(&self, name: &str) -> CurveClient {
        let secret = self.path("secrets").join(format!("{name}.key_secret"));
        CurveClient::from_files(self.path("broker.key"), secret).expect("client keys")
    }

    /// Settings with a key the broker does not list.
    fn stranger(&self) -> CurveClient {
        CurveClient {
            server: self.broker,
            keys: KeyPair::generate().expect("key pair"),
        }
    }

    /// CURVE, admitting the listed keys.
    fn config(&self) -> SecurityConfig {
        let mut config = SecurityConfig::default();
        config.curve_secret_key = Some(self.path("broker.key_secret"));
        config.curve_clients = Some(self.path("clients"));
        config
    }

    /// [`Keys::config`] with the rules `acl` (TOML).
    fn config_with_acl(&self, acl: &str) -> SecurityConfig {
        let path = self.path("acl.toml");
        std::fs::write(&path, acl).expect("write ACL");
        let mut config = self.config();
        config.acl = Some(path);
        config
    }
}

fn start(config: SecurityConfig) -> TestBroker {
    TestBroker::start_secure(Security::load(config).expect("security settings"))
}

const READY_ECHO: &[&[u8]] = &[b"", b"MDPW01", &[1], b"echo"];
const DISCONNECT: &[&[u8]] = &[b"", b"MDPW01", &[5]];

/// A library worker that answers `echo` requests until dropped.
fn echo_worker(endpoint: &str, curve: CurveClient) -> std::thread::JoinHandle<()> {
    let mut config = worker_config(Version::V01);
    config.curve = Some(curve);
    let mut worker = Worker::connect(endpoint, "echo", config).expect("worker");
    std::thread::spawn(move || {
        // One request, then the worker goes with the thread.
        let request = worker.recv().expect("request");
        let body: Vec<Vec<u8>> = request.body.iter().map(|f| f.to_vec()).collect();
        worker.reply(request, body).expect("reply");
    })
}

#[test]
fn listed_library_peers_are_served_through_a_curve_broker() {
    let keys = Keys::new(&["alice", "echo-worker"]);
    let broker = start(keys.config());
    let worker = echo_worker(&broker.endpoint, keys.client("echo-worker"));
    let mut config = ClientConfig::default();
    config.curve = Some(keys.client("alice"));
    config.timeout = WAIT;
    let reply = Client::new(&broker.endpoint, config)
        .request("echo", ["hello"])
        .expect("reply");
    assert_eq!(&reply[0][..], b"hello");
    worker.join().expect("worker thread");
}

#[test]
fn an_unlisted_key_is_refused_at_the_handshake_and_never_registers() {
    let keys = Keys::new(&["alice"]);
    let broker = start(keys.config());
    let stranger = Watched::connect(&broker.endpoint, Some(&keys.stranger()), None);
    stranger.send(READY_ECHO);
    assert_eq!(stranger.handshake(), zmq::SocketEvent::HANDSHAKE_FAILED_AUTH);
    let alice = Watched::connect(&broker.endpoint, Some(&keys.client("alice")), None);
    assert_eq!(mmi_service(&alice, "echo"), b"404");
    assert_eq!(alice.handshake(), zmq::SocketEvent::HANDSHAKE_SUCCEEDED);
}

#[test]
fn a_null_peer_is_refused_and_never_registers() {
    let keys = Keys::new(&["alice"]);
    let broker = start(keys.config());
    let null = Watched::connect(&broker.endpoint, None, None);
    null.send(READY_ECHO);
    null.expect_refused();
    let alice = Watched::connect(&broker.endpoint, Some(&keys.client("alice")), None);
    assert_eq!(mmi_service(&alice, "echo"), b"404");
}

#[test]
fn a_peer_with_the_wrong_server_key_is_refused_and_never_registers() {
    let keys = Keys::new(&["alice"]);
    let broker = start(keys.config());
    let mut wrong = keys.client("alice");
    wrong.server = KeyPair::generate().expect("key pair").public;
    let impostor = Watched::connect(&broker.endpoint, Some(&wrong), None);
    impostor.send(READY_ECHO);
    impostor.expect_refused();
    let alice = Watched::connect(&broker.endpoint, Some(&keys.client("alice")), None);
    assert_eq!(mmi_service(&alice, "echo"), b"404");
}

#[test]
fn without_a_client_list_any_key_is_admitted_but_null_is_not() {
    let keys = Keys::new(&[]);
    let mut config = SecurityConfig::default();
    config.curve_secret_key = Some(keys.path("broker.key_secret"));
    let broker = start(config);
    let anyone = Watched::connect(&broker.endpoint, Some(&keys.stranger()), None);
    assert_eq!(mmi_service(&anyone, "echo"), b"404");
    let null = Watched::connect(&broker.endpoint, None, None);
    null.send(READY_ECHO);
    null.expect_refused();
}

/// Loopback addresses other than 127.0.0.1 (all of 127/8 is loopback on
/// Linux) stand for other hosts.
const ALLOWED: &str = "127.0.0.2";
const OTHER: &str = "127.0.0.3";

#[test]
fn allow_ip_refuses_other_sources_with_curve() {
    let keys = Keys::new(&["alice"]);
    let mut config = keys.config();
    config.allow_ip = vec![parse_net(ALLOWED).expect("address")];
    let broker = start(config);
    let outside = Watched::connect(&broker.endpoint, Some(&keys.client("alice")), Some(OTHER));
    outside.send(READY_ECHO);
    assert_eq!(outside.handshake(), zmq::SocketEvent::HANDSHAKE_FAILED_AUTH);
    let inside = Watched::connect(&broker.endpoint, Some(&keys.client("alice")), Some(ALLOWED));
    assert_eq!(mmi_service(&inside, "echo"), b"404");
}

#[test]
fn allow_ip_refuses_other_sources_without_curve() {
    let mut config = SecurityConfig::default();
    config.allow_ip = vec![
        parse_net("127.0.0.2/32").expect("block"),
        parse_net("::1").expect("address"),
    ];
    let broker = start(config);
    let outside = Watched::connect(&broker.endpoint, None, Some(OTHER));
    outside.send(READY_ECHO);
    outside.expect_refused();
    let inside = Watched::connect(&broker.endpoint, None, Some(ALLOWED));
    assert_eq!(mmi_service(&inside, "echo"), b"404");
    assert_eq!(inside.handshake(), zmq::SocketEvent::HANDSHAKE_SUCCEEDED);
}

/// The hijack of issue 10, forbidden: only echo-worker serves echo, only
/// alice requests it.
const ECHO_RULES: &str = r#"
default = "deny"
[[rule]]
service = "echo"
workers = ["echo-worker"]
clients = ["alice"]
"#;

#[test]
fn an_admitted_peer_cannot_register_for_a_service_it_may_not_serve() {
    let keys = Keys::new(&["alice", "echo-worker", "mallory"]);
    let broker = start(keys.config_with_acl(ECHO_RULES));
    let mallory = Watched::connect(&broker.endpoint, Some(&keys.client("mallory")), None);
    mallory.send(READY_ECHO);
    assert_eq!(mallory.recv(), frames(DISCONNECT));
    let alice = Watched::connect(&broker.endpoint, Some(&keys.client("alice")), None);
    assert_eq!(mmi_service(&alice, "echo"), b"404");
    // The worker the rule names registers.
    let worker = Watched::connect(&broker.endpoint, Some(&keys.client("echo-worker")), None);
    worker.send(READY_ECHO);
    wait_served(&alice, "echo");
}

#[test]
fn a_client_not_allowed_has_its_requests_dropped_while_mmi_stays_open() {
    let keys = Keys::new(&["alice", "echo-worker", "mallory"]);
    let broker = start(keys.config_with_acl(ECHO_RULES));
    let worker = Watched::connect(&broker.endpoint, Some(&keys.client("echo-worker")), None);
    worker.send(READY_ECHO);
    let mallory = Watched::connect(&broker.endpoint, Some(&keys.client("mallory")), None);
    wait_served(&mallory, "echo");
    mallory.send(&[b"", b"MDPC01", b"echo", b"from mallory"]);
    // Its next message is answered, so the request was handled: dropped.
    assert_eq!(mmi_service(&mallory, "echo"), b"200");
    let alice = Watched::connect(&broker.endpoint, Some(&keys.client("alice")), None);
    alice.send(&[b"", b"MDPC01", b"echo", b"from alice"]);
    let request = worker.recv_skipping_heartbeats();
    assert_eq!(request[1..3], frames(&[b"MDPW01", &[2]])[..]);
    assert_eq!(request.last().map(Vec::as_slice), Some(&b"from alice"[..]));
    worker.expect_silence(Duration::from_millis(100));
}

#[test]
fn prefix_rules_and_default_deny() {
    let keys = Keys::new(&["billing-worker", "alice"]);
    let rules = r#"
        default = "deny"
        [[rule]]
        service = "billing.*"
        workers = ["billing-worker"]
        clients = ["*"]
    "#;
    let broker = start(keys.config_with_acl(rules));
    let worker = Watched::connect(&broker.endpoint, Some(&keys.client("billing-worker")), None);
    worker.send(&[b"", b"MDPW01", &[1], b"billing.invoices"]);
    let alice = Watched::connect(&broker.endpoint, Some(&keys.client("alice")), None);
    wait_served(&alice, "billing.invoices");
    // Not under the prefix: the default, deny, even for that worker.
    let other = Watched::connect(&broker.endpoint, Some(&keys.client("billing-worker")), None);
    other.send(&[b"", b"MDPW01", &[1], b"billing"]);
    assert_eq!(other.recv(), frames(DISCONNECT));
    assert_eq!(mmi_service(&alice, "billing"), b"404");
    // Any admitted client may request under the prefix.
    alice.send(&[b"", b"MDPC01", b"billing.invoices", b"total"]);
    let request = worker.recv_skipping_heartbeats();
    assert_eq!(request.last().map(Vec::as_slice), Some(&b"total"[..]));
}
