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
use crate::domains::pose::driver::{object_models, Driver, InitFrom, Keep};
use crate::domains::pose::mesh::Mesh;
use crate::domains::pose::tracker::{FrameOutput, TrackerConfig};
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
    driver: Driver,
    obj_ids: Vec<u32>,
    last: Option<(f64, Vec<Isometry3<f64>>)>,
}

/// [`crate::domains::pose::tracker::Tracker`] as a pipeline filter stage.
pub struct TrackerProcessor {
    name: String,
    config: TrackerConfig,
    meshes: Arc<MeshLibrary>,
    objects: Option<Vec<u32>>,
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
            active: None,
        }
    }

    /// The mesh of object `obj_id`, or an error naming it.
    fn model(&self, obj_id: u32) -> Result<Arc<Mesh>> {
        self.meshes
            .get(&obj_id)
            .cloned()
            .ok_or_else(|| Error::param("obj_id", obj_id, "no mesh for this object"))
    }

    /// Start tracking the objects of `gt` (the first frame `im_id` of a scene), from the ground
    /// truth with the configured init noise (the same poses as `hdpf track`).
    fn start(&mut self, scene_id: u32, im_id: u32, gt: &[GtPose]) -> Result<Active> {
        let wanted = |g: &&GtPose| self.objects.as_ref().is_none_or(|o| o.contains(&g.obj_id));
        let ids: Vec<u32> = gt.iter().filter(wanted).map(|g| g.obj_id).collect();
        if ids.is_empty() {
            let present: Vec<u32> = gt.iter().map(|g| g.obj_id).collect();
            let msg = format!(
                "image {im_id} (the scene's first) has no ground truth for the tracked objects \
                 {:?}; it has objects {present:?}",
                self.objects.as_deref().unwrap_or_default()
            );
            return Err(Error::param("scene", scene_id, msg));
        }
        let config = self.config.clone();
        let models = object_models(&config, &ids, |id| self.model(id))?;
        let start = (scene_id, im_id, gt);
        Ok(Active {
            scene_id,
            driver: Driver::start(
                &config,
                models,
                start,
                &InitFrom::GroundTruth,
                Keep::Nothing,
            )?,
            obj_ids: ids,
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
            self.active = Some(self.start(input.scene_id, input.frame.im_id, input.gt)?);
        }
        let active = self.active.as_mut().expect("started above");
        let im_id = input.frame.im_id;
        let out = (active.driver.frame(im_id, Ok(input.frame), 0.0)?)
            .ok_or_else(|| Error::param("frame", im_id, "not tracked"))?;
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
            judgement: out.judgement[k],
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
