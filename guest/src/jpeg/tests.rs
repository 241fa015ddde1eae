//! Encoder tests: structure and sizes, and the quality proof against libjpeg-turbo.

use super::*;
use crate::flv::{self, VideoTag};
use crate::render::Yuv420;
use std::path::{Path, PathBuf};
use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

/// Decodes `jpeg` with zune-jpeg to interleaved full-resolution YCbCr (its scalar path, so the
/// figures are the same on every CPU).
fn decode_ycbcr(jpeg: &[u8]) -> (usize, usize, Vec<u8>) {
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::YCbCr)
        .set_use_unsafe(false);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(jpeg), options);
    let pixels = decoder.decode().unwrap();
    let info = decoder.info().unwrap();
    (usize::from(info.width), usize::from(info.height), pixels)
}

fn planes(p: &Yuv420) -> Planes<'_> {
    Planes {
        width: p.width as u16,
        height: p.height as u16,
        y: &p.y,
        cb: &p.u,
        cr: &p.v,
    }
}

/// A deterministic test picture: gradients, a hard edge and noise, so every block has AC.
fn synthetic(width: u32, height: u32) -> Yuv420 {
    let mut s = 0x9E37_79B9u32;
    let mut noise = move || {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        (s % 17) as i32 - 8
    };
    let (w, h) = (width as i32, height as i32);
    let mut y = Vec::new();
    for row in 0..h {
        for x in 0..w {
            let edge = if x * 3 > w { 60 } else { 0 };
            y.push((x * 200 / w.max(1) + row * 40 / h.max(1) + edge + noise()).clamp(0, 255) as u8);
        }
    }
    let (cw, ch) = (width.div_ceil(2) as i32, height.div_ceil(2) as i32);
    let (mut u, mut v) = (Vec::new(), Vec::new());
    for row in 0..ch {
        for x in 0..cw {
            u.push((90 + x * 80 / cw + noise()).clamp(0, 255) as u8);
            v.push((200 - row * 90 / ch + noise()).clamp(0, 255) as u8);
        }
    }
    Yuv420 {
        width,
        height,
        y,
        u,
        v,
        full_range: true,
        matrix: crate::color::Matrix::Bt601,
    }
}

/// PSNR of `got` against `want`, in dB (capped at 99 for identical data).
fn psnr(want: &[f64], got: &[f64]) -> f64 {
    let mse = want
        .iter()
        .zip(got)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        / want.len().max(1) as f64;
    if mse == 0.0 {
        99.0
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

/// What a JPEG of `p` costs and how close it decodes.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Measure {
    bytes: usize,
    psnr_y: f64,
    psnr_cb: f64,
    psnr_cr: f64,
}

/// Measures `jpeg` against its source planes `p`: luma PSNR on the decoded luma; chroma PSNR of
/// each decoded chroma plane, taken back to chroma resolution by averaging its (up to) 2×2
/// pixels per chroma sample, against the source chroma plane. The averaging undoes the
/// decoder's upsampling filter up to a small smoothing that is the same for every encoder
/// measured this way.
fn measure(p: &Yuv420, jpeg: &[u8]) -> Measure {
    let (w, h, ycbcr) = decode_ycbcr(jpeg);
    assert_eq!((w as u32, h as u32), (p.width, p.height));
    let luma: Vec<f64> = ycbcr.chunks(3).map(|px| f64::from(px[0])).collect();
    let source_luma: Vec<f64> = p.y.iter().map(|&s| f64::from(s)).collect();
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let chroma = |c: usize| {
        let mut out = Vec::with_capacity(cw * ch);
        for cy in 0..ch {
            for cx in 0..cw {
                let (mut sum, mut n) = (0.0, 0.0);
                for y in 2 * cy..(2 * cy + 2).min(h) {
                    for x in 2 * cx..(2 * cx + 2).min(w) {
                        sum += f64::from(ycbcr[(y * w + x) * 3 + c]);
                        n += 1.0;
                    }
                }
                out.push(sum / n);
            }
        }
        out
    };
    let as_f64 = |plane: &[u8]| plane.iter().map(|&s| f64::from(s)).collect::<Vec<_>>();
    Measure {
        bytes: jpeg.len(),
        psnr_y: psnr(&source_luma, &luma),
        psnr_cb: psnr(&as_f64(&p.u), &chroma(1)),
        psnr_cr: psnr(&as_f64(&p.v), &chroma(2)),
    }
}

#[test]
fn every_small_size_encodes_and_decodes_to_its_size() {
    for (w, h) in [
        (1, 1),
        (1, 2),
        (2, 1),
        (7, 9),
        (8, 8),
        (9, 8),
        (15, 15),
        (16, 16),
        (17, 1),
        (1, 17),
        (31, 33),
        (33, 17),
        (64, 48),
        (70, 38),
    ] {
        let p = synthetic(w, h);
        for quality in [1, 30, 80, 100] {
            let jpeg = encode_420(planes(&p), quality).unwrap();
            assert_eq!(jpeg[..2], [0xFF, 0xD8]);
            assert_eq!(jpeg[jpeg.len() - 2..], [0xFF, 0xD9]);
            let (dw, dh, _) = decode_ycbcr(&jpeg);
            assert_eq!((dw as u32, dh as u32), (w, h), "q{quality}");
            if quality >= 80 && w >= 8 && h >= 8 {
                let m = measure(&p, &jpeg);
                assert!(
                    m.psnr_y > 30.0 && m.psnr_cb > 30.0,
                    "{w}x{h} q{quality}: {m:?}"
                );
            }
        }
    }
}

#[test]
fn quality_100_is_nearly_lossless() {
    let p = synthetic(96, 64);
    let m = measure(&p, &encode_420(planes(&p), 100).unwrap());
    assert!(
        m.psnr_y > 45.0 && m.psnr_cb > 40.0 && m.psnr_cr > 40.0,
        "{m:?}"
    );
}

#[test]
fn higher_quality_costs_more_bytes_and_gains_psnr() {
    let p = synthetic(128, 96);
    let mut last: Option<Measure> = None;
    for quality in [10, 30, 50, 80, 95] {
        let m = measure(&p, &encode_420(planes(&p), quality).unwrap());
        if let Some(prev) = last {
            assert!(
                m.bytes > prev.bytes && m.psnr_y > prev.psnr_y,
                "{prev:?} -> {m:?}"
            );
        }
        last = Some(m);
    }
}

#[test]
fn wrong_plane_sizes_and_empty_pictures_are_errors() {
    let p = synthetic(9, 9);
    let mut bad = planes(&p);
    bad.cb = &p.u[1..];
    assert!(matches!(
        encode_420(bad, 50),
        Err(JpegError::PlaneSize { .. })
    ));
    let mut empty = planes(&p);
    empty.width = 0;
    assert_eq!(encode_420(empty, 50), Err(JpegError::Empty(0, 9)));
}

#[test]
fn largest_picture_encodes_without_panicking() {
    // 8192 × 8 (the render limit's longest side) and a 4096 × 4096 flat picture: the size
    // arithmetic stays in range and the output decodes.
    for (w, h) in [(8192u32, 8u32), (4096, 4096)] {
        let c = (w.div_ceil(2) * h.div_ceil(2)) as usize;
        let p = Yuv420 {
            width: w,
            height: h,
            y: vec![77; (w * h) as usize],
            u: vec![100; c],
            v: vec![150; c],
            full_range: true,
            matrix: crate::color::Matrix::Bt601,
        };
        let jpeg = encode_420(planes(&p), 80).unwrap();
        let (dw, dh, px) = decode_ycbcr(&jpeg);
        assert_eq!((dw as u32, dh as u32), (w, h));
        assert!(
            px.chunks(3)
                .all(|c| c[0].abs_diff(77) <= 1 && c[1].abs_diff(100) <= 1)
        );
    }
}

/// The workspace's `fixtures/` directory.
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// Every H.264 fixture's name, sorted (the HEVC and AV1 ones, `hevc_*` and `av1_*`, have no
/// libjpeg reference: their pictures reach the same encoder through another decoder).
fn fixture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "flv"))
        .filter_map(|p| p.file_stem()?.to_str().map(str::to_owned))
        .filter(|n| !n.starts_with("hevc_") && !n.starts_with("av1_"))
        .collect();
    names.sort();
    names
}

/// The first I-frame of fixture `name` that decodes, converted to JFIF colour: what
/// `render::render` hands the encoder at full size.
fn first_iframe(name: &str) -> Yuv420 {
    let bytes = std::fs::read(fixtures().join(format!("{name}.flv"))).unwrap();
    let tags = crate::demux::FlvPushParser::new(16 << 20)
        .push(&bytes)
        .unwrap();
    let mut config = None;
    for tag in tags.iter().filter(|t| t.tag_type == flv::TAG_VIDEO) {
        match flv::parse_video(&tag.body) {
            Ok(VideoTag::SequenceHeader {
                codec: flv::VideoCodec::Avc,
                record,
            }) => config = Some(record.to_vec()),
            Ok(VideoTag::Nalu {
                codec: flv::VideoCodec::Avc,
                keyframe_hint: true,
                data,
                ..
            }) => {
                let Some(config) = &config else { continue };
                if let Ok(mut picture) = crate::render::decode(config, data) {
                    crate::color::to_jfif(&mut picture).unwrap();
                    return picture;
                }
            }
            _ => {}
        }
    }
    panic!("{name}: no decodable I-frame");
}

/// The qualities of the comparison with libjpeg.
const QUALITIES: [u8; 4] = [30, 50, 80, 95];
/// Where `fixtures/libjpeg_ref.sh` leaves its figures.
const REFERENCE: &str = "ref/libjpeg.tsv";

/// One line of [`REFERENCE`].
#[derive(Debug)]
struct Reference {
    name: String,
    quality: u8,
    measure: Measure,
    md5: String,
}

fn read_reference() -> Vec<Reference> {
    let text = std::fs::read_to_string(fixtures().join(REFERENCE)).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("fixture\t"))
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            Reference {
                name: f[0].to_owned(),
                quality: f[3].parse().unwrap(),
                measure: Measure {
                    bytes: f[4].parse().unwrap(),
                    psnr_y: f[5].parse().unwrap(),
                    psnr_cb: f[6].parse().unwrap(),
                    psnr_cr: f[7].parse().unwrap(),
                },
                md5: f[8].to_owned(),
            }
        })
        .collect()
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Tolerances of [`quality_matches_libjpeg_on_every_fixture`].
const PSNR_TOLERANCE_DB: f64 = 0.05;
const SIZE_TOLERANCE: f64 = 0.05;

/// The quality proof: on the first I-frame of every fixture, in the JFIF colour the encoder is
/// given, at qualities 30, 50, 80 and 95, our JPEG's luma and chroma PSNR must be at least
/// libjpeg-turbo's minus 0.05 dB and its size within ±5 % of libjpeg-turbo's.
///
/// The libjpeg-turbo figures (`fixtures/ref/libjpeg.tsv`) were made by
/// `fixtures/libjpeg_ref.sh`: `write_jfif_planes` below dumps these exact planes, a small C
/// program (`fixtures/libjpeg_raw.c`) encodes them with libjpeg-turbo's own API in raw-data
/// mode (`raw_data_in`: the same YCbCr samples, no colour conversion or resampling by either
/// side), `jpeg_set_quality(q, TRUE)`, `JDCT_ISLOW`, the standard Annex K Huffman tables
/// (`optimize_coding` off: what `cjpeg -dct int` does without `-optimize`, and what we do), and
/// `measure_libjpeg_jpegs` measures those files with the same [`measure`] (zune-jpeg decode) as
/// ours here. Like with like: same input, same tables, same decoder and metric. No encoder tool
/// is needed when this test runs. The files also carry libjpeg's MD5, and today every one of
/// ours is byte-identical to it.
#[test]
fn quality_matches_libjpeg_on_every_fixture() {
    let reference = read_reference();
    let names = fixture_names();
    let mut identical = 0;
    for name in &names {
        let picture = first_iframe(name);
        for quality in QUALITIES {
            let libjpeg = reference
                .iter()
                .find(|r| &r.name == name && r.quality == quality)
                .unwrap_or_else(|| panic!("{REFERENCE} has no {name} q{quality}"));
            let jpeg = encode_420(planes(&picture), quality).unwrap();
            let ours = measure(&picture, &jpeg);
            let theirs = libjpeg.measure;
            eprintln!(
                "{name:<18} q{quality:<2} ours {:>7} B Y {:.2} Cb {:.2} Cr {:.2} | libjpeg {:>7} B Y {:.2} Cb {:.2} Cr {:.2}",
                ours.bytes,
                ours.psnr_y,
                ours.psnr_cb,
                ours.psnr_cr,
                theirs.bytes,
                theirs.psnr_y,
                theirs.psnr_cb,
                theirs.psnr_cr
            );
            let size_ratio = ours.bytes as f64 / theirs.bytes as f64;
            assert!(
                (1.0 - SIZE_TOLERANCE..=1.0 + SIZE_TOLERANCE).contains(&size_ratio),
                "{name} q{quality}: {} bytes vs libjpeg's {}",
                ours.bytes,
                theirs.bytes
            );
            for (what, a, b) in [
                ("Y", ours.psnr_y, theirs.psnr_y),
                ("Cb", ours.psnr_cb, theirs.psnr_cb),
                ("Cr", ours.psnr_cr, theirs.psnr_cr),
            ] {
                assert!(
                    a >= b - PSNR_TOLERANCE_DB,
                    "{name} q{quality}: {what} PSNR {a:.3} dB vs libjpeg's {b:.3}"
                );
            }
            identical += usize::from(md5_hex(&jpeg) == libjpeg.md5);
        }
    }
    // Stricter than the budget above, and true today: the same islow arithmetic, tables and
    // edge handling give libjpeg-turbo's exact bytes. A deliberate change of the coding (say,
    // optimised Huffman tables) may drop this check; the budget above must still hold.
    let total = names.len() * QUALITIES.len();
    assert_eq!(identical, total, "JPEGs byte-identical to libjpeg-turbo's");
}

/// The reference directory of `fixtures/libjpeg_ref.sh` (`LIVESNAP_JPEG_REF_DIR`).
#[cfg(feature = "libjpeg-ref")]
fn reference_dir() -> PathBuf {
    PathBuf::from(std::env::var("LIVESNAP_JPEG_REF_DIR").expect("run by fixtures/libjpeg_ref.sh"))
}

/// Step 1 of `fixtures/libjpeg_ref.sh`: writes each fixture's first I-frame (JFIF colour) as
/// `<name>.yuv` (Y, Cb, Cr planes) and its size as `<name>.size` ("W H").
/// A step of a tool, not a check: compiled only with the `libjpeg-ref` feature the script sets.
#[cfg(feature = "libjpeg-ref")]
#[test]
fn write_jfif_planes() {
    let dir = reference_dir();
    for name in fixture_names() {
        let p = first_iframe(&name);
        let mut raw = p.y.clone();
        raw.extend_from_slice(&p.u);
        raw.extend_from_slice(&p.v);
        std::fs::write(dir.join(format!("{name}.yuv")), raw).unwrap();
        std::fs::write(
            dir.join(format!("{name}.size")),
            format!("{} {}\n", p.width, p.height),
        )
        .unwrap();
    }
}

/// Step 3 of `fixtures/libjpeg_ref.sh`: measures libjpeg-turbo's `<name>.q<Q>.jpg` files and
/// writes `fixtures/ref/libjpeg.tsv`.
/// A step of a tool, not a check: compiled only with the `libjpeg-ref` feature the script sets.
#[cfg(feature = "libjpeg-ref")]
#[test]
fn measure_libjpeg_jpegs() {
    let dir = reference_dir();
    let version = std::env::var("LIVESNAP_LIBJPEG_VERSION").unwrap_or_default();
    let mut out = format!(
        "# made by fixtures/libjpeg_ref.sh with {version}\n\
         fixture\twidth\theight\tquality\tbytes\tpsnr_y\tpsnr_cb\tpsnr_cr\tmd5\n"
    );
    for name in fixture_names() {
        let p = first_iframe(&name);
        for quality in QUALITIES {
            let jpeg = std::fs::read(dir.join(format!("{name}.q{quality}.jpg"))).unwrap();
            let m = measure(&p, &jpeg);
            out += &format!(
                "{name}\t{}\t{}\t{quality}\t{}\t{:.4}\t{:.4}\t{:.4}\t{}\n",
                p.width,
                p.height,
                m.bytes,
                m.psnr_y,
                m.psnr_cb,
                m.psnr_cr,
                md5_hex(&jpeg)
            );
        }
    }
    std::fs::write(fixtures().join(REFERENCE), out).unwrap();
}
