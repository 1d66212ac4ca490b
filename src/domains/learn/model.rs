//! The learning model seen by the filter: one minibatch's total loss over flat network parameters,
//! with per-particle regulariser state.
//!
//! For particle `i` with parameters `θ`:
//! `L_i(θ) = CE(θ; B) + λ_KD·T²·KD(t_i, z(θ)) + Σ_k s_ik (θ_k − a_ik)²`,
//! where `CE` is the mean cross-entropy over the batch (logits masked to each sample's allowed
//! range), `KD` the mean distillation cross-entropy from teacher logits `t_i` at temperature `T`
//! (LwF), and the quadratic term is EWC's or SI's penalty around particle `i`'s own anchor `a_i`
//! with strengths `s_i`.

use crate::core::filter::Model;
use crate::domains::learn::mlp::{with_workspace, Mlp};
use rand::RngCore;

/// One minibatch: inputs (`len × dim`), targets and per-sample allowed logit ranges `lo..hi`.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    /// Inputs, row-major.
    pub x: Vec<f64>,
    /// Targets.
    pub y: Vec<usize>,
    /// Allowed logit range per sample (task-IL masks to the sample's task pair).
    pub range: Vec<(usize, usize)>,
}

impl Batch {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Append one sample.
    pub fn push(&mut self, x: &[f64], y: usize, range: (usize, usize)) {
        self.x.extend_from_slice(x);
        self.y.push(y);
        self.range.push(range);
    }
}

/// Distillation term of LwF: teacher logits per particle for this batch (`n × bs × out`).
#[derive(Clone, Debug)]
pub struct Distill {
    /// Teacher logits, particle-major.
    pub teacher: Vec<f64>,
    /// Weight `λ_KD`.
    pub lambda: f64,
    /// Temperature `T`.
    pub temperature: f64,
}

/// Quadratic penalty `Σ_k s_ik (θ_k − a_ik)²` (EWC: `s = λ/2·F`; SI: `s = c·Ω`), particle-major.
#[derive(Clone, Debug, Default)]
pub struct Quadratic {
    /// Anchors `a`, `n × m`.
    pub anchor: Vec<f64>,
    /// Strengths `s`, `n × m`.
    pub strength: Vec<f64>,
}

impl Quadratic {
    /// Penalty of particle `i` and, if `grad` is given, `∂/∂θ = 2 s (θ − a)` added to it.
    pub fn eval(&self, i: usize, theta: &[f64], grad: Option<&mut [f64]>) -> f64 {
        let m = theta.len();
        let a = &self.anchor[i * m..(i + 1) * m];
        let s = &self.strength[i * m..(i + 1) * m];
        let mut total = 0.0;
        match grad {
            Some(g) => {
                for k in 0..m {
                    let d = theta[k] - a[k];
                    total += s[k] * d * d;
                    g[k] += 2.0 * s[k] * d;
                }
            }
            None => {
                for k in 0..m {
                    let d = theta[k] - a[k];
                    total += s[k] * d * d;
                }
            }
        }
        total
    }
}

/// The filter's model for one minibatch (see the module docs for the loss).
pub struct LearnModel<'a> {
    /// The network.
    pub net: &'a Mlp,
    /// The current minibatch.
    pub batch: &'a Batch,
    /// LwF distillation, if any.
    pub distill: Option<&'a Distill>,
    /// EWC/SI penalty, if any.
    pub penalty: Option<&'a Quadratic>,
}

impl LearnModel<'_> {
    /// `L_i(θ)` and, if `grad` is given, `∇L_i(θ)` written into it.
    pub fn eval(&self, i: usize, theta: &[f64], grad: Option<&mut [f64]>) -> f64 {
        let bs = self.batch.len();
        let out = self.net.n_outputs();
        with_workspace(|ws| {
            self.net.forward(theta, &self.batch.x, ws);
            let (z, dz) = ws.logits_and_dz();
            let mut loss = cross_entropy(z, dz, self.batch, out);
            if let Some(d) = self.distill {
                let t = &d.teacher[i * bs * out..(i + 1) * bs * out];
                loss += distillation(z, t, dz, d.lambda, d.temperature, out);
            }
            let penalty = |g: Option<&mut [f64]>| self.penalty.map_or(0.0, |p| p.eval(i, theta, g));
            match grad {
                Some(g) => {
                    g.fill(0.0);
                    self.net.backward(theta, ws, g);
                    loss + penalty(Some(g))
                }
                None => loss + penalty(None),
            }
        })
    }
}

/// Mean masked cross-entropy `(1/B) Σ_s −log softmax(z_s[lo..hi])[y_s]`; writes
/// `∂/∂z_sc = (p_sc − 1[c = y_s])/B` inside the range (zero outside) into `dz`.
pub fn cross_entropy(z: &[f64], dz: &mut [f64], batch: &Batch, out: usize) -> f64 {
    let inv_b = 1.0 / batch.len() as f64;
    let mut loss = 0.0;
    for (s, (&y, &(lo, hi))) in batch.y.iter().zip(&batch.range).enumerate() {
        let zs = &z[s * out + lo..s * out + hi];
        let ds = &mut dz[s * out + lo..s * out + hi];
        log_softmax_into(zs, 1.0, ds);
        loss -= ds[y - lo];
        for (c, d) in ds.iter_mut().enumerate() {
            *d = (d.exp() - if c + lo == y { 1.0 } else { 0.0 }) * inv_b;
        }
    }
    loss * inv_b
}

/// LwF distillation `λ T² (1/B) Σ_s Σ_c −q_sc log p_sc` with `q = softmax(t/T)`, `p = softmax(z/T)`;
/// adds `∂/∂z = λ T (p − q)/B` to `dz`.
pub fn distillation(
    z: &[f64],
    t: &[f64],
    dz: &mut [f64],
    lambda: f64,
    temp: f64,
    out: usize,
) -> f64 {
    let bs = z.len() / out;
    let scale = lambda / bs as f64;
    let mut lp = vec![0.0; out];
    let mut lq = vec![0.0; out];
    let mut loss = 0.0;
    for s in 0..bs {
        let r = s * out..(s + 1) * out;
        log_softmax_into(&z[r.clone()], temp, &mut lp);
        log_softmax_into(&t[r.clone()], temp, &mut lq);
        for c in 0..out {
            let q = lq[c].exp();
            loss -= q * lp[c];
            dz[r.start + c] += scale * temp * (lp[c].exp() - q);
        }
    }
    loss * scale * temp * temp
}

/// `out_c = z_c/T − log Σ_k exp(z_k/T)`; returns the log-sum-exp.
fn log_softmax_into(z: &[f64], temp: f64, out: &mut [f64]) -> f64 {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max) / temp;
    let sum: f64 = z.iter().map(|v| (v / temp - max).exp()).sum();
    let lse = max + sum.ln();
    for (o, v) in out.iter_mut().zip(z) {
        *o = v / temp - lse;
    }
    lse
}

impl Model for LearnModel<'_> {
    fn dim(&self) -> usize {
        self.net.n_params()
    }

    /// A fresh PyTorch-style initialisation (the learn driver builds its own particle set instead).
    fn sample_prior(&self, rng: &mut dyn RngCore, out: &mut [f64]) {
        self.net.init(rng, out);
    }

    fn loss(&self, x: &[f64]) -> f64 {
        self.eval(0, x, None)
    }

    fn loss_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        self.eval(0, x, Some(grad))
    }

    fn particle_loss(&self, index: usize, x: &[f64]) -> f64 {
        self.eval(index, x, None)
    }

    fn particle_loss_grad(&self, index: usize, x: &[f64], grad: &mut [f64]) -> f64 {
        self.eval(index, x, Some(grad))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::filter::model::{finite_difference_gradient, gradient_check};
    use crate::core::filter::rng::stream;
    use crate::domains::learn::mlp::Head;
    use rand::Rng;

    fn batch(out: usize, masked: bool, seed: u64) -> Batch {
        let mut rng = stream(seed, 1, 1);
        let mut b = Batch::default();
        for s in 0..5 {
            let x: Vec<f64> = (0..6).map(|_| rng.random_range(-1.0..1.0)).collect();
            let range = if masked { (2, 4) } else { (0, out) };
            b.push(&x, range.0 + s % (range.1 - range.0), range);
        }
        b
    }

    fn params(net: &Mlp, seed: u64) -> Vec<f64> {
        let mut p = vec![0.0; net.n_params()];
        net.init(&mut stream(seed, 0, 0), &mut p);
        p
    }

    /// Gradients vs central differences (h = 1e-6): CE, masked CE, KD and the penalty are smooth
    /// away from ReLU kinks, so the error is O(h²·f''') + O(ε/h) ≈ 1e-9; 1e-6 leaves margin for
    /// the odd activation within h of a kink.
    #[test]
    fn gradients_match_finite_differences() {
        for (sizes, head, masked) in [
            (vec![6, 4], Head::Linear, false),
            (vec![6, 7, 5, 4], Head::Linear, true),
            (vec![6, 7, 4], Head::Relu, false),
        ] {
            let net = Mlp::new(&sizes, head).unwrap();
            let b = batch(4, masked, 3);
            let theta = params(&net, 5);
            let m = net.n_params();
            let teacher: Vec<f64> = (0..2 * b.len() * 4)
                .map(|k| (k as f64 * 0.37).sin())
                .collect();
            let distill = Distill {
                teacher,
                lambda: 0.7,
                temperature: 2.0,
            };
            let penalty = Quadratic {
                anchor: (0..2 * m).map(|k| (k as f64 * 0.11).cos() * 0.1).collect(),
                strength: (0..2 * m).map(|k| 0.5 + (k % 3) as f64).collect(),
            };
            let model = LearnModel {
                net: &net,
                batch: &b,
                distill: Some(&distill),
                penalty: Some(&penalty),
            };
            assert!(gradient_check(&model, &theta, 1e-6) < 1e-6, "{sizes:?}");
            // Particle 1's own state enters its gradient.
            let mut g = vec![0.0; m];
            model.particle_loss_grad(1, &theta, &mut g);
            let mut fd = vec![0.0; m];
            finite_difference_gradient(|y| model.particle_loss(1, y), &theta, &mut fd, 1e-6);
            let err = g
                .iter()
                .zip(&fd)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(err < 1e-6, "{err}");
        }
    }

    #[test]
    fn cross_entropy_of_uniform_logits_is_log_classes() {
        let b = batch(4, false, 1);
        let z = vec![0.0; b.len() * 4];
        let mut dz = vec![0.0; z.len()];
        let l = cross_entropy(&z, &mut dz, &b, 4);
        assert!((l - 4f64.ln()).abs() < 1e-12);
        let mb = batch(4, true, 1);
        dz.fill(0.0); // cross_entropy expects a zeroed buffer, as logits_and_dz gives it
        let l = cross_entropy(&z, &mut dz, &mb, 4);
        assert!((l - 2f64.ln()).abs() < 1e-12);
        assert_eq!(dz[0], 0.0); // outside the mask
    }
}
