//! The pixel kernels: intra prediction (§8.3), inverse transforms (§8.5.10–8.5.13) and their
//! add-to-prediction step. Written over fixed-size arrays and rows so that LLVM vectorises them
//! (simd128 in the guest); no kernel reads or writes outside the block it is given.

#[cfg(test)]
/// Reference samples of an N×N block: `top[0..2N]` (p[x, -1], the right half already
/// substituted when unavailable), `left[0..N]` (p[-1, y]) and `corner` (p[-1, -1]).
pub(crate) struct Edges<const N2: usize, const N: usize> {
    pub(crate) top: [i32; N2],
    pub(crate) left: [i32; N],
    pub(crate) corner: i32,
    pub(crate) has_top: bool,
    pub(crate) has_left: bool,
    pub(crate) has_corner: bool,
}

#[cfg(test)]
impl<const N2: usize, const N: usize> Edges<N2, N> {
    /// The 8×8 reference sample filter (§8.3.2.2.1).
    pub(crate) fn filtered(&self) -> Self {
        let mut out = Edges {
            top: self.top,
            left: self.left,
            corner: self.corner,
            has_top: self.has_top,
            has_left: self.has_left,
            has_corner: self.has_corner,
        };
        if self.has_top {
            let t = &self.top;
            out.top[0] = if self.has_corner {
                (self.corner + 2 * t[0] + t[1] + 2) >> 2
            } else {
                (3 * t[0] + t[1] + 2) >> 2
            };
            for x in 1..N2 - 1 {
                out.top[x] = (t[x - 1] + 2 * t[x] + t[x + 1] + 2) >> 2;
            }
            out.top[N2 - 1] = (t[N2 - 2] + 3 * t[N2 - 1] + 2) >> 2;
        }
        if self.has_corner {
            out.corner = match (self.has_top, self.has_left) {
                (true, true) => (self.top[0] + 2 * self.corner + self.left[0] + 2) >> 2,
                (true, false) => (3 * self.corner + self.top[0] + 2) >> 2,
                (false, true) => (3 * self.corner + self.left[0] + 2) >> 2,
                (false, false) => self.corner,
            };
        }
        if self.has_left {
            let l = &self.left;
            out.left[0] = if self.has_corner {
                (self.corner + 2 * l[0] + l[1] + 2) >> 2
            } else {
                (3 * l[0] + l[1] + 2) >> 2
            };
            for y in 1..N - 1 {
                out.left[y] = (l[y - 1] + 2 * l[y] + l[y + 1] + 2) >> 2;
            }
            out.left[N - 1] = (l[N - 2] + 3 * l[N - 1] + 2) >> 2;
        }
        out
    }
}

#[cfg(test)]
/// Intra 4×4 / 8×8 prediction of mode `mode` (Tables 8-2, 8-3) into `out` (row-major N×N),
/// written as the spec's formulas: the reference `pred`'s table-driven kernels are tested against.
/// Returns false when the mode needs samples that are not available.
pub(crate) fn pred_nxn<const N2: usize, const N: usize>(
    e: &Edges<N2, N>,
    mode: u8,
    out: &mut [[u8; N]; N],
) -> bool {
    let n = N as i32;
    let need =
        |t: bool, l: bool, c: bool| (!t || e.has_top) && (!l || e.has_left) && (!c || e.has_corner);
    let ok = match mode {
        0 | 3 | 7 => need(true, false, false),
        1 | 8 => need(false, true, false),
        2 => true,
        4..=6 => need(true, true, true),
        _ => false,
    };
    if !ok {
        return false;
    }
    // One line of reference samples: p[-1, N-1] .. p[-1, 0], p[-1, -1], p[0, -1] .. p[2N-1, -1],
    // so p[x, -1] = a[N + 1 + x] and p[-1, y] = a[N - 1 - y] for x, y >= -1.
    let mut a = [0i32; 25];
    for (y, &l) in e.left.iter().enumerate() {
        a[N - 1 - y] = l;
    }
    a[N] = e.corner;
    for (x, &t) in e.top.iter().enumerate() {
        a[N + 1 + x] = t;
    }
    let t = |x: i32| a[(n + 1 + x) as usize];
    let l = |y: i32| a[(n - 1 - y) as usize];
    match mode {
        0 => {
            for row in out.iter_mut() {
                for (x, v) in row.iter_mut().enumerate() {
                    *v = e.top[x] as u8;
                }
            }
        }
        1 => {
            for (y, row) in out.iter_mut().enumerate() {
                *row = [e.left[y] as u8; N];
            }
        }
        2 => {
            let shift = if N == 4 { 2 } else { 3 };
            let st: i32 = e.top[..N].iter().sum();
            let sl: i32 = e.left.iter().sum();
            let dc = match (e.has_top, e.has_left) {
                (true, true) => (st + sl + n) >> (shift + 1),
                (true, false) => (st + n / 2) >> shift,
                (false, true) => (sl + n / 2) >> shift,
                (false, false) => 128,
            };
            *out = [[dc as u8; N]; N];
        }
        3 => fill(out, |x, y| {
            if x == n - 1 && y == n - 1 {
                (t(2 * n - 2) + 3 * t(2 * n - 1) + 2) >> 2
            } else {
                (t(x + y) + 2 * t(x + y + 1) + t(x + y + 2) + 2) >> 2
            }
        }),
        4 => fill(out, |x, y| {
            // On the line x - y = d the samples run through a[N + d] (corner at d = 0).
            let c = n + x - y;
            (a[(c - 1) as usize] + 2 * a[c as usize] + a[(c + 1) as usize] + 2) >> 2
        }),
        5 => fill(out, |x, y| {
            let z = 2 * x - y;
            if z >= 0 && z & 1 == 0 {
                (t(x - (y >> 1) - 1) + t(x - (y >> 1)) + 1) >> 1
            } else if z >= 0 {
                (t(x - (y >> 1) - 2) + 2 * t(x - (y >> 1) - 1) + t(x - (y >> 1)) + 2) >> 2
            } else if z == -1 {
                (l(0) + 2 * l(-1) + t(0) + 2) >> 2
            } else {
                (l(y - 2 * x - 1) + 2 * l(y - 2 * x - 2) + l(y - 2 * x - 3) + 2) >> 2
            }
        }),
        6 => fill(out, |x, y| {
            let z = 2 * y - x;
            if z >= 0 && z & 1 == 0 {
                (l(y - (x >> 1) - 1) + l(y - (x >> 1)) + 1) >> 1
            } else if z >= 0 {
                (l(y - (x >> 1) - 2) + 2 * l(y - (x >> 1) - 1) + l(y - (x >> 1)) + 2) >> 2
            } else if z == -1 {
                (l(0) + 2 * l(-1) + t(0) + 2) >> 2
            } else {
                (t(x - 2 * y - 1) + 2 * t(x - 2 * y - 2) + t(x - 2 * y - 3) + 2) >> 2
            }
        }),
        7 => fill(out, |x, y| {
            let i = x + (y >> 1);
            if y & 1 == 0 {
                (t(i) + t(i + 1) + 1) >> 1
            } else {
                (t(i) + 2 * t(i + 1) + t(i + 2) + 2) >> 2
            }
        }),
        _ => fill(out, |x, y| {
            let z = x + 2 * y;
            let i = y + (x >> 1);
            if z > 2 * n - 3 {
                l(n - 1)
            } else if z == 2 * n - 3 {
                (l(n - 2) + 3 * l(n - 1) + 2) >> 2
            } else if z & 1 == 0 {
                (l(i) + l(i + 1) + 1) >> 1
            } else {
                (l(i) + 2 * l(i + 1) + l(i + 2) + 2) >> 2
            }
        }),
    }
    true
}

#[cfg(test)]
/// Fills an N×N block with `f(x, y)`.
#[inline(always)]
fn fill<const N: usize>(out: &mut [[u8; N]; N], f: impl Fn(i32, i32) -> i32) {
    for (y, row) in out.iter_mut().enumerate() {
        for (x, v) in row.iter_mut().enumerate() {
            *v = f(x as i32, y as i32) as u8;
        }
    }
}

/// Intra 16×16 (Table 8-4, N = 16) and chroma (§8.3.4, N = 8) vertical, horizontal and plane
/// prediction. `mode` uses the luma numbering: 0 vertical, 1 horizontal, 3 plane.
pub(crate) fn pred_large<const N: usize>(
    top: &[i32; N],
    left: &[i32; N],
    corner: i32,
    mode: u8,
    out: &mut [[u8; N]; N],
) {
    match mode {
        0 => {
            for row in out.iter_mut() {
                for (v, &t) in row.iter_mut().zip(top) {
                    *v = t as u8;
                }
            }
        }
        1 => {
            for (row, &l) in out.iter_mut().zip(left) {
                *row = [l as u8; N];
            }
        }
        _ => {
            let half = N / 2;
            let p_top = |x: usize| if x == usize::MAX { corner } else { top[x] };
            let p_left = |y: usize| if y == usize::MAX { corner } else { left[y] };
            let (mut h, mut v) = (0i32, 0i32);
            for k in 0..half {
                let w = (k + 1) as i32;
                h += w * (p_top(half + k) - p_top((half - 2).wrapping_sub(k)));
                v += w * (p_left(half + k) - p_left((half - 2).wrapping_sub(k)));
            }
            let a = 16 * (left[N - 1] + top[N - 1]);
            let (b, c) = if N == 16 {
                ((5 * h + 32) >> 6, (5 * v + 32) >> 6)
            } else {
                ((34 * h + 32) >> 6, (34 * v + 32) >> 6)
            };
            let mid = half as i32 - 1;
            for (y, row) in out.iter_mut().enumerate() {
                let base = a + c * (y as i32 - mid) + 16 - b * mid;
                for (x, o) in row.iter_mut().enumerate() {
                    *o = ((base + b * x as i32) >> 5).clamp(0, 255) as u8;
                }
            }
        }
    }
}

// In wasm with SIMD128 the inverse transforms are `idct_simd`'s; the scalar ones below run
// elsewhere (and are the reference the component's output is checked against).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) use crate::idct_simd::{dc4_add, idct4_add, idct8_add};

/// Adds the 4×4 inverse transform of `c` (raster, §8.5.12.2) to a 4×4 block of `dst` at `off`,
/// then clears `c`.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
#[inline]
pub(crate) fn idct4_add(dst: &mut [u8], off: usize, stride: usize, c: &mut [i32; 16]) {
    let mut t = [0i32; 16];
    for i in 0..4 {
        let d = &c[i * 4..i * 4 + 4];
        let e0 = d[0] + d[2];
        let e1 = d[0] - d[2];
        let e2 = (d[1] >> 1) - d[3];
        let e3 = d[1] + (d[3] >> 1);
        t[i * 4] = e0 + e3;
        t[i * 4 + 1] = e1 + e2;
        t[i * 4 + 2] = e1 - e2;
        t[i * 4 + 3] = e0 - e3;
    }
    let mut r = [0i32; 16];
    for j in 0..4 {
        let g0 = t[j] + t[8 + j];
        let g1 = t[j] - t[8 + j];
        let g2 = (t[4 + j] >> 1) - t[12 + j];
        let g3 = t[4 + j] + (t[12 + j] >> 1);
        r[j] = g0 + g3;
        r[4 + j] = g1 + g2;
        r[8 + j] = g1 - g2;
        r[12 + j] = g0 - g3;
    }
    for y in 0..4 {
        if let Some(row) = dst.get_mut(off + y * stride..off + y * stride + 4) {
            for (x, px) in row.iter_mut().enumerate() {
                *px = (i32::from(*px) + ((r[y * 4 + x] + 32) >> 6)).clamp(0, 255) as u8;
            }
        }
    }
    *c = [0; 16];
}

/// Adds a DC-only 4×4 residual ((dc + 32) >> 6 everywhere) and clears `c`.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
#[inline]
pub(crate) fn dc4_add(dst: &mut [u8], off: usize, stride: usize, c: &mut [i32; 16]) {
    let dc = (c[0] + 32) >> 6;
    // clamp(px + dc, 0, 255) as one saturating byte add or subtract per row (vectorises).
    let amount = dc.unsigned_abs().min(255) as u8;
    for y in 0..4 {
        if let Some(row) = dst
            .get_mut(off + y * stride..)
            .and_then(|r| r.first_chunk_mut::<4>())
        {
            *row = if dc >= 0 {
                row.map(|px| px.saturating_add(amount))
            } else {
                row.map(|px| px.saturating_sub(amount))
            };
        }
    }
    c[0] = 0;
}

/// One 8-point inverse transform (§8.5.13.2, eq. 8-338 to 8-361).
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
#[inline(always)]
fn idct8_1d(d: [i32; 8]) -> [i32; 8] {
    let a0 = d[0] + d[4];
    let a4 = d[0] - d[4];
    let a2 = (d[2] >> 1) - d[6];
    let a6 = d[2] + (d[6] >> 1);
    let b0 = a0 + a6;
    let b2 = a4 + a2;
    let b4 = a4 - a2;
    let b6 = a0 - a6;
    let a1 = -d[3] + d[5] - d[7] - (d[7] >> 1);
    let a3 = d[1] + d[7] - d[3] - (d[3] >> 1);
    let a5 = -d[1] + d[7] + d[5] + (d[5] >> 1);
    let a7 = d[3] + d[5] + d[1] + (d[1] >> 1);
    let b1 = a1 + (a7 >> 2);
    let b7 = a7 - (a1 >> 2);
    let b3 = a3 + (a5 >> 2);
    let b5 = (a3 >> 2) - a5;
    [
        b0 + b7,
        b2 + b5,
        b4 + b3,
        b6 + b1,
        b6 - b1,
        b4 - b3,
        b2 - b5,
        b0 - b7,
    ]
}

/// Adds the 8×8 inverse transform of `c` (raster) to an 8×8 block of `dst`, then clears `c`.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
pub(crate) fn idct8_add(dst: &mut [u8], off: usize, stride: usize, c: &mut [i32; 64]) {
    let mut t = [0i32; 64];
    for i in 0..8 {
        let mut row = [0i32; 8];
        row.copy_from_slice(&c[i * 8..i * 8 + 8]);
        t[i * 8..i * 8 + 8].copy_from_slice(&idct8_1d(row));
    }
    for j in 0..8 {
        let col = std::array::from_fn(|i| t[i * 8 + j]);
        let out = idct8_1d(col);
        for (i, v) in out.iter().enumerate() {
            t[i * 8 + j] = *v;
        }
    }
    for y in 0..8 {
        if let Some(row) = dst.get_mut(off + y * stride..off + y * stride + 8) {
            for (x, px) in row.iter_mut().enumerate() {
                *px = (i32::from(*px) + ((t[y * 8 + x] + 32) >> 6)).clamp(0, 255) as u8;
            }
        }
    }
    *c = [0; 64];
}

/// Writes an N×N block held row after row (`NN` = N × N bytes) into `dst` at `off`.
#[inline]
pub(crate) fn put_flat<const N: usize, const NN: usize>(
    dst: &mut [u8],
    off: usize,
    stride: usize,
    block: &[u8; NN],
) {
    for (y, row) in block.chunks_exact(N).enumerate() {
        if let Some(d) = dst.get_mut(off + y * stride..off + y * stride + N) {
            d.copy_from_slice(row);
        }
    }
}

/// Writes an N×N block into `dst` at `off`.
#[inline]
pub(crate) fn put<const N: usize>(dst: &mut [u8], off: usize, stride: usize, block: &[[u8; N]; N]) {
    for (y, row) in block.iter().enumerate() {
        if let Some(d) = dst.get_mut(off + y * stride..off + y * stride + N) {
            d.copy_from_slice(row);
        }
    }
}
