//! Coded frames through `Session::push_frame`, the container-neutral entry an RTP/RTSP host
//! uses: parameter-set tracking (out of band and in band, `frame::ParamTracker`), the records
//! built from them (`avc_record`/`hevc_record`, then `AvcConfig::parse`/`HevcConfig::parse`),
//! AVCC framing of the NAL units (`frame::access_unit`), the session clock, I-frame
//! classification, the interval rule, damaged frames, keeping the newest I-frame
//! (`keep_last_iframe(true)`) and the callbacks of `complete`. Rendering is left to `render` and
//! `hevc_render`.
//!
//! Unlike `flv_tag`, the session gets no configuration up front: the input brings its parameter
//! sets. Each `Capture` is completed at once, odd seqs `Stored`, even seqs `Failed`. Besides "no
//! panic" it checks: a damaged frame is never captured nor kept; a shot and a newly kept I-frame
//! are the pushed frame (its NAL units AVCC framed, its codec and pts); seqs increase; callback
//! bodies are JSON; a shot completes once. Input layout (`cargo run --release --example
//! push_frame_seeds` writes it from fixtures/*.flv):
//!
//! ```text
//! settings: u8      bits 0-1: interval_s - 1; bit 2: overwrite keys
//! then, until the input ends, frames:
//!   head: u8        bit 0: codec H.265 (else H.264)
//!                   bit 1: damaged
//!                   bit 2: u32 BE absolute dts follows, else u16 BE delta (wrapping add)
//!                   bit 3: i16 BE composition offset follows (pts = dts + it), else pts = dts
//!                   bits 4-6: number of out-of-band parameter sets that follow (0-7)
//!                   bit 7: the out-of-band parameter sets are the previous frame's (none follow)
//!   dts: u32 BE or u16 BE
//!   cts: i16 BE     if bit 3
//!   nals: u8        number of NAL units
//!   then each parameter set, then each NAL unit: u16 BE length, bytes (cut to what is left)
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;
use livesnap_guest::capture::{Action, Outcome, Session, SessionInfo, Settings};
use livesnap_guest::error::Failure;
use livesnap_guest::flv::VideoCodec;
use livesnap_guest::frame::Frame;
use livesnap_guest::naming::KeyMode;

/// Splits `n` bytes off the front of `data`, or `None` if fewer are left.
fn take<'a>(data: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (head, rest) = data.split_at_checked(n)?;
    *data = rest;
    Some(head)
}

/// A u16 BE length and that many bytes (cut to what is left); `None` at the end of the input.
fn chunk(data: &mut &[u8]) -> Option<Vec<u8>> {
    let &[a, b] = take(data, 2)? else {
        return None;
    };
    let len = usize::from(u16::from_be_bytes([a, b])).min(data.len());
    take(data, len).map(<[u8]>::to_vec)
}

/// `nals` with 4-byte big-endian length prefixes, as a shot's access unit must be.
fn avcc(nals: &[Vec<u8>]) -> Vec<u8> {
    let mut au = Vec::new();
    for nal in nals {
        au.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        au.extend_from_slice(nal);
    }
    au
}

fn check_json(body: &str) {
    serde_json::from_str::<serde_json::Value>(body).expect("callback body is JSON");
}

fuzz_target!(|input: &[u8]| {
    let mut data = input;
    let Some(&[settings]) = take(&mut data, 1) else {
        return;
    };
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
            shortside_px: None,
            quality: None,
            bucket: "shots".into(),
            uniqname: "tenant".into(),
            alterurl: None,
        },
    )
    .expect("fixed settings are valid");
    session.keep_last_iframe(true);

    let mut dts = 0u32;
    let mut last_seq = 0u32;
    let mut sets: Vec<Vec<u8>> = Vec::new();
    while let Some(&[head]) = take(&mut data, 1) {
        if head & 4 != 0 {
            let Some(&[a, b, c, d]) = take(&mut data, 4) else {
                return;
            };
            dts = u32::from_be_bytes([a, b, c, d]);
        } else {
            let Some(&[a, b]) = take(&mut data, 2) else {
                return;
            };
            dts = dts.wrapping_add(u32::from(u16::from_be_bytes([a, b])));
        }
        let mut pts = i64::from(dts);
        if head & 8 != 0 {
            let Some(&[a, b]) = take(&mut data, 2) else {
                return;
            };
            pts += i64::from(i16::from_be_bytes([a, b]));
        }
        let Some(&[nal_count]) = take(&mut data, 1) else {
            return;
        };
        if head & 0x80 == 0 {
            sets.clear();
            for _ in 0..(head >> 4) & 7 {
                sets.extend(chunk(&mut data));
            }
        }
        let mut nals = Vec::with_capacity(usize::from(nal_count));
        for _ in 0..nal_count {
            nals.extend(chunk(&mut data));
        }
        let frame = Frame {
            codec: if head & 1 != 0 {
                VideoCodec::Hevc
            } else {
                VideoCodec::Avc
            },
            dts_ms: dts,
            pts_ms: pts,
            parameter_sets: &sets,
            nal_units: &nals,
            damaged: head & 2 != 0,
        };
        let kept_before = session.last_iframe().map(|i| i.number);
        let action = session.push_frame(&frame);
        let kept = session.last_iframe();
        if frame.damaged {
            assert_eq!(
                kept.map(|i| i.number),
                kept_before,
                "a damaged frame was kept"
            );
        } else if let Some(iframe) = kept
            && Some(iframe.number) != kept_before
        {
            assert_eq!(iframe.number, kept_before.unwrap_or(0) + 1);
            assert_eq!((iframe.codec, iframe.pts_ms), (frame.codec, pts));
            assert_eq!(
                iframe.access_unit,
                avcc(&nals),
                "kept frame is not this one"
            );
            assert!(!iframe.config.is_empty());
        }
        match action {
            Ok(Action::Capture(shot)) => {
                assert!(!frame.damaged, "a damaged frame is never rendered");
                assert!(shot.seq > last_seq, "seq {} after {last_seq}", shot.seq);
                last_seq = shot.seq;
                assert_eq!(shot.codec, frame.codec);
                assert_eq!(shot.pts_ms, pts);
                assert_eq!(shot.access_unit, avcc(&nals), "shot is not this frame");
                assert!(!shot.config.is_empty() && shot.key.ends_with(".jpg"));
                assert!(!shot.key.contains(".."), "{}", shot.key);
                let outcome = if shot.seq % 2 == 1 {
                    Outcome::Stored(64, 48)
                } else {
                    Outcome::Failed(Failure::decode("fuzz"))
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
