//! A fixed-rate control loop driven by a [`ControlHandle`]: each tick reads the latest estimate
//! without blocking, extrapolates it to the tick's time and measures jitter, staleness and the
//! error against ground truth at that instant.

use crate::core::error::Result;
use crate::core::geometry::se3;
use crate::domains::pose::bop::BopDataset;
use crate::runtime::pipeline::control::{extrapolate, ControlHandle};
use crate::runtime::pipeline::summary::{percentile, RunSummary};
use nalgebra::Isometry3;
use serde::Serialize;
use std::collections::BTreeMap;

/// Loop settings.
#[derive(Clone, Debug)]
pub struct ControlLoopConfig {
    /// Loop frequency (Hz).
    pub hz: f64,
    /// Object to control on (default: the first object of the estimate).
    pub obj_id: Option<u32>,
}

/// Ground truth over playback time: frame `seq` of the stream is the world at `seq / rate`
/// seconds on the pipeline clock; between frames the pose is interpolated on SE(3).
#[derive(Clone, Debug, Default)]
pub struct GtTimeline {
    rate_hz: f64,
    frames: Vec<BTreeMap<u32, Isometry3<f64>>>,
}

impl GtTimeline {
    /// The ground truth of `scenes` played one after the other at `rate_hz` (0: no timeline).
    pub fn from_scenes(
        ds: &BopDataset,
        scenes: &[(String, u32)],
        max_frames: Option<usize>,
        rate_hz: f64,
    ) -> Result<Self> {
        let mut frames = Vec::new();
        for (split, id) in scenes {
            let scene = ds.scene(split, *id)?;
            for im in scene
                .image_ids
                .iter()
                .take(max_frames.unwrap_or(usize::MAX))
            {
                let gt = scene.gt.get(im).map(Vec::as_slice).unwrap_or_default();
                frames.push(gt.iter().map(|g| (g.obj_id, g.pose)).collect());
            }
        }
        Ok(Self { rate_hz, frames })
    }

    /// A timeline from per-frame poses at `rate_hz`.
    pub fn new(rate_hz: f64, frames: Vec<BTreeMap<u32, Isometry3<f64>>>) -> Self {
        Self { rate_hz, frames }
    }

    /// Every object id appearing in the ground truth.
    pub fn object_ids(&self) -> Vec<u32> {
        let ids: std::collections::BTreeSet<u32> =
            self.frames.iter().flat_map(|f| f.keys().copied()).collect();
        ids.into_iter().collect()
    }

    /// Ground-truth pose of `obj_id` at clock time `t`, if `t` lies within the played frames.
    pub fn at(&self, obj_id: u32, t: f64) -> Option<Isometry3<f64>> {
        if self.rate_hz <= 0.0 || t < 0.0 {
            return None;
        }
        let x = t * self.rate_hz;
        let k = x.floor() as usize;
        let a = self.frames.get(k)?.get(&obj_id)?;
        let Some(b) = self.frames.get(k + 1).and_then(|f| f.get(&obj_id)) else {
            return Some(*a);
        };
        let xi = se3::log(&(b * a.inverse())) * (x - k as f64);
        Some(se3::exp(&xi) * a)
    }
}

/// Samples of a control loop run.
#[derive(Clone, Debug, Default)]
pub struct LoopStats {
    /// Ticks executed.
    pub ticks: u64,
    /// Seconds the loop ran.
    pub seconds: f64,
    /// Seconds from the first tick to the last.
    pub last_tick: f64,
    /// |actual − scheduled| tick time (s).
    pub jitter: Vec<f64>,
    /// Tick time minus capture time of the estimate used (s).
    pub staleness: Vec<f64>,
    /// Translation error of the extrapolated pose against ground truth at the tick (m).
    pub error: Vec<f64>,
    /// Ticks whose latest estimate of the controlled object was held by the tracker's loss
    /// trigger (suspect: a controller should slow down).
    pub held_ticks: u64,
    /// Ticks whose latest estimate of the controlled object was judged lost (a controller
    /// should not act on it).
    pub lost_ticks: u64,
    /// Estimates published during the loop.
    pub estimates: u64,
    /// The objects of an estimate that lacked the configured `obj_id`, when one did (a wrong id
    /// measures nothing, and says so).
    pub obj_missing_from: Option<Vec<u32>>,
}

/// The one-line JSON report of a control loop run (field order as printed).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ControlLoopReport {
    /// Achieved loop rate (Hz).
    pub loop_hz: f64,
    /// 99th percentile of tick jitter (ms).
    pub jitter_p99_ms: f64,
    /// Median estimate staleness at the tick (ms).
    pub staleness_p50_ms: f64,
    /// 99th percentile staleness (ms).
    pub staleness_p99_ms: f64,
    /// Median translation error at the control instant (mm; every tick with ground truth, those
    /// on held or lost estimates included).
    pub error_mm_p50: f64,
    /// Frames the tracker published estimates for.
    pub frames: u64,
    /// Frames dropped by `latest` queues.
    pub dropped: u64,
    /// Ticks at which the controlled object's latest estimate was held.
    pub held_ticks: u64,
    /// Ticks at which it was judged lost.
    pub lost_ticks: u64,
}

impl ControlLoopReport {
    /// `{"loop_hz":…,"jitter_p99_ms":…,…}` (NaN printed as null).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl LoopStats {
    /// The report, with frame and drop counts from the run's summary.
    pub fn report(&self, summary: &RunSummary) -> ControlLoopReport {
        let ms = |v: &[f64], q| percentile(v, q) * 1e3;
        ControlLoopReport {
            // Intervals between ticks over their span: the tick at the start counts no interval.
            loop_hz: match self.ticks {
                0 | 1 => f64::NAN,
                n => (n - 1) as f64 / self.last_tick.max(1e-9),
            },
            jitter_p99_ms: ms(&self.jitter, 0.99),
            staleness_p50_ms: ms(&self.staleness, 0.5),
            staleness_p99_ms: ms(&self.staleness, 0.99),
            error_mm_p50: ms(&self.error, 0.5),
            frames: summary
                .trackers
                .first()
                .map_or(self.estimates, |t| t.frames),
            dropped: summary.total_dropped(),
            held_ticks: self.held_ticks,
            lost_ticks: self.lost_ticks,
        }
    }

    /// A human-readable line.
    pub fn describe(&self) -> String {
        let ms = |v: &[f64], q| percentile(v, q) * 1e3;
        format!(
            "control loop: {} ticks in {:.2} s, jitter p50 {:.3} ms p99 {:.3} ms, staleness p50 {:.1} ms p99 {:.1} ms, error p50 {:.2} mm p99 {:.2} mm, on a held / lost estimate {} / {} ticks",
            self.ticks,
            self.seconds,
            ms(&self.jitter, 0.5),
            ms(&self.jitter, 0.99),
            ms(&self.staleness, 0.5),
            ms(&self.staleness, 0.99),
            ms(&self.error, 0.5),
            ms(&self.error, 0.99),
            self.held_ticks,
            self.lost_ticks,
        )
    }
}

/// Run the loop at `cfg.hz` until `finished()` returns true.
pub fn run(
    handle: &ControlHandle,
    truth: &GtTimeline,
    cfg: &ControlLoopConfig,
    finished: impl Fn() -> bool,
) -> LoopStats {
    let clock = handle.clock();
    let period = 1.0 / cfg.hz.max(1e-3);
    let start = clock.now();
    let mut stats = LoopStats::default();
    let mut k = 0u64;
    while !finished() {
        let due = start + k as f64 * period;
        if !sleep_until(&clock, due, &finished) {
            break;
        }
        let t = clock.now();
        stats.last_tick = t - start;
        stats.jitter.push((t - due).abs());
        tick(handle, truth, cfg.obj_id, t, &mut stats);
        stats.ticks += 1;
        // After an overrun, resume on the schedule instead of bursting to catch up.
        k = (k + 1).max(((t - start) / period).floor() as u64 + 1);
    }
    stats.seconds = clock.now() - start;
    stats.estimates = handle.updates();
    stats
}

fn tick(
    handle: &ControlHandle,
    truth: &GtTimeline,
    obj_id: Option<u32>,
    t: f64,
    stats: &mut LoopStats,
) {
    let Some(p) = handle.latest() else { return };
    stats.staleness.push(p.staleness(t));
    let Some(obj) = obj_id.or_else(|| p.objects.first().map(|o| o.obj_id)) else {
        return;
    };
    let Some(o) = p.object(obj) else {
        stats.obj_missing_from = Some(p.objects.iter().map(|o| o.obj_id).collect());
        return;
    };
    stats.held_ticks += u64::from(o.judgement.held);
    stats.lost_ticks += u64::from(o.judgement.lost);
    if let Some(gt) = truth.at(obj, t) {
        let est = extrapolate(&o.pose, &o.velocity, t - p.capture);
        stats.error.push(se3::translation_error(&est, &gt));
    }
}

/// The longest sleep between two looks at whether the pipeline has finished: a slow loop
/// (`hz = 0.001`) must not outlive its pipeline by a period.
const WAKE: std::time::Duration = std::time::Duration::from_millis(20);

/// Sleeps until clock time `t`; false when `finished()` turned true first.
fn sleep_until(
    clock: &crate::runtime::pipeline::message::Clock,
    t: f64,
    finished: impl Fn() -> bool,
) -> bool {
    let target = clock.instant(t);
    loop {
        let now = std::time::Instant::now();
        if target <= now {
            return true;
        }
        if finished() {
            return false;
        }
        std::thread::sleep((target - now).min(WAKE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slow loop ends with its pipeline, not a period later (at 0.001 Hz it waited 1000 s),
    /// and its rate counts the intervals between ticks (the tick at the start is none).
    #[test]
    fn a_loop_ends_with_its_pipeline_and_counts_intervals() {
        let handle = ControlHandle::new(crate::runtime::pipeline::message::Clock::new());
        let start = std::time::Instant::now();
        let done = |after: f64| move || start.elapsed().as_secs_f64() > after;
        let slow = ControlLoopConfig {
            hz: 0.001,
            obj_id: None,
        };
        let stats = run(&handle, &GtTimeline::default(), &slow, done(0.1));
        // Bounded by construction (the loop looks every 20 ms); 30 s leaves any machine room.
        assert!(start.elapsed().as_secs_f64() < 30.0, "{stats:?}");
        assert_eq!(stats.ticks, 1);
        assert!(stats.report(&RunSummary::default()).loop_hz.is_nan());
        let stats = LoopStats {
            ticks: 11,
            last_tick: 0.5,
            ..Default::default()
        };
        assert_eq!(stats.report(&RunSummary::default()).loop_hz, 20.0);
    }

    /// Every tick counts whether the controlled object's latest estimate was held or lost (not
    /// another object's: object 2 is always both), and the report carries the counts.
    #[test]
    fn ticks_on_held_and_lost_estimates_are_counted() {
        use crate::runtime::pipeline::control::Published;
        use crate::runtime::pipeline::message::{EstimateMsg, ObjectEstimate};
        let handle = ControlHandle::new(crate::runtime::pipeline::message::Clock::new());
        let publish = |held, lost| {
            let other = ObjectEstimate {
                obj_id: 2,
                ..ObjectEstimate::judged(0.0, 0.0, true, true)
            };
            let msg = EstimateMsg::of(vec![other, ObjectEstimate::judged(0.5, 0.5, held, lost)]);
            handle.publish(Published::from(&msg));
        };
        let mut stats = LoopStats::default();
        let mut tick_at = |t| tick(&handle, &GtTimeline::default(), Some(1), t, &mut stats);
        publish(true, true);
        tick_at(0.0);
        tick_at(0.01);
        publish(true, false);
        tick_at(0.02);
        publish(false, false);
        tick_at(0.03);
        assert_eq!((stats.held_ticks, stats.lost_ticks), (3, 2));
        let json = stats.report(&RunSummary::default()).to_json();
        assert!(
            json.ends_with(r#""held_ticks":3,"lost_ticks":2}"#),
            "{json}"
        );
    }

    #[test]
    fn timeline_interpolates_between_frames() {
        let f = |z: f64| BTreeMap::from([(1u32, Isometry3::translation(0.0, 0.0, z))]);
        let tl = GtTimeline::new(10.0, vec![f(1.0), f(2.0)]);
        let p = tl.at(1, 0.05).unwrap();
        assert!((p.translation.z - 1.5).abs() < 1e-9);
        assert!(tl.at(1, 0.5).is_none());
        assert!(tl.at(2, 0.0).is_none());
    }
}
