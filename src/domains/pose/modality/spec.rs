//! What makes a modality pluggable: [`ModalitySpec`] (its parameters: name, the images it reads,
//! its per-frame preparation) and [`FrameTerm`] (the frame's prepared state: the per-object terms,
//! optionally a detection score). The tracker sums the terms without knowing any modality by name;
//! [`super::registry`] names them for the CLI and launch files.

use super::views::Shape;
use super::{Modality, PoseChart, RgbdFrame};
use crate::core::error::Result;
use crate::core::geometry::camera::Camera;
use nalgebra::{Isometry3, Vector3};
use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// What a modality learns online about the tracked objects (e.g. colour statistics), created
/// once per tracker by [`ModalitySpec::memory`] and handed to every frame it prepares; the
/// modality downcasts it to its own type. Models learn only from the tracker's published
/// estimates ([`FrameTerm::learn`]), never from the filter's particles.
pub type Memory = Arc<dyn Any + Send + Sync>;

/// The images a modality reads from a frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// The depth image.
    pub depth: bool,
    /// The grey image (from RGB).
    pub grey: bool,
}

impl Needs {
    /// What either needs.
    pub fn union(self, other: Needs) -> Needs {
        Needs {
            depth: self.depth || other.depth,
            grey: self.grey || other.grey,
        }
    }
}

/// A modality with its parameters: one file each, named in [`super::registry`].
pub trait ModalitySpec: Send + Sync + fmt::Debug {
    /// The registry name (`depth`, `edge`, `depth-edge`).
    fn name(&self) -> &'static str;

    /// The images it reads.
    fn needs(&self) -> Needs;

    /// Its per-frame preparation, shared by every object and particle (e.g. a distance map).
    fn prepare_frame(&self, frame: &RgbdFrame) -> Result<Arc<dyn FrameTerm>>;

    /// A fresh per-tracker memory for what the modality learns online, or `None` (the default)
    /// for a modality that learns nothing.
    fn memory(&self) -> Option<Memory> {
        None
    }

    /// The per-frame preparation of a tracker that holds `memory` (from [`ModalitySpec::memory`]);
    /// the default ignores it.
    fn prepare_tracked(&self, frame: &RgbdFrame, _memory: &Memory) -> Result<Arc<dyn FrameTerm>> {
        self.prepare_frame(frame)
    }

    /// A boxed copy.
    fn boxed(&self) -> Box<dyn ModalitySpec>;
}

/// A modality prepared for one frame.
pub trait FrameTerm: Send + Sync {
    /// Object `shape`'s term about `chart`, with length scales widened by `widen ≥ 1` where the
    /// modality supports coarse-to-fine (loss, analytic gradient, Gauss–Newton curvature);
    /// `object` is the object's index in the tracker, for modalities with per-object memory
    /// and for the depth term's ownership of readings ([`super::ownership`]).
    fn prepare(
        &self,
        camera: &Camera,
        chart: &PoseChart,
        object: usize,
        shape: &Shape,
        widen: f64,
    ) -> Box<dyn Modality>;

    /// Whether `widen` sets a correspondence *search range* (region lines: coarse-to-fine rounds
    /// widen it, ICG's scales) rather than a robust kernel's reach (depth: widened only by the
    /// particle spread, since a wide kernel lets clutter pull the pose). Default: false.
    fn searches(&self) -> bool {
        false
    }

    /// After the frame (and once at the tracker's first frame, before it): object `object`'s
    /// published estimate `pose`, for a modality that learns online from the frame (default:
    /// nothing).
    fn learn(&self, _camera: &Camera, _object: usize, _pose: &Isometry3<f64>, _shape: &Shape) {}

    /// The detection loss at `chart`'s reference pose, about the fraction of visible points that
    /// are outliers (0 for a perfect fit, ≈ 1 when nothing fits), if this modality judges
    /// detections: `Some(None)` when nothing of the object is visible there.
    fn detection_loss(
        &self,
        _camera: &Camera,
        _chart: &PoseChart,
        _shape: &Shape,
    ) -> Option<Option<f64>> {
        None
    }

    /// Object `object`'s colour loss at `chart`'s reference pose, if this modality keeps a colour
    /// model of it: the mean of `1 − p_f(y)` over the pixels `y` of the object's visible points
    /// that nothing nearer hides, with `p_f` the object's learned foreground posterior (0 when
    /// every pixel looks like the object, ½ for colours never seen, 1 when every pixel looks like
    /// its surroundings). `None` without a colour model, before one is learned, or when no
    /// visible point shows (every one hidden or outside the image). Re-detection uses it to refuse
    /// a placement on something that does not look like the object: an occluder's face can fit the
    /// depth as well as the object did.
    fn colour_loss(
        &self,
        _camera: &Camera,
        _chart: &PoseChart,
        _object: usize,
        _shape: &Shape,
    ) -> Option<f64> {
        None
    }

    /// [`FrameTerm::detection_loss`] at `chart`'s reference pose translated by each of `shifts`
    /// (camera frame, metres), for scoring many placements of one rotation: a modality may take
    /// the points visible at the reference for every shift (the depth modality does, which
    /// makes a placement cost one loss evaluation instead of a visibility pass over the whole
    /// model). The default re-prepares the modality at every shifted pose.
    fn shifted_detection_losses(
        &self,
        camera: &Camera,
        chart: &PoseChart,
        shape: &Shape,
        shifts: &[Vector3<f64>],
    ) -> Option<Vec<Option<f64>>> {
        detection_losses_one_by_one(self, camera, chart, shape, shifts)
    }

    /// For a modality that judges detections and measures each point's range: from one
    /// preparation at `chart`'s reference pose, the detection loss (as
    /// [`FrameTerm::detection_loss`], `None` when nothing of the object is visible there) and how
    /// the visible points meet the measurement ([`PointCensus`]). Default: `None`.
    fn detection_census(
        &self,
        _camera: &Camera,
        _chart: &PoseChart,
        _shape: &Shape,
    ) -> Option<(Option<f64>, PointCensus)> {
        None
    }
}

/// How an object's points visible at a pose (self-occlusion removed) meet a range measurement,
/// counted by class: what tells a part hidden behind something nearer from a part that fits, and
/// both from an estimate the sensor sees through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PointCensus {
    /// Points whose measured range fits (within the outlier and free-space bounds).
    pub fit: usize,
    /// Points with something measured nearer than them by more than the outlier bound.
    pub hidden: usize,
    /// Points the sensor sees past by more than the free-space bound.
    pub contradicted: usize,
    /// Points without a reading (missing depth or off the image).
    pub unread: usize,
    /// Points across a depth discontinuity or behind the camera (not judged).
    pub ignored: usize,
}

impl PointCensus {
    /// Points with a reading that judges them: `fit + hidden + contradicted`.
    pub fn judged(&self) -> usize {
        self.fit + self.hidden + self.contradicted
    }

    /// The fraction of judged points that nothing nearer hides, `1 − hidden / judged`: at a good
    /// estimate, the object's visible fraction (BOP's `visib_fract`, counted over surface points
    /// instead of pixels). `None` without judged points.
    pub fn unhidden_fraction(&self) -> Option<f64> {
        let n = self.judged();
        (n > 0).then(|| 1.0 - self.hidden as f64 / n as f64)
    }
}

/// [`FrameTerm::detection_loss`] of `term` at `chart`'s reference translated by each of `shifts`,
/// every shifted pose prepared on its own (the default of
/// [`FrameTerm::shifted_detection_losses`]).
pub fn detection_losses_one_by_one<T: FrameTerm + ?Sized>(
    term: &T,
    camera: &Camera,
    chart: &PoseChart,
    shape: &Shape,
    shifts: &[Vector3<f64>],
) -> Option<Vec<Option<f64>>> {
    (shifts.iter())
        .map(|t| term.detection_loss(camera, &chart.translated(t), shape))
        .collect()
}

/// A configured modality (clone, compare and print it through its parameters).
pub struct ModalityConfig(Box<dyn ModalitySpec>);

impl ModalityConfig {
    /// The modality `spec` describes.
    pub fn new(spec: impl ModalitySpec + 'static) -> Self {
        Self(Box::new(spec))
    }

    /// Its parameters.
    pub fn spec(&self) -> &dyn ModalitySpec {
        self.0.as_ref()
    }
}

impl Clone for ModalityConfig {
    fn clone(&self) -> Self {
        Self(self.0.boxed())
    }
}

impl fmt::Debug for ModalityConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialEq for ModalityConfig {
    /// Same name and same parameters.
    fn eq(&self, other: &Self) -> bool {
        self.0.name() == other.0.name() && format!("{:?}", self.0) == format!("{:?}", other.0)
    }
}
