//! A core wasm module (wasm32-unknown-unknown, simd128) for `cargo bench -p livesnap-tests`: it
//! decodes I-frames with `livesnap-h264` or `rust_h264` so the benchmark can time both decoders
//! under wasmtime with the same inputs. It never touches the product path.
//!
//! Protocol: the host calls `input_buffer(len)`, writes the access units at the returned
//! address (`u32` LE count of access units, then per access unit a `u32` count of NAL units,
//! each a `u32` length and the NAL bytes, header byte first), then calls `decode(which,
//! rounds)` (`which` 0 = ours, 1 = rust_h264) and times it. `decode` returns the number of
//! pictures decoded, or `u32::MAX` if one failed.
//!
//! The render split: the host writes an AVCDecoderConfigurationRecord and one AVCC access unit
//! (`u32` LE length + bytes, twice) into `input_buffer`, then calls `stage_decode`,
//! `stage_scale(shortside)`, `stage_colour` and `stage_encode(quality)` in that order, timing
//! each: the same functions, in the same order, as the component's render (`shot::render`),
//! each stage's picture kept in the module for the next.

use std::cell::RefCell;

thread_local! {
    static INPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Sizes the input buffer to `len` bytes and returns its address in linear memory.
#[expect(
    unsafe_code,
    reason = "an exported symbol needs no_mangle; no unsafe operation"
)]
#[unsafe(no_mangle)]
pub extern "C" fn input_buffer(len: u32) -> u32 {
    INPUT.with_borrow_mut(|v| {
        v.clear();
        v.resize(len as usize, 0);
        v.as_mut_ptr() as usize as u32
    })
}

/// Decodes every access unit of the input `rounds` times with decoder `which`.
#[expect(
    unsafe_code,
    reason = "an exported symbol needs no_mangle; no unsafe operation"
)]
#[unsafe(no_mangle)]
pub extern "C" fn decode(which: u32, rounds: u32) -> u32 {
    INPUT.with_borrow(|input| {
        let units = access_units(input);
        let mut ours = livesnap_h264::Decoder::new();
        let mut pictures = 0u32;
        for _ in 0..rounds {
            for au in &units {
                let ok = if which == 0 {
                    ours.decode(au.iter().copied(), livesnap_h264::Limits::default())
                        .is_ok()
                } else {
                    decode_rust_h264(au)
                };
                if !ok {
                    return u32::MAX;
                }
                pictures += 1;
            }
        }
        pictures
    })
}

/// Splits the input into access units of NAL units.
pub fn access_units(input: &[u8]) -> Vec<Vec<&[u8]>> {
    let mut units = Vec::new();
    let mut pos = 0usize;
    let count = read_u32(input, &mut pos).unwrap_or(0);
    for _ in 0..count {
        let Some(nals) = read_u32(input, &mut pos) else {
            break;
        };
        let mut au = Vec::new();
        for _ in 0..nals {
            let Some(len) = read_u32(input, &mut pos) else {
                break;
            };
            let Some(nal) = input.get(pos..pos + len as usize) else {
                break;
            };
            au.push(nal);
            pos += len as usize;
        }
        units.push(au);
    }
    units
}

fn read_u32(input: &[u8], pos: &mut usize) -> Option<u32> {
    let b = input.get(*pos..*pos + 4)?;
    *pos += 4;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Encodes access units in the input format.
pub fn encode(units: &[Vec<&[u8]>]) -> Vec<u8> {
    let mut out = (units.len() as u32).to_le_bytes().to_vec();
    for au in units {
        out.extend_from_slice(&(au.len() as u32).to_le_bytes());
        for nal in au {
            out.extend_from_slice(&(nal.len() as u32).to_le_bytes());
            out.extend_from_slice(nal);
        }
    }
    out
}

/// Decodes one access unit with a fresh rust_h264 decoder, as render.rs does for its fallback.
pub fn decode_rust_h264(au: &[&[u8]]) -> bool {
    use rust_h264::nal::{NalUnit, NalUnitType};
    let mut d = rust_h264::decoder::Decoder::new();
    for nal in au {
        let Some((&header, payload)) = nal.split_first() else {
            continue;
        };
        let nal_unit_type = match header & 0x1f {
            1 => NalUnitType::Slice,
            5 => NalUnitType::SliceIdr,
            7 => NalUnitType::Sps,
            8 => NalUnitType::Pps,
            _ => continue,
        };
        let mut rbsp = Vec::with_capacity(payload.len());
        let mut zeros = 0;
        for &b in payload {
            if zeros >= 2 && b == 3 {
                zeros = 0;
                continue;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            rbsp.push(b);
        }
        let unit = NalUnit {
            nal_ref_idc: (header >> 5) & 3,
            nal_unit_type,
            rbsp: rbsp.into(),
        };
        match d.decode_nal(&unit) {
            Ok(Some(_)) => return true,
            Ok(None) => {}
            Err(_) => return false,
        }
    }
    d.flush().is_some()
}

thread_local! {
    static PICTURE: RefCell<Option<livesnap_guest::render::Yuv420>> = const { RefCell::new(None) };
}

/// Stage 1 of the render split: H.264 decode and crop of the input (record, access unit).
/// Returns the width, or 0 on failure.
#[expect(
    unsafe_code,
    reason = "an exported symbol needs no_mangle; no unsafe operation"
)]
#[unsafe(no_mangle)]
pub extern "C" fn stage_decode() -> u32 {
    let decoded = INPUT.with_borrow(|input| {
        let mut pos = 0;
        let mut field = || {
            let len = read_u32(input, &mut pos)? as usize;
            let out = input.get(pos..pos + len)?;
            pos += len;
            Some(out)
        };
        let (config, au) = (field()?, field()?);
        livesnap_guest::render::decode(config, au).ok()
    });
    let width = decoded.as_ref().map_or(0, |p| p.width);
    PICTURE.set(decoded);
    width
}

/// Stage 2: shrink to `shortside` (0: keep the size). Returns the new width, 0 on failure.
#[expect(
    unsafe_code,
    reason = "an exported symbol needs no_mangle; no unsafe operation"
)]
#[unsafe(no_mangle)]
pub extern "C" fn stage_scale(shortside: u32) -> u32 {
    let Some(picture) = PICTURE.take() else {
        return 0;
    };
    let (w, h) = livesnap_guest::scale::target_size(
        picture.width,
        picture.height,
        (shortside > 0).then_some(shortside),
    );
    let scaled = livesnap_guest::scale::scale(picture, w, h).ok();
    PICTURE.set(scaled);
    w
}

/// Stage 3: colour into JFIF (BT.601 full range). Returns 1, or 0 on failure.
#[expect(
    unsafe_code,
    reason = "an exported symbol needs no_mangle; no unsafe operation"
)]
#[unsafe(no_mangle)]
pub extern "C" fn stage_colour() -> u32 {
    PICTURE.with_borrow_mut(|p| {
        p.as_mut()
            .is_some_and(|p| livesnap_guest::color::to_jfif(p).is_ok())
            .into()
    })
}

/// Stage 4: baseline JPEG at `quality`. Returns the JPEG's size, 0 on failure.
#[expect(
    unsafe_code,
    reason = "an exported symbol needs no_mangle; no unsafe operation"
)]
#[unsafe(no_mangle)]
pub extern "C" fn stage_encode(quality: u32) -> u32 {
    PICTURE.with_borrow(|p| {
        p.as_ref()
            .and_then(|p| livesnap_guest::encode::encode_jfif(p, quality.min(100) as u8).ok())
            .map_or(0, |jpeg| jpeg.len() as u32)
    })
}

/// The render split's input: record and access unit, each with a `u32` LE length.
pub fn encode_render_input(config: &[u8], access_unit: &[u8]) -> Vec<u8> {
    let mut out = (config.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(config);
    out.extend_from_slice(&(access_unit.len() as u32).to_le_bytes());
    out.extend_from_slice(access_unit);
    out
}
