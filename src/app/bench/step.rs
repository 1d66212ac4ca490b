//! `hdpf bench step`: wall-clock time of one filter update on the localization model, beside a
//! baseline run in the same process.
//!
//! Prints one JSON line (see [`StepReport`]). The baseline is the pair-free gradient filter
//! (`grad`: the same model, particles, sub-moves and observations, without the pair term), timed
//! in blocks of [`BLOCK`] updates alternating with the filter's, so that the machine's drift
//! reaches both alike. For rfpf, `ratio_to_grad` is then the cost of the pair term (and of the
//! step-by-step schedule it needs: `grad` runs in particle-major windows); for the other filters it
//! compares different algorithms. With `--filter grad` there is no baseline. The criterion
//! benches in `benches/filters.rs` time the same [`StepBench::advance`].

use crate::app::bench::{check_list, parse_substeps, sub_seed};
use crate::core::error::{Error, Result};
use crate::core::filter::rng::{stream, StreamRng};
use crate::core::filter::{Diagnostics, Filter, FilterKind, FilterSpec, Substeps};
use crate::domains::bench::models::{normal_vector, LocalizationModel};
use std::fmt;
use std::time::Instant;

/// Flags of `hdpf bench step`.
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct StepArgs {
    /// Filter: rfpf, grad, sir or mcl.
    #[arg(long, default_value_t = FilterKind::Rfpf)]
    pub filter: FilterKind,
    /// Particle count n.
    #[arg(long, default_value_t = 1000)]
    pub particles: usize,
    /// State dimension m.
    #[arg(long, default_value_t = 10)]
    pub dim: usize,
    /// Timed updates (after one untimed warm-up update).
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// Gradient sub-moves per update for rfpf/grad: a count or `auto`.
    #[arg(long, default_value = "1", value_parser = parse_substeps)]
    pub substeps: Substeps,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// The result line of `hdpf bench step`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StepReport {
    /// Filter.
    pub filter: FilterKind,
    /// Particle count n.
    pub particles: usize,
    /// State dimension m.
    pub dim: usize,
    /// Mean wall-clock milliseconds per update (observation + filter update).
    pub ms_per_step: f64,
    /// Median of the updates' wall-clock milliseconds.
    pub ms_per_step_median: f64,
    /// The baseline's (`grad`, interleaved in blocks) median milliseconds per update; `null` with
    /// `--filter grad`.
    pub grad_ms_per_step_median: Option<f64>,
    /// `ms_per_step_median / grad_ms_per_step_median`; `null` with `--filter grad`.
    pub ratio_to_grad: Option<f64>,
    /// Pair-term work of one rfpf update in millions of flops: `K · (7m + 7) · n(n−1)/2` for `K`
    /// sub-moves (per pair `m` differences, `2m` for `d²`, about 7 for the weight `(ε/(d + ε))^m`
    /// and `2m` for each side's product and sum: 77 at m = 10); 0 for filters other than rfpf.
    pub pair_mflop: f64,
    /// `pair_mflop` over the median update time: a lower bound of the pair kernel's rate.
    pub pair_gflops: f64,
    /// Worker threads.
    pub threads: usize,
    /// The 1-minute load average when the run began (`/proc/loadavg`; `null` in the JSON where
    /// unavailable).
    pub load: f64,
}

/// Updates per block of the interleaved timing.
pub const BLOCK: usize = 10;

impl fmt::Display for StepReport {
    /// The report as one JSON line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&json)
    }
}

/// A filter on the localization model, fed a fresh random direction at every [`Self::advance`].
pub struct StepBench {
    model: LocalizationModel,
    filter: Filter,
    rng: StreamRng,
}

impl StepBench {
    /// Truth, directions and prior particles from `seed`; `substeps` for rfpf/grad.
    pub fn new(
        kind: FilterKind,
        particles: usize,
        dim: usize,
        substeps: Substeps,
        seed: u64,
    ) -> Result<Self> {
        check_list("dim", &[dim], 1)?;
        let mut rng = stream(sub_seed(seed, &[dim as u64]), 0, 0);
        let model = LocalizationModel::new(normal_vector(&mut rng, dim).as_slice().to_vec())?;
        let mut spec = FilterSpec::new(
            kind,
            particles,
            sub_seed(seed, &[dim as u64, particles as u64]),
        );
        spec.preset = spec.preset.with_substeps(substeps);
        let filter = spec.build(&model)?;
        Ok(Self { model, filter, rng })
    }

    /// Observe a new random direction and update the filter once.
    pub fn advance(&mut self) -> Result<Diagnostics> {
        let x = normal_vector(&mut self.rng, self.model.truth().len());
        self.model.observe(x.as_slice())?;
        self.filter.update(&self.model)
    }

    /// The filter.
    pub fn filter(&self) -> &Filter {
        &self.filter
    }
}

/// Time `args.steps` updates of the filter and of the `grad` baseline, each after one warm-up
/// update, in alternating blocks of [`BLOCK`].
pub fn run(args: &StepArgs) -> Result<StepReport> {
    if args.steps == 0 {
        return Err(Error::param("steps", 0, "need at least one timed step"));
    }
    let load = load_average();
    let bench = |kind| StepBench::new(kind, args.particles, args.dim, args.substeps, args.seed);
    let mut benches = vec![bench(args.filter)?];
    if args.filter != FilterKind::Grad {
        benches.push(bench(FilterKind::Grad)?);
    }
    let mut times = vec![Vec::new(); benches.len()];
    // Sub-moves per update (the last warm-up update's count: `auto` fixes it per model).
    let substeps = benches[0].advance()?.substeps;
    for b in benches.iter_mut().skip(1) {
        b.advance()?;
    }
    while times[0].len() < args.steps {
        for (b, t) in benches.iter_mut().zip(times.iter_mut()) {
            for _ in 0..BLOCK.min(args.steps - t.len()) {
                let start = Instant::now();
                b.advance()?;
                t.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    let n = args.particles as f64;
    let pair_mflop = match args.filter {
        FilterKind::Rfpf => {
            substeps as f64 * (7.0 * args.dim as f64 + 7.0) * n * (n - 1.0) / 2.0 / 1e6
        }
        _ => 0.0,
    };
    let ms = crate::core::stats::median(&times[0]);
    let grad = times.get(1).map(|t| crate::core::stats::median(t));
    Ok(StepReport {
        filter: args.filter,
        particles: args.particles,
        dim: args.dim,
        ms_per_step: times[0].iter().sum::<f64>() / args.steps as f64,
        ms_per_step_median: ms,
        grad_ms_per_step_median: grad,
        ratio_to_grad: grad.map(|g| ms / g),
        pair_mflop,
        pair_gflops: pair_mflop / ms,
        threads: rayon::current_num_threads(),
        load,
    })
}

/// The 1-minute load average (`/proc/loadavg`), NaN where it cannot be read.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_one_json_line() {
        let args = StepArgs {
            filter: FilterKind::Sir,
            particles: 200,
            dim: 5,
            steps: 3,
            substeps: Substeps::Fixed(1),
            seed: 1,
        };
        let report = run(&args).unwrap();
        let line = report.to_string();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["filter"], "sir");
        assert_eq!(v["particles"], 200);
        assert_eq!(v["dim"], 5);
        assert!(v["ms_per_step"].as_f64().unwrap() > 0.0);
        assert!(v["grad_ms_per_step_median"].as_f64().unwrap() > 0.0);
        assert!(v["ratio_to_grad"].as_f64().unwrap() > 0.0);
        // SIR has no pair term.
        assert_eq!(v["pair_mflop"], 0.0);
        assert!(v["threads"].as_u64().unwrap() >= 1);
        // rfpf with K = 2 sub-moves: K · (7m + 7) · n(n − 1)/2 flops of pair work.
        let rfpf = run(&StepArgs {
            filter: FilterKind::Rfpf,
            substeps: Substeps::Fixed(2),
            ..args.clone()
        })
        .unwrap();
        assert!((rfpf.pair_mflop - 2.0 * 42.0 * 200.0 * 199.0 / 2.0 / 1e6).abs() < 1e-12);
        // grad is its own baseline: none is run.
        let grad = run(&StepArgs {
            filter: FilterKind::Grad,
            ..args.clone()
        })
        .unwrap();
        assert_eq!(
            (grad.grad_ms_per_step_median, grad.ratio_to_grad),
            (None, None)
        );
        assert!(!line.contains('\n'));
        assert!(run(&StepArgs {
            steps: 0,
            ..args.clone()
        })
        .is_err());
        assert!(run(&StepArgs {
            filter: FilterKind::Rfpf,
            dim: 2,
            ..args
        })
        .is_err());
    }
}
