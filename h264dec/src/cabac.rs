//! CABAC (§9.3): the arithmetic decoding engine and the macroblock layer of I slices —
//! mb_type, transform_size_8x8_flag, intra modes, coded_block_pattern, mb_qp_delta and
//! residual blocks — with their context index derivations (§9.3.3.1.1).

use crate::Error;
use crate::mb::{BLK_RASTER, KIND_I4, KIND_I8, KIND_I16, KIND_PCM, MbData, Neighbours};
use crate::params::{Pps, scale4, scale8};
use crate::tables::{CABAC_INIT_I, LAST8_INC, RANGE_LPS, SIG8_INC, TRANS_LPS, ZIGZAG4, ZIGZAG8};

/// The arithmetic decoding engine (§9.3.1.2, §9.3.3.2). `value` holds codIOffset shifted left
/// by `bits` plus the next `bits` bits of the stream, so renormalisation only lowers `bits`.
struct Engine<'a> {
    data: &'a [u8],
    /// Next byte to load.
    pos: usize,
    range: u32,
    value: u32,
    bits: i32,
}

impl<'a> Engine<'a> {
    fn new(data: &'a [u8], start: usize) -> Result<Self, Error> {
        let byte = |i: usize| u32::from(data.get(i).copied().unwrap_or(0));
        let value = (byte(start) << 16) | (byte(start + 1) << 8) | byte(start + 2);
        if start >= data.len() {
            return Err(Error::malformed("cabac slice data is empty"));
        }
        if value >> 15 >= 510 {
            return Err(Error::malformed("cabac codIOffset starts at 510 or 511"));
        }
        Ok(Engine {
            data,
            pos: start + 3,
            range: 510,
            value,
            bits: 15,
        })
    }

    #[inline(always)]
    fn refill(&mut self) {
        let b0 = u32::from(self.data.get(self.pos).copied().unwrap_or(0));
        let b1 = u32::from(self.data.get(self.pos + 1).copied().unwrap_or(0));
        self.pos += 2;
        self.value = (self.value << 16) | (b0 << 8) | b1;
        self.bits += 16;
    }

    /// Bit position of the spec's bitstream pointer (bits consumed into codIOffset).
    fn bit_position(&self) -> usize {
        (self.pos * 8).saturating_sub(self.bits as usize)
    }

    #[inline(always)]
    fn decision(&mut self, state: &mut u8) -> u32 {
        let s = usize::from(*state & 127);
        let lps = u32::from(RANGE_LPS[s >> 1][((self.range >> 6) & 3) as usize]);
        let rmps = self.range - lps;
        let scaled = rmps << self.bits;
        let bin;
        if self.value < scaled {
            bin = (s & 1) as u32;
            *state = NEXT_MPS[s];
            // rangeTabLPS is at most half the range, so one doubling renormalises.
            let shift = u32::from(rmps < 256);
            self.range = rmps << shift;
            self.bits -= shift as i32;
        } else {
            self.value -= scaled;
            bin = (s & 1) as u32 ^ 1;
            *state = NEXT_LPS[s];
            let n = lps.leading_zeros() - 23;
            self.range = lps << n;
            self.bits -= n as i32;
        }
        if self.bits < 0 {
            self.refill();
        }
        bin
    }

    #[inline(always)]
    fn bypass(&mut self) -> u32 {
        self.bits -= 1;
        if self.bits < 0 {
            self.refill();
        }
        let scaled = self.range << self.bits;
        if self.value >= scaled {
            self.value -= scaled;
            1
        } else {
            0
        }
    }

    fn terminate(&mut self) -> u32 {
        self.range -= 2;
        let scaled = self.range << self.bits;
        if self.value >= scaled {
            1
        } else {
            if self.range < 256 {
                self.range <<= 1;
                self.bits -= 1;
                if self.bits < 0 {
                    self.refill();
                }
            }
            0
        }
    }
}

/// State after an MPS / an LPS by state (pStateIdx << 1 | valMPS), from Table 9-45.
const NEXT_MPS: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut s = 0;
    while s < 128 {
        let p = s >> 1;
        let next = if p < 62 { p + 1 } else { p };
        t[s] = ((next << 1) | (s & 1)) as u8;
        s += 1;
    }
    t
};
const NEXT_LPS: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut s = 0;
    while s < 128 {
        let p = s >> 1;
        let mps = if p == 0 { (s & 1) ^ 1 } else { s & 1 };
        t[s] = (TRANS_LPS[p] << 1) | mps as u8;
        s += 1;
    }
    t
};

/// Context index offsets by ctxBlockCat 0..4 (Table 9-40): coded_block_flag,
/// significant_coeff_flag, last_significant_coeff_flag, coeff_abs_level_minus1.
const CBF_BASE: [usize; 5] = [85, 89, 93, 97, 101];
const SIG_BASE: [usize; 6] = [105, 120, 134, 149, 152, 402];
const LAST_BASE: [usize; 6] = [166, 181, 195, 210, 213, 417];
const ABS_BASE: [usize; 6] = [227, 237, 247, 257, 266, 426];

/// Context states (pStateIdx << 1 | valMPS) initialised for SliceQPY `qp` (§9.3.1.1).
pub(crate) fn init_contexts(qp: i32) -> [u8; 460] {
    let mut ctx = [0u8; 460];
    let qp = qp.clamp(0, 51);
    for (c, &(m, n)) in ctx.iter_mut().zip(CABAC_INIT_I.iter()) {
        let pre = (((i32::from(m) * qp) >> 4) + i32::from(n)).clamp(1, 126);
        *c = if pre <= 63 {
            ((63 - pre) as u8) << 1
        } else {
            (((pre - 64) as u8) << 1) | 1
        };
    }
    ctx
}

/// Decodes the macroblocks of one CABAC slice.
pub(crate) struct SliceDecoder<'a> {
    e: Engine<'a>,
    ctx: [u8; 460],
    /// mb_qp_delta of the previous macroblock was non-zero (ctxIdxInc of §9.3.3.1.1.5).
    last_dqp: bool,
}

impl<'a> SliceDecoder<'a> {
    /// A decoder with contexts `ctx` (from [`init_contexts`]) and the engine at byte `start`.
    pub(crate) fn new(data: &'a [u8], start: usize, ctx: &[u8; 460]) -> Result<Self, Error> {
        Ok(SliceDecoder {
            e: Engine::new(data, start)?,
            ctx: *ctx,
            last_dqp: false,
        })
    }

    #[inline(always)]
    fn dec(&mut self, idx: usize) -> u32 {
        let e = &mut self.e;
        match self.ctx.get_mut(idx) {
            Some(s) => e.decision(s),
            None => 0,
        }
    }

    /// Parses one macroblock into `mb`; returns end_of_slice_flag.
    pub(crate) fn macroblock(
        &mut self,
        mb: &mut MbData,
        n: &Neighbours,
        pps: &Pps,
        chroma: bool,
        si: bool,
    ) -> Result<bool, Error> {
        if si {
            // mb_type prefix of SI slices (ctxIdx 0..2): 0 is the SI macroblock type.
            let inc = u32::from(n.a.is_some()) + u32::from(n.b.is_some());
            if self.dec(inc as usize) == 0 {
                return Err(Error::unsupported("si macroblocks"));
            }
        }
        // mb_type of I slices (Table 9-36, ctxIdx 3..10).
        let cond = |m: Option<crate::mb::MbInfo>| {
            u32::from(m.is_some_and(|m| m.kind != KIND_I4 && m.kind != KIND_I8))
        };
        let inc = cond(n.a) + cond(n.b);
        mb.t8 = false;
        mb.cbf_dc = 0;
        if self.dec(3 + inc as usize) == 0 {
            mb.kind = KIND_I4;
        } else if self.e.terminate() == 1 {
            return self.pcm(mb, chroma);
        } else {
            mb.kind = KIND_I16;
            let luma = self.dec(3 + 3);
            let mut cbp_chroma = self.dec(3 + 4);
            if cbp_chroma != 0 {
                cbp_chroma += self.dec(3 + 5);
            }
            let mode = (self.dec(3 + 6) << 1) | self.dec(3 + 7);
            mb.i16_mode = mode as u8;
            mb.cbp = (if luma == 1 { 15 } else { 0 }) | (cbp_chroma << 4) as u8;
        }
        if mb.kind == KIND_I4 {
            if pps.transform_8x8 {
                let inc =
                    u32::from(n.a.is_some_and(|m| m.t8)) + u32::from(n.b.is_some_and(|m| m.t8));
                mb.t8 = self.dec(399 + inc as usize) == 1;
            }
            if mb.t8 {
                mb.kind = KIND_I8;
                for b8 in 0..4 {
                    let (bx, by) = ((b8 & 1) * 2, (b8 >> 1) * 2);
                    let mode = self.pred_mode(n, &mb.modes, bx, by);
                    for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                        mb.modes[(by + dy) * 4 + bx + dx] = mode;
                    }
                }
            } else {
                for &blk in &BLK_RASTER {
                    let blk = usize::from(blk);
                    mb.modes[blk] = self.pred_mode(n, &mb.modes, blk & 3, blk >> 2);
                }
            }
        } else {
            mb.modes = [2; 16];
        }
        mb.chroma_mode = 0;
        if chroma {
            // intra_chroma_pred_mode (ctxIdx 64..67).
            let cond = |m: Option<crate::mb::MbInfo>| {
                u32::from(m.is_some_and(|m| m.kind != KIND_PCM && m.chroma_mode != 0))
            };
            let inc = cond(n.a) + cond(n.b);
            let mut mode = 0u8;
            if self.dec(64 + inc as usize) == 1 {
                mode = 1;
                if self.dec(67) == 1 {
                    mode = 2;
                    if self.dec(67) == 1 {
                        mode = 3;
                    }
                }
            }
            mb.chroma_mode = mode;
        }
        if mb.kind != KIND_I16 {
            mb.cbp = self.cbp(n, chroma);
        }
        mb.nnz = [0; 24];
        mb.dc = [0; 16];
        mb.cdc = [[0; 4]; 2];
        let has_residual = mb.cbp != 0 || mb.kind == KIND_I16;
        if has_residual {
            self.qp_delta(mb)?;
        } else {
            self.last_dqp = false;
        }
        if has_residual {
            self.residual(mb, n, pps, chroma)?;
        }
        self.finish_mb()
    }

    /// end_of_slice_flag, with the check that the slice did not run past its data.
    fn finish_mb(&mut self) -> Result<bool, Error> {
        let end = self.e.terminate() == 1;
        if self.e.bit_position() > self.e.data.len() * 8 {
            return Err(Error::malformed("cabac slice data is cut short"));
        }
        Ok(end)
    }

    /// I_PCM: pcm samples at the next byte boundary, then a fresh engine (§9.3.1.2).
    fn pcm(&mut self, mb: &mut MbData, chroma: bool) -> Result<bool, Error> {
        mb.kind = KIND_PCM;
        let start = self.e.bit_position().div_ceil(8);
        let len = if chroma { 384 } else { 256 };
        let bytes = self
            .e
            .data
            .get(start..start + len)
            .ok_or_else(|| Error::malformed("i_pcm samples run past the slice data"))?;
        mb.pcm[..len].copy_from_slice(bytes);
        mb.cbp = 0x2f;
        mb.modes = [2; 16];
        mb.chroma_mode = 0;
        mb.nnz = [16; 24];
        mb.cbf_dc = 7;
        self.last_dqp = false;
        self.e = Engine::new(self.e.data, start + len)?;
        self.finish_mb()
    }

    /// prev_intra4x4_pred_mode_flag / rem_intra4x4_pred_mode (ctxIdx 68, 69) and the mode
    /// derivation of §8.3.1.1 for the block at (bx, by).
    fn pred_mode(&mut self, n: &Neighbours, cur: &[u8; 16], bx: usize, by: usize) -> u8 {
        let (left, top) = n.modes_around(cur, bx, by);
        let predicted = match (left, top) {
            (Some(a), Some(b)) => a.min(b),
            _ => 2,
        };
        if self.dec(68) == 1 {
            return predicted;
        }
        let rem = (self.dec(69) | (self.dec(69) << 1) | (self.dec(69) << 2)) as u8;
        if rem < predicted { rem } else { rem + 1 }
    }

    /// coded_block_pattern (§9.3.3.1.1.4, ctxIdx 73..84).
    fn cbp(&mut self, n: &Neighbours, chroma: bool) -> u8 {
        let mut luma = 0u8;
        for b8 in 0..4usize {
            // Left and top 8×8 blocks: condTermFlagN = 1 when that block's cbp bit is 0.
            let left = if b8 & 1 == 1 {
                Some((luma >> (b8 - 1)) & 1)
            } else {
                n.a.map(|m| (m.cbp >> (b8 + 1)) & 1)
            };
            let top = if b8 >= 2 {
                Some((luma >> (b8 - 2)) & 1)
            } else {
                n.b.map(|m| (m.cbp >> (b8 + 2)) & 1)
            };
            let inc = u32::from(left == Some(0)) + 2 * u32::from(top == Some(0));
            luma |= (self.dec(73 + inc as usize) as u8) << b8;
        }
        let mut c = 0u8;
        if chroma {
            let ca = n.a.map_or(0, |m| m.cbp >> 4);
            let cb = n.b.map_or(0, |m| m.cbp >> 4);
            let inc = u32::from(ca != 0) + 2 * u32::from(cb != 0);
            if self.dec(77 + inc as usize) == 1 {
                let inc = u32::from(ca == 2) + 2 * u32::from(cb == 2);
                c = 1 + self.dec(81 + inc as usize) as u8;
            }
        }
        luma | (c << 4)
    }

    /// mb_qp_delta (§9.3.2.7, ctxIdx 60..63) applied to mb.qp.
    fn qp_delta(&mut self, mb: &mut MbData) -> Result<(), Error> {
        let mut k = 0i32;
        if self.dec(60 + usize::from(self.last_dqp)) == 1 {
            k = 1;
            let mut ctx = 62;
            while self.dec(ctx) == 1 {
                k += 1;
                ctx = 63;
                if k > 52 {
                    return Err(Error::malformed("mb_qp_delta outside -26..=25"));
                }
            }
        }
        let delta = if k & 1 == 1 { (k + 1) / 2 } else { -(k / 2) };
        if !(-26..=25).contains(&delta) {
            return Err(Error::Malformed(format!(
                "mb_qp_delta {delta} outside -26..=25"
            )));
        }
        self.last_dqp = delta != 0;
        mb.qp = (mb.qp + delta + 52) % 52;
        Ok(())
    }

    /// residual() of an intra macroblock (§7.3.5.3) for 4:2:0 / 4:0:0.
    fn residual(
        &mut self,
        mb: &mut MbData,
        n: &Neighbours,
        pps: &Pps,
        chroma: bool,
    ) -> Result<(), Error> {
        let qp = mb.qp as usize;
        let (qp6, qp_rem) = ((qp / 6) as u32, qp % 6);
        if mb.kind == KIND_I16 {
            // Luma DC: coded_block_flag from the neighbours' DC blocks.
            let ca = n.a.map_or(1, |m| u32::from(m.cbf_dc & 1));
            let cb = n.b.map_or(1, |m| u32::from(m.cbf_dc & 1));
            if self.dec(CBF_BASE[0] + (ca + 2 * cb) as usize) == 1 {
                mb.cbf_dc |= 1;
                let mut levels = [0i32; 16];
                self.block::<_, 0, 16>(&mut levels, &ZIGZAG4, 0, |l, _| l)?;
                mb.dc = levels;
            }
            if mb.cbp & 15 != 0 {
                let ls = &pps.dq.l4[0][qp_rem];
                for &blk in &BLK_RASTER {
                    let blk = usize::from(blk);
                    let (bx, by) = (blk & 3, blk >> 2);
                    let inc = cbf_inc(n.nnz_left(&mb.nnz, bx, by), n.nnz_top(&mb.nnz, bx, by));
                    if self.dec(CBF_BASE[1] + inc) == 1 {
                        let out: &mut [i32; 16] = sub16(&mut mb.luma, blk);
                        let count = self.block::<_, 1, 15>(out, &ZIGZAG4, 1, |l, pos| {
                            scale4(l, ls[pos], qp6)
                        })?;
                        mb.nnz[blk] = count;
                    }
                }
            }
        } else if mb.t8 {
            let ls = &pps.dq.l8[qp_rem];
            for b8 in 0..4 {
                if mb.cbp & (1 << b8) == 0 {
                    continue;
                }
                let out: &mut [i32; 64] = sub64(&mut mb.luma, b8);
                let count =
                    self.block::<_, 5, 64>(out, &ZIGZAG8, 0, |l, pos| scale8(l, ls[pos], qp6))?;
                let (bx, by) = ((b8 & 1) * 2, (b8 >> 1) * 2);
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    mb.nnz[(by + dy) * 4 + bx + dx] = count;
                }
            }
        } else {
            let ls = &pps.dq.l4[0][qp_rem];
            for (i, &blk) in BLK_RASTER.iter().enumerate() {
                if mb.cbp & (1 << (i / 4)) == 0 {
                    continue;
                }
                let blk = usize::from(blk);
                let (bx, by) = (blk & 3, blk >> 2);
                let inc = cbf_inc(n.nnz_left(&mb.nnz, bx, by), n.nnz_top(&mb.nnz, bx, by));
                if self.dec(CBF_BASE[2] + inc) == 1 {
                    let out: &mut [i32; 16] = sub16(&mut mb.luma, blk);
                    let count =
                        self.block::<_, 2, 16>(out, &ZIGZAG4, 0, |l, pos| scale4(l, ls[pos], qp6))?;
                    mb.nnz[blk] = count;
                }
            }
        }
        if !chroma || mb.cbp >> 4 == 0 {
            return Ok(());
        }
        for c in 0..2 {
            let bit = 2 << c;
            let ca = n.a.map_or(1, |m| u32::from(m.cbf_dc & bit != 0));
            let cb = n.b.map_or(1, |m| u32::from(m.cbf_dc & bit != 0));
            if self.dec(CBF_BASE[3] + (ca + 2 * cb) as usize) == 1 {
                mb.cbf_dc |= bit;
                let mut levels = [0i32; 4];
                self.block::<_, 3, 4>(&mut levels, &[0, 1, 2, 3], 0, |l, _| l)?;
                mb.cdc[c] = levels;
            }
        }
        if mb.cbp >> 4 != 2 {
            return Ok(());
        }
        for c in 0..2 {
            let qpc = usize::from(crate::tables::chroma_qp(mb.qp, pps.chroma_qp_offset[c]));
            let ls = &pps.dq.l4[1 + c][qpc % 6];
            let qp6 = (qpc / 6) as u32;
            for b in 0..4 {
                let (bx, by) = (b & 1, b >> 1);
                let inc = cbf_inc(
                    n.cnnz_left(&mb.nnz, c, bx, by),
                    n.cnnz_top(&mb.nnz, c, bx, by),
                );
                if self.dec(CBF_BASE[4] + inc) == 1 {
                    let out: &mut [i32; 16] = sub16(&mut mb.cac, c * 4 + b);
                    let count =
                        self.block::<_, 4, 15>(out, &ZIGZAG4, 1, |l, pos| scale4(l, ls[pos], qp6))?;
                    mb.nnz[16 + c * 4 + b] = count;
                }
            }
        }
        Ok(())
    }

    /// residual_block_cabac() after its coded_block_flag (§7.3.5.3.3): significance map, then
    /// levels in reverse scan order. Coefficient `i` lands at `scan[i + first]`, scaled by
    /// `scale(level, raster position)`. Returns the number of coefficients.
    #[inline(always)]
    fn block<const N: usize, const CAT: usize, const MAX: usize>(
        &mut self,
        out: &mut [i32; N],
        scan: &[u8],
        first: usize,
        scale: impl Fn(i32, usize) -> i32,
    ) -> Result<u8, Error> {
        let (cat, max) = (CAT, MAX);
        let mut idx = [0u8; 64];
        let mut count = 0usize;
        let (sig, last) = (SIG_BASE[cat], LAST_BASE[cat]);
        let mut i = 0usize;
        let mut found_last = false;
        while i + 1 < max {
            let (si, li) = if cat == 5 {
                (usize::from(SIG8_INC[i]), usize::from(LAST8_INC[i]))
            } else {
                (i, i)
            };
            if self.dec(sig + si) == 1 {
                idx[count] = i as u8;
                count += 1;
                if self.dec(last + li) == 1 {
                    found_last = true;
                    break;
                }
            }
            i += 1;
        }
        if !found_last {
            idx[count] = (max - 1) as u8;
            count += 1;
        }
        let abs = ABS_BASE[cat];
        let gt1_cap = if cat == 3 { 3 } else { 4 };
        let (mut eq1, mut gt1) = (0u32, 0u32);
        let mut in_range = true;
        for k in (0..count).rev() {
            let inc = if gt1 != 0 { 0 } else { (1 + eq1).min(4) };
            let mut level: u32 = 1;
            if self.dec(abs + inc as usize) == 1 {
                let inc2 = 5 + gt1.min(gt1_cap);
                level = 2;
                while level < 15 && self.dec(abs + inc2 as usize) == 1 {
                    level += 1;
                }
                if level == 15 {
                    level += self.exp_golomb0()?;
                }
                gt1 += 1;
            } else {
                eq1 += 1;
            }
            let level = level.min(1 << 20) as i32;
            let value = if self.e.bypass() == 1 { -level } else { level };
            let pos = usize::from(scan.get(usize::from(idx[k]) + first).copied().unwrap_or(0));
            if let Some(slot) = out.get_mut(pos) {
                let d = scale(value, pos);
                in_range &= crate::params::in_range(d);
                *slot = d;
            }
        }
        if !in_range {
            return Err(out_of_range());
        }
        Ok(count as u8)
    }

    /// The Exp-Golomb (k = 0) bypass suffix of coeff_abs_level_minus1 (§9.3.2.3).
    fn exp_golomb0(&mut self) -> Result<u32, Error> {
        let mut k = 0u32;
        let mut value = 0u32;
        while self.e.bypass() == 1 {
            value += 1 << k;
            k += 1;
            if k > 20 {
                return Err(Error::malformed("coeff_abs_level_minus1 suffix too long"));
            }
        }
        while k > 0 {
            k -= 1;
            value += self.e.bypass() << k;
        }
        Ok(value)
    }
}

/// A scaled coefficient beyond the 16 bits a conforming stream keeps to (§8.5.12.1).
pub(crate) fn out_of_range() -> Error {
    Error::malformed("scaled transform coefficient outside the 16-bit range of conforming streams")
}

/// ctxIdxInc of coded_block_flag from the neighbouring blocks' coefficient counts; an
/// unavailable neighbour of an intra macroblock counts as coded (§9.3.3.1.1.9).
#[inline(always)]
fn cbf_inc(left: Option<u8>, top: Option<u8>) -> usize {
    usize::from(left.is_none_or(|c| c != 0)) + 2 * usize::from(top.is_none_or(|c| c != 0))
}

/// The 16 coefficients of 4×4 block `blk` in a flat buffer.
#[inline(always)]
pub(crate) fn sub16<const N: usize>(buf: &mut [i32; N], blk: usize) -> &mut [i32; 16] {
    let start = (blk * 16).min(N - 16);
    <&mut [i32; 16]>::try_from(&mut buf[start..start + 16]).unwrap_or_else(|_| unreachable!())
}

/// The 64 coefficients of 8×8 block `b8` in the luma buffer.
#[inline(always)]
pub(crate) fn sub64(buf: &mut [i32; 256], b8: usize) -> &mut [i32; 64] {
    let start = (b8 & 3) * 64;
    <&mut [i32; 64]>::try_from(&mut buf[start..start + 64]).unwrap_or_else(|_| unreachable!())
}
