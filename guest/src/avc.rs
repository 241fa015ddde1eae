//! H.264 parameter sets and slice headers, parsed with h264-reader: the decoder configuration
//! record from the FLV sequence header, the picture size limits, and the I-frame test.

use crate::error::Failure;
use h264_reader::avcc::AvcDecoderConfigurationRecord;
use h264_reader::nal::sps::{FrameMbsFlags, SeqParameterSet, SpsError};
use h264_reader::nal::{Nal, RefNal, UnitType};
use h264_reader::rbsp::BitRead;

/// Largest picture side we decode, in pixels (DESIGN.md "Architecture").
pub const MAX_SIDE_PX: u32 = 8192;
/// Largest picture area we decode, in pixels.
pub const MAX_PIXELS: u64 = 36_000_000;

/// What an access unit is, for the capture rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Every slice is an I or SI slice: capturable, whatever the FLV keyframe flag says.
    Intra,
    /// At least one P/B/SP slice, or no slice at all.
    NotIntra,
}

/// The decoder configuration in force for a stream.
#[derive(Debug)]
pub struct AvcConfig {
    /// The AVCDecoderConfigurationRecord bytes, handed to render with each shot.
    record: Vec<u8>,
    /// Bytes of each NAL length prefix in access units (1, 2 or 4).
    length_size: usize,
    /// Set when a parameter set breaks a limit or is unsupported: due I-frames are refused.
    refusal: Option<Failure>,
}

impl AvcConfig {
    /// Parse an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.2.4.1) and its SPS. A record
    /// whose SPS is too large or unsupported parses but carries a refusal; a record that does not
    /// parse is an error.
    pub fn parse(record: &[u8]) -> Result<AvcConfig, Failure> {
        let avcc = AvcDecoderConfigurationRecord::try_from(record)
            .map_err(|e| Failure::decode(format!("avc decoder configuration record: {e:?}")))?;
        let length_size = usize::from(avcc.length_size_minus_one()) + 1;
        if length_size == 3 {
            return Err(Failure::decode("nal length size 3 is not allowed"));
        }
        let mut refusal = None;
        let mut sps_count = 0;
        for sps in avcc.sequence_parameter_sets() {
            let sps = sps
                .map_err(|e| Failure::decode(format!("avc decoder configuration record: {e:?}")))?;
            sps_count += 1;
            if let Err(failure) = parse_sps(sps).and_then(|sps| check_sps(&sps)) {
                if failure.code == crate::error::ErrorCode::DecodeFailed {
                    return Err(failure);
                }
                refusal.get_or_insert(failure);
            }
        }
        if sps_count == 0 {
            return Err(Failure::decode(
                "avc decoder configuration record has no sps",
            ));
        }
        Ok(AvcConfig {
            record: record.to_vec(),
            length_size,
            refusal,
        })
    }

    /// The configuration record bytes.
    pub fn record(&self) -> &[u8] {
        &self.record
    }

    /// Why due I-frames of this configuration cannot be rendered, if they cannot.
    pub fn refusal(&self) -> Option<&Failure> {
        self.refusal.as_ref()
    }

    /// Decide whether `access_unit` (AVCC framed) is an I-frame from the `slice_type` of each
    /// slice header (ISO/IEC 14496-10 §7.3.3: `first_mb_in_slice`, then `slice_type`; neither
    /// depends on a parameter set). An in-band SPS is checked against the limits first.
    pub fn classify(&mut self, access_unit: &[u8]) -> Result<FrameKind, Failure> {
        let refusal = &mut self.refusal;
        scan(access_unit, self.length_size, |nal| {
            if let Err(failure) = parse_sps(nal).and_then(|sps| check_sps(&sps)) {
                if failure.code == crate::error::ErrorCode::DecodeFailed {
                    return Err(failure);
                }
                *refusal = Some(failure);
            }
            Ok(())
        })
    }

    /// [`AvcConfig::classify`] without taking in-band parameter sets: for frames that are not
    /// due, whose SPS the capture rule does not read (the session state stays as it was).
    pub fn peek(&self, access_unit: &[u8]) -> Result<FrameKind, Failure> {
        scan(access_unit, self.length_size, |_| Ok(()))
    }
}

/// Classify an access unit by its slice types; `on_sps` sees each in-band SPS first.
fn scan(
    access_unit: &[u8],
    length_size: usize,
    mut on_sps: impl FnMut(&[u8]) -> Result<(), Failure>,
) -> Result<FrameKind, Failure> {
    let mut saw_slice = false;
    for nal in NalIter::new(access_unit, length_size) {
        let nal = nal?;
        let Some(&header) = nal.first() else {
            return Err(Failure::decode("zero-length nal unit in access unit"));
        };
        let nal_ref = RefNal::new(nal, &[], true);
        let unit_type = nal_ref
            .header()
            .map_err(|e| Failure::decode(format!("nal header 0x{header:02x}: {e:?}")))?
            .nal_unit_type();
        match unit_type {
            UnitType::SeqParameterSet => on_sps(nal)?,
            UnitType::SliceLayerWithoutPartitioningIdr
            | UnitType::SliceLayerWithoutPartitioningNonIdr
            | UnitType::SliceDataPartitionALayer => {
                let mut bits = nal_ref.rbsp_bits();
                let slice_type = bits
                    .read_ue("first_mb_in_slice")
                    .and_then(|_| bits.read_ue("slice_type"))
                    .map_err(|e| Failure::decode(format!("slice header: {e:?}")))?;
                // Table 7-6: 0/5 P, 1/6 B, 2/7 I, 3/8 SP, 4/9 SI.
                match slice_type {
                    2 | 4 | 7 | 9 => saw_slice = true,
                    // One non-intra slice is enough to know: stop reading (hot path).
                    0 | 1 | 3 | 5 | 6 | 8 => return Ok(FrameKind::NotIntra),
                    other => {
                        return Err(Failure::decode(format!(
                            "slice_type {other} is out of range 0..=9"
                        )));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(if saw_slice {
        FrameKind::Intra
    } else {
        FrameKind::NotIntra
    })
}

/// Parse an SPS NAL unit (with its header byte). A size field the parser finds absurd is a
/// `LimitExceeded` (the picture is too large), anything else malformed is `DecodeFailed`.
pub fn parse_sps(nal: &[u8]) -> Result<SeqParameterSet, Failure> {
    // `RefNal::new` panics on an empty NAL; a record may declare an SPS of length 0.
    if nal.is_empty() {
        return Err(Failure::decode("zero-length sps nal unit"));
    }
    SeqParameterSet::from_bits(RefNal::new(nal, &[], true).rbsp_bits()).map_err(|e| match e {
        SpsError::FieldValueTooLarge { name, value } if name.starts_with("pic_") => Failure::limit(
            format!("sps {name} {value} is too large: the picture exceeds {MAX_PIXELS} pixels"),
        ),
        other => Failure::decode(format!("sps: {other:?}")),
    })
}

/// Cropped picture size of `sps` in pixels (§7.4.2.1.1, frame_crop_*_offset), with checked
/// arithmetic: stream fields are untrusted.
pub fn coded_size(sps: &SeqParameterSet) -> Result<(u32, u32), Failure> {
    let too_big =
        |field: &str, value: u32| Failure::limit(format!("sps {field} {value} is too large"));
    let width_mbs = sps
        .pic_width_in_mbs_minus1
        .checked_add(1)
        .ok_or_else(|| too_big("pic_width_in_mbs_minus1", sps.pic_width_in_mbs_minus1))?;
    let height_units = sps
        .pic_height_in_map_units_minus1
        .checked_add(1)
        .ok_or_else(|| {
            too_big(
                "pic_height_in_map_units_minus1",
                sps.pic_height_in_map_units_minus1,
            )
        })?;
    let field_factor = match sps.frame_mbs_flags {
        FrameMbsFlags::Fields { .. } => 2,
        FrameMbsFlags::Frames => 1,
    };
    let width = width_mbs
        .checked_mul(16)
        .ok_or_else(|| too_big("pic_width_in_mbs_minus1", sps.pic_width_in_mbs_minus1))?;
    let height = height_units.checked_mul(16 * field_factor).ok_or_else(|| {
        too_big(
            "pic_height_in_map_units_minus1",
            sps.pic_height_in_map_units_minus1,
        )
    })?;
    let Some(crop) = &sps.frame_cropping else {
        return Ok((width, height));
    };
    // CropUnitX/CropUnitY for 4:2:0 (§7.4.2.1.1, eq. 7-19..7-22); other formats are refused
    // later by `check_sps`, so an approximate unit is harmless here.
    let (unit_x, unit_y) = (2u32, 2 * field_factor);
    let crop_w = crop
        .left_offset
        .checked_add(crop.right_offset)
        .and_then(|c| c.checked_mul(unit_x));
    let crop_h = crop
        .top_offset
        .checked_add(crop.bottom_offset)
        .and_then(|c| c.checked_mul(unit_y));
    match (
        crop_w.and_then(|c| width.checked_sub(c)),
        crop_h.and_then(|c| height.checked_sub(c)),
    ) {
        (Some(w), Some(h)) if w > 0 && h > 0 => Ok((w, h)),
        _ => Err(Failure::decode(format!(
            "sps cropping window {crop:?} does not fit a {width}x{height} picture"
        ))),
    }
}

/// Refuse an SPS we will not decode: beyond the size limits, not 8-bit 4:2:0/4:0:0.
pub fn check_sps(sps: &SeqParameterSet) -> Result<(u32, u32), Failure> {
    let (w, h) = coded_size(sps)?;
    if w > MAX_SIDE_PX || h > MAX_SIDE_PX {
        return Err(Failure::limit(format!(
            "sps picture {w}x{h} px exceeds {MAX_SIDE_PX} px a side"
        )));
    }
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(Failure::limit(format!(
            "sps picture {w}x{h} px exceeds {MAX_PIXELS} pixels"
        )));
    }
    let chroma = sps.chroma_info.chroma_format.to_u32();
    if chroma > 1 {
        return Err(Failure::unsupported(format!(
            "chroma_format_idc {chroma} is not supported: only 4:2:0 and 4:0:0 are"
        )));
    }
    if sps.chroma_info.bit_depth_luma_minus8 != 0 || sps.chroma_info.bit_depth_chroma_minus8 != 0 {
        return Err(Failure::unsupported(format!(
            "bit depth {} is not supported: only 8-bit is",
            u32::from(sps.chroma_info.bit_depth_luma_minus8) + 8
        )));
    }
    Ok((w, h))
}

/// Iterates the NAL units of an AVCC-framed buffer, failing on a length past the end.
pub struct NalIter<'a> {
    rest: &'a [u8],
    length_size: usize,
}

impl<'a> NalIter<'a> {
    /// Iterate `data` whose NAL units carry `length_size`-byte big-endian length prefixes.
    pub fn new(data: &'a [u8], length_size: usize) -> Self {
        NalIter {
            rest: data,
            length_size,
        }
    }
}

impl<'a> Iterator for NalIter<'a> {
    type Item = Result<&'a [u8], Failure>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let Some((prefix, after)) = self.rest.split_at_checked(self.length_size) else {
            self.rest = &[];
            return Some(Err(Failure::decode(
                "access unit ends inside a nal length prefix",
            )));
        };
        let len = prefix
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let Some((nal, rest)) = after.split_at_checked(len) else {
            let remaining = after.len();
            self.rest = &[];
            return Some(Err(Failure::decode(format!(
                "nal length {len} runs past the end of the access unit ({remaining} bytes left)"
            ))));
        };
        self.rest = rest;
        Some(Ok(nal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn nal_iter_splits_and_rejects_overruns() {
        let data = [0, 0, 0, 2, 0x65, 0x88, 0, 0, 0, 1, 0x41];
        let nals: Vec<_> = NalIter::new(&data, 4).map(Result::unwrap).collect();
        assert_eq!(nals, vec![&[0x65, 0x88][..], &[0x41][..]]);
        let bad = [0, 0, 0, 9, 0x65];
        let err = NalIter::new(&bad, 4).next().unwrap().unwrap_err();
        assert_eq!(err.code, ErrorCode::DecodeFailed);
        assert!(NalIter::new(&[0, 0], 4).next().unwrap().is_err());
    }

    #[test]
    fn zero_length_sps_in_config_is_an_error_not_a_panic() {
        // Found by `cargo fuzz run avc_config` (minimised): a High-profile record whose one SPS
        // has length 0, then 7 empty PPS. h264-reader's `RefNal::new` panics on an empty NAL.
        let fuzzed = [
            0x01, 0x64, 0x00, 0x31, 0xff, 0xe1, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        // The same by hand: Baseline, 4-byte lengths, one SPS of 0 bytes, no PPS.
        let baseline = [0x01, 0x42, 0x00, 0x1e, 0xff, 0xe1, 0x00, 0x00, 0x00];
        for record in [&fuzzed[..], &baseline[..]] {
            let err = AvcConfig::parse(record).unwrap_err();
            assert_eq!(err.code, ErrorCode::DecodeFailed, "{err}");
        }
        assert_eq!(parse_sps(&[]).unwrap_err().code, ErrorCode::DecodeFailed);
    }

    #[test]
    fn garbage_config_is_an_error_not_a_panic() {
        for record in [&[][..], &[1], &[1, 100, 0, 30, 0xff, 0xe1, 0, 200, 1]] {
            assert!(AvcConfig::parse(record).is_err());
        }
    }
}
