//! Sequence and picture parameter sets (§7.3.2.1.1, §7.3.2.2) with their scaling matrices and
//! the fall-back rules of Table 7-2. Only the fields an intra decoder needs are kept.

use crate::Error;
use crate::bits::BitReader;
use crate::tables::{DEFAULT4, DEFAULT8, ZIGZAG4, ZIGZAG8};

/// Scaling lists in zigzag order: six 4×4 lists (Y, Cb, Cr intra; Y, Cb, Cr inter) and up to six
/// 8×8 lists (Y intra, Y inter, then Cb/Cr for 4:4:4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ScalingLists {
    pub(crate) l4: [[u8; 16]; 6],
    pub(crate) l8: [[u8; 64]; 6],
}

impl ScalingLists {
    pub(crate) fn flat() -> Self {
        ScalingLists {
            l4: [[16; 16]; 6],
            l8: [[16; 64]; 6],
        }
    }
}

/// A parsed SPS.
#[derive(Clone, Debug)]
pub(crate) struct Sps {
    pub(crate) chroma_format_idc: u32,
    pub(crate) scaling: ScalingLists,
    /// Whether the SPS carried a scaling matrix (selects fall-back rule A or B for a PPS).
    pub(crate) has_scaling: bool,
    pub(crate) log2_max_frame_num: u32,
    pub(crate) poc_type: u32,
    pub(crate) log2_max_poc_lsb: u32,
    pub(crate) delta_pic_order_always_zero: bool,
    pub(crate) width_mbs: u32,
    pub(crate) height_mbs: u32,
    pub(crate) frame_mbs_only: bool,
    pub(crate) mb_adaptive: bool,
    /// Cropping in luma samples: left, right, top, bottom.
    pub(crate) crop: [u32; 4],
}

/// Slice group map parameters of a PPS (§7.3.2.2).
#[derive(Clone, Debug)]
pub(crate) enum SliceGroups {
    /// One slice group: every macroblock in raster order.
    One,
    /// FMO: the number of groups and the map type (not decoded).
    Fmo { count: u32, map_type: u32 },
}

/// A parsed PPS, resolved against its SPS.
#[derive(Clone, Debug)]
pub(crate) struct Pps {
    pub(crate) cabac: bool,
    pub(crate) bottom_field_pic_order_present: bool,
    pub(crate) slice_groups: SliceGroups,
    pub(crate) init_qp: i32,
    pub(crate) chroma_qp_offset: [i32; 2],
    pub(crate) deblocking_control: bool,
    pub(crate) redundant_pic_cnt_present: bool,
    pub(crate) transform_8x8: bool,
    /// LevelScale factors from the PPS scaling lists.
    pub(crate) dq: Box<Dequant>,
}

/// Reads one scaling_list() (§7.3.2.1.1.1); `Ok(None)` means "use the default list".
fn scaling_list<const N: usize>(r: &mut BitReader<'_>) -> Result<Option<[u8; N]>, Error> {
    let mut list = [0u8; N];
    let (mut last, mut next) = (8i32, 8i32);
    for (j, slot) in list.iter_mut().enumerate() {
        if next != 0 {
            let delta = r.se_range(-128, 127, "delta_scale")?;
            next = (last + delta + 256) % 256;
            if j == 0 && next == 0 {
                return Ok(None);
            }
        }
        let v = if next == 0 { last } else { next };
        *slot = v as u8;
        last = v;
    }
    Ok(Some(list))
}

/// Reads `count` scaling lists with a fall-back list for each absent one: `fallback4(i, lists)`
/// and `fallback8(i, lists)` give the list used when list i is not present.
fn read_lists(
    r: &mut BitReader<'_>,
    count: usize,
    fallback: &ScalingLists,
    rule_a: bool,
) -> Result<ScalingLists, Error> {
    let mut s = ScalingLists::flat();
    for i in 0..count.min(12) {
        let present = r.flag()?;
        if i < 6 {
            let default = DEFAULT4[usize::from(i >= 3)];
            s.l4[i] = if present {
                scaling_list::<16>(r)?.unwrap_or(default)
            } else if i == 0 || i == 3 {
                if rule_a { default } else { fallback.l4[i] }
            } else {
                s.l4[i - 1]
            };
        } else {
            let k = i - 6;
            let default = DEFAULT8[k & 1];
            s.l8[k] = if present {
                scaling_list::<64>(r)?.unwrap_or(default)
            } else if k < 2 {
                if rule_a { default } else { fallback.l8[k] }
            } else {
                s.l8[k - 2]
            };
        }
    }
    // Lists beyond `count` (8×8 lists without transform_8x8_mode) are never used; give them the
    // fall-back values anyway so the struct is well defined.
    for i in count.min(12)..12 {
        if i >= 6 {
            let k = i - 6;
            s.l8[k] = if k < 2 {
                if rule_a {
                    DEFAULT8[k & 1]
                } else {
                    fallback.l8[k]
                }
            } else {
                s.l8[k - 2]
            };
        }
    }
    Ok(s)
}

/// Parses an SPS RBSP (after the NAL header byte). Returns its id and contents.
pub(crate) fn parse_sps(rbsp: &[u8]) -> Result<(u32, Sps), Error> {
    let mut r = BitReader::new(rbsp);
    let profile_idc = r.u(8)? as u8;
    r.u(8)?; // constraint flags and reserved bits
    r.u(8)?; // level_idc
    let id = r.ue_max(31, "seq_parameter_set_id")?;
    let mut chroma_format_idc = 1;
    let mut scaling = ScalingLists::flat();
    let mut has_scaling = false;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue_max(3, "chroma_format_idc")?;
        if chroma_format_idc == 3 && r.flag()? {
            return Err(Error::unsupported("separate colour planes"));
        }
        let depth_luma = r.ue_max(6, "bit_depth_luma_minus8")?;
        let depth_chroma = r.ue_max(6, "bit_depth_chroma_minus8")?;
        if depth_luma != 0 || depth_chroma != 0 {
            return Err(Error::Unsupported(format!(
                "bit depth {}/{} (luma/chroma): only 8-bit is decoded",
                depth_luma + 8,
                depth_chroma + 8
            )));
        }
        if r.flag()? {
            return Err(Error::unsupported(
                "qpprime_y_zero_transform_bypass (lossless)",
            ));
        }
        if r.flag()? {
            has_scaling = true;
            let count = if chroma_format_idc == 3 { 12 } else { 8 };
            scaling = read_lists(&mut r, count, &ScalingLists::flat(), true)?;
        }
    }
    if chroma_format_idc >= 2 {
        return Err(Error::Unsupported(format!(
            "chroma_format_idc {chroma_format_idc}: only 4:2:0 and 4:0:0 are decoded"
        )));
    }
    let log2_max_frame_num = r.ue_max(12, "log2_max_frame_num_minus4")? + 4;
    let poc_type = r.ue_max(2, "pic_order_cnt_type")?;
    let mut log2_max_poc_lsb = 0;
    let mut delta_pic_order_always_zero = false;
    if poc_type == 0 {
        log2_max_poc_lsb = r.ue_max(12, "log2_max_pic_order_cnt_lsb_minus4")? + 4;
    } else if poc_type == 1 {
        delta_pic_order_always_zero = r.flag()?;
        r.se()?;
        r.se()?;
        let n = r.ue_max(255, "num_ref_frames_in_pic_order_cnt_cycle")?;
        for _ in 0..n {
            r.se()?;
        }
    }
    r.ue()?; // max_num_ref_frames
    r.flag()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = r.ue_max(1023, "pic_width_in_mbs_minus1")? + 1;
    let map_units = r.ue_max(1023, "pic_height_in_map_units_minus1")? + 1;
    let frame_mbs_only = r.flag()?;
    let mb_adaptive = if frame_mbs_only { false } else { r.flag()? };
    let height_mbs = if frame_mbs_only {
        map_units
    } else {
        map_units * 2
    };
    r.flag()?; // direct_8x8_inference_flag
    let mut crop = [0u32; 4];
    if r.flag()? {
        let (unit_x, unit_y) = if chroma_format_idc == 0 {
            (1, 2 - u32::from(frame_mbs_only))
        } else {
            (2, 2 * (2 - u32::from(frame_mbs_only)))
        };
        for (k, c) in crop.iter_mut().enumerate() {
            let v = r.ue_max(8192, "frame_crop_offset")?;
            *c = v * if k < 2 { unit_x } else { unit_y };
        }
        if crop[0] + crop[1] >= width_mbs * 16 || crop[2] + crop[3] >= height_mbs * 16 {
            return Err(Error::malformed("cropping window is empty"));
        }
    }
    Ok((
        id,
        Sps {
            chroma_format_idc,
            scaling,
            has_scaling,
            log2_max_frame_num,
            poc_type,
            log2_max_poc_lsb,
            delta_pic_order_always_zero,
            width_mbs,
            height_mbs,
            frame_mbs_only,
            mb_adaptive,
            crop,
        },
    ))
}

/// Reads the id fields of a PPS: (pic_parameter_set_id, seq_parameter_set_id).
pub(crate) fn pps_ids(rbsp: &[u8]) -> Result<(u32, u32), Error> {
    let mut r = BitReader::new(rbsp);
    let id = r.ue_max(255, "pic_parameter_set_id")?;
    let sps = r.ue_max(31, "seq_parameter_set_id")?;
    Ok((id, sps))
}

/// Parses a PPS RBSP against its SPS.
pub(crate) fn parse_pps(rbsp: &[u8], sps: &Sps) -> Result<Pps, Error> {
    let mut r = BitReader::new(rbsp);
    r.ue_max(255, "pic_parameter_set_id")?;
    r.ue_max(31, "seq_parameter_set_id")?;
    let cabac = r.flag()?;
    let bottom_field_pic_order_present = r.flag()?;
    let groups = r.ue_max(7, "num_slice_groups_minus1")? + 1;
    let slice_groups = if groups > 1 {
        let map_type = r.ue_max(6, "slice_group_map_type")?;
        SliceGroups::Fmo {
            count: groups,
            map_type,
        }
    } else {
        SliceGroups::One
    };
    if groups > 1 {
        // The rest of the PPS is not needed: slice groups are refused before any slice data.
        return Ok(Pps {
            cabac,
            bottom_field_pic_order_present,
            slice_groups,
            init_qp: 26,
            chroma_qp_offset: [0, 0],
            deblocking_control: false,
            redundant_pic_cnt_present: false,
            transform_8x8: false,
            dq: Box::new(Dequant::new(&sps.scaling)),
        });
    }
    r.ue_max(31, "num_ref_idx_l0_default_active_minus1")?;
    r.ue_max(31, "num_ref_idx_l1_default_active_minus1")?;
    r.flag()?; // weighted_pred_flag
    r.u(2)?; // weighted_bipred_idc
    let init_qp = 26 + r.se_range(-26, 25, "pic_init_qp_minus26")?;
    r.se_range(-26, 25, "pic_init_qs_minus26")?;
    let offset = r.se_range(-12, 12, "chroma_qp_index_offset")?;
    let deblocking_control = r.flag()?;
    r.flag()?; // constrained_intra_pred_flag: no effect when every macroblock is intra
    let redundant_pic_cnt_present = r.flag()?;
    let mut transform_8x8 = false;
    let mut scaling = sps.scaling.clone();
    let mut second = offset;
    if r.more_rbsp_data() {
        transform_8x8 = r.flag()?;
        if r.flag()? {
            let count =
                6 + if sps.chroma_format_idc == 3 { 6 } else { 2 } * usize::from(transform_8x8);
            scaling = read_lists(&mut r, count, &sps.scaling, !sps.has_scaling)?;
        }
        second = r.se_range(-12, 12, "second_chroma_qp_index_offset")?;
    }
    Ok(Pps {
        cabac,
        bottom_field_pic_order_present,
        slice_groups,
        init_qp,
        chroma_qp_offset: [offset, second],
        deblocking_control,
        redundant_pic_cnt_present,
        transform_8x8,
        dq: Box::new(Dequant::new(&scaling)),
    })
}

#[derive(Clone, Debug)]
/// Dequantisation factors for one picture parameter set: LevelScale4x4 (§8.5.9) for the three
/// intra 4×4 lists by qP % 6 in raster order, and LevelScale8x8 for intra luma.
pub(crate) struct Dequant {
    pub(crate) l4: [[[i32; 16]; 6]; 3],
    pub(crate) l8: [[i32; 64]; 6],
}

impl Dequant {
    pub(crate) fn new(s: &ScalingLists) -> Self {
        use crate::tables::{NORM4, NORM8, NORM8_CLASS};
        let mut l4 = [[[0i32; 16]; 6]; 3];
        let mut l8 = [[0i32; 64]; 6];
        for m in 0..6 {
            for (c, table) in l4.iter_mut().enumerate() {
                for (k, &pos) in ZIGZAG4.iter().enumerate() {
                    let pos = usize::from(pos);
                    let (row, col) = (pos / 4, pos % 4);
                    let class = if row % 2 == 0 && col % 2 == 0 {
                        0
                    } else if row % 2 == 1 && col % 2 == 1 {
                        2
                    } else {
                        1
                    };
                    table[m][pos] = i32::from(s.l4[c][k]) * i32::from(NORM4[m][class]);
                }
            }
            for (k, &pos) in ZIGZAG8.iter().enumerate() {
                let pos = usize::from(pos);
                let (row, col) = (pos / 8, pos % 8);
                let class = usize::from(NORM8_CLASS[(row % 4) * 4 + col % 4]);
                l8[m][pos] = i32::from(s.l8[0][k]) * i32::from(NORM8[m][class]);
            }
        }
        Dequant { l4, l8 }
    }
}

/// Scales a 4×4 coefficient level (§8.5.12.1). A conforming stream keeps the result within
/// 16 bits (§8.5.12.1: -2^15..2^15-1 for 8-bit); the value is clipped one past that range so
/// [`in_range`] can refuse the block.
#[inline]
pub(crate) fn scale4(level: i32, ls: i32, qp6: u32) -> i32 {
    let p = i64::from(level) * i64::from(ls);
    let d = if qp6 >= 4 {
        p << (qp6 - 4)
    } else {
        (p + (1 << (3 - qp6))) >> (4 - qp6)
    };
    d.clamp(-32769, 32768) as i32
}

/// Whether a scaled coefficient is within the range of a conforming stream (8-bit).
#[inline(always)]
pub(crate) fn in_range(d: i32) -> bool {
    (-32768..=32767).contains(&d)
}

/// Scales an 8×8 coefficient level (§8.5.13.1), clipped like [`scale4`].
#[inline]
pub(crate) fn scale8(level: i32, ls: i32, qp6: u32) -> i32 {
    let p = i64::from(level) * i64::from(ls);
    let d = if qp6 >= 6 {
        p << (qp6 - 6)
    } else {
        (p + (1 << (5 - qp6))) >> (6 - qp6)
    };
    d.clamp(-32769, 32768) as i32
}
