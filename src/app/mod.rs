//! Application layer: the command-line front ends (`hdpf track`, `eval`, `bench …`, `learn`,
//! `dataset synth`), launch files, rerun logging, plots and the goal runs. Imports from every layer
//! below; nothing imports it.

pub mod allocator;
pub mod bench;
pub mod dataset;
pub mod fetch;
pub mod goals;
pub mod launch;
pub mod learn;
pub mod plot;
#[cfg(feature = "zenoh")]
pub mod replay;
pub mod study;
pub mod track;
pub mod track_args;
pub mod track_plot;
pub mod viz;
