//! The synthetic fast-motion study behind `hdpf bench pose`: filters × particle counts, and joint
//! versus per-object filtering, averaged over independently rendered sequences (fast jerky motion,
//! occluder bar) — the built-in box and cylinder with the tracker settings of [`fast_config`], or,
//! with `--models`, pairs of real meshes with `hdpf track`'s default configuration. Besides the
//! means it reports ADD-S by visibility band and the longest run of frames an object was lost.

use crate::app::plot::{LinePlot, Series};
use crate::core::error::{Error, Result};
use crate::core::filter::FilterKind;
use crate::core::stats::median;
use crate::domains::pose::driver::{Driver, InitFrom, Keep};
use crate::domains::pose::metrics::ModelPoints;
use crate::domains::pose::modality::depth::DepthParams;
use crate::domains::pose::modality::depth_edge::DepthEdgeParams;
use crate::domains::pose::modality::ModalityConfig;
use crate::domains::pose::scoring::{is_lost, LossTally};
use crate::domains::pose::synth::{
    render_sequence, ycbv_camera, Motion, ObjectSource, SynthConfig, SynthFrame, Synthesizer,
};
use crate::domains::pose::tracker::{
    MotionModel, ObjectModel, RedetectConfig, TrackerConfig, Views,
};
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
    /// Filters (comma-separated: rfpf, rfpf-newton, grad, gn, sir, mcl; with rfpf, its joint
    /// filter over all objects is run too).
    #[arg(long, value_delimiter = ',', default_value = "rfpf,grad,sir,mcl")]
    pub filters: Vec<FilterKind>,
    /// Seed of the first sequence (and of its filters, except with `--models`, whose filters
    /// keep `hdpf track`'s seed); sequence `i` uses `seed + i`.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Independently rendered sequences every cell is averaged over.
    #[arg(long, default_value_t = 3)]
    pub seeds: usize,
    /// Motion profile of the sequence.
    #[arg(long, value_enum, default_value_t = Motion::Fast)]
    pub motion: Motion,
    /// A BOP model folder (e.g. `../shared/datasets/ycbv-mini/models`): track pairs of its
    /// meshes (`--pairs`) with `hdpf track`'s default configuration instead of the built-in box
    /// and cylinder with the study's fast configuration.
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// Object pairs of `--models`, `A:B` comma-separated; sequence `i` renders pair `i` (cycling).
    #[arg(long, value_delimiter = ',', value_parser = parse_pair, default_value = "5:10,1:14,3:9,8:12")]
    pub pairs: Vec<(u32, u32)>,
}

/// Parse an object pair `A:B` (BOP object ids).
fn parse_pair(s: &str) -> std::result::Result<(u32, u32), String> {
    let bad = || format!("invalid pair {s:?}: expected two object ids A:B, e.g. 5:10");
    let (a, b) = s.split_once(':').ok_or_else(bad)?;
    Ok((
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    ))
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
            models: None,
            pairs: vec![(5, 10), (1, 14), (3, 9), (8, 12)],
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
    /// Fraction of object-frames tracked: not lost ([`is_lost`]: ADD-S below 20 mm).
    pub tracked: f64,
    /// Mean ADD-S (mm) by visibility band — visible fraction (BOP `visib_fract`) ≥ 0.9,
    /// 0.5–0.9, < 0.5 — over the object-frames of all sequences; `None` for an empty band.
    pub adds_by_visibility_mm: [Option<f64>; 3],
    /// The longest run of consecutive lost frames of one object ([`is_lost`]),
    /// over objects and sequences.
    pub longest_lost_run: usize,
    /// The same, counting only frames where the object is at least 0.9 visible (a frame below
    /// ends the run).
    pub longest_lost_run_visible: usize,
}

/// The study table.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StudyTable {
    /// What was tracked: "built-in box and cylinder", or "real meshes" with the models folder.
    pub objects: String,
    /// Rows in run order.
    pub rows: Vec<StudyRow>,
}

impl fmt::Display for StudyTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:>11} {:>9} {:>10} {:>8} {:>16} {:>9} {:>11} {:>22} {:>13}",
            "filter",
            "particles",
            "mode",
            "ADD mm",
            "ADD-S mm ± se",
            "tracked",
            "p50 ms/obj",
            "ADD-S ≥.9/.5-.9/<.5",
            "run>20mm(≥.9)"
        )?;
        let band = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.2}"));
        for r in &self.rows {
            let [hi, mid, lo] = r.adds_by_visibility_mm.map(band);
            writeln!(
                f,
                "{:>11} {:>9} {:>10} {:>8.2} {:>16} {:>8.0}% {:>11.2} {:>22} {:>13}",
                r.filter,
                r.particles,
                r.mode(),
                r.add_mm,
                format!("{:.2} ± {:.2}", r.adds_mm, r.adds_se_mm),
                r.tracked * 100.0,
                r.latency_ms,
                format!("{hi}/{mid}/{lo}"),
                format!("{} ({})", r.longest_lost_run, r.longest_lost_run_visible)
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
        velocity_damping: Some(0.8),
        motion_sigma: (0.015, 6f64.to_radians()),
        process_noise: (0.006, 2f64.to_radians()),
        unit: 0.008,
        modalities: vec![
            ModalityConfig::new(depth),
            ModalityConfig::new(DepthEdgeParams::default()),
        ],
        redetect: Some(RedetectConfig::default()),
        // The study's table was measured with one round per frame, without the mean step, and
        // with every particle reading every correspondence, selected at its pose.
        rounds: 1,
        mean_step: false,
        particle_stride: Some(1),
        views: Views::Off,
        ..TrackerConfig::default()
    }
}

/// One rendered sequence and the tracked objects' models (with ADD evaluation points).
struct Sequence {
    frames: Vec<SynthFrame>,
    /// Each object's tracking model and its evaluation points: every mesh vertex, the points
    /// `hdpf track` scores the written sequence on (a subsample inflates ADD-S by its spacing).
    objects: Vec<(ObjectModel, ModelPoints)>,
    /// Seed of the trackers and of the models' surface samples.
    seed: u64,
}

impl Sequence {
    /// Render the study's sequence `index` (seed `study.seed + index`; with `--models`, pair
    /// `index` of `study.pairs`, cycling).
    fn render(study: &StudyConfig, index: usize) -> Result<Self> {
        let seed = study.seed.wrapping_add(index as u64);
        // Real meshes are tracked as `hdpf track` tracks the written sequence: its seed.
        let tracker_seed = match study.models {
            Some(_) => TrackerConfig::default().seed,
            None => seed,
        };
        let mut cfg = SynthConfig::in_memory();
        if let Some(dir) = &study.models {
            let &(a, b) = (study.pairs.get(index % study.pairs.len().max(1)))
                .ok_or_else(|| Error::param("pairs", "", "need at least one pair A:B"))?;
            cfg.objects = vec![ObjectSource::Model(a), ObjectSource::Model(b)];
            cfg.models_dir = Some(dir.clone());
        }
        cfg.frames = study.frames;
        cfg.motion = study.motion;
        cfg.seed = seed;
        cfg.camera = ycbv_camera(study.width, study.width * 3 / 4);
        let frames = render_sequence(&cfg)?;
        let synth = Synthesizer::new(&cfg)?;
        let objects = synth
            .models()
            .map(|(_, id, mesh)| {
                let pts = ModelPoints::new(mesh.vertices.clone());
                Ok((ObjectModel::from_mesh(id, mesh, 3000, tracker_seed)?, pts))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            frames,
            objects,
            seed: tracker_seed,
        })
    }
}

/// Errors and latencies of one tracker run over one sequence.
struct Run {
    add: f64,
    adds: f64,
    tracked: f64,
    latencies: Vec<f64>,
    /// ADD-S by visibility band and the longest runs lost, the sequence's objects pooled.
    losses: LossTally,
}

/// Track `seq` with `config` (its seed replaced by the sequence's tracker seed).
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
    let mut per_object = vec![LossTally::default(); seq.objects.len()];
    for f in &seq.frames {
        let Some(out) = driver.frame(f.frame.im_id, Ok(&f.frame), 0.0)? else {
            continue;
        };
        let objects = out.poses.iter().zip(&f.gt).zip(&seq.objects);
        for (k, ((pose, gt), (_, pts))) in objects.enumerate() {
            sum_add += pts.add(pose, &gt.pose);
            let e = pts.adds(pose, &gt.pose);
            sum_adds += e;
            tracked += usize::from(!is_lost(Some(e)));
            n += 1;
            let visible = f.info.get(k).map_or(1.0, |i| i.visib_fract);
            per_object[k].push(Some(e), Some(visible));
        }
    }
    let mut losses = LossTally::default();
    per_object.iter().for_each(|t| losses.merge(t));
    let n = n.max(1) as f64;
    Ok(Run {
        add: sum_add / n,
        adds: sum_adds / n,
        tracked: tracked as f64 / n,
        latencies: driver.run.latencies,
        losses,
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
    let mut losses = LossTally::default();
    runs.iter().for_each(|r| losses.merge(&r.losses));
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
        adds_by_visibility_mm: losses.band_means_mm(),
        longest_lost_run: losses.longest_lost,
        longest_lost_run_visible: losses.longest_lost_visible,
    })
}

/// Run the study: every filter × particle count per object, then joint vs per-object for RF-PF
/// at every particle count when `rfpf` is among the filters; each cell over `study.seeds` sequences (seeds `seed`, `seed + 1`, …).
pub fn pose_study(study: &StudyConfig) -> Result<StudyTable> {
    if study.seeds == 0 || study.frames == 0 {
        return Err(Error::param(
            "seeds/frames",
            0,
            "need at least one sequence and frame",
        ));
    }
    let seqs = (0..study.seeds)
        .map(|i| Sequence::render(study, i))
        .collect::<Result<Vec<_>>>()?;
    // Real meshes run with what `hdpf track` users get; the built-in shapes with the study's own.
    let config = |kind, n, joint| match study.models {
        Some(_) => TrackerConfig {
            joint,
            ..TrackerConfig::new(kind, n, study.seed)
        },
        None => fast_config(kind, n, joint, study.seed),
    };
    let mut cells: Vec<(FilterKind, usize, bool)> = Vec::new();
    for &kind in &study.filters {
        cells.extend(study.particles.iter().map(|&n| (kind, n, false)));
    }
    // Joint against per-object for RF-PF, when RF-PF is among the filters.
    if study.filters.contains(&FilterKind::Rfpf) {
        cells.extend(study.particles.iter().map(|&n| (FilterKind::Rfpf, n, true)));
    }
    let total = cells.len();
    let rows = (cells.into_iter().enumerate())
        .map(|(k, (kind, n, joint))| {
            let row = run_cell(&seqs, &config(kind, n, joint))?;
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
    let objects = match &study.models {
        Some(dir) => format!("real meshes of {}", dir.display()),
        None => "built-in box and cylinder".to_string(),
    };
    Ok(StudyTable { objects, rows })
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
            "filter,mode,particles,sequences,add_mm,adds_mm,adds_se_mm,tracked,latency_p50_ms,\
             adds_visib_ge_0.9_mm,adds_visib_0.5_0.9_mm,adds_visib_lt_0.5_mm,longest_lost_run,\
             longest_lost_run_visible\n",
        );
        let band = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x:.3}"));
        for r in &self.rows {
            let [hi, mid, lo] = r.adds_by_visibility_mm.map(band);
            let _ = writeln!(
                t,
                "{},{},{},{},{:.3},{:.3},{:.3},{:.4},{:.3},{hi},{mid},{lo},{},{}",
                r.filter,
                r.mode(),
                r.particles,
                r.sequences,
                r.add_mm,
                r.adds_mm,
                r.adds_se_mm,
                r.tracked,
                r.latency_ms,
                r.longest_lost_run,
                r.longest_lost_run_visible
            );
        }
        t
    }

    /// Mean ADD-S (mm) against particles, one curve per filter and mode, with a ± s.e. band.
    pub fn plot(&self) -> LinePlot {
        let title = format!(
            "Fast motion, {}: mean ADD-S (± s.e. over sequences)",
            self.objects
        );
        let mut plot = LinePlot::new(title, "particles", "ADD-S (mm)");
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
            adds_by_visibility_mm: [Some(adds_mm), None, Some(40.0)],
            longest_lost_run: 5,
            longest_lost_run_visible: 2,
        };
        let table = StudyTable {
            objects: "built-in box and cylinder".into(),
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
        assert!(csv.contains("rfpf,joint,25,3,36.000,18.000,1.000,0.5000,4.000,18.000,,40.000,5,2"));
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

    /// Real meshes (`--models`): pairs rendered in turn and tracked with `hdpf track`'s defaults;
    /// slow motion from the ground truth loses nothing.
    #[test]
    fn real_mesh_pairs_are_tracked_with_the_track_defaults() {
        let Some(root) = crate::core::datasets::shared_or_skip("ycbv-mini") else {
            return;
        };
        let study = StudyConfig {
            frames: 3,
            width: 320,
            particles: vec![10],
            filters: vec![FilterKind::Gn],
            seed: 21,
            seeds: 2,
            motion: Motion::Slow,
            models: Some(root.join("models")),
            pairs: vec![(5, 10), (3, 9)],
        };
        let table = pose_study(&study).unwrap();
        assert_eq!(table.rows.len(), 1, "gn alone: rfpf joint only beside rfpf");
        for r in &table.rows {
            assert_eq!(r.sequences, 2);
            assert!(r.tracked == 1.0 && r.longest_lost_run == 0, "{r:?}");
            assert!(
                r.adds_by_visibility_mm[0].is_some_and(|e| e < 20.0),
                "{r:?}"
            );
        }
        assert!(Cli::try_parse_from(["study", "--pairs", "5-10"]).is_err());
        let c = Cli::parse_from(["study", "--pairs", "2:6,4:15"]);
        assert_eq!(c.study.pairs, [(2, 6), (4, 15)]);
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
