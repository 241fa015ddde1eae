//! Reconstruction of one intra macroblock into the picture (§8.3, §8.5): prediction from the
//! (not yet deblocked) neighbouring samples, then the scaled residual through the inverse
//! transforms. The DC transforms of Intra 16×16 luma and of chroma (§8.5.10, §8.5.11) live here.

use crate::Error;
use crate::dsp;
use crate::mb::{
    BLK_RASTER, KIND_I4, KIND_I8, KIND_I16, KIND_PCM, MbData, MbInfo, Neighbours, PictureState,
};
use crate::params::Pps;
use crate::pred::{self, Avail};
use crate::tables::chroma_qp;

/// Reconstructs `mb` at (mbx, mby) and returns what neighbours need of it.
pub(crate) fn reconstruct(
    pic: &mut PictureState,
    mb: &mut MbData,
    n: &Neighbours,
    mbx: usize,
    mby: usize,
    pps: &Pps,
    slice: u32,
) -> Result<MbInfo, Error> {
    let stride = pic.stride();
    let cstride = stride / 2;
    let chroma = pic.chroma;
    let qpc = [
        chroma_qp(mb.qp, pps.chroma_qp_offset[0]),
        chroma_qp(mb.qp, pps.chroma_qp_offset[1]),
    ];
    let mut info = MbInfo {
        slice,
        kind: mb.kind,
        cbp: mb.cbp,
        chroma_mode: mb.chroma_mode,
        t8: mb.t8,
        cbf_dc: mb.cbf_dc,
        qp: mb.qp as u8,
        qpc,
        nnz: mb.nnz,
        modes: mb.modes,
    };
    let luma_off = mby * 16 * stride + mbx * 16;
    if mb.kind == KIND_PCM {
        for y in 0..16 {
            if let Some(row) = pic
                .y
                .get_mut(luma_off + y * stride..luma_off + y * stride + 16)
            {
                row.copy_from_slice(&mb.pcm[y * 16..y * 16 + 16]);
            }
        }
        if chroma {
            let coff = mby * 8 * cstride + mbx * 8;
            for (c, plane) in [&mut pic.u, &mut pic.v].into_iter().enumerate() {
                for y in 0..8 {
                    let src = 256 + c * 64 + y * 8;
                    if let Some(row) = plane.get_mut(coff + y * cstride..coff + y * cstride + 8) {
                        row.copy_from_slice(&mb.pcm[src..src + 8]);
                    }
                }
            }
        }
        // Deblocking treats I_PCM samples as coded with qP = 0 (§8.7.2.2).
        info.qp = 0;
        info.qpc = [
            chroma_qp(0, pps.chroma_qp_offset[0]),
            chroma_qp(0, pps.chroma_qp_offset[1]),
        ];
        return Ok(info);
    }
    let have_a = n.a.is_some();
    let have_b = n.b.is_some();
    match mb.kind {
        KIND_I4 => {
            for &blk in &BLK_RASTER {
                let blk = usize::from(blk);
                let (bx, by) = (blk & 3, blk >> 2);
                let off = luma_off + by * 4 * stride + bx * 4;
                let has_left = bx > 0 || have_a;
                let has_top = by > 0 || have_b;
                let has_corner = match (bx > 0, by > 0) {
                    (true, true) => true,
                    (false, true) => have_a,
                    (true, false) => have_b,
                    (false, false) => n.d,
                };
                let has_tr = if by == 0 {
                    if bx < 3 { have_b } else { n.c }
                } else {
                    bx < 3 && !(bx == 1 && (by == 1 || by == 3))
                };
                let av = Avail {
                    top: has_top,
                    left: has_left,
                    corner: has_corner,
                    top_right: has_tr,
                };
                let block = pred::pred4(&pic.y, off, stride, av, mb.modes[blk])
                    .ok_or_else(|| bad_mode("intra 4x4", mb.modes[blk]))?;
                dsp::put_flat::<4, 16>(&mut pic.y, off, stride, &block);
                if mb.nnz[blk] != 0 {
                    let c = crate::cabac::sub16(&mut mb.luma, blk);
                    dsp::idct4_add(&mut pic.y, off, stride, c);
                }
            }
        }
        KIND_I8 => {
            for b8 in 0..4 {
                let (bx, by) = ((b8 & 1) * 2, (b8 >> 1) * 2);
                let off = luma_off + by * 4 * stride + bx * 4;
                let has_left = bx > 0 || have_a;
                let has_top = by > 0 || have_b;
                let has_corner = match (bx > 0, by > 0) {
                    (true, true) => true,
                    (false, true) => have_a,
                    (true, false) => have_b,
                    (false, false) => n.d,
                };
                let has_tr = match b8 {
                    0 => have_b,
                    1 => n.c,
                    2 => true,
                    _ => false,
                };
                let av = Avail {
                    top: has_top,
                    left: has_left,
                    corner: has_corner,
                    top_right: has_tr,
                };
                let mode = mb.modes[by * 4 + bx];
                let block = pred::pred8(&pic.y, off, stride, av, mode)
                    .ok_or_else(|| bad_mode("intra 8x8", mode))?;
                dsp::put_flat::<8, 64>(&mut pic.y, off, stride, &block);
                let k = by * 4 + bx;
                if mb.nnz[k] | mb.nnz[k + 1] | mb.nnz[k + 4] | mb.nnz[k + 5] != 0 {
                    let c = crate::cabac::sub64(&mut mb.luma, b8);
                    dsp::idct8_add(&mut pic.y, off, stride, c);
                }
            }
        }
        _ => {
            debug_assert_eq!(mb.kind, KIND_I16);
            let mut block = [[0u8; 16]; 16];
            large::<16>(
                &pic.y,
                luma_off,
                stride,
                mb.i16_mode,
                have_a,
                have_b,
                n.d,
                &mut block,
            )
            .ok_or_else(|| bad_mode("intra 16x16", mb.i16_mode))?;
            dsp::put(&mut pic.y, luma_off, stride, &block);
            let qp = mb.qp as usize;
            let ls = pps.dq.l4[0][qp % 6][0];
            let dc = luma_dc(&mb.dc, ls, (qp / 6) as u32);
            if !dc.iter().all(|&d| crate::params::in_range(d)) {
                return Err(crate::cabac::out_of_range());
            }
            for (blk, &d) in dc.iter().enumerate() {
                let c = crate::cabac::sub16(&mut mb.luma, blk);
                c[0] = d;
                let off = luma_off + (blk >> 2) * 4 * stride + (blk & 3) * 4;
                if mb.nnz[blk] != 0 {
                    dsp::idct4_add(&mut pic.y, off, stride, c);
                } else if c[0] != 0 {
                    dsp::dc4_add(&mut pic.y, off, stride, c);
                }
            }
        }
    }
    if chroma {
        let coff = mby * 8 * cstride + mbx * 8;
        // Chroma modes: 0 DC, 1 horizontal, 2 vertical, 3 plane (Table 7-16).
        for (c, plane) in [&mut pic.u, &mut pic.v].into_iter().enumerate() {
            let mut block = [[0u8; 8]; 8];
            match mb.chroma_mode {
                0 => chroma_dc(plane, coff, cstride, have_a, have_b, &mut block),
                m => {
                    let mode = match m {
                        1 => 1,
                        2 => 0,
                        _ => 3,
                    };
                    large::<8>(plane, coff, cstride, mode, have_a, have_b, n.d, &mut block)
                        .ok_or_else(|| bad_mode("intra chroma", m))?;
                }
            }
            dsp::put(plane, coff, cstride, &block);
            if mb.cbp >> 4 == 0 {
                continue;
            }
            let q = usize::from(qpc[c]);
            let ls = pps.dq.l4[1 + c][q % 6][0];
            let dc = chroma_dc_transform(&mb.cdc[c], ls, (q / 6) as u32);
            if !dc.iter().all(|&d| crate::params::in_range(d)) {
                return Err(crate::cabac::out_of_range());
            }
            for (b, &d) in dc.iter().enumerate() {
                let coeffs = crate::cabac::sub16(&mut mb.cac, c * 4 + b);
                coeffs[0] = d;
                let off = coff + (b >> 1) * 4 * cstride + (b & 1) * 4;
                if mb.nnz[16 + c * 4 + b] != 0 {
                    dsp::idct4_add(plane, off, cstride, coeffs);
                } else if d != 0 {
                    dsp::dc4_add(plane, off, cstride, coeffs);
                }
            }
        }
    }
    Ok(info)
}

fn bad_mode(what: &str, mode: u8) -> Error {
    Error::Malformed(format!(
        "{what} prediction mode {mode} uses unavailable samples"
    ))
}

/// Intra 16×16 luma or chroma prediction other than chroma DC; `None` when the mode needs
/// unavailable samples.
#[expect(
    clippy::too_many_arguments,
    reason = "the prediction inputs, kept flat for inlining"
)]
fn large<const N: usize>(
    plane: &[u8],
    off: usize,
    stride: usize,
    mode: u8,
    have_left: bool,
    have_top: bool,
    have_corner: bool,
    out: &mut [[u8; N]; N],
) -> Option<()> {
    let mut top = [0i32; N];
    let mut left = [0i32; N];
    if have_top {
        let row = plane.get(off - stride..off - stride + N)?;
        for (t, &s) in top.iter_mut().zip(row) {
            *t = i32::from(s);
        }
    }
    if have_left {
        for (y, l) in left.iter_mut().enumerate() {
            *l = i32::from(*plane.get(off + y * stride - 1)?);
        }
    }
    match mode {
        0 if have_top => dsp::pred_large(&top, &left, 0, 0, out),
        1 if have_left => dsp::pred_large(&top, &left, 0, 1, out),
        2 => {
            // Intra 16×16 DC (eq. 8-111 to 8-114).
            let st: i32 = top.iter().sum();
            let sl: i32 = left.iter().sum();
            let dc = match (have_top, have_left) {
                (true, true) => (st + sl + 16) >> 5,
                (true, false) => (st + 8) >> 4,
                (false, true) => (sl + 8) >> 4,
                (false, false) => 128,
            };
            *out = [[dc as u8; N]; N];
        }
        3 if have_top && have_left && have_corner => {
            let corner = i32::from(*plane.get(off - stride - 1)?);
            dsp::pred_large(&top, &left, corner, 3, out);
        }
        _ => return None,
    }
    Some(())
}

/// Chroma DC prediction of the four 4×4 blocks of an 8×8 chroma block (§8.3.4.1–8.3.4.3).
fn chroma_dc(
    plane: &[u8],
    off: usize,
    stride: usize,
    have_left: bool,
    have_top: bool,
    out: &mut [[u8; 8]; 8],
) {
    let mut top = [0i32; 2];
    let mut left = [0i32; 2];
    if have_top && let Some(row) = off.checked_sub(stride).and_then(|a| plane.get(a..a + 8)) {
        top[0] = row[..4].iter().map(|&v| i32::from(v)).sum();
        top[1] = row[4..].iter().map(|&v| i32::from(v)).sum();
    }
    if have_left {
        for y in 0..8 {
            left[y / 4] += i32::from(plane.get(off + y * stride - 1).copied().unwrap_or(0));
        }
    }
    for b in 0..4 {
        let (bx, by) = (b & 1, b >> 1);
        let both = (top[bx] + left[by] + 4) >> 3;
        let t = (top[bx] + 2) >> 2;
        let l = (left[by] + 2) >> 2;
        let dc = match (have_top, have_left) {
            (true, true) if bx == by => both,
            // Block (1, 0) prefers the top row, block (0, 1) the left column.
            (true, true) if bx == 1 => t,
            (true, true) => l,
            (true, false) => t,
            (false, true) => l,
            (false, false) => 128,
        };
        for row in &mut out[by * 4..by * 4 + 4] {
            row[bx * 4..bx * 4 + 4].fill(dc as u8);
        }
    }
}

/// Inverse Hadamard of the Intra 16×16 luma DC levels (raster 4×4) and their scaling
/// (§8.5.10): the DC coefficient of each 4×4 block, in raster block order.
fn luma_dc(c: &[i32; 16], ls: i32, qp6: u32) -> [i32; 16] {
    let mut t = [0i32; 16];
    for i in 0..4 {
        let r = &c[i * 4..i * 4 + 4];
        let (s0, s1, d0, d1) = (r[0] + r[1], r[2] + r[3], r[0] - r[1], r[2] - r[3]);
        t[i * 4] = s0 + s1;
        t[i * 4 + 1] = s0 - s1;
        t[i * 4 + 2] = d0 - d1;
        t[i * 4 + 3] = d0 + d1;
    }
    let mut f = [0i32; 16];
    for j in 0..4 {
        let (a, b, c2, d) = (t[j], t[4 + j], t[8 + j], t[12 + j]);
        let (s0, s1, d0, d1) = (a + b, c2 + d, a - b, c2 - d);
        f[j] = s0 + s1;
        f[4 + j] = s0 - s1;
        f[8 + j] = d0 - d1;
        f[12 + j] = d0 + d1;
    }
    f.map(|v| {
        let p = i64::from(v) * i64::from(ls);
        let d = if qp6 >= 6 {
            p << (qp6 - 6)
        } else {
            (p + (1 << (5 - qp6))) >> (6 - qp6)
        };
        d.clamp(-32769, 32768) as i32
    })
}

/// Inverse 2×2 transform of chroma DC levels and their scaling (§8.5.11.1–8.5.11.2, 4:2:0).
fn chroma_dc_transform(c: &[i32; 4], ls: i32, qp6: u32) -> [i32; 4] {
    let f = [
        c[0] + c[1] + c[2] + c[3],
        c[0] - c[1] + c[2] - c[3],
        c[0] + c[1] - c[2] - c[3],
        c[0] - c[1] - c[2] + c[3],
    ];
    f.map(|v| ((((i64::from(v) * i64::from(ls)) << qp6) >> 5).clamp(-32769, 32768)) as i32)
}
