//! Mean pose errors of tracking results against a BOP scene's ground truth (ADD, ADD-S, rotation,
//! translation), pooled and per object.

use crate::core::error::Result;
use crate::domains::pose::bop::{BopDataset, GtPose, PoseResult, Scene};
use crate::domains::pose::metrics::{evaluate_with, EvalOptions, EvalReport};
use std::collections::BTreeMap;

/// Mean pose errors of a set of results against the GT.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ErrorSummary {
    /// Number of (image, object) estimates evaluated.
    pub count: usize,
    /// Mean ADD (mm).
    pub add_mm: f64,
    /// Mean ADD-S (mm).
    pub adds_mm: f64,
    /// Mean rotation error (deg).
    pub rot_deg: f64,
    /// Mean translation error (mm).
    pub trans_mm: f64,
}

impl ErrorSummary {
    fn push(&mut self, add: f64, adds: f64, rot: f64, trans: f64) {
        let n = self.count as f64;
        let upd = |m: &mut f64, x: f64| *m = (*m * n + x) / (n + 1.0);
        upd(&mut self.add_mm, add * 1e3);
        upd(&mut self.adds_mm, adds * 1e3);
        upd(&mut self.rot_deg, rot);
        upd(&mut self.trans_mm, trans * 1e3);
        self.count += 1;
    }
}

/// Mean errors over the found targets of an evaluation, pooled and per object.
pub fn mean_errors(report: &EvalReport) -> (ErrorSummary, BTreeMap<u32, ErrorSummary>) {
    let (mut all, mut per) = (
        ErrorSummary::default(),
        BTreeMap::<u32, ErrorSummary>::new(),
    );
    for t in report.targets.iter().filter(|t| t.found) {
        let e = (t.add_m, t.adds_m, t.rot_err_deg, t.trans_err_mm / 1e3);
        all.push(e.0, e.1, e.2, e.3);
        per.entry(t.obj_id).or_default().push(e.0, e.1, e.2, e.3);
    }
    (all, per)
}

/// Evaluate `results` of one scene (ADD/ADD-S with the metrics module) and average the errors.
pub fn errors(
    dataset: &BopDataset,
    scene: &Scene,
    results: &[PoseResult],
) -> Result<(ErrorSummary, BTreeMap<u32, ErrorSummary>)> {
    Ok(mean_errors(&scene_eval(dataset, scene, results)?))
}

/// The BOP evaluation of `results` of one scene (its ground truth, the objects the results name).
pub fn scene_eval(
    dataset: &BopDataset,
    scene: &Scene,
    results: &[PoseResult],
) -> Result<EvalReport> {
    gt_eval(dataset, scene.scene_id, &scene.gt, results)
}

/// The BOP evaluation of `results` against the ground truth `gt` (per image id) of scene
/// `scene_id` — a BOP scene's or a recording's; `dataset` gives the meshes.
pub fn gt_eval(
    dataset: &BopDataset,
    scene_id: u32,
    gt: &BTreeMap<u32, Vec<GtPose>>,
    results: &[PoseResult],
) -> Result<EvalReport> {
    let options = EvalOptions {
        obj_ids: Some(results.iter().map(|r| r.obj_id).collect()),
        ground_truth: Some(BTreeMap::from([(scene_id, gt.clone())])),
        ..EvalOptions::default()
    };
    evaluate_with(dataset, results, &options)
}
