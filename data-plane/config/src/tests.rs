//! Crate-level tests: documents, validation, diff/merge and the rule language.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::rules::{self, RequestView};
use crate::*;

// ------------------------------------------------------------------------------------------
// helpers

fn parse_err(doc: &str) -> String {
    match parse_document(doc) {
        Ok(c) => panic!("expected a parse error for {doc:?}, got {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn validate_doc(doc: &str) -> Vec<String> {
    let cfg = parse_document(doc).unwrap_or_else(|e| panic!("parse failed: {e}"));
    match validate(&cfg) {
        Ok(()) => Vec::new(),
        Err(es) => es.0.iter().map(ToString::to_string).collect(),
    }
}

/// Validate a document with a valid service `svc` and one router `r` using `rule`.
fn rule_error(rule: &str) -> String {
    let cfg = rules::compile(rule).err();
    match cfg {
        Some(e) => e.to_string(),
        None => panic!("expected rule {rule:?} to be rejected"),
    }
}

const BASE: &str = r#"
http:
  services:
    svc:
      loadBalancer:
        servers:
          - url: http://127.0.0.1:8080
"#;

fn with_base(extra: &str) -> String {
    format!("{BASE}{extra}")
}

// ------------------------------------------------------------------------------------------
// documents and round trips

const FULL: &str = r#"
http:
  routers:
    api:
      rule: "Host(`api.example.com`) && PathPrefix(`/v1`)"
      ruleSyntax: v3
      priority: 10
      entryPoints: [web, websecure]
      middlewares: [strip, hdrs@file]
      service: web
      observability:
        accessLogs: true
        metrics: false
        tracing: true
        traceVerbosity: detailed
    catchall:
      rule: "PathPrefix(`/`)"
      service: split
  services:
    web:
      loadBalancer:
        servers:
          - url: http://10.0.0.1:8080
            weight: 3
            zone: a1
            region: a
          - url: h2c://10.0.0.2:9000
            preservePath: true
        strategy: p2c
        sticky:
          cookie:
            name: sticky
            secure: true
            httpOnly: true
            sameSite: lax
            maxAge: 3600
            path: /
            domain: example.com
        healthCheck:
          scheme: http
          mode: http
          path: /health
          method: GET
          status: 200
          port: 8081
          interval: 10s
          unhealthyInterval: 1m30s
          timeout: 3
          hostname: health.local
          followRedirects: false
          headers:
            X-Check: "1"
        passiveHealthCheck:
          failureWindow: 10s
          maxFailedAttempts: 3
        passHostHeader: false
        serversTransport: tr
        responseForwarding:
          flushInterval: -1ms
    split:
      weighted:
        services:
          - name: web
            weight: 9
          - name: mirror
            weight: 1
        sticky:
          cookie:
            name: w
        healthCheck: {}
    mirror:
      mirroring:
        service: web
        mirrorBody: false
        maxBodySize: 1024
        mirrors:
          - name: fo
            percent: 10
        healthCheck: {}
    fo:
      failover:
        service: web
        fallback: web2
        healthCheck: {}
    web2:
      loadBalancer:
        servers:
          - url: https://backup.example.com
  middlewares:
    strip:
      stripPrefix:
        prefixes: [/v1]
        forceSlash: false
    stripre:
      stripPrefixRegex:
        regex: ["^/[a-z]+"]
    add:
      addPrefix:
        prefix: /api
    rp:
      replacePath:
        path: /new
    rpr:
      replacePathRegex:
        regex: "^/old/(.*)"
        replacement: "/new/$1"
    hdrs:
      headers:
        customRequestHeaders:
          X-Script: "1"
          X-Remove: ""
          X-Remove-Too:
        customResponseHeaders:
          X-Served-By: switchyard
    rs:
      redirectScheme:
        scheme: https
        port: "443"
        permanent: true
    rs2:
      redirectScheme:
        scheme: https
        port: 8443
    rr:
      redirectRegex:
        regex: "^http://old/(.*)"
        replacement: "http://new/${1}"
        permanent: false
    ch:
      chain:
        middlewares: [strip, hdrs]
  serversTransports:
    tr:
      serverName: backend.local
      insecureSkipVerify: true
      maxIdleConnsPerHost: 50
      disableHTTP2: true
      forwardingTimeouts:
        dialTimeout: 5s
        responseHeaderTimeout: 0
        idleConnTimeout: 90s
        readIdleTimeout: 10s
        pingTimeout: 15s
tls:
  options:
    modern:
      minVersion: VersionTLS12
      maxVersion: VersionTLS13
      cipherSuites: [TLS_AES_128_GCM_SHA256]
      curvePreferences: [X25519]
      clientAuth:
        caFiles: ["-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n"]
        clientAuthType: RequireAndVerifyClientCert
      sniStrict: true
      alpnProtocols: [h2, http/1.1]
      preferServerCipherSuites: true
  stores:
    default:
      defaultCertificate:
        certFile: "-----BEGIN CERTIFICATE-----\ncert\n-----END CERTIFICATE-----\n"
        keyFile: "-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n"
"#;

#[test]
fn full_document_parses_and_validates() {
    let cfg = parse_document(FULL).unwrap();
    assert_eq!(cfg.http.routers.len(), 2);
    assert_eq!(cfg.http.services.len(), 5);
    assert_eq!(cfg.http.middlewares.len(), 10);
    assert_eq!(validate(&cfg), Ok(()));
    let lb = cfg.http.services["web"].load_balancer.as_ref().unwrap();
    assert_eq!(lb.servers[0].zone.as_deref(), Some("a1"));
    assert_eq!(
        lb.health_check.as_ref().unwrap().timeout,
        Some(Duration(StrOrInt::Int(3)))
    );
    assert_eq!(
        lb.health_check
            .as_ref()
            .unwrap()
            .interval
            .as_ref()
            .unwrap()
            .to_std(),
        Ok(std::time::Duration::from_secs(10))
    );
    assert!(matches!(
        cfg.http.middlewares["rs2"],
        Middleware::RedirectScheme(RedirectScheme {
            port: Some(StrOrInt::Int(8443)),
            ..
        })
    ));
    assert_eq!(cfg.http.routers["api"].effective_priority(), 10);
    assert_eq!(cfg.http.routers["catchall"].effective_priority(), 15);
}

#[test]
fn round_trip_json_and_yaml() {
    let cfg = parse_document(FULL).unwrap();
    let json = serde_json::to_string_pretty(&cfg).unwrap();
    assert_eq!(parse_document(&json).unwrap(), cfg, "json:\n{json}");
    let yaml = serde_norway::to_string(&cfg).unwrap();
    assert_eq!(parse_document(&yaml).unwrap(), cfg, "yaml:\n{yaml}");
    // Through the helpers too, and serde directly.
    assert_eq!(parse_document(&cfg.to_json_pretty()).unwrap(), cfg);
    assert_eq!(parse_document(&cfg.to_yaml()).unwrap(), cfg);
    let direct: DynamicConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(direct, cfg);
    // Serializing a clean document gives back the same JSON value.
    let again = serde_json::to_value(parse_document(&json).unwrap()).unwrap();
    assert_eq!(again, serde_json::to_value(&cfg).unwrap());
}

#[test]
fn round_trip_unsupported_middlewares_and_tls() {
    let doc = r#"
http:
  middlewares:
    rl:
      rateLimit:
        average: 100
        burst: 50
        period: 1s
    auth:
      basicAuth:
        users: ["u:$apr1$x"]
    nothing:
      compress: {}
    sec:
      headers:
        frameDeny: true
        stsSeconds: 31536000
        forceSTSHeader: true
        customBrowserXSSValue: "1"
        accessControlAllowMethods: [GET]
        sslProxyHeaders:
          X-Forwarded-Proto: https
tls:
  certificates:
    - certFile: /c.pem
      keyFile: /k.pem
      stores: [default]
"#;
    let cfg = parse_document(doc).unwrap();
    for text in [
        serde_json::to_string(&cfg).unwrap(),
        serde_norway::to_string(&cfg).unwrap(),
    ] {
        assert_eq!(parse_document(&text).unwrap(), cfg, "{text}");
    }
    let v = cfg.resource_json(Kind::Middleware, "rl").unwrap();
    assert_eq!(
        v,
        serde_json::json!({"rateLimit": {"average": 100, "burst": 50, "period": "1s"}})
    );
}

#[test]
fn empty_documents() {
    for doc in [
        "",
        "   \n",
        "# only a comment\n",
        "{}",
        "---\n",
        "\u{feff}",
        "http:\n",
        "http: {}\ntls: {}\n",
        "tcp: {}\n",
    ] {
        let cfg = parse_document(doc).unwrap_or_else(|e| panic!("{doc:?}: {e}"));
        assert!(cfg.is_empty(), "{doc:?}");
        assert_eq!(validate(&cfg), Ok(()));
    }
}

#[test]
fn json_documents_and_yaml_flow() {
    let json = r#"{"http":{"routers":{"r":{"rule":"Path(`/`)","service":"s"}},"services":{"s":{"loadBalancer":{"servers":[{"url":"http://a"}]}}}}}"#;
    let cfg = parse_document(json).unwrap();
    assert_eq!(validate(&cfg), Ok(()));
    let flow = "{http: {routers: {r: {rule: 'Path(`/`)', service: s}}}}";
    assert_eq!(
        parse_document(flow).unwrap().http.routers["r"].service,
        "s".into()
    );
}

#[test]
fn yaml_merge_keys_and_null_collections() {
    let doc = r#"
x-defaults: &d
  service: svc
  entryPoints:
http:
  routers:
    a:
      <<: *d
      rule: Path(`/a`)
"#;
    // Unknown top-level keys are rejected even when used for anchors.
    assert_eq!(
        parse_err(doc),
        r#"unknown top-level field "x-defaults", expected "http", "tcp", "tls" or "certificatesResolvers""#
    );
    let doc = r#"
http:
  routers:
    a: &d
      rule: Path(`/a`)
      service: svc
      entryPoints:
      middlewares:
    b:
      <<: *d
      rule: Path(`/b`)
"#;
    let cfg = parse_document(doc).unwrap();
    assert_eq!(cfg.http.routers["b"].service, "svc".into());
    assert_eq!(cfg.http.routers["b"].rule, "Path(`/b`)".into());
    assert!(cfg.http.routers["a"].entry_points.is_empty());
}

// ------------------------------------------------------------------------------------------
// parse errors (exact text)

#[test]
fn parse_error_messages() {
    let cases: &[(&str, &str)] = &[
        // broken YAML
        (
            "http:\n  routers:\n    api:\n      rule: [\n",
            "router \"api\": rule: invalid YAML: did not find expected node content at line 5 column 1, while parsing a flow node",
        ),
        (
            "http:\n  routers:\n   api:\n  rule: x\n foo",
            "invalid YAML: did not find expected key at line 5 column 2, while parsing a block mapping",
        ),
        (
            "http:\n  routers:\n    api:\n      rule: a\n      rule: b\n",
            "router \"api\": rule: duplicate key \"rule\" (at line 4 column 7)",
        ),
        ("{\"http\": ", "http: invalid JSON: EOF while parsing a value at line 1 column 9"),
        // unknown fields
        (
            "http:\n  routers:\n    api:\n      rulee: x\n",
            r#"router "api": unknown field "rulee", expected one of "rule", "ruleSyntax", "priority", "entryPoints", "middlewares", "service", "tls", "observability", "clusters""#,
        ),
        (
            "http:\n  services:\n    web:\n      loadBalancer:\n        serverz: []\n",
            r#"service "web": loadBalancer: unknown field "serverz", expected one of "servers", "strategy", "sticky", "healthCheck", "passiveHealthCheck", "passHostHeader", "serversTransport", "responseForwarding""#,
        ),
        (
            "http:\n  middlewares:\n    x:\n      addPrefix:\n        prefx: /a\n",
            r#"middleware "x": addPrefix: unknown field "prefx", expected "prefix""#,
        ),
        (
            "tls:\n  certificates:\n    - certFile: a\n      keyFle: b\n",
            r#"tls.certificates[0]: unknown field "keyFle", expected one of "certFile", "keyFile", "stores""#,
        ),
        (
            "htp:\n  routers: {}\n",
            r#"unknown top-level field "htp", expected "http", "tcp", "tls" or "certificatesResolvers""#,
        ),
        (
            "http:\n  routes: {}\n",
            r#"http: unknown field "routes", expected one of "routers", "services", "middlewares", "serversTransports""#,
        ),
        (
            "http:\n  services:\n    s:\n      loadbalancer: {}\n",
            r#"service "s": unknown field "loadbalancer", expected one of "loadBalancer", "weighted", "mirroring", "failover""#,
        ),
        // type errors
        (
            "http:\n  services:\n    web:\n      loadBalancer:\n        servers:\n          - url: http://a\n            weight: x\n",
            r#"service "web": loadBalancer.servers[0].weight: invalid type: string "x", expected u32"#,
        ),
        (
            "http:\n  services:\n    web:\n      loadBalancer:\n        servers:\n          - url: http://a\n            weight: -1\n",
            r#"service "web": loadBalancer.servers[0].weight: invalid value: integer -1, expected u32"#,
        ),
        (
            "{\"http\": {\"routers\": {\"a\": {\"rule\": 1}}}}",
            r#"router "a": rule: invalid type: integer 1, expected a string"#,
        ),
        (
            "http:\n  routers:\n    a:\n      priority: high\n",
            r#"router "a": priority: invalid type: string "high", expected i64"#,
        ),
        (
            "http:\n  serversTransports:\n    t:\n      forwardingTimeouts:\n        dialTimeout: 1.5\n",
            r#"serversTransport "t": forwardingTimeouts.dialTimeout: invalid type: floating point 1.5, expected a duration such as "10s" or an integer number of seconds"#,
        ),
        (
            "http:\n  middlewares:\n    x:\n      headers:\n        frameDeny: yes\n",
            r#"middleware "x": headers.frameDeny: invalid type: string "yes", expected a boolean"#,
        ),
        // shapes
        (
            "http:\n  routers:\n    api:\n  services: {}\n",
            r#"router "api": definition is empty; expected a router definition"#,
        ),
        ("- a\n", r#"expected a mapping with "http" and/or "tls" at the top level, got a sequence"#),
        (
            "http:\n  routers: [a]\n",
            "http.routers: expected a mapping of router names to routers, got a sequence",
        ),
        (
            "udp:\n  services:\n    s:\n      loadBalancer: {}\n",
            "udp routers are not supported (Switchyard routes HTTP and TCP)",
        ),
        // middleware kinds
        (
            "http:\n  middlewares:\n    x:\n      fooBar: {}\n",
            r#"middleware "x": unknown middleware kind "fooBar""#,
        ),
        (
            "http:\n  middlewares:\n    x: {}\n",
            r#"middleware "x": no middleware kind set; expected exactly one (e.g. "stripPrefix")"#,
        ),
        (
            "http:\n  middlewares:\n    x:\n      addPrefix:\n        prefix: /a\n      stripPrefix:\n        prefixes: [/b]\n",
            r#"middleware "x": exactly one middleware kind must be set, found 2: "addPrefix", "stripPrefix""#,
        ),
        (
            "http:\n  middlewares:\n    x:\n      addPrefix:\n",
            r#"middleware "x": addPrefix: options are empty"#,
        ),
        (
            "http:\n  middlewares:\n    x: stripPrefix\n",
            r#"middleware "x": expected a mapping with exactly one middleware kind, got a string"#,
        ),
        (
            "a: 1\n---\nb: 2\n",
            "invalid YAML: deserializing from YAML containing more than one document is not supported",
        ),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(doc, want)| {
            let got = parse_err(doc);
            (got != *want).then(|| format!("document: {doc:?}\n  got:  {got}\n  want: {want}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // ConfigError structure.
    let e = parse_document("http:\n  routers:\n    api:\n      rulee: x\n").unwrap_err();
    assert_eq!(e.resource.as_deref(), Some("router \"api\""));
    assert_eq!(e.field, None);
}

// ------------------------------------------------------------------------------------------
// validation errors (exact text)

#[test]
fn validation_error_messages() {
    let router = |rule: &str| {
        with_base(&format!(
            "  routers:\n    api:\n      rule: {}\n      service: svc\n",
            serde_json::to_string(rule).unwrap()
        ))
    };
    let cases: Vec<(String, Vec<&str>)> = vec![
        (router("Hots(`a.com`)"), vec![r#"router "api": rule: unknown matcher "Hots" at column 1"#]),
        (
            router("Host(`a.com`, `b.com`)"),
            vec![r#"router "api": rule: Host: expected 1 argument, got 2 at column 1"#],
        ),
        (
            router("Host(`a.com`) && (Path"),
            vec![r#"router "api": rule: unexpected end of rule, expected "(" at column 23"#],
        ),
        (
            router("PathRegexp(`(`)"),
            vec![r#"router "api": rule: PathRegexp: invalid regexp "(": unclosed group at column 1"#],
        ),
        (router("Host(`a.com)"), vec![r#"router "api": rule: unterminated string at column 6"#]),
        (
            router("Host(`a.com`) & Path(`/`)"),
            vec![r#"router "api": rule: unexpected token "&" at column 15"#],
        ),
        (
            router("Host('a.com')"),
            vec![r#"router "api": rule: single-quoted strings are not supported; use backticks or double quotes at column 6"#],
        ),
        (
            router("Path(`api`)"),
            vec![r#"router "api": rule: Path: path "api" must start with "/" at column 1"#],
        ),
        (router(""), vec![r#"router "api": rule: a rule is required"#]),
        (
            with_base("  routers:\n    api:\n      rule: Path(`/`)\n      service: nope\n"),
            vec![r#"router "api": service: service "nope" not found"#],
        ),
        (
            with_base("  routers:\n    api:\n      rule: Path(`/`)\n      service: svc@docker\n      middlewares: [auth@file, '']\n"),
            vec![
                r#"router "api": middlewares[0]: middleware "auth" not found"#,
                r#"router "api": middlewares[1]: a middleware name is required"#,
            ],
        ),
        (
            with_base("  routers:\n    api:\n      rule: Path(`/`)\n      service: api@internal\n"),
            vec![r#"router "api": service: "api@internal" refers to a Traefik internal service, which is not supported by this version of Switchyard"#],
        ),
        (
            with_base("  routers:\n    api:\n      rule: Path(`/`)\n"),
            vec![r#"router "api": service: a service is required"#],
        ),
        (
            with_base("  routers:\n    api:\n      rule: Path(`/`)\n      service: svc\n      priority: 9223372036854775000\n"),
            vec![r#"router "api": priority: must be at most 9223372036854774807 (higher values are reserved)"#],
        ),
        (
            with_base("  routers:\n    api:\n      rule: Path(`/`)\n      service: svc\n      ruleSyntax: v2\n"),
            vec![r#"router "api": ruleSyntax: v2 rule syntax is not supported; rewrite the rule in v3 syntax"#],
        ),
        (
            with_base("  routers:\n    api:\n      rule: Path(`/`)\n      service: svc\n      tls: {options: missing, certResolver: le}\n"),
            vec![
                r#"router "api": tls.certResolver: certificate resolver "le" not found"#,
                r#"router "api": tls.options: TLS option "missing" not found"#,
            ],
        ),
        (
            with_base("  routers:\n    api:\n      rule: Path(`/`)\n      service: svc\n      entryPoints: ['']\n"),
            vec![r#"router "api": entryPoints[0]: must not be empty"#],
        ),
        (
            with_base("  routers:\n    \"my router\":\n      rule: Path(`/`)\n      service: svc\n    \"\":\n      rule: Path(`/`)\n      service: svc\n    a@file:\n      rule: Path(`/`)\n      service: svc\n"),
            vec![
                r#"router "": name must not be empty"#,
                r#"router "a@file": name must not contain "@" (the @provider suffix is only used in references)"#,
                r#"router "my router": name must not contain whitespace"#,
            ],
        ),
        (
            "http:\n  services:\n    web:\n      loadBalancer:\n        servers:\n          - url: http://ok\n          - url: htp:/x\n          - url: 'not a url'\n          - url: http://\n          - url: h2c:/x\n".to_string(),
            vec![
                r#"service "web": loadBalancer.servers[1].url: invalid URL "htp:/x": unsupported scheme "htp", expected http, https or h2c"#,
                r#"service "web": loadBalancer.servers[2].url: invalid URL "not a url": relative URL without a base"#,
                r#"service "web": loadBalancer.servers[3].url: invalid URL "http://": empty host"#,
                r#"service "web": loadBalancer.servers[4].url: invalid URL "h2c:/x": missing host"#,
            ],
        ),
        (
            "http:\n  services:\n    web:\n      loadBalancer: {}\n      weighted: {}\n".to_string(),
            vec![
                r#"service "web": exactly one of loadBalancer, weighted, mirroring, failover must be set"#,
                r#"service "web": loadBalancer.servers: at least one server is required"#,
                r#"service "web": weighted.services: at least one service is required"#,
            ],
        ),
        (
            "http:\n  services:\n    web: {}\n".to_string(),
            vec![r#"service "web": exactly one of loadBalancer, weighted, mirroring, failover must be set"#],
        ),
        (
            "http:\n  services:\n    a:\n      weighted:\n        services: [{name: b}]\n    b:\n      failover:\n        service: a\n        fallback: c\n    c:\n      loadBalancer:\n        servers: [{url: 'http://x'}]\n".to_string(),
            vec![r#"service "a": weighted.services[0].name: services form a cycle a -> b -> a"#],
        ),
        (
            "http:\n  services:\n    self:\n      mirroring:\n        service: self\n        mirrors: [{name: ghost, percent: 150}]\n".to_string(),
            vec![
                r#"service "self": mirroring.mirrors[0].name: service "ghost" not found"#,
                r#"service "self": mirroring.mirrors[0].percent: must be between 0 and 100, got 150"#,
                r#"service "self": mirroring.service: services form a cycle self -> self"#,
            ],
        ),
        (
            with_base("  middlewares:\n    rl:\n      buffering:\n        maxRequestBodyBytes: -3\n"),
            vec![r#"middleware "rl": buffering.maxRequestBodyBytes: must not be negative (got -3)"#],
        ),
        (
            with_base("  middlewares:\n    pl:\n      plugin:\n        demo: {}\n"),
            vec![r#"middleware "pl": plugin middlewares are not supported by this version of Switchyard"#],
        ),
        (
            with_base("  middlewares:\n    rl:\n      rateLimit:\n        average: -10\n        redis: {endpoints: [\"r:6379\"]}\n"),
            vec![
                r#"middleware "rl": rateLimit.average: must be 0 or more, got -10"#,
                r#"middleware "rl": rateLimit.redis: is not supported by this version of Switchyard"#,
            ],
        ),
        (
            with_base("  middlewares:\n    sec:\n      headers:\n        frameDeny: true\n        customFrameOptionsValue: \"a\\u0001\"\n        accessControlAllowOriginListRegex: [\"a(b\"]\n        hostsProxyHeaders: [\"bad header\"]\n"),
            vec![
                r#"middleware "sec": headers.accessControlAllowOriginListRegex[0]: invalid regexp "a(b": unclosed group"#,
                r#"middleware "sec": headers.customFrameOptionsValue: must be a valid header value (visible ASCII, spaces and tabs), got "a\u{1}""#,
                r#"middleware "sec": headers.hostsProxyHeaders[0]: invalid header name "bad header""#,
            ],
        ),
        (
            with_base("  middlewares:\n    a:\n      chain:\n        middlewares: [b]\n    b:\n      chain:\n        middlewares: [a, zz]\n"),
            vec![
                r#"middleware "a": chain.middlewares[0]: chains form a cycle a -> b -> a"#,
                r#"middleware "b": chain.middlewares[1]: middleware "zz" not found"#,
            ],
        ),
        (
            with_base("  middlewares:\n    m1:\n      addPrefix:\n        prefix: api\n    m2:\n      stripPrefixRegex:\n        regex: ['[a-']\n    m3:\n      redirectScheme:\n        scheme: ''\n        port: 70000\n    m4:\n      replacePathRegex:\n        regex: ''\n"),
            vec![
                r#"middleware "m1": addPrefix.prefix: must start with "/", got "api""#,
                r#"middleware "m2": stripPrefixRegex.regex[0]: invalid regexp "[a-": unclosed character class"#,
                r#"middleware "m3": redirectScheme.port: invalid port "70000", expected 1-65535"#,
                r#"middleware "m3": redirectScheme.scheme: a scheme is required"#,
                r#"middleware "m4": replacePathRegex.regex: a regexp is required"#,
            ],
        ),
        (
            "http:\n  services:\n    s:\n      loadBalancer:\n        servers: [{url: 'http://a'}]\n        strategy: hrw\n        sticky: {cookie: {sameSite: Lax}}\n        healthCheck:\n          interval: 0s\n          timeout: 10x\n          status: 700\n          mode: grpc\n        serversTransport: missing\n    t:\n      loadBalancer:\n        servers: [{url: 'http://a'}]\n        strategy: random\n".to_string(),
            vec![
                r#"service "s": loadBalancer.healthCheck.interval: must be greater than zero, got "0s""#,
                r#"service "s": loadBalancer.healthCheck.mode: health check mode "grpc" is not supported by this version of Switchyard"#,
                r#"service "s": loadBalancer.healthCheck.status: must be between 100 and 599, got 700"#,
                r#"service "s": loadBalancer.healthCheck.timeout: invalid duration "10x": unknown unit "x" (expected ns, us, ms, s, m or h)"#,
                r#"service "s": loadBalancer.serversTransport: serversTransport "missing" not found"#,
                r#"service "s": loadBalancer.sticky.cookie.sameSite: invalid value "Lax", expected "none", "lax" or "strict""#,
                r#"service "s": loadBalancer.strategy: strategy "hrw" is not supported by this version of Switchyard"#,
                r#"service "t": loadBalancer.strategy: unknown strategy "random", expected "wrr" or "p2c""#,
            ],
        ),
        (
            "http:\n  serversTransports:\n    t:\n      rootCAs: [ca.pem]\n      certificates: [{certFile: c, keyFile: k}]\n      forwardingTimeouts:\n        dialTimeout: soon\n".to_string(),
            vec![
                r#"serversTransport "t": certificates[0].certFile: certFile must hold PEM; `switchyard apply` uploads file contents"#,
                r#"serversTransport "t": certificates[0].keyFile: keyFile must hold PEM; `switchyard apply` uploads file contents"#,
                r#"serversTransport "t": forwardingTimeouts.dialTimeout: invalid duration "soon": expected a number"#,
                r#"serversTransport "t": rootCAs[0]: rootCAs must hold PEM; `switchyard apply` uploads file contents"#,
            ],
        ),
        (
            "tls:\n  certificates:\n    - certFile: c\n      keyFile: k\n      stores: [other]\n  options:\n    o:\n      minVersion: TLS12\n      clientAuth:\n        clientAuthType: Always\n    p:\n      minVersion: VersionTLS13\n      maxVersion: VersionTLS12\n    q:\n      maxVersion: VersionTLS11\n".to_string(),
            vec![
                "tls.certificates[0].certFile: certFile must hold PEM; `switchyard apply` uploads file contents",
                "tls.certificates[0].keyFile: keyFile must hold PEM; `switchyard apply` uploads file contents",
                r#"tls.certificates[0].stores[0]: unknown TLS store "other": only the "default" store is used (as in Traefik v3)"#,
                r#"tlsOption "o": clientAuth.clientAuthType: unknown client auth type "Always", expected one of "NoClientCert", "RequestClientCert", "RequireAnyClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert""#,
                r#"tlsOption "o": minVersion: unknown TLS version "TLS12", expected one of "VersionTLS10", "VersionTLS11", "VersionTLS12", "VersionTLS13""#,
                r#"tlsOption "p": minVersion: must not be greater than maxVersion"#,
                r#"tlsOption "q": maxVersion: TLS 1.0 and 1.1 are not supported (Switchyard serves TLS 1.2 and 1.3)"#,
            ],
        ),
    ];
    for (doc, want) in &cases {
        let got = validate_doc(doc);
        assert_eq!(&got, want, "document:\n{doc}");
    }
    assert!(cases.len() >= 25);
}

/// Values that reach the wire (header names and values, hosts, TLS server names, cookie
/// attributes, request paths): whatever `validate` accepts, the proxy must compile and use
/// without refusing the config or failing requests.
#[test]
fn wire_value_error_messages() {
    let lb = |url: &str, extra: &str| {
        format!(
            "http:\n  services:\n    s:\n      loadBalancer:\n        servers: [{{url: {}}}]\n{extra}",
            serde_json::to_string(url).unwrap()
        )
    };
    let mw = |body: &str| with_base(&format!("  middlewares:\n    m:\n      {body}\n"));
    let long_name = "a".repeat(crate::syntax::MAX_HEADER_NAME_LEN + 1);
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        // 1. headers middleware: names are tokens, values have no control character but tab.
        (
            "header name not a token",
            mw(r#"headers: {customRequestHeaders: {"X A": b}}"#),
            vec![r#"middleware "m": headers.customRequestHeaders: invalid header name "X A""#],
        ),
        (
            "response header name not a token",
            mw(r#"headers: {customResponseHeaders: {"X:A": b}}"#),
            vec![r#"middleware "m": headers.customResponseHeaders: invalid header name "X:A""#],
        ),
        (
            "request header value with a control character",
            mw(r#"headers: {customRequestHeaders: {X-A: "a\x01b"}}"#),
            vec![r#"middleware "m": headers.customRequestHeaders: invalid value for header "X-A": contains a control character (only horizontal tab is allowed)"#],
        ),
        (
            "response header value with DEL",
            mw(r#"headers: {customResponseHeaders: {X-A: "a\x7Fb"}}"#),
            vec![r#"middleware "m": headers.customResponseHeaders: invalid value for header "X-A": contains a control character (only horizontal tab is allowed)"#],
        ),
        (
            "header value with LF (was already rejected)",
            mw(r#"headers: {customRequestHeaders: {X-A: "a\nb"}}"#),
            vec![r#"middleware "m": headers.customRequestHeaders: invalid value for header "X-A": contains a control character (only horizontal tab is allowed)"#],
        ),
        (
            "header name longer than the proxy accepts",
            format!(
                r#"{{"http": {{"middlewares": {{"m": {{"headers": {{"customRequestHeaders": {{"{long_name}": "v"}}}}}}}}}}}}"#
            ),
            vec![r#"middleware "m": headers.customRequestHeaders: invalid header name: longer than 65535 bytes"#],
        ),
        // 2. health check headers and hostname.
        (
            "health check header name",
            lb("http://a", "        healthCheck: {headers: {\"X A\": b}}\n"),
            vec![r#"service "s": loadBalancer.healthCheck.headers: invalid header name "X A""#],
        ),
        (
            "health check header value",
            lb("http://a", "        healthCheck: {headers: {X-A: \"a\\x1Fb\"}}\n"),
            vec![r#"service "s": loadBalancer.healthCheck.headers: invalid value for header "X-A": contains a control character (only horizontal tab is allowed)"#],
        ),
        (
            "health check hostname with a space",
            lb("http://a", "        healthCheck: {hostname: \"a b\"}\n"),
            vec![r#"service "s": loadBalancer.healthCheck.hostname: invalid hostname "a b", expected a DNS name or an IP address, with an optional port"#],
        ),
        (
            "health check hostname with a control character",
            lb("http://a", "        healthCheck: {hostname: \"a\\x01.com\"}\n"),
            vec![r#"service "s": loadBalancer.healthCheck.hostname: invalid hostname "a\u{1}.com", expected a DNS name or an IP address, with an optional port"#],
        ),
        (
            "health check hostname with a bad port",
            lb("http://a", "        healthCheck: {hostname: \"a.com:http\"}\n"),
            vec![r#"service "s": loadBalancer.healthCheck.hostname: invalid hostname "a.com:http", expected a DNS name or an IP address, with an optional port"#],
        ),
        // 3. serversTransport serverName.
        (
            "server name with a space",
            "http:\n  serversTransports:\n    t: {serverName: \"a b\"}\n".to_string(),
            vec![r#"serversTransport "t": serverName: invalid server name "a b", expected a DNS name or an IP address"#],
        ),
        (
            "server name with an empty label",
            "http:\n  serversTransports:\n    t: {serverName: \"a..com\"}\n".to_string(),
            vec![r#"serversTransport "t": serverName: invalid server name "a..com", expected a DNS name or an IP address"#],
        ),
        // 4. server URL hosts and authorities.
        (
            "h2c host with a percent-encoded space",
            lb("h2c://a%20b:80", ""),
            vec![r#"service "s": loadBalancer.servers[0].url: invalid URL "h2c://a%20b:80": invalid host "a%20b", expected a DNS name, an IPv4 address or a bracketed IPv6 address"#],
        ),
        (
            "h2c host with non-ASCII characters",
            lb("h2c://bücher.example", ""),
            vec![r#"service "s": loadBalancer.servers[0].url: invalid URL "h2c://bücher.example": invalid host "b%C3%BCcher.example", expected a DNS name, an IPv4 address or a bracketed IPv6 address"#],
        ),
        (
            "http host with a sub-delimiter",
            lb("http://a!b", ""),
            vec![r#"service "s": loadBalancer.servers[0].url: invalid URL "http://a!b": invalid host "a!b", expected a DNS name, an IPv4 address or a bracketed IPv6 address"#],
        ),
        (
            "https host that is not a TLS server name",
            lb("https://-a.com", ""),
            vec![r#"service "s": loadBalancer.servers[0].url: invalid URL "https://-a.com": host "-a.com" is not a valid TLS server name; use a DNS name or an IP address, or set serverName on the servers transport"#],
        ),
        (
            "whitespace the URL parser would drop",
            lb("http://a.com:80 ", ""),
            vec![r#"service "s": loadBalancer.servers[0].url: invalid URL "http://a.com:80 ": must not contain whitespace or control characters"#],
        ),
        (
            "tab the URL parser would drop",
            lb("http://a.com:8\t0", ""),
            vec![r#"service "s": loadBalancer.servers[0].url: invalid URL "http://a.com:8\t0": must not contain whitespace or control characters"#],
        ),
        (
            "backslash read as a slash",
            lb("http://a.com:80\\x:y", ""),
            vec![r#"service "s": loadBalancer.servers[0].url: invalid URL "http://a.com:80\\x:y": must not contain backslashes"#],
        ),
        (
            "no // after the scheme",
            lb("http:a.com:80", ""),
            vec![r#"service "s": loadBalancer.servers[0].url: invalid URL "http:a.com:80": expected http://host[:port][/path]"#],
        ),
        (
            "port 0",
            lb("http://a.com:0", ""),
            vec![r#"service "s": loadBalancer.servers[0].url: invalid URL "http://a.com:0": port must be between 1 and 65535"#],
        ),
        (
            "https health check on a host that is not a TLS server name",
            lb("h2c://a~b:80", "        healthCheck: {scheme: https}\n"),
            vec![r#"service "s": loadBalancer.healthCheck.scheme: "https" needs a valid TLS server name, but the host "a~b" of servers[0] is not one; set serverName on the servers transport"#],
        ),
        // 5. sticky cookie attributes and request paths.
        (
            "cookie name with a semicolon",
            lb("http://a", "        sticky: {cookie: {name: \"a;b\"}}\n"),
            vec![r#"service "s": loadBalancer.sticky.cookie.name: invalid cookie name "a;b""#],
        ),
        (
            "cookie name with a comma, a space and a control character",
            "http:\n  services:\n    w:\n      weighted:\n        services: [{name: a}]\n        sticky: {cookie: {name: \"a, b\\x01\"}}\n    a: {loadBalancer: {servers: [{url: 'http://a'}]}}\n".to_string(),
            vec![r#"service "w": weighted.sticky.cookie.name: invalid cookie name "a, b\u{1}""#],
        ),
        (
            "cookie path with a semicolon",
            lb("http://a", "        sticky: {cookie: {path: \"/a; Secure\"}}\n"),
            vec![r#"service "s": loadBalancer.sticky.cookie.path: must not contain ";", got "/a; Secure""#],
        ),
        (
            "cookie domain with a control character",
            lb("http://a", "        sticky: {cookie: {domain: \"a.com\\r\\nX: y\"}}\n"),
            vec![r#"service "s": loadBalancer.sticky.cookie.domain: must not contain control characters, got "a.com\r\nX: y""#],
        ),
        (
            "stripPrefix with a space",
            mw("stripPrefix: {prefixes: [/ok, \"/a b\"]}"),
            vec![r#"middleware "m": stripPrefix.prefixes[1]: must not contain whitespace, got "/a b""#],
        ),
        (
            "stripPrefix with a control character",
            mw("stripPrefix: {prefixes: [\"/a\\x01\"]}"),
            vec![r#"middleware "m": stripPrefix.prefixes[0]: must not contain control characters, got "/a\u{1}""#],
        ),
        (
            "addPrefix with a query",
            mw("addPrefix: {prefix: \"/a?b=c\"}"),
            vec![r##"middleware "m": addPrefix.prefix: must not contain "?" or "#", got "/a?b=c""##],
        ),
        (
            "replacePath with a fragment",
            mw("replacePath: {path: \"/a#b\"}"),
            vec![r##"middleware "m": replacePath.path: must not contain "?" or "#", got "/a#b""##],
        ),
        // Gaps found in the proxy's compile step and request path.
        (
            "health check path that does not form a request target",
            lb("http://a", "        healthCheck: {path: \"/h?a b\"}\n"),
            vec![r#"service "s": loadBalancer.healthCheck.path: must not contain whitespace, got "/h?a b""#],
        ),
        (
            "health check path with a fragment",
            lb("http://a", "        healthCheck: {path: \"/h#x\"}\n"),
            vec![r##"service "s": loadBalancer.healthCheck.path: must not contain "#", got "/h#x""##],
        ),
        (
            "health check query with a quote",
            lb("http://a", "        healthCheck: {path: \"/h?q=\\\"x\\\"\"}\n"),
            vec![r#"service "s": loadBalancer.healthCheck.path: must not contain '"', "<" or ">" in the query, got "/h?q=\"x\"""#],
        ),
        (
            "redirect replacement with a control character (sent as Location)",
            mw("redirectRegex: {regex: \"^(.*)$\", replacement: \"http://x/\\x01\"}"),
            vec![r#"middleware "m": redirectRegex.replacement: must not contain control characters other than horizontal tab, got "http://x/\u{1}""#],
        ),
    ];
    for (what, doc, want) in &cases {
        let got = validate_doc(doc);
        assert_eq!(&got, want, "{what}:\n{doc}");
    }

    // Unusual values that are valid stay accepted.
    let ok = [
        mw(r#"headers: {customRequestHeaders: {X-A: "tab\there", X-U: "héllo", "!#$%&'*+-.^_`|~": ""}}"#),
        lb("h2c://My_Host~1.local:50051", ""),
        lb("h2c://10.0.0.1:80", ""),
        lb("h2c://[::1]:80", ""),
        lb("https://a_b.example.", ""),
        lb("https://[::1]:8443/base", ""),
        lb("http://bücher.example:8080", ""),
        lb("http://u:p@a.com:0080/x?y#z", ""),
        lb("HTTP://A.com", ""),
        // With a serverName, the host of an https server needs not be a TLS server name.
        lb("https://a~b", "        serversTransport: t\n  serversTransports:\n    t: {serverName: 10.0.0.1}\n"),
        lb("h2c://a~b", "        healthCheck: {scheme: https}\n        serversTransport: t\n  serversTransports:\n    t: {serverName: backend.internal}\n"),
        lb("http://a", "        healthCheck: {scheme: https, path: \"/h?x=1&y=é\", hostname: \"[::1]:8080\", headers: {X-A: \"b\\tc\"}}\n        sticky: {cookie: {name: c, path: \"/a b\", domain: .example.com}}\n"),
        "http:\n  serversTransports:\n    a: {serverName: \"\"}\n    b: {serverName: \"[::1]\"}\n    c: {serverName: x_y.example.com.}\n".to_string(),
        mw("stripPrefix: {prefixes: [\"/é\", \"/a%20b\", \"/a;b=c\"]}"),
    ];
    for doc in &ok {
        assert_eq!(validate_doc(doc), Vec::<String>::new(), "{doc}");
    }
}

/// The proxy expands chains into each router's middleware list, at most
/// [`MAX_CHAIN_NESTING`] levels deep.
#[test]
fn chain_nesting_is_bounded() {
    let doc = |levels: usize| {
        // c0 -> c1 -> ... -> c{levels-2} -> c{levels-1} (an addPrefix): `levels` levels.
        let mut y = with_base("  middlewares:\n");
        for i in 0..levels - 1 {
            y.push_str(&format!(
                "    c{i}: {{chain: {{middlewares: [c{}]}}}}\n",
                i + 1
            ));
        }
        y.push_str(&format!(
            "    c{}: {{addPrefix: {{prefix: /p}}}}\n",
            levels - 1
        ));
        y
    };
    assert_eq!(validate_doc(&doc(MAX_CHAIN_NESTING)), Vec::<String>::new());
    assert_eq!(
        validate_doc(&doc(MAX_CHAIN_NESTING + 2)),
        vec![
            r#"middleware "c0": chain.middlewares: middleware references are nested 10002 levels deep, at most 10000 are allowed"#
        ]
    );
    // Reported once, on the outermost chains only, also when branches share a deep tail.
    let mut y = doc(MAX_CHAIN_NESTING + 1);
    y.push_str(
        "    other: {chain: {middlewares: [c1]}}\n    short: {chain: {middlewares: [c9999]}}\n",
    );
    assert_eq!(
        validate_doc(&y),
        vec![
            r#"middleware "c0": chain.middlewares: middleware references are nested 10001 levels deep, at most 10000 are allowed"#,
            r#"middleware "other": chain.middlewares: middleware references are nested 10001 levels deep, at most 10000 are allowed"#,
        ]
    );
    // A cycle is reported as a cycle, without a nesting error.
    let y = with_base(
        "  middlewares:\n    a: {chain: {middlewares: [b]}}\n    b: {chain: {middlewares: [a]}}\n",
    );
    assert_eq!(
        validate_doc(&y),
        vec![r#"middleware "a": chain.middlewares[0]: chains form a cycle a -> b -> a"#]
    );
}

#[test]
fn validate_is_deterministic_and_joined() {
    let doc = with_base(
        "  routers:\n    b:\n      rule: Hots(`x`)\n      service: nope\n    a:\n      rule: Path(`/`)\n      service: gone\n",
    );
    let cfg = parse_document(&doc).unwrap();
    let e1 = validate(&cfg).unwrap_err();
    let e2 = validate(&cfg.clone()).unwrap_err();
    assert_eq!(e1, e2);
    assert_eq!(
        e1.to_string(),
        r#"router "a": service: service "gone" not found; router "b": rule: unknown matcher "Hots" at column 1; router "b": service: service "nope" not found"#
    );
    assert_eq!(e1.len(), 3);
    assert_eq!(e1.0[1].field.as_deref(), Some("rule"));
}

#[test]
fn config_error_display() {
    assert_eq!(ConfigError::new("boom").to_string(), "boom");
    assert_eq!(
        ConfigError::resource("router", "api", "bad").to_string(),
        "router \"api\": bad"
    );
    assert_eq!(
        ConfigError::field("router", "api", "rule", "bad").to_string(),
        "router \"api\": rule: bad"
    );
    assert_eq!(
        ConfigError::at("tls.certificates", "no").to_string(),
        "tls.certificates: no"
    );
    assert_eq!(ConfigErrors(vec![]).to_string(), "");
}

// ------------------------------------------------------------------------------------------
// Kind, remove, names, resource_json, merged, diff

#[test]
fn kinds() {
    for (s, k) in [
        ("router", Kind::Router),
        ("routers", Kind::Router),
        ("Services", Kind::Service),
        ("service", Kind::Service),
        ("middleware", Kind::Middleware),
        ("middlewares", Kind::Middleware),
        ("tcp-router", Kind::TcpRouter),
        ("tcpRouters", Kind::TcpRouter),
        ("tcp-service", Kind::TcpService),
        ("tcp-middlewares", Kind::TcpMiddleware),
        ("tcp-servers-transport", Kind::TcpServersTransport),
        ("tcpServersTransport", Kind::TcpServersTransport),
    ] {
        assert_eq!(Kind::parse(s), Some(k));
    }
    for k in Kind::ALL {
        assert_eq!(Kind::parse(k.as_str()), Some(k));
    }
    assert_eq!(Kind::parse("tls"), None);
    assert_eq!(Kind::Router.as_str(), "router");
    assert_eq!(Kind::Middleware.as_str(), "middleware");
    assert_eq!(
        serde_json::to_string(&Kind::Service).unwrap(),
        "\"service\""
    );
}

#[test]
fn remove_names_and_json() {
    let mut cfg = parse_document(FULL).unwrap();
    assert_eq!(cfg.names(Kind::Router), vec!["api", "catchall"]);
    assert_eq!(
        cfg.names(Kind::Service),
        vec!["fo", "mirror", "split", "web", "web2"]
    );
    let r = cfg.resource_json(Kind::Router, "catchall").unwrap();
    assert_eq!(
        r,
        serde_json::json!({"rule": "PathPrefix(`/`)", "service": "split"})
    );
    let s = cfg.resource_json(Kind::Service, "web2").unwrap();
    assert_eq!(
        s,
        serde_json::json!({"loadBalancer": {"servers": [{"url": "https://backup.example.com"}]}})
    );
    assert_eq!(cfg.resource_json(Kind::Router, "nope"), None);
    assert_eq!(cfg.remove(Kind::Router, "catchall"), Ok(()));
    assert_eq!(
        cfg.remove(Kind::Router, "catchall")
            .unwrap_err()
            .to_string(),
        "router \"catchall\" not found"
    );
    assert_eq!(
        cfg.remove(Kind::Middleware, "x").unwrap_err().to_string(),
        "middleware \"x\" not found"
    );
    assert_eq!(cfg.remove(Kind::Middleware, "rr"), Ok(()));
    assert!(!cfg.names(Kind::Middleware).contains(&"rr".to_string()));
    assert!(!cfg.is_empty());
    assert!(DynamicConfig::default().is_empty());
}

#[test]
fn merged_upserts() {
    let base = parse_document(FULL).unwrap();
    let doc = parse_document(
        r#"
http:
  routers:
    api:
      rule: Path(`/changed`)
      service: web
    new:
      rule: Path(`/new`)
      service: web
  serversTransports:
    tr2: {}
tls:
  certificates:
    - certFile: a
      keyFile: b
  options:
    modern: {}
"#,
    )
    .unwrap();
    let m = base.merged(&doc);
    assert_eq!(m.http.routers["api"].rule, "Path(`/changed`)".into());
    assert_eq!(
        m.http.routers["api"].entry_points,
        Box::<[String]>::default()
    );
    assert!(m.http.routers.contains_key("new"));
    assert!(m.http.routers.contains_key("catchall"));
    assert_eq!(m.http.services, base.http.services);
    assert_eq!(m.http.servers_transports.len(), 2);
    assert_eq!(m.tls.options["modern"], TlsOptions::default());
    assert_eq!(m.tls.certificates.len(), 1);
    // Merging again does not duplicate the identical certificate.
    let m2 = m.merged(&doc);
    assert_eq!(m2.tls.certificates.len(), 1);
    assert_eq!(m2, m);
    // Merging an empty document is the identity.
    assert_eq!(base.merged(&DynamicConfig::default()), base);
}

#[test]
fn diff_lists_changes_sorted() {
    let old = parse_document(FULL).unwrap();
    assert!(diff(&old, &old).is_empty());
    let mut new = old.clone();
    new.http.routers.get_mut("api").unwrap().priority = Some(99);
    new.http.routers.remove("catchall");
    new.http.middlewares.insert(
        "zzz".into(),
        Middleware::AddPrefix(AddPrefix {
            prefix: "/z".into(),
        }),
    );
    new.tls.stores.clear();
    new.tls.certificates.push(Certificate {
        cert_file: "c.pem".into(),
        key_file: "k.pem".into(),
        stores: vec![],
    });
    new.http
        .servers_transports
        .get_mut("tr")
        .unwrap()
        .server_name = None;
    let d = diff(&old, &new);
    let got: Vec<(String, String, ChangeAction)> = d
        .into_iter()
        .map(|c| (c.kind.as_str().to_string(), c.name, c.action))
        .collect();
    let want = vec![
        (
            "middleware".to_string(),
            "zzz".to_string(),
            ChangeAction::Create,
        ),
        ("router".into(), "api".into(), ChangeAction::Update),
        ("router".into(), "catchall".into(), ChangeAction::Delete),
        ("serversTransport".into(), "tr".into(), ChangeAction::Update),
        (
            "tlsCertificate".into(),
            "c.pem".into(),
            ChangeAction::Create,
        ),
        ("tlsStore".into(), "default".into(), ChangeAction::Delete),
    ];
    assert_eq!(got, want);
    let reverse = diff(&new, &old);
    assert_eq!(reverse.len(), 6);
    assert_eq!(reverse[0].action, ChangeAction::Delete);
    assert_eq!(
        serde_json::to_value(&reverse[0]).unwrap(),
        serde_json::json!({"kind": "middleware", "name": "zzz", "action": "delete"})
    );
}

// ------------------------------------------------------------------------------------------
// rule language: syntax errors

#[test]
fn rule_syntax_errors() {
    let cases: &[(&str, &str)] = &[
        ("Hots(`a`)", "unknown matcher \"Hots\" at column 1"),
        ("Host(`a`, `b`)", "Host: expected 1 argument, got 2 at column 1"),
        ("Host()", "Host: expected 1 argument, got 0 at column 1"),
        ("Header(`a`)", "Header: expected 2 arguments, got 1 at column 1"),
        ("Query(`a`, `b`, `c`)", "Query: expected 1 or 2 arguments, got 3 at column 1"),
        ("Host(``)", "Host: empty argument at column 6"),
        ("Header(`X`, ``)", "Header: empty argument at column 13"),
        ("Host(`a.com`) && (Path", "unexpected end of rule, expected \"(\" at column 23"),
        ("(Host(`a.com`)", "unexpected end of rule, expected \")\" at column 15"),
        ("Host(`a.com`) && (Path(`/`)", "unexpected end of rule, expected \")\" at column 28"),
        ("Host(`a.com", "unterminated string at column 6"),
        ("Host(\"a.com)", "unterminated string at column 6"),
        ("Host(`a`) & Path(`/`)", "unexpected token \"&\" at column 11"),
        ("Host(`a`) | Path(`/`)", "unexpected token \"|\" at column 11"),
        ("Host('a')", "single-quoted strings are not supported; use backticks or double quotes at column 6"),
        ("Host(`a`) Path(`/`)", "unexpected token \"Path\", expected \"&&\", \"||\" or end of rule at column 11"),
        ("Host(`a`))", "unexpected token \")\", expected \"&&\", \"||\" or end of rule at column 10"),
        ("", "unexpected end of rule, expected a matcher at column 1"),
        ("   ", "unexpected end of rule, expected a matcher at column 4"),
        ("Host(`a`) &&", "unexpected end of rule, expected a matcher at column 13"),
        ("&& Host(`a`)", "unexpected token \"&&\", expected a matcher at column 1"),
        ("Host", "unexpected end of rule, expected \"(\" at column 5"),
        ("Host(a)", "unexpected token \"a\", expected a string argument (in backticks or double quotes) at column 6"),
        ("Host(`a` `b`)", "unexpected token \"`b`\", expected \",\" or \")\" at column 10"),
        ("Host(\"a\\q\")", "invalid escape sequence \"\\q\" in string at column 8"),
        ("Host(\"a\nb\")", "newline in string at column 8"),
        ("Host(`a`) # x", "unexpected token \"#\", expected \"&&\", \"||\" or end of rule at column 11"),
        ("PathRegexp(`(`)", "PathRegexp: invalid regexp \"(\": unclosed group at column 1"),
        ("HostRegexp(`[`)", "HostRegexp: invalid regexp \"[\": unclosed character class at column 1"),
        ("Host(`a`) && HeaderRegexp(`X`, `a)`)", "HeaderRegexp: invalid regexp \"a)\": unopened group at column 14"),
        ("QueryRegexp(`q`, `*`)", "QueryRegexp: invalid regexp \"*\": repetition operator missing expression at column 1"),
        ("Path(`api`)", "Path: path \"api\" must start with \"/\" at column 1"),
        ("PathPrefix(`api`)", "PathPrefix: path \"api\" must start with \"/\" at column 1"),
        ("Host(`bücher.de`)", "Host: invalid value \"bücher.de\": non-ASCII characters are not allowed (use punycode) at column 1"),
        ("Host(`a.*.com`)", "Host: invalid value \"a.*.com\": \"*\" is only allowed as the whole first label (e.g. \"*.example.com\") at column 1"),
        ("Host(`*a.com`)", "Host: invalid value \"*a.com\": \"*\" is only allowed as the whole first label (e.g. \"*.example.com\") at column 1"),
        ("ClientIP(`10.0.0.300`)", "ClientIP: invalid IP address or CIDR \"10.0.0.300\" at column 1"),
        ("ClientIP(`10.0.0.0/33`)", "ClientIP: invalid IP address or CIDR \"10.0.0.0/33\" at column 1"),
        ("Method(`G T`)", "Method: invalid method \"G T\" at column 1"),
        ("hOST(`a`)", "unknown matcher \"hOST\" at column 1"),
    ];
    for (rule, want) in cases {
        assert_eq!(&rule_error(rule), want, "rule: {rule:?}");
    }
    let deep = format!("{}Path(`/`){}", "(".repeat(200), ")".repeat(200));
    assert_eq!(
        rule_error(&deep),
        "rule is nested too deeply (more than 64 levels) at column 65"
    );
    let nots = format!("{}Path(`/`)", "!".repeat(100));
    assert!(rule_error(&nots).starts_with("rule is nested too deeply"));
}

#[test]
fn rule_parse_accepts_variants() {
    for rule in [
        "Host(`a`)",
        "host(`a`)",
        "HOST(`a`)",
        "PathPrefix(`/a`)",
        "pathprefix(`/a`)",
        "PATHPREFIX(`/a`)",
        "Pathprefix(`/a`)",
        "Clientip(`1.2.3.4`)",
        "CLIENTIP(`::1`)",
        "Host(\"a\")",
        "Host(\"\\u0061\")",
        "Host(`a`,)",
        "  Host( `a` )\t&&\n\r Path( `/` ) ",
        "!(Host(`a`))",
        "!!Host(`a`)",
        "Header(`X-Foo`, \"a\\\"b\\\\c\\n\\t\")",
        "Query(`q`)",
        "QueryRegexp(`q`)",
        "Host(`*`)",
        "Host(`*.example.com`)",
        "ClientIP(`10.0.0.0/8`)",
        "ClientIP(`2001:db8::/32`)",
    ] {
        assert!(
            rules::compile(rule).is_ok(),
            "{rule}: {:?}",
            rules::compile(rule).err()
        );
    }
    let e = rules::parse("Header(`X`, \"a\\\"b\\\\c\\n\\t\\u00e9\\x41\\101\")").unwrap();
    match e {
        rules::Expr::Matcher(m) => {
            assert_eq!(m.kind, rules::MatcherKind::Header);
            assert_eq!(m.args, vec!["X".to_string(), "a\"b\\c\n\téAA".to_string()]);
            assert_eq!(m.column, 1);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn rule_precedence_and_ast() {
    use rules::Expr;
    let e = rules::parse("Path(`/a`) || Path(`/b`) && !Path(`/c`)").unwrap();
    match &e {
        Expr::Or(a, b) => {
            assert!(matches!(**a, Expr::Matcher(_)));
            match &**b {
                Expr::And(_, c) => assert!(matches!(**c, Expr::Not(_))),
                other => panic!("{other:?}"),
            }
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.to_string(), "Path(`/a`) || Path(`/b`) && !Path(`/c`)");
    let e = rules::parse("(Path(`/a`) || Path(`/b`)) && !(Path(`/c`) && Method(`get`))").unwrap();
    assert_eq!(
        e.to_string(),
        "(Path(`/a`) || Path(`/b`)) && !(Path(`/c`) && Method(`get`))"
    );
    assert_eq!(e.matchers().len(), 4);
    assert_eq!(e.matchers()[3].column, 47);
    // Long chains are balanced, not deeply nested.
    let long = vec!["Path(`/x`)"; 5000].join(" && ");
    let c = rules::compile(&long).unwrap();
    assert!(!c.matches(&view("GET", "a", "/y", None, &[], None)));
    assert!(c.matches(&view("GET", "a", "/x", None, &[], None)));
}

#[test]
fn default_priority_is_rule_length() {
    assert_eq!(rules::default_priority("Host(`foobar.traefik.com`)"), 26);
    assert_eq!(
        rules::default_priority("HostRegexp(`[a-z]+\\.traefik\\.com`)"),
        34
    );
    let r = Router {
        rule: "Path(`/`)".into(),
        priority: Some(0),
        ..Router::default()
    };
    assert_eq!(r.effective_priority(), 9);
}

// ------------------------------------------------------------------------------------------
// rule language: matching

fn view<'a>(
    method: &'a str,
    host: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    headers: &'a [(&'a str, &'a str)],
    ip: Option<std::net::IpAddr>,
) -> RequestView<'a> {
    RequestView {
        method,
        host,
        path,
        query,
        headers,
        client_ip: ip,
    }
}

struct Case {
    rule: &'static str,
    method: &'static str,
    host: &'static str,
    target: &'static str,
    headers: &'static [(&'static str, &'static str)],
    ip: Option<&'static str>,
    want: bool,
}

const fn c(rule: &'static str, host: &'static str, target: &'static str, want: bool) -> Case {
    Case {
        rule,
        method: "GET",
        host,
        target,
        headers: &[],
        ip: None,
        want,
    }
}

const fn ch(
    rule: &'static str,
    headers: &'static [(&'static str, &'static str)],
    want: bool,
) -> Case {
    Case {
        rule,
        method: "GET",
        host: "a.com",
        target: "/",
        headers,
        ip: None,
        want,
    }
}

const fn cm(rule: &'static str, method: &'static str, want: bool) -> Case {
    Case {
        rule,
        method,
        host: "a.com",
        target: "/",
        headers: &[],
        ip: None,
        want,
    }
}

const fn ci(rule: &'static str, ip: Option<&'static str>, want: bool) -> Case {
    Case {
        rule,
        method: "GET",
        host: "a.com",
        target: "/",
        headers: &[],
        ip,
        want,
    }
}

const MATCH_CASES: &[Case] = &[
    // Host
    c("Host(`a.com`)", "a.com", "/", true),
    c("Host(`a.com`)", "A.COM", "/", true),
    c("Host(`A.com`)", "a.com", "/", true),
    c("Host(`a.com`)", "a.com:8080", "/", true),
    c("Host(`a.com`)", " a.com ", "/", true),
    c("Host(`a.com`)", "a.com.", "/", true),
    c("Host(`a.com.`)", "a.com", "/", true),
    c("Host(`a.com.`)", "a.com.:443", "/", true),
    c("Host(`a.com`)", "b.com", "/", false),
    c("Host(`a.com`)", "www.a.com", "/", false),
    c("Host(`a.com`)", "", "/", false),
    c("Host(`::1`)", "[::1]:8080", "/", true),
    c("Host(`::1`)", "[::1]", "/", true),
    c("Host(`10.0.0.1`)", "10.0.0.1:80", "/", true),
    c("Host(`*.example.com`)", "foo.example.com", "/", true),
    c("Host(`*.example.com`)", "FOO.example.com:80", "/", true),
    c("Host(`*.example.com`)", "a.b.example.com", "/", false),
    c("Host(`*.example.com`)", "example.com", "/", false),
    c("Host(`*.example.com`)", ".example.com", "/", false),
    c("Host(`*.example.com`)", "fooexample.com", "/", false),
    c("Host(`*`)", "anything.net", "/", true),
    c("Host(`*`)", "", "/", true),
    // HostRegexp
    c(
        "HostRegexp(`^[a-z]+\\.example\\.com$`)",
        "api.example.com:80",
        "/",
        true,
    ),
    c(
        "HostRegexp(`^[a-z]+\\.example\\.com$`)",
        "API.example.com",
        "/",
        true,
    ),
    c(
        "HostRegexp(`^API\\.example\\.com$`)",
        "API.example.com",
        "/",
        false,
    ),
    c("HostRegexp(`example`)", "www.example.org", "/", true),
    c("HostRegexp(`^$`)", "", "/", true),
    // Path
    c("Path(`/foo`)", "a.com", "/foo", true),
    c("Path(`/foo`)", "a.com", "/foo/", false),
    c("Path(`/foo`)", "a.com", "/foo?x=1", true),
    c("Path(`/foo bar`)", "a.com", "/foo%20bar", true),
    c("Path(`/a/b`)", "a.com", "/a%2Fb", false),
    c("Path(`/a%2Fb`)", "a.com", "/a%2Fb", true),
    c("Path(`/A`)", "a.com", "/%41", true),
    c("Path(`/a`)", "a.com", "/a%", false),
    // PathPrefix
    c("PathPrefix(`/products`)", "a.com", "/products", true),
    c("PathPrefix(`/products`)", "a.com", "/products/", true),
    c("PathPrefix(`/products`)", "a.com", "/products/x", true),
    c(
        "PathPrefix(`/products`)",
        "a.com",
        "/products-for-sale",
        true,
    ),
    c("PathPrefix(`/products`)", "a.com", "/product", false),
    c("PathPrefix(`/css/`)", "a.com", "/css", false),
    c("PathPrefix(`/`)", "a.com", "/anything", true),
    c("PathPrefix(`/foo bar`)", "a.com", "/foo%20bar/baz", true),
    c("PathPrefix(`/Products`)", "a.com", "/products", false),
    // PathRegexp
    c(
        "PathRegexp(`^/api/v[0-9]+/`)",
        "a.com",
        "/api/v2/users",
        true,
    ),
    c(
        "PathRegexp(`^/api/v[0-9]+/`)",
        "a.com",
        "/api/vx/users",
        false,
    ),
    c("PathRegexp(`\\.php$`)", "a.com", "/x/index.php", true),
    c("PathRegexp(`(?i)^/admin`)", "a.com", "/ADMIN/x", true),
    // Method
    cm("Method(`GET`)", "GET", true),
    cm("Method(`get`)", "GET", true),
    cm("Method(`GET`)", "get", false),
    cm("Method(`POST`)", "GET", false),
    cm("Method(`PURGE`)", "PURGE", true),
    // Header
    ch("Header(`X-Foo`, `bar`)", &[("x-foo", "bar")], true),
    ch("Header(`x-foo`, `bar`)", &[("X-FOO", "bar")], true),
    ch("Header(`X-Foo`, `bar`)", &[("X-Foo", "Bar")], false),
    ch(
        "Header(`X-Foo`, `bar`)",
        &[("X-Foo", "baz"), ("X-Foo", "bar")],
        true,
    ),
    ch("Header(`X-Foo`, `bar`)", &[("X-Foo", "bar, baz")], false),
    ch("Header(`X-Foo`, `bar`)", &[("X-Foo", " bar ")], true),
    ch("Header(`X-Foo`, `bar`)", &[], false),
    ch("Header(`Host`, `a.com`)", &[("host", "a.com")], false),
    // HeaderRegexp
    ch(
        "HeaderRegexp(`Content-Type`, `^application/(json|xml)`)",
        &[("content-type", "application/json; charset=utf-8")],
        true,
    ),
    ch(
        "HeaderRegexp(`Content-Type`, `^application/json$`)",
        &[("content-type", "text/html")],
        false,
    ),
    ch(
        "HeaderRegexp(`X-Id`, `^[0-9]+$`)",
        &[("x-id", "abc"), ("x-id", "42")],
        true,
    ),
    // Query
    c("Query(`mobile`)", "a.com", "/?mobile", true),
    c("Query(`mobile`)", "a.com", "/?mobile=", true),
    c("Query(`mobile`)", "a.com", "/?mobile=1", false),
    c("Query(`mobile`)", "a.com", "/?other", false),
    c("Query(`mobile`)", "a.com", "/", false),
    c("Query(`q`, `a b`)", "a.com", "/?q=a+b", true),
    c("Query(`q`, `a b`)", "a.com", "/?q=a%20b", true),
    c("Query(`q`, `x`)", "a.com", "/?q=y&q=x", true),
    c("Query(`q`, `x`)", "a.com", "/?q=X", false),
    c("Query(`k y`, `v`)", "a.com", "/?k+y=v", true),
    c("Query(`q`, `x`)", "a.com", "/?q=x;r=1", false),
    c("Query(`q`, `x`)", "a.com", "/?r=%zz&q=x", true),
    // QueryRegexp
    c("QueryRegexp(`id`, `^[0-9]+$`)", "a.com", "/?id=123", true),
    c("QueryRegexp(`id`, `^[0-9]+$`)", "a.com", "/?id=12a", false),
    c("QueryRegexp(`id`)", "a.com", "/?id", true),
    c("QueryRegexp(`id`)", "a.com", "/?id=1", false),
    // ClientIP
    ci("ClientIP(`10.0.0.0/8`)", Some("10.1.2.3"), true),
    ci("ClientIP(`10.0.0.0/8`)", Some("11.1.2.3"), false),
    ci("ClientIP(`10.0.0.0/8`)", None, false),
    ci("ClientIP(`192.168.1.5`)", Some("192.168.1.5"), true),
    ci("ClientIP(`192.168.1.5`)", Some("192.168.1.6"), false),
    ci("ClientIP(`192.168.1.5`)", Some("::ffff:192.168.1.5"), true),
    ci("ClientIP(`2001:db8::/32`)", Some("2001:db8::1"), true),
    ci("ClientIP(`2001:db8::/32`)", Some("10.0.0.1"), false),
    ci("ClientIP(`::1`)", Some("::1"), true),
    // operators and precedence
    c("Host(`a.com`) && Path(`/x`)", "a.com", "/x", true),
    c("Host(`a.com`) && Path(`/x`)", "a.com", "/y", false),
    c("Host(`a.com`) || Host(`b.com`)", "b.com", "/", true),
    c("Host(`a.com`) || Host(`b.com`)", "c.com", "/", false),
    c("!Host(`a.com`)", "a.com", "/", false),
    c("!Host(`a.com`)", "b.com", "/", true),
    c("!!Host(`a.com`)", "a.com", "/", true),
    // `||` binds looser than `&&`: true || (false && false)
    c(
        "Host(`a.com`) || Host(`b.com`) && Path(`/never`)",
        "a.com",
        "/",
        true,
    ),
    // (true || false) && false
    c(
        "(Host(`a.com`) || Host(`b.com`)) && Path(`/never`)",
        "a.com",
        "/",
        false,
    ),
    // `!` binds tighter than `&&`: (!false) && true
    c("!Path(`/admin`) && Host(`a.com`)", "a.com", "/", true),
    c(
        "!(Path(`/admin`) || Path(`/private`)) && PathPrefix(`/`)",
        "a.com",
        "/private",
        false,
    ),
    c(
        "!(Path(`/admin`) || Path(`/private`)) && PathPrefix(`/`)",
        "a.com",
        "/public",
        true,
    ),
    c(
        "Host(`a.com`) && (Path(`/1`) || Path(`/2`)) && !Query(`debug`)",
        "a.com",
        "/2",
        true,
    ),
    c(
        "Host(`a.com`) && (Path(`/1`) || Path(`/2`)) && !Query(`debug`)",
        "a.com",
        "/2?debug",
        false,
    ),
    c("host(`a.com`) && pathprefix(`/x`)", "a.com", "/x/y", true),
    c("HOST(`a.com`) && PATHPREFIX(`/x`)", "a.com", "/y", false),
];

fn run_case(case: &Case) -> bool {
    let (path, query) = match case.target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (case.target, None),
    };
    let ip = case.ip.map(|s| s.parse().unwrap());
    let rule = rules::compile(case.rule).unwrap_or_else(|e| panic!("{}: {e}", case.rule));
    let v = view(case.method, case.host, path, query, case.headers, ip);
    let m = rule.matches(&v);
    let (e, _) = rule.explain(&v);
    assert_eq!(m, e, "explain disagrees with matches for {}", case.rule);
    m
}

#[test]
fn rule_matching() {
    let mut failures = Vec::new();
    for case in MATCH_CASES {
        if run_case(case) != case.want {
            failures.push(format!(
                "{} on {} {}{} headers={:?} ip={:?}: want {}",
                case.rule, case.method, case.host, case.target, case.headers, case.ip, case.want
            ));
        }
    }
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
    assert!(MATCH_CASES.len() >= 60, "{}", MATCH_CASES.len());
}

#[test]
fn explain_lists_failed_leaves() {
    let r = rules::compile("Host(`a.com`) && PathPrefix(`/api`) && !Method(`DELETE`)").unwrap();
    let v = view("DELETE", "b.com", "/api/x", None, &[], None);
    assert_eq!(
        r.explain(&v),
        (
            false,
            vec!["Host(`a.com`)".to_string(), "!Method(`DELETE`)".to_string()]
        )
    );
    let v = view("GET", "a.com", "/api/x", None, &[], None);
    assert_eq!(r.explain(&v), (true, vec![]));
    let r = rules::compile("host(\"a.com\") || Header(`X`, \"a`b\")").unwrap();
    let v = view("GET", "b.com", "/", None, &[], None);
    assert_eq!(
        r.explain(&v),
        (
            false,
            vec![
                "Host(`a.com`)".to_string(),
                "Header(`X`, \"a`b\")".to_string()
            ]
        )
    );
    assert_eq!(r.rule(), "host(\"a.com\") || Header(`X`, \"a`b\")");
    assert_eq!(r.default_priority(), 35);
}

#[test]
fn host_constraints() {
    let hc = |rule: &str| rules::compile(rule).unwrap().host_constraint();
    let s = |v: &[&str]| Some(v.iter().map(|x| x.to_string()).collect::<Vec<_>>());
    assert_eq!(hc("Host(`A.com`) && Path(`/x`)"), s(&["a.com"]));
    assert_eq!(hc("Path(`/x`) && Host(`a.com.`)"), s(&["a.com"]));
    assert_eq!(hc("Host(`b`) || Host(`a`) || Host(`b`)"), s(&["a", "b"]));
    assert_eq!(
        hc("Host(`*.x.com`) || Host(`y.com`)"),
        s(&["*.x.com", "y.com"])
    );
    assert_eq!(
        hc("(Host(`a`) || Host(`b`)) && (Path(`/1`) || Host(`c`))"),
        s(&["a", "b"])
    );
    assert_eq!(hc("Host(`a`) || Path(`/x`)"), None);
    assert_eq!(hc("!Host(`a`)"), None);
    assert_eq!(hc("HostRegexp(`a`)"), None);
    assert_eq!(hc("Path(`/`)"), None);
    assert_eq!(hc("Host(`*`)"), None);
    assert_eq!(hc("Host(`*`) && Host(`a`)"), s(&["a"]));
    assert_eq!(rules::host_key("A.com.:80"), "a.com");
}

// ------------------------------------------------------------------------------------------
// robustness: no panics on garbage

/// A tiny deterministic PRNG (xorshift) so the test needs no extra dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[(self.next() % xs.len() as u64) as usize]
    }
}

#[test]
fn no_panics_on_random_rules() {
    let atoms = [
        "Host",
        "Path",
        "PathPrefix",
        "(",
        ")",
        "`a`",
        "`/x`",
        "\"q\\\"\"",
        ",",
        "&&",
        "||",
        "!",
        "&",
        "|",
        "'",
        "`",
        "\"",
        " ",
        "HostRegexp",
        "`(`",
        "ClientIP",
        "`10.0.0.0/8`",
        "Query",
        "\\",
        "é",
        "Header",
        "\"\\u12\"",
        "\"\\x",
        "Method",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let req = view("GET", "a.com", "/x", Some("a=1"), &[("X", "y")], None);
    for _ in 0..5000 {
        let n = (rng.next() % 12) as usize;
        let rule: String = (0..n).map(|_| *rng.pick(&atoms)).collect();
        if let Ok(r) = rules::compile(&rule) {
            let _ = r.matches(&req);
            let _ = r.explain(&req);
            let _ = r.host_constraint();
        }
    }
}

#[test]
fn no_panics_on_random_documents() {
    let docs = [FULL, BASE];
    let mut rng = Rng(12345);
    for _ in 0..300 {
        let doc = *rng.pick(&docs);
        let mut bytes: Vec<char> = doc.chars().collect();
        for _ in 0..(rng.next() % 6 + 1) {
            if bytes.is_empty() {
                break;
            }
            let i = (rng.next() % bytes.len() as u64) as usize;
            match rng.next() % 3 {
                0 => {
                    bytes.remove(i);
                }
                1 => bytes.insert(
                    i,
                    *rng.pick(&[':', '-', ' ', '\n', '{', '[', '`', '&', 'x']),
                ),
                _ => bytes.truncate(i),
            }
        }
        let text: String = bytes.into_iter().collect();
        if let Ok(cfg) = parse_document(&text) {
            let _ = validate(&cfg);
            let _ = diff(&cfg, &DynamicConfig::default());
        }
    }
}

#[test]
fn hostile_documents_fail_cleanly() {
    let deep_yaml = format!("http: {}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(parse_document(&deep_yaml).is_err());
    let deep_json = format!("{{\"http\": {}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(parse_document(&deep_json).is_err());
    let laughs = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n";
    let start = std::time::Instant::now();
    let e = parse_document(laughs);
    let e = e.unwrap_err().to_string();
    assert!(
        e.ends_with("invalid YAML: repetition limit exceeded"),
        "{e}"
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    // Non-string keys and odd scalars.
    assert!(parse_document("http:\n  routers:\n    1: {rule: x}\n").is_ok());
    assert!(parse_document("http:\n  routers:\n    [a]: {rule: x}\n").is_err());
    assert!(parse_document("http: !tagged {}\n").is_err());
    assert!(parse_document("\0\u{1}\u{2}").is_err());
}

mod acme_resolvers {
    use crate::{parse_document, rules::rule_host_names, validate};

    fn errors(doc: &str) -> String {
        match validate(&parse_document(doc).expect("parses")) {
            Ok(()) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn dns_challenges_name_the_field() {
        let good = "certificatesResolvers:\n  d:\n    acme:\n      dnsChallenge:\n        provider: rfc2136\n        resolvers: ['127.0.0.1:8053', '::1']\n        propagation: { delayBeforeChecks: 2s, disableANSChecks: true, requireAllRNS: false }\n        rfc2136: { nameserver: '127.0.0.1:53', tsigKey: k.test., tsigSecret: c2VjcmV0, tsigAlgorithm: hmac-sha512. }\n";
        assert_eq!(errors(good), "");
        let bad = "certificatesResolvers:\n  d:\n    acme:\n      dnsChallenge:\n        provider: rfc2136\n        resolvers: [dns.example]\n        delayBeforeCheck: soon\n        rfc2136: { nameserver: ns.example, tsigKey: 'bad key', tsigSecret: '%%%', tsigAlgorithm: hmac-md5 }\n        exec: { path: hook }\n  h:\n    acme:\n      dnsChallenge: { provider: httpreq, httpreq: { endpoint: 'ftp://x', mode: JSON } }\n  n:\n    acme:\n      dnsChallenge: { provider: exec }\n";
        let e = errors(bad);
        for want in [
            "acme.dnsChallenge.resolvers[0]: \"dns.example\" is not an IP address",
            "acme.dnsChallenge.delayBeforeCheck: invalid duration \"soon\"",
            "acme.dnsChallenge.rfc2136.nameserver",
            "acme.dnsChallenge.rfc2136.tsigKey: \"bad key\" is not a DNS name",
            "acme.dnsChallenge.rfc2136.tsigSecret: is not a base64 TSIG key",
            "acme.dnsChallenge.rfc2136.tsigAlgorithm: unsupported TSIG algorithm \"hmac-md5\"",
            "acme.dnsChallenge.exec: is set but the provider is \"rfc2136\"",
            "acme.dnsChallenge.httpreq.endpoint: \"ftp://x\" is not an http(s):// URL",
            "acme.dnsChallenge.httpreq.mode: unknown mode \"JSON\"",
            "acme.dnsChallenge.exec: provider \"exec\" needs its settings here",
        ] {
            assert!(e.contains(want), "missing {want:?} in {e}");
        }
        assert!(!e.contains("%%%"), "a secret was echoed: {e}");
    }

    #[test]
    fn middleware_secrets_redacted_and_restored() {
        let key = "-----BEGIN PRIVATE KEY-----\\nMIIB\\n-----END PRIVATE KEY-----\\n";
        let cert = "-----BEGIN CERTIFICATE-----\\nMIIC\\n-----END CERTIFICATE-----\\n";
        let ha1 = "a2688e031edb4be6a3797f3882655c05";
        let doc = parse_document(&format!("http:\n  middlewares:\n    fa:\n      forwardAuth: {{address: 'https://auth', tls: {{cert: \"{cert}\", key: \"{key}\"}}}}\n    dg:\n      digestAuth: {{users: ['test:traefik:{ha1}'], usersFile: \"u2:traefik:{ha1}\\n\"}}\n")).expect("doc");
        let shown = doc.for_display();
        let text = serde_json::to_string(&shown).unwrap();
        assert!(!text.contains("MIIB") && !text.contains(ha1), "{text}");
        assert!(text.contains("test:traefik:<redacted>"), "{text}");
        let one = doc
            .resource_json(crate::model::Kind::Middleware, "dg")
            .unwrap()
            .to_string();
        assert!(!one.contains(ha1), "{one}");
        // Applying what was shown keeps the secrets.
        assert_eq!(doc.restore_redacted(&shown), doc);
        // A different certificate or user does not get the stored secret.
        let mut other = shown.clone();
        if let Some(crate::Middleware::ForwardAuth(f)) = other.http.middlewares.get_mut("fa") {
            f.tls.as_mut().unwrap().cert = "other".into();
        }
        if let Some(crate::Middleware::DigestAuth(d)) = other.http.middlewares.get_mut("dg") {
            d.users[0] = "bob:traefik:<redacted>".into();
        }
        let back = serde_json::to_string(&doc.restore_redacted(&other)).unwrap();
        assert!(
            !back.contains("MIIB") && back.contains("bob:traefik:<redacted>"),
            "{back}"
        );
    }

    #[test]
    fn dns_provider_secrets_redacted_and_restored() {
        let doc = parse_document("certificatesResolvers:\n  d:\n    acme:\n      dnsChallenge:\n        provider: rfc2136\n        rfc2136: { nameserver: '127.0.0.1', tsigKey: k., tsigSecret: c2VjcmV0 }\n  h:\n    acme:\n      dnsChallenge: { provider: httpreq, httpreq: { endpoint: 'http://127.0.0.1:1', username: u, password: hunter2 } }\n").expect("doc");
        let shown = doc.for_display();
        let text = shown.to_yaml();
        assert!(
            !text.contains("c2VjcmV0") && !text.contains("hunter2"),
            "{text}"
        );
        assert!(!format!("{doc:?}").contains("hunter2"));
        assert!(!format!("{doc:?}").contains("c2VjcmV0"));
        let back = doc.restore_redacted(&shown);
        assert_eq!(back, doc);
        // A different key name does not get the stored secret.
        let mut other = shown.clone();
        if let Some(r) = other
            .certificates_resolvers
            .get_mut("d")
            .and_then(|r| r.acme.as_mut())
            .and_then(|a| a.dns_challenge.as_mut())
            .and_then(|d| d.rfc2136.as_mut())
        {
            r.tsig_key = Some("other.".into());
        }
        assert!(errors(&doc.restore_redacted(&other).to_yaml()).contains("tsigSecret"));
    }

    #[test]
    fn a_good_resolver_validates() {
        let e = errors(
            "certificatesResolvers:\n  le:\n    acme:\n      email: a@b.test\n      caServer: https://ca.test/dir\n      keyType: EC256\n      renewBefore: 720h\n      httpChallenge: { entryPoint: web }\n",
        );
        assert_eq!(e, "");
    }

    #[test]
    fn bad_resolvers_name_the_field() {
        let e = errors(
            "certificatesResolvers:\n  le:\n    acme:\n      email: nope\n      caServerName: x\n      preferredChain: y\n      caServer: ftp://x\n      keyType: EC999\n      renewBefore: soon\n      httpChallenge: { entryPoint: '' }\n      tlsChallenge: {}\n  dns:\n    acme:\n      dnsChallenge: { provider: x }\n  ts:\n    tailscale: {}\n",
        );
        for want in [
            "acme.email: invalid e-mail address \"nope\"",
            "acme.caServer: \"ftp://x\" must be an https:// URL",
            "acme.keyType: unknown key type \"EC999\"",
            "acme.renewBefore: invalid duration \"soon\"",
            "acme.httpChallenge.entryPoint: must name an entry point",
            "set exactly one of acme.httpChallenge, acme.tlsChallenge and acme.dnsChallenge",
            "acme.dnsChallenge.provider: unknown DNS provider \"x\"",
            "tailscale: the Tailscale resolver is not supported by this version of Switchyard",
            "acme.caServerName: is not supported by this version of Switchyard",
            "acme.preferredChain: is not supported by this version of Switchyard",
        ] {
            assert!(e.contains(want), "missing {want:?} in {e}");
        }
    }

    #[test]
    fn host_names_of_a_rule() {
        assert_eq!(
            rule_host_names(
                "Host(`B.test`) || (Host(`a.test`) && PathPrefix(`/x`)) || HostRegexp(`.*`)"
            ),
            vec!["a.test".to_string(), "b.test".to_string()]
        );
        assert!(rule_host_names("PathPrefix(`/`)").is_empty());
    }
}

#[test]
fn debug_output_never_contains_key_material() {
    let key = "-----BEGIN PRIVATE KEY-----\nSECRETKEYBYTES\n-----END PRIVATE KEY-----\n";
    let mut cfg = DynamicConfig::default();
    cfg.tls.certificates.push(Certificate {
        cert_file: "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n".into(),
        key_file: key.into(),
        stores: vec![],
    });
    cfg.tls.stores.insert(
        "default".into(),
        TlsStore {
            default_certificate: Some(StoreCertificate {
                cert_file: "c.pem".into(),
                key_file: key.into(),
            }),
            default_generated_cert: None,
        },
    );
    cfg.certificates_resolvers.insert(
        "le".into(),
        CertResolver {
            acme: Some(AcmeResolver {
                eab: Some(Eab {
                    kid: "kid-1".into(),
                    hmac_encoded: "SECRETHMAC".into(),
                }),
                ..Default::default()
            }),
            tailscale: None,
        },
    );
    cfg.managed.tls_alpn01.insert(
        "a.example".into(),
        KeyPair {
            cert_pem: "c".into(),
            key_pem: key.into(),
        },
    );
    let shown = format!("{cfg:?}");
    assert!(!shown.contains("SECRETKEYBYTES"), "{shown}");
    assert!(!shown.contains("SECRETHMAC"), "{shown}");
    // A path is not a secret and stays readable.
    let path = Certificate {
        cert_file: "c.pem".into(),
        key_file: "k.pem".into(),
        stores: vec![],
    };
    assert!(format!("{path:?}").contains("k.pem"));
    // get config shows no key either.
    let display = serde_json::to_string(&cfg.for_display()).unwrap();
    assert!(!display.contains("SECRETKEYBYTES") && !display.contains("SECRETHMAC"));
}

// ---------------------------------------------------------------------------------------------
// Hostile documents: bounded size, depth and resources; strict JSON; errors name where.
// ---------------------------------------------------------------------------------------------

#[test]
fn json_is_strict_duplicate_keys_and_trailing_commas_are_refused() {
    let e = parse_document(
        r#"{"http":{"routers":{"a":{"rule":"Path(`/`)","service":"s"},"a":{"rule":"Path(`/x`)","service":"s"}}}}"#,
    )
    .unwrap_err();
    assert_eq!(e.resource.as_deref(), Some("router \"a\""));
    assert!(
        e.message.starts_with("defined twice (duplicate key \"a\")"),
        "{e}"
    );
    let e = parse_document(r#"{"http":{"routers":{"a":{"rule":"x","rule":"y"}}}}"#).unwrap_err();
    assert_eq!(
        (e.resource.as_deref(), e.field.as_deref()),
        (Some("router \"a\""), Some("rule"))
    );
    assert!(e.message.starts_with("duplicate key \"rule\""), "{e}");
    let e =
        parse_document(r#"{"http":{"routers":{"a":{"rule":"x","service":"s"},}}}"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        "http.routers: invalid JSON: trailing comma at line 1 column 52"
    );
    let e =
        parse_document(r#"{"http":{"routers":{"a":{"rule":"x","service":"s",}}}}"#).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("router \"a\": invalid JSON: trailing comma"),
        "{e}"
    );
    // YAML refuses duplicates too, naming the key.
    let e = parse_document("http:\n  services:\n    s: {}\n    s: {}\n").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("service \"s\": defined twice (duplicate key \"s\") (at line 3 column"),
        "{e}"
    );
    // A YAML flow mapping (unquoted keys) is still YAML; `{}` is an empty JSON document.
    assert!(parse_document("{http: {routers: {}}}").is_ok());
    assert!(parse_document(" { } ").is_ok());
}

#[test]
fn deep_documents_are_refused_naming_where() {
    let n = 60_000;
    let deep_json = format!(
        "{{\"http\":{{\"routers\":{{\"a\":{{\"rule\":{}1{}}}}}}}}}",
        "{\"x\":".repeat(n),
        "}".repeat(n)
    );
    let deep_flow = format!(
        "http:\n  routers:\n    a:\n      rule: {}{}\n",
        "[".repeat(n),
        "]".repeat(n)
    );
    let mut deep_block = String::from("http:\n  services:\n    s:\n");
    for i in 0..300 {
        deep_block.push_str(&" ".repeat(6 + 2 * i));
        deep_block.push_str("x:\n");
    }
    for (what, doc, resource) in [
        ("JSON", deep_json.as_str(), "router \"a\""),
        ("YAML flow", &deep_flow, "router \"a\""),
        ("YAML block", &deep_block, "service \"s\""),
    ] {
        let e = parse_document(doc).unwrap_err();
        assert_eq!(e.resource.as_deref(), Some(resource), "{what}: {e}");
        assert!(
            e.message.starts_with("nested deeper than 64 levels"),
            "{what}: {e}"
        );
        assert!(e.field.is_some(), "{what}: {e}");
    }
    // Just at the limit the depth is fine (the document is then refused for what it says).
    let at_limit = format!("{}1{}", "{\"x\":".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
    let e = parse_document(&at_limit).unwrap_err();
    assert!(!e.message.contains("nested deeper"), "{e}");
    let over = format!(
        "{}1{}",
        "{\"x\":".repeat(MAX_DEPTH + 1),
        "}".repeat(MAX_DEPTH + 1)
    );
    let e = parse_document(&over).unwrap_err();
    assert!(e.message.contains("nested deeper"), "{e}");
}

#[test]
fn oversized_documents_and_too_many_resources_are_refused() {
    let big = format!("# {}\n", "x".repeat(MAX_DOCUMENT_BYTES));
    let e = parse_document(&big).unwrap_err();
    assert!(
        e.message
            .contains("larger than the limit of 16777216 bytes"),
        "{e}"
    );

    let mut json = String::from("{\"http\":{\"middlewares\":{");
    for i in 0..=MAX_RESOURCES {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&format!("\"m{i}\":{{}}"));
    }
    json.push_str("}}}");
    let e = parse_document(&json).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("http.middlewares"), "{e}");
    assert!(e.message.contains("more than 100000 resources"), "{e}");

    let mut yaml = String::from("http:\n  routers:\n");
    for i in 0..=MAX_RESOURCES {
        yaml.push_str(&format!("    r{i}: {{}}\n"));
    }
    let e = parse_document(&yaml).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("http.routers"), "{e}");
    assert!(e.message.contains("more than 100000 resources"), "{e}");
}

#[test]
fn no_panics_on_random_hostile_fragments() {
    // Fragments that exercise the flow-depth scan, the reader and the depth/duplicate checks.
    let atoms = [
        "http:",
        "\n",
        "  ",
        "routers:",
        "a:",
        "a: ",
        "- ",
        "[",
        "]",
        "{",
        "}",
        ",",
        "'",
        "''",
        "\"",
        "\\\"",
        "#",
        " # c",
        "|",
        ">",
        "<<: ",
        "&x ",
        "*x",
        "rule: ",
        "Path(`/[`)",
        "~",
        "{\"a\":",
        "\"a\"",
        ": ",
        "1",
        "!t ",
        "---\n",
        "\t",
        "é",
    ];
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    for _ in 0..3000 {
        let n = (rng.next() % 60) as usize;
        let doc: String = (0..n).map(|_| *rng.pick(&atoms)).collect();
        let _ = parse_document(&doc);
        let deep = format!("{doc}{}", rng.pick(&["[", "{a: ", "- "]).repeat(100));
        let _ = parse_document(&deep);
    }
}

/// The resource maps are persistent (`Map` = `imbl::OrdMap`): they serialize exactly as the
/// `BTreeMap`s they replaced (same keys, same order, same text in JSON and YAML).
#[test]
fn persistent_maps_serialize_like_btreemaps() {
    let routers: Vec<(String, Router)> = (0..40)
        .rev()
        .map(|i| {
            (
                format!("r{i}"),
                Router {
                    rule: format!("Host(`r{i}.example`)").into(),
                    service: "s".into(),
                    ..Router::default()
                },
            )
        })
        .collect();
    let shared: Map<Router> = routers.iter().cloned().collect();
    let plain: std::collections::BTreeMap<String, Router> = routers.into_iter().collect();
    assert_eq!(
        serde_json::to_string_pretty(&shared).unwrap(),
        serde_json::to_string_pretty(&plain).unwrap()
    );
    assert_eq!(
        serde_norway::to_string(&shared).unwrap(),
        serde_norway::to_string(&plain).unwrap()
    );
    let mut cfg = DynamicConfig::default();
    cfg.http.routers = shared;
    let back: DynamicConfig = serde_json::from_str(&cfg.to_json_pretty()).unwrap();
    assert_eq!(back, cfg);
    assert_eq!(back.to_yaml(), cfg.to_yaml());
}

/// A version derived from another shares all but the changed paths, and `diff` reports exactly
/// the changes, as it did on whole copies.
#[test]
fn a_derived_version_diffs_to_its_changes() {
    let mut base = DynamicConfig::default();
    for i in 0..5_000 {
        base.http.routers.insert(
            format!("r{i:05}"),
            Router {
                rule: format!("Host(`r{i}.example`)").into(),
                service: "s".into(),
                ..Router::default()
            },
        );
    }
    let mut next = base.clone();
    assert!(next.http.routers.ptr_eq(&base.http.routers));
    assert_eq!(diff(&base, &next), vec![]);
    next.http.routers.insert(
        "r02500".into(),
        Router {
            rule: "Host(`changed.example`)".into(),
            service: "s".into(),
            ..Router::default()
        },
    );
    next.http.routers.remove("r00007");
    next.http.routers.insert("new".into(), Router::default());
    // Re-inserting an equal value is no change.
    next.http.routers.insert(
        "r04999".into(),
        base.http.routers.get("r04999").unwrap().clone(),
    );
    let change = |name: &str, action| Change {
        kind: ResourceKind::Router,
        name: name.into(),
        action,
    };
    assert_eq!(
        diff(&base, &next),
        vec![
            change("new", ChangeAction::Create),
            change("r00007", ChangeAction::Delete),
            change("r02500", ChangeAction::Update),
        ]
    );
    assert_eq!(base.http.routers.len(), 5_000);
    assert_ne!(base, next);
}

/// The reader hands named resources over compacted (their JSON text); resources merged in with
/// `<<` from elsewhere, resources given as strings or null, and floats read back as before.
#[test]
fn compacted_resources_read_back_as_written() {
    let doc = r#"
http:
  routers: &rs
    a:
      rule: Path(`/a`)
      service: svc
  services:
    svc:
      weighted:
        services:
          - name: x
            weight: 3
tcp:
  routers:
    t: "not a router"
"#;
    let yaml: serde_json::Value = serde_norway::from_str(doc).unwrap();
    assert_eq!(parse_err(doc), from_value(yaml).unwrap_err().to_string());
    for doc in [
        "http:\n  routers:\n    a: \"just a string\"\n",
        "http:\n  routers:\n    a:\n",
        "http:\n  routers:\n    a: 1.5\n",
        "{\"http\": {\"routers\": {\"a\": [1, 2.25]}}}",
    ] {
        let plain: serde_json::Value = serde_norway::from_str(doc).unwrap();
        assert_eq!(
            parse_err(doc),
            from_value(plain).unwrap_err().to_string(),
            "{doc}"
        );
    }
    // A whole `http` section merged in from elsewhere: its resources are compacted where they land.
    let doc = r#"
http:
  <<: {routers: {a: "just a string"}}
"#;
    assert_eq!(
        parse_err(doc),
        parse_err("http:\n  routers:\n    a: \"just a string\"\n")
    );
    let doc = r#"
http:
  <<: {routers: {a: {rule: "Path(`/a`)", service: svc}}}
  routers:
    <<: {b: {rule: "Path(`/b`)", service: svc}}
"#;
    let cfg = parse_document(doc).unwrap();
    assert_eq!(cfg.http.routers.len(), 1);
    assert_eq!(cfg.http.routers["b"].rule, "Path(`/b`)".into());
    let doc = "http:\n  <<: {routers: {a: {rule: \"Path(`/a`)\", service: svc}}}\n";
    assert_eq!(
        parse_document(doc).unwrap().http.routers["a"].service,
        "svc".into()
    );
}

/// A proxy keeps one `Router` per router inline in the config's B-tree leaves (about half
/// full): its inline size is paid about twice per router at 100k routers (model.rs, `Router`).
#[test]
fn router_inline_size_stays_small() {
    assert_eq!(std::mem::size_of::<Router>(), 128);
}

/// `map_from_entries` builds the same map as inserting the entries one by one (any order,
/// repeated keys: the last wins), for every size around the leaf boundaries.
#[test]
fn map_from_entries_equals_inserts() {
    for n in (0..70).chain([500, 1_001, 4_096]) {
        // A scrambled order with repeats: key i*7 mod n, value its position.
        let entries: Vec<(String, usize)> = (0..n + n / 3)
            .map(|i| (format!("k{:05}", (i * 7) % n.max(1)), i))
            .collect();
        let mut want = Map::new();
        for (k, v) in entries.iter().cloned() {
            want.insert(k, v);
        }
        let got = map_from_entries(entries);
        assert_eq!(got, want, "n={n}");
        assert_eq!(got.len(), want.len());
        assert!(got.iter().zip(want.iter()).all(|(a, b)| a == b));
        for (k, v) in want.iter() {
            assert_eq!(got.get(k), Some(v));
        }
    }
}
