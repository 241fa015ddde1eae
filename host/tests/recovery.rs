//! No capture without its callback, and no late picture over a newer one: a stream whose capture
//! instance traps with shots in flight still reports every one of them (the callback formed by
//! `capture.callback-body` on a fresh instance), and in overwrite mode a late render of a
//! stream's previous session never replaces the picture of the session that followed it.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use common::{fixture_tags, is_keyframe, jpeg_size, temp_dir};
use livesnap::config::Config;
use livesnap::serve::Server;
use livesnap::serve::session::StreamSession;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Callback bodies, in arrival order.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Value>>>);

impl Receiver {
    async fn start() -> (Receiver, SocketAddr) {
        let r = Receiver::default();
        let app = axum::Router::new()
            .route(
                "/cb",
                post(|State(r): State<Receiver>, body: String| async move {
                    r.0.lock()
                        .unwrap()
                        .push(serde_json::from_str(&body).unwrap());
                    StatusCode::OK
                }),
            )
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, addr)
    }

    fn bodies(&self) -> Vec<Value> {
        self.0.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        while self.bodies().len() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.bodies()
    }
}

fn config(dir: &Path, cb: SocketAddr, workers: usize, overwrite: bool) -> Config {
    let text = format!(
        "[server]\nrtmp = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\n[storage]\nroot = \"{root}\"\n\
         [callbacks]\nspool_dir = \"{spool}\"\nbackoff_base_ms = 50\n\
         [limits]\nrender_workers = {workers}\n\
         [[tenant]]\napp = \"live\"\nuniqname = \"acme\"\npublish_key = \"k\"\nbucket = \"shots\"\n\
         interval_s = 1\noverwrite = {overwrite}\ncallback_url = \"http://{cb}/cb\"\n",
        root = dir.join("objects").display(),
        spool = dir.join("spool").display(),
    );
    Config::parse(&text, "recovery.toml").unwrap()
}

/// The seq at the end of a taskid (`{app}/{stream}/{push}-{session}/{seq}`).
fn seq_of(cb: &Value) -> u32 {
    let taskid = cb["taskid"].as_str().unwrap();
    taskid.rsplit('/').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shots_in_flight_when_the_capture_instance_traps_still_get_their_callbacks() {
    let dir = temp_dir("trap");
    let (receiver, cb) = Receiver::start().await;
    // One render worker: the 1080p renders queue up behind each other, so most shots are still
    // rendering when the stream's capture instance dies.
    let server = Server::bind(config(&dir, cb, 1, false)).await.unwrap();
    let ctx = server.ctx();
    let mut session = StreamSession::start(&ctx, "live", "cam").unwrap();
    let mut shots = 0;
    for tag in fixture_tags("high_1080p.flv") {
        shots += usize::from(is_keyframe(&tag));
        session
            .push(tag.tag_type, tag.timestamp_ms, &tag.body)
            .unwrap();
        if shots == 6 {
            break;
        }
    }
    // A 32 MiB tag does not fit the capture instance's 16 MiB memory: it traps.
    let trap = session.push(9, 6000, &vec![0x27; 32 << 20]).unwrap_err();
    let reported_before = receiver.bodies().len();
    eprintln!("trap: {trap:#}; {reported_before} of {shots} shots reported before it");
    assert!(
        session.push(9, 6100, &[0x27, 1, 0, 0, 0]).is_err(),
        "a trapped stream takes no more tags"
    );
    drop(session);
    assert!(
        reported_before < shots,
        "the trap came after every shot was reported: the test shows nothing"
    );

    let bodies = receiver.wait_for(shots, Duration::from_secs(60)).await;
    let seqs: Vec<u32> = bodies.iter().map(seq_of).collect();
    assert_eq!(
        seqs,
        (1..=shots as u32).collect::<Vec<_>>(),
        "every shot reported once, in order: {bodies:#?}"
    );
    for cb in &bodies {
        assert_eq!(cb["status"], 3, "{cb}");
        assert_eq!(cb["stream_name"], "cam", "{cb}");
        let key = cb["keys"].as_str().unwrap();
        let jpeg = std::fs::read(dir.join("objects/shots").join(key)).unwrap();
        assert_eq!(&jpeg[..2], [0xff, 0xd8], "{key} is a JPEG");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.bodies().len(), shots, "no extra callbacks");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_render_of_the_previous_session_never_overwrites_the_new_sessions_picture() {
    let dir = temp_dir("reconnect-overwrite");
    let (receiver, cb) = Receiver::start().await;
    let server = Server::bind(config(&dir, cb, 2, true)).await.unwrap();
    let ctx = server.ctx();
    let first_keyframe = |name: &str| {
        let tags = fixture_tags(name);
        let end = tags.iter().position(is_keyframe).unwrap();
        tags.into_iter().take(end + 1).collect::<Vec<_>>()
    };
    // Session 1 sends a 1080p I-frame and disconnects; the publisher reconnects at once with a
    // 360p stream (session 2). The 1080p render is slower and finishes last.
    let mut old = StreamSession::start(&ctx, "live", "cam").unwrap();
    for tag in first_keyframe("high_1080p.flv") {
        old.push(tag.tag_type, tag.timestamp_ms, &tag.body).unwrap();
    }
    drop(old);
    let mut new = StreamSession::start(&ctx, "live", "cam").unwrap();
    for tag in first_keyframe("baseline_360p.flv") {
        new.push(tag.tag_type, tag.timestamp_ms, &tag.body).unwrap();
    }
    let bodies = receiver.wait_for(2, Duration::from_secs(60)).await;
    assert_eq!(bodies.len(), 2, "{bodies:#?}");
    assert!(bodies.iter().all(|cb| cb["status"] == 3), "{bodies:#?}");
    let sizes: Vec<(u64, u64)> = bodies
        .iter()
        .map(|cb| {
            (
                cb["width"].as_u64().unwrap(),
                cb["height"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        sizes.contains(&(1920, 1080)) && sizes.contains(&(640, 360)),
        "{sizes:?}"
    );
    let key = bodies[0]["keys"].as_str().unwrap();
    assert_eq!(
        key,
        bodies[1]["keys"].as_str().unwrap(),
        "one key in overwrite mode"
    );
    let jpeg = std::fs::read(dir.join("objects/shots").join(key)).unwrap();
    assert_eq!(
        jpeg_size(&jpeg),
        (640, 360),
        "the stored picture is the new session's"
    );
    drop(new);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
