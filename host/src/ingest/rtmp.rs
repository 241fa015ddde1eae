//! RTMP ingest (scuffle-rtmp): publishes at `rtmp://HOST:PORT/{app}/{stream}?key=K`. A publish
//! with an unknown app, a wrong key, an invalid stream name, a stream already live or over a cap
//! is refused: the connection is closed and the refusal logged with the peer address. scuffle's
//! session enforces a 2 s handshake timeout and a 2.5 s idle read timeout, so a silent peer
//! cannot hold a slot.

use crate::ingest::{Origin, Publish, Refusal, Sink, StreamSink};
use scuffle_rtmp::ServerSession;
use scuffle_rtmp::session::server::{ServerSessionError, SessionData, SessionHandler};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Accept RTMP connections on `listener` until `shutdown`; each connection runs in its own task,
/// tracked by `connections` so shutdown can wait for them. Each publish is opened in `sink`.
pub async fn serve<S: Sink>(
    sink: Arc<S>,
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
            sink: sink.clone(),
            peer,
            sessions: HashMap::new(),
        };
        let session = ServerSession::new(socket, handler).with_context(rtmp_ctx.clone());
        let stop = shutdown.clone();
        connections.spawn(async move {
            // On shutdown a live publisher is cut off: dropping `run` drops the handler and so
            // ends its stream sessions (scuffle's own cancel only stops handshakes and asks the
            // client to reconnect, it keeps reading). Captures already spawned still finish.
            tokio::select! {
                ended = session.run() => match ended {
                    Ok(_) => tracing::debug!(%peer, "rtmp connection closed"),
                    Err(e) => tracing::info!(%peer, cause = %e, "rtmp connection ended"),
                },
                _ = stop.cancelled() => tracing::info!(%peer, "rtmp connection closed by shutdown"),
            }
        });
    }
    // Stop handshakes still in progress.
    rtmp_handler.cancel();
}

/// Per-connection state: the streams this peer publishes, by RTMP message stream id.
struct Handler<S: Sink> {
    sink: Arc<S>,
    peer: SocketAddr,
    sessions: HashMap<u32, Published<S::Session>>,
}

/// One published stream: its session and the timestamp repair of its audio and video.
struct Published<T> {
    session: T,
    video: TimestampRepair,
    audio: TimestampRepair,
}

/// Restores timestamps that scuffle-rtmp 0.2.3 gets wrong. RTMP 1.0 §5.3.1.2.4: a Type 3 chunk
/// that starts a new message repeats the previous message's timestamp *delta*; scuffle repeats
/// the previous *timestamp* instead, and every later delta builds on that, so the stream falls
/// one frame behind each time (seen with ffmpeg, which sends Type 3 headers for same-size frames
/// at a constant delta). Such a message carries the previous message's timestamp and length
/// exactly (Type 3 repeats the header); two real consecutive video frames never share a
/// timestamp. On that signature add the last delta, and keep the correction for what follows.
#[derive(Debug, Default)]
struct TimestampRepair {
    /// Timestamp and length of the previous message as scuffle reported them.
    prev: Option<(u32, usize)>,
    /// The last non-zero delta seen.
    delta: u32,
    /// Accumulated correction.
    offset: u32,
}

impl TimestampRepair {
    fn repair(&mut self, raw: u32, len: usize) -> u32 {
        if let Some((prev_raw, prev_len)) = self.prev {
            if raw == prev_raw && len == prev_len && self.delta > 0 {
                self.offset = self.offset.wrapping_add(self.delta);
            } else if raw > prev_raw {
                self.delta = raw - prev_raw;
            }
        }
        self.prev = Some((raw, len));
        raw.wrapping_add(self.offset)
    }
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

impl<S: Sink> Handler<S> {
    /// Log a refusal (the sink counted it) and close the connection.
    fn refuse(&self, app: &str, stream: &str, why: &Refusal) -> ServerSessionError {
        tracing::warn!(peer = %self.peer, %app, %stream, reason = %why, "publish refused");
        // scuffle-rtmp closes the connection on any handler error; the variant is not sent.
        ServerSessionError::PlayNotSupported
    }
}

impl<S: Sink> SessionHandler for Handler<S> {
    async fn on_publish(
        &mut self,
        stream_id: u32,
        app_name: &str,
        stream_name: &str,
    ) -> Result<(), ServerSessionError> {
        let (app, app_key) = split_key(app_name);
        let (stream, stream_key) = split_key(stream_name);
        let publish = Publish {
            app,
            stream,
            origin: Origin::Publisher {
                key: stream_key.or(app_key),
                peer: self.peer,
            },
        };
        match self.sink.open(publish).await {
            Ok(session) => {
                tracing::info!(peer = %self.peer, %app, %stream, "publish accepted");
                self.sessions.insert(
                    stream_id,
                    Published {
                        session,
                        video: TimestampRepair::default(),
                        audio: TimestampRepair::default(),
                    },
                );
                Ok(())
            }
            Err(why) => Err(self.refuse(app, stream, &why)),
        }
    }

    async fn on_unpublish(&mut self, stream_id: u32) -> Result<(), ServerSessionError> {
        // Dropping the session ends it; its in-flight captures finish in the background.
        if let Some(mut publish) = self.sessions.remove(&stream_id) {
            publish.session.end("unpublished");
        }
        Ok(())
    }

    async fn on_data(
        &mut self,
        stream_id: u32,
        data: SessionData,
    ) -> Result<(), ServerSessionError> {
        let Some(publish) = self.sessions.get_mut(&stream_id) else {
            return Ok(());
        };
        let (tag_type, timestamp, body) = match &data {
            SessionData::Video { timestamp, data } => {
                (9, publish.video.repair(*timestamp, data.len()), data)
            }
            SessionData::Audio { timestamp, data } => {
                (8, publish.audio.repair(*timestamp, data.len()), data)
            }
            SessionData::Amf0 { timestamp, data } => (18, *timestamp, data),
        };
        let session = &mut publish.session;
        if body.len() > self.sink.max_tag_bytes() {
            tracing::warn!(peer = %self.peer, stream = %session.name(), bytes = body.len(), "tag over max_tag_bytes: stream stopped");
            session.end("tag over max_tag_bytes");
            self.sessions.remove(&stream_id);
            return Err(ServerSessionError::InvalidChunkSize(body.len()));
        }
        if session.push_tag(tag_type, timestamp, body).is_err() {
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
    fn type3_new_messages_get_their_delta_back() {
        let mut r = TimestampRepair::default();
        // Seq header and IDR both at 0 (same timestamp, different sizes): untouched.
        assert_eq!(r.repair(0, 46), 0);
        assert_eq!(r.repair(0, 10821), 0);
        assert_eq!(r.repair(40, 490), 40);
        assert_eq!(r.repair(80, 213), 80);
        // scuffle repeats 80 for a Type 3 message of the same size: it is really 120 ...
        assert_eq!(r.repair(80, 213), 120);
        // ... and everything after is one delta behind.
        assert_eq!(r.repair(120, 188), 160);
        assert_eq!(r.repair(120, 188), 200);
        assert_eq!(r.repair(160, 100), 240);
    }

    #[test]
    fn keys_come_from_the_stream_or_the_app_query() {
        assert_eq!(split_key("cam1?key=abc"), ("cam1", Some("abc")));
        assert_eq!(split_key("cam1?x=1&key=abc&y=2"), ("cam1", Some("abc")));
        assert_eq!(split_key("cam1"), ("cam1", None));
        assert_eq!(split_key("cam1?nokey"), ("cam1", None));
    }
}
