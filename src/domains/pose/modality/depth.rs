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

use super::spec::{FrameTerm, ModalitySpec, Needs};
use super::visible::{visible_points, VisibilityParams};
use super::RgbdFrame;
use super::{
    loss_scale, GradAccumulator, ImageF32, Modality, PoseChart, RigidMotion, Robust, SharedImage,
};
use crate::core::error::Result;
use crate::core::geometry::camera::Camera;
use crate::domains::pose::mesh::SurfacePoint;
use nalgebra::{Matrix6, Vector2, Vector3, Vector6};
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
    params: DepthParams,
}

impl FrameTerm for DepthFrame {
    /// Kernel and thresholds widened by `widen` ([`DepthParams::scaled`]).
    fn prepare(
        &self,
        camera: &Camera,
        chart: &PoseChart,
        _object: usize,
        points: &[SurfacePoint],
        widen: f64,
    ) -> Box<dyn Modality> {
        let params = self.params.scaled(widen);
        Box::new(DepthModality::prepare(
            self.depth.clone(),
            *camera,
            chart,
            points,
            params,
        ))
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
        points: &[SurfacePoint],
    ) -> Option<Option<f64>> {
        let losses = self.shifted_detection_losses(camera, chart, points, &[Vector3::zeros()])?;
        Some(losses.into_iter().next().flatten())
    }

    /// The points visible at the reference, translated by each shift (the chart coordinates
    /// `ξ = [t; 0]`), scored in parallel. Points a shift moves off the image count as missing
    /// (one outlier each), where a modality prepared at the shifted pose would leave them out.
    /// With nothing visible at the reference, every shifted pose is scored with its own points.
    fn shifted_detection_losses(
        &self,
        camera: &Camera,
        chart: &PoseChart,
        points: &[SurfacePoint],
        shifts: &[Vector3<f64>],
    ) -> Option<Vec<Option<f64>>> {
        use rayon::prelude::*;
        let p = &DepthParams {
            missing_cost: 1.0,
            ..self.params
        };
        let depth = DepthModality::prepare(self.depth.clone(), *camera, chart, points, *p);
        if depth.is_empty() {
            // Nothing visible at the reference (off the image, say): the shifted poses may
            // still show the object, each to its own points (a zero shift is the reference).
            return match shifts.iter().all(|t| *t == Vector3::zeros()) {
                true => Some(vec![None; shifts.len()]),
                false => {
                    super::spec::detection_losses_one_by_one(self, camera, chart, points, shifts)
                }
            };
        }
        let scale = p.sigma * p.sigma / (p.n_eff * p.outlier_cost());
        let at = |t: &Vector3<f64>| depth.loss(&Vector6::new(t.x, t.y, t.z, 0.0, 0.0, 0.0));
        Some(shifts.par_iter().map(|t| Some(at(t) * scale)).collect())
    }
}

/// A prepared depth modality: centre-relative visible points and the frame's depth image.
pub struct DepthModality {
    depth: SharedImage,
    cam: Camera,
    centre: Vector3<f64>,
    /// `(v, n)`: point minus centre, and normal, camera frame at the reference.
    points: Vec<(Vector3<f64>, Vector3<f64>)>,
    params: DepthParams,
    norm: f64,
    /// [`DepthParams::outlier_cost`], computed once.
    outlier: f64,
}

/// What one point contributes.
enum Term {
    Ignored,
    Constant(f64),
    /// `r = a·k` with `k = 1 − d/q_z`, `a = n'·q`; `(du, dv)` the depth image's gradient at the
    /// projection (turned into `∂d/∂q` only where a gradient is wanted).
    Residual {
        r: f64,
        k: f64,
        a: f64,
        du: f64,
        dv: f64,
        d: f64,
    },
}

impl DepthModality {
    /// Prepare about `chart` from the model's oriented surface samples (model frame) and the
    /// depth image (metres, 0 = missing).
    pub fn prepare(
        depth: SharedImage,
        cam: Camera,
        chart: &PoseChart,
        model: &[SurfacePoint],
        params: DepthParams,
    ) -> Self {
        let points: Vec<_> = visible_points(model, &chart.reference, &cam, &params.visibility)
            .into_iter()
            .map(|p| (p.p.coords - chart.centre, p.n))
            .collect();
        let norm = loss_scale(params.n_eff, params.sigma, points.len());
        Self {
            depth,
            cam,
            centre: chart.centre,
            points,
            params,
            norm,
            outlier: params.outlier_cost(),
        }
    }

    /// Every point's term at `motion`, handed to `f(rv, q, n', iz, term)` in point order, with
    /// `rv = R v`, `q` the camera-frame point, `n' = R n` and `iz = 1/q_z` (one division per point,
    /// shared with the gradient). The points go in chunks of [`CHUNK`]: first each is placed and
    /// its four depth pixels are read, then the terms are classified. A point's pixel address
    /// depends on a long chain (rotation, division, projection); in one loop with the
    /// classification's data-dependent branches, every mispredicted branch stalled on the next
    /// point's load, while in a chunk the loads are independent and overlap.
    fn for_each_term(
        &self,
        motion: &RigidMotion,
        mut f: impl FnMut(&Vector3<f64>, &Vector3<f64>, &Vector3<f64>, f64, Term),
    ) {
        let mut placed = [Placed::default(); CHUNK];
        for chunk in self.points.chunks(CHUNK) {
            for ((v, _), pl) in chunk.iter().zip(placed.iter_mut()) {
                let rv = motion.rotate(v);
                let q = motion.place(&self.centre, &rv);
                let iz = 1.0 / q.z;
                let cell = match q.z < MIN_Z {
                    true => None,
                    false => {
                        let (u, w) = self.cam.project_inv(&q, iz);
                        self.depth.cell(u, w)
                    }
                };
                *pl = Placed { rv, q, iz, cell };
            }
            for ((_, n), pl) in chunk.iter().zip(&placed) {
                let nr = motion.rot * n;
                f(&pl.rv, &pl.q, &nr, pl.iz, self.term(pl, &nr));
            }
        }
    }

    /// The term of a placed point with rotated normal `n`.
    fn term(&self, pl: &Placed, n: &Vector3<f64>) -> Term {
        let (q, iz) = (&pl.q, pl.iz);
        // Behind (or too near) the camera: ignored, not missing (its cell is None too).
        if q.z < MIN_Z {
            return Term::Ignored;
        }
        let p = &self.params;
        let missing = || {
            if p.missing_cost > 0.0 {
                Term::Constant(p.missing_cost * self.outlier)
            } else {
                Term::Ignored
            }
        };
        let Some((px, a, b)) = pl.cell else {
            return missing();
        };
        let (lo, hi) = px
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(l, h), &x| (l.min(x), h.max(x)));
        if lo <= 0.0 {
            return missing();
        }
        if hi - lo >= p.discontinuity {
            return Term::Ignored;
        }
        let (d, du, dv) = ImageF32::interpolate(&px, a, b);
        if d - q.z > p.free_space {
            return Term::Constant(p.free_space_factor * self.outlier);
        }
        if q.z - d > p.reject {
            return Term::Constant(self.outlier);
        }
        let k = 1.0 - d * iz;
        let a = n.dot(q);
        Term::Residual {
            r: a * k,
            k,
            a,
            du,
            dv,
            d,
        }
    }
}

/// Points per chunk of [`DepthModality::for_each_term`] (its scratch lives on the stack).
const CHUNK: usize = 16;

/// Points nearer than this to the camera plane (metres), or behind it, are ignored.
const MIN_Z: f64 = 1e-3;

/// A point placed at a motion: rotated offset `R v`, camera-frame position, `1/q_z`, and its
/// depth cell (the four pixels and the fractions), `None` when `q_z <` [`MIN_Z`] or outside the
/// image.
#[derive(Clone, Copy, Default)]
struct Placed {
    rv: Vector3<f64>,
    q: Vector3<f64>,
    iz: f64,
    cell: Option<([f64; 4], f64, f64)>,
}

impl Modality for DepthModality {
    fn name(&self) -> &str {
        "depth"
    }

    fn evaluate(&self, motion: &RigidMotion, mut grad: Option<&mut GradAccumulator>) -> f64 {
        let mut total = 0.0;
        self.for_each_term(motion, |rv, q, nr, iz, term| match term {
            Term::Ignored => {}
            Term::Constant(c) => total += c,
            Term::Residual { r, k, a, du, dv, d } => {
                let (rho, psi) = self.params.robust.rho_psi(r);
                total += rho;
                if let Some(acc) = grad.as_deref_mut() {
                    let grad_d = self.cam.jacobian_inv(q, iz).tr_mul(&Vector2::new(du, dv));
                    let s = self.norm * psi;
                    let dk = (Vector3::new(0.0, 0.0, d * iz) - grad_d) * iz;
                    acc.add_point(rv, &((nr * k + dk * a) * s));
                    acc.add_direction(nr, &(q * (k * s)));
                }
            }
        });
        total * self.norm
    }

    /// `H = n_eff/(Nσ²) Σ J_iᵀJ_i` with `J_i = [n_iᵀ, (v_i × n_i)ᵀ]` (association held fixed).
    fn curvature(&self) -> Matrix6<f64> {
        self.points
            .iter()
            .map(|(v, n)| {
                let vn = v.cross(n);
                let j = Vector6::new(n.x, n.y, n.z, vn.x, vn.y, vn.z);
                j * j.transpose()
            })
            .fold(Matrix6::zeros(), |a, b| a + b)
            * self.norm
    }

    /// `H(ξ) = n_eff/(Nσ²) Σ_i w_i J_iJ_iᵀ` over the residual points at `motion`, with the
    /// point-to-plane Jacobian `J_i = [n_i'; J_lᵀ (R v_i × n_i')]` (association held fixed,
    /// `n_i' = R n_i`) and the IRLS weight `w_i = ψ(r_i)/r_i` (1 at `r = 0`); outliers, missing
    /// depth and discontinuities weigh 0. At a zero-residual fit of a locally planar surface this
    /// is the exact Hessian of the loss.
    fn curvature_at(&self, motion: &RigidMotion) -> Matrix6<f64> {
        let mut h = Matrix6::zeros();
        self.for_each_term(motion, |rv, _, nr, _, term| {
            if let Term::Residual { r, .. } = term {
                let w = match r.abs() > 1e-12 {
                    true => self.params.robust.psi(r) / r,
                    false => 1.0,
                };
                let m = motion.jl.tr_mul(&rv.cross(nr));
                let j = Vector6::new(nr.x, nr.y, nr.z, m.x, m.y, m.z);
                h += j * j.transpose() * w.max(0.0);
            }
        });
        h * self.norm
    }

    fn len(&self) -> usize {
        self.points.len()
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

    fn modality(params: DepthParams) -> DepthModality {
        let c = cam();
        let chart = PoseChart::new(
            Isometry3::translation(0.003, -0.002, 0.496),
            &Vector3::zeros(),
        );
        DepthModality::prepare(Arc::new(surface_depth(&c)), c, &chart, &model(), params)
    }

    #[test]
    fn shifted_detection_losses_are_the_detection_losses_at_the_shifted_poses() {
        // Every model point faces the camera and none hides another, so the points visible at
        // the reference are those visible at every shift that keeps them in the image: there the
        // fast path must equal scoring each shifted pose on its own.
        let c = cam();
        let term = DepthFrame {
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
            .shifted_detection_losses(&c, &chart, &model(), &shifts)
            .unwrap();
        let fast: Vec<f64> = fast.into_iter().map(Option::unwrap).collect();
        for (t, got) in shifts[..4].iter().zip(&fast) {
            let want = (term.detection_loss(&c, &chart.translated(t), &model()))
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
        let got = term.shifted_detection_losses(&c, &off, &model(), &back);
        assert_eq!(got.as_ref().map(|g| g[0]), Some(None));
        let got = got.and_then(|g| g[1]).unwrap();
        assert!((got - fast[0]).abs() < 1e-9, "{got} vs {}", fast[0]);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let params = DepthParams {
            robust: Robust::Cauchy(0.01),
            ..Default::default()
        };
        let m = modality(params);
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
        let m0 =
            DepthModality::prepare(Arc::new(empty), c, &chart, &model(), DepthParams::default());
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
