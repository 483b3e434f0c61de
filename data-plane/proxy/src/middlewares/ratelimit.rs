//! `rateLimit`: one token bucket per source (see
//! [`switchyard_config::middlewares::ratelimit`]); a request whose token is further away
//! than Traefik's maximum delay is refused with `429 Too Many Requests`, `Retry-After`
//! (whole seconds, rounded up) and `X-Retry-In` (Go's duration text). Requests Traefik would
//! hold for up to that delay (at most 500 ms, `1s / (2 × rate)` above one request per second)
//! are served at once; their token is taken all the same, so the long-run rate holds. The
//! buckets belong to one config version, as in Traefik (which rebuilds its middlewares on
//! every change).

use std::borrow::Cow;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};
use switchyard_config::middlewares::ip::IpText;
use switchyard_config::middlewares::ratelimit::{CompiledRateLimit, Source};

use super::MwRequest;
use crate::body::ProxyBody;
use crate::forwarded::X_FORWARDED_FOR;

const X_RETRY_IN: HeaderName = HeaderName::from_static("x-retry-in");

/// The key of a request for a `sourceCriterion` (Go's source extractors: an empty value is
/// a key like any other), borrowed from the request or written into `buf` (no allocation
/// per request, except for an IPv6 subnet).
pub(crate) fn source_key<'a>(
    source: &Source,
    req: &'a MwRequest<'_>,
    buf: &'a mut IpText,
) -> Cow<'a, str> {
    fn text(v: Option<&HeaderValue>) -> &str {
        v.and_then(|v| v.to_str().ok()).unwrap_or("")
    }
    let h = &req.parts.headers;
    match source {
        Source::Ip(s) => s.client_key(req.client_ip, text(h.get(&X_FORWARDED_FOR)), buf),
        Source::Header(n) => Cow::Borrowed(text(h.get(n))),
        Source::Host => Cow::Borrowed(req.host.to_str().unwrap_or("")),
    }
}

/// Request phase.
pub(crate) fn on_request(
    r: &CompiledRateLimit,
    req: &MwRequest<'_>,
) -> Option<Response<ProxyBody>> {
    r.rate?;
    let mut buf = IpText::default();
    let source = source_key(&r.source, req, &mut buf);
    let delay = r.reserve(&source, Instant::now()).err()?;
    let mut resp = Response::new(ProxyBody::full(Bytes::from_static(b"Too Many Requests")));
    *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let hm = resp.headers_mut();
    hm.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    hm.insert(
        RETRY_AFTER,
        HeaderValue::from(delay.as_secs_f64().ceil() as u64),
    );
    if let Ok(v) = HeaderValue::from_str(&go_duration(delay)) {
        hm.insert(X_RETRY_IN, v);
    }
    Some(resp)
}

/// Go's `time.Duration.String` (e.g. `100ms`, `1.5s`, `1m0s`).
pub(crate) fn go_duration(d: Duration) -> String {
    fn frac(v: f64) -> String {
        let s = format!("{v:.9}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", frac(ns as f64 / 1e3));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", frac(ns as f64 / 1e6));
    }
    let secs = d.as_secs();
    let (h, m) = (secs / 3600, (secs / 60) % 60);
    let s = frac((secs % 60) as f64 + f64::from(d.subsec_nanos()) / 1e9);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_millis(100)), "100ms");
        assert_eq!(go_duration(Duration::from_micros(40_500)), "40.5ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(60)), "1m0s");
        assert_eq!(go_duration(Duration::from_secs(3661)), "1h1m1s");
        assert_eq!(go_duration(Duration::from_nanos(5)), "5ns");
    }
}
