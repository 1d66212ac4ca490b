//! Vector lanes for the hot loops of the depth term and the region lines: the points (lines) of a
//! prepared modality in chunks of [`CHUNK`], component by component (a structure of arrays), so that the arithmetic of a chunk
//! runs as loops over its lanes without branches, which the compiler turns into vector
//! instructions, and [`avx2_or_baseline!`] runs such a loop compiled a second time for AVX2 where
//! the processor has it.
//!
//! Every helper performs, per lane, the IEEE operations of the per-point nalgebra expression it
//! replaces, in the same order, and no fused multiply–add is ever formed (Rust does not contract
//! floating point, and AVX2 does not enable FMA): a lane is bitwise what the per-point code
//! computed, and the AVX2 build is bitwise the baseline build.

use super::ImageF32;
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

/// `⌊x⌋` for `0 ≤ x < 2⁵²` by lane arithmetic (no call to `floor`, which baseline x86-64 does
/// not inline): `(x + 2⁵²) − 2⁵²` rounds `x` to the nearest integer `r` exactly in IEEE double
/// arithmetic (SSE / AVX, as every x86-64 and aarch64 build uses; not x87's extended precision),
/// and `r − 1` where `r > x`.
#[inline(always)]
fn floor_small(x: f64) -> f64 {
    const SHIFT: f64 = 4_503_599_627_370_496.0; // 2⁵²
    let r = (x + SHIFT) - SHIFT;
    if r > x {
        r - 1.0
    } else {
        r
    }
}

/// Lane by lane what [`ImageF32::cell`] gives at the projections `uv` — the four pixels around
/// each and its fractions within the pixel cell — with zeros and `inside = false` where it gives
/// `None` or where `front` is false (a point behind the camera). The cells' corners and fractions
/// are found in lane arithmetic (the same values: `⌊u⌋` is exact, so `u − ⌊u⌋` is the bits of
/// `u − (u as usize) as f64`); only the pixel reads go point by point, with nothing else between
/// them.
#[inline(always)]
pub(super) fn cell_lanes(
    img: &ImageF32,
    uv: &[Lane; 2],
    front: &[bool; CHUNK],
    px: &mut [Lane; 4],
    frac: &mut [Lane; 2],
    inside: &mut [bool; CHUNK],
) {
    let w = img.width;
    let (w1, h1) = ((w as f64) - 1.0, (img.height as f64) - 1.0);
    let mut at = ZERO;
    for j in 0..CHUNK {
        let (u, v) = (uv[0][j], uv[1][j]);
        // A NaN fails every comparison.
        let ok = front[j] & (u >= 0.0) & (v >= 0.0) & (u < w1) & (v < h1);
        let (u, v) = if ok { (u, v) } else { (0.0, 0.0) };
        let (x0, y0) = (floor_small(u), floor_small(v));
        (frac[0][j], frac[1][j], inside[j]) = (u - x0, v - y0, ok);
        at[j] = y0 * w as f64 + x0;
    }
    for j in 0..CHUNK {
        let i = at[j] as usize;
        // One bounds check for the four pixels: the slice holds `w + 2` values.
        let p = match img.data.get(i..i + w + 2) {
            Some(p) if inside[j] => [p[0], p[1], p[w], p[w + 1]].map(f64::from),
            // Off the image, or an image shorter than `width × height` (`cell` would panic).
            _ => {
                inside[j] = false;
                [0.0; 4]
            }
        };
        for (c, x) in p.into_iter().enumerate() {
            px[c][j] = x;
        }
    }
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

    /// The cells in lanes are [`ImageF32::cell`]'s, bit for bit, at pixel centres, just inside
    /// and just outside each border, off the image, at a NaN or huge coordinate and behind the
    /// camera.
    #[test]
    fn cells_in_lanes_are_the_per_point_cells() {
        let img = ImageF32 {
            width: 7,
            height: 5,
            data: (0..35).map(|i| 0.5 + 0.01 * i as f32).collect(),
        };
        let coords = [
            0.0,
            -0.0,
            0.25,
            1.0,
            4f64.next_down(),
            4.0,
            5.5,
            6f64.next_down(),
            6.0,
            -1e-300,
            f64::NAN,
            1e300,
            3f64.next_up(),
        ];
        for (k, &u) in coords.iter().enumerate() {
            let uv = [
                std::array::from_fn(|j| coords[(j + k) % coords.len()]),
                [u; CHUNK],
            ];
            let front = std::array::from_fn(|j| j != 3);
            // Every lane starts as NaN, so that a lane left unwritten fails.
            let nan = [f64::NAN; CHUNK];
            let (mut px, mut frac, mut inside) = ([nan; 4], [nan; 2], [true; CHUNK]);
            cell_lanes(&img, &uv, &front, &mut px, &mut frac, &mut inside);
            for j in 0..CHUNK {
                let want = match front[j] {
                    true => img.cell(uv[0][j], uv[1][j]),
                    false => None,
                };
                let (p, a, b) = want.unwrap_or(([0.0; 4], 0.0, 0.0));
                let got = [
                    px[0][j], px[1][j], px[2][j], px[3][j], frac[0][j], frac[1][j],
                ];
                let want_bits = [p[0], p[1], p[2], p[3], a, b].map(f64::to_bits);
                let at = format!("(u, v) = ({}, {})", uv[0][j], uv[1][j]);
                assert_eq!(got.map(f64::to_bits), want_bits, "{at}");
                assert_eq!(inside[j], want.is_some(), "{at}");
            }
        }
    }

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
