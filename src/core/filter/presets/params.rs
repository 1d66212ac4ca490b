//! Each preset's typed parameters, with their defaults and how each maps to its steps' configs.

use super::{FilterKind, Preset};
use crate::core::error::{Error, Result};
use crate::core::filter::resample::Scheme;
use crate::core::filter::step::*;
use crate::core::filter::step::{EnsembleConfig, NewtonConfig, Shrinkage, Space};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// Parameters of a gradient flow (`rfpf`, `grad`): the move's time step and its sub-stepping.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradientFlow {
    /// `η` directly (overrides `gamma`).
    #[serde(default)]
    pub eta: Option<f64>,
    /// `γ`, with `η = γ/n`; default `γ = 0.1·n` (the paper's).
    #[serde(default)]
    pub gamma: Option<f64>,
    /// Sub-stepping rule.
    #[serde(default = "auto")]
    pub substeps: Substeps,
}

fn auto() -> Substeps {
    Substeps::Auto
}

impl Default for GradientFlow {
    fn default() -> Self {
        Self {
            eta: None,
            gamma: None,
            substeps: Substeps::Auto,
        }
    }
}

impl GradientFlow {
    /// The move's step size: `η` if set, else `γ` if set, else the paper's `γ = 0.1·n`.
    pub fn step_size(&self) -> StepSize {
        match (self.eta, self.gamma) {
            (Some(eta), _) => StepSize::Eta(eta),
            (None, Some(g)) => StepSize::Gamma(g),
            (None, None) => StepSize::GammaPerParticle(0.1),
        }
    }

    pub(super) fn move_config(&self, pair: Option<PairConfig>) -> MoveConfig {
        MoveConfig {
            step: self.step_size(),
            pair,
            substeps: self.substeps,
        }
    }
}

/// Parameters of `sir`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SirParams {
    /// Resample when `ESS < τ·n`.
    #[serde(default = "half")]
    pub ess_threshold: f64,
    /// Resampling scheme.
    #[serde(default = "systematic")]
    pub scheme: Scheme,
    /// Gaussian σ added to every coordinate after a resampling (roughening; 0: none).
    #[serde(default)]
    pub roughening: f64,
}

fn half() -> f64 {
    0.5
}
fn systematic() -> Scheme {
    Scheme::Systematic
}

impl Default for SirParams {
    fn default() -> Self {
        Self {
            ess_threshold: 0.5,
            scheme: Scheme::Systematic,
            roughening: 0.0,
        }
    }
}

/// Parameters of `mcl`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MclParams {
    /// σ of the jitter added to every particle before weighting (the paper's 0.1).
    #[serde(default = "tenth")]
    pub sigma: f64,
}

fn tenth() -> f64 {
    0.1
}

impl Default for MclParams {
    fn default() -> Self {
        Self { sigma: 0.1 }
    }
}

/// Parameters of `wpf`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WpfParams {
    /// SGD step size `η`.
    #[serde(default = "hundredth")]
    pub eta: f64,
    /// Likelihood temperature `T` of the trapezoid weights.
    #[serde(default = "one")]
    pub temperature: f64,
    /// The RF-PF pair interaction in the move (off by default).
    #[serde(default)]
    pub pair: Option<PairConfig>,
}

fn hundredth() -> f64 {
    0.01
}
fn one() -> f64 {
    1.0
}

impl Default for WpfParams {
    fn default() -> Self {
        Self {
            eta: 0.01,
            temperature: 1.0,
            pair: None,
        }
    }
}

/// Parameters of `sgd`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SgdParams {
    /// Step size `η`.
    #[serde(default = "hundredth")]
    pub eta: f64,
}

impl Default for SgdParams {
    fn default() -> Self {
        Self { eta: 0.01 }
    }
}

/// Parameters of `rfpf-newton` (see [`NewtonConfig`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewtonParams {
    /// Newton step fraction `η ∈ (0, 1]`.
    #[serde(default = "default_newton_eta")]
    pub eta: f64,
    /// Shrinkage `α` of the cloud covariance toward the floor (a number, or `"oas"`).
    #[serde(default = "default_shrinkage")]
    pub shrinkage: Shrinkage,
    /// Multiplicative inflation `λ` of the cloud about its mean before the move.
    #[serde(default = "default_newton_inflation")]
    pub inflation: f64,
    /// The floor `s` in state units² (default `tr Σ̂/m`).
    #[serde(default)]
    pub floor: Option<f64>,
    /// Whether the RF-PF pair term is on (in the `P` metric).
    #[serde(default = "yes")]
    pub pair: bool,
    /// Halvings of a step whose mean loss rises (0: none). Default 3, as `gn`: on a non-quadratic
    /// loss an undamped step can overshoot without bound (a cubic observation in 10-D took the
    /// mean from 0 to −5.7 in one update). Each check costs one loss evaluation per particle; the
    /// pose tracker, which re-linearises every round, sets 0 unless told otherwise.
    #[serde(default = "three")]
    pub backtrack: usize,
    /// Where the move is computed: `"auto"`, `"state"` or `"ensemble"` ([`Space`]).
    #[serde(default)]
    pub space: Space,
}

fn default_shrinkage() -> Shrinkage {
    NewtonConfig::default().shrinkage
}
fn default_newton_eta() -> f64 {
    NewtonConfig::default().eta
}
fn default_newton_inflation() -> f64 {
    NewtonConfig::default().inflation
}
fn yes() -> bool {
    true
}

impl Default for NewtonParams {
    fn default() -> Self {
        let c = NewtonConfig::default();
        Self {
            eta: c.eta,
            shrinkage: c.shrinkage,
            inflation: c.inflation,
            floor: c.floor,
            pair: true,
            backtrack: three(),
            space: c.space,
        }
    }
}

impl NewtonParams {
    /// The step's configuration.
    pub fn config(&self) -> NewtonConfig {
        NewtonConfig {
            eta: self.eta,
            shrinkage: self.shrinkage,
            inflation: self.inflation,
            floor: self.floor,
            pair: self.pair.then(PairConfig::default),
            backtrack: self.backtrack,
            space: self.space,
        }
    }
}

/// Parameters of `gn`: the Newton move with the cloud's covariance replaced by the fixed floor
/// (`α = 1`, no pair term, no propagation), so that each hypothesis takes the damped Gauss–Newton
/// (Levenberg–Marquardt) step `x ← x − η (I/s + J̄)⁻¹ ∇L(x)`, `λ = 1/s`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GnParams {
    /// Step fraction `η ∈ (0, 1]`.
    #[serde(default = "one")]
    pub eta: f64,
    /// The trust-region variance `s` in state units² (Levenberg–Marquardt damping `λ = 1/s`).
    #[serde(default = "one")]
    pub floor: f64,
    /// Halvings of a step whose loss rises (0: none).
    #[serde(default = "three")]
    pub backtrack: usize,
}

fn three() -> usize {
    3
}

impl Default for GnParams {
    fn default() -> Self {
        Self {
            eta: 1.0,
            floor: 1.0,
            backtrack: three(),
        }
    }
}

impl GnParams {
    /// The Newton step's configuration (`α = 1`: the prior is `s·I`).
    pub fn config(&self) -> NewtonConfig {
        NewtonConfig {
            eta: self.eta,
            shrinkage: Shrinkage::Fixed(1.0),
            inflation: 1.0,
            floor: Some(self.floor),
            pair: None,
            backtrack: self.backtrack,
            space: Space::Auto,
        }
    }
}

/// Parameters of `enkf` and `etkf`. Defaults `λ = 1.02`, `α = min(1, 0.8·m/n)`, chosen on
/// `bench tracking` seeds 100–109 (m ∈ {10, 50, 100}, n ∈ {50, 100, 300}; without shrinkage both
/// filters are 1.8–2.4 × the KF's RMSE at n ≤ m, and λ ≥ 1.05 makes them diverge at m = 10).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnsembleParams {
    /// Multiplicative inflation `λ` of the anomalies.
    #[serde(default = "ensemble_inflation")]
    pub inflation: f64,
    /// Shrinkage `α` of the ensemble covariance toward `(tr Σ̂/m)·I`: a number (0: none),
    /// `{ ratio = c }` (`α = min(1, c·m/n)`) or `"oas"`.
    #[serde(default = "ensemble_shrinkage")]
    pub shrinkage: Shrinkage,
}

fn ensemble_inflation() -> f64 {
    1.02
}
fn ensemble_shrinkage() -> Shrinkage {
    Shrinkage::Ratio { ratio: 0.8 }
}

impl EnsembleParams {
    /// The plain filter: no inflation, no shrinkage.
    pub fn plain() -> Self {
        Self {
            inflation: 1.0,
            shrinkage: Shrinkage::Fixed(0.0),
        }
    }
}

impl Default for EnsembleParams {
    fn default() -> Self {
        Self {
            inflation: ensemble_inflation(),
            shrinkage: ensemble_shrinkage(),
        }
    }
}

impl EnsembleParams {
    pub(super) fn config(&self, analysis: Analysis) -> EnsembleConfig {
        EnsembleConfig {
            analysis,
            inflation: self.inflation,
            shrinkage: self.shrinkage,
        }
    }
}

/// One preset parameter set on the command line: `KIND.KEY=VALUE`, e.g. `rfpf-newton.shrinkage=0.5`
/// (`VALUE` is a TOML value: a number, `true`, `"text"`).
#[derive(Clone, Debug, PartialEq)]
pub struct PresetParam {
    /// The preset it applies to.
    pub kind: FilterKind,
    /// The preset's key.
    pub key: String,
    /// The value.
    pub value: toml::Value,
}

impl FromStr for PresetParam {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::param("param", s, why.to_string());
        let (lhs, value) = s
            .split_once('=')
            .ok_or_else(|| bad("expected KIND.KEY=VALUE, e.g. rfpf-newton.shrinkage=0.5"))?;
        let (kind, key) = lhs
            .trim()
            .split_once('.')
            .ok_or_else(|| bad("expected KIND.KEY before '='"))?;
        let kind: FilterKind = kind.parse()?;
        let doc: toml::Table = format!("v = {}", value.trim())
            .parse()
            .map_err(|_| bad("the value is not a TOML value (a number, true/false, \"text\")"))?;
        let value = doc
            .get("v")
            .cloned()
            .ok_or_else(|| bad("the value is not a TOML value"))?;
        Ok(Self {
            kind,
            key: key.trim().to_string(),
            value,
        })
    }
}

/// The preset `kind` with its defaults overridden by the `params` that name it (the last one of a
/// key wins); an unknown key or a value of the wrong type is an error naming the key.
pub fn preset_with(kind: FilterKind, params: &[PresetParam]) -> Result<Preset> {
    Preset::with_overrides(kind, &PresetParam::table_of(kind, params))
}

impl PresetParam {
    /// The keys and values of the `params` that name `kind`, as a table (the last one of a key
    /// wins): what [`Preset::with_overrides`] takes.
    pub fn table_of(kind: FilterKind, params: &[PresetParam]) -> toml::Table {
        (params.iter().filter(|p| p.kind == kind))
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect()
    }
}

/// Refuses a parameter for a filter that is not among `kinds` (it would be silently unused).
pub fn check_params_used(params: &[PresetParam], kinds: &[FilterKind]) -> Result<()> {
    match params.iter().find(|p| !kinds.contains(&p.kind)) {
        None => Ok(()),
        Some(p) => {
            let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
            Err(Error::param(
                "param",
                format!("{}.{}", p.kind, p.key),
                format!(
                    "{} is not among the filters run ({})",
                    p.kind,
                    names.join(", ")
                ),
            ))
        }
    }
}

/// Parse a `--param` for clap.
pub fn parse_param(s: &str) -> std::result::Result<PresetParam, String> {
    s.parse().map_err(|e: Error| e.to_string())
}
