use switchyard_config::rules::RequestView;
use switchyard_config::{DynamicConfig, Router};

use crate::{compile, Explanation, RouteTable};

struct R<'a> {
    name: &'a str,
    rule: &'a str,
    priority: Option<i64>,
    eps: &'a [&'a str],
}

fn r<'a>(name: &'a str, rule: &'a str) -> R<'a> {
    R {
        name,
        rule,
        priority: None,
        eps: &[],
    }
}

impl<'a> R<'a> {
    fn prio(mut self, p: i64) -> Self {
        self.priority = Some(p);
        self
    }
    fn eps(mut self, eps: &'a [&'a str]) -> Self {
        self.eps = eps;
        self
    }
}

fn config(routers: Vec<R>) -> DynamicConfig {
    let mut cfg = DynamicConfig::default();
    for r in routers {
        cfg.http.routers.insert(
            r.name.to_string(),
            Router {
                rule: r.rule.into(),
                priority: r.priority,
                entry_points: r.eps.iter().map(|s| s.to_string()).collect(),
                middlewares: Box::new([format!("mw-{}@file", r.name)]),
                service: format!("svc-{}@file", r.name).into(),
                ..Router::default()
            },
        );
    }
    cfg
}

fn eps(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn table(routers: Vec<R>) -> RouteTable {
    match compile(&config(routers), Some(&eps(&["web", "websecure"]))) {
        Ok(t) => t,
        Err(e) => panic!("compile: {e}"),
    }
}

fn req<'a>(host: &'a str, path: &'a str) -> RequestView<'a> {
    RequestView {
        method: "GET",
        host,
        path,
        query: None,
        headers: &[],
        client_ip: None,
    }
}

fn win(t: &RouteTable, ep: &str, host: &str, path: &str) -> Option<String> {
    let rq = req(host, path);
    let got = t.lookup(ep, &rq).map(|r| r.name.to_string());
    // explain always agrees with lookup
    let ex = t.explain(ep, &rq);
    assert_eq!(ex.winner.as_ref().map(|w| w.name.clone()), got);
    got
}

fn w(s: &str) -> Option<String> {
    Some(s.to_string())
}

#[test]
fn traefik_doc_example_regexp_beats_host() {
    let t = table(vec![
        r("regexp", r"HostRegexp(`[a-z]+\.traefik\.com`)"),
        r("host", "Host(`foobar.traefik.com`)"),
    ]);
    let prios: Vec<(&str, i64)> = t.routes().iter().map(|r| (&*r.name, r.priority)).collect();
    assert_eq!(prios, vec![("regexp", 34), ("host", 26)]);
    assert_eq!(win(&t, "web", "foobar.traefik.com", "/"), w("regexp"));
    assert_eq!(win(&t, "web", "FOOBAR.traefik.com:80", "/"), w("regexp"));
    // Uppercase patterns never match the lowercased host; a digit fails [a-z]+ entirely
    // (unanchored, but "." needs letters before it).
    assert_eq!(win(&t, "web", "123.traefik.com", "/"), None);
}

#[test]
fn explicit_priority_overrides_length() {
    let t = table(vec![
        r(
            "long",
            "Host(`a.com`) && PathPrefix(`/api`) && Method(`GET`)",
        ),
        r("short", "PathPrefix(`/`)").prio(1000),
    ]);
    assert_eq!(win(&t, "web", "a.com", "/api/x"), w("short"));
    // priority 0 means "use the rule length"
    let t = table(vec![
        r("long", "Host(`a.com`) && PathPrefix(`/api`)").prio(0),
        r("short", "PathPrefix(`/`)").prio(0),
    ]);
    assert_eq!(t.routes()[0].priority, 35);
    assert_eq!(win(&t, "web", "a.com", "/api/x"), w("long"));
    assert_eq!(win(&t, "web", "b.com", "/api/x"), w("short"));
}

#[test]
fn negative_priorities_sort_last() {
    let t = table(vec![
        r("fallback", "PathPrefix(`/`)").prio(-1),
        r("deeper", "PathPrefix(`/`)").prio(-5),
        r("api", "Host(`a.com`) && Path(`/x`)"),
    ]);
    let order: Vec<&str> = t.routes().iter().map(|r| &*r.name).collect();
    assert_eq!(order, ["api", "fallback", "deeper"]);
    assert_eq!(win(&t, "web", "a.com", "/x"), w("api"));
    assert_eq!(win(&t, "web", "a.com", "/y"), w("fallback"));
    assert_eq!(win(&t, "web", "", "/y"), w("fallback"));
}

#[test]
fn ties_broken_by_name() {
    // Same explicit priority, both match: the smaller name wins, whatever the insertion or
    // index list (exact host vs catch-all).
    let t = table(vec![
        r("b-host", "Host(`a.com`)").prio(10),
        r("a-path", "PathPrefix(`/`)").prio(10),
        r("c-host", "Host(`a.com`)").prio(10),
    ]);
    assert_eq!(win(&t, "web", "a.com", "/"), w("a-path"));
    let t = table(vec![
        r("b-host", "Host(`a.com`)").prio(10),
        r("c-path", "PathPrefix(`/`)").prio(10),
        r("d-host", "Host(`a.com`)").prio(10),
    ]);
    assert_eq!(win(&t, "web", "a.com", "/"), w("b-host"));
    // Equal default priorities (same rule length).
    let t = table(vec![
        r("zeta", "Host(`x.com`)"),
        r("alpha", "Host(`x.com`)"),
        r("mid", "Host(`*.com`)"),
    ]);
    let order: Vec<&str> = t.routes().iter().map(|r| &*r.name).collect();
    assert_eq!(order, ["alpha", "mid", "zeta"]);
    assert_eq!(win(&t, "web", "x.com", "/"), w("alpha"));
}

#[test]
fn entry_point_attachment() {
    let cfg = config(vec![
        r("all", "PathPrefix(`/`)").prio(-1),
        r("secure", "Host(`a.com`)").eps(&["websecure"]),
        r("both", "Host(`b.com`)").eps(&["web", "websecure"]),
        r("elsewhere", "Host(`c.com`)").eps(&["internal"]),
    ]);
    let t = compile(&cfg, Some(&eps(&["web", "websecure"]))).expect("compiles");
    assert_eq!(t.len(), 3, "a router attached nowhere is dropped");
    assert_eq!(win(&t, "web", "a.com", "/"), w("all"));
    assert_eq!(win(&t, "websecure", "a.com", "/"), w("secure"));
    assert_eq!(win(&t, "web", "b.com", "/"), w("both"));
    assert_eq!(win(&t, "websecure", "b.com", "/"), w("both"));
    assert_eq!(win(&t, "web", "c.com", "/"), w("all"));
    assert_eq!(
        win(&t, "internal", "c.com", "/"),
        None,
        "unknown entry point"
    );
    let names: Vec<&str> = t.routes_for("web").map(|r| &*r.name).collect();
    assert_eq!(names, ["both", "all"]);

    // An entry point with no routers at all.
    let t = compile(&cfg, Some(&eps(&["admin"]))).expect("compiles");
    assert_eq!(t.len(), 1);
    assert_eq!(win(&t, "admin", "c.com", "/"), w("all"));

    // None: every router in one catch-all table; the entry point name is ignored.
    let t = compile(&cfg, None).expect("compiles");
    assert_eq!(t.len(), 4);
    assert_eq!(win(&t, "anything", "c.com", "/"), w("elsewhere"));
    assert_eq!(win(&t, "", "a.com", "/"), w("secure"));
}

#[test]
fn identical_entry_points_share_an_index() {
    let t = table(vec![r("a", "Host(`a.com`)"), r("b", "PathPrefix(`/`)")]);
    assert_eq!(t.tables.len(), 1);
    let t = table(vec![
        r("a", "Host(`a.com`)").eps(&["web"]),
        r("b", "PathPrefix(`/`)"),
    ]);
    assert_eq!(t.tables.len(), 2);
    // Duplicate names in the proxy's list are harmless.
    let t = compile(
        &config(vec![r("a", "Host(`a.com`)")]),
        Some(&eps(&["web", "web"])),
    )
    .expect("compiles");
    assert_eq!(win(&t, "web", "a.com", "/"), w("a"));
}

#[test]
fn host_index_contents() {
    let t = table(vec![
        r("exact", "Host(`A.com.`) && PathPrefix(`/a`)"),
        r("either", "Host(`x.com`) || Host(`y.com`)"),
        r("wild", "Host(`*.Example.com`)"),
        r("mixed", "Host(`a.example.com`) || Host(`*.example.com`)"),
        r("neg", "!Host(`z.com`)"),
        r("any", "Host(`*`)"),
        r("re", "HostRegexp(`^q`)"),
        r("orpath", "Host(`p.com`) || Path(`/p`)"),
    ]);
    let tb = &t.tables[0];
    let mut exact: Vec<&str> = tb.exact.iter().map(|(k, _)| k).collect();
    exact.sort();
    assert_eq!(exact, ["a.com", "a.example.com", "x.com", "y.com"]);
    let mut wild: Vec<&str> = tb.wildcard.iter().map(|(k, _)| k).collect();
    wild.sort();
    assert_eq!(wild, ["example.com"]);
    let mut catch: Vec<&str> = tb.catch_all.iter().map(|r| &*r.name).collect();
    catch.sort();
    assert_eq!(catch, ["any", "neg", "orpath", "re"]);
    let wl = tb.wildcard.get("example.com").expect("wildcard list");
    assert_eq!(wl.len(), 2);
    assert!(wl
        .windows(2)
        .all(|p| crate::order(&p[0], &p[1]) == std::cmp::Ordering::Less));
}

#[test]
fn wildcard_matches_one_label() {
    let t = table(vec![
        r("wild", "Host(`*.example.com`)").prio(10),
        r("deep", "Host(`*.b.example.com`)").prio(5),
        r("fallback", "PathPrefix(`/`)").prio(-1),
    ]);
    assert_eq!(win(&t, "web", "a.example.com", "/"), w("wild"));
    assert_eq!(win(&t, "web", "A.Example.COM:8443", "/"), w("wild"));
    assert_eq!(win(&t, "web", "a.example.com.", "/"), w("wild"));
    assert_eq!(win(&t, "web", "b.example.com", "/"), w("wild"));
    assert_eq!(win(&t, "web", "a.b.example.com", "/"), w("deep"));
    assert_eq!(win(&t, "web", "x.a.b.example.com", "/"), w("fallback"));
    assert_eq!(win(&t, "web", "example.com", "/"), w("fallback"));
    assert_eq!(win(&t, "web", ".example.com", "/"), w("fallback"));
}

#[test]
fn host_star_matches_everything() {
    let t = table(vec![
        r("star", "Host(`*`)").prio(1),
        r("host", "Host(`a.com`)").prio(2),
    ]);
    assert_eq!(win(&t, "web", "a.com", "/"), w("host"));
    assert_eq!(win(&t, "web", "b.com", "/"), w("star"));
    assert_eq!(win(&t, "web", "", "/"), w("star"));
    assert_eq!(win(&t, "web", "[::1]:80", "/"), w("star"));
}

#[test]
fn exact_host_canonicalisation() {
    let t = table(vec![r("a", "Host(`a.com`)"), r("v6", "Host(`::1`)")]);
    for h in [
        "a.com",
        "A.COM",
        "a.com:8080",
        " a.com ",
        "a.com.",
        "A.Com.:1",
    ] {
        assert_eq!(win(&t, "web", h, "/"), w("a"), "{h:?}");
    }
    assert_eq!(win(&t, "web", "[::1]:443", "/"), w("v6"));
    assert_eq!(win(&t, "web", "b.com", "/"), None);
    assert_eq!(win(&t, "web", "", "/"), None);
}

#[test]
fn many_routes_on_one_host_are_tried_in_order() {
    let t = table(vec![
        r("root", "Host(`a.com`)"),
        r("api", "Host(`a.com`) && PathPrefix(`/api`)"),
        r("apiv2", "Host(`a.com`) && PathPrefix(`/api/v2`)"),
        r("health", "Path(`/health`)").prio(1000),
    ]);
    assert_eq!(win(&t, "web", "a.com", "/api/v2/x"), w("apiv2"));
    assert_eq!(win(&t, "web", "a.com", "/api/v1"), w("api"));
    assert_eq!(win(&t, "web", "a.com", "/"), w("root"));
    assert_eq!(win(&t, "web", "a.com", "/health"), w("health"));
    assert_eq!(win(&t, "web", "b.com", "/health"), w("health"));
}

#[test]
fn explain_lists_every_route_tried() {
    let t = table(vec![
        r("api", "Host(`a.com`) && PathPrefix(`/api`)"),
        r("other", "Host(`b.com`) && !Path(`/x`)"),
        r("fallback", "PathPrefix(`/`)").prio(-1),
    ]);
    let ex = t.explain("web", &req("b.com", "/x"));
    assert_eq!(
        serde_json::to_value(&ex).expect("serializes"),
        serde_json::json!({
            "winner": {
                "name": "fallback",
                "priority": -1,
                "rule": "PathPrefix(`/`)",
                "service": "svc-fallback@file",
                "middlewares": ["mw-fallback@file"],
            },
            "rejected": [
                {
                    "name": "api",
                    "priority": 35,
                    "rule": "Host(`a.com`) && PathPrefix(`/api`)",
                    "failed": ["Host(`a.com`)", "PathPrefix(`/api`)"],
                },
                {
                    "name": "other",
                    "priority": 28,
                    "rule": "Host(`b.com`) && !Path(`/x`)",
                    "failed": ["!Path(`/x`)"],
                },
            ],
        })
    );
    // No winner: every attached route is rejected.
    let t = table(vec![r("api", "Host(`a.com`)"), r("p", "Path(`/p`)")]);
    let ex: Explanation = t.explain("web", &req("c.com", "/"));
    assert!(ex.winner.is_none());
    assert_eq!(ex.rejected.len(), 2);
    // Unknown entry point: nothing tried.
    let ex = t.explain("nope", &req("a.com", "/"));
    assert!(ex.winner.is_none() && ex.rejected.is_empty());
    // The winner first: nothing rejected.
    let ex = t.explain("web", &req("a.com", "/"));
    assert_eq!(ex.winner.map(|w| w.name), w("api"));
    assert!(ex.rejected.is_empty());
}

#[test]
fn compile_errors_match_validate() {
    let cfg = config(vec![
        r("ok", "Host(`a.com`)"),
        r("zz", "Hots(`a.com`)"),
        r("bad", "Host(`a.com`) &&"),
        r("empty", "  "),
        r("re", "HostRegexp(`(`)"),
    ]);
    let err = compile(&cfg, None).expect_err("must fail");
    let got: Vec<String> = err.errors().iter().map(|e| e.to_string()).collect();
    assert_eq!(got.len(), 4);
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(got, sorted);
    assert!(got[0].starts_with("router \"bad\": rule: "), "{got:?}");
    assert_eq!(got[1], "router \"empty\": rule: a rule is required");
    assert_eq!(
        got[3],
        "router \"zz\": rule: unknown matcher \"Hots\" at column 1"
    );
    // Same text as validate (which also reports the missing services etc.).
    let all = switchyard_config::validate(&cfg).expect_err("invalid");
    let from_validate: Vec<String> = all
        .errors()
        .iter()
        .filter(|e| e.field.as_deref() == Some("rule"))
        .map(|e| e.to_string())
        .collect();
    assert_eq!(got, from_validate);
    // Errors are reported whatever the entry points.
    let err2 = compile(&cfg, Some(&eps(&["none"]))).expect_err("must fail");
    assert_eq!(err, err2);
}

#[test]
fn empty_config() {
    let t = compile(&DynamicConfig::default(), None).expect("compiles");
    assert!(t.is_empty());
    assert_eq!(t.len(), 0);
    assert!(t.lookup("web", &req("a.com", "/")).is_none());
    let t = compile(&DynamicConfig::default(), Some(&[])).expect("compiles");
    assert!(t.lookup("web", &req("a.com", "/")).is_none());
}

#[test]
fn route_fields() {
    let t = table(vec![r("a", "Host(`a.com`)").eps(&["web"]).prio(7)]);
    let route = t.lookup("web", &req("a.com", "/")).expect("route");
    assert_eq!(&*route.name, "a");
    assert_eq!(route.priority, 7);
    assert_eq!(&*route.service, "svc-a@file");
    assert_eq!(&*route.middlewares, ["mw-a@file"]);
    assert_eq!(&*route.entry_points, ["web"]);
    assert_eq!(route.rule.rule(), "Host(`a.com`)");
}

#[test]
fn tls_routers_serve_only_tls_connections() {
    let mut cfg = config(vec![
        r("secure", "Host(`a.com`)").prio(10),
        r("plain", "Host(`a.com`)").prio(5),
        r("any", "PathPrefix(`/`)").prio(1),
    ]);
    if let Some(x) = cfg.http.routers.get_mut("secure") {
        x.tls = Some(Box::default());
    }
    let t = compile(&cfg, Some(&eps(&["web"]))).expect("compiles");
    let name = |tls: bool, host: &str| {
        t.lookup_conn("web", tls, &req(host, "/"))
            .map(|r| r.name.clone())
    };
    assert_eq!(name(true, "a.com").as_deref(), Some("secure"));
    assert_eq!(name(false, "a.com").as_deref(), Some("plain"));
    assert_eq!(name(true, "b.com"), None);
    assert_eq!(name(false, "b.com").as_deref(), Some("any"));
    // `lookup` ignores the connection kind.
    assert_eq!(
        t.lookup("web", &req("a.com", "/")).map(|r| &*r.name),
        Some("secure")
    );
}

#[test]
fn explain_conn_rejects_the_other_kind() {
    let mut cfg = config(vec![
        r("secure", "Host(`a.com`)").prio(10),
        r("plain", "Host(`a.com`)").prio(5),
    ]);
    if let Some(x) = cfg.http.routers.get_mut("secure") {
        x.tls = Some(Box::default());
    }
    let t = compile(&cfg, None).expect("compiles");
    let ex = t.explain_conn("web", Some(false), &req("a.com", "/"));
    assert_eq!(ex.winner.map(|w| w.name).as_deref(), Some("plain"));
    assert_eq!(ex.rejected[0].failed, ["tls"]);
    let ex = t.explain_conn("web", Some(true), &req("a.com", "/"));
    assert_eq!(ex.winner.map(|w| w.name).as_deref(), Some("secure"));
}

mod incremental {
    use proptest::prelude::*;

    use std::sync::Arc;

    use super::*;
    use crate::compile_from;

    const RULES: [&str; 6] = [
        "Host(`a.com`)",
        "Host(`a.com`) && PathPrefix(`/api`)",
        "Host(`b.com`) || Host(`*.c.com`)",
        "PathPrefix(`/`)",
        "HostRegexp(`^x[0-9]+\\.com$`)",
        "Path(`/exact`) && Method(`GET`)",
    ];

    /// One change of the sequence: router `name` set to rule `rule`, priority `prio`, entry
    /// points `eps` (index into the list below), or removed.
    #[derive(Debug, Clone)]
    enum Step {
        Set {
            name: u8,
            rule: usize,
            prio: Option<i64>,
            eps: usize,
        },
        Remove(u8),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0u8..12, 0..RULES.len(), proptest::option::of(-2i64..3), 0usize..3)
                .prop_map(|(name, rule, prio, eps)| Step::Set { name, rule, prio, eps }),
            1 => (0u8..12).prop_map(Step::Remove),
        ]
    }

    const EPS: [&[&str]; 3] = [&[], &["web"], &["websecure"]];

    fn apply(cfg: &mut DynamicConfig, s: &Step) {
        match s {
            Step::Set {
                name,
                rule,
                prio,
                eps,
            } => {
                cfg.http.routers.insert(
                    format!("r{name}"),
                    Router {
                        rule: RULES[*rule].into(),
                        priority: *prio,
                        entry_points: EPS[*eps].iter().map(|e| e.to_string()).collect(),
                        service: "s".into(),
                        ..Router::default()
                    },
                );
            }
            Step::Remove(name) => {
                cfg.http.routers.remove(&format!("r{name}"));
            }
        }
    }

    const REQUESTS: [(&str, &str); 7] = [
        ("a.com", "/"),
        ("a.com", "/api/x"),
        ("b.com", "/exact"),
        ("z.c.com", "/"),
        ("x42.com", "/"),
        ("other.org", "/exact"),
        ("other.org", "/nope"),
    ];

    fn same(a: &RouteTable, b: &RouteTable) -> Result<(), TestCaseError> {
        let names = |t: &RouteTable| -> Vec<(String, i64, String)> {
            t.routes()
                .iter()
                .map(|r| (r.name.to_string(), r.priority, r.rule.rule().to_string()))
                .collect()
        };
        prop_assert_eq!(names(a), names(b));
        for ep in ["web", "websecure"] {
            for (host, path) in REQUESTS {
                let (x, y) = (
                    a.lookup(ep, &req(host, path)),
                    b.lookup(ep, &req(host, path)),
                );
                prop_assert_eq!(
                    x.map(|r| &r.name),
                    y.map(|r| &r.name),
                    "{} {}{}",
                    ep,
                    host,
                    path
                );
            }
        }
        Ok(())
    }

    /// What a caller keeping per-route data by slot relies on: slots are unique in `next`,
    /// and when `next` keeps `prev`'s slots, every route of a router outside `changed` is
    /// `prev`'s own `Arc` (so it has the same slot), and no slot of such a route is taken by a
    /// changed one.
    fn slots_carry_over(
        prev: &RouteTable,
        next: &RouteTable,
        changed: &[&str],
    ) -> Result<(), TestCaseError> {
        let mut slots: Vec<usize> = next.routes().iter().map(|r| r.slot()).collect();
        slots.sort_unstable();
        let n = slots.len();
        slots.dedup();
        prop_assert_eq!(slots.len(), n, "slots are unique");
        prop_assert!(slots.iter().all(|&s| s < next.next_slot as usize));
        if next.keeps_slots_of(prev) {
            for r in next.route_arcs() {
                if !changed.contains(&&*r.name) {
                    let old = prev.route(&r.name).expect("unchanged route");
                    prop_assert!(Arc::ptr_eq(old, r), "{} is shared", r.name);
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// For random sequences of router changes, the table built version after version from
        /// the previous one routes exactly as one compiled from scratch.
        #[test]
        fn incremental_tables_route_as_a_full_compile(steps in proptest::collection::vec(step(), 1..40)) {
            let eps = eps(&["web", "websecure"]);
            let mut cfg = DynamicConfig::default();
            let mut prev = compile(&cfg, Some(&eps)).expect("empty compiles");
            for s in &steps {
                apply(&mut cfg, s);
                let inc = compile_from(&cfg, Some(&eps), Some(&prev)).expect("compiles");
                let full = compile(&cfg, Some(&eps)).expect("compiles");
                same(&inc, &full)?;
                prev = inc;
            }
        }

        /// The same for [`RouteTable::apply_changes`], applying batches of changes (a step
        /// list split into deltas) with and without entry points: the table derived delta
        /// after delta from the previous version routes and explains exactly as a full
        /// compile of the same config.
        #[test]
        fn tables_derived_from_deltas_route_as_a_full_compile(
            deltas in proptest::collection::vec(proptest::collection::vec(step(), 1..4), 1..30),
            named in any::<bool>(),
        ) {
            let eps = eps(&["web", "websecure"]);
            let eps = named.then_some(&eps[..]);
            let mut cfg = DynamicConfig::default();
            let mut prev = compile(&cfg, eps).expect("empty compiles");
            for delta in &deltas {
                let mut changed = Vec::new();
                for s in delta {
                    apply(&mut cfg, s);
                    changed.push(match s {
                        Step::Set { name, .. } | Step::Remove(name) => format!("r{name}"),
                    });
                }
                let changed: Vec<&str> = changed.iter().map(String::as_str).collect();
                let inc = prev.apply_changes(&cfg, eps, &changed).expect("compiles");
                let full = compile(&cfg, eps).expect("compiles");
                same(&inc, &full)?;
                slots_carry_over(&prev, &inc, &changed)?;
                for ep in ["web", "websecure", "other"] {
                    for (host, path) in REQUESTS {
                        for tls in [None, Some(true), Some(false)] {
                            prop_assert_eq!(
                                inc.explain_conn(ep, tls, &req(host, path)),
                                full.explain_conn(ep, tls, &req(host, path))
                            );
                        }
                    }
                    prop_assert_eq!(
                        inc.routes_for(ep).map(|r| r.name.clone()).collect::<Vec<_>>(),
                        full.routes_for(ep).map(|r| r.name.clone()).collect::<Vec<_>>()
                    );
                }
                prev = inc;
            }
        }
    }

    #[test]
    fn a_one_router_change_shares_the_rest_of_the_index() {
        let eps = eps(&["web"]);
        let mut cfg = DynamicConfig::default();
        for i in 0..2000 {
            cfg.http.routers.insert(
                format!("r{i}"),
                Router {
                    rule: format!("Host(`h{i}.com`)").into(),
                    service: "s".into(),
                    ..Router::default()
                },
            );
        }
        let v1 = compile(&cfg, Some(&eps)).expect("v1");
        if let Some(r) = cfg.http.routers.get_mut("r7") {
            r.rule = "Host(`moved.com`)".into();
        }
        let v2 = v1.apply_changes(&cfg, Some(&eps), &["r7"]).expect("v2");
        let (t1, t2) = (&v1.tables[0], &v2.tables[0]);
        assert!(t2.exact.get("h7.com").is_none());
        assert_eq!(t2.exact.get("moved.com").map(|b| &*b[0].name), Some("r7"));
        // Untouched hosts keep their shard, and their route is the very same Arc.
        let shared = (0..2000)
            .filter(|i| t1.exact.shares_shard_of(&t2.exact, &format!("h{i}.com")))
            .count();
        assert!(shared > 1800, "{shared} of 2000 hosts share their shard");
        assert!(Arc::ptr_eq(
            &t1.exact.get("h1.com").expect("h1")[0],
            &t2.exact.get("h1.com").expect("h1")[0]
        ));
        assert_eq!(
            v2.lookup("web", &req("moved.com", "/")).map(|r| &*r.name),
            Some("r7")
        );
        assert!(v2.lookup("web", &req("h7.com", "/")).is_none());
    }

    #[test]
    fn an_unchanged_rule_is_shared_and_a_changed_one_is_compiled_again() {
        let eps = eps(&["web"]);
        let v1 = compile(
            &config(vec![r("a", "Host(`a.com`)"), r("b", "Host(`b.com`)")]),
            Some(&eps),
        )
        .expect("v1");
        let v2cfg = config(vec![r("a", "Host(`a.com`)"), r("b", "Host(`b2.com`)")]);
        let v2 = compile_from(&v2cfg, Some(&eps), Some(&v1)).expect("v2");
        let rule = |t: &RouteTable, n: &str| {
            t.routes()
                .iter()
                .find(|r| &*r.name == n)
                .map(|r| std::sync::Arc::clone(&r.rule))
                .expect("route")
        };
        assert!(std::sync::Arc::ptr_eq(&rule(&v1, "a"), &rule(&v2, "a")));
        assert!(!std::sync::Arc::ptr_eq(&rule(&v1, "b"), &rule(&v2, "b")));
        assert_eq!(rule(&v2, "b").rule(), "Host(`b2.com`)");
    }

    #[test]
    fn slots_are_kept_by_shared_routes_and_renumbered_by_a_rebuild() {
        let eps = eps(&["web"]);
        let router = |rule: &str| Router {
            rule: rule.into(),
            service: "s".into(),
            ..Router::default()
        };
        let mut cfg = DynamicConfig::default();
        for i in 0..3 {
            cfg.http
                .routers
                .insert(format!("r{i}"), router(&format!("Host(`h{i}.com`)")));
        }
        let v1 = compile(&cfg, Some(&eps)).expect("v1");
        let slot = |t: &RouteTable, n: &str| t.route(n).map(|r| r.slot());
        // A full build numbers the routes 0..len.
        let mut all: Vec<usize> = v1.routes().iter().map(|r| r.slot()).collect();
        all.sort_unstable();
        assert_eq!(all, [0, 1, 2]);
        // A changed router keeps its slot, a new one takes the next, a removed one leaves its
        // slot unused.
        cfg.http
            .routers
            .insert("r1".into(), router("Host(`moved.com`)"));
        cfg.http.routers.insert("n".into(), router("Host(`n.com`)"));
        cfg.http.routers.remove("r2");
        let v2 = v1
            .apply_changes(&cfg, Some(&eps), &["r1", "n", "r2"])
            .expect("v2");
        assert!(v2.keeps_slots_of(&v1) && v1.keeps_slots_of(&v2));
        assert_eq!(slot(&v2, "r0"), slot(&v1, "r0"));
        assert!(Arc::ptr_eq(
            v1.route("r0").expect("r0"),
            v2.route("r0").expect("r0")
        ));
        assert_eq!(slot(&v2, "r1"), slot(&v1, "r1"));
        assert_eq!(slot(&v2, "n"), Some(3));
        assert_eq!(slot(&v2, "r2"), None);
        // Removals and creations use up slots until a rebuild numbers them 0..len again.
        let mut t = v2;
        let mut rebuilt = 0;
        for i in 0..2200 {
            if i % 2 == 0 {
                cfg.http.routers.remove("n");
            } else {
                cfg.http.routers.insert("n".into(), router("Host(`n.com`)"));
            }
            let next = t.apply_changes(&cfg, Some(&eps), &["n"]).expect("next");
            if !next.keeps_slots_of(&t) {
                rebuilt += 1;
                let mut all: Vec<usize> = next.routes().iter().map(|r| r.slot()).collect();
                all.sort_unstable();
                assert_eq!(
                    all,
                    (0..next.len()).collect::<Vec<_>>(),
                    "after {i} changes"
                );
                assert!(!Arc::ptr_eq(
                    t.route("r0").expect("r0"),
                    next.route("r0").expect("r0")
                ));
            }
            assert!(next.next_slot as usize <= 2 * next.len() + 1025);
            let want = (i % 2 == 1).then_some("n");
            assert_eq!(
                next.lookup("web", &req("n.com", "/")).map(|r| &*r.name),
                want
            );
            t = next;
        }
        assert_eq!(rebuilt, 1);
        // A table built whole never keeps another's slots.
        assert!(!compile(&cfg, Some(&eps)).expect("c").keeps_slots_of(&t));
    }
}
