//! The HEVC fixtures through the pure guest modules, natively: every I-frame the capture rule
//! finds decodes bit-exactly like ffmpeg (`fixtures/ref/<name>.frames.tsv`), or fails as the
//! fixture intends. The same checks run through the component in `tests/e2e`.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use livesnap_guest::flv::{self, VideoCodec, VideoTag};
use livesnap_guest::hevc::{FrameKind, HevcConfig};
use livesnap_guest::render_hevc;
use md5::{Digest, Md5};
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// (timestamp, body) of each video tag.
fn video_tags(name: &str) -> Vec<(u32, Vec<u8>)> {
    let buf = std::fs::read(fixtures().join(format!("{name}.flv"))).unwrap();
    let mut pos = u32::from_be_bytes(buf[5..9].try_into().unwrap()) as usize + 4;
    let mut out = Vec::new();
    while pos + 11 <= buf.len() {
        let size = u32::from_be_bytes([0, buf[pos + 1], buf[pos + 2], buf[pos + 3]]) as usize;
        let ts = u32::from_be_bytes([buf[pos + 7], buf[pos + 4], buf[pos + 5], buf[pos + 6]]);
        if buf[pos] & 0x1f == 9 {
            out.push((ts, buf[pos + 11..pos + 11 + size].to_vec()));
        }
        pos += 15 + size;
    }
    out
}

/// md5 of ffmpeg's I pictures by pts.
fn ref_md5(name: &str, pts: i64) -> Vec<String> {
    let text = std::fs::read_to_string(fixtures().join(format!("ref/{name}.frames.tsv"))).unwrap();
    text.lines()
        .skip(1)
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|f| f[0] == pts.to_string() && f[1] == "I")
        .map(|f| f[5].to_string())
        .collect()
}

fn check(name: &str) -> (usize, Vec<String>) {
    let mut config: Option<HevcConfig> = None;
    let (mut exact, mut failures) = (0, Vec::new());
    for (ts, body) in video_tags(name) {
        match flv::parse_video(&body).unwrap() {
            VideoTag::SequenceHeader {
                codec: VideoCodec::Hevc,
                record,
            } => {
                config = Some(HevcConfig::parse(record).unwrap());
            }
            VideoTag::Nalu {
                codec: VideoCodec::Hevc,
                composition_ms,
                data,
                ..
            } => {
                let c = config.as_mut().unwrap();
                match c.classify(data) {
                    Ok(FrameKind::Intra) => {}
                    Ok(FrameKind::NotIntra) => continue,
                    Err(e) => {
                        failures.push(format!("classify: {e}"));
                        continue;
                    }
                }
                if let Some(refusal) = c.refusal() {
                    failures.push(refusal.to_string());
                    continue;
                }
                let pts = i64::from(ts) + i64::from(composition_ms);
                match render_hevc::decode(c.record(), data) {
                    Ok(frame) => {
                        let mut h = Md5::new();
                        for p in [&frame.y, &frame.u, &frame.v] {
                            h.update(frame.plane_bytes(p));
                        }
                        let md5 = format!("{:x}", h.finalize());
                        let refs = ref_md5(name, pts);
                        assert!(
                            refs.contains(&md5),
                            "{name} pts {pts}: {md5} not in {refs:?}"
                        );
                        exact += 1;
                        let jpeg = render_hevc::render(c.record(), data, Some(90), 80).unwrap();
                        assert_eq!(jpeg.height.min(jpeg.width), 90.min(frame.height));
                    }
                    Err(e) => failures.push(e.to_string()),
                }
            }
            _ => {}
        }
    }
    (exact, failures)
}

#[test]
fn hevc_fixtures_decode_bit_exactly_like_ffmpeg() {
    for name in [
        "hevc_main_bframes",
        "hevc_main10",
        "hevc_open_gop",
        "hevc_irregular",
        "hevc_odd_size",
        "hevc_res_change",
        "hevc_hdr10",
        "hevc_hdr10_meta",
        "hevc_legacy12",
        "hevc_1080p",
    ] {
        let (exact, failures) = check(name);
        assert!(failures.is_empty(), "{name}: {failures:?}");
        assert!(exact >= 3, "{name}: only {exact} I-frames");
        eprintln!("{name}: {exact} bit-exact");
    }
}

#[test]
fn damaged_hevc_keyframe_fails_and_rext_is_refused_by_name() {
    let (exact, failures) = check("hevc_damaged_keyframe");
    assert_eq!(exact, 3, "{failures:?}");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].starts_with("DecodeFailed"), "{failures:?}");
    let (exact, failures) = check("hevc_rext444");
    assert_eq!(exact, 0);
    assert!(
        failures
            .iter()
            .all(|f| f.starts_with("UnsupportedStream") && f.contains("4:4:4")),
        "{failures:?}"
    );
}

/// The colorInfo Metadata packet of `hevc_hdr10_meta` (its VUI is silent) reaches every shot and
/// kept I-frame; a later packet replaces it; a packet of another name leaves it.
#[test]
fn color_info_metadata_reaches_shots_and_a_later_packet_replaces_it() {
    use livesnap_guest::capture::{Action, Session, SessionInfo, Settings};
    use livesnap_guest::flv::ColorConfig;
    use livesnap_guest::naming::KeyMode;
    let data = std::fs::read(fixtures().join("hevc_hdr10_meta.flv")).unwrap();
    let info = SessionInfo {
        app: "live".into(),
        stream: "hdr".into(),
        push_start_ms: 1_700_000_000_000,
        session_id: 7,
    };
    let settings = Settings {
        interval_s: 1,
        mode: KeyMode::Sequence,
        shortside_px: None,
        quality: None,
        bucket: "b".into(),
        uniqname: "u".into(),
        alterurl: None,
    };
    let mut session = Session::new(info, settings).unwrap();
    session.keep_last_iframe(true);
    let pq = ColorConfig {
        bit_depth: None,
        color_primaries: Some(9),
        transfer_characteristics: Some(16),
        matrix_coefficients: Some(9),
    };
    let hlg = ColorConfig {
        transfer_characteristics: Some(18),
        ..pq
    };
    // An HLG colorInfo packet, laid out as ffmpeg's muxer writes it, sent after 3 s.
    let mut hlg_packet = b"\xd4hvc1\x02\x00\x09colorInfo\x03\x00\x0bcolorConfig\x03".to_vec();
    for (name, value) in [
        ("transferCharacteristics", 18.0f64),
        ("matrixCoefficients", 9.0),
        ("colorPrimaries", 9.0),
    ] {
        hlg_packet.extend((name.len() as u16).to_be_bytes());
        hlg_packet.extend(name.as_bytes());
        hlg_packet.push(0);
        hlg_packet.extend(value.to_be_bytes());
    }
    hlg_packet.extend([0, 0, 9, 0, 0, 9]);
    let other = b"\xd4hvc1\x02\x00\x05other\x05".to_vec();
    let mut colors = Vec::new();
    let mut sent_hlg = false;
    let tags = livesnap_guest::demux::FlvPushParser::new(1 << 24)
        .push(&data)
        .unwrap();
    for tag in tags {
        if tag.tag_type == 9 && tag.timestamp_ms >= 3000 && !sent_hlg {
            assert!(matches!(
                session.push_tag(9, tag.timestamp_ms, &other),
                Ok(Action::None)
            ));
            assert!(matches!(
                session.push_tag(9, tag.timestamp_ms, &hlg_packet),
                Ok(Action::None)
            ));
            sent_hlg = true;
        }
        if let Ok(Action::Capture(shot)) =
            session.push_tag(tag.tag_type, tag.timestamp_ms, &tag.body)
        {
            assert_eq!(session.last_iframe().unwrap().color, shot.color);
            colors.push(shot.color);
        }
    }
    // I-frames at 0, 2 and 4 s: the HLG packet came before the third.
    assert_eq!(colors, [Some(pq), Some(pq), Some(hlg)]);
}
