//! The Majordomo wire format: typed commands for MDP/0.1 (7/MDP) and
//! MDP/0.2 (18/MDP), decoded from and encoded to frames. No sockets and no
//! state live here, so every rule of the wire format is tested directly.
//!
//! Three facts shape this module:
//!
//! * **The same bytes mean different things in the two versions.** Command
//!   0x03 is REPLY from an MDP/0.1 worker but PARTIAL from an MDP/0.2 one,
//!   so a command is always decoded from its header and its byte together
//!   ([`Version`] travels with every decoded command).
//! * **The leading empty frame is optional in practice.** 7/MDP starts every
//!   command with an empty frame; 18/MDP removes it, but the most used
//!   MDP/0.2 implementation keeps it. The decoder finds the header at frame
//!   0, or at frame 1 after an empty frame, and records which ([`Framing`]),
//!   so the broker can answer every peer in the framing it used.
//! * **MDP/0.2 clients come in two flavors.** 18/MDP numbers client
//!   commands REQUEST 0x01, PARTIAL 0x02, FINAL 0x03, and its replies name
//!   the service; majortomo numbers them with the worker table (REQUEST
//!   0x02, PARTIAL 0x03, FINAL 0x04) and its replies do not name the
//!   service. A client only ever sends REQUEST, so its byte tells the two
//!   apart, and the broker answers in the client's own flavor ([`Flavor`]).
//! * **Direction matters.** An MDP/0.1 client REQUEST and the REPLY to it
//!   are identical on the wire, so there is one decoder per receiving role:
//!   [`decode_at_broker`], [`decode_at_client`], [`decode_at_worker`]. A
//!   command that exists but travels the other way is
//!   [`ProtocolError::WrongDirection`]. Each direction has its own type
//!   ([`ClientRequest`], [`ClientReply`], [`FromWorker`], [`ToWorker`]), so
//!   no encoder can be handed a command of the wrong direction, and
//!   encoding never fails: a PARTIAL, which only MDP/0.2 has, can only be
//!   built with the [`Streaming`] proof that [`Dialect::streaming`] gives
//!   for an MDP/0.2 dialect.
//!
//! Decoding consumes the frames and moves the body frames into the command:
//! bodies are never copied.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)
)]

mod error;
#[cfg(test)]
mod tests;

use std::fmt;

pub use error::ProtocolError;

use crate::frame::Frame;

/// Header of MDP/0.1 client commands.
pub const MDPC01: &[u8] = b"MDPC01";
/// Header of MDP/0.2 client commands.
pub const MDPC02: &[u8] = b"MDPC02";
/// Header of MDP/0.1 worker commands.
pub const MDPW01: &[u8] = b"MDPW01";
/// Header of MDP/0.2 worker commands.
pub const MDPW02: &[u8] = b"MDPW02";

/// The namespace 8/MMI reserves for services the broker answers itself.
pub const MMI_PREFIX: &[u8] = b"mmi.";

/// The longest service name accepted, in bytes. 7/MDP only says a name is
/// a printable string; without a bound, one READY or REQUEST could make
/// the broker keep a service named by 64 MiB of bytes (twice: the name and
/// its index), and every client asking for new names could do so again.
/// Real names are a few dozen bytes.
pub const MAX_SERVICE_NAME: usize = 1024;

/// Whether a service name lies in the reserved `mmi.` namespace. This is
/// the one place that rule lives: the broker uses it both to answer
/// requests internally and to refuse workers that try to register there.
pub fn is_mmi(service: &[u8]) -> bool {
    service.starts_with(MMI_PREFIX)
}

/// The protocol version a peer speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// MDP/0.1, 7/MDP: a single REPLY per request.
    V01,
    /// MDP/0.2, 18/MDP: zero or more PARTIAL, then one FINAL.
    V02,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::V01 => write!(f, "MDP/0.1"),
            Version::V02 => write!(f, "MDP/0.2"),
        }
    }
}

/// Whether a command starts with an empty frame before its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Framing {
    /// An empty frame, then the header (7/MDP; REQ sockets; majortomo).
    Delimited,
    /// The header first (18/MDP as written).
    Bare,
}

/// Which MDP/0.2 client protocol a client speaks: 18/MDP's, or
/// majortomo's. (MDP/0.1 and all worker commands have only one form.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// 18/MDP: REQUEST 0x01, PARTIAL 0x02, FINAL 0x03, and replies carry
    /// the service name frame.
    Rfc,
    /// majortomo: client commands numbered with the worker table (REQUEST
    /// 0x02, PARTIAL 0x03, FINAL 0x04), and replies carry no service name.
    Majortomo,
}

/// How a peer frames its commands: version, leading-frame style and client
/// flavor. A reply is encoded in the dialect of the command it
/// answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dialect {
    /// MDP/0.1 or MDP/0.2.
    pub version: Version,
    /// With or without the leading empty frame.
    pub framing: Framing,
    /// 18/MDP's or majortomo's client protocol (MDP/0.2 clients only).
    pub flavor: Flavor,
}

impl Dialect {
    /// MDP/0.1 as 7/MDP writes it: leading empty frame.
    pub const V01: Dialect = Dialect {
        version: Version::V01,
        framing: Framing::Delimited,
        flavor: Flavor::Rfc,
    };
    /// MDP/0.2 as 18/MDP writes it: no leading empty frame.
    pub const V02: Dialect = Dialect {
        version: Version::V02,
        framing: Framing::Bare,
        flavor: Flavor::Rfc,
    };
    /// MDP/0.2 as majortomo's client speaks it: leading empty frame, client
    /// commands numbered with the worker table, no service name in replies.
    pub const MAJORTOMO: Dialect = Dialect {
        version: Version::V02,
        framing: Framing::Delimited,
        flavor: Flavor::Majortomo,
    };

    /// The dialect the specification writes for `version`.
    pub fn standard(version: Version) -> Dialect {
        match version {
            Version::V01 => Dialect::V01,
            Version::V02 => Dialect::V02,
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.version)?;
        if self.framing == Framing::Bare && self.version == Version::V01 {
            write!(f, " (no leading empty frame)")?;
        }
        if self.framing == Framing::Delimited && self.version == Version::V02 {
            write!(f, " (leading empty frame)")?;
        }
        if self.flavor == Flavor::Majortomo {
            write!(f, " (majortomo flavor)")?;
        }
        Ok(())
    }
}

impl Dialect {
    /// The proof that this dialect can carry PARTIAL replies: `Some` for
    /// MDP/0.2, `None` for MDP/0.1.
    pub fn streaming(self) -> Option<Streaming> {
        (self.version == Version::V02).then_some(Streaming(self))
    }
}

/// An MDP/0.2 dialect, the only kind that can carry PARTIAL: a PARTIAL
/// command holds one, and is encoded in it. Only [`Dialect::streaming`]
/// and the decoders make one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Streaming(Dialect);

impl Streaming {
    /// The MDP/0.2 dialect.
    pub fn dialect(self) -> Dialect {
        self.0
    }
}

/// Client to broker: a request for a service (the only command a client
/// sends).
#[derive(Debug, PartialEq, Eq)]
pub struct ClientRequest {
    /// The service the request is for.
    pub service: Frame,
    /// The opaque body: one or more frames from a client (the broker
    /// refuses a REQUEST without one).
    pub body: Vec<Frame>,
}

/// Which reply a [`ClientReply`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// One piece of a streamed reply (MDP/0.2 only), in this dialect.
    Partial(Streaming),
    /// The reply, or the last piece of it (MDP/0.1 REPLY, MDP/0.2 FINAL).
    Final,
}

impl ReplyKind {
    /// The command's name as the specs write it, for logs.
    pub fn name(self) -> &'static str {
        match self {
            ReplyKind::Partial(_) => "PARTIAL",
            ReplyKind::Final => "FINAL/REPLY",
        }
    }
}

/// Broker to client: a reply to a request.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientReply {
    /// PARTIAL or FINAL.
    pub kind: ReplyKind,
    /// The service the request was for.
    pub service: Frame,
    /// The reply body, zero or more frames.
    pub body: Vec<Frame>,
}

/// Worker to broker.
#[derive(Debug, PartialEq, Eq)]
pub enum FromWorker {
    /// Register for a service.
    Ready {
        /// The service name.
        service: Frame,
    },
    /// One piece of a streamed reply (MDP/0.2 only), in this dialect.
    Partial {
        /// The MDP/0.2 dialect the PARTIAL is framed in.
        streaming: Streaming,
        /// The client's address from the request.
        client: Frame,
        /// This piece's body.
        body: Vec<Frame>,
    },
    /// The reply (MDP/0.1 REPLY, MDP/0.2 FINAL).
    Final {
        /// The client's address from the request.
        client: Frame,
        /// The reply body, zero or more frames.
        body: Vec<Frame>,
    },
    /// I am alive.
    Heartbeat,
    /// I am leaving.
    Disconnect,
}

impl FromWorker {
    /// The command's name as the specs write it, for logs.
    pub fn name(&self) -> &'static str {
        self.op().name()
    }

    fn op(&self) -> WorkerOp {
        match self {
            FromWorker::Ready { .. } => WorkerOp::Ready,
            FromWorker::Partial { .. } => WorkerOp::Partial,
            FromWorker::Final { .. } => WorkerOp::Final,
            FromWorker::Heartbeat => WorkerOp::Heartbeat,
            FromWorker::Disconnect => WorkerOp::Disconnect,
        }
    }
}

/// Broker to worker.
#[derive(Debug, PartialEq, Eq)]
pub enum ToWorker {
    /// A request to process.
    Request {
        /// The client's address, to be echoed in the reply.
        client: Frame,
        /// The request body, zero or more frames.
        body: Vec<Frame>,
    },
    /// I am alive.
    Heartbeat,
    /// Register again: the broker has forgotten you.
    Disconnect,
}

impl ToWorker {
    /// The command's name as the specs write it, for logs.
    pub fn name(&self) -> &'static str {
        self.op().name()
    }

    fn op(&self) -> WorkerOp {
        match self {
            ToWorker::Request { .. } => WorkerOp::Request,
            ToWorker::Heartbeat => WorkerOp::Heartbeat,
            ToWorker::Disconnect => WorkerOp::Disconnect,
        }
    }
}

/// Anything the broker can receive.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound {
    /// From a client.
    Client(ClientRequest),
    /// From a worker.
    Worker(FromWorker),
}

/// The worker commands, without their frames: the key of the byte tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WorkerOp {
    Ready,
    Request,
    Partial,
    Final,
    Heartbeat,
    Disconnect,
}

impl WorkerOp {
    fn name(self) -> &'static str {
        match self {
            WorkerOp::Ready => "READY",
            WorkerOp::Request => "REQUEST",
            WorkerOp::Partial => "PARTIAL",
            WorkerOp::Final => "FINAL/REPLY",
            WorkerOp::Heartbeat => "HEARTBEAT",
            WorkerOp::Disconnect => "DISCONNECT",
        }
    }

    const ALL: [WorkerOp; 6] = [
        WorkerOp::Ready,
        WorkerOp::Request,
        WorkerOp::Partial,
        WorkerOp::Final,
        WorkerOp::Heartbeat,
        WorkerOp::Disconnect,
    ];

    /// Whether `version` has this command: all but PARTIAL are in both.
    fn exists_in(self, version: Version) -> bool {
        !(self == WorkerOp::Partial && version == Version::V01)
    }

    /// The command byte: 7/MDP and 18/MDP number the worker commands
    /// differently. A PARTIAL is only ever framed in its MDP/0.2 dialect
    /// (its [`Streaming`] proof), never asked for in MDP/0.1.
    fn byte(self, version: Version) -> u8 {
        match (self, version) {
            (WorkerOp::Ready, _) => 0x01,
            (WorkerOp::Request, _) => 0x02,
            (WorkerOp::Partial, _) => 0x03,
            (WorkerOp::Final, Version::V01) => 0x03,
            (WorkerOp::Final, Version::V02) => 0x04,
            (WorkerOp::Heartbeat, Version::V01) => 0x04,
            (WorkerOp::Heartbeat, Version::V02) => 0x05,
            (WorkerOp::Disconnect, Version::V01) => 0x05,
            (WorkerOp::Disconnect, Version::V02) => 0x06,
        }
    }

    fn from_byte(version: Version, byte: u8) -> Option<WorkerOp> {
        WorkerOp::ALL
            .into_iter()
            .find(|op| op.exists_in(version) && op.byte(version) == byte)
    }
}

/// What a client command byte means, before it is tied to a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientOp {
    Request,
    Partial,
    Final,
}

impl ClientOp {
    /// MDP/0.2 client command bytes (MDP/0.1 client commands have none).
    fn byte(self, flavor: Flavor) -> u8 {
        let spec = match self {
            ClientOp::Request => 0x01,
            ClientOp::Partial => 0x02,
            ClientOp::Final => 0x03,
        };
        match flavor {
            Flavor::Rfc => spec,
            Flavor::Majortomo => spec + 1,
        }
    }

    fn from_byte(byte: u8, flavor: Flavor) -> Option<ClientOp> {
        let spec = match flavor {
            Flavor::Rfc => byte,
            Flavor::Majortomo => byte.checked_sub(1)?,
        };
        match spec {
            0x01 => Some(ClientOp::Request),
            0x02 => Some(ClientOp::Partial),
            0x03 => Some(ClientOp::Final),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ClientOp::Request => "client REQUEST",
            ClientOp::Partial => "client PARTIAL",
            ClientOp::Final => "client FINAL/REPLY",
        }
    }
}

/// The flavor a client's REQUEST byte reveals: 0x01 is 18/MDP's, 0x02
/// majortomo's (a client never sends PARTIAL, so 0x02 is not ambiguous).
fn request_flavor(byte: u8) -> Flavor {
    if byte == ClientOp::Request.byte(Flavor::Majortomo) {
        Flavor::Majortomo
    } else {
        Flavor::Rfc
    }
}

/// Which sub-protocol a header announces.
enum Header {
    Client(Version),
    Worker(Version),
}

/// A cursor over the frames of one message: consumes them front to back.
struct Cursor {
    frames: std::vec::IntoIter<Frame>,
}

impl Cursor {
    fn next_or(&mut self, missing: ProtocolError) -> Result<Frame, ProtocolError> {
        self.frames.next().ok_or(missing)
    }

    /// The command byte frame.
    fn command_byte(&mut self) -> Result<u8, ProtocolError> {
        let frame = self.next_or(ProtocolError::MissingCommand)?;
        match *frame {
            [byte] => Ok(byte),
            _ => Err(ProtocolError::MalformedCommand(frame.len())),
        }
    }

    fn service(&mut self) -> Result<Frame, ProtocolError> {
        let service = self.next_or(ProtocolError::MissingService)?;
        if service.is_empty() {
            return Err(ProtocolError::EmptyService);
        }
        if service.len() > MAX_SERVICE_NAME {
            return Err(ProtocolError::ServiceTooLong(service.len()));
        }
        Ok(service)
    }

    /// The client address and the empty delimiter after it.
    fn client_address(&mut self) -> Result<Frame, ProtocolError> {
        let client = self.next_or(ProtocolError::MissingClientAddress)?;
        if client.is_empty() {
            return Err(ProtocolError::EmptyClientAddress);
        }
        let delimiter = self.next_or(ProtocolError::MissingDelimiter)?;
        if !delimiter.is_empty() {
            return Err(ProtocolError::MissingDelimiter);
        }
        Ok(client)
    }

    /// All remaining frames: the body, zero or more frames. 7/MDP and
    /// 18/MDP draw bodies as one or more frames, but workers in the field
    /// reply with none (zguide's Python worker and majortomo's worker for an
    /// empty reply), and dropping such a reply stranded its request, so an
    /// empty reply body is a body. A client REQUEST still needs one (see
    /// [`decode_at_broker`]).
    fn body(self) -> Vec<Frame> {
        self.frames.collect()
    }

    /// Checks that nothing is left.
    fn finish(self) -> Result<(), ProtocolError> {
        match self.frames.len() {
            0 => Ok(()),
            n => Err(ProtocolError::TrailingFrames(n)),
        }
    }
}

/// Finds the header at frame 0, or at frame 1 after an empty frame.
fn open(frames: Vec<Frame>) -> Result<(Header, Framing, Cursor), ProtocolError> {
    let mut cursor = Cursor {
        frames: frames.into_iter(),
    };
    let mut header = cursor.next_or(ProtocolError::NoFrames)?;
    let mut framing = Framing::Bare;
    if header.is_empty() {
        header = cursor.next_or(ProtocolError::MissingHeader)?;
        framing = Framing::Delimited;
    }
    let header = match &header[..] {
        MDPC01 => Header::Client(Version::V01),
        MDPC02 => Header::Client(Version::V02),
        MDPW01 => Header::Worker(Version::V01),
        MDPW02 => Header::Worker(Version::V02),
        other => {
            let shown = other.get(..16).unwrap_or(other);
            return Err(ProtocolError::UnknownHeader(shown.to_vec()));
        }
    };
    Ok((header, framing, cursor))
}

/// Where a client command is decoded, which says what its bytes mean.
#[derive(Clone, Copy)]
enum ClientSide {
    /// At the broker: a REQUEST, whose byte reveals the client's flavor.
    Broker,
    /// At a client expecting replies in this flavor.
    Client(Flavor),
}

/// Decodes a client command after its header into its operation, flavor,
/// service and body. MDP/0.1 client commands carry no command byte, so
/// their operation is given by the direction. A majortomo-flavor reply
/// names no service; it decodes with an empty one.
fn client_command(
    version: Version,
    mut cursor: Cursor,
    side: ClientSide,
) -> Result<(ClientOp, Flavor, Frame, Vec<Frame>), ProtocolError> {
    let (op, flavor) = match (version, side) {
        (Version::V01, ClientSide::Broker) => (ClientOp::Request, Flavor::Rfc),
        (Version::V01, ClientSide::Client(_)) => (ClientOp::Final, Flavor::Rfc),
        (Version::V02, side) => {
            let byte = cursor.command_byte()?;
            let flavor = match side {
                ClientSide::Broker => request_flavor(byte),
                ClientSide::Client(flavor) => flavor,
            };
            let op = ClientOp::from_byte(byte, flavor).ok_or(ProtocolError::UnknownCommand { version, byte })?;
            (op, flavor)
        }
    };
    let service = match (side, flavor) {
        (ClientSide::Client(_), Flavor::Majortomo) => Frame::empty(),
        _ => cursor.service()?,
    };
    Ok((op, flavor, service, cursor.body()))
}

/// Decodes a worker command after its header: its operation, then the
/// client address and body (REQUEST, PARTIAL, FINAL) or service (READY).
fn worker_command(version: Version, mut cursor: Cursor) -> Result<(WorkerOp, WorkerFrames), ProtocolError> {
    let byte = cursor.command_byte()?;
    let op = WorkerOp::from_byte(version, byte).ok_or(ProtocolError::UnknownCommand { version, byte })?;
    let frames = match op {
        WorkerOp::Ready => {
            let service = cursor.service()?;
            cursor.finish()?;
            WorkerFrames::Service(service)
        }
        WorkerOp::Request | WorkerOp::Partial | WorkerOp::Final => {
            let client = cursor.client_address()?;
            WorkerFrames::Addressed(client, cursor.body())
        }
        WorkerOp::Heartbeat | WorkerOp::Disconnect => {
            cursor.finish()?;
            WorkerFrames::None
        }
    };
    Ok((op, frames))
}

/// The frames a worker command carries after its command byte.
enum WorkerFrames {
    None,
    Service(Frame),
    Addressed(Frame, Vec<Frame>),
}

/// Decodes what a broker receives from a client or a worker (the frames
/// after the ROUTER identity).
pub fn decode_at_broker(frames: Vec<Frame>) -> Result<(Dialect, Inbound), ProtocolError> {
    let (header, framing, cursor) = open(frames)?;
    match header {
        Header::Client(version) => {
            let (op, flavor, service, body) = client_command(version, cursor, ClientSide::Broker)?;
            if op != ClientOp::Request {
                return Err(ProtocolError::WrongDirection(op.name()));
            }
            if body.is_empty() {
                return Err(ProtocolError::MissingBody);
            }
            let dialect = Dialect {
                version,
                framing,
                flavor,
            };
            Ok((dialect, Inbound::Client(ClientRequest { service, body })))
        }
        Header::Worker(version) => {
            let dialect = Dialect {
                version,
                framing,
                flavor: Flavor::Rfc,
            };
            let cmd = match worker_command(version, cursor)? {
                (WorkerOp::Ready, WorkerFrames::Service(service)) => FromWorker::Ready { service },
                (WorkerOp::Partial, WorkerFrames::Addressed(client, body)) => FromWorker::Partial {
                    streaming: Streaming(dialect),
                    client,
                    body,
                },
                (WorkerOp::Final, WorkerFrames::Addressed(client, body)) => FromWorker::Final { client, body },
                (WorkerOp::Heartbeat, _) => FromWorker::Heartbeat,
                (WorkerOp::Disconnect, _) => FromWorker::Disconnect,
                _ => return Err(ProtocolError::WrongDirection("worker REQUEST")),
            };
            Ok((dialect, Inbound::Worker(cmd)))
        }
    }
}

/// Decodes what a client receives from its broker: PARTIAL or FINAL (an
/// MDP/0.1 REPLY decodes as [`ReplyKind::Final`]). MDP/0.2 replies are read
/// in the client protocol `flavor` the client speaks.
pub fn decode_at_client(frames: Vec<Frame>, flavor: Flavor) -> Result<(Dialect, ClientReply), ProtocolError> {
    let (header, framing, cursor) = open(frames)?;
    let Header::Client(version) = header else {
        return Err(ProtocolError::WrongDirection("worker command to a client"));
    };
    let (op, flavor, service, body) = client_command(version, cursor, ClientSide::Client(flavor))?;
    let dialect = Dialect {
        version,
        framing,
        flavor,
    };
    let kind = match op {
        ClientOp::Request => return Err(ProtocolError::WrongDirection(op.name())),
        ClientOp::Partial => ReplyKind::Partial(Streaming(dialect)),
        ClientOp::Final => ReplyKind::Final,
    };
    Ok((dialect, ClientReply { kind, service, body }))
}

/// Decodes what a worker receives from its broker: REQUEST, HEARTBEAT or
/// DISCONNECT.
pub fn decode_at_worker(frames: Vec<Frame>) -> Result<(Dialect, ToWorker), ProtocolError> {
    let (header, framing, cursor) = open(frames)?;
    let Header::Worker(version) = header else {
        return Err(ProtocolError::WrongDirection("client command to a worker"));
    };
    let cmd = match worker_command(version, cursor)? {
        (WorkerOp::Request, WorkerFrames::Addressed(client, body)) => ToWorker::Request { client, body },
        (WorkerOp::Heartbeat, _) => ToWorker::Heartbeat,
        (WorkerOp::Disconnect, _) => ToWorker::Disconnect,
        (op, _) => return Err(ProtocolError::WrongDirection(op.name())),
    };
    let dialect = Dialect {
        version,
        framing,
        flavor: Flavor::Rfc,
    };
    Ok((dialect, cmd))
}

fn push_header(out: &mut Vec<Frame>, dialect: Dialect, header: &[u8]) {
    if dialect.framing == Framing::Delimited {
        out.push(Frame::empty());
    }
    out.push(Frame::from_slice(header));
}

/// Appends the frames of a client's REQUEST to `out`.
pub fn encode_request(out: &mut Vec<Frame>, dialect: Dialect, request: ClientRequest) {
    match dialect.version {
        Version::V01 => push_header(out, dialect, MDPC01),
        Version::V02 => {
            push_header(out, dialect, MDPC02);
            out.push(Frame::from_slice(&[ClientOp::Request.byte(dialect.flavor)]));
        }
    }
    out.push(request.service);
    out.extend(request.body);
}

/// Appends the frames of a reply to a client to `out` (which may already
/// hold a routing identity). A FINAL is framed in `dialect`; a PARTIAL in
/// the MDP/0.2 dialect it carries (normally the same one).
pub fn encode_reply(out: &mut Vec<Frame>, dialect: Dialect, reply: ClientReply) {
    let (dialect, op) = match reply.kind {
        ReplyKind::Partial(streaming) => (streaming.dialect(), ClientOp::Partial),
        ReplyKind::Final => (dialect, ClientOp::Final),
    };
    match dialect.version {
        Version::V01 => push_header(out, dialect, MDPC01),
        Version::V02 => {
            push_header(out, dialect, MDPC02);
            out.push(Frame::from_slice(&[op.byte(dialect.flavor)]));
        }
    }
    if dialect.flavor == Flavor::Rfc {
        out.push(reply.service);
    }
    out.extend(reply.body);
}

fn push_worker_header(out: &mut Vec<Frame>, dialect: Dialect, op: WorkerOp) {
    let header = match dialect.version {
        Version::V01 => MDPW01,
        Version::V02 => MDPW02,
    };
    push_header(out, dialect, header);
    out.push(Frame::from_slice(&[op.byte(dialect.version)]));
}

fn push_addressed(out: &mut Vec<Frame>, client: Frame, body: Vec<Frame>) {
    out.push(client);
    out.push(Frame::empty());
    out.extend(body);
}

/// Appends the frames of a command from the broker to a worker to `out`
/// (which may already hold the worker's routing identity).
pub fn encode_to_worker(out: &mut Vec<Frame>, dialect: Dialect, cmd: ToWorker) {
    push_worker_header(out, dialect, cmd.op());
    if let ToWorker::Request { client, body } = cmd {
        push_addressed(out, client, body);
    }
}

/// Appends the frames of a worker's command to its broker to `out`. A
/// PARTIAL is framed in the MDP/0.2 dialect it carries (normally the same
/// as `dialect`).
pub fn encode_from_worker(out: &mut Vec<Frame>, dialect: Dialect, cmd: FromWorker) {
    let op = cmd.op();
    match cmd {
        FromWorker::Ready { service } => {
            push_worker_header(out, dialect, op);
            out.push(service);
        }
        FromWorker::Partial {
            streaming,
            client,
            body,
        } => {
            push_worker_header(out, streaming.dialect(), op);
            push_addressed(out, client, body);
        }
        FromWorker::Final { client, body } => {
            push_worker_header(out, dialect, op);
            push_addressed(out, client, body);
        }
        FromWorker::Heartbeat | FromWorker::Disconnect => push_worker_header(out, dialect, op),
    }
}
