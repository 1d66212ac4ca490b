//! The region modality's correspondence lines in lanes of [`CHUNK`] (a structure of arrays), so
//! that a particle's loss and gradient run as loops over lanes, compiled a second time for AVX2
//! ([`avx2_or_baseline!`]), instead of line by line.
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
pub(super) const MIN_Z: f64 = 1e-3;

/// One correspondence line: centre-relative contour point `v`, outward normal `n`, projected
/// centre `c`, contour mean `μ` (pixels along `n`) and its standard deviation `σ` (pixels).
#[derive(Clone, Copy, Debug)]
pub(super) struct Line {
    pub v: Vector3<f64>,
    pub n: Vector2<f64>,
    pub c: Vector2<f64>,
    pub mu: f64,
    pub sigma: f64,
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
pub(super) struct LineLanes {
    chunks: Vec<LineChunk>,
}

/// What a line's loss and gradient need besides its chunk: the camera, the chart's centre,
/// the kernel and the loss scale.
pub(super) struct LineEval<'a> {
    pub cam: &'a Camera,
    pub centre: &'a Vector3<f64>,
    pub robust: Robust,
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
