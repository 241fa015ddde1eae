//! Render one I-frame to a JPEG: decode it with our intra decoder ([`livesnap_h264`]; a fresh
//! `rust_h264` decoder for what ours does not support, e.g. interlaced streams), already cropped
//! to the SPS window, shrink it to the `shortside` size ([`crate::scale`]), map its colour into JFIF
//! ([`crate::color`]) and encode it ([`crate::encode`]).
//!
//! Scaling comes before the colour conversion because both are linear: the result is the same
//! (up to rounding) and the conversion then touches only the output pixels. Every size is checked
//! against [`MAX_SIDE_PX`] and [`MAX_PIXELS`] from the SPS before a single slice is decoded, so a
//! hostile SPS cannot make the decoder allocate a huge picture.

use std::borrow::Cow;
use std::collections::BTreeMap;

use rust_h264::decoder::{ChromaFormat, Decoder, Frame};
use rust_h264::error::DecodeError;
use rust_h264::nal::{self, NalUnit, NalUnitType, SpsInfo};

use crate::avc::{self, AvcConfig, NalIter};
pub use crate::color::Matrix;
use crate::error::Failure;
use crate::flv::ColorConfig;
use crate::{color, encode, scale};

/// Largest picture side the renderer decodes: the same limit capture applies (DESIGN.md,
/// "Architecture").
pub const MAX_SIDE_PX: u32 = crate::avc::MAX_SIDE_PX;
/// Largest picture area the renderer decodes: the same limit capture applies.
pub const MAX_PIXELS: u64 = crate::avc::MAX_PIXELS;

/// A decoded, cropped 8-bit 4:2:0 picture, planes tightly packed (no row padding): `y` is
/// `width × height`, `u` and `v` are `ceil(width/2) × ceil(height/2)`. H.264 4:2:0 crops in
/// steps of two, so a 4:2:0 stream always has even sides and the chroma planes are exactly
/// half size; odd sides come only from monochrome streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Yuv420 {
    /// Width of the luma plane in pixels.
    pub width: u32,
    /// Height of the luma plane in pixels.
    pub height: u32,
    /// Luma, row-major.
    pub y: Vec<u8>,
    /// Cb, row-major.
    pub u: Vec<u8>,
    /// Cr, row-major.
    pub v: Vec<u8>,
    /// Samples use the full 0..=255 range (VUI `video_full_range_flag`), not 16..=235/240.
    pub full_range: bool,
    /// The YCbCr matrix (VUI `matrix_coefficients`).
    pub matrix: Matrix,
}

impl Yuv420 {
    /// Width of the `u` and `v` planes.
    pub fn chroma_width(&self) -> u32 {
        self.width.div_ceil(2)
    }

    /// Height of the `u` and `v` planes.
    pub fn chroma_height(&self) -> u32 {
        self.height.div_ceil(2)
    }

    /// Checks the invariants the scaling, colour and encoding code rely on: non-zero size within
    /// the render limits and planes of exactly the documented lengths.
    pub fn check_planes(&self) -> Result<(), Failure> {
        check_size(self.width, self.height)?;
        // check_size bounds the area by MAX_PIXELS, so these fit usize even on wasm32.
        let luma = self.width as usize * self.height as usize;
        let chroma = self.chroma_width() as usize * self.chroma_height() as usize;
        if self.y.len() != luma || self.u.len() != chroma || self.v.len() != chroma {
            return Err(Failure::decode(format!(
                "{}x{} picture has planes of {}/{}/{} bytes, expected {luma}/{chroma}/{chroma}",
                self.width,
                self.height,
                self.y.len(),
                self.u.len(),
                self.v.len()
            )));
        }
        Ok(())
    }
}

/// An encoded JPEG and its size in pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    /// A baseline 4:2:0 JFIF file.
    pub jpeg: Vec<u8>,
    /// Width of the JPEG in pixels.
    pub width: u32,
    /// Height of the JPEG in pixels.
    pub height: u32,
}

/// Decodes the one picture of `access_unit`.
///
/// `config` is an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.2.4.1: the body of an FLV
/// AVC sequence header after its 5-byte tag header). `access_unit` holds the NAL units of one
/// picture, each prefixed by a big-endian length of `lengthSizeMinusOne + 1` bytes (the body of an
/// FLV AVC NALU tag after its 5-byte header). A fresh decoder gets the record's SPS and PPS, then
/// the access unit's NAL units, then a flush; the first picture out is the result.
///
/// Errors:
/// - `LimitExceeded`: an SPS (in `config` or in-band in `access_unit`) codes a picture over
///   [`MAX_SIDE_PX`] a side or [`MAX_PIXELS`] in area. Checked before anything is decoded.
/// - `UnsupportedStream`: an SPS is not 8-bit, or is 4:2:2 / 4:4:4, or the decoder reports an
///   unsupported feature.
/// - `DecodeFailed`: a malformed record or access unit (including a NAL length past the end);
///   an SPS field out of its range (see `check_sps_ranges`); a slice that is not I or SI (see
///   `check_intra`); the decoder fails or produces no picture; or part of the picture was never
///   decoded (a slice missing, or cut short: see `pad_cabac_slice` and `find_undecoded_block`).
pub fn decode(config: &[u8], access_unit: &[u8]) -> Result<Yuv420, Failure> {
    decode_with_color(config, access_unit, None)
}

/// [`decode`], with the stream's out-of-band colour description (an Enhanced RTMP `colorInfo`
/// Metadata packet): its matrix is used when the SPS VUI leaves `matrix_coefficients`
/// unspecified. (H.264 pictures are not tone-mapped: 8-bit is all livesnap decodes of H.264.)
pub fn decode_with_color(
    config: &[u8],
    access_unit: &[u8],
    color: Option<&ColorConfig>,
) -> Result<Yuv420, Failure> {
    let record = nal::parse_avcc_config(config).map_err(|e| {
        Failure::decode(format!(
            "avc decoder configuration record of {} bytes is malformed: {e}",
            config.len()
        ))
    })?;
    if record.sps_nals.is_empty() || record.pps_nals.is_empty() {
        return Err(Failure::decode(format!(
            "avc decoder configuration record has {} sps and {} pps, needs at least one of each",
            record.sps_nals.len(),
            record.pps_nals.len()
        )));
    }
    check_framing(access_unit, record.length_size)?;
    let units = nal::parse_avcc(access_unit, record.length_size);
    let all_units = || record.sps_nals.iter().chain(&record.pps_nals).chain(&units);

    // Everything about the parameter sets is settled before the decoder sees a slice.
    let mut sps_by_id = BTreeMap::new();
    let mut pps_by_id = BTreeMap::new();
    for unit in all_units() {
        match unit.nal_unit_type {
            NalUnitType::Sps => {
                let info = nal::parse_sps_info(unit).map_err(|e| from_decoder("sps", e))?;
                check_sps(&info)?;
                if let Some(id) = sps_id(unit) {
                    sps_by_id.insert(id, info);
                }
            }
            NalUnitType::Pps => {
                if let Some((id, header)) = pps_header(unit) {
                    pps_by_id.insert(id, header);
                }
            }
            _ => {}
        }
    }
    check_sps_ranges(config, access_unit, record.length_size)?;
    for unit in &units {
        check_intra(unit)?;
    }
    let first_slice_pps = units.iter().find_map(slice_pps_id);
    let active = first_slice_pps
        .and_then(|pps| pps_by_id.get(&pps))
        .and_then(|pps| sps_by_id.get(&pps.sps_id))
        .or_else(|| sps_by_id.values().next())
        .ok_or_else(|| Failure::decode("no parseable sps in the configuration record"))?;
    let matrix = ColorConfig::fill(active.matrix, color.and_then(|c| c.matrix_coefficients));
    let (full_range, matrix) = (active.full_range, Matrix::from_vui(matrix));

    if let Some(ours) = decode_intra(config, access_unit, record.length_size) {
        let frame = ours?;
        let picture = Yuv420 {
            width: frame.width,
            height: frame.height,
            y: frame.y,
            u: frame.u,
            v: frame.v,
            full_range,
            matrix,
        };
        picture.check_planes()?;
        return Ok(picture);
    }
    let mut decoder = Decoder::new();
    let mut frame = None;
    for unit in all_units() {
        let padded = pad_cabac_slice(unit, &pps_by_id);
        let unit = padded.as_ref().unwrap_or(unit);
        if let Some(done) = decoder
            .decode_nal(unit)
            .map_err(|e| from_decoder(nal_name(unit), e))?
        {
            // The access unit holds one picture; a second one starting means stray data.
            frame = Some(done);
            break;
        }
    }
    let frame = match frame {
        Some(frame) => frame,
        None => decoder.flush().ok_or_else(|| {
            Failure::decode(format!(
                "no picture decoded from {} nal units ({} bytes): no complete first slice",
                units.len(),
                access_unit.len()
            ))
        })?,
    };
    let picture = into_yuv420(frame, full_range, matrix)?;
    if let Some((x, y)) = find_undecoded_block(&picture) {
        return Err(Failure::decode(format!(
            "picture has undecoded macroblocks (first near x {x}, y {y}): slices are missing \
             or damaged"
        )));
    }
    Ok(picture)
}

/// Decodes with our intra decoder ([`livesnap_h264`]); `None` when it does not support the
/// stream (interlace, FMO, ...), so the caller falls back to `rust_h264`.
fn decode_intra(
    config: &[u8],
    access_unit: &[u8],
    length_size: usize,
) -> Option<Result<livesnap_h264::Picture, Failure>> {
    let nals: Vec<&[u8]> = config_parameter_sets(config)?
        .into_iter()
        .chain(NalIter::new(access_unit, length_size).filter_map(Result::ok))
        .collect();
    let limits = livesnap_h264::Limits {
        max_side_px: MAX_SIDE_PX,
        max_pixels: MAX_PIXELS,
    };
    match livesnap_h264::decode(nals, limits) {
        Ok(picture) => Some(Ok(picture)),
        Err(livesnap_h264::Error::Unsupported(_)) => None,
        Err(livesnap_h264::Error::LimitExceeded(why)) => Some(Err(Failure::limit(why))),
        Err(e) => Some(Err(Failure::decode(e.to_string()))),
    }
}

/// The SPS and PPS NAL units of an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.2.4.1),
/// in record order; `None` if the record is cut short.
fn config_parameter_sets(record: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut rest = record.get(5..)?;
    for mask in [0x1f, 0xff] {
        let (&count, tail) = rest.split_first()?;
        rest = tail;
        for _ in 0..(count & mask) {
            let (len, tail) = rest.split_at_checked(2)?;
            let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
            let (nal, tail) = tail.split_at_checked(len)?;
            out.push(nal);
            rest = tail;
        }
    }
    Some(out)
}

/// Decodes `access_unit` (see [`decode`]), shrinks it by DESIGN's `shortside` rule
/// ([`scale::target_size`]: `None` or `Some(0)` keep the size; never upscales), converts it to
/// JFIF colour and encodes a baseline 4:2:0 JPEG at `jpeg_quality` (clamped to 1..=100).
///
/// Errors are those of [`decode`]; scaling, colour and encoding cannot fail on a decoded picture.
pub fn render(
    config: &[u8],
    access_unit: &[u8],
    shortside: Option<u32>,
    jpeg_quality: u8,
) -> Result<Picture, Failure> {
    render_observed(config, access_unit, shortside, jpeg_quality, |_| {})
}

/// A stage of [`render`], in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// H.264 decode and crop ([`decode`]).
    Decode,
    /// Shrinking to the `shortside` size ([`scale::scale`]).
    Scale,
    /// Colour mapping into JFIF ([`color::to_jfif`]).
    Colour,
    /// JPEG encoding ([`encode::encode_jfif`]).
    Encode,
}

/// [`render`], calling `finished` as each [`Stage`] completes, so a native caller can time the
/// stages with its own clock (the guest never reads one).
pub fn render_observed(
    config: &[u8],
    access_unit: &[u8],
    shortside: Option<u32>,
    jpeg_quality: u8,
    mut finished: impl FnMut(Stage),
) -> Result<Picture, Failure> {
    let picture = decode(config, access_unit)?;
    finished(Stage::Decode);
    let (width, height) = scale::target_size(picture.width, picture.height, shortside);
    let mut picture = scale::scale(picture, width, height)?;
    finished(Stage::Scale);
    color::to_jfif(&mut picture)?;
    finished(Stage::Colour);
    let jpeg = encode::encode_jfif(&picture, jpeg_quality)?;
    finished(Stage::Encode);
    Ok(Picture {
        jpeg,
        width,
        height,
    })
}

/// Rejects a picture size of zero or beyond the render limits.
fn check_size(width: u32, height: u32) -> Result<(), Failure> {
    if width == 0 || height == 0 {
        return Err(Failure::decode(format!(
            "picture size {width}x{height} is empty"
        )));
    }
    if width > MAX_SIDE_PX || height > MAX_SIDE_PX {
        return Err(Failure::limit(format!(
            "picture {width}x{height} px exceeds {MAX_SIDE_PX} px a side"
        )));
    }
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(Failure::limit(format!(
            "picture {width}x{height} px exceeds {MAX_PIXELS} pixels"
        )));
    }
    Ok(())
}

/// Refuses an SPS the renderer will not decode. The limits apply to the coded
/// (macroblock-aligned, uncropped) size: that is what the decoder allocates.
fn check_sps(sps: &SpsInfo) -> Result<(), Failure> {
    check_size(sps.coded_width, sps.coded_height)
        .map_err(|f| Failure::new(f.code, format!("sps coded {}", f.message)))?;
    if sps.bit_depth_luma != 8 || sps.bit_depth_chroma != 8 {
        return Err(Failure::unsupported(format!(
            "sps bit depth {}/{} (luma/chroma) is not supported: only 8-bit is",
            sps.bit_depth_luma, sps.bit_depth_chroma
        )));
    }
    if sps.chroma_format > 1 {
        return Err(Failure::unsupported(format!(
            "sps chroma_format_idc {} is not supported: only 4:2:0 and monochrome are",
            sps.chroma_format
        )));
    }
    Ok(())
}

/// Checks that the length prefixes of `access_unit` tile it exactly. `rust_h264::nal::parse_avcc`
/// silently drops a NAL unit whose length runs past the end (hiding a truncated picture), and
/// its `i + len` can wrap on 32-bit targets; this check runs first so neither matters.
fn check_framing(access_unit: &[u8], length_size: usize) -> Result<(), Failure> {
    let mut rest = access_unit;
    while !rest.is_empty() {
        let (prefix, body) = rest.split_at_checked(length_size).ok_or_else(|| {
            Failure::decode(format!(
                "access unit ends with {} stray bytes, less than a {length_size}-byte nal length",
                rest.len()
            ))
        })?;
        let length = prefix
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        rest = body.get(length..).ok_or_else(|| {
            Failure::decode(format!(
                "access unit nal length {length} at offset {} exceeds the {} bytes left",
                access_unit.len() - rest.len(),
                body.len()
            ))
        })?;
    }
    Ok(())
}

/// Maps a decoder error on a NAL unit to a failure.
fn from_decoder(what: &str, error: DecodeError) -> Failure {
    match error {
        DecodeError::Unsupported(feature) => {
            Failure::unsupported(format!("{what}: h264 feature not supported: {feature}"))
        }
        DecodeError::UnexpectedEof => Failure::decode(format!("{what}: truncated (ends early)")),
        DecodeError::InvalidSyntax(why) => Failure::decode(format!("{what}: invalid: {why}")),
    }
}

fn nal_name(unit: &NalUnit<'_>) -> &'static str {
    match unit.nal_unit_type {
        NalUnitType::Sps => "sps",
        NalUnitType::Pps => "pps",
        NalUnitType::SliceIdr => "idr slice",
        NalUnitType::Slice => "slice",
        _ => "nal unit",
    }
}

/// Turns the decoder's frame into a [`Yuv420`], refusing what the SPS checks should already have
/// refused (so a decoder surprise is an error, never a wrong picture).
fn into_yuv420(frame: Frame, full_range: bool, matrix: Matrix) -> Result<Yuv420, Failure> {
    if frame.bit_depth != 8 || frame.chroma_format != ChromaFormat::Yuv420 {
        return Err(Failure::unsupported(format!(
            "decoded picture is {}-bit {:?}: only 8-bit 4:2:0 is supported",
            frame.bit_depth, frame.chroma_format
        )));
    }
    let (width, height) = (frame.width, frame.height);
    check_size(width, height)?;
    let mut picture = Yuv420 {
        width,
        height,
        y: frame.y,
        u: frame.u,
        v: frame.v,
        full_range,
        matrix,
    };
    // rust_h264 sizes chroma as floor(side / 2); only odd (monochrome) sides differ from ours.
    let (fcw, fch) = ((width / 2) as usize, (height / 2) as usize);
    let (cw, ch) = (
        picture.chroma_width() as usize,
        picture.chroma_height() as usize,
    );
    if (fcw, fch) != (cw, ch) && picture.u.len() == fcw * fch && picture.v.len() == fcw * fch {
        picture.u = widen_chroma(&picture.u, fcw, cw, ch);
        picture.v = widen_chroma(&picture.v, fcw, cw, ch);
    }
    picture.check_planes()?;
    Ok(picture)
}

/// Pads a `width × rows` plane to `new_width × new_rows` by repeating its last column and row
/// (a zero-sized plane pads with mid-grey).
fn widen_chroma(plane: &[u8], width: usize, new_width: usize, new_rows: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(new_width * new_rows);
    let mut last_row: &[u8] = &[];
    for r in 0..new_rows {
        let row = match plane.get(r * width..(r + 1) * width) {
            Some(row) if width > 0 => row,
            _ => last_row,
        };
        out.extend_from_slice(row);
        let fill = row.last().copied().unwrap_or(128);
        out.resize((r + 1) * new_width, fill);
        last_row = row;
    }
    out
}

/// Reads Exp-Golomb `ue(v)` values (ISO/IEC 14496-10 §9.1) from an RBSP.
struct BitReader<'a> {
    data: &'a [u8],
    bit: usize,
}

impl BitReader<'_> {
    fn read_bit(&mut self) -> Option<u32> {
        let byte = self.data.get(self.bit / 8)?;
        let bit = (byte >> (7 - self.bit % 8)) & 1;
        self.bit += 1;
        Some(u32::from(bit))
    }

    fn read_ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.read_bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let mut suffix = 0u32;
        for _ in 0..zeros {
            suffix = (suffix << 1) | self.read_bit()?;
        }
        ((1u64 << zeros) - 1 + u64::from(suffix)).try_into().ok()
    }
}

/// `seq_parameter_set_id` of an SPS: after profile_idc, the constraint flags and level_idc
/// (§7.3.2.1.1).
fn sps_id(sps: &NalUnit<'_>) -> Option<u32> {
    BitReader {
        data: sps.rbsp.get(3..)?,
        bit: 0,
    }
    .read_ue()
}

/// The PPS fields the renderer needs (§7.3.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PpsHeader {
    /// `seq_parameter_set_id`: the SPS this PPS belongs to.
    sps_id: u32,
    /// `entropy_coding_mode_flag`: slices are CABAC coded.
    cabac: bool,
}

/// `pic_parameter_set_id` and the header of a PPS: its first three fields (§7.3.2.2).
fn pps_header(pps: &NalUnit<'_>) -> Option<(u32, PpsHeader)> {
    let mut r = BitReader {
        data: &pps.rbsp,
        bit: 0,
    };
    let id = r.read_ue()?;
    let sps_id = r.read_ue()?;
    let cabac = r.read_bit()? == 1;
    Some((id, PpsHeader { sps_id, cabac }))
}

/// `pic_parameter_set_id` of a slice: after first_mb_in_slice and slice_type (§7.3.3).
fn slice_pps_id(unit: &NalUnit<'_>) -> Option<u32> {
    if !matches!(
        unit.nal_unit_type,
        NalUnitType::SliceIdr | NalUnitType::Slice
    ) {
        return None;
    }
    let mut r = BitReader {
        data: &unit.rbsp,
        bit: 0,
    };
    r.read_ue()?;
    r.read_ue()?;
    r.read_ue()
}

/// Parses every SPS, in the record and in-band, with h264-reader as capture does
/// ([`AvcConfig::parse`], [`avc::parse_sps`]): it checks each field against its range in the
/// standard (§7.4.2.1.1), which rust_h264 0.6 does not (a log2_max_frame_num_minus4 over 12
/// overflows its frame number arithmetic: found by `cargo fuzz run render`). A shot from capture
/// has passed the same parse, so this never refuses one. Size and format refusals are left to
/// [`check_sps`], which runs first.
fn check_sps_ranges(config: &[u8], access_unit: &[u8], length_size: usize) -> Result<(), Failure> {
    AvcConfig::parse(config)?;
    for nal in NalIter::new(access_unit, length_size) {
        let nal = nal?;
        if nal.first().is_some_and(|header| header & 0x1f == 7) {
            avc::parse_sps(nal)?;
        }
    }
    Ok(())
}

/// Refuses a slice that is not intra, or whose `slice_type` cannot be read (§7.3.3: after
/// first_mb_in_slice; Table 7-6: 2/7 I, 4/9 SI). A shot is an I-frame (capture checks every
/// slice) and a fresh decoder has no reference picture for a P or B slice; refusing them also
/// keeps hostile bytes out of rust_h264's inter paths, whose CABAC motion vector escape run is
/// unbounded (0.6's `decode_mvd_comp` overflows a u32 on it: found by `cargo fuzz run render`).
fn check_intra(unit: &NalUnit<'_>) -> Result<(), Failure> {
    if !matches!(
        unit.nal_unit_type,
        NalUnitType::SliceIdr | NalUnitType::Slice
    ) {
        return Ok(());
    }
    let mut r = BitReader {
        data: &unit.rbsp,
        bit: 0,
    };
    match r.read_ue().and_then(|_| r.read_ue()) {
        Some(2 | 4 | 7 | 9) => Ok(()),
        Some(other) => Err(Failure::decode(format!(
            "{} has slice_type {other}: only I and SI slices are rendered",
            nal_name(unit)
        ))),
        None => Err(Failure::decode(format!(
            "{} header ends before its slice_type",
            nal_name(unit)
        ))),
    }
}

/// Bytes of `0xFF` appended to every CABAC slice; see [`pad_cabac_slice`].
const CABAC_PADDING: usize = 512;

/// A copy of a CABAC slice with [`CABAC_PADDING`] `0xFF` bytes appended, so that a truncated
/// one fails visibly; `None` for anything else.
///
/// `rust_h264` (like FFmpeg) reads zeros past the end of slice data and never reports it, so a
/// CABAC slice cut short decodes to garbage with no error. A complete slice ends with
/// `end_of_slice_flag` = 1 and its arithmetic decoder never uses a bit past the
/// `rbsp_stop_one_bit` (§9.3.4.5: the decision compares only the 9-bit offset, which by then
/// holds that stop bit as its last bit), so bytes after the slice cannot change its picture.
/// A cut-short slice instead reads the padding: an offset of all ones sits at the top of every
/// interval, so the next `end_of_slice_flag` decodes as 1 (at worst after an I_PCM macroblock,
/// whose 384 raw bytes the padding covers) and the macroblocks after it stay undecoded, which
/// [`find_undecoded_block`] reports. CAVLC slices are left alone: their end is found with
/// `more_rbsp_data()`, which padding would fool.
fn pad_cabac_slice(
    unit: &NalUnit<'_>,
    pps_by_id: &BTreeMap<u32, PpsHeader>,
) -> Option<NalUnit<'static>> {
    let pps = pps_by_id.get(&slice_pps_id(unit)?)?;
    if !pps.cabac {
        return None;
    }
    let mut rbsp = Vec::with_capacity(unit.rbsp.len() + CABAC_PADDING);
    rbsp.extend_from_slice(&unit.rbsp);
    rbsp.resize(unit.rbsp.len() + CABAC_PADDING, 0xFF);
    Some(NalUnit {
        nal_ref_idc: unit.nal_ref_idc,
        nal_unit_type: unit.nal_unit_type,
        rbsp: Cow::Owned(rbsp),
    })
}

/// Finds a macroblock the decoder never wrote, returning a luma position inside it.
///
/// `rust_h264` starts every picture as all-zero samples and does not report macroblocks that no
/// slice covered (a lost slice NAL unit, a slice that ended early). Luma 0 with Cb = Cr = 0 is
/// far outside the RGB gamut in both ranges, so no encoder produces it from real content, while
/// an unwritten macroblock keeps at least its 10×10 luma / 6×6 chroma interior at exactly zero
/// after deblocking. Looking for an aligned 4×4 luma block plus its 2×2 chroma blocks, all
/// zero, finds every such macroblock. The scan walks the chroma planes and only looks at luma
/// where chroma is zero, so it costs about one read of the chroma planes.
fn find_undecoded_block(picture: &Yuv420) -> Option<(usize, usize)> {
    let width = picture.width as usize;
    let chroma_width = picture.chroma_width() as usize;
    let all_zero = |plane: &[u8], start: usize, len: usize| {
        plane
            .get(start..start + len)
            .is_some_and(|s| s.iter().all(|&b| b == 0))
    };
    let chroma_rows = picture.chroma_height() as usize / 2;
    for pair in 0..chroma_rows {
        let top = pair * 2 * chroma_width;
        let (Some(u0), Some(v0)) = (
            picture.u.get(top..top + chroma_width),
            picture.v.get(top..top + chroma_width),
        ) else {
            return None;
        };
        for cx in (0..chroma_width.saturating_sub(1)).step_by(2) {
            let zero_here =
                u0.get(cx..cx + 2) == Some(&[0, 0]) && v0.get(cx..cx + 2) == Some(&[0, 0]);
            if !zero_here {
                continue;
            }
            let below = top + chroma_width + cx;
            let (x, y) = (cx * 2, pair * 4);
            if all_zero(&picture.u, below, 2)
                && all_zero(&picture.v, below, 2)
                && (y..y + 4).all(|row| all_zero(&picture.y, row * width + x, 4))
            {
                return Some((x, y));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use md5::{Digest, Md5};
    use proptest::prelude::*;
    use proptest::sample::Index;
    use std::path::PathBuf;
    use zune_jpeg::JpegDecoder;
    use zune_jpeg::zune_core::bytestream::ZCursor;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;

    /// The streams `testdata/make.sh` makes: name, size, full range, matrix.
    const STREAMS: [(&str, u32, u32, bool, Matrix); 4] = [
        ("cabac_64x48", 64, 48, false, Matrix::Bt601),
        ("crop_70x38", 70, 38, true, Matrix::Bt601),
        ("full709_96x64", 96, 64, true, Matrix::Bt709),
        ("slices_128x96", 128, 96, false, Matrix::Bt709),
    ];

    fn testdata(file: &str) -> Vec<u8> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(file);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// (config, access unit, reference md5, "WxH") of a test stream.
    fn stream(name: &str) -> (Vec<u8>, Vec<u8>, String, String) {
        let reference = String::from_utf8(testdata(&format!("{name}.md5"))).unwrap();
        let mut lines = reference.lines();
        let md5 = lines.next().unwrap().to_owned();
        let size = lines.next().unwrap().to_owned();
        (
            testdata(&format!("{name}.avcc")),
            testdata(&format!("{name}.au")),
            md5,
            size,
        )
    }

    fn decode_jpeg(jpeg: &[u8]) -> (usize, usize, Vec<u8>) {
        let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
        let mut decoder = JpegDecoder::new_with_options(ZCursor::new(jpeg), options);
        let rgb = decoder.decode().unwrap();
        let info = decoder.info().unwrap();
        (usize::from(info.width), usize::from(info.height), rgb)
    }

    /// Independent float reference: each pixel of `p` to clamped R'G'B' (H.264 §E.2.1), with
    /// chroma interpolated bilinearly at the pixel centre. Chroma samples are taken as centred
    /// on their 2x2 luma block, which is what a JFIF decoder assumes (JFIF 1.02, "sampling").
    fn reference_rgb(p: &Yuv420) -> Vec<f64> {
        let (kr, kb) = match p.matrix {
            Matrix::Bt601 => (0.299, 0.114),
            Matrix::Bt709 => (0.2126, 0.0722),
            Matrix::Bt2020 => (0.2627, 0.0593),
        };
        let (y0, ys, cs) = if p.full_range {
            (0.0, 255.0, 255.0)
        } else {
            (16.0, 219.0, 224.0)
        };
        let (w, cw, ch) = (
            p.width as usize,
            p.chroma_width() as usize,
            p.chroma_height() as usize,
        );
        // Position of luma sample `i` in chroma sample units, and the two neighbours + weight.
        let taps = |i: usize, n: usize| {
            let pos = ((i as f64 - 0.5) / 2.0).clamp(0.0, (n - 1) as f64);
            let lo = pos.floor() as usize;
            (lo, (lo + 1).min(n - 1), pos - lo as f64)
        };
        let chroma = |plane: &[u8], x: usize, y: usize| {
            let ((x0, x1, fx), (y0, y1, fy)) = (taps(x, cw), taps(y, ch));
            let at = |cx: usize, cy: usize| f64::from(plane[cy * cw + cx]);
            let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
            let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
            top * (1.0 - fy) + bottom * fy
        };
        let mut out = Vec::new();
        for (i, &luma) in p.y.iter().enumerate() {
            let (x, row) = (i % w, i / w);
            let y = (f64::from(luma) - y0) / ys;
            let pb = (chroma(&p.u, x, row) - 128.0) / cs;
            let pr = (chroma(&p.v, x, row) - 128.0) / cs;
            let r = y + 2.0 * (1.0 - kr) * pr;
            let b = y + 2.0 * (1.0 - kb) * pb;
            let g = (y - kr * r - kb * b) / (1.0 - kr - kb);
            out.extend([r, g, b].map(|v| (v * 255.0).clamp(0.0, 255.0)));
        }
        out
    }

    fn psnr(a: &[f64], b: &[u8]) -> f64 {
        assert_eq!(a.len(), b.len());
        let mse = a
            .iter()
            .zip(b)
            .map(|(x, &y)| (x - f64::from(y)).powi(2))
            .sum::<f64>()
            / a.len() as f64;
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }

    /// Minimal RBSP writer for crafting parameter sets.
    #[derive(Default)]
    struct BitWriter {
        bytes: Vec<u8>,
        bits: usize,
    }

    impl BitWriter {
        fn bit(&mut self, b: u32) {
            if self.bits.is_multiple_of(8) {
                self.bytes.push(0);
            }
            if b != 0 {
                *self.bytes.last_mut().unwrap() |= 0x80 >> (self.bits % 8);
            }
            self.bits += 1;
        }
        fn bits(&mut self, n: u32, v: u32) {
            for i in (0..n).rev() {
                self.bit((v >> i) & 1);
            }
        }
        fn ue(&mut self, v: u32) {
            let v = u64::from(v) + 1;
            let len = 64 - v.leading_zeros();
            for _ in 1..len {
                self.bit(0);
            }
            for i in (0..len).rev() {
                self.bit(((v >> i) & 1) as u32);
            }
        }
        fn finish(mut self) -> Vec<u8> {
            self.bit(1); // rbsp_stop_one_bit
            self.bytes
        }
    }

    /// A Baseline SPS (id 0) coding `mbs_w × mbs_h` macroblocks: the fields of §7.3.2.1.1 in
    /// order, no VUI. No 00 00 0x runs arise, so it needs no emulation prevention.
    fn baseline_sps(mbs_w: u32, mbs_h: u32) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.bits(8, 0x67); // nal header: ref_idc 3, type 7
        w.bits(8, 66); // profile_idc
        w.bits(8, 0xC0); // constraint flags
        w.bits(8, 40); // level_idc
        w.ue(0); // seq_parameter_set_id
        w.ue(0); // log2_max_frame_num_minus4
        w.ue(2); // pic_order_cnt_type
        w.ue(1); // max_num_ref_frames
        w.bit(0); // gaps_in_frame_num_value_allowed_flag
        w.ue(mbs_w - 1);
        w.ue(mbs_h - 1);
        w.bit(1); // frame_mbs_only_flag
        w.bit(1); // direct_8x8_inference_flag
        w.bit(0); // frame_cropping_flag
        w.bit(0); // vui_parameters_present_flag
        w.finish()
    }

    /// `config` with its first SPS replaced by `sps`.
    fn with_sps(config: &[u8], sps: &[u8]) -> Vec<u8> {
        let old_len = usize::from(u16::from_be_bytes([config[6], config[7]]));
        let mut out = config[..6].to_vec();
        out.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        out.extend_from_slice(sps);
        out.extend_from_slice(&config[8 + old_len..]);
        out
    }

    fn length_prefixed(nal: &[u8]) -> Vec<u8> {
        let mut out = (nal.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(nal);
        out
    }

    /// The NAL units of an access unit with 4-byte lengths.
    fn split_au(au: &[u8]) -> Vec<&[u8]> {
        let mut nals = Vec::new();
        let mut rest = au;
        while rest.len() >= 4 {
            let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            nals.push(&rest[4..4 + len]);
            rest = &rest[4 + len..];
        }
        nals
    }

    #[test]
    fn decoded_pictures_match_ffmpeg_bit_for_bit() {
        for (name, w, h, _, _) in STREAMS {
            let (config, au, md5, size) = stream(name);
            let p = decode(&config, &au).unwrap();
            assert_eq!(format!("{}x{}", p.width, p.height), size, "{name}");
            assert_eq!((p.width, p.height), (w, h), "{name}");
            let digest = Md5::new()
                .chain_update(&p.y)
                .chain_update(&p.u)
                .chain_update(&p.v)
                .finalize();
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex, md5, "{name}: decode differs from ffmpeg's");
        }
    }

    #[test]
    fn cropping_window_gives_display_size_and_half_size_chroma() {
        let (config, au, _, _) = stream("crop_70x38");
        let p = decode(&config, &au).unwrap();
        assert_eq!((p.width, p.height), (70, 38));
        assert_eq!(
            (p.y.len(), p.u.len(), p.v.len()),
            (70 * 38, 35 * 19, 35 * 19)
        );
    }

    #[test]
    fn vui_colour_description_sets_range_and_matrix() {
        for (name, _, _, full_range, matrix) in STREAMS {
            let (config, au, _, _) = stream(name);
            let p = decode(&config, &au).unwrap();
            assert_eq!((p.full_range, p.matrix), (full_range, matrix), "{name}");
        }
    }

    #[test]
    fn render_makes_a_jpeg_of_the_picture_size() {
        for (name, w, h, _, _) in STREAMS {
            let (config, au, _, _) = stream(name);
            let pic = render(&config, &au, None, 80).unwrap();
            assert_eq!((pic.width, pic.height), (w, h));
            let (jw, jh, _) = decode_jpeg(&pic.jpeg);
            assert_eq!((jw as u32, jh as u32), (w, h), "{name}");
        }
    }

    #[test]
    fn render_applies_shortside_and_never_upscales() {
        let (config, au, _, _) = stream("crop_70x38");
        let pic = render(&config, &au, Some(25), 80).unwrap();
        assert_eq!((pic.width, pic.height), (46, 25));
        let (jw, jh, _) = decode_jpeg(&pic.jpeg);
        assert_eq!((jw, jh), (46, 25));
        let same = render(&config, &au, Some(720), 80).unwrap();
        assert_eq!((same.width, same.height), (70, 38));
        let zero = render(&config, &au, Some(0), 80).unwrap();
        assert_eq!((zero.width, zero.height), (70, 38));
    }

    #[test]
    fn jpeg_colours_match_a_float_reference_conversion() {
        for (name, ..) in STREAMS {
            let (config, au, _, _) = stream(name);
            let reference = reference_rgb(&decode(&config, &au).unwrap());
            let pic = render(&config, &au, None, 90).unwrap();
            let (_, _, rgb) = decode_jpeg(&pic.jpeg);
            let db = psnr(&reference, &rgb);
            assert!(db > 30.0, "{name}: psnr {db:.1} dB");
        }
    }

    #[test]
    fn every_wrong_range_or_matrix_scores_clearly_worse() {
        // Guards the PSNR check itself: reading the pixels with any other (range, matrix) than
        // the VUI's must score clearly below the right interpretation.
        for (name, ..) in STREAMS {
            let (config, au, _, _) = stream(name);
            let decoded = decode(&config, &au).unwrap();
            let (_, _, rgb) = decode_jpeg(&render(&config, &au, None, 90).unwrap().jpeg);
            let right = psnr(&reference_rgb(&decoded), &rgb);
            for full_range in [false, true] {
                for matrix in [Matrix::Bt601, Matrix::Bt709] {
                    if (full_range, matrix) == (decoded.full_range, decoded.matrix) {
                        continue;
                    }
                    let mut wrong = decoded.clone();
                    (wrong.full_range, wrong.matrix) = (full_range, matrix);
                    let db = psnr(&reference_rgb(&wrong), &rgb);
                    assert!(
                        db < right - 3.0,
                        "{name} as {matrix:?} full={full_range}: {db:.1} dB"
                    );
                }
            }
        }
    }

    #[test]
    fn quality_outside_1_to_100_is_clamped() {
        let (config, au, _, _) = stream("cabac_64x48");
        let q0 = render(&config, &au, None, 0).unwrap();
        let q1 = render(&config, &au, None, 1).unwrap();
        let q255 = render(&config, &au, None, 255).unwrap();
        let q100 = render(&config, &au, None, 100).unwrap();
        assert_eq!(q0.jpeg, q1.jpeg);
        assert_eq!(q255.jpeg, q100.jpeg);
        assert!(q100.jpeg.len() > q1.jpeg.len());
    }

    #[test]
    fn oversized_sps_is_refused_before_decoding() {
        let (config, au, _, _) = stream("cabac_64x48");
        // 513 MBs = 8208 px wide; 8208x8208 would need ~100 MB if decoded.
        for (mbs_w, mbs_h, what) in [(513, 1, "a side"), (1, 513, "a side"), (513, 513, "a side")]
            .into_iter()
            .chain([(375, 376, "pixels")])
        {
            let big = with_sps(&config, &baseline_sps(mbs_w, mbs_h));
            let err = decode(&big, &au).unwrap_err();
            assert_eq!(err.code, ErrorCode::LimitExceeded, "{mbs_w}x{mbs_h}: {err}");
            assert!(err.message.contains(what), "{err}");
        }
    }

    #[test]
    fn size_limits_are_inclusive() {
        assert!(check_size(MAX_SIDE_PX, 4394).is_ok()); // 35,995,648 px
        assert!(check_size(1, MAX_SIDE_PX).is_ok());
        for (w, h) in [
            (MAX_SIDE_PX, 4395),
            (MAX_SIDE_PX + 1, 1),
            (1, MAX_SIDE_PX + 1),
        ] {
            assert_eq!(check_size(w, h).unwrap_err().code, ErrorCode::LimitExceeded);
        }
        assert_eq!(check_size(0, 5).unwrap_err().code, ErrorCode::DecodeFailed);
    }

    #[test]
    fn oversized_in_band_sps_is_refused_too() {
        let (config, au, _, _) = stream("cabac_64x48");
        let mut big_au = length_prefixed(&baseline_sps(600, 600));
        big_au.extend_from_slice(&au);
        let err = decode(&config, &big_au).unwrap_err();
        assert_eq!(err.code, ErrorCode::LimitExceeded, "{err}");
    }

    #[test]
    fn high_bit_depth_and_422_sps_are_unsupported() {
        let info = |bit_depth, chroma_format| SpsInfo {
            width: 64,
            height: 48,
            coded_width: 64,
            coded_height: 48,
            profile: 110,
            chroma_format,
            bit_depth_luma: bit_depth,
            bit_depth_chroma: bit_depth,
            reference_frames: 1,
            progressive: true,
            full_range: false,
            primaries: 2,
            transfer: 2,
            matrix: 2,
            chroma_location: 0,
            max_reorder_frames: None,
        };
        assert!(check_sps(&info(8, 1)).is_ok());
        assert!(check_sps(&info(8, 0)).is_ok());
        for (depth, chroma) in [(10, 1), (8, 2), (8, 3), (9, 1)] {
            let err = check_sps(&info(depth, chroma)).unwrap_err();
            assert_eq!(err.code, ErrorCode::UnsupportedStream, "{depth} {chroma}");
        }
    }

    #[test]
    fn truncated_access_unit_is_a_decode_failure() {
        let (config, au, _, _) = stream("cabac_64x48");
        for cut in [0, 3, 5, au.len() / 2, au.len() - 1] {
            let err = decode(&config, &au[..cut]).unwrap_err();
            assert_eq!(err.code, ErrorCode::DecodeFailed, "cut at {cut}: {err}");
        }
    }

    /// `au` with NAL unit `index` replaced by `with` (or dropped when `None`), re-framed.
    fn replace_nal(au: &[u8], index: usize, with: Option<&[u8]>) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, nal) in split_au(au).into_iter().enumerate() {
            match (i == index, with) {
                (false, _) => out.extend(length_prefixed(nal)),
                (true, Some(other)) => out.extend(length_prefixed(other)),
                (true, None) => {}
            }
        }
        out
    }

    #[test]
    fn truncated_slice_with_consistent_framing_is_a_decode_failure() {
        // Cut a slice short and re-frame it so the lengths are valid: the decoder itself must
        // notice that the slice data ends early (CAVLC errors; CABAC runs into the padding and
        // leaves macroblocks undecoded). Cuts anywhere but the last few bytes are caught.
        for (name, ..) in STREAMS {
            let (config, au, _, _) = stream(name);
            let nals = split_au(&au);
            for (index, slice) in nals.iter().enumerate().skip(1) {
                for keep in [0.1, 0.5, 0.8] {
                    let cut = &slice[..(slice.len() as f64 * keep) as usize];
                    let result = decode(&config, &replace_nal(&au, index, Some(cut)));
                    let err = result.map(|p| (p.width, p.height)).unwrap_err();
                    assert_eq!(
                        err.code,
                        ErrorCode::DecodeFailed,
                        "{name} nal {index}: {err}"
                    );
                }
            }
        }
    }

    #[test]
    fn missing_slice_is_a_decode_failure() {
        let (config, au, _, _) = stream("slices_128x96");
        let nals = split_au(&au);
        assert_eq!(nals.len(), 5, "sei + 4 slices");
        for index in 1..nals.len() {
            let result = decode(&config, &replace_nal(&au, index, None));
            let err = result.map(|p| (p.width, p.height)).unwrap_err();
            assert_eq!(
                err.code,
                ErrorCode::DecodeFailed,
                "without slice {index}: {err}"
            );
        }
    }

    #[test]
    fn undecoded_block_search_ignores_black_and_finds_zeroed_macroblocks() {
        let (config, au, _, _) = stream("full709_96x64");
        let mut p = decode(&config, &au).unwrap();
        assert_eq!(find_undecoded_block(&p), None);
        // Full-range black (Y 0, neutral chroma) is a real colour, not a hole.
        p.y.fill(0);
        assert_eq!(find_undecoded_block(&p), None);
        // Zero one 16x16 macroblock's luma and chroma at (32, 16).
        let (w, cw) = (p.width as usize, p.chroma_width() as usize);
        for row in 16..32 {
            p.y[row * w + 32..row * w + 48].fill(0);
        }
        for row in 8..16 {
            p.u[row * cw + 16..row * cw + 24].fill(0);
            p.v[row * cw + 16..row * cw + 24].fill(0);
        }
        assert_eq!(find_undecoded_block(&p), Some((32, 16)));
    }

    #[test]
    fn access_unit_without_slices_is_a_decode_failure() {
        let (config, au, _, _) = stream("cabac_64x48");
        let sei_only = length_prefixed(split_au(&au)[0]);
        let err = decode(&config, &sei_only).unwrap_err();
        assert_eq!(err.code, ErrorCode::DecodeFailed);
        assert_eq!(
            decode(&config, &[]).unwrap_err().code,
            ErrorCode::DecodeFailed
        );
    }

    #[test]
    fn malformed_configuration_record_is_a_decode_failure() {
        let (config, au, _, _) = stream("cabac_64x48");
        for bad in [
            &[][..],
            &config[..5],
            &config[..12],
            &[2, 0x64, 0, 10, 0xFF, 0xE0, 0][..],
        ] {
            let err = decode(bad, &au).unwrap_err();
            assert_eq!(err.code, ErrorCode::DecodeFailed, "{bad:?}: {err}");
        }
    }

    #[test]
    fn p_slice_in_an_idr_picture_is_refused_before_decoding() {
        // Found by `cargo fuzz run render`, cut to two NAL units: a mutated High-profile CABAC
        // record, then an IDR I slice and an IDR slice with slice_type 0 (P) whose motion vector
        // escape run overflowed a u32 in rust_h264 0.6 (`decode_mvd_comp`).
        let config = testdata("fuzz_p_slice_in_idr.avcc");
        let au = testdata("fuzz_p_slice_in_idr.au");
        let err = decode(&config, &au).unwrap_err();
        assert_eq!(err.code, ErrorCode::DecodeFailed, "{err}");
        assert!(err.message.contains("slice_type 0"), "{err}");
        assert!(render(&config, &au, Some(16), 80).is_err());
    }

    #[test]
    fn non_intra_slices_are_a_decode_failure() {
        // A real I-frame whose first slice is relabelled P, B, SP, or whose header stops early.
        let (config, au, _, _) = stream("crop_70x38");
        let slice = split_au(&au)[1];
        let mut w = BitWriter::default();
        w.bits(8, u32::from(slice[0]));
        w.ue(0); // first_mb_in_slice
        let header = w.bytes.clone();
        for slice_type in [0, 1, 3, 5, 6, 8] {
            let mut w = BitWriter::default();
            w.bits(8, u32::from(slice[0]));
            w.ue(0);
            w.ue(slice_type);
            let relabelled = replace_nal(&au, 1, Some(&w.finish()));
            let err = decode(&config, &relabelled).unwrap_err();
            assert_eq!(err.code, ErrorCode::DecodeFailed, "{slice_type}: {err}");
            assert!(
                err.message.contains(&format!("slice_type {slice_type}")),
                "{err}"
            );
        }
        let err = decode(&config, &replace_nal(&au, 1, Some(&header))).unwrap_err();
        assert_eq!(err.code, ErrorCode::DecodeFailed, "{err}");
    }

    #[test]
    fn out_of_range_log2_max_frame_num_is_refused_before_decoding() {
        // Found by `cargo fuzz run render`, minimised: a mutated High-profile record whose SPS has
        // log2_max_frame_num_minus4 42 (the standard allows 0..=12), then the first 4 bytes of
        // an IDR slice. rust_h264 0.6 takes the field as is and overflowed `frame_num * 2 + 1`
        // in its reference marking (`apply_reference_marking`).
        let config = [
            0x01, 0x64, 0x10, 0x0a, 0xff, 0xe1, 0x00, 0x18, 0x67, 0xe4, 0x10, 0x83, 0x82, 0xb8,
            0x41, 0xb6, 0x02, 0xd4, 0x04, 0x04, 0x05, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00,
            0x03, 0x00, 0x32, 0x04, 0x01, 0x00, 0x06, 0x68, 0xee, 0x02, 0x32, 0xc8, 0xb0, 0xfd,
            0xf8, 0xf8, 0x00,
        ];
        let au = [0x00, 0x00, 0x00, 0x04, 0x65, 0x88, 0x84, 0x27];
        let err = decode(&config, &au).unwrap_err();
        assert_eq!(err.code, ErrorCode::DecodeFailed, "{err}");
        assert!(
            err.message.contains("Log2MaxFrameNumMinus4OutOfRange(42)"),
            "{err}"
        );
        // The same SPS in-band, after the real record of a test stream.
        let (real, _, _, _) = stream("cabac_64x48");
        let mut in_band = length_prefixed(&config[8..32]);
        in_band.extend_from_slice(&au);
        let err = decode(&real, &in_band).unwrap_err();
        assert!(
            err.message.contains("Log2MaxFrameNumMinus4OutOfRange(42)"),
            "{err}"
        );
    }

    #[test]
    fn huge_nal_length_is_refused_without_overflow() {
        let (config, _, _, _) = stream("cabac_64x48");
        let au = [0xFF, 0xFF, 0xFF, 0xFE, 0x65, 0x88];
        assert_eq!(
            decode(&config, &au).unwrap_err().code,
            ErrorCode::DecodeFailed
        );
    }

    #[test]
    fn odd_monochrome_chroma_is_widened_to_ceil_size() {
        // 3x3 luma with rust_h264's 1x1 chroma -> 2x2 chroma.
        assert_eq!(widen_chroma(&[7], 1, 2, 2), vec![7, 7, 7, 7]);
        assert_eq!(
            widen_chroma(&[1, 2, 3, 4], 2, 3, 3),
            vec![1, 2, 2, 3, 4, 4, 3, 4, 4]
        );
        assert_eq!(widen_chroma(&[], 0, 1, 1), vec![128]);
    }

    #[test]
    fn exp_golomb_reader_reads_parameter_set_ids() {
        let (config, au, _, _) = stream("cabac_64x48");
        let record = nal::parse_avcc_config(&config).unwrap();
        assert_eq!(sps_id(&record.sps_nals[0]), Some(0));
        let header = PpsHeader {
            sps_id: 0,
            cabac: true,
        };
        assert_eq!(pps_header(&record.pps_nals[0]), Some((0, header)));
        let units = nal::parse_avcc(&au, 4);
        assert_eq!(units.iter().find_map(slice_pps_id), Some(0));
        let mut r = BitReader {
            data: &[0b0010_0100, 0, 0, 0, 0, 0b1000_0000],
            bit: 0,
        };
        assert_eq!(r.read_ue(), Some(3)); // 00100
        assert_eq!(r.read_ue(), Some(0)); // 1
        assert_eq!(r.read_ue(), None); // 32+ zeros
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn random_bytes_never_panic(
            config in proptest::collection::vec(any::<u8>(), 0..64),
            au in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let _ = render(&config, &au, Some(16), 50);
        }

        #[test]
        fn mutated_access_units_never_panic(
            stream_index in 0usize..STREAMS.len(),
            flips in proptest::collection::vec((any::<Index>(), any::<u8>()), 1..8),
            cut in any::<Index>(),
            truncate in any::<bool>(),
        ) {
            let (config, mut au, _, _) = stream(STREAMS[stream_index].0);
            for (at, byte) in flips {
                let i = at.index(au.len());
                au[i] ^= byte;
            }
            if truncate {
                au.truncate(cut.index(au.len()));
            }
            if let Ok(pic) = render(&config, &au, Some(20), 60) {
                prop_assert!(pic.width >= 1 && pic.height >= 1);
            }
        }

        #[test]
        fn mutated_configuration_records_never_panic(
            stream_index in 0usize..STREAMS.len(),
            flips in proptest::collection::vec((any::<Index>(), any::<u8>()), 1..4),
        ) {
            let (mut config, au, _, _) = stream(STREAMS[stream_index].0);
            for (at, byte) in flips {
                let i = at.index(config.len());
                config[i] ^= byte;
            }
            let _ = render(&config, &au, None, 60);
        }
    }
}
