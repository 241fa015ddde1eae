//! The container-neutral entry (`session.push-frame`, WIT 0.6.0) against `push-tag`: an FLV
//! stream pushed as tags and the same frames pushed as coded frames (parameter sets out of band
//! with every frame, once per sequence header, or in band) give the same actions, callback
//! bodies and JPEG bytes, on every fixture, through the real component.

use livesnap::runtime::{Action, Codec, CodedFrame, Outcome, Settings, Shot};
use livesnap_guest::flv::VideoCodec;
use livesnap_guest::frame::{FlvToFrames, Input, SetDelivery, record_sets};
use livesnap_tests::{fixture, fixture_names, read_tags, runtime, session_info, settings};
use proptest::prelude::*;
use std::collections::HashMap;

/// What one session did: per pushed tag, the action (or the error's code and message), and
/// per capture the callback body.
#[derive(Debug, Default)]
struct Run {
    actions: Vec<Result<Action, String>>,
    callbacks: Vec<String>,
}

fn codec(c: VideoCodec) -> Codec {
    match c {
        VideoCodec::Hevc => Codec::Hevc,
        _ => Codec::Avc,
    }
}

/// Push fixture `name` into a fresh session with `settings`, as tags (`delivery` `None`) or as
/// frames. Every shot is completed as stored with a fixed size, so the bodies depend only on
/// the session.
fn run(name: &str, settings: &Settings, delivery: Option<SetDelivery>) -> Run {
    let mut capture = runtime()
        .capture(&session_info(name), settings)
        .unwrap()
        .unwrap();
    let mut out = Run::default();
    let mut frames = delivery.map(FlvToFrames::new);
    for tag in read_tags(&fixture(name)) {
        let input = match &mut frames {
            Some(f) => f.convert(tag.tag_type, tag.timestamp_ms, &tag.body),
            None => Input::Tag {
                tag_type: tag.tag_type,
                timestamp_ms: tag.timestamp_ms,
                body: tag.body,
            },
        };
        let result = match input {
            // A sequence header taken in by the converter: no call (pushed as a tag it answers
            // `none`, which the comparison leaves out).
            Input::Nothing => continue,
            Input::Tag {
                tag_type,
                timestamp_ms,
                body,
            } => capture.push_tag(tag_type, timestamp_ms, &body).unwrap(),
            Input::Frame(f) => capture
                .push_frame(&CodedFrame {
                    codec: codec(f.codec),
                    dts_ms: f.dts_ms,
                    pts_ms: f.pts_ms,
                    parameter_sets: f.parameter_sets,
                    nal_units: f.nal_units,
                    damaged: f.damaged,
                })
                .unwrap(),
        };
        if let Ok(Action::Capture(shot)) = &result {
            let body = capture
                .complete(shot.seq, &Outcome::Stored((640, 360)))
                .unwrap()
                .unwrap();
            out.callbacks.push(body);
        }
        if let Ok(Action::Refused(body)) = &result {
            out.callbacks.push(body.clone());
        }
        out.actions
            .push(result.map_err(|f| format!("{:?}: {}", f.code, f.message)));
    }
    out
}

/// The actions that are not `none` (the frame path makes no call for a sequence header).
fn significant(run: &Run) -> Vec<&Result<Action, String>> {
    run.actions
        .iter()
        .filter(|a| !matches!(a, Ok(Action::None)))
        .collect()
}

/// The parameter sets a shot's configuration record holds.
fn sets(shot: &Shot) -> Vec<Vec<u8>> {
    let c = match shot.codec {
        Codec::Avc => VideoCodec::Avc,
        Codec::Hevc => VideoCodec::Hevc,
    };
    record_sets(c, &shot.config)
        .expect("a shot's record parses")
        .0
        .into_iter()
        .filter(|n| is_parameter_set(shot.codec, n))
        .collect()
}

fn is_parameter_set(codec: Codec, nal: &[u8]) -> bool {
    match codec {
        Codec::Avc => matches!(nal.first().map(|b| b & 0x1f), Some(7 | 8)),
        Codec::Hevc => matches!(nal.first().map(|b| (b >> 1) & 0x3f), Some(32..=34)),
    }
}

/// Rendered JPEGs (or failures) by (configuration record, access unit).
type JpegCache = HashMap<(Vec<u8>, Vec<u8>), Result<Vec<u8>, String>>;

/// JPEG bytes (or the failure) of a shot, rendered once per distinct configuration and frame.
fn jpeg(cache: &mut JpegCache, shot: &Shot) -> Result<Vec<u8>, String> {
    cache
        .entry((shot.config.clone(), shot.access_unit.clone()))
        .or_insert_with(|| {
            let mut renderer = runtime().renderer().unwrap();
            renderer
                .render(runtime(), shot)
                .unwrap()
                .map(|p| p.jpeg)
                .map_err(|f| format!("{:?}: {}", f.code, f.message))
        })
        .clone()
}

/// Compare the tag run with a frame run of the same fixture; panics with the first difference.
fn assert_same(name: &str, delivery: SetDelivery, tags: &Run, frames: &Run, render: bool) {
    let mut cache = HashMap::new();
    assert_eq!(
        tags.callbacks, frames.callbacks,
        "{name} {delivery:?}: callbacks"
    );
    let (a, b) = (significant(tags), significant(frames));
    assert_eq!(a.len(), b.len(), "{name} {delivery:?}: number of actions");
    for (i, (a, b)) in a.iter().zip(&b).enumerate() {
        let ctx = format!("{name} {delivery:?}: action {i}");
        match (a, b) {
            (Ok(Action::Capture(x)), Ok(Action::Capture(y))) => {
                assert_eq!(
                    (x.seq, &x.key, x.unix_timestamp, x.clock_ms, x.pts_ms),
                    (y.seq, &y.key, y.unix_timestamp, y.clock_ms, y.pts_ms),
                    "{ctx}"
                );
                assert_eq!(
                    format!("{:?}", (x.codec, x.shortside_px, x.jpeg_quality, x.color)),
                    format!("{:?}", (y.codec, y.shortside_px, y.jpeg_quality, y.color)),
                    "{ctx}"
                );
                // The frame path's record is built from the same parameter sets.
                let (xs, ys) = (sets(x), sets(y));
                assert!(
                    ys.iter().all(|s| xs.contains(s)) && xs.iter().all(|s| ys.contains(s)),
                    "{ctx}: parameter sets differ"
                );
                if delivery == SetDelivery::InBand {
                    assert!(
                        y.access_unit.ends_with(&x.access_unit),
                        "{ctx}: access unit"
                    );
                } else {
                    assert_eq!(x.access_unit, y.access_unit, "{ctx}: access unit");
                }
                if render {
                    assert_eq!(jpeg(&mut cache, x), jpeg(&mut cache, y), "{ctx}: jpeg");
                }
            }
            // The bindings' types have no `PartialEq`: their Debug forms show every field.
            (a, b) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "{ctx}"),
        }
    }
}

const DELIVERIES: [SetDelivery; 3] = [
    SetDelivery::EveryFrame,
    SetDelivery::OnChange,
    SetDelivery::InBand,
];

#[test]
fn every_fixture_gives_the_same_captures_and_jpegs_through_either_entry() {
    let mut compared = 0;
    for name in fixture_names() {
        // Interval 1 s: every I-frame of the stream is a capture to compare.
        let settings = settings(1);
        let tags = run(&name, &settings, None);
        for delivery in DELIVERIES {
            let frames = run(&name, &settings, Some(delivery));
            assert_same(&name, delivery, &tags, &frames, true);
            compared += significant(&tags).len();
        }
    }
    assert!(compared > 100, "only {compared} actions compared");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random fixture, interval, scaling, quality, key mode and parameter-set delivery.
    #[test]
    fn frames_and_tags_agree_under_any_settings(
        index in any::<prop::sample::Index>(),
        interval_s in 1u32..=15,
        shortside in prop::option::of(16u32..400),
        quality in prop::option::of(1u8..=10),
        overwrite in any::<bool>(),
        delivery in prop::sample::select(DELIVERIES.to_vec()),
    ) {
        let names = fixture_names();
        let name = index.get(&names);
        let mut settings = settings(interval_s);
        settings.shortside_px = shortside;
        settings.quality = quality;
        if overwrite {
            settings.mode = livesnap::runtime::KeyMode::Overwrite;
        }
        let tags = run(name, &settings, None);
        let frames = run(name, &settings, Some(delivery));
        assert_same(name, delivery, &tags, &frames, true);
    }
}

#[test]
fn a_damaged_iframe_fails_its_capture_and_is_never_kept_or_decoded() {
    // baseline_360p: I-frames every 2 s. At interval 2 the I-frame at 2 s arrives damaged (its
    // transport lost packets): that attempt fails with DecodeFailed and starts the interval, so
    // the next capture is the I-frame at 4 s; the snapshot's kept I-frame stays the one at 0 s.
    let mut capture = runtime()
        .capture(&session_info("damaged"), &settings(2))
        .unwrap()
        .unwrap();
    capture.keep_last_iframe(true).unwrap();
    let mut frames = FlvToFrames::new(SetDelivery::EveryFrame);
    let mut outcomes = Vec::new();
    for tag in read_tags(&fixture("baseline_360p")) {
        let Input::Frame(f) = frames.convert(tag.tag_type, tag.timestamp_ms, &tag.body) else {
            continue;
        };
        let frame = CodedFrame {
            codec: codec(f.codec),
            dts_ms: f.dts_ms,
            pts_ms: f.pts_ms,
            parameter_sets: f.parameter_sets,
            nal_units: f.nal_units,
            damaged: (2000..2040).contains(&f.dts_ms),
        };
        match capture.push_frame(&frame).unwrap().unwrap() {
            Action::None => {}
            Action::Capture(shot) => {
                outcomes.push((shot.clock_ms, "captured".to_owned()));
                capture
                    .complete(shot.seq, &Outcome::Stored((640, 360)))
                    .unwrap()
                    .unwrap();
            }
            Action::Refused(body) => {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert!(
                    v["errmsg"].as_str().unwrap().contains("incomplete"),
                    "{body}"
                );
                outcomes.push((f.dts_ms.into(), v["code"].as_str().unwrap().to_owned()));
            }
        }
        if f.dts_ms == 3000 {
            let kept = capture.last_iframe().unwrap().unwrap();
            assert_eq!(kept.clock_ms, 0, "the damaged I-frame is not kept");
        }
        if f.dts_ms >= 6000 {
            break;
        }
    }
    assert_eq!(
        outcomes,
        vec![
            (0, "captured".to_owned()),
            (2000, "DecodeFailed".to_owned()),
            (4000, "captured".to_owned()),
            (6000, "captured".to_owned()),
        ]
    );
}
