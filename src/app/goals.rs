//! Real-data tracking runs as library calls: one clip (optionally its first frames only) tracked
//! from the first frame's ground truth, with the "never moving" baseline (the first frame's GT
//! held for every frame) computed on the same frames — for CI-sized tests, the goal runs
//! and a future CLI.

use crate::core::error::{Error, Result};
use crate::core::stats::median;
use crate::domains::pose::bop::{BopDataset, PoseResult};
use crate::domains::pose::driver::{first_image, object_models, Driver, InitFrom, Keep};
use crate::domains::pose::scoring::{errors, ErrorSummary};
use crate::domains::pose::tracker::TrackerConfig;
use std::path::Path;

/// One tracked clip.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ClipRun {
    /// `split/scene`.
    pub clip: String,
    /// Frames tracked.
    pub frames: usize,
    /// Tracker errors over all objects and frames (from frame `from_image` on).
    pub tracked: ErrorSummary,
    /// The first frame's GT held still, same frames.
    pub held: ErrorSummary,
    /// Tracking latency per object per frame (s), median (image decoding excluded).
    pub latency_p50: f64,
    /// Image decoding per frame (s), median.
    pub decode_p50: f64,
}

/// Track every GT object of `split/scene` over its first `frames` images (all when `None`),
/// starting from the first image's GT (perturbed by `config.init_noise` when set, seeded per
/// object as `hdpf track` does), and score images with id ≥ `from_image`.
pub fn track_clip(
    root: &Path,
    split: &str,
    scene: u32,
    frames: Option<usize>,
    from_image: u32,
    config: &TrackerConfig,
) -> Result<ClipRun> {
    let dataset = BopDataset::open(root)?;
    let mut sc = dataset.scene(split, scene)?;
    if let Some(n) = frames {
        sc.image_ids.truncate(n);
    }
    let (first, gt) = first_image(&sc)?;
    if gt.is_empty() {
        return Err(Error::param("scene_gt", first, "image has no GT"));
    }
    let ids: Vec<u32> = gt.iter().map(|g| g.obj_id).collect();
    let objects = object_models(config, &ids, |id| dataset.model(id))?;
    let from = InitFrom::GroundTruth;
    let mut driver = Driver::start(config, objects, (scene, first, &gt), &from, Keep::Results)?;
    driver.track_scene(&sc)?;
    let run = driver.run;
    let late = |r: &PoseResult| r.im_id >= from_image;
    let tracked_rows: Vec<PoseResult> = run.results.iter().copied().filter(late).collect();
    let held_rows: Vec<PoseResult> = sc
        .image_ids
        .iter()
        .flat_map(|&im_id| {
            gt.iter().map(move |g| PoseResult {
                scene_id: scene,
                im_id,
                obj_id: g.obj_id,
                score: 1.0,
                pose: g.pose,
                time: 0.0,
            })
        })
        .filter(late)
        .collect();
    Ok(ClipRun {
        clip: format!("{split}/{scene}"),
        frames: sc.image_ids.len(),
        tracked: errors(&dataset, &sc, &tracked_rows)?.0,
        held: errors(&dataset, &sc, &held_rows)?.0,
        latency_p50: median(&run.latencies),
        decode_p50: median(&run.decode),
    })
}
