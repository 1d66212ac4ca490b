//! Covariance shrinkage toward a scaled identity, shared by the Newton move and the ensemble Kalman
//! analyses:
//!
//! ```text
//! Σ̂_α = (1 − α) Σ̂ + α s I,     s = tr Σ̂ / m  (or a given floor),
//! ```
//!
//! with `α` fixed, or set by the dimension ratio
//!
//! ```text
//! α = min(1, c · m / n),
//! ```
//!
//! (the sampling error of `Σ̂` relative to its spread grows like `m/n`, Ledoit & Wolf 2004, so the
//! weight given to the target does too; `c` is chosen on held-out seeds), or chosen from the cloud
//! by the oracle-approximating shrinkage rule of Chen, Wiesel, Eldar & Hero (2010, eq. 23):
//!
//! ```text
//! α_OAS = min(1, [(1 − 2/m) tr(Σ̂²) + tr²(Σ̂)] / [(n + 1 − 2/m) (tr(Σ̂²) − tr²(Σ̂)/m)]),
//! ```
//!
//! which shrinks hard when `n ≲ m` (the sample covariance is rank-deficient) and fades like `m/n`
//! as the cloud grows, so a large cloud keeps its own anisotropic covariance.

use crate::core::error::{Error, Result};
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

/// How the shrinkage intensity `α` is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Shrinkage {
    /// A fixed `α ∈ [0, 1]` (a number in a launch file).
    Fixed(f64),
    /// `α = min(1, ratio · m/n)` (`{ ratio = c }` in a launch file).
    Ratio {
        /// The constant `c ≥ 0`.
        ratio: f64,
    },
    /// A rule that reads `α` off the cloud (a string in a launch file).
    Rule(ShrinkageRule),
}

/// Data-driven shrinkage rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShrinkageRule {
    /// Oracle-approximating shrinkage (Chen et al. 2010), see the module docs.
    Oas,
}

impl Shrinkage {
    /// A fixed `α` must lie in `[0, 1]`.
    pub(crate) fn validate(&self) -> Result<()> {
        match *self {
            Shrinkage::Fixed(a) if !(0.0..=1.0).contains(&a) => Err(Error::param(
                "shrinkage",
                a,
                "must lie in [0, 1] (or { ratio = c }, or \"oas\")",
            )),
            Shrinkage::Ratio { ratio } if !(ratio >= 0.0 && ratio.is_finite()) => Err(
                Error::param("shrinkage.ratio", ratio, "must be finite and ≥ 0"),
            ),
            _ => Ok(()),
        }
    }

    /// Whether `α` is identically 0 (no shrinkage).
    pub(crate) fn is_none(&self) -> bool {
        *self == Shrinkage::Fixed(0.0)
    }

    /// `α` for the sample covariance `sigma` of `n` particles.
    pub(crate) fn alpha(&self, sigma: &DMatrix<f64>, n: usize) -> f64 {
        self.alpha_at(sigma, n, sigma.nrows())
    }

    /// `α` for `n` particles of dimension `m` whose sample covariance is `sigma`, or `sigma`
    /// restricted to an orthonormal basis of a subspace holding the cloud (the ensemble space:
    /// `tr Σ̂` and `tr Σ̂²` are the same there).
    pub(crate) fn alpha_at(&self, sigma: &DMatrix<f64>, n: usize, m: usize) -> f64 {
        match *self {
            Shrinkage::Fixed(a) => a,
            Shrinkage::Ratio { ratio } => (ratio * m as f64 / n.max(1) as f64).min(1.0),
            Shrinkage::Rule(ShrinkageRule::Oas) => oas(sigma.trace(), sigma.norm_squared(), n, m),
        }
    }
}

/// `α_OAS` from `tr Σ̂`, `tr(Σ̂²) = ‖Σ̂‖_F²`, `n` and `m` (1 when the cloud is isotropic or
/// has no spread: the target then is the cloud).
pub(crate) fn oas(trace: f64, trace_sq: f64, n: usize, m: usize) -> f64 {
    let (n, m) = (n as f64, m as f64);
    let num = (1.0 - 2.0 / m) * trace_sq + trace * trace;
    let den = (n + 1.0 - 2.0 / m) * (trace_sq - trace * trace / m);
    if den > 0.0 && num.is_finite() {
        (num / den).clamp(0.0, 1.0)
    } else {
        1.0
    }
}

/// `Σ̂_α = (1 − α) Σ̂ + α s I`.
pub(crate) fn shrunk(sigma: &DMatrix<f64>, alpha: f64, s: f64) -> DMatrix<f64> {
    let m = sigma.nrows();
    sigma * (1.0 - alpha) + DMatrix::identity(m, m) * (alpha * s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// OAS on known cases: an isotropic sample covariance is its own target (α = 1); α falls like
    /// `m/n` for a fixed anisotropic covariance (here exactly `num/den` by hand); a fixed α is
    /// passed through and checked.
    #[test]
    fn oas_rule_and_fixed_values() {
        let iso = DMatrix::identity(4, 4) * 2.0;
        assert_eq!(Shrinkage::Rule(ShrinkageRule::Oas).alpha(&iso, 10), 1.0);
        let s = DMatrix::from_diagonal(&nalgebra::DVector::from_vec(vec![4.0, 1.0, 1.0, 0.25]));
        let (tr, tr2) = (6.25, 16.0 + 1.0 + 1.0 + 0.0625);
        let want = |n: f64| ((0.5 * tr2 + tr * tr) / ((n + 0.5) * (tr2 - tr * tr / 4.0))).min(1.0);
        for n in [5, 50, 500] {
            let a = Shrinkage::Rule(ShrinkageRule::Oas).alpha(&s, n);
            assert!((a - want(n as f64)).abs() < 1e-12, "n {n}: {a}");
        }
        assert!(oas(tr, tr2, 500, 4) < oas(tr, tr2, 50, 4));
        assert_eq!(Shrinkage::Fixed(0.3).alpha(&s, 5), 0.3);
        let ratio = Shrinkage::Ratio { ratio: 0.8 };
        assert!((ratio.alpha(&s, 16) - 0.2).abs() < 1e-15);
        assert_eq!(ratio.alpha(&s, 2), 1.0);
        assert!(Shrinkage::Ratio { ratio: -1.0 }.validate().is_err());
        let r: Shrinkage = toml::from_str::<toml::Table>("s = { ratio = 0.8 }").unwrap()["s"]
            .clone()
            .try_into()
            .unwrap();
        assert_eq!(r, ratio);
        assert!(Shrinkage::Fixed(1.5).validate().is_err());
        assert!(Shrinkage::Rule(ShrinkageRule::Oas).validate().is_ok());
        let t: Shrinkage = serde_json::from_str("\"oas\"").unwrap();
        assert_eq!(t, Shrinkage::Rule(ShrinkageRule::Oas));
        let f: Shrinkage = serde_json::from_str("0.5").unwrap();
        assert_eq!(f, Shrinkage::Fixed(0.5));
    }
}
