//! The run summary: frames, drops, skips, latency percentiles, pose errors, and the tracker's own
//! judgement (mean quality, object-frames held and lost) per tracker.

use crate::core::geometry::se3;
use crate::core::running::{LogHistogram, RunningMean};
use crate::core::stats::{self, Rank};
use crate::domains::pose::bop::GtPose;
use crate::domains::pose::calibration;
use crate::runtime::pipeline::message::{EstimateMsg, SkippedFrame};
use nalgebra::Point3;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Model points per object id, for the ADD error (metres, model frame).
pub type ModelPoints = BTreeMap<u32, Arc<Vec<Point3<f64>>>>;

/// Percentile `q ∈ [0, 1]` of `v` (nearest rank, [`Rank::Nearest`]); NaN when empty.
pub fn percentile(v: &[f64], q: f64) -> f64 {
    stats::percentile(v, q, Rank::Nearest)
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// ADD: mean distance between model points under the two poses (metres).
pub fn add_error(
    points: &[Point3<f64>],
    a: &nalgebra::Isometry3<f64>,
    b: &nalgebra::Isometry3<f64>,
) -> f64 {
    let d: Vec<f64> = points.iter().map(|p| (a * p - b * p).norm()).collect();
    mean(&d)
}

/// What one tracker's estimates add up to while running, in memory that does not grow with the
/// number of frames ([`LogHistogram`] percentiles, [`RunningMean`] means).
#[derive(Clone, Debug, Default)]
struct TrackerSamples {
    frames: u64,
    latency_ms: LogHistogram,
    process_ms: LogHistogram,
    trans_mm: RunningMean,
    rot_deg: RunningMean,
    add_mm: RunningMean,
    ess: RunningMean,
    nees_per_dof: LogHistogram,
    nees_within_95: RunningMean,
    quality: RunningMean,
    held: u64,
    lost: u64,
}

/// One tracker's line of the summary.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TrackerSummary {
    /// Tracker name.
    pub tracker: String,
    /// Frames it published estimates for.
    pub frames: u64,
    /// Capture-to-publish latency, median (ms; within 0.05 %, [`LogHistogram`]).
    pub latency_p50_ms: f64,
    /// Capture-to-publish latency, 99th percentile (ms; within 0.05 %).
    pub latency_p99_ms: f64,
    /// Tracker time per frame, median (ms; within 0.05 %).
    pub process_p50_ms: f64,
    /// Mean translation error against ground truth (mm; NaN without ground truth).
    pub trans_err_mm: f64,
    /// Mean rotation error against ground truth (degrees).
    pub rot_err_deg: f64,
    /// Mean ADD against ground truth (mm; NaN without meshes), on the dataset's evaluation points
    /// where the source ships them (BOP `models_points/`, as `hdpf eval`), else on up to 500
    /// mesh vertices per object.
    pub add_mm: f64,
    /// Mean effective sample size reported by the filter.
    pub ess_mean: f64,
    /// Median NEES / 6 of the published covariance against ground truth (0.89 when calibrated;
    /// within 0.05 %; NaN without ground truth or a positive-definite covariance;
    /// [`calibration`]).
    pub nees_p50_per_dof: f64,
    /// Fraction of those estimates whose NEES lies within χ²₆'s 95 % bound (0.95 when
    /// calibrated).
    pub nees_within_95: f64,
    /// Mean tracking quality over the object-frames that were judged
    /// ([`crate::domains::pose::tracker::Judgement::quality`]; NaN when none was).
    pub quality_mean: f64,
    /// Object-frames on which the tracker's loss trigger fired
    /// ([`crate::domains::pose::tracker::Judgement::held`]).
    pub held: u64,
    /// Object-frames the tracker judged lost
    /// ([`crate::domains::pose::tracker::Judgement::lost`]).
    pub lost: u64,
}

/// Everything a run reports at the end.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunSummary {
    /// Queue policy of the run.
    pub policy: String,
    /// Playback rate (Hz), or `None` for as fast as possible.
    pub rate_hz: Option<f64>,
    /// Frames the source emitted.
    pub source_frames: u64,
    /// Frames dropped by `latest` queues, per queue (`"decode"`, `"filter:NAME"`).
    pub dropped: BTreeMap<String, u64>,
    /// Frames skipped (corrupt or unreadable), with reasons.
    pub skipped: Vec<SkippedSummary>,
    /// Per tracker.
    pub trackers: Vec<TrackerSummary>,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
    /// Whether the run was stopped by Ctrl-C.
    pub interrupted: bool,
    /// The stage failure that ended the run, if any.
    pub failure: Option<String>,
    /// Sinks dropped after a failure while the run went on ([`crate::runtime::pipeline::SinkFailure::Drop`]).
    pub dropped_sinks: Vec<String>,
}

/// A skipped frame as reported.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SkippedSummary {
    /// Stage that skipped it.
    pub stage: String,
    /// BOP image id.
    pub im_id: u32,
    /// Why.
    pub reason: String,
}

impl RunSummary {
    /// Total frames dropped over all queues.
    pub fn total_dropped(&self) -> u64 {
        self.dropped.values().sum()
    }

    /// The line of tracker `name`.
    pub fn tracker(&self, name: &str) -> Option<&TrackerSummary> {
        self.trackers.iter().find(|t| t.tracker == name)
    }
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = self
            .rate_hz
            .map_or("max".to_string(), |r| format!("{r} Hz"));
        writeln!(
            f,
            "run: {} frames from source in {:.2} s, policy {}, playback {}, dropped {}, skipped {}{}",
            self.source_frames,
            self.seconds,
            self.policy,
            rate,
            self.total_dropped(),
            self.skipped.len(),
            if self.interrupted { ", interrupted" } else { "" }
        )?;
        writeln!(
            f,
            "{:<10} {:>6} {:>10} {:>10} {:>10} {:>9} {:>8} {:>8} {:>7} {:>8} {:>7} {:>8} {:>6} {:>6}",
            "tracker",
            "frames",
            "lat50 ms",
            "lat99 ms",
            "proc50 ms",
            "trans mm",
            "rot deg",
            "ADD mm",
            "ESS",
            "NEES/6",
            "in 95%",
            "quality",
            "held",
            "lost"
        )?;
        for t in &self.trackers {
            writeln!(
                f,
                "{:<10} {:>6} {:>10.2} {:>10.2} {:>10.2} {:>9.2} {:>8.2} {:>8.2} {:>7.1} {:>8.2} {:>7.2} {:>8.3} {:>6} {:>6}",
                t.tracker,
                t.frames,
                t.latency_p50_ms,
                t.latency_p99_ms,
                t.process_p50_ms,
                t.trans_err_mm,
                t.rot_err_deg,
                t.add_mm,
                t.ess_mean,
                t.nees_p50_per_dof,
                t.nees_within_95,
                t.quality_mean,
                t.held,
                t.lost
            )?;
        }
        for s in &self.skipped {
            writeln!(f, "skipped im_id {} in {}: {}", s.im_id, s.stage, s.reason)?;
        }
        for d in &self.dropped_sinks {
            writeln!(f, "dropped sink: {d}")?;
        }
        if let Some(e) = &self.failure {
            writeln!(f, "FAILED: {e}")?;
        }
        Ok(())
    }
}

/// Accumulates estimates and skips into a [`RunSummary`].
#[derive(Default)]
pub struct SummaryCollector {
    trackers: BTreeMap<String, TrackerSamples>,
    /// Latencies of all trackers together (for progress lines).
    all_latency_ms: LogHistogram,
    order: Vec<String>,
    skipped: Vec<SkippedSummary>,
    models: ModelPoints,
}

impl SummaryCollector {
    /// A collector that computes ADD for the objects in `models`.
    pub fn new(models: ModelPoints) -> Self {
        Self {
            models,
            ..Self::default()
        }
    }

    /// Register a tracker so that it appears in the summary even without output.
    pub fn register(&mut self, tracker: &str) {
        if !self.trackers.contains_key(tracker) {
            self.order.push(tracker.to_string());
            self.trackers
                .insert(tracker.to_string(), TrackerSamples::default());
        }
    }

    /// Account for one estimate message.
    pub fn add_estimate(&mut self, m: &EstimateMsg) {
        self.register(&m.tracker);
        let models = &self.models;
        let s = self.trackers.entry(m.tracker.clone()).or_default();
        s.frames += 1;
        s.latency_ms.push(m.latency() * 1e3);
        self.all_latency_ms.push(m.latency() * 1e3);
        s.process_ms.push(m.process_seconds * 1e3);
        for o in &m.objects {
            s.ess.push(o.diagnostics.ess);
            if o.judgement.quality.is_finite() {
                s.quality.push(o.judgement.quality);
            }
            s.held += u64::from(o.judgement.held);
            s.lost += u64::from(o.judgement.lost);
            if let Some(gt) = GtPose::nearest(&m.gt, o.obj_id, &o.pose) {
                s.trans_mm
                    .push(se3::translation_error(&o.pose, &gt.pose) * 1e3);
                s.rot_deg.push(se3::rotation_error_deg(&o.pose, &gt.pose));
                if let Some(pts) = models.get(&o.obj_id) {
                    s.add_mm.push(add_error(pts, &o.pose, &gt.pose) * 1e3);
                }
                if let Some(e) = calibration::nees(&o.pose, &o.covariance, &gt.pose) {
                    s.nees_per_dof.push(e / calibration::POSE_DOF as f64);
                    s.nees_within_95
                        .push(f64::from(u8::from(calibration::within_95(e))));
                }
            }
        }
    }

    /// Account for a skipped frame.
    pub fn add_skipped(&mut self, s: &SkippedFrame) {
        self.skipped.push(SkippedSummary {
            stage: s.stage.clone(),
            im_id: s.im_id,
            reason: s.reason.clone(),
        });
    }

    /// Frames published so far by `tracker`.
    pub fn frames(&self, tracker: &str) -> u64 {
        self.trackers.get(tracker).map_or(0, |s| s.frames)
    }

    /// Latency p50 over all trackers so far (ms), for progress lines.
    pub fn latency_p50_ms(&self) -> f64 {
        self.all_latency_ms.percentile(0.5)
    }

    /// The tracker lines, in registration order.
    pub fn tracker_summaries(&self) -> Vec<TrackerSummary> {
        self.order
            .iter()
            .map(|name| summarize(name, &self.trackers[name]))
            .collect()
    }

    /// The skipped frames so far.
    pub fn skipped(&self) -> Vec<SkippedSummary> {
        self.skipped.clone()
    }
}

fn summarize(name: &str, s: &TrackerSamples) -> TrackerSummary {
    TrackerSummary {
        tracker: name.to_string(),
        frames: s.frames,
        latency_p50_ms: s.latency_ms.percentile(0.5),
        latency_p99_ms: s.latency_ms.percentile(0.99),
        process_p50_ms: s.process_ms.percentile(0.5),
        trans_err_mm: s.trans_mm.mean(),
        rot_err_deg: s.rot_deg.mean(),
        add_mm: s.add_mm.mean(),
        ess_mean: s.ess.mean(),
        nees_p50_per_dof: s.nees_per_dof.percentile(0.5),
        nees_within_95: s.nees_within_95.mean(),
        quality_mean: s.quality.mean(),
        held: s.held,
        lost: s.lost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    /// A tracker's line counts the object-frames it held and lost and averages the quality over
    /// those it judged (NaN: not judged, left out).
    #[test]
    fn the_tracker_line_counts_held_and_lost_object_frames() {
        use crate::runtime::pipeline::message::ObjectEstimate;
        let object = |quality, held, lost| ObjectEstimate::judged(quality, 1.0, held, lost);
        let msg = EstimateMsg::of;
        let mut c = SummaryCollector::default();
        c.add_estimate(&msg(vec![
            object(0.9, false, false),
            object(0.4, true, false),
        ]));
        c.add_estimate(&msg(vec![
            object(0.1, true, true),
            object(f64::NAN, false, false),
        ]));
        let t = &c.tracker_summaries()[0];
        assert_eq!((t.frames, t.held, t.lost), (2, 2, 1));
        assert!((t.quality_mean - 1.4 / 3.0).abs() < 1e-12, "{t:?}");
        let printed = RunSummary {
            trackers: vec![t.clone()],
            ..Default::default()
        }
        .to_string();
        let row = printed.lines().find(|l| l.starts_with("t ")).unwrap();
        assert!(row.ends_with("0.467      2      1"), "{printed}");
    }
}
