//! `hdpf bench zenoh` (feature `zenoh`): the zenoh hop on loopback. One process, two sessions
//! linked over TCP on 127.0.0.1 (a listening receiver — hdpf's zenoh source, pairing and decoding
//! as in a tracker — and a connecting sender — `hdpf replay`'s publisher, lossless). Frames are
//! synthetic, generated in memory (a moving gradient, `rgb8` colour + `16UC1` depth, 640×480 by
//! default: 1.5 MB per frame). Reports frames sent / received / lost and the hop latency
//! (arrival of the colour sample − its rmw_zenoh source timestamp, same clock) p50 / p99.
//!
//! Before the zenoh hop, the same frames go through [`super::tcp_hop`] — a plain TCP socket on
//! 127.0.0.1 with the same pacing, window and decoding — in the same process: the baseline that
//! says how much of the hop the loopback link and the machine's scheduling cost without zenoh.
//!
//! `--rate 0` (default) floods the link losslessly (the sender waits for the receiver's count, at
//! most two frames ahead): frames lost and throughput, but a frame's hop then includes waiting
//! behind the frame before it. `--rate HZ` paces the sender as a camera would (30 Hz): the hop a
//! frame adds on its own.

use crate::core::error::{Error, Result};
use crate::core::stats::{percentile, Rank};
use crate::domains::recording::images::ImageMsg;
use crate::domains::recording::mcap_bop::{CAMERA_INFO_TOPIC, DEPTH_RAW_TOPIC};
use crate::domains::recording::mcap_read::PairedFrame;
use crate::domains::recording::ros_msgs::{BopFrame, CameraInfo, Header, Image};
use crate::runtime::pipeline::source::{Poll, Source, ZenohSource, ZenohSourceSpec};
use crate::runtime::zenoh_node::Endpoints;
use std::time::Duration;

/// Arguments of `hdpf bench zenoh`.
#[derive(clap::Args, Clone, Debug)]
pub struct ZenohBenchArgs {
    /// Frames to send.
    #[arg(long, default_value_t = 1000)]
    pub frames: usize,
    /// Image width.
    #[arg(long, default_value_t = 640)]
    pub width: u32,
    /// Image height.
    #[arg(long, default_value_t = 480)]
    pub height: u32,
    /// Frames per second (a camera: 30); 0 = lossless flood, as fast as the receiver takes them.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// TCP port on 127.0.0.1 (0: a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
}

/// What `hdpf bench zenoh` measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ZenohBenchReport {
    /// Frames published.
    pub sent: usize,
    /// Sender's pace, frames per second (0: lossless flood).
    pub rate: f64,
    /// Frames the source handed on.
    pub received: u64,
    /// `sent − received`.
    pub lost: i64,
    /// Hop latency median, ms.
    pub hop_p50_ms: f64,
    /// Hop latency 99th percentile, ms.
    pub hop_p99_ms: f64,
    /// Hop latency maximum, ms.
    pub hop_max_ms: f64,
    /// The same frames, pacing, window and decoding over a plain TCP socket in this process
    /// (`tcp_hop`): hop latency median, ms.
    pub tcp_hop_p50_ms: f64,
    /// The plain-TCP baseline's hop latency 99th percentile, ms.
    pub tcp_hop_p99_ms: f64,
    /// Frames per second through the hop (decoding included): the intervals between the first
    /// frame sent and the last over their span ([`crate::app::replay::ReplayReport::fps`]).
    pub fps: f64,
    /// Bytes per frame (colour + depth payloads).
    pub frame_bytes: usize,
}

/// Synthetic frame `k`: an `rgb8` gradient shifted by `k`, a `16UC1` depth ramp, pinhole K.
fn frame(k: usize, w: u32, h: u32) -> PairedFrame {
    let stamp = k as u64 * 33_333_333;
    let header = Header::new(stamp, "camera_color_optical_frame");
    let rgb: Vec<u8> = (0..w * h)
        .flat_map(|i| [(i % w + k as u32) as u8, (i / w) as u8, k as u8])
        .collect();
    let depth: Vec<u8> = (0..w * h)
        .flat_map(|i| (500 + ((i % w + k as u32) % 1000) as u16).to_le_bytes())
        .collect();
    let image = |encoding: &str, bpp: u32, data: Vec<u8>| Image {
        header: header.clone(),
        height: h,
        width: w,
        encoding: encoding.into(),
        is_bigendian: 0,
        step: w * bpp,
        data,
    };
    let (fx, cx, cy) = (w as f64 * 1.67, w as f64 / 2.0, h as f64 / 2.0);
    PairedFrame {
        color: ImageMsg::Raw(image("rgb8", 3, rgb)),
        depth: ImageMsg::Raw(image("16UC1", 2, depth)),
        info: CameraInfo::pinhole(
            header.clone(),
            w,
            h,
            [fx, 0.0, cx, 0.0, fx, cy, 0.0, 0.0, 1.0],
        ),
        bop: Some(BopFrame {
            header,
            im_id: k as u32 + 1,
            scene_id: 1,
            depth_scale: 1.0,
            ..BopFrame::default()
        }),
    }
}

/// The CDR payloads `[depth, colour]` of a synthetic frame (both are raw images).
fn payloads(f: &PairedFrame) -> [Vec<u8>; 2] {
    [&f.depth, &f.color].map(ImageMsg::to_cdr)
}

/// Distinct synthetic frames made before the clock starts and sent in turn (restamped), so that
/// making pixels is not part of what the bench times.
const RING: usize = 8;

/// Frame `k`'s stamps and ids on a copy of `f`.
fn restamp(f: &PairedFrame, k: usize) -> PairedFrame {
    let mut f = f.clone();
    let header = Header::new(k as u64 * 33_333_333, "camera_color_optical_frame");
    for m in [&mut f.color, &mut f.depth] {
        if let ImageMsg::Raw(i) = m {
            i.header = header.clone();
        }
    }
    f.info.header = header.clone();
    if let Some(b) = &mut f.bop {
        b.header = header;
        b.im_id = k as u32 + 1;
    }
    f
}

/// Runs `hdpf bench zenoh`.
pub fn run(args: &ZenohBenchArgs) -> Result<ZenohBenchReport> {
    if args.frames == 0 || args.width == 0 || args.height == 0 {
        return Err(Error::param(
            "--frames/--width/--height",
            0,
            "must be positive",
        ));
    }
    if !(args.rate.is_finite() && args.rate >= 0.0) {
        return Err(Error::param(
            "--rate",
            args.rate,
            "must be ≥ 0 (0 = lossless)",
        ));
    }
    let (w, h) = (args.width, args.height);
    // 5 bytes a pixel (colour and 16-bit depth), each ring frame held decoded and encoded, and up
    // to the zenoh source's queue of samples in flight.
    let frames = 2 * args.frames.min(RING) + crate::runtime::pipeline::source::zenoh::ARRIVING;
    let factors = [w as usize, h as usize, 5, frames];
    crate::core::memory::check("width x height", format!("{w}x{h}"), &factors, 1)?;
    let ring: Vec<PairedFrame> = (0..args.frames.min(RING)).map(|k| frame(k, w, h)).collect();
    let cdr: Vec<[Vec<u8>; 2]> = ring.iter().map(payloads).collect();
    let tcp = super::tcp_hop::hops(&cdr, args.frames, args.rate)?;
    drop(cdr);
    let port = match args.port {
        0 => std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| Error::Other(format!("no free port on 127.0.0.1: {e}")))?
            .port(),
        p => p,
    };
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let color_topic = "/camera/color/image_raw";
    let spec: ZenohSourceSpec = toml::from_str(&format!(
        "kind = \"zenoh\"\nlisten = \"{endpoint}\"\ncolor_topic = \"{color_topic}\"\nidle_timeout_s = 30.0\n"
    ))
    .map_err(|e| Error::Other(format!("bench source table: {e}")))?;
    let mut source = ZenohSource::open(&spec)?;
    source.record_hops();
    let receiver = std::thread::spawn(move || -> Result<ZenohSource> {
        while !matches!(source.poll()?, Poll::End) {}
        Ok(source)
    });
    let ends = Endpoints {
        listen: Vec::new(),
        connect: vec![endpoint],
    };
    let mut replayer = crate::app::replay::Replayer::open(&ends, 0, Duration::from_secs(30))?;
    let frames = (0..args.frames).map(|k| restamp(&ring[k % RING], k));
    let topics = [color_topic, DEPTH_RAW_TOPIC, CAMERA_INFO_TOPIC];
    let sent = replayer.run(topics, frames, args.rate)?;
    replayer.close()?;
    let source =
        (receiver.join()).map_err(|_| Error::Other("bench receiver thread panicked".into()))??;
    let ms = |ns: &[i64]| ns.iter().map(|&n| n as f64 * 1e-6).collect::<Vec<f64>>();
    let (hops, tcp) = (ms(source.hop_ns()), ms(&tcp));
    Ok(ZenohBenchReport {
        sent: sent.frames,
        rate: args.rate,
        received: source.taken(),
        lost: sent.frames as i64 - source.taken() as i64,
        hop_p50_ms: percentile(&hops, 0.5, Rank::Nearest),
        hop_p99_ms: percentile(&hops, 0.99, Rank::Nearest),
        hop_max_ms: hops.iter().copied().fold(f64::NAN, f64::max),
        tcp_hop_p50_ms: percentile(&tcp, 0.5, Rank::Nearest),
        tcp_hop_p99_ms: percentile(&tcp, 0.99, Rank::Nearest),
        fps: sent.fps(),
        frame_bytes: (w * h * 5) as usize,
    })
}
