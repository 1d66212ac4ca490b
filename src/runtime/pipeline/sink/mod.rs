//! Sinks: where estimates go — one file per kind: JSON lines ([`jsonl`]: stdout, file, UDP) for
//! controllers in any language, BOP19 results CSV ([`csv`]) for evaluation and ROS 2 messages in an
//! MCAP file ([`mcap`]) for robot tools; each with its
//! `[sinks]` launch value (a [`crate::runtime::pipeline::plugin::SinkPlugin`]). Every line is
//! written whole and flushed per frame, so a run stopped midway leaves valid files behind.

pub mod csv;
pub mod jsonl;
pub mod mcap;
#[cfg(feature = "zenoh")]
pub mod zenoh;

pub use csv::{CsvSink, CsvSinkSpec};
pub use jsonl::{
    estimate_json, object_json, skipped_json, JsonLinesSink, JsonTarget, JsonlSinkSpec,
};
pub use mcap::{McapSink, McapSinkSpec};
#[cfg(feature = "zenoh")]
pub use zenoh::{ZenohSink, ZenohSinkSpec};

use crate::core::error::{Error, Result};
use crate::domains::recording::ros_msgs::{
    estimate_message, estimate_topic, PoseWithCovarianceStamped,
};
use crate::runtime::pipeline::message::{Clock, EstimateMsg, SinkMsg};

/// What the pipeline does when a sink fails (an error or a panic in [`Sink::handle`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkFailure {
    /// End the run (the source stops, queued frames are processed, the other sinks are finished):
    /// for results files, which a user expects complete or not at all.
    EndRun,
    /// Drop this sink and go on (listed in the summary's `dropped_sinks`): for viewers and network
    /// peers, whose loss must not stop a robot's tracker.
    Drop,
}

/// A consumer of pipeline output, run on the sink thread.
pub trait Sink: Send {
    /// Name used in error messages.
    fn name(&self) -> &str;
    /// Whether this sink wants decoded frames ([`SinkMsg::Frame`]), e.g. to show images.
    fn wants_frames(&self) -> bool {
        false
    }
    /// Handle one message.
    fn handle(&mut self, msg: &SinkMsg) -> Result<()>;
    /// What a failure of this sink does to the run (default: end it).
    fn on_failure(&self) -> SinkFailure {
        SinkFailure::EndRun
    }
    /// Flush and close at the end of the run (also after a failure).
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Creates the folder a file `path` goes in, if it has one.
pub fn create_parent(path: &std::path::Path) -> Result<()> {
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    Ok(())
}

/// `frame_id` of the ROS sinks' estimates unless the launch file names another: the camera's
/// optical frame as ROS 2 camera drivers name it.
pub(crate) fn default_frame_id() -> String {
    "camera_color_optical_frame".into()
}

/// The ROS messages of one estimate, as the MCAP and zenoh sinks write them: the stamp of its
/// input frame ([`mcap::input_stamp_ns`]: the frame's own capture stamp, else the run's start
/// plus its stream position at a nominal 30 Hz, Unix ns), and per object its topic ([`estimate_topic`]) with its
/// `PoseWithCovarianceStamped` ([`estimate_message`]) in `frame_id`. A covariance with a
/// non-finite entry is written as unknown (all zeros).
pub fn ros_estimates(
    e: &EstimateMsg,
    clock: &Clock,
    frame_id: &str,
) -> (u64, Vec<(String, PoseWithCovarianceStamped)>) {
    // The stamp its input frame gets (`inputs = true`, a camera's image): a ROS consumer pairs
    // a pose with its image by `header.stamp`.
    let stamp_ns = mcap::input_stamp_ns(e.stamp, e.seq, clock);
    let messages = e
        .objects
        .iter()
        .map(|o| {
            let cov = o.covariance.iter().all(|c| c.is_finite());
            let m = estimate_message(&o.pose, cov.then_some(&o.covariance), stamp_ns, frame_id);
            (estimate_topic(&e.tracker, o.obj_id), m)
        })
        .collect();
    (stamp_ns, messages)
}
