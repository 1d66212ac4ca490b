//! The filter engine: particle sets, models, composable steps and the standard presets.
//!
//! A [`Filter`] is an ordered list of [`Step`]s applied to a [`ParticleSet`] for any [`Model`];
//! RF-PF, gradient-only, SIR, MCL, SGD and the weighted particle filter are step lists named by
//! [`Preset`] values.

pub mod diagnostics;
pub mod engine;
pub mod interaction;
pub mod kalman;
pub mod mean_step;
pub mod model;
pub mod particles;
pub mod presets;
pub mod resample;
pub mod rng;
pub mod step;

pub use engine::{Diagnostics, Filter};
pub use model::Model;
pub use particles::ParticleSet;
pub use presets::{FilterKind, FilterSpec, Preset};
pub use resample::Scheme;
pub use step::{
    MoveConfig, PairConfig, ResampleConfig, ResampleWhen, Reweight, Shrinkage, ShrinkageRule, Step,
    StepSize, Substeps,
};
