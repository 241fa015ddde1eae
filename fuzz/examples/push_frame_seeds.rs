//! Writes the `push_frame` seeds, fuzz/seeds/push_frame/, from fixtures/*.flv (fuzz/seed.py
//! writes the other targets' seeds; this one needs the guest's `frame::FlvToFrames`):
//!
//! ```sh
//! cd fuzz && cargo run --release --example push_frame_seeds
//! ```
//!
//! Each fixture's tags go through `FlvToFrames` in each `SetDelivery` mode (every frame, on
//! change, in band); the frames of a window of 160 tags (the first, and 160 around each
//! mid-stream sequence header and each backward video timestamp, as seed.py picks flv_tag's
//! windows; a window in the middle starts with the last sequence header before it) are written
//! in the layout of fuzz_targets/push_frame.rs, settings 0 (interval 1 s, sequence keys), one
//! file `<fixture>.<first tag>.<mode>` each. Tags that carry no frame (audio, script data) are
//! left out. Classification reads only NAL and slice headers, so every NAL unit but parameter
//! sets is cut to its first 40 bytes; out-of-band sets equal to the previous frame's are written
//! as "the previous frame's" (head bit 7). The decoder-coverage fixtures are left out, as in
//! seed.py. Prints, per seed, the shots a session with the target's settings makes of its frames
//! (cut as written): each seed should reach the capture rule. Deterministic: same fixtures, same
//! files; old seeds are removed first.

use livesnap_guest::capture::{Action, Outcome, Session, SessionInfo, Settings};
use livesnap_guest::demux::{FlvPushParser, Tag};
use livesnap_guest::flv::{TAG_VIDEO, VideoCodec, VideoTag, parse_video};
use livesnap_guest::frame::{FlvToFrames, Input, OwnedFrame, SetDelivery};
use livesnap_guest::naming::KeyMode;
use std::path::Path;

const NAL_KEEP: usize = 40;
const WINDOW: usize = 160;
/// Fed only to the decoder targets (seed.py's `decoder_only`).
const DECODER_ONLY: &[&str] = &[
    "pcm_cabac",
    "pcm_cavlc",
    "cavlc_8x8",
    "cqm_jvt",
    "gray_400",
    "fake_interlaced",
    "mbaff_tff",
    "mbaff_bff",
    "slices68_1080p",
    "slice_per_mb_1080p",
];
const MAX_SEED: usize = 64 * 1024;

fn is_parameter_set(codec: VideoCodec, nal: &[u8]) -> bool {
    match (codec, nal.first()) {
        (VideoCodec::Hevc, Some(b)) => (32..=34).contains(&((b >> 1) & 0x3f)),
        (_, Some(b)) => matches!(b & 0x1f, 7 | 8),
        (_, None) => false,
    }
}

fn put_chunk(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).expect("NAL unit under 64 KiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// `frame` with every NAL unit but parameter sets cut to its first `NAL_KEEP` bytes.
fn slim(mut frame: OwnedFrame) -> OwnedFrame {
    for nal in &mut frame.nal_units {
        if !is_parameter_set(frame.codec, nal) {
            nal.truncate(NAL_KEEP);
        }
    }
    frame
}

/// Shots (captured, refused) the target's session makes of `frames`, settings 0.
fn shots(frames: &[OwnedFrame]) -> (usize, usize) {
    let mut session = Session::new(
        SessionInfo {
            app: "live".into(),
            stream: "cam".into(),
            push_start_ms: 1_700_000_000_000,
            session_id: 7,
        },
        Settings {
            interval_s: 1,
            mode: KeyMode::Sequence,
            shortside_px: None,
            quality: None,
            bucket: "shots".into(),
            uniqname: "tenant".into(),
            alterurl: None,
        },
    )
    .expect("valid settings");
    session.keep_last_iframe(true);
    let (mut captured, mut refused) = (0, 0);
    for f in frames {
        match session.push_frame(&f.as_frame()) {
            Ok(Action::Capture(shot)) => {
                captured += 1;
                session
                    .complete(shot.seq, Outcome::Stored(64, 48))
                    .expect("pending shot");
            }
            Ok(Action::Refused(_)) => refused += 1,
            Ok(Action::None) | Err(_) => {}
        }
    }
    (captured, refused)
}

/// The frames in the push_frame input layout.
fn encode(frames: &[OwnedFrame]) -> Vec<u8> {
    let mut out = vec![0];
    let mut prev: Option<(u32, &[Vec<u8>])> = None;
    for f in frames {
        let delta = prev.map(|(dts, _)| f.dts_ms.wrapping_sub(dts));
        let absolute = delta.is_none_or(|d| d > 0xffff);
        let cts = f.pts_ms - i64::from(f.dts_ms);
        let cts = (cts != 0).then(|| i16::try_from(cts).expect("composition offset fits i16"));
        let repeat = !f.parameter_sets.is_empty()
            && prev.is_some_and(|(_, sets)| sets == f.parameter_sets.as_slice());
        assert!(f.parameter_sets.len() <= 7, "at most 7 out-of-band sets");
        let mut head = u8::from(f.codec == VideoCodec::Hevc) | (u8::from(f.damaged) << 1);
        head |= u8::from(absolute) << 2 | u8::from(cts.is_some()) << 3;
        head |= if repeat {
            0x80
        } else {
            (f.parameter_sets.len() as u8) << 4
        };
        out.push(head);
        match delta {
            Some(d) if !absolute => out.extend_from_slice(&(d as u16).to_be_bytes()),
            _ => out.extend_from_slice(&f.dts_ms.to_be_bytes()),
        }
        if let Some(cts) = cts {
            out.extend_from_slice(&cts.to_be_bytes());
        }
        out.push(u8::try_from(f.nal_units.len()).expect("at most 255 NAL units"));
        if !repeat {
            for set in &f.parameter_sets {
                put_chunk(&mut out, set);
            }
        }
        for nal in &f.nal_units {
            put_chunk(&mut out, nal);
        }
        prev = Some((f.dts_ms, &f.parameter_sets));
    }
    out
}

/// First tag of each window: 0, 10 before each mid-stream sequence header, 40 before each
/// backward video timestamp (seed.py's `flv_tag_seeds`).
fn window_starts(tags: &[Tag]) -> Vec<usize> {
    let mut starts = vec![0];
    let mut last_video = None;
    for (i, t) in tags.iter().enumerate() {
        if t.tag_type != TAG_VIDEO {
            continue;
        }
        if i > 5 && is_sequence_header(t) {
            starts.push(i.saturating_sub(10));
        }
        if last_video.is_some_and(|last| t.timestamp_ms < last) {
            starts.push(i.saturating_sub(40));
        }
        last_video = Some(t.timestamp_ms);
    }
    starts.sort_unstable();
    starts.dedup();
    starts
}

fn main() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixtures = fuzz.join("../fixtures");
    let out_dir = fuzz.join("seeds/push_frame");
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).expect("create seeds/push_frame");
    let mut names: Vec<String> = std::fs::read_dir(&fixtures)
        .expect("fixtures/")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".flv").map(str::to_owned))
        .filter(|n| !DECODER_ONLY.contains(&n.as_str()))
        .collect();
    names.sort();
    let (mut count, mut total) = (0, 0);
    for name in names {
        let bytes = std::fs::read(fixtures.join(format!("{name}.flv"))).expect("read fixture");
        let tags = FlvPushParser::new(16 << 20)
            .push(&bytes)
            .expect("fixture is FLV");
        for start in window_starts(&tags) {
            let window = &tags[start..(start + WINDOW).min(tags.len())];
            for (mode, delivery) in [
                ("every_frame", SetDelivery::EveryFrame),
                ("on_change", SetDelivery::OnChange),
                ("in_band", SetDelivery::InBand),
            ] {
                // A window in the middle starts with the last sequence header before it, so
                // its first frame brings the sets in force (out of band or in band).
                let mut convert = FlvToFrames::new(delivery);
                if let Some(t) = tags[..start].iter().rev().find(|t| is_sequence_header(t)) {
                    convert.convert(t.tag_type, t.timestamp_ms, &t.body);
                }
                let frames: Vec<OwnedFrame> = window
                    .iter()
                    .filter_map(
                        |t| match convert.convert(t.tag_type, t.timestamp_ms, &t.body) {
                            Input::Frame(f) => Some(slim(f)),
                            Input::Tag { .. } | Input::Nothing => None,
                        },
                    )
                    .collect();
                if frames.is_empty() {
                    continue;
                }
                let seed = encode(&frames);
                let (captured, refused) = shots(&frames);
                println!(
                    "{name}.{start}.{mode}: {} frames, {} bytes, {captured} captured, \
                     {refused} refused",
                    frames.len(),
                    seed.len()
                );
                assert!(
                    seed.len() < MAX_SEED,
                    "{name} at tag {start}: {} bytes",
                    seed.len()
                );
                std::fs::write(out_dir.join(format!("{name}.{start}.{mode}")), &seed)
                    .expect("write seed");
                count += 1;
                total += seed.len();
            }
        }
    }
    println!("push_frame: {count} seeds, {total} bytes");
}

fn is_sequence_header(t: &Tag) -> bool {
    t.tag_type == TAG_VIDEO && matches!(parse_video(&t.body), Ok(VideoTag::SequenceHeader { .. }))
}
