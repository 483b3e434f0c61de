//! `ipAllowList` (and its deprecated alias `ipWhiteList`), and Traefik's client address
//! selection (`ipStrategy`), shared with the limiters.

use std::borrow::Cow;
use std::net::IpAddr;

use http::StatusCode;
use ipnet::IpNet;

use super::{FieldError, FieldErrors};
use crate::error::quote;
use crate::model::IpStrategy;

/// Addresses and CIDR ranges (Traefik's `ip.Checker`).
#[derive(Debug, Clone, Default)]
pub struct Checker {
    nets: Vec<IpNet>,
}

impl Checker {
    /// Parse a list of addresses or CIDR ranges (a range may have host bits set, as Go's
    /// `ParseCIDR` allows).
    pub fn parse(field: &str, list: &[String], errs: &mut FieldErrors) -> Checker {
        let mut nets = Vec::with_capacity(list.len());
        for (i, s) in list.iter().enumerate() {
            let t = s.trim();
            if let Ok(ip) = t.parse::<IpAddr>() {
                nets.push(IpNet::from(ip.to_canonical()));
            } else if let Ok(net) = t.parse::<IpNet>() {
                nets.push(net);
            } else {
                errs.push(FieldError::new(
                    format!("{field}[{i}]"),
                    format!("invalid IP address or CIDR range {}", quote(s)),
                ));
            }
        }
        Checker { nets }
    }

    /// Whether `addr` (an address, optionally with a port) is in the list; an empty or
    /// unparsable address is not.
    pub fn contains(&self, addr: &str) -> bool {
        let host = split_host(addr);
        let Ok(ip) = host.parse::<IpAddr>() else {
            return false;
        };
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(&ip))
    }
}

/// Go's `net.SplitHostPort` host, or the whole string.
fn split_host(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        if let Some((h, port)) = rest.split_once("]:") {
            if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
                return h;
            }
        }
        return addr;
    }
    match addr.split_once(':') {
        Some((h, port)) if !port.contains(':') => h,
        _ => addr,
    }
}

/// Room for an IP address's text (the longest IPv6 form is 45 bytes), so a per-request key
/// needs no allocation.
#[derive(Debug, Clone, Copy)]
pub struct IpText {
    buf: [u8; 48],
    len: usize,
}

impl Default for IpText {
    fn default() -> IpText {
        IpText {
            buf: [0; 48],
            len: 0,
        }
    }
}

impl std::fmt::Write for IpText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl IpText {
    /// `ip` as text (Rust's `Display`, as `to_string`).
    pub fn format(&mut self, ip: IpAddr) -> &str {
        use std::fmt::Write as _;
        self.len = 0;
        if write!(self, "{ip}").is_err() {
            self.len = 0;
        }
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

/// How the client address is chosen.
#[derive(Debug, Clone)]
pub enum Strategy {
    /// The connection's peer.
    RemoteAddr {
        /// Group IPv6 addresses by this prefix length.
        ipv6_subnet: Option<u8>,
    },
    /// The `depth`-th `X-Forwarded-For` entry from the right.
    Depth {
        /// 1 = the last entry.
        depth: usize,
        /// Group IPv6 addresses by this prefix length.
        ipv6_subnet: Option<u8>,
    },
    /// The first `X-Forwarded-For` entry from the right that is not excluded.
    Pool(Checker),
}

impl Default for Strategy {
    fn default() -> Strategy {
        Strategy::RemoteAddr { ipv6_subnet: None }
    }
}

impl Strategy {
    /// Compile `ipStrategy` (`field` is its path).
    pub fn compile(field: &str, s: Option<&IpStrategy>, errs: &mut FieldErrors) -> Strategy {
        let Some(s) = s else {
            return Strategy::default();
        };
        let depth = s.depth.unwrap_or(0);
        if depth < 0 {
            errs.push(FieldError::new(
                format!("{field}.depth"),
                format!("must be 0 or more, got {depth}"),
            ));
        }
        let ipv6_subnet = match s.ipv6_subnet {
            None => None,
            Some(n @ 1..=128) => Some(n as u8),
            Some(n) => {
                errs.push(FieldError::new(
                    format!("{field}.ipv6Subnet"),
                    format!("must be between 1 and 128, got {n}"),
                ));
                None
            }
        };
        if depth > 0 {
            Strategy::Depth {
                depth: usize::try_from(depth).unwrap_or(usize::MAX),
                ipv6_subnet,
            }
        } else if !s.excluded_ips.is_empty() {
            Strategy::Pool(Checker::parse(
                &format!("{field}.excludedIPs"),
                &s.excluded_ips,
                errs,
            ))
        } else {
            Strategy::RemoteAddr { ipv6_subnet }
        }
    }

    /// [`Strategy::client_ip`] without allocating in the common cases (the peer's address
    /// is written into `buf`, an `X-Forwarded-For` entry is borrowed); only an IPv6 subnet
    /// is built as a new string.
    pub fn client_key<'a>(
        &self,
        remote: IpAddr,
        xff: &'a str,
        buf: &'a mut IpText,
    ) -> Cow<'a, str> {
        match self {
            Strategy::RemoteAddr { ipv6_subnet: None } => {
                Cow::Borrowed(buf.format(remote.to_canonical()))
            }
            Strategy::Depth {
                depth,
                ipv6_subnet: None,
            } => Cow::Borrowed(
                depth
                    .checked_sub(1)
                    .and_then(|n| xff.split(',').rev().nth(n))
                    .map_or("", str::trim),
            ),
            Strategy::Pool(checker) => Cow::Borrowed(
                xff.split(',')
                    .rev()
                    .map(str::trim)
                    .find(|v| !v.is_empty() && !checker.contains_ip_only(v))
                    .unwrap_or(""),
            ),
            _ => Cow::Owned(self.client_ip(remote, xff)),
        }
    }

    /// The client address: `remote` is the connection's peer, `xff` the request's first
    /// `X-Forwarded-For` value (as the middleware sees it: on an untrusted entry point the
    /// client's own has been removed). Empty when none qualifies.
    pub fn client_ip(&self, remote: IpAddr, xff: &str) -> String {
        match self {
            Strategy::RemoteAddr { ipv6_subnet } => {
                let ip = remote.to_canonical();
                match ipv6_subnet {
                    Some(n) => subnet_ip(&ip.to_string(), *n),
                    None => ip.to_string(),
                }
            }
            Strategy::Depth { depth, ipv6_subnet } => {
                let parts: Vec<&str> = xff.split(',').collect();
                if parts.len() < *depth {
                    return String::new();
                }
                let ip = parts[parts.len() - depth].trim();
                match ipv6_subnet {
                    Some(n) => subnet_ip(ip, *n),
                    None => ip.to_string(),
                }
            }
            Strategy::Pool(checker) => xff
                .split(',')
                .rev()
                .map(str::trim)
                .find(|v| !v.is_empty() && !checker.contains_ip_only(v))
                .unwrap_or("")
                .to_string(),
        }
    }
}

impl Checker {
    /// Whether `ip` (canonical: an IPv4-mapped IPv6 address as IPv4) is in the list.
    pub fn contains_addr(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// Go's `Checker.Contains` (no port allowed): an unparsable address is not contained.
    fn contains_ip_only(&self, addr: &str) -> bool {
        match addr.parse::<IpAddr>() {
            Ok(ip) => {
                let ip = ip.to_canonical();
                self.nets.iter().any(|n| n.contains(&ip))
            }
            Err(_) => false,
        }
    }
}

/// The first address of the `/n` IPv6 subnet of `ip`; other input unchanged.
fn subnet_ip(ip: &str, n: u8) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match ipnet::Ipv6Net::new(v6, n) {
            Ok(net) => net.network().to_string(),
            Err(_) => ip.to_string(),
        },
        _ => ip.to_string(),
    }
}

/// A compiled `ipAllowList`.
#[derive(Debug, Clone)]
pub struct CompiledIpAllowList {
    /// Allowed addresses.
    pub allowed: Checker,
    /// Client address selection.
    pub strategy: Strategy,
    /// Status of refusals.
    pub reject: StatusCode,
}

/// Compile `ipAllowList` / `ipWhiteList` (`kind` is the one written).
pub(crate) fn compile(
    kind: &str,
    source_range: &[String],
    strategy: Option<&IpStrategy>,
    reject_status_code: Option<i64>,
) -> Result<CompiledIpAllowList, FieldErrors> {
    let mut errs = FieldErrors::new();
    if source_range.is_empty() {
        errs.push(FieldError::new(
            format!("{kind}.sourceRange"),
            "at least one address or range is required",
        ));
    }
    let allowed = Checker::parse(&format!("{kind}.sourceRange"), source_range, &mut errs);
    let strategy = Strategy::compile(&format!("{kind}.ipStrategy"), strategy, &mut errs);
    let reject = match reject_status_code.unwrap_or(0) {
        0 => StatusCode::FORBIDDEN,
        c => match u16::try_from(c)
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
        {
            Some(s) if s.canonical_reason().is_some() => s,
            _ => {
                errs.push(FieldError::new(
                    format!("{kind}.rejectStatusCode"),
                    format!("invalid HTTP status code {c}"),
                ));
                StatusCode::FORBIDDEN
            }
        },
    };
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(CompiledIpAllowList {
        allowed,
        strategy,
        reject,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn strategy(depth: Option<i64>, excluded: &[&str], v6: Option<i64>) -> Strategy {
        let mut errs = FieldErrors::new();
        let s = Strategy::compile(
            "s",
            Some(&IpStrategy {
                depth,
                excluded_ips: excluded.iter().map(|s| s.to_string()).collect(),
                ipv6_subnet: v6,
            }),
            &mut errs,
        );
        assert!(errs.is_empty(), "{errs:?}");
        s
    }

    // Traefik's pkg/ip/strategy_test.go
    #[test]
    fn strategies() {
        let remote: IpAddr = "192.0.2.1".parse().unwrap();
        let xff = "10.0.0.4, 10.0.0.3, 10.0.0.2, 10.0.0.1";
        assert_eq!(Strategy::default().client_ip(remote, xff), "192.0.2.1");
        // The allocation-free form gives the same keys.
        for s in [
            Strategy::default(),
            strategy(Some(1), &[], None),
            strategy(Some(3), &[], None),
            strategy(Some(5), &[], None),
            strategy(None, &["10.0.0.1", "10.0.0.2"], None),
            strategy(Some(2), &[], Some(64)),
        ] {
            for remote in [
                remote,
                "::ffff:10.1.2.3".parse().unwrap(),
                "2001:db8::1".parse().unwrap(),
            ] {
                let mut buf = IpText::default();
                assert_eq!(
                    s.client_key(remote, xff, &mut buf),
                    s.client_ip(remote, xff)
                );
            }
        }
        assert_eq!(
            strategy(Some(3), &[], None).client_ip(remote, xff),
            "10.0.0.3"
        );
        assert_eq!(
            strategy(Some(1), &[], None).client_ip(remote, xff),
            "10.0.0.1"
        );
        assert_eq!(strategy(Some(5), &[], None).client_ip(remote, xff), "");
        assert_eq!(
            strategy(Some(2), &[], Some(64)).client_ip(remote, "2001:db8:1:2:3:4:5:6, 10.0.0.1"),
            "2001:db8:1:2::"
        );
        assert_eq!(
            strategy(None, &[], Some(64)).client_ip("2001:db8::9".parse().unwrap(), ""),
            "2001:db8::"
        );
        assert_eq!(
            strategy(None, &["10.0.0.1", "10.0.0.2"], None).client_ip(remote, xff),
            "10.0.0.3"
        );
        assert_eq!(
            strategy(None, &["10.0.0.0/24"], None).client_ip(remote, xff),
            ""
        );
        assert_eq!(
            strategy(None, &["10.0.0.1"], None).client_ip(remote, "10.0.0.4, , 10.0.0.1"),
            "10.0.0.4"
        );
    }

    // Traefik's pkg/ip/checker_test.go
    #[test]
    fn checker() {
        let mut errs = FieldErrors::new();
        let c = Checker::parse(
            "r",
            &[
                "1.2.3.4/24".into(),
                "2a03:4000:6:d080::/64".into(),
                "8.8.8.8".into(),
            ],
            &mut errs,
        );
        assert!(errs.is_empty());
        for ok in [
            "1.2.3.1",
            "1.2.3.32:1234",
            "2a03:4000:6:d080::42",
            "[2a03:4000:6:d080::1]:80",
            "8.8.8.8",
        ] {
            assert!(c.contains(ok), "{ok}");
        }
        for no in [
            "1.2.16.1",
            "",
            "foo",
            "2a03:4000:7:d080::",
            "8.8.8.9",
            "::ffff:1.2.4.1",
        ] {
            assert!(!c.contains(no), "{no}");
        }
        assert!(c.contains("::ffff:1.2.3.4"));
        let mut errs = FieldErrors::new();
        Checker::parse("r", &["foo".into(), "10.0.0.0/33".into()], &mut errs);
        assert_eq!(errs.len(), 2);
    }
}
