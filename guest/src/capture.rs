//! One stream's capture session (DESIGN.md "The product rules"): feeds tags through the session
//! clock, applies the interval rule to I-frames found by slice type, names the shot and formats
//! its callback once the host reports the outcome.

use crate::avc::{AvcConfig, FrameKind};
use crate::callback::{Callback, CallbackContext};
use crate::clock::SessionClock;
use crate::error::{ErrorCode, Failure};
use crate::flv::{self, VideoCodec, VideoTag};
use crate::hevc::{self, HevcConfig};
use crate::naming::{KeyMode, Name, SessionNames};
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
}

/// A shot awaiting its outcome.
#[derive(Debug, Clone)]
struct Pending {
    key: String,
    unix_timestamp: u64,
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
}

impl Session {
    /// Start a session, checking names and settings.
    pub fn new(info: SessionInfo, settings: Settings) -> Result<Session, Failure> {
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
                if !self.is_due(clock_ms) {
                    return Ok(Action::None);
                }
                let pts_ms = i64::from(timestamp_ms) + i64::from(composition_ms);
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
                    return Ok(self.attempt(
                        clock_ms,
                        pts_ms,
                        codec,
                        Vec::new(),
                        &[],
                        Some(refusal),
                    ));
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
                if !config.is_intra(data)? {
                    return Ok(Action::None);
                }
                let refusal = config.refusal().cloned();
                let record = config.record().to_vec();
                Ok(self.attempt(clock_ms, pts_ms, codec, record, data, refusal))
            }
            VideoTag::EndOfSequence | VideoTag::Command | VideoTag::Metadata => Ok(Action::None),
        }
    }

    /// Report what became of shot `seq`; returns its callback body.
    pub fn complete(&mut self, seq: u32, outcome: Outcome) -> Result<String, Failure> {
        let Some(pending) = self.pending.remove(&seq) else {
            return Err(Failure::new(
                ErrorCode::DecodeFailed,
                format!("no outstanding shot with seq {seq}"),
            ));
        };
        let ctx = self.callback_context(seq, &pending.key, pending.unix_timestamp);
        let callback = match outcome {
            Outcome::Stored(w, h) => Callback::stored(ctx, w, h),
            Outcome::Failed(failure) => Callback::failed(ctx, &failure),
        };
        Ok(callback.to_json())
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
        self.last_attempt_ms = Some(clock_ms);
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
            let ctx = self.callback_context(seq, &key, unix_timestamp);
            return Action::Refused(Callback::failed(ctx, &failure).to_json());
        }
        self.pending.insert(
            seq,
            Pending {
                key: key.clone(),
                unix_timestamp,
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
