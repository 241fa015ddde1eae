//! `render::decode` and `render::render` on arbitrary access units, with a real or an arbitrary
//! configuration record. Pictures stay small (the guest/testdata streams are at most 128x96) so
//! iterations are fast; inputs over 64 KiB are skipped.
//!
//! Input layout (fuzz/seed.py writes it):
//!
//! ```text
//! selector: u8   bits 0-1: testdata stream (cabac_64x48, crop_70x38, full709_96x64,
//!                slices_128x96); bit 2: the record comes from the input; bits 3-4: shortside
//!                None, 16, 1, 33
//! quality: u8    JPEG quality (render clamps it to 1..=100)
//! if bit 2:      len: u8, then len bytes of AVCDecoderConfigurationRecord
//! rest           the access unit, AVCC framed
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;
use livesnap_guest::render::{decode, render};

const MAX_INPUT: usize = 64 * 1024;

const CONFIGS: [&[u8]; 4] = [
    include_bytes!("../../guest/testdata/cabac_64x48.avcc"),
    include_bytes!("../../guest/testdata/crop_70x38.avcc"),
    include_bytes!("../../guest/testdata/full709_96x64.avcc"),
    include_bytes!("../../guest/testdata/slices_128x96.avcc"),
];

fuzz_target!(|input: &[u8]| {
    if input.len() > MAX_INPUT {
        return;
    }
    let Some((&[selector, quality], mut rest)) = input.split_first_chunk::<2>() else {
        return;
    };
    let config = if selector & 4 != 0 {
        let Some((&len, after)) = rest.split_first() else {
            return;
        };
        let Some((config, after)) = after.split_at_checked(usize::from(len)) else {
            return;
        };
        rest = after;
        config
    } else {
        CONFIGS[usize::from(selector & 3)]
    };
    let shortside = [None, Some(16), Some(1), Some(33)][usize::from((selector >> 3) & 3)];

    let Ok(picture) = decode(config, rest) else {
        return;
    };
    picture
        .check_planes()
        .expect("decode returns consistent planes");
    let shot = render(config, rest, shortside, quality).expect("a decodable unit renders");
    assert!(shot.width >= 1 && shot.width <= picture.width);
    assert!(shot.height >= 1 && shot.height <= picture.height);
    assert!(shot.jpeg.starts_with(&[0xff, 0xd8]) && shot.jpeg.ends_with(&[0xff, 0xd9]));
});
