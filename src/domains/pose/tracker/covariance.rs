//! The pose covariance a tracker publishes with each estimate, in the tangent space of
//! [`crate::core::geometry::se3`] about the estimate `T̂` (left perturbation `T = exp(ξ)·T̂`):
//! - a cloud's: its particles' weighted spread, `Σ = Σ_i w_i ξ_i ξ_iᵀ`, `ξ_i = log(T_i · T̂⁻¹)`;
//! - one hypothesis's (`gn`): the Laplace approximation of the round's posterior, the inverse of
//!   the Gauss–Newton curvature of its loss, motion prior included, `Σ_x = J(x̂)⁻¹` in state
//!   units, carried to the pose tangent by the unscented transform through the same map as a
//!   cloud's particles (12 sigma points `x̂ ± √6·L_c`, `L Lᵀ = Σ_x`, weights 1/12): exact for a
//!   linear map, so near `T̂`, where the map is nearly linear, it is `Σ_x` in pose coordinates.

use crate::core::geometry::se3;
use crate::domains::pose::modality::{ObjectTerms, PoseChart};
use nalgebra::{Isometry3, Matrix6, Vector3, Vector6};

/// The pose of state coordinates `x` (state units) of `chart`, with length scales `scale`.
fn pose_of(chart: &PoseChart, scale: &Vector6<f64>, x: &[f64]) -> Isometry3<f64> {
    chart.pose(&Vector6::from_fn(|r, _| x[r] * scale[r]))
}

/// A cloud of one object's particles: each particle's translation with its loss, and the
/// covariance `Σ_i w_i ξ_i ξ_iᵀ`, `ξ_i = log(T_i · T̂⁻¹)`, about `est` (`T̂`). `rows` gives each
/// particle's 6 coordinates (state units), `weights` and `losses` (NaN where not known) per
/// particle.
pub(super) fn cloud_covariance<'a>(
    rows: impl Iterator<Item = &'a [f64]>,
    weights: &[f64],
    losses: &[f64],
    (scale, chart): (&Vector6<f64>, &PoseChart),
    est: &Isometry3<f64>,
) -> (Vec<(Vector3<f64>, f64)>, Matrix6<f64>) {
    let inv = est.inverse();
    let mut cov = Matrix6::zeros();
    let cloud = (rows.enumerate())
        .map(|(i, x)| {
            let pose = pose_of(chart, scale, x);
            let xi = se3::log(&(pose * inv));
            cov += weights[i] * xi * xi.transpose();
            let loss = losses.get(i).copied().unwrap_or(f64::NAN);
            (pose.translation.vector, loss)
        })
        .collect();
    (cloud, cov)
}

/// The Laplace covariance of one hypothesis at state `x` (state units) of `terms` (module docs),
/// about `est`; `None` when the curvature is not positive definite (nothing to publish but the
/// caller's fallback).
pub(super) fn laplace_covariance(
    terms: &ObjectTerms,
    x: &[f64],
    chart: &PoseChart,
    est: &Isometry3<f64>,
) -> Option<Matrix6<f64>> {
    let sigma = terms.curvature(x).cholesky()?.inverse();
    let l = sigma.cholesky()?.l();
    let spread = 6f64.sqrt();
    let centre = Vector6::from_column_slice(x);
    let points: Vec<Vector6<f64>> = (0..12)
        .map(|s| centre + l.column(s % 6) * if s < 6 { spread } else { -spread })
        .collect();
    let weights = [1.0 / 12.0; 12];
    let rows = points.iter().map(|p| p.as_slice());
    let (_, cov) = cloud_covariance(rows, &weights, &[], (&terms.scale, chart), est);
    Some(cov)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domains::pose::modality::{Modality, RigidMotion};

    /// A modality with a fixed quadratic loss `½ xᵀ A x` (tangent coordinates), curvature `A`.
    struct Quadratic(Matrix6<f64>);

    impl Modality for Quadratic {
        fn name(&self) -> &str {
            "quadratic"
        }
        fn evaluate(
            &self,
            _motion: &RigidMotion,
            _grad: Option<&mut crate::domains::pose::modality::GradAccumulator>,
        ) -> f64 {
            0.0
        }
        fn curvature(&self) -> Matrix6<f64> {
            self.0
        }
        fn curvature_at(&self, _motion: &RigidMotion) -> Matrix6<f64> {
            self.0
        }
        fn len(&self) -> usize {
            1
        }
    }

    /// Near the estimate the map to the pose tangent is nearly the identity (up to the chart's
    /// centre offset, a linear change of coordinates), so the Laplace covariance of a small,
    /// correlated curvature comes out as its inverse carried through that linear map: checked
    /// against the map's Jacobian by central differences.
    #[test]
    fn the_laplace_covariance_is_the_inverse_curvature_in_pose_coordinates() {
        let a = Matrix6::from_fn(|r, c| {
            if r == c {
                4e6
            } else {
                1e5 * ((r + 2 * c) % 3) as f64
            }
        });
        let a = (a + a.transpose()) * 0.5;
        let scale = Vector6::new(0.01, 0.01, 0.01, 0.05, 0.05, 0.05);
        let terms = ObjectTerms {
            modalities: vec![(1.0, Box::new(Quadratic(a)))],
            scale,
            prior_sigma: Vector6::repeat(1e3),
            prior_centre: Vector6::zeros(),
            process_sigma: Vector6::zeros(),
        };
        let reference = Isometry3::new(Vector3::new(0.1, -0.05, 0.8), Vector3::new(0.3, -0.2, 0.5));
        let chart = PoseChart::new(reference, &Vector3::new(0.01, 0.02, -0.03));
        let x = [0.1, -0.2, 0.05, 0.02, -0.01, 0.03];
        let est = pose_of(&chart, &scale, &x);
        let got = laplace_covariance(&terms, &x, &chart, &est).unwrap();
        // The map x → log(pose(x)·T̂⁻¹) linearised at x̂: Σ_pose = M J⁻¹ Mᵀ.
        let map =
            |y: &Vector6<f64>| se3::log(&(pose_of(&chart, &scale, y.as_slice()) * est.inverse()));
        let h = 1e-6;
        let centre = Vector6::from_column_slice(&x);
        let m = Matrix6::from_fn(|r, c| {
            let e = Vector6::from_fn(|i, _| if i == c { h } else { 0.0 });
            (map(&(centre + e))[r] - map(&(centre - e))[r]) / (2.0 * h)
        });
        let want = m * terms.curvature(&x).try_inverse().unwrap() * m.transpose();
        // Central differences at h = 1e-6 state units and a map curved on the scale of one
        // radian leave relative errors near 1e-6; 1e-4 of the largest entry bounds them.
        let tol = 1e-4 * want.abs().max();
        assert!((got - want).abs().max() < tol, "{got}\nvs\n{want}");
        // Not positive definite: nothing to publish.
        let flat = ObjectTerms {
            modalities: vec![(1.0, Box::new(Quadratic(-a)))],
            ..terms
        };
        assert!(laplace_covariance(&flat, &x, &chart, &est).is_none());
    }
}
