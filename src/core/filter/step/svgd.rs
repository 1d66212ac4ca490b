//! Stein variational gradient descent (Liu & Wang 2016) as a set-level move:
//!
//! ```text
//! x_i ← x_i + η φ(x_i),   φ(x_i) = (1/n) Σ_j [ k(x_j, x_i) ∇log p(x_j) + ∇_{x_j} k(x_j, x_i) ],
//! ```
//!
//! with the RBF kernel `k(x, y) = exp(−‖x − y‖²/h)`, the median heuristic `h = med²/ln(n + 1)` (or
//! a fixed `h`), and `K` sub-steps per observation, each recomputing gradients, bandwidth and kernel
//! sums. The kernel sums share RF-PF's tiled pair kernel
//! ([`crate::core::filter::interaction::svgd_sums`]): results do not depend on the thread count.
//!
//! **Target.** `log p = −L(x) + log π(x)`: the current observation's loss (as RF-PF uses it; in
//! dynamics the model's transition runs before the move) and, with `prior` on, the Gaussian fitted
//! to the cloud when the move starts, `π = N(μ_f, Σ̂_α)` with `Σ̂_α = (1−α)Σ̂ + α(tr Σ̂/m)I` (the
//! Newton move's prior, [`Shrinkage`]): `∇log p(x) = −∇L(x) − Σ̂_α⁻¹(x − μ_f)`. Without it the
//! target is flat across the unobserved directions and the repulsion spreads the cloud there
//! without bound (localization: one direction is observed per step); with it the cloud is drawn to
//! the sequential Bayes posterior `π·e^{−L}` and contracts as observations accumulate.
//!
//! **Stable sub-steps.** An explicit step of the flow is stable while its size times the drift's
//! Lipschitz constant stays below 2. The drift moves particle `i` by `η ρ_i` times a kernel-weighted
//! score (`ρ_i = (1/n) Σ_j k(x_j, x_i) ≤ 1`), whose Lipschitz constant is at most
//! `Lip(∇L) + Lip(prior) + 4/h` (`Lip(prior) = λ_max(Σ̂_α⁻¹) ≤ 1/(α s)`; the repulsion's
//! `(2/h)(1 + 2/e) < 4/h`). With `split` on, each of the `K` sub-steps is cut into
//! `K' = ⌈η · max_i ρ_i · (Lip(∇L) + Lip(prior) + 4/h)⌉` equal parts at its start, each recomputing
//! the sums (as the RF-PF move's `substeps = auto` does with `⌈η·Lip⌉`): the flow's pseudo-time
//! `K·η` is kept, and where one step is stable `K' = 1` and nothing changes. A model without a
//! Lipschitz bound counts as `Lip(∇L) = 0`.

use super::newton_move::Cloud;
use super::shrinkage::{shrunk, Shrinkage};
use super::{gradient_move::evaluate_with_gradients, SetCtx};
use crate::core::error::{Error, Result};
use crate::core::filter::interaction;
use crate::core::filter::model::Model;
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

/// Parameters of the SVGD move.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SvgdConfig {
    /// Step size `η` per sub-step.
    pub eta: f64,
    /// Sub-steps per observation `K ≥ 1`.
    pub substeps: usize,
    /// A fixed RBF bandwidth `h` (`None`: the median heuristic).
    pub bandwidth: Option<f64>,
    /// Cut each sub-step into `K'` stable parts from the Lipschitz bound (see the module docs).
    pub split: bool,
    /// Add the cloud's Gaussian `N(μ_f, Σ̂_α)` to the target (see the module docs).
    pub prior: bool,
    /// Shrinkage `α` of that prior's covariance (a number, or `"oas"`).
    pub prior_shrinkage: Shrinkage,
}

impl Default for SvgdConfig {
    /// `η = 1`, five sub-steps, median bandwidth, Lipschitz split, no cloud prior (when turned on,
    /// with the Newton move's shrinkage `α = min(1, 0.8·m/n)`). The prior is off by default because
    /// on `bench tracking` at m = 100, n = 100 it made SVGD worse and slower: RMSE/KF 1.66 ± 0.06
    /// with it (seed 3, 351 ms per step) against 1.19 ± 0.04 without (seeds 100–109, 84 ms) —
    /// SVGD's cloud is far narrower than its error (NEES/d ≈ 600), so the fitted prior is stiff,
    /// pins the mean and forces many split sub-steps. With the median heuristic a typical kernel row sums to about 2, so a sub-step
    /// moves a particle by about `2η/n` times its score: `η = 1` keeps that below RF-PF's default
    /// `0.1` for `n ≥ 20`, and five sub-steps give the flow time to reach it.
    fn default() -> Self {
        Self {
            eta: 1.0,
            substeps: 5,
            bandwidth: None,
            split: true,
            prior: false,
            prior_shrinkage: Shrinkage::Ratio { ratio: 0.8 },
        }
    }
}

impl SvgdConfig {
    /// `η` finite and positive, `K ≥ 1`, `h` finite and positive, `α ∈ [0, 1]`.
    pub(crate) fn validate(&self) -> Result<()> {
        if !(self.eta > 0.0 && self.eta.is_finite()) {
            return Err(Error::param("eta", self.eta, "must be finite and positive"));
        }
        if self.substeps == 0 {
            return Err(Error::param("substeps", 0, "need at least one"));
        }
        self.prior_shrinkage.validate()?;
        match self.bandwidth {
            Some(h) if !(h > 0.0 && h.is_finite()) => {
                Err(Error::param("bandwidth", h, "must be finite and positive"))
            }
            _ => Ok(()),
        }
    }
}

/// The Gaussian prior `N(μ_f, Σ̂_α)` fitted to the cloud, as its mean, precision and the precision's
/// largest eigenvalue bound.
struct CloudPrior {
    mean: DVector<f64>,
    precision: DMatrix<f64>,
    lipschitz: f64,
}

impl CloudPrior {
    /// Fitted to the `n × m` row-major cloud `x`; refused for a cloud without spread.
    fn fit(x: &[f64], n: usize, m: usize, shrinkage: Shrinkage, t: usize) -> Result<Self> {
        let cloud = Cloud::of(x, n, m);
        let sigma = cloud.covariance();
        let s = sigma.trace() / m as f64;
        if !(s > 0.0 && s.is_finite()) {
            return Err(Error::param(
                "prior",
                s,
                "svgd's cloud prior needs a cloud with spread (tr Σ̂/m > 0): turn prior off or use more particles",
            ));
        }
        let alpha = shrinkage.alpha(&sigma, n);
        let cov = shrunk(&sigma, alpha, s);
        let precision = cov
            .clone()
            .cholesky()
            .ok_or_else(|| {
                Error::Other(format!(
                    "update {t}: svgd's prior covariance Σ̂_α is not positive definite (α = {alpha})"
                ))
            })?
            .inverse();
        // λ_min(Σ̂_α) ≥ α s; exactly when that bound is 0 (α = 0).
        let floor = alpha * s;
        let lambda_min = if floor > 0.0 {
            floor
        } else {
            cov.symmetric_eigen().eigenvalues.min()
        };
        Ok(Self {
            mean: cloud.mean,
            precision,
            lipschitz: 1.0 / lambda_min,
        })
    }

    /// `g ← g − Σ̂_α⁻¹(x − μ_f)` for every row (scores of the target with the prior).
    fn add_to_scores(&self, x: &[f64], g: &mut [f64], n: usize, m: usize) {
        let mut d = DMatrix::from_column_slice(m, n, x);
        d.column_iter_mut().for_each(|mut c| c -= &self.mean);
        let pull = &self.precision * d;
        g.iter_mut()
            .zip(pull.as_slice())
            .for_each(|(gk, p)| *gk -= p);
    }
}

/// `K` SVGD sub-steps on the whole set.
pub(super) fn set<M: Model + ?Sized>(cfg: &SvgdConfig, model: &M, cx: &mut SetCtx) -> Result<()> {
    let (n, m) = (cx.particles.len(), cx.particles.dim());
    let prior = match cfg.prior {
        true => Some(CloudPrior::fit(
            cx.particles.as_slice(),
            n,
            m,
            cfg.prior_shrinkage,
            cx.t,
        )?),
        false => None,
    };
    let lip =
        model.gradient_lipschitz().unwrap_or(0.0) + prior.as_ref().map_or(0.0, |p| p.lipschitz);
    let (mut grads, mut a) = std::mem::take(cx.buffers);
    grads.resize(n * m, 0.0);
    let mut b = Vec::new();
    let mut moves = 0;
    let result = (0..cfg.substeps).try_for_each(|s| {
        let mut parts = 1;
        let mut part = 0;
        while part < parts {
            let losses = evaluate_with_gradients(model, cx.particles, &mut grads, cx.t)?;
            grads.iter_mut().for_each(|g| *g = -*g); // scores ∇log p = −∇L
            let x = cx.particles.as_slice();
            if let Some(p) = &prior {
                p.add_to_scores(x, &mut grads, n, m);
            }
            let h = cfg
                .bandwidth
                .unwrap_or_else(|| interaction::median_bandwidth(x, n, m));
            let rho = kernel_sums(x, &grads, n, m, h, &mut a, &mut b);
            if part == 0 && cfg.split {
                let why = format!(
                    "the kernel bandwidth h = {h:.3e} is tiny (a collapsed cloud); \
                     set a fixed `bandwidth` or start from a spread cloud"
                );
                let k = cfg.eta * rho * (lip + 4.0 / h);
                parts = super::gradient_move::bounded_count("svgd split", k, &why)?;
            }
            let step = cfg.eta / (parts as f64 * n as f64);
            let (a, b) = (&a, &b);
            cx.guard.change_rows(cx.particles, |i, _, x| {
                let r = i * m..(i + 1) * m;
                x.iter_mut()
                    .zip(&a[r.clone()])
                    .zip(&b[r])
                    .for_each(|((xk, ak), bk)| *xk += step * (ak + bk));
            });
            if let Some(k) = super::gradient_move::first_non_finite_index(cx.particles.as_slice()) {
                return Err(Error::NonFinite {
                    what: "state after SVGD move".into(),
                    step: cx.t,
                    particle: k / m,
                    value: cx.particles.as_slice()[k],
                });
            }
            cx.record_losses(s == 0 && part == 0, &losses);
            part += 1;
            moves += 1;
        }
        Ok(())
    });
    cx.diag.substeps += moves;
    *cx.buffers = (grads, a);
    result
}

/// The SVGD sums `A` (kernel-weighted scores) into `a` and `B` (repulsion) into `b` (`n × m` each),
/// and `max_i ρ_i`, `ρ_i = (1/n) Σ_j k(x_j, x_i)`. The row sums come from the same kernel pass: the
/// points get a zero coordinate (distances unchanged) and the scores a coordinate 1.
fn kernel_sums(
    x: &[f64],
    g: &[f64],
    n: usize,
    m: usize,
    h: f64,
    a: &mut Vec<f64>,
    b: &mut Vec<f64>,
) -> f64 {
    let w = m + 1;
    let widen = |v: &[f64], extra: f64| -> Vec<f64> {
        v.chunks_exact(m)
            .flat_map(|r| r.iter().copied().chain(std::iter::once(extra)))
            .collect()
    };
    let (xw, gw) = (widen(x, 0.0), widen(g, 1.0));
    let (mut aw, mut bw) = (vec![0.0; n * w], vec![0.0; n * w]);
    interaction::svgd_sums(&xw, &gw, n, w, h, &mut aw, &mut bw);
    let mut rho = 0.0f64;
    a.clear();
    b.clear();
    for (ar, br) in aw.chunks_exact(w).zip(bw.chunks_exact(w)) {
        a.extend_from_slice(&ar[..m]);
        b.extend_from_slice(&br[..m]);
        rho = rho.max(ar[m] / n as f64);
    }
    rho
}

#[cfg(test)]
mod tests {
    use super::super::newton_move::tests::Linear;
    use super::*;
    use crate::core::filter::presets::Preset;
    use crate::core::filter::{Filter, ParticleSet};

    /// With one particle the kernel sum is k(x, x)·∇log p(x) = −∇L(x) and the repulsion is 0, so
    /// an SVGD step is gradient ascent on log p: x ← x − (η/1)∇L(x). The kernel sums are
    /// accumulated in f32 (relative error ≈ 6e-8 of each term), so the step agrees with the f64
    /// gradient step to η·|∇L|·1e-7 (tolerance 1e-8 here, |∇L| < 10, η = 0.05).
    #[test]
    fn one_particle_svgd_is_gradient_ascent_on_log_p() {
        let model = Linear::example();
        let set = ParticleSet::from_prior(&model, 1, 3).unwrap();
        let x0 = set.as_slice().to_vec();
        let cfg = SvgdConfig {
            eta: 0.05,
            substeps: 1,
            prior: false,
            ..Default::default()
        };
        let mut f = Filter::new(Preset::Svgd(cfg).steps(), set, 0).unwrap();
        f.update(&model).unwrap();
        let mut g = vec![0.0; 3];
        model.loss_grad(&x0, &mut g);
        for k in 0..3 {
            let want = x0[k] + 0.05 * -g[k];
            let got = f.particles().as_slice()[k];
            assert!((got - want).abs() < 1e-8, "{k}: {got} vs {want}");
            assert!((got - x0[k]).abs() > 1e-4, "{k}: the particle did not move");
        }
    }

    /// Many SVGD steps on a Gaussian target keep the cloud spread (repulsion) while its mean reaches
    /// the target's mode, and give the same numbers at any thread count.
    #[test]
    fn svgd_spreads_around_the_mode_and_is_deterministic() {
        let model = Linear::example();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let set = ParticleSet::from_prior(&model, 64, 9).unwrap();
                let cfg = SvgdConfig {
                    eta: 0.05,
                    substeps: 200,
                    ..Default::default()
                };
                let mut f = Filter::new(Preset::Svgd(cfg).steps(), set, 0).unwrap();
                f.update(&model).unwrap();
                f.particles().clone()
            })
        };
        let (one, two) = (run(1), run(2));
        assert_eq!(one.as_slice(), two.as_slice());
        let spread = one.covariance().trace();
        assert!(spread > 1e-3, "the cloud collapsed: {spread}");
    }
}
