//! One stream's capture session (DESIGN.md "The product rules"): feeds tags through the session
//! clock, applies the interval rule to I-frames found by slice type, names the shot and formats
//! its callback once the host reports the outcome.

use crate::avc::{AvcConfig, FrameKind};
use crate::callback::{Callback, CallbackContext};
use crate::clock::SessionClock;
use crate::error::{ErrorCode, Failure};
use crate::flv::{self, ColorConfig, VideoCodec, VideoTag};
use crate::frame::{Frame, ParamTracker};
use crate::hevc::{self, HevcConfig};
use crate::index::{Entry, EventJson, IndexContext, IndexLog, Skip};
use crate::naming::{KeyMode, Name, SessionNames};
use crate::storyboard::{Placement, Storyboard, StoryboardSettings};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Longest allowed interval, in seconds.
pub const MAX_INTERVAL_S: u32 = 3600;
/// JPEG quality when none is configured.
pub const DEFAULT_JPEG_QUALITY: u8 = 80;
/// Shots handed out but not yet completed, at most. The host completes each before long; more
/// means it stopped doing so, and holding more would grow without bound.
pub const MAX_PENDING_SHOTS: usize = 64;

/// Who is pushing: the session's identity, from the host.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// App name (checked).
    pub app: String,
    /// Stream name (checked).
    pub stream: String,
    /// Unix ms when the push started.
    pub push_start_ms: u64,
    /// Random session id.
    pub session_id: u32,
}

/// The tenant's capture settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Minimum seconds between captures, 1..=3600.
    pub interval_s: u32,
    /// Key naming mode.
    pub mode: KeyMode,
    /// Short side to scale to, if configured (>= 1).
    pub shortside_px: Option<u32>,
    /// Quality step 1..=10, if configured.
    pub quality: Option<u8>,
    /// Bucket name.
    pub bucket: String,
    /// Tenant name.
    pub uniqname: String,
    /// Where the host serves the latest picture, if it does.
    pub alterurl: Option<String>,
}

/// An I-frame to render and store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shot {
    /// Attempt number, 1, 2, … per session.
    pub seq: u32,
    /// Object key.
    pub key: String,
    /// UnixTimestamp, seconds.
    pub unix_timestamp: u64,
    /// Session clock of the frame, ms.
    pub clock_ms: u64,
    /// Stream presentation time (tag timestamp + composition offset), ms.
    pub pts_ms: i64,
    /// The codec of `config` and `access_unit`: AVC or HEVC.
    pub codec: VideoCodec,
    /// AVCDecoderConfigurationRecord or HEVCDecoderConfigurationRecord in force.
    pub config: Vec<u8>,
    /// The frame, AVCC framed.
    pub access_unit: Vec<u8>,
    /// Render: short side.
    pub shortside_px: Option<u32>,
    /// Render: JPEG quality 1..=100.
    pub jpeg_quality: u8,
    /// Render: the colour description of the stream's newest `colorInfo` Metadata packet, if
    /// it sent one (fills in what the SPS VUI leaves unspecified).
    pub color: Option<ColorConfig>,
}

/// What the host does after a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing.
    None,
    /// Render, store, then `complete`.
    Capture(Shot),
    /// A due I-frame that cannot be rendered: its status-4 callback body.
    Refused(String),
}

/// What became of a shot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored: JPEG width and height.
    Stored(u32, u32),
    /// Not stored.
    Failed(Failure),
}

/// Optional per-session features (WIT `session-options`); all off by default.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The host writes `index.json`; the ended event names it.
    pub index: bool,
    /// Withdraw blank pictures.
    pub skip_blank: bool,
    /// Withdraw pictures equal to the previous stored one.
    pub skip_frozen: bool,
    /// Sprite sheet geometry, when a storyboard is made.
    pub storyboard: Option<StoryboardSettings>,
}

/// What a render found (WIT `analysis`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    /// JPEG bytes.
    pub jpeg_bytes: u64,
    /// JPEG width.
    pub width: u32,
    /// JPEG height.
    pub height: u32,
    /// Blank by [`crate::analysis`]'s rule.
    pub blank: bool,
    /// The frozen-picture signature.
    pub signature: Vec<u8>,
    /// The storyboard tile's size, if one was made.
    pub tile: Option<(u32, u32)>,
}

/// Why a shot was withdrawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Near-uniform luma.
    Blank,
    /// Same as the previous stored picture.
    Frozen,
}

impl SkipReason {
    /// "blank" or "frozen".
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Blank => "blank",
            SkipReason::Frozen => "frozen",
        }
    }
}

/// `judge`'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Store it; the storyboard tile's place, if any.
    Keep(Option<Placement>),
    /// Withdrawn.
    Skip(SkipReason),
}

/// A session event (WIT `session-event`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// Push start.
    Started,
    /// The end: Unix ms and reason.
    Ended {
        /// Unix ms.
        ended_ms: u64,
        /// Why.
        reason: String,
    },
}

/// The newest I-frame of a session, kept for on-demand snapshots (WIT `iframe`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iframe {
    /// I-frames seen since keeping started, this one included: names the frame.
    pub number: u64,
    /// Session clock, ms.
    pub clock_ms: u64,
    /// Stream presentation time, ms.
    pub pts_ms: i64,
    /// AVC or HEVC.
    pub codec: VideoCodec,
    /// The decoder configuration record in force.
    pub config: Vec<u8>,
    /// The frame, AVCC framed.
    pub access_unit: Vec<u8>,
    /// The stream's `colorInfo` in force (see [`Shot::color`]).
    pub color: Option<ColorConfig>,
}

/// The decoder configuration in force: the last valid sequence header's.
#[derive(Debug)]
enum CodecConfig {
    Avc(AvcConfig),
    Hevc(HevcConfig),
}

impl CodecConfig {
    fn codec(&self) -> VideoCodec {
        match self {
            CodecConfig::Avc(_) => VideoCodec::Avc,
            CodecConfig::Hevc(_) => VideoCodec::Hevc,
        }
    }

    fn record(&self) -> &[u8] {
        match self {
            CodecConfig::Avc(c) => c.record(),
            CodecConfig::Hevc(c) => c.record(),
        }
    }

    fn refusal(&self) -> Option<&Failure> {
        match self {
            CodecConfig::Avc(c) => c.refusal(),
            CodecConfig::Hevc(c) => c.refusal(),
        }
    }

    fn is_intra(&mut self, access_unit: &[u8]) -> Result<bool, Failure> {
        Ok(match self {
            CodecConfig::Avc(c) => c.classify(access_unit)? == FrameKind::Intra,
            CodecConfig::Hevc(c) => c.classify(access_unit)? == hevc::FrameKind::Intra,
        })
    }

    /// [`CodecConfig::is_intra`] leaving the configuration as it is (frames that are not due).
    fn peek_intra(&self, access_unit: &[u8]) -> Result<bool, Failure> {
        Ok(match self {
            CodecConfig::Avc(c) => c.peek(access_unit)? == FrameKind::Intra,
            CodecConfig::Hevc(c) => c.peek(access_unit)? == hevc::FrameKind::Intra,
        })
    }
}

/// A shot awaiting its outcome.
#[derive(Debug, Clone)]
struct Pending {
    key: String,
    unix_timestamp: u64,
    clock_ms: u64,
    /// `last_attempt_ms` before this shot: restored when the shot is withdrawn.
    previous_attempt_ms: Option<u64>,
    /// JPEG bytes, once judged.
    bytes: u64,
}

/// One stream's capture session.
#[derive(Debug)]
pub struct Session {
    names: SessionNames,
    settings: Settings,
    clock: SessionClock,
    /// The decoder configuration in force; `None` before the first valid sequence header.
    config: Option<CodecConfig>,
    /// Clock of the last capture attempt; `None` until the first, which is always due.
    last_attempt_ms: Option<u64>,
    /// Seq of the previous attempt (0 before any).
    last_seq: u32,
    pending: BTreeMap<u32, Pending>,
    options: Options,
    index: IndexLog,
    storyboard: Option<Storyboard>,
    /// Signature of the last kept picture, for `skip_frozen`.
    last_signature: Option<Vec<u8>>,
    /// Newest video clock seen, ms.
    latest_clock_ms: u64,
    /// Keep the newest I-frame (on-demand snapshots); off by default.
    keep_iframes: bool,
    /// I-frames seen while keeping.
    iframes_seen: u64,
    last_iframe: Option<Iframe>,
    /// The newest `colorInfo` Metadata packet's colour description.
    color: Option<ColorConfig>,
    /// Parameter sets of a frame-fed session ([`Session::push_frame`]).
    frame_params: ParamTracker,
}

/// The callback body [`Session::complete`] returns for shot `seq` of the session `info` with
/// `settings`, from the shot's key and timestamp alone (no session state): a host whose capture
/// instance is gone still reports every stored or failed shot, byte for byte as `complete` would.
pub fn callback_body(
    info: SessionInfo,
    settings: Settings,
    seq: u32,
    key: &str,
    unix_timestamp: u64,
    outcome: Outcome,
) -> Result<String, Failure> {
    let session = Session::new(info, settings)?;
    Ok(session.callback_json(seq, key, unix_timestamp, &outcome))
}

impl Session {
    /// Start a session, checking names and settings.
    pub fn new(info: SessionInfo, settings: Settings) -> Result<Session, Failure> {
        Session::with_options(info, settings, Options::default())
    }

    /// Start a session with optional features.
    pub fn with_options(
        info: SessionInfo,
        settings: Settings,
        options: Options,
    ) -> Result<Session, Failure> {
        if let Some(board) = &options.storyboard {
            board.check()?;
        }
        let app = Name::parse("app", &info.app)?;
        let stream = Name::parse("stream", &info.stream)?;
        Name::parse("bucket", &settings.bucket)?;
        if !(1..=MAX_INTERVAL_S).contains(&settings.interval_s) {
            return Err(Failure::limit(format!(
                "interval {} s is outside 1..={MAX_INTERVAL_S}",
                settings.interval_s
            )));
        }
        if let Some(q) = settings.quality
            && !(1..=10).contains(&q)
        {
            return Err(Failure::limit(format!("quality {q} is outside 1..=10")));
        }
        if settings.shortside_px == Some(0) {
            return Err(Failure::limit(
                "shortside 0 px is not allowed: it must be at least 1",
            ));
        }
        Ok(Session {
            names: SessionNames {
                app,
                stream,
                push_start_ms: info.push_start_ms,
                session_id: info.session_id,
            },
            settings,
            clock: SessionClock::default(),
            config: None,
            last_attempt_ms: None,
            last_seq: 0,
            pending: BTreeMap::new(),
            storyboard: options.storyboard.map(Storyboard::new),
            options,
            index: IndexLog::default(),
            last_signature: None,
            latest_clock_ms: 0,
            keep_iframes: false,
            iframes_seen: 0,
            last_iframe: None,
            color: None,
            frame_params: ParamTracker::default(),
        })
    }

    /// Feed one FLV tag. Errors describe a tag that could not be used; the session goes on.
    pub fn push_tag(
        &mut self,
        tag_type: u8,
        timestamp_ms: u32,
        body: &[u8],
    ) -> Result<Action, Failure> {
        if tag_type != flv::TAG_VIDEO {
            self.clock.observe(timestamp_ms);
            return Ok(Action::None);
        }
        let clock_ms = self.clock.video(timestamp_ms);
        self.latest_clock_ms = self.latest_clock_ms.max(clock_ms);
        match flv::parse_video(body)? {
            VideoTag::SequenceHeader { codec, record } => {
                // A broken header must not leave the previous one in force: frames of the new
                // resolution would be decoded with the old parameter sets.
                self.config = None;
                self.config = match codec {
                    VideoCodec::Avc => Some(CodecConfig::Avc(AvcConfig::parse(record)?)),
                    VideoCodec::Hevc => Some(CodecConfig::Hevc(HevcConfig::parse(record)?)),
                    // Not parsed: its frames are refused at each due keyframe.
                    VideoCodec::Av1 | VideoCodec::Vp9 => None,
                };
                Ok(Action::None)
            }
            VideoTag::Nalu {
                codec,
                keyframe_hint,
                composition_ms,
                data,
            } => {
                let pts_ms = i64::from(timestamp_ms) + i64::from(composition_ms);
                self.video_frame(codec, keyframe_hint, clock_ms, pts_ms, || Ok(data.into()))
            }
            VideoTag::Metadata { color: Some(color) } => {
                self.color = Some(color);
                Ok(Action::None)
            }
            VideoTag::EndOfSequence | VideoTag::Command | VideoTag::Metadata { color: None } => {
                Ok(Action::None)
            }
        }
    }

    /// Feed one coded video frame (the container-neutral entry, [`crate::frame`]). The clock,
    /// the interval rule, the I-frame test and everything after are the ones FLV video tags
    /// go through: the same frames give the same actions whichever entry fed them.
    pub fn push_frame(&mut self, frame: &Frame<'_>) -> Result<Action, Failure> {
        let clock_ms = self.clock.video(frame.dts_ms);
        self.latest_clock_ms = self.latest_clock_ms.max(clock_ms);
        if !frame.codec.is_decoded() {
            return Err(Failure::unsupported(format!(
                "{} frames are not supported through push-frame",
                frame.codec.name()
            )));
        }
        match self.frame_params.update(frame) {
            Ok(Some(record)) => {
                // As for a new sequence header: a broken configuration leaves none in force.
                self.config = None;
                self.config = Some(match frame.codec {
                    VideoCodec::Hevc => CodecConfig::Hevc(HevcConfig::parse(&record)?),
                    _ => CodecConfig::Avc(AvcConfig::parse(&record)?),
                });
            }
            Ok(None) => {}
            Err(failure) => {
                self.config = None;
                return Err(failure);
            }
        }
        let access_unit = || crate::frame::access_unit(frame.nal_units).map(Cow::Owned);
        if frame.damaged {
            return self.damaged_frame(frame.codec, clock_ms, frame.pts_ms, &access_unit()?);
        }
        self.video_frame(frame.codec, false, clock_ms, frame.pts_ms, access_unit)
    }

    /// A frame the transport lost part of: never kept, never decoded. When the slices that
    /// arrived make it a due I-frame, the attempt fails (`DecodeFailed`) and the interval
    /// starts, as for an I-frame that does not decode.
    fn damaged_frame(
        &mut self,
        codec: VideoCodec,
        clock_ms: u64,
        pts_ms: i64,
        access_unit: &[u8],
    ) -> Result<Action, Failure> {
        if !self.is_due(clock_ms) {
            return Ok(Action::None);
        }
        let Some(config) = self.config.as_mut().filter(|c| c.codec() == codec) else {
            return Ok(Action::None);
        };
        // Classified without taking its in-band parameter sets: they may be cut.
        if !config.peek_intra(access_unit).unwrap_or(false) {
            return Ok(Action::None);
        }
        let failure = Failure::decode(
            "the i-frame is incomplete: the transport lost part of it (rtp packets missing)",
        );
        Ok(self.attempt(clock_ms, pts_ms, codec, Vec::new(), &[], Some(failure)))
    }

    /// A video frame at `clock_ms`, whichever entry brought it. `data` gives the access unit
    /// (AVCC framed); it is only asked for when the frame is due or kept.
    fn video_frame<'d>(
        &mut self,
        codec: VideoCodec,
        keyframe_hint: bool,
        clock_ms: u64,
        pts_ms: i64,
        data: impl FnOnce() -> Result<Cow<'d, [u8]>, Failure>,
    ) -> Result<Action, Failure> {
        if !self.is_due(clock_ms) {
            if self.keep_iframes {
                let data = data()?;
                self.keep_if_intra(codec, clock_ms, pts_ms, &data);
            }
            return Ok(Action::None);
        }
        if !codec.is_decoded() {
            // The FLV frame type is the only keyframe hint for a codec we do not parse
            // (DESIGN.md "Which frames"): each due one gets its status-4 callback.
            if !keyframe_hint {
                return Ok(Action::None);
            }
            let refusal = Failure::unsupported(format!(
                "{} video is not supported: livesnap decodes only h.264 (avc) and h.265 \
                 (hevc); publish one of those to get screenshots",
                codec.name()
            ));
            return Ok(self.attempt(clock_ms, pts_ms, codec, Vec::new(), &[], Some(refusal)));
        }
        let Some(config) = self.config.as_mut() else {
            return Err(Failure::decode(format!(
                "{} video frame before any sequence header",
                codec.name()
            )));
        };
        if config.codec() != codec {
            return Err(Failure::decode(format!(
                "{} video frame while a {} sequence header is in force",
                codec.name(),
                config.codec().name()
            )));
        }
        let data = data()?;
        if !config.is_intra(&data)? {
            return Ok(Action::None);
        }
        let refusal = config.refusal().cloned();
        let record = config.record().to_vec();
        if self.keep_iframes && refusal.is_none() {
            self.keep(clock_ms, pts_ms, codec, record.clone(), &data);
        }
        Ok(self.attempt(clock_ms, pts_ms, codec, record, &data, refusal))
    }

    /// Report what became of shot `seq`; returns its callback body.
    pub fn complete(&mut self, seq: u32, outcome: Outcome) -> Result<String, Failure> {
        let Some(pending) = self.pending.remove(&seq) else {
            return Err(Failure::new(
                ErrorCode::DecodeFailed,
                format!("no outstanding shot with seq {seq}"),
            ));
        };
        let body = self.callback_json(seq, &pending.key, pending.unix_timestamp, &outcome);
        let entry = match outcome {
            Outcome::Stored(w, h) => Entry {
                status: crate::callback::STATUS_OK,
                code: "OK",
                timestamp: pending.unix_timestamp,
                clock_ms: pending.clock_ms,
                width: w,
                height: h,
                bytes: pending.bytes,
            },
            Outcome::Failed(failure) => Entry {
                status: crate::callback::STATUS_FAILED,
                code: failure.code.as_str(),
                timestamp: pending.unix_timestamp,
                clock_ms: pending.clock_ms,
                width: 0,
                height: 0,
                bytes: 0,
            },
        };
        self.index.complete(seq, entry);
        Ok(body)
    }

    /// The callback body of shot `seq` stored at `key` (or failed) at `unix_timestamp`.
    fn callback_json(&self, seq: u32, key: &str, unix_timestamp: u64, outcome: &Outcome) -> String {
        let ctx = self.callback_context(seq, key, unix_timestamp);
        match outcome {
            Outcome::Stored(w, h) => Callback::stored(ctx, *w, *h),
            Outcome::Failed(failure) => Callback::failed(ctx, failure),
        }
        .to_json()
    }

    /// Before shot `seq` is stored: what its render found decides whether it is kept (and
    /// where its storyboard tile goes) or withdrawn by a skip option. A withdrawn shot is gone:
    /// no callback, and when it is the newest attempt the interval rule forgets it (its seq is
    /// given to the next shot and the next I-frame is due).
    pub fn judge(&mut self, seq: u32, judged: Judged) -> Result<Verdict, Failure> {
        let Some(pending) = self.pending.get_mut(&seq) else {
            return Err(Failure::new(
                ErrorCode::DecodeFailed,
                format!("no outstanding shot with seq {seq}"),
            ));
        };
        let frozen = self.options.skip_frozen
            && self
                .last_signature
                .as_deref()
                .is_some_and(|last| crate::analysis::same_picture(last, &judged.signature));
        let skip = if self.options.skip_blank && judged.blank {
            Some(SkipReason::Blank)
        } else if frozen {
            Some(SkipReason::Frozen)
        } else {
            None
        };
        if let Some(reason) = skip {
            let (clock_ms, timestamp, previous) = (
                pending.clock_ms,
                pending.unix_timestamp,
                pending.previous_attempt_ms,
            );
            self.pending.remove(&seq);
            if seq == self.last_seq {
                self.last_seq -= 1;
                self.last_attempt_ms = previous;
            }
            self.index.skip(Skip {
                clock_ms,
                timestamp,
                reason: reason.as_str(),
            });
            return Ok(Verdict::Skip(reason));
        }
        pending.bytes = judged.jpeg_bytes;
        let clock_ms = pending.clock_ms;
        self.last_signature = Some(judged.signature);
        let placement = match (&mut self.storyboard, judged.tile) {
            (Some(board), Some((w, h))) => Some(board.place(clock_ms, w, h)),
            _ => None,
        };
        Ok(Verdict::Keep(placement))
    }

    /// The session folder (`index.json`, storyboard), ending in `/`.
    pub fn folder(&self) -> String {
        self.names.folder(self.settings.mode)
    }

    /// `index.json` as it stands; `end` (Unix ms, reason) once the session is over.
    pub fn index_json(&self, end: Option<(u64, &str)>) -> String {
        let folder = self.folder();
        self.index.to_json(&IndexContext {
            names: &self.names,
            mode: self.settings.mode,
            uniqname: &self.settings.uniqname,
            bucket: &self.settings.bucket,
            folder: &folder,
            sheets: self.storyboard.as_ref().map(Storyboard::sheets),
            end,
        })
    }

    /// The newest video clock seen, ms.
    pub fn clock_ms(&self) -> u64 {
        self.latest_clock_ms
    }

    /// `storyboard.vtt` as it stands; empty without a storyboard.
    pub fn storyboard_vtt(&self) -> String {
        self.storyboard
            .as_ref()
            .map(|b| b.vtt(self.latest_clock_ms))
            .unwrap_or_default()
    }

    /// The `LiveSnapShotSession` body of `event`.
    pub fn event_body(&self, event: &SessionEvent) -> String {
        let names = &self.names;
        let (event_name, ended_ms, reason) = match event {
            SessionEvent::Started => ("started", None, None),
            SessionEvent::Ended { ended_ms, reason } => {
                ("ended", Some(*ended_ms), Some(reason.as_str()))
            }
        };
        let ended = ended_ms.is_some();
        let body = EventJson {
            kind: "LiveSnapShotSession",
            event: event_name,
            session: format!(
                "{}/{}/{}-{}",
                names.app, names.stream, names.push_start_ms, names.session_id
            ),
            app: names.app.as_str(),
            stream_name: names.stream.as_str(),
            uniqname: &self.settings.uniqname,
            bucket: &self.settings.bucket,
            push_start_ms: names.push_start_ms,
            session_id: names.session_id,
            timestamp: ended_ms.unwrap_or(names.push_start_ms) / 1000,
            ended_ms,
            reason,
            attempts: ended.then(|| self.index.attempts()),
            stored: ended.then(|| self.index.stored()),
            failed: ended.then(|| self.index.attempts() - self.index.stored()),
            skipped: ended.then(|| self.index.skipped("blank") + self.index.skipped("frozen")),
            index: (ended && self.options.index).then(|| format!("{}index.json", self.folder())),
        };
        serde_json::to_string(&body).unwrap_or_default()
    }

    /// Keep the newest I-frame from now on (`true`), or stop and drop it (`false`).
    pub fn keep_last_iframe(&mut self, keep: bool) {
        self.keep_iframes = keep;
        if !keep {
            self.last_iframe = None;
        }
    }

    /// The newest I-frame seen while keeping, if any.
    pub fn last_iframe(&self) -> Option<&Iframe> {
        self.last_iframe.as_ref()
    }

    /// A frame that is not due: kept when it is a renderable I-frame of the configuration in
    /// force. Anything wrong with it is left to the capture rule (nothing is reported here).
    fn keep_if_intra(&mut self, codec: VideoCodec, clock_ms: u64, pts_ms: i64, data: &[u8]) {
        let Some(config) = self.config.as_ref() else {
            return;
        };
        if config.codec() != codec || config.refusal().is_some() {
            return;
        }
        if config.peek_intra(data) == Ok(true) {
            let record = config.record().to_vec();
            self.keep(clock_ms, pts_ms, codec, record, data);
        }
    }

    fn keep(&mut self, clock_ms: u64, pts_ms: i64, codec: VideoCodec, config: Vec<u8>, au: &[u8]) {
        self.iframes_seen += 1;
        self.last_iframe = Some(Iframe {
            number: self.iframes_seen,
            clock_ms,
            pts_ms,
            codec,
            config,
            access_unit: au.to_vec(),
            color: self.color,
        });
    }

    /// The interval rule: the first I-frame is always due; after an attempt at clock `c`, the
    /// next is the first I-frame with `clock >= c + interval` (inclusive).
    fn is_due(&self, clock_ms: u64) -> bool {
        let interval_ms = u64::from(self.settings.interval_s) * 1000;
        self.last_attempt_ms
            .is_none_or(|last| clock_ms >= last.saturating_add(interval_ms))
    }

    /// Count an attempt on an I-frame at `clock_ms` and say what to do with it.
    fn attempt(
        &mut self,
        clock_ms: u64,
        pts_ms: i64,
        codec: VideoCodec,
        config: Vec<u8>,
        access_unit: &[u8],
        refusal: Option<Failure>,
    ) -> Action {
        // A failed attempt still starts the next interval (DESIGN.md "Interval").
        let previous_attempt_ms = self.last_attempt_ms.replace(clock_ms);
        self.index.codec(codec);
        self.last_seq = self.last_seq.saturating_add(1);
        let seq = self.last_seq;
        let unix_timestamp = self.names.unix_timestamp(clock_ms);
        let key = self.names.key(self.settings.mode, unix_timestamp);
        let refusal = refusal.or_else(|| {
            (self.pending.len() >= MAX_PENDING_SHOTS).then(|| {
                Failure::limit(format!(
                    "{MAX_PENDING_SHOTS} captures of this stream are already in flight"
                ))
            })
        });
        if let Some(failure) = refusal {
            self.index.complete(
                seq,
                Entry {
                    status: crate::callback::STATUS_FAILED,
                    code: failure.code.as_str(),
                    timestamp: unix_timestamp,
                    clock_ms,
                    width: 0,
                    height: 0,
                    bytes: 0,
                },
            );
            let ctx = self.callback_context(seq, &key, unix_timestamp);
            return Action::Refused(Callback::failed(ctx, &failure).to_json());
        }
        self.pending.insert(
            seq,
            Pending {
                key: key.clone(),
                unix_timestamp,
                clock_ms,
                previous_attempt_ms,
                bytes: 0,
            },
        );
        Action::Capture(Shot {
            seq,
            key,
            unix_timestamp,
            clock_ms,
            pts_ms,
            codec,
            config,
            access_unit: access_unit.to_vec(),
            shortside_px: self.settings.shortside_px,
            jpeg_quality: self
                .settings
                .quality
                .map_or(DEFAULT_JPEG_QUALITY, |q| q.saturating_mul(10)),
            color: self.color,
        })
    }

    fn callback_context<'a>(
        &'a self,
        seq: u32,
        key: &'a str,
        unix_timestamp: u64,
    ) -> CallbackContext<'a> {
        CallbackContext {
            taskid: self.names.taskid(seq),
            key,
            uniqname: &self.settings.uniqname,
            stream_name: self.names.stream.as_str(),
            timestamp: unix_timestamp,
            bucket: &self.settings.bucket,
            shortside: self.settings.shortside_px,
            quality: self.settings.quality,
            alterurl: self.settings.alterurl.as_deref(),
        }
    }
}
