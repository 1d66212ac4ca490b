//! `[source] kind = "synth"`: a synthetic sequence rendered frame by frame in memory, as a live
//! camera would deliver it ([`SynthSource`]); and `[source.synth]`, the sequence description also
//! used to render a BOP folder when a `bop` source's dataset is missing.

use crate::core::error::{Error, Result};
use crate::domains::pose::synth::{self, Motion, ObjectSource, SynthConfig, Synthesizer};
use crate::runtime::pipeline::control_loop::GtTimeline;
use crate::runtime::pipeline::message::FrameData;
use crate::runtime::pipeline::plugin::{
    missing, OpenedSource, SourceContext, SourcePlugin, SpecError,
};
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

/// `[source]` with `kind = "synth"` and its `[source.synth]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynthSourceSpec {
    /// `"synth"`.
    pub kind: String,
    /// The sequence.
    pub synth: Option<SynthSpec>,
}

impl SourcePlugin for SynthSourceSpec {
    fn check(&self) -> std::result::Result<(), SpecError> {
        let spec =
            (self.synth.as_ref()).ok_or_else(|| missing("synth", "a [source.synth] table"))?;
        synth_config(Path::new("."), spec, 0)
            .map(drop)
            .map_err(|e| SpecError::table(e.to_string()))
    }

    fn open(&self, ctx: &SourceContext) -> Result<OpenedSource> {
        let spec =
            (self.synth.as_ref()).ok_or_else(|| Error::from(missing("synth", "[source.synth]")))?;
        // A live source writes nothing; the root only names the sequence.
        let root = std::env::temp_dir().join("hdpf-synth-live");
        let source = SynthSource::new(&synth_config(&root, spec, ctx.seed)?)?;
        let frames = (source.ground_truth().into_iter())
            .map(|gt| gt.into_iter().map(|g| (g.obj_id, g.pose)).collect())
            .collect();
        Ok(OpenedSource {
            meshes: source.meshes(),
            timeline: GtTimeline::new(ctx.rate_hz, frames),
            source: Box::new(source),
        })
    }
}
