//! The deterministic gradient move, with the RF-PF pair interaction as an option (Jacobi: every
//! particle moves from the old positions of all):
//!
//! ```text
//! p_i ← p_i − η [ ∇L(p_i) + ((m−2)/ε²) · L̃_i · Σ_j (ε / (‖p_i−p_j‖ + ε))^m (p_i − p_j) ]
//! ```
//!
//! `L̃_i = L(p_i) − mean_k L(p_k)`. Without the pair term the move is row-local (each particle its
//! own gradient descent: the gradient filter's and SGD's move); with it, set-level.

use super::{first_non_finite, Row, RowMemo, RowPlan, SetCtx};
use crate::core::error::{Error, Result};
use crate::core::filter::interaction;
use crate::core::filter::model::Model;
use crate::core::filter::particles::ParticleSet;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;

/// How the move's step size is set.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepSize {
    /// `η` directly; the pair term (if any) uses `γ = η·n`.
    Eta(f64),
    /// `γ`, with `η = γ / n` (the paper's parameterisation).
    Gamma(f64),
    /// `γ = c·n`, i.e. `η = c` — the paper's default is `c = 0.1`.
    GammaPerParticle(f64),
}

impl StepSize {
    /// Resolve to `(η, γ)` for `n` particles: `η = γ/n`.
    pub fn resolve(self, n: usize) -> (f64, f64) {
        let nf = n as f64;
        match self {
            StepSize::Eta(eta) => (eta, eta * nf),
            StepSize::Gamma(gamma) => (gamma / nf, gamma),
            StepSize::GammaPerParticle(c) => (c, c * nf),
        }
    }

    /// The number inside (η, γ or c).
    fn value(self) -> f64 {
        match self {
            StepSize::Eta(v) | StepSize::Gamma(v) | StepSize::GammaPerParticle(v) => v,
        }
    }
}

/// How many equal sub-moves a move of size `η` is split into. In a launch file or `--param`:
/// `"auto"` or a count ≥ 1 (`substeps = 4`; the older `{ fixed = 4 }` is read too).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SubstepsText", into = "SubstepsText")]
pub enum Substeps {
    /// `K = ⌈η·Lip⌉` from the model's gradient Lipschitz bound (1 when the model gives none), so that
    /// every explicit sub-step satisfies `(η/K)·Lip ≤ 1 < 2`. Where one step is stable, `K = 1`.
    Auto,
    /// A fixed number of sub-moves (≥ 1).
    Fixed(usize),
}

/// The forms [`Substeps`] is written in.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum SubstepsText {
    Count(u64),
    Name(String),
    Tagged { fixed: u64 },
}

impl TryFrom<SubstepsText> for Substeps {
    type Error = String;
    fn try_from(t: SubstepsText) -> std::result::Result<Self, String> {
        match t {
            SubstepsText::Name(n) if n == "auto" => Ok(Substeps::Auto),
            SubstepsText::Count(k) | SubstepsText::Tagged { fixed: k } if k >= 1 => {
                usize::try_from(k)
                    .map(Substeps::Fixed)
                    .map_err(|e| e.to_string())
            }
            _ => Err("substeps must be \"auto\" or a count ≥ 1".into()),
        }
    }
}

impl From<Substeps> for SubstepsText {
    fn from(s: Substeps) -> Self {
        match s {
            Substeps::Auto => SubstepsText::Name("auto".into()),
            Substeps::Fixed(k) => SubstepsText::Count(k as u64),
        }
    }
}

/// The RF-PF pair interaction (see [`crate::core::filter::interaction`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct PairConfig {
    /// `γ` that fixes the kernel width `ε = (γ/C_m)^{1/(2−m)}`; `None` uses the move's `γ`.
    pub gamma: Option<f64>,
}

/// A deterministic move of all particles from their old positions (see the module docs), with the
/// pair term only when `pair` is set, split into sub-moves of `η/K` each recomputing `∇L`, `L̃` and
/// the pair sum.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MoveConfig {
    /// Step size.
    pub step: StepSize,
    /// RF-PF pair interaction (None: gradient only).
    pub pair: Option<PairConfig>,
    /// Sub-stepping rule.
    pub substeps: Substeps,
}

impl MoveConfig {
    /// The step size must be finite and ≥ 0 (a NaN η would never end `auto` sub-stepping).
    pub(crate) fn validate(&self) -> Result<()> {
        let v = self.step.value();
        if v >= 0.0 && v.is_finite() {
            Ok(())
        } else {
            Err(Error::param("move step size", v, "must be finite and ≥ 0"))
        }
    }

    /// `(η/K, K)` for `n` particles on `model`.
    pub(crate) fn movement<M: Model + ?Sized>(&self, n: usize, model: &M) -> Result<(f64, usize)> {
        let eta = self.step.resolve(n).0;
        let k = substep_count(self.substeps, eta, model)?;
        Ok((eta / k as f64, k))
    }
}

/// The most sub-moves (or SVGD split parts) one update may take. Beyond it an update would run for
/// hours (a likelihood far sharper than the step size, or a collapsed cloud), so it is refused.
pub(crate) const MAX_SUBSTEPS: f64 = 100_000.0;

/// `k` (rounded up, at least 1) as a sub-step count, or an error naming `what`, the count and `why`.
pub(crate) fn bounded_count(what: &str, k: f64, why: &str) -> Result<usize> {
    if k.is_finite() && k <= MAX_SUBSTEPS {
        return Ok(k.ceil().max(1.0) as usize);
    }
    let msg =
        format!("a stable update would need {k:.3e} sub-steps (at most {MAX_SUBSTEPS}): {why}");
    Err(Error::param(what, format!("{k:.3e}"), msg))
}

/// `K = ⌈η·Lip⌉` (at least 1) for [`Substeps::Auto`].
pub(crate) fn substep_count<M: Model + ?Sized>(
    rule: Substeps,
    eta: f64,
    model: &M,
) -> Result<usize> {
    match (rule, model.gradient_lipschitz()) {
        (Substeps::Fixed(k), _) => Ok(k.max(1)),
        (Substeps::Auto, None) => Ok(1),
        (Substeps::Auto, Some(lip)) => bounded_count(
            "substeps = auto",
            eta * lip,
            "η·Lip(∇L) is huge (a very sharp likelihood); use a smaller step size η",
        ),
    }
}

thread_local! {
    /// One particle's gradient, reused by pair-free moves on each worker thread.
    static ROW_GRAD: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// The pair-free move of one particle: `K` steps `x ← x − (η/K) ∇L(x)` in place, checking loss,
/// gradient and position after each; `L(x)` at the end too when a reweight follows.
pub(super) fn row<M: Model + ?Sized>(
    model: &M,
    plan: RowPlan,
    row: &mut Row,
    memo: &mut RowMemo,
) -> Result<()> {
    // The buffer is taken out of its cell for the duration (not borrowed), so a model that itself
    // runs parallel work — letting this thread pick up another particle meanwhile — cannot collide.
    let mut g = ROW_GRAD.with(RefCell::take);
    g.resize(row.x.len(), 0.0);
    let result = row_with(model, plan, row, memo, &mut g);
    ROW_GRAD.with(|cell| cell.replace(g));
    result
}

/// [`row`] with the gradient buffer given.
fn row_with<M: Model + ?Sized>(
    model: &M,
    plan: RowPlan,
    row: &mut Row,
    memo: &mut RowMemo,
    g: &mut [f64],
) -> Result<()> {
    let (eta_k, k) = plan.movement;
    for s in 0..k {
        memo.last = row.finite_loss(model.particle_loss_grad(row.x, row.state, g))?;
        if s == 0 {
            memo.before = memo.last;
        }
        row.x
            .iter_mut()
            .zip(g.iter())
            .for_each(|(xk, gk)| *xk -= eta_k * gk);
        if first_non_finite(row.x).is_some() {
            return Err(match first_non_finite(g) {
                Some(v) => row.non_finite("gradient", v),
                None => row.check("state after move").err().unwrap_or(Error::Other(
                    "a non-finite state after a move vanished".into(),
                )),
            });
        }
    }
    memo.after = match plan.reweight_follows {
        true => Some(row.finite_loss(model.particle_loss(row.x, row.state))?),
        false => None,
    };
    Ok(())
}

/// The move with the pair term, on the whole set: per sub-move, every particle's loss and gradient,
/// the pair sums at the old positions, then `p ← p − (η/K)[∇L + c·L̃·S]`.
pub(super) fn set<M: Model + ?Sized>(cfg: &MoveConfig, model: &M, cx: &mut SetCtx) -> Result<()> {
    let (n, m) = (cx.particles.len(), cx.particles.dim());
    let gamma = cfg.step.resolve(n).1;
    let eps = match cfg.pair {
        Some(p) => Some(interaction::epsilon(p.gamma.unwrap_or(gamma), m)?),
        None => None,
    };
    let (eta_k, k) = cfg.movement(n, model)?;
    let (mut grads, mut pair) = std::mem::take(cx.buffers);
    grads.resize(n * m, 0.0);
    pair.resize(if eps.is_some() { n * m } else { 0 }, 0.0);
    let result = sub_moves(model, cx, (eta_k, k, eps), &mut grads, &mut pair);
    *cx.buffers = (grads, pair);
    result
}

/// `k` sub-moves of size `eta_k` (with the pair term when `eps` is set).
fn sub_moves<M: Model + ?Sized>(
    model: &M,
    cx: &mut SetCtx,
    (eta_k, k, eps): (f64, usize, Option<f64>),
    grads: &mut [f64],
    pair: &mut [f64],
) -> Result<()> {
    let m = cx.particles.dim();
    let mut ratio_sum = 0.0;
    for s in 0..k {
        let losses = evaluate_with_gradients(model, cx.particles, grads, cx.t)?;
        let term = match eps {
            None => None,
            Some(eps) => {
                interaction::pair_sums(cx.particles.as_slice(), losses.len(), m, eps, pair);
                Some(PairTerm {
                    pair: &*pair,
                    losses: &losses,
                    mean: losses.iter().sum::<f64>() / losses.len() as f64,
                    c: (m as f64 - 2.0) / (eps * eps),
                })
            }
        };
        let g: &[f64] = grads;
        // The pair term is added and the particle moved in one parallel pass.
        let ratios = cx.guard.change_rows(cx.particles, |i, _, x| {
            let gi = &g[i * m..(i + 1) * m];
            (x.iter_mut().zip(PairTerm::gradient(term.as_ref(), gi, i)))
                .for_each(|(xk, gk)| *xk -= eta_k * gk);
            term.as_ref().map_or(0.0, |t| t.ratio(gi, i))
        });
        if term.is_some() {
            ratio_sum += ratios.iter().sum::<f64>() / ratios.len() as f64;
        }
        check_move(cx.particles.as_slice(), m, cx.t, |p| {
            PairTerm::gradient(term.as_ref(), &g[p * m..(p + 1) * m], p).collect()
        })?;
        cx.record_losses(s == 0, &losses);
    }
    cx.diag.substeps += k;
    cx.diag.pair_to_grad = ratio_sum / k as f64;
    Ok(())
}

/// Losses and gradients (into `grads`) of all particles in parallel; an error names the first
/// particle with a non-finite loss.
pub(super) fn evaluate_with_gradients<M: Model + ?Sized>(
    model: &M,
    p: &ParticleSet,
    grads: &mut [f64],
    t: usize,
) -> Result<Vec<f64>> {
    let m = p.dim();
    let losses: Vec<f64> = (p.rows().zip(grads.par_chunks_mut(m)))
        .map(|((x, s), g)| model.particle_loss_grad(x, s, g))
        .collect();
    match losses.iter().position(|l| !l.is_finite()) {
        None => Ok(losses),
        Some(i) => Err(Error::NonFinite {
            what: "loss".into(),
            step: t,
            particle: i,
            value: losses[i],
        }),
    }
}

/// The RF-PF pair term of one sub-move, `c · L̃_i · S_i` with `L̃_i = L_i − mean L` and
/// `c = (m − 2)/ε²`, which the move adds to particle `i`'s gradient as it moves the particle (the
/// gradient buffer keeps `∇L` alone).
struct PairTerm<'a> {
    /// The pair sums `S` (`n × m`, row-major).
    pair: &'a [f64],
    losses: &'a [f64],
    mean: f64,
    c: f64,
}

impl PairTerm<'_> {
    /// `c · L̃_i`.
    fn scale(&self, i: usize) -> f64 {
        self.c * (self.losses[i] - self.mean)
    }

    /// The pair term's norm over the gradient's, `‖c L̃_i S_i‖ / ‖∇L_i‖` (0 for a zero gradient).
    fn ratio(&self, g: &[f64], i: usize) -> f64 {
        let m = g.len();
        let gnorm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
        let s = &self.pair[i * m..(i + 1) * m];
        let pnorm = self.scale(i).abs() * s.iter().map(|v| v * v).sum::<f64>().sqrt();
        if gnorm > 0.0 {
            pnorm / gnorm
        } else {
            0.0
        }
    }

    /// Particle `i`'s gradient with the pair term `term`, `∇L_i + c L̃_i S_i` (`∇L_i` alone
    /// without one), coordinate by coordinate (the move and the error report read the same
    /// values).
    fn gradient<'a>(
        term: Option<&'a Self>,
        g: &'a [f64],
        i: usize,
    ) -> impl Iterator<Item = f64> + 'a {
        let m = g.len();
        let (scale, s) = term.map_or((0.0, &[][..]), |t| {
            (t.scale(i), &t.pair[i * m..(i + 1) * m])
        });
        (g.iter().enumerate()).map(move |(k, gk)| match s.get(k) {
            Some(sk) => gk + scale * sk,
            None => *gk,
        })
    }
}

/// After a move: a non-finite position is reported as a non-finite gradient when the gradient row
/// of that particle is (0·∞ and η·NaN propagate into the position, so one pass checks both).
fn check_move(
    state: &[f64],
    m: usize,
    t: usize,
    gradient: impl Fn(usize) -> Vec<f64>,
) -> Result<()> {
    let Some(k) = first_non_finite_index(state) else {
        return Ok(());
    };
    let particle = k / m;
    let row = gradient(particle);
    let (what, value) = match first_non_finite(&row) {
        Some(g) => ("gradient", g),
        None => ("state after move", state[k]),
    };
    Err(Error::NonFinite {
        what: what.into(),
        step: t,
        particle,
        value,
    })
}

/// Index of the first non-finite value (a parallel all-finite pass first).
pub(crate) fn first_non_finite_index(buf: &[f64]) -> Option<usize> {
    if buf
        .par_chunks(1 << 14)
        .all(|c| first_non_finite(c).is_none())
    {
        return None;
    }
    buf.iter().position(|v| !v.is_finite())
}
