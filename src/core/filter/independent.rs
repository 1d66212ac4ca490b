//! Particle-major execution of step lists whose particles never interact.
//!
//! When a filter's steps are only propagate, jitter, pair-free moves and reweights, particle `i`'s
//! path through any number of updates depends on nothing but its own row, its own random streams
//! `(seed, t<<8 | k, i)` and the models: log-weights feed back into nothing but the weights, and
//! their normalisation `ℓ ← ℓ − log Σ_j exp ℓ_j` is a shift common to all particles. Such a filter
//! can run a whole window of observations one particle at a time — the row stays in cache across
//! all of them, instead of the whole `n × m` buffer streaming through memory once per step — and
//! settle the log-weights afterwards, update by update, with the same arithmetic as the
//! one-update-at-a-time schedule. The numbers are bit-identical to it.

use crate::core::error::{Error, Result};
use crate::core::filter::model::Model;
use crate::core::filter::rng::stream;
use crate::core::filter::steps::{Reweight, Step};
use rand::RngCore;
use rand_distr::{Distribution, StandardNormal};
use std::cell::RefCell;

/// Whether every step leaves particles independent of each other (no pair term, no resampling).
pub(crate) fn is_independent(steps: &[Step]) -> bool {
    steps.iter().all(|s| match s {
        Step::Propagate | Step::Jitter { .. } | Step::Reweight(_) => true,
        Step::Move(cfg) => cfg.pair.is_none(),
        Step::Resample(_) => false,
    })
}

/// Whether step `k` is directly followed by a reweight (a move then also evaluates `L` at the new
/// position while the particle is in cache).
pub(crate) fn reweight_follows(steps: &[Step], k: usize) -> bool {
    matches!(steps.get(k + 1), Some(Step::Reweight(_)))
}

/// The per-update constants of a window: sub-move sizes and counts (they depend on each update's
/// model through its Lipschitz bound).
pub(crate) struct Plan {
    /// `(η_k, K)` per (update, step), row-major by update; `(0, 0)` for steps that are not moves.
    pub moves: Vec<(f64, usize)>,
    /// Number of steps per update.
    pub steps: usize,
    /// Reweight steps per update.
    pub reweights: usize,
}

impl Plan {
    /// `(η_k, K)` of step `k` in update `b`.
    pub fn movement(&self, b: usize, k: usize) -> (f64, usize) {
        self.moves[b * self.steps + k]
    }
}

/// What one particle did over a window.
pub(crate) struct RowTrace {
    /// Reweight increments, `reweights` per update (before division by the temperature).
    pub increments: Vec<f64>,
    /// The last loss each update evaluated (`NaN` for an update that evaluates none).
    pub last: Vec<f64>,
}

/// Where and how a particle's row failed: the update number, the index of the step in the list, and
/// the error (which names the particle).
pub(crate) struct RowFailure {
    /// `(update t, step k)`.
    pub at: (usize, usize),
    /// The error.
    pub error: Error,
}

/// Run every update of the window on particle `i` (row `x`), updates numbered from `t0 + 1`; on a
/// failure the row stops there and the trace holds the updates completed before it.
pub(crate) fn run_row<M: Model + ?Sized>(
    steps: &[Step],
    plan: &Plan,
    models: &[&M],
    (seed, t0): (u64, usize),
    i: usize,
    x: &mut [f64],
) -> (RowTrace, Option<RowFailure>) {
    let mut trace = RowTrace {
        increments: Vec::with_capacity(models.len() * plan.reweights),
        last: Vec::with_capacity(models.len()),
    };
    let failure = models.iter().enumerate().find_map(|(b, model)| {
        let t = t0 + b + 1;
        let ctx = (seed, t, i, plan, b);
        row_update(steps, *model, ctx, x, &mut trace).err()
    });
    (trace, failure)
}

/// One update `t` (the window's `b`-th) of particle `i`: every step in order.
fn row_update<M: Model + ?Sized>(
    steps: &[Step],
    model: &M,
    (seed, t, i, plan, b): (u64, usize, usize, &Plan, usize),
    x: &mut [f64],
    trace: &mut RowTrace,
) -> Result<(), RowFailure> {
    let (mut before, mut after, mut last) = (None, None, f64::NAN);
    for (k, step) in steps.iter().enumerate() {
        let rng = || stream(seed, ((t as u64) << 8) | k as u64, i as u64);
        let fail = |error| RowFailure { at: (t, k), error };
        match step {
            Step::Propagate if model.has_transition() => {
                model.transition(x, &mut rng());
                check_row(x, "state after transition", (i, t)).map_err(fail)?;
            }
            Step::Jitter { sigma } if *sigma > 0.0 => {
                jitter_row(*sigma, x, &mut rng());
                check_row(x, "state after jitter", (i, t)).map_err(fail)?;
            }
            Step::Propagate | Step::Jitter { .. } => {}
            Step::Move(_) => {
                let then = reweight_follows(steps, k);
                let mv = move_row(model, (i, t), x, plan.movement(b, k), then).map_err(fail)?;
                (before, last) = (Some(mv.before), mv.last);
                after = then.then_some(mv.after);
            }
            Step::Reweight(rw) => {
                let a = match after.take() {
                    Some(a) => a,
                    None => finite_loss(model.particle_loss(i, x), (i, t)).map_err(fail)?,
                };
                trace
                    .increments
                    .push(increment(rw, before, a).map_err(fail)?);
                last = a;
            }
            Step::Resample(_) => {
                return Err(fail(Error::Other(
                    "resampling couples particles: not a particle-major step".into(),
                )))
            }
        }
    }
    trace.last.push(last);
    Ok(())
}

/// The log-weight increment of a reweight: `L(after)` for the likelihood rule,
/// `½[L(before) + L(after)]` for the trapezoid rule (before = start of the preceding move).
pub(crate) fn increment(rw: &Reweight, before: Option<f64>, after: f64) -> Result<f64> {
    match rw {
        Reweight::Likelihood { .. } => Ok(after),
        Reweight::Trapezoid { .. } => before.map(|b| 0.5 * (after + b)).ok_or_else(|| {
            Error::param(
                "steps",
                "Reweight::Trapezoid",
                "needs a Move step before it",
            )
        }),
    }
}

/// `x ← x + σ·ε`, `ε ~ N(0, I)` from `rng`.
pub(crate) fn jitter_row(sigma: f64, x: &mut [f64], rng: &mut dyn RngCore) {
    x.iter_mut().for_each(|v| {
        let z: f64 = StandardNormal.sample(rng);
        *v += sigma * z
    })
}

thread_local! {
    /// One particle's gradient, reused by pair-free moves on each worker thread.
    static ROW_GRAD: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// One particle's losses in a pair-free move.
pub(crate) struct RowMove {
    /// `L` at the start of the move.
    pub before: f64,
    /// `L` at the start of the last sub-move.
    pub last: f64,
    /// `L` at the end of the move (`NaN` unless asked for).
    pub after: f64,
}

/// Particle `i` (update `t`) takes `k` steps `x ← x − η_k ∇L(x)` in place, checking loss, gradient
/// and position after each, and evaluates `L(x)` at the end when `after` is set.
pub(crate) fn move_row<M: Model + ?Sized>(
    model: &M,
    (i, t): (usize, usize),
    x: &mut [f64],
    (eta_k, k): (f64, usize),
    after: bool,
) -> Result<RowMove> {
    // The buffer is taken out of its cell for the duration (not borrowed), so a model that itself
    // runs parallel work — letting this thread pick up another particle meanwhile — cannot collide.
    let mut g = ROW_GRAD.with(RefCell::take);
    g.resize(x.len(), 0.0);
    let result = move_row_with(model, (i, t), x, (eta_k, k), after, &mut g);
    ROW_GRAD.with(|cell| cell.replace(g));
    result
}

/// [`move_row`] with the gradient buffer `g` given.
fn move_row_with<M: Model + ?Sized>(
    model: &M,
    (i, t): (usize, usize),
    x: &mut [f64],
    (eta_k, k): (f64, usize),
    after: bool,
    g: &mut [f64],
) -> Result<RowMove> {
    let mut out = RowMove {
        before: f64::NAN,
        last: f64::NAN,
        after: f64::NAN,
    };
    for s in 0..k {
        out.last = finite_loss(model.particle_loss_grad(i, x, g), (i, t))?;
        if s == 0 {
            out.before = out.last;
        }
        x.iter_mut()
            .zip(g.iter())
            .for_each(|(xk, gk)| *xk -= eta_k * gk);
        if !row_finite(x) {
            return Err(match g.iter().find(|v| !v.is_finite()) {
                Some(&v) => non_finite("gradient", v, (i, t)),
                None => first_non_finite(x, "state after move", (i, t)),
            });
        }
    }
    if after {
        out.after = finite_loss(model.particle_loss(i, x), (i, t))?;
    }
    Ok(out)
}

/// Whether every value is finite: an OR over "exponent bits all set" (NaN or ±∞), an integer
/// reduction that vectorises.
pub(crate) fn row_finite(row: &[f64]) -> bool {
    const EXP: u64 = 0x7ff0_0000_0000_0000;
    row.iter()
        .fold(0u64, |acc, v| acc | u64::from(v.to_bits() & EXP == EXP))
        == 0
}

fn non_finite(what: &str, value: f64, (particle, step): (usize, usize)) -> Error {
    Error::NonFinite {
        what: what.into(),
        step,
        particle,
        value,
    }
}

fn first_non_finite(x: &[f64], what: &str, at: (usize, usize)) -> Error {
    let v = x.iter().copied().find(|v| !v.is_finite());
    non_finite(what, v.unwrap_or(f64::NAN), at)
}

fn check_row(x: &[f64], what: &str, at: (usize, usize)) -> Result<()> {
    if row_finite(x) {
        Ok(())
    } else {
        Err(first_non_finite(x, what, at))
    }
}

fn finite_loss(l: f64, at: (usize, usize)) -> Result<f64> {
    if l.is_finite() {
        Ok(l)
    } else {
        Err(non_finite("loss", l, at))
    }
}
