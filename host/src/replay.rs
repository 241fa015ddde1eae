//! `livesnap replay`: one recorded FLV file as one session, as fast as it can be read.
//!
//! Tags go through the session's capture instance on this thread; due shots are rendered on
//! `render_workers` render instances (scoped threads) while reading goes on, and are stored,
//! completed and called back strictly in capture order — so the output does not depend on the
//! number of workers.
//!
//! The capture loop is synchronous wasmtime; storage and callback delivery are async, so a replay
//! runs them on a small tokio runtime of its own ([`replay_with`]). With HTTP callbacks, every
//! callback is spooled durably before its line is written to `--callbacks`, and the replay waits
//! at the end (up to [`HttpDelivery::wait`]) for the spool to empty.

use crate::callback::{Callbacks, DeliveryConfig, Target};
use crate::features::{Features, Sheet};
use crate::ingest::flv::{DEFAULT_MAX_TAG_BYTES, FlvError, FlvReader};
use crate::runtime::{
    Action, CaptureInstance, ErrorCode, Failure, KeyMode, Outcome, Picture, RenderInstance,
    Rendered, Runtime, SessionEnd, SessionEvent, SessionInfo, Settings, Shot, Verdict,
};
use crate::sink::CallbackLines;
use crate::storage::{FsStorage, Storage, StorageConfig};
use anyhow::Context;
use serde::Deserialize;
use std::collections::VecDeque;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Mutex, mpsc};
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
    /// Render instances working at once; `0`: one per core. Callbacks, keys and bytes do not
    /// depend on it: shots are stored, completed and called back in capture order.
    pub render_workers: usize,
    /// Optional session features (index, session callbacks, storyboard, skips); all off by
    /// default.
    pub features: Features,
}

/// Where a replay sends pictures and callbacks, beyond [`ReplayOptions::out`] and
/// [`ReplayOptions::callbacks`].
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    /// Object storage; `None`: files under [`ReplayOptions::out`].
    pub storage: Option<StorageConfig>,
    /// POST every callback through the durable queue.
    pub http: Option<HttpDelivery>,
}

/// HTTP callback delivery for a replay.
#[derive(Debug, Clone)]
pub struct HttpDelivery {
    /// Receiver URL and signing secret.
    pub target: Target,
    /// Spool and retry settings.
    pub delivery: DeliveryConfig,
    /// How long to wait, once the file is replayed, for every callback to be delivered or final.
    pub wait: Duration,
}

/// What became of the callbacks in a spool by the end of a run (counts include entries resumed
/// from earlier runs).
#[derive(Debug, Clone, Default)]
pub struct DeliveryReport {
    /// Entries found in the spool at start.
    pub resumed: u64,
    /// Delivered (2xx).
    pub delivered: u64,
    /// Still spooled when the wait ended: retried by the next run with the same spool.
    pub pending: u64,
    /// Expired (older than `max_age_s`): in the dead-letter file.
    pub dead_lettered: u64,
    /// Refused by the receiver (3xx, 4xx other than 408/429) or unsendable: in the dead-letter
    /// file.
    pub rejected: u64,
    /// The spool database.
    pub spool: PathBuf,
    /// The dead-letter file.
    pub dead_letter_file: PathBuf,
}

impl DeliveryReport {
    fn of(callbacks: &Callbacks, resumed: u64) -> Self {
        DeliveryReport {
            resumed,
            delivered: callbacks.delivered(),
            pending: callbacks.queue_depth(),
            dead_lettered: callbacks.dead_lettered(),
            rejected: callbacks.rejected(),
            spool: callbacks.spool_path().to_path_buf(),
            dead_letter_file: callbacks.dead_letter_path().to_path_buf(),
        }
    }

    /// `callbacks: N delivered, N pending, N undeliverable`.
    pub fn line(&self) -> String {
        format!(
            "callbacks: {} delivered, {} pending, {} undeliverable{}",
            self.delivered,
            self.pending,
            self.dead_lettered + self.rejected,
            if self.resumed > 0 {
                format!(" ({} resumed from the spool)", self.resumed)
            } else {
                String::new()
            }
        )
    }

    /// Why the run should not count as a success, if it should not: callbacks still pending, or
    /// some that will never be delivered.
    pub fn problem(&self) -> Option<String> {
        let mut problems = Vec::new();
        if self.pending > 0 {
            problems.push(format!(
                "{} callback(s) still pending: they stay in the spool {} and are delivered by the \
                 next `livesnap replay` using the same spool (e.g. `livesnap replay --resume-only \
                 --spool {}`)",
                self.pending,
                self.spool.display(),
                self.spool.parent().unwrap_or(Path::new(".")).display(),
            ));
        }
        let undeliverable = self.dead_lettered + self.rejected;
        if undeliverable > 0 {
            problems.push(format!(
                "{undeliverable} callback(s) could not be delivered ({} refused by the receiver, {} \
                 expired): see {}",
                self.rejected,
                self.dead_lettered,
                self.dead_letter_file.display(),
            ));
        }
        (!problems.is_empty()).then(|| problems.join("; "))
    }
}

/// The replay configuration file (`--config`): the `[storage]` and `[callbacks]` tables, the same
/// as in `livesnap serve`'s file, which therefore works here too (its other tables are ignored).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReplayConfigFile {
    /// Object storage.
    #[serde(default)]
    pub storage: Option<StorageConfig>,
    /// Callback spool and retries.
    #[serde(default)]
    pub callbacks: Option<DeliveryConfig>,
}

impl ReplayConfigFile {
    /// Read and parse `path`; a missing or malformed file is an [`InputError`].
    pub fn load(path: &Path) -> anyhow::Result<ReplayConfigFile> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| InputError(format!("cannot read config {}: {e}", path.display())))?;
        let cfg: ReplayConfigFile = toml::from_str(&text)
            .map_err(|e| InputError(format!("invalid config {}: {e}", path.display())))?;
        Ok(cfg)
    }
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
    /// Shots withdrawn by `--skip-blank` / `--skip-frozen` (no callback).
    pub skipped: u64,
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
    /// HTTP callback delivery, when it was asked for.
    pub delivery: Option<DeliveryReport>,
}

impl Summary {
    /// The one-line summary printed at the end.
    pub fn line(&self) -> String {
        format!(
            "replayed {} tags in {:.2} s: {} captures stored, {} failed{}{}{}{}",
            self.tags,
            self.elapsed.as_secs_f64(),
            self.stored,
            self.failed,
            if self.skipped > 0 {
                format!(", {} skipped", self.skipped)
            } else {
                String::new()
            },
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
            match &self.delivery {
                Some(d) => format!("; {}", d.line()),
                None => String::new(),
            },
        )
    }
}

/// Called as the replay advances: bytes read so far.
pub type Progress<'a> = &'a mut dyn FnMut(u64);

/// Replay `opts.input` as one session through `runtime`, into files under `opts.out`.
pub fn replay(
    runtime: &Runtime,
    opts: &ReplayOptions,
    progress: Progress<'_>,
) -> anyhow::Result<Summary> {
    replay_with(runtime, opts, &Outputs::default(), progress)
}

/// A runtime for storage and callback futures beside the synchronous capture loop. One worker
/// keeps delivering callbacks while the loop runs; blocking work (files, spool commits) goes to
/// tokio's blocking pool.
fn io_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("livesnap-io")
        .enable_all()
        .build()
        .context("cannot start the I/O runtime")
}

/// Check an HTTP delivery's settings: [`InputError`] when they are unusable.
fn check_http(http: &HttpDelivery) -> anyhow::Result<()> {
    let url = reqwest::Url::parse(&http.target.url)
        .map_err(|e| InputError(format!("invalid callback URL {:?}: {e}", http.target.url)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(InputError(format!(
            "invalid callback URL {:?}: only http:// and https:// are supported",
            http.target.url
        ))
        .into());
    }
    http.delivery
        .validate()
        .map_err(|e| InputError(format!("invalid [callbacks]: {e:#}")))?;
    Ok(())
}

/// Replay `opts.input` as one session through `runtime`, storing and delivering per `outputs`.
pub fn replay_with(
    runtime: &Runtime,
    opts: &ReplayOptions,
    outputs: &Outputs,
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
    let features = &opts.features;
    let mut capture = runtime
        .capture_with(&info, &settings, &features.options())?
        .map_err(|f| {
            let hint = if opts.stream.is_none() && f.message.starts_with("stream name") {
                " (the stream name defaults to the file name: pass --stream NAME)"
            } else {
                ""
            };
            InputError(format!("invalid settings: {}{hint}", f.message))
        })?;
    let storage = match &outputs.storage {
        None => Storage::Fs(FsStorage::new(&opts.out)),
        Some(cfg) => Storage::from_config(cfg)
            .map_err(|e| InputError(format!("invalid [storage]: {e:#}")))?,
    };
    if let Some(http) = &outputs.http {
        check_http(http)?;
    }
    let io = io_runtime()?;
    let http = match &outputs.http {
        Some(h) => {
            let callbacks = io.block_on(Callbacks::open(&h.delivery))?;
            let resumed = callbacks.resumed();
            Some((callbacks, &h.target, h.wait, resumed))
        }
        None => None,
    };
    let ordering_key = format!("{}/{stream}", opts.app);
    let mut lines = opts
        .callbacks
        .as_deref()
        .map(CallbackLines::open)
        .transpose()?;

    let mut summary = Summary {
        push_start_ms,
        session_id,
        ..Summary::default()
    };
    let mut extras = Extras {
        features: features.clone(),
        folder: capture.folder()?,
        jpeg_quality: crate::runtime::jpeg_quality(settings.quality),
        sheet: Sheet::default(),
        sheet_renderer: None,
        completed: 0,
    };
    let span = tracing::info_span!("stream", app = %opts.app, stream = %stream, session_id);
    let _enter = span.enter();
    let workers = match opts.render_workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let renderers = (0..workers)
        .map(|_| runtime.renderer())
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (job_tx, job_rx) = mpsc::sync_channel::<RenderJob>(workers);
    let job_rx = Mutex::new(job_rx);
    let render_peak = AtomicUsize::new(0);
    let mut tag_warnings = crate::warn_once::WarnOnce::default();
    let mut capture_warnings = crate::warn_once::WarnOnce::default();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        for mut renderer in renderers {
            let (job_rx, render_peak) = (&job_rx, &render_peak);
            scope.spawn(move || {
                render_worker(runtime, &mut renderer, job_rx);
                render_peak.fetch_max(renderer.peak_memory_bytes(), AtomicOrdering::Relaxed);
            });
        }
        // Captures in capture order: a refused one is ready at once, a rendered one when its
        // worker answers. Only the front is stored, completed and called back, so the output is
        // the same whatever the number of workers.
        let mut in_flight: VecDeque<Slot> = VecDeque::new();
        let mut emit = |body: String| -> anyhow::Result<()> {
            // Spool first: a line in `--callbacks` means its callback is already durable.
            if let Some((callbacks, target, ..)) = &http {
                io.block_on(callbacks.enqueue(target, &ordering_key, body.clone()))
                    .context("cannot spool a callback")?;
            }
            if let Some(out) = lines.as_mut() {
                out.write(&body)?;
            }
            Ok(())
        };
        let store =
            |key: &str, picture: Picture| store_picture(&io, &storage, &opts.bucket, key, picture);
        let put = |key: &str, bytes: Vec<u8>| -> anyhow::Result<()> {
            io.block_on(storage.put(&opts.bucket, key, bytes.into()))
                .with_context(|| format!("cannot store {key}"))
        };
        let mut settle = Settle {
            summary: &mut summary,
            capture: &mut capture,
            warnings: &mut capture_warnings,
            extras: &mut extras,
            runtime,
            store: &store,
            put: &put,
            emit: &mut emit,
        };
        if features.session_callbacks {
            let started = settle.capture.event_body(&SessionEvent::Started)?;
            (settle.emit)(started)?;
        }
        loop {
            let tag = match reader.next_tag() {
                Ok(Some(tag)) => tag,
                Ok(None) => break,
                Err(e @ (FlvError::Truncated { .. } | FlvError::TagTooLarge { .. })) => {
                    tracing::warn!(cause = %e, "input ends early: every complete tag before it was processed");
                    settle.summary.truncated = Some(e.to_string());
                    break;
                }
                Err(e) => return Err(e).context(format!("reading {}", opts.input.display())),
            };
            settle.summary.tags += 1;
            progress(reader.offset());
            let action = match capture_push(settle.capture, &tag)? {
                Ok(action) => action,
                Err(failure) => {
                    settle.summary.tag_errors += 1;
                    let cause = failure.text();
                    if tag_warnings.first(&cause) {
                        tracing::warn!(tag = settle.summary.tags, timestamp_ms = tag.timestamp_ms, %cause, "tag skipped (further tags with this cause are counted in the summary, not logged)");
                    }
                    continue;
                }
            };
            match action {
                Action::None => {}
                Action::Refused(body) => {
                    settle.summary.failed += 1;
                    let cause = crate::warn_once::errmsg_of(&body);
                    if settle.warnings.first(&cause) {
                        tracing::warn!(%cause, "capture refused (further refusals with this cause are counted, not logged)");
                    }
                    in_flight.push_back(Slot::Ready(body));
                }
                Action::Capture(shot) => {
                    let (reply_tx, reply) = mpsc::channel();
                    let (seq, key) = (shot.seq, shot.key.clone());
                    let job = RenderJob {
                        shot,
                        judged: features.judged(),
                        tile_width: features.tile_width(),
                        reply: reply_tx,
                    };
                    job_tx
                        .send(job)
                        .map_err(|_| anyhow::anyhow!("render workers stopped"))?;
                    in_flight.push_back(Slot::Rendering { seq, key, reply });
                }
            }
            // Keep at most two shots per worker in flight; settle what is ready meanwhile. A skip
            // option settles every shot before the next tag, as the contract asks for determinism.
            let full = in_flight.len() >= 2 * workers || features.skips();
            settle.drain(&mut in_flight, full)?;
        }
        settle.drain(&mut in_flight, true)?;
        let reason = if settle.summary.truncated.is_some() {
            "input truncated"
        } else {
            "end of file"
        };
        let end = SessionEnd {
            ended_ms: push_start_ms.saturating_add(settle.capture.clock_ms()?),
            reason: reason.to_owned(),
        };
        settle.finish(&end)?;
        drop(job_tx);
        Ok(())
    })?;
    if let Some(out) = lines.as_mut() {
        out.flush()?;
    }
    summary.elapsed = started.elapsed();
    summary.capture_peak_memory_bytes = capture.peak_memory_bytes();
    summary.render_peak_memory_bytes = render_peak.into_inner();
    if let Some((callbacks, _, wait, resumed)) = http {
        summary.delivery = Some(finish_delivery(&io, &callbacks, wait, resumed));
    }
    io.shutdown_timeout(Duration::from_secs(1));
    Ok(summary)
}

/// What a replay keeps for the optional features.
struct Extras {
    features: Features,
    /// The session folder.
    folder: String,
    /// Quality of storyboard sheets: the captures' quality.
    jpeg_quality: u8,
    sheet: Sheet,
    /// Encodes sheets on this thread (made at the first tile).
    sheet_renderer: Option<RenderInstance>,
    /// Attempts completed (for `index_every`).
    completed: u64,
}

/// Settling the front of the capture queue: store, judge, complete, call back, and keep the
/// index and storyboard up to date.
struct Settle<'a, 'r> {
    summary: &'a mut Summary,
    capture: &'a mut CaptureInstance,
    warnings: &'a mut crate::warn_once::WarnOnce,
    extras: &'a mut Extras,
    runtime: &'r Runtime,
    store: &'a dyn Fn(&str, Picture) -> Outcome,
    put: &'a dyn Fn(&str, Vec<u8>) -> anyhow::Result<()>,
    emit: &'a mut dyn FnMut(String) -> anyhow::Result<()>,
}

impl Settle<'_, '_> {
    /// Store, complete and call back the captures at the front of `in_flight` that are ready
    /// (all of them, waiting for renders, when `wait`).
    fn drain(&mut self, in_flight: &mut VecDeque<Slot>, wait: bool) -> anyhow::Result<()> {
        while let Some(front) = in_flight.pop_front() {
            let (seq, key, reply) = match front {
                Slot::Ready(body) => {
                    (self.emit)(body)?;
                    self.completed()?;
                    continue;
                }
                Slot::Rendering { seq, key, reply } => (seq, key, reply),
            };
            let rendered = if wait {
                reply.recv().ok()
            } else {
                match reply.try_recv() {
                    Ok(rendered) => Some(rendered),
                    Err(mpsc::TryRecvError::Empty) => {
                        in_flight.push_front(Slot::Rendering { seq, key, reply });
                        return Ok(());
                    }
                    Err(mpsc::TryRecvError::Disconnected) => None,
                }
            };
            let (outcome, tile) = match rendered {
                Some(Ok(Render::Plain(picture))) => ((self.store)(&key, picture), None),
                Some(Ok(Render::Judged(rendered))) => {
                    let Rendered {
                        picture,
                        analysis,
                        tile,
                    } = rendered;
                    match self.capture.judge(seq, &analysis)?.map_err(|f| {
                        anyhow::anyhow!("capture refused shot {seq}'s analysis: {}", f.text())
                    })? {
                        Verdict::Skip(reason) => {
                            self.summary.skipped += 1;
                            tracing::info!(seq, ?reason, "shot skipped");
                            continue;
                        }
                        Verdict::Keep(place) => {
                            let outcome = (self.store)(&key, picture);
                            let tile = match (place, tile, &outcome) {
                                (Some(place), Some(tile), Outcome::Stored(_)) => {
                                    Some((place, tile))
                                }
                                _ => None,
                            };
                            (outcome, tile)
                        }
                    }
                }
                Some(Err(failure)) => (Outcome::Failed(failure), None),
                None => (
                    Outcome::Failed(Failure::new(
                        ErrorCode::DecodeFailed,
                        "render worker stopped",
                    )),
                    None,
                ),
            };
            match &outcome {
                Outcome::Stored(..) => self.summary.stored += 1,
                Outcome::Failed(f) => {
                    self.summary.failed += 1;
                    let cause = f.text();
                    if self.warnings.first(&cause) {
                        tracing::warn!(key = %key, %cause, "capture failed (further failures with this cause are counted, not logged)");
                    }
                }
            }
            (self.emit)(complete(self.capture, seq, &outcome)?)?;
            if let Some((place, tile)) = tile {
                self.extras.sheet.add(&place, tile);
                self.store_storyboard()?;
            }
            self.completed()?;
        }
        Ok(())
    }

    /// Count a completed attempt; refresh the index when it is due.
    fn completed(&mut self) -> anyhow::Result<()> {
        self.extras.completed += 1;
        if self.extras.features.index_due(self.extras.completed) {
            self.store_index(None)?;
        }
        Ok(())
    }

    fn store_index(&mut self, end: Option<&SessionEnd>) -> anyhow::Result<()> {
        let index = self.capture.index(end)?;
        (self.put)(
            &format!("{}index.json", self.extras.folder),
            index.into_bytes(),
        )
    }

    /// Encode the current sheet and store it with the WebVTT file.
    fn store_storyboard(&mut self) -> anyhow::Result<()> {
        let renderer = match self.extras.sheet_renderer.take() {
            Some(r) => r,
            None => self.runtime.renderer()?,
        };
        let renderer = self.extras.sheet_renderer.insert(renderer);
        let (w, h) = self.extras.sheet.size();
        let sheet = renderer
            .compose_sheet(
                self.runtime,
                w,
                h,
                self.extras.sheet.tiles(),
                self.extras.jpeg_quality,
            )?
            .map_err(|f| anyhow::anyhow!("cannot compose a storyboard sheet: {}", f.text()))?;
        let folder = &self.extras.folder;
        (self.put)(
            &format!("{folder}{}", self.extras.sheet.file_name()),
            sheet.jpeg,
        )?;
        let vtt = self.capture.storyboard_vtt()?;
        (self.put)(&format!("{folder}storyboard.vtt"), vtt.into_bytes())
    }

    /// The session is over: the final index and the ended event.
    fn finish(&mut self, end: &SessionEnd) -> anyhow::Result<()> {
        if self.extras.features.storyboard.is_some() && !self.extras.sheet.tiles().is_empty() {
            // The last cue ends at the session's last clock.
            let vtt = self.capture.storyboard_vtt()?;
            (self.put)(
                &format!("{}storyboard.vtt", self.extras.folder),
                vtt.into_bytes(),
            )?;
        }
        if self.extras.features.index {
            self.store_index(Some(end))?;
        }
        if self.extras.features.session_callbacks {
            let body = self.capture.event_body(&SessionEvent::Ended(end.clone()))?;
            (self.emit)(body)?;
        }
        Ok(())
    }
}

/// A shot for a render worker, and where to send its picture.
struct RenderJob {
    shot: Shot,
    /// Use `render-shot` (analysis, tile) for `judge`.
    judged: bool,
    tile_width: Option<u32>,
    reply: mpsc::Sender<Result<Render, Failure>>,
}

/// A render worker's answer.
enum Render {
    /// `render`: no optional feature is on.
    Plain(Picture),
    /// `render-shot`: for `judge`.
    Judged(Rendered),
}

/// A capture attempt awaiting its turn to be called back.
enum Slot {
    /// Its callback body (a refused shot).
    Ready(String),
    /// Being rendered; the picture arrives on `reply`.
    Rendering {
        seq: u32,
        key: String,
        reply: mpsc::Receiver<Result<Render, Failure>>,
    },
}

/// Render jobs until the queue closes. A render instance that cannot be used fails its shot.
fn render_worker(
    runtime: &Runtime,
    renderer: &mut RenderInstance,
    jobs: &Mutex<mpsc::Receiver<RenderJob>>,
) {
    loop {
        // Hold the lock only to take one job.
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let rendered = if job.judged {
            renderer
                .render_shot(runtime, &job.shot, job.tile_width)
                .map(|r| r.map(Render::Judged))
        } else {
            renderer
                .render(runtime, &job.shot)
                .map(|r| r.map(Render::Plain))
        };
        let rendered = rendered
            .unwrap_or_else(|e| Err(Failure::new(ErrorCode::DecodeFailed, format!("{e:#}"))));
        let _ = job.reply.send(rendered);
    }
}

fn capture_push(
    capture: &mut CaptureInstance,
    tag: &crate::ingest::flv::Tag,
) -> anyhow::Result<Result<Action, Failure>> {
    capture.push_tag(tag.tag_type, tag.timestamp_ms, &tag.body)
}

/// Replay nothing: deliver what earlier runs left in the spool of `delivery`, waiting up to
/// `wait` (`livesnap replay --resume-only`).
pub fn resume(delivery: &DeliveryConfig, wait: Duration) -> anyhow::Result<DeliveryReport> {
    delivery
        .validate()
        .map_err(|e| InputError(format!("invalid [callbacks]: {e:#}")))?;
    if !delivery.spool_dir.join("spool.redb").exists() {
        return Err(InputError(format!(
            "no callback spool in {}",
            delivery.spool_dir.display()
        ))
        .into());
    }
    let io = io_runtime()?;
    let callbacks = io.block_on(Callbacks::open(delivery))?;
    let resumed = callbacks.resumed();
    let report = finish_delivery(&io, &callbacks, wait, resumed);
    io.shutdown_timeout(Duration::from_secs(1));
    Ok(report)
}

fn finish_delivery(
    io: &tokio::runtime::Runtime,
    callbacks: &Callbacks,
    wait: Duration,
    resumed: u64,
) -> DeliveryReport {
    let pending = callbacks.queue_depth();
    if pending > 0 {
        tracing::info!(
            pending,
            wait_s = wait.as_secs_f64(),
            "waiting for callbacks to be delivered"
        );
    }
    io.block_on(callbacks.drain(wait));
    DeliveryReport::of(callbacks, resumed)
}

/// Store a rendered picture; a failed upload becomes the shot's outcome.
fn store_picture(
    io: &tokio::runtime::Runtime,
    storage: &Storage,
    bucket: &str,
    key: &str,
    picture: Picture,
) -> Outcome {
    let (width_px, height_px) = (picture.width_px, picture.height_px);
    match io.block_on(storage.put(bucket, key, picture.jpeg.into())) {
        Ok(()) => {
            tracing::info!(key = %key, width = width_px, height = height_px, "shot stored");
            Outcome::Stored((width_px, height_px))
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
