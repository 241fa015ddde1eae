//! `render_hevc::decode` and `render_hevc::render` on arbitrary access units with a real HEVC
//! record (8-bit 64x48 or 10-bit 96x64 from guest/testdata) or one from the input. A decoded
//! picture must have consistent planes and render to a JPEG no larger than it.
//!
//! Input layout: selector: u8 (bit 0: which testdata record; bit 1: the record comes from the
//! input, then len: u16 BE and len bytes; bits 2-3: shortside None, 16, 1, 33), quality: u8,
//! then the access unit (4-byte NAL lengths for the testdata records). Inputs over 64 KiB are
//! skipped.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livesnap_guest::render_hevc::{decode, render};

const MAX_INPUT: usize = 64 * 1024;
const RECORDS: [&[u8]; 2] = [
    include_bytes!("../../guest/testdata/hevc_64x48.hvcc"),
    include_bytes!("../../guest/testdata/hevc10_96x64.hvcc"),
];

fuzz_target!(|input: &[u8]| {
    if input.len() > MAX_INPUT {
        return;
    }
    let Some((&[selector, quality], mut rest)) = input.split_first_chunk::<2>() else {
        return;
    };
    let record = if selector & 2 != 0 {
        let Some((&len, after)) = rest.split_first_chunk::<2>() else {
            return;
        };
        let Some((record, after)) = after.split_at_checked(usize::from(u16::from_be_bytes(len)))
        else {
            return;
        };
        rest = after;
        record
    } else {
        RECORDS[usize::from(selector & 1)]
    };
    let shortside = [None, Some(16), Some(1), Some(33)][usize::from((selector >> 2) & 3)];
    let Ok(frame) = decode(record, rest) else {
        return;
    };
    let luma = frame.width as usize * frame.height as usize;
    assert_eq!(frame.y.len(), luma);
    let picture = frame.to_yuv420();
    picture.check_planes().expect("8-bit planes are consistent");
    let shot = render(record, rest, shortside, quality).expect("a decodable unit renders");
    assert!(shot.width >= 1 && shot.width <= frame.width);
    assert!(shot.height >= 1 && shot.height <= frame.height);
    assert!(shot.jpeg.starts_with(&[0xff, 0xd8]));
});
