//! The filter stage's interface to a tracker: [`FrameProcessor`].
//!
//! The pipeline knows nothing about how a tracker works; it hands each decoded frame to a
//! processor and publishes what comes back. The adapter to [`crate::domains::pose::tracker`] implements it.

use crate::core::error::Result;
use crate::domains::pose::bop::GtPose;
use crate::domains::pose::frame::RgbdFrame;
use crate::runtime::pipeline::message::ObjectEstimate;

/// What a processor sees of one frame.
#[derive(Clone, Copy, Debug)]
pub struct FrameInput<'a> {
    /// Stream position (from 0).
    pub seq: u64,
    /// BOP scene id; when it changes the processor must start over (new objects, new camera).
    pub scene_id: u32,
    /// Capture time (pipeline clock seconds).
    pub capture: f64,
    /// The decoded images and camera.
    pub frame: &'a RgbdFrame,
    /// Ground truth of the frame, when known — for initialization only, never for tracking.
    pub gt: &'a [GtPose],
}

/// A tracker as a pipeline stage: consumes frames in order, produces one estimate per object.
///
/// Frames may be skipped between calls (`latest` policy, corrupt frames): use `capture` for the
/// time step, not a frame count.
pub trait FrameProcessor: Send {
    /// Name used for the stage, in summaries and in every output message.
    fn name(&self) -> &str;

    /// Track one frame. An error stops the pipeline and is reported with the stage and frame.
    fn process(&mut self, input: &FrameInput<'_>) -> Result<Vec<ObjectEstimate>>;
}
