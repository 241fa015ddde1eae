//! `livesnap loadtest`: N concurrent streams through the same in-process path `serve` uses
//! (sessions with a pooled capture instance each, the render pool, fs storage, durable signed
//! callbacks POSTed to an in-process receiver), each replaying a fixture in real time, looped,
//! with staggered starts. Prints throughput, CPU, memory and the latency from an I-frame's arrival
//! to its callback being queued, plus missed and late captures.

use crate::config::Config;
use crate::ingest::flv::{DEFAULT_MAX_TAG_BYTES, FlvReader, Tag};
use crate::ingest::{Origin, Publish, Sink, StreamSink};
use crate::runtime::Codec;
use crate::serve::session::{ServeSink, StreamSession};
use anyhow::Context;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Concurrent streams.
    pub streams: usize,
    /// The fixtures the streams replay (looped): stream `i` plays `fixtures[i % len]`, so a mix
    /// of AVC and HEVC files gives a mixed load.
    pub fixtures: Vec<PathBuf>,
    /// Capture interval, seconds.
    pub interval_s: u32,
    /// How long the load runs, seconds.
    pub duration_s: u64,
    /// Streams start evenly spread over this many seconds.
    pub stagger_s: u64,
    /// Render workers (default: cores).
    pub render_workers: Option<usize>,
    /// Print a progress line this often, seconds.
    pub report_every_s: u64,
    /// POST callbacks (spooled durably) to an in-process receiver; off: callbacks are formatted
    /// but not sent, to measure the rest of the path alone.
    pub callbacks: bool,
    /// Also run the load in cluster mode against this NATS JetStream server (after the
    /// embedded run, same options) and print both side by side.
    pub nats: Option<String>,
    /// Replicas of the cluster run's streams and buckets (1 for a single server).
    pub nats_replicas: usize,
    /// Cameras instead of replayed files: every stream pulls this RTSP URL (one camera, or a
    /// server that serves the same media to every client) through the RTSP ingest.
    pub rtsp: Option<(crate::config::SourceUrl, crate::config::RtpTransport)>,
}

/// What one run cost, for the embedded-versus-cluster comparison.
#[derive(Debug, Clone, Copy)]
struct Cost {
    cpu_pct: f64,
    p50_ms: f64,
    p99_ms: f64,
    ok: u64,
    delivered: u64,
}

/// A sink that counts what its sessions are fed (the load test's tags/frames per second).
struct Counting<S> {
    sink: Arc<S>,
    pushed: Arc<AtomicU64>,
}

/// A session of [`Counting`].
struct CountingSession<T> {
    session: T,
    pushed: Arc<AtomicU64>,
}

impl<S: Sink> Sink for Counting<S> {
    type Session = CountingSession<S::Session>;

    async fn open(&self, publish: Publish<'_>) -> Result<Self::Session, crate::ingest::Refusal> {
        let session = self.sink.open(publish).await?;
        Ok(CountingSession {
            session,
            pushed: self.pushed.clone(),
        })
    }

    fn max_tag_bytes(&self) -> usize {
        self.sink.max_tag_bytes()
    }
}

impl<T: StreamSink> StreamSink for CountingSession<T> {
    fn push_tag(&mut self, tag_type: u8, timestamp_ms: u32, body: &[u8]) -> anyhow::Result<()> {
        self.pushed.fetch_add(1, Ordering::Relaxed);
        self.session.push_tag(tag_type, timestamp_ms, body)
    }

    fn push_frame(&mut self, frame: &crate::runtime::CodedFrame) -> anyhow::Result<()> {
        self.pushed.fetch_add(1, Ordering::Relaxed);
        self.session.push_frame(frame)
    }

    fn end(&mut self, reason: &'static str) {
        self.session.end(reason);
    }

    fn name(&self) -> &str {
        self.session.name()
    }
}

/// A capture later than this counts as late.
const LATE: Duration = Duration::from_secs(1);

/// Run the load test and print its report; with `nats`, once embedded and once in cluster
/// mode, then both costs side by side.
pub async fn run(opts: LoadOptions) -> anyhow::Result<()> {
    let Some(url) = opts.nats.clone() else {
        return run_once(&opts, None).await.map(|_| ());
    };
    println!("== embedded spool ==");
    let embedded = run_once(&opts, None).await?;
    println!("== cluster mode: JetStream at {url} ==");
    let cluster = run_once(&opts, Some(&url)).await?;
    println!("cost of cluster mode ({} streams):", opts.streams);
    println!(
        "  {:<10} {:>8} {:>9} {:>9} {:>9} {:>10}",
        "", "cpu %", "p50 ms", "p99 ms", "ok", "delivered"
    );
    for (name, c) in [("embedded", embedded), ("cluster", cluster)] {
        println!(
            "  {name:<10} {:>8.1} {:>9.1} {:>9.1} {:>9} {:>10}",
            c.cpu_pct, c.p50_ms, c.p99_ms, c.ok, c.delivered
        );
    }
    println!(
        "  cluster / embedded: cpu {:.2}x, p99 {:.2}x",
        cluster.cpu_pct / embedded.cpu_pct.max(1e-9),
        cluster.p99_ms / embedded.p99_ms.max(1e-9)
    );
    Ok(())
}

async fn run_once(opts: &LoadOptions, nats: Option<&str>) -> anyhow::Result<Cost> {
    anyhow::ensure!(!opts.fixtures.is_empty(), "no fixture to replay");
    let fixtures: Vec<Arc<Fixture>> = opts
        .fixtures
        .iter()
        .map(|p| Fixture::read(p).map(Arc::new))
        .collect::<anyhow::Result<_>>()?;
    let work = std::env::temp_dir().join(format!("livesnap-loadtest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let receiver = Receiver::start().await?;
    let workers = opts
        .render_workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let config = Config::parse(
        &format!(
            "[server]\nhttp = \"127.0.0.1:0\"\n[storage]\nroot = \"{}\"\n[callbacks]\nspool_dir = \"{}\"\n\
             [limits]\nrender_workers = {workers}\nmax_streams = {cap}\nmax_streams_per_tenant = {cap}\n\
             [[tenant]]\napp = \"load\"\nuniqname = \"load\"\npublish_key = \"k\"\nbucket = \"load\"\n\
             interval_s = {}\ncallback_secret = \"load\"\n{}{}",
            work.join("objects").display(),
            work.join("spool").display(),
            opts.interval_s,
            if opts.callbacks {
                format!("callback_url = \"http://{}/cb\"\n", receiver.addr)
            } else {
                String::new()
            },
            match nats {
                Some(url) => format!(
                    "[cluster]\nnats = [{url:?}]\nnode = \"loadtest-{}\"\nreplicas = {}\nlease_s = 10\n",
                    std::process::id(),
                    opts.nats_replicas
                ),
                None => String::new(),
            },
            cap = opts.streams + 8,
        ),
        "loadtest",
    )?;
    let ctx = crate::serve::build_ctx(config, "127.0.0.1:0".parse()?).await?;
    ctx.metrics.keep_latency_samples();

    // Idle memory: sessions that exist but receive nothing.
    let rss_before = rss_bytes();
    let idle: Vec<StreamSession> = (0..opts.streams)
        .map(|i| StreamSession::start(&ctx, "load", &format!("idle{i}")))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let rss_idle = rss_bytes();
    drop(idle);
    println!(
        "idle: {} sessions add {:.1} MiB RSS = {:.0} KiB per stream (capture instance + session state)",
        opts.streams,
        (rss_idle.saturating_sub(rss_before)) as f64 / 1048576.0,
        rss_idle.saturating_sub(rss_before) as f64 / 1024.0 / opts.streams.max(1) as f64
    );

    for fixture in &fixtures {
        let kept = snapshot_memory(&ctx.runtime, &fixture.tags)?;
        println!(
            "snapshot: keeping the newest I-frame adds {:.0} KiB of capture-instance memory per live \
             stream of {} (peak linear memory, keep on {:.0} KiB vs off {:.0} KiB; the kept access \
             unit is at most {:.0} KiB)",
            kept.on.saturating_sub(kept.off) as f64 / 1024.0,
            fixture.path.display(),
            kept.on as f64 / 1024.0,
            kept.off as f64 / 1024.0,
            kept.largest_iframe as f64 / 1024.0
        );
    }

    let pushed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let end = started + Duration::from_secs(opts.duration_s);
    let cpu_start = cpu_seconds();
    let mut streams = tokio::task::JoinSet::new();
    let sink = Arc::new(ServeSink::new(ctx.clone()));
    for i in 0..opts.streams {
        let delay =
            Duration::from_millis(opts.stagger_s * 1000 * i as u64 / opts.streams.max(1) as u64);
        let (sink, pushed) = (sink.clone(), pushed.clone());
        let fixture = fixtures[i % fixtures.len()].clone();
        if let Some((url, transport)) = &opts.rtsp {
            let pull = crate::config::PullConfig {
                url: url.clone(),
                app: crate::config::Name("load".into()),
                stream: crate::config::Name(format!("s{i}")),
                transport: Some(*transport),
            };
            let counting = Arc::new(Counting {
                sink: sink.clone(),
                pushed,
            });
            streams.spawn(async move {
                let start = started + delay;
                tokio::time::sleep_until(start.into()).await;
                let stop = tokio_util::sync::CancellationToken::new();
                let pulling = crate::ingest::rtsp::run(counting, pull, stop.clone());
                tokio::select! {
                    _ = pulling => {}
                    _ = tokio::time::sleep_until(end.into()) => stop.cancel(),
                }
                (fixture, end.saturating_duration_since(start))
            });
            continue;
        }
        streams.spawn(async move {
            let (tags, loop_ms) = (&fixture.tags, fixture.loop_ms);
            let start = started + delay;
            tokio::time::sleep_until(start.into()).await;
            let stream = format!("s{i}");
            let publish = Publish {
                app: "load",
                stream: &stream,
                origin: Origin::Pull,
            };
            let mut session = match sink.open(publish).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(cause = %e, "load stream refused");
                    return (fixture, Duration::ZERO);
                }
            };
            for lap in 0u32.. {
                for tag in tags.iter() {
                    let offset = u64::from(lap) * u64::from(loop_ms) + u64::from(tag.timestamp_ms);
                    let at = start + Duration::from_millis(offset);
                    if at >= end {
                        return (fixture.clone(), end.saturating_duration_since(start));
                    }
                    if at > Instant::now() {
                        tokio::time::sleep_until(at.into()).await;
                    }
                    let ts = tag.timestamp_ms.wrapping_add(lap.wrapping_mul(loop_ms));
                    if session.push_tag(tag.tag_type, ts, &tag.body).is_err() {
                        return (fixture.clone(), at.saturating_duration_since(start));
                    }
                    pushed.fetch_add(1, Ordering::Relaxed);
                }
            }
            (fixture, Duration::ZERO)
        });
    }

    println!(
        "load: {} streams of {} looped in real time, interval {} s, {} render workers, {} s, starts spread over {} s",
        opts.streams,
        fixtures
            .iter()
            .map(|f| format!("{} ({})", f.path.display(), f.codec.map_or("?", codec_name)))
            .collect::<Vec<_>>()
            .join(" + "),
        opts.interval_s,
        workers,
        opts.duration_s,
        opts.stagger_s
    );
    let mut last = (Instant::now(), 0u64, 0u64, cpu_seconds());
    let mut peak_rss = 0u64;
    let mut rss_samples = Vec::new();
    while Instant::now() < end {
        tokio::time::sleep(
            Duration::from_secs(opts.report_every_s)
                .min(end.saturating_duration_since(Instant::now())),
        )
        .await;
        let now = Instant::now();
        let tags_now = pushed.load(Ordering::Relaxed);
        let caps_now = total_captures(&ctx.metrics);
        let cpu_now = cpu_seconds();
        let dt = now.duration_since(last.0).as_secs_f64().max(1e-3);
        let rss = rss_bytes();
        peak_rss = peak_rss.max(rss);
        rss_samples.push((now.duration_since(started).as_secs(), rss));
        let live = ctx.live.lock().map_or(0, |l| l.len());
        println!(
            "  t={:>4}s live={live:>5} tags/s={:>8.0} captures/s={:>6.1} cpu={:>5.1}% rss={:>7.1} MiB queue={}",
            now.duration_since(started).as_secs(),
            (tags_now - last.1) as f64 / dt,
            (caps_now - last.2) as f64 / dt,
            (cpu_now - last.3) / dt * 100.0,
            rss as f64 / 1048576.0,
            ctx.callbacks.queue_depth()
        );
        last = (now, tags_now, caps_now, cpu_now);
    }
    let mut streamed = Vec::new();
    while let Some(joined) = streams.join_next().await {
        if let Ok(played) = joined {
            streamed.push(played);
        }
    }
    let wall = started.elapsed().as_secs_f64();
    ctx.tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(30), ctx.tracker.wait()).await;
    let cpu = cpu_seconds() - cpu_start;

    // Expected captures per stream from the rule over its looped I-frames (FLV keyframe flags
    // of these well-formed fixtures), for the stream time it actually ran. A camera joined
    // mid-stream starts at its next I-frame: then it is an upper bound.
    let expected: u64 = streamed
        .iter()
        .map(|(f, d)| {
            expected_captures(
                &f.keyframes,
                u64::from(f.loop_ms),
                d.as_millis() as u64,
                u64::from(opts.interval_s) * 1000,
            )
        })
        .sum();
    let samples = ctx.metrics.latency_samples();
    let mut lat: Vec<u32> = samples.iter().map(|s| s.1).collect();
    lat.sort_unstable();
    let pct = |p: f64| percentile(&lat, p);
    let ok = ctx.metrics.captures("OK");
    let failed = total_captures(&ctx.metrics) - ok;
    let late = lat
        .iter()
        .filter(|&&us| u128::from(us) > LATE.as_micros())
        .count();
    let total_tags = pushed.load(Ordering::Relaxed);
    let unit = if opts.rtsp.is_some() {
        "frames"
    } else {
        "tags"
    };
    println!("result:");
    println!(
        "  streams {}  {unit} {}  ({:.0} {unit}/s)  wall {:.1} s",
        opts.streams,
        total_tags,
        total_tags as f64 / wall,
        wall
    );
    println!(
        "  captures {} ok, {} failed  ({:.1}/s); expected by the rule {}{}; missed {}; late (> 1 s) {}",
        ok,
        failed,
        (ok + failed) as f64 / wall,
        if opts.rtsp.is_some() { "at most " } else { "" },
        expected,
        expected.saturating_sub(ok),
        late
    );
    println!(
        "  latency I-frame -> callback queued: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms  ({} samples)",
        f64::from(pct(0.50)) / 1000.0,
        f64::from(pct(0.99)) / 1000.0,
        f64::from(lat.last().copied().unwrap_or(0)) / 1000.0,
        lat.len()
    );
    let codecs: Vec<Codec> = [Codec::Avc, Codec::Hevc]
        .into_iter()
        .filter(|c| fixtures.iter().any(|f| f.codec == Some(*c)))
        .collect();
    if codecs.len() > 1 {
        for codec in codecs {
            let mut of: Vec<u32> = samples
                .iter()
                .filter(|s| s.0 == Some(codec))
                .map(|s| s.1)
                .collect();
            of.sort_unstable();
            let streams = streamed
                .iter()
                .filter(|(f, _)| f.codec == Some(codec))
                .count();
            println!(
                "    {:<4} ({streams} streams): p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms  ({} samples)",
                codec_name(codec),
                f64::from(percentile(&of, 0.50)) / 1000.0,
                f64::from(percentile(&of, 0.99)) / 1000.0,
                f64::from(of.last().copied().unwrap_or(0)) / 1000.0,
                of.len()
            );
        }
    }
    println!(
        "  cpu {:.1}% of one core ({:.1} core-s)  rss peak {:.1} MiB ({:.0} KiB per stream)",
        cpu / wall * 100.0,
        cpu,
        peak_rss as f64 / 1048576.0,
        peak_rss as f64 / 1024.0 / opts.streams.max(1) as f64
    );
    if rss_samples.len() >= 4 {
        let half = rss_samples.len() / 2;
        let first: u64 = rss_samples[..half].iter().map(|s| s.1).max().unwrap_or(0);
        let second: u64 = rss_samples[half..].iter().map(|s| s.1).max().unwrap_or(0);
        println!(
            "  rss drift: max of first half {:.1} MiB, of second half {:.1} MiB",
            first as f64 / 1048576.0,
            second as f64 / 1048576.0
        );
    }
    println!(
        "  callbacks delivered {} (queue {})",
        receiver.count.load(Ordering::Relaxed),
        ctx.callbacks.queue_depth()
    );
    if let Some(cluster) = &ctx.cluster {
        cluster.stop();
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(Cost {
        cpu_pct: cpu / wall * 100.0,
        p50_ms: f64::from(pct(0.50)) / 1000.0,
        p99_ms: f64::from(pct(0.99)) / 1000.0,
        ok,
        delivered: receiver.count.load(Ordering::Relaxed),
    })
}

/// Captures the interval rule makes over `stream_ms` of a looped stream whose I-frames are at
/// `keyframes` within each `loop_ms` lap.
fn expected_captures(keyframes: &[u64], loop_ms: u64, stream_ms: u64, interval_ms: u64) -> u64 {
    let mut last: Option<u64> = None;
    let mut n = 0;
    for lap in 0.. {
        for k in keyframes {
            let t = lap * loop_ms + k;
            if t >= stream_ms {
                return n;
            }
            if last.is_none_or(|l| t >= l + interval_ms) {
                last = Some(t);
                n += 1;
            }
        }
        if keyframes.is_empty() {
            return 0;
        }
    }
    n
}

fn total_captures(m: &crate::serve::metrics::Metrics) -> u64 {
    crate::serve::metrics::CODES
        .iter()
        .map(|c| m.captures(c))
        .sum()
}

/// What keeping the newest I-frame costs a capture instance on `tags`.
struct KeptMemory {
    /// Peak linear memory with `keep-last-iframe` on, bytes.
    on: usize,
    /// The same, off.
    off: usize,
    /// Largest access unit kept, bytes.
    largest_iframe: usize,
}

/// Feed `tags` through two capture instances, keeping the newest I-frame and not, and compare
/// their peak linear memory.
fn snapshot_memory(runtime: &crate::runtime::Runtime, tags: &[Tag]) -> anyhow::Result<KeptMemory> {
    use crate::runtime::{KeyMode, SessionInfo, Settings};
    let info = SessionInfo {
        app: "load".into(),
        stream: "memory".into(),
        push_start_ms: 0,
        session_id: 1,
    };
    let settings = Settings {
        interval_s: 3600,
        mode: KeyMode::Sequence,
        shortside_px: None,
        quality: None,
        bucket: "load".into(),
        uniqname: "load".into(),
        alterurl: None,
    };
    let mut peaks = [0usize; 2];
    let mut largest_iframe = 0;
    for (keep, peak) in [true, false].into_iter().zip(&mut peaks) {
        let mut capture = runtime
            .capture(&info, &settings)?
            .map_err(|f| anyhow::anyhow!("{}", f.text()))?;
        capture.keep_last_iframe(keep)?;
        for tag in tags {
            // Rejected tags are the capture rule's business; this only measures memory.
            let _ = capture.push_tag(tag.tag_type, tag.timestamp_ms, &tag.body)?;
            // Sizes read at keyframe-flagged tags (legacy and Enhanced RTMP frame type 1).
            let flagged = tag.body.first().is_some_and(|b| (b >> 4) & 7 == 1);
            if keep
                && tag.tag_type == 9
                && flagged
                && let Some(frame) = capture.last_iframe()?
            {
                largest_iframe = largest_iframe.max(frame.access_unit.len() + frame.config.len());
            }
        }
        *peak = capture.peak_memory_bytes();
    }
    Ok(KeptMemory {
        on: peaks[0],
        off: peaks[1],
        largest_iframe,
    })
}

/// The `p` quantile of sorted `v` (0 when empty).
fn percentile(v: &[u32], p: f64) -> u32 {
    v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0)
}

fn codec_name(codec: Codec) -> &'static str {
    match codec {
        Codec::Avc => "h264",
        Codec::Hevc => "hevc",
    }
}

/// A fixture a stream replays: its tags, lap length and I-frame times.
struct Fixture {
    path: PathBuf,
    tags: Vec<Tag>,
    /// One lap, ms: the last tag's timestamp plus a frame.
    loop_ms: u32,
    /// Timestamps of the keyframe-flagged coded frames (legacy AVC/HEVC and Enhanced RTMP).
    keyframes: Vec<u64>,
    /// The codec of its video, from its first sequence header.
    codec: Option<Codec>,
}

impl Fixture {
    fn read(path: &std::path::Path) -> anyhow::Result<Fixture> {
        let tags = read_fixture(path)?;
        let loop_ms = tags.iter().map(|t| t.timestamp_ms).max().unwrap_or(0) + 34;
        let video = || tags.iter().filter(|t| t.tag_type == 9 && t.body.len() >= 5);
        let keyframes = video()
            .filter(|t| {
                let b = &t.body;
                let flagged = (b[0] >> 4) & 7 == 1;
                // Enhanced RTMP: PacketType CodedFrames (1) or CodedFramesX (3); legacy: AVC/HEVC
                // packet type 1 (NALU).
                let coded = if b[0] & 0x80 != 0 {
                    matches!(b[0] & 0x0f, 1 | 3)
                } else {
                    b[1] == 1
                };
                flagged && coded
            })
            .map(|t| u64::from(t.timestamp_ms))
            .collect();
        let codec = video().find_map(|t| {
            let b = &t.body;
            if b[0] & 0x80 != 0 {
                match &b[1..5] {
                    b"avc1" => Some(Codec::Avc),
                    b"hvc1" => Some(Codec::Hevc),
                    _ => None,
                }
            } else {
                match b[0] & 0x0f {
                    7 => Some(Codec::Avc),
                    12 => Some(Codec::Hevc),
                    _ => None,
                }
            }
        });
        Ok(Fixture {
            path: path.to_owned(),
            tags,
            loop_ms,
            keyframes,
            codec,
        })
    }
}

fn read_fixture(path: &std::path::Path) -> anyhow::Result<Vec<Tag>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut reader = FlvReader::new(std::io::BufReader::new(file), DEFAULT_MAX_TAG_BYTES)?;
    let mut tags = Vec::new();
    while let Some(tag) = reader.next_tag()? {
        tags.push(tag);
    }
    Ok(tags)
}

/// Resident set size of this process, bytes (Linux `/proc/self/status`).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// User + system CPU time of this process, seconds (`/proc/self/stat`, 100 ticks/s).
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = f.get(11)?.parse().ok()?;
            let stime: f64 = f.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(0.0)
}

/// An in-process callback receiver that counts POSTs.
struct Receiver {
    addr: std::net::SocketAddr,
    count: Arc<AtomicU64>,
}

impl Receiver {
    async fn start() -> anyhow::Result<Receiver> {
        let count = Arc::new(AtomicU64::new(0));
        let c = count.clone();
        let app = axum::Router::new().route(
            "/cb",
            axum::routing::post(move |_body: String| {
                let c = c.clone();
                async move {
                    c.fetch_add(1, Ordering::Relaxed);
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Receiver { addr, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_captures_follow_the_rule_over_laps() {
        // I-frames every 2 s in a 10 s lap, interval 5 s: 0, 6, 12 (lap 2 at 2), 18, 24.
        let k = [0, 2000, 4000, 6000, 8000];
        assert_eq!(expected_captures(&k, 10_000, 25_000, 5000), 5);
        assert_eq!(expected_captures(&k, 10_000, 1, 5000), 1);
        assert_eq!(expected_captures(&k, 10_000, 0, 5000), 0);
        assert_eq!(expected_captures(&[], 10_000, 25_000, 5000), 0);
    }
}
