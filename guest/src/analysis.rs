//! What a decoded picture holds, for the blank and frozen guards (contract "Blank and frozen
//! pictures"): a 16 × 16 mean-luma signature and the blank test. Integer arithmetic only, so
//! every host and every run decides the same.

use crate::render::Yuv420;

/// Cells per side of the signature grid.
pub const GRID: usize = 16;
/// Signature length in bytes.
pub const SIGNATURE_LEN: usize = GRID * GRID;
/// A picture is blank when the standard deviation of its luma is at most this many 8-bit code
/// values: black, grey and single-colour frames, also with an encoder's noise, are below 1; the
/// darkest real scenes of the fixtures are above 6.
pub const BLANK_MAX_STDDEV: u64 = 3;
/// Two signatures show the same picture when no cell differs by more than this (8-bit code
/// values): the I-frames of a repeated still differ by at most 1 after re-encoding, moving
/// content by far more in some cell.
pub const FROZEN_MAX_CELL_DIFF: u8 = 2;

/// What the guards need of one picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    /// Near-uniform luma ([`BLANK_MAX_STDDEV`]).
    pub blank: bool,
    /// Mean luma of each of the 16 × 16 cells, row-major (cell edges at `i * side / 16`).
    pub signature: Vec<u8>,
}

/// Analyse the luma plane of `picture` (8-bit, as decoded: before scaling and colour mapping).
pub fn analyse(picture: &Yuv420) -> Analysis {
    let (w, h) = (picture.width as usize, picture.height as usize);
    let mut sums = [0u64; SIGNATURE_LEN];
    let mut counts = [0u64; SIGNATURE_LEN];
    let (mut sum, mut sum_sq) = (0u64, 0u64);
    if w == 0 || h == 0 || picture.y.len() < w * h {
        return Analysis {
            blank: true,
            signature: vec![0; SIGNATURE_LEN],
        };
    }
    let column_cell: Vec<usize> = (0..w).map(|x| x * GRID / w).collect();
    for (row_index, row) in picture.y.chunks_exact(w).take(h).enumerate() {
        let cell_row = row_index * GRID / h * GRID;
        let (mut row_sum, mut row_sq) = (0u64, 0u64);
        // Runs of one cell: add a run's samples at once.
        let mut start = 0;
        while start < w {
            let cell = column_cell[start];
            let mut end = start;
            let mut run = 0u64;
            while end < w && column_cell[end] == cell {
                let v = u64::from(row[end]);
                run += v;
                row_sq += v * v;
                end += 1;
            }
            sums[cell_row + cell] += run;
            counts[cell_row + cell] += (end - start) as u64;
            row_sum += run;
            start = end;
        }
        sum += row_sum;
        sum_sq += row_sq;
    }
    let n = (w * h) as u64;
    // variance <= s^2  <=>  n*sum_sq - sum^2 <= s^2 * n^2 (all in u128: no overflow, no floats).
    let spread = u128::from(n) * u128::from(sum_sq) - u128::from(sum) * u128::from(sum);
    let limit = u128::from(BLANK_MAX_STDDEV * BLANK_MAX_STDDEV) * u128::from(n) * u128::from(n);
    let signature = sums
        .iter()
        .zip(counts.iter())
        .map(|(&s, &c)| (s + c / 2).checked_div(c).unwrap_or(0) as u8)
        .collect();
    Analysis {
        blank: spread <= limit,
        signature,
    }
}

/// Whether `a` and `b` are the signatures of the same picture ([`FROZEN_MAX_CELL_DIFF`]).
/// Signatures of different lengths (not made by [`analyse`]) never match.
pub fn same_picture(a: &[u8], b: &[u8]) -> bool {
    a.len() == SIGNATURE_LEN
        && a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.abs_diff(*y) <= FROZEN_MAX_CELL_DIFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::color::Matrix;
    use proptest::prelude::*;

    fn picture(width: u32, height: u32, luma: impl Fn(usize, usize) -> u8) -> Yuv420 {
        let (w, h) = (width as usize, height as usize);
        let y = (0..w * h).map(|i| luma(i % w, i / w)).collect();
        let c = (w.div_ceil(2)) * (h.div_ceil(2));
        Yuv420 {
            width,
            height,
            y,
            u: vec![128; c],
            v: vec![128; c],
            full_range: false,
            matrix: Matrix::Bt601,
        }
    }

    #[test]
    fn uniform_pictures_are_blank_and_texture_is_not() {
        assert!(analyse(&picture(64, 36, |_, _| 16)).blank);
        assert!(analyse(&picture(64, 36, |x, y| 16 + ((x + y) % 3) as u8)).blank);
        // A dark scene: values 16..40 with edges, standard deviation about 7.
        let dark = analyse(&picture(64, 36, |x, y| {
            if (x / 8 + y / 6) % 2 == 0 { 18 } else { 34 }
        }));
        assert!(!dark.blank);
        let edge = analyse(&picture(64, 36, |x, _| if x < 32 { 16 } else { 235 }));
        assert!(!edge.blank);
        assert_eq!(edge.signature[0], 16);
        assert_eq!(edge.signature[15], 235);
    }

    #[test]
    fn signature_cells_are_means_of_their_regions() {
        // 32 x 32: every cell is 2 x 2; cell (cx, cy) holds cx*10 + cy.
        let a = analyse(&picture(32, 32, |x, y| (x / 2 * 10 + y / 2) as u8));
        assert_eq!(a.signature.len(), SIGNATURE_LEN);
        assert_eq!(a.signature[3 * GRID + 5], 53);
    }

    proptest! {
        #[test]
        fn analysis_is_total_and_same_picture_is_reflexive(
            w in 1u32..80, h in 1u32..80, seed in any::<u64>(),
        ) {
            let p = picture(w, h, |x, y| (seed.wrapping_mul(x as u64 * 31 + y as u64 * 17 + 1) >> 56) as u8);
            let a = analyse(&p);
            prop_assert_eq!(a.signature.len(), SIGNATURE_LEN);
            prop_assert!(same_picture(&a.signature, &a.signature));
            prop_assert_eq!(analyse(&p), a);
        }

        #[test]
        fn a_constant_picture_is_blank_at_any_level_and_size(
            w in 1u32..100, h in 1u32..100, level in any::<u8>(),
        ) {
            prop_assert!(analyse(&picture(w, h, |_, _| level)).blank);
        }

        #[test]
        fn a_shift_beyond_the_tolerance_in_one_cell_is_a_new_picture(
            base in prop::collection::vec(any::<u8>(), SIGNATURE_LEN),
            cell in 0usize..SIGNATURE_LEN, delta in 0u8..=255,
        ) {
            let mut other = base.clone();
            other[cell] = base[cell].saturating_add(delta);
            let moved = other[cell].abs_diff(base[cell]);
            prop_assert_eq!(same_picture(&base, &other), moved <= FROZEN_MAX_CELL_DIFF);
        }
    }
}
