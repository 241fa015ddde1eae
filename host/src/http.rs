//! The service's HTTP side (axum): `GET /healthz`, `GET /metrics` (Prometheus text),
//! `GET /latest/{app}/{stream}.jpg?token=T`, the newest picture of a live stream with an `ETag`,
//! and `GET /snapshot/{app}/{stream}.jpg?token=T[&shortside=N]`, its newest I-frame rendered now.
//! The token is hex HMAC-SHA256(tenant callback_secret, "latest/{app}/{stream}"); tenants without
//! a secret have neither. With `[server] admin_token`: the wall page `GET /wall?token=A`, its data
//! `GET /wall.json?token=A` and a live session's files `GET /session/{app}/{stream}/{file}?token=A`.

use crate::serve::session::{ServeCtx, latest_token};
use crate::serve::snapshot::SnapshotError;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The router.
pub fn router(ctx: Arc<ServeCtx>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/latest/{app}/{file}", get(latest))
        .route("/snapshot/{app}/{file}", get(snapshot))
        .route("/wall", get(wall_page))
        .route("/wall.json", get(wall_json))
        .route("/session/{app}/{stream}/{file}", get(session_file))
        .with_state(ctx)
}

async fn metrics(State(ctx): State<Arc<ServeCtx>>) -> Response {
    let active = ctx.live.lock().map_or(0, |l| l.len());
    let mut text = ctx.metrics.render_text(
        active,
        ctx.callbacks.queue_depth(),
        ctx.callbacks.dead_lettered(),
        ctx.callbacks.rejected(),
    );
    if let Some(cluster) = &ctx.cluster {
        text.push_str(&cluster.metrics_text());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn latest(
    State(ctx): State<Arc<ServeCtx>>,
    Path((app, file)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let stream = match stream_with_token(&ctx, &app, &file, &query) {
        Ok(stream) => stream,
        Err(status) => return status.into_response(),
    };
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

/// Compare a given token with the expected one in time independent of where they differ.
fn same_secret(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |a, (x, y)| a | (x ^ y))
            == 0
}

/// `stream` of `{stream}.jpg` when the latest-picture token of `app/stream` is right: else the
/// answer to give (404 without a secret, 403 for a wrong token).
fn stream_with_token<'a>(
    ctx: &ServeCtx,
    app: &str,
    file: &'a str,
    query: &HashMap<String, String>,
) -> Result<&'a str, StatusCode> {
    let Some(stream) = file.strip_suffix(".jpg") else {
        return Err(StatusCode::NOT_FOUND);
    };
    let Some(secret) = ctx
        .config
        .tenant(app)
        .and_then(|t| t.callback_secret.as_deref())
    else {
        return Err(StatusCode::NOT_FOUND);
    };
    let given = query.get("token").map(String::as_str).unwrap_or_default();
    if !same_secret(given, &latest_token(secret, app, stream)) {
        return Err(StatusCode::FORBIDDEN);
    }
    Ok(stream)
}

/// Largest `shortside` a snapshot may ask for (the component's picture limit).
const MAX_SNAPSHOT_SHORTSIDE: u32 = 8192;

async fn snapshot(
    State(ctx): State<Arc<ServeCtx>>,
    Path((app, file)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let stream = match stream_with_token(&ctx, &app, &file, &query) {
        Ok(stream) => stream,
        Err(status) => return status.into_response(),
    };
    let shortside = match query.get("shortside").map(|s| s.parse::<u32>()) {
        None => None,
        Some(Ok(n)) if (1..=MAX_SNAPSHOT_SHORTSIDE).contains(&n) => Some(n),
        Some(_) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("shortside must be a whole number 1..={MAX_SNAPSHOT_SHORTSIDE}\n"),
            )
                .into_response();
        }
    };
    let source = ctx.live.lock().ok().and_then(|live| {
        live.get(&format!("{app}/{stream}"))
            .map(|l| l.snapshots.clone())
    });
    let source = match source {
        None => return (StatusCode::NOT_FOUND, "this stream is not live\n").into_response(),
        Some(None) => {
            return (
                StatusCode::NOT_FOUND,
                "snapshots are off for this tenant (snapshot = false)\n",
            )
                .into_response();
        }
        Some(Some(source)) => source,
    };
    let no_store = (header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    match source.take(&ctx, shortside).await {
        Ok(shot) => {
            ctx.metrics.snapshots_served.fetch_add(1, Ordering::Relaxed);
            let number = HeaderValue::from(shot.number);
            let clock = HeaderValue::from(shot.clock_ms);
            (
                [
                    (header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg")),
                    no_store,
                    (header::HeaderName::from_static("x-livesnap-iframe"), number),
                    (
                        header::HeaderName::from_static("x-livesnap-clock-ms"),
                        clock,
                    ),
                ],
                shot.jpeg,
            )
                .into_response()
        }
        Err(e) => {
            let status = match &e {
                SnapshotError::NoIframe => StatusCode::NOT_FOUND,
                SnapshotError::Busy(_) => {
                    ctx.metrics.snapshots_busy.fetch_add(1, Ordering::Relaxed);
                    StatusCode::TOO_MANY_REQUESTS
                }
                SnapshotError::Failed(_) => StatusCode::UNPROCESSABLE_ENTITY,
                SnapshotError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            (status, [no_store], format!("{e}\n")).into_response()
        }
    }
}

/// The admin token given in `?token=`, when it is the configured one.
fn admin<'a>(ctx: &ServeCtx, query: &'a HashMap<String, String>) -> Result<&'a str, StatusCode> {
    let Some(expected) = ctx.config.server.admin_token.as_deref() else {
        return Err(StatusCode::NOT_FOUND);
    };
    let given = query.get("token").map(String::as_str).unwrap_or_default();
    if same_secret(given, expected) {
        Ok(given)
    } else {
        Err(StatusCode::FORBIDDEN)
    }
}

async fn wall_page(
    State(ctx): State<Arc<ServeCtx>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(status) = admin(&ctx, &query) {
        return status.into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                     img-src blob:; connect-src 'self'; base-uri 'none'; form-action 'none'",
                ),
            ),
        ],
        crate::serve::wall::WALL_HTML,
    )
        .into_response()
}

async fn wall_json(
    State(ctx): State<Arc<ServeCtx>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let token = match admin(&ctx, &query) {
        Ok(token) => token,
        Err(status) => return status.into_response(),
    };
    let wall = crate::serve::wall::wall(&ctx, token);
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::Json(wall),
    )
        .into_response()
}

async fn session_file(
    State(ctx): State<Arc<ServeCtx>>,
    Path((app, stream, file)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(status) = admin(&ctx, &query) {
        return status.into_response();
    }
    if !crate::serve::wall::is_session_file(&file) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let folder = ctx.live.lock().ok().and_then(|live| {
        live.get(&format!("{app}/{stream}"))
            .map(|l| l.stats.folder.clone())
    });
    let (Some(folder), Some(tenant)) = (folder, ctx.config.tenant(&app)) else {
        return (StatusCode::NOT_FOUND, "this stream is not live\n").into_response();
    };
    let key = format!("{folder}{file}");
    match ctx.storage.get(&tenant.bucket.0, &key).await {
        Ok(Some(bytes)) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(crate::storage::content_type(&key)),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            bytes,
        )
            .into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "not written yet\n").into_response(),
        Err(e) => {
            tracing::warn!(%key, cause = %format!("{e:#}"), "session file not read");
            (
                StatusCode::BAD_GATEWAY,
                "the object store could not be read\n",
            )
                .into_response()
        }
    }
}
