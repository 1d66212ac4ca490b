//! The particle set: `n × m` particles in one contiguous row-major `f64` buffer, with optional
//! log-weights and an optional per-particle payload.
//!
//! The payload is `w` numbers per particle (`n × w`, row-major) that belong to the particle rather
//! than to its state — a learning method's anchor and importances, a particle's own perturbed
//! observation. Resampling moves a payload row with its particle, and a model receives the row
//! beside the particle's state ([`crate::core::filter::Model::particle_loss`]); it never learns the
//! particle's row number.

use crate::core::error::{Error, Result};
use crate::core::filter::model::Model;
use crate::core::filter::rng;
use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;

/// About how many n×m buffers of `f64` a running filter keeps (for the memory check).
pub const BUFFERS: usize = 4;

/// `n` particles of dimension `m`, row-major, plus optional normalised log-weights.
#[derive(Clone, Debug, PartialEq)]
pub struct ParticleSet {
    n: usize,
    m: usize,
    data: Vec<f64>,
    log_w: Option<Vec<f64>>,
    /// Payload numbers per particle (0: none).
    width: usize,
    /// The payload, `n × width`, row-major.
    payload: Vec<f64>,
}

/// Effective sample size `1 / Σ w_i²` of log-weights (normalised here: `w_i = exp(ℓ_i − log Σ exp ℓ)`).
pub fn ess_of(lw: &[f64]) -> f64 {
    let z = log_sum_exp(lw);
    1.0 / lw.iter().map(|l| (2.0 * (l - z)).exp()).sum::<f64>()
}

/// Normalise log-weights in place so that `Σ exp(ℓ_i) = 1`; returns the log normaliser
/// `log Σ exp(ℓ_i)`.
pub fn normalize_log(lw: &mut [f64]) -> f64 {
    let z = log_sum_exp(lw);
    lw.iter_mut().for_each(|l| *l -= z);
    z
}

/// `log Σ exp(a_i)`, computed stably as `a* + log Σ exp(a_i − a*)`.
pub fn log_sum_exp(a: &[f64]) -> f64 {
    let max = a.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + a.iter().map(|x| (x - max).exp()).sum::<f64>().ln()
}

impl ParticleSet {
    /// Wrap an existing row-major buffer of `n·m` values (unweighted).
    pub fn from_vec(n: usize, m: usize, data: Vec<f64>) -> Result<Self> {
        if n == 0 {
            return Err(Error::param("particles", n, "need at least one particle"));
        }
        if m == 0 {
            return Err(Error::param("dim", m, "need at least one dimension"));
        }
        let Some(len) = n.checked_mul(m) else {
            return Err(Error::Shape {
                what: "particle buffer".into(),
                expected: format!("{n}×{m} values, more than an address space holds"),
                got: data.len().to_string(),
            });
        };
        if data.len() != len {
            return Err(Error::Shape {
                what: "particle buffer".into(),
                expected: format!("{n}×{m} = {len}"),
                got: data.len().to_string(),
            });
        }
        if let Some(k) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: "initial particle value".into(),
                step: 0,
                particle: k / m,
                value: data[k],
            });
        }
        Ok(Self {
            n,
            m,
            data,
            log_w: None,
            width: 0,
            payload: Vec::new(),
        })
    }

    /// Attach a payload of `width` numbers per particle (`n × width`, row-major), replacing any.
    pub fn set_payload(&mut self, width: usize, payload: Vec<f64>) -> Result<()> {
        if Some(payload.len()) != self.n.checked_mul(width) {
            return Err(Error::Shape {
                what: "particle payload".into(),
                expected: match self.n.checked_mul(width) {
                    Some(len) => format!("{}×{width} = {len}", self.n),
                    None => format!(
                        "{}×{width} values, more than an address space holds",
                        self.n
                    ),
                },
                got: payload.len().to_string(),
            });
        }
        (self.width, self.payload) = (width, payload);
        Ok(())
    }

    /// Payload numbers per particle (0 without a payload).
    pub fn payload_width(&self) -> usize {
        self.width
    }

    /// The payload row of particle `i` (empty without a payload).
    ///
    /// # Panics
    /// When `i ≥ len()`, as [`ParticleSet::particle`] does, also without a payload (whose rows
    /// are empty slices that any index used to return).
    pub fn payload(&self, i: usize) -> &[f64] {
        assert!(i < self.len(), "particle {i} of {}", self.len());
        &self.payload[i * self.width..(i + 1) * self.width]
    }

    /// The whole payload buffer (`n × width`, row-major).
    pub fn payload_slice(&self) -> &[f64] {
        &self.payload
    }

    /// The whole payload buffer, mutable.
    pub fn payload_mut_slice(&mut self) -> &mut [f64] {
        &mut self.payload
    }

    /// The payload row of particle `i` (`&[]` for every particle without a payload).
    fn payload_row(payload: &[f64], width: usize, i: usize) -> &[f64] {
        &payload[i * width..(i + 1) * width]
    }

    /// Every particle as `(state row, payload row)`, in parallel and in particle order.
    pub fn rows(&self) -> impl IndexedParallelIterator<Item = (&[f64], &[f64])> + '_ {
        let (m, w) = (self.m, self.width);
        self.data
            .par_chunks(m)
            .enumerate()
            .map(move |(i, x)| (x, Self::payload_row(&self.payload, w, i)))
    }

    /// Apply `f(i, payload_row, row)` to every particle's row in place, in parallel; returns `f`'s
    /// results in particle order.
    pub fn update_rows<R: Send>(
        &mut self,
        f: impl Fn(usize, &[f64], &mut [f64]) -> R + Sync,
    ) -> Vec<R> {
        let (m, w, payload) = (self.m, self.width, &self.payload);
        self.data
            .par_chunks_mut(m)
            .enumerate()
            .map(|(i, x)| f(i, Self::payload_row(payload, w, i), x))
            .collect()
    }

    /// Draw `n` particles from the model's prior, particle `i` from stream `(seed, 0, i)`; `n` is
    /// refused (naming it and the memory it needs) when its buffers exceed the memory budget
    /// ([`crate::core::memory`]).
    pub fn from_prior<M: Model + ?Sized>(model: &M, n: usize, seed: u64) -> Result<Self> {
        let m = model.dim();
        if n == 0 {
            return Err(Error::param("particles", n, "need at least one particle"));
        }
        if m == 0 {
            return Err(Error::param("dim", m, "the model's dimension must be ≥ 1"));
        }
        // The engine keeps about four n×m buffers (particles, a spare for rollback, gradients,
        // moves): refuse a count whose buffers cannot fit before allocating any of them.
        crate::core::memory::check("particles × dim", format!("{n} × {m}"), &[n, m, BUFFERS], 8)?;
        let mut set = Self::from_vec(n, m, vec![0.0; n * m])?;
        set.data
            .par_chunks_mut(m)
            .enumerate()
            .for_each(|(i, row)| model.sample_prior(&mut rng::stream(seed, 0, i as u64), row));
        if let Some(k) = set.data.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: "prior sample (Model::sample_prior)".into(),
                step: 0,
                particle: k / m,
                value: set.data[k],
            });
        }
        Ok(set)
    }

    /// Number of particles `n`.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Always false: a particle set has at least one particle (its constructors and
    /// [`ParticleSet::select`] refuse none).
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Dimension `m`.
    pub fn dim(&self) -> usize {
        self.m
    }

    /// Particle `i` as a slice.
    ///
    /// # Panics
    /// When `i ≥ len()`.
    pub fn particle(&self, i: usize) -> &[f64] {
        &self.data[i * self.m..(i + 1) * self.m]
    }

    /// Particle `i` as a mutable slice.
    pub fn particle_mut(&mut self, i: usize) -> &mut [f64] {
        &mut self.data[i * self.m..(i + 1) * self.m]
    }

    /// The whole row-major buffer.
    pub fn as_slice(&self) -> &[f64] {
        &self.data
    }

    /// The whole row-major buffer, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [f64] {
        &mut self.data
    }

    /// Normalised log-weights, or `None` for an unweighted set.
    pub fn log_weights(&self) -> Option<&[f64]> {
        self.log_w.as_deref()
    }

    /// Mutable log-weights, creating uniform ones (`−log n`) if the set was unweighted.
    pub fn log_weights_mut(&mut self) -> &mut [f64] {
        let n = self.n;
        self.log_w.get_or_insert_with(|| vec![-(n as f64).ln(); n])
    }

    /// Make `self` an exact copy of `other`, reusing `self`'s allocations.
    pub fn copy_from(&mut self, other: &ParticleSet) {
        self.n = other.n;
        self.m = other.m;
        self.data.clone_from(&other.data);
        self.copy_weights_and_payload(other);
    }

    /// Take `other`'s log-weights and payload, reusing `self`'s allocations.
    fn copy_weights_and_payload(&mut self, other: &ParticleSet) {
        match (&mut self.log_w, &other.log_w) {
            (Some(dst), Some(src)) => dst.clone_from(src),
            (dst, src) => *dst = src.clone(),
        }
        self.width = other.width;
        self.payload.clone_from(&other.payload);
    }

    /// `self ← from` row by row: `f(i, from_row, payload_row, self_row)` writes row `i`, in parallel
    /// over rows; the weights and payload are `from`'s and `self`'s allocations are reused. Returns
    /// `f`'s results in particle order.
    pub fn assign_rows<R: Send>(
        &mut self,
        from: &ParticleSet,
        f: impl Fn(usize, &[f64], &[f64], &mut [f64]) -> R + Sync,
    ) -> Vec<R> {
        self.n = from.n;
        self.m = from.m;
        self.data.resize(from.data.len(), 0.0);
        self.copy_weights_and_payload(from);
        let m = from.m.max(1);
        from.rows()
            .zip(self.data.par_chunks_mut(m))
            .enumerate()
            .map(|(i, ((x, s), d))| f(i, x, s, d))
            .collect()
    }

    /// Put back log-weights saved from this set (`None`: unweighted), e.g. when an update fails.
    pub(crate) fn restore_log_weights(&mut self, lw: Option<Vec<f64>>) {
        self.log_w = lw;
    }

    /// Drop the weights (every particle counts `1/n`).
    pub fn clear_weights(&mut self) {
        self.log_w = None;
    }

    /// Normalise log-weights so that `Σ exp(ℓ_i) = 1`, returning the log normaliser `log Σ exp(ℓ_i)`.
    pub fn normalize_log_weights(&mut self) -> f64 {
        self.log_w.as_deref_mut().map_or(0.0, normalize_log)
    }

    /// Normalised linear weights `w_i = exp(ℓ_i − log Σ exp ℓ)`; uniform when unweighted.
    pub fn weights(&self) -> Vec<f64> {
        match &self.log_w {
            None => vec![1.0 / self.n as f64; self.n],
            Some(lw) => {
                let z = log_sum_exp(lw);
                lw.iter().map(|l| (l - z).exp()).collect()
            }
        }
    }

    /// Effective sample size `ESS = 1 / Σ w_i²` (equals `n` when unweighted).
    pub fn ess(&self) -> f64 {
        match &self.log_w {
            None => self.n as f64,
            Some(lw) => ess_of(lw),
        }
    }

    /// Weighted mean `μ = Σ w_i p_i`.
    pub fn mean(&self) -> DVector<f64> {
        let w = self.weights();
        let mut mu = DVector::zeros(self.m);
        for (i, wi) in w.iter().enumerate() {
            for (k, v) in self.particle(i).iter().enumerate() {
                mu[k] += wi * v;
            }
        }
        mu
    }

    /// Weighted covariance `Σ = Σ w_i (p_i − μ)(p_i − μ)ᵀ` (the plug-in, not bias-corrected, estimate).
    pub fn covariance(&self) -> DMatrix<f64> {
        let mu = self.mean();
        let w = self.weights();
        let mut centered = DMatrix::zeros(self.m, self.n);
        for i in 0..self.n {
            let s = w[i].sqrt();
            for k in 0..self.m {
                centered[(k, i)] = s * (self.data[i * self.m + k] - mu[k]);
            }
        }
        &centered * centered.transpose()
    }

    /// Replace the particles by those at `indices` (after resampling), each with its payload row;
    /// weights become uniform/absent. An empty list or an index ≥ n is refused and changes
    /// nothing.
    pub fn select(&mut self, indices: &[usize]) -> Result<()> {
        if indices.is_empty() {
            return Err(Error::param(
                "indices",
                "[]",
                "select at least one particle",
            ));
        }
        if let Some(&j) = indices.iter().find(|&&j| j >= self.n) {
            return Err(Error::param(
                "indices",
                j,
                format!("the set has {} particles", self.n),
            ));
        }
        self.data = gather(&self.data, self.m, indices);
        self.payload = gather(&self.payload, self.width, indices);
        self.n = indices.len();
        self.log_w = None;
        Ok(())
    }
}

/// Rows `indices` of a row-major buffer of `width` columns, in that order.
fn gather(buf: &[f64], width: usize, indices: &[usize]) -> Vec<f64> {
    let mut out = vec![0.0; indices.len() * width];
    if width > 0 {
        for (row, &j) in out.chunks_mut(width).zip(indices) {
            row.copy_from_slice(&buf[j * width..(j + 1) * width]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_sum_exp_is_stable() {
        assert!((log_sum_exp(&[1000.0, 1000.0]) - (1000.0 + 2f64.ln())).abs() < 1e-12);
        assert!((log_sum_exp(&[-1000.0, -1000.0]) - (-1000.0 + 2f64.ln())).abs() < 1e-12);
        assert_eq!(log_sum_exp(&[f64::NEG_INFINITY]), f64::NEG_INFINITY);
    }

    #[test]
    fn weighted_moments() {
        let mut p = ParticleSet::from_vec(2, 1, vec![0.0, 2.0]).unwrap();
        p.log_weights_mut()
            .copy_from_slice(&[0.25f64.ln(), 0.75f64.ln()]);
        assert!((p.mean()[0] - 1.5).abs() < 1e-12);
        // Σ w (x−μ)² = 0.25·2.25 + 0.75·0.25 = 0.75
        assert!((p.covariance()[(0, 0)] - 0.75).abs() < 1e-12);
        // ESS = 1/(0.0625 + 0.5625) = 1.6
        assert!((p.ess() - 1.6).abs() < 1e-12);
    }

    #[test]
    fn resampling_moves_each_payload_row_with_its_particle() {
        let mut p = ParticleSet::from_vec(3, 1, vec![10.0, 20.0, 30.0]).unwrap();
        p.set_payload(2, vec![1.0, 1.5, 2.0, 2.5, 3.0, 3.5])
            .unwrap();
        p.select(&[2, 2, 0]).unwrap();
        assert_eq!(p.as_slice(), &[30.0, 30.0, 10.0]);
        assert_eq!(p.payload_slice(), &[3.0, 3.5, 3.0, 3.5, 1.0, 1.5]);
        assert!(p.set_payload(2, vec![0.0; 5]).is_err());
    }

    /// `payload(i)` and `particle(i)` refuse the same indices, with a payload or without one.
    #[test]
    fn payload_and_particle_rows_refuse_the_same_indices() {
        let mut p = ParticleSet::from_vec(2, 1, vec![1.0, 2.0]).unwrap();
        for width in [0, 2] {
            p.set_payload(width, vec![0.5; 2 * width]).unwrap();
            assert_eq!(p.payload(1).len(), width);
            for i in [2, 7] {
                let caught = |f: &dyn Fn() -> usize| {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err()
                };
                assert!(caught(&|| p.particle(i).len()), "particle({i})");
                assert!(
                    caught(&|| p.payload(i).len()),
                    "payload({i}), width {width}"
                );
            }
        }
    }

    #[test]
    fn rejects_bad_shapes_and_values() {
        assert!(ParticleSet::from_vec(0, 3, vec![]).is_err());
        assert!(ParticleSet::from_vec(2, 3, vec![0.0; 5]).is_err());
        let e = ParticleSet::from_vec(2, 1, vec![0.0, f64::NAN]).unwrap_err();
        assert!(e.to_string().contains("particle 1"), "{e}");
        // n·m past usize: refused (it wrapped to 0 and was accepted, then aborted in mean()).
        let e = ParticleSet::from_vec(1 << 33, 1 << 33, vec![]).unwrap_err();
        assert!(e.to_string().contains("address space"), "{e}");
        assert!(ParticleSet::from_vec(3, usize::MAX / 3 + 1, vec![0.0; 2]).is_err());
        let mut p = ParticleSet::from_vec(2, 1, vec![1.0, 2.0]).unwrap();
        assert!(p.set_payload(usize::MAX, vec![]).is_err());
        // select refuses no index and an index past n, and changes nothing then.
        assert!(p.select(&[]).is_err() && p.select(&[0, 2]).is_err());
        assert_eq!(p.as_slice(), &[1.0, 2.0]);
    }

    /// A prior of `dim` dimensions whose samples are `value`.
    struct Prior {
        dim: usize,
        value: f64,
    }

    impl Model for Prior {
        fn dim(&self) -> usize {
            self.dim
        }
        fn sample_prior(&self, _rng: &mut dyn rand::RngCore, out: &mut [f64]) {
            out.fill(self.value);
        }
        fn loss(&self, _x: &[f64]) -> f64 {
            0.0
        }
    }

    /// A model of dimension 0 or with non-finite prior samples is an error naming it, not a
    /// panic ("chunk_size must not be zero") or a confusing failure at the first update.
    #[test]
    fn a_prior_of_no_dimension_or_non_finite_samples_is_refused() {
        let e = ParticleSet::from_prior(&Prior { dim: 0, value: 0.0 }, 4, 0).unwrap_err();
        assert!(e.to_string().contains("dim = 0"), "{e}");
        let e = ParticleSet::from_prior(
            &Prior {
                dim: 2,
                value: f64::NAN,
            },
            4,
            0,
        )
        .unwrap_err();
        assert!(e.to_string().contains("sample_prior"), "{e}");
        let p = ParticleSet::from_prior(&Prior { dim: 2, value: 1.5 }, 4, 0).unwrap();
        assert_eq!(p.as_slice(), &[1.5; 8]);
    }
}
