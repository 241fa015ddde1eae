//! HTTP-FLV pull: for each `[[pull]]`, connect, stream tags into a session, and after EOF or an
//! error reconnect with exponential backoff (0.5 s doubling to 30 s; reset after a connection
//! that lasted 30 s). Every (re)connect is a new session.

use crate::config::PullConfig;
use crate::ingest::flv::FlvPushParser;
use crate::ingest::{Origin, Publish, Sink, StreamSink};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// First reconnect delay.
const BACKOFF_START: Duration = Duration::from_millis(500);
/// Longest reconnect delay.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A connection that lasted this long resets the backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);
/// No bytes for this long and the connection is dropped.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Pull `pull` into `sink` until `shutdown`.
pub async fn run<S: Sink>(sink: Arc<S>, pull: PullConfig, shutdown: CancellationToken) {
    let client = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(IDLE_TIMEOUT)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(url = %pull.url, cause = %e, "cannot build an HTTP client: pull disabled");
            return;
        }
    };
    reconnecting(&pull.url, "pull", &shutdown, || {
        pull_once(&*sink, &client, &pull, &shutdown)
    })
    .await;
}

/// Run `attempt` until `shutdown`: after it ends (the source ended, or failed) wait and run it
/// again, with exponential backoff (0.5 s doubling to 30 s; reset after an attempt that lasted
/// 30 s). A failure's cause is logged at `warn` the first time it occurs in a row; while the
/// same cause repeats it is logged at `debug` with the number of repeats, so a camera with a
/// wrong password logs one line, not one every 30 s.
pub async fn reconnecting<F, Fut>(
    url: &crate::config::SourceUrl,
    what: &str,
    shutdown: &CancellationToken,
    mut attempt: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut backoff = BACKOFF_START;
    let mut last_cause: Option<(String, u64)> = None;
    while !shutdown.is_cancelled() {
        let started = Instant::now();
        match attempt().await {
            Ok(()) => {
                tracing::info!(%url, "{what} source ended");
                last_cause = None;
            }
            Err(e) => {
                let cause = format!("{e:#}");
                match &mut last_cause {
                    Some((last, repeats)) if *last == cause => {
                        *repeats += 1;
                        tracing::debug!(%url, %cause, repeats = *repeats, "{what} failed again");
                    }
                    _ => {
                        tracing::warn!(%url, %cause, "{what} failed (while this cause repeats it is logged at debug)");
                        last_cause = Some((cause, 0));
                    }
                }
            }
        }
        if started.elapsed() >= HEALTHY_AFTER {
            backoff = BACKOFF_START;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn pull_once<S: Sink>(
    sink: &S,
    client: &reqwest::Client,
    pull: &PullConfig,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let mut response = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        // reqwest's errors name the URL: without it, so a password in it is never shown.
        response = client.get(pull.url.secret().clone()).send() => response
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| anyhow::anyhow!("GET {}: {}", pull.url, e.without_url()))?,
    };
    let publish = Publish {
        app: &pull.app.0,
        stream: &pull.stream.0,
        origin: Origin::Pull,
    };
    let mut session = sink
        .open(publish)
        .await
        .map_err(|why| anyhow::anyhow!("session refused: {why}"))?;
    let mut parser = FlvPushParser::new(sink.max_tag_bytes());
    loop {
        let chunk = tokio::select! {
            _ = shutdown.cancelled() => {
                session.end("shutdown");
                return Ok(());
            }
            chunk = response.chunk() => chunk.map_err(|e| anyhow::anyhow!("{}: {}", pull.url, e.without_url()))?,
        };
        let Some(chunk) = chunk else {
            session.end("source ended");
            return Ok(());
        };
        for tag in parser.push(&chunk)? {
            session.push_tag(tag.tag_type, tag.timestamp_ms, &tag.body)?;
        }
    }
}
