//! Render one HEVC I-frame: check its parameter sets and slice segment headers ([`crate::hevc`]),
//! decode it with a fresh `rust_h265` decoder (cropped to the conformance window), bring it to
//! 8-bit 4:2:0 — 10-bit rounded (`(v + 2) >> 2`), PQ/HLG tone-mapped to BT.709 SDR
//! ([`crate::tonemap`]) — then scale, convert colour and encode JPEG as for AVC.
//!
//! Every size is checked against the render limits from the SPS before a slice is decoded;
//! profiles outside Main / Main 10 / Main Still Picture are refused as `UnsupportedStream`
//! naming what they are.

use rust_h265::{DecodeError, DecodeLimits, Decoder};

use crate::avc::{MAX_PIXELS, NalIter};
use crate::color::Matrix;
use crate::error::Failure;
use crate::flv::ColorConfig;
use crate::hevc::{self, ColourInfo, FrameKind, ParamSets, SliceType, nal_type};
use crate::render::{Picture, Yuv420};
use crate::tonemap::{self, Transfer};

/// Largest picture state the decoder may estimate for one picture. The render store is capped
/// at 256 MiB; a 36 Mpixel picture within that is allowed, anything beyond is `LimitExceeded`.
const MAX_DECODER_BYTES: u64 = 200 * 1024 * 1024;

/// A decoded, cropped HEVC picture at its coded bit depth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HevcFrame {
    /// Width in pixels (after the conformance window).
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bits per sample: 8 or 10.
    pub bit_depth: u32,
    /// Luma samples, row-major.
    pub y: Vec<u16>,
    /// Cb, `ceil(w/2) × ceil(h/2)`.
    pub u: Vec<u16>,
    /// Cr.
    pub v: Vec<u16>,
    /// The active SPS's VUI colour description.
    pub colour: ColourInfo,
    /// The active SPS's profile name.
    pub profile: &'static str,
}

impl HevcFrame {
    /// The planes as bytes the way ffmpeg writes raw video: 8-bit samples as bytes, deeper ones
    /// as 16-bit little-endian (yuv420p10le).
    pub fn plane_bytes(&self, plane: &[u16]) -> Vec<u8> {
        if self.bit_depth <= 8 {
            plane.iter().map(|&s| s.min(255) as u8).collect()
        } else {
            plane.iter().flat_map(|s| s.to_le_bytes()).collect()
        }
    }

    /// The picture with the stream's out-of-band colour description (an Enhanced RTMP
    /// `colorInfo` Metadata packet) filled in where the SPS VUI leaves colour primaries,
    /// transfer characteristics or matrix coefficients unspecified (code 2, or no VUI). What
    /// the VUI specifies is kept: the bitstream is the authority on its own pictures.
    pub fn with_stream_color(mut self, color: Option<&ColorConfig>) -> HevcFrame {
        if let Some(c) = color {
            let vui = &mut self.colour;
            vui.colour_primaries = ColorConfig::fill(vui.colour_primaries, c.color_primaries);
            vui.transfer = ColorConfig::fill(vui.transfer, c.transfer_characteristics);
            vui.matrix = ColorConfig::fill(vui.matrix, c.matrix_coefficients);
        }
        self
    }

    /// The transfer function the VUI declares (or the stream's colour description, after
    /// [`HevcFrame::with_stream_color`]).
    pub fn transfer(&self) -> Transfer {
        Transfer::from_vui(self.colour.transfer)
    }

    /// Bring the picture to 8-bit 4:2:0 in its own colour space (SDR), or tone-mapped to
    /// BT.709 limited range (PQ/HLG).
    pub fn to_yuv420(&self) -> Yuv420 {
        let matrix = Matrix::from_vui(self.colour.matrix);
        let transfer = self.transfer();
        if transfer != Transfer::Sdr {
            let planes = tonemap::Planes {
                width: self.width,
                height: self.height,
                bit_depth: self.bit_depth,
                y: &self.y,
                u: &self.u,
                v: &self.v,
            };
            return tonemap::to_sdr(
                &planes,
                transfer,
                matrix,
                self.colour.full_range,
                self.colour.colour_primaries == 9,
            );
        }
        let shift = self.bit_depth.saturating_sub(8);
        // Round half up, then clamp: 1023 >> 2 with rounding would be 256.
        let narrow = |plane: &[u16]| -> Vec<u8> {
            if shift == 0 {
                plane.iter().map(|&s| s.min(255) as u8).collect()
            } else {
                let half = 1u32 << (shift - 1);
                plane
                    .iter()
                    .map(|&s| ((u32::from(s) + half) >> shift).min(255) as u8)
                    .collect()
            }
        };
        Yuv420 {
            width: self.width,
            height: self.height,
            y: narrow(&self.y),
            u: narrow(&self.u),
            v: narrow(&self.v),
            full_range: self.colour.full_range,
            matrix,
        }
    }
}

fn from_decoder(what: &str, e: DecodeError) -> Failure {
    match e {
        DecodeError::Unsupported(msg) => {
            Failure::unsupported(format!("hevc {what}: {msg} is not supported"))
        }
        DecodeError::ResourceLimit(msg) => Failure::limit(format!("hevc {what}: {msg}")),
        other => Failure::decode(format!("hevc {what}: {other}")),
    }
}

/// Decode the one picture of `access_unit` (length-prefixed NAL units) with `config` (an
/// HEVCDecoderConfigurationRecord).
///
/// Errors: `LimitExceeded` for an SPS beyond the limits (checked before decoding);
/// `UnsupportedStream` for chroma other than 4:2:0, more than 10 bits, screen content coding;
/// `DecodeFailed` for a malformed record or access unit, a P/B slice, a slice the decoder
/// rejects, or no picture.
pub fn decode(config: &[u8], access_unit: &[u8]) -> Result<HevcFrame, Failure> {
    let record = hevc::parse_config_record(config)?;
    let units = NalIter::new(access_unit, record.length_size).collect::<Result<Vec<_>, _>>()?;
    let all = || record.nals.iter().chain(&units).copied();
    let mut params = ParamSets::default();
    for nal in all() {
        if matches!(
            hevc::nal_unit_type(nal)?,
            nal_type::VPS | nal_type::SPS | nal_type::PPS
        ) && let Some(sps) = params.add(nal)?
        {
            sps.check()?;
        }
    }
    // Classification again, on the parameter sets as the decoder will see them.
    let mut segments = Vec::new();
    let mut active = None;
    for &nal in &units {
        let unit_type = hevc::nal_unit_type(nal)?;
        if hevc::is_slice_segment(unit_type) {
            let (segment, sps) = params.slice_segment(nal)?;
            if let Some(t @ (SliceType::P | SliceType::B)) = segment.slice_type {
                return Err(Failure::decode(format!(
                    "hevc access unit has a {t:?} slice: only I-frames are rendered"
                )));
            }
            active.get_or_insert_with(|| sps.clone());
            segments.push(segment);
        }
    }
    let (Some(sps), FrameKind::Intra) = (active, hevc::classify_segments(&segments)) else {
        return Err(Failure::decode("hevc access unit has no slice segment"));
    };
    if !segments.first().is_some_and(|s| s.first_in_picture) {
        return Err(Failure::decode(
            "hevc access unit does not start with the first slice segment of a picture",
        ));
    }

    let mut decoder = Decoder::with_limits(DecodeLimits {
        max_picture_pixels: MAX_PIXELS,
        max_picture_memory_bytes: MAX_DECODER_BYTES,
    });
    let mut frame = None;
    for nal in all() {
        let Some(unit) = rust_h265::parse_nal(nal) else {
            return Err(Failure::decode(format!(
                "hevc nal unit of {} bytes is malformed",
                nal.len()
            )));
        };
        let name = match hevc::nal_unit_type(nal)? {
            nal_type::VPS => "vps",
            nal_type::SPS => "sps",
            nal_type::PPS => "pps",
            t if hevc::is_slice_segment(t) => "slice",
            _ => "nal unit",
        };
        if let Some(done) = decoder
            .decode_nal(&unit)
            .map_err(|e| from_decoder(name, e))?
        {
            frame.get_or_insert(done);
        }
    }
    let frame = match frame {
        Some(frame) => frame,
        None => decoder.flush().ok_or_else(|| {
            Failure::decode(format!(
                "no picture decoded from {} nal units ({} bytes)",
                units.len(),
                access_unit.len()
            ))
        })?,
    };
    let (width, height) = sps.display_size();
    if (frame.width, frame.height) != (width, height) || frame.chroma_format_idc != 1 {
        return Err(Failure::decode(format!(
            "hevc decoder gave a {}x{} picture (chroma format {}), the sps says {width}x{height}",
            frame.width, frame.height, frame.chroma_format_idc
        )));
    }
    let widen = |p: &rust_h265::PixelData| -> Vec<u16> {
        if let Some(b) = p.as_u8() {
            b.iter().map(|&s| u16::from(s)).collect()
        } else {
            p.as_u16().map(<[u16]>::to_vec).unwrap_or_default()
        }
    };
    let out = HevcFrame {
        width,
        height,
        bit_depth: u32::from(frame.bit_depth),
        y: widen(&frame.y),
        u: widen(&frame.u),
        v: widen(&frame.v),
        colour: sps.colour,
        profile: sps.profile_name(),
    };
    let luma = width as usize * height as usize;
    let chroma = width.div_ceil(2) as usize * height.div_ceil(2) as usize;
    if out.y.len() != luma || out.u.len() != chroma || out.v.len() != chroma {
        return Err(Failure::decode(format!(
            "hevc decoder gave planes of {}/{}/{} samples for {width}x{height}",
            out.y.len(),
            out.u.len(),
            out.v.len()
        )));
    }
    if let Some((x, y)) = find_undecoded_ctb(&out, sps.log2_ctb) {
        return Err(Failure::decode(format!(
            "hevc picture has undecoded coding tree blocks (first at x {x}, y {y}): slice \
             segments are missing or damaged"
        )));
    }
    Ok(out)
}

/// The first CTB (clipped to the picture) whose samples are all mid-grey in all three planes:
/// what `rust_h265` leaves where no slice segment decoded (its concealment, and ffmpeg's, of a
/// cut slice). A decoded CTB of exactly uniform mid-grey in luma and both chroma planes does
/// not occur in camera or encoder output; the AVC renderer uses the same test per macroblock.
fn find_undecoded_ctb(f: &HevcFrame, log2_ctb: u32) -> Option<(u32, u32)> {
    let mid = 1u16 << (f.bit_depth.clamp(1, 16) - 1);
    let (w, h) = (f.width as usize, f.height as usize);
    let (cw, ctb) = (w.div_ceil(2), 1usize << log2_ctb);
    for y0 in (0..h).step_by(ctb) {
        'ctb: for x0 in (0..w).step_by(ctb) {
            let (x1, y1) = ((x0 + ctb).min(w), (y0 + ctb).min(h));
            for y in y0..y1 {
                let row = f.y.get(y * w + x0..y * w + x1).unwrap_or_default();
                if row.iter().any(|&s| s != mid) {
                    continue 'ctb;
                }
            }
            for y in y0 / 2..y1.div_ceil(2) {
                for plane in [&f.u, &f.v] {
                    let row = plane
                        .get(y * cw + x0 / 2..y * cw + x1.div_ceil(2))
                        .unwrap_or_default();
                    if row.iter().any(|&s| s != mid) {
                        continue 'ctb;
                    }
                }
            }
            return Some((x0 as u32, y0 as u32));
        }
    }
    None
}

/// Decode (see [`decode`]), bring to 8-bit SDR, scale by the `shortside` rule, convert to JFIF
/// colour and encode a baseline 4:2:0 JPEG at `jpeg_quality`: [`crate::shot::render`] for HEVC.
pub fn render(
    config: &[u8],
    access_unit: &[u8],
    shortside: Option<u32>,
    jpeg_quality: u8,
) -> Result<Picture, Failure> {
    crate::shot::render(
        crate::flv::VideoCodec::Hevc,
        config,
        access_unit,
        None,
        shortside,
        jpeg_quality,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn frame(bit_depth: u32, samples: &[u16]) -> HevcFrame {
        HevcFrame {
            width: 2,
            height: 2,
            bit_depth,
            y: samples.to_vec(),
            u: vec![samples[0]],
            v: vec![samples[0]],
            colour: ColourInfo::default(),
            profile: "main 10",
        }
    }

    #[test]
    fn stream_colour_fills_only_what_the_vui_leaves_unspecified() {
        let pq = ColorConfig {
            bit_depth: Some(10),
            color_primaries: Some(9),
            transfer_characteristics: Some(16),
            matrix_coefficients: Some(9),
        };
        // Silent VUI (all 2): everything from the metadata.
        let silent = frame(10, &[512; 4]).with_stream_color(Some(&pq));
        assert_eq!(
            (
                silent.colour.colour_primaries,
                silent.colour.transfer,
                silent.colour.matrix
            ),
            (9, 16, 9)
        );
        assert_eq!(silent.transfer(), Transfer::Pq);
        // A VUI that says BT.709 SDR keeps saying it; value by value.
        let mut coded = frame(10, &[512; 4]);
        coded.colour.transfer = 1;
        coded.colour.matrix = 1;
        let kept = coded.with_stream_color(Some(&pq));
        assert_eq!(
            (
                kept.colour.colour_primaries,
                kept.colour.transfer,
                kept.colour.matrix
            ),
            (9, 1, 1)
        );
        assert_eq!(kept.transfer(), Transfer::Sdr);
        // No metadata, or metadata without values: the VUI's defaults.
        let none = frame(10, &[512; 4]).with_stream_color(None);
        assert_eq!(none.colour, ColourInfo::default());
        let empty = frame(10, &[512; 4]).with_stream_color(Some(&ColorConfig::default()));
        assert_eq!(empty.colour, ColourInfo::default());
        // The fill changes the picture: tone-mapped vs narrowed as coded.
        assert_ne!(silent.to_yuv420().y, frame(10, &[512; 4]).to_yuv420().y);
    }

    #[test]
    fn ten_bit_rounds_half_up_and_clamps() {
        let p = frame(10, &[0, 1, 2, 1023]).to_yuv420();
        assert_eq!(p.y, vec![0, 0, 1, 255]);
        let p = frame(10, &[510, 512, 513, 1021]).to_yuv420();
        assert_eq!(p.y, vec![128, 128, 128, 255]);
        assert_eq!(
            frame(10, &[0, 0, 0, 0]).plane_bytes(&[0x0123]),
            vec![0x23, 0x01]
        );
        assert_eq!(frame(8, &[0, 0, 0, 0]).plane_bytes(&[200]), vec![200]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for (config, au) in [(&[][..], &[][..]), (&[1; 23][..], &[0, 0, 0, 1, 0x26][..])] {
            let err = decode(config, au).unwrap_err();
            assert_eq!(err.code, ErrorCode::DecodeFailed, "{err}");
        }
    }
}
