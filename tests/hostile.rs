//! Inputs of the hostile-peers issue, with raw sockets against an
//! in-process broker.

use std::time::Duration;

use crate::common::*;

/// A frame larger than `--max-message-size` gets its sender disconnected
/// by libzmq before the broker holds it; everyone else is served.
#[test]
fn a_frame_over_the_size_limit_is_refused_without_harming_anyone_else() {
    let mut config = patient_config();
    config.max_message_size = Some(64 * 1024);
    let broker = TestBroker::start_with(config);
    let worker = v01_worker(&broker.endpoint, "echo");
    let vandal = Peer::connect(&broker.endpoint);
    vandal.send(&[b"", b"MDPC01", b"echo", &vec![7u8; 256 * 1024]]);
    worker.expect_silence(Duration::from_millis(200));
    let client = Peer::connect(&broker.endpoint);
    client.send(&[b"", b"MDPC01", b"echo", &vec![1u8; 60 * 1024]]);
    let request = worker.recv_skipping_heartbeats();
    assert_eq!(request[5].len(), 60 * 1024, "a frame within the limit passes");
    worker.send(&[b"", b"MDPW01", &[3], &request[3], b"", b"ok"]);
    assert_eq!(client.recv()[3], b"ok");
}
