//! Fetches an OCSP response: `POST` of the DER request to the responder (RFC 6960 appendix A),
//! over HTTP or HTTPS (Mozilla roots), with a deadline and a size limit.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The longest a responder may take to answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest response accepted (real ones are 1-4 KiB).
pub const MAX_BYTES: usize = 64 * 1024;

/// The DER response of `url` to `request`, or why there is none.
pub async fn fetch(url: &str, request: &[u8]) -> Result<Vec<u8>, String> {
    tokio::time::timeout(TIMEOUT, fetch_inner(url, request))
        .await
        .map_err(|_| format!("OCSP responder {url}: no answer within {TIMEOUT:?}"))?
}

async fn fetch_inner(url: &str, request: &[u8]) -> Result<Vec<u8>, String> {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    })
    .with_no_client_auth();
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let req = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/ocsp-request")
        .header(http::header::ACCEPT, "application/ocsp-response")
        .body(Full::new(Bytes::copy_from_slice(request)))
        .map_err(|e| format!("OCSP responder {url}: {e}"))?;
    let rsp = client
        .request(req)
        .await
        .map_err(|e| format!("OCSP responder {url}: {e}"))?;
    let status = rsp.status();
    if !status.is_success() {
        return Err(format!("OCSP responder {url}: HTTP {status}"));
    }
    let body = Limited::new(rsp.into_body(), MAX_BYTES)
        .collect()
        .await
        .map_err(|e| format!("OCSP responder {url}: {e}"))?;
    Ok(body.to_bytes().to_vec())
}
