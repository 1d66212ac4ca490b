//! The filter: an ordered list of [`Step`]s applied to a [`ParticleSet`] for any [`Model`].

use crate::core::error::{Error, Result};
use crate::core::filter::independent::{self, increment, jitter_row, row_finite, Plan, RowTrace};
use crate::core::filter::interaction;
use crate::core::filter::model::Model;
use crate::core::filter::particles::{ess_of, normalize_log, ParticleSet};
use crate::core::filter::resample;
use crate::core::filter::rng::stream;
use crate::core::filter::steps::{
    MoveConfig, ResampleConfig, ResampleWhen, Reweight, Step, StepSize, Substeps,
};
use rayon::prelude::*;
use std::time::Instant;

/// Per-update diagnostics.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Diagnostics {
    /// Update count (1 for the first observation).
    pub step: usize,
    /// Effective sample size after the update (`n` for unweighted filters).
    pub ess: f64,
    /// Mean of the last losses the update evaluated.
    pub loss_mean: f64,
    /// Standard deviation of those losses (the "loss spread").
    pub loss_std: f64,
    /// Number of sub-moves taken (0 when the filter has no move).
    pub substeps: usize,
    /// Mean over particles of `‖pair term‖ / ‖∇L‖` in the move (0 without a pair term).
    pub pair_to_grad: f64,
    /// Whether the particles were resampled.
    pub resampled: bool,
    /// Wall-clock seconds of the update (for an update in a window: the window's mean).
    pub seconds: f64,
}

/// A particle filter: steps, particles, and the seed of its random streams.
#[derive(Clone, Debug)]
pub struct Filter {
    steps: Vec<Step>,
    particles: ParticleSet,
    seed: u64,
    t: usize,
    scratch: Scratch,
}

/// Buffers reused across updates, so that an update allocates nothing proportional to `n·m`.
#[derive(Clone, Debug, Default)]
struct Scratch {
    /// The particles as they were before the update (restored on error).
    backup: Option<ParticleSet>,
    /// Gradients (`n × m`).
    grads: Vec<f64>,
    /// Pair sums (`n × m`).
    pair: Vec<f64>,
    /// The last losses the last successful update evaluated (one per particle).
    last_losses: Vec<f64>,
    /// A window's last losses until the window commits.
    pending_losses: Option<Vec<f64>>,
}

/// Scratch state threaded through the steps of one update.
#[derive(Default)]
struct UpdateState {
    /// Whether the pre-update particles are held in `Scratch::backup` (or swapped into it).
    saved: bool,
    /// Losses at the positions before the last move (for the trapezoid rule).
    loss_before: Option<Vec<f64>>,
    /// The last losses evaluated, for diagnostics.
    last_loss: Option<Vec<f64>>,
    /// The log-weights before the update's first reweight (restored on error: a reweight changes
    /// them without a backup of the particles).
    log_w_before: Option<Option<Vec<f64>>>,
    diag: Diagnostics,
}

impl Filter {
    /// A filter with the given steps over existing particles.
    pub fn new(steps: Vec<Step>, particles: ParticleSet, seed: u64) -> Result<Self> {
        for step in &steps {
            validate_step(step)?;
        }
        Ok(Self {
            steps,
            particles,
            seed,
            t: 0,
            scratch: Scratch::default(),
        })
    }

    /// The particles.
    pub fn particles(&self) -> &ParticleSet {
        &self.particles
    }

    /// The particles, mutable (e.g. to re-centre a tangent space between updates).
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
        &self.scratch.last_losses
    }

    /// Number of updates done so far.
    pub fn updates(&self) -> usize {
        self.t
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
    /// [`Self::update`] on each model in turn. When the particles do not interact (no pair term,
    /// no resampling — e.g. the WPF or a gradient filter) the window runs particle-major (see
    /// [`crate::core::filter::independent`]), each particle's row staying in cache across the window.
    ///
    /// The window is atomic: on error the filter is left exactly as it was before the call, and
    /// the error names the update number and the particle. Among several failures it reports the
    /// earliest update, then the earliest step in the list, then the lowest particle.
    pub fn update_window<M: Model + ?Sized>(&mut self, models: &[&M]) -> Result<Vec<Diagnostics>> {
        if let Some(model) = models.iter().find(|m| m.dim() != self.particles.dim()) {
            return Err(Error::Shape {
                what: "model dimension vs particle dimension".into(),
                expected: self.particles.dim().to_string(),
                got: model.dim().to_string(),
            });
        }
        if independent::is_independent(&self.steps) {
            return self.window_independent(models);
        }
        if let [model] = models {
            return self.update_coupled(*model).map(|d| vec![d]);
        }
        let (start, t0, last) = (
            self.particles.clone(),
            self.t,
            self.scratch.last_losses.clone(),
        );
        let diags: Result<Vec<Diagnostics>> =
            models.iter().map(|m| self.update_coupled(*m)).collect();
        if diags.is_err() {
            (self.particles, self.t, self.scratch.last_losses) = (start, t0, last);
        }
        diags
    }

    /// The particle-major window: every particle runs all updates on a copy of its row, then the
    /// log-weights are settled update by update; committed only if everything succeeded.
    fn window_independent<M: Model + ?Sized>(&mut self, models: &[&M]) -> Result<Vec<Diagnostics>> {
        let start = Instant::now();
        let plan = self.plan(models);
        let mut next = self.spare_buffer();
        let (steps, ctx) = (&self.steps, (self.seed, self.t));
        let rows = next.assign_rows(&self.particles, |i, x, d| {
            d.copy_from_slice(x);
            independent::run_row(steps, &plan, models, ctx, i, d)
        });
        let (traces, failure) = split_failure(rows);
        // Settle the updates before the earliest failing one: a non-finite log-weight there is the
        // earlier failure and is the one reported.
        let settled_updates = failure
            .as_ref()
            .map_or(models.len(), |f| f.at.0 - self.t - 1);
        let settled = self
            .settle(settled_updates, &plan, &traces)
            .and_then(|s| failure.map_or(Ok(s), |f| Err(f.error)));
        let (log_w, mut diags) = match settled {
            Ok(s) => s,
            Err(e) => {
                self.scratch.backup = Some(next);
                return Err(e);
            }
        };
        if let Some(lw) = log_w {
            next.log_weights_mut().copy_from_slice(&lw);
        }
        std::mem::swap(&mut self.particles, &mut next);
        self.scratch.backup = Some(next);
        if let Some(l) = self.scratch.pending_losses.take() {
            self.scratch.last_losses = l;
        }
        self.t += models.len();
        let seconds = start.elapsed().as_secs_f64() / models.len().max(1) as f64;
        diags.iter_mut().for_each(|d| d.seconds = seconds);
        Ok(diags)
    }

    /// Sub-move sizes and counts of every (update, step) of a window.
    fn plan<M: Model + ?Sized>(&self, models: &[&M]) -> Plan {
        let n = self.particles.len();
        let moves = models
            .iter()
            .flat_map(|model| {
                self.steps.iter().map(move |step| match step {
                    Step::Move(cfg) => {
                        let eta = cfg.step.resolve(n).0;
                        let k = substep_count(cfg.substeps, eta, *model);
                        (eta / k as f64, k)
                    }
                    _ => (0.0, 0),
                })
            })
            .collect();
        Plan {
            moves,
            steps: self.steps.len(),
            reweights: (self.steps.iter())
                .filter(|s| matches!(s, Step::Reweight(_)))
                .count(),
        }
    }

    /// The log-weights after each of the first `updates` updates of a window, from the particles'
    /// traces, with the arithmetic of [`Self::reweight`]; returns the final log-weights (if any
    /// reweight ran) and one [`Diagnostics`] per update (the last update's losses are left in
    /// `pending_losses` until the window commits).
    fn settle(
        &mut self,
        updates: usize,
        plan: &Plan,
        traces: &[RowTrace],
    ) -> Result<(Option<Vec<f64>>, Vec<Diagnostics>)> {
        let mut lw = self.particles.log_weights().map(<[f64]>::to_vec);
        let reweights: Vec<&Reweight> = (self.steps.iter())
            .filter_map(|s| match s {
                Step::Reweight(rw) => Some(rw),
                _ => None,
            })
            .collect();
        let evaluates = (self.steps.iter()).any(|s| matches!(s, Step::Move(_) | Step::Reweight(_)));
        let mut diags = Vec::with_capacity(updates);
        let mut last = Vec::new();
        for b in 0..updates {
            let t = self.t + b + 1;
            for (j, rw) in reweights.iter().enumerate() {
                let inc: Vec<f64> = (traces.iter())
                    .map(|tr| tr.increments[b * plan.reweights + j])
                    .collect();
                lw = Some(reweighted(lw.as_deref(), &inc, rw, t)?);
            }
            let mut d = Diagnostics {
                step: t,
                ess: lw.as_deref().map_or(traces.len() as f64, ess_of),
                substeps: (0..plan.steps).map(|k| plan.movement(b, k).1).sum(),
                ..Diagnostics::default()
            };
            if evaluates {
                last = traces.iter().map(|tr| tr.last[b]).collect();
                (d.loss_mean, d.loss_std) = mean_std(&last);
            }
            diags.push(d);
        }
        self.scratch.pending_losses = (evaluates && updates > 0).then_some(last);
        Ok((lw, diags))
    }

    /// One update of a filter whose particles interact (pair term or resampling).
    fn update_coupled<M: Model + ?Sized>(&mut self, model: &M) -> Result<Diagnostics> {
        let start = Instant::now();
        self.t += 1;
        let mut state = UpdateState::default();
        // The steps are taken out for the loop (each step borrows the filter mutably) and put back.
        let steps = std::mem::take(&mut self.steps);
        let result = steps
            .iter()
            .enumerate()
            .try_for_each(|(k, step)| self.apply(k, step, model, &mut state));
        self.steps = steps;
        if let Err(e) = result {
            if let (true, Some(backup)) = (state.saved, self.scratch.backup.as_mut()) {
                std::mem::swap(&mut self.particles, backup);
            }
            if let Some(lw) = state.log_w_before {
                self.particles.restore_log_weights(lw);
            }
            self.t -= 1;
            return Err(e);
        }
        let mut diag = state.diag;
        if let Some(l) = state.last_loss {
            let (mean, std) = mean_std(&l);
            diag.loss_mean = mean;
            diag.loss_std = std;
            self.scratch.last_losses = l;
        }
        diag.step = self.t;
        diag.ess = self.particles.ess();
        diag.seconds = start.elapsed().as_secs_f64();
        Ok(diag)
    }

    /// Step `k` of this update.
    fn apply<M: Model + ?Sized>(
        &mut self,
        k: usize,
        step: &Step,
        model: &M,
        st: &mut UpdateState,
    ) -> Result<()> {
        let key = ((self.t as u64) << 8) | k as u64;
        match step {
            Step::Propagate => self.propagate(model, key, st),
            Step::Jitter { sigma } => self.jitter(*sigma, key, st),
            Step::Move(cfg) => self.move_particles(cfg, model, st),
            Step::Reweight(rw) => self.reweight(rw, model, st),
            Step::Resample(cfg) => self.resample(cfg, key, st),
        }
    }

    /// Apply `f` to every particle with its own stream `(seed, key, i)`, then check finiteness.
    fn for_each_particle(
        &mut self,
        key: u64,
        what: &str,
        f: impl Fn(&mut [f64], &mut dyn rand::RngCore) + Sync,
    ) -> Result<()> {
        let (m, seed) = (self.particles.dim(), self.seed);
        self.particles
            .as_mut_slice()
            .par_chunks_mut(m)
            .enumerate()
            .for_each(|(i, row)| f(row, &mut stream(seed, key, i as u64)));
        check_finite(self.particles.as_slice(), m, what, self.t)
    }

    /// The backup buffer (its contents stale), or a fresh copy of the particles the first time: the
    /// target of a double-buffered change.
    fn spare_buffer(&mut self) -> ParticleSet {
        self.scratch
            .backup
            .take()
            .unwrap_or_else(|| self.particles.clone())
    }

    /// Keep the pre-update particles (once per update) before a step changes them in place, so a
    /// failure later in the update can restore them.
    fn save(&mut self, st: &mut UpdateState) {
        if st.saved {
            return;
        }
        match &mut self.scratch.backup {
            Some(b) => b.copy_from(&self.particles),
            None => self.scratch.backup = Some(self.particles.clone()),
        }
        st.saved = true;
    }

    fn propagate<M: Model + ?Sized>(
        &mut self,
        model: &M,
        key: u64,
        st: &mut UpdateState,
    ) -> Result<()> {
        if !model.has_transition() {
            return Ok(());
        }
        self.save(st);
        self.for_each_particle(key, "state after transition", |row, rng| {
            model.transition(row, rng)
        })
    }

    fn jitter(&mut self, sigma: f64, key: u64, st: &mut UpdateState) -> Result<()> {
        if sigma == 0.0 {
            return Ok(());
        }
        self.save(st);
        self.for_each_particle(key, "state after jitter", |row, rng| {
            jitter_row(sigma, row, rng)
        })
    }

    fn move_particles<M: Model + ?Sized>(
        &mut self,
        cfg: &MoveConfig,
        model: &M,
        st: &mut UpdateState,
    ) -> Result<()> {
        let (n, m) = (self.particles.len(), self.particles.dim());
        let (eta, gamma) = cfg.step.resolve(n);
        let pair_eps = cfg
            .pair
            .map(|p| interaction::epsilon(p.gamma.unwrap_or(gamma), m))
            .transpose()?;
        let k = substep_count(cfg.substeps, eta, model);
        let mut grads = std::mem::take(&mut self.scratch.grads);
        grads.resize(n * m, 0.0);
        let mut pair = std::mem::take(&mut self.scratch.pair);
        pair.resize(if pair_eps.is_some() { n * m } else { 0 }, 0.0);
        let result = self.move_with(
            model,
            st,
            (eta / k as f64, k, pair_eps),
            &mut grads,
            &mut pair,
        );
        self.scratch.grads = grads;
        self.scratch.pair = pair;
        result
    }

    /// `k` sub-moves of size `eta_k` (with the pair term when `pair_eps` is set), using the
    /// supplied gradient and pair-sum buffers.
    fn move_with<M: Model + ?Sized>(
        &mut self,
        model: &M,
        st: &mut UpdateState,
        (eta_k, k, pair_eps): (f64, usize, Option<f64>),
        grads: &mut [f64],
        pair: &mut [f64],
    ) -> Result<()> {
        let (n, m) = (self.particles.len(), self.particles.dim());
        let mut ratio_sum = 0.0;
        for s in 0..k {
            let losses = evaluate(model, &self.particles, Some(grads), self.t)?;
            if s == 0 {
                st.loss_before = Some(losses.clone());
            }
            if let Some(eps) = pair_eps {
                interaction::pair_sums(self.particles.as_slice(), n, m, eps, pair);
                let (mean, _) = mean_std(&losses);
                let c = (m as f64 - 2.0) / (eps * eps);
                ratio_sum += add_pair_term(grads, pair, &losses, mean, c, m);
            }
            self.gradient_step(grads, eta_k, st);
            check_move(self.particles.as_slice(), grads, m, self.t)?;
            st.last_loss = Some(losses);
        }
        st.diag.substeps += k;
        st.diag.pair_to_grad = ratio_sum / k as f64;
        Ok(())
    }

    /// `p ← p − η g`. The update's first change of the particles writes the new positions into the
    /// backup buffer and swaps, so the old positions become the backup without a copy.
    fn gradient_step(&mut self, grads: &[f64], eta: f64, st: &mut UpdateState) {
        if st.saved {
            self.particles
                .as_mut_slice()
                .par_iter_mut()
                .zip(grads.par_iter())
                .for_each(|(x, g)| *x -= eta * g);
            return;
        }
        let mut next = self.spare_buffer();
        next.assign_gradient_step(&self.particles, grads, eta);
        std::mem::swap(&mut self.particles, &mut next);
        self.scratch.backup = Some(next);
        st.saved = true;
    }

    fn reweight<M: Model + ?Sized>(
        &mut self,
        rw: &Reweight,
        model: &M,
        st: &mut UpdateState,
    ) -> Result<()> {
        let after = evaluate(model, &self.particles, None, self.t)?;
        let before = st.loss_before.as_deref();
        let increments = (after.iter().enumerate())
            .map(|(i, a)| increment(rw, before.map(|b| b[i]), *a))
            .collect::<Result<Vec<f64>>>()?;
        let lw = reweighted(self.particles.log_weights(), &increments, rw, self.t)?;
        if st.log_w_before.is_none() {
            st.log_w_before = Some(self.particles.log_weights().map(<[f64]>::to_vec));
        }
        self.particles.log_weights_mut().copy_from_slice(&lw);
        st.last_loss = Some(after);
        Ok(())
    }

    fn resample(&mut self, cfg: &ResampleConfig, key: u64, st: &mut UpdateState) -> Result<()> {
        let n = self.particles.len();
        let due = match cfg.when {
            ResampleWhen::Always => true,
            ResampleWhen::EssBelow(tau) => self.particles.ess() < tau * n as f64,
        };
        if !due || self.particles.log_weights().is_none() {
            return Ok(());
        }
        let w = self.particles.weights();
        let idx = resample::resample(cfg.scheme, &w, n, &mut stream(self.seed, key, u64::MAX))?;
        self.save(st);
        self.particles.select(&idx);
        st.diag.resampled = true;
        self.jitter(cfg.jitter, key ^ (1 << 7), st)
    }
}

/// The rows' traces, and the failure that the update-by-update schedule would meet first as far as
/// rows can tell — earliest update, then earliest step, then lowest particle — so that the reported
/// failure does not depend on the thread schedule.
fn split_failure(
    rows: Vec<(RowTrace, Option<independent::RowFailure>)>,
) -> (Vec<RowTrace>, Option<independent::RowFailure>) {
    let (mut traces, mut failure) = (Vec::with_capacity(rows.len()), None);
    for (trace, row_failure) in rows {
        traces.push(trace);
        if let Some(f) = row_failure {
            let earlier = failure
                .as_ref()
                .is_none_or(|g: &independent::RowFailure| f.at < g.at);
            if earlier {
                failure = Some(f);
            }
        }
    }
    (traces, failure)
}

/// `ℓ_i − inc_i/T`, normalised by log-sum-exp (`ℓ = 0` for an unweighted set); an error names the
/// first non-finite log-weight, so nothing is committed unless all are finite.
fn reweighted(lw: Option<&[f64]>, increments: &[f64], rw: &Reweight, t: usize) -> Result<Vec<f64>> {
    let (Reweight::Likelihood { temperature } | Reweight::Trapezoid { temperature }) = rw;
    let mut lw = lw.map_or_else(|| vec![0.0; increments.len()], <[f64]>::to_vec);
    lw.iter_mut()
        .zip(increments)
        .for_each(|(l, inc)| *l -= inc / temperature);
    normalize_log(&mut lw);
    check_finite(&lw, 1, "log-weight", t)?;
    Ok(lw)
}

/// `K = ⌈η·Lip⌉` (at least 1) for [`Substeps::Auto`].
fn substep_count<M: Model + ?Sized>(rule: Substeps, eta: f64, model: &M) -> usize {
    match rule {
        Substeps::Fixed(k) => k.max(1),
        Substeps::Auto => model
            .gradient_lipschitz()
            .map(|lip| (eta * lip).ceil().max(1.0) as usize)
            .unwrap_or(1),
    }
}

/// Losses of all particles (and gradients into `grads` when given), in parallel; errors name the
/// first non-finite particle.
fn evaluate<M: Model + ?Sized>(
    model: &M,
    p: &ParticleSet,
    grads: Option<&mut [f64]>,
    t: usize,
) -> Result<Vec<f64>> {
    let m = p.dim();
    let rows = p.as_slice().par_chunks(m).enumerate();
    let losses: Vec<f64> = match grads {
        Some(g) => {
            let l: Vec<f64> = rows
                .zip(g.par_chunks_mut(m))
                .map(|((i, x), gi)| model.particle_loss_grad(i, x, gi))
                .collect();
            check_finite(&l, 1, "loss", t)?;
            l
        }
        None => rows.map(|(i, x)| model.particle_loss(i, x)).collect(),
    };
    check_finite(&losses, 1, "loss", t)?;
    Ok(losses)
}

/// Add `c · L̃_i · S_i` to each gradient row; returns `Σ_i ‖c L̃_i S_i‖ / ‖∇L_i‖ / n`.
fn add_pair_term(
    grads: &mut [f64],
    pair: &[f64],
    losses: &[f64],
    mean: f64,
    c: f64,
    m: usize,
) -> f64 {
    let ratios: Vec<f64> = grads
        .par_chunks_mut(m)
        .zip(pair.par_chunks(m))
        .zip(losses.par_iter())
        .map(|((g, s), l)| {
            let scale = c * (l - mean);
            let gnorm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
            let pnorm = scale.abs() * s.iter().map(|v| v * v).sum::<f64>().sqrt();
            g.iter_mut().zip(s).for_each(|(gk, sk)| *gk += scale * sk);
            if gnorm > 0.0 {
                pnorm / gnorm
            } else {
                0.0
            }
        })
        .collect();
    ratios.iter().sum::<f64>() / ratios.len() as f64
}

/// After a move: a non-finite position is reported as a non-finite gradient when the gradient row
/// of that particle is (0·∞ and η·NaN propagate into the position, so one pass checks both).
fn check_move(state: &[f64], grads: &[f64], m: usize, t: usize) -> Result<()> {
    check_finite(state, m, "state after move", t).map_err(|e| match e {
        Error::NonFinite { particle, .. } => {
            let row = &grads[particle * m..(particle + 1) * m];
            match row.iter().find(|g| !g.is_finite()) {
                Some(&g) => Error::NonFinite {
                    what: "gradient".into(),
                    step: t,
                    particle,
                    value: g,
                },
                None => e,
            }
        }
        other => other,
    })
}

/// Whether every value is finite ([`row_finite`] in parallel over chunks).
fn all_finite(buf: &[f64]) -> bool {
    buf.par_chunks(1 << 14).all(row_finite)
}

fn check_finite(buf: &[f64], m: usize, what: &str, t: usize) -> Result<()> {
    if all_finite(buf) {
        return Ok(());
    }
    match buf.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(k) => Err(Error::NonFinite {
            what: what.into(),
            step: t,
            particle: k / m,
            value: buf[k],
        }),
    }
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

fn validate_step(step: &Step) -> Result<()> {
    let positive = |name: &str, v: f64| {
        if v > 0.0 && v.is_finite() {
            Ok(())
        } else {
            Err(Error::param(name, v, "must be finite and positive"))
        }
    };
    match step {
        Step::Jitter { sigma } if !(*sigma >= 0.0 && sigma.is_finite()) => Err(Error::param(
            "jitter sigma",
            sigma,
            "must be finite and ≥ 0",
        )),
        Step::Reweight(
            Reweight::Likelihood { temperature } | Reweight::Trapezoid { temperature },
        ) => positive("temperature", *temperature),
        Step::Resample(ResampleConfig {
            when: ResampleWhen::EssBelow(tau),
            ..
        }) if !(0.0..=1.0).contains(tau) => {
            Err(Error::param("ess_threshold", tau, "must lie in [0, 1]"))
        }
        Step::Move(MoveConfig {
            step: StepSize::Eta(v) | StepSize::Gamma(v) | StepSize::GammaPerParticle(v),
            ..
        }) if !(*v >= 0.0 && v.is_finite()) => {
            Err(Error::param("move step size", v, "must be finite and ≥ 0"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::filter::presets::{FilterKind, FilterSpec};
    use crate::core::filter::steps::{PairConfig, StepSize};
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

    #[test]
    fn sir_matches_the_exact_gaussian_posterior() {
        // 2-D: prior N(0, I), y = Hx + N(0, r I). Exact posterior: Λ = I + HᵀH/r, μ = Λ⁻¹Hᵀy/r.
        let model = LinearObs {
            h: vec![vec![1.0, 0.5], vec![0.0, 1.0]],
            y: vec![0.8, -0.4],
            r: 0.5,
            m: 2,
        };
        let lambda = nalgebra::Matrix2::new(1.0 + 2.0, 1.0, 1.0, 1.0 + 2.5);
        let cov = lambda.try_inverse().unwrap();
        let mu = cov * nalgebra::Vector2::new(1.6, 0.0);
        let mut spec = FilterSpec::new(FilterKind::Sir, 50_000, 11);
        spec.ess_threshold = 0.0; // keep the weights: estimate the posterior by importance sampling
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
        spec.gamma = Some(f64::NAN);
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
