//! The filter engine: particle sets, models, composable steps and the standard presets.
//!
//! A [`Filter`] is an ordered list of [`Step`]s applied to a [`ParticleSet`] for any [`Model`];
//! RF-PF, gradient-only, SIR, MCL and the weighted particle filter are step lists ([`presets`]).

pub mod engine;
pub mod independent;
pub mod interaction;
pub mod kalman;
pub mod model;
pub mod particles;
pub mod presets;
pub mod resample;
pub mod rng;
pub mod steps;

pub use engine::{Diagnostics, Filter};
pub use model::Model;
pub use particles::ParticleSet;
pub use presets::{FilterKind, FilterSpec};
pub use resample::Scheme;
pub use steps::{
    MoveConfig, PairConfig, ResampleConfig, ResampleWhen, Reweight, Step, StepSize, Substeps,
};
