//! CDR (OMG XCDR version 1, "plain CDR") as ROS 2 serialises messages: a 4-byte encapsulation
//! header, then the fields in declaration order.
//!
//! - Header: `0x00 0x01` = CDR little-endian (what every ROS 2 middleware writes on common
//!   hardware), `0x00 0x00` = CDR big-endian, then two option bytes (written as zero, ignored on
//!   read).
//! - A primitive of size `n` (1, 2, 4, 8) is aligned to a multiple of `n` counted from the end of
//!   the header (the header is not part of the alignment origin).
//! - A `string` is a `u32` length that counts the terminating NUL, the bytes, then the NUL.
//! - A `sequence<T>` (unbounded or bounded) is a `u32` element count, then the elements; a fixed
//!   array `T[N]` is the `N` elements with no count.
//! - A nested struct adds nothing: its fields continue the stream (no padding of its own).
//!
//! The writer emits little-endian; the reader accepts both byte orders and refuses anything else
//! (parameter-list or XCDR2 encapsulations) with a message that names the header bytes.

use std::fmt;

/// The encapsulation header this module writes: CDR little-endian, options zero.
pub const CDR_LE_HEADER: [u8; 4] = [0x00, 0x01, 0x00, 0x00];

/// A CDR decoding failure: what was being read, where, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct CdrError {
    /// The field being read (e.g. `"header.frame_id"`, `"data"`).
    pub field: String,
    /// Byte offset in the payload (header included) where reading failed.
    pub offset: usize,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for CdrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CDR field '{}' at byte {}: {}",
            self.field, self.offset, self.msg
        )
    }
}

impl std::error::Error for CdrError {}

/// Serialises one message: [`CdrWriter::new`] writes the header, the `write_*` calls append
/// aligned fields, [`CdrWriter::finish`] returns the payload.
#[derive(Debug, Clone)]
pub struct CdrWriter {
    buf: Vec<u8>,
}

impl Default for CdrWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl CdrWriter {
    /// A writer holding only the little-endian encapsulation header.
    pub fn new() -> CdrWriter {
        CdrWriter {
            buf: CDR_LE_HEADER.to_vec(),
        }
    }

    /// Pads with zeros so the next byte sits at a multiple of `n` after the header.
    fn align(&mut self, n: usize) {
        let pos = self.buf.len() - CDR_LE_HEADER.len();
        let pad = (n - pos % n) % n;
        self.buf.resize(self.buf.len() + pad, 0);
    }

    /// Appends a `uint8` / `byte` / `char`.
    pub fn write_u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// Appends a `bool` (one byte, 0 or 1).
    pub fn write_bool(&mut self, v: bool) {
        self.buf.push(u8::from(v));
    }

    /// Appends an `int32`, aligned to 4.
    pub fn write_i32(&mut self, v: i32) {
        self.align(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends a `uint32`, aligned to 4.
    pub fn write_u32(&mut self, v: u32) {
        self.align(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends a `float32`, aligned to 4.
    pub fn write_f32(&mut self, v: f32) {
        self.align(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends a `uint64`, aligned to 8.
    pub fn write_u64(&mut self, v: u64) {
        self.align(8);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends a `float64`, aligned to 8.
    pub fn write_f64(&mut self, v: f64) {
        self.align(8);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends a `string`: length with the NUL, bytes, NUL. A string longer than `u32::MAX` − 1
    /// bytes cannot be represented; ROS strings never come close, so it is truncated (debug-asserted).
    pub fn write_string(&mut self, s: &str) {
        let bytes = s.as_bytes();
        debug_assert!(bytes.len() < u32::MAX as usize);
        self.write_u32(bytes.len() as u32 + 1);
        self.buf.extend_from_slice(bytes);
        self.buf.push(0);
    }

    /// Appends a sequence length (the element count), aligned to 4.
    pub fn write_len(&mut self, n: usize) {
        debug_assert!(n <= u32::MAX as usize);
        self.write_u32(n as u32);
    }

    /// Appends a `uint8[]` sequence: count, then the bytes.
    pub fn write_bytes(&mut self, data: &[u8]) {
        self.write_len(data.len());
        self.buf.extend_from_slice(data);
    }

    /// Appends a `float64[]` sequence: count, then the values (aligned to 8).
    pub fn write_f64_seq(&mut self, v: &[f64]) {
        self.write_len(v.len());
        self.write_f64_array(v);
    }

    /// Appends a fixed `float64[N]` array (no count).
    pub fn write_f64_array(&mut self, v: &[f64]) {
        for &x in v {
            self.write_f64(x);
        }
    }

    /// The finished payload, header included.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Deserialises one message: [`CdrReader::new`] checks the header, the `read_*` calls consume
/// aligned fields, each naming its field in a [`CdrError`].
#[derive(Debug, Clone)]
pub struct CdrReader<'a> {
    data: &'a [u8],
    pos: usize,
    little: bool,
}

/// Upper bound on a sequence length accepted before allocating: the bytes left in the payload
/// (every element takes at least one byte), so a corrupt count cannot exhaust memory.
fn check_count(r: &CdrReader<'_>, n: usize, elem: usize, field: &str) -> Result<(), CdrError> {
    if n.saturating_mul(elem.max(1)) > r.data.len() - r.pos {
        return Err(r.err(
            field,
            format!(
                "sequence of {n} elements does not fit the {} bytes left",
                r.data.len() - r.pos
            ),
        ));
    }
    Ok(())
}

impl<'a> CdrReader<'a> {
    /// A reader positioned after the 4-byte encapsulation header, which must be plain CDR
    /// (`00 01` little-endian or `00 00` big-endian).
    pub fn new(data: &'a [u8]) -> Result<CdrReader<'a>, CdrError> {
        let err = |msg: String| CdrError {
            field: "encapsulation header".into(),
            offset: 0,
            msg,
        };
        let Some(h) = data.get(..4) else {
            return Err(err(format!(
                "payload of {} bytes is shorter than the 4-byte header",
                data.len()
            )));
        };
        let little = match (h[0], h[1]) {
            (0x00, 0x01) => true,
            (0x00, 0x00) => false,
            (a, b) => {
                return Err(err(format!(
                    "representation {a:02x} {b:02x} is not plain CDR (00 01 little-endian or 00 00 big-endian)"
                )))
            }
        };
        Ok(CdrReader {
            data,
            pos: 4,
            little,
        })
    }

    /// An error at the current position.
    fn err(&self, field: &str, msg: impl Into<String>) -> CdrError {
        CdrError {
            field: field.to_string(),
            offset: self.pos,
            msg: msg.into(),
        }
    }

    /// Bytes not consumed yet.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// Skips padding up to a multiple of `n` after the header, then takes `len` bytes.
    fn take(&mut self, align: usize, len: usize, field: &str) -> Result<&'a [u8], CdrError> {
        let rel = self.pos - 4;
        let start = self.pos + (align - rel % align) % align;
        let end = start
            .checked_add(len)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| {
                self.err(
                    field,
                    format!(
                        "needs {len} bytes, payload ends at {} (truncated message?)",
                        self.data.len()
                    ),
                )
            })?;
        self.pos = end;
        Ok(&self.data[start..end])
    }

    /// Takes `N` aligned bytes in file order, flipped to little-endian order.
    fn take_le<const N: usize>(&mut self, field: &str) -> Result<[u8; N], CdrError> {
        let little = self.little;
        let b = self.take(N, N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        if !little {
            out.reverse();
        }
        Ok(out)
    }

    /// Reads a `uint8`.
    pub fn read_u8(&mut self, field: &str) -> Result<u8, CdrError> {
        Ok(self.take(1, 1, field)?[0])
    }

    /// Reads a `bool` (0 or 1; anything else is an error).
    pub fn read_bool(&mut self, field: &str) -> Result<bool, CdrError> {
        match self.read_u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.err(field, format!("bool byte {v} is neither 0 nor 1"))),
        }
    }

    /// Reads an `int32`.
    pub fn read_i32(&mut self, field: &str) -> Result<i32, CdrError> {
        Ok(i32::from_le_bytes(self.take_le(field)?))
    }

    /// Reads a `uint32`.
    pub fn read_u32(&mut self, field: &str) -> Result<u32, CdrError> {
        Ok(u32::from_le_bytes(self.take_le(field)?))
    }

    /// Reads a `uint64`.
    pub fn read_u64(&mut self, field: &str) -> Result<u64, CdrError> {
        Ok(u64::from_le_bytes(self.take_le(field)?))
    }

    /// Reads a `float32`.
    pub fn read_f32(&mut self, field: &str) -> Result<f32, CdrError> {
        Ok(f32::from_le_bytes(self.take_le(field)?))
    }

    /// Reads a `float64`.
    pub fn read_f64(&mut self, field: &str) -> Result<f64, CdrError> {
        Ok(f64::from_le_bytes(self.take_le(field)?))
    }

    /// Reads a `string`: the length must count a terminating NUL and the bytes must be UTF-8.
    pub fn read_string(&mut self, field: &str) -> Result<String, CdrError> {
        let n = self.read_u32(field)? as usize;
        if n == 0 {
            // Some writers emit a zero length for an empty string; accept it.
            return Ok(String::new());
        }
        let bytes = self.take(1, n, field)?;
        let (last, text) = bytes.split_last().unwrap_or((&0, &[]));
        if *last != 0 {
            return Err(self.err(field, "string is not NUL-terminated"));
        }
        String::from_utf8(text.to_vec()).map_err(|_| self.err(field, "string is not UTF-8"))
    }

    /// Reads a sequence length whose `elem_size`-byte elements must fit the payload.
    pub fn read_len(&mut self, elem_size: usize, field: &str) -> Result<usize, CdrError> {
        let n = self.read_u32(field)? as usize;
        check_count(self, n, elem_size, field)?;
        Ok(n)
    }

    /// Reads a `uint8[]` sequence.
    pub fn read_bytes(&mut self, field: &str) -> Result<Vec<u8>, CdrError> {
        let n = self.read_len(1, field)?;
        Ok(self.take(1, n, field)?.to_vec())
    }

    /// Reads a `float64[]` sequence.
    pub fn read_f64_seq(&mut self, field: &str) -> Result<Vec<f64>, CdrError> {
        let n = self.read_len(8, field)?;
        (0..n).map(|_| self.read_f64(field)).collect()
    }

    /// Reads a fixed `float64[N]` array.
    pub fn read_f64_array<const N: usize>(&mut self, field: &str) -> Result<[f64; N], CdrError> {
        let mut out = [0.0; N];
        for v in &mut out {
            *v = self.read_f64(field)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte vectors written by hand from the XCDR1 rules (alignment counted after the header).
    #[test]
    fn primitives_are_aligned_after_the_header() {
        let mut w = CdrWriter::new();
        w.write_u8(0xAB); // offset 0
        w.write_u32(0x0102_0304); // pad 3, offset 4
        w.write_u8(7); // offset 8
        w.write_f64(1.0); // pad 7, offset 16
        w.write_bool(true); // offset 24
        w.write_i32(-2); // pad 3, offset 28
        let expected: Vec<u8> = [
            vec![0x00, 0x01, 0x00, 0x00],
            vec![0xAB, 0, 0, 0],
            vec![0x04, 0x03, 0x02, 0x01],
            vec![7, 0, 0, 0, 0, 0, 0, 0],
            vec![0, 0, 0, 0, 0, 0, 0xF0, 0x3F],
            vec![1, 0, 0, 0],
            vec![0xFE, 0xFF, 0xFF, 0xFF],
        ]
        .concat();
        let bytes = w.finish();
        assert_eq!(bytes, expected);
        let mut r = CdrReader::new(&bytes).unwrap();
        assert_eq!(r.read_u8("a").unwrap(), 0xAB);
        assert_eq!(r.read_u32("b").unwrap(), 0x0102_0304);
        assert_eq!(r.read_u8("c").unwrap(), 7);
        assert_eq!(r.read_f64("d").unwrap(), 1.0);
        assert!(r.read_bool("e").unwrap());
        assert_eq!(r.read_i32("f").unwrap(), -2);
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn strings_count_the_nul_and_sequences_count_elements() {
        let mut w = CdrWriter::new();
        w.write_string("rgb8"); // len 5 incl. NUL
        w.write_bytes(&[1, 2, 3]); // pad 3 after 9 bytes, then count 3
        w.write_f64_seq(&[0.5]); // offset 19: pad 1, count at 20, value at 24 (aligned already)
        w.write_string("");
        let expected: Vec<u8> = [
            vec![0x00, 0x01, 0x00, 0x00],
            vec![5, 0, 0, 0, b'r', b'g', b'b', b'8', 0],
            vec![0, 0, 0],
            vec![3, 0, 0, 0, 1, 2, 3],
            vec![0],
            vec![1, 0, 0, 0],
            vec![0, 0, 0, 0, 0, 0, 0xE0, 0x3F],
            vec![1, 0, 0, 0, 0],
        ]
        .concat();
        let bytes = w.finish();
        assert_eq!(bytes, expected);
        let mut r = CdrReader::new(&bytes).unwrap();
        assert_eq!(r.read_string("s").unwrap(), "rgb8");
        assert_eq!(r.read_bytes("b").unwrap(), vec![1, 2, 3]);
        assert_eq!(r.read_f64_seq("f").unwrap(), vec![0.5]);
        assert_eq!(r.read_string("e").unwrap(), "");
    }

    #[test]
    fn big_endian_payloads_are_read() {
        // u32 5 at 0, pad 4, f64 1.0 at 8.
        let bytes = [
            0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0,
        ];
        let mut r = CdrReader::new(&bytes).unwrap();
        assert_eq!(r.read_u32("n").unwrap(), 5);
        assert_eq!(r.read_f64("x").unwrap(), 1.0);
    }

    #[test]
    fn malformed_payloads_are_refused_with_the_field() {
        assert!(CdrReader::new(&[0, 1])
            .unwrap_err()
            .to_string()
            .contains("shorter"));
        let e = CdrReader::new(&[0, 3, 0, 0]).unwrap_err();
        assert!(e.to_string().contains("00 03"), "{e}");
        // A count far larger than the payload must not allocate.
        let bytes = [0, 1, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF];
        let e = CdrReader::new(&bytes)
            .unwrap()
            .read_bytes("data")
            .unwrap_err();
        assert!(e.to_string().contains("'data'"), "{e}");
        let bytes = [0, 1, 0, 0, 3, 0, 0, 0, b'a', b'b', b'c'];
        let e = CdrReader::new(&bytes)
            .unwrap()
            .read_string("frame_id")
            .unwrap_err();
        assert!(e.to_string().contains("NUL"), "{e}");
        let bytes = [0, 1, 0, 0, 1, 2];
        let e = CdrReader::new(&bytes).unwrap().read_f64("x").unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
    }
}
