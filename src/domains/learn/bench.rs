//! Speed of the WPF against single-model SGD: the bound is
//! `t_WPF(N particles, 1 thread) ≤ 1.4 · N · t_SGD(1 network)`, and `t_WPF` should fall with cores.

use crate::core::error::{Error, Result};
use crate::core::filter::rng::stream;
use crate::core::filter::ParticleSet;
use crate::domains::learn::data::{self, Scenario};
use crate::domains::learn::methods::{Hyper, Method, MethodState};
use crate::domains::learn::mlp::{Head, Mlp};
use crate::domains::learn::model::Batch;
use crate::domains::learn::train::make_batch;
use crate::domains::learn::wpf::{init_particles, Optimizer};
use std::time::Instant;

/// Measured times of one pass over the batches (seconds, best of the repetitions).
#[derive(Clone, Debug, serde::Serialize)]
pub struct SpeedReport {
    /// Particles N.
    pub particles: usize,
    /// Minibatches in one pass.
    pub batches: usize,
    /// Parameters per network.
    pub params: usize,
    /// One network, SGD, one thread (mean of N passes).
    pub sgd_seconds: f64,
    /// The same work as one WPF pass done by hand, one thread, particle by particle: per batch
    /// `∇L`, the step, `L(after)` — the model's share of the WPF cost, without the engine.
    pub model_seconds: f64,
    /// `(threads, seconds)` of the WPF pass.
    pub wpf_seconds: Vec<(usize, f64)>,
    /// The WPF pass on one thread with one filter update per minibatch (batch-major: the whole
    /// `N × params` buffer streams through memory every batch) — the schedule the particle-major
    /// windows replace, for comparison in the same process.
    pub wpf_batch_major_seconds: f64,
    /// `t_WPF(1 thread) / (N · t_SGD)`: at most 1.4 by the goal.
    pub ratio_one_thread: f64,
}

/// Wall-clock seconds of one call of `f`.
fn timed(f: impl FnOnce() -> Result<()>) -> Result<f64> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed().as_secs_f64())
}

/// One pass over the tasks' minibatches as the training loop runs it: one optimizer window per
/// task; or, with `batch_major`, one update per minibatch.
fn pass(
    opt: &mut Optimizer,
    (net, state): (&Mlp, &MethodState),
    windows: &[Vec<Batch>],
    batch_major: bool,
) -> Result<()> {
    for batches in windows {
        let models: Vec<_> = batches.iter().map(|b| state.model(net, b)).collect();
        let refs: Vec<_> = models.iter().collect();
        let size = if batch_major { 1 } else { refs.len().max(1) };
        for window in refs.chunks(size) {
            opt.step_window(window)?;
        }
    }
    Ok(())
}

/// Time one pass of SplitDigits-sized minibatches (domain-IL, 64-100-100-2, batch 8, generated data
/// of the digits' size) for SGD on one network and for the WPF with `n` particles on each thread
/// count in `threads`.
pub fn speed(n: usize, threads: &[usize], reps: usize) -> Result<SpeedReport> {
    let scenario = Scenario::Domain;
    let net = Mlp::new(&[64, 100, 100, 2], Head::Linear)?;
    let tasks = data::split_tasks(&data::generated(0, 135), scenario);
    // One window per task, as the training loop runs one per task and epoch.
    let windows: Vec<Vec<Batch>> = tasks
        .iter()
        .map(|t| {
            let idx: Vec<usize> = (0..t.len()).collect();
            idx.chunks(8).map(|c| make_batch(t, c, scenario)).collect()
        })
        .collect();
    let mut base = vec![0.0; net.n_params()];
    net.init(&mut stream(0, 0, 0), &mut base);
    let hyper = Hyper {
        ewc_lambda: 0.0,
        si_c: 0.0,
        si_xi: 0.1,
        lwf_lambda: 0.0,
        lwf_temp: 1.0,
        replay_per_task: 0,
    };
    let state = MethodState::new(Method::Sgd, hyper, scenario, 0.01, 0);
    let pool = |t: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .map_err(|e| Error::Other(format!("thread pool: {e}")))
    };
    let single = pool(1)?;
    let pools = (threads.iter())
        .map(|&t| Ok((t, pool(t)?)))
        .collect::<Result<Vec<_>>>()?;
    let set = init_particles(&net, &base, n, 0)?;
    // N separate single-network passes, timed together (same exposure to machine load as the WPF).
    let sgd_passes = || {
        single.install(|| {
            for _ in 0..n {
                let set = ParticleSet::from_vec(1, base.len(), base.clone())?;
                let mut opt = Optimizer::sgd(0.01, set)?;
                pass(&mut opt, (&net, &state), &windows, true)?;
            }
            Ok(())
        })
    };
    let m = base.len();
    let model_work = || {
        let mut p = set.as_slice().to_vec();
        let mut g = vec![0.0; m];
        for x in p.chunks_exact_mut(m) {
            for b in windows.iter().flatten() {
                let model = state.model(&net, b);
                model.eval(x, &[], Some(&mut g));
                x.iter_mut()
                    .zip(g.iter())
                    .for_each(|(xk, gk)| *xk -= 0.01 * gk);
                std::hint::black_box(model.eval(x, &[], None));
            }
        }
        Ok(())
    };
    let wpf_pass = |p: &rayon::ThreadPool, batch_major: bool| {
        p.install(|| {
            let mut opt = Optimizer::wpf(0.01, 1.0, None, set.clone(), 0)?;
            pass(&mut opt, (&net, &state), &windows, batch_major)
        })
    };
    // Repetitions interleave all measurements, so a change in machine load hits every one of them;
    // each keeps its best time.
    let (mut sgd_seconds, mut model_seconds, mut wpf_batch_major_seconds) =
        (f64::INFINITY, f64::INFINITY, f64::INFINITY);
    let mut wpf_seconds: Vec<(usize, f64)> = threads.iter().map(|&t| (t, f64::INFINITY)).collect();
    for _ in 0..reps.max(1) {
        sgd_seconds = sgd_seconds.min(timed(sgd_passes)? / n as f64);
        model_seconds = model_seconds.min(timed(model_work)?);
        for ((_, best), (_, p)) in wpf_seconds.iter_mut().zip(&pools) {
            *best = best.min(timed(|| wpf_pass(p, false))?);
        }
        wpf_batch_major_seconds = wpf_batch_major_seconds.min(timed(|| wpf_pass(&single, true))?);
    }
    let one = wpf_seconds
        .iter()
        .find(|(t, _)| *t == 1)
        .map_or(f64::NAN, |(_, s)| *s);
    Ok(SpeedReport {
        particles: n,
        batches: windows.iter().map(Vec::len).sum(),
        params: net.n_params(),
        sgd_seconds,
        model_seconds,
        ratio_one_thread: one / (n as f64 * sgd_seconds),
        wpf_seconds,
        wpf_batch_major_seconds,
    })
}
