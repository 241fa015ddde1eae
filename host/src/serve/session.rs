//! A live stream's session, opened by every ingest through [`ServeSink`] (serve's side of
//! [`crate::ingest::Sink`]): authorisation, registration (one live session per app/stream,
//! per-tenant and total caps), a capture instance, and the capture path — render in the pool,
//! store, report to the guest, queue the callback — run as background tasks so the ingest loop
//! never waits.

use crate::callback::{Callbacks, Target};
use crate::config::{Config, TenantConfig};
use crate::features::{Features, Sheet};
pub use crate::ingest::Refusal;
use crate::ingest::{Origin, Publish, Sink, StreamSink};
use crate::runtime::{
    Action, CaptureInstance, ErrorCode, Failure, KeyMode, Outcome, Picture, Runtime, SessionEnd,
    SessionEvent, SessionInfo, Settings, Shot, Verdict,
};
use crate::serve::metrics::Metrics;
use crate::serve::render_pool::RenderPool;
use crate::storage::Storage;
use bytes::Bytes;
use hmac::{KeyInit, Mac};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// Everything streams share.
pub struct ServeCtx {
    /// The configuration.
    pub config: Config,
    /// Engine and component.
    pub runtime: Arc<Runtime>,
    /// Render workers.
    pub pool: RenderPool,
    /// Object storage.
    pub storage: Storage,
    /// Durable callback delivery.
    pub callbacks: Callbacks,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Live streams by `app/stream`.
    pub live: Mutex<HashMap<String, LiveStream>>,
    /// In-flight captures, awaited at shutdown.
    pub tracker: TaskTracker,
    /// Base URL of the HTTP server, for `alterurl`.
    pub public_url: String,
    /// Overwrite-mode stores in order across the sessions of a stream (see [`store`]).
    pub overwrites: OverwriteOrder,
    /// Cluster mode (`[cluster]`): JetStream callbacks and the cluster-wide live registry.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// Orders overwrite-mode stores of one object key across sessions: a stream that reconnects
/// gets a new session, and a late render of the old session must not replace the new
/// session's picture. Each store is stamped (session start order, seq); a store whose stamp is
/// older than the one already written is not written.
#[derive(Default)]
pub struct OverwriteOrder {
    /// Start order of sessions in this process: a later session has a higher number.
    generations: std::sync::atomic::AtomicU64,
    /// `bucket/key` → the newest stamp written, behind a lock held across the put.
    slots: Mutex<HashMap<String, Arc<OverwriteSlot>>>,
}

/// One overwrite key's newest stamp and when it was last used (for pruning).
struct OverwriteSlot {
    stamp: tokio::sync::Mutex<(u64, u32)>,
    used: Mutex<Instant>,
}

/// Slots idle this long are forgotten once there are many: a render is long done by then
/// (render deadline, queue and upload timeout are far shorter).
const OVERWRITE_SLOT_IDLE: std::time::Duration = std::time::Duration::from_secs(600);
const OVERWRITE_SLOTS_BEFORE_PRUNE: usize = 4096;

impl OverwriteOrder {
    /// The next session's generation.
    fn next_generation(&self) -> u64 {
        self.generations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    fn slot(&self, key: &str) -> Arc<OverwriteSlot> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if slots.len() >= OVERWRITE_SLOTS_BEFORE_PRUNE {
            slots.retain(|_, slot| {
                Arc::strong_count(slot) > 1
                    || slot
                        .used
                        .lock()
                        .map_or(true, |t| t.elapsed() < OVERWRITE_SLOT_IDLE)
            });
        }
        let slot = slots.entry(key.to_owned()).or_insert_with(|| {
            Arc::new(OverwriteSlot {
                stamp: tokio::sync::Mutex::new((0, 0)),
                used: Mutex::new(Instant::now()),
            })
        });
        if let Ok(mut used) = slot.used.lock() {
            *used = Instant::now();
        }
        slot.clone()
    }
}

/// A live stream's entry in the registry.
#[derive(Debug, Clone)]
pub struct LiveStream {
    /// The session id of the live session.
    pub session_id: u32,
    /// The newest stored picture of this session.
    pub latest: Option<LatestPicture>,
    /// What the wall page shows.
    pub stats: StreamStats,
    /// On-demand snapshots, when the tenant has them.
    pub snapshots: Option<Arc<crate::serve::snapshot::Snapshots>>,
}

impl LiveStream {
    fn new(session_id: u32, started_ms: u64) -> LiveStream {
        LiveStream {
            session_id,
            latest: None,
            stats: StreamStats {
                started_ms,
                ..StreamStats::default()
            },
            snapshots: None,
        }
    }
}

/// A live session's capture record, for the wall page.
#[derive(Debug, Clone, Default)]
pub struct StreamStats {
    /// Unix ms of the push start.
    pub started_ms: u64,
    /// The session folder (index, storyboard).
    pub folder: String,
    /// Codec of the newest capture attempt: "h264" or "hevc" (or what was refused).
    pub codec: Option<&'static str>,
    /// Size of the newest stored picture.
    pub size: Option<(u32, u32)>,
    /// Captures stored.
    pub stored: u64,
    /// Capture attempts failed or refused.
    pub failed: u64,
    /// Failed attempts since the last stored one.
    pub failing: u64,
    /// Unix ms of the newest attempt's outcome.
    pub last_attempt_ms: Option<u64>,
    /// The newest failure, `Code: message`.
    pub last_error: Option<String>,
    /// The storyboard sheet being filled, once it has a tile.
    pub sheet: Option<u32>,
}

/// The newest picture of a live stream, served at `/latest/{app}/{stream}.jpg`.
#[derive(Debug, Clone)]
pub struct LatestPicture {
    /// Capture seq within the session; a render that finishes late never replaces a newer one.
    pub seq: u32,
    /// JPEG bytes.
    pub jpeg: Bytes,
    /// Strong ETag: session id and capture seq.
    pub etag: String,
}

/// What every ingest opens streams in: serve's side of [`Sink`]. It authorises a publisher
/// (tenant, publish key), counts refused publishes and opens a [`StreamSession`].
#[derive(Clone)]
pub struct ServeSink {
    ctx: Arc<ServeCtx>,
}

impl ServeSink {
    /// The sink of the service `ctx`.
    pub fn new(ctx: Arc<ServeCtx>) -> ServeSink {
        ServeSink { ctx }
    }

    /// A publisher's key must be the tenant's; a pull is trusted.
    fn authorise(&self, publish: &Publish<'_>) -> Result<(), Refusal> {
        let app = publish.app;
        let Some(tenant) = self.ctx.config.tenant(app) else {
            return Err(Refusal::UnknownApp(app.to_owned()));
        };
        let Origin::Publisher { key, .. } = publish.origin else {
            return Ok(());
        };
        if keys_match(key.unwrap_or_default(), &tenant.publish_key) {
            Ok(())
        } else {
            Err(Refusal::BadKey(app.to_owned()))
        }
    }
}

impl Sink for ServeSink {
    type Session = StreamSession;

    async fn open(&self, publish: Publish<'_>) -> Result<StreamSession, Refusal> {
        let opened = match self.authorise(&publish) {
            Ok(()) => StreamSession::open(&self.ctx, publish.app, publish.stream).await,
            Err(why) => Err(why),
        };
        if opened.is_err() && matches!(publish.origin, Origin::Publisher { .. }) {
            self.ctx
                .metrics
                .publishes_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        opened
    }

    fn max_tag_bytes(&self) -> usize {
        self.ctx.config.limits.max_tag_bytes
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

/// The latest-picture token of `app/stream` for a tenant with `secret`:
/// hex HMAC-SHA256(secret, "latest/{app}/{stream}") (README "Latest pictures").
pub fn latest_token(secret: &str, app: &str, stream: &str) -> String {
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(format!("latest/{app}/{stream}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// One live session of one stream.
pub struct StreamSession {
    ctx: Arc<ServeCtx>,
    tenant: TenantConfig,
    /// `app/stream`.
    name: String,
    session_id: u32,
    /// Start order among this process's sessions (orders overwrite stores across sessions).
    generation: u64,
    /// The session's names and settings: a shot's callback can be formed from them and the
    /// shot alone on a fresh instance if the session's instance traps with the shot in flight.
    meta: Arc<(SessionInfo, Settings)>,
    capture: Arc<Mutex<CaptureInstance>>,
    span: tracing::Span,
    /// Set once the capture instance trapped: the stream is over.
    failed: bool,
    /// Callbacks leave in attempt order: attempt `n` is queued once `gate` reaches `n`.
    gate: tokio::sync::watch::Sender<u64>,
    /// Ordinal of the next attempt (push order, which is the guest's `seq` order).
    next_attempt: u64,
    /// Skipped-tag and refused-capture causes already logged in this session.
    warnings: crate::warn_once::WarnOnce,
    /// The session's optional features, and what they keep.
    extras: Arc<Extras>,
    /// Why the session ends, once known (default "disconnected").
    end_reason: Option<&'static str>,
    /// The stream's entry in the cluster-wide live registry (cluster mode), deleted on drop.
    _live_entry: Option<crate::cluster::registry::LiveEntry>,
}

/// What the optional features keep for a live session.
struct Extras {
    features: Features,
    /// The session folder (index, storyboard).
    folder: String,
    /// The storyboard sheet being filled, and attempts completed (for `index_every`).
    state: Mutex<ExtrasState>,
}

#[derive(Default)]
struct ExtrasState {
    sheet: Sheet,
    completed: u64,
}

/// Holds an attempt's place in its stream's callback order; releases it when dropped, whatever
/// path the capture task took, so one failed task cannot stall the stream's later callbacks.
struct Turn {
    gate: tokio::sync::watch::Sender<u64>,
    ordinal: u64,
}

impl Turn {
    /// Wait until every earlier attempt of the stream has queued its callback.
    async fn wait(&self) {
        let mut rx = self.gate.subscribe();
        let _ = rx.wait_for(|n| *n >= self.ordinal).await;
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let ordinal = self.ordinal;
        self.gate.send_modify(|n| *n = (*n).max(ordinal + 1));
    }
}

impl StreamSession {
    /// Register `app/stream` (on this node) and start its capture instance.
    pub fn start(ctx: &Arc<ServeCtx>, app: &str, stream: &str) -> Result<StreamSession, Refusal> {
        Self::start_with(ctx, app, stream, now_ms(), rand::random(), None)
    }

    /// Register `app/stream` — in cluster mode first in the cluster-wide live registry, so a
    /// name live on any node is refused — and start its capture instance.
    pub async fn open(
        ctx: &Arc<ServeCtx>,
        app: &str,
        stream: &str,
    ) -> Result<StreamSession, Refusal> {
        let Some(cluster) = &ctx.cluster else {
            return Self::start(ctx, app, stream);
        };
        if ctx.config.tenant(app).is_none() {
            return Err(Refusal::UnknownApp(app.to_owned()));
        }
        let (push_start_ms, session_id) = (now_ms(), rand::random());
        let entry = cluster
            .registry()
            .register(
                app,
                stream,
                session_id,
                push_start_ms,
                ctx.config.limits.max_streams_per_tenant,
            )
            .await?;
        Self::start_with(ctx, app, stream, push_start_ms, session_id, entry)
    }

    fn start_with(
        ctx: &Arc<ServeCtx>,
        app: &str,
        stream: &str,
        push_start_ms: u64,
        session_id: u32,
        live_entry: Option<crate::cluster::registry::LiveEntry>,
    ) -> Result<StreamSession, Refusal> {
        let tenant = ctx
            .config
            .tenant(app)
            .cloned()
            .ok_or_else(|| Refusal::UnknownApp(app.to_owned()))?;
        let name = format!("{app}/{stream}");
        let alterurl = tenant.callback_secret.as_deref().map(|secret| {
            format!(
                "{}/latest/{app}/{stream}.jpg?token={}",
                ctx.public_url,
                latest_token(secret, app, stream)
            )
        });
        let info = SessionInfo {
            app: app.to_owned(),
            stream: stream.to_owned(),
            push_start_ms,
            session_id,
        };
        let settings = Settings {
            interval_s: tenant.interval_s.0,
            mode: if tenant.overwrite {
                KeyMode::Overwrite
            } else {
                KeyMode::Sequence
            },
            shortside_px: tenant.shortside.map(|s| s.0),
            quality: tenant.quality.map(|q| q.0),
            bucket: tenant.bucket.0.clone(),
            uniqname: tenant.uniqname.clone(),
            alterurl,
        };
        // Reserve the name first so two racing publishes cannot both pass.
        {
            let mut live = ctx
                .live
                .lock()
                .map_err(|_| Refusal::Runtime("registry poisoned".into()))?;
            if live.contains_key(&name) {
                return Err(Refusal::AlreadyLive(name));
            }
            let limits = &ctx.config.limits;
            if live.len() >= limits.max_streams {
                return Err(Refusal::TooMany(format!(
                    "{} live streams is the limit (max_streams)",
                    limits.max_streams
                )));
            }
            let prefix = format!("{app}/");
            if live.keys().filter(|k| k.starts_with(&prefix)).count()
                >= limits.max_streams_per_tenant
            {
                return Err(Refusal::TooMany(format!(
                    "app {app:?} has {} live streams, the limit (max_streams_per_tenant)",
                    limits.max_streams_per_tenant
                )));
            }
            live.insert(name.clone(), LiveStream::new(session_id, push_start_ms));
        }
        let features = tenant.features();
        let capture = match ctx
            .runtime
            .capture_with(&info, &settings, &features.options())
        {
            Ok(Ok(capture)) => capture,
            Ok(Err(failure)) => {
                unregister(ctx, &name, session_id);
                return Err(Refusal::Invalid(failure.message));
            }
            Err(e) => {
                unregister(ctx, &name, session_id);
                return Err(Refusal::Runtime(format!("{e:#}")));
            }
        };
        ctx.metrics
            .sessions_started
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let span = tracing::info_span!("stream", %name, session_id, push_start_ms);
        span.in_scope(|| tracing::info!(uniqname = %tenant.uniqname, "session started"));
        let mut capture = capture;
        let folder = capture.folder().unwrap_or_default();
        let started = if features.session_callbacks {
            capture.event_body(&SessionEvent::Started).ok()
        } else {
            None
        };
        // Snapshots answer with the latest-picture token, so they need the tenant's secret.
        let snapshots = tenant.snapshot && tenant.callback_secret.is_some();
        if snapshots && let Err(trap) = capture.keep_last_iframe(true) {
            unregister(ctx, &name, session_id);
            return Err(Refusal::Runtime(format!("{trap:#}")));
        }
        let capture = Arc::new(Mutex::new(capture));
        if let Ok(mut live) = ctx.live.lock()
            && let Some(entry) = live.get_mut(&name)
            && entry.session_id == session_id
        {
            entry.stats.folder = folder.clone();
            entry.snapshots = snapshots.then(|| {
                Arc::new(crate::serve::snapshot::Snapshots::new(
                    capture.clone(),
                    settings.shortside_px,
                    crate::runtime::jpeg_quality(settings.quality),
                ))
            });
        }
        let mut session = StreamSession {
            ctx: ctx.clone(),
            tenant,
            name,
            session_id,
            generation: ctx.overwrites.next_generation(),
            meta: Arc::new((info, settings)),
            capture,
            span,
            failed: false,
            gate: tokio::sync::watch::Sender::new(0),
            next_attempt: 0,
            warnings: crate::warn_once::WarnOnce::default(),
            extras: Arc::new(Extras {
                features,
                folder,
                state: Mutex::new(ExtrasState::default()),
            }),
            end_reason: None,
            _live_entry: live_entry,
        };
        if let Some(body) = started {
            // The started event takes the first place in the stream's callback order.
            let turn = session.turn();
            session.spawn_callback(body, turn);
        }
        Ok(session)
    }

    /// Say why the session ends (kept for the index and the ended event); the end itself is
    /// the drop.
    pub fn end(&mut self, reason: &'static str) {
        if self.end_reason.is_none() {
            self.end_reason = Some(reason);
        }
    }

    /// Feed one FLV tag. An error means the stream is over (its capture instance trapped).
    pub fn push(&mut self, tag_type: u8, timestamp_ms: u32, body: &[u8]) -> anyhow::Result<()> {
        if self.failed {
            anyhow::bail!("stream {} has failed", self.name);
        }
        tracing::trace!(tag_type, timestamp_ms, bytes = body.len(), "tag");
        let result = {
            let mut capture = self
                .capture
                .lock()
                .map_err(|_| anyhow::anyhow!("capture instance poisoned"))?;
            capture.push_tag(tag_type, timestamp_ms, body)
        };
        self.act(result, i64::from(timestamp_ms))
    }

    /// Feed one coded video frame (the component's container-neutral entry). An error means
    /// the stream is over (its capture instance trapped), as for [`StreamSession::push`].
    pub fn push_frame(&mut self, frame: &crate::runtime::CodedFrame) -> anyhow::Result<()> {
        if self.failed {
            anyhow::bail!("stream {} has failed", self.name);
        }
        tracing::trace!(pts_ms = frame.pts_ms, nals = frame.nal_units.len(), "frame");
        let result = {
            let mut capture = self
                .capture
                .lock()
                .map_err(|_| anyhow::anyhow!("capture instance poisoned"))?;
            capture.push_frame(frame)
        };
        self.act(result, frame.pts_ms)
    }

    /// Do what the capture instance said for the tag or frame stamped `timestamp_ms`.
    fn act(
        &mut self,
        result: anyhow::Result<Result<Action, Failure>>,
        timestamp_ms: i64,
    ) -> anyhow::Result<()> {
        let action = match result {
            Ok(Ok(action)) => action,
            Ok(Err(failure)) => {
                self.ctx
                    .metrics
                    .tags_skipped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let cause = failure.text();
                if self.warnings.first(&cause) {
                    self.span.in_scope(|| tracing::warn!(timestamp_ms, %cause, "tag skipped (further tags with this cause are counted in livesnap_tags_skipped_total, not logged)"));
                }
                return Ok(());
            }
            Err(trap) => {
                self.failed = true;
                self.end("capture failed");
                self.ctx
                    .metrics
                    .streams_failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.span.in_scope(|| tracing::error!(cause = %format!("{trap:#}"), "capture instance trapped: stream stopped"));
                return Err(trap);
            }
        };
        match action {
            Action::None => {}
            Action::Refused(body) => {
                self.ctx.metrics.capture(code_of(&body));
                note_attempt(
                    &self.ctx,
                    &self.name,
                    self.session_id,
                    None,
                    &Outcome::Failed(Failure::new(
                        error_code(code_of(&body)),
                        crate::warn_once::errmsg_of(&body),
                    )),
                    None,
                );
                let cause = crate::warn_once::errmsg_of(&body);
                if self.warnings.first(&cause) {
                    self.span.in_scope(|| tracing::warn!(%cause, "capture refused (further refusals with this cause are counted in livesnap_captures_total, not logged)"));
                }
                let turn = self.turn();
                self.spawn_callback_then_extras(body, Instant::now(), turn);
            }
            Action::Capture(shot) => {
                let turn = self.turn();
                self.spawn_capture(shot, Instant::now(), turn);
            }
        }
        Ok(())
    }

    /// The `app/stream` name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next attempt's place in the callback order.
    fn turn(&mut self) -> Turn {
        let ordinal = self.next_attempt;
        self.next_attempt += 1;
        Turn {
            gate: self.gate.clone(),
            ordinal,
        }
    }

    /// A session event's callback, in its place in the stream's order.
    fn spawn_callback(&self, body: String, turn: Turn) {
        let (ctx, tenant, name) = (self.ctx.clone(), self.tenant.clone(), self.name.clone());
        let task = async move {
            turn.wait().await;
            deliver(&ctx, &tenant, &name, body).await;
            drop(turn);
        };
        self.ctx.tracker.spawn(task.instrument(self.span.clone()));
    }

    /// A refused attempt's callback, then the index refresh it may make due.
    fn spawn_callback_then_extras(&self, body: String, arrived: Instant, turn: Turn) {
        let (ctx, tenant, name) = (self.ctx.clone(), self.tenant.clone(), self.name.clone());
        let (capture, extras) = (self.capture.clone(), self.extras.clone());
        let task = async move {
            turn.wait().await;
            deliver(&ctx, &tenant, &name, body).await;
            after_attempt(&ctx, &tenant, &capture, &extras, None).await;
            drop(turn);
            ctx.metrics.capture_latency(arrived.elapsed(), None);
        };
        self.ctx.tracker.spawn(task.instrument(self.span.clone()));
    }

    /// Render, store and report `shot` in the background; `arrived` is when its I-frame came in.
    fn spawn_capture(&self, shot: Shot, arrived: Instant, turn: Turn) {
        let ctx = self.ctx.clone();
        let tenant = self.tenant.clone();
        let name = self.name.clone();
        let capture = self.capture.clone();
        let extras = self.extras.clone();
        let (session_id, generation, meta) = (self.session_id, self.generation, self.meta.clone());
        let task = async move {
            let rendered = render(&ctx, &shot, &extras.features).await;
            let (picture, tile) = match rendered {
                Ok(Rendered::Plain(picture)) => (Ok(picture), None),
                Ok(Rendered::Judged(r)) => {
                    // Judged in seq order (renders finish out of order): skips, the frozen
                    // reference and storyboard places then follow the stream's order.
                    turn.wait().await;
                    let verdict = match capture.lock() {
                        Ok(mut capture) => capture.judge(shot.seq, &r.analysis),
                        Err(_) => Err(anyhow::anyhow!("capture instance poisoned")),
                    };
                    match verdict {
                        Ok(Ok(Verdict::Skip(reason))) => {
                            ctx.metrics.skip(reason);
                            tracing::info!(seq = shot.seq, ?reason, "shot skipped");
                            return;
                        }
                        Ok(Ok(Verdict::Keep(place))) => (Ok(r.picture), place.zip(r.tile)),
                        Ok(Err(f)) => (Err(f), None),
                        Err(trap) => {
                            // No judge left to ask: keep the picture (no tile), as a session
                            // without features would, so the capture is stored and reported.
                            tracing::error!(seq = shot.seq, cause = %format!("{trap:#}"), "capture instance trapped before judging: shot kept unjudged");
                            (Ok(r.picture), None)
                        }
                    }
                }
                Err(f) => (Err(f), None),
            };
            let outcome = match picture {
                Ok(picture) => {
                    let stamp = (generation, shot.seq);
                    store(
                        &ctx, &tenant, &name, session_id, stamp, &shot, &turn, picture,
                    )
                    .await
                }
                Err(f) => Outcome::Failed(f),
            };
            let code = match &outcome {
                Outcome::Stored(_) => "OK",
                Outcome::Failed(f) => f.code.as_str(),
            };
            ctx.metrics.capture(code);
            let tile = tile.filter(|_| matches!(outcome, Outcome::Stored(_)));
            let sheet = tile.as_ref().map(|(place, _)| place.sheet);
            note_attempt(&ctx, &name, session_id, Some(shot.codec), &outcome, sheet);
            let body = {
                match capture.lock() {
                    Ok(mut capture) => capture.complete(shot.seq, &outcome),
                    Err(_) => Err(anyhow::anyhow!("capture instance poisoned")),
                }
            };
            let body = match body {
                Ok(body) => body,
                Err(trap) => {
                    // The stream's capture instance is gone (its session ends): form the
                    // callback on a fresh instance from the shot alone, byte for byte what
                    // `complete` would have returned (WIT `capture.callback-body`).
                    tracing::warn!(seq = shot.seq, cause = %format!("{trap:#}"), "capture instance gone: callback formed on a fresh instance");
                    let (info, settings) = &*meta;
                    match ctx.runtime.callback_body(
                        info,
                        settings,
                        shot.seq,
                        &shot.key,
                        shot.unix_timestamp,
                        &outcome,
                    ) {
                        Ok(body) => body,
                        Err(e) => {
                            tracing::error!(seq = shot.seq, key = %shot.key, code, cause = %format!("{e:#}"), "no callback could be formed for this shot");
                            return;
                        }
                    }
                }
            };
            match body {
                Ok(body) => {
                    // Renders of one stream may finish out of order; callbacks leave in seq order.
                    turn.wait().await;
                    deliver(&ctx, &tenant, &name, body).await;
                    after_attempt(&ctx, &tenant, &capture, &extras, tile).await;
                    drop(turn);
                    ctx.metrics
                        .capture_latency(arrived.elapsed(), Some(shot.codec));
                }
                Err(f) => {
                    tracing::error!(seq = shot.seq, cause = %f.text(), "capture refused a shot outcome")
                }
            }
        };
        self.ctx.tracker.spawn(task.instrument(self.span.clone()));
    }

    /// The end of the session, after every attempt's callback: the final storyboard, the final
    /// index and the ended event, in the stream's callback order.
    fn spawn_finish(&mut self) {
        let features = &self.extras.features;
        if !(features.index || features.session_callbacks || features.storyboard.is_some()) {
            return;
        }
        let turn = self.turn();
        let reason = self.end_reason.unwrap_or("disconnected");
        let (ctx, tenant, name) = (self.ctx.clone(), self.tenant.clone(), self.name.clone());
        let (capture, extras) = (self.capture.clone(), self.extras.clone());
        let task = async move {
            turn.wait().await;
            let end = SessionEnd {
                ended_ms: now_ms(),
                reason: reason.to_owned(),
            };
            let (index, event, vtt) = {
                let Ok(mut capture) = capture.lock() else {
                    return;
                };
                // The last cue ends at the session's last clock.
                let has_tiles = extras
                    .state
                    .lock()
                    .is_ok_and(|s| !s.sheet.tiles().is_empty());
                let vtt = has_tiles.then(|| capture.storyboard_vtt().ok()).flatten();
                let index = extras
                    .features
                    .index
                    .then(|| capture.index(Some(&end)).ok())
                    .flatten();
                let event = extras
                    .features
                    .session_callbacks
                    .then(|| capture.event_body(&SessionEvent::Ended(end.clone())).ok())
                    .flatten();
                (index, event, vtt)
            };
            if let Some(vtt) = vtt {
                put_document(
                    &ctx,
                    &tenant,
                    &format!("{}storyboard.vtt", extras.folder),
                    vtt,
                )
                .await;
            }
            if let Some(index) = index {
                put_document(
                    &ctx,
                    &tenant,
                    &format!("{}index.json", extras.folder),
                    index,
                )
                .await;
            }
            if let Some(body) = event {
                deliver(&ctx, &tenant, &name, body).await;
            }
            drop(turn);
        };
        self.ctx.tracker.spawn(task.instrument(self.span.clone()));
    }
}

/// A render's answer: the plain picture, or everything `judge` needs.
enum Rendered {
    Plain(Picture),
    Judged(crate::runtime::Rendered),
}

/// Render `shot` in the pool: `render-shot` when a feature needs the analysis or a tile.
async fn render(ctx: &ServeCtx, shot: &Shot, features: &Features) -> Result<Rendered, Failure> {
    let stopped = || Failure::new(ErrorCode::DecodeFailed, "render worker stopped");
    if features.judged() {
        let (shot, tile_width) = (shot.clone(), features.tile_width());
        let rx = ctx
            .pool
            .run(move |runtime, renderer| renderer.render_shot(runtime, &shot, tile_width))?;
        rx.await.map_err(|_| stopped())?.map(Rendered::Judged)
    } else {
        let rx = ctx.pool.submit(shot.clone())?;
        rx.await.map_err(|_| stopped())?.map(Rendered::Plain)
    }
}

/// After an attempt's callback, in the stream's order: add its tile to the storyboard (sheet
/// and WebVTT stored) and refresh the index when `index_every` says so.
async fn after_attempt(
    ctx: &ServeCtx,
    tenant: &TenantConfig,
    capture: &Mutex<CaptureInstance>,
    extras: &Extras,
    tile: Option<(crate::runtime::Placement, crate::runtime::Tile)>,
) {
    let features = &extras.features;
    if !features.judged() {
        return;
    }
    let completed = match extras.state.lock() {
        Ok(mut state) => {
            state.completed += 1;
            if let Some((place, tile)) = tile.as_ref() {
                state.sheet.add(place, tile.clone());
            }
            state.completed
        }
        Err(_) => return,
    };
    if tile.is_some() {
        store_storyboard(ctx, tenant, capture, extras).await;
    }
    if features.index_due(completed) {
        let index = capture.lock().ok().and_then(|mut c| c.index(None).ok());
        if let Some(index) = index {
            put_document(ctx, tenant, &format!("{}index.json", extras.folder), index).await;
        }
    }
}

/// Encode the current sheet in the pool and store it with the WebVTT file.
async fn store_storyboard(
    ctx: &ServeCtx,
    tenant: &TenantConfig,
    capture: &Mutex<CaptureInstance>,
    extras: &Extras,
) {
    let (file, width, height, tiles) = match extras.state.lock() {
        Ok(state) => (
            state.sheet.file_name(),
            state.sheet.size().0,
            state.sheet.size().1,
            state.sheet.tiles().to_vec(),
        ),
        Err(_) => return,
    };
    let quality = crate::runtime::jpeg_quality(tenant.quality.map(|q| q.0));
    let sheet = match ctx.pool.run(move |runtime, renderer| {
        renderer.compose_sheet(runtime, width, height, &tiles, quality)
    }) {
        Ok(rx) => rx.await,
        Err(f) => {
            tracing::warn!(cause = %f.text(), "storyboard sheet not refreshed");
            return;
        }
    };
    match sheet {
        Ok(Ok(sheet)) => {
            let key = format!("{}{file}", extras.folder);
            put_bytes(ctx, tenant, &key, sheet.jpeg.into()).await;
        }
        Ok(Err(f)) => tracing::warn!(cause = %f.text(), "storyboard sheet not composed"),
        Err(_) => return,
    }
    let vtt = capture
        .lock()
        .ok()
        .and_then(|mut c| c.storyboard_vtt().ok());
    if let Some(vtt) = vtt {
        put_document(
            ctx,
            tenant,
            &format!("{}storyboard.vtt", extras.folder),
            vtt,
        )
        .await;
    }
}

async fn put_document(ctx: &ServeCtx, tenant: &TenantConfig, key: &str, text: String) {
    put_bytes(ctx, tenant, key, Bytes::from(text)).await;
}

async fn put_bytes(ctx: &ServeCtx, tenant: &TenantConfig, key: &str, bytes: Bytes) {
    if let Err(e) = ctx.storage.put(&tenant.bucket.0, key, bytes).await {
        tracing::warn!(key = %key, cause = %format!("{e:#}"), "session document not stored");
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl StreamSink for StreamSession {
    fn push_tag(&mut self, tag_type: u8, timestamp_ms: u32, body: &[u8]) -> anyhow::Result<()> {
        self.push(tag_type, timestamp_ms, body)
    }

    fn push_frame(&mut self, frame: &crate::runtime::CodedFrame) -> anyhow::Result<()> {
        StreamSession::push_frame(self, frame)
    }

    fn end(&mut self, reason: &'static str) {
        StreamSession::end(self, reason);
    }

    fn name(&self) -> &str {
        StreamSession::name(self)
    }
}

impl Drop for StreamSession {
    fn drop(&mut self) {
        self.spawn_finish();
        unregister(&self.ctx, &self.name, self.session_id);
        self.span.in_scope(|| tracing::info!("session ended"));
    }
}

/// Count an attempt's outcome in the live entry (wall page).
fn note_attempt(
    ctx: &ServeCtx,
    name: &str,
    session_id: u32,
    codec: Option<crate::runtime::Codec>,
    outcome: &Outcome,
    sheet: Option<u32>,
) {
    let Ok(mut live) = ctx.live.lock() else {
        return;
    };
    let Some(entry) = live.get_mut(name).filter(|e| e.session_id == session_id) else {
        return;
    };
    let stats = &mut entry.stats;
    if let Some(codec) = codec {
        stats.codec = Some(match codec {
            crate::runtime::Codec::Avc => "h264",
            crate::runtime::Codec::Hevc => "hevc",
        });
    }
    stats.last_attempt_ms = Some(now_ms());
    match outcome {
        Outcome::Stored(size) => {
            stats.stored += 1;
            stats.failing = 0;
            stats.size = Some(*size);
        }
        Outcome::Failed(f) => {
            stats.failed += 1;
            stats.failing += 1;
            stats.last_error = Some(f.text());
        }
    }
    if sheet.is_some() {
        stats.sheet = sheet;
    }
}

/// The error code named by a callback `code` string.
fn error_code(code: &str) -> ErrorCode {
    match code {
        "UnsupportedStream" => ErrorCode::UnsupportedStream,
        "UploadFailed" => ErrorCode::UploadFailed,
        "Timeout" => ErrorCode::Timeout,
        "LimitExceeded" => ErrorCode::LimitExceeded,
        _ => ErrorCode::DecodeFailed,
    }
}

fn unregister(ctx: &ServeCtx, name: &str, session_id: u32) {
    if let Ok(mut live) = ctx.live.lock()
        && live.get(name).is_some_and(|l| l.session_id == session_id)
    {
        live.remove(name);
    }
}

/// Store `shot`'s picture. In overwrite mode every shot has the same key, so the store waits for
/// the stream's earlier shots, and across sessions it is written only if no later session's
/// picture (higher `stamp`: session generation, seq) is there already: the object is always the
/// newest picture, never an older render that happened to finish last. A superseded store is
/// reported as stored (the key holds a newer picture of the stream, as overwrite mode promises).
/// In cluster mode a store is also not written once the stream's name is registered to another
/// session (a reconnect to another node): JetStream is asked just before the put, so the window
/// left is the put itself.
#[allow(
    clippy::too_many_arguments,
    reason = "a capture's context, passed as is from the capture task"
)]
async fn store(
    ctx: &ServeCtx,
    tenant: &TenantConfig,
    name: &str,
    session_id: u32,
    stamp: (u64, u32),
    shot: &Shot,
    turn: &Turn,
    picture: Picture,
) -> Outcome {
    let jpeg = Bytes::from(picture.jpeg);
    let size = (picture.width_px, picture.height_px);
    if tenant.overwrite {
        turn.wait().await;
        let slot = ctx
            .overwrites
            .slot(&format!("{}/{}", tenant.bucket.0, shot.key));
        let mut newest = slot.stamp.lock().await;
        if *newest > stamp {
            tracing::info!(key = %shot.key, "a later session's picture is stored already: this late render is not written");
            return Outcome::Stored(size);
        }
        // In a cluster the later session may be on another node: the name's registry entry
        // belongs to it.
        if let (Some(cluster), Some((app, stream))) = (&ctx.cluster, name.split_once('/'))
            && cluster
                .registry()
                .taken_by_another(app, stream, session_id)
                .await
        {
            tracing::info!(key = %shot.key, "the stream is live again in a later session (on another node): this late render is not written");
            return Outcome::Stored(size);
        }
        if let Err(outcome) = put_shot(ctx, tenant, shot, jpeg.clone()).await {
            return outcome;
        }
        *newest = stamp;
    } else if let Err(outcome) = put_shot(ctx, tenant, shot, jpeg.clone()).await {
        return outcome;
    }
    tracing::info!(key = %shot.key, width = picture.width_px, height = picture.height_px, "shot stored");
    if let Ok(mut live) = ctx.live.lock() {
        offer_latest(&mut live, name, session_id, shot.seq, jpeg);
    }
    Outcome::Stored(size)
}

/// Put a shot's JPEG; the failed outcome if storage refused it.
async fn put_shot(
    ctx: &ServeCtx,
    tenant: &TenantConfig,
    shot: &Shot,
    jpeg: Bytes,
) -> Result<(), Outcome> {
    ctx.storage
        .put(&tenant.bucket.0, &shot.key, jpeg)
        .await
        .map_err(|e| {
            tracing::warn!(key = %shot.key, cause = %format!("{e:#}"), "upload failed");
            Outcome::Failed(Failure::new(ErrorCode::UploadFailed, format!("{e:#}")))
        })
}

/// Make `jpeg` (shot `seq` of `session_id`) the latest picture of `name` if that session is still
/// live and nothing newer is there: renders run in parallel and may finish out of order.
fn offer_latest(
    live: &mut HashMap<String, LiveStream>,
    name: &str,
    session_id: u32,
    seq: u32,
    jpeg: Bytes,
) {
    if let Some(entry) = live.get_mut(name)
        && entry.session_id == session_id
        && entry.latest.as_ref().is_none_or(|l| l.seq < seq)
    {
        entry.latest = Some(LatestPicture {
            seq,
            jpeg,
            etag: format!("\"{session_id:08x}-{seq}\""),
        });
    }
}

/// Queue a callback body for the tenant's URL (durably), or log it when none is configured.
async fn deliver(ctx: &ServeCtx, tenant: &TenantConfig, name: &str, body: String) {
    let Some(url) = &tenant.callback_url else {
        tracing::debug!(%body, "callback (no callback_url configured)");
        return;
    };
    let target = Target {
        url: url.0.clone(),
        secret: tenant.callback_secret.clone(),
    };
    let queued = match &ctx.cluster {
        Some(cluster) => cluster.enqueue(&target, name, body).await,
        None => ctx.callbacks.enqueue(&target, name, body).await,
    };
    if let Err(e) = queued {
        tracing::error!(cause = %format!("{e:#}"), "could not spool a callback");
    }
}

/// The `code` field of a callback body (bodies come from the guest, so the shape is known).
fn code_of(body: &str) -> &'static str {
    crate::serve::metrics::CODES
        .iter()
        .find(|c| body.contains(&format!("\"code\":\"{c}\"")))
        .copied()
        .unwrap_or("DecodeFailed")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live_with(session_id: u32) -> HashMap<String, LiveStream> {
        HashMap::from([("live/cam".to_owned(), LiveStream::new(session_id, 0))])
    }

    #[test]
    fn a_render_that_finishes_late_never_replaces_a_newer_picture() {
        let mut live = live_with(7);
        let jpeg = |b: &'static [u8]| Bytes::from_static(b);
        offer_latest(&mut live, "live/cam", 7, 3, jpeg(b"three"));
        offer_latest(&mut live, "live/cam", 7, 2, jpeg(b"two"));
        let latest = live["live/cam"].latest.clone().unwrap();
        assert_eq!((latest.seq, &latest.jpeg[..]), (3, &b"three"[..]));
        assert_eq!(latest.etag, "\"00000007-3\"");
        offer_latest(&mut live, "live/cam", 7, 4, jpeg(b"four"));
        assert_eq!(live["live/cam"].latest.as_ref().unwrap().seq, 4);
    }

    #[test]
    fn publish_keys_match_only_when_equal() {
        assert!(keys_match("abc", "abc"));
        assert!(!keys_match("abd", "abc") && !keys_match("ab", "abc") && !keys_match("", "abc"));
    }

    #[test]
    fn a_picture_of_an_ended_session_is_not_offered_to_the_next_one() {
        let mut live = live_with(8);
        offer_latest(&mut live, "live/cam", 7, 9, Bytes::from_static(b"old"));
        offer_latest(&mut live, "live/other", 8, 1, Bytes::from_static(b"x"));
        assert!(live["live/cam"].latest.is_none());
        assert!(!live.contains_key("live/other"));
    }
}
