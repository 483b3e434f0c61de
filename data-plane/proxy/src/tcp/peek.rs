//! Reading a connection's first bytes without losing them: [`Peeked`] is the client socket
//! with the bytes already read in front (replayed to whoever reads next: the TCP splice, the
//! TLS acceptor or the HTTP server), and [`sniff`] reads until it knows whether the client
//! sent a TLS ClientHello and, if so, its SNI and ALPN list.
//!
//! The ClientHello is parsed by rustls' own [`rustls::server::Acceptor`] fed a copy of the
//! buffered bytes (no hand-written TLS parser); it is tried again as more bytes arrive (a
//! ClientHello may span several TCP segments or TLS records), up to [`MAX_HELLO`] bytes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Largest ClientHello buffered (a TLS record is at most 16 KiB + header; a hello may span
/// records, e.g. with post-quantum key shares).
pub(crate) const MAX_HELLO: usize = 64 * 1024;

/// The client socket, with bytes already read replayed first.
pub(crate) struct Peeked {
    prefix: Vec<u8>,
    pos: usize,
    inner: TcpStream,
}

impl Peeked {
    /// A socket nothing was read from.
    pub(crate) fn new(inner: TcpStream) -> Peeked {
        Peeked {
            prefix: Vec::new(),
            pos: 0,
            inner,
        }
    }

    /// The first byte the next reader will see, without consuming it (`None`: closed).
    pub(crate) async fn first_byte(&self) -> io::Result<Option<u8>> {
        if let Some(b) = self.prefix.get(self.pos) {
            return Ok(Some(*b));
        }
        let mut b = [0u8; 1];
        match self.inner.peek(&mut b).await? {
            0 => Ok(None),
            _ => Ok(Some(b[0])),
        }
    }

    /// The proxy's address of this connection.
    pub(crate) fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.inner.local_addr()
    }

    /// The bytes buffered and not yet replayed.
    pub(crate) fn buffered(&self) -> &[u8] {
        self.prefix.get(self.pos..).unwrap_or_default()
    }

    /// Read more bytes from the socket into the buffer; `Ok(0)`: end of stream.
    async fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 4096];
        let n = self.inner.read(&mut chunk).await?;
        self.prefix.extend_from_slice(&chunk[..n]);
        Ok(n)
    }
}

impl AsyncRead for Peeked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.prefix.len() {
            let rest = &this.prefix[this.pos..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.pos += n;
            if this.pos == this.prefix.len() {
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Peeked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// What the first bytes of a connection say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hello {
    /// Not a TLS handshake.
    Plain,
    /// A TLS ClientHello (`sni` lower-cased by rustls; `alpn` as offered).
    Tls {
        sni: Option<String>,
        alpn: Vec<String>,
    },
    /// Starts like TLS but is not a ClientHello rustls can read (the TLS path will refuse it).
    BadTls,
}

/// What `bytes` (the start of a connection) say, or `None` when more bytes are needed.
pub(crate) fn classify(bytes: &[u8]) -> Option<Hello> {
    let first = *bytes.first()?;
    // 0x16: a TLS handshake record. (0x80: SSLv2, which rustls refuses anyway.)
    if first != 0x16 {
        return Some(if first == 0x80 {
            Hello::BadTls
        } else {
            Hello::Plain
        });
    }
    let mut acceptor = rustls::server::Acceptor::default();
    let mut rd: &[u8] = bytes;
    while !rd.is_empty() {
        match acceptor.read_tls(&mut rd) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => return Some(Hello::BadTls),
        }
    }
    match acceptor.accept() {
        Ok(None) => {
            if bytes.len() >= MAX_HELLO {
                Some(Hello::BadTls)
            } else {
                None
            }
        }
        Ok(Some(accepted)) => {
            let ch = accepted.client_hello();
            let sni = ch.server_name().map(str::to_string);
            let alpn = ch
                .alpn()
                .map(|it| {
                    it.map(|p| String::from_utf8_lossy(p).into_owned())
                        .collect()
                })
                .unwrap_or_default();
            Some(Hello::Tls { sni, alpn })
        }
        Err(_) => Some(Hello::BadTls),
    }
}

/// Read from `s` until its first bytes are classified. `Ok(None)`: the client closed first.
pub(crate) async fn sniff(s: &mut Peeked) -> io::Result<Option<Hello>> {
    loop {
        if let Some(h) = classify(s.buffered()) {
            return Ok(Some(h));
        }
        if s.fill().await? == 0 {
            return Ok(None);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A real ClientHello from rustls' client.
    fn client_hello(sni: &str, alpn: &[&[u8]]) -> Vec<u8> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let mut cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
        let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(cfg), name).unwrap();
        let mut out = Vec::new();
        conn.write_tls(&mut out).unwrap();
        out
    }

    #[test]
    fn client_hellos_are_read_whole_or_asked_for_more() {
        let hello = client_hello("db.example.com", &[b"postgresql", b"h2"]);
        let want = Hello::Tls {
            sni: Some("db.example.com".into()),
            alpn: vec!["postgresql".into(), "h2".into()],
        };
        assert_eq!(classify(&hello), Some(want));
        // Any strict prefix needs more bytes.
        for cut in [1, 5, 6, hello.len() / 2, hello.len() - 1] {
            assert_eq!(classify(&hello[..cut]), None, "cut at {cut}");
        }
    }

    #[test]
    fn plain_and_garbage() {
        assert_eq!(classify(b""), None);
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(Hello::Plain));
        assert_eq!(classify(b"\x00"), Some(Hello::Plain));
        assert_eq!(classify(b"\x80\x01"), Some(Hello::BadTls));
        // A handshake record with a non-ClientHello body.
        assert_eq!(
            classify(b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00"),
            Some(Hello::BadTls)
        );
    }
}
