//! The deblocking filter (§8.7) for pictures whose macroblocks are all intra: macroblock edges
//! get bS 4, internal edges bS 3 (§8.7.2.1), so no coefficient or motion test is needed. Runs
//! after the whole picture is decoded, macroblock by macroblock in address order, which is
//! the order the spec filters in; intra prediction has used the unfiltered samples by then.

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
                        luma_strong(&mut pic.y, off, 1, stride, a, b);
                    }
                } else {
                    let (a, b, tc0) = internal;
                    luma_normal(&mut pic.y, off, 1, stride, a, b, tc0);
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
                        luma_strong(&mut pic.y, off, stride, 1, a, b);
                    }
                } else {
                    let (a, b, tc0) = internal;
                    luma_normal(&mut pic.y, off, stride, 1, a, b, tc0);
                }
            }
            if !pic.chroma {
                continue;
            }
            let c0 = mby * 8 * cstride + mbx * 8;
            for (c, plane) in [&mut pic.u, &mut pic.v].into_iter().enumerate() {
                let q = m.qpc[c];
                let internal = params(q, q);
                if let Some(l) = left {
                    let (a, b, _) = params(l.qpc[c], q);
                    chroma_edge(plane, c0, 1, cstride, a, b, None);
                }
                let (a, b, tc0) = internal;
                chroma_edge(plane, c0 + 4, 1, cstride, a, b, Some(tc0));
                if let Some(t) = top {
                    let (a, b, _) = params(t.qpc[c], q);
                    chroma_edge(plane, c0, cstride, 1, a, b, None);
                }
                chroma_edge(plane, c0 + 4 * cstride, cstride, 1, a, b, Some(tc0));
            }
        }
    }
}

/// bS = 4 luma edge of 16 samples (eq. 8-470 to 8-477). `across` steps from q0 to q1, `along`
/// from one line of samples to the next; `off` is q0 of the first line.
fn luma_strong(px: &mut [u8], off: usize, across: usize, along: usize, alpha: i32, beta: i32) {
    if alpha == 0 || beta == 0 {
        return;
    }
    for k in 0..16 {
        let q0i = off + k * along;
        let at = |i: isize| (q0i as isize + i * across as isize) as usize;
        let [p3, p2, p1, p0, q0, q1, q2, q3] =
            [-4, -3, -2, -1, 0, 1, 2, 3].map(|i| i32::from(px[at(i)]));
        if (p0 - q0).abs() >= alpha || (p1 - p0).abs() >= beta || (q1 - q0).abs() >= beta {
            continue;
        }
        let strong = (p0 - q0).abs() < (alpha >> 2) + 2;
        if strong && (p2 - p0).abs() < beta {
            px[at(-1)] = ((p2 + 2 * p1 + 2 * p0 + 2 * q0 + q1 + 4) >> 3) as u8;
            px[at(-2)] = ((p2 + p1 + p0 + q0 + 2) >> 2) as u8;
            px[at(-3)] = ((2 * p3 + 3 * p2 + p1 + p0 + q0 + 4) >> 3) as u8;
        } else {
            px[at(-1)] = ((2 * p1 + p0 + q1 + 2) >> 2) as u8;
        }
        if strong && (q2 - q0).abs() < beta {
            px[at(0)] = ((p1 + 2 * p0 + 2 * q0 + 2 * q1 + q2 + 4) >> 3) as u8;
            px[at(1)] = ((p0 + q0 + q1 + q2 + 2) >> 2) as u8;
            px[at(2)] = ((2 * q3 + 3 * q2 + q1 + q0 + p0 + 4) >> 3) as u8;
        } else {
            px[at(0)] = ((2 * q1 + q0 + p1 + 2) >> 2) as u8;
        }
    }
}

/// bS < 4 luma edge of 16 samples (eq. 8-458 to 8-467).
fn luma_normal(
    px: &mut [u8],
    off: usize,
    across: usize,
    along: usize,
    alpha: i32,
    beta: i32,
    tc0: i32,
) {
    if alpha == 0 || beta == 0 {
        return;
    }
    for k in 0..16 {
        let q0i = off + k * along;
        let at = |i: isize| (q0i as isize + i * across as isize) as usize;
        let [p2, p1, p0, q0, q1, q2] = [-3, -2, -1, 0, 1, 2].map(|i| i32::from(px[at(i)]));
        if (p0 - q0).abs() >= alpha || (p1 - p0).abs() >= beta || (q1 - q0).abs() >= beta {
            continue;
        }
        let ap = (p2 - p0).abs() < beta;
        let aq = (q2 - q0).abs() < beta;
        let tc = tc0 + i32::from(ap) + i32::from(aq);
        let delta = ((((q0 - p0) << 2) + (p1 - q1) + 4) >> 3).clamp(-tc, tc);
        px[at(-1)] = (p0 + delta).clamp(0, 255) as u8;
        px[at(0)] = (q0 - delta).clamp(0, 255) as u8;
        if ap {
            px[at(-2)] =
                (p1 + ((p2 + ((p0 + q0 + 1) >> 1) - (p1 << 1)) >> 1).clamp(-tc0, tc0)) as u8;
        }
        if aq {
            px[at(1)] =
                (q1 + ((q2 + ((p0 + q0 + 1) >> 1) - (q1 << 1)) >> 1).clamp(-tc0, tc0)) as u8;
        }
    }
}

/// A chroma edge of 8 samples: bS 4 when `tc0` is `None`, else bS 3 with that t'C0.
fn chroma_edge(
    px: &mut [u8],
    off: usize,
    across: usize,
    along: usize,
    alpha: i32,
    beta: i32,
    tc0: Option<i32>,
) {
    if alpha == 0 || beta == 0 {
        return;
    }
    for k in 0..8 {
        let q0i = off + k * along;
        let (ip1, ip0, iq0, iq1) = (q0i - 2 * across, q0i - across, q0i, q0i + across);
        let (p1, p0, q0, q1) = (
            i32::from(px[ip1]),
            i32::from(px[ip0]),
            i32::from(px[iq0]),
            i32::from(px[iq1]),
        );
        if (p0 - q0).abs() >= alpha || (p1 - p0).abs() >= beta || (q1 - q0).abs() >= beta {
            continue;
        }
        match tc0 {
            None => {
                px[ip0] = ((2 * p1 + p0 + q1 + 2) >> 2) as u8;
                px[iq0] = ((2 * q1 + q0 + p1 + 2) >> 2) as u8;
            }
            Some(tc0) => {
                let tc = tc0 + 1;
                let delta = ((((q0 - p0) << 2) + (p1 - q1) + 4) >> 3).clamp(-tc, tc);
                px[ip0] = (p0 + delta).clamp(0, 255) as u8;
                px[iq0] = (q0 - delta).clamp(0, 255) as u8;
            }
        }
    }
}
