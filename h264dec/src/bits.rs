//! RBSP extraction (§7.4.1: emulation prevention bytes removed) and a checked bit reader for
//! fixed-length, Exp-Golomb (§9.1) and CAVLC codes. Reads past the end return an error, never
//! a panic and never invented bits.

use crate::Error;

/// Copies the RBSP of a NAL unit payload (the bytes after the NAL header) into `out`, dropping
/// every emulation_prevention_three_byte (a 0x03 after two zero bytes).
pub(crate) fn unescape_into(payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(payload.len() + 8);
    let mut zeros = 0u32;
    let mut start = 0;
    let mut i = 0;
    while i < payload.len() {
        let b = payload[i];
        if zeros >= 2 && b == 3 {
            out.extend_from_slice(&payload[start..i]);
            start = i + 1;
            zeros = 0;
        } else if b == 0 {
            zeros += 1;
        } else {
            zeros = 0;
        }
        i += 1;
    }
    out.extend_from_slice(&payload[start..]);
}

/// A big-endian bit reader over an RBSP.
#[derive(Clone)]
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits from the start of `data`.
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    /// Bit position from the start.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// The bytes of the RBSP.
    pub(crate) fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The next 32 bits, zero-padded past the end, without consuming them.
    #[inline]
    pub(crate) fn peek32(&self) -> u32 {
        let byte = self.pos >> 3;
        let shift = (self.pos & 7) as u32;
        let word = match self.data.get(byte..byte + 8) {
            Some(s) => {
                let mut a = [0u8; 8];
                a.copy_from_slice(s);
                u64::from_be_bytes(a)
            }
            None => {
                let mut a = [0u8; 8];
                for (k, slot) in a.iter_mut().enumerate() {
                    *slot = self.data.get(byte + k).copied().unwrap_or(0);
                }
                u64::from_be_bytes(a)
            }
        };
        ((word << shift) >> 32) as u32
    }

    /// Consumes `n` bits, failing if that passes the end.
    #[inline]
    pub(crate) fn skip(&mut self, n: u32) -> Result<(), Error> {
        self.pos += n as usize;
        if self.pos > self.data.len() * 8 {
            return Err(Error::malformed(
                "bitstream ends in the middle of a syntax element",
            ));
        }
        Ok(())
    }

    /// u(n) for n in 0..=32.
    #[inline]
    pub(crate) fn u(&mut self, n: u32) -> Result<u32, Error> {
        if n == 0 {
            return Ok(0);
        }
        let v = self.peek32() >> (32 - n);
        self.skip(n)?;
        Ok(v)
    }

    /// u(1) as a flag.
    #[inline]
    pub(crate) fn flag(&mut self) -> Result<bool, Error> {
        Ok(self.u(1)? == 1)
    }

    /// ue(v), up to 2^32 - 2.
    pub(crate) fn ue(&mut self) -> Result<u32, Error> {
        let lz = self.peek32().leading_zeros();
        if lz < 16 {
            // Fast path: the whole code fits the 32 peeked bits.
            let len = 2 * lz + 1;
            let v = (self.peek32() >> (32 - len)) - 1;
            self.skip(len)?;
            return Ok(v);
        }
        let mut zeros = 0u32;
        while self.u(1)? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(Error::malformed("exp-golomb code longer than 32 bits"));
            }
        }
        let suffix = u64::from(self.u(zeros)?);
        u32::try_from((1u64 << zeros) - 1 + suffix)
            .map_err(|_| Error::malformed("exp-golomb value exceeds 32 bits"))
    }

    /// se(v).
    pub(crate) fn se(&mut self) -> Result<i32, Error> {
        let k = self.ue()?;
        let mag = i32::try_from(k.div_ceil(2)).unwrap_or(i32::MAX);
        Ok(if k & 1 == 1 { mag } else { -mag })
    }

    /// ue(v) no larger than `max`, naming the field in the error.
    pub(crate) fn ue_max(&mut self, max: u32, field: &'static str) -> Result<u32, Error> {
        let v = self.ue()?;
        if v > max {
            return Err(Error::Malformed(format!("{field} {v} exceeds {max}")));
        }
        Ok(v)
    }

    /// se(v) within `min..=max`, naming the field in the error.
    pub(crate) fn se_range(
        &mut self,
        min: i32,
        max: i32,
        field: &'static str,
    ) -> Result<i32, Error> {
        let v = self.se()?;
        if v < min || v > max {
            return Err(Error::Malformed(format!(
                "{field} {v} outside {min}..={max}"
            )));
        }
        Ok(v)
    }

    /// more_rbsp_data() (§7.2): true if anything but the rbsp_trailing_bits is left.
    pub(crate) fn more_rbsp_data(&self) -> bool {
        let Some(last) = self.data.iter().rposition(|&b| b != 0) else {
            return false;
        };
        let Some(&byte) = self.data.get(last) else {
            return false;
        };
        // Position of the rbsp_stop_one_bit.
        let stop = last * 8 + 7 - byte.trailing_zeros() as usize;
        self.pos < stop
    }

    /// Moves to the next byte boundary.
    pub(crate) fn align(&mut self) {
        self.pos = (self.pos + 7) & !7;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulation_prevention_bytes_are_removed() {
        let mut out = Vec::new();
        unescape_into(&[0, 0, 3, 1, 0, 0, 3, 0, 0, 3], &mut out);
        assert_eq!(out, [0, 0, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn exp_golomb_codes_read_in_order() {
        // 1 | 010 | 011 | 00100 | 0001000 -> 0, 1, 2, 3, 7
        let data = [0b1010_0110, 0b0100_0001, 0b0000_0000];
        let mut r = BitReader::new(&data);
        let got: Vec<u32> = (0..5).map(|_| r.ue().unwrap()).collect();
        assert_eq!(got, [0, 1, 2, 3, 7]);
        assert!(r.ue().is_err(), "the zero tail is not a complete code");
    }

    #[test]
    fn signed_codes_alternate() {
        let data = [0b0100_1110, 0b1000_0000];
        let mut r = BitReader::new(&data);
        assert_eq!(r.se().unwrap(), 1);
        assert_eq!(r.se().unwrap(), -1);
        assert_eq!(r.se().unwrap(), 0);
    }

    #[test]
    fn more_rbsp_data_stops_at_the_trailing_bits() {
        let data = [0b1100_0000];
        let mut r = BitReader::new(&data);
        assert!(r.more_rbsp_data());
        r.u(1).unwrap();
        assert!(!r.more_rbsp_data());
    }
}
