//! Size limits are enforced from the SPS, before anything is decoded: a stream announcing a
//! picture beyond 8192 px a side or 36 Mpixel gets status-4 `LimitExceeded` callbacks, through the
//! capture component, and the render component refuses the same input without decoding.

use livesnap::runtime::{Action, ErrorCode};
use livesnap_tests::{START_MS, runtime, session_info, settings};

/// A big-endian bit writer with Exp-Golomb codes (ISO/IEC 14496-10 §9.1).
#[derive(Default)]
struct Bits {
    bytes: Vec<u8>,
    used: u32,
}

impl Bits {
    fn bit(&mut self, b: bool) {
        if self.used.is_multiple_of(8) {
            self.bytes.push(0);
        }
        if b {
            *self.bytes.last_mut().unwrap() |= 0x80 >> (self.used % 8);
        }
        self.used += 1;
    }
    fn u(&mut self, n: u32, v: u32) {
        for i in (0..n).rev() {
            self.bit(v >> i & 1 == 1);
        }
    }
    fn ue(&mut self, v: u32) {
        let x = v + 1;
        let len = 32 - x.leading_zeros();
        self.u(len - 1, 0);
        self.u(len, x);
    }
    /// rbsp_trailing_bits, then emulation prevention (§7.4.1).
    fn finish(mut self, header: u8) -> Vec<u8> {
        self.bit(true);
        let mut out = vec![header];
        let mut zeros = 0;
        for b in self.bytes {
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

/// A baseline SPS for a `width_mbs`×`height_mbs` macroblock picture (POC type 2, 4-bit frame_num).
fn sps(width_mbs: u32, height_mbs: u32) -> Vec<u8> {
    let mut b = Bits::default();
    b.u(8, 66); // profile_idc: baseline
    b.u(8, 0xc0); // constraint flags
    b.u(8, 51); // level_idc
    b.ue(0); // seq_parameter_set_id
    b.ue(0); // log2_max_frame_num_minus4
    b.ue(2); // pic_order_cnt_type
    b.ue(1); // max_num_ref_frames
    b.bit(false); // gaps_in_frame_num_value_allowed_flag
    b.ue(width_mbs - 1);
    b.ue(height_mbs - 1);
    b.bit(true); // frame_mbs_only_flag
    b.bit(true); // direct_8x8_inference_flag
    b.bit(false); // frame_cropping_flag
    b.bit(false); // vui_parameters_present_flag
    b.finish(0x67)
}

fn pps() -> Vec<u8> {
    let mut b = Bits::default();
    b.ue(0); // pic_parameter_set_id
    b.ue(0); // seq_parameter_set_id
    b.bit(false); // entropy_coding_mode_flag (CAVLC)
    b.bit(false); // bottom_field_pic_order_in_frame_present_flag
    b.ue(0); // num_slice_groups_minus1
    b.ue(0); // num_ref_idx_l0_default_active_minus1
    b.ue(0); // num_ref_idx_l1_default_active_minus1
    b.bit(false); // weighted_pred_flag
    b.u(2, 0); // weighted_bipred_idc
    b.ue(0); // pic_init_qp_minus26 (se 0)
    b.ue(0); // pic_init_qs_minus26
    b.ue(0); // chroma_qp_index_offset
    b.bit(false); // deblocking_filter_control_present_flag
    b.bit(false); // constrained_intra_pred_flag
    b.bit(false); // redundant_pic_cnt_present_flag
    b.finish(0x68)
}

/// An IDR slice NAL: header only (I slice), then a few bytes of "slice data".
fn idr_slice() -> Vec<u8> {
    let mut b = Bits::default();
    b.ue(0); // first_mb_in_slice
    b.ue(7); // slice_type: I, all slices
    b.ue(0); // pic_parameter_set_id
    b.u(4, 0); // frame_num
    b.ue(0); // idr_pic_id
    b.bit(false); // no_output_of_prior_pics_flag
    b.bit(false); // long_term_reference_flag
    b.ue(0); // slice_qp_delta (se 0)
    b.u(16, 0xabcd); // a little slice data
    b.finish(0x65)
}

/// FLV AVC sequence header tag body: 5-byte header + AVCDecoderConfigurationRecord.
fn sequence_header(sps: &[u8], pps: &[u8]) -> Vec<u8> {
    let mut v = vec![0x17, 0, 0, 0, 0];
    v.extend_from_slice(&[1, sps[1], sps[2], sps[3], 0xff, 0xe1]);
    v.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    v.extend_from_slice(sps);
    v.push(1);
    v.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    v.extend_from_slice(pps);
    v
}

fn nalu_tag(nal: &[u8]) -> Vec<u8> {
    let mut v = vec![0x17, 1, 0, 0, 0];
    v.extend_from_slice(&(nal.len() as u32).to_be_bytes());
    v.extend_from_slice(nal);
    v
}

fn refused_message(width_mbs: u32, height_mbs: u32) -> String {
    let mut capture = runtime()
        .capture(&session_info("huge"), &settings(1))
        .unwrap()
        .unwrap();
    let header = sequence_header(&sps(width_mbs, height_mbs), &pps());
    match capture.push_tag(9, 0, &header).unwrap() {
        Ok(Action::None) => {}
        Ok(_) => panic!("a sequence header is never captured"),
        Err(f) => panic!(
            "the sequence header parses (its size is refused later): {}",
            f.text()
        ),
    }
    let tag = nalu_tag(&idr_slice());
    let Action::Refused(body) = capture.push_tag(9, 0, &tag).unwrap().unwrap() else {
        panic!("a due I-frame of an oversized stream must be refused");
    };
    let cb: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (
            cb["status"].as_u64(),
            cb["code"].as_str(),
            cb["errnum"].as_u64()
        ),
        (Some(4), Some("LimitExceeded"), Some(1005))
    );
    assert_eq!(cb["taskid"], format!("live/huge/{START_MS}-7/1"));
    assert_eq!(
        (cb["dstpath"].as_str(), cb["width"].as_u64()),
        (Some(""), Some(0))
    );
    // The refused attempt starts the next interval: the next I-frame 0.5 s later is not due.
    assert!(matches!(
        capture.push_tag(9, 500, &tag).unwrap(),
        Ok(Action::None)
    ));

    // The render component refuses the same input without decoding it.
    let config = &header[5..];
    let au = &tag[5..];
    let mut renderer = runtime().renderer().unwrap();
    let failure = renderer
        .decode(runtime(), livesnap::runtime::Codec::Avc, config, au, None)
        .unwrap()
        .unwrap_err();
    assert_eq!(failure.code, ErrorCode::LimitExceeded, "{}", failure.text());
    cb["errmsg"].as_str().unwrap().to_owned()
}

#[test]
fn sps_wider_than_8192_px_is_refused_before_decode() {
    let msg = refused_message(513, 8); // 8208 x 128
    assert!(msg.contains("8208x128") && msg.contains("8192"), "{msg}");
}

#[test]
fn sps_taller_than_8192_px_is_refused_before_decode() {
    let msg = refused_message(8, 600); // 128 x 9600
    assert!(msg.contains("128x9600"), "{msg}");
}

#[test]
fn sps_over_36_megapixels_is_refused_before_decode() {
    let msg = refused_message(500, 300); // 8000 x 4800 = 38.4 Mpixel, both sides within 8192
    assert!(msg.contains("36000000 pixels"), "{msg}");
}

#[test]
fn a_normal_sps_built_the_same_way_is_captured() {
    // Control: the same synthetic stream at 64x48 is due and handed to render, proving the
    // refusals above come from the size alone.
    let mut capture = runtime()
        .capture(&session_info("small"), &settings(1))
        .unwrap()
        .unwrap();
    capture
        .push_tag(9, 0, &sequence_header(&sps(4, 3), &pps()))
        .unwrap()
        .unwrap();
    assert!(matches!(
        capture.push_tag(9, 0, &nalu_tag(&idr_slice())).unwrap(),
        Ok(Action::Capture(_))
    ));
}
