//! One frame of every object group, in three phases:
//!
//! 1. **Plan**, group by group: a group's first frame learns the modalities' online statistics
//!    at the start poses and, from an uncertain start, searches the start hypotheses; then each
//!    member's particle spread. Once every group is planned, their filters are taken out.
//! 2. **Refine**, all groups side by side: each group's correspondence rounds at the frame's pace
//!    ([`super::pace`]), reading only its own members' states and filter and writing only its own
//!    members' entries of a copy of the frame's output.
//! 3. **Apply**: every refined member's reading at its new estimate (its detection loss, visible
//!    fraction and colour loss), all side by side; then group by group in order the refined
//!    estimates, the loss check of each member by its reading and the re-detection of a held
//!    one; last, every member not held teaches the modalities, all side by side.
//!
//! The groups share nothing that a refinement changes (each object's estimate and learned
//! statistics, each group's filter and random streams are their own), so the result is the
//! group-by-group one, bit for bit, whatever the number of threads; with one filter per object
//! (the default) a frame of several objects uses every core even where one object's rounds
//! cannot. The same holds for phase 3: a reading depends on its own object's pose and colour
//! statistics alone, what an object teaches goes to its own colour statistics, which no other
//! object's judgement or search reads, and the searches, which do look at the other objects (a
//! placement inside one is refused), still run one after another in group order.

use super::redetect::Reading;
use super::{FrameMaps, FrameOutput, Judgement, PoseChart, Refined, RgbdFrame, Tracker};
use crate::core::error::Result;
use nalgebra::Vector6;
use rayon::prelude::*;

/// What one group's refinement starts from (phase 1).
struct Plan {
    /// Group index.
    g: usize,
    /// Its objects (tracker order).
    members: Vec<usize>,
    /// Each member's particle spread before the frame (metres at the surface).
    spreads: Vec<f64>,
    /// Whether this is the group's first frame.
    first: bool,
}

impl Tracker {
    /// One frame of every group (module docs). On an error every group that did not fail has
    /// its result applied and the first error (tracker order) is returned. A group whose start
    /// (phase 1) fails leaves every filter in place and no group refined; a group whose rounds
    /// fail keeps its previous estimates and loses its filter (its next frame starts it afresh,
    /// as a first one); a group whose re-detection fails keeps its refined estimates, and its
    /// members before the failing one still teach the modalities.
    pub(super) fn step_groups(
        &mut self,
        frame: &RgbdFrame,
        maps: &FrameMaps,
        out: &mut FrameOutput,
    ) -> Result<()> {
        let plans = (0..self.groups.len())
            .map(|g| self.plan_group(g, frame, maps))
            .collect::<Result<Vec<_>>>()?;
        let plans: Vec<_> = (plans.into_iter())
            .map(|plan| (self.groups[plan.g].filter.take(), plan))
            .collect();
        let (this, snapshot) = (&*self, &*out);
        let refined: Vec<_> = (plans.into_par_iter())
            .map(|(base, plan)| {
                let mut trial = snapshot.clone();
                let input = (plan.g, &plan.members[..], &plan.spreads[..], plan.first);
                let r = this.refine_paced(input, base, frame, maps, &mut trial);
                (plan, r.map(|r| (r, trial)))
            })
            .collect();
        let readings = self.read_refined(&refined, frame, maps);
        let (mut first_error, mut teachers) = (None, Vec::new());
        for ((plan, r), readings) in refined.into_iter().zip(readings) {
            let applied = r.and_then(|(best, trial)| {
                out.take_members(trial, &plan.members);
                let judged = (best, readings);
                self.apply_group(&plan, judged, frame, maps, out, &mut teachers)
            });
            if let Err(e) = applied {
                first_error.get_or_insert(e);
            }
        }
        let this = &*self;
        teachers
            .par_iter()
            .for_each(|&k| this.learn(k, frame, maps));
        first_error.map_or(Ok(()), Err)
    }

    /// Every refined member read at its refined estimate ([`Tracker::read_at`]), all side by
    /// side (phase 3's readings, per group in member order; none for a group whose rounds
    /// failed).
    fn read_refined<T>(
        &self,
        refined: &[(Plan, Result<(Refined, T)>)],
        frame: &RgbdFrame,
        maps: &FrameMaps,
    ) -> Vec<Vec<Reading>> {
        let at: Vec<(usize, usize, &PoseChart)> = (refined.iter().enumerate())
            .filter_map(|(i, (plan, r))| Some((i, plan, &r.as_ref().ok()?.0.charts)))
            .flat_map(|(i, plan, charts)| {
                (plan.members.iter().zip(charts)).map(move |(&k, c)| (i, k, c))
            })
            .collect();
        let read: Vec<Reading> = (at.par_iter())
            .map(|&(_, k, chart)| self.read_at(k, &chart.reference, frame, maps))
            .collect();
        let mut readings = vec![Vec::new(); refined.len()];
        for (&(i, _, _), reading) in at.iter().zip(read) {
            readings[i].push(reading);
        }
        readings
    }

    /// Phase 1 of group `g` (module docs); the group's filter stays in place.
    fn plan_group(&mut self, g: usize, frame: &RgbdFrame, maps: &FrameMaps) -> Result<Plan> {
        let members = self.groups[g].members.clone();
        let first = self.groups[g].filter.is_none();
        if first {
            // Online statistics start from the initial poses.
            members.iter().for_each(|&k| self.learn(k, frame, maps));
        }
        if first && self.config.init_noise.is_some() {
            for &k in &members {
                self.select_hypothesis(k, frame, maps)?;
            }
        }
        let spreads = (members.iter().enumerate())
            .map(|(j, &k)| self.spread(g, j, k))
            .collect();
        Ok(Plan {
            g,
            members,
            spreads,
            first,
        })
    }

    /// Phase 3 of a group (module docs): its refinement `best` from `plan` becomes the members'
    /// estimates, then each member is judged by its reading there, re-detected when held, and
    /// added to `teachers` (the objects the modalities learn from once every group is applied)
    /// when not.
    fn apply_group(
        &mut self,
        plan: &Plan,
        (best, readings): (Refined, Vec<Reading>),
        frame: &RgbdFrame,
        maps: &FrameMaps,
        out: &mut FrameOutput,
        teachers: &mut Vec<usize>,
    ) -> Result<()> {
        let Plan {
            g,
            members,
            spreads,
            first,
        } = plan;
        let (g, first) = (*g, *first);
        let Refined {
            predicted,
            charts,
            filter,
        } = best;
        self.groups[g].filter = filter;
        for (j, &k) in members.iter().enumerate() {
            let st = &mut self.states[k];
            // An uncertain start's first correction is no motion: no velocity until frame 2. An
            // exact start's (sub-mm) stays one (README, "No velocity from an uncertain start…").
            let a_motion = !(first && self.config.uncertain_start);
            st.previous = a_motion.then_some(st.estimate);
            st.estimate = charts[j].reference;
            out.spread[k] = spreads[j];
        }
        let rd = self.config.redetect;
        for ((j, &k), reading) in members.iter().enumerate().zip(readings) {
            let judge = rd.unwrap_or_default();
            let lost = self.judge(k, &judge, reading, frame, maps);
            if let (true, Some(rd)) = (lost, rd) {
                let centre = predicted[j].pose(&Vector6::zeros());
                out.redetected[k] = self.redetect(g, j, k, &centre, &rd, frame, maps)?;
                if out.redetected[k] {
                    out.covariance[k] = self.config.restart_covariance();
                }
            }
            let held = lost && !out.redetected[k];
            out.judgement[k] = Judgement {
                quality: self.states[k].quality,
                visible: self.states[k].visible,
                held,
                lost: held && judge.confirms_loss(self.states[k].detection),
            };
            if !held {
                teachers.push(k);
            }
        }
        Ok(())
    }
}

impl FrameOutput {
    /// Take `members`' entries from `other`, a copy of this output in which one group's
    /// refinement wrote its members' entries (every field is named, so that a new one cannot be
    /// forgotten here).
    fn take_members(&mut self, other: FrameOutput, members: &[usize]) {
        let FrameOutput {
            poses,
            seconds,
            spread,
            mut particles,
            covariance,
            ess,
            loss_std,
            redetected,
            judgement,
        } = other;
        for &k in members {
            self.poses[k] = poses[k];
            self.seconds[k] = seconds[k];
            self.spread[k] = spread[k];
            self.particles[k] = std::mem::take(&mut particles[k]);
            self.covariance[k] = covariance[k];
            self.ess[k] = ess[k];
            self.loss_std[k] = loss_std[k];
            self.redetected[k] = redetected[k];
            self.judgement[k] = judgement[k];
        }
    }
}
