//! Multi-layer perceptrons on a flat parameter vector, with hand-written forward and backward passes.
//!
//! Layer `l` maps `h_{l} ∈ R^{in}` to `h_{l+1} = φ(W_lᵀ h_l + b_l)`, with `φ = ReLU` on hidden
//! layers and on the output either the identity ([`Head::Linear`]) or ReLU ([`Head::Relu`], as the
//! released code of arXiv 2410.22695 does). `W_l` is stored `in × out` row-major (i.e. the transpose
//! of PyTorch's `weight`) followed by `b_l`, so both passes are axpy loops that vectorise.
//! No hidden layer gives softmax regression.

use crate::core::error::{Error, Result};
use rand::{Rng, RngCore};
use std::cell::RefCell;
use std::ops::Range;

/// The output non-linearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Head {
    /// Logits `z = Wᵀh + b`.
    Linear,
    /// Logits `z = max(0, Wᵀh + b)`, as in the authors' released code.
    Relu,
}

/// Offsets of one layer inside the flat parameter vector.
#[derive(Clone, Debug)]
struct Layer {
    fan_in: usize,
    fan_out: usize,
    w: usize,
    b: usize,
}

/// An MLP `sizes[0] → sizes[1] → … → sizes[L]` over a flat parameter vector.
#[derive(Clone, Debug)]
pub struct Mlp {
    sizes: Vec<usize>,
    layers: Vec<Layer>,
    head: Head,
    n_params: usize,
}

/// Scratch buffers of one forward/backward pass; reused per thread so a pass does not allocate.
#[derive(Default, Debug)]
pub struct Workspace {
    /// `acts[l]` = layer-`l` input (post-activation) for the batch, `bs × sizes[l]` row-major.
    acts: Vec<Vec<f64>>,
    /// `∂L/∂z` of the batch, `bs × out`: filled by the loss, consumed by [`Mlp::backward`].
    pub dz: Vec<f64>,
    delta: Vec<f64>,
    delta_prev: Vec<f64>,
}

thread_local! {
    static WORKSPACE: RefCell<Workspace> = RefCell::new(Workspace::default());
}

/// Run `f` with this thread's reusable [`Workspace`].
pub fn with_workspace<T>(f: impl FnOnce(&mut Workspace) -> T) -> T {
    WORKSPACE.with(|w| f(&mut w.borrow_mut()))
}

impl Workspace {
    /// The logits of the last [`Mlp::forward`] and the `∂L/∂z` buffer, sized like them and zeroed.
    pub fn logits_and_dz(&mut self) -> (&[f64], &mut [f64]) {
        let z = self.acts.last().map(Vec::as_slice).unwrap_or(&[]);
        self.dz.clear();
        self.dz.resize(z.len(), 0.0);
        (z, &mut self.dz)
    }
}

impl Mlp {
    /// An MLP with layer widths `sizes` (input first, classes last; at least two entries).
    pub fn new(sizes: &[usize], head: Head) -> Result<Self> {
        if sizes.len() < 2 || sizes.contains(&0) {
            return Err(Error::param(
                "layer sizes",
                format!("{sizes:?}"),
                "need input and output widths, all positive",
            ));
        }
        let mut layers = Vec::with_capacity(sizes.len() - 1);
        let mut off = 0;
        for win in sizes.windows(2) {
            let (fan_in, fan_out) = (win[0], win[1]);
            layers.push(Layer {
                fan_in,
                fan_out,
                w: off,
                b: off + fan_in * fan_out,
            });
            off += fan_in * fan_out + fan_out;
        }
        Ok(Self {
            sizes: sizes.to_vec(),
            layers,
            head,
            n_params: off,
        })
    }

    /// Number of parameters `m = Σ_l (in_l·out_l + out_l)`.
    pub fn n_params(&self) -> usize {
        self.n_params
    }

    /// Input width.
    pub fn n_inputs(&self) -> usize {
        self.sizes[0]
    }

    /// Output width (number of logits).
    pub fn n_outputs(&self) -> usize {
        *self.sizes.last().unwrap_or(&0)
    }

    /// The output head.
    pub fn head(&self) -> Head {
        self.head
    }

    /// Index ranges of the parameter tensors (`W_0, b_0, W_1, b_1, …`) in the flat vector.
    pub fn tensors(&self) -> Vec<Range<usize>> {
        self.layers
            .iter()
            .flat_map(|l| [l.w..l.b, l.b..l.b + l.fan_out])
            .collect()
    }

    /// PyTorch's default `nn.Linear` initialisation: `W, b ~ U(−1/√in, 1/√in)`
    /// (kaiming-uniform with `a = √5` for `W`).
    pub fn init(&self, rng: &mut dyn RngCore, params: &mut [f64]) {
        for l in &self.layers {
            let bound = 1.0 / (l.fan_in as f64).sqrt();
            for p in &mut params[l.w..l.b + l.fan_out] {
                *p = rng.random_range(-bound..bound);
            }
        }
    }

    /// Forward pass of a batch `x` (`bs × in`, row-major): returns the logits `bs × out` and keeps
    /// the activations in `ws` for [`Mlp::backward`].
    pub fn forward<'w>(&self, params: &[f64], x: &[f64], ws: &'w mut Workspace) -> &'w [f64] {
        let bs = x.len() / self.sizes[0];
        ws.acts.resize_with(self.sizes.len(), Vec::new);
        ws.acts[0].clear();
        ws.acts[0].extend_from_slice(x);
        let last = self.layers.len() - 1;
        for (li, l) in self.layers.iter().enumerate() {
            let (inputs, rest) = ws.acts.split_at_mut(li + 1);
            let h_in = &inputs[li];
            let h_out = &mut rest[0];
            h_out.clear();
            h_out.resize(bs * l.fan_out, 0.0);
            let w = &params[l.w..l.b];
            let b = &params[l.b..l.b + l.fan_out];
            // z_s = b + Σ_i x_si W[i, :], input-major so each row W[i, :] is read once per batch.
            for zs in h_out.chunks_exact_mut(l.fan_out) {
                zs.copy_from_slice(b);
            }
            for (i, wi) in w.chunks_exact(l.fan_out).enumerate() {
                for (s, zs) in h_out.chunks_exact_mut(l.fan_out).enumerate() {
                    let xi = h_in[s * l.fan_in + i];
                    if xi != 0.0 {
                        axpy(xi, wi, zs);
                    }
                }
            }
            if li < last || self.head == Head::Relu {
                h_out.iter_mut().for_each(|z| *z = z.max(0.0));
            }
        }
        &ws.acts[self.layers.len()]
    }

    /// Backward pass after [`Mlp::forward`]: given `∂L/∂z` in `ws.dz` (`bs × out`), adds `∂L/∂θ`
    /// to `grad`. Uses `∂L/∂W_l = Σ_s h_l,s δ_sᵀ`, `∂L/∂b_l = Σ_s δ_s`, `δ_{l−1} = (W_l δ_l) ⊙ 1[h_l > 0]`.
    pub fn backward(&self, params: &[f64], ws: &mut Workspace, grad: &mut [f64]) {
        let mut delta = std::mem::take(&mut ws.delta);
        let mut prev = std::mem::take(&mut ws.delta_prev);
        delta.clear();
        delta.extend_from_slice(&ws.dz);
        let last = self.layers.len() - 1;
        for (li, l) in self.layers.iter().enumerate().rev() {
            let h_out = &ws.acts[li + 1];
            if li < last || self.head == Head::Relu {
                // ReLU derivative from the post-activation: 1[h > 0].
                for (d, &h) in delta.iter_mut().zip(h_out) {
                    if h <= 0.0 {
                        *d = 0.0;
                    }
                }
            }
            let h_in = &ws.acts[li];
            let (gw, gb) = grad[l.w..l.b + l.fan_out].split_at_mut(l.b - l.w);
            for ds in delta.chunks_exact(l.fan_out) {
                axpy(1.0, ds, gb);
            }
            // ∂L/∂W[i, :] = Σ_s x_si δ_s and δ_prev[s, i] = W[i, :]·δ_s, input-major.
            let w = &params[l.w..l.b];
            if li > 0 {
                prev.clear();
                prev.resize(h_in.len(), 0.0);
            }
            for (i, (gwi, wi)) in gw
                .chunks_exact_mut(l.fan_out)
                .zip(w.chunks_exact(l.fan_out))
                .enumerate()
            {
                for (s, ds) in delta.chunks_exact(l.fan_out).enumerate() {
                    let xi = h_in[s * l.fan_in + i];
                    if xi != 0.0 {
                        axpy(xi, ds, gwi);
                    }
                    if li > 0 {
                        prev[s * l.fan_in + i] = dot(wi, ds);
                    }
                }
            }
            if li > 0 {
                std::mem::swap(&mut delta, &mut prev);
            }
        }
        ws.delta = delta;
        ws.delta_prev = prev;
    }
}

/// `y ← y + a·x`.
#[inline]
fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// `Σ_k a_k b_k` with four independent accumulators (a fixed order, so results are reproducible).
#[inline]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..4 {
            acc[k] += x[k] * y[k];
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::filter::rng::stream;

    #[test]
    fn layout_and_init_bounds() {
        let net = Mlp::new(&[4, 3, 2], Head::Linear).unwrap();
        assert_eq!(net.n_params(), 4 * 3 + 3 + 3 * 2 + 2);
        let t = net.tensors();
        assert_eq!(t, vec![0..12, 12..15, 15..21, 21..23]);
        let mut p = vec![0.0; net.n_params()];
        net.init(&mut stream(1, 0, 0), &mut p);
        assert!(p[..15].iter().all(|v| v.abs() <= 0.5)); // 1/√4
        assert!(p[15..].iter().all(|v| v.abs() <= 1.0 / 3f64.sqrt()));
        assert!(Mlp::new(&[4], Head::Linear).is_err());
    }

    #[test]
    fn dot_matches_naive() {
        let a: Vec<f64> = (0..11).map(|k| k as f64 * 0.5).collect();
        let b: Vec<f64> = (0..11).map(|k| 1.0 - k as f64).collect();
        let naive: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        // Exact: all products and partial sums are multiples of 0.5 well inside 2^52.
        assert_eq!(dot(&a, &b), naive);
    }
}
