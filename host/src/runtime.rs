//! The wasmtime side: one `Engine` and compiled component per process, a capture instance (own
//! `Store`) per stream and render instances with their own stores. Each store has a memory cap
//! and an epoch deadline; a trap ends only the call (render) or the stream (capture) it hit.
//!
//! The component is capability-free: it imports nothing but its own WIT types, so the linker
//! here provides nothing — no WASI, no clock, no filesystem, no network.

use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::component::{Component, Linker, ResourceAny};
use wasmtime::{
    Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
    ResourceLimiter, Store, Trap,
};

#[allow(
    unsafe_code,
    reason = "bindgen! expands to unsafe impls of the canonical ABI traits"
)]
mod bindings {
    wasmtime::component::bindgen!({
        world: "snapper",
        path: "../wit",
    });
}

pub use bindings::exports::livesnap::snap::capture::{
    Action, CodedFrame, Iframe, KeyMode, Outcome, Placement, SessionEnd, SessionEvent, SessionInfo,
    SessionOptions, Settings, Shot, SkipReason, StoryboardSettings, Verdict,
};
pub use bindings::exports::livesnap::snap::render::{
    Frame, Matrix, Picture, PlacedTile, Rendered, Tile, Transfer,
};
pub use bindings::livesnap::snap::types::{Analysis, Codec, ColorConfig, ErrorCode, Failure};

impl SessionOptions {
    /// Every optional feature off: what `session.create` gives.
    pub fn none() -> SessionOptions {
        SessionOptions {
            index: false,
            skip_blank: false,
            skip_frozen: false,
            storyboard: None,
        }
    }

    /// True when any feature is on, so shots go through `render-shot` and `judge`.
    pub fn any(&self) -> bool {
        self.index || self.skip_blank || self.skip_frozen || self.storyboard.is_some()
    }
}

/// The capability-free capture + render component (`livesnap.wasm`), built by `build.rs`.
pub static COMPONENT_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/livesnap.wasm"));

/// The `wasi:http/proxy` edge component (`livesnap-edge.wasm`), built by `build.rs`.
pub static EDGE_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/livesnap-edge.wasm"));

/// The edge proxy built without capture (feature `passthrough`): the baseline of the
/// benchmark's edge CPU figure. Not written by `livesnap component`.
pub static EDGE_PASSTHROUGH_WASM: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/livesnap-edge-passthrough.wasm"));

/// The JPEG quality of a tenant's quality step (1..=10 → 10..=100), JPEG 80 without one: the
/// component's rule for shots, used by the host for what it renders itself (sheets, snapshots).
pub fn jpeg_quality(step: Option<u8>) -> u8 {
    step.map_or(80, |q| q.saturating_mul(10))
}

/// How often the epoch advances; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

impl Failure {
    /// `"Code: message"`, for logs and error messages.
    pub fn text(&self) -> String {
        format!("{}: {}", self.code.as_str(), self.message)
    }

    /// A failure with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl ErrorCode {
    /// The callback's `code` string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::DecodeFailed => "DecodeFailed",
            ErrorCode::UnsupportedStream => "UnsupportedStream",
            ErrorCode::UploadFailed => "UploadFailed",
            ErrorCode::Timeout => "Timeout",
            ErrorCode::LimitExceeded => "LimitExceeded",
        }
    }
}

/// Per-store caps.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Linear memory cap of a capture instance, bytes.
    pub capture_memory_bytes: usize,
    /// Linear memory cap of a render instance, bytes.
    pub render_memory_bytes: usize,
    /// Longest a single capture call (one tag) may run.
    pub capture_deadline: Duration,
    /// Longest one render may run.
    pub render_deadline: Duration,
    /// Capture instances at once when pre-allocated in a pooling allocator (the service);
    /// `None` allocates on demand (replay, tests). Render instances always allocate on demand:
    /// their large memory reservation lets the decoder run without bounds checks.
    pub pooled_capture_instances: Option<u32>,
    /// Directory of wasmtime's compilation cache: the machine code compiled for this component
    /// (and this wasmtime, CPU and settings) is stored there and reused by the next process, so
    /// only the first start after an upgrade compiles. `None`: compile at every start.
    pub compile_cache: Option<PathBuf>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            capture_memory_bytes: 16 << 20,
            // A 8192x4096 decode needs ~50 MiB of reference pictures plus the JPEG; 1080p ~20 MiB.
            render_memory_bytes: 256 << 20,
            capture_deadline: Duration::from_secs(1),
            render_deadline: Duration::from_secs(10),
            pooled_capture_instances: None,
            compile_cache: default_cache_dir(),
        }
    }
}

/// `$LIVESNAP_CACHE_DIR`, else `$XDG_CACHE_HOME/livesnap`, else `~/.cache/livesnap`; `None`
/// when `LIVESNAP_CACHE_DIR` is set but empty (caching off) or no home is known.
pub fn default_cache_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name);
    if let Some(dir) = var("LIVESNAP_CACHE_DIR") {
        return (!dir.is_empty()).then(|| PathBuf::from(dir));
    }
    var("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            var("HOME")
                .filter(|d| !d.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })
        .map(|base| base.join("livesnap"))
}

/// wasmtime's compilation cache in `dir`; a cache that cannot be set up is logged and skipped
/// (compiling at every start is slower, not wrong).
fn compile_cache(dir: &Path) -> Option<Cache> {
    let mut config = CacheConfig::new();
    config.with_directory(dir.join("wasmtime"));
    match Cache::new(config) {
        Ok(cache) => Some(cache),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), cause = %format!("{e:#}"), "compilation cache unavailable: compiling at every start");
            None
        }
    }
}

/// The engine, the compiled component and the linker: build once, instantiate per stream.
pub struct Runtime {
    /// Engine of render instances (and of capture instances unless they are pooled).
    engine: Engine,
    pre: bindings::SnapperPre<HostState>,
    /// Engine and pre-instantiated component of pooled capture instances, if pooled.
    capture: Option<(Engine, bindings::SnapperPre<HostState>)>,
    limits: Limits,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

impl Runtime {
    /// Compile the embedded guest component and start the epoch ticker.
    pub fn new(limits: Limits) -> anyhow::Result<Runtime> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        // For profiling the guest with `perf` (names of wasm functions in /tmp/perf-PID.map).
        if std::env::var_os("LIVESNAP_PERF_MAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        if let Some(dir) = &limits.compile_cache {
            config.cache(compile_cache(dir));
        }
        let engine = Engine::new(&config)?;
        let pre = instantiate_pre(&engine)?;
        let capture = match limits.pooled_capture_instances {
            None => None,
            Some(n) => {
                // Slots sized for the capture memory cap; each instance of our component has one
                // main module plus a few wit-component shims.
                let mut pool = PoolingAllocationConfig::default();
                pool.total_component_instances(n)
                    .total_core_instances(n.saturating_mul(6))
                    .total_memories(n.saturating_mul(2))
                    .total_tables(n.saturating_mul(4))
                    .total_stacks(n)
                    .max_memory_size(limits.capture_memory_bytes);
                let mut config = config.clone();
                config
                    .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
                    .memory_reservation(limits.capture_memory_bytes as u64)
                    .memory_guard_size(64 << 10);
                let engine = Engine::new(&config)
                    .map_err(anyhow::Error::from)
                    .context("configuring the pooled capture engine")?;
                let pre = instantiate_pre(&engine)?;
                Some((engine, pre))
            }
        };
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let mut engines = vec![engine.clone()];
        engines.extend(capture.as_ref().map(|(e, _)| e.clone()));
        let stop = ticker_stop.clone();
        std::thread::Builder::new()
            .name("livesnap-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    for engine in &engines {
                        engine.increment_epoch();
                    }
                }
            })
            .context("starting the epoch ticker thread")?;
        Ok(Runtime {
            engine,
            pre,
            capture,
            limits,
            ticker_stop,
        })
    }

    /// The configured limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn new_store(&self, engine: &Engine, max_memory_bytes: usize) -> Store<HostState> {
        let state = HostState {
            limiter: Limiter {
                max_memory_bytes,
                peak_memory_bytes: 0,
                denied: false,
            },
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limiter);
        store
    }

    /// Start a capture session in its own store and instance.
    pub fn capture(
        &self,
        info: &SessionInfo,
        settings: &Settings,
    ) -> anyhow::Result<Result<CaptureInstance, Failure>> {
        self.capture_with(info, settings, &SessionOptions::none())
    }

    /// [`Runtime::capture`] with optional features.
    pub fn capture_with(
        &self,
        info: &SessionInfo,
        settings: &Settings,
        options: &SessionOptions,
    ) -> anyhow::Result<Result<CaptureInstance, Failure>> {
        let (mut store, snapper) = self.fresh_capture()?;
        let created = snapper
            .livesnap_snap_capture()
            .session()
            .call_create_with(&mut store, info, settings, *options)
            .map_err(|e| trap_error(&store, e, "capture"))?;
        Ok(created.map(|session| CaptureInstance {
            store,
            snapper,
            session,
            deadline_ticks: ticks(self.limits.capture_deadline),
        }))
    }

    /// A new capture instance in its own store, with the capture memory cap and deadline.
    fn fresh_capture(&self) -> anyhow::Result<(Store<HostState>, bindings::Snapper)> {
        let (engine, pre) = match &self.capture {
            Some((engine, pre)) => (engine, pre),
            None => (&self.engine, &self.pre),
        };
        let mut store = self.new_store(engine, self.limits.capture_memory_bytes);
        store.set_epoch_deadline(ticks(self.limits.capture_deadline));
        let snapper = pre
            .instantiate(&mut store)
            .map_err(anyhow::Error::from)
            .context("instantiating a capture instance")?;
        Ok((store, snapper))
    }

    /// The callback body of shot `seq` (stored at `key`, or failed) of the session `info` with
    /// `settings`, formed on a fresh capture instance: what `complete` would have returned, for
    /// a host whose session instance trapped with the shot in flight.
    pub fn callback_body(
        &self,
        info: &SessionInfo,
        settings: &Settings,
        seq: u32,
        key: &str,
        unix_timestamp: u64,
        outcome: &Outcome,
    ) -> anyhow::Result<Result<String, Failure>> {
        let (mut store, snapper) = self.fresh_capture()?;
        snapper
            .livesnap_snap_capture()
            .call_callback_body(
                &mut store,
                info,
                settings,
                seq,
                key,
                unix_timestamp,
                outcome,
            )
            .map_err(|e| trap_error(&store, e, "capture"))
    }

    /// A render instance with its own store.
    pub fn renderer(&self) -> anyhow::Result<RenderInstance> {
        let (store, snapper) = self.new_render_store()?;
        Ok(RenderInstance {
            store,
            snapper,
            deadline_ticks: ticks(self.limits.render_deadline),
            peak_memory_bytes: 0,
        })
    }

    fn new_render_store(&self) -> anyhow::Result<(Store<HostState>, bindings::Snapper)> {
        let mut store = self.new_store(&self.engine, self.limits.render_memory_bytes);
        store.set_epoch_deadline(ticks(self.limits.render_deadline));
        let snapper = self
            .pre
            .instantiate(&mut store)
            .map_err(anyhow::Error::from)
            .context("instantiating a render instance")?;
        Ok((store, snapper))
    }
}

/// Compile the embedded component for `engine`. It has no imports, so the linker stays empty.
fn instantiate_pre(engine: &Engine) -> anyhow::Result<bindings::SnapperPre<HostState>> {
    let component = Component::new(engine, COMPONENT_WASM)
        .map_err(anyhow::Error::from)
        .context("compiling the livesnap guest component")?;
    let linker = Linker::<HostState>::new(engine);
    Ok(bindings::SnapperPre::new(
        linker.instantiate_pre(&component)?,
    )?)
}

/// A stream's capture session inside its own store.
pub struct CaptureInstance {
    store: Store<HostState>,
    snapper: bindings::Snapper,
    session: ResourceAny,
    deadline_ticks: u64,
}

impl CaptureInstance {
    /// Feed one FLV tag. The outer error is a trap: the instance is unusable and the stream ends.
    pub fn push_tag(
        &mut self,
        tag_type: u8,
        timestamp_ms: u32,
        body: &[u8],
    ) -> anyhow::Result<Result<Action, Failure>> {
        self.store.set_epoch_deadline(self.deadline_ticks);
        self.snapper
            .livesnap_snap_capture()
            .session()
            .call_push_tag(&mut self.store, self.session, tag_type, timestamp_ms, body)
            .map_err(|e| trap_error(&self.store, e, "capture"))
    }

    /// Feed one coded video frame (the container-neutral entry). The outer error is a trap, as
    /// for [`CaptureInstance::push_tag`].
    pub fn push_frame(&mut self, frame: &CodedFrame) -> anyhow::Result<Result<Action, Failure>> {
        self.call(|s, store, session| {
            s.livesnap_snap_capture()
                .session()
                .call_push_frame(store, session, frame)
        })
    }

    /// Report a shot's outcome; returns its callback body.
    pub fn complete(
        &mut self,
        seq: u32,
        outcome: &Outcome,
    ) -> anyhow::Result<Result<String, Failure>> {
        self.store.set_epoch_deadline(self.deadline_ticks);
        self.snapper
            .livesnap_snap_capture()
            .session()
            .call_complete(&mut self.store, self.session, seq, outcome)
            .map_err(|e| trap_error(&self.store, e, "capture"))
    }

    /// Hand over what shot `seq`'s render found: keep (and where its tile goes) or withdraw.
    pub fn judge(
        &mut self,
        seq: u32,
        analysis: &Analysis,
    ) -> anyhow::Result<Result<Verdict, Failure>> {
        self.call(|s, store, session| {
            s.livesnap_snap_capture()
                .session()
                .call_judge(store, session, seq, analysis)
        })
    }

    /// The session folder (`index.json`, storyboard), ending in `/`.
    pub fn folder(&mut self) -> anyhow::Result<String> {
        self.call(|s, store, session| {
            s.livesnap_snap_capture()
                .session()
                .call_folder(store, session)
        })
    }

    /// `index.json` as it stands; `end` once the session is over.
    pub fn index(&mut self, end: Option<&SessionEnd>) -> anyhow::Result<String> {
        let end = end.cloned();
        self.call(|s, store, session| {
            s.livesnap_snap_capture()
                .session()
                .call_index(store, session, end.as_ref())
        })
    }

    /// The newest session clock the instance has seen, ms.
    pub fn clock_ms(&mut self) -> anyhow::Result<u64> {
        self.call(|s, store, session| {
            s.livesnap_snap_capture()
                .session()
                .call_clock_ms(store, session)
        })
    }

    /// `storyboard.vtt` as it stands.
    pub fn storyboard_vtt(&mut self) -> anyhow::Result<String> {
        self.call(|s, store, session| {
            s.livesnap_snap_capture()
                .session()
                .call_storyboard_vtt(store, session)
        })
    }

    /// The `LiveSnapShotSession` callback body of `event`.
    pub fn event_body(&mut self, event: &SessionEvent) -> anyhow::Result<String> {
        self.call(|s, store, session| {
            s.livesnap_snap_capture()
                .session()
                .call_event_body(store, session, event)
        })
    }

    /// Keep the newest I-frame from now on (on-demand snapshots), or stop and drop it.
    pub fn keep_last_iframe(&mut self, keep: bool) -> anyhow::Result<()> {
        self.call(|s, store, session| {
            s.livesnap_snap_capture()
                .session()
                .call_keep_last_iframe(store, session, keep)
        })
    }

    /// The newest I-frame kept, if any.
    pub fn last_iframe(&mut self) -> anyhow::Result<Option<Iframe>> {
        self.call(|s, store, session| {
            s.livesnap_snap_capture()
                .session()
                .call_last_iframe(store, session)
        })
    }

    fn call<T>(
        &mut self,
        f: impl FnOnce(&bindings::Snapper, &mut Store<HostState>, ResourceAny) -> wasmtime::Result<T>,
    ) -> anyhow::Result<T> {
        self.store.set_epoch_deadline(self.deadline_ticks);
        f(&self.snapper, &mut self.store, self.session)
            .map_err(|e| trap_error(&self.store, e, "capture"))
    }

    /// Largest linear memory this instance has had, in bytes.
    pub fn peak_memory_bytes(&self) -> usize {
        self.store.data().limiter.peak_memory_bytes
    }
}

/// A render instance. A trap (guest panic, deadline, memory cap) fails that render only: the
/// instance is replaced by a fresh one before the next call.
pub struct RenderInstance {
    store: Store<HostState>,
    snapper: bindings::Snapper,
    deadline_ticks: u64,
    /// Peak over every store this instance has used (they are replaced after traps).
    peak_memory_bytes: usize,
}

impl RenderInstance {
    /// Decode, scale and encode one shot (with the stream's colour description, if it sent
    /// one: then through `render-shot-with-color`, whose picture is the same bytes `render`
    /// would make with that description).
    pub fn render(
        &mut self,
        runtime: &Runtime,
        shot: &Shot,
    ) -> anyhow::Result<Result<Picture, Failure>> {
        if shot.color.is_some() {
            return Ok(self.render_shot(runtime, shot, None)?.map(|r| r.picture));
        }
        self.call(runtime, |snapper, store| {
            snapper.livesnap_snap_render().call_render(
                store,
                shot.codec,
                &shot.config,
                &shot.access_unit,
                shot.shortside_px,
                shot.jpeg_quality,
            )
        })
    }

    /// [`RenderInstance::render`] plus the blank/frozen analysis and, with `tile_width`, a
    /// storyboard tile.
    pub fn render_shot(
        &mut self,
        runtime: &Runtime,
        shot: &Shot,
        tile_width: Option<u32>,
    ) -> anyhow::Result<Result<Rendered, Failure>> {
        self.call(runtime, |snapper, store| {
            snapper.livesnap_snap_render().call_render_shot_with_color(
                store,
                shot.codec,
                &shot.config,
                &shot.access_unit,
                shot.color,
                shot.shortside_px,
                shot.jpeg_quality,
                tile_width,
            )
        })
    }

    /// Encode a storyboard sheet.
    pub fn compose_sheet(
        &mut self,
        runtime: &Runtime,
        width: u32,
        height: u32,
        tiles: &[PlacedTile],
        jpeg_quality: u8,
    ) -> anyhow::Result<Result<Picture, Failure>> {
        self.call(runtime, |snapper, store| {
            snapper.livesnap_snap_render().call_compose_sheet(
                store,
                width,
                height,
                tiles,
                jpeg_quality,
            )
        })
    }

    /// Decode only: the raw cropped picture, its matrix and transfer as a render with `color`
    /// (the shot's colour description) applies them.
    pub fn decode(
        &mut self,
        runtime: &Runtime,
        codec: Codec,
        config: &[u8],
        access_unit: &[u8],
        color: Option<ColorConfig>,
    ) -> anyhow::Result<Result<Frame, Failure>> {
        self.call(runtime, |snapper, store| {
            snapper.livesnap_snap_render().call_decode_with_color(
                store,
                codec,
                config,
                access_unit,
                color,
            )
        })
    }

    /// Largest linear memory any of this renderer's instances has had, in bytes.
    pub fn peak_memory_bytes(&self) -> usize {
        self.peak_memory_bytes
            .max(self.store.data().limiter.peak_memory_bytes)
    }

    fn call<T>(
        &mut self,
        runtime: &Runtime,
        f: impl FnOnce(
            &bindings::Snapper,
            &mut Store<HostState>,
        ) -> wasmtime::Result<Result<T, Failure>>,
    ) -> anyhow::Result<Result<T, Failure>> {
        self.store.set_epoch_deadline(self.deadline_ticks);
        match f(&self.snapper, &mut self.store) {
            Ok(result) => Ok(result),
            Err(err) => {
                let failure = trap_failure(&self.store, err);
                self.peak_memory_bytes = self.peak_memory_bytes();
                let (store, snapper) = runtime.new_render_store()?;
                (self.store, self.snapper) = (store, snapper);
                Ok(Err(failure))
            }
        }
    }
}

/// Store data: the memory limiter (the component has no imports, so nothing else).
struct HostState {
    limiter: Limiter,
}

/// A memory cap that also remembers the peak and whether it refused growth.
struct Limiter {
    max_memory_bytes: usize,
    peak_memory_bytes: usize,
    denied: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            self.denied = true;
            return Ok(false);
        }
        self.peak_memory_bytes = self.peak_memory_bytes.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

fn ticks(d: Duration) -> u64 {
    (d.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
}

/// Classify a trap as the failure it stands for.
fn trap_failure(store: &Store<HostState>, err: wasmtime::Error) -> Failure {
    let state = store.data();
    if err.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        Failure::new(ErrorCode::Timeout, "render exceeded its deadline")
    } else if state.limiter.denied {
        Failure::new(
            ErrorCode::LimitExceeded,
            format!(
                "render needed more than {} MiB of memory",
                state.limiter.max_memory_bytes >> 20
            ),
        )
    } else {
        // The guest aborts on a panic (`panic = "abort"`, no stderr to print to): the trap and
        // its wasm backtrace are what there is to tell.
        let trap = err
            .downcast_ref::<Trap>()
            .map(|t| t.to_string())
            .unwrap_or_else(|| format!("{err:#}"));
        Failure::new(ErrorCode::DecodeFailed, format!("decoder trapped: {trap}"))
    }
}

fn trap_error(store: &Store<HostState>, err: wasmtime::Error, what: &str) -> anyhow::Error {
    let failure = trap_failure(store, err);
    anyhow::anyhow!("{what} instance trapped: {}", failure.message)
}
