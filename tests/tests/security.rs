//! Secure by default (no `--insecure`): TLS everywhere a client connects, bearer tokens with
//! roles for admin calls, join tokens and short-lived, renewed client certificates for proxies.
//! Real processes on loopback.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::Value;
use switchyard_e2e::backends::HttpBackend;
use switchyard_e2e::client::get;
use switchyard_e2e::{
    assert_holds_for, cli, host_route, wait_until, Cluster, ControlNode, NodeAddrs, Proxy,
    ProxySpec, SecureCreds, PROXY_SETTLE, SECURE,
};

/// Proxy certificates live 6 s here, so they renew every 4 s.
const CERT_TTL: &str = "6s";

fn secure_cluster(n: u64) -> (Cluster, SecureCreds) {
    let c = Cluster::start_with(n, &[SECURE, "--proxy-cert-ttl", CERT_TTL]);
    let creds = c.creds();
    (c, creds)
}

fn config_version(creds: &SecureCreds, ep: &str) -> u64 {
    let out = creds
        .cli(ep, &["get", "config", "-o", "json"])
        .expect_success();
    out.stderr_version().expect("config version on stderr")
}

fn apply(creds: &SecureCreds, ep: &str, doc: &str) -> u64 {
    let out = creds
        .cli_stdin(ep, &["apply", "-f", "-"], doc)
        .expect_success();
    switchyard_e2e::applied_version(&out).expect("applied version")
}

fn proxies(creds: &SecureCreds, ep: &str) -> Vec<Value> {
    let out = creds
        .cli(ep, &["get", "proxies", "-o", "json"])
        .expect_success();
    match out.json() {
        Value::Array(a) => a,
        Value::Object(o) => o
            .get("proxies")
            .and_then(|p| p.as_array().cloned())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn proxy_entry(creds: &SecureCreds, ep: &str, id: &str) -> Option<Value> {
    proxies(creds, ep).into_iter().find(|p| {
        p.get("id")
            .or_else(|| p.get("proxyId"))
            .and_then(|v| v.as_str())
            == Some(id)
    })
}

fn secure_proxy(id: &str, endpoints: &str, creds: &SecureCreds, join_token: &str) -> Proxy {
    let ca = creds.ca.display().to_string();
    Proxy::start(ProxySpec::new(id, endpoints).args(&[
        "--ca-cert",
        &ca,
        "--join-token",
        join_token,
    ]))
}

#[test]
fn tokens_roles_revocation_and_plaintext_refusal() {
    let (c, creds) = secure_cluster(3);
    let ep = c.endpoints();
    assert!(ep.starts_with("https://"), "{ep}");
    for n in &c.nodes {
        assert!(
            n.data_dir().join("ca.pem").exists(),
            "node {} has ca.pem",
            n.id
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let token_file = c
            .nodes
            .iter()
            .map(|n| n.data_dir().join("admin.token"))
            .find(|p| p.exists())
            .unwrap();
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "admin.token mode");
    }
    let backend = HttpBackend::start("b1");
    let v0 = apply(&creds, &ep, &host_route("first", &backend));

    // Plaintext is refused: the API port speaks TLS only.
    let plain = format!("http://{}", c.node(1).addrs.api);
    let out = cli(&plain, &["get", "routers"]).expect_failure();
    eprintln!("plaintext: {}", out.stderr.trim());

    // No token: cannot even read.
    let out = creds
        .cli_token(&ep, None, &["get", "routers"], None)
        .expect_failure();
    assert!(out.stderr.contains("UNAUTHENTICATED"), "{out}");
    let out = creds
        .cli_token(&ep, Some("sy_not_a_token"), &["get", "config"], None)
        .expect_failure();
    assert!(out.stderr.contains("UNAUTHENTICATED"), "{out}");

    // A viewer reads but cannot write, on any node; nothing changes.
    let viewer = creds.create_token(&ep, "viewer");
    for n in &c.nodes {
        creds
            .cli_token(&n.endpoint(), Some(&viewer), &["get", "routers"], None)
            .expect_success();
        let out = creds
            .cli_token(
                &n.endpoint(),
                Some(&viewer),
                &["apply", "-f", "-"],
                Some(&host_route("viewer-write", &backend)),
            )
            .expect_failure();
        assert!(out.stderr.contains("PERMISSION_DENIED"), "{out}");
        let out = creds
            .cli_token(
                &n.endpoint(),
                Some(&viewer),
                &["token", "create", "--role", "admin"],
                None,
            )
            .expect_failure();
        assert!(out.stderr.contains("PERMISSION_DENIED"), "{out}");
    }
    assert_eq!(
        config_version(&creds, &ep),
        v0,
        "refused writes changed nothing"
    );
    let routers = creds
        .cli(&ep, &["get", "routers", "-o", "json"])
        .expect_success();
    assert!(!routers.stdout.contains("viewer-write"), "{routers}");

    // A proxy token is no admin token either.
    let join = creds.create_token(&ep, "proxy");
    let out = creds
        .cli_token(&ep, Some(&join), &["get", "routers"], None)
        .expect_failure();
    assert!(out.stderr.contains("PERMISSION_DENIED"), "{out}");

    // Revocation: a second admin token works, then stops working on every node.
    let admin2 = creds.create_token(&ep, "admin");
    creds
        .cli_token(&ep, Some(&admin2), &["token", "list"], None)
        .expect_success();
    let list = creds
        .cli(&ep, &["token", "list", "-o", "json"])
        .expect_success();
    assert!(
        !list.stdout.contains(&admin2),
        "token list never shows secrets"
    );
    let tokens = list.json();
    let id = tokens
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["role"] == "admin" && t["description"] != "bootstrap admin token")
        .map(|t| t["id"].as_str().unwrap().to_string())
        .next()
        .expect("second admin token listed");
    creds.cli(&ep, &["token", "revoke", &id]).expect_success();
    for n in &c.nodes {
        let e = n.endpoint();
        wait_until(
            Duration::from_secs(10),
            &format!("revoked token refused by node {}", n.id),
            || {
                let out = creds.cli_token(&e, Some(&admin2), &["get", "routers"], None);
                if !out.success() && out.stderr.contains("UNAUTHENTICATED") {
                    Ok(())
                } else {
                    Err(out.to_string())
                }
            },
        );
    }
    // The bootstrap admin token still works.
    creds.cli(&ep, &["get", "routers"]).expect_success();

    // A token with a lifetime stops working when it expires.
    let short = creds
        .cli(&ep, &["token", "create", "--role", "viewer", "--ttl", "2s"])
        .expect_success()
        .stdout
        .trim()
        .to_string();
    creds
        .cli_token(&ep, Some(&short), &["get", "routers"], None)
        .expect_success();
    wait_until(Duration::from_secs(10), "the 2s token to expire", || {
        let out = creds.cli_token(&ep, Some(&short), &["get", "routers"], None);
        if !out.success() && out.stderr.contains("UNAUTHENTICATED") {
            Ok(())
        } else {
            Err(out.to_string())
        }
    });
}

#[test]
fn proxies_join_with_a_join_token_and_renew_their_certificate_over_the_stream() {
    let (mut c, creds) = secure_cluster(3);
    let ep = c.endpoints();
    let backend = HttpBackend::start("b1");
    apply(&creds, &ep, &host_route("live", &backend));

    // Without a valid join token a proxy cannot attach (unknown token; a viewer token).
    let viewer = creds.create_token(&ep, "viewer");
    let bad = secure_proxy("intruder", &ep, &creds, "sy_bogus");
    let low = secure_proxy("viewer-proxy", &ep, &creds, &viewer);
    // With one it attaches and serves.
    let join = creds.create_token(&ep, "proxy");
    let p = secure_proxy("p1", &ep, &creds, &join);
    p.wait_ready(PROXY_SETTLE);
    let r = get(p.web(), "live.test", "/").unwrap();
    assert_eq!(r.status, 200, "route served through the secure proxy");
    assert_holds_for(Duration::from_secs(2), "bad proxies stay detached", || {
        for id in ["intruder", "viewer-proxy"] {
            if proxy_entry(&creds, &ep, id).is_some() {
                return Err(format!("{id} attached"));
            }
        }
        Ok(())
    });
    for bad in [&bad, &low] {
        let (status, body) = bad.readyz().unwrap();
        assert_ne!(status, 200, "{body}");
    }
    assert!(
        bad.log_text().contains("Unauthenticated"),
        "{}",
        bad.log_tail(5)
    );
    assert!(
        low.log_text().contains("PermissionDenied"),
        "{}",
        low.log_tail(5)
    );

    // Renewal over the stream: at 2/3 of a 6 s lifetime, twice.
    wait_until(
        Duration::from_secs(20),
        "two certificate renewals",
        || match p.metric("switchyard_proxy_client_cert_renewals_total") {
            Ok(n) if n >= 2.0 => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    // The join token is gone and the first certificate expired: the proxy re-attaches to another
    // node only with its renewed certificate.
    let list = creds
        .cli(&ep, &["token", "list", "-o", "json"])
        .expect_success()
        .json();
    for t in list.as_array().unwrap() {
        if t["role"] == "proxy" {
            creds
                .cli(&ep, &["token", "revoke", t["id"].as_str().unwrap()])
                .expect_success();
        }
    }
    let attached = wait_until(PROXY_SETTLE, "p1 listed", || {
        proxy_entry(&creds, &ep, "p1")
            .and_then(|e| e["node"].as_u64())
            .ok_or_else(|| "not listed".to_string())
    });
    c.node_mut(attached).kill();
    let survivors = c.running_endpoints();
    let new = wait_until(
        PROXY_SETTLE,
        "p1 re-attached elsewhere",
        || match proxy_entry(&creds, &survivors, "p1").and_then(|e| e["node"].as_u64()) {
            Some(n) if n != attached && n != 0 => Ok(n),
            other => Err(format!("{other:?}")),
        },
    );
    eprintln!("p1 moved from node {attached} to node {new} with its renewed certificate");
    let v = apply(&creds, &survivors, &host_route("later", &backend));
    p.wait_version(v, PROXY_SETTLE);
    assert_eq!(get(p.web(), "later.test", "/").unwrap().status, 200);
}

#[test]
fn a_node_joins_a_secure_cluster_with_the_ca_and_a_token_and_restarts_secure() {
    let (mut c, creds) = secure_cluster(1);
    let ep = c.endpoints();
    let ca = creds.ca.display().to_string();
    let mut extra = c.common_args.clone();
    extra.extend([
        "--join".into(),
        ep.clone(),
        "--ca-cert".into(),
        ca,
        "--token".into(),
        creds.token.clone(),
    ]);
    let node = ControlNode::start(2, NodeAddrs::allocate(), &extra);
    c.add(node);
    let e2 = c.node(2).endpoint();
    assert!(e2.starts_with("https://"), "{e2}");
    // The new node gets the CA by replication, writes ca.pem and serves TLS with its own
    // certificate; the bootstrap token works on it.
    wait_until(
        Duration::from_secs(20),
        "node 2 answering as a learner over TLS",
        || {
            let out = creds.cli(&e2, &["cluster", "status", "-o", "json"]);
            if out.success() && out.stdout.contains("learner") {
                Ok(())
            } else {
                Err(out.to_string())
            }
        },
    );
    assert!(c.node(2).data_dir().join("ca.pem").exists());
    assert!(!c.node(2).data_dir().join("admin.token").exists());

    // A restarted node loads the CA from its store: still TLS, same tokens.
    c.node_mut(1).restart();
    let e1 = c.node(1).endpoint();
    wait_until(Duration::from_secs(20), "node 1 back over TLS", || {
        let out = creds.cli(&e1, &["get", "routers"]);
        if out.success() {
            Ok(())
        } else {
            Err(out.to_string())
        }
    });
    let out = creds
        .cli_token(&e1, None, &["get", "routers"], None)
        .expect_failure();
    assert!(out.stderr.contains("UNAUTHENTICATED"), "{out}");
}

/// One `RaftPeer.Status` call to a node's peer port over `channel`'s transport.
async fn peer_status(channel: tonic::transport::Channel) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let path = http::uri::PathAndQuery::from_static("/switchyard.raft.v1.RaftPeer/Status");
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    grpc.unary(tonic::Request::new(()), path, codec)
        .await
        .map(|_| ())
}

/// Calls `RaftPeer.Status` on `peer` (`host:port`): plaintext with `tls: None`, else TLS trusting
/// `ca_pem` and presenting `identity` (cert, key PEM) if any.
fn call_peer(peer: &str, tls: Option<(&str, Option<(String, String)>)>) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut ep = tonic::transport::Endpoint::from_shared(format!("{scheme}://{peer}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(3));
        if let Some((ca, identity)) = tls {
            let mut cfg = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(ca))
                .domain_name("localhost");
            if let Some((cert, key)) = identity {
                cfg = cfg.identity(tonic::transport::Identity::from_pem(cert, key));
            }
            ep = ep.tls_config(cfg).unwrap();
        }
        let ch = ep.connect().await.map_err(|e| format!("connect: {e:?}"))?;
        peer_status(ch)
            .await
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
    })
}

/// A client certificate `CN=cn` (client auth), signed by `issuer` or self-signed.
fn client_cert(cn: &str, ca: Option<(&str, &str)>) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    ];
    let cert = match ca {
        Some((ca_cert, ca_key)) => {
            let issuer =
                rcgen::Issuer::from_ca_cert_pem(ca_cert, rcgen::KeyPair::from_pem(ca_key).unwrap())
                    .unwrap();
            params.signed_by(&key, &issuer).unwrap()
        }
        None => params.self_signed(&key).unwrap(),
    };
    (cert.pem(), key.serialize_pem())
}

#[test]
fn the_peer_port_is_mutual_tls_with_node_certificates_and_a_secure_cluster_survives_its_leader() {
    let (mut c, creds) = secure_cluster(3);
    let ca_pem = std::fs::read_to_string(&creds.ca).unwrap();

    // Every node holds the CA (pushed before Raft formed) in a private file.
    for id in c.ids() {
        let path = c.node(id).data_dir().join("cluster-ca.json");
        let meta = std::fs::metadata(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                meta.permissions().mode() & 0o777,
                0o600,
                "{}",
                path.display()
            );
        }
        let _ = meta;
    }
    let stored: Value = serde_json::from_str(
        &std::fs::read_to_string(c.node(1).data_dir().join("cluster-ca.json")).unwrap(),
    )
    .unwrap();
    let ca_key = stored["key_pem"].as_str().unwrap().to_string();
    assert_eq!(stored["cert_pem"].as_str().unwrap().trim(), ca_pem.trim());

    let refused = |peer: &str| {
        // Plaintext gRPC.
        let e = call_peer(peer, None).expect_err("plaintext call to the peer port");
        eprintln!("plaintext: {e}");
        // TLS without a client certificate.
        let e = call_peer(peer, Some((&ca_pem, None))).expect_err("TLS without a certificate");
        eprintln!("TLS, no client certificate: {e}");
        // TLS with a self-signed certificate that claims to be a node.
        let e = call_peer(peer, Some((&ca_pem, Some(client_cert("node:7", None)))))
            .expect_err("TLS with a self-signed certificate");
        eprintln!("TLS, self-signed client certificate: {e}");
        // A CA-issued certificate that is not a node's (a proxy's).
        let e = call_peer(
            peer,
            Some((
                &ca_pem,
                Some(client_cert("proxy:p1", Some((&ca_pem, &ca_key)))),
            )),
        )
        .expect_err("TLS with a proxy certificate");
        assert!(e.contains("PermissionDenied"), "{e}");
        // A CA-issued node certificate gets through: the port works, and only for nodes.
        call_peer(
            peer,
            Some((
                &ca_pem,
                Some(client_cert("node:99", Some((&ca_pem, &ca_key)))),
            )),
        )
        .unwrap();
    };
    for id in c.ids() {
        refused(&c.node(id).addrs.peer.clone());
    }

    // The cluster elects, loses its leader and elects another over mutual TLS.
    let leader = c.wait_for_leader(Duration::from_secs(20));
    let ep = c.endpoints();
    let backend = HttpBackend::start("b1");
    let v1 = apply(&creds, &ep, &host_route("before", &backend));
    c.node_mut(leader).kill();
    let survivors = c.running_endpoints();
    let next = c.wait_for_leader(Duration::from_secs(20));
    assert_ne!(next, leader);
    let v2 = apply(&creds, &survivors, &host_route("after", &backend));
    assert!(v2 > v1);

    // The old leader restarts strict: it loads the CA from its data dir, catches up over TLS and
    // still refuses anything but a node certificate.
    c.node_mut(leader).restart();
    let e = c.node(leader).endpoint();
    wait_until(Duration::from_secs(20), "restarted node caught up", || {
        let v = config_version(&creds, &e);
        if v >= v2 {
            Ok(())
        } else {
            Err(format!("version {v}"))
        }
    });
    refused(&c.node(leader).addrs.peer.clone());
}
