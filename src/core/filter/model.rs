//! The model interface: what a filter needs to know about a problem, and nothing about the filter.
//!
//! A model supplies a prior sampler, an optional transition (one particle propagated with process
//! noise), and the observation loss `L(x) = −log p(y | x)` of the *current* observation with its
//! gradient `∇L(x)`. Time-varying observations are expressed by handing the filter a model that
//! holds the current observation (see [`crate::core::filter::Filter::update`]).

use crate::core::error::{Error, Result};
use nalgebra::{DMatrix, DVector};
use rand::RngCore;

/// A linear-Gaussian observation `y = H x + v`, `v ~ N(0, R)` — what ensemble Kalman analyses need.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearObservation {
    /// `H` (`k × m`).
    pub h: DMatrix<f64>,
    /// The observation `y` (length `k`).
    pub y: DVector<f64>,
    /// The noise covariance `R` (`k × k`, symmetric positive definite).
    pub r: DMatrix<f64>,
}

impl LinearObservation {
    /// Checks `H` is `k × m`, `y` has `k` entries, `R` is `k × k`, all finite.
    pub fn check(&self, m: usize) -> Result<()> {
        let obs = self;
        let k = obs.h.nrows();
        if obs.h.ncols() != m || obs.y.len() != k || obs.r.shape() != (k, k) {
            return Err(Error::Shape {
                what: "linear observation (H, y, R)".into(),
                expected: format!("H {k}×{m}, y {k}, R {k}×{k}"),
                got: format!(
                    "H {}×{}, y {}, R {}×{}",
                    obs.h.nrows(),
                    obs.h.ncols(),
                    obs.y.len(),
                    obs.r.nrows(),
                    obs.r.ncols()
                ),
            });
        }
        let all = obs.h.iter().chain(obs.y.iter()).chain(obs.r.iter());
        match all.copied().find(|v| !v.is_finite()) {
            Some(v) => Err(Error::param("linear observation", v, "must be finite")),
            None => Ok(()),
        }
    }
}

/// A state-space model seen through its loss.
///
/// Implementations must be `Sync`: filters evaluate particles in parallel.
///
/// # Writing a model
///
/// Three methods are required (`dim`, `sample_prior`, `loss`); the rest have defaults, and what a
/// filter needs beyond them is checked when it is built ([`crate::core::filter::FilterSpec::build`]):
///
/// | filter | needs |
/// |---|---|
/// | `sir`, `mcl` | `loss` only (`+∞` is allowed: a zero likelihood, weight 0) |
/// | `rfpf`, `grad`, `svgd`, `wpf`, `sgd` | `loss_grad` (default: central differences, `2m` losses per particle); `gradient_lipschitz` to split steps |
/// | `rfpf-newton`, `gn` | `curvature` (or `linear_observation`) |
/// | `enkf`, `etkf` | `linear_observation` (the loss must be its quadratic) |
///
/// **Step sizes.** Gradient moves take `p ← p − η ∇L(p)` with a fixed `η` (the presets' default
/// 0.1 in the units of `x`). With `substeps = auto` a move is split into `K = ⌈η·Lip⌉` sub-moves
/// when [`Model::gradient_lipschitz`] gives a bound; without one, `K = 1`, and a loss whose
/// curvature exceeds `2/η` makes the move overshoot and grow without bound (an error only once a
/// value is no longer finite). Give the bound, scale the loss, or set `eta` and `substeps`.
/// Newton moves (`rfpf-newton`, `gn`) scale their step by the curvature and backtrack when the
/// mean loss rises.
///
/// **Transitions.** [`Model::transition`] is applied by the filters that propagate (all but
/// `wpf`, `sgd` and `gn`, which treat the state as static between updates).
pub trait Model: Sync {
    /// State dimension `m`.
    fn dim(&self) -> usize;

    /// Draw one particle from the prior into `out` (length `m`).
    fn sample_prior(&self, rng: &mut dyn RngCore, out: &mut [f64]);

    /// Whether [`Model::transition`] does anything; static models return `false`.
    fn has_transition(&self) -> bool {
        false
    }

    /// Propagate one particle in place, `x ← f(x) + w`, with process noise drawn from `rng`.
    fn transition(&self, _x: &mut [f64], _rng: &mut dyn RngCore) {}

    /// Observation loss `L(x) = −log p(y | x)` (up to an additive constant). `+∞` states a zero
    /// likelihood (a hard constraint, a gate): `sir` and `mcl` give the particle weight 0 (an error
    /// when every particle has it); filters that move particles along `∇L` refuse it. NaN and `−∞`
    /// are errors everywhere.
    fn loss(&self, x: &[f64]) -> f64;

    /// Loss and its gradient: returns `L(x)` and writes `∇L(x)` into `grad`.
    ///
    /// The default uses central finite differences ([`finite_difference_gradient`]); models with an
    /// analytic gradient should override it.
    fn loss_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        finite_difference_gradient(|y| self.loss(y), x, grad, 1e-6);
        self.loss(x)
    }

    /// Loss of a particle that carries per-particle state: `state` is its row of the particle set's
    /// payload (empty when the set has none) — e.g. a regulariser anchored at the particle's own
    /// previous-task parameters. The model never sees the particle's row number, so state that
    /// belongs to a particle moves with it when resampling reorders rows. Defaults to [`Model::loss`].
    fn particle_loss(&self, x: &[f64], _state: &[f64]) -> f64 {
        self.loss(x)
    }

    /// Loss and gradient of a particle with payload row `state`; defaults to [`Model::loss_grad`].
    fn particle_loss_grad(&self, x: &[f64], _state: &[f64], grad: &mut [f64]) -> f64 {
        self.loss_grad(x, grad)
    }

    /// The Gauss–Newton curvature `J(x)` of the observation loss (for `L = ½ r(x)ᵀ W r(x)`,
    /// `J = ∂rᵀ W ∂r`), written row-major into `out` (`m × m`); returns `false` (writing nothing)
    /// when the model does not give one. Newton moves need it.
    fn curvature(&self, _x: &[f64], _out: &mut [f64]) -> bool {
        false
    }

    /// The current observation as a linear-Gaussian one, when the model is one (or is linearised
    /// as one): ensemble Kalman analyses need it. Its loss must then be `½(y − Hx)ᵀR⁻¹(y − Hx)`.
    fn linear_observation(&self) -> Option<LinearObservation> {
        None
    }

    /// An upper bound on the Lipschitz constant of `∇L` (the largest Hessian eigenvalue), when known.
    ///
    /// Gradient moves use it to split a step `η` into `K = ⌈η·Lip⌉` stable sub-moves.
    fn gradient_lipschitz(&self) -> Option<f64> {
        None
    }
}

/// Central finite-difference gradient: `g_k = (f(x + h e_k) − f(x − h e_k)) / 2h`, with `h` scaled by `max(1, |x_k|)`.
pub fn finite_difference_gradient(f: impl Fn(&[f64]) -> f64, x: &[f64], grad: &mut [f64], h: f64) {
    let mut y = x.to_vec();
    for k in 0..x.len() {
        let hk = h * x[k].abs().max(1.0);
        y[k] = x[k] + hk;
        let fp = f(&y);
        y[k] = x[k] - hk;
        let fm = f(&y);
        y[k] = x[k];
        grad[k] = (fp - fm) / (2.0 * hk);
    }
}

/// Largest relative error between an analytic and a finite-difference gradient, for tests:
/// `max_k |g_k − ĝ_k| / max(1, |ĝ_k|)`.
pub fn gradient_check<M: Model + ?Sized>(model: &M, x: &[f64], h: f64) -> f64 {
    let mut analytic = vec![0.0; x.len()];
    model.loss_grad(x, &mut analytic);
    let mut numeric = vec![0.0; x.len()];
    finite_difference_gradient(|y| model.loss(y), x, &mut numeric, h);
    analytic
        .iter()
        .zip(&numeric)
        .map(|(a, n)| (a - n).abs() / n.abs().max(1.0))
        .fold(0.0, f64::max)
}
