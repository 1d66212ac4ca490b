//! `[sinks.mcap]`: estimates as ROS 2 messages in an MCAP file (rosbag2's storage), readable by
//! `ros2 bag play`, Foxglove and any MCAP tool: per tracker and object one
//! `geometry_msgs/msg/PoseWithCovarianceStamped` on `/hdpf/<tracker>/obj_<id:06>/pose`
//! ([`crate::domains::recording::ros_msgs::estimate_topic`]), stamped as its input frame is
//! ([`input_stamp_ns`], so that a pose and its image pair by `header.stamp`), covariance converted from hdpf's tangent `[ρ; φ]` to ROS's (x, y, z, rot x, y, z) convention.
//! With `inputs = true` the decoded frames are recorded too (colour `rgb8`, depth `32FC1` metres,
//! camera_info and our `/hdpf/bop_frame`, see [`FrameMessages`]), so that the file replays through
//! `hdpf track --dataset FILE.mcap --models DIR` (or `source.kind = "mcap"`). With a lossless run
//! and the same trackers and seed, the replay gives the same poses (tested); with `latest` queues
//! the recording holds every decoded frame, also those a tracker dropped. About 2.1 MB per
//! 640×480 frame reach this sink before compression: a slow disk backs up the sink queue.
//! The file is valid (summary written) when the run ends, also after a failure or Ctrl-C.
//! Recorded frames keep their own capture stamp (a replayed recording's camera clock); frames
//! without one (BOP folders, synthetic sources) are stamped at a nominal 30 Hz from their stream
//! position ([`input_stamp_ns`]), not by when the pipeline emitted them: the tracker scales its
//! motion model by the intervals between stamps, and a run paced as fast as possible would
//! otherwise record intervals that no camera had.

use super::{create_parent, default_frame_id, ros_estimates, Sink};
use crate::core::error::Result;
use crate::domains::recording::frame_msgs::FrameMessages;
use crate::domains::recording::mcap_bop::{ChunkCompression, RosMcapWriter};
use crate::runtime::pipeline::message::{Clock, SinkMsg};
use crate::runtime::pipeline::plugin::{SinkContext, SinkPlugin, SpecError};
use serde::Deserialize;
use std::path::PathBuf;

/// `[sinks.mcap]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McapSinkSpec {
    /// The MCAP file to write.
    pub path: toml::Spanned<PathBuf>,
    /// `frame_id` of the estimates (the camera's optical frame).
    #[serde(default = "default_frame_id")]
    pub frame_id: String,
    /// Also record the decoded input frames (about 2.1 MB per 640×480 frame before compression).
    #[serde(default)]
    pub inputs: bool,
}

impl SinkPlugin for McapSinkSpec {
    fn check(&self) -> std::result::Result<(), SpecError> {
        match self.path.get_ref().as_os_str().is_empty() {
            true => Err(SpecError::at(&self.path, "empty path")),
            false => Ok(()),
        }
    }

    fn open(&self, ctx: &SinkContext) -> Result<Option<Box<dyn Sink>>> {
        let path = self.path.get_ref();
        create_parent(path)?;
        let sink = McapSink {
            writer: Some(RosMcapWriter::create(path, ChunkCompression::Zstd)?),
            frame_id: self.frame_id.clone(),
            inputs: self.inputs,
            clock: ctx.clock,
            name: format!("mcap:{}", path.display()),
        };
        Ok(Some(Box::new(sink)))
    }
}

/// Writes every estimate as a ROS message.
pub struct McapSink {
    writer: Option<RosMcapWriter>,
    frame_id: String,
    inputs: bool,
    clock: Clock,
    name: String,
}

impl Sink for McapSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn wants_frames(&self) -> bool {
        self.inputs
    }

    fn handle(&mut self, msg: &SinkMsg) -> Result<()> {
        let Some(w) = self.writer.as_mut() else {
            return Ok(());
        };
        match msg {
            SinkMsg::Estimate(e) => {
                let (stamp_ns, messages) = ros_estimates(e, &self.clock, &self.frame_id);
                for (topic, m) in &messages {
                    w.write(topic, stamp_ns, m)?;
                }
                Ok(())
            }
            SinkMsg::Frame(f) if self.inputs => match f.decoded() {
                Some(frame) => {
                    let stamp_ns = input_stamp_ns(frame.stamp, f.seq, &self.clock);
                    FrameMessages::new(frame, f.scene_id, &f.gt, stamp_ns, &self.frame_id).write(w)
                }
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    fn finish(&mut self) -> Result<()> {
        self.writer.take().map_or(Ok(()), RosMcapWriter::finish)
    }
}
/// Period (ns) of the nominal stamps of recorded frames without a capture stamp: 30 Hz.
pub const NOMINAL_PERIOD_NS: u64 = 33_333_333;

/// The header stamp (Unix ns) a recorded input frame gets: its own capture stamp `stamp`
/// (seconds) when it has one, else the run's start plus `seq` nominal periods.
pub fn input_stamp_ns(stamp: Option<f64>, seq: u64, clock: &Clock) -> u64 {
    match stamp.filter(|s| s.is_finite() && *s >= 0.0) {
        Some(s) => (s * 1e9).round() as u64,
        None => clock
            .unix_ns(0.0)
            .saturating_add(seq.saturating_mul(NOMINAL_PERIOD_NS)),
    }
}
