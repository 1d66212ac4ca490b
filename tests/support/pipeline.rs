//! Helpers shared by the pipeline tests: a tiny BOP scene written to a temp dir, and a test-double
//! frame processor that reports the ground truth (it exercises the pipeline, not tracking).
#![allow(dead_code)]

use hdpf::core::filter::Diagnostics;
use hdpf::core::geometry::Camera;
use hdpf::domains::pose::bop::{self, FrameCamera, GtPose};
use hdpf::domains::pose::frame::ImageF32;
use hdpf::domains::pose::mesh::Mesh;
use hdpf::runtime::pipeline::{FrameInput, FrameProcessor, ObjectEstimate, ParticleCloud};
use nalgebra::{Isometry3, Matrix6, Vector6};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Image size of the test scenes.
pub const W: u32 = 32;
/// Image height.
pub const H: u32 = 24;

/// A fresh empty directory under the system temp dir, removed when the test ends.
pub fn temp_dir(name: &str) -> hdpf::core::scratch::ScratchDir {
    hdpf::core::scratch::ScratchDir::new(&format!("test-{name}"))
}

/// Camera of the test scenes.
pub fn camera() -> FrameCamera {
    FrameCamera {
        camera: Camera {
            fx: 30.0,
            fy: 30.0,
            cx: 16.0,
            cy: 12.0,
            width: W,
            height: H,
        },
        depth_scale: 1.0,
    }
}

/// Ground-truth pose of object 1 in frame `i`: moving 2 mm per frame along x at 0.5 m.
pub fn gt_pose(i: u32) -> Isometry3<f64> {
    Isometry3::translation(0.002 * f64::from(i), 0.0, 0.5)
}

/// Write image `i` (RGB + depth) of the scene at `dir`.
pub fn write_frame(dir: &Path, i: u32) {
    let rgb = image::RgbImage::from_fn(W, H, |x, y| {
        image::Rgb([(x * 8) as u8, (y * 10) as u8, i as u8])
    });
    bop::write_rgb_png(dir.join("rgb").join(format!("{i:06}.png")), &rgb).unwrap();
    let mut depth = ImageF32::zeros(W as usize, H as usize);
    depth.data.iter_mut().for_each(|d| *d = 0.5);
    bop::write_depth_png(dir.join("depth").join(format!("{i:06}.png")), &depth, 1.0).unwrap();
}

/// Write the scene metadata (cameras and ground truth of images `1..=n`).
pub fn write_meta(dir: &Path, n: u32) {
    let cams: BTreeMap<u32, FrameCamera> = (1..=n).map(|i| (i, camera())).collect();
    bop::write_scene_camera(dir.join("scene_camera.json"), &cams).unwrap();
    let gt: BTreeMap<u32, Vec<GtPose>> = (1..=n)
        .map(|i| {
            (
                i,
                vec![GtPose {
                    obj_id: 1,
                    pose: gt_pose(i),
                }],
            )
        })
        .collect();
    bop::write_scene_gt(dir.join("scene_gt.json"), &gt).unwrap();
}

/// A dataset at `root` with scene `test/1` of `n` frames and a 5 cm cube as object 1.
pub fn write_dataset(root: &Path, n: u32) -> PathBuf {
    let dir = root.join("test").join("000001");
    std::fs::create_dir_all(dir.join("rgb")).unwrap();
    std::fs::create_dir_all(dir.join("depth")).unwrap();
    std::fs::create_dir_all(root.join("models")).unwrap();
    Mesh::cuboid(0.05, 0.05, 0.05)
        .unwrap()
        .write_ply(root.join("models").join("obj_000001.ply"))
        .unwrap();
    write_meta(&dir, n);
    (1..=n).for_each(|i| write_frame(&dir, i));
    dir
}

/// Test double: reports each frame's ground truth as the estimate, records what it saw, can be
/// slowed down and made to fail at an image id.
pub struct EchoGt {
    pub name: String,
    pub seen: Arc<Mutex<Vec<u64>>>,
    pub delay: Duration,
    pub fail_at: Option<u32>,
    pub panic_at: Option<u32>,
    pub particles: bool,
}

impl EchoGt {
    /// A processor named `name`; returns it and the list of frame positions it processed.
    pub fn new(name: &str) -> (Self, Arc<Mutex<Vec<u64>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let p = Self {
            name: name.into(),
            seen: seen.clone(),
            delay: Duration::ZERO,
            fail_at: None,
            panic_at: None,
            particles: false,
        };
        (p, seen)
    }
}

impl FrameProcessor for EchoGt {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, input: &FrameInput<'_>) -> hdpf::Result<Vec<ObjectEstimate>> {
        std::thread::sleep(self.delay);
        if self.fail_at == Some(input.frame.im_id) {
            return Err(hdpf::Error::Other("injected failure".into()));
        }
        if self.panic_at == Some(input.frame.im_id) {
            panic!("injected panic in the model");
        }
        self.seen.lock().unwrap().push(input.seq);
        Ok(input
            .gt
            .iter()
            .map(|g| ObjectEstimate {
                obj_id: g.obj_id,
                pose: g.pose,
                covariance: Matrix6::identity() * 1e-6,
                velocity: Vector6::zeros(),
                particles: self.particles.then(|| cloud(&g.pose)),
                spread: 0.001,
                judgement: hdpf::domains::pose::tracker::Judgement {
                    quality: 1.0,
                    visible: 1.0,
                    held: false,
                    lost: false,
                },
                diagnostics: Diagnostics::default(),
            })
            .collect())
    }
}

/// Five particles around `pose` with losses 0..4.
fn cloud(pose: &Isometry3<f64>) -> ParticleCloud {
    let t = pose.translation.vector.cast::<f32>();
    ParticleCloud {
        translations: (0..5).map(|i| [t.x + 0.001 * i as f32, t.y, t.z]).collect(),
        losses: (0..5).map(|i| i as f32).collect(),
    }
}
