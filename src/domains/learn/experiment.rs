//! `hdpf learn`: every chosen method over K random task orders of SplitDigits, with the table, CSV,
//! `summary.json` and a plot of accuracy after each task.

use crate::core::error::{Error, Result};
use crate::core::filter::rng::stream;
use crate::core::filter::PairConfig;
use crate::domains::learn::bench::{speed, SpeedReport};
use crate::domains::learn::data::{self, Scenario, Source, TaskData};
use crate::domains::learn::methods::{Hyper, Method};
use crate::domains::learn::metrics::{final_accuracy, forgetting, mean, variance};
use crate::domains::learn::mlp::{Head, Mlp};
use crate::domains::learn::train::{train_sequence, RunConfig, RunResult};
use crate::domains::learn::wpf::Readout;
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

/// The digits file inside the shared datasets folder ([`crate::core::datasets::shared`]).
pub const DIGITS: &str = "digits/digits.csv.gz";

/// Arguments of `hdpf learn`.
#[derive(clap::Args, Clone, Debug)]
pub struct LearnArgs {
    /// Digits CSV(.gz); default `digits/digits.csv.gz` in the shared datasets folder
    /// (`../shared/datasets` beside the repository, or `$HDPF_DATASETS`), and when that is missing a
    /// generated task family (said so).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Use the in-process generated task family even if the data file exists.
    #[arg(long)]
    pub generated: bool,
    /// Continual-learning scenario.
    #[arg(long, value_enum, default_value_t = Scenario::Domain)]
    pub scenario: Scenario,
    /// Methods: sgd, wpf (= sgd+pf), ewc, ewc+pf, si, si+pf, lwf, lwf+pf, avg (uniform ensemble of
    /// the WPF particles), replay, replay+pf.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "sgd,wpf,ewc,ewc+pf,si,si+pf,lwf,lwf+pf,avg,replay"
    )]
    pub methods: Vec<String>,
    /// Number of random task orders K.
    #[arg(long, default_value_t = 10)]
    pub orders: usize,
    /// Particles N of the PF methods.
    #[arg(long, default_value_t = 100)]
    pub particles: usize,
    /// Step size η.
    #[arg(long, default_value_t = 0.01)]
    pub lr: f64,
    /// Passes over each task.
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Minibatch size.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Master seed (split, task orders, inits, batches).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Hidden layer widths, comma-separated; `0` for softmax regression.
    #[arg(long, value_delimiter = ',', default_value = "100,100")]
    pub hidden: Vec<usize>,
    /// Output head: linear logits, or ReLU on the logits as in the authors' released code.
    #[arg(long, value_enum, default_value_t = Head::Linear)]
    pub head: Head,
    /// WPF likelihood temperature T (weights ℓ −= ½[L(before)+L(after)]/T).
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// Readout of the X+pf methods (all three are written to readouts.csv).
    #[arg(long, value_enum, default_value_t = Readout::Weighted)]
    pub readout: Readout,
    /// EWC strength λ (default picked on the validation split from {1, 10, 100, 1000}).
    #[arg(long, default_value_t = 1.0)]
    pub ewc_lambda: f64,
    /// SI strength c (default picked on the validation split from {1, 10, 100, 1000}).
    #[arg(long, default_value_t = 1.0)]
    pub si_c: f64,
    /// SI damping ξ.
    #[arg(long, default_value_t = 0.1)]
    pub si_xi: f64,
    /// LwF distillation weight (default picked on the validation split from {0.3, 1, 3, 10}).
    #[arg(long, default_value_t = 1.0)]
    pub lwf_lambda: f64,
    /// LwF temperature.
    #[arg(long, default_value_t = 2.0)]
    pub lwf_temp: f64,
    /// Replay memory per task (samples).
    #[arg(long, default_value_t = 20)]
    pub replay_per_task: usize,
    /// Test share of the stratified split.
    #[arg(long, default_value_t = 0.25)]
    pub test_frac: f64,
    /// Evaluate on a validation split carved (stratified, the same share) from the training part
    /// instead of on the test split — for choosing hyper-parameters without looking at test data.
    #[arg(long)]
    pub validation: bool,
    /// Add the RF-PF pair term of the filter core to the WPF move.
    #[arg(long)]
    pub pair: bool,
    /// Kernel γ of the pair term (default: the move's γ = η·N).
    #[arg(long)]
    pub pair_gamma: Option<f64>,
    /// Instead of the study, time a WPF pass with this many particles against as many single-network
    /// SGD passes (1 and 2 threads) and write `speed.json`.
    #[arg(long)]
    pub speed: Option<usize>,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// A method as requested on the command line.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MethodSpec {
    /// The name as given (`wpf`, `ewc+pf`, …).
    pub name: String,
    /// The continual-learning method.
    pub method: Method,
    /// Trained by the PF (N particles) instead of SGD (one network).
    pub pf: bool,
    /// How the particles predict.
    pub readout: Readout,
}

/// Parse a method name: `X` (SGD), `X+pf`, `wpf` (= `sgd+pf`), `avg` (`sgd+pf`, uniform readout).
pub fn parse_method(name: &str, readout: Readout) -> Result<MethodSpec> {
    let lower = name.trim().to_ascii_lowercase();
    let (base, pf, readout) = match lower.as_str() {
        "wpf" => ("sgd", true, readout),
        "avg" => ("sgd", true, Readout::Uniform),
        s => match s.strip_suffix("+pf") {
            Some(b) => (b, true, readout),
            None => (s, false, Readout::Weighted),
        },
    };
    let method = match base {
        "sgd" => Method::Sgd,
        "ewc" => Method::Ewc,
        "si" => Method::Si,
        "lwf" => Method::Lwf,
        "replay" => Method::Replay,
        _ => {
            return Err(Error::param(
                "methods",
                name,
                "expected sgd, wpf, avg, ewc, si, lwf, replay, or X+pf",
            ))
        }
    };
    Ok(MethodSpec {
        name: lower,
        method,
        pf,
        readout,
    })
}

/// Summary of one method over all orders (accuracies as fractions in [0, 1]).
#[derive(Clone, Debug, serde::Serialize)]
pub struct MethodSummary {
    /// Final average accuracy, mean over orders.
    pub mean_acc: f64,
    /// Its sample standard deviation over orders.
    pub std_acc: f64,
    /// Its sample variance over orders.
    pub var_acc: f64,
    /// Average forgetting, mean over orders.
    pub forgetting: f64,
    /// ESS averaged over updates and orders (1 for a single network, N for the uniform ensemble).
    pub mean_ess: f64,
    /// ESS after the last update, mean over orders.
    pub final_ess: f64,
    /// `sgd` or `pf`.
    pub optimizer: String,
    /// Particles used.
    pub particles: usize,
    /// Readout used for the accuracies.
    pub readout: Readout,
    /// Output head.
    pub head: Head,
    /// Final average accuracy per order.
    pub per_order: Vec<f64>,
    /// Mean over orders of the accuracy matrix `R[t][j]` (task positions in training order).
    pub acc_matrix: Vec<Vec<f64>>,
    /// Mean over orders of the average accuracy on the tasks seen so far, after each task.
    pub curve_mean: Vec<f64>,
    /// Its standard deviation over orders.
    pub curve_std: Vec<f64>,
    /// Mean wall time of one run (seconds).
    pub seconds: f64,
}

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
    print!("{table}");
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
    Ok(())
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
            println!(
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

/// Which split the accuracies are measured on.
pub fn evaluated_on(args: &LearnArgs) -> &'static str {
    if args.validation {
        "VALIDATION split (carved from train; test unused)"
    } else {
        "test split"
    }
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
                        super::report::run_name(method, pf),
                        o + 1
                    );
                    failed.insert((method, pf), format!("order {}: {e}", o + 1));
                }
            }
        }
        eprintln!(
            "order {}/{} done (tasks {:?})",
            o + 1,
            args.orders,
            setup.perm
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
    print!("{table}");
    let failures: Vec<(String, String)> = (failed_specs.iter())
        .map(|s| (s.name.clone(), failed[&(s.method, s.pf)].clone()))
        .collect();
    let results = super::report::Results {
        specs: &specs,
        runs: &runs,
        methods: &methods,
        failures: &failures,
    };
    super::report::write_outputs(args, &source, &results, &table)?;
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
        Source::Generated => "GENERATED task family (no digits file)".into(),
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
            format!("{:?}", s.readout).to_lowercase(),
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
