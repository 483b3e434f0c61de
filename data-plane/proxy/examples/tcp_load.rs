//! Load tool for `scripts/bench-tcp.sh` (TCP routers): a backend and a client.
//!
//! ```text
//! tcp_load echo ADDR [CERT KEY]     # echo server; with CERT/KEY it terminates TLS
//! tcp_load bytes ADDR SNI|- SECS CONNS   # upload as fast as possible, print MB/s
//! tcp_load conns ADDR SNI|- SECS CONNS   # connect, 1-byte echo, close, in a loop; print conn/s
//! ```
//!
//! `SNI` `-` means plain TCP; a name means a TLS client (any certificate accepted) with that
//! SNI, so a passthrough proxy routes on it and the backend does the TLS. The client counts
//! bytes the backend read back (`bytes`: the echo, so every byte crossed the proxy twice; the
//! figure printed is one direction) and completed exchanges (`conns`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(s: S) {
    let (mut r, mut w) = tokio::io::split(s);
    let _ = tokio::io::copy(&mut r, &mut w).await;
    let _ = w.shutdown().await;
}

async fn serve(addr: &str, tls: Option<(String, String)>) {
    let acceptor = tls.map(|(c, k)| {
        let certs = CertificateDer::pem_file_iter(c)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(k).unwrap();
        let cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
    });
    let l = TcpListener::bind(addr).await.unwrap();
    loop {
        let Ok((s, _)) = l.accept().await else {
            continue;
        };
        let _ = s.set_nodelay(true);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                Some(a) => {
                    if let Ok(t) = a.accept(s).await {
                        echo(t).await;
                    }
                }
                None => echo(s).await,
            }
        });
    }
}

async fn connect(addr: &str, sni: &str) -> std::io::Result<Box<dyn Io>> {
    let s = TcpStream::connect(addr).await?;
    let _ = s.set_nodelay(true);
    if sni == "-" {
        return Ok(Box::new(s));
    }
    let cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(switchyard_tls::AcceptAny::new())
        .with_no_client_auth();
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let t = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, s)
        .await?;
    Ok(Box::new(t))
}

async fn bytes_worker(addr: String, sni: String, until: Instant, count: Arc<AtomicU64>) {
    let Ok(s) = connect(&addr, &sni).await else {
        return;
    };
    let (mut r, mut w) = tokio::io::split(s);
    let reader = tokio::spawn({
        let count = count.clone();
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if Instant::now() < until {
                            count.fetch_add(n as u64, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
    });
    let chunk = vec![0x5au8; 64 * 1024];
    // A write that cannot finish (a stalled peer) ends the worker shortly after the run
    // instead of hanging it.
    let deadline = tokio::time::Instant::from_std(until + Duration::from_secs(2));
    while Instant::now() < until {
        match tokio::time::timeout_at(deadline, w.write_all(&chunk)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break,
            Err(_) => {
                eprintln!("tcp_load: a write to {addr} stalled past the end of the run");
                break;
            }
        }
    }
    let _ = w.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
}

async fn conns_worker(
    addr: String,
    sni: String,
    until: Instant,
    count: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
) {
    while Instant::now() < until {
        let one = async {
            let mut s = connect(&addr, &sni).await?;
            s.write_all(b"x").await?;
            let mut b = [0u8; 1];
            s.read_exact(&mut b).await?;
            s.shutdown().await?;
            Ok::<_, std::io::Error>(())
        };
        // A stalled connection counts as an error instead of hanging the worker.
        match tokio::time::timeout(Duration::from_secs(10), one).await {
            Ok(Ok(())) => count.fetch_add(1, Ordering::Relaxed),
            _ => errors.fetch_add(1, Ordering::Relaxed),
        };
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    let usage = "usage: tcp_load echo ADDR [CERT KEY] | (bytes|conns) ADDR SNI|- SECS CONNS";
    match a.get(1).map(String::as_str) {
        Some("echo") => {
            let tls = a.get(3).zip(a.get(4)).map(|(c, k)| (c.clone(), k.clone()));
            serve(a.get(2).expect(usage), tls).await;
        }
        Some(mode @ ("bytes" | "conns")) => {
            let addr = a.get(2).expect(usage).clone();
            let sni = a.get(3).expect(usage).clone();
            let secs: u64 = a.get(4).expect(usage).parse().expect(usage);
            let n: usize = a.get(5).expect(usage).parse().expect(usage);
            let bytes = mode == "bytes";
            let count = Arc::new(AtomicU64::new(0));
            let errors = Arc::new(AtomicU64::new(0));
            let start = Instant::now();
            let until = start + Duration::from_secs(secs);
            let mut tasks = Vec::new();
            for _ in 0..n {
                let (addr, sni, count, errors) =
                    (addr.clone(), sni.clone(), count.clone(), errors.clone());
                tasks.push(tokio::spawn(async move {
                    if bytes {
                        bytes_worker(addr, sni, until, count).await;
                    } else {
                        conns_worker(addr, sni, until, count, errors).await;
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
            let secs = secs as f64;
            let total = count.load(Ordering::Relaxed) as f64;
            if bytes {
                println!("{:.1} MB/s", total / secs / 1e6);
            } else {
                println!(
                    "{:.0} conn/s ({} errors)",
                    total / secs,
                    errors.load(Ordering::Relaxed)
                );
            }
        }
        _ => eprintln!("{usage}"),
    }
}
