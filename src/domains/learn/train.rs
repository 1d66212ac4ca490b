//! The one training loop: tasks in sequence, minibatches in seeded order, the method's total loss
//! handed to the optimizer (SGD or WPF), evaluation of every readout after each task.

use crate::core::error::{Error, Result};
use crate::core::filter::rng::stream;
use crate::core::filter::PairConfig;
use crate::core::filter::ParticleSet;
use crate::domains::learn::data::{Scenario, TaskData};
use crate::domains::learn::methods::{Hyper, Method, MethodState};
use crate::domains::learn::metrics::accuracies;
use crate::domains::learn::mlp::Mlp;
use crate::domains::learn::model::Batch;
use crate::domains::learn::wpf::{init_particles, Optimizer, Readout};
use rand::seq::SliceRandom;
use std::time::Instant;

/// Settings of one training run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Scenario (decides targets and logit masks).
    pub scenario: Scenario,
    /// Step size `η`.
    pub eta: f64,
    /// Passes over each task.
    pub epochs: usize,
    /// Minibatch size `B`.
    pub batch: usize,
    /// Use the WPF with this many particles; `None` = a single network trained by SGD.
    pub particles: Option<usize>,
    /// WPF likelihood temperature `T`.
    pub temperature: f64,
    /// Optional RF-PF pair term in the WPF move.
    pub pair: Option<PairConfig>,
    /// Method hyper-parameters.
    pub hyper: Hyper,
}

/// What one run produced.
#[derive(Clone, Debug, Default)]
pub struct RunResult {
    /// `acc[r][t][j]`: readout `Readout::ALL[r]`, after training the `t`-th task, on the `j`-th task.
    pub acc: [Vec<Vec<f64>>; 3],
    /// ESS after every update.
    pub ess: Vec<f64>,
    /// Wall time of the run.
    pub seconds: f64,
    /// Number of particles.
    pub particles: usize,
    /// Final normalised log-weights (uniform for SGD).
    pub log_weights: Vec<f64>,
    /// Final particles, row-major.
    pub final_particles: Vec<f64>,
}

impl RunResult {
    /// The accuracy matrix of `readout`.
    pub fn matrix(&self, readout: Readout) -> &[Vec<f64>] {
        let r = Readout::ALL.iter().position(|&x| x == readout).unwrap_or(0);
        &self.acc[r]
    }
}

/// The minibatch of `task` at sample indices `idx`.
pub fn make_batch(task: &TaskData, idx: &[usize], scenario: Scenario) -> Batch {
    let range = scenario.logit_range(task.task);
    let mut b = Batch::default();
    for &i in idx {
        b.push(task.row(i), task.y[i], range);
    }
    b
}

/// One epoch's minibatches as one optimizer window (the methods whose state does not change
/// between steps): every batch's model built up front.
fn epoch_window(
    opt: &mut Optimizer,
    state: &MethodState,
    net: &Mlp,
    batches: &[Batch],
) -> Result<Vec<f64>> {
    let models: Vec<_> = batches.iter().map(|b| state.model(net, b)).collect();
    let refs: Vec<_> = models.iter().collect();
    opt.step_window(&refs)
}

/// Train `method` over `train` (tasks in training order) from the initial network `base`,
/// evaluating on `test` (same order) after each task. Batches of task `j`, epoch `e` are shuffled
/// by stream `(seed, 2 + j, MAX − e)`; particles are initialised from `(seed, 1, i)`.
pub fn train_sequence(
    net: &Mlp,
    base: &[f64],
    train: &[TaskData],
    test: &[TaskData],
    method: Method,
    cfg: &RunConfig,
    seed: u64,
) -> Result<RunResult> {
    if cfg.batch == 0 {
        return Err(Error::param("batch", 0, "must be positive"));
    }
    let start = Instant::now();
    let mut opt = match cfg.particles {
        Some(n) => {
            let set = init_particles(net, base, n, seed)?;
            Optimizer::wpf(cfg.eta, cfg.temperature, cfg.pair, set, seed)?
        }
        None => Optimizer::sgd(
            cfg.eta,
            ParticleSet::from_vec(1, base.len(), base.to_vec())?,
        )?,
    };
    let n = opt.particles().len();
    let mut state = MethodState::new(method, cfg.hyper.clone(), cfg.scenario, cfg.eta, seed);
    let mut out = RunResult {
        particles: n,
        ..Default::default()
    };
    for (j, task) in train.iter().enumerate() {
        state.begin_task(opt.particles());
        for e in 0..cfg.epochs {
            let mut idx: Vec<usize> = (0..task.len()).collect();
            idx.shuffle(&mut stream(seed, 2 + j as u64, u64::MAX - e as u64));
            let batches: Vec<Batch> = (idx.chunks(cfg.batch).enumerate())
                .map(|(b, chunk)| {
                    let step = (out.ess.len() + b) as u64;
                    state.training_batch(make_batch(task, chunk, cfg.scenario), step)
                })
                .collect();
            if state.tracks_steps() {
                for batch in &batches {
                    let before = opt.particles().as_slice().to_vec();
                    out.ess.push(opt.step(&state.model(net, batch))?);
                    state.after_step(&before, opt.particles().as_slice());
                }
            } else {
                out.ess
                    .extend(epoch_window(&mut opt, &state, net, &batches)?);
            }
        }
        state.end_task(net, opt.particles_mut(), task)?;
        let row: Vec<[f64; 3]> = test
            .iter()
            .map(|t| accuracies(net, opt.particles(), t, cfg.scenario))
            .collect();
        for (r, acc) in out.acc.iter_mut().enumerate() {
            acc.push(row.iter().map(|a| a[r]).collect());
        }
    }
    out.seconds = start.elapsed().as_secs_f64();
    let w = opt.particles().weights();
    out.log_weights = w.iter().map(|v| v.ln()).collect();
    out.final_particles = opt.particles().as_slice().to_vec();
    Ok(out)
}
