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
    self, BopDataset, ContinuousSymmetry, FrameCamera, GtPose, ModelInfo,
};
use crate::domains::pose::frame::{ImageF32, RgbdFrame};
use crate::domains::pose::mesh::Mesh;
use crate::domains::pose::render::{Background, RenderObject, RenderOptions, Rendered, Renderer};

mod hide;
mod models;
mod sensor;
mod trajectory;
mod writer;

pub use hide::Hide;
#[cfg(test)]
use models::assign_ids;
use models::{load_models, write_models};
pub use sensor::{quantise, SensorNoise};
use sensor::{sensor_depth, sensor_rgb};
use trajectory::{home_positions, occluder_poses, trajectory, ViewBounds};
pub use writer::{generate, generate_with_progress, SynthSummary};

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

/// Everything that defines a synthetic sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthConfig {
    /// Output dataset directory, read by [`generate`] alone ([`Synthesizer`] renders in memory);
    /// empty in [`SynthConfig::in_memory`], which [`generate`] refuses.
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
    /// A static plate hiding part of one object for some frames ([`Hide`]).
    pub hide: Option<Hide>,
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
            hide: None,
            split: "test".into(),
            scene_id: 1,
        }
    }

    /// [`SynthConfig::new`] without an output folder: for rendering in memory with
    /// [`Synthesizer`]; [`generate`] refuses it until `out` is set.
    pub fn in_memory() -> SynthConfig {
        Self::new(PathBuf::new())
    }

    /// Whether the occluder bar is rendered.
    pub fn occluder_enabled(&self) -> bool {
        self.occluder
            .unwrap_or(matches!(self.motion, Motion::Fast | Motion::Extreme))
    }

    /// Checks the configuration: objects, frame count, image size against the memory budget.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.objects.is_empty() {
            return Err(Error::param("objects", "[]", "need at least one object"));
        }
        if self.frames == 0 || self.frames > 999_999 {
            return Err(Error::param("frames", self.frames, "must be in 1..=999999"));
        }
        // Colour, depth, the renderer's buffers and the PNG encoders: under 64 bytes a pixel.
        let (w, h) = (self.camera.width as usize, self.camera.height as usize);
        crate::core::memory::check("resolution", format!("{w}x{h}"), &[w, h, 64], 1)?;
        if !(self.depth_scale.is_finite() && self.depth_scale > 0.0) {
            return Err(Error::param(
                "depth_scale",
                self.depth_scale,
                "must be positive",
            ));
        }
        if let Some(h) = &self.hide {
            h.validate(self.objects.len(), self.frames)?;
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
    pub frame: RgbdFrame,
    /// Millimetres per raw depth unit.
    pub depth_scale: f64,
    /// Ground-truth poses in object order.
    pub gt: Vec<GtPose>,
    /// Visible object per pixel: `k + 1` for `gt[k]`, `0` for background and the occluder.
    pub labels: Vec<u16>,
    /// Noise-free rendered depth (metres, 0 = background or occluder-free background).
    pub depth_clean: ImageF32,
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

    /// The colour image (a synthesized frame always has one).
    pub fn rgb(&self) -> &image::RgbImage {
        self.frame
            .rgb
            .as_deref()
            .expect("synthesized frames carry colour")
    }

    /// The sensor depth, metres (a synthesized frame always has one).
    pub fn depth(&self) -> &ImageF32 {
        self.frame
            .depth
            .as_deref()
            .expect("synthesized frames carry depth")
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
    /// The hiding plate and its pose ([`SynthConfig::hide`]).
    plate: Option<(Mesh, Isometry3<f64>)>,
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
        let trajectories: Vec<Vec<Isometry3<f64>>> = homes
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
        let plate = match &cfg.hide {
            Some(h) => {
                let (k, pose) = (h.object - 1, trajectories[h.object - 1][h.frames.0 - 1]);
                h.plate(&cfg.camera, &models[instances[k].mesh].2, &pose)?
            }
            None => None,
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
            plate,
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
        let hidden = (self.cfg.hide.as_ref()).is_some_and(|h| h.covers(k));
        if let (Some((mesh, pose)), true) = (&self.plate, hidden) {
            objects.push(RenderObject {
                mesh,
                pose: *pose,
                color: [120, 120, 125],
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
        let depth_image = |data| ImageF32 {
            width: camera.width as usize,
            height: camera.height as usize,
            data,
        };
        let rgb = sensor_rgb(&r, &self.cfg, k);
        Ok(SynthFrame {
            frame: RgbdFrame::new(k as u32 + 1, camera, Some(rgb), Some(depth_image(depth))),
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

    /// A configuration without an output folder renders in memory; `generate` refuses it
    /// rather than writing into the working directory.
    #[test]
    fn an_in_memory_config_renders_and_generate_refuses_it() {
        let cfg = SynthConfig {
            frames: 2,
            camera: ycbv_camera(160, 120),
            ..SynthConfig::in_memory()
        };
        let synth = Synthesizer::new(&cfg).unwrap();
        assert_eq!(synth.frame(1).unwrap().im_id(), 2);
        let e = generate(&cfg).unwrap_err().to_string();
        assert!(e.contains("out") && e.contains("in_memory"), "{e}");
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
            assert_eq!(loaded.rgb.as_deref(), Some(f.rgb()));
            let max_err = (loaded.depth.as_ref().unwrap().data.iter())
                .zip(&f.depth().data)
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
            for (&d, &z) in f.depth().data.iter().zip(&f.depth_clean.data) {
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
            assert_eq!(x.rgb(), y.rgb());
            assert_eq!(x.depth(), y.depth());
            assert_eq!(x.gt, y.gt);
        }
        assert_ne!(a[2].gt, c[2].gt);
        assert_ne!(a[0].depth(), c[0].depth());
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

    /// `hide` covers about the chosen fraction of the chosen object in the chosen frames only,
    /// and the plate lies in front of it in depth.
    #[test]
    fn a_hidden_object_loses_about_the_chosen_fraction_in_those_frames() {
        let cfg = SynthConfig {
            hide: Some("1,0.5,2-3".parse().unwrap()),
            ..small("hide", Motion::Slow, 4, 3)
        };
        let hidden = render_sequence(&cfg).unwrap();
        let clear = render_sequence(&SynthConfig { hide: None, ..cfg }).unwrap();
        for (k, (h, c)) in hidden.iter().zip(&clear).enumerate() {
            let (fh, fc) = (h.info[0].visib_fract, c.info[0].visib_fract);
            if (1..=2).contains(&k) {
                // Half the image width of a box seen at an angle: 0.3–0.7 of its pixels (slow
                // motion moves it by about a pixel under the plate at 160 × 120).
                assert!(fh > 0.3 * fc && fh < 0.7 * fc, "frame {k}: {fh} of {fc}");
                let nearer = (h.depth_clean.data.iter().zip(&c.depth_clean.data))
                    .any(|(a, b)| *a > 0.0 && (*b == 0.0 || a < b));
                assert!(nearer, "frame {k}: the plate is not in front");
                assert_eq!(
                    h.info[1].visib_fract, c.info[1].visib_fract,
                    "object 2 is not hidden"
                );
            } else {
                assert_eq!(h.labels, c.labels, "frame {k} must be unchanged");
            }
        }
        let bad = SynthConfig {
            hide: Some("3,0.5,2-3".parse().unwrap()),
            ..small("hide-bad", Motion::Slow, 4, 3)
        };
        let e = render_sequence(&bad).unwrap_err().to_string();
        assert!(e.contains("hide") && e.contains("object"), "{e}");
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
