//! Domain layer: the models plugged into the core's filters — 6D pose tracking, continual learning,
//! and the benchmark models (localization, linear-Gaussian tracking). Imports only from `core`.

pub mod bench;
pub mod learn;
pub mod pose;
pub mod recording;
