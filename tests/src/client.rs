//! # HTTP clients for talking to proxies
//!
//! hyper 1 clients on the test runtime ([`crate::backends::runtime`]), used from synchronous
//! test code through [`fetch`] or [`crate::backends::block_on`]:
//!
//! * [`Req`] describes a request: method, `Host` header, path and query, headers, body.
//! * [`fetch`] / [`request`]: one request on a fresh HTTP/1.1 connection.
//! * [`H1Client`]: one keep-alive HTTP/1.1 connection (reconnects when the server closes it,
//!   counting connections).
//! * [`H2Client`]: one HTTP/2 connection with prior knowledge (h2c), shareable between tasks
//!   for multiplexing.
//! * [`upload`] / [`download`]: streamed bodies of [`crate::backends::pattern_chunks`], hashed
//!   on the fly.
//! * [`LoadLoop`]: a background client loop on one keep-alive connection that records every
//!   outcome with its time, for "no request failed while …" properties.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Version};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::backends::{block_on, pattern_chunks, runtime, Sha256};

/// The request body type of every client here.
pub type ReqBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// Default timeout of one request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

fn empty() -> ReqBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

fn full(b: Bytes) -> ReqBody {
    Full::new(b).map_err(|never| match never {}).boxed_unsync()
}

/// A request to send through a proxy.
#[derive(Debug, Clone)]
pub struct Req {
    /// Method (any token, sent as given).
    pub method: String,
    /// The `Host` header (HTTP/1.1) or `:authority` (HTTP/2); `None` sends none on HTTP/1.1.
    pub host: Option<String>,
    /// Path and query, e.g. `/a?b=c`.
    pub path: String,
    /// Extra headers, sent in order.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Bytes,
}

impl Req {
    /// `GET path` with `Host: host`.
    pub fn get(host: &str, path: &str) -> Req {
        Req {
            method: "GET".into(),
            host: Some(host.into()),
            path: path.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// Sets the method.
    pub fn method(mut self, m: &str) -> Req {
        self.method = m.into();
        self
    }

    /// Adds a header.
    pub fn header(mut self, k: &str, v: &str) -> Req {
        self.headers.push((k.into(), v.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, b: impl Into<Bytes>) -> Req {
        self.body = b.into();
        self
    }

    fn build(&self, version: Version) -> Result<Request<ReqBody>, String> {
        let method = Method::from_bytes(self.method.as_bytes()).map_err(|e| e.to_string())?;
        let uri = if version == Version::HTTP_2 {
            format!(
                "http://{}{}",
                self.host.as_deref().unwrap_or("localhost"),
                self.path
            )
        } else {
            self.path.clone()
        };
        let mut b = Request::builder().method(method).uri(uri).version(version);
        if version != Version::HTTP_2 {
            if let Some(h) = &self.host {
                b = b.header(http::header::HOST, h.as_str());
            }
        }
        for (k, v) in &self.headers {
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| e.to_string())?;
            let value = HeaderValue::from_str(v).map_err(|e| e.to_string())?;
            b = b.header(name, value);
        }
        let body = if self.body.is_empty() {
            empty()
        } else {
            full(self.body.clone())
        };
        b.body(body).map_err(|e| e.to_string())
    }
}

/// A response, body collected.
#[derive(Debug, Clone)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Protocol version.
    pub version: Version,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Resp {
    /// First value of header `name` as a string.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// Every value of header `name`.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }

    /// The `x-backend` header (which test backend answered).
    pub fn backend(&self) -> Option<String> {
        self.header("x-backend")
    }

    /// Body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {self}"))
    }
}

impl std::fmt::Display for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = self.text();
        let body = if body.len() > 500 {
            format!("{}… ({} bytes)", &body[..500], body.len())
        } else {
            body
        };
        write!(
            f,
            "{} {:?} {:?} {body:?}",
            self.status, self.version, self.headers
        )
    }
}

async fn collect(r: http::Response<hyper::body::Incoming>) -> Result<Resp, String> {
    let (parts, body) = r.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("reading the response body: {e}"))?
        .to_bytes();
    Ok(Resp {
        status: parts.status.as_u16(),
        version: parts.version,
        headers: parts.headers,
        body,
    })
}

async fn connect_tcp(addr: &str) -> Result<TcpStream, String> {
    let s = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

async fn h1_handshake(
    addr: &str,
) -> Result<hyper::client::conn::http1::SendRequest<ReqBody>, String> {
    let tcp = connect_tcp(addr).await?;
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("HTTP/1.1 handshake with {addr}: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(sender)
}

/// One request on a fresh HTTP/1.1 connection.
pub async fn request(addr: &str, req: &Req) -> Result<Resp, String> {
    let mut sender = h1_handshake(addr).await?;
    let r = sender
        .send_request(req.build(Version::HTTP_11)?)
        .await
        .map_err(|e| format!("{} {}: {e}", req.method, req.path))?;
    collect(r).await
}

/// [`request`] from synchronous code, with [`REQUEST_TIMEOUT`].
pub fn fetch(addr: &str, req: &Req) -> Result<Resp, String> {
    block_on(async {
        tokio::time::timeout(REQUEST_TIMEOUT, request(addr, req))
            .await
            .map_err(|_| format!("{} {} on {addr}: timed out", req.method, req.path))?
    })
}

/// `GET path` with `Host: host` on a fresh connection (synchronous).
pub fn get(addr: &str, host: &str, path: &str) -> Result<Resp, String> {
    fetch(addr, &Req::get(host, path))
}

/// One keep-alive HTTP/1.1 connection; reconnects when the server closed it.
pub struct H1Client {
    addr: String,
    sender: Option<hyper::client::conn::http1::SendRequest<ReqBody>>,
    connects: u64,
}

impl H1Client {
    /// A client for `addr` (connects on first use).
    pub fn new(addr: &str) -> H1Client {
        H1Client {
            addr: addr.to_string(),
            sender: None,
            connects: 0,
        }
    }

    /// How many connections it opened.
    pub fn connects(&self) -> u64 {
        self.connects
    }

    /// Sends `req` (with [`REQUEST_TIMEOUT`]). A transport error drops the connection.
    pub async fn send(&mut self, req: &Req) -> Result<Resp, String> {
        let built = req.build(Version::HTTP_11)?;
        let res = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let reuse = match &mut self.sender {
                Some(s) => s.ready().await.is_ok(),
                None => false,
            };
            if !reuse {
                self.sender = Some(h1_handshake(&self.addr).await?);
                self.connects += 1;
            }
            let sender = self.sender.as_mut().ok_or("no connection")?;
            let r = sender
                .send_request(built)
                .await
                .map_err(|e| format!("{} {}: {e}", req.method, req.path))?;
            collect(r).await
        })
        .await
        .map_err(|_| {
            format!(
                "{} {}: timed out after {REQUEST_TIMEOUT:?}",
                req.method, req.path
            )
        })
        .and_then(|r| r);
        if res.is_err() {
            self.sender = None;
        }
        res
    }
}

/// One HTTP/2 connection with prior knowledge (h2c). Cloneable: clones multiplex on it.
#[derive(Clone)]
pub struct H2Client {
    sender: hyper::client::conn::http2::SendRequest<ReqBody>,
}

impl H2Client {
    /// Connects to `addr` and does the HTTP/2 handshake.
    pub async fn connect(addr: &str) -> Result<H2Client, String> {
        let tcp = connect_tcp(addr).await?;
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("HTTP/2 handshake with {addr}: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(H2Client { sender })
    }

    /// Sends `req` (`:authority` = its host) with [`REQUEST_TIMEOUT`].
    pub async fn send(&self, req: &Req) -> Result<Resp, String> {
        let built = req.build(Version::HTTP_2)?;
        let mut sender = self.sender.clone();
        tokio::time::timeout(REQUEST_TIMEOUT, async {
            sender.ready().await.map_err(|e| e.to_string())?;
            let r = sender
                .send_request(built)
                .await
                .map_err(|e| format!("{} {}: {e}", req.method, req.path))?;
            collect(r).await
        })
        .await
        .map_err(|_| format!("{} {}: timed out", req.method, req.path))?
    }

    /// Sends a raw request (for streamed bodies).
    pub async fn send_raw(
        &self,
        req: Request<ReqBody>,
    ) -> Result<http::Response<hyper::body::Incoming>, String> {
        let mut sender = self.sender.clone();
        sender.ready().await.map_err(|e| e.to_string())?;
        sender.send_request(req).await.map_err(|e| e.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// Large bodies
// ---------------------------------------------------------------------------------------------

/// What a streamed transfer produced.
#[derive(Debug, Clone)]
pub struct Transfer {
    /// Response status.
    pub status: u16,
    /// Response protocol version.
    pub version: Version,
    /// Response headers.
    pub headers: HeaderMap,
    /// Bytes received in the response body.
    pub received: u64,
    /// SHA-256 of the response body.
    pub received_sha256: String,
    /// The response body when it was small (≤ 64 KiB), else empty.
    pub small_body: Bytes,
    /// Wall time.
    pub elapsed: Duration,
}

fn streamed_body(total: u64) -> ReqBody {
    let s = futures::stream::iter(pattern_chunks(total))
        .map(|c| Ok::<_, std::io::Error>(Frame::data(c)));
    StreamBody::new(s).boxed_unsync()
}

async fn drain(
    r: http::Response<hyper::body::Incoming>,
    start: Instant,
) -> Result<Transfer, String> {
    let (parts, mut body) = r.into_parts();
    let mut h = Sha256::new();
    let mut small = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("reading the body after {} bytes: {e}", h.len()))?;
        if let Ok(d) = frame.into_data() {
            if h.len() + (d.len() as u64) <= 64 * 1024 {
                small.extend_from_slice(&d);
            }
            h.update(&d);
        }
    }
    let received = h.len();
    if received > 64 * 1024 {
        small.clear();
    }
    Ok(Transfer {
        status: parts.status.as_u16(),
        version: parts.version,
        headers: parts.headers,
        received,
        received_sha256: h.finish(),
        small_body: Bytes::from(small),
        elapsed: start.elapsed(),
    })
}

/// `POST path` with a streamed (chunked, no content-length) body of `total` pattern bytes, over
/// HTTP/1.1 or HTTP/2 (`h2`); the response body is drained and hashed.
pub async fn upload(
    addr: &str,
    host: &str,
    path: &str,
    total: u64,
    h2: bool,
) -> Result<Transfer, String> {
    let start = Instant::now();
    let version = if h2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    let uri = if h2 {
        format!("http://{host}{path}")
    } else {
        path.to_string()
    };
    let mut b = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .version(version)
        .header(http::header::CONTENT_TYPE, "application/octet-stream");
    if !h2 {
        b = b.header(http::header::HOST, host);
    }
    let req = b.body(streamed_body(total)).map_err(|e| e.to_string())?;
    let r = if h2 {
        H2Client::connect(addr).await?.send_raw(req).await?
    } else {
        let mut s = h1_handshake(addr).await?;
        s.send_request(req).await.map_err(|e| e.to_string())?
    };
    drain(r, start).await
}

/// `GET path` (e.g. `/download/N` on an [`crate::backends::HttpBackend`]), draining and hashing
/// the response body as it streams in.
pub async fn download(addr: &str, host: &str, path: &str, h2: bool) -> Result<Transfer, String> {
    let start = Instant::now();
    let req = Req::get(host, path).build(if h2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    })?;
    let r = if h2 {
        H2Client::connect(addr).await?.send_raw(req).await?
    } else {
        let mut s = h1_handshake(addr).await?;
        s.send_request(req).await.map_err(|e| e.to_string())?
    };
    drain(r, start).await
}

// ---------------------------------------------------------------------------------------------
// Load loops
// ---------------------------------------------------------------------------------------------

/// One request of a [`LoadLoop`].
#[derive(Debug, Clone)]
pub struct Sample {
    /// When it completed, from the loop's start.
    pub at: Duration,
    /// `Ok(x-backend)` for a response the check accepted, else what went wrong.
    pub outcome: Result<String, String>,
}

/// Decides whether a response is a success; returns the label to record (e.g. the backend).
pub type CheckFn = dyn Fn(&Resp) -> Result<String, String> + Send + Sync;

/// The default check: status 200; the label is the `x-backend` header.
pub fn ok_200(r: &Resp) -> Result<String, String> {
    if r.status == 200 {
        Ok(r.backend().unwrap_or_default())
    } else {
        Err(format!("status {}: {}", r.status, r.text().trim()))
    }
}

/// A client loop in the background: sends `req` over one keep-alive HTTP/1.1 connection
/// (reconnecting after an error, which is recorded), optionally pausing between requests,
/// and records every outcome.
pub struct LoadLoop {
    name: String,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    task: Option<JoinHandle<u64>>,
    started: Instant,
}

impl LoadLoop {
    /// Starts a loop named `name` sending `req` to `addr`, pausing `pace` between requests
    /// (`Duration::ZERO`: back to back), judging responses with [`ok_200`].
    pub fn start(name: &str, addr: &str, req: Req, pace: Duration) -> LoadLoop {
        Self::start_with(name, addr, req, pace, Arc::new(ok_200))
    }

    /// [`LoadLoop::start`] with a custom check.
    pub fn start_with(
        name: &str,
        addr: &str,
        req: Req,
        pace: Duration,
        check: Arc<CheckFn>,
    ) -> LoadLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let started = Instant::now();
        let (st, sa, addr) = (stop.clone(), samples.clone(), addr.to_string());
        let task = runtime().spawn(async move {
            let mut c = H1Client::new(&addr);
            while !st.load(Ordering::SeqCst) {
                let outcome = match c.send(&req).await {
                    Ok(r) => check(&r),
                    Err(e) => Err(e),
                };
                let failed = outcome.is_err();
                sa.lock().unwrap_or_else(|e| e.into_inner()).push(Sample {
                    at: started.elapsed(),
                    outcome,
                });
                if failed {
                    // Do not spin on a refused connection.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                } else if !pace.is_zero() {
                    tokio::time::sleep(pace).await;
                }
            }
            c.connects()
        });
        LoadLoop {
            name: name.to_string(),
            stop,
            samples,
            task: Some(task),
            started,
        }
    }

    /// Time since the loop started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Every sample so far.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Number of samples so far.
    pub fn count(&self) -> usize {
        self.samples.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The failed samples so far.
    pub fn failures(&self) -> Vec<Sample> {
        self.samples()
            .into_iter()
            .filter(|s| s.outcome.is_err())
            .collect()
    }

    /// Waits until `n` more requests completed after this call (panics after `timeout`).
    pub fn wait_for_more(&self, n: usize, timeout: Duration) {
        let start = self.count();
        crate::wait_until(
            timeout,
            &format!("load loop {} to complete {n} more requests", self.name),
            || {
                let c = self.count();
                if c >= start + n {
                    Ok(())
                } else {
                    Err(format!("{} more so far", c - start))
                }
            },
        );
    }

    /// Stops the loop; returns (samples, connections opened).
    pub fn stop(mut self) -> (Vec<Sample>, u64) {
        self.stop.store(true, Ordering::SeqCst);
        let connects = self
            .task
            .take()
            .map(|t| block_on(t).unwrap_or(0))
            .unwrap_or(0);
        (self.samples(), connects)
    }

    /// A one-line summary: requests, failures, first failures.
    pub fn summary(samples: &[Sample]) -> String {
        let failures: Vec<&Sample> = samples.iter().filter(|s| s.outcome.is_err()).collect();
        let mut s = format!("{} requests, {} failed", samples.len(), failures.len());
        for f in failures.iter().take(10) {
            s.push_str(&format!(
                "\n  at {:.3?}: {}",
                f.at,
                f.outcome.as_ref().err().map(String::as_str).unwrap_or("")
            ));
        }
        s
    }
}

impl Drop for LoadLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}
