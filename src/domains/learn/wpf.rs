//! The optimizers of the training loop, both filters of the engine: plain SGD on every particle
//! ([`presets::sgd`]), or the paper's weighted particle filter (WPF, [`presets::wpf`]: a gradient
//! move `θ_i ← θ_i − η∇L_b(θ_i)` and the trapezoid reweight `ℓ_i ← ℓ_i − ½[L_b(θ_i) + L_b(θ_i')]/T`,
//! log-weights normalised by log-sum-exp, no resampling, no jitter).

use crate::core::error::Result;
use crate::core::filter::rng::stream;
use crate::core::filter::{presets, Filter, PairConfig};
use crate::core::filter::{Model, ParticleSet};
use crate::domains::learn::mlp::Mlp;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

/// The paper's particle initialisation: particle `i` = `base` with each parameter tensor `t`
/// perturbed by `r_it·ε`, `ε ~ N(0, I)`, `r_it ~ U(0.001, 0.04)`; randomness from stream `(seed, 1, i)`.
pub fn init_particles(net: &Mlp, base: &[f64], n: usize, seed: u64) -> Result<ParticleSet> {
    let m = net.n_params();
    let tensors = net.tensors();
    let mut data = vec![0.0; n * m];
    data.par_chunks_mut(m).enumerate().for_each(|(i, x)| {
        let mut rng = stream(seed, 1, i as u64);
        x.copy_from_slice(base);
        for t in &tensors {
            let r: f64 = rng.random_range(0.001..0.04);
            for v in &mut x[t.clone()] {
                let e: f64 = StandardNormal.sample(&mut rng);
                *v += r * e;
            }
        }
    });
    ParticleSet::from_vec(n, m, data)
}

/// How an ensemble of particles predicts: logits `z(x) = Σ_i c_i z_i(x)`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum, serde::Serialize,
)]
pub enum Readout {
    /// `c_i = w_i` (the filter's weights; the paper's default).
    Weighted,
    /// `c_i = 1/N`.
    Uniform,
    /// `c_i = 1[i = argmax w]`.
    MaxWeight,
}

impl Readout {
    /// All readouts, in report order.
    pub const ALL: [Readout; 3] = [Readout::Weighted, Readout::Uniform, Readout::MaxWeight];

    /// The name as the command line takes it (`--readout`): `weighted`, `uniform`, `max-weight`.
    pub fn name(self) -> &'static str {
        match self {
            Readout::Weighted => "weighted",
            Readout::Uniform => "uniform",
            Readout::MaxWeight => "max-weight",
        }
    }

    /// The combination coefficients `c_i` for normalised weights `w`.
    pub fn coefficients(self, w: &[f64]) -> Vec<f64> {
        match self {
            Readout::Weighted => w.to_vec(),
            Readout::Uniform => vec![1.0 / w.len() as f64; w.len()],
            Readout::MaxWeight => {
                let best = (0..w.len()).fold(0, |b, i| if w[i] > w[b] { i } else { b });
                (0..w.len())
                    .map(|i| if i == best { 1.0 } else { 0.0 })
                    .collect()
            }
        }
    }
}

/// The optimizer of the training loop: a filter of the engine (SGD or WPF).
pub struct Optimizer(Filter);

impl Optimizer {
    /// Plain SGD with step `eta` on `set` (unweighted: [`presets::sgd`]).
    pub fn sgd(eta: f64, set: ParticleSet) -> Result<Self> {
        Ok(Self(Filter::new(presets::sgd(eta), set, 0)?))
    }

    /// The WPF ([`presets::wpf`]) with step `eta`, likelihood temperature `temperature` and an
    /// optional RF-PF pair term.
    pub fn wpf(
        eta: f64,
        temperature: f64,
        pair: Option<PairConfig>,
        set: ParticleSet,
        seed: u64,
    ) -> Result<Self> {
        Ok(Self(Filter::new(
            presets::wpf(eta, temperature, pair),
            set,
            seed,
        )?))
    }

    /// The current particles.
    pub fn particles(&self) -> &ParticleSet {
        self.0.particles()
    }

    /// The current particles, mutable (the methods keep their per-particle state in the payload).
    pub fn particles_mut(&mut self) -> &mut ParticleSet {
        self.0.particles_mut()
    }

    /// One update on `model`'s minibatch; returns the ESS afterwards (`N` for SGD: unweighted).
    pub fn step<M: Model + ?Sized>(&mut self, model: &M) -> Result<f64> {
        Ok(self.0.update(model)?.ess)
    }

    /// One update per minibatch model, in order, run particle-major ([`Filter::update_window`];
    /// atomic on error); returns the ESS after each.
    pub fn step_window<M: Model + ?Sized>(&mut self, models: &[&M]) -> Result<Vec<f64>> {
        Ok(self
            .0
            .update_window(models)?
            .iter()
            .map(|d| d.ess)
            .collect())
    }
}
