//! Ensemble Kalman analyses (set-level) for models with a linear(ised) observation
//! `y = Hx + v`, `v ~ N(0, R)` ([`crate::core::filter::Model::linear_observation`]):
//!
//! - **EnKF** (stochastic, perturbed observations; Evensen 1994, Burgers et al. 1998):
//!   `x_i ← x_i + K (y + v_i − H x_i)`, `K = P_f Hᵀ (H P_f Hᵀ + R)⁻¹`, `v_i ~ N(0, R)` from
//!   particle `i`'s stream.
//! - **ETKF** (deterministic square root; Bishop et al. 2001, in the ensemble-space form of Hunt
//!   et al. 2007): with anomalies `A = [x_i − x̄]/√(n−1)`, `Y = HA`,
//!   `P̃ = (I + YᵀR⁻¹Y)⁻¹`, `w̄ = P̃ YᵀR⁻¹(y − Hx̄)`, `x̄' = x̄ + A w̄`, `A' = A P̃^{1/2}`,
//!   `x_i' = x̄' + √(n−1) A'_i`.
//!
//! Both first inflate the anomalies by `λ` (multiplicative inflation, `x_i ← x̄ + λ(x_i − x̄)`).
//! Optional shrinkage uses `P_f = (1−α)Σ̂ + α(tr Σ̂/m)I` (α fixed or the OAS rule, see
//! [`Shrinkage`]) in place of the ensemble covariance. The
//! ETKF's square root runs in ensemble space when `n ≤ m` without shrinkage, and otherwise in state
//! space (`P_a = (P_f⁻¹ + HᵀR⁻¹H)⁻¹`, offsets mapped by `P_a^{1/2} Σ̂_b^{−1/2}` — the same analysis
//! the Newton move uses): both give the posterior mean and covariance of the Kalman update of the
//! ensemble's moments; their offsets differ by an orthogonal rotation.

use super::newton_move::{positions, posterior_and_transform, sym_power, Cloud};
use super::shrinkage::{shrunk, Shrinkage};
use super::SetCtx;
use crate::core::error::{Error, Result};
use crate::core::filter::model::{LinearObservation, Model};
use crate::core::filter::rng::stream;
use nalgebra::{DMatrix, DVector};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// Which ensemble Kalman analysis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Analysis {
    /// Stochastic EnKF with perturbed observations.
    Stochastic,
    /// Deterministic square-root ETKF.
    SquareRoot,
}

/// Parameters of an ensemble Kalman analysis.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnsembleConfig {
    /// Stochastic or square root.
    pub analysis: Analysis,
    /// Multiplicative inflation `λ ≥ 1` of the anomalies.
    pub inflation: f64,
    /// Shrinkage `α` of the ensemble covariance toward `(tr Σ̂/m)·I` (`Fixed(0.0)`: none).
    pub shrinkage: Shrinkage,
}

impl EnsembleConfig {
    /// `λ` finite and ≥ 1 (well, > 0), `α ∈ [0, 1]`.
    pub(crate) fn validate(&self) -> Result<()> {
        if !(self.inflation > 0.0 && self.inflation.is_finite()) {
            return Err(Error::param(
                "inflation",
                self.inflation,
                "must be finite and positive",
            ));
        }
        self.shrinkage.validate()
    }
}

/// The analysis on the whole set.
pub(super) fn set<M: Model + ?Sized>(
    cfg: &EnsembleConfig,
    model: &M,
    cx: &mut SetCtx,
) -> Result<()> {
    let (n, m) = (cx.particles.len(), cx.particles.dim());
    let obs = model.linear_observation().ok_or_else(|| {
        Error::param(
            "filter",
            "enkf/etkf",
            "needs a linear(ised) observation (Model::linear_observation), which this model does \
             not give: choose a filter that needs only the loss and its gradient",
        )
    })?;
    obs.check(m)?;
    let mut cloud = Cloud::of(cx.particles.as_slice(), n, m);
    cloud.offsets *= cfg.inflation;
    // The square root runs in the smaller space: ensemble space (n × n) when n ≤ m and there is
    // no shrinkage, else state space (m × m). Both give the same posterior mean and covariance.
    let next = match (cfg.analysis, !cfg.shrinkage.is_none() || n > m) {
        (Analysis::Stochastic, _) => stochastic(cfg, &cloud, &obs, cx)?,
        (Analysis::SquareRoot, false) => square_root_ensemble(&cloud, &obs, cx.t)?,
        (Analysis::SquareRoot, true) => square_root_state(cfg, &cloud, &obs, cx.t)?,
    };
    cx.set_positions(&next, "state after ensemble Kalman analysis")
}

/// The forecast covariance: the (inflated) ensemble's, optionally shrunk.
fn forecast_covariance(cfg: &EnsembleConfig, cloud: &Cloud) -> DMatrix<f64> {
    let sigma = cloud.covariance();
    if cfg.shrinkage.is_none() {
        return sigma;
    }
    let (n, m) = (cloud.offsets.ncols(), sigma.nrows());
    let s = sigma.trace() / m as f64;
    shrunk(&sigma, cfg.shrinkage.alpha(&sigma, n), s)
}

fn not_pd(what: &str, t: usize) -> Error {
    Error::Other(format!("update {t}: {what} is not positive definite"))
}

/// EnKF with perturbed observations `v_i = chol(R) ξ_i`, `ξ_i` from stream `(seed, t<<8|k, i)`.
fn stochastic(
    cfg: &EnsembleConfig,
    cloud: &Cloud,
    obs: &LinearObservation,
    cx: &SetCtx,
) -> Result<Vec<f64>> {
    let k = obs.h.nrows();
    let key = ((cx.t as u64) << 8) | cx.k as u64;
    let pf = forecast_covariance(cfg, cloud);
    let s = &obs.h * &pf * obs.h.transpose() + &obs.r;
    let gain = (&pf * obs.h.transpose())
        * s.cholesky()
            .ok_or_else(|| not_pd("H P_f Hᵀ + R", cx.t))?
            .inverse();
    let lr = obs
        .r
        .clone()
        .cholesky()
        .ok_or_else(|| not_pd("R", cx.t))?
        .l();
    let mut offsets = cloud.offsets.clone();
    for (i, mut d) in offsets.column_iter_mut().enumerate() {
        let mut rng = stream(cx.seed, key, i as u64);
        let xi = DVector::from_fn(k, |_, _| StandardNormal.sample(&mut rng));
        let xi_mean = &cloud.mean + &d;
        let innovation = &obs.y + &lr * xi - &obs.h * &xi_mean;
        d += &gain * innovation;
    }
    Ok(positions(&cloud.mean, &offsets))
}

/// ETKF in ensemble space (no shrinkage).
fn square_root_ensemble(cloud: &Cloud, obs: &LinearObservation, t: usize) -> Result<Vec<f64>> {
    let n = cloud.offsets.ncols();
    let scale = ((n.max(2) - 1) as f64).sqrt();
    let a = &cloud.offsets / scale;
    let r_inv = obs
        .r
        .clone()
        .cholesky()
        .ok_or_else(|| not_pd("R", t))?
        .inverse();
    let y = &obs.h * &a;
    let yt_rinv = y.transpose() * &r_inv;
    let pw_inv = DMatrix::identity(n, n) + &yt_rinv * &y;
    let pw = pw_inv
        .cholesky()
        .ok_or_else(|| not_pd("I + YᵀR⁻¹Y", t))?
        .inverse();
    let w_mean = &pw * &yt_rinv * (&obs.y - &obs.h * &cloud.mean);
    let mean = &cloud.mean + &a * w_mean;
    let offsets = &a * sym_power(&pw, 0.5) * scale;
    Ok(positions(&mean, &offsets))
}

/// ETKF in state space with the shrunk forecast covariance: `P_a = (P_f⁻¹ + HᵀR⁻¹H)⁻¹`,
/// `x̄' = x̄ + P_a HᵀR⁻¹(y − Hx̄)`, offsets mapped by `P_a^{1/2} Σ̂_b^{−1/2}`.
fn square_root_state(
    cfg: &EnsembleConfig,
    cloud: &Cloud,
    obs: &LinearObservation,
    t: usize,
) -> Result<Vec<f64>> {
    let n = cloud.offsets.ncols();
    let prior = forecast_covariance(cfg, cloud);
    let r_inv = obs
        .r
        .clone()
        .cholesky()
        .ok_or_else(|| not_pd("R", t))?
        .inverse();
    let ht_rinv = obs.h.transpose() * &r_inv;
    let j = &ht_rinv * &obs.h;
    let (p, t1) =
        posterior_and_transform(&prior, &cloud.covariance(), &j, n, cloud.offsets.nrows(), t)?;
    let mean = &cloud.mean + &p * &ht_rinv * (&obs.y - &obs.h * &cloud.mean);
    Ok(positions(&mean, &(t1 * &cloud.offsets)))
}

#[cfg(test)]
mod tests {
    use super::super::newton_move::tests::{kalman, moments, Linear};
    use crate::core::filter::presets::{EnsembleParams, Preset};
    use crate::core::filter::{Filter, ParticleSet};

    /// The ETKF's analysis of a cloud is the Kalman update of the cloud's own mean and covariance,
    /// exactly (deterministic square root; to rounding, 1e-9), with or without shrinkage.
    #[test]
    fn etkf_is_the_kalman_update_of_the_ensemble_moments() {
        let model = Linear::example();
        for params in [
            EnsembleParams::plain(),
            EnsembleParams {
                inflation: 1.1,
                ..EnsembleParams::plain()
            },
        ] {
            let set = ParticleSet::from_prior(&model, 25, 7).unwrap();
            let (mu, sigma) = moments(&set);
            let prior = sigma * (params.inflation * params.inflation);
            let (want_mean, want_cov) = kalman(&model, &mu, &prior);
            let mut f = Filter::new(Preset::Etkf(params).steps(), set, 0).unwrap();
            f.update(&model).unwrap();
            let (mean, cov) = moments(f.particles());
            assert!((&mean - &want_mean).abs().max() < 1e-9);
            assert!((&cov - &want_cov).abs().max() < 1e-9);
        }
    }

    /// EnKF and ETKF approach the Kalman posterior of the true prior N(0, I) as n grows. For the
    /// EnKF at n = 20 000 the Monte-Carlo error of a posterior mean entry is about
    /// sqrt(P_kk / n) ≤ 0.007 and of a covariance entry about 0.01 (posterior variances ≤ 1): a
    /// tolerance of 0.04 is > 4 s.e.; at n = 50 the error is visibly larger (≥ 0.04 for at least
    /// one of mean or covariance, fixed seed), so the test also shows the convergence.
    #[test]
    fn ensemble_kalman_filters_approach_the_kalman_filter_as_n_grows() {
        let model = Linear::example();
        let (want_mean, want_cov) = kalman(
            &model,
            &nalgebra::DVector::zeros(3),
            &nalgebra::DMatrix::identity(3, 3),
        );
        let err = |preset: Preset, n: usize| {
            let set = ParticleSet::from_prior(&model, n, 11).unwrap();
            let mut f = Filter::new(preset.steps(), set, 2).unwrap();
            f.update(&model).unwrap();
            let (mean, cov) = moments(f.particles());
            (&mean - &want_mean)
                .abs()
                .max()
                .max((&cov - &want_cov).abs().max())
        };
        for preset in [
            Preset::Enkf(EnsembleParams::plain()),
            Preset::Etkf(EnsembleParams::plain()),
        ] {
            let big = err(preset, 20_000);
            assert!(big < 0.04, "{preset:?}: {big}");
            assert!(err(preset, 50) > big, "{preset:?}");
        }
    }

    #[test]
    fn a_model_without_a_linear_observation_is_refused() {
        struct Opaque;
        impl crate::core::filter::Model for Opaque {
            fn dim(&self) -> usize {
                3
            }
            fn sample_prior(&self, _: &mut dyn rand::RngCore, out: &mut [f64]) {
                out.fill(0.5);
            }
            fn loss(&self, _: &[f64]) -> f64 {
                0.0
            }
        }
        let set = ParticleSet::from_prior(&Linear::example(), 4, 1).unwrap();
        let mut f = Filter::new(Preset::Enkf(EnsembleParams::default()).steps(), set, 0).unwrap();
        let e = f.update(&Opaque).unwrap_err().to_string();
        assert!(e.contains("linear"), "{e}");
    }
}
