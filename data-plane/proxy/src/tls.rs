//! TLS termination on the entry points.
//!
//! Every entry point serves TLS and plaintext on the same port, as Traefik does: the first
//! byte of a connection decides (0x16 = a TLS handshake record). A TLS connection is accepted
//! with tokio-rustls' `LazyConfigAcceptor`: the ClientHello is read first, then the
//! `ServerConfig` is chosen from the **current** config version's [`switchyard_tls::TlsTable`]
//! (a TLS-ALPN-01 challenge first, else the TLS option of the routers whose `Host` matches the
//! SNI, else `default`). A new config version therefore applies to new handshakes only; open
//! connections keep their session. HTTP/2 is served when ALPN picks `h2` (hyper's auto
//! builder reads the preface).
//!
//! A TLS-ALPN-01 challenge connection is closed right after the handshake (RFC 8737: the
//! validation is the handshake). Handshakes (and the wait for the first byte) time out, so a
//! peer that sends nothing holds a task for a bounded time; every handshake is counted in
//! `switchyard_proxy_tls_handshakes_total{result="ok"|"failed"}`.

use std::sync::Arc;
use std::time::Duration;

use rustls::sign::CertifiedKey;
use tokio::io::AsyncWriteExt;
use tokio_rustls::server::TlsStream;

use crate::tcp::peek::Peeked;
use tokio_rustls::LazyConfigAcceptor;

use crate::shared::Shared;

/// How long a client may take to send its first byte, then to finish the TLS handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The self-signed certificate served when no certificate matches (generated once per process;
/// `switchyard-tls` itself stays deterministic).
pub(crate) fn generate_default_cert() -> Result<Arc<CertifiedKey>, String> {
    let ck = rcgen::generate_simple_self_signed(vec!["switchyard-default.invalid".to_string()])
        .map_err(|e| format!("default certificate: {e}"))?;
    switchyard_tls::parse_certified_key(&ck.cert.pem(), &ck.signing_key.serialize_pem())
        .map_err(|e| format!("default certificate: {e}"))
}

/// What a new connection turned out to be.
pub(crate) enum Accepted {
    Plain(Peeked),
    Tls(Box<TlsStream<Peeked>>),
    /// Closed, timed out, failed handshake or answered ACME challenge: nothing to serve.
    Done,
}

/// Sniff the first byte and, for TLS, run the handshake with the current TLS table.
/// `stream` may carry bytes the TCP router already read ([`crate::tcp`]).
pub(crate) async fn accept(stream: Peeked, shared: &Shared) -> Accepted {
    let first = match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.first_byte()).await {
        Ok(Ok(Some(b))) => b,
        _ => return Accepted::Done,
    };
    if first != 0x16 {
        return Accepted::Plain(stream);
    }
    let handshake = async {
        let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream).await?;
        let selected = {
            let rt = shared.current.load();
            rt.tls.select_hello(&start.client_hello())
        };
        let tls = start.into_stream(selected.config).await?;
        Ok::<_, std::io::Error>((tls, selected.acme_challenge))
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok((mut tls, acme))) => {
            shared.metrics.count_handshake(true);
            if acme {
                let _ = tls.shutdown().await;
                return Accepted::Done;
            }
            Accepted::Tls(Box::new(tls))
        }
        Ok(Err(e)) => {
            shared.metrics.count_handshake(false);
            tracing::debug!(error = %e, "TLS handshake failed");
            Accepted::Done
        }
        Err(_) => {
            shared.metrics.count_handshake(false);
            tracing::debug!("TLS handshake timed out");
            Accepted::Done
        }
    }
}
