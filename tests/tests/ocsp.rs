//! OCSP stapling (issue 13, Must-show 3) and TLS changes as deltas (issue 12, Must-show 3).
//!
//! A test CA issues a leaf whose Authority Information Access names a test OCSP responder
//! (`switchyard_e2e::ocsp`). The control plane's leader fetches a response once for the cluster,
//! commits it, and every proxy staples it: a client asking for the status (`status_request`)
//! gets a `good` response for exactly that certificate. With the responder down, the refresh
//! fails (counted on the leader only) and the last response stays stapled until its
//! `nextUpdate`; after it the certificate is served without a staple. No handshake ever fails.
//! Staples reach proxies in snapshots (a proxy attached later) and as deltas, like a renewed
//! certificate (`switchyard_proxy_config_deltas_total` counts the applies that came as deltas).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::json;
use switchyard_e2e::backends::HttpBackend;
use switchyard_e2e::ocsp::{parse_staple, OcspResponder, StapleInfo, TestCa};
use switchyard_e2e::proxy::{Proxy, ProxySpec, PROXY_SETTLE};
use switchyard_e2e::{apply_yaml, wait_until, Cluster};

const HOST: &str = "o.test";
const FAILED: &str = "switchyard_ocsp_fetches_total{result=\"failed\"}";
const STAPLED: &str = "switchyard_ocsp_fetches_total{result=\"stapled\"}";

/// Verifies the chain against the test CA (webpki) and records the stapled OCSP response.
#[derive(Debug)]
struct Capture {
    inner: Arc<WebPkiServerVerifier>,
    ocsp: Mutex<Vec<u8>>,
}

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.ocsp.lock().unwrap() = ocsp_response.to_vec();
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(m, c, d)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// One HTTPS request on a fresh connection (the client sends `status_request`, as rustls
/// always does): the status, the served leaf and the stapled response (empty: none).
fn get(ca: &TestCa, addr: &str) -> Result<(u16, Vec<u8>, Vec<u8>), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca.der.clone())).unwrap();
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    let capture = Arc::new(Capture {
        inner,
        ocsp: Mutex::new(Vec::new()),
    });
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(capture.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(HOST.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n").as_bytes())
        .map_err(|e| format!("{addr}: handshake or write: {e}"))?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{addr}: no HTTP answer: {text:?}"))?;
    let leaf = s.conn.peer_certificates().ok_or("no certificate")?[0].to_vec();
    let ocsp = capture.ocsp.lock().unwrap().clone();
    Ok((status, leaf, ocsp))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A request that must succeed (200, the expected leaf), and what it stapled. A stapled response
/// must be a `good` one for `serial`, and never past its `nextUpdate`.
fn must_serve(ca: &TestCa, addr: &str, leaf_der: &[u8], serial: &[u8]) -> Option<StapleInfo> {
    // The proxy decides after this instant, so a staple it sends has nextUpdate > `before`.
    let before = now();
    let (status, leaf, ocsp) = get(ca, addr).unwrap_or_else(|e| panic!("handshake failed: {e}"));
    assert_eq!(status, 200);
    assert_eq!(leaf, leaf_der, "the proxy served another certificate");
    if ocsp.is_empty() {
        return None;
    }
    let info = parse_staple(&ocsp).expect("the staple is an OCSP response");
    assert_eq!(info.status, "good", "{info:?}");
    assert_eq!(info.serial, serial, "a staple for another certificate");
    assert!(
        info.next_update > before,
        "a response past its nextUpdate was stapled: {info:?} at {before}"
    );
    Some(info)
}

fn doc(backend: &str, chain: &str, key: &str) -> String {
    json!({
        "http": {
            "routers": { "app": { "rule": format!("Host(`{HOST}`)"), "entryPoints": ["websecure"],
                                  "service": "app", "tls": {} } },
            "services": { "app": { "loadBalancer": { "servers": [ { "url": backend } ] } } }
        },
        "tls": { "certificates": [ { "certFile": chain, "keyFile": key } ] }
    })
    .to_string()
}

#[test]
fn a_good_response_is_stapled_and_outlives_its_responder_until_next_update() {
    // Responses valid for 24 s: the leader refreshes at 12 s, the staple expires at 24 s.
    const VALIDITY: Duration = Duration::from_secs(24);
    let ca = Arc::new(TestCa::new("Switchyard OCSP test CA"));
    let mut responder = OcspResponder::start(ca.clone(), VALIDITY);
    let leaf = ca.leaf(&[HOST], Some(&responder.url()), 0x1234);
    let cluster = Cluster::start(3);
    let endpoints = cluster.endpoints();
    let proxy =
        Proxy::start(ProxySpec::new("pa", &cluster.node(1).endpoint()).entrypoints(&["websecure"]));
    let backend = HttpBackend::start("app");
    let v = apply_yaml(
        &endpoints,
        &doc(&backend.url(), &leaf.chain_pem, &leaf.key_pem),
    )
    .expect("apply");
    proxy.wait_version(v, PROXY_SETTLE);
    let addr = proxy.entry("websecure").to_string();

    // 1. The leader fetches a response; the proxy staples it.
    let first = wait_until(PROXY_SETTLE, "a stapled good response", || {
        must_serve(&ca, &addr, &leaf.der, &leaf.serial).ok_or("no staple yet")
    });
    // Fetched once for the cluster: by the leader, never by the followers.
    let leader = cluster.wait_for_leader(PROXY_SETTLE);
    assert!(cluster.node(leader).metric(STAPLED).unwrap() >= 1.0);
    for id in cluster.ids().into_iter().filter(|id| *id != leader) {
        let m = cluster.node(id).metrics().unwrap();
        assert_eq!(
            switchyard_e2e::metric_value(&m, STAPLED).unwrap_or(0.0),
            0.0,
            "node {id} is a follower and fetched OCSP"
        );
    }
    assert!(responder.requests() >= 1);
    // `get certs` shows the staple on every node.
    for id in cluster.ids() {
        let ep = cluster.node(id).endpoint();
        wait_until(
            PROXY_SETTLE,
            &format!("node {id} listing the staple"),
            || {
                let row = switchyard_e2e::acme::cert(&ep, "tls.certificates[0]")?;
                let next = row["ocspNextUpdateUnix"].as_i64().unwrap_or(0);
                if row["ocspStatus"] == "good" && next >= first.next_update as i64 {
                    Ok(())
                } else {
                    Err(format!("{row}"))
                }
            },
        );
    }

    // 2. The responder goes down. The refresh (halfway) fails; the staple stays.
    responder.stop();
    wait_until(VALIDITY, "the leader's OCSP refresh failing", || {
        let staple = must_serve(&ca, &addr, &leaf.der, &leaf.serial);
        let failed = cluster.node(leader).metric(FAILED).unwrap_or(0.0);
        match staple {
            Some(_) if failed >= 1.0 => Ok(()),
            // Expired before the failure was seen: only possible on a stalled machine.
            None if now() >= first.next_update => panic!("no failed refresh seen before expiry"),
            None => panic!("the staple was dropped while still valid"),
            Some(_) => Err(format!("{failed} failed fetches")),
        }
    });
    // Still stapled after the failure (and every handshake above succeeded).
    let kept = must_serve(&ca, &addr, &leaf.der, &leaf.serial)
        .expect("the last response stays stapled while the responder is down");
    assert!(kept.next_update >= first.next_update);

    // 3. Past nextUpdate it is no longer stapled; the handshake still succeeds.
    wait_until(
        VALIDITY + Duration::from_secs(15),
        "the expired staple no longer sent",
        || match must_serve(&ca, &addr, &leaf.der, &leaf.serial) {
            None => Ok(()),
            Some(s) => Err(format!("still stapled: {s:?}")),
        },
    );
    assert!(now() >= kept.next_update.saturating_sub(1));
}

#[test]
fn certificate_and_staple_changes_reach_the_proxy_as_deltas() {
    let ca = Arc::new(TestCa::new("Switchyard OCSP test CA"));
    let responder = OcspResponder::start(ca.clone(), Duration::from_secs(3600));
    let cluster = Cluster::start(1);
    let endpoints = cluster.endpoints();
    let proxy =
        Proxy::start(ProxySpec::new("pa", &cluster.node(1).endpoint()).entrypoints(&["websecure"]));
    let backend = HttpBackend::start("app");
    let first = ca.leaf(&[HOST], Some(&responder.url()), 1);
    let v = apply_yaml(
        &endpoints,
        &doc(&backend.url(), &first.chain_pem, &first.key_pem),
    )
    .expect("apply");
    proxy.wait_version(v, PROXY_SETTLE);
    let addr = proxy.entry("websecure").to_string();
    wait_until(PROXY_SETTLE, "the first certificate stapled", || {
        must_serve(&ca, &addr, &first.der, &first.serial).ok_or("no staple yet")
    });
    // A proxy attached now gets the staple in its first snapshot.
    let late =
        Proxy::start(ProxySpec::new("pb", &cluster.node(1).endpoint()).entrypoints(&["websecure"]));
    late.wait_version(proxy.config_version().unwrap(), PROXY_SETTLE);
    let late_addr = late.entry("websecure").to_string();
    assert!(
        must_serve(&ca, &late_addr, &first.der, &first.serial).is_some(),
        "a proxy that got the config as a snapshot staples too"
    );
    let counts = || {
        let m = proxy.metrics().unwrap();
        let get = |n: &str| switchyard_e2e::metric_value(&m, n).unwrap_or(0.0);
        (
            get("switchyard_proxy_config_applies_total"),
            get("switchyard_proxy_config_deltas_total"),
        )
    };
    let (applies0, deltas0) = counts();
    assert!(applies0 >= 1.0);

    // A renewed certificate (new key, new serial) replaces the first for the host; the leader
    // then fetches and commits its staple. Both travel as deltas.
    let renewed = ca.leaf(&[HOST], Some(&responder.url()), 2);
    let v2 = apply_yaml(
        &endpoints,
        &doc(&backend.url(), &renewed.chain_pem, &renewed.key_pem),
    )
    .expect("apply the renewed certificate");
    proxy.wait_version(v2, PROXY_SETTLE);
    let (status, leaf, _) = get(&ca, &addr).expect("handshake");
    assert_eq!((status, leaf), (200, renewed.der.clone()));
    wait_until(PROXY_SETTLE, "the renewed certificate stapled", || {
        must_serve(&ca, &addr, &renewed.der, &renewed.serial).ok_or("no staple yet")
    });
    let (applies, deltas) = counts();
    assert!(
        applies - applies0 >= 2.0,
        "the certificate and its staple are two versions: {applies0} → {applies} applies"
    );
    assert_eq!(
        applies - applies0,
        deltas - deltas0,
        "every version since the first snapshot came as a delta ({applies0}/{deltas0} → {applies}/{deltas} applies/deltas)"
    );
}
