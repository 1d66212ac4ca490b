//! `hdpf bench soak`: run a launch file's pipeline for a set time and report, per interval (a
//! minute by default), the resident memory (RSS), the capture→publish latency p50/p99 of each
//! tracker, the frames processed and the frames dropped — the evidence that a long-running tracker
//! neither leaks nor slows down. Written as `soak.csv`, `soak.json` and `soak.png` in `--out`.
//!
//! RSS is sampled every 100 ms; an interval reports the mean and the peak of its samples (a single
//! reading swings by the frames in flight, 1.5–3 MB each at 640×480).
//!
//! Verdicts (issue 14): RSS growth after the first interval (the warm-up: renderer, caches and the
//! allocator's pools fill), `max_{k≥3} RSS̄_k / RSS̄_2 − 1` with `RSS̄` an interval's mean (≤ 5 %);
//! latency drift, `p99_last / p99_2 − 1` (within ±25 %); drops accounted exactly: for every tracker,
//! `emitted = processed + dropped(decode) + dropped(filter:NAME) + skipped`.

use crate::app::launch;
use crate::app::plot::{LinePlot, Series};
use crate::core::error::{Error, Result};
use crate::core::stats::{percentile, Rank};
use crate::runtime::pipeline::message::SinkMsg;
use crate::runtime::pipeline::{RunSummary, Sink};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `hdpf bench soak` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct SoakArgs {
    /// The launch file to soak: a `track` run, usually with a live `synth` source.
    #[arg(long, default_value = "launch/soak.toml")]
    pub launch: PathBuf,
    /// Override a key of the launch file (as `hdpf launch --set`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// How long to run, in minutes.
    #[arg(long, default_value_t = 10.0)]
    pub minutes: f64,
    /// Report interval in seconds.
    #[arg(long, default_value_t = 60.0)]
    pub interval_s: f64,
    /// Output folder for soak.csv, soak.json and soak.png.
    #[arg(long, default_value = "out/soak")]
    pub out: PathBuf,
}

/// One interval's figures.
#[derive(Clone, Debug, Serialize)]
pub struct SoakRow {
    /// Interval number, from 1.
    pub interval: usize,
    /// Seconds since the start at the end of the interval.
    pub t_end_s: f64,
    /// Resident memory of the process, mean of the interval's samples (MiB; NaN where unknown).
    pub rss_mib: f64,
    /// Resident memory, largest sample of the interval (MiB; NaN where unknown).
    pub rss_peak_mib: f64,
    /// Heap bytes in use ([`crate::app::allocator::heap_in_use`]), mean of the interval's
    /// samples (MiB; NaN where unknown): growing with it, the RSS is a leak; flat, fragmentation.
    pub heap_mib: f64,
    /// Frames the source emitted in the interval.
    pub emitted: u64,
    /// Frames dropped by `latest` queues in the interval (all queues).
    pub dropped: u64,
    /// Per tracker: frames and latency in the interval.
    pub trackers: Vec<TrackerWindow>,
}

/// One tracker over one interval.
#[derive(Clone, Debug, Serialize)]
pub struct TrackerWindow {
    /// Tracker name.
    pub tracker: String,
    /// Frames it published in the interval.
    pub frames: usize,
    /// Capture→publish latency, median (ms).
    pub latency_p50_ms: f64,
    /// Capture→publish latency, 99th percentile (ms).
    pub latency_p99_ms: f64,
}

/// The whole soak: rows, the run summary and the verdicts.
#[derive(Debug, Serialize)]
pub struct SoakReport {
    /// One row per interval.
    pub rows: Vec<SoakRow>,
    /// RSS growth after the first interval, `max_{k≥3} RSS̄_k / RSS̄_2 − 1` (NaN with fewer than 3).
    pub rss_growth: f64,
    /// The same for the heap in use (the allocator's count; NaN where unknown): a leak when it
    /// grows with the RSS.
    pub heap_growth: f64,
    /// Per tracker, `p99_last / p99_2 − 1` (NaN with fewer than 3 intervals).
    pub p99_drift: Vec<(String, f64)>,
    /// Per tracker, whether `emitted = processed + dropped + skipped` holds exactly.
    pub drops_accounted: Vec<(String, bool)>,
    /// The pipeline's own summary at the end.
    pub summary: RunSummary,
}

/// Records each estimate's tracker and latency for the interval being measured.
struct Probe(Arc<Mutex<Vec<(String, f64)>>>);

impl Sink for Probe {
    fn name(&self) -> &str {
        "soak-probe"
    }
    fn handle(&mut self, msg: &SinkMsg) -> Result<()> {
        if let SinkMsg::Estimate(m) = msg {
            if let Ok(mut s) = self.0.lock() {
                s.push((m.tracker.clone(), m.latency() * 1e3));
            }
        }
        Ok(())
    }
}

/// Resident set size of this process (Linux `/proc/self/status`, `VmRSS`), in bytes.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn check(args: &SoakArgs) -> Result<()> {
    let ok = |v: f64| v.is_finite() && v > 0.0;
    if !ok(args.minutes) {
        return Err(Error::param("--minutes", args.minutes, "must be > 0"));
    }
    if !(args.interval_s >= MIN_INTERVAL_S && args.interval_s.is_finite()) {
        return Err(Error::param(
            "--interval-s",
            args.interval_s,
            format!("must be at least {MIN_INTERVAL_S} s (RSS is sampled every 100 ms)"),
        ));
    }
    Ok(())
}

/// Shortest report interval: ten RSS samples.
pub const MIN_INTERVAL_S: f64 = 1.0;

/// Refuses a launch file whose run is not a tracking pipeline.
fn check_run(launch: &launch::Launch) -> Result<()> {
    match launch.file.run {
        launch::RunKind::Track => Ok(()),
        other => Err(Error::format(
            &launch.path,
            format!(
                "bench soak runs a `run = \"track\"` pipeline; this file is `run = \"{}\"` \
                 (soak its pipeline by copying it with `run = \"track\"`)",
                other.name()
            ),
        )),
    }
}

/// Run the soak and write its files; returns the report.
pub fn run(args: &SoakArgs) -> Result<SoakReport> {
    check(args)?;
    let first = launch::load(&args.launch, &args.set)?;
    check_run(&first)?;
    let rate = *first.file.pipeline.rate_hz.get_ref();
    let mut overrides = args.set.clone();
    if first
        .file
        .source
        .as_ref()
        .is_some_and(|s| s.kind.get_ref() == "synth")
    {
        // Enough synthetic frames for the whole soak plus a margin, and no more (the ground truth
        // of every frame is held up front; with `period` the poses loop and only they are kept).
        let frames = ((args.minutes * 60.0 + 30.0) * rate.max(1.0)).ceil();
        overrides.push(format!("source.synth.frames={frames}"));
    }
    let launch = launch::load(&args.launch, &overrides)?;
    crate::runtime::pipeline::install_ctrlc();
    let mut built = launch::build(&launch)?;
    let samples = Arc::new(Mutex::new(Vec::new()));
    built.pipeline.add_sink(Box::new(Probe(samples.clone())));
    let names = built.pipeline.tracker_names();
    let running = built.pipeline.spawn();
    let (start, total) = (
        Instant::now(),
        crate::core::duration::seconds(args.minutes * 60.0),
    );
    let mut rows = Vec::new();
    let mut last = running.counters();
    while start.elapsed() < total && !running.is_finished() {
        let end = (rows.len() + 1) as f64 * args.interval_s;
        let end = crate::core::duration::seconds(end).min(total);
        let (mut rss, mut heap) = (Vec::new(), Vec::new());
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        while start.elapsed() < end && !running.is_finished() {
            std::thread::sleep(Duration::from_millis(100));
            rss.extend(rss_bytes().map(mib));
            heap.extend(crate::app::allocator::heap_in_use().map(mib));
        }
        let now = running.counters();
        let taken = samples
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        let counts = (&last, &now);
        let row = window(
            rows.len() + 1,
            start.elapsed(),
            &names,
            &taken,
            [&rss, &heap],
            counts,
        );
        eprintln!("{}", describe(&row));
        rows.push(row);
        last = now;
    }
    running.stop();
    let summary = running.join().summary;
    let report = verdicts(rows, summary, &names);
    write(&args.out, &report)?;
    Ok(report)
}

type Counters = (u64, u64);

/// Interval `k` ending at `t`: each tracker's latency `samples`, the mean and peak of the `rss`
/// samples and the mean of the `heap` samples (MiB; NaN without any), and the source counters
/// between `last` and `now`.
fn window(
    k: usize,
    t: Duration,
    names: &[String],
    samples: &[(String, f64)],
    [rss, heap]: [&[f64]; 2],
    (last, now): (&Counters, &Counters),
) -> SoakRow {
    let mean = |v: &[f64]| match v.len() {
        0 => f64::NAN,
        n => v.iter().sum::<f64>() / n as f64,
    };
    let trackers = names
        .iter()
        .map(|n| {
            let lat: Vec<f64> = samples.iter().filter(|s| &s.0 == n).map(|s| s.1).collect();
            TrackerWindow {
                tracker: n.clone(),
                frames: lat.len(),
                latency_p50_ms: percentile(&lat, 0.5, Rank::Nearest),
                latency_p99_ms: percentile(&lat, 0.99, Rank::Nearest),
            }
        })
        .collect();
    SoakRow {
        interval: k,
        t_end_s: t.as_secs_f64(),
        rss_mib: mean(rss),
        rss_peak_mib: rss.iter().copied().fold(f64::NAN, f64::max),
        heap_mib: mean(heap),
        emitted: now.0 - last.0,
        dropped: now.1 - last.1,
        trackers,
    }
}

fn describe(r: &SoakRow) -> String {
    let per: Vec<String> = r
        .trackers
        .iter()
        .map(|t| {
            format!(
                "{} {} frames p50 {:.1} p99 {:.1} ms",
                t.tracker, t.frames, t.latency_p50_ms, t.latency_p99_ms
            )
        })
        .collect();
    format!(
        "[{:6.1} s] RSS {:.1} MiB (peak {:.1}, heap in use {:.1}) | source {} | dropped {} | {}",
        r.t_end_s,
        r.rss_mib,
        r.rss_peak_mib,
        r.heap_mib,
        r.emitted,
        r.dropped,
        per.join(" | ")
    )
}

fn verdicts(rows: Vec<SoakRow>, summary: RunSummary, names: &[String]) -> SoakReport {
    let growth = |of: fn(&SoakRow) -> f64| {
        let v: Vec<f64> = rows.iter().map(of).collect();
        match v.get(1..) {
            Some([second, rest @ ..]) if !rest.is_empty() => {
                rest.iter().copied().fold(f64::NAN, f64::max) / second - 1.0
            }
            _ => f64::NAN,
        }
    };
    let (rss_growth, heap_growth) = (growth(|r| r.rss_mib), growth(|r| r.heap_mib));
    let p99 = |row: &SoakRow, n: &str| {
        row.trackers
            .iter()
            .find(|t| t.tracker == n)
            .map_or(f64::NAN, |t| t.latency_p99_ms)
    };
    let p99_drift = names
        .iter()
        .map(|n| {
            let drift = match (rows.get(1), rows.last()) {
                (Some(second), Some(last)) if rows.len() >= 3 => {
                    p99(last, n) / p99(second, n) - 1.0
                }
                _ => f64::NAN,
            };
            (n.clone(), drift)
        })
        .collect();
    let decode = summary.dropped.get("decode").copied().unwrap_or(0);
    let skipped = summary.skipped.len() as u64;
    let drops_accounted = summary
        .trackers
        .iter()
        .map(|t| {
            let own = summary
                .dropped
                .get(&format!("filter:{}", t.tracker))
                .copied();
            let sum = t.frames + decode + own.unwrap_or(0) + skipped;
            (t.tracker.clone(), sum == summary.source_frames)
        })
        .collect();
    SoakReport {
        rows,
        rss_growth,
        heap_growth,
        p99_drift,
        drops_accounted,
        summary,
    }
}

fn write(dir: &std::path::Path, r: &SoakReport) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut csv = String::from(
        "interval,t_end_s,rss_mib,rss_peak_mib,heap_mib,emitted,dropped,tracker,frames,latency_p50_ms,latency_p99_ms\n",
    );
    for row in &r.rows {
        for t in &row.trackers {
            csv += &format!(
                "{},{:.1},{:.2},{:.2},{:.2},{},{},{},{},{:.3},{:.3}\n",
                row.interval,
                row.t_end_s,
                row.rss_mib,
                row.rss_peak_mib,
                row.heap_mib,
                row.emitted,
                row.dropped,
                t.tracker,
                t.frames,
                t.latency_p50_ms,
                t.latency_p99_ms
            );
        }
    }
    let path = dir.join("soak.csv");
    std::fs::write(&path, csv).map_err(|e| Error::io(&path, e))?;
    let path = dir.join("soak.json");
    let json = serde_json::to_string_pretty(r).map_err(|e| Error::Other(e.to_string()))?;
    std::fs::write(&path, json).map_err(|e| Error::io(&path, e))?;
    plot(r).save_png(dir.join("soak.png"))
}

fn plot(r: &SoakReport) -> LinePlot {
    let mut p = LinePlot::new(
        "soak: memory and latency p99 per interval",
        "minutes",
        "ms / MiB",
    );
    let x = |row: &SoakRow| row.t_end_s / 60.0;
    p.series.push(Series::new(
        "RSS (MiB)",
        r.rows.iter().map(|row| (x(row), row.rss_mib)).collect(),
    ));
    if r.rows.iter().all(|row| row.heap_mib.is_finite()) {
        p.series.push(Series::new(
            "heap in use (MiB)",
            r.rows.iter().map(|row| (x(row), row.heap_mib)).collect(),
        ));
    }
    for (name, _) in &r.p99_drift {
        let pts = r
            .rows
            .iter()
            .filter_map(|row| {
                row.trackers
                    .iter()
                    .find(|t| &t.tracker == name)
                    .map(|t| (x(row), t.latency_p99_ms))
            })
            .collect();
        p.series.push(Series::new(format!("{name} p99 (ms)"), pts));
    }
    p
}

/// The report as text: one line per interval, then the verdicts.
pub fn describe_report(r: &SoakReport) -> String {
    let mut out: Vec<String> = r.rows.iter().map(describe).collect();
    out.push(match r.rss_growth.is_nan() {
        true => "RSS growth: n/a (needs 3 intervals or more)".to_string(),
        false => format!(
            "RSS growth after the first interval (interval means, worst vs the second): {:+.1} %",
            100.0 * r.rss_growth
        ),
    });
    if r.heap_growth.is_finite() {
        out.push(format!(
            "heap in use, growth measured the same way: {:+.1} % (a leak if it follows the RSS)",
            100.0 * r.heap_growth
        ));
    }
    for (n, d) in &r.p99_drift {
        out.push(format!(
            "{n}: latency p99, last interval vs second: {:+.1} %",
            100.0 * d
        ));
    }
    for (n, ok) in &r.drops_accounted {
        let verdict = if *ok { "exact" } else { "NOT exact" };
        out.push(format!(
            "{n}: emitted = processed + dropped + skipped: {verdict}"
        ));
    }
    out.push(format!("{}", r.summary));
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(k: usize, rss: f64, p99: f64) -> SoakRow {
        SoakRow {
            interval: k,
            t_end_s: 60.0 * k as f64,
            rss_mib: rss,
            rss_peak_mib: rss + 5.0,
            heap_mib: rss / 2.0,
            emitted: 100,
            dropped: 0,
            trackers: vec![TrackerWindow {
                tracker: "rfpf".into(),
                frames: 100,
                latency_p50_ms: p99 / 2.0,
                latency_p99_ms: p99,
            }],
        }
    }

    /// Growth is measured from the second interval's mean (the first is warm-up), to the worst
    /// later interval; drift compares the last interval's p99 with the second's.
    #[test]
    fn verdicts_measure_growth_after_warm_up_and_p99_drift() {
        let rows = vec![
            row(1, 50.0, 40.0),
            row(2, 100.0, 20.0),
            row(3, 104.0, 22.0),
            row(4, 103.0, 25.0),
        ];
        let r = verdicts(rows, RunSummary::default(), &["rfpf".to_string()]);
        assert!((r.rss_growth - 0.04).abs() < 1e-12, "{}", r.rss_growth);
        // The fixture's heap is half its RSS: the same relative growth.
        assert!((r.heap_growth - 0.04).abs() < 1e-12, "{}", r.heap_growth);
        assert!((r.p99_drift[0].1 - 0.25).abs() < 1e-12);
        let short = verdicts(
            vec![row(1, 50.0, 1.0), row(2, 60.0, 1.0)],
            RunSummary::default(),
            &[],
        );
        assert!(short.rss_growth.is_nan());
    }
}
