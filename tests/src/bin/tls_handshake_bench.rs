//! Load tool for the TLS resumption figures in BENCHMARKS.md: new TLS 1.3 connections, each
//! one `GET` with `Connection: close`, alternating between two proxies.
//!
//! `tls_handshake_bench ADDR_A ADDR_B HOST CONNS_PER_WORKER_OR_SECONDS MODE [WORKERS]`
//!
//! * `MODE=full`: resumption disabled; every connection is a full handshake.
//! * `MODE=resume`: each worker keeps its session tickets; its first connection (to A) is full,
//!   then it alternates B, A, B, …, so every later handshake resumes with a ticket the *other*
//!   proxy issued (possible only with the cluster's shared ticket keys).
//!
//! Prints connections/s and how many handshakes were full and resumed. The server certificate is
//! not verified (handshake signatures are), as for wrk.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, HandshakeKind, SignatureScheme};

#[derive(Debug)]
struct NoCertCheck(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoCertCheck {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn one(cfg: &Arc<rustls::ClientConfig>, addr: &str, host: &str) -> Result<HandshakeKind> {
    let name = ServerName::try_from(host.to_string())?;
    let conn = rustls::ClientConnection::new(cfg.clone(), name)?;
    let tcp = TcpStream::connect(addr).with_context(|| addr.to_string())?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    if !out.starts_with(b"HTTP/1.1 200") {
        bail!(
            "{addr}: {:?}",
            String::from_utf8_lossy(&out[..out.len().min(80)])
        );
    }
    s.conn
        .handshake_kind()
        .ok_or_else(|| anyhow!("handshake did not finish"))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        bail!("usage: tls_handshake_bench ADDR_A ADDR_B HOST SECONDS full|resume [WORKERS]");
    }
    let (a, b, host) = (args[1].clone(), args[2].clone(), args[3].clone());
    let secs: u64 = args[4].parse().context("SECONDS")?;
    let resume = match args[5].as_str() {
        "full" => false,
        "resume" => true,
        m => bail!("MODE must be full or resume, not {m}"),
    };
    let workers: usize = args.get(6).map_or(Ok(16), |w| w.parse())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let full = Arc::new(AtomicU64::new(0));
    let resumed = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (a, b, host) = (a.clone(), b.clone(), host.clone());
            let (full, resumed, errors) = (full.clone(), resumed.clone(), errors.clone());
            let provider = provider.clone();
            std::thread::spawn(move || {
                let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
                    .with_protocol_versions(&[&rustls::version::TLS13])
                    .expect("TLS 1.3")
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(NoCertCheck(provider)))
                    .with_no_client_auth();
                cfg.resumption = if resume {
                    Resumption::in_memory_sessions(8)
                } else {
                    Resumption::disabled()
                };
                let cfg = Arc::new(cfg);
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let addr = if i & 1 == 0 { &a } else { &b };
                    i += 1;
                    match one(&cfg, addr, &host) {
                        Ok(HandshakeKind::Resumed) => resumed.fetch_add(1, Ordering::Relaxed),
                        Ok(_) => full.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                                eprintln!("error: {e:#}");
                            }
                            0
                        }
                    };
                }
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| anyhow!("worker panicked"))?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (f, r, e) = (
        full.load(Ordering::Relaxed),
        resumed.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
    );
    println!(
        "{:<8} {:>8} workers {:>10.0} conns/s {:>8} full {:>8} resumed {:>5} errors",
        args[5],
        workers,
        (f + r) as f64 / elapsed,
        f,
        r,
        e
    );
    Ok(())
}
