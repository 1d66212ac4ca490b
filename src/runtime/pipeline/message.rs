//! What flows between stages: frames (encoded or decoded), object estimates and sink events, and the
//! clock that stamps them.

use crate::core::filter::Diagnostics;
use crate::domains::pose::bop::{FrameCamera, GtPose};
use crate::domains::pose::frame::RgbdFrame;
pub use crate::domains::pose::tracker::Judgement;
use nalgebra::{Isometry3, Matrix6, Vector6};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The pipeline clock: seconds since the pipeline started, convertible to Unix time.
///
/// Every timestamp in a run (capture, publish, a controller's "now") is read from one clock.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
    unix_start: f64,
    unix_start_ns: u64,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            start: Instant::now(),
            unix_start: since_epoch.as_secs_f64(),
            unix_start_ns: u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX),
        }
    }

    /// Seconds since the clock started.
    pub fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// The instant `t` seconds after the start.
    pub fn instant(&self, t: f64) -> Instant {
        self.start + crate::core::duration::seconds(t)
    }

    /// Unix time (seconds) of clock time `t`.
    pub fn unix(&self, t: f64) -> f64 {
        self.unix_start + t
    }

    /// Unix time of clock time `t` in whole nanoseconds (ROS header stamps), 0 before the epoch.
    /// Exact to the nanosecond (the start in integer ns plus `t`), where [`Clock::unix`]'s `f64`
    /// seconds resolve only 238 ns today: two frames emitted within that would share a stamp.
    pub fn unix_ns(&self, t: f64) -> u64 {
        let offset = (t * 1e9).round() as i128;
        (i128::from(self.unix_start_ns) + offset).clamp(0, i128::from(u64::MAX)) as u64
    }
}

/// A frame not yet decoded: where its images are and how to read them.
#[derive(Clone, Debug)]
pub struct EncodedFrame {
    /// The 8-bit RGB PNG.
    pub rgb: PathBuf,
    /// The 16-bit depth PNG.
    pub depth: PathBuf,
    /// Intrinsics and depth scale of this image.
    pub camera: FrameCamera,
}

/// A frame's images, before or after the decode stage.
#[derive(Clone, Debug)]
pub enum FrameData {
    /// Paths to read and decode.
    Encoded(Arc<EncodedFrame>),
    /// Decoded images (sources that produce images in memory skip the decode work).
    Decoded(Arc<RgbdFrame>),
    /// A frame its source could not decode (a corrupt image in a recording or a live stream),
    /// with the reason: the decode stage skips and reports it like a frame it fails to decode
    /// itself, and the run goes on.
    Undecodable(Arc<str>),
}

/// One frame travelling through the pipeline.
#[derive(Clone, Debug)]
pub struct FrameMsg {
    /// Position in the stream, from 0.
    pub seq: u64,
    /// BOP scene id.
    pub scene_id: u32,
    /// BOP image id.
    pub im_id: u32,
    /// Capture time (pipeline clock seconds): when the source emitted the frame.
    pub capture: f64,
    /// Ground-truth poses of this frame, when known (for metrics and initialization).
    pub gt: Arc<Vec<GtPose>>,
    /// The images.
    pub data: FrameData,
}

impl FrameMsg {
    /// The decoded frame, if this message carries one.
    pub fn decoded(&self) -> Option<&Arc<RgbdFrame>> {
        match &self.data {
            FrameData::Decoded(f) => Some(f),
            FrameData::Encoded(_) | FrameData::Undecodable(_) => None,
        }
    }
}

/// A particle cloud reduced to what a viewer shows: translations (metres, camera frame) and losses.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParticleCloud {
    /// Translation of each particle's pose.
    pub translations: Vec<[f32; 3]>,
    /// Loss `L` of each particle (lower is better).
    pub losses: Vec<f32>,
}

/// One object's pose estimate for one frame.
#[derive(Clone, Debug)]
pub struct ObjectEstimate {
    /// BOP object id.
    pub obj_id: u32,
    /// Estimated model-to-camera pose (metres).
    pub pose: Isometry3<f64>,
    /// Covariance of the pose in the tangent space `[ρ; φ]` of [`crate::core::geometry::se3`] (left
    /// perturbation, camera frame; m² and rad²).
    pub covariance: Matrix6<f64>,
    /// Twist `[v; ω]` per second (camera frame, left convention): `pose(t + dt) ≈ exp(dt·v)·pose(t)`.
    pub velocity: Vector6<f64>,
    /// The particle cloud, when the tracker exposes it.
    pub particles: Option<ParticleCloud>,
    /// Particle spread (metres at the object surface; NaN when the tracker does not report it).
    pub spread: f64,
    /// What the tracker judged of the estimate: quality, visible fraction, held, lost
    /// ([`Judgement`]).
    pub judgement: Judgement,
    /// Diagnostics of the filter update.
    pub diagnostics: Diagnostics,
}

#[cfg(test)]
impl ObjectEstimate {
    /// Object 1 at the identity pose with the tracker's judgement `quality`, `visible`, `held`,
    /// `lost`.
    pub(crate) fn judged(quality: f64, visible: f64, held: bool, lost: bool) -> Self {
        Self {
            obj_id: 1,
            pose: Isometry3::identity(),
            covariance: Matrix6::identity(),
            velocity: Vector6::zeros(),
            particles: None,
            spread: 0.0,
            judgement: Judgement {
                quality,
                visible,
                held,
                lost,
            },
            diagnostics: Diagnostics::default(),
        }
    }
}

#[cfg(test)]
impl EstimateMsg {
    /// Tracker `t`'s estimates `objects` of image 1 (scene 1), captured at 0 and published 10 ms
    /// later, without ground truth.
    pub(crate) fn of(objects: Vec<ObjectEstimate>) -> Self {
        Self {
            tracker: "t".into(),
            seq: 0,
            scene_id: 1,
            im_id: 1,
            capture: 0.0,
            stamp: None,
            publish: 0.01,
            process_seconds: 0.01,
            objects,
            gt: Arc::default(),
        }
    }
}

/// The estimates one tracker published for one frame.
#[derive(Clone, Debug)]
pub struct EstimateMsg {
    /// Tracker (filter stage) name.
    pub tracker: String,
    /// Stream position of the frame.
    pub seq: u64,
    /// BOP scene id.
    pub scene_id: u32,
    /// BOP image id.
    pub im_id: u32,
    /// Capture time of the frame (pipeline clock seconds).
    pub capture: f64,
    /// The frame's own capture stamp from its source (a recording's or a camera's clock,
    /// seconds), when it has one: the ROS sinks stamp the estimate with it, as its image is.
    pub stamp: Option<f64>,
    /// Publish time of the estimates (pipeline clock seconds).
    pub publish: f64,
    /// Seconds the tracker spent on this frame.
    pub process_seconds: f64,
    /// One estimate per tracked object.
    pub objects: Vec<ObjectEstimate>,
    /// Ground truth of the frame, when known.
    pub gt: Arc<Vec<GtPose>>,
}

impl EstimateMsg {
    /// Capture-to-publish latency in seconds.
    pub fn latency(&self) -> f64 {
        self.publish - self.capture
    }
}

/// A frame a stage could not use and skipped, with the reason.
#[derive(Clone, Debug, PartialEq)]
pub struct SkippedFrame {
    /// The stage that skipped it.
    pub stage: String,
    /// Stream position.
    pub seq: u64,
    /// BOP image id.
    pub im_id: u32,
    /// Why.
    pub reason: String,
}

/// What the sink stage receives.
#[derive(Clone, Debug)]
pub enum SinkMsg {
    /// A decoded frame (for sinks that show images); sent once per frame by the decode stage.
    Frame(FrameMsg),
    /// A tracker's estimates for a frame.
    Estimate(Box<EstimateMsg>),
    /// A frame that was skipped.
    Skipped(SkippedFrame),
}
