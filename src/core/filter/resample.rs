//! Resampling schemes: draw `n` ancestor indices with `P(ancestor = i) = w_i`.
//!
//! All four schemes are unbiased: the expected number of offspring of particle `i` is `n·w_i`.
//! Multinomial is the noisiest; stratified, systematic and residual reduce the variance of the
//! offspring counts.

use crate::core::error::{Error, Result};
use rand::{Rng, RngCore};
use std::str::FromStr;

/// A resampling scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// `n` independent draws from the categorical distribution `w`.
    Multinomial,
    /// One uniform `u ~ U[0, 1/n)`; positions `u + k/n`.
    Systematic,
    /// One uniform per stratum: positions `(k + u_k)/n`.
    Stratified,
    /// `⌊n w_i⌋` deterministic copies, the remainder drawn multinomially from the residuals.
    Residual,
}

impl FromStr for Scheme {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "multinomial" => Ok(Self::Multinomial),
            "systematic" => Ok(Self::Systematic),
            "stratified" => Ok(Self::Stratified),
            "residual" => Ok(Self::Residual),
            _ => Err(Error::param(
                "resampling scheme",
                s,
                "expected multinomial, systematic, stratified or residual",
            )),
        }
    }
}

/// Map sorted positions in `[0, 1)` onto ancestors through the cumulative weights (inverse CDF).
///
/// Robust to rounding: the cumulative sum is renormalised by its total and the last particle with
/// positive weight absorbs any position past the end.
fn inverse_cdf(weights: &[f64], positions: &[f64]) -> Vec<usize> {
    let total: f64 = weights.iter().sum();
    let last = weights.iter().rposition(|&w| w > 0.0).unwrap_or(0);
    let mut out = Vec::with_capacity(positions.len());
    let (mut i, mut cum) = (0usize, weights[0] / total);
    for &u in positions {
        while u >= cum && i < last {
            i += 1;
            cum += weights[i] / total;
        }
        out.push(i);
    }
    out
}

fn sorted_uniforms(n: usize, rng: &mut dyn RngCore) -> Vec<f64> {
    // Sorted uniforms by normalised exponential spacings: O(n), no sort needed.
    let mut acc = 0.0;
    let mut e: Vec<f64> = (0..=n)
        .map(|_| {
            acc += -(1.0 - rng.random::<f64>()).ln();
            acc
        })
        .collect();
    let total = e.pop().unwrap_or(1.0);
    e.iter_mut().for_each(|x| *x /= total);
    e
}

/// Draw `n` ancestor indices from normalised (or unnormalised, non-negative) `weights`.
///
/// Errors when the weights are empty, negative, non-finite or all zero.
pub fn resample(
    scheme: Scheme,
    weights: &[f64],
    n: usize,
    rng: &mut dyn RngCore,
) -> Result<Vec<usize>> {
    validate(weights)?;
    let nf = n as f64;
    Ok(match scheme {
        Scheme::Multinomial => inverse_cdf(weights, &sorted_uniforms(n, rng)),
        Scheme::Systematic => {
            let u: f64 = rng.random();
            let pos: Vec<f64> = (0..n).map(|k| (k as f64 + u) / nf).collect();
            inverse_cdf(weights, &pos)
        }
        Scheme::Stratified => {
            let pos: Vec<f64> = (0..n)
                .map(|k| (k as f64 + rng.random::<f64>()) / nf)
                .collect();
            inverse_cdf(weights, &pos)
        }
        Scheme::Residual => residual(weights, n, rng),
    })
}

fn residual(weights: &[f64], n: usize, rng: &mut dyn RngCore) -> Vec<usize> {
    let total: f64 = weights.iter().sum();
    let scaled: Vec<f64> = weights.iter().map(|w| w / total * n as f64).collect();
    let mut out: Vec<usize> = Vec::with_capacity(n);
    for (i, s) in scaled.iter().enumerate() {
        out.extend(std::iter::repeat_n(i, s.floor() as usize));
    }
    out.truncate(n);
    let rest = n - out.len();
    if rest > 0 {
        let residuals: Vec<f64> = scaled.iter().map(|s| s - s.floor()).collect();
        let residuals = if residuals.iter().sum::<f64>() > 0.0 {
            residuals
        } else {
            scaled
        };
        out.extend(inverse_cdf(&residuals, &sorted_uniforms(rest, rng)));
    }
    out
}

fn validate(weights: &[f64]) -> Result<()> {
    if weights.is_empty() {
        return Err(Error::param(
            "weights",
            "[]",
            "cannot resample from no particles",
        ));
    }
    if let Some(i) = weights.iter().position(|w| !w.is_finite() || *w < 0.0) {
        return Err(Error::param(
            format!("weight of particle {i}"),
            weights[i],
            "weights must be finite and non-negative",
        ));
    }
    if weights.iter().sum::<f64>() <= 0.0 {
        return Err(Error::param(
            "weights",
            "all zero",
            "at least one weight must be positive",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::filter::rng::stream;

    const ALL: [Scheme; 4] = [
        Scheme::Multinomial,
        Scheme::Systematic,
        Scheme::Stratified,
        Scheme::Residual,
    ];

    /// Offspring counts average to `n·w_i` over many repetitions.
    #[test]
    fn resamplers_are_unbiased() {
        let w = [0.5, 0.25, 0.125, 0.0625, 0.0625];
        let (n, reps) = (20usize, 4000usize);
        for scheme in ALL {
            let mut counts = [0.0f64; 5];
            for r in 0..reps {
                for i in resample(scheme, &w, n, &mut stream(7, r as u64, 0)).unwrap() {
                    counts[i] += 1.0;
                }
            }
            for (i, wi) in w.iter().enumerate() {
                let mean = counts[i] / reps as f64;
                let expect = n as f64 * wi;
                // Multinomial offspring variance is n w (1−w) ≤ 5; the standard error of the mean
                // over 4000 repetitions is ≤ sqrt(5/4000) ≈ 0.035, so 0.2 is a > 5σ band.
                assert!(
                    (mean - expect).abs() < 0.2,
                    "{scheme:?} particle {i}: mean offspring {mean}, expected {expect}"
                );
            }
        }
    }

    #[test]
    fn degenerate_weights_give_valid_indices() {
        let mut rng = stream(1, 1, 1);
        for scheme in ALL {
            let one_hot = [0.0, 0.0, 1.0, 0.0];
            assert_eq!(resample(scheme, &one_hot, 4, &mut rng).unwrap(), vec![2; 4]);
            let equal = [0.25; 4];
            let idx = resample(scheme, &equal, 4, &mut rng).unwrap();
            assert!(idx.iter().all(|&i| i < 4));
            // Weights near underflow: only ratios matter.
            let tiny = [1e-310, 3e-310, 0.0, 1e-310];
            let idx = resample(scheme, &tiny, 1000, &mut rng).unwrap();
            assert_eq!(idx.len(), 1000);
            assert!(idx.iter().all(|&i| i < 4 && i != 2), "{scheme:?}");
        }
    }

    #[test]
    fn systematic_counts_are_within_one_of_expectation() {
        let w = [0.1, 0.2, 0.3, 0.4];
        let idx = resample(Scheme::Systematic, &w, 10, &mut stream(3, 0, 0)).unwrap();
        for (i, wi) in w.iter().enumerate() {
            let c = idx.iter().filter(|&&j| j == i).count() as f64;
            assert!((c - 10.0 * wi).abs() < 1.0 + 1e-9);
        }
    }

    #[test]
    fn rejects_bad_weights() {
        let mut rng = stream(0, 0, 0);
        assert!(resample(Scheme::Systematic, &[], 3, &mut rng).is_err());
        let e = resample(Scheme::Systematic, &[0.5, f64::NAN], 3, &mut rng).unwrap_err();
        assert!(e.to_string().contains("particle 1"), "{e}");
        assert!(resample(Scheme::Systematic, &[0.0, 0.0], 3, &mut rng).is_err());
    }
}
