//! Multivariate Gaussians for scoring filters: moment fits of particle sets, KL divergence and NEES.

use crate::core::error::{Error, Result};
use crate::core::filter::ParticleSet;
use nalgebra::{Cholesky, DMatrix, DVector, Dyn};

/// `N(μ, Σ)` with a cached Cholesky factor `Σ = L Lᵀ`.
#[derive(Clone, Debug)]
pub struct Gaussian {
    mean: DVector<f64>,
    chol: Cholesky<f64, Dyn>,
    /// `ln det Σ = 2 Σ_k ln L_kk`.
    log_det: f64,
}

impl Gaussian {
    /// `N(mean, cov)`; `cov` must be symmetric positive definite (checked through its Cholesky factor).
    pub fn new(mean: DVector<f64>, cov: DMatrix<f64>) -> Result<Self> {
        let m = mean.len();
        if cov.shape() != (m, m) {
            return Err(Error::Shape {
                what: "Gaussian covariance".into(),
                expected: format!("{m}×{m}"),
                got: format!("{}×{}", cov.nrows(), cov.ncols()),
            });
        }
        if let Some(v) = mean.iter().chain(cov.iter()).find(|v| !v.is_finite()) {
            return Err(Error::param(
                "Gaussian mean/covariance entry",
                v,
                "must be finite",
            ));
        }
        let chol = cov.cholesky().ok_or_else(|| {
            Error::param(
                "Gaussian covariance",
                "not positive definite",
                "Cholesky failed",
            )
        })?;
        let log_det = 2.0
            * chol
                .l_dirty()
                .diagonal()
                .iter()
                .map(|d| d.ln())
                .sum::<f64>();
        Ok(Self {
            mean,
            chol,
            log_det,
        })
    }

    /// Moment fit of a (weighted) particle set: `N(μ̂, Σ̂ + ridge·I)`.
    pub fn fit(particles: &ParticleSet, ridge: f64) -> Result<Self> {
        let m = particles.dim();
        Self::new(
            particles.mean(),
            particles.covariance() + ridge * DMatrix::identity(m, m),
        )
    }

    /// Dimension `m`.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// The mean `μ`.
    pub fn mean(&self) -> &DVector<f64> {
        &self.mean
    }

    /// `ln det Σ`.
    pub fn log_det(&self) -> f64 {
        self.log_det
    }

    /// Squared Mahalanobis distance `(x − μ)ᵀ Σ⁻¹ (x − μ)`.
    pub fn mahalanobis2(&self, x: &DVector<f64>) -> f64 {
        let d = x - &self.mean;
        let z = self.chol.l_dirty().solve_lower_triangular(&d).unwrap_or(d);
        z.norm_squared()
    }

    /// `KL(self ‖ other) = ½[tr(Σ₁⁻¹Σ₀) + (μ₁−μ₀)ᵀΣ₁⁻¹(μ₁−μ₀) − m + ln det Σ₁ − ln det Σ₀]`,
    /// with `self = N(μ₀, Σ₀)` and `other = N(μ₁, Σ₁)`.
    pub fn kl_to(&self, other: &Gaussian) -> Result<f64> {
        let m = self.dim();
        if other.dim() != m {
            return Err(Error::Shape {
                what: "KL divergence operands".into(),
                expected: format!("dimension {m}"),
                got: format!("dimension {}", other.dim()),
            });
        }
        // tr(Σ₁⁻¹Σ₀) = ‖L₁⁻¹ L₀‖_F² for Σ₀ = L₀L₀ᵀ, Σ₁ = L₁L₁ᵀ.
        let l0 = self.chol.l();
        let trace = other
            .chol
            .l_dirty()
            .solve_lower_triangular(&l0)
            .map_or(f64::NAN, |z| z.norm_squared());
        let quad = other.mahalanobis2(&self.mean);
        Ok(0.5 * (trace + quad - m as f64 + other.log_det - self.log_det))
    }

    /// Normalised estimation error squared of the truth `x` under this estimate:
    /// `NEES/m = (x − μ)ᵀ Σ⁻¹ (x − μ) / m`, which averages 1 for a consistent estimator.
    pub fn nees(&self, x: &DVector<f64>) -> f64 {
        self.mahalanobis2(x) / self.dim() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(v: &[f64]) -> DMatrix<f64> {
        DMatrix::from_diagonal(&DVector::from_column_slice(v))
    }

    #[test]
    fn kl_of_diagonal_gaussians_by_hand() {
        // Per dimension: ½[s0/s1 + (μ1−μ0)²/s1 − 1 + ln s1 − ln s0].
        let g0 = Gaussian::new(DVector::from_column_slice(&[0.0, 1.0]), diag(&[1.0, 2.0])).unwrap();
        let g1 = Gaussian::new(DVector::from_column_slice(&[1.0, 1.0]), diag(&[4.0, 1.0])).unwrap();
        let want = 0.5 * (0.25 + 0.25 - 1.0 + 4f64.ln()) + 0.5 * (2.0 - 1.0 - 2f64.ln());
        assert!((g0.kl_to(&g1).unwrap() - want).abs() < 1e-12);
        assert!(g0.kl_to(&g0).unwrap().abs() < 1e-12);
    }

    #[test]
    fn kl_is_invariant_under_rotation() {
        // KL is invariant under x ↦ Ax for invertible A: rotate both Gaussians by 30°.
        let (c, s) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
        let a = DMatrix::from_row_slice(2, 2, &[c, -s, s, c]);
        let (m0, s0) = (DVector::from_column_slice(&[0.3, -1.0]), diag(&[0.5, 3.0]));
        let (m1, s1) = (DVector::from_column_slice(&[1.0, 2.0]), diag(&[2.0, 0.7]));
        let plain = Gaussian::new(m0.clone(), s0.clone())
            .unwrap()
            .kl_to(&Gaussian::new(m1.clone(), s1.clone()).unwrap());
        let g0 = Gaussian::new(&a * m0, &a * s0 * a.transpose()).unwrap();
        let g1 = Gaussian::new(&a * m1, &a * s1 * a.transpose()).unwrap();
        assert!((plain.unwrap() - g0.kl_to(&g1).unwrap()).abs() < 1e-10);
    }

    #[test]
    fn nees_and_errors() {
        let g = Gaussian::new(DVector::zeros(2), diag(&[4.0, 1.0])).unwrap();
        // (2²/4 + 1²/1)/2 = 1.
        assert!((g.nees(&DVector::from_column_slice(&[2.0, 1.0])) - 1.0).abs() < 1e-12);
        assert!(Gaussian::new(DVector::zeros(2), diag(&[1.0, 0.0])).is_err());
        assert!(Gaussian::new(DVector::zeros(2), DMatrix::identity(3, 3)).is_err());
        let g1 = Gaussian::new(DVector::zeros(3), DMatrix::identity(3, 3)).unwrap();
        assert!(g.kl_to(&g1).is_err());
    }

    #[test]
    fn fit_adds_ridge() {
        let p = ParticleSet::from_vec(2, 1, vec![1.0, 1.0]).unwrap();
        let g = Gaussian::fit(&p, 1e-6).unwrap();
        assert!((g.log_det() - 1e-6f64.ln()).abs() < 1e-9);
    }
}
