//! TCP routers on the entry points (Traefik v3 `tcp.routers`).
//!
//! Every accepted connection first goes through [`route`]. When the entry point has no TCP
//! router (the common case), nothing is read and the socket goes to the HTTP server as before.
//! Otherwise:
//!
//! 1. If the entry point has only plain TCP routers (no TLS TCP router, no HTTP router with
//!    `tls`), the connection is routed at once, before the client sends anything, so
//!    server-first protocols (SMTP, MySQL) work: Traefik's shortcut.
//! 2. Else the first bytes are read ([`peek::sniff`], bounded by the entry point's
//!    `readTimeout`, as Traefik's peek is): a TLS ClientHello gives the SNI and ALPN list, and
//!    [`switchyard_config::tcp::TcpMux`] picks TCP or HTTP in Traefik's order.
//! 3. A TCP route applies its middlewares (`ipAllowList`, `inFlightConn`), picks a server of
//!    its service, terminates TLS if it is not a passthrough route (rustls, the cluster's
//!    certificates, the router's TLS option), writes a PROXY protocol header if configured, and
//!    copies bytes both ways ([`splice`]).
//! 4. HTTP gets the socket with the bytes read so far replayed ([`peek::Peeked`]), and so do
//!    TLS-ALPN-01 challenge connections (ALPN `acme-tls/1`), as in Traefik.

pub(crate) mod middleware;
pub(crate) mod peek;
pub(crate) mod proxy_protocol;
pub(crate) mod router;
pub(crate) mod service;
pub(crate) mod splice;

use std::net::SocketAddr;
use std::sync::Arc;

use switchyard_config::tcp::ConnView;
use tokio::net::TcpStream;

use self::peek::{sniff, Hello, Peeked};
use self::router::{Mode, Outcome, TcpRoute};
use self::service::TcpSvc;
use crate::shared::Shared;
use crate::tls::HANDSHAKE_TIMEOUT;

/// Route a new connection of entry point `ep`: `Some` hands it to HTTP (with the bytes read
/// so far), `None` means TCP served it (or it was closed).
pub(crate) async fn route(
    stream: TcpStream,
    peer: SocketAddr,
    ep: usize,
    shared: &Arc<Shared>,
) -> Option<Peeked> {
    let mut s = Peeked::new(stream);
    let decision = {
        let rt = shared.current.load();
        let Some(e) = rt.tcp.ep(ep).filter(|e| !e.is_empty()) else {
            return Some(s);
        };
        let client_ip = peer.ip().to_canonical();
        if e.plain_only() {
            let c = ConnView {
                sni: None,
                client_ip,
                alpn: &[],
            };
            rt.tcp.decide(ep, false, &c)
        } else {
            let wait = shared
                .entrypoints
                .get(ep)
                .map(|e| e.limits.read_timeout)
                .filter(|d| !d.is_zero())
                .unwrap_or(HANDSHAKE_TIMEOUT);
            drop(rt);
            let hello = match tokio::time::timeout(wait, sniff(&mut s)).await {
                Ok(Ok(Some(h))) => h,
                Ok(Ok(None)) | Ok(Err(_)) => return None,
                Err(_) => {
                    tracing::debug!(%peer, "no first bytes within the entry point's readTimeout: closed");
                    if let Some(e) = shared.entrypoints.get(ep) {
                        e.hit(crate::limits::LimitKind::ReadTimeout);
                    }
                    return None;
                }
            };
            let (tls, sni, alpn) = match hello {
                Hello::Plain => (false, None, Vec::new()),
                // TLS-ALPN-01 challenges are answered by the HTTP TLS acceptor, whatever the
                // TCP routers say (Traefik checks `acme-tls/1` first too), so a TCP router
                // with a certResolver can get its certificate by TLS-ALPN-01.
                Hello::Tls { alpn, .. }
                    if alpn
                        .iter()
                        .any(|p| p.as_bytes() == switchyard_tls::ACME_TLS_ALPN) =>
                {
                    return Some(s)
                }
                Hello::Tls { sni, alpn } => (true, sni, alpn),
                // The HTTP TLS acceptor refuses it with the right alert.
                Hello::BadTls => return Some(s),
            };
            let c = ConnView {
                sni: sni.as_deref(),
                client_ip,
                alpn: &alpn,
            };
            let d = shared.current.load().tcp.decide(ep, tls, &c);
            tracing::debug!(ep, tls, sni = ?c.sni, tcp = ?d.as_ref().map(|r| &r.name), "connection routed");
            d
        }
    };
    match decision {
        None => Some(s),
        Some(r) => {
            serve(s, r, peer, shared).await;
            None
        }
    }
}

/// Serve a connection with TCP route `r`: middlewares, TLS termination (before any backend is
/// dialled), backend, copy.
async fn serve(s: Peeked, r: Arc<TcpRoute>, peer: SocketAddr, shared: &Arc<Shared>) {
    let mut slots = Vec::new();
    for m in r.middlewares.iter() {
        match m.admit(peer.ip()) {
            Ok(slot) => slots.extend(slot),
            Err(()) => {
                tracing::debug!(router = %r.name, %peer, "TCP connection refused by a middleware");
                r.count(&shared.metrics, Outcome::Refused);
                return;
            }
        }
    }
    let Ok(local) = s.local_addr() else {
        return;
    };
    match &r.mode {
        Mode::Terminate(cfg) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(cfg.clone());
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(s)).await {
                Ok(Ok(tls)) => {
                    shared.metrics.count_handshake(true);
                    forward(tls, &r, peer, local, shared).await;
                }
                _ => {
                    shared.metrics.count_handshake(false);
                    r.count(&shared.metrics, Outcome::TlsFailed);
                }
            }
        }
        Mode::Plain | Mode::Passthrough => forward(s, &r, peer, local, shared).await,
    }
    drop(slots);
}

/// Pick a server of the route's service, dial it and copy.
async fn forward<C>(client: C, r: &TcpRoute, peer: SocketAddr, local: SocketAddr, shared: &Shared)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let picked = r.service.pick();
    let Some(TcpSvc::Lb(lb)) = picked.as_deref() else {
        r.count(&shared.metrics, Outcome::NoBackend);
        return;
    };
    let Some((backend, server)) = splice::dial(lb, peer, local).await else {
        tracing::debug!(router = %r.name, "no TCP backend server reachable: closed");
        r.count(&shared.metrics, Outcome::NoBackend);
        return;
    };
    r.count(&shared.metrics, Outcome::Ok);
    tracing::debug!(router = %r.name, %server, %peer, "TCP connection");
    splice::pump(client, backend, lb.dialer.termination_delay).await;
}
