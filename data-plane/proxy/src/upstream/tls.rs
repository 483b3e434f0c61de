//! TLS to `https` backends. The rustls client config of a servers transport is built by
//! `switchyard_tls::client_config` (ring provider; Mozilla's roots from `webpki-roots`, compiled
//! in, or the transport's `rootCAs`; `insecureSkipVerify` with an accept-anything verifier that
//! still checks handshake signatures; the transport's client certificate; ALPN `h2` +
//! `http/1.1`, or `http/1.1` only with `disableHTTP2`).

use rustls::pki_types::ServerName;

/// The name presented in SNI and verified: `serverName` if set, else the server URL's host.
pub(crate) fn server_name(name: &str) -> Result<ServerName<'static>, String> {
    let n = name.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(n.to_string())
        .map_err(|e| format!("invalid TLS server name \"{name}\": {e}"))
}
