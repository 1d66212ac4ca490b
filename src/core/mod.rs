//! Core layer: the filter engine and its presets, geometry (SE(3), camera, k-d tree), errors,
//! order statistics (and their bounded-memory running forms), memory budgets, user-supplied
//! seconds as durations, standard output that survives a closed pipe and the run-time data locator. Knows nothing of the layers above it.

pub mod datasets;
pub mod duration;
pub mod error;
pub mod filter;
pub mod geometry;
pub mod memory;
pub mod running;
pub mod scratch;
pub mod stats;
pub mod stdout;
