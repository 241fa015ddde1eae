//! The FLV container (Adobe FLV spec v10.1, Annex E.2–E.3): header, then tags, each followed by
//! its PreviousTagSize. Reads only framing; tag bodies go to the guest untouched.

use std::io::{self, Read};

/// Largest tag body accepted, in bytes. The format's own maximum (24-bit DataSize) is 16 MiB;
/// a keyframe of a 4K stream stays well under 4 MiB.
pub const DEFAULT_MAX_TAG_BYTES: usize = 16 * 1024 * 1024;

pub use livesnap_guest::demux::{DemuxError, FlvPushParser, Tag};

/// Why the container could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FlvError {
    /// The first bytes are not an FLV header.
    #[error("not an FLV file: {0}")]
    NotFlv(String),
    /// The input ended inside a tag; every tag before it was complete.
    #[error("truncated FLV: the input ends inside the tag at byte offset {offset}")]
    Truncated {
        /// Offset of the incomplete tag.
        offset: u64,
    },
    /// A tag declares more data than allowed.
    #[error("tag at byte offset {offset} declares {size} bytes, more than the {max}-byte limit")]
    TagTooLarge {
        /// Offset of the tag.
        offset: u64,
        /// Declared size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The underlying reader failed.
    #[error("reading FLV: {0}")]
    Io(#[from] io::Error),
}

/// Reads tags from an FLV byte stream.
pub struct FlvReader<R> {
    inner: R,
    /// Bytes consumed so far.
    offset: u64,
    max_tag_bytes: usize,
}

impl<R: Read> FlvReader<R> {
    /// Check the FLV header and position the reader at the first tag.
    pub fn new(mut inner: R, max_tag_bytes: usize) -> Result<Self, FlvError> {
        let mut header = [0u8; 9];
        let got = read_full(&mut inner, &mut header)?;
        if got < 9 || &header[..3] != b"FLV" {
            let shown: String = header[..got.min(3)]
                .iter()
                .map(|b| {
                    if b.is_ascii_graphic() {
                        *b as char
                    } else {
                        '.'
                    }
                })
                .collect();
            return Err(FlvError::NotFlv(format!(
                "it does not start with the 'FLV' signature (starts with {shown:?}, {got} header bytes)"
            )));
        }
        let data_offset = u32::from_be_bytes([header[5], header[6], header[7], header[8]]);
        if data_offset < 9 {
            return Err(FlvError::NotFlv(format!(
                "header size {data_offset} is below 9"
            )));
        }
        let mut reader = FlvReader {
            inner,
            offset: 9,
            max_tag_bytes,
        };
        // Skip any header extension, then PreviousTagSize0.
        reader.skip(u64::from(data_offset) - 9)?;
        Ok(reader)
    }

    /// Byte offset of the next unread byte.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next tag; `Ok(None)` at a clean end of input.
    pub fn next_tag(&mut self) -> Result<Option<Tag>, FlvError> {
        let start = self.offset;
        // PreviousTagSize (4) then the 11-byte tag header.
        let mut head = [0u8; 15];
        let got = read_full(&mut self.inner, &mut head)?;
        self.offset += got as u64;
        if got == 0 || got == 4 {
            // Clean end: after the last tag there may or may not be a trailing PreviousTagSize.
            return Ok(None);
        }
        if got < head.len() {
            return Err(FlvError::Truncated { offset: start });
        }
        // Bit 5 is the Filter (encryption) flag; the low 5 bits are the type.
        let tag_type = head[4] & 0x1f;
        let size = usize::from(head[5]) << 16 | usize::from(head[6]) << 8 | usize::from(head[7]);
        let timestamp_ms = u32::from_be_bytes([head[11], head[8], head[9], head[10]]);
        if size > self.max_tag_bytes {
            return Err(FlvError::TagTooLarge {
                offset: start,
                size,
                max: self.max_tag_bytes,
            });
        }
        let mut body = vec![0u8; size];
        let got = read_full(&mut self.inner, &mut body)?;
        self.offset += got as u64;
        if got < size {
            return Err(FlvError::Truncated { offset: start });
        }
        Ok(Some(Tag {
            tag_type,
            timestamp_ms,
            body,
        }))
    }

    fn skip(&mut self, n: u64) -> Result<(), FlvError> {
        let skipped = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())?;
        self.offset += skipped;
        if skipped < n {
            return Err(FlvError::NotFlv("the header is truncated".into()));
        }
        Ok(())
    }
}

/// Read until `buf` is full or the input ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flv(tags: &[(u8, u32, &[u8])]) -> Vec<u8> {
        let mut out = b"FLV\x01\x05\x00\x00\x00\x09".to_vec();
        let mut prev = 0u32;
        for (ty, ts, body) in tags {
            out.extend_from_slice(&prev.to_be_bytes());
            out.push(*ty);
            out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
            out.extend_from_slice(&ts.to_be_bytes()[1..]);
            out.push((ts >> 24) as u8);
            out.extend_from_slice(&[0, 0, 0]);
            out.extend_from_slice(body);
            prev = 11 + body.len() as u32;
        }
        out.extend_from_slice(&prev.to_be_bytes());
        out
    }

    #[test]
    fn reads_tags_with_extended_timestamps() {
        let data = flv(&[(9, 0x0123_4567, b"abc"), (8, 5, b"")]);
        let mut r = FlvReader::new(&data[..], DEFAULT_MAX_TAG_BYTES).unwrap();
        let t = r.next_tag().unwrap().unwrap();
        assert_eq!(
            (t.tag_type, t.timestamp_ms, &t.body[..]),
            (9, 0x0123_4567, &b"abc"[..])
        );
        let t = r.next_tag().unwrap().unwrap();
        assert_eq!((t.tag_type, t.timestamp_ms, t.body.len()), (8, 5, 0));
        assert!(r.next_tag().unwrap().is_none());
    }

    #[test]
    fn truncation_is_reported_after_complete_tags() {
        let data = flv(&[(9, 0, b"abcdef"), (9, 40, b"ghijkl")]);
        let cut = &data[..data.len() - 7];
        let mut r = FlvReader::new(cut, DEFAULT_MAX_TAG_BYTES).unwrap();
        assert!(r.next_tag().unwrap().is_some());
        assert!(matches!(
            r.next_tag(),
            Err(FlvError::Truncated { offset: 30 })
        ));
    }

    #[test]
    fn rejects_non_flv_and_huge_tags() {
        assert!(matches!(
            FlvReader::new(&b"GIF89a...."[..], 10),
            Err(FlvError::NotFlv(_))
        ));
        assert!(matches!(
            FlvReader::new(&b""[..], 10),
            Err(FlvError::NotFlv(_))
        ));
        let data = flv(&[(9, 0, &[0u8; 64])]);
        let mut r = FlvReader::new(&data[..], 32).unwrap();
        assert!(matches!(
            r.next_tag(),
            Err(FlvError::TagTooLarge { size: 64, .. })
        ));
    }
}
