//! Spool resume, expiry and refusal through the real delivery loop, against an in-process
//! receiver on 127.0.0.1:0.

use super::*;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use std::sync::atomic::AtomicU16;

/// A receiver answering every POST with the current `status`, recording what it got.
#[derive(Clone, Default)]
struct Receiver {
    status: Arc<AtomicU16>,
    got: Arc<Mutex<Vec<(HeaderMap, String)>>>,
}

impl Receiver {
    /// Serve on 127.0.0.1:0 on `rt`; returns the callback URL.
    fn start(&self, rt: &tokio::runtime::Runtime, status: u16) -> String {
        self.start_at(rt, status, "127.0.0.1:0")
    }

    /// Serve on `addr` on `rt`; returns the callback URL.
    fn start_at(&self, rt: &tokio::runtime::Runtime, status: u16, addr: &str) -> String {
        self.status.store(status, Ordering::SeqCst);
        let app = axum::Router::new()
            .route("/cb", axum::routing::post(record))
            .with_state(self.clone());
        let listener = rt.block_on(tokio::net::TcpListener::bind(addr)).unwrap();
        let addr = listener.local_addr().unwrap();
        rt.spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/cb")
    }

    fn bodies(&self) -> Vec<String> {
        lock(&self.got).iter().map(|(_, b)| b.clone()).collect()
    }
}

async fn record(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    lock(&r.got).push((headers, body));
    StatusCode::from_u16(r.status.load(Ordering::SeqCst)).unwrap()
}

fn config(tag: &str) -> DeliveryConfig {
    let dir = std::env::temp_dir().join(format!("livesnap-cbunit-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    DeliveryConfig {
        spool_dir: dir,
        request_timeout_ms: 2_000,
        backoff_base_ms: 20,
        backoff_max_ms: 100,
        ..DeliveryConfig::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn body(stream: &str, seq: u32) -> String {
    format!(r#"{{"status":3,"taskid":"live/{stream}/1-1/{seq}"}}"#)
}

#[test]
fn a_restart_resumes_what_the_last_run_left_in_the_spool_in_order() {
    let server = runtime();
    let receiver = Receiver::default();
    let url = receiver.start(&server, 503);
    let target = Target {
        url: url.clone(),
        secret: Some("k".into()),
    };
    let cfg = config("resume");

    // First run: the receiver is down; the run ends (its runtime dropped) with nothing delivered.
    let first = runtime();
    first.block_on(async {
        let cb = Callbacks::open(&cfg).await.unwrap();
        for seq in 1..=3 {
            for stream in ["a", "b"] {
                cb.enqueue(&target, stream, body(stream, seq))
                    .await
                    .unwrap();
            }
        }
        assert_eq!(cb.queue_depth(), 6);
        assert!(!cb.drain(Duration::from_millis(100)).await);
        assert_eq!(cb.delivered(), 0);
    });
    drop(first);
    // Stop that receiver too, so no request of the first run can still be recorded, and start
    // an accepting one at the same address (the spooled URL).
    drop(server);
    lock(&receiver.got).clear();
    let server = runtime();
    let addr = url.trim_start_matches("http://").trim_end_matches("/cb");
    assert_eq!(receiver.start_at(&server, 200, addr), url);

    // Second run: receiver up; everything left arrives, in order per stream.
    let second = runtime();
    second.block_on(async {
        let cb = Callbacks::open(&cfg).await.unwrap();
        assert_eq!(cb.resumed(), 6);
        assert!(cb.drain(Duration::from_secs(10)).await);
        assert_eq!((cb.delivered(), cb.queue_depth()), (6, 0));
    });
    drop(second);
    let got = receiver.bodies();
    for stream in ["a", "b"] {
        let mine: Vec<&String> = got
            .iter()
            .filter(|b| b.contains(&format!("/{stream}/")))
            .collect();
        assert_eq!(
            mine,
            (1..=3)
                .map(|s| body(stream, s))
                .collect::<Vec<_>>()
                .iter()
                .collect::<Vec<_>>()
        );
    }
    // Every request was signed over its own timestamp.
    for (headers, b) in lock(&receiver.got).iter() {
        let ts = headers[sign::TIMESTAMP_HEADER].to_str().unwrap();
        let sig = headers[sign::SIGNATURE_HEADER].to_str().unwrap();
        assert_eq!(headers["content-type"], "application/json");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        sign::verify(b"k", ts, sig, b.as_bytes(), now, 300).unwrap();
    }

    // A third run finds the spool empty.
    let third = runtime();
    third.block_on(async {
        let cb = Callbacks::open(&cfg).await.unwrap();
        assert_eq!(cb.queue_depth(), 0);
        assert!(cb.drain(Duration::from_millis(10)).await);
    });
    std::fs::remove_dir_all(&cfg.spool_dir).unwrap();
}

#[test]
fn expired_callbacks_go_to_the_dead_letter_file() {
    let server = runtime();
    let receiver = Receiver::default();
    let url = receiver.start(&server, 503);
    let cfg = DeliveryConfig {
        max_age_s: 1,
        ..config("expire")
    };
    let rt = runtime();
    rt.block_on(async {
        let cb = Callbacks::open(&cfg).await.unwrap();
        let target = Target {
            url,
            secret: Some("top-secret".into()),
        };
        cb.enqueue(&target, "a", body("a", 1)).await.unwrap();
        cb.enqueue(&target, "b", body("b", 1)).await.unwrap();
        assert!(cb.drain(Duration::from_secs(10)).await);
        assert_eq!(
            (cb.dead_lettered(), cb.delivered(), cb.rejected()),
            (2, 0, 0)
        );
    });
    assert!(receiver.bodies().len() >= 4, "retried until expiry");
    let dead = std::fs::read_to_string(cfg.dead_letter_path()).unwrap();
    assert!(!dead.contains("top-secret"), "{dead}");
    let lines: Vec<serde_json::Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for line in &lines {
        assert_eq!(line["reason"], "expired");
        assert!(
            line["detail"].as_str().unwrap().contains("HTTP 503"),
            "{line}"
        );
        assert!(line["attempts"].as_u64().unwrap() >= 2, "{line}");
    }
    let mut bodies: Vec<&str> = lines
        .iter()
        .map(|l| l["entry"]["body"].as_str().unwrap())
        .collect();
    bodies.sort();
    assert_eq!(bodies, [body("a", 1), body("b", 1)]);
    // Dead letters left the spool. (Dropping the runtime ends its tasks, which close the spool.)
    drop(rt);
    let rt = runtime();
    rt.block_on(async {
        assert_eq!(Callbacks::open(&cfg).await.unwrap().queue_depth(), 0);
    });
    std::fs::remove_dir_all(&cfg.spool_dir).unwrap();
}

#[test]
fn a_refusal_is_final_after_one_attempt_and_does_not_block_the_stream() {
    let server = runtime();
    let receiver = Receiver::default();
    let url = receiver.start(&server, 400);
    let cfg = config("refuse");
    let rt = runtime();
    rt.block_on(async {
        let cb = Callbacks::open(&cfg).await.unwrap();
        let target = Target { url, secret: None };
        for seq in 1..=3 {
            cb.enqueue(&target, "a", body("a", seq)).await.unwrap();
        }
        assert!(cb.drain(Duration::from_secs(10)).await);
        assert_eq!(
            (cb.rejected(), cb.delivered(), cb.dead_lettered()),
            (3, 0, 0)
        );
    });
    assert_eq!(
        receiver.bodies(),
        (1..=3).map(|s| body("a", s)).collect::<Vec<_>>()
    );
    // No secret: a timestamp but no signature.
    for (headers, _) in lock(&receiver.got).iter() {
        assert!(headers.contains_key(sign::TIMESTAMP_HEADER));
        assert!(!headers.contains_key(sign::SIGNATURE_HEADER));
    }
    let dead = std::fs::read_to_string(cfg.dead_letter_path()).unwrap();
    assert_eq!(dead.lines().count(), 3);
    assert!(
        dead.lines()
            .all(|l| l.contains(r#""reason":"rejected""#) && l.contains("HTTP 400"))
    );
    std::fs::remove_dir_all(&cfg.spool_dir).unwrap();
}

#[test]
fn config_defaults_and_validation() {
    let cfg: DeliveryConfig = toml::from_str("spool_dir = \"/tmp/s\"").unwrap();
    assert_eq!(cfg.max_age_s, 86_400);
    assert_eq!(
        cfg.dead_letter_path(),
        PathBuf::from("/tmp/s/dead-letters.jsonl")
    );
    cfg.validate().unwrap();
    for (text, expect) in [
        ("max_age_s = 0", "max_age_s"),
        (
            "backoff_base_ms = 10\nbackoff_max_ms = 5",
            "backoff_base_ms",
        ),
        ("max_in_flight = 0", "max_in_flight"),
        ("request_timeout_ms = 0", "request_timeout_ms"),
    ] {
        let cfg: DeliveryConfig = toml::from_str(text).unwrap();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains(expect), "{text}: {err}");
    }
    let err = toml::from_str::<DeliveryConfig>("max_age = 5").unwrap_err();
    assert!(err.to_string().contains("unknown field `max_age`"), "{err}");
    let target = Target {
        url: "http://x".into(),
        secret: Some("hunter2".into()),
    };
    assert!(!format!("{target:?}").contains("hunter2"));
}
