//! The learning model seen by the filter: one minibatch's total loss over flat network parameters,
//! with per-particle regulariser state.
//!
//! For particle `i` with parameters `θ`:
//! `L_i(θ) = CE(θ; B) + λ_KD·T²·KD(t_i, z(θ)) + Σ_k s_ik (θ_k − a_ik)²`,
//! where `CE` is the mean cross-entropy over the batch (logits masked to each sample's allowed
//! range), `KD` the mean distillation cross-entropy from teacher logits `t_i = z(θ_T,i)` at
//! temperature `T` (LwF), and the quadratic term is EWC's or SI's penalty around particle `i`'s own
//! anchor `a_i` with strengths `s_i`. The anchor, strengths and teacher `θ_T,i` are particle `i`'s
//! payload row ([`StateLayout`]): the model reads them beside `θ`, never by row number.

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

/// LwF's distillation weight and temperature (the teacher itself travels in each particle's payload).
#[derive(Clone, Copy, Debug)]
pub struct Distill {
    /// Weight `λ_KD`.
    pub lambda: f64,
    /// Temperature `T`.
    pub temperature: f64,
}

/// Where a particle's regulariser state sits in its payload row (see
/// [`crate::core::filter::ParticleSet::set_payload`]): `[anchor a (m) | strength s (m)]` when there
/// is a quadratic penalty, then `[teacher θ_T (m)]` when there is a teacher. The state moves with
/// its particle when a filter resamples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateLayout {
    /// Parameters per network `m`.
    pub m: usize,
    /// Whether rows carry an EWC/SI anchor and strengths.
    pub penalty: bool,
    /// Whether rows carry an LwF teacher.
    pub teacher: bool,
}

impl StateLayout {
    /// Payload numbers per particle.
    pub fn width(&self) -> usize {
        self.m * (2 * usize::from(self.penalty) + usize::from(self.teacher))
    }

    /// `(anchor, strength)` of a payload row, when the layout has a penalty (and the row holds the
    /// layout: a particle without payload has no penalty).
    pub fn penalty<'s>(&self, state: &'s [f64]) -> Option<(&'s [f64], &'s [f64])> {
        let m = self.m;
        (self.penalty && state.len() >= self.width()).then(|| (&state[..m], &state[m..2 * m]))
    }

    /// Mutable `(anchor, strength)` of a payload row.
    pub fn penalty_mut<'s>(&self, state: &'s mut [f64]) -> Option<(&'s mut [f64], &'s mut [f64])> {
        let m = self.m;
        self.penalty.then(|| state[..2 * m].split_at_mut(m))
    }

    /// The teacher's parameters in a payload row, when the layout has one.
    pub fn teacher<'s>(&self, state: &'s [f64]) -> Option<&'s [f64]> {
        let off = 2 * self.m * usize::from(self.penalty);
        (self.teacher && state.len() >= self.width()).then(|| &state[off..off + self.m])
    }

    /// Mutable teacher parameters of a payload row.
    pub fn teacher_mut<'s>(&self, state: &'s mut [f64]) -> Option<&'s mut [f64]> {
        let off = 2 * self.m * usize::from(self.penalty);
        self.teacher.then(|| &mut state[off..off + self.m])
    }
}

/// Quadratic penalty `Σ_k s_k (θ_k − a_k)²` (EWC: `s = λ/2·F`; SI: `s = c·Ω`) and, if `grad` is
/// given, `∂/∂θ = 2 s (θ − a)` added to it.
pub fn quadratic_penalty(
    anchor: &[f64],
    strength: &[f64],
    theta: &[f64],
    grad: Option<&mut [f64]>,
) -> f64 {
    let mut total = 0.0;
    match grad {
        Some(g) => {
            for k in 0..theta.len() {
                let d = theta[k] - anchor[k];
                total += strength[k] * d * d;
                g[k] += 2.0 * strength[k] * d;
            }
        }
        None => {
            for k in 0..theta.len() {
                let d = theta[k] - anchor[k];
                total += strength[k] * d * d;
            }
        }
    }
    total
}

/// The filter's model for one minibatch (see the module docs for the loss).
pub struct LearnModel<'a> {
    /// The network.
    pub net: &'a Mlp,
    /// The current minibatch.
    pub batch: &'a Batch,
    /// LwF distillation, if any (needs a teacher in the layout).
    pub distill: Option<Distill>,
    /// Where the regulariser state sits in each particle's payload.
    pub layout: StateLayout,
}

impl LearnModel<'_> {
    /// `L(θ; state)` and, if `grad` is given, `∇L` written into it; `state` is the particle's
    /// payload row (ignored where the layout is empty).
    pub fn eval(&self, theta: &[f64], state: &[f64], grad: Option<&mut [f64]>) -> f64 {
        let out = self.net.n_outputs();
        let teacher = match (self.distill, self.layout.teacher(state)) {
            (Some(d), Some(t)) => Some((d, self.teacher_logits(t))),
            _ => None,
        };
        with_workspace(|ws| {
            self.net.forward(theta, &self.batch.x, ws);
            let (z, dz) = ws.logits_and_dz();
            let mut loss = cross_entropy(z, dz, self.batch, out);
            if let Some((d, t)) = &teacher {
                loss += distillation(z, t, dz, d.lambda, d.temperature, out);
            }
            let penalty = |g: Option<&mut [f64]>| {
                self.layout
                    .penalty(state)
                    .map_or(0.0, |(a, s)| quadratic_penalty(a, s, theta, g))
            };
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

    /// The teacher network's logits on this batch.
    fn teacher_logits(&self, teacher: &[f64]) -> Vec<f64> {
        with_workspace(|ws| self.net.forward(teacher, &self.batch.x, ws).to_vec())
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

    /// The loss without regulariser state (a particle with an empty payload).
    fn loss(&self, x: &[f64]) -> f64 {
        self.eval(x, &[], None)
    }

    fn loss_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        self.eval(x, &[], Some(grad))
    }

    fn particle_loss(&self, x: &[f64], state: &[f64]) -> f64 {
        self.eval(x, state, None)
    }

    fn particle_loss_grad(&self, x: &[f64], state: &[f64], grad: &mut [f64]) -> f64 {
        self.eval(x, state, Some(grad))
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
            let layout = StateLayout {
                m,
                penalty: true,
                teacher: true,
            };
            // One particle's payload: anchor, strengths, teacher parameters.
            let state: Vec<f64> = (0..layout.width())
                .map(|k| match k / m {
                    0 => (k as f64 * 0.11).cos() * 0.1,
                    1 => 0.5 + (k % 3) as f64,
                    _ => theta[k % m] + 0.05 * (k as f64 * 0.37).sin(),
                })
                .collect();
            let model = LearnModel {
                net: &net,
                batch: &b,
                distill: Some(Distill {
                    lambda: 0.7,
                    temperature: 2.0,
                }),
                layout,
            };
            assert!(gradient_check(&model, &theta, 1e-6) < 1e-6, "{sizes:?}");
            // The particle's own state (penalty and teacher) enters its gradient.
            let mut g = vec![0.0; m];
            model.particle_loss_grad(&theta, &state, &mut g);
            let mut fd = vec![0.0; m];
            finite_difference_gradient(|y| model.particle_loss(y, &state), &theta, &mut fd, 1e-6);
            assert!(model.particle_loss(&theta, &state) > model.loss(&theta));
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
