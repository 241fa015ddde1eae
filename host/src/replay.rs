//! `livesnap replay`: one recorded FLV file as one session, as fast as it can be read.

use crate::ingest::flv::{DEFAULT_MAX_TAG_BYTES, FlvError, FlvReader};
use crate::runtime::{
    Action, CaptureInstance, ErrorCode, Failure, KeyMode, Outcome, RenderInstance, Runtime,
    SessionInfo, Settings,
};
use crate::sink::CallbackLines;
use crate::storage::FsStorage;
use anyhow::Context;
use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// An error in what the user gave us (arguments, input file): exit code 2, nothing written.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

/// What to replay and how.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The FLV file.
    pub input: PathBuf,
    /// Objects go to `{out}/{bucket}/{key}`.
    pub out: PathBuf,
    /// App name.
    pub app: String,
    /// Stream name; defaults to the file stem.
    pub stream: Option<String>,
    /// Capture interval, seconds.
    pub interval_s: u32,
    /// Overwrite mode instead of sequence keys.
    pub overwrite: bool,
    /// Short side, pixels.
    pub shortside_px: Option<u32>,
    /// Quality step 1..=10.
    pub quality: Option<u8>,
    /// Push start, Unix ms; defaults to now.
    pub start_ms: Option<u64>,
    /// Session id; defaults to random.
    pub session_id: Option<u32>,
    /// Bucket.
    pub bucket: String,
    /// Tenant name.
    pub uniqname: String,
    /// Callback lines destination (`-` = stdout).
    pub callbacks: Option<PathBuf>,
}

/// What a replay did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Tags read.
    pub tags: u64,
    /// Captures stored (status 3).
    pub stored: u64,
    /// Capture attempts that failed (status 4).
    pub failed: u64,
    /// Tags the guest could not use (logged, skipped).
    pub tag_errors: u64,
    /// Set when the file ended inside a tag.
    pub truncated: Option<String>,
    /// Wall time.
    pub elapsed: Duration,
    /// Peak linear memory of the capture instance, bytes.
    pub capture_peak_memory_bytes: usize,
    /// Peak linear memory of the render instance, bytes.
    pub render_peak_memory_bytes: usize,
    /// The session's push start, Unix ms.
    pub push_start_ms: u64,
    /// The session id.
    pub session_id: u32,
}

impl Summary {
    /// The one-line summary printed at the end.
    pub fn line(&self) -> String {
        format!(
            "replayed {} tags in {:.2} s: {} captures stored, {} failed{}{}",
            self.tags,
            self.elapsed.as_secs_f64(),
            self.stored,
            self.failed,
            if self.tag_errors > 0 {
                format!(", {} unusable tags skipped", self.tag_errors)
            } else {
                String::new()
            },
            if self.truncated.is_some() {
                " (input truncated)"
            } else {
                ""
            },
        )
    }
}

/// Called as the replay advances: bytes read so far.
pub type Progress<'a> = &'a mut dyn FnMut(u64);

/// Replay `opts.input` as one session through `runtime`.
pub fn replay(
    runtime: &Runtime,
    opts: &ReplayOptions,
    progress: Progress<'_>,
) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let file = File::open(&opts.input)
        .map_err(|e| InputError(format!("cannot read {}: {e}", opts.input.display())))?;
    let mut reader = FlvReader::new(BufReader::new(file), DEFAULT_MAX_TAG_BYTES)
        .map_err(|e| InputError(format!("cannot replay {}: {e}", opts.input.display())))?;

    let stream = match &opts.stream {
        Some(s) => s.clone(),
        None => opts
            .input
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_owned)
            .unwrap_or_default(),
    };
    let push_start_ms = opts.start_ms.unwrap_or_else(now_ms);
    let session_id = opts.session_id.unwrap_or_else(rand::random);
    let info = SessionInfo {
        app: opts.app.clone(),
        stream: stream.clone(),
        push_start_ms,
        session_id,
    };
    let settings = Settings {
        interval_s: opts.interval_s,
        mode: if opts.overwrite {
            KeyMode::Overwrite
        } else {
            KeyMode::Sequence
        },
        shortside_px: opts.shortside_px,
        quality: opts.quality,
        bucket: opts.bucket.clone(),
        uniqname: opts.uniqname.clone(),
        alterurl: None,
    };
    let mut capture = runtime.capture(&info, &settings)?.map_err(|f| {
        let hint = if opts.stream.is_none() && f.message.starts_with("stream name") {
            " (the stream name defaults to the file name: pass --stream NAME)"
        } else {
            ""
        };
        InputError(format!("invalid settings: {}{hint}", f.message))
    })?;
    let mut renderer = runtime.renderer()?;
    let storage = FsStorage::new(&opts.out);
    let mut callbacks = opts
        .callbacks
        .as_deref()
        .map(CallbackLines::open)
        .transpose()?;

    let mut summary = Summary {
        push_start_ms,
        session_id,
        ..Summary::default()
    };
    let span = tracing::info_span!("stream", app = %opts.app, stream = %stream, session_id);
    let _enter = span.enter();
    loop {
        let tag = match reader.next_tag() {
            Ok(Some(tag)) => tag,
            Ok(None) => break,
            Err(e @ (FlvError::Truncated { .. } | FlvError::TagTooLarge { .. })) => {
                tracing::warn!(cause = %e, "input ends early: every complete tag before it was processed");
                summary.truncated = Some(e.to_string());
                break;
            }
            Err(e) => return Err(e).context(format!("reading {}", opts.input.display())),
        };
        summary.tags += 1;
        progress(reader.offset());
        let action = match capture.push_tag(tag.tag_type, tag.timestamp_ms, &tag.body)? {
            Ok(action) => action,
            Err(failure) => {
                summary.tag_errors += 1;
                tracing::warn!(tag = summary.tags, timestamp_ms = tag.timestamp_ms, cause = %failure.text(), "tag skipped");
                continue;
            }
        };
        let body = match action {
            Action::None => continue,
            Action::Refused(body) => {
                summary.failed += 1;
                body
            }
            Action::Capture(shot) => {
                let outcome = store_shot(runtime, &mut renderer, &storage, &opts.bucket, &shot);
                match &outcome {
                    Outcome::Stored(..) => summary.stored += 1,
                    Outcome::Failed(f) => {
                        summary.failed += 1;
                        tracing::warn!(key = %shot.key, cause = %f.text(), "capture failed");
                    }
                }
                complete(&mut capture, shot.seq, &outcome)?
            }
        };
        if let Some(out) = callbacks.as_mut() {
            out.write(&body)?;
        }
    }
    if let Some(out) = callbacks.as_mut() {
        out.flush()?;
    }
    summary.elapsed = started.elapsed();
    summary.capture_peak_memory_bytes = capture.peak_memory_bytes();
    summary.render_peak_memory_bytes = renderer.peak_memory_bytes();
    Ok(summary)
}

/// Render a shot and store it; every failure becomes the shot's outcome.
fn store_shot(
    runtime: &Runtime,
    renderer: &mut RenderInstance,
    storage: &FsStorage,
    bucket: &str,
    shot: &crate::runtime::Shot,
) -> Outcome {
    let picture = match renderer.render(runtime, shot) {
        Ok(Ok(picture)) => picture,
        Ok(Err(failure)) => return Outcome::Failed(failure),
        Err(e) => return Outcome::Failed(Failure::new(ErrorCode::DecodeFailed, format!("{e:#}"))),
    };
    match storage.put(bucket, &shot.key, &picture.jpeg) {
        Ok(()) => {
            tracing::info!(key = %shot.key, width = picture.width_px, height = picture.height_px, "shot stored");
            Outcome::Stored((picture.width_px, picture.height_px))
        }
        Err(e) => Outcome::Failed(Failure::new(ErrorCode::UploadFailed, format!("{e:#}"))),
    }
}

fn complete(capture: &mut CaptureInstance, seq: u32, outcome: &Outcome) -> anyhow::Result<String> {
    capture
        .complete(seq, outcome)?
        .map_err(|f| anyhow::anyhow!("capture refused the outcome of shot {seq}: {}", f.text()))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
