//! The Newton RF-PF move (set-level): the RF-PF drift preconditioned by the posterior covariance of
//! a Gaussian prior fitted to the cloud and the Gauss–Newton curvature of the observation loss,
//!
//! ```text
//! p_i ← p_i − η · (Σ̂_α⁻¹ + J̄)⁻¹ · [∇L(p_i) + pair_i],     Σ̂_α = (1−α)Σ̂ + α·s·I,
//! ```
//!
//! with `Σ̂` the cloud's covariance (1/(n−1)), shrunk toward a floor `s` (default `tr Σ̂/m`) so that
//! it stays invertible for a collapsed cloud or `n = 1` (`α` fixed or the OAS rule, see
//! [`Shrinkage`]); `Σ̂_α` *is* the prior (the motion prior is not added again). With inflation
//! `λ ≠ 1` the cloud is first spread about its mean, `p_i ← μ + λ(p_i − μ)`, and the move runs on
//! the inflated cloud. `J̄ = J(μ)` is the model's Gauss–Newton curvature at the cloud mean `μ` (the
//! round's linearisation point), and `P = (Σ̂_α⁻¹ + J̄)⁻¹` is formed once per move.
//!
//! **Spread (square-root rule).** A deterministic per-particle Newton step would shrink the spread
//! below the posterior's (to `P − PJP`). Instead the mean and the offsets `d_i = p_i − μ` move
//! separately:
//!
//! ```text
//! μ'   = μ − η P ḡ − η mean_i(π_i)
//! d_i' = T_η d_i − η [ P (g_i − ḡ − J̄ d_i) + (π_i − mean π) ],   T_η = (1−η) I + η P^{1/2} Σ̂_b^{−1/2}
//! ```
//!
//! where `g_i = ∇L(p_i)`, `ḡ` their mean, `π_i` the pair displacement below and `Σ̂_b = Σ̂` when it
//! is positive definite (`n > m`), else `Σ̂_α`. For a quadratic loss `L = ½(x−x*)ᵀJ(x−x*)` the
//! residual `g_i − ḡ − J d_i` vanishes, so with `η = 1` and no pair term the mean lands exactly on
//! the Gaussian posterior mean `P(Σ̂_α⁻¹μ + Jx*)` and the cloud's covariance becomes exactly `P`
//! (the ETKF's square-root analysis; tested). For a non-quadratic loss the residual carries each
//! particle's own curvature information as a Newton correction in the `P` metric; `η < 1` damps the
//! whole move (a Levenberg–Marquardt-like trust region), and a move whose mean loss rises is taken
//! at half the step, up to `backtrack` times.
//!
//! **Spread bound.** Where the loss is flatter at the particles than its curvature at the mean
//! predicts (a robust loss's tails, saturated weights), `−P(g_i − ḡ − J̄d_i) ≈ PJ̄d_i` pushes far
//! particles outward, and `T_η + PJ̄` can exceed 1 (in 1-D with `J̄Σ̂ = 1`: `0.71 + 0.5`); repeated,
//! that widening compounds without limit. The new offsets `D'` are therefore kept within
//!
//! ```text
//! B = L U max(Λ, 1) Uᵀ Lᵀ,     Σ̂_α = LLᵀ,     L⁻¹ C_lin L⁻ᵀ = U Λ Uᵀ,     C_lin = cov(T_η D),
//! ```
//!
//! the least upper bound, in that eigenbasis, of the prior `Σ̂_α` and of the spread the linear
//! part alone gives (which exceeds `Σ̂_α` where `η < 1` or `n ≤ m` keeps more of the sample
//! covariance than the shrunk prior has): with `B = GGᵀ`, `Y = G⁻¹D'` and `YYᵀ/(n−1) = VMVᵀ`,
//!
//! ```text
//! D' ← G V min(1, M^{−1/2}) Vᵀ Y,     so that     cov(D') ⪯ B.
//! ```
//!
//! The clip is skipped when `max M ≤ 1 + 1e-12`: on a linear-Gaussian model `D' = T_η D`, so the
//! Kalman equalities above are untouched; the mean is kept (a linear map of zero-mean offsets).
//!
//! **Pair term in the `P` metric.** With `P = LLᵀ` and whitened positions `z_i = L⁻¹p_i` the RF-PF
//! pair sum is taken among the `z_i` with the paper's kernel (`ε = (γ/C_m)^{1/(2−m)}`, strength
//! `(m−2)/ε²·L̃_i`) and mapped back: `π_i = L · ((m−2)/ε²) · L̃_i · S_i(z)`.

use super::ensemble_space::{self, Subspace};
use super::shrinkage::{shrunk, Shrinkage};
use super::{gradient_move::evaluate_with_gradients, PairConfig, SetCtx};
use crate::core::error::{Error, Result};
use crate::core::filter::interaction;
use crate::core::filter::model::Model;
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

/// Parameters of the Newton move.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewtonConfig {
    /// Step fraction `η ∈ (0, 1]` (1: the full Gauss–Newton / Kalman step).
    pub eta: f64,
    /// Shrinkage `α` of the cloud covariance toward `s·I` (fixed in `[0, 1]`, or the OAS rule).
    pub shrinkage: Shrinkage,
    /// Multiplicative inflation `λ > 0` of the cloud about its mean before the move (1: none).
    pub inflation: f64,
    /// The floor `s` in the state's units² (`None`: `tr Σ̂ / m`).
    pub floor: Option<f64>,
    /// The RF-PF pair term, in the `P` metric (None: off).
    pub pair: Option<PairConfig>,
    /// How many times a move whose mean loss rises is retried at half the step (0: never).
    pub backtrack: usize,
    /// Where the move is computed: the state space or the ensemble space ([`Space`]).
    pub space: Space,
}

/// Where the Newton move is computed (the same move either way, up to rounding; see
/// the `ensemble_space` module).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Space {
    /// The ensemble space when the model gives a linear observation and `2n + k ≤ m/2`, else the
    /// state space.
    #[default]
    Auto,
    /// Always the state space (`m × m` matrices, refused beyond the memory budget).
    State,
    /// Always the ensemble space (refused for a model without a linear observation).
    Ensemble,
}

impl Default for NewtonConfig {
    /// `η = 0.7`, `α = min(1, 0.8·m/n)`, `λ = 1.02`, floor `tr Σ̂/m`, no pair term, no backtracking —
    /// chosen on `bench tracking` seeds 100–109 (m ∈ {10, 50, 100}, n ∈ {50, 100, 300}). A fixed
    /// `α = 0.8` (the former default) left a cloud with `n > m` overconfident (NEES/d 3.9 at m = 100,
    /// n = 300): it replaces 80 % of a full-rank sample covariance by the isotropic target, so the
    /// believed variance of a weakly observed direction settles near `s + q(1 − α)/α` instead of
    /// growing with the random walk. Letting `α` fade like `m/n`, a 2 % inflation against the
    /// ensemble's sampling error and a damped step bring NEES/d to 1.5 there and keep RMSE.
    fn default() -> Self {
        Self {
            eta: 0.7,
            shrinkage: Shrinkage::Ratio { ratio: 0.8 },
            inflation: 1.02,
            floor: None,
            pair: None,
            backtrack: 0,
            space: Space::Auto,
        }
    }
}

impl NewtonConfig {
    /// `η ∈ (0, 1]`, `α ∈ [0, 1]`, `λ` and `s` finite and positive.
    pub(crate) fn validate(&self) -> Result<()> {
        if !(self.eta > 0.0 && self.eta <= 1.0) {
            return Err(Error::param("eta", self.eta, "must lie in (0, 1]"));
        }
        self.shrinkage.validate()?;
        if !(self.inflation > 0.0 && self.inflation.is_finite()) {
            return Err(Error::param(
                "inflation",
                self.inflation,
                "must be finite and positive",
            ));
        }
        match self.floor {
            Some(s) if !(s > 0.0 && s.is_finite()) => {
                Err(Error::param("floor", s, "must be finite and positive"))
            }
            _ => Ok(()),
        }
    }
}

/// The cloud as mean and offsets (`m × n`, column `i` = `p_i − μ`).
pub(super) struct Cloud {
    pub mean: DVector<f64>,
    pub offsets: DMatrix<f64>,
}

impl Cloud {
    /// The cloud of `n` row-major particles of dimension `m`.
    pub fn of(x: &[f64], n: usize, m: usize) -> Self {
        let pts = DMatrix::from_column_slice(m, n, x);
        let mean = pts.column_mean();
        let mut offsets = pts;
        offsets.column_iter_mut().for_each(|mut c| c -= &mean);
        Self { mean, offsets }
    }

    /// `Σ̂ = D Dᵀ / (n − 1)` (zero for one particle).
    pub fn covariance(&self) -> DMatrix<f64> {
        let n = self.offsets.ncols();
        &self.offsets * self.offsets.transpose() / (n.max(2) - 1) as f64
    }
}

/// The Newton move on the whole set (see the module docs).
pub(super) fn set<M: Model + ?Sized>(cfg: &NewtonConfig, model: &M, cx: &mut SetCtx) -> Result<()> {
    let (n, m) = (cx.particles.len(), cx.particles.dim());
    let mut cloud = Cloud::of(cx.particles.as_slice(), n, m);
    if cfg.inflation != 1.0 {
        cloud.offsets *= cfg.inflation;
        cx.set_positions(&positions(&cloud.mean, &cloud.offsets), "inflated state")?;
    }
    let mut grads = std::mem::take(&mut cx.buffers.0);
    grads.resize(n * m, 0.0);
    let losses = evaluate_with_gradients(model, cx.particles, &mut grads, cx.t);
    let result = losses.and_then(|losses| {
        let g = DMatrix::from_column_slice(m, n, &grads);
        let co = Coordinates::of(cfg.space, model, cloud, g, cx.t)?;
        let sigma = co.cloud.covariance();
        let floor = cfg.floor.unwrap_or(sigma.trace() / m as f64);
        if !(floor > 0.0 && floor.is_finite()) {
            return Err(Error::param(
                "floor",
                floor,
                "the cloud has no spread: give rfpf-newton a positive floor s",
            ));
        }
        let prior = shrunk(&sigma, cfg.shrinkage.alpha_at(&sigma, n, m), floor);
        let (p, t1) = posterior_and_transform(&prior, &sigma, &co.j, n, m, cx.t)?;
        let pair = match &co.space {
            None => {
                let x = DMatrix::from_column_slice(m, n, cx.particles.as_slice());
                pair_displacements(cfg.pair, &x, None, &losses, &p, m)?
            }
            Some((b, _)) => {
                pair_displacements(cfg.pair, &co.cloud.offsets, Some(b), &losses, &p, m)?
            }
        };
        let step = Move {
            co: &co,
            prior: &prior,
            p: &p,
            t1: &t1,
            pair: &pair,
        };
        let mut eta = cfg.eta;
        let mut next = step.positions(eta);
        for _ in 0..cfg.backtrack {
            if mean_loss(model, cx.particles, &next) <= mean_loss_of(&losses) {
                break;
            }
            eta *= 0.5;
            next = step.positions(eta);
        }
        cx.set_positions(&next, "state after Newton move")?;
        cx.record_losses(true, &losses);
        cx.diag.substeps += 1;
        Ok(())
    });
    cx.buffers.0 = grads;
    result
}

/// The coordinates the move runs in: the state space itself, or the ensemble space of
/// [`Subspace`] (where the cloud's mean is 0 and positions are lifted about the state-space mean).
struct Coordinates {
    /// The ensemble space's basis and the cloud's state-space mean (`None`: the state space).
    space: Option<(Subspace, DVector<f64>)>,
    cloud: Cloud,
    /// The particles' loss gradients (columns).
    g: DMatrix<f64>,
    /// `J̄`, symmetric.
    j: DMatrix<f64>,
}

impl Coordinates {
    /// The ensemble space when `space` asks for it, or (`auto`) when the model gives a linear
    /// observation and it pays off ([`ensemble_space::worth_it`]); else the state space (refused
    /// when its `m × m` matrices do not fit the memory budget) with `J̄ = J(μ)` from the model.
    fn of<M: Model + ?Sized>(
        space: Space,
        model: &M,
        cloud: Cloud,
        g: DMatrix<f64>,
        t: usize,
    ) -> Result<Self> {
        let (m, n) = cloud.offsets.shape();
        let (obs, why) = match space {
            Space::State => (None, "space = \"state\""),
            Space::Auto if !ensemble_space::worth_it(m, n, 0) => (None, "2n + k > m/2"),
            Space::Auto => match ensemble_space::observation(model, m)? {
                Some(o) if ensemble_space::worth_it(m, n, o.h.nrows()) => (Some(o), ""),
                Some(_) => (None, "2n + k > m/2"),
                None => (None, "the model gives no linear observation"),
            },
            Space::Ensemble => match ensemble_space::observation(model, m)? {
                Some(o) => (Some(o), ""),
                None => {
                    return Err(Error::param(
                        "space",
                        "ensemble",
                        "needs the model's linear observation (Model::linear_observation), which this model does not give",
                    ))
                }
            },
        };
        if let Some(obs) = obs {
            let basis = Subspace::of(&cloud.offsets, &g, &obs)?;
            let offsets = basis.reduce(&cloud.offsets);
            return Ok(Self {
                cloud: Cloud {
                    mean: DVector::zeros(basis.rank()),
                    offsets,
                },
                g: basis.reduce(&g),
                j: basis.curvature(),
                space: Some((basis, cloud.mean)),
            });
        }
        ensemble_space::check_dense(m, why)?;
        let j = curvature_at(
            model,
            cloud.mean.as_slice(),
            t,
            ("filter", "rfpf-newton / gn"),
        )?;
        Ok(Self {
            space: None,
            cloud,
            g,
            j,
        })
    }

    /// Positions (row-major `n × m`) from a mean and offsets in these coordinates.
    fn positions(&self, mean: &DVector<f64>, offsets: &DMatrix<f64>) -> Vec<f64> {
        match &self.space {
            None => positions(mean, offsets),
            Some((b, origin)) => positions(&(origin + b.lift_point(mean)), &b.lift(offsets)),
        }
    }
}

/// The quantities of one move, for trying it at several step sizes.
struct Move<'a> {
    co: &'a Coordinates,
    prior: &'a DMatrix<f64>,
    p: &'a DMatrix<f64>,
    t1: &'a DMatrix<f64>,
    pair: &'a DMatrix<f64>,
}

impl Move<'_> {
    /// The new positions (row-major `n × m`) at step fraction `eta`, the offsets' spread bounded
    /// by `Σ̂_α` ([`bound_spread`]).
    fn positions(&self, eta: f64) -> Vec<f64> {
        let (mean, linear, mut offsets) = self.mean_and_offsets(eta);
        bound_spread(&mut offsets, &linear, self.prior);
        self.co.positions(&mean, &offsets)
    }

    /// The new mean, the linear part `T_η D` of the offsets and the offsets before the spread
    /// bound, at step fraction `eta`.
    fn mean_and_offsets(&self, eta: f64) -> (DVector<f64>, DMatrix<f64>, DMatrix<f64>) {
        let (g, j, cloud) = (&self.co.g, &self.co.j, &self.co.cloud);
        let m = g.nrows();
        let g_mean = g.column_mean();
        let pair_mean = self.pair.column_mean();
        let mean = &cloud.mean - (self.p * &g_mean + &pair_mean) * eta;
        let t = DMatrix::identity(m, m) * (1.0 - eta) + self.t1 * eta;
        // Residuals g_i − ḡ − J d_i of the per-particle gradients from the linear prediction.
        let mut resid = g - j * &cloud.offsets;
        resid.column_iter_mut().for_each(|mut c| c -= &g_mean);
        let mut pair_dev = self.pair.clone();
        pair_dev.column_iter_mut().for_each(|mut c| c -= &pair_mean);
        let linear = &t * &cloud.offsets;
        let offsets = &linear - (self.p * resid + pair_dev) * eta;
        (mean, linear, offsets)
    }
}

/// Largest eigenvalue of the offsets' covariance in the bound's metric above which the spread is
/// clipped: `1 + 1e-12`, so that rounding where the offsets meet the bound (a linear-Gaussian
/// model, or a direction the observation leaves alone) does not trigger it.
const SPREAD_SLACK: f64 = 1e-12;

/// Clip the offsets `D` (`m × n`, zero-mean columns) so that their covariance stays within
/// `B = Σ̂_α^{1/2} U max(Λ, 1) Uᵀ Σ̂_α^{1/2}`, the least upper bound (in the eigenbasis of the
/// whitened linear spread `Σ̂_α^{−1/2} C_lin Σ̂_α^{−1/2} = UΛUᵀ`) of the prior `Σ̂_α = prior` and
/// of the linear part's spread `C_lin = cov(linear)` (see the module docs): with `B = GGᵀ`,
/// `Y = G⁻¹D` and `YYᵀ/(n−1) = VMVᵀ`, `D ← G V min(1, M^{−1/2}) Vᵀ Y`. Returns the largest
/// eigenvalue of `cov(D)` in the bound's metric before the clip (≤ 1 + 1e-12: nothing changed;
/// NaN: `Σ̂_α` not positive definite, nothing changed).
pub(super) fn bound_spread(
    offsets: &mut DMatrix<f64>,
    linear: &DMatrix<f64>,
    prior: &DMatrix<f64>,
) -> f64 {
    let n1 = (offsets.ncols().max(2) - 1) as f64;
    let Some(chol) = prior.clone().cholesky() else {
        return f64::NAN;
    };
    let l = chol.l();
    let (Some(z), Some(zl)) = (
        l.solve_lower_triangular(offsets),
        l.solve_lower_triangular(linear),
    ) else {
        return f64::NAN;
    };
    // The bound in whitened coordinates, B_w = U max(Λ, 1) Uᵀ, and its square root and inverse.
    let lin = (&zl * zl.transpose() / n1).symmetric_eigen();
    let u = &lin.eigenvectors;
    let up = |f: &dyn Fn(f64) -> f64| {
        u * DMatrix::from_diagonal(&lin.eigenvalues.map(|v| f(v.max(1.0)))) * u.transpose()
    };
    let (g, g_inv) = (up(&f64::sqrt), up(&|v| v.sqrt().recip()));
    let y = &g_inv * z;
    let eig = (&y * y.transpose() / n1).symmetric_eigen();
    let top = eig.eigenvalues.max();
    if top <= 1.0 + SPREAD_SLACK {
        return top;
    }
    let clip = eig
        .eigenvalues
        .map(|v| if v > 1.0 { v.sqrt().recip() } else { 1.0 });
    let v = &eig.eigenvectors;
    *offsets = l * g * (v * DMatrix::from_diagonal(&clip) * v.transpose()) * y;
    top
}

/// Positions as a row-major buffer (`n × m`) from a mean and offsets (`m × n`, column = particle).
pub(super) fn positions(mean: &DVector<f64>, offsets: &DMatrix<f64>) -> Vec<f64> {
    let mut out = Vec::with_capacity(offsets.len());
    for c in offsets.column_iter() {
        out.extend(c.iter().zip(mean.iter()).map(|(d, mu)| mu + d));
    }
    out
}

/// `J(μ)` from the model, checked and symmetrised; for a model without `Model::curvature` but
/// with a linear observation, `HᵀR⁻¹H` (what the ensemble space uses, so that both forms run for
/// such a model). `user` (a parameter name and value) is what the error for a model with neither
/// names; `t` is the update a non-finite curvature is reported at.
pub(crate) fn curvature_at<M: Model + ?Sized>(
    model: &M,
    mean: &[f64],
    t: usize,
    user: (&str, &str),
) -> Result<DMatrix<f64>> {
    let m = mean.len();
    let mut j = vec![0.0; m * m];
    if !model.curvature(mean, &mut j) {
        if let Some(obs) = ensemble_space::observation(model, m)? {
            let f = ensemble_space::sqrt_curvature(&obs)?;
            return Ok(f.tr_mul(&f));
        }
        return Err(Error::param(
            user.0,
            user.1,
            "needs the model's Gauss–Newton curvature (Model::curvature) or a linear observation (Model::linear_observation), which this model does not give",
        ));
    }
    if let Some(k) = j.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            what: "curvature".into(),
            step: t,
            particle: 0,
            value: j[k],
        });
    }
    let j = DMatrix::from_row_slice(m, m, &j);
    Ok((&j + j.transpose()) * 0.5)
}

/// `P = (Σ̂_α⁻¹ + J)⁻¹` and `T₁ = P^{1/2} Σ̂_b^{−1/2}` (`Σ̂_b = Σ̂` when positive definite,
/// `n > m` and the matrices are the state space's own, else `Σ̂_α`), for a state of dimension `m`
/// (the matrices' own size, or larger in the ensemble space, where `Σ̂` is singular in the state).
pub(super) fn posterior_and_transform(
    prior: &DMatrix<f64>,
    sigma: &DMatrix<f64>,
    j: &DMatrix<f64>,
    n: usize,
    m: usize,
    t: usize,
) -> Result<(DMatrix<f64>, DMatrix<f64>)> {
    let singular =
        |what: &str| Error::Other(format!("update {t}: {what} is not positive definite"));
    let prior_inv = prior
        .clone()
        .cholesky()
        .ok_or_else(|| singular("the shrunk cloud covariance Σ̂_α"))?
        .inverse();
    let p = (prior_inv + j)
        .cholesky()
        .ok_or_else(|| singular("Σ̂_α⁻¹ + J"))?
        .inverse();
    let full = sigma.nrows() == m;
    let base = match n > m && full && sigma.clone().cholesky().is_some() {
        true => sigma,
        false => prior,
    };
    let t1 = sym_power(&p, 0.5) * sym_power(base, -0.5);
    Ok((p, t1))
}

/// `A^q` of a symmetric positive semi-definite matrix by its eigen-decomposition (eigenvalues
/// clamped at 0 for `q > 0`, at the largest × 1e-14 for `q < 0`).
pub(super) fn sym_power(a: &DMatrix<f64>, q: f64) -> DMatrix<f64> {
    let eig = a.clone().symmetric_eigen();
    let top = eig.eigenvalues.max().max(0.0);
    let lo = if q < 0.0 { top * 1e-14 } else { 0.0 };
    let d = eig.eigenvalues.map(|l| l.max(lo).powf(q));
    &eig.eigenvectors * DMatrix::from_diagonal(&d) * eig.eigenvectors.transpose()
}

/// The pair displacements `π_i` (columns) in the `P` metric; zeros without a pair term. `x` holds
/// the particles (columns; in the ensemble space their offsets in the basis `space`, where the
/// whitened points are lifted to the state space for the kernel, whose exponent is the state
/// dimension `m`, and the sums brought back).
fn pair_displacements(
    pair: Option<PairConfig>,
    x: &DMatrix<f64>,
    space: Option<&Subspace>,
    losses: &[f64],
    p: &DMatrix<f64>,
    m: usize,
) -> Result<DMatrix<f64>> {
    let Some(cfg) = pair else {
        return Ok(DMatrix::zeros(x.nrows(), x.ncols()));
    };
    let n = x.ncols();
    let l = p
        .clone()
        .cholesky()
        .ok_or_else(|| Error::Other("P is not positive definite".into()))?
        .l();
    let eps = interaction::epsilon(cfg.gamma.unwrap_or(0.1 * n as f64), m)?;
    let z = l
        .solve_lower_triangular(x)
        .ok_or_else(|| Error::Other("P's Cholesky factor is singular".into()))?;
    let z = match space {
        Some(b) => b.lift(&z),
        None => z,
    };
    let mut sums = vec![0.0; n * m];
    interaction::pair_sums(z.as_slice(), n, m, eps, &mut sums);
    let mean = losses.iter().sum::<f64>() / n as f64;
    let c = (m as f64 - 2.0) / (eps * eps);
    let mut s = DMatrix::from_column_slice(m, n, &sums);
    for (mut col, li) in s.column_iter_mut().zip(losses) {
        col *= c * (li - mean);
    }
    let s = match space {
        Some(b) => b.reduce(&s),
        None => s,
    };
    Ok(l * s)
}

/// Mean loss of the positions `next` (row-major), with each particle's payload.
fn mean_loss<M: Model + ?Sized>(
    model: &M,
    set: &crate::core::filter::particles::ParticleSet,
    next: &[f64],
) -> f64 {
    use rayon::prelude::*;
    let m = set.dim();
    // Collected first and summed in particle order: the same number at any thread count.
    let losses: Vec<f64> = (next.par_chunks(m).zip(set.rows()))
        .map(|(x, (_, s))| model.particle_loss(x, s))
        .collect();
    mean_loss_of(&losses)
}

fn mean_loss_of(losses: &[f64]) -> f64 {
    losses.iter().sum::<f64>() / losses.len() as f64
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::shrinkage::ShrinkageRule;
    use super::*;
    use crate::core::filter::model::LinearObservation;
    use crate::core::filter::presets::{NewtonParams, Preset};
    use crate::core::filter::{Filter, ParticleSet};
    use rand::RngCore;
    use rand_distr::{Distribution, StandardNormal};

    /// Static linear-Gaussian observation `y = Hx + N(0, R)` with `L = ½(y − Hx)ᵀR⁻¹(y − Hx)`.
    pub(crate) struct Linear {
        pub obs: LinearObservation,
    }

    impl Linear {
        /// A fixed 3-D state seen through 2 correlated observations.
        pub(crate) fn example() -> Self {
            Self {
                obs: LinearObservation {
                    h: DMatrix::from_row_slice(2, 3, &[1.0, 0.5, 0.0, 0.0, 1.0, -0.7]),
                    y: DVector::from_vec(vec![0.8, -0.3]),
                    r: DMatrix::from_row_slice(2, 2, &[0.2, 0.05, 0.05, 0.3]),
                },
            }
        }

        fn r_inv(&self) -> DMatrix<f64> {
            self.obs.r.clone().try_inverse().unwrap()
        }
    }

    impl Model for Linear {
        fn dim(&self) -> usize {
            self.obs.h.ncols()
        }
        fn sample_prior(&self, rng: &mut dyn RngCore, out: &mut [f64]) {
            out.iter_mut().for_each(|v| *v = StandardNormal.sample(rng));
        }
        fn loss(&self, x: &[f64]) -> f64 {
            let e = &self.obs.y - &self.obs.h * DVector::from_column_slice(x);
            0.5 * (e.transpose() * self.r_inv() * &e)[0]
        }
        fn loss_grad(&self, x: &[f64], g: &mut [f64]) -> f64 {
            let e = &self.obs.y - &self.obs.h * DVector::from_column_slice(x);
            let grad = -(self.obs.h.transpose() * self.r_inv() * &e);
            g.copy_from_slice(grad.as_slice());
            self.loss(x)
        }
        fn curvature(&self, _x: &[f64], out: &mut [f64]) -> bool {
            let j = self.obs.h.transpose() * self.r_inv() * &self.obs.h;
            out.copy_from_slice(j.transpose().as_slice());
            true
        }
        fn linear_observation(&self) -> Option<LinearObservation> {
            Some(self.obs.clone())
        }
    }

    /// `L = |x|²` in 3-D, without a Gauss–Newton curvature (what Newton steps must refuse).
    pub(crate) struct Flat;

    impl Model for Flat {
        fn dim(&self) -> usize {
            3
        }
        fn sample_prior(&self, _: &mut dyn RngCore, out: &mut [f64]) {
            out.fill(0.0);
        }
        fn loss(&self, x: &[f64]) -> f64 {
            x.iter().map(|v| v * v).sum()
        }
    }

    /// Mean and covariance (1/(n−1)) of a particle set.
    pub(crate) fn moments(p: &ParticleSet) -> (DVector<f64>, DMatrix<f64>) {
        let c = Cloud::of(p.as_slice(), p.len(), p.dim());
        let cov = c.covariance();
        (c.mean, cov)
    }

    /// The Kalman update of prior `N(μ, Σ)` by the linear observation, in gain form (valid for a
    /// singular Σ): `K = ΣHᵀ(HΣHᵀ + R)⁻¹`, `(μ + K(y − Hμ), Σ − KHΣ)`.
    pub(crate) fn kalman(
        model: &Linear,
        mu: &DVector<f64>,
        sigma: &DMatrix<f64>,
    ) -> (DVector<f64>, DMatrix<f64>) {
        let h = &model.obs.h;
        let s = h * sigma * h.transpose() + &model.obs.r;
        let k = sigma * h.transpose() * s.try_inverse().unwrap();
        let mean = mu + &k * (&model.obs.y - h * mu);
        (mean, sigma - &k * h * sigma)
    }

    fn max_diff(a: &DMatrix<f64>, b: &DMatrix<f64>) -> f64 {
        (a - b).abs().max()
    }

    /// With η = 1 and the pair term off, one Newton move on a linear-Gaussian observation lands the
    /// cloud's mean on the Kalman posterior mean computed with Σ̂_α as the prior, and (n > m) its
    /// covariance on that posterior's P — to 1e-9 (the arithmetic is a few 3×3 factorisations).
    #[test]
    fn one_newton_move_is_the_kalman_update_with_the_shrunk_prior() {
        let model = Linear::example();
        for (alpha, floor) in [(0.0, None), (0.5, None), (0.8, Some(0.3))] {
            let params = NewtonParams {
                eta: 1.0,
                shrinkage: Shrinkage::Fixed(alpha),
                inflation: 1.0,
                floor,
                pair: false,
                ..Default::default()
            };
            let set = ParticleSet::from_prior(&model, 40, 3).unwrap();
            let (mu, sigma) = moments(&set);
            let s = floor.unwrap_or(sigma.trace() / 3.0);
            let prior = &sigma * (1.0 - alpha) + DMatrix::identity(3, 3) * (alpha * s);
            let (want_mean, want_cov) = kalman(&model, &mu, &prior);
            let mut f = Filter::new(Preset::RfpfNewton(params).steps(), set, 0).unwrap();
            f.update(&model).unwrap();
            let (mean, cov) = moments(f.particles());
            let dm = (&mean - &want_mean).abs().max();
            assert!(dm < 1e-9, "α {alpha}: mean off by {dm}");
            let dc = max_diff(&cov, &want_cov);
            assert!(dc < 1e-9, "α {alpha}: covariance off by {dc}");
        }
    }

    /// What the tracker shows per particle (its loss beside its pose): an update whose move is
    /// set-level reports every particle's loss, as a row-local move does.
    #[test]
    fn set_level_moves_report_every_particles_loss() {
        use crate::core::filter::{FilterKind, FilterSpec};
        let model = Linear::example();
        for kind in [FilterKind::RfpfNewton, FilterKind::Svgd, FilterKind::Rfpf] {
            let mut f = FilterSpec::new(kind, 12, 3).build(&model).unwrap();
            let d = f.update(&model).unwrap();
            assert_eq!(f.last_losses().len(), 12, "{kind}");
            assert!(f.last_losses().iter().all(|l| l.is_finite()), "{kind}");
            assert!(d.loss_mean.is_finite() && d.loss_std.is_finite(), "{kind}");
        }
    }

    /// The Newton move refuses a model without curvature, and a cloud without spread and no floor.
    #[test]
    fn refusals_are_clear() {
        let steps = Preset::RfpfNewton(NewtonParams::default()).steps();
        let set = ParticleSet::from_prior(&Linear::example(), 5, 1).unwrap();
        let e = Filter::new(steps.clone(), set, 0)
            .unwrap()
            .update(&Flat)
            .unwrap_err();
        assert!(e.to_string().contains("curvature"), "{e}");
        let collapsed = ParticleSet::from_prior(&Flat, 5, 1).unwrap();
        let e = Filter::new(steps, collapsed, 0)
            .unwrap()
            .update(&Linear::example())
            .unwrap_err();
        assert!(e.to_string().contains("floor"), "{e}");
        let params = NewtonParams {
            space: Space::Ensemble,
            ..Default::default()
        };
        let set = ParticleSet::from_prior(&Linear::example(), 5, 1).unwrap();
        let e = Filter::new(Preset::RfpfNewton(params).steps(), set, 0)
            .unwrap()
            .update(&Flat)
            .unwrap_err();
        assert!(e.to_string().contains("linear observation"), "{e}");
    }

    /// With the pair term on, the move stays finite and keeps the mean's Kalman step (the pair
    /// displacements are antisymmetric in pairs of particles only up to L̃ weights, so the mean may
    /// move a little): the cloud stays near the posterior.
    #[test]
    fn the_pair_term_keeps_the_move_finite_and_near_the_posterior() {
        let model = Linear::example();
        let set = ParticleSet::from_prior(&model, 30, 5).unwrap();
        let (mu, sigma) = moments(&set);
        let prior = &sigma * 0.2 + DMatrix::identity(3, 3) * (0.8 * sigma.trace() / 3.0);
        let (want, _) = kalman(&model, &mu, &prior);
        let params = NewtonParams {
            eta: 1.0,
            shrinkage: Shrinkage::Fixed(0.8),
            inflation: 1.0,
            ..Default::default()
        };
        let steps = Preset::RfpfNewton(params).steps();
        let mut f = Filter::new(steps, set, 0).unwrap();
        f.update(&model).unwrap();
        let (mean, _) = moments(f.particles());
        assert!((&mean - &want).norm() < 0.2, "{mean} vs {want}");
    }

    /// Huber loss per coordinate about 0, `L = Σ_k ρ(x_k)/r` with `ρ(e) = e²/2` for `|e| ≤ δ` and
    /// `δ(|e| − δ/2)` beyond; curvature `I/r` everywhere (the quadratic core's, as a robust
    /// loss's Gauss–Newton weights at an inlier give it), while the outer particles see a flat
    /// gradient `±δ/r`.
    struct Huber {
        delta: f64,
        r: f64,
    }

    impl Model for Huber {
        fn dim(&self) -> usize {
            3
        }
        fn sample_prior(&self, rng: &mut dyn RngCore, out: &mut [f64]) {
            out.iter_mut().for_each(|v| *v = StandardNormal.sample(rng));
        }
        fn loss(&self, x: &[f64]) -> f64 {
            let rho = |e: f64| match e.abs() <= self.delta {
                true => 0.5 * e * e,
                false => self.delta * (e.abs() - 0.5 * self.delta),
            };
            x.iter().map(|e| rho(*e)).sum::<f64>() / self.r
        }
        fn loss_grad(&self, x: &[f64], g: &mut [f64]) -> f64 {
            for (gk, e) in g.iter_mut().zip(x) {
                *gk = e.clamp(-self.delta, self.delta) / self.r;
            }
            self.loss(x)
        }
        fn curvature(&self, _x: &[f64], out: &mut [f64]) -> bool {
            let j = DMatrix::<f64>::identity(3, 3) / self.r;
            out.copy_from_slice(j.as_slice());
            true
        }
    }

    /// A Huber loss with `δ = 0.05 ≪` the cloud's spread 1: the square-root rule alone moves an
    /// outer particle to `(T₁ + PJ̄) d ≈ 1.21 d` (1-D: `J̄Σ̂ = 10`, `T₁ = 0.30`, `PJ̄ = 0.91`), so
    /// the offsets' covariance exceeds the prior `Σ̂_α` (largest eigenvalue in its metric ≈ 1.4
    /// for a standard normal cloud; the test asks > 1.2). The bounded move leaves it ≤ 1 (up to
    /// the rounding of a 3×3 eigen-decomposition, 1e-9) and the mean where the unbounded move put it.
    #[test]
    fn a_flat_tailed_loss_no_longer_widens_the_cloud() {
        let model = Huber {
            delta: 0.05,
            r: 0.1,
        };
        let (n, m) = (200, 3);
        let set = ParticleSet::from_prior(&model, n, 7).unwrap();
        // The unbounded move by hand (α = 0: Σ̂_α = Σ̂).
        let cloud = Cloud::of(set.as_slice(), n, m);
        let sigma = cloud.covariance();
        let mut grads = vec![0.0; n * m];
        for (x, g) in set.as_slice().chunks(m).zip(grads.chunks_mut(m)) {
            model.loss_grad(x, g);
        }
        let g = DMatrix::from_column_slice(m, n, &grads);
        let co = Coordinates::of(Space::Auto, &model, cloud, g, 0).unwrap();
        let (p, t1) = posterior_and_transform(&sigma, &sigma, &co.j, n, m, 0).unwrap();
        let pair = DMatrix::zeros(m, n);
        let step = Move {
            co: &co,
            prior: &sigma,
            p: &p,
            t1: &t1,
            pair: &pair,
        };
        let (raw_mean, linear, raw) = step.mean_and_offsets(1.0);
        let widened = bound_spread(&mut raw.clone(), &linear, &sigma);
        assert!(
            widened > 1.2,
            "the unbounded move should widen: λ_max {widened}"
        );
        let params = NewtonParams {
            eta: 1.0,
            shrinkage: Shrinkage::Fixed(0.0),
            inflation: 1.0,
            pair: false,
            ..Default::default()
        };
        let mut f = Filter::new(Preset::RfpfNewton(params).steps(), set, 0).unwrap();
        f.update(&model).unwrap();
        let after = Cloud::of(f.particles().as_slice(), n, m);
        // Here C_lin = P ⪯ Σ̂_α, so the bound is Σ̂_α itself.
        let top = bound_spread(&mut after.offsets.clone(), &linear, &sigma);
        assert!(
            top <= 1.0 + 1e-9,
            "bounded move: λ_max {top} (was {widened})"
        );
        let dm = (&after.mean - &raw_mean).abs().max();
        assert!(dm < 1e-12, "the bound moved the mean by {dm}");
    }

    /// In the ensemble space (m = 60, n = 8, k = 5: a basis of at most 21 columns) the move gives
    /// the state-space move's positions to 1e-9 relative (both are a few factorisations of
    /// well-conditioned matrices). At this dimension the pair term is below 1e-12 of the move,
    /// so it is checked on its own below.
    #[test]
    fn the_ensemble_space_move_is_the_state_space_move() {
        let (m, n, k) = (60, 8, 5);
        let h = DMatrix::from_fn(k, m, |i, j| (((i * 31 + j * 17) % 13) as f64 - 6.0) / 6.0);
        let r = DMatrix::from_fn(k, k, |i, j| if i == j { 0.2 } else { 0.02 });
        let y = DVector::from_fn(k, |i, _| i as f64 * 0.3 - 0.5);
        let model = Linear {
            obs: LinearObservation { h, y, r },
        };
        // The shrinkage rules read the full dimension m, not the basis size.
        for shrinkage in [
            Shrinkage::Ratio { ratio: 0.05 },
            Shrinkage::Rule(ShrinkageRule::Oas),
        ] {
            let run = |space: Space| {
                let params = NewtonParams {
                    shrinkage,
                    space,
                    ..Default::default()
                };
                three_updates(&model, params, n, 3)
            };
            // auto: the ensemble space here (2n + k = 21 ≤ m/2).
            let (auto, a, b) = (run(Space::Auto), run(Space::Ensemble), run(Space::State));
            assert_eq!(auto, a, "auto should take the ensemble space here");
            assert_close(&a, &b, 1e-9, &format!("{shrinkage:?}"));
        }
    }

    /// A linear observation plus a ridge `½c‖x‖²` whose gradient `c·x` leaves the span of the
    /// observation's rows and of the offsets (it has the mean's direction): the basis must take the
    /// gradients' own directions for the two forms to agree (1e-9 relative, as above). `J̄` is the
    /// observation's `HᵀR⁻¹H` in both forms (the ridge's curvature is left out of `Model::curvature`,
    /// as a Gauss–Newton curvature of the observation alone would).
    #[test]
    fn the_ensemble_space_takes_the_gradients_directions() {
        struct Ridged(Linear, f64);
        impl Model for Ridged {
            fn dim(&self) -> usize {
                self.0.dim()
            }
            fn sample_prior(&self, rng: &mut dyn RngCore, out: &mut [f64]) {
                self.0.sample_prior(rng, out);
                out.iter_mut().for_each(|v| *v += 1.0);
            }
            fn loss(&self, x: &[f64]) -> f64 {
                self.0.loss(x) + 0.5 * self.1 * x.iter().map(|v| v * v).sum::<f64>()
            }
            fn loss_grad(&self, x: &[f64], g: &mut [f64]) -> f64 {
                self.0.loss_grad(x, g);
                g.iter_mut().zip(x).for_each(|(g, x)| *g += self.1 * x);
                self.loss(x)
            }
            fn curvature(&self, x: &[f64], out: &mut [f64]) -> bool {
                self.0.curvature(x, out)
            }
            fn linear_observation(&self) -> Option<LinearObservation> {
                self.0.linear_observation()
            }
        }
        let (m, n, k) = (40, 6, 3);
        let h = DMatrix::from_fn(k, m, |i, j| (((i * 7 + j * 11) % 9) as f64 - 4.0) / 4.0);
        let obs = LinearObservation {
            h,
            y: DVector::from_element(k, 0.4),
            r: DMatrix::identity(k, k) * 0.3,
        };
        let model = Ridged(Linear { obs }, 0.5);
        let run = |space: Space| {
            let params = NewtonParams {
                space,
                ..Default::default()
            };
            three_updates(&model, params, n, 11)
        };
        assert_close(&run(Space::Ensemble), &run(Space::State), 1e-9, "ridge");
    }

    /// The positions after three `rfpf-newton` updates of `n` particles drawn from `model`'s prior.
    fn three_updates<M: Model>(model: &M, params: NewtonParams, n: usize, seed: u64) -> Vec<f64> {
        let set = ParticleSet::from_prior(model, n, seed).unwrap();
        let mut f = Filter::new(Preset::RfpfNewton(params).steps(), set, 0).unwrap();
        for _ in 0..3 {
            f.update(model).unwrap();
        }
        f.particles().as_slice().to_vec()
    }

    /// `a` and `b` agree to `tol` relative to `b`'s largest magnitude.
    fn assert_close(a: &[f64], b: &[f64], tol: f64, what: &str) {
        let scale = b.iter().fold(0.0f64, |s, v| s.max(v.abs()));
        let diff = (a.iter().zip(b)).fold(0.0f64, |s, (u, v)| s.max((u - v).abs()));
        assert!(diff < tol * scale, "{what}: off by {diff} (scale {scale})");
    }

    /// The pair displacements in the ensemble space, lifted, are the state-space ones (m = 12,
    /// n = 5, a kernel wide enough to act: γ = 10⁻⁸), for a `P` that is a matrix of the basis plus a
    /// multiple of the identity on its complement, as the move's is: to 1e-5 relative, as the
    /// kernel rounds the whitened points to f32 and the two forms whiten with different (rotated)
    /// square roots of `P`.
    #[test]
    fn the_pair_term_in_the_ensemble_space_is_the_state_space_one() {
        let (m, n, k) = (12, 5, 1);
        let mut rng = crate::core::filter::rng::stream(4, 0, 0);
        let mut normal = |r, c| DMatrix::from_fn(r, c, |_, _| StandardNormal.sample(&mut rng));
        let x: DMatrix<f64> = normal(m, n);
        let obs = LinearObservation {
            h: normal(k, m),
            y: DVector::zeros(k),
            r: DMatrix::identity(k, k),
        };
        let cloud = Cloud::of(x.as_slice(), n, m);
        let g = obs.h.transpose() * normal(k, n);
        let basis = Subspace::of(&cloud.offsets, &g, &obs).unwrap();
        let rank = basis.rank();
        let a = normal(rank, rank);
        let p_r = &a * a.transpose() + DMatrix::identity(rank, rank);
        let q = basis.lift(&DMatrix::identity(rank, rank));
        let p = &q * &p_r * q.transpose() + (DMatrix::identity(m, m) - &q * q.transpose()) * 0.3;
        let losses: Vec<f64> = (0..n).map(|i| i as f64 * 0.7).collect();
        let cfg = Some(PairConfig { gamma: Some(1e-8) });
        let want = pair_displacements(cfg, &x, None, &losses, &p, m).unwrap();
        let reduced = basis.reduce(&cloud.offsets);
        let got = pair_displacements(cfg, &reduced, Some(&basis), &losses, &p_r, m).unwrap();
        let got = basis.lift(&got);
        let scale = want.abs().max();
        assert!(
            scale > 1e-2,
            "the kernel should act: largest displacement {scale}"
        );
        let diff = (&got - &want).abs().max();
        assert!(diff < 1e-5 * scale, "off by {diff} (scale {scale})");
    }

    #[test]
    fn symmetric_powers_invert_each_other() {
        let a = DMatrix::from_row_slice(2, 2, &[2.0, 0.3, 0.3, 1.0]);
        let r = sym_power(&a, 0.5) * sym_power(&a, -0.5);
        assert!(max_diff(&r, &DMatrix::identity(2, 2)) < 1e-12);
        let sq = sym_power(&a, 0.5);
        assert!(max_diff(&(&sq * &sq), &a) < 1e-12);
    }
}
