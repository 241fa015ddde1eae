//! HEVC (ITU-T H.265) syntax that capture needs without decoding pixels: the
//! HEVCDecoderConfigurationRecord of an FLV sequence header (ISO/IEC 14496-15 §8.3.3.1), the
//! SPS and PPS fields that size the picture and shape the slice segment header, and the slice
//! segment header up to `slice_type` (§7.3.6.1), from which an access unit is classified for
//! the capture rule: an I-frame is an access unit whose slice segments are all I slices (an
//! IRAP picture — IDR, CRA, BLA — or a non-IRAP all-I picture); the FLV frame type is not read.
//!
//! Every field comes from untrusted bytes: reads are bounds-checked, values range-checked
//! against the spec's limits before they are used as sizes or shifts.

use std::collections::BTreeMap;

use crate::avc::{MAX_PIXELS, MAX_SIDE_PX, NalIter};
use crate::error::{ErrorCode, Failure};

/// NAL unit types (H.265 Table 7-1) that matter here.
pub mod nal_type {
    /// Video parameter set.
    pub const VPS: u8 = 32;
    /// Sequence parameter set.
    pub const SPS: u8 = 33;
    /// Picture parameter set.
    pub const PPS: u8 = 34;
    /// First IRAP type (BLA_W_LP).
    pub const BLA_W_LP: u8 = 16;
    /// IDR_W_RADL.
    pub const IDR_W_RADL: u8 = 19;
    /// IDR_N_LP.
    pub const IDR_N_LP: u8 = 20;
    /// CRA_NUT.
    pub const CRA: u8 = 21;
    /// Last reserved IRAP type.
    pub const RSV_IRAP_23: u8 = 23;
}

/// `general_profile_idc` values (H.265 Annex A) we name in messages.
fn profile_name(idc: u8) -> &'static str {
    match idc {
        1 => "main",
        2 => "main 10",
        3 => "main still picture",
        4 => "format range extensions",
        5 => "high throughput",
        6 => "multiview main",
        7 => "scalable main",
        8 => "3d main",
        9 => "screen content coding",
        10 => "scalable format range extensions",
        11 => "high throughput screen content coding",
        _ => "unknown",
    }
}

/// The nal_unit_type of an HEVC NAL unit (its 2-byte header, §7.3.1.2).
pub fn nal_unit_type(nal: &[u8]) -> Result<u8, Failure> {
    match nal {
        [first, _, ..] => {
            if first & 0x80 != 0 {
                return Err(Failure::decode(format!(
                    "hevc nal header 0x{first:02x}: forbidden_zero_bit is set"
                )));
            }
            Ok((first >> 1) & 0x3f)
        }
        _ => Err(Failure::decode(format!(
            "hevc nal unit of {} bytes is shorter than its 2-byte header",
            nal.len()
        ))),
    }
}

/// True for the VCL NAL unit types that carry a slice segment (0..=9 and 16..=21; 22/23 and
/// 10..=15 are reserved).
pub fn is_slice_segment(unit_type: u8) -> bool {
    unit_type <= 9 || (nal_type::BLA_W_LP..=nal_type::CRA).contains(&unit_type)
}

/// Reads RBSP bits of a NAL unit: emulation prevention bytes (0x000003) removed on the fly.
pub struct BitReader<'a> {
    data: &'a [u8],
    /// Index of the next byte to load.
    pos: usize,
    /// Zero bytes seen in a row (for emulation prevention).
    zeros: u32,
    /// Current byte and how many of its bits are left.
    byte: u8,
    bits_left: u32,
}

impl<'a> BitReader<'a> {
    /// Read the RBSP of `payload` (the NAL unit after its header).
    pub fn new(payload: &'a [u8]) -> Self {
        BitReader {
            data: payload,
            pos: 0,
            zeros: 0,
            byte: 0,
            bits_left: 0,
        }
    }

    fn load(&mut self, field: &str) -> Result<(), Failure> {
        loop {
            let Some(&b) = self.data.get(self.pos) else {
                return Err(Failure::decode(format!(
                    "hevc rbsp ends while reading {field}"
                )));
            };
            self.pos += 1;
            if self.zeros >= 2 && b == 3 {
                self.zeros = 0;
                continue;
            }
            self.zeros = if b == 0 { self.zeros + 1 } else { 0 };
            self.byte = b;
            self.bits_left = 8;
            return Ok(());
        }
    }

    /// One bit.
    pub fn flag(&mut self, field: &str) -> Result<bool, Failure> {
        if self.bits_left == 0 {
            self.load(field)?;
        }
        self.bits_left -= 1;
        Ok((self.byte >> self.bits_left) & 1 == 1)
    }

    /// `u(n)`, n <= 32.
    pub fn bits(&mut self, n: u32, field: &str) -> Result<u32, Failure> {
        let mut v = 0u32;
        for _ in 0..n.min(32) {
            v = (v << 1) | u32::from(self.flag(field)?);
        }
        Ok(v)
    }

    /// Skip `n` bits.
    pub fn skip(&mut self, n: u32, field: &str) -> Result<(), Failure> {
        for _ in 0..n {
            self.flag(field)?;
        }
        Ok(())
    }

    /// `ue(v)`, at most 32 leading zeros (values up to 2^32 - 2).
    pub fn ue(&mut self, field: &str) -> Result<u32, Failure> {
        let mut zeros = 0u32;
        while !self.flag(field)? {
            zeros += 1;
            if zeros > 31 {
                return Err(Failure::decode(format!(
                    "hevc {field}: exp-golomb code longer than 32 bits"
                )));
            }
        }
        let rest = self.bits(zeros, field)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)) as u32)
    }

    /// `ue(v)` that must not exceed `max` (the spec's range for the field).
    pub fn ue_max(&mut self, field: &str, max: u32) -> Result<u32, Failure> {
        let v = self.ue(field)?;
        if v > max {
            return Err(Failure::decode(format!(
                "hevc {field} {v} is out of range 0..={max}"
            )));
        }
        Ok(v)
    }

    /// `se(v)`.
    pub fn se(&mut self, field: &str) -> Result<i32, Failure> {
        let k = self.ue(field)?;
        let magnitude = k.div_ceil(2) as i32;
        Ok(if k & 1 == 1 { magnitude } else { -magnitude })
    }
}

/// Colour description of the VUI (§E.2.1), as coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColourInfo {
    /// `video_full_range_flag`.
    pub full_range: bool,
    /// `colour_primaries` (2 = unspecified).
    pub colour_primaries: u8,
    /// `transfer_characteristics` (16 = PQ, 18 = HLG, 2 = unspecified).
    pub transfer: u8,
    /// `matrix_coefficients` (1 BT.709, 9 BT.2020 non-constant, 2 unspecified).
    pub matrix: u8,
}

impl Default for ColourInfo {
    fn default() -> Self {
        ColourInfo {
            full_range: false,
            colour_primaries: 2,
            transfer: 2,
            matrix: 2,
        }
    }
}

/// The SPS fields livesnap uses (§7.3.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sps {
    /// `sps_seq_parameter_set_id`, 0..=15.
    pub id: u32,
    /// `general_profile_idc`.
    pub profile_idc: u8,
    /// `general_profile_compatibility_flag[j]`, bit 31 - j.
    pub profile_compat: u32,
    /// `general_level_idc` (30 × level).
    pub level_idc: u8,
    /// 0 4:0:0, 1 4:2:0, 2 4:2:2, 3 4:4:4.
    pub chroma_format_idc: u32,
    /// Coded size in luma samples (`pic_width/height_in_luma_samples`).
    pub coded_width: u32,
    /// See `coded_width`.
    pub coded_height: u32,
    /// Conformance window in luma samples: left, right, top, bottom.
    pub crop_px: [u32; 4],
    /// BitDepthY.
    pub bit_depth_luma: u32,
    /// BitDepthC.
    pub bit_depth_chroma: u32,
    /// PicSizeInCtbsY.
    pub pic_size_in_ctbs: u32,
    /// CtbLog2SizeY, 4..=6.
    pub log2_ctb: u32,
    /// The VUI colour description (defaults when absent).
    pub colour: ColourInfo,
}

impl Sps {
    /// Display size: the coded size minus the conformance window.
    pub fn display_size(&self) -> (u32, u32) {
        let [l, r, t, b] = self.crop_px;
        (
            self.coded_width.saturating_sub(l.saturating_add(r)),
            self.coded_height.saturating_sub(t.saturating_add(b)),
        )
    }

    /// The profile as a human name ("main", "main 10", …), falling back on the compatibility
    /// flags when `general_profile_idc` is 0 (allowed by Annex A for some encoders).
    pub fn profile_name(&self) -> &'static str {
        if self.profile_idc == 0 {
            for idc in 1..=3u8 {
                if self.profile_compat & (1 << (31 - u32::from(idc))) != 0 {
                    return profile_name(idc);
                }
            }
        }
        profile_name(self.profile_idc)
    }

    /// Refuse what livesnap does not render: pictures beyond the size limits (checked on the
    /// coded size, which is what a decoder allocates), and anything outside Main, Main 10 and
    /// Main Still Picture — 4:0:0/4:2:2/4:4:4 chroma, more than 10 bits, screen content coding.
    pub fn check(&self) -> Result<(), Failure> {
        let (w, h) = (self.coded_width, self.coded_height);
        if w == 0 || h == 0 {
            return Err(Failure::decode(format!(
                "hevc sps picture {w}x{h} is empty"
            )));
        }
        if w > MAX_SIDE_PX || h > MAX_SIDE_PX {
            return Err(Failure::limit(format!(
                "hevc sps picture {w}x{h} px exceeds {MAX_SIDE_PX} px a side"
            )));
        }
        if u64::from(w) * u64::from(h) > MAX_PIXELS {
            return Err(Failure::limit(format!(
                "hevc sps picture {w}x{h} px exceeds {MAX_PIXELS} pixels"
            )));
        }
        let (dw, dh) = self.display_size();
        if dw == 0 || dh == 0 {
            return Err(Failure::decode(format!(
                "hevc sps conformance window {:?} leaves nothing of a {w}x{h} picture",
                self.crop_px
            )));
        }
        let profile = self.profile_name();
        if self.chroma_format_idc != 1 {
            let chroma = match self.chroma_format_idc {
                0 => "4:0:0",
                2 => "4:2:2",
                _ => "4:4:4",
            };
            return Err(Failure::unsupported(format!(
                "hevc {chroma} chroma ({profile} profile) is not supported: \
                 only 4:2:0 (main, main 10, main still picture) is"
            )));
        }
        if self.bit_depth_luma > 10 || self.bit_depth_chroma > 10 {
            return Err(Failure::unsupported(format!(
                "hevc {}-bit video ({profile} profile) is not supported: only 8 and 10 bits are",
                self.bit_depth_luma.max(self.bit_depth_chroma)
            )));
        }
        if matches!(self.profile_idc, 9 | 11) {
            return Err(Failure::unsupported(format!(
                "hevc {profile} profile is not supported: only main, main 10 and main still \
                 picture are"
            )));
        }
        Ok(())
    }
}

/// profile_tier_level(1, sps_max_sub_layers_minus1) (§7.3.3): (profile_idc, compat, level).
fn profile_tier_level(
    r: &mut BitReader,
    max_sub_layers_minus1: u32,
) -> Result<(u8, u32, u8), Failure> {
    r.skip(3, "general_profile_space/tier")?;
    let profile = r.bits(5, "general_profile_idc")? as u8;
    let compat = r.bits(32, "general_profile_compatibility_flags")?;
    r.skip(48, "general constraint flags")?;
    let level = r.bits(8, "general_level_idc")? as u8;
    let mut present = [(false, false); 7];
    for p in present.iter_mut().take(max_sub_layers_minus1 as usize) {
        *p = (
            r.flag("sub_layer_profile_present_flag")?,
            r.flag("sub_layer_level_present_flag")?,
        );
    }
    if max_sub_layers_minus1 > 0 {
        r.skip(2 * (8 - max_sub_layers_minus1), "reserved_zero_2bits")?;
    }
    for &(profile_present, level_present) in present.iter().take(max_sub_layers_minus1 as usize) {
        if profile_present {
            r.skip(88, "sub_layer profile")?;
        }
        if level_present {
            r.skip(8, "sub_layer_level_idc")?;
        }
    }
    Ok((profile, compat, level))
}

/// scaling_list_data() (§7.3.4): read and discarded.
fn skip_scaling_list_data(r: &mut BitReader) -> Result<(), Failure> {
    for size_id in 0..4u32 {
        let step = if size_id == 3 { 3 } else { 1 };
        for _ in (0..6).step_by(step) {
            if !r.flag("scaling_list_pred_mode_flag")? {
                r.ue_max("scaling_list_pred_matrix_id_delta", 5)?;
            } else {
                let coefs = 64.min(1u32 << (4 + (size_id << 1)));
                if size_id > 1 {
                    r.se("scaling_list_dc_coef_minus8")?;
                }
                for _ in 0..coefs {
                    r.se("scaling_list_delta_coef")?;
                }
            }
        }
    }
    Ok(())
}

/// st_ref_pic_set(idx) of an SPS (§7.3.7); returns NumDeltaPocs[idx].
fn st_ref_pic_set(r: &mut BitReader, idx: usize, num_delta_pocs: &[u32]) -> Result<u32, Failure> {
    let inter = idx != 0 && r.flag("inter_ref_pic_set_prediction_flag")?;
    if inter {
        // In an SPS the reference set is the previous one (delta_idx_minus1 is slice-only).
        let reference = num_delta_pocs.get(idx - 1).copied().unwrap_or(0);
        r.flag("delta_rps_sign")?;
        r.ue_max("abs_delta_rps_minus1", (1 << 15) - 1)?;
        let mut count = 0;
        for _ in 0..=reference {
            let used = r.flag("used_by_curr_pic_flag")?;
            let use_delta = used || r.flag("use_delta_flag")?;
            if use_delta {
                count += 1;
            }
        }
        return Ok(count);
    }
    let negative = r.ue_max("num_negative_pics", 16)?;
    let positive = r.ue_max("num_positive_pics", 16)?;
    for _ in 0..negative + positive {
        r.ue_max("delta_poc_minus1", (1 << 15) - 1)?;
        r.flag("used_by_curr_pic_flag")?;
    }
    Ok(negative + positive)
}

/// Parse an SPS NAL unit (with its 2-byte header).
pub fn parse_sps(nal: &[u8]) -> Result<Sps, Failure> {
    let mut r = BitReader::new(nal.get(2..).unwrap_or_default());
    r.skip(4, "sps_video_parameter_set_id")?;
    let max_sub_layers_minus1 = r.bits(3, "sps_max_sub_layers_minus1")?;
    if max_sub_layers_minus1 > 6 {
        return Err(Failure::decode(format!(
            "hevc sps_max_sub_layers_minus1 {max_sub_layers_minus1} is out of range 0..=6"
        )));
    }
    r.skip(1, "sps_temporal_id_nesting_flag")?;
    let (profile_idc, profile_compat, level_idc) =
        profile_tier_level(&mut r, max_sub_layers_minus1)?;
    let id = r.ue_max("sps_seq_parameter_set_id", 15)?;
    let chroma_format_idc = r.ue_max("chroma_format_idc", 3)?;
    if chroma_format_idc == 3 {
        r.skip(1, "separate_colour_plane_flag")?;
    }
    // Sizes are bounded before any arithmetic: a hostile SPS must not overflow or allocate.
    let coded_width = r.ue("pic_width_in_luma_samples")?;
    let coded_height = r.ue("pic_height_in_luma_samples")?;
    let mut crop_px = [0u32; 4];
    if r.flag("conformance_window_flag")? {
        // SubWidthC/SubHeightC (Table 6-1): 2 for 4:2:0 horizontally and vertically.
        let (sub_w, sub_h) = match chroma_format_idc {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        for (i, c) in crop_px.iter_mut().enumerate() {
            let offset = r.ue("conf_win_offset")?;
            let unit = if i < 2 { sub_w } else { sub_h };
            *c = offset.saturating_mul(unit);
        }
    }
    let bit_depth_luma = r.ue_max("bit_depth_luma_minus8", 8)? + 8;
    let bit_depth_chroma = r.ue_max("bit_depth_chroma_minus8", 8)? + 8;
    let log2_max_poc_lsb = r.ue_max("log2_max_pic_order_cnt_lsb_minus4", 12)? + 4;
    let ordering_all = r.flag("sps_sub_layer_ordering_info_present_flag")?;
    let first = if ordering_all {
        0
    } else {
        max_sub_layers_minus1
    };
    for _ in first..=max_sub_layers_minus1 {
        r.ue("sps_max_dec_pic_buffering_minus1")?;
        r.ue("sps_max_num_reorder_pics")?;
        r.ue("sps_max_latency_increase_plus1")?;
    }
    let log2_min_cb = r.ue_max("log2_min_luma_coding_block_size_minus3", 3)? + 3;
    let log2_ctb = log2_min_cb + r.ue_max("log2_diff_max_min_luma_coding_block_size", 3)?;
    if !(4..=6).contains(&log2_ctb) {
        return Err(Failure::decode(format!(
            "hevc ctb size 2^{log2_ctb} is out of range 16..=64"
        )));
    }
    let ctb = 1u32 << log2_ctb;
    let pic_size_in_ctbs =
        u64::from(coded_width.div_ceil(ctb)) * u64::from(coded_height.div_ceil(ctb));
    let pic_size_in_ctbs = u32::try_from(pic_size_in_ctbs).unwrap_or(u32::MAX);
    let mut sps = Sps {
        id,
        profile_idc,
        profile_compat,
        level_idc,
        chroma_format_idc,
        coded_width,
        coded_height,
        crop_px,
        bit_depth_luma,
        bit_depth_chroma,
        pic_size_in_ctbs,
        log2_ctb,
        colour: ColourInfo::default(),
    };
    // The rest leads to the VUI colour description. A stream that ends early still has a
    // usable size: the colour defaults stay (BT.601 limited, SDR), as for an SPS without VUI.
    if let Ok(colour) = parse_to_vui(&mut r, log2_max_poc_lsb) {
        sps.colour = colour;
    }
    Ok(sps)
}

fn parse_to_vui(r: &mut BitReader, log2_max_poc_lsb: u32) -> Result<ColourInfo, Failure> {
    r.ue("log2_min_luma_transform_block_size_minus2")?;
    r.ue("log2_diff_max_min_luma_transform_block_size")?;
    r.ue("max_transform_hierarchy_depth_inter")?;
    r.ue("max_transform_hierarchy_depth_intra")?;
    if r.flag("scaling_list_enabled_flag")? && r.flag("sps_scaling_list_data_present_flag")? {
        skip_scaling_list_data(r)?;
    }
    r.skip(2, "amp/sao flags")?;
    if r.flag("pcm_enabled_flag")? {
        r.skip(8, "pcm_sample_bit_depth")?;
        r.ue("log2_min_pcm_luma_coding_block_size_minus3")?;
        r.ue("log2_diff_max_min_pcm_luma_coding_block_size")?;
        r.skip(1, "pcm_loop_filter_disabled_flag")?;
    }
    let sets = r.ue_max("num_short_term_ref_pic_sets", 64)? as usize;
    let mut num_delta_pocs = Vec::with_capacity(sets);
    for idx in 0..sets {
        let n = st_ref_pic_set(r, idx, &num_delta_pocs)?;
        num_delta_pocs.push(n);
    }
    if r.flag("long_term_ref_pics_present_flag")? {
        for _ in 0..r.ue_max("num_long_term_ref_pics_sps", 32)? {
            r.skip(log2_max_poc_lsb + 1, "lt_ref_pic_poc_lsb_sps")?;
        }
    }
    r.skip(2, "temporal mvp / strong intra smoothing")?;
    let mut colour = ColourInfo::default();
    if !r.flag("vui_parameters_present_flag")? {
        return Ok(colour);
    }
    if r.flag("aspect_ratio_info_present_flag")? && r.bits(8, "aspect_ratio_idc")? == 255 {
        r.skip(32, "sar")?;
    }
    if r.flag("overscan_info_present_flag")? {
        r.skip(1, "overscan_appropriate_flag")?;
    }
    if r.flag("video_signal_type_present_flag")? {
        r.skip(3, "video_format")?;
        colour.full_range = r.flag("video_full_range_flag")?;
        if r.flag("colour_description_present_flag")? {
            colour.colour_primaries = r.bits(8, "colour_primaries")? as u8;
            colour.transfer = r.bits(8, "transfer_characteristics")? as u8;
            colour.matrix = r.bits(8, "matrix_coeffs")? as u8;
        }
    }
    Ok(colour)
}

/// The PPS fields the slice segment header needs (§7.3.2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pps {
    /// `pps_pic_parameter_set_id`, 0..=63.
    pub id: u32,
    /// `pps_seq_parameter_set_id`, 0..=15.
    pub sps_id: u32,
    /// `dependent_slice_segments_enabled_flag`.
    pub dependent_slice_segments: bool,
    /// `num_extra_slice_header_bits`.
    pub extra_slice_header_bits: u32,
}

/// Parse a PPS NAL unit (with its header).
pub fn parse_pps(nal: &[u8]) -> Result<Pps, Failure> {
    let mut r = BitReader::new(nal.get(2..).unwrap_or_default());
    let id = r.ue_max("pps_pic_parameter_set_id", 63)?;
    let sps_id = r.ue_max("pps_seq_parameter_set_id", 15)?;
    let dependent_slice_segments = r.flag("dependent_slice_segments_enabled_flag")?;
    r.skip(1, "output_flag_present_flag")?;
    let extra_slice_header_bits = r.bits(3, "num_extra_slice_header_bits")?;
    Ok(Pps {
        id,
        sps_id,
        dependent_slice_segments,
        extra_slice_header_bits,
    })
}

/// `slice_type` of a slice segment (§7.4.7.1, Table 7-7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceType {
    /// 0.
    B,
    /// 1.
    P,
    /// 2.
    I,
}

/// What one slice segment header says, for classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceSegment {
    /// `first_slice_segment_in_pic_flag`.
    pub first_in_picture: bool,
    /// `dependent_slice_segment_flag`: the type is the previous independent segment's.
    pub dependent: bool,
    /// The type, for an independent segment.
    pub slice_type: Option<SliceType>,
}

/// Parameter sets in force, by id.
#[derive(Debug, Clone, Default)]
pub struct ParamSets {
    /// SPS by `sps_seq_parameter_set_id`.
    pub sps: BTreeMap<u32, Sps>,
    /// PPS by `pps_pic_parameter_set_id`.
    pub pps: BTreeMap<u32, Pps>,
}

impl ParamSets {
    /// Take in a VPS/SPS/PPS NAL unit; other types are ignored. Returns the parsed SPS.
    pub fn add(&mut self, nal: &[u8]) -> Result<Option<Sps>, Failure> {
        match nal_unit_type(nal)? {
            nal_type::SPS => {
                let sps = parse_sps(nal)?;
                self.sps.insert(sps.id, sps.clone());
                Ok(Some(sps))
            }
            nal_type::PPS => {
                let pps = parse_pps(nal)?;
                self.pps.insert(pps.id, pps);
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// Parse a slice segment header up to `slice_type` (§7.3.6.1).
    pub fn slice_segment(&self, nal: &[u8]) -> Result<(SliceSegment, &Sps), Failure> {
        let unit_type = nal_unit_type(nal)?;
        let mut r = BitReader::new(nal.get(2..).unwrap_or_default());
        let first_in_picture = r.flag("first_slice_segment_in_pic_flag")?;
        if (nal_type::BLA_W_LP..=nal_type::RSV_IRAP_23).contains(&unit_type) {
            r.skip(1, "no_output_of_prior_pics_flag")?;
        }
        let pps_id = r.ue_max("slice_pic_parameter_set_id", 63)?;
        let pps = self.pps.get(&pps_id).ok_or_else(|| {
            Failure::decode(format!(
                "hevc slice refers to pps {pps_id}, which was never sent"
            ))
        })?;
        let sps = self.sps.get(&pps.sps_id).ok_or_else(|| {
            Failure::decode(format!(
                "hevc pps {pps_id} refers to sps {}, which was never sent",
                pps.sps_id
            ))
        })?;
        let mut dependent = false;
        if !first_in_picture {
            if pps.dependent_slice_segments {
                dependent = r.flag("dependent_slice_segment_flag")?;
            }
            // slice_segment_address is u(v), v = Ceil(Log2(PicSizeInCtbsY)).
            let bits = u32::BITS - sps.pic_size_in_ctbs.saturating_sub(1).leading_zeros();
            let address = r.bits(bits, "slice_segment_address")?;
            if address >= sps.pic_size_in_ctbs {
                return Err(Failure::decode(format!(
                    "hevc slice_segment_address {address} is beyond the picture's {} ctbs",
                    sps.pic_size_in_ctbs
                )));
            }
        }
        if dependent {
            return Ok((
                SliceSegment {
                    first_in_picture,
                    dependent,
                    slice_type: None,
                },
                sps,
            ));
        }
        r.skip(pps.extra_slice_header_bits, "slice_reserved_flag")?;
        let slice_type = match r.ue("slice_type")? {
            0 => SliceType::B,
            1 => SliceType::P,
            2 => SliceType::I,
            other => {
                return Err(Failure::decode(format!(
                    "hevc slice_type {other} is out of range 0..=2"
                )));
            }
        };
        Ok((
            SliceSegment {
                first_in_picture,
                dependent,
                slice_type: Some(slice_type),
            },
            sps,
        ))
    }
}

/// What an access unit is, for the capture rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Every slice segment is (or depends on) an I slice.
    Intra,
    /// A P or B slice, or no slice segment at all.
    NotIntra,
}

/// Classify the slice segments of an access unit, given each header: all independent
/// segments I (dependent ones inherit their type), and at least one segment.
pub fn classify_segments(segments: &[SliceSegment]) -> FrameKind {
    let all_i = !segments.is_empty()
        && segments
            .iter()
            .all(|s| s.dependent || s.slice_type == Some(SliceType::I));
    if all_i {
        FrameKind::Intra
    } else {
        FrameKind::NotIntra
    }
}

/// A parsed HEVCDecoderConfigurationRecord: the NAL length size and the parameter-set NAL
/// units of its arrays, borrowed.
#[derive(Debug, Clone)]
pub struct ConfigRecord<'a> {
    /// Bytes of each NAL length prefix (1, 2 or 4).
    pub length_size: usize,
    /// `general_profile_idc` of the record.
    pub profile_idc: u8,
    /// The NAL units of every array, in order.
    pub nals: Vec<&'a [u8]>,
}

/// Parse an HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 §8.3.3.1.2): 22 fixed bytes,
/// `lengthSizeMinusOne` in the low 2 bits of byte 21, `numOfArrays` at byte 22, then arrays of
/// (type byte, u16 count, count × (u16 length, NAL unit)).
pub fn parse_config_record(record: &[u8]) -> Result<ConfigRecord<'_>, Failure> {
    let malformed = |what: String| {
        Failure::decode(format!(
            "hevc decoder configuration record of {} bytes: {what}",
            record.len()
        ))
    };
    let (Some(&version), Some(&ptl), Some(&lengths), Some(&arrays)) = (
        record.first(),
        record.get(1),
        record.get(21),
        record.get(22),
    ) else {
        return Err(malformed("shorter than its 23-byte header".into()));
    };
    if version != 1 {
        return Err(malformed(format!(
            "configurationVersion {version}, expected 1"
        )));
    }
    let length_size = usize::from(lengths & 3) + 1;
    if length_size == 3 {
        return Err(malformed("nal length size 3 is not allowed".into()));
    }
    let mut nals = Vec::new();
    let mut pos = 23usize;
    let read_u16 = |pos: usize| -> Option<usize> {
        let b = record.get(pos..pos.checked_add(2)?)?;
        Some(usize::from(u16::from_be_bytes([*b.first()?, *b.get(1)?])))
    };
    for array in 0..arrays {
        let count =
            read_u16(pos + 1).ok_or_else(|| malformed(format!("array {array} cut short")))?;
        pos += 3;
        for _ in 0..count {
            let len = read_u16(pos).ok_or_else(|| malformed(format!("array {array} cut short")))?;
            let nal = record
                .get(pos + 2..pos + 2 + len)
                .ok_or_else(|| malformed(format!("a nal unit of {len} bytes runs past the end")))?;
            nals.push(nal);
            pos += 2 + len;
        }
    }
    Ok(ConfigRecord {
        length_size,
        profile_idc: ptl & 0x1f,
        nals,
    })
}

/// The HEVC configuration in force for a stream (capture side).
#[derive(Debug, Clone)]
pub struct HevcConfig {
    /// The record bytes, handed to render with each shot.
    record: Vec<u8>,
    length_size: usize,
    params: ParamSets,
    /// Set when an SPS breaks a limit or is unsupported: due I-frames are refused.
    refusal: Option<Failure>,
}

/// VPS, SPS or PPS.
fn is_parameter_set(unit_type: u8) -> bool {
    matches!(unit_type, nal_type::VPS | nal_type::SPS | nal_type::PPS)
}

/// Check an SPS: a `DecodeFailed` is an error, a limit or unsupported feature a refusal.
fn sps_verdict(sps: &Sps, refusal: &mut Option<Failure>) -> Result<(), Failure> {
    match sps.check() {
        Ok(()) => Ok(()),
        Err(f) if f.code == ErrorCode::DecodeFailed => Err(f),
        Err(f) => {
            *refusal = Some(f);
            Ok(())
        }
    }
}

impl HevcConfig {
    /// Parse a record and its parameter sets. An SPS beyond the limits or unsupported parses
    /// but carries a refusal; a record that does not parse, or has no SPS, is an error.
    pub fn parse(record: &[u8]) -> Result<HevcConfig, Failure> {
        let parsed = parse_config_record(record)?;
        let mut params = ParamSets::default();
        let mut refusal = None;
        for nal in &parsed.nals {
            if let Some(sps) = params.add(nal)? {
                sps_verdict(&sps, &mut refusal)?;
            }
        }
        if params.sps.is_empty() {
            return Err(Failure::decode(
                "hevc decoder configuration record has no sps",
            ));
        }
        Ok(HevcConfig {
            record: record.to_vec(),
            length_size: parsed.length_size,
            params,
            refusal,
        })
    }

    /// The record bytes.
    pub fn record(&self) -> &[u8] {
        &self.record
    }

    /// Why due I-frames cannot be rendered, if they cannot.
    pub fn refusal(&self) -> Option<&Failure> {
        self.refusal.as_ref()
    }

    /// The parameter sets in force.
    pub fn params(&self) -> &ParamSets {
        &self.params
    }

    /// Classify `access_unit` (length-prefixed NAL units) by its slice segment headers.
    /// In-band parameter sets are taken in (and checked) first, as a decoder would.
    pub fn classify(&mut self, access_unit: &[u8]) -> Result<FrameKind, Failure> {
        for nal in NalIter::new(access_unit, self.length_size) {
            let nal = nal?;
            if is_parameter_set(nal_unit_type(nal)?)
                && let Some(sps) = self.params.add(nal)?
            {
                sps_verdict(&sps, &mut self.refusal)?;
            }
        }
        self.slice_kind(access_unit)
    }

    /// [`HevcConfig::classify`] without changing the configuration: for frames that are not
    /// due. An access unit carrying its own parameter sets is classified on a copy.
    pub fn peek(&self, access_unit: &[u8]) -> Result<FrameKind, Failure> {
        for nal in NalIter::new(access_unit, self.length_size) {
            if is_parameter_set(nal_unit_type(nal?)?) {
                return self.clone().classify(access_unit);
            }
        }
        self.slice_kind(access_unit)
    }

    /// The frame kind by the slice segment headers, with the parameter sets in force.
    fn slice_kind(&self, access_unit: &[u8]) -> Result<FrameKind, Failure> {
        let mut segments = Vec::new();
        for nal in NalIter::new(access_unit, self.length_size) {
            let nal = nal?;
            if is_slice_segment(nal_unit_type(nal)?) {
                let (segment, _) = self.params.slice_segment(nal)?;
                if segment.slice_type.is_some_and(|t| t != SliceType::I) {
                    // One non-intra segment is enough to know: stop reading (hot path).
                    return Ok(FrameKind::NotIntra);
                }
                segments.push(segment);
            }
        }
        Ok(classify_segments(&segments))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Writes bits MSB first, with emulation prevention, for building NAL units in tests.
    #[derive(Default)]
    struct BitWriter {
        bits: Vec<bool>,
    }

    impl BitWriter {
        fn u(&mut self, n: u32, v: u32) {
            for i in (0..n).rev() {
                self.bits.push((v >> i) & 1 == 1);
            }
        }
        fn ue(&mut self, v: u32) {
            let x = u64::from(v) + 1;
            let len = 64 - x.leading_zeros();
            for _ in 1..len {
                self.bits.push(false);
            }
            for i in (0..len).rev() {
                self.bits.push((x >> i) & 1 == 1);
            }
        }
        fn nal(mut self, unit_type: u8) -> Vec<u8> {
            self.bits.push(true); // rbsp_stop_one_bit
            while !self.bits.len().is_multiple_of(8) {
                self.bits.push(false);
            }
            let mut out = vec![unit_type << 1, 1];
            let mut zeros = 0;
            for chunk in self.bits.chunks(8) {
                let b = chunk.iter().fold(0u8, |a, &x| (a << 1) | u8::from(x));
                if zeros >= 2 && b <= 3 {
                    out.push(3);
                    zeros = 0;
                }
                zeros = if b == 0 { zeros + 1 } else { 0 };
                out.push(b);
            }
            out
        }
    }

    /// A Main-profile SPS of `w`×`h`, CTB 64, with a conformance window (luma samples).
    fn sps_nal(w: u32, h: u32, crop: [u32; 4], chroma: u32, bit_depth: u32) -> Vec<u8> {
        let mut b = BitWriter::default();
        b.u(4, 0);
        b.u(3, 0);
        b.u(1, 1);
        b.u(3, 0);
        b.u(5, if bit_depth > 8 { 2 } else { 1 });
        b.u(32, 0x6000_0000);
        b.u(32, 0);
        b.u(16, 0);
        b.u(8, 93);
        b.ue(0);
        b.ue(chroma);
        if chroma == 3 {
            b.u(1, 0);
        }
        b.ue(w);
        b.ue(h);
        let cropped = crop.iter().any(|&c| c != 0);
        b.u(1, u32::from(cropped));
        if cropped {
            for c in crop {
                b.ue(c / 2);
            }
        }
        b.ue(bit_depth - 8);
        b.ue(bit_depth - 8);
        b.ue(4);
        b.u(1, 1);
        b.ue(4);
        b.ue(2);
        b.ue(0);
        b.ue(0); // log2_min_cb 8
        b.ue(3); // ctb 64
        b.ue(0);
        b.ue(3);
        b.ue(1);
        b.ue(1);
        b.u(1, 0); // scaling lists
        b.u(2, 3);
        b.u(1, 0); // pcm
        b.ue(1); // one st_ref_pic_set
        b.ue(1);
        b.ue(0);
        b.ue(0);
        b.u(1, 1);
        b.u(1, 0); // long-term
        b.u(2, 3);
        b.u(1, 1); // vui
        b.u(1, 0);
        b.u(1, 0);
        b.u(1, 1);
        b.u(3, 5);
        b.u(1, 1); // full range
        b.u(1, 1);
        b.u(8, 9);
        b.u(8, 16);
        b.u(8, 9);
        b.nal(nal_type::SPS)
    }

    fn pps_nal(dependent: bool, extra_bits: u32) -> Vec<u8> {
        let mut b = BitWriter::default();
        b.ue(0);
        b.ue(0);
        b.u(1, u32::from(dependent));
        b.u(1, 0);
        b.u(3, extra_bits);
        b.u(8, 0);
        b.nal(nal_type::PPS)
    }

    /// A slice segment header up to slice_type (address width for `ctbs` CTBs).
    fn slice_nal(
        unit_type: u8,
        first: bool,
        dependent: Option<bool>,
        ctbs: u32,
        extra_bits: u32,
        slice_type: u32,
    ) -> Vec<u8> {
        let mut b = BitWriter::default();
        b.u(1, u32::from(first));
        if (16..=23).contains(&unit_type) {
            b.u(1, 0);
        }
        b.ue(0);
        if !first {
            if let Some(d) = dependent {
                b.u(1, u32::from(d));
            }
            let bits = 32 - (ctbs - 1).leading_zeros();
            b.u(bits, 1);
        }
        if dependent != Some(true) {
            b.u(extra_bits, 0);
            b.ue(slice_type);
        }
        b.u(16, 0xabcd);
        b.nal(unit_type)
    }

    #[test]
    fn sps_fields_and_colour_description() {
        let sps = parse_sps(&sps_nal(648, 368, [0, 6, 0, 6], 1, 10)).unwrap();
        assert_eq!((sps.coded_width, sps.coded_height), (648, 368));
        assert_eq!(sps.display_size(), (642, 362));
        assert_eq!(sps.bit_depth_luma, 10);
        assert_eq!(sps.profile_name(), "main 10");
        assert_eq!(sps.pic_size_in_ctbs, 11 * 6);
        assert_eq!(
            sps.colour,
            ColourInfo {
                full_range: true,
                colour_primaries: 9,
                transfer: 16,
                matrix: 9
            }
        );
        assert!(sps.check().is_ok());
    }

    #[test]
    fn sps_limits_and_unsupported_formats_are_refused_by_name() {
        let big = parse_sps(&sps_nal(8200, 64, [0; 4], 1, 8)).unwrap();
        assert_eq!(big.check().unwrap_err().code, ErrorCode::LimitExceeded);
        let area = parse_sps(&sps_nal(8000, 5000, [0; 4], 1, 8)).unwrap();
        assert_eq!(area.check().unwrap_err().code, ErrorCode::LimitExceeded);
        let rext = parse_sps(&sps_nal(64, 64, [0; 4], 3, 8))
            .unwrap()
            .check()
            .unwrap_err();
        assert_eq!(rext.code, ErrorCode::UnsupportedStream);
        assert!(rext.message.contains("4:4:4"), "{rext}");
        let deep = parse_sps(&sps_nal(64, 64, [0; 4], 1, 12))
            .unwrap()
            .check()
            .unwrap_err();
        assert!(deep.message.contains("12-bit"), "{deep}");
    }

    #[test]
    fn garbage_never_panics() {
        for bytes in [
            &[][..],
            &[0x42],
            &[0x42, 1],
            &[0x42, 1, 0xff, 0xff, 0xff],
            &[0x80, 0],
        ] {
            let _ = parse_sps(bytes);
            let _ = parse_pps(bytes);
            let _ = ParamSets::default().slice_segment(bytes);
            let _ = parse_config_record(bytes);
            let _ = HevcConfig::parse(bytes);
        }
    }

    fn record(nals: &[Vec<u8>]) -> Vec<u8> {
        let mut r = vec![
            1, 1, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 93, 0xf0, 0, 0xfc, 0xfd, 0xf8, 0xf8, 0, 0,
            0x0f,
        ];
        r.push(nals.len() as u8);
        for n in nals {
            r.push(0x80 | ((n[0] >> 1) & 0x3f));
            r.extend_from_slice(&1u16.to_be_bytes());
            r.extend_from_slice(&(n.len() as u16).to_be_bytes());
            r.extend_from_slice(n);
        }
        r
    }

    fn access_unit(nals: &[Vec<u8>]) -> Vec<u8> {
        nals.iter()
            .flat_map(|n| {
                (n.len() as u32)
                    .to_be_bytes()
                    .into_iter()
                    .chain(n.iter().copied())
            })
            .collect()
    }

    #[test]
    fn record_parses_and_truncations_are_errors() {
        let rec = record(&[sps_nal(640, 384, [0, 0, 0, 24], 1, 8), pps_nal(false, 0)]);
        let config = HevcConfig::parse(&rec).unwrap();
        assert!(config.refusal().is_none());
        for cut in 0..rec.len() {
            assert!(HevcConfig::parse(&rec[..cut]).is_err(), "cut at {cut}");
        }
    }

    /// One slice segment of the model: (nal type, dependent, slice_type 0 B / 1 P / 2 I).
    fn segment_strategy() -> impl Strategy<Value = (u8, bool, u32)> {
        (
            prop_oneof![
                Just(1u8),
                Just(0),
                Just(8),
                Just(19),
                Just(20),
                Just(21),
                Just(16)
            ],
            any::<bool>(),
            0u32..3,
        )
    }

    proptest! {
        /// The classification against a small model: an I-frame iff there is a slice segment
        /// and every independent one is I, whatever the NAL types (IRAP or not) say.
        #[test]
        fn hevc_iframe_classification_matches_model(
            segments in proptest::collection::vec(segment_strategy(), 0..6),
            dependent_enabled in any::<bool>(),
            extra_bits in 0u32..3,
            with_aud in any::<bool>(),
        ) {
            let ctbs = 10 * 6;
            let rec = record(&[sps_nal(640, 384, [0; 4], 1, 8), pps_nal(dependent_enabled, extra_bits)]);
            let mut config = HevcConfig::parse(&rec).unwrap();
            let mut nals = Vec::new();
            if with_aud {
                nals.push(vec![35 << 1, 1, 0x50]);
            }
            let mut model_types = Vec::new();
            for (i, &(ty, dep, st)) in segments.iter().enumerate() {
                let first = i == 0;
                let dependent = (!first && dependent_enabled).then_some(dep);
                nals.push(slice_nal(ty, first, dependent, ctbs, extra_bits, st));
                if dependent != Some(true) {
                    model_types.push(st);
                }
            }
            let model = !segments.is_empty() && model_types.iter().all(|&t| t == 2);
            let got = config.classify(&access_unit(&nals)).unwrap();
            prop_assert_eq!(got == FrameKind::Intra, model);
        }

        /// Random bytes as a record, an access unit or a parameter set: errors, never panics.
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = HevcConfig::parse(&bytes);
            let _ = parse_sps(&bytes);
            let _ = parse_pps(&bytes);
            let rec = record(&[sps_nal(640, 384, [0; 4], 1, 8), pps_nal(true, 1)]);
            let mut config = HevcConfig::parse(&rec).unwrap();
            let _ = config.classify(&bytes);
        }
    }
}
