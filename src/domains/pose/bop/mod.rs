//! The BOP scenewise dataset format and the BOP19 results format, read and written as files are.
//!
//! Layout (`root` = the dataset directory):
//! ```text
//! models/models_info.json            per obj id: diameter, min_x.., size_x.. (mm), symmetries
//! models/obj_XXXXXX.ply              meshes, mm
//! models_points/obj_XXXXXX.xyz       optional ADD / ADD-S points, m (YCB-Video's points.xyz)
//! <split>/<scene:06>/scene_camera.json   per image id: cam_K (row-major 9), depth_scale, [cam_R_w2c, cam_t_w2c]
//! <split>/<scene:06>/scene_gt.json       per image id: [{obj_id, cam_R_m2c (row-major 9), cam_t_m2c (mm)}]
//! <split>/<scene:06>/rgb/NNNNNN.png      8-bit RGB
//! <split>/<scene:06>/depth/NNNNNN.png    16-bit, depth_mm = raw · depth_scale
//! ```
//! Everything in memory is in metres; millimetres exist only in these files.

use crate::core::geometry::Camera;
use crate::domains::pose::frame::{ImageF32, RgbdFrame};
use crate::domains::pose::mesh::Mesh;
use crate::{Error, Result};
use nalgebra::{Isometry3, Matrix3, Point3, Translation3, UnitQuaternion, Vector3};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

mod images;
mod points;
mod results;
mod scene_json;

use images::*;
pub use images::{read_depth_png, write_depth_png, write_rgb_png};
pub use points::{read_xyz, PointSource};
pub use results::{pose_difference, read_results, write_results, ResultsWriter, RESULTS_HEADER};
use scene_json::*;
pub use scene_json::{
    read_scene_camera, read_scene_gt, read_scene_visibility, rotation_from_row_major,
    rotation_to_row_major, write_camera_json, write_models_info, write_scene_camera,
    write_scene_gt,
};

/// Metres per millimetre.
const MM: f64 = 1e-3;

/// Largest deviation `|RᵀR − I|_F` accepted for a rotation read from a file.
const ROTATION_TOL: f64 = 1e-3;

// ---------------------------------------------------------------------------------------------
// Types

/// A BOP dataset rooted at a directory.
#[derive(Debug, Clone)]
pub struct BopDataset {
    /// The dataset directory (holding `models/` and the split directories).
    pub root: PathBuf,
}

/// Per-object entry of `models/models_info.json`, in metres.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// Model diameter (largest vertex distance), metres.
    pub diameter: f64,
    /// Bounding-box minimum corner `(min_x, min_y, min_z)`, metres.
    pub min: Vector3<f64>,
    /// Bounding-box size `(size_x, size_y, size_z)`, metres.
    pub size: Vector3<f64>,
    /// Discrete symmetry transforms (`symmetries_discrete`, 4×4 row-major, translation mm → m).
    pub symmetries_discrete: Vec<Isometry3<f64>>,
    /// Continuous symmetries (`symmetries_continuous`).
    pub symmetries_continuous: Vec<ContinuousSymmetry>,
}

/// A continuous rotational symmetry: any rotation about `axis` through `offset`.
#[derive(Debug, Clone, PartialEq)]
pub struct ContinuousSymmetry {
    /// Unit rotation axis in the model frame.
    pub axis: Vector3<f64>,
    /// A point on the axis, metres.
    pub offset: Point3<f64>,
}

/// The camera of one image: intrinsics plus the depth PNG scale (`depth_mm = raw · depth_scale`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameCamera {
    /// Intrinsics and image size.
    pub camera: Camera,
    /// Millimetres per raw depth unit.
    pub depth_scale: f64,
}

/// A ground-truth object pose: model-to-camera, metres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GtPose {
    /// BOP object id.
    pub obj_id: u32,
    /// `T_m2c`: maps model points (metres) into the camera frame (metres).
    pub pose: Isometry3<f64>,
}

impl GtPose {
    /// The instance of object `obj_id` among `gts` nearest in translation to `pose` (an
    /// estimate's ground truth when an image holds several instances of its object).
    pub fn nearest<'a>(gts: &'a [GtPose], obj_id: u32, pose: &Isometry3<f64>) -> Option<&'a Self> {
        let dist = |g: &GtPose| (g.pose.translation.vector - pose.translation.vector).norm();
        (gts.iter().filter(|g| g.obj_id == obj_id)).min_by(|a, b| dist(a).total_cmp(&dist(b)))
    }
}

/// One scene of a split: cameras and GT for every image, images loaded on demand.
#[derive(Debug, Clone)]
pub struct Scene {
    /// Split name (`test`, `train_real`, ...).
    pub split: String,
    /// Scene id.
    pub scene_id: u32,
    /// The scene directory `<root>/<split>/<scene_id:06>`.
    pub dir: PathBuf,
    /// Image ids in increasing order (the keys of `scene_camera.json`).
    pub image_ids: Vec<u32>,
    /// Camera of each image.
    pub cameras: BTreeMap<u32, FrameCamera>,
    /// GT poses of each image (empty when the scene has no `scene_gt.json`).
    pub gt: BTreeMap<u32, Vec<GtPose>>,
    /// The visible fraction of each GT instance per image (BOP `visib_fract`, in the order of
    /// `gt`; empty when the scene has no `scene_gt_info.json`).
    pub visibility: BTreeMap<u32, Vec<f64>>,
    /// World-to-camera pose of each image that has `cam_R_w2c`/`cam_t_w2c` (metres).
    pub cam_w2c: BTreeMap<u32, Isometry3<f64>>,
}

/// One row of a BOP19 results file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoseResult {
    /// Scene id.
    pub scene_id: u32,
    /// Image id.
    pub im_id: u32,
    /// Object id.
    pub obj_id: u32,
    /// Confidence score.
    pub score: f64,
    /// Estimated model-to-camera pose, metres.
    pub pose: Isometry3<f64>,
    /// Run time for the image, seconds (BOP uses −1 for unknown).
    pub time: f64,
}

// ---------------------------------------------------------------------------------------------
// Dataset and scene

impl BopDataset {
    /// Opens a dataset directory (it must exist; files are read on demand), found as given or
    /// under the datasets folder ([`crate::core::datasets::resolve`]).
    pub fn open(root: impl AsRef<Path>) -> Result<BopDataset> {
        let root = crate::core::datasets::resolve_dir(root.as_ref(), "BOP dataset directory")?;
        Ok(BopDataset { root })
    }

    /// The scene ids of `split` that have a folder, sorted (none for a missing split).
    pub fn scene_ids(&self, split: &str) -> Vec<u32> {
        let entries = std::fs::read_dir(self.root.join(split))
            .into_iter()
            .flatten();
        let mut ids: Vec<u32> = (entries.filter_map(|e| e.ok()))
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        ids.sort_unstable();
        ids
    }

    /// An error for a scene that `split` lacks, naming the splits that hold it and the split's
    /// scenes.
    fn no_scene(&self, split: &str, scene_id: u32) -> Error {
        let elsewhere = self.splits_with_scene(scene_id).unwrap_or_default();
        let hint = match elsewhere.is_empty() {
            true => format!("no split has scene {scene_id}"),
            false => format!("scene {scene_id} is in split {}", elsewhere.join(", ")),
        };
        Error::format(
            self.root.join(split),
            format!(
                "no scene {scene_id} in split `{split}` (its scenes: {:?}); {hint}",
                self.scene_ids(split)
            ),
        )
    }

    /// `<root>/<split>/<scene_id:06>`.
    pub fn scene_dir(&self, split: &str, scene_id: u32) -> PathBuf {
        self.root.join(split).join(format!("{scene_id:06}"))
    }

    /// The splits (sub-directories other than `models*`) that contain scene `scene_id`.
    pub fn splits_with_scene(&self, scene_id: u32) -> Result<Vec<String>> {
        let entries = std::fs::read_dir(&self.root).map_err(|e| Error::io(&self.root, e))?;
        let mut splits: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| !name.starts_with("models") && self.scene_dir(name, scene_id).is_dir())
            .collect();
        splits.sort();
        Ok(splits)
    }

    /// Loads a scene's cameras and GT; the image size comes from the first RGB (or depth) image, or
    /// else from `<root>/camera.json`.
    pub fn scene(&self, split: &str, scene_id: u32) -> Result<Scene> {
        let dir = self.scene_dir(split, scene_id);
        if !dir.is_dir() {
            return Err(self.no_scene(split, scene_id));
        }
        let cam_path = dir.join("scene_camera.json");
        let first = first_image_id(&cam_path)?;
        let (width, height) = self.image_size(&dir, first)?;
        let (cameras, cam_w2c) = parse_scene_camera(&cam_path, width, height)?;
        let gt_path = dir.join("scene_gt.json");
        let gt = if gt_path.exists() {
            read_scene_gt(&gt_path)?
        } else {
            BTreeMap::new()
        };
        let info_path = dir.join("scene_gt_info.json");
        let visibility = match info_path.exists() && !gt.is_empty() {
            true => read_scene_visibility(&info_path)?,
            false => BTreeMap::new(),
        };
        for (im, fractions) in &visibility {
            let instances = gt.get(im).map_or(0, Vec::len);
            if fractions.len() != instances {
                let why = format!(
                    "image {im}: {} entries for the {instances} GT instances of scene_gt.json",
                    fractions.len()
                );
                return Err(Error::format(&info_path, why));
            }
        }
        Ok(Scene {
            split: split.to_string(),
            scene_id,
            image_ids: cameras.keys().copied().collect(),
            dir,
            cameras,
            gt,
            visibility,
            cam_w2c,
        })
    }

    /// The image size of a scene (see [`BopDataset::scene`]).
    fn image_size(&self, dir: &Path, first: Option<u32>) -> Result<(u32, u32)> {
        if let Some(id) = first {
            for sub in ["rgb", "depth"] {
                let p = dir.join(sub).join(format!("{id:06}.png"));
                if p.exists() {
                    return image::image_dimensions(&p)
                        .map_err(|e| Error::format(&p, format!("cannot read image size: {e}")));
                }
            }
        }
        let p = self.root.join("camera.json");
        if p.exists() {
            return read_camera_json_size(&p);
        }
        Err(Error::format(dir, "image size unknown: no rgb/ or depth/ image for the first image id and no camera.json at the dataset root"))
    }

    /// Reads `models/models_info.json` (converted to metres).
    pub fn models_info(&self) -> Result<BTreeMap<u32, ModelInfo>> {
        let path = self.root.join("models").join("models_info.json");
        let json = read_json(&path)?;
        let mut out = BTreeMap::new();
        for (key, v) in as_object(&path, &json, "top level")? {
            let id = parse_id(&path, key, "top level")?;
            out.insert(id, parse_model_info(&path, v, &format!("object {key}"))?);
        }
        Ok(out)
    }

    /// Path of the mesh of object `obj_id`: `models/obj_XXXXXX.ply`.
    pub fn model_path(&self, obj_id: u32) -> PathBuf {
        self.root
            .join("models")
            .join(format!("obj_{obj_id:06}.ply"))
    }

    /// Loads the mesh of object `obj_id` (metres).
    pub fn model(&self, obj_id: u32) -> Result<Mesh> {
        Mesh::load_ply(model_file(&self.root.join("models"), obj_id)?)
    }
}

/// `dir/obj_XXXXXX.ply`, the BOP mesh of object `obj_id`; when it is missing, an error naming it
/// and the objects `dir` has.
pub fn model_file(dir: &Path, obj_id: u32) -> Result<PathBuf> {
    let path = dir.join(format!("obj_{obj_id:06}.ply"));
    if path.is_file() {
        return Ok(path);
    }
    let entries = std::fs::read_dir(dir).into_iter().flatten().flatten();
    let mut ids: Vec<u32> = entries
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_prefix("obj_")?
                .strip_suffix(".ply")?
                .parse()
                .ok()
        })
        .collect();
    ids.sort_unstable();
    Err(Error::format(
        &path,
        format!("no mesh for object {obj_id} (the meshes in that folder: {ids:?})"),
    ))
}

/// The smallest image id in `scene_camera.json`, cheaply (keys only).
fn first_image_id(path: &Path) -> Result<Option<u32>> {
    let json = read_json(path)?;
    let keys = as_object(path, &json, "top level")?.keys();
    let ids: Result<Vec<u32>> = keys.map(|k| parse_id(path, k, "top level")).collect();
    Ok(ids?.into_iter().min())
}

/// One entry of `models_info.json`.
fn parse_model_info(path: &Path, v: &Value, what: &str) -> Result<ModelInfo> {
    let obj = as_object(path, v, what)?;
    let vec3 = |keys: [&str; 3]| -> Result<Vector3<f64>> {
        Ok(Vector3::new(
            get_f64(path, obj, keys[0], what)?,
            get_f64(path, obj, keys[1], what)?,
            get_f64(path, obj, keys[2], what)?,
        ) * MM)
    };
    let mut info = ModelInfo {
        diameter: get_f64(path, obj, "diameter", what)? * MM,
        min: vec3(["min_x", "min_y", "min_z"])?,
        size: vec3(["size_x", "size_y", "size_z"])?,
        symmetries_discrete: Vec::new(),
        symmetries_continuous: Vec::new(),
    };
    let list = |key: &str| -> Result<Vec<Map<String, Value>>> {
        let Some(v) = obj.get(key) else {
            return Ok(Vec::new());
        };
        let arr = v
            .as_array()
            .ok_or_else(|| Error::format(path, format!("{what}: field '{key}' must be a list")))?;
        // Wrap each item in an object so the array helpers can name the field.
        Ok(arr
            .iter()
            .map(|x| Map::from_iter([(key.to_string(), x.clone())]))
            .collect())
    };
    for m in list("symmetries_discrete")? {
        let a = get_array::<16>(path, &m, "symmetries_discrete", what)?;
        let r = [a[0], a[1], a[2], a[4], a[5], a[6], a[8], a[9], a[10]];
        let q = rotation_from_row_major(&r).ok_or_else(|| {
            Error::format(
                path,
                format!("{what}: a symmetries_discrete entry is not rigid"),
            )
        })?;
        info.symmetries_discrete.push(Isometry3::from_parts(
            Translation3::new(a[3] * MM, a[7] * MM, a[11] * MM),
            q,
        ));
    }
    for m in list("symmetries_continuous")? {
        let inner = as_object(path, &m["symmetries_continuous"], what)?;
        let axis = Vector3::from(get_array::<3>(path, inner, "axis", what)?);
        let offset = Point3::from(Vector3::from(get_array::<3>(path, inner, "offset", what)?) * MM);
        let axis = axis.try_normalize(1e-12).ok_or_else(|| {
            Error::format(path, format!("{what}: symmetries_continuous axis is zero"))
        })?;
        info.symmetries_continuous
            .push(ContinuousSymmetry { axis, offset });
    }
    Ok(info)
}

/// The visible fraction of object `obj_id` in an image with GT instances `gt` and visible
/// fractions `fractions` (one per instance, [`Scene::visibility`]), where the image holds exactly
/// one instance of it (`None` otherwise: with several instances the fraction of the one an
/// estimate is matched to is not known here).
pub fn visible_fraction(gt: &[GtPose], fractions: &[f64], obj_id: u32) -> Option<f64> {
    let mut of_obj = (gt.iter().zip(fractions)).filter(|(g, _)| g.obj_id == obj_id);
    match (gt.len() == fractions.len(), of_obj.next(), of_obj.next()) {
        (true, Some((_, &f)), None) => Some(f),
        _ => None,
    }
}

impl Scene {
    /// Object `obj_id`'s visible fraction in image `im_id` ([`visible_fraction`]).
    pub fn visible_fraction(&self, im_id: u32, obj_id: u32) -> Option<f64> {
        visible_fraction(self.gt.get(&im_id)?, self.visibility.get(&im_id)?, obj_id)
    }

    /// Path of image `im_id` in sub-directory `sub` (`rgb`, `depth`, ...).
    pub fn image_path(&self, sub: &str, im_id: u32) -> PathBuf {
        self.dir.join(sub).join(format!("{im_id:06}.png"))
    }

    /// Loads RGB and depth of image `im_id`, checking both against the camera's resolution.
    pub fn load_frame(&self, im_id: u32) -> Result<RgbdFrame> {
        let cam = self.cameras.get(&im_id).ok_or_else(|| {
            Error::param(
                "im_id",
                im_id,
                format!("not in {}", self.dir.join("scene_camera.json").display()),
            )
        })?;
        let paths = (
            self.image_path("rgb", im_id),
            self.image_path("depth", im_id),
        );
        decode_frame(im_id, (&paths.0, &paths.1), cam)
    }
}

/// Decodes image `im_id` from its RGB and 16-bit depth PNGs (`paths`), checking both against the
/// camera's resolution: the one BOP frame reader (scenes and the pipeline's decode stage).
pub fn decode_frame(
    im_id: u32,
    (rgb_path, depth_path): (&Path, &Path),
    cam: &FrameCamera,
) -> Result<RgbdFrame> {
    let camera = cam.camera;
    let rgb = decode_image(rgb_path)?.to_rgb8();
    check_size(rgb_path, rgb.dimensions(), &camera)?;
    let depth = read_depth_png(depth_path, cam.depth_scale)?;
    check_size(
        depth_path,
        (depth.width as u32, depth.height as u32),
        &camera,
    )?;
    Ok(RgbdFrame::new(im_id, camera, Some(rgb), Some(depth)))
}

/// Rejects an image whose size disagrees with the camera (and hence with the other image).
fn check_size(path: &Path, (w, h): (u32, u32), camera: &Camera) -> Result<()> {
    if (w, h) == (camera.width, camera.height) {
        return Ok(());
    }
    Err(Error::format(
        path,
        format!(
            "resolution {w}x{h} disagrees with the camera / rgb resolution {}x{}",
            camera.width, camera.height
        ),
    ))
}
#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::Vector3;

    /// A fresh temporary directory for one test, removed when the test ends.
    fn tmp_dir(name: &str) -> crate::core::scratch::ScratchDir {
        crate::core::scratch::ScratchDir::new(&format!("bop-{name}"))
    }

    fn camera(w: u32, h: u32) -> Camera {
        Camera::from_k(&[500.0, 0.0, 2.0, 0.0, 510.0, 1.5, 0.0, 0.0, 1.0], w, h).unwrap()
    }

    fn pose(i: f64) -> Isometry3<f64> {
        Isometry3::new(
            Vector3::new(0.01 * i, -0.02, 0.8 + 0.001 * i),
            Vector3::new(0.3, -0.2 * i, 0.1),
        )
    }

    /// A synthetic 4×3 scene `test/000007` with two images, written with the public writers.
    fn write_scene(root: &Path) -> (BTreeMap<u32, FrameCamera>, BTreeMap<u32, Vec<GtPose>>) {
        let dir = root.join("test").join("000007");
        std::fs::create_dir_all(dir.join("rgb")).unwrap();
        std::fs::create_dir_all(dir.join("depth")).unwrap();
        let mut cams = BTreeMap::new();
        let mut gt = BTreeMap::new();
        for id in [3u32, 4] {
            cams.insert(
                id,
                FrameCamera {
                    camera: camera(4, 3),
                    depth_scale: 0.1,
                },
            );
            gt.insert(
                id,
                vec![
                    GtPose {
                        obj_id: 2,
                        pose: pose(id as f64),
                    },
                    GtPose {
                        obj_id: 5,
                        pose: pose(-1.0),
                    },
                ],
            );
            let rgb = image::RgbImage::from_fn(4, 3, |x, y| {
                image::Rgb([x as u8 * 10, y as u8 * 20, id as u8])
            });
            write_rgb_png(dir.join("rgb").join(format!("{id:06}.png")), &rgb).unwrap();
            let mut depth = ImageF32::zeros(4, 3);
            depth
                .data
                .iter_mut()
                .enumerate()
                .for_each(|(i, d)| *d = 0.5 + 0.01 * i as f32);
            depth.data[0] = 0.0;
            write_depth_png(dir.join("depth").join(format!("{id:06}.png")), &depth, 0.1).unwrap();
        }
        write_scene_camera(dir.join("scene_camera.json"), &cams).unwrap();
        write_scene_gt(dir.join("scene_gt.json"), &gt).unwrap();
        (cams, gt)
    }

    fn assert_pose_close(a: &Isometry3<f64>, b: &Isometry3<f64>) {
        assert!(
            (a.translation.vector - b.translation.vector).norm() < 1e-12,
            "{a} vs {b}"
        );
        assert!(a.rotation.angle_to(&b.rotation) < 1e-9, "{a} vs {b}");
    }

    #[test]
    fn scene_round_trip_through_writers_and_loader() {
        let root = tmp_dir("scene");
        let (cams, gt) = write_scene(&root);
        let ds = BopDataset::open(&root).unwrap();
        let scene = ds.scene("test", 7).unwrap();
        assert_eq!(scene.image_ids, vec![3, 4]);
        assert_eq!(scene.cameras, cams);
        assert!(scene.cam_w2c.is_empty());
        for (id, list) in &gt {
            for (a, b) in list.iter().zip(&scene.gt[id]) {
                assert_eq!(a.obj_id, b.obj_id);
                assert_pose_close(&a.pose, &b.pose);
            }
        }
        let frame = scene.load_frame(4).unwrap();
        assert_eq!(frame.rgb.as_ref().unwrap().get_pixel(3, 2).0, [30, 40, 4]);
        let depth = frame.depth.as_ref().unwrap();
        assert_eq!(depth.depth_at(0, 0), None);
        assert!((depth.depth_at(1, 0).unwrap() - 0.51).abs() < 1e-6);
        assert!((depth.depth_at(3, 2).unwrap() - 0.61).abs() < 1e-6);
        assert_eq!(depth.depth_at(4, 0), None);
        assert_eq!(frame.camera, camera(4, 3));
        assert_eq!(ds.splits_with_scene(7).unwrap(), vec!["test".to_string()]);
        assert!(scene
            .load_frame(99)
            .unwrap_err()
            .to_string()
            .contains("im_id"));
    }

    #[test]
    fn frame_errors_name_the_file() {
        let root = tmp_dir("errors");
        write_scene(&root);
        let ds = BopDataset::open(&root).unwrap();
        let scene = ds.scene("test", 7).unwrap();
        let depth4 = scene.image_path("depth", 4);
        std::fs::remove_file(&depth4).unwrap();
        let e = scene.load_frame(4).unwrap_err().to_string();
        assert!(e.contains("depth/000004.png"), "{e}");
        write_depth_png(&depth4, &ImageF32::zeros(5, 3), 0.1).unwrap();
        let e = scene.load_frame(4).unwrap_err().to_string();
        assert!(
            e.contains("depth/000004.png") && e.contains("5x3") && e.contains("4x3"),
            "{e}"
        );
        std::fs::write(scene.image_path("rgb", 3), b"\x89PNG\r\n\x1a\nnot really").unwrap();
        let e = scene.load_frame(3).unwrap_err().to_string();
        assert!(e.contains("rgb/000003.png") && e.contains("decode"), "{e}");
        // An 8-bit depth image is rejected.
        image::GrayImage::new(4, 3).save(&depth4).unwrap();
        let e = scene.load_frame(4).unwrap_err().to_string();
        assert!(e.contains("16-bit"), "{e}");
        assert!(BopDataset::open(root.join("nope")).is_err());
    }

    /// `scene_gt_info.json` gives each GT instance's visible fraction; an object's is known
    /// where the image holds one instance of it; a bad entry, or a list whose length is not the
    /// image's GT instances, is an error naming the file, the image and the field.
    #[test]
    fn visible_fractions_are_read_per_instance() {
        let root = tmp_dir("visib");
        write_scene(&root);
        let info = root.join("test/000007/scene_gt_info.json");
        let open = || BopDataset::open(&root).unwrap().scene("test", 7);
        assert!(
            open().unwrap().visibility.is_empty(),
            "no file, no fractions"
        );
        let good = r#"{"3": [{"visib_fract": 0.95}, {"visib_fract": 0.4}]}"#;
        std::fs::write(&info, good).unwrap();
        let scene = open().unwrap();
        let at = |im: u32, obj: u32| scene.visible_fraction(im, obj);
        assert_eq!(
            (at(3, 2), at(3, 5), at(3, 9), at(4, 2)),
            (Some(0.95), Some(0.4), None, None)
        );
        let twice = [
            GtPose {
                obj_id: 2,
                pose: pose(0.0),
            },
            GtPose {
                obj_id: 2,
                pose: pose(1.0),
            },
        ];
        assert_eq!(
            visible_fraction(&twice, &[0.5, 0.6], 2),
            None,
            "two instances"
        );
        for (text, needle) in [
            (
                r#"{"3": [{"visib_fract": 1.5}]}"#,
                "image 3, entry 0: visib_fract 1.5",
            ),
            (
                r#"{"3": [{"px_count_all": 3}]}"#,
                "missing field 'visib_fract'",
            ),
            (r#"{"3": {"visib_fract": 1}}"#, "image 3: expected a list"),
            (
                r#"{"4": [{"visib_fract": 1}]}"#,
                "image 4: 1 entries for the 2 GT instances",
            ),
        ] {
            std::fs::write(&info, text).unwrap();
            let e = open().unwrap_err().to_string();
            assert!(
                e.contains("scene_gt_info.json") && e.contains(needle),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn bad_json_fields_are_named() {
        let root = tmp_dir("json");
        write_scene(&root);
        let dir = root.join("test").join("000007");
        let cases = [
            (
                "scene_camera.json",
                r#"{"3": {"cam_K": [1, 0, 0, 0, 1, 0, 0, 0], "depth_scale": 1}}"#,
                "cam_K",
            ),
            (
                "scene_camera.json",
                r#"{"3": {"cam_K": [1, 0, 0, 0, 1, 0, 0, 0, 1]}}"#,
                "depth_scale",
            ),
            ("scene_camera.json", r#"{"x": {}}"#, "'x'"),
            ("scene_camera.json", r#"{"3": "#, "invalid JSON"),
            (
                "scene_camera.json",
                r#"{"3": {"cam_K": [1, 0, NaN, 0, 1, 0, 0, 0, 1], "depth_scale": 1}}"#,
                "at 'NaN, 0, 1, 0': JSON has no NaN",
            ),
            (
                "scene_gt.json",
                r#"{"3": [{"cam_R_m2c": [1,0,0,0,1,0,0,0,1], "cam_t_m2c": [0,0,1]}]}"#,
                "obj_id",
            ),
            (
                "scene_gt.json",
                r#"{"3": [{"obj_id": 1, "cam_R_m2c": [2,0,0,0,1,0,0,0,1], "cam_t_m2c": [0,0,1]}]}"#,
                "cam_R_m2c",
            ),
            (
                "scene_gt.json",
                r#"{"3": [{"obj_id": 1, "cam_R_m2c": [1,0,0,0,1,0,0,0,1], "cam_t_m2c": [0,"a",1]}]}"#,
                "cam_t_m2c",
            ),
        ];
        for (file, text, needle) in cases {
            let backup = std::fs::read(dir.join(file)).unwrap();
            std::fs::write(dir.join(file), text).unwrap();
            let e = BopDataset::open(&root)
                .unwrap()
                .scene("test", 7)
                .unwrap_err()
                .to_string();
            assert!(e.contains(file) && e.contains(needle), "{file} {text}: {e}");
            std::fs::write(dir.join(file), backup).unwrap();
        }
    }

    #[test]
    fn models_info_with_symmetries_and_camera_json() {
        let root = tmp_dir("models");
        std::fs::create_dir_all(root.join("models")).unwrap();
        let info = r#"{"1": {"diameter": 100.0, "min_x": -10, "min_y": -20, "min_z": -30, "size_x": 20,
            "size_y": 40, "size_z": 60, "symmetries_discrete": [[-1,0,0,0, 0,-1,0,0, 0,0,1,5, 0,0,0,1]],
            "symmetries_continuous": [{"axis": [0,0,2], "offset": [0,0,10]}]}}"#;
        std::fs::write(root.join("models/models_info.json"), info).unwrap();
        let ds = BopDataset::open(&root).unwrap();
        let m = &ds.models_info().unwrap()[&1];
        assert!((m.diameter - 0.1).abs() < 1e-15);
        assert!((m.min - Vector3::new(-0.01, -0.02, -0.03)).norm() < 1e-15);
        assert!((m.symmetries_discrete[0].translation.z - 0.005).abs() < 1e-15);
        assert!((m.symmetries_discrete[0].rotation.angle() - std::f64::consts::PI).abs() < 1e-12);
        assert_eq!(m.symmetries_continuous[0].axis, Vector3::z());
        assert!((m.symmetries_continuous[0].offset.z - 0.01).abs() < 1e-15);
        let e = ds.model(3).unwrap_err().to_string();
        assert!(e.contains("obj_000003.ply"), "{e}");
        // Image size from camera.json when there are no images.
        write_camera_json(root.join("camera.json"), &camera(64, 48), 1.0).unwrap();
        let dir = ds.scene_dir("val", 1);
        std::fs::create_dir_all(&dir).unwrap();
        let cams = BTreeMap::from([(
            0,
            FrameCamera {
                camera: camera(64, 48),
                depth_scale: 1.0,
            },
        )]);
        write_scene_camera(dir.join("scene_camera.json"), &cams).unwrap();
        let scene = ds.scene("val", 1).unwrap();
        assert_eq!(scene.cameras, cams);
        assert!(scene.gt.is_empty());
    }

    #[test]
    fn depth_writer_rejects_unrepresentable_depths() {
        let dir = tmp_dir("depth");
        let mut d = ImageF32::zeros(2, 2);
        d.data[3] = 7.0; // 7 m at 0.1 mm per unit = 70000 > 65535
        let e = write_depth_png(dir.join("d.png"), &d, 0.1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("(1, 1)"), "{e}");
        d.data[3] = -1.0;
        assert!(write_depth_png(dir.join("d.png"), &d, 1.0).is_err());
        d.data[3] = 7.0;
        write_depth_png(dir.join("d.png"), &d, 1.0).unwrap();
        assert_eq!(read_depth_png(dir.join("d.png"), 1.0).unwrap(), d);
    }

    #[test]
    fn results_csv_round_trip_append_and_errors() {
        let dir = tmp_dir("results");
        let path = dir.join("res.csv");
        let rows: Vec<PoseResult> = (0..3)
            .map(|i| PoseResult {
                scene_id: 49,
                im_id: i + 1,
                obj_id: 6,
                score: 0.5,
                pose: pose(i as f64),
                time: 0.012,
            })
            .collect();
        write_results(&path, &rows[..2]).unwrap();
        let mut w = ResultsWriter::append(&path).unwrap();
        w.write(&rows[2]).unwrap();
        drop(w);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines().filter(|l| l.starts_with("scene_id")).count(),
            1
        );
        let back = read_results(&path).unwrap();
        assert_eq!(back.len(), 3);
        for (a, b) in rows.iter().zip(&back) {
            assert_eq!(
                (a.scene_id, a.im_id, a.obj_id, a.score, a.time),
                (b.scene_id, b.im_id, b.obj_id, b.score, b.time)
            );
            assert_pose_close(&a.pose, &b.pose);
        }
        // A new file gets a header through append too.
        let fresh = dir.join("fresh.csv");
        ResultsWriter::append(&fresh)
            .unwrap()
            .write(&rows[0])
            .unwrap();
        assert!(std::fs::read_to_string(&fresh)
            .unwrap()
            .starts_with(RESULTS_HEADER));
        // Errors name the line and field.
        let bad = [
            ("1,2,3,0.5,1 0 0 0 1 0 0 0 1,0 0 1", "7 comma-separated"),
            ("1,2,x,0.5,1 0 0 0 1 0 0 0 1,0 0 1,1", "obj_id"),
            ("1,2,3,0.5,1 0 0 0 1 0 0 0,0 0 1,1", "field R"),
            ("1,2,3,0.5,1 0 0 0 1 0 0 0 -1,0 0 1,1", "rotation"),
            (
                "1,2,3,0.5,1 0 NaN 0 1 0 0 0 1,0 0 1,1",
                "field R: NaN is not a finite",
            ),
            (
                "1,2,3,0.5,1 0 0 0 1 0 0 0 1,0 inf 1,1",
                "field t: inf is not a finite",
            ),
            ("1,2,3,0.5,1 0 0 0 1 0 0 0 1,0 0,1", "field t"),
        ];
        for (row, needle) in bad {
            std::fs::write(&path, format!("{RESULTS_HEADER}\n{row}\n")).unwrap();
            let e = read_results(&path).unwrap_err().to_string();
            assert!(
                e.contains("res.csv") && e.contains("line 2") && e.contains(needle),
                "{row}: {e}"
            );
        }
    }

    /// Real YCB-V frames: skipped (with a message) when the dataset is absent, except on CI.
    #[test]
    fn real_ycbv_frames_have_sane_depth_and_gt() {
        let Some(root) = crate::core::datasets::shared_or_skip("ycbv-mini") else {
            return;
        };
        let ds = BopDataset::open(root).unwrap();
        for (split, scene_id, n_obj) in [("train_real", 2, 6), ("test", 49, 4)] {
            let scene = ds.scene(split, scene_id).unwrap();
            assert_eq!(scene.image_ids, (1..=20).collect::<Vec<_>>());
            assert_eq!(scene.cam_w2c.len(), 20);
            let frame = scene.load_frame(1).unwrap();
            assert_eq!((frame.camera.width, frame.camera.height), (640, 480));
            let depth = frame.depth.as_ref().unwrap();
            let mut valid: Vec<f32> = depth.data.iter().copied().filter(|&d| d > 0.0).collect();
            valid.sort_by(f32::total_cmp);
            let median = valid[valid.len() / 2];
            let coverage = valid.len() as f64 / depth.data.len() as f64;
            eprintln!(
                "{split}/{scene_id:06} frame 1: depth median {median:.3} m, coverage {coverage:.3}"
            );
            assert!((0.5..1.5).contains(&median), "median depth {median}");
            assert!(coverage > 0.5);
            // Each GT object centre is seen at about its depth (surface in front of the centre).
            let gt = &scene.gt[&1];
            assert_eq!(gt.len(), n_obj);
            for g in gt {
                let c = Point3::from(g.pose.translation.vector);
                let uv = frame.camera.project(&c).unwrap();
                assert!(frame.camera.contains(uv.x, uv.y));
                if let Some(d) = depth.depth_at(uv.x.round() as usize, uv.y.round() as usize) {
                    assert!(
                        (d as f64 - c.z).abs() < 0.15,
                        "obj {}: depth {d} vs centre z {}",
                        g.obj_id,
                        c.z
                    );
                }
            }
        }
    }
}
