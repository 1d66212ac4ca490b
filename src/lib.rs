//! # hdpf — high-dimensional particle filters for robotic state estimation
//!
//! Every algorithm in hdpf is **a particle filter made of steps** acting on **a particle set** for
//! **a model**:
//!
//! | filter | propagate | move | reweight | resample |
//! |---|---|---|---|---|
//! | RF-PF (Boopathy et al., ICRA 2024) | model transition (optional) | gradient + pair interaction | — | — |
//! | gradient-only | model transition | gradient | — | — |
//! | SIR | model transition | — | likelihood | systematic when ESS < τn |
//! | MCL (the paper's baseline) | jitter σ | — | likelihood | multinomial, every step |
//! | WPF (Boopathy et al., 2024b) | — | gradient (SGD step) | trapezoid ½[L(before)+L(after)] | — |
//!
//! Models (pose tracking, continual learning, linear-Gaussian benchmarks) implement
//! [`filter::Model`]; filters are configurations of [`filter::Step`]s.

pub mod error;
pub mod filter;
pub mod learn;

pub use error::{Error, Result};
