//! Where tags and frames come from. Replay reads recorded FLV files; the live service adds RTMP,
//! HTTP-FLV and RTSP cameras.
//!
//! Every live protocol module (`rtmp`, `pull`) feeds one small interface, [`Sink`], and knows
//! nothing of what is behind it: `serve` implements it (authorisation, the live registry, the
//! capture instance). A protocol opens a [`StreamSink`] when a stream starts, pushes its tags, and
//! drops it when the stream ends.

pub mod flv;
pub mod pull;
pub mod rtmp;
pub mod rtp;
pub mod rtsp;

use std::future::Future;
use std::net::SocketAddr;

/// What an ingest asks for when a stream starts.
#[derive(Debug, Clone, Copy)]
pub struct Publish<'a> {
    /// The application (tenant) name, without any query.
    pub app: &'a str,
    /// The stream name, without any query.
    pub stream: &'a str,
    /// Who is sending the stream.
    pub origin: Origin<'a>,
}

/// Where a stream comes from, which decides how it is authorised.
#[derive(Debug, Clone, Copy)]
pub enum Origin<'a> {
    /// A peer that connected to publish (RTMP): it must give the tenant's publish key, and a
    /// refusal counts as a refused publish.
    Publisher {
        /// The publish key the peer gave, if any.
        key: Option<&'a str>,
        /// The peer's address.
        peer: SocketAddr,
    },
    /// A source this process chose itself (a configured pull, the load test's streams): trusted,
    /// no key.
    Pull,
}

/// What every ingest feeds: opens a session per stream.
pub trait Sink: Send + Sync + 'static {
    /// A live stream's session.
    type Session: StreamSink;

    /// Authorise `publish` (tenant, publish key) and open a session, or say why not.
    fn open(
        &self,
        publish: Publish<'_>,
    ) -> impl Future<Output = Result<Self::Session, Refusal>> + Send;

    /// The largest tag body an ingest may push; a larger one ends the stream.
    fn max_tag_bytes(&self) -> usize;
}

/// One live stream's session. Dropping it ends the stream.
pub trait StreamSink: Send + 'static {
    /// Feed one FLV tag. An error means the stream is over (its capture instance failed).
    fn push_tag(&mut self, tag_type: u8, timestamp_ms: u32, body: &[u8]) -> anyhow::Result<()>;

    /// Feed one coded video frame (RTP-based ingests: the component's container-neutral
    /// entry). An error means the stream is over, as for [`StreamSink::push_tag`].
    fn push_frame(&mut self, frame: &crate::runtime::CodedFrame) -> anyhow::Result<()>;

    /// Say why the session ends; the end itself is the drop.
    fn end(&mut self, reason: &'static str);

    /// The `app/stream` name, for log lines.
    fn name(&self) -> &str;
}

/// Why a publish or pull was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// No tenant has this app.
    #[error("unknown app {0:?}")]
    UnknownApp(String),
    /// Wrong or missing publish key.
    #[error("wrong or missing publish key for app {0:?}")]
    BadKey(String),
    /// The guest refused the name or settings.
    #[error("{0}")]
    Invalid(String),
    /// The stream is already live.
    #[error("stream {0} is already live")]
    AlreadyLive(String),
    /// A stream cap was reached.
    #[error("{0}")]
    TooMany(String),
    /// The capture instance could not be made.
    #[error("cannot start a capture instance: {0}")]
    Runtime(String),
}
