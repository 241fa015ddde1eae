//! `livesnap probe` end to end through the CLI: on every fixture, every I-frame it decodes (the
//! capture rule at interval 1 s) is written by `--yuv` and must be bit-exact with ffmpeg's
//! decode of the same picture (`fixtures/ref/{name}.frames.tsv`), and its per-plane MD5s must be
//! those of the written picture.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use md5::{Digest, Md5};
use std::collections::BTreeMap;
use std::path::Path;

fn md5_hex(bytes: &[u8]) -> String {
    format!("{:x}", Md5::digest(bytes))
}

/// ffmpeg's frame MD5s by presentation time (more than one where two frames share a pts).
fn ref_md5s(name: &str) -> BTreeMap<i64, Vec<String>> {
    let path = common::fixture(&format!("ref/{name}.frames.tsv"));
    let mut out: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap().lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        out.entry(f[0].parse().unwrap())
            .or_default()
            .push(f[f.len() - 1].to_owned());
    }
    out
}

/// Runs `livesnap probe FILE --yuv DIR`; returns stdout.
fn probe(file: &Path, yuv: &Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_livesnap"))
        .arg("probe")
        .arg(file)
        .arg("--yuv")
        .arg(yuv)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "probe {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn probe_decodes_every_fixture_iframe_like_ffmpeg() {
    let mut names: Vec<String> = std::fs::read_dir(common::fixture(""))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".flv").map(str::to_owned)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 30, "{names:?}");
    let root = std::env::temp_dir().join(format!("livesnap-probe-{}", std::process::id()));
    let mut decoded_total = 0;
    let mut colours = BTreeMap::new();
    for name in &names {
        let yuv = root.join(name);
        let text = probe(&common::fixture(&format!("{name}.flv")), &yuv);
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(
                "clock_ms\tpts_ms\tcodec\tsize\tbit_depth\tcolour\tslices\tdecode_ms\tmd5_y\tmd5_u\tmd5_v"
            ),
            "{name}"
        );
        let refs = ref_md5s(name);
        for line in lines.filter(|l| !l.starts_with("refused")) {
            let f: Vec<&str> = line.split('\t').collect();
            if f[3] == "-" {
                continue; // a picture that does not decode (damaged fixtures): its error text
            }
            assert_eq!(f.len(), 11, "{name}: {line}");
            let pts: i64 = f[1].parse().unwrap();
            let ext = if f[4] == "8" {
                "yuv420p"
            } else {
                "yuv420p10le"
            };
            let raw = std::fs::read(yuv.join(format!("{}-{pts}-{}.{ext}", f[0], f[3]))).unwrap();
            let candidates = refs.get(&pts).cloned().unwrap_or_default();
            assert!(
                candidates.contains(&md5_hex(&raw)),
                "{name} pts {pts}: probe's picture is not ffmpeg's ({candidates:?})"
            );
            // The plane MD5s cut the written picture at the sizes the probe printed.
            let (w, h) = f[3].split_once('x').unwrap();
            let (w, h): (usize, usize) = (w.parse().unwrap(), h.parse().unwrap());
            let bytes = if ext == "yuv420p" { 1 } else { 2 };
            let (luma, chroma) = (w * h * bytes, w.div_ceil(2) * h.div_ceil(2) * bytes);
            assert_eq!(raw.len(), luma + 2 * chroma, "{name} pts {pts}");
            assert_eq!(f[8], md5_hex(&raw[..luma]), "{name} pts {pts} y");
            assert_eq!(
                f[9],
                md5_hex(&raw[luma..luma + chroma]),
                "{name} pts {pts} u"
            );
            assert_eq!(f[10], md5_hex(&raw[luma + chroma..]), "{name} pts {pts} v");
            colours.insert(name.clone(), f[5].to_owned());
            decoded_total += 1;
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    assert!(
        decoded_total >= 150,
        "only {decoded_total} pictures decoded"
    );
    // How the render reads colour: from the VUI, or from colorInfo where the VUI is silent.
    assert_eq!(colours["hevc_hdr10"], "bt2020/pq/limited");
    assert_eq!(colours["hevc_hdr10_meta"], "bt2020/pq/limited");
    assert_eq!(colours["hevc_main10"], "bt601/sdr/limited");
    assert_eq!(colours["full_range"].split('/').nth(2), Some("full"));
}
