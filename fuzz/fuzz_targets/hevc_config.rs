//! `HevcConfig::parse` on an arbitrary HEVCDecoderConfigurationRecord (the body of an Enhanced
//! RTMP `hvc1` SequenceStart after its 5-byte header), and slice segment header parsing: the
//! input's second half is classified as an access unit, with the fuzzed record when it parses and
//! with a real one (guest/testdata/hevc_64x48.hvcc) always.
//!
//! Input layout: split: u8 (where the record ends, as a fraction of the rest ×256), then bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livesnap_guest::hevc::{self, HevcConfig};

const RECORD: &[u8] = include_bytes!("../../guest/testdata/hevc_64x48.hvcc");

fuzz_target!(|input: &[u8]| {
    let Some((&split, rest)) = input.split_first() else {
        return;
    };
    let at = rest.len() * usize::from(split) / 256;
    let (record, access_unit) = rest.split_at(at);
    if let Ok(mut config) = HevcConfig::parse(record) {
        assert_eq!(config.record(), record);
        let _ = config.refusal();
        let _ = config.classify(access_unit);
    }
    let mut real = HevcConfig::parse(RECORD).expect("the testdata record parses");
    let _ = real.classify(access_unit);
    let _ = hevc::parse_sps(rest);
    let _ = hevc::parse_pps(rest);
    let _ = real.params().slice_segment(rest);
});
