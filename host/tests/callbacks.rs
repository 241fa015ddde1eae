//! Callback delivery against a receiver on 127.0.0.1:0 that fails first (503, a timeout, a
//! dropped connection) then accepts: every taskid arrives, signatures verify, order per stream
//! holds — through the library ([`Callbacks`]) and through `livesnap replay --callback-url`.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use common::{
    Receiver, Reply, check_signature, fixture, livesnap, stream_and_seq, taskid, temp_dir, text,
};
use livesnap::callback::{Callbacks, DeliveryConfig, Target};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const SECRET: &str = "whsec_9f2c";

fn fast_delivery(spool: &std::path::Path) -> DeliveryConfig {
    DeliveryConfig {
        spool_dir: spool.to_path_buf(),
        request_timeout_ms: 1_000,
        backoff_base_ms: 10,
        backoff_max_ms: 50,
        ..DeliveryConfig::default()
    }
}

/// Attempts 1, 2 and 3 of every callback fail in the three ways; the 4th is accepted.
fn flaky(_: &common::Request, attempt: u32) -> Reply {
    match attempt {
        1 => Reply::Status(503),
        2 => Reply::Hang(Duration::from_secs(3)),
        3 => Reply::Drop,
        _ => Reply::Status(200),
    }
}

/// Per stream, the sequence numbers attempted never go back (the head is retried until done
/// before the next is sent) and the accepted ones are 1..=n exactly once each.
fn assert_in_order_per_stream(receiver: &Receiver, expected: &BTreeMap<String, u32>) {
    let mut attempted: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (req, _) in receiver.all() {
        let (stream, seq) = stream_and_seq(&taskid(&req.body));
        attempted.entry(stream).or_default().push(seq);
    }
    for (stream, seqs) in &attempted {
        assert!(
            seqs.windows(2).all(|w| w[0] <= w[1]),
            "{stream}: attempts out of order: {seqs:?}"
        );
    }
    let mut accepted: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for req in receiver.accepted() {
        let (stream, seq) = stream_and_seq(&taskid(&req.body));
        accepted.entry(stream).or_default().push(seq);
    }
    let want: BTreeMap<String, Vec<u32>> = expected
        .iter()
        .map(|(s, n)| (s.clone(), (1..=*n).collect()))
        .collect();
    assert_eq!(accepted, want);
}

#[test]
fn flaky_receiver_gets_every_callback_signed_and_in_order_per_stream() {
    let receiver = Receiver::start(flaky);
    let dir = temp_dir("cb-flaky");
    let cfg = fast_delivery(&dir.join("spool"));
    let target = Target {
        url: receiver.url.clone(),
        secret: Some(SECRET.into()),
    };
    let streams = ["live/a/1-1", "live/b/1-1", "live/c/1-1"];
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cb = Callbacks::open(&cfg).await.unwrap();
        for seq in 1..=4 {
            for stream in streams {
                let body = format!(r#"{{"status":3,"taskid":"{stream}/{seq}"}}"#);
                cb.enqueue(&target, stream, body).await.unwrap();
            }
        }
        assert!(cb.drain(Duration::from_secs(30)).await, "drained");
        assert_eq!(cb.delivered(), 12);
        assert_eq!(
            (cb.queue_depth(), cb.dead_lettered(), cb.rejected()),
            (0, 0, 0)
        );
    });
    drop(rt);
    // Every failure kind really happened, for every callback.
    let replies: Vec<Reply> = receiver.all().iter().map(|(_, r)| *r).collect();
    assert_eq!(replies.len(), 12 * 4, "{replies:?}");
    for req in receiver.accepted() {
        check_signature(SECRET, &req);
        assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/hook"));
    }
    let expected = streams.iter().map(|s| (s.to_string(), 4)).collect();
    assert_in_order_per_stream(&receiver, &expected);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_stuck_stream_does_not_hold_up_the_others() {
    // Stream "slow" is refused with 503 until the test lets it through; "fast" is accepted.
    let receiver = Receiver::start(|req, _| {
        if req.body.contains("/slow/") {
            Reply::Status(503)
        } else {
            Reply::Status(200)
        }
    });
    let dir = temp_dir("cb-stuck");
    let cfg = fast_delivery(&dir.join("spool"));
    let target = Target {
        url: receiver.url.clone(),
        secret: None,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cb = Callbacks::open(&cfg).await.unwrap();
        for seq in 1..=3 {
            for stream in ["live/slow/1-1", "live/fast/1-1"] {
                let body = format!(r#"{{"taskid":"{stream}/{seq}"}}"#);
                cb.enqueue(&target, stream, body).await.unwrap();
            }
        }
        // The fast stream gets through while the slow one's head keeps failing.
        let started = std::time::Instant::now();
        while (cb.delivered(), cb.queue_depth()) != (3, 3) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "fast stream stuck"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!((cb.delivered(), cb.queue_depth()), (3, 3));
        receiver.set_script(|_, _| Reply::Status(200));
        assert!(cb.drain(Duration::from_secs(10)).await);
        assert_eq!(cb.delivered(), 6);
    });
    drop(rt);
    // Only the head of the slow stream was ever tried while it was failing.
    let slow_attempts: BTreeSet<u32> = receiver
        .all()
        .iter()
        .filter(|(req, reply)| req.body.contains("/slow/") && *reply == Reply::Status(503))
        .map(|(req, _)| stream_and_seq(&taskid(&req.body)).1)
        .collect();
    assert_eq!(slow_attempts, BTreeSet::from([1]));
    let expected = [
        ("live/slow/1-1".to_string(), 3),
        ("live/fast/1-1".to_string(), 3),
    ]
    .into();
    assert_in_order_per_stream(&receiver, &expected);
    std::fs::remove_dir_all(dir).unwrap();
}

fn write_fast_config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("livesnap.toml");
    std::fs::write(
        &path,
        "[callbacks]\nrequest_timeout_ms = 1000\nbackoff_base_ms = 10\nbackoff_max_ms = 50\n",
    )
    .unwrap();
    path
}

/// The Rust receiver snippet of README "Callbacks over HTTP", verbatim, so it keeps compiling
/// and keeps agreeing with what livesnap sends.
mod readme {
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::Sha256;

    /// `Ok` to process the callback, `Err` to answer 401. `now_s`: the receiver's Unix time.
    pub fn verify(
        secret: &[u8],
        ts: &str,
        sig: &str,
        body: &[u8],
        now_s: u64,
    ) -> Result<(), &'static str> {
        let sent_s: u64 = ts.parse().map_err(|_| "bad timestamp")?;
        if now_s.abs_diff(sent_s) > 300 {
            return Err("stale timestamp");
        }
        for hex_tag in sig.split(',').filter_map(|s| s.trim().strip_prefix("v1=")) {
            let Ok(tag) = hex::decode(hex_tag) else {
                continue;
            };
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| "bad key")?;
            mac.update(ts.as_bytes());
            mac.update(b".");
            mac.update(body);
            if mac.verify_slice(&tag).is_ok() {
                return Ok(()); // constant-time comparison
            }
        }
        Err("bad signature")
    }
}

#[test]
fn replay_delivers_every_callback_through_a_flaky_receiver() {
    let receiver = Receiver::start(flaky);
    let dir = temp_dir("cb-replay");
    let config = write_fast_config(&dir);
    let lines = dir.join("cb.jsonl");
    let o = livesnap(&[
        "replay",
        fixture("baseline_360p.flv").to_str().unwrap(),
        "--out",
        dir.join("shots").to_str().unwrap(),
        "--interval",
        "5",
        "--start-ms",
        "1700000000000",
        "--session-id",
        "7",
        "--callbacks",
        lines.to_str().unwrap(),
        "--callback-url",
        &receiver.url,
        "--callback-secret",
        SECRET,
        "--spool",
        dir.join("spool").to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    let stderr = text(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let written: Vec<String> = std::fs::read_to_string(&lines)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(written.len(), 5, "{stderr}");
    assert!(
        stderr.contains("callbacks: 5 delivered, 0 pending, 0 undeliverable"),
        "{stderr}"
    );
    // The POSTed bodies are the callback lines, byte for byte, each signed.
    let accepted = receiver.accepted();
    let bodies: Vec<String> = accepted.iter().map(|r| r.body.clone()).collect();
    assert_eq!(bodies, written);
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for req in &accepted {
        check_signature(SECRET, req);
        let (ts, sig) = (
            req.header("x-livesnap-timestamp").unwrap(),
            req.header("x-livesnap-signature").unwrap(),
        );
        let body = req.body.as_bytes();
        assert_eq!(
            readme::verify(SECRET.as_bytes(), ts, sig, body, now_s),
            Ok(())
        );
        assert_eq!(
            readme::verify(b"wrong", ts, sig, body, now_s),
            Err("bad signature")
        );
        assert_eq!(
            readme::verify(SECRET.as_bytes(), ts, sig, body, now_s + 301),
            Err("stale timestamp")
        );
    }
    let expected = [("live/baseline_360p/1700000000000-7".to_string(), 5)].into();
    assert_in_order_per_stream(&receiver, &expected);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn replay_with_the_receiver_down_exits_1_and_a_resume_delivers_later() {
    let receiver = Receiver::start(|_, _| Reply::Status(503));
    let dir = temp_dir("cb-down");
    let config = write_fast_config(&dir);
    let spool = dir.join("spool");
    let o = livesnap(&[
        "replay",
        fixture("long_gop.flv").to_str().unwrap(),
        "--out",
        dir.join("shots").to_str().unwrap(),
        "--callback-url",
        &receiver.url,
        "--callback-secret",
        SECRET,
        "--callback-timeout",
        "1",
        "--spool",
        spool.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("2 callback(s) still pending"), "{stderr}");
    assert!(stderr.contains("--resume-only"), "{stderr}");
    assert!(receiver.accepted().is_empty());

    receiver.set_script(|_, _| Reply::Status(204));
    let o = livesnap(&[
        "replay",
        "--resume-only",
        "--spool",
        spool.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    let stderr = text(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "callbacks: 2 delivered, 0 pending, 0 undeliverable (2 resumed from the spool)"
        ),
        "{stderr}"
    );
    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 2);
    for req in &accepted {
        check_signature(SECRET, req);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn replay_reports_refused_callbacks_and_dead_letters_them() {
    let receiver = Receiver::start(|_, _| Reply::Status(401));
    let dir = temp_dir("cb-refused");
    let spool = dir.join("spool");
    let o = livesnap(&[
        "replay",
        fixture("long_gop.flv").to_str().unwrap(),
        "--out",
        dir.join("shots").to_str().unwrap(),
        "--callback-url",
        &receiver.url,
        "--spool",
        spool.to_str().unwrap(),
    ]);
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("2 callback(s) could not be delivered (2 refused by the receiver"),
        "{stderr}"
    );
    // Refusals are final: one attempt each.
    assert_eq!(receiver.all().len(), 2);
    let dead = std::fs::read_to_string(spool.join("dead-letters.jsonl")).unwrap();
    assert_eq!(dead.lines().count(), 2);
    assert!(dead.contains("HTTP 401"), "{dead}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn callback_flags_are_checked_before_anything_is_written() {
    let dir = temp_dir("cb-flags");
    let out = dir.join("shots");
    let (input, spool) = (fixture("long_gop.flv"), dir.join("spool"));
    for (args, expect) in [
        (
            vec!["--callback-url", "ftp://x/y"],
            "only http:// and https://",
        ),
        (vec!["--callback-url", "not a url"], "invalid callback URL"),
        (vec!["--callback-secret", "s"], "--callback-url"),
    ] {
        let mut all = vec![
            "replay",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--spool",
            spool.to_str().unwrap(),
        ];
        all.extend(args.iter().copied());
        let o = livesnap(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
        assert!(
            text(&o.stderr).contains(expect),
            "{args:?}: {}",
            text(&o.stderr)
        );
        assert!(!out.exists(), "{args:?} wrote output");
    }
    std::fs::remove_dir_all(dir).unwrap();
}
