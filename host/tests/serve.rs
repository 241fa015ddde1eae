//! `livesnap serve` end to end with real clients over loopback: ffmpeg publishing over RTMP, an
//! HTTP-FLV source served in-process, callback receivers on 127.0.0.1:0. ffmpeg is a test
//! requirement (`.ci/run` installs it); without it these tests fail and say so.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::routing::get;
use common::live::*;
use common::{fixture, temp_dir};
use futures::StreamExt as _;
use hmac::{KeyInit, Mac};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn verify_signature(headers: &HeaderMap, body: &str, secret: &str) {
    let ts = headers["x-livesnap-timestamp"].to_str().unwrap();
    let sig = headers["x-livesnap-signature"].to_str().unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.{body}").as_bytes());
    assert_eq!(
        sig,
        format!("v1={}", hex::encode(mac.finalize().into_bytes()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_publish_gives_the_same_captures_as_replay() {
    let dir = temp_dir("same");
    let (receiver, cb_addr) = Receiver::start().await;
    // Interval 10 s on a 2 s GOP: the I-frame at 10 s sits exactly on the boundary, so this also
    // proves RTMP timestamps arrive exact (see `TimestampRepair` in ingest/rtmp.rs).
    let server = Running::start(config(&dir, &tenant("live", "shots", Some(cb_addr), 10))).await;
    assert!(
        publish(
            &fixture("high_720p.flv"),
            &format!("rtmp://{}/live/cam1?key=key-live", server.rtmp)
        )
        .await
    );

    // The same file through `livesnap replay` with the same tenant settings.
    let replay_dir = dir.join("replay");
    let replay_cb = dir.join("replay.jsonl");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_livesnap"))
        .args([
            "replay",
            fixture("high_720p.flv").to_str().unwrap(),
            "--out",
        ])
        .arg(&replay_dir)
        .args([
            "--stream",
            "cam1",
            "--interval",
            "9",
            "--bucket",
            "shots",
            "--uniqname",
            "tenant-live",
            "--callbacks",
        ])
        .arg(&replay_cb)
        .status()
        .unwrap();
    assert!(status.success());
    let expected: Vec<Value> = std::fs::read_to_string(&replay_cb)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        expected.len(),
        2,
        "high_720p at 10 s: captures at 0 and 10 s"
    );

    wait_for("callbacks", Duration::from_secs(30), || {
        receiver.len() >= expected.len()
    })
    .await;
    server.shutdown().await;
    let got = receiver.bodies();
    // The wall-clock second of a capture depends on the push start's milliseconds: ±1 s.
    assert_same_captures(&got, &expected);
    for g in &got {
        assert!(
            normalize(g)["keys"]
                .as_str()
                .unwrap()
                .starts_with("record/live/cam1/picture/[session]/cam1-")
        );
    }
    for (headers, body) in receiver.got.lock().unwrap().iter() {
        verify_signature(headers, body, "s3cret-live");
    }
    // Objects: one per success, under the tenant's bucket, in one session folder.
    let objects = files_under(&dir.join("objects"));
    assert_eq!(objects.len(), 2, "{objects:?}");
    assert!(
        objects
            .iter()
            .all(|o| o.starts_with("shots/record/live/cam1/picture/"))
    );
    let replay_objects = files_under(&replay_dir);
    assert_eq!(replay_objects.len(), objects.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hevc_rtmp_publish_from_ffmpeg9_gives_the_same_captures_as_replay() {
    let dir = temp_dir("hevc-rtmp");
    let (receiver, cb_addr) = Receiver::start().await;
    let server = Running::start(config(&dir, &tenant("live", "shots", Some(cb_addr), 2))).await;
    let file = fixture("hevc_main_bframes.flv");
    let url = format!("rtmp://{}/live/cam1?key=key-live", server.rtmp);
    assert!(publish9(&file, &url).await, "ffmpeg 9 publishes hevc");
    let expected = replay_callbacks(&dir, &file, 2);
    // IDR every 2 s over 10 s, interval 2 s: five captures, all stored.
    assert_eq!(expected.len(), 5);
    assert!(
        expected
            .iter()
            .all(|c| c["status"] == 3 && c["width"] == 640)
    );
    wait_for("hevc callbacks", Duration::from_secs(30), || {
        receiver.len() >= expected.len()
    })
    .await;
    // AV1 over Enhanced RTMP: a status-4 UnsupportedStream callback per due keyframe.
    let av1 = format!("rtmp://{}/live/av1cam?key=key-live", server.rtmp);
    assert!(
        publish9(&fixture("av1_unsupported.flv"), &av1).await,
        "ffmpeg 9 publishes av1"
    );
    wait_for("av1 callbacks", Duration::from_secs(30), || {
        receiver.len() >= expected.len() + 3
    })
    .await;
    // HDR signalled only by the colorInfo Metadata packet (the VUI is silent): ffmpeg relays
    // the packet, and the live pictures are tone-mapped exactly as replay's.
    let hdr_file = fixture("hevc_hdr10_meta.flv");
    let hdr = format!("rtmp://{}/live/hdrcam?key=key-live", server.rtmp);
    assert!(publish9(&hdr_file, &hdr).await, "ffmpeg 9 publishes hevc");
    wait_for("hdr callbacks", Duration::from_secs(30), || {
        receiver.len() >= expected.len() + 3 + 3
    })
    .await;
    let unsupported = server
        .metric("livesnap_captures_total{code=\"UnsupportedStream\"} ")
        .await;
    server.shutdown().await;
    let hdr_dir = dir.join("hdr");
    let hdr_expected = replay_callbacks(&hdr_dir, &hdr_file, 2);
    assert_eq!(hdr_expected.len(), 3);
    let jpegs = |root: &Path, stream: &str| -> Vec<Vec<u8>> {
        let mut paths: Vec<_> = common::files_under(root)
            .into_iter()
            .filter(|p| p.to_string_lossy().contains(&format!("/{stream}/")))
            .collect();
        paths.sort();
        paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
    };
    let live = jpegs(&dir.join("objects"), "hdrcam");
    assert_eq!(live.len(), 3);
    assert_eq!(
        live,
        jpegs(&hdr_dir.join("replay-out"), "cam1"),
        "live and replayed colorInfo pictures are the same bytes"
    );
    let bodies = receiver.bodies();
    let (hevc, av1): (Vec<Value>, Vec<Value>) = bodies
        .into_iter()
        .filter(|cb| cb["stream_name"] != "hdrcam")
        .partition(|cb| cb["stream_name"] == "cam1");
    assert_same_captures(&hevc, &expected);
    assert_eq!(av1.len(), 3, "{av1:#?}");
    assert!(av1.iter().all(|c| {
        c["code"] == "UnsupportedStream"
            && c["errmsg"]
                .as_str()
                .unwrap()
                .starts_with("av1 video is not supported")
    }));
    assert_eq!(unsupported, 3);
    for (headers, body) in receiver.got.lock().unwrap().iter() {
        verify_signature(headers, body, "s3cret-live");
    }
    assert_eq!(files_under(&dir.join("objects")).len(), 5 + 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hevc_http_flv_pull_gives_replays_captures_and_the_latest_picture() {
    let dir = temp_dir("hevc-pull");
    let file = fixture("hevc_legacy12.flv");
    let (origin, hits) = flv_origin(file.clone()).await;
    let (receiver, cb_addr) = Receiver::start().await;
    let extra = format!(
        "{}[[pull]]\nurl = \"http://{origin}/live/cam1.flv\"\napp = \"live\"\nstream = \"cam1\"\n",
        tenant("live", "shots", Some(cb_addr), 2)
    );
    let server = Running::start(config(&dir, &extra)).await;
    let expected = replay_callbacks(&dir, &file, 2);
    assert_eq!(expected.len(), 3, "hevc_legacy12: IDRs at 0, 2, 4 s");
    // The first connection gets 60% of the file, the second all of it.
    wait_for(
        "the full session's captures",
        Duration::from_secs(40),
        || *hits.lock().unwrap() >= 2 && receiver.len() >= 2 + expected.len(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bodies = receiver.bodies();
    let last_session = bodies.iter().map(session_of).max().unwrap();
    let full: Vec<Value> = bodies
        .iter()
        .filter(|cb| cb["taskid"].as_str().unwrap().contains(&last_session))
        .cloned()
        .collect();
    assert_same_captures(&full, &expected);
    server
        .assert_latest_jpeg("s3cret-live", "live", "cam1")
        .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_unknown_app_bad_name_and_second_publish_are_refused() {
    let dir = temp_dir("refuse");
    let server = Running::start(config(&dir, &tenant("live", "shots", None, 10))).await;
    let file = fixture("baseline_360p.flv");
    assert!(
        !publish(
            &file,
            &format!("rtmp://{}/live/cam1?key=wrong", server.rtmp)
        )
        .await
    );
    assert!(!publish(&file, &format!("rtmp://{}/live/cam1", server.rtmp)).await);
    assert!(
        !publish(
            &file,
            &format!("rtmp://{}/other/cam1?key=key-live", server.rtmp)
        )
        .await
    );
    assert!(
        !publish(
            &file,
            &format!("rtmp://{}/live/cam!1?key=key-live", server.rtmp)
        )
        .await
    );
    assert_eq!(server.metric("livesnap_publishes_refused_total ").await, 4);
    assert_eq!(server.metric("livesnap_sessions_started_total ").await, 0);
    assert!(files_under(&dir.join("objects")).is_empty());

    // A stream that is live cannot be published a second time.
    let mut first = ffmpeg_publish(
        &file,
        &format!("rtmp://{}/live/cam1?key=key-live", server.rtmp),
        true,
    );
    let http = server.http;
    let started = Instant::now();
    loop {
        let text = reqwest::get(format!("http://{http}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("livesnap_sessions_started_total 1\n") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "first publish never went live"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !publish(
            &file,
            &format!("rtmp://{}/live/cam1?key=key-live", server.rtmp)
        )
        .await
    );
    assert_eq!(server.metric("livesnap_publishes_refused_total ").await, 5);
    assert_eq!(server.metric("livesnap_sessions_started_total ").await, 1);
    first.kill().await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_publishing_at_once_stay_isolated() {
    let dir = temp_dir("tenants");
    let (rx_a, addr_a) = Receiver::start().await;
    let (rx_b, addr_b) = Receiver::start().await;
    let tenants = format!(
        "{}{}",
        tenant("live", "bucket-a", Some(addr_a), 5),
        tenant("tv", "bucket-b", Some(addr_b), 5)
    );
    let server = Running::start(config(&dir, &tenants)).await;
    let a = ffmpeg_publish(
        &fixture("baseline_360p.flv"),
        &format!("rtmp://{}/live/cam?key=key-live", server.rtmp),
        false,
    );
    let b = ffmpeg_publish(
        &fixture("main_bframes.flv"),
        &format!("rtmp://{}/tv/cam?key=key-tv", server.rtmp),
        false,
    );
    let (a, b) = tokio::join!(a.wait_with_output(), b.wait_with_output());
    assert!(a.unwrap().status.success() && b.unwrap().status.success());
    // baseline_360p: GOP 2 s over 30 s at 5 s -> 0,6,12,18,24; main_bframes: GOP 3 s over 25 s -> 0,6,12,18,24.
    wait_for("callbacks", Duration::from_secs(30), || {
        rx_a.len() >= 5 && rx_b.len() >= 5
    })
    .await;
    server.shutdown().await;
    for (rx, app, bucket, secret) in [
        (&rx_a, "live", "bucket-a", "s3cret-live"),
        (&rx_b, "tv", "bucket-b", "s3cret-tv"),
    ] {
        let bodies = rx.bodies();
        assert_eq!(bodies.len(), 5, "{app}: {bodies:#?}");
        for cb in &bodies {
            assert_eq!(cb["status"], 3);
            assert!(
                cb["taskid"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{app}/cam/"))
            );
            assert_eq!(cb["uniqname"], format!("tenant-{app}"));
            assert_eq!(cb["bucket"], bucket);
        }
        for (headers, body) in rx.got.lock().unwrap().iter() {
            verify_signature(headers, body, secret);
        }
    }
    let objects = files_under(&dir.join("objects"));
    assert_eq!(
        objects
            .iter()
            .filter(|o| o.starts_with("bucket-a/record/live/cam/"))
            .count(),
        5
    );
    assert_eq!(
        objects
            .iter()
            .filter(|o| o.starts_with("bucket-b/record/tv/cam/"))
            .count(),
        5
    );
    assert_eq!(objects.len(), 10, "{objects:?}");
}

/// An FLV script-data tag (AMF0 string "ping") with its PreviousTagSize.
fn keepalive_tag() -> bytes::Bytes {
    let data = [0x02, 0x00, 0x04, b'p', b'i', b'n', b'g'];
    let mut tag = vec![18, 0, 0, data.len() as u8, 0, 0, 0, 0, 0, 0, 0];
    tag.extend_from_slice(&data);
    let size = tag.len() as u32;
    tag.extend_from_slice(&size.to_be_bytes());
    tag.into()
}

/// An HTTP-FLV origin: the first request gets 60% of the file and EOF (a dropped source), later
/// ones the whole file and then keep-alive script tags (a live source).
async fn flv_origin(file: PathBuf) -> (SocketAddr, Arc<Mutex<u32>>) {
    let data = Arc::new(std::fs::read(file).unwrap());
    let hits = Arc::new(Mutex::new(0u32));
    let (d, h) = (data.clone(), hits.clone());
    let app = axum::Router::new().route(
        "/live/cam1.flv",
        get(move || {
            let (data, hits) = (d.clone(), h.clone());
            async move {
                let n = {
                    let mut hits = hits.lock().unwrap();
                    *hits += 1;
                    *hits
                };
                let body = if n == 1 {
                    Body::from(data[..data.len() * 6 / 10].to_vec())
                } else {
                    let whole = bytes::Bytes::from(data.to_vec());
                    // Then a script tag every 200 ms, as a live source keeps sending: the pull's
                    // idle timeout never ends this session while the test looks at it.
                    let ticks = futures::stream::unfold((), |()| async {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        Some((Ok::<_, std::io::Error>(keepalive_tag()), ()))
                    });
                    let stream =
                        futures::stream::once(async move { Ok::<_, std::io::Error>(whole) })
                            .chain(ticks);
                    Body::from_stream(stream)
                };
                ([("content-type", "video/x-flv")], body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_flv_pull_reconnects_and_serves_latest_picture_and_metrics() {
    let dir = temp_dir("pull");
    let (origin, hits) = flv_origin(fixture("baseline_360p.flv")).await;
    let (receiver, cb_addr) = Receiver::start().await;
    let extra = format!(
        "{}[[pull]]\nurl = \"http://{origin}/live/cam1.flv\"\napp = \"live\"\nstream = \"cam1\"\n",
        tenant("live", "shots", Some(cb_addr), 10)
    );
    let server = Running::start(config(&dir, &extra)).await;
    // 60% of 30 s at 10 s: captures at 0 and 10 s; then the reconnect: 0, 10, 20 s.
    wait_for("two sessions' captures", Duration::from_secs(40), || {
        receiver.len() >= 5
    })
    .await;
    assert_eq!(*hits.lock().unwrap(), 2, "one reconnect");
    assert_eq!(server.metric("livesnap_sessions_started_total ").await, 2);
    assert_eq!(server.metric("livesnap_active_streams ").await, 1);
    assert_eq!(
        server.metric("livesnap_captures_total{code=\"OK\"} ").await,
        5
    );
    assert!(server.metric("livesnap_render_seconds_count ").await >= 5);
    let sessions: std::collections::BTreeSet<String> = receiver
        .bodies()
        .iter()
        .map(|cb| {
            cb["taskid"]
                .as_str()
                .unwrap()
                .split('/')
                .nth(2)
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        sessions.len(),
        2,
        "each connect is a new session: {sessions:?}"
    );

    assert_eq!(server.get("/healthz").await.text().await.unwrap(), "ok\n");
    // Latest picture: token = hex HMAC-SHA256(secret, "latest/live/cam1").
    let token = livesnap::serve::session::latest_token("s3cret-live", "live", "cam1");
    let resp = server
        .get(&format!("/latest/live/cam1.jpg?token={token}"))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    let jpeg = resp.bytes().await.unwrap();
    assert_eq!(&jpeg[..2], &[0xff, 0xd8]);
    // The newest picture: the highest (push start, seq) of the taskids `{app}/{stream}/
    // {push_start_ms}-{session}/{seq}`, whatever order the renders finished or callbacks came in.
    let order = |cb: &Value| {
        let taskid: Vec<&str> = cb["taskid"].as_str().unwrap().split('/').collect();
        let push_start: u64 = taskid[2].split('-').next().unwrap().parse().unwrap();
        (push_start, taskid[3].parse::<u32>().unwrap())
    };
    let newest = receiver.bodies().into_iter().max_by_key(order).unwrap()["keys"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        std::fs::read(dir.join("objects/shots").join(&newest)).unwrap(),
        jpeg.to_vec(),
        "serves the newest picture"
    );
    let again = reqwest::Client::new()
        .get(format!(
            "http://{}/latest/live/cam1.jpg?token={token}",
            server.http
        ))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(
        server.get("/latest/live/cam1.jpg?token=00").await.status(),
        403
    );
    assert_eq!(server.get("/latest/live/cam1.jpg").await.status(), 403);
    assert_eq!(
        server
            .get(&format!("/latest/live/nope.jpg?token={token}"))
            .await
            .status(),
        403
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_captures_and_flushes_callbacks() {
    let dir = temp_dir("shutdown");
    let (receiver, cb_addr) = Receiver::start().await;
    // One render worker and every keyframe of the 1080p fixture: renders outlast the publish.
    let mut cfg = config(&dir, &tenant("live", "shots", Some(cb_addr), 1));
    cfg.limits.render_workers = 1;
    let server = Running::start(cfg).await;
    server.publish_to_end("high_1080p.flv").await;
    let before = receiver.len();
    server.shutdown().await;
    let after = receiver.bodies();
    assert_eq!(
        after.len(),
        20,
        "every keyframe's callback is delivered before exit (had {before} at the signal)"
    );
    assert!(after.iter().all(|cb| cb["status"] == 3));
    assert_eq!(files_under(&dir.join("objects")).len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cuts_off_a_live_publisher_and_reports_every_stored_capture() {
    let dir = temp_dir("shutdown-live");
    let (receiver, cb_addr) = Receiver::start().await;
    // shutdown_grace_s = 20: waiting for the publisher would take the whole grace (or the 30 s
    // file); cutting it off takes well under a second.
    let server = Running::start(config(&dir, &tenant("live", "shots", Some(cb_addr), 2))).await;
    let mut ffmpeg = ffmpeg_publish(
        &fixture("baseline_360p.flv"),
        &format!("rtmp://{}/live/cam1?key=key-live", server.rtmp),
        true,
    );
    wait_for("captures at 0 and 2 s", Duration::from_secs(30), || {
        receiver.len() >= 2
    })
    .await;
    let started = Instant::now();
    server.shutdown().await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "shutdown waited {took:?} for a live publisher (grace is 20 s)"
    );
    // The publisher was disconnected, not left streaming into a stopped server.
    let status = tokio::time::timeout(Duration::from_secs(10), ffmpeg.wait())
        .await
        .expect("ffmpeg notices the closed connection")
        .unwrap();
    assert!(!status.success());
    // Every stored object has its callback, delivered before exit, and nothing else was stored.
    let bodies = receiver.bodies();
    let objects = files_under(&dir.join("objects/shots"));
    assert!(bodies.iter().all(|cb| cb["status"] == 3), "{bodies:#?}");
    let mut keys: Vec<String> = bodies
        .iter()
        .map(|cb| cb["keys"].as_str().unwrap().to_owned())
        .collect();
    keys.sort();
    assert_eq!(keys, objects);
    assert!(keys.len() < 15, "the publish was cut short: {keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwrite_mode_keeps_the_newest_picture_when_renders_finish_out_of_order() {
    let dir = temp_dir("overwrite");
    let (receiver, cb_addr) = Receiver::start().await;
    // Every keyframe of the 1080p fixture, published as fast as possible: renders of one stream
    // overlap on the workers and finish in any order, all for the same key.
    let text = tenant("live", "shots", Some(cb_addr), 1)
        .replace("interval_s = 1\n", "interval_s = 1\noverwrite = true\n");
    let mut cfg = config(&dir, &text);
    cfg.limits.render_workers = 4;
    let server = Running::start(cfg).await;
    server.publish_to_end("high_1080p.flv").await;
    server.shutdown().await;
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 20, "one capture per keyframe");
    assert!(bodies.iter().all(|cb| cb["status"] == 3), "{bodies:#?}");

    // The same file through `livesnap replay --overwrite`, which stores one capture at a time.
    let replay_dir = dir.join("replay");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_livesnap"))
        .args(["replay", fixture("high_1080p.flv").to_str().unwrap()])
        .arg("--out")
        .arg(&replay_dir)
        .args([
            "--stream",
            "cam1",
            "--bucket",
            "shots",
            "--interval",
            "1",
            "--overwrite",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let key = "record/live/cam1/picture/cam1.jpg";
    assert_eq!(
        files_under(&dir.join("objects/shots")),
        [key],
        "no stray files"
    );
    assert_eq!(
        std::fs::read(dir.join("objects/shots").join(key)).unwrap(),
        std::fs::read(replay_dir.join("shots").join(key)).unwrap(),
        "the stored object is the last keyframe's picture"
    );
}

#[test]
fn serve_binary_exits_0_on_sigterm_and_2_on_a_bad_config() {
    let dir = temp_dir("bin");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[[tenant]]\napp = \"live\"\nuniqname = \"a\"\npublish_key = \"k\"\nbucket = \"b\"\ninterval_s = 0\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_livesnap"))
        .args(["serve", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml:6:")
            && stderr.contains("`interval_s`")
            && stderr.contains("1..=3600"),
        "{stderr}"
    );

    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        format!(
            "[server]\nrtmp = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\n[storage]\nroot = \"{}\"\n[callbacks]\nspool_dir = \"{}\"\n",
            dir.join("o").display(),
            dir.join("s").display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_livesnap"))
        .args(["serve", "--config"])
        .arg(&good)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the "serving" line, then SIGTERM.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    assert!(line.contains("serving RTMP on 127.0.0.1:"), "{line}");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_features_over_rtmp_match_replay_and_events_frame_the_captures() {
    let dir = temp_dir("features");
    let (receiver, cb_addr) = Receiver::start().await;
    let features = "index = true\nindex_every = 1\nsession_callbacks = true\nstoryboard = true\nstoryboard_columns = 2\nstoryboard_rows = 1\n";
    let tenant = format!("{}{features}", tenant("live", "shots", Some(cb_addr), 4));
    let server = Running::start(config(&dir, &tenant)).await;
    server.publish_to_end("high_720p.flv").await;
    wait_for("the ended event", Duration::from_secs(30), || {
        receiver.bodies().iter().any(|b| b["event"] == "ended")
    })
    .await;
    server.shutdown().await;

    // started, every capture in seq order, ended; all signed like capture callbacks.
    let got = receiver.bodies();
    assert_eq!(got[0]["event"], "started", "{got:#?}");
    let ended = got.last().unwrap();
    assert_eq!(
        (&ended["event"], &ended["reason"]),
        (&"ended".into(), &"unpublished".into())
    );
    let captures = &got[1..got.len() - 1];
    for (i, c) in captures.iter().enumerate() {
        assert_eq!(c["type"], "LiveSnapShotCallBack");
        assert!(
            c["taskid"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/{}", i + 1))
        );
    }
    assert_eq!(ended["attempts"], captures.len());
    for (headers, body) in receiver.got.lock().unwrap().iter() {
        verify_signature(headers, body, "s3cret-live");
    }

    // The session folder holds the final index and the storyboard.
    let session = ended["session"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let folder = dir.join(format!("objects/shots/record/live/cam1/picture/{session}"));
    let index: Value =
        serde_json::from_slice(&std::fs::read(folder.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["end_reason"], "unpublished");
    assert_eq!(index["entries"].as_array().unwrap().len(), captures.len());
    assert_eq!(
        ended["index"],
        format!("record/live/cam1/picture/{session}/index.json")
    );

    // The same file replayed with the same features: the same cues and index entries.
    let replay_dir = dir.join("replay");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_livesnap"))
        .args([
            "replay",
            fixture("high_720p.flv").to_str().unwrap(),
            "--out",
        ])
        .arg(&replay_dir)
        .args([
            "--stream",
            "cam1",
            "--interval",
            "4",
            "--bucket",
            "shots",
            "--start-ms",
            "1000",
            "--session-id",
            "1",
        ])
        .args([
            "--index",
            "--storyboard",
            "--storyboard-columns",
            "2",
            "--storyboard-rows",
            "1",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let replay_folder = replay_dir.join("shots/record/live/cam1/picture/1000-1");
    assert_eq!(
        std::fs::read_to_string(folder.join("storyboard.vtt")).unwrap(),
        std::fs::read_to_string(replay_folder.join("storyboard.vtt")).unwrap()
    );
    let replay_index: Value =
        serde_json::from_slice(&std::fs::read(replay_folder.join("index.json")).unwrap()).unwrap();
    let clocks = |v: &Value| -> Vec<(u64, u64)> {
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["clock_ms"].as_u64().unwrap(),
                    e["bytes"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(clocks(&index), clocks(&replay_index));
    for sheet in ["storyboard-1.jpg", "storyboard-2.jpg"] {
        assert_eq!(
            std::fs::read(folder.join(sheet)).unwrap(),
            std::fs::read(replay_folder.join(sheet)).unwrap(),
            "{sheet}"
        );
    }
}
