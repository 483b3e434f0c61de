//! The dashboard: a static web UI at `/dashboard/` (plain HTML, CSS and JavaScript embedded in
//! the binary, no CDN, no build step; `/dashboard/auth` tells it whether to ask for a token). It reads the API of [`crate::api`] from the browser with
//! the viewer token typed in its login field (kept in the tab's `sessionStorage`), polls
//! `/api/switchyard/status` every second and reloads the page's data when the config version,
//! the leader or the term changes.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::shared::Shared;

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");

/// The `/dashboard/` routes. The assets hold no data: they are served without a token.
pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/dashboard/") }))
        .route(
            "/dashboard",
            get(|| async { Redirect::temporary("/dashboard/") }),
        )
        .route(
            "/dashboard/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/dashboard/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/dashboard/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route("/dashboard/auth", get(auth))
}

/// Whether the API wants a token (what a 401 would tell anyway), so the page asks for one before
/// calling the API rather than after a refusal.
async fn auth(State(shared): State<Arc<Shared>>) -> Response {
    let body = format!("{{\"tokenRequired\":{}}}\n", !shared.opts.insecure);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'",
            ),
        ],
        body,
    )
        .into_response()
}
