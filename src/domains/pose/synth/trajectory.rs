//! Object and occluder trajectories: view bounds, home positions and the per-[`Motion`]
//! random-walk bodies with their kicks.

use super::*;

/// Where objects may go: `|x| ≤ tan_x·z`, `|y| ≤ tan_y·z`, `z_min ≤ z ≤ z_max` (object centres).
#[derive(Clone, Copy, Debug)]
pub(super) struct ViewBounds {
    tan_x: f64,
    tan_y: f64,
    z_min: f64,
    z_max: f64,
}

impl ViewBounds {
    /// 70 % of the half field of view, depths 0.5–0.95 m.
    pub(super) fn of(camera: &Camera) -> ViewBounds {
        let half = |size: u32, c: f64, f: f64| ((c + 0.5).min(size as f64 - 0.5 - c) / f).max(0.0);
        ViewBounds {
            tan_x: 0.7 * half(camera.width, camera.cx, camera.fx),
            tan_y: 0.7 * half(camera.height, camera.cy, camera.fy),
            z_min: 0.5,
            z_max: 0.95,
        }
    }

    /// Clamp `t` into the bounds, turning the velocity component that points outward inward.
    fn reflect(&self, t: &mut Vector3<f64>, v: &mut Vector3<f64>) {
        let limits = [(0, self.tan_x * t.z), (1, self.tan_y * t.z)];
        for (i, lim) in limits {
            if t[i].abs() > lim {
                t[i] = t[i].clamp(-lim, lim);
                v[i] = -v[i].abs() * t[i].signum();
            }
        }
        if t.z < self.z_min || t.z > self.z_max {
            t.z = t.z.clamp(self.z_min, self.z_max);
            v.z = if t.z <= self.z_min {
                v.z.abs()
            } else {
                -v.z.abs()
            };
        }
    }
}

/// Home positions: spread across the image (slot `k` of `n` at `x = (k + ½)/n − ½` of 2 × the
/// usable width), depth uniform in 0.55–0.85 m, small random offsets.
pub(super) fn home_positions(cfg: &SynthConfig, n: usize) -> Vec<Vector3<f64>> {
    let b = ViewBounds::of(&cfg.camera);
    (0..n)
        .map(|k| {
            let mut rng = stream(cfg.seed, TRAJECTORY_STREAM - 1, k as u64);
            let z = rng.random_range(0.55..0.85);
            let slot = (k as f64 + 0.5) / n as f64 - 0.5;
            let x = (2.0 * slot * b.tan_x + rng.random_range(-0.05..0.05) * b.tan_x) * z;
            let y = rng.random_range(-0.3..0.3) * b.tan_y * z;
            Vector3::new(x, y, z)
        })
        .collect()
}

/// A standard-normal 3-vector.
pub(super) fn gauss3(rng: &mut StreamRng) -> Vector3<f64> {
    Vector3::from_fn(|_, _| rng.sample(StandardNormal))
}

/// `v` rescaled to norm `speed` (an arbitrary direction when `v ≈ 0`).
pub(super) fn with_norm(v: Vector3<f64>, speed: f64) -> Vector3<f64> {
    v.try_normalize(1e-15).unwrap_or_else(Vector3::x) * speed
}

/// `v` shortened to norm at most `max`.
pub(super) fn cap_norm(v: Vector3<f64>, max: f64) -> Vector3<f64> {
    let n = v.norm();
    if n > max {
        v * (max / n)
    } else {
        v
    }
}

/// A jerk: with probability `p`, a kick of random direction and norm uniform in `[½, 1]·size`.
pub(super) fn jerk(rng: &mut StreamRng, p: f64, size: f64) -> Vector3<f64> {
    let kick = rng.random::<f64>() < p;
    let dir = gauss3(rng);
    let norm = rng.random_range(0.5..1.0) * size;
    if kick {
        with_norm(dir, norm)
    } else {
        Vector3::zeros()
    }
}

/// State of a moving object: position, orientation, linear and angular velocity (per frame).
#[derive(Clone, Copy, Debug)]
pub(super) struct Body {
    t: Vector3<f64>,
    q: UnitQuaternion<f64>,
    v: Vector3<f64>,
    w: Vector3<f64>,
    home: Vector3<f64>,
}

/// Sizes of the damped random acceleration of [`Body::accelerate_damped`]: speeds in metres per
/// frame, angles in degrees per frame.
pub(super) struct Kicks {
    /// Velocity noise σ_v.
    noise_v: f64,
    /// Velocity jerk size j_v.
    jerk_v: f64,
    /// Speed cap c_v.
    cap_v: f64,
    /// Angular-velocity noise σ_ω.
    noise_w_deg: f64,
    /// Angular jerk size j_ω.
    jerk_w_deg: f64,
    /// Angular speed cap c_ω.
    cap_w_deg: f64,
}

/// [`Motion::Fast`]: 4 mm noise, 25 mm jerks, 35 mm cap; 0.8°, 6°, 9°.
pub(super) const FAST_KICKS: Kicks = Kicks {
    noise_v: 0.004,
    jerk_v: 0.025,
    cap_v: 0.035,
    noise_w_deg: 0.8,
    jerk_w_deg: 6.0,
    cap_w_deg: 9.0,
};

/// [`Motion::Extreme`]: as fast with larger kicks, 8 mm, 45 mm, 60 mm; 1.5°, 10°, 15°.
pub(super) const EXTREME_KICKS: Kicks = Kicks {
    noise_v: 0.008,
    jerk_v: 0.045,
    cap_v: 0.06,
    noise_w_deg: 1.5,
    jerk_w_deg: 10.0,
    cap_w_deg: 15.0,
};

/// Slow profile speeds: 2 mm and 0.2° per frame.
pub(super) const SLOW_SPEED: f64 = 0.002;
pub(super) const SLOW_ANGLE: f64 = 0.2 * std::f64::consts::PI / 180.0;

impl Body {
    /// Slow: constant speed, direction drifting, `v ← ‖v‖-normalised(v + 0.3·s·ε − 0.02·(t − home))`.
    fn accelerate_slow(&mut self, rng: &mut StreamRng) {
        let pull = -0.02 * (self.t - self.home);
        self.v = with_norm(self.v + 0.3 * SLOW_SPEED * gauss3(rng) + pull, SLOW_SPEED);
        self.w = with_norm(self.w + 0.3 * SLOW_ANGLE * gauss3(rng), SLOW_ANGLE);
    }

    /// Fast and extreme: damped random acceleration, a spring to home and random jerks,
    /// `v ← cap(0.8·v + σ_v·ε − 0.05·(t − home) + jerk(p 0.2, j_v), c_v)`,
    /// `ω ← cap(0.8·ω + σ_ω·ε + jerk(p 0.2, j_ω), c_ω)` with the sizes of `k`
    /// ([`FAST_KICKS`], [`EXTREME_KICKS`]).
    fn accelerate_damped(&mut self, rng: &mut StreamRng, k: &Kicks) {
        let deg = std::f64::consts::PI / 180.0;
        let pull = -0.05 * (self.t - self.home);
        self.v = cap_norm(
            0.8 * self.v + k.noise_v * gauss3(rng) + pull + jerk(rng, 0.2, k.jerk_v),
            k.cap_v,
        );
        self.w = cap_norm(
            0.8 * self.w + k.noise_w_deg * deg * gauss3(rng) + jerk(rng, 0.2, k.jerk_w_deg * deg),
            k.cap_w_deg * deg,
        );
    }

    /// One frame: `t ← t + v` (reflected at the view bounds), `R ← Exp(ω)·R` (rotation about the
    /// object origin, ω in camera axes).
    fn advance(&mut self, bounds: &ViewBounds) {
        self.t += self.v;
        bounds.reflect(&mut self.t, &mut self.v);
        self.q = UnitQuaternion::from_scaled_axis(self.w) * self.q;
    }

    fn pose(&self) -> Isometry3<f64> {
        Isometry3::from_parts(Translation3::from(self.t), self.q)
    }
}

/// Poses of one object over `frames` frames, starting at `home` with a uniformly random
/// orientation.
pub(super) fn trajectory(
    motion: Motion,
    home: Vector3<f64>,
    frames: usize,
    bounds: &ViewBounds,
    rng: &mut StreamRng,
) -> Vec<Isometry3<f64>> {
    let q = UnitQuaternion::from_quaternion(nalgebra::Quaternion::from_vector(
        nalgebra::Vector4::from_fn(|_, _| rng.sample(StandardNormal)),
    ));
    let (v, w) = match motion {
        Motion::Slow => (
            with_norm(gauss3(rng), SLOW_SPEED),
            with_norm(gauss3(rng), SLOW_ANGLE),
        ),
        Motion::Fast => (0.01 * gauss3(rng), 0.03 * gauss3(rng)),
        Motion::Extreme => (0.02 * gauss3(rng), 0.05 * gauss3(rng)),
    };
    let mut body = Body {
        t: home,
        q,
        v,
        w,
        home,
    };
    let mut poses = Vec::with_capacity(frames);
    for _ in 0..frames {
        poses.push(body.pose());
        match motion {
            Motion::Slow => body.accelerate_slow(rng),
            Motion::Fast => body.accelerate_damped(rng, &FAST_KICKS),
            Motion::Extreme => body.accelerate_damped(rng, &EXTREME_KICKS),
        }
        body.advance(bounds);
    }
    poses
}

/// The occluder: a vertical bar (20 × 400 × 30 mm) at 0.3 m sweeping back and forth across the view with period
/// 40 frames (triangle wave), entering from the left at frame 0, slightly tilted.
pub(super) fn occluder_poses(camera: &Camera, frames: usize) -> Vec<Isometry3<f64>> {
    let z = 0.3;
    let reach = (camera.cx + 0.5).max(camera.width as f64 - 0.5 - camera.cx) / camera.fx * z + 0.03;
    (0..frames)
        .map(|k| {
            let phase = (k % 40) as f64 / 40.0;
            let tri = 1.0 - (2.0 * phase - 1.0).abs();
            let x = -reach + 2.0 * reach * tri;
            Isometry3::from_parts(
                Translation3::new(x, 0.0, z),
                UnitQuaternion::from_scaled_axis(Vector3::new(0.0, 0.0, 0.15)),
            )
        })
        .collect()
}
