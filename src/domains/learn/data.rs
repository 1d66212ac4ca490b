//! Data: the UCI 8×8 digits, the SplitDigits task sequence, and an in-process generated fallback.
//!
//! Inputs are scaled as `x = (p/16 − 0.5)/0.5 ∈ [−1, 1]` (pixels `p ∈ 0..=16`). The five tasks are
//! the SplitMNIST pairs `(0,1) (2,3) (4,5) (6,7) (8,9)`.

use crate::core::error::{Error, Result};
use crate::core::filter::rng::stream;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Number of pixels of a digit image.
pub const N_PIXELS: usize = 64;
/// Number of classes.
pub const N_CLASSES: usize = 10;
/// Number of SplitDigits tasks.
pub const N_TASKS: usize = 5;

/// A labelled data set: `x` is `len × dim` row-major, `y` the class labels `0..10`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dataset {
    /// Inputs, row-major.
    pub x: Vec<f64>,
    /// Class labels.
    pub y: Vec<usize>,
    /// Input dimension.
    pub dim: usize,
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Sample `i`'s input row.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.dim..(i + 1) * self.dim]
    }

    /// The subset at `idx`, in that order.
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        let mut out = Dataset {
            dim: self.dim,
            ..Default::default()
        };
        for &i in idx {
            out.x.extend_from_slice(self.row(i));
            out.y.push(self.y[i]);
        }
        out
    }
}

/// Where the data came from, for reports.
#[derive(Clone, Debug, serde::Serialize)]
pub enum Source {
    /// Read from this file.
    File(String),
    /// The in-process generated task family (no data file found).
    Generated,
}

/// Read the digits CSV (`.csv` or gzip-compressed `.csv.gz`): rows of 64 pixel values in `0..=16`
/// followed by the label `0..=9`. Errors name the file and the 1-based line.
pub fn load_digits(path: &Path) -> Result<Dataset> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    parse_digits(BufReader::new(reader), path)
}

/// Parse digits rows from `reader`; `path` only names the source in errors.
pub fn parse_digits(reader: impl BufRead, path: &Path) -> Result<Dataset> {
    let mut data = Dataset {
        dim: N_PIXELS,
        ..Default::default()
    };
    for (k, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| Error::format(path, format!("line {}: {e}", k + 1)))?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |msg: String| Error::format(path, format!("line {}: {msg}", k + 1));
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != N_PIXELS + 1 {
            return Err(bad(format!(
                "expected {} comma-separated values (64 pixels and a label), found {}",
                N_PIXELS + 1,
                fields.len()
            )));
        }
        for (j, f) in fields.iter().enumerate() {
            let v: u32 = f
                .parse()
                .map_err(|_| bad(format!("field {}: '{f}' is not an integer", j + 1)))?;
            if j < N_PIXELS {
                if v > 16 {
                    return Err(bad(format!("field {}: pixel {v} outside 0..=16", j + 1)));
                }
                data.x.push((v as f64 / 16.0 - 0.5) / 0.5);
            } else if (v as usize) < N_CLASSES {
                data.y.push(v as usize);
            } else {
                return Err(bad(format!("field {}: label {v} outside 0..=9", j + 1)));
            }
        }
    }
    if data.is_empty() {
        return Err(Error::format(path, "no data rows"));
    }
    Ok(data)
}

/// The generated fallback: 10 classes, each a smooth random 8×8 prototype in `[−1, 1]`; a sample is
/// `clip(prototype + 0.5·ε, −1, 1)` with `ε ~ N(0, I)`, `per_class` samples per class.
pub fn generated(seed: u64, per_class: usize) -> Dataset {
    let mut rng = stream(seed, 0x6e, u64::MAX);
    let protos: Vec<Vec<f64>> = (0..N_CLASSES)
        .map(|_| {
            // A coarse 4×4 random pattern upsampled to 8×8: stroke-like blobs.
            let coarse: Vec<f64> = (0..16).map(|_| rng.random_range(-1.0..1.0)).collect();
            (0..N_PIXELS)
                .map(|p| coarse[(p / 8 / 2) * 4 + (p % 8) / 2])
                .collect()
        })
        .collect();
    let mut data = Dataset {
        dim: N_PIXELS,
        ..Default::default()
    };
    for _ in 0..per_class {
        for (c, proto) in protos.iter().enumerate() {
            for &p in proto {
                let e: f64 = StandardNormal.sample(&mut rng);
                data.x.push((p + 0.5 * e).clamp(-1.0, 1.0));
            }
            data.y.push(c);
        }
    }
    data
}

/// Seeded stratified split: per class, a `test_frac` share (rounded) goes to the test set.
pub fn stratified_split(data: &Dataset, test_frac: f64, seed: u64) -> Result<(Dataset, Dataset)> {
    if !(0.0..1.0).contains(&test_frac) {
        return Err(Error::param(
            "test fraction",
            test_frac,
            "must be in [0, 1)",
        ));
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for c in 0..N_CLASSES {
        let mut idx: Vec<usize> = (0..data.len()).filter(|&i| data.y[i] == c).collect();
        idx.shuffle(&mut stream(seed, 0x5b, c as u64));
        let n_test = (idx.len() as f64 * test_frac).round() as usize;
        test.extend_from_slice(&idx[..n_test]);
        train.extend_from_slice(&idx[n_test..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    Ok((data.subset(&train), data.subset(&test)))
}

/// Continual-learning scenario (van de Ven & Tolias, 2019).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Scenario {
    /// Domain-IL: a shared 2-way head, target = label mod 2.
    Domain,
    /// Task-IL: a 10-way head whose logits are masked to the task's pair (training and test).
    Task,
    /// Class-IL: a 10-way head, no mask.
    Class,
}

impl Scenario {
    /// Number of outputs of the network head.
    pub fn n_outputs(self) -> usize {
        match self {
            Scenario::Domain => 2,
            Scenario::Task | Scenario::Class => N_CLASSES,
        }
    }

    /// Target of a digit label.
    pub fn target(self, label: usize) -> usize {
        match self {
            Scenario::Domain => label % 2,
            Scenario::Task | Scenario::Class => label,
        }
    }

    /// Allowed logit range `lo..hi` for a sample of task `task` (SplitDigits index 0..5).
    pub fn logit_range(self, task: usize) -> (usize, usize) {
        match self {
            Scenario::Task => (2 * task, 2 * task + 2),
            _ => (0, self.n_outputs()),
        }
    }
}

/// One task's samples in a scenario: the inputs with targets mapped by the scenario (e.g. the
/// label mod 2 in domain-IL). Reads as its [`Dataset`] (`len`, `row`, `x`, `y`).
#[derive(Clone, Debug, Default)]
pub struct TaskData {
    /// SplitDigits task index (pair `(2t, 2t+1)`).
    pub task: usize,
    /// Inputs and scenario targets.
    pub data: Dataset,
}

impl std::ops::Deref for TaskData {
    type Target = Dataset;
    fn deref(&self) -> &Dataset {
        &self.data
    }
}

/// The five SplitDigits tasks of `data` in `scenario`, in canonical order.
pub fn split_tasks(data: &Dataset, scenario: Scenario) -> Vec<TaskData> {
    (0..N_TASKS)
        .map(|t| {
            let idx: Vec<usize> = (0..data.len()).filter(|&i| data.y[i] / 2 == t).collect();
            let sub = data.subset(&idx);
            TaskData {
                task: t,
                data: Dataset {
                    y: sub.y.iter().map(|&c| scenario.target(c)).collect(),
                    x: sub.x,
                    dim: data.dim,
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_scales_rows() {
        let row = |label: u32| {
            let mut s: Vec<String> = (0..64).map(|k| (k % 17).to_string()).collect();
            s.push(label.to_string());
            s.join(",")
        };
        let text = format!("{}\n\n{}\n", row(3), row(9));
        let d = parse_digits(text.as_bytes(), Path::new("t.csv")).unwrap();
        assert_eq!(d.y, vec![3, 9]);
        assert_eq!(d.row(0)[0], -1.0);
        assert_eq!(d.row(0)[16], 1.0);
        assert_eq!(d.row(0)[8], 0.0);
    }

    #[test]
    fn malformed_file_names_file_and_line() {
        let good: String = std::iter::repeat_n("0", 64).collect::<Vec<_>>().join(",") + ",1";
        let cases = [
            (format!("{good}\n1,2,3\n"), "line 2", "expected 65"),
            (
                format!("{good}\n{}", good.replace(",1", ",x")),
                "line 2",
                "not an integer",
            ),
            (good.replacen('0', "17", 1), "line 1", "outside 0..=16"),
            (good.replace(",1", ",10"), "line 1", "label 10"),
        ];
        for (text, line, what) in cases {
            let e = parse_digits(text.as_bytes(), Path::new("bad.csv")).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.contains("bad.csv") && msg.contains(line) && msg.contains(what),
                "{msg}"
            );
        }
        let e = load_digits(Path::new("/nonexistent/digits.csv.gz")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/digits.csv.gz"));
    }

    #[test]
    fn gz_file_and_bad_gz_report_the_file() {
        let dir = crate::core::scratch::ScratchDir::new("learn");
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("broken.csv.gz");
        std::fs::write(&p, b"not gzip at all").unwrap();
        let e = load_digits(&p).unwrap_err().to_string();
        assert!(e.contains("broken.csv.gz") && e.contains("line 1"), "{e}");
    }

    #[test]
    fn split_is_stratified_and_seeded() {
        let d = generated(3, 20);
        let (tr, te) = stratified_split(&d, 0.25, 7).unwrap();
        assert_eq!(te.len(), 50);
        assert_eq!(tr.len(), 150);
        for c in 0..N_CLASSES {
            assert_eq!(te.y.iter().filter(|&&y| y == c).count(), 5);
        }
        assert_eq!(stratified_split(&d, 0.25, 7).unwrap().1, te);
        let tasks = split_tasks(&tr, Scenario::Domain);
        assert_eq!(tasks.len(), 5);
        assert!(tasks
            .iter()
            .all(|t| t.len() == 30 && t.y.iter().all(|&y| y < 2)));
        assert_eq!(Scenario::Task.logit_range(3), (6, 8));
    }
}
