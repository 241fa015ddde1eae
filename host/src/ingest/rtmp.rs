//! RTMP ingest (scuffle-rtmp): publishes at `rtmp://HOST:PORT/{app}/{stream}?key=K`. A publish
//! with an unknown app, a wrong key, an invalid stream name, a stream already live or over a cap
//! is refused: the connection is closed and the refusal logged with the peer address. scuffle's
//! session enforces a 2 s handshake timeout and a 2.5 s idle read timeout, so a silent peer
//! cannot hold a slot.

use crate::serve::session::{Refusal, ServeCtx, StreamSession};
use scuffle_rtmp::ServerSession;
use scuffle_rtmp::session::server::{ServerSessionError, SessionData, SessionHandler};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Accept RTMP connections on `listener` until `shutdown`; each connection runs in its own task,
/// tracked by `connections` so shutdown can wait for them.
pub async fn serve(
    ctx: Arc<ServeCtx>,
    listener: TcpListener,
    shutdown: CancellationToken,
    connections: tokio_util::task::TaskTracker,
) {
    let (rtmp_ctx, rtmp_handler) = scuffle_context::Context::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (socket, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(cause = %e, "rtmp accept failed");
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let handler = Handler {
            ctx: ctx.clone(),
            peer,
            sessions: HashMap::new(),
        };
        let session = ServerSession::new(socket, handler).with_context(rtmp_ctx.clone());
        connections.spawn(async move {
            match session.run().await {
                Ok(_) => tracing::debug!(%peer, "rtmp connection closed"),
                Err(e) => tracing::info!(%peer, cause = %e, "rtmp connection ended"),
            }
        });
    }
    // Stop reading from live publishers: their sessions end and in-flight captures finish.
    rtmp_handler.cancel();
}

/// Per-connection state: the streams this peer publishes, by RTMP message stream id.
struct Handler {
    ctx: Arc<ServeCtx>,
    peer: SocketAddr,
    sessions: HashMap<u32, StreamSession>,
}

/// Split `name?query` and find `key=` in the query (in the stream name, or in the app as some
/// encoders put it there).
fn split_key(s: &str) -> (&str, Option<&str>) {
    match s.split_once('?') {
        Some((name, query)) => (
            name,
            query.split('&').find_map(|kv| kv.strip_prefix("key=")),
        ),
        None => (s, None),
    }
}

/// Constant-time comparison of publish keys.
fn keys_match(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

impl Handler {
    fn refuse(&self, app: &str, stream: &str, why: &Refusal) -> ServerSessionError {
        self.ctx
            .metrics
            .publishes_refused
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(peer = %self.peer, %app, %stream, reason = %why, "publish refused");
        // scuffle-rtmp closes the connection on any handler error; the variant is not sent.
        ServerSessionError::PlayNotSupported
    }
}

impl SessionHandler for Handler {
    async fn on_publish(
        &mut self,
        stream_id: u32,
        app_name: &str,
        stream_name: &str,
    ) -> Result<(), ServerSessionError> {
        let (app, app_key) = split_key(app_name);
        let (stream, stream_key) = split_key(stream_name);
        let Some(tenant) = self.ctx.config.tenant(app) else {
            return Err(self.refuse(app, stream, &Refusal::UnknownApp(app.to_owned())));
        };
        let key = stream_key.or(app_key).unwrap_or_default();
        if !keys_match(key, &tenant.publish_key) {
            return Err(self.refuse(app, stream, &Refusal::BadKey(app.to_owned())));
        }
        match StreamSession::start(&self.ctx, app, stream) {
            Ok(session) => {
                tracing::info!(peer = %self.peer, %app, %stream, "publish accepted");
                self.sessions.insert(stream_id, session);
                Ok(())
            }
            Err(why) => Err(self.refuse(app, stream, &why)),
        }
    }

    async fn on_unpublish(&mut self, stream_id: u32) -> Result<(), ServerSessionError> {
        // Dropping the session ends it; its in-flight captures finish in the background.
        self.sessions.remove(&stream_id);
        Ok(())
    }

    async fn on_data(
        &mut self,
        stream_id: u32,
        data: SessionData,
    ) -> Result<(), ServerSessionError> {
        let Some(session) = self.sessions.get_mut(&stream_id) else {
            return Ok(());
        };
        let (tag_type, timestamp, body) = match &data {
            SessionData::Video { timestamp, data } => (9, *timestamp, data),
            SessionData::Audio { timestamp, data } => (8, *timestamp, data),
            SessionData::Amf0 { timestamp, data } => (18, *timestamp, data),
        };
        if body.len() > self.ctx.config.limits.max_tag_bytes {
            tracing::warn!(peer = %self.peer, stream = %session.name(), bytes = body.len(), "tag over max_tag_bytes: stream stopped");
            self.sessions.remove(&stream_id);
            return Err(ServerSessionError::InvalidChunkSize(body.len()));
        }
        if session.push(tag_type, timestamp, body).is_err() {
            // The capture instance trapped: end this stream only.
            self.sessions.remove(&stream_id);
            return Err(ServerSessionError::PlayNotSupported);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_the_stream_or_the_app_query() {
        assert_eq!(split_key("cam1?key=abc"), ("cam1", Some("abc")));
        assert_eq!(split_key("cam1?x=1&key=abc&y=2"), ("cam1", Some("abc")));
        assert_eq!(split_key("cam1"), ("cam1", None));
        assert_eq!(split_key("cam1?nokey"), ("cam1", None));
        assert!(keys_match("abc", "abc"));
        assert!(!keys_match("abd", "abc") && !keys_match("ab", "abc") && !keys_match("", "abc"));
    }
}
