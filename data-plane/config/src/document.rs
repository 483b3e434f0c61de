//! Parsing YAML/JSON documents into a [`DynamicConfig`] with precise error messages.
//!
//! The document is first read into a generic `serde_json::Value` by `reader` (bounded; duplicate
//! keys refused; YAML through `serde_norway` with `<<` merge keys applied), the top level is
//! checked by hand, and then
//! each resource is deserialized on its own with `serde_path_to_error`, so an error names the
//! resource and the field path inside it.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::acme::{CertResolver, ManagedTls};
use crate::error::{quote, resource_label, ConfigError};
use crate::model::{
    Certificate, DynamicConfig, Middleware, Router, ServersTransport, Service, TlsOptions,
    TlsStore, MIDDLEWARE_KINDS,
};
use crate::tcp::{TcpMiddleware, TcpRouter, TcpService};
use crate::{limits, reader};

/// Parse a YAML or JSON document into a [`DynamicConfig`]. An empty document (or only comments,
/// or `{}`) is an empty config.
///
/// A document whose first non-blank character is `{` followed by `"` or `}` is JSON and read
/// strictly (RFC 8259: no duplicate keys, no trailing comma); anything else is YAML (duplicate
/// keys refused too). Before anything else the document's size, nesting depth and number of
/// resources are bounded ([`MAX_DOCUMENT_BYTES`](crate::MAX_DOCUMENT_BYTES),
/// [`MAX_DEPTH`](crate::MAX_DEPTH), [`MAX_RESOURCES`](crate::MAX_RESOURCES)), so a hostile
/// document is refused in time linear in its size.
pub fn parse_document(text: &str) -> Result<DynamicConfig, ConfigError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    limits::check_document_size(text)?;
    let value = parse_value(text)?;
    from_reader_value(value)
}

/// Is this (trimmed) document JSON? `{"…` or `{}`; a YAML flow mapping `{http: …}` is not.
fn is_json(trimmed: &str) -> bool {
    trimmed
        .strip_prefix('{')
        .is_some_and(|rest| rest.trim_start().starts_with(['"', '}']))
}

fn parse_value(text: &str) -> Result<Value, ConfigError> {
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Ok(Value::Null);
    }
    if is_json(trimmed) {
        return reader::json(text);
    }
    if let Some((at, open)) = limits::flow_depth_overflow(text) {
        // Name where it went too deep: read the document cut just past the bracket that went
        // too deep, with the open brackets closed (small, and just too deep for the reader).
        let mut prefix = text[..at].to_string();
        prefix.extend(
            open.iter()
                .rev()
                .map(|&c| if c == b'[' { ']' } else { '}' }),
        );
        return Err(match reader::yaml(&prefix) {
            Err(e) if e.message.contains(&limits::too_deep()) => e,
            _ => {
                let (line, column) = limits::line_col(text, at);
                ConfigError::new(format!(
                    "{} at line {line} column {column}",
                    limits::too_deep()
                ))
            }
        });
    }
    reader::yaml(text)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

fn expected_list(names: &[&str]) -> String {
    let q: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    match q.len() {
        0 => String::new(),
        1 => q.join(""),
        2 => q.join(" or "),
        _ => format!("one of {}", q.join(", ")),
    }
}

/// A section that must be a mapping (null = empty).
fn section(v: Value, field: &str, what: &str) -> Result<Map<String, Value>, ConfigError> {
    match v {
        Value::Null => Ok(Map::new()),
        Value::Object(m) => Ok(m),
        other => Err(ConfigError::at(
            field,
            format!("expected a mapping of {what}, got {}", type_name(&other)),
        )),
    }
}

fn check_keys(
    m: &Map<String, Value>,
    field: Option<&str>,
    allowed: &[&str],
) -> Result<(), ConfigError> {
    for k in m.keys() {
        if !allowed.contains(&k.as_str()) {
            let msg = format!(
                "unknown field {}, expected {}",
                quote(k),
                expected_list(allowed)
            );
            return Err(match field {
                Some(f) => ConfigError::at(f, msg),
                None => ConfigError::new(msg),
            });
        }
    }
    Ok(())
}

/// serde's own messages quote names with backticks; use double quotes like the rest of ours,
/// and drop the backticks around scalar values (`integer 1`).
fn clean_serde_message(msg: String) -> String {
    if msg.starts_with("unknown field `")
        || msg.starts_with("missing field `")
        || msg.starts_with("unknown variant `")
        || msg.starts_with("duplicate field `")
    {
        return msg.replace('`', "\"");
    }
    for p in [
        "invalid type: integer `",
        "invalid type: floating point `",
        "invalid type: boolean `",
        "invalid value: integer `",
        "invalid value: floating point `",
    ] {
        if let Some(rest) = msg.strip_prefix(p) {
            if let Some((value, tail)) = rest.split_once('`') {
                return format!("{}{value}{tail}", &p[..p.len() - 1]);
            }
        }
    }
    msg
}

/// Render a serde path like `loadBalancer.servers[0].url`; for unknown-field errors the
/// unknown key itself is dropped (the message already names it).
fn render_path(path: &serde_path_to_error::Path, drop_last_key: bool) -> Option<String> {
    use serde_path_to_error::Segment;
    let mut segs: Vec<&Segment> = path.iter().collect();
    if drop_last_key && matches!(segs.last(), Some(Segment::Map { .. })) {
        segs.pop();
    }
    let mut out = String::new();
    for seg in segs {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Enum { variant } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(variant);
            }
            Segment::Unknown => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push('?');
            }
        }
    }
    if out.is_empty() {
        None
    } else {
        Some(out)
    }
}

/// Deserialize one value, reporting errors against `resource` and the field path inside it
/// (prefixed by `prefix` when given).
fn typed<T: DeserializeOwned>(
    v: Value,
    resource: Option<&str>,
    prefix: Option<&str>,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize::<_, T>(v).map_err(|e| {
        let raw = e.inner().to_string();
        let path = render_path(e.path(), raw.starts_with("unknown field `"));
        let message = clean_serde_message(raw);
        let field = match (prefix, path) {
            (Some(p), Some(q)) if q.starts_with('[') => Some(format!("{p}{q}")),
            (Some(p), Some(q)) => Some(format!("{p}.{q}")),
            (Some(p), None) => Some(p.to_string()),
            (None, q) => q,
        };
        ConfigError {
            resource: resource.map(str::to_string),
            field,
            message,
        }
    })
}

fn resources<T: DeserializeOwned + Clone>(
    m: Map<String, Value>,
    kind: &str,
    what: &str,
    compact: bool,
    parse_one: impl Fn(Value, &str) -> Result<T, ConfigError>,
) -> Result<crate::model::Map<T>, ConfigError> {
    let mut out = Vec::with_capacity(m.len());
    for (name, v) in m {
        let label = resource_label(kind, &name);
        let v = if compact { expand(v, &label)? } else { v };
        if v.is_null() {
            return Err(ConfigError {
                resource: Some(label),
                field: None,
                message: format!("definition is empty; expected {what}"),
            });
        }
        let parsed = parse_one(v, &label)?;
        out.push((name, parsed));
    }
    Ok(crate::model::map_from_entries(out))
}

fn parse_middleware(v: Value, label: &str) -> Result<Middleware, ConfigError> {
    let err = |message: String| ConfigError {
        resource: Some(label.to_string()),
        field: None,
        message,
    };
    let Value::Object(m) = v else {
        return Err(err(format!(
            "expected a mapping with exactly one middleware kind, got {}",
            type_name(&v)
        )));
    };
    if m.is_empty() {
        return Err(err(
            "no middleware kind set; expected exactly one (e.g. \"stripPrefix\")".to_string(),
        ));
    }
    if let Some(unknown) = m.keys().find(|k| !MIDDLEWARE_KINDS.contains(&k.as_str())) {
        return Err(err(format!("unknown middleware kind {}", quote(unknown))));
    }
    if m.len() > 1 {
        let kinds: Vec<String> = m.keys().map(|k| quote(k)).collect();
        return Err(err(format!(
            "exactly one middleware kind must be set, found {}: {}",
            m.len(),
            kinds.join(", ")
        )));
    }
    let Some((kind, inner)) = m.into_iter().next() else {
        return Err(err("no middleware kind set".to_string()));
    };
    // Deserialize the inner value first so errors carry the kind as a field prefix.
    let inner = match kind.as_str() {
        "addPrefix" | "stripPrefix" | "stripPrefixRegex" | "replacePath" | "replacePathRegex"
        | "headers" | "redirectScheme" | "redirectRegex" | "chain" => {
            if inner.is_null() {
                return Err(ConfigError {
                    resource: Some(label.to_string()),
                    field: Some(kind.clone()),
                    message: "options are empty".to_string(),
                });
            }
            let checked: Value = match kind.as_str() {
                "addPrefix" => check_typed::<crate::model::AddPrefix>(inner, label, &kind)?,
                "stripPrefix" => check_typed::<crate::model::StripPrefix>(inner, label, &kind)?,
                "stripPrefixRegex" => {
                    check_typed::<crate::model::StripPrefixRegex>(inner, label, &kind)?
                }
                "replacePath" => check_typed::<crate::model::ReplacePath>(inner, label, &kind)?,
                "replacePathRegex" => {
                    check_typed::<crate::model::ReplacePathRegex>(inner, label, &kind)?
                }
                "headers" => check_typed::<crate::model::Headers>(inner, label, &kind)?,
                "redirectScheme" => {
                    check_typed::<crate::model::RedirectScheme>(inner, label, &kind)?
                }
                "redirectRegex" => check_typed::<crate::model::RedirectRegex>(inner, label, &kind)?,
                _ => check_typed::<crate::model::Chain>(inner, label, &kind)?,
            };
            checked
        }
        _ => inner,
    };
    let mut wrapper = Map::new();
    wrapper.insert(kind, inner);
    typed::<Middleware>(Value::Object(wrapper), Some(label), None)
}

/// Deserialize `inner` as `T` (to get errors with the kind prefix), then return it as a value.
fn check_typed<T: DeserializeOwned + serde::Serialize>(
    inner: Value,
    label: &str,
    kind: &str,
) -> Result<Value, ConfigError> {
    let t: T = typed(inner, Some(label), Some(kind))?;
    serde_json::to_value(t).map_err(|e| ConfigError {
        resource: Some(label.to_string()),
        field: Some(kind.to_string()),
        message: e.to_string(),
    })
}

/// Parse a config as the config stream carries it: a document plus the `managed` section the
/// control plane wrote (which [`from_value`] refuses from users).
pub fn from_stream_value(mut value: Value) -> Result<DynamicConfig, ConfigError> {
    let managed = match value.as_object_mut().and_then(|m| m.remove("managed")) {
        Some(m) => typed::<ManagedTls>(m, None, Some("managed"))?,
        None => ManagedTls::default(),
    };
    let mut cfg = from_value(value)?;
    cfg.managed = managed;
    Ok(cfg)
}

/// A resource entry compacted by the reader (its JSON text) back as a `Value`.
fn expand(v: Value, label: &str) -> Result<Value, ConfigError> {
    let Value::String(text) = v else {
        return Ok(v);
    };
    serde_json::from_str(&text).map_err(|e| ConfigError {
        resource: Some(label.to_string()),
        field: None,
        message: format!("internal: compacted resource does not read back: {e}"),
    })
}

/// Convert an already-parsed generic value (JSON data model) into a [`DynamicConfig`] with
/// the same checks and error messages as [`parse_document`].
pub fn from_value(value: Value) -> Result<DynamicConfig, ConfigError> {
    convert(value, false)
}

/// [`from_value`] for the reader's output, whose named-resource entries are compacted.
fn from_reader_value(value: Value) -> Result<DynamicConfig, ConfigError> {
    convert(value, true)
}

/// `compact`: the entries of the sections of [`limits::is_compact_section`] are JSON texts.
fn convert(value: Value, compact: bool) -> Result<DynamicConfig, ConfigError> {
    let mut cfg = DynamicConfig::default();
    let top = match value {
        Value::Null => return Ok(cfg),
        Value::Object(m) => m,
        other => {
            return Err(ConfigError::new(format!(
                "expected a mapping with \"http\" and/or \"tls\" at the top level, got {}",
                type_name(&other)
            )))
        }
    };
    for (k, v) in top {
        match k.as_str() {
            "http" => {
                let http = section(v, "http", "sections")?;
                check_keys(
                    &http,
                    Some("http"),
                    &["routers", "services", "middlewares", "serversTransports"],
                )?;
                for (hk, hv) in http {
                    match hk.as_str() {
                        "routers" => {
                            let m = section(hv, "http.routers", "router names to routers")?;
                            cfg.http.routers =
                                resources(m, "router", "a router definition", compact, |v, l| {
                                    typed::<Router>(v, Some(l), None)
                                })?;
                        }
                        "services" => {
                            let m = section(hv, "http.services", "service names to services")?;
                            cfg.http.services =
                                resources(m, "service", "a service definition", compact, |v, l| {
                                    typed::<Service>(v, Some(l), None)
                                })?;
                        }
                        "middlewares" => {
                            let m =
                                section(hv, "http.middlewares", "middleware names to middlewares")?;
                            cfg.http.middlewares = resources(
                                m,
                                "middleware",
                                "a middleware definition",
                                compact,
                                parse_middleware,
                            )?;
                        }
                        _ => {
                            let m = section(
                                hv,
                                "http.serversTransports",
                                "servers transport names to servers transports",
                            )?;
                            cfg.http.servers_transports = resources(
                                m,
                                "serversTransport",
                                "a servers transport definition",
                                compact,
                                |v, l| typed::<ServersTransport>(v, Some(l), None),
                            )?;
                        }
                    }
                }
            }
            "tls" => {
                let tls = section(v, "tls", "sections")?;
                check_keys(&tls, Some("tls"), &["certificates", "options", "stores"])?;
                for (tk, tv) in tls {
                    match tk.as_str() {
                        "certificates" => {
                            if !tv.is_null() {
                                cfg.tls.certificates =
                                    typed::<Vec<Certificate>>(tv, None, Some("tls.certificates"))?;
                            }
                        }
                        "options" => {
                            let m = section(tv, "tls.options", "option names to TLS options")?;
                            cfg.tls.options =
                                resources(m, "tlsOption", "a TLS options definition", compact, |v, l| {
                                    typed::<TlsOptions>(v, Some(l), None)
                                })?;
                        }
                        _ => {
                            let m = section(tv, "tls.stores", "store names to TLS stores")?;
                            cfg.tls.stores =
                                resources(m, "tlsStore", "a TLS store definition", compact, |v, l| {
                                    typed::<TlsStore>(v, Some(l), None)
                                })?;
                        }
                    }
                }
            }
            "certificatesResolvers" => {
                let m = section(v, "certificatesResolvers", "resolver names to resolvers")?;
                cfg.certificates_resolvers =
                    resources(m, "certResolver", "a certificate resolver definition", compact, |v, l| {
                        typed::<CertResolver>(v, Some(l), None)
                    })?;
            }
            "managed" => {
                return Err(ConfigError::new(
                    "top-level field \"managed\" is written by the control plane and cannot be applied",
                ))
            }
            "tcp" => {
                let tcp = section(v, "tcp", "sections")?;
                check_keys(
                    &tcp,
                    Some("tcp"),
                    &["routers", "services", "middlewares", "serversTransports"],
                )?;
                for (tk, tv) in tcp {
                    match tk.as_str() {
                        "routers" => {
                            let m = section(tv, "tcp.routers", "router names to TCP routers")?;
                            cfg.tcp.routers =
                                resources(m, "tcpRouter", "a TCP router definition", false, |v, l| {
                                    typed::<TcpRouter>(v, Some(l), None)
                                })?;
                        }
                        "services" => {
                            let m = section(tv, "tcp.services", "service names to TCP services")?;
                            cfg.tcp.services =
                                resources(m, "tcpService", "a TCP service definition", false, |v, l| {
                                    typed::<TcpService>(v, Some(l), None)
                                })?;
                        }
                        "serversTransports" => {
                            let m = section(
                                tv,
                                "tcp.serversTransports",
                                "servers transport names to TCP servers transports",
                            )?;
                            cfg.tcp.servers_transports = resources(
                                m,
                                crate::tcp::TRANSPORT,
                                "a TCP servers transport definition",
                                false,
                                |v, l| typed::<crate::tcp::TcpServersTransport>(v, Some(l), None),
                            )?;
                        }
                        _ => {
                            let m = section(
                                tv,
                                "tcp.middlewares",
                                "middleware names to TCP middlewares",
                            )?;
                            cfg.tcp.middlewares = resources(
                                m,
                                "tcpMiddleware",
                                "a TCP middleware definition",
                                false,
                                |v, l| typed::<TcpMiddleware>(v, Some(l), None),
                            )?;
                        }
                    }
                }
            }
            "udp" => {
                let empty = match &v {
                    Value::Null => true,
                    Value::Object(m) => m.values().all(|x| match x {
                        Value::Null => true,
                        Value::Object(inner) => inner.is_empty(),
                        _ => false,
                    }),
                    _ => false,
                };
                if !empty {
                    return Err(ConfigError::new(format!(
                        "{k} routers are not supported (Switchyard routes HTTP and TCP)"
                    )));
                }
            }
            _ => {
                return Err(ConfigError::new(format!(
                    "unknown top-level field {}, expected \"http\", \"tcp\", \"tls\" or \"certificatesResolvers\"",
                    quote(&k)
                )))
            }
        }
    }
    Ok(cfg)
}
