//! Differential: valid I-frames (guest/testdata and the pcm fixtures, embedded from
//! fuzz/h264_diff_base/) with mutated slice data, decoded by `livesnap_h264` and by `rust_h264`.
//!
//! Agreement: when both decoders return a picture, the pictures must be equal (else the target
//! panics). When one fails and the other does not, that is counted, not a crash: on broken
//! streams rust_h264 (like ffmpeg) reads zeros past the end of slice data and conceals, where
//! ours stops with an error, so "ours fails, theirs succeeds" is expected. Every 20000 inputs
//! the counts go to stderr (`h264_diff: both_ok=.. both_err=.. ours_only_err=.. theirs_only_err=..`).
//!
//! Input layout (fuzz/seed.py writes it):
//!
//! ```text
//! selector: u8        base picture, modulo the number of bases
//! then (pos: u16 BE, xor: u8)...  flip bits of the slice NAL bytes at pos (modulo their total
//!                     length, skipping each slice's first 4 bytes so headers mostly survive)
//! ```
#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;

const BASES: [&[u8]; 6] = [
    include_bytes!("../h264_diff_base/cabac_64x48.nals"),
    include_bytes!("../h264_diff_base/crop_70x38.nals"),
    include_bytes!("../h264_diff_base/full709_96x64.nals"),
    include_bytes!("../h264_diff_base/slices_128x96.nals"),
    include_bytes!("../h264_diff_base/pcm_cabac.nals"),
    include_bytes!("../h264_diff_base/pcm_cavlc.nals"),
];

static COUNTS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

fn split(list: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = list;
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let n = usize::from(u16::from_be_bytes(*len));
        out.push(tail[..n].to_vec());
        rest = &tail[n..];
    }
    out
}

fn rust_h264_decode(nals: &[Vec<u8>]) -> Option<(u32, u32, Vec<u8>, Vec<u8>, Vec<u8>)> {
    use rust_h264::nal::{NalUnit, NalUnitType};
    let mut d = rust_h264::decoder::Decoder::new();
    let mut frame = None;
    for nal in nals {
        let mut rbsp = Vec::with_capacity(nal.len());
        let mut zeros = 0;
        for &b in nal.get(1..)? {
            if zeros >= 2 && b == 3 {
                zeros = 0;
                continue;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            rbsp.push(b);
        }
        let nal_unit_type = match nal[0] & 0x1f {
            1 => NalUnitType::Slice,
            5 => NalUnitType::SliceIdr,
            7 => NalUnitType::Sps,
            8 => NalUnitType::Pps,
            _ => continue,
        };
        let unit = NalUnit {
            nal_ref_idc: (nal[0] >> 5) & 3,
            nal_unit_type,
            rbsp: rbsp.into(),
        };
        if let Some(f) = d.decode_nal(&unit).ok()? {
            frame = Some(f);
            break;
        }
    }
    let f = frame.or_else(|| d.flush())?;
    Some((f.width, f.height, f.y, f.u, f.v))
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, mut muts)) = input.split_first() else {
        return;
    };
    let mut nals = split(BASES[usize::from(selector) % BASES.len()]);
    // Positions inside slice NAL units, past their first 4 bytes.
    let spans: Vec<(usize, usize)> = nals
        .iter()
        .enumerate()
        .filter(|(_, n)| matches!(n[0] & 0x1f, 1 | 5) && n.len() > 4)
        .map(|(i, n)| (i, n.len() - 4))
        .collect();
    let total: usize = spans.iter().map(|s| s.1).sum();
    while let Some((m, tail)) = muts.split_first_chunk::<3>() {
        muts = tail;
        let mut pos = usize::from(u16::from_be_bytes([m[0], m[1]])) % total.max(1);
        for &(i, len) in &spans {
            if pos < len {
                nals[i][4 + pos] ^= m[2];
                break;
            }
            pos -= len;
        }
    }
    let ours = livesnap_h264::decode(
        nals.iter().map(Vec::as_slice),
        livesnap_h264::Limits::default(),
    );
    // rust_h264 is the reference here, not the code under test: a panic of its own (debug
    // overflow checks are on in fuzz builds) counts as "theirs failed".
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let theirs = std::panic::catch_unwind(|| rust_h264_decode(&nals))
        .ok()
        .flatten();
    std::panic::set_hook(hook);
    let kind = match (&ours, &theirs) {
        (Ok(o), Some((w, h, y, u, v))) => {
            assert_eq!((o.width, o.height), (*w, *h), "picture sizes differ");
            assert!(
                o.y == *y && o.u == *u && o.v == *v,
                "both decoded, planes differ"
            );
            0
        }
        (Err(_), None) => 1,
        (Err(_), Some(_)) => 2,
        (Ok(_), None) => 3,
    };
    let n = COUNTS[kind].fetch_add(1, Ordering::Relaxed) + 1;
    let all: u64 = COUNTS.iter().map(|c| c.load(Ordering::Relaxed)).sum();
    if all % 20000 == 0 || (kind == 3 && n <= 3) {
        let c: Vec<u64> = COUNTS.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        eprintln!(
            "h264_diff: both_ok={} both_err={} ours_only_err={} theirs_only_err={}",
            c[0], c[1], c[2], c[3]
        );
    }
});
