//! Continual-learning methods as per-particle state around one training loop: plain SGD, EWC, SI,
//! LwF and experience replay. Each works with a single network or with every particle of the PF,
//! each particle keeping its own regulariser state (anchors, importances, teacher).

use crate::core::error::{Error, Result};
use crate::core::filter::rng::stream;
use crate::core::filter::ParticleSet;
use crate::domains::learn::data::{Scenario, TaskData};
use crate::domains::learn::mlp::Mlp;
use crate::domains::learn::model::{Batch, Distill, LearnModel, StateLayout};
use rand::Rng;
use rayon::prelude::*;

/// A continual-learning method (the optimizer — SGD or PF — is chosen separately).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Method {
    /// Plain cross-entropy.
    Sgd,
    /// Online EWC: `Σ_k (λ/2) F_k (θ_k − θ*_k)²`, `F` the diagonal empirical Fisher summed over tasks.
    Ewc,
    /// Synaptic intelligence: `c Σ_k Ω_k (θ_k − θ*_k)²`, `Ω += ω/(Δθ² + ξ)`.
    Si,
    /// Learning without forgetting: distillation from the previous-task network.
    Lwf,
    /// Experience replay: each batch is joined by as many samples drawn from a per-task memory.
    Replay,
}

impl Method {
    /// Short lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Method::Sgd => "sgd",
            Method::Ewc => "ewc",
            Method::Si => "si",
            Method::Lwf => "lwf",
            Method::Replay => "replay",
        }
    }
}

/// Method hyper-parameters.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Hyper {
    /// EWC strength `λ`.
    pub ewc_lambda: f64,
    /// SI strength `c`.
    pub si_c: f64,
    /// SI damping `ξ`.
    pub si_xi: f64,
    /// LwF distillation weight `λ_KD`.
    pub lwf_lambda: f64,
    /// LwF temperature `T`.
    pub lwf_temp: f64,
    /// Replay memory per task (samples).
    pub replay_per_task: usize,
}

/// Per-run state of a method for `n` particles of dimension `m`.
pub struct MethodState {
    method: Method,
    hyper: Hyper,
    scenario: Scenario,
    eta: f64,
    seed: u64,
    si_path: Vec<f64>,
    si_start: Vec<f64>,
    si_omega: Vec<f64>,
    /// Whether a task has ended (the regulariser state in the payload is in force).
    anchored: bool,
    memory: Batch,
}

impl MethodState {
    /// Fresh state (no task seen yet); `eta` is the step size the SI path integral divides by.
    pub fn new(method: Method, hyper: Hyper, scenario: Scenario, eta: f64, seed: u64) -> Self {
        Self {
            method,
            hyper,
            scenario,
            eta,
            seed,
            si_path: Vec::new(),
            si_start: Vec::new(),
            si_omega: Vec::new(),
            anchored: false,
            memory: Batch::default(),
        }
    }

    /// Whether [`MethodState::after_step`] needs the parameters before each step.
    pub fn tracks_steps(&self) -> bool {
        self.method == Method::Si
    }

    /// Start a task: SI resets its path integral `ω = 0` and remembers `θ_start`.
    pub fn begin_task(&mut self, particles: &ParticleSet) {
        if self.method == Method::Si {
            self.si_start = particles.as_slice().to_vec();
            self.si_path = vec![0.0; self.si_start.len()];
        }
    }

    /// After one step `θ → θ'`: SI accumulates `ω_k += −g_k Δθ_k = Δθ_k²/η` (exact for the plain
    /// gradient move `Δθ = −η g`; with the RF-PF pair term `g` is the effective drift `−Δθ/η`).
    pub fn after_step(&mut self, before: &[f64], after: &[f64]) {
        if self.method == Method::Si {
            let inv = 1.0 / self.eta;
            for ((w, b), a) in self.si_path.iter_mut().zip(before).zip(after) {
                let d = a - b;
                *w += d * d * inv;
            }
        }
    }

    /// Where this method keeps per-particle state in the payload of particles of dimension `m`.
    pub fn layout(&self, m: usize) -> StateLayout {
        StateLayout {
            m,
            penalty: matches!(self.method, Method::Ewc | Method::Si),
            teacher: self.method == Method::Lwf,
        }
    }

    /// End a task: EWC adds `(λ/2)·F` and re-anchors, SI adds `c·ω/(Δ² + ξ)` and re-anchors,
    /// LwF snapshots the teacher — each particle in its own payload row — and replay stores
    /// `replay_per_task` random samples of the task.
    pub fn end_task(
        &mut self,
        net: &Mlp,
        particles: &mut ParticleSet,
        task: &TaskData,
    ) -> Result<()> {
        let (m, layout) = (particles.dim(), self.layout(particles.dim()));
        if particles.payload_width() != layout.width() {
            particles.set_payload(layout.width(), vec![0.0; particles.len() * layout.width()])?;
        }
        match self.method {
            Method::Sgd => {}
            Method::Ewc => {
                let fisher = empirical_fisher(net, particles, task, self.scenario)?;
                let scale = 0.5 * self.hyper.ewc_lambda;
                update_states(particles, layout, |i, theta, state| {
                    if let Some((anchor, strength)) = layout.penalty_mut(state) {
                        anchor.copy_from_slice(theta);
                        let f = &fisher[i * m..(i + 1) * m];
                        strength
                            .iter_mut()
                            .zip(f)
                            .for_each(|(s, f)| *s += scale * f);
                    }
                });
            }
            Method::Si => {
                let (c, xi) = (self.hyper.si_c, self.hyper.si_xi);
                let theta = particles.as_slice();
                self.si_omega.resize(theta.len(), 0.0);
                let path = self.si_path.iter().zip(&self.si_start).zip(theta);
                for (om, ((w, s), t)) in self.si_omega.iter_mut().zip(path) {
                    *om += w / ((t - s) * (t - s) + xi);
                }
                let omega = &self.si_omega;
                update_states(particles, layout, |i, theta, state| {
                    if let Some((anchor, strength)) = layout.penalty_mut(state) {
                        anchor.copy_from_slice(theta);
                        let o = &omega[i * m..(i + 1) * m];
                        strength.iter_mut().zip(o).for_each(|(s, o)| *s = c * o);
                    }
                });
            }
            Method::Lwf => update_states(particles, layout, |_, theta, state| {
                if let Some(t) = layout.teacher_mut(state) {
                    t.copy_from_slice(theta);
                }
            }),
            Method::Replay => {
                let mut rng = stream(self.seed, 0x7e, task.task as u64);
                let range = self.scenario.logit_range(task.task);
                for _ in 0..self.hyper.replay_per_task.min(task.len()) {
                    let j = rng.random_range(0..task.len());
                    self.memory.push(task.row(j), task.y[j], range);
                }
            }
        }
        self.anchored = true;
        Ok(())
    }

    /// The training batch for step `step`: replay appends `len(current)` memory samples drawn with
    /// replacement; other methods use the current batch as is.
    pub fn training_batch(&self, mut current: Batch, step: u64) -> Batch {
        if self.method == Method::Replay && !self.memory.is_empty() {
            let mut rng = stream(self.seed, 0x7f, step);
            let dim = self.memory.x.len() / self.memory.len();
            for _ in 0..current.len() {
                let j = rng.random_range(0..self.memory.len());
                let x = &self.memory.x[j * dim..(j + 1) * dim];
                current.push(x, self.memory.y[j], self.memory.range[j]);
            }
        }
        current
    }

    /// The filter's model for this batch: the penalty and teacher read from each particle's
    /// payload once the first task has ended.
    pub fn model<'a>(&self, net: &'a Mlp, batch: &'a Batch) -> LearnModel<'a> {
        let layout = match self.anchored {
            true => self.layout(net.n_params()),
            false => StateLayout::default(),
        };
        LearnModel {
            net,
            batch,
            distill: (layout.teacher).then_some(Distill {
                lambda: self.hyper.lwf_lambda,
                temperature: self.hyper.lwf_temp,
            }),
            layout,
        }
    }
}

/// `f(i, θ_i, payload_i)` for every particle, in parallel.
fn update_states(
    particles: &mut ParticleSet,
    layout: StateLayout,
    f: impl Fn(usize, &[f64], &mut [f64]) + Sync,
) {
    let (m, w) = (particles.dim(), layout.width());
    let theta = particles.as_slice().to_vec();
    particles
        .payload_mut_slice()
        .par_chunks_mut(w.max(1))
        .enumerate()
        .for_each(|(i, state)| f(i, &theta[i * m..(i + 1) * m], state));
}

/// Diagonal empirical Fisher per particle: `F_ik = (1/|D|) Σ_{s∈D} (∂/∂θ_k log p(y_s | x_s, θ_i))²`,
/// `n × m`, from one-sample gradients of the task's training data.
pub fn empirical_fisher(
    net: &Mlp,
    particles: &ParticleSet,
    task: &TaskData,
    scenario: Scenario,
) -> Result<Vec<f64>> {
    let m = particles.dim();
    if task.is_empty() {
        return Err(Error::param(
            "task",
            task.task,
            "empty task: no data for the Fisher",
        ));
    }
    let range = scenario.logit_range(task.task);
    let mut fisher = vec![0.0; particles.as_slice().len()];
    fisher.par_chunks_mut(m).enumerate().for_each(|(i, f)| {
        let theta = particles.particle(i);
        let mut g = vec![0.0; m];
        for s in 0..task.len() {
            let mut b = Batch::default();
            b.push(task.row(s), task.y[s], range);
            let model = LearnModel {
                net,
                batch: &b,
                distill: None,
                layout: StateLayout::default(),
            };
            model.eval(theta, &[], Some(&mut g));
            f.iter_mut().zip(&g).for_each(|(fk, gk)| *fk += gk * gk);
        }
        let inv = 1.0 / task.len() as f64;
        f.iter_mut().for_each(|fk| *fk *= inv);
    });
    Ok(fisher)
}
