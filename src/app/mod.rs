//! Application layer: launch files, rerun logging, plots. Imports from every layer below.

pub mod fetch;
pub mod launch;
pub mod plot;
pub mod viz;
