//! Baseline Huffman entropy coding (T.81 §F.1.2): code tables derived from a DHT
//! specification (Annex C), a bit writer with 0xFF byte stuffing (§B.1.1.5, §F.1.2.3), and the
//! coding of one quantised block (DC difference, then AC run/size symbols with ZRL and EOB).

use super::fdct::Coefs;
use super::tables::{HuffSpec, ZIGZAG};

/// Huffman codes by symbol: `code[s]` is `len[s]` bits long; length 0 means "no code".
pub struct HuffCodes {
    code: [u16; 256],
    len: [u8; 256],
}

impl HuffCodes {
    /// Derives the codes of `spec` (T.81 Annex C, Figures C.1–C.3: codes of each length are
    /// consecutive, and moving to the next length appends a zero bit).
    pub fn new(spec: &HuffSpec) -> HuffCodes {
        let mut codes = HuffCodes {
            code: [0; 256],
            len: [0; 256],
        };
        let mut code = 0u32;
        let mut symbols = spec.values.iter();
        for (bits_minus_1, &count) in spec.bits.iter().enumerate() {
            for _ in 0..count {
                if let Some(&symbol) = symbols.next() {
                    codes.code[usize::from(symbol)] = code as u16;
                    codes.len[usize::from(symbol)] = bits_minus_1 as u8 + 1;
                }
                code += 1;
            }
            code <<= 1;
        }
        codes
    }

    /// The code and length of `symbol`.
    #[inline(always)]
    fn get(&self, symbol: u8) -> (u32, u32) {
        let s = usize::from(symbol);
        (u32::from(self.code[s]), u32::from(self.len[s]))
    }
}

/// Appends bits MSB first to a byte vector, stuffing a zero byte after every 0xFF.
pub struct BitWriter {
    out: Vec<u8>,
    /// Pending bits, the newest in the low `count` bits.
    acc: u64,
    count: u32,
}

impl BitWriter {
    /// A writer appending to `out`.
    pub fn new(out: Vec<u8>) -> BitWriter {
        BitWriter {
            out,
            acc: 0,
            count: 0,
        }
    }

    /// Appends the low `len` bits of `bits` (`len` ≤ 32).
    #[inline(always)]
    pub fn put(&mut self, bits: u32, len: u32) {
        // `count` < 32 on entry, so the accumulator holds at most 63 live bits.
        self.acc = (self.acc << len) | u64::from(bits & mask(len));
        self.count += len;
        if self.count >= 32 {
            self.count -= 32;
            let word = (self.acc >> self.count) as u32;
            if has_ff_byte(word) {
                for byte in word.to_be_bytes() {
                    self.out.push(byte);
                    if byte == 0xFF {
                        self.out.push(0);
                    }
                }
            } else {
                self.out.extend_from_slice(&word.to_be_bytes());
            }
        }
    }

    /// Pads the last byte with 1 bits (§F.1.2.3) and returns the output.
    pub fn finish(mut self) -> Vec<u8> {
        let pad = (8 - self.count % 8) % 8;
        self.put(mask(pad), pad);
        while self.count >= 8 {
            self.count -= 8;
            let byte = (self.acc >> self.count) as u8;
            self.out.push(byte);
            if byte == 0xFF {
                self.out.push(0);
            }
        }
        self.out
    }
}

/// The low `len` bits set.
#[inline(always)]
fn mask(len: u32) -> u32 {
    if len >= 32 { u32::MAX } else { (1 << len) - 1 }
}

/// True when one of the four bytes of `word` is 0xFF.
#[inline(always)]
fn has_ff_byte(word: u32) -> bool {
    // The classic zero-byte test on the complement.
    let v = !word;
    (v.wrapping_sub(0x0101_0101) & !v & 0x8080_8080) != 0
}

/// Magnitude category of a coefficient or difference (T.81 Table F.1/F.2: the bit length of
/// `|v|`) and its additional bits (`v`, or `v − 1` for negatives, in `size` bits).
#[inline(always)]
fn category(v: i32) -> (u32, u32) {
    let size = 32 - v.unsigned_abs().leading_zeros();
    let bits = if v < 0 { v - 1 } else { v } as u32;
    (size, bits & mask(size))
}

/// Largest DC difference and AC magnitude baseline can code (categories 11 and 10).
const MAX_DC_DIFF: i32 = 2047;
const MAX_AC: i32 = 1023;

/// The two code tables of one component.
pub struct ComponentCodes<'a> {
    /// DC difference categories.
    pub dc: &'a HuffCodes,
    /// AC run/size symbols.
    pub ac: &'a HuffCodes,
}

/// Codes one quantised block (`coefficients`, natural order) after the previous block's DC
/// `previous_dc` of the same component, and returns this block's DC.
pub fn encode_block(
    w: &mut BitWriter,
    coefficients: &Coefs,
    previous_dc: i32,
    codes: &ComponentCodes<'_>,
) -> i32 {
    let nonzero = zigzag_nonzero(coefficients);
    // The coefficient at zigzag position `k`.
    let zz = |k: u32| {
        ZIGZAG
            .get(k as usize)
            .map_or(0, |&n| coefficients.get(usize::from(n)))
    };
    let dc = coefficients.get(0);
    // The DC of a baseline block lies in -1024..=1016 over a step of at least 1, so the
    // difference always fits category 11; the clamp only guards the code against a bad caller.
    let (size, bits) = category((dc - previous_dc).clamp(-MAX_DC_DIFF, MAX_DC_DIFF));
    let (code, len) = codes.dc.get(size as u8);
    w.put((code << size) | bits, len + size);

    let mut ac = nonzero & !1;
    let mut last = 0u32;
    while ac != 0 {
        let k = ac.trailing_zeros();
        ac &= ac - 1;
        let mut run = k - last - 1;
        while run >= 16 {
            let (code, len) = codes.ac.get(0xF0);
            w.put(code, len);
            run -= 16;
        }
        let value = zz(k);
        let (size, bits) = category(value.clamp(-MAX_AC, MAX_AC));
        let (code, len) = codes.ac.get(((run << 4) | size) as u8);
        w.put((code << size) | bits, len + size);
        last = k;
    }
    if last != 63 {
        let (code, len) = codes.ac.get(0x00);
        w.put(code, len);
    }
    dc
}

/// Bit `k` set when the coefficient at zigzag position `k` is not zero.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn zigzag_nonzero(c: &Coefs) -> u64 {
    zigzag_nonzero_scalar(c)
}

#[cfg_attr(
    all(target_arch = "wasm32", target_feature = "simd128"),
    allow(dead_code, reason = "wasm uses the SIMD version")
)]
fn zigzag_nonzero_scalar(c: &Coefs) -> u64 {
    let mut mask = 0u64;
    for (k, &natural) in ZIGZAG.iter().enumerate() {
        mask |= u64::from(c.get(usize::from(natural)) != 0) << k;
    }
    mask
}

/// For zigzag positions `16j..16j+16` and natural positions `16i..16i+16`: the index of each
/// zigzag position's coefficient within that natural group, or 0xFF (a swizzle gives 0).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
const SWIZZLES: [[[u8; 16]; 4]; 4] = {
    let mut out = [[[0xFF; 16]; 4]; 4];
    let mut k = 0;
    while k < 64 {
        let natural = ZIGZAG[k] as usize;
        out[k / 16][natural / 16][k % 16] = (natural % 16) as u8;
        k += 1;
    }
    out
};

/// [`zigzag_nonzero_scalar`] in wasm SIMD128: the block narrowed to bytes (saturating, so a
/// non-zero coefficient stays non-zero), permuted into zigzag order with byte swizzles and
/// turned into a bit mask, 16 positions at a time.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn zigzag_nonzero(c: &Coefs) -> u64 {
    use core::arch::wasm32::*;
    // Eight coefficients (one row) as a vector.
    let row = |u: usize| u64x2(c.0[2 * u], c.0[2 * u + 1]);
    let bytes: [v128; 4] = std::array::from_fn(|g| i8x16_narrow_i16x8(row(2 * g), row(2 * g + 1)));
    let index = |t: &[u8; 16]| {
        u8x16(
            t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], t[10], t[11], t[12], t[13],
            t[14], t[15],
        )
    };
    let mut mask = 0u64;
    for (j, groups) in SWIZZLES.iter().enumerate() {
        let mut z = u8x16_splat(0);
        for (i, t) in groups.iter().enumerate() {
            z = v128_or(z, i8x16_swizzle(bytes[i], index(t)));
        }
        let set = v128_not(i8x16_eq(z, u8x16_splat(0)));
        mask |= u64::from(i8x16_bitmask(set)) << (16 * j);
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::super::tables::{AC_LUMA, DC_LUMA};
    use super::*;

    #[test]
    fn luma_dc_codes_are_those_of_table_k3() {
        let codes = HuffCodes::new(&DC_LUMA);
        // Table K.3: category 0 is "00", 1 "010", 5 "110", 6 "1110", 11 "111111110".
        assert_eq!(codes.get(0), (0b00, 2));
        assert_eq!(codes.get(1), (0b010, 3));
        assert_eq!(codes.get(5), (0b110, 3));
        assert_eq!(codes.get(6), (0b1110, 4));
        assert_eq!(codes.get(11), (0b1_1111_1110, 9));
    }

    #[test]
    fn luma_ac_codes_are_those_of_table_k5() {
        let codes = HuffCodes::new(&AC_LUMA);
        // Table K.5: 0/1 "00", EOB "1010", ZRL "11111111001", 0/3 "100", 1/1 "1100".
        assert_eq!(codes.get(0x01), (0b00, 2));
        assert_eq!(codes.get(0x00), (0b1010, 4));
        assert_eq!(codes.get(0xF0), (0b111_1111_1001, 11));
        assert_eq!(codes.get(0x03), (0b100, 3));
        assert_eq!(codes.get(0x11), (0b1100, 4));
        assert_eq!(codes.get(0xFA), (0xFFFE, 16));
    }

    #[test]
    fn categories_follow_table_f1() {
        assert_eq!(category(0), (0, 0));
        assert_eq!(category(1), (1, 1));
        assert_eq!(category(-1), (1, 0));
        assert_eq!(category(-3), (2, 0));
        assert_eq!(category(5), (3, 5));
        assert_eq!(category(-5), (3, 2));
        assert_eq!(category(2047), (11, 2047));
        assert_eq!(category(-2047), (11, 0));
    }

    #[test]
    fn writer_stuffs_ff_and_pads_with_ones() {
        let mut w = BitWriter::new(Vec::new());
        w.put(0xFF, 8);
        w.put(0b101, 3);
        assert_eq!(w.finish(), [0xFF, 0x00, 0b1011_1111]);
        let mut w = BitWriter::new(vec![9]);
        for _ in 0..10 {
            w.put(0x7FF, 11);
        }
        // 110 one bits: 13 bytes of 0xFF (each stuffed) and 6 bits padded to another 0xFF.
        let mut want = vec![9];
        for _ in 0..14 {
            want.extend([0xFF, 0x00]);
        }
        assert_eq!(w.finish(), want);
        let mut w = BitWriter::new(Vec::new());
        w.put(0x12345678, 32);
        w.put(0x1, 4);
        assert_eq!(w.finish(), [0x12, 0x34, 0x56, 0x78, 0x1F]);
    }

    #[test]
    fn ff_detection_finds_every_position() {
        assert!(!has_ff_byte(0x00FE_7F80));
        for shift in [0, 8, 16, 24] {
            assert!(has_ff_byte(0xFF << shift));
            assert!(has_ff_byte((0xFF << shift) | 0x0101_0101));
        }
        assert!(!has_ff_byte(0xFEFE_FEFE));
    }
}
