//! `hdpf learn`: the continual-learning study on SplitDigits ([`experiment::run`]), its arguments
//! ([`args`]) and output files ([`report`]); the models and methods are in `crate::domains::learn`.

pub mod args;
pub mod experiment;
pub mod report;

pub use experiment::{run, LearnArgs, LearnReport};

#[cfg(test)]
mod tests;
