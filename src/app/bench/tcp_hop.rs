//! The physical baseline of `hdpf bench zenoh`: the same frames over a plain TCP socket on
//! 127.0.0.1, in the same process, with the same pacing, the same lossless window and the same
//! receiver work (CDR decode, then colour and depth decoding), but no zenoh. The zenoh hop's
//! latency is then reported beside what the loopback link and this machine's scheduling cost
//! anyway.
//!
//! Wire format (ours, only for this bench): per message an 8-byte little-endian length, an 8-byte
//! little-endian source timestamp (ns since the Unix epoch, taken just before the message is
//! written, as rmw_zenoh's attachment is), then the CDR payload. Per frame the depth image goes
//! first and the colour image last, as `hdpf replay` sends them; in the lossless flood the
//! receiver acknowledges each frame with its 8-byte count. Unlike `hdpf replay` the sender sends
//! only the two images (not camera_info and hdpf's record, a few hundred bytes) and sends payloads
//! encoded before the clock starts.

use crate::app::replay::{lossless_floor, sleep_until_due};
use crate::core::error::{Error, Result};
use crate::domains::recording::images::{decode_color, decode_depth, ImageMsg};
use crate::domains::recording::ros_msgs::{Image, RosMessage};
use crate::runtime::zenoh_node::unix_ns;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long either end waits on the socket before giving up (as `hdpf replay`'s default wait).
const WAIT: Duration = Duration::from_secs(30);

/// Hop latencies (colour arrival − its source timestamp, ns) of `frames` frames, each the CDR
/// payloads `[depth, colour]` of `payloads[k % len]`, sent at `rate` Hz (0: lossless flood, as
/// far ahead of the receiver as `hdpf replay` goes, `lossless_floor`; the receiver then
/// acknowledges each frame).
pub fn hops(payloads: &[[Vec<u8>; 2]], frames: usize, rate: f64) -> Result<Vec<i64>> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| io("bind 127.0.0.1", e))?;
    let addr = listener.local_addr().map_err(|e| io("local address", e))?;
    let lossless = rate <= 0.0;
    let receiver = std::thread::spawn(move || -> Result<Vec<i64>> {
        receive(accept(&listener)?, frames, lossless)
    });
    let sent = TcpStream::connect(addr)
        .map_err(|e| io("connect", e))
        .and_then(|link| send(link, payloads, frames, rate));
    // The receiver's error names the cause; the sender then only sees a closed socket.
    let received =
        (receiver.join()).map_err(|_| Error::Other("tcp baseline receiver panicked".into()));
    let hops = received??;
    sent.map(|()| hops)
}

/// `what` failed on the baseline's socket.
fn io(what: &str, e: std::io::Error) -> Error {
    Error::Other(format!("tcp baseline: {what}: {e}"))
}

/// The sender's connection, waited for at most [`WAIT`] (a sender that failed to connect must not
/// leave the receiver waiting forever).
fn accept(listener: &TcpListener) -> Result<TcpStream> {
    listener
        .set_nonblocking(true)
        .map_err(|e| io("listener", e))?;
    let start = Instant::now();
    loop {
        match listener.accept() {
            Ok((link, _)) => {
                link.set_nonblocking(false)
                    .map_err(|e| io("accepted socket", e))?;
                return Ok(link);
            }
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => return Err(io("accept", e)),
            Err(_) if start.elapsed() > WAIT => {
                return Err(Error::Other(format!(
                    "tcp baseline: no sender connected within {} s",
                    WAIT.as_secs()
                )))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// Both ends: no Nagle delay, and a bounded wait in every read and write.
fn configure(link: &TcpStream) -> Result<()> {
    (link.set_nodelay(true))
        .and_then(|()| link.set_read_timeout(Some(WAIT)))
        .and_then(|()| link.set_write_timeout(Some(WAIT)))
        .map_err(|e| io("socket options", e))
}

/// The sender: paced, or (lossless) waiting for the receiver's counts; closes after the last.
fn send(mut link: TcpStream, payloads: &[[Vec<u8>; 2]], frames: usize, rate: f64) -> Result<()> {
    configure(&link)?;
    let start = Instant::now();
    let mut acked = 0;
    let mut wait_for = |link: &mut TcpStream, count: u64| -> Result<()> {
        while acked < count {
            acked = read_u64(link).map_err(|e| io("sender reading a count", e))?;
        }
        Ok(())
    };
    for k in 0..frames {
        match rate > 0.0 {
            true => sleep_until_due(start, k as u64, rate),
            false => wait_for(&mut link, lossless_floor(k as u64))?,
        }
        for cdr in &payloads[k % payloads.len()] {
            let mut head = (cdr.len() as u64).to_le_bytes().to_vec();
            head.extend_from_slice(&unix_ns().to_le_bytes());
            (link.write_all(&head))
                .and_then(|()| link.write_all(cdr))
                .map_err(|e| io(&format!("sender writing frame {k}"), e))?;
        }
    }
    // Lossless: every count read before closing, so the last acknowledgement has a reader.
    if rate <= 0.0 {
        wait_for(&mut link, frames as u64)?;
    }
    Ok(())
}

/// Reads `frames` frames — both messages first, stamping the colour's arrival, then their CDR
/// decoding and image decoding, as the zenoh source stamps in the subscription and decodes in its
/// own thread — and, when `ack`, acknowledges each with its count; the hops.
fn receive(mut link: TcpStream, frames: usize, ack: bool) -> Result<Vec<i64>> {
    configure(&link)?;
    let origin = Path::new("tcp-baseline");
    let mut hops = Vec::with_capacity(frames);
    let mut cdr = [Vec::new(), Vec::new()]; // receive buffers, kept as a socket reader keeps them
    for k in 1..=frames as u64 {
        let mut arrival = 0;
        for (m, buf) in cdr.iter_mut().enumerate() {
            let at = |what: &str| format!("receiver reading frame {k} message {m} {what}");
            let len = read_u64(&mut link).map_err(|e| io(&at("length"), e))? as usize;
            let sent = read_u64(&mut link).map_err(|e| io(&at("stamp"), e))? as i64;
            buf.resize(len, 0);
            link.read_exact(buf).map_err(|e| io(&at("payload"), e))?;
            arrival = unix_ns() - sent; // the colour's, last, is kept, as the zenoh source keeps it
        }
        hops.push(arrival);
        let image = |bytes: &[u8]| {
            (Image::from_cdr(bytes).map(ImageMsg::Raw))
                .map_err(|e| Error::format(origin, format!("frame {k}: image CDR: {e}")))
        };
        decode_depth(origin, "depth", &image(&cdr[0])?, 1.0)?;
        decode_color(origin, "colour", &image(&cdr[1])?)?;
        if ack {
            (link.write_all(&k.to_le_bytes()))
                .map_err(|e| io(&format!("receiver acknowledging frame {k}"), e))?;
        }
    }
    Ok(hops)
}

fn read_u64(link: &mut TcpStream) -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    link.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}
