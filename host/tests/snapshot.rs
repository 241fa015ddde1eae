//! `GET /snapshot/{app}/{stream}.jpg` (README "On-demand snapshot") against a real server: the
//! newest I-frame rendered now, shared by concurrent requests (one render per I-frame and size),
//! never stored and never called back; 404 before the first I-frame, 429 when the render queue
//! is full, 422 for a frame that does not decode.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use axum::http::StatusCode;
use common::{cut_slice_data, fixture_tags as tags, jpeg_size, temp_dir};
use livesnap::config::Config;
use livesnap::serve::Server;
use livesnap::serve::session::{StreamSession, latest_token};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

/// A JPEG of a 640 × 360 picture scaled to short side `side`.
fn assert_scaled((w, h): (usize, usize), side: usize) {
    assert_eq!(h, side);
    assert!(w.abs_diff(640 * side / 360) <= 2, "{w}x{h}");
}

/// Counts callback POSTs.
async fn counting_receiver() -> (Arc<AtomicUsize>, std::net::SocketAddr) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let app = axum::Router::new().route(
        "/cb",
        axum::routing::post(move || {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (count, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_share_one_render_per_iframe_store_nothing_and_refuse_clearly() {
    let dir = temp_dir("snapshot");
    let (callbacks, receiver) = counting_receiver().await;
    let text = format!(
        "[server]\nrtmp = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\n[storage]\nroot = \"{root}\"\n\
         [callbacks]\nspool_dir = \"{spool}\"\n[limits]\nrender_workers = 1\nrender_queue = 1\n\
         [[tenant]]\napp = \"live\"\nuniqname = \"acme\"\npublish_key = \"k\"\nbucket = \"shots\"\n\
         interval_s = 3600\ncallback_url = \"http://{receiver}/cb\"\ncallback_secret = \"s3cret\"\n\
         [[tenant]]\napp = \"quiet\"\nuniqname = \"quiet\"\npublish_key = \"k\"\nbucket = \"q\"\n\
         callback_secret = \"s3cret\"\nsnapshot = false\n",
        root = dir.join("objects").display(),
        spool = dir.join("spool").display(),
    );
    let server = Server::bind(Config::parse(&text, "snapshot.toml").unwrap())
        .await
        .unwrap();
    let (http, ctx) = (server.http_addr(), server.ctx());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let url = |stream: &str, query: &str| {
        let token = latest_token("s3cret", "live", stream);
        format!("http://{http}/snapshot/live/{stream}.jpg?token={token}{query}")
    };
    let get = |u: String| {
        let client = client.clone();
        async move { client.get(u).send().await.unwrap() }
    };
    let metric = |name: &'static str| {
        let client = client.clone();
        async move {
            let text = client
                .get(format!("http://{http}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{name} in {text}"))
        }
    };

    // Not live, then live without an I-frame: 404 both times, with a reason.
    let r = get(url("cam", "")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().await.unwrap().contains("not live"));
    let tags = tags("baseline_360p.flv");
    let iframe_tags: Vec<usize> = (0..tags.len())
        .filter(|&i| tags[i].tag_type == 9 && tags[i].body.first() == Some(&0x17))
        .filter(|&i| tags[i].body.get(1) == Some(&1))
        .collect();
    assert!(iframe_tags.len() >= 2, "{iframe_tags:?}");
    let mut cam = StreamSession::start(&ctx, "live", "cam").unwrap();
    for tag in &tags[..iframe_tags[0]] {
        cam.push(tag.tag_type, tag.timestamp_ms, &tag.body).unwrap();
    }
    let r = get(url("cam", "")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().await.unwrap().contains("no I-frame"));

    // The first I-frame (its due capture renders too); wait until that capture is stored.
    let first = &tags[iframe_tags[0]];
    cam.push(first.tag_type, first.timestamp_ms, &first.body)
        .unwrap();
    let started = Instant::now();
    while metric("livesnap_captures_total{code=\"OK\"}").await < 1 {
        assert!(started.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // 50 at once: one render, 50 equal answers, not cached by anyone, not stored.
    let answers = futures::future::join_all((0..50).map(|_| get(url("cam", "")))).await;
    let mut bodies = Vec::new();
    for r in answers {
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert_eq!(r.headers()["content-type"], "image/jpeg");
        assert_eq!(r.headers()["x-livesnap-iframe"], "1");
        bodies.push(r.bytes().await.unwrap());
    }
    assert!(bodies.iter().all(|b| *b == bodies[0]));
    assert_eq!(jpeg_size(&bodies[0]), (640, 360));
    assert_eq!(metric("livesnap_snapshot_renders_total").await, 1);
    assert_eq!(metric("livesnap_snapshots_served_total").await, 50);

    // Other sizes: one render each, up to four sizes of one frame; then 429.
    let small = get(url("cam", "&shortside=120")).await;
    assert_eq!(small.status(), StatusCode::OK);
    let small = small.bytes().await.unwrap();
    assert_scaled(jpeg_size(&small), 120);
    assert_eq!(
        get(url("cam", "&shortside=120"))
            .await
            .bytes()
            .await
            .unwrap(),
        small
    );
    for side in [90, 240] {
        assert_eq!(
            get(url("cam", &format!("&shortside={side}")))
                .await
                .status(),
            StatusCode::OK
        );
    }
    assert_eq!(metric("livesnap_snapshot_renders_total").await, 4);
    let r = get(url("cam", "&shortside=60")).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.text().await.unwrap().contains("sizes"));

    // Bad requests.
    for bad in ["&shortside=0", "&shortside=abc", "&shortside=9000"] {
        assert_eq!(
            get(url("cam", bad)).await.status(),
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
    let wrong = format!("http://{http}/snapshot/live/cam.jpg?token=00");
    assert_eq!(get(wrong).await.status(), StatusCode::FORBIDDEN);
    let mut quiet = StreamSession::start(&ctx, "quiet", "cam").unwrap();
    for tag in &tags[..=iframe_tags[0]] {
        quiet
            .push(tag.tag_type, tag.timestamp_ms, &tag.body)
            .unwrap();
    }
    let off = format!(
        "http://{http}/snapshot/quiet/cam.jpg?token={}",
        latest_token("s3cret", "quiet", "cam")
    );
    let r = get(off).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().await.unwrap().contains("snapshot = false"));

    // The next I-frame (not due at interval 3600 s: no capture) replaces the first.
    for tag in &tags[iframe_tags[0] + 1..=iframe_tags[1]] {
        cam.push(tag.tag_type, tag.timestamp_ms, &tag.body).unwrap();
    }
    let r = get(url("cam", "")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-livesnap-iframe"], "2");
    let second = r.bytes().await.unwrap();
    assert_ne!(second, bodies[0], "a new I-frame, a new picture");
    assert_eq!(metric("livesnap_snapshot_renders_total").await, 5);

    // A full render queue: the one worker busy and its one-job queue taken. A frame already
    // rendered is still answered; a new render is refused with 429 until the queue frees.
    let (release, blocked) = mpsc::channel::<()>();
    let blocked = Arc::new(std::sync::Mutex::new(blocked));
    let mut jobs = Vec::new();
    while jobs.len() < 2 {
        let blocked = blocked.clone();
        // The second fits once the worker has taken the first out of the queue.
        match ctx.pool.run(move |_, _| {
            let _ = blocked.lock().unwrap().recv();
            Ok(Ok(()))
        }) {
            Ok(job) => jobs.push(job),
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    assert_eq!(get(url("cam", "")).await.bytes().await.unwrap(), second);
    let r = get(url("cam", "&shortside=100")).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.text().await.unwrap().contains("queue is full"));
    assert_eq!(metric("livesnap_snapshots_busy_total").await, 2);
    for _ in 0..2 {
        release.send(()).unwrap();
    }
    for job in jobs {
        job.await.unwrap().unwrap();
    }
    let r = get(url("cam", "&shortside=100")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_scaled(jpeg_size(&r.bytes().await.unwrap()), 100);

    // An I-frame whose slice data is cut: kept (its headers say I), fails to render: 422, and
    // the failure is remembered for that frame (no second render).
    let mut bad = StreamSession::start(&ctx, "live", "bad").unwrap();
    for tag in &tags[..iframe_tags[0]] {
        bad.push(tag.tag_type, tag.timestamp_ms, &tag.body).unwrap();
    }
    bad.push(9, first.timestamp_ms, &cut_slice_data(&first.body))
        .unwrap();
    let renders = metric("livesnap_snapshot_renders_total").await;
    for _ in 0..2 {
        let r = get(url("bad", "")).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text().await.unwrap().contains("DecodeFailed"));
    }
    assert_eq!(metric("livesnap_snapshot_renders_total").await, renders + 1);

    // Nothing of this was stored or called back: one picture (cam's due capture) and one
    // failed capture (bad's), two callbacks.
    drop((cam, quiet, bad));
    let started = Instant::now();
    while callbacks.load(Ordering::SeqCst) < 2 {
        assert!(started.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    assert_eq!(callbacks.load(Ordering::SeqCst), 2);
    let jpegs: Vec<_> = common::files_under(&dir.join("objects/shots"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    assert_eq!(jpegs.len(), 1, "{jpegs:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
