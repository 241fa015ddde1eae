//! FLV tags through `Session::push_tag`, the whole per-tag path of a stream: tag body parsing,
//! the session clock, sequence headers (`AvcConfig::parse`), I-frame classification, the
//! interval rule, naming, and the callbacks of `complete`.
//!
//! The session first gets a real sequence header (guest/testdata/cabac_64x48.avcc), so frames
//! reach classification from the first input byte. Input layout (fuzz/seed.py writes it):
//!
//! ```text
//! settings: u8      bits 0-1: interval_s - 1; bit 2: overwrite keys; bit 3: shortside 360;
//!                   bits 4-7: quality (0 = none, else 1 + (q - 1) % 10)
//! then, until the input ends, tags:
//!   head: u8        bits 0-1: tag type 9 (video), 8 (audio), 18 (script), or 3 = the next byte
//!                   bit 2: u32 BE absolute timestamp follows, else u16 BE delta (wrapping add)
//!                   bits 4-5: a Capture is completed as 0/1 Stored, 2 Failed, 3 left pending
//!   len: u16 BE     body length, cut to what is left
//!   body
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;
use livesnap_guest::capture::{Action, Outcome, Session, SessionInfo, Settings};
use livesnap_guest::error::Failure;
use livesnap_guest::naming::KeyMode;

const CONFIG: &[u8] = include_bytes!("../../guest/testdata/cabac_64x48.avcc");

/// Splits `n` bytes off the front of `data`, or `None` if fewer are left.
fn take<'a>(data: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (head, rest) = data.split_at_checked(n)?;
    *data = rest;
    Some(head)
}

fn check_json(body: &str) {
    serde_json::from_str::<serde_json::Value>(body).expect("callback body is JSON");
}

fuzz_target!(|input: &[u8]| {
    let mut data = input;
    let Some(&[settings]) = take(&mut data, 1) else {
        return;
    };
    let quality = settings >> 4;
    let mut session = Session::new(
        SessionInfo {
            app: "live".into(),
            stream: "cam".into(),
            push_start_ms: 1_700_000_000_000,
            session_id: 7,
        },
        Settings {
            interval_s: u32::from(settings & 3) + 1,
            mode: if settings & 4 != 0 {
                KeyMode::Overwrite
            } else {
                KeyMode::Sequence
            },
            shortside_px: (settings & 8 != 0).then_some(360),
            quality: (quality != 0).then(|| 1 + (quality - 1) % 10),
            bucket: "shots".into(),
            uniqname: "tenant".into(),
            alterurl: None,
        },
    )
    .expect("fixed settings are valid");
    let mut header = vec![0x17, 0, 0, 0, 0];
    header.extend_from_slice(CONFIG);
    assert_eq!(
        session
            .push_tag(9, 0, &header)
            .expect("real sequence header"),
        Action::None
    );

    let mut timestamp = 0u32;
    let mut last_seq = 0u32;
    while let Some(&[head]) = take(&mut data, 1) {
        let tag_type = match head & 3 {
            0 => 9,
            1 => 8,
            2 => 18,
            _ => match take(&mut data, 1) {
                Some(&[t]) => t,
                _ => return,
            },
        };
        if head & 4 != 0 {
            let Some(&[a, b, c, d]) = take(&mut data, 4) else {
                return;
            };
            timestamp = u32::from_be_bytes([a, b, c, d]);
        } else {
            let Some(&[a, b]) = take(&mut data, 2) else {
                return;
            };
            timestamp = timestamp.wrapping_add(u32::from(u16::from_be_bytes([a, b])));
        }
        let Some(&[a, b]) = take(&mut data, 2) else {
            return;
        };
        let len = usize::from(u16::from_be_bytes([a, b])).min(data.len());
        let body = take(&mut data, len).unwrap_or_default();
        match session.push_tag(tag_type, timestamp, body) {
            Ok(Action::Capture(shot)) => {
                assert!(shot.seq > last_seq, "seq {} after {last_seq}", shot.seq);
                last_seq = shot.seq;
                assert!(!shot.config.is_empty() && shot.key.ends_with(".jpg"));
                assert!(!shot.key.contains(".."), "{}", shot.key);
                let outcome = match (head >> 4) & 3 {
                    0 | 1 => Outcome::Stored(64, 48),
                    2 => Outcome::Failed(Failure::decode("fuzz")),
                    _ => continue,
                };
                check_json(&session.complete(shot.seq, outcome).expect("pending shot"));
                // A second completion of the same shot is refused.
                assert!(session.complete(shot.seq, Outcome::Stored(1, 1)).is_err());
            }
            Ok(Action::Refused(body)) => {
                check_json(&body);
                last_seq = last_seq.saturating_add(1);
            }
            Ok(Action::None) | Err(_) => {}
        }
    }
});
