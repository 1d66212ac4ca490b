//! The benchmark models: the RF-PF paper's synthetic localization problem and a linear-Gaussian
//! random walk with a Kalman-filter reference.
//!
//! Both hold their *current* observation; a driver sets it before each [`crate::core::filter::Filter::update`].

use crate::core::error::{Error, Result};
use crate::core::filter::model::LinearObservation;
use crate::core::filter::Model;
use nalgebra::{DMatrix, DVector, DVectorView};
use rand::RngCore;
use rand_distr::{Distribution, StandardNormal};

/// Fill `out` with independent `N(0, 1)` draws.
pub fn fill_normal(rng: &mut dyn RngCore, out: &mut [f64]) {
    out.iter_mut().for_each(|v| *v = StandardNormal.sample(rng));
}

/// A vector of `m` independent `N(0, 1)` draws.
pub fn normal_vector(rng: &mut dyn RngCore, m: usize) -> DVector<f64> {
    let mut v = DVector::zeros(m);
    fill_normal(rng, v.as_mut_slice());
    v
}

/// Error unless every value is finite.
fn check_finite(what: &str, v: &[f64]) -> Result<()> {
    match v.iter().find(|x| !x.is_finite()) {
        Some(x) => Err(Error::param(what, x, "must be finite")),
        None => Ok(()),
    }
}

/// The paper's synthetic localization problem: static truth `u`, prior `N(0, I_m)`, and at each step
/// a random direction `x` observed through the loss `L(p) = ½ (x·(p − u))²`.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalizationModel {
    truth: Vec<f64>,
    direction: Vec<f64>,
    /// `x·u`, cached.
    xu: f64,
}

impl LocalizationModel {
    /// A model with truth `u` and no observation yet (the loss is 0 until [`Self::observe`]).
    pub fn new(truth: Vec<f64>) -> Result<Self> {
        if truth.is_empty() {
            return Err(Error::param("dim", 0, "need at least one dimension"));
        }
        check_finite("localization truth", &truth)?;
        let m = truth.len();
        Ok(Self {
            truth,
            direction: vec![0.0; m],
            xu: 0.0,
        })
    }

    /// The truth `u`.
    pub fn truth(&self) -> &[f64] {
        &self.truth
    }

    /// The current direction `x`.
    pub fn direction(&self) -> &[f64] {
        &self.direction
    }

    /// Set the current observation direction `x` (length `m`).
    pub fn observe(&mut self, direction: &[f64]) -> Result<()> {
        if direction.len() != self.truth.len() {
            return Err(Error::Shape {
                what: "localization direction".into(),
                expected: self.truth.len().to_string(),
                got: direction.len().to_string(),
            });
        }
        check_finite("localization direction", direction)?;
        self.direction.copy_from_slice(direction);
        self.xu = dot(direction, &self.truth);
        Ok(())
    }

    /// Residual `x·(p − u)`.
    fn residual(&self, p: &[f64]) -> f64 {
        dot(&self.direction, p) - self.xu
    }
}

impl Model for LocalizationModel {
    fn dim(&self) -> usize {
        self.truth.len()
    }

    /// `p ~ N(0, I_m)`.
    fn sample_prior(&self, rng: &mut dyn RngCore, out: &mut [f64]) {
        fill_normal(rng, out);
    }

    /// `L(p) = ½ (x·(p − u))²`.
    fn loss(&self, p: &[f64]) -> f64 {
        0.5 * self.residual(p).powi(2)
    }

    /// `∇L(p) = (x·(p − u)) x`.
    fn loss_grad(&self, p: &[f64], grad: &mut [f64]) -> f64 {
        let e = self.residual(p);
        grad.iter_mut()
            .zip(&self.direction)
            .for_each(|(g, x)| *g = e * x);
        0.5 * e * e
    }

    /// The Hessian is `x xᵀ`, whose largest eigenvalue is `‖x‖²`.
    fn gradient_lipschitz(&self) -> Option<f64> {
        Some(dot(&self.direction, &self.direction))
    }

    /// `J = u uᵀ` for the direction `u`.
    fn curvature(&self, _x: &[f64], out: &mut [f64]) -> bool {
        let u = &self.direction;
        for (row, ui) in out.chunks_mut(u.len()).zip(u) {
            row.iter_mut().zip(u).for_each(|(o, uj)| *o = ui * uj);
        }
        true
    }

    /// `y = uᵀx_true` observed as `y = uᵀx + v`, `v ~ N(0, 1)` (the loss `½(y − uᵀx)²`).
    fn linear_observation(&self) -> Option<LinearObservation> {
        Some(LinearObservation {
            h: DMatrix::from_row_slice(1, self.direction.len(), &self.direction),
            y: DVector::from_element(1, self.xu),
            r: DMatrix::identity(1, 1),
        })
    }
}

/// Random walk with linear-Gaussian observations:
/// `x_t = x_{t−1} + w`, `w ~ N(0, q I)`; `y_t = H x_t + v`, `v ~ N(0, r I)`; prior `N(0, I)`.
///
/// A particle whose payload row holds `k` standard-normal numbers `z_i` is scored against its own
/// perturbed observation `y + √r·z_i` (the perturbed-observation extension; not part of the RF-PF
/// paper); a particle without payload sees `y`.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearGaussianModel {
    h: DMatrix<f64>,
    q: f64,
    r: f64,
    y: DVector<f64>,
    /// `‖H‖₂² / r`.
    lipschitz: f64,
}

impl LinearGaussianModel {
    /// Model with observation matrix `H` (`k × m`), process variance `q ≥ 0` and observation variance `r > 0`.
    pub fn new(h: DMatrix<f64>, q: f64, r: f64) -> Result<Self> {
        if h.nrows() == 0 || h.ncols() == 0 {
            return Err(Error::param(
                "observation matrix H",
                format!("{}×{}", h.nrows(), h.ncols()),
                "must be non-empty",
            ));
        }
        check_finite("observation matrix H entry", h.as_slice())?;
        if !(q >= 0.0 && q.is_finite()) {
            return Err(Error::param(
                "q",
                q,
                "process variance must be finite and ≥ 0",
            ));
        }
        if !(r > 0.0 && r.is_finite()) {
            return Err(Error::param(
                "r",
                r,
                "observation variance must be finite and > 0",
            ));
        }
        let sigma_max = h.singular_values().max();
        Ok(Self {
            y: DVector::zeros(h.nrows()),
            lipschitz: sigma_max * sigma_max / r,
            h,
            q,
            r,
        })
    }

    /// `H`.
    pub fn h(&self) -> &DMatrix<f64> {
        &self.h
    }

    /// Process variance `q`.
    pub fn q(&self) -> f64 {
        self.q
    }

    /// Observation variance `r`.
    pub fn r(&self) -> f64 {
        self.r
    }

    /// Set the current observation `y` (length `k`).
    pub fn observe(&mut self, y: DVector<f64>) -> Result<()> {
        if y.len() != self.h.nrows() {
            return Err(Error::Shape {
                what: "linear-Gaussian observation".into(),
                expected: self.h.nrows().to_string(),
                got: y.len().to_string(),
            });
        }
        check_finite("linear-Gaussian observation", y.as_slice())?;
        self.y = y;
        Ok(())
    }

    /// Residual `e = (y + √r·z) − H x` for a particle whose payload row is `z` (`z` empty: `y − Hx`).
    fn residual(&self, z: &[f64], x: &[f64]) -> DVector<f64> {
        let mut e = &self.y - &self.h * DVectorView::from_slice(x, x.len());
        if z.len() == self.h.nrows() {
            let s = self.r.sqrt();
            e.iter_mut().zip(z).for_each(|(ek, zk)| *ek += s * zk);
        }
        e
    }

    /// `L = eᵀe / 2r` and `∇L = −Hᵀe / r` for a residual `e`.
    fn loss_grad_of(&self, e: &DVector<f64>, grad: &mut [f64]) -> f64 {
        let g = self.h.tr_mul(e) / -self.r;
        grad.copy_from_slice(g.as_slice());
        e.norm_squared() / (2.0 * self.r)
    }
}

impl Model for LinearGaussianModel {
    fn dim(&self) -> usize {
        self.h.ncols()
    }

    /// `x_0 ~ N(0, I)`.
    fn sample_prior(&self, rng: &mut dyn RngCore, out: &mut [f64]) {
        fill_normal(rng, out);
    }

    fn has_transition(&self) -> bool {
        true
    }

    /// `x ← x + √q · N(0, I)`.
    fn transition(&self, x: &mut [f64], rng: &mut dyn RngCore) {
        let s = self.q.sqrt();
        x.iter_mut().for_each(|v| {
            *v += s * {
                let z: f64 = StandardNormal.sample(rng);
                z
            }
        });
    }

    /// `L(x) = ½ (y − Hx)ᵀ(y − Hx) / r`.
    fn loss(&self, x: &[f64]) -> f64 {
        self.residual(&[], x).norm_squared() / (2.0 * self.r)
    }

    /// `∇L(x) = −Hᵀ(y − Hx) / r`.
    fn loss_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        self.loss_grad_of(&self.residual(&[], x), grad)
    }

    /// Loss against the particle's own perturbed observation `y + √r·z` (`z` its payload row).
    fn particle_loss(&self, x: &[f64], z: &[f64]) -> f64 {
        self.residual(z, x).norm_squared() / (2.0 * self.r)
    }

    /// Loss and gradient against `y + v`, `v = √r·z`: `∇L = −Hᵀ(y + v − Hx) / r`.
    fn particle_loss_grad(&self, x: &[f64], z: &[f64], grad: &mut [f64]) -> f64 {
        self.loss_grad_of(&self.residual(z, x), grad)
    }

    /// `J = HᵀH / r` (exact: the loss is quadratic).
    fn curvature(&self, _x: &[f64], out: &mut [f64]) -> bool {
        let j = self.h.tr_mul(&self.h) / self.r;
        // Symmetric: its column-major storage is its row-major one.
        out.copy_from_slice(j.as_slice());
        true
    }

    /// `y = Hx + v`, `v ~ N(0, rI)`.
    fn linear_observation(&self) -> Option<LinearObservation> {
        Some(LinearObservation {
            h: self.h.clone(),
            y: self.y.clone(),
            r: DMatrix::identity(self.h.nrows(), self.h.nrows()) * self.r,
        })
    }

    /// The Hessian is `HᵀH / r`, whose largest eigenvalue is `‖H‖₂² / r`.
    fn gradient_lipschitz(&self) -> Option<f64> {
        Some(self.lipschitz)
    }
}

/// `Σ a_k b_k`.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::filter::model::gradient_check;
    use crate::core::filter::rng::stream;

    #[test]
    fn localization_gradient_and_lipschitz() {
        let mut rng = stream(1, 0, 0);
        let mut model =
            LocalizationModel::new(normal_vector(&mut rng, 5).as_slice().to_vec()).unwrap();
        model
            .observe(normal_vector(&mut rng, 5).as_slice())
            .unwrap();
        let p = normal_vector(&mut rng, 5);
        // A quadratic: central differences are exact up to rounding (~1e-9 at h = 1e-5).
        assert!(gradient_check(&model, p.as_slice(), 1e-5) < 1e-6);
        // Loss is zero at the truth and Lipschitz equals ‖x‖².
        assert_eq!(model.loss(model.truth()), 0.0);
        let x2: f64 = model.direction().iter().map(|v| v * v).sum();
        assert_eq!(model.gradient_lipschitz(), Some(x2));
        assert!(model.observe(&[1.0]).is_err());
        assert!(LocalizationModel::new(vec![f64::NAN]).is_err());
    }

    #[test]
    fn linear_gaussian_gradient_lipschitz_and_perturbation() {
        let mut rng = stream(2, 0, 0);
        let (k, m) = (3, 4);
        let h = DMatrix::from_fn(k, m, |_, _| StandardNormal.sample(&mut rng));
        let mut model = LinearGaussianModel::new(h.clone(), 0.01, 0.1).unwrap();
        model.observe(normal_vector(&mut rng, k)).unwrap();
        let x = normal_vector(&mut rng, m);
        assert!(gradient_check(&model, x.as_slice(), 1e-5) < 1e-6);
        // ‖H‖₂² = largest eigenvalue of HᵀH.
        let top = (h.transpose() * &h).symmetric_eigen().eigenvalues.max();
        assert!((model.gradient_lipschitz().unwrap() - top / 0.1).abs() < 1e-9 * top);
        // Perturbed observation: a particle with payload z sees y + √r z; without payload, y.
        let z = [1.0, -1.0, 2.0];
        let e = model.residual(&[], x.as_slice()) + DVector::from_column_slice(&z) * 0.1f64.sqrt();
        assert!((model.particle_loss(x.as_slice(), &z) - e.norm_squared() / 0.2).abs() < 1e-12);
        assert_eq!(
            model.particle_loss(x.as_slice(), &[]),
            model.loss(x.as_slice())
        );
        let mut g = vec![0.0; m];
        model.particle_loss_grad(x.as_slice(), &z, &mut g);
        let want = h.tr_mul(&e) / -0.1;
        assert!(g
            .iter()
            .zip(want.iter())
            .all(|(a, b)| (a - b).abs() < 1e-12));
        assert!(LinearGaussianModel::new(h, 0.01, 0.0).is_err());
    }

    #[test]
    fn transition_is_a_random_walk() {
        // Over 20 000 draws the sample variance of x' − x is q within 5 % (its s.e. is q·√(2/N) ≈ 1 %).
        let model = LinearGaussianModel::new(DMatrix::identity(1, 1), 0.04, 1.0).unwrap();
        let mut rng = stream(3, 0, 0);
        let mut x = [0.0];
        let mut sum2 = 0.0;
        for _ in 0..20_000 {
            let before = x[0];
            model.transition(&mut x, &mut rng);
            sum2 += (x[0] - before).powi(2);
        }
        assert!((sum2 / 20_000.0 - 0.04).abs() < 0.002);
    }
}
