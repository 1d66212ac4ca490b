//! Sources: recorded BOP sequences, and a directory that is still being written.
//!
//! A source only says which frame comes next; the source stage paces playback, stamps capture
//! times and numbers frames.

use crate::core::error::{Error, Result};
use crate::domains::pose::bop::{self, BopDataset, FrameCamera, GtPose};
use crate::runtime::pipeline::message::{EncodedFrame, FrameData};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A frame as a source produces it.
#[derive(Clone, Debug)]
pub struct SourceFrame {
    /// BOP scene id.
    pub scene_id: u32,
    /// BOP image id.
    pub im_id: u32,
    /// Ground truth, when known.
    pub gt: Arc<Vec<GtPose>>,
    /// The images.
    pub data: FrameData,
}

/// What a source has to offer right now.
#[derive(Debug)]
pub enum Poll {
    /// The next frame.
    Frame(SourceFrame),
    /// Nothing yet (live sources); ask again shortly.
    Pending,
    /// End of stream.
    End,
}

/// A stream of frames.
pub trait Source: Send {
    /// Name for messages.
    fn name(&self) -> String;
    /// The next frame, [`Poll::Pending`] if a live source has none yet, or [`Poll::End`].
    fn poll(&mut self) -> Result<Poll>;
    /// Number of frames, when known in advance.
    fn len_hint(&self) -> Option<usize> {
        None
    }
}

/// Recorded BOP scenes played one after the other.
pub struct SequenceSource {
    frames: std::vec::IntoIter<SourceFrame>,
    total: usize,
    name: String,
}

impl SequenceSource {
    /// The scenes `(split, scene_id)` of the dataset at `root`, at most `max_frames` per scene.
    pub fn open(root: &Path, scenes: &[(String, u32)], max_frames: Option<usize>) -> Result<Self> {
        let ds = BopDataset::open(root)?;
        let mut frames = Vec::new();
        for (split, id) in scenes {
            let scene = ds.scene(split, *id)?;
            let ids = scene
                .image_ids
                .iter()
                .take(max_frames.unwrap_or(usize::MAX));
            frames.extend(
                ids.map(|&im_id| scene_frame(&scene, im_id))
                    .collect::<Result<Vec<_>>>()?,
            );
        }
        let name = format!("bop:{}", root.display());
        Ok(Self {
            total: frames.len(),
            frames: frames.into_iter(),
            name,
        })
    }
}

fn scene_frame(scene: &bop::Scene, im_id: u32) -> Result<SourceFrame> {
    let camera = *scene.cameras.get(&im_id).ok_or_else(|| {
        Error::format(
            scene.dir.join("scene_camera.json"),
            format!("no camera for image {im_id}"),
        )
    })?;
    let encoded = EncodedFrame {
        rgb: scene.image_path("rgb", im_id),
        depth: scene.image_path("depth", im_id),
        camera,
    };
    Ok(SourceFrame {
        scene_id: scene.scene_id,
        im_id,
        gt: Arc::new(scene.gt.get(&im_id).cloned().unwrap_or_default()),
        data: FrameData::Encoded(Arc::new(encoded)),
    })
}

impl Source for SequenceSource {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn poll(&mut self) -> Result<Poll> {
        Ok(self.frames.next().map_or(Poll::End, Poll::Frame))
    }
    fn len_hint(&self) -> Option<usize> {
        Some(self.total)
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
        Ok(if self.finished(!ids.is_empty()) {
            Poll::End
        } else {
            Poll::Pending
        })
    }
}
