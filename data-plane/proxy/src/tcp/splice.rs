//! Connecting a TCP route's backend and copying bytes both ways.
//!
//! The backend is dialled in the order [`TcpBalancer::candidates`] gives (a failed dial ejects
//! the server and tries the next). The PROXY protocol header, when configured, is the first
//! thing written on the backend connection (before a backend TLS handshake, as HAProxy and
//! Traefik do). Then each direction is copied with a 64 KiB buffer; when one direction ends
//! (EOF), the other side's write half is shut down (half-close passes through) and the other
//! direction gets `terminationDelay` to finish (Traefik's default 100 ms; negative: no limit)
//! before both sockets are closed.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::proxy_protocol;
use super::service::{resolve, TcpBalancer};

/// How long dialling one backend server may take.
pub(crate) const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Copy buffer per direction.
const BUF: usize = 64 * 1024;

/// A backend connection: plain or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The client config for `tls: true` servers (Mozilla's roots, server name = address host).
fn backend_tls() -> Option<Arc<rustls::ClientConfig>> {
    static CFG: OnceLock<Option<Arc<rustls::ClientConfig>>> = OnceLock::new();
    CFG.get_or_init(|| {
        switchyard_tls::client_config(&switchyard_config::ServersTransport::default(), false).ok()
    })
    .clone()
}

async fn dial_one(address: &str, tls: bool, pp: Option<&[u8]>) -> std::io::Result<Box<dyn Io>> {
    let addr = resolve(address).await?;
    let mut s = TcpStream::connect(addr).await?;
    let _ = s.set_nodelay(true);
    if let Some(h) = pp {
        s.write_all(h).await?;
    }
    if !tls {
        return Ok(Box::new(s));
    }
    let cfg = backend_tls().ok_or_else(|| std::io::Error::other("no TLS client config"))?;
    let host = address
        .rsplit_once(':')
        .map_or(address, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| std::io::Error::other(format!("{host}: {e}")))?;
    let t = tokio_rustls::TlsConnector::from(cfg)
        .connect(name, s)
        .await?;
    Ok(Box::new(t))
}

/// Dial a server of `lb` for a client at `client` that reached the proxy at `local`.
pub(crate) async fn dial(
    lb: &TcpBalancer,
    client: SocketAddr,
    local: SocketAddr,
) -> Option<(Box<dyn Io>, Arc<str>)> {
    let pp = lb
        .proxy_protocol
        .map(|v| proxy_protocol::header(v, client, local));
    for server in lb.candidates() {
        match tokio::time::timeout(
            DIAL_TIMEOUT,
            dial_one(&server.address, server.tls, pp.as_deref()),
        )
        .await
        {
            Ok(Ok(io)) => return Some((io, server.address.clone())),
            Ok(Err(e)) => {
                tracing::debug!(server = %server.address, error = %e, "TCP backend dial failed");
                server.eject();
            }
            Err(_) => {
                tracing::debug!(server = %server.address, "TCP backend dial timed out");
                server.eject();
            }
        }
    }
    None
}

/// Copy both ways until both directions end (or one ends and `delay` passes). Returns the
/// bytes sent to the backend and to the client.
pub(crate) async fn pump<C, B>(client: C, backend: B, delay: Option<Duration>) -> (u64, u64)
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (cr, mut cw) = tokio::io::split(client);
    let (br, mut bw) = tokio::io::split(backend);
    let mut cr = BufReader::with_capacity(BUF, cr);
    let mut br = BufReader::with_capacity(BUF, br);
    let up = async {
        let n = tokio::io::copy_buf(&mut cr, &mut bw).await.unwrap_or(0);
        let _ = bw.shutdown().await;
        n
    };
    let down = async {
        let n = tokio::io::copy_buf(&mut br, &mut cw).await.unwrap_or(0);
        let _ = cw.shutdown().await;
        n
    };
    tokio::pin!(up, down);
    tokio::select! {
        n = &mut up => (n, rest(down, delay).await),
        n = &mut down => (rest(up, delay).await, n),
    }
}

/// The other direction, given `delay` to finish (`None`: as long as it takes).
async fn rest<F: std::future::Future<Output = u64>>(f: F, delay: Option<Duration>) -> u64 {
    match delay {
        None => f.await,
        Some(d) => tokio::time::timeout(d, f).await.unwrap_or(0),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Half-close passes through: the client's EOF reaches the backend, whose answer (sent
    /// after it saw EOF) still reaches the client.
    #[tokio::test]
    async fn half_close_passes_through() {
        let (client, proxy_c) = tokio::io::duplex(1024);
        let (proxy_b, backend) = tokio::io::duplex(1024);
        let p = tokio::spawn(pump(proxy_c, proxy_b, None));
        let (mut c, mut b) = (client, backend);
        c.write_all(b"ping").await.unwrap();
        c.shutdown().await.unwrap();
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"ping");
        b.write_all(b"pong after eof").await.unwrap();
        b.shutdown().await.unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"pong after eof");
        assert_eq!(p.await.unwrap(), (4, 14));
    }
}
