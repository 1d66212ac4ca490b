//! The ensemble space of the Newton move: for a large state dimension `m`, the move runs exactly in
//! the span of what it is made of, so that no `m × m` matrix is formed.
//!
//! With a linear(ised) observation `J = FᵀF`, `F = R^{−1/2}H` (`k × m`), and zero-mean offsets `D`
//! and gradients `G` (`m × n` each), let `Q` (`m × r`) be an orthonormal basis of
//! `span[D | Fᵀ | G]`. On the orthogonal complement of `Q`, `J` vanishes and `Σ̂ = DDᵀ/(n−1)`
//! vanishes, so the shrunk prior is `Σ̂_α = αs·I` there and every matrix function of the move
//! (`P = (Σ̂_α⁻¹ + J)⁻¹`, `T₁ = P^{1/2}Σ̂_α^{−1/2}`, the spread bound) acts on it as a scalar; and
//! every vector the move applies them to (offsets, gradient residuals, pair displacements) lies in
//! `span Q`. So, with `D_r = QᵀD`, `G_r = QᵀG`, `J_r = (FQ)ᵀ(FQ)`, the move computed in `r`
//! dimensions and lifted back, `μ' = μ + Q μ_r'`, `D' = Q D_r'`, is the `m`-dimensional move —
//! with the shrinkage rule, the floor `s = tr Σ̂/m` and the pair kernel's width still taken at the
//! full `m`. Cost `O(m(2n+k)²)` for the basis instead of `O(m³)` for the eigen-decompositions.
//!
//! `r ≤ 2n + k`; the form is used when the model gives its observation in linear form
//! ([`Model::linear_observation`](crate::core::filter::model::Model::linear_observation)) and
//! `2n + k ≤ m/2`. Otherwise the dense form runs, and is refused (naming the dimension and the
//! memory) when its `m × m` matrices do not fit the memory budget.

use crate::core::error::{Error, Result};
use crate::core::filter::model::{LinearObservation, Model};
use nalgebra::{DMatrix, DVector};

/// An orthonormal basis `Q` (`m × r`) of the span the move lives in.
pub(super) struct Subspace {
    q: DMatrix<f64>,
    /// `FQ` (`k × r`): the observation's square-root curvature in the basis.
    f_r: DMatrix<f64>,
}

/// The `m × m` matrices the dense form holds at once (prior, its inverse, `P`, `T₁`, the
/// eigenvectors and their products): what it is refused against the memory budget with.
const DENSE_MATRICES: usize = 10;

/// Whether the ensemble-space form pays off: a basis of at most `m/2` columns.
pub(super) fn worth_it(m: usize, n: usize, k: usize) -> bool {
    2 * n + k <= m / 2
}

/// Below this many bytes the state space's matrices are not checked against the machine's
/// available memory (reading `/proc/meminfo` for a 6 × 6 pose move each round cost more than the
/// move); a budget the user set is always applied.
const UNCHECKED_DENSE_BYTES: usize = 16 << 20;

/// Refuses a move in the state space whose `m × m` matrices would not fit the memory budget;
/// `why` says why the state space was chosen. Without a user-set budget, sizes under
/// [`UNCHECKED_DENSE_BYTES`] pass without reading the machine's memory.
pub(crate) fn check_dense(m: usize, why: &str) -> Result<()> {
    let small = (m.checked_mul(m)).and_then(|mm| mm.checked_mul(DENSE_MATRICES * 8));
    if small.is_some_and(|b| b <= UNCHECKED_DENSE_BYTES) && !crate::core::memory::explicit_budget()
    {
        return Ok(());
    }
    crate::core::memory::check(
        &format!("dimension (rfpf-newton in the state space: {why})"),
        m,
        &[DENSE_MATRICES, m, m],
        8,
    )
}

/// The model's linear observation for a state of dimension `m`, checked (shapes, finite values);
/// `None` when the model gives none.
pub(crate) fn observation<M: Model + ?Sized>(
    model: &M,
    m: usize,
) -> Result<Option<LinearObservation>> {
    let obs = model.linear_observation();
    if let Some(o) = &obs {
        o.check(m)?;
    }
    Ok(obs)
}

/// Sweeps of the SVD that finds the basis before it gives up (nalgebra's default is unbounded).
const SVD_SWEEPS: usize = 1000;

impl Subspace {
    /// The basis of `span[D | Fᵀ | G]` for offsets `d` and gradients `g` (`m × n`, zero-mean or
    /// not: only their span matters) and the observation `obs`; each block is scaled to unit
    /// Frobenius norm, and a direction is kept when its singular value exceeds
    /// `σ_max · max(m, c) · ε` (the numerical rank, `c` = the number of columns).
    pub fn of(d: &DMatrix<f64>, g: &DMatrix<f64>, obs: &LinearObservation) -> Result<Self> {
        let m = d.nrows();
        let f = sqrt_curvature(obs)?;
        let blocks = [d, &f.transpose(), g];
        let c: usize = blocks.iter().map(|b| b.ncols()).sum();
        let mut x = DMatrix::zeros(m, c);
        let mut at = 0;
        for b in blocks {
            let norm = b.norm();
            let scale = if norm > 0.0 { norm.recip() } else { 0.0 };
            x.columns_mut(at, b.ncols()).copy_from(&(b * scale));
            at += b.ncols();
        }
        let failed =
            || Error::Other("ensemble space: the SVD of the basis did not converge".into());
        let svd = (x.try_svd(true, false, f64::EPSILON, SVD_SWEEPS)).ok_or_else(failed)?;
        let u = svd.u.ok_or_else(failed)?;
        let top = svd.singular_values.max();
        let tol = top * m.max(c) as f64 * f64::EPSILON;
        let keep: Vec<usize> = (svd.singular_values.iter().enumerate())
            .filter(|(_, &s)| s > tol)
            .map(|(i, _)| i)
            .collect();
        let q = u.select_columns(&keep);
        let f_r = &f * &q;
        Ok(Self { q, f_r })
    }

    /// `r`, the basis size.
    pub fn rank(&self) -> usize {
        self.q.ncols()
    }

    /// `QᵀX`: columns in basis coordinates.
    pub fn reduce(&self, x: &DMatrix<f64>) -> DMatrix<f64> {
        self.q.tr_mul(x)
    }

    /// `QX`: basis coordinates back to the state space.
    pub fn lift(&self, x: &DMatrix<f64>) -> DMatrix<f64> {
        &self.q * x
    }

    /// `Qv`: one vector in basis coordinates back to the state space.
    pub fn lift_point(&self, v: &DVector<f64>) -> DVector<f64> {
        &self.q * v
    }

    /// `J_r = (FQ)ᵀ(FQ)`, the curvature in the basis.
    pub fn curvature(&self) -> DMatrix<f64> {
        self.f_r.tr_mul(&self.f_r)
    }
}

/// `F = L⁻¹H` with `R = LLᵀ`, so that `FᵀF = HᵀR⁻¹H` (the curvature of the observation's loss).
pub(super) fn sqrt_curvature(obs: &LinearObservation) -> Result<DMatrix<f64>> {
    let chol = (obs.r.clone().cholesky())
        .ok_or_else(|| Error::Other("the observation noise R is not positive definite".into()))?;
    chol.l()
        .solve_lower_triangular(&obs.h)
        .ok_or_else(|| Error::Other("R's Cholesky factor is singular".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The basis is orthonormal, holds every block and its size is the numerical rank: a block in
    /// the span of the others adds nothing.
    #[test]
    fn the_basis_spans_its_blocks() {
        let (m, n, k) = (40, 5, 3);
        let d = DMatrix::from_fn(m, n, |i, j| ((i * 7 + j * 13) % 11) as f64 - 5.0);
        let h = DMatrix::from_fn(k, m, |i, j| ((i * 5 + j * 3) % 7) as f64 - 3.0);
        let obs = LinearObservation {
            h: h.clone(),
            y: DVector::zeros(k),
            r: DMatrix::identity(k, k) * 0.1,
        };
        // Gradients of a linear model lie in span(Hᵀ): no new directions.
        let g = h.transpose() * DMatrix::from_fn(k, n, |i, j| (i + 2 * j) as f64);
        let s = Subspace::of(&d, &g, &obs).unwrap();
        let want = DMatrix::from_columns(
            &(d.column_iter().chain(h.transpose().column_iter())).collect::<Vec<_>>(),
        )
        .rank(1e-9);
        assert_eq!(s.rank(), want);
        let qtq = s.q.tr_mul(&s.q);
        assert!((qtq - DMatrix::identity(s.rank(), s.rank())).abs().max() < 1e-12);
        for b in [&d, &g] {
            let back = s.lift(&s.reduce(b));
            assert!((back - b).abs().max() < 1e-9 * b.abs().max());
        }
        let j = h.transpose() * &h / 0.1;
        let j_r = s.reduce(&s.reduce(&j).transpose());
        assert!((j_r - s.curvature()).abs().max() < 1e-9 * j.abs().max());
    }

    /// A state-space move too large for any memory is refused by name, before allocating.
    #[test]
    fn a_dense_move_beyond_memory_is_refused() {
        assert!(check_dense(100, "test").is_ok());
        let e = check_dense(1 << 30, "test").unwrap_err().to_string();
        assert!(e.contains("dimension") && e.contains("rfpf-newton"), "{e}");
    }
}
