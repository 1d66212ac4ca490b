//! Stein variational gradient descent (Liu & Wang 2016) as a set-level move:
//!
//! ```text
//! x_i ← x_i + η φ(x_i),   φ(x_i) = (1/n) Σ_j [ k(x_j, x_i) ∇log p(x_j) + ∇_{x_j} k(x_j, x_i) ],
//! ```
//!
//! with `∇log p = −∇L` (the current observation's loss, as RF-PF uses it; in dynamics the model's
//! transition runs before the move), the RBF kernel `k(x, y) = exp(−‖x − y‖²/h)` with the median
//! heuristic `h = med²/ln(n + 1)` (or a fixed `h`), and `K` sub-steps per observation, each
//! recomputing gradients, bandwidth and kernel sums. The kernel sums share RF-PF's tiled pair kernel
//! ([`crate::core::filter::interaction::svgd_sums`]): results do not depend on the thread count.

use super::{gradient_move::evaluate_with_gradients, SetCtx};
use crate::core::error::{Error, Result};
use crate::core::filter::interaction;
use crate::core::filter::model::Model;
use serde::{Deserialize, Serialize};

/// Parameters of the SVGD move.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SvgdConfig {
    /// Step size `η` per sub-step.
    pub eta: f64,
    /// Sub-steps per observation `K ≥ 1`.
    pub substeps: usize,
    /// A fixed RBF bandwidth `h` (`None`: the median heuristic).
    pub bandwidth: Option<f64>,
}

impl Default for SvgdConfig {
    /// `η = 1`, five sub-steps, median bandwidth. With the median heuristic a typical kernel row
    /// sums to about 2, so a sub-step moves a particle by about `2η/n` times its gradient: `η = 1`
    /// keeps that below RF-PF's default `0.1` for `n ≥ 20`, and five sub-steps give the flow time
    /// to reach it.
    fn default() -> Self {
        Self {
            eta: 1.0,
            substeps: 5,
            bandwidth: None,
        }
    }
}

impl SvgdConfig {
    /// `η` finite and positive, `K ≥ 1`, `h` finite and positive.
    pub(crate) fn validate(&self) -> Result<()> {
        if !(self.eta > 0.0 && self.eta.is_finite()) {
            return Err(Error::param("eta", self.eta, "must be finite and positive"));
        }
        if self.substeps == 0 {
            return Err(Error::param("substeps", 0, "need at least one"));
        }
        match self.bandwidth {
            Some(h) if !(h > 0.0 && h.is_finite()) => {
                Err(Error::param("bandwidth", h, "must be finite and positive"))
            }
            _ => Ok(()),
        }
    }
}

/// `K` SVGD sub-steps on the whole set.
pub(super) fn set<M: Model + ?Sized>(cfg: &SvgdConfig, model: &M, cx: &mut SetCtx) -> Result<()> {
    let (n, m) = (cx.particles.len(), cx.particles.dim());
    let (mut grads, mut a) = std::mem::take(cx.buffers);
    grads.resize(n * m, 0.0);
    a.resize(n * m, 0.0);
    let mut b = vec![0.0; n * m];
    let result = (0..cfg.substeps).try_for_each(|s| {
        let losses = evaluate_with_gradients(model, cx.particles, &mut grads, cx.t)?;
        grads.iter_mut().for_each(|g| *g = -*g); // scores ∇log p = −∇L
        let x = cx.particles.as_slice();
        let h = cfg
            .bandwidth
            .unwrap_or_else(|| interaction::median_bandwidth(x, n, m));
        interaction::svgd_sums(x, &grads, n, m, h, &mut a, &mut b);
        let step = cfg.eta / n as f64;
        let (a, b) = (&a, &b);
        cx.guard.change_rows(cx.particles, |i, _, x| {
            let r = i * m..(i + 1) * m;
            x.iter_mut()
                .zip(&a[r.clone()])
                .zip(&b[r])
                .for_each(|((xk, ak), bk)| *xk += step * (ak + bk));
        });
        if let Some(k) = super::gradient_move::first_non_finite_index(cx.particles.as_slice()) {
            return Err(Error::NonFinite {
                what: "state after SVGD move".into(),
                step: cx.t,
                particle: k / m,
                value: cx.particles.as_slice()[k],
            });
        }
        cx.record_losses(s == 0, &losses);
        Ok(())
    });
    cx.diag.substeps += cfg.substeps;
    *cx.buffers = (grads, a);
    result
}

#[cfg(test)]
mod tests {
    use super::super::newton_move::tests::Linear;
    use super::*;
    use crate::core::filter::presets::Preset;
    use crate::core::filter::{Filter, ParticleSet};

    /// With one particle the kernel sum is k(x, x)·∇log p(x) = −∇L(x) and the repulsion is 0, so
    /// an SVGD step is gradient ascent on log p: x ← x − (η/1)∇L(x). The kernel sums are
    /// accumulated in f32 (relative error ≈ 6e-8 of each term), so the step agrees with the f64
    /// gradient step to η·|∇L|·1e-7 (tolerance 1e-8 here, |∇L| < 10, η = 0.05).
    #[test]
    fn one_particle_svgd_is_gradient_ascent_on_log_p() {
        let model = Linear::example();
        let set = ParticleSet::from_prior(&model, 1, 3).unwrap();
        let x0 = set.as_slice().to_vec();
        let cfg = SvgdConfig {
            eta: 0.05,
            substeps: 1,
            bandwidth: None,
        };
        let mut f = Filter::new(Preset::Svgd(cfg).steps(), set, 0).unwrap();
        f.update(&model).unwrap();
        let mut g = vec![0.0; 3];
        model.loss_grad(&x0, &mut g);
        for k in 0..3 {
            let want = x0[k] + 0.05 * -g[k];
            let got = f.particles().as_slice()[k];
            assert!((got - want).abs() < 1e-8, "{k}: {got} vs {want}");
            assert!((got - x0[k]).abs() > 1e-4, "{k}: the particle did not move");
        }
    }

    /// Many SVGD steps on a Gaussian target keep the cloud spread (repulsion) while its mean reaches
    /// the target's mode, and give the same numbers at any thread count.
    #[test]
    fn svgd_spreads_around_the_mode_and_is_deterministic() {
        let model = Linear::example();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let set = ParticleSet::from_prior(&model, 64, 9).unwrap();
                let cfg = SvgdConfig {
                    eta: 0.05,
                    substeps: 200,
                    bandwidth: None,
                };
                let mut f = Filter::new(Preset::Svgd(cfg).steps(), set, 0).unwrap();
                f.update(&model).unwrap();
                f.particles().clone()
            })
        };
        let (one, two) = (run(1), run(2));
        assert_eq!(one.as_slice(), two.as_slice());
        let spread = one.covariance().trace();
        assert!(spread > 1e-3, "the cloud collapsed: {spread}");
    }
}
