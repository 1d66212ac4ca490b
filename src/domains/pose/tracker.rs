//! Multi-object 6D pose tracker: one particle filter per object (or one joint filter over all
//! objects, 6K dimensions) over the tangent coordinates of [`crate::domains::pose::modality`].
//!
//! Per frame and filter group:
//! 1. **Predict** each object's reference pose: random walk `T̂_k = T_{k−1}`, or constant velocity
//!    `T̂_k = chart(T_{k−1}).pose(v)` with `v = chart(T_{k−2}).coords(T_{k−1})`. Particles keep their
//!    offsets `x_i` relative to the reference.
//! 2. **Observe**: prepare the modalities about `T̂_k` (visible points chosen once per frame), with
//!    length scales widened by `f = max(1, σ_pos / coarse_scale)` where `σ_pos` is the current particle
//!    spread in metres at the object's surface (coarse-to-fine from an uncertain start).
//! 3. **Filter**: one `Filter::update` (the filter propagates with the random-walk process noise,
//!    then moves or reweights).
//! 4. **Estimate** `T_k = T(D x̄)` with `x̄` the particle mean (unweighted for RF-PF/grad, weighted for
//!    SIR), then **re-centre**: `x_i ← D⁻¹ chart(T_k).coords(chart(T̂_k).pose(D x_i))`.

use crate::core::error::{Error, Result};
use crate::core::filter::{Filter, FilterKind, FilterSpec};
use crate::core::geometry::camera::Camera;
use crate::domains::pose::mesh::Mesh;
use crate::domains::pose::mesh::SurfacePoint;
use crate::domains::pose::modality::depth::{DepthModality, DepthParams};
use crate::domains::pose::modality::edge::{
    depth_edge_distance_map, edge_distance_map, EdgeModality, EdgeParams, EdgePoints,
};
use crate::domains::pose::modality::visible::{visible_points, VisibilityParams};
use crate::domains::pose::modality::{
    ImageF32, Modality, ObjectTerms, ObservationModel, PoseChart, SharedImage,
};
use nalgebra::{Isometry3, Matrix6, Vector3, Vector6};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

/// An observation modality the tracker can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModalityKind {
    /// [`DepthModality`].
    Depth,
    /// [`EdgeModality`] (RGB only).
    Edge,
    /// [`EdgeModality`] on the occluding contours of the depth image
    /// ([`depth_edge_distance_map`]): an image-plane pull that the point-to-plane depth residuals
    /// lack, for large frame-to-frame motion.
    DepthEdge,
}

impl FromStr for ModalityKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "depth" => Ok(ModalityKind::Depth),
            "edge" | "region" | "rgb" => Ok(ModalityKind::Edge),
            "depth-edge" | "depthedge" | "contour" => Ok(ModalityKind::DepthEdge),
            _ => Err(Error::param(
                "modalities",
                s,
                "expected depth, edge or depth-edge",
            )),
        }
    }
}

/// The image a modality `kind` needs, or an error `what` naming it.
fn required(image: &Option<SharedImage>, kind: &str, what: &str) -> Result<SharedImage> {
    image
        .clone()
        .ok_or_else(|| Error::param("modalities", kind, what))
}

/// Parse a comma-separated modality list, e.g. `depth,edge`.
pub fn parse_modalities(s: &str) -> Result<Vec<ModalityKind>> {
    let v: Vec<ModalityKind> = s
        .split(',')
        .map(|m| m.trim().parse())
        .collect::<Result<_>>()?;
    if v.is_empty() {
        return Err(Error::param("modalities", s, "empty list"));
    }
    Ok(v)
}

/// Motion model of the reference prediction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MotionModel {
    /// `T̂_k = T_{k−1}`.
    RandomWalk,
    /// Repeat the last frame-to-frame increment.
    ConstantVelocity,
}

impl FromStr for MotionModel {
    type Err = Error;
    /// `random_walk` or `constant_velocity`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "random_walk" => Ok(MotionModel::RandomWalk),
            "constant_velocity" => Ok(MotionModel::ConstantVelocity),
            other => Err(Error::param(
                "motion",
                other,
                "expected random_walk or constant_velocity",
            )),
        }
    }
}

/// A perturbation of the initial pose: translation of norm `translation` (m) and rotation of angle
/// `rotation` (rad), in random directions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InitNoise {
    /// Translation magnitude (metres).
    pub translation: f64,
    /// Rotation angle (radians).
    pub rotation: f64,
}

impl FromStr for InitNoise {
    type Err = Error;
    /// `20mm,10deg` (units `mm`/`m` and `deg`/`rad`; bare numbers are mm and degrees).
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::param("init-noise", s, why);
        let (t, r) = s
            .split_once(',')
            .ok_or_else(|| bad("expected e.g. 20mm,10deg"))?;
        let num = |x: &str, suffixes: &[(&str, f64)]| -> Result<f64> {
            let x = x.trim();
            let (body, scale) = suffixes
                .iter()
                .find_map(|(suf, k)| x.strip_suffix(suf).map(|b| (b, *k)))
                .unwrap_or((x, suffixes[0].1));
            let v: f64 = body.trim().parse().map_err(|_| bad("not a number"))?;
            (v >= 0.0 && v.is_finite())
                .then_some(v * scale)
                .ok_or_else(|| bad("must be ≥ 0"))
        };
        Ok(InitNoise {
            translation: num(t, &[("mm", 1e-3), ("m", 1.0)])?,
            rotation: num(r, &[("deg", std::f64::consts::PI / 180.0), ("rad", 1.0)])?,
        })
    }
}

impl InitNoise {
    /// Apply to `pose` about the model point `centre`, drawing directions from `seed`.
    pub fn perturb(
        &self,
        pose: &Isometry3<f64>,
        centre: &Vector3<f64>,
        seed: u64,
    ) -> Isometry3<f64> {
        use rand::Rng;
        let mut rng = crate::core::filter::rng::stream(seed, 0x1417, 0);
        let mut dir = || loop {
            let v = Vector3::new(rng.random::<f64>(), rng.random(), rng.random()) * 2.0
                - Vector3::repeat(1.0);
            if let Some(u) = v.try_normalize(1e-3).filter(|_| v.norm() <= 1.0) {
                return u;
            }
        };
        let (t, r) = (dir() * self.translation, dir() * self.rotation);
        PoseChart::new(*pose, centre).pose(&Vector6::new(t.x, t.y, t.z, r.x, r.y, r.z))
    }
}

/// Re-detection after loss: when an object's detection loss at its estimate jumps far above its
/// running level (or is simply high), the object is searched for again, translation first: its
/// rotation centre is placed on a pixel grid over the image region between the constant-velocity
/// prediction and the last good pose — widened by a reach that grows with the frames it has been
/// lost — at the depth the sensor reads there; the best placements are refined by a few
/// Gauss–Newton steps, and the object's particles restart around the winner.
///
/// The detection loss is the depth modality's loss at the estimate, at scale 1 (unwidened),
/// divided by its outlier constant times `n_eff` (so about the fraction of visible points that
/// are outliers: 0 for a perfect fit, ≈ 1 when nothing fits).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RedetectConfig {
    /// Trigger when the detection loss exceeds `ratio` × its running level …
    pub ratio: f64,
    /// … and exceeds this absolute value (outlier-fraction units) …
    pub min_loss: f64,
    /// … or whenever it exceeds this one (a filter whose running level is itself poor).
    pub max_loss: f64,
    /// Weight of the newest frame in the running level (exponential moving average; frames
    /// that trigger are left out).
    pub smoothing: f64,
    /// Frames before the running level is trusted.
    pub warmup: usize,
    /// Search reach (metres) beyond the prediction and the last good pose, per lost frame.
    pub reach: f64,
    /// The reach grows by one `reach` per consecutive lost frame, up to this many.
    pub max_growth: f64,
    /// Grid step of the translation search, as a fraction of the object's radius.
    pub step: f64,
    /// At most this many grid points per image axis (the step grows instead).
    pub max_grid: usize,
    /// Best grid placements refined by Gauss–Newton.
    pub candidates: usize,
    /// Once the reach has stopped growing, search only every `interval`-th lost frame (bounds
    /// the cost of an object that stays lost).
    pub interval: usize,
    /// The winner replaces the estimate only if its detection loss is below `accept` × the
    /// estimate's.
    pub accept: f64,
}

impl Default for RedetectConfig {
    fn default() -> Self {
        Self {
            ratio: 2.0,
            min_loss: 0.25,
            max_loss: 0.5,
            smoothing: 0.3,
            warmup: 2,
            reach: 0.03,
            max_growth: 4.0,
            step: 0.25,
            max_grid: 24,
            candidates: 4,
            interval: 1,
            accept: 0.8,
        }
    }
}

impl RedetectConfig {
    /// Whether to search on the `lost`-th consecutive lost frame (0-based).
    fn searches_after(&self, lost: usize) -> bool {
        let grown = (self.max_growth.max(1.0) - 1.0).ceil() as usize;
        lost <= grown || (lost - grown).is_multiple_of(self.interval.max(1))
    }

    /// Search reach (metres) on the `lost`-th consecutive lost frame (0-based).
    fn reach(&self, lost: usize) -> f64 {
        self.reach * (1.0 + lost as f64).min(self.max_growth.max(1.0))
    }
}

/// A pixel grid over the image region spanned by two image points, widened by `margin` pixels
/// and clipped to the image: `(u₀ + i·step, v₀ + j·step)`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct PixelGrid {
    origin: (f64, f64),
    step: f64,
    n: (usize, usize),
}

impl PixelGrid {
    /// The grid over `a`, `b` ± `margin`, at `step` pixels or coarser so that no axis has more
    /// than `max` points.
    fn new(cam: &Camera, a: (f64, f64), b: (f64, f64), margin: f64, step: f64, max: usize) -> Self {
        let clip = |x: f64, size: u32| x.clamp(0.0, (size as f64 - 1.0).max(0.0));
        let (u0, u1) = (
            clip(a.0.min(b.0) - margin, cam.width),
            clip(a.0.max(b.0) + margin, cam.width),
        );
        let (v0, v1) = (
            clip(a.1.min(b.1) - margin, cam.height),
            clip(a.1.max(b.1) + margin, cam.height),
        );
        let extent = (u1 - u0).max(v1 - v0);
        let step = step
            .max(extent / max.max(2).saturating_sub(1) as f64)
            .max(1.0);
        let count = |len: f64| (len / step).floor() as usize + 1;
        Self {
            origin: (u0, v0),
            step,
            n: (count(u1 - u0), count(v1 - v0)),
        }
    }

    /// The grid's pixels, row by row.
    fn pixels(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        (0..self.n.1).flat_map(move |j| {
            (0..self.n.0).map(move |i| {
                (
                    self.origin.0 + i as f64 * self.step,
                    self.origin.1 + j as f64 * self.step,
                )
            })
        })
    }
}

/// Median of the valid (positive) depths in the `(2r+1)²` window about pixel `(u, v)`.
fn window_depth(depth: &ImageF32, (u, v): (f64, f64), r: i64) -> Option<f64> {
    let (x0, y0) = (u.round() as i64, v.round() as i64);
    let mut vals: Vec<f32> = (-r..=r)
        .flat_map(|dy| (-r..=r).map(move |dx| (x0 + dx, y0 + dy)))
        .filter(|&(x, y)| {
            x >= 0 && y >= 0 && (x as usize) < depth.width && (y as usize) < depth.height
        })
        .map(|(x, y)| depth.at(x as usize, y as usize))
        .filter(|&d| d > 0.0)
        .collect();
    if vals.is_empty() {
        return None;
    }
    let mid = vals.len() / 2;
    vals.select_nth_unstable_by(mid, f32::total_cmp);
    Some(vals[mid] as f64)
}

/// Everything the tracker needs to know besides the data.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackerConfig {
    /// Which filter.
    pub filter: FilterKind,
    /// Particles per filter.
    pub particles: usize,
    /// Seed of every random stream.
    pub seed: u64,
    /// Modalities, each with weight 1.
    pub modalities: Vec<ModalityKind>,
    /// One joint filter over all objects instead of one per object.
    pub joint: bool,
    /// Reference prediction.
    pub motion: MotionModel,
    /// Constant-velocity prediction repeats this fraction of the last increment (1 = pure
    /// constant velocity; below 1 damps, so that a lost object's runaway estimate does not keep
    /// accelerating and a jerk's overshoot decays).
    pub velocity_damping: f64,
    /// One state unit `D`: `unit` metres of translation and `unit / radius` radians of rotation
    /// (so both move the object's surface by about `unit`, which conditions the gradient flow).
    pub unit: f64,
    /// Motion-prior σ per frame, metres and radians (the loss regulariser `½|ξ/σ|²` toward the
    /// prediction; keep the rotation small: spins of symmetric objects are unobservable).
    pub motion_sigma: (f64, f64),
    /// Random-walk process noise per frame, metres and radians.
    pub process_noise: (f64, f64),
    /// Uncertainty of the initial pose (widens the first prior), if any.
    pub init_noise: Option<InitNoise>,
    /// RF-PF / grad step `η` (gradient-flow time per frame, state units).
    pub eta: f64,
    /// Filter updates on the first frame.
    pub init_updates: usize,
    /// Spread (m) at which modality length scales start to widen.
    pub coarse_scale: f64,
    /// Depth modality parameters (at scale 1).
    pub depth: DepthParams,
    /// Edge modality parameters.
    pub edge: EdgeParams,
    /// Depth-edge modality parameters ([`ModalityKind::DepthEdge`]; `threshold` is the depth
    /// jump in metres that makes a contour).
    pub depth_edge: EdgeParams,
    /// Surface samples per object.
    pub surface_samples: usize,
    /// Pose hypotheses scored per round when starting from an uncertain (init-noise) pose.
    pub hypotheses: usize,
    /// Re-detection after loss (off by default).
    pub redetect: Option<RedetectConfig>,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            filter: FilterKind::Rfpf,
            particles: 100,
            seed: 0,
            modalities: vec![ModalityKind::Depth],
            joint: false,
            motion: MotionModel::RandomWalk,
            velocity_damping: 1.0,
            unit: 0.004,
            motion_sigma: (0.005, 2f64.to_radians()),
            process_noise: (0.001, 0.3f64.to_radians()),
            init_noise: None,
            eta: 0.06,
            init_updates: 1,
            coarse_scale: 0.008,
            depth: DepthParams::default(),
            edge: EdgeParams::default(),
            depth_edge: EdgeParams {
                threshold: 0.03,
                visibility: VisibilityParams {
                    cell_px: 2.0,
                    max_points: 150,
                    ..VisibilityParams::default()
                },
                ..EdgeParams::default()
            },
            surface_samples: 3000,
            hypotheses: 2000,
            redetect: None,
        }
    }
}

impl TrackerConfig {
    /// The default configuration with `filter`, `particles` per filter and `seed`: the start of
    /// every configuration, whether from CLI flags, a launch table or a study.
    pub fn new(filter: FilterKind, particles: usize, seed: u64) -> Self {
        Self {
            filter,
            particles,
            seed,
            ..Self::default()
        }
    }

    /// With the modalities of a comma-separated list (names from the modality registry).
    pub fn with_modalities(mut self, list: &str) -> Result<Self> {
        self.modalities = parse_modalities(list)?;
        Ok(self)
    }

    /// With an uncertain start: `noise` widens the first prior, and the first frame gets 10
    /// filter updates instead of 1 (the one place this rule lives).
    pub fn with_init_noise(mut self, noise: Option<InitNoise>) -> Self {
        self.init_noise = noise;
        self.init_updates = if noise.is_some() { 10 } else { 1 };
        self
    }

    /// `D` for an object of the given radius.
    fn scale(&self, radius: f64) -> Vector6<f64> {
        let r = self.unit / radius.max(self.unit);
        Vector6::new(self.unit, self.unit, self.unit, r, r, r)
    }

    /// A physical `(metres, radians)` σ pair in state units for scale `d`.
    fn in_units(pair: (f64, f64), d: &Vector6<f64>) -> Vector6<f64> {
        Vector6::from_fn(|i, _| if i < 3 { pair.0 } else { pair.1 } / d[i])
    }

    /// Prior σ (state units) at the first frame: the init-noise spread per axis when larger than
    /// the motion σ.
    fn initial_prior(&self, d: &Vector6<f64>) -> Vector6<f64> {
        self.noise_prior(self.init_noise, d)
    }

    /// Per-axis σ (state units) of a perturbation `noise`, at least the motion σ.
    fn noise_prior(&self, noise: Option<InitNoise>, d: &Vector6<f64>) -> Vector6<f64> {
        let motion = Self::in_units(self.motion_sigma, d);
        match noise {
            Some(n) => {
                let per_axis = (n.translation / 3f64.sqrt(), n.rotation / 3f64.sqrt());
                Self::in_units(per_axis, d).zip_map(&motion, f64::max)
            }
            None => motion,
        }
    }
}

/// A tracked object's geometry: oriented surface samples and the rotation centre (model frame).
#[derive(Clone, Debug)]
pub struct ObjectModel {
    /// BOP object id.
    pub obj_id: u32,
    /// Surface samples with normals (metres).
    pub points: Vec<SurfacePoint>,
    /// Bounding-box centre (rotation centre of the chart).
    pub centre: Vector3<f64>,
    /// Largest distance of a sample from the centre.
    pub radius: f64,
}

impl ObjectModel {
    /// Sample `n` oriented points of `mesh` (deterministic in `seed`).
    pub fn from_mesh(obj_id: u32, mesh: &Mesh, n: usize, seed: u64) -> Result<Self> {
        let points = mesh.sample_surface(n, seed);
        if points.is_empty() {
            return Err(Error::param("mesh", obj_id, "object model has no surface"));
        }
        let (lo, hi) = mesh.bounding_box();
        let centre = (lo.coords + hi.coords) / 2.0;
        let radius = points
            .iter()
            .map(|p| (p.p.coords - centre).norm())
            .fold(0.0, f64::max);
        Ok(Self {
            obj_id,
            points,
            centre,
            radius,
        })
    }
}

/// One observation: images (as needed by the modalities) and intrinsics.
#[derive(Clone, Debug)]
pub struct TrackFrame {
    /// Depth in metres, 0 = missing.
    pub depth: Option<SharedImage>,
    /// Grey image in `[0, 1]`.
    pub grey: Option<SharedImage>,
    /// Intrinsics and size.
    pub camera: Camera,
}

/// Per-object state.
#[derive(Clone, Debug)]
struct ObjectState {
    estimate: Isometry3<f64>,
    previous: Option<Isometry3<f64>>,
    /// Running level of the re-detection loss and the frames that fed it.
    level: Option<(f64, usize)>,
    /// Consecutive frames that triggered re-detection.
    lost: usize,
    /// The last estimate that did not trigger re-detection.
    good: Isometry3<f64>,
}

/// Per-frame distance maps shared by all objects.
struct FrameMaps {
    edge: Option<SharedImage>,
    depth_edge: Option<SharedImage>,
}

/// A set of objects sharing one filter.
struct Group {
    members: Vec<usize>,
    filter: Option<Filter>,
}

/// The result of one frame.
#[derive(Clone, Debug)]
pub struct FrameOutput {
    /// Estimated pose per object (tracker order).
    pub poses: Vec<Isometry3<f64>>,
    /// Wall-clock seconds per object for this frame (group time / group size).
    pub seconds: Vec<f64>,
    /// Particle spread per object (metres at the surface).
    pub spread: Vec<f64>,
    /// Per object: the particles as they were scored this frame — each particle's pose translation
    /// (camera frame, metres) and its loss (the group's loss, lower is better).
    pub particles: Vec<Vec<(Vector3<f64>, f64)>>,
    /// Per object: covariance of the particle poses in the tangent space of [`crate::core::geometry::se3`]
    /// at the estimate, `Σ = Σ_i w_i ξ_i ξ_iᵀ` with `ξ_i = log(T_i · T̂⁻¹)` (m², rad²).
    pub covariance: Vec<Matrix6<f64>>,
    /// Per object: the effective sample size of its filter after this frame.
    pub ess: Vec<f64>,
    /// Per object: the spread (standard deviation) of the particle losses of this frame.
    pub loss_std: Vec<f64>,
    /// Per object: whether re-detection ([`TrackerConfig::redetect`]) replaced its estimate
    /// this frame.
    pub redetected: Vec<bool>,
}

/// The tracker: objects, their filters and current estimates.
pub struct Tracker {
    config: TrackerConfig,
    objects: Vec<ObjectModel>,
    states: Vec<ObjectState>,
    groups: Vec<Group>,
    frames: usize,
    init_shrink: f64,
}

impl Tracker {
    /// A tracker for `objects` starting at `initial` poses (one per object).
    pub fn new(
        config: TrackerConfig,
        objects: Vec<ObjectModel>,
        initial: Vec<Isometry3<f64>>,
    ) -> Result<Self> {
        if objects.len() != initial.len() || objects.is_empty() {
            return Err(Error::Shape {
                what: "initial poses per object".into(),
                expected: objects.len().to_string(),
                got: initial.len().to_string(),
            });
        }
        if config.particles == 0 {
            return Err(Error::param("particles", 0, "need at least one particle"));
        }
        let finite = |p: &Isometry3<f64>| p.to_homogeneous().iter().all(|x| x.is_finite());
        if let Some((o, p)) = objects.iter().zip(&initial).find(|(_, p)| !finite(p)) {
            return Err(Error::param(
                format!("initial pose of object {}", o.obj_id),
                format!("{p:?}"),
                "must be finite",
            ));
        }
        let groups = if config.joint {
            vec![Group {
                members: (0..objects.len()).collect(),
                filter: None,
            }]
        } else {
            (0..objects.len())
                .map(|k| Group {
                    members: vec![k],
                    filter: None,
                })
                .collect()
        };
        let states = initial
            .into_iter()
            .map(|estimate| ObjectState {
                estimate,
                previous: None,
                level: None,
                lost: 0,
                good: estimate,
            })
            .collect();
        Ok(Self {
            config,
            objects,
            states,
            groups,
            frames: 0,
            init_shrink: 1.0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// The tracked objects.
    pub fn objects(&self) -> &[ObjectModel] {
        &self.objects
    }

    /// Current estimates.
    pub fn estimates(&self) -> Vec<Isometry3<f64>> {
        self.states.iter().map(|s| s.estimate).collect()
    }

    /// Assimilate one frame and return the new estimates.
    pub fn step(&mut self, frame: &TrackFrame) -> Result<FrameOutput> {
        let n = self.objects.len();
        let mut out = FrameOutput {
            poses: vec![Isometry3::identity(); n],
            seconds: vec![0.0; n],
            spread: vec![0.0; n],
            particles: vec![Vec::new(); n],
            covariance: vec![Matrix6::zeros(); n],
            ess: vec![f64::NAN; n],
            loss_std: vec![f64::NAN; n],
            redetected: vec![false; n],
        };
        let images = [("depth", &frame.depth), ("grey", &frame.grey)];
        for (what, image) in images {
            image.as_ref().map_or(Ok(()), |i| i.check(what))?;
        }
        let start = Instant::now();
        let maps = self.frame_maps(frame)?;
        // Per-frame maps are shared by all objects: their time is split evenly.
        let shared = start.elapsed().as_secs_f64() / n as f64;
        for g in 0..self.groups.len() {
            let start = Instant::now();
            self.step_group(g, frame, &maps, &mut out)?;
            let per = start.elapsed().as_secs_f64() / self.groups[g].members.len() as f64 + shared;
            self.groups[g]
                .members
                .iter()
                .for_each(|&k| out.seconds[k] = per);
        }
        self.frames += 1;
        out.poses = self.estimates();
        Ok(out)
    }

    /// The frame's distance maps of the modalities that need one (computed once per frame).
    fn frame_maps(&self, frame: &TrackFrame) -> Result<FrameMaps> {
        let on = |k| self.config.modalities.contains(&k);
        let edge = if on(ModalityKind::Edge) {
            let grey = frame
                .grey
                .as_ref()
                .ok_or_else(|| Error::param("modalities", "edge", "frame has no RGB image"))?;
            Some(Arc::new(edge_distance_map(grey, &self.config.edge)))
        } else {
            None
        };
        let depth_edge = if on(ModalityKind::DepthEdge) {
            let depth = frame.depth.as_ref().ok_or_else(|| {
                Error::param("modalities", "depth-edge", "frame has no depth image")
            })?;
            let p = &self.config.depth_edge;
            Some(Arc::new(depth_edge_distance_map(
                depth,
                p.threshold,
                p.truncate,
            )))
        } else {
            None
        };
        Ok(FrameMaps { edge, depth_edge })
    }

    fn step_group(
        &mut self,
        g: usize,
        frame: &TrackFrame,
        maps: &FrameMaps,
        out: &mut FrameOutput,
    ) -> Result<()> {
        let members = self.groups[g].members.clone();
        let first = self.groups[g].filter.is_none();
        if first && self.config.init_noise.is_some() {
            for &k in &members {
                self.select_hypothesis(k, frame, maps)?;
            }
        }
        let spreads: Vec<f64> = members
            .iter()
            .enumerate()
            .map(|(j, &k)| self.spread(g, j, k))
            .collect();
        let charts: Vec<PoseChart> = members.iter().map(|&k| self.predicted_chart(k)).collect();
        let terms = members
            .iter()
            .zip(&charts)
            .zip(&spreads)
            .map(|((&k, chart), &spread)| self.object_terms(k, chart, frame, maps, spread, first))
            .collect::<Result<Vec<_>>>()?;
        let model = ObservationModel { objects: terms };
        let updates = if first {
            self.config.init_updates.max(1)
        } else {
            1
        };
        let mut filter = match self.groups[g].filter.take() {
            Some(f) => f,
            None => self.build_filter(g, &model)?,
        };
        let mut diag = Default::default();
        for _ in 0..updates {
            diag = filter.update(&model)?;
        }
        let mean = filter.particles().mean();
        for (j, &k) in members.iter().enumerate() {
            let scale = self.config.scale(self.objects[k].radius);
            let xbar = Vector6::from_fn(|i, _| mean[6 * j + i] * scale[i]);
            let est = charts[j].pose(&xbar);
            let (cloud, cov) = particle_poses(&filter, j, &scale, &charts[j], &est);
            out.particles[k] = cloud;
            out.covariance[k] = cov;
            out.ess[k] = diag.ess;
            out.loss_std[k] = diag.loss_std;
            let new_chart = PoseChart::new(est, &self.objects[k].centre);
            recentre(
                filter.particles_mut().as_mut_slice(),
                j,
                members.len(),
                &scale,
                &charts[j],
                &new_chart,
            );
            let st = &mut self.states[k];
            st.previous = Some(st.estimate);
            st.estimate = est;
            out.spread[k] = spreads[j];
        }
        self.groups[g].filter = Some(filter);
        if let Some(rd) = self.config.redetect {
            for (j, &k) in members.iter().enumerate() {
                let centre = charts[j].pose(&Vector6::zeros());
                if self.redetect(g, j, k, &centre, &rd, frame, maps)? {
                    out.redetected[k] = true;
                }
            }
        }
        Ok(())
    }

    /// The re-detection loss of object `k` at `pose` (see [`RedetectConfig`]); `None` when no model
    /// point is visible there (nothing to judge by: the trigger treats it as no loss, the search as
    /// no candidate).
    fn detection_loss(
        &self,
        k: usize,
        pose: &Isometry3<f64>,
        frame: &TrackFrame,
    ) -> Result<Option<f64>> {
        let c = &self.config;
        let chart = PoseChart::new(*pose, &self.objects[k].centre);
        let depth = DepthModality::prepare(
            required(&frame.depth, "depth", "frame has no depth image")?,
            frame.camera,
            &chart,
            &self.objects[k].points,
            c.depth,
        );
        if depth.len() == 0 {
            return Ok(None);
        }
        let d = c.scale(self.objects[k].radius);
        let terms = ObjectTerms {
            modalities: vec![(1.0, Box::new(depth))],
            scale: d,
            prior_sigma: Vector6::repeat(1.0),
            process_sigma: Vector6::zeros(),
        };
        let p = &c.depth;
        Ok(Some(
            terms.loss(&[0.0; 6]) * p.sigma * p.sigma / (p.n_eff * p.outlier_cost()),
        ))
    }

    /// Check object `k` (member `j` of group `g`) for loss and re-detect it about `pred` (this
    /// frame's prediction); true when its estimate was replaced.
    #[allow(clippy::too_many_arguments)]
    fn redetect(
        &mut self,
        g: usize,
        j: usize,
        k: usize,
        pred: &Isometry3<f64>,
        rd: &RedetectConfig,
        frame: &TrackFrame,
        maps: &FrameMaps,
    ) -> Result<bool> {
        let est = self.states[k].estimate;
        let loss = self.detection_loss(k, &est, frame)?.unwrap_or(0.0);
        if !self.update_level(k, loss, rd) {
            return Ok(false);
        }
        let lost = self.states[k].lost;
        self.states[k].lost += 1;
        // Hold the estimate (no velocity) rather than let it run away.
        self.states[k].previous = Some(est);
        if !rd.searches_after(lost) {
            return Ok(false);
        }
        let salt = self.config.seed ^ (self.frames as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let good = self.states[k].good;
        let (found, winner) = self.search_lost(k, pred, &good, rd.reach(lost), rd, frame, maps)?;
        if found >= rd.accept * loss {
            return Ok(false);
        }
        self.restart_about(g, j, k, winner, salt);
        Ok(true)
    }

    /// Feed object `k`'s detection `loss` to its running level; true when it signals a loss
    /// (the level is then left unchanged), false when it does not (the estimate is good).
    fn update_level(&mut self, k: usize, loss: f64, rd: &RedetectConfig) -> bool {
        let st = &mut self.states[k];
        let lost = loss > rd.max_loss
            || match st.level {
                Some((level, n)) => n >= rd.warmup && loss > rd.ratio * level && loss > rd.min_loss,
                None => false,
            };
        if !lost {
            st.level = Some(match st.level {
                Some((level, n)) => (level + rd.smoothing * (loss - level), n + 1),
                None => (loss, 1),
            });
            st.lost = 0;
            st.good = st.estimate;
        }
        lost
    }

    /// Search for lost object `k`: [`Tracker::placements`] within `reach` at the prediction's
    /// rotation, scored with the observation terms widened to the grid step; the best
    /// `rd.candidates` are refined by [`Tracker::refine`]. Returns the lowest detection loss and
    /// its pose (the prediction is always a candidate).
    #[allow(clippy::too_many_arguments)]
    fn search_lost(
        &self,
        k: usize,
        pred: &Isometry3<f64>,
        good: &Isometry3<f64>,
        reach: f64,
        rd: &RedetectConfig,
        frame: &TrackFrame,
        maps: &FrameMaps,
    ) -> Result<(f64, Isometry3<f64>)> {
        use rayon::prelude::*;
        let chart = PoseChart::new(*pred, &self.objects[k].centre);
        let (shifts, step) = self.placements(k, &chart, good, reach, rd, frame)?;
        let mut terms = self.object_terms(k, &chart, frame, maps, step, true)?;
        terms.prior_sigma = Vector6::repeat(f64::INFINITY);
        let d = terms.scale;
        let mut scored: Vec<(f64, usize)> = shifts
            .par_iter()
            .enumerate()
            .map(|(i, t)| {
                let x = [t.x / d[0], t.y / d[1], t.z / d[2], 0.0, 0.0, 0.0];
                (terms.loss(&x), i)
            })
            .collect();
        scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let coarse = self.config.coarse_scale;
        let schedule = [step, step, step / 2.0, coarse, coarse, coarse];
        // A pose from which nothing of the object is visible is no candidate (it would score 0).
        let score = |pose: &Isometry3<f64>| -> Result<f64> {
            Ok(self
                .detection_loss(k, pose, frame)?
                .unwrap_or(f64::INFINITY))
        };
        let mut best = (score(pred)?, *pred);
        for &(_, i) in scored.iter().take(rd.candidates) {
            let t = shifts[i];
            let start = chart.pose(&Vector6::new(t.x, t.y, t.z, 0.0, 0.0, 0.0));
            let pose = self.refine(k, start, &schedule, frame, maps)?;
            let l = score(&pose)?;
            if l < best.0 {
                best = (l, pose);
            }
        }
        Ok(best)
    }

    /// Gauss–Newton refinement of object `k` from `pose`: one step per entry of `spreads`, each
    /// about the current pose with the observation terms widened to that spread,
    /// `δξ = −(H + μI)⁻¹ g` (H the modalities' Gauss–Newton curvature) with a halving line
    /// search on the data loss; a step that does not lower the loss is skipped.
    fn refine(
        &self,
        k: usize,
        mut pose: Isometry3<f64>,
        spreads: &[f64],
        frame: &TrackFrame,
        maps: &FrameMaps,
    ) -> Result<Isometry3<f64>> {
        for &spread in spreads {
            let chart = PoseChart::new(pose, &self.objects[k].centre);
            let terms = self.object_terms(k, &chart, frame, maps, spread, true)?;
            let data = |xi: &Vector6<f64>| -> f64 {
                terms.modalities.iter().map(|(w, m)| w * m.loss(xi)).sum()
            };
            let (mut g, mut h) = (Vector6::zeros(), Matrix6::zeros());
            for (w, m) in &terms.modalities {
                let mut gm = Vector6::zeros();
                m.loss_grad(&Vector6::zeros(), &mut gm);
                g += gm * *w;
                h += m.curvature() * *w;
            }
            let damping = 1e-6 * h.trace().max(1e-12);
            let Some(chol) = (h + Matrix6::identity() * damping).cholesky() else {
                continue;
            };
            let step = -chol.solve(&g);
            let base = data(&Vector6::zeros());
            if let Some(t) = [1.0, 0.5, 0.25, 0.125]
                .into_iter()
                .find(|&t| data(&(step * t)) < base)
            {
                pose = chart.pose(&(step * t));
            }
        }
        Ok(pose)
    }

    /// Translation hypotheses for object `k` about `chart`: its rotation centre placed on a
    /// [`PixelGrid`] over the image region spanned by the chart's centre and `good`'s, widened
    /// by `reach` metres, at the sensor's depth there (window median) plus the centre's depth
    /// behind its visible surface at the chart. Returns the shifts of the centre (camera frame)
    /// and the grid step in metres.
    fn placements(
        &self,
        k: usize,
        chart: &PoseChart,
        good: &Isometry3<f64>,
        reach: f64,
        rd: &RedetectConfig,
        frame: &TrackFrame,
    ) -> Result<(Vec<Vector3<f64>>, f64)> {
        let depth = required(&frame.depth, "depth", "frame has no depth image")?;
        let cam = frame.camera;
        let obj = &self.objects[k];
        let c = chart.centre;
        let px_per_m = cam.fx / c.z.max(1e-3);
        let g = PoseChart::new(*good, &obj.centre).centre;
        let at = |p: &Vector3<f64>| cam.project_xyz(&Vector3::new(p.x, p.y, p.z.max(1e-3)));
        let step = rd.step * obj.radius * px_per_m;
        let grid = PixelGrid::new(&cam, at(&c), at(&g), reach * px_per_m, step, rd.max_grid);
        let visible = visible_points(
            &obj.points,
            &chart.reference,
            &cam,
            &self.config.depth.visibility,
        );
        let behind = if visible.is_empty() {
            0.0
        } else {
            c.z - visible.iter().map(|p| p.p.z).sum::<f64>() / visible.len() as f64
        };
        let shifts = grid
            .pixels()
            .filter_map(|px| window_depth(&depth, px, 2).map(|z| (px, z + behind)))
            .map(|((u, v), z)| cam.backproject(u, v, z).coords - c)
            .collect();
        Ok((shifts, grid.step / px_per_m))
    }

    /// Restart object `k`'s particles (member `j` of group `g`) about `winner` at the motion σ,
    /// with no velocity.
    fn restart_about(&mut self, g: usize, j: usize, k: usize, winner: Isometry3<f64>, salt: u64) {
        let d = self.config.scale(self.objects[k].radius);
        let motion = TrackerConfig::in_units(self.config.motion_sigma, &d);
        let blocks = self.groups[g].members.len();
        if let Some(filter) = self.groups[g].filter.as_mut() {
            let mut rng = crate::core::filter::rng::stream(salt, 0xC8, k as u64);
            for row in filter.particles_mut().as_mut_slice().chunks_mut(6 * blocks) {
                let mut x = [0.0; 6];
                add_noise6(&mut x, &motion, &mut rng);
                row[6 * j..6 * j + 6].copy_from_slice(&x);
            }
            if blocks == 1 {
                filter.particles_mut().clear_weights();
            }
        }
        let st = &mut self.states[k];
        st.estimate = winner;
        st.previous = Some(winner);
    }

    /// From an uncertain start, score `hypotheses` poses drawn from the init-noise prior (twice,
    /// the second round around the first winner at a quarter of the spread) and restart from the
    /// lowest loss: a global search the local filter moves cannot do.
    fn select_hypothesis(&mut self, k: usize, frame: &TrackFrame, maps: &FrameMaps) -> Result<()> {
        let d = self.config.scale(self.objects[k].radius);
        let sigma = self.config.initial_prior(&d).map(|s| s * self.init_shrink);
        let (n, seed) = (self.config.hypotheses, self.config.seed);
        let centre = self.states[k].estimate;
        self.states[k].estimate =
            self.hypothesis_search(k, centre, sigma, n, &[1.0, 0.25], (seed, 0xB0), frame, maps)?;
        self.init_shrink = 0.25;
        Ok(())
    }

    /// Score `n` poses of object `k` drawn about `centre` with per-axis σ `sigma` (state units),
    /// in rounds, each about the last winner at the spread scaled by `shrinks[round]`, with the
    /// observation terms widened to the spread; the lowest loss wins (the centre is always a
    /// candidate). Random streams from `(seed, tag)`.
    #[allow(clippy::too_many_arguments)]
    fn hypothesis_search(
        &self,
        k: usize,
        centre: Isometry3<f64>,
        sigma: Vector6<f64>,
        n: usize,
        shrinks: &[f64],
        (seed, tag): (u64, u64),
        frame: &TrackFrame,
        maps: &FrameMaps,
    ) -> Result<Isometry3<f64>> {
        use rayon::prelude::*;
        let d = self.config.scale(self.objects[k].radius);
        let sd = sigma.component_mul(&d);
        let spread0 =
            sd.fixed_rows::<3>(0).norm() + self.objects[k].radius * sd.fixed_rows::<3>(3).norm();
        let mut pose = centre;
        for (round, &shrink) in shrinks.iter().enumerate() {
            let chart = PoseChart::new(pose, &self.objects[k].centre);
            let spread = spread0 * shrink;
            let mut terms = self.object_terms(k, &chart, frame, maps, spread, true)?;
            terms.prior_sigma = sigma * shrink;
            let best = (0..n)
                .into_par_iter()
                .map(|i| {
                    let mut rng = crate::core::filter::rng::stream(
                        seed,
                        tag + round as u64,
                        (k as u64) << 32 | i as u64,
                    );
                    let mut x = [0.0; 6];
                    if i > 0 {
                        add_noise6(&mut x, &terms.prior_sigma, &mut rng);
                    }
                    (terms.loss(&x), x)
                })
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, x)| x)
                .unwrap_or([0.0; 6]);
            let xi = Vector6::from_fn(|i, _| best[i] * terms.scale[i]);
            pose = chart.pose(&xi);
        }
        Ok(pose)
    }

    /// Group `g`'s filter, with particles drawn from the first frame's prior.
    fn build_filter(&self, g: usize, model: &ObservationModel) -> Result<Filter> {
        let c = &self.config;
        let mut spec = FilterSpec::new(c.filter, c.particles, c.seed.wrapping_add(1000 * g as u64));
        if matches!(c.filter, FilterKind::Rfpf | FilterKind::Grad) {
            spec.eta = Some(c.eta);
        }
        spec.build(model)
    }

    /// Reference chart of object `k` for this frame (motion-model prediction).
    fn predicted_chart(&self, k: usize) -> PoseChart {
        let st = &self.states[k];
        let centre = &self.objects[k].centre;
        let here = PoseChart::new(st.estimate, centre);
        match (self.config.motion, st.previous) {
            (MotionModel::ConstantVelocity, Some(prev)) => {
                let v = PoseChart::new(prev, centre).coords(&st.estimate)
                    * self.config.velocity_damping;
                PoseChart::new(here.pose(&v), centre)
            }
            _ => here,
        }
    }

    /// RMS particle spread of member `j` (object `k`) in metres at the surface; the initial prior
    /// spread before the first frame.
    fn spread(&self, g: usize, j: usize, k: usize) -> f64 {
        let scale = self.config.scale(self.objects[k].radius);
        let var: Vector6<f64> = match self.groups.get(g).and_then(|gr| gr.filter.as_ref()) {
            Some(f) => {
                let cov = f.particles().covariance();
                Vector6::from_fn(|i, _| cov[(6 * j + i, 6 * j + i)])
            }
            None => self
                .config
                .initial_prior(&scale)
                .map(|s| (s * self.init_shrink).powi(2)),
        };
        let sd = Vector6::from_fn(|i, _| (var[i].max(0.0)).sqrt() * scale[i]);
        sd.fixed_rows::<3>(0).norm() + self.objects[k].radius * sd.fixed_rows::<3>(3).norm()
    }

    /// Observation terms of object `k` about `chart`, widened to `spread`; `first` for the first
    /// frame's prior.
    fn object_terms(
        &self,
        k: usize,
        chart: &PoseChart,
        frame: &TrackFrame,
        maps: &FrameMaps,
        spread: f64,
        first: bool,
    ) -> Result<ObjectTerms> {
        let c = &self.config;
        let f = (spread / c.coarse_scale).max(1.0);
        let pts = &self.objects[k].points;
        let mut modalities: Vec<(f64, Box<dyn Modality>)> = Vec::new();
        for kind in &c.modalities {
            let m: Box<dyn Modality> = match kind {
                ModalityKind::Depth => Box::new(DepthModality::prepare(
                    required(&frame.depth, "depth", "frame has no depth image")?,
                    frame.camera,
                    chart,
                    pts,
                    c.depth.scaled(f),
                )),
                ModalityKind::Edge => Box::new(EdgeModality::prepare(
                    required(&maps.edge, "edge", "no edge map")?,
                    frame.camera,
                    chart,
                    pts,
                    c.edge,
                    EdgePoints::Silhouette,
                )),
                ModalityKind::DepthEdge => Box::new(EdgeModality::prepare(
                    required(&maps.depth_edge, "depth-edge", "no depth-edge map")?,
                    frame.camera,
                    chart,
                    pts,
                    c.depth_edge,
                    EdgePoints::Contour,
                )),
            };
            modalities.push((1.0, m));
        }
        let d = c.scale(self.objects[k].radius);
        let process = if first {
            Vector6::zeros()
        } else {
            TrackerConfig::in_units(c.process_noise, &d)
        };
        Ok(ObjectTerms {
            modalities,
            scale: d,
            prior_sigma: if first {
                (c.initial_prior(&d) * self.init_shrink)
                    .zip_map(&TrackerConfig::in_units(c.motion_sigma, &d), f64::max)
            } else {
                TrackerConfig::in_units(c.motion_sigma, &d)
            },
            process_sigma: process,
        })
    }
}

/// Re-express block `j` of every particle (stride `6·blocks`) from chart `from` in chart `to`:
/// `x ← D⁻¹ to.coords(from.pose(D x))`.
fn recentre(
    data: &mut [f64],
    j: usize,
    blocks: usize,
    scale: &Vector6<f64>,
    from: &PoseChart,
    to: &PoseChart,
) {
    for row in data.chunks_mut(6 * blocks) {
        let x = &mut row[6 * j..6 * j + 6];
        let xi = Vector6::from_fn(|i, _| x[i] * scale[i]);
        let y = from.transfer(&xi, to);
        (0..6).for_each(|i| x[i] = y[i] / scale[i]);
    }
}

/// Adds `σ_j · N(0,1)` to each of 6 coordinates.
fn add_noise6(x: &mut [f64; 6], sigma: &Vector6<f64>, rng: &mut impl rand::Rng) {
    use rand_distr::{Distribution, StandardNormal};
    for j in 0..6 {
        let z: f64 = StandardNormal.sample(rng);
        x[j] += sigma[j] * z;
    }
}

/// Object `j`'s particles of a group filter as poses: their translations with the particle losses,
/// and the covariance `Σ_i w_i ξ_i ξ_iᵀ`, `ξ_i = log(T_i · T̂⁻¹)`, about the estimate `T̂`.
fn particle_poses(
    filter: &Filter,
    j: usize,
    scale: &Vector6<f64>,
    chart: &PoseChart,
    est: &Isometry3<f64>,
) -> (Vec<(Vector3<f64>, f64)>, Matrix6<f64>) {
    let p = filter.particles();
    let weights = p.weights();
    let losses = filter.last_losses();
    let inv = est.inverse();
    let mut cov = Matrix6::zeros();
    let cloud = (0..p.len())
        .map(|i| {
            let x = &p.particle(i)[6 * j..6 * j + 6];
            let pose = chart.pose(&Vector6::from_fn(|r, _| x[r] * scale[r]));
            let xi = crate::core::geometry::se3::log(&(pose * inv));
            cov += weights[i] * xi * xi.transpose();
            (
                pose.translation.vector,
                losses.get(i).copied().unwrap_or(f64::NAN),
            )
        })
        .collect();
    (cloud, cov)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domains::pose::modality::ImageF32;

    #[test]
    fn parses_init_noise_and_modalities() {
        let n: InitNoise = "20mm,10deg".parse().unwrap();
        assert!((n.translation - 0.02).abs() < 1e-12);
        assert!((n.rotation - 10f64.to_radians()).abs() < 1e-12);
        assert!("20mm".parse::<InitNoise>().is_err());
        assert!("x,1".parse::<InitNoise>().is_err());
        assert_eq!(
            parse_modalities("depth,edge").unwrap(),
            vec![ModalityKind::Depth, ModalityKind::Edge]
        );
        assert!(parse_modalities("sonar").is_err());
    }

    fn cube() -> ObjectModel {
        ObjectModel::from_mesh(1, &Mesh::cuboid(0.05, 0.05, 0.05).unwrap(), 200, 0).unwrap()
    }

    #[test]
    fn non_finite_initial_poses_are_an_error_naming_the_object() {
        let nan = Isometry3::translation(f64::NAN, 0.0, 0.5);
        let err = Tracker::new(TrackerConfig::default(), vec![cube()], vec![nan])
            .err()
            .expect("NaN pose rejected")
            .to_string();
        assert!(err.contains("initial pose of object 1"), "{err}");
    }

    #[test]
    fn malformed_frame_images_are_an_error_naming_the_image() {
        let pose = Isometry3::translation(0.0, 0.0, 0.5);
        let config = TrackerConfig {
            modalities: vec![ModalityKind::Depth, ModalityKind::DepthEdge],
            ..TrackerConfig::default()
        };
        let mut tracker = Tracker::new(config, vec![cube()], vec![pose]).unwrap();
        let camera =
            Camera::from_k(&[100.0, 0.0, 32.0, 0.0, 100.0, 24.0, 0.0, 0.0, 1.0], 64, 48).unwrap();
        let image = |width, height, n| {
            Some(Arc::new(ImageF32 {
                width,
                height,
                data: vec![0.5; n],
            }))
        };
        for (depth, grey, named) in [
            (image(0, 0, 0), None, "depth"),
            (image(64, 48, 100), None, "depth"),
            (image(64, 48, 64 * 48), image(64, 48, 7), "grey"),
        ] {
            let frame = TrackFrame {
                depth,
                grey,
                camera,
            };
            let err = tracker.step(&frame).expect_err("rejected").to_string();
            assert!(err.contains(named), "{err}");
        }
    }

    #[test]
    fn a_pose_that_shows_nothing_of_the_object_is_not_scored_as_a_perfect_match() {
        let pose = Isometry3::translation(0.0, 0.0, 0.5);
        let tracker = Tracker::new(TrackerConfig::default(), vec![cube()], vec![pose]).unwrap();
        let camera =
            Camera::from_k(&[100.0, 0.0, 32.0, 0.0, 100.0, 24.0, 0.0, 0.0, 1.0], 64, 48).unwrap();
        let frame = TrackFrame {
            depth: Some(Arc::new(ImageF32 {
                width: 64,
                height: 48,
                data: vec![0.475; 64 * 48],
            })),
            grey: None,
            camera,
        };
        let seen = tracker.detection_loss(0, &pose, &frame).unwrap();
        assert!(seen.is_some_and(f64::is_finite), "{seen:?}");
        for hidden in [
            Isometry3::translation(0.0, 0.0, -0.5),
            Isometry3::translation(3.0, 0.0, 0.5),
        ] {
            assert_eq!(tracker.detection_loss(0, &hidden, &frame).unwrap(), None);
        }
    }

    #[test]
    fn init_noise_has_the_requested_magnitude() {
        let pose = Isometry3::new(Vector3::new(0.0, 0.0, 0.8), Vector3::new(0.1, 0.2, 0.3));
        let c = Vector3::new(0.01, 0.0, 0.0);
        let noisy = InitNoise {
            translation: 0.02,
            rotation: 0.1,
        }
        .perturb(&pose, &c, 3);
        let xi = PoseChart::new(pose, &c).coords(&noisy);
        assert!((xi.fixed_rows::<3>(0).norm() - 0.02).abs() < 1e-9);
        assert!((xi.fixed_rows::<3>(3).norm() - 0.1).abs() < 1e-9);
    }

    #[test]
    fn redetection_searches_every_lost_frame_while_the_reach_grows_then_every_interval() {
        let rd = RedetectConfig {
            max_growth: 4.0,
            interval: 3,
            ..RedetectConfig::default()
        };
        let searched: Vec<bool> = (0..8).map(|l| rd.searches_after(l)).collect();
        assert_eq!(
            searched,
            [true, true, true, true, false, false, true, false]
        );
        assert!((rd.reach(10) - 4.0 * rd.reach).abs() < 1e-12);
    }

    #[test]
    fn pixel_grid_is_clipped_to_the_image_and_capped_per_axis() {
        let cam =
            Camera::from_k(&[100.0, 0.0, 32.0, 0.0, 100.0, 24.0, 0.0, 0.0, 1.0], 64, 48).unwrap();
        let g = PixelGrid::new(&cam, (10.0, 10.0), (20.0, 12.0), 100.0, 1.0, 8);
        let px: Vec<(f64, f64)> = g.pixels().collect();
        assert!(g.n.0 <= 8 && g.n.1 <= 8, "{:?}", g.n);
        assert!(px
            .iter()
            .all(|&(u, v)| (0.0..=63.0).contains(&u) && (0.0..=47.0).contains(&v)));
        assert_eq!(px.len(), g.n.0 * g.n.1);
        assert_eq!(px[0], (0.0, 0.0));
    }

    #[test]
    fn window_depth_is_the_median_of_valid_pixels() {
        let mut data = vec![0.0f32; 25];
        data[6] = 1.0;
        data[7] = 2.0;
        data[8] = 9.0;
        let image = ImageF32 {
            width: 5,
            height: 5,
            data,
        };
        assert_eq!(window_depth(&image, (2.0, 2.0), 1), Some(2.0));
        assert_eq!(window_depth(&image, (4.0, 4.0), 0), None);
    }
}
