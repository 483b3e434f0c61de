//! Request hygiene checks of an entry point, before the pipeline runs (pure: the parsed
//! request head in, a verdict out): HTTP/2 header limits ([`header_limit`]; HTTP/1's are
//! hyper's, while parsing), `Host` fields as Go's `net/http` requires them
//! ([`head_fields`]: `Host`, `Upgrade` and `Connection` read in one pass), and `Upgrade: h2c`
//! removal ([`strip_h2c_upgrade`]).

use crate::limits::{EntrypointLimits, LimitKind};

/// The 431 for HTTP/2 header fields over the entry point's limits (HTTP/1 is checked by
/// hyper while parsing). Sizes are counted like HPACK's `SETTINGS_MAX_HEADER_LIST_SIZE`.
pub(super) fn header_limit<B>(req: &http::Request<B>, l: &EntrypointLimits) -> Option<LimitKind> {
    if req.version() != http::Version::HTTP_2 {
        return None;
    }
    if req.headers().len() > l.max_headers {
        return Some(LimitKind::Headers);
    }
    let size: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 32)
        .sum::<usize>()
        + req.uri().path_and_query().map_or(0, |p| p.as_str().len())
        + req.method().as_str().len();
    (size > l.max_header_bytes).then_some(LimitKind::HeaderBytes)
}

/// What the entry point needs of the `Host`, `Upgrade` and `Connection` fields, read in one
/// pass over the head (instead of one hashed lookup per name and per stage).
#[derive(Debug, Clone, Default)]
pub(crate) struct HeadFields {
    /// The first `Host` field (the only one when [`HeadFields::valid_host`]).
    pub(crate) host: Option<http::HeaderValue>,
    /// Go's `net/http` checks: an HTTP/1.1 request has exactly one `Host` field, and no
    /// request has more than one (anything else is 400; hyper does not check).
    pub(crate) valid_host: bool,
    /// Some `Upgrade` token is `h2c`: the field must be dropped ([`strip_h2c_upgrade`]).
    pub(crate) h2c: bool,
    /// A WebSocket upgrade (`Connection: upgrade` + `Upgrade: websocket`, case-insensitive, as
    /// Traefik's `isWebsocketRequest`), once an `h2c` `Upgrade` is dropped.
    pub(crate) websocket: bool,
}

/// Whether a comma-separated value has `token` (case-insensitive).
fn has_token(v: &http::HeaderValue, token: &[u8]) -> bool {
    v.as_bytes()
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// [`HeadFields`] of a request head: one pass over its fields.
pub(super) fn head_fields<B>(req: &http::Request<B>) -> HeadFields {
    use http::header::{CONNECTION, HOST, UPGRADE};
    let (mut host, mut hosts) = (None, 0usize);
    let (mut h2c, mut ws, mut conn_upgrade) = (false, false, false);
    for (k, v) in req.headers() {
        if *k == HOST {
            hosts += 1;
            if host.is_none() {
                host = Some(v.clone());
            }
        } else if *k == UPGRADE {
            h2c |= has_token(v, b"h2c");
            ws |= v.as_bytes().eq_ignore_ascii_case(b"websocket");
        } else if *k == CONNECTION {
            conn_upgrade |= has_token(v, b"upgrade");
        }
    }
    let valid_host = match hosts {
        0 => req.version() != http::Version::HTTP_11,
        1 => true,
        _ => false,
    };
    HeadFields {
        host,
        valid_host,
        h2c,
        websocket: ws && conn_upgrade && !h2c,
    }
}

/// `Upgrade: h2c` is never forwarded: a backend that switched to HTTP/2 on it would give the
/// client a tunnel past every router and middleware ("h2c smuggling"; RFC 9113 dropped the
/// mechanism). The request goes on as plain HTTP/1.1 (`Connection` and the headers it names,
/// such as `HTTP2-Settings`, are hop-by-hop and dropped when forwarding). `fields` are the
/// head's [`HeadFields`].
pub(super) fn strip_h2c_upgrade(headers: &mut http::HeaderMap, fields: &HeadFields) {
    if fields.h2c {
        headers.remove(http::header::UPGRADE);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn head(version: http::Version, headers: &[(&str, &str)]) -> http::Request<()> {
        let mut b = http::Request::get("/p").version(version);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn http2_header_limits() {
        let l = EntrypointLimits {
            max_headers: 3,
            max_header_bytes: 200,
            ..EntrypointLimits::default()
        };
        let h2 = http::Version::HTTP_2;
        assert_eq!(header_limit(&head(h2, &[("a", "1"), ("b", "2")]), &l), None);
        let many = [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")];
        assert_eq!(header_limit(&head(h2, &many), &l), Some(LimitKind::Headers));
        let big = "x".repeat(200);
        assert_eq!(
            header_limit(&head(h2, &[("a", &big)]), &l),
            Some(LimitKind::HeaderBytes)
        );
        // HTTP/1 heads are hyper's to judge.
        assert_eq!(header_limit(&head(http::Version::HTTP_11, &many), &l), None);
    }

    #[test]
    fn host_fields() {
        use http::Version;
        let valid_host_fields = |p: &http::Request<()>| head_fields(p).valid_host;
        assert!(valid_host_fields(&head(Version::HTTP_11, &[("host", "a")])));
        assert!(!valid_host_fields(&head(Version::HTTP_11, &[])));
        assert!(!valid_host_fields(&head(
            Version::HTTP_11,
            &[("host", "a"), ("host", "b")]
        )));
        assert!(valid_host_fields(&head(Version::HTTP_10, &[])));
        assert!(valid_host_fields(&head(Version::HTTP_2, &[])));
        assert!(!valid_host_fields(&head(
            Version::HTTP_2,
            &[("host", "a"), ("host", "a")]
        )));
    }

    #[test]
    fn h2c_upgrades_are_dropped_and_websocket_kept() {
        let mut h = head(
            http::Version::HTTP_11,
            &[("upgrade", "foo, H2C"), ("connection", "upgrade")],
        );
        let f = head_fields(&h);
        assert!(f.h2c && !f.websocket);
        strip_h2c_upgrade(h.headers_mut(), &f);
        assert!(h.headers().get(http::header::UPGRADE).is_none());
        let mut h = head(http::Version::HTTP_11, &[("upgrade", "websocket")]);
        let f = head_fields(&h);
        assert!(!f.h2c && !f.websocket);
        strip_h2c_upgrade(h.headers_mut(), &f);
        assert_eq!(h.headers()[http::header::UPGRADE], "websocket");
    }

    #[test]
    fn websocket_and_host() {
        let h = head(
            http::Version::HTTP_11,
            &[
                ("Host", "a.com"),
                ("upgrade", "WebSocket"),
                ("connection", "keep-alive, Upgrade"),
            ],
        );
        let f = head_fields(&h);
        assert!(f.websocket && f.valid_host && !f.h2c);
        assert_eq!(f.host.unwrap(), "a.com");
        // `Upgrade: websocket` alone, or with another `Connection` token, is not one.
        let h = head(
            http::Version::HTTP_11,
            &[("upgrade", "websocket"), ("connection", "close")],
        );
        assert!(!head_fields(&h).websocket);
        // A second `Upgrade` line naming h2c drops the field, so no WebSocket either.
        let h = head(
            http::Version::HTTP_11,
            &[
                ("upgrade", "websocket"),
                ("upgrade", "h2c"),
                ("connection", "upgrade"),
            ],
        );
        let f = head_fields(&h);
        assert!(f.h2c && !f.websocket);
    }
}
