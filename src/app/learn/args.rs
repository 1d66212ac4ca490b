//! The arguments of `hdpf learn` and the per-method types shared by the study
//! ([`crate::app::learn::experiment`]) and its output files ([`crate::app::learn::report`]).

use crate::core::error::{Error, Result};
use crate::domains::learn::data::Scenario;
use crate::domains::learn::methods::Method;
use crate::domains::learn::mlp::Head;
use crate::domains::learn::wpf::Readout;
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

/// Which split the accuracies are measured on.
pub fn evaluated_on(args: &LearnArgs) -> &'static str {
    if args.validation {
        "VALIDATION split (carved from train; test unused)"
    } else {
        "test split"
    }
}
