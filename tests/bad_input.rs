//! The bad-input battery (issue 14), run through the `hdpf` binary as a user meets it: every case
//! ends with an error that names the culprit (file, field, flag or value), and none ends in a
//! panic (exit code 101), an abort or a signal.

#[path = "support/pipeline.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;

/// Runs `hdpf ARGS` and returns its exit code and output (stderr, then stdout), asserting it ended
/// by itself without a panic.
fn hdpf(args: &[&str]) -> (Option<i32>, String) {
    hdpf_with_budget(args, "8G")
}

/// [`hdpf`] with `HDPF_MAX_MEMORY` set to `budget`.
fn hdpf_with_budget(args: &[&str], budget: &str) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hdpf"))
        .args(args)
        .env("HDPF_MAX_MEMORY", budget)
        .output()
        .unwrap();
    let code = out.status.code();
    let err =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        code.is_some(),
        "{args:?} ended by a signal: {}\n{err}",
        out.status
    );
    assert_ne!(code, Some(101), "{args:?} panicked:\n{err}");
    (code, err)
}

/// The arguments as owned strings.
fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// `hdpf ARGS` fails (exit 1 or 2) and its message contains every needle.
fn refused(args: &[&str], needles: &[&str]) {
    let (code, err) = hdpf(args);
    assert!(
        matches!(code, Some(1 | 2)),
        "{args:?} did not fail ({code:?}):\n{err}"
    );
    for n in needles {
        assert!(err.contains(n), "{args:?}: message lacks {n:?}:\n{err}");
    }
}

/// A scene `test/1` of 3 frames under `root`, with `edit` applied to its folder.
fn scene(root: &Path, edit: impl FnOnce(&Path)) -> String {
    let dir = write_dataset(root, 3);
    edit(&dir);
    root.to_string_lossy().into_owned()
}

fn track(root: &str, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = owned(&[
        "track",
        "--dataset",
        root,
        "--split",
        "test",
        "--scene",
        "1",
        "--out",
    ]);
    v.push(out.to_string_lossy().into_owned());
    if !extra.contains(&"--particles") {
        v.extend(["--particles".to_string(), "10".to_string()]);
    }
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn refused_track(name: &str, edit: impl FnOnce(&Path), extra: &[&str], needles: &[&str]) {
    let root = temp_dir(&format!("bad-{name}"));
    let data = scene(&root, edit);
    let args = track(&data, &root.join("r.csv"), extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    refused(&args, needles);
}

/// A frame whose image cannot be read is skipped and reported by file (README, "Faults"); the
/// other frames are tracked and the run succeeds.
fn skipped_frame(name: &str, edit: impl FnOnce(&Path), file: &str) {
    let root = temp_dir(&format!("bad-{name}"));
    let data = scene(&root, edit);
    let args = track(&data, &root.join("r.csv"), &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, err) = hdpf(&args);
    assert_eq!(code, Some(0), "{name}: {err}");
    assert!(
        err.contains("skipped frames: 1") && err.contains(file),
        "{name}: {err}"
    );
    let rows = hdpf::domains::pose::bop::read_results(root.join("r.csv")).unwrap();
    assert_eq!(rows.len(), 2, "{name}: the two good frames are tracked");
}

fn write(path: PathBuf, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn broken_scene_files_are_refused_naming_file_and_field() {
    refused_track(
        "gt-json",
        |d| write(d.join("scene_gt.json"), "{\"1\": [{\"obj_id\": 1,"),
        &[],
        &["scene_gt.json", "invalid JSON"],
    );
    refused_track(
        "gt-rotation",
        |d| {
            let t = r#"{"1": [{"obj_id": 1, "cam_R_m2c": [2,0,0,0,1,0,0,0,1], "cam_t_m2c": [0,0,500]}]}"#;
            write(d.join("scene_gt.json"), t)
        },
        &[],
        &["scene_gt.json", "cam_R_m2c"],
    );
    refused_track(
        "camera-nan",
        |d| {
            let t = r#"{"1": {"cam_K": [30, 0, NaN, 0, 30, 12, 0, 0, 1], "depth_scale": 1}}"#;
            write(d.join("scene_camera.json"), t)
        },
        &[],
        &["scene_camera.json", "NaN"],
    );
    refused_track(
        "unknown-object",
        |d| {
            let t = r#"{"1": [{"obj_id": 77, "cam_R_m2c": [1,0,0,0,1,0,0,0,1], "cam_t_m2c": [0,0,500]}]}"#;
            write(d.join("scene_gt.json"), t)
        },
        &[],
        &["77"],
    );
    refused_track(
        "no-camera",
        |d| std::fs::remove_file(d.join("scene_camera.json")).unwrap(),
        &[],
        &["scene_camera.json"],
    );
}

#[test]
fn broken_images_and_meshes_are_refused_naming_the_file() {
    skipped_frame(
        "truncated-png",
        |d| {
            let p = d.join("rgb").join("000001.png");
            let bytes = std::fs::read(&p).unwrap();
            std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        },
        "rgb/000001.png",
    );
    skipped_frame(
        "garbage-depth",
        |d| write(d.join("depth").join("000002.png"), "not a png"),
        "depth/000002.png",
    );
    skipped_frame(
        "missing-depth",
        |d| std::fs::remove_file(d.join("depth").join("000001.png")).unwrap(),
        "depth/000001.png",
    );
    refused_track(
        "truncated-ply",
        |d| {
            let p = d.join("../../models/obj_000001.ply");
            let bytes = std::fs::read(&p).unwrap();
            std::fs::write(&p, &bytes[..bytes.len() - 20]).unwrap();
        },
        &[],
        &["obj_000001.ply"],
    );
    refused_track(
        "huge-ply-header",
        |d| {
            let ply = "ply\nformat binary_little_endian 1.0\nelement vertex 4000000000\n\
                       property float x\nproperty float y\nproperty float z\nend_header\n";
            write(d.join("../../models/obj_000001.ply"), ply)
        },
        &[],
        &["obj_000001.ply"],
    );
}

#[test]
fn bad_flags_and_sizes_are_refused_naming_the_value() {
    let root = temp_dir("bad-flags");
    let data = scene(&root, |_| {});
    let out = root.join("r.csv");
    let with = |extra: &[&str]| track(&data, &out, extra);
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (with(&["--filter", "kalman"]), vec!["kalman"]),
        (with(&["--modalities", "sonar"]), vec!["sonar"]),
        (with(&["--init-noise", "20mm,nandeg"]), vec!["nandeg"]),
        (with(&["--rounds", "0"]), vec!["rounds"]),
        (with(&["--slow-rounds", "0"]), vec!["slow_rounds"]),
        (with(&["--particle-rounds", "0"]), vec!["particle_rounds"]),
        (with(&["--particle-stride", "21"]), vec!["particle_stride"]),
        (
            with(&["--fast-motion-mm", "nan"]),
            vec!["fast_motion_mm", "NaN"],
        ),
        (
            with(&["--fast-motion-mm=-5"]),
            vec!["fast_motion_mm", "-5", "millimetres"],
        ),
        (
            with(&["--motion", "sometimes"]),
            vec!["motion", "sometimes"],
        ),
        (
            with(&["--velocity-damping=-1"]),
            vec!["velocity_damping", "-1"],
        ),
        (
            with(&["--velocity-damping", "nan"]),
            vec!["velocity_damping", "NaN"],
        ),
        (
            with(&["--particles", "100000000000"]),
            vec!["particles", "100000000000", "memory"],
        ),
        (
            [
                vec!["--max-memory".to_string(), "1K".to_string()],
                with(&[]),
            ]
            .concat(),
            vec!["particles", "--max-memory"],
        ),
        (
            [
                vec!["--max-memory".to_string(), "lots".to_string()],
                with(&[]),
            ]
            .concat(),
            vec!["--max-memory", "lots"],
        ),
        (
            owned(&[
                "dataset",
                "synth",
                "--out",
                &root.join("s").to_string_lossy(),
                "--width",
                "200000",
                "--height",
                "200000",
            ]),
            vec!["resolution", "200000x200000"],
        ),
        (
            owned(&["bench", "tracking", "--dims", "1000000", "--trials", "2"]),
            vec!["dims", "1000000", "memory"],
        ),
    ];
    // Sizes and strengths of the other studies: refused before anything is allocated or trained
    // (they aborted in the allocator, or failed mid-training blaming the learning rate).
    let learn_out = root.join("learn").to_string_lossy().into_owned();
    let learn = |extra: &[&str]| -> Vec<String> {
        let head = ["learn", "--generated", "--orders", "1", "--out", &learn_out];
        head.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let models_dir = root.join("only-one-model");
    std::fs::create_dir_all(&models_dir).unwrap();
    write(models_dir.join("obj_000001.ply"), "");
    let models = models_dir.to_string_lossy().into_owned();
    let synth_out = root.join("s4").to_string_lossy().into_owned();
    let more: Vec<(Vec<String>, Vec<&str>)> = vec![
        (
            learn(&["--particles", "100000000", "--hidden", "8"]),
            vec!["particles", "100000000", "memory"],
        ),
        (learn(&["--lwf-temp", "0"]), vec!["lwf-temp", "0"]),
        (learn(&["--ewc-lambda", "nan"]), vec!["ewc-lambda", "NaN"]),
        (learn(&["--speed", "0"]), vec!["speed", "0"]),
        (
            learn(&["--methods", "sgd,sgd"]),
            vec!["methods", "sgd", "twice"],
        ),
        (
            ["bench", "localization", "--dims", "3", "--methods", "rfpf"]
                .iter()
                .chain(&[
                    "--param",
                    "rfpf.eta=-1",
                    "--particles",
                    "10",
                    "--iters",
                    "2",
                ])
                .map(|s| s.to_string())
                .collect(),
            vec!["eta", "-1"],
        ),
        (
            ["dataset", "synth", "--frames", "2", "--split", "/abs"]
                .iter()
                .chain(&["--out", &root.join("s2").to_string_lossy()])
                .map(|s| s.to_string())
                .collect(),
            vec!["split", "/abs", "folder name"],
        ),
        (
            ["dataset", "synth", "--frames", "2", "--hide", "3,0.5,1-2"]
                .iter()
                .chain(&["--out", &root.join("s3").to_string_lossy()])
                .map(|s| s.to_string())
                .collect(),
            vec!["hide = 3,0.5,1-2"],
        ),
        (
            owned(&[
                "bench",
                "localization",
                "--dims",
                "100000",
                "--particles",
                "100000",
            ]),
            vec!["particles", "100000", "memory"],
        ),
        (
            owned(&["bench", "localization", "--iters", "1", "--dims", "3"]),
            vec!["iters", "1", "≥ 2"],
        ),
        // A models folder found nowhere, and an object it has no mesh for (the messages named
        // only the unresolved file).
        (
            owned(&[
                "dataset",
                "synth",
                "--models",
                "no-such-models",
                "--objects",
                "1",
                "--out",
                &synth_out,
            ]),
            vec![
                "no-such-models",
                "models folder not found",
                "datasets folder",
            ],
        ),
        (
            owned(&[
                "dataset",
                "synth",
                "--models",
                &models,
                "--objects",
                "2",
                "--out",
                &synth_out,
            ]),
            vec!["obj_000002.ply", "no mesh for object 2", "[1]"],
        ),
        // A parameter for a filter the study does not run was silently unused.
        (
            owned(&[
                "bench",
                "tracking",
                "--methods",
                "rfpf",
                "--param",
                "rfpf-newton.eta=0.5",
            ]),
            vec!["rfpf-newton.eta", "not among the filters run (rfpf)"],
        ),
        // A soak whose intervals hold no RSS sample (it wrote NaN and no plot), and a soak of a
        // file that is not a tracking run (it soaked a control loop's pipeline without its loop).
        (
            owned(&[
                "bench",
                "soak",
                "--interval-s",
                "0.001",
                "--minutes",
                "0.01",
            ]),
            vec!["interval-s", "0.001", "at least 1 s"],
        ),
        (
            owned(&["bench", "soak", "--launch", "launch/control_loop.toml"]),
            vec!["control_loop.toml", "run = \"control_loop\""],
        ),
    ];
    for (args, needles) in cases.into_iter().chain(more) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&args, &needles);
    }
    // A mistyped budget in the environment is refused, not read as no budget at all.
    let args = with(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, err) = hdpf_with_budget(&args, "4GB");
    assert!(matches!(code, Some(1 | 2)), "{err}");
    assert!(
        err.contains("HDPF_MAX_MEMORY") && err.contains("4GB"),
        "{err}"
    );
}

#[test]
fn bad_results_files_are_refused_naming_line_field_and_value() {
    let root = temp_dir("bad-results");
    let data = scene(&root, |_| {});
    let rows = [
        ("1,1,1,1.0,1 0 NaN 0 1 0 0 0 1,0 0 500,0.01", "NaN"),
        ("1,1,1,1.0,1 0 0 0 1 0 0 0 1,0 0,0.01", "field t"),
        ("1,x,1,1.0,1 0 0 0 1 0 0 0 1,0 0 500,0.01", "im_id"),
    ];
    for (row, needle) in rows {
        let csv = root.join("bad.csv");
        write(
            csv.clone(),
            &format!("scene_id,im_id,obj_id,score,R,t,time\n{row}\n"),
        );
        let csv = csv.to_string_lossy().into_owned();
        refused(
            &["eval", "--dataset", &data, "--results", &csv],
            &["bad.csv", "line 2", needle],
        );
    }
}

#[test]
fn bad_launch_files_are_refused_naming_line_and_key() {
    let root = temp_dir("bad-launch");
    // Lines 1–9; a case's first line is line 10.
    let base = "[source]\nkind = \"synth\"\n[source.synth]\nobjects = [\"box\"]\nframes = 2\n\
                resolution = [32, 24]\n[pipeline]\nrate_hz = 0.0\nprogress = false\n";
    let cases = [
        (
            "[[tracker]]\nfilter = \"sir\"\nparticles = 100000000000\n",
            vec!["particles", "memory"],
        ),
        (
            "[[tracker]]\nfilter = \"rfpf\"\neta = nan\n",
            vec!["line 12", "eta"],
        ),
        (
            "[[tracker]]\nfilter = \"sir\"\nparticlez = 3\n",
            vec!["particlez"],
        ),
        (
            "[[tracker]]\nfilter = \"sir\"\n[sinks]\nkafka = \"x\"\n",
            vec!["kafka"],
        ),
        (
            "[[tracker]]\nfilter = \"sir\"\n[control_loop]\nhz = 0.0\n",
            vec!["[control_loop] hz", "0"],
        ),
    ];
    for (i, (tail, needles)) in cases.iter().enumerate() {
        let file = root.join(format!("bad{i}.toml"));
        write(file.clone(), &format!("{base}{tail}"));
        let f = file.to_string_lossy().into_owned();
        let mut n = needles.clone();
        n.push(&f);
        refused(&["launch", &f], &n);
    }
    let none = root.join("none.toml");
    let text = "[source]\nkind = \"mcap\"\npath = \"a.mcap\"\nmax_frames = 0\n[[tracker]]\nfilter = \"sir\"\n";
    write(none.clone(), text);
    refused(&["launch", &none.to_string_lossy()], &["max_frames = 0"]);
    let capacity = root.join("cap.toml");
    let text = format!("{base}capacity = 100000000000000\n[[tracker]]\nfilter = \"sir\"\n");
    write(capacity.clone(), &text);
    refused(
        &["launch", &capacity.to_string_lossy()],
        &["capacity", "memory"],
    );
    let stall = root.join("stall.toml");
    let text = format!("{base}stall_timeout_s = -1.0\n[[tracker]]\nfilter = \"sir\"\n");
    write(stall.clone(), &text);
    refused(
        &["launch", &stall.to_string_lossy()],
        &["stall_timeout_s", "line 10"],
    );
}

#[test]
fn broken_recordings_are_refused_naming_the_file() {
    let root = temp_dir("bad-mcap");
    let garbage = root.join("garbage.mcap");
    write(garbage.clone(), "this is not an MCAP file at all");
    let g = garbage.to_string_lossy().into_owned();
    refused(&["dataset", "info", &g], &["garbage.mcap", "MCAP"]);
    let models = root.join("models");
    std::fs::create_dir_all(&models).unwrap();
    let m = models.to_string_lossy().into_owned();
    let out = root.join("r.csv").to_string_lossy().into_owned();
    refused(
        &["track", "--dataset", &g, "--models", &m, "--out", &out],
        &["garbage.mcap"],
    );
    refused(
        &[
            "dataset",
            "info",
            &root.join("absent.mcap").to_string_lossy(),
        ],
        &["absent.mcap"],
    );
    // A conversion that fails half-way leaves an earlier recording as it was, and no short one.
    let data = root.join("data");
    let dir = write_dataset(&data, 3);
    std::fs::remove_file(dir.join("depth/000002.png")).unwrap();
    let keep = root.join("keep.mcap");
    write(keep.clone(), "an earlier recording");
    let (from, to) = (dir.to_string_lossy(), keep.to_string_lossy());
    refused(
        &["dataset", "convert", "--from", &from, "--to", &to],
        &["000002.png"],
    );
    assert_eq!(
        std::fs::read_to_string(&keep).unwrap(),
        "an earlier recording"
    );
    assert!(!root.join("keep.mcap.partial").exists());
    // Stamps that would overflow 64-bit nanoseconds are refused, not written as u64::MAX.
    let whole = write_dataset(&root.join("whole"), 2)
        .to_string_lossy()
        .into_owned();
    let to = root.join("slow.mcap").to_string_lossy().into_owned();
    let args = [
        "dataset", "convert", "--from", &whole, "--to", &to, "--fps", "1e-12",
    ];
    refused(&args, &["--fps", "overflow"]);
}

/// `hdpf track … | head`: a reader that closes standard output early costs the printed summary,
/// not the run. It used to panic in `println!` ("failed printing to stdout", exit 101).
#[test]
fn a_closed_standard_output_stops_nothing() {
    let root = temp_dir("bad-closed-stdout");
    let data = scene(&root, |_| {});
    let out = root.join("r.csv");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hdpf"))
        .args(track(&data, &out, &[]))
        .env("HDPF_MAX_MEMORY", "8G")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The reader is gone before the first line: every write to standard output fails (EPIPE).
    drop(child.stdout.take());
    let done = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(0), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("standard output"),
        "{err}"
    );
    let rows = hdpf::domains::pose::bop::read_results(&out).unwrap();
    let frames: std::collections::BTreeSet<u32> = rows.iter().map(|r| r.im_id).collect();
    assert_eq!(frames.len(), 3, "every frame's result is written");
}

/// A user finds a dataset by name under `--datasets`, is told which split holds a scene, is not
/// made to track a scene (or train) before learning that `--out` cannot be written, and gets no perfect
/// score for an empty results file.
#[test]
fn datasets_scenes_and_outputs_are_found_or_named() {
    let root = temp_dir("bad-find");
    let data = scene(&root, |_| {});
    let parent = root.parent().unwrap().to_string_lossy().into_owned();
    let name = root.file_name().unwrap().to_string_lossy().into_owned();
    // By name under --datasets; --out in a folder that does not exist yet.
    let out = root.join("new/folder/r.csv");
    let mut args = track(&name, &out, &[]);
    args.extend(["--datasets".to_string(), parent]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, err) = hdpf(&args);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        hdpf::domains::pose::bop::read_results(&out).unwrap().len(),
        3
    );
    // eval --json carries the mean errors in mm that the text output leads with, and (with the
    // scene's visible fractions written beside its GT) how the object was lost.
    let gt_path = root.join("test/000001/scene_gt.json");
    let gt: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&gt_path).unwrap()).unwrap();
    let info: serde_json::Map<String, serde_json::Value> = (gt.as_object().unwrap().iter())
        .map(|(k, list)| {
            let n = list.as_array().map_or(0, Vec::len);
            let entries = vec![serde_json::json!({ "visib_fract": 0.95 }); n];
            (k.clone(), serde_json::Value::Array(entries))
        })
        .collect();
    std::fs::write(
        gt_path.with_file_name("scene_gt_info.json"),
        serde_json::Value::Object(info).to_string(),
    )
    .unwrap();
    let o = out.to_string_lossy().into_owned();
    let (code, text) = hdpf(&["eval", "--dataset", &data, "--results", &o, "--json"]);
    assert_eq!(code, Some(0), "{text}");
    let json: serde_json::Value = serde_json::from_str(&text[text.find('{').unwrap_or(0)..])
        .unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(json["mean_errors"]["count"], 3, "{text}");
    assert!(json["mean_errors"]["adds_mm"]
        .as_f64()
        .is_some_and(f64::is_finite));
    let losses = &json["losses"];
    assert_eq!(losses["bands"][0][1].as_u64(), Some(3), "{losses}");
    // The longest run over 20 mm, counted here from the targets in image order.
    let mut targets: Vec<&serde_json::Value> = json["targets"].as_array().unwrap().iter().collect();
    targets.sort_by_key(|t| t["im_id"].as_u64());
    let (mut run, mut longest) = (0, 0);
    for t in targets {
        let lost = t["adds_m"].as_f64().is_none_or(|e| e >= 0.02);
        run = if lost { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    assert_eq!(losses["longest_lost"].as_u64(), Some(longest), "{losses}");
    assert!(
        json["losses_per_object"]
            .as_object()
            .is_some_and(|m| m.len() == 1),
        "{text}"
    );
    // Not found anywhere: the message says where else it looked and how to point there.
    // A failed run leaves an earlier run's results as they were.
    let earlier = std::fs::read(&out).unwrap();
    let o = out.to_string_lossy();
    let args = [
        "track",
        "--dataset",
        "no-such-set",
        "--scene",
        "1",
        "--out",
        &o,
    ];
    refused(&args, &["no-such-set", "datasets folder", "--datasets"]);
    assert_eq!(std::fs::read(&out).unwrap(), earlier);
    // A scene the split lacks: the split's scenes and the split that has it; no file is left.
    std::fs::create_dir_all(root.join("val/000007")).unwrap();
    let fresh = root.join("fresh.csv");
    let f = fresh.to_string_lossy();
    let args = ["track", "--dataset", &data, "--scene", "7", "--out", &f];
    refused(&args, &["no scene 7 in split `test`", "[1]", "split val"]);
    assert!(!fresh.exists());
    // An unwritable --out fails before any tracking.
    let file = root.join("a-file");
    write(file.clone(), "");
    let bad_out = file.join("r.csv");
    let args = track(&data, &bad_out, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    refused(&args, &["a-file"]);
    // So does learn's, before any order is trained (it used to learn that at the end).
    let bad_learn = file.join("learn").to_string_lossy().into_owned();
    let args = [
        "learn",
        "--generated",
        "--orders",
        "1",
        "--hidden",
        "8",
        "--out",
        &bad_learn,
    ];
    let (code, err) = hdpf(&args);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("a-file") && !err.contains("order 1/1"),
        "{err}"
    );
    // A header-only results file is refused, not scored as ADD 0.
    let empty = root.join("empty.csv");
    write(empty.clone(), "scene_id,im_id,obj_id,score,R,t,time\n");
    let e = empty.to_string_lossy();
    refused(
        &["eval", "--dataset", &data, "--results", &e],
        &["empty.csv", "no result rows"],
    );
}

/// A control loop told to watch an object that is not tracked says so (it reported a null error
/// and nothing else).
#[test]
fn a_control_loop_on_an_untracked_object_says_so() {
    let root = temp_dir("bad-loop-object");
    let launch = Path::new(env!("CARGO_MANIFEST_DIR")).join("launch/control_loop.toml");
    let jsonl = format!("sinks.jsonl=\"{}\"", root.join("e.jsonl").display());
    let args = [
        "launch",
        &launch.to_string_lossy(),
        "--set",
        "source.synth.frames=8",
    ]
    .into_iter()
    .map(String::from)
    .chain(["--set", "control_loop.obj_id=99", "--set"].map(String::from))
    .chain([jsonl])
    .collect::<Vec<_>>();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out) = hdpf(&args);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("obj_id = 99 is not among the tracked objects [1]"),
        "{out}"
    );
}
