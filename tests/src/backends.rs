//! # Test backends, run inside the test process
//!
//! The proxy suites need servers behind the proxy that say who they are and what they saw. They
//! run on a shared multi-threaded tokio runtime ([`runtime`]) owned by the test binary, each on
//! its own ephemeral loopback port, so the test itself stays plain synchronous code (it drives
//! processes and the CLI) and uses [`block_on`] for async clients.
//!
//! * [`HttpBackend`]: HTTP/1.1 and h2c (prior knowledge) on one port. Every answer is JSON
//!   ([`Echo`]): the backend's name, zone and region, and the method, path, query, protocol
//!   version, headers, and the length and SHA-256 of the request body (consumed as a stream).
//!   `x-backend`/`x-backend-zone` response headers name it too. `GET /download/N` streams `N`
//!   bytes of [`pattern_chunk`] data. `/health` answers 200 or 503 ([`HttpBackend::set_healthy`])
//!   and is counted apart from other requests. It can be told to answer a fixed status or hang
//!   ([`Mode`]), counts requests, optionally records them ([`HttpBackend::record`]), and can be
//!   stopped (listener and every open connection closed) and restarted on the same port.
//! * [`WsBackend`]: a WebSocket echo server (tokio-tungstenite).
//! * [`GrpcBackend`]: tonic serving `grpc.health.v1.Health` over h2c, with a reporter to change
//!   the status a `Watch` stream sees.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpSocket};
use tokio::runtime::Runtime;
use tokio::task::{JoinHandle, JoinSet};

use crate::reserve_port;

// ---------------------------------------------------------------------------------------------
// Runtime
// ---------------------------------------------------------------------------------------------

/// The test binary's tokio runtime (4 workers), where backends and async clients run.
pub fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .thread_name("e2e-runtime")
            .build()
            .expect("building the test runtime")
    })
}

/// Runs a future to completion on [`runtime`] (from synchronous test code).
pub fn block_on<F: Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

/// Binds `addr` with `SO_REUSEADDR` (so a stopped backend can come back on its port).
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let _guard = runtime().enter();
    let sock = TcpSocket::new_v4()?;
    sock.set_reuseaddr(true)?;
    sock.set_nodelay(true)?;
    sock.bind(addr)?;
    sock.listen(1024)
}

/// A fresh listener on an ephemeral loopback port (reserved so the harness never hands it out).
fn bind_ephemeral() -> TcpListener {
    let l = bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("binding a backend port");
    reserve_port(l.local_addr().expect("local addr").port());
    l
}

// ---------------------------------------------------------------------------------------------
// Pattern data for large bodies
// ---------------------------------------------------------------------------------------------

/// Size of one [`pattern_chunk`].
pub const CHUNK: usize = 64 * 1024;

fn base_block() -> &'static [u8] {
    static BLOCK: OnceLock<Vec<u8>> = OnceLock::new();
    BLOCK.get_or_init(|| {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut v = Vec::with_capacity(CHUNK);
        while v.len() < CHUNK {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.truncate(CHUNK);
        v
    })
}

/// Chunk `i` of a deterministic byte stream: a fixed pseudo-random block whose first 8 bytes
/// are `i` (so a reordered, repeated or dropped chunk changes the hash), cut to `len` bytes.
pub fn pattern_chunk(i: u64, len: usize) -> Bytes {
    let mut v = base_block()[..len.min(CHUNK)].to_vec();
    let n = v.len().min(8);
    v[..n].copy_from_slice(&i.to_le_bytes()[..n]);
    Bytes::from(v)
}

/// The chunks of a `total`-byte pattern stream, lazily.
pub fn pattern_chunks(total: u64) -> impl Iterator<Item = Bytes> + Send + 'static {
    let chunks = total.div_ceil(CHUNK as u64);
    (0..chunks).map(move |i| {
        let left = total - i * CHUNK as u64;
        pattern_chunk(i, (left as usize).min(CHUNK))
    })
}

/// Lower-case hex SHA-256 of the `total`-byte pattern stream.
pub fn pattern_sha256(total: u64) -> String {
    let mut h = Sha256::new();
    for c in pattern_chunks(total) {
        h.update(&c);
    }
    h.finish()
}

/// Incremental SHA-256 (ring) with a byte count.
pub struct Sha256 {
    ctx: ring::digest::Context,
    len: u64,
}

impl Default for Sha256 {
    fn default() -> Self {
        Self::new()
    }
}

impl Sha256 {
    /// A fresh digest.
    pub fn new() -> Self {
        Sha256 {
            ctx: ring::digest::Context::new(&ring::digest::SHA256),
            len: 0,
        }
    }

    /// Adds bytes.
    pub fn update(&mut self, b: &[u8]) {
        self.len += b.len() as u64;
        self.ctx.update(b);
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was hashed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Lower-case hex digest.
    pub fn finish(self) -> String {
        hex(self.ctx.finish().as_ref())
    }
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

// ---------------------------------------------------------------------------------------------
// HTTP backend
// ---------------------------------------------------------------------------------------------

/// How an [`HttpBackend`] answers requests other than `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 200 with the [`Echo`] JSON.
    Normal,
    /// This status with the [`Echo`] JSON.
    Status(u16),
    /// Never answer (the request hangs until the client or the proxy gives up).
    Hang,
}

/// One request an [`HttpBackend`] saw (when recording).
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query as received.
    pub path_and_query: String,
    /// `HTTP/1.1`, `HTTP/2.0`, …
    pub version: String,
    /// Headers (lower-case names).
    pub headers: Vec<(String, String)>,
    /// Body length.
    pub body_len: u64,
    /// Body SHA-256 (hex).
    pub body_sha256: String,
}

impl Seen {
    /// First value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct HttpInner {
    name: String,
    region: String,
    zone: String,
    healthy: AtomicBool,
    mode: Mutex<Mode>,
    hits: AtomicU64,
    health_hits: AtomicU64,
    recording: AtomicBool,
    seen: Mutex<Vec<Seen>>,
}

type RespBody = BoxBody<Bytes, std::io::Error>;

fn full(b: impl Into<Bytes>) -> RespBody {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// An HTTP/1.1 + h2c echo/identity backend (see the module docs).
pub struct HttpBackend {
    inner: Arc<HttpInner>,
    addr: SocketAddr,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for HttpBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpBackend")
            .field("name", &self.inner.name)
            .field("zone", &self.inner.zone)
            .field("addr", &self.addr)
            .finish()
    }
}

impl HttpBackend {
    /// A backend named `name` (no zone or region).
    pub fn start(name: &str) -> HttpBackend {
        Self::start_in(name, "", "")
    }

    /// A backend named `name` that reports `region` and `zone`.
    pub fn start_in(name: &str, region: &str, zone: &str) -> HttpBackend {
        let inner = Arc::new(HttpInner {
            name: name.to_string(),
            region: region.to_string(),
            zone: zone.to_string(),
            healthy: AtomicBool::new(true),
            mode: Mutex::new(Mode::Normal),
            hits: AtomicU64::new(0),
            health_hits: AtomicU64::new(0),
            recording: AtomicBool::new(false),
            seen: Mutex::new(Vec::new()),
        });
        let listener = bind_ephemeral();
        let addr = listener.local_addr().expect("local addr");
        let task = runtime().spawn(serve_http(listener, inner.clone()));
        HttpBackend {
            inner,
            addr,
            task: Mutex::new(Some(task)),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Its zone.
    pub fn zone(&self) -> &str {
        &self.inner.zone
    }

    /// Listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `h2c://127.0.0.1:PORT` (the proxy talks HTTP/2 with prior knowledge).
    pub fn h2c_url(&self) -> String {
        format!("h2c://{}", self.addr)
    }

    /// What `/health` answers: 200 when true, 503 when false.
    pub fn set_healthy(&self, ok: bool) {
        self.inner.healthy.store(ok, Ordering::SeqCst);
    }

    /// How other requests are answered.
    pub fn set_mode(&self, m: Mode) {
        *self.inner.mode.lock().unwrap_or_else(|e| e.into_inner()) = m;
    }

    /// Requests answered (or hung), `/health` excluded.
    pub fn hits(&self) -> u64 {
        self.inner.hits.load(Ordering::SeqCst)
    }

    /// `/health` requests.
    pub fn health_hits(&self) -> u64 {
        self.inner.health_hits.load(Ordering::SeqCst)
    }

    /// Start (or stop) recording every request other than `/health`.
    pub fn record(&self, on: bool) {
        self.inner.recording.store(on, Ordering::SeqCst);
    }

    /// The recorded requests.
    pub fn seen(&self) -> Vec<Seen> {
        self.inner
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether it is serving.
    pub fn is_running(&self) -> bool {
        self.task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Closes the listener and every open connection; returns once the port is closed.
    pub fn stop(&self) {
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = task {
            t.abort();
            let _ = block_on(t);
        }
    }

    /// Serves again on the same port (after [`HttpBackend::stop`]).
    pub fn restart(&self) {
        let mut task = self.task.lock().unwrap_or_else(|e| e.into_inner());
        assert!(task.is_none(), "backend {} is running", self.inner.name);
        let listener = bind(self.addr).unwrap_or_else(|e| {
            panic!(
                "rebinding backend {} on {}: {e}",
                self.inner.name, self.addr
            )
        });
        *task = Some(runtime().spawn(serve_http(listener, self.inner.clone())));
    }
}

impl Drop for HttpBackend {
    fn drop(&mut self) {
        if let Some(t) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.abort();
        }
    }
}

/// The accept loop. Connections live in a `JoinSet` owned by this future, so aborting it closes
/// them all.
async fn serve_http(listener: TcpListener, inner: Arc<HttpInner>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            res = listener.accept() => {
                let Ok((stream, _)) = res else { continue };
                let _ = stream.set_nodelay(true);
                let inner = inner.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| handle_http(inner.clone(), req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        }
    }
}

fn backend_headers(inner: &HttpInner, r: &mut Response<RespBody>) {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&inner.name) {
        h.insert("x-backend", v);
    }
    if let Ok(v) = HeaderValue::from_str(&inner.zone) {
        h.insert("x-backend-zone", v);
    }
}

async fn handle_http(
    inner: Arc<HttpInner>,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, Infallible> {
    let path = req.uri().path().to_string();
    if path == "/health" {
        inner.health_hits.fetch_add(1, Ordering::SeqCst);
        let ok = inner.healthy.load(Ordering::SeqCst);
        let mut r = Response::new(full(if ok { "healthy\n" } else { "unhealthy\n" }));
        *r.status_mut() = if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        backend_headers(&inner, &mut r);
        return Ok(r);
    }
    inner.hits.fetch_add(1, Ordering::SeqCst);
    let mode = *inner.mode.lock().unwrap_or_else(|e| e.into_inner());
    if mode == Mode::Hang {
        std::future::pending::<()>().await;
    }
    let status = match mode {
        Mode::Status(c) => StatusCode::from_u16(c).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        _ => StatusCode::OK,
    };

    if let Some(n) = path.strip_prefix("/download/") {
        let total: u64 = n.parse().unwrap_or(0);
        let stream = futures::stream::iter(pattern_chunks(total))
            .map(|c| Ok::<_, std::io::Error>(Frame::data(c)));
        let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
        *r.status_mut() = status;
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        backend_headers(&inner, &mut r);
        return Ok(r);
    }

    let method = req.method().to_string();
    let version = format!("{:?}", req.version());
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| path.clone());
    let query = req.uri().query().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let authority = req.uri().authority().map(|a| a.to_string());
    let mut body = req.into_body();
    let mut h = Sha256::new();
    let mut body_error = None;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Ok(d) = f.into_data() {
                    h.update(&d);
                }
            }
            Err(e) => {
                body_error = Some(e.to_string());
                break;
            }
        }
    }
    let body_len = h.len();
    let body_sha256 = h.finish();
    if inner.recording.load(Ordering::SeqCst) {
        inner
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Seen {
                method: method.clone(),
                path_and_query: path_and_query.clone(),
                version: version.clone(),
                headers: headers.clone(),
                body_len,
                body_sha256: body_sha256.clone(),
            });
    }
    let mut hmap = serde_json::Map::new();
    for (k, v) in &headers {
        match hmap.get_mut(k) {
            Some(Value::String(s)) => {
                s.push_str(", ");
                s.push_str(v);
            }
            _ => {
                hmap.insert(k.clone(), Value::String(v.clone()));
            }
        }
    }
    let echo = json!({
        "name": inner.name,
        "zone": inner.zone,
        "region": inner.region,
        "method": method,
        "path": path,
        "query": query,
        "pathAndQuery": path_and_query,
        "authority": authority,
        "version": version,
        "headers": hmap,
        "bodyLen": body_len,
        "bodySha256": body_sha256,
        "bodyError": body_error,
    });
    let mut r = Response::new(full(echo.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    backend_headers(&inner, &mut r);
    Ok(r)
}

// ---------------------------------------------------------------------------------------------
// WebSocket backend
// ---------------------------------------------------------------------------------------------

/// A WebSocket echo server: every text or binary message comes back unchanged.
pub struct WsBackend {
    addr: SocketAddr,
    task: JoinHandle<()>,
    handshakes: Handshakes,
}

impl WsBackend {
    /// Starts it on an ephemeral port.
    pub fn start() -> WsBackend {
        let listener = bind_ephemeral();
        let addr = listener.local_addr().expect("local addr");
        let handshakes = Arc::new(Mutex::new(Vec::new()));
        let hs = handshakes.clone();
        let task = runtime().spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                    res = listener.accept() => {
                        let Ok((stream, _)) = res else { continue };
                        let hs = hs.clone();
                        conns.spawn(async move {
                            ws_echo(stream, hs).await;
                        });
                    }
                }
            }
        });
        WsBackend {
            addr,
            task,
            handshakes,
        }
    }

    /// `http://127.0.0.1:PORT` (the URL a load-balancer server uses).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// (path, headers) of every handshake it accepted.
    pub fn handshakes(&self) -> Vec<(String, Vec<(String, String)>)> {
        self.handshakes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for WsBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// (path and query, headers) of each accepted WebSocket handshake.
type Handshakes = Arc<Mutex<Vec<(String, Vec<(String, String)>)>>>;

async fn ws_echo(stream: tokio::net::TcpStream, hs: Handshakes) {
    use tokio_tungstenite::tungstenite::handshake::server::{Request as WsReq, Response as WsResp};
    use tokio_tungstenite::tungstenite::Message;
    // The callback's error type is tungstenite's (large) error response; we never fail.
    #[allow(clippy::result_large_err)]
    let cb = move |req: &WsReq, mut resp: WsResp| {
        let headers = req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        hs.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((req.uri().to_string(), headers));
        resp.headers_mut()
            .insert("x-backend", HeaderValue::from_static("ws"));
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, cb).await else {
        return;
    };
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                if ws.send(m).await.is_err() {
                    return;
                }
            }
            Ok(Message::Close(_)) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// gRPC backend
// ---------------------------------------------------------------------------------------------

/// The service name the [`GrpcBackend`] reports on.
pub const GRPC_TEST_SERVICE: &str = "switchyard.e2e.Test";

/// tonic serving `grpc.health.v1.Health` over h2c (plain TCP, HTTP/2 prior knowledge).
pub struct GrpcBackend {
    addr: SocketAddr,
    reporter: tonic_health::server::HealthReporter,
    task: JoinHandle<()>,
}

impl GrpcBackend {
    /// Starts it with [`GRPC_TEST_SERVICE`] SERVING.
    pub fn start() -> GrpcBackend {
        let listener = bind_ephemeral();
        let addr = listener.local_addr().expect("local addr");
        let (reporter, service) = tonic_health::server::health_reporter();
        block_on(
            reporter.set_service_status(GRPC_TEST_SERVICE, tonic_health::ServingStatus::Serving),
        );
        let task = runtime().spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        GrpcBackend {
            addr,
            reporter,
            task,
        }
    }

    /// `h2c://127.0.0.1:PORT`.
    pub fn h2c_url(&self) -> String {
        format!("h2c://{}", self.addr)
    }

    /// Sets the status of [`GRPC_TEST_SERVICE`] (seen by `Check` and `Watch`).
    pub fn set_serving(&self, serving: bool) {
        let status = if serving {
            tonic_health::ServingStatus::Serving
        } else {
            tonic_health::ServingStatus::NotServing
        };
        block_on(self.reporter.set_service_status(GRPC_TEST_SERVICE, status));
    }
}

impl Drop for GrpcBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}
