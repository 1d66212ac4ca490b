//! Synthetic BOP-format RGB-D recordings rendered with [`crate::domains::pose::render`].
//!
//! A [`Synthesizer`] places objects (built-in primitives or meshes of a BOP model folder) 0.5–0.95 m
//! in front of a YCB-V-like camera, draws their trajectories for a [`Motion`] profile, and renders
//! each frame on demand into a [`SynthFrame`]: RGB with pixel noise over a textured background,
//! depth as a Kinect-like sensor sees it (noise `σ(z) = σ₁·z²`, quantisation, holes), visibility
//! masks and ground truth. [`generate`] writes the same frames as a BOP scene:
//!
//! ```text
//! OUT/models/obj_XXXXXX.ply, OUT/models/models_info.json
//! OUT/<split>/<scene:06>/{rgb,depth}/NNNNNN.png, mask_visib/NNNNNN_KKKKKK.png,
//!                        scene_camera.json, scene_gt.json, scene_gt_info.json
//! ```
//! so that `BopDataset::open(OUT)?.scene(split, scene)` reads it back. Everything is
//! deterministic per seed: trajectories, noise and texture come from [`crate::core::filter::rng::stream`]
//! keyed by (seed, frame, row or object), independent of thread scheduling.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use nalgebra::{Isometry3, Translation3, UnitQuaternion, Vector3};
use rand::Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use crate::core::error::{Error, Result};
use crate::core::filter::rng::{stream, StreamRng};
use crate::core::geometry::Camera;
use crate::domains::pose::bop::{
    self, BopDataset, ContinuousSymmetry, DepthImage, Frame, FrameCamera, GtPose, ModelInfo,
};
use crate::domains::pose::mesh::Mesh;
use crate::domains::pose::render::{Background, RenderObject, RenderOptions, Rendered, Renderer};

// ---------------------------------------------------------------------------------------------
// Configuration

/// Where an object's mesh comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectSource {
    /// Built-in box, 100 × 70 × 50 mm (three distinct sides, so only 180° symmetries).
    Box,
    /// Built-in closed cylinder, radius 35 mm, height 110 mm.
    Cylinder,
    /// Object `obj_XXXXXX.ply` of a BOP model folder (`SynthConfig::models_dir`).
    Model(u32),
}

impl FromStr for ObjectSource {
    type Err = String;

    /// `box`, `cylinder`, or a BOP object id such as `3`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "box" => Ok(ObjectSource::Box),
            "cylinder" => Ok(ObjectSource::Cylinder),
            other => other.parse().map(ObjectSource::Model).map_err(|_| {
                format!("object '{s}': expected 'box', 'cylinder' or a BOP object id")
            }),
        }
    }
}

impl fmt::Display for ObjectSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectSource::Box => write!(f, "box"),
            ObjectSource::Cylinder => write!(f, "cylinder"),
            ObjectSource::Model(id) => write!(f, "model {id}"),
        }
    }
}

/// Motion profile of the objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Motion {
    /// Smooth: constant speed 2 mm and 0.2° per frame, direction drifting slowly (like the real
    /// YCB-V clips, which move 1–2 mm and 0.1–0.2° per frame).
    Slow,
    /// Fast and jerky, like a quick hand-held or robot motion at 30 Hz: damped random
    /// accelerations plus random jerks, about 10–20 mm and 2–5° per frame on average (0.3–0.6 m/s,
    /// 60–150°/s), up to 35 mm and 9°, with an occluder bar sweeping in front by default.
    Fast,
    /// The earlier, more violent "fast" profile: about 30 mm and 7° per frame on average (~1 m/s
    /// sustained, up to 60 mm and 15° per frame, i.e. 1.8 m/s and 450°/s) — a thrown object more
    /// than a hand-held one; kept as a stress test. Occluder bar as for `Fast`.
    Extreme,
}

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

/// Everything that defines a synthetic sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthConfig {
    /// Output dataset directory (for [`generate`]).
    pub out: PathBuf,
    /// The objects, in GT order; the same source may appear more than once (instances).
    pub objects: Vec<ObjectSource>,
    /// BOP model folder holding `obj_XXXXXX.ply` for [`ObjectSource::Model`] objects.
    pub models_dir: Option<PathBuf>,
    /// Number of frames (image ids `1..=frames`).
    pub frames: usize,
    /// Motion profile.
    pub motion: Motion,
    /// Seed of trajectories, noise and background texture.
    pub seed: u64,
    /// Intrinsics and image size.
    pub camera: Camera,
    /// Millimetres per raw depth unit in the depth PNGs (`depth_mm = raw · depth_scale`).
    pub depth_scale: f64,
    /// Sensor model.
    pub noise: SensorNoise,
    /// Occluder bar sweeping in front of the objects; `None` = only for [`Motion::Fast`] and
    /// [`Motion::Extreme`].
    pub occluder: Option<bool>,
    /// Split directory name.
    pub split: String,
    /// Scene id.
    pub scene_id: u32,
}

impl SynthConfig {
    /// Defaults: a box and a cylinder, 50 slow frames, seed 0, the YCB-V camera at 640×480,
    /// depth_scale 0.1 mm, Kinect-like noise, split `test`, scene 1.
    pub fn new(out: impl Into<PathBuf>) -> SynthConfig {
        SynthConfig {
            out: out.into(),
            objects: vec![ObjectSource::Box, ObjectSource::Cylinder],
            models_dir: None,
            frames: 50,
            motion: Motion::Slow,
            seed: 0,
            camera: ycbv_camera(640, 480),
            depth_scale: 0.1,
            noise: SensorNoise::default(),
            occluder: None,
            split: "test".into(),
            scene_id: 1,
        }
    }

    /// Whether the occluder bar is rendered.
    pub fn occluder_enabled(&self) -> bool {
        self.occluder
            .unwrap_or(matches!(self.motion, Motion::Fast | Motion::Extreme))
    }

    fn validate(&self) -> Result<()> {
        if self.objects.is_empty() {
            return Err(Error::param("objects", "[]", "need at least one object"));
        }
        if self.frames == 0 || self.frames > 999_999 {
            return Err(Error::param("frames", self.frames, "must be in 1..=999999"));
        }
        if !(self.depth_scale.is_finite() && self.depth_scale > 0.0) {
            return Err(Error::param(
                "depth_scale",
                self.depth_scale,
                "must be positive",
            ));
        }
        let n = &self.noise;
        let probs = [("dropout", n.dropout), ("edge_hole", n.edge_hole)];
        if let Some((name, p)) = probs.iter().find(|(_, p)| !(0.0..=1.0).contains(p)) {
            return Err(Error::param(*name, p, "a probability must be in [0, 1]"));
        }
        let sigmas = [n.depth_sigma_1m, n.rgb_sigma, n.grazing_cos];
        if sigmas.iter().any(|s| !(s.is_finite() && *s >= 0.0)) {
            return Err(Error::param(
                "noise",
                format!("{n:?}"),
                "σ and grazing_cos must be ≥ 0",
            ));
        }
        Ok(())
    }
}

/// The YCB-V camera (fx 1066.778, fy 1067.487, cx 312.9869, cy 241.3109 at 640×480) resampled
/// to `width × height`: `f' = s·f`, `c' = s·(c + ½) − ½` per axis (pixel centres at integers).
pub fn ycbv_camera(width: u32, height: u32) -> Camera {
    let (sx, sy) = (width as f64 / 640.0, height as f64 / 480.0);
    Camera {
        fx: 1066.778 * sx,
        fy: 1067.487 * sy,
        cx: sx * (312.9869 + 0.5) - 0.5,
        cy: sy * (241.3109 + 0.5) - 0.5,
        width,
        height,
    }
}

// ---------------------------------------------------------------------------------------------
// Frames

/// One synthetic frame, as a loader would return it plus what only a simulator knows.
#[derive(Clone, Debug)]
pub struct SynthFrame {
    /// RGB, sensor depth (metres, 0 = hole; quantised to `depth_scale`) and camera, as
    /// [`bop::Scene::load_frame`] returns them after a round trip through the files.
    pub frame: Frame,
    /// Millimetres per raw depth unit.
    pub depth_scale: f64,
    /// Ground-truth poses in object order.
    pub gt: Vec<GtPose>,
    /// Visible object per pixel: `k + 1` for `gt[k]`, `0` for background and the occluder.
    pub labels: Vec<u16>,
    /// Noise-free rendered depth (metres, 0 = background or occluder-free background).
    pub depth_clean: DepthImage,
    /// Visibility statistics of each object (BOP `scene_gt_info`).
    pub info: Vec<GtInfo>,
}

/// Visibility statistics of one object in one frame, as BOP's `scene_gt_info.json`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GtInfo {
    /// Pixels of the object's silhouette when rendered alone.
    pub px_count_all: usize,
    /// Visible pixels (not occluded).
    pub px_count_visib: usize,
    /// Visible pixels with a valid sensor depth.
    pub px_count_valid: usize,
    /// `px_count_visib / px_count_all` (0 when the object is out of view).
    pub visib_fract: f64,
    /// Bounding box `[x, y, w, h]` of the full silhouette (`[-1, -1, 0, 0]` when empty).
    pub bbox_obj: [i64; 4],
    /// Bounding box of the visible pixels.
    pub bbox_visib: [i64; 4],
}

impl SynthFrame {
    /// The BOP image id.
    pub fn im_id(&self) -> u32 {
        self.frame.im_id
    }

    /// Visibility mask of object `k` as an 8-bit image (255 = visible), as in `mask_visib/`.
    pub fn mask_visib(&self, k: usize) -> image::GrayImage {
        let id = k as u16 + 1;
        let data = self
            .labels
            .iter()
            .map(|&l| if l == id { 255 } else { 0 })
            .collect();
        let (w, h) = (self.frame.camera.width, self.frame.camera.height);
        image::GrayImage::from_raw(w, h, data).unwrap_or_else(|| image::GrayImage::new(w, h))
    }
}

/// Per-frame translation and rotation steps over all objects of a sequence.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct MotionStats {
    /// Mean translation step, mm per frame.
    pub mean_mm: f64,
    /// Largest translation step, mm.
    pub max_mm: f64,
    /// Mean rotation step, degrees per frame.
    pub mean_deg: f64,
    /// Largest rotation step, degrees.
    pub max_deg: f64,
}

impl MotionStats {
    /// Steps `‖t_{k+1} − t_k‖` and `∠(R_{k+1} R_kᵀ)` along each trajectory.
    pub fn of(trajectories: &[Vec<Isometry3<f64>>]) -> MotionStats {
        let steps: Vec<(f64, f64)> = trajectories
            .iter()
            .flat_map(|tr| tr.windows(2))
            .map(|w| {
                let dt = (w[1].translation.vector - w[0].translation.vector).norm() * 1e3;
                (dt, w[1].rotation.angle_to(&w[0].rotation).to_degrees())
            })
            .collect();
        let n = steps.len().max(1) as f64;
        MotionStats {
            mean_mm: steps.iter().map(|s| s.0).sum::<f64>() / n,
            max_mm: steps.iter().map(|s| s.0).fold(0.0, f64::max),
            mean_deg: steps.iter().map(|s| s.1).sum::<f64>() / n,
            max_deg: steps.iter().map(|s| s.1).fold(0.0, f64::max),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Synthesizer

/// One object instance of the scene.
#[derive(Clone, Copy, Debug)]
struct Instance {
    obj_id: u32,
    mesh: usize,
    color: [u8; 3],
}

/// A rendered scene description: meshes, trajectories, renderer; frames are rendered on demand
/// (and independently, so in any order or in parallel).
#[derive(Debug)]
pub struct Synthesizer {
    cfg: SynthConfig,
    /// Distinct object meshes (metres) with their source and object id.
    models: Vec<(ObjectSource, u32, Mesh)>,
    instances: Vec<Instance>,
    /// `trajectories[k][frame]`: model → camera pose of instance `k`.
    trajectories: Vec<Vec<Isometry3<f64>>>,
    /// The occluder mesh and its poses, when enabled.
    occluder: Option<(Mesh, Vec<Isometry3<f64>>)>,
    renderer: Renderer,
}

/// Distinct base colours of object instances (cycled).
const PALETTE: [[u8; 3]; 6] = [
    [210, 70, 50],
    [60, 170, 80],
    [60, 100, 210],
    [220, 190, 50],
    [170, 70, 180],
    [50, 180, 180],
];

/// RNG stream "step" for trajectories (frame-indexed streams use the frame number).
const TRAJECTORY_STREAM: u64 = u64::MAX - 1;

impl Synthesizer {
    /// Loads or builds the meshes and draws all trajectories. Errors on an invalid config, a
    /// missing model folder for numeric ids, or an unreadable mesh.
    pub fn new(cfg: &SynthConfig) -> Result<Synthesizer> {
        cfg.validate()?;
        let models = load_models(cfg)?;
        let instances: Vec<Instance> = cfg
            .objects
            .iter()
            .enumerate()
            .map(|(k, src)| {
                let mesh = models.iter().position(|(s, _, _)| s == src).unwrap_or(0);
                Instance {
                    obj_id: models[mesh].1,
                    mesh,
                    color: PALETTE[k % PALETTE.len()],
                }
            })
            .collect();
        let homes = home_positions(cfg, instances.len());
        let bounds = ViewBounds::of(&cfg.camera);
        let trajectories = homes
            .iter()
            .enumerate()
            .map(|(k, home)| {
                let mut rng = stream(cfg.seed, TRAJECTORY_STREAM, k as u64);
                trajectory(cfg.motion, *home, cfg.frames, &bounds, &mut rng)
            })
            .collect();
        let occluder = if cfg.occluder_enabled() {
            Some((
                Mesh::cuboid(0.02, 0.4, 0.03)?,
                occluder_poses(&cfg.camera, cfg.frames),
            ))
        } else {
            None
        };
        let opts = RenderOptions {
            background: Background::Texture { seed: cfg.seed },
            ..Default::default()
        };
        let renderer = Renderer::new(&cfg.camera, &opts)?;
        Ok(Synthesizer {
            cfg: cfg.clone(),
            models,
            instances,
            trajectories,
            occluder,
            renderer,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SynthConfig {
        &self.cfg
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.cfg.frames
    }

    /// Whether the sequence has no frames (never, for a valid config).
    pub fn is_empty(&self) -> bool {
        self.cfg.frames == 0
    }

    /// The BOP object id of each instance, in GT order.
    pub fn obj_ids(&self) -> Vec<u32> {
        self.instances.iter().map(|i| i.obj_id).collect()
    }

    /// The distinct models: source, object id and mesh (metres).
    pub fn models(&self) -> impl Iterator<Item = (ObjectSource, u32, &Mesh)> {
        self.models.iter().map(|(s, id, m)| (*s, *id, m))
    }

    /// Ground truth of frame `k` (0-based; the image id is `k + 1`).
    pub fn gt(&self, k: usize) -> Vec<GtPose> {
        let pose = |i: usize| self.trajectories[i][k.min(self.cfg.frames - 1)];
        self.instances
            .iter()
            .enumerate()
            .map(|(i, inst)| GtPose {
                obj_id: inst.obj_id,
                pose: pose(i),
            })
            .collect()
    }

    /// Per-frame motion statistics of the whole sequence.
    pub fn motion_stats(&self) -> MotionStats {
        MotionStats::of(&self.trajectories)
    }

    /// Renders frame `k` (0-based): objects, occluder, sensor noise, visibility statistics.
    pub fn frame(&self, k: usize) -> Result<SynthFrame> {
        if k >= self.cfg.frames {
            return Err(Error::param(
                "frame",
                k,
                format!("the sequence has {} frames", self.cfg.frames),
            ));
        }
        let gt = self.gt(k);
        let mut objects: Vec<RenderObject> = self
            .instances
            .iter()
            .zip(&gt)
            .map(|(inst, g)| RenderObject {
                mesh: &self.models[inst.mesh].2,
                pose: g.pose,
                color: inst.color,
            })
            .collect();
        if let Some((mesh, poses)) = &self.occluder {
            objects.push(RenderObject {
                mesh,
                pose: poses[k],
                color: [70, 70, 80],
            });
        }
        let r = self.renderer.render(&objects)?;
        let n_obj = self.instances.len() as u16;
        let labels: Vec<u16> = r
            .index
            .iter()
            .map(|&i| if i <= n_obj { i } else { 0 })
            .collect();
        let depth = sensor_depth(&r, &self.cfg, k);
        let info = self.gt_info(&objects[..gt.len()], &labels, &depth)?;
        let camera = self.cfg.camera;
        let depth_image = |data| DepthImage {
            width: camera.width,
            height: camera.height,
            data,
        };
        let rgb = sensor_rgb(&r, &self.cfg, k);
        Ok(SynthFrame {
            frame: Frame {
                im_id: k as u32 + 1,
                rgb,
                depth: depth_image(depth),
                camera,
            },
            depth_scale: self.cfg.depth_scale,
            gt,
            labels,
            depth_clean: depth_image(r.depth),
            info,
        })
    }

    /// All frames in order, rendered lazily.
    pub fn frames(&self) -> impl Iterator<Item = Result<SynthFrame>> + '_ {
        (0..self.len()).map(|k| self.frame(k))
    }

    /// Visibility statistics: each object rendered alone gives its full silhouette.
    fn gt_info(
        &self,
        objects: &[RenderObject],
        labels: &[u16],
        depth: &[f32],
    ) -> Result<Vec<GtInfo>> {
        let w = self.cfg.camera.width as usize;
        objects
            .iter()
            .enumerate()
            .map(|(k, obj)| {
                let alone = self.renderer.render(std::slice::from_ref(obj))?;
                let id = k as u16 + 1;
                let all: Vec<usize> = (0..labels.len()).filter(|&i| alone.index[i] == 1).collect();
                let visib: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == id).collect();
                let valid = visib.iter().filter(|&&i| depth[i] > 0.0).count();
                Ok(GtInfo {
                    px_count_all: all.len(),
                    px_count_visib: visib.len(),
                    px_count_valid: valid,
                    visib_fract: if all.is_empty() {
                        0.0
                    } else {
                        visib.len() as f64 / all.len() as f64
                    },
                    bbox_obj: bbox(&all, w),
                    bbox_visib: bbox(&visib, w),
                })
            })
            .collect()
    }
}

/// Bounding box `[x, y, w, h]` of pixel indices in an image of width `w` (BOP: `[-1,-1,0,0]` if empty).
fn bbox(pixels: &[usize], w: usize) -> [i64; 4] {
    if pixels.is_empty() {
        return [-1, -1, 0, 0];
    }
    let (xs, ys) = (
        pixels.iter().map(|i| (i % w) as i64),
        pixels.iter().map(|i| (i / w) as i64),
    );
    let (x0, x1) = (xs.clone().min().unwrap_or(0), xs.max().unwrap_or(0));
    let (y0, y1) = (ys.clone().min().unwrap_or(0), ys.max().unwrap_or(0));
    [x0, y0, x1 - x0 + 1, y1 - y0 + 1]
}

/// Renders all frames into memory (in parallel; the result does not depend on threads).
pub fn render_sequence(cfg: &SynthConfig) -> Result<Vec<SynthFrame>> {
    let synth = Synthesizer::new(cfg)?;
    (0..synth.len())
        .into_par_iter()
        .map(|k| synth.frame(k))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Models

/// Object ids: model sources keep theirs; primitives take the smallest ids no model uses.
fn assign_ids(sources: &[ObjectSource]) -> Vec<(ObjectSource, u32)> {
    let mut distinct: Vec<ObjectSource> = Vec::new();
    for s in sources {
        if !distinct.contains(s) {
            distinct.push(*s);
        }
    }
    let mut used: Vec<u32> = distinct
        .iter()
        .filter_map(|s| match s {
            ObjectSource::Model(id) => Some(*id),
            _ => None,
        })
        .collect();
    distinct
        .into_iter()
        .map(|s| match s {
            ObjectSource::Model(id) => (s, id),
            _ => {
                let id = (1..).find(|i| !used.contains(i)).unwrap_or(1);
                used.push(id);
                (s, id)
            }
        })
        .collect()
}

/// Meshes of the distinct sources, in metres.
fn load_models(cfg: &SynthConfig) -> Result<Vec<(ObjectSource, u32, Mesh)>> {
    assign_ids(&cfg.objects)
        .into_iter()
        .map(|(src, id)| {
            let mesh = match src {
                ObjectSource::Box => Mesh::cuboid(0.10, 0.07, 0.05)?,
                ObjectSource::Cylinder => Mesh::cylinder(0.035, 0.11, 48)?,
                ObjectSource::Model(m) => Mesh::load_ply(model_path(cfg, m)?)?,
            };
            Ok((src, id, mesh))
        })
        .collect()
}

/// `models_dir/obj_XXXXXX.ply`; an error when no model folder is configured.
fn model_path(cfg: &SynthConfig, obj_id: u32) -> Result<PathBuf> {
    let dir = cfg.models_dir.as_ref().ok_or_else(|| {
        Error::param(
            "objects",
            obj_id,
            "numeric object ids need a model folder (--models DIR)",
        )
    })?;
    Ok(dir.join(format!("obj_{obj_id:06}.ply")))
}

/// `models_info` entry of a mesh: bounding box, diameter and the symmetries of the primitives
/// (box: 180° about each axis; cylinder: continuous about z plus 180° about x).
fn model_info(src: ObjectSource, mesh: &Mesh) -> ModelInfo {
    let (lo, hi) = mesh.bounding_box();
    let half_turn = |axis: Vector3<f64>| {
        Isometry3::from_parts(
            Translation3::identity(),
            UnitQuaternion::from_scaled_axis(axis * std::f64::consts::PI),
        )
    };
    let (symmetries_discrete, symmetries_continuous) = match src {
        ObjectSource::Box => (
            Vec::from([Vector3::x(), Vector3::y(), Vector3::z()].map(half_turn)),
            Vec::new(),
        ),
        ObjectSource::Cylinder => (
            vec![half_turn(Vector3::x())],
            vec![ContinuousSymmetry {
                axis: Vector3::z(),
                offset: nalgebra::Point3::origin(),
            }],
        ),
        ObjectSource::Model(_) => (Vec::new(), Vec::new()),
    };
    ModelInfo {
        diameter: mesh.diameter(),
        min: lo.coords,
        size: hi - lo,
        symmetries_discrete,
        symmetries_continuous,
    }
}

/// Source `models_info.json` entries when the model folder is a BOP `models/` directory.
fn source_model_infos(cfg: &SynthConfig) -> BTreeMap<u32, ModelInfo> {
    let dir = cfg.models_dir.as_deref();
    let root = dir
        .filter(|d| d.file_name().is_some_and(|n| n == "models"))
        .and_then(Path::parent);
    let info = root
        .and_then(|r| BopDataset::open(r).ok())
        .and_then(|d| d.models_info().ok());
    info.unwrap_or_default()
}

/// Writes `models/obj_XXXXXX.ply` (primitives written in mm, model files copied) and
/// `models/models_info.json`.
fn write_models(synth: &Synthesizer, dir: &Path) -> Result<()> {
    create_dir(dir)?;
    let source_info = source_model_infos(&synth.cfg);
    let mut infos = BTreeMap::new();
    for (src, id, mesh) in synth.models() {
        let path = dir.join(format!("obj_{id:06}.ply"));
        match src {
            ObjectSource::Model(m) => {
                let from = model_path(&synth.cfg, m)?;
                std::fs::copy(&from, &path).map_err(|e| Error::io(&from, e))?;
            }
            _ => mesh.write_ply(&path)?,
        }
        let info = source_info
            .get(&id)
            .cloned()
            .unwrap_or_else(|| model_info(src, mesh));
        infos.insert(id, info);
    }
    bop::write_models_info(dir.join("models_info.json"), &infos)
}

// ---------------------------------------------------------------------------------------------
// Trajectories

/// Where objects may go: `|x| ≤ tan_x·z`, `|y| ≤ tan_y·z`, `z_min ≤ z ≤ z_max` (object centres).
#[derive(Clone, Copy, Debug)]
struct ViewBounds {
    tan_x: f64,
    tan_y: f64,
    z_min: f64,
    z_max: f64,
}

impl ViewBounds {
    /// 70 % of the half field of view, depths 0.5–0.95 m.
    fn of(camera: &Camera) -> ViewBounds {
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
fn home_positions(cfg: &SynthConfig, n: usize) -> Vec<Vector3<f64>> {
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
fn gauss3(rng: &mut StreamRng) -> Vector3<f64> {
    Vector3::from_fn(|_, _| rng.sample(StandardNormal))
}

/// `v` rescaled to norm `speed` (an arbitrary direction when `v ≈ 0`).
fn with_norm(v: Vector3<f64>, speed: f64) -> Vector3<f64> {
    v.try_normalize(1e-15).unwrap_or_else(Vector3::x) * speed
}

/// `v` shortened to norm at most `max`.
fn cap_norm(v: Vector3<f64>, max: f64) -> Vector3<f64> {
    let n = v.norm();
    if n > max {
        v * (max / n)
    } else {
        v
    }
}

/// A jerk: with probability `p`, a kick of random direction and norm uniform in `[½, 1]·size`.
fn jerk(rng: &mut StreamRng, p: f64, size: f64) -> Vector3<f64> {
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
struct Body {
    t: Vector3<f64>,
    q: UnitQuaternion<f64>,
    v: Vector3<f64>,
    w: Vector3<f64>,
    home: Vector3<f64>,
}

/// Sizes of the damped random acceleration of [`Body::accelerate_damped`]: speeds in metres per
/// frame, angles in degrees per frame.
struct Kicks {
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
const FAST_KICKS: Kicks = Kicks {
    noise_v: 0.004,
    jerk_v: 0.025,
    cap_v: 0.035,
    noise_w_deg: 0.8,
    jerk_w_deg: 6.0,
    cap_w_deg: 9.0,
};

/// [`Motion::Extreme`]: as fast with larger kicks, 8 mm, 45 mm, 60 mm; 1.5°, 10°, 15°.
const EXTREME_KICKS: Kicks = Kicks {
    noise_v: 0.008,
    jerk_v: 0.045,
    cap_v: 0.06,
    noise_w_deg: 1.5,
    jerk_w_deg: 10.0,
    cap_w_deg: 15.0,
};

/// Slow profile speeds: 2 mm and 0.2° per frame.
const SLOW_SPEED: f64 = 0.002;
const SLOW_ANGLE: f64 = 0.2 * std::f64::consts::PI / 180.0;

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
fn trajectory(
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
fn occluder_poses(camera: &Camera, frames: usize) -> Vec<Isometry3<f64>> {
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

// ---------------------------------------------------------------------------------------------
// Sensor model

/// Depth as a Kinect-like sensor sees it, parallel over rows with one stream per (frame, row):
/// a pixel of true depth `z` is a hole with probability `1 − (1 − p_drop)(1 − p_edge)(1 − p_graze)`,
/// else reads `z + σ₁·z²·ε` quantised to `depth_scale`.
fn sensor_depth(r: &Rendered, cfg: &SynthConfig, frame: usize) -> Vec<f32> {
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
fn sensor_pixel(
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
fn is_discontinuity(r: &Rendered, x: usize, y: usize, jump: f64) -> bool {
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
fn sensor_rgb(r: &Rendered, cfg: &SynthConfig, frame: usize) -> image::RgbImage {
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

// ---------------------------------------------------------------------------------------------
// Writing

/// What [`generate`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthSummary {
    /// Dataset root.
    pub out: PathBuf,
    /// The scene directory `out/<split>/<scene:06>`.
    pub scene_dir: PathBuf,
    /// Frames written.
    pub frames: usize,
    /// Object ids in GT order.
    pub obj_ids: Vec<u32>,
    /// The motion profile.
    pub motion: Motion,
    /// Per-frame steps.
    pub steps: MotionStats,
    /// Smallest and mean visible fraction over objects and frames.
    pub min_visib_fract: f64,
    /// Mean visible fraction.
    pub mean_visib_fract: f64,
    /// Fraction of visible object pixels without sensor depth.
    pub hole_fract: f64,
}

impl fmt::Display for SynthSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.steps;
        write!(
            f,
            "synth: {} frames, obj ids {:?}, motion {:?}: step mean {:.1} mm / {:.2}°, max {:.1} mm / {:.2}°; \
             visible fraction min {:.2}, mean {:.2}; depth holes on objects {:.1} % -> {}",
            self.frames,
            self.obj_ids,
            self.motion,
            s.mean_mm,
            s.mean_deg,
            s.max_mm,
            s.max_deg,
            self.min_visib_fract,
            self.mean_visib_fract,
            100.0 * self.hole_fract,
            self.scene_dir.display()
        )
    }
}

/// Renders the sequence of `cfg` and writes it as a BOP scene under `cfg.out` (see the module
/// docs for the layout). Existing files of the same names are overwritten.
pub fn generate(cfg: &SynthConfig) -> Result<SynthSummary> {
    generate_with_progress(cfg, &|| {})
}

/// [`generate`], calling `progress` once per frame written (from worker threads).
pub fn generate_with_progress(
    cfg: &SynthConfig,
    progress: &(dyn Fn() + Sync),
) -> Result<SynthSummary> {
    let synth = Synthesizer::new(cfg)?;
    let scene_dir = cfg
        .out
        .join(&cfg.split)
        .join(format!("{:06}", cfg.scene_id));
    for sub in ["rgb", "depth", "mask_visib"] {
        create_dir(&scene_dir.join(sub))?;
    }
    write_models(&synth, &cfg.out.join("models"))?;
    let infos: Vec<Vec<GtInfo>> = (0..synth.len())
        .into_par_iter()
        .map(|k| {
            let frame = synth.frame(k)?;
            write_frame(&scene_dir, &frame)?;
            progress();
            Ok(frame.info)
        })
        .collect::<Result<_>>()?;
    write_scene_files(&synth, &scene_dir, &infos)?;
    Ok(summary(&synth, scene_dir, &infos))
}

/// `rgb/`, `depth/` and `mask_visib/` images of one frame.
fn write_frame(dir: &Path, f: &SynthFrame) -> Result<()> {
    let id = f.im_id();
    bop::write_rgb_png(dir.join("rgb").join(format!("{id:06}.png")), &f.frame.rgb)?;
    bop::write_depth_png(
        dir.join("depth").join(format!("{id:06}.png")),
        &f.frame.depth,
        f.depth_scale,
    )?;
    for k in 0..f.gt.len() {
        let path = dir.join("mask_visib").join(format!("{id:06}_{k:06}.png"));
        f.mask_visib(k)
            .save(&path)
            .map_err(|e| Error::format(&path, format!("cannot write PNG: {e}")))?;
    }
    Ok(())
}

/// `scene_camera.json`, `scene_gt.json`, `scene_gt_info.json`.
fn write_scene_files(synth: &Synthesizer, dir: &Path, infos: &[Vec<GtInfo>]) -> Result<()> {
    let ids = 1..=synth.len() as u32;
    let cam = FrameCamera {
        camera: synth.cfg.camera,
        depth_scale: synth.cfg.depth_scale,
    };
    bop::write_scene_camera(
        dir.join("scene_camera.json"),
        &ids.clone().map(|id| (id, cam)).collect(),
    )?;
    bop::write_scene_gt(
        dir.join("scene_gt.json"),
        &ids.clone()
            .map(|id| (id, synth.gt(id as usize - 1)))
            .collect(),
    )?;
    let entry = |g: &GtInfo| {
        serde_json::json!({
            "bbox_obj": g.bbox_obj, "bbox_visib": g.bbox_visib, "px_count_all": g.px_count_all,
            "px_count_valid": g.px_count_valid, "px_count_visib": g.px_count_visib, "visib_fract": g.visib_fract,
        })
    };
    let lines: Vec<String> = ids
        .zip(infos)
        .map(|(id, list)| {
            format!(
                "  \"{id}\": {}",
                serde_json::Value::Array(list.iter().map(entry).collect())
            )
        })
        .collect();
    let path = dir.join("scene_gt_info.json");
    std::fs::write(&path, format!("{{\n{}\n}}\n", lines.join(",\n")))
        .map_err(|e| Error::io(&path, e))
}

fn summary(synth: &Synthesizer, scene_dir: PathBuf, infos: &[Vec<GtInfo>]) -> SynthSummary {
    let all: Vec<&GtInfo> = infos.iter().flatten().collect();
    let n = all.len().max(1) as f64;
    let visib: usize = all.iter().map(|g| g.px_count_visib).sum();
    let valid: usize = all.iter().map(|g| g.px_count_valid).sum();
    SynthSummary {
        out: synth.cfg.out.clone(),
        scene_dir,
        frames: synth.len(),
        obj_ids: synth.obj_ids(),
        motion: synth.cfg.motion,
        steps: synth.motion_stats(),
        min_visib_fract: all
            .iter()
            .map(|g| g.visib_fract)
            .fold(f64::INFINITY, f64::min)
            .min(1.0),
        mean_visib_fract: all.iter().map(|g| g.visib_fract).sum::<f64>() / n,
        hole_fract: if visib == 0 {
            0.0
        } else {
            1.0 - valid as f64 / visib as f64
        },
    }
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domains::pose::render::render;

    /// A small config (160×120) writing to a fresh temporary directory.
    fn small(name: &str, motion: Motion, frames: usize, seed: u64) -> SynthConfig {
        let out = std::env::temp_dir().join(format!("hdpf-synth-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        SynthConfig {
            frames,
            motion,
            seed,
            camera: ycbv_camera(160, 120),
            ..SynthConfig::new(out)
        }
    }

    #[test]
    fn round_trip_through_bop_files() {
        let cfg = small("roundtrip", Motion::Fast, 4, 7);
        let summary = generate(&cfg).unwrap();
        let frames = render_sequence(&cfg).unwrap();
        let ds = BopDataset::open(&cfg.out).unwrap();
        let scene = ds.scene("test", 1).unwrap();
        assert_eq!(scene.image_ids, vec![1, 2, 3, 4]);
        assert_eq!(summary.obj_ids, vec![1, 2]);
        for f in &frames {
            let id = f.im_id();
            let cam = scene.cameras[&id];
            assert_eq!((cam.camera.width, cam.camera.height), (160, 120));
            assert!(
                (cam.camera.fx - cfg.camera.fx).abs() < 1e-9
                    && (cam.camera.cy - cfg.camera.cy).abs() < 1e-9
            );
            assert_eq!(cam.depth_scale, cfg.depth_scale);
            for (read, truth) in scene.gt[&id].iter().zip(&f.gt) {
                assert_eq!(read.obj_id, truth.obj_id);
                let dt = (read.pose.translation.vector - truth.pose.translation.vector).norm();
                assert!(dt < 1e-6 && read.pose.rotation.angle_to(&truth.pose.rotation) < 1e-6);
            }
            let loaded = scene.load_frame(id).unwrap();
            assert_eq!(loaded.rgb, f.frame.rgb);
            let max_err = loaded
                .depth
                .data
                .iter()
                .zip(&f.frame.depth.data)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(max_err < 1e-6, "depth differs by {max_err}");
            for k in 0..f.gt.len() {
                let mask = image::open(
                    scene
                        .image_path("mask_visib", id)
                        .with_file_name(format!("{id:06}_{k:06}.png")),
                )
                .unwrap();
                assert_eq!(mask.to_luma8(), f.mask_visib(k));
            }
        }
        let info = ds.models_info().unwrap();
        let box_mesh = ds.model(1).unwrap();
        assert!((info[&1].diameter - box_mesh.diameter()).abs() < 1e-6);
        assert_eq!(info[&1].symmetries_discrete.len(), 3);
        assert_eq!(info[&2].symmetries_continuous.len(), 1);
        assert!(
            (box_mesh.vertices[0] - Mesh::cuboid(0.10, 0.07, 0.05).unwrap().vertices[0]).norm()
                < 1e-6
        );
        assert!(cfg.out.join("test/000001/scene_gt_info.json").exists());
        std::fs::remove_dir_all(&cfg.out).unwrap();
    }

    #[test]
    fn sensor_depth_is_within_noise_and_quantisation_bounds() {
        let cfg = small("bounds", Motion::Slow, 2, 3);
        let (mut holes, mut valid) = (0usize, 0usize);
        for f in render_sequence(&cfg).unwrap() {
            for (&d, &z) in f.frame.depth.data.iter().zip(&f.depth_clean.data) {
                if z == 0.0 {
                    assert_eq!(d, 0.0);
                    continue;
                }
                if d == 0.0 {
                    holes += 1;
                    continue;
                }
                valid += 1;
                let (d, z) = (d as f64, z as f64);
                let bound =
                    5.0 * cfg.noise.depth_sigma_1m * z * z + 0.5e-3 * cfg.depth_scale + 1e-6;
                assert!((d - z).abs() <= bound, "{d} vs {z}");
                let raw = d * 1000.0 / cfg.depth_scale;
                assert!((raw - raw.round()).abs() < 1e-3);
            }
        }
        let hole_fract = holes as f64 / (holes + valid) as f64;
        assert!(
            valid > 1000 && hole_fract > 0.01 && hole_fract < 0.3,
            "{holes} holes / {valid}"
        );
    }

    #[test]
    fn depth_noise_grows_with_depth_squared() {
        let mut r = render(&ycbv_camera(160, 120), &[], &RenderOptions::default()).unwrap();
        let mut cfg = small("sigma", Motion::Slow, 1, 5);
        cfg.depth_scale = 0.05;
        for z in [1.0f32, 2.0] {
            r.depth.iter_mut().for_each(|d| *d = z);
            r.cos_incidence.iter_mut().for_each(|c| *c = 1.0);
            let d = sensor_depth(&r, &cfg, 0);
            let vals: Vec<f64> = d
                .iter()
                .filter(|&&x| x > 0.0)
                .map(|&x| x as f64 - z as f64)
                .collect();
            let n = vals.len() as f64;
            let sd = (vals.iter().map(|v| v * v).sum::<f64>() / n).sqrt();
            let expect = 0.0015 * (z * z) as f64;
            assert!(
                (sd / expect - 1.0).abs() < 0.05,
                "z {z}: σ {sd} vs {expect}"
            );
            let dropped = 1.0 - n / d.len() as f64;
            assert!((dropped - 0.01).abs() < 0.005, "dropout {dropped}");
        }
    }

    #[test]
    fn deterministic_per_seed() {
        let a = render_sequence(&small("det", Motion::Fast, 3, 11)).unwrap();
        let b = render_sequence(&small("det", Motion::Fast, 3, 11)).unwrap();
        let c = render_sequence(&small("det", Motion::Fast, 3, 12)).unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.frame.rgb, y.frame.rgb);
            assert_eq!(x.frame.depth, y.frame.depth);
            assert_eq!(x.gt, y.gt);
        }
        assert_ne!(a[2].gt, c[2].gt);
        assert_ne!(a[0].frame.depth, c[0].frame.depth);
    }

    #[test]
    fn fast_motion_has_larger_steps_than_slow() {
        let slow = Synthesizer::new(&small("slow", Motion::Slow, 100, 1))
            .unwrap()
            .motion_stats();
        let fast = Synthesizer::new(&small("fast", Motion::Fast, 100, 1))
            .unwrap()
            .motion_stats();
        assert!(
            (slow.mean_mm - 2.0).abs() < 0.3 && (slow.mean_deg - 0.2).abs() < 0.02,
            "{slow:?}"
        );
        assert!(slow.max_mm <= 2.0 + 1e-9, "{slow:?}");
        assert!(
            (10.0..20.0).contains(&fast.mean_mm) && (2.0..5.0).contains(&fast.mean_deg),
            "{fast:?}"
        );
        assert!(fast.max_mm > 25.0 && fast.max_deg > 6.0, "{fast:?}");
        let extreme = Synthesizer::new(&small("extreme", Motion::Extreme, 100, 1))
            .unwrap()
            .motion_stats();
        assert!(
            extreme.mean_mm > 20.0 && extreme.mean_deg > 5.0,
            "{extreme:?}"
        );
        assert!(
            extreme.max_mm > 50.0 && extreme.max_deg > 12.0,
            "{extreme:?}"
        );
    }

    #[test]
    fn fast_sequence_is_partially_occluded_and_stays_in_view() {
        let cfg = small("occl", Motion::Fast, 24, 2);
        let frames = render_sequence(&cfg).unwrap();
        let fracts: Vec<f64> = frames
            .iter()
            .flat_map(|f| f.info.iter().map(|g| g.visib_fract))
            .collect();
        let min = fracts.iter().cloned().fold(1.0, f64::min);
        assert!(min < 0.8, "never occluded: min visible fraction {min}");
        let in_view = frames
            .iter()
            .flat_map(|f| &f.info)
            .filter(|g| g.px_count_all > 0)
            .count();
        assert_eq!(in_view, fracts.len());
        // without the occluder, objects are mostly visible
        let clear = render_sequence(&SynthConfig {
            occluder: Some(false),
            ..cfg
        })
        .unwrap();
        let labels_occluded = frames.iter().zip(&clear).any(|(a, b)| a.labels != b.labels);
        assert!(labels_occluded);
    }

    #[test]
    fn object_sources_and_ids() {
        assert_eq!("box".parse::<ObjectSource>(), Ok(ObjectSource::Box));
        assert_eq!(
            " Cylinder".parse::<ObjectSource>(),
            Ok(ObjectSource::Cylinder)
        );
        assert_eq!("13".parse::<ObjectSource>(), Ok(ObjectSource::Model(13)));
        assert!("sphere".parse::<ObjectSource>().is_err());
        let ids = assign_ids(&[
            ObjectSource::Model(1),
            ObjectSource::Box,
            ObjectSource::Box,
            ObjectSource::Cylinder,
        ]);
        assert_eq!(
            ids,
            vec![
                (ObjectSource::Model(1), 1),
                (ObjectSource::Box, 2),
                (ObjectSource::Cylinder, 3)
            ]
        );
        let cfg = SynthConfig {
            objects: vec![ObjectSource::Model(3)],
            ..small("ids", Motion::Slow, 1, 0)
        };
        let err = Synthesizer::new(&cfg).unwrap_err().to_string();
        assert!(err.contains("--models"), "{err}");
        let cfg = SynthConfig {
            frames: 0,
            ..small("ids", Motion::Slow, 1, 0)
        };
        assert!(Synthesizer::new(&cfg).is_err());
    }

    #[test]
    fn instances_of_one_model_share_an_id() {
        let cfg = SynthConfig {
            objects: vec![ObjectSource::Box, ObjectSource::Box],
            ..small("inst", Motion::Slow, 2, 0)
        };
        let s = Synthesizer::new(&cfg).unwrap();
        assert_eq!(s.obj_ids(), vec![1, 1]);
        assert_eq!(s.models().count(), 1);
        let f = s.frame(1).unwrap();
        assert!(f.info.iter().all(|g| g.px_count_visib > 100));
        assert!(s.frame(2).is_err());
    }
}
