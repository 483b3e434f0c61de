//! Connecting a TCP route's backend and copying bytes both ways.
//!
//! The backend is dialled in the order [`TcpBalancer::candidates`] gives (a failed dial ejects
//! the server and tries the next), with the balancer's [`Dialer`] (its TCP servers transport:
//! dial timeout, keep-alive, PROXY protocol, TLS client config and server name). The PROXY protocol header, when configured, is the first
//! thing written on the backend connection (before a backend TLS handshake, as HAProxy and
//! Traefik do). Then each direction is copied with a 64 KiB buffer; when one direction ends
//! (EOF), the other side's write half is shut down (half-close passes through) and the other
//! direction gets `terminationDelay` to finish (Traefik's default 100 ms; negative: no limit)
//! before both sockets are closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::proxy_protocol;
use super::service::{resolve, Dialer, TcpBalancer, TcpServer};

/// Copy buffer per direction.
const BUF: usize = 64 * 1024;

/// A backend connection: plain or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

async fn dial_one(
    server: &TcpServer,
    d: &Dialer,
    pp: Option<&[u8]>,
) -> std::io::Result<Box<dyn Io>> {
    let address = &*server.address;
    let addr = match server.addr {
        Some(a) => a,
        None => resolve(address).await?,
    };
    let mut s = TcpStream::connect(addr).await?;
    let _ = s.set_nodelay(true);
    if let Some(period) = d.keep_alive {
        let ka = socket2::TcpKeepalive::new()
            .with_time(period)
            .with_interval(period);
        let _ = socket2::SockRef::from(&s).set_tcp_keepalive(&ka);
    }
    if let Some(h) = pp {
        s.write_all(h).await?;
    }
    if !server.tls {
        return Ok(Box::new(s));
    }
    let cfg = d
        .tls
        .clone()
        .ok_or_else(|| std::io::Error::other("no TLS client config"))?;
    let name = match &d.server_name {
        Some(n) => n.clone(),
        None => {
            let host = address
                .rsplit_once(':')
                .map_or(address, |(h, _)| h)
                .trim_start_matches('[')
                .trim_end_matches(']');
            rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| std::io::Error::other(format!("{host}: {e}")))?
        }
    };
    let t = tokio_rustls::TlsConnector::from(cfg)
        .connect(name, s)
        .await?;
    Ok(Box::new(t))
}

/// Dial a server of `lb` for a client at `client` that reached the proxy at `local`, with the
/// balancer's transport (timeout, keep-alive, PROXY protocol, TLS).
pub(crate) async fn dial(
    lb: &TcpBalancer,
    client: SocketAddr,
    local: SocketAddr,
) -> Option<(Box<dyn Io>, Arc<str>)> {
    let d = &*lb.dialer;
    let pp = d
        .proxy_protocol
        .map(|v| proxy_protocol::header(v, client, local));
    // The common case allocates nothing: the first server answers.
    let (start, first) = lb.first()?;
    if let Some(io) = attempt(first, d, pp.as_deref()).await {
        return Some((io, first.address.clone()));
    }
    // The others (the failed one is ejected now: the order puts it last; skip it).
    for server in lb
        .candidates_from(start)
        .iter()
        .filter(|s| !Arc::ptr_eq(s, first))
    {
        if let Some(io) = attempt(server, d, pp.as_deref()).await {
            return Some((io, server.address.clone()));
        }
    }
    None
}

/// One dial within the transport's timeout; a failure ejects the server.
async fn attempt(server: &TcpServer, d: &Dialer, pp: Option<&[u8]>) -> Option<Box<dyn Io>> {
    let dial = dial_one(server, d, pp);
    let r = match d.timeout {
        Some(t) => tokio::time::timeout(t, dial).await,
        None => Ok(dial.await),
    };
    match r {
        Ok(Ok(io)) => return Some(io),
        Ok(Err(e)) => {
            tracing::debug!(server = %server.address, error = %e, "TCP backend dial failed");
        }
        Err(_) => tracing::debug!(server = %server.address, "TCP backend dial timed out"),
    }
    server.eject();
    None
}

/// Copy both ways until both directions end (or one ends and `delay` passes). Returns the
/// bytes sent to the backend and to the client.
pub(crate) async fn pump<C, B>(client: C, backend: B, delay: Option<Duration>) -> (u64, u64)
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut br, mut bw) = tokio::io::split(backend);
    let up = async {
        let n = copy(&mut cr, &mut bw).await;
        let _ = bw.shutdown().await;
        n
    };
    let down = async {
        let n = copy(&mut br, &mut cw).await;
        let _ = cw.shutdown().await;
        n
    };
    tokio::pin!(up, down);
    tokio::select! {
        n = &mut up => (n, rest(down, delay).await),
        n = &mut down => (rest(up, delay).await, n),
    }
}

/// Copy `r` to `w` until EOF or an error; returns the bytes copied. The buffer is allocated,
/// not zeroed (`read_buf` fills its spare capacity): a connection costs no 64 KiB memset per
/// direction. Each chunk is flushed (a TLS writer sends its records at once).
async fn copy<R, W>(r: &mut R, w: &mut W) -> u64
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf: Vec<u8> = Vec::with_capacity(BUF);
    let mut total = 0u64;
    loop {
        buf.clear();
        match r.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return total,
            Ok(n) => {
                if w.write_all(&buf).await.is_err() || w.flush().await.is_err() {
                    return total;
                }
                total += n as u64;
            }
        }
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
