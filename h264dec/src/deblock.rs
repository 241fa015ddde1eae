//! The deblocking filter (§8.7) for pictures whose macroblocks are all intra: macroblock edges
//! get bS 4, internal edges bS 3 (§8.7.2.1), so no coefficient or motion test is needed. Runs
//! after the whole picture is decoded, macroblock by macroblock in address order, which is
//! the order the spec filters in; intra prediction has used the unfiltered samples by then.

#![cfg_attr(
    all(target_arch = "wasm32", target_feature = "simd128"),
    allow(
        dead_code,
        reason = "the scalar kernels run natively; wasm uses deblock_simd"
    )
)]

use crate::mb::PictureState;
use crate::tables::{ALPHA, BETA, TC0_BS3};

/// Filters every macroblock of the picture.
pub(crate) fn deblock_picture(pic: &mut PictureState) {
    let w = pic.width_mbs as usize;
    let h = pic.height_mbs as usize;
    let stride = pic.stride();
    let cstride = stride / 2;
    for mby in 0..h {
        for mbx in 0..w {
            let addr = mby * w + mbx;
            let m = pic.mbs[addr];
            let Some(sp) = m
                .slice
                .checked_sub(1)
                .and_then(|s| pic.slices.get(s as usize))
            else {
                continue;
            };
            if sp.disable == 1 {
                continue;
            }
            let left = (mbx > 0)
                .then(|| pic.mbs[addr - 1])
                .filter(|l| sp.disable != 2 || l.slice == m.slice);
            let top = (mby > 0)
                .then(|| pic.mbs[addr - w])
                .filter(|t| sp.disable != 2 || t.slice == m.slice);
            let (oa, ob) = (sp.alpha_offset, sp.beta_offset);
            let params = |qp_p: u8, qp_q: u8| {
                let avg = (i32::from(qp_p) + i32::from(qp_q) + 1) >> 1;
                let ia = (avg + oa).clamp(0, 51) as usize;
                let ib = (avg + ob).clamp(0, 51) as usize;
                (
                    i32::from(ALPHA[ia]),
                    i32::from(BETA[ib]),
                    i32::from(TC0_BS3[ia]),
                )
            };
            let y0 = mby * 16 * stride + mbx * 16;
            // Luma: vertical edges left to right, then horizontal edges top to bottom.
            let internal = params(m.qp, m.qp);
            for e in 0..4 {
                if m.t8 && e & 1 == 1 {
                    continue;
                }
                let off = y0 + e * 4;
                if e == 0 {
                    if let Some(l) = left {
                        let (a, b, _) = params(l.qp, m.qp);
                        luma(&mut pic.y, off, 1, stride, a, b, None);
                    }
                } else {
                    let (a, b, tc0) = internal;
                    luma(&mut pic.y, off, 1, stride, a, b, Some(tc0));
                }
            }
            for e in 0..4 {
                if m.t8 && e & 1 == 1 {
                    continue;
                }
                let off = y0 + e * 4 * stride;
                if e == 0 {
                    if let Some(t) = top {
                        let (a, b, _) = params(t.qp, m.qp);
                        luma(&mut pic.y, off, stride, 1, a, b, None);
                    }
                } else {
                    let (a, b, tc0) = internal;
                    luma(&mut pic.y, off, stride, 1, a, b, Some(tc0));
                }
            }
            if !pic.chroma {
                continue;
            }
            // Cb and Cr together (each plane's edges stay in the spec's order; the planes do
            // not touch each other).
            let c0 = mby * 8 * cstride + mbx * 8;
            // (alpha, beta) per plane and t'C0 per plane, for an edge against qPs `p`.
            let planes = |p: [u8; 2]| {
                let [u, v] = [0, 1].map(|c| params(p[c], m.qpc[c]));
                ([(u.0, u.1), (v.0, v.1)], [u.2, v.2])
            };
            let (internal, tc0) = planes(m.qpc);
            let (u, v) = (&mut pic.u, &mut pic.v);
            if let Some(l) = left {
                chroma(u, v, c0, 1, cstride, planes(l.qpc).0, None);
            }
            chroma(u, v, c0 + 4, 1, cstride, internal, Some(tc0));
            if let Some(t) = top {
                chroma(u, v, c0, cstride, 1, planes(t.qpc).0, None);
            }
            chroma(u, v, c0 + 4 * cstride, cstride, 1, internal, Some(tc0));
        }
    }
}

// In wasm with SIMD128 the kernels are `deblock_simd`'s; the scalar ones below run elsewhere.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use crate::deblock_simd::{chroma, luma};

/// A luma edge of 16 lines: bS 4 when `tc0` is `None`, else bS 3 with that t'C0.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn luma(
    px: &mut [u8],
    off: usize,
    across: usize,
    along: usize,
    alpha: i32,
    beta: i32,
    tc0: Option<i32>,
) {
    match tc0 {
        None => luma_strong(px, off, across, along, alpha, beta),
        Some(tc0) => luma_normal(px, off, across, along, alpha, beta, tc0),
    }
}

/// The same chroma edge in Cb and Cr: `params` (alpha, beta) per plane, t'C0 per plane for
/// bS 3, `None` for bS 4.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn chroma(
    u: &mut [u8],
    v: &mut [u8],
    off: usize,
    across: usize,
    along: usize,
    params: [(i32, i32); 2],
    tc0: Option<[i32; 2]>,
) {
    for (c, plane) in [u, v].into_iter().enumerate() {
        let (a, b) = params[c];
        chroma_edge(plane, off, across, along, a, b, tc0.map(|t| t[c]));
    }
}

/// bS = 4 luma edge of 16 lines (eq. 8-470 to 8-477). `across` steps from q0 to q1, `along`
/// from one line to the next; `off` is q0 of the first line.
fn luma_strong(px: &mut [u8], off: usize, across: usize, along: usize, alpha: i32, beta: i32) {
    edge::<16, 8>(px, off, across, along, alpha, |v| {
        lanes_luma_strong(v, alpha as i16, beta as i16)
    });
}

/// bS < 4 luma edge of 16 lines (eq. 8-458 to 8-467).
fn luma_normal(
    px: &mut [u8],
    off: usize,
    across: usize,
    along: usize,
    alpha: i32,
    beta: i32,
    tc0: i32,
) {
    edge::<16, 8>(px, off, across, along, alpha, |v| {
        lanes_luma(v, alpha as i16, beta as i16, tc0 as i16)
    });
}

/// A chroma edge of 8 lines: bS 4 when `tc0` is `None`, else bS 3 with that t'C0.
fn chroma_edge(
    px: &mut [u8],
    off: usize,
    across: usize,
    along: usize,
    alpha: i32,
    beta: i32,
    tc0: Option<i32>,
) {
    edge::<8, 4>(px, off, across, along, alpha, |v| {
        lanes_chroma(v, alpha as i16, beta as i16, tc0.map(|t| t as i16))
    });
}

/// Filters one edge of `L` lines: copies the `K` samples around the edge of every line (p3..q3
/// for luma, p1..q1 for chroma) into `K` lanes of `L` samples (a transpose for vertical edges,
/// plain rows for horizontal ones), filters all lines at once with branch-free arithmetic
/// (vectorised), and writes the changed lanes back.
#[inline(always)]
fn edge<const L: usize, const K: usize>(
    px: &mut [u8],
    off: usize,
    across: usize,
    along: usize,
    alpha: i32,
    kernel: impl FnOnce(&mut [[u8; L]; K]),
) {
    if alpha == 0 || off < K / 2 * across {
        return;
    }
    let base = off - K / 2 * across;
    let last = base + (K - 1) * across + (L - 1) * along;
    if last >= px.len() {
        return;
    }
    let mut v = [[0u8; L]; K];
    if across == 1 {
        for (x, line) in (0..L).map(|x| (x, base + x * along)) {
            let s = &px[line..line + K];
            for k in 0..K {
                v[k][x] = s[k];
            }
        }
    } else {
        for (k, lane) in v.iter_mut().enumerate() {
            let start = base + k * across;
            lane.copy_from_slice(&px[start..start + L]);
        }
    }
    kernel(&mut v);
    // Luma changes p2..q2, chroma p0 and q0: lanes 1..K-1.
    if across == 1 {
        for (x, line) in (0..L).map(|x| (x, base + x * along)) {
            let s = &mut px[line + 1..line + K - 1];
            for k in 0..K - 2 {
                s[k] = v[k + 1][x];
            }
        }
    } else {
        for (k, lane) in v.iter().enumerate().take(K - 1).skip(1) {
            let start = base + k * across;
            px[start..start + L].copy_from_slice(lane);
        }
    }
}

#[inline(always)]
fn load<const L: usize, const K: usize>(v: &[[u8; L]; K], x: usize) -> [i16; K] {
    std::array::from_fn(|k| i16::from(v[k][x]))
}

#[inline(always)]
fn gate(s: &[i16; 8], alpha: i16, beta: i16) -> bool {
    (s[3] - s[4]).abs() < alpha && (s[2] - s[3]).abs() < beta && (s[5] - s[4]).abs() < beta
}

fn lanes_luma_strong<const L: usize>(v: &mut [[u8; L]; 8], alpha: i16, beta: i16) {
    for x in 0..L {
        let s = load(v, x);
        let [p3, p2, p1, p0, q0, q1, q2, q3] = s;
        let on = gate(&s, alpha, beta);
        let near = (p0 - q0).abs() < (alpha >> 2) + 2;
        let sp = on && near && (p2 - p0).abs() < beta;
        let sq = on && near && (q2 - q0).abs() < beta;
        let np0 = if sp {
            (p2 + 2 * p1 + 2 * p0 + 2 * q0 + q1 + 4) >> 3
        } else {
            (2 * p1 + p0 + q1 + 2) >> 2
        };
        let np1 = if sp { (p2 + p1 + p0 + q0 + 2) >> 2 } else { p1 };
        let np2 = if sp {
            (2 * p3 + 3 * p2 + p1 + p0 + q0 + 4) >> 3
        } else {
            p2
        };
        let nq0 = if sq {
            (p1 + 2 * p0 + 2 * q0 + 2 * q1 + q2 + 4) >> 3
        } else {
            (2 * q1 + q0 + p1 + 2) >> 2
        };
        let nq1 = if sq { (p0 + q0 + q1 + q2 + 2) >> 2 } else { q1 };
        let nq2 = if sq {
            (2 * q3 + 3 * q2 + q1 + q0 + p0 + 4) >> 3
        } else {
            q2
        };
        let out = [np2, np1, np0, nq0, nq1, nq2];
        for (k, &o) in out.iter().enumerate() {
            let old = s[k + 1];
            v[k + 1][x] = if on { o as u8 } else { old as u8 };
        }
    }
}

fn lanes_luma<const L: usize>(v: &mut [[u8; L]; 8], alpha: i16, beta: i16, tc0: i16) {
    for x in 0..L {
        let s = load(v, x);
        let [_, p2, p1, p0, q0, q1, q2, _] = s;
        let on = gate(&s, alpha, beta);
        let ap = (p2 - p0).abs() < beta;
        let aq = (q2 - q0).abs() < beta;
        let tc = tc0 + i16::from(ap) + i16::from(aq);
        let delta = ((((q0 - p0) << 2) + (p1 - q1) + 4) >> 3).clamp(-tc, tc);
        let avg = (p0 + q0 + 1) >> 1;
        let np1 = if ap {
            p1 + ((p2 + avg - (p1 << 1)) >> 1).clamp(-tc0, tc0)
        } else {
            p1
        };
        let nq1 = if aq {
            q1 + ((q2 + avg - (q1 << 1)) >> 1).clamp(-tc0, tc0)
        } else {
            q1
        };
        let np0 = (p0 + delta).clamp(0, 255);
        let nq0 = (q0 - delta).clamp(0, 255);
        v[2][x] = if on { np1 } else { p1 } as u8;
        v[3][x] = if on { np0 } else { p0 } as u8;
        v[4][x] = if on { nq0 } else { q0 } as u8;
        v[5][x] = if on { nq1 } else { q1 } as u8;
    }
}

fn lanes_chroma<const L: usize>(v: &mut [[u8; L]; 4], alpha: i16, beta: i16, tc0: Option<i16>) {
    for x in 0..L {
        let s = load(v, x);
        let (p1, p0, q0, q1) = (s[0], s[1], s[2], s[3]);
        let on = (p0 - q0).abs() < alpha && (p1 - p0).abs() < beta && (q1 - q0).abs() < beta;
        let (np0, nq0) = match tc0 {
            None => ((2 * p1 + p0 + q1 + 2) >> 2, (2 * q1 + q0 + p1 + 2) >> 2),
            Some(tc0) => {
                let tc = tc0 + 1;
                let delta = ((((q0 - p0) << 2) + (p1 - q1) + 4) >> 3).clamp(-tc, tc);
                ((p0 + delta).clamp(0, 255), (q0 - delta).clamp(0, 255))
            }
        };
        v[1][x] = if on { np0 } else { p0 } as u8;
        v[2][x] = if on { nq0 } else { q0 } as u8;
    }
}
