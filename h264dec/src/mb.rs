//! The picture being decoded, the per-macroblock facts neighbours need, and the slice_data()
//! loop (§7.3.4) that runs an entropy decoder and reconstruction macroblock by macroblock.
//!
//! Every slice writes straight into the one picture; a macroblock is marked with its slice
//! number, which is all neighbour availability needs (§6.4.8: a neighbour is available when it
//! is in the same slice, and in raster order an earlier macroblock of the same slice is
//! already decoded).

use crate::bits::BitReader;
use crate::params::{Pps, Sps};
use crate::slice::SliceHeader;
use crate::{Error, Picture, cabac, cavlc, recon};

/// Macroblock kinds (the intra mb_type classes of Table 7-11).
pub(crate) const KIND_I4: u8 = 0;
pub(crate) const KIND_I8: u8 = 1;
pub(crate) const KIND_I16: u8 = 2;
pub(crate) const KIND_PCM: u8 = 3;

/// What later macroblocks (prediction, entropy contexts, deblocking) need of a decoded one.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct MbInfo {
    /// Slice number + 1; 0 = not decoded yet.
    pub(crate) slice: u32,
    pub(crate) kind: u8,
    /// CodedBlockPatternLuma in bits 0..3, CodedBlockPatternChroma in bits 4..5 (I_PCM: 0x2f).
    pub(crate) cbp: u8,
    pub(crate) chroma_mode: u8,
    pub(crate) t8: bool,
    /// coded_block_flag of the DC blocks: bit 0 luma, 1 Cb, 2 Cr.
    pub(crate) cbf_dc: u8,
    /// QP for the deblocking filter (0 for I_PCM, §8.7.2.2) and the QPc of Cb and Cr from it.
    pub(crate) qp: u8,
    pub(crate) qpc: [u8; 2],
    /// Non-zero coefficient counts: 16 luma 4×4 blocks in raster order, then Cb and Cr 2×2.
    pub(crate) nnz: [u8; 24],
    /// Intra 4×4 / 8×8 prediction modes per luma 4×4 block in raster order (2 for others).
    pub(crate) modes: [u8; 16],
}

/// Deblocking parameters of one slice.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SliceParams {
    pub(crate) disable: u32,
    pub(crate) alpha_offset: i32,
    pub(crate) beta_offset: i32,
}

/// The picture under construction.
pub(crate) struct PictureState {
    pub(crate) width_mbs: u32,
    pub(crate) height_mbs: u32,
    pub(crate) chroma: bool,
    pub(crate) y: Vec<u8>,
    pub(crate) u: Vec<u8>,
    pub(crate) v: Vec<u8>,
    pub(crate) mbs: Vec<MbInfo>,
    pub(crate) slices: Vec<SliceParams>,
    pub(crate) scratch: Option<Box<MbData>>,
    /// CABAC context states after initialisation, by SliceQPY (§9.3.1.1), filled on demand.
    pub(crate) cabac_init: Vec<Option<Box<[u8; 460]>>>,
}

impl PictureState {
    pub(crate) fn new(sps: &Sps) -> Self {
        let (w, h) = (sps.width_mbs as usize, sps.height_mbs as usize);
        let chroma = sps.chroma_format_idc != 0;
        let csize = if chroma { w * 8 * h * 8 } else { 0 };
        PictureState {
            width_mbs: sps.width_mbs,
            height_mbs: sps.height_mbs,
            chroma,
            y: vec![0; w * 16 * h * 16],
            u: vec![0; csize],
            v: vec![0; csize],
            mbs: vec![MbInfo::default(); w * h],
            slices: Vec::new(),
            scratch: Some(Box::new(MbData::default())),
            cabac_init: vec![None; 52],
        }
    }

    /// Whether the buffers fit a picture of `sps`.
    pub(crate) fn matches(&self, sps: &Sps) -> bool {
        self.width_mbs == sps.width_mbs
            && self.height_mbs == sps.height_mbs
            && self.chroma == (sps.chroma_format_idc != 0)
    }

    /// Marks every macroblock undecoded.
    pub(crate) fn reset(&mut self) {
        self.mbs.iter_mut().for_each(|m| m.slice = 0);
        self.slices.clear();
    }

    pub(crate) fn is_decoded(&self, addr: u32) -> bool {
        self.mbs.get(addr as usize).is_some_and(|m| m.slice != 0)
    }

    pub(crate) fn first_missing_mb(&self) -> Option<u32> {
        self.mbs.iter().position(|m| m.slice == 0).map(|p| p as u32)
    }

    /// Luma stride in samples.
    pub(crate) fn stride(&self) -> usize {
        self.width_mbs as usize * 16
    }

    /// The cropped picture.
    pub(crate) fn output(&self, sps: &Sps, slices: u32) -> Picture {
        let [left, right, top, bottom] = sps.crop.map(|c| c as usize);
        let stride = self.stride();
        let width = stride - left - right;
        let height = self.height_mbs as usize * 16 - top - bottom;
        let mut y = Vec::with_capacity(width * height);
        for row in top..top + height {
            let start = row * stride + left;
            y.extend_from_slice(self.y.get(start..start + width).unwrap_or(&[]));
        }
        let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
        let (u, v) = if self.chroma {
            let cstride = stride / 2;
            let mut u = Vec::with_capacity(cw * ch);
            let mut v = Vec::with_capacity(cw * ch);
            for row in top / 2..top / 2 + ch {
                let start = row * cstride + left / 2;
                u.extend_from_slice(self.u.get(start..start + cw).unwrap_or(&[]));
                v.extend_from_slice(self.v.get(start..start + cw).unwrap_or(&[]));
            }
            (u, v)
        } else {
            (vec![128; cw * ch], vec![128; cw * ch])
        };
        Picture {
            width: width as u32,
            height: height as u32,
            y,
            u,
            v,
            slices,
        }
    }
}

/// One macroblock's syntax, filled by an entropy decoder and consumed by reconstruction.
/// Coefficients are stored dequantised at raster positions, except the DC blocks (levels).
pub(crate) struct MbData {
    pub(crate) kind: u8,
    pub(crate) i16_mode: u8,
    pub(crate) chroma_mode: u8,
    pub(crate) cbp: u8,
    pub(crate) t8: bool,
    pub(crate) modes: [u8; 16],
    pub(crate) qp: i32,
    /// 16 4×4 blocks (raster block index × 16) or 4 8×8 blocks (index × 64).
    pub(crate) luma: [i32; 256],
    pub(crate) dc: [i32; 16],
    pub(crate) cdc: [[i32; 4]; 2],
    /// Chroma AC: Cb blocks 0..4, Cr blocks 4..8, 16 coefficients each (index 0 unused).
    pub(crate) cac: [i32; 128],
    pub(crate) nnz: [u8; 24],
    pub(crate) cbf_dc: u8,
    pub(crate) pcm: [u8; 384],
}

impl Default for MbData {
    fn default() -> Self {
        MbData {
            kind: 0,
            i16_mode: 0,
            chroma_mode: 0,
            cbp: 0,
            t8: false,
            modes: [2; 16],
            qp: 0,
            luma: [0; 256],
            dc: [0; 16],
            cdc: [[0; 4]; 2],
            cac: [0; 128],
            nnz: [0; 24],
            cbf_dc: 0,
            pcm: [0; 384],
        }
    }
}

/// The neighbours of the current macroblock (§6.4.9): A left, B above, C above right, D above
/// left, copied when available.
pub(crate) struct Neighbours {
    pub(crate) a: Option<MbInfo>,
    pub(crate) b: Option<MbInfo>,
    pub(crate) c: bool,
    pub(crate) d: bool,
}

impl Neighbours {
    /// nnz of the luma 4×4 block left of (bx, by), if available.
    #[inline]
    pub(crate) fn nnz_left(&self, cur: &[u8; 24], bx: usize, by: usize) -> Option<u8> {
        if bx > 0 {
            Some(cur[by * 4 + bx - 1])
        } else {
            self.a.map(|m| m.nnz[by * 4 + 3])
        }
    }

    /// nnz of the luma 4×4 block above (bx, by), if available.
    #[inline]
    pub(crate) fn nnz_top(&self, cur: &[u8; 24], bx: usize, by: usize) -> Option<u8> {
        if by > 0 {
            Some(cur[(by - 1) * 4 + bx])
        } else {
            self.b.map(|m| m.nnz[12 + bx])
        }
    }

    /// nnz of the chroma 4×4 block left of (bx, by) of plane `c`, if available.
    #[inline]
    pub(crate) fn cnnz_left(&self, cur: &[u8; 24], c: usize, bx: usize, by: usize) -> Option<u8> {
        let base = 16 + c * 4;
        if bx > 0 {
            Some(cur[base + by * 2])
        } else {
            self.a.map(|m| m.nnz[base + by * 2 + 1])
        }
    }

    /// nnz of the chroma 4×4 block above (bx, by) of plane `c`, if available.
    #[inline]
    pub(crate) fn cnnz_top(&self, cur: &[u8; 24], c: usize, bx: usize, by: usize) -> Option<u8> {
        let base = 16 + c * 4;
        if by > 0 {
            Some(cur[base + bx])
        } else {
            self.b.map(|m| m.nnz[base + 2 + bx])
        }
    }

    /// Intra 4×4/8×8 mode left of and above luma 4×4 block (bx, by), `None` if unavailable.
    #[inline]
    pub(crate) fn modes_around(
        &self,
        cur: &[u8; 16],
        bx: usize,
        by: usize,
    ) -> (Option<u8>, Option<u8>) {
        let left = if bx > 0 {
            Some(cur[by * 4 + bx - 1])
        } else {
            self.a.map(|m| m.modes[by * 4 + 3])
        };
        let top = if by > 0 {
            Some(cur[(by - 1) * 4 + bx])
        } else {
            self.b.map(|m| m.modes[12 + bx])
        };
        (left, top)
    }
}

/// Raster 4×4 block index (bx + 4 by) of each 4×4 block in decoding order (§6.4.3).
pub(crate) const BLK_RASTER: [u8; 16] = [0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15];

/// Decodes slice_data() of one slice into the picture.
pub(crate) fn decode_slice(
    pic: &mut PictureState,
    r: &mut BitReader<'_>,
    hdr: &SliceHeader,
    sps: &Sps,
    pps: &Pps,
) -> Result<(), Error> {
    pic.slices.push(SliceParams {
        disable: hdr.disable_deblocking,
        alpha_offset: hdr.alpha_offset,
        beta_offset: hdr.beta_offset,
    });
    let slice_num = pic.slices.len() as u32;
    let width = pic.width_mbs;
    let total = (pic.width_mbs * pic.height_mbs) as usize;
    let mut addr = hdr.first_mb as usize;
    let mut qp = hdr.qp;
    let chroma = sps.chroma_format_idc != 0;
    let mut scratch = pic.scratch.take().unwrap_or_default();
    let mut entropy = if pps.cabac {
        r.align();
        let qp = hdr.qp.clamp(0, 51) as usize;
        let init = pic.cabac_init[qp].get_or_insert_with(|| Box::new(cabac::init_contexts(hdr.qp)));
        Entropy::Cabac(Box::new(cabac::SliceDecoder::new(
            r.data(),
            r.position() / 8,
            init,
        )?))
    } else {
        Entropy::Cavlc(cavlc::SliceDecoder::new(r.clone()))
    };
    let result = (|| {
        loop {
            if addr >= total {
                return Err(Error::malformed("slice runs past the last macroblock"));
            }
            if pic.mbs[addr].slice != 0 {
                return Err(Error::Malformed(format!(
                    "macroblock {addr} is coded by two slices"
                )));
            }
            let mbx = addr as u32 % width;
            let mby = addr as u32 / width;
            let same = |m: usize| pic.mbs.get(m).filter(|i| i.slice == slice_num).copied();
            let w = width as usize;
            let n = Neighbours {
                a: if mbx > 0 { same(addr - 1) } else { None },
                b: if mby > 0 { same(addr - w) } else { None },
                c: mby > 0 && mbx + 1 < width && same(addr + 1 - w).is_some(),
                d: mby > 0 && mbx > 0 && same(addr - 1 - w).is_some(),
            };
            let mb = &mut *scratch;
            mb.qp = qp;
            let end = match &mut entropy {
                Entropy::Cabac(d) => d.macroblock(mb, &n, pps, chroma, hdr.si)?,
                Entropy::Cavlc(d) => d.macroblock(mb, &n, pps, chroma, hdr.si)?,
            };
            qp = mb.qp;
            let info = recon::reconstruct(pic, mb, &n, mbx as usize, mby as usize, pps, slice_num)?;
            pic.mbs[addr] = info;
            if end {
                return Ok(());
            }
            addr += 1;
        }
    })();
    pic.scratch = Some(scratch);
    result
}

enum Entropy<'a> {
    Cabac(Box<cabac::SliceDecoder<'a>>),
    Cavlc(cavlc::SliceDecoder<'a>),
}
