//! The pictures: every I-frame the component captures decodes bit-exactly like ffmpeg
//! (`fixtures/ref/<name>.frames.tsv`, MD5 of the raw yuv420p planes), its JPEG is close to an
//! independent floating-point conversion of that picture, and the component's JPEG bytes equal
//! the native build's.

use livesnap::runtime::{Action, Frame, Matrix, Outcome};
use livesnap_tests::{
    fixture_names, md5_hex, psnr, read_tags, ref_frames, runtime, session_info, settings,
};

/// Reference RGB of a decoded frame: BT.601/709, limited/full range, nearest chroma, in f64.
fn reference_rgb(f: &Frame) -> Vec<u8> {
    let (w, h) = (f.width_px as usize, f.height_px as usize);
    let (kr, kb) = match f.matrix {
        Matrix::Bt601 => (0.299, 0.114),
        Matrix::Bt709 => (0.2126, 0.0722),
    };
    let kg = 1.0 - kr - kb;
    let mut out = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let ci = (y / 2) * w.div_ceil(2) + x / 2;
            let (luma, cb, cr) = (
                f64::from(f.y[y * w + x]),
                f64::from(f.u[ci]),
                f64::from(f.v[ci]),
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
        let (mut exact, mut failed, mut worst_psnr) = (0, 0, f64::INFINITY);
        for tag in read_tags(&livesnap_tests::fixture(&name)) {
            let Ok(Action::Capture(shot)) = capture
                .push_tag(tag.tag_type, tag.timestamp_ms, &tag.body)
                .unwrap()
            else {
                continue;
            };
            let frame = match renderer
                .decode(rt, &shot.config, &shot.access_unit)
                .unwrap()
            {
                Ok(frame) => frame,
                Err(f) => {
                    // Only the deliberately damaged fixture may fail, and only with DecodeFailed.
                    assert_eq!(
                        name,
                        "damaged_keyframe",
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
            // The encoder is integer-only and its SIMD is the compiler's vectorisation of one
            // implementation, so the component (wasm simd128) and native builds agree byte for
            // byte.
            let native = livesnap_guest::render::render(
                &shot.config,
                &shot.access_unit,
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
            let db = psnr(&rgb, &reference_rgb(&frame));
            worst_psnr = worst_psnr.min(db);
            capture
                .complete(
                    shot.seq,
                    &Outcome::Stored((picture.width_px, picture.height_px)),
                )
                .unwrap()
                .unwrap();
        }
        report.push(format!(
            "{name}: {exact} bit-exact, {failed} failed, worst JPEG PSNR {worst_psnr:.1} dB"
        ));
        assert!(exact >= 2, "{name}: too few I-frames checked ({exact})");
        // Quality 80 JPEG of synthetic content: 4:2:0 chroma loss and quantisation keep RGB
        // PSNR above ~30 dB; a wrong matrix or range drops it below 25 dB.
        assert!(worst_psnr > 28.0, "{name}: JPEG PSNR {worst_psnr:.1} dB");
        assert_eq!(
            failed,
            usize::from(name == "damaged_keyframe"),
            "{name}: decode failures"
        );
    }
    eprintln!("{}", report.join("\n"));
}
