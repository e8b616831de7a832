//! What can be wrong with a multipart message, one variant per defect, so a
//! log line says exactly why a message was dropped.

use std::fmt;

use super::Version;

/// Why a multipart message is not a valid MDP command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// The message had no frames at all (after the routing identity).
    NoFrames,
    /// An empty first frame with nothing after it.
    MissingHeader,
    /// The header frame is none of MDPC01, MDPC02, MDPW01, MDPW02.
    UnknownHeader(Vec<u8>),
    /// The header is not followed by the command frame.
    MissingCommand,
    /// The command frame is not exactly one byte long.
    MalformedCommand(usize),
    /// The command byte is not defined by this protocol version.
    UnknownCommand {
        /// The version whose header the message carried.
        version: Version,
        /// The byte found.
        byte: u8,
    },
    /// A command that exists, but only in the other direction (a worker
    /// sending REQUEST, a client sending FINAL, a broker sending READY).
    WrongDirection(&'static str),
    /// No service name frame.
    MissingService,
    /// The service name frame is empty.
    EmptyService,
    /// The service name is longer than [`MAX_SERVICE_NAME`] bytes (its
    /// length).
    ///
    /// [`MAX_SERVICE_NAME`]: super::MAX_SERVICE_NAME
    ServiceTooLong(usize),
    /// No client address frame in a worker REQUEST/REPLY/PARTIAL/FINAL.
    MissingClientAddress,
    /// The client address frame is empty: no peer has an empty identity.
    EmptyClientAddress,
    /// The client address is not followed by an empty delimiter frame.
    MissingDelimiter,
    /// A client REQUEST with no body frame: both specifications require one
    /// or more, and workers in the field (majortomo's) fail on a REQUEST
    /// without one. (Replies may have none.)
    MissingBody,
    /// Frames after the last frame a fixed-size command may have.
    TrailingFrames(usize),
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::NoFrames => write!(f, "message has no frames"),
            ProtocolError::MissingHeader => write!(f, "empty frame with no protocol header after it"),
            ProtocolError::UnknownHeader(h) => {
                write!(f, "unknown protocol header {}", crate::hex::Hex(h))
            }
            ProtocolError::MissingCommand => write!(f, "no command frame after the header"),
            ProtocolError::MalformedCommand(len) => {
                write!(f, "command frame is {len} bytes, not 1")
            }
            ProtocolError::UnknownCommand { version, byte } => {
                write!(f, "command 0x{byte:02x} is not defined in {version}")
            }
            ProtocolError::WrongDirection(cmd) => {
                write!(f, "{cmd} is not sent in this direction")
            }
            ProtocolError::MissingService => write!(f, "no service name frame"),
            ProtocolError::EmptyService => write!(f, "empty service name"),
            ProtocolError::ServiceTooLong(len) => {
                write!(
                    f,
                    "service name of {len} bytes (at most {} allowed)",
                    super::MAX_SERVICE_NAME
                )
            }
            ProtocolError::MissingClientAddress => write!(f, "no client address frame"),
            ProtocolError::EmptyClientAddress => write!(f, "empty client address"),
            ProtocolError::MissingDelimiter => {
                write!(f, "client address not followed by an empty frame")
            }
            ProtocolError::MissingBody => write!(f, "REQUEST with no body frame"),
            ProtocolError::TrailingFrames(n) => write!(f, "{n} unexpected trailing frame(s)"),
        }
    }
}

impl std::error::Error for ProtocolError {}
