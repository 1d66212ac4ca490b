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

mod pair;
mod svgd;
#[cfg(test)]
mod tests;
mod tiles;

use crate::core::error::{Error, Result};
use pair::{Isa, RfPair};
pub use svgd::{median_bandwidth, svgd_sums};
use tiles::Tiles;

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
/// Each unordered pair is visited once (the term is antisymmetric in `i, j`) on `f32` tiles of
/// centred particles, the weight by an integer-power ladder; tile partials are combined in `f64` in
/// a fixed order, so the results are bit-identical for any thread count (see the `tiles` module). A term
/// carries a relative error of a few `m · 6e-8` (the `f32` rounding of the centred coordinates,
/// the distance and the `m`-th power), and a sum an error of at most about `(t + m)·6e-8` times
/// `Σ_j w_ij ‖p_i − p_j‖` (`t` = tile size, 128 or 256). Weights below `1e-30` are 0.
pub fn pair_sums(particles: &[f64], n: usize, m: usize, eps: f64, out: &mut [f64]) {
    pair_sums_with(particles, n, m, eps, out, Isa::Best)
}

/// [`pair_sums`] run by the code `isa` names.
fn pair_sums_with(particles: &[f64], n: usize, m: usize, eps: f64, out: &mut [f64], isa: Isa) {
    assert_eq!(particles.len(), n * m, "particles must be n × m");
    assert_eq!(out.len(), n * m, "out must be n × m");
    if n == 0 || m == 0 {
        return;
    }
    let centre = tiles::mean(particles, n, m);
    // Far padding: every distance to a padded slot is infinite in f32, so its weight is 0.
    let tiles = Tiles::new(particles, n, m, m, Some(&centre), 1e30);
    macro_rules! fixed {
        ($($d:literal)*) => {
            match m {
                $($d => tiles::run(&RfPair::<$d> { isa, ..RfPair::new(&tiles, eps) }, n, out),)*
                _ => tiles::run(&RfPair::<0> { isa, ..RfPair::new(&tiles, eps) }, n, out),
            }
        };
    }
    fixed!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
}
