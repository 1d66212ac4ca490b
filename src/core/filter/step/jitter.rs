//! Jitter: isotropic Gaussian noise `x ← x + σ·ε`, `ε ~ N(0, I)`, on one particle from its own
//! random stream (MCL's artificial process noise; SIR's optional post-resampling roughening).

use super::Row;
use crate::core::error::{Error, Result};
use rand::RngCore;
use rand_distr::{Distribution, StandardNormal};

/// σ must be finite and ≥ 0.
pub(super) fn validate(sigma: f64) -> Result<()> {
    if sigma >= 0.0 && sigma.is_finite() {
        Ok(())
    } else {
        Err(Error::param(
            "jitter sigma",
            sigma,
            "must be finite and ≥ 0",
        ))
    }
}

/// Jitter one particle (nothing for σ = 0).
pub(super) fn row(sigma: f64, row: &mut Row) -> Result<()> {
    if sigma == 0.0 {
        return Ok(());
    }
    let mut rng = row.rng();
    add_noise(sigma, row.x, &mut rng);
    row.check("state after jitter")
}

/// `x ← x + σ·ε`, `ε ~ N(0, I)` from `rng`.
pub(crate) fn add_noise(sigma: f64, x: &mut [f64], rng: &mut dyn RngCore) {
    x.iter_mut().for_each(|v| {
        let z: f64 = StandardNormal.sample(rng);
        *v += sigma * z
    })
}
