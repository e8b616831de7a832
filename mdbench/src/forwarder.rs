//! The two baselines the broker is measured against, each as small as its
//! dispatch rule allows: no heartbeats, no services, no validation beyond
//! what routing needs, bodies moved as received.
//!
//! * [`Rule::LeastRecentlyUsed`]: MDP's rule. A worker gets a request only
//!   when idle; requests wait in the forwarder, clients taking turns (7/MDP:
//!   the broker SHOULD serve clients on a fair basis, as ours does); the
//!   least recently used idle worker goes first. The ceiling a conformant
//!   broker can reach. (Turns cost throughput in closed-loop runs on few
//!   cores: first come, first served lets a client's replies come in
//!   convoys, one wake-up for several, and turns break the convoys up.)
//! * [`Rule::RoundRobin`]: blind forwarding to the next worker in turn;
//!   requests pile up at the workers. The raw libzmq figure, for context.

use std::collections::{HashMap, VecDeque};

use majordomo::frame::{self, Frame};
use majordomo::protocol::{self, Dialect, MDPC01, MDPC02, MDPW01, MDPW02, Version};

/// How a forwarder picks the worker for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    LeastRecentlyUsed,
    RoundRobin,
}

/// Serves one ROUTER socket forever (the process is ended by a signal).
pub fn serve(mut socket: zmq::Socket, rule: Rule, version: Version) -> Result<(), zmq::Error> {
    let dialect = Dialect::standard(version);
    let mut workers: Vec<Frame> = Vec::new();
    let mut next = 0usize;
    let mut idle: VecDeque<Frame> = VecDeque::new();
    let mut waiting = Turns::default();
    loop {
        let mut frames = frame::recv_multipart(&mut socket, false)?.into_iter();
        let Some(identity) = frames.next() else { continue };
        let mut rest: Vec<Frame> = frames.collect();
        if rest.first().is_some_and(|f| f.is_empty()) {
            rest.remove(0);
        }
        let mut rest = rest.into_iter();
        let Some(header) = rest.next() else { continue };
        match &header[..] {
            MDPC01 | MDPC02 => {
                // Client REQUEST: [header, (command,) service, body...]
                if version == Version::V02 {
                    rest.next();
                }
                rest.next(); // service
                let body: Vec<Frame> = rest.collect();
                let worker = match rule {
                    Rule::LeastRecentlyUsed => idle.pop_front(),
                    Rule::RoundRobin if !workers.is_empty() => {
                        next = (next + 1) % workers.len();
                        workers.get(next).map(Frame::share)
                    }
                    Rule::RoundRobin => None,
                };
                match worker {
                    Some(worker) => send_request(&mut socket, dialect, worker, identity, body)?,
                    None => waiting.push(identity, body),
                }
            }
            MDPW01 | MDPW02 => {
                let command = rest.next().map(|f| f.first().copied().unwrap_or(0)).unwrap_or(0);
                let is_reply = match version {
                    Version::V01 => command == 3,
                    Version::V02 => command == 4,
                };
                if command == 1 {
                    workers.push(identity.share());
                } else if is_reply {
                    let Some(client) = rest.next() else { continue };
                    rest.next(); // delimiter
                    send_reply(&mut socket, dialect, client, rest.collect())?;
                } else {
                    continue; // heartbeats and the rest: nothing to do
                }
                match rule {
                    Rule::LeastRecentlyUsed => match waiting.pop() {
                        Some((client, body)) => send_request(&mut socket, dialect, identity, client, body)?,
                        None => idle.push_back(identity),
                    },
                    Rule::RoundRobin => {
                        while let Some((client, body)) = waiting.pop() {
                            next = (next + 1) % workers.len().max(1);
                            let Some(worker) = workers.get(next).map(Frame::share) else {
                                break;
                            };
                            send_request(&mut socket, dialect, worker, client, body)?;
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// Waiting requests, one queue per client, the clients taking turns.
#[derive(Default)]
struct Turns {
    queues: HashMap<Vec<u8>, VecDeque<Vec<Frame>>>,
    turns: VecDeque<(Vec<u8>, Frame)>,
}

impl Turns {
    fn push(&mut self, client: Frame, body: Vec<Frame>) {
        let queue = self.queues.entry(client.to_vec()).or_default();
        if queue.is_empty() {
            self.turns.push_back((client.to_vec(), client));
        }
        queue.push_back(body);
    }

    fn pop(&mut self) -> Option<(Frame, Vec<Frame>)> {
        let (key, client) = self.turns.pop_front()?;
        let queue = self.queues.get_mut(&key)?;
        let body = queue.pop_front()?;
        if queue.is_empty() {
            self.queues.remove(&key);
        } else {
            self.turns.push_back((key, client.share()));
        }
        Some((client, body))
    }
}

fn send_request(
    socket: &mut zmq::Socket,
    dialect: Dialect,
    worker: Frame,
    client: Frame,
    body: Vec<Frame>,
) -> Result<(), zmq::Error> {
    let mut frames = vec![worker];
    let cmd = protocol::ToWorker::Request { client, body };
    protocol::encode_to_worker(&mut frames, dialect, cmd);
    frame::send_multipart(socket, frames)
}

fn send_reply(socket: &mut zmq::Socket, dialect: Dialect, client: Frame, body: Vec<Frame>) -> Result<(), zmq::Error> {
    let mut frames = vec![client];
    let reply = protocol::ClientReply {
        kind: protocol::ReplyKind::Final,
        service: Frame::from(super::SERVICE),
        body,
    };
    protocol::encode_reply(&mut frames, dialect, reply);
    frame::send_multipart(socket, frames)
}

/// The floor under the broker's idle cost: answers every worker command at
/// once with a HEARTBEAT, keeping no state and no timers. Workers that
/// heartbeat at the broker's interval get as many messages from it as from
/// the broker, so its CPU is what that traffic costs libzmq and the kernel.
pub fn serve_heartbeat_echo(mut socket: zmq::Socket, version: Version) -> Result<(), zmq::Error> {
    let dialect = Dialect::standard(version);
    loop {
        let mut frames = frame::recv_multipart(&mut socket, false)?.into_iter();
        let Some(identity) = frames.next() else { continue };
        let mut out = vec![identity];
        protocol::encode_to_worker(&mut out, dialect, protocol::ToWorker::Heartbeat);
        frame::send_multipart(&mut socket, out)?;
    }
}
