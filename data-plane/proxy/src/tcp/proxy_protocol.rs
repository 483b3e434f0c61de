//! PROXY protocol headers (v1 text, v2 binary; haproxy.org/download/2.9/doc/proxy-protocol.txt)
//! sent to a TCP backend before the client's bytes, carrying the client's real address.
//!
//! Written by hand: a header is a fixed layout of ~30 bytes and only ever *written* here (no
//! parser, so none of the risk a crate would save us from); the `ppp` crate would add a
//! dependency for two small functions.

use std::net::{IpAddr, SocketAddr};

/// The v2 signature.
const V2_SIG: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

/// Both addresses in the same family (an IPv4 peer on an IPv6 socket is written as IPv4).
fn family(src: SocketAddr, dst: SocketAddr) -> (SocketAddr, SocketAddr) {
    let canon = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    let (s, d) = (canon(src), canon(dst));
    match (s.ip(), d.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => (s, d),
        (IpAddr::V4(a), IpAddr::V6(_)) => {
            (SocketAddr::new(IpAddr::V6(a.to_ipv6_mapped()), s.port()), d)
        }
        (IpAddr::V6(_), IpAddr::V4(b)) => {
            (s, SocketAddr::new(IpAddr::V6(b.to_ipv6_mapped()), d.port()))
        }
    }
}

/// The header for a connection from `src` (the client) to `dst` (the proxy's address).
pub(crate) fn header(version: u8, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (src, dst) = family(src, dst);
    if version == 1 {
        let proto = if src.is_ipv4() { "TCP4" } else { "TCP6" };
        return format!(
            "PROXY {proto} {} {} {} {}\r\n",
            src.ip(),
            dst.ip(),
            src.port(),
            dst.port()
        )
        .into_bytes();
    }
    let mut out = Vec::with_capacity(16 + 36);
    out.extend_from_slice(&V2_SIG);
    out.push(0x21); // version 2, PROXY command
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.push(0x11); // AF_INET, STREAM
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            out.push(0x21); // AF_INET6, STREAM
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        // `family` makes both the same.
        _ => unreachable_family(&mut out),
    }
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out
}

/// An UNSPEC header body (never produced: `family` aligns the addresses).
fn unreachable_family(out: &mut Vec<u8>) {
    out.push(0x00);
    out.extend_from_slice(&0u16.to_be_bytes());
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn v1_text() {
        let h = header(
            1,
            "192.0.2.1:5000".parse().unwrap(),
            "198.51.100.2:443".parse().unwrap(),
        );
        assert_eq!(h, b"PROXY TCP4 192.0.2.1 198.51.100.2 5000 443\r\n");
        let h = header(
            1,
            "[2001:db8::1]:5000".parse().unwrap(),
            "[::1]:443".parse().unwrap(),
        );
        assert_eq!(h, b"PROXY TCP6 2001:db8::1 ::1 5000 443\r\n");
        // An IPv4-mapped peer is written as IPv4.
        let h = header(
            1,
            "[::ffff:10.0.0.1]:1".parse().unwrap(),
            "10.0.0.2:2".parse().unwrap(),
        );
        assert_eq!(h, b"PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n");
    }

    #[test]
    fn v2_binary() {
        let h = header(
            2,
            "192.0.2.1:5000".parse().unwrap(),
            "198.51.100.2:443".parse().unwrap(),
        );
        let mut want = V2_SIG.to_vec();
        want.extend_from_slice(&[
            0x21, 0x11, 0, 12, 192, 0, 2, 1, 198, 51, 100, 2, 0x13, 0x88, 0x01, 0xBB,
        ]);
        assert_eq!(h, want);
        let h = header(
            2,
            "[2001:db8::1]:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        );
        assert_eq!(h.len(), 16 + 36);
        assert_eq!(&h[12..16], &[0x21, 0x21, 0, 36]);
    }
}
