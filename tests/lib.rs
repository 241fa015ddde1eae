//! Shared helpers of livesnap's end-to-end tests and benchmark: fixture discovery, the ffmpeg
//! reference data committed beside the fixtures, one shared [`Runtime`] per process, and a
//! replay into a temporary directory.

use livesnap::ingest::flv::{DEFAULT_MAX_TAG_BYTES, FlvReader, Tag};
use livesnap::replay::{self, ReplayOptions, Summary};
use livesnap::runtime::{KeyMode, Limits, Runtime, SessionInfo, Settings};
use md5::{Digest, Md5};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Push start of every deterministic replay in the tests, Unix ms (2023-11-14T22:13:20Z).
pub const START_MS: u64 = 1_700_000_000_000;
/// Session id of every deterministic replay in the tests.
pub const SESSION_ID: u32 = 7;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf()
}

/// Path of fixture `name` (without `.flv`).
pub fn fixture(name: &str) -> PathBuf {
    root().join("fixtures").join(format!("{name}.flv"))
}

/// Every fixture's name, sorted.
pub fn fixture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("fixtures"))
        .expect("fixtures/ exists")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "flv"))
        .filter_map(|p| p.file_stem().and_then(|s| s.to_str()).map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// One process-wide runtime: compiling the component once keeps the suite fast.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new(Limits::default()).expect("the guest component compiles"))
}

/// Test settings: sequence keys every `interval_s`, bucket `shots`, tenant `acme`, no scaling.
pub fn settings(interval_s: u32) -> Settings {
    Settings {
        interval_s,
        mode: KeyMode::Sequence,
        shortside_px: None,
        quality: None,
        bucket: "shots".into(),
        uniqname: "acme".into(),
        alterurl: None,
    }
}

/// A deterministic session of app `live`, stream `stream`.
pub fn session_info(stream: &str) -> SessionInfo {
    SessionInfo {
        app: "live".into(),
        stream: stream.into(),
        push_start_ms: START_MS,
        session_id: SESSION_ID,
    }
}

/// All tags of an FLV file.
pub fn read_tags(path: &Path) -> Vec<Tag> {
    let file = std::fs::File::open(path).expect("fixture opens");
    let mut reader = FlvReader::new(std::io::BufReader::new(file), DEFAULT_MAX_TAG_BYTES)
        .expect("fixture is FLV");
    let mut tags = Vec::new();
    while let Some(tag) = reader.next_tag().expect("fixture is complete") {
        tags.push(tag);
    }
    tags
}

/// Every I-frame of fixture `name` as the capture rule hands it out at interval 1 s (each shot
/// completed as stored, so the session goes on).
pub fn keyframes(name: &str) -> Vec<livesnap::runtime::Shot> {
    use livesnap::runtime::{Action, Outcome};
    let mut capture = runtime()
        .capture(&session_info(name), &settings(1))
        .expect("a capture instance")
        .expect("valid settings");
    let mut shots = Vec::new();
    for tag in read_tags(&fixture(name)) {
        if let Ok(Action::Capture(shot)) = capture
            .push_tag(tag.tag_type, tag.timestamp_ms, &tag.body)
            .expect("capture does not trap")
        {
            capture
                .complete(shot.seq, &Outcome::Stored((0, 0)))
                .expect("capture does not trap")
                .expect("the shot is outstanding");
            shots.push(shot);
        }
    }
    shots
}

/// One frame of ffmpeg's reference decode (`fixtures/ref/<name>.frames.tsv`).
#[derive(Debug, Clone)]
pub struct RefFrame {
    /// Presentation time, ms.
    pub pts_ms: i64,
    /// ffmpeg's picture type (I, P, B).
    pub pict_type: String,
    /// Width, pixels.
    pub width: u32,
    /// Height, pixels.
    pub height: u32,
    /// MD5 of the raw yuv420p planes.
    pub md5: String,
}

/// ffmpeg's reference frames of fixture `name`.
pub fn ref_frames(name: &str) -> Vec<RefFrame> {
    let path = root()
        .join("fixtures/ref")
        .join(format!("{name}.frames.tsv"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            RefFrame {
                pts_ms: f[0].parse().expect("pts"),
                pict_type: f[1].to_owned(),
                width: f[3].parse().expect("width"),
                height: f[4].parse().expect("height"),
                md5: f[5].to_owned(),
            }
        })
        .collect()
}

/// Hex MD5 of the concatenation of `parts`.
pub fn md5_hex(parts: &[&[u8]]) -> String {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// What a replay into a temporary directory produced.
#[derive(Debug)]
pub struct Replayed {
    /// Callback bodies, one per line, in order.
    pub callbacks: Vec<String>,
    /// Object paths under `{out}/`, sorted, `/`-separated (bucket first).
    pub objects: Vec<String>,
    /// The output directory (removed when this value drops).
    pub out: PathBuf,
    /// The replay summary.
    pub summary: Summary,
}

impl Drop for Replayed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.out);
    }
}

/// Replay options with the deterministic test defaults: interval 10 s, bucket `shots`,
/// tenant `acme`, fixed start and session id.
pub fn options(name: &str) -> ReplayOptions {
    ReplayOptions {
        input: fixture(name),
        out: PathBuf::new(),
        app: "live".into(),
        stream: None,
        interval_s: 10,
        overwrite: false,
        shortside_px: None,
        quality: None,
        start_ms: Some(START_MS),
        session_id: Some(SESSION_ID),
        bucket: "shots".into(),
        uniqname: "acme".into(),
        callbacks: None,
        render_workers: 0,
        features: Default::default(),
    }
}

/// Replay with `opts` into a fresh temporary directory and collect what came out.
pub fn replay_into_temp(mut opts: ReplayOptions) -> anyhow::Result<Replayed> {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = std::env::temp_dir().join(format!("livesnap-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let callbacks_file = out.join("callbacks.jsonl");
    opts.out = out.join("objects");
    opts.callbacks = Some(callbacks_file.clone());
    let summary = replay::replay(runtime(), &opts, &mut |_| {})?;
    let callbacks = std::fs::read_to_string(&callbacks_file)?
        .lines()
        .map(str::to_owned)
        .collect();
    let mut objects = Vec::new();
    list_files(&opts.out, &opts.out, &mut objects);
    objects.sort();
    Ok(Replayed {
        callbacks,
        objects,
        out,
        summary,
    })
}

fn list_files(base: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            list_files(base, &path, out);
        } else if let Ok(rel) = path.strip_prefix(base) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// PSNR in dB between two equally sized sample buffers.
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len(), "psnr of buffers of different sizes");
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = f64::from(x) - f64::from(y);
            d * d
        })
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}
