//! The synthetic fast-motion study behind `hdpf bench pose`: filters × particle counts, and joint
//! versus per-object filtering, on one rendered sequence (box and cylinder, fast jerky motion).

use crate::error::Result;
use crate::filter::FilterKind;
use crate::pose::commands::{quantile, track_frame};
use crate::pose::metrics::{add, adds};
use crate::pose::synth::{
    render_sequence, ycbv_camera, Motion, SynthConfig, SynthFrame, Synthesizer,
};
use crate::pose::tracker::{MotionModel, ObjectModel, Tracker, TrackerConfig};
use nalgebra::Point3;
use std::fmt;

/// Study size.
#[derive(Clone, Debug, PartialEq)]
pub struct StudyConfig {
    /// Frames of the sequence.
    pub frames: usize,
    /// Image width (height = 3/4 width).
    pub width: u32,
    /// Particle counts.
    pub particles: Vec<usize>,
    /// Filters.
    pub filters: Vec<FilterKind>,
    /// Seed of the sequence and the filters.
    pub seed: u64,
}

impl Default for StudyConfig {
    fn default() -> Self {
        Self {
            frames: 40,
            width: 320,
            particles: vec![25, 50, 100, 200],
            filters: FilterKind::ALL.to_vec(),
            seed: 0,
        }
    }
}

/// One row of the study table: mean errors over all objects and frames.
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
    /// Median tracking latency per object per frame (ms).
    pub latency_ms: f64,
}

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
            "{:>6} {:>9} {:>10} {:>8} {:>9} {:>11}",
            "filter", "particles", "mode", "ADD mm", "ADD-S mm", "p50 ms/obj"
        )?;
        for r in &self.rows {
            let mode = if r.joint { "joint" } else { "per-object" };
            writeln!(
                f,
                "{:>6} {:>9} {:>10} {:>8.2} {:>9.2} {:>11.2}",
                r.filter, r.particles, mode, r.add_mm, r.adds_mm, r.latency_ms
            )?;
        }
        Ok(())
    }
}

/// Tracker settings for fast motion: constant velocity and a wide motion prior.
fn fast_config(kind: FilterKind, particles: usize, joint: bool, seed: u64) -> TrackerConfig {
    TrackerConfig {
        filter: kind,
        particles,
        joint,
        seed,
        motion: MotionModel::ConstantVelocity,
        motion_sigma: (0.015, 6f64.to_radians()),
        process_noise: (0.006, 2f64.to_radians()),
        unit: 0.008,
        ..TrackerConfig::default()
    }
}

/// Track `frames` with `config` and return the row.
fn run_one(
    frames: &[SynthFrame],
    objects: &[(ObjectModel, Vec<Point3<f64>>)],
    config: TrackerConfig,
) -> Result<StudyRow> {
    let (filter, particles, joint) = (config.filter.to_string(), config.particles, config.joint);
    let models = objects.iter().map(|o| o.0.clone()).collect();
    let init = frames[0].gt.iter().map(|g| g.pose).collect();
    let mut tracker = Tracker::new(config, models, init)?;
    let (mut sum_add, mut sum_adds, mut n, mut lat) = (0.0, 0.0, 0usize, Vec::new());
    for f in frames {
        let out = tracker.step(&track_frame(&f.frame, false))?;
        lat.extend(&out.seconds);
        for ((pose, gt), (_, pts)) in out.poses.iter().zip(&f.gt).zip(objects) {
            sum_add += add(pts, pose, &gt.pose);
            sum_adds += adds(pts, pose, &gt.pose);
            n += 1;
        }
    }
    Ok(StudyRow {
        filter,
        particles,
        joint,
        add_mm: sum_add / n as f64 * 1e3,
        adds_mm: sum_adds / n as f64 * 1e3,
        latency_ms: quantile(&lat, 0.5) * 1e3,
    })
}

/// Run the study: every filter × particle count per object, then joint vs per-object for RF-PF
/// at every particle count.
pub fn pose_study(study: &StudyConfig) -> Result<StudyTable> {
    let mut cfg = SynthConfig::new("in-memory");
    cfg.frames = study.frames;
    cfg.motion = Motion::Fast;
    cfg.seed = study.seed;
    cfg.camera = ycbv_camera(study.width, study.width * 3 / 4);
    let frames = render_sequence(&cfg)?;
    let synth = Synthesizer::new(&cfg)?;
    let objects = synth
        .models()
        .map(|(_, id, mesh)| {
            let step = (mesh.vertices.len() / 500).max(1);
            let pts = mesh.vertices.iter().step_by(step).copied().collect();
            Ok((ObjectModel::from_mesh(id, mesh, 3000, study.seed)?, pts))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut rows = Vec::new();
    for &kind in &study.filters {
        for &n in &study.particles {
            rows.push(run_one(
                &frames,
                &objects,
                fast_config(kind, n, false, study.seed),
            )?);
        }
    }
    for &n in &study.particles {
        rows.push(run_one(
            &frames,
            &objects,
            fast_config(FilterKind::Rfpf, n, true, study.seed),
        )?);
    }
    Ok(StudyTable { rows })
}
