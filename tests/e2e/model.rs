//! A small reference model of DESIGN.md's capture rule, written independently of the guest, and
//! the ground truth of the fixtures (`fixtures/ref/<name>.iframes.tsv`, from ffmpeg + flvtool).

use livesnap_tests::root;

/// One tag as the model sees it.
#[derive(Debug, Clone, Copy)]
pub struct ModelTag {
    /// True for video tags (FLV type 9).
    pub video: bool,
    /// Raw 32-bit timestamp, ms.
    pub ts: u32,
    /// True when the tag carries an I-frame (all slices I).
    pub iframe: bool,
}

/// Session clocks of the captures the rule makes: the first I-frame, then each first I-frame at
/// or after the previous capture + interval.
pub fn expected_captures(tags: &[ModelTag], interval_ms: u64) -> Vec<u64> {
    let Some(first) = tags.first().map(|t| i64::from(t.ts)) else {
        return Vec::new();
    };
    // clock = ts - first + shift, where every backward jump adds what it jumped back by, so the
    // new raw value lands on the last clock; clamped at 0 and never decreasing.
    let mut shift: i64 = 0;
    let mut prev_video_ts: Option<i64> = None;
    let mut last_clock: i64 = 0;
    let mut last_capture: Option<u64> = None;
    let mut captures = Vec::new();
    for tag in tags.iter().filter(|t| t.video) {
        let ts = i64::from(tag.ts);
        if let Some(prev) = prev_video_ts
            && ts < prev
        {
            shift = last_clock - (ts - first);
        }
        prev_video_ts = Some(ts);
        let clock = (ts - first + shift).max(0).max(last_clock);
        last_clock = clock;
        let clock = clock as u64;
        if tag.iframe && last_capture.is_none_or(|c| clock >= c + interval_ms) {
            captures.push(clock);
            last_capture = Some(clock);
        }
    }
    captures
}

/// The model's view of fixture `name`: its tags with I-frames marked from `iframes.tsv`. For a
/// codec livesnap does not parse (AV1, VP9: `iframes.tsv` is empty), the FLV keyframe flag is
/// the only hint (DESIGN.md "Which frames"): those tags, from `tags.tsv`, count as I-frames.
pub fn fixture_tags(name: &str) -> Vec<ModelTag> {
    let tags_tsv = root().join("fixtures/ref").join(format!("{name}.tags.tsv"));
    let tags_text = std::fs::read_to_string(&tags_tsv).unwrap_or_default();
    let hinted: Vec<usize> = tags_text
        .lines()
        .filter(|l| {
            (l.contains("ex av1 frames") || l.contains("ex vp9 frames"))
                && l.ends_with("frame_type=1")
        })
        .filter_map(|l| l.split('\t').next().and_then(|i| i.parse().ok()))
        .collect();
    let iframe_tags: Vec<usize> = reference_iframes(name).iter().map(|f| f.tag).collect();
    livesnap_tests::read_tags(&livesnap_tests::fixture(name))
        .iter()
        .enumerate()
        .map(|(i, t)| ModelTag {
            video: t.tag_type == 9,
            ts: t.timestamp_ms,
            iframe: iframe_tags.contains(&i) || hinted.contains(&i),
        })
        .collect()
}

/// An I-frame of ffmpeg's reference list (`iframes.tsv`: every slice I or SI).
#[derive(Debug, Clone, Copy)]
pub struct RefIframe {
    /// Index of its tag in the file.
    pub tag: usize,
    /// Presentation time, ms.
    pub pts_ms: i64,
}

/// The I-frames of fixture `name` by ffmpeg's reading of their slices.
pub fn reference_iframes(name: &str) -> Vec<RefIframe> {
    let path = root()
        .join("fixtures/ref")
        .join(format!("{name}.iframes.tsv"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .skip(1)
        .filter(|l| {
            l.split('\t')
                .nth(5)
                .is_some_and(|s| s.split(',').all(|t| t == "I" || t == "SI"))
        })
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            RefIframe {
                tag: f[0].parse().expect("tag index"),
                pts_ms: f[2].parse().expect("pts"),
            }
        })
        .collect()
}

#[test]
fn model_matches_the_design_example() {
    // DESIGN.md: interval 10 s, I-frames at 0, 4, 8, 12, 16, 20, 24 s -> captures at 0, 12, 24 s.
    let tags: Vec<ModelTag> = (0..7)
        .map(|i| ModelTag {
            video: true,
            ts: i * 4000,
            iframe: true,
        })
        .collect();
    assert_eq!(expected_captures(&tags, 10_000), vec![0, 12_000, 24_000]);
}

#[test]
fn model_reanchors_backward_jumps() {
    let t = |ts, iframe| ModelTag {
        video: true,
        ts,
        iframe,
    };
    // 0..6 s, then the encoder restarts at 1 s: the clock goes on from 6 s.
    let tags = [
        t(0, true),
        t(6000, false),
        t(1000, false),
        t(5000, true),
        t(7000, true),
    ];
    assert_eq!(expected_captures(&tags, 10_000), vec![0, 10_000]);
}
