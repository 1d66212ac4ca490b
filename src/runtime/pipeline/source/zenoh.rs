//! `[source] kind = "zenoh"` (feature `zenoh`): frames from ROS 2 image topics over zenoh, as
//! rmw_zenoh publishes them (a camera driver on a ROS 2 system, or `hdpf replay`). Subscribes to
//! the colour image, the depth image, the camera_info and hdpf's `BopFrame` topic (ids, depth
//! scale, ground truth — present when `hdpf replay` publishes); pairs them as a recording is
//! paired ([`LivePairer`]) and decodes each frame in the source thread exactly as the `mcap`
//! source does, so a replayed recording gives the same frames.
//!
//! Flow control: the source publishes how many frames its pipeline took on
//! [`TAKEN_TOPIC`]; `hdpf replay --rate 0` never runs more than [`crate::runtime::zenoh_node::LOSSLESS_WINDOW`] frames ahead,
//! so with `pipeline.policy = "lossless"` no frame is lost however slow the trackers are. The
//! stream ends at `hdpf replay`'s end-of-stream marker ([`END_TOPIC`]) once every frame it
//! announced has arrived, or after `idle_timeout_s` without a sample.

use super::{Poll, Source, SourceFrame};
use crate::core::error::{Error, Result};
use crate::domains::pose::bop::BopDataset;
use crate::domains::recording::images::ImageMsg;
use crate::domains::recording::live_pair::LivePairer;
use crate::domains::recording::mcap_bop::{
    BOP_FRAME_TOPIC, CAMERA_INFO_TOPIC, COLOR_PNG_TOPIC, DEPTH_RAW_TOPIC,
};
use crate::domains::recording::mcap_read::{decode_paired, DEFAULT_TOLERANCE_NS};
use crate::domains::recording::ros_msgs::{
    BopFrame, CameraInfo, CompressedImage, Image, RosMessage, UInt64,
};
use crate::runtime::pipeline::control_loop::GtTimeline;
use crate::runtime::pipeline::message::FrameData;
use crate::runtime::pipeline::plugin::{
    load_all_meshes, load_meshes, OpenedSource, SourceContext, SourcePlugin, SpecError,
};
use crate::runtime::zenoh_node::{
    image_type, Endpoints, Inbox, Received, RosNode, RosPublisher, RosSubscription, END_TOPIC,
    TAKEN_HEARTBEAT, TAKEN_TOPIC,
};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde::Deserialize;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use toml::Spanned;

/// `[source]` with `kind = "zenoh"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZenohSourceSpec {
    /// `"zenoh"`.
    pub kind: String,
    /// Endpoint to listen on (`tcp/0.0.0.0:7448`): a replay or camera connects here.
    pub listen: Option<Spanned<String>>,
    /// Endpoint to connect to: a router (`rmw_zenohd`, `tcp/localhost:7447`) or a listening peer.
    pub connect: Option<Spanned<String>>,
    /// ROS domain id (`ROS_DOMAIN_ID`).
    #[serde(default)]
    pub domain_id: u32,
    /// A BOP dataset whose `models/` hold the meshes of the objects.
    pub dataset: Option<PathBuf>,
    /// Colour topic.
    #[serde(default = "default_color")]
    pub color_topic: String,
    /// Depth topic (registered to colour).
    #[serde(default = "default_depth")]
    pub depth_topic: String,
    /// camera_info topic of the colour camera.
    #[serde(default = "default_info")]
    pub camera_info_topic: String,
    /// hdpf's `BopFrame` topic (ids, depth scale, ground truth).
    #[serde(default = "default_bop")]
    pub bop_topic: String,
    /// Largest colour–depth stamp difference paired, milliseconds (default 10).
    pub tolerance_ms: Option<Spanned<f64>>,
    /// The stream ends after this long without a sample, seconds (default 30).
    #[serde(default = "default_idle")]
    pub idle_timeout_s: Spanned<f64>,
    /// Scene id of frames without a `BopFrame` record.
    #[serde(default)]
    pub scene_id: u32,
}

fn default_color() -> String {
    COLOR_PNG_TOPIC.into()
}
fn default_depth() -> String {
    DEPTH_RAW_TOPIC.into()
}
fn default_info() -> String {
    CAMERA_INFO_TOPIC.into()
}
fn default_bop() -> String {
    BOP_FRAME_TOPIC.into()
}
fn default_idle() -> Spanned<f64> {
    Spanned::new(0..0, 30.0)
}

impl ZenohSourceSpec {
    /// The endpoints of the table.
    pub fn endpoints(&self) -> Endpoints {
        let one = |e: &Option<Spanned<String>>| e.iter().map(|s| s.get_ref().clone()).collect();
        Endpoints {
            listen: one(&self.listen),
            connect: one(&self.connect),
        }
    }
}

impl SourcePlugin for ZenohSourceSpec {
    fn check(&self) -> std::result::Result<(), SpecError> {
        if let Err(why) = self.endpoints().check() {
            let at = self.listen.as_ref().or(self.connect.as_ref());
            return Err(match at {
                Some(v) => SpecError::at(v, why),
                None => SpecError::table(format!(
                    "kind = \"zenoh\" needs `listen` or `connect`: {why}"
                )),
            });
        }
        let idle = *self.idle_timeout_s.get_ref();
        if !(idle.is_finite() && idle > 0.0) {
            return Err(SpecError::at(
                &self.idle_timeout_s,
                "idle_timeout_s must be > 0",
            ));
        }
        match &self.tolerance_ms {
            Some(t) if !(t.get_ref().is_finite() && *t.get_ref() >= 0.0 && *t.get_ref() < 1e6) => {
                Err(SpecError::at(t, "tolerance_ms must be ≥ 0 and below 1e6"))
            }
            _ => Ok(()),
        }
    }

    fn open(&self, ctx: &SourceContext) -> Result<OpenedSource> {
        // The objects are known only when frames arrive: every mesh of the dataset (those of
        // `models_info.json`, else every `models/obj_XXXXXX.ply`).
        let meshes = match &self.dataset {
            Some(root) => {
                let ds = BopDataset::open(root)?;
                match load_all_meshes(&ds) {
                    Ok(m) => m,
                    Err(_) => load_meshes(&ds, &ply_ids(&root.join("models")))?,
                }
            }
            None => Default::default(),
        };
        Ok(OpenedSource {
            source: Box::new(ZenohSource::open(self)?),
            meshes,
            timeline: GtTimeline::new(ctx.rate_hz, Vec::new()),
            eval_points: Default::default(),
        })
    }
}

/// The ids of the `obj_XXXXXX.ply` files in `dir` (none when it cannot be read).
fn ply_ids(dir: &std::path::Path) -> Vec<u32> {
    let names = std::fs::read_dir(dir).into_iter().flatten().flatten();
    let mut ids: Vec<u32> = names
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_prefix("obj_")?.strip_suffix(".ply")?.parse().ok()
        })
        .collect();
    ids.sort_unstable();
    ids
}

/// Subscription tags.
const COLOR: usize = 0;
const DEPTH: usize = 1;
const INFO: usize = 2;
const BOP: usize = 3;
const END: usize = 4;
/// Samples (colour, depth, camera_info and `BopFrame`: four a frame) that may wait between zenoh
/// and the source before arrivals are dropped ([`Inbox`]): 32 frames, about 1 s at 30 Hz and
/// about 50 MB of raw 640×480 images. The pairer behind it holds its own bounded queues.
pub const ARRIVING: usize = 128;

/// Frames arriving over zenoh.
pub struct ZenohSource {
    node: Option<RosNode>,
    _subs: Vec<RosSubscription>,
    /// The image topics' samples; `dropped()` counts what arrived to a full queue.
    inbox: Inbox,
    rx: Receiver<Received>,
    /// The end-of-stream marker, apart so that a full image queue cannot drop it.
    end_rx: Receiver<Received>,
    taken_pub: RosPublisher,
    pairer: LivePairer,
    scene_id: u32,
    idle: Duration,
    last_sample: Instant,
    last_count: Instant,
    assembled: u32,
    /// Samples filed so far (any topic).
    samples: u64,
    taken: u64,
    announced: Option<u64>,
    ready: VecDeque<SourceFrame>,
    /// The hops, when asked for ([`ZenohSource::record_hops`]): a stream does not keep them.
    hops: Option<Vec<i64>>,
}

impl ZenohSource {
    /// Opens the session and subscribes to the topics of `spec`.
    pub fn open(spec: &ZenohSourceSpec) -> Result<ZenohSource> {
        let node = RosNode::open("hdpf_tracker", spec.domain_id, &spec.endpoints())?;
        let (inbox, rx) = Inbox::bounded(ARRIVING);
        let (end_inbox, end_rx) = Inbox::bounded(4);
        let topics = [
            (
                COLOR,
                spec.color_topic.as_str(),
                image_type(&spec.color_topic),
            ),
            (
                DEPTH,
                spec.depth_topic.as_str(),
                image_type(&spec.depth_topic),
            ),
            (INFO, spec.camera_info_topic.as_str(), CameraInfo::NAME),
            (BOP, spec.bop_topic.as_str(), BopFrame::NAME),
        ];
        let mut subs = (topics.iter())
            .map(|(tag, topic, ty)| node.subscribe(topic, ty, *tag, inbox.clone()))
            .collect::<Result<Vec<_>>>()?;
        subs.push(node.subscribe(END_TOPIC, UInt64::NAME, END, end_inbox)?);
        let taken_pub = node.publisher(TAKEN_TOPIC, UInt64::NAME)?;
        let ends = spec.endpoints();
        let all: Vec<&String> = ends.listen.iter().chain(&ends.connect).collect();
        let origin = PathBuf::from(format!("zenoh:{}", all.first().map_or("", |e| e.as_str())));
        let tolerance_ns = (spec.tolerance_ms.as_ref())
            .map_or(DEFAULT_TOLERANCE_NS, |t| (t.get_ref() * 1e6).round() as u64);
        let names = [
            &spec.color_topic,
            &spec.depth_topic,
            &spec.camera_info_topic,
        ];
        let mut source = ZenohSource {
            node: Some(node),
            _subs: subs,
            inbox,
            rx,
            end_rx,
            taken_pub,
            pairer: LivePairer::new(origin, names.map(String::clone), tolerance_ns),
            scene_id: spec.scene_id,
            idle: crate::core::duration::seconds(*spec.idle_timeout_s.get_ref()),
            last_sample: Instant::now(),
            last_count: Instant::now(),
            assembled: 0,
            samples: 0,
            taken: 0,
            announced: None,
            ready: VecDeque::new(),
            hops: None,
        };
        source.publish_count()?;
        Ok(source)
    }

    /// Keeps, from now on, each colour image's hop for [`ZenohSource::hop_ns`] (a benchmark's
    /// choice: one number per frame for as long as the stream runs).
    pub fn record_hops(&mut self) {
        self.hops.get_or_insert_with(Vec::new);
    }

    /// Per colour image received since [`ZenohSource::record_hops`]: arrival − the sender's
    /// source timestamp (the zenoh hop), ns; empty when not recording.
    pub fn hop_ns(&self) -> &[i64] {
        self.hops.as_deref().unwrap_or_default()
    }

    /// Samples waiting between zenoh and the source (at most [`ARRIVING`]).
    pub fn waiting(&self) -> usize {
        self.rx.len()
    }

    /// Samples dropped on arrival so far because [`ARRIVING`] were waiting.
    pub fn dropped(&self) -> u64 {
        self.inbox.dropped()
    }

    /// Frames handed to the pipeline so far.
    pub fn taken(&self) -> u64 {
        self.taken
    }

    fn publish_count(&mut self) -> Result<()> {
        self.last_count = Instant::now();
        let msg = UInt64 { data: self.taken };
        self.taken_pub.publish(msg.to_cdr()).map(drop)
    }

    /// Files one sample with the pairer (or notes the end-of-stream marker).
    fn file(&mut self, r: Received) -> Result<()> {
        self.samples += 1;
        let origin = self.pairer.origin.clone();
        let bad = |what: &str, e: crate::domains::recording::cdr::CdrError| {
            Error::format(&origin, format!("{what}: {e}"))
        };
        let topics = self.pairer.topics.clone();
        let image = |tag: usize, bytes: &[u8]| -> Result<ImageMsg> {
            let topic = &topics[tag];
            let msg = match image_type(topic) == Image::NAME {
                true => Image::from_cdr(bytes).map(ImageMsg::Raw),
                false => CompressedImage::from_cdr(bytes).map(ImageMsg::Compressed),
            };
            msg.map_err(|e| bad(topic, e))
        };
        if let (COLOR, Some(a), Some(hops)) = (r.tag, r.attachment, self.hops.as_mut()) {
            hops.push(r.received_ns - a.source_timestamp);
        }
        match r.tag {
            COLOR => self.pairer.color(image(COLOR, &r.payload())?),
            DEPTH => self.pairer.depth(image(DEPTH, &r.payload())?),
            INFO => (self.pairer)
                .info(CameraInfo::from_cdr(&r.payload()).map_err(|e| bad("camera_info", e))?),
            BOP => {
                (self.pairer).bop(BopFrame::from_cdr(&r.payload()).map_err(|e| bad("BopFrame", e))?)
            }
            _ => {
                self.announced = Some(
                    UInt64::from_cdr(&r.payload())
                        .map_err(|e| bad(END_TOPIC, e))?
                        .data,
                )
            }
        }
        Ok(())
    }

    /// Pairs and decodes every complete frame into `ready`.
    fn assemble(&mut self, ended: bool) -> Result<()> {
        while let Some(p) = self.pairer.next(ended)? {
            let im_id = p.bop.as_ref().map_or(self.assembled + 1, |b| b.im_id);
            let topics = self.pairer.topics.each_ref().map(String::as_str);
            let origin = &self.pairer.origin;
            let decoded = decode_paired(origin, topics, &p, im_id).and_then(|f| {
                let gt = match &f.bop {
                    Some(b) => b.ground_truth(origin)?,
                    None => Vec::new(),
                };
                Ok((f, gt))
            });
            self.assembled += 1;
            let scene_id = p.bop.as_ref().map_or(self.scene_id, |b| b.scene_id);
            let (gt, data) = match decoded {
                Ok((f, gt)) => (gt, FrameData::Decoded(Arc::new(f.frame))),
                // One corrupt frame of a live stream is skipped and reported downstream.
                Err(e) => (Vec::new(), FrameData::Undecodable(e.to_string().into())),
            };
            self.ready.push_back(SourceFrame {
                scene_id,
                im_id,
                gt: Arc::new(gt),
                data,
            });
        }
        Ok(())
    }

    fn finish(&mut self, why: &str) -> Poll {
        let lost = self
            .announced
            .map(|n| n.saturating_sub(u64::from(self.assembled)));
        let dropped = self.inbox.dropped();
        let short = lost.is_some_and(|l| l > 0) || self.announced.is_none();
        if short || self.pairer.unpaired > 0 || dropped > 0 {
            eprintln!(
                "zenoh source: {why}; {} frames received, {} announced, {} colour images unpaired, \
                 {dropped} samples dropped on arrival (a full queue of {ARRIVING})",
                self.assembled,
                self.announced.map_or("none".into(), |n| n.to_string()),
                self.pairer.unpaired
            );
        }
        if self.assembled == 0 {
            // Nothing to track: say what was missing, never just "0 frames".
            let why = match self.samples {
                0 => format!(
                    "no sample arrived on any topic: is a peer publishing, and reachable at {}?",
                    self.pairer.origin.display()
                ),
                n => format!(
                    "{n} samples arrived but no frame paired: {}",
                    self.pairer.silent_topic()
                ),
            };
            eprintln!("zenoh source: {why}");
        }
        if let Some(node) = self.node.take() {
            // Closing flushes the last count; a failure here loses nothing of the stream.
            let _ = node.close();
        }
        Poll::End
    }
}

impl Source for ZenohSource {
    fn name(&self) -> String {
        self.pairer.origin.display().to_string()
    }

    fn poll(&mut self) -> Result<Poll> {
        let deadline = Instant::now() + Duration::from_millis(100);
        loop {
            if let Some(f) = self.ready.pop_front() {
                self.taken += 1;
                self.publish_count()?;
                return Ok(Poll::Frame(f));
            }
            if self.node.is_none() {
                return Ok(Poll::End);
            }
            if let (None, Ok(r)) = (self.announced, self.end_rx.try_recv()) {
                self.file(r)?;
            }
            let idle = self.last_sample.elapsed() > self.idle;
            if self.announced.is_some() || idle {
                // Samples arrive in the order they were sent (one reliable link, one receive
                // thread), so once the end-of-stream marker is in, every sample sent before it is
                // in `rx` (or was dropped and counted).
                while let Ok(r) = self.rx.try_recv() {
                    self.file(r)?;
                }
                self.assemble(true)?;
                if !self.ready.is_empty() {
                    continue;
                }
                return Ok(match self.announced {
                    Some(_) => self.finish("end of stream"),
                    None => self.finish(&format!("no sample for {:.1} s", self.idle.as_secs_f64())),
                });
            }
            if self.last_count.elapsed() > TAKEN_HEARTBEAT {
                self.publish_count()?;
            }
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(TAKEN_HEARTBEAT);
            match self.rx.recv_timeout(wait) {
                Ok(r) => {
                    self.last_sample = Instant::now();
                    self.file(r)?;
                    self.assemble(false)?;
                }
                Err(RecvTimeoutError::Timeout) if Instant::now() >= deadline => {
                    return Ok(Poll::Pending)
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(self.finish("session closed")),
            }
        }
    }
}
