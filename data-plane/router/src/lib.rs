//! # switchyard-router
//!
//! Compiles the `http.routers` of a [`DynamicConfig`] into an immutable [`RouteTable`]. The
//! proxy builds one table per config version (and swaps it atomically, typically behind an
//! `Arc`) and calls [`RouteTable::lookup`] per request; the control plane calls [`compile`] to
//! validate a change with exactly the code the proxy runs, and [`RouteTable::explain`] to answer
//! `switchyard explain`.
//!
//! The crate is **pure**: no I/O, no async runtime, no clock, no randomness. Rule semantics
//! (parsing, evaluation, request canonicalisation) come from [`switchyard_config::rules`]; this
//! crate only decides *which* compiled rules are evaluated, and in which order.
//!
//! ## Order (Traefik v3)
//!
//! Routers are tried in priority order, highest first, and the first whose rule matches wins.
//! The priority is [`Router::effective_priority`]: the explicit `priority` unless absent or `0`,
//! else the length of the rule, so ``HostRegexp(`[a-z]+\.traefik\.com`)`` (34) is tried before
//! ``Host(`foobar.traefik.com`)`` (26). Negative priorities are allowed and sort last.
//!
//! **Ties.** Traefik breaks ties by provider precedence and otherwise leaves the order
//! unspecified (Go's `sort.Sort` is not stable), so any fixed order is Traefik-compatible. We
//! break ties by **router name, ascending** (byte order of the full name, including any
//! `@provider` suffix). The order is therefore a total order that depends only on the config,
//! identical on every proxy and control node, stable across restarts and config versions, and
//! easy to state in `switchyard explain`.
//!
//! ## Entry points
//!
//! [`compile`] receives the entry point names of the proxy. A router with empty `entryPoints`
//! attaches to all of them; a router naming an entry point the proxy does not have is simply not
//! attached there (a router attached nowhere is dropped from the table, it is not an error,
//! just as in Traefik). With `None` (the control plane, which does not know the proxies' entry
//! points) every router is attached to a single catch-all table, and `lookup`/`explain` ignore
//! the entry point argument. To answer for one specific entry point instead, compile with
//! `Some(&[name])`.
//!
//! ## The host index (never scan every router per request)
//!
//! Every route gets a global *rank*: its index in the table's route list, which is sorted in the
//! order above. For each entry point the table keeps three kinds of candidate lists, each a list
//! of ranks sorted ascending (= in routing order), built once in [`compile`] from
//! [`CompiledRule::host_constraint`]:
//!
//! * **exact**: `HashMap<host, ranks>` for rules that can only match some exact hosts (e.g.
//!   ``Host(`a.com`) && PathPrefix(`/api`)``, or ``Host(`a.com`) || Host(`b.com`)``, which is
//!   listed under both hosts);
//! * **wildcard**: `HashMap<suffix, ranks>` for ``Host(`*.example.com`)``, keyed by
//!   `example.com`. Wildcards match exactly one label, so a request for `a.b.example.com`
//!   looks up only its parent `b.example.com`;
//! * **catch-all**: the ranks of rules that can match any host: no `Host` at all,
//!   `HostRegexp`, a `Host` under a negation or in an `||` with a host-less branch, and
//!   ``Host(`*`)``.
//!
//! A lookup canonicalises the request host once (the same key as [`rules::host_key`]: port
//! stripped, lowercased, one trailing dot removed), fetches at most one exact list and one
//! wildcard list, and merges them with the catch-all list by rank (a 3-way merge over borrowed
//! slices, skipping a rank present in two lists). It evaluates the full compiled rule of each
//! candidate in that order and returns the first match. Because a rule's host constraint is
//! necessary for it to match, the candidates contain every route that could match, in the
//! global order, so the result equals a scan of all attached routers (this is tested against a
//! brute-force scan on randomly generated configs and requests).
//!
//! The cost of a lookup is therefore two hash lookups plus one rule evaluation per candidate,
//! independent of the number of routers for host-routed configs; only catch-all rules (and
//! routes sharing the request's host) are evaluated. The index code itself does not allocate
//! (the host is lowercased into a stack buffer if needed); rule evaluation in
//! `switchyard_config` borrows the canonical host from the request and allocates only when it
//! must be lowercased (uppercase or non-ASCII letters), once per evaluated rule.
//!
//! Entry points whose set of attached routes is identical share one index.
//!
//! ## Errors
//!
//! [`compile`] reports every router whose rule is empty or does not compile, as
//! [`ConfigError`]s `router "x": rule: ...` with the same text as [`switchyard_config::validate`],
//! sorted. It does not repeat the rest of `validate` (service references, `ruleSyntax`, the
//! reserved priority range…): callers validate first.
//!
//! [`Router::effective_priority`]: switchyard_config::Router::effective_priority

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod host;
#[cfg(test)]
mod tests;
pub mod url_explain;

use std::collections::HashMap;

use serde::Serialize;
use switchyard_config::rules::{self, CompiledRule, RequestView};
use switchyard_config::{ConfigError, ConfigErrors, DynamicConfig, Router};

/// One compiled router.
#[derive(Debug, Clone)]
pub struct Route {
    /// The router name (the key under `http.routers`).
    pub name: String,
    /// The effective priority ([`Router::effective_priority`]).
    pub priority: i64,
    /// The service reference as written, e.g. `web@file`.
    pub service: String,
    /// The middleware references as written, in order.
    pub middlewares: Vec<String>,
    /// The router's `entryPoints` as written (empty means all).
    pub entry_points: Vec<String>,
    /// The compiled rule.
    pub rule: CompiledRule,
    /// Whether the router has a `tls` section: it serves only TLS connections, and a router
    /// without one only plaintext connections (Traefik's behaviour).
    pub tls: bool,
}

/// A list of ranks; a single rank (the common case for exact hosts) is stored inline.
#[derive(Debug, Clone)]
enum Ranks {
    One(u32),
    Many(Box<[u32]>),
}

impl Ranks {
    fn as_slice(&self) -> &[u32] {
        match self {
            Ranks::One(r) => std::slice::from_ref(r),
            Ranks::Many(v) => v,
        }
    }
}

impl From<Vec<u32>> for Ranks {
    fn from(v: Vec<u32>) -> Self {
        match v.as_slice() {
            [one] => Ranks::One(*one),
            _ => Ranks::Many(v.into_boxed_slice()),
        }
    }
}

/// The index of one entry point (or of the catch-all table).
#[derive(Debug, Clone, Default)]
struct EntryTable {
    /// Every attached route, in order (for `explain`).
    all: Box<[u32]>,
    /// Exact host → ranks.
    exact: HashMap<Box<str>, Ranks>,
    /// Wildcard suffix (`example.com` for `*.example.com`) → ranks.
    wildcard: HashMap<Box<str>, Ranks>,
    /// Routes that can match any host.
    catch_all: Box<[u32]>,
}

impl EntryTable {
    fn build(members: &[u32], constraints: &[Option<Vec<String>>]) -> EntryTable {
        let mut exact: HashMap<&str, Vec<u32>> = HashMap::new();
        let mut wildcard: HashMap<&str, Vec<u32>> = HashMap::new();
        let mut catch_all = Vec::new();
        for &rank in members {
            match &constraints[rank as usize] {
                None => catch_all.push(rank),
                Some(hosts) => {
                    for h in hosts {
                        let (map, key) = match h.strip_prefix("*.") {
                            Some(suffix) => (&mut wildcard, suffix),
                            None => (&mut exact, h.as_str()),
                        };
                        let list = map.entry(key).or_default();
                        if list.last() != Some(&rank) {
                            list.push(rank);
                        }
                    }
                }
            }
        }
        let freeze = |m: HashMap<&str, Vec<u32>>| -> HashMap<Box<str>, Ranks> {
            m.into_iter()
                .map(|(k, v)| (Box::from(k), Ranks::from(v)))
                .collect()
        };
        EntryTable {
            all: members.into(),
            exact: freeze(exact),
            wildcard: freeze(wildcard),
            catch_all: catch_all.into_boxed_slice(),
        }
    }
}

/// How entry point names map to tables.
#[derive(Debug, Clone)]
enum Attach {
    /// Compiled with `None`: `tables[0]` serves every entry point name.
    Any,
    /// Compiled with `Some(eps)`: each known entry point and the index of its table.
    Named(Vec<(Box<str>, usize)>),
}

/// The compiled routing table: immutable after [`compile`], `Send + Sync`, cheap to share in an
/// `Arc`. See the [crate documentation](crate) for the index design.
#[derive(Debug, Clone)]
pub struct RouteTable {
    /// Every attached route, sorted in routing order; a route's index is its rank.
    routes: Box<[Route]>,
    tables: Vec<EntryTable>,
    attach: Attach,
}

/// What `switchyard explain` prints for one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// The route that serves the request, if any (none means 404).
    pub winner: Option<ExplainedRoute>,
    /// Every route tried before the winner (all attached routes when there is no winner), in
    /// order, with the leaf predicates that were false.
    pub rejected: Vec<RejectedRoute>,
}

/// The winning route of an [`Explanation`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExplainedRoute {
    /// Router name.
    pub name: String,
    /// Effective priority.
    pub priority: i64,
    /// The rule as written.
    pub rule: String,
    /// Service reference as written.
    pub service: String,
    /// Middleware references as written, in order.
    pub middlewares: Vec<String>,
}

/// A route that was tried and did not match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectedRoute {
    /// Router name.
    pub name: String,
    /// Effective priority.
    pub priority: i64,
    /// The rule as written.
    pub rule: String,
    /// The leaf predicates that were false, in rule order, in canonical source form, e.g.
    /// ``Host(`a.com`)``; a negated leaf that was true is listed as ``!Path(`/x`)``.
    pub failed: Vec<String>,
}

/// Compile all routers of `cfg`.
///
/// `entrypoints`: the entry point names of the proxy; a router with empty `entryPoints`
/// attaches to all of them, a router naming an entry point not in the list is simply not
/// attached there. `None` validates without knowing entry points: every router is compiled and
/// attached to a catch-all table that serves every entry point name.
///
/// Errors: every router whose rule is empty or does not compile, as `router "x": rule: ...`
/// (the same text as [`switchyard_config::validate`]), sorted.
pub fn compile(
    cfg: &DynamicConfig,
    entrypoints: Option<&[String]>,
) -> Result<RouteTable, ConfigErrors> {
    const K: &str = "router";
    let mut errors = Vec::new();
    let mut entries: Vec<(i64, &String, &Router, CompiledRule)> = Vec::new();
    for (name, r) in &cfg.http.routers {
        if r.rule.trim().is_empty() {
            errors.push(ConfigError::field(K, name, "rule", "a rule is required"));
            continue;
        }
        match rules::compile(&r.rule) {
            Ok(rule) => {
                let attached = match entrypoints {
                    None => true,
                    Some(eps) => {
                        r.entry_points.is_empty() || r.entry_points.iter().any(|e| eps.contains(e))
                    }
                };
                if attached {
                    entries.push((r.effective_priority(), name, r, rule));
                }
            }
            Err(e) => errors.push(ConfigError::field(K, name, "rule", e.to_string())),
        }
    }
    if !errors.is_empty() {
        errors.sort();
        errors.dedup();
        return Err(ConfigErrors(errors));
    }
    // Ranks are u32 with u32::MAX as the merge sentinel.
    if entries.len() >= u32::MAX as usize {
        return Err(ConfigError::at("http.routers", "too many routers").into());
    }
    // Priority descending, then name ascending (names are unique: they are map keys).
    entries.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));

    let constraints: Vec<Option<Vec<String>>> =
        entries.iter().map(|e| e.3.host_constraint()).collect();
    let routes: Box<[Route]> = entries
        .into_iter()
        .map(|(priority, name, r, rule)| Route {
            name: name.clone(),
            priority,
            service: r.service.clone(),
            middlewares: r.middlewares.clone(),
            entry_points: r.entry_points.clone(),
            rule,
            tls: r.tls.is_some(),
        })
        .collect();
    let n = routes.len() as u32;

    let (tables, attach) = match entrypoints {
        None => {
            let all: Vec<u32> = (0..n).collect();
            (vec![EntryTable::build(&all, &constraints)], Attach::Any)
        }
        Some(eps) => {
            let mut tables = Vec::new();
            let mut by_members: HashMap<Vec<u32>, usize> = HashMap::new();
            let mut named: Vec<(Box<str>, usize)> = Vec::new();
            for ep in eps {
                if named.iter().any(|(e, _)| **e == **ep) {
                    continue;
                }
                let members: Vec<u32> = (0..n)
                    .filter(|&i| {
                        let eps = &routes[i as usize].entry_points;
                        eps.is_empty() || eps.contains(ep)
                    })
                    .collect();
                let t = match by_members.get(&members) {
                    Some(&t) => t,
                    None => {
                        tables.push(EntryTable::build(&members, &constraints));
                        by_members.insert(members, tables.len() - 1);
                        tables.len() - 1
                    }
                };
                named.push((ep.as_str().into(), t));
            }
            (tables, Attach::Named(named))
        }
    };
    Ok(RouteTable {
        routes,
        tables,
        attach,
    })
}

impl RouteTable {
    fn table(&self, entrypoint: &str) -> Option<&EntryTable> {
        match &self.attach {
            Attach::Any => self.tables.first(),
            Attach::Named(named) => named
                .iter()
                .find(|(e, _)| **e == *entrypoint)
                .and_then(|&(_, t)| self.tables.get(t)),
        }
    }

    /// The winning route for a request arriving on `entrypoint` (first match in priority
    /// order), or `None` (→ 404), whatever the connection (TLS routers and plaintext routers
    /// alike; `explain` without a scheme). Evaluates only the candidates of the request's host
    /// (see the [crate documentation](crate)).
    pub fn lookup(&self, entrypoint: &str, req: &RequestView) -> Option<&Route> {
        self.lookup_with(entrypoint, None, req)
    }

    /// The winning route for a request arriving on `entrypoint` over a TLS connection
    /// (`tls: true`: only routers with a `tls` section) or a plaintext one (`tls: false`: only
    /// routers without). The same host index serves both; the flag is one comparison per
    /// candidate.
    pub fn lookup_conn(&self, entrypoint: &str, tls: bool, req: &RequestView) -> Option<&Route> {
        self.lookup_with(entrypoint, Some(tls), req)
    }

    fn lookup_with(
        &self,
        entrypoint: &str,
        tls: Option<bool>,
        req: &RequestView,
    ) -> Option<&Route> {
        let t = self.table(entrypoint)?;
        if t.exact.is_empty() && t.wildcard.is_empty() {
            return self.first_match([&[], &[], &t.catch_all], tls, req);
        }
        let mut buf = [0u8; host::KEY_BUF];
        let key = host::host_key(req.host, &mut buf);
        let exact = t.exact.get(&*key).map_or(&[][..], Ranks::as_slice);
        let wildcard = host::wildcard_parent(&key)
            .and_then(|parent| t.wildcard.get(parent))
            .map_or(&[][..], Ranks::as_slice);
        self.first_match([exact, wildcard, &t.catch_all], tls, req)
    }

    /// Merge the sorted candidate lists by rank and return the first route that matches.
    fn first_match(
        &self,
        lists: [&[u32]; 3],
        tls: Option<bool>,
        req: &RequestView,
    ) -> Option<&Route> {
        let mut pos = [0usize; 3];
        loop {
            let mut rank = u32::MAX;
            for (l, &p) in lists.iter().zip(&pos) {
                if let Some(&r) = l.get(p) {
                    rank = rank.min(r);
                }
            }
            if rank == u32::MAX {
                return None;
            }
            for (l, p) in lists.iter().zip(pos.iter_mut()) {
                if l.get(*p) == Some(&rank) {
                    *p += 1;
                }
            }
            let route = &self.routes[rank as usize];
            if tls.is_none_or(|t| t == route.tls) && route.rule.matches(req) {
                return Some(route);
            }
        }
    }

    /// Number of routes in the table (routers attached to at least one entry point).
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when the table has no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Every route, in routing order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The routes attached to `entrypoint`, in routing order.
    pub fn routes_for<'t>(&'t self, entrypoint: &str) -> impl Iterator<Item = &'t Route> + 't {
        self.table(entrypoint)
            .map_or(&[][..], |t| &t.all[..])
            .iter()
            .map(move |&r| &self.routes[r as usize])
    }

    /// Everything `switchyard explain` prints: the winner and, for every route tried before it
    /// (all routes attached to the entry point, in order, not just the host-index candidates),
    /// the leaf predicates that were false. The winner is always the route [`Self::lookup`]
    /// returns.
    pub fn explain(&self, entrypoint: &str, req: &RequestView) -> Explanation {
        self.explain_conn(entrypoint, None, req)
    }

    /// [`RouteTable::explain`] for a TLS (`Some(true)`) or plaintext (`Some(false)`)
    /// connection, as [`RouteTable::lookup_conn`] routes it: a router of the other kind is
    /// rejected with the reason `tls` (or `!tls`).
    pub fn explain_conn(
        &self,
        entrypoint: &str,
        tls: Option<bool>,
        req: &RequestView,
    ) -> Explanation {
        let mut out = Explanation {
            winner: None,
            rejected: Vec::new(),
        };
        for route in self.routes_for(entrypoint) {
            if tls.is_some_and(|t| t != route.tls) {
                out.rejected.push(RejectedRoute {
                    name: route.name.clone(),
                    priority: route.priority,
                    rule: route.rule.rule().to_string(),
                    failed: vec![if route.tls { "tls" } else { "!tls" }.to_string()],
                });
                continue;
            }
            let (matched, failed) = route.rule.explain(req);
            if matched {
                out.winner = Some(ExplainedRoute {
                    name: route.name.clone(),
                    priority: route.priority,
                    rule: route.rule.rule().to_string(),
                    service: route.service.clone(),
                    middlewares: route.middlewares.clone(),
                });
                break;
            }
            out.rejected.push(RejectedRoute {
                name: route.name.clone(),
                priority: route.priority,
                rule: route.rule.rule().to_string(),
                failed,
            });
        }
        out
    }
}

#[allow(dead_code)]
fn assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<RouteTable>();
    is::<Route>();
    is::<Explanation>();
}
