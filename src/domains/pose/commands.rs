//! The `hdpf track` and `hdpf eval` commands: arguments, runs and summary tables.

use crate::core::error::{Error, Result};
use crate::core::filter::FilterKind;
use crate::domains::pose::bop::{self, BopDataset, Frame, PoseResult, Scene};
use crate::domains::pose::metrics::{evaluate, evaluate_with, EvalOptions, EvalReport};
use crate::domains::pose::modality::ImageF32;
use crate::domains::pose::tracker::{
    parse_modalities, ObjectModel, TrackFrame, Tracker, TrackerConfig,
};
use nalgebra::Isometry3;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Arguments of `hdpf track`.
#[derive(clap::Args, Clone, Debug)]
pub struct TrackArgs {
    /// BOP dataset root (with `models/` and `<split>/<scene>/`).
    #[arg(long)]
    pub dataset: PathBuf,
    /// Split directory name.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Scene id.
    #[arg(long)]
    pub scene: u32,
    /// Comma-separated object ids (default: every object of the first frame's GT).
    #[arg(long)]
    pub objects: Option<String>,
    /// Filter: rfpf, grad, sir or mcl.
    #[arg(long, default_value = "rfpf")]
    pub filter: String,
    /// Particles per filter.
    #[arg(long, default_value_t = 100)]
    pub particles: usize,
    /// Comma-separated modalities: depth, edge.
    #[arg(long, default_value = "depth")]
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
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Mean pose errors of a set of results against the GT.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ErrorSummary {
    /// Number of (image, object) estimates evaluated.
    pub count: usize,
    /// Mean ADD (mm).
    pub add_mm: f64,
    /// Mean ADD-S (mm).
    pub adds_mm: f64,
    /// Mean rotation error (deg).
    pub rot_deg: f64,
    /// Mean translation error (mm).
    pub trans_mm: f64,
}

/// What a tracking run measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TrackReport {
    /// Results written (one per tracked object and loaded frame).
    pub results: usize,
    /// Frames that failed to load, with the reason.
    pub skipped: Vec<(u32, String)>,
    /// Tracking latency per object per frame (s), median.
    pub latency_p50: f64,
    /// Tracking latency per object per frame (s), 99th percentile.
    pub latency_p99: f64,
    /// Image decoding time per frame (s), median (excluded from the latency).
    pub decode_p50: f64,
    /// Errors over all objects and frames.
    pub all: ErrorSummary,
    /// Errors per object id.
    pub per_object: BTreeMap<u32, ErrorSummary>,
    /// The full evaluation (AUC All / Average, medians).
    pub eval: EvalReport,
}

/// Convert a loaded BOP frame into the tracker's inputs (depth always; grey when `grey`).
pub fn track_frame(frame: &Frame, grey: bool) -> TrackFrame {
    let cam = frame.camera;
    let (w, h) = (cam.width as usize, cam.height as usize);
    let depth = ImageF32 {
        width: w,
        height: h,
        data: frame.depth.data.clone(),
    };
    let grey = grey.then(|| {
        let data = frame
            .rgb
            .pixels()
            .map(|p| (0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32) / 255.0)
            .collect();
        Arc::new(ImageF32 {
            width: w,
            height: h,
            data,
        })
    });
    TrackFrame {
        depth: Some(Arc::new(depth)),
        grey,
        camera: cam,
    }
}

/// Parse `3,6` into object ids.
fn parse_ids(s: &str) -> Result<Vec<u32>> {
    s.split(',')
        .map(|x| {
            x.trim()
                .parse()
                .map_err(|_| Error::param("objects", s, "expected comma-separated ids"))
        })
        .collect()
}

/// The tracker configuration a command line asks for.
pub fn config_from_args(args: &TrackArgs) -> Result<TrackerConfig> {
    let filter: FilterKind = args.filter.parse()?;
    Ok(TrackerConfig {
        filter,
        particles: args.particles,
        seed: args.seed,
        modalities: parse_modalities(&args.modalities)?,
        joint: args.joint,
        init_noise: args.init_noise.as_deref().map(str::parse).transpose()?,
        init_updates: if args.init_noise.is_some() { 10 } else { 1 },
        ..TrackerConfig::default()
    })
}

/// The poses of `ids` in image `im_id`'s GT, or an error naming the missing object.
fn gt_poses(scene: &Scene, im_id: u32, ids: &[u32]) -> Result<Vec<Isometry3<f64>>> {
    let gt = scene
        .gt
        .get(&im_id)
        .ok_or_else(|| Error::param("scene_gt", im_id, "image has no GT"))?;
    ids.iter()
        .map(|id| {
            gt.iter()
                .find(|g| g.obj_id == *id)
                .map(|g| g.pose)
                .ok_or_else(|| {
                    Error::param("objects", id, format!("not in the GT of image {im_id}"))
                })
        })
        .collect()
}

/// Initial poses: first-image GT (optionally perturbed) or the first image's rows of a results file.
fn initial_poses(
    args: &TrackArgs,
    cfg: &TrackerConfig,
    scene: &Scene,
    objects: &[ObjectModel],
) -> Result<Vec<Isometry3<f64>>> {
    let ids: Vec<u32> = objects.iter().map(|o| o.obj_id).collect();
    let first = *scene
        .image_ids
        .first()
        .ok_or_else(|| Error::param("scene", args.scene, "has no images"))?;
    if let Some(path) = &args.init_results {
        let rows = bop::read_results(path)?;
        return ids
            .iter()
            .map(|id| {
                rows.iter()
                    .find(|r| r.scene_id == args.scene && r.im_id == first && r.obj_id == *id)
                    .map(|r| r.pose)
                    .ok_or_else(|| {
                        Error::format(
                            path,
                            format!(
                                "no row for scene {}, image {first}, object {id}",
                                args.scene
                            ),
                        )
                    })
            })
            .collect();
    }
    let gt = gt_poses(scene, first, &ids)?;
    Ok(match cfg.init_noise {
        Some(noise) => gt
            .iter()
            .zip(objects)
            .map(|(p, o)| noise.perturb(p, &o.centre, args.seed.wrapping_add(o.obj_id as u64)))
            .collect(),
        None => gt,
    })
}

/// `hdpf track`: track the objects of a BOP scene, write BOP19 results, print the summary.
pub fn run_track(args: &TrackArgs) -> Result<TrackReport> {
    let cfg = config_from_args(args)?;
    let dataset = BopDataset::open(&args.dataset)?;
    let scene = dataset.scene(&args.split, args.scene)?;
    let first = *scene
        .image_ids
        .first()
        .ok_or_else(|| Error::param("scene", args.scene, "has no images"))?;
    let ids = match &args.objects {
        Some(s) => parse_ids(s)?,
        None => scene
            .gt
            .get(&first)
            .map(|g| g.iter().map(|p| p.obj_id).collect())
            .unwrap_or_default(),
    };
    let objects = ids
        .iter()
        .map(|&id| ObjectModel::from_mesh(id, &dataset.model(id)?, cfg.surface_samples, cfg.seed))
        .collect::<Result<Vec<_>>>()?;
    let init = initial_poses(args, &cfg, &scene, &objects)?;
    let mut tracker = Tracker::new(cfg.clone(), objects, init)?;
    let run = track_scene(
        &mut tracker,
        &scene,
        cfg.modalities
            .contains(&crate::domains::pose::tracker::ModalityKind::Edge),
    )?;
    bop::write_results(&args.out, &run.results)?;
    let report = summarize(&dataset, &scene, &run)?;
    print_summary(
        &report,
        &format!(
            "{} {} scene {} ({} particles)",
            cfg.filter,
            if cfg.joint { "joint" } else { "per-object" },
            args.scene,
            cfg.particles
        ),
    );
    Ok(report)
}

/// Raw output of a tracking run.
pub struct SceneRun {
    /// One row per object and tracked frame.
    pub results: Vec<PoseResult>,
    /// Skipped frames and why.
    pub skipped: Vec<(u32, String)>,
    /// Per object per frame latency (s).
    pub latencies: Vec<f64>,
    /// Per frame decode time (s).
    pub decode: Vec<f64>,
}

/// Run `tracker` over every image of `scene` (from its second image on, the first being the
/// initialization — its estimate is the tracker's first update), skipping frames that fail to load.
pub fn track_scene(tracker: &mut Tracker, scene: &Scene, grey: bool) -> Result<SceneRun> {
    let bar = indicatif::ProgressBar::new(scene.image_ids.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
            .map_err(|e| Error::Other(e.to_string()))?,
    );
    bar.set_prefix(format!("track {}/{:06}", scene.split, scene.scene_id));
    let mut run = SceneRun {
        results: Vec::new(),
        skipped: Vec::new(),
        latencies: Vec::new(),
        decode: Vec::new(),
    };
    for &im_id in &scene.image_ids {
        bar.inc(1);
        let t0 = Instant::now();
        let frame = match scene.load_frame(im_id) {
            Ok(f) => f,
            Err(e) => {
                bar.set_message(format!("skipped image {im_id}"));
                run.skipped.push((im_id, e.to_string()));
                continue;
            }
        };
        let input = track_frame(&frame, grey);
        run.decode.push(t0.elapsed().as_secs_f64());
        let out = tracker.step(&input)?;
        let time: f64 = out.seconds.iter().sum();
        run.latencies.extend(&out.seconds);
        for (o, pose) in tracker.objects().iter().zip(&out.poses) {
            run.results.push(PoseResult {
                scene_id: scene.scene_id,
                im_id,
                obj_id: o.obj_id,
                score: 1.0,
                pose: *pose,
                time,
            });
        }
    }
    bar.finish_and_clear();
    Ok(run)
}

/// The `q`-quantile (nearest rank) of `v` (0 when empty).
pub fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1]
}

impl ErrorSummary {
    fn push(&mut self, add: f64, adds: f64, rot: f64, trans: f64) {
        let n = self.count as f64;
        let upd = |m: &mut f64, x: f64| *m = (*m * n + x) / (n + 1.0);
        upd(&mut self.add_mm, add * 1e3);
        upd(&mut self.adds_mm, adds * 1e3);
        upd(&mut self.rot_deg, rot);
        upd(&mut self.trans_mm, trans * 1e3);
        self.count += 1;
    }
}

/// Mean errors over the found targets of an evaluation, pooled and per object.
pub fn mean_errors(report: &EvalReport) -> (ErrorSummary, BTreeMap<u32, ErrorSummary>) {
    let (mut all, mut per) = (
        ErrorSummary::default(),
        BTreeMap::<u32, ErrorSummary>::new(),
    );
    for t in report.targets.iter().filter(|t| t.found) {
        let e = (t.add_m, t.adds_m, t.rot_err_deg, t.trans_err_mm / 1e3);
        all.push(e.0, e.1, e.2, e.3);
        per.entry(t.obj_id).or_default().push(e.0, e.1, e.2, e.3);
    }
    (all, per)
}

/// Evaluate `results` of one scene (ADD/ADD-S with the metrics module) and average the errors.
pub fn errors(
    dataset: &BopDataset,
    scene: &Scene,
    results: &[PoseResult],
) -> Result<(ErrorSummary, BTreeMap<u32, ErrorSummary>)> {
    Ok(mean_errors(&scene_eval(dataset, scene, results)?))
}

fn scene_eval(dataset: &BopDataset, scene: &Scene, results: &[PoseResult]) -> Result<EvalReport> {
    let options = EvalOptions {
        split: Some(scene.split.clone()),
        obj_ids: Some(results.iter().map(|r| r.obj_id).collect()),
    };
    evaluate_with(dataset, results, &options)
}

fn summarize(dataset: &BopDataset, scene: &Scene, run: &SceneRun) -> Result<TrackReport> {
    let eval = scene_eval(dataset, scene, &run.results)?;
    let (all, per_object) = mean_errors(&eval);
    Ok(TrackReport {
        results: run.results.len(),
        skipped: run.skipped.clone(),
        latency_p50: quantile(&run.latencies, 0.5),
        latency_p99: quantile(&run.latencies, 0.99),
        decode_p50: quantile(&run.decode, 0.5),
        all,
        per_object,
        eval,
    })
}

/// Print the summary table of a tracking run.
pub fn print_summary(r: &TrackReport, title: &str) {
    println!("{title}");
    print_means(&r.all, &r.per_object);
    println!("{}", r.eval.summary);
    println!(
        "tracking latency per object per frame: p50 {:.2} ms, p99 {:.2} ms; image decode (excluded) p50 {:.2} ms/frame; skipped frames: {}",
        r.latency_p50 * 1e3,
        r.latency_p99 * 1e3,
        r.decode_p50 * 1e3,
        r.skipped.len()
    );
    for (im, why) in &r.skipped {
        println!("  skipped image {im}: {why}");
    }
}

/// `hdpf eval`: evaluate any BOP19 results file (AUC All / Average labelled, mean ADD / ADD-S).
pub fn run_eval(args: &EvalArgs) -> Result<EvalReport> {
    let dataset = BopDataset::open(&args.dataset)?;
    let report = evaluate(&dataset, &bop::read_results(&args.results)?)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| Error::Other(e.to_string()))?
        );
    } else {
        let (all, per) = mean_errors(&report);
        print_means(&all, &per);
        println!("{report}");
    }
    Ok(report)
}

/// Print mean ADD / ADD-S / rotation / translation errors per object and pooled.
pub fn print_means(all: &ErrorSummary, per_object: &BTreeMap<u32, ErrorSummary>) {
    println!(
        "{:>8} {:>6} {:>9} {:>10} {:>9} {:>10}",
        "object", "n", "ADD mm", "ADD-S mm", "rot deg", "trans mm"
    );
    let row = |name: &str, s: &ErrorSummary| {
        println!(
            "{:>8} {:>6} {:>9.2} {:>10.2} {:>9.2} {:>10.2}",
            name, s.count, s.add_mm, s.adds_mm, s.rot_deg, s.trans_mm
        )
    };
    for (id, s) in per_object {
        row(&id.to_string(), s);
    }
    row("all", all);
}
