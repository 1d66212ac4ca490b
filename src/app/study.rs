//! The synthetic fast-motion study behind `hdpf bench pose`: filters × particle counts, and joint
//! versus per-object filtering, averaged over independently rendered sequences (box and cylinder,
//! fast jerky motion, occluder bar), with the tracker settings of [`fast_config`].

use crate::app::plot::{LinePlot, Series};
use crate::core::error::{Error, Result};
use crate::core::filter::FilterKind;
use crate::core::stats::median;
use crate::domains::pose::driver::{Driver, InitFrom, Keep};
use crate::domains::pose::metrics::{add, adds};
use crate::domains::pose::modality::depth::DepthParams;
use crate::domains::pose::modality::depth_edge::DepthEdgeParams;
use crate::domains::pose::modality::ModalityConfig;
use crate::domains::pose::synth::{
    render_sequence, ycbv_camera, Motion, SynthConfig, SynthFrame, Synthesizer,
};
use crate::domains::pose::tracker::{MotionModel, ObjectModel, RedetectConfig, TrackerConfig};
use nalgebra::Point3;
use std::fmt;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Study size — also the flags of `hdpf bench pose` (defaults equal [`StudyConfig::default`]).
#[derive(Clone, Debug, PartialEq, clap::Args)]
pub struct StudyConfig {
    /// Frames of the sequence.
    #[arg(long, default_value_t = 40)]
    pub frames: usize,
    /// Image width (height = 3/4 width).
    #[arg(long, default_value_t = 320)]
    pub width: u32,
    /// Particle counts (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "25,50,100,200")]
    pub particles: Vec<usize>,
    /// Filters (comma-separated: rfpf, grad, sir, mcl).
    #[arg(long, value_delimiter = ',', default_value = "rfpf,grad,sir,mcl")]
    pub filters: Vec<FilterKind>,
    /// Seed of the first sequence (and its filters); sequence `i` uses `seed + i`.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Independently rendered sequences every cell is averaged over.
    #[arg(long, default_value_t = 3)]
    pub seeds: usize,
    /// Motion profile of the sequence.
    #[arg(long, value_enum, default_value_t = Motion::Fast)]
    pub motion: Motion,
}

impl Default for StudyConfig {
    fn default() -> Self {
        Self {
            frames: 40,
            width: 320,
            particles: vec![25, 50, 100, 200],
            filters: FilterKind::TRACKING.to_vec(),
            seed: 0,
            seeds: 3,
            motion: Motion::Fast,
        }
    }
}

/// One row of the study table: errors averaged over all objects and frames of a sequence, then
/// over the sequences.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StudyRow {
    /// Filter name.
    pub filter: String,
    /// Particles per filter.
    pub particles: usize,
    /// Joint (6K-dimensional) filter rather than one per object.
    pub joint: bool,
    /// Mean ADD (mm).
    pub add_mm: f64,
    /// Mean ADD-S (mm).
    pub adds_mm: f64,
    /// Standard error of the mean ADD-S over the sequences (mm; 0 for one sequence).
    pub adds_se_mm: f64,
    /// Sequences averaged.
    pub sequences: usize,
    /// Median tracking latency per object per frame over all sequences (ms).
    pub latency_ms: f64,
    /// Fraction of object-frames tracked: ADD-S below [`TRACKED_ADDS`].
    pub tracked: f64,
}

/// ADD-S (metres) under which an object-frame counts as tracked rather than lost.
pub const TRACKED_ADDS: f64 = 0.02;

/// The study table.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StudyTable {
    /// Rows in run order.
    pub rows: Vec<StudyRow>,
}

impl fmt::Display for StudyTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:>6} {:>9} {:>10} {:>8} {:>16} {:>9} {:>11}",
            "filter", "particles", "mode", "ADD mm", "ADD-S mm ± se", "tracked", "p50 ms/obj"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:>6} {:>9} {:>10} {:>8.2} {:>16} {:>8.0}% {:>11.2}",
                r.filter,
                r.particles,
                r.mode(),
                r.add_mm,
                format!("{:.2} ± {:.2}", r.adds_mm, r.adds_se_mm),
                r.tracked * 100.0,
                r.latency_ms
            )?;
        }
        Ok(())
    }
}

/// Tracker settings for fast motion (the study's configuration, public so that other runs can
/// reuse it):
/// - damped constant-velocity prediction (repeat 0.8 of the last increment: jerks make the last
///   velocity a noisy guess, and a lost estimate must not keep accelerating);
/// - motion prior and process noise sized to the prediction error of the profile (15 mm / 6°
///   prior, 6 mm / 2° process noise per frame);
/// - depth plus the depth-edge (occluding contour) modality: point-to-plane depth residuals do not
///   see a face sliding along itself, so a 15 mm sideways step is invisible to their gradient;
///   the contour distance map pulls in the image plane;
/// - missing depth costs half an outlier: the synthetic background is empty (depth 0), so
///   otherwise a pose floating in empty space costs nothing and estimates escape there;
/// - re-detection after loss ([`RedetectConfig`] defaults): an object lost behind the occluder
///   during a jump is searched for again around the prediction.
pub fn fast_config(kind: FilterKind, particles: usize, joint: bool, seed: u64) -> TrackerConfig {
    let depth = DepthParams {
        missing_cost: 0.5,
        ..DepthParams::default()
    };
    TrackerConfig {
        filter: kind,
        particles,
        joint,
        seed,
        motion: MotionModel::ConstantVelocity,
        velocity_damping: 0.8,
        motion_sigma: (0.015, 6f64.to_radians()),
        process_noise: (0.006, 2f64.to_radians()),
        unit: 0.008,
        modalities: vec![
            ModalityConfig::new(depth),
            ModalityConfig::new(DepthEdgeParams::default()),
        ],
        redetect: Some(RedetectConfig::default()),
        // The study's table was measured with one round per frame.
        rounds: 1,
        ..TrackerConfig::default()
    }
}

/// One rendered sequence and the tracked objects' models (with ADD evaluation points).
struct Sequence {
    frames: Vec<SynthFrame>,
    objects: Vec<(ObjectModel, Vec<Point3<f64>>)>,
    seed: u64,
}

impl Sequence {
    /// Render the study's sequence with `seed`.
    fn render(study: &StudyConfig, seed: u64) -> Result<Self> {
        let mut cfg = SynthConfig::new("in-memory");
        cfg.frames = study.frames;
        cfg.motion = study.motion;
        cfg.seed = seed;
        cfg.camera = ycbv_camera(study.width, study.width * 3 / 4);
        let frames = render_sequence(&cfg)?;
        let synth = Synthesizer::new(&cfg)?;
        let objects = synth
            .models()
            .map(|(_, id, mesh)| {
                let step = (mesh.vertices.len() / 500).max(1);
                let pts = mesh.vertices.iter().step_by(step).copied().collect();
                Ok((ObjectModel::from_mesh(id, mesh, 3000, seed)?, pts))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            frames,
            objects,
            seed,
        })
    }
}

/// Errors and latencies of one tracker run over one sequence.
struct Run {
    add: f64,
    adds: f64,
    tracked: f64,
    latencies: Vec<f64>,
}

/// Track `seq` with `config` (its seed replaced by the sequence's).
fn run_one(seq: &Sequence, mut config: TrackerConfig) -> Result<Run> {
    config.seed = seq.seed;
    let models = seq.objects.iter().map(|o| o.0.clone()).collect();
    let first = &seq.frames[0];
    let start = (0, first.frame.im_id, first.gt.as_slice());
    let mut driver = Driver::start(
        &config,
        models,
        start,
        &InitFrom::GroundTruth,
        Keep::History,
    )?;
    let (mut sum_add, mut sum_adds, mut n, mut tracked) = (0.0, 0.0, 0usize, 0usize);
    for f in &seq.frames {
        let Some(out) = driver.frame(f.frame.im_id, Ok(&f.frame), 0.0)? else {
            continue;
        };
        for ((pose, gt), (_, pts)) in out.poses.iter().zip(&f.gt).zip(&seq.objects) {
            sum_add += add(pts, pose, &gt.pose);
            let e = adds(pts, pose, &gt.pose);
            sum_adds += e;
            tracked += usize::from(e < TRACKED_ADDS);
            n += 1;
        }
    }
    let n = n.max(1) as f64;
    Ok(Run {
        add: sum_add / n,
        adds: sum_adds / n,
        tracked: tracked as f64 / n,
        latencies: driver.run.latencies,
    })
}

/// Mean and standard error of the mean of `v` (0 for fewer than two values).
fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, 0.0);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

/// The row of `config` over all `seqs`.
fn run_cell(seqs: &[Sequence], config: &TrackerConfig) -> Result<StudyRow> {
    let runs = seqs
        .iter()
        .map(|s| run_one(s, config.clone()))
        .collect::<Result<Vec<_>>>()?;
    let field = |f: fn(&Run) -> f64| runs.iter().map(f).collect::<Vec<_>>();
    let (adds_mm, adds_se_mm) = mean_se(&field(|r| r.adds * 1e3));
    let latencies: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.latencies.iter().copied())
        .collect();
    Ok(StudyRow {
        filter: config.filter.to_string(),
        particles: config.particles,
        joint: config.joint,
        add_mm: mean_se(&field(|r| r.add * 1e3)).0,
        adds_mm,
        adds_se_mm,
        sequences: runs.len(),
        latency_ms: median(&latencies) * 1e3,
        tracked: mean_se(&field(|r| r.tracked)).0,
    })
}

/// Run the study: every filter × particle count per object, then joint vs per-object for RF-PF
/// at every particle count; each cell over `study.seeds` sequences (seeds `seed`, `seed + 1`, …).
pub fn pose_study(study: &StudyConfig) -> Result<StudyTable> {
    if study.seeds == 0 || study.frames == 0 {
        return Err(Error::param(
            "seeds/frames",
            0,
            "need at least one sequence and frame",
        ));
    }
    let seqs = (0..study.seeds as u64)
        .map(|i| Sequence::render(study, study.seed.wrapping_add(i)))
        .collect::<Result<Vec<_>>>()?;
    let mut cells: Vec<(FilterKind, usize, bool)> = Vec::new();
    for &kind in &study.filters {
        cells.extend(study.particles.iter().map(|&n| (kind, n, false)));
    }
    cells.extend(study.particles.iter().map(|&n| (FilterKind::Rfpf, n, true)));
    let total = cells.len();
    let rows = (cells.into_iter().enumerate())
        .map(|(k, (kind, n, joint))| {
            let row = run_cell(&seqs, &fast_config(kind, n, joint, study.seed))?;
            eprintln!(
                "[{}/{total}] {kind} {n} particles {}: ADD-S {:.1} ± {:.1} mm",
                k + 1,
                row.mode(),
                row.adds_mm,
                row.adds_se_mm
            );
            Ok(row)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(StudyTable { rows })
}

/// `hdpf bench pose`: the study's size and where its outputs go.
#[derive(Clone, Debug, PartialEq, clap::Args)]
pub struct StudyArgs {
    /// The study.
    #[command(flatten)]
    pub study: StudyConfig,
    /// Output directory: `pose_study.json`, `pose_study.csv`, `pose_study.png`.
    #[arg(long, default_value = "out/pose_study")]
    pub out: PathBuf,
}

impl StudyRow {
    /// `per-object` or `joint`.
    pub fn mode(&self) -> &'static str {
        if self.joint {
            "joint"
        } else {
            "per-object"
        }
    }
}

impl StudyTable {
    /// Write `pose_study.json`, `pose_study.csv` and `pose_study.png` (mean ADD-S against particle
    /// count per filter and mode, ± one standard error) into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let json = dir.join("pose_study.json");
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::format(&json, format!("JSON encoding: {e}")))?;
        std::fs::write(&json, text).map_err(|e| Error::io(&json, e))?;
        let csv = dir.join("pose_study.csv");
        std::fs::write(&csv, self.csv()).map_err(|e| Error::io(&csv, e))?;
        self.plot().save_png(dir.join("pose_study.png"))
    }

    /// One line per cell.
    pub fn csv(&self) -> String {
        let mut t = String::from(
            "filter,mode,particles,sequences,add_mm,adds_mm,adds_se_mm,tracked,latency_p50_ms\n",
        );
        for r in &self.rows {
            let _ = writeln!(
                t,
                "{},{},{},{},{:.3},{:.3},{:.3},{:.4},{:.3}",
                r.filter,
                r.mode(),
                r.particles,
                r.sequences,
                r.add_mm,
                r.adds_mm,
                r.adds_se_mm,
                r.tracked,
                r.latency_ms
            );
        }
        t
    }

    /// Mean ADD-S (mm) against particles, one curve per filter and mode, with a ± s.e. band.
    pub fn plot(&self) -> LinePlot {
        let mut plot = LinePlot::new(
            "Synthetic fast motion: mean ADD-S (± s.e. over sequences)",
            "particles",
            "ADD-S (mm)",
        );
        plot.log_x = true;
        let mut names: Vec<(String, bool)> = Vec::new();
        for r in &self.rows {
            if !names.contains(&(r.filter.clone(), r.joint)) {
                names.push((r.filter.clone(), r.joint));
            }
        }
        for (filter, joint) in names {
            let rows: Vec<&StudyRow> = (self.rows.iter())
                .filter(|r| r.filter == filter && r.joint == joint)
                .collect();
            let points = rows
                .iter()
                .map(|r| (r.particles as f64, r.adds_mm))
                .collect();
            let name = format!("{filter}{}", if joint { " joint" } else { "" });
            let err = rows.iter().map(|r| r.adds_se_mm).collect();
            plot.series.push(Series::new(name, points).with_err(err));
        }
        plot
    }
}

#[cfg(test)]
mod cli_tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        study: StudyConfig,
    }

    #[test]
    fn the_table_is_written_as_json_csv_and_png() {
        let row = |filter: &str, particles, joint, adds_mm| StudyRow {
            filter: filter.into(),
            particles,
            joint,
            add_mm: 2.0 * adds_mm,
            adds_mm,
            adds_se_mm: 1.0,
            sequences: 3,
            latency_ms: 4.0,
            tracked: 0.5,
        };
        let table = StudyTable {
            rows: vec![
                row("rfpf", 25, false, 20.0),
                row("rfpf", 50, false, 15.0),
                row("rfpf", 25, true, 18.0),
            ],
        };
        let dir = crate::core::scratch::ScratchDir::new("study");
        table.write(&dir).unwrap();
        let csv = std::fs::read_to_string(dir.join("pose_study.csv")).unwrap();
        assert_eq!(csv.lines().count(), 4);
        assert!(csv.contains("rfpf,joint,25,3,36.000,18.000,1.000,0.5000,4.000"));
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("pose_study.json")).unwrap())
                .unwrap();
        assert_eq!(json["rows"][1]["adds_mm"], 15.0);
        assert!(std::fs::metadata(dir.join("pose_study.png")).unwrap().len() > 1000);
        assert_eq!(
            table.plot().series.len(),
            2,
            "one curve per filter and mode"
        );
    }

    #[test]
    fn flag_defaults_equal_the_library_defaults() {
        assert_eq!(Cli::parse_from(["study"]).study, StudyConfig::default());
        let c = Cli::parse_from([
            "study",
            "--particles",
            "10,20",
            "--filters",
            "sir",
            "--motion",
            "slow",
        ]);
        assert_eq!(
            (c.study.particles, c.study.filters, c.study.motion),
            (vec![10, 20], vec![FilterKind::Sir], Motion::Slow)
        );
    }
}
