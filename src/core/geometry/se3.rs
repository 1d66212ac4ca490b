//! The rigid-motion group SE(3): exponential and logarithm maps, Jacobians, perturbation, averaging
//! and pose errors.
//!
//! # Conventions
//! A tangent vector is `ξ = [ρ; φ] ∈ ℝ⁶` (translation part `ρ` first, rotation part `φ` last) and
//! ```text
//! exp(ξ) = ( exp([φ]×), J(φ) ρ )          log(R, t) = ( J(φ)⁻¹ t, log(R) )
//! ```
//! with `J` the left Jacobian of SO(3) ([`left_jacobian`]). This is the true group exponential, not
//! nalgebra's `Isometry3::new(t, φ)` (which uses `t` directly, i.e. `J = I`).
//!
//! Perturbations are applied on the **left** ([`perturb`]): `T = exp(ξ)·T_ref`, so `ξ` lives in the
//! camera (world) frame. For a transformed point `p' = exp(ξ)·(T_ref·p)` the derivative at `ξ = 0`
//! is `∂p'/∂ξ = [I | −[p']×]` ([`point_jacobian`]).

use nalgebra::{
    Isometry3, Matrix3, Matrix3x6, Point3, Quaternion, Translation3, UnitQuaternion, Vector3,
    Vector6,
};

/// Below this rotation angle (rad) the Taylor series of the Jacobian coefficients is used.
const SMALL_ANGLE: f64 = 1e-4;

/// Maximum iterations of [`mean_pose`].
const MEAN_MAX_ITERS: usize = 50;

/// Convergence threshold on the tangent-space mean update of [`mean_pose`].
const MEAN_TOL: f64 = 1e-12;

/// The skew-symmetric (cross-product) matrix `[v]×`, with `[v]× w = v × w`.
pub fn skew(v: &Vector3<f64>) -> Matrix3<f64> {
    Matrix3::new(0.0, -v.z, v.y, v.z, 0.0, -v.x, -v.y, v.x, 0.0)
}

/// SO(3) exponential `exp([φ]×)` as a unit quaternion `q = (cos(θ/2), sin(θ/2) φ/θ)`, `θ = |φ|`.
pub fn so3_exp(phi: &Vector3<f64>) -> UnitQuaternion<f64> {
    let theta = phi.norm();
    let half = 0.5 * theta;
    // sin(θ/2)/θ, with its series 1/2 − θ²/48 near zero.
    let k = if theta < SMALL_ANGLE {
        0.5 - theta * theta / 48.0
    } else {
        half.sin() / theta
    };
    let v = phi * k;
    UnitQuaternion::new_normalize(Quaternion::new(half.cos(), v.x, v.y, v.z))
}

/// SO(3) logarithm: the rotation vector `φ` with `|φ| ∈ [0, π]` and `exp([φ]×) = R`.
///
/// Computed from the quaternion as `θ = 2·atan2(|v|, w)` (sign chosen so `w ≥ 0`), which is
/// well-conditioned both near `θ = 0` and near `θ = π`.
pub fn so3_log(q: &UnitQuaternion<f64>) -> Vector3<f64> {
    let (w, v) = if q.w < 0.0 {
        (-q.w, -q.imag())
    } else {
        (q.w, q.imag())
    };
    let s = v.norm();
    let theta = 2.0 * s.atan2(w);
    // θ / sin(θ/2) = θ/s·|q|; near zero use the series 2/w·(1 + s²/(3w²)) of 2·atan(s/w)/s.
    let k = if s < 1e-8 {
        2.0 / w * (1.0 + s * s / (3.0 * w * w))
    } else {
        theta / s
    };
    v * k
}

/// The coefficients `(a, b)` of `J(φ) = I + a[φ]× + b[φ]×²`:
/// `a = (1 − cos θ)/θ²`, `b = (θ − sin θ)/θ³`.
fn left_jacobian_coeffs(theta: f64) -> (f64, f64) {
    if theta < SMALL_ANGLE {
        let t2 = theta * theta;
        (0.5 - t2 / 24.0, 1.0 / 6.0 - t2 / 120.0)
    } else {
        let t2 = theta * theta;
        (
            (1.0 - theta.cos()) / t2,
            (theta - theta.sin()) / (t2 * theta),
        )
    }
}

/// Left Jacobian of SO(3): `J(φ) = I + (1 − cos θ)/θ² [φ]× + (θ − sin θ)/θ³ [φ]×²`, `θ = |φ|`.
///
/// It satisfies `exp([φ + δ]×) ≈ exp([J(φ)δ]×)·exp([φ]×)` and maps `ρ` to the translation of
/// `exp(ξ)`.
pub fn left_jacobian(phi: &Vector3<f64>) -> Matrix3<f64> {
    let (a, b) = left_jacobian_coeffs(phi.norm());
    let k = skew(phi);
    Matrix3::identity() + k * a + k * k * b
}

/// Inverse left Jacobian: `J(φ)⁻¹ = I − ½[φ]× + (1/θ² − cos(θ/2)/(2θ sin(θ/2))) [φ]×²`.
///
/// (The last coefficient is the usual `1/θ² − (1 + cos θ)/(2θ sin θ)` written so that it stays
/// finite at `θ = π`.) Singular at `θ = 2π`, which [`so3_log`] never produces.
pub fn left_jacobian_inv(phi: &Vector3<f64>) -> Matrix3<f64> {
    let theta = phi.norm();
    let c = if theta < SMALL_ANGLE {
        1.0 / 12.0 + theta * theta / 720.0
    } else {
        let half = 0.5 * theta;
        1.0 / (theta * theta) - half.cos() / (2.0 * theta * half.sin())
    };
    let k = skew(phi);
    Matrix3::identity() - k * 0.5 + k * k * c
}

/// SE(3) exponential: `exp([ρ; φ]) = (exp([φ]×), J(φ) ρ)`.
pub fn exp(xi: &Vector6<f64>) -> Isometry3<f64> {
    let rho = xi.fixed_rows::<3>(0).into_owned();
    let phi = xi.fixed_rows::<3>(3).into_owned();
    let t = left_jacobian(&phi) * rho;
    Isometry3::from_parts(Translation3::from(t), so3_exp(&phi))
}

/// SE(3) logarithm: `log(R, t) = [J(φ)⁻¹ t; φ]` with `φ = log(R)`, `|φ| ≤ π`.
pub fn log(t: &Isometry3<f64>) -> Vector6<f64> {
    let phi = so3_log(&t.rotation);
    let rho = left_jacobian_inv(&phi) * t.translation.vector;
    Vector6::new(rho.x, rho.y, rho.z, phi.x, phi.y, phi.z)
}

/// Left perturbation `T = exp(ξ)·T_ref`: `ξ` is expressed in the frame `T_ref` maps into (the
/// camera frame for object-to-camera poses).
pub fn perturb(reference: &Isometry3<f64>, xi: &Vector6<f64>) -> Isometry3<f64> {
    exp(xi) * reference
}

/// Derivative of `p' = exp(ξ)·p` with respect to `ξ` at `ξ = 0`: `∂p'/∂ξ = [I | −[p]×]`.
///
/// Pass the already transformed point `p = T_ref·p_model`; with [`perturb`] this is the Jacobian of
/// the camera-frame point with respect to the pose tangent vector.
pub fn point_jacobian(p: &Point3<f64>) -> Matrix3x6<f64> {
    let mut j = Matrix3x6::zeros();
    j.fixed_view_mut::<3, 3>(0, 0)
        .copy_from(&Matrix3::identity());
    j.fixed_view_mut::<3, 3>(0, 3)
        .copy_from(&(-skew(&p.coords)));
    j
}

/// Normalized, non-negative weights for [`mean_pose`]; `None` when they cannot be used.
fn normalized_weights(n: usize, weights: Option<&[f64]>) -> Option<Vec<f64>> {
    let w = match weights {
        None => return Some(vec![1.0 / n as f64; n]),
        Some(w) if w.len() != n => return None,
        Some(w) => w,
    };
    if w.iter().any(|x| !x.is_finite() || *x < 0.0) {
        return None;
    }
    let sum: f64 = w.iter().sum();
    (sum > 0.0).then(|| w.iter().map(|x| x / sum).collect())
}

/// Weighted mean of poses by iterated tangent-space averaging (a Karcher mean on SE(3)):
/// starting from the heaviest pose `M`, repeat `δ = Σᵢ wᵢ log(Tᵢ·M⁻¹)`, `M ← exp(δ)·M` until
/// `|δ| < 10⁻¹²` (at most 50 iterations).
///
/// Weights are normalized to sum to one. Returns the identity for an empty slice. Weights of the
/// wrong length, negative, non-finite or all zero are not usable and fall back to uniform weights;
/// use [`try_mean_pose`] to get an error instead.
pub fn mean_pose(poses: &[Isometry3<f64>], weights: Option<&[f64]>) -> Isometry3<f64> {
    if poses.is_empty() {
        return Isometry3::identity();
    }
    let w = normalized_weights(poses.len(), weights)
        .unwrap_or_else(|| vec![1.0 / poses.len() as f64; poses.len()]);
    karcher_mean(poses, &w)
}

/// [`mean_pose`] that rejects an empty slice and unusable weights with [`crate::Error::InvalidParam`].
pub fn try_mean_pose(
    poses: &[Isometry3<f64>],
    weights: Option<&[f64]>,
) -> crate::Result<Isometry3<f64>> {
    if poses.is_empty() {
        return Err(crate::Error::param("poses", "[]", "mean of no poses"));
    }
    let w = normalized_weights(poses.len(), weights).ok_or_else(|| {
        crate::Error::param(
            "weights",
            format!(
                "{} weights for {} poses",
                weights.map_or(0, <[f64]>::len),
                poses.len()
            ),
            "weights must be one per pose, finite, non-negative and not all zero",
        )
    })?;
    Ok(karcher_mean(poses, &w))
}

/// The fixed-point iteration of [`mean_pose`] with normalized weights `w`.
fn karcher_mean(poses: &[Isometry3<f64>], w: &[f64]) -> Isometry3<f64> {
    let start = w
        .iter()
        .enumerate()
        .fold(0, |best, (i, wi)| if *wi > w[best] { i } else { best });
    let mut mean = poses[start];
    for _ in 0..MEAN_MAX_ITERS {
        let inv = mean.inverse();
        let delta: Vector6<f64> = poses
            .iter()
            .zip(w)
            .map(|(p, wi)| log(&(p * inv)) * *wi)
            .sum();
        mean = exp(&delta) * mean;
        if delta.norm() < MEAN_TOL {
            break;
        }
    }
    mean
}

/// Rotation error in degrees: the angle of `R_a⁻¹ R_b`, `e_R = arccos((tr(R_a⁻¹R_b) − 1)/2)`.
pub fn rotation_error_deg(a: &Isometry3<f64>, b: &Isometry3<f64>) -> f64 {
    a.rotation.angle_to(&b.rotation).to_degrees()
}

/// Translation error `|t_a − t_b|` in the poses' unit (metres inside hdpf).
pub fn translation_error(a: &Isometry3<f64>, b: &Isometry3<f64>) -> f64 {
    (a.translation.vector - b.translation.vector).norm()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::filter::rng::StreamRng;
    use rand::{Rng, SeedableRng};
    use std::f64::consts::PI;

    fn random_xi(rng: &mut StreamRng, rot_scale: f64) -> Vector6<f64> {
        Vector6::from_fn(|i, _| {
            let u: f64 = rng.random_range(-1.0..1.0);
            if i < 3 {
                u * 0.5
            } else {
                u * rot_scale
            }
        })
    }

    fn assert_iso_close(a: &Isometry3<f64>, b: &Isometry3<f64>, tol: f64) {
        assert!(translation_error(a, b) < tol, "translation {a} vs {b}");
        assert!(
            a.rotation.angle_to(&b.rotation) < tol,
            "rotation {a} vs {b}"
        );
    }

    #[test]
    fn exp_log_round_trip_generic_small_and_near_pi() {
        let mut rng = StreamRng::seed_from_u64(1);
        for _ in 0..200 {
            let xi = random_xi(&mut rng, 1.7);
            let t = exp(&xi);
            assert_iso_close(&exp(&log(&t)), &t, 1e-10);
            assert!((log(&t) - xi).norm() < 1e-9, "log(exp(ξ)) ≠ ξ for {xi}");
        }
        for scale in [0.0, 1e-12, 1e-8, 1e-5, 1e-3] {
            let xi = random_xi(&mut rng, 1.0)
                .component_mul(&Vector6::new(1.0, 1.0, 1.0, scale, scale, scale));
            let t = exp(&xi);
            assert!((log(&t) - xi).norm() < 1e-12, "near-zero scale {scale}");
        }
        for eps in [0.0, 1e-12, 1e-9, 1e-6, 1e-3] {
            let axis = Vector3::new(0.3, -0.5, 0.8).normalize();
            let xi = Vector6::new(0.1, -0.2, 0.7, 0.0, 0.0, 0.0);
            let mut xi = xi;
            xi.fixed_rows_mut::<3>(3).copy_from(&(axis * (PI - eps)));
            let t = exp(&xi);
            assert_iso_close(&exp(&log(&t)), &t, 1e-9);
            assert!((log(&t).fixed_rows::<3>(3).norm() - (PI - eps)).abs() < 1e-9);
        }
    }

    #[test]
    fn exp_matches_rotation_about_axis_through_point() {
        // Rotating by φ about the axis through point c has twist ρ = −φ × c = c × φ.
        let c = Vector3::new(0.2, -0.1, 1.0);
        let phi = Vector3::new(0.0, 0.4, 0.3);
        let rho = c.cross(&phi);
        let t = exp(&Vector6::new(rho.x, rho.y, rho.z, phi.x, phi.y, phi.z));
        let moved = t * Point3::from(c);
        assert!((moved.coords - c).norm() < 1e-12, "centre moved to {moved}");
        assert!((t.rotation.scaled_axis() - phi).norm() < 1e-12);
    }

    #[test]
    fn left_jacobian_matches_finite_differences_and_inverse() {
        let mut rng = StreamRng::seed_from_u64(2);
        for scale in [1e-6, 0.3, 2.0, 3.0] {
            let phi = random_xi(&mut rng, 1.0).fixed_rows::<3>(3).normalize() * scale;
            let j = left_jacobian(&phi);
            let r0 = so3_exp(&phi);
            let h = 1e-6;
            for k in 0..3 {
                let mut d = Vector3::zeros();
                d[k] = h;
                let plus = so3_log(&(so3_exp(&(phi + d)) * r0.inverse()));
                let minus = so3_log(&(so3_exp(&(phi - d)) * r0.inverse()));
                let col = (plus - minus) / (2.0 * h);
                assert!(
                    (col - j.column(k)).norm() < 1e-6,
                    "θ={scale} column {k}: {col} vs {}",
                    j.column(k)
                );
            }
            assert!((left_jacobian_inv(&phi) * j - Matrix3::identity()).norm() < 1e-10);
        }
    }

    #[test]
    fn point_jacobian_matches_finite_differences() {
        let reference = exp(&Vector6::new(0.1, 0.05, 0.8, 0.3, -0.2, 1.1));
        let p_model = Point3::new(0.03, -0.02, 0.05);
        let p = reference * p_model;
        let j = point_jacobian(&p);
        let h = 1e-6;
        for k in 0..6 {
            let mut d = Vector6::zeros();
            d[k] = h;
            let plus = perturb(&reference, &d) * p_model;
            let minus = perturb(&reference, &(-d)) * p_model;
            let col = (plus - minus) / (2.0 * h);
            assert!(
                (col - j.column(k)).norm() < 1e-8,
                "column {k}: {col} vs {}",
                j.column(k)
            );
        }
    }

    #[test]
    fn mean_pose_of_symmetric_perturbations_is_the_centre() {
        let centre = exp(&Vector6::new(0.1, -0.1, 0.9, 0.5, 0.2, -0.3));
        let mut rng = StreamRng::seed_from_u64(3);
        let mut poses = Vec::new();
        for _ in 0..10 {
            let xi = random_xi(&mut rng, 0.4);
            poses.push(perturb(&centre, &xi));
            poses.push(perturb(&centre, &(-xi)));
        }
        // Symmetric ± perturbations are not exactly symmetric in the group; the mean is close.
        let m = mean_pose(&poses, None);
        assert!(
            translation_error(&m, &centre) < 2e-2,
            "{}",
            translation_error(&m, &centre)
        );
        assert!(rotation_error_deg(&m, &centre) < 1.0);
        // Exact for poses sharing a rotation: arithmetic mean of translations.
        let a = Isometry3::new(Vector3::new(0.0, 0.0, 1.0), Vector3::new(0.1, 0.2, 0.3));
        let b = Isometry3::new(Vector3::new(0.2, 0.0, 1.4), Vector3::new(0.1, 0.2, 0.3));
        let m = mean_pose(&[a, b], Some(&[3.0, 1.0]));
        assert!((m.translation.vector - Vector3::new(0.05, 0.0, 1.1)).norm() < 1e-12);
        // The mean is a fixed point: log(Tᵢ·M⁻¹) average to zero.
        let m = mean_pose(&poses, None);
        let d: Vector6<f64> = poses.iter().map(|p| log(&(p * m.inverse()))).sum();
        assert!(d.norm() < 1e-9);
    }

    #[test]
    fn mean_pose_rejects_bad_weights_only_in_try() {
        let p = [Isometry3::identity(), Isometry3::translation(1.0, 0.0, 0.0)];
        assert!(try_mean_pose(&p, Some(&[1.0])).is_err());
        assert!(try_mean_pose(&p, Some(&[-1.0, 2.0])).is_err());
        assert!(try_mean_pose(&[], None).is_err());
        let m = mean_pose(&p, Some(&[0.0, 0.0]));
        assert!((m.translation.x - 0.5).abs() < 1e-12);
        let m = try_mean_pose(&p, Some(&[0.0, 1.0])).unwrap();
        assert!((m.translation.x - 1.0).abs() < 1e-12);
    }

    #[test]
    fn pose_errors() {
        let a = Isometry3::new(Vector3::new(0.0, 0.0, 1.0), Vector3::zeros());
        let b = Isometry3::new(
            Vector3::new(0.03, 0.04, 1.0),
            Vector3::new(0.0, 0.0, 30f64.to_radians()),
        );
        assert!((translation_error(&a, &b) - 0.05).abs() < 1e-12);
        assert!((rotation_error_deg(&a, &b) - 30.0).abs() < 1e-9);
    }
}
