//! The tracker's configuration ([`TrackerConfig`]) and its one builder — the same for CLI flags,
//! launch tables and studies — with the motion model and the initial-pose noise.

use super::RedetectConfig;
use crate::core::error::{Error, Result};
use crate::core::filter::{FilterKind, Preset};
use crate::domains::pose::modality::depth::DepthParams;
use crate::domains::pose::modality::region::RegionParams;
pub use crate::domains::pose::modality::views::Views;
use crate::domains::pose::modality::{parse_modalities, ModalityConfig, Needs, PoseChart};
use nalgebra::{Isometry3, Vector3, Vector6};
use std::str::FromStr;

/// Motion model of the reference prediction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MotionModel {
    /// `T̂_k = T_{k−1}`.
    RandomWalk,
    /// Repeat the last frame-to-frame increment.
    ConstantVelocity,
    /// Both predictions, each refined by the frame's rounds; the one whose refined poses the
    /// modalities fit better (lower data loss, motion prior excluded) is kept. Costs two
    /// refinements per frame; holds sustained motion (constant velocity) and stops and jerks
    /// (random walk) alike.
    BestOf,
    /// The frame's pace decides ([`TrackerConfig::fast_motion`]): the random walk on a slow
    /// frame; on a fast one the (damped, [`VELOCITY_DAMPING`]) constant velocity for
    /// `rfpf-newton`, both predictions ([`MotionModel::BestOf`]) for the other filters
    /// ([`TrackerConfig::predictions`]). The default.
    Auto,
}

impl MotionModel {
    /// The predictions a model refines: both for [`MotionModel::BestOf`] once a previous
    /// frame's estimate exists (`has_previous`; after an uncertain start, from its second frame
    /// on), the constant velocity for [`MotionModel::ConstantVelocity`], else the random walk.
    /// [`MotionModel::Auto`] stands for one of them per frame and filter: the tracker asks
    /// [`TrackerConfig::predictions`], which resolves it first.
    pub(super) fn candidates(self, has_previous: bool) -> &'static [MotionModel] {
        match (self, has_previous) {
            (MotionModel::BestOf, true) => {
                &[MotionModel::RandomWalk, MotionModel::ConstantVelocity]
            }
            (MotionModel::ConstantVelocity, _) => &[MotionModel::ConstantVelocity],
            _ => &[MotionModel::RandomWalk],
        }
    }
}

impl FromStr for MotionModel {
    type Err = Error;
    /// `random_walk`, `constant_velocity`, `best_of` or `auto`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "random_walk" => Ok(MotionModel::RandomWalk),
            "constant_velocity" => Ok(MotionModel::ConstantVelocity),
            "best_of" => Ok(MotionModel::BestOf),
            "auto" => Ok(MotionModel::Auto),
            other => Err(Error::param(
                "motion",
                other,
                "expected random_walk, constant_velocity, best_of or auto",
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

/// The largest start translation noise accepted (metres): farther off is a search for the
/// object, not a start near it.
pub const MAX_INIT_NOISE_M: f64 = 1.0;

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
        let translation = num(t, &[("mm", 1e-3), ("m", 1.0)])?;
        let rotation = num(r, &[("deg", std::f64::consts::PI / 180.0), ("rad", 1.0)])?;
        match (
            translation <= MAX_INIT_NOISE_M,
            rotation <= std::f64::consts::PI,
        ) {
            (false, _) => Err(bad(
                "the translation must be at most 1 m (a start, not a search)",
            )),
            (_, false) => Err(bad("the rotation must be at most 180 deg")),
            _ => Ok(InitNoise {
                translation,
                rotation,
            }),
        }
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

/// Everything the tracker needs to know besides the data.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackerConfig {
    /// Which filter (default `rfpf-newton` with the mean step: on the fast real-mesh sequences
    /// mean ADD-S 1.12–1.82 mm over filter seeds 0–2 on pairs 21–24 against rfpf's 3.59 (seed 0),
    /// at about a third of rfpf's time per frame; README, "The mean step; rfpf-newton the
    /// default").
    pub filter: FilterKind,
    /// The filter preset's parameters that differ from its defaults (keys of `filter`'s preset,
    /// e.g. `inflation = 1.0` for `rfpf-newton`; set through [`TrackerConfig::with_filter_params`]).
    /// The tracker's own step `eta` and Newton floor apply where these do not set them.
    pub filter_params: toml::Table,
    /// Particles per filter.
    pub particles: usize,
    /// Seed of every random stream.
    pub seed: u64,
    /// Modalities with their parameters, each with weight 1 (names in
    /// [`crate::domains::pose::modality::registry`]).
    pub modalities: Vec<ModalityConfig>,
    /// One joint filter over all objects instead of one per object.
    pub joint: bool,
    /// Reference prediction.
    pub motion: MotionModel,
    /// Constant-velocity prediction repeats this fraction of the last increment (1 = pure
    /// constant velocity; below 1 damps, so that a lost object's runaway estimate does not keep
    /// accelerating and a jerk's overshoot decays); unless configured the filter's own
    /// ([`default_velocity_damping`], read through [`TrackerConfig::velocity_damping`]).
    pub velocity_damping: Option<f64>,
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
    /// Filter updates on the first frame (0 is read as 1).
    pub init_updates: usize,
    /// Spread (m) at which modality length scales start to widen.
    pub coarse_scale: f64,
    /// Surface samples per object.
    pub surface_samples: usize,
    /// Pose hypotheses scored per round when starting from an uncertain (init-noise) pose.
    pub hypotheses: usize,
    /// Re-detection after loss (on by default; `None` turns it off).
    pub redetect: Option<RedetectConfig>,
    /// Whether the start poses are an estimate rather than the truth (set with
    /// [`Self::init_noise`], and by `hdpf track --init-results`): re-detection then waits
    /// [`RedetectConfig::noisy_warmup`] frames.
    pub uncertain_start: bool,
    /// Correspondence rounds per fast frame, at most (≥ 1; default [`DEFAULT_ROUNDS`]): each
    /// round prepares the modalities about the current estimate and runs one filter update (the
    /// mean step alone after [`Self::particle_rounds`]); the motion prior stays at the prediction.
    pub rounds: usize,
    /// Correspondence rounds of a slow frame (at most `rounds`; default [`SLOW_ROUNDS`]).
    pub slow_rounds: usize,
    /// The pace threshold (metres at the object's surface per frame, ≥ 0): a frame is fast for
    /// an object group when a member's last frame-to-frame motion `‖Δt‖ + r·|Δθ|` exceeds it,
    /// or when a slow refinement had to move a member's estimate that far from its prediction
    /// (the frame is then refined again, as fast). `0`: every frame is fast. Default
    /// [`FAST_MOTION`].
    pub fast_motion: f64,
    /// Coarse-to-fine factor: with several rounds, round `r < round_levels` widens the search
    /// range of the searching modalities (the region lines' segments) by
    /// `round_coarse^(round_levels − r)`; later rounds, and the other modalities (the depth
    /// kernel) in every round, use the spread-based factor alone.
    pub round_coarse: f64,
    /// Coarse levels before the fine rounds (with the defaults 2 and 3: region segments of
    /// 16 → 8 → 4 → 2 px, clamped to the modality's largest segment; ICG runs 6-4-2-1).
    pub round_levels: usize,
    /// A fine round that moves every estimate by less than this (state units, the largest
    /// coordinate of the mean update) ends the frame's rounds early.
    pub round_tol: f64,
    /// Whether each round ends with the mean step of a cloud (filters with more than one
    /// particle): the cloud translated by `δ = −(Σ̂⁻¹ + J(x̄))⁻¹ ∇L(x̄)`, one Gauss–Newton step
    /// of its mean trusted within its own covariance ([`crate::core::filter::mean_step`]). On by
    /// default: on the fast real-mesh sequences 21–24 it takes rfpf-newton's mean ADD-S from 2.79
    /// to 1.46 mm (README, "The mean step; rfpf-newton the default").
    pub mean_step: bool,
    /// Whether each object's depth term leaves out the readings that the other objects'
    /// estimates explain ([`crate::domains::pose::modality::ownership`]; on by default: from
    /// `--init-noise 20mm,10deg` on ycbv-mini it keeps YCB-V's wood block under the pudding box,
    /// which otherwise tilts 18° onto the box on two seeds of 16; README, "Depth ownership
    /// between objects").
    pub ownership: bool,
    /// Rounds of a frame in which the filter moves its particles (≥ 1; default
    /// [`PARTICLE_ROUNDS`]). A later round of a cloud with [`Self::mean_step`] on re-prepares the
    /// modalities and takes the mean step alone: one loss, gradient and curvature at the mean
    /// instead of an update of every particle. A group's first frame, and one hypothesis, move
    /// in every round.
    pub particle_rounds: usize,
    /// A cloud's filter update reads every `particle_stride`-th depth chunk and a scattered
    /// `1/particle_stride` of the region lines (≥ 1; `None`, the default: the filter's own
    /// [`default_particle_stride`], [`PARTICLE_STRIDE`] for rfpf-newton, 1 for the others; read
    /// through [`Self::particle_stride`];
    /// [`crate::domains::pose::modality::ThinnedModel`]): each particle's loss and gradient are
    /// estimated from that subset, as a minibatch would (also a Newton move's backtracking test,
    /// SIR's and MCL's weights and the per-particle losses published), while the Newton metric's
    /// curvature, the mean step, the judgement and re-detection read them all. One hypothesis
    /// (`gn`) always reads all.
    pub particle_stride: Option<usize>,
    /// Which of the depth and region modalities' selections come from each object's sparse
    /// viewpoint model ([`crate::domains::pose::modality::views`]: the nearest of 2562
    /// precomputed views, as ICG does) instead of a z-buffer and a silhouette at every prepared
    /// pose: none, the contour points, or the contour and visible points (default [`VIEWS`]).
    pub views: Views,
}

/// The modalities unless configured: depth and region. On the real ycbv-mini clips region adds
/// to depth (pooled over test/49 and train_real/2, ADD-S 1.74 → 1.65 mm); on fast motion it is
/// what holds an object sliding along a flat face, which depth cannot see (README, "Fast motion
/// on real YCB-V meshes").
pub fn default_modalities() -> Vec<ModalityConfig> {
    vec![
        ModalityConfig::new(DepthParams::default()),
        ModalityConfig::new(RegionParams::default()),
    ]
}

/// Correspondence rounds per fast frame unless configured: three coarse levels of the region
/// lines (16 → 8 → 4 px segments), then fine rounds until the estimate settles. On the fast
/// real-mesh sequences 8 rounds with both predictions hold what 2 or 4 lose (README, "Fast motion
/// on real YCB-V meshes").
pub const DEFAULT_ROUNDS: usize = 8;

/// Correspondence rounds per slow frame unless configured: the second round re-linearises the
/// modalities about the first round's estimate. On the real ycbv-mini clips (rfpf, 100 particles,
/// depth, ground-truth start, YCB-V points) two rounds give a pooled ADD / ADD-S of 2.58 / 1.74 mm
/// against 3.07 / 1.96 with one, and eight 3.0 / 1.9 (README, "6D pose tracking on real YCB-Video
/// clips").
pub const SLOW_ROUNDS: usize = 2;

/// Rounds that move the particles unless configured: the three coarse levels and the first two
/// fine rounds of a fast frame, both rounds of a slow one. Later fine rounds only translate the
/// cloud by its mean step: on the twelve fast real-mesh sequences (filter seeds 0–14) mean ADD-S
/// 1.62 → 1.61 mm at 0.85× the per-object p50; with 3, 1.69 mm at 0.69× (medians of per-run
/// ratios; README, "Particle moves in the first rounds only").
pub const PARTICLE_ROUNDS: usize = 5;

/// The stride of the correspondences rfpf-newton's particle moves read unless configured: 2,
/// every other depth chunk and a scattered half of the region lines. Chosen with [`VIEWS`]
/// (contour): the two together run at 0.60× the per-object p50 of stride 1 without views
/// and read level on the fast sequences (mean ADD-S over 162 runs on four sets 1.62 mm against
/// 1.64) and from ycbv-mini's ground truth; stride 3 loses objects held out (README, "Contour
/// views and stride 2: the default"). The other filters read every correspondence unless
/// configured ([`default_particle_stride`]).
pub const PARTICLE_STRIDE: usize = 2;

/// The stride of `filter`'s particle moves unless configured: [`PARTICLE_STRIDE`] for
/// rfpf-newton, whose Newton metric reads every correspondence; 1 for the others. The gradient
/// flows take their step from the thinned gradients alone, and rfpf lost accuracy at stride 2 on
/// the fast sequences (twelve, filter seeds 0–2, contour views: mean ADD-S 2.23 → 2.78 mm, runs
/// over 4 mm 2 → 5; grad level, 2.68 → 2.66 mm; README, "Contour views and stride 2: the
/// default").
pub fn default_particle_stride(filter: FilterKind) -> usize {
    match filter {
        FilterKind::RfpfNewton => PARTICLE_STRIDE,
        _ => 1,
    }
}

/// The fraction of the last increment `filter`'s constant-velocity prediction repeats unless
/// configured: [`VELOCITY_DAMPING`] for rfpf-newton, whose fast frames refine that prediction
/// alone ([`TrackerConfig::predictions`]); 1 for the others, which refine both predictions and
/// lost accuracy with the damped one in `bench pose` (held out 31–34: rfpf 2.07 → 4.84 mm, `gn`
/// 1.92 → 2.37, grad 3.35 → 5.14).
pub fn default_velocity_damping(filter: FilterKind) -> f64 {
    match filter {
        FilterKind::RfpfNewton => VELOCITY_DAMPING,
        _ => 1.0,
    }
}

/// Which selections come from the views ([`TrackerConfig::views`]) unless configured: the region
/// lines' contour points. The silhouette they replace was most of a fast frame's preparation;
/// views for the depth term's visible points too lose thin concave objects (the YCB clamps) more
/// often (README, "Contour views and stride 2: the default").
pub const VIEWS: Views = Views::Contour;

/// The fraction of the last increment a constant-velocity prediction repeats unless configured:
/// `T̂_k = chart(T_{k−1}).pose(0.85 · v)`. On the fast sequences, with the constant velocity alone
/// on fast frames, mean ADD-S read 1.46 mm at 0.85, 1.51 at 0.7 and 1.59 at 1 (twenty sequences ×
/// filter seeds 0–3), and 1.91 at 0.85 against 2.01 for the former default (both predictions) on
/// twelve sequences not used to choose it (README, "Damped constant velocity on fast frames: the
/// default").
pub const VELOCITY_DAMPING: f64 = 0.85;

/// The pace threshold unless configured: 6 mm of surface motion per frame. The real ycbv-mini
/// clips move at most 2.2 mm per frame (ground truth), the fast sequences 11–46 mm (10th
/// percentile 11 mm).
pub const FAST_MOTION: f64 = 0.006;

/// `n` if it is a valid count of rounds (`1..=20`: each round costs a preparation of the
/// modalities), else an error naming the parameter `name` and the value.
fn round_count(name: &str, n: usize) -> Result<usize> {
    match (1..=20).contains(&n) {
        true => Ok(n),
        false => Err(Error::param(name, n, "must lie in 1..=20")),
    }
}

/// `v` if it is finite and `≥ 0`, else an error naming the parameter `name` and the value, with
/// `why` ("must be finite and ≥ 0", perhaps with its unit).
fn non_negative(name: &str, v: f64, why: &str) -> Result<f64> {
    match v.is_finite() && v >= 0.0 {
        true => Ok(v),
        false => Err(Error::param(name, v, why)),
    }
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            filter: FilterKind::RfpfNewton,
            filter_params: toml::Table::new(),
            particles: 100,
            seed: 0,
            modalities: default_modalities(),
            joint: false,
            motion: MotionModel::Auto,
            velocity_damping: None,
            unit: 0.004,
            motion_sigma: (0.005, 2f64.to_radians()),
            process_noise: (0.001, 0.3f64.to_radians()),
            init_noise: None,
            eta: 0.06,
            init_updates: 1,
            coarse_scale: 0.008,
            surface_samples: 3000,
            hypotheses: 2000,
            redetect: Some(RedetectConfig::default()),
            uncertain_start: false,
            rounds: DEFAULT_ROUNDS,
            slow_rounds: SLOW_ROUNDS,
            fast_motion: FAST_MOTION,
            round_coarse: 2.0,
            round_levels: 3,
            round_tol: 0.1,
            mean_step: true,
            ownership: true,
            particle_rounds: PARTICLE_ROUNDS,
            particle_stride: None,
            views: VIEWS,
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

    /// The predictions a frame of the given pace refines (those [`Self::motion`] names), with
    /// [`MotionModel::Auto`]'s fast frames resolved for the filter: the damped constant velocity
    /// alone for `rfpf-newton` (as accurate as both on the fast sequences at about half the
    /// cost: README, "Damped constant velocity on fast frames: the default"), both predictions
    /// for the other filters, which lost accuracy with it in `bench pose` (`grad` 1.59 → 3.03 mm,
    /// `gn` 1.16 → 1.37 on 21–24, damped as rfpf-newton's).
    pub fn predictions(&self, has_previous: bool, fast: bool) -> &'static [MotionModel] {
        let motion = match self.motion {
            MotionModel::Auto if !fast => MotionModel::RandomWalk,
            MotionModel::Auto if self.filter == FilterKind::RfpfNewton => {
                MotionModel::ConstantVelocity
            }
            MotionModel::Auto => MotionModel::BestOf,
            m => m,
        };
        motion.candidates(has_previous)
    }

    /// The constant-velocity prediction's damping ([`Self::velocity_damping`]): as configured,
    /// else the filter's own [`default_velocity_damping`].
    pub fn velocity_damping(&self) -> f64 {
        (self.velocity_damping).unwrap_or_else(|| default_velocity_damping(self.filter))
    }

    /// The stride of a cloud's particle moves ([`Self::particle_stride`]): as configured, else
    /// the filter's own [`default_particle_stride`].
    pub fn particle_stride(&self) -> usize {
        (self.particle_stride).unwrap_or_else(|| default_particle_stride(self.filter))
    }

    /// With the filter preset's parameters `params` ([`TrackerConfig::filter_params`]); an error
    /// naming the keys when the preset has no such key, a value has the wrong type, or the
    /// parameters are out of range for a 6-D pose.
    pub fn with_filter_params(mut self, params: toml::Table) -> Result<Self> {
        Preset::with_overrides(self.filter, &params)?.validate(6)?;
        self.filter_params = params;
        Ok(self)
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
        self.uncertain_start = noise.is_some();
        self
    }

    /// With at most `rounds` correspondence rounds per fast frame (and per slow frame, if fewer
    /// than `slow_rounds`); an error naming `rounds` unless `1 ≤ rounds ≤ 20` (each round costs a
    /// preparation of the modalities and a filter update or a mean step).
    pub fn with_rounds(mut self, rounds: usize) -> Result<Self> {
        self.rounds = round_count("rounds", rounds)?;
        Ok(self)
    }

    /// With the particles moved in the first `particle_rounds` rounds of each frame
    /// ([`Self::particle_rounds`]); an error naming `particle_rounds` unless it lies in 1..=20.
    pub fn with_particle_rounds(mut self, particle_rounds: usize) -> Result<Self> {
        self.particle_rounds = round_count("particle_rounds", particle_rounds)?;
        Ok(self)
    }

    /// With a cloud's update reading about 1/`particle_stride` of the correspondences
    /// ([`Self::particle_stride`]); an error naming `particle_stride` unless it lies in 1..=20.
    pub fn with_particle_stride(mut self, particle_stride: usize) -> Result<Self> {
        self.particle_stride = Some(round_count("particle_stride", particle_stride)?);
        Ok(self)
    }

    /// With the constant-velocity damping `damping` ([`Self::velocity_damping`]; `None`: the
    /// filter's own); an error naming `velocity_damping` and the value unless it is finite and
    /// `≥ 0`.
    pub fn with_velocity_damping(mut self, damping: Option<f64>) -> Result<Self> {
        if let Some(d) = damping {
            non_negative("velocity_damping", d, "must be finite and ≥ 0")?;
        }
        self.velocity_damping = damping;
        Ok(self)
    }

    /// With `slow_rounds` rounds per slow frame and the pace threshold `fast_motion` (metres);
    /// an error naming the value unless `1 ≤ slow_rounds ≤ 20` and `fast_motion` is finite and
    /// `≥ 0`.
    pub fn with_pace(mut self, slow_rounds: usize, fast_motion: f64) -> Result<Self> {
        round_count("slow_rounds", slow_rounds)?;
        non_negative(
            "fast_motion",
            fast_motion,
            "must be finite and ≥ 0 (metres per frame)",
        )?;
        self.slow_rounds = slow_rounds;
        self.fast_motion = fast_motion;
        Ok(self)
    }

    /// [`Self::with_pace`] with the threshold in millimetres, as the CLI (`--fast-motion-mm`)
    /// and launch files (`fast_motion_mm`) take it; an error names `fast_motion_mm` and the value
    /// given unless it is finite and `≥ 0`.
    pub fn with_pace_mm(self, slow_rounds: usize, fast_motion_mm: f64) -> Result<Self> {
        if !(fast_motion_mm.is_finite() && fast_motion_mm >= 0.0) {
            return Err(Error::param(
                "fast_motion_mm",
                fast_motion_mm,
                "must be finite and ≥ 0 (millimetres of surface motion per frame)",
            ));
        }
        self.with_pace(slow_rounds, fast_motion_mm / 1e3)
    }

    /// Error naming the first field out of range: the fields are public, and a configuration
    /// built by hand (not through the `with_*` builders, which check their own) must not track
    /// silently with `rounds = 0`, a negative noise or a NaN step. [`super::Tracker::new`] calls it.
    pub fn validate(&self) -> Result<()> {
        if self.particles == 0 {
            return Err(Error::param("particles", 0, "need at least one particle"));
        }
        if self.modalities.is_empty() {
            return Err(Error::param(
                "modalities",
                "[]",
                "need at least one modality",
            ));
        }
        Preset::with_overrides(self.filter, &self.filter_params)?.validate(6)?;
        for (name, n) in [
            ("rounds", self.rounds),
            ("slow_rounds", self.slow_rounds),
            ("particle_rounds", self.particle_rounds),
            ("particle_stride", self.particle_stride()),
        ] {
            round_count(name, n)?;
        }
        let (ms, pn) = (self.motion_sigma, self.process_noise);
        let positive = [
            ("unit", self.unit),
            ("motion_sigma (translation)", ms.0),
            ("motion_sigma (rotation)", ms.1),
            ("eta", self.eta),
            ("coarse_scale", self.coarse_scale),
        ];
        let non_negative_values = [
            ("process_noise (translation)", pn.0),
            ("process_noise (rotation)", pn.1),
            ("fast_motion", self.fast_motion),
            ("round_tol", self.round_tol),
            ("velocity_damping", self.velocity_damping()),
        ];
        let bad = |v: f64, min_ok: bool| !(v.is_finite() && min_ok);
        if let Some((name, v)) = positive.into_iter().find(|&(_, v)| bad(v, v > 0.0)) {
            return Err(Error::param(name, v, "must be finite and > 0"));
        }
        for (name, v) in non_negative_values {
            non_negative(name, v, "must be finite and ≥ 0")?;
        }
        if bad(self.round_coarse, self.round_coarse >= 1.0) {
            return Err(Error::param(
                "round_coarse",
                self.round_coarse,
                "must be finite and ≥ 1",
            ));
        }
        for (name, n) in [
            ("surface_samples", self.surface_samples),
            ("hypotheses", self.hypotheses),
        ] {
            if n == 0 {
                return Err(Error::param(name, n, "must be ≥ 1"));
            }
        }
        Ok(())
    }

    /// Rounds of a frame of the given pace: `rounds` when fast, else `min(slow_rounds, rounds)`.
    pub(super) fn rounds_for(&self, fast: bool) -> usize {
        match fast {
            true => self.rounds,
            false => self.slow_rounds.min(self.rounds),
        }
        .max(1)
    }

    /// Whether the pace can change anything: fast and slow frames differ in their rounds or
    /// their predictions.
    pub(super) fn paced(&self) -> bool {
        self.rounds_for(false) < self.rounds_for(true) || self.motion == MotionModel::Auto
    }

    /// The covariance published for a re-detected object, whose particles restart about the
    /// winner at the motion σ: `diag(σ_t², σ_t², σ_t², σ_r², σ_r², σ_r²)` (m², rad²).
    pub fn restart_covariance(&self) -> nalgebra::Matrix6<f64> {
        let (t, r) = self.motion_sigma;
        let var = nalgebra::Vector6::new(t * t, t * t, t * t, r * r, r * r, r * r);
        nalgebra::Matrix6::from_diagonal(&var)
    }

    /// Hypotheses per filter: 1 for `gn` (one Gauss–Newton hypothesis), else `particles`.
    pub fn particles_per_filter(&self) -> usize {
        match self.filter {
            FilterKind::Gn => 1,
            _ => self.particles,
        }
    }

    /// The modality widening of round `r` (0-based) of a frame with spread factor `f ≥ 1`:
    /// `f · round_coarse^(round_levels − r)` while `r < round_levels` and the tracker has several
    /// rounds ([`Self::rounds`] > 1), `f` otherwise. Every frame counts its levels from its first
    /// round, so a slow frame of 2 rounds runs the two coarsest (the searching modalities'
    /// segments clamped to their largest), exactly as `rounds = 2` did before the pace: the
    /// configuration the ycbv-mini figures were measured with.
    pub(super) fn round_widen(&self, r: usize, f: f64) -> f64 {
        let level = self.round_levels.saturating_sub(r) as i32;
        match self.rounds > 1 {
            true => f * self.round_coarse.max(1.0).powi(level),
            false => f,
        }
    }

    /// Whether a slow frame's modalities are widened by the particle spread ([`super::pace`]):
    /// not for `rfpf-newton`, whose cloud keeps much of the propagated spread, except on the
    /// `first` frame after an uncertain start, whose spread is the start's error.
    pub(super) fn widens_slow_frames(&self, first: bool) -> bool {
        self.filter != FilterKind::RfpfNewton || (first && self.uncertain_start)
    }

    /// Whether round `r` (0-based) updates the filter of `particles` hypotheses: always on the
    /// group's `first` frame (from an uncertain start the cloud converges there from the start's
    /// error), for one hypothesis, or without the mean step (the round would do nothing), else
    /// while `r < particle_rounds`.
    pub(super) fn moves_particles(&self, r: usize, particles: usize, first: bool) -> bool {
        first || particles <= 1 || !self.mean_step || r < self.particle_rounds.max(1)
    }

    /// Whether round `r` may end the frame early (a fine round: `r ≥ max(1, round_levels)`).
    pub(super) fn may_stop_after(&self, r: usize) -> bool {
        r >= self.round_levels.max(1)
    }

    /// The images the modalities read.
    pub fn needs(&self) -> Needs {
        (self.modalities.iter()).fold(Needs::default(), |n, m| n.union(m.spec().needs()))
    }

    /// `D` for an object of the given radius.
    pub(super) fn scale(&self, radius: f64) -> Vector6<f64> {
        let r = self.unit / radius.max(self.unit);
        Vector6::new(self.unit, self.unit, self.unit, r, r, r)
    }

    /// A physical `(metres, radians)` σ pair in state units for scale `d`.
    pub(super) fn in_units(pair: (f64, f64), d: &Vector6<f64>) -> Vector6<f64> {
        Vector6::from_fn(|i, _| if i < 3 { pair.0 } else { pair.1 } / d[i])
    }

    /// Prior σ (state units) at the first frame: the init-noise spread per axis when larger than
    /// the motion σ.
    pub(super) fn initial_prior(&self, d: &Vector6<f64>) -> Vector6<f64> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A cloud moves its particles in the first `particle_rounds` rounds only, and only while
    /// the mean step is there to move it in the others; one hypothesis (`gn`) always updates.
    #[test]
    fn particles_move_in_the_first_particle_rounds_of_a_cloud_with_the_mean_step() {
        let c = TrackerConfig::default().with_particle_rounds(2).unwrap();
        let moves = |c: &TrackerConfig, n| (0..5).map(|r| c.moves_particles(r, n, false)).collect();
        let v: Vec<bool> = moves(&c, 100);
        assert_eq!(v, [true, true, false, false, false]);
        assert!(
            (0..5).all(|r| c.moves_particles(r, 100, true)),
            "a first frame moves always"
        );
        assert!(moves(&c, 1).into_iter().all(|m: bool| m));
        let off = TrackerConfig {
            mean_step: false,
            ..c
        };
        assert!(moves(&off, 100).into_iter().all(|m: bool| m));
        for bad in [0, 21] {
            let e = TrackerConfig::default()
                .with_particle_rounds(bad)
                .unwrap_err();
            assert!(e.to_string().contains("particle_rounds"), "{e}");
            let e = (TrackerConfig::default().with_particle_stride(bad)).unwrap_err();
            assert!(e.to_string().contains("particle_stride"), "{e}");
            let by_hand = TrackerConfig {
                particle_stride: Some(bad),
                ..TrackerConfig::default()
            };
            let e = by_hand.validate().unwrap_err();
            assert!(e.to_string().contains("particle_stride"), "{e}");
        }
    }

    #[test]
    fn the_velocity_damping_is_the_filters_own_unless_set_and_refuses_bad_values() {
        let newton = TrackerConfig::new(FilterKind::RfpfNewton, 10, 0);
        assert_eq!(newton.velocity_damping(), VELOCITY_DAMPING);
        assert_eq!(
            TrackerConfig::new(FilterKind::Sir, 10, 0).velocity_damping(),
            1.0
        );
        let set = newton.clone().with_velocity_damping(Some(0.5)).unwrap();
        assert_eq!(set.velocity_damping(), 0.5);
        let unset = set.with_velocity_damping(None).unwrap();
        assert_eq!(unset.velocity_damping(), VELOCITY_DAMPING);
        for bad in [-0.1, f64::NAN, f64::INFINITY] {
            let e = (newton.clone().with_velocity_damping(Some(bad))).unwrap_err();
            assert!(e.to_string().contains("velocity_damping"), "{e}");
        }
    }

    /// rfpf-newton's particle moves read the stride [`PARTICLE_STRIDE`] unless configured, every
    /// other filter every correspondence; the default configuration is rfpf-newton's.
    #[test]
    fn each_filter_gets_its_own_particle_stride_unless_configured() {
        assert_eq!(PARTICLE_STRIDE, 2);
        assert_eq!(TrackerConfig::default().particle_stride(), PARTICLE_STRIDE);
        for kind in [
            FilterKind::RfpfNewton,
            FilterKind::Rfpf,
            FilterKind::Grad,
            FilterKind::Sir,
        ] {
            let c = TrackerConfig::new(kind, 10, 0);
            let want = if kind == FilterKind::RfpfNewton { 2 } else { 1 };
            assert_eq!(c.particle_stride(), want, "{kind}");
            assert_eq!(
                c.with_particle_stride(3).unwrap().particle_stride(),
                3,
                "{kind}"
            );
        }
    }

    #[test]
    fn best_of_refines_both_predictions_once_there_is_a_velocity() {
        use MotionModel::*;
        let c = |motion| TrackerConfig {
            motion,
            ..TrackerConfig::default()
        };
        for fast in [false, true] {
            let best_of = c(BestOf);
            assert_eq!(
                best_of.predictions(true, fast),
                &[RandomWalk, ConstantVelocity]
            );
            assert_eq!(best_of.predictions(false, fast), &[RandomWalk]);
            let cv = c(ConstantVelocity).predictions(true, fast);
            assert_eq!(cv, &[ConstantVelocity]);
            assert_eq!(c(RandomWalk).predictions(true, fast), &[RandomWalk]);
        }
        assert_eq!("best_of".parse::<MotionModel>().unwrap(), BestOf);
        let e = "best".parse::<MotionModel>().unwrap_err().to_string();
        assert!(e.contains("motion") && e.contains("best_of"), "{e}");
    }

    #[test]
    fn auto_predicts_constant_velocity_on_fast_frames_only() {
        use MotionModel::*;
        assert_eq!("auto".parse::<MotionModel>().unwrap(), Auto);
        assert_eq!(TrackerConfig::default().motion, Auto);
        // Resolved per filter: rfpf-newton the constant velocity, the others both.
        let newton = TrackerConfig::new(FilterKind::RfpfNewton, 10, 0);
        assert_eq!(newton.predictions(true, true), &[ConstantVelocity]);
        assert_eq!(newton.predictions(true, false), &[RandomWalk]);
        for filter in [FilterKind::Gn, FilterKind::Rfpf, FilterKind::Sir] {
            let c = TrackerConfig::new(filter, 10, 0);
            assert_eq!(c.predictions(true, true), &[RandomWalk, ConstantVelocity]);
            assert_eq!(c.predictions(true, false), &[RandomWalk]);
            assert_eq!(c.predictions(false, true), &[RandomWalk]);
        }
    }

    #[test]
    fn the_pace_sets_the_rounds_and_refuses_bad_values() {
        let c = TrackerConfig::default();
        assert_eq!((c.rounds_for(true), c.rounds_for(false)), (8, 2));
        assert!(c.paced());
        // Slow rounds never exceed the fast frame's bound.
        let c = c.with_rounds(1).unwrap();
        assert_eq!((c.rounds_for(true), c.rounds_for(false)), (1, 1));
        let mut fixed = c.clone();
        fixed.motion = MotionModel::RandomWalk;
        assert!(!fixed.paced(), "one round and one prediction either way");
        for (slow, fast, field) in [
            (0, 0.006, "slow_rounds"),
            (21, 0.006, "slow_rounds"),
            (2, -1.0, "fast_motion"),
            (2, f64::NAN, "fast_motion"),
            (2, f64::INFINITY, "fast_motion"),
        ] {
            let e = TrackerConfig::default().with_pace(slow, fast).unwrap_err();
            assert!(e.to_string().contains(field), "{e}");
        }
        let c = TrackerConfig::default().with_pace(3, 0.0).unwrap();
        assert_eq!((c.slow_rounds, c.fast_motion), (3, 0.0));
    }

    #[test]
    fn rounds_run_coarse_to_fine_and_stop_early_only_when_fine() {
        let c = TrackerConfig::default().with_rounds(8).unwrap();
        // round_coarse 2, 3 levels: widening 8, 4, 2, then the spread factor alone.
        let widen: Vec<f64> = (0..6).map(|r| c.round_widen(r, 1.5)).collect();
        assert_eq!(widen, vec![12.0, 6.0, 3.0, 1.5, 1.5, 1.5]);
        assert!(!(0..3).any(|r| c.may_stop_after(r)));
        assert!(c.may_stop_after(3));
        // One round: no coarse level (the round sees the spread factor only).
        let one = TrackerConfig::default().with_rounds(1).unwrap();
        assert_eq!(one.round_widen(0, 1.5), 1.5);
        // No levels: the first round is fine and the second may stop.
        let flat = TrackerConfig {
            round_levels: 0,
            ..c
        };
        assert_eq!(flat.round_widen(0, 1.0), 1.0);
        assert!(!flat.may_stop_after(0) && flat.may_stop_after(1));
    }
}
