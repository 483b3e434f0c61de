//! The OTLP/gRPC span exporter: finished spans — the SDK's [`SpanData`] and the proxy's request
//! spans ([`Rec`], see `reqspan`) — are encoded straight to the protobuf bytes of an
//! `ExportTraceServiceRequest` and sent as one unary `TraceService/Export` call per batch, on
//! tonic's channel but without its codec (the body is built in place with its gRPC frame
//! prefix: the codec copied every batch once more). (The OTLP/HTTP exporter stays
//! `opentelemetry-otlp`'s: request spans are converted to `SpanData` for it in the export
//! task, see [`HttpExporter`].)
//!
//! Why not `opentelemetry-otlp`'s tonic exporter: per span it clones the `SpanData`, converts
//! it to the generated `opentelemetry-proto` structs (a `String` per attribute key and value,
//! `Vec`s for ids) and prost then encodes the nested messages, computing each level's length
//! again at every level above it. Measured with callgrind on the proxy (two spans a request),
//! that conversion and encoding were ~50k of the ~65k instructions tracing added per request;
//! this encoder writes every field once, the resource once per exporter (its bytes are
//! cached) and allocates nothing per span but the batch buffer's growth; a batch of request
//! spans is not moved to insert its enclosing messages' lengths ([`encode_fast_request`]).
//! The bytes decode to exactly what `opentelemetry-proto`'s conversion gives (see the tests).
//!
//! The endpoint is resolved as `opentelemetry-otlp` does (the option,
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_ENDPOINT`, `http://localhost:4317`);
//! `OTEL_EXPORTER_OTLP_TRACES_HEADERS` / `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`) are sent
//! as gRPC metadata. The channel connects lazily: an absent collector fails exports, not the
//! start.

use std::time::SystemTime;

use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use opentelemetry_sdk::Resource;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::Channel;

use crate::processor::{Export, Item};
use crate::reqspan::{Kind, Rec, Val};

/// Protobuf wire types.
const VARINT: u32 = 0;
const I64: u32 = 1;
const LEN: u32 = 2;
const I32: u32 = 5;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire: u32) {
    varint(out, u64::from(field << 3 | wire));
}

fn bytes_field(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    key(out, field, LEN);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A proto3 string field (left out when empty, as prost does).
fn str_field(out: &mut Vec<u8>, field: u32, s: &str) {
    if !s.is_empty() {
        bytes_field(out, field, s.as_bytes());
    }
}

fn u32_field(out: &mut Vec<u8>, field: u32, v: u32) {
    if v != 0 {
        key(out, field, VARINT);
        varint(out, u64::from(v));
    }
}

fn fixed64_field(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        key(out, field, I64);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn fixed32_field(out: &mut Vec<u8>, field: u32, v: u32) {
    if v != 0 {
        key(out, field, I32);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// A nested message: `body` writes it after a one-byte length, patched afterwards (widened,
/// moving the body once, when the body is 128 bytes or more).
fn message(out: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    key(out, field, LEN);
    let at = out.len();
    out.push(0);
    body(out);
    let len = out.len() - at - 1;
    if len < 0x80 {
        out[at] = len as u8;
        return;
    }
    let mut prefix = [0u8; 10];
    let mut n = 0;
    let mut v = len as u64;
    while v >= 0x80 {
        prefix[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    prefix[n] = v as u8;
    n += 1;
    let end = out.len();
    out.resize(end + n - 1, 0);
    out.copy_within(at + 1..end, at + n);
    out[at..at + n].copy_from_slice(&prefix[..n]);
}

/// `AnyValue` (field numbers of `common.proto`).
fn any_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::String(s) => bytes_field(out, 1, s.as_str().as_bytes()),
        Value::Bool(b) => {
            key(out, 2, VARINT);
            varint(out, u64::from(*b));
        }
        Value::I64(i) => {
            key(out, 3, VARINT);
            varint(out, *i as u64);
        }
        Value::F64(f) => {
            key(out, 4, I64);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::Array(a) => message(out, 5, |out| match a {
            Array::Bool(vs) => vs
                .iter()
                .for_each(|v| message(out, 1, |out| any_value(out, &Value::Bool(*v)))),
            Array::I64(vs) => vs
                .iter()
                .for_each(|v| message(out, 1, |out| any_value(out, &Value::I64(*v)))),
            Array::F64(vs) => vs
                .iter()
                .for_each(|v| message(out, 1, |out| any_value(out, &Value::F64(*v)))),
            Array::String(vs) => vs
                .iter()
                .for_each(|v| message(out, 1, |out| bytes_field(out, 1, v.as_str().as_bytes()))),
            _ => {}
        }),
        _ => {}
    }
}

/// A repeated `KeyValue` field.
fn attribute(out: &mut Vec<u8>, field: u32, k: &str, v: &Value) {
    message(out, field, |out| {
        str_field(out, 1, k);
        message(out, 2, |out| any_value(out, v));
    });
}

fn attributes(out: &mut Vec<u8>, field: u32, kvs: &[KeyValue]) {
    for kv in kvs {
        attribute(out, field, kv.key.as_str(), &kv.value);
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `SpanFlags`: the trace flags, "has is-remote" and "is remote".
fn flags(remote: bool, trace_flags: u8) -> u32 {
    u32::from(trace_flags) | 0x100 | if remote { 0x200 } else { 0 }
}

fn kind(k: &SpanKind) -> u32 {
    match k {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// One `Span` message's body.
fn span(out: &mut Vec<u8>, s: &SpanData) {
    let sc = &s.span_context;
    bytes_field(out, 1, &sc.trace_id().to_bytes());
    bytes_field(out, 2, &sc.span_id().to_bytes());
    let state = sc.trace_state().header();
    str_field(out, 3, &state);
    if s.parent_span_id != SpanId::INVALID {
        bytes_field(out, 4, &s.parent_span_id.to_bytes());
    }
    str_field(out, 5, &s.name);
    u32_field(out, 6, kind(&s.span_kind));
    fixed64_field(out, 7, nanos(s.start_time));
    fixed64_field(out, 8, nanos(s.end_time));
    attributes(out, 9, &s.attributes);
    u32_field(out, 10, s.dropped_attributes_count);
    for e in s.events.iter() {
        message(out, 11, |out| {
            fixed64_field(out, 1, nanos(e.timestamp));
            str_field(out, 2, &e.name);
            attributes(out, 3, &e.attributes);
            u32_field(out, 4, e.dropped_attributes_count);
        });
    }
    u32_field(out, 12, s.events.dropped_count);
    for l in s.links.iter() {
        message(out, 13, |out| {
            let lc = &l.span_context;
            bytes_field(out, 1, &lc.trace_id().to_bytes());
            bytes_field(out, 2, &lc.span_id().to_bytes());
            str_field(out, 3, &lc.trace_state().header());
            attributes(out, 4, &l.attributes);
            u32_field(out, 5, l.dropped_attributes_count);
            fixed32_field(out, 6, flags(lc.is_remote(), lc.trace_flags().to_u8()));
        });
    }
    u32_field(out, 14, s.links.dropped_count);
    message(out, 15, |out| match &s.status {
        Status::Unset => {}
        Status::Ok => u32_field(out, 3, 1),
        Status::Error { description } => {
            str_field(out, 2, description);
            u32_field(out, 3, 2);
        }
    });
    fixed32_field(
        out,
        16,
        flags(s.parent_span_is_remote, sc.trace_flags().to_u8()),
    );
}

fn scope(out: &mut Vec<u8>, scope: &InstrumentationScope) {
    str_field(out, 1, scope.name());
    str_field(out, 2, scope.version().unwrap_or(""));
    for kv in scope.attributes() {
        attribute(out, 3, kv.key.as_str(), &kv.value);
    }
}

/// The `Resource` message body of `r` (encoded once per exporter).
fn resource(r: &Resource) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in r.iter() {
        attribute(&mut out, 1, k.as_str(), v);
    }
    out
}

/// One request span attribute (`KeyValue` in field 9 of `Span`). Most are short: their
/// lengths all fit in one byte and are written directly; longer ones go through [`message`].
fn rec_attr(out: &mut Vec<u8>, k: &str, v: &Val) {
    // Text values other than header values are borrowed as they are (no `Cow` made and
    // dropped per attribute).
    let lossy;
    let text: Option<&[u8]> = match v {
        Val::Static(s) => Some(s.as_bytes()),
        Val::Shared(s) => Some(s.as_bytes()),
        Val::Owned(s) => Some(s.as_bytes()),
        Val::Path(p) => Some(p.path().as_bytes()),
        Val::Inline(s) => Some(s.as_bytes()),
        Val::Int(_) => None,
        Val::Header(_) => {
            lossy = v.text();
            lossy.as_deref().map(str::as_bytes)
        }
    };
    match (v, text) {
        (Val::Int(i), _) => message(out, 9, |out| {
            str_field(out, 1, k);
            message(out, 2, |out| {
                key(out, 3, VARINT);
                varint(out, *i as u64);
            });
        }),
        (_, Some(t)) if !k.is_empty() && k.len() + t.len() < 120 => {
            // KeyValue { 1: key, 2: AnyValue { 1: string } }
            let any = 2 + t.len();
            let kv = 2 + k.len() + 2 + any;
            out.reserve(2 + kv);
            out.extend_from_slice(&[
                (9 << 3) | LEN as u8,
                kv as u8,
                (1 << 3) | LEN as u8,
                k.len() as u8,
            ]);
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(&[
                (2 << 3) | LEN as u8,
                any as u8,
                (1 << 3) | LEN as u8,
                t.len() as u8,
            ]);
            out.extend_from_slice(t);
        }
        (_, t) => message(out, 9, |out| {
            str_field(out, 1, k);
            message(out, 2, |out| bytes_field(out, 1, t.unwrap_or_default()));
        }),
    }
}

/// One request span's `Span` message body (the same fields [`span`] writes for an SDK span).
fn rec_span(out: &mut Vec<u8>, r: &Rec) {
    out.reserve(512);
    // The ids have fixed sizes: their tags and lengths are constants and their copies of a
    // known size (no `memcpy` call of a variable length).
    out.extend_from_slice(&[(1 << 3) | LEN as u8, 16]);
    out.extend_from_slice(&r.trace_id);
    out.extend_from_slice(&[(2 << 3) | LEN as u8, 8]);
    out.extend_from_slice(&r.span_id);
    if let Some(st) = &r.state {
        str_field(out, 3, st);
    }
    if r.parent_id != [0; 8] {
        out.extend_from_slice(&[(4 << 3) | LEN as u8, 8]);
        out.extend_from_slice(&r.parent_id);
    }
    str_field(out, 5, r.name);
    u32_field(out, 6, r.kind.otlp());
    fixed64_field(out, 7, r.start);
    fixed64_field(out, 8, r.end);
    for (k, v) in r.attrs() {
        rec_attr(out, k, v);
    }
    u32_field(out, 10, r.dropped_attrs);
    message(out, 15, |out| {
        if let Some(d) = &r.error {
            str_field(out, 2, &d.text().unwrap_or_default());
            u32_field(out, 3, 2);
        }
    });
    // Request spans are sampled (only those are recorded).
    fixed32_field(out, 16, flags(r.parent_remote, 1));
}

/// The instrumentation scope of an item (`fast`: the request spans' scope).
fn scope_of<'a>(item: &'a Item, fast: &'a InstrumentationScope) -> &'a InstrumentationScope {
    match item {
        Item::Sdk(s) => &s.instrumentation_scope,
        Item::Fast(_) => fast,
    }
}

/// The `ExportTraceServiceRequest` of `items`: one `ResourceSpans` (its resource encoded once
/// per exporter), one `ScopeSpans` per instrumentation scope (in order of first appearance;
/// request spans have `fast`). Appended to `out`; returns where the message starts in it: the
/// bytes between `out`'s old length and that offset are unused headroom (see
/// [`encode_fast_request`]). A caller that wants to frame the message (gRPC's 5-byte prefix)
/// writes the frame just before that offset, so reserving 5 bytes in `out` first is enough.
pub(crate) fn encode_request(
    resource: &[u8],
    schema_url: &str,
    fast: &InstrumentationScope,
    items: &[Item],
    out: &mut Vec<u8>,
) -> usize {
    if !items.is_empty() && items.iter().all(|it| matches!(it, Item::Fast(_))) {
        return encode_fast_request(resource, schema_url, fast, items, out);
    }
    let at = out.len();
    let mut scopes: Vec<&InstrumentationScope> = Vec::new();
    let mut last: Option<&InstrumentationScope> = None;
    for it in items {
        let sc = scope_of(it, fast);
        if last.is_some_and(|l| std::ptr::eq(l, sc)) {
            continue;
        }
        last = Some(sc);
        if !scopes.contains(&sc) {
            scopes.push(sc);
        }
    }
    message(out, 1, |out| {
        message(out, 1, |out| out.extend_from_slice(resource));
        for sc in scopes {
            message(out, 2, |out| {
                message(out, 1, |out| scope(out, sc));
                for it in items {
                    match it {
                        Item::Fast(r) if std::ptr::eq(fast, sc) || *fast == *sc => {
                            message(out, 2, |out| rec_span(out, r))
                        }
                        Item::Sdk(s) if s.instrumentation_scope == *sc => {
                            message(out, 2, |out| span(out, s))
                        }
                        _ => {}
                    }
                }
                str_field(out, 3, sc.schema_url().unwrap_or(""));
            });
        }
        str_field(out, 3, schema_url);
    });
    at
}

/// [`encode_request`] of request spans only (what a busy proxy exports): the same bytes, but
/// the two enclosing messages (`ResourceSpans`, `ScopeSpans`) are not written first and moved
/// when their length is known — that moved the whole batch twice. The spans are written after
/// headroom as large as the longest possible head (keys, 10-byte lengths, resource, scope),
/// and the head, once the lengths are known, right before them.
fn encode_fast_request(
    resource: &[u8],
    schema_url: &str,
    fast: &InstrumentationScope,
    items: &[Item],
    out: &mut Vec<u8>,
) -> usize {
    let mut scope_msg = Vec::with_capacity(64);
    message(&mut scope_msg, 1, |out| scope(out, fast));
    // key + length of ResourceSpans, of Resource, of ScopeSpans.
    let room = 3 * 11 + resource.len() + scope_msg.len();
    let base = out.len();
    out.resize(base + room, 0);
    let spans_at = out.len();
    for it in items {
        if let Item::Fast(r) = it {
            message(out, 2, |out| rec_span(out, r));
        }
    }
    str_field(out, 3, fast.schema_url().unwrap_or(""));
    let scope_spans_len = scope_msg.len() + (out.len() - spans_at);
    str_field(out, 3, schema_url);
    let mut inner = Vec::with_capacity(room);
    bytes_field(&mut inner, 1, resource);
    key(&mut inner, 2, LEN);
    varint(&mut inner, scope_spans_len as u64);
    inner.extend_from_slice(&scope_msg);
    let mut head = Vec::with_capacity(room);
    key(&mut head, 1, LEN);
    varint(&mut head, (inner.len() + (out.len() - spans_at)) as u64);
    head.extend_from_slice(&inner);
    let start = spans_at - head.len();
    out[start..spans_at].copy_from_slice(&head);
    start
}

/// The SDK's `SpanData` of a request span (for exporters that take SDK spans).
pub(crate) fn span_data(r: &Rec, scope: &InstrumentationScope) -> SpanData {
    use opentelemetry::trace::{SpanContext, TraceFlags, TraceId, TraceState};
    let state = r
        .state
        .as_deref()
        .and_then(|s| s.parse::<TraceState>().ok())
        .unwrap_or_default();
    let at = |n: u64| SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(n);
    SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes(r.trace_id),
            SpanId::from_bytes(r.span_id),
            TraceFlags::SAMPLED,
            false,
            state,
        ),
        parent_span_id: SpanId::from_bytes(r.parent_id),
        parent_span_is_remote: r.parent_remote,
        span_kind: match r.kind {
            Kind::Server => SpanKind::Server,
            Kind::Client => SpanKind::Client,
        },
        name: r.name.into(),
        start_time: at(r.start),
        end_time: at(r.end),
        attributes: r
            .attrs()
            .map(|(k, v)| match v {
                Val::Int(i) => KeyValue::new(k, *i),
                v => KeyValue::new(k, v.text().unwrap_or_default().into_owned()),
            })
            .collect(),
        dropped_attributes_count: r.dropped_attrs,
        events: Default::default(),
        links: Default::default(),
        status: match &r.error {
            Some(d) => Status::error(d.text().unwrap_or_default().into_owned()),
            None => Status::Unset,
        },
        instrumentation_scope: scope.clone(),
    }
}

/// The OTLP/HTTP (protobuf) exporter: `opentelemetry-otlp`'s, fed SDK spans (request spans
/// are converted in the export task, never on the request path).
#[derive(Debug)]
pub(crate) struct HttpExporter {
    pub(crate) inner: opentelemetry_otlp::SpanExporter,
    pub(crate) scope: InstrumentationScope,
}

impl Export for HttpExporter {
    async fn export(&self, batch: Vec<Item>) -> Result<(), String> {
        let mut fast = Vec::new();
        let spans = batch
            .into_iter()
            .map(|it| match it {
                Item::Sdk(s) => *s,
                Item::Fast(r) => {
                    let s = span_data(&r, &self.scope);
                    fast.push(Item::Fast(r));
                    s
                }
            })
            .collect();
        crate::reqspan::recycle(fast);
        self.inner.export(spans).await.map_err(|e| e.to_string())
    }
}

/// The OTLP/gRPC span exporter (see the module documentation).
#[derive(Debug)]
pub(crate) struct GrpcExporter {
    channel: Channel,
    metadata: MetadataMap,
    resource: Vec<u8>,
    schema_url: String,
    /// The request spans' instrumentation scope.
    pub(crate) scope: InstrumentationScope,
}

/// Why the exporter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("invalid OTLP endpoint {0:?}: {1}")]
pub struct EndpointError(String, String);

impl GrpcExporter {
    /// A lazily connecting exporter (call inside a Tokio runtime).
    pub(crate) fn new(
        endpoint: Option<&str>,
        timeout: std::time::Duration,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<GrpcExporter, EndpointError> {
        let endpoint = endpoint
            .filter(|e| !e.is_empty())
            .map(str::to_string)
            .or_else(|| env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
            .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"))
            .unwrap_or_else(|| "http://localhost:4317".to_string());
        let channel = Channel::from_shared(endpoint.clone())
            .map_err(|e| EndpointError(endpoint, e.to_string()))?
            .timeout(timeout)
            .connect_lazy();
        Ok(GrpcExporter {
            channel,
            metadata: metadata_from_env(env),
            resource: Vec::new(),
            schema_url: String::new(),
            scope: InstrumentationScope::builder("").build(),
        })
    }
}

/// `OTEL_EXPORTER_OTLP_HEADERS`, then `OTEL_EXPORTER_OTLP_TRACES_HEADERS` (its keys win):
/// `key=value` pairs separated by `,`, values percent-decoded; malformed pairs are skipped.
fn metadata_from_env(env: impl Fn(&str) -> Option<String>) -> MetadataMap {
    let mut metadata = MetadataMap::new();
    for var in [
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    ] {
        for pair in env(var).unwrap_or_default().split(',') {
            let Some((k, v)) = pair.split_once('=') else {
                continue;
            };
            let v = percent_decode(v.trim());
            if let (Ok(k), Ok(v)) = (
                MetadataKey::from_bytes(k.trim().to_ascii_lowercase().as_bytes()),
                MetadataValue::try_from(v.as_str()),
            ) {
                metadata.insert(k, v);
            }
        }
    }
    metadata
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl GrpcExporter {
    /// The resource of every batch (encoded once, here).
    pub(crate) fn set_resource(&mut self, r: &Resource) {
        self.resource = resource(r);
        self.schema_url = r.schema_url().unwrap_or("").to_string();
    }
}

/// The gRPC method spans are sent to.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Metadata names gRPC reserves (tonic drops them from a request's metadata).
const RESERVED: [&str; 5] = [
    "te",
    "content-type",
    "grpc-message",
    "grpc-message-type",
    "grpc-status",
];

impl Export for GrpcExporter {
    /// One unary `Export` call, made on the channel directly: the request body is the encoded
    /// message with its gRPC frame prefix, built in place (tonic's codec copied the whole
    /// batch into its own buffer once more). Success is an HTTP 200 with `grpc-status: 0` (in
    /// the headers, or in the trailers after the response message, which is not read).
    async fn export(&self, batch: Vec<Item>) -> Result<(), String> {
        use tonic::codegen::Service as _;
        let mut body = Vec::with_capacity(batch.len() * 400 + self.resource.len() + 128);
        // The gRPC frame prefix goes right before the message: uncompressed, 4-byte length.
        body.resize(5, 0);
        let start = encode_request(
            &self.resource,
            &self.schema_url,
            &self.scope,
            &batch,
            &mut body,
        );
        // The request spans' boxes go back to the threads that made them.
        crate::reqspan::recycle(batch);
        let len = u32::try_from(body.len() - start)
            .map_err(|_| "OTLP export: batch over 4 GiB".to_string())?;
        body[start - 5] = 0;
        body[start - 4..start].copy_from_slice(&len.to_be_bytes());
        let body = bytes::Bytes::from(body).slice(start - 5..);

        let mut req = http::Request::new(tonic::body::Body::new(http_body_util::Full::new(body)));
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = http::Uri::from_static(EXPORT_PATH);
        *req.version_mut() = http::Version::HTTP_2;
        let headers = req.headers_mut();
        *headers = self.metadata.clone().into_headers();
        for r in RESERVED {
            headers.remove(r);
        }
        headers.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/grpc"),
        );

        let mut channel = self.channel.clone();
        std::future::poll_fn(|cx| channel.poll_ready(cx))
            .await
            .map_err(|e| format!("OTLP channel: {e}"))?;
        let resp = channel
            .call(req)
            .await
            .map_err(|e| format!("OTLP export: {e}"))?;
        if resp.status() != http::StatusCode::OK {
            return Err(format!("OTLP export: HTTP status {}", resp.status()));
        }
        let status = match tonic::Status::from_header_map(resp.headers()) {
            Some(s) => Some(s),
            None => {
                use http_body_util::BodyExt as _;
                let collected = resp
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| format!("OTLP export: {e}"))?;
                collected
                    .trailers()
                    .and_then(tonic::Status::from_header_map)
            }
        };
        match status {
            Some(s) if s.code() == tonic::Code::Ok => Ok(()),
            Some(s) => Err(format!("OTLP export: {s}")),
            None => Err("OTLP export: no grpc-status in the response".to_string()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::borrow::Cow;
    use std::time::Duration;

    use opentelemetry::trace::{SpanContext, TraceFlags, TraceId, TraceState};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use prost::Message as _;

    use super::*;

    fn data(name: &'static str, remote: bool, status: Status, scope: &str) -> SpanData {
        let mut events = SpanEvents::default();
        events.events.push(opentelemetry::trace::Event::new(
            "ev",
            SystemTime::UNIX_EPOCH + Duration::from_nanos(5),
            vec![KeyValue::new("e", 1.5)],
            0,
        ));
        let mut links = SpanLinks::default();
        links.links.push(opentelemetry::trace::Link::new(
            SpanContext::new(
                TraceId::from(7),
                SpanId::from(8),
                TraceFlags::SAMPLED,
                true,
                TraceState::from_key_value([("k", "v")]).unwrap(),
            ),
            vec![KeyValue::new("l", true)],
            1,
        ));
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(0x0af7651916cd43dd8448eb211c80319c),
                SpanId::from(0xb7ad6b7169203331),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: if remote {
                SpanId::from(42)
            } else {
                SpanId::INVALID
            },
            parent_span_is_remote: remote,
            span_kind: SpanKind::Server,
            name: Cow::Borrowed(name),
            start_time: SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789),
            end_time: SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_223_456_789),
            attributes: vec![
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("url.path", String::from("/a")),
                KeyValue::new(
                    "traefik.router.name",
                    opentelemetry::StringValue::from(std::sync::Arc::<str>::from("r@file")),
                ),
                KeyValue::new("http.response.status_code", 200_i64),
                KeyValue::new("neg", -3_i64),
                KeyValue::new("empty", ""),
                KeyValue::new(
                    "list",
                    Value::Array(Array::String(vec!["a".into(), "b".into()])),
                ),
                KeyValue::new("ints", Value::Array(Array::I64(vec![1, -2]))),
            ],
            dropped_attributes_count: 2,
            events,
            links,
            status,
            instrumentation_scope: InstrumentationScope::builder(scope.to_string())
                .with_version("1.0")
                .build(),
        }
    }

    /// The bytes decode to what `opentelemetry-proto`'s conversion makes.
    #[test]
    fn encoding_matches_the_generated_messages() {
        let resource = Resource::builder()
            .with_service_name("svc")
            .with_attributes([KeyValue::new("service.instance.id", "p1")])
            .build();
        let spans = vec![
            data("GET", true, Status::Unset, "a"),
            data("ReverseProxy", false, Status::error("boom"), "a"),
            data("x", false, Status::Ok, "b"),
        ];
        let items: Vec<Item> = spans
            .iter()
            .cloned()
            .map(|s| Item::Sdk(Box::new(s)))
            .collect();
        let fast = InstrumentationScope::builder("a").build();
        let (mine, theirs) = ours_and_theirs(&resource, &fast, &items, spans, false);
        assert_eq!(mine, theirs);
        assert_eq!(mine.resource_spans[0].scope_spans[0].spans.len(), 2);
    }

    fn rec(parent: bool, error: Option<Val>) -> Box<Rec> {
        let vals = [
            ("http.request.method", Val::Static("GET")),
            ("url.path", Val::Owned("/some/path".into())),
            ("traefik.router.name", Val::Shared("r@file".into())),
            (
                "server.address",
                Val::Header(http::HeaderValue::from_static("example.test:8080")),
            ),
            ("http.response.status_code", Val::Int(503)),
            ("neg", Val::Int(-3)),
            ("empty", Val::Static("")),
            ("long", Val::Owned("/x".repeat(100).into())),
        ];
        Box::new(Rec {
            trace_id: [0x0a; 16],
            span_id: [0xb7; 8],
            parent_id: if parent { [4; 8] } else { [0; 8] },
            parent_remote: parent,
            state: parent.then(|| "vendor=x,other=y".into()),
            kind: if parent { Kind::Server } else { Kind::Client },
            name: if parent { "GET" } else { "ReverseProxy" },
            start: 1_700_000_000_123_456_789,
            end: 1_700_000_000_223_456_789,
            attrs: vals.into_iter().collect(),
            dropped_attrs: u32::from(!parent),
            error,
            home: None,
        })
    }

    /// Request spans encode to what `opentelemetry-proto` makes of their `SpanData`, in the
    /// scope of the tracer, next to SDK spans of other scopes.
    #[test]
    fn request_spans_encode_as_their_span_data() {
        let resource = Resource::builder().with_service_name("svc").build();
        let fast = InstrumentationScope::builder("switchyard-proxy").build();
        let items = vec![
            Item::Fast(rec(true, None)),
            Item::Sdk(Box::new(data("config apply", false, Status::Ok, "other"))),
            Item::Fast(rec(false, Some(Val::Static("connection refused")))),
            Item::Fast(rec(false, Some(Val::Static("")))),
        ];
        let spans: Vec<SpanData> = items
            .iter()
            .map(|it| match it {
                Item::Sdk(s) => (**s).clone(),
                Item::Fast(r) => span_data(r, &fast),
            })
            .collect();
        let (mine, theirs) = ours_and_theirs(&resource, &fast, &items, spans, true);
        assert_eq!(mine, theirs);
        let fast_spans = &mine.resource_spans[0].scope_spans[0].spans;
        assert_eq!(fast_spans.len(), 3);
        assert_eq!(fast_spans[0].trace_state, "vendor=x,other=y");
        assert_eq!(fast_spans[0].flags, 0x301);
        assert_eq!(fast_spans[1].status.as_ref().unwrap().code, 2);
    }

    /// A batch of request spans only (the headroom path): the same messages, for one span
    /// (one-byte lengths) and for a batch whose enclosing lengths take three bytes.
    #[test]
    fn request_span_batches_encode_as_their_span_data() {
        let resource = Resource::builder()
            .with_service_name("svc")
            .with_attributes([KeyValue::new("service.instance.id", "p1")])
            .build();
        let fast = InstrumentationScope::builder("switchyard-proxy").build();
        for n in [1, 2, 300] {
            let items: Vec<Item> = (0..n)
                .map(|i| Item::Fast(rec(i % 2 == 0, (i % 3 == 0).then_some(Val::Static("x")))))
                .collect();
            let spans = fast_span_data(&items, &fast);
            let (mine, theirs) = ours_and_theirs(&resource, &fast, &items, spans, false);
            assert_eq!(mine, theirs, "{n}");
            assert_eq!(mine.resource_spans[0].scope_spans[0].spans.len(), n);
        }
        // Empty: the resource alone, as before.
        let mut out = Vec::new();
        let start = encode_request(&resource_bytes(&resource), "", &fast, &[], &mut out);
        let empty = ExportTraceServiceRequest::decode(&out[start..]).unwrap();
        assert!(empty.resource_spans[0].scope_spans.is_empty());
    }

    /// Values copied from the request (`Val::copy`, `Val::copy_header`: held in the record when
    /// short, boxed when long, a non-UTF-8 header decoded lossily) encode as the header and
    /// path values they replace.
    #[test]
    fn copied_values_encode_as_their_span_data() {
        let resource = Resource::builder().with_service_name("svc").build();
        let fast = InstrumentationScope::builder("switchyard-proxy").build();
        let mut r = rec(true, None);
        let bad = http::HeaderValue::from_bytes(b"h\xffst:80").unwrap();
        let long = "/p".repeat(40);
        r.attrs.clear();
        r.attrs.push(("url.path", Val::copy("/some/path")));
        r.attrs.push(("server.address", Val::copy_header(&bad)));
        r.attrs.push(("long", Val::copy(&long)));
        r.attrs.push(("empty", Val::copy("")));
        r.attrs.push(("edge", Val::copy(&"x".repeat(46))));
        assert!(matches!(r.attrs[0].1, Val::Inline(_)));
        assert!(matches!(r.attrs[2].1, Val::Owned(_)));
        assert!(matches!(r.attrs[4].1, Val::Inline(_)));
        let mut same = rec(true, None);
        same.attrs.clear();
        same.attrs
            .push(("url.path", Val::Owned("/some/path".into())));
        same.attrs
            .push(("server.address", Val::Header(bad.clone())));
        same.attrs.push(("long", Val::Owned(long.clone().into())));
        same.attrs.push(("empty", Val::Static("")));
        same.attrs.push(("edge", Val::Owned("x".repeat(46).into())));
        for items in [vec![Item::Fast(r)], vec![Item::Fast(same)]] {
            let spans = fast_span_data(&items, &fast);
            let (mine, theirs) = ours_and_theirs(&resource, &fast, &items, spans, false);
            assert_eq!(mine, theirs);
            let attrs = &mine.resource_spans[0].scope_spans[0].spans[0].attributes;
            assert_eq!(attrs.len(), 5);
            let text = |i: usize| match &attrs[i].value.as_ref().unwrap().value {
                Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => {
                    s.clone()
                }
                other => panic!("{other:?}"),
            };
            assert_eq!(text(0), "/some/path");
            assert_eq!(text(1), "h\u{fffd}st:80");
            assert_eq!(text(2), long);
        }
    }

    /// The SDK's `SpanData` of a batch of request spans only.
    fn fast_span_data(items: &[Item], scope: &InstrumentationScope) -> Vec<SpanData> {
        items
            .iter()
            .map(|it| match it {
                Item::Fast(r) => span_data(r, scope),
                Item::Sdk(_) => unreachable!(),
            })
            .collect()
    }

    /// Our encoding of `items` decoded, and `opentelemetry-proto`'s conversion of `spans`, with
    /// its scopes (grouped through a HashMap) sorted by name, descending when `desc`, to match
    /// the order ours writes them in.
    fn ours_and_theirs(
        resource: &Resource,
        fast: &InstrumentationScope,
        items: &[Item],
        spans: Vec<SpanData>,
        desc: bool,
    ) -> (ExportTraceServiceRequest, ExportTraceServiceRequest) {
        let mut out = vec![7; 5];
        let start = encode_request(&resource_bytes(resource), "", fast, items, &mut out);
        let mine = ExportTraceServiceRequest::decode(&out[start..]).unwrap();
        let mut theirs = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                spans,
                &ResourceAttributesWithSchema::from(resource),
            ),
        };
        theirs.resource_spans[0].scope_spans.sort_by(|a, b| {
            let order = a
                .scope
                .as_ref()
                .unwrap()
                .name
                .cmp(&b.scope.as_ref().unwrap().name);
            if desc {
                order.reverse()
            } else {
                order
            }
        });
        (mine, theirs)
    }

    fn resource_bytes(r: &Resource) -> Vec<u8> {
        resource(r)
    }

    #[test]
    fn headers_from_the_environment() {
        let env = |k: &str| match k {
            "OTEL_EXPORTER_OTLP_HEADERS" => Some("Api-Key=a%20b, x-tenant=one,bad".to_string()),
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS" => Some("x-tenant=two".to_string()),
            _ => None,
        };
        let m = metadata_from_env(env);
        assert_eq!(m.get("api-key").unwrap(), "a b");
        assert_eq!(m.get("x-tenant").unwrap(), "two");
        assert_eq!(m.len(), 2);
        assert!(metadata_from_env(|_| None).is_empty());
    }

    #[test]
    fn long_messages_get_multi_byte_lengths() {
        for (n, prefix) in [
            (0, &[0x0a, 0x00][..]),
            (127, &[0x0a, 0x7f][..]),
            (128, &[0x0a, 0x80, 0x01][..]),
            (300, &[0x0a, 0xac, 0x02][..]),
            (20_000, &[0x0a, 0xa0, 0x9c, 0x01][..]),
        ] {
            let mut out = vec![9];
            message(&mut out, 1, |out| out.extend((0..n).map(|i| i as u8)));
            assert_eq!(&out[1..1 + prefix.len()], prefix, "{n}");
            assert_eq!(out.len(), 1 + prefix.len() + n);
            assert!(out[1 + prefix.len()..]
                .iter()
                .enumerate()
                .all(|(i, b)| *b == i as u8));
        }
    }
}
