//! The filter: an ordered list of [`Step`]s applied to a [`ParticleSet`] for any [`Model`].
//!
//! The engine only schedules and rolls back; what each step does is defined once, in
//! [`crate::core::filter::step`]. Two schedules run the same step code:
//! - **step by step** (the general case): consecutive row-local steps run as one parallel pass over
//!   the particles (none when every one of them does nothing for the model, as propagating a static
//!   model), a set-level step (pair move, resampling) runs on the whole set between passes;
//! - **particle-major windows**, when every step is row-local (no pair term, no resampling:
//!   `grad`, `sgd`, `wpf`): each particle runs a whole window of observations on its own row, which
//!   stays in cache, and the log-weights are settled afterwards update by update.
//!
//! Particle `i`'s path depends only on its own row, payload and random streams `(seed, t<<8 | k, i)`,
//! and log-weight normalisation `ℓ ← ℓ − log Σ_j exp ℓ_j` is a shift common to all particles, so
//! both schedules give bit-identical numbers, whatever the thread count.

use crate::core::error::{Error, Result};
pub use crate::core::filter::diagnostics::Diagnostics;
use crate::core::filter::model::Model;
use crate::core::filter::particles::{ess_of, ParticleSet};
use crate::core::filter::step::{reweighted, Guard, Row, RowMemo, RowPlan, SetCtx, Step};
use smallvec::SmallVec;
use std::ops::Range;
use std::time::Instant;

/// A particle filter: steps, particles, and the seed of its random streams.
#[derive(Clone, Debug)]
pub struct Filter {
    steps: Vec<Step>,
    particles: ParticleSet,
    seed: u64,
    t: usize,
    guard: Guard,
    /// Reusable `n × m` buffers of set-level moves (gradients, pair sums).
    buffers: (Vec<f64>, Vec<f64>),
    /// The last losses the last successful update evaluated (one per particle).
    last_losses: Vec<f64>,
}

/// What one particle did in a row pass.
struct RowTrace {
    /// Reweight increments, one per (update, reweight step), update-major (inline up to four
    /// increments: no heap allocation per particle in the common one-update pass).
    increments: SmallVec<[f64; 4]>,
    /// The particle's memo after each update of the pass.
    memos: SmallVec<[RowMemo; 2]>,
}

/// Where a particle's row failed: `(update, step)` and the error (which names the particle).
struct RowFailure {
    at: (usize, usize),
    error: Error,
}

/// Updates of fewer particles than this, called from outside rayon's pool, run on one of its
/// workers. An RF-PF update at n = 1000, m = 10 (`hdpf bench step`) has about eight parallel
/// sections of tens of microseconds each; injecting each from outside cost ≈ 25 µs of hand-off
/// (0.78 → 0.60 ms per update, median of interleaved runs, 2 cores). At n = 10⁴, where the pair
/// kernel's tens of milliseconds dominate, the same change measured 5–15 % slower in interleaved
/// runs (and equal under `perf`), so larger updates keep the caller's thread.
const ON_WORKER_BELOW: usize = 4096;

impl Filter {
    /// A filter with the given steps over existing particles.
    pub fn new(steps: Vec<Step>, particles: ParticleSet, seed: u64) -> Result<Self> {
        for step in &steps {
            step.validate()?;
        }
        Ok(Self {
            steps,
            particles,
            seed,
            t: 0,
            guard: Guard::default(),
            buffers: Default::default(),
            last_losses: Vec::new(),
        })
    }

    /// The particles.
    pub fn particles(&self) -> &ParticleSet {
        &self.particles
    }

    /// The particles, mutable (e.g. to re-centre a tangent space, or to update the payload,
    /// between updates).
    pub fn particles_mut(&mut self) -> &mut ParticleSet {
        &mut self.particles
    }

    /// The steps.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The per-particle losses last evaluated by the last update (before its final move, for
    /// moving filters; at the reweighted positions for weighting filters). Empty before the first.
    pub fn last_losses(&self) -> &[f64] {
        &self.last_losses
    }

    /// Number of updates done so far.
    pub fn updates(&self) -> usize {
        self.t
    }

    /// Whether every step is row-local, so that windows run particle-major.
    pub fn is_particle_major(&self) -> bool {
        self.steps.iter().all(Step::is_row_local)
    }

    /// Assimilate one observation, held by `model`: run every step in order.
    ///
    /// On error (a NaN or infinite loss, gradient or state, naming the particle and the update
    /// number) the particles and weights are left exactly as they were before the call.
    pub fn update<M: Model + ?Sized>(&mut self, model: &M) -> Result<Diagnostics> {
        let mut diags = self.update_window(&[model])?;
        diags
            .pop()
            .ok_or_else(|| Error::Other("an update produced no diagnostics".into()))
    }

    /// Assimilate a window of observations in order, one update each: the same numbers as calling
    /// [`Self::update`] on each model in turn. When every step is row-local the window runs
    /// particle-major (see the module docs).
    ///
    /// The window is atomic: on error the filter is left exactly as it was before the call, and
    /// the error names the update number and the particle. Among several failures it reports the
    /// earliest update, then the earliest step in the list, then the lowest particle.
    pub fn update_window<M: Model + ?Sized>(&mut self, models: &[&M]) -> Result<Vec<Diagnostics>> {
        if rayon::current_thread_index().is_none() && self.particles.len() < ON_WORKER_BELOW {
            // Run the whole update on one of rayon's workers: its parallel sections then split
            // onto the worker's own queue instead of each being injected into the pool from
            // outside and waited for (a wake-up and a hand-off per section).
            return rayon::scope(|_| self.update_window_here(models));
        }
        self.update_window_here(models)
    }

    /// [`Self::update_window`], run on the calling thread (a rayon worker, or for large updates
    /// the caller's own thread).
    fn update_window_here<M: Model + ?Sized>(&mut self, models: &[&M]) -> Result<Vec<Diagnostics>> {
        if let Some(model) = models.iter().find(|m| m.dim() != self.particles.dim()) {
            return Err(Error::Shape {
                what: "model dimension vs particle dimension".into(),
                expected: self.particles.dim().to_string(),
                got: model.dim().to_string(),
            });
        }
        let n = self.particles.len();
        let plans = (models.iter())
            .map(|m| self.plans(*m, n))
            .collect::<Result<Vec<_>>>()?;
        if self.is_particle_major() {
            return self.window(models, &plans);
        }
        if let ([model], [plan]) = (models, plans.as_slice()) {
            return self.update_coupled(*model, plan).map(|d| vec![d]);
        }
        let (start, t0, last) = (self.particles.clone(), self.t, self.last_losses.clone());
        let diags: Result<Vec<Diagnostics>> = (models.iter().zip(&plans))
            .map(|(m, plan)| self.update_coupled(*m, plan))
            .collect();
        if diags.is_err() {
            (self.particles, self.t, self.last_losses) = (start, t0, last);
        }
        diags
    }

    /// The particle-major window: one row pass over every update and step, then the log-weights
    /// settled update by update; committed only if everything succeeded.
    fn window<M: Model + ?Sized>(
        &mut self,
        models: &[&M],
        plans: &[Vec<RowPlan>],
    ) -> Result<Vec<Diagnostics>> {
        let start = Instant::now();
        self.guard.begin();
        let fresh = vec![RowMemo::default(); self.particles.len()];
        let (traces, failure) = self.row_pass(models, plans, 0..self.steps.len(), &fresh);
        let settled_updates = failure
            .as_ref()
            .map_or(models.len(), |f| f.at.0 - self.t - 1);
        let settled = self
            .settle(plans, settled_updates, &traces)
            .and_then(|s| failure.map_or(Ok(s), |f| Err(f.error)));
        let (log_w, mut diags) = match settled {
            Ok(s) => s,
            Err(e) => {
                self.guard.restore(&mut self.particles);
                return Err(e);
            }
        };
        if let Some(lw) = log_w {
            self.particles.log_weights_mut().copy_from_slice(&lw);
        }
        if self.evaluates() && !models.is_empty() {
            self.last_losses = traces
                .iter()
                .map(|tr| tr.memos[models.len() - 1].last)
                .collect();
        }
        self.t += models.len();
        let seconds = start.elapsed().as_secs_f64() / models.len().max(1) as f64;
        diags.iter_mut().for_each(|d| d.seconds = seconds);
        Ok(diags)
    }

    /// Whether any step evaluates the loss (so that an update has "last losses").
    fn evaluates(&self) -> bool {
        (self.steps.iter()).any(|s| {
            matches!(
                s,
                Step::Move(_) | Step::Newton(_) | Step::Svgd(_) | Step::Reweight(_)
            )
        })
    }

    /// Run steps `ks` of updates `t+1 … t+len(models)` (row plans `plans[b]`) on every particle,
    /// each particle on its own row (starting from `memo[i]`); returns the traces and the failure that the step-by-step
    /// schedule would meet first (earliest update, then step, then lowest particle), so that the
    /// reported failure does not depend on the thread schedule.
    fn row_pass<M: Model + ?Sized>(
        &mut self,
        models: &[&M],
        plans: &[Vec<RowPlan>],
        ks: Range<usize>,
        memo: &[RowMemo],
    ) -> (Vec<RowTrace>, Option<Box<RowFailure>>) {
        let changes = models.iter().any(|m| {
            self.steps[ks.clone()]
                .iter()
                .any(|s| s.changes_positions(*m))
        });
        let (steps, seed, t0) = (&self.steps, self.seed, self.t);
        let run = |i: usize, state: &[f64], x: &mut [f64]| {
            let mut trace = RowTrace {
                increments: SmallVec::new(),
                memos: SmallVec::new(),
            };
            let mut mm = memo[i];
            let failure = models.iter().enumerate().find_map(|(b, model)| {
                let t = t0 + b + 1;
                if b > 0 {
                    mm = RowMemo::default();
                }
                let fail = ks.clone().find_map(|k| {
                    let mut row = Row {
                        i,
                        t,
                        k,
                        seed,
                        x: &mut *x,
                        state,
                    };
                    match steps[k].run_row(*model, plans[b][k], &mut row, &mut mm) {
                        Ok(inc) => {
                            trace.increments.extend(inc);
                            None
                        }
                        Err(error) => Some(Box::new(RowFailure { at: (t, k), error })),
                    }
                });
                if fail.is_none() {
                    trace.memos.push(mm);
                }
                fail
            });
            (trace, failure)
        };
        let rows = match changes {
            true => self.guard.change_rows(&mut self.particles, run),
            false => self.particles.update_rows(run),
        };
        earliest_failure(rows)
    }

    /// The row plan of every step for one update's model and `n` particles, made once when the
    /// update begins. Refuses an update whose moves would need more than 100 000 sub-moves (a
    /// likelihood far sharper than the step size) before anything runs.
    fn plans<M: Model + ?Sized>(&self, model: &M, n: usize) -> Result<Vec<RowPlan>> {
        (self.steps.iter().enumerate())
            .map(|(k, step)| {
                Ok(RowPlan {
                    movement: match step {
                        Step::Move(cfg) => cfg.movement(n, model)?,
                        _ => (0.0, 0),
                    },
                    reweight_follows: matches!(self.steps.get(k + 1), Some(Step::Reweight(_))),
                })
            })
            .collect()
    }

    /// The log-weights after each of the first `updates` updates of a pass, from the rows' traces
    /// (increments in step order), and one [`Diagnostics`] per update.
    fn settle(
        &mut self,
        plans: &[Vec<RowPlan>],
        updates: usize,
        traces: &[RowTrace],
    ) -> Result<(Option<Vec<f64>>, Vec<Diagnostics>)> {
        let reweights: Vec<_> = (self.steps.iter())
            .filter_map(|s| match s {
                Step::Reweight(rw) => Some(*rw),
                _ => None,
            })
            .collect();
        let mut lw = self.particles.log_weights().map(<[f64]>::to_vec);
        let n = self.particles.len();
        let mut diags = Vec::with_capacity(updates);
        for (b, plan) in plans.iter().enumerate().take(updates) {
            let t = self.t + b + 1;
            for (j, rw) in reweights.iter().enumerate() {
                let inc: Vec<f64> = (traces.iter())
                    .map(|tr| tr.increments[b * reweights.len() + j])
                    .collect();
                lw = Some(reweighted(lw.as_deref(), &inc, rw, t)?);
            }
            let mut d = Diagnostics {
                step: t,
                ess: lw.as_deref().map_or(n as f64, ess_of),
                substeps: plan.iter().map(|p| p.movement.1).sum(),
                ..Diagnostics::default()
            };
            if self.evaluates() {
                let last: Vec<f64> = traces.iter().map(|tr| tr.memos[b].last).collect();
                (d.loss_mean, d.loss_std) = mean_std(&last);
            }
            diags.push(d);
        }
        Ok((lw, diags))
    }

    /// One update, step by step: consecutive row-local steps as one row pass (with their
    /// reweights settled right after it), set-level steps on the whole set.
    fn update_coupled<M: Model + ?Sized>(
        &mut self,
        model: &M,
        plan: &[RowPlan],
    ) -> Result<Diagnostics> {
        let start = Instant::now();
        self.guard.begin();
        let mut memo = vec![RowMemo::default(); self.particles.len()];
        let mut diag = Diagnostics::default();
        let result = segments(&self.steps)
            .into_iter()
            .try_for_each(|seg| self.run_segment(model, plan, seg, &mut memo, &mut diag));
        if let Err(e) = result {
            self.guard.restore(&mut self.particles);
            return Err(e);
        }
        self.t += 1;
        if self.evaluates() {
            self.last_losses = memo.iter().map(|m| m.last).collect();
            (diag.loss_mean, diag.loss_std) = mean_std(&self.last_losses);
        }
        diag.step = self.t;
        if !diag.resampled {
            diag.ess = self.particles.ess();
        }
        diag.seconds = start.elapsed().as_secs_f64();
        Ok(diag)
    }

    /// One segment of update `t + 1` (row plans `plan`): a range of row-local steps, or one
    /// set-level step.
    fn run_segment<M: Model + ?Sized>(
        &mut self,
        model: &M,
        plan: &[RowPlan],
        seg: Range<usize>,
        memo: &mut [RowMemo],
        diag: &mut Diagnostics,
    ) -> Result<()> {
        let k = seg.start;
        if !self.steps[k].is_row_local() {
            let steps = std::mem::take(&mut self.steps);
            let mut cx = SetCtx {
                particles: &mut self.particles,
                guard: &mut self.guard,
                memo,
                diag,
                buffers: &mut self.buffers,
                seed: self.seed,
                t: self.t + 1,
                k,
            };
            let result = steps[k].run_set(model, &mut cx);
            self.steps = steps;
            return result;
        }
        // A run of steps that do nothing for this model (propagating a static model) skips its
        // parallel pass: at n = 1000 waking the workers for it cost more than the work.
        if self.steps[seg.clone()].iter().all(|s| s.is_no_op(model)) {
            return Ok(());
        }
        let plans = [plan.to_vec()];
        let (traces, failure) = self.row_pass(&[model], &plans, seg.clone(), memo);
        if let Some(f) = failure {
            return Err(f.error);
        }
        for (m, tr) in memo.iter_mut().zip(&traces) {
            *m = tr.memos[0];
        }
        diag.substeps += seg.clone().map(|k| plan[k].movement.1).sum::<usize>();
        let reweights: Vec<_> = (self.steps[seg].iter())
            .filter_map(|s| match s {
                Step::Reweight(rw) => Some(*rw),
                _ => None,
            })
            .collect();
        for (j, rw) in reweights.iter().enumerate() {
            let inc: Vec<f64> = traces.iter().map(|tr| tr.increments[j]).collect();
            let lw = reweighted(self.particles.log_weights(), &inc, rw, self.t + 1)?;
            self.guard.save_log_weights(&self.particles);
            self.particles.log_weights_mut().copy_from_slice(&lw);
        }
        Ok(())
    }
}

/// The step list cut into maximal runs of row-local steps and single set-level steps.
fn segments(steps: &[Step]) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for (k, step) in steps.iter().enumerate() {
        match out.last_mut() {
            Some(last) if step.is_row_local() && steps[last.start].is_row_local() => {
                last.end = k + 1
            }
            _ => out.push(k..k + 1),
        }
    }
    out
}

/// The rows' traces, and the earliest failure: earliest update, then earliest step, then lowest
/// particle (rows come in particle order). A failure is boxed so that a row's result stays small
/// (one `n`-row vector of unboxed errors crossed glibc's mmap threshold at n = 1000, and every
/// update then faulted its pages in afresh).
fn earliest_failure(
    rows: Vec<(RowTrace, Option<Box<RowFailure>>)>,
) -> (Vec<RowTrace>, Option<Box<RowFailure>>) {
    let (mut traces, mut failure) = (Vec::with_capacity(rows.len()), None);
    for (trace, row_failure) in rows {
        traces.push(trace);
        if let Some(f) = row_failure {
            if failure.as_deref().is_none_or(|g: &RowFailure| f.at < g.at) {
                failure = Some(f);
            }
        }
    }
    (traces, failure)
}

/// Mean and (population) standard deviation.
fn mean_std(v: &[f64]) -> (f64, f64) {
    // Over the finite losses: a particle of zero likelihood (+∞, weight 0) has no loss to average.
    let finite = || v.iter().filter(|x| x.is_finite());
    let n = finite().count() as f64;
    let mean = finite().sum::<f64>() / n;
    let var = finite().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::filter::presets::{FilterKind, FilterSpec};
    use crate::core::filter::resample;
    use crate::core::filter::step::{
        MoveConfig, PairConfig, ResampleConfig, ResampleWhen, Reweight, StepSize, Substeps,
    };
    use rand::RngCore;
    use rand_distr::{Distribution, StandardNormal};

    /// Static linear-Gaussian model: prior N(0, I_m), one observation y = Hx + N(0, r I).
    struct LinearObs {
        h: Vec<Vec<f64>>,
        y: Vec<f64>,
        r: f64,
        m: usize,
    }

    impl Model for LinearObs {
        fn dim(&self) -> usize {
            self.m
        }
        fn sample_prior(&self, rng: &mut dyn RngCore, out: &mut [f64]) {
            out.iter_mut().for_each(|v| *v = StandardNormal.sample(rng));
        }
        fn loss(&self, x: &[f64]) -> f64 {
            self.residuals(x).iter().map(|e| e * e).sum::<f64>() / (2.0 * self.r)
        }
        fn loss_grad(&self, x: &[f64], g: &mut [f64]) -> f64 {
            let e = self.residuals(x);
            g.iter_mut().enumerate().for_each(|(k, gk)| {
                *gk = -self
                    .h
                    .iter()
                    .zip(&e)
                    .map(|(row, ei)| row[k] * ei)
                    .sum::<f64>()
                    / self.r
            });
            self.loss(x)
        }
        fn curvature(&self, _x: &[f64], out: &mut [f64]) -> bool {
            let obs = self.linear_observation().unwrap();
            let j = obs.h.tr_mul(&obs.h) / self.r;
            out.copy_from_slice(j.as_slice());
            true
        }
        fn linear_observation(&self) -> Option<crate::core::filter::model::LinearObservation> {
            let k = self.h.len();
            Some(crate::core::filter::model::LinearObservation {
                h: nalgebra::DMatrix::from_fn(k, self.m, |i, j| self.h[i][j]),
                y: nalgebra::DVector::from_column_slice(&self.y),
                r: nalgebra::DMatrix::identity(k, k) * self.r,
            })
        }
    }

    impl LinearObs {
        fn residuals(&self, x: &[f64]) -> Vec<f64> {
            self.h
                .iter()
                .zip(&self.y)
                .map(|(row, yi)| yi - row.iter().zip(x).map(|(a, b)| a * b).sum::<f64>())
                .collect()
        }
    }

    /// A model that returns NaN loss for particles with x[0] > `threshold`.
    struct NanAbove(f64);
    impl Model for NanAbove {
        fn dim(&self) -> usize {
            3
        }
        fn sample_prior(&self, rng: &mut dyn RngCore, out: &mut [f64]) {
            out.iter_mut().for_each(|v| *v = StandardNormal.sample(rng));
        }
        fn loss(&self, x: &[f64]) -> f64 {
            if x[0] > self.0 {
                f64::NAN
            } else {
                0.5 * x.iter().map(|v| v * v).sum::<f64>()
            }
        }
    }

    #[test]
    fn rfpf_matches_hand_computed_three_particle_update() {
        // m = 3, n = 3, loss L(p) = ½‖p‖² (∇L = p), γ = 0.3 → η = 0.1.
        let p = vec![0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 2.0, 0.0];
        let set = ParticleSet::from_vec(3, 3, p.clone()).unwrap();
        let model = NanAbove(f64::INFINITY);
        let steps = crate::core::filter::presets::rfpf(StepSize::Gamma(0.3), Substeps::Fixed(1));
        let mut f = Filter::new(steps, set, 0).unwrap();
        f.update(&model).unwrap();
        // Hand computation: L = [0, 0.5, 2], mean 5/6, L̃ = [−5/6, −1/3, 7/6].
        // C_3 = Γ(2.5)/(3·1·π^1.5) = (3√π/4)/(3π^1.5) = 1/(4π); ε = (γ/C_3)^{-1} = C_3/γ = 1/(1.2π).
        let eps = 1.0 / (1.2 * std::f64::consts::PI);
        let w = |d: f64| (eps / (d + eps)).powi(3);
        let pts: [[f64; 3]; 3] = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0]];
        let lt = [-5.0 / 6.0, -1.0 / 3.0, 7.0 / 6.0];
        for i in 0..3 {
            let mut s = [0.0; 3];
            for j in 0..3 {
                let d: f64 = (0..3)
                    .map(|k| (pts[i][k] - pts[j][k]).powi(2))
                    .sum::<f64>()
                    .sqrt();
                for k in 0..3 {
                    s[k] += w(d) * (pts[i][k] - pts[j][k]);
                }
            }
            for k in 0..3 {
                let expect = pts[i][k] - 0.1 * (pts[i][k] + (1.0 / (eps * eps)) * lt[i] * s[k]);
                let got = f.particles().particle(i)[k];
                // The pair weights are computed in f32 (see interaction.rs): the pair contribution
                // here is ≈ 1e-2, so its rounding is ≈ 1e-9; 1e-8 still pins every term.
                assert!(
                    (got - expect).abs() < 1e-8,
                    "particle {i} coord {k}: {got} vs {expect}"
                );
            }
        }
    }

    /// 2-D: prior N(0, I), y = Hx + N(0, r I) with H = [1 ½; 0 1], y = (0.8, −0.4), r = ½.
    fn two_d_observation() -> LinearObs {
        LinearObs {
            h: vec![vec![1.0, 0.5], vec![0.0, 1.0]],
            y: vec![0.8, -0.4],
            r: 0.5,
            m: 2,
        }
    }

    #[test]
    fn sir_matches_the_exact_gaussian_posterior() {
        // Exact posterior: Λ = I + HᵀH/r, μ = Λ⁻¹Hᵀy/r.
        let model = two_d_observation();
        let lambda = nalgebra::Matrix2::new(1.0 + 2.0, 1.0, 1.0, 1.0 + 2.5);
        let cov = lambda.try_inverse().unwrap();
        let mu = cov * nalgebra::Vector2::new(1.6, 0.0);
        let mut spec = FilterSpec::new(FilterKind::Sir, 50_000, 11);
        spec.preset = crate::core::filter::Preset::Sir(crate::core::filter::presets::SirParams {
            ess_threshold: 0.0,
            ..Default::default()
        }); // keep the weights: estimate the posterior by importance sampling
        let mut f = spec.build(&model).unwrap();
        f.update(&model).unwrap();
        let (m_hat, c_hat) = (f.particles().mean(), f.particles().covariance());
        // ESS ≈ n/2 here; the Monte-Carlo s.e. of the mean is ≈ sqrt(0.3/25000) ≈ 0.0035 and of a
        // covariance entry ≈ 0.004: tolerances of 0.02 are > 4σ.
        for k in 0..2 {
            assert!(
                (m_hat[k] - mu[k]).abs() < 0.02,
                "mean {k}: {} vs {}",
                m_hat[k],
                mu[k]
            );
            for l in 0..2 {
                assert!((c_hat[(k, l)] - cov[(k, l)]).abs() < 0.02, "cov {k}{l}");
            }
        }
    }

    /// SIR of `n` particles from `seed`, resampling when the ESS falls below `tau · n`.
    fn sir_spec(n: usize, seed: u64, tau: f64) -> FilterSpec {
        let mut spec = FilterSpec::new(FilterKind::Sir, n, seed);
        spec.preset = crate::core::filter::Preset::Sir(crate::core::filter::presets::SirParams {
            ess_threshold: tau,
            ..Default::default()
        });
        spec
    }

    /// A resampling update reports the ESS its weights had (after resampling every set has n):
    /// the same bits as the update that kept those weights, from the same seed.
    #[test]
    fn a_resampling_update_reports_the_ess_of_its_weights() {
        let model = two_d_observation();
        let update = |tau: f64| {
            sir_spec(2000, 11, tau)
                .build(&model)
                .unwrap()
                .update(&model)
                .unwrap()
        };
        let (kept, resampled) = (update(0.0), update(1.0));
        assert!(!kept.resampled && resampled.resampled);
        assert_eq!(kept.ess, resampled.ess);
        // About n/2 for this prior and likelihood (the test above): degenerate, and shown so.
        assert!(
            (600.0..1400.0).contains(&resampled.ess),
            "{}",
            resampled.ess
        );
    }

    /// [`two_d_observation`] with a hard constraint: zero likelihood (`L = +∞`) where `x₀ > gate`.
    struct Gated {
        inner: LinearObs,
        gate: f64,
    }

    impl Model for Gated {
        fn dim(&self) -> usize {
            2
        }
        fn sample_prior(&self, rng: &mut dyn rand::RngCore, out: &mut [f64]) {
            self.inner.sample_prior(rng, out)
        }
        fn loss(&self, x: &[f64]) -> f64 {
            match x[0] > self.gate {
                true => f64::INFINITY,
                false => self.inner.loss(x),
            }
        }
    }

    /// SIR and MCL take a zero likelihood as weight 0 (the whole update failed on the first
    /// `+∞`): the gated particles weigh nothing, resampling keeps none of them, the loss
    /// diagnostics average the finite losses; when every particle is gated the error says so.
    #[test]
    fn a_zero_likelihood_is_weight_zero() {
        let gated = |gate| Gated {
            inner: two_d_observation(),
            gate,
        };
        let sir = |tau: f64| sir_spec(500, 3, tau).build(&gated(0.0)).unwrap();
        let mut kept = sir(0.0);
        let d = kept.update(&gated(0.0)).unwrap();
        assert!(d.loss_mean.is_finite() && d.loss_std.is_finite(), "{d:?}");
        let w = kept.particles().weights();
        let open: f64 = (0..500)
            .filter(|&i| kept.particles().particle(i)[0] <= 0.0)
            .map(|i| w[i])
            .sum();
        assert!((open - 1.0).abs() < 1e-12, "{open}");
        assert!(kept.particles().mean()[0] < 0.0);
        let mut resampled = sir(1.0);
        resampled.update(&gated(0.0)).unwrap();
        let p = resampled.particles();
        assert!((0..500).all(|i| p.particle(i)[0] <= 0.0));
        let mut mcl = FilterSpec::new(FilterKind::Mcl, 200, 3)
            .build(&gated(0.0))
            .unwrap();
        mcl.update(&gated(0.0)).unwrap();
        let e = sir(1.0).update(&gated(-100.0)).unwrap_err().to_string();
        assert!(e.contains("zero likelihood"), "{e}");
        // A gradient move cannot take it: an error, as before.
        let mut rfpf = FilterSpec::new(FilterKind::Grad, 50, 3)
            .build(&gated(0.0))
            .unwrap();
        assert!(rfpf.update(&gated(0.0)).is_err());
    }

    fn run_all_filters() -> Vec<Vec<f64>> {
        let model = LinearObs {
            h: vec![vec![1.0, 0.0, 0.3, 0.0], vec![0.0, 1.0, 0.0, 0.5]],
            y: vec![0.3, 0.9],
            r: 0.2,
            m: 4,
        };
        FilterKind::ALL
            .iter()
            .map(|&kind| {
                let mut f = FilterSpec::new(kind, 300, 5).build(&model).unwrap();
                for _ in 0..3 {
                    f.update(&model).unwrap();
                }
                f.particles().as_slice().to_vec()
            })
            .collect()
    }

    #[test]
    fn identical_numbers_with_one_and_two_threads() {
        let pool = |t| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
        };
        let one = pool(1).install(run_all_filters);
        let two = pool(2).install(run_all_filters);
        assert_eq!(one, two);
        // From a thread outside any pool (the update then moves onto a worker of the global pool).
        assert_eq!(one, run_all_filters());
    }

    #[test]
    fn nan_loss_is_an_error_naming_particle_and_step_and_keeps_state() {
        let model = NanAbove(1.5);
        let set =
            ParticleSet::from_vec(3, 3, vec![0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 2.0, 0.0, 0.0]).unwrap();
        let mut f = FilterSpec::new(FilterKind::Rfpf, 3, 0)
            .build_with(set.clone())
            .unwrap();
        let e = f.update(&model).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("particle 2") && msg.contains("step 1") && msg.contains("loss"),
            "{msg}"
        );
        assert_eq!(
            f.particles(),
            &set,
            "a failed update must leave the particles untouched"
        );
        assert_eq!(f.updates(), 0);
    }

    /// Loss ½‖x‖² with gradient −x (ascent: moves particles outward) and NaN gradient when x[1] > 5.
    struct Outward;
    impl Model for Outward {
        fn dim(&self) -> usize {
            3
        }
        fn sample_prior(&self, _rng: &mut dyn RngCore, out: &mut [f64]) {
            out.fill(0.0);
        }
        fn loss(&self, x: &[f64]) -> f64 {
            NanAbove(1.5).loss(x)
        }
        fn loss_grad(&self, x: &[f64], g: &mut [f64]) -> f64 {
            let bad = x[1] > 5.0;
            g.iter_mut()
                .zip(x)
                .for_each(|(gk, xk)| *gk = if bad { f64::NAN } else { -xk });
            self.loss(x)
        }
    }

    #[test]
    fn failure_after_a_move_restores_the_particles() {
        // WPF steps: the move (η = 1) doubles x; the reweight then evaluates the loss at x[0] = 2 > 1.5
        // (NaN) and fails — after the move already changed the particles.
        let set = ParticleSet::from_vec(2, 3, vec![0.1, 0.0, 0.0, 1.0, 0.0, 0.0]).unwrap();
        let mut f = Filter::new(
            crate::core::filter::presets::wpf(1.0, 1.0, None),
            set.clone(),
            0,
        )
        .unwrap();
        let e = f.update(&Outward).unwrap_err().to_string();
        assert!(
            e.contains("loss") && e.contains("particle 1") && e.contains("step 1"),
            "{e}"
        );
        assert_eq!(f.particles(), &set);
        // A NaN gradient is named as such.
        let set = ParticleSet::from_vec(2, 3, vec![0.0, 0.0, 0.0, 0.0, 6.0, 0.0]).unwrap();
        let mut f = Filter::new(
            crate::core::filter::presets::wpf(1.0, 1.0, None),
            set.clone(),
            0,
        )
        .unwrap();
        let e = f.update(&Outward).unwrap_err().to_string();
        assert!(e.contains("gradient") && e.contains("particle 1"), "{e}");
        assert_eq!(f.particles(), &set);
        // A successful update after a failed one proceeds from the restored particles.
        let set = ParticleSet::from_vec(1, 3, vec![0.5, 0.0, 0.0]).unwrap();
        let mut f = Filter::new(crate::core::filter::presets::wpf(0.5, 1.0, None), set, 0).unwrap();
        f.update(&Outward).unwrap();
        assert!((f.particles().particle(0)[0] - 0.75).abs() < 1e-15);
        assert!(f.update(&Outward).is_ok()); // 1.125
        assert!(f.update(&Outward).is_err()); // would reach 1.6875 > 1.5
        assert!((f.particles().particle(0)[0] - 1.125).abs() < 1e-15);
    }

    /// Random walk `x ← x + 0.05·ε` observed through `L = ½‖x − y‖²/r`.
    struct Walk {
        y: f64,
    }
    impl Model for Walk {
        fn dim(&self) -> usize {
            4
        }
        fn sample_prior(&self, rng: &mut dyn RngCore, out: &mut [f64]) {
            out.iter_mut().for_each(|v| *v = StandardNormal.sample(rng));
        }
        fn has_transition(&self) -> bool {
            true
        }
        fn transition(&self, x: &mut [f64], rng: &mut dyn RngCore) {
            x.iter_mut().for_each(|v| {
                let z: f64 = StandardNormal.sample(rng);
                *v += 0.05 * z
            });
        }
        fn loss(&self, x: &[f64]) -> f64 {
            x.iter().map(|v| (v - self.y).powi(2)).sum::<f64>() / 0.2
        }
        fn loss_grad(&self, x: &[f64], g: &mut [f64]) -> f64 {
            g.iter_mut()
                .zip(x)
                .for_each(|(gk, v)| *gk = 2.0 * (v - self.y) / 0.2);
            self.loss(x)
        }
    }

    /// Every kind of particle-independent step, twice-substepped move and both reweights.
    fn independent_steps() -> Vec<Step> {
        vec![
            Step::Propagate,
            Step::Jitter { sigma: 0.02 },
            Step::Move(MoveConfig {
                step: StepSize::Eta(0.03),
                pair: None,
                substeps: Substeps::Fixed(2),
            }),
            Step::Reweight(Reweight::Trapezoid { temperature: 2.0 }),
            Step::Reweight(Reweight::Likelihood { temperature: 5.0 }),
        ]
    }

    fn walks() -> Vec<Walk> {
        (0..6).map(|t| Walk { y: 0.1 * t as f64 }).collect()
    }

    fn state_of(f: &Filter) -> (Vec<f64>, Vec<f64>, usize, Vec<f64>) {
        let lw = f.particles().log_weights().unwrap_or(&[]).to_vec();
        let p = f.particles().as_slice().to_vec();
        (p, lw, f.updates(), f.last_losses().to_vec())
    }

    #[test]
    fn particle_major_window_equals_the_update_by_update_schedule_bit_for_bit() {
        let set = ParticleSet::from_prior(&Walk { y: 0.0 }, 16, 3).unwrap();
        let models = walks();
        let refs: Vec<&Walk> = models.iter().collect();
        // Reference: the same steps plus a resampling that never fires (ESS < 0·n) force the
        // coupled, update-by-update path.
        let mut coupled_steps = independent_steps();
        coupled_steps.push(Step::Resample(ResampleConfig {
            scheme: resample::Scheme::Systematic,
            when: ResampleWhen::EssBelow(0.0),
            jitter: 0.0,
        }));
        let mut reference = Filter::new(coupled_steps, set.clone(), 9).unwrap();
        let ref_diag: Vec<Diagnostics> =
            refs.iter().map(|m| reference.update(*m).unwrap()).collect();
        let mut window = Filter::new(independent_steps(), set.clone(), 9).unwrap();
        let mut diag = window.update_window(&refs[..4]).unwrap();
        diag.extend(window.update_window(&refs[4..]).unwrap());
        assert_eq!(state_of(&window), state_of(&reference));
        for (a, b) in diag.iter().zip(&ref_diag) {
            assert_eq!((a.step, a.substeps), (b.step, b.substeps));
            assert_eq!((a.loss_mean, a.loss_std), (b.loss_mean, b.loss_std));
            // ESS from the log-weights directly vs via normalised weights: rounding only.
            assert!(
                (a.ess - b.ess).abs() < 1e-9 * b.ess,
                "{} vs {}",
                a.ess,
                b.ess
            );
        }
        assert!(diag.last().unwrap().ess < 16.0, "the reweights must act");
    }

    #[test]
    fn a_failing_window_leaves_the_filter_as_it_was_and_names_the_update() {
        let set = ParticleSet::from_prior(&Walk { y: 0.0 }, 8, 4).unwrap();
        for steps in [
            independent_steps(),
            crate::core::filter::presets::rfpf(StepSize::Eta(0.01), Substeps::Fixed(1)),
        ] {
            let mut f = Filter::new(steps, set.clone(), 1).unwrap();
            f.update(&Walk { y: 0.0 }).unwrap();
            let before = state_of(&f);
            let bad = Walk { y: f64::NAN };
            let (good, later) = (Walk { y: 0.1 }, Walk { y: 0.2 });
            let err = f.update_window(&[&good, &bad, &later]).unwrap_err();
            match err {
                Error::NonFinite { step, .. } => assert_eq!(step, 3, "{err}"),
                other => panic!("unexpected error {other}"),
            }
            assert_eq!(state_of(&f), before);
        }
    }

    #[test]
    fn a_window_reports_its_earliest_failure_even_a_log_weight_one() {
        // Update 2's losses are finite (1.7e308 before, 8.8e307 after the move) but their sum
        // overflows, so its log-weights are not finite; update 3 has a NaN loss. Update 2's
        // failure comes first.
        let set = ParticleSet::from_prior(&Walk { y: 0.0 }, 8, 5).unwrap();
        let mut f = Filter::new(independent_steps(), set, 1).unwrap();
        let (good, huge, bad) = (Walk { y: 0.1 }, Walk { y: 2.9e153 }, Walk { y: f64::NAN });
        let err = f.update_window(&[&good, &huge, &bad]).unwrap_err();
        match &err {
            Error::NonFinite { what, step, .. } => {
                assert_eq!((what.as_str(), *step), ("log-weight", 2))
            }
            other => panic!("unexpected error {other}"),
        }
        assert_eq!(f.updates(), 0);
    }

    /// A gradient that is NaN while the loss is finite.
    struct NanGradient;
    impl Model for NanGradient {
        fn dim(&self) -> usize {
            3
        }
        fn sample_prior(&self, rng: &mut dyn RngCore, out: &mut [f64]) {
            out.iter_mut().for_each(|v| *v = StandardNormal.sample(rng));
        }
        fn loss(&self, x: &[f64]) -> f64 {
            0.5 * x.iter().map(|v| v * v).sum::<f64>()
        }
        fn loss_grad(&self, x: &[f64], g: &mut [f64]) -> f64 {
            g.fill(f64::NAN);
            self.loss(x)
        }
    }

    #[test]
    fn a_reweight_before_a_failing_step_is_undone() {
        // The reweight is the update's first change (no particle backup is taken for it); the
        // coupled move after it fails on the NaN gradient: the weights must be as before.
        let mut steps = vec![Step::Reweight(Reweight::Likelihood { temperature: 1.0 })];
        steps.extend(crate::core::filter::presets::rfpf(
            StepSize::Eta(0.01),
            Substeps::Fixed(1),
        ));
        let set = ParticleSet::from_prior(&NanGradient, 6, 2).unwrap();
        let mut f = Filter::new(steps, set.clone(), 0).unwrap();
        assert!(f.update(&NanGradient).is_err());
        assert_eq!(f.particles().log_weights(), None);
        assert_eq!(f.particles().as_slice(), set.as_slice());
    }

    #[test]
    fn bad_parameters_are_rejected() {
        let model = NanAbove(f64::INFINITY);
        let two_d = LinearObs {
            h: vec![vec![1.0, 0.0]],
            y: vec![0.0],
            r: 1.0,
            m: 2,
        };
        let e = FilterSpec::new(FilterKind::Rfpf, 10, 0)
            .build(&two_d)
            .unwrap_err();
        assert!(e.to_string().contains("m ≥ 3"), "{e}");
        assert!(FilterSpec::new(FilterKind::Sir, 0, 0)
            .build(&model)
            .is_err());
        let mut spec = FilterSpec::new(FilterKind::Rfpf, 10, 0);
        spec.preset.gradient_flow_mut().unwrap().gamma = Some(f64::NAN);
        assert!(spec.build(&model).is_err());
        // A pair term with an explicit γ still needs m ≥ 3.
        let steps = vec![Step::Move(MoveConfig {
            step: StepSize::Eta(0.1),
            pair: Some(PairConfig { gamma: Some(1.0) }),
            substeps: Substeps::Fixed(1),
        })];
        let mut f =
            Filter::new(steps, ParticleSet::from_vec(2, 2, vec![0.0; 4]).unwrap(), 0).unwrap();
        assert!(f.update(&two_d).is_err());
    }

    #[test]
    fn auto_substeps_follow_the_lipschitz_bound() {
        struct Stiff;
        impl Model for Stiff {
            fn dim(&self) -> usize {
                3
            }
            fn sample_prior(&self, rng: &mut dyn RngCore, out: &mut [f64]) {
                out.iter_mut().for_each(|v| *v = StandardNormal.sample(rng));
            }
            fn loss(&self, x: &[f64]) -> f64 {
                15.0 * x.iter().map(|v| v * v).sum::<f64>()
            }
            fn loss_grad(&self, x: &[f64], g: &mut [f64]) -> f64 {
                g.iter_mut().zip(x).for_each(|(gk, xk)| *gk = 30.0 * xk);
                self.loss(x)
            }
            fn gradient_lipschitz(&self) -> Option<f64> {
                Some(30.0)
            }
        }
        // η = 0.1, Lip = 30: one explicit step would multiply x by (1 − 3) = −2 (divergent);
        // K = 3 sub-steps of η/3 multiply by (1 − 1)³ = 0.
        let mut f = FilterSpec::new(FilterKind::Grad, 20, 1)
            .build(&Stiff)
            .unwrap();
        let d = f.update(&Stiff).unwrap();
        assert_eq!(d.substeps, 3);
        assert!(f.particles().as_slice().iter().all(|v| v.abs() < 1e-12));
    }
}
