//! Traefik's read API on a control node's HTTP port (`pkg/api` of Traefik v3), cluster-wide:
//! `/api/overview`, `/api/entrypoints[/{name}]`, `/api/http/routers[/{name}]`,
//! `/api/http/services[/{name}]`, `/api/http/middlewares[/{name}]`, the same three under
//! `/api/tcp/`, `/api/certificates[/{name}]`,
//! `/api/rawdata`, `/api/version`, with Traefik's JSON fields, filters, sorting and paging; and
//! Switchyard's additions under `/api/switchyard/`: `status` (a cheap poll), `nodes`, `proxies`,
//! `explain` (and `explain/tcp`), and `preview` (`POST` a document: Traefik's runtime view of the config it would
//! make, with the routers it would disable and why; nothing is written).
//!
//! The data is this node's applied config (what the proxies compile; a follower may be a few
//! milliseconds behind the leader), the entry points and proxies attached anywhere in the cluster,
//! and the certificates as `switchyard get certs` reports them.
//!
//! Reads need a `viewer` (or `admin`) bearer token unless the node runs `--insecure`; errors are
//! Traefik's `{"message": "..."}` bodies.

pub mod query;
pub mod runtime;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use switchyard_config::paths::EncodedCharacters;
use switchyard_router::url_explain::{explain_url, UrlRequest};

use crate::admin::AdminService;
use crate::security;
use crate::shared::Shared;
use query::{Criterion, Params, SortKey, NEXT_PAGE_HEADER};
use runtime::{Info, Runtime};

/// When this process started serving the API (Traefik's `startDate`).
static STARTED: std::sync::OnceLock<i64> = std::sync::OnceLock::new();

/// The `/api/...` routes.
pub fn router(shared: Arc<Shared>) -> Router<Arc<Shared>> {
    STARTED.get_or_init(|| security::now_unix() as i64);
    Router::new()
        .route("/api/version", get(version))
        .route("/api/overview", get(overview))
        .route("/api/rawdata", get(rawdata))
        .route("/api/entrypoints", get(entrypoints))
        .route("/api/entrypoints/{name}", get(entrypoint))
        .route("/api/http/routers", get(routers))
        .route("/api/http/routers/{name}", get(router_one))
        .route("/api/http/services", get(services))
        .route("/api/http/services/{name}", get(service_one))
        .route("/api/http/middlewares", get(middlewares))
        .route("/api/http/middlewares/{name}", get(middleware_one))
        .route("/api/tcp/routers", get(tcp_routers))
        .route("/api/tcp/routers/{name}", get(tcp_router_one))
        .route("/api/tcp/services", get(tcp_services))
        .route("/api/tcp/services/{name}", get(tcp_service_one))
        .route("/api/tcp/middlewares", get(tcp_middlewares))
        .route("/api/tcp/middlewares/{name}", get(tcp_middleware_one))
        .route("/api/certificates", get(certificates))
        .route("/api/certificates/{name}", get(certificate_one))
        .route("/api/switchyard/status", get(status))
        .route("/api/switchyard/nodes", get(nodes))
        .route("/api/switchyard/proxies", get(proxies))
        .route("/api/switchyard/explain", get(explain))
        .route("/api/switchyard/explain/tcp", get(explain_tcp))
        .route(
            "/api/switchyard/preview",
            axum::routing::post(preview).layer(axum::extract::DefaultBodyLimit::max(
                switchyard_config::MAX_DOCUMENT_BYTES,
            )),
        )
        .route_layer(axum::middleware::from_fn_with_state(shared, guard))
}

type S = State<Arc<Shared>>;

/// Traefik's error body.
fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "message": message.into() }).to_string() + "\n",
    )
        .into_response()
}

fn ok_json(v: &impl serde::Serialize) -> Response {
    match serde_json::to_string(v) {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body + "\n",
        )
            .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Every `/api/` route: a viewer or admin token, unless the node is `--insecure` (the one place the
/// HTTP API checks callers).
async fn guard(
    State(shared): S,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if shared.opts.insecure {
        return next.run(req).await;
    }
    let verdict = {
        let applied = shared.applied.borrow();
        security::authenticate(&applied.state.security, security::bearer(req.headers()))
            .and_then(|c| security::authorize(&c, security::Need::Read, "the HTTP API"))
    };
    match verdict {
        Ok(()) => next.run(req).await,
        Err(s) => {
            let code = match s.code() {
                tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
                _ => StatusCode::UNAUTHORIZED,
            };
            error(code, s.message())
        }
    }
}

/// The proxies attached anywhere in the cluster.
async fn cluster_proxies(shared: &Arc<Shared>) -> switchyard_proto::admin::ListProxiesResponse {
    AdminService::new(shared.clone())
        .cluster_proxies(shared.proxies.list())
        .await
}

/// The last runtime view built: for one config (by identity: a change makes a new `Arc`) and one
/// set of known entry points. Reads between config changes reuse it, so a dashboard polling a
/// 10k-router cluster does not re-validate 10k routers per request.
struct CachedView {
    config: Arc<switchyard_config::DynamicConfig>,
    entrypoints: Option<BTreeSet<String>>,
    view: Arc<Runtime>,
}

static VIEW: std::sync::Mutex<Option<CachedView>> = std::sync::Mutex::new(None);

/// The runtime view of this node's applied config.
async fn view(shared: &Arc<Shared>) -> Arc<Runtime> {
    let proxies = cluster_proxies(shared).await;
    let eps: BTreeSet<String> = proxies
        .proxies
        .iter()
        .flat_map(|p| p.entrypoints.iter().cloned())
        .collect();
    let known = (!proxies.proxies.is_empty()).then_some(eps);
    let cfg = shared.applied.borrow().state.config.clone();
    {
        let cache = VIEW.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.as_ref() {
            if Arc::ptr_eq(&c.config, &cfg) && c.entrypoints == known {
                return c.view.clone();
            }
        }
    }
    // CPU work (validation and compilation of the whole config): off the runtime threads.
    let (cfg2, known2) = (cfg.clone(), known.clone());
    let built = tokio::task::spawn_blocking(move || {
        // A committed config compiles (the state machine refuses anything else): the problems
        // are normally none, but the view says what the shared compilers say, whatever they say.
        let problems = switchyard_store::state::compile_check(&cfg2)
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        Arc::new(runtime::build(&cfg2, &problems, known2.as_ref()))
    })
    .await;
    let Ok(built) = built else {
        // The compilers do not panic (they are fuzzed); should one, answer empty, cache nothing.
        return Arc::default();
    };
    *VIEW.lock().unwrap_or_else(|p| p.into_inner()) = Some(CachedView {
        config: cfg,
        entrypoints: known,
        view: built.clone(),
    });
    built
}

/// `/api/http/routers` item: the runtime info plus `name`, `provider`, `priorityStr`.
fn router_repr(name: &str, info: &Info) -> Value {
    let mut v = serde_json::to_value(info).unwrap_or(Value::Null);
    if let Value::Object(o) = &mut v {
        let priority = info
            .config
            .get("priority")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        o.insert("name".into(), name.into());
        o.insert("provider".into(), runtime::PROVIDER.into());
        o.insert("priorityStr".into(), priority.to_string().into());
        // Traefik shows the TLS options a router gets: `default` when not set (in the lists and
        // single-router answers, not in `/api/rawdata`).
        if let Some(Value::Object(tls)) = o.get_mut("tls") {
            tls.entry("options")
                .or_insert_with(|| Value::String("default".into()));
        }
    }
    v
}

/// Services and middlewares: plus `name`, `provider`, `type`.
fn typed_repr(name: &str, info: &Info) -> Value {
    let mut v = serde_json::to_value(info).unwrap_or(Value::Null);
    if let Value::Object(o) = &mut v {
        o.insert("name".into(), name.into());
        o.insert("provider".into(), runtime::PROVIDER.into());
        o.insert("type".into(), info.kind().into());
    }
    v
}

/// Filters, sorts and pages `items` as Traefik's list handlers do; only the page is rendered.
fn list<T>(
    uri: &Uri,
    mut items: Vec<(String, T)>,
    keep: impl Fn(&Criterion, &str, &T) -> bool,
    key: impl Fn(&(String, T), &str) -> SortKey,
    render: impl Fn(&str, &T) -> Value,
) -> Response {
    let p = Params::parse(uri.query());
    let c = Criterion::from(&p);
    items.retain(|(name, v)| keep(&c, name, v));
    query::sort_by(&p, &mut items, key);
    let page = match query::page(&p, items.len()) {
        Ok(pg) => pg,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let slice: Vec<Value> = items[page.start..page.end]
        .iter()
        .map(|(n, v)| render(n, v))
        .collect();
    let mut resp = ok_json(&slice);
    if let Ok(v) = page.next.to_string().parse() {
        resp.headers_mut().insert(NEXT_PAGE_HEADER, v);
    }
    resp
}

fn text_key(v: &Value, field: &str) -> SortKey {
    SortKey::Text(
        v.get(field)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    )
}

fn str_of<'v>(v: &'v Value, field: &str) -> &'v str {
    v.get(field).and_then(Value::as_str).unwrap_or("")
}

async fn version() -> Response {
    ok_json(&json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "Codename": "switchyard",
        "startDate": rfc3339(*STARTED.get_or_init(|| security::now_unix() as i64)),
    }))
}

async fn rawdata(State(shared): S) -> Response {
    ok_json(&*view(&shared).await)
}

fn section<'a>(items: impl Iterator<Item = &'a Info>) -> Value {
    let (mut total, mut warnings, mut errors) = (0, 0, 0);
    for i in items {
        total += 1;
        match i.status {
            runtime::DISABLED => errors += 1,
            runtime::WARNING => warnings += 1,
            _ => {}
        }
    }
    json!({"total": total, "warnings": warnings, "errors": errors})
}

async fn overview(State(shared): S) -> Response {
    let rt = view(&shared).await;
    let certs = cert_reprs(&shared);
    let (mut cw, mut ce) = (0, 0);
    for c in &certs {
        match str_of(c, "status") {
            "expired" => ce += 1,
            "warning" => cw += 1,
            _ => {}
        }
    }
    let empty = json!({"total": 0, "warnings": 0, "errors": 0});
    ok_json(&json!({
        "http": {
            "routers": section(rt.routers.values()),
            "services": section(rt.services.values()),
            "middlewares": section(rt.middlewares.values()),
        },
        "tcp": {
            "routers": section(rt.tcp_routers.values()),
            "services": section(rt.tcp_services.values()),
            "middlewares": section(rt.tcp_middlewares.values()),
        },
        "udp": {"routers": empty, "services": empty},
        "certificates": {"total": certs.len(), "warnings": cw, "errors": ce},
        "features": {"tracing": "", "metrics": "Prometheus", "accessLog": false},
        "providers": ["File"],
    }))
}

fn entrypoint_items(p: &switchyard_proto::admin::ListProxiesResponse) -> Vec<(String, Value)> {
    let mut by: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for proxy in &p.proxies {
        for ep in &proxy.entrypoints {
            by.entry(ep.clone())
                .or_default()
                .push(proxy.proxy_id.clone());
        }
    }
    by.into_iter()
        .map(|(name, proxies)| {
            let v = json!({"name": name, "proxies": proxies});
            (name, v)
        })
        .collect()
}

async fn entrypoints(State(shared): S, uri: Uri) -> Response {
    let items = entrypoint_items(&cluster_proxies(&shared).await);
    list(
        &uri,
        items,
        |_, _, _| true,
        |(n, _), _| SortKey::Text(n.clone()),
        |_, v| v.clone(),
    )
}

async fn entrypoint(State(shared): S, Path(name): Path<String>) -> Response {
    let items = entrypoint_items(&cluster_proxies(&shared).await);
    match items.into_iter().find(|(n, _)| *n == name) {
        Some((_, v)) => ok_json(&v),
        None => error(
            StatusCode::NOT_FOUND,
            format!("entry point not found: {name}"),
        ),
    }
}

async fn routers(State(shared): S, uri: Uri) -> Response {
    router_list(&uri, &view(&shared).await.routers)
}

async fn tcp_routers(State(shared): S, uri: Uri) -> Response {
    router_list(&uri, &view(&shared).await.tcp_routers)
}

async fn tcp_router_one(State(shared): S, Path(name): Path<String>) -> Response {
    one(
        &view(&shared).await.tcp_routers,
        "router",
        &name,
        router_repr,
    )
}

async fn tcp_services(State(shared): S, uri: Uri) -> Response {
    simple_list(&uri, &view(&shared).await.tcp_services)
}

async fn tcp_service_one(State(shared): S, Path(name): Path<String>) -> Response {
    one(
        &view(&shared).await.tcp_services,
        "service",
        &name,
        typed_repr,
    )
}

async fn tcp_middlewares(State(shared): S, uri: Uri) -> Response {
    simple_list(&uri, &view(&shared).await.tcp_middlewares)
}

async fn tcp_middleware_one(State(shared): S, Path(name): Path<String>) -> Response {
    one(
        &view(&shared).await.tcp_middlewares,
        "middleware",
        &name,
        typed_repr,
    )
}

/// `/api/http/routers` and `/api/tcp/routers`: Traefik's filters and sort keys.
fn router_list(uri: &Uri, map: &std::collections::BTreeMap<String, Info>) -> Response {
    let items: Vec<(String, &Info)> = map.iter().map(|(n, i)| (n.clone(), i)).collect();
    list(
        uri,
        items,
        |c, name, i| {
            c.with_status(i.status)
                && c.search_in(&[i.str_field("rule"), name])
                && c.filter_service(i.str_field("service"))
                && c.filter_middleware(&i.str_list("middlewares"))
        },
        |(n, i), by| match by {
            "priority" => SortKey::Int(
                i.config
                    .get("priority")
                    .and_then(Value::as_i64)
                    .unwrap_or(0),
            ),
            "entryPoints" => SortKey::Int(i.str_list("entryPoints").len() as i64),
            "provider" => SortKey::Text(runtime::PROVIDER.into()),
            "status" => SortKey::Text(i.status.into()),
            "rule" | "service" => SortKey::Text(i.str_field(by).into()),
            _ => SortKey::Text(n.clone()),
        },
        |n, i| router_repr(n, i),
    )
}

fn one(
    map: &std::collections::BTreeMap<String, Info>,
    what: &str,
    name: &str,
    repr: fn(&str, &Info) -> Value,
) -> Response {
    match map.get(name) {
        Some(i) => ok_json(&repr(name, i)),
        None => error(StatusCode::NOT_FOUND, format!("{what} not found: {name}")),
    }
}

async fn router_one(State(shared): S, Path(name): Path<String>) -> Response {
    one(&view(&shared).await.routers, "router", &name, router_repr)
}

fn simple_list(uri: &Uri, map: &std::collections::BTreeMap<String, Info>) -> Response {
    let items: Vec<(String, &Info)> = map.iter().map(|(n, i)| (n.clone(), i)).collect();
    list(
        uri,
        items,
        |c, name, i| c.with_status(i.status) && c.search_in(&[name]),
        |(n, i), by| match by {
            "status" => SortKey::Text(i.status.into()),
            "type" => SortKey::Text(i.kind()),
            "provider" => SortKey::Text(runtime::PROVIDER.into()),
            _ => SortKey::Text(n.clone()),
        },
        |n, i| typed_repr(n, i),
    )
}

async fn services(State(shared): S, uri: Uri) -> Response {
    simple_list(&uri, &view(&shared).await.services)
}

async fn service_one(State(shared): S, Path(name): Path<String>) -> Response {
    one(&view(&shared).await.services, "service", &name, typed_repr)
}

async fn middlewares(State(shared): S, uri: Uri) -> Response {
    simple_list(&uri, &view(&shared).await.middlewares)
}

async fn middleware_one(State(shared): S, Path(name): Path<String>) -> Response {
    one(
        &view(&shared).await.middlewares,
        "middleware",
        &name,
        typed_repr,
    )
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Certificates as Traefik's `/api/certificates` shows them (`name`, `sans`, `notAfter`,
/// `notBefore`, `serialNumber`, `issuerCN`, `status` enabled/warning/expired by expiry), plus
/// Switchyard's `source` (uploaded or acme:RESOLVER), `state` (valid, pending, renewing, error...)
/// and `lastError`.
fn cert_reprs(shared: &Shared) -> Vec<Value> {
    let now = security::now_unix() as i64;
    let rows = switchyard_acme::certinfo::list(&shared.applied.borrow().state, now);
    rows.into_iter()
        .map(|c| {
            let status = if c.not_after == 0 {
                "warning"
            } else if c.not_after < now {
                "expired"
            } else if c.not_after - now < 30 * 24 * 3600 {
                "warning"
            } else {
                "enabled"
            };
            json!({
                "name": c.name,
                "sans": c.names,
                "commonName": c.names.first().cloned().unwrap_or_default(),
                "notAfter": if c.not_after == 0 { String::new() } else { rfc3339(c.not_after) },
                "notBefore": if c.not_before == 0 { String::new() } else { rfc3339(c.not_before) },
                "serialNumber": c.serial,
                "issuerCN": c.issuer,
                "status": status,
                "source": c.source,
                "state": c.status,
                "lastError": c.last_error,
            })
        })
        .collect()
}

async fn certificates(State(shared): S, uri: Uri) -> Response {
    let items = cert_reprs(&shared)
        .into_iter()
        .map(|v| (str_of(&v, "name").to_string(), v))
        .collect();
    list(
        &uri,
        items,
        |c, _, v| {
            let mut fields = vec![str_of(v, "commonName"), str_of(v, "issuerCN")];
            if let Some(a) = v.get("sans").and_then(Value::as_array) {
                fields.extend(a.iter().filter_map(Value::as_str));
            }
            c.with_status(str_of(v, "status")) && c.search_in(&fields)
        },
        |(n, v), by| match by {
            "status" => text_key(v, "status"),
            "issuer" => text_key(v, "issuerCN"),
            "validUntil" => text_key(v, "notAfter"),
            _ => SortKey::Text(n.clone()),
        },
        |_, v| v.clone(),
    )
}

async fn certificate_one(State(shared): S, Path(name): Path<String>) -> Response {
    match cert_reprs(&shared)
        .into_iter()
        .find(|v| str_of(v, "name") == name)
    {
        Some(v) => ok_json(&v),
        None => error(
            StatusCode::NOT_FOUND,
            format!("certificate not found: {name}"),
        ),
    }
}

/// A cheap poll for the dashboard: config version, leader, term.
async fn status(State(shared): S) -> Response {
    let m = shared.raft_metrics();
    let rollout = {
        let r = crate::admin::rollout_status(&shared.applied.borrow().state);
        r.exists.then(|| {
            json!({
                "status": r.status, "targetVersion": r.target_version,
                "previousVersion": r.previous_version, "stages": r.stages, "stage": r.stage,
                "reason": r.reason, "rollbackVersion": r.rollback_version, "notes": r.notes,
            })
        })
    };
    ok_json(&json!({
        "nodeId": shared.id,
        "configVersion": shared.applied.borrow().state.config_version,
        "leader": m.current_leader,
        "term": m.current_term,
        "rollout": rollout,
    }))
}

async fn nodes(State(shared): S) -> Response {
    let m = shared.raft_metrics();
    let list: Vec<Value> = shared
        .cluster_nodes()
        .await
        .into_iter()
        .map(|n| {
            json!({
                "id": n.id, "apiAddr": n.api_addr, "peerAddr": n.peer_addr,
                "httpAddr": n.http_addr, "region": n.region, "zone": n.zone, "role": n.role,
                "leader": n.leader, "term": n.term, "appliedIndex": n.applied_index,
                "configVersion": n.config_version, "reachable": n.reachable,
                "error": n.error, "state": n.state,
            })
        })
        .collect();
    ok_json(&json!({
        "servedBy": shared.id,
        "leader": m.current_leader,
        "term": m.current_term,
        "configVersion": shared.applied.borrow().state.config_version,
        "nodes": list,
    }))
}

async fn proxies(State(shared): S) -> Response {
    let r = cluster_proxies(&shared).await;
    let version = shared.applied.borrow().state.config_version;
    let list: Vec<Value> = r
        .proxies
        .iter()
        .map(|p| {
            json!({
                "id": p.proxy_id, "region": p.region, "zone": p.zone, "labels": p.labels,
                "nodeId": p.node_id, "appliedVersion": p.applied_version,
                "lag": version.saturating_sub(p.applied_version),
                "lastNackVersion": p.last_nack_version, "lastNackError": p.last_nack_error,
                "connectedSinceUnixMs": p.connected_since_unix_ms, "peer": p.peer,
                "build": p.build, "entryPoints": p.entrypoints,
            })
        })
        .collect();
    ok_json(&json!({
        "configVersion": version,
        "proxies": list,
        "unreachableNodes": r.unreachable_nodes,
    }))
}

/// `GET /api/switchyard/explain?method=GET&url=URL[&header=Name:%20value]…[&clientIp=IP]
/// [&entrypoint=NAME][&sanitizePath=false][&encodedCharacters=…]`: what `switchyard explain`
/// prints with `-o json`, for this node's applied config.
async fn explain(State(shared): S, uri: Uri) -> Response {
    let p = Params::parse(uri.query());
    let mut hdrs = Vec::new();
    for (k, v) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        if k == "header" {
            match v.split_once(':') {
                Some((n, val)) => hdrs.push((n.trim().to_string(), val.trim().to_string())),
                None => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("header {v:?}: expected 'Name: value'"),
                    )
                }
            }
        }
    }
    let client_ip = match p.get("clientIp") {
        "" => None,
        s => match s.parse() {
            Ok(ip) => Some(ip),
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("clientIp {s:?}: not an IP address"),
                )
            }
        },
    };
    let sanitize_path = match p.get("sanitizePath") {
        "" => true,
        s => match switchyard_config::paths::parse_bool(s) {
            Some(b) => b,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("sanitizePath {s:?}: expected true or false"),
                )
            }
        },
    };
    let mut encoded = EncodedCharacters::default();
    if let Err(e) = encoded.apply_list(p.get("encodedCharacters")) {
        return error(StatusCode::BAD_REQUEST, format!("encodedCharacters: {e}"));
    }
    let method = match p.get("method") {
        "" => "GET",
        m => m,
    };
    let entrypoint = Some(p.get("entrypoint")).filter(|e| !e.is_empty());
    let req = UrlRequest {
        method,
        url: p.get("url"),
        headers: &hdrs,
        client_ip,
        entrypoint,
        sanitize_path,
        encoded,
    };
    let (cfg, version) = {
        let a = shared.applied.borrow();
        (a.state.config.clone(), a.state.config_version)
    };
    match explain_url(&cfg, &req) {
        Ok(ex) => {
            let mut v = serde_json::to_value(&ex).unwrap_or(Value::Null);
            if let Value::Object(o) = &mut v {
                o.insert("version".into(), version.into());
            }
            ok_json(&v)
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// `GET /api/switchyard/explain/tcp?sni=NAME[&plain=true][&clientIp=IP][&alpn=P]…
/// [&entrypoint=NAME]`: what `switchyard explain tcp SNI` prints with `-o json`, for this
/// node's applied config.
async fn explain_tcp(State(shared): S, uri: Uri) -> Response {
    let p = Params::parse(uri.query());
    let client_ip = match p.get("clientIp") {
        "" => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        s => match s.parse() {
            Ok(ip) => ip,
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("clientIp {s:?}: not an IP address"),
                )
            }
        },
    };
    let plain = matches!(p.get("plain"), "true" | "1");
    let alpn: Vec<String> = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "alpn")
        .map(|(_, v)| v.into_owned())
        .collect();
    let sni = Some(p.get("sni")).filter(|s| !plain && !s.is_empty());
    let req = switchyard_config::tcp::TcpRequest {
        entrypoint: Some(p.get("entrypoint")).filter(|e| !e.is_empty()),
        tls: !plain,
        sni,
        client_ip,
        alpn: &alpn,
    };
    let (cfg, version) = {
        let a = shared.applied.borrow();
        (a.state.config.clone(), a.state.config_version)
    };
    match switchyard_config::tcp::explain_conn(&cfg, &req) {
        Ok(ex) => {
            let mut v = serde_json::to_value(&ex).unwrap_or(Value::Null);
            if let Value::Object(o) = &mut v {
                o.insert("version".into(), version.into());
            }
            ok_json(&v)
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

/// `POST /api/switchyard/preview[?prune=true]` with a Traefik v3 dynamic configuration (YAML or
/// JSON, inline PEM) as the body: the `/api/rawdata` view of the config that applying it would
/// make, every problem attached to its router, service or middleware (which it disables, as
/// Traefik would), plus `errors`, the whole list as `apply` would print it. Writes nothing: on
/// Switchyard such a config is refused by `apply`, so a disabled router never reaches a proxy.
async fn preview(State(shared): S, uri: Uri, body: String) -> Response {
    let prune = matches!(Params::parse(uri.query()).get("prune"), "true" | "1");
    let doc = match switchyard_config::parse_document(&body) {
        Ok(d) => d,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let current = shared.applied.borrow().state.config.clone();
    let proxies = cluster_proxies(&shared).await;
    let eps: BTreeSet<String> = proxies
        .proxies
        .iter()
        .flat_map(|p| p.entrypoints.iter().cloned())
        .collect();
    let known = (!proxies.proxies.is_empty()).then_some(eps);
    // Validation and compilation are CPU work: off the runtime threads.
    let job = tokio::task::spawn_blocking(move || {
        let next = if prune {
            current.replaced_by(&doc)
        } else {
            current.merged(&doc)
        };
        let problems = switchyard_store::state::compile_check(&next)
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        let rt = runtime::build(&next, &problems, known.as_ref());
        let mut v = serde_json::to_value(&rt).unwrap_or(Value::Null);
        if let Value::Object(o) = &mut v {
            let errors: Vec<String> = problems.iter().map(|e| e.to_string()).collect();
            o.insert("errors".into(), errors.into());
        }
        v
    });
    match job.await {
        Ok(v) => ok_json(&v),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
