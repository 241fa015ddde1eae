//! One render for everything a capture needs (WIT `render.render-shot`): the JPEG, the blank and
//! frozen analysis of the decoded picture, and the storyboard tile scaled from the same picture,
//! for either decoded codec. The picture is byte-for-byte what `render` makes.

use crate::analysis::{self, Analysis};
use crate::error::Failure;
use crate::flv::{ColorConfig, VideoCodec};
use crate::render::{self, Picture, Yuv420};
use crate::storyboard::{self, PlacedTile};
use crate::{color, encode, render_hevc, scale};

/// What [`render_shot`] makes.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The JPEG.
    pub picture: Picture,
    /// Blank test and signature of the decoded picture.
    pub analysis: Analysis,
    /// The storyboard tile in JFIF colour, when asked for and the picture is at least 2 × 2.
    pub tile: Option<Yuv420>,
}

/// Decode `access_unit` of `codec` with `config` into an 8-bit SDR 4:2:0 picture (HEVC 10-bit
/// rounded, PQ/HLG tone-mapped): the one decode path of every render.
///
/// `color`, the stream's out-of-band colour description (Enhanced RTMP `colorInfo`), fills in
/// what the SPS VUI leaves unspecified: matrix for H.264; primaries, transfer and matrix for
/// HEVC (so a PQ or HLG stream whose VUI is silent is still tone-mapped).
pub fn decode_8bit(
    codec: VideoCodec,
    config: &[u8],
    access_unit: &[u8],
    color: Option<&ColorConfig>,
) -> Result<Yuv420, Failure> {
    match codec {
        VideoCodec::Avc => render::decode_with_color(config, access_unit, color),
        VideoCodec::Hevc => Ok(render_hevc::decode(config, access_unit)?
            .with_stream_color(color)
            .to_yuv420()),
        other => Err(Failure::unsupported(format!(
            "{} video cannot be rendered",
            other.name()
        ))),
    }
}

/// Decode (see [`decode_8bit`]), scale by the `shortside` rule, convert to JFIF colour and encode
/// a baseline 4:2:0 JPEG at `jpeg_quality`: the WIT `render` of either codec.
pub fn render(
    codec: VideoCodec,
    config: &[u8],
    access_unit: &[u8],
    color: Option<&ColorConfig>,
    shortside: Option<u32>,
    jpeg_quality: u8,
) -> Result<Picture, Failure> {
    let picture = scaled_jfif(decode_8bit(codec, config, access_unit, color)?, shortside)?;
    Ok(Picture {
        jpeg: encode::encode_jfif(&picture, jpeg_quality)?,
        width: picture.width,
        height: picture.height,
    })
}

/// A decoded picture shrunk by the `shortside` rule and converted to JFIF colour: what every
/// render encodes.
fn scaled_jfif(decoded: Yuv420, shortside: Option<u32>) -> Result<Yuv420, Failure> {
    let (width, height) = scale::target_size(decoded.width, decoded.height, shortside);
    let mut picture = scale::scale(decoded, width, height)?;
    color::to_jfif(&mut picture)?;
    Ok(picture)
}

/// Render `access_unit` as `render` does (scale to `shortside`, JFIF colour, JPEG at
/// `jpeg_quality`), and also analyse it and, with `tile_width`, scale a storyboard tile.
pub fn render_shot(
    codec: VideoCodec,
    config: &[u8],
    access_unit: &[u8],
    color: Option<&ColorConfig>,
    shortside: Option<u32>,
    jpeg_quality: u8,
    tile_width: Option<u32>,
) -> Result<Rendered, Failure> {
    let decoded = decode_8bit(codec, config, access_unit, color)?;
    let analysis = analysis::analyse(&decoded);
    let picture = scaled_jfif(decoded, shortside)?;
    let (width, height) = (picture.width, picture.height);
    let tile = match tile_width {
        Some(tw) if width >= 2 && height >= 2 => {
            let (tw, th) = storyboard::tile_size(width, height, tw);
            (tw <= width && th <= height)
                .then(|| scale::scale(picture.clone(), tw, th))
                .transpose()?
        }
        _ => None,
    };
    let jpeg = encode::encode_jfif(&picture, jpeg_quality)?;
    Ok(Rendered {
        picture: Picture {
            jpeg,
            width,
            height,
        },
        analysis,
        tile,
    })
}

/// A sprite sheet of `width × height` with `tiles` on black, as JPEG at `jpeg_quality`.
pub fn compose_sheet(
    width: u32,
    height: u32,
    tiles: &[PlacedTile],
    jpeg_quality: u8,
) -> Result<Picture, Failure> {
    let sheet = storyboard::compose(width, height, tiles)?;
    let jpeg = encode::encode_jfif(&sheet, jpeg_quality)?;
    Ok(Picture {
        jpeg,
        width,
        height,
    })
}
