//! Pose-error metrics: ADD, ADD-S, their AUC (All / Average), rotation and translation errors,
//! latency percentiles, and [`evaluate`] for BOP19 results against a BOP dataset's GT.

use crate::core::geometry::se3::{rotation_error_deg, translation_error};
use crate::core::geometry::KdTree;
use crate::core::stats::{self, Rank};
use crate::domains::pose::bop::{BopDataset, GtPose, PointSource, PoseResult, Scene};
use crate::{Error, Result};
use nalgebra::{Isometry3, Point3};
use serde::Serialize;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Largest threshold of the AUC curve, metres (10 cm).
pub const AUC_MAX_THRESHOLD_M: f64 = 0.1;

/// Number of 1 mm steps of the AUC curve (thresholds `0, 1, …, 100` mm).
pub const AUC_STEPS: usize = 100;

/// ADD: mean distance between model points under the two poses,
/// `ADD = (1/m) Σᵢ |T_est pᵢ − T_gt pᵢ|` (metres). `NaN` for no points.
pub fn add(points: &[Point3<f64>], est: &Isometry3<f64>, gt: &Isometry3<f64>) -> f64 {
    let sum: f64 = points.iter().map(|p| (est * p - gt * p).norm()).sum();
    sum / points.len() as f64
}

/// ADD-S: mean distance from each GT-posed model point to the nearest estimate-posed one,
/// `ADD-S = (1/m) Σᵢ minⱼ |T_gt pᵢ − T_est pⱼ|` (metres); `NaN` for no points or a non-finite
/// pose (which [`auc`] counts as a failure). Builds a k-d tree per call; use
/// [`ModelPoints`] to reuse it.
pub fn adds(points: &[Point3<f64>], est: &Isometry3<f64>, gt: &Isometry3<f64>) -> f64 {
    ModelPoints::new(points.to_vec()).adds(est, gt)
}

/// Model points with a k-d tree for repeated ADD / ADD-S evaluation.
#[derive(Debug, Clone)]
pub struct ModelPoints {
    /// The points, model frame, metres.
    pub points: Vec<Point3<f64>>,
    tree: KdTree,
}

impl ModelPoints {
    /// Indexes `points` (model frame).
    pub fn new(points: Vec<Point3<f64>>) -> ModelPoints {
        let tree = KdTree::new(&points);
        ModelPoints { points, tree }
    }

    /// [`add`] on these points.
    pub fn add(&self, est: &Isometry3<f64>, gt: &Isometry3<f64>) -> f64 {
        add(&self.points, est, gt)
    }

    /// [`adds`] on these points, with the tree built once in the model frame: since distances are
    /// rigid-invariant, `minⱼ |T_gt pᵢ − T_est pⱼ| = minⱼ |T_est⁻¹ T_gt pᵢ − pⱼ|`. Each query
    /// is bounded by its own point's distance `|T_est⁻¹ T_gt pᵢ − pᵢ|` (the ADD term, which the
    /// minimum never exceeds), so a good estimate prunes most of the tree; the minimum is the same
    /// ([`KdTree::nearest_within`]).
    pub fn adds(&self, est: &Isometry3<f64>, gt: &Isometry3<f64>) -> f64 {
        let rel = est.inverse() * gt;
        let sum: f64 = (self.points.iter())
            .map(|p| {
                let q = rel * p;
                let own = (p - q).norm_squared();
                // The own point always lies within its bound; the fallback only guards points
                // edited after the tree was built.
                let nearest = self.tree.nearest_within(&q, own);
                nearest
                    .or_else(|| self.tree.nearest(&q))
                    .map_or(f64::NAN, |(_, d)| d)
            })
            .sum();
        sum / self.points.len() as f64
    }
}

/// Area under the accuracy–threshold curve, normalized to 100:
/// `acc(τ) = |{e ≤ τ}| / n` at `τₖ = k mm`, `k = 0..100`, integrated by the trapezoid rule,
/// `AUC = 100 · (1/100) Σₖ₌₀⁹⁹ ½(acc(τₖ) + acc(τₖ₊₁))`. Errors in metres; infinite or NaN errors
/// (missing estimates) count as failures. `0` for no errors.
///
/// (The continuous integral `100·mean((1 − e/0.1)₊)` differs from this by at most 0.5.)
pub fn auc(errors_m: &[f64]) -> f64 {
    if errors_m.is_empty() {
        return 0.0;
    }
    let mut mm: Vec<f64> = errors_m
        .iter()
        .map(|e| if e.is_nan() { f64::INFINITY } else { e * 1e3 })
        .collect();
    mm.sort_by(f64::total_cmp);
    let acc = |k: usize| mm.partition_point(|&e| e <= k as f64) as f64 / mm.len() as f64;
    let area: f64 = (0..AUC_STEPS).map(|k| 0.5 * (acc(k) + acc(k + 1))).sum();
    100.0 * area / AUC_STEPS as f64
}

/// The `q`-quantile (`q ∈ [0, 1]`) by linear interpolation between order statistics
/// ([`Rank::Linear`]); `NaN` for no values.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    stats::percentile(values, q, Rank::Linear)
}

/// Latency statistics in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencyStats {
    /// Number of timed frames.
    pub n: usize,
    /// Mean, ms.
    pub mean_ms: f64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
}

impl LatencyStats {
    /// Statistics of per-frame times in seconds (negative times — BOP's "unknown" — are ignored).
    pub fn from_seconds(times_s: &[f64]) -> LatencyStats {
        let ms: Vec<f64> = times_s
            .iter()
            .filter(|t| **t >= 0.0)
            .map(|t| t * 1e3)
            .collect();
        LatencyStats {
            n: ms.len(),
            mean_ms: ms.iter().sum::<f64>() / ms.len() as f64,
            p50_ms: percentile(&ms, 0.5),
            p99_ms: percentile(&ms, 0.99),
        }
    }
}

/// The error of one target (GT object instance in one image). Missing estimates have infinite
/// errors (serialized as `null`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TargetError {
    /// Scene id.
    pub scene_id: u32,
    /// Image id.
    pub im_id: u32,
    /// Object id.
    pub obj_id: u32,
    /// Whether an estimate was matched to this target.
    pub found: bool,
    /// ADD, metres.
    pub add_m: f64,
    /// ADD-S, metres.
    pub adds_m: f64,
    /// Rotation error, degrees.
    pub rot_err_deg: f64,
    /// Translation error, millimetres.
    pub trans_err_mm: f64,
}

impl TargetError {
    /// Errors of `est` against `gt` (or a failure when `est` is `None`).
    pub fn new(
        model: &ModelPoints,
        key: (u32, u32, u32),
        gt: &Isometry3<f64>,
        est: Option<&Isometry3<f64>>,
    ) -> Self {
        let (scene_id, im_id, obj_id) = key;
        match est {
            Some(e) => TargetError {
                scene_id,
                im_id,
                obj_id,
                found: true,
                add_m: model.add(e, gt),
                adds_m: model.adds(e, gt),
                rot_err_deg: rotation_error_deg(e, gt),
                trans_err_mm: translation_error(e, gt) * 1e3,
            },
            None => TargetError {
                scene_id,
                im_id,
                obj_id,
                found: false,
                add_m: f64::INFINITY,
                adds_m: f64::INFINITY,
                rot_err_deg: f64::INFINITY,
                trans_err_mm: f64::INFINITY,
            },
        }
    }
}

/// An AUC computed two ways; always reported together so that they cannot be confused.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AucScores {
    /// "All": the AUC of all targets' errors pooled.
    pub all: f64,
    /// "Average": the mean over objects of each object's AUC.
    pub average: f64,
}

/// Metrics of one object over its targets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectMetrics {
    /// Object id.
    pub obj_id: u32,
    /// Number of targets.
    pub n_targets: usize,
    /// Targets with a matched estimate.
    pub n_found: usize,
    /// AUC of ADD, 0–100.
    pub add_auc: f64,
    /// AUC of ADD-S, 0–100.
    pub adds_auc: f64,
    /// Median rotation error over found targets, degrees.
    pub rot_err_deg_median: f64,
    /// Median translation error over found targets, millimetres.
    pub trans_err_mm_median: f64,
}

/// Pooled metrics over all targets, with labelled All / Average AUCs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsSummary {
    /// Number of targets.
    pub n_targets: usize,
    /// Targets with a matched estimate.
    pub n_found: usize,
    /// AUC of ADD (All and Average), 0–100.
    pub add_auc: AucScores,
    /// AUC of ADD-S (All and Average), 0–100.
    pub adds_auc: AucScores,
    /// Median rotation error over found targets, degrees.
    pub rot_err_deg_median: f64,
    /// Median translation error over found targets, millimetres.
    pub trans_err_mm_median: f64,
    /// Per-frame latency of the results' `time` column.
    pub latency: LatencyStats,
}

/// Median of the finite values of `f` over `errors`.
fn finite_median(errors: &[&TargetError], f: impl Fn(&TargetError) -> f64) -> f64 {
    let v: Vec<f64> = errors
        .iter()
        .map(|e| f(e))
        .filter(|x| x.is_finite())
        .collect();
    percentile(&v, 0.5)
}

/// Metrics of one object's targets.
fn object_metrics(obj_id: u32, errors: &[&TargetError]) -> ObjectMetrics {
    let col = |f: fn(&TargetError) -> f64| errors.iter().map(|e| f(e)).collect::<Vec<f64>>();
    ObjectMetrics {
        obj_id,
        n_targets: errors.len(),
        n_found: errors.iter().filter(|e| e.found).count(),
        add_auc: auc(&col(|e| e.add_m)),
        adds_auc: auc(&col(|e| e.adds_m)),
        rot_err_deg_median: finite_median(errors, |e| e.rot_err_deg),
        trans_err_mm_median: finite_median(errors, |e| e.trans_err_mm),
    }
}

/// Per-object metrics (by increasing object id) and the summary of `errors`; `times_s` are the
/// per-frame run times for the latency statistics.
pub fn summarize(errors: &[TargetError], times_s: &[f64]) -> (Vec<ObjectMetrics>, MetricsSummary) {
    let mut by_obj: BTreeMap<u32, Vec<&TargetError>> = BTreeMap::new();
    for e in errors {
        by_obj.entry(e.obj_id).or_default().push(e);
    }
    let per_object: Vec<ObjectMetrics> = by_obj
        .iter()
        .map(|(&id, es)| object_metrics(id, es))
        .collect();
    let pooled = object_metrics(0, &errors.iter().collect::<Vec<_>>());
    let mean = |f: fn(&ObjectMetrics) -> f64| {
        if per_object.is_empty() {
            0.0
        } else {
            per_object.iter().map(f).sum::<f64>() / per_object.len() as f64
        }
    };
    let summary = MetricsSummary {
        n_targets: pooled.n_targets,
        n_found: pooled.n_found,
        add_auc: AucScores {
            all: pooled.add_auc,
            average: mean(|o| o.add_auc),
        },
        adds_auc: AucScores {
            all: pooled.adds_auc,
            average: mean(|o| o.adds_auc),
        },
        rot_err_deg_median: pooled.rot_err_deg_median,
        trans_err_mm_median: pooled.trans_err_mm_median,
        latency: LatencyStats::from_seconds(times_s),
    };
    (per_object, summary)
}

// ---------------------------------------------------------------------------------------------
// Evaluation of BOP19 results

/// Which targets [`evaluate_with`] scores.
#[derive(Debug, Clone, Default)]
pub struct EvalOptions {
    /// The split of the results' scenes; `None` finds, per scene, the one split holding it.
    pub split: Option<String>,
    /// Only these objects are targets; `None` means every GT object.
    pub obj_ids: Option<BTreeSet<u32>>,
    /// Ground truth per scene id and image id to score against instead of reading the
    /// dataset's scenes (e.g. a recording's own ground truth); the dataset then only gives meshes.
    pub ground_truth: Option<BTreeMap<u32, BTreeMap<u32, Vec<GtPose>>>>,
}

/// The outcome of [`evaluate`]: per-target errors, per-object metrics and the summary.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Pooled metrics.
    pub summary: MetricsSummary,
    /// Metrics per object id.
    pub per_object: Vec<ObjectMetrics>,
    /// Every target's errors.
    pub targets: Vec<TargetError>,
    /// Result rows that matched no target (wrong image/object, or extra instances).
    pub n_unmatched_results: usize,
    /// Per object id: the points its ADD / ADD-S were measured on.
    pub points: BTreeMap<u32, PointSource>,
}

/// [`evaluate_with`] with default options: every GT instance in every image of every scene that
/// appears in `results` is a target.
pub fn evaluate(dataset: &BopDataset, results: &[PoseResult]) -> Result<EvalReport> {
    evaluate_with(dataset, results, &EvalOptions::default())
}

/// Matches BOP19 results to GT per (scene, image, object) and computes every metric.
///
/// Targets are the GT instances of every image of each scene appearing in `results` (restricted to
/// `options.obj_ids`). For `k` GT instances of an object in an image, the `k` highest-scoring
/// estimates are matched greedily (by score) to the nearest unmatched GT translation; targets left
/// without an estimate are failures at infinite error. ADD / ADD-S use the dataset's evaluation
/// points (`models_points/obj_XXXXXX.xyz`) where it has them, else the mesh vertices of
/// `models/obj_XXXXXX.ply` ([`BopDataset::eval_points`]; the report says which).
pub fn evaluate_with(
    dataset: &BopDataset,
    results: &[PoseResult],
    options: &EvalOptions,
) -> Result<EvalReport> {
    let mut est: BTreeMap<(u32, u32, u32), Vec<&PoseResult>> = BTreeMap::new();
    for r in results {
        est.entry((r.scene_id, r.im_id, r.obj_id))
            .or_default()
            .push(r);
    }
    for list in est.values_mut() {
        list.sort_by(|a, b| b.score.total_cmp(&a.score));
    }
    let scene_ids: BTreeSet<u32> = results.iter().map(|r| r.scene_id).collect();
    let mut models: BTreeMap<u32, ModelPoints> = BTreeMap::new();
    let mut points = BTreeMap::new();
    let mut targets = Vec::new();
    let mut n_matched = 0;
    for scene_id in scene_ids {
        let scene_gt = match &options.ground_truth {
            Some(gt) => gt.get(&scene_id).cloned().unwrap_or_default(),
            None => results_scene(dataset, options.split.as_deref(), scene_id)?.gt,
        };
        for (&im_id, gts) in &scene_gt {
            let mut by_obj: BTreeMap<u32, Vec<&GtPose>> = BTreeMap::new();
            for g in gts.iter().filter(|g| {
                options
                    .obj_ids
                    .as_ref()
                    .is_none_or(|s| s.contains(&g.obj_id))
            }) {
                by_obj.entry(g.obj_id).or_default().push(g);
            }
            for (obj_id, gt_list) in by_obj {
                if let Entry::Vacant(slot) = models.entry(obj_id) {
                    let (p, source) = dataset.eval_points(obj_id)?;
                    slot.insert(ModelPoints::new(p));
                    points.insert(obj_id, source);
                }
                let key = (scene_id, im_id, obj_id);
                let cands = est
                    .get(&key)
                    .map_or(&[][..], |v| &v[..v.len().min(gt_list.len())]);
                let assigned = assign(&gt_list, cands);
                n_matched += assigned.iter().flatten().count();
                for (g, e) in gt_list.iter().zip(assigned) {
                    targets.push(TargetError::new(&models[&obj_id], key, &g.pose, e.as_ref()));
                }
            }
        }
    }
    let times = frame_times(results);
    let (per_object, summary) = summarize(&targets, &times);
    Ok(EvalReport {
        summary,
        per_object,
        targets,
        n_unmatched_results: results.len() - n_matched,
        points,
    })
}

/// Scene `scene_id` of results: in `split`, or where `None` in the one split holding it.
pub fn results_scene(dataset: &BopDataset, split: Option<&str>, scene_id: u32) -> Result<Scene> {
    let split = match split {
        Some(s) => s.to_string(),
        None => find_split(dataset, scene_id)?,
    };
    dataset.scene(&split, scene_id)
}

/// The one split of `dataset` holding `scene_id`, or an error naming the candidates.
fn find_split(dataset: &BopDataset, scene_id: u32) -> Result<String> {
    let splits = dataset.splits_with_scene(scene_id)?;
    let root = dataset.root.display();
    match splits.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::param(
            "scene_id",
            scene_id,
            format!("no split of {root} holds this scene: are the results from another dataset?"),
        )),
        _ => Err(Error::param(
            "scene_id",
            scene_id,
            format!("splits {splits:?} of {root} all hold this scene: choose one (eval --split)"),
        )),
    }
}

/// Greedy matching: each candidate (in score order) takes the unmatched GT nearest in translation.
fn assign(gts: &[&GtPose], cands: &[&PoseResult]) -> Vec<Option<Isometry3<f64>>> {
    let mut out: Vec<Option<Isometry3<f64>>> = vec![None; gts.len()];
    for c in cands {
        let best = (0..gts.len())
            .filter(|&i| out[i].is_none())
            .min_by(|&a, &b| {
                translation_error(&gts[a].pose, &c.pose)
                    .total_cmp(&translation_error(&gts[b].pose, &c.pose))
            });
        if let Some(i) = best {
            out[i] = Some(c.pose);
        }
    }
    out
}

/// One time per (scene, image): the largest `time` among its rows (BOP reports one time per image).
fn frame_times(results: &[PoseResult]) -> Vec<f64> {
    let mut t: BTreeMap<(u32, u32), f64> = BTreeMap::new();
    for r in results {
        let e = t.entry((r.scene_id, r.im_id)).or_insert(r.time);
        *e = e.max(r.time);
    }
    t.into_values().collect()
}

impl fmt::Display for MetricsSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "targets                        {:>8} ({} found)",
            self.n_targets, self.n_found
        )?;
        writeln!(
            f,
            "AUC ADD   All (pooled)         {:>8.2}",
            self.add_auc.all
        )?;
        writeln!(
            f,
            "AUC ADD   Average (per object) {:>8.2}",
            self.add_auc.average
        )?;
        writeln!(
            f,
            "AUC ADD-S All (pooled)         {:>8.2}",
            self.adds_auc.all
        )?;
        writeln!(
            f,
            "AUC ADD-S Average (per object) {:>8.2}",
            self.adds_auc.average
        )?;
        writeln!(
            f,
            "median rotation error (deg)    {:>8.3}",
            self.rot_err_deg_median
        )?;
        writeln!(
            f,
            "median translation error (mm)  {:>8.2}",
            self.trans_err_mm_median
        )?;
        write!(
            f,
            "latency (ms) p50 / p99         {:>8.2} / {:.2} over {} frames",
            self.latency.p50_ms, self.latency.p99_ms, self.latency.n
        )
    }
}

impl EvalReport {
    /// Which points ADD / ADD-S were measured on, e.g. `ADD / ADD-S measured on:
    /// models_points/*.xyz (objects 3, 6)`, one clause per kind of points.
    pub fn points_line(&self) -> String {
        let mut by_source: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (id, src) in &self.points {
            by_source
                .entry(src.to_string())
                .or_default()
                .push(id.to_string());
        }
        let parts: Vec<String> = (by_source.iter())
            .map(|(src, ids)| format!("{src} (objects {})", ids.join(", ")))
            .collect();
        format!("ADD / ADD-S measured on: {}", parts.join("; "))
    }
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.points_line())?;
        writeln!(
            f,
            "{:>6} {:>8} {:>6} {:>8} {:>9} {:>9} {:>9}",
            "obj_id", "targets", "found", "AUC ADD", "AUC ADD-S", "med rot°", "med t mm"
        )?;
        for o in &self.per_object {
            writeln!(
                f,
                "{:>6} {:>8} {:>6} {:>8.2} {:>9.2} {:>9.3} {:>9.2}",
                o.obj_id,
                o.n_targets,
                o.n_found,
                o.add_auc,
                o.adds_auc,
                o.rot_err_deg_median,
                o.trans_err_mm_median
            )?;
        }
        writeln!(
            f,
            "(AUC: area under the accuracy curve of thresholds 0..{:.0} mm in 1 mm steps; med: \
             median errors)",
            AUC_MAX_THRESHOLD_M * 1e3
        )?;
        writeln!(f)?;
        writeln!(f, "{}", self.summary)?;
        write!(
            f,
            "unmatched result rows          {:>8}",
            self.n_unmatched_results
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domains::pose::bop::{
        write_results, write_scene_camera, write_scene_gt, FrameCamera,
    };
    use crate::domains::pose::Mesh;
    use nalgebra::{Translation3, UnitQuaternion, Vector3};
    use std::path::Path;

    /// Four points of a square, symmetric under 90° rotations about z.
    fn square() -> Vec<Point3<f64>> {
        vec![
            Point3::new(0.1, 0.0, 0.0),
            Point3::new(-0.1, 0.0, 0.0),
            Point3::new(0.0, 0.1, 0.0),
            Point3::new(0.0, -0.1, 0.0),
        ]
    }

    fn gt_pose() -> Isometry3<f64> {
        Isometry3::new(Vector3::new(0.05, -0.02, 0.7), Vector3::new(0.4, 0.1, -0.3))
    }

    #[test]
    fn add_of_a_translation_offset_is_its_length() {
        let gt = gt_pose();
        let est = Translation3::new(0.003, 0.004, 0.0) * gt;
        assert!((add(&square(), &est, &gt) - 0.005).abs() < 1e-15);
        assert!(adds(&square(), &est, &gt) <= 0.005 + 1e-15);
        assert_eq!(add(&square(), &gt, &gt), 0.0);
    }

    /// Bounding each query by its own point's distance gives the unbounded search's ADD-S to the
    /// bit, from near misses (offsets up to ±0.05 mm, ±0.5 mrad per axis) to far ones (±5 cm,
    /// ±1 rad), on 2000 random points in a 10 cm cube.
    #[test]
    fn bounded_queries_give_the_unbounded_adds() {
        let mut rng = crate::core::filter::rng::stream(5, 0, 0);
        use rand::Rng;
        let mut v = |s: f64| Vector3::from_fn(|_, _| (rng.random::<f64>() - 0.5) * s);
        let points: Vec<Point3<f64>> = (0..2000).map(|_| Point3::from(v(0.1))).collect();
        let model = ModelPoints::new(points.clone());
        let tree = KdTree::new(&points);
        let gt = gt_pose();
        for (t, r) in [(1e-4, 1e-3), (2e-3, 0.05), (0.1, 2.0)] {
            let est = Isometry3::new(v(t), v(r)) * gt;
            let rel = est.inverse() * gt;
            let unbounded = (points.iter())
                .map(|p| tree.nearest(&(rel * p)).unwrap().1)
                .sum::<f64>()
                / points.len() as f64;
            assert_eq!(model.adds(&est, &gt), unbounded, "error ({t}, {r})");
        }
    }

    #[test]
    fn adds_of_a_non_finite_pose_is_nan_not_a_panic() {
        let gt = gt_pose();
        let est = Translation3::new(f64::NAN, 0.0, 0.0) * gt;
        assert!(adds(&square(), &est, &gt).is_nan());
        assert!(add(&square(), &est, &gt).is_nan());
        assert_eq!(auc(&[adds(&square(), &est, &gt)]), 0.0);
    }

    #[test]
    fn adds_is_zero_for_a_symmetry_while_add_is_not() {
        let gt = gt_pose();
        let est =
            gt * UnitQuaternion::from_axis_angle(&Vector3::z_axis(), std::f64::consts::FRAC_PI_2);
        assert!((add(&square(), &est, &gt) - 0.1 * 2f64.sqrt()).abs() < 1e-12);
        assert!(adds(&square(), &est, &gt) < 1e-12);
        // Off a symmetry by 0.37 rad: ADD-S (checked by brute force) is below ADD.
        let est = gt * UnitQuaternion::from_axis_angle(&Vector3::z_axis(), 1.2);
        let brute: f64 = square()
            .iter()
            .map(|p| {
                square()
                    .iter()
                    .map(|q| (gt * p - est * q).norm())
                    .fold(f64::INFINITY, f64::min)
            })
            .sum::<f64>()
            / 4.0;
        assert!((adds(&square(), &est, &gt) - brute).abs() < 1e-15);
        assert!(brute < add(&square(), &est, &gt));
    }

    #[test]
    fn auc_of_known_error_lists() {
        assert_eq!(auc(&[0.0]), 100.0);
        assert_eq!(auc(&[f64::INFINITY, f64::NAN]), 0.0);
        assert_eq!(auc(&[0.2]), 0.0);
        assert_eq!(auc(&[]), 0.0);
        // acc = [k ≥ 50]: trapezoid sum (50 + 51)/2 over 100 steps.
        assert!((auc(&[0.0495]) - 50.5).abs() < 1e-12);
        // acc = (1 + [k ≥ 51])/4 → 25 + 49.5/4.
        assert!((auc(&[0.0, 0.0505, f64::INFINITY, 0.2]) - 37.375).abs() < 1e-12);
    }

    #[test]
    fn percentiles_interpolate() {
        assert_eq!(percentile(&[4.0, 1.0, 3.0, 2.0], 0.5), 2.5);
        assert!((percentile(&[1.0, 2.0, 3.0, 4.0], 0.99) - 3.97).abs() < 1e-12);
        assert!(percentile(&[], 0.5).is_nan());
        let l = LatencyStats::from_seconds(&[0.010, 0.020, -1.0, 0.030]);
        assert_eq!(l.n, 3);
        assert!((l.p50_ms - 20.0).abs() < 1e-12 && (l.mean_ms - 20.0).abs() < 1e-12);
    }

    #[test]
    fn all_and_average_differ_as_defined() {
        let model = ModelPoints::new(square());
        let gt = gt_pose();
        let t = |obj, im, found: bool| {
            TargetError::new(&model, (1, im, obj), &gt, found.then_some(&gt))
        };
        let errors = [t(1, 1, true), t(2, 1, true), t(2, 2, false), t(2, 3, false)];
        let (per_object, s) = summarize(&errors, &[0.01]);
        assert_eq!(per_object.len(), 2);
        assert_eq!(per_object[0].add_auc, 100.0);
        assert!((per_object[1].add_auc - 100.0 / 3.0).abs() < 1e-12);
        assert!((s.add_auc.all - 50.0).abs() < 1e-12);
        assert!((s.add_auc.average - (100.0 + 100.0 / 3.0) / 2.0).abs() < 1e-12);
        assert_eq!((s.n_targets, s.n_found), (4, 2));
        let text = s.to_string();
        assert!(
            text.contains("AUC ADD   All (pooled)")
                && text.contains("AUC ADD-S Average (per object)"),
            "{text}"
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["add_auc"]["all"], 50.0);
        assert!(serde_json::to_string(&errors[2])
            .unwrap()
            .contains("\"add_m\":null"));
    }

    /// A dataset with a cuboid object 1 and cylinder object 2 in scene `test/000003`.
    fn synthetic_dataset(root: &Path) -> BTreeMap<u32, Vec<GtPose>> {
        let _ = std::fs::remove_dir_all(root);
        std::fs::create_dir_all(root.join("models")).unwrap();
        Mesh::cuboid(0.05, 0.1, 0.2)
            .unwrap()
            .write_ply(root.join("models/obj_000001.ply"))
            .unwrap();
        Mesh::cylinder(0.04, 0.1, 16)
            .unwrap()
            .write_ply(root.join("models/obj_000002.ply"))
            .unwrap();
        let dir = root.join("test/000003");
        std::fs::create_dir_all(&dir).unwrap();
        let cam = crate::core::geometry::Camera::from_k(
            &[500.0, 0.0, 32.0, 0.0, 500.0, 24.0, 0.0, 0.0, 1.0],
            64,
            48,
        )
        .unwrap();
        let cams = (1..=2)
            .map(|i| {
                (
                    i,
                    FrameCamera {
                        camera: cam,
                        depth_scale: 1.0,
                    },
                )
            })
            .collect();
        write_scene_camera(dir.join("scene_camera.json"), &cams).unwrap();
        crate::domains::pose::bop::write_camera_json(root.join("camera.json"), &cam, 1.0).unwrap();
        let gt: BTreeMap<u32, Vec<GtPose>> = (1..=2)
            .map(|i| {
                let p = |obj: u32| GtPose {
                    obj_id: obj,
                    pose: Translation3::new(0.1 * obj as f64, 0.0, 0.6 + 0.01 * i as f64)
                        * gt_pose(),
                };
                (i, vec![p(1), p(2)])
            })
            .collect();
        write_scene_gt(dir.join("scene_gt.json"), &gt).unwrap();
        gt
    }

    #[test]
    fn evaluate_matches_results_to_gt() {
        let root = crate::core::scratch::ScratchDir::new("metrics");
        let gt = synthetic_dataset(&root);
        let ds = BopDataset::open(&root).unwrap();
        let row = |im: u32, obj: u32, offset: f64, score: f64| PoseResult {
            scene_id: 3,
            im_id: im,
            obj_id: obj,
            score,
            pose: Translation3::new(offset, 0.0, 0.0) * gt[&im.min(2)][obj as usize - 1].pose,
            time: 0.001 * im as f64,
        };
        // Image 1 exact; image 2: object 1 off by 19.5 mm, plus a lower-scored exact duplicate that
        // must be ignored; object 2 missing; one row for an image without GT.
        let results = vec![
            row(1, 1, 0.0, 1.0),
            row(1, 2, 0.0, 1.0),
            row(2, 1, 0.0195, 0.9),
            row(2, 1, 0.0, 0.1),
            row(7, 1, 0.0, 1.0),
        ];
        let csv = root.join("results.csv");
        write_results(&csv, &results).unwrap();
        let report =
            evaluate(&ds, &crate::domains::pose::bop::read_results(&csv).unwrap()).unwrap();
        assert_eq!(report.targets.len(), 4);
        assert_eq!(report.n_unmatched_results, 2);
        let t = |im, obj| {
            report
                .targets
                .iter()
                .find(|t| t.im_id == im && t.obj_id == obj)
                .unwrap()
        };
        assert_eq!(t(1, 1).add_m, 0.0);
        assert!((t(2, 1).add_m - 0.0195).abs() < 1e-9);
        assert!((t(2, 1).trans_err_mm - 19.5).abs() < 1e-6);
        assert!(!t(2, 2).found && t(2, 2).add_m.is_infinite());
        // Object 1: errors {0, 19.5 mm} → (100 + 80.5)/2; object 2: {0, ∞} → 50.
        let o1 = &report.per_object[0];
        assert!(
            (o1.add_auc - (100.0 + 80.5) / 2.0).abs() < 1e-9,
            "{}",
            o1.add_auc
        );
        assert!((report.per_object[1].add_auc - 50.0).abs() < 1e-12);
        assert!((report.summary.add_auc.all - (200.0 + 80.5) / 4.0).abs() < 1e-9);
        assert!((report.summary.latency.p50_ms - 2.0).abs() < 1e-9);
        let text = report.to_string();
        assert!(
            text.contains("obj_id") && text.contains("Average (per object)"),
            "{text}"
        );
        // Restricting to object 2 and naming the split.
        let opts = EvalOptions {
            split: Some("test".into()),
            obj_ids: Some(BTreeSet::from([2])),
            ..EvalOptions::default()
        };
        let r2 = evaluate_with(&ds, &results, &opts).unwrap();
        assert_eq!(r2.targets.len(), 2);
        // A scene in no split is an error naming the scene.
        let mut bad = results.clone();
        bad[0].scene_id = 99;
        assert!(evaluate(&ds, &bad)
            .unwrap_err()
            .to_string()
            .contains("scene_id = 99"));
    }

    /// GT as results on the real data: AUC 100; a 10 mm offset gives ADD = 10 mm everywhere.
    #[test]
    fn real_ycbv_gt_scores_perfectly() {
        let Some(root) = crate::core::datasets::shared_or_skip("ycbv-mini") else {
            return;
        };
        let ds = BopDataset::open(root).unwrap();
        let scene = ds.scene("test", 49).unwrap();
        let rows = |offset: f64| -> Vec<PoseResult> {
            scene
                .gt
                .iter()
                .flat_map(|(&im, gts)| {
                    gts.iter().map(move |g| PoseResult {
                        scene_id: 49,
                        im_id: im,
                        obj_id: g.obj_id,
                        score: 1.0,
                        pose: Translation3::new(0.0, offset, 0.0) * g.pose,
                        time: 0.02,
                    })
                })
                .collect()
        };
        let exact = evaluate(&ds, &rows(0.0)).unwrap();
        assert_eq!(exact.summary.n_targets, 80);
        // Errors are 0 up to rounding (~1e-17 m), which may miss the τ = 0 point of the curve.
        assert!(exact
            .targets
            .iter()
            .all(|t| t.add_m < 1e-12 && t.adds_m < 1e-12));
        assert!(exact.summary.add_auc.all >= 99.5 && exact.summary.adds_auc.average >= 99.5);
        // 9.5 mm everywhere: acc = [k ≥ 10] → 90.5.
        let off = evaluate(&ds, &rows(0.0095)).unwrap();
        assert!(
            (off.summary.add_auc.all - 90.5).abs() < 1e-9,
            "{}",
            off.summary
        );
        assert!(off.summary.adds_auc.all > 90.5);
        // YCB-Video's own points.xyz, as the papers report ADD / ADD-S on.
        assert!(off.points.values().all(|&p| p == PointSource::ModelPoints));
        assert_eq!(off.points.len(), 4);
        eprintln!("{off}");
    }

    /// ADD / ADD-S use a dataset's `models_points/` where it has them, and say so.
    #[test]
    fn evaluation_points_replace_the_vertices_where_present() {
        let root = crate::core::scratch::ScratchDir::new("metrics-points");
        let gt = synthetic_dataset(&root);
        std::fs::create_dir_all(root.join("models_points")).unwrap();
        // One point on object 1's rotation axis: a turn about z moves it by nothing.
        std::fs::write(root.join("models_points/obj_000001.xyz"), "0 0 0.05\n").unwrap();
        let ds = BopDataset::open(&root).unwrap();
        let turn = UnitQuaternion::from_axis_angle(&Vector3::z_axis(), 0.3);
        let results: Vec<PoseResult> = (1..=2)
            .map(|obj| PoseResult {
                scene_id: 3,
                im_id: 1,
                obj_id: obj,
                score: 1.0,
                pose: gt[&1][obj as usize - 1].pose * turn,
                time: 0.0,
            })
            .collect();
        let opts = EvalOptions {
            obj_ids: Some(BTreeSet::from([1, 2])),
            ..EvalOptions::default()
        };
        let r = evaluate_with(&ds, &results, &opts).unwrap();
        let add = |obj: u32| (r.targets.iter()).find(|t| t.im_id == 1 && t.obj_id == obj);
        assert!(add(1).unwrap().add_m < 1e-12, "{:?}", add(1));
        assert!(add(2).unwrap().add_m > 1e-3, "{:?}", add(2));
        assert_eq!(r.points[&1], PointSource::ModelPoints);
        assert_eq!(r.points[&2], PointSource::MeshVertices);
        let line = r.points_line();
        assert!(
            line.contains("models_points/*.xyz (objects 1)") && line.contains("vertices"),
            "{line}"
        );
        // A broken points file is an error naming it, not a silent fall-back to the mesh.
        std::fs::write(root.join("models_points/obj_000001.xyz"), "0 0\n").unwrap();
        let e = evaluate_with(&ds, &results, &opts).unwrap_err().to_string();
        assert!(e.contains("obj_000001.xyz") && e.contains("line 1"), "{e}");
    }
}
