//! `livesnap_h264::decode` on arbitrary NAL units: any SPS, PPS and slice bytes. Pictures are
//! capped at 1024x1024 (and 640x576 in area) so iterations stay fast.
//!
//! Input layout (fuzz/seed.py writes it): NAL units, each `len: u16 BE` then `len` bytes (NAL
//! header byte first, emulation prevention bytes in). A short tail is ignored.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livesnap_h264::{Error, Limits};

fuzz_target!(|input: &[u8]| {
    let mut nals = Vec::new();
    let mut rest = input;
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let Some((nal, tail)) = tail.split_at_checked(usize::from(u16::from_be_bytes(*len))) else {
            break;
        };
        nals.push(nal);
        rest = tail;
    }
    let limits = Limits {
        max_side_px: 1024,
        max_pixels: 640 * 576,
    };
    match livesnap_h264::decode(nals.iter().copied(), limits) {
        Ok(p) => {
            let (w, h) = (p.width as usize, p.height as usize);
            assert!(w > 0 && h > 0 && w <= 1024 && h <= 1024);
            assert_eq!(p.y.len(), w * h);
            let c = w.div_ceil(2) * h.div_ceil(2);
            assert_eq!((p.u.len(), p.v.len()), (c, c));
            assert!(p.slices >= 1);
        }
        Err(Error::Malformed(m) | Error::Unsupported(m) | Error::LimitExceeded(m)) => {
            assert!(!m.is_empty());
        }
        Err(_) => {}
    }
});
