//! `livesnap probe FILE.flv`: what the capture rule sees in a file, one line per I-frame it
//! would capture at interval 1 s — session clock, pts, codec and profile, size and bit depth,
//! slice count, decode time and the MD5 of each decoded plane (the same layout as ffmpeg's raw
//! video, so lines compare with `ffmpeg -f framemd5`/`fixtures/ref`). `--yuv DIR` also writes
//! each picture as raw planar YUV (yuv420p, or yuv420p10le for 10-bit).

use crate::ingest::flv::{DEFAULT_MAX_TAG_BYTES, FlvReader};
use crate::runtime::{
    Action, Codec, Frame, KeyMode, Matrix, Outcome, Runtime, SessionInfo, Settings, Transfer,
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

/// Probe `input`, writing one line per due I-frame to `out`.
pub fn probe(input: &Path, yuv_dir: Option<&Path>, out: &mut dyn Write) -> anyhow::Result<()> {
    let file =
        std::fs::File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
    let mut reader = FlvReader::new(std::io::BufReader::new(file), DEFAULT_MAX_TAG_BYTES)
        .with_context(|| format!("{}: is it an FLV file?", input.display()))?;
    let runtime = Runtime::new(Default::default())?;
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
    let mut capture = runtime
        .capture(&info, &settings)?
        .map_err(|f| anyhow::anyhow!("{}", f.text()))?;
    let mut renderer = runtime.renderer()?;
    if let Some(dir) = yuv_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    writeln!(
        out,
        "clock_ms\tpts_ms\tcodec\tsize\tbit_depth\tcolour\tslices\tdecode_ms\tmd5_y\tmd5_u\tmd5_v"
    )?;
    while let Some(tag) = reader.next_tag().context("reading the file")? {
        let shot = match capture.push_tag(tag.tag_type, tag.timestamp_ms, &tag.body)? {
            Ok(Action::Capture(shot)) => shot,
            Ok(Action::Refused(body)) => {
                writeln!(
                    out,
                    "refused at {} ms: {}",
                    tag.timestamp_ms,
                    crate::warn_once::errmsg_of(&body)
                )?;
                continue;
            }
            Ok(Action::None) | Err(_) => continue,
        };
        let (codec, length_size) = describe(shot.codec, &shot.config);
        let slices = slice_count(shot.codec, &shot.access_unit, length_size);
        let started = Instant::now();
        let decoded = renderer.decode(
            &runtime,
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
                if let Some(dir) = yuv_dir {
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
        let _ = capture.complete(shot.seq, &outcome)?;
    }
    Ok(())
}
