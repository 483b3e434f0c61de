//! DNS-01 (RFC 8555 §8.4): the leader publishes a TXT record `_acme-challenge.<domain>.` holding
//! the base64url SHA-256 of the key authorization through the resolver's DNS provider, waits
//! until the record is visible (the propagation check), tells the CA, and removes the records
//! once the order is settled.
//!
//! Providers: [`rfc2136`] (dynamic updates, optionally TSIG-signed), [`httpreq`] and [`exec`]
//! (lego-compatible hooks, so any DNS API can be scripted). The wildcard `*.example.com` and
//! `example.com` share the record name: providers add records, they never replace the set.
//!
//! Provider secrets (TSIG secrets, passwords) never reach a log line nor an error message.

pub mod exec;
pub mod httpreq;
pub mod propagation;
pub mod rfc2136;
pub(crate) mod wire;

use std::time::Duration;

use switchyard_config::DnsChallenge;

/// One TXT record to publish for one authorization.
#[derive(Clone, PartialEq, Eq)]
pub struct TxtRecord {
    /// The domain being validated, without `*.` (`example.com` for `*.example.com`).
    pub domain: String,
    /// `_acme-challenge.example.com.`
    pub fqdn: String,
    /// The record's value: base64url(SHA-256(key authorization)).
    pub value: String,
    /// The challenge token (for `RAW` hooks).
    pub token: String,
    /// The key authorization (for `RAW` hooks).
    pub key_auth: String,
}

impl std::fmt::Debug for TxtRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TXT {} {:?}", self.fqdn, self.value)
    }
}

impl TxtRecord {
    pub fn new(domain: &str, token: &str, key_auth: &str, value: &str) -> Self {
        let domain = domain
            .trim_start_matches("*.")
            .trim_end_matches('.')
            .to_ascii_lowercase();
        Self {
            fqdn: challenge_fqdn(&domain),
            domain,
            value: value.to_string(),
            token: token.to_string(),
            key_auth: key_auth.to_string(),
        }
    }
}

/// `_acme-challenge.<domain>.` for `domain` or `*.domain`.
pub fn challenge_fqdn(domain: &str) -> String {
    let d = domain.trim_start_matches("*.").trim_end_matches('.');
    format!("_acme-challenge.{}.", d.to_ascii_lowercase())
}

/// How long one provider call may take.
pub const PROVIDER_TIMEOUT: Duration = Duration::from_secs(60);

/// Publishes `records` through the configured provider.
pub async fn present(d: &DnsChallenge, records: &[TxtRecord]) -> Result<(), String> {
    run(d, records, true).await
}

/// Removes `records` through the configured provider.
pub async fn cleanup(d: &DnsChallenge, records: &[TxtRecord]) -> Result<(), String> {
    run(d, records, false).await
}

async fn run(d: &DnsChallenge, records: &[TxtRecord], add: bool) -> Result<(), String> {
    let fut = async {
        match d.provider.as_str() {
            "rfc2136" => match &d.rfc2136 {
                Some(c) => rfc2136::update(c, records, add).await,
                None => Err("dnsChallenge.rfc2136 is not set".into()),
            },
            "httpreq" => match &d.httpreq {
                Some(c) => httpreq::call(c, records, add).await,
                None => Err("dnsChallenge.httpreq is not set".into()),
            },
            "exec" => match &d.exec {
                Some(c) => exec::run(c, records, add).await,
                None => Err("dnsChallenge.exec is not set".into()),
            },
            other => Err(format!("unknown DNS provider {other:?}")),
        }
    };
    match tokio::time::timeout(PROVIDER_TIMEOUT, fut).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "DNS provider {} did not finish within {PROVIDER_TIMEOUT:?}",
            d.provider
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_names() {
        assert_eq!(challenge_fqdn("*.App.test"), "_acme-challenge.app.test.");
        assert_eq!(challenge_fqdn("app.test."), "_acme-challenge.app.test.");
        let r = TxtRecord::new("*.app.test", "tok", "tok.thumb", "v");
        assert_eq!(r.domain, "app.test");
        assert_eq!(r.fqdn, "_acme-challenge.app.test.");
    }
}
