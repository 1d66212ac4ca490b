//! The adapter from [`crate::domains::pose::tracker::Tracker`] to the pipeline's [`FrameProcessor`].
//!
//! It starts a tracker on the first frame of every scene (objects and initial poses from that
//! frame's ground truth, perturbed by the configured init noise), converts decoded frames to the
//! tracker's input (as `hdpf track` does), and turns its output into [`ObjectEstimate`]s with a velocity (finite
//! difference of consecutive estimates over their capture times) and a covariance.

use crate::core::error::{Error, Result};
use crate::core::filter::Diagnostics;
use crate::core::geometry::se3;
use crate::domains::pose::bop::GtPose;
use crate::domains::pose::commands::track_frame;
use crate::domains::pose::mesh::Mesh;
use crate::domains::pose::tracker::{
    FrameOutput, ModalityKind, ObjectModel, Tracker, TrackerConfig,
};
use crate::runtime::pipeline::message::{ObjectEstimate, ParticleCloud};
use crate::runtime::pipeline::processor::{FrameInput, FrameProcessor};
use nalgebra::{Isometry3, Vector3, Vector6};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Meshes by object id (metres).
pub type MeshLibrary = BTreeMap<u32, Arc<Mesh>>;

/// A running tracker for one scene.
struct Active {
    scene_id: u32,
    tracker: Tracker,
    obj_ids: Vec<u32>,
    last: Option<(f64, Vec<Isometry3<f64>>)>,
}

/// [`Tracker`] as a pipeline filter stage.
pub struct TrackerProcessor {
    name: String,
    config: TrackerConfig,
    meshes: Arc<MeshLibrary>,
    objects: Option<Vec<u32>>,
    models: BTreeMap<u32, ObjectModel>,
    active: Option<Active>,
}

impl TrackerProcessor {
    /// A processor named `name` tracking `objects` (all objects with ground truth when `None`).
    pub fn new(
        name: impl Into<String>,
        config: TrackerConfig,
        meshes: Arc<MeshLibrary>,
        objects: Option<Vec<u32>>,
    ) -> Self {
        Self {
            name: name.into(),
            config,
            meshes,
            objects,
            models: BTreeMap::new(),
            active: None,
        }
    }

    fn model(&mut self, obj_id: u32) -> Result<ObjectModel> {
        if let Some(m) = self.models.get(&obj_id) {
            return Ok(m.clone());
        }
        let mesh = self
            .meshes
            .get(&obj_id)
            .ok_or_else(|| Error::param("obj_id", obj_id, "no mesh for this object"))?;
        let n = self.config.surface_samples;
        let model = ObjectModel::from_mesh(obj_id, mesh, n, self.config.seed)?;
        self.models.insert(obj_id, model.clone());
        Ok(model)
    }

    /// Start tracking the objects of `gt` (the first frame of a scene).
    fn start(&mut self, scene_id: u32, gt: &[GtPose]) -> Result<Active> {
        let wanted = |g: &&GtPose| self.objects.as_ref().is_none_or(|o| o.contains(&g.obj_id));
        let gts: Vec<GtPose> = gt.iter().filter(wanted).copied().collect();
        if gts.is_empty() {
            let msg = "the first frame of the scene has no ground truth for the tracked objects";
            return Err(Error::param("scene", scene_id, msg));
        }
        let mut models = Vec::new();
        let mut initial = Vec::new();
        for g in &gts {
            let m = self.model(g.obj_id)?;
            // The same seed as `hdpf track`, so a launch file reproduces the command.
            let seed = self.config.seed.wrapping_add(u64::from(g.obj_id));
            let pose = match &self.config.init_noise {
                Some(n) => n.perturb(&g.pose, &m.centre, seed),
                None => g.pose,
            };
            initial.push(pose);
            models.push(m);
        }
        Ok(Active {
            scene_id,
            tracker: Tracker::new(self.config.clone(), models, initial)?,
            obj_ids: gts.iter().map(|g| g.obj_id).collect(),
            last: None,
        })
    }
}

impl FrameProcessor for TrackerProcessor {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, input: &FrameInput<'_>) -> Result<Vec<ObjectEstimate>> {
        if self
            .active
            .as_ref()
            .is_none_or(|a| a.scene_id != input.scene_id)
        {
            self.active = Some(self.start(input.scene_id, input.gt)?);
        }
        let grey = self.config.modalities.contains(&ModalityKind::Edge);
        let track_frame = track_frame(input.frame, grey);
        let active = self.active.as_mut().expect("started above");
        let out = active.tracker.step(&track_frame)?;
        let estimates = estimates(active, &out, input.capture);
        active.last = Some((input.capture, out.poses));
        Ok(estimates)
    }
}

fn estimates(active: &Active, out: &FrameOutput, capture: f64) -> Vec<ObjectEstimate> {
    (0..active.obj_ids.len())
        .map(|k| ObjectEstimate {
            obj_id: active.obj_ids[k],
            pose: out.poses[k],
            covariance: out.covariance[k],
            velocity: velocity(active.last.as_ref(), k, &out.poses[k], capture),
            particles: Some(cloud(&out.particles[k])),
            spread: out.spread[k],
            diagnostics: Diagnostics {
                ess: out.ess[k],
                loss_std: out.loss_std[k],
                loss_mean: f64::NAN,
                seconds: out.seconds[k],
                ..Diagnostics::default()
            },
        })
        .collect()
}

/// The tracker's particles as a cloud for sinks (f32 translations and losses).
fn cloud(particles: &[(Vector3<f64>, f64)]) -> ParticleCloud {
    ParticleCloud {
        translations: particles
            .iter()
            .map(|(t, _)| [t.x as f32, t.y as f32, t.z as f32])
            .collect(),
        losses: particles.iter().map(|(_, l)| *l as f32).collect(),
    }
}

/// Twist that carried the previous estimate to `pose` over the capture interval (left convention).
fn velocity(
    last: Option<&(f64, Vec<Isometry3<f64>>)>,
    k: usize,
    pose: &Isometry3<f64>,
    capture: f64,
) -> Vector6<f64> {
    match last {
        Some((t, poses)) if capture > *t => se3::log(&(pose * poses[k].inverse())) / (capture - t),
        _ => Vector6::zeros(),
    }
}
