//! Character-level checks of values that end up on the wire (header names and values, hosts,
//! TLS server names, cookie attributes, request paths). They mirror what the proxy's HTTP and
//! TLS libraries accept, so that a config `validate` accepts never fails to compile in the
//! proxy nor produces an invalid header or request line per request.

use std::net::{IpAddr, Ipv6Addr};

/// Longest header name the proxy's HTTP library accepts.
pub(crate) const MAX_HEADER_NAME_LEN: usize = 65535;

/// An HTTP token (RFC 9110 `tchar`s): header names, methods, cookie names.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// What is wrong with a header name, if anything: `invalid header name "X A"`.
pub(crate) fn header_name_problem(name: &str) -> Option<String> {
    if !is_token(name) {
        Some(format!("invalid header name {}", crate::quote(name)))
    } else if name.len() > MAX_HEADER_NAME_LEN {
        Some(format!(
            "invalid header name: longer than {MAX_HEADER_NAME_LEN} bytes"
        ))
    } else {
        None
    }
}

/// A control character forbidden in a header field value: bytes below 0x20 except horizontal
/// tab, and DEL (0x7F). Non-ASCII text (obs-text) is allowed, as by the proxy.
pub(crate) fn is_field_ctl(c: char) -> bool {
    (c < ' ' && c != '\t') || c == '\x7f'
}

/// What is wrong with a header value, if anything.
pub(crate) fn header_value_problem(name: &str, value: &str) -> Option<String> {
    value.chars().any(is_field_ctl).then(|| {
        format!(
            "invalid value for header {}: contains a control character (only horizontal tab is allowed)",
            crate::quote(name)
        )
    })
}

/// A DNS name as accepted for TLS (SNI and certificate verification): at most 253 bytes,
/// dot-separated labels of 1 to 63 letters, digits, `_` or `-` (not starting or ending with
/// `-`), an optional trailing dot, and a last label that is not all digits (that would be an
/// IPv4 address).
pub(crate) fn is_dns_name(s: &str) -> bool {
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    let body = s.strip_suffix('.').unwrap_or(s);
    if body.is_empty() {
        return false;
    }
    let mut last_all_digits = false;
    for label in body.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            return false;
        }
        last_all_digits = label.bytes().all(|b| b.is_ascii_digit());
    }
    !last_all_digits
}

/// An IPv6 address in brackets, e.g. `[::1]`.
fn is_bracketed_ipv6(s: &str) -> bool {
    s.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .is_some_and(|ip| ip.parse::<Ipv6Addr>().is_ok())
}

/// A valid TLS server name: a DNS name ([`is_dns_name`]) or an IP address (IPv6 optionally in
/// brackets).
pub(crate) fn is_tls_server_name(s: &str) -> bool {
    is_dns_name(s) || s.parse::<IpAddr>().is_ok() || is_bracketed_ipv6(s)
}

/// A host for a `Host` header: a DNS name or an IP address (IPv6 in brackets when followed by
/// a port), optionally followed by `:port` (1-65535).
pub(crate) fn is_host_header(s: &str) -> bool {
    if s.parse::<Ipv6Addr>().is_ok() {
        return true;
    }
    let (host, port) = if s.starts_with('[') {
        match s.find(']') {
            Some(end) => (&s[..=end], &s[end + 1..]),
            None => return false,
        }
    } else {
        match s.rfind(':') {
            Some(i) => (&s[..i], &s[i..]),
            None => (s, ""),
        }
    };
    let host_ok = if host.starts_with('[') {
        is_bracketed_ipv6(host)
    } else {
        is_dns_name(host) || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv4())
    };
    let port_ok = match port.strip_prefix(':') {
        None => port.is_empty(),
        Some(p) => {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u16>().is_ok_and(|p| p > 0)
        }
    };
    host_ok && port_ok
}

/// A character allowed in the host of a server URL given as a name: `[A-Za-z0-9._~-]`.
pub(crate) fn is_url_host_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-')
}

/// What is wrong with a path that becomes (part of) a request path (`addPrefix.prefix`,
/// `stripPrefix.prefixes`, `replacePath.path`, and with `allow_query` `healthCheck.path`), as
/// the end of the message `must ..., got "..."`; `None` when it is fine. Emptiness and the
/// leading `/` are checked by the caller.
pub(crate) fn path_problem(p: &str, allow_query: bool) -> Option<&'static str> {
    if p.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else if p.chars().any(char::is_whitespace) {
        Some("must not contain whitespace")
    } else if !allow_query && p.contains(['?', '#']) {
        Some("must not contain \"?\" or \"#\"")
    } else if allow_query && p.contains('#') {
        Some("must not contain \"#\"")
    } else if allow_query
        && p.split_once('?')
            .is_some_and(|(_, q)| q.contains(['"', '<', '>']))
    {
        Some("must not contain '\"', \"<\" or \">\" in the query")
    } else {
        None
    }
}

/// What is wrong with a `Set-Cookie` attribute value (`sticky.cookie.path`/`domain`), as the
/// start of the message `must ..., got "..."`.
pub(crate) fn cookie_attribute_problem(v: &str) -> Option<&'static str> {
    if v.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else if v.contains(';') {
        Some("must not contain \";\"")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        for ok in [
            "a",
            "a.com",
            "A-b.c_d.com",
            "a.com.",
            "xn--bcher-kva.example",
            "1a.2b",
            "a.1b",
            &"a".repeat(63),
        ] {
            assert!(is_dns_name(ok), "{ok:?}");
        }
        let long = format!("{}.com", vec!["a".repeat(60); 5].join("."));
        for bad in [
            "",
            ".",
            "a..b",
            ".a",
            "a..",
            "-a.com",
            "a-.com",
            "a b",
            "a~b",
            "a%20b",
            "1.2.3.4",
            "a.123",
            "é.com",
            &"a".repeat(64),
            &long,
        ] {
            assert!(!is_dns_name(bad), "{bad:?}");
        }
        assert!(is_tls_server_name("10.0.0.1"));
        assert!(is_tls_server_name("::1"));
        assert!(is_tls_server_name("[::1]"));
        assert!(!is_tls_server_name("[a.com]"));
        assert!(!is_tls_server_name("1.2.3.999"));
    }

    #[test]
    fn host_headers() {
        for ok in [
            "a.com",
            "a.com:8080",
            "10.0.0.1",
            "10.0.0.1:80",
            "[::1]",
            "[::1]:443",
            "::1",
            "localhost",
        ] {
            assert!(is_host_header(ok), "{ok:?}");
        }
        for bad in [
            "",
            "a b",
            "a.com:",
            "a.com:0",
            "a.com:70000",
            "a.com:x",
            "[::1",
            "[a.com]:80",
            "a\tb",
            "a/b",
            "::1:80:x",
        ] {
            assert!(!is_host_header(bad), "{bad:?}");
        }
    }

    #[test]
    fn field_values_and_paths() {
        assert!(!"a\tb é".chars().any(is_field_ctl));
        for c in ['\0', '\x01', '\r', '\n', '\x1f', '\x7f'] {
            assert!(is_field_ctl(c), "{c:?}");
        }
        assert_eq!(path_problem("/a/b;c=d", false), None);
        assert_eq!(path_problem("/é", false), None);
        assert!(path_problem("/a b", false).is_some());
        assert!(path_problem("/a?b", false).is_some());
        assert_eq!(path_problem("/h?a=b&c", true), None);
        assert!(path_problem("/h?a=\"b\"", true).is_some());
        assert!(path_problem("/h#x", true).is_some());
        assert!(header_name_problem(&"a".repeat(MAX_HEADER_NAME_LEN)).is_none());
        assert!(header_name_problem(&"a".repeat(MAX_HEADER_NAME_LEN + 1)).is_some());
    }
}
