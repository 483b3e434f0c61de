//! In-crate integration tests: a real proxy on 127.0.0.1:0 in front of hyper test backends,
//! driven by real HTTP clients. Synchronisation waits for conditions with deadlines, never
//! for fixed sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bench;
mod e2e_protocols;
mod e2e_routing;
mod e2e_services;
mod e2e_tls;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::{Proxy, ProxyOptions};

pub(crate) type TBody = BoxBody<Bytes, std::io::Error>;
pub(crate) type Handler = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<TBody>> + Send>>
        + Send
        + Sync,
>;

pub(crate) fn full(b: impl Into<Bytes>) -> TBody {
    Full::new(b.into())
        .map_err(|e: Infallible| match e {})
        .boxed()
}

/// A body fed from a channel (streaming, with optional trailers).
pub(crate) struct ChanBody(pub mpsc::Receiver<Frame<Bytes>>);

impl Body for ChanBody {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx).map(|f| f.map(Ok))
    }
}

/// A test backend.
pub(crate) struct Backend {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Backend {
    pub(crate) async fn start(handler: Handler) -> Backend {
        Self::start_on("127.0.0.1:0".parse().unwrap(), handler).await
    }

    pub(crate) async fn start_on(addr: SocketAddr, handler: Handler) -> Backend {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let h2 = hits.clone();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let (stream, _) = match listener.accept().await {
                    Ok(x) => x,
                    Err(_) => continue,
                };
                let handler = handler.clone();
                let hits = h2.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| {
                        hits.fetch_add(1, Ordering::SeqCst);
                        let f = handler(req);
                        async move { Ok::<_, Infallible>(f.await) }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Backend { addr, hits, task }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Stop accepting and drop every connection.
    pub(crate) fn stop(&self) {
        self.task.abort();
    }
}

/// A backend that describes the request it got: `id=`, `method=`, `uri=`, `version=`,
/// `h:name=value` per header line, `body=<len>`.
pub(crate) fn echo(id: &'static str) -> Handler {
    Arc::new(move |req: Request<Incoming>| {
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let mut out = format!(
                "id={id}\nmethod={}\nuri={}\nversion={:?}\n",
                parts.method, parts.uri, parts.version
            );
            for (k, v) in &parts.headers {
                out.push_str(&format!("h:{}={}\n", k, v.to_str().unwrap_or("?")));
            }
            out.push_str(&format!("body={}\n", body.len()));
            Response::builder()
                .header("x-backend", id)
                .body(full(out))
                .unwrap()
        })
    })
}

/// The value of `key=` in an echo response.
pub(crate) fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// The values of header `name` in an echo response.
pub(crate) fn header<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let p = format!("h:{name}=");
    text.lines()
        .filter_map(|l| l.strip_prefix(p.as_str()))
        .collect()
}

pub(crate) async fn start_proxy() -> (Proxy, SocketAddr) {
    start_proxy_with(ProxyOptions::default()).await
}

pub(crate) async fn start_proxy_with(mut opts: ProxyOptions) -> (Proxy, SocketAddr) {
    if opts.entrypoints.is_empty() {
        opts.entrypoints = vec![("web".into(), "127.0.0.1:0".into())];
    }
    opts.admin_addr = "127.0.0.1:0".into();
    if opts.proxy_id.is_empty() {
        opts.proxy_id = "test-proxy".into();
    }
    let p = Proxy::start(opts).await.unwrap();
    let addr = p.local_addrs()[0].1;
    (p, addr)
}

/// Apply a YAML config as the next version.
pub(crate) fn apply(p: &Proxy, yaml: &str) {
    let cfg = switchyard_config::parse_document(yaml).unwrap();
    p.apply(p.version() + 1, Arc::new(cfg)).unwrap();
}

pub(crate) type TestClient = hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>;

pub(crate) fn client() -> TestClient {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http()
}

pub(crate) fn h2_client() -> TestClient {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

pub(crate) struct Got {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
    pub version: http::Version,
}

pub(crate) async fn send(c: &TestClient, req: Request<Full<Bytes>>) -> Got {
    let resp = c.request(req).await.unwrap();
    let status = resp.status();
    let version = resp.version();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Got {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        version,
    }
}

/// GET `path` on the proxy with Host `host`.
pub(crate) async fn get(c: &TestClient, proxy: SocketAddr, host: &str, path: &str) -> Got {
    let req = Request::get(format!("http://{proxy}{path}"))
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(c, req).await
}

/// Poll `f` every 10 ms until it is true or `timeout` passes.
pub(crate) async fn wait_for<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// GET on the admin address: (status, body).
pub(crate) async fn admin(p: &Proxy, path: &str) -> (StatusCode, String) {
    let got = get(&client(), p.admin_addr(), "admin", path).await;
    (got.status, got.body)
}
