//! Untrusted bytes never crash the host: random and mutated tags through the capture component,
//! due frames through the render component. A capture must answer with an error, never trap;
//! a render may fail (a trap becomes a DecodeFailed outcome) and the next one still works.

use livesnap::runtime::{Action, Outcome, Settings};
use livesnap_tests::{fixture, read_tags, runtime, session_info};
use proptest::prelude::*;

fn session() -> livesnap::runtime::CaptureInstance {
    let settings = Settings {
        shortside_px: Some(120),
        ..livesnap_tests::settings(1)
    };
    runtime()
        .capture(&session_info("hostile"), &settings)
        .unwrap()
        .unwrap()
}

/// A mutation of one tag body.
#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, xor: u8 },
    Truncate { keep: usize },
    Splice { at: usize, bytes: Vec<u8> },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 1u8..=255).prop_map(|(at, xor)| Mutation::Flip { at, xor }),
        1 => any::<usize>().prop_map(|keep| Mutation::Truncate { keep }),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(at, bytes)| Mutation::Splice { at, bytes }),
    ]
}

fn apply(body: &mut Vec<u8>, m: &Mutation) {
    if body.is_empty() {
        return;
    }
    match m {
        Mutation::Flip { at, xor } => {
            let i = at % body.len();
            body[i] ^= xor;
        }
        Mutation::Truncate { keep } => body.truncate(keep % body.len()),
        Mutation::Splice { at, bytes } => {
            let i = at % body.len();
            body.splice(i..i, bytes.iter().copied());
        }
    }
}

/// 48 cases per `cargo test`; `PROPTEST_CASES=N` for a longer run against hostile input.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn random_tags_never_trap_the_capture_instance(
        tags in prop::collection::vec(
            (prop_oneof![Just(8u8), Just(9u8), Just(18u8), any::<u8>()], any::<u32>(),
             prop_oneof![
                prop::collection::vec(any::<u8>(), 0..64),
                prop::collection::vec(any::<u8>(), 0..64).prop_map(|mut v| { v.splice(0..0, [0x17, 0x00, 0, 0, 0]); v }),
                prop::collection::vec(any::<u8>(), 0..64).prop_map(|mut v| { v.splice(0..0, [0x17, 0x01, 0, 0, 0, 0, 0, 0, 8]); v }),
                // Enhanced RTMP: IsExHeader with any frame/packet type and a known FourCC.
                (any::<u8>(), prop_oneof![Just(*b"hvc1"), Just(*b"avc1"), Just(*b"av01"), Just(*b"vp09"), any::<[u8; 4]>()],
                 prop::collection::vec(any::<u8>(), 0..64))
                    .prop_map(|(first, fourcc, rest)| [&[first | 0x80][..], &fourcc, &rest].concat()),
                // Legacy codec id 12 (HEVC in AVC's layout).
                prop::collection::vec(any::<u8>(), 0..64).prop_map(|mut v| { v.splice(0..0, [0x1c, 0x01, 0, 0, 0, 0, 0, 0, 8]); v }),
             ]),
            1..64),
    ) {
        let mut capture = session();
        for (tag_type, ts, body) in &tags {
            // Inner errors (malformed tags) are fine; an outer error is a trap.
            let _ = capture.push_tag(*tag_type, *ts, body).expect("capture must not trap");
        }
    }

    #[test]
    fn mutated_stream_never_crashes_capture_or_render(
        mutations in prop::collection::vec((0usize..40, mutation()), 1..12),
        hevc in any::<bool>(),
    ) {
        let rt = runtime();
        // odd_size (AVC) or hevc_main_bframes (Enhanced RTMP hvc1 with AAC): the first 40 tags
        // hold the sequence headers, the Metadata packet and the first I-frame.
        let name = if hevc { "hevc_main_bframes" } else { "odd_size" };
        let mut tags = read_tags(&fixture(name));
        tags.truncate(40);
        for (index, m) in &mutations {
            apply(&mut tags[*index].body, m);
        }
        let mut capture = session();
        let mut renderer = rt.renderer().unwrap();
        for tag in &tags {
            let action = capture.push_tag(tag.tag_type, tag.timestamp_ms, &tag.body).expect("capture must not trap");
            if let Ok(Action::Capture(shot)) = action {
                let outcome = match renderer.render(rt, &shot).expect("a fresh render instance") {
                    Ok(p) => Outcome::Stored((p.width_px, p.height_px)),
                    Err(f) => Outcome::Failed(f),
                };
                let body = capture.complete(shot.seq, &outcome).expect("no trap").expect("known seq");
                prop_assert!(body.starts_with(r#"{"status":"#), "{}", body);
            }
        }
        // The renderer still works after whatever happened above.
        let clean = read_tags(&fixture(name));
        let mut capture = session();
        let shot = clean
            .iter()
            .find_map(|t| match capture.push_tag(t.tag_type, t.timestamp_ms, &t.body).unwrap() {
                Ok(Action::Capture(shot)) => Some(shot),
                _ => None,
            })
            .unwrap();
        prop_assert!(renderer.render(rt, &shot).unwrap().is_ok());
    }
}
