//! hdpf's one way into an MCAP file's records: the `mcap` crate's sans-io reader with a record
//! length limit, after a pre-scan of the chunks — because the crate's own iterators
//! (`ChunkFlattener`, `MessageStream`) set no limit inside chunks, and fuzzing found two faults
//! that reach past the crate's checks:
//! - A record inside a compressed chunk that declares a length of 1.7·10¹⁸ bytes made the crate
//!   reserve that much (an abort in the allocator); with the memory budget as the limit, a 5 KB
//!   file still made it reserve and zero 4 GB. [`records`] gives the reader a limit of
//!   [`MAX_RECORD`] (1 GiB) or the memory budget ([`crate::core::memory`]) if smaller; a longer
//!   record or chunk is refused by name. No message hdpf reads comes near it (a 4K `rgb8` image is
//!   25 MB).
//! - In an uncompressed chunk, a record longer than what is left of the chunk's records made the
//!   crate's remaining-bytes count underflow (a panic with overflow checks, a wrapped count
//!   without). [`check_chunks`] refuses it first: every record inside an uncompressed chunk must
//!   end within the chunk.
//!
//! The pre-scan walks the top-level records (each is `opcode: u8, length: u64 LE, content`) and
//! names the file, the chunk's byte offset and the value. Records are framed by their lengths
//! only, so it stops where the framing breaks (or at the Footer) and leaves that fault to the
//! reader, which names it.

use crate::core::memory;
use crate::{Error, Result};
use mcap::records::Record;
use mcap::sans_io::{LinearReadEvent, LinearReader, LinearReaderOptions};
use std::path::Path;

/// Longest record [`records`] reads, in bytes (1 GiB).
pub const MAX_RECORD: usize = 1 << 30;

/// The records of the MCAP file `bytes` (read from `path`), chunks unpacked, each record at most
/// [`MAX_RECORD`] or the memory budget long; faults are errors naming the file.
pub fn records<'a>(
    path: &'a Path,
    bytes: &'a [u8],
) -> Result<impl Iterator<Item = Result<Record<'static>>> + 'a> {
    check_chunks(path, bytes)?;
    let budget = memory::budget().map_or(usize::MAX, |b| usize::try_from(b).unwrap_or(usize::MAX));
    let limit = budget.min(MAX_RECORD);
    let reader = LinearReader::new_with_options(
        LinearReaderOptions::default().with_record_length_limit(limit),
    );
    Ok(Records {
        path,
        buf: bytes,
        reader,
        limit,
        done: false,
    })
}

/// Iterator state of [`records`].
struct Records<'a> {
    path: &'a Path,
    buf: &'a [u8],
    reader: LinearReader,
    limit: usize,
    done: bool,
}

impl Records<'_> {
    fn broken(&self, e: mcap::McapError) -> Error {
        let budget = match e {
            mcap::McapError::RecordTooLarge { .. } | mcap::McapError::ChunkTooLarge(_) => {
                format!(
                    " (records are limited to {} bytes: 1 GiB, or the memory budget if smaller)",
                    self.limit
                )
            }
            _ => String::new(),
        };
        Error::format(self.path, format!("not a valid MCAP file: {e}{budget}"))
    }
}

impl Iterator for Records<'_> {
    type Item = Result<Record<'static>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        while let Some(event) = self.reader.next_event() {
            let record = match event {
                Ok(LinearReadEvent::ReadRequest(need)) => {
                    let n = need.min(self.buf.len());
                    self.reader.insert(n).copy_from_slice(&self.buf[..n]);
                    self.reader.notify_read(n);
                    self.buf = &self.buf[n..];
                    continue;
                }
                Ok(LinearReadEvent::Record { data, opcode }) => match parse(opcode, data) {
                    Ok(record) => record,
                    Err(why) => {
                        self.done = true;
                        return Some(Err(Error::format(self.path, why)));
                    }
                },
                Err(e) => Err(e),
            };
            self.done = record.is_err();
            return Some(record.map_err(|e| self.broken(e)));
        }
        None
    }
}

/// Opcode of an Attachment record.
const OP_ATTACHMENT: u8 = 0x09;

/// One record parsed by the `mcap` crate, after the checks its parser lacks: an Attachment shorter
/// than its header and CRC made it slice out of bounds (a panic in any build; fuzz finding 5).
/// Any other panic inside the parser is caught and reported as a broken record, not a crash.
/// `Err` is the message to report.
fn parse(
    opcode: u8,
    data: &[u8],
) -> std::result::Result<mcap::McapResult<Record<'static>>, String> {
    if opcode == OP_ATTACHMENT && !attachment_fits(data) {
        return Err(format!(
            "not a valid MCAP file: an Attachment record of {} bytes is shorter than its header and CRC",
            data.len()
        ));
    }
    let parsed =
        std::panic::catch_unwind(|| mcap::parse_record(opcode, data).map(Record::into_owned));
    parsed.map_err(|_| {
        format!("not a valid MCAP file: a record with opcode {opcode:#04x} could not be parsed")
    })
}

/// Whether an Attachment's content holds its header (`log_time`, `create_time`, `name`,
/// `media_type`, `data` length), its data and its 4-byte CRC.
fn attachment_fits(data: &[u8]) -> bool {
    let string_end = |at: usize| -> Option<usize> {
        let len = u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?);
        (at + 4).checked_add(usize::try_from(len).ok()?)
    };
    let fits = || -> Option<bool> {
        let after_name = string_end(16)?;
        let after_media = string_end(after_name)?;
        let data_len = usize::try_from(u64_at(data, after_media)?).ok()?;
        let end = (after_media + 8).checked_add(data_len)?.checked_add(4)?;
        Some(end <= data.len())
    };
    fits().unwrap_or(false)
}

/// MCAP's leading magic bytes.
const MAGIC: &[u8; 8] = b"\x89MCAP0\r\n";
/// Opcode of a Chunk record.
const OP_CHUNK: u8 = 0x06;
/// Opcode of the Footer record (the end of the records).
const OP_FOOTER: u8 = 0x02;
/// Offset of `uncompressed_size` in a Chunk's content (after message_start_time, message_end_time).
const UNCOMPRESSED_SIZE_AT: usize = 16;
/// Offset of the `compression` string's length (after `uncompressed_size` and `uncompressed_crc`).
const COMPRESSION_AT: usize = 28;

/// Refuses `bytes` (the file at `path`) when one of its chunks declares a decompressed size that
/// the memory budget cannot hold, or holds uncompressed records that run past its end; anything
/// else is left to the reader.
pub fn check_chunks(path: &Path, bytes: &[u8]) -> Result<()> {
    let Some(mut at) = bytes.starts_with(MAGIC).then_some(MAGIC.len()) else {
        return Ok(());
    };
    let budget = memory::budget();
    while let Some((opcode, content, whole)) = record_at(bytes, at) {
        if opcode == OP_FOOTER {
            break;
        }
        if opcode == OP_CHUNK {
            check_chunk(path, at, content, whole, budget)?;
        }
        if !whole {
            break;
        }
        at += 9 + content.len();
    }
    Ok(())
}

/// The little-endian `u64` at byte `at` of `bytes`, if there is one.
fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let field = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(field.try_into().ok()?))
}

/// The record that starts at byte `at`: its opcode, its content (cut at the end of the file), and
/// whether the content is whole; `None` where not even the opcode and length are there. The
/// reader streams a chunk cut short by the end of the file up to where it breaks, so such a chunk
/// is checked too.
fn record_at(bytes: &[u8], at: usize) -> Option<(u8, &[u8], bool)> {
    let opcode = *bytes.get(at)?;
    let len = usize::try_from(u64_at(bytes, at + 1)?).unwrap_or(usize::MAX);
    let start = at + 9;
    let end = start.saturating_add(len);
    let content = bytes.get(start..end.min(bytes.len()))?;
    Some((opcode, content, end <= bytes.len()))
}

/// Refuses the chunk at byte `at` when its declared `uncompressed_size` exceeds the budget, or
/// when it is uncompressed and a record inside runs past the chunk's records, or (a `whole` chunk)
/// its records length runs past the chunk itself.
fn check_chunk(
    path: &Path,
    at: usize,
    content: &[u8],
    whole: bool,
    budget: Option<u64>,
) -> Result<()> {
    let Some(size) = u64_at(content, UNCOMPRESSED_SIZE_AT) else {
        return Ok(());
    };
    let count = usize::try_from(size).unwrap_or(usize::MAX);
    let what = format!(
        "{}: uncompressed_size of the chunk at byte {at}",
        path.display()
    );
    memory::check_against(budget, &what, size, &[count], 1)?;
    match uncompressed_records(content) {
        Some((records, declared)) if whole && declared > records.len() => {
            let why = format!(
                "not a valid MCAP file: the chunk at byte {at} declares {declared} bytes of records \
                 but holds {}",
                records.len()
            );
            Err(Error::format(path, why))
        }
        Some((records, declared)) => {
            check_inner_records(path, at, &records[..declared.min(records.len())])
        }
        None => Ok(()),
    }
}

/// The records of a chunk stored without compression (`compression = ""`): what the file holds
/// after the `records` length field, and that declared length; `None` for a compressed chunk or
/// where the fields do not parse (left to the reader).
fn uncompressed_records(content: &[u8]) -> Option<(&[u8], usize)> {
    let name = content.get(COMPRESSION_AT..COMPRESSION_AT + 4)?;
    if u32::from_le_bytes(name.try_into().ok()?) != 0 {
        return None;
    }
    let len_at = COMPRESSION_AT + 4;
    let declared = usize::try_from(u64_at(content, len_at)?).unwrap_or(usize::MAX);
    Some((content.get(len_at + 8..)?, declared))
}

/// Refuses a record inside the chunk at byte `at` that ends past the chunk's records.
fn check_inner_records(path: &Path, at: usize, records: &[u8]) -> Result<()> {
    let mut k = 0;
    while k < records.len() {
        let end = u64_at(records, k + 1)
            .and_then(|len| usize::try_from(len).ok())
            .and_then(|len| (k + 9).checked_add(len))
            .filter(|&end| end <= records.len());
        let Some(end) = end else {
            let why = format!(
                "not a valid MCAP file: the record at byte {k} of the chunk at byte {at} runs \
                 past the chunk's {} bytes of records",
                records.len()
            );
            return Err(Error::format(path, why));
        };
        k = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal file: magic, one uncompressed Chunk record declaring `size` decompressed bytes
    /// and holding `records`, a Footer.
    fn file_with_records(size: u64, records: &[u8]) -> Vec<u8> {
        let mut content = vec![0u8; 16];
        content.extend_from_slice(&size.to_le_bytes());
        content.extend_from_slice(&0u32.to_le_bytes()); // crc
        content.extend_from_slice(&0u32.to_le_bytes()); // compression ""
        content.extend_from_slice(&(records.len() as u64).to_le_bytes());
        content.extend_from_slice(records);
        let mut bytes = MAGIC.to_vec();
        bytes.push(OP_CHUNK);
        bytes.extend_from_slice(&(content.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&content);
        bytes.push(OP_FOOTER);
        bytes.extend_from_slice(&20u64.to_le_bytes());
        bytes.extend_from_slice(&[0u8; 20]);
        bytes.extend_from_slice(MAGIC);
        bytes
    }

    /// A chunk that declares more decompressed bytes than the memory budget is refused by name.
    #[test]
    fn a_chunk_larger_than_memory_is_refused_before_decompression() {
        if memory::budget().is_none() {
            // No /proc/meminfo and no HDPF_MAX_MEMORY: only overflow is refused (see memory).
            return;
        }
        let path = Path::new("rec.mcap");
        let err = check_chunks(path, &file_with_chunk(1_702_386_321_575_641_097)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("rec.mcap") && msg.contains("byte 8"), "{msg}");
        assert!(msg.contains("1702386321575641097"), "{msg}");
        assert!(check_chunks(path, &file_with_chunk(1024)).is_ok());
    }

    fn file_with_chunk(size: u64) -> Vec<u8> {
        file_with_records(size, &[])
    }

    /// Fuzz regression (mcap target): a record inside an uncompressed chunk that claims more bytes
    /// than the chunk has left underflowed the `mcap` crate's count (a panic in a debug build).
    #[test]
    fn a_record_running_past_its_chunk_is_refused() {
        let mut record = vec![0x05u8]; // a Message record
        record.extend_from_slice(&4u64.to_le_bytes());
        record.extend_from_slice(&[1, 2, 3, 4]);
        let path = Path::new("rec.mcap");
        assert!(check_chunks(path, &file_with_records(13, &record)).is_ok());
        let mut long = record.clone();
        long[1..9].copy_from_slice(&40u64.to_le_bytes());
        let msg = check_chunks(path, &file_with_records(13, &long))
            .unwrap_err()
            .to_string();
        let named = msg.contains("rec.mcap") && msg.contains("record at byte 0");
        assert!(named && msg.contains("runs past"), "{msg}");
        // A records length past the chunk's end is refused.
        let mut bytes = file_with_records(13, &record);
        let len_at = 8 + 9 + 32;
        bytes[len_at..len_at + 8].copy_from_slice(&100u64.to_le_bytes());
        let msg = check_chunks(path, &bytes).unwrap_err().to_string();
        assert!(
            msg.contains("declares 100 bytes of records but holds 13"),
            "{msg}"
        );
        // A cut record header is refused the same way.
        let msg =
            (check_chunks(path, &file_with_records(13, &record[..5])).unwrap_err()).to_string();
        assert!(msg.contains("runs past"), "{msg}");
    }

    /// The files fuzzing found (`fuzz/regressions/mcap/`): a record inside an lz4 chunk that
    /// declares 1.7·10¹⁸ bytes (the crate reserved them: an abort), one that declares 4 GB (reserved
    /// and zeroed from a 5 KB file), and a record running past an uncompressed chunk (an
    /// underflow; also in a chunk cut short by the end of the file, which the pre-scan first left
    /// to the reader). All are now refused with the file named.
    #[test]
    fn fuzz_findings_are_refused_not_crashes() {
        const DIR: &str = "../../../fuzz/regressions/mcap/";
        // (file, what the refusal must say): the limit for the two long records.
        let found: [(&str, &[u8], &str); 5] = [
            (
                "attachment-shorter-than-its-header.mcap",
                include_bytes!(
                    "../../../fuzz/regressions/mcap/attachment-shorter-than-its-header.mcap"
                ),
                "Attachment",
            ),
            (
                "record-past-chunk-cut-by-end-of-file.mcap",
                include_bytes!(
                    "../../../fuzz/regressions/mcap/record-past-chunk-cut-by-end-of-file.mcap"
                ),
                "runs past",
            ),
            (
                "record-of-4-gb-from-5-kb.mcap",
                include_bytes!("../../../fuzz/regressions/mcap/record-of-4-gb-from-5-kb.mcap"),
                "limited to",
            ),
            (
                "record-length-1e18-in-lz4-chunk.mcap",
                include_bytes!(
                    "../../../fuzz/regressions/mcap/record-length-1e18-in-lz4-chunk.mcap"
                ),
                "limited to",
            ),
            (
                "record-past-uncompressed-chunk.mcap",
                include_bytes!(
                    "../../../fuzz/regressions/mcap/record-past-uncompressed-chunk.mcap"
                ),
                "runs past",
            ),
        ];
        for (name, bytes, why) in found {
            let path = Path::new(DIR).join(name);
            let err = records(&path, bytes).and_then(|r| r.collect::<Result<Vec<_>>>());
            let msg = err.expect_err(name).to_string();
            let named = msg.contains(name) && msg.contains("not a valid MCAP file");
            assert!(named && msg.contains(why), "{msg}");
        }
    }

    #[test]
    fn broken_framing_is_left_to_the_reader() {
        let mut bytes = file_with_chunk(1 << 62);
        bytes.truncate(20);
        assert!(check_chunks(Path::new("x.mcap"), &bytes).is_ok());
        assert!(check_chunks(Path::new("x.mcap"), b"not an mcap").is_ok());
    }
}
