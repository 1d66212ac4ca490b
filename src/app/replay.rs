//! `hdpf replay` (feature `zenoh`): publishes a recording over zenoh as a ROS 2 camera driver on
//! rmw_zenoh would — colour, depth, camera_info, plus hdpf's `BopFrame` topic — then hdpf's
//! end-of-stream marker.
//!
//! Per frame the messages go out in the order `BopFrame`, camera_info, depth, colour (one session,
//! one reliable link: they arrive in that order), each with rmw_zenoh's attachment.
//!
//! Pacing: `--rate HZ` sends frame k at k/HZ seconds (a camera: a slow receiver with
//! `pipeline.policy = "latest"` drops frames). `--rate 0` is lossless: the replay waits for the
//! receiver's frame count ([`TAKEN_TOPIC`], published by hdpf's zenoh source) and never runs more
//! than [`LOSSLESS_WINDOW`] frames ahead of it, so it cannot outrun the tracker; it also waits
//! for the receiver to appear before the first frame and for the last count before closing.
//! Samples travel reliably with congestion control `Block`, so nothing is dropped on the way.

use crate::core::error::{Error, Result};
use crate::core::scratch::ScratchDir;
use crate::domains::recording::images::ImageMsg;
use crate::domains::recording::mcap_bop::{bop_to_mcap, ConvertArgs, BOP_FRAME_TOPIC};
use crate::domains::recording::mcap_read::{open_recording, PairedFrame, ReadOptions};
use crate::domains::recording::ros_msgs::{BopFrame, CameraInfo, RosMessage, UInt64};
use crate::runtime::zenoh_node::{
    Endpoints, Inbox, Received, RosNode, RosPublisher, END_TOPIC, LOSSLESS_WINDOW, TAKEN_TOPIC,
};
use crossbeam_channel::Receiver;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Counts the receiver's reports may queue before the newest are dropped (it repeats its count
/// every [`crate::runtime::zenoh_node::TAKEN_HEARTBEAT`], so a dropped one comes again).
const COUNTS_WAITING: usize = 64;

/// Arguments of `hdpf replay`.
#[derive(clap::Args, Clone, Debug)]
pub struct ReplayArgs {
    /// A BOP scene folder (`ycbv-mini/test/000049`) or an MCAP recording.
    #[arg(long)]
    pub from: PathBuf,
    /// Endpoint to connect to: a listening tracker (`tcp/127.0.0.1:7448`) or a router.
    #[arg(long)]
    pub connect: Option<String>,
    /// Endpoint to listen on (a tracker connects here).
    #[arg(long)]
    pub listen: Option<String>,
    /// Frames per second; 0 = lossless, as fast as the receiver takes them.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// ROS domain id.
    #[arg(long, default_value_t = 0)]
    pub domain_id: u32,
    /// Seconds to wait for the receiver (first count, and each count in lossless mode).
    #[arg(long, default_value_t = 60.0)]
    pub wait_s: f64,
}

/// What a replay sent.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReplayReport {
    /// Frames published.
    pub frames: usize,
    /// Frames the receiver reported taken at the end (lossless mode; else what it reported).
    pub taken: u64,
    /// Seconds from the first frame to the end-of-stream marker.
    pub seconds: f64,
    /// Seconds from sending the first frame to sending the last.
    pub span_s: f64,
}

impl ReplayReport {
    /// Frames per second: the `frames − 1` intervals between the first frame and the last over
    /// their span (at `--rate HZ` this is HZ; NaN with fewer than two frames).
    pub fn fps(&self) -> f64 {
        match self.frames {
            0 | 1 => f64::NAN,
            n => (n - 1) as f64 / self.span_s.max(1e-9),
        }
    }
}

impl std::fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "replayed {} frames in {:.2} s ({:.1} fps); receiver took {}",
            self.frames,
            self.seconds,
            self.fps(),
            self.taken
        )
    }
}

/// Publishers of the four streams and the receiver's count.
pub struct Replayer {
    node: RosNode,
    pubs: Vec<(String, RosPublisher)>,
    end: RosPublisher,
    counts: Receiver<Received>,
    _counts_sub: crate::runtime::zenoh_node::RosSubscription,
    taken: u64,
    wait: Duration,
}

impl Replayer {
    /// Opens a node `hdpf_replay` on `endpoints`; `wait`: longest wait for the receiver.
    pub fn open(endpoints: &Endpoints, domain_id: u32, wait: Duration) -> Result<Replayer> {
        let node = RosNode::open("hdpf_replay", domain_id, endpoints)?;
        // Counts are read as they come; the newest matters, so a short queue is plenty.
        let (inbox, counts) = Inbox::bounded(COUNTS_WAITING);
        let sub = node.subscribe(TAKEN_TOPIC, UInt64::NAME, 0, inbox)?;
        let end = node.publisher(END_TOPIC, UInt64::NAME)?;
        Ok(Replayer {
            node,
            pubs: Vec::new(),
            end,
            counts,
            _counts_sub: sub,
            taken: 0,
            wait,
        })
    }

    /// The publisher of `topic` (declared at first use).
    fn publisher(&mut self, topic: &str, ros_type: &str) -> Result<&mut RosPublisher> {
        let i = match self.pubs.iter().position(|(t, _)| t == topic) {
            Some(i) => i,
            None => {
                let p = self.node.publisher(topic, ros_type)?;
                self.pubs.push((topic.to_string(), p));
                self.pubs.len() - 1
            }
        };
        Ok(&mut self.pubs[i].1)
    }

    /// Waits until the receiver has reported a count ≥ `n` (`Ok(false)` after `wait` without one).
    pub fn wait_for_count(&mut self, n: u64, wait: Duration) -> Result<bool> {
        let mut deadline = Instant::now() + wait;
        let mut heard = false;
        while !heard || self.taken < n {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(r) = self.counts.recv_timeout(left) else {
                return Ok(false);
            };
            if self.note_count(&r)? {
                deadline = Instant::now() + wait;
            }
            heard = true;
        }
        Ok(true)
    }

    /// Reads the counts that have arrived without waiting (a paced replay does not wait for
    /// them, and the queue is short).
    fn read_counts(&mut self) -> Result<()> {
        while let Ok(r) = self.counts.try_recv() {
            self.note_count(&r)?;
        }
        Ok(())
    }

    /// Takes in one reported count; true when it is news.
    fn note_count(&mut self, r: &Received) -> Result<bool> {
        let c = UInt64::from_cdr(&r.payload())
            .map_err(|e| Error::Other(format!("{TAKEN_TOPIC}: {e}")))?;
        let news = c.data > self.taken;
        self.taken = self.taken.max(c.data);
        Ok(news)
    }

    /// Publishes frame `p` on the topics `[colour, depth, camera_info]`: every payload is encoded
    /// first, then they go out back to back (our record, camera_info, depth, colour last), so that
    /// encoding one message never runs while an earlier one of the frame is on the wire. Returns
    /// the colour's source timestamp.
    pub fn send(&mut self, topics: [&str; 3], p: &PairedFrame) -> Result<i64> {
        let mut out: Vec<(&str, &str, Vec<u8>)> = Vec::with_capacity(4);
        if let Some(b) = &p.bop {
            out.push((BOP_FRAME_TOPIC, BopFrame::NAME, b.to_cdr()));
        }
        out.push((topics[2], CameraInfo::NAME, p.info.to_cdr()));
        out.push(image(topics[1], &p.depth));
        out.push(image(topics[0], &p.color));
        let mut stamp = 0;
        for (topic, ros_type, cdr) in out {
            stamp = self.publisher(topic, ros_type)?.publish(cdr)?;
        }
        Ok(stamp)
    }

    /// Publishes `frames` on `topics` at `rate` Hz (0: lossless), then the end-of-stream marker.
    pub fn run(
        &mut self,
        topics: [&str; 3],
        frames: impl IntoIterator<Item = PairedFrame>,
        rate: f64,
    ) -> Result<ReplayReport> {
        let lossless = rate <= 0.0;
        if !self.wait_for_count(0, self.wait)? && lossless {
            return Err(Error::Other(format!(
                "replay: no receiver reported on {TAKEN_TOPIC} within {:.0} s (is `hdpf launch` with \
                 source.kind = \"zenoh\" running on that endpoint?)",
                self.wait.as_secs_f64()
            )));
        }
        let start = Instant::now();
        let (mut n, mut first, mut last) = (0u64, None, start);
        for (k, p) in frames.into_iter().enumerate() {
            let k = k as u64;
            if lossless && !self.wait_for_count(lossless_floor(k), self.wait)? {
                return Err(self.stalled(k));
            }
            if !lossless {
                self.read_counts()?;
                sleep_until_due(start, k, rate);
            }
            let sending = Instant::now();
            first.get_or_insert(sending);
            self.send(topics, &p)?;
            (n, last) = (n + 1, sending);
        }
        self.end.publish(UInt64 { data: n }.to_cdr())?;
        let seconds = start.elapsed().as_secs_f64();
        self.read_counts()?;
        if lossless && !self.wait_for_count(n, self.wait)? {
            return Err(self.stalled(n));
        }
        Ok(ReplayReport {
            frames: n as usize,
            taken: self.taken,
            seconds,
            span_s: last.duration_since(first.unwrap_or(start)).as_secs_f64(),
        })
    }

    fn stalled(&self, k: u64) -> Error {
        Error::Other(format!(
            "replay: the receiver took {} frames and reported nothing for {:.0} s (frame {k} waiting)",
            self.taken,
            self.wait.as_secs_f64()
        ))
    }

    /// Closes the session (flushes what is still queued).
    pub fn close(self) -> Result<()> {
        drop(self.pubs);
        self.node.close()
    }
}

/// Runs `hdpf replay`.
pub fn run(args: &ReplayArgs) -> Result<ReplayReport> {
    if !(args.rate.is_finite() && args.rate >= 0.0) {
        return Err(Error::param(
            "--rate",
            args.rate,
            "must be ≥ 0 (0 = lossless)",
        ));
    }
    if !(args.wait_s.is_finite() && args.wait_s > 0.0) {
        return Err(Error::param("--wait-s", args.wait_s, "must be > 0"));
    }
    let endpoints = Endpoints {
        listen: args.listen.iter().cloned().collect(),
        connect: args.connect.iter().cloned().collect(),
    };
    endpoints.check().map_err(|why| {
        let given: Vec<&String> = endpoints.listen.iter().chain(&endpoints.connect).collect();
        let given = given
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        Error::param("--listen/--connect", given, why)
    })?;
    // A scene folder is converted first (in a scratch folder), so a scene and its MCAP conversion
    // replay the same messages.
    let scratch;
    let mcap = match args.from.is_dir() {
        true => {
            scratch = ScratchDir::create("replay")?;
            let file = scratch.join("scene.mcap");
            bop_to_mcap(&ConvertArgs::new(&args.from, &file))?;
            file
        }
        false => args.from.clone(),
    };
    let rec = open_recording(&mcap, &ReadOptions::default())?;
    let topics = [&rec.color_topic, &rec.depth_topic, &rec.camera_info_topic];
    let mut r = Replayer::open(
        &endpoints,
        args.domain_id,
        crate::core::duration::seconds(args.wait_s),
    )?;
    let report = r.run(
        topics.map(String::as_str),
        rec.frames.iter().cloned(),
        args.rate,
    )?;
    r.close()?;
    crate::outln!("{report}");
    Ok(report)
}

/// The frames the receiver must have taken before frame `k` (from 0) goes out in lossless mode:
/// at most [`LOSSLESS_WINDOW`] frames in flight.
pub(crate) fn lossless_floor(k: u64) -> u64 {
    (k + 1).saturating_sub(LOSSLESS_WINDOW)
}

/// Sleeps until frame `k` (from 0) of a stream paced at `rate` Hz from `start` is due.
pub(crate) fn sleep_until_due(start: Instant, k: u64, rate: f64) {
    let due = start + crate::core::duration::seconds(k as f64 / rate);
    std::thread::sleep(due.saturating_duration_since(Instant::now()));
}

/// An image message on `topic`: the topic, its ROS type and its CDR payload.
fn image<'a>(topic: &'a str, m: &ImageMsg) -> (&'a str, &'static str, Vec<u8>) {
    (topic, m.ros_type(), m.to_cdr())
}

#[cfg(test)]
mod tests {
    use super::ReplayReport;

    /// Ten frames paced at 30 Hz span nine intervals, 0.3 s: 30 fps (it reported 10 / 0.3 s,
    /// 33.3 fps, before).
    #[test]
    fn fps_counts_the_intervals_between_frames() {
        let report = |frames, span_s| ReplayReport {
            frames,
            taken: frames as u64,
            seconds: span_s + 0.01,
            span_s,
        };
        assert!((report(10, 0.3).fps() - 30.0).abs() < 1e-9);
        assert!(report(1, 0.0).fps().is_nan());
    }
}
