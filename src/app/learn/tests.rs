//! Tests that pin the theory of the WPF optimizer (issue 5 §6) and the end-to-end driver.

use crate::app::learn::experiment::{evaluation_split, run, LearnArgs};
use crate::core::filter::rng::stream;
use crate::core::filter::{Model, ParticleSet};
use crate::domains::learn::data::{self, Scenario, TaskData};
use clap::Parser;

use crate::domains::learn::methods::{Hyper, Method, MethodState};
use crate::domains::learn::mlp::{Head, Mlp};
use crate::domains::learn::model::Batch;
use crate::domains::learn::train::{make_batch, train_sequence, RunConfig};
use crate::domains::learn::wpf::{init_particles, Optimizer, Readout};
use rand::RngCore;

/// `hdpf learn`'s flags as a parser of their own.
#[derive(clap::Parser)]
struct LearnCli {
    #[command(flatten)]
    args: LearnArgs,
}

/// A small SplitDigits-like task family from the generated data (10 samples per class).
fn tasks(scenario: Scenario) -> Vec<TaskData> {
    data::split_tasks(&data::generated(1, 10), scenario)
}

fn batches(task: &TaskData, bs: usize, scenario: Scenario) -> Vec<Batch> {
    let idx: Vec<usize> = (0..task.len()).collect();
    idx.chunks(bs)
        .map(|c| make_batch(task, c, scenario))
        .collect()
}

fn base(net: &Mlp, seed: u64) -> Vec<f64> {
    let mut p = vec![0.0; net.n_params()];
    net.init(&mut stream(seed, 0, 0), &mut p);
    p
}

fn hyper() -> Hyper {
    Hyper {
        ewc_lambda: 50.0,
        si_c: 0.5,
        si_xi: 0.1,
        lwf_lambda: 1.0,
        lwf_temp: 2.0,
        replay_per_task: 5,
    }
}

/// Run the WPF over `batches` (plain SGD loss) and return the final log-weights.
fn wpf_log_weights(net: &Mlp, set: &ParticleSet, batches: &[&Batch], eta: f64) -> Vec<f64> {
    let state = MethodState::new(Method::Sgd, hyper(), Scenario::Domain, eta, 0);
    let mut opt = Optimizer::wpf(eta, 1.0, None, set.clone(), 0).unwrap();
    for b in batches {
        opt.step(&state.model(net, b)).unwrap();
    }
    opt.particles().log_weights().unwrap().to_vec()
}

/// With η = 0 the particles do not move, so ℓ_i = −Σ_b L_b(θ_i) + const: a sum, independent of the
/// order of the minibatches. Only floating-point summation order differs: 15 terms of O(1) give
/// ≈ 1e-14 differences, far below 1e-9.
#[test]
fn eta_zero_weights_are_permutation_invariant() {
    let net = Mlp::new(&[64, 6, 2], Head::Linear).unwrap();
    let set = init_particles(&net, &base(&net, 2), 6, 3).unwrap();
    let t = tasks(Scenario::Domain);
    let all: Vec<Batch> = t
        .iter()
        .flat_map(|k| batches(k, 8, Scenario::Domain))
        .collect();
    let forward: Vec<&Batch> = all.iter().collect();
    let mut shuffled = forward.clone();
    rand::seq::SliceRandom::shuffle(&mut shuffled[..], &mut stream(9, 9, 9));
    let reversed: Vec<&Batch> = forward.iter().rev().copied().collect();
    let a = wpf_log_weights(&net, &set, &forward, 0.0);
    for other in [shuffled, reversed] {
        let b = wpf_log_weights(&net, &set, &other, 0.0);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-9, "{x} vs {y}");
        }
    }
    // And with η > 0 the order matters (the test is not vacuous).
    let moved = wpf_log_weights(&net, &set, &forward, 0.5);
    let moved_rev: Vec<&Batch> = forward.iter().rev().copied().collect();
    let moved_b = wpf_log_weights(&net, &set, &moved_rev, 0.5);
    assert!(moved
        .iter()
        .zip(&moved_b)
        .any(|(x, y)| (x - y).abs() > 1e-6));
}

/// A linear loss `L(θ) = aᵀθ + c`.
struct Linear {
    a: Vec<f64>,
    c: f64,
}

impl Model for Linear {
    fn dim(&self) -> usize {
        self.a.len()
    }
    fn sample_prior(&self, _rng: &mut dyn RngCore, out: &mut [f64]) {
        out.fill(0.0);
    }
    fn loss(&self, x: &[f64]) -> f64 {
        self.c + self.a.iter().zip(x).map(|(a, b)| a * b).sum::<f64>()
    }
    fn loss_grad(&self, x: &[f64], g: &mut [f64]) -> f64 {
        g.copy_from_slice(&self.a);
        self.loss(x)
    }
}

/// For a linear loss the gradient step is `θ' = θ − ηa`, and the trapezoid weight
/// `−½[L(θ) + L(θ')] = −L(θ) + ½η‖a‖²` equals the exact path average `−(1/η)∫₀^η L(θ − ta) dt`.
/// Relative to the other particles this is `−aᵀθ_i`: exactly the Gaussian (Bayes) update of a
/// N(μ, Σ) cloud by the likelihood `exp(−aᵀθ)`, whose posterior is N(μ − Σa, Σ). Checked exactly on
/// the increments and by Monte Carlo on the weighted moments of the moved cloud, N(μ − ηa − Σa, Σ).
#[test]
fn linear_loss_trapezoid_is_the_exact_gaussian_update() {
    let (n, eta, sigma) = (20_000usize, 0.3, 0.5);
    let model = Linear {
        a: vec![0.8, -0.4],
        c: 1.5,
    };
    let mu = [0.2, -0.1];
    let mut data = vec![0.0; 2 * n];
    for (i, row) in data.chunks_mut(2).enumerate() {
        let mut rng = stream(4, 0, i as u64);
        for (k, v) in row.iter_mut().enumerate() {
            let z: f64 = rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng);
            *v = mu[k] + sigma * z;
        }
    }
    let set = ParticleSet::from_vec(n, 2, data.clone()).unwrap();
    let mut opt = Optimizer::wpf(eta, 1.0, None, set, 0).unwrap();
    opt.step(&model).unwrap();
    let lw = opt.particles().log_weights().unwrap();
    let a2 = 0.8f64 * 0.8 + 0.4 * 0.4;
    // Exact path average vs trapezoid, up to the common normaliser (use particle 0 as reference).
    let exact = |i: usize| -(model.loss(&data[2 * i..2 * i + 2]) - 0.5 * eta * a2);
    for i in [1, 17, 4_321, n - 1] {
        let d = (lw[i] - lw[0]) - (exact(i) - exact(0));
        assert!(d.abs() < 1e-12, "particle {i}: {d}");
    }
    // Weighted moments vs N(μ − ηa − σ²a, σ²I): ESS ≈ n·exp(−σ²‖a‖²) ≈ 17 000, so the s.e. of the
    // weighted mean is ≈ σ/√ESS ≈ 0.004 and of the variance ≈ σ²√(2/ESS) ≈ 0.003; 0.02 is > 4σ.
    let mean = opt.particles().mean();
    let cov = opt.particles().covariance();
    for k in 0..2 {
        let expect = mu[k] - (eta + sigma * sigma) * model.a[k];
        assert!(
            (mean[k] - expect).abs() < 0.02,
            "mean {k}: {} vs {expect}",
            mean[k]
        );
        assert!((cov[(k, k)] - sigma * sigma).abs() < 0.02, "var {k}");
    }
}

/// N = 1: the WPF's move is `θ ← θ − η∇L` exactly as SGD, and the weight of a single particle is 1.
#[test]
fn one_particle_wpf_is_sgd_bit_for_bit() {
    let scenario = Scenario::Task;
    let net = Mlp::new(&[64, 10, 10], Head::Relu).unwrap();
    let start = ParticleSet::from_vec(1, net.n_params(), base(&net, 5)).unwrap();
    let mut sgd = Optimizer::sgd(0.05, start.clone()).unwrap();
    let mut wpf = Optimizer::wpf(0.05, 1.0, None, start, 0).unwrap();
    let mut state = MethodState::new(Method::Ewc, hyper(), scenario, 0.05, 0);
    for task in tasks(scenario).iter().take(3) {
        for b in batches(task, 4, scenario) {
            sgd.step(&state.model(&net, &b)).unwrap();
            let ess = wpf.step(&state.model(&net, &b)).unwrap();
            assert_eq!(ess, 1.0);
        }
        assert_eq!(sgd.particles().as_slice(), wpf.particles().as_slice());
        // Each optimizer's particle carries its own anchor (EWC state lives in the payload).
        state.end_task(&net, sgd.particles_mut(), task).unwrap();
        state.end_task(&net, wpf.particles_mut(), task).unwrap();
    }
}

/// Thousands of updates with collapsing weights: log-weights stay finite and Σ exp ℓ = 1 (to 1e-12,
/// a few ulps of a sum of ≤ 8 terms in [0, 1]).
#[test]
fn weights_stay_finite_and_normalised() {
    let net = Mlp::new(&[64, 2], Head::Linear).unwrap();
    let set = init_particles(&net, &base(&net, 7), 8, 7).unwrap();
    let state = MethodState::new(Method::Sgd, hyper(), Scenario::Domain, 0.2, 0);
    let mut opt = Optimizer::wpf(0.2, 1.0, None, set, 0).unwrap();
    let all: Vec<Batch> = tasks(Scenario::Domain)
        .iter()
        .flat_map(|k| batches(k, 2, Scenario::Domain))
        .collect();
    for step in 0..3_000 {
        let ess = opt
            .step(&state.model(&net, &all[step % all.len()]))
            .unwrap();
        let lw = opt.particles().log_weights().unwrap();
        assert!(
            lw.iter().all(|l| l.is_finite() && *l <= 1e-12),
            "step {step}: {lw:?}"
        );
        let total: f64 = lw.iter().map(|l| l.exp()).sum();
        assert!((total - 1.0).abs() < 1e-12, "step {step}: Σw = {total}");
        assert!((1.0..=8.0 + 1e-9).contains(&ess));
    }
}

/// (accuracy matrix, final log-weights, final particles) of one run.
type RunFingerprint = (Vec<Vec<f64>>, Vec<f64>, Vec<f64>);

fn every_method_pf(threads: usize) -> Vec<RunFingerprint> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let scenario = Scenario::Domain;
        let net = Mlp::new(&[64, 8, 2], Head::Linear).unwrap();
        let t = tasks(scenario);
        let cfg = RunConfig {
            scenario,
            eta: 0.05,
            epochs: 1,
            batch: 4,
            particles: Some(5),
            temperature: 1.0,
            pair: None,
            hyper: hyper(),
        };
        [
            Method::Sgd,
            Method::Ewc,
            Method::Si,
            Method::Lwf,
            Method::Replay,
        ]
        .iter()
        .map(|&m| {
            let r = train_sequence(&net, &base(&net, 1), &t, &t, m, &cfg, 11).unwrap();
            (
                r.matrix(Readout::Weighted).to_vec(),
                r.log_weights,
                r.final_particles,
            )
        })
        .collect()
    })
}

/// Same seed, 1 or 2 threads: identical accuracies, log-weights and parameters, for every method
/// with the PF (per-particle state, parallel teacher logits, Fisher and evaluation included).
#[test]
fn one_and_two_threads_give_identical_numbers() {
    assert_eq!(every_method_pf(1), every_method_pf(2));
}

/// `--validation` evaluates on rows carved from the training part: disjoint from the test split and
/// from what is trained on, so hyper-parameters chosen on it never saw a test row.
#[test]
fn validation_split_never_touches_the_test_rows() {
    let d = data::generated(5, 12);
    let rows = |s: &data::Dataset| -> std::collections::BTreeSet<Vec<u64>> {
        (0..s.len())
            .map(|i| s.row(i).iter().map(|v| v.to_bits()).collect())
            .collect()
    };
    let mut args = LearnCli::parse_from(["learn", "--out", "unused", "--generated"]).args;
    let (_, test) = evaluation_split(&d, &args).unwrap();
    args.validation = true;
    let (train, valid) = evaluation_split(&d, &args).unwrap();
    let (train, valid, test) = (rows(&train), rows(&valid), rows(&test));
    assert_eq!(rows(&d).len(), d.len(), "generated rows are distinct");
    assert!(!valid.is_empty() && valid.is_disjoint(&test) && valid.is_disjoint(&train));
    assert!(train.is_disjoint(&test));
    assert_eq!(train.len() + valid.len() + test.len(), d.len());
}

/// A method that diverges (EWC with an absurd strength: each step overshoots its anchor by a growing
/// factor until the loss is infinite) is reported by name, and the other methods' results are still
/// written.
#[test]
fn a_diverging_method_is_named_and_the_others_are_kept() {
    let out = crate::core::scratch::ScratchDir::new("learn-diverge");
    let dir = out.to_string_lossy().to_string();
    #[rustfmt::skip]
    let args = LearnCli::parse_from([
        "learn", "--generated", "--orders", "1", "--particles", "2", "--hidden", "8",
        "--methods", "sgd,ewc+pf", "--ewc-lambda", "1e12", "--lr", "0.05", "--threads", "1",
        "--out", &dir,
    ])
    .args;
    let err = run(&args).unwrap_err().to_string();
    assert!(err.contains("ewc+pf") && !err.contains("sgd"), "{err}");
    let text = std::fs::read_to_string(out.join("summary.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(json["sgd"]["mean_acc"].as_f64().is_some_and(f64::is_finite));
    assert!(json.get("ewc+pf").is_none());
    let table = std::fs::read_to_string(out.join("table.txt")).unwrap();
    assert!(
        table.contains("ewc+pf     FAILED (order 1: non-finite"),
        "{table}"
    );
}

/// The driver end to end on the generated family: every method, summary.json with the keys.
#[test]
fn learn_runs_end_to_end_on_generated_data() {
    let out = crate::core::scratch::ScratchDir::new("learn-e2e");
    let args = LearnArgs {
        data: None,
        generated: true,
        scenario: Scenario::Domain,
        methods: "sgd,wpf,ewc,ewc+pf,si,si+pf,lwf,lwf+pf,avg,replay"
            .split(',')
            .map(String::from)
            .collect(),
        orders: 2,
        particles: 3,
        lr: 0.05,
        epochs: 1,
        batch: 16,
        seed: 0,
        out: out.to_path_buf(),
        hidden: vec![8],
        head: Head::Linear,
        temperature: 1.0,
        readout: Readout::Weighted,
        ewc_lambda: 10.0,
        si_c: 0.5,
        si_xi: 0.1,
        lwf_lambda: 1.0,
        lwf_temp: 2.0,
        replay_per_task: 5,
        test_frac: 0.25,
        validation: false,
        pair: false,
        pair_gamma: None,
        speed: None,
        threads: 1,
    };
    let report = run(&args).unwrap();
    assert_eq!(report.methods.len(), 10);
    let text = std::fs::read_to_string(out.join("summary.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    for name in ["sgd", "wpf", "ewc+pf", "avg", "replay"] {
        let m = &json[name];
        for key in ["mean_acc", "std_acc", "var_acc", "forgetting", "mean_ess"] {
            let v = m[key].as_f64().unwrap_or(f64::NAN);
            assert!(v.is_finite(), "{name}.{key} = {v}");
        }
        let acc = m["mean_acc"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc));
    }
    assert_eq!(json["avg"]["mean_ess"].as_f64(), Some(3.0));
    assert_eq!(json["sgd"]["mean_ess"].as_f64(), Some(1.0));
    assert!(report.table.contains("GENERATED"));
    for f in [
        "results.csv",
        "readouts.csv",
        "acc_matrix.csv",
        "curve.csv",
        "ess.csv",
        "run.json",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    // The per-order partial tables are replaced by the final ones.
    assert!(!out.join("results.partial.csv").exists());
}

/// EWC under SIR: each particle's anchor travels with it through resampling. After the first
/// task every particle is anchored at its own parameters; a SIR update that resamples (τ = 1, no
/// transition, no roughening) copies particles, and each copy must still be anchored at exactly its
/// own parameters — its ancestor's anchor — so its penalty is zero. (With the anchor looked up by
/// row number, as before the payload existed, row i kept the anchor of the particle that used to be
/// there, and the penalty of a copied particle was not zero.)
#[test]
fn ewc_anchors_follow_their_particles_through_resampling() {
    use crate::core::filter::presets::SirParams;
    use crate::core::filter::{Filter, Preset};
    let scenario = Scenario::Domain;
    let net = Mlp::new(&[64, 6, 2], Head::Linear).unwrap();
    let set = init_particles(&net, &base(&net, 2), 12, 4).unwrap();
    // Multinomial draws duplicate some of 12 particles (systematic ones barely would here).
    let sir = Preset::Sir(SirParams {
        ess_threshold: 1.0,
        scheme: crate::core::filter::Scheme::Multinomial,
        ..Default::default()
    });
    let mut filter = Filter::new(sir.steps(), set, 6).unwrap();
    let mut state = MethodState::new(Method::Ewc, hyper(), scenario, 0.05, 0);
    let all = tasks(scenario);
    state
        .end_task(&net, filter.particles_mut(), &all[0])
        .unwrap();
    let b = &batches(&all[1], 8, scenario)[0];
    let model = state.model(&net, b);
    let diag = filter.update(&model).unwrap();
    assert!(diag.resampled, "the test needs a resampling update");
    let p = filter.particles();
    let distinct: std::collections::BTreeSet<u64> =
        (0..p.len()).map(|i| p.particle(i)[0].to_bits()).collect();
    assert!(
        distinct.len() < p.len(),
        "resampling should duplicate some particles"
    );
    let layout = state.layout(p.dim());
    for i in 0..p.len() {
        let (anchor, _) = layout.penalty(p.payload(i)).unwrap();
        assert_eq!(anchor, p.particle(i), "particle {i} lost its own anchor");
    }
    // The loss the filter sees is the penalty-free loss at every particle's own anchor.
    for i in 0..p.len() {
        let x = p.particle(i);
        assert_eq!(model.particle_loss(x, p.payload(i)), model.loss(x));
    }
}
