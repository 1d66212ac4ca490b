//! Running a launch file: building the pipeline (trackers, sinks) and the `track`,
//! `control_loop` and `localization` runs.

use super::*;
use crate::runtime::pipeline::plugin::{OpenedSource, SinkContext, SourceContext};
use crate::runtime::pipeline::sink::create_parent;
use crate::runtime::pipeline::Sink;

// ---------------------------------------------------------------------------------------------
// Running

/// The demo launch file, embedded so that the main job runs from any working directory.
pub const DEMO: &str = include_str!("../../../launch/demo.toml");

/// Run a launch file (what `hdpf launch` does): prints progress and the summary.
pub fn run(args: &LaunchArgs) -> Result<()> {
    execute(load(&args.file, &args.set)?)
}

/// Run the embedded demo (`launch/demo.toml`): what `hdpf` with no subcommand does.
pub fn run_demo() -> Result<()> {
    execute(load_str(Path::new("launch/demo.toml"), DEMO, &[])?)
}

pub(super) fn execute(launch: Launch) -> Result<()> {
    crate::runtime::pipeline::install_ctrlc();
    match launch.file.run {
        RunKind::Track => run_track(&launch).map(drop),
        RunKind::ControlLoop => run_control_loop(&launch),
        RunKind::Localization => run_localization(&launch),
    }
}

/// Build the pipeline a launch file describes.
pub fn build(launch: &Launch) -> Result<Built> {
    let f = &launch.file;
    let spec =
        plugins::source(launch)?.ok_or_else(|| Error::format(&launch.path, "no [source] table"))?;
    let rate = *f.pipeline.rate_hz.get_ref();
    let ctx = SourceContext {
        seed: f.seed,
        rate_hz: rate,
    };
    let OpenedSource {
        source,
        meshes,
        timeline,
        eval_points,
    } = spec.open(&ctx)?;
    let config = PipelineConfig {
        policy: f.pipeline.policy,
        capacity: f.pipeline.capacity,
        rate_hz: (rate > 0.0).then_some(rate),
        max_frames: f.pipeline.max_frames,
        progress: f.pipeline.progress,
        stall_timeout: f
            .pipeline
            .stall_timeout_s
            .as_ref()
            .map(|s| crate::core::duration::seconds(*s.get_ref())),
    };
    let mut p = Pipeline::new(config, source);
    let meshes = Arc::new(meshes);
    for t in &f.tracker {
        let cfg = launch.tracker_config(t)?;
        let proc = TrackerProcessor::new(tracker_name(t), cfg, meshes.clone(), t.objects.clone());
        p.add_tracker(Box::new(proc));
    }
    p.set_models(summary_points(&meshes, eval_points));
    for sink in sinks(launch, &meshes, p.clock())? {
        p.add_sink(sink);
    }
    Ok(Built {
        pipeline: p,
        timeline,
        meshes,
    })
}

/// A pipeline built from a launch file, with what the runners need besides.
pub struct Built {
    /// The pipeline, not started.
    pub pipeline: Pipeline,
    /// Ground truth over playback time (for the control loop's error).
    pub timeline: GtTimeline,
    /// Meshes of the objects.
    pub meshes: Arc<MeshLibrary>,
}

/// The points of the summary's ADD column: the dataset's evaluation points where the source
/// has them, else up to 500 vertices per mesh.
fn summary_points(meshes: &MeshLibrary, eval_points: ModelPoints) -> ModelPoints {
    let mut points = model_points(meshes);
    points.extend(eval_points);
    points
}

/// Up to 500 vertices per mesh (the ADD column without evaluation points; the sinks' overlays).
pub(super) fn model_points(meshes: &MeshLibrary) -> ModelPoints {
    meshes
        .iter()
        .map(|(&id, m)| {
            let step = (m.vertices.len() / 500).max(1);
            (
                id,
                Arc::new(m.vertices.iter().step_by(step).copied().collect()),
            )
        })
        .collect()
}

/// The streaming sinks of `[sinks]`, opened.
pub(super) fn sinks(
    launch: &Launch,
    meshes: &Arc<MeshLibrary>,
    clock: crate::runtime::pipeline::Clock,
) -> Result<Vec<Box<dyn Sink>>> {
    let ctx = SinkContext {
        clock,
        meshes: meshes.clone(),
        models: model_points(meshes),
    };
    let mut out = Vec::new();
    for (_, plugin) in plugins::sinks(launch)? {
        out.extend(plugin.open(&ctx)?);
    }
    Ok(out)
}

/// Run a `track` launch: the pipeline to the end, the summary printed (and saved), the failure
/// returned after everything produced was flushed.
pub fn run_track(launch: &Launch) -> Result<RunSummary> {
    let built = build(launch)?;
    let outcome = built.pipeline.run();
    report(launch, &outcome.summary)?;
    outcome.into_result()
}

pub(super) fn report(launch: &Launch, summary: &RunSummary) -> Result<()> {
    eprintln!("{summary}");
    if let Some(p) = launch.summary_path()? {
        let json =
            serde_json::to_string_pretty(summary).map_err(|e| Error::Other(e.to_string()))?;
        create_parent(&p)?;
        std::fs::write(&p, json).map_err(|e| Error::io(&p, e))?;
    }
    Ok(())
}

pub(super) fn run_control_loop(launch: &Launch) -> Result<()> {
    let spec = launch
        .file
        .control_loop
        .as_ref()
        .ok_or_else(|| Error::format(&launch.path, "no [control_loop] table"))?;
    let mut built = build(launch)?;
    let handle = built.pipeline.control_handle();
    let running = built.pipeline.spawn();
    let cfg = ControlLoopConfig {
        hz: spec.hz,
        obj_id: spec.obj_id,
    };
    let stats = crate::runtime::pipeline::control_loop::run(&handle, &built.timeline, &cfg, || {
        running.is_finished()
    });
    let outcome = running.join();
    report(launch, &outcome.summary)?;
    let line = stats.report(&outcome.summary);
    eprintln!("{}", stats.describe());
    if let (Some(id), Some(tracked)) = (spec.obj_id, &stats.obj_missing_from) {
        eprintln!(
            "control loop: [control_loop] obj_id = {id} is not among the tracked objects \
             {tracked:?}: it measured no error"
        );
    }
    crate::outln!("{}", line.to_json());
    outcome.into_result().map(drop)
}

pub(super) fn run_localization(launch: &Launch) -> Result<()> {
    let table = launch
        .file
        .localization
        .as_ref()
        .ok_or_else(|| Error::format(&launch.path, "no [localization] table"))?;
    let flags = table_to_flags(table);
    crate::app::bench::bridge::localization(&flags)
        .map_err(|e| Error::format(&launch.path, format!("[localization]: {e}")))
}

/// A TOML table as command-line flags: `k = v` → `--k v`, arrays comma-joined, `true` → `--k`.
pub fn table_to_flags(t: &toml::Table) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in t {
        let flag = format!("--{}", k.replace('_', "-"));
        match v {
            toml::Value::Boolean(true) => out.push(flag),
            toml::Value::Boolean(false) => {}
            toml::Value::Array(a) => {
                out.extend([flag, a.iter().map(scalar).collect::<Vec<_>>().join(",")])
            }
            other => out.extend([flag, scalar(other)]),
        }
    }
    out
}

pub(super) fn scalar(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
