//! The `hdpf bench …` studies: the RF-PF paper's synthetic localization experiment, linear-Gaussian
//! tracking against the Kalman filter, and per-step timing.

pub mod bridge;
pub mod localization;
pub mod method;
pub mod soak;
pub mod step;
pub mod table;
#[cfg(feature = "zenoh")]
pub mod tcp_hop;
pub mod tracking;
#[cfg(feature = "zenoh")]
pub mod zenoh;

use crate::core::error::{Error, Result};
use crate::core::filter::rng::stream;
use crate::core::filter::Substeps;
use indicatif::{ProgressBar, ProgressStyle};
use rand::RngCore;
use std::fmt;
use std::io::Write;
use std::path::Path;

/// Sample mean and its standard error `s/√N` (`s` the unbiased sample standard deviation; 0 for `N < 2`).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct MeanSe {
    /// `x̄ = Σ x / N`.
    pub mean: f64,
    /// `√(Σ (x − x̄)² / (N − 1)) / √N`.
    pub se: f64,
    /// `N`.
    pub count: usize,
}

impl MeanSe {
    /// Mean and standard error of `values` (NaN mean for an empty slice).
    pub fn of(values: &[f64]) -> Self {
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        let se = if n < 2 {
            0.0
        } else {
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            (var / n as f64).sqrt()
        };
        Self { mean, se, count: n }
    }

    /// Mean and standard error of `f` over `items`.
    pub fn over<T>(items: &[T], f: impl Fn(&T) -> f64) -> Self {
        Self::of(&items.iter().map(f).collect::<Vec<_>>())
    }
}

/// `rows` grouped by `key`: groups in key order, each keeping the rows' input order.
pub fn group_by<'a, R, K: Ord>(
    rows: impl IntoIterator<Item = &'a R>,
    key: impl Fn(&R) -> K,
) -> Vec<Vec<&'a R>> {
    let mut groups: std::collections::BTreeMap<K, Vec<&'a R>> = Default::default();
    for r in rows {
        groups.entry(key(r)).or_default().push(r);
    }
    groups.into_values().collect()
}

impl fmt::Display for MeanSe {
    /// `mean ± se` with three significant figures.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ± {}", sig3(self.mean), sig3(self.se))
    }
}

/// A number with three significant figures (scientific notation outside [1e−3, 1e5)).
pub fn sig3(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() || a == 0.0 {
        format!("{v}")
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.2e}")
    } else {
        let decimals = (2 - a.log10().floor() as i32).max(0) as usize;
        format!("{v:.decimals$}")
    }
}

/// An independent seed for one part of a study, `seed` refined by each of `parts` in turn
/// (e.g. `[tag, dim, trial]`), so every trial's problem and filter are reproducible on their own.
pub fn sub_seed(seed: u64, parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(seed, |s, &p| stream(s, 0x6265_6e63_6800, p).next_u64())
}

/// Parse a sub-stepping rule: `auto` (`K = ⌈η·Lip⌉`) or a fixed count `K ≥ 1`.
pub fn parse_substeps(s: &str) -> std::result::Result<Substeps, String> {
    match s {
        "auto" => Ok(Substeps::Auto),
        k => match k.parse::<usize>() {
            Ok(k) if k >= 1 => Ok(Substeps::Fixed(k)),
            _ => Err(format!("expected 'auto' or a count ≥ 1, got '{s}'")),
        },
    }
}

/// Progress of a study on stderr: a bar on a terminal; elsewhere (a log file, CI), where the bar
/// is hidden, a line at every tenth of the work.
pub struct Progress {
    bar: ProgressBar,
    what: String,
    len: usize,
    done: std::sync::atomic::AtomicUsize,
    start: std::time::Instant,
    plain: bool,
}

impl Progress {
    /// One more of the `len` items done (from any thread).
    pub fn inc(&self) {
        self.bar.inc(1);
        let k = 1 + (self.done).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.plain && k * 10 / self.len.max(1) > (k - 1) * 10 / self.len.max(1) {
            let s = self.start.elapsed().as_secs_f64();
            eprintln!("{}: {k}/{} done ({s:.0} s)", self.what, self.len);
        }
    }

    /// Clear the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// A [`Progress`] over `len` items named `what`.
pub fn progress(len: usize, what: &str) -> Progress {
    use std::io::IsTerminal;
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({elapsed}, eta {eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    Progress {
        bar,
        what: what.to_string(),
        len,
        done: Default::default(),
        start: std::time::Instant::now(),
        plain: !std::io::stderr().is_terminal(),
    }
}

/// Write `header` and `lines` (each already comma-joined) to a CSV file, creating its directory.
pub fn write_csv(path: &Path, header: &str, lines: impl IntoIterator<Item = String>) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = std::io::BufWriter::new(file);
    let io = |e| Error::io(path, e);
    writeln!(w, "{header}").map_err(io)?;
    for line in lines {
        writeln!(w, "{line}").map_err(io)?;
    }
    w.flush().map_err(io)
}

/// Error unless a list flag is non-empty and every entry is at least `min`.
pub fn check_list(name: &str, values: &[usize], min: usize) -> Result<()> {
    if values.is_empty() {
        return Err(Error::param(name, "(empty)", "give at least one value"));
    }
    match values.iter().find(|&&v| v < min) {
        Some(v) => Err(Error::param(
            name,
            v,
            format!("every value must be ≥ {min}"),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_se_by_hand() {
        // mean 2, sample variance ((1)² + 0 + (1)²)/2 = 1, s.e. = 1/√3.
        let s = MeanSe::of(&[1.0, 2.0, 3.0]);
        assert_eq!(s.mean, 2.0);
        assert!((s.se - 1.0 / 3f64.sqrt()).abs() < 1e-15);
        assert_eq!(MeanSe::of(&[5.0]).se, 0.0);
        assert_eq!(s.to_string(), "2.00 ± 0.577");
        assert_eq!(MeanSe::over(&[(1, 1.0), (2, 3.0)], |p| p.1).mean, 2.0);
    }

    #[test]
    fn group_by_orders_groups_by_key_and_keeps_row_order() {
        let rows = [(2, 'a'), (1, 'b'), (2, 'c')];
        let g = group_by(&rows, |r| r.0);
        assert_eq!(g, vec![vec![&(1, 'b')], vec![&(2, 'a'), &(2, 'c')]]);
    }

    #[test]
    fn formatting_and_parsing() {
        assert_eq!(sig3(21.64), "21.6");
        assert_eq!(sig3(193.2), "193");
        assert_eq!(sig3(1.5e6), "1.50e6");
        assert_eq!(parse_substeps("auto"), Ok(Substeps::Auto));
        assert_eq!(parse_substeps("3"), Ok(Substeps::Fixed(3)));
        assert!(parse_substeps("0").is_err());
        assert_ne!(sub_seed(1, &[2, 3]), sub_seed(1, &[3, 2]));
        assert!(check_list("dims", &[3, 2], 3).is_err());
        assert!(check_list("dims", &[], 3).is_err());
    }
}

#[cfg(test)]
mod cli_tests {
    use super::localization::LocalizationArgs;
    use super::tracking::TrackingArgs;
    use clap::Parser;

    #[derive(Parser)]
    enum Cli {
        Localization(LocalizationArgs),
        Tracking(TrackingArgs),
    }

    #[test]
    fn flag_defaults_match_default_impls() {
        match Cli::parse_from(["hdpf", "localization"]) {
            Cli::Localization(a) => assert_eq!(a, LocalizationArgs::default()),
            Cli::Tracking(_) => unreachable!(),
        }
        match Cli::parse_from(["hdpf", "tracking"]) {
            Cli::Tracking(a) => assert_eq!(a, TrackingArgs::default()),
            Cli::Localization(_) => unreachable!(),
        }
        let parsed = Cli::try_parse_from([
            "hdpf",
            "tracking",
            "--methods",
            "rfpf-po,sir",
            "--dims",
            "3,7",
        ]);
        assert!(matches!(parsed, Ok(Cli::Tracking(a)) if a.methods.len() == 2 && a.dims == [3, 7]));
        assert!(Cli::try_parse_from(["hdpf", "localization", "--methods", "kalman"]).is_err());
    }
}
