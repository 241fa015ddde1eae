//! A baseline sequential JFIF encoder for 8-bit 4:2:0 planes (ITU-T T.81 + JFIF 1.02), written
//! for livesnap's render path: it codes the Y, Cb and Cr planes as they are (no RGB, no
//! resampling), with the IJG quality scale, the Annex K Huffman tables and an accurate integer
//! FDCT ([`fdct`]) whose lane loops vectorise to wasm `simd128`.
//!
//! Layout (T.81 §A.2.3): one interleaved scan of MCUs of 16×16 luma pixels, each four Y blocks
//! (2×2 sampling) then one Cb and one Cr block. A block partly outside its plane repeats the
//! plane's last column and row (edge replication, as libjpeg pads its input); a block wholly
//! outside (the right or bottom half of an MCU over an image edge) is coded as a flat block with
//! the previous block's DC and no AC, as libjpeg's coefficient controller does: the decoder
//! throws those pixels away, so they cost as few bits as possible.

mod entropy;
mod fdct;
mod tables;

use entropy::{BitWriter, ComponentCodes, HuffCodes};
use fdct::{Block, Coefs, Quantiser};
use tables::{AC_CHROMA, AC_LUMA, DC_CHROMA, DC_LUMA, ZIGZAG};

/// Borrowed 4:2:0 planes: `y` is `width × height`, `cb` and `cr` are
/// `ceil(width/2) × ceil(height/2)`, all row-major without padding.
#[derive(Debug, Clone, Copy)]
pub struct Planes<'a> {
    /// Luma width in pixels, 1..=65535.
    pub width: u16,
    /// Luma height in pixels, 1..=65535.
    pub height: u16,
    /// Luma samples.
    pub y: &'a [u8],
    /// Cb samples.
    pub cb: &'a [u8],
    /// Cr samples.
    pub cr: &'a [u8],
}

/// Why [`encode_420`] refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JpegError {
    /// A side is zero.
    #[error("picture size {0}x{1} is empty")]
    Empty(u16, u16),
    /// A plane does not have the length its size implies.
    #[error("{width}x{height} planes have {y}/{cb}/{cr} bytes, expected {luma}/{chroma}/{chroma}")]
    PlaneSize {
        /// Luma width.
        width: u16,
        /// Luma height.
        height: u16,
        /// Length of the luma plane.
        y: usize,
        /// Length of the Cb plane.
        cb: usize,
        /// Length of the Cr plane.
        cr: usize,
        /// Expected luma length.
        luma: usize,
        /// Expected chroma length.
        chroma: usize,
    },
}

/// One plane and its size.
#[derive(Clone, Copy)]
struct Plane<'a> {
    samples: &'a [u8],
    width: usize,
    height: usize,
}

impl Plane<'_> {
    /// The level-shifted samples of the 8×8 block at (`x0`, `y0`), transposed (`b[x][y]`) as
    /// [`fdct::forward`] takes them, the last column and row repeated past the plane's edges.
    /// The plane is non-empty and `x0 < width`, `y0 < height`.
    #[inline(always)]
    #[expect(
        clippy::needless_range_loop,
        reason = "the transposed store indexes the block by the row's lane"
    )]
    fn load(&self, x0: usize, y0: usize, b: &mut Block) {
        if x0 + 8 <= self.width && y0 + 8 <= self.height {
            for y in 0..8 {
                let start = (y0 + y) * self.width + x0;
                if let Some(row) = self.samples.get(start..start + 8) {
                    for (x, &s) in row.iter().enumerate() {
                        b[x][y] = i32::from(s) - 128;
                    }
                }
            }
        } else {
            for y in 0..8 {
                let row = (y0 + y).min(self.height - 1) * self.width;
                for x in 0..8 {
                    let at = row + (x0 + x).min(self.width - 1);
                    b[x][y] = i32::from(self.samples.get(at).copied().unwrap_or(128)) - 128;
                }
            }
        }
    }
}

/// The per-component state of the scan.
struct Component<'a> {
    plane: Plane<'a>,
    quantiser: &'a Quantiser,
    codes: ComponentCodes<'a>,
    /// DC of the previous block of this component (T.81 §F.1.2.1: predictors start at 0).
    previous_dc: i32,
    /// The quantised block being coded (kept here so no block is zeroed or copied per call).
    coefs: Coefs,
}

impl Component<'_> {
    /// Codes the block at (`x0`, `y0`) of this component's plane.
    #[inline(always)]
    fn block(&mut self, w: &mut BitWriter, x0: usize, y0: usize) {
        if x0 >= self.plane.width || y0 >= self.plane.height {
            // Wholly outside: the previous DC and no AC is coded as difference 0 and EOB.
            let b = Coefs::dc_only(self.previous_dc);
            self.previous_dc = entropy::encode_block(w, &b, self.previous_dc, &self.codes);
            return;
        }
        let coefs = &mut self.coefs;
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        if x0 + 8 <= self.plane.width
            && y0 + 8 <= self.plane.height
            && fdct::block_simd(
                self.plane.samples,
                y0 * self.plane.width + x0,
                self.plane.width,
                self.quantiser,
                coefs,
            )
            .is_some()
        {
            self.previous_dc = entropy::encode_block(w, coefs, self.previous_dc, &self.codes);
            return;
        }
        let mut b = [[0; 8]; 8];
        self.plane.load(x0, y0, &mut b);
        fdct::forward(&mut b);
        fdct::quantise(&b, self.quantiser, coefs);
        self.previous_dc = entropy::encode_block(w, coefs, self.previous_dc, &self.codes);
    }
}

/// Encodes `planes` as a baseline 4:2:0 JFIF file at `quality` (clamped to 1..=100, the IJG
/// scale: 50 gives the Annex K tables).
///
/// Fails only when a side is zero or a plane's length does not match the size.
pub fn encode_420(planes: Planes<'_>, quality: u8) -> Result<Vec<u8>, JpegError> {
    let (width, height) = (usize::from(planes.width), usize::from(planes.height));
    if width == 0 || height == 0 {
        return Err(JpegError::Empty(planes.width, planes.height));
    }
    let (chroma_width, chroma_height) = (width.div_ceil(2), height.div_ceil(2));
    let (luma, chroma) = (width * height, chroma_width * chroma_height);
    if planes.y.len() != luma || planes.cb.len() != chroma || planes.cr.len() != chroma {
        return Err(JpegError::PlaneSize {
            width: planes.width,
            height: planes.height,
            y: planes.y.len(),
            cb: planes.cb.len(),
            cr: planes.cr.len(),
            luma,
            chroma,
        });
    }
    let luma_table = tables::quant_table(false, quality);
    let chroma_table = tables::quant_table(true, quality);

    // 4:2:0 from video compresses to well under 1 byte per pixel at the qualities we use.
    let mut out = Vec::with_capacity(luma / 2 + 1024);
    write_headers(
        &mut out,
        planes.width,
        planes.height,
        &luma_table,
        &chroma_table,
    );

    let (luma_q, chroma_q) = (Quantiser::new(&luma_table), Quantiser::new(&chroma_table));
    let (dc_luma, ac_luma) = (HuffCodes::new(&DC_LUMA), HuffCodes::new(&AC_LUMA));
    let (dc_chroma, ac_chroma) = (HuffCodes::new(&DC_CHROMA), HuffCodes::new(&AC_CHROMA));
    let plane = |samples, width, height| Plane {
        samples,
        width,
        height,
    };
    let mut y = Component {
        plane: plane(planes.y, width, height),
        quantiser: &luma_q,
        codes: ComponentCodes {
            dc: &dc_luma,
            ac: &ac_luma,
        },
        previous_dc: 0,
        coefs: Coefs::default(),
    };
    let chroma_component = |samples| Component {
        plane: plane(samples, chroma_width, chroma_height),
        quantiser: &chroma_q,
        codes: ComponentCodes {
            dc: &dc_chroma,
            ac: &ac_chroma,
        },
        previous_dc: 0,
        coefs: Coefs::default(),
    };
    let (mut cb, mut cr) = (chroma_component(planes.cb), chroma_component(planes.cr));

    let mut w = BitWriter::new(out);
    for mcu_y in 0..height.div_ceil(16) {
        for mcu_x in 0..width.div_ceil(16) {
            let (x0, y0) = (mcu_x * 16, mcu_y * 16);
            y.block(&mut w, x0, y0);
            y.block(&mut w, x0 + 8, y0);
            y.block(&mut w, x0, y0 + 8);
            y.block(&mut w, x0 + 8, y0 + 8);
            cb.block(&mut w, mcu_x * 8, mcu_y * 8);
            cr.block(&mut w, mcu_x * 8, mcu_y * 8);
        }
    }
    let mut out = w.finish();
    out.extend_from_slice(&[0xFF, 0xD9]); // EOI
    Ok(out)
}

/// Appends a marker segment: `FF marker`, the 16-bit length (which counts itself), `body`.
fn segment(out: &mut Vec<u8>, marker: u8, body: &[u8]) {
    out.extend_from_slice(&[0xFF, marker]);
    // Every segment here is under 300 bytes.
    out.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(body);
}

/// SOI, APP0 (JFIF), DQT, SOF0, DHT and SOS, in libjpeg's order.
fn write_headers(
    out: &mut Vec<u8>,
    width: u16,
    height: u16,
    luma_table: &[u8; 64],
    chroma_table: &[u8; 64],
) {
    out.extend_from_slice(&[0xFF, 0xD8]); // SOI
    // JFIF 1.02 APP0: identifier, version 1.01, aspect-ratio units 0 with density 1:1, no
    // thumbnail (the version libjpeg writes by default).
    segment(
        out,
        0xE0,
        &[b'J', b'F', b'I', b'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0],
    );
    // DQT (T.81 §B.2.4.1), one segment per table as libjpeg writes them: 8-bit precision,
    // tables 0 and 1, in zigzag order.
    for (id, table) in [(0u8, luma_table), (1, chroma_table)] {
        let mut dqt = Vec::with_capacity(65);
        dqt.push(id);
        dqt.extend(ZIGZAG.iter().map(|&n| table[usize::from(n)]));
        segment(out, 0xDB, &dqt);
    }
    // SOF0 (§B.2.2): 8-bit, size, 3 components: Y 2×2 with table 0, Cb and Cr 1×1 with table 1.
    let mut sof = vec![8];
    sof.extend_from_slice(&height.to_be_bytes());
    sof.extend_from_slice(&width.to_be_bytes());
    sof.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    segment(out, 0xC0, &sof);
    // DHT (§B.2.4.2), one segment per table: class 0 (DC) / 1 (AC) in the high nibble, table
    // id in the low one.
    for (class_id, spec) in [
        (0x00u8, &DC_LUMA),
        (0x10, &AC_LUMA),
        (0x01, &DC_CHROMA),
        (0x11, &AC_CHROMA),
    ] {
        let mut dht = Vec::with_capacity(17 + spec.values.len());
        dht.push(class_id);
        dht.extend_from_slice(&spec.bits);
        dht.extend_from_slice(spec.values);
        segment(out, 0xC4, &dht);
    }
    // SOS (§B.2.3): all three components, DC/AC tables 0/0 for Y and 1/1 for chroma, spectral
    // selection 0..63, no successive approximation.
    segment(out, 0xDA, &[3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0]);
}

#[cfg(test)]
mod tests;
