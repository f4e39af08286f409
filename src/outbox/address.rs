//! Where a customer's webhook may point: only addresses on the public
//! internet. A webhook that reached loopback, private, link-local or other
//! special-purpose addresses would let any customer make the server call
//! its own neighbours (a cloud's metadata service, an admin port) and read
//! the answers back. The rule is checked when an endpoint is set and again
//! at every send, on the address actually connected to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::error::{Error, Result};

/// IPv4 networks a customer's webhook may not reach (RFC 6890 and its
/// updates): this network, private, shared (CGNAT), loopback, link-local,
/// IETF protocol assignments, documentation, the 6to4 relay, benchmarking,
/// multicast, reserved and broadcast.
const V4_REFUSED: [(Ipv4Addr, u32); 15] = [
    (Ipv4Addr::new(0, 0, 0, 0), 8),
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    (Ipv4Addr::new(100, 64, 0, 0), 10),
    (Ipv4Addr::new(127, 0, 0, 0), 8),
    (Ipv4Addr::new(169, 254, 0, 0), 16),
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    (Ipv4Addr::new(192, 0, 0, 0), 24),
    (Ipv4Addr::new(192, 0, 2, 0), 24),
    (Ipv4Addr::new(192, 88, 99, 0), 24),
    (Ipv4Addr::new(192, 168, 0, 0), 16),
    (Ipv4Addr::new(198, 18, 0, 0), 15),
    (Ipv4Addr::new(198, 51, 100, 0), 24),
    (Ipv4Addr::new(203, 0, 113, 0), 24),
    (Ipv4Addr::new(224, 0, 0, 0), 4),
    (Ipv4Addr::new(240, 0, 0, 0), 4),
];

/// IPv6 networks inside global unicast (2000::/3, the only range allowed)
/// that are refused all the same: IETF protocol assignments (Teredo among
/// them), documentation, 6to4 (which embeds an IPv4 address) and SRv6.
/// Outside 2000::/3 lie the unspecified and loopback addresses,
/// IPv4-mapped and -compatible ones, NAT64 (64:ff9b::/96), discard,
/// unique-local, link-local, site-local and multicast: all refused.
const V6_REFUSED: [(Ipv6Addr, u32); 5] = [
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32),
    (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16),
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),
    (Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0), 16),
];

/// How long setting an endpoint waits for its name to resolve; a name
/// still unresolved is accepted (the rule holds again at every send).
const LOOKUP_AT_SET: Duration = Duration::from_secs(2);

/// Whether `ip` is a public address a customer's webhook may reach.
pub fn allowed(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => !V4_REFUSED
            .iter()
            .any(|(net, bits)| within(u32::from(a).into(), u32::from(*net).into(), *bits, 32)),
        IpAddr::V6(a) => {
            let n = u128::from(a);
            within(n, 0x2000 << 112, 3, 128)
                && !V6_REFUSED
                    .iter()
                    .any(|(net, bits)| within(n, u128::from(*net), *bits, 128))
        }
    }
}

/// Whether `n` lies in `net`/`bits`, for addresses `width` bits long.
fn within(n: u128, net: u128, bits: u32, width: u32) -> bool {
    bits == 0 || (n ^ net) >> (width - bits) == 0
}

/// Checks the host of a customer's webhook URL (already parsed as a valid
/// `http://` URL) when it is set: no user name or password in it, and,
/// unless `allow_private`, an address the rule allows. A host name is
/// looked up; one that does not resolve now is accepted.
pub fn check_host(parsed: &url::Url, allow_private: bool) -> Result<()> {
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(Error::invalid(
            "url",
            "must not hold a user name or password",
        ));
    }
    if allow_private {
        return Ok(());
    }
    let port = parsed.port_or_known_default().unwrap_or(80);
    let refused = |ip: IpAddr| {
        Error::invalid(
            "url",
            format!("{ip} is not a public address; webhooks go to public addresses only"),
        )
    };
    let addrs = match parsed.host() {
        Some(url::Host::Ipv4(a)) => vec![IpAddr::V4(a)],
        Some(url::Host::Ipv6(a)) => vec![IpAddr::V6(a)],
        Some(url::Host::Domain(name)) => lookup(&format!("{name}:{port}"), LOOKUP_AT_SET)
            .map(|found| found.into_iter().map(|a| a.ip()).collect())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    match addrs.into_iter().find(|ip| !allowed(*ip)) {
        Some(ip) => Err(refused(ip)),
        None => Ok(()),
    }
}

/// Resolves `netloc` (`host:port`) within `limit`. The system resolver
/// cannot be interrupted, so it runs on a thread of its own, left to end
/// by itself when the limit passes.
pub fn lookup(netloc: &str, limit: Duration) -> std::io::Result<Vec<SocketAddr>> {
    if let Ok(addr) = netloc.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    let (tx, rx) = mpsc::channel();
    let name = netloc.to_string();
    thread::Builder::new()
        .name("regdesk-lookup".into())
        .spawn(move || {
            tx.send(name.to_socket_addrs().map(Iterator::collect)).ok();
        })?;
    rx.recv_timeout(limit).unwrap_or_else(|_| {
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the name lookup timed out",
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_allowed() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:8.8.8.8",
            "64:ff9b::7f00:1",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:db8::1",
            "2002:7f00:1::1",
            "3fff::1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert!(!allowed(ip.parse().unwrap()), "{ip} must be refused");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "198.17.255.255",
            "198.20.0.1",
            "223.255.255.254",
            "2606:4700::1111",
            "2a00:1450::1",
        ] {
            assert!(allowed(ip.parse().unwrap()), "{ip} must be allowed");
        }
    }

    fn check(url: &str, allow_private: bool) -> Result<()> {
        check_host(&url::Url::parse(url).unwrap(), allow_private)
    }

    #[test]
    fn numeric_host_forms_are_the_addresses_they_denote() {
        for url in [
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
        ] {
            let e = check(url, false).unwrap_err();
            assert_eq!(e.field(), Some("url"), "{url}");
            assert!(check(url, true).is_ok(), "{url}");
        }
        assert!(check("http://u:p@example.net/", true).is_err());
        assert!(check("http://u@example.net/", true).is_err());
        assert!(check("http://8.8.8.8:8080/hook", false).is_ok());
    }
}
