//! `AvcConfig::parse` on an arbitrary AVCDecoderConfigurationRecord (the body of an FLV AVC
//! sequence header after its 5-byte tag header), then, when it parses, `classify` on a real
//! I-frame (guest/testdata/cabac_64x48.au) with the record's NAL length size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livesnap_guest::avc::AvcConfig;

const ACCESS_UNIT: &[u8] = include_bytes!("../../guest/testdata/cabac_64x48.au");

fuzz_target!(|record: &[u8]| {
    if let Ok(mut config) = AvcConfig::parse(record) {
        assert_eq!(config.record(), record);
        let _ = config.refusal();
        let _ = config.classify(ACCESS_UNIT);
    }
});
