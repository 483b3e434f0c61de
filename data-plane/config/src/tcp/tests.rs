//! TCP rules (cases ported from Traefik's pkg/muxer/tcp/mux_test.go and matcher_test.go),
//! parsing, validation and round trips.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;

use super::rule::{compile, default_priority, ConnView};
use crate::{diff, parse_document, validate, DynamicConfig, ResourceKind};

fn conn<'a>(sni: &'a str, ip: &str, alpn: &'a [String]) -> ConnView<'a> {
    ConnView {
        sni: if sni.is_empty() { None } else { Some(sni) },
        client_ip: ip.parse::<IpAddr>().unwrap(),
        alpn,
    }
}

fn matches(rule: &str, sni: &str, ip: &str, protos: &[&str]) -> bool {
    let alpn: Vec<String> = protos.iter().map(|s| s.to_string()).collect();
    compile(rule)
        .unwrap_or_else(|e| panic!("{rule}: {e}"))
        .matches(&conn(sni, ip, &alpn))
}

/// Traefik's Test_addTCPRoute.
#[test]
fn add_tcp_route_cases() {
    let cases: &[(&str, &str, &str, &[&str], bool)] = &[
        ("HostSNI(`example.org`)", "example.org", "0.0.0.0", &[], true),
        ("!HostSNI(`example.com`)", "example.org", "0.0.0.0", &[], true),
        ("hostsni(`example.org`)", "example.org", "0.0.0.0", &[], true),
        ("HOSTSNI(`example.org`)", "example.org", "0.0.0.0", &[], true),
        ("HostSNI(`example.org`)", "example.com", "0.0.0.0", &[], false),
        ("!HostSNI(`example.com`)", "example.com", "0.0.0.0", &[], false),
        ("HostSNI(`example.org`) && ClientIP(`10.0.0.1`)", "example.org", "10.0.0.1", &[], true),
        ("!HostSNI(`example.com`) && ClientIP(`10.0.0.1`)", "example.org", "10.0.0.1", &[], true),
        ("HostSNI(`example.org`) && !ClientIP(`10.0.0.2`)", "example.org", "10.0.0.1", &[], true),
        ("!HostSNI(`example.com`) && !ClientIP(`10.0.0.2`)", "example.org", "10.0.0.1", &[], true),
        ("!(HostSNI(`example.com`) || ClientIP(`10.0.0.2`))", "example.org", "10.0.0.1", &[], true),
        ("!(HostSNI(`example.com`) && ClientIP(`10.0.0.2`))", "example.org", "10.0.0.2", &[], true),
        ("!(HostSNI(`example.com`) && ClientIP(`10.0.0.2`))", "example.com", "10.0.0.1", &[], true),
        ("!(HostSNI(`example.com`) && ClientIP(`10.0.0.2`))", "example.com", "10.0.0.2", &[], false),
        ("HostSNI(`example.org`) && ClientIP(`10.0.0.1`)", "example.com", "10.0.0.1", &[], false),
        ("HostSNI(`example.org`) && ClientIP(`10.0.0.1`)", "example.org", "10.0.0.2", &[], false),
        ("HostSNI(`example.org`) || ClientIP(`10.0.0.1`)", "example.org", "10.0.0.1", &[], true),
        ("HostSNI(`example.org`) || ClientIP(`10.0.0.1`)", "example.com", "10.0.0.1", &[], true),
        ("HostSNI(`example.org`) || ClientIP(`10.0.0.1`)", "example.org", "10.0.0.2", &[], true),
        ("HostSNI(`example.org`) || ClientIP(`10.0.0.1`)", "example.com", "10.0.0.2", &[], false),
        ("HostSNI(`example.org`) || HostSNI(`example.eu`) || HostSNI(`example.com`)", "example.org", "0.0.0.0", &[], true),
        ("HostSNI(`example.org`) || HostSNI(`example.eu`) || HostSNI(`example.com`)", "baz", "0.0.0.0", &[], false),
        ("HostSNI(`example.org`) || HostSNI(`example.com`) && ClientIP(`10.0.0.1`)", "example.org", "10.0.0.2", &[], true),
        ("HostSNI(`example.org`) || HostSNI(`example.com`) && ClientIP(`10.0.0.1`)", "example.com", "10.0.0.1", &[], true),
        ("HostSNI(`example.org`) || HostSNI(`example.com`) && ClientIP(`10.0.0.1`)", "example.com", "10.0.0.2", &[], false),
        ("HostSNI(`example.org`) || HostSNI(`example.com`) && ClientIP(`10.0.0.1`)", "baz", "10.0.0.1", &[], false),
        ("(HostSNI(`example.org`) || HostSNI(`example.com`)) && (ClientIP(`10.0.0.1`) || ClientIP(`10.0.0.2`))", "example.com", "10.0.0.1", &[], true),
        ("(HostSNI(`example.org`) || HostSNI(`example.com`)) && (ClientIP(`10.0.0.1`) || ClientIP(`10.0.0.2`))", "baz", "10.0.0.1", &[], false),
        ("(HostSNI(`example.org`) || HostSNI(`example.com`)) && (ClientIP(`10.0.0.1`) || ClientIP(`10.0.0.2`))", "example.com", "10.0.0.3", &[], false),
        ("(HostSNI(`example.org`) || (HostSNI(`example.com`) && !HostSNI(`example.org`))) && ((ClientIP(`10.0.0.1`) && !ClientIP(`10.0.0.2`)) || ClientIP(`10.0.0.2`)) ", "example.com", "10.0.0.1", &[], true),
        ("ALPN(`h2c`) && (!ALPN(`h2`) || HostSNI(`example.eu`))", "example.eu", "0.0.0.0", &["h2c", "mqtt"], true),
        ("ALPN(`h2c`) && (!ALPN(`h2`) || HostSNI(`example.eu`))", "example.com", "0.0.0.0", &["h2c", "http/1.1", "h2"], false),
        ("ALPN(`h2c`) && (!ALPN(`h2`) || HostSNI(`example.eu`))", "example.com", "0.0.0.0", &["h2c", "http/1.1"], true),
        ("ALPN(`h2c`) && (!ALPN(`h2`) || HostSNI(`example.eu`))", "example.com", "0.0.0.0", &["http/1.1", "mqtt"], false),
        ("HostSNI(`127.0.0.1`)", "127.0.0.1", "0.0.0.0", &[], true),
        ("HostSNI(`10::10`)", "10::10", "0.0.0.0", &[], true),
    ];
    for (rule, sni, ip, protos, want) in cases {
        assert_eq!(
            matches(rule, sni, ip, protos),
            *want,
            "{rule} sni={sni} ip={ip} alpn={protos:?}"
        );
    }
}

/// Traefik's Test_addTCPRoute, Test_HostSNI, Test_HostSNIRegexp, Test_ClientIP and Test_ALPN
/// build errors.
#[test]
fn refused_rules() {
    for rule in [
        "",
        "rulewithnotmatcher",
        "HostSNI(``)",
        "HostSNI(`example.com`, `example.org`)",
        "HostSNI(`🦭.com`)",
        "HostSNI(`*.*.example.com`)",
        "HostSNIRegexp(``)",
        "HostSNIRegexp(`🦭.com`)",
        "HostSNIRegexp(`(example.com`)",
        "HostSNIRegexp(`example.com`, `example.org`)",
        "ClientIP(``)",
        "ClientIP(`🦭/32`)",
        "ClientIP(`127.0.0.1`, `127.0.0.2`)",
        "ALPN(`acme-tls/1`)",
        "ALPN(``)",
        "ALPN(`h2`, `mqtt`)",
        "Unknown(`example.com`)",
        "HostSNI() && ClientIP(`10.1`)",
    ] {
        assert!(compile(rule).is_err(), "{rule:?} should be refused");
    }
}

#[test]
fn host_sni_cases() {
    let cases = [
        ("HostSNI(`xn--9t9h.com`)", "xn--9t9h.com", true),
        ("HostSNI(`xn--9t9h.com`)", "🦭.com", false),
        ("HostSNI(`example.com`)", "example.com", true),
        ("HostSNI(`example.com`)", "example.org", false),
        ("HostSNI(`*`)", "example.com", true),
        ("HostSNI(`*`)", "", true),
        ("HostSNI(`example.com.`)", "example.com", true),
        ("HostSNI(`foo.example.com`)", "foo.example.com", true),
        (
            "HostSNI(`foo_bar.example.com`)",
            "foo_bar.example.com",
            true,
        ),
        ("HostSNI(`*.example.com`)", "foo.example.com", true),
        ("HostSNI(`*.example.com`)", "a.foo.example.com", false),
        ("HostSNI(`*.example.com`)", "example.com", false),
        ("HostSNI(`Example.COM`)", "example.com", true),
        ("HostSNI(`example.com`)", "", false),
    ];
    for (rule, sni, want) in cases {
        assert_eq!(matches(rule, sni, "0.0.0.0", &[]), want, "{rule} {sni:?}");
    }
}

#[test]
fn host_sni_regexp_cases() {
    let rule = "HostSNIRegexp(`^example\\.(com|org)$`)";
    for (sni, want) in [
        ("example.com", true),
        ("example.com.", false),
        ("EXAMPLE.com", false),
        ("example.org", true),
        ("exampleuorg", false),
        ("", false),
    ] {
        assert_eq!(matches(rule, sni, "0.0.0.0", &[]), want, "{sni}");
    }
    // Traefik's v2-syntax case (`example.{tld:(com|org)}`) is a literal in Go's regexp and
    // matches nothing; Rust's regex refuses it, which is stricter and also matches nothing.
    assert!(compile("HostSNIRegexp(`example.{tld:(com|org)}`)").is_err());
}

#[test]
fn client_ip_and_alpn_cases() {
    assert!(matches("ClientIP(`20.20.20.20`)", "", "20.20.20.20", &[]));
    assert!(!matches("ClientIP(`20.20.20.20`)", "", "10.10.10.10", &[]));
    assert!(matches(
        "ClientIP(`20.20.20.20/24`)",
        "",
        "20.20.20.40",
        &[]
    ));
    assert!(!matches(
        "ClientIP(`20.20.20.20/24`)",
        "",
        "10.10.10.10",
        &[]
    ));
    assert!(matches("ClientIP(`10.0.0.1`)", "", "::ffff:10.0.0.1", &[]));
    assert!(matches("ALPN(`h2`)", "", "0.0.0.0", &["h2"]));
    assert!(!matches("ALPN(`h2`)", "", "0.0.0.0", &["mqtt"]));
    assert!(!matches("ALPN(`h2`)", "", "0.0.0.0", &[]));
}

/// Traefik's TestGetRulePriority and Test_HostSNICatchAll.
#[test]
fn priorities_and_catch_all() {
    assert_eq!(default_priority("HostSNI(`example.org`)"), 22);
    assert_eq!(default_priority("HostSNI(`*`)"), -1);
    assert_eq!(default_priority("   HostSNI ( `*` )       "), -1);
    assert!(!compile("HostSNI(`example.com`)").unwrap().is_catch_all());
    assert!(compile("HostSNI(`*`)").unwrap().is_catch_all());
    assert!(!compile("HostSNIRegexp(`.*`)").unwrap().is_catch_all());
    assert!(!compile("HostSNI(`*`) && ClientIP(`10.0.0.1`)")
        .unwrap()
        .is_catch_all());
}

#[test]
fn http_matchers_are_refused_by_name() {
    let e = compile("HostSNI(`*`) && PathPrefix(`/a`)")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("HTTP matcher \"PathPrefix\" cannot be used in a TCP rule"),
        "{e}"
    );
    let doc = "tcp:\n  routers:\n    db:\n      rule: \"Host(`db.example`)\"\n      service: s\n  services:\n    s: {loadBalancer: {servers: [{address: \"127.0.0.1:5432\"}]}}\n";
    let cfg = parse_document(doc).unwrap();
    let e = validate(&cfg).unwrap_err().to_string();
    assert!(
        e.starts_with("tcpRouter \"db\": rule: HTTP matcher \"Host\""),
        "{e}"
    );
}

const GOOD: &str = r#"
tcp:
  routers:
    pass:
      entryPoints: [websecure]
      rule: "HostSNI(`db.example.com`) || HostSNI(`*.db.example.com`)"
      service: pg
      tls: {passthrough: true}
    term:
      rule: "HostSNI(`mqtt.example.com`) && ALPN(`mqtt`)"
      priority: 10
      middlewares: [lan, few@file]
      service: both
      tls: {options: modern}
    plain:
      rule: "HostSNI(`*`)"
      service: echo
      clusters: [eu]
  services:
    pg:
      loadBalancer:
        servers: [{address: "10.0.0.1:5432", zone: a}, {address: "[::1]:5432", tls: true}]
        proxyProtocol: {version: 2}
        terminationDelay: 200
    echo: {loadBalancer: {servers: [{address: "echo.internal:7"}]}}
    both: {weighted: {services: [{name: pg, weight: 3}, {name: echo}]}}
  middlewares:
    lan: {ipAllowList: {sourceRange: ["10.0.0.0/8", "127.0.0.1"]}}
    few: {inFlightConn: {amount: 10}}
tls:
  options:
    modern: {minVersion: VersionTLS13}
"#;

#[test]
fn a_full_tcp_section_parses_validates_and_round_trips() {
    let cfg = parse_document(GOOD).unwrap();
    validate(&cfg).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.tcp.routers.len(), 3);
    let json = cfg.to_json_pretty();
    assert_eq!(parse_document(&json).unwrap(), cfg);
    let yaml = cfg.to_yaml();
    assert_eq!(parse_document(&yaml).unwrap(), cfg);
    // diff and delta see TCP resources.
    let empty = DynamicConfig::default();
    let changes = diff(&empty, &cfg);
    assert!(changes
        .iter()
        .any(|c| c.kind == ResourceKind::TcpRouter && c.name == "pass"));
    assert!(changes
        .iter()
        .any(|c| c.kind == ResourceKind::TcpMiddleware && c.name == "lan"));
    let delta = crate::delta::encode(&empty, &cfg).unwrap();
    let wire: Vec<_> = delta
        .iter()
        .map(|c| crate::DeltaChange::from_wire(c.kind.as_str(), c.name.clone(), &c.json()).unwrap())
        .collect();
    assert_eq!(crate::delta::apply(&empty, &wire), cfg);
    // Scope: the plain router goes to "eu" only, with its service.
    let us = crate::scope::for_cluster(&cfg, "us");
    assert!(!us.tcp.routers.contains_key("plain"));
    assert!(!us.tcp.services.contains_key("echo") || us.tcp.services.contains_key("both"));
    let eu = crate::scope::for_cluster(&cfg, "eu");
    assert!(eu.tcp.routers.contains_key("plain"));
    assert!(eu.tcp.services.contains_key("echo"));
}

/// TCP servers transports: parse → serialize → parse, diff, delta and scope like the other
/// TCP kinds; a certResolver on a terminating router is accepted.
#[test]
fn servers_transports_round_trip_diff_delta_and_scope() {
    let doc = r#"
certificatesResolvers:
  le: {acme: {email: a@b.test, storage: acme.json, tlsChallenge: {}}}
tcp:
  routers:
    db: {rule: "HostSNI(`db.example`)", service: db, tls: {certResolver: le, domains: [{main: db.example}]}, clusters: [eu]}
  services:
    db: {loadBalancer: {servers: [{address: "127.0.0.1:5432", tls: true}], serversTransport: secure}}
  serversTransports:
    secure:
      dialTimeout: 5s
      dialKeepAlive: "-1"
      terminationDelay: 200ms
      proxyProtocol: {version: 1}
      tls: {serverName: db.internal, insecureSkipVerify: true}
    unused: {dialTimeout: 1s}
"#;
    let cfg = parse_document(doc).unwrap();
    validate(&cfg).unwrap_or_else(|e| panic!("{e}"));
    let st = &cfg.tcp.servers_transports["secure"];
    assert_eq!(
        st.tls.as_ref().unwrap().server_name.as_deref(),
        Some("db.internal")
    );
    let yaml = serde_norway::to_string(&cfg).unwrap();
    assert_eq!(parse_document(&yaml).unwrap(), cfg, "{yaml}");
    let empty = DynamicConfig::default();
    let changes = crate::diff(&empty, &cfg);
    assert!(changes
        .iter()
        .any(|c| c.kind == ResourceKind::TcpServersTransport && c.name == "secure"));
    let delta = crate::delta::encode(&empty, &cfg).unwrap();
    let wire: Vec<_> = delta
        .iter()
        .map(|c| crate::DeltaChange::from_wire(c.kind.as_str(), c.name.clone(), &c.json()).unwrap())
        .collect();
    assert_eq!(crate::delta::apply(&empty, &wire), cfg);
    // Scope: a cluster without the router keeps neither its service nor its transport, but
    // keeps the transport no service uses.
    let us = crate::scope::for_cluster(&cfg, "us");
    assert!(!us.tcp.servers_transports.contains_key("secure"));
    assert!(us.tcp.servers_transports.contains_key("unused"));
    let eu = crate::scope::for_cluster(&cfg, "eu");
    assert!(eu.tcp.servers_transports.contains_key("secure"));
    // Removal by kind.
    let mut c2 = cfg.clone();
    c2.remove(crate::Kind::TcpServersTransport, "unused")
        .unwrap();
    assert!(!c2.tcp.servers_transports.contains_key("unused"));
    assert!(c2.remove(crate::Kind::TcpRouter, "nope").is_err());
}

fn errors_of(doc: &str) -> String {
    match parse_document(doc) {
        Err(e) => e.to_string(),
        Ok(cfg) => validate(&cfg).map_or_else(|e| e.to_string(), |()| String::new()),
    }
}

#[test]
fn bad_tcp_input_names_resource_and_field() {
    let svc = "  services:\n    s: {loadBalancer: {servers: [{address: \"127.0.0.1:1\"}]}}\n";
    let cases = [
        (
            format!("tcp:\n  routers:\n    r: {{rule: \"HostSNI(`a.example`)\", service: s, tls: {{passthrough: true, certResolver: le}}}}\n{svc}"),
            "tcpRouter \"r\": tls.certResolver: cannot be used with tls.passthrough",
        ),
        (
            format!("tcp:\n  routers:\n    r: {{rule: \"HostSNI(`a.example`)\", service: s}}\n{svc}"),
            "tcpRouter \"r\": rule: HostSNI(\"a.example\") needs TLS",
        ),
        (
            format!("tcp:\n  routers:\n    r: {{rule: \"HostSNI(`*`)\", service: nope}}\n{svc}"),
            "tcpRouter \"r\": service: tcpService \"nope\" not found",
        ),
        (
            "tcp:\n  services:\n    s: {loadBalancer: {servers: [{address: \"127.0.0.1\"}]}}\n".to_string(),
            "tcpService \"s\": loadBalancer.servers[0].address: \"127.0.0.1\" has no port",
        ),
        (
            "tcp:\n  services:\n    s: {loadBalancer: {servers: [{address: \"a:1\"}], proxyProtocol: {version: 3}}}\n".to_string(),
            "tcpService \"s\": loadBalancer.proxyProtocol.version: must be 1 or 2, got 3",
        ),
        (
            "tcp:\n  services:\n    s: {loadBalancer: {servers: [{url: \"http://a:1\"}]}}\n".to_string(),
            "tcpService \"s\": loadBalancer.servers[0]: unknown field \"url\"",
        ),
        (
            "tcp:\n  services:\n    a: {weighted: {services: [{name: b}]}}\n    b: {weighted: {services: [{name: a}]}}\n".to_string(),
            "tcpService \"a\": weighted.services: the weighted service references itself",
        ),
        (
            "tcp:\n  middlewares:\n    m: {ipAllowList: {sourceRange: [\"10.0.0.300\"]}}\n".to_string(),
            "tcpMiddleware \"m\": ipAllowList.sourceRange[0]: invalid IP address or CIDR range",
        ),
        (
            "tcp:\n  middlewares:\n    m: {inFlightConn: {amount: 0}}\n".to_string(),
            "tcpMiddleware \"m\": inFlightConn.amount: must be greater than zero",
        ),
        (
            "tcp:\n  middlewares:\n    m: {stripPrefix: {prefixes: [/a]}}\n".to_string(),
            "tcpMiddleware \"m\": unknown field \"stripPrefix\"",
        ),
        (
            format!("tcp:\n  routers:\n    r: {{rule: \"HostSNI(`a.example`)\", service: s, tls: {{certResolver: le}}}}\n{svc}"),
            "tcpRouter \"r\": tls.certResolver: certificate resolver \"le\" not found",
        ),
        (
            "tcp:\n  services:\n    s: {loadBalancer: {servers: [{address: \"a:1\"}], serversTransport: nope}}\n".to_string(),
            "tcpService \"s\": loadBalancer.serversTransport: tcpServersTransport \"nope\" not found",
        ),
        (
            "tcp:\n  serversTransports:\n    t: {dialTimeout: \"-1s\"}\n".to_string(),
            "tcpServersTransport \"t\": dialTimeout: must not be negative",
        ),
        (
            "tcp:\n  serversTransports:\n    t: {dialKeepAlive: \"10 parsecs\"}\n".to_string(),
            "tcpServersTransport \"t\": dialKeepAlive: invalid duration",
        ),
        (
            "tcp:\n  serversTransports:\n    t: {proxyProtocol: {version: 7}}\n".to_string(),
            "tcpServersTransport \"t\": proxyProtocol.version: must be 1 or 2, got 7",
        ),
        (
            "tcp:\n  serversTransports:\n    t: {tls: {spiffe: {ids: [\"spiffe://x/y\"]}}}\n".to_string(),
            "tcpServersTransport \"t\": tls.spiffe: SPIFFE is not supported",
        ),
        (
            "tcp:\n  serversTransports:\n    t: {tls: {peerCertURI: \"spiffe://x\"}}\n".to_string(),
            "tcpServersTransport \"t\": tls.peerCertURI: peerCertURI is not supported",
        ),
        (
            "tcp:\n  serversTransports:\n    t: {tls: {serverName: \"a b\"}}\n".to_string(),
            "tcpServersTransport \"t\": tls.serverName: invalid server name",
        ),
        (
            "tcp:\n  serversTransports:\n    t: {tls: {rootCAs: [\"not pem\"]}}\n".to_string(),
            "tcpServersTransport \"t\": tls.rootCAs[0]: rootCAs must hold PEM",
        ),
        (
            "tcp:\n  serversTransports:\n    t: {tls: {minVersion: VersionTLS12}}\n".to_string(),
            "unknown field \"minVersion\"",
        ),
    ];
    for (doc, want) in cases {
        let got = errors_of(&doc);
        assert!(got.contains(want), "{doc}\nwant: {want}\ngot:  {got}");
    }
}

/// README.md's TCP example parses and validates.
#[test]
fn readme_tcp_example_is_valid() {
    let readme = include_str!("../../../../README.md");
    let block = readme
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.starts_with("tcp:"))
        .expect("a yaml block starting with tcp: in README.md");
    let cfg = parse_document(block).unwrap();
    validate(&cfg).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.tcp.routers.len(), 2);
}
