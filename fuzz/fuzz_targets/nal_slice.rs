//! NAL unit iteration (`avc::NalIter`) and the I-frame test (`AvcConfig::classify`: in-band SPS
//! limits, NAL headers, slice headers) on arbitrary access units, with a valid configuration.
//!
//! Input: one selector byte, then the access unit. Selector bits 0-1 pick the record (one of the
//! four guest/testdata/*.avcc), bits 2-3 its NAL length size: 0 or 3 -> 4 bytes, 1 -> 1, 2 -> 2
//! (patched into the record's lengthSizeMinusOne).
#![no_main]

use libfuzzer_sys::fuzz_target;
use livesnap_guest::avc::{AvcConfig, NalIter};

const CONFIGS: [&[u8]; 4] = [
    include_bytes!("../../guest/testdata/cabac_64x48.avcc"),
    include_bytes!("../../guest/testdata/crop_70x38.avcc"),
    include_bytes!("../../guest/testdata/full709_96x64.avcc"),
    include_bytes!("../../guest/testdata/slices_128x96.avcc"),
];

fuzz_target!(|input: &[u8]| {
    let Some((&selector, access_unit)) = input.split_first() else {
        return;
    };
    let length_size: usize = match (selector >> 2) & 3 {
        1 => 1,
        2 => 2,
        _ => 4,
    };
    let mut record = CONFIGS[usize::from(selector & 3)].to_vec();
    // lengthSizeMinusOne: the low two bits of byte 4 (ISO/IEC 14496-15 §5.2.4.1.1).
    record[4] = 0xfc | (length_size - 1) as u8;
    let mut config = AvcConfig::parse(&record).expect("testdata record parses");

    // The units and their prefixes tile the access unit, up to the first error, which ends it.
    let mut covered = 0;
    let mut iter = NalIter::new(access_unit, length_size);
    for nal in iter.by_ref() {
        match nal {
            Ok(nal) => covered += length_size + nal.len(),
            Err(_) => {
                covered = access_unit.len();
                break;
            }
        }
    }
    assert_eq!(covered, access_unit.len());
    assert!(iter.next().is_none());

    let _ = config.classify(access_unit);
    // A second look at the same unit, now with any in-band SPS refusal in force, agrees.
    let _ = config.classify(access_unit);
});
