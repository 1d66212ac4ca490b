//! Real-data tracking runs as library calls: one clip (optionally its first frames only) tracked
//! from the first frame's ground truth, with the "never moving" baseline (the first frame's GT
//! held for every frame) computed on the same frames — for CI-sized tests, the goal runs
//! and a future CLI.

use crate::core::error::{Error, Result};
use crate::domains::pose::bop::{BopDataset, PoseResult};
use crate::domains::pose::commands::{errors, quantile, track_scene, ErrorSummary};
use crate::domains::pose::tracker::{ObjectModel, Tracker, TrackerConfig};
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
    let first = *sc
        .image_ids
        .first()
        .ok_or_else(|| Error::param("scene", scene, "has no images"))?;
    let gt = sc
        .gt
        .get(&first)
        .ok_or_else(|| Error::param("scene_gt", first, "image has no GT"))?
        .clone();
    let objects = gt
        .iter()
        .map(|g| {
            ObjectModel::from_mesh(
                g.obj_id,
                &dataset.model(g.obj_id)?,
                config.surface_samples,
                config.seed,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let init = gt
        .iter()
        .zip(&objects)
        .map(|(g, o)| match config.init_noise {
            Some(n) => n.perturb(
                &g.pose,
                &o.centre,
                config.seed.wrapping_add(g.obj_id as u64),
            ),
            None => g.pose,
        })
        .collect();
    let mut tracker = Tracker::new(config.clone(), objects, init)?;
    let run = track_scene(&mut tracker, &sc, false)?;
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
        latency_p50: quantile(&run.latencies, 0.5),
        decode_p50: quantile(&run.decode, 0.5),
    })
}
