//! Hostile streams stay in their lane. While one tenant publishes normally over RTMP in real
//! time, another tenant's streams are poisoned — an oversized SPS, damaged I-frames, a tag over
//! the size limit from an HTTP-FLV source, RTMP peers that stall in the handshake or after it —
//! and the healthy tenant's captures must all arrive on time. Needs ffmpeg (`.ci/run` installs it).

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use common::fixture;
use livesnap::config::Config;
use livesnap::serve::Server;
use livesnap::serve::session::StreamSession;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// Callback bodies with their arrival time.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<(Instant, Value)>>>);

async fn receiver() -> (Receiver, SocketAddr) {
    let r = Receiver::default();
    let app = axum::Router::new()
        .route(
            "/cb",
            post(|State(r): State<Receiver>, body: String| async move {
                r.0.lock()
                    .unwrap()
                    .push((Instant::now(), serde_json::from_str(&body).unwrap()));
                StatusCode::OK
            }),
        )
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, addr)
}

/// An HTTP-FLV origin whose second tag declares 2 MiB, over the 1 MiB limit configured below.
async fn oversized_tag_origin() -> SocketAddr {
    let app = axum::Router::new().route(
        "/evil.flv",
        get(|| async {
            let mut body = b"FLV\x01\x01\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
            body.extend_from_slice(&[
                18, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, b'a', b'b', b'c', 0, 0, 0, 14,
            ]);
            body.extend_from_slice(&[9, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            body.extend_from_slice(&vec![0x17; 4096]);
            body
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// FLV video tag bodies (AVC): a sequence header whose SPS announces 8208x128 px (over the
/// 8192 px limit), and an IDR slice for it. Built with the bit writer in tests/e2e/limits.rs.
fn oversized_stream() -> (Vec<u8>, Vec<u8>) {
    let sps = [0x67, 0x42, 0xc0, 0x33, 0xda, 0x00, 0x20, 0x11, 0x19];
    let pps = [0x68, 0xce, 0x38, 0x80];
    let idr = [0x65, 0x88, 0x84, 0xd5, 0xe6, 0xc0];
    let mut header = vec![
        0x17,
        0,
        0,
        0,
        0,
        1,
        sps[1],
        sps[2],
        sps[3],
        0xff,
        0xe1,
        0,
        sps.len() as u8,
    ];
    header.extend_from_slice(&sps);
    header.extend_from_slice(&[1, 0, pps.len() as u8]);
    header.extend_from_slice(&pps);
    let mut frame = vec![0x17, 1, 0, 0, 0, 0, 0, 0, idr.len() as u8];
    frame.extend_from_slice(&idr);
    (header, frame)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poisoned_tenant_cannot_delay_a_healthy_one() {
    let dir = std::env::temp_dir().join(format!("livesnap-isolation-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (good_rx, good_addr) = receiver().await;
    let (evil_rx, evil_addr) = receiver().await;
    let origin = oversized_tag_origin().await;
    let text = format!(
        "[server]\nrtmp = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\n[storage]\nroot = \"{root}\"\n\
         [callbacks]\nspool_dir = \"{spool}\"\nbackoff_base_ms = 50\n[limits]\nmax_tag_bytes = 1048576\nrender_workers = 2\n\
         [[tenant]]\napp = \"good\"\nuniqname = \"good\"\npublish_key = \"g\"\nbucket = \"good\"\ninterval_s = 2\ncallback_url = \"http://{good_addr}/cb\"\n\
         [[tenant]]\napp = \"evil\"\nuniqname = \"evil\"\npublish_key = \"e\"\nbucket = \"evil\"\ninterval_s = 1\ncallback_url = \"http://{evil_addr}/cb\"\n\
         [[pull]]\nurl = \"http://{origin}/evil.flv\"\napp = \"evil\"\nstream = \"hugetag\"\n",
        root = dir.join("objects").display(),
        spool = dir.join("spool").display(),
    );
    let server = Server::bind(Config::parse(&text, "isolation.toml").unwrap())
        .await
        .unwrap();
    let (rtmp, ctx) = (server.rtmp_addr(), server.ctx());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));

    // Stalled RTMP peers: one silent after connecting, one stopping halfway through the handshake.
    let mut silent = tokio::net::TcpStream::connect(rtmp).await.unwrap();
    let mut half = tokio::net::TcpStream::connect(rtmp).await.unwrap();
    half.write_all(&[3]).await.unwrap();
    half.write_all(&[0u8; 700]).await.unwrap();

    // The healthy tenant: 10 s of baseline_360p (I-frames every 2 s) in real time, interval 2 s.
    // Its frames are timed from the moment its session goes live (its first tag, the I-frame at
    // 0 s, comes with the publish), not from ffmpeg's spawn: ffmpeg's own start-up is not ours.
    let went_live = tokio::spawn({
        let ctx = ctx.clone();
        async move {
            loop {
                if ctx.live.lock().unwrap().contains_key("good/cam") {
                    return Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    let mut ffmpeg = tokio::process::Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-re", "-t", "10", "-i"])
        .arg(fixture("baseline_360p.flv"))
        .args(["-c", "copy", "-f", "flv"])
        .arg(format!("rtmp://{rtmp}/good/cam?key=g"))
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg is needed for this test: apt-get install ffmpeg (.ci/run does)");

    // Meanwhile the evil tenant, through the same session path the ingest uses: an oversized SPS,
    // then a burst of damaged I-frames (slice data cut, so decoding fails) every 1 s of stream time.
    let (header, frame) = oversized_stream();
    let mut huge = StreamSession::start(&ctx, "evil", "huge").unwrap();
    huge.push(9, 0, &header).unwrap();
    for i in 0..5u32 {
        huge.push(9, i * 1000, &frame).unwrap();
    }
    let tags = {
        let data = std::fs::read(fixture("high_1080p.flv")).unwrap();
        let mut r = livesnap::ingest::flv::FlvReader::new(&data[..], 1 << 24).unwrap();
        let mut tags = Vec::new();
        while let Some(t) = r.next_tag().unwrap() {
            tags.push(t);
        }
        tags
    };
    let mut damaged = StreamSession::start(&ctx, "evil", "damaged").unwrap();
    for (i, tag) in tags.iter().enumerate() {
        let mut body = tag.body.clone();
        if tag.tag_type == 9 && body.get(1) == Some(&1) && body.len() > 64 {
            // Keep headers, cut the slice data short: every I-frame fails to decode.
            body.truncate(40);
            let len = (body.len() - 9) as u32;
            body[5..9].copy_from_slice(&len.to_be_bytes());
        }
        damaged.push(tag.tag_type, tag.timestamp_ms, &body).unwrap();
        if i % 100 == 0 {
            tokio::task::yield_now().await;
        }
    }
    drop((huge, damaged));

    let status = tokio::time::timeout(Duration::from_secs(40), ffmpeg.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while good_rx.0.lock().unwrap().len() < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let good = good_rx.0.lock().unwrap().clone();
    assert_eq!(good.len(), 5, "captures at 0, 2, 4, 6, 8 s: {good:#?}");
    let live_at = went_live.await.unwrap();
    let lateness: Vec<Duration> = good
        .iter()
        .enumerate()
        .map(|(i, (arrived, _))| {
            let due = Duration::from_secs(2 * i as u64);
            arrived.duration_since(live_at).saturating_sub(due)
        })
        .collect();
    eprintln!("healthy captures' lateness after their frames: {lateness:?}");
    for (i, ((_, cb), lateness)) in good.iter().zip(&lateness).enumerate() {
        assert_eq!(cb["status"], 3, "{cb}");
        // With -re, the I-frame at 2i s arrives about 2i s after the session went live; its
        // callback must follow well before the stream's next I-frame is due (2 s).
        let lateness = *lateness;
        assert!(
            lateness < Duration::from_millis(1500),
            "capture {i} arrived {lateness:?} after its frame"
        );
    }

    let evil_now = || -> Vec<Value> {
        let got = evil_rx.0.lock().unwrap();
        got.iter().map(|(_, v)| v.clone()).collect()
    };
    let count = |evil: &[Value], stream: &str, code: &str| {
        evil.iter()
            .filter(|cb| cb["stream_name"] == stream && cb["code"] == code)
            .count()
    };
    // The poisoned streams' failure callbacks (pushed long before the good stream ended).
    let deadline = Instant::now() + Duration::from_secs(10);
    while (count(&evil_now(), "huge", "LimitExceeded") < 5
        || count(&evil_now(), "damaged", "DecodeFailed") < 10)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let evil = evil_now();
    let codes = |stream: &str, code: &str| count(&evil, stream, code);
    assert_eq!(codes("huge", "LimitExceeded"), 5, "{evil:#?}");
    assert!(codes("damaged", "DecodeFailed") >= 10, "{evil:#?}");
    assert!(evil.iter().all(|cb| cb["status"] == 4));
    // The over-limit tag ended its pull session (and the pull keeps retrying); the stalled RTMP
    // peers were dropped by the handshake timeout.
    let metrics = reqwest::get(format!(
        "http://{}/metrics",
        ctx.public_url.trim_start_matches("http://")
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(
        metrics.contains("livesnap_captures_total{code=\"OK\"} 5\n"),
        "{metrics}"
    );
    let mut buf = [0u8; 1];
    use tokio::io::AsyncReadExt;
    let closed = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "a silent RTMP peer is disconnected"
    );
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
