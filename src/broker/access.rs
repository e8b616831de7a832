//! Who may register for a service and who may send it requests: a question
//! the core asks per message, answered by whatever the server installs
//! ([`Broker::set_access`](super::Broker::set_access)). The core knows no
//! policy itself (no files, no handshakes), so it stays a sans-IO state
//! machine, and a policy can be replaced while the broker runs (SIGHUP).
//!
//! By default everyone may do everything, which is 7/MDP's behaviour. The
//! peer is passed as a frame of its message, so that a policy can read the
//! properties its connection's handshake set ([`Frame::user_id`],
//! [`Frame::peer_address`]). `mmi.*` requests never reach the policy: 8/MMI
//! answers are open to every peer the handshake admitted.

use std::fmt;

use crate::frame::Frame;

/// A policy on services, asked for each READY and each request.
pub trait Access: fmt::Debug + Send {
    /// Whether the peer that sent `peer` may register as a worker for
    /// `service`. A peer refused gets DISCONNECT and is not registered.
    fn may_register(&mut self, service: &[u8], peer: &Frame) -> bool;

    /// Whether the peer that sent `peer` may send a request to `service`.
    /// A request refused is dropped (and counted).
    fn may_request(&mut self, service: &[u8], peer: &Frame) -> bool;
}

/// 7/MDP's own rule: anyone may register and request anything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Open;

impl Access for Open {
    fn may_register(&mut self, _service: &[u8], _peer: &Frame) -> bool {
        true
    }

    fn may_request(&mut self, _service: &[u8], _peer: &Frame) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::broker::{Broker, Config};

    /// Lets nothing but the service "open" be served or requested.
    #[derive(Debug)]
    struct OnlyOpen;

    impl Access for OnlyOpen {
        fn may_register(&mut self, service: &[u8], _peer: &Frame) -> bool {
            service == b"open"
        }

        fn may_request(&mut self, service: &[u8], _peer: &Frame) -> bool {
            service == b"open"
        }
    }

    fn handle(broker: &mut Broker, identity: &str, parts: &[&[u8]]) -> Vec<Vec<Vec<u8>>> {
        let frames = parts.iter().map(|p| Frame::from_slice(p)).collect();
        broker.handle(Frame::from(identity), frames, Instant::now());
        let mut out = Vec::new();
        broker.take_outbox(&mut out);
        out.iter()
            .map(|o| o.frames.iter().map(|f| f.to_vec()).collect())
            .collect()
    }

    #[test]
    fn a_refused_ready_gets_disconnect_and_registers_nothing() {
        let mut broker = Broker::new(Config::default(), Instant::now());
        broker.set_access(Box::new(OnlyOpen), Instant::now());
        let sent = handle(&mut broker, "w", &[b"", b"MDPW01", &[1], b"echo"]);
        assert_eq!(sent, [vec![b"w".to_vec(), vec![], b"MDPW01".to_vec(), vec![5]]]);
        assert_eq!(broker.worker_count(), 0);
        assert_eq!(broker.stats().registrations_refused, 1);
        handle(&mut broker, "v", &[b"", b"MDPW01", &[1], b"open"]);
        assert_eq!(broker.worker_count(), 1);
    }

    #[test]
    fn a_refused_request_is_dropped_and_counted_but_mmi_stays_open() {
        let mut broker = Broker::new(Config::default(), Instant::now());
        broker.set_access(Box::new(OnlyOpen), Instant::now());
        assert!(handle(&mut broker, "c", &[b"", b"MDPC01", b"echo", b"hi"]).is_empty());
        assert_eq!(broker.queued(b"echo"), 0);
        assert_eq!(broker.stats().requests_refused, 1);
        let sent = handle(&mut broker, "c", &[b"", b"MDPC01", b"mmi.service", b"echo"]);
        assert_eq!(sent[0][3..], [b"mmi.service".to_vec(), b"404".to_vec()]);
        handle(&mut broker, "c", &[b"", b"MDPC01", b"open", b"hi"]);
        assert_eq!(broker.queued(b"open"), 1);
    }

    #[test]
    fn a_registered_worker_no_longer_allowed_is_disconnected_when_the_rules_change() {
        let mut broker = Broker::new(Config::default(), Instant::now());
        handle(&mut broker, "w", &[b"", b"MDPW01", &[1], b"echo"]);
        handle(&mut broker, "v", &[b"", b"MDPW01", &[1], b"open"]);
        assert_eq!(broker.worker_count(), 2);
        broker.set_access(Box::new(OnlyOpen), Instant::now());
        let mut out = Vec::new();
        broker.take_outbox(&mut out);
        let sent: Vec<Vec<Vec<u8>>> = out
            .iter()
            .map(|o| o.frames.iter().map(|f| f.to_vec()).collect())
            .collect();
        assert_eq!(sent, [vec![b"w".to_vec(), vec![], b"MDPW01".to_vec(), vec![5]]]);
        assert_eq!(broker.worker_count(), 1, "the worker still allowed stays");
    }
}
