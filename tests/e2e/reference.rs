//! The pictures: every I-frame the component captures decodes bit-exactly like ffmpeg
//! (`fixtures/ref/<name>.frames.tsv`, MD5 of the raw yuv420p planes), its JPEG is close to an
//! independent floating-point conversion of that picture, and the component's JPEG bytes equal
//! the native build's.

use livesnap::runtime::{Action, ColorConfig, Frame, Matrix, Outcome, Shot, Transfer};
use livesnap_tests::{
    fixture_names, md5_hex, psnr, read_tags, ref_frames, runtime, session_info, settings,
};

/// Sample `i` of a plane on the 8-bit scale (10-bit samples divided by 4, unrounded).
fn sample(f: &Frame, plane: &[u8], i: usize) -> f64 {
    if f.bit_depth > 8 {
        let v = u16::from_le_bytes([plane[2 * i], plane[2 * i + 1]]);
        f64::from(v) / f64::from(1u32 << (f.bit_depth - 8))
    } else {
        f64::from(plane[i])
    }
}

/// Reference RGB of a decoded frame: BT.601/709/2020, limited/full range, nearest chroma, in
/// f64, shown as coded (no tone mapping).
fn reference_rgb(f: &Frame) -> Vec<u8> {
    let (w, h) = (f.width_px as usize, f.height_px as usize);
    let (kr, kb) = match f.matrix {
        Matrix::Bt601 => (0.299, 0.114),
        Matrix::Bt709 => (0.2126, 0.0722),
        Matrix::Bt2020 => (0.2627, 0.0593),
    };
    let kg = 1.0 - kr - kb;
    let mut out = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let ci = (y / 2) * w.div_ceil(2) + x / 2;
            let (luma, cb, cr) = (
                sample(f, &f.y, y * w + x),
                sample(f, &f.u, ci),
                sample(f, &f.v, ci),
            );
            let (yn, pb, pr) = if f.full_range {
                (luma / 255.0, (cb - 128.0) / 255.0, (cr - 128.0) / 255.0)
            } else {
                (
                    (luma - 16.0) / 219.0,
                    (cb - 128.0) / 224.0,
                    (cr - 128.0) / 224.0,
                )
            };
            let r = yn + 2.0 * (1.0 - kr) * pr;
            let b = yn + 2.0 * (1.0 - kb) * pb;
            let g = (yn - kr * r - kb * b) / kg;
            for c in [r, g, b] {
                out.push((c * 255.0).round().clamp(0.0, 255.0) as u8);
            }
        }
    }
    out
}

/// Fixtures whose due I-frames are all refused as UnsupportedStream (nothing to compare).
const UNSUPPORTED: [&str; 2] = ["av1_unsupported", "hevc_rext444"];
/// Fixtures with one deliberately damaged keyframe (DecodeFailed).
const DAMAGED: [&str; 2] = ["damaged_keyframe", "hevc_damaged_keyframe"];

fn decode_jpeg_rgb(jpeg: &[u8]) -> (Vec<u8>, usize, usize) {
    let options = zune_jpeg::zune_core::options::DecoderOptions::default()
        .jpeg_set_out_colorspace(zune_jpeg::zune_core::colorspace::ColorSpace::RGB);
    let mut d = zune_jpeg::JpegDecoder::new_with_options(std::io::Cursor::new(jpeg), options);
    let pixels = d.decode().expect("our JPEG decodes");
    let (w, h) = d.dimensions().expect("dimensions");
    (pixels, w, h)
}

#[test]
fn captured_iframes_decode_bit_exactly_like_ffmpeg_and_jpegs_are_faithful() {
    let rt = runtime();
    let mut renderer = rt.renderer().unwrap();
    let mut report = Vec::new();
    for name in fixture_names() {
        let refs = ref_frames(&name);
        // Interval 1 s captures every I-frame (fixtures have GOPs of at least 1 s).
        let mut capture = rt
            .capture(&session_info(&name), &settings(1))
            .unwrap()
            .unwrap();
        let (mut exact, mut failed, mut refused, mut worst_psnr) = (0, 0, 0, f64::INFINITY);
        for tag in read_tags(&livesnap_tests::fixture(&name)) {
            let shot = match capture
                .push_tag(tag.tag_type, tag.timestamp_ms, &tag.body)
                .unwrap()
            {
                Ok(Action::Capture(shot)) => shot,
                Ok(Action::Refused(body)) => {
                    assert!(
                        UNSUPPORTED.contains(&name.as_str()),
                        "{name}: refused {body}"
                    );
                    assert!(body.contains("\"code\":\"UnsupportedStream\""), "{body}");
                    refused += 1;
                    continue;
                }
                _ => continue,
            };
            let frame = match renderer
                .decode(rt, shot.codec, &shot.config, &shot.access_unit, shot.color)
                .unwrap()
            {
                Ok(frame) => frame,
                Err(f) => {
                    // Only the deliberately damaged fixture may fail, and only with DecodeFailed.
                    assert!(
                        DAMAGED.contains(&name.as_str()),
                        "{name} pts {}: {}",
                        shot.pts_ms,
                        f.text()
                    );
                    assert_eq!(f.code.as_str(), "DecodeFailed");
                    failed += 1;
                    capture
                        .complete(shot.seq, &Outcome::Failed(f))
                        .unwrap()
                        .unwrap();
                    continue;
                }
            };
            let md5 = md5_hex(&[&frame.y, &frame.u, &frame.v]);
            let candidates: Vec<_> = refs
                .iter()
                .filter(|r| r.pts_ms == shot.pts_ms && r.pict_type == "I")
                .collect();
            assert!(
                !candidates.is_empty(),
                "{name}: ffmpeg has no I-frame at pts {}",
                shot.pts_ms
            );
            assert!(
                candidates
                    .iter()
                    .any(|r| r.md5 == md5
                        && (r.width, r.height) == (frame.width_px, frame.height_px)),
                "{name} pts {}: our decode {}x{} md5 {md5} differs from ffmpeg's {:?}",
                shot.pts_ms,
                frame.width_px,
                frame.height_px,
                candidates
            );
            exact += 1;

            let picture = renderer.render(rt, &shot).unwrap().unwrap();
            // The encoder is integer-only, and its wasm SIMD kernels (quantiser, zigzag mask)
            // do the native scalar code's arithmetic, so the component (wasm simd128) and
            // native builds agree byte for byte; so do the decoders (deblocking in SIMD).
            let native = livesnap_guest::shot::render(
                match shot.codec {
                    livesnap::runtime::Codec::Avc => livesnap_guest::flv::VideoCodec::Avc,
                    livesnap::runtime::Codec::Hevc => livesnap_guest::flv::VideoCodec::Hevc,
                },
                &shot.config,
                &shot.access_unit,
                shot.color.map(guest_color).as_ref(),
                shot.shortside_px,
                shot.jpeg_quality,
            )
            .unwrap();
            assert!(
                picture.jpeg == native.jpeg,
                "{name} pts {}: component and native JPEGs differ",
                shot.pts_ms
            );
            let (rgb, w, h) = decode_jpeg_rgb(&picture.jpeg);
            assert_eq!((w as u32, h as u32), (frame.width_px, frame.height_px));
            // PQ/HLG pictures are tone-mapped, not shown as coded: see `hdr10_is_tone_mapped`.
            if frame.transfer == Transfer::Sdr {
                let db = psnr(&rgb, &reference_rgb(&frame));
                worst_psnr = worst_psnr.min(db);
            }
            capture
                .complete(
                    shot.seq,
                    &Outcome::Stored((picture.width_px, picture.height_px)),
                )
                .unwrap()
                .unwrap();
        }
        report.push(format!(
            "{name}: {exact} bit-exact, {failed} failed, {refused} refused, worst JPEG PSNR \
             {worst_psnr:.1} dB"
        ));
        if UNSUPPORTED.contains(&name.as_str()) {
            assert!(
                exact == 0 && refused >= 2,
                "{name}: {exact} decoded, {refused} refused"
            );
            continue;
        }
        assert!(exact >= 2, "{name}: too few I-frames checked ({exact})");
        // Quality 80 JPEG of synthetic content: 4:2:0 chroma loss and quantisation keep RGB
        // PSNR above ~30 dB; a wrong matrix or range drops it below 25 dB. The pcm_* fixtures
        // are half pixel noise (what makes x264 choose I_PCM), which no JPEG keeps: they are
        // there for the bit-exact decode above, and get a floor that still catches garbage.
        let floor = if name.starts_with("pcm_") { 12.0 } else { 28.0 };
        assert!(worst_psnr > floor, "{name}: JPEG PSNR {worst_psnr:.1} dB");
        assert_eq!(
            failed,
            usize::from(DAMAGED.contains(&name.as_str())),
            "{name}: decode failures"
        );
    }
    eprintln!("{}", report.join("\n"));
}

/// Mean BT.709 luma (0..255) of an RGB picture.
fn mean_luma(rgb: &[u8]) -> f64 {
    let n = rgb.len() / 3;
    rgb.chunks(3)
        .map(|p| 0.2126 * f64::from(p[0]) + 0.7152 * f64::from(p[1]) + 0.0722 * f64::from(p[2]))
        .sum::<f64>()
        / n as f64
}

fn guest_color(c: ColorConfig) -> livesnap_guest::flv::ColorConfig {
    livesnap_guest::flv::ColorConfig {
        bit_depth: c.bit_depth,
        color_primaries: c.color_primaries,
        transfer_characteristics: c.transfer_characteristics,
        matrix_coefficients: c.matrix_coefficients,
    }
}

/// The HDR10 fixture is the SDR scene of `hevc_legacy12` (same generator, same size and time)
/// placed in PQ/BT.2020 with reference white at 203 cd/m². Tone-mapped, its first thumbnail has
/// about the SDR original's brightness and contrast; shown as coded (the naive conversion) it is
/// much darker and flatter.
#[test]
fn hdr10_is_tone_mapped_close_to_its_sdr_original() {
    let rt = runtime();
    let mut renderer = rt.renderer().unwrap();
    let first_shot = |name: &str| {
        let mut capture = rt
            .capture(&session_info(name), &settings(1))
            .unwrap()
            .unwrap();
        read_tags(&livesnap_tests::fixture(name))
            .into_iter()
            .find_map(|t| {
                match capture
                    .push_tag(t.tag_type, t.timestamp_ms, &t.body)
                    .unwrap()
                {
                    Ok(Action::Capture(shot)) => Some(shot),
                    _ => None,
                }
            })
            .expect("a capture")
    };
    let stats = |rgb: &[u8]| {
        let m = mean_luma(rgb);
        let var = rgb
            .chunks(3)
            .map(|p| {
                let l =
                    0.2126 * f64::from(p[0]) + 0.7152 * f64::from(p[1]) + 0.0722 * f64::from(p[2]);
                (l - m) * (l - m)
            })
            .sum::<f64>()
            / (rgb.len() / 3) as f64;
        (m, var.sqrt())
    };
    let sdr = first_shot("hevc_legacy12");
    let (original, _, _) = decode_jpeg_rgb(&renderer.render(rt, &sdr).unwrap().unwrap().jpeg);
    let (m_sdr, sd_sdr) = stats(&original);
    // hevc_hdr10 says PQ/BT.2020 in its VUI (and in colorInfo); hevc_hdr10_meta's VUI is silent
    // and only its colorInfo Metadata packet says so: both must be tone-mapped alike.
    for name in ["hevc_hdr10", "hevc_hdr10_meta"] {
        let hdr = first_shot(name);
        let color = hdr.color.map(|c| {
            (
                c.bit_depth,
                c.color_primaries,
                c.transfer_characteristics,
                c.matrix_coefficients,
            )
        });
        assert_eq!(
            color,
            Some((None, Some(9), Some(16), Some(9))),
            "{name}: the shot carries the stream's colorInfo"
        );
        let (tone_mapped, _, _) =
            decode_jpeg_rgb(&renderer.render(rt, &hdr).unwrap().unwrap().jpeg);
        let frame = renderer
            .decode(rt, hdr.codec, &hdr.config, &hdr.access_unit, hdr.color)
            .unwrap()
            .unwrap();
        assert_eq!(
            (frame.bit_depth, frame.transfer, frame.matrix),
            (10, Transfer::Pq, Matrix::Bt2020),
            "{name}"
        );
        let vui_only = renderer
            .decode(rt, hdr.codec, &hdr.config, &hdr.access_unit, None)
            .unwrap()
            .unwrap();
        if name == "hevc_hdr10_meta" {
            // Without the metadata the VUI's defaults apply: the picture would not be tone-mapped.
            assert_eq!(
                (vui_only.transfer, vui_only.matrix),
                (Transfer::Sdr, Matrix::Bt601)
            );
            let without = Shot {
                color: None,
                ..hdr.clone()
            };
            let plain = renderer.render(rt, &without).unwrap().unwrap().jpeg;
            assert_ne!(
                plain,
                renderer.render(rt, &hdr).unwrap().unwrap().jpeg,
                "colorInfo changes the picture"
            );
        } else {
            assert_eq!(
                (vui_only.transfer, vui_only.matrix),
                (frame.transfer, frame.matrix)
            );
        }
        let naive = reference_rgb(&frame);
        let (m_tm, sd_tm) = stats(&tone_mapped);
        let (m_naive, sd_naive) = stats(&naive);
        eprintln!(
            "{name} mean/sd luma: tone-mapped {m_tm:.1}/{sd_tm:.1}, sdr original \
             {m_sdr:.1}/{sd_sdr:.1}, naive {m_naive:.1}/{sd_naive:.1}"
        );
        assert!(
            (m_tm - m_sdr).abs() < 0.1 * m_sdr,
            "{name}: tone-mapped mean {m_tm:.1} vs sdr {m_sdr:.1}"
        );
        assert!(
            (sd_tm - sd_sdr).abs() < 0.15 * sd_sdr,
            "{name}: contrast {sd_tm:.1} vs {sd_sdr:.1}"
        );
        assert!(
            (m_naive - m_sdr).abs() > 2.0 * (m_tm - m_sdr).abs(),
            "{name}: naive {m_naive:.1} is as close"
        );
    }
}
