//! Session resumption across proxies (issue 13, Must-show 4): the control plane's leader
//! generates the TLS session-ticket keys, rotates them on a schedule (`--tls-ticket-rotation`)
//! and streams them to every proxy. A TLS 1.3 client resumes on proxy B with a ticket proxy A
//! issued; after one rotation an old ticket still resumes, after two it does not.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::{ClientSessionMemoryCache, ClientSessionStore, Resumption};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::HandshakeKind;
use serde_json::json;
use switchyard_e2e::backends::HttpBackend;
use switchyard_e2e::proxy::{Proxy, ProxySpec, PROXY_SETTLE};
use switchyard_e2e::{apply_yaml, wait_until, Cluster};

const HOST: &str = "t.test";
/// Rotation period: long enough for a loaded machine to act between two rotations.
const ROTATION: Duration = Duration::from_secs(8);

/// A client session store that can stop accepting new tickets, so the test decides which
/// tickets (issued under which key) a later handshake offers.
#[derive(Debug)]
struct Store {
    inner: ClientSessionMemoryCache,
    frozen: AtomicBool,
    tickets: AtomicUsize,
}

impl Store {
    fn new() -> Arc<Store> {
        Arc::new(Store {
            inner: ClientSessionMemoryCache::new(64),
            frozen: AtomicBool::new(false),
            tickets: AtomicUsize::new(0),
        })
    }
}

impl ClientSessionStore for Store {
    fn set_kx_hint(&self, n: ServerName<'static>, g: rustls::NamedGroup) {
        self.inner.set_kx_hint(n, g)
    }
    fn kx_hint(&self, n: &ServerName<'_>) -> Option<rustls::NamedGroup> {
        self.inner.kx_hint(n)
    }
    fn set_tls12_session(
        &self,
        n: ServerName<'static>,
        v: rustls::client::Tls12ClientSessionValue,
    ) {
        self.inner.set_tls12_session(n, v)
    }
    fn tls12_session(&self, n: &ServerName<'_>) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.inner.tls12_session(n)
    }
    fn remove_tls12_session(&self, n: &ServerName<'static>) {
        self.inner.remove_tls12_session(n)
    }
    fn insert_tls13_ticket(
        &self,
        n: ServerName<'static>,
        v: rustls::client::Tls13ClientSessionValue,
    ) {
        if !self.frozen.load(Ordering::SeqCst) {
            self.tickets.fetch_add(1, Ordering::SeqCst);
            self.inner.insert_tls13_ticket(n, v)
        }
    }
    fn take_tls13_ticket(
        &self,
        n: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.inner.take_tls13_ticket(n)
    }
}

fn client(roots: &CertificateDer<'static>, store: Arc<Store>) -> Arc<rustls::ClientConfig> {
    let mut rs = rustls::RootCertStore::empty();
    rs.add(roots.clone()).unwrap();
    let mut c = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(rs)
    .with_no_client_auth();
    c.resumption = Resumption::store(store);
    Arc::new(c)
}

/// One HTTPS request on a fresh connection: how the handshake went and the status. Reading the
/// whole answer also reads the tickets the server sent after the handshake.
fn get(addr: &str, cfg: &Arc<rustls::ClientConfig>) -> Result<(HandshakeKind, u16), String> {
    let name = ServerName::try_from(HOST.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(cfg.clone(), name).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n").as_bytes())
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut out = Vec::new();
    // A peer closing without close_notify ends the read with an error after the data.
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{addr}: no HTTP answer: {text:?}"))?;
    let kind = s.conn.handshake_kind().ok_or("handshake did not finish")?;
    Ok((kind, status))
}

#[test]
fn tickets_resume_across_proxies_and_survive_one_rotation() {
    let cluster = Cluster::start_with(1, &["--tls-ticket-rotation", "8s"]);
    let node = cluster.node(1).endpoint();
    let pa = Proxy::start(ProxySpec::new("pa", &node).entrypoints(&["websecure"]));
    let pb = Proxy::start(ProxySpec::new("pb", &node).entrypoints(&["websecure"]));
    let backend = HttpBackend::start("app");
    let ck = rcgen::generate_simple_self_signed(vec![HOST.to_string()]).unwrap();
    let root = ck.cert.der().clone();
    let doc = json!({
        "http": {
            "routers": { "app": { "rule": format!("Host(`{HOST}`)"), "entryPoints": ["websecure"],
                                  "service": "app", "tls": {} } },
            "services": { "app": { "loadBalancer": { "servers": [ { "url": backend.url() } ] } } }
        },
        "tls": { "certificates": [ { "certFile": ck.cert.pem(), "keyFile": ck.signing_key.serialize_pem() } ] }
    });
    let v = apply_yaml(&cluster.endpoints(), &doc.to_string()).expect("apply");
    pa.wait_version(v, PROXY_SETTLE);
    pb.wait_version(v, PROXY_SETTLE);
    let (a, b) = (
        pa.entry("websecure").to_string(),
        pb.entry("websecure").to_string(),
    );

    // 1. A ticket from A resumes on B (once both hold the cluster's keys).
    wait_until(
        PROXY_SETTLE,
        "a ticket from proxy A resuming on proxy B",
        || {
            let cfg = client(&root, Store::new());
            let (kind, status) = get(&a, &cfg)?;
            if kind != HandshakeKind::Full || status != 200 {
                return Err(format!("first handshake on A: {kind:?} {status}"));
            }
            match get(&b, &cfg)? {
                (HandshakeKind::Resumed, 200) => Ok(()),
                other => Err(format!("on B: {other:?}")),
            }
        },
    );
    // Proxies without the shared keys would not: each keeps its own state. B to A works too.
    let cfg = client(&root, Store::new());
    assert_eq!(get(&b, &cfg).unwrap(), (HandshakeKind::Full, 200));
    assert_eq!(get(&a, &cfg).unwrap(), (HandshakeKind::Resumed, 200));

    // 2. Tickets issued under one key (no rotation while they were issued), then frozen.
    let store = wait_until(ROTATION * 3, "tickets issued between two rotations", || {
        let before = pa.config_version()?;
        let store = Store::new();
        let cfg = client(&root, store.clone());
        for _ in 0..2 {
            get(&a, &cfg)?;
        }
        let after = pa.config_version()?;
        store.frozen.store(true, Ordering::SeqCst);
        if before == after && store.tickets.load(Ordering::SeqCst) >= 3 {
            Ok((cfg, after))
        } else {
            Err(format!(
                "versions {before} → {after}, {} tickets",
                store.tickets.load(Ordering::SeqCst)
            ))
        }
    });
    // (The same client config: rustls offers a ticket only to the config that received it.)
    let (cfg, issued_at) = store;
    // One rotation later (B holds the new key and the old one): an old ticket still resumes.
    let rotated = pb.wait_version(issued_at + 1, ROTATION * 3);
    assert_eq!(get(&b, &cfg).unwrap(), (HandshakeKind::Resumed, 200));
    // Two rotations later the old key is gone: a full handshake, still answered.
    pb.wait_version(rotated + 1, ROTATION * 3);
    assert_eq!(get(&b, &cfg).unwrap(), (HandshakeKind::Full, 200));
}
