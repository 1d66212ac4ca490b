//! The sensor model: Kinect-like depth (noise `σ(z) = σ₁·z²`, quantisation, dropouts, holes
//! at discontinuities and grazing angles) and RGB pixel noise over the rendered images.

use super::*;

/// The sensor model applied to the rendered images.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SensorNoise {
    /// Depth noise at 1 m, metres: `σ(z) = depth_sigma_1m · z²` (z in metres).
    pub depth_sigma_1m: f64,
    /// Probability that a valid depth pixel drops out at random.
    pub dropout: f64,
    /// Depth step (metres) to a 4-neighbour, or a neighbour without surface, that marks a
    /// discontinuity.
    pub edge_jump: f64,
    /// Probability of a hole at a discontinuity.
    pub edge_hole: f64,
    /// Below this cosine of incidence holes become likely: `p = 1 − cos/grazing_cos`.
    pub grazing_cos: f64,
    /// RGB pixel noise σ in grey levels.
    pub rgb_sigma: f64,
}

impl Default for SensorNoise {
    /// Kinect-like: σ = 1.5 mm at 1 m, 1 % dropouts, holes at 60 % of discontinuity pixels and at
    /// grazing angles (cos < 0.25), RGB σ = 2.
    fn default() -> Self {
        SensorNoise {
            depth_sigma_1m: 0.0015,
            dropout: 0.01,
            edge_jump: 0.01,
            edge_hole: 0.6,
            grazing_cos: 0.25,
            rgb_sigma: 2.0,
        }
    }
}

impl SensorNoise {
    /// An ideal sensor: exact depth (up to quantisation), no holes, no RGB noise.
    pub fn none() -> Self {
        SensorNoise {
            depth_sigma_1m: 0.0,
            dropout: 0.0,
            edge_jump: f64::INFINITY,
            edge_hole: 0.0,
            grazing_cos: 0.0,
            rgb_sigma: 0.0,
        }
    }
}

/// Depth as a Kinect-like sensor sees it, parallel over rows with one stream per (frame, row):
/// a pixel of true depth `z` is a hole with probability `1 − (1 − p_drop)(1 − p_edge)(1 − p_graze)`,
/// else reads `z + σ₁·z²·ε` quantised to `depth_scale`.
pub(super) fn sensor_depth(r: &Rendered, cfg: &SynthConfig, frame: usize) -> Vec<f32> {
    let w = r.width as usize;
    let mut out = vec![0.0f32; r.depth.len()];
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        let mut rng = stream(cfg.seed, 2 * frame as u64, y as u64);
        for (x, d) in row.iter_mut().enumerate() {
            *d = sensor_pixel(r, &cfg.noise, cfg.depth_scale, x, y, &mut rng);
        }
    });
    out
}

/// One depth pixel of the sensor model (see [`sensor_depth`]).
pub(super) fn sensor_pixel(
    r: &Rendered,
    noise: &SensorNoise,
    depth_scale: f64,
    x: usize,
    y: usize,
    rng: &mut StreamRng,
) -> f32 {
    let i = y * r.width as usize + x;
    let z = r.depth[i] as f64;
    if z <= 0.0 {
        return 0.0;
    }
    let (u, eps): (f64, f64) = (rng.random(), rng.sample(StandardNormal));
    let mut keep = 1.0 - noise.dropout;
    if is_discontinuity(r, x, y, noise.edge_jump) {
        keep *= 1.0 - noise.edge_hole;
    }
    let cos = r.cos_incidence[i] as f64;
    if cos < noise.grazing_cos {
        keep *= cos / noise.grazing_cos;
    }
    if u >= keep {
        return 0.0;
    }
    quantise(z + noise.depth_sigma_1m * z * z * eps, depth_scale)
}

/// Depth `z` (metres) as stored at `depth_scale` mm per unit: `round(z·1000/s)·s/1000`, at least one
/// unit (0 means missing); beyond 65535 units the sensor is out of range and reads 0.
pub fn quantise(z: f64, depth_scale: f64) -> f32 {
    let raw = (z * 1000.0 / depth_scale).round().max(1.0);
    if raw > u16::MAX as f64 {
        return 0.0;
    }
    (raw * depth_scale / 1000.0) as f32
}

/// Whether a 4-neighbour of `(x, y)` lies more than `jump` metres away in depth or has no surface.
pub(super) fn is_discontinuity(r: &Rendered, x: usize, y: usize, jump: f64) -> bool {
    let (w, h) = (r.width as usize, r.height as usize);
    let z = r.depth[y * w + x] as f64;
    let neighbours = [
        (x.wrapping_sub(1), y),
        (x + 1, y),
        (x, y.wrapping_sub(1)),
        (x, y + 1),
    ];
    neighbours
        .iter()
        .filter(|(nx, ny)| *nx < w && *ny < h)
        .any(|&(nx, ny)| (r.depth[ny * w + nx] as f64 - z).abs() > jump)
}

/// RGB with Gaussian pixel noise of σ `rgb_sigma` (one stream per (frame, row)).
pub(super) fn sensor_rgb(r: &Rendered, cfg: &SynthConfig, frame: usize) -> image::RgbImage {
    let w = r.width as usize;
    let mut data = vec![0u8; 3 * r.rgb.len()];
    data.par_chunks_mut(3 * w).enumerate().for_each(|(y, row)| {
        let mut rng = stream(cfg.seed, 2 * frame as u64 + 1, y as u64);
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            for (c, v) in px.iter_mut().enumerate() {
                let eps: f64 = if cfg.noise.rgb_sigma > 0.0 {
                    rng.sample(StandardNormal)
                } else {
                    0.0
                };
                *v = (r.rgb[y * w + x][c] as f64 + cfg.noise.rgb_sigma * eps)
                    .round()
                    .clamp(0.0, 255.0) as u8;
            }
        }
    });
    image::RgbImage::from_raw(r.width, r.height, data)
        .unwrap_or_else(|| image::RgbImage::new(r.width, r.height))
}
