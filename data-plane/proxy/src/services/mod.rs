//! Services: the compiled service graph of a config version, with state carried over from the
//! previous version.
//!
//! Every service becomes a [`Node`]: a `loadBalancer` ([`lb::LoadBalancer`]), a `weighted`
//! round robin over child services, a `mirroring` (main service plus mirrors) or a `failover`
//! (main, else fallback). Requests walk the graph iteratively with [`Node::step`] (no recursion,
//! no boxing) down to a load balancer.
//!
//! **Health of compound services.** Each node knows the load balancers it can reach
//! (`weighted` children with a positive weight, the `mirroring` main service, both sides of a
//! `failover`); it is healthy when one of them has an available server. A `weighted` service
//! skips children without an available server, a `failover` uses its main service while it is
//! healthy, its fallback while the main is not and the fallback is, and goes back to the main
//! as soon as it recovers. (Traefik only propagates child health when the parent declares
//! `healthCheck: {}`; a request sent to a child without a server would get 503 anyway, so we
//! always propagate.)
//!
//! **Carry-over.** When the next version defines a service identically (same `Service` value
//! and, for a load balancer, the same servers transport definition), the new node reuses the
//! previous state: the load balancer (health, health-check tasks, cursors, in-flight counters,
//! ejections, pools), the weighted cursor, the mirroring counters. Child pointers are always
//! rebuilt, so a changed child is picked up by unchanged parents.
//!
//! **Mirroring.** Traefik's selection: a request is copied to a mirror while
//! `mirrored * 100 < total * percent`. The copy never delays the main request: the client body
//! is streamed to the main service while a bounded copy is kept ([`crate::body::Tee`]); the
//! mirrors are sent when the body is complete, and skipped when it exceeds `maxBodySize`
//! (Traefik's rule) or, when `maxBodySize` is unlimited (-1, the default), our safety cap of
//! [`MIRROR_BODY_CAP`], or when the main request fails before its body was read. With
//! `mirrorBody: false` mirrors get no body; a request without a body is mirrored at once.
//! Mirrors are resolved like any service, except that a mirroring service reached from a
//! mirror does not copy again. Mirror responses are
//! drained and discarded; at most [`MIRROR_MAX_INFLIGHT`] copies per mirroring service are in
//! flight, further copies are dropped.

pub(crate) mod health;
pub(crate) mod lb;
pub(crate) mod sticky;

use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use http::header::{HeaderMap, HeaderValue};
use switchyard_config::{DynamicConfig, ServersTransport, Service};
use tokio::runtime::Handle;

use crate::metrics::Metrics;
use crate::upstream::Transport;
use crate::util::resolve_ref;
use lb::{LoadBalancer, Locality};
use sticky::Sticky;

/// Safety cap of a mirrored body when `maxBodySize` is unlimited.
pub(crate) const MIRROR_BODY_CAP: usize = 8 << 20;
/// Largest `reach` list kept per node.
const MAX_REACH: usize = 64;

/// Mirror copies in flight per mirroring service.
pub(crate) const MIRROR_MAX_INFLIGHT: usize = 1024;

/// A compiled service.
pub(crate) struct Node {
    pub name: Arc<str>,
    pub kind: Kind,
    /// Load balancers this node can send to (its health); `None` when there are more than
    /// [`MAX_REACH`] (pathologically deep or wide graphs), then health walks the graph.
    pub(crate) reach: Option<Box<[Arc<LoadBalancer>]>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The kinds of service.
pub(crate) enum Kind {
    Lb(Arc<LoadBalancer>),
    Weighted {
        children: Box<[Arc<Node>]>,
        state: Arc<WeightedState>,
    },
    Mirroring(Mirroring),
    Failover {
        main: Arc<Node>,
        fallback: Arc<Node>,
    },
}

/// State of a weighted service (kept across versions while its definition is unchanged).
pub(crate) struct WeightedState {
    schedule: Box<[u32]>,
    cursor: AtomicUsize,
    sticky: Option<Sticky>,
}

/// A mirroring service.
pub(crate) struct Mirroring {
    pub main: Arc<Node>,
    pub mirrors: Box<[(Arc<Node>, u32)]>,
    pub state: Arc<MirrorState>,
    pub mirror_body: bool,
    pub max_body: usize,
}

/// Counters of a mirroring service (kept across versions while its definition is unchanged).
pub(crate) struct MirrorState {
    total: AtomicU64,
    counts: Box<[AtomicU64]>,
    pub inflight: AtomicUsize,
}

/// One step of request resolution.
pub(crate) enum Step<'n> {
    /// Send to this load balancer.
    Lb(&'n Arc<LoadBalancer>),
    /// Continue with a child, adding a sticky `Set-Cookie` if any.
    Next(&'n Arc<Node>, Option<HeaderValue>),
    /// Handle the mirrors, then continue with the main service.
    Mirror(&'n Mirroring),
    /// No child is available.
    Unavailable,
}

impl Node {
    /// Whether a request would find an available server.
    pub(crate) fn healthy(&self) -> bool {
        match &self.reach {
            Some(r) => r.iter().any(|lb| lb.has_available()),
            None => self.walk_healthy(),
        }
    }

    /// Health by walking the graph iteratively (only for nodes without a `reach` list).
    fn walk_healthy(&self) -> bool {
        let mut seen: std::collections::HashSet<*const Node> = std::collections::HashSet::new();
        let mut stack: Vec<&Node> = vec![self];
        while let Some(n) = stack.pop() {
            if !seen.insert(n as *const Node) {
                continue;
            }
            match &n.kind {
                Kind::Lb(lb) => {
                    if lb.has_available() {
                        return true;
                    }
                }
                Kind::Weighted { children, state } => {
                    // Children with a positive weight are those in the schedule.
                    for &i in state.schedule.iter() {
                        if let Some(c) = children.get(i as usize) {
                            stack.push(c);
                        }
                    }
                }
                Kind::Mirroring(m) => stack.push(&m.main),
                Kind::Failover { main, fallback } => {
                    stack.push(main);
                    stack.push(fallback);
                }
            }
        }
        false
    }

    /// The next step for a request with these headers.
    pub(crate) fn step(&self, headers: &HeaderMap) -> Step<'_> {
        match &self.kind {
            Kind::Lb(lb) => Step::Lb(lb),
            Kind::Failover { main, fallback } => {
                if main.healthy() || !fallback.healthy() {
                    Step::Next(main, None)
                } else {
                    Step::Next(fallback, None)
                }
            }
            Kind::Mirroring(m) => Step::Mirror(m),
            Kind::Weighted { children, state } => {
                if let Some(sticky) = &state.sticky {
                    if let Some((id, rewrite)) = sticky.pinned(headers) {
                        if let Some(c) = children.get(id as usize).filter(|c| c.healthy()) {
                            let cookie = if rewrite { sticky.set_cookie(id) } else { None };
                            return Step::Next(c, cookie);
                        }
                    }
                }
                let n = state.schedule.len();
                let start = state.cursor.fetch_add(1, Ordering::Relaxed);
                let found = (0..n)
                    .map(|k| state.schedule[start.wrapping_add(k) % n])
                    .find(|&i| children[i as usize].healthy());
                match found {
                    Some(i) => Step::Next(
                        &children[i as usize],
                        state.sticky.as_ref().and_then(|s| s.set_cookie(i)),
                    ),
                    None => Step::Unavailable,
                }
            }
        }
    }

    /// The load balancer of a `loadBalancer` node.
    pub(crate) fn as_lb(&self) -> Option<&Arc<LoadBalancer>> {
        match &self.kind {
            Kind::Lb(lb) => Some(lb),
            _ => None,
        }
    }
}

impl Mirroring {
    /// The mirrors this request is copied to (Traefik's `getActiveMirrors`).
    pub(crate) fn active(&self) -> Vec<&Arc<Node>> {
        let total = self.state.total.fetch_add(1, Ordering::Relaxed) + 1;
        let mut out = Vec::new();
        for (i, (node, percent)) in self.mirrors.iter().enumerate() {
            let Some(count) = self.state.counts.get(i) else {
                continue;
            };
            let want = total.saturating_mul(u64::from(*percent));
            let won = count
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                    (c.saturating_mul(100) < want).then_some(c + 1)
                })
                .is_ok();
            if won {
                out.push(node);
            }
        }
        out
    }
}

/// The compiled services of a version.
#[derive(Default)]
pub(crate) struct Services {
    pub nodes: HashMap<String, Arc<Node>>,
    /// Servers transports by name (`None`: the default one).
    pub transports: HashMap<Option<String>, Arc<Transport>>,
}

/// What the compilation of services needs besides the config.
pub(crate) struct Env<'a> {
    pub locality: &'a Locality,
    pub metrics: &'a Metrics,
    pub handle: &'a Handle,
}

/// The servers transport key of a load balancer (`None`: default).
fn transport_key(st: Option<&String>) -> Option<String> {
    match st.map(String::as_str) {
        None | Some("") | Some("default@internal") => None,
        Some(r) => Some(resolve_ref(r).to_string()),
    }
}

fn transport_def<'c>(cfg: &'c DynamicConfig, key: &Option<String>) -> Option<&'c ServersTransport> {
    key.as_ref()
        .and_then(|k| cfg.http.servers_transports.get(k))
}

/// Compile every service of `cfg`, reusing the state of `old` where definitions are equal.
pub(crate) fn compile(
    cfg: &DynamicConfig,
    old: Option<(&DynamicConfig, &Services)>,
    env: &Env<'_>,
) -> Result<Services, String> {
    let mut out = Services::default();
    // Transports used by load balancers.
    for s in cfg.http.services.values() {
        let Some(lb) = &s.load_balancer else { continue };
        let key = transport_key(lb.servers_transport.as_ref());
        if out.transports.contains_key(&key) {
            continue;
        }
        let def = transport_def(cfg, &key);
        if key.is_some() && def.is_none() {
            return Err(format!(
                "serversTransport \"{}\" not found",
                key.as_deref().unwrap_or_default()
            ));
        }
        let reused = old.and_then(|(ocfg, osvc)| {
            (transport_def(ocfg, &key) == def)
                .then(|| osvc.transports.get(&key).cloned())
                .flatten()
        });
        let t = match reused {
            Some(t) => t,
            None => Arc::new(Transport::new(def).map_err(|e| match &key {
                Some(k) => format!("serversTransport \"{k}\": {e}"),
                None => e,
            })?),
        };
        out.transports.insert(key, t);
    }
    // Build nodes children first: an iterative depth-first walk (deep graphs cannot overflow the
    // stack). `(name, true)` marks "children done, build it"; `on_path` holds the services being
    // visited, so a child already on the path is a cycle (pending siblings are not).
    let names: Vec<&String> = cfg.http.services.keys().collect();
    let mut on_path: HashSet<&str> = HashSet::new();
    for root in names {
        let mut stack: Vec<(&str, bool)> = vec![(root.as_str(), false)];
        while let Some((name, children_done)) = stack.pop() {
            if out.nodes.contains_key(name) {
                continue;
            }
            let svc = cfg
                .http
                .services
                .get(name)
                .ok_or_else(|| format!("service \"{name}\" not found"))?;
            if children_done {
                on_path.remove(name);
                let node = build(name, svc, cfg, old, &out, env)
                    .map_err(|e| format!("service \"{name}\": {e}"))?;
                out.nodes.insert(name.to_string(), Arc::new(node));
                continue;
            }
            if !on_path.insert(name) {
                return Err(format!("service \"{name}\": services form a cycle"));
            }
            stack.push((name, true));
            let mut seen: HashSet<&str> = HashSet::new();
            for (_, r) in svc.child_refs() {
                let c = resolve_ref(r);
                if out.nodes.contains_key(c) || !seen.insert(c) {
                    continue;
                }
                if !cfg.http.services.contains_key(c) {
                    return Err(format!("service \"{name}\": service \"{c}\" not found"));
                }
                if on_path.contains(c) {
                    return Err(format!("service \"{name}\": services form a cycle"));
                }
                stack.push((c, false));
            }
        }
    }
    Ok(out)
}

/// The union of the children's reach lists, or `None` if one is `None` or it grows past
/// [`MAX_REACH`].
fn union<'n>(children: impl IntoIterator<Item = &'n Node>) -> Option<Box<[Arc<LoadBalancer>]>> {
    let mut v: Vec<Arc<LoadBalancer>> = Vec::new();
    for c in children {
        for lb in c.reach.as_ref()?.iter() {
            if !v.iter().any(|x| Arc::ptr_eq(x, lb)) {
                if v.len() == MAX_REACH {
                    return None;
                }
                v.push(lb.clone());
            }
        }
    }
    Some(v.into_boxed_slice())
}

fn build(
    name: &str,
    svc: &Service,
    cfg: &DynamicConfig,
    old: Option<(&DynamicConfig, &Services)>,
    built: &Services,
    env: &Env<'_>,
) -> Result<Node, String> {
    let child = |r: &str| -> Result<Arc<Node>, String> {
        built
            .nodes
            .get(resolve_ref(r))
            .cloned()
            .ok_or_else(|| format!("service \"{}\" not found", resolve_ref(r)))
    };
    // The previous node of the same name when the definition is unchanged.
    let old_node = old.and_then(|(ocfg, osvc)| {
        (ocfg.http.services.get(name) == Some(svc))
            .then(|| osvc.nodes.get(name).cloned())
            .flatten()
    });
    let name_arc: Arc<str> = Arc::from(name);
    if let Some(def) = &svc.load_balancer {
        let key = transport_key(def.servers_transport.as_ref());
        let same_transport =
            old.is_some_and(|(ocfg, _)| transport_def(ocfg, &key) == transport_def(cfg, &key));
        if let (Some(o), true) = (&old_node, same_transport) {
            if let Kind::Lb(lb) = &o.kind {
                return Ok(Node {
                    name: name_arc,
                    kind: Kind::Lb(lb.clone()),
                    reach: Some(Box::new([lb.clone()])),
                });
            }
        }
        let transport = built
            .transports
            .get(&key)
            .ok_or_else(|| "servers transport missing".to_string())?;
        let lb = Arc::new(LoadBalancer::new(
            name,
            def,
            transport,
            env.locality,
            env.metrics,
        )?);
        if let Some(hc) = &def.health_check {
            let hc = health::HealthCheck::new(hc)?;
            health::start(&lb, &hc, transport, env.handle)?;
        }
        return Ok(Node {
            name: name_arc,
            kind: Kind::Lb(lb.clone()),
            reach: Some(Box::new([lb])),
        });
    }
    if let Some(w) = &svc.weighted {
        let children = w
            .services
            .iter()
            .map(|c| child(&c.name))
            .collect::<Result<Vec<_>, _>>()?;
        let state = match old_node.as_ref().map(|o| &o.kind) {
            Some(Kind::Weighted { state, .. }) => state.clone(),
            _ => {
                let items: Vec<(u32, u32)> = w
                    .services
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.weight.unwrap_or(1) > 0)
                    .map(|(i, c)| (i as u32, c.weight.unwrap_or(1)))
                    .collect();
                let sticky = w.sticky.as_ref().and_then(|s| s.cookie.as_ref()).map(|c| {
                    let targets: Vec<(u32, &str)> = items
                        .iter()
                        .map(|&(i, _)| (i, resolve_ref(&w.services[i as usize].name)))
                        .collect();
                    Sticky::new(c, name, &targets)
                });
                Arc::new(WeightedState {
                    schedule: lb::schedule(&items).into_boxed_slice(),
                    cursor: AtomicUsize::new(0),
                    sticky,
                })
            }
        };
        let reach = union(
            w.services
                .iter()
                .zip(&children)
                .filter(|(c, _)| c.weight.unwrap_or(1) > 0)
                .map(|(_, n)| &**n),
        );
        return Ok(Node {
            name: name_arc,
            kind: Kind::Weighted {
                children: children.into_boxed_slice(),
                state,
            },
            reach,
        });
    }
    if let Some(m) = &svc.mirroring {
        let main = child(&m.service)?;
        let mirrors = m
            .mirrors
            .iter()
            .map(|x| Ok((child(&x.name)?, x.percent)))
            .collect::<Result<Vec<_>, String>>()?;
        let state = match old_node.as_ref().map(|o| &o.kind) {
            Some(Kind::Mirroring(om)) => om.state.clone(),
            _ => Arc::new(MirrorState {
                total: AtomicU64::new(0),
                counts: m.mirrors.iter().map(|_| AtomicU64::new(0)).collect(),
                inflight: AtomicUsize::new(0),
            }),
        };
        let max_body = match m.max_body_size {
            None | Some(-1) => MIRROR_BODY_CAP,
            Some(n) => usize::try_from(n.max(0)).unwrap_or(usize::MAX),
        };
        let reach = main.reach.clone();
        return Ok(Node {
            name: name_arc,
            kind: Kind::Mirroring(Mirroring {
                main,
                mirrors: mirrors.into_boxed_slice(),
                state,
                mirror_body: m.mirror_body.unwrap_or(true),
                max_body,
            }),
            reach,
        });
    }
    if let Some(f) = &svc.failover {
        let main = child(&f.service)?;
        let fallback = child(&f.fallback)?;
        let reach = union([&*main, &*fallback]);
        return Ok(Node {
            name: name_arc,
            kind: Kind::Failover { main, fallback },
            reach,
        });
    }
    Err("exactly one of loadBalancer, weighted, mirroring, failover must be set".into())
}

/// Every load balancer of `services`.
pub(crate) fn balancers(services: &Services) -> Vec<Arc<LoadBalancer>> {
    services
        .nodes
        .values()
        .filter_map(|n| n.as_lb().cloned())
        .collect()
}

/// `(service, url)` of every load balancer server of `services` (metric cleanup).
pub(crate) fn server_labels(services: &Services) -> Vec<(Arc<str>, Arc<str>)> {
    let mut v = Vec::new();
    for n in services.nodes.values() {
        if let Kind::Lb(lb) = &n.kind {
            for s in lb.servers.iter() {
                v.push((lb.name.clone(), s.url.clone()));
            }
        }
    }
    v
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use switchyard_config::parse_document;

    fn compile_yaml(
        yaml: &str,
        old: Option<(&DynamicConfig, &Services)>,
    ) -> (DynamicConfig, Services) {
        let cfg = parse_document(yaml).unwrap();
        switchyard_config::validate(&cfg).unwrap_or_else(|e| panic!("{e}"));
        let metrics = Metrics::new();
        let handle = Handle::current();
        let loc = Locality::default();
        let env = Env {
            locality: &loc,
            metrics: &metrics,
            handle: &handle,
        };
        let s = compile(&cfg, old, &env).unwrap();
        (cfg, s)
    }

    /// Shared children and long chains are not cycles (found by the validate/compile audit:
    /// these used to be refused as "services form a cycle").
    #[tokio::test]
    async fn shared_children_and_chains_are_not_cycles() {
        let (_, s) = compile_yaml(
            r#"
http:
  services:
    a: {weighted: {services: [{name: b}, {name: b}, {name: b}]}}
    b: {weighted: {services: [{name: c}]}}
    c: {loadBalancer: {servers: [{url: "http://127.0.0.1:1"}]}}
    l0: {weighted: {services: [{name: z}, {name: l1}]}}
    l1: {weighted: {services: [{name: z}, {name: l2}]}}
    l2: {weighted: {services: [{name: z}, {name: l3}]}}
    l3: {weighted: {services: [{name: z}, {name: l4}]}}
    l4: {weighted: {services: [{name: z}]}}
    z: {loadBalancer: {servers: [{url: "http://127.0.0.1:2"}]}}
"#,
            None,
        );
        for name in ["a", "b", "c", "l0", "l4", "z"] {
            assert!(s.nodes.contains_key(name), "{name} compiled");
        }
    }

    /// A real cycle (which validate refuses first) is still refused here.
    #[tokio::test]
    async fn a_real_cycle_is_refused() {
        let cfg = parse_document(
            "http:\n  services:\n    a: {weighted: {services: [{name: b}]}}\n    b: {failover: {service: c, fallback: a}}\n    c: {loadBalancer: {servers: [{url: \"http://127.0.0.1:1\"}]}}\n",
        )
        .unwrap();
        let metrics = Metrics::new();
        let handle = Handle::current();
        let loc = Locality::default();
        let env = Env {
            locality: &loc,
            metrics: &metrics,
            handle: &handle,
        };
        let err = compile(&cfg, None, &env).err().expect("a cycle");
        assert!(err.contains("services form a cycle"), "{err}");
    }

    fn lb_of<'a>(s: &'a Services, name: &str) -> &'a Arc<LoadBalancer> {
        s.nodes[name].as_lb().unwrap()
    }

    /// Resolve to the load balancer name a request would use.
    fn resolve(s: &Services, name: &str) -> Option<String> {
        let h = HeaderMap::new();
        let mut n = &s.nodes[name];
        loop {
            match n.step(&h) {
                Step::Lb(lb) => return Some(lb.name.to_string()),
                Step::Next(c, _) => n = c,
                Step::Mirror(m) => n = &m.main,
                Step::Unavailable => return None,
            }
        }
    }

    const CFG: &str = r#"
http:
  services:
    a: {loadBalancer: {servers: [{url: "http://127.0.0.1:1"}]}}
    b: {loadBalancer: {servers: [{url: "http://127.0.0.1:2"}]}}
    c: {loadBalancer: {servers: [{url: "http://127.0.0.1:3"}]}}
    canary: {weighted: {services: [{name: a, weight: 3}, {name: b@file, weight: 1}, {name: c, weight: 0}]}}
    fo: {failover: {service: a, fallback: b}}
    mirror: {mirroring: {service: a, mirrors: [{name: b, percent: 25}, {name: c, percent: 100}]}}
"#;

    #[tokio::test]
    async fn weighted_ratio_and_health() {
        let (_, s) = compile_yaml(CFG, None);
        let mut counts: HashMap<String, usize> = HashMap::new();
        for _ in 0..400 {
            *counts.entry(resolve(&s, "canary").unwrap()).or_default() += 1;
        }
        assert_eq!(counts.get("a"), Some(&300));
        assert_eq!(counts.get("b"), Some(&100));
        assert_eq!(counts.get("c"), None);
        // A child without servers is skipped.
        lb_of(&s, "a").set_active(0, false);
        assert_eq!(resolve(&s, "canary").as_deref(), Some("b"));
        assert!(s.nodes["canary"].healthy());
        lb_of(&s, "b").set_active(0, false);
        assert_eq!(resolve(&s, "canary"), None);
        // c has weight 0: not part of the health of canary.
        assert!(!s.nodes["canary"].healthy());
    }

    #[tokio::test]
    async fn failover_switches_and_comes_back() {
        let (_, s) = compile_yaml(CFG, None);
        assert_eq!(resolve(&s, "fo").as_deref(), Some("a"));
        lb_of(&s, "a").set_active(0, false);
        assert_eq!(resolve(&s, "fo").as_deref(), Some("b"));
        lb_of(&s, "b").set_active(0, false);
        // Both down: main (which answers 503).
        assert_eq!(resolve(&s, "fo").as_deref(), Some("a"));
        lb_of(&s, "a").set_active(0, true);
        assert_eq!(resolve(&s, "fo").as_deref(), Some("a"));
    }

    #[tokio::test]
    async fn mirror_percentages() {
        let (_, s) = compile_yaml(CFG, None);
        let Kind::Mirroring(m) = &s.nodes["mirror"].kind else {
            panic!()
        };
        let mut n = [0usize; 2];
        for _ in 0..100 {
            for x in m.active() {
                if x.name.as_ref() == "b" {
                    n[0] += 1;
                } else {
                    n[1] += 1;
                }
            }
        }
        assert_eq!(n, [25, 100]);
    }

    #[tokio::test]
    async fn state_carries_over_when_unchanged() {
        let (cfg1, s1) = compile_yaml(CFG, None);
        lb_of(&s1, "a").set_active(0, false);
        // b changes, everything else is identical.
        let changed = CFG.replace("127.0.0.1:2", "127.0.0.1:22");
        let (_, s2) = compile_yaml(&changed, Some((&cfg1, &s1)));
        assert!(Arc::ptr_eq(lb_of(&s1, "a"), lb_of(&s2, "a")));
        assert!(!Arc::ptr_eq(lb_of(&s1, "b"), lb_of(&s2, "b")));
        assert!(!s2.nodes["a"].healthy());
        // The unchanged failover points at the new b.
        assert_eq!(resolve(&s2, "fo").as_deref(), Some("b"));
        let Kind::Failover { fallback, .. } = &s2.nodes["fo"].kind else {
            panic!()
        };
        assert!(Arc::ptr_eq(fallback.as_lb().unwrap(), lb_of(&s2, "b")));
        // Transports are reused.
        assert!(Arc::ptr_eq(&s1.transports[&None], &s2.transports[&None]));
    }
}
