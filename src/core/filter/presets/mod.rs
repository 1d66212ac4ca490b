//! Named filters as values: one preset namespace for the CLI, launch files and benches, each preset
//! with its own typed parameters and its step list.
//!
//! | preset | parameters | steps |
//! |---|---|---|
//! | `rfpf` | [`GradientFlow`] | propagate → move (∇L + pair term, η = γ/n, γ = 0.1·n) |
//! | `grad` | [`GradientFlow`] | propagate → move (∇L only) |
//! | `sir`  | [`SirParams`] | propagate → reweight (likelihood) → resample when ESS < τ·n |
//! | `mcl`  | [`MclParams`] | propagate → jitter σ → reweight → multinomial resample every step |
//! | `wpf`  | [`WpfParams`] | move (SGD step, η) → reweight (trapezoid) |
//! | `sgd`  | [`SgdParams`] | move (SGD step, η), unweighted |
//! | `rfpf-newton` | [`NewtonParams`] | propagate → Newton move (Σ̂_α⁻¹ + J̄)⁻¹[∇L + pair], square-root spread |
//! | `enkf` | [`EnsembleParams`] | propagate → stochastic EnKF analysis (perturbed observations) |
//! | `etkf` | [`EnsembleParams`] | propagate → square-root ETKF analysis |
//! | `svgd` | [`SvgdConfig`] | propagate → K SVGD sub-steps (RBF kernel, median heuristic) |
//! | `gn` | [`GnParams`] | Levenberg–Marquardt step (I/s + J̄)⁻¹∇L on each hypothesis, no process noise (meant for n = 1) |
//!
//! Adding a preset: a variant of [`FilterKind`] (its name) and of [`Preset`] (its parameters), its
//! parameter struct (in `params.rs`) and its step list below.

use crate::core::error::{Error, Result};
use crate::core::filter::engine::Filter;
use crate::core::filter::model::Model;
use crate::core::filter::particles::ParticleSet;
use crate::core::filter::resample::Scheme;
use crate::core::filter::step::*;
use crate::core::filter::step::{Analysis, SvgdConfig};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

mod params;
pub use params::*;

/// The names of the presets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
    /// The weighted particle filter of the continual-learning paper (SGD move, trapezoid weights).
    Wpf,
    /// Plain SGD on every particle, unweighted (the WPF without its weights).
    Sgd,
    /// RF-PF with the Newton move (curvature-preconditioned, square-root spread).
    #[serde(rename = "rfpf-newton")]
    RfpfNewton,
    /// Stochastic ensemble Kalman filter (perturbed observations).
    Enkf,
    /// Ensemble transform Kalman filter (deterministic square root).
    Etkf,
    /// Stein variational gradient descent (Liu & Wang 2016).
    Svgd,
    /// Gauss–Newton / Levenberg–Marquardt on one hypothesis (the ICG-style baseline).
    Gn,
}

impl FilterKind {
    /// Every preset, in the order tables list them.
    pub const ALL: [FilterKind; 11] = [
        FilterKind::Rfpf,
        FilterKind::Grad,
        FilterKind::Sir,
        FilterKind::Mcl,
        FilterKind::Wpf,
        FilterKind::Sgd,
        FilterKind::RfpfNewton,
        FilterKind::Enkf,
        FilterKind::Etkf,
        FilterKind::Svgd,
        FilterKind::Gn,
    ];

    /// The state-estimation filters the benchmarks compare by default.
    pub const TRACKING: [FilterKind; 4] = [
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
            FilterKind::Wpf => "wpf",
            FilterKind::Sgd => "sgd",
            FilterKind::RfpfNewton => "rfpf-newton",
            FilterKind::Enkf => "enkf",
            FilterKind::Etkf => "etkf",
            FilterKind::Svgd => "svgd",
            FilterKind::Gn => "gn",
        }
    }

    /// Whether the filter's estimate uses weights.
    pub fn is_weighted(self) -> bool {
        matches!(self, FilterKind::Sir | FilterKind::Mcl | FilterKind::Wpf)
    }

    /// The smallest state dimension the preset works in (RF-PF's kernel constant needs `m ≥ 3`).
    pub fn min_dim(self) -> usize {
        match self {
            FilterKind::Rfpf => 3,
            _ => 1,
        }
    }

    /// Whether the preset needs the model's Gauss–Newton curvature ([`Model::curvature`]).
    pub fn needs_curvature(self) -> bool {
        matches!(self, FilterKind::RfpfNewton | FilterKind::Gn)
    }

    /// Whether the preset needs a linear(ised) observation ([`Model::linear_observation`]).
    pub fn needs_linear_observation(self) -> bool {
        matches!(self, FilterKind::Enkf | FilterKind::Etkf)
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
            .ok_or_else(|| {
                let names: Vec<_> = FilterKind::ALL.iter().map(|k| k.name()).collect();
                Error::param("filter", s, format!("expected one of {}", names.join(", ")))
            })
    }
}

/// A preset: a named filter with its own typed parameters. In a launch file it is a table with
/// `kind` and that preset's keys only (unknown keys are refused).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Preset {
    /// RF-PF.
    Rfpf(GradientFlow),
    /// Gradient-only.
    Grad(GradientFlow),
    /// SIR.
    Sir(SirParams),
    /// MCL.
    Mcl(MclParams),
    /// Weighted particle filter.
    Wpf(WpfParams),
    /// SGD.
    Sgd(SgdParams),
    /// RF-PF with the Newton move.
    #[serde(rename = "rfpf-newton")]
    RfpfNewton(NewtonParams),
    /// Stochastic EnKF.
    Enkf(EnsembleParams),
    /// Square-root ETKF.
    Etkf(EnsembleParams),
    /// SVGD.
    Svgd(SvgdConfig),
    /// Gauss–Newton / Levenberg–Marquardt.
    Gn(GnParams),
}

impl Preset {
    /// The preset named `kind` with its default parameters.
    pub fn new(kind: FilterKind) -> Self {
        match kind {
            FilterKind::Rfpf => Preset::Rfpf(GradientFlow::default()),
            FilterKind::Grad => Preset::Grad(GradientFlow::default()),
            FilterKind::Sir => Preset::Sir(SirParams::default()),
            FilterKind::Mcl => Preset::Mcl(MclParams::default()),
            FilterKind::Wpf => Preset::Wpf(WpfParams::default()),
            FilterKind::Sgd => Preset::Sgd(SgdParams::default()),
            FilterKind::RfpfNewton => Preset::RfpfNewton(NewtonParams::default()),
            FilterKind::Enkf => Preset::Enkf(EnsembleParams::default()),
            FilterKind::Etkf => Preset::Etkf(EnsembleParams::default()),
            FilterKind::Svgd => Preset::Svgd(SvgdConfig::default()),
            FilterKind::Gn => Preset::Gn(GnParams::default()),
        }
    }

    /// The preset named `kind` with `overrides` (its own keys, e.g. `inflation = 1.0` for
    /// `rfpf-newton`) replacing its defaults. An unknown key, a value of the wrong type and the
    /// key `kind` (the filter is chosen elsewhere) are errors naming the keys.
    pub fn with_overrides(kind: FilterKind, overrides: &toml::Table) -> Result<Self> {
        let preset = Preset::new(kind);
        if overrides.is_empty() {
            return Ok(preset);
        }
        let keys: Vec<String> = overrides.keys().map(|k| format!("{kind}.{k}")).collect();
        let bad = |why: String| Error::param("param", keys.join(", "), why);
        if overrides.contains_key("kind") {
            return Err(bad(
                "`kind` is not a parameter: choose the filter itself".into()
            ));
        }
        let mut table = toml::Table::try_from(preset)
            .map_err(|e| Error::Other(format!("preset {kind} as a table: {e}")))?;
        // One key at a time first, so that an error names the key at fault.
        for (key, value) in overrides {
            let mut one = table.clone();
            one.insert(key.clone(), value.clone());
            let at =
                |e: toml::de::Error| Error::param("param", format!("{kind}.{key}"), e.to_string());
            one.try_into::<Preset>().map_err(at)?;
        }
        table.extend(overrides.clone());
        table.try_into::<Preset>().map_err(|e| bad(e.to_string()))
    }

    /// Its name.
    pub fn kind(&self) -> FilterKind {
        match self {
            Preset::Rfpf(_) => FilterKind::Rfpf,
            Preset::Grad(_) => FilterKind::Grad,
            Preset::Sir(_) => FilterKind::Sir,
            Preset::Mcl(_) => FilterKind::Mcl,
            Preset::Wpf(_) => FilterKind::Wpf,
            Preset::Sgd(_) => FilterKind::Sgd,
            Preset::RfpfNewton(_) => FilterKind::RfpfNewton,
            Preset::Enkf(_) => FilterKind::Enkf,
            Preset::Etkf(_) => FilterKind::Etkf,
            Preset::Svgd(_) => FilterKind::Svgd,
            Preset::Gn(_) => FilterKind::Gn,
        }
    }

    /// The gradient-flow parameters of a preset that has them (`rfpf`, `grad`).
    pub fn gradient_flow_mut(&mut self) -> Option<&mut GradientFlow> {
        match self {
            Preset::Rfpf(f) | Preset::Grad(f) => Some(f),
            _ => None,
        }
    }

    /// The same preset with the sub-stepping rule `substeps` where it has a gradient flow.
    pub fn with_substeps(mut self, substeps: Substeps) -> Self {
        if let Some(f) = self.gradient_flow_mut() {
            f.substeps = substeps;
        }
        self
    }

    /// The step list.
    pub fn steps(&self) -> Vec<Step> {
        match self {
            Preset::Rfpf(f) => vec![
                Step::Propagate,
                Step::Move(f.move_config(Some(PairConfig::default()))),
            ],
            Preset::Grad(f) => vec![Step::Propagate, Step::Move(f.move_config(None))],
            Preset::Sir(p) => sir(p.scheme, p.ess_threshold, p.roughening),
            Preset::Mcl(p) => mcl(p.sigma),
            Preset::Wpf(p) => wpf(p.eta, p.temperature, p.pair),
            Preset::Sgd(p) => sgd(p.eta),
            Preset::RfpfNewton(p) => vec![Step::Propagate, Step::Newton(p.config())],
            Preset::Enkf(p) => vec![
                Step::Propagate,
                Step::EnsembleKalman(p.config(Analysis::Stochastic)),
            ],
            Preset::Etkf(p) => vec![
                Step::Propagate,
                Step::EnsembleKalman(p.config(Analysis::SquareRoot)),
            ],
            Preset::Svgd(c) => vec![Step::Propagate, Step::Svgd(*c)],
            Preset::Gn(p) => vec![Step::Newton(p.config())],
        }
    }

    /// Check the parameters for state dimension `dim` (steps check their own on build).
    pub fn validate(&self, dim: usize) -> Result<()> {
        let kind = self.kind();
        if dim < kind.min_dim() {
            return Err(Error::param("dim", dim, format!("{kind} needs dimension m ≥ {} (RF-PF's kernel constant C_m has m − 2 in the denominator)", kind.min_dim())));
        }
        let positive = |name: &str, v: Option<f64>| match v {
            Some(v) if !(v > 0.0 && v.is_finite()) => {
                Err(Error::param(name, v, "must be finite and positive"))
            }
            _ => Ok(()),
        };
        let own = match self {
            Preset::Rfpf(f) | Preset::Grad(f) => {
                positive("gamma", f.gamma)?;
                positive("eta", f.eta)
            }
            Preset::Wpf(WpfParams { eta, .. }) | Preset::Sgd(SgdParams { eta }) => {
                positive("eta", Some(*eta))
            }
            Preset::RfpfNewton(p) => p.config().validate(),
            Preset::Enkf(p) | Preset::Etkf(p) => p.config(Analysis::Stochastic).validate(),
            Preset::Svgd(c) => c.validate(),
            Preset::Gn(p) => p.config().validate(),
            _ => Ok(()),
        };
        // The steps check what the preset's own rules above do not (SIR's threshold, MCL's σ, …).
        own.and_then(|()| self.steps().iter().try_for_each(Step::validate))
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

/// SIR steps: `[Propagate, Reweight(likelihood), Resample(scheme, ESS < τn, roughening)]`.
pub fn sir(scheme: Scheme, ess_threshold: f64, roughening: f64) -> Vec<Step> {
    vec![
        Step::Propagate,
        Step::Reweight(Reweight::Likelihood { temperature: 1.0 }),
        Step::Resample(ResampleConfig {
            scheme,
            when: ResampleWhen::EssBelow(ess_threshold),
            jitter: roughening,
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
        Step::Move(sgd_move(eta, pair)),
        Step::Reweight(Reweight::Trapezoid { temperature }),
    ]
}

/// SGD on every particle: `[Move(η, one sub-move)]`, no weights.
pub fn sgd(eta: f64) -> Vec<Step> {
    vec![Step::Move(sgd_move(eta, None))]
}

fn sgd_move(eta: f64, pair: Option<PairConfig>) -> MoveConfig {
    MoveConfig {
        step: StepSize::Eta(eta),
        pair,
        substeps: Substeps::Fixed(1),
    }
}

/// A preset with its particle count and seed — what a command line or launch file specifies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    /// Which filter, with its parameters.
    pub preset: Preset,
    /// Number of particles `n`.
    pub particles: usize,
    /// Seed of every random stream.
    #[serde(default)]
    pub seed: u64,
}

impl FilterSpec {
    /// The preset `kind` with its defaults and `particles` particles.
    pub fn new(kind: FilterKind, particles: usize, seed: u64) -> Self {
        Self {
            preset: Preset::new(kind),
            particles,
            seed,
        }
    }

    /// The preset's name.
    pub fn kind(&self) -> FilterKind {
        self.preset.kind()
    }

    /// The step list of this filter.
    pub fn steps(&self) -> Vec<Step> {
        self.preset.steps()
    }

    /// Check parameters: `n ≥ 1`, the preset's own for dimension `dim`.
    pub fn validate(&self, dim: usize) -> Result<()> {
        if self.particles == 0 {
            return Err(Error::param("particles", 0, "need at least one particle"));
        }
        self.preset.validate(dim)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_round_trips_by_name_and_as_a_launch_table() {
        for kind in FilterKind::ALL {
            assert_eq!(kind.name().parse::<FilterKind>().unwrap(), kind);
            let preset = Preset::new(kind);
            let text = toml::to_string(&preset).unwrap();
            assert_eq!(toml::from_str::<Preset>(&text).unwrap(), preset, "{text}");
            assert!(!preset.steps().is_empty());
        }
        let e = "kalman".parse::<FilterKind>().unwrap_err().to_string();
        assert!(e.contains("rfpf") && e.contains("sgd"), "{e}");
    }

    #[test]
    fn a_key_of_another_preset_is_refused() {
        let ok: Preset = toml::from_str("kind = \"mcl\"\nsigma = 0.2").unwrap();
        assert_eq!(ok, Preset::Mcl(MclParams { sigma: 0.2 }));
        let e = toml::from_str::<Preset>("kind = \"sir\"\nsigma = 0.2").unwrap_err();
        assert!(e.to_string().contains("sigma"), "{e}");
        let e = toml::from_str::<Preset>("kind = \"rfpf\"\nroughening = 1").unwrap_err();
        assert!(e.to_string().contains("roughening"), "{e}");
    }

    #[test]
    fn overrides_replace_defaults_and_name_bad_keys() {
        let table = |text: &str| text.parse::<toml::Table>().unwrap();
        let p = Preset::with_overrides(FilterKind::RfpfNewton, &table("inflation = 1.0")).unwrap();
        let Preset::RfpfNewton(q) = p else {
            panic!("{p:?}")
        };
        let defaults = NewtonParams::default();
        assert_eq!((q.inflation, q.eta), (1.0, defaults.eta));
        assert_ne!(defaults.inflation, 1.0);
        let empty = Preset::with_overrides(FilterKind::Sir, &toml::Table::new()).unwrap();
        assert_eq!(empty, Preset::new(FilterKind::Sir));
        for (bad, named) in [
            ("bogus = 1", "rfpf-newton.bogus"),
            ("inflation = true", "rfpf-newton.inflation"),
            ("kind = \"sir\"", "rfpf-newton.kind"),
            ("inflation = 1.0\neta = true", "rfpf-newton.eta:"),
        ] {
            let e = Preset::with_overrides(FilterKind::RfpfNewton, &table(bad)).unwrap_err();
            assert!(e.to_string().contains(named), "{bad}: {e}");
        }
    }

    #[test]
    fn parameters_are_validated() {
        let mut p = Preset::new(FilterKind::Rfpf);
        assert!(p.validate(2).is_err());
        p.gradient_flow_mut().unwrap().eta = Some(f64::NAN);
        assert!(p.validate(3).unwrap_err().to_string().contains("eta"));
        assert!(Preset::Sgd(SgdParams { eta: -1.0 }).validate(1).is_err());
        assert!(Preset::new(FilterKind::Sir).gradient_flow_mut().is_none());
        // Ranges the steps check: MCL's jitter σ, SIR's ESS threshold.
        assert!(Preset::Mcl(MclParams { sigma: -1.0 }).validate(6).is_err());
        let table = |text: &str| text.parse::<toml::Table>().unwrap();
        let sir = Preset::with_overrides(FilterKind::Sir, &table("ess_threshold = 5.0")).unwrap();
        assert!(sir.validate(6).is_err());
    }
}
