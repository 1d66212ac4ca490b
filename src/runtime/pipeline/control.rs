//! The control-loop handle: a controller thread polls the latest estimate without ever blocking and
//! extrapolates it to its own clock with the constant-velocity model.

use crate::core::geometry::se3;
use crate::runtime::pipeline::message::{Clock, EstimateMsg, Judgement};
use arc_swap::ArcSwapOption;
use nalgebra::{Isometry3, Matrix6, Vector6};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One object's state as published to controllers.
#[derive(Clone, Debug)]
pub struct ObjectState {
    /// BOP object id.
    pub obj_id: u32,
    /// Model-to-camera pose at capture time (metres).
    pub pose: Isometry3<f64>,
    /// Tangent-space covariance `[ρ; φ]` (m², rad²).
    pub covariance: Matrix6<f64>,
    /// Twist `[v; ω]` per second, left convention (camera frame).
    pub velocity: Vector6<f64>,
    /// What the tracker judged of the estimate ([`Judgement`]): its quality and visible
    /// fraction; `held`, the estimate is suspect, trust it less; `lost`, do not act on its pose.
    pub judgement: Judgement,
}

/// The latest estimate of one tracker, as a controller sees it.
#[derive(Clone, Debug)]
pub struct Published {
    /// Tracker name.
    pub tracker: String,
    /// Stream position of the frame.
    pub seq: u64,
    /// BOP image id.
    pub im_id: u32,
    /// Capture time of the frame (pipeline clock seconds).
    pub capture: f64,
    /// Publish time of the estimate (pipeline clock seconds).
    pub publish: f64,
    /// The tracked objects.
    pub objects: Vec<ObjectState>,
}

impl Published {
    /// The state of `obj_id`, if tracked.
    pub fn object(&self, obj_id: u32) -> Option<&ObjectState> {
        self.objects.iter().find(|o| o.obj_id == obj_id)
    }

    /// Pose of `obj_id` extrapolated to clock time `t` with constant velocity:
    /// `exp((t − capture)·ξ̇) · pose`.
    pub fn extrapolate(&self, obj_id: u32, t: f64) -> Option<Isometry3<f64>> {
        self.object(obj_id)
            .map(|o| extrapolate(&o.pose, &o.velocity, t - self.capture))
    }

    /// Age of the estimate at clock time `t`, measured from capture (what the controller lags by).
    pub fn staleness(&self, t: f64) -> f64 {
        t - self.capture
    }
}

impl From<&EstimateMsg> for Published {
    fn from(m: &EstimateMsg) -> Self {
        Self {
            tracker: m.tracker.clone(),
            seq: m.seq,
            im_id: m.im_id,
            capture: m.capture,
            publish: m.publish,
            objects: m
                .objects
                .iter()
                .map(|o| ObjectState {
                    obj_id: o.obj_id,
                    pose: o.pose,
                    covariance: o.covariance,
                    velocity: o.velocity,
                    judgement: o.judgement,
                })
                .collect(),
        }
    }
}

/// Constant-velocity prediction `exp(dt·ξ̇) · pose`.
pub fn extrapolate(pose: &Isometry3<f64>, velocity: &Vector6<f64>, dt: f64) -> Isometry3<f64> {
    se3::perturb(pose, &(velocity * dt))
}

/// A cheap, cloneable handle on the latest estimate of one tracker.
///
/// The filter stage stores each new estimate with one atomic pointer swap; [`ControlHandle::latest`]
/// is a lock-free load, so a control thread never waits on the pipeline.
#[derive(Clone)]
pub struct ControlHandle {
    slot: Arc<ArcSwapOption<Published>>,
    updates: Arc<AtomicU64>,
    clock: Clock,
}

impl ControlHandle {
    /// A handle with nothing published yet, reading time from `clock`.
    pub fn new(clock: Clock) -> Self {
        Self {
            slot: Arc::new(ArcSwapOption::empty()),
            updates: Arc::new(AtomicU64::new(0)),
            clock,
        }
    }

    /// The latest published estimate (never blocks).
    pub fn latest(&self) -> Option<Arc<Published>> {
        self.slot.load_full()
    }

    /// Current pipeline clock time (seconds), the time base of every stamp.
    pub fn now(&self) -> f64 {
        self.clock.now()
    }

    /// The pipeline clock.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Number of estimates published so far.
    pub fn updates(&self) -> u64 {
        self.updates.load(Ordering::Acquire)
    }

    /// Pose of `obj_id` extrapolated to clock time `t` from the latest estimate.
    pub fn extrapolate(&self, obj_id: u32, t: f64) -> Option<Isometry3<f64>> {
        self.latest()?.extrapolate(obj_id, t)
    }

    /// Publish a new estimate (called by the filter stage).
    pub fn publish(&self, p: Published) {
        self.slot.store(Some(Arc::new(p)));
        self.updates.fetch_add(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::Vector3;

    #[test]
    fn extrapolates_with_constant_velocity() {
        let pose = Isometry3::translation(0.0, 0.0, 1.0);
        let v = Vector6::new(0.1, 0.0, 0.0, 0.0, 0.0, 0.0);
        let p = extrapolate(&pose, &v, 0.5);
        assert!((p.translation.vector - Vector3::new(0.05, 0.0, 1.0)).norm() < 1e-12);
    }

    /// A controller sees each object's judgement as the tracker published it.
    #[test]
    fn the_handle_carries_quality_visible_held_and_lost() {
        use crate::runtime::pipeline::message::ObjectEstimate;
        let judged = [
            (0.15, 0.1, true, true),
            (0.4, 0.5, true, false),
            (0.9, 1.0, false, false),
        ];
        for (quality, visible, held, lost) in judged {
            let msg = EstimateMsg::of(vec![ObjectEstimate::judged(quality, visible, held, lost)]);
            let o = Published::from(&msg).objects[0].clone();
            let j = o.judgement;
            assert_eq!(
                (j.quality, j.visible, j.held, j.lost),
                (quality, visible, held, lost)
            );
        }
    }

    #[test]
    fn handle_starts_empty_and_returns_latest() {
        let h = ControlHandle::new(Clock::new());
        assert!(h.latest().is_none());
        let published = |seq| Published {
            tracker: "t".into(),
            seq,
            im_id: seq as u32,
            capture: 0.0,
            publish: 0.0,
            objects: vec![],
        };
        h.publish(published(1));
        h.publish(published(2));
        assert_eq!(h.latest().map(|p| p.seq), Some(2));
        assert_eq!(h.updates(), 2);
    }
}
