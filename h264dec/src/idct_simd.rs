//! The inverse transforms of [`crate::dsp`] in wasm SIMD128 (built for wasm32 with `simd128`,
//! as the guest is; elsewhere the scalar kernels run). Same integer arithmetic, in the same
//! order (rows first, then columns, §8.5.12.2 and §8.5.13.2): four rows or columns per vector
//! of i32 lanes, transposed between the passes. The sum with the prediction is clamped by
//! saturating narrowing (i32 → i16 → u8), which gives the scalar clamp to 0..=255 for every
//! input. Loads and stores go through bounds-checked slices: no `unsafe`.

use crate::deblock_simd::word;
use core::arch::wasm32::*;

/// Four consecutive coefficients as a vector.
#[inline(always)]
fn quad(c: &[i32], at: usize) -> v128 {
    i32x4(c[at], c[at + 1], c[at + 2], c[at + 3])
}

/// Transposes a 4×4 block of i32 lanes (vector `i` = row `i`).
#[inline(always)]
fn transpose4(r0: v128, r1: v128, r2: v128, r3: v128) -> [v128; 4] {
    let t0 = i32x4_shuffle::<0, 4, 1, 5>(r0, r1);
    let t1 = i32x4_shuffle::<2, 6, 3, 7>(r0, r1);
    let t2 = i32x4_shuffle::<0, 4, 1, 5>(r2, r3);
    let t3 = i32x4_shuffle::<2, 6, 3, 7>(r2, r3);
    [
        i64x2_shuffle::<0, 2>(t0, t2),
        i64x2_shuffle::<1, 3>(t0, t2),
        i64x2_shuffle::<0, 2>(t1, t3),
        i64x2_shuffle::<1, 3>(t1, t3),
    ]
}

/// The 4-point butterfly on four vectors at once (each lane one row or column).
#[inline(always)]
fn butterfly4(d0: v128, d1: v128, d2: v128, d3: v128) -> [v128; 4] {
    let e0 = i32x4_add(d0, d2);
    let e1 = i32x4_sub(d0, d2);
    let e2 = i32x4_sub(i32x4_shr(d1, 1), d3);
    let e3 = i32x4_add(d1, i32x4_shr(d3, 1));
    [
        i32x4_add(e0, e3),
        i32x4_add(e1, e2),
        i32x4_sub(e1, e2),
        i32x4_sub(e0, e3),
    ]
}

/// `(r + 32) >> 6` of two rows, narrowed (saturating) to one vector of i16 lanes.
#[inline(always)]
fn rounded(a: v128, b: v128) -> v128 {
    let k = i32x4_splat(32);
    i16x8_narrow_i32x4(i32x4_shr(i32x4_add(a, k), 6), i32x4_shr(i32x4_add(b, k), 6))
}

/// Adds the 4×4 inverse transform of `c` (raster) to `dst` at `off`, then clears `c`.
#[inline]
pub(crate) fn idct4_add(dst: &mut [u8], off: usize, stride: usize, c: &mut [i32; 16]) {
    // Rows: transpose so that each vector holds one coefficient position of all four rows.
    let [c0, c1, c2, c3] = transpose4(quad(c, 0), quad(c, 4), quad(c, 8), quad(c, 12));
    let [t0, t1, t2, t3] = butterfly4(c0, c1, c2, c3);
    // Columns: vector i back to row i, the butterfly runs down the columns lane-wise.
    let [r0, r1, r2, r3] = transpose4(t0, t1, t2, t3);
    let [o0, o1, o2, o3] = butterfly4(r0, r1, r2, r3);
    let rows = [0, 1, 2, 3].map(|y| word::<4>(dst, off + y * stride));
    let px = |y: usize| rows[y].map_or(0, u32::from_le_bytes);
    let pred = u32x4(px(0), px(1), px(2), px(3));
    let lo = i16x8_add_sat(u16x8_extend_low_u8x16(pred), rounded(o0, o1));
    let hi = i16x8_add_sat(u16x8_extend_high_u8x16(pred), rounded(o2, o3));
    store4(dst, off, stride, &rows, u8x16_narrow_i16x8(lo, hi));
    *c = [0; 16];
}

/// The 8-point transform (§8.5.13.2) on eight vectors, lane-wise.
#[inline(always)]
fn idct8_1d(d: [v128; 8]) -> [v128; 8] {
    let add = i32x4_add;
    let sub = i32x4_sub;
    let half = |v| i32x4_shr(v, 1);
    let quarter = |v| i32x4_shr(v, 2);
    let a0 = add(d[0], d[4]);
    let a4 = sub(d[0], d[4]);
    let a2 = sub(half(d[2]), d[6]);
    let a6 = add(d[2], half(d[6]));
    let b0 = add(a0, a6);
    let b2 = add(a4, a2);
    let b4 = sub(a4, a2);
    let b6 = sub(a0, a6);
    let a1 = sub(sub(sub(d[5], d[3]), d[7]), half(d[7]));
    let a3 = sub(sub(add(d[1], d[7]), d[3]), half(d[3]));
    let a5 = add(add(sub(d[7], d[1]), d[5]), half(d[5]));
    let a7 = add(add(add(d[3], d[5]), d[1]), half(d[1]));
    let b1 = add(a1, quarter(a7));
    let b7 = sub(a7, quarter(a1));
    let b3 = add(a3, quarter(a5));
    let b5 = sub(quarter(a3), a5);
    [
        add(b0, b7),
        add(b2, b5),
        add(b4, b3),
        add(b6, b1),
        sub(b6, b1),
        sub(b4, b3),
        sub(b2, b5),
        sub(b0, b7),
    ]
}

/// Transposes an 8×8 block held as `[row][half]` (half 0: columns 0–3, half 1: 4–7) into the
/// same layout.
#[inline(always)]
fn transpose8(m: [[v128; 2]; 8]) -> [[v128; 2]; 8] {
    let a = transpose4(m[0][0], m[1][0], m[2][0], m[3][0]);
    let b = transpose4(m[0][1], m[1][1], m[2][1], m[3][1]);
    let c = transpose4(m[4][0], m[5][0], m[6][0], m[7][0]);
    let d = transpose4(m[4][1], m[5][1], m[6][1], m[7][1]);
    [
        [a[0], c[0]],
        [a[1], c[1]],
        [a[2], c[2]],
        [a[3], c[3]],
        [b[0], d[0]],
        [b[1], d[1]],
        [b[2], d[2]],
        [b[3], d[3]],
    ]
}

/// Adds the 8×8 inverse transform of `c` (raster) to `dst` at `off`, then clears `c`.
pub(crate) fn idct8_add(dst: &mut [u8], off: usize, stride: usize, c: &mut [i32; 64]) {
    let m: [[v128; 2]; 8] = core::array::from_fn(|i| [quad(c, i * 8), quad(c, i * 8 + 4)]);
    // Rows: after the transpose, vector [k][h] holds coefficient k of rows 4h..4h+4.
    let cols = transpose8(m);
    let lo = idct8_1d(core::array::from_fn(|k| cols[k][0]));
    let hi = idct8_1d(core::array::from_fn(|k| cols[k][1]));
    let t: [[v128; 2]; 8] = core::array::from_fn(|k| [lo[k], hi[k]]);
    // Columns: back to [row][half], the transform runs down each column lane-wise.
    let rows = transpose8(t);
    let left = idct8_1d(core::array::from_fn(|y| rows[y][0]));
    let right = idct8_1d(core::array::from_fn(|y| rows[y][1]));
    for y in 0..8 {
        let at = off + y * stride;
        if let Some(pred) = word::<8>(dst, at) {
            let pred = u64x2(u64::from_le_bytes(pred), 0);
            let sum = i16x8_add_sat(u16x8_extend_low_u8x16(pred), rounded(left[y], right[y]));
            let out = u8x16_narrow_i16x8(sum, sum);
            if let Some(d) = dst.get_mut(at..).and_then(|d| d.first_chunk_mut::<8>()) {
                *d = u64x2_extract_lane::<0>(out).to_le_bytes();
            }
        }
    }
    *c = [0; 64];
}

/// Adds a DC-only 4×4 residual ((dc + 32) >> 6 everywhere) and clears `c`: one saturating
/// byte add (or subtract) over the four rows at once.
#[inline]
pub(crate) fn dc4_add(dst: &mut [u8], off: usize, stride: usize, c: &mut [i32; 16]) {
    let dc = (c[0] + 32) >> 6;
    c[0] = 0;
    let amount = u8x16_splat(dc.unsigned_abs().min(255) as u8);
    let rows = [0, 1, 2, 3].map(|y| word::<4>(dst, off + y * stride));
    let px = |y: usize| rows[y].map_or(0, u32::from_le_bytes);
    let pred = u32x4(px(0), px(1), px(2), px(3));
    let out = if dc >= 0 {
        u8x16_add_sat(pred, amount)
    } else {
        u8x16_sub_sat(pred, amount)
    };
    store4(dst, off, stride, &rows, out);
}

/// Stores the four 4-byte rows of `out` at `off`, `off + stride`, … (rows that were out of
/// bounds when loaded stay untouched).
#[inline(always)]
fn store4(dst: &mut [u8], off: usize, stride: usize, rows: &[Option<[u8; 4]>; 4], out: v128) {
    let lanes = [
        u32x4_extract_lane::<0>(out),
        u32x4_extract_lane::<1>(out),
        u32x4_extract_lane::<2>(out),
        u32x4_extract_lane::<3>(out),
    ];
    for (y, v) in lanes.into_iter().enumerate() {
        if rows[y].is_some()
            && let Some(d) = dst
                .get_mut(off + y * stride..)
                .and_then(|d| d.first_chunk_mut::<4>())
        {
            *d = v.to_le_bytes();
        }
    }
}
