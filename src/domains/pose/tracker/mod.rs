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

//!
//! The tracker knows no modality by name: it prepares every configured modality once per frame
//! ([`crate::domains::pose::modality::ModalitySpec`]) and sums their per-object terms.
//! Re-detection after loss ([`redetect`]) and the initial hypothesis search ([`hypotheses`]) are
//! components of their own that score with the same modalities.

mod config;
mod hypotheses;
mod redetect;

pub use crate::domains::pose::modality::{parse_modalities, RgbdFrame};
pub use config::{InitNoise, MotionModel, TrackerConfig};
pub use redetect::RedetectConfig;

use crate::core::error::{Error, Result};
use crate::core::filter::{Filter, FilterSpec};
use crate::domains::pose::mesh::Mesh;
use crate::domains::pose::mesh::SurfacePoint;
use crate::domains::pose::modality::{FrameTerm, ObjectTerms, ObservationModel, PoseChart};
use nalgebra::{Isometry3, Matrix6, Vector3, Vector6};
use std::sync::Arc;
use std::time::Instant;

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

/// The frame as every modality of the tracker prepared it (config order), shared by all objects.
struct FrameMaps {
    terms: Vec<Arc<dyn FrameTerm>>,
}

impl FrameMaps {
    /// Every modality of `config` prepared for `frame`.
    fn prepare(config: &TrackerConfig, frame: &RgbdFrame) -> Result<Self> {
        let terms = (config.modalities.iter())
            .map(|m| m.spec().prepare_frame(frame))
            .collect::<Result<_>>()?;
        Ok(Self { terms })
    }
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
        };
        frame.check()?;
        let start = Instant::now();
        let maps = FrameMaps::prepare(&self.config, frame)?;
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

    fn step_group(
        &mut self,
        g: usize,
        frame: &RgbdFrame,
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

    /// Group `g`'s filter, with particles drawn from the first frame's prior.
    fn build_filter(&self, g: usize, model: &ObservationModel) -> Result<Filter> {
        let c = &self.config;
        let mut spec = FilterSpec::new(c.filter, c.particles, c.seed.wrapping_add(1000 * g as u64));
        // Presets with a gradient flow take the tracker's flow time step.
        if let Some(flow) = spec.preset.gradient_flow_mut() {
            flow.eta = Some(c.eta);
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
        frame: &RgbdFrame,
        maps: &FrameMaps,
        spread: f64,
        first: bool,
    ) -> Result<ObjectTerms> {
        let c = &self.config;
        let f = (spread / c.coarse_scale).max(1.0);
        let pts = &self.objects[k].points;
        let modalities = (maps.terms.iter())
            .map(|m| (1.0, m.prepare(&frame.camera, chart, pts, f)))
            .collect();
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
    use super::redetect::{window_depth, PixelGrid};
    use super::*;
    use crate::core::geometry::camera::Camera;
    use crate::domains::pose::modality::ImageF32;

    #[test]
    fn parses_init_noise_and_modalities() {
        let n: InitNoise = "20mm,10deg".parse().unwrap();
        assert!((n.translation - 0.02).abs() < 1e-12);
        assert!((n.rotation - 10f64.to_radians()).abs() < 1e-12);
        assert!("20mm".parse::<InitNoise>().is_err());
        assert!("x,1".parse::<InitNoise>().is_err());
        let names: Vec<&str> = (parse_modalities("depth,edge").unwrap().iter())
            .map(|m| m.spec().name())
            .collect();
        assert_eq!(names, ["depth", "edge"]);
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
        let tracker = Tracker::new(TrackerConfig::default(), vec![cube()], vec![pose]).unwrap();
        let camera =
            Camera::from_k(&[100.0, 0.0, 32.0, 0.0, 100.0, 24.0, 0.0, 0.0, 1.0], 64, 48).unwrap();
        let depth = ImageF32 {
            width: 64,
            height: 48,
            data: vec![0.475; 64 * 48],
        };
        let frame = RgbdFrame::new(1, camera, None, Some(depth));
        let maps = FrameMaps::prepare(&tracker.config, &frame).unwrap();
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
