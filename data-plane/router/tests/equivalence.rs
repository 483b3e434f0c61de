//! Randomised test: `RouteTable::lookup` (host index + merge) must equal a brute-force scan of
//! every attached router in (priority desc, name asc) order, and `explain` must agree with both.
//!
//! Set `SWITCHYARD_ROUTER_SEED` to replay one seed; `SWITCHYARD_ROUTER_CASES` for more configs.

use std::net::IpAddr;

use switchyard_config::rules::{self, CompiledRule, RequestView};
use switchyard_config::{DynamicConfig, Router};
use switchyard_router::compile;

/// splitmix64: small, deterministic, good enough for test generation.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

const RULE_HOSTS: &[&str] = &[
    "a.com",
    "b.a.com",
    "x.b.a.com",
    "A.Com",
    "a.com.",
    "c.org",
    "::1",
    "k.a.com",
    "*.a.com",
    "*.b.a.com",
    "*.com",
    "*.A.COM.",
    "*",
];
const HOST_REGEXPS: &[&str] = &[r"^[a-z]\.a\.com$", "a", "^$", r"b\.a", "^A"];
const OTHER_LEAVES: &[&str] = &[
    "Path(`/`)",
    "Path(`/x`)",
    "PathPrefix(`/`)",
    "PathPrefix(`/a`)",
    "PathPrefix(`/a/b`)",
    "PathRegexp(`^/a/[0-9]+$`)",
    "Method(`GET`)",
    "Method(`post`)",
    "Header(`X-A`, `1`)",
    "Query(`q`, `1`)",
    "ClientIP(`10.0.0.0/8`)",
];

fn leaf(rng: &mut Rng) -> String {
    match rng.below(10) {
        0..=4 => format!("Host(`{}`)", rng.pick(RULE_HOSTS)),
        5 => format!("HostRegexp(`{}`)", rng.pick(HOST_REGEXPS)),
        _ => rng.pick(OTHER_LEAVES).to_string(),
    }
}

fn expr(rng: &mut Rng, depth: u32) -> String {
    if depth == 0 {
        return leaf(rng);
    }
    match rng.below(10) {
        0..=2 => leaf(rng),
        3..=5 => format!("{} && {}", expr(rng, depth - 1), expr(rng, depth - 1)),
        6 => format!("{} || {}", expr(rng, depth - 1), expr(rng, depth - 1)),
        7 => format!("({} || {})", expr(rng, depth - 1), expr(rng, depth - 1)),
        8 => format!("!{}", leaf(rng)),
        _ => format!("!({})", expr(rng, depth - 1)),
    }
}

/// Mostly host-routed rules (like real configs), some arbitrary ones.
fn rule(rng: &mut Rng) -> String {
    match rng.below(10) {
        0..=4 => format!("Host(`{}`) && {}", rng.pick(RULE_HOSTS), expr(rng, 1)),
        5 => format!(
            "(Host(`{}`) || Host(`{}`)) && {}",
            rng.pick(RULE_HOSTS),
            rng.pick(RULE_HOSTS),
            leaf(rng)
        ),
        6 => format!("Host(`{}`)", rng.pick(RULE_HOSTS)),
        _ => expr(rng, 3),
    }
}

const EPS: &[&str] = &["web", "websecure", "admin", "other"];

fn subset(rng: &mut Rng, pool: &[&str]) -> Vec<String> {
    pool.iter()
        .filter(|_| rng.chance(40))
        .map(|s| s.to_string())
        .collect()
}

fn gen_config(rng: &mut Rng) -> DynamicConfig {
    let mut cfg = DynamicConfig::default();
    let n = 1 + rng.below(40);
    for k in 0..n {
        let name = format!("{}{}", (b'a' + rng.below(26) as u8) as char, k);
        let priority = match rng.below(10) {
            0..=3 => None,
            4 => Some(0),
            5 | 6 => Some(50), // many ties
            7 => Some(-(1 + rng.below(3) as i64)),
            _ => Some(rng.below(60) as i64),
        };
        let entry_points = if rng.chance(60) {
            Vec::new()
        } else {
            subset(rng, EPS)
        };
        cfg.http.routers.insert(
            name.clone(),
            Router {
                rule: rule(rng).into(),
                priority,
                entry_points: entry_points.into(),
                service: format!("{name}@file").into(),
                ..Router::default()
            },
        );
    }
    cfg
}

const REQ_HOSTS: &[&str] = &[
    "a.com",
    "b.a.com",
    "x.b.a.com",
    "y.a.com",
    "z.y.a.com",
    "k.a.com",
    "\u{212A}.a.com", // Kelvin sign: lowercases to ASCII "k"
    "c.org",
    "q.com",
    "com",
    "",
    ".",
    "a.com.",
    "a.com..",
    "[::1]",
    "::1",
    "Ä.a.com",
];
const PATHS: &[&str] = &[
    "/", "/x", "/a", "/a/b", "/a/12", "/a%2Fb", "/%41/b", "/%", "/A",
];
const METHODS: &[&str] = &["GET", "POST", "post"];
const HEADERS: &[(&str, &str)] = &[("x-a", "1")];

struct Req {
    host: String,
    path: &'static str,
    method: &'static str,
    query: Option<&'static str>,
    headers: bool,
    ip: Option<IpAddr>,
    ep: &'static str,
}

fn mangle_case(rng: &mut Rng, s: &str) -> String {
    s.chars()
        .map(|c| {
            if rng.chance(30) {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

fn gen_req(rng: &mut Rng) -> Req {
    let base = rng.pick(REQ_HOSTS);
    let mut host = mangle_case(rng, base);
    if rng.chance(25) && !host.contains("::") {
        host.push_str(":8080");
    }
    if rng.chance(5) {
        host = format!(" {host} ");
    }
    Req {
        host,
        path: rng.pick(PATHS),
        method: rng.pick(METHODS),
        query: if rng.chance(30) { Some("q=1") } else { None },
        headers: rng.chance(30),
        ip: match rng.below(3) {
            0 => Some([10, 1, 2, 3].into()),
            1 => Some([192, 168, 0, 1].into()),
            _ => None,
        },
        ep: rng.pick(&["web", "websecure", "admin", "other", ""][..]),
    }
}

impl Req {
    fn view(&self) -> RequestView<'_> {
        RequestView {
            method: self.method,
            host: &self.host,
            path: self.path,
            query: self.query,
            headers: if self.headers { HEADERS } else { &[] },
            client_ip: self.ip,
        }
    }
}

struct Brute<'c> {
    /// (name, router, rule) in routing order.
    order: Vec<(&'c String, &'c Router, CompiledRule)>,
}

impl<'c> Brute<'c> {
    fn new(cfg: &'c DynamicConfig) -> Self {
        let mut order: Vec<(&String, &Router, CompiledRule)> = cfg
            .http
            .routers
            .iter()
            .map(|(n, r)| {
                (
                    n,
                    r,
                    rules::compile(&r.rule).expect("generated rules compile"),
                )
            })
            .collect();
        order.sort_by(|a, b| {
            b.1.effective_priority()
                .cmp(&a.1.effective_priority())
                .then_with(|| a.0.cmp(b.0))
        });
        Brute { order }
    }

    /// Names of the routers tried, in order, and the winner.
    fn scan(
        &self,
        eps: Option<&[String]>,
        ep: &str,
        req: &RequestView,
    ) -> (Vec<String>, Option<String>) {
        let mut tried = Vec::new();
        for (name, r, rule) in &self.order {
            let attached = match eps {
                None => true,
                Some(eps) => {
                    eps.iter().any(|e| e == ep)
                        && (r.entry_points.is_empty() || r.entry_points.iter().any(|e| e == ep))
                }
            };
            if !attached {
                continue;
            }
            if rule.matches(req) {
                return (tried, Some(name.to_string()));
            }
            tried.push(name.to_string());
        }
        (tried, None)
    }
}

#[test]
fn lookup_equals_brute_force_scan() {
    let (seeds, cases) = match std::env::var("SWITCHYARD_ROUTER_SEED") {
        Ok(s) => (s.parse::<u64>().expect("seed is a u64"), 1),
        Err(_) => (
            0x5EED,
            std::env::var("SWITCHYARD_ROUTER_CASES")
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or(400),
        ),
    };
    let (mut hits, mut total) = (0usize, 0usize);
    for case in 0..cases {
        let seed = seeds.wrapping_add(case);
        let mut rng = Rng(seed);
        let cfg = gen_config(&mut rng);
        let proxy_eps: Option<Vec<String>> = if rng.chance(25) {
            None
        } else {
            Some(subset(&mut rng, &EPS[..3]))
        };
        let eps = proxy_eps.as_deref();
        let table = compile(&cfg, eps).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let brute = Brute::new(&cfg);
        for _ in 0..150 {
            let req = gen_req(&mut rng);
            let view = req.view();
            let got = table.lookup(req.ep, &view).map(|r| r.name.to_string());
            let (tried, want) = brute.scan(eps, req.ep, &view);
            let ctx = || {
                format!(
                    "seed {seed}: ep {:?} host {:?} path {:?} proxy eps {eps:?}\nrouters: {:#?}",
                    req.ep, req.host, req.path, cfg.http.routers
                )
            };
            assert_eq!(got, want, "{}", ctx());
            let ex = table.explain(req.ep, &view);
            assert_eq!(ex.winner.map(|w| w.name), want, "explain winner: {}", ctx());
            let rejected: Vec<String> = ex.rejected.into_iter().map(|r| r.name).collect();
            assert_eq!(rejected, tried, "explain rejected: {}", ctx());
            total += 1;
            hits += usize::from(want.is_some());
        }
    }
    // The generator must exercise both outcomes.
    assert!(
        hits * 10 > total && hits * 10 < total * 9,
        "{hits} hits of {total}"
    );
}
