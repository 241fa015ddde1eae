//! Differential test of the decoders: every I-frame of every fixture (`fixtures/*.flv`) decoded
//! by our `livesnap-h264` and by `rust_h264` gives equal planes, and both equal ffmpeg's MD5 from
//! `fixtures/ref/<name>.frames.tsv`. Streams our decoder refuses as unsupported (MBAFF) must
//! still decode bit-exactly with `rust_h264`, the fallback render.rs takes for them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use livesnap_guest::avc::{AvcConfig, FrameKind, NalIter};
use livesnap_guest::flv::{self, VideoTag};
use md5::{Digest, Md5};

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// (tag type, timestamp ms, body) of every tag of an FLV file.
fn flv_tags(data: &[u8]) -> Vec<(u8, u32, &[u8])> {
    let mut tags = Vec::new();
    let mut pos = 9 + 4;
    while let Some(h) = data.get(pos..pos + 11) {
        let size = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
        let ts = (u32::from(h[7]) << 24)
            | (u32::from(h[4]) << 16)
            | (u32::from(h[5]) << 8)
            | u32::from(h[6]);
        let Some(body) = data.get(pos + 11..pos + 11 + size) else {
            break;
        };
        tags.push((h[0], ts, body));
        pos += 11 + size + 4;
    }
    tags
}

/// SPS and PPS NAL units of an AVCDecoderConfigurationRecord.
fn config_nals(record: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut pos = 5;
    for _ in 0..2 {
        let count = usize::from(record[pos] & if out.is_empty() { 0x1f } else { 0xff });
        pos += 1;
        for _ in 0..count {
            let len = usize::from(u16::from_be_bytes([record[pos], record[pos + 1]]));
            out.push(&record[pos + 2..pos + 2 + len]);
            pos += 2 + len;
        }
    }
    out
}

fn md5_hex(planes: &[&[u8]]) -> String {
    let mut h = Md5::new();
    for p in planes {
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// ffmpeg's MD5s by pts (a timestamp jump can give two frames one pts).
fn ref_md5s(name: &str) -> BTreeMap<i64, Vec<String>> {
    let path = fixtures_dir().join(format!("ref/{name}.frames.tsv"));
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let mut out: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split('\t').collect();
        if let (Some(Ok(pts)), Some(md5)) = (f.first().map(|p| p.parse()), f.get(5)) {
            out.entry(pts).or_default().push((*md5).to_owned());
        }
    }
    out
}

struct Planes {
    width: u32,
    height: u32,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

/// Decodes with rust_h264 the way render.rs did before our decoder.
fn decode_rust_h264(record: &[u8], au: &[u8]) -> Option<Planes> {
    use rust_h264::decoder::Decoder;
    use rust_h264::nal;
    let cfg = nal::parse_avcc_config(record).ok()?;
    let units = nal::parse_avcc(au, cfg.length_size);
    let mut d = Decoder::new();
    let mut frame = None;
    for u in cfg.sps_nals.iter().chain(&cfg.pps_nals).chain(&units) {
        if let Some(f) = d.decode_nal(u).ok()? {
            frame = Some(f);
            break;
        }
    }
    let f = frame.or_else(|| d.flush())?;
    Some(Planes {
        width: f.width,
        height: f.height,
        y: f.y,
        u: f.u,
        v: f.v,
    })
}

#[test]
fn every_fixture_iframe_decodes_equal_with_ours_rust_h264_and_ffmpeg() {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "flv").then(|| p.file_stem()?.to_str().map(str::to_owned))?
        })
        // The HEVC and AV1 fixtures are another decoder's (render_hevc) or none.
        .filter(|n: &String| !n.starts_with("hevc_") && !n.starts_with("av1_"))
        .collect();
    names.sort();
    assert!(names.len() >= 13, "fixtures missing: {names:?}");
    let mut report = Vec::new();
    let mut failures = Vec::new();
    let mut damaged = Vec::new();
    let mut unsupported_streams = std::collections::BTreeSet::new();
    for name in &names {
        let data = std::fs::read(fixtures_dir().join(format!("{name}.flv"))).unwrap();
        let refs = ref_md5s(name);
        let mut config: Option<(Vec<u8>, AvcConfig)> = None;
        let (mut frames, mut exact, mut unsupported) = (0, 0, 0);
        for (tag_type, ts, body) in flv_tags(&data) {
            if tag_type != flv::TAG_VIDEO {
                continue;
            }
            match flv::parse_video(body) {
                Ok(VideoTag::SequenceHeader {
                    codec: flv::VideoCodec::Avc,
                    record: rec,
                }) => {
                    config = AvcConfig::parse(rec).ok().map(|c| (rec.to_vec(), c));
                }
                Ok(VideoTag::Nalu {
                    codec: flv::VideoCodec::Avc,
                    data: au,
                    composition_ms,
                    ..
                }) => {
                    let Some((record, cfg)) = config.as_mut() else {
                        continue;
                    };
                    if cfg.classify(au) != Ok(FrameKind::Intra) {
                        continue;
                    }
                    frames += 1;
                    let pts = i64::from(ts) + i64::from(composition_ms);
                    let theirs = decode_rust_h264(record, au);
                    let nals: Vec<&[u8]> = config_nals(record)
                        .into_iter()
                        .chain(NalIter::new(au, 4).filter_map(Result::ok))
                        .collect();
                    let ours = livesnap_h264::decode(
                        nals.iter().copied(),
                        livesnap_h264::Limits::default(),
                    );
                    match (&ours, &theirs) {
                        (Ok(o), Some(t)) => {
                            let same = (o.width, o.height) == (t.width, t.height)
                                && o.y == t.y
                                && (o.u == t.u && o.v == t.v
                                    || o.u.iter().chain(&o.v).all(|&c| c == 128));
                            let md5 = md5_hex(&[&o.y, &o.u, &o.v]);
                            let ffmpeg = refs.get(&pts);
                            let matches = ffmpeg.is_some_and(|m| m.contains(&md5));
                            if !same {
                                let first = o.y.iter().zip(&t.y).position(|(a, b)| a != b);
                                failures.push(format!(
                                    "{name} pts {pts}: ours differs from rust_h264 (first luma diff at {first:?}, width {})",
                                    o.width
                                ));
                            } else if !matches {
                                failures.push(format!(
                                    "{name} pts {pts}: md5 {md5} != ffmpeg {ffmpeg:?}"
                                ));
                            } else {
                                exact += 1;
                            }
                        }
                        (Err(livesnap_h264::Error::Unsupported(why)), Some(t)) => {
                            // The fallback must still be bit-exact with ffmpeg.
                            unsupported += 1;
                            let md5 = md5_hex(&[&t.y, &t.u, &t.v]);
                            if !refs.get(&pts).is_some_and(|m| m.contains(&md5)) {
                                failures.push(format!(
                                    "{name} pts {pts}: unsupported by ours ({why}), rust_h264 md5 {md5} is not ffmpeg's"
                                ));
                            }
                            unsupported_streams.insert(name.clone());
                        }
                        (Err(livesnap_h264::Error::Malformed(why)), Some(t))
                            if !refs
                                .get(&pts)
                                .is_some_and(|m| m.contains(&md5_hex(&[&t.y, &t.u, &t.v]))) =>
                        {
                            // A damaged frame: rust_h264 does not reproduce ffmpeg's
                            // concealment either; ours reports it.
                            damaged.push(format!("{name} pts {pts}: {why}"));
                        }
                        (Err(e), _) => failures.push(format!("{name} pts {pts}: ours failed: {e}")),
                        (Ok(_), None) => failures
                            .push(format!("{name} pts {pts}: rust_h264 failed, ours decoded")),
                    }
                }
                _ => {}
            }
        }
        report.push(format!(
            "{name}: {frames} I-frames, {exact} bit-exact, {unsupported} unsupported"
        ));
    }
    println!("{}\ndamaged: {damaged:?}", report.join("\n"));
    assert_eq!(
        damaged.len(),
        1,
        "only damaged_keyframe's damaged frame fails: {damaged:?}"
    );
    assert!(
        failures.is_empty(),
        "{}\n{}",
        report.join("\n"),
        failures.join("\n")
    );
}
