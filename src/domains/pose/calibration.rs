//! Calibration of a published pose covariance against ground truth: the normalised estimation
//! error squared (NEES) and its summary over a run.
//!
//! A tracker publishes a pose `T̂` and a covariance `Σ` of the left tangent perturbation
//! `ξ = log(T · T̂⁻¹) = [ρ; φ]` (m², rad²; [`crate::core::geometry::se3`]). If `Σ` is calibrated,
//! the true pose's perturbation `ξ* = log(T_gt · T̂⁻¹)` is a draw from `N(0, Σ)` and its NEES
//! `ε = ξ*ᵀ Σ⁻¹ ξ*` follows χ² with 6 degrees of freedom: mean 6, median 5.348, and
//! `P(ε ≤ 12.592) = 0.95`. A mean NEES/6 well above 1 is an overconfident covariance (the errors
//! are larger than the covariance says), well below 1 an overcautious one.

use crate::core::geometry::se3;
use crate::core::stats;
use nalgebra::{Isometry3, Matrix6};
use serde::Serialize;

/// Degrees of freedom of a pose's NEES.
pub const POSE_DOF: usize = 6;

/// The 95 % quantile of χ² with 6 degrees of freedom.
pub const CHI2_6_95: f64 = 12.591_587;

/// The median of χ² with 6 degrees of freedom.
pub const CHI2_6_MEDIAN: f64 = 5.348_121;

/// Smallest eigenvalue of a covariance, relative to its largest, that still counts as positive
/// definite: below it the covariance is singular up to rounding (a cloud collapsed onto fewer than
/// 7 distinct particles) and its NEES would depend on the rounding.
pub const MIN_CONDITION: f64 = 1e-12;

/// NEES of the published `est` with covariance `cov` against `gt`: `ε = ξᵀ Σ⁻¹ ξ`,
/// `ξ = log(T_gt · T̂⁻¹)`. `None` when `cov` is not symmetric positive definite with
/// `λ_min ≥ MIN_CONDITION · λ_max` (a collapsed cloud, a single hypothesis that publishes no
/// spread, a non-finite entry): such a covariance claims certainty in some direction and has no
/// NEES.
pub fn nees(est: &Isometry3<f64>, cov: &Matrix6<f64>, gt: &Isometry3<f64>) -> Option<f64> {
    if !cov.iter().all(|c| c.is_finite()) {
        return None;
    }
    // One eigendecomposition Σ = Q Λ Qᵀ both judges Σ and gives ε = Σ_i (q_iᵀ ξ)² / λ_i.
    let eig = cov.symmetric_eigen();
    let (lo, hi) = (eig.eigenvalues.min(), eig.eigenvalues.max());
    if !(hi > 0.0 && lo >= MIN_CONDITION * hi) {
        return None;
    }
    let xi = se3::log(&(gt * est.inverse()));
    let along = eig.eigenvectors.transpose() * xi;
    let e: f64 = (along.iter().zip(eig.eigenvalues.iter()))
        .map(|(a, l)| a * a / l)
        .sum();
    e.is_finite().then_some(e)
}

/// Whether a NEES lies within χ²₆'s 95 % bound ([`CHI2_6_95`]).
pub fn within_95(nees: f64) -> bool {
    nees <= CHI2_6_95
}

/// NEES over a run's published estimates (one per object and frame).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NeesSummary {
    /// Estimates scored against ground truth.
    pub estimates: usize,
    /// Of these, estimates whose covariance had a NEES (positive definite).
    pub judged: usize,
    /// Mean NEES / 6 over the judged estimates (1 when calibrated; NaN when none).
    pub mean_per_dof: f64,
    /// Median NEES / 6 (0.891 when calibrated).
    pub median_per_dof: f64,
    /// Fraction of judged estimates with NEES ≤ [`CHI2_6_95`] (0.95 when calibrated).
    pub within_95: f64,
}

impl NeesSummary {
    /// The summary of `values`, one per scored estimate (`None`: no NEES, see [`nees`]).
    pub fn new(values: &[Option<f64>]) -> Self {
        let judged: Vec<f64> = values.iter().flatten().copied().collect();
        let n = judged.len();
        let (mean, median, within) = match n {
            0 => (f64::NAN, f64::NAN, f64::NAN),
            _ => (
                judged.iter().sum::<f64>() / n as f64,
                stats::median(&judged),
                judged.iter().filter(|&&e| within_95(e)).count() as f64 / n as f64,
            ),
        };
        let dof = POSE_DOF as f64;
        Self {
            estimates: values.len(),
            judged: n,
            mean_per_dof: mean / dof,
            median_per_dof: median / dof,
            within_95: within,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::{Translation3, UnitQuaternion, Vector3, Vector6};
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};

    /// An anisotropic, correlated covariance (mm and mrad scales) and its Cholesky factor.
    fn covariance() -> (Matrix6<f64>, Matrix6<f64>) {
        let mut l = Matrix6::from_diagonal(&Vector6::new(1e-3, 2e-3, 0.5e-3, 5e-3, 1e-2, 2e-3));
        l[(1, 0)] = 0.8e-3;
        l[(4, 2)] = 3e-3;
        l[(5, 3)] = -1e-3;
        (l * l.transpose(), l)
    }

    /// A pose far from the camera and turned, so that the left and right perturbations differ.
    fn estimate() -> Isometry3<f64> {
        let r = UnitQuaternion::from_axis_angle(&Vector3::y_axis(), 1.0)
            * UnitQuaternion::from_axis_angle(&Vector3::x_axis(), 0.4);
        Isometry3::from_parts(Translation3::new(0.3, -0.2, 0.8), r)
    }

    /// NEES of `n` ground truths drawn about `est` with the left (`left`) or right perturbation.
    fn draws(n: usize, left: bool) -> Vec<Option<f64>> {
        let (cov, l) = covariance();
        let est = estimate();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        (0..n)
            .map(|_| {
                let z = Vector6::from_fn(|_, _| StandardNormal.sample(&mut rng));
                let d = se3::exp(&(l * z));
                let gt = if left { d * est } else { est * d };
                nees(&est, &cov, &gt)
            })
            .collect()
    }

    #[test]
    fn ground_truth_drawn_from_the_covariance_is_calibrated() {
        // NEES ~ χ²₆: variance 12, so the mean of 4000 draws has s.d. √(12/4000) = 0.055 and
        // NEES/6 has s.d. 0.009; 0.04 is over 4 s.d. The in-95 % fraction has binomial s.d.
        // √(0.05·0.95/4000) = 0.0034; 0.015 is over 4 s.d. The sample median has s.d.
        // 1/(2 f(m) √n) with the χ²₆ density f = 0.123 at its median m = 5.348: 0.064, or 0.011
        // per dof; 0.05 is over 4 s.d.
        let s = NeesSummary::new(&draws(4000, true));
        assert_eq!((s.estimates, s.judged), (4000, 4000));
        assert!((s.mean_per_dof - 1.0).abs() < 0.04, "{s:?}");
        assert!((s.within_95 - 0.95).abs() < 0.015, "{s:?}");
        assert!(
            (s.median_per_dof - CHI2_6_MEDIAN / 6.0).abs() < 0.05,
            "{s:?}"
        );
    }

    #[test]
    fn the_perturbation_side_matters() {
        // The covariance is of the left perturbation: the same draws applied on the right move
        // the translation by t × φ (0.9 m × 10 mrad ≫ the 1 mm the covariance allows).
        let s = NeesSummary::new(&draws(500, false));
        assert!(s.mean_per_dof > 10.0, "{s:?}");
    }

    #[test]
    fn a_singular_or_broken_covariance_has_no_nees() {
        let est = estimate();
        let gt = Isometry3::translation(0.001, 0.0, 0.0) * est;
        assert_eq!(nees(&est, &Matrix6::zeros(), &gt), None);
        let mut cov = covariance().0;
        cov[(2, 2)] = f64::NAN;
        assert_eq!(nees(&est, &cov, &gt), None);
        // Rank 5 up to rounding: a cloud collapsed in one direction.
        let mut rank5 = Matrix6::from_diagonal(&Vector6::new(1e-6, 1e-6, 1e-6, 1e-4, 1e-4, 1e-4));
        rank5[(5, 5)] = 1e-22;
        assert_eq!(nees(&est, &rank5, &gt), None);
        // A translation error of 1 mm along x with σ_x = 1 mm (uncorrelated part): NEES ≥ 1.
        let iso = Matrix6::from_diagonal(&Vector6::repeat(1e-6));
        let e = nees(&est, &iso, &gt).unwrap();
        assert!((e - 1.0).abs() < 1e-9, "{e}");
        let s = NeesSummary::new(&[None, Some(6.0), Some(18.0)]);
        assert_eq!((s.estimates, s.judged), (3, 2));
        assert!((s.mean_per_dof - 2.0).abs() < 1e-12 && (s.within_95 - 0.5).abs() < 1e-12);
        assert!(NeesSummary::new(&[None]).mean_per_dof.is_nan());
    }
}
