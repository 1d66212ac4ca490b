//! Per-frame selection of the model points visible from the reference pose: back-face culling plus
//! a coarse point z-buffer, then an even subsample — done once per frame, so the per-particle cost
//! is independent of the image size.

use nalgebra::{Isometry3, Vector3};

/// A model surface point with its outward unit normal (model frame, metres).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OrientedPoint {
    /// Position.
    pub p: Vector3<f64>,
    /// Outward unit normal.
    pub n: Vector3<f64>,
}

/// Pinhole intrinsics in the OpenCV convention: `u = fx x/z + cx`, `v = fy y/z + cy`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pinhole {
    /// Focal length along x (pixels).
    pub fx: f64,
    /// Focal length along y (pixels).
    pub fy: f64,
    /// Principal point x (pixels).
    pub cx: f64,
    /// Principal point y (pixels).
    pub cy: f64,
    /// Image width (pixels).
    pub width: usize,
    /// Image height (pixels).
    pub height: usize,
}

impl Pinhole {
    /// `π(q) = (fx q_x/q_z + cx, fy q_y/q_z + cy)`.
    #[inline]
    pub fn project(&self, q: &Vector3<f64>) -> (f64, f64) {
        (self.fx * q.x / q.z + self.cx, self.fy * q.y / q.z + self.cy)
    }

    /// `∂π/∂q` as two rows: `[fx/z, 0, −fx x/z²]`, `[0, fy/z, −fy y/z²]`.
    #[inline]
    pub fn jacobian(&self, q: &Vector3<f64>) -> (Vector3<f64>, Vector3<f64>) {
        let iz = 1.0 / q.z;
        (
            Vector3::new(self.fx * iz, 0.0, -self.fx * q.x * iz * iz),
            Vector3::new(0.0, self.fy * iz, -self.fy * q.y * iz * iz),
        )
    }
}

/// Which points to keep.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VisibilityParams {
    /// Keep points with `n·raŷ < −min_facing` (facing the camera).
    pub min_facing: f64,
    /// Keep at most `max_facing`: `|n·raŷ| ≤ max_facing` selects near-silhouette points (1 = all).
    pub max_facing: f64,
    /// z-buffer cell size in pixels.
    pub cell_px: f64,
    /// Points within this depth (metres) of the nearest point of their cell count as visible.
    pub depth_tolerance: f64,
    /// Upper bound on the number of points returned.
    pub max_points: usize,
}

impl Default for VisibilityParams {
    fn default() -> Self {
        Self {
            min_facing: 0.05,
            max_facing: 1.0,
            cell_px: 4.0,
            depth_tolerance: 0.01,
            max_points: 500,
        }
    }
}

/// Points of `model` (posed by `pose`, returned in the camera frame) that face the camera, lie in
/// front of it inside the image, and are not behind a nearer model point of the same z-buffer cell;
/// evenly subsampled to at most `max_points`.
pub fn visible_points(
    model: &[OrientedPoint],
    pose: &Isometry3<f64>,
    cam: &Pinhole,
    params: &VisibilityParams,
) -> Vec<OrientedPoint> {
    let candidates: Vec<(OrientedPoint, (usize, usize))> = model
        .iter()
        .filter_map(|m| {
            let p = pose * nalgebra::Point3::from(m.p);
            let n = pose.rotation * m.n;
            let facing = n.dot(&p.coords.normalize());
            let ok = p.z > 1e-3 && facing < -params.min_facing && facing >= -params.max_facing;
            let (u, v) = cam.project(&p.coords);
            let inside = u >= 0.0 && v >= 0.0 && u < cam.width as f64 && v < cam.height as f64;
            (ok && inside).then(|| {
                let cell = ((u / params.cell_px) as usize, (v / params.cell_px) as usize);
                (OrientedPoint { p: p.coords, n }, cell)
            })
        })
        .collect();
    let cols = (cam.width as f64 / params.cell_px).ceil() as usize + 1;
    let rows = (cam.height as f64 / params.cell_px).ceil() as usize + 1;
    let mut zbuf = vec![f64::INFINITY; cols * rows];
    for (pt, (cx, cy)) in &candidates {
        let z = &mut zbuf[cy * cols + cx];
        *z = z.min(pt.p.z);
    }
    let visible: Vec<OrientedPoint> = candidates
        .into_iter()
        .filter(|(pt, (cx, cy))| pt.p.z <= zbuf[cy * cols + cx] + params.depth_tolerance)
        .map(|(pt, _)| pt)
        .collect();
    subsample(visible, params.max_points)
}

/// Every `⌈len/max⌉`-th element, so at most `max` remain (deterministic, spatially even for
/// surface samples drawn in random order).
fn subsample<T: Copy>(v: Vec<T>, max: usize) -> Vec<T> {
    if v.len() <= max || max == 0 {
        return if max == 0 { Vec::new() } else { v };
    }
    let step = v.len() as f64 / max as f64;
    (0..max).map(|i| v[(i as f64 * step) as usize]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cam() -> Pinhole {
        Pinhole {
            fx: 500.0,
            fy: 500.0,
            cx: 160.0,
            cy: 120.0,
            width: 320,
            height: 240,
        }
    }

    #[test]
    fn culls_back_faces_and_occluded_points() {
        // Two points on the optical axis: a front face (normal towards camera) and a back face.
        let model = vec![
            OrientedPoint {
                p: Vector3::new(0.0, 0.0, -0.05),
                n: -Vector3::z(),
            },
            OrientedPoint {
                p: Vector3::new(0.0, 0.0, 0.05),
                n: Vector3::z(),
            },
            // Facing the camera but hidden behind the first point.
            OrientedPoint {
                p: Vector3::new(0.0, 0.0, 0.2),
                n: -Vector3::z(),
            },
        ];
        let pose = Isometry3::translation(0.0, 0.0, 1.0);
        let vis = visible_points(&model, &pose, &cam(), &VisibilityParams::default());
        assert_eq!(vis.len(), 1);
        assert!((vis[0].p.z - 0.95).abs() < 1e-12);
    }

    #[test]
    fn subsamples_to_the_budget() {
        let v: Vec<usize> = (0..1000).collect();
        let s = subsample(v, 300);
        assert_eq!(s.len(), 300);
        assert_eq!(s[0], 0);
    }

    #[test]
    fn projection_jacobian_matches_finite_differences() {
        let c = cam();
        let q = Vector3::new(0.1, -0.05, 0.9);
        let (ju, jv) = c.jacobian(&q);
        for k in 0..3 {
            let mut d = Vector3::zeros();
            d[k] = 1e-7;
            let (up, vp) = c.project(&(q + d));
            let (um, vm) = c.project(&(q - d));
            assert!(((up - um) / 2e-7 - ju[k]).abs() < 1e-4);
            assert!(((vp - vm) / 2e-7 - jv[k]).abs() < 1e-4);
        }
    }
}
