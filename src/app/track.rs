//! The `hdpf track` and `hdpf eval` commands: arguments, runs and summary tables.

use crate::app::track_plot::save_track_plot;
use crate::core::error::{Error, Result};
use crate::core::stats::{percentile, Rank};
use crate::domains::pose::bop::{self, BopDataset, GtPose};
use crate::domains::pose::calibration::{self, NeesSummary};
use crate::domains::pose::driver::{
    first_image, object_models, Driver, InitFrom, Keep, Published, TrackRun,
};
use crate::domains::pose::metrics::{evaluate_with, results_scene, EvalOptions, EvalReport};
use crate::domains::pose::scoring::{
    gt_eval, loss_tallies, mean_errors, ErrorSummary, LossDetection, LossTally, VisibleAgreement,
    BAND_NAMES, LOST_ADDS_M,
};
use crate::domains::pose::tracker::TrackerConfig;
use crate::domains::recording::mcap_read::{open_recording, ReadOptions};
use std::collections::BTreeMap;
use std::path::Path;

pub use super::track_args::{config_from_args, EvalArgs, TrackArgs};

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
    /// Tracking quality and loss per object id.
    pub tracking: BTreeMap<u32, TrackingSummary>,
    /// NEES of the published covariances over all objects and frames.
    pub nees: NeesSummary,
    /// ADD-S by visibility band and the longest runs lost, all objects pooled (the bands where
    /// the scene has `scene_gt_info.json`).
    pub losses: LossTally,
    /// The same per object id.
    pub losses_per_object: BTreeMap<u32, LossTally>,
    /// How the tracker's `lost` flags matched the frames over 20 mm.
    pub loss_detection: LossDetection,
    /// How the tracker's visible fractions
    /// ([`Judgement::visible`](crate::domains::pose::tracker::Judgement::visible)) matched the
    /// scene's.
    pub visible_agreement: VisibleAgreement,
    /// How its `held` flags (the loss trigger's,
    /// [`Judgement::held`](crate::domains::pose::tracker::Judgement::held)) matched them.
    pub held_detection: LossDetection,
    /// The full evaluation (AUC All / Average, medians).
    pub eval: EvalReport,
}

/// How well an object was held, by the tracker's own judgement, and how well its published
/// covariance matched its errors.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TrackingSummary {
    /// Mean tracking quality over the frames where it was judged (1 − the fraction of visible
    /// model points that the depth does not explain, missing depth included; NaN when never
    /// judged).
    pub quality: f64,
    /// Frames in which its pose was held by the loss trigger (and not re-detected).
    pub held_frames: usize,
    /// Frames in which the object was judged lost.
    pub lost_frames: usize,
    /// The last frame's quality.
    pub last_quality: f64,
    /// Whether the object was lost in the last frame.
    pub lost_at_end: bool,
    /// NEES of the published covariance against the ground truth, over the frames that have it
    /// ([`calibration`]).
    pub nees: NeesSummary,
}

impl TrackingSummary {
    /// Per object id, from the published rows in frame order, and the NEES over all of them;
    /// `gt` (per image id) scores the covariances, each row's once.
    pub fn per_object(
        rows: &[Published],
        gt: &BTreeMap<u32, Vec<GtPose>>,
    ) -> (BTreeMap<u32, Self>, NeesSummary) {
        let nees: Vec<Option<Option<f64>>> = (rows.iter())
            .map(|r| {
                let g = GtPose::nearest(gt.get(&r.im_id)?, r.obj_id, &r.pose)?;
                Some(calibration::nees(&r.pose, &r.covariance, &g.pose))
            })
            .collect();
        let mut by_obj: BTreeMap<u32, (Vec<&Published>, Vec<Option<f64>>)> = BTreeMap::new();
        for (r, e) in rows.iter().zip(&nees) {
            let (rs, es) = by_obj.entry(r.obj_id).or_default();
            rs.push(r);
            es.extend(*e);
        }
        let per_object = (by_obj.into_iter())
            .map(|(id, (rows, nees))| (id, Self::of_object(&rows, &nees)))
            .collect();
        (
            per_object,
            NeesSummary::new(&nees.into_iter().flatten().collect::<Vec<_>>()),
        )
    }

    /// The summary of one object's rows in frame order and the NEES of those with ground truth.
    fn of_object(rows: &[&Published], nees: &[Option<f64>]) -> Self {
        let judged: Vec<f64> = (rows.iter().map(|r| r.judgement.quality))
            .filter(|q| q.is_finite())
            .collect();
        let last = rows.last();
        Self {
            quality: match judged.len() {
                0 => f64::NAN,
                n => judged.iter().sum::<f64>() / n as f64,
            },
            held_frames: rows.iter().filter(|r| r.judgement.held).count(),
            lost_frames: rows.iter().filter(|r| r.judgement.lost).count(),
            last_quality: last.map_or(f64::NAN, |r| r.judgement.quality),
            lost_at_end: last.is_some_and(|r| r.judgement.lost),
            nees: NeesSummary::new(nees),
        }
    }
}

/// Parse `3,6` into object ids.
fn parse_ids(s: &str) -> Result<Vec<u32>> {
    let bad = |_| Error::param("objects", s, "expected comma-separated ids");
    s.split(',')
        .map(|x| x.trim().parse().map_err(bad))
        .collect()
}

/// `hdpf track`: track the objects of a BOP scene or an MCAP recording, write BOP19 results,
/// print the summary.
pub fn run_track(args: &TrackArgs) -> Result<TrackReport> {
    let cfg = config_from_args(args)?;
    let from = match &args.init_results {
        Some(path) => InitFrom::Results(path.clone()),
        None => InitFrom::GroundTruth,
    };
    writable(&args.out)?;
    let t = match is_recording(&args.dataset) {
        true => track_recording(args, &cfg, &from)?,
        false => track_bop(args, &cfg, &from)?,
    };
    bop::write_results(&args.out, &t.run.results)?;
    let report = summarize(&t)?;
    // The picture is an extra: the results are written, so failing to draw it only warns.
    let png = args.out.with_extension("png");
    match save_track_plot(&png, &report.eval, &t.run.tracking, |im, obj| {
        t.visible(im, obj)
    }) {
        Ok(()) => crate::outln!(
            "plot: {} (ADD-S, quality, visible fraction per frame)",
            png.display()
        ),
        Err(e) => eprintln!("warning: no plot written: {e}"),
    }
    let mode = if cfg.joint { "joint" } else { "per-object" };
    let params = (cfg.filter_params.iter())
        .map(|(k, v)| format!(", {k} = {v}"))
        .collect::<String>();
    let size = match cfg.particles_per_filter() {
        1 if cfg.particles != 1 => "one hypothesis: --particles does not apply".to_string(),
        n => format!("{n} particles"),
    };
    let title = format!("{} {mode} {} ({size}{params})", cfg.filter, t.label);
    print_summary(&report, &title);
    Ok(report)
}

/// A finished run and what scoring it needs.
struct Tracked {
    dataset: BopDataset,
    scene_id: u32,
    gt: BTreeMap<u32, Vec<GtPose>>,
    /// Visible fractions per image ([`bop::Scene::visibility`]; empty for a recording).
    visibility: BTreeMap<u32, Vec<f64>>,
    run: TrackRun,
    label: String,
}

impl Tracked {
    /// Object `obj_id`'s visible fraction in image `im_id`, where known.
    fn visible(&self, im_id: u32, obj_id: u32) -> Option<f64> {
        bop::visible_fraction(self.gt.get(&im_id)?, self.visibility.get(&im_id)?, obj_id)
    }
}

/// Whether `path` names an MCAP file.
fn is_recording(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("mcap"))
}

fn track_bop(args: &TrackArgs, cfg: &TrackerConfig, from: &InitFrom) -> Result<Tracked> {
    let scene_id = args
        .scene
        .ok_or_else(|| Error::param("scene", "(none)", "give --scene ID for a BOP dataset"))?;
    if let Some(m) = &args.models {
        let why = "--models is for MCAP recordings (a BOP dataset's meshes are in its models/)";
        return Err(Error::param("models", m.display(), why));
    }
    let dataset = BopDataset::open(&args.dataset)?;
    let scene = dataset.scene(args.split.as_deref().unwrap_or("test"), scene_id)?;
    let (first, gt0) = first_image(&scene)?;
    let mut driver = start(args, cfg, &dataset, (scene_id, first, &gt0), from)?;
    driver.track_scene(&scene)?;
    Ok(Tracked {
        dataset,
        scene_id,
        gt: scene.gt,
        visibility: scene.visibility,
        run: driver.run,
        label: format!("scene {scene_id}"),
    })
}

fn track_recording(args: &TrackArgs, cfg: &TrackerConfig, from: &InitFrom) -> Result<Tracked> {
    let path = &args.dataset;
    if args.split.is_some() || args.scene.is_some() {
        let why = "an MCAP file holds one recording: leave out --split and --scene";
        return Err(Error::param("dataset", path.display(), why));
    }
    let models = args.models.as_ref().ok_or_else(|| {
        let why = "tracking an MCAP recording needs --models DIR (a BOP models folder)";
        Error::param("dataset", path.display(), why)
    })?;
    let dataset = models_dataset(models)?;
    let rec = open_recording(path, &ReadOptions::default())?;
    let gt = rec.ground_truth()?;
    let scene_id = rec.scene_id().unwrap_or(0);
    let first = rec.im_id(0);
    let gt0 = gt.get(&first).cloned().unwrap_or_default();
    let mut driver = start(args, cfg, &dataset, (scene_id, first, &gt0), from)?;
    let label = format!("track {}", path.display());
    driver.track_all(&label, rec.len(), |i| {
        (rec.im_id(i), rec.frame(i).map(|f| f.frame))
    })?;
    Ok(Tracked {
        dataset,
        scene_id,
        gt,
        visibility: BTreeMap::new(),
        run: driver.run,
        label: format!("{}", path.display()),
    })
}

/// The dataset whose `models/` is `dir` (a models folder) or lies in `dir` (a dataset root).
fn models_dataset(dir: &Path) -> Result<BopDataset> {
    let dir = &crate::core::datasets::resolve(dir);
    if dir.join("models").is_dir() {
        return BopDataset::open(dir);
    }
    match (dir.file_name(), dir.parent()) {
        (Some(name), Some(root)) if name == "models" && dir.is_dir() => BopDataset::open(root),
        _ => Err(Error::param(
            "models",
            dir.display(),
            "expected a BOP models folder (…/models with obj_NNNNNN.ply) or a dataset root holding one",
        )),
    }
}

/// The driver for the objects of `args` (default: every object of the first image's GT).
fn start(
    args: &TrackArgs,
    cfg: &TrackerConfig,
    dataset: &BopDataset,
    (scene_id, first, gt0): (u32, u32, &[GtPose]),
    from: &InitFrom,
) -> Result<Driver> {
    let ids = match &args.objects {
        Some(s) => parse_ids(s)?,
        None => gt0.iter().map(|p| p.obj_id).collect(),
    };
    if ids.is_empty() {
        let why = "no ground truth in the first image: name the objects with --objects and start \
                   from --init-results";
        return Err(Error::param("objects", "(none)", why));
    }
    let objects = object_models(cfg, &ids, |id| dataset.model(id))?;
    Driver::start(cfg, objects, (scene_id, first, gt0), from, Keep::Results)
}

fn summarize(t: &Tracked) -> Result<TrackReport> {
    let run = &t.run;
    let eval = gt_eval(&t.dataset, t.scene_id, &t.gt, &run.results)?;
    let (all, per_object) = mean_errors(&eval);
    let (tracking, nees) = TrackingSummary::per_object(&run.tracking, &t.gt);
    let (losses, losses_per_object) = loss_tallies(&eval, |_, im, obj| t.visible(im, obj));
    let flags: BTreeMap<(u32, u32), &Published> = (run.tracking.iter())
        .map(|r| ((r.im_id, r.obj_id), r))
        .collect();
    let scored = |flag: fn(&Published) -> bool| {
        LossDetection::of(&eval.targets, |im, obj| {
            flags.get(&(im, obj)).map(|r| flag(r))
        })
    };
    let (loss_detection, held_detection) =
        (scored(|r| r.judgement.lost), scored(|r| r.judgement.held));
    let scene_visible = |r: &Published| t.visible(r.im_id, r.obj_id).unwrap_or(f64::NAN);
    let visible_agreement = VisibleAgreement::of(
        run.tracking
            .iter()
            .map(|r| (r.judgement.visible, scene_visible(r))),
    );
    Ok(TrackReport {
        results: run.results.len(),
        skipped: run.skipped.clone(),
        latency_p50: percentile(&run.latencies, 0.5, Rank::Nearest),
        latency_p99: percentile(&run.latencies, 0.99, Rank::Nearest),
        decode_p50: percentile(&run.decode, 0.5, Rank::Nearest),
        all,
        per_object,
        tracking,
        nees,
        losses,
        losses_per_object,
        loss_detection,
        held_detection,
        visible_agreement,
        eval,
    })
}

/// Print the summary table of a tracking run.
pub fn print_summary(r: &TrackReport, title: &str) {
    crate::outln!("{title}");
    print_means(&r.all, &r.per_object);
    crate::outln!(
        "{:>8} {:>8} {:>12} {:>12} {:>12} {:>12} {:>12} {:>8}",
        "object",
        "quality",
        "held frames",
        "lost frames",
        "lost at end",
        "NEES/6 mean",
        "median",
        "in 95%"
    );
    let row = |name: &str, judged: [String; 4], e: &NeesSummary| {
        let [quality, held, lost, end] = judged;
        crate::outln!(
            "{name:>8} {quality:>8} {held:>12} {lost:>12} {end:>12} {:>12.2} {:>12.2} {:>8.2}",
            e.mean_per_dof,
            e.median_per_dof,
            e.within_95
        );
    };
    for (id, t) in &r.tracking {
        let end = if t.lost_at_end { "yes" } else { "no" };
        let judged = [
            format!("{:.3}", t.quality),
            t.held_frames.to_string(),
            t.lost_frames.to_string(),
            end.into(),
        ];
        row(&id.to_string(), judged, &t.nees);
    }
    row("all", Default::default(), &r.nees);
    crate::outln!(
        "NEES/6 of the published covariance (calibrated: mean 1, median 0.89, 95 % within the \
         chi-square bound); frames without a positive-definite covariance are left out"
    );
    print_losses(&r.losses, &r.losses_per_object);
    print_flags("lost", &r.loss_detection);
    print_flags("held", &r.held_detection);
    let v = &r.visible_agreement;
    crate::outln!(
        "visible fraction, the tracker's against scene_gt_info.json: mean |difference| {:.3} over {} \
         object-frames",
        v.mean_abs_diff,
        v.frames
    );
    crate::outln!("{}", r.eval.points_line());
    crate::outln!("{}", r.eval.summary);
    crate::outln!(
        "tracking latency per object per frame: p50 {:.2} ms, p99 {:.2} ms; image decode (excluded) p50 {:.2} ms/frame; skipped frames: {}",
        r.latency_p50 * 1e3,
        r.latency_p99 * 1e3,
        r.decode_p50 * 1e3,
        r.skipped.len()
    );
    for (im, why) in &r.skipped {
        crate::outln!("  skipped image {im}: {why}");
    }
}

/// Print how the tracker's `name` flags matched the frames over 20 mm (recall, precision).
fn print_flags(name: &str, d: &LossDetection) {
    let share = |x: Option<f64>| x.map_or("-".into(), |v| format!("{:.0} %", v * 100.0));
    crate::outln!(
        "{name} flags: {} of {} frames over 20 mm flagged {name} (recall {}); {} flagged, {} of \
         them over 20 mm (precision {})",
        d.flagged_over,
        d.over,
        share(d.recall()),
        d.flagged,
        d.flagged_over,
        share(d.precision())
    );
}

/// Print ADD-S by visibility band and the longest runs lost, per object and pooled.
fn print_losses(all: &LossTally, per_object: &BTreeMap<u32, LossTally>) {
    let [hi, mid, lo] = BAND_NAMES;
    crate::outln!(
        "ADD-S mm by visible fraction, and the longest run of frames over {:.0} mm (in brackets: \
         counting only frames ≥ 0.9 visible):",
        LOST_ADDS_M * 1e3
    );
    crate::outln!(
        "{:>8} {hi:>9} {mid:>9} {lo:>9} {:>14}",
        "object",
        "longest run"
    );
    let row = |name: &str, t: &LossTally| {
        let [a, b, c] = (t.band_means_mm()).map(|m| m.map_or("-".into(), |x| format!("{x:.2}")));
        let run = format!("{} ({})", t.longest_lost, t.longest_lost_visible);
        crate::outln!("{name:>8} {a:>9} {b:>9} {c:>9} {run:>14}");
    };
    for (id, t) in per_object {
        row(&id.to_string(), t);
    }
    row("all", all);
    if !all.has_visibility() {
        crate::outln!(
            "  (visible fractions unknown: no scene_gt_info.json with one per GT instance)"
        );
    }
}

/// Creates `out`'s folder and checks that the file can be written before any tracking, so that
/// a path that cannot be written fails at once, not after the scene was tracked (the results are
/// written at the end). An existing file is opened without truncation and a new one removed
/// again: a run that fails later leaves an earlier run's results as they were.
fn writable(out: &Path) -> Result<()> {
    crate::runtime::pipeline::sink::create_parent(out)?;
    let existed = out.exists();
    let open = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(out);
    open.map_err(|e| Error::io(out, e))?;
    match existed {
        true => Ok(()),
        false => std::fs::remove_file(out).map_err(|e| Error::io(out, e)),
    }
}

/// `hdpf eval`: evaluate any BOP19 results file (AUC All / Average labelled, mean ADD / ADD-S).
pub fn run_eval(args: &EvalArgs) -> Result<EvalReport> {
    let dataset = BopDataset::open(&args.dataset)?;
    let results = bop::read_results(&args.results)?;
    if results.is_empty() {
        let why = "no result rows: nothing to score (an ADD of 0 would look perfect)";
        return Err(Error::format(&args.results, why));
    }
    // Each results scene read once: its ground truth scores, its visible fractions band.
    let scenes = (results.iter().map(|r| r.scene_id))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|id| Ok((id, results_scene(&dataset, args.split.as_deref(), id)?)))
        .collect::<Result<BTreeMap<_, _>>>()?;
    let options = EvalOptions {
        split: args.split.clone(),
        ground_truth: Some((scenes.iter()).map(|(&id, s)| (id, s.gt.clone())).collect()),
        ..Default::default()
    };
    let report = evaluate_with(&dataset, &results, &options)?;
    let (all, per) = mean_errors(&report);
    let (losses, losses_per_object) = loss_tallies(&report, |scene, im, obj| {
        scenes.get(&scene)?.visible_fraction(im, obj)
    });
    if args.json {
        // The report, with the mean errors in mm the text output leads with.
        let json = |e: serde_json::Error| Error::Other(e.to_string());
        let mut value = serde_json::to_value(&report).map_err(json)?;
        if let Some(map) = value.as_object_mut() {
            map.insert(
                "mean_errors".into(),
                serde_json::to_value(&all).map_err(json)?,
            );
            let per = serde_json::to_value(&per).map_err(json)?;
            map.insert("mean_errors_per_object".into(), per);
            let losses = serde_json::to_value(&losses).map_err(json)?;
            map.insert("losses".into(), losses);
            let per = serde_json::to_value(&losses_per_object).map_err(json)?;
            map.insert("losses_per_object".into(), per);
        }
        crate::outln!("{}", serde_json::to_string_pretty(&value).map_err(json)?);
    } else {
        print_means(&all, &per);
        print_losses(&losses, &losses_per_object);
        crate::outln!("{report}");
    }
    Ok(report)
}

/// Print mean ADD / ADD-S / rotation / translation errors per object and pooled.
pub fn print_means(all: &ErrorSummary, per_object: &BTreeMap<u32, ErrorSummary>) {
    crate::outln!("mean errors per object and pooled:");
    crate::outln!(
        "{:>8} {:>6} {:>9} {:>10} {:>9} {:>10}",
        "object",
        "n",
        "ADD mm",
        "ADD-S mm",
        "rot deg",
        "trans mm"
    );
    let row = |name: &str, s: &ErrorSummary| {
        crate::outln!(
            "{:>8} {:>6} {:>9.2} {:>10.2} {:>9.2} {:>10.2}",
            name,
            s.count,
            s.add_mm,
            s.adds_mm,
            s.rot_deg,
            s.trans_mm
        )
    };
    for (id, s) in per_object {
        row(&id.to_string(), s);
    }
    row("all", all);
}
