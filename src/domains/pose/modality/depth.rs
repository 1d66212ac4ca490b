//! Depth modality: visible model points against the observed depth image by projective
//! association and robust point-to-plane residuals.
//!
//! For a model point `q` (camera frame) with rotated normal `n'`, project `(u, v) = π(q)`, read the
//! bilinearly interpolated depth `d(u, v)` and back-project `y = d · (q / q_z)` (the observed point on
//! the same ray). The point-to-plane residual is
//!
//! ```text
//!   r = n'·(q − y) = (n'·q)(1 − d/q_z)
//! ```
//!
//! and the per-point cost is `ρ(r)` for a robust kernel `ρ`, except that
//! - a depth discontinuity (the 4 interpolated pixels span more than `discontinuity`) costs 0
//!   (ignored); missing depth (any of the 4 pixels is 0) or a projection outside the image costs
//!   `missing_cost · ρ(reject)` (0 by default: ignored; the detection judge always uses 1);
//! - an occluded or far-off point, `q_z − d > reject`, costs the outlier constant `ρ(reject)` (capped);
//! - a *free-space violation*, `d − q_z > free_space` (the camera sees through the model), costs
//!   `free_space_factor · ρ(reject)`.
//!
//! The loss is `L = n_eff / (N σ²) · Σ_i cost_i`: `N` points treated as `n_eff` independent
//! measurements of noise `σ`. The gradient differentiates `d(u,v)` too (bilinear interpolation is
//! piecewise linear, so `L` is piecewise smooth):
//! `∂r/∂q = k n' + (n'·q)(−∇_q d / q_z + d/q_z² e_z)` with `k = 1 − d/q_z`, `∂r/∂n' = k q`.

use super::lanes::{
    avx2_or_baseline, cell_lanes, lane, place_lanes, rotate_lanes, Lane, CHUNK, ZERO,
};
use super::ownership::{DepthOwnership, ForeignMask};
use super::spec::{FrameTerm, ModalitySpec, Needs, PointCensus};
use super::views::Shape;
use super::visible::VisibilityParams;
use super::RgbdFrame;
use super::{
    loss_grad_by, loss_scale, thinned_scale, GradAccumulator, ImageF32, Modality, PoseChart,
    RigidMotion, Robust, SharedImage,
};
use crate::core::error::Result;
use crate::core::geometry::camera::Camera;
use crate::domains::pose::mesh::SurfacePoint;
use nalgebra::{Matrix6, Vector3, Vector6};
use std::sync::Arc;

/// Parameters of the depth modality (metres).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DepthParams {
    /// Robust kernel on the point-to-plane residual.
    pub robust: Robust,
    /// Depth noise σ.
    pub sigma: f64,
    /// Effective number of independent points.
    pub n_eff: f64,
    /// `q_z − d` beyond this is an outlier (occlusion or mismatch).
    pub reject: f64,
    /// `d − q_z` beyond this is a free-space violation.
    pub free_space: f64,
    /// Free-space violations cost this many outlier constants.
    pub free_space_factor: f64,
    /// Four interpolated pixels spanning more than this are a depth discontinuity (ignored).
    pub discontinuity: f64,
    /// Cost of a point that projects outside the image or onto missing depth, in outlier
    /// constants. 0 (the default) treats missing depth as uninformative, right for sensors that
    /// see a background behind the objects; when missing depth also means "nothing within range"
    /// (an empty synthetic background), a positive value keeps an estimate from escaping into
    /// empty space, where every point would otherwise cost nothing.
    pub missing_cost: f64,
    /// Visible-point selection.
    pub visibility: VisibilityParams,
}

impl Default for DepthParams {
    fn default() -> Self {
        Self {
            robust: Robust::Tukey(0.012),
            sigma: 0.003,
            n_eff: 50.0,
            reject: 0.02,
            free_space: 0.02,
            free_space_factor: 2.0,
            discontinuity: 0.03,
            missing_cost: 0.0,
            visibility: VisibilityParams {
                max_points: 300,
                ..Default::default()
            },
        }
    }
}

impl DepthParams {
    /// The same parameters with the kernel and thresholds (not σ) multiplied by `f ≥ 1`, for
    /// coarse-to-fine tracking from an uncertain start: far-off points still pull, with the same
    /// stiffness near the optimum.
    pub fn scaled(&self, f: f64) -> Self {
        Self {
            robust: self.robust.scaled(f),
            reject: self.reject * f,
            free_space: self.free_space * f,
            ..*self
        }
    }

    /// Cost of an outlier, `min(ρ(reject), cap)`.
    pub fn outlier_cost(&self) -> f64 {
        self.robust.rho(self.reject).min(self.robust.cap())
    }
}

impl ModalitySpec for DepthParams {
    fn name(&self) -> &'static str {
        "depth"
    }

    fn needs(&self) -> Needs {
        Needs {
            depth: true,
            grey: false,
        }
    }

    /// Nothing to compute per frame: the depth image itself.
    fn prepare_frame(&self, frame: &RgbdFrame) -> Result<Arc<dyn FrameTerm>> {
        Ok(Arc::new(DepthFrame {
            depth: frame.need_depth(self.name())?,
            ownership: frame.ownership.clone(),
            params: *self,
        }))
    }

    fn boxed(&self) -> Box<dyn ModalitySpec> {
        Box::new(*self)
    }
}

/// The depth modality prepared for one frame.
struct DepthFrame {
    depth: SharedImage,
    /// Which tracked object explains each reading near each object, when the tracker gave it.
    ownership: Option<Arc<DepthOwnership>>,
    params: DepthParams,
}

impl FrameTerm for DepthFrame {
    /// Kernel and thresholds widened by `widen` ([`DepthParams::scaled`]).
    fn prepare(
        &self,
        camera: &Camera,
        chart: &PoseChart,
        object: usize,
        shape: &Shape,
        widen: f64,
    ) -> Box<dyn Modality> {
        let params = self.params.scaled(widen);
        let foreign = (self.ownership.as_ref()).and_then(|o| o.mask_of(object));
        let depth = DepthModality::prepare(self.depth.clone(), *camera, chart, shape, params);
        Box::new(depth.with_foreign(foreign))
    }

    /// The loss at scale 1 divided by its outlier constant times `n_eff`, with points over
    /// missing depth (or outside the image) counted as outliers (`missing_cost = 1`) whatever
    /// the tracking parameters say: a detection must be seen. Otherwise a pose in empty space,
    /// where the sensor reads nothing, would judge as a perfect fit (on the fast synthetic
    /// sequences, whose background is empty, re-detection then raised mean ADD from 62 to
    /// 248 mm).
    fn detection_loss(
        &self,
        camera: &Camera,
        chart: &PoseChart,
        shape: &Shape,
    ) -> Option<Option<f64>> {
        let losses = self.shifted_detection_losses(camera, chart, shape, &[Vector3::zeros()])?;
        Some(losses.into_iter().next().flatten())
    }

    /// [`FrameTerm::detection_loss`] and the visible points counted by class
    /// ([`DepthModality::census`]; the missing cost does not change a point's class) from the
    /// one preparation.
    fn detection_census(
        &self,
        camera: &Camera,
        chart: &PoseChart,
        shape: &Shape,
    ) -> Option<(Option<f64>, PointCensus)> {
        let depth = self.prepare_detection(camera, chart, shape);
        let loss = (!depth.is_empty()).then(|| depth.detection_loss_at(&Vector3::zeros()));
        Some((loss, depth.census()))
    }

    /// The points visible at the reference, translated by each shift (the chart coordinates
    /// `ξ = [t; 0]`), scored in parallel. Points a shift moves off the image count as missing
    /// (one outlier each), where a modality prepared at the shifted pose would leave them out.
    /// With nothing visible at the reference, every shifted pose is scored with its own points.
    fn shifted_detection_losses(
        &self,
        camera: &Camera,
        chart: &PoseChart,
        shape: &Shape,
        shifts: &[Vector3<f64>],
    ) -> Option<Vec<Option<f64>>> {
        use rayon::prelude::*;
        let depth = self.prepare_detection(camera, chart, shape);
        if depth.is_empty() {
            // Nothing visible at the reference (off the image, say): the shifted poses may
            // still show the object, each to its own points (a zero shift is the reference).
            return match shifts.iter().all(|t| *t == Vector3::zeros()) {
                true => Some(vec![None; shifts.len()]),
                false => {
                    super::spec::detection_losses_one_by_one(self, camera, chart, shape, shifts)
                }
            };
        }
        let at = |t: &Vector3<f64>| Some(depth.detection_loss_at(t));
        Some(shifts.par_iter().map(at).collect())
    }
}

impl DepthFrame {
    /// The depth term prepared at `chart`'s reference for judging a detection: the tracking
    /// parameters, with points over missing depth (or outside the image) counted as outliers.
    fn prepare_detection(
        &self,
        camera: &Camera,
        chart: &PoseChart,
        shape: &Shape,
    ) -> DepthModality {
        let p = DepthParams {
            missing_cost: 1.0,
            ..self.params
        };
        DepthModality::prepare(self.depth.clone(), *camera, chart, shape, p)
    }
}

/// A prepared depth modality: centre-relative visible points and the frame's depth image.
pub struct DepthModality {
    depth: SharedImage,
    cam: Camera,
    centre: Vector3<f64>,
    /// Point minus centre, and normal, camera frame at the reference, in chunks.
    points: Vec<PointChunk>,
    params: DepthParams,
    norm: f64,
    /// [`DepthParams::outlier_cost`], computed once.
    outlier: f64,
    /// The cost of a missing point: `missing_cost` outlier constants, or 0 (ignored) unless
    /// `missing_cost > 0`.
    missing: f64,
    /// The readings other tracked objects explain, read as missing.
    foreign: Option<ForeignMask>,
}

/// The points of one chunk placed at a motion and classified, component by component (a
/// structure of arrays): the placement, the classification, the robust kernel (but Cauchy's
/// logarithm) and the gradient terms are loops over the lanes without branches, which the
/// compiler turns into vector instructions; the reads of the depth pixels and the sums go point
/// by point. Every value is finite for a finite motion, also in lanes that are not residuals;
/// their cost and gradient are selected away, not branched around (the classes depend on the
/// data, and a mispredicted branch discards the work of the points in flight), so that they
/// stay out of the sums also for a non-finite motion.
#[derive(Default)]
struct Lanes {
    /// Lanes in use (the last chunk may be short).
    len: usize,
    /// `R v`.
    rv: [Lane; 3],
    /// The camera-frame point `q = (c + ρ) + R v`.
    q: [Lane; 3],
    /// The rotated normal `n' = R n`.
    nr: [Lane; 3],
    /// `1/q_z`, 0 behind the camera (`q_z <` [`MIN_Z`]).
    iz: Lane,
    /// The projection `(u, v)`.
    uv: [Lane; 2],
    /// The four depth pixels around the projection (zeros behind the camera or off the image).
    px: [Lane; 4],
    /// The fractions of the projection within its pixel cell (zeros where `px` is).
    frac: [Lane; 2],
    /// Whether the projection fell on the image (false also behind the camera).
    inside: [bool; CHUNK],
    /// Whether the point is a residual `r = a·k` (`k = 1 − d/q_z`, `a = n'·q`, `d` the
    /// interpolated depth, `(du, dv)` its image gradient); otherwise it costs `constant` (that
    /// of a missing, free-space or outlier point; 0 when ignored).
    residual: [bool; CHUNK],
    /// The cost of a point that is not a residual.
    constant: Lane,
    /// `r = a·k`.
    r: Lane,
    /// `k = 1 − d/q_z`.
    k: Lane,
    /// `a = n'·q`.
    a: Lane,
    /// The interpolated depth `d`.
    d: Lane,
    /// `∂d/∂u`.
    du: Lane,
    /// `∂d/∂v`.
    dv: Lane,
}

impl DepthModality {
    /// Prepare about `chart` from the model's oriented surface samples (model frame) and the
    /// depth image (metres, 0 = missing).
    pub fn prepare(
        depth: SharedImage,
        cam: Camera,
        chart: &PoseChart,
        model: &Shape,
        params: DepthParams,
    ) -> Self {
        let visible = model.visible(&chart.reference, &cam, &params.visibility);
        let points = (visible.chunks(CHUNK))
            .map(|c| PointChunk::new(c, &chart.centre))
            .collect();
        let norm = loss_scale(params.n_eff, params.sigma, visible.len());
        Self {
            depth,
            cam,
            centre: chart.centre,
            points,
            params,
            norm,
            outlier: params.outlier_cost(),
            missing: match params.missing_cost > 0.0 {
                true => params.missing_cost * params.outlier_cost(),
                false => 0.0,
            },
            foreign: None,
        }
    }

    /// The same, reading the pixels that `foreign` marks as another object's as missing
    /// ([`super::ownership`]; `None`: every pixel as it is).
    pub fn with_foreign(mut self, foreign: Option<ForeignMask>) -> Self {
        self.foreign = foreign;
        self
    }

    /// Place `chunk` at `motion` and classify its points into `l` ([`Lanes`]). A point's pixel
    /// address depends on a long chain (rotation, division, projection); the chunk's addresses
    /// are all computed before its pixels are read, so the reads are independent and overlap.
    #[inline(always)]
    fn load(&self, motion: &RigidMotion, chunk: &PointChunk, l: &mut Lanes) {
        l.len = chunk.len;
        self.place(motion, chunk, l);
        let front = l.q[2].map(|z| z >= MIN_Z);
        cell_lanes(
            &self.depth,
            &l.uv,
            &front,
            &mut l.px,
            &mut l.frac,
            &mut l.inside,
        );
        if let Some(mask) = &self.foreign {
            mask.drop_foreign(&l.uv, &l.frac, &l.inside[..l.len], &mut l.px);
        }
        self.classify(l);
    }

    /// Place a chunk: `R v`, `q = (c + ρ) + R v`, `n' = R n`, `1/q_z` and the projection
    /// `(f_x q_x/q_z + c_x, f_y q_y/q_z + c_y)` with one division per point.
    #[inline(always)]
    fn place(&self, motion: &RigidMotion, chunk: &PointChunk, l: &mut Lanes) {
        rotate_lanes(&motion.rot, &chunk.v, &mut l.rv);
        rotate_lanes(&motion.rot, &chunk.n, &mut l.nr);
        l.q = place_lanes(motion, &self.centre, &l.rv);
        let cam = &self.cam;
        for j in 0..CHUNK {
            let (x, y, z) = (l.q[0][j], l.q[1][j], l.q[2][j]);
            let iz = if z < MIN_Z { 0.0 } else { 1.0 / z };
            l.iz[j] = iz;
            l.uv[0][j] = cam.fx * x * iz + cam.cx;
            l.uv[1][j] = cam.fy * y * iz + cam.cy;
        }
    }

    /// Classify a placed chunk (see [`Lanes`] and the module docs): behind the camera or across
    /// a discontinuity a point is ignored; missing depth or a projection off the image costs
    /// the missing constant (0 by default: ignored); then free space, outlier, residual.
    #[inline(always)]
    fn classify(&self, l: &mut Lanes) {
        let free_cost = self.params.free_space_factor * self.outlier;
        for j in 0..CHUNK {
            let (c, d, du, dv) = self.point_class(l, j);
            // The first class that applies, in the order of `PointClass`, as selects from the last.
            let cost = if c.outlier { self.outlier } else { 0.0 };
            let cost = if c.free { free_cost } else { cost };
            let cost = if c.disc { 0.0 } else { cost };
            let cost = if c.missing { self.missing } else { cost };
            l.constant[j] = if c.behind { 0.0 } else { cost };
            l.residual[j] = !(c.behind | c.missing | c.disc | c.free | c.outlier);
            let qz = l.q[2][j];
            let k = 1.0 - d * l.iz[j];
            let a = l.nr[0][j] * l.q[0][j] + l.nr[1][j] * l.q[1][j] + l.nr[2][j] * qz;
            (l.r[j], l.k[j], l.a[j], l.d[j], l.du[j], l.dv[j]) = (a * k, k, a, d, du, dv);
        }
    }

    /// The tests a placed chunk's point `j` meets (every one, not only the first that applies)
    /// and its interpolated depth `d` with its image gradient `(∂d/∂u, ∂d/∂v)`.
    #[inline(always)]
    fn point_class(&self, l: &Lanes, j: usize) -> (PointClass, f64, f64, f64) {
        let p = &self.params;
        let px = [l.px[0][j], l.px[1][j], l.px[2][j], l.px[3][j]];
        let (lo, hi) = px.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        });
        let (d, du, dv) = ImageF32::interpolate(&px, l.frac[0][j], l.frac[1][j]);
        let qz = l.q[2][j];
        let class = PointClass {
            behind: qz < MIN_Z,
            missing: !l.inside[j] | (lo <= 0.0),
            disc: hi - lo >= p.discontinuity,
            free: d - qz > p.free_space,
            outlier: qz - d > p.reject,
        };
        (class, d, du, dv)
    }

    /// The detection loss of the prepared points translated by `t` (chart coordinates
    /// `ξ = [t; 0]`): the loss times `σ²/(n_eff · ρ(reject))`, so that `n_eff/(Nσ²) Σ cost_i`
    /// becomes the mean cost in outlier constants (about the fraction of the visible points that
    /// are outliers, with the parameters of [`FrameTerm::detection_loss`]).
    fn detection_loss_at(&self, t: &Vector3<f64>) -> f64 {
        let p = &self.params;
        let scale = p.sigma * p.sigma / (p.n_eff * p.outlier_cost());
        self.loss(&Vector6::new(t.x, t.y, t.z, 0.0, 0.0, 0.0)) * scale
    }

    /// The points at the reference pose counted by the class that decides each
    /// ([`PointCensus`]), in the order of `PointClass`: behind the camera ignored; then missing
    /// depth or off the image unread; then across a depth discontinuity ignored; then free space
    /// (contradicted), outlier (hidden), fit.
    pub fn census(&self) -> PointCensus {
        let motion = RigidMotion::new(&Vector6::zeros());
        let (mut census, mut l) = (PointCensus::default(), Lanes::default());
        for chunk in &self.points {
            self.load(&motion, chunk, &mut l);
            for j in 0..l.len {
                let c = self.point_class(&l, j).0;
                let class = match () {
                    _ if c.behind => &mut census.ignored,
                    _ if c.missing => &mut census.unread,
                    _ if c.disc => &mut census.ignored,
                    _ if c.free => &mut census.contradicted,
                    _ if c.outlier => &mut census.hidden,
                    _ => &mut census.fit,
                };
                *class += 1;
            }
        }
        census
    }

    /// Add a chunk's loss gradient to `acc`, point by point in order: `∂r/∂q = k n' + a·∂k/∂q`
    /// with `∂k/∂q = (d/q_z e_z − ∇_q d)/q_z` and `∇_q d = J_πᵀ(du, dv)`, and `∂r/∂n' = k q`, each
    /// scaled by `s = n_eff/(Nσ²)·ψ(r)` (0 for a point that is not a residual).
    #[inline(always)]
    fn add_gradient(&self, l: &Lanes, psi: &Lane, norm: f64, acc: &mut GradAccumulator) {
        let (fx, fy) = (self.cam.fx, self.cam.fy);
        // Per lane `g_q`, `rv × g_q` and `n' × g_n`, then summed in point order.
        let (mut g_q, mut m_q, mut m_n) = ([ZERO; 3], [ZERO; 3], [ZERO; 3]);
        for j in 0..CHUNK {
            let (iz, q, nr) = (l.iz[j], lane(&l.q, j), lane(&l.nr, j));
            // `J_πᵀ(du, dv)` with `J_π = [f_x/z, 0, −f_x x/z²; 0, f_y/z, −f_y y/z²]`, summed as
            // nalgebra's `tr_mul` sums it.
            let jx = (fx * iz, -fx * q.x * iz * iz);
            let jy = (fy * iz, -fy * q.y * iz * iz);
            let (du, dv) = (l.du[j], l.dv[j]);
            let grad_d = Vector3::new(
                jx.0 * du + 0.0 * dv,
                0.0 * du + jy.0 * dv,
                jx.1 * du + jy.1 * dv,
            );
            let s = norm * psi[j];
            let dk = (Vector3::new(0.0, 0.0, l.d[j] * iz) - grad_d) * iz;
            let (k, a, res) = (l.k[j], l.a[j], l.residual[j]);
            // Selected after the products, so a non-finite motion adds no NaN.
            let zero = Vector3::zeros();
            let gq = (nr * k + dk * a) * s;
            let mq = if res { lane(&l.rv, j).cross(&gq) } else { zero };
            let mn = if res { nr.cross(&(q * (k * s))) } else { zero };
            let gq = if res { gq } else { zero };
            for i in 0..3 {
                (g_q[i][j], m_q[i][j], m_n[i][j]) = (gq[i], mq[i], mn[i]);
            }
        }
        for j in 0..l.len {
            acc.add_formed(&lane(&g_q, j), &lane(&m_q, j), &lane(&m_n, j));
        }
    }

    /// `L(ξ)` and `∂L/∂ξ` (into `grad`) by the baseline build alone, never the AVX2 one: the
    /// same bits as [`Modality::loss_grad`], for a benchmark's same-process baseline.
    pub fn loss_grad_baseline(&self, xi: &Vector6<f64>, grad: &mut Vector6<f64>) -> f64 {
        loss_grad_by(xi, grad, |motion, acc| self.evaluate_chunks(motion, acc, 1))
    }

    /// `L = n_eff/(Nσ²) Σ_i cost_i` over every `stride`-th chunk (rescaled by [`thinned_scale`])
    /// and, when `grad` is given, its gradient added there.
    #[inline(always)]
    fn evaluate_chunks(
        &self,
        motion: &RigidMotion,
        mut grad: Option<&mut GradAccumulator>,
        stride: usize,
    ) -> f64 {
        // The full scale without a pass over the chunks: this runs once per particle and round.
        let norm = match stride {
            1 => self.norm,
            _ => {
                let kept = self.points.iter().step_by(stride).map(|c| c.len).sum();
                thinned_scale(self.norm, self.len(), kept)
            }
        };
        let mut total = 0.0;
        let (mut cost, mut rho, mut psi) = (ZERO, ZERO, ZERO);
        let robust = self.params.robust;
        // A loop rather than a closure taking each chunk: such a closure, not inlined, was a
        // function of its own and not compiled for AVX2 with its caller.
        let mut l = Lanes::default();
        for chunk in self.points.iter().step_by(stride) {
            self.load(motion, chunk, &mut l);
            robust.rho_psi_lanes(&l.r, &mut rho, &mut psi);
            for j in 0..CHUNK {
                cost[j] = if l.residual[j] { rho[j] } else { l.constant[j] };
            }
            // In point order; adding 0 for an ignored point leaves the sum as it was.
            for c in &cost[..l.len] {
                total += c;
            }
            if let Some(acc) = grad.as_deref_mut() {
                self.add_gradient(&l, &psi, norm, acc);
            }
        }
        total * norm
    }

    /// [`DepthModality::evaluate_chunks`] compiled for AVX2.
    ///
    /// # Safety
    /// The processor must support AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn evaluate_avx2(
        &self,
        motion: &RigidMotion,
        grad: Option<&mut GradAccumulator>,
        stride: usize,
    ) -> f64 {
        self.evaluate_chunks(motion, grad, stride)
    }
}

/// Up to [`CHUNK`] centre-relative points `v` and normals `n` (camera frame at the reference),
/// component by component.
struct PointChunk {
    /// Points in the chunk; the lanes after them are zeros.
    len: usize,
    /// Point minus centre.
    v: [Lane; 3],
    /// Normal.
    n: [Lane; 3],
}

impl PointChunk {
    /// The chunk of `points` (at most [`CHUNK`]) relative to `centre`.
    fn new(points: &[SurfacePoint], centre: &Vector3<f64>) -> Self {
        let mut c = Self {
            len: points.len().min(CHUNK),
            v: [ZERO; 3],
            n: [ZERO; 3],
        };
        for (j, p) in points.iter().take(CHUNK).enumerate() {
            let v = p.p.coords - centre;
            for i in 0..3 {
                (c.v[i][j], c.n[i][j]) = (v[i], p.n[i]);
            }
        }
        c
    }
}

/// The tests a placed point meets, in their order of precedence: the first that holds decides
/// its cost ([`DepthModality::classify`]); a point that meets none is a residual.
#[derive(Clone, Copy)]
struct PointClass {
    /// Nearer the camera plane than [`MIN_Z`], or behind it: ignored.
    behind: bool,
    /// Off the image or over a missing pixel: the missing constant.
    missing: bool,
    /// Its four pixels span a depth discontinuity: ignored.
    disc: bool,
    /// The sensor sees past it (`d − q_z > free_space`): a free-space violation.
    free: bool,
    /// Something nearer hides it, or it is far off (`q_z − d > reject`): an outlier.
    outlier: bool,
}

/// Points nearer than this to the camera plane (metres), or behind it, are ignored.
const MIN_Z: f64 = 1e-3;

impl Modality for DepthModality {
    fn name(&self) -> &str {
        "depth"
    }

    /// The loss and gradient over the chunks (`DepthModality::evaluate_chunks`), compiled a
    /// second time for AVX2 and run that way where the processor has it: the lane loops then
    /// take four points per instruction instead of two. The two give the same bits (no fused
    /// multiply–add; every lane operation is the same IEEE operation).
    fn evaluate(&self, motion: &RigidMotion, grad: Option<&mut GradAccumulator>) -> f64 {
        self.evaluate_thinned(motion, grad, 1)
    }

    /// Every `stride`-th chunk of 16 points (the lanes stay full).
    fn evaluate_thinned(
        &self,
        motion: &RigidMotion,
        grad: Option<&mut GradAccumulator>,
        stride: usize,
    ) -> f64 {
        let stride = stride.max(1);
        avx2_or_baseline!(
            self.evaluate_avx2(motion, grad, stride),
            self.evaluate_chunks(motion, grad, stride)
        )
    }

    /// `H = n_eff/(Nσ²) Σ J_iᵀJ_i` with `J_i = [n_iᵀ, (v_i × n_i)ᵀ]` (association held fixed).
    fn curvature(&self) -> Matrix6<f64> {
        let mut h = Matrix6::zeros();
        for c in &self.points {
            for j in 0..c.len {
                let (v, n) = (lane(&c.v, j), lane(&c.n, j));
                let vn = v.cross(&n);
                let jac = Vector6::new(n.x, n.y, n.z, vn.x, vn.y, vn.z);
                h += jac * jac.transpose();
            }
        }
        h * self.norm
    }

    /// `H(ξ) = n_eff/(Nσ²) Σ_i w_i J_iJ_iᵀ` over the residual points at `motion`, with the
    /// point-to-plane Jacobian `J_i = [n_i'; J_lᵀ (R v_i × n_i')]` (association held fixed,
    /// `n_i' = R n_i`) and the IRLS weight `w_i = ψ(r_i)/r_i` (1 at `r = 0`); outliers, missing
    /// depth and discontinuities weigh 0. At a zero-residual fit of a locally planar surface this
    /// is the exact Hessian of the loss.
    fn curvature_at(&self, motion: &RigidMotion) -> Matrix6<f64> {
        let mut h = Matrix6::zeros();
        let mut l = Lanes::default();
        for chunk in &self.points {
            self.load(motion, chunk, &mut l);
            for j in (0..l.len).filter(|&j| l.residual[j]) {
                let r = l.r[j];
                let w = match r.abs() > 1e-12 {
                    true => self.params.robust.psi(r) / r,
                    false => 1.0,
                };
                let nr = lane(&l.nr, j);
                let m = motion.jl.tr_mul(&lane(&l.rv, j).cross(&nr));
                let jac = Vector6::new(nr.x, nr.y, nr.z, m.x, m.y, m.z);
                h += jac * jac.transpose() * w.max(0.0);
            }
        }
        h * self.norm
    }

    fn len(&self) -> usize {
        self.points.iter().map(|c| c.len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::Isometry3;
    use std::sync::Arc;

    use nalgebra::Point3;

    fn cam() -> Camera {
        Camera {
            fx: 400.0,
            fy: 400.0,
            cx: 80.0,
            cy: 60.0,
            width: 160,
            height: 120,
        }
    }

    /// A tilted, gently curved observed surface `z(x, y)` rendered as a depth image.
    fn surface_depth(cam: &Camera) -> ImageF32 {
        let (w, h) = (cam.width as usize, cam.height as usize);
        let mut data = vec![0.0f32; w * h];
        for y in 0..h {
            for x in 0..w {
                let (rx, ry) = ((x as f64 - cam.cx) / cam.fx, (y as f64 - cam.cy) / cam.fy);
                data[y * w + x] = (0.5 + 0.1 * rx + 0.05 * ry + 0.3 * rx * rx) as f32;
            }
        }
        ImageF32 {
            width: w,
            height: h,
            data,
        }
    }

    /// A small grid of camera-facing points with slightly varying normals.
    fn model() -> Vec<SurfacePoint> {
        let mut pts = Vec::new();
        for i in -5..=5 {
            for j in -5..=5 {
                let p = Point3::new(
                    i as f64 * 0.004,
                    j as f64 * 0.004,
                    0.002 * (i * j) as f64 / 25.0,
                );
                let n = Vector3::new(0.05 * i as f64, -0.03 * j as f64, -1.0).normalize();
                pts.push(SurfacePoint { p, n });
            }
        }
        pts
    }

    /// The reference pose of [`modality`].
    fn m_reference() -> Isometry3<f64> {
        Isometry3::translation(0.003, -0.002, 0.496)
    }

    fn modality(params: DepthParams) -> DepthModality {
        modality_of(params, &Shape::from(model()))
    }

    /// With another object's surface over part of the grid, the term with the ownership mask
    /// gives the loss and gradient of the same term on the depth with those readings erased
    /// (missing), bit for bit, at motions that carry the points across the mask's edge.
    #[test]
    fn foreign_readings_read_as_missing() {
        use super::super::ownership::{DepthOwnership, OwnershipParams};
        let c = cam();
        let depth = surface_depth(&c);
        // Object 1 lies on the observed surface right of pixel column 84 (rows 50–70).
        let on_surface = (50..=70)
            .flat_map(|v| (85..=110).map(move |u| (u as f64, v as f64)))
            .map(|(u, v)| c.backproject(u, v, depth.data[v as usize * 160 + u as usize] as f64))
            .collect();
        let grid = model().iter().map(|p| m_reference() * p.p).collect();
        let own = DepthOwnership::new(&depth, &c, &[grid, on_surface], &OwnershipParams::default());
        let mask = own.mask_of(0).expect("object 1 is near object 0");
        let mut erased = depth.clone();
        for (i, d) in erased.data.iter_mut().enumerate() {
            if mask.foreign(i % 160, i / 160) {
                *d = 0.0;
            }
        }
        assert!(erased.data.iter().filter(|d| **d == 0.0).count() > 300);
        let chart = PoseChart::new(m_reference(), &Vector3::zeros());
        let (shape, params) = (Shape::from(model()), DepthParams::default());
        let depth = Arc::new(depth);
        let whole = DepthModality::prepare(depth.clone(), c, &chart, &shape, params);
        let masked =
            DepthModality::prepare(depth, c, &chart, &shape, params).with_foreign(Some(mask));
        let plain = DepthModality::prepare(Arc::new(erased), c, &chart, &shape, params);
        for k in 0..7 {
            let xi = Vector6::new(
                0.002 * k as f64,
                -0.001,
                0.0005,
                0.01,
                -0.02 * k as f64,
                0.0,
            );
            let (mut ga, mut gb) = (Vector6::zeros(), Vector6::zeros());
            let (a, b) = (
                masked.loss_grad(&xi, &mut ga),
                plain.loss_grad(&xi, &mut gb),
            );
            assert_eq!((a, ga), (b, gb), "at {xi:?}");
            // The grid reaches the other object's readings: without the mask it reads them.
            assert_ne!(a, whole.loss_grad(&xi, &mut ga), "at {xi:?}");
        }
    }

    /// The census counts each point by the class that decides its cost: the grid's 11 columns
    /// project 3.2 px apart (u ≈ 66.3, 69.5, …, 98.5), and the depth image is pushed 5 cm nearer
    /// left of pixel column 72 (two point columns hidden), erased over columns 74–77 (one
    /// column unread, though its pixels also span a discontinuity: missing decides), pushed 5 cm
    /// nearer on column 79 alone (the column at u ≈ 79.2 reads pixels 79 and 80: an outlier
    /// across a discontinuity, ignored), and 5 cm farther from column 94 on (two seen through);
    /// the other five fit.
    #[test]
    fn the_census_counts_hidden_unread_contradicted_and_fitting_points() {
        let c = cam();
        let mut depth = surface_depth(&c);
        for (i, d) in depth.data.iter_mut().enumerate() {
            match i % depth.width {
                0..=71 | 79 => *d -= 0.05,
                74..=77 => *d = 0.0,
                94.. => *d += 0.05,
                _ => {}
            }
        }
        let chart = PoseChart::new(m_reference(), &Vector3::zeros());
        let params = DepthParams::default();
        let depth = Arc::new(depth);
        let m = DepthModality::prepare(depth.clone(), c, &chart, &Shape::from(model()), params);
        let census = m.census();
        // The frame term gives the same census with its detection loss, the one that
        // `detection_loss` gives, from one preparation.
        let term = DepthFrame {
            depth,
            ownership: None,
            params,
        };
        let shape = Shape::from(model());
        let (loss, counted) = term.detection_census(&c, &chart, &shape).unwrap();
        assert_eq!(counted, census);
        assert_eq!(loss, term.detection_loss(&c, &chart, &shape).unwrap());
        // Hidden, contradicted and unread points cost 1, 2 and 1 outlier constants, ignored ones
        // nothing, each fitting one less than one (the grid lies a few mm off the curved surface).
        let least = (22.0 + 2.0 * 22.0 + 11.0) / 121.0;
        assert!(
            loss.is_some_and(|l| l >= least && l < least + 55.0 / 121.0),
            "{loss:?}"
        );
        let want = PointCensus {
            fit: 55,
            hidden: 22,
            contradicted: 22,
            unread: 11,
            ignored: 11,
        };
        assert_eq!(census, want);
        assert_eq!(census.judged(), 99);
        assert_eq!(census.unhidden_fraction(), Some(1.0 - 22.0 / 99.0));
        // In its own surface's depth every point fits.
        assert_eq!(modality(params).census().fit, 121);
        assert_eq!(PointCensus::default().unhidden_fraction(), None);
    }

    /// [`modality`] prepared on `points` instead of the whole grid.
    fn modality_of(params: DepthParams, points: &[SurfacePoint]) -> DepthModality {
        let c = cam();
        let chart = PoseChart::new(m_reference(), &Vector3::zeros());
        DepthModality::prepare(
            Arc::new(surface_depth(&c)),
            c,
            &chart,
            &Shape::from(points.to_vec()),
            params,
        )
    }

    /// The default parameters with a Cauchy kernel (smooth, so central differences apply).
    fn cauchy() -> DepthParams {
        DepthParams {
            robust: Robust::Cauchy(0.01),
            ..Default::default()
        }
    }

    #[test]
    fn shifted_detection_losses_are_the_detection_losses_at_the_shifted_poses() {
        // Every model point faces the camera and none hides another, so the points visible at
        // the reference are those visible at every shift that keeps them in the image: there the
        // fast path must equal scoring each shifted pose on its own.
        let c = cam();
        let term = DepthFrame {
            ownership: None,
            depth: Arc::new(surface_depth(&c)),
            params: DepthParams::default(),
        };
        let chart = PoseChart::new(
            Isometry3::translation(0.003, -0.002, 0.496),
            &Vector3::zeros(),
        );
        let shifts = [
            Vector3::zeros(),
            Vector3::new(0.002, -0.001, 0.0),
            Vector3::new(0.0, 0.003, 0.004),
            Vector3::new(0.03, 0.0, 0.0),
            // Past the image border for the grid's right half (not compared: see below).
            Vector3::new(0.09, 0.0, 0.0),
        ];
        let fast = term
            .shifted_detection_losses(&c, &chart, &Shape::from(model()), &shifts)
            .unwrap();
        let fast: Vec<f64> = fast.into_iter().map(Option::unwrap).collect();
        for (t, got) in shifts[..4].iter().zip(&fast) {
            let want = (term.detection_loss(&c, &chart.translated(t), &Shape::from(model())))
                .unwrap()
                .unwrap();
            assert!((got - want).abs() < 1e-9, "shift {t:?}: {got} vs {want}");
        }
        // Points a shift moves off the image count as missing (one outlier each), so a placement
        // that pushes the object out of view scores as a poor fit.
        assert!(fast[4] > fast[0] + 0.2, "{fast:?}");
        // Nothing visible at a reference off the image: the shift that brings the object back
        // is scored with its own points.
        let off = PoseChart::new(
            Isometry3::translation(0.503, -0.002, 0.496),
            &Vector3::zeros(),
        );
        let back = [Vector3::zeros(), Vector3::new(-0.5, 0.0, 0.0)];
        let got = term.shifted_detection_losses(&c, &off, &Shape::from(model()), &back);
        assert_eq!(got.as_ref().map(|g| g[0]), Some(None));
        let got = got.and_then(|g| g[1]).unwrap();
        assert!((got - fast[0]).abs() < 1e-9, "{got} vs {}", fast[0]);
    }

    /// A stride reads whole chunks of 16 points: stride 3 of the 121 grid points keeps chunks
    /// 0, 3 and 6 (48 points), and estimates the loss as a modality prepared on those 48 points
    /// alone computes it (`n_eff/(48σ²) Σ ρ`), to rounding. Every grid point faces the camera and
    /// none hides another, so that modality sees exactly the kept points.
    #[test]
    fn a_stride_reads_every_nth_chunk_rescaled_to_all_points() {
        let m = modality(cauchy());
        let kept: Vec<SurfacePoint> = (model().chunks(CHUNK).step_by(3).flatten())
            .copied()
            .collect();
        assert_eq!((m.len(), kept.len()), (121, 48));
        let alone = modality_of(cauchy(), &kept);
        for xi in [
            Vector6::new(0.002, 0.001, -0.001, -0.02, 0.01, 0.0),
            Vector6::new(0.001, -0.002, 0.0015, 0.01, -0.02, 0.015),
        ] {
            let thin = crate::domains::pose::modality::check_thinned(&m, &xi, 3);
            let want = alone.loss(&xi);
            assert!(
                (thin - want).abs() <= 1e-12 * want.abs(),
                "{thin} vs {want}"
            );
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let m = modality(cauchy());
        assert!(m.len() > 100);
        for xi in [
            Vector6::new(0.001, -0.002, 0.0015, 0.01, -0.02, 0.015),
            Vector6::new(-0.002, 0.001, -0.003, -0.03, 0.01, 0.05),
        ] {
            let mut g = Vector6::zeros();
            m.loss_grad(&xi, &mut g);
            let h = 1e-7;
            for k in 0..6 {
                let mut e = Vector6::zeros();
                e[k] = h;
                let fd = (m.loss(&(xi + e)) - m.loss(&(xi - e))) / (2.0 * h);
                assert!(
                    (fd - g[k]).abs() <= 1e-3 * g.norm().max(1.0),
                    "coord {k}: fd {fd} vs {}",
                    g[k]
                );
            }
        }
    }

    /// The loss, its gradient and each point's class, point by point and branching on the class
    /// (the form the depth term had before it went to lanes): the reference the lanes must match
    /// bit for bit. Classes: behind, missing, discontinuity, free space, outlier, residual.
    fn point_by_point(m: &DepthModality, motion: &RigidMotion) -> (f64, Vector6<f64>, [usize; 6]) {
        let (p, mut total) = (&m.params, 0.0);
        let (mut acc, mut seen) = (GradAccumulator::default(), [0; 6]);
        for c in &m.points {
            for j in 0..c.len {
                let rv = motion.rotate(&lane(&c.v, j));
                let (q, nr) = (motion.place(&m.centre, &rv), motion.rot * lane(&c.n, j));
                let iz = 1.0 / q.z;
                let cell = (q.z >= MIN_Z).then(|| m.cam.project_inv(&q, iz));
                let cell = cell.and_then(|(u, w)| m.depth.cell(u, w));
                let class = match (q.z < MIN_Z, cell) {
                    (true, _) => 0,
                    (false, None) => 1,
                    (false, Some((px, _, _))) if px.iter().any(|&x| x <= 0.0) => 1,
                    (false, Some((px, _, _))) => {
                        let lo = px.iter().fold(f64::INFINITY, |l, &x| l.min(x));
                        let hi = px.iter().fold(0.0f64, |h, &x| h.max(x));
                        if hi - lo >= p.discontinuity {
                            2
                        } else {
                            5
                        }
                    }
                };
                // Behind, missing or a discontinuity: a constant (0 but for the missing cost).
                let Some((px, fa, fb)) = cell.filter(|_| class == 5) else {
                    total += if class == 1 { m.missing } else { 0.0 };
                    seen[class] += 1;
                    continue;
                };
                let (d, du, dv) = ImageF32::interpolate(&px, fa, fb);
                // Free space or an outlier: a constant; otherwise a residual.
                if d - q.z > p.free_space || q.z - d > p.reject {
                    let free = d - q.z > p.free_space;
                    total += if free { p.free_space_factor } else { 1.0 } * m.outlier;
                    seen[if free { 3 } else { 4 }] += 1;
                    continue;
                }
                seen[5] += 1;
                let (k, a) = (1.0 - d * iz, nr.dot(&q));
                let (rho, psi) = p.robust.rho_psi(a * k);
                total += rho;
                let grad_d = m
                    .cam
                    .jacobian_inv(&q, iz)
                    .tr_mul(&nalgebra::Vector2::new(du, dv));
                let s = m.norm * psi;
                let dk = (Vector3::new(0.0, 0.0, d * iz) - grad_d) * iz;
                acc.add_point(&rv, &((nr * k + dk * a) * s));
                acc.add_direction(&nr, &(q * (k * s)));
            }
        }
        (total * m.norm, acc.finish(motion), seen)
    }

    /// The lanes give the point-by-point reference's bits, in the baseline build and in the
    /// AVX2 build where the processor has it (so the same seed gives the same numbers on every
    /// x86-64 machine), over every kernel, with and without a missing cost, and over every class
    /// of point: the depth image has a hole and a step, and the motions leave the points on the
    /// surface, push them behind it or in front of it, move some off the image or behind the
    /// camera; the model's 121 points end in a short chunk.
    #[test]
    fn the_lanes_give_the_point_by_point_bits() {
        let c = cam();
        let mut depth = surface_depth(&c);
        for y in 0..depth.height {
            for x in 0..depth.width {
                let i = y * depth.width + x;
                match (x, y) {
                    (70..=76, 50..=56) => depth.data[i] = 0.0,
                    (88.., _) => depth.data[i] += 0.05,
                    _ => {}
                }
            }
        }
        let chart = PoseChart::new(
            Isometry3::translation(0.003, -0.002, 0.496),
            &Vector3::zeros(),
        );
        let kernels = [
            Robust::L2,
            Robust::Huber(0.01),
            Robust::Tukey(0.012),
            Robust::Cauchy(0.01),
        ];
        let mut seen = [0; 6];
        for (robust, missing_cost) in kernels.into_iter().zip([0.0, 1.0, 0.0, 0.5]) {
            let params = DepthParams {
                robust,
                missing_cost,
                ..Default::default()
            };
            let m = DepthModality::prepare(
                Arc::new(depth.clone()),
                c,
                &chart,
                &Shape::from(model()),
                params,
            );
            for xi in [
                Vector6::new(0.001, -0.002, 0.0015, 0.01, -0.02, 0.015),
                Vector6::new(0.0, 0.0, 0.03, 0.1, 0.0, 0.0),
                Vector6::new(0.0, 0.0, -0.03, 0.0, 0.2, 0.0),
                Vector6::new(0.02, 0.01, 0.0, 0.0, 0.0, 0.3),
                Vector6::new(0.0, 0.0, -0.4955, 0.0, 0.0, 0.0),
            ] {
                let motion = RigidMotion::new(&xi);
                let (want, want_g, classes) = point_by_point(&m, &motion);
                seen.iter_mut().zip(classes).for_each(|(s, n)| *s += n);
                let mut builds: Vec<(&str, f64, GradAccumulator)> = Vec::new();
                let mut acc = GradAccumulator::default();
                builds.push((
                    "baseline",
                    m.evaluate_chunks(&motion, Some(&mut acc), 1),
                    acc,
                ));
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    let mut acc = GradAccumulator::default();
                    // SAFETY: the processor supports AVX2 (checked on the line above).
                    let loss = unsafe { m.evaluate_avx2(&motion, Some(&mut acc), 1) };
                    builds.push(("avx2", loss, acc));
                }
                for (build, loss, acc) in builds {
                    let at = format!("{build} build, {robust:?}, ξ = {xi:?}");
                    assert_eq!(
                        loss.to_bits(),
                        want.to_bits(),
                        "loss {loss} vs {want}, {at}"
                    );
                    let g = acc.finish(&motion);
                    let same = g
                        .iter()
                        .zip(&want_g)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "gradient {g:?} vs {want_g:?}, {at}");
                }
            }
        }
        assert!(seen.iter().all(|&n| n > 0), "classes seen {seen:?}");
    }

    #[test]
    fn loss_is_minimal_near_the_surface_and_ignores_missing_depth() {
        let m = modality(DepthParams::default());
        let at = |dz: f64| m.loss(&Vector6::new(0.0, 0.0, dz, 0.0, 0.0, 0.0));
        assert!(at(0.004) < at(0.0) && at(0.004) < at(0.012));
        // With all depth missing the loss is zero.
        let c = cam();
        let (w, h) = (c.width as usize, c.height as usize);
        let empty = ImageF32 {
            width: w,
            height: h,
            data: vec![0.0; w * h],
        };
        let chart = PoseChart::new(Isometry3::translation(0.0, 0.0, 0.5), &Vector3::zeros());
        let m0 = DepthModality::prepare(
            Arc::new(empty),
            c,
            &chart,
            &Shape::from(model()),
            DepthParams::default(),
        );
        assert_eq!(m0.loss(&Vector6::zeros()), 0.0);
    }

    #[test]
    fn free_space_costs_more_than_occlusion() {
        let m = modality(DepthParams::default());
        let front = m.loss(&Vector6::new(0.0, 0.0, -0.1, 0.0, 0.0, 0.0));
        let behind = m.loss(&Vector6::new(0.0, 0.0, 0.1, 0.0, 0.0, 0.0));
        assert!(front > behind, "free space {front} vs occluded {behind}");
    }
}
