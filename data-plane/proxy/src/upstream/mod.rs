//! Connections to backends: servers transports and per-server pooled clients.
//!
//! A [`Transport`] is compiled from a `serversTransport` (or the default one) once per
//! definition and reused across config versions while its definition is unchanged. Each
//! backend server gets its own pooled [`Client`] ([`pool`]: connections checked out and
//! returned by the request's own task) that always dials that server ([`connect`]); the
//! client lives in the server's balancer state, so its keep-alive pool survives config updates
//! that leave the service unchanged, and no pool lock is shared between servers.
//!
//! Schemes: `http` (HTTP/1.1), `https` (TLS; HTTP/2 when ALPN picks `h2` unless
//! `disableHTTP2`), `h2c` (HTTP/2 with prior knowledge, e.g. gRPC).
//!
//! Defaults (Traefik's): `dialTimeout` 30s, `responseHeaderTimeout` 0 = none (long polls and
//! slow gRPC streams must keep working as under Traefik; set it on a servers transport to get
//! 504s), `idleConnTimeout` 90s, `maxIdleConnsPerHost` 200 when unset (0 means Go's 2,
//! negative disables reuse), HTTP/2 pings off unless `readIdleTimeout` is set (`pingTimeout`
//! 15s).

pub(crate) mod connect;
pub(crate) mod pool;
pub(crate) mod tls;

use std::sync::Arc;
use std::time::Duration;

use switchyard_config::ServersTransport;
use tokio_rustls::TlsConnector;

use connect::Target;
pub(crate) use pool::{Client, Error, PooledBody};

/// Backend protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Http,
    Https,
    H2c,
}

/// A parsed backend server URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerUrl {
    pub scheme: Scheme,
    /// Host without IPv6 brackets (for dialing and SNI).
    pub host: String,
    pub port: u16,
    /// `host[:port]` with the port as written (Go's `URL.Host`; the host normalised by the
    /// URL parser, e.g. punycode), for `passHostHeader: false`.
    pub authority: String,
    /// The URL path (used with `preservePath`), without a trailing slash.
    pub path: String,
}

impl ServerUrl {
    /// Parse a server URL as validated by `switchyard_config::validate`.
    pub(crate) fn parse(raw: &str) -> Result<ServerUrl, String> {
        let u = url::Url::parse(raw).map_err(|e| format!("invalid URL \"{raw}\": {e}"))?;
        let scheme = match u.scheme() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            "h2c" => Scheme::H2c,
            s => return Err(format!("unsupported scheme \"{s}\"")),
        };
        let host = u
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("invalid URL \"{raw}\": missing host"))?;
        let bracketed = host.to_string();
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = u
            .port()
            .unwrap_or(if scheme == Scheme::Https { 443 } else { 80 });
        // Keep an explicit port as written (the URL parser drops default ports).
        let after = raw.split_once("://").map_or(raw, |(_, r)| r);
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        let written = after[..end].rsplit('@').next().unwrap_or("");
        let port_part = match written.strip_prefix('[') {
            Some(rest) => rest.split_once(']').and_then(|(_, p)| p.strip_prefix(':')),
            None => written.split_once(':').map(|(_, p)| p),
        };
        let authority = match port_part.filter(|p| !p.is_empty()) {
            Some(p) => format!("{bracketed}:{p}"),
            None => bracketed,
        };
        let path = u.path().trim_end_matches('/').to_string();
        Ok(ServerUrl {
            scheme,
            host,
            port,
            authority,
            path,
        })
    }
}

/// A compiled servers transport.
pub(crate) struct Transport {
    pub dial_timeout: Duration,
    pub response_header_timeout: Option<Duration>,
    idle_conn_timeout: Duration,
    max_idle_per_host: usize,
    server_name: Option<String>,
    tls: Arc<rustls::ClientConfig>,
    h2_keepalive: Option<(Duration, Duration)>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("dial_timeout", &self.dial_timeout)
            .field("response_header_timeout", &self.response_header_timeout)
            .finish_non_exhaustive()
    }
}

fn dur(
    d: Option<&switchyard_config::Duration>,
    default: Duration,
    what: &str,
) -> Result<Duration, String> {
    match d {
        None => Ok(default),
        Some(d) => d.to_std().map_err(|e| format!("{what}: {e}")),
    }
}

impl Transport {
    /// Compile a servers transport (`None`: the default one).
    pub(crate) fn new(def: Option<&ServersTransport>) -> Result<Transport, String> {
        let empty = ServersTransport::default();
        let def = def.unwrap_or(&empty);
        let ft = def.forwarding_timeouts.clone().unwrap_or_default();
        let dial_timeout = dur(
            ft.dial_timeout.as_ref(),
            Duration::from_secs(30),
            "dialTimeout",
        )?;
        let rht = dur(
            ft.response_header_timeout.as_ref(),
            Duration::ZERO,
            "responseHeaderTimeout",
        )?;
        let idle = dur(
            ft.idle_conn_timeout.as_ref(),
            Duration::from_secs(90),
            "idleConnTimeout",
        )?;
        let read_idle = dur(
            ft.read_idle_timeout.as_ref(),
            Duration::ZERO,
            "readIdleTimeout",
        )?;
        let ping = dur(
            ft.ping_timeout.as_ref(),
            Duration::from_secs(15),
            "pingTimeout",
        )?;
        let max_idle_per_host = match def.max_idle_conns_per_host {
            None => 200,
            Some(0) => 2,
            Some(n) if n < 0 => 0,
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let http2 = !def.disable_http2.unwrap_or(false);
        Ok(Transport {
            // A zero dial timeout means none in Go.
            dial_timeout: if dial_timeout.is_zero() {
                Duration::from_secs(u64::from(u32::MAX))
            } else {
                dial_timeout
            },
            response_header_timeout: (!rht.is_zero()).then_some(rht),
            idle_conn_timeout: idle,
            max_idle_per_host,
            server_name: def.server_name.clone().filter(|s| !s.is_empty()),
            tls: switchyard_tls::client_config(def, http2)?,
            h2_keepalive: (!read_idle.is_zero()).then_some((read_idle, ping)),
        })
    }

    /// A pooled client for one server.
    pub(crate) fn client(&self, url: &ServerUrl) -> Result<Client, String> {
        let tls = match url.scheme {
            Scheme::Https => {
                let cfg = self.tls.clone();
                let name = tls::server_name(self.server_name.as_deref().unwrap_or(&url.host))?;
                Some((TlsConnector::from(cfg), name))
            }
            _ => None,
        };
        let target = Target {
            host: url.host.clone(),
            port: url.port,
            tls,
            dial_timeout: self.dial_timeout,
        };
        Ok(Client::new(
            target,
            pool::Settings {
                h2_only: url.scheme == Scheme::H2c,
                // Go: 0 means no limit.
                idle_timeout: (!self.idle_conn_timeout.is_zero()).then_some(self.idle_conn_timeout),
                max_idle: self.max_idle_per_host,
                h2_keepalive: self.h2_keepalive,
            },
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        let u = ServerUrl::parse("http://10.0.0.1:8080/base/").unwrap();
        assert_eq!(u.scheme, Scheme::Http);
        assert_eq!((u.host.as_str(), u.port), ("10.0.0.1", 8080));
        assert_eq!(u.authority, "10.0.0.1:8080");
        assert_eq!(u.path, "/base");
        let u = ServerUrl::parse("https://Example.com").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("example.com", 443));
        assert_eq!(u.authority, "example.com");
        let u = ServerUrl::parse("http://bücher.example:8080").unwrap();
        assert_eq!(u.authority, "xn--bcher-kva.example:8080");
        let u = ServerUrl::parse("http://[::1]").unwrap();
        assert_eq!((u.authority.as_str(), u.port), ("[::1]", 80));
        let u = ServerUrl::parse("h2c://[::1]:50051").unwrap();
        assert_eq!(u.scheme, Scheme::H2c);
        assert_eq!((u.host.as_str(), u.port), ("::1", 50051));
        assert_eq!(u.authority, "[::1]:50051");
        let u = ServerUrl::parse("http://u:p@a.com:80/x?y").unwrap();
        assert_eq!(u.authority, "a.com:80");
        assert_eq!(u.port, 80);
        assert!(ServerUrl::parse("ftp://a").is_err());
    }

    #[test]
    fn transport_defaults() {
        let t = Transport::new(None).unwrap();
        assert_eq!(t.dial_timeout, Duration::from_secs(30));
        assert_eq!(t.response_header_timeout, None);
        assert_eq!(t.max_idle_per_host, 200);
        let def: ServersTransport = serde_json::from_str(
            r#"{"maxIdleConnsPerHost": -1, "forwardingTimeouts": {"dialTimeout": "2s", "responseHeaderTimeout": "1500ms"}}"#,
        )
        .unwrap();
        let t = Transport::new(Some(&def)).unwrap();
        assert_eq!(t.dial_timeout, Duration::from_secs(2));
        assert_eq!(t.response_header_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(t.max_idle_per_host, 0);
    }
}
