//! RTSP cameras end to end: a real RTSP server (GStreamer's gst-rtsp-server, driven by
//! `common/rtsp_server.py`, which `.ci/run` installs) plays fixture streams in real time, remuxed
//! to MPEG-TS without re-encoding; `livesnap serve` pulls them with `[[pull]] url = "rtsp://…"`.
//! Covered: H.264 and H.265, RTP over TCP and UDP, Digest authentication (right and wrong
//! password, which leaks nowhere; an MJPEG and an audio-only camera refused with one clear line), parameter sets only in the SDP, a client joining mid-GOP, a
//! server restart mid-stream, a long-GOP camera, the still URL, `probe rtsp://`, and the same
//! pictures as the same stream published over RTMP.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use common::live::*;
use common::{fixture, temp_dir};
use md5::{Digest, Md5};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const USER: &str = "viewer";
const PASSWORD: &str = "Zq7-unguessable-pw";

/// A running `rtsp_server.py`; killed on drop (and it exits when our stdin closes).
struct RtspServer {
    child: Child,
    /// `rtsp://127.0.0.1:PORT`.
    base: String,
}

impl RtspServer {
    /// Start the server with `args` (mounts and options) on `port` (0: any free port).
    fn start(port: u16, args: &[String]) -> RtspServer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/rtsp_server.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(&script)
            .args(["--port", &port.to_string(), "--exit-on-stdin-eof"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect(
                "the RTSP tests need Debian's /usr/bin/python3 with GStreamer's RTSP server: \
                 apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good \
                 gstreamer1.0-plugins-bad (.ci/run does)",
            );
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("rtsp_server.py did not start: {line:?}"))
            .to_owned();
        RtspServer { child, base }
    }

    fn port(&self) -> u16 {
        self.base.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// The URL of mount `path` with the test credentials.
    fn url(&self, path: &str) -> String {
        self.base
            .replacen("rtsp://", &format!("rtsp://{USER}:{PASSWORD}@"), 1)
            + path
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `--mount PATH=TS:CODEC:PARAMS` for fixture `name`.
fn mount(path: &str, name: &str, codec: &str, params: &str) -> Vec<String> {
    vec![
        "--mount".into(),
        format!("{path}={}:{codec}:{params}", ts_of(name).display()),
    ]
}

fn auth() -> Vec<String> {
    ["--user", USER, "--password", PASSWORD]
        .map(String::from)
        .to_vec()
}

/// Fixture `name` remuxed to MPEG-TS without re-encoding (ffmpeg 9 reads Enhanced-RTMP HEVC).
fn ts_of(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("livesnap-rtsp-ts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("{name}.ts"));
    if !out.exists() {
        let tmp = dir.join(format!("{name}.part.ts"));
        let status = Command::new(ffmpeg9())
            .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
            .arg(fixture(&format!("{name}.flv")))
            .args(["-c", "copy", "-an", "-f", "mpegts"])
            .arg(&tmp)
            .status()
            .unwrap();
        assert!(status.success(), "remuxing {name} to TS");
        std::fs::rename(&tmp, &out).unwrap();
    }
    out
}

/// A tenant `live` with callbacks to `cb` at `interval_s`, and pulls of `(stream, url, transport)`.
fn camera_config(
    cb: std::net::SocketAddr,
    interval_s: u32,
    pulls: &[(&str, String, &str)],
) -> String {
    let mut text = tenant("live", "shots", Some(cb), interval_s);
    for (stream, url, transport) in pulls {
        text += &format!(
            "[[pull]]\nurl = \"{url}\"\napp = \"live\"\nstream = \"{stream}\"\ntransport = \"{transport}\"\n\n"
        );
    }
    text
}

/// The callbacks of `stream`'s first session, in order.
fn first_session(bodies: &[Value], stream: &str) -> Vec<Value> {
    let of_stream: Vec<&Value> = bodies
        .iter()
        .filter(|b| b["stream_name"] == stream && b["type"] == "LiveSnapShotCallBack")
        .collect();
    let Some(first) = of_stream.first() else {
        return Vec::new();
    };
    let session = session_of(first);
    of_stream
        .into_iter()
        .filter(|b| session_of(b) == session)
        .cloned()
        .collect()
}

/// What must agree between a live session and replay: status, code, size and the capture's
/// second relative to the push start (±1 s for the live clock's start).
fn outcomes(cbs: &[Value]) -> Vec<(u64, String, u64, u64, u64)> {
    cbs.iter()
        .map(|cb| {
            let n = normalize(cb);
            (
                n["status"].as_u64().unwrap(),
                n["code"].as_str().unwrap().to_owned(),
                n["width"].as_u64().unwrap(),
                n["height"].as_u64().unwrap(),
                n["timestamp"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn assert_same_outcomes(live: &[Value], replay: &[Value], what: &str) {
    let (a, b) = (outcomes(live), outcomes(replay));
    assert_eq!(a.len(), b.len(), "{what}: {a:?} vs {b:?}");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((x.0, &x.1, x.2, x.3), (y.0, &y.1, y.2, y.3), "{what}");
        assert!(x.4.abs_diff(y.4) <= 1, "{what}: {a:?} vs {b:?}");
    }
}

/// MD5 of every JPEG stored for `cbs`, in capture order.
fn jpeg_md5s(root: &Path, cbs: &[Value]) -> Vec<String> {
    cbs.iter()
        .filter(|cb| cb["status"] == 3)
        .map(|cb| {
            let path = root
                .join(cb["bucket"].as_str().unwrap())
                .join(cb["dstpath"].as_str().unwrap());
            hex::encode(Md5::digest(std::fs::read(&path).unwrap()))
        })
        .collect()
}

async fn wait_callbacks(
    receiver: &Receiver,
    what: &str,
    secs: u64,
    done: impl Fn(&[Value]) -> bool,
) {
    wait_for(what, Duration::from_secs(secs), || done(&receiver.bodies())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_cameras_over_tcp_and_udp_with_digest_give_the_same_pictures_as_rtmp_and_replay() {
    let dir = temp_dir("rtsp-h264");
    let name = "full_range";
    let server = RtspServer::start(
        0,
        &[
            mount("/inband", name, "h264", "inband"),
            mount("/sdp", name, "h264", "sdp"),
            auth(),
        ]
        .concat(),
    );
    let (receiver, cb) = Receiver::start().await;
    let extra = camera_config(
        cb,
        2,
        &[
            ("cam_tcp", server.url("/inband"), "tcp"),
            ("cam_udp", server.url("/sdp"), "udp"),
        ],
    );
    let live = Running::start(config(&dir, &extra)).await;
    // The same stream over RTMP, beside the cameras.
    let rtmp_url = format!("rtmp://{}/live/cam_rtmp?key=key-live", live.rtmp);
    assert!(publish(&fixture(&format!("{name}.flv")), &rtmp_url).await);
    let replay = replay_callbacks(&dir, &fixture(&format!("{name}.flv")), 2);
    assert_eq!(replay.len(), 5, "I-frames every 2 s over 10 s");
    wait_callbacks(&receiver, "both cameras' first sessions", 60, |b| {
        ["cam_tcp", "cam_udp"]
            .iter()
            .all(|s| first_session(b, s).len() >= replay.len())
    })
    .await;
    let bodies = receiver.bodies();
    let root = dir.join("objects");
    let replay_md5s = jpeg_md5s(&dir.join("replay-out"), &replay);
    for stream in ["cam_tcp", "cam_udp", "cam_rtmp"] {
        let got = first_session(&bodies, stream);
        assert_same_outcomes(&got, &replay, stream);
        assert_eq!(
            jpeg_md5s(&root, &got),
            replay_md5s,
            "{stream}: the same JPEG bytes"
        );
    }
    // The still URL of a camera answers its latest picture.
    live.assert_latest_jpeg("s3cret-live", "live", "cam_udp")
        .await;
    live.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h265_camera_with_sets_only_in_the_sdp_and_a_client_joining_mid_gop() {
    let dir = temp_dir("rtsp-h265");
    let name = "hevc_legacy12";
    let server = RtspServer::start(0, &[mount("/h", name, "h265", "sdp"), auth()].concat());
    let (receiver, cb) = Receiver::start().await;
    let replay = replay_callbacks(&dir, &fixture(&format!("{name}.flv")), 2);
    assert!(replay.len() >= 3, "{replay:?}");
    // A viewer holds the shared media open from its start; livesnap joins 1 s later, mid-GOP.
    let viewer = tokio::process::Command::new(ffmpeg9())
        .args([
            "-nostdin",
            "-loglevel",
            "error",
            "-rtsp_transport",
            "tcp",
            "-i",
        ])
        .arg(server.url("/h"))
        .args(["-c", "copy", "-f", "null", "-"])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let extra = camera_config(cb, 2, &[("cam_h", server.url("/h"), "tcp")]);
    let live = Running::start(config(&dir, &extra)).await;
    // Joined 1 s in: the I-frame at 0 s is gone, the next ones are captured from the SDP's sets.
    let expected = &replay[1..];
    wait_callbacks(&receiver, "the mid-GOP session", 40, |b| {
        first_session(b, "cam_h").len() >= expected.len()
    })
    .await;
    let got = first_session(&receiver.bodies(), "cam_h");
    let md5s = jpeg_md5s(&dir.join("objects"), &got);
    let replay_md5s = jpeg_md5s(&dir.join("replay-out"), expected);
    assert!(got.iter().all(|cb| cb["status"] == 3), "{got:#?}");
    assert_eq!(
        md5s, replay_md5s,
        "the same JPEG bytes for the same I-frames"
    );
    drop(viewer);
    live.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_restart_starts_a_new_session_and_a_long_gop_camera_is_captured_every_8_s() {
    let dir = temp_dir("rtsp-restart");
    let loop_args = |server_port| {
        (
            server_port,
            [
                mount("/gop8", "camera_gop8", "h264", "inband"),
                vec!["--loop".into()],
            ]
            .concat(),
        )
    };
    let (port, args) = loop_args(0);
    let server = RtspServer::start(port, &args);
    let port = server.port();
    let (receiver, cb) = Receiver::start().await;
    let url = server
        .url("/gop8")
        .replacen(&format!("{USER}:{PASSWORD}@"), "", 1);
    let extra = camera_config(cb, 5, &[("gop8", url.clone(), "tcp")]);
    let live = Running::start(config(&dir, &extra)).await;
    // An I-frame every 8 s at interval 5: captures at 0, 8, 16 s.
    wait_callbacks(&receiver, "three captures 8 s apart", 40, |b| {
        first_session(b, "gop8").len() >= 3
    })
    .await;
    let first = first_session(&receiver.bodies(), "gop8");
    let seconds: Vec<u64> = outcomes(&first).iter().map(|o| o.4).collect();
    assert!(first.iter().all(|cb| cb["status"] == 3), "{first:#?}");
    assert_eq!(&seconds[..3], &[0, 8, 16], "{seconds:?}");
    // The on-demand snapshot of a live camera.
    let token = livesnap::serve::session::latest_token("s3cret-live", "live", "gop8");
    let resp = live
        .get(&format!("/snapshot/live/gop8.jpg?token={token}"))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(&resp.bytes().await.unwrap()[..2], &[0xff, 0xd8]);
    // The camera restarts: the pull reconnects, a new session with its own callbacks.
    let first_session_id = session_of(&first[0]);
    drop(server);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _restarted = RtspServer::start(port, &loop_args(port).1);
    wait_callbacks(&receiver, "a capture of a second session", 40, |b| {
        b.iter().any(|cb| {
            cb["stream_name"] == "gop8"
                && cb["type"] == "LiveSnapShotCallBack"
                && session_of(cb) != first_session_id
                && cb["status"] == 3
        })
    })
    .await;
    live.shutdown().await;
}

/// Parses `livesnap probe`'s lines into (clock_ms, md5_y).
fn probe_lines(text: &str) -> Vec<(u64, String)> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Some((f.first()?.parse().ok()?, f.get(8)?.to_string()))
        })
        .collect()
}

#[test]
fn probe_reads_a_camera_as_it_reads_the_file() {
    let name = "baseline_360p";
    let server = RtspServer::start(0, &[mount("/p", name, "h264", "sdp"), auth()].concat());
    let out = Command::new(env!("CARGO_BIN_EXE_livesnap"))
        .args(["probe", &server.url("/p"), "--duration", "5"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let camera = probe_lines(&String::from_utf8_lossy(&out.stdout));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains(PASSWORD), "{stderr}");
    let file = Command::new(env!("CARGO_BIN_EXE_livesnap"))
        .arg("probe")
        .arg(fixture(&format!("{name}.flv")))
        .output()
        .unwrap();
    let file = probe_lines(&String::from_utf8_lossy(&file.stdout));
    // 5 s of a 2 s GOP: the I-frames at 0, 2 and 4 s, with the file's pictures.
    assert!(camera.len() >= 2, "{camera:?}");
    let by_clock: BTreeMap<u64, String> = file.into_iter().collect();
    for (clock, md5) in &camera {
        assert_eq!(
            by_clock.get(clock),
            Some(md5),
            "I-frame at {clock} ms: {camera:?}"
        );
    }
}

#[test]
fn a_wrong_password_gets_no_session_and_leaks_nowhere() {
    let dir = temp_dir("rtsp-auth");
    let server = RtspServer::start(
        0,
        &[
            mount("/cam", "baseline_360p", "h264", "inband"),
            vec![
                "--launch".into(),
                "/mjpeg=( videotestsrc is-live=true ! jpegenc ! rtpjpegpay name=pay0 pt=26 )"
                    .into(),
                "--launch".into(),
                "/audio=( audiotestsrc is-live=true ! mulawenc ! rtppcmupay name=pay0 )".into(),
            ],
            auth(),
        ]
        .concat(),
    );
    let wrong = "Wr0ng-secret-pw";
    let bad_url = server.url("/cam").replacen(PASSWORD, wrong, 1);
    let missing = server.url("/nothing-here");
    let (mjpeg, audio) = (server.url("/mjpeg"), server.url("/audio"));
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let http_addr = http.local_addr().unwrap();
    drop(http);
    let text = format!(
        "[server]\nrtmp = \"127.0.0.1:0\"\nhttp = \"{http_addr}\"\n[storage]\nroot = \"{}\"\n\
         [callbacks]\nspool_dir = \"{}\"\n\n{}\
         [[pull]]\nurl = \"{bad_url}\"\napp = \"live\"\nstream = \"bad\"\n\n\
         [[pull]]\nurl = \"{missing}\"\napp = \"live\"\nstream = \"missing\"\n\n\
         [[pull]]\nurl = \"{mjpeg}\"\napp = \"live\"\nstream = \"mjpeg\"\n\n\
         [[pull]]\nurl = \"{audio}\"\napp = \"live\"\nstream = \"audio\"\n",
        dir.join("objects").display(),
        dir.join("spool").display(),
        tenant("live", "shots", None, 2),
    );
    let config = dir.join("livesnap.toml");
    std::fs::write(&config, text).unwrap();
    let serve = Command::new(env!("CARGO_BIN_EXE_livesnap"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Long enough for several reconnects (0.5, 1, 2, 4 s backoff).
    std::thread::sleep(Duration::from_secs(8));
    let get = |path: &str| {
        let mut s = std::net::TcpStream::connect(http_addr).unwrap();
        use std::io::{Read, Write};
        write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    };
    let metrics = get("/metrics");
    let wall = get("/wall.json");
    assert!(
        metrics.contains("livesnap_active_streams 0"),
        "no session for a refused camera:\n{metrics}"
    );
    let pid = serve.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let out = serve.wait_with_output().unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for (what, text) in [("log", &log), ("metrics", &metrics), ("wall", &wall)] {
        for secret in [wrong, PASSWORD] {
            assert!(!text.contains(secret), "{what} shows a password:\n{text}");
        }
    }
    // One warning per cause, though the pulls retried several times.
    let warned = |needle: &str| {
        log.lines()
            .filter(|l| {
                l.contains("WARN") && l.contains("camera pull failed") && l.contains(needle)
            })
            .count()
    };
    assert_eq!(warned("401"), 1, "{log}");
    assert_eq!(warned("404"), 1, "{log}");
    // Cameras livesnap cannot capture say so, once each.
    assert_eq!(
        warned("no h.264 or h.265 video track (it offers: video jpeg)"),
        1,
        "{log}"
    );
    assert_eq!(
        warned("no h.264 or h.265 video track (it offers: audio pcmu)"),
        1,
        "{log}"
    );
    assert!(!log.contains("camera playing"), "{log}");
}
