//! S3 storage end to end against an in-process S3 server (s3s-fs, which checks SigV4
//! signatures): objects land at the right keys with `Content-Type: image/jpeg`; bad credentials
//! or an unreachable endpoint give each capture an `UploadFailed` callback, not a crash.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use common::{S3_ACCESS_KEY, S3_SECRET_KEY, S3Server, fixture, livesnap, temp_dir, text};
use livesnap::storage::{Storage, StorageConfig, StorageKind};
use object_store::aws::AmazonS3Builder;
use object_store::{Attribute, ObjectStoreExt};
use std::path::Path;

fn s3_config(server: &S3Server, secret: &str) -> StorageConfig {
    StorageConfig {
        kind: StorageKind::S3,
        endpoint: Some(server.endpoint.clone()),
        region: Some("us-east-1".into()),
        access_key_id: Some(S3_ACCESS_KEY.into()),
        secret_access_key: Some(secret.into()),
        max_retries: 1,
        backoff_base_ms: 10,
        backoff_max_ms: 20,
        ..StorageConfig::default()
    }
}

/// Read an object back through S3: its bytes and Content-Type.
fn get(server: &S3Server, bucket: &str, key: &str) -> (Vec<u8>, String) {
    let store = AmazonS3Builder::new()
        .with_endpoint(&server.endpoint)
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_region("us-east-1")
        .with_access_key_id(S3_ACCESS_KEY)
        .with_secret_access_key(S3_SECRET_KEY)
        .with_bucket_name(bucket)
        .build()
        .unwrap();
    server.block_on(async {
        let got = store
            .get(&object_store::path::Path::from(key))
            .await
            .unwrap();
        let content_type = got
            .attributes
            .get(&Attribute::ContentType)
            .map(|v| v.to_string())
            .unwrap_or_default();
        (got.bytes().await.unwrap().to_vec(), content_type)
    })
}

/// Object keys under `{root}/{bucket}` (s3s-fs keeps objects as files there), sorted.
fn keys_in(root: &Path, bucket: &str) -> Vec<String> {
    let base = root.join(bucket);
    let mut out = Vec::new();
    let mut stack = vec![base.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_dir() {
                stack.push(e.path());
            } else if !name.starts_with('.') {
                let rel = e.path().strip_prefix(&base).unwrap().to_owned();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn put_stores_the_object_with_content_type_jpeg() {
    let dir = temp_dir("s3-put");
    std::fs::create_dir_all(dir.join("s3/pics")).unwrap();
    let server = S3Server::start(&dir.join("s3"));
    let storage = Storage::from_config(&s3_config(&server, S3_SECRET_KEY)).unwrap();
    let key = "record/live/cam/picture/cam.jpg";
    let jpeg = bytes::Bytes::from_static(b"\xff\xd8\xff\xe0 not really a jpeg \xff\xd9");
    server
        .block_on(storage.put("pics", key, jpeg.clone()))
        .unwrap();
    assert_eq!(
        get(&server, "pics", key),
        (jpeg.to_vec(), "image/jpeg".into())
    );
    assert_eq!(
        std::fs::read(dir.join("s3/pics").join(key)).unwrap(),
        jpeg.to_vec()
    );
    // Overwrite in place.
    server
        .block_on(storage.put("pics", key, bytes::Bytes::from_static(b"two")))
        .unwrap();
    assert_eq!(get(&server, "pics", key).0, b"two");
    // A key that could leave its bucket never reaches the server.
    let err = server
        .block_on(storage.put("pics", "a/../../b.jpg", jpeg.clone()))
        .unwrap_err();
    assert!(format!("{err:#}").contains("refusing key"), "{err:#}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn replay_into_s3_stores_every_capture_at_its_key() {
    let dir = temp_dir("s3-replay");
    std::fs::create_dir_all(dir.join("s3/shots")).unwrap();
    let server = S3Server::start(&dir.join("s3"));
    let lines = dir.join("cb.jsonl");
    let o = livesnap(&[
        "replay",
        fixture("baseline_360p.flv").to_str().unwrap(),
        "--s3-endpoint",
        &server.endpoint,
        "--s3-region",
        "us-east-1",
        "--s3-access-key-id",
        S3_ACCESS_KEY,
        "--s3-secret-access-key",
        S3_SECRET_KEY,
        "--bucket",
        "shots",
        "--interval",
        "10",
        "--start-ms",
        "1700000000000",
        "--session-id",
        "42",
        "--callbacks",
        lines.to_str().unwrap(),
    ]);
    let stderr = text(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("3 captures stored, 0 failed"), "{stderr}");
    let expected: Vec<String> = [0, 10, 20]
        .iter()
        .map(|s| {
            format!(
                "record/live/baseline_360p/picture/1700000000000-42/baseline_360p-{}.jpg",
                1_700_000_000 + s
            )
        })
        .collect();
    assert_eq!(keys_in(&dir.join("s3"), "shots"), expected);
    let callbacks: Vec<serde_json::Value> = std::fs::read_to_string(&lines)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(callbacks.len(), 3);
    for (cb, key) in callbacks.iter().zip(&expected) {
        assert_eq!(cb["status"], 3, "{cb}");
        assert_eq!(cb["dstpath"], key.as_str());
        assert_eq!(cb["bucket"], "shots");
        let (jpeg, content_type) = get(&server, "shots", key);
        assert_eq!(content_type, "image/jpeg");
        assert!(jpeg.starts_with(b"\xff\xd8") && jpeg.ends_with(b"\xff\xd9"));
        assert_eq!(cb["width"], 640);
    }
    // Nothing was written locally.
    assert!(!Path::new("livesnap-objects").join("shots").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn replay_reads_s3_settings_from_a_config_file_and_the_environment() {
    let dir = temp_dir("s3-config");
    std::fs::create_dir_all(dir.join("s3/from-config")).unwrap();
    let server = S3Server::start(&dir.join("s3"));
    let config = dir.join("livesnap.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhttp = \"127.0.0.1:0\"\n\n[storage]\nkind = \"s3\"\nendpoint = \"{}\"\n\
             bucket = \"from-config\"\n",
            server.endpoint
        ),
    )
    .unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_livesnap"))
        .args([
            "replay",
            fixture("long_gop.flv").to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--start-ms",
            "5000",
            "--session-id",
            "1",
        ])
        .env("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        keys_in(&dir.join("s3"), "from-config"),
        [
            "record/live/long_gop/picture/5000-1/long_gop-35.jpg",
            "record/live/long_gop/picture/5000-1/long_gop-5.jpg"
        ]
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// Every capture of the replay got an `UploadFailed` callback naming `cause`; nothing stored.
fn assert_all_upload_failed(stdout: &str, cause: &str) {
    let callbacks: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(callbacks.len(), 2, "{stdout}");
    for (n, cb) in callbacks.iter().enumerate() {
        assert_eq!(cb["status"], 4, "{cb}");
        assert_eq!(cb["code"], "UploadFailed", "{cb}");
        assert_eq!(cb["errnum"], 1003, "{cb}");
        assert_eq!(cb["dstpath"], "", "{cb}");
        assert!(cb["keys"].as_str().unwrap().ends_with(".jpg"), "{cb}");
        let errmsg = cb["errmsg"].as_str().unwrap();
        assert!(errmsg.contains(cause), "{errmsg}");
        assert!(errmsg.contains("s3://shots/record/live/"), "{errmsg}");
        // The replay went on after the failure: both captures were attempted, in order.
        assert!(
            cb["taskid"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/{}", n + 1)),
            "{cb}"
        );
    }
}

#[test]
fn a_wrong_secret_gives_upload_failed_callbacks_and_the_replay_goes_on() {
    let dir = temp_dir("s3-wrong");
    std::fs::create_dir_all(dir.join("s3/shots")).unwrap();
    let server = S3Server::start(&dir.join("s3"));
    let o = livesnap(&[
        "replay",
        fixture("long_gop.flv").to_str().unwrap(),
        "--s3-endpoint",
        &server.endpoint,
        "--s3-access-key-id",
        S3_ACCESS_KEY,
        "--s3-secret-access-key",
        "not-the-secret",
        "--bucket",
        "shots",
        "--callbacks",
        "-",
    ]);
    let stderr = text(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("0 captures stored, 2 failed"), "{stderr}");
    assert_all_upload_failed(&text(&o.stdout), "403 Forbidden");
    assert!(keys_in(&dir.join("s3"), "shots").is_empty());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_unreachable_endpoint_is_retried_a_bounded_number_of_times_then_fails() {
    let dir = temp_dir("s3-down");
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("livesnap.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\nkind = \"s3\"\nendpoint = \"http://127.0.0.1:{port}\"\n\
             access_key_id = \"AK\"\nsecret_access_key = \"SK\"\nmax_retries = 2\n\
             backoff_base_ms = 10\nbackoff_max_ms = 20\n"
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let o = livesnap(&[
        "replay",
        fixture("long_gop.flv").to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--bucket",
        "shots",
        "--callbacks",
        "-",
    ]);
    let stderr = text(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_all_upload_failed(&text(&o.stdout), "after 2 retries");
    assert!(stderr.contains("Connection refused"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn mixing_fs_and_s3_settings_is_refused_before_anything_is_written() {
    let dir = temp_dir("s3-mixed");
    let input = fixture("long_gop.flv");
    for (args, expect) in [
        (
            vec!["--out", "x", "--s3-endpoint", "http://127.0.0.1:9"],
            "--out is for filesystem storage",
        ),
        (
            vec!["--storage", "fs", "--s3-region", "eu-west-1"],
            "--s3-region needs S3 storage",
        ),
        (vec!["--s3-endpoint", "127.0.0.1:9"], "must start with http"),
        (vec![], "--out DIR is required"),
    ] {
        let mut all = vec!["replay", input.to_str().unwrap()];
        all.extend(args.iter().copied());
        let o = livesnap(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
        assert!(
            text(&o.stderr).contains(expect),
            "{args:?}: {}",
            text(&o.stderr)
        );
    }
    assert!(!Path::new("x").exists());
    std::fs::remove_dir_all(dir).unwrap();
}
