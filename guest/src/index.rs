//! The session index (`index.json`) and the `LiveSnapShotSession` event bodies (contract
//! "Session index"). The index lists every completed capture attempt in seq order and every
//! withdrawn shot; it is formatted from compact records, so a long session costs about 60 bytes
//! of capture-instance memory per attempt.

use crate::flv::VideoCodec;
use crate::naming::{KeyMode, SessionNames};
use serde::Serialize;
use std::collections::BTreeMap;

/// A completed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// 3 stored, 4 failed.
    pub status: u32,
    /// "OK" or the error code.
    pub code: &'static str,
    /// UnixTimestamp, seconds (names the key).
    pub timestamp: u64,
    /// Session clock, ms.
    pub clock_ms: u64,
    /// Stored JPEG size (0 × 0 when not stored).
    pub width: u32,
    /// See `width`.
    pub height: u32,
    /// Stored JPEG bytes (0 when not stored).
    pub bytes: u64,
}

/// A shot withdrawn by a skip option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skip {
    /// Session clock of the I-frame, ms.
    pub clock_ms: u64,
    /// UnixTimestamp of the I-frame, seconds.
    pub timestamp: u64,
    /// "blank" or "frozen".
    pub reason: &'static str,
}

/// What the index knows beyond its entries.
#[derive(Debug, Default, Clone)]
pub struct IndexLog {
    entries: BTreeMap<u32, Entry>,
    skips: Vec<Skip>,
    codec: Option<VideoCodec>,
}

/// Session facts the caller supplies when formatting.
pub struct IndexContext<'a> {
    /// Names and keys.
    pub names: &'a SessionNames,
    /// Key mode.
    pub mode: KeyMode,
    /// Tenant.
    pub uniqname: &'a str,
    /// Bucket.
    pub bucket: &'a str,
    /// The session folder.
    pub folder: &'a str,
    /// Storyboard sheets so far (0: no storyboard).
    pub sheets: Option<u32>,
    /// End time and reason, once ended.
    pub end: Option<(u64, &'a str)>,
}

#[derive(Serialize)]
struct Size {
    width: u32,
    height: u32,
}

#[derive(Serialize)]
struct EntryJson<'a> {
    seq: u32,
    taskid: String,
    status: u32,
    code: &'a str,
    key: String,
    timestamp: u64,
    clock_ms: u64,
    width: u32,
    height: u32,
    bytes: u64,
}

#[derive(Serialize)]
struct StoryboardJson {
    vtt: String,
    sheets: Vec<String>,
}

#[derive(Serialize)]
struct IndexJson<'a> {
    app: &'a str,
    stream: &'a str,
    uniqname: &'a str,
    bucket: &'a str,
    push_start_ms: u64,
    session_id: u32,
    codec: Option<&'static str>,
    first_size: Option<Size>,
    last_size: Option<Size>,
    started_ms: u64,
    ended_ms: Option<u64>,
    end_reason: Option<&'a str>,
    attempts: usize,
    stored: usize,
    failed: usize,
    skipped_blank: usize,
    skipped_frozen: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    storyboard: Option<StoryboardJson>,
    entries: Vec<EntryJson<'a>>,
    skipped: Vec<SkipJson>,
}

#[derive(Serialize)]
struct SkipJson {
    clock_ms: u64,
    timestamp: u64,
    reason: &'static str,
}

impl IndexLog {
    /// Record the codec of an attempt.
    pub fn codec(&mut self, codec: VideoCodec) {
        self.codec = Some(codec);
    }

    /// Record completed attempt `seq`.
    pub fn complete(&mut self, seq: u32, entry: Entry) {
        self.entries.insert(seq, entry);
    }

    /// Record a withdrawn shot.
    pub fn skip(&mut self, skip: Skip) {
        self.skips.push(skip);
    }

    /// Attempts completed (stored + failed).
    pub fn attempts(&self) -> usize {
        self.entries.len()
    }

    /// Stored attempts.
    pub fn stored(&self) -> usize {
        self.entries.values().filter(|e| e.status == 3).count()
    }

    /// Withdrawn shots by reason.
    pub fn skipped(&self, reason: &str) -> usize {
        self.skips.iter().filter(|s| s.reason == reason).count()
    }

    /// `index.json`.
    pub fn to_json(&self, ctx: &IndexContext<'_>) -> String {
        let stored: Vec<&Entry> = self.entries.values().filter(|e| e.status == 3).collect();
        let size = |e: &&Entry| Size {
            width: e.width,
            height: e.height,
        };
        let index = IndexJson {
            app: ctx.names.app.as_str(),
            stream: ctx.names.stream.as_str(),
            uniqname: ctx.uniqname,
            bucket: ctx.bucket,
            push_start_ms: ctx.names.push_start_ms,
            session_id: ctx.names.session_id,
            codec: self.codec.map(short_name),
            first_size: stored.first().map(size),
            last_size: stored.last().map(size),
            started_ms: ctx.names.push_start_ms,
            ended_ms: ctx.end.map(|(ms, _)| ms),
            end_reason: ctx.end.map(|(_, r)| r),
            attempts: self.entries.len(),
            stored: stored.len(),
            failed: self.entries.len() - stored.len(),
            skipped_blank: self.skipped("blank"),
            skipped_frozen: self.skipped("frozen"),
            storyboard: ctx.sheets.map(|n| StoryboardJson {
                vtt: format!("{}storyboard.vtt", ctx.folder),
                sheets: (1..=n)
                    .map(|i| format!("{}storyboard-{i}.jpg", ctx.folder))
                    .collect(),
            }),
            entries: self
                .entries
                .iter()
                .map(|(&seq, e)| EntryJson {
                    seq,
                    taskid: ctx.names.taskid(seq),
                    status: e.status,
                    code: e.code,
                    key: ctx.names.key(ctx.mode, e.timestamp),
                    timestamp: e.timestamp,
                    clock_ms: e.clock_ms,
                    width: e.width,
                    height: e.height,
                    bytes: e.bytes,
                })
                .collect(),
            skipped: self
                .skips
                .iter()
                .map(|s| SkipJson {
                    clock_ms: s.clock_ms,
                    timestamp: s.timestamp,
                    reason: s.reason,
                })
                .collect(),
        };
        // Strings and integers only: serialising cannot fail.
        serde_json::to_string_pretty(&index).unwrap_or_default()
    }
}

/// `avc`, `hevc`, `av1`, `vp9`.
pub fn short_name(codec: VideoCodec) -> &'static str {
    match codec {
        VideoCodec::Avc => "avc",
        VideoCodec::Hevc => "hevc",
        VideoCodec::Av1 => "av1",
        VideoCodec::Vp9 => "vp9",
    }
}

/// The `LiveSnapShotSession` callback body.
#[derive(Serialize)]
pub struct EventJson<'a> {
    /// Always "LiveSnapShotSession".
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// "started" or "ended".
    pub event: &'static str,
    /// `{App}/{StreamName}/{push_start_ms}-{session_id}`: the prefix of the session's task ids.
    pub session: String,
    /// App.
    pub app: &'a str,
    /// StreamName.
    pub stream_name: &'a str,
    /// Tenant.
    pub uniqname: &'a str,
    /// Bucket.
    pub bucket: &'a str,
    /// Unix ms of the push start.
    pub push_start_ms: u64,
    /// Session id.
    pub session_id: u32,
    /// Unix seconds of the event.
    pub timestamp: u64,
    /// Ended only: Unix ms of the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<u64>,
    /// Ended only: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    /// Ended only: attempts, stored, failed, skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<usize>,
    /// See `attempts`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored: Option<usize>,
    /// See `attempts`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<usize>,
    /// See `attempts`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<usize>,
    /// Ended only: the index key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
}
