//! Every fixture replayed through the component: golden callback lines and object keys (insta,
//! reviewed by hand against DESIGN.md), plus rule checks that hold whatever the snapshot says.

use crate::model::{expected_captures, fixture_tags};
use livesnap_tests::{START_MS, fixture_names, options, replay_into_temp};
use serde_json::Value;

/// The callback fields in contract order (DESIGN.md "Callback"); `?` marks optional ones.
const FIELDS: [&str; 18] = [
    "status",
    "taskid",
    "desc",
    "keys",
    "code",
    "type",
    "errnum",
    "errmsg",
    "uniqname",
    "stream_name",
    "timestamp",
    "bucket",
    "width",
    "height",
    "?shortside",
    "?quality",
    "dstpath",
    "?alterurl",
];

/// Check one callback body's shape; returns it parsed.
fn check_shape(body: &str) -> serde_json::Map<String, Value> {
    // Field order is part of the contract: read the keys in wire order.
    let keys: Vec<String> = {
        let mut de = serde_json::Deserializer::from_str(body);
        let ordered: OrderedKeys =
            serde::Deserialize::deserialize(&mut de).expect("callback is a JSON object");
        ordered.0
    };
    let mut expected = FIELDS.iter().filter(|f| {
        let name = f.trim_start_matches('?');
        !f.starts_with('?') || keys.iter().any(|k| k == name)
    });
    for key in &keys {
        assert_eq!(
            Some(key.as_str()),
            expected.next().map(|f| f.trim_start_matches('?')),
            "field order in {body}"
        );
    }
    assert!(expected.next().is_none(), "missing fields in {body}");
    serde_json::from_str(body).expect("callback is JSON")
}

/// Object keys in the order they appear (serde_json's map would sort them).
struct OrderedKeys(Vec<String>);

impl<'de> serde::Deserialize<'de> for OrderedKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OrderedKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<OrderedKeys, A::Error> {
                let mut keys = Vec::new();
                while let Some((k, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                    keys.push(k);
                }
                Ok(OrderedKeys(keys))
            }
        }
        d.deserialize_map(V)
    }
}

/// Replay `name` with the test defaults and check every rule that does not need the snapshot.
fn replay_and_check(name: &str) -> livesnap_tests::Replayed {
    let mut opts = options(name);
    // The HEVC and AV1 fixtures are short (6-12 s): a 2 s interval captures most keyframes.
    if name.starts_with("hevc_") || name.starts_with("av1_") {
        opts.interval_s = 2;
    }
    let interval_ms = u64::from(opts.interval_s) * 1000;
    let r = replay_into_temp(opts).expect("fixture replays");
    let expected_clocks = expected_captures(&fixture_tags(name), interval_ms);
    assert_eq!(
        r.callbacks.len(),
        expected_clocks.len(),
        "{name}: one callback per capture the rule makes; got {:#?}",
        r.callbacks
    );
    let mut stored_keys = Vec::new();
    for (i, (body, clock)) in r.callbacks.iter().zip(&expected_clocks).enumerate() {
        let cb = check_shape(body);
        let seq = i + 1;
        assert_eq!(
            cb["taskid"],
            format!("live/{name}/{START_MS}-7/{seq}"),
            "{body}"
        );
        assert_eq!(
            cb["timestamp"],
            (START_MS + clock) / 1000,
            "{name}: capture {seq} at clock {clock}"
        );
        let key = format!(
            "record/live/{name}/picture/{START_MS}-7/{name}-{}.jpg",
            (START_MS + clock) / 1000
        );
        assert_eq!(cb["keys"], key.as_str());
        assert_eq!(cb["type"], "LiveSnapShotCallBack");
        assert_eq!(
            (cb["uniqname"].as_str(), cb["bucket"].as_str()),
            (Some("acme"), Some("shots"))
        );
        assert_eq!(cb["stream_name"], name);
        match cb["status"].as_u64() {
            Some(3) => {
                assert_eq!(
                    (
                        cb["code"].as_str(),
                        cb["errnum"].as_u64(),
                        cb["errmsg"].as_str()
                    ),
                    (Some("OK"), Some(0), Some(""))
                );
                assert_eq!(cb["dstpath"], key.as_str());
                let jpeg = std::fs::read(r.out.join("objects/shots").join(&key))
                    .expect("stored object exists");
                let mut decoder = zune_jpeg::JpegDecoder::new(std::io::Cursor::new(&jpeg));
                decoder.decode_headers().expect("stored object is a JPEG");
                let (w, h) = decoder.dimensions().expect("jpeg has dimensions");
                assert_eq!(
                    (cb["width"].as_u64(), cb["height"].as_u64()),
                    (Some(w as u64), Some(h as u64))
                );
                stored_keys.push(format!("shots/{key}"));
            }
            Some(4) => {
                assert_eq!(cb["dstpath"], "");
                assert_eq!(
                    (cb["width"].as_u64(), cb["height"].as_u64()),
                    (Some(0), Some(0))
                );
                assert_ne!(cb["errnum"], 0);
                assert!(!cb["errmsg"].as_str().unwrap_or_default().is_empty());
            }
            other => panic!("status {other:?} in {body}"),
        }
    }
    stored_keys.sort();
    assert_eq!(
        r.objects, stored_keys,
        "{name}: exactly the stored pictures are on disk"
    );
    r
}

fn snapshot(name: &str, r: &livesnap_tests::Replayed) {
    insta::with_settings!({ prepend_module_to_snapshot => false, omit_expression => true }, {
        insta::assert_snapshot!(format!("{name}__callbacks"), r.callbacks.join("\n"));
        insta::assert_snapshot!(format!("{name}__keys"), r.objects.join("\n"));
    });
}

/// One test per fixture; `every_fixture_has_a_snapshot_test` fails when a fixture is missing here.
macro_rules! fixture_tests {
    ($($name:ident),* $(,)?) => {
        const TESTED: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                let r = replay_and_check(stringify!($name));
                snapshot(stringify!($name), &r);
            }
        )*
    };
}

fixture_tests!(
    audio_interleaved,
    av1_unsupported,
    baseline_360p,
    camera_gop8,
    cavlc_8x8,
    cqm_jvt,
    damaged_keyframe,
    fake_interlaced,
    full_range,
    gray_400,
    guards,
    hevc_1080p,
    hevc_damaged_keyframe,
    hevc_hdr10,
    hevc_hdr10_meta,
    hevc_irregular,
    hevc_legacy12,
    hevc_main10,
    hevc_main_bframes,
    hevc_odd_size,
    hevc_open_gop,
    hevc_res_change,
    hevc_rext444,
    high_1080p,
    high_720p,
    long_gop,
    main_bframes,
    mbaff_bff,
    mbaff_tff,
    midgop_start,
    odd_size,
    open_gop,
    pcm_cabac,
    pcm_cavlc,
    res_change,
    slice_per_mb_1080p,
    slices68_1080p,
    ts_jump_back,
);

#[test]
fn every_fixture_has_a_snapshot_test() {
    assert_eq!(
        fixture_names(),
        TESTED,
        "add new fixtures to fixture_tests!"
    );
}

#[test]
fn damaged_keyframe_is_a_decode_failed_callback_and_the_stream_goes_on() {
    let mut opts = options("damaged_keyframe");
    opts.interval_s = 2;
    let r = replay_into_temp(opts).unwrap();
    let statuses: Vec<Value> = r
        .callbacks
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    // I-frames every 2 s; the one at 6 s (the 4th) has its slice data destroyed.
    let failed: Vec<&Value> = statuses.iter().filter(|c| c["status"] == 4).collect();
    assert_eq!(failed.len(), 1, "{:#?}", r.callbacks);
    assert_eq!(failed[0]["code"], "DecodeFailed");
    assert_eq!(failed[0]["errnum"], 1001);
    assert_eq!(failed[0]["timestamp"], (START_MS + 6000) / 1000);
    assert!(
        statuses.len() >= 10
            && statuses.iter().filter(|c| c["status"] == 3).count() == statuses.len() - 1
    );
    assert_eq!(r.summary.failed, 1);
}

#[test]
fn av1_gets_an_unsupported_stream_callback_at_each_due_keyframe() {
    let r = replay_and_check("av1_unsupported");
    assert_eq!(r.callbacks.len(), 3, "{:#?}", r.callbacks);
    for body in &r.callbacks {
        let cb: Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            (cb["status"].as_u64(), cb["code"].as_str()),
            (Some(4), Some("UnsupportedStream"))
        );
        assert!(
            cb["errmsg"]
                .as_str()
                .unwrap()
                .starts_with("av1 video is not supported"),
            "{body}"
        );
    }
    assert!(r.objects.is_empty());
    assert_eq!(r.summary.tag_errors, 0);
}

#[test]
fn hevc_damaged_keyframe_is_a_decode_failed_callback_and_the_stream_goes_on() {
    let r = replay_and_check("hevc_damaged_keyframe");
    let cbs: Vec<Value> = r
        .callbacks
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    // IDRs at 0, 2, 4, 6 s; the third (4 s) lost its slice data.
    let codes: Vec<_> = cbs
        .iter()
        .map(|c| c["code"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        codes,
        ["OK", "OK", "DecodeFailed", "OK"],
        "{:#?}",
        r.callbacks
    );
    assert_eq!(cbs[2]["timestamp"], (START_MS + 4000) / 1000);
}

#[test]
fn hevc_non_irap_all_i_pictures_are_captured_though_not_flagged_keyframes() {
    // hevc_irregular.flv: after the first IDR every I picture is a TRAIL_R with FLV frame type 2.
    let r = replay_and_check("hevc_irregular");
    let stamps: Vec<u64> = r
        .callbacks
        .iter()
        .map(|b| {
            serde_json::from_str::<Value>(b).unwrap()["timestamp"]
                .as_u64()
                .unwrap()
                - START_MS / 1000
        })
        .collect();
    // I-frames (dts) 0, 1.24, 2.04, 5.64, 6.24, 9.04, 11.44 s; interval 2 s.
    assert_eq!(stamps, [0, 2, 5, 9, 11]);
    assert!(r.callbacks.iter().all(|b| b.contains("\"status\":3")));
}

#[test]
fn hevc_rext_is_refused_naming_the_format() {
    let r = replay_and_check("hevc_rext444");
    assert!(!r.callbacks.is_empty());
    for body in &r.callbacks {
        let cb: Value = serde_json::from_str(body).unwrap();
        assert_eq!(cb["code"], "UnsupportedStream");
        assert!(cb["errmsg"].as_str().unwrap().contains("4:4:4"), "{body}");
    }
}

#[test]
fn hevc_main10_and_legacy_codec_id_12_match_their_enhanced_twins_in_size() {
    for (name, size) in [
        ("hevc_main10", (640, 360)),
        ("hevc_legacy12", (640, 360)),
        ("hevc_odd_size", (642, 362)),
    ] {
        let r = replay_and_check(name);
        for body in &r.callbacks {
            let cb: Value = serde_json::from_str(body).unwrap();
            assert_eq!(
                (cb["width"].as_u64(), cb["height"].as_u64()),
                (Some(size.0), Some(size.1)),
                "{name}: {body}"
            );
        }
    }
}

#[test]
fn overwrite_mode_keeps_one_object_with_the_latest_picture() {
    let mut opts = options("baseline_360p");
    opts.overwrite = true;
    let r = replay_into_temp(opts).unwrap();
    assert_eq!(
        r.objects,
        vec!["shots/record/live/baseline_360p/picture/baseline_360p.jpg"]
    );
    assert_eq!(r.callbacks.len(), 3);
    for body in &r.callbacks {
        let cb: Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            cb["keys"],
            "record/live/baseline_360p/picture/baseline_360p.jpg"
        );
        assert_eq!(cb["dstpath"], cb["keys"]);
    }
    insta::with_settings!({ prepend_module_to_snapshot => false, omit_expression => true }, {
        insta::assert_snapshot!("baseline_360p_overwrite__callbacks", r.callbacks.join("\n"));
    });
}

#[test]
fn shortside_and_quality_scale_and_are_echoed() {
    let mut opts = options("high_720p");
    opts.shortside_px = Some(360);
    opts.quality = Some(5);
    let r = replay_into_temp(opts).unwrap();
    let plain = replay_into_temp(options("high_720p")).unwrap();
    for body in &r.callbacks {
        let cb: Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            (cb["width"].as_u64(), cb["height"].as_u64()),
            (Some(640), Some(360))
        );
        assert_eq!(
            (cb["shortside"].as_u64(), cb["quality"].as_u64()),
            (Some(360), Some(5))
        );
    }
    // Quality 5 (JPEG 50) at a quarter of the pixels makes far smaller files than default 80.
    let size = |r: &livesnap_tests::Replayed| -> u64 {
        r.objects
            .iter()
            .map(|o| {
                std::fs::metadata(r.out.join("objects").join(o))
                    .unwrap()
                    .len()
            })
            .sum()
    };
    assert!(
        size(&r) * 3 < size(&plain),
        "{} vs {}",
        size(&r),
        size(&plain)
    );
    insta::with_settings!({ prepend_module_to_snapshot => false, omit_expression => true }, {
        insta::assert_snapshot!("high_720p_shortside360_q5__callbacks", r.callbacks.join("\n"));
    });
}
