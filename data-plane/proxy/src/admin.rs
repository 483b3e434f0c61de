//! The admin endpoint (`--admin-addr`), served with hyper (HTTP/1.1):
//!
//! * `/healthz`: 200 `ok` while the process serves;
//! * `/readyz`: 200 once a config is loaded (`ready: config vN` plus the ready note), 503
//!   before (`not ready: no config loaded` plus the note) and while shutting down (`not ready:
//!   shutting down`), so load balancers in front stop sending traffic during the drain;
//! * `/metrics`: the Prometheus/OpenMetrics exposition of [`crate::metrics`].
//!
//! Anything else is 404. The admin server stays up during the drain and stops last.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::shared::Shared;

fn text(status: StatusCode, body: String, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// Answer one admin request.
pub(crate) fn respond(shared: &Shared, method: &Method, path: &str) -> Response<Full<Bytes>> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    if method != Method::GET && method != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
            PLAIN,
        );
    }
    match path {
        "/healthz" => text(StatusCode::OK, "ok\n".into(), PLAIN),
        "/readyz" => {
            let v = shared.version();
            let note = shared.ready_note();
            let note = if note.is_empty() {
                String::new()
            } else {
                format!("{note}\n")
            };
            if shared.draining() {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: shutting down\n{note}"),
                    PLAIN,
                )
            } else if v > 0 {
                text(StatusCode::OK, format!("ready: config v{v}\n{note}"), PLAIN)
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: no config loaded\n{note}"),
                    PLAIN,
                )
            }
        }
        "/metrics" => text(
            StatusCode::OK,
            shared.metrics.encode(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        _ => text(StatusCode::NOT_FOUND, "404 page not found\n".into(), PLAIN),
    }
}

/// Serve the admin endpoint until `stop` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            res = listener.accept() => {
                let Ok((stream, _)) = res else {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                };
                let shared = shared.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let r = respond(&shared, req.method(), req.uri().path());
                        async move { Ok::<_, Infallible>(r) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        }
    }
    conns.abort_all();
}
