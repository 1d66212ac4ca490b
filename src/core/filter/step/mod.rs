//! The composable steps a filter is made of: propagate → move → reweight → resample.
//!
//! Each step kind is defined once, in its own file, as one of two shapes:
//! - **row-local** (propagate, jitter, a pair-free move, a reweight's increment): what it does to one
//!   particle, given that particle's row, its payload row and its random stream. Both schedules of
//!   the engine — one step over all particles, or a window of updates one particle at a time — call
//!   the same function (`Step::run_row`).
//! - **set-level** (a move with the RF-PF pair term, resampling): what it does to the whole set
//!   (`Step::run_set`).
//!
//! Adding a step kind is one new file here plus its variant in [`Step`] and one arm in each of the
//! two dispatchers below.

mod ensemble_kalman;
mod ensemble_space;
pub(crate) use ensemble_space::{check_dense, observation};
mod gradient_move;
mod jitter;
mod newton_move;
pub(crate) use newton_move::curvature_at;
/// The Newton move's test models, for the tests of other filter modules.
#[cfg(test)]
pub(crate) use newton_move::tests as newton_test_models;
mod propagate;
mod resample;
mod reweight;
mod shrinkage;
mod svgd;

pub use ensemble_kalman::{Analysis, EnsembleConfig};
pub use gradient_move::{MoveConfig, PairConfig, StepSize, Substeps};
pub use newton_move::{NewtonConfig, Space};
pub use resample::{ResampleConfig, ResampleWhen};
pub use reweight::Reweight;
pub use shrinkage::{Shrinkage, ShrinkageRule};
pub use svgd::SvgdConfig;

pub(crate) use reweight::reweighted;

use crate::core::error::{Error, Result};
use crate::core::filter::diagnostics::Diagnostics;
use crate::core::filter::model::Model;
use crate::core::filter::particles::ParticleSet;
use crate::core::filter::rng::{stream, StreamRng};
use serde::{Deserialize, Serialize};

/// One step of a filter update.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Apply the model's transition `x ← f(x) + w` to every particle (no-op for static models).
    Propagate,
    /// Add isotropic Gaussian noise `x ← x + σ·N(0, I)` to every particle.
    Jitter {
        /// Standard deviation σ per coordinate.
        sigma: f64,
    },
    /// Deterministic gradient move, optionally with the RF-PF pair interaction.
    Move(MoveConfig),
    /// The Newton RF-PF move `p ← p − η(Σ̂_α⁻¹ + J̄)⁻¹[∇L + pair]` with the square-root spread rule.
    Newton(NewtonConfig),
    /// An ensemble Kalman analysis (EnKF or ETKF) for a linear(ised) observation.
    EnsembleKalman(EnsembleConfig),
    /// Stein variational gradient descent sub-steps (RBF kernel, median-heuristic bandwidth).
    Svgd(SvgdConfig),
    /// Update the log-weights from the observation loss.
    Reweight(Reweight),
    /// Resample the particles according to their weights.
    Resample(ResampleConfig),
}

/// What one particle carries from step to step within an update.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowMemo {
    /// `L` at the start of the update's last move (the trapezoid rule's "before"); NaN if none.
    pub before: f64,
    /// `L` at the end of the last move, when the move evaluated it for a following reweight.
    pub after: Option<f64>,
    /// The last loss evaluated (diagnostics); NaN if none.
    pub last: f64,
}

impl Default for RowMemo {
    fn default() -> Self {
        Self {
            before: f64::NAN,
            after: None,
            last: f64::NAN,
        }
    }
}

/// One particle as a row-local step sees it.
pub(crate) struct Row<'a> {
    /// Particle index (for random streams and error messages only; never shown to the model).
    pub i: usize,
    /// Update number (1 for the first observation).
    pub t: usize,
    /// Index of the step in the filter's list.
    pub k: usize,
    /// Seed of the filter's random streams.
    pub seed: u64,
    /// The particle's state, changed in place.
    pub x: &'a mut [f64],
    /// The particle's payload row (empty when the set carries none).
    pub state: &'a [f64],
}

impl Row<'_> {
    /// The particle's random stream for this step: `(seed, t<<8 | k, i)`.
    pub fn rng(&self) -> StreamRng {
        stream(
            self.seed,
            ((self.t as u64) << 8) | self.k as u64,
            self.i as u64,
        )
    }

    /// An error naming this particle and update.
    pub fn non_finite(&self, what: &str, value: f64) -> Error {
        Error::NonFinite {
            what: what.into(),
            step: self.t,
            particle: self.i,
            value,
        }
    }

    /// `Ok` if every coordinate of the particle is finite, else an error naming the first bad one.
    pub fn check(&self, what: &str) -> Result<()> {
        match first_non_finite(self.x) {
            None => Ok(()),
            Some(v) => Err(self.non_finite(what, v)),
        }
    }

    /// `l` if finite, else an error naming it as this particle's loss.
    pub fn finite_loss(&self, l: f64) -> Result<f64> {
        if l.is_finite() {
            Ok(l)
        } else {
            Err(self.non_finite("loss", l))
        }
    }
}

/// The per-update constant a row-local step needs from its schedule: for a move, its sub-move
/// size and count `(η/K, K)` and whether a reweight follows it directly.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RowPlan {
    /// `(η_k, K)` of a move; `(0, 0)` otherwise.
    pub movement: (f64, usize),
    /// Whether the next step is a reweight (a move then also evaluates `L` at its end).
    pub reweight_follows: bool,
}

/// What a set-level step works on: the particles, the update's per-particle memos and diagnostics,
/// and the rollback guard.
pub(crate) struct SetCtx<'a> {
    /// The particles.
    pub particles: &'a mut ParticleSet,
    /// Keeps what a failure must restore.
    pub guard: &'a mut Guard,
    /// Per-particle memos of the update.
    pub memo: &'a mut [RowMemo],
    /// The update's diagnostics.
    pub diag: &'a mut Diagnostics,
    /// Reusable `n × m` buffers (gradients, pair sums).
    pub buffers: &'a mut (Vec<f64>, Vec<f64>),
    /// Seed of the filter's random streams.
    pub seed: u64,
    /// Update number.
    pub t: usize,
    /// Index of the step in the list.
    pub k: usize,
}

impl SetCtx<'_> {
    /// Record the losses a set-level move evaluated at the start of its sub-move (`first`: the
    /// move's first, whose losses are the trapezoid rule's "before").
    pub fn record_losses(&mut self, first: bool, losses: &[f64]) {
        for (memo, l) in self.memo.iter_mut().zip(losses) {
            if first {
                memo.before = *l;
            }
            (memo.last, memo.after) = (*l, None);
        }
    }

    /// Replace every particle's position by its row of `next` (row-major `n × m`), after checking
    /// that all are finite (an error names the first bad particle and `what`).
    pub fn set_positions(&mut self, next: &[f64], what: &str) -> Result<()> {
        let m = self.particles.dim();
        if let Some(k) = next.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: what.into(),
                step: self.t,
                particle: k / m,
                value: next[k],
            });
        }
        self.guard.change_rows(self.particles, |i, _, x| {
            x.copy_from_slice(&next[i * m..(i + 1) * m]);
        });
        Ok(())
    }
}

/// What an update must restore on failure: the particles as they were before their first in-place
/// change (held in a spare buffer that is reused across updates) and the log-weights before the
/// first reweight.
#[derive(Clone, Debug, Default)]
pub(crate) struct Guard {
    /// The spare buffer: the pre-update particles once `saved`, stale contents otherwise.
    pub spare: Option<ParticleSet>,
    /// Whether `spare` holds this update's pre-update particles.
    pub saved: bool,
    /// The log-weights before the update's first reweight (`Some(None)`: it was unweighted).
    pub log_w_before: Option<Option<Vec<f64>>>,
}

impl Guard {
    /// Start a new update (the spare buffer is kept for reuse).
    pub fn begin(&mut self) {
        self.saved = false;
        self.log_w_before = None;
    }

    /// Keep a copy of `particles` before an in-place change (once per update).
    pub fn save(&mut self, particles: &ParticleSet) {
        if self.saved {
            return;
        }
        match &mut self.spare {
            Some(b) => b.copy_from(particles),
            None => self.spare = Some(particles.clone()),
        }
        self.saved = true;
    }

    /// Keep the log-weights before the first reweight of the update.
    pub fn save_log_weights(&mut self, particles: &ParticleSet) {
        if self.log_w_before.is_none() {
            self.log_w_before = Some(particles.log_weights().map(<[f64]>::to_vec));
        }
    }

    /// Apply `f(i, payload_row, row)` to every particle in parallel, `row` holding the particle's
    /// current values and changed in place. Before the update's first change the rows are copied
    /// into the spare buffer and changed there, which is then swapped in (the old particles become
    /// the backup without a second copy). Returns `f`'s results in particle order.
    pub fn change_rows<R: Send>(
        &mut self,
        particles: &mut ParticleSet,
        f: impl Fn(usize, &[f64], &mut [f64]) -> R + Sync,
    ) -> Vec<R> {
        if self.saved {
            return particles.update_rows(f);
        }
        let mut next = self.spare.take().unwrap_or_else(|| particles.clone());
        let out = next.assign_rows(particles, |i, x, s, d| {
            d.copy_from_slice(x);
            f(i, s, d)
        });
        std::mem::swap(particles, &mut next);
        self.spare = Some(next);
        self.saved = true;
        out
    }

    /// Undo the update's changes.
    pub fn restore(&mut self, particles: &mut ParticleSet) {
        if let (true, Some(backup)) = (self.saved, self.spare.as_mut()) {
            std::mem::swap(particles, backup);
        }
        if let Some(lw) = self.log_w_before.take() {
            particles.restore_log_weights(lw);
        }
        self.saved = false;
    }
}

impl Step {
    /// Whether the step acts on each particle alone (it then runs through `Step::run_row`, in
    /// either schedule); otherwise it couples particles and runs through `Step::run_set`.
    pub fn is_row_local(&self) -> bool {
        match self {
            Step::Propagate | Step::Jitter { .. } | Step::Reweight(_) => true,
            Step::Move(cfg) => cfg.pair.is_none(),
            Step::Newton(_) | Step::EnsembleKalman(_) | Step::Svgd(_) | Step::Resample(_) => false,
        }
    }

    /// Whether the row-local step leaves every particle, memo and weight as it was for `model`
    /// (propagating a model without a transition, a jitter of 0).
    pub(crate) fn is_no_op<M: Model + ?Sized>(&self, model: &M) -> bool {
        matches!(self, Step::Propagate | Step::Jitter { .. }) && !self.changes_positions(model)
    }

    /// Whether the step changes particle positions (and so needs them backed up).
    pub(crate) fn changes_positions<M: Model + ?Sized>(&self, model: &M) -> bool {
        match self {
            Step::Propagate => model.has_transition(),
            Step::Jitter { sigma } => *sigma != 0.0,
            Step::Move(_) | Step::Newton(_) | Step::EnsembleKalman(_) | Step::Svgd(_) => true,
            Step::Reweight(_) | Step::Resample(_) => false,
        }
    }

    /// Check the step's parameters.
    pub(crate) fn validate(&self) -> Result<()> {
        match self {
            Step::Propagate => Ok(()),
            Step::Jitter { sigma } => jitter::validate(*sigma),
            Step::Move(cfg) => cfg.validate(),
            Step::Newton(cfg) => cfg.validate(),
            Step::EnsembleKalman(cfg) => cfg.validate(),
            Step::Svgd(cfg) => cfg.validate(),
            Step::Reweight(rw) => rw.validate(),
            Step::Resample(cfg) => cfg.validate(),
        }
    }

    /// The row-local step on one particle; returns the reweight increment for a reweight step.
    pub(crate) fn run_row<M: Model + ?Sized>(
        &self,
        model: &M,
        plan: RowPlan,
        row: &mut Row,
        memo: &mut RowMemo,
    ) -> Result<Option<f64>> {
        match self {
            Step::Propagate => propagate::row(model, row).map(|_| None),
            Step::Jitter { sigma } => jitter::row(*sigma, row).map(|_| None),
            Step::Move(_) => gradient_move::row(model, plan, row, memo).map(|_| None),
            Step::Reweight(rw) => rw.row(model, row, memo).map(Some),
            Step::Resample(_) | Step::Newton(_) | Step::EnsembleKalman(_) | Step::Svgd(_) => Err(
                Error::Other(format!("{self:?} couples particles: not a row-local step")),
            ),
        }
    }

    /// The set-level step on all particles.
    pub(crate) fn run_set<M: Model + ?Sized>(&self, model: &M, cx: &mut SetCtx) -> Result<()> {
        match self {
            Step::Move(cfg) => gradient_move::set(cfg, model, cx),
            Step::Newton(cfg) => newton_move::set(cfg, model, cx),
            Step::EnsembleKalman(cfg) => ensemble_kalman::set(cfg, model, cx),
            Step::Svgd(cfg) => svgd::set(cfg, model, cx),
            Step::Resample(cfg) => cfg.apply(cx),
            _ => Err(Error::Other(format!(
                "{self:?} is row-local: it has no set-level implementation"
            ))),
        }
    }
}

/// The first non-finite value of `buf`, if any (an integer OR over "exponent bits all set" decides
/// the common all-finite case in one vectorised pass).
pub(crate) fn first_non_finite(buf: &[f64]) -> Option<f64> {
    const EXP: u64 = 0x7ff0_0000_0000_0000;
    let any = buf
        .iter()
        .fold(0u64, |acc, v| acc | u64::from(v.to_bits() & EXP == EXP));
    if any == 0 {
        return None;
    }
    buf.iter().copied().find(|v| !v.is_finite())
}
