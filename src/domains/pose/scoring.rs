//! Mean pose errors of tracking results against a BOP scene's ground truth (ADD, ADD-S, rotation,
//! translation), pooled and per object, and how an object was lost: its ADD-S by visibility band
//! and its longest run of frames over [`LOST_ADDS_M`] ([`LossTally`]).

use crate::core::error::Result;
use crate::domains::pose::bop::{BopDataset, GtPose, PoseResult, Scene};
use crate::domains::pose::metrics::{evaluate_with, EvalOptions, EvalReport, TargetError};
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

/// ADD-S (metres) at or over which an object-frame counts as lost: 20 mm.
pub const LOST_ADDS_M: f64 = 0.02;

/// Whether a frame with ADD-S `adds_m` (metres; `None` without an estimate) is lost: unless its
/// ADD-S is finite and below [`LOST_ADDS_M`].
pub fn is_lost(adds_m: Option<f64>) -> bool {
    adds_m.is_none_or(|e| !e.is_finite() || e >= LOST_ADDS_M)
}

/// The visibility bands' names, by index of [`band`].
pub const BAND_NAMES: [&str; 3] = ["≥ 0.9", "0.5–0.9", "< 0.5"];

/// A visible fraction's band: 0 for ≥ 0.9, 1 for 0.5–0.9, 2 below.
pub fn band(visible: f64) -> usize {
    match visible {
        v if v >= 0.9 => 0,
        v if v >= 0.5 => 1,
        _ => 2,
    }
}

/// One object's frames in order (or several objects' pooled by [`LossTally::merge`]): ADD-S
/// summed per visibility band, and the longest run of consecutive lost frames ([`is_lost`]),
/// counting every frame and counting only frames at least 0.9 visible.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct LossTally {
    /// Per band ([`band`]): ADD-S sum (metres) and count.
    pub bands: [(f64, usize); 3],
    /// Frames whose visible fraction is not known (left out of the bands), with or without an
    /// estimate.
    pub unknown_visibility: usize,
    /// The longest run of lost frames.
    pub longest_lost: usize,
    /// The longest run of lost frames that were each at least 0.9 visible (a frame less visible,
    /// of unknown visibility, or not lost ends a run).
    pub longest_lost_visible: usize,
    /// The current runs (any visibility, ≥ 0.9 visible).
    #[serde(skip)]
    runs: (usize, usize),
}

impl LossTally {
    /// Add the next frame: its ADD-S (metres; `None` when the object has no estimate there) and
    /// its visible fraction, if known; lost as [`is_lost`] says; only a finite ADD-S enters a
    /// band.
    pub fn push(&mut self, adds_m: Option<f64>, visible: Option<f64>) {
        let lost = is_lost(adds_m);
        let adds_m = adds_m.filter(|e| e.is_finite());
        let seen = visible.is_some_and(|v| v >= 0.9);
        match (adds_m, visible) {
            (Some(e), Some(v)) => {
                let b = &mut self.bands[band(v)];
                *b = (b.0 + e, b.1 + 1);
            }
            (_, None) => self.unknown_visibility += 1,
            (None, Some(_)) => {}
        }
        self.runs.0 = if lost { self.runs.0 + 1 } else { 0 };
        self.runs.1 = if lost && seen { self.runs.1 + 1 } else { 0 };
        self.longest_lost = self.longest_lost.max(self.runs.0);
        self.longest_lost_visible = self.longest_lost_visible.max(self.runs.1);
    }

    /// Pool `other` (another object's or sequence's frames) into this tally: band sums added,
    /// the longest runs the longer of the two.
    pub fn merge(&mut self, other: &Self) {
        for (a, b) in self.bands.iter_mut().zip(&other.bands) {
            *a = (a.0 + b.0, a.1 + b.1);
        }
        self.unknown_visibility += other.unknown_visibility;
        self.longest_lost = self.longest_lost.max(other.longest_lost);
        self.longest_lost_visible = self.longest_lost_visible.max(other.longest_lost_visible);
    }

    /// Mean ADD-S (mm) per band, `None` for an empty band.
    pub fn band_means_mm(&self) -> [Option<f64>; 3] {
        self.bands
            .map(|(sum, n)| (n > 0).then(|| sum / n as f64 * 1e3))
    }

    /// Whether any frame entered a band (a known visible fraction and a finite ADD-S).
    pub fn has_visibility(&self) -> bool {
        self.bands.iter().any(|b| b.1 > 0)
    }
}

/// All objects pooled and, per object id, the [`LossTally`] of an evaluation's targets in image
/// order, scene by scene (a run ends with its scene). Each image is one frame: with several
/// instances of an object there, the frame is lost if any instance is, and its ADD-S (the
/// largest) enters no band; otherwise the visible fraction is `visible(scene_id, im_id, obj_id)`.
pub fn loss_tallies(
    report: &EvalReport,
    visible: impl Fn(u32, u32, u32) -> Option<f64>,
) -> (LossTally, BTreeMap<u32, LossTally>) {
    // Per (object, scene, image): the instances' ADD-S (`None` where one has no estimate).
    let mut frames = BTreeMap::<(u32, u32, u32), Vec<Option<f64>>>::new();
    for t in &report.targets {
        let key = (t.obj_id, t.scene_id, t.im_id);
        frames
            .entry(key)
            .or_default()
            .push(t.found.then_some(t.adds_m));
    }
    let mut per_scene = BTreeMap::<(u32, u32), LossTally>::new();
    for ((obj, scene, im), adds) in frames {
        let worst = (adds.iter().copied()).try_fold(f64::NEG_INFINITY, |m, e| Some(m.max(e?)));
        let v = match adds.len() {
            1 => visible(scene, im, obj),
            _ => None,
        };
        per_scene.entry((obj, scene)).or_default().push(worst, v);
    }
    let (mut all, mut per) = (LossTally::default(), BTreeMap::<u32, LossTally>::new());
    for ((obj, _), t) in &per_scene {
        per.entry(*obj).or_default().merge(t);
        all.merge(t);
    }
    (all, per)
}

/// How one of the tracker's own loss flags (`held` or `lost`) matches the ground truth: over an
/// evaluation's found targets, the frames over [`LOST_ADDS_M`] and the frames the tracker flagged.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct LossDetection {
    /// Frames with an estimate and a flag.
    pub frames: usize,
    /// Of those, frames lost by their ADD-S ([`is_lost`]).
    pub over: usize,
    /// Frames the tracker flagged.
    pub flagged: usize,
    /// Frames both flagged and over.
    pub flagged_over: usize,
}

impl LossDetection {
    /// Count the found `targets` (an evaluation's), each with its flag `lost(im_id, obj_id)`
    /// (targets without one are left out).
    pub fn of<'a>(
        targets: impl IntoIterator<Item = &'a TargetError>,
        lost: impl Fn(u32, u32) -> Option<bool>,
    ) -> Self {
        let mut d = Self::default();
        for t in targets.into_iter().filter(|t| t.found) {
            let Some(flag) = lost(t.im_id, t.obj_id) else {
                continue;
            };
            let over = is_lost(Some(t.adds_m));
            d.frames += 1;
            d.over += usize::from(over);
            d.flagged += usize::from(flag);
            d.flagged_over += usize::from(flag && over);
        }
        d
    }

    /// The fraction of frames over the threshold that were flagged (`None` without any).
    pub fn recall(&self) -> Option<f64> {
        (self.over > 0).then(|| self.flagged_over as f64 / self.over as f64)
    }

    /// The fraction of flagged frames that were over the threshold (`None` without any).
    pub fn precision(&self) -> Option<f64> {
        (self.flagged > 0).then(|| self.flagged_over as f64 / self.flagged as f64)
    }
}

/// How the tracker's own visible fractions match the scene's (`scene_gt_info.json`): the mean
/// absolute difference `(1/n) Σ |v̂ − v|` over the object-frames that have both.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct VisibleAgreement {
    /// Object-frames with both a finite estimate and the scene's fraction.
    pub frames: usize,
    /// Their mean absolute difference (NaN without any).
    pub mean_abs_diff: f64,
}

impl VisibleAgreement {
    /// Over `(estimate, scene)` pairs; pairs with a non-finite value on either side are left out.
    pub fn of(pairs: impl IntoIterator<Item = (f64, f64)>) -> Self {
        let mut diffs = crate::core::running::RunningMean::default();
        for (e, v) in pairs.into_iter() {
            if e.is_finite() && v.is_finite() {
                diffs.push((e - v).abs());
            }
        }
        Self {
            frames: diffs.count() as usize,
            mean_abs_diff: diffs.mean(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The agreement averages the absolute differences of the pairs with both values.
    #[test]
    fn visible_agreement_is_the_mean_absolute_difference() {
        let a = VisibleAgreement::of([(0.9, 1.0), (0.3, 0.5), (f64::NAN, 0.2), (0.4, f64::NAN)]);
        assert_eq!(a.frames, 2);
        assert!((a.mean_abs_diff - 0.15).abs() < 1e-12, "{a:?}");
        assert!(VisibleAgreement::of([]).mean_abs_diff.is_nan());
    }

    /// The loss flags are counted against the found targets' ADD-S: recall over the frames at
    /// or over 20 mm, precision over the flagged ones; a target without a flag or an estimate
    /// is left out.
    #[test]
    fn loss_flags_are_scored_against_the_frames_over_20_mm() {
        let target = |im_id: u32, adds_m: f64, found: bool| TargetError {
            scene_id: 1,
            im_id,
            obj_id: 3,
            found,
            add_m: adds_m,
            adds_m,
            rot_err_deg: 0.0,
            trans_err_mm: 0.0,
        };
        let targets = [
            target(1, 0.001, true),
            target(2, 0.030, true),
            target(3, 0.020, true),
            target(4, 0.002, true),
            target(5, 0.050, false),
            target(6, 0.040, true),
        ];
        // Flags: frames 2 and 4 lost; frame 6 has none.
        let d = LossDetection::of(&targets, |im, _| (im != 6).then_some(im == 2 || im == 4));
        let want = LossDetection {
            frames: 4,
            over: 2,
            flagged: 2,
            flagged_over: 1,
        };
        assert_eq!(d, want);
        assert_eq!((d.recall(), d.precision()), (Some(0.5), Some(0.5)));
        assert_eq!(LossDetection::default().recall(), None);
    }

    /// Runs count consecutive lost frames, the visible ones only at ≥ 0.9 visibility; the bands
    /// take each frame's ADD-S by its visible fraction; a frame without an estimate is lost and
    /// left out of the bands; pooling adds the bands and keeps the longer runs.
    #[test]
    fn a_tally_counts_bands_and_the_longest_runs() {
        assert_eq!(
            [band(1.0), band(0.9), band(0.89), band(0.5), band(0.49)],
            [0, 0, 1, 1, 2]
        );
        let mut t = LossTally::default();
        let frames = [
            (Some(0.001), Some(1.0)),
            (Some(0.030), Some(0.95)),
            (Some(0.025), Some(0.92)),
            (None, Some(0.9)),
            (Some(0.040), Some(0.6)),
            (Some(0.050), None),
            (Some(0.002), Some(0.3)),
            (Some(0.021), Some(0.99)),
        ];
        for (adds, visible) in frames {
            t.push(adds, visible);
        }
        assert_eq!(t.longest_lost, 5, "frames 1-5 lost");
        assert_eq!(
            t.longest_lost_visible, 3,
            "frames 1-3 lost while ≥ 0.9 visible"
        );
        assert_eq!(t.bands[0].1, 4);
        assert_eq!(t.unknown_visibility, 1);
        let [hi, mid, lo] = t.band_means_mm();
        let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-9;
        assert!(close(hi, (1.0 + 30.0 + 25.0 + 21.0) / 4.0), "{hi:?}");
        assert!(close(mid, 40.0) && close(lo, 2.0), "{mid:?} {lo:?}");
        // A NaN ADD-S is lost, and stays out of the band; exactly 20 mm is lost.
        let mut odd = LossTally::default();
        odd.push(Some(f64::NAN), Some(1.0));
        odd.push(Some(LOST_ADDS_M), Some(1.0));
        assert_eq!((odd.longest_lost_visible, odd.bands[0].1), (2, 1));
        let mut all = LossTally::default();
        all.merge(&t);
        all.merge(&odd);
        assert_eq!((all.longest_lost, all.longest_lost_visible), (5, 3));
        assert_eq!(all.bands[0].1, 5);
        let want = (1.0 + 30.0 + 25.0 + 21.0 + 20.0) / 5.0;
        assert!(close(all.band_means_mm()[0], want), "{all:?}");
        assert!(!LossTally::default().has_visibility() && all.has_visibility());
    }
}
