//! FLV container framing for byte streams that arrive in pieces (HTTP-FLV, a proxy's body):
//! push bytes as they come, take whole tags out (Adobe FLV spec v10.1, Annex E.2–E.3). Pure: the
//! host's pull ingest and the edge proxy share it. Tag bodies are not interpreted here.

/// One FLV tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// 8 audio, 9 video, 18 script data.
    pub tag_type: u8,
    /// Timestamp in ms: 24 bits plus the 8-bit extension as the high byte.
    pub timestamp_ms: u32,
    /// The tag's data.
    pub body: Vec<u8>,
}

/// Why a byte stream is not usable FLV.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DemuxError {
    /// The first bytes are not an FLV header.
    #[error("not FLV: {0}")]
    NotFlv(String),
    /// A tag declares more data than allowed.
    #[error("tag at byte offset {offset} declares {size} bytes, more than the {max}-byte limit")]
    TagTooLarge {
        /// Offset of the tag in the stream.
        offset: u64,
        /// Declared size.
        size: usize,
        /// The limit.
        max: usize,
    },
}

/// Incremental FLV parser. Buffers at most one tag plus its header.
#[derive(Debug)]
pub struct FlvPushParser {
    buf: Vec<u8>,
    /// The 9-byte file header and PreviousTagSize0 have been consumed.
    header_done: bool,
    /// Stream offset of `buf[0]`.
    consumed: u64,
    max_tag_bytes: usize,
}

impl FlvPushParser {
    /// A parser refusing tags larger than `max_tag_bytes`.
    pub fn new(max_tag_bytes: usize) -> Self {
        FlvPushParser {
            buf: Vec::new(),
            header_done: false,
            consumed: 0,
            max_tag_bytes,
        }
    }

    /// True once the FLV file header has been seen and accepted.
    pub fn header_seen(&self) -> bool {
        self.header_done
    }

    /// Bytes held back: the start of a tag not complete yet.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Add `bytes`; returns every tag completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Tag>, DemuxError> {
        self.buf.extend_from_slice(bytes);
        let mut tags = Vec::new();
        let mut pos = 0;
        if !self.header_done {
            if self.buf.len() < 3 && b"FLV".starts_with(&self.buf) {
                return Ok(tags);
            }
            if !self.buf.starts_with(b"FLV") {
                return Err(DemuxError::NotFlv(
                    "the stream does not start with the 'FLV' signature".into(),
                ));
            }
            let Some(size) = self.buf.get(5..9) else {
                return Ok(tags);
            };
            let offset = u32::from_be_bytes([size[0], size[1], size[2], size[3]]) as usize;
            if !(9..=1024).contains(&offset) {
                return Err(DemuxError::NotFlv(format!(
                    "header size {offset} is outside 9..=1024"
                )));
            }
            // Header, then PreviousTagSize0.
            if self.buf.len() < offset + 4 {
                return Ok(tags);
            }
            pos = offset + 4;
            self.header_done = true;
        }
        while let Some(head) = self.buf.get(pos..pos + 11) {
            let size =
                usize::from(head[1]) << 16 | usize::from(head[2]) << 8 | usize::from(head[3]);
            if size > self.max_tag_bytes {
                return Err(DemuxError::TagTooLarge {
                    offset: self.consumed + pos as u64,
                    size,
                    max: self.max_tag_bytes,
                });
            }
            // Tag header, body, then its PreviousTagSize.
            let Some(body) = self.buf.get(pos + 11..pos + 11 + size) else {
                break;
            };
            if self.buf.len() < pos + 11 + size + 4 {
                break;
            }
            tags.push(Tag {
                // Bit 5 is the Filter (encryption) flag; the low 5 bits are the type.
                tag_type: head[0] & 0x1f,
                timestamp_ms: u32::from_be_bytes([head[7], head[4], head[5], head[6]]),
                body: body.to_vec(),
            });
            pos += 11 + size + 4;
        }
        self.buf.drain(..pos);
        self.consumed += pos as u64;
        Ok(tags)
    }
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
    fn yields_the_same_tags_whatever_the_chunking() {
        let data = flv(&[(18, 0, b"meta"), (9, 0x0100_0000, b"video"), (8, 7, b"")]);
        let mut whole = FlvPushParser::new(1 << 20);
        let all = whole.push(&data).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[1].timestamp_ms, 0x0100_0000);
        assert_eq!(whole.buffered(), 0);
        for chunk in [1, 2, 5, 13] {
            let mut p = FlvPushParser::new(1 << 20);
            let got: Vec<Tag> = data
                .chunks(chunk)
                .flat_map(|c| p.push(c).unwrap())
                .collect();
            assert_eq!(got, all, "chunks of {chunk}");
        }
    }

    #[test]
    fn refuses_what_is_not_flv_as_soon_as_it_can_tell() {
        assert!(FlvPushParser::new(10).push(b"RIFF\0\0\0\0\0\0").is_err());
        // One wrong byte is enough; a correct prefix waits for more.
        assert!(FlvPushParser::new(10).push(b"<").is_err());
        let mut p = FlvPushParser::new(10);
        assert_eq!(p.push(b"FL").unwrap(), vec![]);
        assert!(!p.header_seen());
        assert!(matches!(
            FlvPushParser::new(10).push(b"FLV\x01\x05\x00\x00\x00\x02"),
            Err(DemuxError::NotFlv(_))
        ));
    }

    #[test]
    fn a_tag_over_the_limit_is_refused_with_its_offset() {
        let data = flv(&[(18, 0, b"meta"), (9, 0, b"video")]);
        assert_eq!(
            FlvPushParser::new(4).push(&data),
            Err(DemuxError::TagTooLarge {
                // 9-byte header + PreviousTagSize0, then the 11 + 4 + 4 bytes of the first tag.
                offset: 32,
                size: 5,
                max: 4
            })
        );
    }
}
