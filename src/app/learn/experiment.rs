//! `hdpf learn`: every chosen method over K random task orders of SplitDigits, with the table, CSV,
//! `summary.json` and a plot of accuracy after each task.

pub use crate::app::learn::args::{
    evaluated_on, parse_method, LearnArgs, MethodSpec, MethodSummary, DIGITS,
};
use crate::app::learn::report;
use crate::core::error::{Error, Result};
use crate::core::filter::rng::stream;
use crate::core::filter::PairConfig;
use crate::domains::learn::bench::{speed, SpeedReport};
use crate::domains::learn::data::{self, Source, TaskData};
use crate::domains::learn::methods::{Hyper, Method};
use crate::domains::learn::metrics::{final_accuracy, forgetting, mean, variance};
use crate::domains::learn::mlp::{Head, Mlp};
use crate::domains::learn::train::{train_sequence, RunConfig, RunResult};
use crate::domains::learn::wpf::Readout;
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What `hdpf learn` produced.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LearnReport {
    /// Where the data came from.
    pub source: Source,
    /// Methods in the order requested.
    pub methods: Vec<(String, MethodSummary)>,
    /// The printed table.
    pub table: String,
    /// The speed benchmark, when `--speed` was given (then `methods` is empty).
    pub speed: Option<SpeedReport>,
}

/// One order's inputs: the task permutation and the initial network.
struct OrderSetup {
    perm: Vec<usize>,
    base: Vec<f64>,
    seed: u64,
}

/// Run the study: every method over `args.orders` task orders; prints the table and writes
/// `summary.json`, `run.json`, `results.csv`, `readouts.csv`, `acc_matrix.csv`, `curve.csv`,
/// `ess.csv` and the plot into `args.out`.
pub fn run(args: &LearnArgs) -> Result<LearnReport> {
    validate(args)?;
    if let Some(n) = args.speed {
        return run_speed(args, n);
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .map_err(|e| Error::Other(format!("thread pool: {e}")))?;
    pool.install(|| run_in_pool(args))
}

fn run_speed(args: &LearnArgs, n: usize) -> Result<LearnReport> {
    let r = speed(n, &[1, 2], 3)?;
    let mut table = format!(
        "speed ({} params, {} batches of 8): SGD pass {:.4} s; WPF N = {n}:",
        r.params, r.batches, r.sgd_seconds
    );
    for (t, s) in &r.wpf_seconds {
        let _ = write!(table, " {s:.3} s on {t} thread(s);");
    }
    let _ = writeln!(
        table,
        " WPF/(N·SGD) = {:.2} (model work alone {:.2}; one update per batch instead of per-task \
         windows: {:.2})",
        r.ratio_one_thread,
        r.model_seconds / (n as f64 * r.sgd_seconds),
        r.wpf_batch_major_seconds / (n as f64 * r.sgd_seconds)
    );
    crate::out!("{table}");
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
    let path = args.out.join("speed.json");
    let text = serde_json::to_string_pretty(&r).map_err(|e| Error::format(&path, e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
    Ok(LearnReport {
        source: Source::Generated,
        methods: Vec::new(),
        table,
        speed: Some(r),
    })
}

fn validate(args: &LearnArgs) -> Result<()> {
    let positive = [
        ("orders", args.orders),
        ("particles", args.particles),
        ("epochs", args.epochs),
        ("batch", args.batch),
    ];
    for (name, v) in positive {
        if v == 0 {
            return Err(Error::param(name, v, "must be positive"));
        }
    }
    if !(args.lr.is_finite() && args.lr >= 0.0) {
        return Err(Error::param("lr", args.lr, "must be finite and ≥ 0"));
    }
    if !(args.test_frac > 0.0 && args.test_frac < 1.0) {
        return Err(Error::param(
            "test-frac",
            args.test_frac,
            "must lie in (0, 1): every task needs evaluation samples",
        ));
    }
    if !(args.temperature.is_finite() && args.temperature > 0.0) {
        return Err(Error::param("temperature", args.temperature, "must be > 0"));
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(twice) = args.methods.iter().find(|m| !seen.insert(m.as_str())) {
        return Err(Error::param("methods", twice, "listed twice"));
    }
    if args.speed == Some(0) {
        return Err(Error::param(
            "speed",
            0,
            "must be positive (particles to time)",
        ));
    }
    validate_strengths(args)?;
    // Every particle is a whole network, kept with its method's state (anchors, importances,
    // gradients, the rollback copy): about six copies of its parameters.
    let params = parameter_count(args)?;
    let n = args.particles.max(args.speed.unwrap_or(0));
    crate::core::memory::check("particles", n, &[n, params, 6], 8)
}

/// The method strengths: finite, the temperatures and SI's damping positive, the others ≥ 0
/// (a bad one would otherwise surface mid-training as a non-finite loss).
fn validate_strengths(args: &LearnArgs) -> Result<()> {
    let gamma = args.pair_gamma.unwrap_or(0.0);
    let strengths = [
        ("ewc-lambda", args.ewc_lambda, false),
        ("si-c", args.si_c, false),
        ("si-xi", args.si_xi, true),
        ("lwf-lambda", args.lwf_lambda, false),
        ("lwf-temp", args.lwf_temp, true),
        ("pair-gamma", gamma, false),
    ];
    for (name, v, positive) in strengths {
        let ok = v.is_finite() && if positive { v > 0.0 } else { v >= 0.0 };
        if !ok {
            let why = if positive {
                "must be finite and > 0"
            } else {
                "must be finite and ≥ 0"
            };
            return Err(Error::param(name, v, why));
        }
    }
    Ok(())
}

/// The network's parameter count `Σ (a + 1)·b` over its layers `a → b`, or an error naming
/// `hidden` when it overflows.
fn parameter_count(args: &LearnArgs) -> Result<usize> {
    let mut sizes = vec![data::N_PIXELS];
    sizes.extend(args.hidden.iter().copied().filter(|&h| h > 0));
    sizes.push(args.scenario.n_outputs());
    let layer = |w: &[usize]| w[0].checked_add(1)?.checked_mul(w[1]);
    (sizes.windows(2))
        .try_fold(0usize, |acc, w| acc.checked_add(layer(w)?))
        .ok_or_else(|| Error::param("hidden", format!("{:?}", args.hidden), "too large to count"))
}

/// Load the digits, or the generated family when no file is found (or `--generated`).
pub fn load_data(args: &LearnArgs) -> Result<(data::Dataset, Source)> {
    if args.generated {
        return Ok((data::generated(args.seed, 180), Source::Generated));
    }
    let default = crate::core::datasets::shared(DIGITS);
    let path = match &args.data {
        Some(p) => p.clone(),
        None if default.exists() => default,
        None => {
            crate::outln!(
                "no digits file at {}: using the generated task family",
                default.display()
            );
            return Ok((data::generated(args.seed, 180), Source::Generated));
        }
    };
    let d = data::load_digits(&path)?;
    Ok((d, Source::File(path.display().to_string())))
}

/// Salt of the validation split's seed, so that it differs from every test split's.
const VALIDATION_SALT: u64 = 0x7a11_da7e_0000_0000;

/// `(train, evaluation)`: the stratified train/test split, or with `--validation` the training
/// part split again into train/validation (the test part unused).
pub fn evaluation_split(
    dataset: &data::Dataset,
    args: &LearnArgs,
) -> Result<(data::Dataset, data::Dataset)> {
    let (train, test) = data::stratified_split(dataset, args.test_frac, args.seed)?;
    if !args.validation {
        return Ok((train, test));
    }
    data::stratified_split(&train, args.test_frac, args.seed ^ VALIDATION_SALT)
}

fn network(args: &LearnArgs) -> Result<Mlp> {
    let mut sizes = vec![data::N_PIXELS];
    sizes.extend(args.hidden.iter().copied().filter(|&h| h > 0));
    sizes.push(args.scenario.n_outputs());
    Mlp::new(&sizes, args.head)
}

fn run_in_pool(args: &LearnArgs) -> Result<LearnReport> {
    let specs: Vec<MethodSpec> = args
        .methods
        .iter()
        .map(|m| parse_method(m, args.readout))
        .collect::<Result<_>>()?;
    let (dataset, source) = load_data(args)?;
    let (train, test) = evaluation_split(&dataset, args)?;
    let (train, test) = (
        data::split_tasks(&train, args.scenario),
        data::split_tasks(&test, args.scenario),
    );
    if let Some(t) = test.iter().chain(&train).find(|t| t.is_empty()) {
        return Err(Error::param(
            "test-frac",
            args.test_frac,
            format!(
                "task {} gets no samples in one of the splits: too little data",
                t.task
            ),
        ));
    }
    let net = network(args)?;
    let hyper = Hyper {
        ewc_lambda: args.ewc_lambda,
        si_c: args.si_c,
        si_xi: args.si_xi,
        lwf_lambda: args.lwf_lambda,
        lwf_temp: args.lwf_temp,
        replay_per_task: args.replay_per_task,
    };
    // One training run per distinct (method, optimizer); readouts share it (wpf and avg).
    let mut runs: BTreeMap<(Method, bool), Vec<RunResult>> = BTreeMap::new();
    for spec in &specs {
        runs.entry((spec.method, spec.pf)).or_default();
    }
    // A method whose training fails (e.g. diverges to a non-finite loss) is dropped from later
    // orders and reported; the others run on and are written.
    let mut failed: BTreeMap<(Method, bool), String> = BTreeMap::new();
    report::check_writable(&args.out)?;
    for o in 0..args.orders {
        let setup = order_setup(&net, args.seed, o);
        let ordered = |tasks: &[TaskData]| -> Vec<TaskData> {
            setup.perm.iter().map(|&t| tasks[t].clone()).collect()
        };
        let (tr, te) = (ordered(&train), ordered(&test));
        for (&(method, pf), results) in runs.iter_mut() {
            if failed.contains_key(&(method, pf)) {
                continue;
            }
            let cfg = RunConfig {
                scenario: args.scenario,
                eta: args.lr,
                epochs: args.epochs,
                batch: args.batch,
                particles: pf.then_some(args.particles),
                temperature: args.temperature,
                pair: args.pair.then_some(PairConfig {
                    gamma: args.pair_gamma,
                }),
                hyper: hyper.clone(),
            };
            match train_sequence(&net, &setup.base, &tr, &te, method, &cfg, setup.seed) {
                Ok(r) => results.push(r),
                Err(e) => {
                    eprintln!(
                        "{}: failed in order {}: {e}",
                        report::run_name(method, pf),
                        o + 1
                    );
                    failed.insert((method, pf), format!("order {}: {e}", o + 1));
                }
            }
        }
        report::write_runs(&args.out, &specs, &runs, true)?;
        eprintln!(
            "order {}/{} done (tasks {:?}); the finished orders are in {}",
            o + 1,
            args.orders,
            setup.perm,
            args.out.join("results.partial.csv").display()
        );
    }
    runs.retain(|key, _| !failed.contains_key(key));
    let (specs, failed_specs): (Vec<MethodSpec>, Vec<MethodSpec>) =
        (specs.into_iter()).partition(|s| runs.contains_key(&(s.method, s.pf)));
    let methods: Vec<(String, MethodSummary)> = specs
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                summarize(s, &runs[&(s.method, s.pf)], args.head),
            )
        })
        .collect();
    let mut table = format_table(&methods, &source, args);
    for s in &failed_specs {
        let why = &failed[&(s.method, s.pf)];
        let _ = writeln!(
            table,
            "{:<10} FAILED ({why}); lower --lr or the method's strength",
            s.name
        );
    }
    crate::out!("{table}");
    let failures: Vec<(String, String)> = (failed_specs.iter())
        .map(|s| (s.name.clone(), failed[&(s.method, s.pf)].clone()))
        .collect();
    let results = report::Results {
        specs: &specs,
        runs: &runs,
        methods: &methods,
        failures: &failures,
    };
    report::write_outputs(args, &source, &results, &table)?;
    if !failed_specs.is_empty() {
        let names: Vec<&str> = failed_specs.iter().map(|s| s.name.as_str()).collect();
        return Err(Error::Other(format!(
            "training failed for {}: see the table; the other methods' results are in {}",
            names.join(", "),
            args.out.display()
        )));
    }
    Ok(LearnReport {
        source,
        methods,
        table,
        speed: None,
    })
}

/// Task order and initial network of order `o`: seed `s_o` from stream `(seed, 0x0d, o)`, the
/// permutation from `(s_o, 0, MAX)`, the PyTorch-style init from `(s_o, 0, MAX − 1)`.
fn order_setup(net: &Mlp, seed: u64, o: usize) -> OrderSetup {
    let s: u64 = stream(seed, 0x0d, o as u64).random();
    let mut perm: Vec<usize> = (0..data::N_TASKS).collect();
    perm.shuffle(&mut stream(s, 0, u64::MAX));
    let mut base = vec![0.0; net.n_params()];
    net.init(&mut stream(s, 0, u64::MAX - 1), &mut base);
    OrderSetup {
        perm,
        base,
        seed: s,
    }
}

/// Aggregate one method's runs over orders.
pub fn summarize(spec: &MethodSpec, runs: &[RunResult], head: Head) -> MethodSummary {
    let mats: Vec<&[Vec<f64>]> = runs.iter().map(|r| r.matrix(spec.readout)).collect();
    let per_order: Vec<f64> = mats.iter().map(|m| final_accuracy(m)).collect();
    let n_tasks = mats.first().map_or(0, |m| m.len());
    let mean_matrix = (0..n_tasks)
        .map(|t| {
            (0..n_tasks)
                .map(|j| mean(&mats.iter().map(|m| m[t][j]).collect::<Vec<_>>()))
                .collect()
        })
        .collect();
    let seen: Vec<Vec<f64>> = (0..n_tasks)
        .map(|t| mats.iter().map(|m| mean(&m[t][..=t])).collect())
        .collect();
    let particles = runs.first().map_or(1, |r| r.particles);
    let ess_of = |r: &RunResult, f: fn(&[f64]) -> f64| match spec.readout {
        Readout::Uniform => r.particles as f64,
        _ => f(&r.ess),
    };
    let var = variance(&per_order);
    MethodSummary {
        mean_acc: mean(&per_order),
        std_acc: var.sqrt(),
        var_acc: var,
        forgetting: mean(&mats.iter().map(|m| forgetting(m)).collect::<Vec<_>>()),
        mean_ess: mean(&runs.iter().map(|r| ess_of(r, mean)).collect::<Vec<_>>()),
        final_ess: mean(
            &runs
                .iter()
                .map(|r| ess_of(r, |e| e.last().copied().unwrap_or(1.0)))
                .collect::<Vec<_>>(),
        ),
        optimizer: if spec.pf { "pf" } else { "sgd" }.into(),
        particles,
        readout: spec.readout,
        head,
        per_order,
        acc_matrix: mean_matrix,
        curve_mean: seen.iter().map(|v| mean(v)).collect(),
        curve_std: seen.iter().map(|v| variance(v).sqrt()).collect(),
        seconds: mean(&runs.iter().map(|r| r.seconds).collect::<Vec<_>>()),
    }
}

fn format_table(methods: &[(String, MethodSummary)], source: &Source, args: &LearnArgs) -> String {
    let mut t = String::new();
    let src = match source {
        Source::File(p) => format!("digits from {p}"),
        Source::Generated => "GENERATED task family (not the digits)".into(),
    };
    let _ = writeln!(
        t,
        "hdpf learn — {src}; scenario {:?}, head {:?}, hidden {:?}, {} orders, N = {}, η = {}, {} epoch(s), batch {}; accuracy on the {}",
        args.scenario, args.head, args.hidden, args.orders, args.particles, args.lr, args.epochs, args.batch,
        evaluated_on(args)
    );
    let _ = writeln!(
        t,
        "{:<10} {:<9} {:>15} {:>10} {:>10} {:>9} {:>9}",
        "method", "readout", "acc % (±std)", "var (%²)", "forget %", "mean ESS", "s/order"
    );
    for (name, s) in methods {
        let _ = writeln!(
            t,
            "{:<10} {:<9} {:>8.1} ± {:<4.1} {:>10.2} {:>10.1} {:>9.1} {:>9.2}",
            name,
            s.readout.name(),
            100.0 * s.mean_acc,
            100.0 * s.std_acc,
            1e4 * s.var_acc,
            100.0 * s.forgetting,
            s.mean_ess,
            s.seconds
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names() {
        let w = Readout::Weighted;
        assert_eq!(parse_method("wpf", w).unwrap().method, Method::Sgd);
        assert!(parse_method("wpf", w).unwrap().pf);
        assert_eq!(parse_method("avg", w).unwrap().readout, Readout::Uniform);
        let e = parse_method("ewc+pf", Readout::MaxWeight).unwrap();
        assert!(e.pf && e.method == Method::Ewc && e.readout == Readout::MaxWeight);
        assert!(!parse_method("si", w).unwrap().pf);
        assert!(parse_method("adam", w)
            .unwrap_err()
            .to_string()
            .contains("adam"));
    }
}
