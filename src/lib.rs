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
//! [`core::filter::Model`]; filters are configurations of [`core::filter::Step`]s.
//!
//! ```
//! use hdpf::core::filter::{FilterKind, FilterSpec, Model};
//! use rand::RngCore;
//! use rand_distr::{Distribution, StandardNormal};
//!
//! /// Prior N(0, I₅); observation y = x + N(0, I): loss L(x) = ½‖y − x‖².
//! struct Direct { y: Vec<f64> }
//! impl Model for Direct {
//!     fn dim(&self) -> usize { self.y.len() }
//!     fn sample_prior(&self, rng: &mut dyn RngCore, out: &mut [f64]) {
//!         out.iter_mut().for_each(|v| *v = StandardNormal.sample(rng));
//!     }
//!     fn loss(&self, x: &[f64]) -> f64 {
//!         x.iter().zip(&self.y).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / 2.0
//!     }
//!     fn loss_grad(&self, x: &[f64], g: &mut [f64]) -> f64 {
//!         g.iter_mut().zip(x.iter().zip(&self.y)).for_each(|(g, (a, b))| *g = a - b);
//!         self.loss(x)
//!     }
//!     fn gradient_lipschitz(&self) -> Option<f64> { Some(1.0) }
//! }
//!
//! let model = Direct { y: vec![1.0; 5] };
//! let mut rfpf = FilterSpec::new(FilterKind::Rfpf, 100, 42).build(&model)?;
//! for _ in 0..30 {
//!     rfpf.update(&model)?;
//! }
//! // Each update moves every particle by η = γ/n = 0.1 along −∇L (plus the pair term): after 30
//! // observations the cloud has contracted from the prior N(0, I) to near y = 1.
//! let mean = rfpf.particles().mean();
//! assert!((mean[0] - 1.0).abs() < 0.2, "{mean}");
//! # Ok::<(), hdpf::Error>(())
//! ```

pub mod app;
pub mod core;
pub mod domains;
pub mod runtime;

#[cfg(test)]
mod layers_test;

pub use crate::core::error::{Error, Result};
