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
//! For each entry point the table keeps three kinds of candidate lists ("buckets"), each a list
//! of routes in routing order, built from [`CompiledRule::host_constraint`]:
//!
//! * **exact**: host → routes, for rules that can only match some exact hosts (e.g.
//!   ``Host(`a.com`) && PathPrefix(`/api`)``, or ``Host(`a.com`) || Host(`b.com`)``, which is
//!   listed under both hosts);
//! * **wildcard**: suffix → routes for ``Host(`*.example.com`)``, keyed by `example.com`.
//!   Wildcards match exactly one label, so a request for `a.b.example.com` looks up only its
//!   parent `b.example.com`;
//! * **catch-all**: the routes that can match any host: no `Host` at all, `HostRegexp`, a
//!   `Host` under a negation or in an `||` with a host-less branch, and ``Host(`*`)``.
//!
//! A lookup canonicalises the request host once (the same key as [`rules::host_key`]: port
//! stripped, lowercased, one trailing dot removed), fetches at most one exact bucket and one
//! wildcard bucket, and merges them with the catch-all bucket in routing order (a 3-way merge
//! over borrowed slices comparing priority, then name, trying a route listed twice once; a
//! single non-empty list is walked directly). It evaluates the full compiled rule of each
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
//! ## Versions share structure (a change costs what it touches)
//!
//! Routes are `Arc<Route>`s, buckets are `Arc<[Arc<Route>]>` (or the one `Arc<Route>` of a
//! single-route bucket), and the host maps and the
//! route-by-name map are [`ShardedMap`]s: a fixed number of `Arc`'d hash-map shards sized at
//! about 32 keys each when the table is built. [`RouteTable::apply_changes`] derives the next
//! version from the previous one: for each changed router and entry point it removes the old
//! route from the buckets of its old hosts and inserts the new one in the buckets of its new
//! hosts (copying those buckets and the shards that hold them), and shares every other shard,
//! bucket, route and compiled rule with the previous version. Its cost does not depend on the
//! number of routers (a change to a catch-all route copies the catch-all bucket; a map that
//! outgrew its shards fourfold is rebuilt once with more). No global rank is kept: the routing
//! order is the comparison of (priority descending, name ascending), so inserting a route
//! never renumbers the others. [`RouteTable::routes`] sorts on demand (explain, tests).
//!
//! Each route also has a **slot** ([`Route::slot`]): a number unique in its table, `0..len`
//! after a full build, kept by a route shared with later versions; a changed router's new
//! route takes its old route's slot, a new router the next unused number (a table whose slots
//! grew past twice its routes plus 1,024 is built whole again). The proxy keeps its compiled
//! routes in a [`SlotMap`] by slot, carried from version to version like the table
//! ([`RouteTable::keeps_slots_of`] says when it may be), so a request reaches the compiled form
//! of the route it matched by index, not by hashing the router name.

//! ## Memory (100k routers and more per proxy)
//!
//! What a route costs is what a proxy with a large config pays per router, so the table keeps
//! no parse artefacts and no copies: a [`CompiledRule`] holds the rule text and its evaluation
//! tree only (predicates inline in the leaves; `switchyard explain` re-parses the text for the
//! leaf texts); a route's name is one `Arc<str>` that the route-by-name map uses as its key
//! (and the proxy's runtime as its label); service references are interned per
//! build (all routes naming `web@file` share one string); lists are boxed slices; a host
//! bucket of one route is that route's `Arc`; shards are shrunk to fit when a table is built.
//! Figures: BENCHMARKS.md, "Proxy memory per router".

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
mod shard;
mod slots;
#[cfg(test)]
mod tests;
pub mod url_explain;

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use switchyard_config::rules::{self, CompiledRule, RequestView};
use switchyard_config::{ConfigError, ConfigErrors, DynamicConfig, Router};

pub use shard::{MapKey, ShardedMap};
pub use slots::SlotMap;

/// One compiled router.
///
/// Memory (a proxy holds 100k of these and more): the name is one `Arc<str>` shared with the
/// route-by-name map and the proxy's runtime, the service reference is interned (every route
/// of a table naming the same service shares one `Arc<str>`), and the lists are boxed slices
/// (no spare capacity, no allocation when empty).
#[derive(Debug, Clone)]
pub struct Route {
    /// The router name (the key under `http.routers`).
    pub name: Arc<str>,
    /// The effective priority ([`Router::effective_priority`]).
    pub priority: i64,
    /// The service reference as written, e.g. `web@file`.
    pub service: Arc<str>,
    /// The middleware references as written, in order.
    pub middlewares: Box<[String]>,
    /// The router's `entryPoints` as written (empty means all).
    pub entry_points: Box<[String]>,
    /// The compiled rule (shared with the next version's table while the rule is unchanged).
    pub rule: Arc<CompiledRule>,
    /// Whether the router has a `tls` section: it serves only TLS connections, and a router
    /// without one only plaintext connections (Traefik's behaviour).
    pub tls: bool,
    /// See [`Route::slot`].
    slot: u32,
}

impl Route {
    /// This route's slot: a small number unique among the routes of its table, and kept by
    /// the route (the same `Arc`) in every later version derived from it by
    /// [`RouteTable::apply_changes`]. Slots of a table built whole are `0..len`; a changed
    /// router takes the slot of its previous route, a new one the next unused number (a
    /// table whose slots grew far past its routes is built whole again). So a caller can keep
    /// per-route data of a version in a [`SlotMap`] and carry it to the next version by
    /// updating the changed routers' slots only (see [`RouteTable::keeps_slots_of`]); the
    /// request path then reaches it by index instead of hashing the router name.
    pub fn slot(&self) -> usize {
        self.slot as usize
    }
}

/// The routing order: priority descending, then name ascending (names are unique).
fn order(a: &Route, b: &Route) -> Ordering {
    b.priority
        .cmp(&a.priority)
        .then_with(|| a.name.cmp(&b.name))
}

/// Routes in routing order, shared between versions until one of them changes. A single
/// route (every bucket of an exact host named by one router: the common case) is stored
/// without a list allocation.
#[derive(Debug, Clone)]
enum Bucket {
    One(Arc<Route>),
    Many(Arc<[Arc<Route>]>),
}

impl Default for Bucket {
    fn default() -> Self {
        Bucket::Many(Arc::from([]))
    }
}

impl std::ops::Deref for Bucket {
    type Target = [Arc<Route>];
    fn deref(&self) -> &[Arc<Route>] {
        match self {
            Bucket::One(r) => std::slice::from_ref(r),
            Bucket::Many(v) => v,
        }
    }
}

impl From<Vec<Arc<Route>>> for Bucket {
    fn from(mut v: Vec<Arc<Route>>) -> Bucket {
        match v.len() {
            1 => Bucket::One(v.remove(0)),
            _ => Bucket::Many(v.into()),
        }
    }
}

/// The index keys of a route: `(wildcard, key)` for each host of its constraint (`*.x.com` is
/// `(true, "x.com")`), deduplicated; `None`: a catch-all route.
type HostKeys = Option<Vec<(bool, String)>>;

fn host_keys(rule: &CompiledRule) -> HostKeys {
    rule.host_constraint().map(|hosts| {
        let mut keys: Vec<(bool, String)> = hosts
            .into_iter()
            .map(|h| match h.strip_prefix("*.") {
                Some(suffix) => (true, suffix.to_string()),
                None => (false, h),
            })
            .collect();
        keys.sort();
        keys.dedup();
        keys
    })
}

/// `bucket` without the route named `name` (`None` when that leaves it empty).
fn without(bucket: &[Arc<Route>], name: &str) -> Option<Bucket> {
    let rest: Vec<Arc<Route>> = bucket
        .iter()
        .filter(|r| &*r.name != name)
        .cloned()
        .collect();
    (!rest.is_empty()).then(|| rest.into())
}

/// `bucket` with `route` in its place (replacing a route of the same name).
fn with(bucket: Option<&Bucket>, route: &Arc<Route>) -> Bucket {
    let mut v: Vec<Arc<Route>> = bucket.map(|b| b.to_vec()).unwrap_or_default();
    v.retain(|r| r.name != route.name);
    let at = v.partition_point(|r| order(r, route) == Ordering::Less);
    v.insert(at, Arc::clone(route));
    v.into()
}

/// The index of one entry point (or of the catch-all table). Cheap to clone: the maps share
/// their shards ([`ShardedMap`]) and buckets are `Arc`s.
#[derive(Debug, Clone)]
struct EntryTable {
    /// Exact host → routes.
    exact: ShardedMap<Bucket>,
    /// Wildcard suffix (`example.com` for `*.example.com`) → routes.
    wildcard: ShardedMap<Bucket>,
    /// Routes that can match any host.
    catch_all: Bucket,
}

impl EntryTable {
    /// The table of `members` (in routing order) with their host keys.
    fn build<'a>(members: impl Iterator<Item = (&'a Arc<Route>, &'a HostKeys)>) -> EntryTable {
        let mut exact: HashMap<&str, Vec<Arc<Route>>> = HashMap::new();
        let mut wildcard: HashMap<&str, Vec<Arc<Route>>> = HashMap::new();
        let mut catch_all = Vec::new();
        for (route, keys) in members {
            match keys {
                None => catch_all.push(Arc::clone(route)),
                Some(keys) => {
                    for (wild, key) in keys {
                        let map = if *wild { &mut wildcard } else { &mut exact };
                        map.entry(key.as_str()).or_default().push(Arc::clone(route));
                    }
                }
            }
        }
        let freeze = |m: HashMap<&str, Vec<Arc<Route>>>| -> ShardedMap<Bucket> {
            m.into_iter()
                .map(|(k, v)| (Box::from(k), Bucket::from(v)))
                .collect()
        };
        EntryTable {
            exact: freeze(exact),
            wildcard: freeze(wildcard),
            catch_all: catch_all.into(),
        }
    }

    fn remove(&mut self, route: &Route, keys: &HostKeys) {
        match keys {
            None => {
                self.catch_all = without(&self.catch_all, &route.name).unwrap_or_default();
            }
            Some(keys) => {
                for (wild, key) in keys {
                    let map = if *wild {
                        &mut self.wildcard
                    } else {
                        &mut self.exact
                    };
                    map.update(key, |b| b.and_then(|b| without(b, &route.name)));
                }
            }
        }
    }

    fn insert(&mut self, route: &Arc<Route>, keys: &HostKeys) {
        match keys {
            None => self.catch_all = with(Some(&self.catch_all), route),
            Some(keys) => {
                for (wild, key) in keys {
                    let map = if *wild {
                        &mut self.wildcard
                    } else {
                        &mut self.exact
                    };
                    map.update(key, |b| Some(with(b, route)));
                }
            }
        }
    }

    fn overfull(&self) -> bool {
        self.exact.overfull() || self.wildcard.overfull()
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

/// Whether a route with these `entryPoints` is attached to entry point `ep` (`None`: the
/// catch-all table of a table compiled without entry points).
fn attached_to(route_eps: &[String], ep: Option<&str>) -> bool {
    match ep {
        None => true,
        Some(ep) => route_eps.is_empty() || route_eps.iter().any(|e| e == ep),
    }
}

/// The compiled routing table: immutable, `Send + Sync`, cheap to share in an `Arc`, and
/// cheap to derive the next version from ([`RouteTable::apply_changes`]). See the
/// [crate documentation](crate) for the index design.
#[derive(Debug, Clone)]
pub struct RouteTable {
    /// Every attached route, by name (the keys are the routes' names).
    routes: ShardedMap<Arc<Route>, Arc<str>>,
    tables: Vec<EntryTable>,
    attach: Attach,
    /// No route of this table has a slot at or above this one ([`Route::slot`]).
    next_slot: u32,
    /// Shared by a table built whole and every table derived from it by `apply_changes`
    /// (compared by address: see [`RouteTable::keeps_slots_of`]).
    lineage: Arc<Lineage>,
}

/// The identity of a line of tables whose routes keep their slots (`RouteTable::lineage`):
/// each `Arc::new` is its own allocation (its counts), so two lines alive at once never
/// compare equal.
#[derive(Debug)]
struct Lineage;

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
    compile_from(cfg, entrypoints, None)
}

/// Interned service references: the routes of a table naming the same service share one
/// `Arc<str>`.
#[derive(Default)]
struct Interner(HashSet<Arc<str>>);

impl Interner {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.0.get(s) {
            return Arc::clone(a);
        }
        let a: Arc<str> = Arc::from(s);
        self.0.insert(Arc::clone(&a));
        a
    }
}

/// Compile router `name` (`r`), reusing `prev`'s compiled rule when the text is the same (and
/// its name and service strings). `Ok(None)`: valid but attached to none of `entrypoints`.
fn compile_route(
    name: &str,
    r: &Router,
    entrypoints: Option<&[String]>,
    prev: Option<&Arc<Route>>,
    services: &mut Interner,
    slot: u32,
) -> Result<Option<Arc<Route>>, ConfigError> {
    const K: &str = "router";
    if r.rule.trim().is_empty() {
        return Err(ConfigError::field(K, name, "rule", "a rule is required"));
    }
    let rule = match prev {
        Some(p) if p.rule.rule() == &*r.rule => Arc::clone(&p.rule),
        _ => Arc::new(
            rules::compile(&r.rule)
                .map_err(|e| ConfigError::field(K, name, "rule", e.to_string()))?,
        ),
    };
    let attached = match entrypoints {
        None => true,
        Some(eps) => r.entry_points.is_empty() || r.entry_points.iter().any(|e| eps.contains(e)),
    };
    Ok(attached.then(|| {
        let (name, service) = match prev {
            Some(p) if *p.service == *r.service => (Arc::clone(&p.name), Arc::clone(&p.service)),
            Some(p) => (Arc::clone(&p.name), services.get(&r.service)),
            None => (Arc::from(name), services.get(&r.service)),
        };
        Arc::new(Route {
            name,
            priority: r.effective_priority(),
            service,
            middlewares: r.middlewares.clone(),
            entry_points: r.entry_points.clone(),
            rule,
            tls: r.tls.is_some(),
            slot,
        })
    }))
}

/// [`compile`], reusing the compiled rules of `prev` (the previous version's table): a router
/// whose rule text is unchanged shares its [`CompiledRule`] (an `Arc`) instead of parsing and
/// compiling it again. Ordering and the host index are rebuilt (linear); for a change of a few
/// routers, [`RouteTable::apply_changes`] does only the work the change needs. The result is
/// the same table [`compile`] builds (property-tested).
pub fn compile_from(
    cfg: &DynamicConfig,
    entrypoints: Option<&[String]>,
    prev: Option<&RouteTable>,
) -> Result<RouteTable, ConfigErrors> {
    let mut errors = Vec::new();
    let mut entries: Vec<Arc<Route>> = Vec::with_capacity(cfg.http.routers.len());
    let mut services = Interner::default();
    for (name, r) in &cfg.http.routers {
        let prev = prev.and_then(|p| p.routes.get(name));
        // Slots `0..len`, in config order.
        let slot = u32::try_from(entries.len()).map_err(|_| too_many_routes())?;
        match compile_route(name, r, entrypoints, prev, &mut services, slot) {
            Ok(Some(route)) => entries.push(route),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        errors.sort();
        errors.dedup();
        return Err(ConfigErrors(errors));
    }
    entries.sort_by(|a, b| order(a, b));
    let keys: Vec<HostKeys> = entries.iter().map(|r| host_keys(&r.rule)).collect();
    let (tables, attach) = match entrypoints {
        None => (
            vec![EntryTable::build(entries.iter().zip(&keys))],
            Attach::Any,
        ),
        Some(eps) => {
            let mut tables = Vec::new();
            let mut by_members: HashMap<Vec<u32>, usize> = HashMap::new();
            let mut named: Vec<(Box<str>, usize)> = Vec::new();
            for ep in eps {
                if named.iter().any(|(e, _)| **e == **ep) {
                    continue;
                }
                let members: Vec<u32> = (0..entries.len() as u32)
                    .filter(|&i| attached_to(&entries[i as usize].entry_points, Some(ep)))
                    .collect();
                let t = match by_members.get(&members) {
                    Some(&t) => t,
                    None => {
                        tables.push(EntryTable::build(
                            members
                                .iter()
                                .map(|&i| (&entries[i as usize], &keys[i as usize])),
                        ));
                        by_members.insert(members, tables.len() - 1);
                        tables.len() - 1
                    }
                };
                named.push((ep.as_str().into(), t));
            }
            (tables, Attach::Named(named))
        }
    };
    let next_slot = u32::try_from(entries.len()).map_err(|_| too_many_routes())?;
    let routes = entries
        .into_iter()
        .map(|r| (Arc::clone(&r.name), r))
        .collect();
    Ok(RouteTable {
        routes,
        tables,
        attach,
        next_slot,
        lineage: Arc::new(Lineage),
    })
}

/// More routes than slots (`u32`): not reachable with a config that fits in memory.
fn too_many_routes() -> ConfigErrors {
    ConfigErrors(vec![ConfigError::new("more than 2^32 routers")])
}

impl RouteTable {
    /// The next version of this table after the routers named in `changed` were created,
    /// updated or removed in `cfg` (a superset of the changed names is fine; every other
    /// router of `cfg` must be as this table compiled it). `entrypoints` must be the ones this
    /// table was compiled with.
    ///
    /// Costs the changed routers' rule compilations plus, per changed router and entry point,
    /// a copy of the host buckets it leaves and joins and of the index shards holding them
    /// ([`ShardedMap`]): independent of the number of routers, except that a change to a
    /// catch-all route (no `Host` constraint) copies the catch-all list. Everything else is
    /// shared with `self`. Errors as [`compile`], for the changed routers. The result routes
    /// exactly as `compile(cfg, entrypoints)` (property-tested).
    pub fn apply_changes(
        &self,
        cfg: &DynamicConfig,
        entrypoints: Option<&[String]>,
        changed: &[&str],
    ) -> Result<RouteTable, ConfigErrors> {
        let names: BTreeSet<&str> = changed.iter().copied().collect();
        // A change of a large part of the table: one full build is cheaper.
        if names.len() > 64 && names.len() > self.routes.len() / 8 {
            return compile_from(cfg, entrypoints, Some(self));
        }
        let mut errors = Vec::new();
        // (old, new) route of each changed router.
        let mut pairs: Vec<[Option<Arc<Route>>; 2]> = Vec::new();
        let mut services = Interner::default();
        let mut next_slot = self.next_slot;
        for name in names {
            let old = self.routes.get(name).cloned();
            // A changed route takes its previous route's slot (which that route leaves: slots
            // stay unique), a new one the next unused number.
            let slot = old.as_ref().map_or(next_slot, |o| o.slot);
            let new = match cfg.http.routers.get(name) {
                None => None,
                Some(r) => {
                    match compile_route(name, r, entrypoints, old.as_ref(), &mut services, slot) {
                        Ok(route) => route,
                        Err(e) => {
                            errors.push(e);
                            continue;
                        }
                    }
                }
            };
            if old.is_none() && new.is_some() {
                next_slot = next_slot.checked_add(1).ok_or_else(too_many_routes)?;
            }
            if old.is_some() || new.is_some() {
                pairs.push([old, new]);
            }
        }
        if !errors.is_empty() {
            errors.sort();
            errors.dedup();
            return Err(ConfigErrors(errors));
        }
        // One table per entry point name from here on (entry points that shared a table may
        // now differ); the clones share every shard.
        let (mut tables, named): (Vec<EntryTable>, Vec<Option<Box<str>>>) = match &self.attach {
            Attach::Any => (self.tables.clone(), vec![None]),
            Attach::Named(named) => named
                .iter()
                .map(|(ep, t)| (self.tables[*t].clone(), Some(ep.clone())))
                .unzip(),
        };
        let mut routes = self.routes.clone();
        let keyed: Vec<_> = pairs
            .iter()
            .map(|[old, new]| {
                let old = old.as_ref().map(|r| (r, host_keys(&r.rule)));
                let new = new.as_ref().map(|r| (r, host_keys(&r.rule)));
                (old, new)
            })
            .collect();
        for (old, _) in &keyed {
            let Some((route, keys)) = old else { continue };
            for (t, ep) in tables.iter_mut().zip(&named) {
                if attached_to(&route.entry_points, ep.as_deref()) {
                    t.remove(route, keys);
                }
            }
            routes.set(&route.name, None);
        }
        for (_, new) in &keyed {
            let Some((route, keys)) = new else { continue };
            for (t, ep) in tables.iter_mut().zip(&named) {
                if attached_to(&route.entry_points, ep.as_deref()) {
                    t.insert(route, keys);
                }
            }
            routes.insert(Arc::clone(&route.name), Arc::clone(route));
        }
        if routes.overfull() || tables.iter().any(EntryTable::overfull) {
            // Grown well past the size the shards were made for: rebuild with more shards.
            return compile_from(cfg, entrypoints, Some(self));
        }
        if next_slot as usize > 2 * routes.len() + 1024 {
            // Slots used up by routers removed since the last build: rebuild with slots
            // `0..len` (once per about `len` removals: amortised, like the shard growth).
            return compile_from(cfg, entrypoints, Some(self));
        }
        let attach = match &self.attach {
            Attach::Any => Attach::Any,
            Attach::Named(_) => Attach::Named(
                named
                    .into_iter()
                    .enumerate()
                    .map(|(i, ep)| (ep.unwrap_or_default(), i))
                    .collect(),
            ),
        };
        Ok(RouteTable {
            routes,
            tables,
            attach,
            next_slot,
            lineage: Arc::clone(&self.lineage),
        })
    }

    /// Whether this table's routes keep the slots they have in `prev` ([`Route::slot`]):
    /// `true` when this table is `prev` (or a clone) or was derived from it by
    /// [`RouteTable::apply_changes`] without being built whole. Then every route of a router
    /// outside the change is `prev`'s very `Arc<Route>`, slots are unique in both tables, and
    /// a [`SlotMap`] of per-route data made for `prev` serves this table once the slots of
    /// the changed routers' routes in `prev` are cleared and those of their routes in `self`
    /// set. `false` after a full build ([`compile`], [`compile_from`], or `apply_changes`
    /// falling back to one): the routes are new and their slots renumbered, so the caller
    /// builds its map again.
    pub fn keeps_slots_of(&self, prev: &RouteTable) -> bool {
        Arc::ptr_eq(&self.lineage, &prev.lineage)
    }

    fn table_index(&self, entrypoint: &str) -> Option<usize> {
        match &self.attach {
            Attach::Any => Some(0),
            Attach::Named(named) => named
                .iter()
                .find(|(e, _)| **e == *entrypoint)
                .map(|&(_, t)| t),
        }
    }

    fn table(&self, entrypoint: &str) -> Option<&EntryTable> {
        self.table_index(entrypoint)
            .and_then(|t| self.tables.get(t))
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
            return first_match([&[], &[], &t.catch_all], tls, req);
        }
        let mut buf = [0u8; host::KEY_BUF];
        let key = host::host_key(req.host, &mut buf);
        let exact = t.exact.get(&key).map_or(&[][..], |b| &b[..]);
        let wildcard = host::wildcard_parent(&key)
            .and_then(|parent| t.wildcard.get(parent))
            .map_or(&[][..], |b| &b[..]);
        first_match([exact, wildcard, &t.catch_all], tls, req)
    }

    /// Number of routes in the table (routers attached to at least one entry point).
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when the table has no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The route of router `name`, if it is attached to an entry point.
    pub fn route(&self, name: &str) -> Option<&Arc<Route>> {
        self.routes.get(name)
    }

    /// Every route, in routing order (sorted on each call: for `explain` and tests, not for
    /// the request path).
    pub fn routes(&self) -> Vec<&Route> {
        self.route_arcs().into_iter().map(|r| &**r).collect()
    }

    /// [`RouteTable::routes`] as the table's own `Arc`s (for a caller that keeps them, e.g.
    /// with its per-route data).
    pub fn route_arcs(&self) -> Vec<&Arc<Route>> {
        let mut all: Vec<&Arc<Route>> = self.routes.values().collect();
        all.sort_by(|a, b| order(a, b));
        all
    }

    /// The routes attached to `entrypoint`, in routing order (sorted on each call).
    pub fn routes_for<'t>(&'t self, entrypoint: &str) -> impl Iterator<Item = &'t Route> + 't {
        let ep = match &self.attach {
            Attach::Any => None,
            Attach::Named(_) => Some(entrypoint),
        };
        let routes = match self.table(entrypoint) {
            None => Vec::new(),
            Some(_) => self
                .routes()
                .into_iter()
                .filter(|r| attached_to(&r.entry_points, ep))
                .collect(),
        };
        routes.into_iter()
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
                    name: route.name.to_string(),
                    priority: route.priority,
                    rule: route.rule.rule().to_string(),
                    failed: vec![if route.tls { "tls" } else { "!tls" }.to_string()],
                });
                continue;
            }
            let (matched, failed) = route.rule.explain(req);
            if matched {
                out.winner = Some(ExplainedRoute {
                    name: route.name.to_string(),
                    priority: route.priority,
                    rule: route.rule.rule().to_string(),
                    service: route.service.to_string(),
                    middlewares: route.middlewares.to_vec(),
                });
                break;
            }
            out.rejected.push(RejectedRoute {
                name: route.name.to_string(),
                priority: route.priority,
                rule: route.rule.rule().to_string(),
                failed,
            });
        }
        out
    }
}

/// Merge the candidate lists (each in routing order) and return the first route that matches.
fn first_match<'t>(
    lists: [&'t [Arc<Route>]; 3],
    tls: Option<bool>,
    req: &RequestView,
) -> Option<&'t Route> {
    let accept = |r: &Route| tls.is_none_or(|t| t == r.tls) && r.rule.matches(req);
    // The common cases: one list has candidates.
    match lists {
        [l, [], []] | [[], l, []] | [[], [], l] => {
            return l.iter().map(|r| &**r).find(|r| accept(r));
        }
        _ => {}
    }
    let mut pos = [0usize; 3];
    loop {
        let mut best: Option<&'t Arc<Route>> = None;
        for (l, &p) in lists.iter().zip(&pos) {
            if let Some(r) = l.get(p) {
                if best.is_none_or(|b| order(r, b) == Ordering::Less) {
                    best = Some(r);
                }
            }
        }
        let best = best?;
        // A route listed twice (under a host and under a wildcard) is tried once.
        for (l, p) in lists.iter().zip(pos.iter_mut()) {
            if l.get(*p).is_some_and(|r| r.name == best.name) {
                *p += 1;
            }
        }
        if accept(best) {
            return Some(best);
        }
    }
}

#[allow(dead_code)]
fn assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<RouteTable>();
    is::<Route>();
    is::<Explanation>();
}
