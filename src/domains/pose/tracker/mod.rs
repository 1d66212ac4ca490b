//! Multi-object 6D pose tracker: one particle filter per object (or one joint filter over all
//! objects, 6K dimensions) over the tangent coordinates of [`crate::domains::pose::modality`].
//!
//! Per frame and filter group:
//! 1. **Predict** each object's reference pose: random walk `T̂_k = T_{k−1}`, or constant velocity
//!    `T̂_k = chart(T_{k−1}).pose(v)` with `v = chart(T_{k−2}).coords(T_{k−1})` (the random walk
//!    until `T_{k−2}` exists: after an uncertain start, the start pose is no `T_{k−2}`). Particles
//!    keep their offsets `x_i` relative to the reference.
//! 2. **Observe**: prepare the modalities about `T̂_k` (by default the region lines' contour
//!    points from the object's nearest view and the depth term's visible points from a z-buffer
//!    at the round's reference pose; [`TrackerConfig::views`]), with
//!    length scales widened by `f = max(1, σ_pos / coarse_scale)` where `σ_pos` is the current particle
//!    spread in metres at the object's surface (coarse-to-fine from an uncertain start).
//! 3. **Filter**: one `Filter::update` (the filter propagates with the random-walk process noise,
//!    then moves or reweights). Newton moves (`rfpf-newton`, `gn`) read the model's Gauss–Newton
//!    curvature [`ObservationModel`]'s `Model::curvature` and take the motion prior's variance
//!    `s = mean_j (σ_motion,j/D_j)²` as their floor; `gn` keeps one hypothesis, started at `T̂_k`.
//!    A cloud's update reads every [`TrackerConfig::particle_stride`]-th correspondence
//!    ([`ObservationModel::thinned`]; [`PARTICLE_STRIDE`], 2, by default; `gn` reads all).
//! 4. **Mean step** (when [`TrackerConfig::mean_step`] is on and the filter keeps a cloud): the
//!    cloud is translated by one Gauss–Newton step of its mean on the round's loss, trusted within
//!    its own covariance, `δ = −(Σ̂⁻¹ + J(x̄))⁻¹ ∇L(x̄)` ([`crate::core::filter::mean_step`]).
//! 5. **Estimate** `T_k = T(D x̄)` with `x̄` the particle mean (unweighted for RF-PF/grad, weighted for
//!    SIR), then **re-centre**: `x_i ← D⁻¹ chart(T_k).coords(chart(T̂_k).pose(D x_i))`.
//! 6. **Rounds**: steps 2–5 repeat up to [`TrackerConfig::rounds`] times per fast frame and
//!    [`TrackerConfig::slow_rounds`] per slow one (the frame's pace, module `pace`), each round
//!    preparing the modalities about the last round's estimate (new correspondences) with the
//!    motion prior kept at the prediction, `½|(x − c)/s|²`, `c = D⁻¹ chart(T_r).coords(T̂_k)`, and
//!    no further process noise; the first [`TrackerConfig::round_levels`] of several rounds
//!    widen the length scales by powers of [`TrackerConfig::round_coarse`] (coarse to fine), and
//!    a fine round that moves the estimate by less than [`TrackerConfig::round_tol`] (state
//!    units) ends the frame. With the mean step on, a cloud's particles move in the first
//!    [`TrackerConfig::particle_rounds`] rounds only (every round of the group's first frame);
//!    later rounds skip step 3 and take the mean step alone.
//! 7. **Judge** each object: its detection loss at the estimate gives the tracking quality, the
//!    held flag (the loss jumped above its running level: the estimate is suspect, and with
//!    re-detection on the next prediction holds it) and the lost flag (held, and most of the
//!    visible model unexplained) ([`Judgement::quality`], [`Judgement::held`],
//!    [`Judgement::lost`]); a held object is re-detected when [`TrackerConfig::redetect`] is on.

//!
//! The tracker knows no modality by name: it prepares every configured modality once per frame
//! ([`crate::domains::pose::modality::ModalitySpec`]) and sums their per-object terms.
//! Re-detection after loss (module `redetect`) and the initial hypothesis search (`hypotheses`) are
//! components of their own that score with the same modalities. Module `groups` runs steps 1–7
//! for every filter group of a frame, the groups' rounds side by side, and then their readings for
//! the loss checks and what the modalities learn.

mod clock;
mod config;
mod covariance;
mod groups;
mod hypotheses;
mod judgement;
mod object;
mod pace;
mod redetect;

pub use crate::domains::pose::modality::{parse_modalities, RgbdFrame};
pub use config::{
    default_particle_stride, default_velocity_damping, InitNoise, MotionModel, TrackerConfig, Views,
};
pub use config::{
    DEFAULT_ROUNDS, FAST_MOTION, PARTICLE_ROUNDS, PARTICLE_STRIDE, SLOW_ROUNDS, VELOCITY_DAMPING,
    VIEWS,
};
pub use judgement::Judgement;
pub use object::ObjectModel;
pub use redetect::RedetectConfig;

use crate::core::error::{Error, Result};
use crate::core::filter::mean_step::mean_step;
use crate::core::filter::{Filter, FilterKind, FilterSpec, ParticleSet, Preset};
use crate::domains::pose::modality::ownership::{DepthOwnership, OwnershipParams};
use crate::domains::pose::modality::{FrameTerm, Memory, ObjectTerms, ObservationModel, PoseChart};
use nalgebra::{Isometry3, Matrix6, Vector3, Vector6};
use std::sync::Arc;
use std::time::Instant;

/// Halvings of a mean step whose loss rises before it is dropped.
const MEAN_STEP_HALVINGS: usize = 3;

/// Per-object state.
#[derive(Clone, Debug)]
struct ObjectState {
    estimate: Isometry3<f64>,
    /// The estimate one frame back, for the constant-velocity prediction and the pace; `None`
    /// until the second frame after an uncertain start (its start pose is no estimate).
    previous: Option<Isometry3<f64>>,
    /// Running level of the re-detection loss and the frames that fed it.
    level: Option<(f64, usize)>,
    /// Running level of the colour loss at good estimates (with re-detection on and a modality
    /// that keeps a colour model).
    colour_level: Option<f64>,
    /// Consecutive frames on which the loss trigger fired ([`Judgement::held`]).
    held: usize,
    /// The last estimate that did not trigger re-detection.
    good: Isometry3<f64>,
    /// The detection loss at the estimate this frame (see [`RedetectConfig`]; 0 when nothing is
    /// visible).
    detection: f64,
    /// The tracking quality of [`Judgement::quality`] this frame.
    quality: f64,
    /// The visible fraction of [`Judgement::visible`] this frame (at a re-detection's winner
    /// when one replaced the estimate).
    visible: f64,
}

/// The frame as every modality of the tracker prepared it (config order), shared by all objects.
struct FrameMaps {
    terms: Vec<Arc<dyn FrameTerm>>,
}

impl FrameMaps {
    /// Every modality of `config` prepared for `frame`, with the tracker's `memories` (one per
    /// modality, config order).
    fn prepare(
        config: &TrackerConfig,
        memories: &[Option<Memory>],
        frame: &RgbdFrame,
    ) -> Result<Self> {
        let terms = (config.modalities.iter().zip(memories))
            .map(|(m, mem)| match mem {
                Some(mem) => m.spec().prepare_tracked(frame, mem),
                None => m.spec().prepare_frame(frame),
            })
            .collect::<Result<_>>()?;
        Ok(Self { terms })
    }
}

/// A set of objects sharing one filter.
struct Group {
    members: Vec<usize>,
    filter: Option<Filter>,
}

/// One motion candidate's frame: its prediction, the refined charts and the filter after them.
struct Refined {
    predicted: Vec<PoseChart>,
    charts: Vec<PoseChart>,
    filter: Option<Filter>,
}

/// The result of one frame.
#[derive(Clone, Debug)]
pub struct FrameOutput {
    /// Estimated pose per object (tracker order).
    pub poses: Vec<Isometry3<f64>>,
    /// Wall-clock seconds per object for this frame: the frame's tracking time (decode
    /// excluded; the groups refined side by side, module `groups`) over its objects.
    pub seconds: Vec<f64>,
    /// Particle spread per object before the frame (metres at the surface; what the frame's
    /// modalities are widened by, where they are).
    pub spread: Vec<f64>,
    /// Per object: the particles as they were scored this frame — each particle's pose translation
    /// (camera frame, metres) and its loss (the group's loss, lower is better).
    pub particles: Vec<Vec<(Vector3<f64>, f64)>>,
    /// Per object: covariance of the pose in the tangent space of [`crate::core::geometry::se3`]
    /// at the estimate (m², rad²): a cloud's `Σ = Σ_i w_i ξ_i ξ_iᵀ` with `ξ_i = log(T_i · T̂⁻¹)`,
    /// one hypothesis's Laplace covariance (module `covariance`).
    pub covariance: Vec<Matrix6<f64>>,
    /// Per object: the effective sample size of its filter after this frame's last update.
    pub ess: Vec<f64>,
    /// Per object: the spread (standard deviation) of the particle losses of this frame's last
    /// filter update (rounds after [`TrackerConfig::particle_rounds`] update none).
    pub loss_std: Vec<f64>,
    /// Per object: whether re-detection ([`TrackerConfig::redetect`]) replaced its estimate
    /// this frame.
    pub redetected: Vec<bool>,
    /// Per object: what the tracker judged of its published estimate ([`Judgement`]).
    pub judgement: Vec<Judgement>,
}

/// The tracker: objects, their filters and current estimates.
pub struct Tracker {
    config: TrackerConfig,
    objects: Vec<ObjectModel>,
    states: Vec<ObjectState>,
    groups: Vec<Group>,
    frames: usize,
    /// Capture stamps seen, and the span of the frame being tracked ([`clock`]).
    clock: clock::FrameClock,
    span: clock::Span,
    /// What each modality learns online ([`crate::domains::pose::modality::ModalitySpec::memory`]).
    memories: Vec<Option<Memory>>,
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
        config.validate()?;
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
                colour_level: None,
                held: 0,
                good: estimate,
                detection: 0.0,
                quality: f64::NAN,
                visible: f64::NAN,
            })
            .collect();
        let memories = (config.modalities.iter())
            .map(|m| m.spec().memory())
            .collect();
        let objects = (objects.into_iter())
            .map(|o| o.with_views(config.views))
            .collect();
        Ok(Self {
            config,
            objects,
            states,
            groups,
            frames: 0,
            clock: Default::default(),
            span: Default::default(),
            memories,
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
    pub fn step(&mut self, frame: &RgbdFrame) -> Result<FrameOutput> {
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
            judgement: vec![Judgement::NONE; n],
        };
        frame.check()?;
        let cleaned = frame.with_valid_depth();
        let frame = cleaned.as_ref().unwrap_or(frame);
        let owned = self.with_ownership(frame);
        let frame = owned.as_ref().unwrap_or(frame);
        self.span = self.clock.advance(frame.stamp);
        let start = Instant::now();
        let maps = FrameMaps::prepare(&self.config, &self.memories, frame)?;
        self.step_groups(frame, &maps, &mut out)?;
        // The groups run side by side: the frame's time is split evenly between its objects.
        let per = start.elapsed().as_secs_f64() / n as f64;
        out.seconds.iter_mut().for_each(|s| *s = per);
        self.frames += 1;
        out.poses = self.estimates();
        Ok(out)
    }

    /// `frame` with the ownership of its depth readings among the objects at their current
    /// estimates ([`DepthOwnership`]), or `None` (the frame as it is) for a single object, a frame
    /// without depth, a tracker without the depth term, or with [`TrackerConfig::ownership`] off.
    fn with_ownership(&self, frame: &RgbdFrame) -> Option<RgbdFrame> {
        let depth = frame.depth.as_ref()?;
        let reads_depth = (self.config.modalities.iter()).any(|m| m.spec().name() == "depth");
        if self.objects.len() < 2 || !self.config.ownership || !reads_depth {
            return None;
        }
        let posed = |(object, state): (&ObjectModel, &ObjectState)| {
            let samples = object.points.samples().iter();
            samples.map(|s| state.estimate * s.p).collect()
        };
        let samples: Vec<Vec<_>> = self.objects.iter().zip(&self.states).map(posed).collect();
        let params = OwnershipParams::default();
        let ownership = DepthOwnership::new(depth, &frame.camera, &samples, &params);
        Some(frame.clone().with_ownership(ownership))
    }

    /// The correspondence rounds of one frame for group `g` from the `predicted` charts
    /// (module docs, steps 2–5), starting from `filter` (built at the first frame).
    fn run_rounds(
        &self,
        (g, members, spreads, first, rounds): pace::RoundsInput<'_>,
        predicted: Vec<PoseChart>,
        mut filter: Option<Filter>,
        frame: &RgbdFrame,
        maps: &FrameMaps,
        out: &mut FrameOutput,
    ) -> Result<Refined> {
        let mut charts = predicted.clone();
        // The diagnostics of the last update (a round without one reports them again).
        let mut diag = Default::default();
        for round in 0..rounds.max(1) {
            let terms = (members.iter().enumerate())
                .map(|(j, &k)| {
                    let f = self.widen(spreads[j]);
                    let widen = (f, self.config.round_widen(round, f));
                    let mut t =
                        self.object_terms_widened(k, &charts[j], frame, maps, widen, first)?;
                    if round > 0 {
                        // The prior stays at the prediction; the process noise was drawn once.
                        let c = charts[j].coords(&predicted[j].reference);
                        t.prior_centre = c.component_div(&t.scale);
                        t.process_sigma = Vector6::zeros();
                    }
                    Ok(t)
                })
                .collect::<Result<Vec<_>>>()?;
            let model = ObservationModel { objects: terms };
            let updates = match first && round == 0 {
                true => self.config.init_updates.max(1),
                false => 1,
            };
            let mut f = match filter.take() {
                Some(f) => f,
                None => self.build_filter(g, &model)?,
            };
            let n = f.particles().len();
            if self.config.moves_particles(round, n, first) {
                // A cloud's update reads about 1/`particle_stride` of the correspondences.
                let stride = if n > 1 {
                    self.config.particle_stride()
                } else {
                    1
                };
                let moves = model.thinned(stride);
                for _ in 0..updates {
                    diag = f.update(&moves)?;
                }
            }
            if self.config.mean_step && n > 1 {
                mean_step(&model, f.particles_mut(), MEAN_STEP_HALVINGS)?;
            }
            let settled =
                |moved| self.config.may_stop_after(round) && moved < self.config.round_tol;
            // Only the last round's estimate is published: the earlier rounds skip publishing
            // their cloud and covariance.
            let last = |moved| settled(moved) || round + 1 >= rounds.max(1);
            let est = (&mut f, &model, &diag);
            let moved = self.estimate_round(members, &mut charts, est, out, last);
            filter = Some(f);
            if settled(moved) {
                break;
            }
        }
        Ok(Refined {
            predicted,
            charts,
            filter,
        })
    }

    /// Let every modality learn from object `k`'s current estimate in `frame`
    /// ([`FrameTerm::learn`]); held objects teach nothing.
    fn learn(&self, k: usize, frame: &RgbdFrame, maps: &FrameMaps) {
        let (pose, pts) = (&self.states[k].estimate, &self.objects[k].points);
        for t in &maps.terms {
            t.learn(&frame.camera, k, pose, pts);
        }
    }

    /// The estimate of one round: each member's `T = chart(D x̄)` from the particle mean `x̄`,
    /// then the particles re-centred on it and `charts` moved to it. When `last(max |x̄|)` says
    /// this is the frame's last round, each member's particles, covariance and diagnostics are
    /// published into `out` first. Returns `max |x̄|` (state units), how far the round moved.
    fn estimate_round(
        &self,
        members: &[usize],
        charts: &mut [PoseChart],
        (filter, model, diag): (
            &mut Filter,
            &ObservationModel,
            &crate::core::filter::Diagnostics,
        ),
        out: &mut FrameOutput,
        last: impl Fn(f64) -> bool,
    ) -> f64 {
        let mean = filter.particles().mean();
        let moved = mean.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let publish = last(moved);
        for (j, &k) in members.iter().enumerate() {
            let scale = self.config.scale(self.objects[k].radius);
            let xbar = Vector6::from_fn(|i, _| mean[6 * j + i] * scale[i]);
            let est = charts[j].pose(&xbar);
            if publish {
                let p = filter.particles();
                let rows = (0..p.len()).map(|i| &p.particle(i)[6 * j..6 * j + 6]);
                let chart = (&scale, &charts[j]);
                let (weights, losses) = (p.weights(), filter.last_losses());
                let (cloud, cov) =
                    covariance::cloud_covariance(rows, &weights, losses, chart, &est);
                // One hypothesis has no spread of its own: the Laplace covariance of its posterior.
                let x = &mean.as_slice()[6 * j..6 * j + 6];
                let laplace =
                    || covariance::laplace_covariance(&model.objects[j], x, &charts[j], &est);
                out.covariance[k] = match p.len() {
                    1 => laplace().unwrap_or(cov),
                    _ => cov,
                };
                out.particles[k] = cloud;
                out.ess[k] = diag.ess;
                out.loss_std[k] = diag.loss_std;
            }
            let new_chart = PoseChart::new(est, &self.objects[k].centre);
            recentre(
                filter.particles_mut().as_mut_slice(),
                j,
                members.len(),
                &scale,
                &charts[j],
                &new_chart,
            );
            charts[j] = new_chart;
        }
        moved
    }

    /// Group `g`'s filter, with particles drawn from the first frame's prior.
    fn build_filter(&self, g: usize, model: &ObservationModel) -> Result<Filter> {
        let c = &self.config;
        let mut spec = FilterSpec::new(c.filter, c.particles, c.seed.wrapping_add(1000 * g as u64));
        spec.preset = Preset::with_overrides(c.filter, &c.filter_params)?;
        let set = |key: &str| c.filter_params.contains_key(key);
        // Presets with a gradient flow take the tracker's flow time step, unless the step is set.
        if let Some(flow) = spec
            .preset
            .gradient_flow_mut()
            .filter(|_| !set("eta") && !set("gamma"))
        {
            flow.eta = Some(c.eta);
        }
        // Newton moves take the motion prior's variance as their floor (state units²), unless set;
        // rfpf-newton does not backtrack unless told to (every round re-linearises, and a check
        // would cost a loss evaluation per particle per round).
        let floor = self.newton_floor(g);
        match &mut spec.preset {
            Preset::RfpfNewton(p) => {
                p.floor = p.floor.or(Some(floor));
                p.backtrack = if set("backtrack") { p.backtrack } else { 0 };
            }
            Preset::Gn(p) if !set("floor") => p.floor = floor,
            _ => {}
        }
        if c.filter != FilterKind::Gn {
            return spec.build(model);
        }
        // One hypothesis, at the initial pose.
        spec.particles = c.particles_per_filter();
        let m = 6 * self.groups[g].members.len();
        spec.build_with(ParticleSet::from_vec(1, m, vec![0.0; m])?)
    }

    /// The floor `s` of the Newton moves: the mean motion-prior variance per state coordinate
    /// of the group's objects, `s = mean_{k,j} (σ_motion,j / D_kj)²`.
    fn newton_floor(&self, g: usize) -> f64 {
        let members = &self.groups[g].members;
        let total: f64 = (members.iter())
            .map(|&k| {
                let d = self.config.scale(self.objects[k].radius);
                TrackerConfig::in_units(self.config.motion_sigma, &d)
                    .map(|s| s * s)
                    .sum()
            })
            .sum();
        total / (6 * members.len()) as f64
    }

    /// Reference chart of object `k` for this frame (motion-model prediction).
    fn predicted_chart(&self, k: usize, motion: MotionModel) -> PoseChart {
        let st = &self.states[k];
        let centre = &self.objects[k].centre;
        let here = PoseChart::new(st.estimate, centre);
        match (motion, st.previous) {
            (MotionModel::ConstantVelocity, Some(prev)) => {
                let v = PoseChart::new(prev, centre).coords(&st.estimate)
                    * (self.config.velocity_damping() * self.span.increments);
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
                .map(|s| (s * self.first_prior_fraction()).powi(2)),
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
        frame: &RgbdFrame,
        maps: &FrameMaps,
        spread: f64,
        first: bool,
    ) -> Result<ObjectTerms> {
        let f = self.widen(spread);
        self.object_terms_widened(k, chart, frame, maps, (f, f), first)
    }

    /// The modality widening `f = max(1, spread / coarse_scale)` for a particle `spread` (m).
    fn widen(&self, spread: f64) -> f64 {
        (spread / self.config.coarse_scale).max(1.0)
    }

    /// As [`Tracker::object_terms`] with the modalities widened directly: `(f, search)`, the
    /// searching modalities ([`FrameTerm::searches`]) by `search` (the round's coarse-to-fine
    /// level), the others by `f`.
    fn object_terms_widened(
        &self,
        k: usize,
        chart: &PoseChart,
        frame: &RgbdFrame,
        maps: &FrameMaps,
        (f, search): (f64, f64),
        first: bool,
    ) -> Result<ObjectTerms> {
        let c = &self.config;
        let pts = &self.objects[k].points;
        let modalities = (maps.terms.iter())
            .map(|m| {
                let widen = if m.searches() { search } else { f };
                (1.0, m.prepare(&frame.camera, chart, k, pts, widen))
            })
            .collect();
        let d = c.scale(self.objects[k].radius);
        // The random walk's σ grow as the square root of the periods the frame spans.
        let walk = self.span.periods.sqrt();
        let process = if first {
            Vector6::zeros()
        } else {
            TrackerConfig::in_units(c.process_noise, &d) * walk
        };
        Ok(ObjectTerms {
            modalities,
            scale: d,
            prior_sigma: if first {
                (c.initial_prior(&d) * self.first_prior_fraction())
                    .zip_map(&TrackerConfig::in_units(c.motion_sigma, &d), f64::max)
            } else {
                TrackerConfig::in_units(c.motion_sigma, &d) * walk
            },
            prior_centre: Vector6::zeros(),
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

#[cfg(test)]
pub(crate) mod tests {
    use super::redetect::{depth_behind, nearest_visible, window_depth, PixelGrid};
    use super::*;
    use crate::core::filter::presets::NewtonParams;
    use crate::core::filter::rng::StreamRng;
    use crate::core::filter::step::{Step, StepSize};
    use crate::core::filter::Model;
    use crate::core::geometry::camera::Camera;
    use crate::domains::pose::mesh::Mesh;
    use crate::domains::pose::modality::ImageF32;
    use rand::SeedableRng;
    use std::f64::consts::{FRAC_PI_2, PI};

    #[test]
    fn parses_init_noise_and_modalities() {
        let n: InitNoise = "20mm,10deg".parse().unwrap();
        assert!((n.translation - 0.02).abs() < 1e-12);
        assert!((n.rotation - 10f64.to_radians()).abs() < 1e-12);
        assert!("20mm".parse::<InitNoise>().is_err());
        assert!("x,1".parse::<InitNoise>().is_err());
        // Absurd magnitudes are refused by name, not tracked into a panic.
        for bad in ["1e308m,1", "2m,1", "20mm,1e300deg", "20mm,181"] {
            let e = bad.parse::<InitNoise>().unwrap_err().to_string();
            assert!(
                e.contains("init-noise") && e.contains("at most"),
                "{bad}: {e}"
            );
        }
        let names: Vec<&str> = (parse_modalities("depth,edge").unwrap().iter())
            .map(|m| m.spec().name())
            .collect();
        assert_eq!(names, ["depth", "edge"]);
        assert!(parse_modalities("sonar").is_err());
    }

    /// `c` on depth alone (the test frames have no colour), every frame with `c.rounds` rounds and
    /// the random walk unless a test sets another motion (no pace).
    pub(crate) fn depth_only(c: TrackerConfig) -> TrackerConfig {
        TrackerConfig {
            modalities: parse_modalities("depth").unwrap(),
            slow_rounds: c.rounds,
            motion: MotionModel::RandomWalk,
            ..c
        }
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
            modalities: parse_modalities("depth,depth-edge").unwrap(),
            ..TrackerConfig::default()
        };
        let mut tracker = Tracker::new(config, vec![cube()], vec![pose]).unwrap();
        let camera =
            Camera::from_k(&[100.0, 0.0, 32.0, 0.0, 100.0, 24.0, 0.0, 0.0, 1.0], 64, 48).unwrap();
        let image = |width, height, n| ImageF32 {
            width,
            height,
            data: vec![0.5; n],
        };
        let rgb = |w, h| Some(image::RgbImage::new(w, h));
        for (depth, rgb, named) in [
            (image(0, 0, 0), None, "depth"),
            (image(64, 48, 100), None, "depth"),
            (image(32, 24, 32 * 24), None, "depth"),
            (image(64, 48, 64 * 48), rgb(10, 48), "rgb"),
        ] {
            let frame = RgbdFrame::new(1, camera, rgb, Some(depth));
            let err = tracker.step(&frame).expect_err("rejected").to_string();
            assert!(err.contains(named), "{err}");
        }
    }

    #[test]
    fn a_pose_that_shows_nothing_of_the_object_is_not_scored_as_a_perfect_match() {
        let pose = Isometry3::translation(0.0, 0.0, 0.5);
        let tracker = Tracker::new(
            depth_only(TrackerConfig::default()),
            vec![cube()],
            vec![pose],
        )
        .unwrap();
        let camera =
            Camera::from_k(&[100.0, 0.0, 32.0, 0.0, 100.0, 24.0, 0.0, 0.0, 1.0], 64, 48).unwrap();
        let depth = ImageF32 {
            width: 64,
            height: 48,
            data: vec![0.475; 64 * 48],
        };
        let frame = RgbdFrame::new(1, camera, None, Some(depth));
        let maps = FrameMaps::prepare(&tracker.config, &tracker.memories, &frame).unwrap();
        let seen = tracker.detection_loss(0, &pose, &frame, &maps).unwrap();
        assert!(seen.is_some_and(f64::is_finite), "{seen:?}");
        for hidden in [
            Isometry3::translation(0.0, 0.0, -0.5),
            Isometry3::translation(3.0, 0.0, 0.5),
        ] {
            let loss = tracker.detection_loss(0, &hidden, &frame, &maps).unwrap();
            assert_eq!(loss, None);
        }
    }

    #[test]
    fn a_pose_over_missing_depth_judges_as_unexplained_not_as_a_perfect_fit() {
        // The rendered box on an empty background (depth 0 off the box): at the true pose the
        // detection loss is small; moved 10 cm sideways, onto missing depth, nearly every point
        // is unexplained (the tracking loss ignores missing depth; the detection judge must not).
        let (tracker, frame, maps, pose) = box_tracker();
        let at = |p: &Isometry3<f64>| tracker.detection_loss(0, p, &frame, &maps).unwrap();
        let true_loss = at(&pose).unwrap();
        let away = at(&(Isometry3::translation(0.1, 0.0, 0.0) * pose)).unwrap();
        assert!(true_loss < 0.2 && away > 0.9, "{true_loss} {away}");
    }

    /// Invalid depth pixels as ROS marks them (NaN, ±∞; REP 118) read as missing: the box tracks
    /// to the same poses as with those pixels at 0 (it failed with a non-finite Newton move). A
    /// camera that is not a pinhole and a NaN stamp are errors naming them.
    #[test]
    fn invalid_depth_pixels_read_as_missing_and_bad_cameras_are_refused() {
        let (frame, object, pose) = rendered_box();
        let depth = frame.depth.clone().unwrap();
        let (mut marked, mut zeroed) = (ImageF32::clone(&depth), ImageF32::clone(&depth));
        for (i, (m, z)) in marked.data.iter_mut().zip(&mut zeroed.data).enumerate() {
            if *m == 0.0 || i % 7 == 0 {
                *m = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][i % 3];
                *z = 0.0;
            }
        }
        let tracker = || {
            let config = depth_only(TrackerConfig::new(FilterKind::RfpfNewton, 20, 0));
            Tracker::new(config, vec![object.clone()], vec![pose]).unwrap()
        };
        let track = |d: ImageF32| {
            let f = RgbdFrame::new(1, frame.camera, None, Some(d));
            tracker().step(&f).map(|o| o.poses)
        };
        assert_eq!(track(marked).unwrap(), track(zeroed).unwrap());
        let mut bad = frame.clone();
        bad.camera.fx = f64::NAN;
        let e = tracker().step(&bad).unwrap_err().to_string();
        assert!(e.contains("cam_K"), "{e}");
        let e = tracker().step(&frame.clone().with_stamp(f64::NAN));
        assert!(e.unwrap_err().to_string().contains("stamp"));
    }

    /// A configuration built field by field is checked when the tracker is made: each bad field
    /// is named (`rounds = 0` used to track silently, a NaN step gave NaN poses).
    #[test]
    fn a_configuration_built_by_hand_is_checked() {
        let (_, object, pose) = rendered_box();
        type Edit = fn(&mut TrackerConfig);
        let cases: [(Edit, &str); 7] = [
            (|c| c.rounds = 0, "rounds = 0"),
            (
                |c| c.process_noise = (-1.0, 0.0),
                "process_noise (translation) = -1",
            ),
            (|c| c.eta = f64::NAN, "eta = NaN"),
            (|c| c.modalities.clear(), "modalities"),
            (|c| c.unit = 0.0, "unit = 0"),
            (
                |c| c.motion_sigma = (0.0, 0.0),
                "motion_sigma (translation) = 0",
            ),
            (|c| c.particles = 0, "particles = 0"),
        ];
        for (edit, needle) in cases {
            let mut config = TrackerConfig::default();
            edit(&mut config);
            let e = Tracker::new(config, vec![object.clone()], vec![pose]).err();
            let e = e.map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(needle), "{needle}: {e}");
        }
        assert!(TrackerConfig::default().validate().is_ok());
    }

    /// A depth-only tracker of [`rendered_box`] at its true pose, with the frame prepared.
    fn box_tracker() -> (Tracker, RgbdFrame, FrameMaps, Isometry3<f64>) {
        let (frame, object, pose) = rendered_box();
        let config = depth_only(TrackerConfig::default());
        let tracker = Tracker::new(config, vec![object], vec![pose]).unwrap();
        let maps = FrameMaps::prepare(&tracker.config, &tracker.memories, &frame).unwrap();
        (tracker, frame, maps, pose)
    }

    /// The observation model of [`box_tracker`]'s box about its true pose, at the fine scale.
    fn box_model() -> ObservationModel {
        let (tracker, frame, maps, _) = box_tracker();
        let chart = tracker.predicted_chart(0, MotionModel::RandomWalk);
        let terms = (tracker.object_terms(0, &chart, &frame, &maps, 0.0, false)).unwrap();
        ObservationModel {
            objects: vec![terms],
        }
    }

    /// A tilted box seen by a 320×240 camera: its rendered depth, the object and its pose.
    fn rendered_box() -> (RgbdFrame, ObjectModel, Isometry3<f64>) {
        let pose = Isometry3::new(
            Vector3::new(0.01, -0.005, 0.45),
            Vector3::new(0.5, -0.6, 0.3),
        );
        rendered_box_at(pose)
    }

    /// The box of [`rendered_box`] rendered (depth only) at `pose`.
    pub(crate) fn rendered_box_at(
        pose: Isometry3<f64>,
    ) -> (RgbdFrame, ObjectModel, Isometry3<f64>) {
        box_frame(pose, false)
    }

    /// [`rendered_box_at`], with the colour image when `colour` (the box light grey on a
    /// textured background, which gives the region modality contrast; the background colours
    /// only the colour image, so the depth is the same either way).
    fn box_frame(pose: Isometry3<f64>, colour: bool) -> (RgbdFrame, ObjectModel, Isometry3<f64>) {
        use crate::domains::pose::render::{render, Background, RenderObject, RenderOptions};
        let mesh = Mesh::cuboid(0.06, 0.04, 0.05).unwrap();
        let k = [500.0, 0.0, 160.0, 0.0, 500.0, 120.0, 0.0, 0.0, 1.0];
        let camera = Camera::from_k(&k, 320, 240).unwrap();
        let object = RenderObject {
            mesh: &mesh,
            pose,
            color: [200; 3],
        };
        let options = RenderOptions {
            background: Background::Texture { seed: 3 },
            ..RenderOptions::default()
        };
        let r = render(&camera, &[object], &options).unwrap();
        let rgb = colour.then(|| image::RgbImage::from_raw(320, 240, r.rgb.concat()).unwrap());
        let depth = ImageF32 {
            width: 320,
            height: 240,
            data: r.depth,
        };
        (
            RgbdFrame::new(1, camera, rgb, Some(depth)),
            ObjectModel::from_mesh(1, &mesh, 3000, 0).unwrap(),
            pose,
        )
    }

    /// The tracker model's curvature is the Hessian of its loss near the optimum: three faces of
    /// a box seen in its own rendered depth, the central finite differences (step 1e-4 state
    /// units = 0.4 µm) of the analytic gradient at 0.1 mm from the rendered pose. There the
    /// residuals are a few µm (Tukey weights 1 − O(10⁻⁶)) and the faces planar, so the
    /// Gauss–Newton curvature equals the Hessian up to the bilinear depth interpolation between
    /// pixels (depth is not affine in the pixel on a tilted face) and the f32 depth: 2 % of the
    /// largest entry bounds both here.
    #[test]
    fn the_tracker_models_curvature_is_the_finite_difference_hessian_near_the_optimum() {
        let model = box_model();
        let x = [0.02, -0.01, 0.015, 0.01, -0.02, 0.01];
        let mut j = vec![0.0f64; 36];
        assert!(model.curvature(&x, &mut j));
        let h = 1e-4;
        let mut fd = vec![0.0f64; 36];
        for c in 0..6 {
            let (mut xp, mut xm) = (x, x);
            xp[c] += h;
            xm[c] -= h;
            let (mut gp, mut gm) = (vec![0.0; 6], vec![0.0; 6]);
            model.loss_grad(&xp, &mut gp);
            model.loss_grad(&xm, &mut gm);
            (0..6).for_each(|r| fd[6 * r + c] = (gp[r] - gm[r]) / (2.0 * h));
        }
        let scale = fd.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let err = j
            .iter()
            .zip(&fd)
            .fold(0.0f64, |a, (p, q)| a.max((p - q).abs()));
        assert!(
            err < 0.02 * scale,
            "curvature off by {err} of {scale}: {j:?} vs {fd:?}"
        );
    }

    /// The particle moves' model ([`ObservationModel::thinned`], `particle_stride`) keeps the
    /// full model's curvature (the Newton metric) and prior, and is the full model at stride 1.
    #[test]
    fn a_thinned_model_keeps_the_full_curvature_and_prior() {
        let model = box_model();
        let x = [0.5, -0.3, 0.4, 0.2, -0.3, 0.1];
        let full = |m: &dyn Model| {
            let (mut g, mut j) = (vec![0.0; 6], vec![0.0; 36]);
            let l = m.loss_grad(&x, &mut g);
            assert!(m.curvature(&x, &mut j));
            (l.to_bits(), g, j)
        };
        assert_eq!(full(&model.thinned(1)), full(&model));
        let (thin, whole) = (full(&model.thinned(3)), full(&model));
        assert_eq!(thin.2, whole.2);
        assert_ne!(thin.0, whole.0);
        let (mut a, mut b) = (vec![0.0; 6], vec![0.0; 6]);
        model
            .thinned(3)
            .sample_prior(&mut StreamRng::seed_from_u64(5), &mut a);
        model.sample_prior(&mut StreamRng::seed_from_u64(5), &mut b);
        assert_eq!(a, b);
    }

    /// `gn` tracks one hypothesis at the initial pose, and `rfpf-newton` runs in the tracker,
    /// its particle moves reading all depth points or every third chunk of them
    /// (`particle_stride`), or its visible points taken from the box's views (`views`); all hold
    /// a static box from its true pose over 6 frames (seeded).
    /// `gn` within 0.1 mm (it starts at the optimum; measured 4 µm). `rfpf-newton` within 3 mm
    /// (measured 0.07–0.55 mm with either stride or the views, the mean step on; 1.9–2.2 mm before the mean
    /// step): its square-root rule keeps a cloud of about 4 mm here, because the robust depth
    /// loss is flatter than its curvature at the mean predicts at the prior's scale (Tukey
    /// weights 0.1–0.8 at 5–10 mm), so the per-particle residual correction undoes the
    /// contraction (the move's spread bound keeps it within the shrunk prior `Σ̂_α`).
    #[test]
    fn newton_filters_hold_a_static_box() {
        let (frame, object, pose) = rendered_box();
        let runs = [
            (FilterKind::Gn, 3, 1e-4, 1, Views::Off),
            (FilterKind::RfpfNewton, 1, 3e-3, 1, Views::Off),
            (FilterKind::RfpfNewton, 1, 3e-3, 3, Views::Off),
            (FilterKind::RfpfNewton, 1, 3e-3, 1, Views::On),
        ];
        for (kind, rounds, bound, stride, views) in runs {
            let config = TrackerConfig::new(kind, 20, 1).with_rounds(rounds).unwrap();
            let mut config = depth_only(config.with_particle_stride(stride).unwrap());
            config.views = views;
            let mut tracker = Tracker::new(config, vec![object.clone()], vec![pose]).unwrap();
            assert_eq!(tracker.objects()[0].points.views(), views);
            for _ in 0..6 {
                let out = tracker.step(&frame).unwrap();
                let err = (out.poses[0].translation.vector - pose.translation.vector).norm();
                println!("{kind} stride {stride}, views {views:?}: {err:e} m");
                assert!(
                    err < bound,
                    "{kind} stride {stride}, views {views:?}: {err} m"
                );
                assert_eq!(
                    out.particles[0].len(),
                    if kind == FilterKind::Gn { 1 } else { 20 }
                );
                assert!(
                    out.judgement[0].quality > 0.9 && !out.judgement[0].lost,
                    "{kind}: {out:?}"
                );
                // A covariance to publish, one hypothesis's too (its Laplace covariance): positive
                // definite, narrower than a centimetre in translation where the depth sees (σ 3 mm
                // over 50 points; the RF-PF cloud is the more cautious), and nowhere the 1e-16 m
                // or rad `gn` published before, a certainty no sensor gives. (Its wide directions, sliding along a face, are
                // bounded by the motion prior, seen from the camera's origin: left tangent.)
                let cov = out.covariance[0];
                let eig = cov
                    .fixed_view::<3, 3>(0, 0)
                    .symmetric_eigenvalues()
                    .map(f64::sqrt);
                assert!(cov.cholesky().is_some(), "{kind}: {cov}");
                assert!((1e-6..1e-2).contains(&eig.min()), "{kind}: {eig}");
                assert!(cov.diagonal().min() > 1e-12, "{kind}: {cov}");
            }
        }
    }

    /// The filter preset's parameters reach the filter the tracker builds; the tracker's own
    /// Newton floor applies only where they do not set it, and bad ones are refused up front.
    #[test]
    fn filter_params_reach_the_built_filter() {
        let (frame, object, pose) = rendered_box();
        // The Newton step of the filter `kind` with `params` builds, and the tracker's floor.
        let built = |kind, params: &str| {
            let c = TrackerConfig::new(kind, 8, 1).with_filter_params(params.parse().unwrap());
            let mut tracker =
                Tracker::new(depth_only(c.unwrap()), vec![object.clone()], vec![pose]).unwrap();
            tracker.step(&frame).unwrap();
            let steps = tracker.groups[0].filter.as_ref().unwrap().steps().to_vec();
            (steps, tracker.newton_floor(0))
        };
        let newton = |steps: &[Step]| {
            steps.iter().find_map(|s| match s {
                Step::Newton(c) => Some((c.inflation, c.floor)),
                _ => None,
            })
        };
        let (steps, floor) = built(FilterKind::RfpfNewton, "inflation = 1.5");
        assert_eq!(newton(&steps), Some((1.5, Some(floor))));
        let (steps, _) = built(FilterKind::RfpfNewton, "floor = 0.25");
        let inflation = NewtonParams::default().inflation;
        assert_eq!(newton(&steps), Some((inflation, Some(0.25))));
        // A step or floor the parameters set wins over the tracker's own.
        let (steps, _) = built(FilterKind::Rfpf, "eta = 0.5");
        let eta = |s: &Step| matches!(s, Step::Move(m) if m.step == StepSize::Eta(0.5));
        assert!(steps.iter().any(eta), "{steps:?}");
        let (steps, floor) = built(FilterKind::Gn, "");
        assert_eq!(newton(&steps), Some((1.0, Some(floor))));
        let (steps, _) = built(FilterKind::Gn, "floor = 0.25");
        assert_eq!(newton(&steps), Some((1.0, Some(0.25))));
        let bad = TrackerConfig::new(FilterKind::RfpfNewton, 8, 1)
            .with_filter_params("inflation = -1.0".parse().unwrap());
        assert!(bad.unwrap_err().to_string().contains("inflation"));
    }

    /// The box of the motion tests at frame `t`: sliding sideways 12 mm per frame (13 px).
    fn sliding_box(t: usize) -> Isometry3<f64> {
        let start = Isometry3::new(
            Vector3::new(-0.03, -0.005, 0.45),
            Vector3::new(0.5, -0.6, 0.3),
        );
        Isometry3::translation(0.012 * t as f64, 0.0, 0.0) * start
    }

    /// A box sliding sideways at 12 mm per frame (13 px) in its rendered depth, `gn` with 4
    /// rounds: the random-walk prediction lags (its motion prior, σ 5 mm, holds the estimate
    /// back; measured 0.31 mm behind at the last frame), while `best_of` refines the
    /// constant-velocity prediction too and keeps it once the motion is sustained (measured
    /// 4 µm). Deterministic rendering and one hypothesis, so the bounds are plain comparisons:
    /// best_of within 50 µm and at least 10× closer than the random walk. The prediction repeats
    /// the whole increment here (`velocity_damping = 1`): a damped one lags by its remainder,
    /// which the motion prior then holds back too (measured 54 µm at the default 0.85).
    #[test]
    fn best_of_keeps_the_constant_velocity_prediction_for_sustained_motion() {
        let (start, at) = (sliding_box(0), sliding_box);
        let frames: Vec<_> = (0..7).map(|t| rendered_box_at(at(t))).collect();
        let mut last = Vec::new();
        for motion in [MotionModel::RandomWalk, MotionModel::BestOf] {
            let mut config = depth_only(
                TrackerConfig::new(FilterKind::Gn, 1, 0)
                    .with_rounds(4)
                    .unwrap(),
            );
            (config.motion, config.velocity_damping) = (motion, Some(1.0));
            let object = frames[0].1.clone();
            let mut tracker = Tracker::new(config, vec![object], vec![start]).unwrap();
            let mut err = 0.0;
            for (t, (frame, _, _)) in frames.iter().enumerate() {
                let out = tracker.step(frame).unwrap();
                err = (out.poses[0].translation.vector - at(t).translation.vector).norm();
            }
            last.push(err);
        }
        assert!(
            last[1] < 5e-5 && 10.0 * last[1] < last[0],
            "random walk, best_of: {last:?} m"
        );
    }

    /// With the mean step on, a cloud's particles move in the first `particle_rounds` rounds of
    /// a frame only, and in every round of the first frame. A box sliding 12 mm per frame,
    /// rfpf-newton with 20 particles, every frame fast with 4 rounds (no early stop, one
    /// prediction), `particle_rounds = 1`: frame 1 updates 4 times, frames 2 and 3 once each.
    /// The rounds without an update report the last update's ESS and loss spread, not zeros.
    #[test]
    fn later_rounds_move_the_cloud_by_its_mean_step_alone() {
        let frames: Vec<_> = (0..3).map(|t| rendered_box_at(sliding_box(t))).collect();
        let config = TrackerConfig::new(FilterKind::RfpfNewton, 20, 0).with_rounds(4);
        let mut config = depth_only(config.unwrap().with_particle_rounds(1).unwrap());
        (config.motion, config.fast_motion) = (MotionModel::RandomWalk, 0.0);
        (config.round_tol, config.redetect) = (0.0, None);
        let object = frames[0].1.clone();
        let mut tracker = Tracker::new(config, vec![object], vec![sliding_box(0)]).unwrap();
        for (frame, _, _) in &frames {
            let out = tracker.step(frame).unwrap();
            assert!(out.ess[0] > 0.0 && out.loss_std[0] > 0.0, "{out:?}");
        }
        let filter = tracker.groups[0].filter.as_ref().unwrap();
        assert_eq!(filter.updates(), 4 + 1 + 1);
    }

    /// Re-detection refuses a placement whose centre lies inside the bounding box of another
    /// object tracked at its estimate, and allows it once that object is itself lost: two boxes
    /// 12 cm apart, object 0 placed on object 1's centre, 1 cm and 3 cm off it along the box's
    /// z axis (half-extent 2.5 cm), and back on its own box.
    #[test]
    fn a_search_does_not_place_an_object_inside_another_tracked_one() {
        let (a, b) = (sliding_box(0), sliding_box(10));
        let (_, object, _) = rendered_box_at(a);
        let objects = vec![object.clone(), object];
        let config = depth_only(TrackerConfig::default());
        let mut tracker = Tracker::new(config, objects, vec![a, b]).unwrap();
        let at = |dz: f64| b * Isometry3::translation(0.0, 0.0, dz);
        let inside = [at(0.0), at(0.01), at(0.03), a].map(|p| tracker.inside_another(0, &p));
        assert_eq!(inside, [true, true, false, false]);
        tracker.states[1].held = 1;
        assert!(
            !tracker.inside_another(0, &at(0.0)),
            "a lost neighbour excludes nothing"
        );
    }

    /// A search skips placements inside another tracked object: the frame shows one box, where
    /// object 1 is tracked, and lost object 0 is searched for from 36 mm beside it. The only fit
    /// is object 1's box, so the search returns a pose outside it (here the prediction); once
    /// object 1 is itself lost, the search places object 0 on that box.
    #[test]
    fn a_search_skips_placements_inside_another_tracked_object() {
        let (a, b) = (sliding_box(0), sliding_box(3));
        let (frame, object, _) = rendered_box_at(b);
        let config = depth_only(TrackerConfig::default());
        let mut tracker = Tracker::new(config, vec![object.clone(), object], vec![a, b]).unwrap();
        let maps = FrameMaps::prepare(&tracker.config, &tracker.memories, &frame).unwrap();
        let rd = RedetectConfig::default();
        let search = |tracker: &Tracker| {
            let (loss, at) =
                (tracker.search_lost(0, &a, &a, rd.reach(3), &rd, &frame, &maps)).unwrap();
            let c = nalgebra::Point3::from(tracker.objects[0].centre);
            (
                loss,
                (at * c - b * c).norm(),
                tracker.inside_another(0, &at),
            )
        };
        let (_, off_b, inside) = search(&tracker);
        assert!(
            !inside && off_b > 0.02,
            "placed {off_b} m from the tracked box"
        );
        tracker.states[1].held = 1;
        let (loss, off_b, _) = search(&tracker);
        // The refinement ends at the tracker's coarse scale: within 3 mm of the box, and
        // judging as a fit (outlier fraction below the trigger's floor).
        assert!(
            off_b < 0.003 && loss < rd.lost_floor,
            "{off_b} m, loss {loss}"
        );
    }

    /// The same sliding box at 30 Hz with frames 3 and 5 dropped (as a `latest` queue drops
    /// them), `gn` with the constant-velocity prediction: with capture stamps the prediction
    /// repeats the last increment over the gap ([`clock`]) and lands on the box (measured 10 µm
    /// after the gaps); without them it falls one increment (12 mm) short, and the motion prior
    /// about it holds the estimate back (measured 0.29 mm). Bounds: stamped within 50 µm after each gap and 10× closer than
    /// unstamped (deterministic rendering, one hypothesis; the whole increment repeated,
    /// `velocity_damping = 1`, as in the test above).
    #[test]
    fn capture_stamps_carry_the_constant_velocity_over_dropped_frames() {
        let (start, at) = (sliding_box(0), sliding_box);
        let kept = [0, 1, 2, 4, 6, 7];
        let mut after_gaps = Vec::new();
        for stamped in [false, true] {
            let mut config = depth_only(TrackerConfig::new(FilterKind::Gn, 1, 0));
            (config.motion, config.velocity_damping) = (MotionModel::ConstantVelocity, Some(1.0));
            let object = rendered_box_at(start).1;
            let mut tracker = Tracker::new(config, vec![object], vec![start]).unwrap();
            let mut worst = 0.0f64;
            for &t in &kept {
                let mut frame = rendered_box_at(at(t)).0;
                if stamped {
                    frame = frame.with_stamp(t as f64 / 30.0);
                }
                let out = tracker.step(&frame).unwrap();
                let err = (out.poses[0].translation.vector - at(t).translation.vector).norm();
                if t == 4 || t == 6 {
                    worst = worst.max(err);
                }
            }
            after_gaps.push(worst);
        }
        let [plain, stamped] = [after_gaps[0], after_gaps[1]];
        assert!(
            stamped < 5e-5 && 10.0 * stamped < plain,
            "after the gaps: unstamped {plain} m, stamped {stamped} m"
        );
    }

    /// The constant-velocity prediction repeats `velocity_damping` of the last increment (for
    /// rfpf-newton by default [`VELOCITY_DAMPING`], 0.85; 1 for the other filters): after a
    /// 10 mm step along x and a 0.1 rad turn about the object's centre, the prediction lies
    /// 8.5 mm and 0.085 rad further on.
    #[test]
    fn the_constant_velocity_prediction_repeats_the_damped_increment() {
        let start = sliding_box(0);
        let object = rendered_box_at(start).1;
        let config = depth_only(TrackerConfig::new(FilterKind::RfpfNewton, 10, 0));
        assert_eq!(config.velocity_damping(), VELOCITY_DAMPING);
        assert_eq!(
            TrackerConfig::new(FilterKind::Gn, 1, 0).velocity_damping(),
            1.0
        );
        let mut tracker = Tracker::new(config, vec![object], vec![start]).unwrap();
        let centre = tracker.objects[0].centre;
        let chart = PoseChart::new(start, &centre);
        let step = |f: f64| Vector6::new(0.01 * f, 0.0, 0.0, 0.0, 0.0, 0.1 * f);
        tracker.states[0].previous = Some(start);
        tracker.states[0].estimate = chart.pose(&step(1.0));
        let predicted = tracker.predicted_chart(0, MotionModel::ConstantVelocity);
        let moved =
            PoseChart::new(tracker.states[0].estimate, &centre).coords(&predicted.reference);
        assert!((moved - step(VELOCITY_DAMPING)).norm() < 1e-12, "{moved:?}");
        let held = tracker.predicted_chart(0, MotionModel::RandomWalk);
        assert_eq!(held.reference, tracker.states[0].estimate);
    }

    /// An uncertain start 8 mm off a box at rest: the first frame corrects the estimate by about
    /// 8 mm, which is not a motion, so the second frame's constant-velocity prediction is the
    /// first frame's estimate. Taking the correction as a velocity (the old rule) predicted the
    /// box a further 8 mm off (times the damping), on real clips pushing an object started from
    /// `--init-noise` into a wrong basin (README, "No velocity from an uncertain start's first
    /// frame").
    #[test]
    fn an_uncertain_starts_correction_is_not_taken_as_a_velocity() {
        let truth = sliding_box(0);
        let mut start = truth;
        start.translation.vector.x += 0.008;
        let (frame, object, _) = rendered_box_at(truth);
        let mut config = depth_only(TrackerConfig::new(FilterKind::Gn, 1, 0));
        config.motion = MotionModel::ConstantVelocity;
        config.uncertain_start = true;
        let mut tracker = Tracker::new(config, vec![object], vec![start]).unwrap();
        let out = tracker.step(&frame).unwrap();
        let corrected = (out.poses[0].translation.vector - start.translation.vector).norm();
        assert!(
            corrected > 0.006,
            "the first frame moved only {corrected} m"
        );
        let predicted = tracker.predicted_chart(0, MotionModel::ConstantVelocity);
        let ahead =
            (predicted.reference.translation.vector - out.poses[0].translation.vector).norm();
        assert!(ahead < 1e-12, "predicted {ahead} m away from the estimate");
    }

    /// The same seed gives the same poses whatever the thread count. Every parallel section of
    /// a frame runs: two object groups side by side (the box tracked twice, from two starts,
    /// one filter each), the hypothesis search of a noisy start, both predictions of fast
    /// frames side by side, the particle moves, and the re-detection search (its rotations'
    /// placements and its candidates' refinements side by side) after the box (sliding 12 mm
    /// per frame) jumps 5 cm at frame 5; rfpf-newton with 30 particles in pools of 1, 2 and 3
    /// threads, compared bit for bit.
    #[test]
    fn the_same_seed_gives_the_same_poses_with_one_two_and_three_threads() {
        let frames = jumping_box_frames();
        let run = || track_boxes(noisy_fast_config(), &frames, &[(0.006, 0.0), (0.0, -0.004)]);
        let pool = |t| rayon::ThreadPoolBuilder::new().num_threads(t).build();
        let one = pool(1).unwrap().install(run);
        assert!(one.iter().any(|o| o.2), "no re-detection ran: {one:?}");
        for threads in [2, 3] {
            assert_eq!(
                pool(threads).unwrap().install(run),
                one,
                "{threads} threads"
            );
        }
    }

    /// As the test above with the region modality beside the depth: each frame's readings at
    /// the new estimates (detection and colour losses) and the teaching of the colour statistics
    /// run side by side for the two boxes, and the poses, flags and judgements are the same, bit
    /// for bit, in pools of 1, 2 and 3 threads. The jump holds a box (judged by its readings)
    /// and both learn colours (a colour level is kept). This guards the thread count; that the
    /// phases give what the former one-object-after-another order gave was checked on recorded
    /// sequences (README, "Loss checks and learning side by side").
    #[test]
    fn judging_and_learning_colours_give_the_same_results_at_any_thread_count() {
        let at = |t: usize| Isometry3::translation(if t < 5 { 0.0 } else { 0.05 }, 0.0, 0.0);
        let frames: Vec<_> = (0..8)
            .map(|t| box_frame(at(t) * sliding_box(t), true))
            .collect();
        let config = TrackerConfig {
            modalities: parse_modalities("depth,region").unwrap(),
            ..noisy_fast_config()
        };
        let run = || {
            let starts = [(0.006, 0.0), (0.0, -0.004)]
                .map(|(x, y)| Isometry3::translation(x, y, 0.0) * sliding_box(0));
            let objects = vec![frames[0].1.clone(); 2];
            let mut tracker = Tracker::new(config.clone(), objects, starts.to_vec()).unwrap();
            let rows: Vec<_> = (frames.iter())
                .flat_map(|(frame, _, _)| {
                    let out = tracker.step(frame).unwrap();
                    (0..2)
                        .map(|k| {
                            let j = out.judgement[k];
                            let bits = [j.quality, j.visible].map(f64::to_bits);
                            let flags = (j.held, j.lost, out.redetected[k]);
                            (out.poses[k].to_homogeneous(), bits, flags)
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            let colours: Vec<_> = (tracker.states.iter())
                .map(|s| s.colour_level.map(f64::to_bits))
                .collect();
            (rows, colours)
        };
        let pool = |t| rayon::ThreadPoolBuilder::new().num_threads(t).build();
        let one = pool(1).unwrap().install(run);
        assert!(one.0.iter().any(|r| r.2 .0), "no box was held: {:?}", one.0);
        assert!(one.1.iter().all(Option::is_some), "{:?}", one.1);
        for threads in [2, 3] {
            assert_eq!(
                pool(threads).unwrap().install(run),
                one,
                "{threads} threads"
            );
        }
    }

    /// An object's poses do not depend on the objects tracked after it: the box tracked alone
    /// and first of two (the second from another start) gets the same poses, bit for bit, from
    /// the noisy start's search through the fast frames' rounds (re-detection off: a placement
    /// checks the other objects on purpose; depth ownership off: it leaves out the readings the
    /// other objects explain on purpose, and here the second is the same box).
    #[test]
    fn an_objects_poses_do_not_depend_on_the_objects_after_it() {
        let frames = jumping_box_frames();
        let config = TrackerConfig {
            redetect: None,
            ownership: false,
            ..noisy_fast_config()
        };
        let alone = track_boxes(config.clone(), &frames, &[(0.006, 0.0)]);
        let both = track_boxes(config, &frames, &[(0.006, 0.0), (0.0, -0.004)]);
        let first_of_two: Vec<_> = both.into_iter().step_by(2).collect();
        assert_eq!(alone, first_of_two);
    }

    /// The box of [`sliding_box`] sliding 12 mm per frame for 8 frames, 5 cm aside from frame 5.
    fn jumping_box_frames() -> Vec<(RgbdFrame, ObjectModel, Isometry3<f64>)> {
        let at = |t: usize| Isometry3::translation(if t < 5 { 0.0 } else { 0.05 }, 0.0, 0.0);
        (0..8)
            .map(|t| rendered_box_at(at(t) * sliding_box(t)))
            .collect()
    }

    /// rfpf-newton with 30 particles on depth from a noisy start, both predictions and 4
    /// rounds on every frame.
    fn noisy_fast_config() -> TrackerConfig {
        let mut config = depth_only(TrackerConfig::new(FilterKind::RfpfNewton, 30, 7));
        config.init_noise = Some(InitNoise {
            translation: 0.01,
            rotation: 0.05,
        });
        config.motion = MotionModel::BestOf;
        (config.fast_motion, config.rounds) = (0.0, 4);
        config
    }

    /// The box of `frames` tracked as one object per start, each start the true first pose
    /// shifted by `(x, y)` metres; per frame and object the pose, held, lost and re-detected
    /// flags.
    fn track_boxes(
        config: TrackerConfig,
        frames: &[(RgbdFrame, ObjectModel, Isometry3<f64>)],
        shifts: &[(f64, f64)],
    ) -> Vec<(nalgebra::Matrix4<f64>, bool, bool, bool)> {
        let starts = (shifts.iter())
            .map(|&(x, y)| Isometry3::translation(x, y, 0.0) * sliding_box(0))
            .collect();
        let objects = vec![frames[0].1.clone(); shifts.len()];
        let mut tracker = Tracker::new(config, objects, starts).unwrap();
        (frames.iter())
            .flat_map(|(frame, _, _)| {
                let out = tracker.step(frame).unwrap();
                (0..shifts.len())
                    .map(|k| {
                        (
                            out.poses[k].to_homogeneous(),
                            out.judgement[k].held,
                            out.judgement[k].lost,
                            out.redetected[k],
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// An object's start search does not depend on the objects searched before it: object 1's
    /// chosen start is the same, bit for bit, on its own and after object 0's search (the
    /// search once shrank every later object's spread to a quarter), and nearer the truth than
    /// its start.
    #[test]
    fn an_objects_start_search_does_not_depend_on_the_objects_before_it() {
        let (frame, object, truth) = rendered_box();
        let mut config = noisy_fast_config();
        config.hypotheses = 300;
        let mut start = truth;
        start.translation.vector.x += 0.006;
        let search = |after_another: bool| {
            let objects = vec![object.clone(); 2];
            let mut t = Tracker::new(config.clone(), objects, vec![start; 2]).unwrap();
            let maps = FrameMaps::prepare(&t.config, &t.memories, &frame).unwrap();
            if after_another {
                t.select_hypothesis(0, &frame, &maps).unwrap();
            }
            t.select_hypothesis(1, &frame, &maps).unwrap();
            t.states[1].estimate
        };
        let alone = search(false);
        assert_eq!(alone.to_homogeneous(), search(true).to_homogeneous());
        let off = |p: &Isometry3<f64>| (p.translation.vector - truth.translation.vector).norm();
        assert!(off(&alone) < off(&start), "{} m", off(&alone));
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
    fn no_learned_level_lets_a_winner_that_judges_as_lost_replace_the_estimate() {
        let rd = RedetectConfig::default();
        for loss in [0.0, 0.1, 0.4, 0.6, 0.9, 2.0, f64::INFINITY] {
            let level = rd.taught(loss);
            // A winner above `max_loss` never passes, however lost the estimate is …
            assert!(
                !rd.accepts(rd.max_loss + 1e-9, f64::INFINITY, level),
                "{loss}"
            );
            // … a winner that fits as the object did while tracked does, …
            assert!(rd.accepts(level.max(0.01), 1.0, level), "{loss}");
            // … and none that is not clearly better than the estimate it would replace.
            assert!(!rd.accepts(0.5, 0.5, level), "{loss}");
            // Nor does colour let in a winner above `max_loss`.
            let lost = (rd.max_loss + 1e-9, f64::INFINITY, level);
            assert!(
                !rd.accepts_winner(lost, || (Some(0.0), Some(1.0), None)),
                "{loss}"
            );
        }
    }

    /// The demo's box, well tracked (ADD 0.4 mm), read 0.26 and 0.36 against a level of 0.11
    /// and 0.14 as a face turned into view; with the former floor of 0.25 both frames
    /// triggered a search (each up to 200 ms) and a needless restart. Lost objects read
    /// 0.75–1.
    #[test]
    fn a_well_tracked_object_whose_loss_doubles_at_a_low_level_is_not_lost() {
        let rd = RedetectConfig::default();
        assert!(!rd.signals_loss(0.26, 0.105) && !rd.signals_loss(0.358, 0.14));
        assert!(rd.signals_loss(0.76, 0.3) && rd.signals_loss(0.95, 0.6));
        assert!(!rd.signals_loss(0.58, 0.4), "below ratio × level");
        // 1.6 × the level, over the floor: a loss since the trigger moved from 2 × to 1.5 ×.
        assert!(rd.signals_loss(0.65, 0.4), "above ratio × level");
    }

    /// A can seen from its side: the sensor at the centre's pixel reads the wall a radius in front
    /// of the centre, and that is what the placements add; the mean depth of the visible wall
    /// (about `2r/π` in front, the rule before 2026-12-06) would put them 11–15 mm too near.
    #[test]
    fn the_centre_lies_behind_the_surface_on_its_ray() {
        let r = 0.04;
        let mesh = crate::domains::pose::Mesh::cylinder(r, 0.03, 64).unwrap();
        let points = mesh.sample_surface(4000, 3);
        let cam = Camera {
            fx: 600.0,
            fy: 600.0,
            cx: 320.0,
            cy: 240.0,
            width: 640,
            height: 480,
        };
        // The axis along the camera's x: the side wall faces the camera.
        let pose = Isometry3::from_parts(
            nalgebra::Translation3::new(0.01, -0.02, 0.6),
            nalgebra::UnitQuaternion::from_axis_angle(&Vector3::y_axis(), FRAC_PI_2),
        );
        let vis = crate::domains::pose::modality::visible::VisibilityParams::default();
        let visible =
            crate::domains::pose::modality::visible::visible_points(&points, &pose, &cam, &vis);
        let c = pose.translation.vector;
        // Within 3 px (3 mm at 0.6 m) of the centre's ray the wall is at most 0.12 mm off r.
        let behind = depth_behind(&visible, &c, &cam, 3.0).unwrap();
        assert!((behind - r).abs() < 5e-4, "{behind}");
        let mean = c.z - visible.iter().map(|p| p.p.z).sum::<f64>() / visible.len() as f64;
        // 2r/π over the whole half wall; a little more (28.6 mm) without the grazing points
        // that the facing test drops, and still more than 1 cm short of r.
        assert!(mean > 2.0 * r / PI && r - mean > 0.01, "{mean}");
        // No visible point near the centre's ray (a ring, say): no depth behind; the visible
        // point projecting nearest the centre anchors the placements instead, on the wall 1 cm
        // to the side (its projection 10 px from the centre's, the ring's inner edge).
        let ring: Vec<_> = (visible.iter())
            .filter(|p| (p.p.x - c.x).abs() > 0.01)
            .cloned()
            .collect();
        assert_eq!(depth_behind(&ring, &c, &cam, 3.0), None);
        let a = nearest_visible(&ring, &c, &cam).unwrap();
        let ((au, av), (cu, cv)) = (cam.project_xyz(&a), cam.project_xyz(&c));
        let px = ((au - cu).powi(2) + (av - cv).powi(2)).sqrt();
        // On the ring's inner edge (1–1.2 cm to the side: the samples' spacing) and on the wall,
        // a radius in front of the centre up to the wall's curvature there (0.2 mm at 1.2 cm).
        let side = (a.x - c.x).abs();
        assert!(side < 0.012 && px < 11.0, "{a:?}, {px} px");
        assert!((c.z - a.z - r).abs() < 2e-3, "{a:?}");
        assert_eq!(depth_behind(&[], &c, &cam, 3.0), None);
        assert_eq!(nearest_visible(&[], &c, &cam), None);
    }

    /// A U of three bars (8 × 8 cm, arms 1.5 cm), whose box centre lies in the gap between its
    /// arms: `ObjectModel` and the rendered frame with the U at `pose` (camera 500 px, 320×240),
    /// a tilted background plane 30 cm behind it.
    fn rendered_u_at(pose: Isometry3<f64>) -> (RgbdFrame, ObjectModel) {
        use crate::domains::pose::render::{render, RenderObject, RenderOptions};
        let mut u = Mesh::cuboid(0.08, 0.015, 0.02).unwrap();
        for x in [-0.0325, 0.0325] {
            let arm = Mesh::cuboid(0.015, 0.065, 0.02).unwrap();
            let base = u.vertices.len() as u32;
            let shift = Vector3::new(x, 0.04, 0.0);
            u.vertices.extend(arm.vertices.iter().map(|v| v + shift));
            u.normals.extend(arm.normals);
            u.faces
                .extend(arm.faces.iter().map(|f| f.map(|i| i + base)));
        }
        let wall = Mesh::cuboid(1.0, 1.0, 0.01).unwrap();
        let k = [500.0, 0.0, 160.0, 0.0, 500.0, 120.0, 0.0, 0.0, 1.0];
        let camera = Camera::from_k(&k, 320, 240).unwrap();
        // Tilted 50°, so that the U's face, coplanar, fits no patch of it.
        let behind = Isometry3::new(
            Vector3::new(0.0, 0.0, pose.translation.z + 0.3),
            Vector3::new(0.0, 50f64.to_radians(), 0.0),
        );
        let objects = [(&u, pose), (&wall, behind)].map(|(mesh, pose)| RenderObject {
            mesh,
            pose,
            color: [200; 3],
        });
        let r = render(&camera, &objects, &RenderOptions::default()).unwrap();
        let depth = ImageF32 {
            width: 320,
            height: 240,
            data: r.depth,
        };
        let frame = RgbdFrame::new(1, camera, None, Some(depth));
        (frame, ObjectModel::from_mesh(1, &u, 3000, 0).unwrap())
    }

    /// A U slid 4 cm sideways and 3 cm nearer while lost, facing the camera: the sensor at its
    /// centre's pixel reads the wall 30 cm behind, so only the anchor (the visible point nearest
    /// the centre, on the U's base or an arm) places it at its own depth; the search finds it within 3 mm
    /// (measured: without the anchor, the winner lay 18 cm off, judging 0.90, as lost).
    #[test]
    fn a_search_places_an_object_whose_centre_lies_off_its_body() {
        let facing = nalgebra::UnitQuaternion::from_euler_angles(0.2, -0.15, 0.1);
        let truth = Isometry3::from_parts(nalgebra::Translation3::new(0.03, 0.0, 0.42), facing);
        let pred = Isometry3::from_parts(nalgebra::Translation3::new(-0.01, 0.01, 0.45), facing);
        let (frame, object) = rendered_u_at(truth);
        let c = truth * nalgebra::Point3::from(object.centre);
        let (cu, cv) = frame.camera.project_xyz(&c.coords);
        let sensed = window_depth(frame.depth.as_ref().unwrap(), (cu, cv), 2).unwrap();
        assert!(
            sensed > c.z + 0.2,
            "the centre's pixel shows the wall: {sensed}"
        );
        let config = depth_only(TrackerConfig::default());
        let tracker = Tracker::new(config, vec![object], vec![pred]).unwrap();
        let maps = FrameMaps::prepare(&tracker.config, &tracker.memories, &frame).unwrap();
        let rd = RedetectConfig::default();
        let (loss, at) =
            (tracker.search_lost(0, &pred, &pred, rd.reach(3), &rd, &frame, &maps)).unwrap();
        let centre = nalgebra::Point3::from(tracker.objects[0].centre);
        let off = (at * centre - truth * centre).norm();
        assert!(off < 0.003 && loss < rd.lost_floor, "{off} m, loss {loss}");
    }

    /// A winner that looks less like the object than the estimate it would replace (by more
    /// than the margin) is refused; without a colour judgement on either side, colour decides
    /// nothing.
    #[test]
    fn a_winner_must_look_like_the_object_as_much_as_its_estimate() {
        let rd = RedetectConfig::default();
        let m = rd.colour_margin;
        // The grey plate over s41's bottle: 0.49 against the estimate's 0.08.
        assert!(!rd.colour_accepts(Some(0.49), Some(0.08), None));
        assert!(!rd.colour_accepts(Some(0.3 + m + 1e-9), Some(0.3), None));
        assert!(rd.colour_accepts(Some(0.3 + m), Some(0.3), None));
        // A lost estimate on the background, its winner on the object.
        assert!(rd.colour_accepts(Some(0.06), Some(0.67), None));
        assert!(
            rd.colour_accepts(None, Some(0.1), None) && rd.colour_accepts(Some(0.9), None, None)
        );
        // s62's large marker, lost (its estimate reads 0.93): a placement on the occluder bar
        // (0.52) looks better than the estimate but not like the marker while tracked (0.16).
        assert!(rd.colour_accepts(Some(0.52), Some(0.93), None));
        assert!(!rd.colour_accepts(Some(0.52), Some(0.93), Some(0.16)));
        assert!(rd.colour_accepts(Some(0.16 + m), Some(0.93), Some(0.16)));
        assert!(!rd.colour_accepts(Some(0.16 + m + 1e-9), None, Some(0.16)));
    }

    /// Every frame an object is tracked teaches its running colour level (re-detection on, a
    /// modality with a colour model): a red box on a blue background, rendered with depth and
    /// colour, looks like itself (level near 0), and the level stays unset with re-detection off
    /// (nothing reads it) or without a colour model (depth alone).
    #[test]
    fn a_tracked_object_learns_its_colour_level() {
        use crate::domains::pose::modality::region::tests::red_on_blue;
        let pose = sliding_box(0);
        let (depth_frame, object, _) = rendered_box_at(pose);
        let mesh = Mesh::cuboid(0.06, 0.04, 0.05).unwrap();
        let rgb = red_on_blue(&depth_frame.camera, &mesh, pose);
        let depth = depth_frame.depth.as_deref().cloned();
        let frame = RgbdFrame::new(1, depth_frame.camera, Some(rgb), depth);
        let level = |config: TrackerConfig| {
            let mut tracker = Tracker::new(config, vec![object.clone()], vec![pose]).unwrap();
            for _ in 0..3 {
                tracker.step(&frame).unwrap();
            }
            tracker.states[0].colour_level
        };
        let with = level(TrackerConfig::default());
        // The box's colour loss at its pose: its visible points read red, whose posterior the
        // lines learned from red inside and blue outside; 0.1 leaves room for the pixels at the
        // silhouette's edge.
        assert!(with.is_some_and(|l| (0.0..0.1).contains(&l)), "{with:?}");
        let off = TrackerConfig {
            redetect: None,
            ..TrackerConfig::default()
        };
        assert_eq!(level(off), None);
        assert_eq!(level(depth_only(TrackerConfig::default())), None);
        // A held frame teaches the level nothing: the box gone out of view (missing
        // depth and blue where it was).
        let mut tracker = Tracker::new(TrackerConfig::default(), vec![object], vec![pose]).unwrap();
        for _ in 0..3 {
            tracker.step(&frame).unwrap();
        }
        let gone = sliding_box(40);
        let (empty, _, _) = rendered_box_at(gone);
        let blue = red_on_blue(&empty.camera, &mesh, gone);
        let empty = RgbdFrame::new(2, empty.camera, Some(blue), empty.depth.as_deref().cloned());
        let out = tracker.step(&empty).unwrap();
        assert!(out.judgement[0].held && out.judgement[0].lost, "{out:?}");
        assert_eq!(tracker.states[0].colour_level, with);
    }

    /// A box tracked in its rendered depth, then with its own silhouette pushed 5 cm nearer over
    /// the image columns holding the fraction `hidden` of its pixels (an occluder of its shape in
    /// front of that part): its fit turns far worse than its running level, so it is held, but
    /// with under 80 % of its visible model unexplained it is not reported lost (a partial
    /// occlusion); with all of it hidden, lost. The held estimate stays where the box is.
    /// (Re-detection off: the trigger judges with its defaults all the same.)
    #[test]
    fn a_partly_hidden_object_is_held_and_a_hidden_one_lost() {
        let pose = sliding_box(0);
        let (frame, object, _) = rendered_box_at(pose);
        let depth = frame.depth.as_deref().unwrap();
        let columns = |hidden: f64| {
            let mut us: Vec<usize> = (0..depth.data.len())
                .filter(|&i| depth.data[i] > 0.0)
                .map(|i| i % depth.width)
                .collect();
            us.sort_unstable();
            us[((us.len() - 1) as f64 * hidden) as usize]
        };
        let occluded = |hidden: f64| {
            let split = columns(hidden);
            let mut d = depth.clone();
            for (i, x) in d.data.iter_mut().enumerate() {
                if *x > 0.0 && i % d.width <= split {
                    *x -= 0.05;
                }
            }
            RgbdFrame::new(2, frame.camera, None, Some(d))
        };
        let track = |hidden: f64| {
            // Without re-detection, which would search the occluder's flat face (depth alone
            // has no colour to refuse it by).
            let config = TrackerConfig {
                redetect: None,
                ..depth_only(TrackerConfig::default())
            };
            let mut tracker = Tracker::new(config, vec![object.clone()], vec![pose]).unwrap();
            for _ in 0..4 {
                let out = tracker.step(&frame).unwrap();
                assert!(!out.judgement[0].held && !out.judgement[0].lost, "{out:?}");
                // In its own rendered depth nothing hides the box.
                assert_eq!(out.judgement[0].visible, 1.0, "{out:?}");
            }
            tracker.step(&occluded(hidden)).unwrap()
        };
        let half = track(0.6);
        // Quality is 1 − the detection loss: the hidden points (and the few over missing depth
        // at the silhouette) unexplained.
        let q = half.judgement[0].quality;
        assert!(
            half.judgement[0].held && !half.judgement[0].lost,
            "quality {q}: {half:?}"
        );
        assert!((0.2..0.5).contains(&q), "quality {q}");
        let off = (half.poses[0].translation.vector - pose.translation.vector).norm();
        assert!(off < 0.002, "{off} m");
        // The tracker's visible fraction counts surface points, not pixels, and drops those over
        // missing depth: 0.4 of the pixels unhidden reads within 0.1 of it.
        let v = half.judgement[0].visible;
        assert!((v - 0.4).abs() < 0.1, "visible {v}");
        let all = track(1.0);
        assert!(all.judgement[0].held && all.judgement[0].lost, "{all:?}");
        assert!(
            all.judgement[0].quality <= 0.2 && all.judgement[0].visible < 0.05,
            "{all:?}"
        );
    }

    /// s52's scissors, frame 16: placed within 2 mm of the truth but judging 0.438 against the
    /// 1.5 × 0.289 = 0.4335 the depth alone allows. Looking clearly more like the object than the
    /// estimate (colour loss 0.12 against 0.55) lets the winner in within the trigger's floor;
    /// nothing else does.
    #[test]
    fn a_winner_that_looks_clearly_more_like_the_object_needs_only_the_trigger_floor() {
        let rd = RedetectConfig::default();
        let depth = (0.438, 0.851, 0.289);
        assert!(!rd.accepts(depth.0, depth.1, depth.2));
        assert!(rd.accepts_winner(depth, || (Some(0.12), Some(0.55), None)));
        // No colour, or too little colour gain: the depth rule alone.
        assert!(!rd.accepts_winner(depth, || (None, Some(0.55), None)));
        assert!(!rd.accepts_winner(depth, || (Some(0.12), None, None)));
        assert!(!rd.accepts_winner(depth, || (Some(0.36), Some(0.55), None)));
        // Beyond the trigger's floor (0.547 on frame 14), or not clearly better than the estimate.
        assert!(!rd.accepts_winner((0.547, 0.898, 0.289), || (Some(0.11), Some(0.56), None)));
        // (an estimate of 0.54, just over the trigger's floor: 0.8 × 0.54 = 0.432 < 0.438)
        assert!(!rd.accepts_winner((0.438, 0.54, 0.289), || (Some(0.12), Some(0.55), None)));
        // At the floor itself the winner passes; with the gain turned off it does not.
        assert!(rd.accepts_winner((rd.lost_floor, 0.851, 0.289), || (
            Some(0.12),
            Some(0.55),
            None
        )));
        let off = RedetectConfig {
            colour_gain: f64::INFINITY,
            ..rd
        };
        assert!(!off.accepts_winner(depth, || (Some(0.12), Some(0.55), None)));
        // What the depth accepts still needs the colour margin: s41's plate on frame 18 …
        assert!(!rd.accepts_winner((0.351, 0.694, 0.317), || (Some(0.49), Some(0.08), None)));
        // … and passes with it: s52's scissors re-detected on frame 2.
        assert!(rd.accepts_winner((0.241, 0.602, 0.222), || (Some(0.06), Some(0.32), None)));
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
    fn searches_place_the_prediction_turned_about_each_camera_axis() {
        let rd = RedetectConfig {
            turn: 20f64.to_radians(),
            ..RedetectConfig::default()
        };
        let pred = nalgebra::UnitQuaternion::from_euler_angles(0.3, -0.2, 0.9);
        let good = nalgebra::UnitQuaternion::from_euler_angles(0.1, 0.0, 0.5);
        let all = rd.rotations(&pred, &good);
        assert_eq!((all.len(), all[0], all[1]), (8, pred, good));
        for (i, r) in all[2..].iter().enumerate() {
            // Each turn is `turn` from the prediction, about camera axis i / 2, sign by parity.
            let (axis, angle) = (r * pred.inverse()).axis_angle().unwrap();
            assert!((angle - rd.turn).abs() < 1e-12, "{i}: {angle}");
            assert!((axis[i / 2].abs() - 1.0).abs() < 1e-12, "{i}: {axis:?}");
        }
        let none = RedetectConfig {
            turn: 0.0,
            ..RedetectConfig::default()
        };
        assert_eq!(none.rotations(&pred, &pred), vec![pred]);
    }

    /// A box lost while it turned 45° about the viewing axis (and slid 1 cm) is found by a
    /// search that places the prediction turned by ±20° (the refinement closes the rest), and
    /// not by one at the prediction's rotation alone: that winner judges as lost. (At 25° the
    /// refinement alone closes the turn on this clean rendered box.)
    #[test]
    fn a_lost_object_that_turned_is_found_by_the_turned_placements() {
        let (tracker, _, _, pose) = box_tracker();
        let centre = pose * nalgebra::Point3::from(tracker.objects[0].centre);
        let turn =
            nalgebra::UnitQuaternion::from_axis_angle(&Vector3::z_axis(), 45f64.to_radians());
        let about = Isometry3::from_parts(nalgebra::Translation3::from(centre.coords), turn)
            * Isometry3::translation(-centre.x, -centre.y, -centre.z);
        let moved = Isometry3::translation(0.01, 0.0, 0.0) * about * pose;
        let (frame, _, _) = rendered_box_at(moved);
        let maps = FrameMaps::prepare(&tracker.config, &tracker.memories, &frame).unwrap();
        let found = |turn_deg: f64| {
            let rd = RedetectConfig {
                turn: turn_deg.to_radians(),
                ..RedetectConfig::default()
            };
            let (loss, at) = tracker
                .search_lost(0, &pose, &pose, rd.reach(0), &rd, &frame, &maps)
                .unwrap();
            let c = nalgebra::Point3::from(tracker.objects[0].centre);
            let err = (
                (at * c - moved * c).norm(),
                at.rotation.angle_to(&moved.rotation),
            );
            (loss, err, rd.accepts(loss, 1.0, 0.1))
        };
        let (with, without) = (found(20.0), found(0.0));
        println!("with turns {with:?}, without {without:?}");
        // The refinement's last steps run at the tracker's coarse scale (measured: 0.4 mm and
        // 2.3°): 3 mm and 5° are inside a tracking round's reach and far below the 45° turn and
        // 1 cm slide; without turns the winner sits 35° off.
        let (dc, da) = with.1;
        assert!(
            with.2 && dc < 0.003 && da < 5f64.to_radians(),
            "with turns: {with:?}"
        );
        assert!(!without.2, "without turns: {without:?}");
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

    /// The tracker builds the owners of the depth readings from its objects' estimates, in
    /// object order: of two boxes side by side in the rendered depth (the nearer one's edge over
    /// the farther one's), each owns its readings and not the other's; with ownership off, one
    /// object, or no depth term, it builds none.
    #[test]
    fn the_owners_come_from_the_objects_estimates_in_object_order() {
        use crate::domains::pose::render::{render, RenderObject, RenderOptions};
        let mesh = Mesh::cuboid(0.06, 0.04, 0.05).unwrap();
        let k = [500.0, 0.0, 160.0, 0.0, 500.0, 120.0, 0.0, 0.0, 1.0];
        let cam = Camera::from_k(&k, 320, 240).unwrap();
        let poses = [
            Isometry3::translation(-0.04, 0.0, 0.45),
            Isometry3::translation(0.02, 0.0, 0.40),
        ];
        let object = |pose: &Isometry3<f64>| RenderObject {
            mesh: &mesh,
            pose: *pose,
            color: [200; 3],
        };
        let objects: Vec<_> = poses.iter().map(object).collect();
        let r = render(&cam, &objects, &RenderOptions::default()).unwrap();
        let (width, height) = (320, 240);
        let depth = ImageF32 {
            width,
            height,
            data: r.depth,
        };
        let frame = RgbdFrame::new(0, cam, None, Some(depth));
        let model = ObjectModel::from_mesh(1, &mesh, 2000, 0).unwrap();
        let config = depth_only(TrackerConfig::new(FilterKind::Gn, 1, 0));
        let tracker = |config: &TrackerConfig, n: usize| {
            Tracker::new(config.clone(), vec![model.clone(); n], poses[..n].to_vec()).unwrap()
        };
        let owned = tracker(&config, 2).with_ownership(&frame).unwrap();
        let own = owned.ownership.as_ref().unwrap();
        let centre = |p: &Isometry3<f64>| {
            let (u, v) = cam.project_xyz(&p.translation.vector);
            (u.round() as usize, v.round() as usize)
        };
        let (a, b) = (centre(&poses[0]), centre(&poses[1]));
        let (m0, m1) = (own.mask_of(0).unwrap(), own.mask_of(1).unwrap());
        assert!(m0.foreign(b.0, b.1) && !m0.foreign(a.0, a.1));
        assert!(m1.foreign(a.0, a.1) && !m1.foreign(b.0, b.1));
        let off = TrackerConfig {
            ownership: false,
            ..config.clone()
        };
        assert!(tracker(&off, 2).with_ownership(&frame).is_none());
        assert!(tracker(&config, 1).with_ownership(&frame).is_none());
        let region = TrackerConfig {
            modalities: parse_modalities("region").unwrap(),
            ..config.clone()
        };
        assert!(tracker(&region, 2).with_ownership(&frame).is_none());
    }
}
