//! Intra 4×4 and 8×8 prediction (§8.3.1.2, §8.3.2.2) as table lookups.
//!
//! Every directional mode predicts each sample as one of three things computed from the line of
//! reference samples: the sample itself, the rounded average of two neighbours on the line, or
//! the (1, 2, 1) filter centred on a sample. So the line is laid out once, its 2-tap and 3-tap
//! values are computed for the whole line at once (vector arithmetic), and the block is a
//! gather through a per-mode table built at compile time from the spec's formulas. No
//! per-sample branches remain; in wasm the 4×4 gather is three byte swizzles.
//!
//! The line of an N×N block (`W` bytes, 16 for N = 4, 32 for N = 8):
//!
//! ```text
//! index:  0        1 ..= N             N+1     N+2 ..= 3N+1           3N+2
//! sample: p[-1,N-1] p[-1,N-1] .. p[-1,0] p[-1,-1] p[0,-1] .. p[2N-1,-1] p[2N-1,-1]
//! ```
//!
//! The repeated end samples make the spec's special cases at the ends (`(a + 3b + 2) >> 2`, a
//! plain `p[-1, N-1]`) fall out of the ordinary filters.

/// Offset of the 2-tap averages `(s[i] + s[i + 1] + 1) >> 1` in a table entry's source space.
const F2: u8 = 32;
/// Offset of the 3-tap filter `(s[i - 1] + 2 s[i] + s[i + 1] + 2) >> 2`.
const F3: u8 = 64;

/// The source of sample (x, y) of an N×N block in mode `mode` (Tables 8-2, 8-3): an index into
/// the line (0..32), its 2-tap averages (32..64) or its 3-tap values (64..96). DC (mode 2) is
/// not a lookup; its entries are 0.
const fn source(n: i32, mode: u8, x: i32, y: i32) -> u8 {
    // Line positions: p[x, -1] at n + 2 + x, p[-1, y] at n - y (p[-1, -1] at n + 1).
    let (base, at) = match mode {
        0 => (0, n + 2 + x),
        1 => (0, n - y),
        3 => (F3, n + 3 + x + y),
        4 => (F3, n + 1 + x - y),
        5 => {
            let z = 2 * x - y;
            if z >= 0 && z & 1 == 0 {
                (F2, n + 1 + x - (y >> 1))
            } else if z >= 0 {
                (F3, n + 1 + x - (y >> 1))
            } else if z == -1 {
                (F3, n + 1)
            } else {
                (F3, n + 2 + 2 * x - y)
            }
        }
        6 => {
            let z = 2 * y - x;
            if z >= 0 && z & 1 == 0 {
                (F2, n - y + (x >> 1))
            } else if z >= 0 {
                (F3, n - y + (x >> 1) + 1)
            } else if z == -1 {
                (F3, n + 1)
            } else {
                (F3, n + x - 2 * y)
            }
        }
        7 => {
            let i = x + (y >> 1);
            if y & 1 == 0 {
                (F2, n + 2 + i)
            } else {
                (F3, n + 3 + i)
            }
        }
        8 => {
            let z = x + 2 * y;
            let i = y + (x >> 1);
            if z > 2 * n - 3 {
                // p[-1, N-1]: the average of it and its repeat at index 0.
                (F2, 0)
            } else if z == 2 * n - 3 {
                (F3, 1)
            } else if z & 1 == 0 {
                (F2, n - i - 1)
            } else {
                (F3, n - i - 1)
            }
        }
        _ => (0, 0),
    };
    base + at as u8
}

const fn table<const NN: usize>(n: usize, mode: u8) -> [u8; NN] {
    let mut t = [0u8; NN];
    let mut i = 0;
    while i < NN {
        t[i] = source(n as i32, mode, (i % n) as i32, (i / n) as i32);
        i += 1;
    }
    t
}

const fn tables<const NN: usize>(n: usize) -> [[u8; NN]; 9] {
    let mut t = [[0u8; NN]; 9];
    let mut m = 0;
    while m < 9 {
        t[m] = table::<NN>(n, m as u8);
        m += 1;
    }
    t
}

static TABLE4: [[u8; 16]; 9] = tables::<16>(4);
static TABLE8: [[u8; 64]; 9] = tables::<64>(8);

/// Which reference samples of a block are available.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avail {
    pub(crate) top: bool,
    pub(crate) left: bool,
    pub(crate) corner: bool,
    /// The top-right N samples (else p[N-1, -1] stands in for them).
    pub(crate) top_right: bool,
}

impl Avail {
    /// Whether mode `mode` has the samples it reads.
    fn allows(self, mode: u8) -> bool {
        match mode {
            0 | 3 | 7 => self.top,
            1 | 8 => self.left,
            2 => true,
            4..=6 => self.top && self.left && self.corner,
            _ => false,
        }
    }
}

/// Lays out the reference samples of the N×N block at `off` (see the module comment).
/// Unavailable samples are left 0; no mode that is allowed reads them.
#[inline(always)]
fn line<const W: usize, const N: usize>(
    plane: &[u8],
    off: usize,
    stride: usize,
    av: Avail,
) -> [u8; W] {
    let mut s = [0u8; W];
    if av.top
        && let Some(above) = off.checked_sub(stride)
    {
        let top = &mut s[N + 2..3 * N + 2];
        let row = plane.get(above..).unwrap_or_default();
        if av.top_right && row.len() >= 2 * N {
            top.copy_from_slice(&row[..2 * N]);
        } else if row.len() >= N {
            // The top-right samples are unavailable (or would lie past the plane).
            top[..N].copy_from_slice(&row[..N]);
            let last = row[N - 1];
            top[N..].fill(last);
        }
        s[3 * N + 2] = s[3 * N + 1];
    }
    if av.left {
        for y in 0..N {
            s[N - y] = off
                .checked_add(y * stride)
                .and_then(|p| p.checked_sub(1))
                .and_then(|p| plane.get(p))
                .copied()
                .unwrap_or(128);
        }
        s[0] = s[1];
    }
    if av.corner
        && let Some(p) = off.checked_sub(stride + 1)
    {
        s[N + 1] = plane.get(p).copied().unwrap_or(128);
    }
    s
}

/// The 2-tap averages and 3-tap values of a line (the ends, which no table reads, wrap).
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
#[inline(always)]
fn taps<const W: usize>(s: &[u8; W]) -> ([u8; W], [u8; W]) {
    let mut f2 = [0u8; W];
    let mut f3 = [0u8; W];
    for i in 0..W {
        let prev = u16::from(s[(i + W - 1) % W]);
        let cur = u16::from(s[i]);
        let next = u16::from(s[(i + 1) % W]);
        f2[i] = ((cur + next + 1) >> 1) as u8;
        f3[i] = ((prev + 2 * cur + next + 2) >> 2) as u8;
    }
    (f2, f3)
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use core::arch::wasm32::*;

    #[inline(always)]
    pub(super) fn load(b: &[u8; 16]) -> v128 {
        let (lo, hi) = b.split_at(8);
        u64x2(
            u64::from_le_bytes(lo.try_into().unwrap_or_default()),
            u64::from_le_bytes(hi.try_into().unwrap_or_default()),
        )
    }

    #[inline(always)]
    pub(super) fn store(v: v128) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&u64x2_extract_lane::<0>(v).to_le_bytes());
        b[8..].copy_from_slice(&u64x2_extract_lane::<1>(v).to_le_bytes());
        b
    }

    /// `(prev + 2 cur + next + 2) >> 2` exactly, in bytes: the floor average of the outer two
    /// (their rounded average less the odd bit), then rounded with the centre.
    #[inline(always)]
    pub(super) fn tap3(prev: v128, cur: v128, next: v128) -> v128 {
        let odd = v128_and(v128_xor(prev, next), u8x16_splat(1));
        u8x16_avgr(cur, u8x16_sub(u8x16_avgr(prev, next), odd))
    }

    /// The 2-tap and 3-tap values of a 16-byte line (lanes at the ends, unread, use zeros).
    #[inline(always)]
    pub(super) fn taps16(s: v128) -> (v128, v128) {
        let z = u8x16_splat(0);
        let next = i8x16_shuffle::<1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16>(s, z);
        let prev = i8x16_shuffle::<31, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14>(s, z);
        (u8x16_avgr(s, next), tap3(prev, s, next))
    }

    /// The same over a 32-byte line held as two vectors.
    #[inline(always)]
    pub(super) fn taps32(lo: v128, hi: v128) -> [v128; 4] {
        let z = u8x16_splat(0);
        let next_lo =
            i8x16_shuffle::<1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16>(lo, hi);
        let next_hi = i8x16_shuffle::<1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16>(hi, z);
        let prev_lo = i8x16_shuffle::<31, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14>(lo, z);
        let prev_hi =
            i8x16_shuffle::<15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30>(lo, hi);
        [
            u8x16_avgr(lo, next_lo),
            u8x16_avgr(hi, next_hi),
            tap3(prev_lo, lo, next_lo),
            tap3(prev_hi, hi, next_hi),
        ]
    }

    /// Per table byte, its index within the 16-byte source vector `base..base + 16`: entries of
    /// other sources come out at 16 or more (below `base` they wrap past 160), and a swizzle
    /// gives 0 for those.
    #[inline(always)]
    pub(super) fn select(t: v128, base: u8) -> v128 {
        u8x16_sub(t, u8x16_splat(base))
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn taps<const W: usize>(s: &[u8; W]) -> ([u8; W], [u8; W]) {
    use core::arch::wasm32::*;
    let half = |at: usize| {
        s.get(at..at + 16)
            .and_then(|c| c.try_into().ok())
            .map_or(u8x16_splat(0), simd::load)
    };
    let [f2_lo, f2_hi, f3_lo, f3_hi] = simd::taps32(half(0), half(16));
    let mut f2 = [0u8; W];
    let mut f3 = [0u8; W];
    for (k, (a, b)) in [(f2_lo, f3_lo), (f2_hi, f3_hi)].into_iter().enumerate() {
        if let (Some(d2), Some(d3)) = (
            f2.get_mut(k * 16..k * 16 + 16),
            f3.get_mut(k * 16..k * 16 + 16),
        ) {
            d2.copy_from_slice(&simd::store(a));
            d3.copy_from_slice(&simd::store(b));
        }
    }
    (f2, f3)
}

/// The DC prediction value (eq. 8-48 to 8-51, 8-81 to 8-84).
#[inline(always)]
fn dc<const W: usize, const N: usize>(s: &[u8; W], av: Avail) -> u8 {
    let shift = if N == 4 { 2 } else { 3 };
    let st: u32 = s[N + 2..2 * N + 2].iter().map(|&v| u32::from(v)).sum();
    let sl: u32 = s[1..=N].iter().map(|&v| u32::from(v)).sum();
    let n = N as u32;
    (match (av.top, av.left) {
        (true, true) => (st + sl + n) >> (shift + 1),
        (true, false) => (st + n / 2) >> shift,
        (false, true) => (sl + n / 2) >> shift,
        (false, false) => 128,
    }) as u8
}

/// Intra 4×4 prediction of mode `mode` of the block at `off` (raster 4×4 bytes); `None` when
/// the mode needs samples that are not available.
#[inline]
pub(crate) fn pred4(
    plane: &[u8],
    off: usize,
    stride: usize,
    av: Avail,
    mode: u8,
) -> Option<[u8; 16]> {
    if !av.allows(mode) {
        return None;
    }
    let s = line::<16, 4>(plane, off, stride, av);
    if mode == 2 {
        return Some([dc::<16, 4>(&s, av); 16]);
    }
    let t = &TABLE4[usize::from(mode)];
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        use core::arch::wasm32::*;
        let v = simd::load(&s);
        let (f2, f3) = simd::taps16(v);
        let t = simd::load(t);
        let out = v128_or(
            v128_or(
                i8x16_swizzle(v, simd::select(t, 0)),
                i8x16_swizzle(f2, simd::select(t, F2)),
            ),
            i8x16_swizzle(f3, simd::select(t, F3)),
        );
        Some(simd::store(out))
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        let (f2, f3) = taps(&s);
        Some(gather(&s, &f2, &f3, t))
    }
}

/// Looks every table entry up in (line, 2-tap, 3-tap).
#[inline(always)]
fn gather<const W: usize, const NN: usize>(
    s: &[u8; W],
    f2: &[u8; W],
    f3: &[u8; W],
    t: &[u8; NN],
) -> [u8; NN] {
    let mut src = [0u8; 96];
    src[..W].copy_from_slice(s);
    src[32..32 + W].copy_from_slice(f2);
    src[64..64 + W].copy_from_slice(f3);
    t.map(|i| src[usize::from(i) % 96])
}

/// The 8×8 reference sample filter (§8.3.2.2.1) on a laid-out line.
#[inline(always)]
fn filter8(s: &[u8; 32], f3: &[u8; 32], av: Avail) -> [u8; 32] {
    let mut out = *f3;
    let at = |i: usize| u16::from(s[i]);
    // The line's 3-tap value is the filter everywhere except beside a missing neighbour.
    if !av.corner {
        // p'[0, -1] and p'[-1, 0] (3 a + b + 2) >> 2 against their own next sample.
        out[10] = ((3 * at(10) + at(11) + 2) >> 2) as u8;
        out[8] = ((3 * at(8) + at(7) + 2) >> 2) as u8;
    } else if !av.top {
        out[9] = ((3 * at(9) + at(8) + 2) >> 2) as u8;
    } else if !av.left {
        out[9] = ((3 * at(9) + at(10) + 2) >> 2) as u8;
    }
    // The repeated ends (p'[-1, 7] and p'[15, -1]).
    out[0] = out[1];
    out[26] = out[25];
    out[27..].fill(0);
    out
}

/// Intra 8×8 prediction (filtered reference samples) of the block at `off` (raster 8×8 bytes);
/// `None` when the mode needs samples that are not available.
#[inline]
pub(crate) fn pred8(
    plane: &[u8],
    off: usize,
    stride: usize,
    av: Avail,
    mode: u8,
) -> Option<[u8; 64]> {
    if !av.allows(mode) {
        return None;
    }
    let raw = line::<32, 8>(plane, off, stride, av);
    let (_, f3) = taps(&raw);
    let s = filter8(&raw, &f3, av);
    if mode == 2 {
        return Some([dc::<32, 8>(&s, av); 64]);
    }
    let (f2, f3) = taps(&s);
    Some(gather(&s, &f2, &f3, &TABLE8[usize::from(mode)]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::{self, Edges};
    use proptest::prelude::*;

    /// The spec-form reference: the samples gathered as `Edges` and predicted by `dsp`.
    fn reference<const N2: usize, const N: usize, const NN: usize>(
        plane: &[u8],
        off: usize,
        stride: usize,
        av: Avail,
        mode: u8,
    ) -> Option<[u8; NN]> {
        let mut e = Edges::<N2, N> {
            top: [0; N2],
            left: [0; N],
            corner: 0,
            has_top: av.top,
            has_left: av.left,
            has_corner: av.corner,
        };
        if av.top {
            for (x, t) in e.top.iter_mut().enumerate() {
                let x = if av.top_right { x } else { x.min(N - 1) };
                *t = i32::from(plane[off - stride + x]);
            }
        }
        if av.left {
            for y in 0..N {
                e.left[y] = i32::from(plane[off + y * stride - 1]);
            }
        }
        if av.corner {
            e.corner = i32::from(plane[off - stride - 1]);
        }
        if N == 8 {
            e = e.filtered();
        }
        let mut block = [[0u8; N]; N];
        if !dsp::pred_nxn(&e, mode, &mut block) {
            return None;
        }
        let mut out = [0u8; NN];
        for (y, row) in block.iter().enumerate() {
            out[y * N..y * N + N].copy_from_slice(row);
        }
        Some(out)
    }

    fn avail() -> impl Strategy<Value = Avail> {
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
            |(top, left, corner, top_right)| Avail {
                top,
                left,
                corner,
                top_right: top_right && top,
            },
        )
    }

    const STRIDE: usize = 40;
    const OFF: usize = STRIDE + 1;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn pred4_is_the_spec(
            plane in proptest::collection::vec(any::<u8>(), STRIDE * 9),
            av in avail(),
            mode in 0u8..10,
        ) {
            let ours = pred4(&plane, OFF, STRIDE, av, mode);
            let spec = reference::<8, 4, 16>(&plane, OFF, STRIDE, av, mode);
            prop_assert_eq!(ours, spec);
        }

        #[test]
        fn pred8_is_the_spec(
            plane in proptest::collection::vec(any::<u8>(), STRIDE * 9),
            av in avail(),
            mode in 0u8..10,
        ) {
            let ours = pred8(&plane, OFF, STRIDE, av, mode);
            let spec = reference::<16, 8, 64>(&plane, OFF, STRIDE, av, mode);
            prop_assert_eq!(ours, spec);
        }

        #[test]
        fn extreme_samples(
            bits in proptest::collection::vec(any::<bool>(), STRIDE * 9),
            av in avail(),
            mode in 0u8..9,
        ) {
            // Only 0 and 255: the rounding of the averages at their limits.
            let plane: Vec<u8> = bits.iter().map(|&b| if b { 255 } else { 0 }).collect();
            prop_assert_eq!(
                pred4(&plane, OFF, STRIDE, av, mode),
                reference::<8, 4, 16>(&plane, OFF, STRIDE, av, mode)
            );
            prop_assert_eq!(
                pred8(&plane, OFF, STRIDE, av, mode),
                reference::<16, 8, 64>(&plane, OFF, STRIDE, av, mode)
            );
        }
    }
}
