//! Tests of the crate's `Client`, `AsyncClient` and `Worker` against a real
//! broker: versions and mixed versions, concurrency, a worker process that
//! dies mid-request, a broker restart, and clients' failure reports.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::*;
use majordomo::{AsyncClient, Client, ClientConfig, ClientError, Version, Worker, WorkerConfig, WorkerError};

fn client_config(version: Version) -> ClientConfig {
    let mut config = ClientConfig::default();
    config.version = version;
    config.timeout = Duration::from_secs(2);
    config.attempts = 3;
    config
}

/// `config` with `attempts` and `timeout` changed.
fn with(mut config: ClientConfig, attempts: u32, timeout: Duration) -> ClientConfig {
    config.attempts = attempts;
    config.timeout = timeout;
    config
}

/// An echo worker on a thread, stopped (and so DISCONNECTed) on drop. With
/// `partials`, an MDP/0.2 worker first streams that many PARTIALs.
struct EchoWorker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EchoWorker {
    fn start(endpoint: &str, service: &str, version: Version, partials: usize) -> EchoWorker {
        let mut worker = Worker::connect(endpoint, service, worker_config(version)).expect("worker");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let Some(request) = worker.recv_timeout(Some(Duration::from_millis(20))).expect("recv") else {
                    continue;
                };
                for i in 0..partials {
                    worker
                        .partial(&request, [format!("partial {i}").as_str()])
                        .expect("partial");
                }
                let body: Vec<Vec<u8>> = request.body.iter().map(|f| f.to_vec()).collect();
                worker.reply(request, body).expect("reply");
            }
        });
        EchoWorker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EchoWorker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("echo worker thread");
        }
    }
}

fn texts(body: &[majordomo::frame::Frame]) -> Vec<String> {
    body.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect()
}

#[test]
fn echo_in_each_version_and_across_versions() {
    let broker = TestBroker::start();
    let _w1 = EchoWorker::start(&broker.endpoint, "echo1", Version::V01, 0);
    let _w2 = EchoWorker::start(&broker.endpoint, "echo2", Version::V02, 0);
    wait_for_service(&broker.endpoint, "echo1");
    wait_for_service(&broker.endpoint, "echo2");
    for client_version in [Version::V01, Version::V02] {
        let mut client = Client::new(&broker.endpoint, client_config(client_version));
        for service in ["echo1", "echo2"] {
            let body = format!("{client_version} to {service}");
            let reply = client.request(service, [body.as_str(), "second frame"]).expect("reply");
            assert_eq!(texts(&reply), vec![body, "second frame".to_string()]);
        }
    }
}

#[test]
fn v02_client_sees_partials_then_final_and_v01_client_the_whole_stream_as_one_reply() {
    let broker = TestBroker::start();
    let _worker = EchoWorker::start(&broker.endpoint, "stream", Version::V02, 3);
    wait_for_service(&broker.endpoint, "stream");

    let mut v02 = Client::new(&broker.endpoint, client_config(Version::V02));
    let mut partials = Vec::new();
    let reply = v02
        .request_streaming("stream", ["go"], |body| partials.extend(texts(&body)))
        .expect("reply");
    assert_eq!(partials, vec!["partial 0", "partial 1", "partial 2"]);
    assert_eq!(texts(&reply), vec!["go"]);

    let mut v01 = Client::new(&broker.endpoint, client_config(Version::V01));
    assert_eq!(
        texts(&v01.request("stream", ["once"]).expect("reply")),
        vec!["partial 0", "partial 1", "partial 2", "once"]
    );

    let mut pipelined = AsyncClient::connect(&broker.endpoint, client_config(Version::V02)).expect("async");
    pipelined.send("stream", ["a"]).expect("send");
    let mut seen = Vec::new();
    loop {
        let reply = pipelined.recv().expect("recv");
        seen.push((reply.last, texts(&reply.body)));
        if reply.last {
            break;
        }
    }
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[3], (true, vec!["a".to_string()]));
    assert_eq!(pipelined.outstanding(), 0);
}

#[test]
fn many_clients_and_workers_every_reply_matches_its_request() {
    let broker = TestBroker::start();
    let workers: Vec<EchoWorker> = (0..4)
        .map(|i| {
            EchoWorker::start(
                &broker.endpoint,
                "echo",
                if i % 2 == 0 { Version::V01 } else { Version::V02 },
                0,
            )
        })
        .collect();
    wait_for_service(&broker.endpoint, "echo");
    let clients: Vec<JoinHandle<usize>> = (0..4)
        .map(|c| {
            let endpoint = broker.endpoint.clone();
            std::thread::spawn(move || {
                let version = if c % 2 == 0 { Version::V01 } else { Version::V02 };
                let mut client = Client::new(&endpoint, client_config(version));
                for i in 0..100 {
                    let body = format!("client {c} request {i}");
                    let reply = client.request("echo", [body.as_str()]).expect("reply");
                    assert_eq!(texts(&reply), vec![body]);
                }
                100
            })
        })
        .collect();
    let total: usize = clients.into_iter().map(|c| c.join().expect("client thread")).sum();
    assert_eq!(total, 400);

    let mut pipelined = AsyncClient::connect(&broker.endpoint, client_config(Version::V01)).expect("async");
    let mut expected: HashSet<String> = HashSet::new();
    for i in 0..200 {
        let body = format!("pipelined {i}");
        pipelined.send("echo", [body.as_str()]).expect("send");
        expected.insert(body);
    }
    while pipelined.outstanding() > 0 {
        let reply = pipelined.recv().expect("recv");
        let body = texts(&reply.body).remove(0);
        assert!(expected.remove(&body), "unexpected or duplicate reply {body}");
    }
    assert!(expected.is_empty());
    drop(workers);
}

/// Run by [`worker_that_dies_mid_request_has_its_request_redelivered`] as a
/// separate process: a library Worker that takes one request and aborts.
#[test]
#[ignore = "run as a child process by another test"]
fn child_process_worker_that_aborts() {
    let endpoint = std::env::var("MAJORDOMO_TEST_ENDPOINT").expect("endpoint for the child worker");
    let mut worker = Worker::connect(&endpoint, "fragile", worker_config(Version::V01)).expect("worker");
    let _request = worker.recv().expect("request");
    std::process::abort();
}

#[test]
fn worker_that_dies_mid_request_has_its_request_redelivered() {
    let broker = TestBroker::start();
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "libraries::child_process_worker_that_aborts",
            "--ignored",
            "--quiet",
        ])
        .env("MAJORDOMO_TEST_ENDPOINT", &broker.endpoint)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn child worker");
    wait_for_service(&broker.endpoint, "fragile");
    // The child registered first, so it is least recently used: it gets the request.
    let _rescuer = EchoWorker::start(&broker.endpoint, "fragile", Version::V01, 0);
    let mut client = Client::new(
        &broker.endpoint,
        with(client_config(Version::V01), 1, Duration::from_secs(2)),
    );
    let sent = Instant::now();
    let reply = client
        .request("fragile", ["survive"])
        .expect("the request outlives its first worker");
    let recovery = sent.elapsed();
    assert_eq!(texts(&reply), vec!["survive"]);
    let status = child.wait().expect("child status");
    assert!(!status.success(), "the child worker really died");
    eprintln!("worker death: reply after {recovery:?} (heartbeat interval {INTERVAL:?})");
    assert!(
        recovery < INTERVAL * 3 + Duration::from_millis(500),
        "took {recovery:?}"
    );
}

#[test]
fn workers_reregister_after_a_broker_restart_and_clients_retries_succeed() {
    let mut broker = TestBroker::start();
    let endpoint = broker.endpoint.clone();
    let _worker = EchoWorker::start(&endpoint, "durable", Version::V02, 0);
    wait_for_service(&endpoint, "durable");
    let mut client = Client::new(
        &endpoint,
        with(client_config(Version::V01), 3, Duration::from_millis(300)),
    );
    assert_eq!(
        texts(&client.request("durable", ["before"]).expect("before")),
        vec!["before"]
    );

    broker.stop();
    let restarted_at = Instant::now();
    let _broker = TestBroker::bind(std::slice::from_ref(&endpoint), test_config());
    wait_for_service(&endpoint, "durable");
    let reregistered = restarted_at.elapsed();
    eprintln!("broker restart: worker registered again after {reregistered:?}");
    assert!(
        reregistered < INTERVAL * 3 + Duration::from_millis(500),
        "took {reregistered:?}"
    );
    assert_eq!(
        texts(&client.request("durable", ["after"]).expect("after")),
        vec!["after"]
    );
}

#[test]
fn request_made_while_the_broker_is_down_succeeds_on_a_retry() {
    let mut broker = TestBroker::start();
    let endpoint = broker.endpoint.clone();
    broker.stop();
    let restart = {
        let endpoint = endpoint.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150)); // down during the first attempt
            let broker = TestBroker::bind(std::slice::from_ref(&endpoint), test_config());
            let worker = EchoWorker::start(&endpoint, "late", Version::V01, 0);
            (broker, worker)
        })
    };
    let mut client = Client::new(
        &endpoint,
        with(client_config(Version::V01), 5, Duration::from_millis(500)),
    );
    let reply = client.request("late", ["eventually"]).expect("a retry gets through");
    assert_eq!(texts(&reply), vec!["eventually"]);
    drop(restart.join().expect("restart thread"));
}

#[test]
fn client_for_a_service_that_never_appears_times_out_in_the_configured_time() {
    let broker = TestBroker::start();
    let config = with(client_config(Version::V02), 2, Duration::from_millis(150));
    let mut client = Client::new(&broker.endpoint, config);
    let started = Instant::now();
    let result = client.request("nobody-home", ["hello?"]);
    let took = started.elapsed();
    assert!(
        matches!(result, Err(ClientError::Timeout { attempts: 2 })),
        "{result:?}"
    );
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(1500),
        "took {took:?}"
    );

    let mut pipelined = AsyncClient::connect(&broker.endpoint, config_with_timeout(150)).expect("async");
    pipelined.send("nobody-home", ["hello?"]).expect("send");
    assert!(matches!(pipelined.recv(), Err(ClientError::Timeout { .. })));
}

fn config_with_timeout(ms: u64) -> ClientConfig {
    with(ClientConfig::default(), 3, Duration::from_millis(ms))
}

#[test]
fn client_reports_an_unreachable_broker() {
    // A port that was just free: nothing listens there.
    let endpoint = {
        let broker = TestBroker::start();
        broker.endpoint.clone()
    };
    let mut client = Client::new(&endpoint, with(ClientConfig::default(), 2, Duration::from_millis(100)));
    let started = Instant::now();
    let result = client.request("echo", ["anyone?"]);
    assert!(matches!(result, Err(ClientError::Unreachable { .. })), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let mut pipelined = AsyncClient::connect(&endpoint, config_with_timeout(100)).expect("async");
    assert!(matches!(
        pipelined.send("echo", ["anyone?"]),
        Err(ClientError::Unreachable { .. })
    ));
}

#[test]
fn malformed_endpoints_are_errors_not_panics() {
    let mut client = Client::new("no-such-transport://x", ClientConfig::default());
    assert!(matches!(client.request("echo", ["x"]), Err(ClientError::Socket(_))));
    assert!(matches!(
        Worker::connect("garbage", "echo", WorkerConfig::default()),
        Err(WorkerError::Socket(_))
    ));
}

#[test]
fn mmi_helper_says_whether_a_service_has_workers() {
    let broker = TestBroker::start();
    let _worker = EchoWorker::start(&broker.endpoint, "present", Version::V01, 0);
    wait_for_service(&broker.endpoint, "present");
    for version in [Version::V01, Version::V02] {
        let mut client = Client::new(&broker.endpoint, client_config(version));
        assert!(client.service_exists("present").expect("mmi"));
        assert!(!client.service_exists("absent").expect("mmi"));
    }
}
