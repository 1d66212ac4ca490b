//! Pipeline faults: what a panicking model, a full disk, a vanished viewer, a stalled source and
//! Ctrl-C do to a run. In every case the results produced so far stay on disk and the summary
//! says what happened (README, "Faults").

#[path = "support/pipeline.rs"]
mod support;

use hdpf::runtime::pipeline::message::SinkMsg;
use hdpf::runtime::pipeline::source::{Poll, Source};
use hdpf::runtime::pipeline::{
    CsvSink, JsonLinesSink, JsonTarget, Pipeline, PipelineConfig, QueuePolicy, SequenceSource,
    Sink, SinkFailure,
};
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

fn config() -> PipelineConfig {
    PipelineConfig {
        policy: QueuePolicy::Lossless,
        capacity: 2,
        rate_hz: None,
        ..PipelineConfig::default()
    }
}

fn source(root: &Path) -> Box<SequenceSource> {
    Box::new(SequenceSource::open(root, &[("test".into(), 1)], None).unwrap())
}

fn jsonl_sink(p: &Pipeline, path: &Path) -> Box<JsonLinesSink> {
    Box::new(JsonLinesSink::open(&JsonTarget::File(path.to_path_buf()), p.clock()).unwrap())
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).unwrap().lines().count()
}

#[test]
fn a_model_that_panics_ends_the_run_naming_stage_frame_and_message() {
    let root = temp_dir("panic");
    write_dataset(&root, 10);
    let out = root.join("out.jsonl");
    let mut p = Pipeline::new(config(), source(&root));
    let (mut t, _) = EchoGt::new("t");
    t.panic_at = Some(5);
    p.add_tracker(Box::new(t));
    p.add_sink(jsonl_sink(&p, &out));
    let outcome = p.run();
    let err = outcome.error.expect("the run fails").to_string();
    assert!(
        err.contains("filter:t") && err.contains("frame 5") && err.contains("injected panic"),
        "{err}"
    );
    assert_eq!(outcome.summary.failure.as_deref(), Some(err.as_str()));
    assert_eq!(
        lines(&out),
        4,
        "the four estimates before the panic are on disk"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_ends_the_run_naming_the_file_and_keeps_the_other_results() {
    // The results file is a link to /dev/full, which accepts the open and fails every write with
    // ENOSPC, as a full file system does.
    let root = temp_dir("full");
    // 40 frames played at 20 Hz (2 s). The queue into the sinks holds 256 messages, so nothing
    // but the pacing holds the tracker back: unpaced, the echo tracker carried all 40 frames
    // through before the sinks' thread saw its first failed write (once in CI, 2026-12-05), as 10
    // unpaced frames had before. Paced, the run stops a few frames after that first write
    // unless the sinks' thread is starved for 2 s.
    write_dataset(&root, 40);
    let out = root.join("out.jsonl");
    std::os::unix::fs::symlink("/dev/full", root.join("r_t.csv")).unwrap();
    let paced = PipelineConfig {
        rate_hz: Some(20.0),
        ..config()
    };
    let mut p = Pipeline::new(paced, source(&root));
    p.add_tracker(Box::new(EchoGt::new("t").0));
    p.add_sink(jsonl_sink(&p, &out));
    p.add_sink(Box::new(CsvSink::new(
        root.join("r_{tracker}.csv").to_string_lossy(),
    )));
    let outcome = p.run();
    let err = outcome.error.expect("the run fails").to_string();
    assert!(err.contains("sink:csv") && err.contains("r_t.csv"), "{err}");
    let done = outcome.summary.tracker("t").unwrap().frames as usize;
    assert!(
        (1..40).contains(&done),
        "the run ended early: {done} frames"
    );
    assert_eq!(
        lines(&out),
        done,
        "every estimate produced reached the JSON lines file"
    );
}

/// A sink that fails at its `fail_at`-th estimate with the given policy, counting what it saw.
struct Flaky {
    fail_at: usize,
    seen: usize,
    policy: SinkFailure,
}

impl Sink for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }
    fn handle(&mut self, msg: &SinkMsg) -> hdpf::Result<()> {
        if matches!(msg, SinkMsg::Estimate(_)) {
            self.seen += 1;
            if self.seen == self.fail_at {
                return Err(hdpf::Error::Other("viewer went away".into()));
            }
        }
        Ok(())
    }
    fn on_failure(&self) -> SinkFailure {
        self.policy
    }
}

#[test]
fn a_droppable_sink_that_fails_is_dropped_and_the_run_goes_on() {
    let root = temp_dir("drop");
    write_dataset(&root, 10);
    let out = root.join("out.jsonl");
    let mut p = Pipeline::new(config(), source(&root));
    p.add_tracker(Box::new(EchoGt::new("t").0));
    p.add_sink(Box::new(Flaky {
        fail_at: 3,
        seen: 0,
        policy: SinkFailure::Drop,
    }));
    p.add_sink(jsonl_sink(&p, &out));
    let s = p
        .run()
        .into_result()
        .expect("a dropped sink does not fail the run");
    assert_eq!(s.tracker("t").unwrap().frames, 10);
    assert_eq!(lines(&out), 10);
    assert_eq!(s.dropped_sinks.len(), 1, "{s}");
    assert!(s.dropped_sinks[0].contains("viewer went away"), "{s}");
    assert!(s.to_string().contains("dropped sink"), "{s}");
}

/// Yields the frames of `inner` up to `frames`, then nothing, for ever.
struct Stalling {
    inner: Box<SequenceSource>,
    frames: usize,
}

impl Source for Stalling {
    fn name(&self) -> String {
        "stalling".into()
    }
    fn poll(&mut self) -> hdpf::Result<Poll> {
        if self.frames == 0 {
            return Ok(Poll::Pending);
        }
        self.frames -= 1;
        self.inner.poll()
    }
}

#[test]
fn a_stalled_source_ends_the_run_after_the_stall_timeout() {
    let root = temp_dir("stall");
    write_dataset(&root, 10);
    let out = root.join("out.jsonl");
    let cfg = PipelineConfig {
        stall_timeout: Some(Duration::from_millis(300)),
        ..config()
    };
    let src = Stalling {
        inner: source(&root),
        frames: 3,
    };
    let mut p = Pipeline::new(cfg, Box::new(src));
    p.add_tracker(Box::new(EchoGt::new("t").0));
    p.add_sink(jsonl_sink(&p, &out));
    let started = Instant::now();
    let outcome = p.run();
    let err = outcome.error.expect("a stall is an error").to_string();
    assert!(err.contains("source") && err.contains("stalled"), "{err}");
    // Bounded: the timeout plus one poll interval, with a wide margin for a loaded machine.
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(lines(&out), 3, "the frames before the stall were tracked");
}

#[cfg(unix)]
#[test]
fn ctrl_c_to_a_running_process_leaves_valid_csv_json_lines_and_summary() {
    let root = temp_dir("sigint");
    let (csv, jsonl, summary) = (
        root.join("r_{tracker}.csv"),
        root.join("e.jsonl"),
        root.join("summary.json"),
    );
    let text = format!(
        r#"
[source]
kind = "synth"
[source.synth]
objects = ["box"]
frames = 3000
motion = "slow"
resolution = [80, 60]
[pipeline]
rate_hz = 30.0
progress = false
[[tracker]]
name = "t"
filter = "sir"
particles = 10
[sinks]
csv = {csv:?}
jsonl = {jsonl:?}
summary_json = {summary:?}
"#
    );
    let file = root.join("run.toml");
    std::fs::write(&file, text).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hdpf"))
        .args(["launch", &file.to_string_lossy()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&jsonl).map_or(0, |t| t.lines().count()) < 3 {
        assert!(Instant::now() < deadline, "no estimates within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the process did not stop after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.code().is_some(),
        "ended by itself, not by the signal: {status}"
    );
    let rows = hdpf::domains::pose::bop::read_results(root.join("r_t.csv")).expect("a valid CSV");
    let est = std::fs::read_to_string(&jsonl).unwrap();
    let n = est.lines().count();
    assert!((3..3000).contains(&n), "stopped midway: {n}");
    for line in est.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("every line is whole JSON");
    }
    assert_eq!(rows.len(), n, "one CSV row per estimate");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(s["interrupted"], true, "{s}");
}
