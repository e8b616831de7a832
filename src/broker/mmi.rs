//! 8/MMI: the management services the broker answers itself. Which names
//! are management names is decided by [`crate::protocol::is_mmi`] alone;
//! this module decides only the answer.

use crate::frame::Frame;

/// MMI's status codes, sent as the reply body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// "200": the service has at least one worker.
    Found,
    /// "404": the service has no worker.
    NotFound,
    /// "501": no such management service.
    NotImplemented,
}

impl Status {
    /// The code as it goes on the wire.
    pub fn code(self) -> &'static [u8] {
        match self {
            Status::Found => b"200",
            Status::NotFound => b"404",
            Status::NotImplemented => b"501",
        }
    }
}

/// Answers a request to the management service `service` with `body`;
/// `has_workers` says whether a named service has at least one worker.
pub fn answer(service: &[u8], body: &[Frame], has_workers: impl Fn(&[u8]) -> bool) -> Status {
    match service {
        b"mmi.service" => match body.first() {
            Some(name) if has_workers(name) => Status::Found,
            _ => Status::NotFound,
        },
        _ => Status::NotImplemented,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmi_service_reports_200_404_and_other_names_501() {
        let known = |name: &[u8]| name == b"echo";
        assert_eq!(answer(b"mmi.service", &[Frame::from("echo")], known), Status::Found);
        assert_eq!(answer(b"mmi.service", &[Frame::from("nope")], known), Status::NotFound);
        assert_eq!(
            answer(b"mmi.services", &[Frame::from("echo")], known),
            Status::NotImplemented
        );
        assert_eq!(answer(b"mmi.", &[Frame::from("echo")], known), Status::NotImplemented);
        assert_eq!(Status::NotImplemented.code(), b"501");
    }
}
