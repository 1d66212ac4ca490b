//! The composable steps a filter is made of: propagate → move → reweight → resample.

use crate::core::filter::resample::Scheme;
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
    /// Update the log-weights from the observation loss.
    Reweight(Reweight),
    /// Resample the particles according to their weights.
    Resample(ResampleConfig),
}

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
}

/// How many equal sub-moves a move of size `η` is split into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Substeps {
    /// `K = ⌈η·Lip⌉` from the model's gradient Lipschitz bound (1 when the model gives none), so that
    /// every explicit sub-step satisfies `(η/K)·Lip ≤ 1 < 2`. Where one step is stable, `K = 1`.
    Auto,
    /// A fixed number of sub-moves.
    Fixed(usize),
}

/// The RF-PF pair interaction (see [`crate::core::filter::interaction`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct PairConfig {
    /// `γ` that fixes the kernel width `ε = (γ/C_m)^{1/(2−m)}`; `None` uses the move's `γ`.
    pub gamma: Option<f64>,
}

/// A deterministic move of all particles from their old positions (Jacobi):
///
/// ```text
/// p_i ← p_i − η [ ∇L(p_i) + ((m−2)/ε²) · L̃_i · Σ_j (ε / (‖p_i−p_j‖ + ε))^m (p_i − p_j) ]
/// ```
///
/// with the pair term only when `pair` is set, split into sub-moves of `η/K` each recomputing
/// `∇L`, `L̃` and the pair sum.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MoveConfig {
    /// Step size.
    pub step: StepSize,
    /// RF-PF pair interaction (None: gradient only).
    pub pair: Option<PairConfig>,
    /// Sub-stepping rule.
    pub substeps: Substeps,
}

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

/// When resampling happens.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResampleWhen {
    /// After every reweighting.
    Always,
    /// When `ESS < τ·n`.
    EssBelow(f64),
}

/// Resampling step configuration.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResampleConfig {
    /// Scheme.
    pub scheme: Scheme,
    /// Trigger.
    pub when: ResampleWhen,
    /// Gaussian jitter σ added to every coordinate after resampling (0: none).
    pub jitter: f64,
}
