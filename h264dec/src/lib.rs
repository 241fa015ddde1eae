//! An intra-only H.264 (ITU-T H.264 / ISO/IEC 14496-10) decoder in safe Rust: it decodes one
//! access unit of I (and I-macroblock SI) slices, given its SPS and PPS NAL units, into cropped
//! 8-bit 4:2:0 planes. It handles CAVLC and CABAC, Intra 4×4 / 8×8 / 16×16 and chroma
//! prediction, the 8×8 transform, SPS and PPS scaling matrices, I_PCM, the deblocking filter and
//! any number of slices, decoded in place into one picture. Monochrome (4:0:0) pictures come out
//! with U and V planes of 128, as ffmpeg's gray → yuv420p gives.
//!
//! It refuses, with [`Error::Unsupported`], what it does not decode: interlaced pictures (field
//! pictures and MBAFF), bit depths above 8, 4:2:2 and 4:4:4, lossless, slice groups (FMO) and SI
//! macroblocks; a caller can fall back to another decoder for those. Anything malformed is an
//! [`Error::Malformed`]: no input makes it panic, every read is bounds-checked.
//!
//! The layout follows the spec's stages: [`bits`] (RBSP, Exp-Golomb), `params` (SPS/PPS),
//! `slice` (header), `cavlc` and `cabac` (macroblock layer → coefficients and modes), `recon`
//! (prediction + inverse transform into the picture), `dsp` (the kernels) and `deblock`.
#![forbid(unsafe_code)]

mod bits;
mod cabac;
mod cavlc;
mod deblock;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod deblock_simd;
mod dsp;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod idct_simd;
mod mb;
mod params;
mod pred;
mod recon;
mod slice;
mod tables;

use params::{Pps, Sps};

/// Why an access unit could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The bitstream breaks a rule of the spec (or is cut short); the text names what.
    Malformed(String),
    /// Valid, but a feature this decoder does not implement (interlace, high bit depth, 4:2:2,
    /// 4:4:4, FMO, SI macroblocks): fall back to a full decoder.
    Unsupported(String),
    /// The picture is larger than the caller allows.
    LimitExceeded(String),
}

impl Error {
    pub(crate) fn malformed(what: &str) -> Self {
        Error::Malformed(what.to_owned())
    }
    pub(crate) fn unsupported(what: &str) -> Self {
        Error::Unsupported(what.to_owned())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Malformed(m) => write!(f, "malformed h264: {m}"),
            Error::Unsupported(m) => write!(f, "unsupported h264 feature: {m}"),
            Error::LimitExceeded(m) => write!(f, "h264 picture too large: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// A decoded picture, cropped to the SPS window, planes tightly packed: `y` is
/// `width × height`, `u` and `v` are `ceil(width / 2) × ceil(height / 2)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    /// Luma width in pixels.
    pub width: u32,
    /// Luma height in pixels.
    pub height: u32,
    /// Luma, row-major.
    pub y: Vec<u8>,
    /// Cb, row-major.
    pub u: Vec<u8>,
    /// Cr, row-major.
    pub v: Vec<u8>,
    /// Number of slices decoded into the picture.
    pub slices: u32,
}

/// Limits the caller puts on a picture before anything is allocated.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest coded (macroblock-aligned) width or height in pixels.
    pub max_side_px: u32,
    /// Largest coded area in pixels.
    pub max_pixels: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_side_px: 8192,
            max_pixels: 36_000_000,
        }
    }
}

/// Decodes the first picture of a sequence of NAL units (each starting with its NAL header
/// byte, emulation prevention bytes still in): parameter sets first, then the slices of one
/// I picture. NAL units other than SPS (7), PPS (8) and slices (1, 5) are skipped; a slice that
/// starts a second picture ends the decoding.
///
/// ```
/// // An access unit without any slice is malformed.
/// let err = livesnap_h264::decode([&[0x09u8, 0xf0][..]], livesnap_h264::Limits::default());
/// assert!(matches!(err, Err(livesnap_h264::Error::Malformed(_))));
/// ```
pub fn decode<'a>(
    nals: impl IntoIterator<Item = &'a [u8]>,
    limits: Limits,
) -> Result<Picture, Error> {
    Decoder::new().decode(nals, limits)
}

/// A decoder that keeps its buffers between pictures (parameter sets are not kept: each call
/// gets its own).
#[derive(Default)]
pub struct Decoder {
    rbsp: Vec<u8>,
    picture: Option<mb::PictureState>,
}

impl Decoder {
    /// A decoder with no buffers yet.
    pub fn new() -> Self {
        Decoder::default()
    }

    /// Like [`decode`], reusing this decoder's buffers.
    pub fn decode<'a>(
        &mut self,
        nals: impl IntoIterator<Item = &'a [u8]>,
        limits: Limits,
    ) -> Result<Picture, Error> {
        let mut sps_raw: Vec<Option<Vec<u8>>> = vec![None; 32];
        let mut pps_raw: Vec<Option<Vec<u8>>> = vec![None; 256];
        let mut active: Option<(u32, Sps)> = None;
        let mut pps_cache: Vec<Option<Pps>> = vec![None; 256];
        let mut slices = 0u32;
        let mut first_picture: Option<slice::PictureId> = None;
        let mut state = self.picture.take();
        let mut started = false;
        let result = (|| {
            for nal in nals {
                let Some((&header, payload)) = nal.split_first() else {
                    continue;
                };
                if header & 0x80 != 0 {
                    return Err(Error::malformed("forbidden_zero_bit is set"));
                }
                let nal_type = header & 0x1f;
                match nal_type {
                    7 => {
                        bits::unescape_into(payload, &mut self.rbsp);
                        let (id, _) = params::parse_sps(&self.rbsp)?;
                        if slices > 0 {
                            continue;
                        }
                        sps_raw[id as usize] = Some(self.rbsp.clone());
                        pps_cache.iter_mut().for_each(|p| *p = None);
                    }
                    8 => {
                        bits::unescape_into(payload, &mut self.rbsp);
                        let (id, _) = params::pps_ids(&self.rbsp)?;
                        if slices > 0 {
                            continue;
                        }
                        pps_raw[id as usize] = Some(self.rbsp.clone());
                        pps_cache[id as usize] = None;
                    }
                    1 | 5 => {
                        bits::unescape_into(payload, &mut self.rbsp);
                        let rbsp = std::mem::take(&mut self.rbsp);
                        let outcome = self.slice(
                            &rbsp,
                            header,
                            &sps_raw,
                            &pps_raw,
                            &mut pps_cache,
                            &mut active,
                            &mut state,
                            &mut started,
                            &mut first_picture,
                            limits,
                        );
                        self.rbsp = rbsp;
                        match outcome? {
                            SliceOutcome::Decoded => slices += 1,
                            SliceOutcome::Skipped => {}
                            SliceOutcome::NextPicture => break,
                        }
                    }
                    2..=4 => return Err(Error::unsupported("data partitioning")),
                    20 | 21 => return Err(Error::unsupported("scalable or multiview slice")),
                    _ => {}
                }
            }
            let (true, Some(pic), Some((_, sps))) = (started, state.as_mut(), active.as_ref())
            else {
                return Err(Error::malformed("access unit holds no slice"));
            };
            if slices == 0 {
                return Err(Error::malformed("access unit holds no slice"));
            }
            if let Some(addr) = pic.first_missing_mb() {
                return Err(Error::Malformed(format!(
                    "macroblock {addr} (x {}, y {}) is in no slice: slices are missing or cut short",
                    addr % pic.width_mbs,
                    addr / pic.width_mbs
                )));
            }
            deblock::deblock_picture(pic);
            Ok(pic.output(sps, slices))
        })();
        self.picture = state;
        result
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one call site, the decoder's own state"
    )]
    fn slice(
        &mut self,
        rbsp: &[u8],
        header: u8,
        sps_raw: &[Option<Vec<u8>>],
        pps_raw: &[Option<Vec<u8>>],
        pps_cache: &mut [Option<Pps>],
        active: &mut Option<(u32, Sps)>,
        state: &mut Option<mb::PictureState>,
        started: &mut bool,
        first_picture: &mut Option<slice::PictureId>,
        limits: Limits,
    ) -> Result<SliceOutcome, Error> {
        let mut r = bits::BitReader::new(rbsp);
        let pre = slice::pre_header(&mut r)?;
        let pps_id = pre.pps_id as usize;
        let pps_bytes = pps_raw
            .get(pps_id)
            .and_then(Option::as_ref)
            .ok_or_else(|| Error::Malformed(format!("slice refers to missing pps {pps_id}")))?;
        let (_, sps_id) = params::pps_ids(pps_bytes)?;
        let sps_bytes = sps_raw
            .get(sps_id as usize)
            .and_then(Option::as_ref)
            .ok_or_else(|| {
                Error::Malformed(format!("pps {pps_id} refers to missing sps {sps_id}"))
            })?;
        match active {
            Some((id, _)) if *id == sps_id => {}
            Some(_) => {
                // Another SPS within one picture is a new picture (§7.4.1.2.3).
                return Ok(SliceOutcome::NextPicture);
            }
            None => {
                let (_, sps) = params::parse_sps(sps_bytes)?;
                if !sps.frame_mbs_only && sps.mb_adaptive {
                    return Err(Error::unsupported("mbaff (interlaced) pictures"));
                }
                let (w, h) = (sps.width_mbs * 16, sps.height_mbs * 16);
                if w > limits.max_side_px
                    || h > limits.max_side_px
                    || u64::from(w) * u64::from(h) > limits.max_pixels
                {
                    return Err(Error::LimitExceeded(format!("coded size {w}x{h}")));
                }
                *active = Some((sps_id, sps));
            }
        }
        let Some((_, sps)) = active.as_ref() else {
            return Err(Error::malformed("no active sps"));
        };
        let slot = pps_cache
            .get_mut(pps_id)
            .ok_or_else(|| Error::malformed("pps id out of range"))?;
        if slot.is_none() {
            *slot = Some(params::parse_pps(pps_bytes, sps)?);
        }
        let Some(pps) = slot.as_ref() else {
            return Err(Error::malformed("pps cache"));
        };
        if let params::SliceGroups::Fmo { count, map_type } = pps.slice_groups {
            return Err(Error::Unsupported(format!(
                "{count} slice groups (fmo map type {map_type})"
            )));
        }
        let hdr = slice::parse_header(&mut r, pre, header, sps, pps)?;
        if hdr.redundant_pic_cnt > 0 {
            return Ok(SliceOutcome::Skipped);
        }
        match first_picture {
            None => *first_picture = Some(hdr.picture_id),
            Some(id) if *id != hdr.picture_id => return Ok(SliceOutcome::NextPicture),
            Some(_) => {}
        }
        if !*started {
            let pic = match state.take() {
                Some(mut p) if p.matches(sps) => {
                    p.reset();
                    p
                }
                _ => mb::PictureState::new(sps),
            };
            *state = Some(pic);
            *started = true;
        }
        let Some(pic) = state.as_mut() else {
            return Err(Error::malformed("no picture"));
        };
        if pic.is_decoded(hdr.first_mb) {
            // A slice starting on a decoded macroblock belongs to the next picture.
            return Ok(SliceOutcome::NextPicture);
        }
        mb::decode_slice(pic, &mut r, &hdr, sps, pps)?;
        Ok(SliceOutcome::Decoded)
    }
}

enum SliceOutcome {
    Decoded,
    Skipped,
    NextPicture,
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::{Digest, Md5};

    /// guest/testdata/cabac_64x48: a 64x48 CABAC High-profile I-frame from x264 (made by
    /// guest/testdata/make.sh), its AVCDecoderConfigurationRecord and ffmpeg's MD5.
    const RECORD: &[u8] = include_bytes!("../../guest/testdata/cabac_64x48.avcc");
    const ACCESS_UNIT: &[u8] = include_bytes!("../../guest/testdata/cabac_64x48.au");
    const FFMPEG_MD5: &str = "c96c26bde23d2e265d6d0df63d83c8dd";

    fn nals(record: &[u8], au: &[u8]) -> Vec<Vec<u8>> {
        // One SPS and one PPS in this record.
        let sps_len = usize::from(u16::from_be_bytes([record[6], record[7]]));
        let sps = record[8..8 + sps_len].to_vec();
        let p = 8 + sps_len + 1;
        let pps_len = usize::from(u16::from_be_bytes([record[p], record[p + 1]]));
        let pps = record[p + 2..p + 2 + pps_len].to_vec();
        let mut out = vec![sps, pps];
        let mut rest = au;
        while rest.len() >= 4 {
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            out.push(rest[4..4 + len].to_vec());
            rest = &rest[4 + len..];
        }
        out
    }

    fn run(nals: &[Vec<u8>]) -> Result<Picture, Error> {
        decode(nals.iter().map(Vec::as_slice), Limits::default())
    }

    #[test]
    fn testdata_iframe_decodes_to_ffmpegs_md5() {
        let p = run(&nals(RECORD, ACCESS_UNIT)).unwrap();
        assert_eq!((p.width, p.height, p.slices), (64, 48, 1));
        let digest = Md5::new()
            .chain_update(&p.y)
            .chain_update(&p.u)
            .chain_update(&p.v)
            .finalize();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, FFMPEG_MD5);
    }

    #[test]
    fn a_reused_decoder_gives_the_same_picture() {
        let input = nals(RECORD, ACCESS_UNIT);
        let mut d = Decoder::new();
        let a = d
            .decode(input.iter().map(Vec::as_slice), Limits::default())
            .unwrap();
        let b = d
            .decode(input.iter().map(Vec::as_slice), Limits::default())
            .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn truncated_slice_is_malformed() {
        let mut input = nals(RECORD, ACCESS_UNIT);
        let slice = input.last_mut().unwrap();
        slice.truncate(slice.len() / 2);
        assert!(
            matches!(run(&input), Err(Error::Malformed(_))),
            "{:?}",
            run(&input)
        );
    }

    #[test]
    fn missing_slice_and_missing_parameter_sets_are_malformed() {
        let input = nals(RECORD, ACCESS_UNIT);
        assert!(matches!(run(&input[..2]), Err(Error::Malformed(_))));
        assert!(matches!(run(&input[1..]), Err(Error::Malformed(_))));
        assert!(matches!(
            run(&[input[0].clone(), input[2].clone()]),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn picture_over_the_limits_is_refused_before_decoding() {
        let limits = Limits {
            max_side_px: 32,
            max_pixels: 1 << 20,
        };
        let input = nals(RECORD, ACCESS_UNIT);
        let r = decode(input.iter().map(Vec::as_slice), limits);
        assert!(matches!(r, Err(Error::LimitExceeded(_))), "{r:?}");
    }

    /// Writes an SPS RBSP bit by bit.
    #[derive(Default)]
    struct Bits(Vec<bool>);

    impl Bits {
        fn u(&mut self, n: u32, v: u32) -> &mut Self {
            for i in (0..n).rev() {
                self.0.push((v >> i) & 1 == 1);
            }
            self
        }
        fn ue(&mut self, v: u32) -> &mut Self {
            let len = 32 - (v + 1).leading_zeros();
            self.u(len - 1, 0).u(len, v + 1)
        }
        fn nal(&mut self, header: u8) -> Vec<u8> {
            self.0.push(true);
            while !self.0.len().is_multiple_of(8) {
                self.0.push(false);
            }
            let mut out = vec![header];
            out.extend(
                self.0
                    .chunks(8)
                    .map(|c| c.iter().fold(0u8, |a, &b| (a << 1) | u8::from(b))),
            );
            out
        }
    }

    /// A High-profile SPS of 4x3 macroblocks with the given chroma format, luma bit depth and
    /// frame_mbs_only / mb_adaptive flags.
    fn sps(chroma_format: u32, bit_depth: u32, frame_mbs_only: bool, mbaff: bool) -> Vec<u8> {
        let mut b = Bits::default();
        b.u(8, 100).u(8, 0).u(8, 30).ue(0);
        b.ue(chroma_format);
        if chroma_format == 3 {
            b.u(1, 0);
        }
        b.ue(bit_depth - 8).ue(bit_depth - 8).u(1, 0).u(1, 0);
        b.ue(0)
            .ue(0)
            .ue(0)
            .ue(1)
            .u(1, 0)
            .ue(3)
            .ue(if frame_mbs_only { 2 } else { 1 });
        b.u(1, u32::from(frame_mbs_only));
        if !frame_mbs_only {
            b.u(1, u32::from(mbaff));
        }
        b.u(1, 1).u(1, 0).u(1, 0);
        b.nal(0x67)
    }

    #[test]
    fn high_bit_depth_422_444_and_mbaff_are_unsupported() {
        let input = nals(RECORD, ACCESS_UNIT);
        for (sps, what) in [
            (sps(1, 10, true, false), "10-bit"),
            (sps(2, 8, true, false), "4:2:2"),
            (sps(3, 8, true, false), "4:4:4"),
            (sps(1, 8, false, true), "mbaff"),
        ] {
            let mut with = input.clone();
            with[0] = sps;
            let r = run(&with);
            assert!(matches!(r, Err(Error::Unsupported(_))), "{what}: {r:?}");
        }
    }

    #[test]
    fn coefficient_beyond_16_bits_is_malformed() {
        // Found by `cargo fuzz run h264_diff`: the first I-frame of fixtures/pcm_cavlc.flv
        // (fuzz/h264_diff_base/pcm_cavlc.nals: SPS, PPS, slice) with two slice bytes flipped
        // makes a chroma AC coefficient that no conforming stream has (§8.5.12.1).
        let list = include_bytes!("../../fuzz/h264_diff_base/pcm_cavlc.nals");
        let mut nals = Vec::new();
        let mut rest = &list[..];
        while rest.len() >= 2 {
            let n = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
            nals.push(rest[2..2 + n].to_vec());
            rest = &rest[2 + n..];
        }
        assert_eq!(
            run(&nals).unwrap().width,
            128,
            "the unmutated picture decodes"
        );
        nals[2][10755] ^= 0x66;
        nals[2][14354] ^= 0xcc;
        let r = run(&nals);
        assert!(
            matches!(&r, Err(Error::Malformed(m)) if m.contains("16-bit range")),
            "{r:?}"
        );
    }

    #[test]
    fn mutated_slices_never_panic() {
        let input = nals(RECORD, ACCESS_UNIT);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..3000 {
            let mut m = input.clone();
            let which = (next() % m.len() as u64) as usize;
            let nal = &mut m[which];
            for _ in 0..1 + next() % 4 {
                let at = (next() % nal.len() as u64) as usize;
                nal[at] ^= 1 << (next() % 8);
            }
            if next() % 8 == 0 {
                let keep = (next() % nal.len() as u64) as usize;
                nal.truncate(keep);
            }
            if let Ok(p) = run(&m) {
                assert_eq!(p.y.len(), p.width as usize * p.height as usize);
            }
        }
    }
}
