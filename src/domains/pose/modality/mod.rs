//! Observation modalities for 6D pose tracking and their composition into a filter model.
//!
//! # Chart
//! Every object is tracked in a local chart about a *reference pose* `T_ref = (R_ref, t_ref)`
//! (the previous estimate, re-centred every frame). The tangent coordinates `ξ = [ρ; φ]`
//! (translation first, metres and radians, camera frame) act about the object centre
//! `c = T_ref · c_model` rather than about the camera origin:
//!
//! ```text
//!   T(ξ) · x_model = c + ρ + Exp(φ) · (T_ref · x_model − c)
//! ```
//!
//! This is the left perturbation `exp(ξ')·T_ref` of [`crate::core::geometry::se3`] with the rotation
//! moved to the object centre; it decouples rotation from translation (a rotation about the camera
//! origin at 0.8 m moves the object 14 mm per degree), which keeps the loss well conditioned.
//!
//! # Gradients
//! A point `q = c + ρ + R v` (with `R = Exp(φ)`, `v = T_ref x − c`) has
//! `∂q/∂ρ = I` and `∂q/∂φ = −[R v]× J_l(φ)`, with `J_l` the SO(3) left Jacobian
//! ([`crate::core::geometry::se3::left_jacobian`]), so a loss with
//! point gradient `g_q` has `∂L/∂ρ = Σ g_q` and `∂L/∂φ = J_l(φ)ᵀ Σ (R v) × g_q`
//! ([`GradAccumulator`]). Rotated directions `n' = R n` contribute `J_lᵀ Σ n' × g_n`.
//!
//! # Composition
//! [`ObservationModel`] implements [`crate::core::filter::Model`] over `6K` coordinates (K objects),
//! with loss `L(x) = Σ_k [ Σ_m w_m L_m(D x_k) + ½ Σ_j (x_kj / s_kj)² ]`, where `D` scales each
//! coordinate by the per-frame motion σ (state coordinates are tangent coordinates in units of the
//! motion σ, which conditions the gradient flow) and the quadratic term is the motion prior.

pub mod depth;
pub mod depth_edge;
pub mod edge;
mod lanes;
pub mod line_lanes;
pub mod ownership;
pub mod region;
pub mod registry;
pub mod spec;
pub mod views;
pub mod visible;

pub use crate::domains::pose::frame::{ImageF32, RgbdFrame, Sample, SharedImage};
pub use registry::parse_modalities;
pub use spec::{FrameTerm, Memory, ModalityConfig, ModalitySpec, Needs, PointCensus};

use crate::core::filter::Model;
use crate::core::geometry::se3::left_jacobian;
use nalgebra::{
    Isometry3, Matrix3, Matrix6, Rotation3, Translation3, UnitQuaternion, Vector3, Vector6,
};
use rand::RngCore;
use rand_distr::{Distribution, StandardNormal};

/// Robust kernels `ρ(r)` with influence `ψ(r) = ρ'(r)`; all equal `r²/2` near zero.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Robust {
    /// Quadratic, `ρ = r²/2`.
    L2,
    /// Huber: `r²/2` for `|r| ≤ c`, `c(|r| − c/2)` beyond.
    Huber(f64),
    /// Tukey biweight: `c²/6 [1 − (1 − (r/c)²)³]` for `|r| ≤ c`, `c²/6` beyond.
    Tukey(f64),
    /// Geman–McClure-like Cauchy: `c²/2 · ln(1 + (r/c)²)`.
    Cauchy(f64),
}

impl Robust {
    /// `ρ(r)`.
    #[inline]
    pub fn rho(&self, r: f64) -> f64 {
        self.rho_psi(r).0
    }

    /// `ψ(r) = ρ'(r)`.
    #[inline]
    pub fn psi(&self, r: f64) -> f64 {
        self.rho_psi(r).1
    }

    /// `(ρ(r), ψ(r))` together: the hot loops want both, and they share `(r/c)²` (one division
    /// instead of two for Tukey). The one definition of both.
    #[inline]
    pub fn rho_psi(&self, r: f64) -> (f64, f64) {
        match *self {
            Robust::L2 => (0.5 * r * r, r),
            Robust::Huber(c) if r.abs() <= c => (0.5 * r * r, r),
            // Beyond the corner `ψ = c·sign(r)`, which is `clamp(r, −c, c)` there, without
            // clamp's panic on a NaN or negative `c`.
            Robust::Huber(c) => (c * (r.abs() - 0.5 * c), c * r.signum()),
            Robust::Tukey(c) => {
                let t = (1.0 - (r / c).powi(2)).max(0.0);
                (c * c / 6.0 * (1.0 - t * t * t), r * t * t)
            }
            Robust::Cauchy(c) => {
                let u = r * r / (c * c);
                (0.5 * c * c * u.ln_1p(), r / (1.0 + u))
            }
        }
    }

    /// [`Robust::rho_psi`] of every lane of `r` into `rho` and `psi`, the kernel chosen once for
    /// all lanes (so the loop has no branch and runs as vector instructions; always inlined, so
    /// that it is compiled for its caller's instruction set).
    #[inline(always)]
    pub fn rho_psi_lanes<const N: usize>(
        &self,
        r: &[f64; N],
        rho: &mut [f64; N],
        psi: &mut [f64; N],
    ) {
        #[inline(always)]
        fn each<const N: usize>(
            r: &[f64; N],
            rho: &mut [f64; N],
            psi: &mut [f64; N],
            f: impl Fn(f64) -> (f64, f64),
        ) {
            for j in 0..N {
                (rho[j], psi[j]) = f(r[j]);
            }
        }
        // One arm per kernel: each fixes the variant, so the inlined `rho_psi` loses its match
        // and the loop has no per-lane branch.
        match *self {
            Robust::L2 => each(r, rho, psi, |r| Robust::L2.rho_psi(r)),
            Robust::Huber(c) => each(r, rho, psi, |r| Robust::Huber(c).rho_psi(r)),
            Robust::Tukey(c) => each(r, rho, psi, |r| Robust::Tukey(c).rho_psi(r)),
            Robust::Cauchy(c) => each(r, rho, psi, |r| Robust::Cauchy(c).rho_psi(r)),
        }
    }

    /// The largest value `ρ` can take (`∞` for unbounded kernels).
    pub fn cap(&self) -> f64 {
        match *self {
            Robust::Tukey(c) => c * c / 6.0,
            _ => f64::INFINITY,
        }
    }

    /// The same kernel with its scale multiplied by `f`.
    pub fn scaled(&self, f: f64) -> Self {
        match *self {
            Robust::L2 => Robust::L2,
            Robust::Huber(c) => Robust::Huber(c * f),
            Robust::Tukey(c) => Robust::Tukey(c * f),
            Robust::Cauchy(c) => Robust::Cauchy(c * f),
        }
    }
}

/// The chart `T(ξ)` of the module docs: reference pose and rotation centre (camera frame).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PoseChart {
    /// Reference pose `T_ref` (model → camera).
    pub reference: Isometry3<f64>,
    /// Rotation centre `c = T_ref · c_model` in the camera frame.
    pub centre: Vector3<f64>,
}

impl PoseChart {
    /// Chart about `reference`, rotating about the model-frame point `model_centre`.
    pub fn new(reference: Isometry3<f64>, model_centre: &Vector3<f64>) -> Self {
        let centre = (reference * nalgebra::Point3::from(*model_centre)).coords;
        Self { reference, centre }
    }

    /// `T(ξ)`: rotation `Exp(φ) R_ref`, translation `c + ρ + Exp(φ)(t_ref − c)`.
    pub fn pose(&self, xi: &Vector6<f64>) -> Isometry3<f64> {
        let rho = xi.fixed_rows::<3>(0).into_owned();
        let rot = UnitQuaternion::from_scaled_axis(xi.fixed_rows::<3>(3).into_owned());
        let t = self.centre + rho + rot * (self.reference.translation.vector - self.centre);
        Isometry3::from_parts(Translation3::from(t), rot * self.reference.rotation)
    }

    /// The same chart translated by `t` (camera frame): reference `t + T_ref`, centre `c + t`,
    /// i.e. `pose(ξ)` with `ξ = [t; 0]` as the new reference.
    pub fn translated(&self, t: &Vector3<f64>) -> Self {
        Self {
            reference: Translation3::from(*t) * self.reference,
            centre: self.centre + t,
        }
    }

    /// Inverse of [`PoseChart::pose`]: `φ = Log(R R_refᵀ)`, `ρ = t − c − Exp(φ)(t_ref − c)`.
    pub fn coords(&self, pose: &Isometry3<f64>) -> Vector6<f64> {
        let rot = pose.rotation * self.reference.rotation.inverse();
        let phi = rot.scaled_axis();
        let rho = pose.translation.vector
            - self.centre
            - rot * (self.reference.translation.vector - self.centre);
        Vector6::new(rho.x, rho.y, rho.z, phi.x, phi.y, phi.z)
    }

    /// The same physical pose re-expressed in another chart: `other.coords(self.pose(ξ))`.
    pub fn transfer(&self, xi: &Vector6<f64>, other: &PoseChart) -> Vector6<f64> {
        other.coords(&self.pose(xi))
    }
}

/// The rigid motion of tangent coordinates `ξ` applied to centre-relative points:
/// `q = c + ρ + R v`, with the left Jacobian kept for gradients.
#[derive(Clone, Copy, Debug)]
pub struct RigidMotion {
    /// `R = Exp(φ)`.
    pub rot: Matrix3<f64>,
    /// `ρ`.
    pub rho: Vector3<f64>,
    /// `J_l(φ)`.
    pub jl: Matrix3<f64>,
}

impl RigidMotion {
    /// Motion of `ξ = [ρ; φ]`.
    pub fn new(xi: &Vector6<f64>) -> Self {
        let phi = xi.fixed_rows::<3>(3).into_owned();
        Self {
            rot: *Rotation3::new(phi).matrix(),
            rho: xi.fixed_rows::<3>(0).into_owned(),
            jl: left_jacobian(&phi),
        }
    }

    /// `R v` (the rotated centre-relative point, needed again for gradients).
    #[inline]
    pub fn rotate(&self, v: &Vector3<f64>) -> Vector3<f64> {
        self.rot * v
    }

    /// `q = c + ρ + rv` for an already rotated `rv = R v`.
    #[inline]
    pub fn place(&self, centre: &Vector3<f64>, rv: &Vector3<f64>) -> Vector3<f64> {
        centre + self.rho + rv
    }
}

/// `L(ξ)` and `∂L/∂ξ = [g_ρ; J_lᵀ m]` (written into `grad`) by `evaluate`, a modality's
/// [`Modality::evaluate`] or one of its builds.
pub(crate) fn loss_grad_by(
    xi: &Vector6<f64>,
    grad: &mut Vector6<f64>,
    evaluate: impl FnOnce(&RigidMotion, Option<&mut GradAccumulator>) -> f64,
) -> f64 {
    let motion = RigidMotion::new(xi);
    let mut acc = GradAccumulator::default();
    let l = evaluate(&motion, Some(&mut acc));
    *grad = acc.finish(&motion);
    l
}

/// The loss scale `norm` of `n` correspondences rescaled for the `kept` of them a stride reads,
/// `norm · n / kept` (`norm` itself, the same bits, when all are kept).
pub(crate) fn thinned_scale(norm: f64, n: usize, kept: usize) -> f64 {
    match kept >= n {
        true => norm,
        false => norm * (n as f64 / kept.max(1) as f64),
    }
}

/// Whether correspondence `i` is among those a `stride` reads when their order is not random
/// (region's lines come in grid order, left and right contour cells alternating row by row, so
/// every other line would read one side only): a Fibonacci hash of `i`, `⌊i·φ·2⁶⁴⌋ ≫ 32`,
/// taken modulo `stride`, keeps about one in `stride` spread over the whole list; every `i` at
/// stride 1.
pub(crate) fn scattered(i: usize, stride: usize) -> bool {
    stride <= 1
        || ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32).is_multiple_of(stride as u64)
}

/// The items of `items` a `stride` reads ([`scattered`]), in order, and how many they are.
pub(crate) fn scattered_subset<T>(items: &[T], stride: usize) -> (usize, impl Iterator<Item = &T>) {
    let kept = match stride {
        0 | 1 => items.len(),
        _ => (0..items.len()).filter(|&i| scattered(i, stride)).count(),
    };
    let subset = items.iter().enumerate();
    (
        kept,
        subset
            .filter(move |(i, _)| scattered(*i, stride))
            .map(|(_, t)| t),
    )
}

/// The loss scale `n_eff / (N σ²)` of `n_points` residuals of noise `sigma` treated as `n_eff`
/// independent measurements (`N` at least 1).
pub(crate) fn loss_scale(n_eff: f64, sigma: f64, n_points: usize) -> f64 {
    n_eff / (n_points.max(1) as f64 * sigma * sigma)
}

/// Accumulates `∂L/∂ξ` from per-point gradients (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct GradAccumulator {
    g_rho: Vector3<f64>,
    moment: Vector3<f64>,
}

impl GradAccumulator {
    /// Add a point `q = c + ρ + rv` with loss gradient `g_q`: `g_ρ += g_q`, `m += rv × g_q`.
    #[inline]
    pub fn add_point(&mut self, rv: &Vector3<f64>, g_q: &Vector3<f64>) {
        self.g_rho += g_q;
        self.moment += rv.cross(g_q);
    }

    /// Add a rotated direction `n' = R n` with loss gradient `g_n`: `m += n' × g_n`.
    #[inline]
    pub fn add_direction(&mut self, n_rot: &Vector3<f64>, g_n: &Vector3<f64>) {
        self.moment += n_rot.cross(g_n);
    }

    /// [`GradAccumulator::add_point`] then [`GradAccumulator::add_direction`] with their cross
    /// products already formed (by a loop over many points): `g_ρ += g_q`, `m += rv × g_q`,
    /// `m += n' × g_n`, the same sums in the same order (always inlined, so that it is compiled
    /// for its caller's instruction set).
    #[inline(always)]
    pub fn add_formed(
        &mut self,
        g_q: &Vector3<f64>,
        point_moment: &Vector3<f64>,
        direction_moment: &Vector3<f64>,
    ) {
        self.g_rho += g_q;
        self.moment += point_moment;
        self.moment += direction_moment;
    }

    /// `∂L/∂ξ = [g_ρ; J_lᵀ m]`.
    pub fn finish(&self, motion: &RigidMotion) -> Vector6<f64> {
        let g_phi = motion.jl.transpose() * self.moment;
        Vector6::new(
            self.g_rho.x,
            self.g_rho.y,
            self.g_rho.z,
            g_phi.x,
            g_phi.y,
            g_phi.z,
        )
    }
}

/// One observation modality of one object in one frame, prepared about a [`PoseChart`].
///
/// Its loss `L(ξ)` is `−log p(y | T(ξ))` up to a constant; the cost of one evaluation depends
/// on the number of prepared correspondences, not on the image size.
pub trait Modality: Send + Sync {
    /// Short name ("depth", "edge").
    fn name(&self) -> &str;

    /// `L` at `motion`; when `grad` is given, adds the point gradients into it.
    fn evaluate(&self, motion: &RigidMotion, grad: Option<&mut GradAccumulator>) -> f64;

    /// `L` estimated from a subset `S` of about 1/`stride` of the prepared correspondences,
    /// rescaled to the full count, `L̃ = (N/|S|)·n_eff/(Nσ²)·Σ_{i∈S} ρ(r_i)`, and (into `grad`) the
    /// gradient of that estimate; stride 1 is [`Modality::evaluate`], bit for bit. Depth's
    /// points are i.i.d. surface samples in sampling order, so its `S` (whole chunks of 16) is a
    /// uniform random subset and `L̃` unbiased over the samples' draw; region's lines come in
    /// grid order, so it reads about `N/stride` of them scattered by a hash of their index. The
    /// default (edge, depth-edge) ignores the stride and gives the full loss.
    fn evaluate_thinned(
        &self,
        motion: &RigidMotion,
        grad: Option<&mut GradAccumulator>,
        _stride: usize,
    ) -> f64 {
        self.evaluate(motion, grad)
    }

    /// Gauss–Newton curvature `Σ ψ'(0) JᵀJ` at `ξ = 0` (for step-size bounds).
    fn curvature(&self) -> Matrix6<f64>;

    /// Gauss–Newton curvature at `motion` with the robust (IRLS) weights of the residuals there,
    /// `H(ξ) = Σ_i w_i J_i(ξ)ᵀ J_i(ξ)`, `w_i = ψ(r_i)/r_i` (0 for outliers and ignored points),
    /// in the coordinates of [`Modality::loss_grad`] — what Newton moves linearise about. The
    /// default is [`Modality::curvature`] (unit weights at `ξ = 0`).
    fn curvature_at(&self, _motion: &RigidMotion) -> Matrix6<f64> {
        self.curvature()
    }

    /// Number of prepared correspondences.
    fn len(&self) -> usize;

    /// Whether there are no correspondences (the modality then contributes nothing).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `L(ξ)`.
    fn loss(&self, xi: &Vector6<f64>) -> f64 {
        self.evaluate(&RigidMotion::new(xi), None)
    }

    /// `L(ξ)` and `∂L/∂ξ` (written into `grad`).
    fn loss_grad(&self, xi: &Vector6<f64>, grad: &mut Vector6<f64>) -> f64 {
        loss_grad_by(xi, grad, |motion, acc| self.evaluate(motion, acc))
    }
}

/// The observation terms of one object in one frame: weighted modalities, whitening and prior.
pub struct ObjectTerms {
    /// Weighted modalities, `Σ w_m L_m`.
    pub modalities: Vec<(f64, Box<dyn Modality>)>,
    /// Per-coordinate scale `D` (metres, radians) of one state unit.
    pub scale: Vector6<f64>,
    /// Prior standard deviation `s` per state coordinate (state units), centred at `prior_centre`.
    pub prior_sigma: Vector6<f64>,
    /// Centre `c` of the motion prior (state units): 0 at the frame's prediction; later
    /// correspondence rounds linearise about another chart and keep the prior at the prediction.
    pub prior_centre: Vector6<f64>,
    /// Process-noise standard deviation per state coordinate (state units); 0 disables it.
    pub process_sigma: Vector6<f64>,
}

impl ObjectTerms {
    fn tangent(&self, x: &[f64]) -> Vector6<f64> {
        Vector6::from_fn(|j, _| x[j] * self.scale[j])
    }

    /// `L(x)` of this block (state units).
    pub fn loss(&self, x: &[f64]) -> f64 {
        self.loss_thinned(x, 1)
    }

    /// `L(x)` with the modalities read over about 1/`stride` of their correspondences
    /// ([`Modality::evaluate_thinned`]); the motion prior is exact.
    fn loss_thinned(&self, x: &[f64], stride: usize) -> f64 {
        let xi = self.tangent(x);
        let motion = RigidMotion::new(&xi);
        let data: f64 = self
            .modalities
            .iter()
            .map(|(w, m)| w * m.evaluate_thinned(&motion, None, stride))
            .sum();
        data + self.prior(x, None)
    }

    /// [`ObjectTerms::loss_thinned`] and its gradient (into `grad`).
    fn loss_grad(&self, x: &[f64], grad: &mut [f64], stride: usize) -> f64 {
        let motion = RigidMotion::new(&self.tangent(x));
        let mut total = 0.0;
        let mut g = Vector6::zeros();
        for (w, m) in &self.modalities {
            let mut acc = GradAccumulator::default();
            total += w * m.evaluate_thinned(&motion, Some(&mut acc), stride);
            g += acc.finish(&motion) * *w;
        }
        for j in 0..6 {
            grad[j] = g[j] * self.scale[j];
        }
        total + self.prior(x, Some(grad))
    }

    /// Motion prior `½ Σ ((x_j − c_j)/s_j)²`, adding `(x_j − c_j)/s_j²` into `grad`.
    fn prior(&self, x: &[f64], grad: Option<&mut [f64]>) -> f64 {
        let c = &self.prior_centre;
        if let Some(g) = grad {
            for j in 0..6 {
                g[j] += (x[j] - c[j]) / self.prior_sigma[j].powi(2);
            }
        }
        (0..6)
            .map(|j| 0.5 * ((x[j] - c[j]) / self.prior_sigma[j]).powi(2))
            .sum()
    }

    /// The Gauss–Newton curvature of this block's loss at `x` (state units): the modalities'
    /// [`Modality::curvature_at`] whitened by `D`, plus the motion prior's Hessian,
    /// `J(x) = D (Σ_m w_m H_m(D x)) D + diag(1/s_j²)` — the same coordinates and scaling as
    /// [`ObjectTerms::loss`] and its gradient.
    pub fn curvature(&self, x: &[f64]) -> Matrix6<f64> {
        let motion = RigidMotion::new(&self.tangent(x));
        let d = Matrix6::from_diagonal(&self.scale);
        let h: Matrix6<f64> = (self.modalities.iter())
            .map(|(w, m)| m.curvature_at(&motion) * *w)
            .fold(Matrix6::zeros(), |a, b| a + b);
        d * h * d + Matrix6::from_diagonal(&self.prior_sigma.map(|s| 1.0 / (s * s)))
    }

    /// Largest eigenvalue of the Gauss–Newton Hessian in state units, `λ_max(D H D) + max 1/s²`.
    fn lipschitz(&self) -> f64 {
        let d = Matrix6::from_diagonal(&self.scale);
        let h: Matrix6<f64> = self
            .modalities
            .iter()
            .map(|(w, m)| m.curvature() * *w)
            .fold(Matrix6::zeros(), |a, b| a + b);
        let lam = (d * h * d).symmetric_eigenvalues().max();
        lam + self.prior_sigma.map(|s| 1.0 / (s * s)).max()
    }
}

/// A [`Model`] over the stacked state coordinates of K objects (6K dimensions).
pub struct ObservationModel {
    /// One block per object, in state order.
    pub objects: Vec<ObjectTerms>,
}

impl ObservationModel {
    fn blocks<'a>(&'a self, x: &'a [f64]) -> impl Iterator<Item = (&'a ObjectTerms, &'a [f64])> {
        self.objects.iter().zip(x.chunks(6))
    }

    /// This model with its modalities read over about 1/`stride` of their correspondences
    /// ([`ThinnedModel`]).
    pub fn thinned(&self, stride: usize) -> ThinnedModel<'_> {
        ThinnedModel {
            model: self,
            stride: stride.max(1),
        }
    }

    fn thinned_loss(&self, x: &[f64], stride: usize) -> f64 {
        self.blocks(x)
            .map(|(o, xk)| o.loss_thinned(xk, stride))
            .sum()
    }

    fn thinned_loss_grad(&self, x: &[f64], grad: &mut [f64], stride: usize) -> f64 {
        (self.objects.iter().zip(x.chunks(6).zip(grad.chunks_mut(6))))
            .map(|(o, (xk, gk))| o.loss_grad(xk, gk, stride))
            .sum()
    }
}

/// An [`ObservationModel`] whose loss and gradient read about 1/`stride` of each modality's
/// correspondences ([`Modality::evaluate_thinned`]): an estimate of the full loss at about
/// `1/stride` of the evaluation cost, as a minibatch estimates a dataset's loss. Its prior,
/// transition, curvature and Lipschitz bound are the full model's, so a Newton move reading it
/// takes the full model's metric `(Σ̂⁻¹ + J̄)⁻¹` with each particle's gradient estimated from the
/// subset. The thinned loss's own curvature, `(N/|S|)·Σ_S JᵀJ`, can exceed the full one where the
/// subset is uneven, so the Lipschitz bound a gradient move splits its step by is the full model's,
/// not a bound on this loss.
pub struct ThinnedModel<'a> {
    /// The full model.
    pub model: &'a ObservationModel,
    /// About 1/`stride` of the correspondences are read (≥ 1; 1 is the full model).
    pub stride: usize,
}

impl Model for ThinnedModel<'_> {
    fn dim(&self) -> usize {
        self.model.dim()
    }

    fn sample_prior(&self, rng: &mut dyn RngCore, out: &mut [f64]) {
        self.model.sample_prior(rng, out)
    }

    fn has_transition(&self) -> bool {
        self.model.has_transition()
    }

    fn transition(&self, x: &mut [f64], rng: &mut dyn RngCore) {
        self.model.transition(x, rng)
    }

    fn loss(&self, x: &[f64]) -> f64 {
        self.model.thinned_loss(x, self.stride)
    }

    fn loss_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        self.model.thinned_loss_grad(x, grad, self.stride)
    }

    fn curvature(&self, x: &[f64], out: &mut [f64]) -> bool {
        self.model.curvature(x, out)
    }

    fn gradient_lipschitz(&self) -> Option<f64> {
        self.model.gradient_lipschitz()
    }
}

/// Adds `σ_j · N(0,1)` to coordinate `j` of a 6-block.
fn add_noise(x: &mut [f64], sigma: &Vector6<f64>, rng: &mut dyn RngCore) {
    for j in 0..6 {
        let z: f64 = StandardNormal.sample(rng);
        x[j] += sigma[j] * z;
    }
}

impl Model for ObservationModel {
    fn dim(&self) -> usize {
        6 * self.objects.len()
    }

    /// Prior `x_kj ~ N(0, s_kj²)`.
    fn sample_prior(&self, rng: &mut dyn RngCore, out: &mut [f64]) {
        for (o, x) in self.objects.iter().zip(out.chunks_mut(6)) {
            x.fill(0.0);
            add_noise(x, &o.prior_sigma, rng);
        }
    }

    fn has_transition(&self) -> bool {
        self.objects.iter().any(|o| o.process_sigma.max() > 0.0)
    }

    /// Random walk `x ← x + N(0, diag(q²))` (the reference already carries the predicted motion).
    fn transition(&self, x: &mut [f64], rng: &mut dyn RngCore) {
        for (o, xk) in self.objects.iter().zip(x.chunks_mut(6)) {
            add_noise(xk, &o.process_sigma, rng);
        }
    }

    fn loss(&self, x: &[f64]) -> f64 {
        self.thinned_loss(x, 1)
    }

    fn loss_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        self.thinned_loss_grad(x, grad, 1)
    }

    /// Block-diagonal: object `k`'s block is [`ObjectTerms::curvature`] at its coordinates
    /// (objects share no terms), written row-major into the `6K × 6K` output.
    fn curvature(&self, x: &[f64], out: &mut [f64]) -> bool {
        let m = self.dim();
        out.fill(0.0);
        for (k, (o, xk)) in self.blocks(x).enumerate() {
            let c = o.curvature(xk);
            for r in 0..6 {
                for col in 0..6 {
                    out[(6 * k + r) * m + 6 * k + col] = c[(r, col)];
                }
            }
        }
        true
    }

    /// The blocks are independent, so the bound is the largest block bound.
    fn gradient_lipschitz(&self) -> Option<f64> {
        self.objects
            .iter()
            .map(ObjectTerms::lipschitz)
            .reduce(f64::max)
    }
}

/// Test helper: the properties every [`Modality::evaluate_thinned`] must have at `xi`. Stride 1
/// is [`Modality::evaluate`] bit for bit (loss and gradient); at `stride` the gradient is that of
/// the thinned loss (central differences, step 1e-7: O(h²) plus rounding, within 1e-3 of the
/// gradient's size, the tolerance of the modalities' own gradient tests). Returns the thinned
/// loss, for the caller's check of what it estimates.
#[cfg(test)]
pub(crate) fn check_thinned(m: &dyn Modality, xi: &Vector6<f64>, stride: usize) -> f64 {
    let motion = RigidMotion::new(xi);
    let eval = |stride: usize| {
        let mut acc = GradAccumulator::default();
        let l = m.evaluate_thinned(&motion, Some(&mut acc), stride);
        (l, acc.finish(&motion))
    };
    let mut acc = GradAccumulator::default();
    let full = m.evaluate(&motion, Some(&mut acc));
    let (one, g1) = eval(1);
    assert_eq!((one.to_bits(), g1), (full.to_bits(), acc.finish(&motion)));
    let (thin, g) = eval(stride);
    let h = 1e-7;
    for k in 0..6 {
        let e = Vector6::from_fn(|i, _| if i == k { h } else { 0.0 });
        let at = |x: Vector6<f64>| m.evaluate_thinned(&RigidMotion::new(&x), None, stride);
        let fd = (at(xi + e) - at(xi - e)) / (2.0 * h);
        let tol = 1e-3 * g.norm().max(1.0);
        assert!((fd - g[k]).abs() <= tol, "coord {k}: fd {fd} vs {}", g[k]);
    }
    thin
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_round_trip_and_identity() {
        let reference = Isometry3::new(Vector3::new(0.1, -0.05, 0.8), Vector3::new(0.3, -0.2, 0.5));
        let chart = PoseChart::new(reference, &Vector3::new(0.01, 0.02, -0.03));
        let zero = chart.pose(&Vector6::zeros());
        assert!((zero.to_homogeneous() - reference.to_homogeneous()).norm() < 1e-12);
        let xi = Vector6::new(0.01, -0.02, 0.03, 0.1, -0.2, 0.05);
        let back = chart.coords(&chart.pose(&xi));
        assert!((back - xi).norm() < 1e-10, "{back} vs {xi}");
    }

    #[test]
    fn chart_rotates_about_centre() {
        let chart = PoseChart::new(Isometry3::translation(0.0, 0.0, 1.0), &Vector3::zeros());
        let pose = chart.pose(&Vector6::new(0.0, 0.0, 0.0, 0.0, 0.3, 0.0));
        assert!((pose.translation.vector - Vector3::new(0.0, 0.0, 1.0)).norm() < 1e-12);
    }

    #[test]
    fn left_jacobian_matches_finite_differences() {
        // Exp(φ + δ) ≈ Exp(J_l δ) Exp(φ)
        let phi = Vector3::new(0.4, -0.3, 0.9);
        let jl = left_jacobian(&phi);
        let d = Vector3::new(1e-6, -2e-6, 0.5e-6);
        let lhs = Rotation3::new(phi + d);
        let rhs = Rotation3::new(jl * d) * Rotation3::new(phi);
        assert!((lhs.matrix() - rhs.matrix()).norm() < 1e-10);
    }

    #[test]
    fn robust_kernels_have_consistent_derivatives() {
        for k in [
            Robust::L2,
            Robust::Huber(0.5),
            Robust::Tukey(0.7),
            Robust::Cauchy(0.3),
        ] {
            for r in [-0.9, -0.2, 0.1, 0.33, 1.3] {
                let h = 1e-6;
                let fd = (k.rho(r + h) - k.rho(r - h)) / (2.0 * h);
                assert!((fd - k.psi(r)).abs() < 1e-6, "{k:?} at {r}");
            }
        }
        assert_eq!(Robust::Tukey(2.0).rho(5.0), Robust::Tukey(2.0).cap());
    }

    #[test]
    fn bilinear_interpolates_and_differentiates() {
        let img = ImageF32 {
            width: 3,
            height: 2,
            data: vec![0.0, 1.0, 2.0, 10.0, 11.0, 12.0],
        };
        let (f, du, dv) = img.bilinear(0.5, 0.25, |_| true).unwrap();
        assert!((f - 3.0).abs() < 1e-12 && (du - 1.0).abs() < 1e-12 && (dv - 10.0).abs() < 1e-12);
        assert!(img.bilinear(2.5, 0.0, |_| true).is_none());
        assert!(img.bilinear(-0.1, 0.0, |_| true).is_none());
        // The last cell starts just below width − 1 / height − 1; beyond, huge and NaN
        // coordinates are refused without overflow.
        let (p, a, b) = img.cell(1.999, 0.999).unwrap();
        assert_eq!(p, [1.0, 2.0, 11.0, 12.0]);
        assert!((a - 0.999).abs() < 1e-12 && (b - 0.999).abs() < 1e-12);
        for (u, v) in [
            (2.0, 0.0),
            (0.0, 1.0),
            (1e300, 0.0),
            (f64::NAN, 0.0),
            (0.0, f64::INFINITY),
        ] {
            assert!(img.cell(u, v).is_none(), "({u}, {v})");
        }
    }
}
