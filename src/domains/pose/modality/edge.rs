//! RGB-only edge modality: projected silhouette points against a distance transform of the
//! image edges, computed once per frame and shared by all objects and particles.
//!
//! Per frame: grey image `I`, Sobel gradient magnitude `|∇I|`, edge pixels `|∇I| > τ`, exact
//! Euclidean distance transform `DT(u, v)` (Felzenszwalb–Huttenlocher), truncated at `t_max` pixels.
//! Per particle, for the near-silhouette model points `q_i` (normals almost perpendicular to the
//! viewing ray) the loss is
//!
//! ```text
//!   L = n_eff / (N σ²) · Σ_i ρ(DT(π(q_i)))       (σ in pixels)
//!   ∂L/∂q_i = n_eff / (N σ²) · ψ(DT) · (∂DT/∂u · ∂u/∂q + ∂DT/∂v · ∂v/∂q)
//! ```
//!
//! with `DT` interpolated bilinearly (piecewise linear, so `L` is piecewise smooth).

use super::spec::{FrameTerm, ModalitySpec, Needs};
use super::views::Shape;
use super::visible::{contour_points, visible_points, VisibilityParams};
use super::RgbdFrame;
use super::{
    loss_scale, GradAccumulator, ImageF32, Modality, PoseChart, RigidMotion, Robust, SharedImage,
};
use crate::core::error::Result;
use crate::core::geometry::camera::Camera;
use crate::domains::pose::mesh::SurfacePoint;
use nalgebra::{Matrix6, Vector2, Vector3, Vector6};
use std::sync::Arc;

/// Parameters of the edge modality (pixels).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EdgeParams {
    /// Edge threshold τ on the Sobel magnitude of the grey image in `[0, 1]`.
    pub threshold: f32,
    /// Distance-transform truncation `t_max`.
    pub truncate: f32,
    /// Robust kernel on the distance.
    pub robust: Robust,
    /// Edge localisation σ.
    pub sigma: f64,
    /// Effective number of independent points.
    pub n_eff: f64,
    /// Silhouette-point selection (`max_facing` small).
    pub visibility: VisibilityParams,
}

impl Default for EdgeParams {
    fn default() -> Self {
        Self {
            threshold: 0.25,
            truncate: 30.0,
            robust: Robust::Huber(4.0),
            sigma: 2.0,
            n_eff: 20.0,
            visibility: VisibilityParams {
                max_facing: 0.35,
                max_points: 200,
                ..Default::default()
            },
        }
    }
}

/// Sobel gradient magnitude of a grey image (border pixels 0); each kernel is normalised by 1/8.
pub fn sobel_magnitude(grey: &ImageF32) -> ImageF32 {
    let (w, h) = (grey.width, grey.height);
    let mut out = vec![0.0f32; w * h];
    for y in 1..h.saturating_sub(1) {
        for x in 1..w.saturating_sub(1) {
            let p = |dx: isize, dy: isize| {
                grey.at((x as isize + dx) as usize, (y as isize + dy) as usize)
            };
            let gx = p(1, -1) + 2.0 * p(1, 0) + p(1, 1) - p(-1, -1) - 2.0 * p(-1, 0) - p(-1, 1);
            let gy = p(-1, 1) + 2.0 * p(0, 1) + p(1, 1) - p(-1, -1) - 2.0 * p(0, -1) - p(1, -1);
            out[y * w + x] = (gx * gx + gy * gy).sqrt() / 8.0;
        }
    }
    ImageF32 {
        width: w,
        height: h,
        data: out,
    }
}

/// 1-D squared distance transform of `f` (Felzenszwalb & Huttenlocher 2012): `d(p) = min_q (p−q)² + f(q)`.
fn dt_1d(f: &[f32], d: &mut [f32], v: &mut [usize], z: &mut [f32]) {
    let n = f.len();
    let mut k = 0usize;
    v[0] = 0;
    z[0] = f32::NEG_INFINITY;
    z[1] = f32::INFINITY;
    let inter = |q: usize, p: usize| {
        ((f[q] + (q * q) as f32) - (f[p] + (p * p) as f32)) / (2.0 * (q as f32 - p as f32))
    };
    for q in 1..n {
        let mut s = inter(q, v[k]);
        while s <= z[k] {
            k -= 1;
            s = inter(q, v[k]);
        }
        k += 1;
        v[k] = q;
        z[k] = s;
        z[k + 1] = f32::INFINITY;
    }
    k = 0;
    for (q, dq) in d.iter_mut().enumerate() {
        while z[k + 1] < q as f32 {
            k += 1;
        }
        let dx = q as f32 - v[k] as f32;
        *dq = dx * dx + f[v[k]];
    }
}

/// Exact Euclidean distance (pixels) to the nearest pixel where `mask` holds, truncated at `t_max`
/// (an empty image for a zero width or height).
pub fn distance_transform(
    width: usize,
    height: usize,
    mask: impl Fn(usize) -> bool,
    t_max: f32,
) -> ImageF32 {
    let big = 1e10f32;
    let mut g: Vec<f32> = (0..width * height)
        .map(|i| if mask(i) { 0.0 } else { big })
        .collect();
    let n = width.max(height);
    let (mut f, mut d, mut v, mut z) = (
        vec![0.0; n],
        vec![0.0; n],
        vec![0usize; n],
        vec![0.0; n + 1],
    );
    for x in 0..width {
        (0..height).for_each(|y| f[y] = g[y * width + x]);
        dt_1d(&f[..height], &mut d[..height], &mut v, &mut z);
        (0..height).for_each(|y| g[y * width + x] = d[y]);
    }
    // `max(1)`: an empty image has no rows (and `chunks_mut(0)` would panic).
    for row in g.chunks_mut(width.max(1)) {
        f[..width].copy_from_slice(row);
        dt_1d(&f[..width], &mut d[..width], &mut v, &mut z);
        row.copy_from_slice(&d[..width]);
    }
    let data = g.into_iter().map(|s| s.sqrt().min(t_max)).collect();
    ImageF32 {
        width,
        height,
        data,
    }
}

/// The per-frame edge distance map of a grey image in `[0, 1]`.
pub fn edge_distance_map(grey: &ImageF32, params: &EdgeParams) -> ImageF32 {
    let mag = sobel_magnitude(grey);
    distance_transform(
        grey.width,
        grey.height,
        |i| mag.data[i] > params.threshold,
        params.truncate,
    )
}

/// Which model points an [`EdgeModality`] matches against its distance map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgePoints {
    /// Near-silhouette points selected by their normals ([`visible_points`] with
    /// `params.visibility`), for intensity edges.
    Silhouette,
    /// Points on the occluding contour of the model's projection ([`contour_points`], cells of
    /// `params.visibility.cell_px` pixels), right for a map of occluding contours such as
    /// [`super::depth_edge::depth_edge_distance_map`].
    Contour,
}

impl ModalitySpec for EdgeParams {
    fn name(&self) -> &'static str {
        "edge"
    }

    fn needs(&self) -> Needs {
        Needs {
            depth: false,
            grey: true,
        }
    }

    /// The distance map of the grey image's edges ([`edge_distance_map`]).
    fn prepare_frame(&self, frame: &RgbdFrame) -> Result<Arc<dyn FrameTerm>> {
        let grey = frame.need_grey(self.name())?;
        let dist = Arc::new(edge_distance_map(&grey, self));
        Ok(Arc::new(EdgeFrame::new(
            dist,
            *self,
            EdgePoints::Silhouette,
        )))
    }

    fn boxed(&self) -> Box<dyn ModalitySpec> {
        Box::new(*self)
    }
}

/// An edge-type modality prepared for one frame: a distance map and which points match it.
pub struct EdgeFrame {
    dist: SharedImage,
    params: EdgeParams,
    select: EdgePoints,
}

impl EdgeFrame {
    /// The frame's distance map `dist`, matched by the `select` points with `params`.
    pub fn new(dist: SharedImage, params: EdgeParams, select: EdgePoints) -> Self {
        Self {
            dist,
            params,
            select,
        }
    }
}

impl FrameTerm for EdgeFrame {
    /// Not widened: the distance map's truncation already gives far points a pull.
    fn prepare(
        &self,
        camera: &Camera,
        chart: &PoseChart,
        _object: usize,
        shape: &Shape,
        _widen: f64,
    ) -> Box<dyn Modality> {
        let dist = self.dist.clone();
        let m = EdgeModality::prepare(dist, *camera, chart, shape, self.params, self.select);
        Box::new(m)
    }
}

/// A prepared edge modality: centre-relative silhouette points and the frame's distance map.
pub struct EdgeModality {
    dist: SharedImage,
    cam: Camera,
    centre: Vector3<f64>,
    points: Vec<Vector3<f64>>,
    params: EdgeParams,
    norm: f64,
}

impl EdgeModality {
    /// Prepare about `chart` from the model's oriented surface samples and a distance map from
    /// [`edge_distance_map`] ([`EdgePoints::Silhouette`]) or [`super::depth_edge::depth_edge_distance_map`]
    /// ([`EdgePoints::Contour`]).
    pub fn prepare(
        dist: SharedImage,
        cam: Camera,
        chart: &PoseChart,
        model: &[SurfacePoint],
        params: EdgeParams,
        select: EdgePoints,
    ) -> Self {
        let v = &params.visibility;
        let points = match select {
            EdgePoints::Silhouette => visible_points(model, &chart.reference, &cam, v),
            EdgePoints::Contour => {
                contour_points(model, &chart.reference, &cam, v.cell_px, v.max_points)
            }
        };
        let points: Vec<_> = points.iter().map(|p| p.p.coords - chart.centre).collect();
        let norm = loss_scale(params.n_eff, params.sigma, points.len());
        Self {
            dist,
            cam,
            centre: chart.centre,
            points,
            params,
            norm,
        }
    }
}

impl Modality for EdgeModality {
    fn name(&self) -> &str {
        "edge"
    }

    fn evaluate(&self, motion: &RigidMotion, mut grad: Option<&mut GradAccumulator>) -> f64 {
        let mut total = 0.0;
        let cap = f64::from(self.params.truncate);
        for v in &self.points {
            let rv = motion.rotate(v);
            let q = motion.place(&self.centre, &rv);
            if q.z < 1e-3 {
                continue;
            }
            let (u, w) = self.cam.project_xyz(&q);
            let Some((d, du, dv)) = self.dist.bilinear(u, w, |_| true) else {
                total += self.params.robust.rho(cap);
                continue;
            };
            let (rho, psi) = self.params.robust.rho_psi(d);
            total += rho;
            if let Some(acc) = grad.as_deref_mut() {
                let j = self.cam.jacobian_xyz(&q);
                let s = self.norm * psi;
                acc.add_point(&rv, &(j.tr_mul(&Vector2::new(du, dv)) * s));
            }
        }
        total * self.norm
    }

    /// `H = n_eff/(Nσ²) Σ (J_uᵀJ_u + J_vᵀJ_v)` with the projection rows mapped to ξ.
    fn curvature(&self) -> Matrix6<f64> {
        let mut h = Matrix6::zeros();
        for v in &self.points {
            let q = self.centre + v;
            let jac = self.cam.jacobian_xyz(&q);
            for j in [jac.row(0).transpose(), jac.row(1).transpose()] {
                let vj = v.cross(&j);
                let row = Vector6::new(j.x, j.y, j.z, vj.x, vj.y, vj.z);
                h += row * row.transpose();
            }
        }
        h * self.norm
    }

    fn len(&self) -> usize {
        self.points.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domains::pose::modality::depth_edge::depth_edge_distance_map;
    use nalgebra::Isometry3;
    use std::sync::Arc;

    #[test]
    fn depth_edges_are_occluding_contours() {
        // A 4×4 square at 0.5 m on a missing background and a 0.02 m step inside it.
        let (w, h) = (12, 10);
        let mut data = vec![0.0f32; w * h];
        for y in 3..7 {
            for x in 3..7 {
                data[y * w + x] = if x < 5 { 0.5 } else { 0.51 };
            }
        }
        let depth = ImageF32 {
            width: w,
            height: h,
            data,
        };
        let dt = depth_edge_distance_map(&depth, 0.05, 50.0);
        assert_eq!(dt.at(3, 4), 0.0);
        assert!((dt.at(0, 4) - 3.0).abs() < 1e-6);
        // The 1 cm step is below the jump threshold: not an edge.
        let inner = depth_edge_distance_map(&depth, 0.005, 50.0);
        assert_eq!(inner.at(4, 4), 0.0);
        assert_eq!(dt.at(4, 4), 1.0);
    }

    #[test]
    fn distance_transform_is_euclidean() {
        let (w, h) = (9, 7);
        let dt = distance_transform(w, h, |i| i == 3 * w + 4, 100.0);
        assert_eq!(dt.at(4, 3), 0.0);
        assert!((dt.at(7, 3) - 3.0).abs() < 1e-6);
        assert!((dt.at(7, 6) - 18f32.sqrt()).abs() < 1e-5);
        let t = distance_transform(w, h, |i| i == 0, 2.5);
        assert_eq!(t.at(8, 6), 2.5);
        for (w, h) in [(0, 0), (0, 5), (5, 0)] {
            assert!(distance_transform(w, h, |_| true, 1.0).data.is_empty());
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let cam = Camera {
            fx: 300.0,
            fy: 300.0,
            cx: 64.0,
            cy: 48.0,
            width: 128,
            height: 96,
        };
        // A bright disc: its edge is a circle of radius 20 px around the principal point.
        let mut grey = ImageF32 {
            width: 128,
            height: 96,
            data: vec![0.0; 128 * 96],
        };
        for y in 0..96 {
            for x in 0..128 {
                let r = ((x as f64 - 64.0).powi(2) + (y as f64 - 48.0).powi(2)).sqrt();
                grey.data[y * 128 + x] = if r < 20.0 { 1.0 } else { 0.0 };
            }
        }
        let map = Arc::new(edge_distance_map(&grey, &EdgeParams::default()));
        // A cylinder-like ring of side points of radius 3 cm at 0.5 m (≈ 18 px).
        let model: Vec<SurfacePoint> = (0..72)
            .flat_map(|i| {
                let a = i as f64 * std::f64::consts::TAU / 72.0;
                let n = Vector3::new(a.cos(), a.sin(), -0.3).normalize();
                [-0.01, 0.01].map(|z| SurfacePoint {
                    p: nalgebra::Point3::new(0.03 * a.cos(), 0.03 * a.sin(), z),
                    n,
                })
            })
            .collect();
        let chart = PoseChart::new(Isometry3::translation(0.0, 0.0, 0.5), &Vector3::zeros());
        let m = EdgeModality::prepare(
            map,
            cam,
            &chart,
            &model,
            EdgeParams::default(),
            EdgePoints::Silhouette,
        );
        assert!(m.len() > 50, "{}", m.len());
        let xi = Vector6::new(0.0013, -0.0021, 0.0047, 0.021, -0.013, 0.0171);
        let mut g = Vector6::zeros();
        m.loss_grad(&xi, &mut g);
        for k in 0..6 {
            let mut e = Vector6::zeros();
            e[k] = 1e-7;
            let fd = (m.loss(&(xi + e)) - m.loss(&(xi - e))) / 2e-7;
            assert!(
                (fd - g[k]).abs() <= 2e-2 * g.norm().max(1.0),
                "coord {k}: fd {fd} vs {}",
                g[k]
            );
        }
        // Shrinking towards the true radius lowers the loss.
        assert!(
            m.loss(&Vector6::new(0.0, 0.0, -0.05, 0.0, 0.0, 0.0))
                < m.loss(&Vector6::new(0.0, 0.0, 0.1, 0.0, 0.0, 0.0))
        );
    }
}
