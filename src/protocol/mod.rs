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
//!   [`ProtocolError::WrongDirection`].
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

/// The kind of an MDP/Client command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// Client to broker: a request for a service.
    Request,
    /// Broker to client (MDP/0.2 only): one piece of a streamed reply.
    Partial,
    /// Broker to client: the reply (MDP/0.1 REPLY, MDP/0.2 FINAL).
    Final,
}

/// An MDP/Client command: a request, or a reply to one.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientCommand {
    /// What the command is.
    pub kind: ClientKind,
    /// The service the request is for, echoed in the reply.
    pub service: Frame,
    /// The opaque body, one or more frames.
    pub body: Vec<Frame>,
}

/// An MDP/Worker command, in either direction.
#[derive(Debug, PartialEq, Eq)]
pub enum WorkerCommand {
    /// Worker to broker: register for a service.
    Ready {
        /// The service name.
        service: Frame,
    },
    /// Broker to worker: a request to process.
    Request {
        /// The client's address, to be echoed in the reply.
        client: Frame,
        /// The request body.
        body: Vec<Frame>,
    },
    /// Worker to broker (MDP/0.2 only): one piece of a streamed reply.
    Partial {
        /// The client's address from the request.
        client: Frame,
        /// This piece's body.
        body: Vec<Frame>,
    },
    /// Worker to broker: the reply (MDP/0.1 REPLY, MDP/0.2 FINAL).
    Final {
        /// The client's address from the request.
        client: Frame,
        /// The reply body.
        body: Vec<Frame>,
    },
    /// Either way: I am alive.
    Heartbeat,
    /// Either way: this logical connection is over.
    Disconnect,
}

impl WorkerCommand {
    /// The command's name as the specs write it, for logs.
    pub fn name(&self) -> &'static str {
        WorkerOp::of(self).name()
    }
}

/// Anything the broker can receive.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound {
    /// From a client.
    Client(ClientCommand),
    /// From a worker.
    Worker(WorkerCommand),
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
    fn of(cmd: &WorkerCommand) -> WorkerOp {
        match cmd {
            WorkerCommand::Ready { .. } => WorkerOp::Ready,
            WorkerCommand::Request { .. } => WorkerOp::Request,
            WorkerCommand::Partial { .. } => WorkerOp::Partial,
            WorkerCommand::Final { .. } => WorkerOp::Final,
            WorkerCommand::Heartbeat => WorkerOp::Heartbeat,
            WorkerCommand::Disconnect => WorkerOp::Disconnect,
        }
    }

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

    /// 7/MDP and 18/MDP number the worker commands differently.
    fn table(version: Version) -> &'static [(WorkerOp, u8)] {
        match version {
            Version::V01 => &[
                (WorkerOp::Ready, 0x01),
                (WorkerOp::Request, 0x02),
                (WorkerOp::Final, 0x03),
                (WorkerOp::Heartbeat, 0x04),
                (WorkerOp::Disconnect, 0x05),
            ],
            Version::V02 => &[
                (WorkerOp::Ready, 0x01),
                (WorkerOp::Request, 0x02),
                (WorkerOp::Partial, 0x03),
                (WorkerOp::Final, 0x04),
                (WorkerOp::Heartbeat, 0x05),
                (WorkerOp::Disconnect, 0x06),
            ],
        }
    }

    fn from_byte(version: Version, byte: u8) -> Option<WorkerOp> {
        Self::table(version).iter().find(|(_, b)| *b == byte).map(|(op, _)| *op)
    }

    fn to_byte(self, version: Version) -> Option<u8> {
        Self::table(version).iter().find(|(op, _)| *op == self).map(|(_, b)| *b)
    }
}

/// MDP/0.2 client command bytes (MDP/0.1 client commands have none).
fn client_kind_byte(kind: ClientKind, flavor: Flavor) -> u8 {
    let spec = match kind {
        ClientKind::Request => 0x01,
        ClientKind::Partial => 0x02,
        ClientKind::Final => 0x03,
    };
    match flavor {
        Flavor::Rfc => spec,
        Flavor::Majortomo => spec + 1,
    }
}

fn client_kind_from_byte(byte: u8, flavor: Flavor) -> Option<ClientKind> {
    let spec = match flavor {
        Flavor::Rfc => byte,
        Flavor::Majortomo => byte.checked_sub(1)?,
    };
    match spec {
        0x01 => Some(ClientKind::Request),
        0x02 => Some(ClientKind::Partial),
        0x03 => Some(ClientKind::Final),
        _ => None,
    }
}

/// The flavor a client's REQUEST byte reveals: 0x01 is 18/MDP's, 0x02
/// majortomo's (a client never sends PARTIAL, so 0x02 is not ambiguous).
fn request_flavor(byte: u8) -> Flavor {
    if byte == client_kind_byte(ClientKind::Request, Flavor::Majortomo) {
        Flavor::Majortomo
    } else {
        Flavor::Rfc
    }
}

impl ClientKind {
    /// The command's name as the specs write it, for logs.
    pub fn name(self) -> &'static str {
        match self {
            ClientKind::Request => "REQUEST",
            ClientKind::Partial => "PARTIAL",
            ClientKind::Final => "FINAL/REPLY",
        }
    }
}

fn client_kind_name(kind: ClientKind) -> &'static str {
    match kind {
        ClientKind::Request => "client REQUEST",
        ClientKind::Partial => "client PARTIAL",
        ClientKind::Final => "client FINAL/REPLY",
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

    /// All remaining frames, at least one.
    fn body(self) -> Result<Vec<Frame>, ProtocolError> {
        let body: Vec<Frame> = self.frames.collect();
        if body.is_empty() {
            return Err(ProtocolError::MissingBody);
        }
        Ok(body)
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

/// Decodes a client command after its header. MDP/0.1 client commands
/// carry no command byte, so their kind is given by the direction. At the
/// broker (`at_broker`), the byte also reveals the client's flavor.
fn client_command(
    version: Version,
    mut cursor: Cursor,
    at_broker: bool,
) -> Result<(ClientCommand, Flavor), ProtocolError> {
    let (kind, flavor) = match version {
        Version::V01 if at_broker => (ClientKind::Request, Flavor::Rfc),
        Version::V01 => (ClientKind::Final, Flavor::Rfc),
        Version::V02 => {
            let byte = cursor.command_byte()?;
            let flavor = if at_broker { request_flavor(byte) } else { Flavor::Rfc };
            let kind = client_kind_from_byte(byte, flavor).ok_or(ProtocolError::UnknownCommand { version, byte })?;
            (kind, flavor)
        }
    };
    let service = cursor.service()?;
    let body = cursor.body()?;
    Ok((ClientCommand { kind, service, body }, flavor))
}

/// Decodes a worker command after its header.
fn worker_command(version: Version, mut cursor: Cursor) -> Result<WorkerCommand, ProtocolError> {
    let byte = cursor.command_byte()?;
    let op = WorkerOp::from_byte(version, byte).ok_or(ProtocolError::UnknownCommand { version, byte })?;
    let command = match op {
        WorkerOp::Ready => {
            let service = cursor.service()?;
            cursor.finish()?;
            WorkerCommand::Ready { service }
        }
        WorkerOp::Request | WorkerOp::Partial | WorkerOp::Final => {
            let client = cursor.client_address()?;
            let body = cursor.body()?;
            match op {
                WorkerOp::Request => WorkerCommand::Request { client, body },
                WorkerOp::Partial => WorkerCommand::Partial { client, body },
                _ => WorkerCommand::Final { client, body },
            }
        }
        WorkerOp::Heartbeat => {
            cursor.finish()?;
            WorkerCommand::Heartbeat
        }
        WorkerOp::Disconnect => {
            cursor.finish()?;
            WorkerCommand::Disconnect
        }
    };
    Ok(command)
}

/// Decodes what a broker receives from a client or a worker (the frames
/// after the ROUTER identity).
pub fn decode_at_broker(frames: Vec<Frame>) -> Result<(Dialect, Inbound), ProtocolError> {
    let (header, framing, cursor) = open(frames)?;
    match header {
        Header::Client(version) => {
            let (cmd, flavor) = client_command(version, cursor, true)?;
            if cmd.kind != ClientKind::Request {
                return Err(ProtocolError::WrongDirection(client_kind_name(cmd.kind)));
            }
            Ok((
                Dialect {
                    version,
                    framing,
                    flavor,
                },
                Inbound::Client(cmd),
            ))
        }
        Header::Worker(version) => {
            let cmd = worker_command(version, cursor)?;
            if matches!(cmd, WorkerCommand::Request { .. }) {
                return Err(ProtocolError::WrongDirection("worker REQUEST"));
            }
            Ok((
                Dialect {
                    version,
                    framing,
                    flavor: Flavor::Rfc,
                },
                Inbound::Worker(cmd),
            ))
        }
    }
}

/// Decodes what a client receives from its broker: PARTIAL or FINAL (an
/// MDP/0.1 REPLY decodes as [`ClientKind::Final`]).
pub fn decode_at_client(frames: Vec<Frame>) -> Result<(Dialect, ClientCommand), ProtocolError> {
    let (header, framing, cursor) = open(frames)?;
    let Header::Client(version) = header else {
        return Err(ProtocolError::WrongDirection("worker command to a client"));
    };
    let (cmd, flavor) = client_command(version, cursor, false)?;
    if cmd.kind == ClientKind::Request {
        return Err(ProtocolError::WrongDirection("client REQUEST"));
    }
    Ok((
        Dialect {
            version,
            framing,
            flavor,
        },
        cmd,
    ))
}

/// Decodes what a worker receives from its broker: REQUEST, HEARTBEAT or
/// DISCONNECT.
pub fn decode_at_worker(frames: Vec<Frame>) -> Result<(Dialect, WorkerCommand), ProtocolError> {
    let (header, framing, cursor) = open(frames)?;
    let Header::Worker(version) = header else {
        return Err(ProtocolError::WrongDirection("client command to a worker"));
    };
    let cmd = worker_command(version, cursor)?;
    match cmd {
        WorkerCommand::Request { .. } | WorkerCommand::Heartbeat | WorkerCommand::Disconnect => Ok((
            Dialect {
                version,
                framing,
                flavor: Flavor::Rfc,
            },
            cmd,
        )),
        other => Err(ProtocolError::WrongDirection(other.name())),
    }
}

fn push_header(out: &mut Vec<Frame>, dialect: Dialect, header: &[u8]) {
    if dialect.framing == Framing::Delimited {
        out.push(Frame::empty());
    }
    out.push(Frame::from_slice(header));
}

/// Appends the frames of a client command to `out` (which may already hold
/// a routing identity). Fails only for PARTIAL in MDP/0.1.
pub fn encode_client(out: &mut Vec<Frame>, dialect: Dialect, cmd: ClientCommand) -> Result<(), ProtocolError> {
    match dialect.version {
        Version::V01 => {
            if cmd.kind == ClientKind::Partial {
                return Err(ProtocolError::NotInVersion("PARTIAL", Version::V01));
            }
            push_header(out, dialect, MDPC01);
        }
        Version::V02 => {
            push_header(out, dialect, MDPC02);
            out.push(Frame::from_slice(&[client_kind_byte(cmd.kind, dialect.flavor)]));
        }
    }
    if dialect.flavor == Flavor::Rfc {
        out.push(cmd.service);
    }
    out.extend(cmd.body);
    Ok(())
}

/// Appends the frames of a worker command to `out` (which may already hold
/// a routing identity). Fails only for PARTIAL in MDP/0.1.
pub fn encode_worker(out: &mut Vec<Frame>, dialect: Dialect, cmd: WorkerCommand) -> Result<(), ProtocolError> {
    let op = WorkerOp::of(&cmd);
    let byte = op
        .to_byte(dialect.version)
        .ok_or(ProtocolError::NotInVersion(op.name(), dialect.version))?;
    let header = match dialect.version {
        Version::V01 => MDPW01,
        Version::V02 => MDPW02,
    };
    push_header(out, dialect, header);
    out.push(Frame::from_slice(&[byte]));
    match cmd {
        WorkerCommand::Ready { service } => out.push(service),
        WorkerCommand::Request { client, body }
        | WorkerCommand::Partial { client, body }
        | WorkerCommand::Final { client, body } => {
            out.push(client);
            out.push(Frame::empty());
            out.extend(body);
        }
        WorkerCommand::Heartbeat | WorkerCommand::Disconnect => {}
    }
    Ok(())
}
