//! lego's `httpreq` provider: `POST <endpoint>/present` (and `/cleanup`) with
//! `{"fqdn": "_acme-challenge.example.com.", "value": "…"}`, or in `RAW` mode
//! `{"domain": "example.com", "token": "…", "keyAuth": "…"}`; HTTP basic authentication when a
//! username is set. Any 2xx answer is success.

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use switchyard_config::HttpReq;

use super::TxtRecord;

/// The request body for one record.
pub fn body(c: &HttpReq, r: &TxtRecord) -> serde_json::Value {
    if c.mode.as_deref() == Some("RAW") {
        serde_json::json!({"domain": r.domain, "token": r.token, "keyAuth": r.key_auth})
    } else {
        serde_json::json!({"fqdn": r.fqdn, "value": r.value})
    }
}

/// Calls `/present` (`add`) or `/cleanup` for every record.
pub async fn call(c: &HttpReq, records: &[TxtRecord], add: bool) -> Result<(), String> {
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
    let path = if add { "present" } else { "cleanup" };
    let url = format!("{}/{path}", c.endpoint.trim_end_matches('/'));
    for r in records {
        let payload = serde_json::to_vec(&body(c, r)).map_err(|e| e.to_string())?;
        let mut req =
            http::Request::post(&url).header(http::header::CONTENT_TYPE, "application/json");
        if let Some(user) = c.username.as_deref().filter(|u| !u.is_empty()) {
            let cred = format!("{user}:{}", c.password.as_deref().unwrap_or(""));
            let v = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(cred)
            );
            req = req.header(http::header::AUTHORIZATION, v);
        }
        let req = req
            .body(Full::new(Bytes::from(payload)))
            .map_err(|e| format!("httpreq {url}: {e}"))?;
        let rsp = client
            .request(req)
            .await
            .map_err(|e| format!("httpreq {url}: {e}"))?;
        let status = rsp.status();
        if !status.is_success() {
            let body = http_body_util::Limited::new(rsp.into_body(), 512)
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).to_string())
                .unwrap_or_default();
            return Err(format!(
                "httpreq {url} for {}: {status} {}",
                r.fqdn,
                body.trim()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_as_lego() {
        let r = TxtRecord::new("*.a.test", "tok", "tok.thumb", "val");
        let mut c = HttpReq::default();
        assert_eq!(
            body(&c, &r),
            serde_json::json!({"fqdn": "_acme-challenge.a.test.", "value": "val"})
        );
        c.mode = Some("RAW".into());
        assert_eq!(
            body(&c, &r),
            serde_json::json!({"domain": "a.test", "token": "tok", "keyAuth": "tok.thumb"})
        );
    }
}
