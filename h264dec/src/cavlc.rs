//! CAVLC (§9.2): the macroblock layer of I slices with Exp-Golomb syntax elements and the
//! residual_block_cavlc() code tables (coeff_token, level, total_zeros, run_before).

use std::sync::OnceLock;

use crate::Error;
use crate::bits::BitReader;
use crate::cabac::{sub16, sub64};
use crate::mb::{BLK_RASTER, KIND_I4, KIND_I8, KIND_I16, KIND_PCM, MbData, Neighbours};
use crate::params::{Pps, scale4, scale8};
use crate::tables::{
    CBP_INTRA, CBP_INTRA_GRAY, COEFF_TOKEN_CHROMA_DC, COEFF_TOKEN_NC0, COEFF_TOKEN_NC2,
    COEFF_TOKEN_NC4, RUN_BEFORE, TOTAL_ZEROS, TOTAL_ZEROS_CDC, ZIGZAG4, ZIGZAG8,
};

/// A prefix code decoded by its count of leading zeros, then the bits after them.
struct Vlc {
    /// Per leading-zero count (capped at `cap`): offset into `entries` and suffix bit count.
    groups: Vec<(u16, u8)>,
    cap: u32,
    /// (code length, value); length 0 marks a bit pattern that is no code.
    entries: Vec<(u8, u16)>,
}

impl Vlc {
    fn new(codes: &[(u8, u16, u16)]) -> Self {
        let zeros = |len: u8, code: u16| -> u32 {
            if code == 0 {
                u32::from(len)
            } else {
                u32::from(len) - (16 - code.leading_zeros())
            }
        };
        let cap = codes
            .iter()
            .map(|&(l, c, _)| zeros(l, c))
            .max()
            .unwrap_or(0);
        let mut groups = Vec::new();
        let mut entries = Vec::new();
        for z in 0..=cap {
            let suffix = codes
                .iter()
                .filter(|&&(l, c, _)| zeros(l, c) == z)
                .map(|&(l, _, _)| u32::from(l) - z)
                .max()
                .unwrap_or(0);
            groups.push((entries.len() as u16, suffix as u8));
            let base = entries.len();
            entries.resize(base + (1usize << suffix), (0, 0));
            for &(l, c, v) in codes.iter().filter(|&&(l, c, _)| zeros(l, c) == z) {
                let tail = u32::from(l) - z;
                let first = (usize::from(c) & ((1 << tail) - 1)) << (suffix - tail);
                for e in &mut entries[base + first..base + first + (1 << (suffix - tail))] {
                    *e = (l, v);
                }
            }
        }
        Vlc {
            groups,
            cap,
            entries,
        }
    }

    #[inline]
    fn read(&self, r: &mut BitReader<'_>) -> Result<u16, Error> {
        let bits = r.peek32();
        let z = bits.leading_zeros().min(self.cap);
        let (offset, suffix) = self.groups[z as usize];
        let index = if suffix == 0 {
            0
        } else {
            ((bits << z) >> (32 - u32::from(suffix))) as usize
        };
        match self.entries.get(usize::from(offset) + index) {
            Some(&(len, value)) if len > 0 => {
                r.skip(u32::from(len))?;
                Ok(value)
            }
            _ => Err(Error::malformed("invalid cavlc code")),
        }
    }
}

struct Tables {
    /// coeff_token for nC 0..2, 2..4, 4..8 and chroma DC; value TotalCoeff << 2 | TrailingOnes.
    coeff_token: [Vlc; 4],
    total_zeros: Vec<Vlc>,
    total_zeros_cdc: Vec<Vlc>,
    run_before: Vec<Vlc>,
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let token = |t: &[[(u8, u16); 4]]| {
            let mut codes = Vec::new();
            for (tc, row) in t.iter().enumerate() {
                for (t1, &(len, code)) in row.iter().enumerate() {
                    if len > 0 {
                        codes.push((len, code, ((tc as u16) << 2) | t1 as u16));
                    }
                }
            }
            Vlc::new(&codes)
        };
        let list = |t: &[(u8, u16)]| {
            let codes: Vec<_> = t
                .iter()
                .enumerate()
                .map(|(v, &(l, c))| (l, c, v as u16))
                .collect();
            Vlc::new(&codes)
        };
        Tables {
            coeff_token: [
                token(&COEFF_TOKEN_NC0),
                token(&COEFF_TOKEN_NC2),
                token(&COEFF_TOKEN_NC4),
                token(&COEFF_TOKEN_CHROMA_DC),
            ],
            total_zeros: TOTAL_ZEROS.iter().map(|t| list(t)).collect(),
            total_zeros_cdc: TOTAL_ZEROS_CDC.iter().map(|t| list(t)).collect(),
            run_before: RUN_BEFORE.iter().map(|t| list(t)).collect(),
        }
    })
}

/// nC from the neighbouring blocks' TotalCoeff (§9.2.1).
#[inline]
fn nc(left: Option<u8>, top: Option<u8>) -> i32 {
    match (left, top) {
        (Some(a), Some(b)) => (i32::from(a) + i32::from(b) + 1) >> 1,
        (Some(a), None) => i32::from(a),
        (None, Some(b)) => i32::from(b),
        (None, None) => 0,
    }
}

/// Decodes the macroblocks of one CAVLC slice.
pub(crate) struct SliceDecoder<'a> {
    r: BitReader<'a>,
    /// Bit position of the rbsp_stop_one_bit: more_rbsp_data() is `position < stop`.
    stop: usize,
    t: &'static Tables,
}

impl<'a> SliceDecoder<'a> {
    pub(crate) fn new(r: BitReader<'a>) -> Self {
        let data = r.data();
        let stop = data
            .iter()
            .rposition(|&b| b != 0)
            .and_then(|i| Some(i * 8 + 7 - data.get(i)?.trailing_zeros() as usize))
            .unwrap_or(0);
        SliceDecoder {
            r,
            stop,
            t: tables(),
        }
    }

    /// Parses one macroblock into `mb`; returns true when no more slice data follows.
    pub(crate) fn macroblock(
        &mut self,
        mb: &mut MbData,
        n: &Neighbours,
        pps: &Pps,
        chroma: bool,
        si: bool,
    ) -> Result<bool, Error> {
        let mut mb_type = self.r.ue_max(26, "mb_type")?;
        if si {
            if mb_type == 0 {
                return Err(Error::unsupported("si macroblocks"));
            }
            mb_type -= 1;
        }
        if mb_type > 25 {
            return Err(Error::Malformed(format!("mb_type {mb_type} of an i slice")));
        }
        mb.t8 = false;
        mb.cbf_dc = 0;
        mb.nnz = [0; 24];
        mb.dc = [0; 16];
        mb.cdc = [[0; 4]; 2];
        if mb_type == 25 {
            return self.pcm(mb, chroma);
        }
        if mb_type == 0 {
            mb.kind = KIND_I4;
            if pps.transform_8x8 {
                mb.t8 = self.r.flag()?;
            }
            if mb.t8 {
                mb.kind = KIND_I8;
                for b8 in 0..4 {
                    let (bx, by) = ((b8 & 1) * 2, (b8 >> 1) * 2);
                    let mode = self.pred_mode(n, &mb.modes, bx, by)?;
                    for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                        mb.modes[(by + dy) * 4 + bx + dx] = mode;
                    }
                }
            } else {
                for &blk in &BLK_RASTER {
                    let blk = usize::from(blk);
                    mb.modes[blk] = self.pred_mode(n, &mb.modes, blk & 3, blk >> 2)?;
                }
            }
        } else {
            mb.kind = KIND_I16;
            let t = mb_type - 1;
            mb.i16_mode = (t % 4) as u8;
            mb.cbp = (((t / 4) % 3) << 4) as u8 | if t >= 12 { 15 } else { 0 };
            mb.modes = [2; 16];
        }
        mb.chroma_mode = if chroma {
            self.r.ue_max(3, "intra_chroma_pred_mode")? as u8
        } else {
            0
        };
        if mb.kind != KIND_I16 {
            mb.cbp = if chroma {
                CBP_INTRA[self.r.ue_max(47, "coded_block_pattern")? as usize]
            } else {
                CBP_INTRA_GRAY[self.r.ue_max(15, "coded_block_pattern")? as usize]
            };
        }
        if mb.cbp != 0 || mb.kind == KIND_I16 {
            let delta = self.r.se_range(-26, 25, "mb_qp_delta")?;
            mb.qp = (mb.qp + delta + 52) % 52;
            self.residual(mb, n, pps, chroma)?;
        }
        Ok(self.r.position() >= self.stop)
    }

    fn pcm(&mut self, mb: &mut MbData, chroma: bool) -> Result<bool, Error> {
        mb.kind = KIND_PCM;
        self.r.align();
        let start = self.r.position() / 8;
        let len = if chroma { 384 } else { 256 };
        let bytes = self
            .r
            .data()
            .get(start..start + len)
            .ok_or_else(|| Error::malformed("i_pcm samples run past the slice data"))?;
        mb.pcm[..len].copy_from_slice(bytes);
        self.r.skip(len as u32 * 8)?;
        mb.cbp = 0x2f;
        mb.modes = [2; 16];
        mb.chroma_mode = 0;
        mb.nnz = [16; 24];
        mb.cbf_dc = 7;
        Ok(self.r.position() >= self.stop)
    }

    fn pred_mode(
        &mut self,
        n: &Neighbours,
        cur: &[u8; 16],
        bx: usize,
        by: usize,
    ) -> Result<u8, Error> {
        let (left, top) = n.modes_around(cur, bx, by);
        let predicted = match (left, top) {
            (Some(a), Some(b)) => a.min(b),
            _ => 2,
        };
        if self.r.flag()? {
            return Ok(predicted);
        }
        let rem = self.r.u(3)? as u8;
        Ok(if rem < predicted { rem } else { rem + 1 })
    }

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
            let c = nc(n.nnz_left(&mb.nnz, 0, 0), n.nnz_top(&mb.nnz, 0, 0));
            let mut levels = [0i32; 16];
            self.block(c, 16, 0, &mut levels, &ZIGZAG4, |l, _| l)?;
            mb.dc = levels;
            if mb.cbp & 15 != 0 {
                let ls = &pps.dq.l4[0][qp_rem];
                for &blk in &BLK_RASTER {
                    let blk = usize::from(blk);
                    let (bx, by) = (blk & 3, blk >> 2);
                    let c = nc(n.nnz_left(&mb.nnz, bx, by), n.nnz_top(&mb.nnz, bx, by));
                    let out = sub16(&mut mb.luma, blk);
                    mb.nnz[blk] =
                        self.block(c, 15, 1, out, &ZIGZAG4, |l, pos| scale4(l, ls[pos], qp6))?;
                }
            }
        } else {
            for b8 in 0..4 {
                if mb.cbp & (1 << b8) == 0 {
                    continue;
                }
                for i4 in 0..4 {
                    let blk = usize::from(BLK_RASTER[b8 * 4 + i4]);
                    let (bx, by) = (blk & 3, blk >> 2);
                    let c = nc(n.nnz_left(&mb.nnz, bx, by), n.nnz_top(&mb.nnz, bx, by));
                    let count = if mb.t8 {
                        // The 8×8 block's coefficients come as four interleaved 4×4 blocks
                        // (§7.3.5.3.2): 4×4 coefficient k is 8×8 coefficient 4k + i4.
                        let ls = &pps.dq.l8[qp_rem];
                        let mut scan = [0u8; 16];
                        for (k, s) in scan.iter_mut().enumerate() {
                            *s = ZIGZAG8[4 * k + i4];
                        }
                        let out = sub64(&mut mb.luma, b8);
                        self.block(c, 16, 0, out, &scan, |l, pos| scale8(l, ls[pos], qp6))?
                    } else {
                        let ls = &pps.dq.l4[0][qp_rem];
                        let out = sub16(&mut mb.luma, blk);
                        self.block(c, 16, 0, out, &ZIGZAG4, |l, pos| scale4(l, ls[pos], qp6))?
                    };
                    mb.nnz[blk] = count;
                }
            }
        }
        if !chroma || mb.cbp >> 4 == 0 {
            return Ok(());
        }
        for c in 0..2 {
            let mut levels = [0i32; 4];
            let count = self.block(-1, 4, 0, &mut levels, &[0, 1, 2, 3], |l, _| l)?;
            if count > 0 {
                mb.cbf_dc |= 2 << c;
            }
            mb.cdc[c] = levels;
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
                let nc = nc(
                    n.cnnz_left(&mb.nnz, c, bx, by),
                    n.cnnz_top(&mb.nnz, c, bx, by),
                );
                let out = sub16(&mut mb.cac, c * 4 + b);
                mb.nnz[16 + c * 4 + b] =
                    self.block(nc, 15, 1, out, &ZIGZAG4, |l, pos| scale4(l, ls[pos], qp6))?;
            }
        }
        Ok(())
    }

    /// residual_block_cavlc() (§7.3.5.3.2): coefficient `i` lands at `scan[i + first]`, scaled
    /// by `scale(level, raster position)`. Returns TotalCoeff.
    fn block<const N: usize>(
        &mut self,
        nc: i32,
        max: usize,
        first: usize,
        out: &mut [i32; N],
        scan: &[u8],
        scale: impl Fn(i32, usize) -> i32,
    ) -> Result<u8, Error> {
        let table = match nc {
            -1 => 3,
            0..=1 => 0,
            2..=3 => 1,
            4..=7 => 2,
            _ => 4,
        };
        let (tc, t1) = if table == 4 {
            let code = self.r.u(6)?;
            if code == 3 {
                (0, 0)
            } else {
                ((code >> 2) as usize + 1, (code & 3) as usize)
            }
        } else {
            let v = self.t.coeff_token[table].read(&mut self.r)?;
            (usize::from(v >> 2), usize::from(v & 3))
        };
        if tc == 0 {
            return Ok(0);
        }
        if tc > max || t1 > tc {
            return Err(Error::Malformed(format!(
                "coeff_token {tc}/{t1} in a block of {max} coefficients"
            )));
        }
        let mut levels = [0i32; 16];
        let mut suffix_len: u32 = if tc > 10 && t1 < 3 { 1 } else { 0 };
        for (i, level) in levels.iter_mut().enumerate().take(tc) {
            if i < t1 {
                *level = if self.r.u(1)? == 1 { -1 } else { 1 };
                continue;
            }
            let prefix = self.r.peek32().leading_zeros();
            if prefix > 25 {
                return Err(Error::malformed("level_prefix too long"));
            }
            self.r.skip(prefix + 1)?;
            let mut code = (prefix.min(15) << suffix_len) as i32;
            if suffix_len > 0 || prefix >= 14 {
                let size = if prefix == 14 && suffix_len == 0 {
                    4
                } else if prefix >= 15 {
                    prefix - 3
                } else {
                    suffix_len
                };
                code += self.r.u(size)? as i32;
            }
            if prefix >= 15 && suffix_len == 0 {
                code += 15;
            }
            if prefix >= 16 {
                code += (1 << (prefix - 3)) - 4096;
            }
            if i == t1 && t1 < 3 {
                code += 2;
            }
            *level = if code % 2 == 0 {
                (code + 2) >> 1
            } else {
                (-code - 1) >> 1
            };
            if suffix_len == 0 {
                suffix_len = 1;
            }
            if level.unsigned_abs() > (3 << (suffix_len - 1)) && suffix_len < 6 {
                suffix_len += 1;
            }
        }
        let total_zeros = if tc < max {
            let t = if nc == -1 {
                &self.t.total_zeros_cdc
            } else {
                &self.t.total_zeros
            };
            let vlc = t
                .get(tc - 1)
                .ok_or_else(|| Error::malformed("total_zeros table"))?;
            usize::from(vlc.read(&mut self.r)?)
        } else {
            0
        };
        if tc + total_zeros > max {
            return Err(Error::malformed("total_zeros exceeds the block"));
        }
        let mut zeros_left = total_zeros;
        let mut in_range = true;
        let mut pos = tc + total_zeros - 1;
        for (i, &level) in levels.iter().enumerate().take(tc) {
            let raster = usize::from(scan.get(pos + first).copied().unwrap_or(0));
            if let Some(slot) = out.get_mut(raster) {
                let d = scale(level, raster);
                in_range &= crate::params::in_range(d);
                *slot = d;
            }
            if i + 1 == tc {
                break;
            }
            let run = if zeros_left == 0 {
                0
            } else if zeros_left <= 6 {
                usize::from(self.t.run_before[zeros_left - 1].read(&mut self.r)?)
            } else {
                let bits = self.r.peek32();
                let v = bits >> 29;
                if v != 0 {
                    self.r.skip(3)?;
                    7 - v as usize
                } else {
                    let z = bits.leading_zeros();
                    if z > 10 {
                        return Err(Error::malformed("run_before code too long"));
                    }
                    self.r.skip(z + 1)?;
                    z as usize + 4
                }
            };
            if run > zeros_left {
                return Err(Error::malformed("run_before exceeds zerosLeft"));
            }
            zeros_left -= run;
            pos = pos
                .checked_sub(run + 1)
                .ok_or_else(|| Error::malformed("run_before underflow"))?;
        }
        if !in_range {
            return Err(crate::cabac::out_of_range());
        }
        Ok(tc as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coeff_token_tables_decode_every_code_to_its_value() {
        let t = tables();
        for (k, table) in [
            &COEFF_TOKEN_NC0[..],
            &COEFF_TOKEN_NC2[..],
            &COEFF_TOKEN_NC4[..],
            &COEFF_TOKEN_CHROMA_DC[..],
        ]
        .iter()
        .enumerate()
        {
            for (tc, row) in table.iter().enumerate() {
                for (t1, &(len, code)) in row.iter().enumerate() {
                    if len == 0 {
                        continue;
                    }
                    // The code left-aligned, followed by ones (no code is all ones after it).
                    let word = (u32::from(code) << (32 - u32::from(len)))
                        | ((1u32 << (32 - u32::from(len))) - 1);
                    let bytes = word.to_be_bytes();
                    let mut r = BitReader::new(&bytes);
                    let v = t.coeff_token[k].read(&mut r).unwrap();
                    assert_eq!(
                        (usize::from(v >> 2), usize::from(v & 3)),
                        (tc, t1),
                        "table {k}"
                    );
                    assert_eq!(r.position(), usize::from(len));
                }
            }
        }
    }
}
