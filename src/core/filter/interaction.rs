//! The RF-PF pair interaction (Boopathy et al., ICRA 2024, as the authors' released code computes it).
//!
//! With kernel constant and width
//!
//! ```text
//! C_m = Γ(m/2 + 1) / (m (m − 2) π^{m/2}),     ε = (γ / C_m)^{1/(2−m)},
//! ```
//!
//! the pair sum of particle `i` is `S_i = Σ_j (ε / (‖p_i − p_j‖ + ε))^m (p_i − p_j)` and the move adds
//! `((m − 2)/ε²) · L̃_i · S_i` to the gradient, where `L̃_i = L(p_i) − mean_k L(p_k)`.

use crate::core::error::{Error, Result};
use nalgebra::{DMatrix, DMatrixView};
use rayon::prelude::*;

/// Rows of the pair-weight matrix computed at once per task: bounds the temporary to `BLOCK × n`.
const BLOCK: usize = 64;

/// `ln Γ(x)` for `x > 0` (Lanczos approximation, g = 7, 9 terms; relative error < 1e-13).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1−x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + G + 0.5;
    let series = C[1..]
        .iter()
        .enumerate()
        .fold(C[0], |acc, (k, c)| acc + c / (x + k as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + series.ln()
}

/// `ln C_m` with `C_m = Γ(m/2 + 1) / (m (m − 2) π^{m/2})`.
pub fn ln_kernel_constant(m: usize) -> f64 {
    let mf = m as f64;
    ln_gamma(mf / 2.0 + 1.0) - (mf * (mf - 2.0)).ln() - mf / 2.0 * std::f64::consts::PI.ln()
}

/// Kernel width `ε = (γ / C_m)^{1/(2−m)}`, computed in log space. Requires `m ≥ 3` and `γ > 0`.
pub fn epsilon(gamma: f64, m: usize) -> Result<f64> {
    if m < 3 {
        return Err(Error::param(
            "dim",
            m,
            "the RF-PF pair term needs dimension m ≥ 3",
        ));
    }
    if !(gamma > 0.0 && gamma.is_finite()) {
        return Err(Error::param("gamma", gamma, "must be finite and positive"));
    }
    Ok(((gamma.ln() - ln_kernel_constant(m)) / (2.0 - m as f64)).exp())
}

/// Pair sums `S_i = Σ_{j≠i} (ε / (‖p_i − p_j‖ + ε))^m (p_i − p_j)` for all particles, written row-major
/// into `out` (`n × m`).
///
/// Computed as `S_i = p_i Σ_j w_ij − Σ_j w_ij p_j` with distances from a Gram matrix of centred
/// particles, a block of `BLOCK` particles at a time in parallel: `O(n² m)` work as two matrix
/// products plus branch-free (vectorisable) passes over contiguous weight columns, an
/// `O(BLOCK · n)` temporary per task, and results independent of the thread count.
pub fn pair_sums(particles: &[f64], n: usize, m: usize, eps: f64, out: &mut [f64]) {
    let centred = centre(particles, n, m);
    let pt = DMatrixView::from_slice(&centred, m, n); // column j = particle j
    let p_rows = pt.transpose(); // n × m, for the Gram products
    let sq: Vec<f64> = pt.column_iter().map(|c| c.norm_squared()).collect();
    out.par_chunks_mut(BLOCK * m)
        .enumerate()
        .for_each(|(b, out_block)| {
            let i0 = b * BLOCK;
            let rows = out_block.len() / m;
            let weights = block_weights(&p_rows, &pt, &sq, i0, rows, eps, m);
            // Σ_j w_ij p_j for the block: (m × n)·(n × rows).
            let weighted = pt * &weights;
            for r in 0..rows {
                let wsum: f64 = weights.column(r).sum();
                let pi = pt.column(i0 + r);
                for k in 0..m {
                    out_block[r * m + k] = pi[k] * wsum - weighted[(k, r)];
                }
            }
        });
}

/// Particles minus their mean (the pair term is translation invariant; centring keeps the Gram
/// matrix well conditioned).
fn centre(particles: &[f64], n: usize, m: usize) -> Vec<f64> {
    let mut mean = vec![0.0; m];
    for row in particles.chunks_exact(m) {
        mean.iter_mut()
            .zip(row)
            .for_each(|(a, v)| *a += v / n as f64);
    }
    particles
        .chunks_exact(m)
        .flat_map(|row| row.iter().zip(&mean).map(|(v, a)| v - a))
        .collect()
}

/// Weights `w_ji = (ε / (d_ij + ε))^m` as an `n × rows` matrix (column `r` = particle `i0 + r`,
/// contiguous over `j`), with `w_ii = 0`. `d²_ij = ‖p_i‖² + ‖p_j‖² − 2 p_i·p_j`, clamped at 0.
fn block_weights(
    p_rows: &DMatrix<f64>,
    pt: &DMatrixView<f64>,
    sq: &[f64],
    i0: usize,
    rows: usize,
    eps: f64,
    m: usize,
) -> DMatrix<f64> {
    let mut w = p_rows * pt.columns(i0, rows); // n × rows Gram block
    let mut scratch = (vec![0.0f32; sq.len()], vec![0.0f32; sq.len()]);
    for (r, mut col) in w.column_iter_mut().enumerate() {
        let col = col.as_mut_slice();
        weight_column(col, sq, sq[i0 + r], eps, m, &mut scratch);
        col[i0 + r] = 0.0;
    }
    w
}

/// Scratch for one weight column: the ratios `ε/(d+ε)` and their running power, in `f32`.
type ColumnScratch = (Vec<f32>, Vec<f32>);

/// One weight column from its Gram column, dispatched at run time to an AVX2 build of the same
/// code where the CPU has it (IEEE sqrt, division and products round identically in SSE2 and AVX2,
/// so the numbers do not depend on the dispatch).
fn weight_column(
    col: &mut [f64],
    sq: &[f64],
    sq_i: f64,
    eps: f64,
    m: usize,
    base: &mut ColumnScratch,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { weight_column_avx2(col, sq, sq_i, eps, m, base) };
    }
    weight_column_portable(col, sq, sq_i, eps, m, base)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn weight_column_avx2(
    col: &mut [f64],
    sq: &[f64],
    sq_i: f64,
    eps: f64,
    m: usize,
    base: &mut ColumnScratch,
) {
    weight_column_portable(col, sq, sq_i, eps, m, base)
}

/// `col_j ← (ε / (√max(0, sq_i + sq_j − 2 col_j) + ε))^m`, branch-free so that it vectorises; the
/// power by binary exponentiation, one pass per bit of `m`.
///
/// The squared distance is formed in `f64`; the ratio and its power in `f32` (8 lanes of AVX2
/// instead of 4, the square root and division being most of the pair term's cost). A weight thus
/// carries a relative error of about `m · 6e-8` and underflows to 0 below ~1e-38 instead of
/// ~1e-308 — both far below what moves a particle next to its gradient term.
#[inline(always)]
fn weight_column_portable(
    col: &mut [f64],
    sq: &[f64],
    sq_i: f64,
    eps: f64,
    m: usize,
    (base, acc): &mut ColumnScratch,
) {
    let eps32 = eps as f32;
    for ((b, g), sq_j) in base.iter_mut().zip(col.iter()).zip(sq) {
        let d2 = (sq_i + sq_j - 2.0 * *g) as f32;
        let d2 = if d2 > 0.0 { d2 } else { 0.0 };
        *b = eps32 / (d2.sqrt() + eps32);
    }
    acc.iter_mut().for_each(|a| *a = 1.0);
    let mut e = m;
    while e > 0 {
        if e & 1 == 1 {
            acc.iter_mut().zip(base.iter()).for_each(|(v, b)| *v *= b);
        }
        e >>= 1;
        if e > 0 {
            base.iter_mut().for_each(|b| *b *= *b);
        }
    }
    col.iter_mut()
        .zip(acc.iter())
        .for_each(|(c, a)| *c = f64::from(*a));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_gamma_matches_known_values() {
        assert!((ln_gamma(1.0)).abs() < 1e-12);
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
        // Γ(1/2) = √π
        assert!((ln_gamma(0.5) - 0.5 * std::f64::consts::PI.ln()).abs() < 1e-12);
        assert!((ln_gamma(2.5) - (0.75 * std::f64::consts::PI.sqrt()).ln()).abs() < 1e-12);
    }

    #[test]
    fn epsilon_matches_direct_formula() {
        // m = 3: C_3 = Γ(2.5)/(3·1·π^{1.5}) ; ε = (γ/C_3)^{-1}
        let c3 = 0.75 * std::f64::consts::PI.sqrt() / (3.0 * std::f64::consts::PI.powf(1.5));
        let e = epsilon(2.0, 3).unwrap();
        assert!((e - c3 / 2.0).abs() < 1e-12, "{e}");
        assert!(epsilon(1.0, 2).is_err());
        assert!(epsilon(-1.0, 5).is_err());
    }

    #[test]
    fn pair_sums_match_naive_double_loop() {
        let (n, m) = (150, 4); // more than one block
        let p: Vec<f64> = (0..n * m)
            .map(|k| ((k * 37 % 101) as f64 / 50.0) - 1.0 + 3.0)
            .collect();
        let eps = 0.3;
        let mut fast = vec![0.0; n * m];
        pair_sums(&p, n, m, eps, &mut fast);
        for i in 0..n {
            let mut s = vec![0.0; m];
            for j in 0..n {
                let d: f64 = (0..m)
                    .map(|k| (p[i * m + k] - p[j * m + k]).powi(2))
                    .sum::<f64>()
                    .sqrt();
                let w = (eps / (d + eps)).powi(m as i32);
                for k in 0..m {
                    s[k] += w * (p[i * m + k] - p[j * m + k]);
                }
            }
            for k in 0..m {
                // Weights are computed in f32 (relative error ≈ m·6e-8 each): 1e-6 relative.
                let tol = 1e-6 * (1.0 + s[k].abs());
                assert!((s[k] - fast[i * m + k]).abs() < tol, "i={i} k={k}");
            }
        }
    }
}
