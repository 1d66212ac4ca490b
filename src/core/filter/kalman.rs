//! The Kalman filter: the exact posterior of a linear-Gaussian model, used as the reference the
//! particle filters are scored against.
//!
//! State `x ~ N(μ, P)`; transition `x' = F x + w`, `w ~ N(0, Q)`; observation `y = H x + v`,
//! `v ~ N(0, R)`.

use crate::core::error::{Error, Result};
use nalgebra::{DMatrix, DVector};

/// Gaussian belief `N(mean, cov)` over the state, updated by [`Kalman::predict`] and [`Kalman::update`].
#[derive(Clone, Debug, PartialEq)]
pub struct Kalman {
    /// State mean `μ`.
    pub mean: DVector<f64>,
    /// State covariance `P` (kept symmetric).
    pub cov: DMatrix<f64>,
}

impl Kalman {
    /// Start from the prior `N(mean, cov)`; `cov` must be `m × m` for `mean` of length `m`.
    pub fn new(mean: DVector<f64>, cov: DMatrix<f64>) -> Result<Self> {
        let m = mean.len();
        if m == 0 {
            return Err(Error::param(
                "kalman state dim",
                0,
                "need at least one dimension",
            ));
        }
        check_shape("kalman prior covariance", &cov, m, m)?;
        Ok(Self { mean, cov })
    }

    /// State dimension `m`.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Predict: `μ ← F μ`, `P ← F P Fᵀ + Q`.
    pub fn predict(&mut self, f: &DMatrix<f64>, q: &DMatrix<f64>) -> Result<()> {
        let m = self.dim();
        check_shape("transition matrix F", f, m, m)?;
        check_shape("process noise Q", q, m, m)?;
        self.mean = f * &self.mean;
        self.cov = f * &self.cov * f.transpose() + q;
        symmetrize(&mut self.cov);
        Ok(())
    }

    /// Update with observation `y` and return the innovation `ν = y − H μ`.
    ///
    /// `S = H P Hᵀ + R`, `K = P Hᵀ S⁻¹` (via a Cholesky factor of `S`), `μ ← μ + K ν`, and the
    /// covariance in Joseph form `P ← (I − K H) P (I − K H)ᵀ + K R Kᵀ`, which stays symmetric
    /// positive semi-definite under rounding.
    pub fn update(
        &mut self,
        h: &DMatrix<f64>,
        r: &DMatrix<f64>,
        y: &DVector<f64>,
    ) -> Result<DVector<f64>> {
        let (k, m) = (y.len(), self.dim());
        check_shape("observation matrix H", h, k, m)?;
        check_shape("observation noise R", r, k, k)?;
        let innovation = y - h * &self.mean;
        let ph_t = &self.cov * h.transpose();
        let s = h * &ph_t + r;
        let chol = s.cholesky().ok_or_else(|| {
            Error::param(
                "innovation covariance S = HPHᵀ + R",
                "not positive definite",
                "R must be positive definite",
            )
        })?;
        // K = P Hᵀ S⁻¹  ⇔  Kᵀ = S⁻¹ H P  (S symmetric).
        let gain = chol.solve(&ph_t.transpose()).transpose();
        self.mean += &gain * &innovation;
        let i_kh = DMatrix::identity(m, m) - &gain * h;
        self.cov = &i_kh * &self.cov * i_kh.transpose() + &gain * r * gain.transpose();
        symmetrize(&mut self.cov);
        Ok(innovation)
    }
}

/// `A ← (A + Aᵀ)/2`.
fn symmetrize(a: &mut DMatrix<f64>) {
    let t = a.transpose();
    *a += t;
    *a *= 0.5;
}

/// Error unless `a` is `rows × cols`.
fn check_shape(what: &str, a: &DMatrix<f64>, rows: usize, cols: usize) -> Result<()> {
    if a.shape() == (rows, cols) {
        Ok(())
    } else {
        Err(Error::Shape {
            what: what.into(),
            expected: format!("{rows}×{cols}"),
            got: format!("{}×{}", a.nrows(), a.ncols()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::filter::rng;
    use rand_distr::{Distribution, StandardNormal};

    fn scalar(v: f64) -> DMatrix<f64> {
        DMatrix::from_element(1, 1, v)
    }

    #[test]
    fn scalar_case_by_hand() {
        // Prior N(0, 1); predict with F = 2, Q = 0.5: mean 0, P = 4·1 + 0.5 = 4.5.
        let mut kf = Kalman::new(DVector::from_element(1, 0.0), scalar(1.0)).unwrap();
        kf.predict(&scalar(2.0), &scalar(0.5)).unwrap();
        assert!((kf.cov[(0, 0)] - 4.5).abs() < 1e-12);
        // Update with H = 1, R = 0.5, y = 1: S = 5, K = 0.9, mean = 0.9, P = (1−0.9)²·4.5 + 0.81·0.5 = 0.45.
        let nu = kf
            .update(&scalar(1.0), &scalar(0.5), &DVector::from_element(1, 1.0))
            .unwrap();
        assert!((nu[0] - 1.0).abs() < 1e-12);
        assert!((kf.mean[0] - 0.9).abs() < 1e-12);
        assert!((kf.cov[(0, 0)] - 0.45).abs() < 1e-12);
        // Joseph form equals the textbook P − K S Kᵀ = 4.5 − 0.81·5 = 0.45 (exact arithmetic above).
    }

    #[test]
    fn covariance_stays_symmetric_psd() {
        let (m, k) = (6, 3);
        let mut r = rng::stream(7, 0, 0);
        let mut normal =
            |n: usize, c: usize| DMatrix::from_fn(n, c, |_, _| StandardNormal.sample(&mut r));
        let h: DMatrix<f64> = normal(k, m);
        let f: DMatrix<f64> = DMatrix::identity(m, m) + 0.1 * normal(m, m);
        let mut kf = Kalman::new(DVector::zeros(m), DMatrix::identity(m, m)).unwrap();
        for _ in 0..200 {
            kf.predict(&f, &(1e-3 * DMatrix::identity(m, m))).unwrap();
            let y: DVector<f64> = normal(k, 1).column(0).into();
            kf.update(&h, &(1e-4 * DMatrix::identity(k, k)), &y)
                .unwrap();
            assert_eq!(kf.cov, kf.cov.transpose());
            // Eigenvalues of a PSD matrix are ≥ 0; allow rounding at 1e-12 of the largest.
            let eig = kf.cov.clone().symmetric_eigen().eigenvalues;
            let top = eig.max();
            assert!(eig.min() > -1e-12 * top, "eigenvalues {eig}");
        }
    }

    #[test]
    fn rejects_bad_shapes() {
        let mut kf = Kalman::new(DVector::zeros(2), DMatrix::identity(2, 2)).unwrap();
        let e = kf
            .predict(&DMatrix::identity(3, 3), &DMatrix::identity(2, 2))
            .unwrap_err();
        assert!(e.to_string().contains("F"), "{e}");
        let e = kf
            .update(
                &DMatrix::zeros(1, 2),
                &DMatrix::zeros(1, 1),
                &DVector::zeros(1),
            )
            .unwrap_err();
        assert!(e.to_string().contains("positive definite"), "{e}");
        assert!(Kalman::new(DVector::zeros(2), DMatrix::identity(3, 3)).is_err());
    }
}
