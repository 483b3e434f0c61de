//! ACME end to end: a 3-node cluster, two proxies on different loopback addresses, pebble as the
//! CA and pebble-challtestsrv as its DNS, all real processes.
//!
//! The CA's DNS points every name at 127.0.0.3, where only proxy `pb` listens; `pb` is attached
//! to a follower, `pa` (127.0.0.2) to the leader. A validated challenge therefore proves that the
//! proxy which is not attached to the leader answered it.

use std::time::Duration;

use serde_json::{json, Value};
use switchyard_e2e::acme::{
    cert, certs, https_get, port_free_on, HttpReqHook, Pebble, PebbleOpts, TlsConn,
};
use switchyard_e2e::backends::HttpBackend;
use switchyard_e2e::{
    apply_yaml, metric_value, wait_attached_to, wait_until, Cluster, Proxy, ProxySpec, PROXY_SETTLE,
};

const ISSUE_TIMEOUT: Duration = Duration::from_secs(60);
const CERT: &str = "pebble/a.test";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Challenge {
    Http,
    Tls,
}

struct Stack {
    cluster: Cluster,
    leader: u64,
    /// The node `pb` is attached to.
    follower: u64,
    pa: Proxy,
    pb: Proxy,
    pebble: Pebble,
    backend: HttpBackend,
    /// `websecure` port (same on both addresses).
    tls_port: u16,
}

impl Stack {
    fn start(always_valid: bool) -> Stack {
        let web = port_free_on(&["127.0.0.2", "127.0.0.3"]);
        let tls_port = port_free_on(&["127.0.0.2", "127.0.0.3"]);
        let pebble = Pebble::start(PebbleOpts {
            always_valid,
            http_port: web,
            tls_port,
            default_ipv4: "127.0.0.3".into(),
        });
        let cluster = Cluster::start(3);
        let leader = cluster.wait_for_leader(Duration::from_secs(20));
        let follower = cluster
            .ids()
            .into_iter()
            .find(|id| *id != leader)
            .expect("a follower");
        let spec = |id: &str, node: u64, ip: &str| {
            ProxySpec::new(id, &cluster.node(node).endpoint())
                .entrypoints(&[])
                .entrypoint_at("web", &format!("{ip}:{web}"))
                .entrypoint_at("websecure", &format!("{ip}:{tls_port}"))
        };
        let pa = Proxy::start(spec("pa", leader, "127.0.0.2"));
        let pb = Proxy::start(spec("pb", follower, "127.0.0.3"));
        // A proxy is healthy before its config stream is attached: wait until each node lists
        // its proxy (the real condition the tests build on), not merely until both started.
        for (id, node) in [("pa", leader), ("pb", follower)] {
            wait_attached_to(&cluster.node(node).endpoint(), id, node, PROXY_SETTLE);
        }
        let backend = HttpBackend::start("app");
        Stack {
            cluster,
            leader,
            follower,
            pa,
            pb,
            pebble,
            backend,
            tls_port,
        }
    }

    fn doc(&self, challenge: Challenge, extra: Value) -> String {
        let mut acme = json!({
            "email": "ops@example.test",
            "caServer": self.pebble.directory,
            "caCertificates": [self.pebble.api_ca_pem()],
            "keyType": "EC256",
            "emailAddresses": ["cert-contact@example.test"],
        });
        match challenge {
            Challenge::Http => acme["httpChallenge"] = json!({"entryPoint": "web"}),
            Challenge::Tls => acme["tlsChallenge"] = json!({}),
        }
        if let (Some(a), Some(e)) = (acme.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                a.insert(k.clone(), v.clone());
            }
        }
        json!({
            "certificatesResolvers": { "pebble": { "acme": acme } },
            "http": {
                "routers": {
                    "app": {
                        "rule": "Host(`a.test`) || Host(`b.test`)",
                        "entryPoints": ["websecure"],
                        "service": "app",
                        "tls": { "certResolver": "pebble" }
                    }
                },
                "services": {
                    "app": { "loadBalancer": { "servers": [ { "url": self.backend.url() } ] } }
                }
            }
        })
        .to_string()
    }

    fn endpoints(&self) -> String {
        self.cluster.endpoints()
    }

    fn running_endpoints(&self) -> String {
        self.cluster.running_endpoints()
    }

    fn apply(&self, doc: &str) -> u64 {
        apply_yaml(&self.running_endpoints(), doc).unwrap_or_else(|e| panic!("apply: {e}"))
    }

    /// Waits until `get certs` shows the certificate valid; returns its row.
    fn wait_valid(&self) -> Value {
        let eps = self.running_endpoints();
        wait_until(ISSUE_TIMEOUT, "certificate valid in get certs", || {
            let c = cert(&eps, CERT)?;
            if c["status"] == "valid" {
                Ok(c)
            } else {
                Err(format!("{c}"))
            }
        })
    }

    /// Sum of a metric over the running nodes.
    fn metric_sum(&self, name: &str) -> f64 {
        self.cluster
            .nodes
            .iter()
            .filter(|n| n.has_process())
            .filter_map(|n| n.metrics().ok())
            .filter_map(|m| metric_value(&m, name))
            .sum()
    }

    /// Waits until both proxies serve the certificate with serial `serial` for both names over
    /// TLS, verified against pebble's root; returns the proxies' answers.
    fn wait_served(&self, roots: &str, serial: &str) {
        for (p, ip) in [(&self.pa, "127.0.0.2"), (&self.pb, "127.0.0.3")] {
            let addr = format!("{ip}:{}", self.tls_port);
            for host in ["a.test", "b.test"] {
                wait_until(
                    ISSUE_TIMEOUT,
                    &format!("proxy {} to serve the certificate for {host}", p.id),
                    || {
                        let (status, _body, peer) = https_get(&addr, host, roots, "/")?;
                        if status == 200 && peer.serial == serial {
                            Ok(())
                        } else {
                            Err(format!("status {status}, serial {}", peer.serial))
                        }
                    },
                );
            }
        }
    }
}

fn handshakes_ok(p: &Proxy) -> f64 {
    p.metrics()
        .ok()
        .and_then(|m| {
            m.lines()
                .filter(|l| l.starts_with("switchyard_proxy_tls_handshakes_total{result=\"ok\"}"))
                .find_map(|l| l.split_whitespace().last()?.parse().ok())
        })
        .unwrap_or(0.0)
}

fn issued_once(challenge: Challenge) {
    let s = Stack::start(false);
    // `pb` (the one the CA reaches) is attached to a follower, `pa` to the leader (the stack
    // waited for both); the cluster-wide list agrees.
    let proxies = wait_until(PROXY_SETTLE, "both proxies listed cluster-wide", || {
        let doc = switchyard_e2e::get_proxies(&s.endpoints()).map_err(|e| e.to_string())?;
        let node_of = |id: &str| switchyard_e2e::proxy_entry(&doc, id).map(|e| e["node"].clone());
        match (node_of("pa"), node_of("pb")) {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => Err(doc.to_string()),
        }
    });
    assert_eq!(proxies.0, json!(s.leader));
    assert_ne!(proxies.1, json!(s.leader));
    let before_pa = handshakes_ok(&s.pa);

    if challenge == Challenge::Http {
        // As with certificates, the CLI reads `caCertificates` files and uploads their contents.
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("pebble-ca.pem"), s.pebble.api_ca_pem()).expect("write");
        let mut doc: Value = serde_json::from_str(&s.doc(challenge, json!({}))).expect("json");
        doc["certificatesResolvers"]["pebble"]["acme"]["caCertificates"] = json!(["pebble-ca.pem"]);
        let file = dir.path().join("acme.json");
        std::fs::write(&file, doc.to_string()).expect("write");
        let path = file.display().to_string();
        switchyard_e2e::cli(&s.endpoints(), &["apply", "-f", &path]).expect_success();
    } else {
        s.apply(&s.doc(challenge, json!({})));
    }
    let row = s.wait_valid();
    assert_eq!(row["names"], json!(["a.test", "b.test"]), "{row}");
    assert_eq!(row["source"], "acme:pebble");
    assert!(
        row["issuer"].as_str().unwrap_or("").contains("Pebble"),
        "{row}"
    );
    assert_eq!(row["lastError"], "");
    assert!(row["notAfterUnix"].as_i64() > row["notBeforeUnix"].as_i64());
    // Every node reports the same certificate; no private key in the answer.
    for n in &s.cluster.nodes {
        let one = cert(&n.endpoint(), CERT).expect("listed on every node");
        assert_eq!(one["serial"], row["serial"]);
    }
    let out = switchyard_e2e::cli(&s.endpoints(), &["-o", "yaml", "get", "certs"]);
    assert!(!out.stdout.contains("PRIVATE KEY"), "{}", out.stdout);
    let table = switchyard_e2e::cli(&s.endpoints(), &["get", "certs"]).expect_success();
    assert!(
        table.stdout.contains("acme:pebble") && table.stdout.contains("valid"),
        "{}",
        table.stdout
    );

    // Issued once for the whole cluster.
    assert_eq!(s.pebble.issued(), 1, "pebble issued more than once");
    assert_eq!(s.metric_sum("switchyard_acme_orders_created_total"), 1.0);
    assert_eq!(s.metric_sum("switchyard_acme_orders_total"), 1.0);
    if challenge == Challenge::Tls {
        // The CA's TLS-ALPN-01 handshakes reached `pb` only.
        assert_eq!(handshakes_ok(&s.pa), before_pa, "pa answered a handshake");
        assert!(handshakes_ok(&s.pb) >= 1.0, "pb answered no handshake");
    }

    // Both proxies serve it, verified against pebble's root.
    let roots = s.pebble.roots_pem();
    s.wait_served(&roots, row["serial"].as_str().expect("serial"));
    // `pb` answered the CA while attached to a follower the whole time.
    // (Asked to its own node: a cluster-wide list may miss a proxy when a peer is slow to answer.)
    let pb = switchyard_e2e::proxy_status(&s.cluster.node(s.follower).endpoint(), "pb")
        .unwrap_or_else(|e| panic!("pb left its node: {e}"));
    assert_eq!(pb["node"], json!(s.follower), "pb moved: {pb}");
    assert_ne!(pb["node"], json!(s.leader), "pb moved to the leader");
    assert_eq!(s.cluster.leader_id(), Some(s.leader), "leadership changed");
    // Expiry is exported on every node.
    let not_after = row["notAfterUnix"].as_f64().expect("notAfter");
    for n in &s.cluster.nodes {
        wait_until(Duration::from_secs(10), "the expiry metric", || {
            let m = n.metrics()?;
            let v = m
                .lines()
                .find(|l| {
                    l.starts_with(
                        "switchyard_acme_certificate_not_after_seconds{name=\"pebble/a.test\"}",
                    )
                })
                .and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok());
            if v == Some(not_after) {
                Ok(())
            } else {
                Err(format!("node {}: {v:?}", n.id))
            }
        });
        // Private keys are never logged.
        let log = std::fs::read_to_string(n.log_path()).unwrap_or_default();
        assert!(
            !log.contains("PRIVATE KEY"),
            "node {} logged a private key",
            n.id
        );
    }
    // Challenge answers were cleared once the certificate was in place.
    let (_, cfg) = switchyard_e2e::get_config(&s.endpoints()).expect("config");
    assert!(
        cfg.get("managed").is_none(),
        "get config shows managed material: {cfg}"
    );
    assert_eq!(s.pebble.issued(), 1);
}

#[test]
fn http01_certificate_issued_once_and_served_by_both_proxies() {
    issued_once(Challenge::Http);
}

#[test]
fn tls_alpn01_certificate_issued_once_and_served_by_both_proxies() {
    issued_once(Challenge::Tls);
}

#[test]
fn leader_killed_mid_order_still_issues_exactly_once() {
    let mut s = Stack::start(false);
    // A challenge delay keeps the order in flight long enough to kill its leader in the middle.
    let v = s.apply(&s.doc(
        Challenge::Http,
        json!({"httpChallenge": {"entryPoint": "web", "delay": "3s"}}),
    ));
    let leader = s.leader;
    // The challenge answers are published (a new config version) only after the order's URL is
    // recorded: from then on the order is in the middle of its validation.
    let leader_ep = s.cluster.node(leader).endpoint();
    wait_until(ISSUE_TIMEOUT, "challenge answers published", || {
        let now = switchyard_e2e::try_config_version(&leader_ep).map_err(|e| e.to_string())?;
        if now > v {
            Ok(())
        } else {
            Err(format!("config version {now}"))
        }
    });
    // The order is recorded as in flight (pending) when the leader dies.
    let row = cert(&s.endpoints(), CERT).expect("listed");
    assert_eq!(row["status"], "pending", "{row}");
    s.cluster.node_mut(leader).kill();
    let new_leader = s.cluster.wait_for_leader(Duration::from_secs(20));
    assert_ne!(new_leader, leader);

    let row = s.wait_valid();
    assert_eq!(row["names"], json!(["a.test", "b.test"]));
    assert_eq!(s.pebble.issued(), 1, "issued more than once");
    // The new leader resumed the order by its URL: it created none at the CA.
    assert_eq!(s.metric_sum("switchyard_acme_orders_created_total"), 0.0);
    let roots = s.pebble.roots_pem();
    s.wait_served(&roots, row["serial"].as_str().expect("serial"));
    assert_eq!(s.pebble.issued(), 1);
}

#[test]
fn renewal_replaces_the_certificate_under_a_keep_alive_connection() {
    let s = Stack::start(false);
    s.apply(&s.doc(Challenge::Tls, json!({})));
    let first = s.wait_valid();
    let first_serial = first["serial"].as_str().expect("serial").to_string();
    let roots = s.pebble.roots_pem();
    s.wait_served(&roots, &first_serial);

    // A keep-alive connection on `pb`.
    let addr = format!("127.0.0.3:{}", s.tls_port);
    let mut conn = TlsConn::connect(&addr, "a.test", &roots, &["http/1.1"]).expect("connect");
    assert_eq!(conn.peer().expect("peer").serial, first_serial);
    assert_eq!(conn.get("a.test", "/").expect("get").0, 200);

    // A renewal window longer than pebble's certificate lifetime: due at once, checked every
    // second.
    s.apply(&s.doc(
        Challenge::Tls,
        json!({"renewBefore": "87600h", "renewCheckInterval": "1s"}),
    ));
    let mut answers = 0u32;
    let new_serial = wait_until(ISSUE_TIMEOUT, "a renewed certificate served", || {
        let (status, _) = conn.get("a.test", "/")?;
        if status != 200 {
            return Err(format!("keep-alive request answered {status}"));
        }
        answers += 1;
        let (status, _, peer) = https_get(&addr, "a.test", &roots, "/")?;
        if status == 200 && peer.serial != first_serial {
            Ok(peer.serial)
        } else {
            Err(format!("status {status}, serial {}", peer.serial))
        }
    });
    assert_ne!(new_serial, first_serial);
    assert!(answers >= 1);
    // The connection opened before the renewal still gets answers, on the old certificate.
    let (status, _) = conn.get("a.test", "/").expect("keep-alive after renewal");
    assert_eq!(status, 200);
    assert_eq!(conn.peer().expect("peer").serial, first_serial);
    assert!(s.pebble.issued() >= 2);
    let row = cert(&s.endpoints(), CERT).expect("listed");
    assert_ne!(row["serial"], json!(first_serial));
}

#[test]
fn failures_back_off_and_show_in_get_certs() {
    let s = Stack::start(true);
    // Nothing listens on this CA address.
    let dead = format!("https://127.0.0.1:{}/dir", switchyard_e2e::free_port());
    let doc = s.doc(Challenge::Http, json!({"caServer": dead}));
    s.apply(&doc);
    let row = wait_until(ISSUE_TIMEOUT, "the failure in get certs", || {
        let c = cert(&s.endpoints(), CERT)?;
        if c["status"] == "error" {
            Ok(c)
        } else {
            Err(format!("{c}"))
        }
    });
    assert!(!row["lastError"].as_str().unwrap_or("").is_empty(), "{row}");
    assert!(row["failures"].as_u64() >= Some(1));
    // Backed off: the next attempt is in the future.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(
        row["nextAttemptUnix"].as_u64() > Some(now.saturating_sub(1)),
        "{row}"
    );
    wait_until(ISSUE_TIMEOUT, "a failed order in the metrics", || {
        let v = s.metric_sum("switchyard_acme_orders_total");
        if v >= 1.0 {
            Ok(())
        } else {
            Err(format!("{v}"))
        }
    });
    assert_eq!(s.pebble.issued(), 0);
}

#[test]
fn invalid_resolvers_are_refused_with_the_field() {
    let c = Cluster::start(1);
    let doc = json!({
        "certificatesResolvers": {
            "bad": { "acme": { "caServer": "ftp://x", "keyType": "EC999",
                               "httpChallenge": {"entryPoint": "web"}, "tlsChallenge": {} } },
            "dns": { "acme": { "dnsChallenge": { "provider": "route99" } } },
            "tsig": { "acme": { "dnsChallenge": { "provider": "rfc2136", "rfc2136": {
                "nameserver": "127.0.0.1:53", "tsigKey": "k.test.", "tsigSecret": "not base64!",
                "tsigAlgorithm": "hmac-md5." } } } }
        }
    })
    .to_string();
    let err = apply_yaml(&c.endpoints(), &doc).expect_err("refused");
    for want in [
        "acme.caServer",
        "acme.keyType",
        "set exactly one of acme.httpChallenge, acme.tlsChallenge and acme.dnsChallenge",
        "certResolver \"dns\"",
        "acme.dnsChallenge.provider: unknown DNS provider \"route99\"",
        "certResolver \"tsig\"",
        "acme.dnsChallenge.rfc2136.tsigSecret: is not a base64 TSIG key",
        "acme.dnsChallenge.rfc2136.tsigAlgorithm: unsupported TSIG algorithm \"hmac-md5.\"",
    ] {
        assert!(err.contains(want), "missing {want:?} in {err}");
    }
    assert!(!err.contains("not base64!"), "the secret was echoed: {err}");
    assert!(certs(&c.endpoints()).expect("get certs").is_empty());

    // Uploaded certificates are listed too, without their key.
    let key = rcgen::KeyPair::generate().expect("key");
    let pem = rcgen::CertificateParams::new(vec!["up.test".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("cert")
        .pem();
    let doc = json!({"tls": {"certificates": [{"certFile": pem, "keyFile": key.serialize_pem()}]}});
    apply_yaml(&c.endpoints(), &doc.to_string()).expect("apply certificate");
    let all = certs(&c.endpoints()).expect("get certs");
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["name"], "tls.certificates[0]");
    assert_eq!(all[0]["source"], "uploaded");
    assert_eq!(all[0]["status"], "valid");
    assert_eq!(all[0]["names"], json!(["up.test"]));
    let one = switchyard_e2e::cli(
        &c.endpoints(),
        &["-o", "json", "get", "certs", "tls.certificates[0]"],
    )
    .expect_success();
    assert!(!one.stdout.contains("PRIVATE KEY"));
    let missing = switchyard_e2e::cli(&c.endpoints(), &["get", "certs", "nope"]);
    assert!(
        !missing.success() && missing.stderr.contains("NOT_FOUND"),
        "{}",
        missing.stderr
    );
}

/// Must-show 2: an RSA4096 and an EC384 certificate for one name, from two resolvers; clients
/// offering only RSA signature schemes get the RSA one, others the ECDSA one, on both proxies.
#[test]
fn rsa4096_and_ec384_certificates_chosen_by_the_client_signature_schemes() {
    let s = Stack::start(true);
    let resolver = |key_type: &str| {
        json!({"acme": {
            "email": "ops@example.test",
            "caServer": s.pebble.directory,
            "caCertificates": [s.pebble.api_ca_pem()],
            "keyType": key_type,
            "httpChallenge": {"entryPoint": "web"},
        }})
    };
    let router = |rule: &str, resolver: &str| {
        json!({"rule": rule, "entryPoints": ["websecure"], "service": "app",
               "tls": {"certResolver": resolver}})
    };
    let doc = json!({
        "certificatesResolvers": {"ec": resolver("EC384"), "rsa": resolver("RSA4096")},
        "http": {
            "routers": {
                "ec": router("Host(`a.test`)", "ec"),
                "rsa": router("Host(`a.test`) && PathPrefix(`/rsa`)", "rsa"),
            },
            "services": {
                "app": { "loadBalancer": { "servers": [ { "url": s.backend.url() } ] } }
            }
        }
    });
    s.apply(&doc.to_string());
    let eps = s.running_endpoints();
    // RSA4096 generation runs on a blocking thread of the leader: generous on a loaded machine.
    let serial = |name: &str| -> String {
        let row = wait_until(ISSUE_TIMEOUT * 2, &format!("{name} valid"), || {
            let c = cert(&eps, name)?;
            if c["status"] == "valid" {
                Ok(c)
            } else {
                Err(format!("{c}"))
            }
        });
        row["serial"].as_str().expect("serial").to_string()
    };
    let ec_serial = serial("ec/a.test");
    let rsa_serial = serial("rsa/a.test");
    assert_ne!(ec_serial, rsa_serial);
    let roots = s.pebble.roots_pem();
    let rsa_only = [
        rustls::SignatureScheme::RSA_PSS_SHA256,
        rustls::SignatureScheme::RSA_PSS_SHA384,
        rustls::SignatureScheme::RSA_PKCS1_SHA256,
    ];
    for ip in ["127.0.0.2", "127.0.0.3"] {
        let addr = format!("{ip}:{}", s.tls_port);
        for (offer, want_serial, want_type) in [
            (None, &ec_serial, "EC384"),
            (Some(&rsa_only[..]), &rsa_serial, "RSA4096"),
        ] {
            wait_until(
                ISSUE_TIMEOUT,
                &format!("{addr} to serve the {want_type} certificate"),
                || {
                    let mut c =
                        TlsConn::connect_offering(&addr, "a.test", &roots, &["http/1.1"], offer)?;
                    let peer = c.peer()?;
                    let (status, _) = c.get("a.test", "/")?;
                    if status == 200 && &peer.serial == want_serial && peer.key_type == want_type {
                        Ok(())
                    } else {
                        Err(format!("{status}, {} {}", peer.key_type, peer.serial))
                    }
                },
            );
        }
    }
    assert_eq!(s.pebble.issued(), 2);
}

/// The DNS-01 stack: pebble validates TXT records through challtestsrv; the resolver's `httpreq`
/// provider writes them there through [`HttpReqHook`] (basic authentication checked).
fn dns01_doc(s: &Stack, hook: &HttpReqHook, extra_propagation: Value) -> String {
    let mut propagation = json!({"disableANSChecks": true});
    if let (Some(p), Some(e)) = (propagation.as_object_mut(), extra_propagation.as_object()) {
        for (k, v) in e {
            p.insert(k.clone(), v.clone());
        }
    }
    json!({
        "certificatesResolvers": { "dns": { "acme": {
            "email": "ops@example.test",
            "caServer": s.pebble.directory,
            "caCertificates": [s.pebble.api_ca_pem()],
            "dnsChallenge": {
                "provider": "httpreq",
                "resolvers": [s.pebble.dns],
                "propagation": propagation,
                "httpreq": {"endpoint": hook.url(), "username": "acme", "password": HOOK_PASSWORD}
            }
        } } },
        "http": {
            "routers": {
                "app": {
                    "rule": "Host(`*.app.test`) || Host(`app.test`)",
                    "entryPoints": ["websecure"],
                    "service": "app",
                    "tls": { "certResolver": "dns" }
                }
            },
            "services": {
                "app": { "loadBalancer": { "servers": [ { "url": s.backend.url() } ] } }
            }
        }
    })
    .to_string()
}

const HOOK_PASSWORD: &str = "hook-s3cret-pw";
const WILDCARD: &str = "dns/*.app.test";

fn wait_wildcard_valid(s: &Stack) -> Value {
    let eps = s.running_endpoints();
    wait_until(ISSUE_TIMEOUT, "the wildcard certificate valid", || {
        let c = cert(&eps, WILDCARD)?;
        if c["status"] == "valid" {
            Ok(c)
        } else {
            Err(format!("{c}"))
        }
    })
}

/// Both proxies serve the wildcard certificate for one-label names under it and the apex.
fn wait_wildcard_served(s: &Stack, serial: &str) {
    let roots = s.pebble.roots_pem();
    for ip in ["127.0.0.2", "127.0.0.3"] {
        let addr = format!("{ip}:{}", s.tls_port);
        for host in ["a.app.test", "b.app.test", "app.test"] {
            wait_until(ISSUE_TIMEOUT, &format!("{addr} to serve {host}"), || {
                let (status, _body, peer) = https_get(&addr, host, &roots, "/")?;
                if status == 200 && peer.serial == serial {
                    Ok(())
                } else {
                    Err(format!("status {status}, serial {}", peer.serial))
                }
            });
        }
    }
}

/// Must-show 1: `*.app.test` + `app.test` issued once via DNS-01, served by both proxies for
/// `a.app.test` and `b.app.test`; the provider's password is redacted in `get config`, restored
/// on apply and never logged.
#[test]
fn dns01_wildcard_issued_once_and_served_by_both_proxies() {
    let s = Stack::start(false);
    let hook = HttpReqHook::start(&s.pebble.chall_management, Some(("acme", HOOK_PASSWORD)));
    s.apply(&dns01_doc(&s, &hook, json!({})));
    let row = wait_wildcard_valid(&s);
    assert_eq!(row["names"], json!(["*.app.test", "app.test"]), "{row}");
    assert_eq!(row["source"], "acme:dns");
    let serial = row["serial"].as_str().expect("serial").to_string();
    wait_wildcard_served(&s, &serial);
    // One TXT record per authorization (the wildcard and the apex), removed afterwards.
    assert_eq!(hook.presents(), 2);
    wait_until(ISSUE_TIMEOUT, "the TXT records removed", || {
        (hook.cleanups() == 2).then_some(()).ok_or(hook.cleanups())
    });
    // A two-label name is not covered by the wildcard.
    let roots = s.pebble.roots_pem();
    let addr = format!("127.0.0.2:{}", s.tls_port);
    assert!(https_get(&addr, "x.a.app.test", &roots, "/").is_err());
    assert_eq!(s.pebble.issued(), 1, "issued more than once");
    assert_eq!(s.metric_sum("switchyard_acme_orders_created_total"), 1.0);

    // The password: redacted in `get config`, restored when that output is applied back.
    let (_, shown) = switchyard_e2e::get_config(&s.endpoints()).expect("config");
    let text = shown.to_string();
    assert!(
        !text.contains(HOOK_PASSWORD),
        "get config shows the password: {text}"
    );
    let shown_pw =
        &shown["certificatesResolvers"]["dns"]["acme"]["dnsChallenge"]["httpreq"]["password"];
    assert_eq!(shown_pw, "<redacted>", "{text}");
    let yaml =
        switchyard_e2e::cli(&s.endpoints(), &["-o", "yaml", "get", "config"]).expect_success();
    assert!(!yaml.stdout.contains(HOOK_PASSWORD));
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), &yaml.stdout).expect("write");
    switchyard_e2e::cli(
        &s.endpoints(),
        &["apply", "-f", &file.path().display().to_string()],
    )
    .expect_success();
    for n in &s.cluster.nodes {
        let log = std::fs::read_to_string(n.log_path()).unwrap_or_default();
        assert!(
            !log.contains(HOOK_PASSWORD),
            "node {} logged the password",
            n.id
        );
    }
    // Still the same certificate, still issued once (nothing re-ordered by the re-apply).
    assert_eq!(
        cert(&s.endpoints(), WILDCARD).expect("row")["serial"],
        json!(serial)
    );
    assert_eq!(s.pebble.issued(), 1);
}

/// Must-show 1 (continued): the leader dies while the records propagate; the next leader
/// resumes the same order and the certificate is issued exactly once.
#[test]
fn dns01_leader_killed_mid_propagation_still_issues_exactly_once() {
    let mut s = Stack::start(false);
    let hook = HttpReqHook::start(&s.pebble.chall_management, Some(("acme", HOOK_PASSWORD)));
    // The delay before checks keeps the order between "records published" and "CA told".
    s.apply(&dns01_doc(&s, &hook, json!({"delayBeforeChecks": "4s"})));
    wait_until(ISSUE_TIMEOUT, "the TXT records published", || {
        (hook.presents() >= 2).then_some(()).ok_or(hook.presents())
    });
    let row = cert(&s.endpoints(), WILDCARD).expect("listed");
    assert_eq!(row["status"], "pending", "{row}");
    let leader = s.leader;
    s.cluster.node_mut(leader).kill();
    let new_leader = s.cluster.wait_for_leader(Duration::from_secs(20));
    assert_ne!(new_leader, leader);
    let row = wait_wildcard_valid(&s);
    // The new leader published the records again for the same order.
    assert!(hook.presents() >= 4, "presents: {}", hook.presents());
    assert_eq!(s.pebble.issued(), 1, "issued more than once");
    // The surviving nodes created no order at the CA: the order was resumed by its URL.
    assert_eq!(s.metric_sum("switchyard_acme_orders_created_total"), 0.0);
    wait_wildcard_served(&s, row["serial"].as_str().expect("serial"));
    assert_eq!(s.pebble.issued(), 1);
}
