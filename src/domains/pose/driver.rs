//! The one tracker driver: choose the first poses (ground truth, ground truth with noise, or a
//! results file), then feed frames to a [`Tracker`] — skipping and counting frames that failed to
//! load, timing decoding and tracking. `hdpf track`, `hdpf bench pose`, the goal runs and the
//! pipeline's filter stage all track through it.

use crate::core::error::{Error, Result};
use crate::domains::pose::bop::{self, GtPose, PoseResult, Scene};
use crate::domains::pose::frame::RgbdFrame;
use crate::domains::pose::mesh::Mesh;
use crate::domains::pose::tracker::{FrameOutput, Judgement, ObjectModel, Tracker, TrackerConfig};
use nalgebra::{Isometry3, Matrix6};
use std::path::PathBuf;
use std::time::Instant;

/// Where the first poses come from (ground truth is perturbed by the config's `init_noise`).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum InitFrom {
    /// The first image's ground truth.
    #[default]
    GroundTruth,
    /// The first image's rows of this BOP19 results file.
    Results(PathBuf),
}

/// A ground-truth pose perturbed by `config.init_noise` (seeded per object as `seed + obj_id`,
/// so every entry point starts from the same pose), or unchanged without noise.
pub fn noisy_gt(
    config: &TrackerConfig,
    object: &ObjectModel,
    pose: &Isometry3<f64>,
) -> Isometry3<f64> {
    match config.init_noise {
        Some(n) => n.perturb(
            pose,
            &object.centre,
            config.seed.wrapping_add(object.obj_id as u64),
        ),
        None => *pose,
    }
}

/// The tracker's object models for `ids`, sampled from the meshes `mesh(id)` returns.
pub fn object_models<M: std::borrow::Borrow<Mesh>>(
    config: &TrackerConfig,
    ids: &[u32],
    mut mesh: impl FnMut(u32) -> Result<M>,
) -> Result<Vec<ObjectModel>> {
    ids.iter()
        .map(|&id| {
            ObjectModel::from_mesh(id, mesh(id)?.borrow(), config.surface_samples, config.seed)
        })
        .collect()
}

/// The first poses of `objects` in image `first` of scene `scene_id`: from its ground truth `gt`
/// (with the config's noise) or from a results file.
pub fn initial_poses(
    config: &TrackerConfig,
    objects: &[ObjectModel],
    (scene_id, first, gt): (u32, u32, &[GtPose]),
    from: &InitFrom,
) -> Result<Vec<Isometry3<f64>>> {
    let rows = match from {
        InitFrom::Results(path) => Some((path, bop::read_results(path)?)),
        InitFrom::GroundTruth => None,
    };
    objects
        .iter()
        .map(|o| match &rows {
            Some((path, rows)) => rows
                .iter()
                .find(|r| r.scene_id == scene_id && r.im_id == first && r.obj_id == o.obj_id)
                .map(|r| r.pose)
                .ok_or_else(|| {
                    let msg = format!(
                        "no row for scene {scene_id}, image {first}, object {}",
                        o.obj_id
                    );
                    Error::format(path, msg)
                }),
            None => gt
                .iter()
                .find(|g| g.obj_id == o.obj_id)
                .map(|g| noisy_gt(config, o, &g.pose))
                .ok_or_else(|| {
                    Error::param(
                        "objects",
                        o.obj_id,
                        format!("not in the GT of image {first}"),
                    )
                }),
        })
        .collect()
}

/// What a driven run recorded.
#[derive(Clone, Debug, Default)]
pub struct TrackRun {
    /// One row per object and tracked frame (with [`Keep::Results`]).
    pub results: Vec<PoseResult>,
    /// Frames that failed to load, with the reason.
    pub skipped: Vec<(u32, String)>,
    /// Tracking latency per object per frame (s).
    pub latencies: Vec<f64>,
    /// Decoding time per frame (s).
    pub decode: Vec<f64>,
    /// Per object and tracked frame: what the tracker published besides the pose.
    pub tracking: Vec<Published>,
}

/// What the tracker published for one object in one frame besides the result row.
#[derive(Clone, Debug)]
pub struct Published {
    /// Image id.
    pub im_id: u32,
    /// Object id.
    pub obj_id: u32,
    /// The estimate.
    pub pose: Isometry3<f64>,
    /// Its tangent-space covariance ([`FrameOutput::covariance`]).
    pub covariance: Matrix6<f64>,
    /// What the tracker judged of it ([`FrameOutput::judgement`]).
    pub judgement: Judgement,
}

/// A tracker and what it has done so far.
pub struct Driver {
    /// The tracker.
    pub tracker: Tracker,
    /// The run so far.
    pub run: TrackRun,
    scene_id: u32,
    keep: Keep,
}

/// What a [`Driver`] keeps of each frame in its [`TrackRun`], ordered: each keeps what the one
/// before it keeps, and more.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Keep {
    /// Nothing: a stream that lasts as long as its source (the pipeline, whose estimates leave as
    /// messages). Keeping its history grew a 10-minute soak by about 4 KB per frame.
    Nothing,
    /// Latencies, decoding times, skipped frames and what the tracker published (a clip's study).
    History,
    /// That and one result row per object and frame (`hdpf track`, the goal clips).
    Results,
}

impl Driver {
    /// Start tracking `objects` of scene `scene_id` from image `first` (ground truth `gt`) with
    /// the initial poses `from` names, keeping what `keep` says of each frame.
    pub fn start(
        config: &TrackerConfig,
        objects: Vec<ObjectModel>,
        (scene_id, first, gt): (u32, u32, &[GtPose]),
        from: &InitFrom,
        keep: Keep,
    ) -> Result<Self> {
        let init = initial_poses(config, &objects, (scene_id, first, gt), from)?;
        Ok(Self {
            tracker: Tracker::new(config.clone(), objects, init)?,
            run: TrackRun::default(),
            scene_id,
            keep,
        })
    }

    /// Track image `im_id`, loaded (or not) in `decode` seconds: a frame that failed to load is
    /// skipped and counted (`None`); otherwise the tracker's output.
    pub fn frame(
        &mut self,
        im_id: u32,
        loaded: std::result::Result<&RgbdFrame, &Error>,
        decode: f64,
    ) -> Result<Option<FrameOutput>> {
        let frame = match loaded {
            Ok(f) => f,
            Err(e) => {
                if self.keep >= Keep::History {
                    self.run.skipped.push((im_id, e.to_string()));
                }
                return Ok(None);
            }
        };
        // The grey image RGB modalities read is derived from the colour: count it as decoding,
        // so that tracking latency stays the filter's own time.
        let t0 = Instant::now();
        if self.tracker.config().needs().grey && frame.rgb.is_some() {
            frame.need_grey("tracker")?;
        }
        let decode = decode + t0.elapsed().as_secs_f64();
        let out = self.tracker.step(frame)?;
        if self.keep >= Keep::History {
            self.keep_frame(im_id, decode, &out);
        }
        Ok(Some(out))
    }

    /// Appends frame `im_id`'s history (and with [`Keep::Results`] its result rows) to the run.
    fn keep_frame(&mut self, im_id: u32, decode: f64, out: &FrameOutput) {
        self.run.decode.push(decode);
        self.run.latencies.extend(&out.seconds);
        let published = (self.tracker.objects().iter().enumerate()).map(|(k, o)| Published {
            im_id,
            obj_id: o.obj_id,
            pose: out.poses[k],
            covariance: out.covariance[k],
            judgement: out.judgement[k],
        });
        self.run.tracking.extend(published);
        if self.keep == Keep::Results {
            let time: f64 = out.seconds.iter().sum();
            let rows = self
                .tracker
                .objects()
                .iter()
                .zip(&out.poses)
                .map(|(o, pose)| PoseResult {
                    scene_id: self.scene_id,
                    im_id,
                    obj_id: o.obj_id,
                    score: 1.0,
                    pose: *pose,
                    time,
                });
            self.run.results.extend(rows);
        }
    }

    /// Track every image of `scene` (the first one is the initialization: its estimate is the
    /// tracker's first update), with a progress bar.
    pub fn track_scene(&mut self, scene: &Scene) -> Result<()> {
        let label = format!("track {}/{:06}", scene.split, scene.scene_id);
        let ids = &scene.image_ids;
        self.track_all(&label, ids.len(), |i| (ids[i], scene.load_frame(ids[i])))
    }

    /// Track frames `0..n`, each loaded by `load(i)` as (image id, frame or the load error),
    /// timing the loading as decoding; a progress bar labelled `label` shows how far it got.
    pub fn track_all(
        &mut self,
        label: &str,
        n: usize,
        mut load: impl FnMut(usize) -> (u32, Result<RgbdFrame>),
    ) -> Result<()> {
        let bar = indicatif::ProgressBar::new(n as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
                .map_err(|e| Error::Other(e.to_string()))?,
        );
        bar.set_prefix(label.to_string());
        for i in 0..n {
            bar.inc(1);
            let t0 = Instant::now();
            let (im_id, loaded) = load(i);
            let decode = t0.elapsed().as_secs_f64();
            if self.frame(im_id, loaded.as_ref(), decode)?.is_none() {
                bar.set_message(format!("skipped image {im_id}"));
            }
        }
        bar.finish_and_clear();
        Ok(())
    }
}

/// The first image of `scene` and its ground truth, or an error naming the scene.
pub fn first_image(scene: &Scene) -> Result<(u32, Vec<GtPose>)> {
    let first = *scene
        .image_ids
        .first()
        .ok_or_else(|| Error::param("scene", scene.scene_id, "has no images"))?;
    Ok((first, scene.gt.get(&first).cloned().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domains::pose::tracker::tests::{depth_only, rendered_box_at};

    /// Drives the rendered box through 3 frames keeping `keep`; the run's lengths.
    fn run_lengths(keep: Keep) -> [usize; 5] {
        let (frame, object, pose) = rendered_box_at(Isometry3::translation(0.0, 0.0, 0.45));
        let gt = [GtPose {
            obj_id: object.obj_id,
            pose,
        }];
        let config = depth_only(TrackerConfig::default());
        let start = (1, 1, &gt[..]);
        let mut d =
            Driver::start(&config, vec![object], start, &InitFrom::GroundTruth, keep).unwrap();
        for im_id in 1..=3 {
            assert!(d.frame(im_id, Ok(&frame), 0.0).unwrap().is_some());
        }
        let skipped = Error::Other("unreadable".into());
        assert!(d.frame(4, Err(&skipped), 0.0).unwrap().is_none());
        let r = &d.run;
        [
            r.results.len(),
            r.tracking.len(),
            r.latencies.len(),
            r.decode.len(),
            r.skipped.len(),
        ]
    }

    #[test]
    fn a_streaming_driver_keeps_nothing_per_frame_and_an_offline_one_its_history() {
        // The pipeline's driver runs for as long as its source: nothing may grow with the frames.
        assert_eq!(run_lengths(Keep::Nothing), [0; 5]);
        assert_eq!(run_lengths(Keep::History), [0, 3, 3, 3, 1]);
        assert_eq!(run_lengths(Keep::Results), [3, 3, 3, 3, 1]);
    }
}
