//! Colour: maps a decoded picture's YCbCr (limited or full range, BT.601 or BT.709 matrix, as the
//! SPS VUI says) into JFIF YCbCr (BT.601 matrix, full range), the only colour space a baseline
//! JFIF decoder assumes (JFIF 1.02 §"Conversion to and from RGB").
//!
//! Both source and target are linear functions of the same R'G'B' (ITU-T H.264 §E.2.1, equations
//! E-1..E-3 and E-5..E-28), so the whole conversion is one fixed 3×3 matrix plus offsets on the
//! YCbCr triplet, with no trip through RGB:
//!
//! - Chroma never depends on luma (a grey pixel has zero chroma in every matrix), so the new Cb/Cr
//!   come from the old Cb/Cr alone and stay at chroma resolution (4:2:0 in, 4:2:0 out).
//! - New luma = scaled old luma + a term from the co-sited chroma sample (zero for BT.601).
//!
//! Clamping happens in YCbCr, not RGB. For every colour inside the RGB cube the result is the same
//! as going through RGB, since JFIF decoders clamp RGB themselves; only out-of-gamut colours (which
//! limited-range video can carry) can differ slightly. Going through clamped RGB instead would need
//! chroma at full resolution and a second chroma downsampling, roughly tripling the work.
//!
//! All per-pixel arithmetic is integer (coefficients in Q16, derived once per picture from the
//! matrix constants), so native and wasm builds produce identical bytes.

use crate::error::Failure;
use crate::render::Yuv420;

/// The YCbCr ↔ R'G'B' matrix of a picture (H.264 Table E-5, `matrix_coefficients`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matrix {
    /// ITU-R BT.601 (`matrix_coefficients` 5 or 6, and the default): Kr = 0.299, Kb = 0.114.
    Bt601,
    /// ITU-R BT.709 (`matrix_coefficients` 1): Kr = 0.2126, Kb = 0.0722.
    Bt709,
    /// ITU-R BT.2020 non-constant luminance (`matrix_coefficients` 9; 10, constant luminance,
    /// is approximated by it): Kr = 0.2627, Kb = 0.0593.
    Bt2020,
}

impl Matrix {
    /// The matrix for a VUI `matrix_coefficients` value. 1 is BT.709; everything else, including
    /// 2 (unspecified, also what an SPS without VUI colour description implies), is treated as
    /// BT.601, as FFmpeg's swscale does for matrices it does not know.
    pub fn from_vui(matrix_coefficients: u8) -> Matrix {
        match matrix_coefficients {
            1 => Matrix::Bt709,
            9 | 10 => Matrix::Bt2020,
            _ => Matrix::Bt601,
        }
    }

    /// (Kr, Kb) of H.264 Table E-5.
    fn kr_kb(self) -> (f64, f64) {
        match self {
            Matrix::Bt601 => (0.299, 0.114),
            Matrix::Bt709 => (0.2126, 0.0722),
            Matrix::Bt2020 => (0.2627, 0.0593),
        }
    }
}

/// Fractional bits of the fixed-point coefficients.
const Q: u32 = 16;
/// One half in Q16, for round-to-nearest before the final shift.
const HALF: i32 = 1 << (Q - 1);

/// A source → JFIF mapping in Q16:
/// - `Y' = ly·(Y − y0) + lb·(Cb − 128) + lr·(Cr − 128)`
/// - `Cb' − 128 = bb·(Cb − 128) + br·(Cr − 128)`
/// - `Cr' − 128 = rb·(Cb − 128) + rr·(Cr − 128)`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Coefficients {
    y0: i32,
    ly: i32,
    lb: i32,
    lr: i32,
    bb: i32,
    br: i32,
    rb: i32,
    rr: i32,
}

impl Coefficients {
    /// The mapping from (`matrix`, `full_range`) into JFIF. Computed in f64 once per picture
    /// (IEEE-754 basic operations and `round` are exact and identical on every target).
    fn new(matrix: Matrix, full_range: bool) -> Coefficients {
        // H.264 §E.2.1 (E-5..E-10): limited range puts E'Y in 16..=235 (219 steps) and E'Pb/E'Pr
        // in 16..=240 (224 steps, centred on 128); full range uses 255 steps for all three.
        let (y0, y_steps, c_steps) = if full_range {
            (0, 255.0, 255.0)
        } else {
            (16, 219.0, 224.0)
        };
        let (kr, kb) = matrix.kr_kb();
        let kg = 1.0 - kr - kb;
        // Normalised source (y, pb, pr) -> R'G'B' (E-19..E-21 solved for R', G', B').
        let r_pr = 2.0 * (1.0 - kr);
        let b_pb = 2.0 * (1.0 - kb);
        let g_pb = -kb * b_pb / kg;
        let g_pr = -kr * r_pr / kg;
        // R'G'B' -> BT.601 (y, pb, pr), applied to the pb and pr columns; the y column is (1, 0, 0)
        // for any pair of matrices because grey maps to grey.
        let (kr6, kb6) = Matrix::Bt601.kr_kb();
        let kg6 = 1.0 - kr6 - kb6;
        let y_of = |r: f64, g: f64, b: f64| kr6 * r + kg6 * g + kb6 * b;
        let (y_pb, y_pr) = (y_of(0.0, g_pb, b_pb), y_of(r_pr, g_pr, 0.0));
        let pb_pb = (b_pb - y_pb) / (2.0 * (1.0 - kb6));
        let pb_pr = (0.0 - y_pr) / (2.0 * (1.0 - kb6));
        let pr_pb = (0.0 - y_pb) / (2.0 * (1.0 - kr6));
        let pr_pr = (r_pr - y_pr) / (2.0 * (1.0 - kr6));
        // JFIF is full range: 255 steps for every component.
        let q = |x: f64| (x * f64::from(1u32 << Q)).round() as i32;
        Coefficients {
            y0,
            ly: q(255.0 / y_steps),
            lb: q(255.0 * y_pb / c_steps),
            lr: q(255.0 * y_pr / c_steps),
            bb: q(255.0 * pb_pb / c_steps),
            br: q(255.0 * pb_pr / c_steps),
            rb: q(255.0 * pr_pb / c_steps),
            rr: q(255.0 * pr_pr / c_steps),
        }
    }

    /// The JFIF luma (Q16, before rounding) for each source luma value.
    fn luma_table(&self) -> [i32; 256] {
        let mut table = [0; 256];
        for (v, entry) in (0i32..).zip(table.iter_mut()) {
            *entry = self.ly * (v - self.y0) + HALF;
        }
        table
    }
}

/// Rounds a Q16 value that already carries its +½ and clamps it to a sample.
#[inline(always)]
fn to_sample(q16: i32) -> u8 {
    (q16 >> Q).clamp(0, 255) as u8
}

/// Converts `picture` in place from its own colour space (`matrix`, `full_range`) into JFIF YCbCr
/// (BT.601, full range) and marks it so; a picture already in JFIF is left untouched.
///
/// Fails only when the planes do not have the sizes [`Yuv420`] promises.
pub fn to_jfif(picture: &mut Yuv420) -> Result<(), Failure> {
    picture.check_planes()?;
    if picture.full_range && picture.matrix == Matrix::Bt601 {
        return Ok(());
    }
    let c = Coefficients::new(picture.matrix, picture.full_range);
    let luma = c.luma_table();
    let width = picture.width as usize;
    let chroma_width = picture.chroma_width() as usize;
    // Chroma row `i` sits on luma rows 2i and 2i+1 (the last chroma row of an odd-height picture
    // covers one luma row only); chunks_mut yields exactly that pairing.
    let luma_rows = picture.y.chunks_mut(width * 2);
    let cb_rows = picture.u.chunks_mut(chroma_width);
    let cr_rows = picture.v.chunks_mut(chroma_width);
    // Luma offsets contributed by each chroma sample of the current chroma row (BT.709 only).
    let mut offsets = vec![0i32; chroma_width];
    for ((y_pair, cb_row), cr_row) in luma_rows.zip(cb_rows).zip(cr_rows) {
        for ((cb, cr), offset) in cb_row.iter_mut().zip(cr_row.iter_mut()).zip(&mut offsets) {
            let b = i32::from(*cb) - 128;
            let r = i32::from(*cr) - 128;
            *offset = c.lb * b + c.lr * r;
            *cb = to_sample((128 << Q) + c.bb * b + c.br * r + HALF);
            *cr = to_sample((128 << Q) + c.rb * b + c.rr * r + HALF);
        }
        let with_chroma = c.lb != 0 || c.lr != 0;
        for y_row in y_pair.chunks_mut(width) {
            // In wasm 16 samples at a time; the rest (or everything natively) by the table.
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            let done = simd::luma(y_row, with_chroma.then_some(&offsets[..]), &c);
            #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
            let done = 0;
            if with_chroma {
                for (x, y) in y_row.iter_mut().enumerate().skip(done) {
                    let offset = offsets.get(x / 2).copied().unwrap_or(0);
                    *y = to_sample(luma[usize::from(*y)] + offset);
                }
            } else {
                for y in y_row.iter_mut().skip(done) {
                    *y = to_sample(luma[usize::from(*y)]);
                }
            }
        }
    }
    picture.full_range = true;
    picture.matrix = Matrix::Bt601;
    Ok(())
}

/// The luma step of [`to_jfif`] in wasm SIMD128: the same Q16 arithmetic as the table and
/// [`to_sample`] (the table holds `ly · (v − y0) + ½`), four i32 lanes at a time, the clamp by
/// saturating narrowing.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use super::{Coefficients, HALF, Q};
    use core::arch::wasm32::*;

    /// Converts the leading multiple of 16 samples of `row` (with the luma offset of each
    /// chroma sample, `offsets[x / 2]`, when given) and returns how many it converted.
    pub(super) fn luma(row: &mut [u8], offsets: Option<&[i32]>, c: &Coefficients) -> usize {
        let (y0, ly, half) = (i32x4_splat(c.y0), i32x4_splat(c.ly), i32x4_splat(HALF));
        let mut done = 0;
        for (k, chunk) in row.chunks_exact_mut(16).enumerate() {
            let Some(bytes) = chunk.first_chunk_mut::<16>() else {
                break;
            };
            let (lo, hi) = bytes.split_at(8);
            let v = u64x2(
                u64::from_le_bytes(lo.try_into().unwrap_or_default()),
                u64::from_le_bytes(hi.try_into().unwrap_or_default()),
            );
            let (w0, w1) = (u16x8_extend_low_u8x16(v), u16x8_extend_high_u8x16(v));
            let lanes = [
                u32x4_extend_low_u16x8(w0),
                u32x4_extend_high_u16x8(w0),
                u32x4_extend_low_u16x8(w1),
                u32x4_extend_high_u16x8(w1),
            ];
            let mut q = lanes.map(|l| i32x4_add(i32x4_mul(i32x4_sub(l, y0), ly), half));
            if let Some(offsets) = offsets {
                let at = k * 8;
                let Some(o) = offsets.get(at..at + 8) else {
                    break;
                };
                let (a, b) = (i32x4(o[0], o[1], o[2], o[3]), i32x4(o[4], o[5], o[6], o[7]));
                let pairs = [
                    i32x4_shuffle::<0, 0, 1, 1>(a, a),
                    i32x4_shuffle::<2, 2, 3, 3>(a, a),
                    i32x4_shuffle::<0, 0, 1, 1>(b, b),
                    i32x4_shuffle::<2, 2, 3, 3>(b, b),
                ];
                for (q, p) in q.iter_mut().zip(pairs) {
                    *q = i32x4_add(*q, p);
                }
            }
            let q = q.map(|l| i32x4_shr(l, Q));
            let out = u8x16_narrow_i16x8(
                i16x8_narrow_i32x4(q[0], q[1]),
                i16x8_narrow_i32x4(q[2], q[3]),
            );
            bytes[..8].copy_from_slice(&u64x2_extract_lane::<0>(out).to_le_bytes());
            bytes[8..].copy_from_slice(&u64x2_extract_lane::<1>(out).to_le_bytes());
            done += 16;
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(
        width: u32,
        height: u32,
        yuv: (u8, u8, u8),
        full_range: bool,
        matrix: Matrix,
    ) -> Yuv420 {
        let cw = width.div_ceil(2) as usize;
        let ch = height.div_ceil(2) as usize;
        Yuv420 {
            width,
            height,
            y: vec![yuv.0; (width * height) as usize],
            u: vec![yuv.1; cw * ch],
            v: vec![yuv.2; cw * ch],
            full_range,
            matrix,
        }
    }

    /// Float reference: source YCbCr -> R'G'B' in 0..=255 (unclamped) by H.264 §E.2.1.
    fn reference_rgb(yuv: (u8, u8, u8), full_range: bool, matrix: Matrix) -> [f64; 3] {
        let (kr, kb) = matrix.kr_kb();
        let (y, pb, pr) = if full_range {
            let c = |v: u8| (f64::from(v) - 128.0) / 255.0;
            (f64::from(yuv.0) / 255.0, c(yuv.1), c(yuv.2))
        } else {
            let c = |v: u8| (f64::from(v) - 128.0) / 224.0;
            ((f64::from(yuv.0) - 16.0) / 219.0, c(yuv.1), c(yuv.2))
        };
        let r = y + 2.0 * (1.0 - kr) * pr;
        let b = y + 2.0 * (1.0 - kb) * pb;
        let g = (y - kr * r - kb * b) / (1.0 - kr - kb);
        [r * 255.0, g * 255.0, b * 255.0]
    }

    /// JFIF YCbCr -> RGB as a baseline decoder does it (JFIF 1.02).
    fn jfif_rgb(y: u8, cb: u8, cr: u8) -> [f64; 3] {
        let (y, cb, cr) = (f64::from(y), f64::from(cb) - 128.0, f64::from(cr) - 128.0);
        [
            y + 1.402 * cr,
            y - 0.344_136 * cb - 0.714_136 * cr,
            y + 1.772 * cb,
        ]
    }

    #[test]
    fn vui_matrix_codes_map_to_bt709_for_1_and_bt2020_for_9_and_10() {
        assert_eq!(Matrix::from_vui(1), Matrix::Bt709);
        assert_eq!(Matrix::from_vui(9), Matrix::Bt2020);
        assert_eq!(Matrix::from_vui(10), Matrix::Bt2020);
        for code in [0, 2, 4, 5, 6, 7, 255] {
            assert_eq!(Matrix::from_vui(code), Matrix::Bt601, "code {code}");
        }
    }

    #[test]
    fn full_range_bt601_is_left_untouched() {
        let mut p = flat(5, 3, (10, 200, 30), true, Matrix::Bt601);
        let before = p.clone();
        to_jfif(&mut p).unwrap();
        assert_eq!(p, before);
    }

    #[test]
    fn limited_range_black_white_and_grey_expand_to_full_range() {
        for (src, want) in [(16, 0), (235, 255), (126, 128), (0, 0), (255, 255)] {
            let mut p = flat(4, 4, (src, 128, 128), false, Matrix::Bt601);
            to_jfif(&mut p).unwrap();
            assert!(p.y.iter().all(|&y| y == want), "Y {src} -> {:?}", p.y[0]);
            assert!(p.u.iter().chain(&p.v).all(|&c| c == 128));
            assert!(p.full_range && p.matrix == Matrix::Bt601);
        }
    }

    #[test]
    fn grey_stays_grey_in_bt709() {
        for y in [0, 16, 77, 128, 235, 255] {
            let mut p = flat(2, 2, (y, 128, 128), true, Matrix::Bt709);
            to_jfif(&mut p).unwrap();
            assert_eq!((p.y[0], p.u[0], p.v[0]), (y, 128, 128));
        }
    }

    #[test]
    fn every_in_gamut_colour_keeps_its_rgb_within_one_step() {
        // Walk a grid of source triplets in every (matrix, range); where the source colour lies
        // inside the RGB cube (so neither path clamps), the JFIF triplet must decode to the same
        // RGB as the float reference, up to 8-bit rounding.
        for matrix in [Matrix::Bt601, Matrix::Bt709] {
            for full_range in [false, true] {
                let mut worst = 0.0f64;
                for y in (0..=255).step_by(5) {
                    for u in (0..=255).step_by(5) {
                        for v in (0..=255).step_by(5) {
                            let want = reference_rgb((y, u, v), full_range, matrix);
                            if want.iter().any(|&c| !(0.0..=255.0).contains(&c)) {
                                continue;
                            }
                            let mut p = flat(1, 1, (y, u, v), full_range, matrix);
                            to_jfif(&mut p).unwrap();
                            let got = jfif_rgb(p.y[0], p.u[0], p.v[0]);
                            for (g, w) in got.iter().zip(want) {
                                worst = worst.max((g.clamp(0.0, 255.0) - w).abs());
                            }
                        }
                    }
                }
                // Rounding each JFIF component to 8 bits moves RGB by at most
                // 0.5 * (1 + 1.772) ≈ 1.4 steps.
                assert!(worst < 1.5, "{matrix:?} full={full_range}: worst {worst}");
            }
        }
    }

    #[test]
    fn bt709_luma_offset_follows_its_own_chroma_sample() {
        // 4x2 picture, two chroma samples: left red-ish, right neutral. Only the left 2x2 luma
        // block may pick up the BT.709 luma correction.
        let mut p = flat(4, 2, (120, 128, 128), true, Matrix::Bt709);
        p.v[0] = 200;
        to_jfif(&mut p).unwrap();
        assert_eq!(p.y[2..4], [120, 120]);
        assert_eq!(p.y[6..8], [120, 120]);
        assert!(p.y[0] > 120 && p.y[0] == p.y[1] && p.y[0] == p.y[4] && p.y[0] == p.y[5]);
    }

    #[test]
    fn odd_sized_pictures_convert_every_sample() {
        let mut p = flat(5, 3, (16, 128, 128), false, Matrix::Bt709);
        to_jfif(&mut p).unwrap();
        assert!(p.y.iter().all(|&y| y == 0), "{:?}", p.y);
    }

    #[test]
    fn inconsistent_planes_are_an_error_not_a_panic() {
        let mut p = flat(4, 4, (1, 2, 3), false, Matrix::Bt601);
        p.u.pop();
        assert!(to_jfif(&mut p).is_err());
    }
}
