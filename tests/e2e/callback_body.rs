//! `capture.callback-body` (WIT 0.5.0), the pure formatter a host calls when a stream's capture
//! instance trapped with shots in flight: through the real component, for random settings and
//! outcomes on a real fixture, it must return exactly what `session.complete` returns.

use livesnap::runtime::{ErrorCode, Failure, KeyMode, Outcome, Settings};
use livesnap_tests::{fixture, read_tags, runtime, session_info};
use proptest::prelude::*;

fn outcome(stored: bool, w: u32, h: u32, code: u8, message: &str) -> Outcome {
    if stored {
        return Outcome::Stored((w, h));
    }
    let code = match code % 5 {
        0 => ErrorCode::DecodeFailed,
        1 => ErrorCode::UploadFailed,
        2 => ErrorCode::Timeout,
        3 => ErrorCode::LimitExceeded,
        _ => ErrorCode::UnsupportedStream,
    };
    Outcome::Failed(Failure {
        code,
        message: message.to_owned(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn callback_body_equals_what_complete_returns(
        interval_s in 1u32..6,
        overwrite in any::<bool>(),
        shortside in prop::option::of(1u32..2000),
        quality in prop::option::of(1u8..=10),
        alterurl in prop::option::of("[a-z:/.?=0-9]{0,40}"),
        outcomes in prop::collection::vec(
            (any::<bool>(), 1u32..4000, 1u32..4000, any::<u8>(), "[ -~]{0,30}"), 16),
    ) {
        let settings = Settings {
            interval_s,
            mode: if overwrite { KeyMode::Overwrite } else { KeyMode::Sequence },
            shortside_px: shortside,
            quality,
            bucket: "shots".into(),
            uniqname: "acme \"tv\"".into(),
            alterurl,
        };
        let info = session_info("baseline_360p");
        let mut capture = runtime().capture(&info, &settings).unwrap().unwrap();
        let mut shots = 0;
        for tag in read_tags(&fixture("baseline_360p")) {
            let Ok(livesnap::runtime::Action::Capture(shot)) =
                capture.push_tag(tag.tag_type, tag.timestamp_ms, &tag.body).unwrap()
            else {
                continue;
            };
            let (stored, w, h, code, message) = &outcomes[shots % outcomes.len()];
            let outcome = outcome(*stored, *w, *h, *code, message);
            let pure = runtime()
                .callback_body(&info, &settings, shot.seq, &shot.key, shot.unix_timestamp, &outcome)
                .unwrap()
                .unwrap();
            let body = capture.complete(shot.seq, &outcome).unwrap().unwrap();
            prop_assert_eq!(pure, body);
            shots += 1;
        }
        prop_assert!(shots >= 3, "only {} shots", shots);
    }
}

#[test]
fn callback_body_refuses_what_create_refuses() {
    let mut info = session_info("cam");
    info.stream = "../etc".into();
    let settings = livesnap_tests::settings(2);
    let refused = runtime()
        .callback_body(&info, &settings, 1, "k.jpg", 1, &Outcome::Stored((2, 2)))
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::LimitExceeded, "{refused:?}");
}
