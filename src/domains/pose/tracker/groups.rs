//! One frame of every object group, in three phases:
//!
//! 1. **Plan**, group by group: a group's first frame learns the modalities' online statistics
//!    at the start poses and, from an uncertain start, searches the start hypotheses; then each
//!    member's particle spread, and the group's filter taken out for refinement.
//! 2. **Refine**, all groups side by side: each group's correspondence rounds at the frame's pace
//!    ([`super::pace`]), reading only its own members' states and filter and writing only its own
//!    members' entries of a copy of the frame's output.
//! 3. **Apply**, group by group in order: the refined estimates, the loss check and re-detection
//!    of each member, and what the modalities learn from it.
//!
//! The groups share nothing that a refinement changes (each object's estimate, filter, random
//! streams and learned statistics are its own), so the result is the group-by-group one, bit for
//! bit, whatever the number of threads; with one filter per object (the default) a frame of
//! several objects uses every core even where one object's rounds cannot.

use super::{FrameMaps, FrameOutput, Refined, RgbdFrame, Tracker};
use crate::core::error::Result;
use crate::core::filter::Filter;
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
    /// The group's filter (`None` before its first frame).
    base: Option<Filter>,
}

impl Tracker {
    /// One frame of every group (module docs). On an error the groups before the failing one
    /// (tracker order) have their results applied; the failing group and those after it keep
    /// their previous estimates.
    pub(super) fn step_groups(
        &mut self,
        frame: &RgbdFrame,
        maps: &FrameMaps,
        out: &mut FrameOutput,
    ) -> Result<()> {
        let plans = (0..self.groups.len())
            .map(|g| self.plan_group(g, frame, maps))
            .collect::<Result<Vec<_>>>()?;
        let (this, snapshot) = (&*self, &*out);
        let refined: Vec<_> = (plans.into_par_iter())
            .map(|plan| {
                let mut trial = snapshot.clone();
                let input = (plan.g, &plan.members[..], &plan.spreads[..], plan.first);
                let r = this.refine_paced(input, plan.base, frame, maps, &mut trial);
                let (g, spreads, first) = (plan.g, plan.spreads, plan.first);
                (g, spreads, first, r.map(|r| (r, trial)))
            })
            .collect();
        for (g, spreads, first, r) in refined {
            let (best, trial) = r?;
            out.take_members(trial, &self.groups[g].members);
            self.apply_group(g, best, (&spreads, first), frame, maps, out)?;
        }
        Ok(())
    }

    /// Phase 1 of group `g` (module docs).
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
            base: self.groups[g].filter.take(),
        })
    }

    /// Phase 3 of group `g` (module docs): its refinement `best` from the members' `spreads` (on
    /// the group's `first` frame or not) becomes the members' estimates, then each member is
    /// judged, re-detected when lost, and taught to the modalities when not.
    fn apply_group(
        &mut self,
        g: usize,
        best: Refined,
        (spreads, first): (&[f64], bool),
        frame: &RgbdFrame,
        maps: &FrameMaps,
        out: &mut FrameOutput,
    ) -> Result<()> {
        let Refined {
            predicted,
            charts,
            filter,
        } = best;
        self.groups[g].filter = filter;
        let members = self.groups[g].members.clone();
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
        for (j, &k) in members.iter().enumerate() {
            let judge = rd.unwrap_or_default();
            let lost = self.judge(k, &judge, frame, maps)?;
            if let (true, Some(rd)) = (lost, rd) {
                let centre = predicted[j].pose(&Vector6::zeros());
                out.redetected[k] = self.redetect(g, j, k, &centre, &rd, frame, maps)?;
                if out.redetected[k] {
                    out.covariance[k] = self.config.restart_covariance();
                }
            }
            out.lost[k] = lost && !out.redetected[k];
            out.quality[k] = self.states[k].quality;
            if !out.lost[k] {
                self.learn(k, frame, maps);
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
            quality,
            lost,
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
            self.quality[k] = quality[k];
            self.lost[k] = lost[k];
        }
    }
}
