//! Region modality in the sense of SRT3D / ICG (Stoiber et al.): colour statistics of the object
//! and its surroundings, read along correspondence lines normal to the projected contour.
//!
//! # Colour statistics (per object, learned online)
//! Foreground and background RGB histograms `h_f`, `h_b` of `B³` bins (`B` per channel), learned
//! from the pixels inside / outside the projected silhouette along the lines of the tracker's
//! published estimate: `h ← (1 − λ) h + λ ĥ` with `ĥ` the frame's normalised counts (`λ = 1` at
//! the first frame, from the initial pose). The pixel-wise posteriors are
//! `p_f(y) = h_f(y) / (h_f(y) + h_b(y))`, `p_b = 1 − p_f` (½ where both are empty).
//!
//! # Correspondence lines (per object and round, about the round's reference pose)
//! At `N` contour points `c_i` with outward image normal `n_i` ([`Shape::contour`]: the
//! silhouette's at the pose, or the nearest view's, [`super::views`]),
//! a line of `F + D − 1` segments of `s` pixels (`s` grows with the tracker's widening: coarse to
//! fine) is centred on `π(c_i)`. Segment `j` has `P_f(j) ∝ Π_{pixels} p_f`, `P_b(j) ∝ Π p_b`
//! (normalised to sum 1). With the smoothed step `h_f(x) = ½ − α tanh(x / 2β)`, `h_b = 1 − h_f`
//! (`x` in segments, positive outward) the contour lies at `d_k = (k − (D−1)/2)·s` pixels along
//! `n_i` with probability
//!
//! ```text
//!   p_i(d_k) ∝ Π_{m=0}^{F−1} [ h_f(m − (F−1)/2) P_f(k+m) + h_b(m − (F−1)/2) P_b(k+m) ],  k < D,
//! ```
//!
//! summarised by its mean `μ_i` and variance `v_i` (segments², at least the step's own
//! `v_min = max(β, 1 / (2 atanh(2α)²))`).
//!
//! # Loss
//! The model contour point moves with the pose, `q_i(ξ) = c + ρ + R v_i`; its projected position
//! along the line is `δ_i(ξ) = n_iᵀ (π(q_i(ξ)) − π(c_i))` pixels. Each line's contour position
//! is Gaussian, `δ_i ~ N(μ_i s, σ_i²)`, `σ_i² = (σ s)² v_i / v_min` (ICG's variance scaling: σ is
//! the pixel σ per segment pixel, so a sharp line at `s = 1` has σ pixels), and
//!
//! ```text
//!   L(ξ) = n_eff / N · Σ_i ρ(r_i),   r_i = (δ_i(ξ) − μ_i s) / σ_i,
//!   ∂L/∂q_i = n_eff / N · ψ(r_i) / σ_i · J_π(q_i)ᵀ n_i,
//!   H(ξ) = n_eff / N · Σ_i w_i / σ_i² · g_i g_iᵀ,  g_i = [J_πᵀn_i; J_lᵀ (R v_i × J_πᵀn_i)],
//! ```
//!
//! `w_i = ψ(r_i)/r_i` — the negative log-likelihood of the projected contour positions (ICG's
//! Gaussian form), its analytic gradient and its Gauss–Newton curvature in the tangent
//! coordinates of [`super`]. Lines that leave the image are dropped; an object without learned
//! statistics yet contributes nothing.
//!
//! # Occlusion (with a depth image)
//! A contour point hidden by something in front of it would see the occluder's colours as
//! "background" and pull the contour onto the occluder's edge. When the frame has depth, a line
//! whose contour point `q` meets a measured depth `d` with `q_z − d > occlusion` at its projection
//! or `occlusion_px` pixels inward or outward along its normal is dropped (ICG's occlusion
//! measurement), and such lines teach the colour statistics nothing.
//!
//! # Colour loss (judging a re-detection)
//! `ℓ_c = 1/M · Σ_j (1 − p_f(y_j))` over the pixels `y_j` of the `M` visible model points that the
//! depth image does not show hidden ([`FrameTerm::colour_loss`]): how little the object's
//! silhouette looks like the object learned so far.

use super::line_lanes::{Line, LineEval, LineLanes};
use super::spec::{FrameTerm, Memory, ModalitySpec, Needs};
use super::views::Shape;
use super::visible::{Silhouette, VisibilityParams};
use super::{scattered_subset, thinned_scale, GradAccumulator, Modality, PoseChart, RgbdFrame};
use super::{RigidMotion, Robust, SharedImage};
use crate::core::error::Result;
use crate::core::geometry::camera::Camera;
use crate::domains::pose::mesh::SurfacePoint;
use image::RgbImage;
use nalgebra::{Isometry3, Matrix6, Vector2, Vector3, Vector6};
use std::sync::{Arc, OnceLock, RwLock};

/// Parameters of the region modality (pixels unless said otherwise).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RegionParams {
    /// Histogram bins per colour channel `B` (a power of two in 2..=64; others round up).
    pub bins: usize,
    /// Learning rates `λ` of the foreground and background histograms per frame.
    pub learn_rate: (f64, f64),
    /// Pixels along each line learned from, on either side of the contour.
    pub learn_length: f64,
    /// Correspondence lines `N`, at most.
    pub lines: usize,
    /// Silhouette grid cell (see [`Silhouette`]).
    pub cell_px: f64,
    /// Neighbourhood (cells) from which a contour normal is estimated.
    pub normal_reach: usize,
    /// Step-function length `F` (segments).
    pub function_length: usize,
    /// Distribution length `D` (segments).
    pub distribution_length: usize,
    /// Step amplitude `α < ½`.
    pub amplitude: f64,
    /// Step slope `β` (segments).
    pub slope: f64,
    /// Segment length `s` at widening 1; a widening `f` uses `round(f·s)`.
    pub segment: f64,
    /// Largest segment length.
    pub max_segment: usize,
    /// Contour localisation σ in pixels per segment pixel.
    pub sigma: f64,
    /// Effective number of independent lines.
    pub n_eff: f64,
    /// Robust kernel on the whitened residual `r_i`.
    pub robust: Robust,
    /// A measured depth this much (m) in front of a contour point marks its line occluded.
    pub occlusion: f64,
    /// Pixels along the normal, each way, at which occlusion is also checked.
    pub occlusion_px: f64,
}

impl Default for RegionParams {
    fn default() -> Self {
        Self {
            bins: 16,
            learn_rate: (0.2, 0.2),
            learn_length: 20.0,
            lines: 200,
            cell_px: 3.0,
            normal_reach: 3,
            function_length: 8,
            distribution_length: 12,
            amplitude: 0.43,
            slope: 0.5,
            segment: 2.0,
            max_segment: 8,
            sigma: 1.5,
            n_eff: 20.0,
            robust: Robust::L2,
            occlusion: 0.03,
            occlusion_px: 3.0,
        }
    }
}

impl RegionParams {
    /// Bits dropped per channel, `8 − log₂ B` (B rounded up to a power of two in 2..=64).
    fn shift(&self) -> u32 {
        8 - self.bins.clamp(2, 64).next_power_of_two().trailing_zeros()
    }

    /// The histogram bin of an RGB pixel.
    fn bin(&self, p: [u8; 3]) -> usize {
        let (s, b) = (self.shift(), 8 - self.shift());
        let c = |x: u8| (x >> s) as usize;
        (c(p[0]) << (2 * b)) | (c(p[1]) << b) | c(p[2])
    }

    /// Number of bins `B³`.
    fn n_bins(&self) -> usize {
        1 << (3 * (8 - self.shift()))
    }

    /// The step's own variance `v_min = max(β, 1 / (2 atanh(2α)²))` (segments²).
    fn min_variance(&self) -> f64 {
        let laplace = 1.0 / (2.0 * (2.0 * self.amplitude).atanh().powi(2));
        laplace.max(self.slope)
    }

    /// What every line of a round shares ([`LineShape`]), formed once per round.
    fn line_shape(&self) -> LineShape {
        let f_len = self.function_length.max(1);
        let step = (0..f_len)
            .map(|m| {
                let x = m as f64 - (f_len - 1) as f64 / 2.0;
                0.5 - self.amplitude * (x / (2.0 * self.slope)).tanh()
            })
            .collect();
        LineShape {
            step,
            min_variance: self.min_variance(),
        }
    }

    /// The segment length `s` of widening `f`.
    fn segment_at(&self, f: f64) -> usize {
        ((self.segment * f).round() as usize).clamp(1, self.max_segment.max(1))
    }
}

impl ModalitySpec for RegionParams {
    fn name(&self) -> &'static str {
        "region"
    }

    /// The colour image only (read directly, not as grey).
    fn needs(&self) -> Needs {
        Needs::default()
    }

    /// A frame with a memory of its own (nothing learned carries over to the next frame).
    fn prepare_frame(&self, frame: &RgbdFrame) -> Result<Arc<dyn FrameTerm>> {
        let memory = self
            .memory()
            .unwrap_or_else(|| Arc::new(ColourMemory::default()));
        self.prepare_tracked(frame, &memory)
    }

    fn memory(&self) -> Option<Memory> {
        Some(Arc::new(ColourMemory::default()))
    }

    fn prepare_tracked(&self, frame: &RgbdFrame, memory: &Memory) -> Result<Arc<dyn FrameTerm>> {
        let rgb = frame.need_rgb(self.name())?;
        let memory = match memory.clone().downcast::<ColourMemory>() {
            Ok(m) => m,
            Err(_) => Arc::new(ColourMemory::default()),
        };
        Ok(Arc::new(RegionFrame {
            rgb,
            depth: frame.depth.clone(),
            params: *self,
            memory,
        }))
    }

    fn boxed(&self) -> Box<dyn ModalitySpec> {
        Box::new(*self)
    }
}

/// What every correspondence line of a round shares: the smoothed step
/// `h_f(x_m) = ½ − α tanh(x_m / (2β))` at the function's segment centres `x_m = m − (F − 1)/2`,
/// `m < F`, and the step's own variance ([`RegionParams::min_variance`]).
struct LineShape {
    step: Vec<f64>,
    min_variance: f64,
}

/// The buffers one line's distribution is computed in, reused from line to line.
#[derive(Default)]
struct LineScratch {
    /// Per segment: the foreground and background likelihoods, normalised.
    segments: Vec<(f64, f64)>,
    /// The contour-position distribution.
    distribution: Vec<f64>,
}

/// Foreground and background histograms of one object (normalised to sum 1), with the
/// foreground posterior of every bin (kept in step with them: the lines read it per pixel, up
/// to 16 times a frame, while the histograms change once).
#[derive(Clone, Debug)]
struct ColourModel {
    fg: Vec<f64>,
    bg: Vec<f64>,
    post: Vec<f64>,
}

impl ColourModel {
    /// The histograms of the first counts `fg`, `bg` (rate 1).
    fn first(fg: &[f64], bg: &[f64]) -> Self {
        let mut m = Self {
            fg: vec![0.0; fg.len()],
            bg: vec![0.0; bg.len()],
            post: Vec::new(),
        };
        m.learn(fg, bg, (1.0, 1.0));
        m
    }

    /// Blend counts into the histograms at rates `(r_f, r_b)` ([`blend`]) and refresh the
    /// posteriors.
    fn learn(&mut self, fg: &[f64], bg: &[f64], (rf, rb): (f64, f64)) {
        blend(&mut self.fg, fg, rf);
        blend(&mut self.bg, bg, rb);
        self.post = (self.fg.iter().zip(&self.bg))
            .map(|(&f, &b)| match f + b > 0.0 {
                true => f / (f + b),
                false => 0.5,
            })
            .collect();
    }

    /// `p_f(y) = h_f / (h_f + h_b)`, ½ where both are empty.
    fn posterior(&self, bin: usize) -> f64 {
        self.post[bin]
    }
}

/// `h ← (1 − λ) h + λ c / Σc` (unchanged when nothing was counted).
fn blend(h: &mut [f64], counts: &[f64], rate: f64) {
    let sum: f64 = counts.iter().sum();
    if sum > 0.0 {
        for (h, c) in h.iter_mut().zip(counts) {
            *h = (1.0 - rate) * *h + rate * c / sum;
        }
    }
}

/// The per-tracker memory: each object's colour model (tracker order), once learned.
#[derive(Debug, Default)]
pub struct ColourMemory {
    objects: RwLock<Vec<Option<ColourModel>>>,
}

/// The region modality prepared for one frame.
struct RegionFrame {
    rgb: Arc<RgbImage>,
    /// Depth (metres) for the occlusion check, when the frame has it.
    depth: Option<SharedImage>,
    params: RegionParams,
    memory: Arc<ColourMemory>,
}

/// The image pixel nearest to `(u, v)`, if inside.
fn pixel(rgb: &RgbImage, u: f64, v: f64) -> Option<[u8; 3]> {
    // `⌊u + ½⌋` by truncation (`u + ½ ≥ 0` for every value kept): the nearest pixel, without a
    // call to `round` (not inlined on baseline x86-64: 1.4 % of a fast sequence's run). It can
    // differ from `round` only at a tie (`u = −½` now reads pixel 0) or where adding ½ rounds
    // (`u` within an ulp below a half-integer); a NaN fails the test.
    let (x, y) = (u + 0.5, v + 0.5);
    let inside = x >= 0.0 && y >= 0.0 && x < rgb.width() as f64 && y < rgb.height() as f64;
    inside.then(|| rgb.get_pixel(x as u32, y as u32).0)
}

/// Whether the pixel nearest `at` of `depth` measures a depth more than `occlusion` in front of
/// `z` (not where it is missing or outside).
fn hidden(depth: &SharedImage, z: f64, at: &Vector2<f64>, occlusion: f64) -> bool {
    let (x, y) = (at.x.round(), at.y.round());
    (x >= 0.0 && y >= 0.0)
        .then(|| depth.depth_at(x as usize, y as usize))
        .flatten()
        .is_some_and(|d| z - d as f64 > occlusion)
}

/// Where a line starts: contour point (camera frame), outward image normal, projected point.
type LineSeed = (Vector3<f64>, Vector2<f64>, Vector2<f64>);

/// Line seeds from contour points with their outward unit image normals: the point, the normal
/// and the point's projection.
fn seeds(camera: &Camera, contour: Vec<(SurfacePoint, [f64; 2])>) -> Vec<LineSeed> {
    (contour.into_iter())
        .map(|(pt, n)| {
            let (u, v) = camera.project_xyz(&pt.p.coords);
            (pt.p.coords, Vector2::new(n[0], n[1]), Vector2::new(u, v))
        })
        .collect()
}

impl RegionFrame {
    /// Whether the line of contour point `q` (camera frame) through `c` along `n` is occluded:
    /// a measured depth more than `occlusion` in front of `q_z` at `c` or `occlusion_px` pixels
    /// either way along `n` (never without a depth image).
    fn occluded(&self, q: &Vector3<f64>, n: &Vector2<f64>, c: &Vector2<f64>) -> bool {
        let Some(depth) = &self.depth else {
            return false;
        };
        let p = &self.params;
        [-p.occlusion_px, 0.0, p.occlusion_px]
            .iter()
            .any(|k| hidden(depth, q.z, &(c + n * *k), p.occlusion))
    }

    /// Whether a point at depth `z` projecting to `at` is hidden: its nearest pixel measures a
    /// depth more than `occlusion` in front of it (never without a depth image).
    fn hides(&self, z: f64, at: &Vector2<f64>) -> bool {
        (self.depth.as_ref()).is_some_and(|d| hidden(d, z, at, self.params.occlusion))
    }

    /// The lines of `shape` at `pose` ([`Shape::contour`]) without the occluded ones.
    fn open_lines(&self, camera: &Camera, pose: &Isometry3<f64>, shape: &Shape) -> Vec<LineSeed> {
        let p = &self.params;
        self.unoccluded(
            camera,
            shape.contour(pose, camera, (p.cell_px, p.normal_reach), p.lines),
        )
    }

    /// The line seeds of `contour` ([`seeds`]) without the occluded ones.
    fn unoccluded(&self, camera: &Camera, contour: Vec<(SurfacePoint, [f64; 2])>) -> Vec<LineSeed> {
        let mut lines = seeds(camera, contour);
        lines.retain(|(q, n, c)| !self.occluded(q, n, c));
        lines
    }

    /// Pixel counts along the lines of the silhouette at `pose`: inside it (foreground) and
    /// outside (background), up to `learn_length` pixels from the contour each way.
    fn count(
        &self,
        camera: &Camera,
        pose: &Isometry3<f64>,
        points: &[SurfacePoint],
    ) -> (Vec<f64>, Vec<f64>) {
        let p = &self.params;
        let (mut fg, mut bg) = (vec![0.0; p.n_bins()], vec![0.0; p.n_bins()]);
        // Learned once a frame, from the silhouette at the pose itself (never from a view).
        let Some(sil) = Silhouette::new(points, pose, camera, p.cell_px) else {
            return (fg, bg);
        };
        let lines = self.unoccluded(camera, sil.contour_normals(camera, p.normal_reach, p.lines));
        let steps = p.learn_length.max(1.0) as usize;
        for (_, n, c) in &lines {
            for (sign, hist, want_inside) in [(-1.0, &mut fg, true), (1.0, &mut bg, false)] {
                for k in 1..=steps {
                    let at = c + n * (sign * k as f64);
                    // Near the contour the silhouette grid is coarse: trust the side there.
                    if k as f64 > p.cell_px && sil.inside(at.x, at.y) != want_inside {
                        break;
                    }
                    let Some(px) = pixel(&self.rgb, at.x, at.y) else {
                        break;
                    };
                    hist[p.bin(px)] += 1.0;
                }
            }
        }
        (fg, bg)
    }

    /// The contour-position distribution of the line through `c` along `n` with segments of
    /// `s` pixels: `(mean, variance)` in segments (module docs), `None` off the image. `shape` is
    /// the round's [`LineShape`] (the step function's length is read from it), `scratch` the
    /// buffers the line is computed in.
    fn distribution(
        &self,
        model: &ColourModel,
        (c, n): (&Vector2<f64>, &Vector2<f64>),
        s: usize,
        (shape, scratch): (&LineShape, &mut LineScratch),
    ) -> Option<(f64, f64)> {
        let p = &self.params;
        let (f_len, d_len) = (shape.step.len(), p.distribution_length.max(1));
        let segments = f_len + d_len - 1;
        let half = (segments * s) as f64 / 2.0;
        let (seg, dist) = (&mut scratch.segments, &mut scratch.distribution);
        seg.clear();
        for j in 0..segments {
            let (mut pf, mut pb) = (1.0, 1.0);
            for k in 0..s {
                let r = (j * s + k) as f64 + 0.5 - half;
                let at = c + n * r;
                let post = model.posterior(p.bin(pixel(&self.rgb, at.x, at.y)?));
                pf *= post;
                pb *= 1.0 - post;
            }
            seg.push(match pf + pb > 0.0 {
                true => (pf / (pf + pb), pb / (pf + pb)),
                false => (0.5, 0.5),
            });
        }
        dist.clear();
        dist.extend((0..d_len).map(|k| {
            (shape.step.iter().enumerate())
                .map(|(m, hf)| hf * seg[k + m].0 + (1.0 - hf) * seg[k + m].1)
                .product::<f64>()
        }));
        let total: f64 = dist.iter().sum();
        if !(total > 0.0 && total.is_finite()) {
            return None;
        }
        let mean = (dist.iter().enumerate())
            .map(|(k, w)| k as f64 * w)
            .sum::<f64>()
            / total;
        let var = (dist.iter().enumerate())
            .map(|(k, w)| (k as f64 - mean).powi(2) * w)
            .sum::<f64>()
            / total;
        Some((mean - (d_len - 1) as f64 / 2.0, var.max(shape.min_variance)))
    }
}

impl RegionFrame {
    /// The lines of an object with colour `model` about `chart`, with segments of `s` pixels.
    fn modality(
        &self,
        camera: &Camera,
        chart: &PoseChart,
        model: &ColourModel,
        surface: &Shape,
        s: usize,
    ) -> RegionModality {
        let p = &self.params;
        let mut m = RegionModality::empty(camera, chart, p);
        let (shape, mut scratch) = (p.line_shape(), LineScratch::default());
        let sigma2 = (p.sigma * s as f64).powi(2) / shape.min_variance;
        let lines = self.open_lines(camera, &chart.reference, surface);
        for (q, n, c) in lines {
            if let Some((mean, var)) = self.distribution(model, (&c, &n), s, (&shape, &mut scratch))
            {
                m.lines.push(Line {
                    v: q - chart.centre,
                    n,
                    c,
                    mu: mean * s as f64,
                    sigma: (sigma2 * var).sqrt(),
                });
            }
        }
        m.norm = p.n_eff / m.lines.len().max(1) as f64;
        m
    }
}

impl FrameTerm for RegionFrame {
    /// Coarse-to-fine rounds lengthen the correspondence lines' segments.
    fn searches(&self) -> bool {
        true
    }

    /// Object `object`'s lines at the chart's reference pose with segments of
    /// `round(widen · s)` pixels (none before its colours are learned).
    fn prepare(
        &self,
        camera: &Camera,
        chart: &PoseChart,
        object: usize,
        shape: &Shape,
        widen: f64,
    ) -> Box<dyn Modality> {
        let memory = (self.memory.objects.read()).unwrap_or_else(|e| e.into_inner());
        Box::new(match memory.get(object).and_then(Option::as_ref) {
            Some(model) => {
                let s = self.params.segment_at(widen);
                self.modality(camera, chart, model, shape, s)
            }
            None => RegionModality::empty(camera, chart, &self.params),
        })
    }

    /// The mean of `1 − p_f(y)` over the pixels of the points visible at the chart's reference
    /// ([`VisibilityParams`] defaults) that the depth image does not show hidden (the lines'
    /// occlusion test, [`RegionParams::occlusion`], at the point's own pixel).
    fn colour_loss(
        &self,
        camera: &Camera,
        chart: &PoseChart,
        object: usize,
        shape: &Shape,
    ) -> Option<f64> {
        let memory = (self.memory.objects.read()).unwrap_or_else(|e| e.into_inner());
        let model = memory.get(object).and_then(Option::as_ref)?;
        let visible = shape.visible(&chart.reference, camera, &VisibilityParams::default());
        let (sum, n) = (visible.iter())
            .filter_map(|pt| {
                let (u, v) = camera.project_xyz(&pt.p.coords);
                match self.hides(pt.p.z, &Vector2::new(u, v)) {
                    true => None,
                    false => pixel(&self.rgb, u, v),
                }
            })
            .fold((0.0, 0usize), |(sum, n), c| {
                (sum + 1.0 - model.posterior(self.params.bin(c)), n + 1)
            });
        (n > 0).then(|| sum / n as f64)
    }

    /// Blend the colours along the lines of `pose` into object `object`'s histograms (the
    /// first time with rate 1).
    fn learn(&self, camera: &Camera, object: usize, pose: &Isometry3<f64>, shape: &Shape) {
        let (fg, bg) = self.count(camera, pose, shape);
        let mut objects = self
            .memory
            .objects
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if objects.len() <= object {
            objects.resize(object + 1, None);
        }
        let slot = &mut objects[object];
        match slot {
            Some(m) => m.learn(&fg, &bg, self.params.learn_rate),
            None if fg.iter().sum::<f64>() > 0.0 && bg.iter().sum::<f64>() > 0.0 => {
                *slot = Some(ColourModel::first(&fg, &bg));
            }
            None => {}
        }
    }
}

/// A prepared region modality: the lines of one object and round.
pub struct RegionModality {
    cam: Camera,
    centre: Vector3<f64>,
    lines: Vec<Line>,
    /// `lines` in lanes, for the loss and gradient: built from them by the first evaluation that
    /// reads them all.
    lanes: OnceLock<LineLanes>,
    /// The subset of `lines` a stride above 1 reads, in lanes: `(stride, kept, lanes)`, built by
    /// the first evaluation at a stride (a cloud's particles then share it).
    thinned: OnceLock<(usize, usize, LineLanes)>,
    params: RegionParams,
    norm: f64,
}

impl RegionModality {
    /// No lines yet, about `chart`.
    fn empty(camera: &Camera, chart: &PoseChart, params: &RegionParams) -> Self {
        Self {
            cam: *camera,
            centre: chart.centre,
            lines: Vec::new(),
            lanes: OnceLock::new(),
            thinned: OnceLock::new(),
            params: *params,
            norm: 0.0,
        }
    }

    /// Line `l` at `motion` ([`Line::residual`] about this modality's centre).
    fn residual(
        &self,
        l: &Line,
        motion: &RigidMotion,
    ) -> Option<(f64, Vector3<f64>, Vector3<f64>)> {
        l.residual(&self.cam, &self.centre, motion)
    }

    /// What the lines' loss needs besides them, with the loss scale rescaled for the `kept` of
    /// them a stride reads ([`thinned_scale`]).
    fn line_eval(&self, kept: usize) -> LineEval<'_> {
        LineEval {
            cam: &self.cam,
            centre: &self.centre,
            robust: self.params.robust,
            norm: thinned_scale(self.norm, self.lines.len(), kept),
        }
    }
}

/// The 6-row `[g; J_lᵀ (rv × g)]` of a point gradient `g` at `rv`.
fn tangent_row(motion: &RigidMotion, rv: &Vector3<f64>, g: &Vector3<f64>) -> Vector6<f64> {
    let m = motion.jl.tr_mul(&rv.cross(g));
    Vector6::new(g.x, g.y, g.z, m.x, m.y, m.z)
}

impl Modality for RegionModality {
    fn name(&self) -> &str {
        "region"
    }

    fn evaluate(&self, motion: &RigidMotion, grad: Option<&mut GradAccumulator>) -> f64 {
        self.evaluate_thinned(motion, grad, 1)
    }

    fn evaluate_thinned(
        &self,
        motion: &RigidMotion,
        grad: Option<&mut GradAccumulator>,
        stride: usize,
    ) -> f64 {
        let thin = |stride| {
            let (kept, lines) = scattered_subset(&self.lines, stride);
            (stride, kept, LineLanes::new(lines))
        };
        let mut own = None;
        let (kept, lanes) = match stride {
            0 | 1 => (
                self.lines.len(),
                self.lanes.get_or_init(|| LineLanes::new(&self.lines)),
            ),
            _ => {
                // The tracker reads one stride above 1 per prepared modality (the cloud's);
                // another stride builds its subset for the call.
                let mut cached = self.thinned.get_or_init(|| thin(stride));
                if cached.0 != stride {
                    cached = own.insert(thin(stride));
                }
                (cached.1, &cached.2)
            }
        };
        lanes.evaluate(&self.line_eval(kept), motion, grad)
    }

    /// [`Modality::curvature_at`] at `ξ = 0` with unit weights.
    fn curvature(&self) -> Matrix6<f64> {
        let motion = RigidMotion::new(&Vector6::zeros());
        self.hessian(&motion, false)
    }

    /// `H(ξ) = n_eff/N Σ_i w_i g_i g_iᵀ / σ_i²` (module docs), `w_i = ψ(r_i)/r_i`.
    fn curvature_at(&self, motion: &RigidMotion) -> Matrix6<f64> {
        self.hessian(motion, true)
    }

    fn len(&self) -> usize {
        self.lines.len()
    }
}

impl RegionModality {
    /// The Gauss–Newton curvature at `motion`, with IRLS weights when `weighted`.
    fn hessian(&self, motion: &RigidMotion, weighted: bool) -> Matrix6<f64> {
        let mut h = Matrix6::zeros();
        for l in &self.lines {
            let Some((r, rv, dq)) = self.residual(l, motion) else {
                continue;
            };
            let w = match weighted && r.abs() > 1e-12 {
                true => (self.params.robust.psi(r) / r).max(0.0),
                false => 1.0,
            };
            let g = tangent_row(motion, &rv, &dq);
            h += g * g.transpose() * w;
        }
        h * self.norm
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domains::pose::frame::ImageF32;
    use crate::domains::pose::mesh::Mesh;
    use crate::domains::pose::render::{render, Background, RenderObject, RenderOptions};
    use nalgebra::{Translation3, UnitQuaternion};

    fn cam() -> Camera {
        Camera {
            fx: 300.0,
            fy: 300.0,
            cx: 80.0,
            cy: 60.0,
            width: 160,
            height: 120,
        }
    }

    fn truth() -> Isometry3<f64> {
        Isometry3::from_parts(
            Translation3::new(0.004, -0.003, 0.4),
            UnitQuaternion::from_scaled_axis(Vector3::new(0.3, -0.4, 0.2)),
        )
    }

    /// A red 6×4×3 cm box at [`truth`] rendered over a solid blue background.
    fn frame() -> RgbdFrame {
        let mesh = Mesh::cuboid(0.06, 0.04, 0.03).unwrap();
        RgbdFrame::new(0, cam(), Some(red_on_blue(&cam(), &mesh, truth())), None)
    }

    /// `mesh` at `pose` rendered red over a solid blue background.
    pub(crate) fn red_on_blue(camera: &Camera, mesh: &Mesh, pose: Isometry3<f64>) -> RgbImage {
        let opts = RenderOptions {
            background: Background::Solid([40, 70, 200]),
            ..Default::default()
        };
        let object = RenderObject {
            mesh,
            pose,
            color: [210, 40, 30],
        };
        let r = render(camera, &[object], &opts).unwrap();
        RgbImage::from_raw(r.width, r.height, r.rgb.concat()).unwrap()
    }

    fn points() -> Vec<SurfacePoint> {
        Mesh::cuboid(0.06, 0.04, 0.03)
            .unwrap()
            .sample_surface(3000, 7)
    }

    /// The region term of [`frame`] with colours learned at the true pose.
    fn term(params: RegionParams) -> RegionFrame {
        let term = RegionFrame {
            rgb: frame().need_rgb("region").unwrap(),
            depth: None,
            params,
            memory: Arc::new(ColourMemory::default()),
        };
        term.learn(&cam(), 0, &truth(), &Shape::from(points()));
        term
    }

    /// Object 0's modality about `reference` (rotation centre: the model origin), segments of
    /// 2 px.
    fn modality(term: &RegionFrame, reference: Isometry3<f64>) -> RegionModality {
        let chart = PoseChart::new(reference, &Vector3::zeros());
        let memory = term.memory.objects.read().unwrap();
        let model = memory[0].as_ref().unwrap();
        term.modality(&cam(), &chart, model, &Shape::from(points()), 2)
    }

    fn offset(xi: [f64; 6]) -> Isometry3<f64> {
        PoseChart::new(truth(), &Vector3::zeros()).pose(&Vector6::from_row_slice(&xi))
    }

    #[test]
    fn gradient_and_curvature_match_finite_differences() {
        for robust in [Robust::L2, Robust::Cauchy(1.5)] {
            let params = RegionParams {
                robust,
                ..Default::default()
            };
            let term = term(params);
            let m = modality(&term, offset([0.002, -0.001, 0.003, 0.03, -0.02, 0.01]));
            assert!(m.len() > 30, "{} lines", m.len());
            let points = [[0.0015, 0.001, -0.002, -0.02, 0.01, 0.03], [0.0; 6]];
            for xi in points.map(|p| Vector6::from_row_slice(&p)) {
                let mut g = Vector6::zeros();
                m.loss_grad(&xi, &mut g);
                let h = 1e-7;
                let e = |k: usize| Vector6::from_fn(|i, _| if i == k { h } else { 0.0 });
                for k in 0..6 {
                    let fd = (m.loss(&(xi + e(k))) - m.loss(&(xi - e(k)))) / (2.0 * h);
                    // Central differences of a smooth loss: error O(h²) plus rounding.
                    let tol = 1e-5 * g.norm().max(1.0);
                    assert!(
                        (fd - g[k]).abs() <= tol,
                        "{robust:?} {k}: fd {fd} vs {}",
                        g[k]
                    );
                }
                // Gauss–Newton: n_eff/N Σ w_i ∇r_i ∇r_iᵀ with ∇r_i by central differences.
                let motion = RigidMotion::new(&xi);
                let mut h_fd = Matrix6::zeros();
                for l in &m.lines {
                    let r = |x: &Vector6<f64>| m.residual(l, &RigidMotion::new(x)).unwrap().0;
                    let grad =
                        Vector6::from_fn(|k, _| (r(&(xi + e(k))) - r(&(xi - e(k)))) / (2.0 * h));
                    let r0 = r(&xi);
                    let w = if r0.abs() > 1e-12 {
                        robust.psi(r0) / r0
                    } else {
                        1.0
                    };
                    h_fd += grad * grad.transpose() * w;
                }
                h_fd *= m.norm;
                let h_an = m.curvature_at(&motion);
                let err = (h_an - h_fd).norm() / h_fd.norm();
                assert!(err < 1e-5, "{robust:?}: relative curvature error {err}");
            }
        }
    }

    /// The lines in lanes give the loss and gradient of the line-by-line sum over
    /// [`RegionModality::residual`] bit for bit, at strides 1–3 (the cached subset and another
    /// stride after it), with every kernel, and with the camera plane cutting the box (lines
    /// behind it are left out).
    #[test]
    fn lanes_give_the_line_by_line_bits() {
        let m0 = modality(&term(RegionParams::default()), truth());
        let by_line = |m: &RegionModality, motion: &RigidMotion, stride: usize| {
            let (kept, lines) = super::super::scattered_subset(&m.lines, stride);
            let e = m.line_eval(kept);
            let mut acc = GradAccumulator::default();
            let l =
                super::super::line_lanes::evaluate_line_by_line(lines, &e, motion, Some(&mut acc));
            (l, acc.finish(motion))
        };
        let small = Vector6::new(0.0015, 0.001, -0.002, -0.02, 0.01, 0.03);
        // The box's centre 1 mm in front of the camera plane: about half its lines behind it.
        let cut = Vector6::new(0.0, 0.0, 1e-3 - 0.4, 0.0, 0.0, 0.0);
        let behind = (m0.lines.iter())
            .filter(|l| m0.residual(l, &RigidMotion::new(&cut)).is_none())
            .count();
        assert!(
            behind > 0 && behind < m0.lines.len(),
            "{behind} lines behind"
        );
        for robust in [
            Robust::L2,
            Robust::Huber(0.8),
            Robust::Tukey(2.0),
            Robust::Cauchy(1.5),
        ] {
            let m = RegionModality {
                params: RegionParams {
                    robust,
                    ..m0.params
                },
                lanes: OnceLock::new(),
                thinned: OnceLock::new(),
                lines: m0.lines.clone(),
                ..m0
            };
            for (xi, stride) in [(small, 1), (small, 2), (cut, 2), (small, 3), (cut, 1)] {
                let motion = RigidMotion::new(&xi);
                let mut acc = GradAccumulator::default();
                let l = m.evaluate_thinned(&motion, Some(&mut acc), stride);
                let (want_l, want_g) = by_line(&m, &motion, stride);
                let at = format!("{robust:?}, stride {stride}, ξ = {xi:?}");
                assert_eq!(l.to_bits(), want_l.to_bits(), "{at}");
                let g = acc.finish(&motion);
                assert_eq!(g.map(f64::to_bits), want_g.map(f64::to_bits), "{at}");
                assert!(l > 0.0, "{at}");
            }
        }
    }

    /// A stride reads a [`super::super::scattered`] subset of the lines, rescaled to all of
    /// them ([`super::super::check_thinned`]), to rounding. The lines come in grid order, left
    /// and right contour cells alternating, so the subset must not follow that order: at stride
    /// 2 the kept lines' mean outward normal stays near 0 (measured 0.05 of a unit normal; every
    /// other line, the first rule, reads 0.34, mostly one side), and about half are kept.
    #[test]
    fn a_stride_reads_a_scattered_subset_of_lines_rescaled_to_all() {
        let term = term(RegionParams::default());
        let m = modality(&term, offset([0.002, -0.001, 0.003, 0.03, -0.02, 0.01]));
        let xi = Vector6::from_row_slice(&[0.0015, 0.001, -0.002, -0.02, 0.01, 0.03]);
        let motion = RigidMotion::new(&xi);
        let n = m.len();
        let rho = |l: &Line| m.params.robust.rho(m.residual(l, &motion).unwrap().0);
        let kept = |s| super::super::scattered_subset(&m.lines, s);
        for stride in [2, 3] {
            let (count, lines) = kept(stride);
            let want = m.norm * (n as f64 / count as f64) * lines.map(rho).sum::<f64>();
            let got = super::super::check_thinned(&m, &xi, stride);
            assert!((got - want).abs() <= 1e-12 * want.abs(), "{got} vs {want}");
        }
        let mean_normal =
            |ls: Vec<&Line>| ls.iter().map(|l| l.n).sum::<Vector2<f64>>().norm() / ls.len() as f64;
        let scattered = mean_normal(kept(2).1.collect());
        let every_other = mean_normal(m.lines.iter().step_by(2).collect());
        println!("{n} lines; mean normal of stride 2: {scattered}, every other: {every_other}");
        assert!(
            scattered < 0.2 && every_other > 0.2,
            "{scattered}, {every_other}"
        );
        assert!(
            (n / 3..=2 * n / 3).contains(&kept(2).0),
            "{} of {n}",
            kept(2).0
        );
    }

    #[test]
    fn loss_is_least_at_the_true_pose() {
        let term = term(RegionParams::default());
        // About the truth: every move of about 1.5 px at the contour costs (a contour position
        // is resolved to one segment, 2 px, per line: smaller moves can be within its noise;
        // depth moves change the 45 px silhouette only by its scale, so they step 30 mm).
        let m = modality(&term, truth());
        let zero = m.loss(&Vector6::zeros());
        for k in 0..6 {
            let step = [0.002, 0.002, 0.03, 0.06, 0.06, 0.06][k];
            for sign in [-1.0, 1.0] {
                let xi = Vector6::from_fn(|i, _| if i == k { sign * step } else { 0.0 });
                assert!(
                    m.loss(&xi) > zero,
                    "axis {k} sign {sign}: {} ≤ {zero}",
                    m.loss(&xi)
                );
            }
        }
        // About a reference 4 mm off in x and y: the lines still find the contour, and a scan
        // from the reference towards the truth is least within 1 mm of the truth.
        let reference = offset([0.004, -0.004, 0.0, 0.0, 0.0, 0.0]);
        let m = modality(&term, reference);
        let chart = PoseChart::new(reference, &Vector3::zeros());
        let back = chart.coords(&truth());
        let scan: Vec<(f64, f64)> = (0..=40)
            .map(|i| {
                let t = i as f64 / 20.0;
                (t, m.loss(&(back * t)))
            })
            .collect();
        let best = scan
            .iter()
            .fold((0.0, f64::INFINITY), |a, b| if b.1 < a.1 { *b } else { a });
        let miss = (best.0 - 1.0).abs() * back.norm();
        assert!(
            miss < 0.001,
            "scan minimum {miss} m from the truth ({scan:?})"
        );
    }

    #[test]
    fn occluded_lines_are_dropped_and_teach_nothing() {
        // A depth image with a flat occluder 10 cm in front of the box's left half (the box
        // stands at 0.4 m): the lines there are dropped, the others kept.
        let mut f = frame();
        let (w, h) = (cam().width as usize, cam().height as usize);
        let data = (0..w * h)
            .map(|i| if i % w < 80 { 0.3 } else { 0.0 })
            .collect();
        f.depth = Some(Arc::new(ImageF32 {
            width: w,
            height: h,
            data,
        }));
        let params = RegionParams::default();
        let open = term(params);
        let memory = params.memory().unwrap();
        let hidden = params.prepare_tracked(&f, &memory).unwrap();
        hidden.learn(&cam(), 0, &truth(), &Shape::from(points()));
        let chart = PoseChart::new(truth(), &Vector3::zeros());
        let all = modality(&open, truth());
        let kept = hidden.prepare(&cam(), &chart, 0, &Shape::from(points()), 1.0);
        let left = all.lines.iter().filter(|l| l.c.x < 80.0 - 4.0).count();
        assert!(left > 10, "{left} lines on the left");
        assert!(
            kept.len() + left <= all.len() && kept.len() > 10,
            "{} of {}",
            kept.len(),
            all.len()
        );
        // An occluder behind the object (depth beyond it) hides nothing.
        let mut behind = frame();
        behind.depth = Some(Arc::new(ImageF32 {
            width: w,
            height: h,
            data: vec![0.6; w * h],
        }));
        let memory = params.memory().unwrap();
        let t = params.prepare_tracked(&behind, &memory).unwrap();
        t.learn(&cam(), 0, &truth(), &Shape::from(points()));
        assert_eq!(
            t.prepare(&cam(), &chart, 0, &Shape::from(points()), 1.0)
                .len(),
            all.len()
        );
    }

    /// The colour loss is low where the red box shows, high on the blue background it was
    /// learned against, unknown before learning, and leaves out what the depth shows hidden.
    #[test]
    fn the_colour_loss_tells_the_object_from_its_surroundings() {
        let params = RegionParams::default();
        let t = term(params);
        let at = |t: &RegionFrame, pose: Isometry3<f64>, object: usize| {
            let chart = PoseChart::new(pose, &Vector3::zeros());
            t.colour_loss(&cam(), &chart, object, &Shape::from(points()))
        };
        let here = at(&t, truth(), 0).unwrap();
        // The learned posterior of the box's red is near 1 (blue never appears inside).
        assert!(here < 0.1, "{here}");
        // 6 cm sideways at 0.4 m (45 px): mostly off the box, whose projection reaches up to
        // 29 px from its centre, onto blue (0.88 measured).
        let away = at(&t, offset([0.06, 0.0, 0.0, 0.0, 0.0, 0.0]), 0).unwrap();
        assert!(away > 0.8, "{away}");
        // Object 1 has no colour model, nor has object 0 before learning.
        assert_eq!(at(&t, truth(), 1), None);
        let fresh = RegionFrame {
            memory: Arc::new(ColourMemory::default()),
            ..term(params)
        };
        assert_eq!(at(&fresh, truth(), 0), None);
        // Depth 10 cm in front of everything hides every point: nothing to judge; depth behind
        // the box hides nothing.
        let (w, h) = (cam().width as usize, cam().height as usize);
        let with_depth = |d: f32| RegionFrame {
            depth: Some(Arc::new(ImageF32 {
                width: w,
                height: h,
                data: vec![d; w * h],
            })),
            ..term(params)
        };
        assert_eq!(at(&with_depth(0.3), truth(), 0), None);
        assert_eq!(at(&with_depth(0.6), truth(), 0), Some(here));
    }

    /// The truncating nearest-pixel lookup reads the pixel `round` names, and nothing outside
    /// the image (NaN, far off, just past either border), over a grid of positions that crosses
    /// both borders.
    #[test]
    fn the_nearest_pixel_is_the_rounded_position() {
        let mut rgb = RgbImage::new(7, 5);
        for (x, y, p) in rgb.enumerate_pixels_mut() {
            *p = image::Rgb([x as u8, y as u8, 0]);
        }
        let reference = |u: f64, v: f64| {
            let (x, y) = (u.round(), v.round());
            let inside = x >= 0.0 && y >= 0.0 && x < 7.0 && y < 5.0;
            inside.then_some([x as u8, y as u8, 0])
        };
        for i in -30..=100 {
            for j in -30..=80 {
                // Steps of 0.09 px: never exactly on a half-integer but the borders' −0.45/6.57.
                let (u, v) = (i as f64 * 0.09 - 0.3, j as f64 * 0.09 - 0.3);
                assert_eq!(pixel(&rgb, u, v), reference(u, v), "at ({u}, {v})");
            }
        }
        for (u, v) in [
            (f64::NAN, 1.0),
            (1.0, f64::NAN),
            (-0.51, 1.0),
            (6.5, 1.0),
            (1e300, 1.0),
        ] {
            assert_eq!(pixel(&rgb, u, v), None, "at ({u}, {v})");
        }
    }

    /// A colour model's posterior table follows its histograms through the first and later
    /// learning steps: `h_f / (h_f + h_b)` in every bin, ½ in a bin both leave empty.
    #[test]
    fn the_posterior_table_follows_the_histograms() {
        let fg = [3.0, 0.0, 1.0, 0.0];
        let bg = [1.0, 2.0, 1.0, 0.0];
        let mut m = ColourModel::first(&fg, &bg);
        let check = |m: &ColourModel| {
            for bin in 0..4 {
                let (f, b) = (m.fg[bin], m.bg[bin]);
                let want = if f + b > 0.0 { f / (f + b) } else { 0.5 };
                assert_eq!(m.posterior(bin), want, "bin {bin}");
            }
        };
        check(&m);
        assert_eq!(m.posterior(3), 0.5);
        m.learn(&[0.0, 4.0, 0.0, 0.0], &[2.0, 0.0, 0.0, 0.0], (0.2, 0.3));
        check(&m);
        assert!(m.posterior(1) > 0.0 && m.posterior(0) < 0.75);
    }

    #[test]
    fn a_frame_without_colour_is_refused() {
        let mut f = frame();
        f.rgb = None;
        let err = RegionParams::default()
            .prepare_frame(&f)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("region") && err.contains("RGB"), "{err}");
        // With colour, the tracker path learns and prepares lines.
        let params = RegionParams::default();
        let memory = params.memory().unwrap();
        let term = params.prepare_tracked(&frame(), &memory).unwrap();
        let chart = PoseChart::new(truth(), &Vector3::zeros());
        assert!(term
            .prepare(&cam(), &chart, 0, &Shape::from(points()), 1.0)
            .is_empty());
        term.learn(&cam(), 0, &truth(), &Shape::from(points()));
        assert!(
            term.prepare(&cam(), &chart, 0, &Shape::from(points()), 1.0)
                .len()
                > 30
        );
    }
}
