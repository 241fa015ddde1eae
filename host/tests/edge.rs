//! The edge proxy (`livesnap-edge.wasm`) under a real `wasmtime serve`, in front of an HTTP-FLV
//! origin on 127.0.0.1, storing into an in-process S3 server (s3s-fs, SigV4-checked) and calling
//! back a receiver: the viewer gets the origin's bytes exactly; pictures land at the keys
//! `livesnap serve` would use and callbacks carry the same fields; storage failures and a non-FLV
//! origin are reported without breaking anything.
//!
//! `wasmtime serve` (wasmtime-cli 48.0.8's own command) comes from `$LIVESNAP_WASMTIME`, else
//! `target/debug/wasmtime-serve`, the workspace binary of `tools/wasmtime-serve` (built by
//! `cargo build --workspace --all-targets`, as `.ci/run` does).

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use common::{
    Receiver, Reply, S3_ACCESS_KEY, S3_SECRET_KEY, S3Server, check_signature, files_under, fixture,
    livesnap, temp_dir, text,
};
use serde_json::Value;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CALLBACK_SECRET: &str = "edge-test-secret";

fn wasmtime_cli() -> PathBuf {
    let path = std::env::var_os("LIVESNAP_WASMTIME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/wasmtime-serve")
        });
    assert!(
        path.exists(),
        "no wasmtime CLI at {}: build it with `cargo build --workspace --all-targets` \
         (tools/wasmtime-serve; .ci/run does), or set LIVESNAP_WASMTIME to a wasmtime >= 48 \
         with `serve`",
        path.display()
    );
    path
}

/// The edge component, written by `livesnap component` as a user gets it.
fn edge_wasm(dir: &Path) -> PathBuf {
    let out = livesnap(&["component", "--out", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    dir.join("livesnap-edge.wasm")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `wasmtime serve -Scli --env …` on a free port, killed on drop.
struct Proxy {
    addr: SocketAddr,
    child: Child,
    log: PathBuf,
}

impl Proxy {
    fn start(wasm: &Path, env: &[(&str, String)], log: PathBuf) -> Proxy {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut cmd = Command::new(wasmtime_cli());
        cmd.arg("serve")
            .arg("-Scli")
            .arg("--addr")
            .arg(addr.to_string());
        for (name, value) in env {
            cmd.arg("--env").arg(format!("{name}={value}"));
        }
        let child = cmd
            .arg(wasm)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "wasmtime serve did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Proxy { addr, child, log }
    }

    fn get(&self, path: &str) -> (u16, Vec<u8>) {
        let url = format!("http://{}{path}", self.addr);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let resp = reqwest::Client::new()
                .get(url)
                .timeout(Duration::from_secs(120))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.bytes().await.unwrap().to_vec())
        })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP-FLV origin: `/live/{name}.flv` streams `fixtures/{name}.flv` in 16 KiB chunks
/// (chunked transfer encoding); `/live/page.flv` answers an HTML page with 200.
struct Origin {
    url: String,
    _rt: tokio::runtime::Runtime,
}

impl Origin {
    fn start() -> Origin {
        use axum::body::Body;
        use axum::extract::Path as UrlPath;
        use axum::response::Response;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().route(
            "/live/{file}",
            axum::routing::get(|UrlPath(file): UrlPath<String>| async move {
                let name = file.trim_end_matches(".flv").to_owned();
                if name == "page" {
                    return Response::builder()
                        .header("content-type", "text/html")
                        .body(Body::from("<html><body>not a stream</body></html>"))
                        .unwrap();
                }
                let Ok(data) = std::fs::read(fixture(&format!("{name}.flv"))) else {
                    return Response::builder().status(404).body(Body::empty()).unwrap();
                };
                let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = data
                    .chunks(16 << 10)
                    .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
                    .collect();
                Response::builder()
                    .header("content-type", "video/x-flv")
                    .body(Body::from_stream(futures::stream::iter(chunks)))
                    .unwrap()
            }),
        );
        rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Origin { url, _rt: rt }
    }
}

fn env(
    origin: &Origin,
    s3: &S3Server,
    secret: &str,
    callbacks: &Receiver,
) -> Vec<(&'static str, String)> {
    vec![
        ("LIVESNAP_ORIGIN", origin.url.clone()),
        ("LIVESNAP_S3_ENDPOINT", s3.endpoint.clone()),
        ("LIVESNAP_S3_BUCKET", "shots".into()),
        ("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY", secret.into()),
        (
            "LIVESNAP_CALLBACK_URL",
            format!("{}?tenant=cdn", callbacks.url),
        ),
        ("LIVESNAP_CALLBACK_SECRET", CALLBACK_SECRET.into()),
        ("LIVESNAP_INTERVAL_S", "10".into()),
        ("LIVESNAP_UNIQNAME", "cdn".into()),
    ]
}

/// A callback with its per-session parts (`taskid` prefix, keys, timestamp) taken out.
fn normalized(body: &Value) -> Value {
    let mut v = body.clone();
    let seq = v["taskid"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    v["taskid"] = Value::String(seq);
    for field in ["keys", "dstpath"] {
        if let Some(key) = v[field].as_str() {
            let file = key.rsplit('/').next().unwrap();
            let stream = file.rsplit_once('-').map_or(file, |(s, _)| s).to_owned();
            v[field] = Value::String(if key.is_empty() {
                String::new()
            } else {
                stream
            });
        }
    }
    v["timestamp"] = Value::Null;
    v
}

/// What `livesnap replay` makes of the fixture at the same settings.
fn replay_callbacks(name: &str, dir: &Path) -> Vec<Value> {
    let out = livesnap(&[
        "replay",
        fixture(&format!("{name}.flv")).to_str().unwrap(),
        "--out",
        dir.join("replay").to_str().unwrap(),
        "--interval",
        "10",
        "--bucket",
        "shots",
        "--uniqname",
        "cdn",
        "--callbacks",
        "-",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Everything a proxy test runs against: the component as `livesnap component` writes it, an S3
/// server with bucket `shots`, a callback receiver that accepts, an origin, and the proxy.
struct Setup {
    dir: PathBuf,
    wasm: PathBuf,
    s3_root: PathBuf,
    s3: S3Server,
    callbacks: Receiver,
    origin: Origin,
    proxy: Proxy,
}

impl Setup {
    fn start(tag: &str, s3_secret: &str) -> Setup {
        let dir = temp_dir(tag);
        let wasm = edge_wasm(&dir.join("dist"));
        let s3_root = dir.join("s3");
        std::fs::create_dir_all(s3_root.join("shots")).unwrap();
        let s3 = S3Server::start(&s3_root);
        let callbacks = Receiver::start(|_, _| Reply::Status(200));
        let origin = Origin::start();
        let proxy = Proxy::start(
            &wasm,
            &env(&origin, &s3, s3_secret, &callbacks),
            dir.join("proxy.log"),
        );
        Setup {
            dir,
            wasm,
            s3_root,
            s3,
            callbacks,
            origin,
            proxy,
        }
    }
}

#[test]
fn the_edge_proxy_passes_the_stream_through_and_stores_signed_captures() {
    let Setup {
        dir,
        wasm: _,
        s3_root,
        s3: _s3,
        callbacks,
        origin: _origin,
        proxy,
    } = Setup::start("edge-ok", S3_SECRET_KEY);

    for name in ["high_720p", "res_change", "hevc_main_bframes"] {
        let started_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let before = callbacks.accepted().len();
        let (status, body) = proxy.get(&format!("/live/{name}.flv"));
        assert_eq!(status, 200, "{}", proxy.log());
        assert!(
            body == std::fs::read(fixture(&format!("{name}.flv"))).unwrap(),
            "{name}: the viewer's bytes differ from the origin's ({} bytes)",
            body.len()
        );
        // At least once: a retried callback may arrive twice; a receiver dedupes on taskid, and
        // every copy must be the same bytes.
        let mut got: Vec<Value> = Vec::new();
        let mut bodies = std::collections::HashMap::new();
        for req in &callbacks.accepted()[before..] {
            assert_eq!(req.path, "/hook?tenant=cdn");
            check_signature(CALLBACK_SECRET, req);
            let v: Value = serde_json::from_str(&req.body).unwrap();
            let taskid = v["taskid"].as_str().unwrap().to_owned();
            match bodies.get(&taskid) {
                Some(first) => assert_eq!(first, &req.body, "two bodies for {taskid}"),
                None => {
                    bodies.insert(taskid, req.body.clone());
                    got.push(v);
                }
            }
        }
        let want = replay_callbacks(name, &dir);
        assert_eq!(
            got.iter().map(normalized).collect::<Vec<_>>(),
            want.iter().map(normalized).collect::<Vec<_>>(),
            "{name}: callbacks (modulo session and times)\n{}",
            proxy.log()
        );
        for cb in &got {
            assert_eq!(cb["status"], 3, "{cb}");
            let taskid = cb["taskid"].as_str().unwrap();
            let session = taskid.split('/').nth(2).unwrap();
            let push_start_ms: u64 = session.split('-').next().unwrap().parse().unwrap();
            assert!(
                push_start_ms.abs_diff(started_ms) < 10_000,
                "push_start_ms {push_start_ms} is not the request's wall clock ({started_ms})"
            );
            let key = cb["dstpath"].as_str().unwrap();
            assert!(
                key.starts_with(&format!("record/live/{name}/picture/{session}/")),
                "{key}"
            );
            let jpeg = std::fs::read(s3_root.join("shots").join(key)).unwrap();
            let mut decoder = zune_jpeg::JpegDecoder::new(std::io::Cursor::new(&jpeg));
            decoder.decode_headers().unwrap();
            let (w, h) = decoder.dimensions().unwrap();
            assert_eq!(
                (w as u64, h as u64),
                (
                    cb["width"].as_u64().unwrap(),
                    cb["height"].as_u64().unwrap()
                ),
                "{key}"
            );
        }
    }
    // One session per request, each with its own random id.
    let sessions: std::collections::BTreeSet<String> = callbacks
        .accepted()
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_str(&r.body).unwrap();
            v["taskid"]
                .as_str()
                .unwrap()
                .split('/')
                .nth(2)
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(sessions.len(), 3, "{sessions:?}");
}

#[test]
fn storage_failures_are_called_back_and_the_viewer_still_gets_every_byte() {
    let Setup {
        dir,
        wasm: _,
        s3_root,
        s3: _s3,
        callbacks,
        origin: _origin,
        proxy,
    } = Setup::start("edge-badkey", "a-wrong-secret");

    let (status, body) = proxy.get("/live/high_720p.flv");
    assert_eq!(status, 200);
    assert_eq!(body, std::fs::read(fixture("high_720p.flv")).unwrap());
    let got = callbacks.accepted();
    assert_eq!(
        got.len(),
        replay_callbacks("high_720p", &dir).len(),
        "{}",
        proxy.log()
    );
    for req in &got {
        check_signature(CALLBACK_SECRET, req);
        let cb: Value = serde_json::from_str(&req.body).unwrap();
        assert_eq!(cb["status"], 4, "{cb}");
        assert_eq!(cb["code"], "UploadFailed");
        assert_eq!(cb["errnum"], 1003);
        assert_eq!(cb["dstpath"], "");
        assert!(cb["errmsg"].as_str().unwrap().contains("403"), "{cb}");
    }
    assert!(
        files_under(&s3_root.join("shots")).is_empty(),
        "objects stored with a wrong secret"
    );
}

#[test]
fn bad_requests_and_a_non_flv_origin_get_clear_errors_and_store_nothing() {
    let Setup {
        dir,
        wasm,
        s3_root,
        s3,
        callbacks,
        origin,
        proxy,
    } = Setup::start("edge-errors", S3_SECRET_KEY);

    let (status, body) = proxy.get("/live/page.flv");
    assert_eq!(status, 502, "{}", text(&body));
    assert!(
        text(&body).contains("did not answer FLV"),
        "{}",
        text(&body)
    );
    let (status, body) = proxy.get("/live/missing.flv");
    assert_eq!(status, 502);
    assert!(text(&body).contains("answered 404"), "{}", text(&body));
    for bad in ["/live/..%2Fx.flv", "/live/a$b.flv", "/live/cam1", "/x.flv"] {
        let (status, body) = proxy.get(bad);
        assert_eq!(status, 400, "{bad}: {}", text(&body));
    }

    // Without an origin configured, every request is a 502 naming the variable.
    let mut no_origin = env(&origin, &s3, S3_SECRET_KEY, &callbacks);
    no_origin.retain(|(name, _)| *name != "LIVESNAP_ORIGIN");
    let unconfigured = Proxy::start(&wasm, &no_origin, dir.join("proxy2.log"));
    let (status, body) = unconfigured.get("/live/high_720p.flv");
    assert_eq!(status, 502);
    assert!(text(&body).contains("LIVESNAP_ORIGIN"), "{}", text(&body));

    assert!(files_under(&s3_root.join("shots")).is_empty());
    assert!(callbacks.accepted().is_empty());
}
