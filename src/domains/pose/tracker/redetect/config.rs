//! The configuration of re-detection and its rules: when an object is judged lost, where and at
//! which rotations it is searched for, and when a search winner replaces the estimate.

use crate::domains::pose::modality::depth::DepthParams;
use crate::domains::pose::modality::visible::VisibilityParams;
use nalgebra::{UnitQuaternion, Vector3};

/// Re-detection after loss: when an object's detection loss at its estimate jumps far above its
/// running level (or is simply high), the object is searched for again, translation first: its
/// rotation centre is placed on a pixel grid over the image region between the constant-velocity
/// prediction and the last good pose — widened by a reach that grows with the frames it has been
/// lost — at two depths (the sensor's there plus the centre's depth behind the surface on its ray,
/// and the prediction's: the pixel may show an occluder; with no visible point near the centre's
/// ray, a third: the visible point nearest the centre at the sensor's depth at its own pixel), at
/// several rotations (the prediction's
/// and the last good pose's: a lost estimate's rotation drifts; and the prediction turned by
/// ±`turn` about each camera axis). Every placement is scored by the detection loss with the points
/// visible at the prediction's translation and the placement's rotation (one loss evaluation per
/// placement; a visibility pass over the whole model per placement made the frames with a search
/// the fast sequences' latency p99, 100–180 ms per object); the best few are judged with their own
/// visible points and refined by a few Gauss–Newton steps (kept only where that lowers their
/// detection loss), and the object's particles restart around the winner if it looks like the
/// object did while it was tracked (at most `found_ratio` × the running level, or `min_loss` if
/// that is higher; or, if its colour loss is at least `colour_gain` below the estimate's, at most
/// `lost_floor`), with a modality that keeps a colour model its colour loss is at most both the
/// estimate's and the object's running colour level's (learned while tracked) plus
/// `colour_margin`, and its centre lies inside no other tracked object's box.
///
/// The detection loss is the sum of the detection losses of the tracker's modalities that judge
/// detections (the depth modality: its loss at the estimate, at scale 1, divided by its outlier
/// constant times `n_eff` — about the fraction of visible points that are outliers or over
/// missing depth: 0 for a perfect fit, ≈ 1 when nothing fits); without such a modality
/// re-detection never triggers. The first `warmup` frames (`noisy_warmup` after an uncertain
/// start) only learn the running level (the start pose is trusted), so an object whose sensor
/// depth is patchy (dark or shiny) is judged against its own normal loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RedetectConfig {
    /// Trigger when the detection loss exceeds `ratio` × its running level …
    ///
    /// 1.5 since 2026-12-06 (2.0 before). A trigger holds the object (no velocity, no colour
    /// learning, no learning of the running level) even when its search finds nothing better, and
    /// that alone keeps many objects that the occluder bar half hides during a jerk: the twelve
    /// fast real-mesh sequences' mean ADD-S over filter seeds 0–8 went from 4.18 to 2.24 mm (better
    /// on eight of nine seeds). Its risk, a search that places a half-hidden object on its
    /// occluder's face, is what [`RedetectConfig::colour_margin`] refuses.
    pub ratio: f64,
    /// … and exceeds this absolute value (outlier-fraction units: more than this fraction of
    /// the visible model unexplained; a well-tracked object reads 0.1–0.45, a lost one 0.75–1)
    /// …
    pub lost_floor: f64,
    /// … or, after the warm-up, whenever it exceeds this one (nothing fits).
    pub max_loss: f64,
    /// Weight of the newest frame in the running level (exponential moving average; frames
    /// that trigger are left out).
    pub smoothing: f64,
    /// Frames that only learn the running level (no trigger) before it is trusted.
    pub warmup: usize,
    /// The warm-up after an uncertain start ([`crate::domains::pose::tracker::TrackerConfig::uncertain_start`]: init noise or
    /// a start from another method's results): those first frames
    /// converge rather than track, and a search then can place a thin object on the table it
    /// lies on (measured: ycbv-mini train_real/2 with `--init-noise 20mm,10deg`, the large
    /// marker moved 117 mm on frame 3, ADD-S 17.6 mm against 2.4 without re-detection).
    pub noisy_warmup: usize,
    /// Search reach (metres) beyond the prediction and the last good pose, per lost frame.
    pub reach: f64,
    /// The reach grows by one `reach` per consecutive lost frame, up to this many.
    pub max_growth: f64,
    /// Grid step of the translation search, as a fraction of the object's radius.
    pub step: f64,
    /// At most this many grid points per image axis (the step grows instead).
    pub max_grid: usize,
    /// Best grid placements refined by Gauss–Newton.
    pub candidates: usize,
    /// Once the reach has stopped growing, search only every `interval`-th lost frame (bounds
    /// the cost of an object that stays lost).
    pub interval: usize,
    /// The winner replaces the estimate only if its detection loss is below `accept` × the
    /// estimate's …
    pub accept: f64,
    /// … and at most `found_ratio` × the running level (or `min_loss`, if higher): it must
    /// look like the object did while tracked, not merely better than a lost estimate (or, with
    /// colour evidence, at most `lost_floor`: see [`RedetectConfig::colour_gain`]).
    pub found_ratio: f64,
    /// The acceptance floor of `found_ratio` (outlier-fraction units). Until 2026-12-04 it was
    /// also the trigger's floor, now `lost_floor`.
    pub min_loss: f64,
    /// Selection of the visible points whose depth places the search grid.
    pub visibility: VisibilityParams,
    /// Besides the prediction's and the last good pose's rotation, the search tries the prediction
    /// turned by ± this angle (radians) about each camera axis (0: not). A lost object keeps
    /// moving while its estimate drifts: on the fast real-mesh sequence s52 (measured on
    /// 2026-12-04's version) the scissors were lost for 29 frames while fully visible, every
    /// search's best placement judging 0.44–0.79 against the 0.43 it needed, until ±20° turns found
    /// them (ADD-S 17.0 → 2.6 mm).
    ///
    /// 10° by default since 2026-12-06 (0 before). At 20° the extra placements let a barely
    /// visible object's lenient acceptance take a wrong one (README, "Turned placements"); with the
    /// colour level, the search filter and the anchor, 10° reads better than 0 and 20°: mean ADD-S
    /// over 25 fast sequences (filter seeds 0–4, s62 apart) 1.70 mm at 0, 1.66 at 20°, 1.57 at
    /// 10°, s62 21.3 / 10.3 / 10.9; and on five sequences generated after that choice (s91–s95)
    /// 1.93 at 0 against 1.86 at 10°. It still re-finds s83's marker worse (README, "Turned
    /// placements at 10°").
    pub turn: f64,
    /// A winner must also look like the object: its colour loss
    /// ([`crate::domains::pose::modality::FrameTerm::colour_loss`], with a modality that keeps
    /// a colour model) at most the estimate's plus this margin. The slow sequences with a grey
    /// plate over half of one object (s41–s44) need it once the trigger is at 1.5: the plate's
    /// face fits the depth as well as the half-hidden bottle (detection loss 0.35 against its
    /// estimate's 0.65, of which 0.43 occluded), but its colour loss reads 0.49–0.50 against the
    /// estimate's 0.08–0.14; without the check the bottle was moved onto the plate on two of
    /// three seeds (ADD-S 11.0 and 6.6 mm on s41). On the fast sequences no accepted winner read
    /// more than its estimate (re-detected winners 0.04–0.15 against 0.08–0.67). The same margin
    /// bounds it above the object's running colour level while tracked (the estimate of a lost
    /// object reads high itself).
    /// `f64::INFINITY` turns both checks off.
    pub colour_margin: f64,
    /// A winner whose colour loss is at least this much below the estimate's looks clearly more
    /// like the object, and then needs only to fit the depth within `lost_floor` (a fit the trigger
    /// would not call lost, as long as `lost_floor ≤ max_loss`) instead of `found_ratio` × the
    /// running level; it must still beat the estimate's detection loss by `accept`. A thin object's
    /// depth fit depends on its rotation, which the search only takes from the prediction and the
    /// last good pose: s52's scissors (filter seed 0) were lost for 28 frames while every search
    /// from frame 12 on placed them within 2–5 mm of the truth, judging 0.44–0.73 against the 0.43
    /// they needed, with colour losses of 0.10–0.16 against the estimate's 0.34–0.78.
    /// `f64::INFINITY` turns it off.
    pub colour_gain: f64,
    /// Radius in pixels about the centre's projection within which the visible points give the
    /// surface depth on the centre's ray: a placement puts the centre `c_z − median` behind the
    /// sensor's depth at its grid pixel (with the mean depth of all visible points when none
    /// projects there, and then the visible point nearest the centre anchors a further placement).
    /// About the sensor window the grid reads (5 × 5 pixels).
    pub centre_px: f64,
    /// An object held by the trigger ([`crate::domains::pose::tracker::Judgement::held`]) is
    /// reported lost ([`crate::domains::pose::tracker::Judgement::lost`]) only while its
    /// detection loss is at least this: most of its visible model unexplained (quality at most
    /// `1 − confirm_loss`), not merely worse than its running level. The trigger fires on a
    /// partial occlusion or a jerk too, where holding the pose is right but the estimate is
    /// still good; a user who stops on `lost` should not stop there.
    ///
    /// 0.8 since 2026-12-07, chosen on the fast real-mesh sets 21–24 and 31–34 (filter seeds 0–4)
    /// and 113–124 (seeds 0–1), `hdpf track` defaults: of the 709 held frames 30 (4.2 %) were at
    /// or over 20 mm ADD-S, of the 228 also at loss ≥ 0.8 28 (12 %). On sets not used for the
    /// choice (51–54 and 101–112, seeds 0–1): of 444 held frames 37 (8.3 %), of 166 lost 37
    /// (22 %). Most frames over 20 mm are of an object hidden behind the occluder whose held pose
    /// drifted (its visible points nearly all behind something nearer), which no depth judgement
    /// can tell from a held pose that did not.
    pub confirm_loss: f64,
}

impl Default for RedetectConfig {
    fn default() -> Self {
        Self {
            ratio: 1.5,
            lost_floor: 0.5,
            min_loss: 0.25,
            max_loss: 0.9,
            smoothing: 0.3,
            warmup: 2,
            noisy_warmup: 8,
            reach: 0.03,
            max_growth: 4.0,
            step: 0.08,
            max_grid: 24,
            candidates: 8,
            interval: 1,
            accept: 0.8,
            found_ratio: 1.5,
            visibility: DepthParams::default().visibility,
            turn: 10f64.to_radians(),
            colour_margin: 0.1,
            colour_gain: 0.2,
            centre_px: 3.0,
            confirm_loss: 0.8,
        }
    }
}

impl RedetectConfig {
    /// Whether to search on the `lost`-th consecutive lost frame (0-based).
    pub(in crate::domains::pose::tracker) fn searches_after(&self, lost: usize) -> bool {
        let grown = (self.max_growth.max(1.0) - 1.0).ceil() as usize;
        lost <= grown || (lost - grown).is_multiple_of(self.interval.max(1))
    }

    /// Search reach (metres) on the `lost`-th consecutive lost frame (0-based).
    pub(in crate::domains::pose::tracker) fn reach(&self, lost: usize) -> f64 {
        self.reach * (1.0 + lost as f64).min(self.max_growth.max(1.0))
    }

    /// A running level after one more reading `x`: `x` for the first, then the exponential
    /// moving average `level + smoothing · (x − level)` (the detection and the colour level).
    pub(in crate::domains::pose::tracker) fn smoothed(&self, level: Option<f64>, x: f64) -> f64 {
        level.map_or(x, |l| l + self.smoothing * (x - l))
    }

    /// What a good frame's detection `loss` teaches the running level: at most
    /// `max_loss / found_ratio`, so that no level learned (even by an object lost during the
    /// warm-up) lets [`RedetectConfig::accepts`] pass a winner that would itself judge as lost.
    pub(in crate::domains::pose::tracker) fn taught(&self, loss: f64) -> f64 {
        loss.min(self.max_loss / self.found_ratio.max(1.0))
    }

    /// Whether an object held by the trigger with detection loss `loss` is reported lost: at
    /// least `confirm_loss`.
    pub(in crate::domains::pose::tracker) fn confirms_loss(&self, loss: f64) -> bool {
        loss >= self.confirm_loss
    }

    /// Whether a detection loss `loss` signals a lost object whose running level is `level`
    /// (after the warm-up): above `max_loss`, or above both `ratio × level` and `lost_floor`.
    pub(in crate::domains::pose::tracker) fn signals_loss(&self, loss: f64, level: f64) -> bool {
        loss > self.max_loss || (loss > self.ratio * level && loss > self.lost_floor)
    }

    /// Whether a search winner of detection loss `found` replaces an estimate of loss `loss` for
    /// an object whose running level is `level`: below `accept × loss`, and at most
    /// `found_ratio × level` (or `min_loss`, if higher).
    pub(in crate::domains::pose::tracker) fn accepts(
        &self,
        found: f64,
        loss: f64,
        level: f64,
    ) -> bool {
        found < self.accept * loss
            && found <= (self.found_ratio.max(1.0) * level).max(self.min_loss)
    }

    /// Whether a search winner replaces the estimate, by depth and colour: its detection loss
    /// `found` passes [`RedetectConfig::accepts`] against the estimate's `loss` and the running
    /// `level`, or, when its colour loss `seen` is at least `colour_gain` below the estimate's
    /// `held`, beats `accept × loss` within `lost_floor`; and its colour passes
    /// [`RedetectConfig::colour_accepts`]. `colours` gives `(seen, held, tracked)`, `tracked` the
    /// object's running colour level while it was tracked; it is called only for a winner below
    /// `accept × loss`, which every acceptance needs.
    pub(in crate::domains::pose::tracker) fn accepts_winner(
        &self,
        (found, loss, level): (f64, f64, f64),
        colours: impl FnOnce() -> (Option<f64>, Option<f64>, Option<f64>),
    ) -> bool {
        if found.is_nan() || found >= self.accept * loss {
            return false;
        }
        let (seen, held, tracked) = colours();
        let looks_better = matches!((seen, held), (Some(s), Some(h)) if s + self.colour_gain <= h);
        let floor = self.lost_floor.min(self.max_loss);
        let fits = self.accepts(found, loss, level) || (looks_better && found <= floor);
        fits && self.colour_accepts(seen, held, tracked)
    }

    /// Whether a winner of colour loss `found` may replace an estimate of colour loss `held` for
    /// an object whose running colour level while tracked is `tracked`: at most
    /// `held + colour_margin` and at most `tracked + colour_margin`, each check skipped where
    /// either side is unknown (no colour model, nothing of the object unhidden to look at, or no
    /// good frame seen yet).
    ///
    /// The level check since 2026-12-06: a lost estimate's own colour loss is high (0.87–0.99 for
    /// s62's large marker), so the first check alone let through any placement on the occluder
    /// bar or a neighbour (0.51–0.58), where the marker read 0.16 while tracked.
    pub(in crate::domains::pose::tracker) fn colour_accepts(
        &self,
        found: Option<f64>,
        held: Option<f64>,
        tracked: Option<f64>,
    ) -> bool {
        let Some(found) = found else {
            return true;
        };
        [held, tracked]
            .into_iter()
            .flatten()
            .all(|h| found <= h + self.colour_margin)
    }

    /// The rotations a search places the object at: the prediction's, the last good pose's
    /// (when different), and with a positive [`RedetectConfig::turn`] the prediction's turned by
    /// `±turn` about the camera's x, y and z axes, `R_a(±turn)·R_pred`.
    pub(in crate::domains::pose::tracker) fn rotations(
        &self,
        pred: &UnitQuaternion<f64>,
        good: &UnitQuaternion<f64>,
    ) -> Vec<UnitQuaternion<f64>> {
        let mut out = vec![*pred];
        if good.angle_to(pred) > 1e-9 {
            out.push(*good);
        }
        if self.turn > 0.0 {
            for axis in [Vector3::x_axis(), Vector3::y_axis(), Vector3::z_axis()] {
                for angle in [-self.turn, self.turn] {
                    out.push(UnitQuaternion::from_axis_angle(&axis, angle) * pred);
                }
            }
        }
        out
    }
}
