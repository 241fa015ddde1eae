//! `kill -9` loses no callback: a `livesnap replay` child delivering to a receiver that is down
//! is killed mid-run; the next run on the same spool, with the receiver up, delivers every
//! callback the first run had written out (duplicates allowed: receivers dedupe on taskid).

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use common::{Receiver, Reply, check_signature, fixture, livesnap, taskid, temp_dir, text};
use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "crash-test-secret";

/// Complete lines (ending in a newline) of a file being written by another process.
fn complete_lines(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    complete.lines().map(str::to_owned).collect()
}

#[test]
fn kill_9_while_the_receiver_is_down_loses_no_callback() {
    // Down: every connection is closed without an answer.
    let receiver = Receiver::start(|_, _| Reply::Drop);
    let dir = temp_dir("crash");
    let spool = dir.join("spool");
    let lines = dir.join("first.jsonl");
    let config = dir.join("livesnap.toml");
    std::fs::write(
        &config,
        "[callbacks]\nrequest_timeout_ms = 500\nbackoff_base_ms = 10\nbackoff_max_ms = 100\n",
    )
    .unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_livesnap"))
        .args([
            "replay",
            fixture("high_1080p.flv").to_str().unwrap(),
            "--out",
            dir.join("shots").to_str().unwrap(),
            "--interval",
            "1",
            "--start-ms",
            "1700000000000",
            "--session-id",
            "1",
            "--callbacks",
            lines.to_str().unwrap(),
            "--callback-url",
            &receiver.url,
            "--callback-secret",
            SECRET,
            "--callback-timeout",
            "300",
            "--spool",
            spool.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        // A file, not a pipe nobody reads: retry warnings must never block the child.
        .stderr(std::fs::File::create(dir.join("first.stderr")).unwrap())
        .spawn()
        .unwrap();
    // Kill as soon as a few captures are done: mid-replay, callbacks spooled, none delivered.
    let started = Instant::now();
    while complete_lines(&lines).len() < 3 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the first run ended on its own"
        );
        assert!(started.elapsed() < Duration::from_secs(120), "no captures");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success());
    let spooled: BTreeSet<String> = complete_lines(&lines).iter().map(|l| taskid(l)).collect();
    assert!(spooled.len() >= 3);
    eprintln!("killed after {} callbacks were spooled", spooled.len());
    assert!(receiver.accepted().is_empty());

    // The receiver comes back; the next run on the same spool replays another stream and
    // delivers what the killed run left behind as well as its own callbacks.
    receiver.set_script(|_, _| Reply::Status(200));
    let second = dir.join("second.jsonl");
    let o = livesnap(&[
        "replay",
        fixture("long_gop.flv").to_str().unwrap(),
        "--out",
        dir.join("shots").to_str().unwrap(),
        "--callbacks",
        second.to_str().unwrap(),
        "--callback-url",
        &receiver.url,
        "--callback-secret",
        SECRET,
        "--callback-timeout",
        "60",
        "--spool",
        spool.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    let stderr = text(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("resumed from the spool"), "{stderr}");
    let accepted = receiver.accepted();
    for req in &accepted {
        check_signature(SECRET, req);
    }
    let delivered: BTreeSet<String> = accepted.iter().map(|r| taskid(&r.body)).collect();
    let missing: Vec<&String> = spooled.difference(&delivered).collect();
    assert!(missing.is_empty(), "lost after kill -9: {missing:?}");
    for line in complete_lines(&second) {
        assert!(delivered.contains(&taskid(&line)), "{line}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}
