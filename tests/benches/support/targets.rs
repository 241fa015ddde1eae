//! Issue 9's targets, measured as a user pays them: the `livesnap` CLI as a whole process
//! (process start, compilation cache, FLV reading, files written) against ffmpeg on the same
//! file, in alternating pairs, median of the pairs; and the render split inside wasm beside
//! ffmpeg's own split of the same frames. Figures only, no assertions.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use livesnap_tests::{fixture, keyframes};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// The `livesnap` binary of this build profile (`cargo bench --workspace` builds it).
fn cli() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    let cli = profile_dir.join(format!("livesnap{}", std::env::consts::EXE_SUFFIX));
    cli.exists().then_some(cli)
}

fn scratch(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("livesnap-bench-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Wall time of one run of `cmd` (which must succeed), into a fresh `out` directory.
fn wall(cmd: &mut Command, out: &Path) -> Duration {
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out).unwrap();
    let t = Instant::now();
    let status = cmd.status().unwrap();
    let elapsed = t.elapsed();
    assert!(status.success(), "{cmd:?} failed");
    elapsed
}

/// `ffmpeg -threads 1 -skip_frame nokey -i FILE … -q:v 3 OUT/%03d.jpg`: every keyframe as JPEG.
pub fn ffmpeg_jpegs(ffmpeg: &str, input: &Path, out: &Path) -> Command {
    let mut cmd = Command::new(ffmpeg);
    cmd.args(["-nostdin", "-loglevel", "error", "-y", "-threads", "1"])
        .args(["-skip_frame", "nokey", "-i"])
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
        .arg(out.join("%03d.jpg"));
    cmd
}

/// `livesnap replay FILE --interval 1 [--render-workers N]`: every keyframe as JPEG.
fn livesnap_jpegs(cli: &Path, input: &Path, out: &Path, workers: Option<usize>) -> Command {
    let mut cmd = Command::new(cli);
    cmd.arg("replay")
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(["--interval", "1", "--start-ms", "1700000000000"])
        .args(["--session-id", "7"])
        .stderr(std::process::Stdio::null());
    if let Some(n) = workers {
        cmd.args(["--render-workers", &n.to_string()]);
    }
    cmd
}

/// `pairs` alternating runs of `a` then `b` after one warm-up of each: (median a, median b).
fn alternate(
    pairs: usize,
    mut a: impl FnMut() -> Duration,
    mut b: impl FnMut() -> Duration,
) -> (Duration, Duration) {
    a();
    b();
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for _ in 0..pairs {
        xs.push(a());
        ys.push(b());
    }
    (median(xs), median(ys))
}

/// `input` cut just before its second keyframe tag: a file with one I-frame (its GOP's other
/// frames and the audio up to there stay).
fn one_keyframe_file(input: &Path, out: &Path) {
    let data = std::fs::read(input).unwrap();
    let mut pos = 13;
    let mut keyframes = 0;
    while pos + 11 <= data.len() {
        let size = u32::from_be_bytes([0, data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        // A keyframe's coded frame (legacy AVC: FrameType 1, AVCPacketType 1).
        if data[pos] == 9
            && data.get(pos + 11).is_some_and(|b| b >> 4 == 1)
            && data.get(pos + 12) == Some(&1)
        {
            keyframes += 1;
            if keyframes == 2 {
                break;
            }
        }
        pos += 11 + size + 4;
    }
    std::fs::write(out, &data[..pos.min(data.len())]).unwrap();
}

/// ffmpeg's own `-benchmark` real time of one processing run (process start excluded).
fn ffmpeg_rtime(ffmpeg: &str, input: &Path, args: &[&str], out: &str) -> Option<f64> {
    let output = Command::new(ffmpeg)
        .args(["-nostdin", "-loglevel", "info", "-benchmark", "-y"])
        .args(["-threads", "1", "-skip_frame", "nokey", "-i"])
        .arg(input)
        .args(["-an", "-fps_mode", "passthrough", "-threads", "1"])
        .args(args)
        .arg(out)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    let at = text.find("rtime=")? + "rtime=".len();
    let end = text[at..].find('s')? + at;
    text[at..end].parse().ok()
}

/// Best of 3 of ffmpeg's `-benchmark` rtime per keyframe.
fn ffmpeg_per_frame(ffmpeg: &str, input: &Path, frames: usize, args: &[&str], out: &str) -> f64 {
    (0..3)
        .filter_map(|_| ffmpeg_rtime(ffmpeg, input, args, out))
        .fold(f64::MAX, f64::min)
        * 1000.0
        / frames as f64
}

/// The component's render stages, in wasm: best of 5 per stage over the first I-frame.
fn wasm_stages(module: &wasmtime::Module, shortside: u32) -> [Duration; 4] {
    let shot = &keyframes("high_1080p")[0];
    let mut store = wasmtime::Store::new(module.engine(), ());
    let instance = wasmtime::Instance::new(&mut store, module, &[]).unwrap();
    let buffer = instance
        .get_typed_func::<u32, u32>(&mut store, "input_buffer")
        .unwrap();
    let memory = instance.get_memory(&mut store, "memory").unwrap();
    let input = livesnap_h264_wasm_bench::encode_render_input(&shot.config, &shot.access_unit);
    let at = buffer.call(&mut store, input.len() as u32).unwrap();
    memory.write(&mut store, at as usize, &input).unwrap();
    let decode = instance
        .get_typed_func::<(), u32>(&mut store, "stage_decode")
        .unwrap();
    let scale = instance
        .get_typed_func::<u32, u32>(&mut store, "stage_scale")
        .unwrap();
    let colour = instance
        .get_typed_func::<(), u32>(&mut store, "stage_colour")
        .unwrap();
    let encode = instance
        .get_typed_func::<u32, u32>(&mut store, "stage_encode")
        .unwrap();
    let mut best = [Duration::MAX; 4];
    for _ in 0..5 {
        let t = Instant::now();
        assert!(decode.call(&mut store, ()).unwrap() > 0, "wasm decode");
        let t1 = Instant::now();
        assert!(scale.call(&mut store, shortside).unwrap() > 0, "wasm scale");
        let t2 = Instant::now();
        assert_eq!(colour.call(&mut store, ()).unwrap(), 1, "wasm colour");
        let t3 = Instant::now();
        assert!(encode.call(&mut store, 80).unwrap() > 0, "wasm encode");
        let t4 = Instant::now();
        for (b, d) in best.iter_mut().zip([t1 - t, t2 - t1, t3 - t2, t4 - t3]) {
            *b = (*b).min(d);
        }
    }
    best
}

/// Prints every target of issue 9 beside its reference.
pub fn print(module: Option<&wasmtime::Module>, slice_ratio_wasm: Option<f64>) {
    println!("\ntargets (issue 9): the CLI and the render as a user pays them, beside ffmpeg");
    let clip = fixture("high_1080p");
    let frames = keyframes("high_1080p").len();
    let ffmpeg = "ffmpeg";
    if Command::new(ffmpeg).arg("-version").output().is_err() {
        println!("  ffmpeg not found: install it (apt-get install ffmpeg) for these figures");
        return;
    }

    // The render split: ours in wasm (the component's code, wasmtime), ffmpeg's by difference
    // of whole runs over the same keyframes (its -benchmark rtime, process start excluded).
    let f_decode = ffmpeg_per_frame(ffmpeg, &clip, frames, &["-f", "null"], "-");
    let f_colour = ffmpeg_per_frame(
        ffmpeg,
        &clip,
        frames,
        &[
            "-vf",
            "scale=in_range=tv:out_range=pc,format=yuvj420p",
            "-f",
            "null",
        ],
        "-",
    );
    let f_scaled = ffmpeg_per_frame(
        ffmpeg,
        &clip,
        frames,
        &[
            "-vf",
            "scale=-2:360:in_range=tv:out_range=pc,format=yuvj420p",
            "-f",
            "null",
        ],
        "-",
    );
    let jpeg_dir = scratch("split");
    let f_jpeg = ffmpeg_per_frame(
        ffmpeg,
        &clip,
        frames,
        &["-q:v", "3"],
        jpeg_dir.join("%03d.jpg").to_str().unwrap(),
    );
    // swscale scales and converts range in one pass, so its 360p scale is given with colour.
    let f = [
        f_decode,
        (f_scaled - f_decode).max(0.0),
        (f_colour - f_decode).max(0.0),
        (f_jpeg - f_colour).max(0.0),
    ];
    match module {
        Some(m) => {
            let ours = wasm_stages(m, 0).map(ms);
            let ours_scaled = wasm_stages(m, 360).map(ms);
            let total: f64 = ours.iter().sum();
            let f_total = f[0] + f[2] + f[3];
            println!(
                "  1080p I-frame -> JPEG, ms (ours: wasm, livesnap-h264 + guest/src/jpeg, q80; ffmpeg 5.1 native, -threads 1, q:v 3)"
            );
            println!(
                "    decode {:6.2} | ffmpeg {:6.2}\n    colour {:6.2} | ffmpeg {:6.2} (range to full, yuvj420p)\n    encode {:6.2} | ffmpeg {:6.2} (mjpeg)\n    scale + colour to 360p {:6.2} | ffmpeg {:6.2} (swscale bicubic, one pass)",
                ours[0],
                f[0],
                ours[2],
                f[2],
                ours[3],
                f[3],
                ours_scaled[1] + ours_scaled[2],
                f[1]
            );
            println!(
                "    full size total {total:6.2} | ffmpeg {f_total:6.2}: {:.2}x (target <= 1.5x)",
                total / f_total
            );
        }
        None => println!("  (the wasm module did not build: the wasm split is left out)"),
    }
    if let Some(r) = slice_ratio_wasm {
        println!(
            "  one-slice-per-macroblock 1080p I-frame vs one slice, decode in wasm: {r:.2}x (target <= 2x)"
        );
    }

    let Some(cli) = cli() else {
        println!(
            "  no livesnap binary next to this benchmark: run `cargo bench --workspace --bench livesnap` for the CLI figures"
        );
        return;
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (out_a, out_b) = (scratch("cli-a"), scratch("cli-b"));
    println!(
        "  CLI end to end ({}), {frames} keyframes of high_1080p.flv, median of 5 alternating pairs after a warm-up (compile cache warm):",
        cli.display()
    );
    for (label, workers, target) in [
        ("--render-workers 1", Some(1), 1.0),
        ("default render workers", None, 0.7),
    ] {
        let (ours, theirs) = alternate(
            5,
            || wall(&mut livesnap_jpegs(&cli, &clip, &out_a, workers), &out_a),
            || wall(&mut ffmpeg_jpegs(ffmpeg, &clip, &out_b), &out_b),
        );
        println!(
            "    {label:<23} livesnap {:6.0} ms | ffmpeg -threads 1 -skip_frame nokey {:6.0} ms: {:.2}x (target <= {target}x){}",
            ms(ours),
            ms(theirs),
            ours.as_secs_f64() / theirs.as_secs_f64(),
            if workers.is_none() {
                format!(" [{cores} workers]")
            } else {
                String::new()
            }
        );
    }
    let one = scratch("one").join("one_keyframe.flv");
    one_keyframe_file(&clip, &one);
    let (ours, theirs) = alternate(
        5,
        || wall(&mut livesnap_jpegs(&cli, &one, &out_a, None), &out_a),
        || wall(&mut ffmpeg_jpegs(ffmpeg, &one, &out_b), &out_b),
    );
    println!(
        "    warm start, 1-keyframe file   livesnap {:6.0} ms | ffmpeg {:6.0} ms: {:.2}x (target <= 2x)",
        ms(ours),
        ms(theirs),
        ours.as_secs_f64() / theirs.as_secs_f64()
    );
    for dir in [out_a, out_b, jpeg_dir] {
        let _ = std::fs::remove_dir_all(dir);
    }
}
