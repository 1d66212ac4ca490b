//! TEMPORARY stand-in for the filter engine's WPF preset until `crate::filter::Filter` lands on main.
//! Deleted at the merge; only the API shape matters.
#![allow(missing_docs, dead_code)]

use crate::error::{Error, Result};
use crate::filter::{Model, ParticleSet};
use rayon::prelude::*;

#[derive(Clone, Debug)]
pub struct PairConfig;

pub struct Diagnostics {
    pub ess: f64,
}

pub struct Filter {
    eta: f64,
    temperature: f64,
    set: ParticleSet,
    step: usize,
}

pub mod presets {
    pub fn wpf(eta: f64, temperature: f64, _pair: Option<super::PairConfig>) -> (f64, f64) {
        (eta, temperature)
    }
}

impl Filter {
    pub fn new(steps: (f64, f64), particles: ParticleSet, _seed: u64) -> Result<Filter> {
        Ok(Filter {
            eta: steps.0,
            temperature: steps.1,
            set: particles,
            step: 0,
        })
    }
    pub fn particles(&self) -> &ParticleSet {
        &self.set
    }
    pub fn update<M: Model + ?Sized>(&mut self, model: &M) -> Result<Diagnostics> {
        let m = self.set.dim();
        let (eta, t) = (self.eta, self.temperature);
        let inc: Vec<f64> = self
            .set
            .as_mut_slice()
            .par_chunks_mut(m)
            .enumerate()
            .map(|(i, x)| {
                let mut g = vec![0.0; m];
                let before = model.particle_loss_grad(i, x, &mut g);
                for k in 0..m {
                    x[k] -= eta * g[k];
                }
                let after = model.particle_loss(i, x);
                -0.5 * (before + after) / t
            })
            .collect();
        self.step += 1;
        let lw = self.set.log_weights_mut();
        for (l, d) in lw.iter_mut().zip(&inc) {
            *l += d;
        }
        self.set.normalize_log_weights();
        let ess = self.set.ess();
        if !ess.is_finite() {
            return Err(Error::Other("non-finite".into()));
        }
        Ok(Diagnostics { ess })
    }
}
