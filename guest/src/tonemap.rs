//! HDR (PQ or HLG transfer) to SDR BT.709, so an HDR stream's thumbnail does not look washed out
//! and dim, which is what showing PQ code values as if they were BT.709 gives.
//!
//! The operator, per pixel (chroma shared by each 2×2 block, as in 4:2:0):
//! 1. Y'CbCr → non-linear R'G'B' with the stream's matrix and range (VUI).
//! 2. EOTF to linear light in cd/m²: PQ (SMPTE ST 2084); HLG (ITU-R BT.2100) inverse OETF then
//!    its OOTF for a 1000 cd/m² display (system gamma 1.2).
//! 3. BT.2020 → BT.709 primaries (linear 3×3 matrix), when the VUI says BT.2020.
//! 4. Scale so HDR reference white, 203 cd/m² (ITU-R BT.2408), is 1.0, then compress luminance
//!    above a knee at 0.75 with a Reinhard-shaped shoulder `k + (1-k)·x/(x + 1-k)`, x = Y-k,
//!    that keeps slope 1 at the knee and approaches 1.0 (no clipping of highlights); the colour
//!    is scaled by the luminance ratio (hue kept), then clipped to 0..1 (out-of-gamut colours).
//! 5. BT.709 OETF, then 8-bit limited-range BT.709 Y'CbCr (chroma: the mean of the block's four).
//!
//! Reference white thus lands at 0.875 linear (about 94 % signal): an SDR-graded scene in PQ
//! comes back close to its SDR original, highlights up to 10 000 cd/m² roll off smoothly.
//! Mastering-display and content-light metadata are not used. Transfer curves are evaluated
//! through tables built once per picture (1024-entry per 10-bit code value cannot be used
//! because R'G'B' are mixes of three samples: 4096 entries, linearly interpolated).

use crate::color::Matrix;
use crate::render::Yuv420;

/// `transfer_characteristics` (H.265 Table E.4) that need tone mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// Anything else: shown as coded.
    Sdr,
    /// 16: SMPTE ST 2084.
    Pq,
    /// 18: ARIB STD-B67 / BT.2100 HLG.
    Hlg,
}

impl Transfer {
    /// From the VUI value.
    pub fn from_vui(transfer_characteristics: u8) -> Transfer {
        match transfer_characteristics {
            16 => Transfer::Pq,
            18 => Transfer::Hlg,
            _ => Transfer::Sdr,
        }
    }
}

/// HDR reference white (ITU-R BT.2408), cd/m².
const REFERENCE_WHITE: f32 = 203.0;
/// Linear level where the shoulder starts (1.0 = reference white).
const KNEE: f32 = 0.75;
/// Peak of an HLG display (BT.2100 reference), cd/m².
const HLG_PEAK: f32 = 1000.0;
/// Table size for the transfer functions.
const LUT: usize = 4096;

/// PQ EOTF (ST 2084): signal 0..1 → cd/m².
fn pq_eotf(e: f64) -> f64 {
    let (m1, m2) = (2610.0 / 16384.0, 2523.0 / 4096.0 * 128.0);
    let (c1, c2, c3) = (
        3424.0 / 4096.0,
        2413.0 / 4096.0 * 32.0,
        2392.0 / 4096.0 * 32.0,
    );
    let p = e.clamp(0.0, 1.0).powf(1.0 / m2);
    10000.0 * ((p - c1).max(0.0) / (c2 - c3 * p)).powf(1.0 / m1)
}

/// HLG inverse OETF (BT.2100): signal 0..1 → scene light 0..1.
fn hlg_inverse_oetf(e: f64) -> f64 {
    let (a, b, c) = (0.178_832_77, 0.284_668_92, 0.559_910_73);
    let e = e.clamp(0.0, 1.0);
    if e <= 0.5 {
        e * e / 3.0
    } else {
        (((e - c) / a).exp() + b) / 12.0
    }
}

/// BT.709 OETF: linear 0..1 → signal 0..1.
fn bt709_oetf(l: f64) -> f64 {
    if l < 0.018 {
        4.5 * l
    } else {
        1.099 * l.powf(0.45) - 0.099
    }
}

/// A table of `f` over 0..=1, read with linear interpolation.
struct Table(Vec<f32>);

impl Table {
    fn new(f: impl Fn(f64) -> f64) -> Table {
        Table((0..=LUT).map(|i| f(i as f64 / LUT as f64) as f32).collect())
    }

    #[inline]
    fn get(&self, x: f32) -> f32 {
        let pos = x.clamp(0.0, 1.0) * LUT as f32;
        let i = (pos as usize).min(LUT - 1);
        let frac = pos - i as f32;
        let a = self.0.get(i).copied().unwrap_or(0.0);
        let b = self.0.get(i + 1).copied().unwrap_or(a);
        a + (b - a) * frac
    }
}

/// The shoulder of step 4, on luminance relative to reference white.
#[inline]
fn shoulder(y: f32) -> f32 {
    if y <= KNEE {
        y
    } else {
        let x = y - KNEE;
        KNEE + (1.0 - KNEE) * x / (x + 1.0 - KNEE)
    }
}

/// A decoded high-bit-depth 4:2:0 picture: samples of `bit_depth` bits, chroma planes
/// `ceil(w/2) × ceil(h/2)`.
pub struct Planes<'a> {
    /// Luma width.
    pub width: u32,
    /// Luma height.
    pub height: u32,
    /// Bits per sample (8..=16).
    pub bit_depth: u32,
    /// Luma.
    pub y: &'a [u16],
    /// Cb.
    pub u: &'a [u16],
    /// Cr.
    pub v: &'a [u16],
}

/// Tone-map an HDR picture to 8-bit limited-range BT.709 SDR (see the module docs).
/// `bt2020_primaries` selects the primaries conversion.
pub fn to_sdr(
    p: &Planes,
    transfer: Transfer,
    matrix: Matrix,
    full_range: bool,
    bt2020_primaries: bool,
) -> Yuv420 {
    let (w, h) = (p.width as usize, p.height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let max = f32::from(u16::try_from((1u32 << p.bit_depth.min(16)) - 1).unwrap_or(u16::MAX));
    let scale = max / 255.0;
    // Normalisation of the samples (H.265 E.3.1 for limited range: 16..235 and 16..240 at 8 bits).
    let (y_off, y_steps, c_steps) = if full_range {
        (0.0, max, max)
    } else {
        (16.0 * scale, 219.0 * scale, 224.0 * scale)
    };
    let c_mid = (max + 1.0) / 2.0;
    let (kr, kb) = match matrix {
        Matrix::Bt601 => (0.299f32, 0.114f32),
        Matrix::Bt709 => (0.2126, 0.0722),
        Matrix::Bt2020 => (0.2627, 0.0593),
    };
    let kg = 1.0 - kr - kb;
    let eotf = match transfer {
        Transfer::Hlg => Table::new(hlg_inverse_oetf),
        _ => Table::new(|e| pq_eotf(e) / f64::from(REFERENCE_WHITE)),
    };
    let oetf = Table::new(|t| bt709_oetf(t * t));
    // BT.2087 BT.2020 → BT.709 linear RGB.
    let to709: [[f32; 3]; 3] = if bt2020_primaries {
        [
            [1.6605, -0.5876, -0.0728],
            [-0.1246, 1.1329, -0.0083],
            [-0.0182, -0.1006, 1.1187],
        ]
    } else {
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    };
    let mut out = Yuv420 {
        width: p.width,
        height: p.height,
        y: vec![0; w * h],
        u: vec![128; cw * ch],
        v: vec![128; cw * ch],
        full_range: false,
        matrix: Matrix::Bt709,
    };
    let to_byte = |x: f32| (x.round().clamp(0.0, 255.0)) as u8;
    for cy in 0..ch {
        for cx in 0..cw {
            let ci = cy * cw + cx;
            let pb = (f32::from(p.u.get(ci).copied().unwrap_or(0)) - c_mid) / c_steps;
            let pr = (f32::from(p.v.get(ci).copied().unwrap_or(0)) - c_mid) / c_steps;
            let (mut sum_b, mut sum_r, mut n) = (0.0f32, 0.0f32, 0.0f32);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let (x, y) = (2 * cx + dx, 2 * cy + dy);
                if x >= w || y >= h {
                    continue;
                }
                let yi = y * w + x;
                let luma = (f32::from(p.y.get(yi).copied().unwrap_or(0)) - y_off) / y_steps;
                let r = luma + 2.0 * (1.0 - kr) * pr;
                let b = luma + 2.0 * (1.0 - kb) * pb;
                let g = (luma - kr * r - kb * b) / kg;
                let mut rgb = [eotf.get(r), eotf.get(g), eotf.get(b)];
                if transfer == Transfer::Hlg {
                    // BT.2100 HLG OOTF: Fd = Lw · Ys^(γ-1) · Fs, γ = 1.2, Ys with BT.2020 weights.
                    let ys = 0.2627 * rgb[0] + 0.678 * rgb[1] + 0.0593 * rgb[2];
                    let gain = HLG_PEAK / REFERENCE_WHITE * ys.max(1e-6).powf(0.2);
                    rgb = rgb.map(|c| c * gain);
                }
                let lin = to709.map(|row| row[0] * rgb[0] + row[1] * rgb[1] + row[2] * rgb[2]);
                let lum = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
                let ratio = if lum > 0.0 { shoulder(lum) / lum } else { 1.0 };
                let [r, g, b] = lin.map(|c| oetf.get((c * ratio).clamp(0.0, 1.0).sqrt()));
                let y709 = 0.2126 * r + 0.7152 * g + 0.0722 * b;
                if let Some(dst) = out.y.get_mut(yi) {
                    *dst = to_byte(16.0 + 219.0 * y709);
                }
                sum_b += (b - y709) / 1.8556;
                sum_r += (r - y709) / 1.5748;
                n += 1.0;
            }
            if let (Some(u), Some(v)) = (out.u.get_mut(ci), out.v.get_mut(ci)) {
                *u = to_byte(128.0 + 224.0 * sum_b / n);
                *v = to_byte(128.0 + 224.0 * sum_r / n);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_curves_hit_their_anchor_points() {
        assert!((pq_eotf(1.0) - 10000.0).abs() < 1e-6);
        assert!(pq_eotf(0.0).abs() < 1e-9);
        // 203 cd/m² is PQ 0.5806 (BT.2408).
        assert!((pq_eotf(0.5806) - 203.0).abs() < 1.0, "{}", pq_eotf(0.5806));
        assert!((hlg_inverse_oetf(0.5) - 1.0 / 12.0).abs() < 1e-9);
        assert!((hlg_inverse_oetf(1.0) - 1.0).abs() < 1e-6);
        assert!((bt709_oetf(1.0) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn shoulder_is_identity_below_the_knee_and_never_reaches_one() {
        assert_eq!(shoulder(0.5), 0.5);
        assert!((shoulder(1.0) - 0.875).abs() < 1e-6);
        assert!(shoulder(49.0) < 1.0 && shoulder(49.0) > 0.99);
        let mut last = 0.0;
        for i in 0..1000 {
            let v = shoulder(i as f32 / 20.0);
            assert!(v >= last);
            last = v;
        }
    }

    #[test]
    fn pq_reference_white_maps_to_near_sdr_white_and_black_stays_black() {
        // 10-bit limited PQ: reference white (PQ 0.5806 → code 64 + 876·0.5806 = 573) grey.
        for (code, lo, hi) in [(573u16, 210u8, 230u8), (64, 16, 17)] {
            let y = vec![code; 4];
            let c = vec![512u16; 1];
            let planes = Planes {
                width: 2,
                height: 2,
                bit_depth: 10,
                y: &y,
                u: &c,
                v: &c,
            };
            let out = to_sdr(&planes, Transfer::Pq, Matrix::Bt2020, false, true);
            assert!(
                out.y.iter().all(|&v| (lo..=hi).contains(&v)),
                "code {code}: {:?}",
                out.y
            );
            assert!(
                out.u
                    .iter()
                    .chain(&out.v)
                    .all(|&c| (126..=130).contains(&c))
            );
        }
    }
}
