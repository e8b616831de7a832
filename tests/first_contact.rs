//! The inputs of the first-contact issue (misconfigured peers, logs,
//! examples), through the libraries and a real broker.

use crate::common::*;
use majordomo::{Client, ClientConfig, Version, Worker, WorkerConfig};

/// Section 5: an MDP/0.1 client of an MDP/0.2 worker that streams gets
/// the whole reply as one REPLY: every PARTIAL's frames, then the FINAL's.
#[test]
fn a_v01_client_of_a_streaming_worker_gets_the_whole_stream_as_one_reply() {
    let broker = TestBroker::start_with(patient_config());
    let mut config = WorkerConfig::default();
    config.version = Version::V02;
    config.heartbeat_interval = INTERVAL;
    let mut worker = Worker::connect(&broker.endpoint, "stream", config).expect("worker");
    let serve = std::thread::spawn(move || {
        let request = worker.recv().expect("a request");
        for n in 0..3 {
            worker.partial(&request, [format!("part {n}")]).expect("partial");
        }
        worker.reply(request, ["end"]).expect("reply");
    });
    wait_for_service(&broker.endpoint, "stream");
    let mut client = Client::new(&broker.endpoint, ClientConfig::default()); // MDP/0.1
    let reply = client.request("stream", ["go"]).expect("one reply");
    let texts: Vec<String> = reply.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect();
    assert_eq!(texts, ["part 0", "part 1", "part 2", "end"]);
    serve.join().expect("worker thread");
}

/// Section 1: the library refuses, before connecting, every service name
/// the broker would refuse.
#[test]
fn the_worker_library_refuses_names_the_broker_would_refuse() {
    for name in ["", "mmi.foo", "mmi.service"] {
        let result = Worker::connect("tcp://127.0.0.1:1", name, WorkerConfig::default());
        match result {
            Err(majordomo::WorkerError::ReservedService(got)) => assert_eq!(got, name),
            other => panic!("{name:?}: {other:?}"),
        }
    }
    let error = Worker::connect("tcp://127.0.0.1:1", "mmi.foo", WorkerConfig::default()).expect_err("refused");
    assert!(error.to_string().contains("reserves"), "{error}");
}
