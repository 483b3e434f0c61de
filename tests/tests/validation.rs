//! Bad input is refused at the API: each case is applied through the CLI against a one-node
//! cluster and must fail with exit code non-zero, `INVALID_ARGUMENT` (or the documented code), a
//! single stderr line naming the resource and the field, and no change to the config version.

#![allow(clippy::unwrap_used)]

use switchyard_e2e::{apply_yaml, cli, cli_stdin, config_version, doc_has, get_config, Cluster};

/// A valid config the cases build on: router "api" → service "api-svc", middleware "strip".
const BASE: &str = r#"
http:
  routers:
    api:
      rule: "Host(`api.example`)"
      service: api-svc
      middlewares: [strip]
  services:
    api-svc:
      loadBalancer:
        servers:
          - url: "http://127.0.0.1:9000"
  middlewares:
    strip:
      stripPrefix:
        prefixes: ["/api"]
"#;

struct Case {
    /// What kind of bad input this is.
    what: &'static str,
    /// The document applied.
    doc: String,
    /// Substrings the error line must contain (besides the code).
    expect: &'static [&'static str],
}

/// A document with one extra router `bad` (on the existing service) whose body is `body`
/// (indented YAML lines under the router name).
fn router(name: &str, body: &str) -> String {
    format!("http:\n  routers:\n    {name}:\n{body}")
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            what: "broken YAML",
            doc: "http:\n  routers:\n    bad: {rule: \"Host(`x.example`)\", service: api-svc\n"
                .into(),
            expect: &["invalid YAML", "at line 4 column 1"],
        },
        Case {
            what: "broken JSON",
            // Unclosed object (a document starting with `{"` is JSON, read strictly).
            doc: r#"{"http": {"routers": {"bad": {"rule": "Host(`x.example`)", "service": "api-svc"}}}"#
                .into(),
            expect: &["invalid JSON", "line 1 column"],
        },
        Case {
            what: "unknown top-level field",
            doc: "htpp:\n  routers: {}\n".into(),
            expect: &["unknown top-level field \"htpp\"", "expected \"http\", \"tcp\", \"tls\" or \"certificatesResolvers\""],
        },
        Case {
            what: "unknown router field",
            doc: router(
                "api",
                "      rule: \"Host(`api.example`)\"\n      service: api-svc\n      servce: api-svc\n",
            ),
            expect: &["router \"api\"", "unknown field \"servce\""],
        },
        Case {
            what: "rule syntax error (unbalanced parenthesis)",
            doc: router(
                "bad",
                "      rule: \"Host(`x.example`\"\n      service: api-svc\n",
            ),
            expect: &["router \"bad\": rule: unexpected end of rule", "at column 17"],
        },
        Case {
            what: "unknown matcher",
            doc: router(
                "api",
                "      rule: \"Hots(`api.example`)\"\n      service: api-svc\n",
            ),
            expect: &["router \"api\": rule: unknown matcher \"Hots\" at column 1"],
        },
        Case {
            what: "wrong matcher arity",
            doc: router(
                "bad",
                "      rule: \"Host(`a.example`, `b.example`)\"\n      service: api-svc\n",
            ),
            expect: &["router \"bad\": rule: Host: expected 1 argument, got 2"],
        },
        Case {
            what: "bad regexp in PathRegexp",
            doc: router(
                "bad",
                "      rule: \"PathRegexp(`^/(unclosed`)\"\n      service: api-svc\n",
            ),
            expect: &["router \"bad\": rule: PathRegexp: invalid regexp \"^/(unclosed\""],
        },
        Case {
            what: "dangling service reference",
            doc: router(
                "bad",
                "      rule: \"Host(`x.example`)\"\n      service: nope\n",
            ),
            expect: &["router \"bad\": service: service \"nope\" not found"],
        },
        Case {
            what: "dangling middleware reference",
            doc: router(
                "bad",
                "      rule: \"Host(`x.example`)\"\n      service: api-svc\n      middlewares: [nope]\n",
            ),
            expect: &["router \"bad\": middlewares[0]: middleware \"nope\" not found"],
        },
        Case {
            what: "bad server URL",
            doc: "http:\n  services:\n    bad-svc:\n      loadBalancer:\n        servers:\n          - url: \"http://exa mple:80:90\"\n".into(),
            expect: &["service \"bad-svc\": loadBalancer.servers[0].url: invalid URL"],
        },
        Case {
            what: "server URL with an unsupported scheme",
            doc: "http:\n  services:\n    bad-svc:\n      loadBalancer:\n        servers:\n          - url: \"ftp://127.0.0.1:21\"\n".into(),
            expect: &["service \"bad-svc\": loadBalancer.servers[0].url: ", "unsupported scheme \"ftp\""],
        },
        Case {
            what: "empty router name",
            doc: router(
                "\"\"",
                "      rule: \"Host(`x.example`)\"\n      service: api-svc\n",
            ),
            expect: &["router \"\": name must not be empty"],
        },
        Case {
            what: "unsupported middleware kind (plugin)",
            doc: "http:\n  middlewares:\n    limit:\n      plugin:\n        demo: {}\n".into(),
            expect: &[
                "middleware \"limit\": plugin",
                "not supported by this version of Switchyard",
            ],
        },
        Case {
            what: "bad htpasswd hash (basicAuth)",
            doc: "http:\n  middlewares:\n    auth:\n      basicAuth:\n        users: [\"u:$apr1$x$y\"]\n".into(),
            expect: &["middleware \"auth\": basicAuth.users[0]: user \"u\": invalid $apr1$ hash"],
        },
        Case {
            what: "unknown middleware kind",
            doc: "http:\n  middlewares:\n    mw:\n      stripPrefixes:\n        prefixes: [\"/x\"]\n".into(),
            expect: &["middleware \"mw\": unknown middleware kind \"stripPrefixes\""],
        },
        Case {
            what: "service with two kinds",
            doc: "http:\n  services:\n    two:\n      loadBalancer:\n        servers:\n          - url: \"http://127.0.0.1:9001\"\n      weighted:\n        services:\n          - name: api-svc\n".into(),
            expect: &["service \"two\": exactly one of loadBalancer, weighted"],
        },
        Case {
            what: "missing rule",
            doc: router("bad", "      service: api-svc\n"),
            expect: &["router \"bad\": rule: a rule is required"],
        },
        Case {
            what: "priority too large",
            doc: router(
                "bad",
                "      rule: \"Host(`x.example`)\"\n      service: api-svc\n      priority: 9223372036854775807\n",
            ),
            expect: &["router \"bad\": priority: must be at most"],
        },
        Case {
            what: "single-quoted rule argument",
            doc: router(
                "bad",
                "      rule: \"Host('x.example')\"\n      service: api-svc\n",
            ),
            expect: &["router \"bad\": rule: single-quoted strings are not supported"],
        },
        Case {
            what: "invalid weight type",
            doc: "http:\n  services:\n    split:\n      weighted:\n        services:\n          - name: api-svc\n            weight: heavy\n".into(),
            expect: &["service \"split\": weighted.services[0].weight: invalid type"],
        },
        Case {
            what: "negative weight",
            doc: "http:\n  services:\n    split:\n      weighted:\n        services:\n          - name: api-svc\n            weight: -1\n".into(),
            expect: &["service \"split\": weighted.services[0].weight: invalid value: integer -1"],
        },
        Case {
            what: "bad regexp in a stripPrefixRegex middleware",
            doc: "http:\n  middlewares:\n    re:\n      stripPrefixRegex:\n        regex: [\"^/(x\"]\n".into(),
            expect: &["middleware \"re\": stripPrefixRegex.regex[0]: invalid regexp"],
        },
        Case {
            what: "redirectScheme with a port out of range",
            doc: "http:\n  middlewares:\n    redir:\n      redirectScheme:\n        scheme: https\n        port: \"70000\"\n".into(),
            expect: &["middleware \"redir\": redirectScheme.port: invalid port \"70000\""],
        },
        Case {
            what: "chain cycle",
            doc: "http:\n  middlewares:\n    c1:\n      chain:\n        middlewares: [c2]\n    c2:\n      chain:\n        middlewares: [c1]\n".into(),
            expect: &["middleware \"c1\": chain.middlewares[0]: chains form a cycle c1 -> c2 -> c1"],
        },
        Case {
            what: "routers section of the wrong type",
            doc: "http:\n  routers: [api]\n".into(),
            expect: &["http.routers: expected a mapping of router names to routers"],
        },
    ]
}

#[test]
fn bad_input_is_rejected_with_a_precise_message_and_nothing_changes() {
    let c = Cluster::start(1);
    let ep = c.node(1).endpoint();
    let base_version = apply_yaml(&ep, BASE).expect("the base config applies");
    assert_eq!(config_version(&ep), base_version);

    let cases = cases();
    assert!(cases.len() >= 18, "at least 18 kinds of bad input");
    let mut failures = Vec::new();
    for case in &cases {
        let out = cli_stdin(&ep, &["apply", "-f", "-"], &case.doc);
        let stderr = out.stderr.trim();
        let mut problems = Vec::new();
        if out.success() {
            problems.push("exit status 0".to_string());
        }
        if !stderr.contains("(code: INVALID_ARGUMENT)") {
            problems.push("no `(code: INVALID_ARGUMENT)`".to_string());
        }
        if stderr.lines().count() != 1 || !stderr.starts_with("error: ") {
            problems.push("not exactly one `error: …` line on stderr".to_string());
        }
        for s in case.expect {
            if !stderr.contains(s) {
                problems.push(format!("missing {s:?}"));
            }
        }
        let v = config_version(&ep);
        if v != base_version {
            problems.push(format!("config version moved {base_version} -> {v}"));
        }
        eprintln!("[{}] {stderr}", case.what);
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}\n    stderr: {stderr}\n    stdout: {}",
                case.what,
                problems.join(", "),
                out.stdout.trim()
            ));
        }
    }
    // The same document rejected by a dry run too (validation does not depend on writing).
    let dry = cli_stdin(
        &ep,
        &["apply", "-f", "-", "--dry-run"],
        &router(
            "api",
            "      rule: \"Hots(`api.example`)\"\n      service: api-svc\n",
        ),
    );
    if dry.success() || !dry.stderr.contains("INVALID_ARGUMENT") {
        failures.push(format!("dry run of a bad document: {dry}"));
    }

    let (v, doc) = get_config(&ep).expect("get config");
    assert_eq!(v, base_version);
    assert!(doc_has(&doc, "routers", "api"), "{doc}");
    assert!(!doc_has(&doc, "routers", "bad"), "{doc}");
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn deleting_a_referenced_resource_is_refused_naming_the_referrer() {
    let c = Cluster::start(1);
    let ep = c.node(1).endpoint();
    let base_version = apply_yaml(&ep, BASE).expect("the base config applies");

    let out = cli(&ep, &["delete", "service", "api-svc"]).expect_failure();
    let stderr = out.stderr.trim();
    assert!(
        stderr.contains("INVALID_ARGUMENT") || stderr.contains("FAILED_PRECONDITION"),
        "{out}"
    );
    assert!(
        stderr.contains("router \"api\""),
        "the error names the router: {out}"
    );
    assert!(
        stderr.contains("api-svc"),
        "the error names the service: {out}"
    );
    assert_eq!(stderr.lines().count(), 1, "{out}");

    let out = cli(&ep, &["delete", "middleware", "strip"]).expect_failure();
    let stderr = out.stderr.trim();
    assert!(
        stderr.contains("INVALID_ARGUMENT") || stderr.contains("FAILED_PRECONDITION"),
        "{out}"
    );
    assert!(
        stderr.contains("router \"api\""),
        "the error names the router: {out}"
    );
    assert!(
        stderr.contains("strip"),
        "the error names the middleware: {out}"
    );

    assert_eq!(config_version(&ep), base_version);
    let (_, doc) = get_config(&ep).expect("get config");
    assert!(doc_has(&doc, "services", "api-svc"), "{doc}");
    assert!(doc_has(&doc, "middlewares", "strip"), "{doc}");

    // Unknown kinds and names are refused too.
    let out = cli(&ep, &["delete", "service", "nope"]).expect_failure();
    assert!(out.stderr.contains("NOT_FOUND"), "{out}");
    assert_eq!(config_version(&ep), base_version);
}
