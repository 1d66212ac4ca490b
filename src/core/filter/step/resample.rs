//! Resampling (set-level): when due, draw `n` indices from the weights with one stream per
//! update, move every particle and its payload row to its new place, drop the weights, and
//! optionally jitter the copies.

use super::{jitter, Row, SetCtx};
use crate::core::error::{Error, Result};
use crate::core::filter::resample::{self, Scheme};
use crate::core::filter::rng::stream;
use serde::{Deserialize, Serialize};

/// When resampling happens.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResampleWhen {
    /// After every reweighting.
    Always,
    /// When `ESS < τ·n`.
    EssBelow(f64),
}

/// Resampling step configuration.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResampleConfig {
    /// Scheme.
    pub scheme: Scheme,
    /// Trigger.
    pub when: ResampleWhen,
    /// Gaussian jitter σ added to every coordinate after resampling (0: none).
    pub jitter: f64,
}

impl ResampleConfig {
    /// τ in `[0, 1]`, jitter finite and ≥ 0.
    pub(crate) fn validate(&self) -> Result<()> {
        if let ResampleWhen::EssBelow(tau) = self.when {
            if !(0.0..=1.0).contains(&tau) {
                return Err(Error::param("ess_threshold", tau, "must lie in [0, 1]"));
            }
        }
        jitter::validate(self.jitter)
    }

    /// Resample the set when due (stream `(seed, t<<8 | k, MAX)` for the draw; the jitter of
    /// particle `i` from `(seed, (t<<8 | k) ^ 128, i)`).
    pub(super) fn apply(&self, cx: &mut SetCtx) -> Result<()> {
        let n = cx.particles.len();
        let due = match self.when {
            ResampleWhen::Always => true,
            ResampleWhen::EssBelow(tau) => cx.particles.ess() < tau * n as f64,
        };
        if !due || cx.particles.log_weights().is_none() {
            return Ok(());
        }
        let key = ((cx.t as u64) << 8) | cx.k as u64;
        // The update's ESS is the weights' before they are dropped (after, it is always n).
        cx.diag.ess = cx.particles.ess();
        let w = cx.particles.weights();
        let idx = resample::resample(self.scheme, &w, n, &mut stream(cx.seed, key, u64::MAX))?;
        cx.guard.save(cx.particles);
        cx.particles.select(&idx)?;
        cx.diag.resampled = true;
        if self.jitter == 0.0 {
            return Ok(());
        }
        let (seed, t, sigma) = (cx.seed, cx.t, self.jitter);
        let jitter_k = cx.k ^ (1 << 7);
        let failures = cx.guard.change_rows(cx.particles, |i, state, x| {
            let mut row = Row {
                i,
                t,
                k: jitter_k,
                seed,
                x,
                state,
            };
            jitter::row(sigma, &mut row)
        });
        failures.into_iter().collect()
    }
}
