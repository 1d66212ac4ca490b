//! `hdpf bench step`: wall-clock time of one filter update on the localization model.
//!
//! Prints one JSON line `{"filter":…,"particles":…,"dim":…,"ms_per_step":…}`; the criterion benches in
//! `benches/filters.rs` time the same [`StepBench::advance`].

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
}

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

/// Time `args.steps` updates after one warm-up update.
pub fn run(args: &StepArgs) -> Result<StepReport> {
    if args.steps == 0 {
        return Err(Error::param("steps", 0, "need at least one timed step"));
    }
    let mut bench = StepBench::new(
        args.filter,
        args.particles,
        args.dim,
        args.substeps,
        args.seed,
    )?;
    bench.advance()?;
    let start = Instant::now();
    for _ in 0..args.steps {
        bench.advance()?;
    }
    Ok(StepReport {
        filter: args.filter,
        particles: args.particles,
        dim: args.dim,
        ms_per_step: start.elapsed().as_secs_f64() * 1e3 / args.steps as f64,
    })
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
