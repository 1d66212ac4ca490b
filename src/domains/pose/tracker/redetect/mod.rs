//! Re-detection after loss, a component of the tracker that scores with the tracker's modalities:
//! the trigger reads the detection loss of the modalities that judge detections
//! ([`crate::domains::pose::modality::FrameTerm::detection_loss`]), the search scores grid
//! placements and refines the best with every modality's terms.

use super::{add_noise6, FrameMaps, Tracker, TrackerConfig};
use crate::core::error::Result;
use crate::core::geometry::camera::Camera;
use crate::core::stats::upper_median;
use crate::domains::pose::mesh::SurfacePoint;
use crate::domains::pose::modality::views::Shape;
use crate::domains::pose::modality::visible::visible_points;
use crate::domains::pose::modality::{ImageF32, PoseChart, RgbdFrame};
use nalgebra::{Isometry3, Matrix6, Point3, UnitQuaternion, Vector3, Vector6};
use rayon::prelude::*;

mod config;
pub use config::RedetectConfig;

/// What judging an object reads from the frame at its estimate ([`Tracker::read_at`]).
#[derive(Clone, Copy, Debug)]
pub(super) struct Reading {
    /// Its detection loss there (`None`: nothing of it visible).
    loss: Option<f64>,
    /// Its visible fraction as the depth sees it (NaN when not judged).
    visible: f64,
    /// Its colour loss there, when re-detection is on and something of it is visible.
    colour: Option<f64>,
}

/// One rotation's placements of a search: their poses, detection losses and the grid step (m).
type Placed = (Vec<Isometry3<f64>>, Vec<f64>, f64);

/// A pixel grid over the image region spanned by two image points, widened by `margin` pixels
/// and clipped to the image: `(u₀ + i·step, v₀ + j·step)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct PixelGrid {
    origin: (f64, f64),
    step: f64,
    pub(super) n: (usize, usize),
}

impl PixelGrid {
    /// The grid over `a`, `b` ± `margin`, at `step` pixels or coarser so that no axis has more
    /// than `max` points.
    pub(super) fn new(
        cam: &Camera,
        a: (f64, f64),
        b: (f64, f64),
        margin: f64,
        step: f64,
        max: usize,
    ) -> Self {
        let clip = |x: f64, size: u32| x.clamp(0.0, (size as f64 - 1.0).max(0.0));
        let (u0, u1) = (
            clip(a.0.min(b.0) - margin, cam.width),
            clip(a.0.max(b.0) + margin, cam.width),
        );
        let (v0, v1) = (
            clip(a.1.min(b.1) - margin, cam.height),
            clip(a.1.max(b.1) + margin, cam.height),
        );
        let extent = (u1 - u0).max(v1 - v0);
        let step = step
            .max(extent / max.max(2).saturating_sub(1) as f64)
            .max(1.0);
        let count = |len: f64| (len / step).floor() as usize + 1;
        Self {
            origin: (u0, v0),
            step,
            n: (count(u1 - u0), count(v1 - v0)),
        }
    }

    /// The grid's pixels, row by row.
    pub(super) fn pixels(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        (0..self.n.1).flat_map(move |j| {
            (0..self.n.0).map(move |i| {
                (
                    self.origin.0 + i as f64 * self.step,
                    self.origin.1 + j as f64 * self.step,
                )
            })
        })
    }
}

/// How far the centre `c` (camera frame) lies behind the surface seen on its ray: `c_z` minus the
/// median depth (the upper median of an even count) of the `visible` points (camera frame) that
/// project within `radius_px` pixels of `c`'s projection. A placement puts the centre at the
/// sensor's depth at a grid pixel plus this, and the sensor there reads the surface on the centre's
/// ray. `None` without such points (an object with a hole at its centre, a banana or a clamp whose
/// centre lies off its body, or a centre at or behind the camera plane); [`Tracker::placements`]
/// then also anchors on the visible point projecting nearest the centre ([`nearest_visible`]),
/// where the centre lies in front of the camera.
///
/// Until 2026-12-06 the mean depth always stood in: for a can seen from its side it lies nearer
/// the centre than the wall on the centre's ray, at `r` (about `2r/π` in front for a wall seen
/// square-on). For s31's tuna can (radius 43 mm) the mean read 16–18 mm in front of the centre and
/// the surface on the ray 42 mm, so every placement lay about 24 mm too near and none came within
/// 15 mm of the truth while the can was lost in plain sight (filter seed 1, 28 lost frames).
pub(super) fn depth_behind(
    visible: &[SurfacePoint],
    c: &Vector3<f64>,
    cam: &Camera,
    radius_px: f64,
) -> Option<f64> {
    let d2 = px_dist2(cam, c);
    let near_ray = |p: &&SurfacePoint| d2(p) <= radius_px * radius_px;
    let mut on_ray: Vec<f64> = match c.z > 1e-3 {
        true => visible.iter().filter(near_ray).map(|p| p.p.z).collect(),
        false => Vec::new(),
    };
    upper_median(&mut on_ray).map(|m| c.z - m)
}

/// The point of `visible` (camera frame) that projects nearest the projection of `c`; `None`
/// without visible points or with `c` at or behind the camera plane.
pub(super) fn nearest_visible(
    visible: &[SurfacePoint],
    c: &Vector3<f64>,
    cam: &Camera,
) -> Option<Vector3<f64>> {
    if c.z <= 1e-3 {
        return None;
    }
    let d2 = px_dist2(cam, c);
    let nearest = visible.iter().min_by(|a, b| d2(a).total_cmp(&d2(b)));
    nearest.map(|p| p.p.coords)
}

/// The squared image distance (pixels²) of a point's projection from `c`'s.
fn px_dist2<'a>(cam: &'a Camera, c: &Vector3<f64>) -> impl Fn(&SurfacePoint) -> f64 + 'a {
    let (cu, cv) = cam.project_xyz(c);
    move |p| {
        let (u, v) = cam.project_xyz(&p.p.coords);
        (u - cu).powi(2) + (v - cv).powi(2)
    }
}

/// The detection losses of several modalities (each one loss per pose of `n`) summed per pose:
/// no judgement where one judging modality sees nothing, and a diverged pose (NaN) judged as the
/// worst fit, never as a match.
fn summed_losses(
    per_term: impl IntoIterator<Item = Vec<Option<f64>>>,
    n: usize,
) -> Vec<Option<f64>> {
    let mut total: Vec<Option<f64>> = vec![None; n];
    let mut unseen = vec![false; n];
    for losses in per_term {
        for ((t, u), l) in total.iter_mut().zip(&mut unseen).zip(losses) {
            match l {
                None => *u = true,
                Some(l) => *t = Some(t.unwrap_or(0.0) + l),
            }
        }
    }
    let judged = total.into_iter().zip(unseen).map(|(t, u)| match u {
        true => None,
        false => t.map(|t| if t.is_nan() { f64::INFINITY } else { t }),
    });
    judged.collect()
}

/// Median of the valid (positive) depths in the `(2r+1)²` window about pixel `(u, v)`.
pub(super) fn window_depth(depth: &ImageF32, (u, v): (f64, f64), r: i64) -> Option<f64> {
    let (x0, y0) = (u.round() as i64, v.round() as i64);
    let mut vals: Vec<f64> = (-r..=r)
        .flat_map(|dy| (-r..=r).map(move |dx| (x0 + dx, y0 + dy)))
        .filter(|&(x, y)| {
            x >= 0 && y >= 0 && (x as usize) < depth.width && (y as usize) < depth.height
        })
        .map(|(x, y)| depth.at(x as usize, y as usize))
        .filter(|&d| d > 0.0)
        .map(f64::from)
        .collect();
    upper_median(&mut vals)
}

impl Tracker {
    /// The re-detection loss of object `k` at `pose` (see [`RedetectConfig`]); `None` when no model
    /// point is visible there (nothing to judge by: the trigger neither flags nor learns from it,
    /// the search takes it as no candidate).
    pub(super) fn detection_loss(
        &self,
        k: usize,
        pose: &Isometry3<f64>,
        frame: &RgbdFrame,
        maps: &FrameMaps,
    ) -> Result<Option<f64>> {
        let chart = PoseChart::new(*pose, &self.objects[k].centre);
        let losses = self.shifted_detection_losses(k, &chart, &[Vector3::zeros()], frame, maps)?;
        Ok(losses[0])
    }

    /// [`Tracker::detection_loss`] at `chart`'s reference translated by each of `shifts`
    /// ([`crate::domains::pose::modality::FrameTerm::shifted_detection_losses`]: the depth
    /// modality scores every shift with the points visible at the reference).
    fn shifted_detection_losses(
        &self,
        k: usize,
        chart: &PoseChart,
        shifts: &[Vector3<f64>],
        frame: &RgbdFrame,
        maps: &FrameMaps,
    ) -> Result<Vec<Option<f64>>> {
        let points = &self.objects[k].points;
        let per_term = (maps.terms.iter())
            .filter_map(|m| m.shifted_detection_losses(&frame.camera, chart, points, shifts));
        Ok(summed_losses(per_term, shifts.len()))
    }

    /// Object `k` at `pose` judged by the frame's modalities, one preparation each: its detection
    /// loss ([`Tracker::detection_loss`]) and its visible fraction as the depth sees it — of its
    /// model points visible there with a reading, the fraction that nothing nearer hides
    /// ([`crate::domains::pose::modality::PointCensus::unhidden_fraction`], from the first
    /// modality that counts them; NaN without one or without judged points).
    fn judged_at(
        &self,
        k: usize,
        pose: &Isometry3<f64>,
        frame: &RgbdFrame,
        maps: &FrameMaps,
    ) -> (Option<f64>, f64) {
        let chart = PoseChart::new(*pose, &self.objects[k].centre);
        let (points, camera) = (&self.objects[k].points, &frame.camera);
        let (mut losses, mut visible) = (Vec::new(), None);
        for m in &maps.terms {
            match m.detection_census(camera, &chart, points) {
                Some((loss, census)) => {
                    losses.push(vec![loss]);
                    visible = visible.or(census.unhidden_fraction());
                }
                None => losses.extend(m.detection_loss(camera, &chart, points).map(|l| vec![l])),
            }
        }
        (summed_losses(losses, 1)[0], visible.unwrap_or(f64::NAN))
    }

    /// What judging object `k` at `pose` (its refined estimate) reads from the frame: its
    /// detection loss and visible fraction ([`Tracker::judged_at`]) and, with re-detection on and
    /// something of it visible, its colour loss ([`Tracker::colour_loss`], which the running
    /// colour level takes only when the judgement finds the estimate good; for a held object it
    /// goes unused). A function of object `k`'s pose and own colour statistics alone, so every
    /// object's reading can run side by side before any is judged.
    pub(super) fn read_at(
        &self,
        k: usize,
        pose: &Isometry3<f64>,
        frame: &RgbdFrame,
        maps: &FrameMaps,
    ) -> Reading {
        let (loss, visible) = self.judged_at(k, pose, frame, maps);
        let colour = match (loss, self.config.redetect) {
            (Some(_), Some(_)) => self.colour_loss(k, pose, frame, maps),
            _ => None,
        };
        Reading {
            loss,
            visible,
            colour,
        }
    }

    /// Judge object `k`'s estimate, read there as `reading` ([`Tracker::read_at`]), with the
    /// trigger of `rd`: its detection loss `ℓ` (kept as the state's `detection`, 0 when nothing
    /// of the object is visible, and as its quality `1 − min(1, ℓ)`, 0 when nothing is visible,
    /// NaN without a judging modality) fed to the running level; true when it signals a loss
    /// (counted in the state's `held`).
    pub(super) fn judge(
        &mut self,
        k: usize,
        rd: &RedetectConfig,
        reading: Reading,
        frame: &RgbdFrame,
        maps: &FrameMaps,
    ) -> bool {
        let judged = self.has_detection_judge(frame, maps);
        let Reading {
            loss,
            visible,
            colour,
        } = reading;
        self.states[k].visible = visible;
        self.states[k].quality = match (judged, loss) {
            (false, _) => f64::NAN,
            (true, None) => 0.0,
            (true, Some(l)) => (1.0 - l).clamp(0.0, 1.0),
        };
        self.states[k].detection = loss.unwrap_or(0.0);
        // Nothing of the object visible: nothing to judge by, so neither lost nor good (the
        // level and the last good pose stay as they were).
        let lost = loss.is_some_and(|l| self.update_level(k, l, rd));
        if lost {
            self.states[k].held += 1;
        } else if loss.is_some() && self.config.redetect.is_some() {
            self.update_colour_level(k, rd, colour);
        }
        lost
    }

    /// Feed `colour`, the colour loss at object `k`'s good estimate ([`Tracker::colour_loss`]),
    /// to its running colour level, with the detection level's smoothing; a search winner's
    /// colour must stay near it ([`RedetectConfig::colour_accepts`]). Without a colour judgement
    /// the level stays as it was.
    fn update_colour_level(&mut self, k: usize, rd: &RedetectConfig, colour: Option<f64>) {
        // A non-finite reading would stick in the level and refuse every later winner.
        let Some(c) = colour.filter(|c| c.is_finite()) else {
            return;
        };
        let level = &mut self.states[k].colour_level;
        *level = Some(rd.smoothed(*level, c));
    }

    /// Object `k`'s colour loss at `pose`: the mean over the modalities that keep a colour model
    /// of it ([`crate::domains::pose::modality::FrameTerm::colour_loss`]); `None` without one,
    /// or when nothing of the object there is unhidden and inside the image.
    fn colour_loss(
        &self,
        k: usize,
        pose: &Isometry3<f64>,
        frame: &RgbdFrame,
        maps: &FrameMaps,
    ) -> Option<f64> {
        let chart = PoseChart::new(*pose, &self.objects[k].centre);
        let points = &self.objects[k].points;
        let losses: Vec<f64> = (maps.terms.iter())
            .filter_map(|m| m.colour_loss(&frame.camera, &chart, k, points))
            .collect();
        (!losses.is_empty()).then(|| losses.iter().sum::<f64>() / losses.len() as f64)
    }

    /// Whether any modality of the frame judges detections.
    fn has_detection_judge(&self, frame: &RgbdFrame, maps: &FrameMaps) -> bool {
        let Some(obj) = self.objects.first() else {
            return false;
        };
        let chart = PoseChart::new(Isometry3::identity(), &obj.centre);
        (maps.terms.iter()).any(|m| {
            m.detection_loss(&frame.camera, &chart, &Shape::default())
                .is_some()
        })
    }

    /// Re-detect object `k` (member `j` of group `g`), just held by [`Tracker::judge`],
    /// about `pred` (this frame's prediction); true when its estimate was replaced.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn redetect(
        &mut self,
        g: usize,
        j: usize,
        k: usize,
        pred: &Isometry3<f64>,
        rd: &RedetectConfig,
        frame: &RgbdFrame,
        maps: &FrameMaps,
    ) -> Result<bool> {
        let est = self.states[k].estimate;
        let loss = self.states[k].detection;
        let lost = self.states[k].held - 1;
        // Hold the estimate (no velocity) rather than let it run away.
        self.states[k].previous = Some(est);
        if !rd.searches_after(lost) {
            return Ok(false);
        }
        let salt = self.config.seed ^ (self.frames as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let good = self.states[k].good;
        let (found, winner) = self.search_lost(k, pred, &good, rd.reach(lost), rd, frame, maps)?;
        let level = self.states[k].level.map_or(0.0, |(l, _)| l);
        // The winner's colour loss first, the estimate's second, then the tracked level.
        let colours = || {
            let seen = self.colour_loss(k, &winner, frame, maps);
            let held = self.colour_loss(k, &est, frame, maps);
            (seen, held, self.states[k].colour_level)
        };
        // The search already scores poses inside another object as infinite: a guard.
        if !rd.accepts_winner((found, loss, level), colours) || self.inside_another(k, &winner) {
            return Ok(false);
        }
        self.restart_about(g, j, k, winner, salt);
        self.states[k].quality = (1.0 - found).clamp(0.0, 1.0);
        self.states[k].visible = self.judged_at(k, &winner, frame, maps).1;
        Ok(true)
    }

    /// Whether `pose` puts object `k`'s centre inside the bounding box of another object tracked
    /// (not held) at its estimate: a thin object searched for can fit a neighbour's surface (s62,
    /// README "Four fresh sequences": the large marker placed inside the bleach bottle).
    pub(super) fn inside_another(&self, k: usize, pose: &Isometry3<f64>) -> bool {
        let c = pose * Point3::from(self.objects[k].centre);
        let others = (0..self.objects.len()).filter(|&j| j != k && self.states[j].held == 0);
        others.into_iter().any(|j| {
            let o = &self.objects[j];
            let q = self.states[j].estimate.inverse_transform_point(&c).coords - o.centre;
            (0..3).all(|i| q[i].abs() < o.half_extent[i])
        })
    }

    /// Feed object `k`'s detection `loss` to its running level; true when it signals a loss
    /// (the level is then left unchanged), false when it does not (the estimate is good; the
    /// level learns [`RedetectConfig::taught`]).
    fn update_level(&mut self, k: usize, loss: f64, rd: &RedetectConfig) -> bool {
        let warmup = match self.config.uncertain_start {
            true => rd.warmup.max(rd.noisy_warmup),
            false => rd.warmup,
        };
        let st = &mut self.states[k];
        let lost = match st.level {
            Some((level, n)) if n >= warmup => rd.signals_loss(loss, level),
            _ => false,
        };
        if !lost {
            let (level, n) = st.level.map_or((None, 0), |(l, n)| (Some(l), n));
            st.level = Some((rd.smoothed(level, rd.taught(loss)), n + 1));
            st.held = 0;
            st.good = st.estimate;
        }
        lost
    }

    /// Search for lost object `k`: [`Tracker::placements`] within `reach` at each of
    /// [`RedetectConfig::rotations`], each scored by its detection loss; the best
    /// `rd.candidates` are refined by [`Tracker::refine`] (the refined pose kept where it judges
    /// better). A pose inside another tracked object ([`Tracker::inside_another`]) scores
    /// infinite, so that the best placement outside every other object wins. Returns the lowest
    /// detection loss and its pose (the prediction is always a candidate).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn search_lost(
        &self,
        k: usize,
        pred: &Isometry3<f64>,
        good: &Isometry3<f64>,
        reach: f64,
        rd: &RedetectConfig,
        frame: &RgbdFrame,
        maps: &FrameMaps,
    ) -> Result<(f64, Isometry3<f64>)> {
        // A pose from which nothing of the object is visible is no candidate (it would score 0),
        // nor one inside another tracked object (two objects cannot overlap).
        let score = |pose: &Isometry3<f64>| -> Result<f64> {
            if self.inside_another(k, pose) {
                return Ok(f64::INFINITY);
            }
            Ok(self
                .detection_loss(k, pose, frame, maps)?
                .unwrap_or(f64::INFINITY))
        };
        // Each rotation's placements, and then each candidate's refinement, run side by side;
        // their results are combined in order, so the search is the one-by-one search, bit for
        // bit (and its first error in that order is the one returned).
        let rotations = rd.rotations(&pred.rotation, &good.rotation);
        let placed: Vec<_> = (rotations.par_iter())
            .map(|r| self.placed_at(k, (pred, r), good, reach, rd, frame, maps))
            .collect();
        let (mut poses, mut scored, mut step) = (Vec::new(), Vec::new(), 0.0f64);
        for at in placed {
            let (at_poses, losses, s) = at?;
            for (p, l) in at_poses.into_iter().zip(losses) {
                scored.push((l, poses.len()));
                poses.push(p);
            }
            step = step.max(s);
        }
        scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let coarse = self.config.coarse_scale;
        let schedule = [step, step, step / 2.0, coarse, coarse, coarse];
        let mut best = (score(pred)?, *pred);
        let candidates: Vec<_> = (scored.iter().take(rd.candidates))
            .map(|&(_, i)| poses[i])
            .collect();
        let judged: Vec<_> = (candidates.par_iter())
            .map(|placed| -> Result<(f64, Isometry3<f64>)> {
                // The grid ranked the placements with the points visible at the prediction;
                // the candidates are judged with their own.
                let grid = score(placed)?;
                let refined = self.refine(k, *placed, &schedule, frame, maps)?;
                let l = score(&refined)?;
                Ok(if l < grid {
                    (l, refined)
                } else {
                    (grid, *placed)
                })
            })
            .collect();
        for candidate in judged {
            let (l, pose) = candidate?;
            if l < best.0 {
                best = (l, pose);
            }
        }
        Ok(best)
    }

    /// The placements of lost object `k` at the prediction's translation turned to `rotation`
    /// ([`Tracker::placements`]), each with its detection loss (infinite where nothing of the
    /// object is visible or where it lies inside another tracked object), and the grid step.
    #[allow(clippy::too_many_arguments)]
    fn placed_at(
        &self,
        k: usize,
        (pred, rotation): (&Isometry3<f64>, &UnitQuaternion<f64>),
        good: &Isometry3<f64>,
        reach: f64,
        rd: &RedetectConfig,
        frame: &RgbdFrame,
        maps: &FrameMaps,
    ) -> Result<Placed> {
        let at = Isometry3::from_parts(pred.translation, *rotation);
        let chart = PoseChart::new(at, &self.objects[k].centre);
        let (shifts, step) = self.placements(k, &chart, good, reach, rd, frame)?;
        let losses = self.shifted_detection_losses(k, &chart, &shifts, frame, maps)?;
        let pose = |t: &Vector3<f64>| chart.pose(&Vector6::new(t.x, t.y, t.z, 0.0, 0.0, 0.0));
        let (poses, scores) = (shifts.iter().zip(losses))
            .map(|(t, l)| {
                let p = pose(t);
                let l = match self.inside_another(k, &p) {
                    true => None,
                    false => l,
                };
                (p, l.unwrap_or(f64::INFINITY))
            })
            .unzip();
        Ok((poses, scores, step))
    }

    /// Gauss–Newton refinement of object `k` from `pose`: one step per entry of `spreads`, each
    /// about the current pose with the observation terms widened to that spread,
    /// `δξ = −(H + μI)⁻¹ g` (H the modalities' Gauss–Newton curvature) with a halving line
    /// search on the data loss; a step that does not lower the loss is skipped.
    fn refine(
        &self,
        k: usize,
        mut pose: Isometry3<f64>,
        spreads: &[f64],
        frame: &RgbdFrame,
        maps: &FrameMaps,
    ) -> Result<Isometry3<f64>> {
        for &spread in spreads {
            let chart = PoseChart::new(pose, &self.objects[k].centre);
            let terms = self.object_terms(k, &chart, frame, maps, spread, true)?;
            let data = |xi: &Vector6<f64>| -> f64 {
                terms.modalities.iter().map(|(w, m)| w * m.loss(xi)).sum()
            };
            let (mut g, mut h) = (Vector6::zeros(), Matrix6::zeros());
            for (w, m) in &terms.modalities {
                let mut gm = Vector6::zeros();
                m.loss_grad(&Vector6::zeros(), &mut gm);
                g += gm * *w;
                h += m.curvature() * *w;
            }
            let damping = 1e-6 * h.trace().max(1e-12);
            let Some(chol) = (h + Matrix6::identity() * damping).cholesky() else {
                continue;
            };
            let step = -chol.solve(&g);
            let base = data(&Vector6::zeros());
            if let Some(t) = [1.0, 0.5, 0.25, 0.125]
                .into_iter()
                .find(|&t| data(&(step * t)) < base)
            {
                pose = chart.pose(&(step * t));
            }
        }
        Ok(pose)
    }

    /// Translation hypotheses for object `k` about `chart`: its rotation centre placed on a
    /// [`PixelGrid`] over the image region spanned by the chart's centre and `good`'s, widened
    /// by `reach` metres, at the sensor's depth there (window median) plus the centre's depth
    /// behind the surface on its ray at the chart ([`depth_behind`]), and at the chart centre's
    /// own depth. Without visible points near the centre's ray the centre goes at the sensor's
    /// depth plus the mean visible depth behind it; and an anchor, the visible point `a`
    /// projecting nearest the centre ([`nearest_visible`]), goes at the grid pixel moved by `a`'s
    /// image offset from the centre, at the sensor's depth there (nothing added behind it). The anchor since 2026-12-06:
    /// the sensor at the centre's pixel can read the background behind a banana's bend, and
    /// s82's banana was lost for 12 frames in plain sight. Returns the shifts of the centre
    /// (camera frame) and the grid step in metres.
    fn placements(
        &self,
        k: usize,
        chart: &PoseChart,
        good: &Isometry3<f64>,
        reach: f64,
        rd: &RedetectConfig,
        frame: &RgbdFrame,
    ) -> Result<(Vec<Vector3<f64>>, f64)> {
        let depth = &*frame.need_depth("re-detection")?;
        let cam = frame.camera;
        let obj = &self.objects[k];
        let c = chart.centre;
        let px_per_m = cam.fx / c.z.max(1e-3);
        let g = PoseChart::new(*good, &obj.centre).centre;
        let at = |p: &Vector3<f64>| cam.project_xyz(&Vector3::new(p.x, p.y, p.z.max(1e-3)));
        let step = rd.step * obj.radius * px_per_m;
        let grid = PixelGrid::new(&cam, at(&c), at(&g), reach * px_per_m, step, rd.max_grid);
        let visible = visible_points(&obj.points, &chart.reference, &cam, &rd.visibility);
        // The points placed at the sensor's depth: each `(p, pixel offset from the grid pixel,
        // its depth behind the sensed surface)`.
        let mut anchors = Vec::with_capacity(2);
        match depth_behind(&visible, &c, &cam, rd.centre_px) {
            Some(behind) => anchors.push((c, (0.0, 0.0), behind)),
            None => {
                let n = visible.len().max(1) as f64;
                let mean = visible.iter().map(|p| p.p.z).sum::<f64>() / n;
                let behind = if visible.is_empty() { 0.0 } else { c.z - mean };
                anchors.push((c, (0.0, 0.0), behind));
                if let Some(a) = nearest_visible(&visible, &c, &cam) {
                    anchors.push((a, (at(&a).0 - at(&c).0, at(&a).1 - at(&c).1), 0.0));
                }
            }
        }
        // Per pixel: each anchor at the sensor's depth at its pixel (window median) plus its
        // depth behind the surface, then the centre at the chart's own depth (the pixel may
        // show an occluder).
        let shifts = grid
            .pixels()
            .flat_map(|(u, v)| {
                let sensed = anchors.iter().filter_map(move |&(p, (du, dv), behind)| {
                    let z = window_depth(depth, (u + du, v + dv), 2)?;
                    Some(cam.backproject(u + du, v + dv, z + behind).coords - p)
                });
                sensed.chain([cam.backproject(u, v, c.z).coords - c])
            })
            .collect();
        Ok((shifts, grid.step / px_per_m))
    }

    /// Restart object `k`'s particles (member `j` of group `g`) about `winner` at the motion σ,
    /// with no velocity.
    fn restart_about(&mut self, g: usize, j: usize, k: usize, winner: Isometry3<f64>, salt: u64) {
        let d = self.config.scale(self.objects[k].radius);
        let motion = TrackerConfig::in_units(self.config.motion_sigma, &d);
        let blocks = self.groups[g].members.len();
        if let Some(filter) = self.groups[g].filter.as_mut() {
            let mut rng = crate::core::filter::rng::stream(salt, 0xC8, k as u64);
            for row in filter.particles_mut().as_mut_slice().chunks_mut(6 * blocks) {
                let mut x = [0.0; 6];
                add_noise6(&mut x, &motion, &mut rng);
                row[6 * j..6 * j + 6].copy_from_slice(&x);
            }
            if blocks == 1 {
                filter.particles_mut().clear_weights();
            }
        }
        let st = &mut self.states[k];
        st.estimate = winner;
        st.previous = Some(winner);
    }
}
