//! The HTTP client towards the CA: rustls (ring) with the resolver's `caCertificates` and, per
//! `caSystemCertPool`, the Mozilla roots; remembers the last `Retry-After` the CA sent so that
//! rate limits are respected.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::RETRY_AFTER;
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use switchyard_config::AcmeResolver;

type Inner = Client<hyper_rustls::HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>;

/// Shared slot for the last `Retry-After` of an error response.
pub type RetryAfter = Arc<Mutex<Option<SystemTime>>>;

pub struct CaClient {
    inner: Inner,
    retry_after: RetryAfter,
    timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("caCertificates: {0}")]
    Roots(String),
    #[error("caServerName is not supported by this version of Switchyard")]
    ServerName,
}

impl CaClient {
    /// A client trusting what `a` says to trust.
    pub fn new(a: &AcmeResolver) -> Result<(Self, RetryAfter), ClientError> {
        if a.ca_server_name.is_some() {
            return Err(ClientError::ServerName);
        }
        let mut roots = rustls::RootCertStore::empty();
        for pem in &a.ca_certificates {
            for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let der = der.map_err(|e| ClientError::Roots(e.to_string()))?;
                roots
                    .add(der)
                    .map_err(|e| ClientError::Roots(e.to_string()))?;
            }
        }
        if a.ca_certificates.is_empty() || a.ca_system_cert_pool.unwrap_or(true) {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Roots(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let dur = |v: &Option<String>, default: u64| {
            v.as_deref()
                .and_then(|v| switchyard_config::duration::parse_go_duration(v).ok())
                .filter(|ns| *ns > 0)
                .map(|ns| Duration::from_nanos(ns as u64))
                .unwrap_or(Duration::from_secs(default))
        };
        // The request future resolves with the response headers: bounding it is Traefik's
        // `clientResponseHeaderTimeout` (30 s), itself within `clientTimeout` (2 min).
        let timeout = dur(&a.client_response_header_timeout, 30).min(dur(&a.client_timeout, 120));
        let retry_after = RetryAfter::default();
        Ok((
            Self {
                inner: Client::builder(TokioExecutor::new()).build(connector),
                retry_after: retry_after.clone(),
                timeout,
            },
            retry_after,
        ))
    }
}

const MAX_RETRY_AFTER: u64 = 7 * 24 * 3600;

/// `Retry-After` as seconds or an HTTP date.
fn parse_retry_after(v: &str, now: SystemTime) -> Option<SystemTime> {
    if let Ok(secs) = v.trim().parse::<u64>() {
        // At most a week: a CA's value never overflows the clock nor parks a certificate forever.
        return now.checked_add(Duration::from_secs(secs.min(MAX_RETRY_AFTER)));
    }
    httpdate_parse(v.trim())
}

/// RFC 7231 IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn httpdate_parse(s: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: u64 = parts[1].parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[2])? as u64
        + 1;
    let year: i64 = parts[3].parse().ok()?;
    let hms: Vec<u64> = parts[4].split(':').filter_map(|x| x.parse().ok()).collect();
    // Bounded so that no value from the network can overflow the arithmetic below.
    if hms.len() != 3
        || !(1..=31).contains(&day)
        || !(1970..=9999).contains(&year)
        || hms[0] > 23
        || hms[1] > 59
        || hms[2] > 60
    {
        return None;
    }
    // Days from civil (Howard Hinnant).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = (y - era * 400) as u64;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe as i64 - 719468;
    let secs = days * 86400 + (hms[0] * 3600 + hms[1] * 60 + hms[2]) as i64;
    u64::try_from(secs)
        .ok()
        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

impl HttpClient for CaClient {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let fut = self.inner.request(req);
        let slot = self.retry_after.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let rsp = match tokio::time::timeout(timeout, fut).await {
                Err(_) => {
                    return Err(instant_acme::Error::Other(
                        format!("no answer from the CA within {timeout:?}").into(),
                    ))
                }
                Ok(Err(e)) => return Err(instant_acme::Error::Other(Box::new(e))),
                Ok(Ok(r)) => r,
            };
            let mut rsp = rsp;
            // instant-acme adds a numeric Retry-After to the clock unchecked: bound it first.
            let huge = rsp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .is_some_and(|secs| secs > MAX_RETRY_AFTER);
            if huge {
                rsp.headers_mut()
                    .insert(RETRY_AFTER, http::HeaderValue::from(MAX_RETRY_AFTER));
            }
            if !rsp.status().is_success() {
                if let Some(at) = rsp
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()))
                {
                    if let Ok(mut g) = slot.lock() {
                        *g = Some(at);
                    }
                }
            }
            Ok(BytesResponse::from(rsp))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        assert_eq!(
            parse_retry_after("30", now),
            Some(now + Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(784111777))
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(
            parse_retry_after("Sun, 18446744073709551615 Nov 1994 08:49:37 GMT", now),
            None
        );
        assert_eq!(
            parse_retry_after("18446744073709551615", now),
            Some(now + Duration::from_secs(MAX_RETRY_AFTER))
        );
    }
}
