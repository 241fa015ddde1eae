//! The slice header of I and SI slices (§7.3.3): everything up to slice_data().

use crate::Error;
use crate::bits::BitReader;
use crate::params::{Pps, Sps};

/// The first three fields of a slice header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PreHeader {
    pub(crate) first_mb: u32,
    pub(crate) slice_type: u32,
    pub(crate) pps_id: u32,
}

/// What tells two pictures apart (§7.4.1.2.4: first slice of a new primary picture).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PictureId {
    frame_num: u32,
    idr: bool,
    idr_pic_id: u32,
    poc_lsb: u32,
    nal_ref_zero: bool,
}

/// A parsed slice header.
#[derive(Clone, Debug)]
pub(crate) struct SliceHeader {
    pub(crate) first_mb: u32,
    /// slice_type % 5 == 4.
    pub(crate) si: bool,
    pub(crate) qp: i32,
    pub(crate) disable_deblocking: u32,
    pub(crate) alpha_offset: i32,
    pub(crate) beta_offset: i32,
    pub(crate) redundant_pic_cnt: u32,
    pub(crate) picture_id: PictureId,
}

/// Reads first_mb_in_slice, slice_type and pic_parameter_set_id, refusing non-intra slices.
pub(crate) fn pre_header(r: &mut BitReader<'_>) -> Result<PreHeader, Error> {
    let first_mb = r.ue()?;
    let slice_type = r.ue_max(9, "slice_type")?;
    if slice_type % 5 != 2 && slice_type % 5 != 4 {
        return Err(Error::Malformed(format!(
            "slice_type {slice_type} is not I or SI: only intra pictures are decoded"
        )));
    }
    let pps_id = r.ue_max(255, "pic_parameter_set_id")?;
    Ok(PreHeader {
        first_mb,
        slice_type,
        pps_id,
    })
}

/// Reads the rest of the header of an I or SI slice.
pub(crate) fn parse_header(
    r: &mut BitReader<'_>,
    pre: PreHeader,
    nal_header: u8,
    sps: &Sps,
    pps: &Pps,
) -> Result<SliceHeader, Error> {
    let nal_type = nal_header & 0x1f;
    let idr = nal_type == 5;
    let frame_num = r.u(sps.log2_max_frame_num)?;
    if !sps.frame_mbs_only && r.flag()? {
        return Err(Error::unsupported("field pictures (interlaced)"));
    }
    let idr_pic_id = if idr {
        r.ue_max(65535, "idr_pic_id")?
    } else {
        0
    };
    let mut poc_lsb = 0;
    if sps.poc_type == 0 {
        poc_lsb = r.u(sps.log2_max_poc_lsb)?;
        if pps.bottom_field_pic_order_present {
            r.se()?;
        }
    } else if sps.poc_type == 1 && !sps.delta_pic_order_always_zero {
        r.se()?;
        if pps.bottom_field_pic_order_present {
            r.se()?;
        }
    }
    let redundant_pic_cnt = if pps.redundant_pic_cnt_present {
        r.ue_max(127, "redundant_pic_cnt")?
    } else {
        0
    };
    // No ref_pic_list_modification or pred_weight_table in I/SI slices.
    if nal_header & 0x60 != 0 {
        // dec_ref_pic_marking() (§7.3.3.3)
        if idr {
            r.flag()?;
            r.flag()?;
        } else if r.flag()? {
            for _ in 0..66 {
                let op = r.ue_max(6, "memory_management_control_operation")?;
                match op {
                    0 => break,
                    1 | 2 | 6 => {
                        r.ue()?;
                    }
                    3 => {
                        r.ue()?;
                        r.ue()?;
                    }
                    4 => {
                        r.ue()?;
                    }
                    _ => {}
                }
            }
        }
    }
    let qp = pps.init_qp + r.se_range(-51, 51, "slice_qp_delta")?;
    if !(0..=51).contains(&qp) {
        return Err(Error::Malformed(format!("slice qp {qp} outside 0..=51")));
    }
    let si = pre.slice_type % 5 == 4;
    if si {
        r.se_range(-51, 51, "slice_qs_delta")?;
    }
    let (mut disable_deblocking, mut alpha_offset, mut beta_offset) = (0, 0, 0);
    if pps.deblocking_control {
        disable_deblocking = r.ue_max(2, "disable_deblocking_filter_idc")?;
        if disable_deblocking != 1 {
            alpha_offset = 2 * r.se_range(-6, 6, "slice_alpha_c0_offset_div2")?;
            beta_offset = 2 * r.se_range(-6, 6, "slice_beta_offset_div2")?;
        }
    }
    let mbs = sps.width_mbs * sps.height_mbs;
    if pre.first_mb >= mbs {
        return Err(Error::Malformed(format!(
            "first_mb_in_slice {} outside the {mbs} macroblocks",
            pre.first_mb
        )));
    }
    Ok(SliceHeader {
        first_mb: pre.first_mb,
        si,
        qp,
        disable_deblocking,
        alpha_offset,
        beta_offset,
        redundant_pic_cnt,
        picture_id: PictureId {
            frame_num,
            idr,
            idr_pic_id,
            poc_lsb,
            nal_ref_zero: nal_header & 0x60 == 0,
        },
    })
}
