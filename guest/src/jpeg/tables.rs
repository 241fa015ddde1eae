//! The data of the standard: ITU-T T.81 Annex K example quantisation tables (K.1) and Huffman
//! tables (K.3), the zigzag order (Figure A.6), and the IJG quality scaling of the quantisation
//! tables (libjpeg `jpeg_quality_scaling` / `jpeg_add_quant_table` with `force_baseline`).

/// `ZIGZAG[k]` is the natural (row-major, `8·u + v`) index of the `k`-th coefficient in zigzag
/// order (T.81 Figure A.6).
pub const ZIGZAG: [u8; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, //
    17, 24, 32, 25, 18, 11, 4, 5, //
    12, 19, 26, 33, 40, 48, 41, 34, //
    27, 20, 13, 6, 7, 14, 21, 28, //
    35, 42, 49, 56, 57, 50, 43, 36, //
    29, 22, 15, 23, 30, 37, 44, 51, //
    58, 59, 52, 45, 38, 31, 39, 46, //
    53, 60, 61, 54, 47, 55, 62, 63,
];

/// T.81 Table K.1: luminance quantisation table, natural order.
const LUMA_QUANT: [u16; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, //
    12, 12, 14, 19, 26, 58, 60, 55, //
    14, 13, 16, 24, 40, 57, 69, 56, //
    14, 17, 22, 29, 51, 87, 80, 62, //
    18, 22, 37, 56, 68, 109, 103, 77, //
    24, 35, 55, 64, 81, 104, 113, 92, //
    49, 64, 78, 87, 103, 121, 120, 101, //
    72, 92, 95, 98, 112, 100, 103, 99,
];

/// T.81 Table K.2: chrominance quantisation table, natural order.
const CHROMA_QUANT: [u16; 64] = [
    17, 18, 24, 47, 99, 99, 99, 99, //
    18, 21, 26, 66, 99, 99, 99, 99, //
    24, 26, 56, 99, 99, 99, 99, 99, //
    47, 66, 99, 99, 99, 99, 99, 99, //
    99, 99, 99, 99, 99, 99, 99, 99, //
    99, 99, 99, 99, 99, 99, 99, 99, //
    99, 99, 99, 99, 99, 99, 99, 99, //
    99, 99, 99, 99, 99, 99, 99, 99,
];

/// The IJG percentage scale factor of `quality` (clamped to 1..=100): 5000/q below 50,
/// 200 − 2q from 50 up (libjpeg `jpeg_quality_scaling`).
pub fn quality_scale(quality: u8) -> u32 {
    let q = u32::from(quality.clamp(1, 100));
    if q < 50 { 5000 / q } else { 200 - 2 * q }
}

/// The luminance (`chroma` false) or chrominance table at `quality`, natural order, each entry
/// `(base · scale + 50) / 100` clamped to 1..=255 (8-bit tables, as baseline requires).
pub fn quant_table(chroma: bool, quality: u8) -> [u8; 64] {
    let base = if chroma { &CHROMA_QUANT } else { &LUMA_QUANT };
    let scale = quality_scale(quality);
    base.map(|b| (((u32::from(b) * scale) + 50) / 100).clamp(1, 255) as u8)
}

/// A Huffman table as a DHT segment carries it: `bits[i]` codes of length `i + 1`, then the
/// symbols in code order (T.81 §B.2.4.2).
pub struct HuffSpec {
    /// Number of codes of each length 1..=16.
    pub bits: [u8; 16],
    /// The symbols, shortest codes first.
    pub values: &'static [u8],
}

/// T.81 Table K.3: luminance DC differences.
pub const DC_LUMA: HuffSpec = HuffSpec {
    bits: [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0],
    values: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
};

/// T.81 Table K.4: chrominance DC differences.
pub const DC_CHROMA: HuffSpec = HuffSpec {
    bits: [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0],
    values: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
};

/// T.81 Table K.5: luminance AC coefficients (run/size symbols).
pub const AC_LUMA: HuffSpec = HuffSpec {
    bits: [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d],
    values: &[
        0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61,
        0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52,
        0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25,
        0x26, 0x27, 0x28, 0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45,
        0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64,
        0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83,
        0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
        0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6,
        0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3,
        0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8,
        0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
    ],
};

/// T.81 Table K.6: chrominance AC coefficients (run/size symbols).
pub const AC_CHROMA: HuffSpec = HuffSpec {
    bits: [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77],
    values: &[
        0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61,
        0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33,
        0x52, 0xf0, 0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18,
        0x19, 0x1a, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44,
        0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63,
        0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a,
        0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97,
        0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4,
        0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca,
        0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7,
        0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_is_a_permutation_walking_neighbours() {
        let mut seen = [false; 64];
        for &i in &ZIGZAG {
            seen[usize::from(i)] = true;
        }
        assert!(seen.iter().all(|&s| s));
        for pair in ZIGZAG.windows(2) {
            let (a, b) = (i32::from(pair[0]), i32::from(pair[1]));
            let (du, dv) = ((a / 8 - b / 8).abs(), (a % 8 - b % 8).abs());
            assert!(du <= 1 && dv <= 1, "{a} -> {b}");
        }
    }

    #[test]
    fn huffman_specs_count_their_symbols() {
        for (spec, count) in [
            (&DC_LUMA, 12),
            (&DC_CHROMA, 12),
            (&AC_LUMA, 162),
            (&AC_CHROMA, 162),
        ] {
            let total: usize = spec.bits.iter().map(|&b| usize::from(b)).sum();
            assert_eq!((total, spec.values.len()), (count, count));
        }
    }

    #[test]
    fn quality_scaling_follows_ijg() {
        assert_eq!(quality_scale(0), 5000);
        assert_eq!(quality_scale(1), 5000);
        assert_eq!(quality_scale(30), 166);
        assert_eq!(quality_scale(50), 100);
        assert_eq!(quality_scale(80), 40);
        assert_eq!(quality_scale(100), 0);
        assert_eq!(quant_table(false, 50), LUMA_QUANT.map(|q| q as u8));
        assert_eq!(quant_table(false, 100), [1; 64]);
        assert_eq!(quant_table(true, 1), [255; 64]);
        // (16 · 40 + 50) / 100 = 6 at quality 80; (99 · 40 + 50) / 100 = 40.
        assert_eq!(quant_table(false, 80)[0], 6);
        assert_eq!(quant_table(true, 80)[63], 40);
    }
}
