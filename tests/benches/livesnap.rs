//! `cargo bench -p livesnap-tests`: prints livesnap's speed and memory figures on the bundled
//! fixtures, each beside a reference measured in the same run. No assertions: the numbers are for
//! reading (README "Benchmark" lists the targets).
//!
//! - keyframe render (decode + scale + JPEG) through the component vs the same code natively,
//!   and natively split into decode / scale / colour / encode;
//! - JPEG encoding of a 1080p picture: livesnap's encoder vs `jpeg-encoder` (time, size), and
//!   vs libjpeg-turbo (size, PSNR, bytes) from `fixtures/ref/libjpeg.tsv`;
//! - µs per tag through `capture`;
//! - peak linear memory of a capture instance and of a render instance;
//! - replay wall time of the 1080p fixture vs `ffmpeg -threads 1 -skip_frame nokey` writing JPEGs;
//! - H.264 I-frame decode, ours (`livesnap-h264`) vs `rust_h264`, natively and in wasm (a core
//!   module of both decoders, `tests/wasm-bench`, built for wasm32 + simd128 and run by wasmtime),
//!   and the one-slice-per-macroblock 1080p picture against one-slice ones.
//! - issue 9's targets (`support/targets.rs`): the CLI as whole processes against ffmpeg in
//!   alternating pairs (`--render-workers 1`, default, a 1-keyframe warm start) and the render
//!   split inside wasm beside ffmpeg's; `LIVESNAP_BENCH_TARGETS_ONLY=1` prints only those.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use livesnap::runtime::{Action, Codec, Outcome, Shot};
use livesnap_tests::{
    START_MS, fixture, fixture_names, keyframes, options, read_tags, replay_into_temp, runtime,
    session_info as info, settings,
};
#[path = "support/targets.rs"]
mod targets;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Best-of-`rounds` mean time per item of `f` over `items`.
fn per_item<T>(items: &[T], rounds: usize, mut f: impl FnMut(&T)) -> Duration {
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for item in items {
                f(item);
            }
            t.elapsed() / items.len() as u32
        })
        .min()
        .unwrap_or_default()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing we need.
    let rt = runtime();
    if std::env::var_os("LIVESNAP_BENCH_TARGETS_ONLY").is_some() {
        let (module, slice_ratio) = decoders();
        targets::print(module.as_ref(), slice_ratio);
        return;
    }
    println!("livesnap benchmark (2 cores here; figures are best of 3 rounds)\n");

    println!("keyframe render: decode + crop + colour + JPEG q80, full size");
    for name in ["high_720p", "high_1080p", "hevc_1080p"] {
        let shots = keyframes(name);
        let mut renderer = rt.renderer().unwrap();
        let wasm_render = per_item(&shots, 3, |s| {
            renderer.render(rt, s).unwrap().unwrap();
        });
        let wasm_decode = per_item(&shots, 3, |s| {
            renderer
                .decode(rt, s.codec, &s.config, &s.access_unit, s.color)
                .unwrap()
                .unwrap();
        });
        let native_render = per_item(&shots, 3, |s| match s.codec {
            Codec::Avc => {
                livesnap_guest::render::render(&s.config, &s.access_unit, None, 80).unwrap();
            }
            Codec::Hevc => {
                livesnap_guest::render_hevc::render(&s.config, &s.access_unit, None, 80).unwrap();
            }
        });
        let native_decode = per_item(&shots, 3, |s| match s.codec {
            Codec::Avc => {
                livesnap_guest::render::decode(&s.config, &s.access_unit).unwrap();
            }
            Codec::Hevc => {
                livesnap_guest::render_hevc::decode(&s.config, &s.access_unit).unwrap();
            }
        });
        println!(
            "  {name:<11} {} keyframes: component render {:6.1} ms (decode {:5.1} ms) | native render {:6.1} ms (decode {:5.1} ms) | wasm/native {:.2}x",
            shots.len(),
            ms(wasm_render),
            ms(wasm_decode),
            ms(native_render),
            ms(native_decode),
            wasm_render.as_secs_f64() / native_render.as_secs_f64()
        );
        let same = shots
            .iter()
            .filter(|s| {
                let wasm = renderer.render(rt, s).unwrap().unwrap();
                let codec = match s.codec {
                    Codec::Avc => livesnap_guest::flv::VideoCodec::Avc,
                    Codec::Hevc => livesnap_guest::flv::VideoCodec::Hevc,
                };
                let native =
                    livesnap_guest::shot::render(codec, &s.config, &s.access_unit, None, None, 80)
                        .unwrap();
                wasm.jpeg == native.jpeg
            })
            .count();
        println!(
            "  {name:<11} JPEG bytes equal in the component and natively: {same} of {}",
            shots.len()
        );
        println!(
            "  {name:<11} render instance peak linear memory: {:.1} MiB",
            renderer.peak_memory_bytes() as f64 / 1048576.0
        );
    }

    let (module, slice_ratio) = decoders();
    render_stages();
    jpeg_encoders();

    println!("\ncapture: every tag of every fixture through a capture instance (interval 20 s)");
    let mut total_tags = 0usize;
    let mut total = Duration::ZERO;
    let mut peak_capture = 0usize;
    for name in fixture_names() {
        let tags = read_tags(&fixture(name.as_str()));
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let mut capture = rt.capture(&info(&name), &settings(20)).unwrap().unwrap();
            let t = Instant::now();
            for tag in &tags {
                if let Ok(Action::Capture(shot)) = capture
                    .push_tag(tag.tag_type, tag.timestamp_ms, &tag.body)
                    .unwrap()
                {
                    capture
                        .complete(shot.seq, &Outcome::Stored((0, 0)))
                        .unwrap()
                        .unwrap();
                }
            }
            best = best.min(t.elapsed());
            peak_capture = peak_capture.max(capture.peak_memory_bytes());
        }
        total_tags += tags.len();
        total += best;
    }
    let native = {
        let mut best = Duration::MAX;
        let all: Vec<_> = fixture_names()
            .iter()
            .map(|n| (n.clone(), read_tags(&fixture(n))))
            .collect();
        for _ in 0..3 {
            let t = Instant::now();
            for (name, tags) in &all {
                let mut s = livesnap_guest::capture::Session::new(
                    livesnap_guest::capture::SessionInfo {
                        app: "live".into(),
                        stream: name.clone(),
                        push_start_ms: START_MS,
                        session_id: 1,
                    },
                    livesnap_guest::capture::Settings {
                        interval_s: 20,
                        mode: livesnap_guest::naming::KeyMode::Sequence,
                        shortside_px: None,
                        quality: None,
                        bucket: "shots".into(),
                        uniqname: "bench".into(),
                        alterurl: None,
                    },
                )
                .unwrap();
                for tag in tags {
                    if let Ok(livesnap_guest::capture::Action::Capture(shot)) =
                        s.push_tag(tag.tag_type, tag.timestamp_ms, &tag.body)
                    {
                        s.complete(shot.seq, livesnap_guest::capture::Outcome::Stored(0, 0))
                            .unwrap();
                    }
                }
            }
            best = best.min(t.elapsed());
        }
        best
    };
    println!(
        "  {total_tags} tags: {:.2} µs per tag through the component | native {:.2} µs per tag",
        total.as_secs_f64() * 1e6 / total_tags as f64,
        native.as_secs_f64() * 1e6 / total_tags as f64
    );
    println!(
        "  capture instance peak linear memory after a whole fixture: {:.2} MiB",
        peak_capture as f64 / 1048576.0
    );

    println!("\nreplay of high_1080p.flv, every keyframe (interval 1 s), JPEGs written to disk");
    let mut opts = options("high_1080p");
    opts.interval_s = 1;
    let replay_time = (0..3)
        .map(|_| {
            let r = replay_into_temp(opts.clone()).unwrap();
            assert_eq!(r.summary.failed, 0);
            (r.summary.elapsed, r.summary.stored)
        })
        .min()
        .unwrap();
    println!(
        "  livesnap replay: {:.0} ms for {} JPEGs ({:.1} ms each)",
        ms(replay_time.0),
        replay_time.1,
        ms(replay_time.0) / replay_time.1 as f64
    );
    match ffmpeg_keyframes("ffmpeg", &fixture("high_1080p")) {
        Some(ff) => println!(
            "  ffmpeg -threads 1 -skip_frame nokey -> mjpeg: {:.0} ms | livesnap/ffmpeg {:.2}x (target <= 3x)",
            ms(ff),
            replay_time.0.as_secs_f64() / ff.as_secs_f64()
        ),
        None => println!(
            "  ffmpeg not found: install it (apt-get install ffmpeg) for the reference figure"
        ),
    }

    println!("\nreplay of hevc_1080p.flv, every keyframe (interval 1 s), JPEGs written to disk");
    let mut opts = options("hevc_1080p");
    opts.interval_s = 1;
    let (elapsed, stored) = (0..3)
        .map(|_| {
            let r = replay_into_temp(opts.clone()).unwrap();
            assert_eq!(r.summary.failed, 0);
            (r.summary.elapsed, r.summary.stored)
        })
        .min()
        .unwrap();
    println!(
        "  livesnap replay: {:.0} ms for {stored} JPEGs ({:.1} ms each)",
        ms(elapsed),
        ms(elapsed) / stored as f64
    );
    let ffmpeg9 = std::env::var("LIVESNAP_FFMPEG9").unwrap_or_default();
    match ffmpeg_keyframes(&ffmpeg9, &fixture("hevc_1080p")) {
        Some(ff) => println!(
            "  ffmpeg 9 -threads 1 -skip_frame nokey -> mjpeg: {:.0} ms | livesnap/ffmpeg {:.2}x",
            ms(ff),
            elapsed.as_secs_f64() / ff.as_secs_f64()
        ),
        None => println!(
            "  ffmpeg 9 not found: set LIVESNAP_FFMPEG9 (.ci/run does) for the HEVC reference figure"
        ),
    }
    targets::print(module.as_ref(), slice_ratio);
}

/// Best of 3 wall times of `ffmpeg` decoding only keyframes, single-threaded, writing a JPEG each.
fn ffmpeg_keyframes(ffmpeg: &str, input: &std::path::Path) -> Option<Duration> {
    let dir = std::env::temp_dir().join(format!("livesnap-bench-ffmpeg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let status = targets::ffmpeg_jpegs(ffmpeg, input, &dir).status().ok()?;
        if !status.success() {
            return None;
        }
        best = best.min(t.elapsed());
    }
    let _ = std::fs::remove_dir_all(&dir);
    Some(best)
}

/// The SPS/PPS of a shot's record and the NAL units of its access unit (4-byte lengths, as in
/// every fixture).
fn shot_nals(shot: &Shot) -> Vec<&[u8]> {
    let record = &shot.config;
    let mut nals = Vec::new();
    let mut pos = 5;
    for mask in [0x1f, 0xff] {
        let count = record[pos] & mask;
        pos += 1;
        for _ in 0..count {
            let len = usize::from(u16::from_be_bytes([record[pos], record[pos + 1]]));
            nals.push(&record[pos + 2..pos + 2 + len]);
            pos += 2 + len;
        }
    }
    let mut rest = &shot.access_unit[..];
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        nals.push(&rest[4..4 + len]);
        rest = &rest[4 + len..];
    }
    nals
}

/// Builds `tests/wasm-bench` for wasm32-unknown-unknown with simd128 (the guest's flags and
/// profile) into its own target directory, as host/build.rs does for the guest.
fn build_wasm_bench() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wasm-bench");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--profile=guest",
            "--target=wasm32-unknown-unknown",
        ])
        .arg("--manifest-path")
        .arg(root.join("wasm-bench/Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+simd128")
        .env_remove("RUSTFLAGS")
        .status()
        .ok()?;
    status
        .success()
        .then(|| target_dir.join("wasm32-unknown-unknown/guest/livesnap_h264_wasm_bench.wasm"))
}

/// The wasm module of both decoders, instantiated with one input loaded.
struct WasmDecoders {
    store: wasmtime::Store<()>,
    decode: wasmtime::TypedFunc<(u32, u32), u32>,
}

impl WasmDecoders {
    fn new(module: &wasmtime::Module, input: &[u8]) -> Self {
        let mut store = wasmtime::Store::new(module.engine(), ());
        let instance = wasmtime::Instance::new(&mut store, module, &[]).unwrap();
        let buffer = instance
            .get_typed_func::<u32, u32>(&mut store, "input_buffer")
            .unwrap();
        let decode = instance
            .get_typed_func::<(u32, u32), u32>(&mut store, "decode")
            .unwrap();
        let memory = instance.get_memory(&mut store, "memory").unwrap();
        let at = buffer.call(&mut store, input.len() as u32).unwrap();
        memory.write(&mut store, at as usize, input).unwrap();
        WasmDecoders { store, decode }
    }

    /// Best of `rounds` mean time per picture of decoder `which` (0 ours, 1 rust_h264).
    fn per_picture(&mut self, which: u32, pictures: usize, rounds: usize) -> Duration {
        (0..rounds)
            .map(|_| {
                let t = Instant::now();
                let n = self.decode.call(&mut self.store, (which, 1)).unwrap();
                assert_eq!(n as usize, pictures, "decoder {which} failed in wasm");
                t.elapsed() / pictures as u32
            })
            .min()
            .unwrap_or_default()
    }
}

/// Decode-only time per I-frame: ours vs rust_h264, native and wasm; the one-slice-per-MB ratio.
fn decoders() -> (Option<wasmtime::Module>, Option<f64>) {
    println!("\nH.264 I-frame decode only (ms per picture; ours = livesnap-h264)");
    let module = build_wasm_bench().map(|path| {
        let engine = wasmtime::Engine::default();
        wasmtime::Module::from_file(&engine, path).unwrap()
    });
    if module.is_none() {
        println!("  (the wasm module did not build: wasm figures left out)");
    }
    let mut ours_by_fixture = Vec::new();
    // rust_h264 copies the picture per slice: 8160 slices take it seconds, so one picture, one
    // round.
    for (name, theirs_pictures, rounds) in [
        ("high_1080p", usize::MAX, 3),
        ("slices68_1080p", usize::MAX, 3),
        ("slice_per_mb_1080p", 1, 1),
    ] {
        let shots = keyframes(name);
        let units: Vec<Vec<&[u8]>> = shots.iter().map(shot_nals).collect();
        let theirs_units = &units[..units.len().min(theirs_pictures)];
        let mut decoder = livesnap_h264::Decoder::new();
        let native_ours = per_item(&units, 3, |au| {
            decoder
                .decode(au.iter().copied(), livesnap_h264::Limits::default())
                .unwrap();
        });
        let native_theirs = per_item(theirs_units, rounds, |au| {
            assert!(livesnap_h264_wasm_bench::decode_rust_h264(au));
        });
        let wasm = module.as_ref().map(|m| {
            let mut ours = WasmDecoders::new(m, &livesnap_h264_wasm_bench::encode(&units));
            let mut theirs = WasmDecoders::new(m, &livesnap_h264_wasm_bench::encode(theirs_units));
            (
                ours.per_picture(0, units.len(), 3),
                theirs.per_picture(1, theirs_units.len(), rounds),
            )
        });
        let (wasm_ours, wasm_theirs) = wasm.unwrap_or_default();
        println!(
            "  {name:<19} {:>2} I-frames: native ours {:6.2} | rust_h264 {:8.2} || wasm ours {:6.2} | rust_h264 {:8.2} || rust_h264/ours native {:5.2}x, wasm {:5.2}x",
            units.len(),
            ms(native_ours),
            ms(native_theirs),
            ms(wasm_ours),
            ms(wasm_theirs),
            native_theirs.as_secs_f64() / native_ours.as_secs_f64(),
            wasm_theirs.as_secs_f64() / wasm_ours.as_secs_f64().max(1e-9),
        );
        ours_by_fixture.push((native_ours, wasm_ours));
    }
    let ratio = |i: usize, j: usize, wasm: bool| {
        let pick = |k: usize| {
            let (n, w) = ours_by_fixture[k];
            if wasm { w } else { n }.as_secs_f64()
        };
        pick(i) / pick(j).max(1e-12)
    };
    println!(
        "  one slice per macroblock (8160 slices) vs one slice (high_1080p): ours {:.2}x native, {:.2}x wasm (target <= 2x); vs 68 slices: {:.2}x / {:.2}x",
        ratio(2, 0, false),
        ratio(2, 0, true),
        ratio(2, 1, false),
        ratio(2, 1, true),
    );
    let wasm_ratio = module.is_some().then(|| ratio(2, 0, true));
    (module, wasm_ratio)
}

/// Native render of the first 1080p and 720p I-frames, each stage timed (best of 5 per stage).
fn render_stages() {
    use livesnap_guest::render::{Stage, render_observed};
    println!("\nnative render split (first I-frame, q80, best of 5 per stage)");
    for (name, shortside) in [
        ("high_1080p", None),
        ("high_1080p", Some(360)),
        ("high_720p", None),
    ] {
        let shot = &keyframes(name)[0];
        let mut best = [Duration::MAX; 4];
        for _ in 0..5 {
            let mut last = Instant::now();
            render_observed(&shot.config, &shot.access_unit, shortside, 80, |stage| {
                let now = Instant::now();
                let i = match stage {
                    Stage::Decode => 0,
                    Stage::Scale => 1,
                    Stage::Colour => 2,
                    Stage::Encode => 3,
                };
                best[i] = best[i].min(now - last);
                last = now;
            })
            .unwrap();
        }
        let side = shortside.map_or("full size".to_owned(), |s| format!("shortside {s}"));
        println!(
            "  {name:<11} {side:<13} decode {:5.1} ms | scale {:5.2} ms | colour {:5.2} ms | encode {:5.2} ms",
            ms(best[0]),
            ms(best[1]),
            ms(best[2]),
            ms(best[3])
        );
    }
}

/// livesnap's JPEG encoder against `jpeg-encoder` (speed, size) and libjpeg-turbo (size, PSNR,
/// bytes) on the first 1080p I-frame in JFIF colour.
fn jpeg_encoders() {
    use livesnap_guest::{color, encode, render};
    let shot = &keyframes("high_1080p")[0];
    let mut picture = render::decode(&shot.config, &shot.access_unit).unwrap();
    color::to_jfif(&mut picture).unwrap();
    let reference =
        std::fs::read_to_string(livesnap_tests::root().join("fixtures/ref/libjpeg.tsv"))
            .unwrap_or_default();
    println!(
        "\nJPEG encode, first high_1080p I-frame {}x{} (JFIF 4:2:0), native, best of 5",
        picture.width, picture.height
    );
    for quality in [30, 50, 80, 95] {
        let mut ours = Vec::new();
        let ours_time = per_item(&[()], 5, |_| {
            ours = encode::encode_jfif(&picture, quality).unwrap();
        });
        let mut theirs = Vec::new();
        let theirs_time = per_item(&[()], 5, |_| {
            theirs = jpeg_encoder_420(&picture, quality);
        });
        let m = measure(&picture, &ours);
        println!(
            "  q{quality:<2} ours {:5.2} ms {:>7} B | jpeg-encoder {:5.2} ms {:>7} B | {:.2}x faster | Y {:.2} dB Cb {:.2} Cr {:.2}",
            ms(ours_time),
            ours.len(),
            ms(theirs_time),
            theirs.len(),
            theirs_time.as_secs_f64() / ours_time.as_secs_f64(),
            m[0],
            m[1],
            m[2]
        );
        let line = reference.lines().find(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            f.first() == Some(&"high_1080p") && f.get(3) == Some(&quality.to_string().as_str())
        });
        match line.map(|l| l.split('\t').collect::<Vec<_>>()) {
            Some(f) if f.len() >= 9 => println!(
                "       libjpeg-turbo (raw YCbCr, islow, standard tables) {:>7} B Y {} dB Cb {} Cr {} | size ours/libjpeg {:.4} | bytes identical: {}",
                f[4],
                f[5],
                f[6],
                f[7],
                ours.len() as f64 / f[4].parse::<f64>().unwrap(),
                livesnap_tests::md5_hex(&[&ours]) == f[8]
            ),
            _ => println!("       no libjpeg reference: run fixtures/libjpeg_ref.sh"),
        }
    }
}

/// Y, Cb and Cr PSNR of `jpeg` (decoded by zune-jpeg) against the planes of `p`; chroma is
/// compared at chroma resolution by averaging each 2×2 of decoded pixels (the guest test's
/// metric, which `fixtures/ref/libjpeg.tsv` uses too).
fn measure(p: &livesnap_guest::render::Yuv420, jpeg: &[u8]) -> [f64; 3] {
    use zune_jpeg::zune_core::{colorspace::ColorSpace, options::DecoderOptions};
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::YCbCr)
        .set_use_unsafe(false);
    let mut d = zune_jpeg::JpegDecoder::new_with_options(std::io::Cursor::new(jpeg), options);
    let px = d.decode().unwrap();
    let (w, h) = (p.width as usize, p.height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let db = |mse: f64| 10.0 * (255.0f64 * 255.0 / mse).log10();
    let luma =
        p.y.iter()
            .zip(px.chunks(3))
            .map(|(&s, d)| (f64::from(s) - f64::from(d[0])).powi(2));
    let mut out = [db(luma.sum::<f64>() / (w * h) as f64), 0.0, 0.0];
    for (c, plane) in [(1, &p.u), (2, &p.v)] {
        let mut sum = 0.0;
        for cy in 0..ch {
            for cx in 0..cw {
                let (mut acc, mut n) = (0.0, 0.0);
                for y in 2 * cy..(2 * cy + 2).min(h) {
                    for x in 2 * cx..(2 * cx + 2).min(w) {
                        acc += f64::from(px[(y * w + x) * 3 + c]);
                        n += 1.0;
                    }
                }
                sum += (f64::from(plane[cy * cw + cx]) - acc / n).powi(2);
            }
        }
        out[c] = db(sum / (cw * ch) as f64);
    }
    out
}

/// What the guest did before its own encoder: `jpeg-encoder` 0.7 at 4:2:0 with nearest chroma
/// subsampling, fed each chroma sample twice per row and each chroma row twice, so it codes
/// exactly our chroma plane.
fn jpeg_encoder_420(picture: &livesnap_guest::render::Yuv420, quality: u8) -> Vec<u8> {
    use jpeg_encoder::{
        ChromaSubsamplingMethod, Encoder, ImageBuffer, JpegColorType, SamplingFactor,
    };
    struct Planes<'a>(&'a livesnap_guest::render::Yuv420);
    impl ImageBuffer for Planes<'_> {
        fn get_jpeg_color_type(&self) -> JpegColorType {
            JpegColorType::Ycbcr
        }
        fn width(&self) -> u16 {
            self.0.width as u16
        }
        fn height(&self) -> u16 {
            self.0.height as u16
        }
        fn fill_buffers(&self, y: u16, buffers: &mut [Vec<u8>; 4]) {
            let (w, y) = (self.0.width as usize, usize::from(y));
            let cw = w.div_ceil(2);
            let [luma, cb, cr, _] = buffers;
            luma.extend_from_slice(&self.0.y[y * w..(y + 1) * w]);
            let row = (y / 2) * cw..(y / 2 + 1) * cw;
            for (buffer, plane) in [(cb, &self.0.u), (cr, &self.0.v)] {
                for &s in &plane[row.clone()] {
                    buffer.extend_from_slice(&[s, s]);
                }
                buffer.truncate(buffer.len() - (2 * cw - w));
            }
        }
    }
    let mut jpeg = Vec::new();
    let mut encoder = Encoder::new(&mut jpeg, quality);
    encoder.set_sampling_factor(SamplingFactor::R_4_2_0);
    encoder.set_chroma_subsampling_method(ChromaSubsamplingMethod::Nearest);
    encoder.encode_image(Planes(picture)).unwrap();
    jpeg
}
