//! Property tests of the capture rule through the real component: random timestamp and keyframe
//! sequences (gaps, backward jumps, bursts, 32-bit wrap, audio first, lying FLV keyframe flags)
//! against the independent model in `model.rs`.

use crate::model::{ModelTag, expected_captures};
use livesnap::runtime::{Action, Outcome};
use livesnap_tests::{START_MS, fixture, read_tags, runtime, session_info, settings};
use proptest::prelude::*;
use std::sync::OnceLock;

/// Real tag bodies from `baseline_360p.flv`: its AVC sequence header, first IDR and a P-frame.
struct Bodies {
    seq_header: Vec<u8>,
    idr: Vec<u8>,
    p: Vec<u8>,
}

fn bodies() -> &'static Bodies {
    static BODIES: OnceLock<Bodies> = OnceLock::new();
    BODIES.get_or_init(|| {
        let tags = read_tags(&fixture("baseline_360p"));
        let video: Vec<_> = tags.iter().filter(|t| t.tag_type == 9).collect();
        // fixtures/ref/baseline_360p.tags.tsv: seq header, then IDR (nals 6,5), then P (nals 1).
        Bodies {
            seq_header: video[0].body.clone(),
            idr: video[1].body.clone(),
            p: video[2].body.clone(),
        }
    })
}

/// How the next video frame's timestamp moves.
#[derive(Debug, Clone)]
enum Step {
    /// Forward by this many ms (0 = same timestamp: a burst).
    Forward(u32),
    /// Backward by this many ms (encoder restart, wrap).
    Back(u32),
}

#[derive(Debug, Clone)]
struct Frame {
    step: Step,
    iframe: bool,
    /// The FLV keyframe flag: a hint that may lie.
    flagged_key: bool,
}

fn frame() -> impl Strategy<Value = Frame> {
    let step = prop_oneof![
        8 => (0u32..200).prop_map(Step::Forward),
        2 => (0u32..15_000).prop_map(Step::Forward),
        1 => (1u32..30_000).prop_map(Step::Back),
    ];
    (step, prop::bool::weighted(0.3), any::<bool>()).prop_map(|(step, iframe, flagged_key)| Frame {
        step,
        iframe,
        flagged_key,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn captures_follow_the_interval_rule(
        start in prop_oneof![0u32..100_000, (u32::MAX - 60_000)..u32::MAX],
        audio_lead in prop::option::of(0u32..2_000),
        interval_s in 1u32..=30,
        frames in prop::collection::vec(frame(), 1..120),
    ) {
        let b = bodies();
        let mut capture = runtime().capture(&session_info("prop"), &settings(interval_s)).unwrap().unwrap();
        let mut model = Vec::new();
        let mut push = |tag_type: u8, ts: u32, body: &[u8], iframe: bool| {
            model.push(ModelTag { video: tag_type == 9, ts, iframe });
            capture.push_tag(tag_type, ts, body).expect("no trap").expect("valid tag")
        };
        // An audio tag may come first, stamped after the video start: the clock starts there.
        if let Some(lead) = audio_lead {
            push(8, start.wrapping_add(lead), &[0xaf, 0x01, 0x21], false);
        }
        push(9, start, &b.seq_header, false);
        let mut ts = start;
        let mut shots = Vec::new();
        for f in &frames {
            ts = match f.step {
                Step::Forward(d) => ts.wrapping_add(d),
                Step::Back(d) => ts.wrapping_sub(d),
            };
            let mut body = if f.iframe { b.idr.clone() } else { b.p.clone() };
            body[0] = if f.flagged_key { 0x17 } else { 0x27 };
            if let Action::Capture(shot) = push(9, ts, &body, f.iframe) {
                shots.push(shot);
            }
        }
        let expected = expected_captures(&model, u64::from(interval_s) * 1000);
        let got: Vec<u64> = shots.iter().map(|s| s.clock_ms).collect();
        prop_assert_eq!(&got, &expected);
        // First I-frame always captured.
        if frames.iter().any(|f| f.iframe) {
            prop_assert!(!shots.is_empty());
        }
        // Seqs count 1, 2, …; keys and timestamps strictly increase, so keys are unique.
        for (i, pair) in shots.windows(2).enumerate() {
            prop_assert_eq!(pair[1].seq, pair[0].seq + 1, "seq after {}", i);
            prop_assert!(pair[1].unix_timestamp >= pair[0].unix_timestamp + u64::from(interval_s));
            prop_assert!(pair[1].key > pair[0].key || pair[1].key.len() > pair[0].key.len());
            prop_assert_ne!(&pair[1].key, &pair[0].key);
        }
        for shot in &shots {
            prop_assert_eq!(shot.unix_timestamp, (START_MS + shot.clock_ms) / 1000);
            let body = capture.complete(shot.seq, &Outcome::Stored((640, 360))).unwrap().unwrap();
            let taskid = format!("\"taskid\":\"live/prop/{START_MS}-7/{}\"", shot.seq);
            prop_assert!(body.contains(&taskid), "{}", body);
        }
    }
}

#[test]
fn keyframe_flag_is_only_a_hint() {
    let b = bodies();
    let mut capture = runtime()
        .capture(&session_info("hint"), &settings(1))
        .unwrap()
        .unwrap();
    capture.push_tag(9, 0, &b.seq_header).unwrap().unwrap();
    // A P-frame flagged as keyframe is not captured; an IDR flagged inter is.
    let mut p = b.p.clone();
    p[0] = 0x17;
    assert!(matches!(
        capture.push_tag(9, 0, &p).unwrap().unwrap(),
        Action::None
    ));
    let mut idr = b.idr.clone();
    idr[0] = 0x27;
    assert!(
        matches!(capture.push_tag(9, 40, &idr).unwrap().unwrap(), Action::Capture(s) if s.clock_ms == 40)
    );
}
