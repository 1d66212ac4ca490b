//! `hdpf bench tracking`: particle filters on a dynamic linear-Gaussian system, scored against the
//! exact Kalman filter.
//!
//! Random walk `x_t = x_{t−1} + N(0, qI)`, observations `y_t = H x_t + N(0, rI)` with `H` a `k × m`
//! matrix of `N(0, 1)/√m` entries, `x_0 ~ N(0, I)`, `T` steps. After each update `t` the estimate
//! `(μ̂_t, Σ̂_t)` (the particles' mean and covariance) is scored on the observed subspace — the range
//! of `Hᵀ`, orthonormal basis `U` (`U = I` when `k = m`) — with `e_t = Uᵀ(μ̂_t − x_t)` of dimension `d`:
//!
//! - `rmse_ratio = RMSE / RMSE_KF`, `RMSE = √(Σ_{t ≥ t₀} ‖e_t‖² / (d·(T − t₀ + 1)))`, `t₀ = 10`;
//! - `nees = mean_{t ≥ t₀} e_tᵀ (UᵀΣ̂_tU + 10⁻⁶I)⁻¹ e_t / d` (≈ 1 for a consistent filter);
//! - `ms_per_step`, the wall-clock time of one filter update; `pair_to_grad`, the engine's mean
//!   `‖pair term‖ / ‖∇L‖` (RF-PF only).
//!
//! Methods are compared at equal particle counts and, with `--equal-time`, at equal wall-clock time
//! (each method's `n` scaled so its time per step matches the reference method's).

use crate::app::bench::table::Table;
use crate::app::bench::{check_list, group_by, progress, sig3, sub_seed, write_csv, MeanSe};
use crate::app::plot::{save_panels_png, LinePlot, Series};
use crate::core::error::{Error, Result};
use crate::core::filter::kalman::Kalman;
use crate::core::filter::rng::stream;
use crate::core::filter::{FilterKind, FilterSpec, Model, ParticleSet};
use crate::domains::bench::gaussian::Gaussian;
use crate::domains::bench::models::{fill_normal, normal_vector, LinearGaussianModel};
use nalgebra::{DMatrix, DVector};
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

pub use crate::app::bench::method::Method;
use crate::app::bench::method::{check_params_used, parse_param, preset_with, PresetParam};

/// Ridge added to the projected particle covariance before inverting it for NEES.
pub const NEES_RIDGE: f64 = 1e-6;

/// Flags of `hdpf bench tracking`.
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct TrackingArgs {
    /// State dimensions m (comma-separated); filters with the RF-PF pair term (rfpf, rfpf-newton)
    /// need m ≥ 3 and are skipped below.
    #[arg(long, value_delimiter = ',', default_values_t = [2, 10, 50, 100, 500])]
    pub dims: Vec<usize>,
    /// Particle counts n (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [100])]
    pub particles: Vec<usize>,
    /// Independent trials per (m, n).
    #[arg(long, default_value_t = 10)]
    pub trials: usize,
    /// Time steps T.
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// First scored step t₀ (RMSE and NEES average over t₀..=T).
    #[arg(long, default_value_t = 10)]
    pub score_from: usize,
    /// Process noise variance q.
    #[arg(long, default_value_t = 0.01)]
    pub q: f64,
    /// Observation noise variance r.
    #[arg(long, default_value_t = 0.1)]
    pub r: f64,
    /// Observed dimensions as a fraction of m: k = ⌈frac·m⌉ (k < m scores the range of Hᵀ).
    #[arg(long, default_value_t = 1.0)]
    pub obs_frac: f64,
    /// Methods (comma-separated): any filter (rfpf, rfpf-newton, grad, sir, mcl, svgd, enkf, etkf,
    /// gn, …) and `rfpf-po`, rfpf on a partially observed state.
    #[arg(long, value_delimiter = ',', default_values_t = [Method::Filter(FilterKind::Rfpf), Method::Filter(FilterKind::Grad), Method::Filter(FilterKind::Sir), Method::Filter(FilterKind::Mcl)])]
    pub methods: Vec<Method>,
    /// Also compare at equal wall-clock time: every other method gets the particle count that
    /// matches the first method's ms per step. Those counts come from measured times, so these
    /// columns differ between runs and machines (the others are the same for the same seed).
    #[arg(long)]
    pub equal_time: bool,
    /// A preset parameter, `KIND.KEY=VALUE` (repeatable), e.g. `--param rfpf-newton.shrinkage=0.5`.
    #[arg(long = "param", value_parser = parse_param)]
    pub params: Vec<PresetParam>,
    /// Seed of every problem and filter.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory for tracking.csv and the plot.
    #[arg(long, default_value = "out/tracking")]
    pub out: PathBuf,
    /// Skip the PNG plot.
    #[arg(long)]
    pub no_plots: bool,
}

impl Default for TrackingArgs {
    fn default() -> Self {
        Self {
            dims: vec![2, 10, 50, 100, 500],
            particles: vec![100],
            trials: 10,
            steps: 50,
            score_from: 10,
            q: 0.01,
            r: 0.1,
            obs_frac: 1.0,
            methods: Method::ALL[..5]
                .iter()
                .copied()
                .filter(|&m| m != Method::RfpfPo)
                .collect(),
            equal_time: false,
            params: Vec::new(),
            seed: 0,
            out: PathBuf::from("out/tracking"),
            no_plots: false,
        }
    }
}

/// How the particle count of a run was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Budget {
    /// The `--particles` value.
    Particles,
    /// Scaled to match the reference method's wall-clock time per step at this `--particles` value.
    Time(usize),
}

impl fmt::Display for Budget {
    /// `particles`, or `time@n` for the equal-time run against the reference at `n` particles.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Budget::Particles => f.write_str("particles"),
            Budget::Time(n) => write!(f, "time@{n}"),
        }
    }
}

/// One CSV row: a (method, m, n, trial) run.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackRow {
    /// Method.
    pub method: Method,
    /// How `particles` was chosen.
    pub budget: Budget,
    /// State dimension m.
    pub dim: usize,
    /// Particle count n.
    pub particles: usize,
    /// Trial.
    pub trial: usize,
    /// RMSE over the scored steps divided by the Kalman filter's (NaN if the filter failed).
    pub rmse_ratio: f64,
    /// Mean NEES divided by the dimension (NEES/d, ≈ 1 when consistent) over the scored steps.
    pub nees: f64,
    /// Wall-clock milliseconds per update.
    pub ms_per_step: f64,
    /// Mean `‖pair term‖ / ‖∇L‖` over updates (0 without a pair term).
    pub pair_to_grad: f64,
}

/// Mean ± s.e. over trials for one (method, budget, m, n).
#[derive(Clone, Debug, PartialEq)]
pub struct TrackSummary {
    /// Method.
    pub method: Method,
    /// Budget.
    pub budget: Budget,
    /// State dimension m.
    pub dim: usize,
    /// Particle count n.
    pub particles: usize,
    /// RMSE ratio to the KF (finite trials only).
    pub rmse_ratio: MeanSe,
    /// Normalised NEES (finite trials only).
    pub nees: MeanSe,
    /// Milliseconds per update.
    pub ms_per_step: MeanSe,
    /// Pair/gradient ratio.
    pub pair_to_grad: MeanSe,
    /// Trials whose filter failed (non-finite state).
    pub failed: usize,
}

/// Everything a tracking run produced.
#[derive(Clone, Debug)]
pub struct TrackingReport {
    /// Per-trial rows (the Kalman filter's own as method `kf`-less rows are not included).
    pub rows: Vec<TrackRow>,
    /// Per-(method, budget, m, n) summaries.
    pub summary: Vec<TrackSummary>,
    /// The Kalman filter's normalised NEES by m (mean ± s.e.), a sanity check (≈ 1).
    pub kf_nees: Vec<(usize, MeanSe)>,
    /// (method, m) pairs skipped (the RF-PF pair term, of rfpf and rfpf-newton, needs m ≥ 3).
    pub skipped: Vec<(Method, usize)>,
    /// The CSV written.
    pub csv: PathBuf,
    /// The plots written.
    pub plots: Vec<PathBuf>,
}

/// One trial's system: `H`, the true states `x_1..x_T` and observations `y_1..y_T`, the observed
/// subspace basis `U`, and the Kalman filter's scores.
struct Problem {
    model: LinearGaussianModel,
    states: Vec<DVector<f64>>,
    observations: Vec<DVector<f64>>,
    /// Orthonormal basis of the range of `Hᵀ` (`None`: the whole space, `k = m`).
    basis: Option<DMatrix<f64>>,
    /// Kalman filter's `Σ ‖e_t‖²` over the scored steps and its mean NEES.
    kf_sq_err: f64,
    kf_nees: f64,
}

impl Problem {
    fn new(args: &TrackingArgs, dim: usize, trial: usize) -> Result<Self> {
        let k = ((args.obs_frac * dim as f64).ceil() as usize).clamp(1, dim);
        let mut rng = stream(sub_seed(args.seed, &[dim as u64, trial as u64]), 0, 0);
        let scale = 1.0 / (dim as f64).sqrt();
        let h = DMatrix::from_fn(k, dim, |_, _| {
            let z: f64 = StandardNormal.sample(&mut rng);
            scale * z
        });
        let basis = (k < dim).then(|| h.transpose().qr().q());
        let model = LinearGaussianModel::new(h, args.q, args.r)?;
        let mut x = normal_vector(&mut rng, dim);
        let (mut states, mut observations) = (Vec::new(), Vec::new());
        for _ in 0..args.steps {
            x += normal_vector(&mut rng, dim) * args.q.sqrt();
            observations.push(model.h() * &x + normal_vector(&mut rng, k) * args.r.sqrt());
            states.push(x.clone());
        }
        let mut p = Self {
            model,
            states,
            observations,
            basis,
            kf_sq_err: 0.0,
            kf_nees: 0.0,
        };
        p.run_kalman(args)?;
        Ok(p)
    }

    /// Run the Kalman filter (prior `N(0, I)`, `F = I`, `Q = qI`, `R = rI`) and store its scores.
    fn run_kalman(&mut self, args: &TrackingArgs) -> Result<()> {
        let (m, k) = (self.model.dim(), self.model.h().nrows());
        let mut kf = Kalman::new(DVector::zeros(m), DMatrix::identity(m, m))?;
        let (f, q, r) = (
            DMatrix::identity(m, m),
            DMatrix::identity(m, m) * args.q,
            DMatrix::identity(k, k) * args.r,
        );
        let mut score = Score::default();
        for (t, y) in self.observations.iter().enumerate() {
            kf.predict(&f, &q)?;
            kf.update(self.model.h(), &r, y)?;
            if t + 1 >= args.score_from {
                score.add(self, t, &kf.mean, &kf.cov)?;
            }
        }
        self.kf_sq_err = score.sq_err;
        self.kf_nees = score.nees();
        Ok(())
    }

    /// `Uᵀv` (or `v` when the whole space is observed).
    fn project(&self, v: &DVector<f64>) -> DVector<f64> {
        self.basis
            .as_ref()
            .map_or_else(|| v.clone(), |u| u.tr_mul(v))
    }

    /// `UᵀΣU` (or `Σ`).
    fn project_cov(&self, c: &DMatrix<f64>) -> DMatrix<f64> {
        self.basis
            .as_ref()
            .map_or_else(|| c.clone(), |u| u.tr_mul(c) * u)
    }
}

/// Running sums of squared error and NEES over the scored steps.
#[derive(Default)]
struct Score {
    sq_err: f64,
    nees_sum: f64,
    steps: usize,
}

impl Score {
    /// Add step `t`'s estimate `N(mean, cov)`, projected on the observed subspace.
    fn add(
        &mut self,
        p: &Problem,
        t: usize,
        mean: &DVector<f64>,
        cov: &DMatrix<f64>,
    ) -> Result<()> {
        let e = p.project(&(mean - &p.states[t]));
        let c = p.project_cov(cov);
        let d = e.len();
        let g = Gaussian::new(DVector::zeros(d), c + DMatrix::identity(d, d) * NEES_RIDGE)?;
        self.sq_err += e.norm_squared();
        self.nees_sum += g.nees(&e);
        self.steps += 1;
        Ok(())
    }

    fn nees(&self) -> f64 {
        self.nees_sum / self.steps.max(1) as f64
    }
}

/// Run `method` with `n` particles on `problem`; a filter failure (an update error or a cloud
/// that cannot be scored) gives NaN scores and counts in the `failed` column.
fn run_filter(
    args: &TrackingArgs,
    p: &Problem,
    method: Method,
    budget: Budget,
    n: usize,
    dim: usize,
    trial: usize,
) -> Result<TrackRow> {
    let seed = sub_seed(
        args.seed,
        &[dim as u64, trial as u64, n as u64, method.order() as u64],
    );
    let mut model = p.model.clone();
    let spec = FilterSpec {
        preset: preset_with(method.kind(), &args.params)?,
        particles: n,
        seed,
    };
    let mut filter = spec.build(&model)?;
    let k = model.h().nrows();
    let (mut score, mut seconds, mut pair) = (Score::default(), 0.0, 0.0);
    let mut noise = vec![0.0; if method == Method::RfpfPo { n * k } else { 0 }];
    let mut failed = false;
    for (t, y) in p.observations.iter().enumerate() {
        model.observe(y.clone())?;
        if method == Method::RfpfPo {
            noise.par_chunks_mut(k).enumerate().for_each(|(i, row)| {
                fill_normal(&mut stream(seed ^ 0x706f, t as u64, i as u64), row)
            });
            filter.particles_mut().set_payload(k, noise.clone())?;
        }
        let start = Instant::now();
        let diag = match filter.update(&model) {
            Ok(d) => d,
            Err(_) => {
                failed = true;
                break;
            }
        };
        seconds += start.elapsed().as_secs_f64();
        pair += diag.pair_to_grad;
        // A cloud whose covariance cannot be scored (non-finite, or not positive definite even
        // with the ridge) counts as a failed trial, like a failed update.
        let ps: &ParticleSet = filter.particles();
        if t + 1 >= args.score_from && score.add(p, t, &ps.mean(), &ps.covariance()).is_err() {
            failed = true;
            break;
        }
    }
    let steps = args.steps as f64;
    let ratio = (score.sq_err / p.kf_sq_err).sqrt();
    Ok(TrackRow {
        method,
        budget,
        dim,
        particles: n,
        trial,
        rmse_ratio: if failed { f64::NAN } else { ratio },
        nees: if failed { f64::NAN } else { score.nees() },
        ms_per_step: seconds * 1e3 / steps,
        pair_to_grad: pair / steps,
    })
}

/// Run the study: for every m and trial one system, the Kalman filter, then every method at every
/// particle count (and, with `--equal-time`, at the reference method's time per step).
///
/// Trials run one after another so that `ms_per_step` measures a filter alone on the machine; each
/// update is itself parallel over particles.
pub fn run(args: &TrackingArgs) -> Result<TrackingReport> {
    check_list("dims", &args.dims, 1)?;
    check_list("particles", &args.particles, 1)?;
    check_list("trials", &[args.trials], 1)?;
    // Each trial keeps its m×m-sized matrices (H, its basis, the Kalman covariance) for every m.
    let m = args.dims.iter().copied().max().unwrap_or(1);
    crate::core::memory::check("dims", m, &[m, m, args.trials, 4], 8)?;
    crate::core::memory::check("steps", args.steps, &[args.steps, m, args.trials], 8)?;
    if args.score_from == 0 || args.score_from > args.steps {
        return Err(Error::param(
            "score-from",
            args.score_from,
            format!("must lie in 1..={}", args.steps),
        ));
    }
    if !(args.obs_frac > 0.0 && args.obs_frac <= 1.0) {
        return Err(Error::param(
            "obs-frac",
            args.obs_frac,
            "must lie in (0, 1]",
        ));
    }
    if args.methods.is_empty() {
        return Err(Error::param(
            "methods",
            "(empty)",
            "give at least one method",
        ));
    }
    let kinds: Vec<FilterKind> = args.methods.iter().map(|m| m.kind()).collect();
    check_params_used(&args.params, &kinds)?;
    // Every method's preset is built once here (a bad parameter is refused before any trial). A
    // preset with the RF-PF pair term (rfpf; rfpf-newton unless pair = false) needs m ≥ 3: its
    // rows below that are skipped and said, not failed.
    let min_dims: std::collections::HashMap<Method, usize> = (args.methods.iter())
        .map(|&m| Ok((m, preset_with(m.kind(), &args.params)?.min_dim())))
        .collect::<Result<_>>()?;
    let runnable = |method: Method, dim: usize| dim >= min_dims.get(&method).copied().unwrap_or(1);
    let mut rows = Vec::new();
    let mut kf_nees = Vec::new();
    let mut skipped = Vec::new();
    let per_dim = args.trials
        * args.methods.len()
        * args.particles.len()
        * if args.equal_time { 2 } else { 1 };
    let bar = progress(args.dims.len() * per_dim, "tracking");
    for &dim in &args.dims {
        skipped.extend(
            args.methods
                .iter()
                .filter(|&&m| !runnable(m, dim))
                .map(|&m| (m, dim)),
        );
        let methods: Vec<Method> = args
            .methods
            .iter()
            .copied()
            .filter(|&m| runnable(m, dim))
            .collect();
        let mut problems = Vec::with_capacity(args.trials);
        let mut kf = Vec::with_capacity(args.trials);
        for trial in 0..args.trials {
            let p = Problem::new(args, dim, trial)?;
            kf.push(p.kf_nees);
            problems.push(p);
        }
        kf_nees.push((dim, MeanSe::of(&kf)));
        let mut dim_rows = Vec::new();
        for &n in &args.particles {
            for &method in &methods {
                for (trial, p) in problems.iter().enumerate() {
                    dim_rows.push(run_filter(
                        args,
                        p,
                        method,
                        Budget::Particles,
                        n,
                        dim,
                        trial,
                    )?);
                    bar.inc();
                }
            }
        }
        if args.equal_time {
            for &n in &args.particles {
                for (method, scaled) in equal_time_counts(&dim_rows, &methods, n) {
                    for (trial, p) in problems.iter().enumerate() {
                        dim_rows.push(run_filter(
                            args,
                            p,
                            method,
                            Budget::Time(n),
                            scaled,
                            dim,
                            trial,
                        )?);
                        bar.inc();
                    }
                }
            }
        }
        rows.extend(dim_rows);
    }
    bar.finish();
    let summary = summarize(&rows);
    let csv = args.out.join("tracking.csv");
    write_csv(
        &csv,
        "method,dim,particles,trial,rmse_ratio,nees_per_dim,ms_per_step,pair_to_grad,budget",
        rows.iter().map(|r| {
            format!(
                "{},{},{},{},{},{},{},{},{}",
                r.method,
                r.dim,
                r.particles,
                r.trial,
                r.rmse_ratio,
                r.nees,
                r.ms_per_step,
                r.pair_to_grad,
                r.budget
            )
        }),
    )?;
    let plots = if args.no_plots {
        Vec::new()
    } else {
        vec![write_plot(args, &summary)?]
    };
    Ok(TrackingReport {
        rows,
        summary,
        kf_nees,
        skipped,
        csv,
        plots,
    })
}

/// Particle counts that give every method after the first (the reference) the reference's mean
/// time per step at `n` particles, assuming time ∝ n: `n' = n · ms_ref / ms_method`.
fn equal_time_counts(rows: &[TrackRow], methods: &[Method], n: usize) -> Vec<(Method, usize)> {
    let ms = |m: Method| {
        let sel = rows
            .iter()
            .filter(|r| r.method == m && r.particles == n && r.budget == Budget::Particles);
        MeanSe::of(&sel.map(|r| r.ms_per_step).collect::<Vec<_>>()).mean
    };
    let Some(&reference) = methods.first() else {
        return Vec::new();
    };
    let target = ms(reference);
    methods
        .iter()
        .skip(1)
        .map(|&m| {
            (
                m,
                ((n as f64 * target / ms(m)).round() as usize).clamp(2, 1_000_000),
            )
        })
        .collect()
}

/// Group rows by (method, budget, m, n) and average over trials.
fn summarize(rows: &[TrackRow]) -> Vec<TrackSummary> {
    group_by(rows, |r| (r.method.order(), r.budget, r.dim, r.particles))
        .into_iter()
        .map(|g| {
            let ok: Vec<&TrackRow> = g
                .iter()
                .copied()
                .filter(|r| r.rmse_ratio.is_finite())
                .collect();
            TrackSummary {
                method: g[0].method,
                budget: g[0].budget,
                dim: g[0].dim,
                particles: g[0].particles,
                rmse_ratio: MeanSe::over(&ok, |r| r.rmse_ratio),
                nees: MeanSe::over(&ok, |r| r.nees),
                ms_per_step: MeanSe::over(&ok, |r| r.ms_per_step),
                pair_to_grad: MeanSe::over(&ok, |r| r.pair_to_grad),
                failed: g.len() - ok.len(),
            }
        })
        .collect()
}

/// Picks one statistic out of a summary.
type Pick = fn(&TrackSummary) -> MeanSe;

/// RMSE ratio, NEES and ms per step vs m (log–log): for every `--particles` value `n` a row of
/// panels at equal particles (a curve per method) and, with `--equal-time`, a row at the reference
/// method's time per step at `n` (the reference drawn at its own `n`).
fn write_plot(args: &TrackingArgs, summary: &[TrackSummary]) -> Result<PathBuf> {
    let metrics: [(&str, Pick); 3] = [
        ("RMSE / RMSE of KF", |s| s.rmse_ratio),
        ("NEES / d", |s| s.nees),
        ("ms per step", |s| s.ms_per_step),
    ];
    let mut panels = Vec::new();
    let budgets = args.particles.iter().flat_map(|&n| {
        let time = args.equal_time.then_some((n, Budget::Time(n)));
        std::iter::once((n, Budget::Particles)).chain(time)
    });
    for (n, budget) in budgets {
        let reference = args.methods.first();
        let mut curves: BTreeMap<usize, Vec<&TrackSummary>> = BTreeMap::new();
        for s in summary.iter().filter(|s| s.rmse_ratio.count > 0) {
            let own = s.budget == Budget::Particles && s.particles == n;
            let shown = match budget {
                Budget::Particles => own,
                Budget::Time(_) => s.budget == budget || (own && reference == Some(&s.method)),
            };
            if shown {
                curves.entry(s.method.order()).or_default().push(s);
            }
        }
        if curves.is_empty() {
            continue;
        }
        for (label, pick) in metrics {
            let title = match budget {
                Budget::Particles => format!("{label}, n = {n}"),
                Budget::Time(_) => format!("{label}, time of {} at n = {n}", args.methods[0]),
            };
            let mut plot = LinePlot::new(title, "dimension m", label);
            plot.log_x = true;
            plot.log_y = true;
            for g in curves.values() {
                let points = g.iter().map(|s| (s.dim as f64, pick(s).mean)).collect();
                let err = g.iter().map(|s| pick(s).se).collect();
                plot.series
                    .push(Series::new(g[0].method.to_string(), points).with_err(err));
            }
            panels.push(plot);
        }
    }
    let path = args.out.join("tracking.png");
    save_panels_png(&path, &panels, 3)?;
    Ok(path)
}

impl fmt::Display for TrackingReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Tracking vs the Kalman filter: mean ± s.e. over trials (scored on the observed subspace)")?;
        let mut t = Table::new([
            "method",
            "budget",
            "m",
            "n",
            "RMSE/KF",
            "NEES/d",
            "ms/step",
            "pair/grad",
            "failed",
        ]);
        for s in &self.summary {
            t.push([
                s.method.to_string(),
                s.budget.to_string(),
                s.dim.to_string(),
                s.particles.to_string(),
                s.rmse_ratio.to_string(),
                s.nees.to_string(),
                s.ms_per_step.to_string(),
                sig3(s.pair_to_grad.mean),
                s.failed.to_string(),
            ]);
        }
        writeln!(f, "{t}")?;
        let kf: Vec<String> = self
            .kf_nees
            .iter()
            .map(|(m, s)| format!("m = {m}: {s}"))
            .collect();
        writeln!(
            f,
            "Kalman filter NEES/d (≈ 1 when consistent): {}",
            kf.join(", ")
        )?;
        for (method, m) in &self.skipped {
            writeln!(
                f,
                "skipped {method} at m = {m} (the RF-PF pair term needs m ≥ 3)"
            )?;
        }
        writeln!(f, "wrote {}", self.csv.display())?;
        self.plots
            .iter()
            .try_for_each(|p| writeln!(f, "wrote {}", p.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(dir: &str) -> TrackingArgs {
        TrackingArgs {
            dims: vec![2, 20],
            particles: vec![100],
            trials: 2,
            steps: 30,
            out: std::env::temp_dir().join(format!("hdpf-track-{dir}-{}", std::process::id())),
            no_plots: true,
            ..TrackingArgs::default()
        }
    }

    #[test]
    fn kalman_is_consistent_and_rfpf_tracks() {
        let args = small("basic");
        let report = run(&args).unwrap();
        // The KF's NEES/d averages 1. At m = 20 it averages 2 trials × 21 steps × 20 coordinates
        // (correlated over time, so the s.e. is ≈ 0.15 rather than 0.05): 0.5..2 is a safe band.
        // At m = 2 there are too few coordinates for a tight check, so only m = 20 is asserted.
        let kf20 = report.kf_nees.iter().find(|(m, _)| *m == 20).unwrap().1;
        assert!((0.5..2.0).contains(&kf20.mean), "{report}");
        let get = |m: Method, dim| {
            report
                .summary
                .iter()
                .find(|s| s.method == m && s.dim == dim)
                .unwrap()
        };
        // RF-PF with sub-stepping stays within 1.5× of the KF at m = 20 (the prototype: 1.14–1.31).
        let rfpf = get(Method::Filter(FilterKind::Rfpf), 20);
        assert_eq!(rfpf.failed, 0);
        assert!(rfpf.rmse_ratio.mean < 1.5, "{report}");
        // At m = 20 no filter beats the exact posterior mean by more than Monte-Carlo noise.
        let mut at20 = report.summary.iter().filter(|s| s.dim == 20);
        assert!(at20.all(|s| s.rmse_ratio.mean > 0.9), "{report}");
        assert!(report
            .skipped
            .contains(&(Method::Filter(FilterKind::Rfpf), 2)));
        let csv = std::fs::read_to_string(&report.csv).unwrap();
        assert!(csv.starts_with("method,dim,particles,trial,rmse_ratio,nees_per_dim,ms_per_step"));
        std::fs::remove_dir_all(&args.out).ok();
    }

    /// rfpf-newton's default pair term needs m ≥ 3: at m = 2 its rows are skipped and said, and
    /// the study goes on (the build's refusal ended the whole study); with `pair = false` it runs.
    #[test]
    fn a_pair_term_filter_below_three_dimensions_is_skipped() {
        let newton = Method::Filter(FilterKind::RfpfNewton);
        let args = TrackingArgs {
            dims: vec![2, 4],
            trials: 1,
            steps: 12,
            methods: vec![newton, Method::Filter(FilterKind::Sir)],
            ..small("pair-dims")
        };
        let report = run(&args).unwrap();
        assert_eq!(report.skipped, vec![(newton, 2)]);
        let params = vec!["rfpf-newton.pair=false".parse().unwrap()];
        let report = run(&TrackingArgs {
            params,
            ..args.clone()
        })
        .unwrap();
        assert!(report.skipped.is_empty());
        std::fs::remove_dir_all(&args.out).ok();
    }

    /// SVGD at n = 50, m = 50, where the unsplit flow (η = 1, no Lipschitz split, no prior) diverged
    /// in all ten trials of seeds 100–109: with the split every trial stays finite and within 2× the
    /// KF's RMSE (seeds 100–109: 1.24 ± 0.02), and the unsplit flow still fails here (fixed seed
    /// 0), so the test sees the difference.
    #[test]
    fn svgd_does_not_diverge_at_n50() {
        let mut args = small("svgd");
        args.dims = vec![50];
        args.particles = vec![50];
        args.methods = vec![Method::Filter(FilterKind::Svgd)];
        let report = run(&args).unwrap();
        let s = &report.summary[0];
        assert_eq!(s.failed, 0, "{report}");
        assert!(s.rmse_ratio.mean < 2.0, "{report}");
        args.params = vec![
            "svgd.split=false".parse().unwrap(),
            "svgd.prior=false".parse().unwrap(),
        ];
        let unsplit = run(&args).unwrap();
        assert!(unsplit.summary[0].failed > 0, "{unsplit}");
        std::fs::remove_dir_all(&args.out).ok();
    }

    /// `--param KIND.KEY=VALUE` overrides one preset's key; a wrong key or value names it.
    #[test]
    fn preset_params_override_and_refuse_clearly() {
        use crate::app::bench::method::preset_with;
        use crate::core::filter::{Preset, Shrinkage};
        let p: PresetParam = "rfpf-newton.shrinkage={ratio=0.5}".parse().unwrap();
        match preset_with(FilterKind::RfpfNewton, &[p]).unwrap() {
            Preset::RfpfNewton(n) => assert_eq!(n.shrinkage, Shrinkage::Ratio { ratio: 0.5 }),
            other => panic!("{other:?}"),
        }
        let bad: PresetParam = "etkf.sigma=1".parse().unwrap();
        let e = preset_with(FilterKind::Etkf, &[bad])
            .unwrap_err()
            .to_string();
        assert!(e.contains("etkf.sigma"), "{e}");
        assert!("etkf".parse::<PresetParam>().is_err());
        assert!("kalman.x=1".parse::<PresetParam>().is_err());
    }

    #[test]
    fn observed_subspace_and_extensions() {
        let mut args = small("sub");
        args.dims = vec![10];
        args.obs_frac = 0.5;
        args.methods = vec![
            Method::Filter(FilterKind::Rfpf),
            Method::RfpfPo,
            Method::Filter(FilterKind::Sir),
        ];
        args.equal_time = true;
        let report = run(&args).unwrap();
        let get = |m: Method, b| {
            report
                .summary
                .iter()
                .find(|s| s.method == m && s.budget == b)
                .unwrap()
        };
        // Perturbed observations keep the cloud spread: NEES well below plain RF-PF's.
        let po = get(Method::RfpfPo, Budget::Particles);
        let plain = get(Method::Filter(FilterKind::Rfpf), Budget::Particles);
        assert!(po.nees.mean < plain.nees.mean, "{report}");
        assert!(report.summary.iter().any(|s| s.budget == Budget::Time(100)));
        assert!(
            "rfpf-po".parse::<Method>().unwrap() == Method::RfpfPo
                && "x".parse::<Method>().is_err()
        );
        std::fs::remove_dir_all(&args.out).ok();
    }
}
