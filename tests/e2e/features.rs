//! The optional session features through the real component (contract section 8): the session
//! index and storyboard (goldens, reviewed by hand), session events in order with the capture
//! callbacks, storyboard tiles against the stored pictures, and the blank / frozen guards on
//! `fixtures/guards.flv` (a fade to black, black, a frozen still, a dark scene that must stay).

use livesnap::features::Features;
use livesnap::runtime::{
    Action, Analysis, Outcome, SessionOptions, SkipReason, StoryboardSettings, Verdict,
};
use livesnap_tests::{
    fixture, options, psnr, read_tags, replay_into_temp, runtime, session_info, settings,
};
use proptest::prelude::*;
use serde_json::Value;
use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

const FOLDER: &str = "shots/record/live/high_720p/picture/1700000000000-7/";

fn all_features() -> Features {
    Features {
        index: true,
        index_every: 2,
        session_callbacks: true,
        skip_blank: false,
        skip_frozen: false,
        storyboard: Some(StoryboardSettings {
            tile_width_px: 160,
            columns: 2,
            rows: 1,
        }),
    }
}

fn read(r: &livesnap_tests::Replayed, object: &str) -> Vec<u8> {
    std::fs::read(r.out.join("objects").join(object)).unwrap()
}

/// Luma plane of a JPEG: (width, height, samples).
fn luma(jpeg: &[u8]) -> (usize, usize, Vec<u8>) {
    let mut d = JpegDecoder::new_with_options(
        ZCursor::new(jpeg),
        DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::Luma),
    );
    let pixels = d.decode().expect("a JPEG");
    let info = d.info().expect("decoded");
    (usize::from(info.width), usize::from(info.height), pixels)
}

#[test]
fn index_storyboard_and_session_events_of_a_replay() {
    let mut opts = options("high_720p");
    opts.interval_s = 4;
    opts.features = all_features();
    let r = replay_into_temp(opts).unwrap();
    let index = String::from_utf8(read(&r, &format!("{FOLDER}index.json"))).unwrap();
    let vtt = String::from_utf8(read(&r, &format!("{FOLDER}storyboard.vtt"))).unwrap();
    insta::assert_snapshot!("high_720p_index", index);
    insta::assert_snapshot!("high_720p_storyboard", vtt);

    // Session events first and last, the captures in between, all in seq order.
    let bodies: Vec<Value> = r
        .callbacks
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(bodies[0]["type"], "LiveSnapShotSession");
    assert_eq!(bodies[0]["event"], "started");
    let last = bodies.last().unwrap();
    assert_eq!(
        (&last["type"], &last["event"]),
        (&"LiveSnapShotSession".into(), &"ended".into())
    );
    assert_eq!(last["reason"], "end of file");
    assert_eq!(
        last["index"],
        format!("{}index.json", &FOLDER["shots/".len()..])
    );
    let captures = &bodies[1..bodies.len() - 1];
    assert!(captures.iter().all(|b| b["type"] == "LiveSnapShotCallBack"));
    assert_eq!(last["attempts"], captures.len());
    assert_eq!(last["stored"], r.summary.stored);

    // The index lists exactly what was called back, with the stored objects' sizes.
    let index: Value = serde_json::from_str(&index).unwrap();
    let entries = index["entries"].as_array().unwrap();
    assert_eq!(entries.len(), captures.len());
    for (entry, callback) in entries.iter().zip(captures) {
        assert_eq!(entry["taskid"], callback["taskid"]);
        assert_eq!(entry["key"], callback["keys"]);
        let stored = read(&r, &format!("shots/{}", entry["key"].as_str().unwrap()));
        assert_eq!(entry["bytes"], stored.len());
    }
    let last_clock = entries.last().unwrap()["clock_ms"].as_u64().unwrap();
    let ended = index["ended_ms"].as_u64().unwrap();
    assert!(ended >= 1_700_000_000_000 + last_clock && ended < 1_700_000_000_000 + 21_000);
    assert_eq!(index["end_reason"], "end of file");

    // Every tile matches its stored picture scaled the same way (luma PSNR).
    let cues: Vec<&str> = vtt.lines().filter(|l| l.contains("#xywh=")).collect();
    assert_eq!(cues.len(), entries.len());
    for (cue, entry) in cues.iter().zip(entries) {
        let (sheet, xywh) = cue.split_once("#xywh=").unwrap();
        let n: Vec<usize> = xywh.split(',').map(|v| v.parse().unwrap()).collect();
        let (sw, _, sheet_luma) = luma(&read(&r, &format!("{FOLDER}{sheet}")));
        let tile: Vec<u8> = (0..n[3])
            .flat_map(|row| {
                let at = (n[1] + row) * sw + n[0];
                sheet_luma[at..at + n[2]].to_vec()
            })
            .collect();
        let (w, h, stored) = luma(&read(
            &r,
            &format!("shots/{}", entry["key"].as_str().unwrap()),
        ));
        let scaled = livesnap_guest::scale::scale(
            livesnap_guest::render::Yuv420 {
                width: w as u32,
                height: h as u32,
                y: stored,
                u: vec![128; w.div_ceil(2) * h.div_ceil(2)],
                v: vec![128; w.div_ceil(2) * h.div_ceil(2)],
                full_range: true,
                matrix: livesnap_guest::color::Matrix::Bt601,
            },
            n[2] as u32,
            n[3] as u32,
        )
        .unwrap();
        let db = psnr(&tile, &scaled.y);
        assert!(db > 30.0, "{cue}: tile vs stored picture {db:.1} dB");
    }
}

#[test]
fn features_off_change_nothing_and_on_change_only_the_extras() {
    let plain = replay_into_temp(options("res_change")).unwrap();
    let mut opts = options("res_change");
    opts.features = all_features();
    let extra = replay_into_temp(opts).unwrap();
    let captures: Vec<&String> = extra
        .callbacks
        .iter()
        .filter(|b| b.contains("LiveSnapShotCallBack"))
        .collect();
    assert_eq!(captures, plain.callbacks.iter().collect::<Vec<_>>());
    for object in &plain.objects {
        assert_eq!(read(&plain, object), read(&extra, object), "{object}");
    }
    let added: Vec<&String> = extra
        .objects
        .iter()
        .filter(|o| !plain.objects.contains(o))
        .collect();
    assert!(
        added.iter().all(|o| o.ends_with("index.json")
            || o.ends_with("storyboard.vtt")
            || o.contains("/storyboard-")),
        "{added:?}"
    );
    // res_change goes from 640x360 to 1280x720: the same aspect, so one tile size throughout.
    assert!(added.iter().any(|o| o.ends_with("storyboard-1.jpg")));
}

/// Capture clocks (ms) of a replay of guards.flv at interval 1 with the given skips.
fn guard_captures(skip_blank: bool, skip_frozen: bool) -> (Vec<u64>, Value) {
    let mut opts = options("guards");
    opts.interval_s = 1;
    opts.features = Features {
        index: true,
        index_every: 10,
        skip_blank,
        skip_frozen,
        ..Features::default()
    };
    let r = replay_into_temp(opts).unwrap();
    let folder = "shots/record/live/guards/picture/1700000000000-7/index.json";
    let index: Value = serde_json::from_slice(&read(&r, folder)).unwrap();
    let clocks = index["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["clock_ms"].as_u64().unwrap())
        .collect();
    // Task ids stay contiguous: a skipped shot gives its seq to the next one.
    for (i, body) in r.callbacks.iter().enumerate() {
        assert!(body.contains(&format!("-7/{}\"", i + 1)), "{body}");
    }
    (clocks, index)
}

#[test]
fn blank_and_frozen_pictures_are_skipped_and_dark_scenes_kept() {
    // guards.flv: I-frames every 2 s; 0-10 s a scene fading to black from 6 s, 10-16 s black,
    // 16-26 s a frozen still, 26-36 s a dark moving scene.
    let all: Vec<u64> = (0..18).map(|i| i * 2000).collect();
    let (plain, _) = guard_captures(false, false);
    assert_eq!(plain, all);
    let (blank, index) = guard_captures(true, false);
    let not_black: Vec<u64> = all
        .iter()
        .copied()
        .filter(|c| !(10_000..16_000).contains(c))
        .collect();
    assert_eq!(
        blank, not_black,
        "black I-frames skipped, the fade and the dark scene kept"
    );
    assert_eq!(index["skipped_blank"], 3);
    let (frozen, index) = guard_captures(false, true);
    let moving: Vec<u64> = all
        .iter()
        .copied()
        .filter(|c| !(12_000..16_000).contains(c) && !(18_000..26_000).contains(c))
        .collect();
    assert_eq!(
        frozen, moving,
        "repeats of the black frame and of the still skipped"
    );
    assert_eq!(index["skipped_frozen"], 6);
    let (both, _) = guard_captures(true, true);
    let wanted: Vec<u64> = moving
        .iter()
        .copied()
        .filter(|c| !(10_000..16_000).contains(c))
        .collect();
    assert_eq!(both, wanted);
}

#[test]
fn dark_scenes_measure_far_above_the_blank_threshold() {
    // Decode every I-frame of the dark part and of the black part and look at what the guard saw.
    let mut r = runtime().renderer().unwrap();
    for shot in livesnap_tests::keyframes("guards") {
        let rendered = r.render_shot(runtime(), &shot, None).unwrap().unwrap();
        let black = (10_000..16_000).contains(&shot.clock_ms);
        assert_eq!(
            rendered.analysis.blank, black,
            "I-frame at {} ms",
            shot.clock_ms
        );
    }
}

/// Independent model of the skip rule: the first I-frame at or after each due time whose
/// picture is not blank is captured.
fn model(clocks: &[u64], blank: &[bool], interval_ms: u64) -> Vec<u64> {
    let mut last: Option<u64> = None;
    let mut out = Vec::new();
    for (&c, &b) in clocks.iter().zip(blank) {
        if last.is_none_or(|l| c >= l + interval_ms) && !b {
            out.push(c);
            last = Some(c);
        }
    }
    out
}

/// 15 I-frames, one every 2 s.
const FIXTURE: &str = "baseline_360p";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Random blank verdicts on the real I-frames of a fixture, judged by the real component:
    /// what is captured equals the model, seqs stay contiguous.
    #[test]
    fn skip_blank_follows_the_model(
        blanks in prop::collection::vec(any::<bool>(), 64),
        interval_s in 1u32..5,
    ) {
        let options = SessionOptions { skip_blank: true, ..SessionOptions::none() };
        // Every I-frame of the fixture (interval 1 s, all kept), and a verdict for each.
        let all: Vec<u64> = livesnap_tests::keyframes(FIXTURE).iter().map(|s| s.clock_ms).collect();
        let verdicts: Vec<bool> = (0..all.len()).map(|i| blanks[i % blanks.len()]).collect();
        let mut capture = runtime()
            .capture_with(&session_info(FIXTURE), &settings(interval_s), &options)
            .unwrap()
            .unwrap();
        let mut captured = Vec::new();
        let mut next_seq = 1;
        for tag in read_tags(&fixture(FIXTURE)) {
            if let Ok(Action::Capture(shot)) =
                capture.push_tag(tag.tag_type, tag.timestamp_ms, &tag.body).unwrap()
            {
                prop_assert_eq!(shot.seq, next_seq);
                let at = all.iter().position(|&c| c == shot.clock_ms).expect("an I-frame");
                let blank = verdicts[at];
                let analysis = Analysis {
                    jpeg_bytes: 1,
                    width_px: 2,
                    height_px: 2,
                    blank,
                    signature: vec![0; 256],
                    tile: None,
                };
                match capture.judge(shot.seq, &analysis).unwrap().unwrap() {
                    Verdict::Skip(reason) => {
                        prop_assert!(blank);
                        prop_assert_eq!(reason, SkipReason::Blank);
                    }
                    Verdict::Keep(_) => {
                        prop_assert!(!blank);
                        capture.complete(shot.seq, &Outcome::Stored((2, 2))).unwrap().unwrap();
                        captured.push(shot.clock_ms);
                        next_seq += 1;
                    }
                }
            }
        }
        prop_assert!(all.len() >= 10);
        prop_assert_eq!(&captured, &model(&all, &verdicts, u64::from(interval_s) * 1000));
    }
}
