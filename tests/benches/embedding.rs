//! `cargo bench -p livesnap-tests --bench embedding`: the component as a product (README
//! "Embedding"), each figure beside its reference from the same run. No assertions.
//!
//! - sizes of `livesnap.wasm` and `livesnap-edge.wasm`;
//! - compile and instantiate times of the component in wasmtime;
//! - render of one 1080p I-frame in wasmtime and in Node (jco), the same frame;
//! - the edge proxy's CPU under `wasmtime serve` for a 720p30 stream at interval 20 s, beside the
//!   same proxy built as a plain pass-through (`EDGE_PASSTHROUGH_WASM`).

#![allow(
    clippy::unwrap_used,
    reason = "benchmark code: a failed unwrap is a failed run"
)]

use livesnap::ingest::flv::Tag;
use livesnap::runtime::{COMPONENT_WASM, EDGE_PASSTHROUGH_WASM, EDGE_WASM, Shot};
use livesnap_tests::{fixture, keyframes, read_tags, root, runtime};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn temp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("livesnap-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn main() {
    println!("livesnap embedding benchmark (2 cores here)\n");
    println!(
        "component sizes: livesnap.wasm {} bytes, livesnap-edge.wasm {} bytes",
        COMPONENT_WASM.len(),
        EDGE_WASM.len()
    );

    // Compile (what every process start pays once without a cache) and instantiate.
    let compile = (0..3)
        .map(|_| {
            let engine = wasmtime::Engine::default();
            let t = Instant::now();
            wasmtime::component::Component::new(&engine, COMPONENT_WASM).unwrap();
            t.elapsed()
        })
        .min()
        .unwrap();
    let rt = runtime();
    let n = 200;
    let t = Instant::now();
    for _ in 0..n {
        drop(rt.renderer().unwrap());
    }
    let instantiate = t.elapsed() / n;
    println!(
        "wasmtime: compile {:.0} ms (cranelift, once per process) | instantiate {:.3} ms per instance (pre-instantiated, own store)",
        ms(compile),
        ms(instantiate)
    );

    // The same 1080p I-frame in wasmtime and in Node.
    let shot = keyframes("high_1080p").remove(0);
    let mut renderer = rt.renderer().unwrap();
    let mut times: Vec<Duration> = (0..7)
        .map(|_| {
            let t = Instant::now();
            renderer.render(rt, &shot).unwrap().unwrap();
            t.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "render of one 1080p I-frame (q80, full size): wasmtime best {:.1} ms, median {:.1} ms",
        ms(times[0]),
        ms(times[3])
    );
    match node_render(&shot) {
        Ok(line) => println!("  node (jco):   {line}"),
        Err(why) => println!("  node (jco):   not measured: {why}"),
    }

    println!(
        "\nedge proxy CPU under wasmtime serve: 720p30 (high_720p looped to 300 s), interval 20 s"
    );
    match edge_cpu() {
        Ok(()) => {}
        Err(why) => println!("  not measured: {why}"),
    }
}

/// Run examples/node/bench-render.mjs on `shot`; its JSON line, summarised.
fn node_render(shot: &Shot) -> Result<String, String> {
    let node_dir = root().join("examples/node");
    let jco = node_dir.join("node_modules/.bin/jco");
    if !jco.exists() {
        return Err("run `npm ci --prefix examples/node` first".into());
    }
    let dir = temp("node");
    livesnap::artifact::write(&dir).map_err(|e| e.to_string())?;
    let run = Command::new(&jco)
        .arg("transpile")
        .arg(dir.join("livesnap.wasm"))
        .args(["--no-typescript", "-o"])
        .arg(dir.join("gen"))
        .output()
        .map_err(|e| e.to_string())?;
    if !run.status.success() {
        return Err(String::from_utf8_lossy(&run.stderr).into_owned());
    }
    std::fs::write(dir.join("config.bin"), &shot.config).unwrap();
    std::fs::write(dir.join("au.bin"), &shot.access_unit).unwrap();
    let run = Command::new("node")
        .arg(node_dir.join("bench-render.mjs"))
        .arg("--module")
        .arg(dir.join("gen/livesnap.js"))
        .arg(dir.join("config.bin"))
        .arg(dir.join("au.bin"))
        .arg("7")
        .output()
        .map_err(|e| format!("node: {e}"))?;
    if !run.status.success() {
        return Err(String::from_utf8_lossy(&run.stderr).into_owned());
    }
    let v: serde_json::Value =
        serde_json::from_slice(&run.stdout).map_err(|e| format!("node output: {e}"))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(format!(
        "best {:.1} ms, median {:.1} ms ({}x{}); module import + instantiate {:.0} ms",
        v["render_ms_best"].as_f64().unwrap_or(0.0),
        v["render_ms_median"].as_f64().unwrap_or(0.0),
        v["width"],
        v["height"],
        v["instantiate_ms"].as_f64().unwrap_or(0.0),
    ))
}

/// `fixtures/high_720p.flv` repeated `loops` times with timestamps carried on: one long stream.
fn looped_flv(loops: u32) -> (Vec<u8>, f64) {
    let tags: Vec<Tag> = read_tags(&fixture("high_720p"));
    let span = tags.iter().map(|t| t.timestamp_ms).max().unwrap_or(0) + 33;
    let mut out = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
    for i in 0..loops {
        for tag in &tags {
            let ts = tag.timestamp_ms + i * span;
            let size = tag.body.len() as u32;
            out.push(tag.tag_type);
            out.extend_from_slice(&size.to_be_bytes()[1..]);
            out.extend_from_slice(&ts.to_be_bytes()[1..]);
            out.push((ts >> 24) as u8);
            out.extend_from_slice(&[0, 0, 0]);
            out.extend_from_slice(&tag.body);
            out.extend_from_slice(&(11 + size).to_be_bytes());
        }
    }
    (out, f64::from(span * loops) / 1000.0)
}

/// A one-file origin: every connection gets `body` once, then the connection closes.
fn serve_bytes(body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let body = body.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let _ = conn.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: video/x-flv\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    )
                    .as_bytes(),
                );
                let _ = conn.write_all(&body);
            });
        }
    });
    url
}

/// CPU seconds the process `pid` has used so far: the sum of its threads' run time from
/// `/proc/{pid}/task/*/schedstat` (nanoseconds; `/proc/{pid}/stat` counts 10 ms ticks, too coarse
/// for a pass-through). Threads that already exited are not counted, so measure while it runs.
fn cpu_s(pid: u32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum();
    ns as f64 / 1e9
}

/// Fetch `path` through the proxy at `addr` to the end; the bytes received.
fn fetch(addr: &str, path: &str) -> usize {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut got = Vec::new();
    let _ = conn.read_to_end(&mut got);
    got.len()
}

fn edge_cpu() -> Result<(), String> {
    let cli = std::env::var_os("LIVESNAP_WASMTIME")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/debug/wasmtime-serve"));
    if !cli.exists() {
        return Err(format!(
            "no wasmtime CLI at {} (`cargo build --workspace --all-targets` builds it)",
            cli.display()
        ));
    }
    let (stream, stream_s) = looped_flv(15);
    let origin = serve_bytes(stream.clone());
    let dir = temp("edge");
    std::fs::write(dir.join("edge.wasm"), EDGE_WASM).unwrap();
    std::fs::write(dir.join("passthrough.wasm"), EDGE_PASSTHROUGH_WASM).unwrap();
    // Storage and callbacks go to a sink that accepts everything.
    let sink = sink_server();
    let mut results = Vec::new();
    for (label, wasm) in [
        ("pass-through", "passthrough.wasm"),
        ("edge proxy", "edge.wasm"),
    ] {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut child = Command::new(&cli)
            .args(["serve", "-Scli", "--addr", &addr])
            .args(["--env", &format!("LIVESNAP_ORIGIN={origin}")])
            .args(["--env", &format!("LIVESNAP_S3_ENDPOINT={sink}")])
            .args(["--env", "LIVESNAP_S3_BUCKET=shots"])
            .args(["--env", &format!("LIVESNAP_CALLBACK_URL={sink}/hook")])
            .args(["--env", "LIVESNAP_INTERVAL_S=20"])
            .arg(dir.join(wasm))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(&addr).is_err() {
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err("wasmtime serve did not start".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // One warm-up request (compiles lazily-touched code paths), then five measured.
        fetch(&addr, "/live/cam.flv");
        let mut best = f64::MAX;
        let mut wall = Duration::ZERO;
        for _ in 0..5 {
            let before = cpu_s(child.id());
            let t = Instant::now();
            let got = fetch(&addr, "/live/cam.flv");
            let used = cpu_s(child.id()) - before;
            if got < stream.len() {
                let _ = child.kill();
                return Err(format!("{label}: got {got} of {} bytes", stream.len()));
            }
            if used < best {
                best = used;
                wall = t.elapsed();
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        println!(
            "  {label:<12} {:.4} CPU s for {stream_s:.0} s of stream ({} bytes in {:.2} s wall) = {:.4} % of one core at real time",
            best,
            stream.len(),
            wall.as_secs_f64(),
            best / stream_s * 100.0
        );
        results.push(best);
    }
    let (plain, edge) = (results[0], results[1]);
    println!(
        "  capture adds {:.4} CPU s per {stream_s:.0} s = {:.4} % of one core at real time (target <= 5 %); {:.1}x the pass-through's CPU",
        edge - plain,
        (edge - plain) / stream_s * 100.0,
        edge / plain.max(0.001)
    );
    Ok(())
}

/// An HTTP sink on 127.0.0.1 answering 200 to everything (the proxy's S3 PUTs and callbacks).
fn sink_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            std::thread::spawn(move || answer_all(conn));
        }
    });
    url
}

fn answer_all(mut conn: TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 << 10];
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < end + 4 + len {
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..end + 4 + len);
        if conn
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}
