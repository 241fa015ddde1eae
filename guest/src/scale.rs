//! Downscaling: the `shortside` size rule (DESIGN.md, "Picture") and an area (box) filter that
//! shrinks each 4:2:0 plane to it.
//!
//! Area averaging is the right filter for a pure downscale to a thumbnail: every source sample
//! contributes exactly its covered fraction of each output sample (fractional coverage at the
//! edges), so there is no aliasing from skipped samples (unlike nearest or unfiltered bilinear)
//! and no ringing (unlike Lanczos), at a few taps per sample. It is what FFmpeg's `area` scaler
//! does. Chroma is filtered the same way at its own resolution; the output chroma plane is
//! `ceil(width / 2) × ceil(height / 2)`, like the input's.
//!
//! The filter is separable and streams one output row at a time: a vertical pass accumulates the
//! covered source rows into a row of 16-bit intermediates (contiguous, so it vectorises), then a
//! horizontal pass reduces that row. Weights are Q14 and each output's weights sum to exactly
//! 1.0, so flat areas keep their exact value. Integer only: native and wasm give identical bytes.

use crate::error::Failure;
use crate::render::Yuv420;

/// Fractional bits of a filter weight; one output's weights sum to exactly `1 << WEIGHT_BITS`.
const WEIGHT_BITS: u32 = 14;
/// Bits dropped after the vertical pass: a sum of at most `255 << 14` becomes at most
/// `255 << 8`, which fits the u16 intermediate with 8 bits of extra precision.
const MID_SHIFT: u32 = 6;
/// Bits dropped after the horizontal pass: back to 8-bit samples.
const OUT_SHIFT: u32 = 2 * WEIGHT_BITS - MID_SHIFT;

/// The output size for a `width × height` picture under DESIGN's `shortside` rule: when the
/// short side is larger than `shortside`, scale down so the short side equals it, keeping the
/// aspect ratio with the long side rounded to the nearest pixel (halves round up); never upscale.
///
/// `None` and `Some(0)` mean "keep the size": 0 is not a usable size, and a render must not fail
/// for a setting the host should have refused when it read its configuration.
///
/// ```
/// use livesnap_guest::scale::target_size;
/// assert_eq!(target_size(1920, 1080, Some(360)), (640, 360));
/// assert_eq!(target_size(1080, 1920, Some(360)), (360, 640));
/// assert_eq!(target_size(640, 360, Some(720)), (640, 360));
/// ```
pub fn target_size(width: u32, height: u32, shortside: Option<u32>) -> (u32, u32) {
    let short = width.min(height);
    let target = match shortside {
        Some(target) if target > 0 && target < short => target,
        _ => return (width, height),
    };
    let long = u64::from(width.max(height));
    let (short, target) = (u64::from(short), u64::from(target));
    // round(long * target / short), in integers; target < short keeps it below `long`.
    let scaled_long = (2 * long * target + short) / (2 * short);
    let scaled_long = u32::try_from(scaled_long).unwrap_or(u32::MAX);
    let target = u32::try_from(target).unwrap_or(u32::MAX);
    if width >= height {
        (scaled_long, target)
    } else {
        (target, scaled_long)
    }
}

/// Scales every plane of `picture` to `width × height` luma samples with the area filter.
/// Returns the picture unchanged when the size already matches.
///
/// Fails when asked to grow a side (callers use [`target_size`], which never does), for a zero
/// size, or when the picture's planes do not match its size.
pub fn scale(picture: Yuv420, width: u32, height: u32) -> Result<Yuv420, Failure> {
    picture.check_planes()?;
    if (width, height) == (picture.width, picture.height) {
        return Ok(picture);
    }
    if width == 0 || height == 0 || width > picture.width || height > picture.height {
        return Err(Failure::decode(format!(
            "cannot scale {}x{} to {width}x{height}: only shrinking is supported",
            picture.width, picture.height
        )));
    }
    let (cw, ch) = (picture.chroma_width(), picture.chroma_height());
    let (dcw, dch) = (width.div_ceil(2), height.div_ceil(2));
    Ok(Yuv420 {
        y: scale_plane(&picture.y, picture.width, picture.height, width, height),
        u: scale_plane(&picture.u, cw, ch, dcw, dch),
        v: scale_plane(&picture.v, cw, ch, dcw, dch),
        width,
        height,
        ..picture
    })
}

/// Area-filter weights for shrinking `src` samples to `dst` along one axis.
struct Taps {
    /// Per output sample: the first covered source sample and how many follow.
    spans: Vec<(usize, usize)>,
    /// The weights of every span, concatenated; each span's weights sum to `1 << WEIGHT_BITS`.
    weights: Vec<u32>,
}

impl Taps {
    /// Output sample `i` covers `[i·src/dst, (i+1)·src/dst)` in source samples. Measured in
    /// units of `1/dst` source sample that is `[i·src, (i+1)·src)`, and source sample `j` is
    /// `[j·dst, (j+1)·dst)`, so every overlap is an exact integer. Requires `0 < dst <= src`.
    fn new(src: u32, dst: u32) -> Taps {
        let (src, dst) = (u64::from(src), u64::from(dst));
        let one = 1u64 << WEIGHT_BITS;
        let mut spans = Vec::with_capacity(dst as usize);
        // At most ceil(src/dst) + 1 source samples touch one output sample.
        let mut weights = Vec::with_capacity((dst * (src / dst + 2)) as usize);
        for i in 0..dst {
            let (lo, hi) = (i * src, (i + 1) * src);
            let (first, last) = (lo / dst, (hi - 1) / dst);
            let start = weights.len();
            for j in first..=last {
                let overlap = hi.min((j + 1) * dst) - lo.max(j * dst);
                weights.push(((overlap * one + src / 2) / src) as u32);
            }
            // Rounding each weight can leave the sum a few units off 1.0: give the difference to
            // the largest weight, so a flat area stays exactly flat.
            let span = &mut weights[start..];
            let sum: u64 = span.iter().map(|&w| u64::from(w)).sum();
            if let Some(largest) = span.iter_mut().max_by_key(|w| **w) {
                *largest = (i64::from(*largest) + one as i64 - sum as i64) as u32;
            }
            spans.push((first as usize, (last - first + 1) as usize));
        }
        Taps { spans, weights }
    }

    /// Each output sample's first source sample and weights.
    fn iter(&self) -> impl Iterator<Item = (usize, &[u32])> {
        let mut rest = self.weights.as_slice();
        self.spans.iter().map(move |&(first, count)| {
            let (these, after) = rest.split_at(count.min(rest.len()));
            rest = after;
            (first, these)
        })
    }
}

/// Shrinks a `sw × sh` plane to `dw × dh`. Requires `0 < dw <= sw`, `0 < dh <= sh` and
/// `src.len() == sw·sh` (checked by the caller); missing samples read as 0 rather than panic.
fn scale_plane(src: &[u8], sw: u32, sh: u32, dw: u32, dh: u32) -> Vec<u8> {
    let (sw_px, dw_px) = (sw as usize, dw as usize);
    let columns = Taps::new(sw, dw);
    let rows = Taps::new(sh, dh);
    let mut out = Vec::with_capacity(dw_px * dh as usize);
    let mut acc = vec![0u32; sw_px];
    let mut mid = vec![0u16; sw_px];
    for (first_row, row_weights) in rows.iter() {
        acc.fill(0);
        for (k, &w) in row_weights.iter().enumerate() {
            let start = (first_row + k) * sw_px;
            let Some(line) = src.get(start..start + sw_px) else {
                break;
            };
            for (a, &p) in acc.iter_mut().zip(line) {
                *a += w * u32::from(p);
            }
        }
        for (m, &a) in mid.iter_mut().zip(&acc) {
            *m = ((a + (1 << (MID_SHIFT - 1))) >> MID_SHIFT) as u16;
        }
        for (first_col, col_weights) in columns.iter() {
            let taps = mid.get(first_col..).unwrap_or(&[]);
            let sum: u32 = col_weights
                .iter()
                .zip(taps)
                .map(|(&w, &m)| w * u32::from(m))
                .sum();
            out.push(((sum + (1 << (OUT_SHIFT - 1))) >> OUT_SHIFT) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::color::Matrix;
    use proptest::prelude::*;

    fn picture(width: u32, height: u32, y: Vec<u8>, u: Vec<u8>, v: Vec<u8>) -> Yuv420 {
        Yuv420 {
            width,
            height,
            y,
            u,
            v,
            full_range: false,
            matrix: Matrix::Bt601,
        }
    }

    #[test]
    fn shortside_scales_landscape_and_portrait_by_their_short_side() {
        assert_eq!(target_size(1920, 1080, Some(360)), (640, 360));
        assert_eq!(target_size(1080, 1920, Some(360)), (360, 640));
        assert_eq!(target_size(1280, 720, Some(480)), (853, 480));
        assert_eq!(target_size(1000, 1000, Some(300)), (300, 300));
    }

    #[test]
    fn shortside_never_upscales() {
        assert_eq!(target_size(640, 360, Some(720)), (640, 360));
        assert_eq!(target_size(640, 360, Some(360)), (640, 360));
        assert_eq!(target_size(64, 48, None), (64, 48));
    }

    #[test]
    fn shortside_zero_keeps_the_size() {
        assert_eq!(target_size(1920, 1080, Some(0)), (1920, 1080));
    }

    #[test]
    fn shortside_rounds_the_long_side_to_nearest_with_halves_up() {
        // 70x38 -> short 25: 70*25/38 = 46.05 -> 46
        assert_eq!(target_size(70, 38, Some(25)), (46, 25));
        // 1366x768 -> 360: 640.3 -> 640
        assert_eq!(target_size(1366, 768, Some(360)), (640, 360));
        // 3x2 -> 1: 1.5 -> 2 (half rounds up)
        assert_eq!(target_size(3, 2, Some(1)), (2, 1));
        // 2x5 -> 1: 2.5 -> 3 (portrait)
        assert_eq!(target_size(2, 5, Some(1)), (1, 3));
        // extreme aspect: long side stays sane
        assert_eq!(target_size(8192, 16, Some(1)), (512, 1));
    }

    #[test]
    fn filter_weights_sum_to_one_for_every_output_sample() {
        for (src, dst) in [
            (1920, 640),
            (1080, 360),
            (7, 3),
            (100, 99),
            (5, 1),
            (8192, 1),
        ] {
            let taps = Taps::new(src, dst);
            assert_eq!(taps.spans.len(), dst as usize);
            for (first, weights) in taps.iter() {
                assert_eq!(
                    weights.iter().sum::<u32>(),
                    1 << WEIGHT_BITS,
                    "{src}->{dst}"
                );
                assert!(first + weights.len() <= src as usize);
            }
        }
    }

    #[test]
    fn flat_colour_stays_exactly_that_colour() {
        for (sw, sh, dw, dh) in [
            (70u32, 38u32, 46u32, 25u32),
            (64, 48, 3, 2),
            (101, 37, 50, 1),
            (9, 9, 8, 8),
        ] {
            let (cw, ch) = (sw.div_ceil(2), sh.div_ceil(2));
            let c = (cw * ch) as usize;
            let p = picture(
                sw,
                sh,
                vec![77; (sw * sh) as usize],
                vec![3; c],
                vec![250; c],
            );
            let s = scale(p, dw, dh).unwrap();
            assert_eq!((s.width, s.height), (dw, dh));
            assert_eq!(s.y.len(), (dw * dh) as usize);
            assert_eq!(s.u.len(), (dw.div_ceil(2) * dh.div_ceil(2)) as usize);
            assert!(s.y.iter().all(|&v| v == 77));
            assert!(s.u.iter().all(|&v| v == 3));
            assert!(s.v.iter().all(|&v| v == 250));
        }
    }

    #[test]
    fn integer_ratio_averages_whole_blocks() {
        // 4x2 -> 2x1: each output is the mean of a 2x2 block (rounded).
        let p = picture(
            4,
            2,
            vec![0, 10, 100, 200, 20, 30, 50, 51],
            vec![0; 2],
            vec![0; 2],
        );
        let s = scale(p, 2, 1).unwrap();
        assert_eq!(s.y, vec![15, 100]);
    }

    #[test]
    fn fractional_coverage_weights_the_shared_sample() {
        // 3 -> 2: outputs cover [0, 1.5) and [1.5, 3): sample 1 counts half to each.
        let p = picture(3, 1, vec![0, 90, 180], vec![0; 2], vec![0; 2]);
        let s = scale(p, 2, 1).unwrap();
        assert_eq!(s.y, vec![30, 150]);
    }

    #[test]
    fn same_size_is_returned_as_is() {
        let p = picture(2, 2, vec![1, 2, 3, 4], vec![5], vec![6]);
        let s = scale(p.clone(), 2, 2).unwrap();
        assert_eq!(s, p);
    }

    #[test]
    fn growing_or_zero_size_is_refused() {
        let p = picture(2, 2, vec![1, 2, 3, 4], vec![5], vec![6]);
        assert!(scale(p.clone(), 3, 2).is_err());
        assert!(scale(p, 0, 1).is_err());
    }

    proptest! {
        #[test]
        fn scaled_planes_have_consistent_sizes_and_stay_in_range(
            sw in 1u32..40,
            sh in 1u32..40,
            seed in any::<u8>(),
            fw in 0.0f64..1.0,
            fh in 0.0f64..1.0,
        ) {
            let dw = ((f64::from(sw) * fw) as u32).max(1);
            let dh = ((f64::from(sh) * fh) as u32).max(1);
            let (cw, ch) = (sw.div_ceil(2), sh.div_ceil(2));
            let y: Vec<u8> = (0..sw * sh).map(|i| (i as u8).wrapping_mul(seed)).collect();
            let min = *y.iter().min().unwrap();
            let max = *y.iter().max().unwrap();
            let c = vec![seed; (cw * ch) as usize];
            let s = scale(picture(sw, sh, y, c.clone(), c), dw, dh).unwrap();
            prop_assert_eq!(s.y.len(), (dw * dh) as usize);
            prop_assert_eq!(s.u.len(), (dw.div_ceil(2) * dh.div_ceil(2)) as usize);
            prop_assert!(s.y.iter().all(|&v| v >= min && v <= max));
            prop_assert!(s.u.iter().all(|&v| v == seed));
        }
    }
}
