//! Launch files: validation errors point at file, line and key; `--set` overrides; the shipped
//! launch files parse; a launch file runs the real tracker through the pipeline.

#[path = "support/pipeline.rs"]
mod support;

use hdpf::app::launch::{self, RunKind};
use hdpf::domains::recording::ros_msgs::{PoseWithCovarianceStamped, RosMessage};
use hdpf::runtime::pipeline::QueuePolicy;
use std::path::Path;

const GOOD: &str = r#"
run = "track"
seed = 3

[source]
kind = "bop"
dataset = "data/x"
scenes = ["test/1"]

[pipeline]
policy = "latest"
rate_hz = 30.0

[[tracker]]
filter = "rfpf"
particles = 20

[[tracker]]
filter = "sir"
particles = 20
"#;

fn err(text: &str, overrides: &[&str]) -> String {
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    launch::load_str(Path::new("bad.toml"), text, &o)
        .unwrap_err()
        .to_string()
}

#[test]
fn parses_a_good_file() {
    let l = launch::load_str(Path::new("good.toml"), GOOD, &[]).unwrap();
    assert_eq!(l.file.run, RunKind::Track);
    assert_eq!(l.file.pipeline.policy, QueuePolicy::Latest);
    assert_eq!(l.file.tracker.len(), 2);
}

#[test]
fn unknown_key_is_rejected_with_line_and_key() {
    let text = GOOD.replace("rate_hz = 30.0", "rate_hz = 30.0\nfps = 30");
    let e = err(&text, &[]);
    assert!(
        e.contains("bad.toml") && e.contains("line 13") && e.contains("pipeline.fps"),
        "{e}"
    );
    assert!(e.contains("unknown field"), "{e}");
}

#[test]
fn bad_value_is_rejected_with_line_and_key() {
    let e = err(
        &GOOD.replace("particles = 20\n\n", "particles = \"many\"\n\n"),
        &[],
    );
    assert!(
        e.contains("line 16") && e.contains("tracker[0].particles"),
        "{e}"
    );
    let e = err(&GOOD.replace("filter = \"sir\"", "filter = \"ukf\""), &[]);
    assert!(
        e.contains("line 19") && e.contains("tracker[1].filter"),
        "{e}"
    );
    let e = err(&GOOD.replace("\"test/1\"", "\"test\""), &[]);
    assert!(e.contains("line 8") && e.contains("source.scenes"), "{e}");
    // A particle count whose buffers cannot be allocated is refused, naming the memory it needs.
    let e = err(
        &GOOD.replace("particles = 20\n\n", "particles = 100000000000\n\n"),
        &[],
    );
    assert!(
        e.contains("line 16") && e.contains("tracker[0].particles") && e.contains("TiB"),
        "{e}"
    );
    // Values serde accepts but a filter cannot use are refused when the file is read.
    for eta in ["nan", "inf", "-0.1", "0.0"] {
        let bad = GOOD.replace(
            "particles = 20\n\n",
            &format!("particles = 20\neta = {eta}\n\n"),
        );
        let e = err(&bad, &[]);
        assert!(e.contains("line 17") && e.contains("tracker[0].eta"), "{e}");
    }
    let e = err(
        &GOOD.replace(
            "particles = 20\n\n",
            "particles = 20\ninit_noise = \"20mm\"\n\n",
        ),
        &[],
    );
    assert!(
        e.contains("line 17") && e.contains("tracker[0].init_noise"),
        "{e}"
    );
}

#[test]
fn set_overrides_keys_and_is_named_in_errors() {
    let o = [
        "pipeline.policy=lossless".to_string(),
        "tracker.1.particles=7".into(),
        "seed=9".into(),
    ];
    let l = launch::load_str(Path::new("good.toml"), GOOD, &o).unwrap();
    assert_eq!(l.file.pipeline.policy, QueuePolicy::Lossless);
    assert_eq!(*l.file.tracker[1].particles.get_ref(), 7);
    assert_eq!(l.file.seed, 9);
    let e = err(GOOD, &["pipeline.rate_hz=fast"]);
    assert!(
        e.contains("pipeline.rate_hz") && e.contains("--set pipeline.rate_hz=fast"),
        "{e}"
    );
    let e = err(GOOD, &["tracker.5.particles=1"]);
    assert!(e.contains("no index 5"), "{e}");
}

#[test]
fn shipped_launch_files_parse() {
    for f in ["demo", "ycbv_mini", "localization", "control_loop"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("launch")
            .join(format!("{f}.toml"));
        launch::load(&path, &[]).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
}

#[test]
fn launch_runs_the_real_tracker_through_the_pipeline() {
    let root = support::temp_dir("launch");
    support::write_dataset(&root, 5);
    let out = root.join("out");
    let text = format!(
        r#"
[source]
kind = "bop"
dataset = "{}"
scenes = ["test/1"]
[pipeline]
rate_hz = 0.0
progress = false
[[tracker]]
filter = "rfpf"
particles = 10
[sinks]
csv = "{}/r_{{tracker}}.csv"
jsonl = "{}/e.jsonl"
"#,
        root.display(),
        out.display(),
        out.display()
    );
    let l = launch::load_str(Path::new("t.toml"), &text, &[]).unwrap();
    let s = launch::run_track(&l).unwrap();
    assert_eq!(s.tracker("rfpf").unwrap().frames, 5, "{s}");
    assert_eq!(
        std::fs::read_to_string(out.join("e.jsonl"))
            .unwrap()
            .lines()
            .count(),
        5
    );
    assert_eq!(
        hdpf::domains::pose::bop::read_results(out.join("r_rfpf.csv"))
            .unwrap()
            .len(),
        5
    );
}

#[test]
fn source_and_sink_kinds_are_plug_ins_with_located_errors() {
    let e = err(&GOOD.replace("kind = \"bop\"", "kind = \"rosbag\""), &[]);
    assert!(
        e.contains("line 6") && e.contains("unknown source kind `rosbag`") && e.contains("mcap"),
        "{e}"
    );
    // A key of another kind's table is unknown to this kind (it was silently ignored before).
    let e = err(
        &GOOD.replace("scenes = [", "idle_timeout_s = 3\nscenes = ["),
        &[],
    );
    assert!(
        e.contains("line 8") && e.contains("source.idle_timeout_s") && e.contains("unknown field"),
        "{e}"
    );
    let dir = GOOD.replace("kind = \"bop\"", "kind = \"dir\"");
    let e = err(&dir.replace("scenes = [\"test/1\"]\n", ""), &[]);
    assert!(e.contains("kind = \"dir\" needs `path`"), "{e}");
    let e = err(&format!("{GOOD}\n[sinks]\nparquet = \"x\"\n"), &[]);
    assert!(
        e.contains("line 23") && e.contains("unknown sink `parquet`") && e.contains("jsonl"),
        "{e}"
    );
    let e = err(&format!("{GOOD}\n[sinks]\njsonl = \"\"\n"), &[]);
    assert!(e.contains("line 23") && e.contains("sinks.jsonl"), "{e}");
    let e = err(
        &format!("{GOOD}\n[sinks.rerun]\nsave = \"a.rrd\"\nspawn = true\n"),
        &[],
    );
    assert!(
        e.contains("[sinks.rerun]") && e.contains("exactly one"),
        "{e}"
    );
    let e = err(&format!("{GOOD}\n[sinks.rerun]\nsave = 3\n"), &[]);
    assert!(
        e.contains("line 23") && e.contains("sinks.rerun.save"),
        "{e}"
    );
    let e = err(GOOD, &["source.tolerance_ms=5"]);
    assert!(
        e.contains("source.tolerance_ms") && e.contains("--set"),
        "{e}"
    );
    let mcap = GOOD.replace("kind = \"bop\"", "kind = \"mcap\"");
    let e = err(
        &mcap.replace("scenes = [\"test/1\"]\n", "path = \"a.mcap\"\n"),
        &["source.tolerance_ms=-1"],
    );
    assert!(e.contains("tolerance_ms must be"), "{e}");
}

/// The same scene tracked from its BOP folder and from its MCAP conversion gives the same poses.
#[test]
fn an_mcap_recording_tracks_as_its_bop_scene() {
    let root = support::temp_dir("launch-mcap");
    let scene = support::write_dataset(&root, 4);
    let mcap = root.join("scene.mcap");
    let args = hdpf::domains::recording::mcap_bop::ConvertArgs::new(&scene, &mcap);
    hdpf::domains::recording::mcap_bop::bop_to_mcap(&args).unwrap();
    let run = |source: String, name: &str| {
        let out = root.join(format!("{name}.csv"));
        let text = format!(
            "seed = 5\n{source}\n[pipeline]\nrate_hz = 0.0\nprogress = false\n\
             [[tracker]]\nfilter = \"rfpf\"\nparticles = 10\n[sinks]\ncsv = \"{}\"\n\
             [sinks.mcap]\npath = \"{}\"\ninputs = {}\n",
            out.display(),
            out.with_extension("mcap").display(),
            name == "bop"
        );
        let l = launch::load_str(Path::new("t.toml"), &text, &[]).unwrap();
        let s = launch::run_track(&l).unwrap();
        assert_eq!(s.tracker("rfpf").unwrap().frames, 4, "{s}");
        hdpf::domains::pose::bop::read_results(out.with_file_name(format!("{name}_rfpf.csv")))
            .unwrap()
    };
    let bop = format!(
        "[source]\nkind = \"bop\"\ndataset = \"{}\"\nscenes = [\"test/1\"]",
        root.display()
    );
    let rec = format!(
        "[source]\nkind = \"mcap\"\npath = \"{}\"\ndataset = \"{}\"",
        mcap.display(),
        root.display()
    );
    let a = run(bop, "bop");
    let b = run(rec, "mcap");
    assert_eq!(a.len(), 4);
    assert_eq!(a.len(), b.len());
    let (dt, dr) = hdpf::domains::pose::bop::pose_difference(&a, &b).unwrap();
    assert!(dt < 1e-9 && dr < 1e-9, "{dt} m, {dr} rad");
    // The BOP run recorded its inputs too (`inputs = true`): tracking that recording replays it.
    let recorded = format!(
        "[source]\nkind = \"mcap\"\npath = \"{}\"\ndataset = \"{}\"",
        root.join("bop.mcap").display(),
        root.display()
    );
    let c = run(recorded, "replayed");
    let (dt, dr) = hdpf::domains::pose::bop::pose_difference(&a, &c).unwrap();
    assert!(dt < 1e-9 && dr < 1e-9, "replayed: {dt} m, {dr} rad");
    // Each pose is stamped as its input frame is (a ROS consumer pairs them by stamp).
    let bytes = std::fs::read(root.join("bop.mcap")).unwrap();
    let stamps = |topic: &str| -> Vec<u64> {
        let messages = mcap::MessageStream::new(&bytes)
            .unwrap()
            .map(|m| m.unwrap());
        (messages.filter(|m| m.channel.topic == topic))
            .map(|m| m.log_time)
            .collect()
    };
    let inputs = stamps("/hdpf/bop_frame");
    assert_eq!(inputs.len(), 4);
    assert_eq!(stamps("/hdpf/rfpf/obj_000001/pose"), inputs);
    // The estimates sink wrote one PoseWithCovarianceStamped per frame: the CSV's poses.
    let bytes = std::fs::read(root.join("mcap.mcap")).unwrap();
    let mut poses = Vec::new();
    for m in mcap::MessageStream::new(&bytes).unwrap() {
        let m = m.unwrap();
        assert_eq!(m.channel.topic, "/hdpf/rfpf/obj_000001/pose");
        assert_eq!(m.channel.message_encoding, "cdr");
        poses.push(PoseWithCovarianceStamped::from_cdr(&m.data).unwrap());
    }
    assert_eq!(poses.len(), 4);
    for (p, row) in poses.iter().zip(&b) {
        assert_eq!(p.header.frame_id, "camera_color_optical_frame");
        let dt = (p.pose.translation.vector - row.pose.translation.vector).norm();
        assert!(dt < 1e-9 && p.pose.rotation.angle_to(&row.pose.rotation) < 1e-9);
        let diag: Vec<f64> = (0..6).map(|k| p.covariance[7 * k]).collect();
        assert!(diag.iter().all(|&v| v > 0.0 && v.is_finite()), "{diag:?}");
    }
}

#[test]
fn localization_table_becomes_the_command_flags() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("launch/localization.toml");
    let l = launch::load(&path, &["localization.trials=2".into()]).unwrap();
    let flags = launch::table_to_flags(l.file.localization.as_ref().unwrap());
    let args = hdpf::app::bench::bridge::localization_args(&flags).unwrap();
    assert_eq!(args.dims, (3..=10).collect::<Vec<_>>());
    assert_eq!(args.particles, vec![20, 50, 100]);
    assert_eq!(args.trials, 2);
    let bad = hdpf::app::bench::bridge::localization_args(&["--dimz".into(), "3".into()]);
    assert!(bad.unwrap_err().to_string().contains("--dimz"));
}

#[test]
fn live_synthetic_source_streams_through_the_tracker() {
    let text = r#"
[source]
kind = "synth"
[source.synth]
objects = ["box"]
frames = 4
motion = "slow"
resolution = [80, 60]
[pipeline]
rate_hz = 0.0
progress = false
[[tracker]]
filter = "sir"
particles = 10
"#;
    let l = launch::load_str(Path::new("s.toml"), text, &[]).unwrap();
    let s = launch::run_track(&l).unwrap();
    assert_eq!(s.source_frames, 4);
    assert_eq!(s.tracker("sir").unwrap().frames, 4, "{s}");
}

#[test]
fn tracker_tables_take_rounds_redetect_and_the_newton_filters() {
    let text = GOOD.replace(
        "filter = \"sir\"\nparticles = 20",
        "filter = \"gn\"\nparticles = 20\nrounds = 4\nredetect = false\nmotion = \"best_of\"",
    );
    let l = launch::load_str(Path::new("good.toml"), &text, &[]).unwrap();
    let plain = l.tracker_config(&l.file.tracker[0]).unwrap();
    let default_rounds = hdpf::domains::pose::tracker::DEFAULT_ROUNDS;
    assert_eq!(
        (plain.rounds, plain.redetect.is_some()),
        (default_rounds, true)
    );
    let gn = l.tracker_config(&l.file.tracker[1]).unwrap();
    assert_eq!((gn.rounds, gn.redetect.is_some()), (4, false));
    assert_eq!(gn.particles_per_filter(), 1);
    assert_eq!(gn.motion, hdpf::domains::pose::tracker::MotionModel::BestOf);
    let e = err(&text.replace("best_of", "best"), &[]);
    assert!(e.contains("motion") && e.contains("best_of"), "{e}");
    let e = err(&text.replace("rounds = 4", "rounds = 0"), &[]);
    assert!(
        e.contains("tracker[1].rounds") && e.contains("1..=20"),
        "{e}"
    );
    // The modalities default to hdpf track's (depth + region).
    let names = |c: &hdpf::domains::pose::tracker::TrackerConfig| -> Vec<String> {
        (c.modalities.iter())
            .map(|m| m.spec().name().to_string())
            .collect()
    };
    assert_eq!(names(&plain), ["depth", "region"]);
    // The pace: defaults, both keys, and bad values named with their key.
    assert_eq!(
        (plain.slow_rounds, plain.fast_motion, plain.motion),
        (2, 0.006, hdpf::domains::pose::tracker::MotionModel::Auto)
    );
    let paced = text.replace(
        "rounds = 4",
        "rounds = 4\nslow_rounds = 3\nfast_motion_mm = 10.0\nparticle_rounds = 2\nparticle_stride = 3\nviews = true\nvelocity_damping = 0.5\nownership = false",
    );
    let l = launch::load_str(Path::new("good.toml"), &paced, &[]).unwrap();
    let gn = l.tracker_config(&l.file.tracker[1]).unwrap();
    assert_eq!((gn.rounds, gn.slow_rounds, gn.fast_motion), (4, 3, 0.01));
    assert_eq!((plain.particle_rounds, gn.particle_rounds), (5, 2));
    use hdpf::domains::pose::tracker::{Views, VIEWS};
    assert_eq!(
        (plain.particle_stride(), gn.particle_stride()),
        (1, 3),
        "rfpf reads every correspondence unless told"
    );
    assert_eq!((plain.views, gn.views), (VIEWS, Views::On));
    // Depth ownership between objects: on unless the key turns it off.
    assert_eq!((plain.ownership, gn.ownership), (true, false));
    // The constant velocity's damping: the filter's own (1 for rfpf), or the key's.
    assert_eq!(
        (plain.velocity_damping(), gn.velocity_damping()),
        (1.0, 0.5)
    );
    let e = err(
        &paced.replace("velocity_damping = 0.5", "velocity_damping = -1.0"),
        &[],
    );
    assert!(
        e.contains("tracker[1].velocity_damping") && e.contains("-1"),
        "{e}"
    );
    let keys = [
        ("\"contour\"", Views::Contour),
        ("\"off\"", Views::Off),
        ("false", Views::Off),
    ];
    for (key, views) in keys {
        let text = paced.replace("views = true", &format!("views = {key}"));
        let l = launch::load_str(Path::new("good.toml"), &text, &[]).unwrap();
        assert_eq!(l.tracker_config(&l.file.tracker[1]).unwrap().views, views);
    }
    for (bad, named) in [("2", "integer"), ("\"all\"", "all")] {
        let e = err(
            &paced.replace("views = true", &format!("views = {bad}")),
            &[],
        );
        assert!(e.contains("tracker[1].views") && e.contains(named), "{e}");
        assert!(e.contains("contour"), "the error lists the names: {e}");
    }
    let e = err(
        &paced.replace("particle_stride = 3", "particle_stride = 0"),
        &[],
    );
    assert!(e.contains("tracker[1].particle_stride"), "{e}");
    let e = err(
        &paced.replace("particle_rounds = 2", "particle_rounds = 21"),
        &[],
    );
    assert!(e.contains("tracker[1].particle_rounds"), "{e}");
    let e = err(&paced.replace("slow_rounds = 3", "slow_rounds = 0"), &[]);
    assert!(e.contains("tracker[1].slow_rounds"), "{e}");
    let e = err(&paced.replace("= 10.0", "= -1.0"), &[]);
    assert!(e.contains("tracker[1].fast_motion_mm"), "{e}");
}

/// `params` in a `[[tracker]]` table sets the filter preset's parameters, as `hdpf track
/// --param`; a key the preset lacks is refused with the file, the line and the key.
#[test]
fn tracker_params_set_the_filter_preset() {
    let text = GOOD.replace(
        "filter = \"sir\"\nparticles = 20",
        "filter = \"rfpf-newton\"\nparticles = 20\nparams = { inflation = 1.0 }",
    );
    let l = launch::load_str(Path::new("good.toml"), &text, &[]).unwrap();
    let c = l.tracker_config(&l.file.tracker[1]).unwrap();
    assert_eq!(
        c.filter_params.get("inflation"),
        Some(&toml::Value::Float(1.0))
    );
    let both = text.replace(
        "particles = 20\nparams",
        "particles = 20\neta = 0.1\nparams",
    );
    let e = err(&both.replace("inflation = 1.0", "eta = 0.5"), &[]);
    assert!(
        e.contains("tracker[1].eta") && e.contains("params.eta"),
        "{e}"
    );
    let e = err(&text.replace("inflation = 1.0", "roughening = 1"), &[]);
    assert!(
        e.contains("bad.toml") && e.contains("tracker[1].params") && e.contains("roughening"),
        "{e}"
    );
    let e = err(&text.replace("inflation = 1.0", "inflation = -2.0"), &[]);
    assert!(
        e.contains("tracker[1].params") && e.contains("inflation"),
        "{e}"
    );
}

/// One corrupt image in a recording costs that frame, skipped and reported (README, "Faults"),
/// not the run: the `mcap` source used to end the pipeline at it.
#[test]
fn a_corrupt_frame_in_a_recording_is_skipped_and_the_run_goes_on() {
    use hdpf::domains::recording::mcap_bop::{bop_to_mcap, ChunkCompression, ConvertArgs};
    let root = support::temp_dir("launch-mcap-corrupt");
    let scene = support::write_dataset(&root, 4);
    let mcap = root.join("scene.mcap");
    let mut args = ConvertArgs::new(&scene, &mcap);
    args.compression = ChunkCompression::None;
    bop_to_mcap(&args).unwrap();
    // Uncompressed chunks hold the PNGs as they are: flip a byte inside frame 2's colour image
    // (the second PNG: the default conversion keeps depth raw), which breaks its CRC.
    let mut bytes = std::fs::read(&mcap).unwrap();
    let magic = b"\x89PNG\r\n\x1a\n";
    let starts: Vec<usize> = (0..bytes.len() - 8)
        .filter(|&i| &bytes[i..i + 8] == magic)
        .collect();
    assert_eq!(starts.len(), 4, "one colour PNG a frame");
    bytes[starts[1] + 40] ^= 0xff;
    std::fs::write(&mcap, bytes).unwrap();
    let text = format!(
        "[source]\nkind = \"mcap\"\npath = \"{}\"\ndataset = \"{}\"\n[pipeline]\nrate_hz = 0.0\n\
         progress = false\n[[tracker]]\nfilter = \"rfpf\"\nparticles = 10\n",
        mcap.display(),
        root.display()
    );
    let l = launch::load_str(Path::new("t.toml"), &text, &[]).unwrap();
    let s = launch::run_track(&l).unwrap();
    assert_eq!(s.tracker("rfpf").unwrap().frames, 3, "{s}");
    let skipped = &s.skipped;
    assert_eq!(skipped.len(), 1, "{s}");
    assert_eq!(skipped[0].im_id, 2, "{s}");
}
