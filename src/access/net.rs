//! Client addresses and address ranges: IPv4-mapped IPv6 normalisation, CIDR parsing (a
//! plain address is a single-address range) and [`NetSet`], a precomputed list of ranges.

use ipnet::IpNet;
use std::net::IpAddr;

/// The address a client is judged by: an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, as a
/// dual-stack listener reports IPv4 peers) becomes the IPv4 address; others are unchanged.
pub fn normalize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// Parse `"10.0.0.0/16"`, `"fc00::/7"` or a plain address (`"10.1.2.3"`, `"::1"`), which
/// stands for itself alone. Host bits are cleared (`10.1.2.3/16` is `10.1.0.0/16`); an
/// IPv4-mapped IPv6 range is kept as written (addresses are normalised, ranges are not).
pub fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        return Some(net.trunc());
    }
    s.parse::<IpAddr>().ok().map(IpNet::from)
}

/// A set of address ranges, split by family into inclusive integer ranges so that a
/// membership test is a few comparisons and never allocates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl NetSet {
    /// The set of the given ranges.
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> NetSet {
        let mut set = NetSet::default();
        for net in nets {
            set.insert(net);
        }
        set
    }

    /// Add one range.
    pub fn insert(&mut self, net: IpNet) {
        match net {
            IpNet::V4(n) => {
                let r = (u32::from(n.network()), u32::from(n.broadcast()));
                if !self.v4.contains(&r) {
                    self.v4.push(r);
                }
            }
            IpNet::V6(n) => {
                let r = (u128::from(n.network()), u128::from(n.broadcast()));
                if !self.v6.contains(&r) {
                    self.v6.push(r);
                }
            }
        }
    }

    /// Add every range of `other`.
    pub fn extend(&mut self, other: &NetSet) {
        for r in &other.v4 {
            if !self.v4.contains(r) {
                self.v4.push(*r);
            }
        }
        for r in &other.v6 {
            if !self.v6.contains(r) {
                self.v6.push(*r);
            }
        }
    }

    /// Whether `ip` (normalised first) is in one of the ranges.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match normalize_ip(ip) {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4.iter().any(|&(lo, hi)| lo <= a && a <= hi)
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6.iter().any(|&(lo, hi)| lo <= a && a <= hi)
            }
        }
    }

    /// Whether the set holds no range.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn set(nets: &[&str]) -> NetSet {
        NetSet::new(nets.iter().map(|n| parse_net(n).unwrap()))
    }

    #[test]
    fn mapped_ipv6_becomes_ipv4() {
        assert_eq!(normalize_ip(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(normalize_ip(ip("::1")), ip("::1"));
        assert_eq!(normalize_ip(ip("10.1.2.3")), ip("10.1.2.3"));
        // IPv4-compatible (deprecated) addresses are not IPv4-mapped.
        assert_eq!(normalize_ip(ip("::10.1.2.3")), ip("::10.1.2.3"));
    }

    #[test]
    fn parses_cidrs_and_plain_addresses() {
        assert_eq!(parse_net("10.0.0.0/16").unwrap().to_string(), "10.0.0.0/16");
        assert_eq!(parse_net("10.1.2.3/16").unwrap().to_string(), "10.1.0.0/16");
        assert_eq!(parse_net("10.1.2.3").unwrap().to_string(), "10.1.2.3/32");
        assert_eq!(parse_net(" fc00::/7 ").unwrap().to_string(), "fc00::/7");
        assert_eq!(parse_net("::1").unwrap().to_string(), "::1/128");
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0",
            "team_vlan",
            "fc00::/129",
            "10.0.0.0/",
        ] {
            assert!(parse_net(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn ipv4_membership_is_inclusive_at_both_ends() {
        let s = set(&["10.10.0.0/16", "192.0.2.7"]);
        assert!(s.contains(ip("10.10.0.0")));
        assert!(s.contains(ip("10.10.255.255")));
        assert!(!s.contains(ip("10.11.0.0")));
        assert!(!s.contains(ip("10.9.255.255")));
        assert!(s.contains(ip("192.0.2.7")));
        assert!(!s.contains(ip("192.0.2.8")));
        // Families never cross.
        assert!(!s.contains(ip("::a0a:0")));
    }

    #[test]
    fn ipv6_membership_and_mapped_clients() {
        let s = set(&["fc00::/7", "::1", "10.0.0.0/8"]);
        assert!(s.contains(ip("fd12:3456::1")));
        assert!(!s.contains(ip("fe80::1")));
        assert!(s.contains(ip("::1")));
        assert!(!s.contains(ip("::2")));
        // A dual-stack socket reports IPv4 clients as mapped addresses.
        assert!(s.contains(ip("::ffff:10.20.30.40")));
        assert!(!s.contains(ip("::ffff:11.0.0.1")));
        assert!(set(&["::/0"]).contains(ip("2001:db8::1")));
        assert!(set(&["0.0.0.0/0"]).contains(ip("203.0.113.9")));
        assert!(!NetSet::default().contains(ip("127.0.0.1")));
    }
}
