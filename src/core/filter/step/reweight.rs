//! Reweighting from the observation loss `L = −log p(y|x)`: each particle's increment (row-local),
//! then the log-weights `ℓ_i ← ℓ_i − inc_i/T` normalised by log-sum-exp (done by the schedule, once
//! every particle's increment is known).

use super::{Row, RowMemo};
use crate::core::error::{Error, Result};
use crate::core::filter::model::Model;
use crate::core::filter::particles::normalize_log;
use serde::{Deserialize, Serialize};

/// How log-weights are updated from the loss `L = −log p(y|x)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reweight {
    /// `ℓ_i ← ℓ_i − L(p_i)/T` at the current positions (bootstrap / SIR).
    Likelihood {
        /// Likelihood temperature `T`.
        temperature: f64,
    },
    /// `ℓ_i ← ℓ_i − ½[L(p_i^before) + L(p_i^after)]/T`, the trapezoid rule of the weighted particle
    /// filter, where "before" is the position at the start of the preceding move.
    Trapezoid {
        /// Likelihood temperature `T`.
        temperature: f64,
    },
}

impl Reweight {
    /// The temperature `T`.
    pub fn temperature(&self) -> f64 {
        match self {
            Reweight::Likelihood { temperature } | Reweight::Trapezoid { temperature } => {
                *temperature
            }
        }
    }

    /// `T` must be finite and positive.
    pub(crate) fn validate(&self) -> Result<()> {
        let t = self.temperature();
        if t > 0.0 && t.is_finite() {
            Ok(())
        } else {
            Err(Error::param(
                "temperature",
                t,
                "must be finite and positive",
            ))
        }
    }

    /// One particle's increment: `L(after)` for the likelihood rule, `½[L(before) + L(after)]` for
    /// the trapezoid rule. `L(after)` is taken from the preceding move when it evaluated it.
    pub(super) fn row<M: Model + ?Sized>(
        &self,
        model: &M,
        row: &mut Row,
        memo: &mut RowMemo,
    ) -> Result<f64> {
        let after = match memo.after.take() {
            Some(a) => a,
            // A zero likelihood (`L = +∞`: a hard constraint, a gate) is weight 0 under the
            // likelihood rule; NaN and −∞ are errors, as is +∞ under the trapezoid rule.
            None => match (self, model.particle_loss(row.x, row.state)) {
                (Reweight::Likelihood { .. }, f64::INFINITY) => f64::INFINITY,
                (_, l) => row.finite_loss(l)?,
            },
        };
        memo.last = after;
        match self {
            Reweight::Likelihood { .. } => Ok(after),
            Reweight::Trapezoid { .. } if memo.before.is_nan() => Err(Error::param(
                "steps",
                "Reweight::Trapezoid",
                "needs a Move step before it",
            )),
            Reweight::Trapezoid { .. } => Ok(0.5 * (after + memo.before)),
        }
    }
}

/// `ℓ_i − inc_i/T`, normalised by log-sum-exp (`ℓ = 0` for an unweighted set). Under the
/// likelihood rule a particle of zero likelihood (`inc = +∞`) gets `ℓ = −∞`, weight 0; an error
/// names the first log-weight that is otherwise not finite, or says that every particle has
/// weight 0, so nothing is committed then.
pub(crate) fn reweighted(
    lw: Option<&[f64]>,
    increments: &[f64],
    rw: &Reweight,
    t: usize,
) -> Result<Vec<f64>> {
    let temperature = rw.temperature();
    let mut lw = lw.map_or_else(|| vec![0.0; increments.len()], <[f64]>::to_vec);
    lw.iter_mut()
        .zip(increments)
        .for_each(|(l, inc)| *l -= inc / temperature);
    // Weight 0 is a zero likelihood under the likelihood rule; under the trapezoid rule (whose
    // losses are finite) it is an overflow, an error.
    let zero_ok = matches!(rw, Reweight::Likelihood { .. });
    if zero_ok && lw.iter().all(|&v| v == f64::NEG_INFINITY) {
        return Err(Error::Other(format!(
            "update {t}: every particle has zero likelihood (loss = +inf): the filter has lost \
             the state; widen the prior or the process noise"
        )));
    }
    normalize_log(&mut lw);
    let bad = |v: f64| v.is_nan() || v == f64::INFINITY || (!zero_ok && v.is_infinite());
    match lw.iter().position(|&v| bad(v)) {
        None => Ok(lw),
        Some(i) => Err(Error::NonFinite {
            what: "log-weight".into(),
            step: t,
            particle: i,
            value: lw[i],
        }),
    }
}
