//! `--allow-ip`: the source addresses connections may come from, checked
//! by the ZAP handler on the address libzmq puts in each request (27/ZAP:
//! "an IPv4 dotted string, or an IPv6 canonical string representation").
//!
//! An address that is not an IP address (an ipc:// peer has none) is
//! refused while a list is in force: the list says where peers may come
//! from, and such a peer cannot show it comes from there.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

/// A CIDR block that does not parse, or says two things at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadNet {
    /// The text given.
    pub text: String,
    /// The block it would otherwise be read as, when its address has bits
    /// set past its prefix (10.1.2.3/8): one host or a whole block?
    pub truncated: Option<IpNet>,
}

impl fmt::Display for BadNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.truncated {
            Some(block) => write!(
                f,
                "{:?} has bits set past its prefix: write {block} for the block, or the bare address for one host",
                self.text
            ),
            None => write!(
                f,
                "{:?} is not an IP address or a CIDR block (such as 10.0.0.0/8, 192.0.2.7 or fd00::/8)",
                self.text
            ),
        }
    }
}

impl std::error::Error for BadNet {}

/// Parses a CIDR block; a bare address is a block of one (/32 for IPv4,
/// /128 for IPv6). A block whose address has bits set past its prefix
/// (10.1.2.3/8) is refused: it may be a typo for one host or for the
/// block, and the wrong guess would open a /8. An IPv4-mapped IPv6 block
/// (`::ffff:192.0.2.0/120`) is read as the IPv4 block it maps, since IPv4
/// peers are checked as IPv4 addresses (see [`AllowList::admits`]).
pub fn parse_net(text: &str) -> Result<IpNet, BadNet> {
    let bad = |truncated| BadNet {
        text: text.to_owned(),
        truncated,
    };
    let net = match text.parse::<IpNet>() {
        Ok(net) if net.trunc() != net => return Err(bad(Some(net.trunc()))),
        Ok(net) => net,
        Err(_) => text.parse::<IpAddr>().map(IpNet::from).map_err(|_| bad(None))?,
    };
    Ok(unmapped(net))
}

/// An IPv4-mapped IPv6 block as the IPv4 block it maps; others as they are.
fn unmapped(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, IpNet::V4),
            None => net,
        },
        _ => net,
    }
}

/// The blocks connections may come from; empty admits every address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    nets: Vec<IpNet>,
}

impl AllowList {
    /// A list of `nets`; empty admits everyone.
    pub fn new(nets: Vec<IpNet>) -> AllowList {
        AllowList { nets }
    }

    /// Whether the list restricts anything.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether a peer at `address` (as a ZAP request gives it) is admitted.
    /// An IPv4 peer of a dual-stack socket shows as `::ffff:a.b.c.d` and
    /// is checked as the IPv4 address it is.
    pub fn admits(&self, address: &str) -> bool {
        if self.nets.is_empty() {
            return true;
        }
        let Ok(ip) = address.parse::<IpAddr>() else {
            return false;
        };
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.nets.iter().any(|net| net.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(nets: &[&str]) -> AllowList {
        AllowList::new(nets.iter().map(|n| parse_net(n).expect("valid")).collect())
    }

    #[test]
    fn a_bare_address_is_a_block_of_one() {
        let only = list(&["127.0.0.2", "::1"]);
        assert!(only.admits("127.0.0.2"));
        assert!(!only.admits("127.0.0.3"));
        assert!(only.admits("::1"));
        assert!(!only.admits("::2"));
    }

    #[test]
    fn blocks_contain_their_addresses_in_both_families() {
        let nets = list(&["10.0.0.0/8", "fd00::/8"]);
        assert!(nets.admits("10.200.0.1"));
        assert!(!nets.admits("11.0.0.1"));
        assert!(nets.admits("fd12:3456::1"));
        assert!(!nets.admits("fe80::1"));
        // An IPv4 peer of a dual-stack socket.
        assert!(nets.admits("::ffff:10.0.0.9"));
    }

    #[test]
    fn no_list_admits_everyone_and_a_list_refuses_what_is_not_an_address() {
        assert!(AllowList::default().admits(""));
        let nets = list(&["0.0.0.0/0"]);
        assert!(nets.admits("192.0.2.1"));
        for bad in ["", "localhost", "1.2.3.4:5555", "1.2.3.4\n"] {
            assert!(!nets.admits(bad), "{bad:?}");
        }
    }

    #[test]
    fn malformed_blocks_are_refused() {
        for bad in ["", "10.0.0.0/33", "10.0.0", "::/129", "host", "1.2.3.4/"] {
            assert_eq!(
                parse_net(bad),
                Err(BadNet {
                    text: bad.into(),
                    truncated: None
                }),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_block_with_host_bits_is_refused_with_both_readings() {
        let error = parse_net("127.0.0.1/8").expect_err("ambiguous");
        assert_eq!(error.truncated, "127.0.0.0/8".parse().ok());
        assert!(error.to_string().contains("127.0.0.0/8"), "{error}");
    }

    #[test]
    fn an_ipv4_mapped_block_is_its_ipv4_block() {
        assert_eq!(parse_net("::ffff:127.0.0.2").ok(), "127.0.0.2/32".parse().ok());
        let nets = list(&["::ffff:192.0.2.0/120"]);
        assert!(nets.admits("192.0.2.9") && nets.admits("::ffff:192.0.2.9"));
        assert!(!nets.admits("192.0.3.1"));
    }
}
