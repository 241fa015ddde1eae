//! Command-line interface (DESIGN.md "Interfaces of the binary").

use crate::replay::{self, InputError, ReplayOptions};
use crate::runtime::{Limits, Runtime};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Screenshots of live H.264 and HEVC streams: I-frames only, no transcoding.
#[derive(Debug, Parser)]
#[command(name = "livesnap", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replay a recorded FLV file as one push: store its screenshots and write its callbacks.
    Replay(ReplayArgs),
    /// Run the live service: RTMP ingest, HTTP-FLV pulls, tenants, storage, callbacks, HTTP.
    Serve(ServeArgs),
    /// Load test: N concurrent real-time streams through the service's in-process path.
    Loadtest(LoadArgs),
    /// Write the embeddable artifacts: DIR/livesnap.wasm (the capability-free capture + render
    /// component), DIR/livesnap-edge.wasm (the wasi:http edge proxy) and DIR/wit/ (the contract).
    Component(ComponentArgs),
    /// Print every I-frame the capture rule sees at interval 1 s: clock, pts, codec/profile,
    /// size, bit depth, slices, decode time, MD5 of the Y, U and V planes.
    Probe(ProbeArgs),
}

#[derive(Debug, Args)]
struct ComponentArgs {
    /// Directory to write into (created if missing; existing files of the same names are
    /// replaced).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

#[derive(Debug, Args)]
struct ProbeArgs {
    /// A recorded FLV file, an http(s):// FLV stream or an rtsp:// camera
    /// (`rtsp://[user:password@]host[:port]/path`).
    file: String,
    /// Also write each decoded picture as raw planar YUV into DIR (yuv420p, or yuv420p10le).
    #[arg(long, value_name = "DIR")]
    yuv: Option<PathBuf>,
    /// How long to watch a network source, seconds.
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    duration: f64,
    /// How an RTSP camera sends RTP: tcp (interleaved) or udp.
    #[arg(long, value_name = "tcp|udp", default_value = "tcp", value_parser = ["tcp", "udp"])]
    transport: String,
}

#[derive(Debug, Args)]
struct LoadArgs {
    /// Concurrent streams.
    #[arg(long, default_value_t = 100)]
    streams: usize,
    /// Fixture each stream replays in real time, looped. Repeat it for a mix: stream i plays
    /// the (i mod n)-th, e.g. `--fixture fixtures/high_720p.flv --fixture fixtures/hevc_1080p.flv`.
    #[arg(long = "fixture", default_value = "fixtures/high_720p.flv")]
    fixtures: Vec<PathBuf>,
    /// Capture interval, seconds.
    #[arg(long, default_value_t = 20)]
    interval: u32,
    /// Duration of the load, seconds.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Spread stream starts over this many seconds (default: the interval).
    #[arg(long)]
    stagger: Option<u64>,
    /// Render workers (default: cores).
    #[arg(long)]
    render_workers: Option<usize>,
    /// Progress line every N seconds.
    #[arg(long, default_value_t = 10)]
    report_every: u64,
    /// Do not POST callbacks (they are still formatted): measures the path without the spool.
    #[arg(long)]
    no_callbacks: bool,
    /// Run the load twice, embedded spool then cluster mode against this NATS JetStream
    /// server, and print the CPU and latency of both side by side.
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
    /// Replicas of the cluster run's JetStream streams and buckets (1 for one server).
    #[arg(long, default_value_t = 1)]
    nats_replicas: usize,
    /// Cameras: every stream pulls this rtsp:// URL through the RTSP ingest (serve one media to
    /// all, e.g. host/tests/common/rtsp_server.py --loop); `--fixture` then names the file the
    /// camera plays, for the expected captures.
    #[arg(long, value_name = "URL")]
    rtsp: Option<String>,
    /// How the cameras send RTP: tcp or udp.
    #[arg(long, default_value = "tcp", value_parser = ["tcp", "udp"])]
    rtsp_transport: String,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The service configuration (TOML; see README "Service configuration").
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

/// `livesnap replay` arguments, boxed: they are many beside the other subcommands'.
#[derive(Debug, Args)]
struct ReplayArgs {
    #[command(flatten)]
    flags: Box<ReplayFlags>,
}

#[derive(Debug, Args)]
struct ReplayFlags {
    /// The FLV file to replay.
    #[arg(required_unless_present = "resume_only")]
    file: Option<PathBuf>,
    /// Directory for objects: each is stored at DIR/{bucket}/{key} (filesystem storage; required
    /// unless the storage is S3 or the config file's [storage] names a root).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// App name ([A-Za-z0-9_.-]{1,128}).
    #[arg(long, default_value = "live")]
    app: String,
    /// Stream name; defaults to the file stem.
    #[arg(long)]
    stream: Option<String>,
    /// Minimum seconds between two captures (1..=3600).
    #[arg(long, default_value_t = 20, value_name = "S")]
    interval: u32,
    /// Keep one picture per stream (record/{App}/{Stream}/picture/{Stream}.jpg), overwritten.
    #[arg(long)]
    overwrite: bool,
    /// Scale down so the short side is N pixels (never upscale).
    #[arg(long, value_name = "N")]
    shortside: Option<u32>,
    /// JPEG quality step 1-10 (JPEG quality 10×N; default JPEG quality 80).
    #[arg(long, value_name = "1-10")]
    quality: Option<u8>,
    /// Push start time, Unix ms (default: now). Fix it for reproducible keys.
    #[arg(long, value_name = "MS")]
    start_ms: Option<u64>,
    /// Session id (default: random). Fix it for reproducible keys.
    #[arg(long, value_name = "N")]
    session_id: Option<u32>,
    /// Bucket name (default: the config file's [storage] bucket, else livesnap).
    #[arg(long)]
    bucket: Option<String>,
    /// Tenant name, echoed in callbacks.
    #[arg(long, default_value = "local")]
    uniqname: String,
    /// Write each callback body as a JSON line to FILE, or `-` for stdout.
    #[arg(long, value_name = "FILE|-")]
    callbacks: Option<PathBuf>,
    /// Read the [storage] and [callbacks] tables of this TOML file (other tables are ignored, so
    /// a `livesnap serve` config works). Flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Object storage: fs (files under --out) or s3. Default: the config file's, else fs; any
    /// --s3-* flag selects s3.
    #[arg(long, value_enum, value_name = "KIND")]
    storage: Option<StorageKindArg>,
    /// S3 endpoint URL, e.g. http://127.0.0.1:9000 (default: AWS, or $AWS_ENDPOINT_URL).
    /// Path-style requests; plain http is allowed when the URL says http://.
    #[arg(long, value_name = "URL")]
    s3_endpoint: Option<String>,
    /// S3 region (default: $AWS_REGION or $AWS_DEFAULT_REGION, else us-east-1).
    #[arg(long, value_name = "REGION")]
    s3_region: Option<String>,
    /// S3 access key id (default: $AWS_ACCESS_KEY_ID).
    #[arg(long, value_name = "ID")]
    s3_access_key_id: Option<String>,
    /// S3 secret access key (default: $AWS_SECRET_ACCESS_KEY, which keeps it out of `ps`).
    #[arg(long, value_name = "KEY")]
    s3_secret_access_key: Option<String>,
    /// POST each callback to URL as well: signed, retried, spooled on disk until delivered.
    #[arg(long, value_name = "URL")]
    callback_url: Option<String>,
    /// HMAC-SHA256 secret to sign callbacks with (default: $LIVESNAP_CALLBACK_SECRET).
    #[arg(long, value_name = "S", requires = "callback_url")]
    callback_secret: Option<String>,
    /// Once the file is replayed, wait up to SECS for every callback to be delivered or final;
    /// what is still pending stays spooled and the exit code is 1.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    callback_timeout: u64,
    /// Callback spool directory (default: the config file's [callbacks] spool_dir, else
    /// $XDG_STATE_HOME/livesnap/spool or ~/.local/state/livesnap/spool).
    #[arg(long, value_name = "DIR")]
    spool: Option<PathBuf>,
    /// Render I-frames on N render instances at once (default: one per core). Keys, callbacks
    /// and their order are the same for every N.
    #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true)]
    render_workers: usize,
    /// Write the session index `index.json` into the session folder (README "Session index").
    #[arg(long)]
    index: bool,
    /// Refresh the index every N completed attempts as the replay goes (1..=10000).
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10000))]
    index_every: u32,
    /// Emit `LiveSnapShotSession` started/ended callbacks around the capture callbacks.
    #[arg(long)]
    session_callbacks: bool,
    /// Build a storyboard: sprite sheets `storyboard-N.jpg` and `storyboard.vtt` in the session
    /// folder (README "Storyboard").
    #[arg(long)]
    storyboard: bool,
    /// Storyboard tile width in pixels (2..=1920).
    #[arg(long, value_name = "PX", default_value_t = 160, value_parser = clap::value_parser!(u32).range(2..=1920))]
    storyboard_tile_width: u32,
    /// Tiles per storyboard row (1..=100).
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    storyboard_columns: u32,
    /// Rows per storyboard sheet (1..=100).
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    storyboard_rows: u32,
    /// Do not capture blank pictures; try the next I-frame (README "Blank and frozen pictures").
    #[arg(long)]
    skip_blank: bool,
    /// Do not capture a picture equal to the previous capture; try the next I-frame.
    #[arg(long)]
    skip_frozen: bool,
    /// Replay nothing: deliver what earlier runs left in the spool, then exit.
    #[arg(long, conflicts_with_all = ["file", "callback_url", "callbacks"])]
    resume_only: bool,
}

/// Run the command line; returns the process exit code (0 ok, 1 runtime failure, 2 bad input).
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => serve_command(&args),
        Command::Loadtest(args) => loadtest_command(args),
        Command::Component(args) => match crate::artifact::write(&args.out) {
            Ok(written) => {
                for line in written {
                    println!("{line}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("livesnap: error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Probe(args) => {
            let options = crate::probe::ProbeOptions {
                yuv_dir: args.yuv.clone(),
                duration: std::time::Duration::try_from_secs_f64(args.duration).ok(),
                transport: if args.transport == "udp" {
                    crate::config::RtpTransport::Udp
                } else {
                    crate::config::RtpTransport::Tcp
                },
            };
            match crate::probe::probe(&args.file, &options, &mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("livesnap: error: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Replay(args) => match replay_command(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("livesnap: error: {e:#}");
                if e.downcast_ref::<InputError>().is_some() {
                    ExitCode::from(2)
                } else {
                    ExitCode::FAILURE
                }
            }
        },
    }
}

fn replay_command(args: ReplayArgs) -> anyhow::Result<()> {
    let args = *args.flags;
    let file = match &args.config {
        Some(path) => replay::ReplayConfigFile::load(path)?,
        None => replay::ReplayConfigFile::default(),
    };
    let wait = std::time::Duration::from_secs(args.callback_timeout);
    let mut delivery = file.callbacks.clone().unwrap_or_default();
    if let Some(dir) = &args.spool {
        delivery.spool_dir = dir.clone();
    }
    if args.resume_only {
        let report = replay::resume(&delivery, wait)?;
        eprintln!("livesnap: {}", report.line());
        return match report.problem() {
            Some(problem) => Err(anyhow::anyhow!(problem)),
            None => Ok(()),
        };
    }
    let storage = replay_storage(&args, file.storage)?;
    let out = match storage.kind {
        crate::storage::StorageKind::Fs => storage.root.clone().unwrap_or_default(),
        crate::storage::StorageKind::S3 => PathBuf::new(),
    };
    let secret = args.callback_secret.clone().or_else(|| {
        std::env::var("LIVESNAP_CALLBACK_SECRET")
            .ok()
            .filter(|s| !s.is_empty())
    });
    let outputs = replay::Outputs {
        http: args.callback_url.clone().map(|url| replay::HttpDelivery {
            target: crate::callback::Target { url, secret },
            delivery,
            wait,
        }),
        storage: Some(storage.clone()),
    };
    let opts = ReplayOptions {
        input: args.file.unwrap_or_default(),
        out,
        app: args.app,
        stream: args.stream,
        interval_s: args.interval,
        overwrite: args.overwrite,
        shortside_px: args.shortside,
        quality: args.quality,
        start_ms: args.start_ms,
        session_id: args.session_id,
        bucket: args
            .bucket
            .or(storage.bucket)
            .unwrap_or_else(|| "livesnap".to_owned()),
        uniqname: args.uniqname,
        callbacks: args.callbacks,
        render_workers: args.render_workers,
        features: crate::features::Features {
            index: args.index,
            index_every: args.index_every,
            session_callbacks: args.session_callbacks,
            skip_blank: args.skip_blank,
            skip_frozen: args.skip_frozen,
            storyboard: args
                .storyboard
                .then_some(crate::runtime::StoryboardSettings {
                    tile_width_px: args.storyboard_tile_width,
                    columns: args.storyboard_columns,
                    rows: args.storyboard_rows,
                }),
        },
    };
    let total = std::fs::metadata(&opts.input).map(|m| m.len()).unwrap_or(0);
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {bar:40} {bytes}/{total_bytes} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let runtime = Runtime::new(Limits::default())?;
    let summary = replay::replay_with(&runtime, &opts, &outputs, &mut |pos| bar.set_position(pos))?;
    bar.finish_and_clear();
    eprintln!("livesnap: {}", summary.line());
    if let Some(why) = &summary.truncated {
        eprintln!("livesnap: warning: {why}");
    }
    if let Some(problem) = summary.delivery.as_ref().and_then(|d| d.problem()) {
        return Err(anyhow::anyhow!(problem));
    }
    Ok(())
}

/// `--storage` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum StorageKindArg {
    /// Files under --out.
    Fs,
    /// An S3-compatible object store.
    S3,
}

/// The replay's storage: the config file's `[storage]`, overridden by flags. Mixing fs and S3
/// settings is an input error (exit 2), so a typo never silently writes to the wrong place.
fn replay_storage(
    args: &ReplayFlags,
    from_file: Option<crate::storage::StorageConfig>,
) -> anyhow::Result<crate::storage::StorageConfig> {
    use crate::storage::{StorageConfig, StorageKind};
    let s3_flag = [
        ("--s3-endpoint", args.s3_endpoint.is_some()),
        ("--s3-region", args.s3_region.is_some()),
        ("--s3-access-key-id", args.s3_access_key_id.is_some()),
        (
            "--s3-secret-access-key",
            args.s3_secret_access_key.is_some(),
        ),
    ]
    .into_iter()
    .find_map(|(flag, set)| set.then_some(flag));
    let kind = match (args.storage, s3_flag) {
        (Some(StorageKindArg::Fs), Some(flag)) => {
            return Err(InputError(format!("{flag} needs S3 storage, but --storage is fs")).into());
        }
        (Some(StorageKindArg::Fs), None) => StorageKind::Fs,
        (Some(StorageKindArg::S3), _) | (None, Some(_)) => StorageKind::S3,
        (None, None) => from_file.as_ref().map_or(StorageKind::Fs, |f| f.kind),
    };
    let mut cfg = match from_file {
        Some(f) if f.kind == kind => f,
        // The file describes the other backend: keep only what applies to both.
        Some(f) => StorageConfig {
            kind,
            bucket: f.bucket,
            ..StorageConfig::default()
        },
        None => StorageConfig {
            kind,
            ..StorageConfig::default()
        },
    };
    match kind {
        StorageKind::Fs => {
            if let Some(out) = &args.out {
                cfg.root = Some(out.clone());
            }
            if cfg.root.is_none() {
                return Err(InputError(
                    "--out DIR is required (or S3 storage: --storage s3, an --s3-* flag, or \
                     kind = \"s3\" in the --config file's [storage])"
                        .into(),
                )
                .into());
            }
        }
        StorageKind::S3 => {
            if args.out.is_some() {
                return Err(InputError(
                    "--out is for filesystem storage: with S3 storage objects go to the bucket \
                     (--bucket)"
                        .into(),
                )
                .into());
            }
            let flags = [
                (&args.s3_endpoint, &mut cfg.endpoint),
                (&args.s3_region, &mut cfg.region),
                (&args.s3_access_key_id, &mut cfg.access_key_id),
                (&args.s3_secret_access_key, &mut cfg.secret_access_key),
            ];
            for (flag, key) in flags {
                if let Some(value) = flag {
                    *key = Some(value.clone());
                }
            }
        }
    }
    cfg.validate()
        .map_err(|e| InputError(format!("invalid storage settings: {e:#}")))?;
    Ok(cfg)
}

fn serve_command(args: &ServeArgs) -> ExitCode {
    let config = match crate::config::Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("livesnap: error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("livesnap: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let server = crate::serve::Server::bind(config).await?;
        let shutdown = crate::serve::shutdown_signal();
        eprintln!(
            "livesnap: serving RTMP on {} and HTTP on {}",
            server.rtmp_addr(),
            server.http_addr()
        );
        server.run(shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("livesnap: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn loadtest_command(args: LoadArgs) -> ExitCode {
    let rtsp = match args.rtsp.as_deref().map(crate::config::SourceUrl::parse) {
        None => None,
        Some(Ok(url)) if url.kind() == crate::config::SourceKind::Rtsp => {
            let transport = if args.rtsp_transport == "udp" {
                crate::config::RtpTransport::Udp
            } else {
                crate::config::RtpTransport::Tcp
            };
            Some((url, transport))
        }
        Some(Ok(url)) => {
            eprintln!("livesnap: error: --rtsp {url} is not an rtsp:// URL");
            return ExitCode::from(2);
        }
        Some(Err(e)) => {
            eprintln!("livesnap: error: --rtsp: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = crate::loadtest::LoadOptions {
        streams: args.streams,
        fixtures: args.fixtures,
        interval_s: args.interval,
        duration_s: args.duration,
        stagger_s: args.stagger.unwrap_or(u64::from(args.interval)),
        render_workers: args.render_workers,
        report_every_s: args.report_every.max(1),
        callbacks: !args.no_callbacks,
        nats: args.nats,
        nats_replicas: args.nats_replicas,
        rtsp,
    };
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(crate::loadtest::run(opts)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("livesnap: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
