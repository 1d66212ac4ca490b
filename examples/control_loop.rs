//! A 500 Hz control loop consuming pose estimates from a live pipeline over a synthetic sequence.
//!
//! ```text
//! cargo run --release --example control_loop [-- LAUNCH_FILE [key=value ...]]
//! ```
//! The pipeline (default `launch/control_loop.toml`: 30 Hz playback, `latest` queues, rfpf with 100
//! particles) runs on its own threads; this thread polls the [`ControlHandle`] every 2 ms without
//! blocking, extrapolates the latest estimate to "now" with the constant-velocity model and
//! compares it with the ground truth at that instant. It ends with one JSON line:
//! `{"loop_hz":…,"jitter_p99_ms":…,"staleness_p50_ms":…,"staleness_p99_ms":…,"error_mm_p50":…,"frames":…,"dropped":…,"held_ticks":…,"lost_ticks":…}`.

use hdpf::app::launch;
use hdpf::runtime::pipeline::control_loop::{self, ControlLoopConfig};
use hdpf::runtime::pipeline::ControlHandle;
use std::path::PathBuf;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> hdpf::Result<()> {
    let mut args = std::env::args().skip(1);
    let file = args
        .next()
        .map_or_else(|| PathBuf::from("launch/control_loop.toml"), PathBuf::from);
    let overrides: Vec<String> = args.collect();
    let launch = launch::load(&file, &overrides)?;
    hdpf::runtime::pipeline::install_ctrlc();

    let mut built = launch::build(&launch)?;
    let handle: ControlHandle = built.pipeline.control_handle();
    let running = built.pipeline.spawn();

    let spec = launch.file.control_loop.clone();
    let cfg = ControlLoopConfig {
        hz: spec.as_ref().map_or(500.0, |s| s.hz),
        obj_id: spec.and_then(|s| s.obj_id),
    };
    // The controller: every tick, `handle.latest()` (lock-free) and `extrapolate(obj, now)`.
    let stats = control_loop::run(&handle, &built.timeline, &cfg, || running.is_finished());

    let outcome = running.join();
    eprintln!("{}", outcome.summary);
    eprintln!("{}", stats.describe());
    println!("{}", stats.report(&outcome.summary).to_json());
    outcome.into_result().map(drop)
}
