//! A bounded AMF0 reader (Action Message Format 0, the value encoding of FLV script data and
//! Enhanced RTMP `Metadata` packets), just enough to read the Enhanced RTMP `colorInfo` object:
//! numbers, booleans, strings, objects, ECMA and strict arrays, null/undefined, dates.
//!
//! Untrusted bytes: nesting is limited to [`MAX_DEPTH`], every length is checked against what is
//! left, and each value needs at least one byte, so a body of n bytes yields at most n values.
//! Errors name what was malformed and where.

use crate::error::Failure;

/// Deepest nesting of objects and arrays accepted (`colorInfo` needs 2).
pub const MAX_DEPTH: usize = 8;

/// One AMF0 value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Marker 0x00: an IEEE 754 double.
    Number(f64),
    /// Marker 0x01.
    Bool(bool),
    /// Marker 0x02 (short) or 0x0C (long), lossily decoded as UTF-8.
    String(String),
    /// Marker 0x03 (object) or 0x08 (ECMA array): name → value pairs in stream order.
    Object(Vec<(String, Value)>),
    /// Marker 0x0A: a strict array.
    Array(Vec<Value>),
    /// Marker 0x05 null, 0x06 undefined, 0x0B date (its time is not needed here).
    Null,
}

impl Value {
    /// The member `name` of an object (the first one, if repeated).
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The number, if this is one.
    pub fn number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }
}

/// Reads AMF0 values from a byte slice.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    /// True when every byte was read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Failure> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(Failure::decode(format!(
                "amf0 {what} of {n} bytes at offset {} runs past the end ({} bytes)",
                self.pos,
                self.bytes.len()
            )));
        };
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8, Failure> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<usize, Failure> {
        let b = self.take(2, what)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    fn u32(&mut self, what: &str) -> Result<usize, Failure> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn utf8(&mut self, len: usize, what: &str) -> Result<String, Failure> {
        Ok(String::from_utf8_lossy(self.take(len, what)?).into_owned())
    }

    /// A UTF-8 string without marker (16-bit length): object member names.
    fn short_string(&mut self) -> Result<String, Failure> {
        let len = self.u16("string length")?;
        self.utf8(len, "string")
    }

    /// One value, marker first.
    pub fn value(&mut self) -> Result<Value, Failure> {
        self.value_at(0)
    }

    fn value_at(&mut self, depth: usize) -> Result<Value, Failure> {
        let at = self.pos;
        let marker = self.u8("marker")?;
        match marker {
            0x00 => {
                let b = self.take(8, "number")?;
                let mut raw = [0u8; 8];
                raw.copy_from_slice(b);
                Ok(Value::Number(f64::from_be_bytes(raw)))
            }
            0x01 => Ok(Value::Bool(self.u8("boolean")? != 0)),
            0x02 => Ok(Value::String(self.short_string()?)),
            0x0C => {
                let len = self.u32("long string length")?;
                Ok(Value::String(self.utf8(len, "long string")?))
            }
            0x03 | 0x08 => {
                if depth >= MAX_DEPTH {
                    return Err(Failure::decode(format!(
                        "amf0 value at offset {at} nests deeper than {MAX_DEPTH} levels"
                    )));
                }
                if marker == 0x08 {
                    // The ECMA array's count is advisory; the members end like an object's.
                    self.u32("ecma array count")?;
                }
                let mut members = Vec::new();
                loop {
                    let name = self.short_string()?;
                    if name.is_empty() && self.bytes.get(self.pos) == Some(&0x09) {
                        self.pos += 1;
                        return Ok(Value::Object(members));
                    }
                    let value = self.value_at(depth + 1)?;
                    members.push((name, value));
                }
            }
            0x0A => {
                if depth >= MAX_DEPTH {
                    return Err(Failure::decode(format!(
                        "amf0 value at offset {at} nests deeper than {MAX_DEPTH} levels"
                    )));
                }
                let count = self.u32("strict array count")?;
                // Each element takes at least one byte: a count beyond what is left is a lie.
                if count > self.bytes.len() - self.pos {
                    return Err(Failure::decode(format!(
                        "amf0 strict array at offset {at} claims {count} elements in {} bytes",
                        self.bytes.len() - self.pos
                    )));
                }
                let mut items = Vec::with_capacity(count);
                for _ in 0..count {
                    items.push(self.value_at(depth + 1)?);
                }
                Ok(Value::Array(items))
            }
            0x05 | 0x06 => Ok(Value::Null),
            0x0B => {
                self.take(10, "date")?;
                Ok(Value::Null)
            }
            other => Err(Failure::decode(format!(
                "amf0 marker 0x{other:02x} at offset {at} is not supported"
            ))),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// AMF0 writers for tests (here and in `flv`).
    pub fn string(s: &str) -> Vec<u8> {
        let mut out = vec![0x02];
        out.extend_from_slice(&(s.len() as u16).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
        out
    }

    pub fn number(n: f64) -> Vec<u8> {
        let mut out = vec![0x00];
        out.extend_from_slice(&n.to_be_bytes());
        out
    }

    pub fn object(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut out = vec![0x03];
        for (name, value) in members {
            out.extend_from_slice(&(name.len() as u16).to_be_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(value);
        }
        out.extend_from_slice(&[0, 0, 0x09]);
        out
    }

    #[test]
    fn reads_nested_objects_arrays_and_scalars() {
        let mut bytes = object(&[
            ("n", number(16.0)),
            ("s", string("x")),
            ("o", object(&[("b", vec![0x01, 1])])),
        ]);
        bytes.extend_from_slice(&[0x0A, 0, 0, 0, 2, 0x05, 0x06]);
        let mut r = Reader::new(&bytes);
        let v = r.value().unwrap();
        assert_eq!(v.get("n").and_then(Value::number), Some(16.0));
        assert_eq!(v.get("s"), Some(&Value::String("x".into())));
        assert_eq!(
            v.get("o").and_then(|o| o.get("b")),
            Some(&Value::Bool(true))
        );
        assert_eq!(
            r.value().unwrap(),
            Value::Array(vec![Value::Null, Value::Null])
        );
        assert!(r.is_empty());
    }

    #[test]
    fn ecma_array_reads_like_an_object() {
        let mut bytes = vec![0x08, 0, 0, 0, 1];
        bytes.extend_from_slice(&object(&[("k", number(1.0))])[1..]);
        assert_eq!(
            Reader::new(&bytes).value().unwrap(),
            Value::Object(vec![("k".into(), Value::Number(1.0))])
        );
    }

    #[test]
    fn truncation_depth_and_lying_counts_are_errors() {
        let full = object(&[("n", number(1.0))]);
        for cut in 0..full.len() {
            let err = Reader::new(&full[..cut]).value().unwrap_err();
            assert!(err.message.starts_with("amf0 "), "{cut}: {}", err.message);
        }
        let mut deep = Vec::new();
        for _ in 0..=MAX_DEPTH {
            deep.extend_from_slice(&[0x0A, 0, 0, 0, 1]);
        }
        deep.push(0x05);
        let err = Reader::new(&deep).value().unwrap_err();
        assert!(err.message.contains("nests deeper"), "{}", err.message);
        let err = Reader::new(&[0x0A, 0xff, 0xff, 0xff, 0xff, 0x05])
            .value()
            .unwrap_err();
        assert!(
            err.message.contains("claims 4294967295 elements"),
            "{}",
            err.message
        );
        let err = Reader::new(&[0x11]).value().unwrap_err();
        assert_eq!(err.message, "amf0 marker 0x11 at offset 0 is not supported");
    }
}
