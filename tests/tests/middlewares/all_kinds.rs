//! Issue 9, must show 1: one configuration with a router for every HTTP middleware kind of
//! Traefik v3 (the list of `../shared/reference/traefik-v3.md` §2, `ipWhiteList` included),
//! applied through `switchyard apply`, served by a proxy (one request per router, each with
//! the status that kind gives it), and `get config -o yaml | apply -f -` changes nothing.
//! `passTLSClientCert` and `grpcWeb` are checked in depth here: a client presenting a
//! certificate chain over mutual TLS, and a gRPC-Web call to a real gRPC (tonic) service.

use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;
use serde_json::{json, Value};
use std::time::Duration;
use switchyard_e2e::backends::{block_on, GrpcBackend};
use switchyard_e2e::client::{fetch, Req, Resp};
use switchyard_e2e::proxy::{Proxy, ProxySpec, PROXY_SETTLE};
use switchyard_e2e::{cli, cli_stdin, config_version, wait_until, Cluster};

use super::{forwardauth, start_backend, APR1_TEST, DIGEST_TEST};

/// Traefik v3's HTTP middlewares (OSS), as the reference lists them.
const KINDS: [&str; 25] = [
    "addPrefix",
    "basicAuth",
    "buffering",
    "chain",
    "circuitBreaker",
    "compress",
    "contentType",
    "digestAuth",
    "encodedCharacters",
    "errors",
    "forwardAuth",
    "grpcWeb",
    "headers",
    "ipAllowList",
    "ipWhiteList",
    "inFlightReq",
    "passTLSClientCert",
    "rateLimit",
    "redirectRegex",
    "redirectScheme",
    "replacePath",
    "replacePathRegex",
    "retry",
    "stripPrefix",
    "stripPrefixRegex",
];

/// (kind, middleware options, request path, expected status)
fn routes(auth: &str) -> Vec<(&'static str, Value, &'static str, u16)> {
    vec![
        ("addPrefix", json!({"prefix": "/pre"}), "/foo", 200),
        ("basicAuth", json!({"users": [APR1_TEST]}), "/foo", 401),
        (
            "buffering",
            json!({"maxRequestBodyBytes": 1000, "maxResponseBodyBytes": 100000, "retryExpression": "IsNetworkError() && Attempts() < 2"}),
            "/foo",
            200,
        ),
        (
            "chain",
            json!({"middlewares": ["k-stripPrefix", "k-addPrefix"]}),
            "/strip/foo",
            200,
        ),
        (
            "circuitBreaker",
            json!({"expression": "NetworkErrorRatio() > 0.5"}),
            "/foo",
            200,
        ),
        (
            "compress",
            json!({"encodings": ["zstd", "gzip"]}),
            "/foo",
            200,
        ),
        ("contentType", json!({}), "/foo?ct=&len=10", 200),
        ("digestAuth", json!({"users": [DIGEST_TEST]}), "/foo", 401),
        (
            "encodedCharacters",
            json!({"allowEncodedHash": true}),
            "/a%2Fb",
            400,
        ),
        (
            "errors",
            json!({"status": ["500-599"], "service": "pages", "query": "/page?s={status}"}),
            "/foo?status=503",
            503,
        ),
        (
            "forwardAuth",
            json!({"address": format!("http://{auth}/echo"), "authResponseHeaders": ["X-Seen-Method"]}),
            "/foo",
            200,
        ),
        (
            "grpcWeb",
            json!({"allowOrigins": ["https://app.test"]}),
            "/foo",
            200,
        ),
        (
            "headers",
            json!({"customResponseHeaders": {"X-All": "1"}, "frameDeny": true}),
            "/foo",
            200,
        ),
        (
            "ipAllowList",
            json!({"sourceRange": ["10.0.0.0/8"]}),
            "/foo",
            403,
        ),
        (
            "ipWhiteList",
            json!({"sourceRange": ["127.0.0.1/32"]}),
            "/foo",
            200,
        ),
        ("inFlightReq", json!({"amount": 10}), "/foo", 200),
        ("passTLSClientCert", json!({"pem": true}), "/foo", 200),
        (
            "rateLimit",
            json!({"average": 1000, "burst": 1000}),
            "/foo",
            200,
        ),
        (
            "redirectRegex",
            json!({"regex": "^http://([^/]+)/(.*)", "replacement": "https://elsewhere.test/${2}"}),
            "/foo",
            302,
        ),
        (
            "redirectScheme",
            json!({"scheme": "https", "permanent": true}),
            "/foo",
            301,
        ),
        ("replacePath", json!({"path": "/replaced"}), "/foo", 200),
        (
            "replacePathRegex",
            json!({"regex": "^/foo/(.*)", "replacement": "/bar/$1"}),
            "/foo/x",
            200,
        ),
        (
            "retry",
            json!({"attempts": 2, "initialInterval": "10ms"}),
            "/foo",
            200,
        ),
        (
            "stripPrefix",
            json!({"prefixes": ["/strip"]}),
            "/strip/foo",
            200,
        ),
        (
            "stripPrefixRegex",
            json!({"regex": ["/[a-z]+/"]}),
            "/abc/foo",
            200,
        ),
    ]
}

/// A CA and a client certificate with every field Traefik can pass.
struct ClientPki {
    chain_pem: String,
    key_pem: String,
    ders: Vec<CertificateDer<'static>>,
}

fn client_pki() -> ClientPki {
    use rcgen::{DnType, SanType};
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CountryName, "FR");
    ca.distinguished_name
        .push(DnType::OrganizationName, "Cheese CA");
    ca.distinguished_name.push(DnType::CommonName, "test CA");
    ca.serial_number = Some(rcgen::SerialNumber::from(7u64));
    ca.not_before = rcgen::date_time_ymd(2024, 6, 1);
    ca.not_after = rcgen::date_time_ymd(2034, 6, 1);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, &ca_key);

    let mut leaf = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.distinguished_name.push(
        DnType::CustomDnType(vec![0, 9, 2342, 19_200_300, 100, 1, 25]),
        "client",
    );
    leaf.distinguished_name.push(DnType::CountryName, "FR");
    leaf.distinguished_name
        .push(DnType::StateOrProvinceName, "Occitanie");
    leaf.distinguished_name
        .push(DnType::LocalityName, "Toulouse");
    leaf.distinguished_name
        .push(DnType::OrganizationName, "Cheese");
    leaf.distinguished_name
        .push(DnType::OrganizationalUnitName, "Tests");
    leaf.distinguished_name
        .push(DnType::CommonName, "client.test");
    leaf.subject_alt_names = vec![
        SanType::DnsName("client.test".try_into().unwrap()),
        SanType::Rfc822Name("me@client.test".try_into().unwrap()),
        SanType::IpAddress("10.1.2.3".parse().unwrap()),
        SanType::URI("spiffe://client.test/a".try_into().unwrap()),
    ];
    leaf.serial_number = Some(rcgen::SerialNumber::from(123_456_789u64));
    leaf.not_before = rcgen::date_time_ymd(2025, 1, 2);
    leaf.not_after = rcgen::date_time_ymd(2030, 3, 4);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    ClientPki {
        chain_pem: format!("{}{}", cert.pem(), ca_cert.pem()),
        key_pem: key.serialize_pem(),
        ders: vec![cert.der().clone(), ca_cert.der().clone()],
    }
}

#[derive(Debug)]
struct ClientCert(Arc<CertifiedKey>);

impl rustls::client::ResolvesClientCert for ClientCert {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

/// GET `path` over TLS (SNI and Host `host`), presenting `pki`'s chain when given:
/// (status, body).
async fn tls_get(
    addr: &str,
    host: &str,
    path: &str,
    pki: Option<&ClientPki>,
) -> Result<(u16, Bytes), String> {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::TokioIo;
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(switchyard_tls::AcceptAny::new());
    let mut cfg = b.with_no_client_auth();
    if let Some(p) = pki {
        let certs = CertificateDer::pem_slice_iter(p.chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(p.key_pem.as_bytes()).unwrap();
        let ck = CertifiedKey::from_der(certs, key, &provider).unwrap();
        cfg.client_auth_cert_resolver = Arc::new(ClientCert(Arc::new(ck)));
    }
    let step = std::time::Duration::from_secs(20);
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let tls = tokio::time::timeout(
        step,
        tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(ServerName::try_from(host.to_string()).unwrap(), tcp),
    )
    .await
    .map_err(|_| "handshake timed out".to_string())?
    .map_err(|e| e.to_string())?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let resp = tokio::time::timeout(
        step,
        send.send_request(
            http::Request::get(path)
                .header("host", host)
                .body(Empty::<Bytes>::new())
                .unwrap(),
        ),
    )
    .await
    .map_err(|_| "timeout".to_string())?
    .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

/// Go's `url.QueryUnescape`.
fn query_unescape(s: &str) -> String {
    super::percent_decode(&s.replace('+', " "))
}

/// gRPC-Web messages of a response body: (flag, payload).
fn messages(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while b.len() >= 5 {
        let n = u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize;
        assert!(b.len() >= 5 + n, "truncated gRPC-Web message in {b:?}");
        out.push((b[0], b[5..5 + n].to_vec()));
        b = &b[5 + n..];
    }
    assert!(b.is_empty(), "trailing bytes {b:?}");
    out
}

/// A gRPC-Web `grpc.health.v1.Health/Check` through the proxy reaches tonic as gRPC, and its
/// answer (SERVING) and trailers (`grpc-status: 0`) come back as gRPC-Web.
fn grpc_web_round_trip(addr: &str) {
    let call = |ct: &str, body: &[u8]| -> Resp {
        fetch(
            addr,
            &Req::get("k-grpcweb-h2.test", "/grpc.health.v1.Health/Check")
                .method("POST")
                .header("Content-Type", ct)
                .header("Origin", "https://app.test")
                .header("X-Grpc-Web", "1")
                .body(body.to_vec()),
        )
        .unwrap()
    };
    let r = call("application/grpc-web+proto", b"\0\0\0\0\0");
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/grpc-web"),
        "tonic answers application/grpc: {r}"
    );
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("https://app.test"),
        "{r}"
    );
    let expose = r
        .header("access-control-expose-headers")
        .unwrap_or_default();
    assert!(
        expose.contains("Content-Type") && expose.ends_with("grpc-status, grpc-message"),
        "{r}"
    );
    let msgs = messages(&r.body);
    assert_eq!(msgs.len(), 2, "{r}");
    assert_eq!(
        msgs[0],
        (0, vec![8, 1]),
        "HealthCheckResponse{{status: SERVING}}: {r}"
    );
    assert_eq!(msgs[1].0, 0x80, "{r}");
    let trailers = String::from_utf8(msgs[1].1.clone()).unwrap();
    assert!(trailers.contains("grpc-status: 0\r\n"), "{trailers:?}");
    assert!(
        trailers.ends_with("\r\n") && trailers == trailers.to_lowercase(),
        "{trailers:?}"
    );

    // Text mode: base64 both ways (one padded piece per frame).
    let r = call("application/grpc-web-text", b"AAAAAAA=");
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/grpc-web-text"),
        "{r}"
    );
    let text = r.text();
    // Padded pieces: every 4-character group decodes on its own.
    let mut raw = Vec::new();
    for group in text.as_bytes().chunks(4) {
        use base64::Engine as _;
        raw.extend(
            base64::engine::general_purpose::STANDARD
                .decode(group)
                .unwrap(),
        );
    }
    let msgs = messages(&raw);
    assert_eq!(msgs[0], (0, vec![8, 1]), "{text}");
    assert_eq!(msgs.last().unwrap().0, 0x80, "{text}");

    // An unknown service: tonic answers with a trailers-only response (status in headers).
    let r = fetch(
        addr,
        &Req::get("k-grpcweb-h2.test", "/grpc.health.v1.Health/Nope")
            .method("POST")
            .header("Content-Type", "application/grpc-web")
            .body(b"\0\0\0\0\0".to_vec()),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(
        r.header("grpc-status").as_deref(),
        Some("12"),
        "UNIMPLEMENTED: {r}"
    );
}

pub(crate) fn run() {
    let backend = start_backend();
    let auth = forwardauth::start_auth_server().to_string();
    let grpc = GrpcBackend::start();
    let (closed, closed2) = (switchyard_e2e::free_addr(), switchyard_e2e::free_addr());
    let pki = client_pki();
    let dir = tempfile::tempdir().unwrap();
    let server =
        rcgen::generate_simple_self_signed(vec!["k-passtlsclientcert.test".to_string()]).unwrap();
    let (cert_file, key_file) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    std::fs::write(&cert_file, server.cert.pem()).unwrap();
    std::fs::write(&key_file, server.signing_key.serialize_pem()).unwrap();

    let routes = routes(&auth);
    let kinds: Vec<&str> = routes.iter().map(|r| r.0).collect();
    assert_eq!(
        kinds, KINDS,
        "one router per Traefik v3 HTTP middleware kind"
    );
    let mut doc = String::from("http:\n  routers:\n");
    for (kind, _, _, _) in &routes {
        let host = format!("k-{}.test", kind.to_lowercase());
        let tls = if *kind == "passTLSClientCert" {
            ", tls: {options: mtls}"
        } else {
            ""
        };
        writeln!(
            doc,
            "    r-{kind}: {{rule: \"Host(`{host}`)\", service: svc, middlewares: [k-{kind}]{tls}}}"
        )
        .unwrap();
    }
    doc.push_str("    info: {rule: \"Host(`k-passtlsclientcert.test`) && Path(`/info`)\", service: svc, middlewares: [info], tls: {options: mtls}}\n");
    doc.push_str(
        "    b-retry: {rule: \"Host(`b-retry.test`)\", service: flaky-a, middlewares: [b-retry]}\n",
    );
    doc.push_str(
        "    b-once: {rule: \"Host(`b-once.test`)\", service: flaky-b, middlewares: [b-once]}\n",
    );
    doc.push_str("    grpcweb-h2: {rule: \"Host(`k-grpcweb-h2.test`)\", service: grpc, middlewares: [k-grpcWeb]}\n");
    doc.push_str("  middlewares:\n");
    for (kind, opts, _, _) in &routes {
        writeln!(doc, "    k-{kind}: {}", json!({ *kind: opts })).unwrap();
    }
    doc.push_str(
        "    b-retry: {buffering: {retryExpression: \"IsNetworkError() && Attempts() < 3\"}}\n",
    );
    doc.push_str("    b-once: {buffering: {}}\n");
    // A forwardAuth with a client certificate: its key is a secret `get config` redacts.
    let leaf_cert = pki
        .chain_pem
        .split_inclusive("-----END CERTIFICATE-----\n")
        .next()
        .unwrap();
    writeln!(
        doc,
        "    fa-tls: {}",
        json!({"forwardAuth": {"address": format!("https://{auth}/echo"), "tls": {"cert": leaf_cert, "key": pki.key_pem}}})
    )
    .unwrap();
    doc.push_str("    info: {passTLSClientCert: {pem: true, info: {notAfter: true, notBefore: true, sans: true, serialNumber: true, subject: {country: true, province: true, locality: true, organization: true, organizationalUnit: true, commonName: true, serialNumber: true, domainComponent: true}, issuer: {country: true, province: true, locality: true, organization: true, commonName: true, serialNumber: true, domainComponent: true}}}}\n");
    writeln!(
        doc,
        "  services:\n    svc: {{loadBalancer: {{servers: [{{url: \"http://{backend}\"}}]}}}}\n    pages: {{loadBalancer: {{servers: [{{url: \"http://{backend}\"}}]}}}}\n    flaky-a: {{loadBalancer: {{servers: [{{url: \"http://{closed}\"}}, {{url: \"http://{closed2}\"}}, {{url: \"http://{backend}\"}}]}}}}\n    flaky-b: {{loadBalancer: {{servers: [{{url: \"http://{closed}\"}}, {{url: \"http://{closed2}\"}}, {{url: \"http://{backend}\"}}]}}}}\n    grpc: {{loadBalancer: {{servers: [{{url: \"{}\"}}]}}}}\ntls:\n  certificates:\n    - {{certFile: {}, keyFile: {}}}\n  options:\n    mtls: {{clientAuth: {{clientAuthType: RequireAnyClientCert}}}}",
        grpc.h2c_url(),
        json!(cert_file.display().to_string()),
        json!(key_file.display().to_string()),
    )
    .unwrap();
    let file = dir.path().join("all.yaml");
    std::fs::write(&file, &doc).unwrap();

    let c = Cluster::start(1);
    let proxy =
        Proxy::start(ProxySpec::new("p1", &c.endpoints()).entrypoints(&["web", "websecure"]));
    let out = cli(
        &c.endpoints(),
        &["-o", "json", "apply", "-f", file.to_str().unwrap()],
    );
    assert!(out.success(), "apply failed: {out}");
    let version = out.json()["version"].as_u64().unwrap();
    proxy.wait_version(version, PROXY_SETTLE);

    // A request per router, with the status its kind gives.
    let mut failures = Vec::new();
    for (kind, _, path, want) in &routes {
        let host = format!("k-{}.test", kind.to_lowercase());
        let got = if *kind == "passTLSClientCert" {
            block_on(tls_get(proxy.entry("websecure"), &host, path, Some(&pki))).map(|(s, b)| {
                let echo: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
                (
                    s,
                    echo["headers"]["x-forwarded-tls-client-cert"]
                        .as_str()
                        .map(str::to_string),
                )
            })
        } else {
            let mut req = Req::get(&host, path);
            if *kind == "buffering" {
                req = req.method("POST").body(&b"0123456789"[..]);
            }
            fetch(proxy.web(), &req).map(|r| (r.status, None))
        };
        match got {
            Ok((s, _)) if s != *want => {
                failures.push(format!("{kind}: status {s}, expected {want}"))
            }
            Ok(_) => {}
            Err(e) => failures.push(format!("{kind}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // passTLSClientCert in depth: the chain the client presented, as Traefik passes it.
    let (status, body) = block_on(tls_get(
        proxy.entry("websecure"),
        "k-passtlsclientcert.test",
        "/foo",
        Some(&pki),
    ))
    .unwrap();
    assert_eq!(status, 200);
    let echo: Value = serde_json::from_slice(&body).unwrap();
    use base64::Engine as _;
    let b64 = |d: &CertificateDer<'_>| base64::engine::general_purpose::STANDARD.encode(d);
    assert_eq!(
        echo["headers"]["x-forwarded-tls-client-cert"].as_str(),
        Some(format!("{},{}", b64(&pki.ders[0]), b64(&pki.ders[1])).as_str()),
        "PEM bodies of the leaf and the CA, in the order sent"
    );
    // Every info field (the `info` router serves `/info`).
    let (status, body) = block_on(tls_get(
        proxy.entry("websecure"),
        "k-passtlsclientcert.test",
        "/info",
        Some(&pki),
    ))
    .unwrap();
    assert_eq!(status, 200);
    let echo: Value = serde_json::from_slice(&body).unwrap();
    let raw = echo["headers"]["x-forwarded-tls-client-cert-info"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        !raw.contains(['"', ';', ',', ' ']),
        "the info header is query-escaped: {raw}"
    );
    let info = query_unescape(&raw);
    assert_eq!(
        info,
        concat!(
            r#"Subject="DC=client,C=FR,ST=Occitanie,L=Toulouse,O=Cheese,OU=Tests,CN=client.test";"#,
            r#"Issuer="C=FR,O=Cheese CA,CN=test CA";SerialNumber="123456789";"#,
            r#"NB="1735776000";NA="1898812800";"#,
            r#"SAN="client.test,me@client.test,10.1.2.3,spiffe://client.test/a","#,
            r#"Subject="C=FR,O=Cheese CA,CN=test CA";Issuer="C=FR,O=Cheese CA,CN=test CA";"#,
            r#"SerialNumber="7";NB="1717200000";NA="2032732800""#
        )
    );
    // Without a client certificate the handshake is refused (RequireAnyClientCert).
    assert!(
        block_on(tls_get(
            proxy.entry("websecure"),
            "k-passtlsclientcert.test",
            "/foo",
            None
        ))
        .is_err(),
        "a client without a certificate was served"
    );

    grpc_web_round_trip(proxy.web());
    buffered_requests_are_retried(proxy.web());

    // `get config -o yaml | apply -f -` is a no-op. (The TLS router makes the leader commit
    // the session-ticket keys once, a version of its own: wait for it first.)
    let endpoints = c.endpoints();
    wait_until(
        Duration::from_secs(60),
        "the cluster's session-ticket keys committed",
        || {
            if std::fs::read_to_string(c.node(1).log_path())
                .unwrap_or_default()
                .contains("TLS session-ticket keys rotated")
            {
                Ok(())
            } else {
                Err("not yet")
            }
        },
    );
    let version = config_version(&endpoints);
    let yaml = cli(&endpoints, &["-o", "yaml", "get", "config"]).expect_success();
    let key_body = pki.key_pem.lines().nth(1).unwrap();
    let ha1 = DIGEST_TEST.rsplit(':').next().unwrap();
    assert!(
        !yaml.stdout.contains(key_body) && !yaml.stdout.contains(ha1),
        "get config shows a secret:\n{}",
        yaml.stdout
    );
    assert!(yaml.stdout.contains("<redacted>"), "{}", yaml.stdout);
    let one = cli(&endpoints, &["-o", "json", "get", "middleware", "fa-tls"]).expect_success();
    assert!(!one.stdout.contains(key_body), "{}", one.stdout);
    let back = cli_stdin(
        &endpoints,
        &["-o", "json", "apply", "-f", "-"],
        &yaml.stdout,
    )
    .expect_success()
    .json();
    assert_eq!(back["version"].as_u64(), Some(version), "{back}");
    assert_eq!(back["changes"], json!([]), "{back}");

    // The error pages' service cannot be deleted while the `errors` middleware uses it.
    let out = cli(&endpoints, &["delete", "service", "pages"]).expect_failure();
    assert!(
        out.stderr.contains("cannot delete service \"pages\"")
            && out
                .stderr
                .contains("middleware \"k-errors\": errors.service"),
        "{out}"
    );
    assert_eq!(
        config_version(&endpoints),
        version,
        "the refusal changed nothing"
    );
}

/// `buffering.retryExpression`: the buffered request (body included) is sent again while
/// `IsNetworkError() && Attempts() < 3` holds, so the first request to a service whose first two
/// servers refuse connections is answered by the third; without the expression it gets 502.
fn buffered_requests_are_retried(addr: &str) {
    let post = |host: &str| {
        fetch(
            addr,
            &Req::get(host, "/foo").method("POST").body(&b"abc"[..]),
        )
        .unwrap()
    };
    let r = post("b-once.test");
    assert_eq!(
        r.status, 502,
        "without retryExpression the first server refuses: {r}"
    );
    let r = post("b-retry.test");
    assert_eq!(r.status, 200, "retried twice: {r}");
    let echo: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(echo["method"], "POST", "{r}");
    assert_eq!(
        echo["headers"]["content-length"], "3",
        "the body was replayed: {r}"
    );
}
