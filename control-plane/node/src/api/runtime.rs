//! Traefik's runtime view of a config (`pkg/config/runtime`): every router, service and middleware
//! with its `status` (`enabled`, `warning`, `disabled`), its `error` list, the entry points a router
//! is `using` and the routers a service or middleware is `usedBy`. Pure: built from a config, the
//! entry points the attached proxies serve, and the problems the shared validation and compilers
//! report, so the API says exactly what the proxies compile.
//!
//! Names carry the provider suffix as in Traefik: every resource of a Switchyard config is
//! `NAME@file` ([`PROVIDER`]), because Switchyard configs are Traefik file-provider documents and
//! their references (`auth@file`) already resolve that way. References inside resources are kept
//! as written (Traefik does the same).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Map, Value};
use switchyard_config::{resource_label, ConfigError, DynamicConfig};

/// The provider name of every resource.
pub const PROVIDER: &str = "file";

pub const ENABLED: &str = "enabled";
pub const WARNING: &str = "warning";
pub const DISABLED: &str = "disabled";

/// One resource at runtime: its config (as in a Traefik file) plus status fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Info {
    /// The resource as written (`rule`, `service`, `loadBalancer`, `addPrefix`...).
    #[serde(flatten)]
    pub config: Map<String, Value>,
    #[serde(rename = "error", skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    pub status: &'static str,
    /// Routers: effective entry points.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub using: Vec<String>,
    /// Services and middlewares: the routers that reference them.
    #[serde(rename = "usedBy", skip_serializing_if = "Vec::is_empty")]
    pub used_by: Vec<String>,
}

impl Info {
    fn new(config: Map<String, Value>) -> Self {
        Info {
            config,
            errors: Vec::new(),
            status: ENABLED,
            using: Vec::new(),
            used_by: Vec::new(),
        }
    }

    /// Traefik's `AddError`: a critical error disables, any other warns (unless disabled).
    pub fn add_error(&mut self, e: String, critical: bool) {
        if self.errors.contains(&e) {
            return;
        }
        self.errors.push(e);
        if critical {
            self.status = DISABLED;
        } else if self.status != DISABLED {
            self.status = WARNING;
        }
    }

    pub fn str_field(&self, key: &str) -> &str {
        self.config.get(key).and_then(Value::as_str).unwrap_or("")
    }

    pub fn str_list(&self, key: &str) -> Vec<&str> {
        self.config
            .get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    /// The kind of a service or middleware (`loadbalancer`, `addprefix`...): its one key,
    /// lowercased, as Traefik's `type`.
    pub fn kind(&self) -> String {
        self.config
            .keys()
            .next()
            .map(|k| k.to_ascii_lowercase())
            .unwrap_or_default()
    }
}

/// Traefik's `runtime.Configuration` (HTTP and TCP parts), keyed by qualified name.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Runtime {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub routers: BTreeMap<String, Info>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub middlewares: BTreeMap<String, Info>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub services: BTreeMap<String, Info>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tcp_routers: BTreeMap<String, Info>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tcp_middlewares: BTreeMap<String, Info>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tcp_services: BTreeMap<String, Info>,
}

/// `name@file`, or the reference as written when it already names a provider.
pub fn qualified(reference: &str) -> String {
    if reference.contains('@') {
        reference.to_string()
    } else {
        format!("{reference}@{PROVIDER}")
    }
}

/// The name without its `@provider` suffix.
pub fn bare(name: &str) -> &str {
    name.split_once('@').map_or(name, |(n, _)| n)
}

fn to_map<T: Serialize>(v: &T) -> Map<String, Value> {
    match serde_json::to_value(v) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// The text of `e` inside its resource: `field: message` (the resource is the entry itself).
fn local_text(e: &ConfigError) -> String {
    match &e.field {
        Some(f) => format!("{f}: {}", e.message),
        None => e.message.clone(),
    }
}

/// Builds the runtime view.
///
/// `problems`: what the shared validation and compilers report for `cfg` (empty for a committed
/// config); each is attached to its router, service or middleware and disables it.
/// `entrypoints`: the entry points the attached proxies serve, `None` when no proxy is attached
/// (then no entry point check is made and `using` lists the router's own `entryPoints`).
pub fn build(
    cfg: &DynamicConfig,
    problems: &[ConfigError],
    entrypoints: Option<&BTreeSet<String>>,
) -> Runtime {
    let mut rt = Runtime::default();
    // Where each problem goes: (section, qualified name) by the label validation gives it.
    let mut label_of: BTreeMap<String, (u8, String)> = BTreeMap::new();
    for (name, r) in &cfg.http.routers {
        rt.routers.insert(qualified(name), Info::new(to_map(r)));
        label_of.insert(resource_label("router", name), (0, qualified(name)));
    }
    for (name, s) in &cfg.http.services {
        rt.services.insert(qualified(name), Info::new(to_map(s)));
        label_of.insert(resource_label("service", name), (1, qualified(name)));
    }
    for (name, m) in &cfg.http.middlewares {
        rt.middlewares
            .insert(qualified(name), Info::new(to_map(&m.redacted())));
        label_of.insert(resource_label("middleware", name), (2, qualified(name)));
    }
    use switchyard_config::tcp::{MIDDLEWARE, ROUTER, SERVICE};
    for (name, r) in &cfg.tcp.routers {
        rt.tcp_routers.insert(qualified(name), Info::new(to_map(r)));
        label_of.insert(resource_label(ROUTER, name), (3, qualified(name)));
    }
    for (name, s) in &cfg.tcp.services {
        rt.tcp_services
            .insert(qualified(name), Info::new(to_map(s)));
        label_of.insert(resource_label(SERVICE, name), (4, qualified(name)));
    }
    for (name, m) in &cfg.tcp.middlewares {
        rt.tcp_middlewares
            .insert(qualified(name), Info::new(to_map(m)));
        label_of.insert(resource_label(MIDDLEWARE, name), (5, qualified(name)));
    }
    for e in problems {
        let Some((which, name)) = e.resource.as_ref().and_then(|r| label_of.get(r)) else {
            continue;
        };
        let map = match which {
            0 => &mut rt.routers,
            1 => &mut rt.services,
            2 => &mut rt.middlewares,
            3 => &mut rt.tcp_routers,
            4 => &mut rt.tcp_services,
            _ => &mut rt.tcp_middlewares,
        };
        if let Some(info) = map.get_mut(name) {
            info.add_error(local_text(e), true);
        }
    }
    link(
        &mut rt.routers,
        &mut rt.services,
        &mut rt.middlewares,
        entrypoints,
    );
    link(
        &mut rt.tcp_routers,
        &mut rt.tcp_services,
        &mut rt.tcp_middlewares,
        entrypoints,
    );
    rt
}

/// Routers' references, entry points and the `usedBy` of services and middlewares (Traefik's
/// PopulateUsedBy and router building), for the HTTP or the TCP section.
fn link(
    routers: &mut BTreeMap<String, Info>,
    services: &mut BTreeMap<String, Info>,
    middlewares: &mut BTreeMap<String, Info>,
    entrypoints: Option<&BTreeSet<String>>,
) {
    let mut svc_users: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut mw_users: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, info) in routers.iter_mut() {
        let service = qualified(info.str_field("service"));
        match services.get(&service) {
            Some(s) => {
                svc_users
                    .entry(service.clone())
                    .or_default()
                    .push(name.clone());
                if s.status == DISABLED {
                    info.add_error(format!("the service {service:?} is disabled"), true);
                }
            }
            // Validation reports it as `service: service "x" not found`; otherwise in
            // Traefik's words.
            None if !info.errors.iter().any(|e| e.starts_with("service: ")) => {
                info.add_error(format!("the service {service:?} does not exist"), true);
            }
            None => {}
        }
        let mws: Vec<String> = info
            .str_list("middlewares")
            .into_iter()
            .map(qualified)
            .collect();
        for m in mws {
            match middlewares.get(&m) {
                Some(mi) => {
                    mw_users.entry(m.clone()).or_default().push(name.clone());
                    if mi.status == DISABLED {
                        info.add_error(format!("the middleware {m:?} is disabled"), true);
                    }
                }
                None => info.add_error(format!("middleware {m:?} does not exist"), true),
            }
        }
        let declared: Vec<String> = info
            .str_list("entryPoints")
            .into_iter()
            .map(str::to_string)
            .collect();
        match entrypoints {
            None => info.using = declared,
            Some(known) => {
                let wanted: Vec<String> = if declared.is_empty() {
                    known.iter().cloned().collect()
                } else {
                    declared
                };
                let mut using = BTreeSet::new();
                for ep in wanted {
                    if known.contains(&ep) {
                        using.insert(ep);
                    } else {
                        info.add_error(format!("entryPoint {ep:?} doesn't exist"), false);
                    }
                }
                if using.is_empty() {
                    info.add_error("no valid entryPoint for this router".into(), true);
                }
                info.using = using.into_iter().collect();
            }
        }
    }
    for (name, users) in svc_users {
        if let Some(s) = services.get_mut(&name) {
            s.used_by = users;
        }
    }
    for (name, users) in mw_users {
        if let Some(m) = middlewares.get_mut(&name) {
            m.used_by = users;
        }
    }
}

/// `http.routers`, `http.services`, `http.middlewares` of a rawdata document (names without the
/// provider, status fields dropped): the config the runtime view was built from. Used to check that
/// `/api/rawdata` round-trips.
pub fn config_of(raw: &Value) -> Value {
    let mut http = Map::new();
    for key in ["routers", "services", "middlewares"] {
        let Some(Value::Object(items)) = raw.get(key) else {
            continue;
        };
        let mut out = Map::new();
        for (name, v) in items {
            let mut v = v.clone();
            if let Value::Object(o) = &mut v {
                for k in ["error", "status", "using", "usedBy", "serverStatus"] {
                    o.remove(k);
                }
            }
            out.insert(bare(name).to_string(), v);
        }
        http.insert(key.to_string(), Value::Object(out));
    }
    serde_json::json!({ "http": http })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(v: Value) -> DynamicConfig {
        switchyard_config::from_value(v).expect("parses")
    }

    fn problems(c: &DynamicConfig) -> Vec<ConfigError> {
        switchyard_config::validate(c)
            .err()
            .map(|e| e.0)
            .unwrap_or_default()
    }

    fn sample() -> DynamicConfig {
        cfg(json!({"http": {
            "routers": {
                "bar": {"rule": "Host(`foo.bar`)", "service": "foo-service", "entryPoints": ["web"],
                        "middlewares": ["auth", "addPrefixTest@file"]},
                "test": {"rule": "Host(`foo.bar.other`)", "service": "foo-service@file",
                         "entryPoints": ["web"], "middlewares": ["addPrefixTest", "auth"]},
                "secure": {"rule": "Host(`s`)", "service": "foo-service", "tls": {}}
            },
            "services": {
                "foo-service": {"loadBalancer": {"servers": [{"url": "http://127.0.0.1"}]}},
                "unused": {"loadBalancer": {"servers": [{"url": "http://127.0.0.2"}]}}
            },
            "middlewares": {
                "auth": {"addPrefix": {"prefix": "/a"}},
                "addPrefixTest": {"addPrefix": {"prefix": "/titi"}}
            }
        }}))
    }

    // Ported from traefik pkg/api/testdata/routers.json, middlewares.json, services.json: names
    // qualified, references as written, usedBy sorted, type from the one key.
    #[test]
    fn traefik_shapes() {
        let c = sample();
        assert!(problems(&c).is_empty());
        let rt = build(&c, &[], None);
        let bar = serde_json::to_value(&rt.routers["bar@file"]).expect("json");
        assert_eq!(
            bar,
            json!({"entryPoints": ["web"], "middlewares": ["auth", "addPrefixTest@file"],
                   "rule": "Host(`foo.bar`)", "service": "foo-service", "status": "enabled",
                   "using": ["web"]})
        );
        let svc = &rt.services["foo-service@file"];
        assert_eq!(svc.used_by, ["bar@file", "secure@file", "test@file"]);
        assert_eq!(svc.kind(), "loadbalancer");
        assert!(rt.services["unused@file"].used_by.is_empty());
        let mw = &rt.middlewares["addPrefixTest@file"];
        assert_eq!(mw.used_by, ["bar@file", "test@file"]);
        assert_eq!(mw.kind(), "addprefix");
        assert_eq!(mw.status, ENABLED);
    }

    // Traefik: a router whose service is missing is disabled, with the error; the others stay
    // enabled.
    #[test]
    fn missing_service_disables_the_router_only() {
        let c = cfg(json!({"http": {
            "routers": {
                "ok": {"rule": "Host(`a`)", "service": "s"},
                "broken": {"rule": "Host(`b`)", "service": "nope"}
            },
            "services": {"s": {"loadBalancer": {"servers": [{"url": "http://127.0.0.1"}]}}}
        }}));
        let p = problems(&c);
        assert!(!p.is_empty());
        let rt = build(&c, &p, None);
        let broken = &rt.routers["broken@file"];
        assert_eq!(broken.status, DISABLED);
        assert!(
            broken.errors.iter().any(|e| e.contains("\"nope\"")),
            "{:?}",
            broken.errors
        );
        let alone = build(&c, &[], None);
        assert_eq!(
            alone.routers["broken@file"].errors,
            ["the service \"nope@file\" does not exist"]
        );
        assert_eq!(rt.routers["ok@file"].status, ENABLED);
        assert!(rt.routers["ok@file"].errors.is_empty());
    }

    /// The TCP section is built by the same rules: references, usedBy, errors from validation
    /// (attached by the `tcpRouter` label), entry points.
    #[test]
    fn tcp_section_as_http() {
        let c = cfg(json!({"tcp": {
            "routers": {
                "db": {"rule": "HostSNI(`*`)", "service": "s", "middlewares": ["few"]},
                "broken": {"rule": "HostSNI(`*`)", "service": "nope", "entryPoints": ["db"]}
            },
            "services": {"s": {"loadBalancer": {"servers": [{"address": "127.0.0.1:5432"}]}}},
            "middlewares": {"few": {"inFlightConn": {"amount": 2}}}
        }}));
        let p = problems(&c);
        let eps: BTreeSet<String> = ["db".to_string(), "web".to_string()].into();
        let rt = build(&c, &p, Some(&eps));
        assert!(rt.routers.is_empty() && rt.services.is_empty());
        let db = &rt.tcp_routers["db@file"];
        assert_eq!(
            (db.status, db.using.clone()),
            (ENABLED, vec!["db".into(), "web".into()])
        );
        assert_eq!(rt.tcp_services["s@file"].used_by, ["db@file"]);
        assert_eq!(rt.tcp_middlewares["few@file"].used_by, ["db@file"]);
        assert_eq!(rt.tcp_middlewares["few@file"].kind(), "inflightconn");
        let broken = &rt.tcp_routers["broken@file"];
        assert_eq!(broken.status, DISABLED);
        assert!(
            broken
                .errors
                .iter()
                .any(|e| e.starts_with("service: ") && e.contains("\"nope\"")),
            "{:?}",
            broken.errors
        );
        let raw = serde_json::to_value(&rt).unwrap_or_default();
        assert!(raw["tcpRouters"]["db@file"].is_object(), "{raw}");
    }

    #[test]
    fn bad_middleware_disables_its_routers() {
        let c = cfg(json!({"http": {
            "routers": {"r": {"rule": "Host(`a`)", "service": "s", "middlewares": ["m", "gone"]}},
            "services": {"s": {"loadBalancer": {"servers": [{"url": "http://127.0.0.1"}]}}},
            "middlewares": {"m": {"addPrefix": {"prefix": "no-slash"}}}
        }}));
        let p = problems(&c);
        let rt = build(&c, &p, None);
        let m = &rt.middlewares["m@file"];
        if m.status == DISABLED {
            assert!(rt.routers["r@file"]
                .errors
                .contains(&"the middleware \"m@file\" is disabled".to_string()));
        }
        let r = &rt.routers["r@file"];
        assert_eq!(r.status, DISABLED);
        assert!(r
            .errors
            .contains(&"middleware \"gone@file\" does not exist".to_string()));
    }

    // Traefik's GetRoutersByEntryPoints: an unknown entry point warns, none valid disables,
    // no entryPoints means all of them.
    #[test]
    fn entry_points_as_traefik() {
        let c = cfg(json!({"http": {
            "routers": {
                "all": {"rule": "Host(`a`)", "service": "s"},
                "some": {"rule": "Host(`b`)", "service": "s", "entryPoints": ["web", "nope"]},
                "none": {"rule": "Host(`c`)", "service": "s", "entryPoints": ["nope"]}
            },
            "services": {"s": {"loadBalancer": {"servers": [{"url": "http://127.0.0.1"}]}}}
        }}));
        let eps: BTreeSet<String> = ["web".to_string(), "websecure".to_string()].into();
        let rt = build(&c, &[], Some(&eps));
        let all = &rt.routers["all@file"];
        assert_eq!(
            (all.status, all.using.clone()),
            (ENABLED, vec!["web".to_string(), "websecure".to_string()])
        );
        let some = &rt.routers["some@file"];
        assert_eq!(some.status, WARNING);
        assert_eq!(some.errors, ["entryPoint \"nope\" doesn't exist"]);
        assert_eq!(some.using, ["web"]);
        let none = &rt.routers["none@file"];
        assert_eq!(none.status, DISABLED);
        assert_eq!(
            none.errors,
            [
                "entryPoint \"nope\" doesn't exist",
                "no valid entryPoint for this router"
            ]
        );
    }

    #[test]
    fn add_error_as_traefik() {
        let mut i = Info::new(Map::new());
        i.add_error("a".into(), false);
        assert_eq!(i.status, WARNING);
        i.add_error("b".into(), true);
        assert_eq!(i.status, DISABLED);
        i.add_error("c".into(), false);
        assert_eq!(i.status, DISABLED);
        i.add_error("a".into(), false);
        assert_eq!(i.errors, ["a", "b", "c"]);
    }

    #[test]
    fn rawdata_round_trips_to_the_config() {
        let c = sample();
        let raw = serde_json::to_value(build(&c, &[], None)).expect("json");
        let back = cfg(config_of(&raw));
        let raw2 = serde_json::to_value(build(&back, &[], None)).expect("json");
        assert_eq!(raw, raw2);
    }
}
