//! `cargo bench -p livesnap-tests`: prints livesnap's speed and memory figures on the bundled
//! fixtures, each beside a reference measured in the same run. No assertions: the numbers are for
//! reading (README "Benchmark" lists the targets).
//!
//! - keyframe render (decode + scale + JPEG) through the component vs the same code natively;
//! - µs per tag through `capture`;
//! - peak linear memory of a capture instance and of a render instance;
//! - replay wall time of the 1080p fixture vs `ffmpeg -threads 1 -skip_frame nokey` writing JPEGs;
//! - H.264 I-frame decode, ours (`livesnap-h264`) vs `rust_h264`, natively and in wasm (a core
//!   module of both decoders, `tests/wasm-bench`, built for wasm32 + simd128 and run by wasmtime),
//!   and the one-slice-per-macroblock 1080p picture against one-slice ones.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use livesnap::runtime::{Action, Codec, Outcome, Shot};
use livesnap_tests::{
    START_MS, fixture, fixture_names, options, read_tags, replay_into_temp, runtime,
    session_info as info, settings,
};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Every I-frame of a fixture as a shot.
fn keyframes(name: &str) -> Vec<Shot> {
    let mut capture = runtime()
        .capture(&info(name), &settings(1))
        .unwrap()
        .unwrap();
    let mut shots = Vec::new();
    for tag in read_tags(&fixture(name)) {
        if let Ok(Action::Capture(shot)) = capture
            .push_tag(tag.tag_type, tag.timestamp_ms, &tag.body)
            .unwrap()
        {
            capture
                .complete(shot.seq, &Outcome::Stored((0, 0)))
                .unwrap()
                .unwrap();
            shots.push(shot);
        }
    }
    shots
}

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
                .decode(rt, s.codec, &s.config, &s.access_unit)
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
        println!(
            "  {name:<11} render instance peak linear memory: {:.1} MiB",
            renderer.peak_memory_bytes() as f64 / 1048576.0
        );
    }

    decoders();

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
}

/// Best of 3 wall times of `ffmpeg` decoding only keyframes, single-threaded, writing a JPEG each.
fn ffmpeg_keyframes(ffmpeg: &str, input: &std::path::Path) -> Option<Duration> {
    let dir = std::env::temp_dir().join(format!("livesnap-bench-ffmpeg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let status = Command::new(ffmpeg)
            .args([
                "-loglevel",
                "error",
                "-y",
                "-threads",
                "1",
                "-skip_frame",
                "nokey",
                "-i",
            ])
            .arg(input)
            .args([
                "-an",
                "-fps_mode",
                "passthrough",
                "-threads",
                "1",
                "-q:v",
                "3",
            ])
            .arg(dir.join("%03d.jpg"))
            .status()
            .ok()?;
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
fn decoders() {
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
}
