//! Forward DCT and quantisation of 8×8 blocks, written as loops over 8 independent lanes so that
//! the compiler turns each step into SIMD (two i32x4 vectors per row under wasm `simd128`, SSE2
//! or AVX2 natively).
//!
//! The transform is the accurate integer design of Loeffler, Ligtenberg and Moschytz (ICASSP
//! 1989: 12 multiplies, 32 adds per 1-D DCT), in the fixed-point form libjpeg calls "islow":
//! 13-bit constants, 2 extra bits of precision kept between the passes, rows first. Its output is
//! 8 × the orthonormal 2-D DCT-II, which the quantiser divides by 8·Q. There is one
//! implementation and it is integer arithmetic only, so native and wasm builds produce the same
//! coefficients bit for bit; no `core::arch` intrinsics are needed for the vectorisation.

#![expect(
    clippy::needless_range_loop,
    reason = "lane loops index several arrays by the same lane: the shape the vectoriser wants"
)]

/// An 8×8 block of samples or coefficients: `block[i]` is one 8-lane vector.
pub type Block = [[i32; 8]; 8];

/// Bits of the fixed-point multipliers.
const CONST_BITS: u32 = 13;
/// Extra fractional bits kept between the two passes.
const PASS1_BITS: u32 = 2;

/// `round(x · 2^13)` of the rotation constants of the LL&M flowgraph, named by their value; each
/// is √2 times a sum of `c_k = cos(kπ/16)` (checked in `constants_are_the_rounded_rotations`).
const C_0_298: i32 = 2446;
const C_0_390: i32 = 3196;
const C_0_541: i32 = 4433;
const C_0_765: i32 = 6270;
const C_0_899: i32 = 7373;
const C_1_175: i32 = 9633;
const C_1_501: i32 = 12299;
const C_1_847: i32 = 15137;
const C_1_961: i32 = 16069;
const C_2_053: i32 = 16819;
const C_2_562: i32 = 20995;
const C_3_072: i32 = 25172;

/// Arithmetic right shift by `n` with rounding (round half up).
#[inline(always)]
fn descale(x: i32, n: u32) -> i32 {
    (x + (1 << (n - 1))) >> n
}

/// One 1-D DCT along the first index of `b`, on all 8 lanes at once. `pass1` keeps
/// [`PASS1_BITS`] of extra precision; the second pass removes it and the 3 bits of the even
/// part's scaling, leaving 8 × the orthonormal coefficients.
#[inline(always)]
fn pass(b: &mut Block, pass1: bool) {
    let (even_shift, odd_shift) = if pass1 {
        (0, CONST_BITS - PASS1_BITS)
    } else {
        (PASS1_BITS, CONST_BITS + PASS1_BITS)
    };
    let even = |x: i32| {
        if pass1 {
            x << PASS1_BITS
        } else {
            descale(x, even_shift)
        }
    };
    for l in 0..8 {
        let [d0, d1, d2, d3, d4, d5, d6, d7] = [
            b[0][l], b[1][l], b[2][l], b[3][l], b[4][l], b[5][l], b[6][l], b[7][l],
        ];
        let (t0, t7) = (d0 + d7, d0 - d7);
        let (t1, t6) = (d1 + d6, d1 - d6);
        let (t2, t5) = (d2 + d5, d2 - d5);
        let (t3, t4) = (d3 + d4, d3 - d4);

        // Even part: a 4-point DCT of the sums.
        let (t10, t13) = (t0 + t3, t0 - t3);
        let (t11, t12) = (t1 + t2, t1 - t2);
        b[0][l] = even(t10 + t11);
        b[4][l] = even(t10 - t11);
        let z1 = (t12 + t13) * C_0_541;
        b[2][l] = descale(z1 + t13 * C_0_765, odd_shift);
        b[6][l] = descale(z1 - t12 * C_1_847, odd_shift);

        // Odd part: the rotations of the differences (LL&M Figure 1, lower half).
        let z5 = (t4 + t5 + t6 + t7) * C_1_175;
        let z1 = (t4 + t7) * -C_0_899;
        let z2 = (t5 + t6) * -C_2_562;
        let z3 = (t4 + t6) * -C_1_961 + z5;
        let z4 = (t5 + t7) * -C_0_390 + z5;
        b[7][l] = descale(t4 * C_0_298 + z1 + z3, odd_shift);
        b[5][l] = descale(t5 * C_2_053 + z2 + z4, odd_shift);
        b[3][l] = descale(t6 * C_3_072 + z2 + z3, odd_shift);
        b[1][l] = descale(t7 * C_1_501 + z1 + z4, odd_shift);
    }
}

/// Swaps `b[i][j]` with `b[j][i]`.
#[inline(always)]
fn transpose(b: &mut Block) {
    for i in 0..8 {
        for j in i + 1..8 {
            let t = b[i][j];
            b[i][j] = b[j][i];
            b[j][i] = t;
        }
    }
}

/// The forward DCT of level-shifted samples given transposed (`b[x][y]`, the sample of column
/// `x`, row `y`), in place. On return `b[u][v]` holds 8 × the coefficient of vertical
/// frequency `u` and horizontal frequency `v` (natural order).
pub fn forward(b: &mut Block) {
    // Rows first: with the block transposed, the lanes are the rows.
    pass(b, true);
    transpose(b);
    pass(b, false);
}

/// Fixed shift of the quantiser's reciprocals.
const RECIP_SHIFT: u32 = 21;

/// A quantisation table prepared for [`quantise`]: per coefficient (natural order) the step `q`
/// and `ceil(2^21 / q)`.
#[derive(Debug, Clone)]
pub struct Quantiser {
    step: [[i32; 8]; 8],
    recip: [[i32; 8]; 8],
    /// `4 · step` and `recip` as vectors of four (row `u`, half `h` at `2u + h`), for wasm.
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    lanes: [(core::arch::wasm32::v128, core::arch::wasm32::v128); 16],
}

impl Quantiser {
    /// The quantiser of a table of steps in natural order (each 1..=255).
    pub fn new(table: &[u8; 64]) -> Quantiser {
        let mut step = [[1; 8]; 8];
        let mut recip = [[0; 8]; 8];
        for (i, &q) in table.iter().enumerate() {
            let q = i32::from(q.max(1));
            step[i / 8][i % 8] = q;
            recip[i / 8][i % 8] = ((1 << RECIP_SHIFT) + q - 1) / q;
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        let lanes = std::array::from_fn(|k| {
            use core::arch::wasm32::i32x4;
            let (u, at) = (k / 2, (k % 2) * 4);
            let (s, r) = (&step[u], &recip[u]);
            (
                i32x4(4 * s[at], 4 * s[at + 1], 4 * s[at + 2], 4 * s[at + 3]),
                i32x4(r[at], r[at + 1], r[at + 2], r[at + 3]),
            )
        });
        Quantiser {
            step,
            recip,
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            lanes,
        }
    }
}

/// Largest magnitude the quantiser accepts; [`forward`] never exceeds 8 · 1024 plus rounding.
const MAX_MAGNITUDE: i32 = 1 << 15;

/// A quantised block in natural order as 16-bit lanes, four to a word (coefficient `n` in bits
/// `16 (n % 4)..` of word `n / 4`): the layout of eight 128-bit vectors, so the SIMD path stores
/// and loads whole vectors, with no unsafe code and no byte-by-byte copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Coefs(pub [u64; 16]);

impl Coefs {
    /// A block with only a DC coefficient.
    pub fn dc_only(dc: i32) -> Coefs {
        let mut c = Coefs::default();
        c.0[0] = u64::from(dc as i16 as u16);
        c
    }

    /// Coefficient `n` (natural order, 0..64).
    #[inline(always)]
    pub fn get(&self, n: usize) -> i32 {
        let word = self.0.get(n / 4).copied().unwrap_or(0);
        i32::from((word >> (16 * (n % 4))) as u16 as i16)
    }

    /// Row `u` (coefficients `8u..8u+8`) from eight values that fit 16 bits.
    #[inline(always)]
    fn set_row(&mut self, u: usize, row: &[i32; 8]) {
        let pack = |r: &[i32]| {
            r.iter()
                .rev()
                .fold(0u64, |acc, &v| (acc << 16) | u64::from(v as i16 as u16))
        };
        self.0[2 * u] = pack(&row[..4]);
        self.0[2 * u + 1] = pack(&row[4..]);
    }

    /// The coefficients as a natural-order block (tests).
    #[cfg(test)]
    pub fn to_block(self) -> Block {
        std::array::from_fn(|u| std::array::from_fn(|v| self.get(8 * u + v)))
    }
}

/// Divides the [`forward`] output by 8·q, rounding half away from zero (libjpeg's `quantize`),
/// into `out`.
///
/// `(|c| + 4q) / 8q` is computed as `floor(n / q)` with `n = (|c| + 4q) >> 3` (floor division
/// nests), then `floor(n / q) = (n · ceil(2^21 / q)) >> 21`: exact because `n < 2^13` and the
/// reciprocal's excess `e = ceil(2^21/q)·q − 2^21 < q ≤ 255` gives `n · e < 2^21`
/// (tested exhaustively below). The product needs up to 34 bits (`n < 2^13`, reciprocal ≤ 2^21),
/// so it is formed in 64 (wasm `i64x2.extmul_*_i32x4` when vectorised). Quotients are below
/// 2^13 in magnitude, so they fit [`Coefs`]' 16-bit lanes.
pub fn quantise(b: &Block, quantiser: &Quantiser, out: &mut Coefs) {
    for (u, row) in b.iter().enumerate() {
        let q: [i32; 8] = std::array::from_fn(|v| {
            quantise_one(row[v], quantiser.step[u][v], quantiser.recip[u][v])
        });
        out.set_row(u, &q);
    }
}

/// One coefficient of [`quantise`].
#[inline(always)]
fn quantise_one(c: i32, step: i32, recip: i32) -> i32 {
    let n = (c.abs().min(MAX_MAGNITUDE) + 4 * step) >> 3;
    let quotient = ((i64::from(n) * i64::from(recip)) >> RECIP_SHIFT) as i32;
    if c < 0 { -quotient } else { quotient }
}

/// Load, forward DCT and quantisation of one 8×8 block lying wholly inside its plane, in wasm
/// SIMD128 with the block held in registers: the same integer arithmetic as [`forward`] followed
/// by [`quantise`], step for step (so the same coefficients). The rows are loaded as bytes and
/// transposed as 16-bit lanes, each pass works on eight pairs of i32x4 vectors, and the block is
/// transposed once more (as i32) between the passes. `None` if a row is out of bounds.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub fn block_simd(
    samples: &[u8],
    at: usize,
    stride: usize,
    quantiser: &Quantiser,
    out: &mut Coefs,
) -> Option<()> {
    use core::arch::wasm32::*;
    let row = |y: usize| -> Option<v128> {
        let bytes = samples.get(at + y * stride..)?.first_chunk::<8>()?;
        let v = u16x8_extend_low_u8x16(u64x2(u64::from_le_bytes(*bytes), 0));
        Some(i16x8_sub(v, i16x8_splat(128)))
    };
    let (r0, r1, r2, r3) = (row(0)?, row(1)?, row(2)?, row(3)?);
    let (r4, r5, r6, r7) = (row(4)?, row(5)?, row(6)?, row(7)?);
    // 8×8 transpose of 16-bit lanes: rows in, columns out.
    let a0 = i16x8_shuffle::<0, 8, 1, 9, 2, 10, 3, 11>(r0, r1);
    let a1 = i16x8_shuffle::<4, 12, 5, 13, 6, 14, 7, 15>(r0, r1);
    let a2 = i16x8_shuffle::<0, 8, 1, 9, 2, 10, 3, 11>(r2, r3);
    let a3 = i16x8_shuffle::<4, 12, 5, 13, 6, 14, 7, 15>(r2, r3);
    let a4 = i16x8_shuffle::<0, 8, 1, 9, 2, 10, 3, 11>(r4, r5);
    let a5 = i16x8_shuffle::<4, 12, 5, 13, 6, 14, 7, 15>(r4, r5);
    let a6 = i16x8_shuffle::<0, 8, 1, 9, 2, 10, 3, 11>(r6, r7);
    let a7 = i16x8_shuffle::<4, 12, 5, 13, 6, 14, 7, 15>(r6, r7);
    let b0 = i32x4_shuffle::<0, 4, 1, 5>(a0, a2);
    let b1 = i32x4_shuffle::<2, 6, 3, 7>(a0, a2);
    let b2 = i32x4_shuffle::<0, 4, 1, 5>(a1, a3);
    let b3 = i32x4_shuffle::<2, 6, 3, 7>(a1, a3);
    let b4 = i32x4_shuffle::<0, 4, 1, 5>(a4, a6);
    let b5 = i32x4_shuffle::<2, 6, 3, 7>(a4, a6);
    let b6 = i32x4_shuffle::<0, 4, 1, 5>(a5, a7);
    let b7 = i32x4_shuffle::<2, 6, 3, 7>(a5, a7);
    let columns = [
        i64x2_shuffle::<0, 2>(b0, b4),
        i64x2_shuffle::<1, 3>(b0, b4),
        i64x2_shuffle::<0, 2>(b1, b5),
        i64x2_shuffle::<1, 3>(b1, b5),
        i64x2_shuffle::<0, 2>(b2, b6),
        i64x2_shuffle::<1, 3>(b2, b6),
        i64x2_shuffle::<0, 2>(b3, b7),
        i64x2_shuffle::<1, 3>(b3, b7),
    ];
    // Pass 1 along x (lanes: rows 0..4, then 4..8: one half at a time keeps fewer vectors live).
    let p_lo = pass_simd(columns.map(|c| i32x4_extend_low_i16x8(c)), true);
    let p_hi = pass_simd(columns.map(|c| i32x4_extend_high_i16x8(c)), true);
    // Transpose as i32: p[v] lanes y -> q[y] lanes v.
    let t00 = transpose4(p_lo[0], p_lo[1], p_lo[2], p_lo[3]);
    let t10 = transpose4(p_hi[0], p_hi[1], p_hi[2], p_hi[3]);
    let t01 = transpose4(p_lo[4], p_lo[5], p_lo[6], p_lo[7]);
    let t11 = transpose4(p_hi[4], p_hi[5], p_hi[6], p_hi[7]);
    let q_lo = [
        t00[0], t00[1], t00[2], t00[3], t10[0], t10[1], t10[2], t10[3],
    ];
    // Pass 2 along y (lanes: frequencies v 0..4 and 4..8), quantised and narrowed to 16 bits
    // (the quotients fit), row `u` of the output as one vector.
    let c_lo = pass_simd(q_lo, false);
    let q_hi = [
        t01[0], t01[1], t01[2], t01[3], t11[0], t11[1], t11[2], t11[3],
    ];
    let c_hi = pass_simd(q_hi, false);
    for u in 0..8 {
        let q0 = quantise4(c_lo[u], quantiser.lanes[2 * u]);
        let q1 = quantise4(c_hi[u], quantiser.lanes[2 * u + 1]);
        let row = i16x8_narrow_i32x4(q0, q1);
        out.0[2 * u] = u64x2_extract_lane::<0>(row);
        out.0[2 * u + 1] = u64x2_extract_lane::<1>(row);
    }
    Some(())
}

/// Transposes a 4×4 block of i32 lanes.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn transpose4(
    r0: core::arch::wasm32::v128,
    r1: core::arch::wasm32::v128,
    r2: core::arch::wasm32::v128,
    r3: core::arch::wasm32::v128,
) -> [core::arch::wasm32::v128; 4] {
    use core::arch::wasm32::*;
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

/// [`pass`] on four lanes held in vectors: `d[i]` is input position `i`, the result output
/// position `i`.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn pass_simd(d: [core::arch::wasm32::v128; 8], pass1: bool) -> [core::arch::wasm32::v128; 8] {
    use core::arch::wasm32::*;
    let (even_shift, odd_shift) = if pass1 {
        (0, CONST_BITS - PASS1_BITS)
    } else {
        (PASS1_BITS, CONST_BITS + PASS1_BITS)
    };
    let descale = |x: v128, n: u32| i32x4_shr(i32x4_add(x, i32x4_splat(1 << (n - 1))), n);
    let even = |x: v128| {
        if pass1 {
            i32x4_shl(x, PASS1_BITS)
        } else {
            descale(x, even_shift)
        }
    };
    let k = i32x4_splat;
    let (add, sub, mul) = (i32x4_add, i32x4_sub, i32x4_mul);
    let (t0, t7) = (add(d[0], d[7]), sub(d[0], d[7]));
    let (t1, t6) = (add(d[1], d[6]), sub(d[1], d[6]));
    let (t2, t5) = (add(d[2], d[5]), sub(d[2], d[5]));
    let (t3, t4) = (add(d[3], d[4]), sub(d[3], d[4]));
    let (t10, t13) = (add(t0, t3), sub(t0, t3));
    let (t11, t12) = (add(t1, t2), sub(t1, t2));
    let z1 = mul(add(t12, t13), k(C_0_541));
    let out0 = even(add(t10, t11));
    let out4 = even(sub(t10, t11));
    let out2 = descale(add(z1, mul(t13, k(C_0_765))), odd_shift);
    let out6 = descale(sub(z1, mul(t12, k(C_1_847))), odd_shift);
    let z5 = mul(add(add(t4, t5), add(t6, t7)), k(C_1_175));
    let z1 = mul(add(t4, t7), k(-C_0_899));
    let z2 = mul(add(t5, t6), k(-C_2_562));
    let z3 = add(mul(add(t4, t6), k(-C_1_961)), z5);
    let z4 = add(mul(add(t5, t7), k(-C_0_390)), z5);
    let out7 = descale(add(add(mul(t4, k(C_0_298)), z1), z3), odd_shift);
    let out5 = descale(add(add(mul(t5, k(C_2_053)), z2), z4), odd_shift);
    let out3 = descale(add(add(mul(t6, k(C_3_072)), z2), z3), odd_shift);
    let out1 = descale(add(add(mul(t7, k(C_1_501)), z1), z4), odd_shift);
    [out0, out1, out2, out3, out4, out5, out6, out7]
}

/// [`quantise`] of four coefficients, given `4 · step` and the reciprocals of their positions.
/// The product `n · recip` is not negative, so its shift is the logical one (x86 has no 64-bit
/// arithmetic shift in SSE; wasm's `i64x2.shr_s` costs a sequence there).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn quantise4(
    c: core::arch::wasm32::v128,
    (step4, recip): (core::arch::wasm32::v128, core::arch::wasm32::v128),
) -> core::arch::wasm32::v128 {
    use core::arch::wasm32::*;
    let n = i32x4_shr(
        i32x4_add(i32x4_min(i32x4_abs(c), i32x4_splat(MAX_MAGNITUDE)), step4),
        3,
    );
    let lo = u64x2_shr(u64x2_extmul_low_u32x4(n, recip), RECIP_SHIFT);
    let hi = u64x2_shr(u64x2_extmul_high_u32x4(n, recip), RECIP_SHIFT);
    let quotient = i32x4_shuffle::<0, 2, 4, 6>(lo, hi);
    let sign = i32x4_shr(c, 31);
    i32x4_sub(v128_xor(quotient, sign), sign)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 8 × the orthonormal 2-D DCT-II of `samples` (natural order), in f64.
    fn float_dct(samples: &[[i32; 8]; 8]) -> [[f64; 8]; 8] {
        let c = |k: usize| if k == 0 { (0.125f64).sqrt() } else { 0.5 };
        let mut out = [[0.0; 8]; 8];
        for (u, row) in out.iter_mut().enumerate() {
            for (v, cell) in row.iter_mut().enumerate() {
                let mut sum = 0.0;
                for (y, srow) in samples.iter().enumerate() {
                    for (x, &s) in srow.iter().enumerate() {
                        sum += f64::from(s)
                            * ((2 * x + 1) as f64 * v as f64 * std::f64::consts::PI / 16.0).cos()
                            * ((2 * y + 1) as f64 * u as f64 * std::f64::consts::PI / 16.0).cos();
                    }
                }
                *cell = 8.0 * c(u) * c(v) * sum;
            }
        }
        out
    }

    fn transposed(samples: &[[i32; 8]; 8]) -> Block {
        let mut b = [[0; 8]; 8];
        for y in 0..8 {
            for x in 0..8 {
                b[x][y] = samples[y][x];
            }
        }
        b
    }

    /// A deterministic pseudo-random generator (xorshift32) for test blocks.
    fn blocks(count: usize) -> Vec<[[i32; 8]; 8]> {
        let mut s = 0x1234_5678u32;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        };
        let mut out = vec![[[-128; 8]; 8], [[127; 8]; 8]];
        // Checkerboards of extreme values: the largest AC coefficients.
        out.push(std::array::from_fn(|y| {
            std::array::from_fn(|x| if (x + y) % 2 == 0 { 127 } else { -128 })
        }));
        out.push(std::array::from_fn(|_| {
            std::array::from_fn(|x| if x % 4 == 0 || x % 4 == 3 { 127 } else { -128 })
        }));
        while out.len() < count {
            let smooth = out.len() % 2 == 0;
            let base = (next() % 256) as i32 - 128;
            out.push(std::array::from_fn(|y| {
                std::array::from_fn(|x| {
                    if smooth {
                        (base + (x as i32 * 3) - (y as i32 * 2) + (next() % 9) as i32 - 4)
                            .clamp(-128, 127)
                    } else {
                        (next() % 256) as i32 - 128
                    }
                })
            }));
        }
        out
    }

    #[test]
    fn integer_dct_is_within_rounding_of_the_float_dct() {
        let mut worst = 0.0f64;
        let mut total = 0.0f64;
        let list = blocks(2000);
        for samples in &list {
            let reference = float_dct(samples);
            let mut b = transposed(samples);
            forward(&mut b);
            for u in 0..8 {
                for v in 0..8 {
                    let err = (f64::from(b[u][v]) - reference[u][v]).abs();
                    worst = worst.max(err);
                    total += err;
                }
            }
        }
        // The output is 8× the coefficient, so an error of 8 is 1 in the quantiser's unit at
        // q = 1; islow stays within a few units of its own scale.
        let mean = total / (list.len() * 64) as f64;
        assert!(worst <= 4.0 && mean < 0.6, "worst {worst}, mean {mean}");
    }

    #[test]
    fn constants_are_the_rounded_rotations() {
        let c = |k: f64| (k * std::f64::consts::PI / 16.0).cos();
        let fix = |x: f64| (x * std::f64::consts::SQRT_2 * 8192.0).round() as i32;
        let (c1, c2, c3, c5, c6, c7) = (c(1.0), c(2.0), c(3.0), c(5.0), c(6.0), c(7.0));
        assert_eq!(C_0_298, fix(-c1 + c3 + c5 - c7));
        assert_eq!(C_0_390, fix(c3 - c5));
        assert_eq!(C_0_541, fix(c6));
        assert_eq!(C_0_765, fix(c2 - c6));
        assert_eq!(C_0_899, fix(c3 - c7));
        assert_eq!(C_1_175, fix(c3));
        assert_eq!(C_1_501, fix(c1 + c3 - c5 - c7));
        assert_eq!(C_1_847, fix(c2 + c6));
        assert_eq!(C_1_961, fix(c3 + c5));
        assert_eq!(C_2_053, fix(c1 + c3 - c5 + c7));
        assert_eq!(C_2_562, fix(c1 + c3));
        assert_eq!(C_3_072, fix(c1 + c3 + c5 - c7));
    }

    #[test]
    fn flat_block_has_only_dc() {
        let mut b = [[50; 8]; 8];
        forward(&mut b);
        assert_eq!(b[0][0], 50 * 64);
        assert!(b.iter().flatten().skip(1).all(|&c| c == 0));
    }

    #[test]
    fn reciprocal_quantisation_equals_rounded_division_for_every_step() {
        for q in 1..=255u8 {
            let quantiser = Quantiser::new(&[q; 64]);
            let (step, recip) = (quantiser.step[3][5], quantiser.recip[3][5]);
            let d = 8 * i32::from(q);
            for c in -MAX_MAGNITUDE..=MAX_MAGNITUDE {
                let exact = (c.abs() + d / 2) / d;
                let exact = if c < 0 { -exact } else { exact };
                assert_eq!(quantise_one(c, step, recip), exact, "c {c} q {q}");
            }
            let b = [[-8 * i32::from(q) * 3; 8]; 8];
            let mut out = Coefs::default();
            quantise(&b, &quantiser, &mut out);
            assert_eq!(out.to_block(), [[-3; 8]; 8]);
        }
    }
}
