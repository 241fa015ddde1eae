//! The newest I-frame a session keeps for on-demand snapshots (`keep-last-iframe`,
//! `last-iframe`), through the real component on every fixture: after each tag it is the newest
//! I-frame of ffmpeg's reference list, it is the very frame a due capture hands out, and keeping
//! it changes nothing that is captured or called back.

use crate::model::reference_iframes;
use livesnap::runtime::{Action, Outcome};
use livesnap_tests::{fixture, fixture_names, read_tags, runtime, session_info, settings};

#[test]
fn the_kept_iframe_is_the_newest_reference_iframe_and_keeping_changes_no_capture() {
    for name in fixture_names() {
        let refs = reference_iframes(&name);
        let start = |keep: bool| {
            let mut c = runtime()
                .capture(&session_info(&name), &settings(2))
                .unwrap()
                .unwrap();
            c.keep_last_iframe(keep).unwrap();
            c
        };
        let (mut kept, mut plain) = (start(true), start(false));
        let mut newest: Option<(usize, i64)> = None;
        let mut renderable = true;
        let mut seen = 0u64;
        for (i, tag) in read_tags(&fixture(&name)).iter().enumerate() {
            let a = kept
                .push_tag(tag.tag_type, tag.timestamp_ms, &tag.body)
                .unwrap();
            let b = plain
                .push_tag(tag.tag_type, tag.timestamp_ms, &tag.body)
                .unwrap();
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "{name} tag {i}");
            if let Some(r) = refs.iter().find(|r| r.tag == i) {
                newest = Some((i, r.pts_ms));
                seen += 1;
            }
            if matches!(a, Ok(Action::Refused(_))) {
                // A configuration the component will not render (e.g. HEVC 4:4:4) is not kept.
                renderable = false;
            }
            let last = kept.last_iframe().unwrap();
            assert!(
                plain.last_iframe().unwrap().is_none(),
                "{name}: kept while off"
            );
            if let Ok(Action::Capture(shot)) = &a {
                let frame = last.as_ref().expect("a due I-frame is kept");
                assert_eq!(
                    (
                        &frame.access_unit,
                        &frame.config,
                        frame.clock_ms,
                        frame.pts_ms
                    ),
                    (&shot.access_unit, &shot.config, shot.clock_ms, shot.pts_ms),
                    "{name} tag {i}: the kept frame is the captured one"
                );
                let x = kept
                    .complete(shot.seq, &Outcome::Stored((1, 1)))
                    .unwrap()
                    .unwrap();
                let y = plain
                    .complete(shot.seq, &Outcome::Stored((1, 1)))
                    .unwrap()
                    .unwrap();
                assert_eq!(x, y, "{name}: the same callback body");
            }
            if !renderable {
                assert!(
                    last.is_none(),
                    "{name} tag {i}: an unrenderable frame was kept"
                );
                continue;
            }
            match (newest, &last) {
                (None, None) => {}
                (Some((at, pts)), Some(frame)) => {
                    assert_eq!(frame.pts_ms, pts, "{name} tag {i}: newest is tag {at}");
                    assert_eq!(frame.number, seen, "{name} tag {i}");
                }
                (want, got) => panic!(
                    "{name} tag {i}: reference newest I-frame {want:?}, kept {:?}",
                    got.as_ref().map(|f| (f.number, f.pts_ms))
                ),
            }
        }
        // Turning it off drops the frame.
        kept.keep_last_iframe(false).unwrap();
        assert!(kept.last_iframe().unwrap().is_none(), "{name}");
    }
}
