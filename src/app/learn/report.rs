//! Output files of `hdpf learn`: CSV tables, `summary.json`, `run.json` and the plot data.

use crate::app::learn::args::{LearnArgs, MethodSpec, MethodSummary};
use crate::app::plot::{save_panels_png, LinePlot, Series};
use crate::core::error::{Error, Result};
use crate::domains::learn::data::Source;
use crate::domains::learn::methods::Method;
use crate::domains::learn::metrics::{final_accuracy, forgetting, mean};
use crate::domains::learn::train::RunResult;
use crate::domains::learn::wpf::Readout;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

fn json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::format(path, format!("JSON encoding: {e}")))?;
    write(path, &text)
}

/// What a study produced: the methods that ran to the end and those that failed.
pub struct Results<'a> {
    /// Methods that completed every order.
    pub specs: &'a [MethodSpec],
    /// Their runs, per (method, trained by the PF).
    pub runs: &'a BTreeMap<(Method, bool), Vec<RunResult>>,
    /// Their summaries, by name.
    pub methods: &'a [(String, MethodSummary)],
    /// `(name, why)` of the methods that failed.
    pub failures: &'a [(String, String)],
}

/// Write every output file of the study into `args.out`.
pub fn write_outputs(
    args: &LearnArgs,
    source: &Source,
    results: &Results,
    table: &str,
) -> Result<()> {
    let Results {
        specs,
        runs,
        methods,
        failures,
    } = *results;
    let dir = &args.out;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write_runs(dir, specs, runs, false)?;
    let summary: serde_json::Map<String, serde_json::Value> = methods
        .iter()
        .map(|(n, s)| {
            Ok((
                n.clone(),
                serde_json::to_value(s).map_err(|e| Error::Other(e.to_string()))?,
            ))
        })
        .collect::<Result<_>>()?;
    json(&dir.join("summary.json"), &summary)?;
    json(
        &dir.join("run.json"),
        &serde_json::json!({
            "source": source,
            "evaluated_on": crate::app::learn::args::evaluated_on(args),
            "args": format!("{args:?}"),
            "methods": specs,
            "failed": failures
                .iter()
                .map(|(name, why)| serde_json::json!({ "method": name, "error": why }))
                .collect::<Vec<_>>(),
        }),
    )?;
    write(&dir.join("table.txt"), table)?;
    write(&dir.join("curve.csv"), &curve_csv(methods))?;
    let panels = [accuracy_plot(args, methods), ess_plot(runs)];
    save_panels_png(dir.join("accuracy.png"), &panels, 2)
}

/// The per-run tables, by file stem.
const RUN_TABLES: [&str; 4] = ["results", "readouts", "acc_matrix", "ess"];

/// Creates `dir` and checks that a file can be written there (a probe, removed again), before any
/// training, without touching an earlier study's files.
pub fn check_writable(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let probe = dir.join(".hdpf-write-check");
    write(&probe, "")?;
    std::fs::remove_file(&probe).map_err(|e| Error::io(&probe, e))
}

/// Write the per-run tables (`results.csv`, `readouts.csv`, `acc_matrix.csv`, `ess.csv`) of the
/// runs finished so far into `dir`. With `partial` they go to `STEM.partial.csv` (after every
/// order, so an interrupted study keeps its finished orders and an earlier study's tables in the
/// same folder stay as they were); without, to the final names, and the partial files are removed.
pub fn write_runs(
    dir: &Path,
    specs: &[MethodSpec],
    runs: &BTreeMap<(Method, bool), Vec<RunResult>>,
    partial: bool,
) -> Result<()> {
    let tables = [
        results_csv(specs, runs),
        readouts_csv(runs),
        matrix_csv(specs, runs),
        ess_csv(runs),
    ];
    let name = |stem: &str, partial: bool| match partial {
        true => dir.join(format!("{stem}.partial.csv")),
        false => dir.join(format!("{stem}.csv")),
    };
    for (stem, text) in RUN_TABLES.iter().zip(&tables) {
        write(&name(stem, partial), text)?;
    }
    if !partial {
        for stem in RUN_TABLES {
            let _ = std::fs::remove_file(name(stem, true));
        }
    }
    Ok(())
}

/// Average accuracy on the tasks seen so far after each task, per method, ± its std over orders.
fn accuracy_plot(args: &LearnArgs, methods: &[(String, MethodSummary)]) -> LinePlot {
    let mut plot = LinePlot::new(
        format!("SplitDigits {:?}-IL, {:?} head", args.scenario, args.head),
        "tasks trained",
        "accuracy on tasks seen (%)",
    );
    plot.y_bounds = Some((0.0, 100.0));
    for (name, s) in methods {
        let points = (1..)
            .zip(&s.curve_mean)
            .map(|(t, m)| (t as f64, 100.0 * m))
            .collect();
        let err = s.curve_std.iter().map(|v| 100.0 * v).collect();
        plot.series
            .push(Series::new(name.clone(), points).with_err(err));
    }
    plot
}

/// ESS after each update of the PF runs, mean over orders.
fn ess_plot(runs: &BTreeMap<(Method, bool), Vec<RunResult>>) -> LinePlot {
    let mut plot = LinePlot::new("WPF effective sample size", "update", "ESS");
    for (&(method, pf), rs) in runs.iter().filter(|((_, pf), _)| *pf) {
        let steps = rs.iter().map(|r| r.ess.len()).min().unwrap_or(0);
        let points = (0..steps)
            .map(|k| {
                (
                    k as f64,
                    mean(&rs.iter().map(|r| r.ess[k]).collect::<Vec<_>>()),
                )
            })
            .collect();
        plot.series.push(Series::new(run_name(method, pf), points));
    }
    plot
}

/// `X` or `X+pf`, as on the command line.
pub(crate) fn run_name(method: Method, pf: bool) -> String {
    format!("{}{}", method.name(), if pf { "+pf" } else { "" })
}

/// `method,order,final_acc,forgetting,mean_ess,final_ess,seconds`.
fn results_csv(specs: &[MethodSpec], runs: &BTreeMap<(Method, bool), Vec<RunResult>>) -> String {
    let mut t =
        String::from("method,readout,order,final_acc,forgetting,mean_ess,final_ess,seconds\n");
    for s in specs {
        for (o, r) in runs
            .get(&(s.method, s.pf))
            .into_iter()
            .flatten()
            .enumerate()
        {
            let m = r.matrix(s.readout);
            let _ = writeln!(
                t,
                "{},{},{o},{:.6},{:.6},{:.4},{:.4},{:.3}",
                s.name,
                s.readout.name(),
                final_accuracy(m),
                forgetting(m),
                mean(&r.ess),
                r.ess.last().copied().unwrap_or(1.0),
                r.seconds
            );
        }
    }
    t
}

/// Every readout of every run: `run,order,readout,final_acc,forgetting`.
fn readouts_csv(runs: &BTreeMap<(Method, bool), Vec<RunResult>>) -> String {
    let mut t = String::from("run,order,readout,final_acc,forgetting\n");
    for (&(method, pf), rs) in runs {
        for (o, r) in rs.iter().enumerate() {
            for readout in Readout::ALL {
                let m = r.matrix(readout);
                let _ = writeln!(
                    t,
                    "{},{o},{},{:.6},{:.6}",
                    run_name(method, pf),
                    readout.name(),
                    final_accuracy(m),
                    forgetting(m)
                );
            }
        }
    }
    t
}

/// `method,order,after_task,task,acc` (task positions in training order).
fn matrix_csv(specs: &[MethodSpec], runs: &BTreeMap<(Method, bool), Vec<RunResult>>) -> String {
    let mut t = String::from("method,order,after_task,task,acc\n");
    for s in specs {
        for (o, r) in runs
            .get(&(s.method, s.pf))
            .into_iter()
            .flatten()
            .enumerate()
        {
            for (a, row) in r.matrix(s.readout).iter().enumerate() {
                for (j, acc) in row.iter().enumerate() {
                    let _ = writeln!(t, "{},{o},{a},{j},{acc:.6}", s.name);
                }
            }
        }
    }
    t
}

/// `method,after_task,mean,std`: average accuracy on the tasks seen so far.
pub fn curve_csv(methods: &[(String, MethodSummary)]) -> String {
    let mut t = String::from("method,after_task,mean,std\n");
    for (n, s) in methods {
        for (a, (m, sd)) in s.curve_mean.iter().zip(&s.curve_std).enumerate() {
            let _ = writeln!(t, "{n},{},{m:.6},{sd:.6}", a + 1);
        }
    }
    t
}

/// `run,order,step,ess` for the PF runs.
fn ess_csv(runs: &BTreeMap<(Method, bool), Vec<RunResult>>) -> String {
    let mut t = String::from("run,order,step,ess\n");
    for (&(method, pf), rs) in runs.iter().filter(|((_, pf), _)| *pf) {
        for (o, r) in rs.iter().enumerate() {
            for (k, e) in r.ess.iter().enumerate() {
                let _ = writeln!(t, "{},{o},{k},{e:.4}", run_name(method, pf));
            }
        }
    }
    t
}
