//! The physical baseline of `hdpf bench zenoh`: the same frames over a plain TCP socket on
//! 127.0.0.1, in the same process, with the same pacing, the same lossless window and the same
//! receiver work (CDR decode, then colour and depth decoding), but no zenoh. The zenoh hop's
//! latency is then reported beside what the loopback link and this machine's scheduling cost
//! anyway.
//!
//! Wire format (ours, only for this bench): per message an 8-byte little-endian length, an 8-byte
//! little-endian source timestamp (ns since the Unix epoch, taken just before the message is
//! written, as rmw_zenoh's attachment is), then the CDR payload. Per frame the depth image goes
//! first and the colour image last, as `hdpf replay` sends them; the receiver acknowledges each
//! colour image with its 8-byte count.

use crate::core::error::{Error, Result};
use crate::domains::recording::images::{decode_color, decode_depth, ImageMsg};
use crate::domains::recording::ros_msgs::{Image, RosMessage};
use crate::runtime::zenoh_node::{unix_ns, LOSSLESS_WINDOW};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// Hop latencies (colour arrival − its source timestamp, ns) of `frames` frames, each the CDR
/// payloads `[depth, colour]` of `payloads[k % len]`, sent at `rate` Hz (0: lossless flood, at
/// most [`LOSSLESS_WINDOW`] frames ahead of the receiver).
pub fn hops(payloads: &[[Vec<u8>; 2]], frames: usize, rate: f64) -> Result<Vec<i64>> {
    let io = |what: &str, e: std::io::Error| Error::Other(format!("tcp baseline: {what}: {e}"));
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| io("bind 127.0.0.1", e))?;
    let addr = listener.local_addr().map_err(|e| io("local address", e))?;
    let receiver = std::thread::spawn(move || -> Result<Vec<i64>> {
        let (stream, _) = listener.accept().map_err(|e| io("accept", e))?;
        receive(stream, frames)
    });
    let mut link = TcpStream::connect(addr).map_err(|e| io("connect", e))?;
    link.set_nodelay(true).map_err(|e| io("nodelay", e))?;
    let start = Instant::now();
    let mut acked = 0;
    let mut wait_for = |link: &mut TcpStream, count: u64| -> Result<()> {
        while acked < count {
            acked = read_u64(link).map_err(|e| io("count", e))?;
        }
        Ok(())
    };
    for k in 0..frames {
        match rate > 0.0 {
            true => {
                let due = start + Duration::from_secs_f64(k as f64 / rate);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
            false => wait_for(&mut link, (k as u64 + 1).saturating_sub(LOSSLESS_WINDOW))?,
        }
        for cdr in &payloads[k % payloads.len()] {
            let mut head = (cdr.len() as u64).to_le_bytes().to_vec();
            head.extend_from_slice(&unix_ns().to_le_bytes());
            link.write_all(&head)
                .and_then(|()| link.write_all(cdr))
                .map_err(|e| io("send", e))?;
        }
    }
    // Every count read before closing, so the receiver's last acknowledgement has a reader.
    wait_for(&mut link, frames as u64)?;
    drop(link);
    receiver
        .join()
        .map_err(|_| Error::Other("tcp baseline receiver panicked".into()))?
}

/// Reads `frames` frames, decodes them as the zenoh source does, acknowledges each; the hops.
fn receive(mut link: TcpStream, frames: usize) -> Result<Vec<i64>> {
    let io = |e: std::io::Error| Error::Other(format!("tcp baseline receive: {e}"));
    link.set_nodelay(true).map_err(io)?;
    let origin = Path::new("tcp-baseline");
    let mut hops = Vec::with_capacity(frames);
    let mut cdr = Vec::new(); // one receive buffer, as a socket reader keeps
    for k in 1..=frames as u64 {
        let mut images = Vec::with_capacity(2);
        let mut hop = 0;
        for _ in 0..2 {
            let len = read_u64(&mut link).map_err(io)? as usize;
            let sent = read_u64(&mut link).map_err(io)? as i64;
            cdr.resize(len, 0);
            link.read_exact(&mut cdr).map_err(io)?;
            hop = unix_ns() - sent; // the colour's, last, is kept, as the zenoh source keeps it
            let image = Image::from_cdr(&cdr)
                .map_err(|e| Error::format(origin, format!("image CDR: {e}")))?;
            images.push(ImageMsg::Raw(image));
        }
        hops.push(hop);
        decode_depth(origin, "depth", &images[0], 1.0)?;
        decode_color(origin, "colour", &images[1])?;
        link.write_all(&k.to_le_bytes()).map_err(io)?;
    }
    Ok(hops)
}

fn read_u64(link: &mut TcpStream) -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    link.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}
