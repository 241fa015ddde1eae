//! The service's HTTP side (axum): `GET /healthz`, `GET /metrics` (Prometheus text) and
//! `GET /latest/{app}/{stream}.jpg?token=T`, the newest picture of a live stream with an `ETag`.
//! The token is hex HMAC-SHA256(tenant callback_secret, "latest/{app}/{stream}"); tenants without
//! a secret have no latest-picture endpoint.

use crate::serve::session::{ServeCtx, latest_token};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::collections::HashMap;
use std::sync::Arc;

/// The router.
pub fn router(ctx: Arc<ServeCtx>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/latest/{app}/{file}", get(latest))
        .with_state(ctx)
}

async fn metrics(State(ctx): State<Arc<ServeCtx>>) -> Response {
    let active = ctx.live.lock().map_or(0, |l| l.len());
    let text = ctx.metrics.render_text(
        active,
        ctx.callbacks.queue_depth(),
        ctx.callbacks.dead_lettered(),
        ctx.callbacks.rejected(),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn latest(
    State(ctx): State<Arc<ServeCtx>>,
    Path((app, file)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let Some(stream) = file.strip_suffix(".jpg") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(secret) = ctx
        .config
        .tenant(&app)
        .and_then(|t| t.callback_secret.clone())
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let expected = latest_token(&secret, &app, stream);
    let given = query.get("token").map(String::as_str).unwrap_or_default();
    if given.len() != expected.len()
        || given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |a, (x, y)| a | (x ^ y))
            != 0
    {
        return StatusCode::FORBIDDEN.into_response();
    }
    let latest = ctx.live.lock().ok().and_then(|live| {
        live.get(&format!("{app}/{stream}"))
            .and_then(|l| l.latest.clone())
    });
    let Some(latest) = latest else {
        return (StatusCode::NOT_FOUND, "no picture of this stream yet\n").into_response();
    };
    let etag = HeaderValue::from_str(&latest.etag).unwrap_or(HeaderValue::from_static("\"0\""));
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v == etag)
    {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::ETAG, etag),
        ],
        latest.jpeg,
    )
        .into_response()
}
