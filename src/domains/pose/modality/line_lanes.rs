//! The region modality's correspondence lines in lanes of 16 (a structure of arrays), so
//! that a particle's loss and gradient run as loops over lanes, compiled a second time for AVX2
//! (as the depth term is), instead of line by line.
//!
//! A line at `motion` places its point `q = (c + ρ) + R v`, projects it,
//! `(u, v) = (f_x q_x / q_z + c_x, f_y q_y / q_z + c_y)`, and measures the whitened residual
//! `r = (n·((u, v) − c) − μ) / σ` with gradient `J_πᵀ n / σ` in `q`
//! (`J_π = [f_x/q_z, 0, −f_x q_x/q_z²; 0, f_y/q_z, −f_y q_y/q_z²]`); a point nearer the camera
//! plane than 1 mm, or behind it, is left out. Each lane performs the IEEE operations of the
//! line-by-line code in its order (the divisions stay divisions), and the sums run in line order,
//! so the loss and gradient are that code's bits (tested in `region`).

use super::lanes::{avx2_or_baseline, lane, place_lanes, rotate_lanes, Lane, CHUNK, ZERO};
use super::{GradAccumulator, RigidMotion, Robust};
use crate::core::geometry::camera::Camera;
use nalgebra::{Vector2, Vector3};

/// Points nearer the camera plane than this (metres), or behind it, are left out.
pub const MIN_Z: f64 = 1e-3;

/// One correspondence line: centre-relative contour point `v`, outward normal `n`, projected
/// centre `c`, contour mean `μ` (pixels along `n`) and its standard deviation `σ` (pixels).
#[derive(Clone, Copy, Debug)]
pub struct Line {
    /// Contour point minus the chart's centre (camera frame at the reference, metres).
    pub v: Vector3<f64>,
    /// Outward image normal (unit).
    pub n: Vector2<f64>,
    /// Projected centre of the line (pixels).
    pub c: Vector2<f64>,
    /// Contour mean along `n` (pixels).
    pub mu: f64,
    /// Its standard deviation (pixels).
    pub sigma: f64,
}

impl Line {
    /// This line at `motion` about `centre`: `(r, R v, J_πᵀ n / σ)` (whitened residual, rotated
    /// point and the residual's gradient with respect to the point), `None` nearer the camera
    /// plane than [`MIN_Z`] or behind it (module docs).
    pub fn residual(
        &self,
        cam: &Camera,
        centre: &Vector3<f64>,
        motion: &RigidMotion,
    ) -> Option<(f64, Vector3<f64>, Vector3<f64>)> {
        let rv = motion.rotate(&self.v);
        let q = motion.place(centre, &rv);
        if q.z < MIN_Z {
            return None;
        }
        let (u, v) = cam.project_xyz(&q);
        let delta = self.n.dot(&(Vector2::new(u, v) - self.c));
        let dq = cam.jacobian_xyz(&q).tr_mul(&self.n) / self.sigma;
        Some(((delta - self.mu) / self.sigma, rv, dq))
    }
}

/// `norm · Σ ρ(r_i)` over `lines` line by line ([`Line::residual`]), adding the gradient terms
/// into `grad` when given: the form before the lanes, the reference [`LineLanes::evaluate`]
/// matches bit for bit (tests; `cargo bench --bench pose_cost` times both).
pub fn evaluate_line_by_line<'a>(
    lines: impl IntoIterator<Item = &'a Line>,
    e: &LineEval<'_>,
    motion: &RigidMotion,
    mut grad: Option<&mut GradAccumulator>,
) -> f64 {
    let mut total = 0.0;
    for l in lines {
        let Some((r, rv, dq)) = l.residual(e.cam, e.centre, motion) else {
            continue;
        };
        let (rho, psi) = e.robust.rho_psi(r);
        total += rho;
        if let Some(acc) = grad.as_deref_mut() {
            acc.add_point(&rv, &(dq * (e.norm * psi)));
        }
    }
    total * e.norm
}

/// Up to [`CHUNK`] lines, component by component; the lanes after them hold `σ = 1` and zeros.
struct LineChunk {
    len: usize,
    v: [Lane; 3],
    n: [Lane; 2],
    c: [Lane; 2],
    mu: Lane,
    sigma: Lane,
}

/// A set of lines in chunks (module docs).
#[derive(Default)]
pub struct LineLanes {
    chunks: Vec<LineChunk>,
}

/// What a line's loss and gradient need besides its chunk: the camera, the chart's centre,
/// the kernel and the loss scale.
pub struct LineEval<'a> {
    /// The camera.
    pub cam: &'a Camera,
    /// The chart's centre (camera frame, metres).
    pub centre: &'a Vector3<f64>,
    /// The robust kernel of the whitened residuals.
    pub robust: Robust,
    /// The loss scale.
    pub norm: f64,
}

impl LineLanes {
    /// The lines in order.
    pub fn new<'a>(lines: impl IntoIterator<Item = &'a Line>) -> Self {
        let mut chunks: Vec<LineChunk> = Vec::new();
        for l in lines {
            if chunks.last().is_none_or(|c| c.len == CHUNK) {
                chunks.push(LineChunk {
                    len: 0,
                    v: [ZERO; 3],
                    n: [ZERO; 2],
                    c: [ZERO; 2],
                    mu: ZERO,
                    sigma: [1.0; CHUNK],
                });
            }
            let ch = chunks.last_mut().expect("pushed above");
            let j = ch.len;
            for i in 0..3 {
                ch.v[i][j] = l.v[i];
            }
            for i in 0..2 {
                (ch.n[i][j], ch.c[i][j]) = (l.n[i], l.c[i]);
            }
            (ch.mu[j], ch.sigma[j], ch.len) = (l.mu, l.sigma, j + 1);
        }
        Self { chunks }
    }

    /// `norm · Σ ρ(r_i)` over the lines in front of the camera at `motion`, adding
    /// `norm · ψ(r_i) J_πᵀ n_i / σ_i` at `R v_i` into `grad` when given.
    pub fn evaluate(
        &self,
        e: &LineEval<'_>,
        motion: &RigidMotion,
        grad: Option<&mut GradAccumulator>,
    ) -> f64 {
        avx2_or_baseline!(
            self.evaluate_avx2(e, motion, grad),
            self.evaluate_lanes(e, motion, grad)
        )
    }

    /// [`LineLanes::evaluate`] compiled for AVX2.
    ///
    /// # Safety
    /// The processor must support AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn evaluate_avx2(
        &self,
        e: &LineEval<'_>,
        motion: &RigidMotion,
        grad: Option<&mut GradAccumulator>,
    ) -> f64 {
        self.evaluate_lanes(e, motion, grad)
    }

    #[inline(always)]
    fn evaluate_lanes(
        &self,
        e: &LineEval<'_>,
        motion: &RigidMotion,
        mut grad: Option<&mut GradAccumulator>,
    ) -> f64 {
        let cam = e.cam;
        let (mut rv, mut dq) = ([ZERO; 3], [ZERO; 3]);
        let (mut r, mut rho, mut psi) = (ZERO, ZERO, ZERO);
        let mut front = [false; CHUNK];
        let mut total = 0.0;
        for ch in &self.chunks {
            rotate_lanes(&motion.rot, &ch.v, &mut rv);
            let q = place_lanes(motion, e.centre, &rv);
            for j in 0..CHUNK {
                let (x, y, z) = (q[0][j], q[1][j], q[2][j]);
                // As the line-by-line test `z < MIN_Z` leaves out: a NaN stays in.
                front[j] = z >= MIN_Z || z.is_nan();
                let (u, v) = (cam.fx * x / z + cam.cx, cam.fy * y / z + cam.cy);
                let (nx, ny) = (ch.n[0][j], ch.n[1][j]);
                let delta = nx * (u - ch.c[0][j]) + ny * (v - ch.c[1][j]);
                let iz = 1.0 / z;
                let (a, b) = (-cam.fx * x * iz * iz, -cam.fy * y * iz * iz);
                let s = ch.sigma[j];
                dq[0][j] = (cam.fx * iz * nx + 0.0 * ny) / s;
                dq[1][j] = (0.0 * nx + cam.fy * iz * ny) / s;
                dq[2][j] = (a * nx + b * ny) / s;
                r[j] = (delta - ch.mu[j]) / s;
            }
            e.robust.rho_psi_lanes(&r, &mut rho, &mut psi);
            for j in (0..ch.len).filter(|&j| front[j]) {
                total += rho[j];
                if let Some(acc) = grad.as_deref_mut() {
                    acc.add_point(&lane(&rv, j), &(lane(&dq, j) * (e.norm * psi[j])));
                }
            }
        }
        total * e.norm
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::Vector6;

    /// The baseline build and the AVX2 build (where the processor has it) give the same bits,
    /// for 37 lines (a short last chunk), with some behind the camera plane, and both give NaN
    /// at a NaN motion (which the line-by-line code, testing `q_z < 1 mm`, keeps in the sum).
    /// The line-by-line reference itself is `region`'s test `lanes_give_the_line_by_line_bits`.
    #[test]
    fn every_build_gives_the_same_bits() {
        let cam = Camera {
            fx: 300.0,
            fy: 310.0,
            cx: 80.0,
            cy: 60.0,
            width: 160,
            height: 120,
        };
        let lines: Vec<Line> = (0..37)
            .map(|i| {
                let t = i as f64;
                let a = 0.7 * t;
                Line {
                    v: Vector3::new(0.03 * a.cos(), 0.02 * a.sin(), 0.01 * (t % 5.0 - 2.0)),
                    n: Vector2::new(a.cos(), a.sin()),
                    c: Vector2::new(80.0 + 20.0 * a.cos(), 60.0 + 15.0 * a.sin()),
                    mu: 0.1 * (t % 3.0 - 1.0),
                    sigma: 1.0 + 0.05 * t,
                }
            })
            .collect();
        let lanes = LineLanes::new(&lines);
        let centre = Vector3::new(0.004, -0.003, 0.4);
        let e = LineEval {
            cam: &cam,
            centre: &centre,
            robust: Robust::Huber(0.8),
            norm: 0.3,
        };
        let motions = [
            Vector6::new(0.001, -0.002, 0.003, 0.02, -0.01, 0.03),
            // The centre 1 mm in front of the camera plane: lines on both sides of it.
            Vector6::new(0.0, 0.0, 1e-3 - 0.4, 0.0, 0.0, 0.0),
        ];
        for xi in motions {
            let motion = RigidMotion::new(&xi);
            let mut acc = GradAccumulator::default();
            let base = lanes.evaluate_lanes(&e, &motion, Some(&mut acc));
            let g = acc.finish(&motion).map(f64::to_bits);
            assert!(base.is_finite() && base > 0.0, "{base}");
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                let mut acc = GradAccumulator::default();
                // SAFETY: the processor supports AVX2 (checked on the line above).
                let avx2 = unsafe { lanes.evaluate_avx2(&e, &motion, Some(&mut acc)) };
                assert_eq!(avx2.to_bits(), base.to_bits(), "ξ = {xi:?}");
                assert_eq!(acc.finish(&motion).map(f64::to_bits), g, "ξ = {xi:?}");
            }
        }
        let nan = RigidMotion::new(&Vector6::repeat(f64::NAN));
        assert!(lanes.evaluate(&e, &nan, None).is_nan());
        assert!(lanes.evaluate_lanes(&e, &nan, None).is_nan());
    }
}
