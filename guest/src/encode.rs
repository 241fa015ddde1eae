//! JPEG encoding: a picture already in JFIF YCbCr (see [`crate::color::to_jfif`]) becomes a
//! baseline, 4:2:0, JFIF file, coded straight from its planes by livesnap's own encoder
//! ([`crate::jpeg`]): no RGB, no full-resolution chroma, no copy.

use crate::color::Matrix;
use crate::error::Failure;
use crate::jpeg::{self, Planes};
use crate::render::Yuv420;

/// Encodes `picture` (JFIF YCbCr: BT.601 matrix, full range) as a baseline 4:2:0 JPEG at
/// `quality` (clamped to 1..=100, the IJG scale).
///
/// Fails when the picture is not in JFIF colour, a side is over 65535 (JPEG's limit), or its planes
/// do not match its size.
pub fn encode_jfif(picture: &Yuv420, quality: u8) -> Result<Vec<u8>, Failure> {
    picture.check_planes()?;
    if !picture.full_range || picture.matrix != Matrix::Bt601 {
        return Err(Failure::decode(
            "jpeg encoding needs jfif colour (bt.601 full range); convert first",
        ));
    }
    let too_big = || {
        Failure::limit(format!(
            "picture {}x{} exceeds jpeg's 65535 px a side",
            picture.width, picture.height
        ))
    };
    let planes = Planes {
        width: u16::try_from(picture.width).map_err(|_| too_big())?,
        height: u16::try_from(picture.height).map_err(|_| too_big())?,
        y: &picture.y,
        cb: &picture.u,
        cr: &picture.v,
    };
    jpeg::encode_420(planes, quality.clamp(1, 100))
        .map_err(|e| Failure::decode(format!("jpeg encoding failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use zune_jpeg::JpegDecoder;
    use zune_jpeg::zune_core::bytestream::ZCursor;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;

    fn jfif(width: u32, height: u32, yuv: (u8, u8, u8)) -> Yuv420 {
        let c = (width.div_ceil(2) * height.div_ceil(2)) as usize;
        Yuv420 {
            width,
            height,
            y: vec![yuv.0; (width * height) as usize],
            u: vec![yuv.1; c],
            v: vec![yuv.2; c],
            full_range: true,
            matrix: Matrix::Bt601,
        }
    }

    fn decode(jpeg: &[u8], colorspace: ColorSpace) -> (usize, usize, Vec<u8>) {
        let options = DecoderOptions::default().jpeg_set_out_colorspace(colorspace);
        let mut decoder = JpegDecoder::new_with_options(ZCursor::new(jpeg), options);
        let pixels = decoder.decode().unwrap();
        let info = decoder.info().unwrap();
        (usize::from(info.width), usize::from(info.height), pixels)
    }

    /// The SOF0 segment's component sampling factors (baseline frame header, T.81 §B.2.2).
    fn sampling_factors(jpeg: &[u8]) -> Vec<u8> {
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        let components = usize::from(jpeg[sof + 9]);
        (0..components)
            .map(|i| jpeg[sof + 10 + 3 * i + 1])
            .collect()
    }

    #[test]
    fn output_is_baseline_420_jfif_of_the_right_size() {
        for quality in [1, 50, 90, 100] {
            let jpeg = encode_jfif(&jfif(33, 17, (200, 90, 160)), quality).unwrap();
            assert_eq!(jpeg[..4], [0xFF, 0xD8, 0xFF, 0xE0], "SOI then APP0 (JFIF)");
            assert_eq!(jpeg[6..11], *b"JFIF\0");
            assert_eq!(sampling_factors(&jpeg), [0x22, 0x11, 0x11], "4:2:0");
            let (w, h, _) = decode(&jpeg, ColorSpace::RGB);
            assert_eq!((w, h), (33, 17));
        }
    }

    #[test]
    fn flat_picture_round_trips_its_ycbcr() {
        let jpeg = encode_jfif(&jfif(40, 24, (180, 60, 200)), 90).unwrap();
        let (_, _, ycbcr) = decode(&jpeg, ColorSpace::YCbCr);
        for px in ycbcr.chunks(3) {
            assert!(
                px[0].abs_diff(180) <= 1 && px[1].abs_diff(60) <= 1 && px[2].abs_diff(200) <= 1
            );
        }
    }

    #[test]
    fn each_chroma_sample_lands_on_its_own_2x2_block() {
        // Left half red-ish, right half blue-ish chroma, split on a 16-px (MCU) boundary so the
        // DCT cannot blur the two sides into each other much.
        let mut p = jfif(32, 16, (128, 128, 128));
        for (i, (u, v)) in p.u.iter_mut().zip(p.v.iter_mut()).enumerate() {
            let left = i % 16 < 8;
            (*u, *v) = if left { (90, 200) } else { (200, 90) };
        }
        let jpeg = encode_jfif(&p, 95).unwrap();
        let (_, _, ycbcr) = decode(&jpeg, ColorSpace::YCbCr);
        let at = |x: usize, y: usize| &ycbcr[(y * 32 + x) * 3..][..3];
        assert!(at(4, 8)[2] > 190 && at(4, 8)[1] < 100, "{:?}", at(4, 8));
        assert!(at(27, 8)[1] > 190 && at(27, 8)[2] < 100, "{:?}", at(27, 8));
    }

    #[test]
    fn non_jfif_colour_is_refused() {
        let mut p = jfif(8, 8, (1, 2, 3));
        p.full_range = false;
        assert!(encode_jfif(&p, 80).is_err());
    }

    #[test]
    fn short_planes_are_an_error_not_a_panic() {
        let mut p = jfif(8, 8, (1, 2, 3));
        p.y.truncate(10);
        assert!(encode_jfif(&p, 80).is_err());
    }
}
