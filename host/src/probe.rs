//! `livesnap probe FILE.flv | http://….flv | rtsp://…`: what the capture rule sees in a file, an
//! HTTP-FLV stream or a camera (for `--duration`), one line per I-frame it would capture at
//! interval 1 s — session clock, pts, codec and profile, size and bit depth,
//! slice count, decode time and the MD5 of each decoded plane (the same layout as ffmpeg's raw
//! video, so lines compare with `ffmpeg -f framemd5`/`fixtures/ref`). `--yuv DIR` also writes
//! each picture as raw planar YUV (yuv420p, or yuv420p10le for 10-bit).

use crate::config::{RtpTransport, SourceKind, SourceUrl};
use crate::ingest::flv::{DEFAULT_MAX_TAG_BYTES, FlvPushParser, FlvReader};
use crate::ingest::rtsp::Camera;
use crate::runtime::{
    Action, CaptureInstance, Codec, CodedFrame, Failure, Frame, KeyMode, Matrix, Outcome,
    RenderInstance, Runtime, SessionInfo, Settings, Transfer,
};
use anyhow::Context;
use md5::{Digest, Md5};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// Name of an AVC `profile_idc` (H.264 Annex A).
fn avc_profile(idc: u8) -> &'static str {
    match idc {
        66 => "baseline",
        77 => "main",
        88 => "extended",
        100 => "high",
        110 => "high 10",
        122 => "high 4:2:2",
        244 => "high 4:4:4",
        _ => "other",
    }
}

/// Name of an HEVC `general_profile_idc` (H.265 Annex A).
fn hevc_profile(idc: u8) -> &'static str {
    match idc {
        1 => "main",
        2 => "main 10",
        3 => "main still picture",
        4 => "range extensions",
        9 => "screen content",
        _ => "other",
    }
}

/// Codec and profile from the configuration record's profile byte (both records keep it in
/// byte 1), and the NAL length size (AVC byte 4, HEVC byte 21).
fn describe(codec: Codec, config: &[u8]) -> (String, usize) {
    let byte = |i: usize| config.get(i).copied().unwrap_or(0);
    match codec {
        Codec::Avc => (
            format!("h264 {}", avc_profile(byte(1))),
            usize::from(byte(4) & 3) + 1,
        ),
        Codec::Hevc => (
            format!("hevc {}", hevc_profile(byte(1) & 0x1f)),
            usize::from(byte(21) & 3) + 1,
        ),
    }
}

/// Slice NAL units in a length-prefixed access unit.
fn slice_count(codec: Codec, access_unit: &[u8], length_size: usize) -> usize {
    let mut rest = access_unit;
    let mut count = 0;
    while let Some((prefix, after)) = rest.split_at_checked(length_size) {
        let len = prefix
            .iter()
            .fold(0usize, |a, &b| (a << 8) | usize::from(b));
        let Some((nal, next)) = after.split_at_checked(len) else {
            break;
        };
        let is_slice = match (codec, nal.first()) {
            (Codec::Avc, Some(h)) => matches!(h & 0x1f, 1 | 5),
            (Codec::Hevc, Some(h)) => {
                let t = (h >> 1) & 0x3f;
                t <= 9 || (16..=21).contains(&t)
            }
            _ => false,
        };
        count += usize::from(is_slice);
        rest = next;
    }
    count
}

/// How the render reads the picture's colour: matrix, transfer (PQ/HLG are tone-mapped) and
/// range, after the stream's `colorInfo` filled in what the VUI leaves unspecified.
fn colour(f: &Frame) -> String {
    let matrix = match f.matrix {
        Matrix::Bt601 => "bt601",
        Matrix::Bt709 => "bt709",
        Matrix::Bt2020 => "bt2020",
    };
    let transfer = match f.transfer {
        Transfer::Sdr => "sdr",
        Transfer::Pq => "pq",
        Transfer::Hlg => "hlg",
    };
    let range = if f.full_range { "full" } else { "limited" };
    format!("{matrix}/{transfer}/{range}")
}

fn plane_md5(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

/// What to probe and how.
#[derive(Debug, Clone, Default)]
pub struct ProbeOptions {
    /// Also write each decoded picture as raw planar YUV here.
    pub yuv_dir: Option<std::path::PathBuf>,
    /// For a network source: how long to watch it (default [`DEFAULT_NETWORK_DURATION`]).
    pub duration: Option<std::time::Duration>,
    /// For an RTSP source: how RTP arrives.
    pub transport: RtpTransport,
}

/// How long a network source is watched when `--duration` is not given.
pub const DEFAULT_NETWORK_DURATION: std::time::Duration = std::time::Duration::from_secs(10);

/// Probe `input` — a recorded FLV file, an `http(s)://` FLV stream or an `rtsp://` camera —
/// writing one line per due I-frame to `out` (a network source for `options.duration`).
pub fn probe(input: &str, options: &ProbeOptions, out: &mut dyn Write) -> anyhow::Result<()> {
    let is_url = ["rtsp://", "rtsps://", "http://", "https://"]
        .iter()
        .any(|p| input.starts_with(p));
    let runtime = Runtime::new(Default::default())?;
    let mut prober = Prober::new(&runtime, options.yuv_dir.as_deref(), out)?;
    if !is_url {
        let path = Path::new(input);
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut reader = FlvReader::new(std::io::BufReader::new(file), DEFAULT_MAX_TAG_BYTES)
            .with_context(|| format!("{}: is it an FLV file?", path.display()))?;
        while let Some(tag) = reader.next_tag().context("reading the file")? {
            prober.tag(tag.tag_type, tag.timestamp_ms, &tag.body)?;
        }
        return Ok(());
    }
    let url = SourceUrl::parse(input).map_err(|e| anyhow::anyhow!("{e}"))?;
    let duration = options.duration.unwrap_or(DEFAULT_NETWORK_DURATION);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let deadline = tokio::time::Instant::now() + duration;
        match url.kind() {
            SourceKind::Rtsp => {
                let connect = Camera::connect(&url, options.transport, DEFAULT_MAX_TAG_BYTES);
                let mut camera = tokio::time::timeout(std::time::Duration::from_secs(15), connect)
                    .await
                    .map_err(|_| {
                        anyhow::anyhow!("{url}: no answer to DESCRIBE/SETUP/PLAY within 15 s")
                    })??;
                eprintln!("livesnap: {url}: {}", camera.description);
                while let Ok(frame) = tokio::time::timeout_at(deadline, camera.next_frame()).await {
                    let Some(frame) = frame? else { break };
                    prober.frame(&frame)?;
                }
            }
            SourceKind::HttpFlv => {
                let client = reqwest::Client::builder()
                    .connect_timeout(std::time::Duration::from_secs(5))
                    .build()?;
                let mut response = client
                    .get(url.secret().clone())
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(|e| anyhow::anyhow!("GET {url}: {}", e.without_url()))?;
                let mut parser = FlvPushParser::new(DEFAULT_MAX_TAG_BYTES);
                while let Ok(chunk) = tokio::time::timeout_at(deadline, response.chunk()).await {
                    let Some(chunk) =
                        chunk.map_err(|e| anyhow::anyhow!("{url}: {}", e.without_url()))?
                    else {
                        break;
                    };
                    for tag in parser.push(&chunk)? {
                        prober.tag(tag.tag_type, tag.timestamp_ms, &tag.body)?;
                    }
                }
            }
        }
        anyhow::Ok(())
    })
}

/// A probing session: pushes tags or frames, decodes each due I-frame, writes its line.
struct Prober<'a> {
    runtime: &'a Runtime,
    capture: CaptureInstance,
    renderer: RenderInstance,
    yuv_dir: Option<&'a Path>,
    out: &'a mut dyn Write,
}

impl<'a> Prober<'a> {
    fn new(
        runtime: &'a Runtime,
        yuv_dir: Option<&'a Path>,
        out: &'a mut dyn Write,
    ) -> anyhow::Result<Self> {
        let info = SessionInfo {
            app: "live".into(),
            stream: "probe".into(),
            push_start_ms: 0,
            session_id: 0,
        };
        let settings = Settings {
            interval_s: 1,
            mode: KeyMode::Sequence,
            shortside_px: None,
            quality: None,
            bucket: "probe".into(),
            uniqname: "probe".into(),
            alterurl: None,
        };
        let capture = runtime
            .capture(&info, &settings)?
            .map_err(|f| anyhow::anyhow!("{}", f.text()))?;
        let renderer = runtime.renderer()?;
        if let Some(dir) = yuv_dir {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        writeln!(
            out,
            "clock_ms\tpts_ms\tcodec\tsize\tbit_depth\tcolour\tslices\tdecode_ms\tmd5_y\tmd5_u\tmd5_v"
        )?;
        Ok(Prober {
            runtime,
            capture,
            renderer,
            yuv_dir,
            out,
        })
    }

    fn tag(&mut self, tag_type: u8, timestamp_ms: u32, body: &[u8]) -> anyhow::Result<()> {
        let action = self.capture.push_tag(tag_type, timestamp_ms, body)?;
        self.action(action, i64::from(timestamp_ms))
    }

    fn frame(&mut self, frame: &CodedFrame) -> anyhow::Result<()> {
        let action = self.capture.push_frame(frame)?;
        self.action(action, frame.pts_ms)
    }

    fn action(&mut self, action: Result<Action, Failure>, at_ms: i64) -> anyhow::Result<()> {
        let (runtime, out) = (self.runtime, &mut *self.out);
        let shot = match action {
            Ok(Action::Capture(shot)) => shot,
            Ok(Action::Refused(body)) => {
                writeln!(
                    out,
                    "refused at {at_ms} ms: {}",
                    crate::warn_once::errmsg_of(&body)
                )?;
                return Ok(());
            }
            Ok(Action::None) | Err(_) => return Ok(()),
        };
        let (codec, length_size) = describe(shot.codec, &shot.config);
        let slices = slice_count(shot.codec, &shot.access_unit, length_size);
        let started = Instant::now();
        let decoded = self.renderer.decode(
            runtime,
            shot.codec,
            &shot.config,
            &shot.access_unit,
            shot.color,
        )?;
        let decode_ms = started.elapsed().as_secs_f64() * 1000.0;
        let outcome = match decoded {
            Ok(f) => {
                writeln!(
                    out,
                    "{}\t{}\t{codec}\t{}x{}\t{}\t{}\t{slices}\t{decode_ms:.1}\t{}\t{}\t{}",
                    shot.clock_ms,
                    shot.pts_ms,
                    f.width_px,
                    f.height_px,
                    f.bit_depth,
                    colour(&f),
                    plane_md5(&f.y),
                    plane_md5(&f.u),
                    plane_md5(&f.v)
                )?;
                if let Some(dir) = self.yuv_dir {
                    let ext = if f.bit_depth > 8 {
                        "yuv420p10le"
                    } else {
                        "yuv420p"
                    };
                    // The session clock is unique per capture; a pts may repeat (an encoder
                    // restart sends timestamps back).
                    let path = dir.join(format!(
                        "{}-{}-{}x{}.{ext}",
                        shot.clock_ms, shot.pts_ms, f.width_px, f.height_px
                    ));
                    std::fs::write(&path, [f.y.as_slice(), &f.u, &f.v].concat())
                        .with_context(|| format!("cannot write {}", path.display()))?;
                }
                Outcome::Stored((f.width_px, f.height_px))
            }
            Err(failure) => {
                writeln!(
                    out,
                    "{}\t{}\t{codec}\t-\t-\t-\t{slices}\t{decode_ms:.1}\t{}",
                    shot.clock_ms,
                    shot.pts_ms,
                    failure.text()
                )?;
                Outcome::Failed(failure)
            }
        };
        let _ = self.capture.complete(shot.seq, &outcome)?;
        Ok(())
    }
}
