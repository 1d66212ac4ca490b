//! Continual learning with the particle filter as a permutation-invariant optimizer
//! (Boopathy et al., "Permutation Invariant Learning with High-Dimensional Particle Filters",
//! arXiv 2410.22695), on SplitDigits.
//!
//! Every particle is a flat parameter vector of an [`mlp::Mlp`]; a minibatch is a
//! [`model::LearnModel`] (the method's total loss, with per-particle regulariser state); the
//! optimizer is plain SGD or the filter engine's WPF ([`wpf::Optimizer`]): per minibatch `b`,
//! `θ_i ← θ_i − η∇L_b(θ_i)` and `ℓ_i ← ℓ_i − ½[L_b(θ_i) + L_b(θ_i')]/T`, normalised. Tasks come one
//! after another ([`train::train_sequence`]); `hdpf learn` (`crate::app::learn`) compares SGD, EWC,
//! SI, LwF, replay, each alone and with the PF, over random task orders.

pub mod bench;
pub mod data;
pub mod methods;
pub mod metrics;
pub mod mlp;
pub mod model;
pub mod train;
pub mod wpf;
