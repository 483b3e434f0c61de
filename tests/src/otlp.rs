//! An OTLP trace receiver for the tracing suites, built on the `opentelemetry-proto`
//! definitions: gRPC (`TraceService/Export` with tonic) or HTTP/protobuf (`POST /v1/traces`),
//! keeping every span it gets; and a black hole (accepts connections, never answers).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;

use crate::backends::runtime;

/// One received span, ids in lower-case hex.
#[derive(Debug, Clone)]
pub struct RecvSpan {
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// OTLP `SpanKind` (2 server, 3 client).
    pub kind: i32,
    pub attributes: BTreeMap<String, String>,
    pub resource: BTreeMap<String, String>,
}

impl RecvSpan {
    /// Attribute `k` as text.
    pub fn attr(&self, k: &str) -> Option<&str> {
        self.attributes.get(k).map(String::as_str)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn text(kv: &[KeyValue]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(AnyValue::StringValue(s)) => s.clone(),
                Some(AnyValue::IntValue(i)) => i.to_string(),
                Some(AnyValue::BoolValue(b)) => b.to_string(),
                Some(AnyValue::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

type Store = Arc<Mutex<Vec<RecvSpan>>>;

/// One received metric data point (sums and gauges), value as `f64`.
#[derive(Debug, Clone)]
pub struct RecvPoint {
    /// Instrument name.
    pub name: String,
    /// `sum` or `gauge` (other kinds are not kept).
    pub kind: &'static str,
    pub value: f64,
    pub attributes: BTreeMap<String, String>,
    pub resource: BTreeMap<String, String>,
}

type MetricStore = Arc<Mutex<Vec<RecvPoint>>>;

fn keep_metrics(store: &MetricStore, req: ExportMetricsServiceRequest) {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
    let mut out = Vec::new();
    for rm in req.resource_metrics {
        let resource = text(&rm.resource.map(|r| r.attributes).unwrap_or_default());
        for sm in rm.scope_metrics {
            for m in sm.metrics {
                let (kind, points) = match m.data {
                    Some(Data::Sum(s)) => ("sum", s.data_points),
                    Some(Data::Gauge(g)) => ("gauge", g.data_points),
                    _ => continue,
                };
                for p in points {
                    let value = match p.value {
                        Some(Value::AsDouble(d)) => d,
                        Some(Value::AsInt(i)) => i as f64,
                        None => continue,
                    };
                    out.push(RecvPoint {
                        name: m.name.clone(),
                        kind,
                        value,
                        attributes: text(&p.attributes),
                        resource: resource.clone(),
                    });
                }
            }
        }
    }
    if let Ok(mut v) = store.lock() {
        v.extend(out);
    }
}

struct MetricsSvc(MetricStore);

#[tonic::async_trait]
impl MetricsService for MetricsSvc {
    async fn export(
        &self,
        req: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        keep_metrics(&self.0, req.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

fn keep(store: &Store, req: ExportTraceServiceRequest) {
    let mut out = Vec::new();
    for rs in req.resource_spans {
        let resource = text(&rs.resource.map(|r| r.attributes).unwrap_or_default());
        for ss in rs.scope_spans {
            for s in ss.spans {
                out.push(RecvSpan {
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    name: s.name,
                    kind: s.kind,
                    attributes: text(&s.attributes),
                    resource: resource.clone(),
                });
            }
        }
    }
    if let Ok(mut v) = store.lock() {
        v.extend(out);
    }
}

struct Svc(Store);

#[tonic::async_trait]
impl TraceService for Svc {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        keep(&self.0, req.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// A running receiver.
pub struct OtlpReceiver {
    addr: SocketAddr,
    store: Store,
    metrics: MetricStore,
    task: tokio::task::JoinHandle<()>,
}

fn listener() -> tokio::net::TcpListener {
    let _g = runtime().enter();
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding the OTLP receiver");
    crate::reserve_port(l.local_addr().expect("local addr").port());
    l.set_nonblocking(true).expect("nonblocking");
    tokio::net::TcpListener::from_std(l).expect("tokio listener")
}

impl OtlpReceiver {
    /// OTLP/gRPC.
    pub fn grpc() -> OtlpReceiver {
        let l = listener();
        let addr = l.local_addr().expect("local addr");
        let store = Store::default();
        let metrics = MetricStore::default();
        let svc = TraceServiceServer::new(Svc(store.clone()));
        let msvc = MetricsServiceServer::new(MetricsSvc(metrics.clone()));
        let task = runtime().spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(l);
            let _ = tonic::transport::Server::builder()
                .add_service(svc)
                .add_service(msvc)
                .serve_with_incoming(incoming)
                .await;
        });
        OtlpReceiver {
            addr,
            store,
            metrics,
            task,
        }
    }

    /// OTLP/HTTP with protobuf bodies (any path).
    pub fn http() -> OtlpReceiver {
        let l = listener();
        let addr = l.local_addr().expect("local addr");
        let store = Store::default();
        let s = store.clone();
        let task = runtime().spawn(async move {
            loop {
                let Ok((stream, _)) = l.accept().await else {
                    return;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let s = s.clone();
                            async move {
                                let ok = req
                                    .headers()
                                    .get("content-type")
                                    .is_some_and(|v| v == "application/x-protobuf");
                                let body = req
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let status = match ExportTraceServiceRequest::decode(body) {
                                    Ok(r) if ok => {
                                        keep(&s, r);
                                        200
                                    }
                                    _ => 400,
                                };
                                let out = ExportTraceServiceResponse {
                                    partial_success: None,
                                }
                                .encode_to_vec();
                                let mut resp = http::Response::new(Full::new(Bytes::from(out)));
                                *resp.status_mut() =
                                    http::StatusCode::from_u16(status).unwrap_or_default();
                                resp.headers_mut().insert(
                                    "content-type",
                                    http::HeaderValue::from_static("application/x-protobuf"),
                                );
                                Ok::<_, std::convert::Infallible>(resp)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        OtlpReceiver {
            addr,
            store,
            metrics: MetricStore::default(),
            task,
        }
    }

    /// Accepts connections and never reads or answers (a black-holed collector).
    pub fn black_hole() -> OtlpReceiver {
        let l = listener();
        let addr = l.local_addr().expect("local addr");
        let task = runtime().spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        OtlpReceiver {
            addr,
            store: Store::default(),
            metrics: MetricStore::default(),
            task,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every metric data point received so far (gRPC receivers), oldest first.
    pub fn metric_points(&self) -> Vec<RecvPoint> {
        self.metrics.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<RecvSpan> {
        self.store.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
