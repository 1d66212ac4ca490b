//! The decompressed sizes an MCAP file declares, checked before anything is decompressed.
//!
//! A Chunk record (opcode 0x06) states its `uncompressed_size`, and the `mcap` crate allocates
//! that many bytes before it decompresses; a corrupt or hostile file that declares exabytes would
//! abort the process in the allocator. [`check_chunks`] walks the top-level records (each is
//! `opcode: u8, length: u64 LE, content`) and refuses a chunk whose declared size does not fit the
//! memory budget ([`crate::core::memory`]), naming the file, the chunk's byte offset and the size.
//! Records are framed by their lengths only, so the walk stops where the framing breaks (or at the
//! Footer) and leaves that fault to the MCAP reader, which names it.

use crate::Result;
use std::path::Path;

/// MCAP's leading magic bytes.
const MAGIC: &[u8; 8] = b"\x89MCAP0\r\n";
/// Opcode of a Chunk record.
const OP_CHUNK: u8 = 0x06;
/// Opcode of the Footer record (the end of the records).
const OP_FOOTER: u8 = 0x02;
/// Offset of `uncompressed_size` in a Chunk's content (after message_start_time, message_end_time).
const UNCOMPRESSED_SIZE_AT: usize = 16;

/// Refuses `bytes` (the file at `path`) when one of its chunks declares a decompressed size that
/// the memory budget cannot hold; anything else is left to the MCAP reader.
pub fn check_chunks(path: &Path, bytes: &[u8]) -> Result<()> {
    let Some(mut at) = bytes.starts_with(MAGIC).then_some(MAGIC.len()) else {
        return Ok(());
    };
    while let Some((opcode, content)) = record_at(bytes, at) {
        if opcode == OP_FOOTER {
            break;
        }
        if opcode == OP_CHUNK {
            check_chunk(path, at, content)?;
        }
        at += 9 + content.len();
    }
    Ok(())
}

/// The record that starts at byte `at`: its opcode and content, or `None` where the framing breaks.
fn record_at(bytes: &[u8], at: usize) -> Option<(u8, &[u8])> {
    let opcode = *bytes.get(at)?;
    let len = u64::from_le_bytes(bytes.get(at + 1..at + 9)?.try_into().ok()?);
    let start = at + 9;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    Some((opcode, bytes.get(start..end)?))
}

/// Refuses the chunk at byte `at` when its declared `uncompressed_size` exceeds the budget.
fn check_chunk(path: &Path, at: usize, content: &[u8]) -> Result<()> {
    let Some(field) = content.get(UNCOMPRESSED_SIZE_AT..UNCOMPRESSED_SIZE_AT + 8) else {
        return Ok(());
    };
    let size = u64::from_le_bytes(field.try_into().unwrap_or_default());
    let count = usize::try_from(size).unwrap_or(usize::MAX);
    crate::core::memory::check(
        &format!(
            "{}: uncompressed_size of the chunk at byte {at}",
            path.display()
        ),
        size,
        &[count],
        1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal file: magic, one Chunk record declaring `size` decompressed bytes, a Footer.
    fn file_with_chunk(size: u64) -> Vec<u8> {
        let mut content = vec![0u8; 16];
        content.extend_from_slice(&size.to_le_bytes());
        content.extend_from_slice(&0u32.to_le_bytes()); // crc
        content.extend_from_slice(&0u32.to_le_bytes()); // compression ""
        content.extend_from_slice(&0u64.to_le_bytes()); // records length
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

    /// Fuzz regression (mcap target): a chunk declaring 1.7·10¹⁸ decompressed bytes aborted the
    /// process inside the `mcap` crate; it is now refused naming the file, the offset and the size.
    #[test]
    fn a_chunk_larger_than_memory_is_refused_before_decompression() {
        let path = Path::new("rec.mcap");
        let err = check_chunks(path, &file_with_chunk(1_702_386_321_575_641_097)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("rec.mcap") && msg.contains("byte 8"), "{msg}");
        assert!(msg.contains("1702386321575641097"), "{msg}");
        assert!(check_chunks(path, &file_with_chunk(1024)).is_ok());
    }

    #[test]
    fn broken_framing_is_left_to_the_reader() {
        let mut bytes = file_with_chunk(1 << 62);
        bytes.truncate(20);
        assert!(check_chunks(Path::new("x.mcap"), &bytes).is_ok());
        assert!(check_chunks(Path::new("x.mcap"), b"not an mcap").is_ok());
    }
}
