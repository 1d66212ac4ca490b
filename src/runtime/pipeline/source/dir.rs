//! `[source] kind = "dir"`: a BOP scene directory that another process is still writing.

use super::{Poll, Source, SourceFrame};
use crate::core::error::Result;
use crate::domains::pose::bop::{self, BopDataset, FrameCamera, GtPose};
use crate::runtime::pipeline::control_loop::GtTimeline;
use crate::runtime::pipeline::message::{EncodedFrame, FrameData};
use crate::runtime::pipeline::plugin::{
    load_all_meshes, missing, OpenedSource, SourceContext, SourcePlugin, SpecError,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `[source]` with `kind = "dir"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirSourceSpec {
    /// `"dir"`.
    pub kind: String,
    /// The scene directory to watch.
    pub path: Option<PathBuf>,
    /// Scene id reported for its frames.
    #[serde(default)]
    pub scene_id: u32,
    /// End after this many seconds without a new frame.
    #[serde(default = "default_idle")]
    pub idle_timeout_s: f64,
    /// A BOP dataset whose `models/` hold the meshes (none: trackers need no meshes from here).
    pub dataset: Option<PathBuf>,
}

fn default_idle() -> f64 {
    5.0
}

impl SourcePlugin for DirSourceSpec {
    fn check(&self) -> std::result::Result<(), SpecError> {
        if self.path.is_none() {
            return Err(missing("dir", "path"));
        }
        if !(self.idle_timeout_s.is_finite() && self.idle_timeout_s >= 0.0) {
            let why = format!("idle_timeout_s = {} must be ≥ 0", self.idle_timeout_s);
            return Err(SpecError::table(why));
        }
        Ok(())
    }

    fn open(&self, _ctx: &SourceContext) -> Result<OpenedSource> {
        let dir = self.path.clone().unwrap_or_default();
        let idle = crate::core::duration::seconds(self.idle_timeout_s);
        let (meshes, eval_points) = match &self.dataset {
            Some(root) => {
                let ds = BopDataset::open(root)?;
                let meshes = load_all_meshes(&ds)?;
                let points = super::bop::dataset_eval_points(&ds, meshes.keys().copied())?;
                (meshes, points)
            }
            None => Default::default(),
        };
        Ok(OpenedSource {
            source: Box::new(DirectorySource::new(dir, self.scene_id, idle)),
            meshes,
            timeline: GtTimeline::default(),
            eval_points,
        })
    }
}

/// A BOP scene directory that another process is still writing (`rgb/`, `depth/`,
/// `scene_camera.json`, optionally `scene_gt.json`).
///
/// A frame is emitted, in image-id order, once both its PNGs exist, their sizes stayed the same
/// over two polls and its camera is in `scene_camera.json`. The stream ends when a file named
/// `DONE` exists and every frame was emitted, or after `idle_timeout` without a new frame.
pub struct DirectorySource {
    dir: PathBuf,
    scene_id: u32,
    idle_timeout: Duration,
    last_progress: Instant,
    emitted: Option<u32>,
    sizes: BTreeMap<u32, (u64, u64)>,
    cameras: BTreeMap<u32, FrameCamera>,
    gt: BTreeMap<u32, Vec<GtPose>>,
}

impl DirectorySource {
    /// Watch `dir` (scene id `scene_id`), ending after `idle_timeout` without progress.
    pub fn new(dir: impl Into<PathBuf>, scene_id: u32, idle_timeout: Duration) -> Self {
        Self {
            dir: dir.into(),
            scene_id,
            idle_timeout,
            last_progress: Instant::now(),
            emitted: None,
            sizes: BTreeMap::new(),
            cameras: BTreeMap::new(),
            gt: BTreeMap::new(),
        }
    }

    fn png(&self, sub: &str, id: u32) -> PathBuf {
        self.dir.join(sub).join(format!("{id:06}.png"))
    }

    /// Image ids with an RGB file, newer than the last emitted one, in order.
    fn candidates(&self) -> Vec<u32> {
        let Ok(rd) = std::fs::read_dir(self.dir.join("rgb")) else {
            return Vec::new();
        };
        let mut ids: Vec<u32> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.path().file_stem()?.to_str()?.parse().ok())
            .filter(|&id| self.emitted.is_none_or(|last| id > last))
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Whether both PNGs of `id` exist and kept their sizes since the last poll.
    fn stable(&mut self, id: u32) -> bool {
        let size = |p: PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let now = (size(self.png("rgb", id)), size(self.png("depth", id)));
        let before = self.sizes.insert(id, now);
        now.0 > 0 && now.1 > 0 && before == Some(now)
    }

    /// The camera of `id`, re-reading `scene_camera.json` when it is not known yet.
    fn camera(&mut self, id: u32) -> Option<FrameCamera> {
        if !self.cameras.contains_key(&id) {
            let (w, h) = image::image_dimensions(self.png("rgb", id)).ok()?;
            let path = self.dir.join("scene_camera.json");
            self.cameras = bop::read_scene_camera(&path, w, h).ok()?;
            if let Ok(gt) = bop::read_scene_gt(self.dir.join("scene_gt.json")) {
                self.gt = gt;
            }
        }
        self.cameras.get(&id).copied()
    }

    fn frame(&mut self, id: u32, camera: FrameCamera) -> SourceFrame {
        self.emitted = Some(id);
        self.last_progress = Instant::now();
        self.sizes.remove(&id);
        let encoded = EncodedFrame {
            rgb: self.png("rgb", id),
            depth: self.png("depth", id),
            camera,
        };
        SourceFrame {
            scene_id: self.scene_id,
            im_id: id,
            gt: Arc::new(self.gt.get(&id).cloned().unwrap_or_default()),
            data: FrameData::Encoded(Arc::new(encoded)),
        }
    }

    fn finished(&self, pending: bool) -> bool {
        let done = self.dir.join("DONE").exists() && !pending;
        done || self.last_progress.elapsed() > self.idle_timeout
    }
}

impl Source for DirectorySource {
    fn name(&self) -> String {
        format!("dir:{}", self.dir.display())
    }

    fn poll(&mut self) -> Result<Poll> {
        let ids = self.candidates();
        if let Some(&id) = ids.first() {
            if self.stable(id) {
                if let Some(cam) = self.camera(id) {
                    return Ok(Poll::Frame(self.frame(id, cam)));
                }
            }
        }
        if !self.finished(!ids.is_empty()) {
            return Ok(Poll::Pending);
        }
        if self.emitted.is_none() {
            // Ending with nothing is legitimate (a producer that never started) but never silent.
            let found = match self.dir.join("rgb").is_dir() {
                true => "has no complete frame (rgb/ and depth/ PNGs and scene_camera.json)",
                false => "has no rgb/ folder",
            };
            let found = if self.dir.is_dir() {
                found
            } else {
                "does not exist"
            };
            eprintln!(
                "dir source: {} {found} after {:.1} s without progress; ending with no frames",
                self.dir.display(),
                self.idle_timeout.as_secs_f64()
            );
        }
        Ok(Poll::End)
    }
}
