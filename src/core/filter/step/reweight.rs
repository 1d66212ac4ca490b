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
            None => row.finite_loss(model.particle_loss(row.x, row.state))?,
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

/// `ℓ_i − inc_i/T`, normalised by log-sum-exp (`ℓ = 0` for an unweighted set); an error names the
/// first non-finite log-weight, so nothing is committed unless all are finite.
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
    normalize_log(&mut lw);
    match lw.iter().position(|v| !v.is_finite()) {
        None => Ok(lw),
        Some(i) => Err(Error::NonFinite {
            what: "log-weight".into(),
            step: t,
            particle: i,
            value: lw[i],
        }),
    }
}
