//! Replay → zenoh → tracker on 127.0.0.1 with two `hdpf` processes (feature `zenoh`): every frame
//! arrives and the estimates equal the offline `hdpf track` run of the same scene.
#![cfg(feature = "zenoh")]

#[path = "support/pipeline.rs"]
mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hdpf");

/// A TCP port free on 127.0.0.1 right now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Waits for `child` at most `limit`, killing it after that (the test then fails).
fn wait_bounded(mut child: Child, limit: Duration) -> std::process::Output {
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > limit {
            child.kill().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn set(key: &str, value: &Path) -> [String; 2] {
    ["--set".into(), format!("{key}=\"{}\"", value.display())]
}

#[test]
fn zenoh_replay_to_tracker_over_loopback_equals_offline() {
    let root = support::temp_dir("zenoh-link");
    let scene = support::write_dataset(&root, 6);
    let endpoint = format!("tcp/127.0.0.1:{}", free_port());
    let (csv, summary) = (root.join("z_{tracker}.csv"), root.join("summary.json"));
    let launch = Path::new(env!("CARGO_MANIFEST_DIR")).join("launch/zenoh_tracker.toml");
    let tracker = Command::new(BIN)
        .arg("launch")
        .arg(&launch)
        .args(set("source.listen", Path::new(&endpoint)))
        .args(set("source.dataset", &root))
        .args(set("sinks.csv", &csv))
        .args(set("sinks.summary_json", &summary))
        .args(["--set", "source.idle_timeout_s=60.0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let replay = Command::new(BIN)
        .args([
            "replay",
            "--rate",
            "0",
            "--wait-s",
            "60",
            "--connect",
            &endpoint,
            "--from",
        ])
        .arg(&scene)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let replay = wait_bounded(replay, Duration::from_secs(120));
    let tracker = wait_bounded(tracker, Duration::from_secs(60));
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(
        replay.status.success(),
        "replay: {}\ntracker: {}",
        text(&replay),
        text(&tracker)
    );
    assert!(tracker.status.success(), "tracker: {}", text(&tracker));
    assert!(
        text(&replay).contains("replayed 6 frames") && text(&replay).contains("receiver took 6"),
        "{}",
        text(&replay)
    );
    // Offline: the same scene, the same tracker settings.
    let offline = root.join("offline.csv");
    let status = Command::new(BIN)
        .args([
            "track", "--split", "test", "--scene", "1", "--filter", "rfpf",
        ])
        .args(["--particles", "100", "--modalities", "depth", "--seed", "0"])
        .arg("--dataset")
        .arg(&*root)
        .arg("--out")
        .arg(&offline)
        .output()
        .unwrap();
    assert!(status.status.success(), "track: {}", text(&status));
    let a = hdpf::domains::pose::bop::read_results(&offline).unwrap();
    let b = hdpf::domains::pose::bop::read_results(root.join("z_rfpf.csv")).unwrap();
    assert_eq!((a.len(), b.len()), (6, 6), "every frame arrives");
    let (dt, dr) = hdpf::domains::pose::bop::pose_difference(&a, &b).unwrap();
    assert!(dt < 1e-9 && dr < 1e-9, "{dt} m, {dr} rad");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(s["source_frames"], 6, "{s}");
    assert_eq!(s["trackers"][0]["frames"], 6, "{s}");
}

#[test]
fn shipped_zenoh_launch_file_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("launch/zenoh_tracker.toml");
    hdpf::app::launch::load(&path, &[]).unwrap();
    let e = hdpf::app::launch::load(&path, &["source.listen=\"udp/1.2.3.4:5\"".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("TCP only"), "{e}");
}
