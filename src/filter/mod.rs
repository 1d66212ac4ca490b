//! The filter engine: particle sets, models, composable steps and the standard presets.

pub mod kalman;
pub mod model;
pub mod particles;
pub mod rng;

pub use model::Model;
pub use particles::ParticleSet;
