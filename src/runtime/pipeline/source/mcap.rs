//! `[source] kind = "mcap"`: a rosbag2 / MCAP recording, frames in colour-stamp order. The file is
//! read and checked when the source opens (topics, pairing, camera, registration — see
//! [`crate::domains::recording::mcap_read`]); each frame is decoded in the source thread, so
//! frames leave it decoded, stamped with their colour header stamp.

use super::{Poll, Source, SourceFrame};
use crate::core::error::Result;
use crate::domains::pose::bop::BopDataset;
use crate::domains::recording::mcap_read::{
    open_recording, ReadOptions, Recording, DEFAULT_TOLERANCE_NS,
};
use crate::runtime::pipeline::control_loop::GtTimeline;
use crate::runtime::pipeline::message::FrameData;
use crate::runtime::pipeline::plugin::{
    load_all_meshes, load_meshes, missing, OpenedSource, SourceContext, SourcePlugin, SpecError,
};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use toml::Spanned;

/// `[source]` with `kind = "mcap"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McapSourceSpec {
    /// `"mcap"`.
    pub kind: String,
    /// The recording.
    pub path: Option<PathBuf>,
    /// A BOP dataset whose `models/` hold the meshes of the recorded objects.
    pub dataset: Option<PathBuf>,
    /// Colour topic (default: the recording's only colour image topic).
    pub color_topic: Option<String>,
    /// Depth topic (default: the only depth image topic).
    pub depth_topic: Option<String>,
    /// camera_info topic (default: the only one, or the one beside the colour topic).
    pub camera_info_topic: Option<String>,
    /// Largest colour–depth stamp difference paired, milliseconds (default 10).
    pub tolerance_ms: Option<Spanned<f64>>,
    /// At most this many frames.
    pub max_frames: Option<usize>,
    /// Scene id of the frames when the recording does not carry hdpf's own topic (default 0).
    #[serde(default)]
    pub scene_id: u32,
}

impl McapSourceSpec {
    /// The reader options of the table.
    pub fn read_options(&self) -> ReadOptions {
        let tolerance_ns = (self.tolerance_ms.as_ref())
            .map_or(DEFAULT_TOLERANCE_NS, |t| (t.get_ref() * 1e6).round() as u64);
        ReadOptions {
            color_topic: self.color_topic.clone(),
            depth_topic: self.depth_topic.clone(),
            camera_info_topic: self.camera_info_topic.clone(),
            tolerance_ns,
        }
    }
}

impl SourcePlugin for McapSourceSpec {
    fn check(&self) -> std::result::Result<(), SpecError> {
        if self.path.is_none() {
            return Err(missing("mcap", "path"));
        }
        super::bop::check_max_frames(self.max_frames)?;
        match &self.tolerance_ms {
            Some(t) if !(t.get_ref().is_finite() && *t.get_ref() >= 0.0 && *t.get_ref() < 1e6) => {
                Err(SpecError::at(t, "tolerance_ms must be ≥ 0 and below 1e6"))
            }
            _ => Ok(()),
        }
    }

    fn open(&self, ctx: &SourceContext) -> Result<OpenedSource> {
        let path = self.path.clone().unwrap_or_default();
        let source = McapSource::open(path, &self.read_options(), self.scene_id, self.max_frames)?;
        let frames = (source.gt.iter())
            .map(|gt| gt.iter().map(|g| (g.obj_id, g.pose)).collect())
            .collect();
        let timeline = GtTimeline::new(ctx.rate_hz, frames);
        let meshes = match &self.dataset {
            Some(root) if timeline.object_ids().is_empty() => {
                load_all_meshes(&BopDataset::open(root)?)?
            }
            Some(root) => load_meshes(&BopDataset::open(root)?, &timeline.object_ids())?,
            None => Default::default(),
        };
        Ok(OpenedSource {
            source: Box::new(source),
            meshes,
            timeline,
            eval_points: Default::default(),
        })
    }
}

/// Frames of an MCAP recording, decoded one by one.
pub struct McapSource {
    recording: Recording,
    next: usize,
    end: usize,
    scene_id: u32,
    /// Ground truth of every frame (from hdpf's own topic; empty lists without it).
    gt: Vec<Arc<Vec<crate::domains::pose::bop::GtPose>>>,
}

impl McapSource {
    /// Opens and checks the recording at `path`; frames get scene id `scene_id` unless the
    /// recording carries its own; at most `max_frames` frames.
    pub fn open(
        path: PathBuf,
        opts: &ReadOptions,
        scene_id: u32,
        max_frames: Option<usize>,
    ) -> Result<Self> {
        let recording = open_recording(&path, opts)?;
        if let Some(note) = recording.unpaired_note() {
            eprintln!("{note}");
        }
        let end = recording.len().min(max_frames.unwrap_or(usize::MAX));
        let gt = (0..end)
            .map(|i| match &recording.frames[i].bop {
                Some(b) => b.ground_truth(&path).map(Arc::new),
                None => Ok(Arc::new(Vec::new())),
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            recording,
            next: 0,
            end,
            scene_id,
            gt,
        })
    }
}

impl Source for McapSource {
    fn name(&self) -> String {
        format!("mcap:{}", self.recording.path.display())
    }

    fn poll(&mut self) -> Result<Poll> {
        if self.next >= self.end {
            return Ok(Poll::End);
        }
        let i = self.next;
        self.next += 1;
        let f = match self.recording.frame(i) {
            Ok(f) => f,
            // One corrupt frame is skipped and reported downstream; the recording goes on.
            Err(e) => {
                return Ok(Poll::Frame(SourceFrame {
                    scene_id: self.scene_id,
                    im_id: self.recording.im_id(i),
                    gt: self.gt[i].clone(),
                    data: FrameData::Undecodable(e.to_string().into()),
                }))
            }
        };
        let scene_id = f.bop.as_ref().map_or(self.scene_id, |b| b.scene_id);
        Ok(Poll::Frame(SourceFrame {
            scene_id,
            im_id: f.frame.im_id,
            gt: self.gt[i].clone(),
            data: FrameData::Decoded(Arc::new(f.frame)),
        }))
    }

    fn len_hint(&self) -> Option<usize> {
        Some(self.end)
    }
}
