//! The arguments of `hdpf track` and `hdpf eval`, and the tracker configuration they ask for.

use crate::core::error::{Error, Result};
use crate::core::filter::presets::{parse_param, PresetParam};
use crate::core::filter::FilterKind;
use crate::domains::pose::tracker::{
    RedetectConfig, TrackerConfig, Views, DEFAULT_ROUNDS, FAST_MOTION, PARTICLE_ROUNDS,
    SLOW_ROUNDS, VIEWS,
};
use std::path::PathBuf;

/// Arguments of `hdpf track`.
#[derive(clap::Args, Clone, Debug)]
pub struct TrackArgs {
    /// BOP dataset root (with `models/` and `<split>/<scene>/`), or a rosbag2 / MCAP recording
    /// (`FILE.mcap`; then give `--models` and no `--split`/`--scene`).
    #[arg(long)]
    pub dataset: PathBuf,
    /// Split directory name (BOP datasets; default `test`).
    #[arg(long)]
    pub split: Option<String>,
    /// Scene id (BOP datasets).
    #[arg(long)]
    pub scene: Option<u32>,
    /// The meshes of an MCAP recording's objects: a BOP `models/` folder, or a dataset root
    /// holding one.
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// Comma-separated object ids (default: every object of the first frame's GT).
    #[arg(long)]
    pub objects: Option<String>,
    /// Filter: a preset name — rfpf, rfpf-newton, gn (one hypothesis, Gauss–Newton), grad, sir,
    /// mcl, ….
    #[arg(long, default_value = "rfpf-newton")]
    pub filter: String,
    /// A parameter of the filter's preset, `FILTER.KEY=VALUE` (VALUE a TOML value), repeatable:
    /// e.g. `--param rfpf-newton.inflation=1.0`. The keys are the preset's (README, "Filter
    /// parameters"); a key the preset lacks, or one for another filter, is an error.
    #[arg(long = "param", value_name = "FILTER.KEY=VALUE", value_parser = parse_param)]
    pub params: Vec<PresetParam>,
    /// Correspondence rounds per fast frame, at most (1–20): each re-prepares the modalities
    /// about the current estimate and runs one filter update (after `--particle-rounds`, the mean
    /// step alone), coarse to fine.
    #[arg(long, default_value_t = DEFAULT_ROUNDS)]
    pub rounds: usize,
    /// Rounds of a frame that move every particle (1–20): later rounds translate the cloud by
    /// its mean step alone, evaluated at the mean instead of at every particle (README, "Particle
    /// moves in the first rounds only"). `gn`, a group's first frame and `--mean-step off` move
    /// in every round.
    #[arg(long, default_value_t = PARTICLE_ROUNDS)]
    pub particle_rounds: usize,
    /// A cloud's filter update reads every Nth depth chunk and about 1/N of the region lines
    /// (1–20); the Newton curvature, the mean step and the loss judgement read all, as do `gn`
    /// and the edge modalities (README, "Particle moves on a stride of the correspondences").
    /// Default: 2 for rfpf-newton, 1 for the other filters.
    #[arg(long)]
    pub particle_stride: Option<usize>,
    /// Correspondence rounds per slow frame (1–20; clamped to `--rounds`).
    #[arg(long, default_value_t = SLOW_ROUNDS)]
    pub slow_rounds: usize,
    /// The pace threshold in millimetres of surface motion per frame: a frame is fast for an
    /// object when it moved more than this last frame, or when a slow refinement moves it more
    /// than this (`0`: every frame is fast).
    #[arg(long, default_value_t = FAST_MOTION * 1e3)]
    pub fast_motion_mm: f64,
    /// Motion prediction: `auto` (the random walk on slow frames; on fast ones the damped
    /// constant velocity for rfpf-newton, `best_of` for the other filters), `random_walk`,
    /// `constant_velocity`, or `best_of` (both, each refined by the rounds, the better fit kept).
    #[arg(long, default_value = "auto")]
    pub motion: String,
    /// The fraction of the last increment a constant-velocity prediction repeats (finite, ≥ 0;
    /// default 0.85 for rfpf-newton, 1 for the others; README, "Damped constant velocity …").
    #[arg(long)]
    pub velocity_damping: Option<f64>,
    /// Re-detection after loss: `on` (the default) or `off`. An object whose depth fit turns far
    /// worse than its running level is searched for around its prediction and last good pose,
    /// and restarted where it fits as well as it did while tracked (README, "Re-detection").
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub redetect: String,
    /// The mean step: `on` (the default) or `off`. Each correspondence round ends by translating
    /// the cloud by one Gauss–Newton step of its mean, trusted within the cloud's covariance
    /// (README, "The mean step; rfpf-newton the default"); `gn` (one hypothesis) never takes it.
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub mean_step: String,
    /// Depth readings of other objects: `on` (the default) leaves out of each object's depth
    /// term the readings that another tracked object's estimate explains (an object under or
    /// behind another neither pays for its occlusion nor leans on its surface; README,
    /// "Depth ownership between objects"), `off` reads them all.
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub ownership: String,
    /// Which of the depth and region modalities' selections come from each object's sparse
    /// viewpoint model (the nearest of 2562 views, each rendered once, as ICG does): `contour`
    /// the region modality's contour points, `on` those and the depth term's visible points,
    /// `off` none. `on` suits a noisy start on slow footage, but loses thin, concave objects
    /// more often on fast motion (README, "The sparse viewpoint model", "Contour views and
    /// stride 2: the default" and "The rest of the latency gap").
    #[arg(long, default_value = VIEWS.name(), value_parser = Views::NAMES)]
    pub views: String,
    /// Particles per filter.
    #[arg(long, default_value_t = 100)]
    pub particles: usize,
    /// Comma-separated modalities: depth, edge, depth-edge, region (RGB colour regions).
    #[arg(long, default_value = "depth,region")]
    pub modalities: String,
    /// Perturb the initial GT pose, e.g. `20mm,10deg`.
    #[arg(long)]
    pub init_noise: Option<String>,
    /// Initialize from the first image's rows of this BOP19 results file instead of the GT.
    #[arg(long)]
    pub init_results: Option<PathBuf>,
    /// One joint filter over all objects (6K dimensions) instead of one filter per object.
    #[arg(long)]
    pub joint: bool,
    /// Seed of every random stream.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// BOP19 results CSV to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `hdpf eval`.
#[derive(clap::Args, Clone, Debug)]
pub struct EvalArgs {
    /// BOP dataset root.
    #[arg(long)]
    pub dataset: PathBuf,
    /// BOP19 results CSV.
    #[arg(long)]
    pub results: PathBuf,
    /// The split of the results' scenes (default: per scene, the one split holding it; needed
    /// when several do).
    #[arg(long)]
    pub split: Option<String>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The tracker configuration a command line asks for.
pub fn config_from_args(args: &TrackArgs) -> Result<TrackerConfig> {
    let noise = args.init_noise.as_deref().map(str::parse).transpose()?;
    let filter: FilterKind = args.filter.parse()?;
    let mut c = TrackerConfig::new(filter, args.particles, args.seed)
        .with_filter_params(own_params(filter, &args.params)?)?
        .with_modalities(&args.modalities)?
        .with_init_noise(noise)
        .with_rounds(args.rounds)?
        .with_particle_rounds(args.particle_rounds)?
        .with_pace_mm(args.slow_rounds, args.fast_motion_mm)?;
    if let Some(n) = args.particle_stride {
        c = c.with_particle_stride(n)?;
    }
    c = c.with_velocity_damping(args.velocity_damping)?;
    c.joint = args.joint;
    c.uncertain_start |= args.init_results.is_some();
    c.motion = args.motion.parse()?;
    c.redetect = (args.redetect == "on").then(RedetectConfig::default);
    c.mean_step = args.mean_step == "on";
    c.ownership = args.ownership == "on";
    c.views = args.views.parse()?;
    Ok(c)
}

/// The keys and values of `params` as a table for `filter`; an error naming the parameter when
/// one is for another filter (a `--param` that would otherwise be silently ignored).
fn own_params(filter: FilterKind, params: &[PresetParam]) -> Result<toml::Table> {
    if let Some(p) = params.iter().find(|p| p.kind != filter) {
        let name = format!("{}.{}", p.kind, p.key);
        return Err(Error::param(
            "param",
            name,
            format!("the filter is {filter}"),
        ));
    }
    Ok(PresetParam::table_of(filter, params))
}
