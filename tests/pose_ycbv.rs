//! Real-data tracking on ycbv-mini (skipped with a message when the dataset is absent, failing
//! when `CI=true`).

use hdpf::app::goals::track_clip;
use hdpf::app::track::{run_track, TrackArgs, TrackReport};
use hdpf::domains::pose::bop::{read_results, BopDataset};
use hdpf::domains::pose::scoring::errors;
use hdpf::domains::pose::tracker::TrackerConfig;
use std::path::{Path, PathBuf};

fn dataset() -> Option<PathBuf> {
    hdpf::core::datasets::shared_or_skip("ycbv-mini")
}

/// `hdpf track`'s arguments with its defaults (parsed as the CLI parses them) for one clip;
/// `HDPF_FILTER` picks another filter.
fn args(root: &Path, split: &str, scene: u32) -> TrackArgs {
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        track: TrackArgs,
    }
    let filter = std::env::var("HDPF_FILTER").ok();
    let out = std::env::temp_dir().join(format!("hdpf_track_{split}_{scene}.csv"));
    let mut argv = vec![
        "track".to_string(),
        format!("--dataset={}", root.display()),
        format!("--split={split}"),
        format!("--scene={scene}"),
        format!("--out={}", out.display()),
    ];
    argv.extend(filter.map(|f| format!("--filter={f}")));
    <Cli as clap::Parser>::parse_from(argv).track
}

/// Frame-weighted mean of ADD / ADD-S over both clips.
fn pooled(r: &[TrackReport]) -> (f64, f64) {
    let n: usize = r.iter().map(|x| x.all.count).sum();
    let add = r
        .iter()
        .map(|x| x.all.add_mm * x.all.count as f64)
        .sum::<f64>()
        / n as f64;
    let adds = r
        .iter()
        .map(|x| x.all.adds_mm * x.all.count as f64)
        .sum::<f64>()
        / n as f64;
    (add, adds)
}

#[test]
#[ignore = "goal run: cargo test --release --test pose_ycbv -- --ignored --nocapture"]
fn ycbv_gt_init_goal() {
    let Some(root) = dataset() else { return };
    let reports: Vec<TrackReport> = [("train_real", 2), ("test", 49)]
        .iter()
        .map(|(s, id)| run_track(&args(&root, s, *id)).unwrap())
        .collect();
    let (add, adds) = pooled(&reports);
    // ADD-S on YCB-V's points.xyz (models_points/), as PoseCNN and FoundationPose report it.
    println!("GOAL gt-init: mean ADD {add:.2} mm (≤ 3.0), ADD-S {adds:.2} mm (≤ 1.85)");
    assert!(add <= 3.0 && adds <= 1.85);
}

#[test]
#[ignore = "goal run: cargo test --release --test pose_ycbv -- --ignored --nocapture"]
fn ycbv_noisy_init_goal() {
    let Some(root) = dataset() else { return };
    let ds = BopDataset::open(&root).unwrap();
    let (mut sum, mut n) = (0.0, 0usize);
    for (split, id) in [("train_real", 2), ("test", 49)] {
        let mut a = args(&root, split, id);
        a.init_noise = Some("20mm,10deg".into());
        run_track(&a).unwrap();
        let late: Vec<_> = read_results(&a.out)
            .unwrap()
            .into_iter()
            .filter(|r| r.im_id >= 6)
            .collect();
        let (all, _) = errors(&ds, &ds.scene(split, id).unwrap(), &late).unwrap();
        println!(
            "{split}/{id} frames 6-20: ADD {:.2} mm, ADD-S {:.2} mm",
            all.add_mm, all.adds_mm
        );
        sum += all.adds_mm * all.count as f64;
        n += all.count;
    }
    let adds = sum / n as f64;
    println!("GOAL noisy-init: mean ADD-S frames 6-20 {adds:.2} mm (≤ 3)");
    assert!(adds <= 3.0);
}

/// CI-sized real-data check (runs in `cargo test`): clip test/49 (4 objects), all 20 frames,
/// ground-truth init, the tracker's defaults (rfpf-newton with the mean step, 100 particles,
/// depth + region, the pace). Bounds: ADD-S ≤ 2.5 mm (1.93 on this clip on YCB-V's points.xyz;
/// rfpf 1.82, and 1.84 with depth alone; the
/// depth images agree with the annotated meshes to ~2 mm) and strictly better than holding the
/// first frame's GT still on the same frames.
#[test]
fn ycbv_clip_is_tracked_better_than_never_moving() {
    let Some(root) = dataset() else { return };
    let run = track_clip(&root, "test", 49, None, 0, &TrackerConfig::default()).unwrap();
    println!(
        "{}: {} frames, tracker ADD {:.2} / ADD-S {:.2} mm, never moving ADD {:.2} / ADD-S {:.2} mm, p50 {:.2} ms/object/frame",
        run.clip,
        run.frames,
        run.tracked.add_mm,
        run.tracked.adds_mm,
        run.held.add_mm,
        run.held.adds_mm,
        run.latency_p50 * 1e3
    );
    assert_eq!(run.tracked.count, 80);
    assert!(run.tracked.adds_mm <= 2.5, "{run:?}");
    assert!(run.tracked.adds_mm < run.held.adds_mm, "{run:?}");
    assert!(run.tracked.add_mm < run.held.add_mm, "{run:?}");
}

/// `rfpf-newton` with the other defaults holds the wood block (object 16) of train_real/2 from the
/// GT start: its slow frames run without the spread widening (tracker::pace). With the modalities
/// widened by its cloud's spread (10–14 mm) it drifted to 15 mm / 18° and 13.9 mm mean ADD;
/// without, 2.44 mm. The bound, 4 mm, lies between with room for rounding across CPUs on either
/// side.
#[test]
fn rfpf_newton_holds_the_wood_block_on_slow_frames() {
    let Some(root) = dataset() else { return };
    let mut a = args(&root, "train_real", 2);
    a.filter = "rfpf-newton".into();
    a.objects = Some("16".into());
    a.out = std::env::temp_dir().join("hdpf_track_rfpf_newton_16.csv");
    let r = run_track(&a).unwrap();
    println!(
        "rfpf-newton object 16: ADD {:.2} / ADD-S {:.2} mm",
        r.all.add_mm, r.all.adds_mm
    );
    assert_eq!(r.all.count, 20);
    assert!(r.all.add_mm <= 4.0, "{:?}", r.all);
}

/// A launch file's summary measures ADD where `hdpf eval` does: on the dataset's evaluation points
/// (`models_points/`, YCB-Video's points.xyz) when it ships them. The summary's mean ADD over
/// three frames of test/49 equals `hdpf eval`'s on the CSV the run wrote (to the CSV's
/// rounding, 1e-3 mm); on the mesh vertices it read 1.53 against 1.84 mm ADD-S on this clip.
#[test]
fn a_launch_summary_measures_add_on_the_datasets_evaluation_points() {
    let Some(root) = dataset() else { return };
    let dir = hdpf::core::scratch::ScratchDir::new("launch-eval-points");
    let csv = dir.join("results_{tracker}.csv");
    let text = format!(
        "run = \"track\"\nseed = 0\n[source]\nkind = \"bop\"\ndataset = {:?}\nscenes = [\"test/49\"]\n\
         max_frames = 3\n[pipeline]\npolicy = \"lossless\"\nrate_hz = 0.0\n[[tracker]]\n\
         filter = \"rfpf\"\nparticles = 20\nmodalities = [\"depth\"]\n[sinks]\ncsv = {:?}\n",
        root.display().to_string(),
        csv.display().to_string()
    );
    let l = hdpf::app::launch::load_str(Path::new("eval.toml"), &text, &[]).unwrap();
    let summary = hdpf::app::launch::run_track(&l).unwrap();
    let add = summary.tracker("rfpf").unwrap().add_mm;
    let ds = BopDataset::open(&root).unwrap();
    let rows = read_results(dir.join("results_rfpf.csv")).unwrap();
    let (all, _) = errors(&ds, &ds.scene("test", 49).unwrap(), &rows).unwrap();
    assert_eq!(all.count, 12);
    assert!(
        (add - all.add_mm).abs() < 1e-3,
        "summary {add} vs eval {}",
        all.add_mm
    );
}
