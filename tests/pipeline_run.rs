//! End-to-end runs of the pipeline over a tiny recorded scene: both queue policies, a corrupt frame,
//! a failing stage, a stop midway, a directory still being written, the control handle.

#[path = "support/pipeline.rs"]
mod support;

use hdpf::runtime::pipeline::{
    CsvSink, DirectorySource, JsonLinesSink, JsonTarget, Pipeline, PipelineConfig, QueuePolicy,
    SequenceSource,
};
use std::time::Duration;
use support::*;

fn source(root: &std::path::Path) -> Box<SequenceSource> {
    Box::new(SequenceSource::open(root, &[("test".into(), 1)], None).unwrap())
}

fn config(policy: QueuePolicy, rate_hz: Option<f64>) -> PipelineConfig {
    PipelineConfig {
        policy,
        capacity: 2,
        rate_hz,
        max_frames: None,
        progress: false,
        ..PipelineConfig::default()
    }
}

#[test]
fn lossless_processes_every_frame_exactly_once() {
    let root = temp_dir("lossless");
    write_dataset(&root, 12);
    let mut p = Pipeline::new(config(QueuePolicy::Lossless, None), source(&root));
    let (mut a, seen_a) = EchoGt::new("a");
    a.delay = Duration::from_millis(3);
    let (b, seen_b) = EchoGt::new("b");
    p.add_tracker(Box::new(a));
    p.add_tracker(Box::new(b));
    let s = p.run().into_result().unwrap();
    let all: Vec<u64> = (0..12).collect();
    assert_eq!(*seen_a.lock().unwrap(), all);
    assert_eq!(*seen_b.lock().unwrap(), all);
    assert_eq!(s.source_frames, 12);
    assert_eq!(s.total_dropped(), 0);
    assert_eq!(s.tracker("a").unwrap().frames, 12);
    assert!(s.tracker("a").unwrap().trans_err_mm < 1e-9);
}

#[test]
fn latest_drops_stale_frames_and_accounts_for_them() {
    let root = temp_dir("latest");
    write_dataset(&root, 30);
    let mut p = Pipeline::new(config(QueuePolicy::Latest, Some(200.0)), source(&root));
    let (mut slow, seen) = EchoGt::new("slow");
    slow.delay = Duration::from_millis(25);
    p.add_tracker(Box::new(slow));
    let s = p.run().into_result().unwrap();
    let processed = seen.lock().unwrap().clone();
    assert_eq!(s.source_frames, 30);
    assert!(s.total_dropped() > 0, "{s}");
    // Each emitted frame is processed or dropped, exactly once.
    assert_eq!(processed.len() as u64 + s.total_dropped(), 30, "{s}");
    assert!(
        processed.windows(2).all(|w| w[0] < w[1]),
        "in order, no repeats"
    );
}

#[test]
fn corrupt_frame_is_skipped_and_reported() {
    let root = temp_dir("corrupt");
    let dir = write_dataset(&root, 6);
    std::fs::write(dir.join("rgb").join("000003.png"), b"not a png").unwrap();
    let mut p = Pipeline::new(config(QueuePolicy::Lossless, None), source(&root));
    let (t, seen) = EchoGt::new("t");
    p.add_tracker(Box::new(t));
    let s = p.run().into_result().unwrap();
    assert_eq!(seen.lock().unwrap().len(), 5);
    assert_eq!(s.skipped.len(), 1);
    assert_eq!(s.skipped[0].im_id, 3);
    assert!(
        s.skipped[0].reason.contains("000003.png"),
        "{}",
        s.skipped[0].reason
    );
}

#[test]
fn stage_failure_names_stage_and_frame_and_keeps_results() {
    let root = temp_dir("failure");
    write_dataset(&root, 10);
    let out = root.join("out.jsonl");
    let mut p = Pipeline::new(config(QueuePolicy::Lossless, None), source(&root));
    let (mut t, _) = EchoGt::new("t");
    t.fail_at = Some(5);
    p.add_tracker(Box::new(t));
    p.add_sink(Box::new(
        JsonLinesSink::open(&JsonTarget::File(out.clone()), p.clock()).unwrap(),
    ));
    let outcome = p.run();
    let err = outcome.error.expect("the run fails").to_string();
    assert!(err.contains("filter:t") && err.contains("frame 5"), "{err}");
    assert_eq!(outcome.summary.tracker("t").unwrap().frames, 4);
    let lines = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        lines.lines().count(),
        4,
        "results before the failure are flushed"
    );
}

#[test]
fn run_stopped_midway_leaves_valid_csv_and_jsonl() {
    let root = temp_dir("stopped");
    write_dataset(&root, 40);
    let (jsonl, csv) = (root.join("e.jsonl"), root.join("r_{tracker}.csv"));
    let mut p = Pipeline::new(config(QueuePolicy::Lossless, Some(50.0)), source(&root));
    let (t, _) = EchoGt::new("t");
    p.add_tracker(Box::new(t));
    p.add_sink(Box::new(
        JsonLinesSink::open(&JsonTarget::File(jsonl.clone()), p.clock()).unwrap(),
    ));
    p.add_sink(Box::new(CsvSink::new(csv.to_string_lossy())));
    let stop = p.stopper();
    let running = p.spawn();
    std::thread::sleep(Duration::from_millis(250));
    stop();
    let s = running.join().into_result().unwrap();
    let n = s.tracker("t").unwrap().frames as usize;
    assert!(n > 0 && n < 40, "stopped midway: {n}");
    let text = std::fs::read_to_string(&jsonl).unwrap();
    assert_eq!(text.lines().count(), n);
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["type"], "estimate");
        assert_eq!(v["objects"][0]["cov"].as_array().unwrap().len(), 36);
    }
    let results = hdpf::domains::pose::bop::read_results(root.join("r_t.csv")).unwrap();
    assert_eq!(results.len(), n);
}

#[test]
fn directory_source_picks_up_frames_while_they_are_written() {
    let root = temp_dir("dir");
    let dir = root.join("scene");
    std::fs::create_dir_all(dir.join("rgb")).unwrap();
    std::fs::create_dir_all(dir.join("depth")).unwrap();
    let writer_dir = dir.clone();
    let writer = std::thread::spawn(move || {
        write_meta(&writer_dir, 8);
        for i in 1..=8 {
            write_frame(&writer_dir, i);
            std::thread::sleep(Duration::from_millis(30));
        }
        std::fs::write(writer_dir.join("DONE"), b"").unwrap();
    });
    let src = DirectorySource::new(&dir, 7, Duration::from_secs(5));
    let mut p = Pipeline::new(config(QueuePolicy::Lossless, None), Box::new(src));
    let (t, seen) = EchoGt::new("t");
    p.add_tracker(Box::new(t));
    let s = p.run().into_result().unwrap();
    writer.join().unwrap();
    assert_eq!(s.source_frames, 8, "{s}");
    assert_eq!(seen.lock().unwrap().len(), 8);
}

#[test]
fn control_handle_sees_estimates_while_running() {
    let root = temp_dir("handle");
    write_dataset(&root, 20);
    let mut p = Pipeline::new(config(QueuePolicy::Latest, Some(100.0)), source(&root));
    let (t, _) = EchoGt::new("t");
    p.add_tracker(Box::new(t));
    let h = p.control_handle();
    let running = p.spawn();
    let mut seen = Vec::new();
    while !running.is_finished() {
        if let Some(e) = h.latest() {
            assert!(e.publish >= e.capture);
            seen.push(e.seq);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    running.join().into_result().unwrap();
    assert!(seen.len() > 5 && seen.windows(2).all(|w| w[0] <= w[1]));
    let last = h.latest().unwrap();
    let pose = last.extrapolate(1, last.capture).unwrap();
    assert!((pose.translation.vector - last.objects[0].pose.translation.vector).norm() < 1e-12);
}

#[test]
fn jsonl_over_udp_delivers_one_datagram_per_estimate() {
    let root = temp_dir("udp");
    write_dataset(&root, 3);
    let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let target = JsonTarget::Udp(rx.local_addr().unwrap().to_string());
    let mut p = Pipeline::new(config(QueuePolicy::Lossless, None), source(&root));
    let (t, _) = EchoGt::new("t");
    p.add_tracker(Box::new(t));
    p.add_sink(Box::new(JsonLinesSink::open(&target, p.clock()).unwrap()));
    p.run().into_result().unwrap();
    let mut buf = [0u8; 65536];
    for seq in 0..3 {
        let n = rx.recv(&mut buf).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
        assert_eq!(v["seq"], seq);
        assert!(v["publish"].as_f64().unwrap() >= v["capture"].as_f64().unwrap());
    }
}
