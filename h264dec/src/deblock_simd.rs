//! The deblocking kernels of [`crate::deblock`] in wasm SIMD128 (built for wasm32 with the
//! `simd128` target feature, as the guest is; elsewhere the scalar kernels run). Same
//! arithmetic, sample for sample: a luma edge's 16 lines are the 16 lanes of one vector per
//! sample position (p3 … q3), a chroma edge's 8 lines of Cb and 8 of Cr share the vectors. Rows
//! of a horizontal edge load as they lie; a vertical edge is transposed in and out with byte
//! shuffles. The intrinsics are safe functions (`simd128` is on for the whole build) and every
//! load and store goes through a bounds-checked slice, so there is no `unsafe` here either.

use core::arch::wasm32::*;

/// The `N` bytes at `at` as a little-endian word; `None` if out of bounds.
#[inline(always)]
pub(crate) fn word<const N: usize>(px: &[u8], at: usize) -> Option<[u8; N]> {
    px.get(at..)?.first_chunk::<N>().copied()
}

/// 16 bytes at `at` as a vector (two 64-bit loads: the compiler builds a vector from 16 byte
/// lanes one insert at a time).
#[inline(always)]
fn row16(px: &[u8], at: usize) -> Option<v128> {
    let lo = u64::from_le_bytes(word::<8>(px, at)?);
    let hi = u64::from_le_bytes(word::<8>(px, at + 8)?);
    Some(u64x2(lo, hi))
}

#[inline(always)]
fn put8(px: &mut [u8], at: usize, v: u64) {
    if let Some(d) = px.get_mut(at..).and_then(|d| d.first_chunk_mut::<8>()) {
        *d = v.to_le_bytes();
    }
}

#[inline(always)]
fn put4(px: &mut [u8], at: usize, v: u32) {
    if let Some(d) = px.get_mut(at..).and_then(|d| d.first_chunk_mut::<4>()) {
        *d = v.to_le_bytes();
    }
}

#[inline(always)]
fn put16(px: &mut [u8], at: usize, v: v128) {
    put8(px, at, u64x2_extract_lane::<0>(v));
    put8(px, at + 8, u64x2_extract_lane::<1>(v));
}

/// `|a - b|` of unsigned bytes.
#[inline(always)]
fn absdiff(a: v128, b: v128) -> v128 {
    v128_or(u8x16_sub_sat(a, b), u8x16_sub_sat(b, a))
}

/// Lanes where `|a - b| < limit` (all ones), per byte.
#[inline(always)]
fn below(a: v128, b: v128, limit: v128) -> v128 {
    u8x16_lt(absdiff(a, b), limit)
}

/// The 16 lanes as two i16x8 halves.
#[inline(always)]
fn widen(v: v128) -> (v128, v128) {
    (u16x8_extend_low_u8x16(v), u16x8_extend_high_u8x16(v))
}

/// Two i16x8 halves back into bytes, clamped to 0..=255.
#[inline(always)]
fn narrow(lo: v128, hi: v128) -> v128 {
    u8x16_narrow_i16x8(lo, hi)
}

/// A mask of bytes widened to i16 lanes (each lane all ones or zero).
#[inline(always)]
fn widen_mask(m: v128) -> (v128, v128) {
    (i16x8_extend_low_i8x16(m), i16x8_extend_high_i8x16(m))
}

/// 16 rows of 8 bytes (`px[at + r * stride ..][..8]`) into 8 vectors of 16 lanes, one per
/// column; `None` if any row is out of bounds. Written out without loops over arrays, so every
/// vector stays in a register (arrays indexed in loops were kept in linear memory).
#[inline(always)]
fn load_columns8(px: &[u8], at: usize, stride: usize) -> Option<[v128; 8]> {
    // The last row first: one bounds check covers the rest.
    word::<8>(px, at + 15 * stride)?;
    let row = |r: usize| u64::from_le_bytes(word::<8>(px, at + r * stride).unwrap_or_default());
    // Rows 2i and 2i+1, bytes interleaved: a0 b0 a1 b1 … a7 b7.
    let pair = |i: usize| {
        let v = u64x2(row(2 * i), row(2 * i + 1));
        i8x16_shuffle::<0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15>(v, v)
    };
    let (t0, t1, t2, t3) = (pair(0), pair(1), pair(2), pair(3));
    let (t4, t5, t6, t7) = (pair(4), pair(5), pair(6), pair(7));
    // Rows 4i..4i+3: columns 0-3 (lo) and 4-7 (hi).
    let lo = |a: v128, b: v128| i16x8_shuffle::<0, 8, 1, 9, 2, 10, 3, 11>(a, b);
    let hi = |a: v128, b: v128| i16x8_shuffle::<4, 12, 5, 13, 6, 14, 7, 15>(a, b);
    let (u0, u1) = (lo(t0, t1), hi(t0, t1));
    let (u2, u3) = (lo(t2, t3), hi(t2, t3));
    let (u4, u5) = (lo(t4, t5), hi(t4, t5));
    let (u6, u7) = (lo(t6, t7), hi(t6, t7));
    // Rows 0-7 (w0..w3) and 8-15 (w4..w7): column pairs (0,1), (2,3), (4,5), (6,7).
    let lo32 = |a: v128, b: v128| i32x4_shuffle::<0, 4, 1, 5>(a, b);
    let hi32 = |a: v128, b: v128| i32x4_shuffle::<2, 6, 3, 7>(a, b);
    let (w0, w1, w2, w3) = (lo32(u0, u2), hi32(u0, u2), lo32(u1, u3), hi32(u1, u3));
    let (w4, w5, w6, w7) = (lo32(u4, u6), hi32(u4, u6), lo32(u5, u7), hi32(u5, u7));
    let first = |a: v128, b: v128| i64x2_shuffle::<0, 2>(a, b);
    let second = |a: v128, b: v128| i64x2_shuffle::<1, 3>(a, b);
    Some([
        first(w0, w4),
        second(w0, w4),
        first(w1, w5),
        second(w1, w5),
        first(w2, w6),
        second(w2, w6),
        first(w3, w7),
        second(w3, w7),
    ])
}

/// The inverse of [`load_columns8`]: 8 column vectors back into 16 rows of 8 bytes.
#[inline(always)]
fn store_columns8(px: &mut [u8], at: usize, stride: usize, c: &[v128; 8]) {
    let [c0, c1, c2, c3, c4, c5, c6, c7] = *c;
    // Pairs of columns, bytes interleaved: rows 0-7 (lo) and 8-15 (hi).
    let lo8 = |x: v128, y: v128| {
        i8x16_shuffle::<0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23>(x, y)
    };
    let hi8 = |x: v128, y: v128| {
        i8x16_shuffle::<8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31>(x, y)
    };
    let (a01, b01) = (lo8(c0, c1), hi8(c0, c1));
    let (a23, b23) = (lo8(c2, c3), hi8(c2, c3));
    let (a45, b45) = (lo8(c4, c5), hi8(c4, c5));
    let (a67, b67) = (lo8(c6, c7), hi8(c6, c7));
    let lo16 = |a: v128, b: v128| i16x8_shuffle::<0, 8, 1, 9, 2, 10, 3, 11>(a, b);
    let hi16 = |a: v128, b: v128| i16x8_shuffle::<4, 12, 5, 13, 6, 14, 7, 15>(a, b);
    let lo32 = |a: v128, b: v128| i32x4_shuffle::<0, 4, 1, 5>(a, b);
    let hi32 = |a: v128, b: v128| i32x4_shuffle::<2, 6, 3, 7>(a, b);
    // Rows `first..first + 8` from one half of each column pair.
    let mut half = |first: usize, p01: v128, p23: v128, p45: v128, p67: v128| {
        // Columns 0-3 and 4-7 of rows first+0..4 (l0, r0) and first+4..8 (l1, r1).
        let (l0, l1) = (lo16(p01, p23), hi16(p01, p23));
        let (r0, r1) = (lo16(p45, p67), hi16(p45, p67));
        for (q, (l, r)) in [(l0, r0), (l1, r1)].into_iter().enumerate() {
            let (r01, r23) = (lo32(l, r), hi32(l, r));
            let row = first + 4 * q;
            put8(px, at + row * stride, u64x2_extract_lane::<0>(r01));
            put8(px, at + (row + 1) * stride, u64x2_extract_lane::<1>(r01));
            put8(px, at + (row + 2) * stride, u64x2_extract_lane::<0>(r23));
            put8(px, at + (row + 3) * stride, u64x2_extract_lane::<1>(r23));
        }
    };
    half(0, a01, a23, a45, a67);
    half(8, b01, b23, b45, b67);
}

/// A 4×4 transpose of 32-bit lanes.
#[inline(always)]
fn transpose32(w: [v128; 4]) -> [v128; 4] {
    let t0 = i32x4_shuffle::<0, 4, 1, 5>(w[0], w[1]);
    let t1 = i32x4_shuffle::<2, 6, 3, 7>(w[0], w[1]);
    let t2 = i32x4_shuffle::<0, 4, 1, 5>(w[2], w[3]);
    let t3 = i32x4_shuffle::<2, 6, 3, 7>(w[2], w[3]);
    [
        i64x2_shuffle::<0, 2>(t0, t2),
        i64x2_shuffle::<1, 3>(t0, t2),
        i64x2_shuffle::<0, 2>(t1, t3),
        i64x2_shuffle::<1, 3>(t1, t3),
    ]
}

/// Transposes each 4×4 block of bytes of a vector (an involution).
#[inline(always)]
fn transpose_bytes4(v: v128) -> v128 {
    i8x16_shuffle::<0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15>(v, v)
}

/// A luma edge of 16 lines: bS 4 when `tc0` is `None`, else bS 3 with that t'C0. `off` is q0
/// of the first line; `across` steps from q0 to q1 (1: a vertical edge), `along` from line to
/// line.
pub(crate) fn luma(
    px: &mut [u8],
    off: usize,
    across: usize,
    along: usize,
    alpha: i32,
    beta: i32,
    tc0: Option<i32>,
) {
    if alpha == 0 || off < 4 * across {
        return;
    }
    let base = off - 4 * across;
    // Loads and stores written out (no loops over vector arrays: those were kept in linear
    // memory and walked with a called iterator).
    let s = if across == 1 {
        match load_columns8(px, base, along) {
            Some(c) => c,
            None => return,
        }
    } else {
        // The last row first: one bounds check covers the rest.
        if row16(px, base + 7 * across).is_none() {
            return;
        }
        let row = |k: usize| row16(px, base + k * across).unwrap_or(u8x16_splat(0));
        [
            row(0),
            row(1),
            row(2),
            row(3),
            row(4),
            row(5),
            row(6),
            row(7),
        ]
    };
    let out = match tc0 {
        None => luma_strong(&s, alpha, beta),
        Some(tc0) => luma_normal(&s, alpha, beta, tc0),
    };
    if across == 1 {
        store_columns8(px, base, along, &out);
    } else {
        put16(px, base + across, out[1]);
        put16(px, base + 2 * across, out[2]);
        put16(px, base + 3 * across, out[3]);
        put16(px, base + 4 * across, out[4]);
        put16(px, base + 5 * across, out[5]);
        put16(px, base + 6 * across, out[6]);
    }
}

/// Lanes where the edge is filtered at all (eq. 8-460 / 8-461).
#[inline(always)]
fn gate(p1: v128, p0: v128, q0: v128, q1: v128, alpha: v128, beta: v128) -> v128 {
    v128_and(
        below(p0, q0, alpha),
        v128_and(below(p1, p0, beta), below(q1, q0, beta)),
    )
}

/// Clamp to `-t..=t` (i16 lanes).
#[inline(always)]
fn clip(v: v128, t: v128) -> v128 {
    i16x8_min(i16x8_max(v, i16x8_neg(t)), t)
}

fn luma_normal(s: &[v128; 8], alpha: i32, beta: i32, tc0: i32) -> [v128; 8] {
    let [p3, p2, p1, p0, q0, q1, q2, q3] = *s;
    let (va, vb) = (u8x16_splat(alpha as u8), u8x16_splat(beta as u8));
    let on = gate(p1, p0, q0, q1, va, vb);
    let ap = v128_and(on, below(p2, p0, vb));
    let aq = v128_and(on, below(q2, q0, vb));
    let (on_l, on_h) = widen_mask(on);
    let (ap_l, ap_h) = widen_mask(ap);
    let (aq_l, aq_h) = widen_mask(aq);
    let t0 = i16x8_splat(tc0 as i16);
    let (p2l, p2h) = widen(p2);
    let (p1l, p1h) = widen(p1);
    let (p0l, p0h) = widen(p0);
    let (q0l, q0h) = widen(q0);
    let (q1l, q1h) = widen(q1);
    let (q2l, q2h) = widen(q2);
    let half = |p2: v128,
                p1: v128,
                p0: v128,
                q0: v128,
                q1: v128,
                q2: v128,
                on: v128,
                ap: v128,
                aq: v128| {
        // tc = tc0 + ap + aq (masks are -1 where set).
        let tc = i16x8_sub(i16x8_sub(t0, ap), aq);
        let d = i16x8_add(
            i16x8_add(i16x8_shl(i16x8_sub(q0, p0), 2), i16x8_sub(p1, q1)),
            i16x8_splat(4),
        );
        let delta = v128_and(clip(i16x8_shr(d, 3), tc), on);
        let avg = i16x8_shr(i16x8_add(i16x8_add(p0, q0), i16x8_splat(1)), 1);
        let dp1 = clip(
            i16x8_shr(i16x8_sub(i16x8_add(p2, avg), i16x8_shl(p1, 1)), 1),
            t0,
        );
        let dq1 = clip(
            i16x8_shr(i16x8_sub(i16x8_add(q2, avg), i16x8_shl(q1, 1)), 1),
            t0,
        );
        (
            i16x8_add(p1, v128_and(dp1, ap)),
            i16x8_add(p0, delta),
            i16x8_sub(q0, delta),
            i16x8_add(q1, v128_and(dq1, aq)),
        )
    };
    let (np1l, np0l, nq0l, nq1l) = half(p2l, p1l, p0l, q0l, q1l, q2l, on_l, ap_l, aq_l);
    let (np1h, np0h, nq0h, nq1h) = half(p2h, p1h, p0h, q0h, q1h, q2h, on_h, ap_h, aq_h);
    [
        p3,
        p2,
        narrow(np1l, np1h),
        narrow(np0l, np0h),
        narrow(nq0l, nq0h),
        narrow(nq1l, nq1h),
        q2,
        q3,
    ]
}

fn luma_strong(s: &[v128; 8], alpha: i32, beta: i32) -> [v128; 8] {
    let [p3, p2, p1, p0, q0, q1, q2, q3] = *s;
    let (va, vb) = (u8x16_splat(alpha as u8), u8x16_splat(beta as u8));
    let on = gate(p1, p0, q0, q1, va, vb);
    let near = below(p0, q0, u8x16_splat(((alpha >> 2) + 2).min(255) as u8));
    let sp = v128_and(v128_and(on, near), below(p2, p0, vb));
    let sq = v128_and(v128_and(on, near), below(q2, q0, vb));
    let (p3l, p3h) = widen(p3);
    let (p2l, p2h) = widen(p2);
    let (p1l, p1h) = widen(p1);
    let (p0l, p0h) = widen(p0);
    let (q0l, q0h) = widen(q0);
    let (q1l, q1h) = widen(q1);
    let (q2l, q2h) = widen(q2);
    let (q3l, q3h) = widen(q3);
    // One side's three new samples, strong (`s`) and weak; `x3..x0` that side, `y0..y2` the other.
    let side = |x3: v128, x2: v128, x1: v128, x0: v128, y0: v128, y1: v128| {
        let two = |v: v128| i16x8_shl(v, 1);
        let x0y0 = i16x8_add(x0, y0);
        let strong0 = i16x8_shr(
            i16x8_add(
                i16x8_add(i16x8_add(x2, two(x1)), i16x8_add(two(x0y0), y1)),
                i16x8_splat(4),
            ),
            3,
        );
        let strong1 = i16x8_shr(
            i16x8_add(i16x8_add(i16x8_add(x2, x1), x0y0), i16x8_splat(2)),
            2,
        );
        let strong2 = i16x8_shr(
            i16x8_add(
                i16x8_add(
                    i16x8_add(two(x3), i16x8_mul(x2, i16x8_splat(3))),
                    i16x8_add(x1, x0y0),
                ),
                i16x8_splat(4),
            ),
            3,
        );
        let weak0 = i16x8_shr(
            i16x8_add(i16x8_add(i16x8_add(two(x1), x0), y1), i16x8_splat(2)),
            2,
        );
        (strong0, strong1, strong2, weak0)
    };
    let (sp0l, sp1l, sp2l, wp0l) = side(p3l, p2l, p1l, p0l, q0l, q1l);
    let (sp0h, sp1h, sp2h, wp0h) = side(p3h, p2h, p1h, p0h, q0h, q1h);
    let (sq0l, sq1l, sq2l, wq0l) = side(q3l, q2l, q1l, q0l, p0l, p1l);
    let (sq0h, sq1h, sq2h, wq0h) = side(q3h, q2h, q1h, q0h, p0h, p1h);
    let sel = |mask: v128, yes: v128, no: v128| v128_bitselect(yes, no, mask);
    let np0 = sel(sp, narrow(sp0l, sp0h), narrow(wp0l, wp0h));
    let nq0 = sel(sq, narrow(sq0l, sq0h), narrow(wq0l, wq0h));
    [
        p3,
        sel(sp, narrow(sp2l, sp2h), p2),
        sel(sp, narrow(sp1l, sp1h), p1),
        sel(on, np0, p0),
        sel(on, nq0, q0),
        sel(sq, narrow(sq1l, sq1h), q1),
        sel(sq, narrow(sq2l, sq2h), q2),
        q3,
    ]
}

/// The same chroma edge of 8 lines in Cb and Cr at once (lanes 0-7 Cb, 8-15 Cr): bS 4 when
/// `tc0` is `None`, else bS 3 with t'C0 per plane. `params` are (alpha, beta) per plane.
#[allow(
    clippy::too_many_arguments,
    reason = "an edge's position and both planes' parameters, as the scalar kernel takes them"
)]
pub(crate) fn chroma(
    u: &mut [u8],
    v: &mut [u8],
    off: usize,
    across: usize,
    along: usize,
    params: [(i32, i32); 2],
    tc0: Option<[i32; 2]>,
) {
    if off < 2 * across {
        return;
    }
    let base = off - 2 * across;
    let mut s = [u8x16_splat(0); 4];
    if across == 1 {
        // 8 rows of 4 bytes per plane: 16 rows, 4 per vector, then transposed.
        let mut w = [u8x16_splat(0); 4];
        for (i, w) in w.iter_mut().enumerate() {
            let plane: &[u8] = if i < 2 { u } else { v };
            let first = 4 * (i % 2);
            let mut r = [0u32; 4];
            for (j, r) in r.iter_mut().enumerate() {
                match word::<4>(plane, base + (first + j) * along) {
                    Some(b) => *r = u32::from_le_bytes(b),
                    None => return,
                }
            }
            *w = transpose_bytes4(u32x4(r[0], r[1], r[2], r[3]));
        }
        s = transpose32(w);
    } else {
        for (k, s) in s.iter_mut().enumerate() {
            let at = base + k * across;
            match (word::<8>(u, at), word::<8>(v, at)) {
                (Some(a), Some(b)) => *s = u64x2(u64::from_le_bytes(a), u64::from_le_bytes(b)),
                _ => return,
            }
        }
    }
    let [p1, p0, q0, q1] = s;
    let halves = |f: fn((i32, i32)) -> i32| {
        let (a, b) = (f(params[0]) as u8, f(params[1]) as u8);
        u64x2(
            u64::from(a) * 0x0101_0101_0101_0101,
            u64::from(b) * 0x0101_0101_0101_0101,
        )
    };
    let on = gate(p1, p0, q0, q1, halves(|p| p.0), halves(|p| p.1));
    let (p1l, p1h) = widen(p1);
    let (p0l, p0h) = widen(p0);
    let (q0l, q0h) = widen(q0);
    let (q1l, q1h) = widen(q1);
    let (np0, nq0) = match tc0 {
        None => {
            let f = |x1: v128, x0: v128, y1: v128| {
                i16x8_shr(
                    i16x8_add(
                        i16x8_add(i16x8_add(i16x8_shl(x1, 1), x0), y1),
                        i16x8_splat(2),
                    ),
                    2,
                )
            };
            (
                narrow(f(p1l, p0l, q1l), f(p1h, p0h, q1h)),
                narrow(f(q1l, q0l, p1l), f(q1h, q0h, p1h)),
            )
        }
        Some(tc0) => {
            let f = |p1: v128, p0: v128, q0: v128, q1: v128, tc: i32| {
                let tc = i16x8_splat(tc as i16 + 1);
                let d = i16x8_add(
                    i16x8_add(i16x8_shl(i16x8_sub(q0, p0), 2), i16x8_sub(p1, q1)),
                    i16x8_splat(4),
                );
                let delta = clip(i16x8_shr(d, 3), tc);
                (i16x8_add(p0, delta), i16x8_sub(q0, delta))
            };
            let (p0l, q0l) = f(p1l, p0l, q0l, q1l, tc0[0]);
            let (p0h, q0h) = f(p1h, p0h, q0h, q1h, tc0[1]);
            (narrow(p0l, p0h), narrow(q0l, q0h))
        }
    };
    let out = [
        p1,
        v128_bitselect(np0, p0, on),
        v128_bitselect(nq0, q0, on),
        q1,
    ];
    if across == 1 {
        let w = transpose32(out);
        for (i, w) in w.iter().enumerate() {
            let w = transpose_bytes4(*w);
            let plane: &mut [u8] = if i < 2 { &mut *u } else { &mut *v };
            let first = 4 * (i % 2);
            put4(plane, base + first * along, u32x4_extract_lane::<0>(w));
            put4(
                plane,
                base + (first + 1) * along,
                u32x4_extract_lane::<1>(w),
            );
            put4(
                plane,
                base + (first + 2) * along,
                u32x4_extract_lane::<2>(w),
            );
            put4(
                plane,
                base + (first + 3) * along,
                u32x4_extract_lane::<3>(w),
            );
        }
    } else {
        for (k, s) in out.iter().enumerate().take(3).skip(1) {
            let at = base + k * across;
            put8(u, at, u64x2_extract_lane::<0>(*s));
            put8(v, at, u64x2_extract_lane::<1>(*s));
        }
    }
}
