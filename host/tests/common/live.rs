//! A live `livesnap serve` in the test process and what the serve and camera tests share: a
//! callback receiver, tenant and config blocks, publishers (ffmpeg over RTMP), replay's
//! callbacks as the reference and the comparison of live callbacks with them.

use super::fixture;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use livesnap::config::Config;
use livesnap::serve::Server;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// A callback receiver: every POST's body and headers, in arrival order.
#[derive(Clone, Default)]
pub struct Receiver {
    pub got: Arc<Mutex<Vec<(HeaderMap, String)>>>,
}

impl Receiver {
    pub async fn start() -> (Receiver, SocketAddr) {
        let r = Receiver::default();
        let app = axum::Router::new()
            .route(
                "/cb",
                post(
                    |State(r): State<Receiver>, headers: HeaderMap, body: String| async move {
                        r.got.lock().unwrap().push((headers, body));
                        StatusCode::OK
                    },
                ),
            )
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, addr)
    }

    pub fn bodies(&self) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| serde_json::from_str(b).unwrap())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.got.lock().unwrap().len()
    }
}

/// A tenant block.
pub fn tenant(app: &str, bucket: &str, callback: Option<SocketAddr>, interval_s: u32) -> String {
    let cb = callback.map_or(String::new(), |a| {
        format!("callback_url = \"http://{a}/cb\"\ncallback_secret = \"s3cret-{app}\"\n")
    });
    format!(
        "[[tenant]]\napp = \"{app}\"\nuniqname = \"tenant-{app}\"\npublish_key = \"key-{app}\"\nbucket = \"{bucket}\"\ninterval_s = {interval_s}\n{cb}\n"
    )
}

pub fn config(dir: &Path, extra: &str) -> Config {
    let text = format!(
        "[server]\nrtmp = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\n\n[storage]\nroot = \"{}\"\n\n[callbacks]\nspool_dir = \"{}\"\nbackoff_base_ms = 50\nbackoff_max_ms = 200\n\n[limits]\nshutdown_grace_s = 20\n\n{extra}",
        dir.join("objects").display(),
        dir.join("spool").display()
    );
    Config::parse(&text, "test.toml").unwrap()
}

/// A running server and the way to stop it.
pub struct Running {
    pub rtmp: SocketAddr,
    pub http: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub async fn start(config: Config) -> Running {
        let server = Server::bind(config).await.unwrap();
        let (rtmp, http) = (server.rtmp_addr(), server.http_addr());
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Running {
            rtmp,
            http,
            stop: Some(stop),
            done,
        }
    }

    pub async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(60), self.done)
            .await
            .expect("shutdown finishes")
            .unwrap()
            .unwrap();
    }

    /// Wait until the server has read every publish to its end (no stream live): a shutdown cuts
    /// live publishers off, so tests that expect a whole file wait for this first.
    pub async fn wait_streams_ended(&self) {
        let started = Instant::now();
        while self.metric("livesnap_active_streams ").await != 0 {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "a stream stayed live"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Publish fixture `name` as `live/cam1` as fast as possible and wait until the server has
    /// read all of it.
    pub async fn publish_to_end(&self, name: &str) {
        let url = format!("rtmp://{}/live/cam1?key=key-live", self.rtmp);
        assert!(publish(&fixture(name), &url).await);
        self.wait_streams_ended().await;
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::get(format!("http://{}{path}", self.http))
            .await
            .unwrap()
    }

    /// Assert that `/latest/{app}/{stream}.jpg` answers a JPEG, with the token of a tenant whose
    /// callback secret is `secret`.
    pub async fn assert_latest_jpeg(&self, secret: &str, app: &str, stream: &str) {
        let token = livesnap::serve::session::latest_token(secret, app, stream);
        let resp = self
            .get(&format!("/latest/{app}/{stream}.jpg?token={token}"))
            .await;
        assert_eq!(resp.status(), 200, "/latest/{app}/{stream}.jpg");
        assert_eq!(&resp.bytes().await.unwrap()[..2], &[0xff, 0xd8]);
    }

    pub async fn metric(&self, line_prefix: &str) -> u64 {
        let text = self.get("/metrics").await.text().await.unwrap();
        text.lines()
            .find_map(|l| {
                l.strip_prefix(line_prefix)
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or_else(|| panic!("no metric {line_prefix} in\n{text}"))
    }
}

/// Publish `file` with ffmpeg (`-c copy`, as fast as possible unless `realtime`).
pub fn ffmpeg_publish(file: &Path, url: &str, realtime: bool) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new("ffmpeg");
    cmd.args(["-nostdin", "-loglevel", "error"]);
    if realtime {
        cmd.arg("-re");
    }
    cmd.arg("-i")
        .arg(file)
        .args(["-c", "copy", "-f", "flv", url]);
    cmd.kill_on_drop(true);
    cmd.spawn()
        .expect("ffmpeg is needed to publish over RTMP in these tests: apt-get install ffmpeg (.ci/run does)")
}

/// ffmpeg >= 6.1 (Enhanced RTMP: HEVC and AV1 in FLV): `$LIVESNAP_FFMPEG9` (set by `.ci/run`),
/// else the imageio-ffmpeg binary of the venv `.ci/run` makes at `target/venv-ff`.
pub fn ffmpeg9() -> PathBuf {
    if let Some(path) = std::env::var_os("LIVESNAP_FFMPEG9").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/venv-ff/bin/python");
    let found = std::process::Command::new(&python)
        .args([
            "-c",
            "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    found.unwrap_or_else(|| {
        panic!(
            "the HEVC publish tests need ffmpeg >= 6.1 (Debian's 5.1 cannot send HEVC over RTMP): \
             python3 -m venv target/venv-ff && target/venv-ff/bin/pip install imageio-ffmpeg \
             (.ci/run does this), or set LIVESNAP_FFMPEG9 to such an ffmpeg"
        )
    })
}

/// Publish `file` with ffmpeg 9 to its end (`-c copy`, as fast as possible).
pub async fn publish9(file: &Path, url: &str) -> bool {
    let mut cmd = tokio::process::Command::new(ffmpeg9());
    cmd.args(["-nostdin", "-loglevel", "error", "-i"])
        .arg(file)
        .args(["-c", "copy", "-f", "flv", url]);
    cmd.kill_on_drop(true);
    let child = cmd.spawn().expect("ffmpeg 9 starts");
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("ffmpeg 9 finishes")
        .unwrap();
    out.status.success()
}

/// `livesnap replay` of `file` as stream `cam1` of tenant `live` at `interval`: its callbacks.
pub fn replay_callbacks(dir: &Path, file: &Path, interval: u32) -> Vec<Value> {
    let out = dir.join("replay-out");
    let lines = dir.join("replay-callbacks.jsonl");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_livesnap"))
        .arg("replay")
        .arg(file)
        .arg("--out")
        .arg(&out)
        .args(["--stream", "cam1", "--interval", &interval.to_string()])
        .args([
            "--bucket",
            "shots",
            "--uniqname",
            "tenant-live",
            "--callbacks",
        ])
        .arg(&lines)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read_to_string(&lines)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Live callbacks equal replay's, modulo session folder and wall-clock second (±1 s).
pub fn assert_same_captures(got: &[Value], expected: &[Value]) {
    assert_eq!(got.len(), expected.len(), "{got:#?}\n{expected:#?}");
    for (g, e) in got.iter().zip(expected) {
        let (g, e) = (normalize(g), normalize(e));
        assert!(
            g["timestamp"]
                .as_u64()
                .unwrap()
                .abs_diff(e["timestamp"].as_u64().unwrap())
                <= 1,
            "{g}\n{e}"
        );
        let strip = |mut v: Value| {
            for f in ["timestamp", "keys", "dstpath"] {
                v[f] = Value::Null;
            }
            v
        };
        assert_eq!(strip(g.clone()), strip(e.clone()));
    }
}

pub async fn publish(file: &Path, url: &str) -> bool {
    let status = tokio::time::timeout(
        Duration::from_secs(60),
        ffmpeg_publish(file, url, false).wait(),
    )
    .await
    .expect("ffmpeg finishes")
    .unwrap();
    status.success()
}

pub async fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Files below `dir` as `/`-separated paths relative to it, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    super::files_under(dir)
        .iter()
        .map(|p| p.strip_prefix(dir).unwrap().to_string_lossy().into_owned())
        .collect()
}

/// A callback with its session folder and times made comparable across sessions: `taskid` and
/// keys lose `{push_start_ms}-{session_id}`, `timestamp` becomes seconds since the push start.
pub fn normalize(cb: &Value) -> Value {
    let session = session_of(cb);
    let push_start_s = session.split('-').next().unwrap().parse::<u64>().unwrap() / 1000;
    let mut out = cb.clone();
    for field in ["taskid", "keys", "dstpath"] {
        let v = cb[field].as_str().unwrap().replace(&session, "[session]");
        out[field] = Value::String(v);
    }
    let ts = cb["timestamp"].as_u64().unwrap();
    out["timestamp"] = Value::from(ts - push_start_s);
    out
}

/// The `{push_start_ms}-{session_id}` part of a callback's `taskid`.
pub fn session_of(cb: &Value) -> String {
    cb["taskid"]
        .as_str()
        .unwrap()
        .split('/')
        .nth(2)
        .unwrap()
        .to_owned()
}
