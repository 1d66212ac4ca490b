//! Vector lanes for the depth term's hot loop: the points of a prepared modality in chunks of
//! [`CHUNK`], component by component (a structure of arrays), so that the arithmetic of a chunk
//! runs as loops over its lanes without branches, which the compiler turns into vector
//! instructions, and [`avx2_or_baseline!`] runs such a loop compiled a second time for AVX2 where
//! the processor has it.
//!
//! Every helper performs, per lane, the IEEE operations of the per-point nalgebra expression it
//! replaces, in the same order, and no fused multiply–add is ever formed (Rust does not contract
//! floating point, and AVX2 does not enable FMA): a lane is bitwise what the per-point code
//! computed, and the AVX2 build is bitwise the baseline build.

use super::RigidMotion;
use nalgebra::{Matrix3, Vector3};

/// Points per chunk (each chunk's scratch lives on the stack).
pub(super) const CHUNK: usize = 16;

/// One value per lane of a chunk.
pub(super) type Lane = [f64; CHUNK];

/// A zero lane.
pub(super) const ZERO: Lane = [0.0; CHUNK];

/// Lane `j` of a structure of arrays as a vector.
#[inline(always)]
pub(super) fn lane(x: &[Lane; 3], j: usize) -> Vector3<f64> {
    Vector3::new(x[0][j], x[1][j], x[2][j])
}

/// `y = M x` for lanes of `x`, in the order of nalgebra's `Matrix3 * Vector3`
/// (`(m₀₀x₀ + m₀₁x₁) + m₀₂x₂`).
#[inline(always)]
pub(super) fn rotate_lanes(m: &Matrix3<f64>, x: &[Lane; 3], y: &mut [Lane; 3]) {
    for (i, yi) in y.iter_mut().enumerate() {
        let (a, b, c) = (m[(i, 0)], m[(i, 1)], m[(i, 2)]);
        for j in 0..CHUNK {
            yi[j] = a * x[0][j] + b * x[1][j] + c * x[2][j];
        }
    }
}

/// `q = (c + ρ) + R v` for lanes of already rotated `rv = R v` ([`RigidMotion::place`]).
#[inline(always)]
pub(super) fn place_lanes(
    motion: &RigidMotion,
    centre: &Vector3<f64>,
    rv: &[Lane; 3],
) -> [Lane; 3] {
    let mut q = [ZERO; 3];
    for i in 0..3 {
        let o = centre[i] + motion.rho[i];
        for j in 0..CHUNK {
            q[i][j] = o + rv[i][j];
        }
    }
    q
}

/// The value of `$baseline`, or — on x86-64 where the processor has AVX2 — of `$avx2`: a call
/// of a method that the caller defines as `#[target_feature(enable = "avx2")] unsafe fn` around
/// the same always-inlined code (only that call is meant to be unsafe: give no other unsafe
/// operation as `$avx2`). An expression: it does not return from its caller. Checked per call
/// (a cached flag).
macro_rules! avx2_or_baseline {
    ($avx2:expr, $baseline:expr) => {{
        // The label goes unused where the AVX2 branch is compiled out.
        #[allow(unused_labels)]
        let value = 'dispatch: {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the processor supports AVX2 (checked on the line above).
                break 'dispatch unsafe { $avx2 };
            }
            $baseline
        };
        value
    }};
}
pub(super) use avx2_or_baseline;

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::Vector6;

    /// The lane helpers give the bits of the nalgebra expressions they replace.
    #[test]
    fn lanes_give_the_per_point_bits() {
        let motion = RigidMotion::new(&Vector6::new(0.013, -0.2, 0.71, 0.3, -1.1, 0.45));
        let centre = Vector3::new(0.031, -0.017, 0.6);
        let t = |j: usize| j as f64;
        let v = [
            std::array::from_fn(|j| 0.01 * t(j).sin()),
            std::array::from_fn(|j| -0.03 * t(j).cos()),
            std::array::from_fn(|j| 0.007 * t(j) - 0.05),
        ];
        let mut rv = [ZERO; 3];
        rotate_lanes(&motion.rot, &v, &mut rv);
        let q = place_lanes(&motion, &centre, &rv);
        for j in 0..CHUNK {
            let want_rv = motion.rotate(&lane(&v, j));
            let want_q = motion.place(&centre, &want_rv);
            let bits =
                |a: Vector3<f64>, b: Vector3<f64>| a.map(f64::to_bits) == b.map(f64::to_bits);
            assert!(bits(lane(&rv, j), want_rv), "R v, lane {j}");
            assert!(bits(lane(&q, j), want_q), "q, lane {j}");
        }
    }
}
