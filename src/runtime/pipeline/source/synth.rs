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
    /// Live source only: the trajectory runs forward over its first `period` frames, then back,
    /// and so on (ping-pong, so the motion stays continuous), for `frames` frames in all. A long
    /// run then sees a stationary scene — the same rendering and tracking work in every minute —
    /// as a soak test needs; without it the objects wander and the work drifts with them.
    pub period: Option<usize>,
}

impl SynthSpec {
    /// The period, checked: at least 2 frames.
    fn checked_period(&self) -> Result<Option<usize>> {
        match self.period {
            Some(p) if p < 2 => Err(Error::param(
                "source.synth.period",
                p,
                "must be at least 2 frames (forward, then back)",
            )),
            p => Ok(p),
        }
    }
}

/// Index into a ping-pong loop over `period` poses: `0, 1, …, P−1, P−2, …, 1, 0, 1, …`
/// (cycle length 2(P − 1)).
pub fn ping_pong(k: usize, period: usize) -> usize {
    if period < 2 {
        return 0;
    }
    let cycle = 2 * (period - 1);
    let r = k % cycle;
    if r < period {
        r
    } else {
        cycle - r
    }
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
    cfg.motion = Motion::from_str(&spec.motion, true).map_err(|_| {
        Error::param(
            "source.synth.motion",
            &spec.motion,
            "expected slow, fast or extreme",
        )
    })?;
    cfg.seed = seed;
    if let Some([w, h]) = spec.resolution {
        cfg.camera = synth::ycbv_camera(w, h);
    }
    cfg.models_dir = spec.models.clone();
    Ok(cfg)
}

/// Render the sequence `spec` into the BOP dataset directory `root`.
pub fn render_dataset(root: &Path, spec: &SynthSpec, seed: u64) -> Result<()> {
    if let Some(p) = spec.period {
        return Err(Error::param(
            "source.synth.period",
            p,
            "applies to the live `synth` source only; a rendered BOP folder has no loop",
        ));
    }
    eprintln!("rendering a synthetic sequence into {} ...", root.display());
    let summary = synth::generate(&synth_config(root, spec, seed)?)?;
    eprintln!("{summary}");
    Ok(())
}

/// A synthetic sequence rendered frame by frame in the source thread, as a live camera would
/// deliver it (nothing touches the disk).
pub struct SynthSource {
    synth: Synthesizer,
    /// Frames delivered in all (`cfg.frames`).
    len: usize,
    /// Ping-pong period, if the trajectory loops.
    period: Option<usize>,
    next: usize,
}

impl SynthSource {
    /// A live source for `cfg`.
    pub fn new(cfg: &SynthConfig) -> Result<Self> {
        Self::looping(cfg, None)
    }

    /// A live source for `cfg` whose trajectory ping-pongs over its first `period` frames
    /// ([`ping_pong`]); image ids still count up to `cfg.frames`.
    pub fn looping(cfg: &SynthConfig, period: Option<usize>) -> Result<Self> {
        cfg.validate()?;
        let period = period.filter(|&p| p < cfg.frames);
        let mut poses = cfg.clone();
        if let Some(p) = period {
            poses.frames = p;
        }
        Ok(Self {
            synth: Synthesizer::new(&poses)?,
            len: cfg.frames,
            period,
            next: 0,
        })
    }

    /// The trajectory index of delivered frame `k`.
    fn pose_index(&self, k: usize) -> usize {
        self.period.map_or(k, |p| ping_pong(k, p))
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
        (0..self.len)
            .map(|k| self.synth.gt(self.pose_index(k)))
            .collect()
    }
}

impl Source for SynthSource {
    fn name(&self) -> String {
        "synth".into()
    }

    fn poll(&mut self) -> Result<Poll> {
        if self.next >= self.len {
            return Ok(Poll::End);
        }
        let mut f = self.synth.frame(self.pose_index(self.next))?;
        self.next += 1;
        f.frame.im_id = self.next as u32;
        Ok(Poll::Frame(SourceFrame {
            scene_id: self.synth.config().scene_id,
            im_id: f.frame.im_id,
            gt: Arc::new(f.gt),
            data: FrameData::Decoded(Arc::new(f.frame)),
        }))
    }

    fn len_hint(&self) -> Option<usize> {
        Some(self.len)
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
        (spec.checked_period())
            .and_then(|_| synth_config(Path::new("."), spec, 0))
            .map(drop)
            .map_err(|e| SpecError::table(e.to_string()))
    }

    fn open(&self, ctx: &SourceContext) -> Result<OpenedSource> {
        let spec =
            (self.synth.as_ref()).ok_or_else(|| Error::from(missing("synth", "[source.synth]")))?;
        // A live source writes nothing; the root only names the sequence.
        let root = std::env::temp_dir().join("hdpf-synth-live");
        let cfg = synth_config(&root, spec, ctx.seed)?;
        let source = SynthSource::looping(&cfg, spec.checked_period()?)?;
        let frames = (source.ground_truth().into_iter())
            .map(|gt| gt.into_iter().map(|g| (g.obj_id, g.pose)).collect())
            .collect();
        Ok(OpenedSource {
            meshes: source.meshes(),
            timeline: GtTimeline::new(ctx.rate_hz, frames),
            source: Box::new(source),
            eval_points: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_pong_runs_forward_then_back() {
        let got: Vec<usize> = (0..10).map(|k| ping_pong(k, 4)).collect();
        assert_eq!(got, [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]);
        assert_eq!(ping_pong(7, 1), 0);
    }

    #[test]
    fn a_looping_source_repeats_its_scene_with_fresh_image_ids() {
        let mut cfg = SynthConfig::new(std::env::temp_dir().join("hdpf-synth-loop-test"));
        cfg.camera = synth::ycbv_camera(64, 48);
        cfg.frames = 7;
        let mut src = SynthSource::looping(&cfg, Some(3)).unwrap();
        assert_eq!(src.len_hint(), Some(7));
        let gt = src.ground_truth();
        let mut depths = Vec::new();
        let mut ids = Vec::new();
        while let Poll::Frame(f) = src.poll().unwrap() {
            ids.push(f.im_id);
            let FrameData::Decoded(frame) = f.data else {
                panic!("a synthetic frame is decoded")
            };
            depths.push(frame.depth.as_ref().unwrap().data.clone());
        }
        assert_eq!(ids, [1, 2, 3, 4, 5, 6, 7]);
        // Frames 0,1,2,1,0,1,2: the 4th repeats the 2nd and the 5th the 1st, pose and pixels.
        assert_eq!(gt[3][0].pose, gt[1][0].pose);
        assert_eq!(gt[4][0].pose, gt[0][0].pose);
        assert_ne!(gt[2][0].pose, gt[1][0].pose);
        assert_eq!(depths[4], depths[0]);
        assert_eq!(depths[6], depths[2]);
    }

    #[test]
    fn a_period_below_two_is_refused_naming_the_key() {
        let spec = SynthSpec {
            objects: vec![],
            frames: 10,
            motion: "slow".into(),
            resolution: Some([64, 48]),
            models: None,
            period: Some(1),
        };
        let err = spec.checked_period().unwrap_err().to_string();
        assert!(
            err.contains("source.synth.period") && err.contains('1'),
            "{err}"
        );
        let err = render_dataset(
            Path::new("/nonexistent"),
            &SynthSpec {
                period: Some(5),
                ..spec
            },
            0,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("live `synth` source only"), "{err}");
    }
}
