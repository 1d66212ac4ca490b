//! The picture of a tracking run that `hdpf track` writes beside its results: per object, the
//! ADD-S of every frame against the ground truth (with the 20 mm loss line), and the tracker's
//! own quality judgement and visible fraction beside the scene's visible fraction — where an
//! object was lost, and whether the tracker knew.

use crate::app::plot::{save_panels_png, LinePlot, Series};
use crate::core::error::Result;
use crate::domains::pose::driver::Published;
use crate::domains::pose::metrics::EvalReport;
use crate::domains::pose::scoring::LOST_ADDS_M;
use std::collections::BTreeMap;
use std::path::Path;

/// ADD-S above this (mm) is drawn at it, so that one lost object does not flatten every curve.
pub const ADDS_CLIP_MM: f64 = 50.0;

/// The two panels of a run: ADD-S per frame per object (`report`'s found targets, image order,
/// clipped at [`ADDS_CLIP_MM`], the loss threshold as a flat line), and per object the quality
/// and the tracker's visible fraction of each judged frame (`rows`) beside the scene's visible
/// fraction of every target (`visible(im_id, obj_id)`, where known).
pub fn track_panels(
    report: &EvalReport,
    rows: &[Published],
    visible: impl Fn(u32, u32) -> Option<f64>,
) -> [LinePlot; 2] {
    let mut adds: BTreeMap<u32, Vec<(f64, f64)>> = BTreeMap::new();
    let mut seen: BTreeMap<u32, Vec<(f64, f64)>> = BTreeMap::new();
    let mut targets: Vec<_> = report.targets.iter().collect();
    targets.sort_by_key(|t| (t.obj_id, t.scene_id, t.im_id));
    for t in targets {
        let x = t.im_id as f64;
        if t.found {
            let e = (t.adds_m * 1e3).min(ADDS_CLIP_MM);
            adds.entry(t.obj_id).or_default().push((x, e));
        }
        if let Some(v) = visible(t.im_id, t.obj_id) {
            seen.entry(t.obj_id).or_default().push((x, v));
        }
    }
    let mut errors = LinePlot::new("ADD-S per frame", "image id", "ADD-S (mm)");
    errors.series = (adds.iter())
        .map(|(id, pts)| Series::new(format!("object {id}"), pts.clone()))
        .collect();
    if let (Some(first), Some(last)) = (
        adds.values().flatten().map(|p| p.0).reduce(f64::min),
        adds.values().flatten().map(|p| p.0).reduce(f64::max),
    ) {
        let line = vec![(first, LOST_ADDS_M * 1e3), (last, LOST_ADDS_M * 1e3)];
        errors.series.push(Series::new("lost above", line));
    }
    let per_object = |value: fn(&Published) -> f64| {
        let mut series: BTreeMap<u32, Vec<(f64, f64)>> = BTreeMap::new();
        for r in rows.iter().filter(|r| value(r).is_finite()) {
            (series.entry(r.obj_id).or_default()).push((r.im_id as f64, value(r)));
        }
        series
    };
    let judged = per_object(|r| r.judgement.quality);
    let estimated = per_object(|r| r.judgement.visible);
    let mut health = LinePlot::new(
        "tracking quality and visible fraction",
        "image id",
        "fraction",
    );
    health.y_bounds = Some((0.0, 1.0));
    let named = |series: BTreeMap<u32, Vec<(f64, f64)>>, what: &'static str| {
        (series.into_iter()).map(move |(id, pts)| Series::new(format!("object {id} {what}"), pts))
    };
    health.series = named(judged, "quality")
        .chain(named(estimated, "visible (tracker)"))
        .chain(named(seen, "visible (scene)"))
        .collect();
    [errors, health]
}

/// Write [`track_panels`] side by side to `path` (a PNG).
pub fn save_track_plot(
    path: &Path,
    report: &EvalReport,
    rows: &[Published],
    visible: impl Fn(u32, u32) -> Option<f64>,
) -> Result<()> {
    save_panels_png(path, &track_panels(report, rows, visible), 2)
}
