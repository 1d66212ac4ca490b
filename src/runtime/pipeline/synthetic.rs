//! Synthetic recordings for launch files: render a BOP-format sequence when it is missing, stream a
//! synthetic sequence live from memory ([`SynthSource`]), and list the scenes of a dataset.

use crate::core::error::{Error, Result};
use crate::domains::pose::synth::{self, Motion, ObjectSource, SynthConfig, Synthesizer};
use crate::runtime::pipeline::message::FrameData;
use crate::runtime::pipeline::source::{Poll, Source, SourceFrame};
use crate::runtime::pipeline::tracking::MeshLibrary;
use clap::ValueEnum;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `[source.synth]`: the synthetic sequence rendered when the dataset is missing.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynthSpec {
    /// Objects: built-in primitives (`box`, `cylinder`) or object ids of a BOP model folder.
    #[serde(default)]
    pub objects: Vec<String>,
    /// Number of frames.
    #[serde(default = "default_synth_frames")]
    pub frames: usize,
    /// Motion profile (`slow` or `fast`).
    #[serde(default = "default_motion")]
    pub motion: String,
    /// Image size `[width, height]` (default 640×480, the YCB-V camera).
    pub resolution: Option<[u32; 2]>,
    /// BOP model folder for objects given by id.
    pub models: Option<PathBuf>,
}

fn default_synth_frames() -> usize {
    60
}
fn default_motion() -> String {
    "fast".into()
}

/// The generator configuration of `spec` writing to `root`.
pub fn synth_config(root: &Path, spec: &SynthSpec, seed: u64) -> Result<SynthConfig> {
    let mut cfg = SynthConfig::new(root);
    if !spec.objects.is_empty() {
        cfg.objects = spec
            .objects
            .iter()
            .map(|o| {
                o.parse::<ObjectSource>()
                    .map_err(|e| Error::param("source.synth.objects", o, e))
            })
            .collect::<Result<_>>()?;
    }
    cfg.frames = spec.frames;
    cfg.motion = Motion::from_str(&spec.motion, true)
        .map_err(|_| Error::param("source.synth.motion", &spec.motion, "expected slow or fast"))?;
    cfg.seed = seed;
    if let Some([w, h]) = spec.resolution {
        cfg.camera = synth::ycbv_camera(w, h);
    }
    cfg.models_dir = spec.models.clone();
    Ok(cfg)
}

/// Render the sequence `spec` into the BOP dataset directory `root`.
pub fn render_dataset(root: &Path, spec: &SynthSpec, seed: u64) -> Result<()> {
    eprintln!("rendering a synthetic sequence into {} ...", root.display());
    let summary = synth::generate(&synth_config(root, spec, seed)?)?;
    eprintln!("{summary}");
    Ok(())
}

/// A synthetic sequence rendered frame by frame in the source thread, as a live camera would
/// deliver it (nothing touches the disk).
pub struct SynthSource {
    synth: Synthesizer,
    next: usize,
}

impl SynthSource {
    /// A live source for `cfg`.
    pub fn new(cfg: &SynthConfig) -> Result<Self> {
        Ok(Self {
            synth: Synthesizer::new(cfg)?,
            next: 0,
        })
    }

    /// The meshes of the generated objects, by object id.
    pub fn meshes(&self) -> MeshLibrary {
        self.synth
            .models()
            .map(|(_, id, mesh)| (id, Arc::new(mesh.clone())))
            .collect()
    }

    /// Ground truth of every frame, in order.
    pub fn ground_truth(&self) -> Vec<Vec<crate::domains::pose::bop::GtPose>> {
        (0..self.synth.len()).map(|k| self.synth.gt(k)).collect()
    }
}

impl Source for SynthSource {
    fn name(&self) -> String {
        "synth".into()
    }

    fn poll(&mut self) -> Result<Poll> {
        if self.next >= self.synth.len() {
            return Ok(Poll::End);
        }
        let f = self.synth.frame(self.next)?;
        self.next += 1;
        Ok(Poll::Frame(SourceFrame {
            scene_id: self.synth.config().scene_id,
            im_id: f.im_id(),
            gt: Arc::new(f.gt),
            data: FrameData::Decoded(Arc::new(f.frame)),
        }))
    }

    fn len_hint(&self) -> Option<usize> {
        Some(self.synth.len())
    }
}

/// Every `(split, scene_id)` of the dataset at `root`: directories `root/SPLIT/NNNNNN` holding a
/// `scene_camera.json`, sorted.
pub fn scenes_of(root: &Path) -> Result<Vec<(String, u32)>> {
    let mut out = Vec::new();
    for split in read_dirs(root)? {
        let Some(split_name) = split.file_name().and_then(|s| s.to_str()).map(String::from) else {
            continue;
        };
        for scene in read_dirs(&split)? {
            let id = scene
                .file_name()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse().ok());
            if let Some(id) = id.filter(|_| scene.join("scene_camera.json").exists()) {
                out.push((split_name.clone(), id));
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(Error::format(
            root,
            "no scenes (split/NNNNNN/scene_camera.json) found",
        ));
    }
    Ok(out)
}

fn read_dirs(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    Ok(rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect())
}
