//! Replay → zenoh → tracker on 127.0.0.1 with `hdpf` processes (feature `zenoh`): every frame
//! arrives and the estimates equal the offline `hdpf track` run of the same scene; zenoh peers
//! that vanish mid-run lose nothing already computed.
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
    // The tracker also publishes its estimates (`sinks.zenoh`) to a controller: this test process.
    let estimates = format!("tcp/127.0.0.1:{}", free_port());
    let extra = [
        "--set".into(),
        format!("sinks.zenoh.listen=\"{estimates}\""),
    ];
    let tracker = tracker(&root, "z", &endpoint, &extra);
    assert!(
        listening(&estimates, Duration::from_secs(60)),
        "sink never listened"
    );
    let (controller, poses) = Controller::subscribe(&estimates);
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
        serde_json::from_str(&std::fs::read_to_string(root.join("z.json")).unwrap()).unwrap();
    assert_eq!(s["source_frames"], 6, "{s}");
    assert_eq!(s["trackers"][0]["frames"], 6, "{s}");
    // The controller received every estimate as a ROS message equal to the CSV row.
    let received = controller.finish(&poses, 6);
    assert_eq!(received.len(), 6, "one PoseWithCovarianceStamped per frame");
    for (k, (m, seq)) in received.iter().enumerate() {
        let d = (m.pose.to_homogeneous() - b[k].pose.to_homogeneous())
            .abs()
            .max();
        assert!(d < 1e-9, "estimate {k}: {d} from the CSV row");
        assert_eq!(
            *seq,
            k as i64 + 1,
            "rmw_zenoh sequence numbers count from 1"
        );
        assert!(
            m.covariance[0] > 0.0,
            "a particle filter reports its covariance"
        );
        assert_eq!(m.header.frame_id, "camera_color_optical_frame");
    }
}

/// A controller: a zenoh session linked to the tracker's `sinks.zenoh`, subscribed to object 1's
/// poses from tracker `rfpf` as a ROS 2 node would.
struct Controller {
    node: hdpf::runtime::zenoh_node::RosNode,
    _sub: hdpf::runtime::zenoh_node::RosSubscription,
}

type Poses = crossbeam_channel::Receiver<hdpf::runtime::zenoh_node::Received>;

impl Controller {
    fn subscribe(endpoint: &str) -> (Controller, Poses) {
        use hdpf::domains::recording::ros_msgs::{PoseWithCovarianceStamped, RosMessage};
        let endpoints = hdpf::runtime::zenoh_node::Endpoints {
            listen: vec![],
            connect: vec![endpoint.to_string()],
        };
        let node = hdpf::runtime::zenoh_node::RosNode::open("controller", 0, &endpoints).unwrap();
        let (inbox, rx) = hdpf::runtime::zenoh_node::Inbox::bounded(1024);
        let topic = hdpf::domains::recording::ros_msgs::estimate_topic("rfpf", 1);
        let sub = node
            .subscribe(&topic, PoseWithCovarianceStamped::NAME, 0, inbox)
            .unwrap();
        // Let the subscription reach the tracker's session before any frame is sent.
        std::thread::sleep(Duration::from_millis(500));
        (Controller { node, _sub: sub }, rx)
    }

    /// The first `n` poses received (waiting at most 10 s), decoded, with their sequence numbers.
    fn finish(
        self,
        rx: &Poses,
        n: usize,
    ) -> Vec<(
        hdpf::domains::recording::ros_msgs::PoseWithCovarianceStamped,
        i64,
    )> {
        use hdpf::domains::recording::ros_msgs::{PoseWithCovarianceStamped, RosMessage};
        let got = (0..n)
            .map_while(|_| rx.recv_timeout(Duration::from_secs(10)).ok())
            .map(|r| {
                let seq = r.attachment.map_or(-1, |a| a.sequence_number);
                (
                    PoseWithCovarianceStamped::from_cdr(&r.payload()).unwrap(),
                    seq,
                )
            })
            .collect();
        self.node.close().unwrap();
        got
    }
}

/// Lines of `path` (0 while it does not exist).
fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

/// Waits until `path` has at least `n` lines, at most `limit`; returns the count reached.
fn wait_lines(path: &Path, n: usize, limit: Duration) -> usize {
    let t = Instant::now();
    while lines(path) < n && t.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(20));
    }
    lines(path)
}

/// Whether `endpoint` (`tcp/127.0.0.1:PORT`) accepts TCP connections within `limit`.
fn listening(endpoint: &str, limit: Duration) -> bool {
    let addr = endpoint.trim_start_matches("tcp/");
    let t = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        if t.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// `hdpf launch launch/zenoh_tracker.toml` with its source listening at `endpoint`, results under
/// `root` with the prefix `name`, and extra `--set` overrides.
fn tracker(root: &Path, name: &str, endpoint: &str, extra: &[String]) -> Child {
    let launch = Path::new(env!("CARGO_MANIFEST_DIR")).join("launch/zenoh_tracker.toml");
    Command::new(BIN)
        .arg("launch")
        .arg(&launch)
        .args(set("source.listen", Path::new(endpoint)))
        .args(set("source.dataset", root))
        .args(set(
            "sinks.csv",
            &root.join(format!("{name}_{{tracker}}.csv")),
        ))
        .args(set(
            "sinks.summary_json",
            &root.join(format!("{name}.json")),
        ))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A zenoh peer that vanishes mid-run (killed: its TCP links reset) costs the run nothing: the
/// tracker's zenoh sink goes on publishing to nobody (not a failure, no dropped sink), and when
/// the replay feeding its zenoh source is killed, the source ends after `idle_timeout_s` and every
/// estimate made so far is on disk, as many rows as frames taken.
#[test]
fn zenoh_peers_that_vanish_lose_nothing() {
    let root = support::temp_dir("zenoh-vanish");
    let scene = support::write_dataset(&root, 40);
    let (feed, out) = (
        format!("tcp/127.0.0.1:{}", free_port()),
        format!("tcp/127.0.0.1:{}", free_port()),
    );
    // The peer the tracker's sink links to: another hdpf whose source listens at `out`.
    let peer = tracker(&root, "peer", &out, &[]);
    assert!(
        listening(&out, Duration::from_secs(60)),
        "the peer never listened"
    );
    let overrides = [
        "--set".to_string(),
        format!("sinks.zenoh.connect=\"{out}\""),
        "--set".into(),
        "source.idle_timeout_s=3.0".into(),
    ];
    let main = tracker(&root, "main", &feed, &overrides);
    let replay = Command::new(BIN)
        .args([
            "replay",
            "--rate",
            "10",
            "--wait-s",
            "60",
            "--connect",
            &feed,
        ])
        .arg("--from")
        .arg(&scene)
        // The replay converts the scene in a scratch folder of the temp folder; killed, it
        // cannot remove it, so it makes it inside this test's own scratch folder.
        .env("TMPDIR", &*root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // 40 frames at 10 Hz: the peer goes after 5 estimates, the replay after 15 (header line + rows).
    let csv = root.join("main_rfpf.csv");
    let mut peer = peer;
    assert!(
        wait_lines(&csv, 6, Duration::from_secs(60)) >= 6,
        "no estimates"
    );
    peer.kill().unwrap();
    peer.wait().unwrap();
    let mut replay = replay;
    let before = wait_lines(&csv, 16, Duration::from_secs(30));
    replay.kill().unwrap();
    replay.wait().unwrap();
    let out = wait_bounded(main, Duration::from_secs(60));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tracker: {log}");
    let rows = hdpf::domains::pose::bop::read_results(&csv).unwrap();
    assert!(
        rows.len() + 1 >= before && rows.len() < 40,
        "{} rows, {before} lines when the replay was killed: the kill must come mid-stream",
        rows.len()
    );
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("main.json")).unwrap()).unwrap();
    assert_eq!(s["source_frames"], rows.len(), "{s}");
    assert_eq!(s["trackers"][0]["frames"], rows.len(), "{s}");
    assert_eq!(s["dropped_sinks"], serde_json::json!([]), "{s}");
}

/// A camera faster than its pipeline: samples that arrive while the source is not read wait in a
/// queue of [`ARRIVING`]; the rest are dropped and counted, never held.
#[test]
fn an_unread_source_holds_a_bounded_queue_and_counts_the_rest() {
    use hdpf::domains::recording::mcap_bop::COLOR_PNG_TOPIC;
    use hdpf::domains::recording::ros_msgs::{CompressedImage, RosMessage};
    use hdpf::runtime::pipeline::source::zenoh::{ZenohSource, ZenohSourceSpec, ARRIVING};
    use hdpf::runtime::zenoh_node::{Endpoints, RosNode};
    let endpoint = format!("tcp/127.0.0.1:{}", free_port());
    let spec = format!("kind = \"zenoh\"\nlisten = \"{endpoint}\"\nidle_timeout_s = 5");
    let spec: ZenohSourceSpec = toml::from_str(&spec).unwrap();
    let source = ZenohSource::open(&spec).unwrap();
    let camera = Endpoints {
        listen: vec![],
        connect: vec![endpoint],
    };
    let node = RosNode::open("camera", 0, &camera).unwrap();
    let mut colour = node
        .publisher(COLOR_PNG_TOPIC, CompressedImage::NAME)
        .unwrap();
    // The payload is never read (the source is not polled): any bytes do.
    let mut sent = 0;
    let mut send = || {
        colour.publish(vec![0u8; 2000]).unwrap();
        sent += 1;
    };
    // Samples published before the subscription is discovered are lost: probe until one is in.
    let t = Instant::now();
    while source.waiting() == 0 {
        assert!(t.elapsed() < Duration::from_secs(20), "no sample arrived");
        send();
        std::thread::sleep(Duration::from_millis(20));
    }
    let extra = 50;
    (0..ARRIVING + extra).for_each(|_| send());
    let t = Instant::now();
    while source.dropped() < extra as u64 && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Every sample past the first ARRIVING that got in is counted; probes lost to discovery are
    // not, so the count lies between the extras and everything sent beyond ARRIVING.
    assert_eq!(source.waiting(), ARRIVING);
    let dropped = source.dropped() as usize;
    assert!(
        (extra..=sent - ARRIVING).contains(&dropped),
        "{dropped} of {sent}"
    );
    node.close().unwrap();
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

#[test]
fn bench_zenoh_counts_every_frame_beside_its_tcp_baseline() {
    // Small frames, bounded in count and time: the bench and its baseline both run on 127.0.0.1.
    for rate in ["0", "200"] {
        let out = Command::new(BIN)
            .args(["bench", "zenoh", "--frames", "24", "--width", "64"])
            .args(["--height", "48", "--rate", rate])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = wait_bounded(out, Duration::from_secs(60));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8_lossy(&out.stdout);
        let r: serde_json::Value = serde_json::from_str(line.lines().last().unwrap()).unwrap();
        assert_eq!(
            (r["sent"].as_u64(), r["received"].as_u64()),
            (Some(24), Some(24))
        );
        assert_eq!(r["lost"].as_i64(), Some(0), "{line}");
        assert_eq!(r["frame_bytes"].as_u64(), Some(64 * 48 * 5));
        for (p50, p99) in [
            ("hop_p50_ms", "hop_p99_ms"),
            ("tcp_hop_p50_ms", "tcp_hop_p99_ms"),
        ] {
            let (a, b) = (r[p50].as_f64().unwrap(), r[p99].as_f64().unwrap());
            assert!(a > 0.0 && b.is_finite(), "{p50} {a}, {p99} {b}: {line}");
        }
    }
}

/// `bench zenoh` refuses an image size its frames could not be held at, before allocating them.
#[test]
fn bench_zenoh_refuses_frames_too_large_for_memory() {
    let out = Command::new(BIN)
        .args(["--max-memory", "1G", "bench", "zenoh", "--frames", "2"])
        .args(["--width", "100000", "--height", "100000"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("100000x100000") && err.contains("memory"),
        "{err}"
    );
}

/// A tracker that no peer ever reaches ends after its idle timeout and says so, naming where it
/// listened (it ended with "0 frames received" and a NaN row, and no hint).
#[test]
fn a_source_no_peer_reaches_says_so() {
    let root = support::temp_dir("zenoh-nobody");
    support::write_dataset(&root, 2);
    let endpoint = format!("tcp/127.0.0.1:{}", free_port());
    let idle = ["--set".to_string(), "source.idle_timeout_s=1.0".to_string()];
    let out = wait_bounded(
        tracker(&root, "n", &endpoint, &idle),
        Duration::from_secs(60),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code().is_some(), "{err}");
    assert!(
        err.contains("no sample arrived on any topic") && err.contains(&endpoint),
        "{err}"
    );
}
