//! The mean step: one Gauss–Newton step of a cloud's mean on the loss, trusted within the cloud's
//! own covariance, with the whole cloud translated by it:
//!
//! ```text
//! δ = −(Σ̂⁻¹ + J(μ))⁻¹ ∇L(μ),     p_i ← p_i + δ,
//! ```
//!
//! with `μ` and `Σ̂` the cloud's (weighted) mean and covariance, and `J(μ)` the model's
//! Gauss–Newton curvature ([`Model::curvature`]). A step whose loss at the mean rises is taken at
//! half the length, up to `backtrack` times, and not at all after that.
//!
//! **Why.** A particle move advances the mean by the cloud-averaged gradient `mean_i ∇L(p_i)`: the
//! gradient of the loss smoothed over the cloud, whose minimum lies off the loss's own minimum
//! where the loss is asymmetric within the cloud's spread (a robust kernel's shoulder, a contour
//! that a particle has crossed). The mean step replaces it by the gradient at the mean itself, and
//! `Σ̂` keeps the step within what the cloud believes: a direction the data fix (`J ≫ Σ̂⁻¹`) takes
//! the full Gauss–Newton step, a weakly observed one moves little. The spread is untouched.
//!
//! **What it is not.** It is not a Bayesian update: on a quadratic loss `½(x−x*)ᵀJ(x−x*)` it
//! moves the mean to `(Σ̂⁻¹ + J)⁻¹(Σ̂⁻¹μ + Jx*)` (tested), which counts the observation a second
//! time when the cloud is already its posterior. Filters therefore do not take it; the pose
//! tracker takes it after each correspondence round, where it is an estimator of the pose (README,
//! "The mean step; rfpf-newton the default").

use crate::core::error::{Error, Result};
use crate::core::filter::model::Model;
use crate::core::filter::particles::ParticleSet;
use crate::core::filter::step::curvature_at;
use nalgebra::{DMatrix, DVector};

/// The mean step's outcome.
#[derive(Clone, Debug, PartialEq)]
pub enum MeanStep {
    /// The cloud was translated by `δ` (the accepted step, after any halvings).
    Moved(DVector<f64>),
    /// No step: the cloud has no spread, or every tried step raised the loss at the mean.
    Kept,
}

/// Take the mean step on `particles` for `model` (module docs): translate every particle by the
/// accepted `δ`. Errors when the model gives no curvature (nor a linear observation to form it
/// from: [`crate::core::filter::step`]'s `curvature_at`, shared with the Newton move), or a
/// non-finite gradient or curvature at the mean; the particles are then unchanged.
pub fn mean_step<M: Model + ?Sized>(
    model: &M,
    particles: &mut ParticleSet,
    backtrack: usize,
) -> Result<MeanStep> {
    let m = particles.dim();
    let mu = particles.mean();
    let Some(sigma_inv) = inverse_spread(&particles.covariance()) else {
        return Ok(MeanStep::Kept);
    };
    let mut grad = vec![0.0; m];
    let loss = model.loss_grad(mu.as_slice(), &mut grad);
    let j = curvature_at(model, mu.as_slice(), 0, ("mean step", "on"))?;
    if let Some(v) = grad.iter().copied().chain([loss]).find(|v| !v.is_finite()) {
        return Err(non_finite("gradient at the cloud mean", v));
    }
    let Some(chol) = (sigma_inv + j).cholesky() else {
        return Ok(MeanStep::Kept);
    };
    let full = -chol.solve(&DVector::from_column_slice(&grad));
    let Some(delta) = accepted(model, &mu, full, loss, backtrack) else {
        return Ok(MeanStep::Kept);
    };
    translate(particles, &delta);
    Ok(MeanStep::Moved(delta))
}

/// `Σ̂⁻¹` with a ridge of `10⁻⁹·tr Σ̂/m` (a cloud with fewer particles than dimensions has a
/// singular sample covariance); `None` for a cloud without spread.
fn inverse_spread(sigma: &DMatrix<f64>) -> Option<DMatrix<f64>> {
    let m = sigma.nrows();
    let ridge = 1e-9 * sigma.trace() / m as f64;
    if !(ridge > 0.0 && ridge.is_finite()) {
        return None;
    }
    let regular = sigma + DMatrix::identity(m, m) * ridge;
    Some(regular.cholesky()?.inverse())
}

/// The first of `δ, δ/2, …, δ/2^backtrack` whose loss at `μ + δ` does not exceed `loss`.
fn accepted<M: Model + ?Sized>(
    model: &M,
    mu: &DVector<f64>,
    mut delta: DVector<f64>,
    loss: f64,
    backtrack: usize,
) -> Option<DVector<f64>> {
    for _ in 0..=backtrack {
        if model.loss((mu + &delta).as_slice()) <= loss {
            return Some(delta);
        }
        delta *= 0.5;
    }
    None
}

/// `p_i ← p_i + δ` for every particle.
fn translate(particles: &mut ParticleSet, delta: &DVector<f64>) {
    let m = delta.len();
    for p in particles.as_mut_slice().chunks_mut(m) {
        p.iter_mut().zip(delta.iter()).for_each(|(x, d)| *x += d);
    }
}

fn non_finite(what: &str, value: f64) -> Error {
    Error::NonFinite {
        what: what.into(),
        step: 0,
        particle: 0,
        value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // The Newton move's linear-Gaussian test model: `L = ½(y − Hx)ᵀR⁻¹(y − Hx)` in 3-D seen
    // through 2 observations, so `J = HᵀR⁻¹H` and `∇L = −HᵀR⁻¹(y − Hx)`.
    use crate::core::filter::step::newton_test_models::Linear;
    use rand::RngCore;

    fn cloud() -> ParticleSet {
        // Five particles in 3-D with a full-rank, anisotropic spread about (1, −2, 0.5).
        let rows = [
            [1.3, -2.0, 0.4],
            [0.8, -1.7, 0.6],
            [1.1, -2.4, 0.2],
            [0.6, -2.1, 0.9],
            [1.2, -1.8, 0.4],
        ];
        ParticleSet::from_vec(5, 3, rows.concat()).expect("a 5 × 3 set")
    }

    #[test]
    fn on_a_quadratic_the_mean_lands_on_the_precision_weighted_combination_and_the_spread_is_kept()
    {
        let model = Linear::example();
        let mut set = cloud();
        let (mu, sigma) = (set.mean(), set.covariance());
        let s_inv = sigma.clone().try_inverse().expect("full-rank spread");
        let (h, r_inv) = (
            &model.obs.h,
            model.obs.r.clone().try_inverse().expect("SPD"),
        );
        let j = h.transpose() * &r_inv * h;
        let expect = (&s_inv + &j).try_inverse().expect("SPD")
            * (&s_inv * &mu + h.transpose() * &r_inv * &model.obs.y);
        let step = mean_step(&model, &mut set, 0).expect("a curvature model");
        assert!(matches!(step, MeanStep::Moved(_)));
        // The ridge 1e-9·tr Σ̂/m perturbs Σ̂⁻¹ by about 1e-9 relative: 1e-7 is far above it and
        // far below the move (0.28 here).
        assert!((set.mean() - expect).amax() < 1e-7, "{}", set.mean());
        assert!((set.covariance() - sigma).amax() < 1e-12);
    }

    #[test]
    fn a_cloud_at_the_minimum_does_not_move() {
        let mut model = Linear::example();
        let mut set = cloud();
        model.obs.y = &model.obs.h * set.mean();
        let before = set.as_slice().to_vec();
        match mean_step(&model, &mut set, 0).expect("a curvature model") {
            MeanStep::Moved(d) => assert!(d.amax() < 1e-12),
            MeanStep::Kept => {}
        }
        assert!(set
            .as_slice()
            .iter()
            .zip(&before)
            .all(|(a, b)| (a - b).abs() < 1e-12));
    }

    /// `L = −cos(x₀)` with the Gauss–Newton curvature of its square-root form (always 1): a step
    /// from near the maximum overshoots, and only halving it lowers the loss.
    struct Cosine;

    impl Model for Cosine {
        fn dim(&self) -> usize {
            1
        }
        fn sample_prior(&self, _: &mut dyn RngCore, out: &mut [f64]) {
            out.fill(0.0);
        }
        fn loss(&self, x: &[f64]) -> f64 {
            -x[0].cos()
        }
        fn loss_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
            grad[0] = x[0].sin();
            -x[0].cos()
        }
        fn curvature(&self, _: &[f64], out: &mut [f64]) -> bool {
            out[0] = 0.0;
            true
        }
    }

    #[test]
    fn a_step_that_raises_the_loss_is_halved_then_refused() {
        // Mean 3 with plug-in variance 43.52 (offsets ±6.597): the full step −43.52·sin 3 ≈ −6.14
        // lands at −π, the loss's maximum (1 against −cos 3 ≈ 0.990), while half of it lands at
        // −0.07, near the minimum.
        let mut set = ParticleSet::from_vec(2, 1, vec![3.0 - 6.597, 3.0 + 6.597]).unwrap();
        let before = set.mean()[0];
        assert_eq!(mean_step(&Cosine, &mut set, 0).unwrap(), MeanStep::Kept);
        assert_eq!(set.mean()[0], before);
        match mean_step(&Cosine, &mut set, 8).unwrap() {
            MeanStep::Moved(d) => {
                assert!(Cosine.loss(&[before + d[0]]) <= Cosine.loss(&[before]));
                assert!((set.mean()[0] - before - d[0]).abs() < 1e-12);
            }
            MeanStep::Kept => panic!("some halving of the step lowers the loss"),
        }
    }

    #[test]
    fn a_model_without_curvature_is_an_error_and_leaves_the_cloud() {
        use crate::core::filter::step::newton_test_models::Flat;
        let mut set = cloud();
        let before = set.as_slice().to_vec();
        let e = mean_step(&Flat, &mut set, 0).unwrap_err().to_string();
        assert!(e.contains("curvature"), "{e}");
        assert_eq!(set.as_slice(), &before[..]);
    }

    #[test]
    fn a_cloud_without_spread_is_kept() {
        let mut set = ParticleSet::from_vec(3, 3, vec![0.5; 9]).unwrap();
        assert_eq!(
            mean_step(&Linear::example(), &mut set, 0).unwrap(),
            MeanStep::Kept
        );
    }
}
