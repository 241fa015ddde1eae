//! The `livesnap` binary end to end: exit codes, files written, the summary line.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use common::{files_under, fixture, livesnap, temp_dir, text};
use std::path::PathBuf;

#[test]
fn replay_stores_pictures_writes_callbacks_and_prints_a_summary() {
    let dir = temp_dir("ok");
    let out = dir.join("shots");
    let cb = dir.join("cb.jsonl");
    let o = livesnap(&[
        "replay",
        fixture("baseline_360p.flv").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--interval",
        "10",
        "--start-ms",
        "1700000000000",
        "--session-id",
        "42",
        "--callbacks",
        cb.to_str().unwrap(),
    ]);
    let stderr = text(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("replayed 753 tags in ") && stderr.contains("3 captures stored, 0 failed"),
        "{stderr}"
    );
    let files = files_under(&out);
    let expected: Vec<PathBuf> = [0, 10, 20]
        .iter()
        .map(|s| {
            out.join(format!(
                "livesnap/record/live/baseline_360p/picture/1700000000000-42/baseline_360p-{}.jpg",
                1_700_000_000 + s
            ))
        })
        .collect();
    assert_eq!(files, expected);
    let lines = std::fs::read_to_string(&cb).unwrap();
    assert_eq!(lines.lines().count(), 3);
    assert!(
        lines
            .lines()
            .all(|l| l.contains(r#""uniqname":"local""#) && l.contains(r#""bucket":"livesnap""#))
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn callbacks_dash_goes_to_stdout_in_capture_order() {
    let dir = temp_dir("stdout");
    let o = livesnap(&[
        "replay",
        fixture("long_gop.flv").to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
        "--callbacks",
        "-",
        "--app",
        "tv",
        "--stream",
        "news",
        "--session-id",
        "1",
        "--start-ms",
        "5000",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let stdout = text(&o.stdout);
    let taskids: Vec<&str> = stdout
        .lines()
        .map(|l| {
            l.split(r#""taskid":""#)
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(taskids, ["tv/news/5000-1/1", "tv/news/5000-1/2"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_file_that_is_not_flv_exits_2_and_writes_nothing() {
    let dir = temp_dir("notflv");
    let input = dir.join("clip.flv");
    std::fs::write(&input, b"\x00\x00\x00\x18ftypmp42 this is an mp4").unwrap();
    let out = dir.join("shots");
    let cb = dir.join("cb.jsonl");
    let o = livesnap(&[
        "replay",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--callbacks",
        cb.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let stderr = text(&o.stderr);
    assert!(stderr.contains("not an FLV file"), "{stderr}");
    assert!(!out.exists() && !cb.exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_missing_file_exits_2_with_its_name() {
    let o = livesnap(&["replay", "/nonexistent/x.flv", "--out", "/tmp/never"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("cannot read /nonexistent/x.flv"));
}

#[test]
fn invalid_names_and_settings_exit_2_before_writing() {
    let dir = temp_dir("names");
    let out = dir.join("shots");
    let input = fixture("odd_size.flv");
    for (args, expect) in [
        (vec!["--stream", "../../etc"], "stream name"),
        (vec!["--app", "a/b"], "app name"),
        (vec!["--stream", "%2e%2e"], "stream name"),
        (vec!["--interval", "0"], "interval 0 s"),
        (vec!["--interval", "3601"], "interval 3601 s"),
        (vec!["--quality", "11"], "quality 11"),
        (vec!["--bucket", ".."], "bucket name"),
        (vec!["--shortside", "0"], "shortside"),
    ] {
        let mut all = vec![
            "replay",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
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
    // The stream name defaults to the file stem: a stem that is not a valid name says so.
    let odd = dir.join("my clip.flv");
    std::fs::copy(&input, &odd).unwrap();
    let o = livesnap(&[
        "replay",
        odd.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("--stream"), "{}", text(&o.stderr));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_truncated_file_processes_every_complete_tag_then_warns() {
    let dir = temp_dir("trunc");
    let full = std::fs::read(fixture("baseline_360p.flv")).unwrap();
    // Cut inside a tag a little after the 22 s I-frame (GOP 2 s, 25 fps).
    let input = dir.join("cut.flv");
    std::fs::write(&input, &full[..full.len() * 4 / 5 + 7]).unwrap();
    let out = dir.join("shots");
    let o = livesnap(&[
        "replay",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--interval",
        "2",
        "--callbacks",
        dir.join("cb.jsonl").to_str().unwrap(),
    ]);
    let stderr = text(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("warning: truncated FLV"), "{stderr}");
    assert!(stderr.contains("(input truncated)"), "{stderr}");
    let lines = std::fs::read_to_string(dir.join("cb.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert!((10..15).contains(&lines), "{lines} captures before the cut");
    assert_eq!(files_under(&out).len(), lines);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn component_writes_the_components_and_their_wit() {
    let dir = temp_dir("component");
    let out = dir.join("dist");
    let o = livesnap(&["component", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let files = files_under(&out);
    assert_eq!(
        files,
        [
            out.join("livesnap-edge.wasm"),
            out.join("livesnap.wasm"),
            out.join("wit/livesnap.wit"),
        ]
    );
    // Exactly what the binary runs, and the repository's WIT.
    assert_eq!(
        std::fs::read(out.join("livesnap.wasm")).unwrap(),
        livesnap::runtime::COMPONENT_WASM
    );
    assert_eq!(
        std::fs::read(out.join("livesnap-edge.wasm")).unwrap(),
        livesnap::runtime::EDGE_WASM
    );
    let wit = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/livesnap.wit");
    assert_eq!(
        std::fs::read(out.join("wit/livesnap.wit")).unwrap(),
        std::fs::read(wit).unwrap()
    );
    // One `sha256  bytes  path` line per file.
    let stdout = text(&o.stdout);
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    for line in stdout.lines() {
        let hash = line.split_whitespace().next().unwrap();
        assert_eq!(hash.len(), 64, "{line}");
    }
    // A directory that cannot be created is an error, not a panic.
    let blocked = dir.join("file");
    std::fs::write(&blocked, b"x").unwrap();
    let o = livesnap(&["component", "--out", blocked.join("sub").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("cannot create"),
        "{}",
        text(&o.stderr)
    );
}
