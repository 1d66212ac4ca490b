//! `[source] kind = "bop"`: recorded BOP scenes played one after the other (rendered first from
//! `[source.synth]` when the dataset folder does not exist yet).

use super::synth::{render_dataset, SynthSpec};
use super::{Poll, Source, SourceFrame};
use crate::core::error::{Error, Result};
use crate::domains::pose::bop::{self, BopDataset};
use crate::runtime::pipeline::control_loop::GtTimeline;
use crate::runtime::pipeline::message::{EncodedFrame, FrameData};
use crate::runtime::pipeline::plugin::{
    load_meshes, OpenedSource, SourceContext, SourcePlugin, SpecError,
};
use crate::runtime::pipeline::ModelPoints;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toml::Spanned;

/// `[source]` with `kind = "bop"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BopSourceSpec {
    /// `"bop"`.
    pub kind: String,
    /// Dataset root, also where meshes come from (`models/`).
    pub dataset: Option<PathBuf>,
    /// Scenes as `"split/scene_id"`, e.g. `["test/49"]` (default: every scene of the dataset,
    /// split by split in name order).
    #[serde(default)]
    pub scenes: Vec<Spanned<String>>,
    /// At most this many frames per scene.
    pub max_frames: Option<usize>,
    /// Render this synthetic sequence into `dataset` first if it does not exist.
    pub synth: Option<SynthSpec>,
}

impl SourcePlugin for BopSourceSpec {
    fn check(&self) -> std::result::Result<(), SpecError> {
        for sc in &self.scenes {
            parse_scene(sc.get_ref()).map_err(|why| SpecError::at(sc, why))?;
        }
        check_max_frames(self.max_frames)?;
        if self.dataset.is_none() {
            return Err(crate::runtime::pipeline::plugin::missing("bop", "dataset"));
        }
        match &self.synth {
            Some(spec) => super::synth::synth_config(Path::new("."), spec, 0)
                .map(drop)
                .map_err(|e| SpecError::table(e.to_string())),
            None => Ok(()),
        }
    }

    fn open(&self, ctx: &SourceContext) -> Result<OpenedSource> {
        let root = crate::core::datasets::resolve(&self.dataset.clone().unwrap_or_default());
        if let (Some(synth), false) = (&self.synth, root.exists()) {
            render_dataset(&root, synth, ctx.seed)?;
        }
        let scenes = self.scene_list(&root)?;
        let source = SequenceSource::open(&root, &scenes, self.max_frames)?;
        let ds = BopDataset::open(&root)?;
        let timeline = GtTimeline::from_scenes(&ds, &scenes, self.max_frames, ctx.rate_hz)?;
        let meshes = load_meshes(&ds, &timeline.object_ids())?;
        Ok(OpenedSource {
            source: Box::new(source),
            eval_points: dataset_eval_points(&ds, meshes.keys().copied())?,
            meshes,
            timeline,
        })
    }
}

/// The evaluation points (`models_points/`) of those of `ids` that the dataset ships them for;
/// an error names a malformed points file.
pub(super) fn dataset_eval_points(
    ds: &BopDataset,
    ids: impl Iterator<Item = u32>,
) -> Result<ModelPoints> {
    let mut out = ModelPoints::new();
    for id in ids {
        if let Some(points) = ds.shipped_points(id)? {
            out.insert(id, Arc::new(points));
        }
    }
    Ok(out)
}

impl BopSourceSpec {
    /// The scenes of the table, or every scene of the dataset.
    fn scene_list(&self, root: &Path) -> Result<Vec<(String, u32)>> {
        if !self.scenes.is_empty() {
            return (self.scenes.iter())
                .map(|s| parse_scene(s.get_ref()).map_err(Error::Other))
                .collect();
        }
        scenes_of(root)
    }
}

/// `max_frames`, when given, must be at least 1 (0 would run nothing and report NaN).
pub(super) fn check_max_frames(max_frames: Option<usize>) -> std::result::Result<(), SpecError> {
    match max_frames {
        Some(0) => Err(SpecError::table(
            "max_frames = 0 plays nothing: give at least 1 or leave it out",
        )),
        _ => Ok(()),
    }
}

/// `"test/49"` → `("test", 49)`.
pub fn parse_scene(s: &str) -> std::result::Result<(String, u32), String> {
    let (split, id) = s
        .rsplit_once('/')
        .ok_or_else(|| format!("scene `{s}`: expected \"split/scene_id\", e.g. \"test/49\""))?;
    let id = id
        .parse()
        .map_err(|_| format!("scene `{s}`: `{id}` is not a scene id"))?;
    Ok((split.to_string(), id))
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
