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
    // Weight 0 is a zero likelihood (an increment of +∞, or a weight already 0) under the
    // likelihood rule; a finite increment that overflows, or any −∞ under the trapezoid rule, is
    // an error.
    let zero_ok = matches!(rw, Reweight::Likelihood { .. });
    let zeros: Vec<bool> = (lw.iter().zip(increments))
        .map(|(&l, &inc)| zero_ok && (inc == f64::INFINITY || l == f64::NEG_INFINITY))
        .collect();
    lw.iter_mut()
        .zip(increments)
        .for_each(|(l, inc)| *l -= inc / temperature);
    if zeros.iter().all(|&z| z) {
        return Err(Error::Other(format!(
            "update {t}: every particle has zero likelihood (loss = +inf): the filter has lost \
             the state; widen the prior or the process noise"
        )));
    }
    normalize_log(&mut lw);
    let ok = |(v, zero): (&f64, &bool)| v.is_finite() || (*zero && *v == f64::NEG_INFINITY);
    match lw.iter().zip(&zeros).position(|p| !ok(p)) {
        None => Ok(lw),
        Some(i) => Err(Error::NonFinite {
            what: "log-weight".into(),
            step: t,
            particle: i,
            value: lw[i],
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Weight 0 comes only from a zero likelihood (an increment of +∞) or a weight already 0,
    /// under the likelihood rule; a finite loss whose increment overflows stays an error, and so
    /// does +∞ under the trapezoid rule.
    #[test]
    fn only_a_zero_likelihood_gives_weight_zero() {
        let likelihood = Reweight::Likelihood { temperature: 1.0 };
        let lw = reweighted(None, &[1.0, f64::INFINITY], &likelihood, 1).unwrap();
        assert_eq!((lw[0], lw[1]), (0.0, f64::NEG_INFINITY));
        let again = reweighted(Some(&lw), &[2.0, 3.0], &likelihood, 2).unwrap();
        assert_eq!((again[0], again[1]), (0.0, f64::NEG_INFINITY));
        let cold = Reweight::Likelihood {
            temperature: 1e-300,
        };
        assert!(reweighted(None, &[1.0, 1e10], &cold, 1).is_err());
        let trapezoid = Reweight::Trapezoid { temperature: 1.0 };
        assert!(reweighted(None, &[1.0, f64::INFINITY], &trapezoid, 1).is_err());
        let e = reweighted(None, &[f64::INFINITY; 2], &likelihood, 3).unwrap_err();
        assert!(e.to_string().contains("zero likelihood"), "{e}");
    }
}
