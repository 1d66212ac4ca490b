//! Named filters as step lists: RF-PF, gradient-only, SIR, MCL and the weighted particle filter.
//!
//! | filter | steps |
//! |---|---|
//! | `rfpf` | propagate → move (∇L + pair term, η = γ/n, γ = 0.1·n) |
//! | `grad` | propagate → move (∇L only) |
//! | `sir`  | propagate → reweight (likelihood) → systematic resample when ESS < τ·n |
//! | `mcl`  | propagate → jitter σ = 0.1 → reweight → multinomial resample every step |
//! | `wpf`  | move (SGD step, η) → reweight (trapezoid) |

use crate::core::error::{Error, Result};
use crate::core::filter::engine::Filter;
use crate::core::filter::model::Model;
use crate::core::filter::particles::ParticleSet;
use crate::core::filter::resample::Scheme;
use crate::core::filter::steps::*;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The named filters users pick on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterKind {
    /// Resampling-free particle filter (gradient + pair interaction).
    Rfpf,
    /// Gradient-only ablation of RF-PF.
    Grad,
    /// Bootstrap / SIR, ESS-adaptive systematic resampling.
    Sir,
    /// The RF-PF paper's MCL baseline: jitter, likelihood weights, multinomial resampling every step.
    Mcl,
}

impl FilterKind {
    /// All kinds, in the order tables list them.
    pub const ALL: [FilterKind; 4] = [
        FilterKind::Rfpf,
        FilterKind::Grad,
        FilterKind::Sir,
        FilterKind::Mcl,
    ];

    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            FilterKind::Rfpf => "rfpf",
            FilterKind::Grad => "grad",
            FilterKind::Sir => "sir",
            FilterKind::Mcl => "mcl",
        }
    }

    /// Whether the filter's estimate uses weights.
    pub fn is_weighted(self) -> bool {
        matches!(self, FilterKind::Sir | FilterKind::Mcl)
    }
}

impl fmt::Display for FilterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FilterKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        FilterKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| Error::param("filter", s, "expected rfpf, grad, sir or mcl"))
    }
}

/// RF-PF steps: `[Propagate, Move(∇L + pair)]`.
pub fn rfpf(step: StepSize, substeps: Substeps) -> Vec<Step> {
    gradient_filter(step, Some(PairConfig::default()), substeps)
}

/// Gradient-only steps: `[Propagate, Move(∇L)]`.
pub fn grad(step: StepSize, substeps: Substeps) -> Vec<Step> {
    gradient_filter(step, None, substeps)
}

fn gradient_filter(step: StepSize, pair: Option<PairConfig>, substeps: Substeps) -> Vec<Step> {
    vec![
        Step::Propagate,
        Step::Move(MoveConfig {
            step,
            pair,
            substeps,
        }),
    ]
}

/// SIR steps: `[Propagate, Reweight(likelihood), Resample(scheme, ESS < τn, jitter)]`.
pub fn sir(scheme: Scheme, ess_threshold: f64, jitter: f64) -> Vec<Step> {
    vec![
        Step::Propagate,
        Step::Reweight(Reweight::Likelihood { temperature: 1.0 }),
        Step::Resample(ResampleConfig {
            scheme,
            when: ResampleWhen::EssBelow(ess_threshold),
            jitter,
        }),
    ]
}

/// MCL steps: `[Propagate, Jitter σ, Reweight(likelihood), Resample(multinomial, always)]`.
pub fn mcl(sigma: f64) -> Vec<Step> {
    vec![
        Step::Propagate,
        Step::Jitter { sigma },
        Step::Reweight(Reweight::Likelihood { temperature: 1.0 }),
        Step::Resample(ResampleConfig {
            scheme: Scheme::Multinomial,
            when: ResampleWhen::Always,
            jitter: 0.0,
        }),
    ]
}

/// Weighted particle filter (continual-learning optimizer): `[Move(SGD η, optional pair), Reweight(trapezoid)]`.
pub fn wpf(eta: f64, temperature: f64, pair: Option<PairConfig>) -> Vec<Step> {
    vec![
        Step::Move(MoveConfig {
            step: StepSize::Eta(eta),
            pair,
            substeps: Substeps::Fixed(1),
        }),
        Step::Reweight(Reweight::Trapezoid { temperature }),
    ]
}

/// A named filter with its parameters — what a command line or launch file specifies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    /// Which filter.
    pub kind: FilterKind,
    /// Number of particles `n`.
    pub particles: usize,
    /// RF-PF/grad `γ` (η = γ/n); default `0.1·n`.
    #[serde(default)]
    pub gamma: Option<f64>,
    /// RF-PF/grad `η` directly (overrides `gamma`).
    #[serde(default)]
    pub eta: Option<f64>,
    /// Sub-stepping rule for gradient moves.
    #[serde(default = "default_substeps")]
    pub substeps: Substeps,
    /// SIR resampling threshold τ (resample when ESS < τ·n).
    #[serde(default = "default_tau")]
    pub ess_threshold: f64,
    /// MCL jitter σ (default 0.1), or SIR post-resampling jitter (default 0).
    #[serde(default)]
    pub jitter: Option<f64>,
    /// SIR resampling scheme.
    #[serde(default = "default_scheme")]
    pub scheme: Scheme,
    /// Seed of every random stream.
    #[serde(default)]
    pub seed: u64,
}

fn default_substeps() -> Substeps {
    Substeps::Auto
}
fn default_tau() -> f64 {
    0.5
}
fn default_scheme() -> Scheme {
    Scheme::Systematic
}

impl FilterSpec {
    /// Defaults for `kind` with `particles` particles.
    pub fn new(kind: FilterKind, particles: usize, seed: u64) -> Self {
        Self {
            kind,
            particles,
            gamma: None,
            eta: None,
            substeps: Substeps::Auto,
            ess_threshold: 0.5,
            jitter: None,
            scheme: Scheme::Systematic,
            seed,
        }
    }

    /// The move's step size: `η` if set, else `γ` if set, else the paper's `γ = 0.1·n`.
    pub fn step_size(&self) -> StepSize {
        match (self.eta, self.gamma) {
            (Some(eta), _) => StepSize::Eta(eta),
            (None, Some(g)) => StepSize::Gamma(g),
            (None, None) => StepSize::GammaPerParticle(0.1),
        }
    }

    /// The step list of this filter.
    pub fn steps(&self) -> Vec<Step> {
        match self.kind {
            FilterKind::Rfpf => rfpf(self.step_size(), self.substeps),
            FilterKind::Grad => grad(self.step_size(), self.substeps),
            FilterKind::Sir => sir(self.scheme, self.ess_threshold, self.jitter.unwrap_or(0.0)),
            FilterKind::Mcl => mcl(self.jitter.unwrap_or(0.1)),
        }
    }

    /// Check parameters: `n ≥ 1`, `m ≥ 3` for RF-PF, positive finite step sizes.
    pub fn validate(&self, dim: usize) -> Result<()> {
        if self.particles == 0 {
            return Err(Error::param("particles", 0, "need at least one particle"));
        }
        if self.kind == FilterKind::Rfpf && dim < 3 {
            return Err(Error::param("dim", dim, "RF-PF needs dimension m ≥ 3 (its kernel constant C_m has m − 2 in the denominator)"));
        }
        for (name, v) in [("gamma", self.gamma), ("eta", self.eta)] {
            if let Some(v) = v {
                if !(v > 0.0 && v.is_finite()) {
                    return Err(Error::param(name, v, "must be finite and positive"));
                }
            }
        }
        Ok(())
    }

    /// Build the filter over `particles` given explicitly.
    pub fn build_with(&self, particles: ParticleSet) -> Result<Filter> {
        self.validate(particles.dim())?;
        Filter::new(self.steps(), particles, self.seed)
    }

    /// Build the filter with particles drawn from the model's prior.
    pub fn build<M: Model + ?Sized>(&self, model: &M) -> Result<Filter> {
        self.validate(model.dim())?;
        self.build_with(ParticleSet::from_prior(model, self.particles, self.seed)?)
    }
}
