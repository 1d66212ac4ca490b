//! Launch files: a pipeline (or a benchmark) written down as TOML, `hdpf launch FILE [--set k=v …]`.
//!
//! The schema is the serde structs below (every table rejects unknown keys). Errors name the file,
//! the line and the dotted key, e.g. `launch/demo.toml: line 14, key tracker[1].particles: invalid
//! type: string "many", expected usize`. `--set a.b=value` overrides a key before validation
//! (`tracker.1.particles=50` indexes `[[tracker]]` tables; values are TOML, bare words are strings).

use crate::app::viz::RerunSpec;
use crate::core::error::{Error, Result};
use crate::core::filter::FilterKind;
use crate::domains::pose::bop::BopDataset;
use crate::domains::pose::tracker::{parse_modalities, InitNoise, MotionModel, TrackerConfig};
use crate::runtime::pipeline::control_loop::{ControlLoopConfig, GtTimeline};
use crate::runtime::pipeline::synthetic::{synth_config, SynthSource, SynthSpec};
use crate::runtime::pipeline::tracking::{MeshLibrary, TrackerProcessor};
use crate::runtime::pipeline::{
    CsvSink, JsonLinesSink, JsonTarget, ModelPoints, Pipeline, PipelineConfig, QueuePolicy,
    RunSummary, Sink, Source,
};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toml::Spanned;

/// `hdpf launch FILE [--set key=value …]`.
#[derive(clap::Args, Clone, Debug)]
pub struct LaunchArgs {
    /// The launch file (TOML), e.g. launch/demo.toml.
    pub file: PathBuf,
    /// Override a key of the file, e.g. `--set pipeline.policy=latest` or `--set tracker.0.particles=50`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// What a launch file runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// A tracking pipeline: source → decode → trackers → sinks, then the summary table.
    #[default]
    Track,
    /// A tracking pipeline polled by a control loop (see [`ControlLoopSpec`]).
    ControlLoop,
    /// The RF-PF paper's localization benchmark (`hdpf bench localization`).
    Localization,
}

/// A whole launch file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchFile {
    /// What to run.
    #[serde(default)]
    pub run: RunKind,
    /// Seed of every random stream (trackers, generator).
    #[serde(default)]
    pub seed: u64,
    /// Where frames come from.
    pub source: Option<SourceSpec>,
    /// Queues and playback.
    #[serde(default)]
    pub pipeline: PipelineSpec,
    /// One filter stage per `[[tracker]]`.
    #[serde(default)]
    pub tracker: Vec<TrackerSpec>,
    /// Outputs.
    #[serde(default)]
    pub sinks: SinkSpec,
    /// The control loop of `run = "control_loop"`.
    pub control_loop: Option<ControlLoopSpec>,
    /// Flags of `hdpf bench localization` for `run = "localization"` (key = flag without `--`).
    pub localization: Option<toml::Table>,
}

/// Kind of source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Recorded BOP scenes.
    Bop,
    /// A BOP scene directory still being written.
    Dir,
    /// A synthetic sequence rendered live in memory (`[source.synth]`).
    Synth,
}

/// `[source]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// `bop` or `dir`.
    pub kind: SourceKind,
    /// Dataset root (`bop`), also where meshes come from (`models/`).
    pub dataset: Option<PathBuf>,
    /// Scenes as `"split/scene_id"` (`bop`), e.g. `["test/49"]`.
    #[serde(default)]
    pub scenes: Vec<Spanned<String>>,
    /// Scene directory to watch (`dir`).
    pub path: Option<PathBuf>,
    /// Scene id reported for `dir` frames.
    #[serde(default)]
    pub scene_id: u32,
    /// `dir`: end after this many seconds without a new frame.
    #[serde(default = "default_idle")]
    pub idle_timeout_s: f64,
    /// At most this many frames per scene.
    pub max_frames: Option<usize>,
    /// Render a synthetic sequence into `dataset` first if it does not exist.
    pub synth: Option<SynthSpec>,
}

fn default_idle() -> f64 {
    5.0
}

/// `[pipeline]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// `lossless` or `latest`.
    #[serde(default)]
    pub policy: QueuePolicy,
    /// Playback rate in Hz; 0 plays as fast as possible.
    #[serde(default = "default_rate")]
    pub rate_hz: Spanned<f64>,
    /// Capacity of lossless queues.
    #[serde(default = "default_capacity")]
    pub capacity: usize,
    /// Stop after this many frames in total.
    pub max_frames: Option<u64>,
    /// Progress line every second on stderr.
    #[serde(default = "default_true")]
    pub progress: bool,
}

impl Default for PipelineSpec {
    fn default() -> Self {
        Self {
            policy: QueuePolicy::Lossless,
            rate_hz: default_rate(),
            capacity: default_capacity(),
            max_frames: None,
            progress: true,
        }
    }
}

fn default_rate() -> Spanned<f64> {
    Spanned::new(0..0, 30.0)
}
fn default_capacity() -> usize {
    4
}
fn default_true() -> bool {
    true
}

/// `[[tracker]]`: one filter stage.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackerSpec {
    /// Stage name (default: the filter name).
    pub name: Option<String>,
    /// `rfpf`, `grad`, `sir` or `mcl`.
    pub filter: FilterKind,
    /// Particles per filter.
    #[serde(default = "default_particles")]
    pub particles: Spanned<usize>,
    /// Observation modalities, e.g. `["depth"]` or `["depth", "edge"]`.
    #[serde(default = "default_modalities")]
    pub modalities: Spanned<Vec<String>>,
    /// Initial pose noise, e.g. `"20mm,10deg"`.
    pub init_noise: Option<Spanned<String>>,
    /// One joint filter over all objects.
    #[serde(default)]
    pub joint: bool,
    /// `random_walk` or `constant_velocity`.
    pub motion: Option<Spanned<String>>,
    /// Object ids to track (default: every object with ground truth in the first frame).
    pub objects: Option<Vec<u32>>,
    /// Gradient step η of rfpf / grad.
    pub eta: Option<f64>,
}

fn default_particles() -> Spanned<usize> {
    Spanned::new(0..0, 100)
}
fn default_modalities() -> Spanned<Vec<String>> {
    Spanned::new(0..0, vec!["depth".into()])
}

/// `[sinks]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSpec {
    /// JSON lines: `"-"` (stdout), a file, or `"udp://host:port"`.
    pub jsonl: Option<String>,
    /// BOP19 results CSV per tracker (`{tracker}` is replaced by the name).
    pub csv: Option<String>,
    /// Run summary as JSON.
    pub summary_json: Option<PathBuf>,
    /// rerun output.
    pub rerun: Option<RerunSpec>,
}

/// `[control_loop]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlLoopSpec {
    /// Loop frequency (Hz).
    #[serde(default = "default_loop_hz")]
    pub hz: f64,
    /// Object to control on (default: the first tracked object).
    pub obj_id: Option<u32>,
}

fn default_loop_hz() -> f64 {
    500.0
}

// ---------------------------------------------------------------------------------------------
// Loading: overrides, parsing, error locations

/// A launch file read, overridden and validated.
#[derive(Clone, Debug)]
pub struct Launch {
    /// The file it came from.
    pub path: PathBuf,
    /// Its content after `--set` overrides.
    pub text: String,
    /// The parsed schema.
    pub file: LaunchFile,
    /// The overrides applied, as `key=value`.
    pub overrides: Vec<String>,
}

/// Read `path`, apply `overrides` (`key=value`), parse and validate.
pub fn load(path: &Path, overrides: &[String]) -> Result<Launch> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    load_str(path, &text, overrides)
}

/// As [`load`], from text already read (`path` names it in errors).
pub fn load_str(path: &Path, text: &str, overrides: &[String]) -> Result<Launch> {
    let text = apply_overrides(path, text, overrides)?;
    let file: LaunchFile = toml::from_str(&text).map_err(|e| {
        let at = e.span().map(|s| s.start);
        located(path, &text, at, overrides, e.message())
    })?;
    let launch = Launch {
        path: path.to_path_buf(),
        text,
        file,
        overrides: overrides.to_vec(),
    };
    launch.validate()?;
    Ok(launch)
}

/// Apply `key=value` overrides to the document, keeping its layout (and so its line numbers).
fn apply_overrides(path: &Path, text: &str, overrides: &[String]) -> Result<String> {
    if overrides.is_empty() {
        return Ok(text.to_string());
    }
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        let at = e.span().map(|s| s.start);
        located(path, text, at, &[], e.message())
    })?;
    for o in overrides {
        let (key, value) = o
            .split_once('=')
            .ok_or_else(|| Error::param("--set", o, "expected KEY=VALUE"))?;
        let value: toml_edit::Value = value
            .trim()
            .parse()
            .unwrap_or_else(|_| toml_edit::Value::from(value.trim()));
        set_key(&mut doc, key.trim(), value).map_err(|why| Error::param("--set", o, why))?;
    }
    Ok(doc.to_string())
}

fn set_key(
    doc: &mut toml_edit::DocumentMut,
    key: &str,
    value: toml_edit::Value,
) -> std::result::Result<(), String> {
    let key = normalize_key(key);
    let parts: Vec<&str> = key.split('.').collect();
    let (last, path) = parts.split_last().ok_or("empty key")?;
    let mut table: &mut dyn toml_edit::TableLike = doc.as_table_mut();
    let mut i = 0;
    while i < path.len() {
        let p = path[i];
        if !table.contains_key(p) {
            table.insert(p, toml_edit::Item::Table(toml_edit::Table::new()));
        }
        let item = table.get_mut(p).ok_or_else(|| format!("`{p}` missing"))?;
        if let toml_edit::Item::ArrayOfTables(a) = item {
            let idx: usize = path
                .get(i + 1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| {
                    format!("`{p}` is an array of tables: give an index, e.g. {p}.0.KEY")
                })?;
            let len = a.len();
            table = a
                .get_mut(idx)
                .ok_or_else(|| format!("`{p}` has {len} entries, no index {idx}"))?;
            i += 2;
        } else {
            table = item
                .as_table_like_mut()
                .ok_or_else(|| format!("`{p}` is not a table"))?;
            i += 1;
        }
    }
    table.insert(last, toml_edit::Item::Value(value));
    Ok(())
}

/// An error at byte `at` of `text`: `FILE: line N, key a.b: msg`.
fn located(path: &Path, text: &str, at: Option<usize>, overrides: &[String], msg: &str) -> Error {
    let Some(at) = at else {
        return Error::format(path, msg.trim());
    };
    let line = text[..at.min(text.len())].matches('\n').count() + 1;
    let key = key_at_line(text, line);
    let from_set = overrides
        .iter()
        .find(|o| o.split('=').next().map(normalize_key).as_deref() == Some(&normalize_key(&key)))
        .map(|o| format!(" (from --set {o})"))
        .unwrap_or_default();
    Error::format(
        path,
        format!("line {line}, key {key}{from_set}: {}", msg.trim()),
    )
}

/// `tracker[1].particles` and `tracker.1.particles` compare equal.
fn normalize_key(k: &str) -> String {
    k.replace('[', ".").replace(']', "")
}

/// The dotted key defined on `line` (1-based): the enclosing `[table]` / `[[array]]` header plus
/// the key before `=` on that line (or the header itself).
pub fn key_at_line(text: &str, line: usize) -> String {
    let mut table = String::new();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for (i, raw) in text.lines().enumerate().take(line) {
        let l = raw.trim();
        if let Some(name) = l.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_string();
            let n = counts
                .entry(name.clone())
                .and_modify(|c| *c += 1)
                .or_insert(0);
            table = format!("{name}[{n}]");
        } else if let Some(name) = l.strip_prefix('[').and_then(|r| r.split(']').next()) {
            table = name.trim().to_string();
        } else if i + 1 == line {
            if let Some((k, _)) = l.split_once('=') {
                let k = k.trim().trim_matches('"');
                return if table.is_empty() {
                    k.to_string()
                } else {
                    format!("{table}.{k}")
                };
            }
        }
    }
    if table.is_empty() {
        "(top level)".into()
    } else {
        table
    }
}

impl Launch {
    /// An error about the value at `span` of the launch text.
    fn error_at<T>(&self, span: &Spanned<T>, msg: impl std::fmt::Display) -> Error {
        let at = (span.span().end > 0).then_some(span.span().start);
        located(
            &self.path,
            &self.text,
            at,
            &self.overrides,
            &msg.to_string(),
        )
    }

    /// Check values serde cannot: modalities, init noise, motion, rates, source combinations.
    pub fn validate(&self) -> Result<()> {
        let f = &self.file;
        let rate = &f.pipeline.rate_hz;
        if !(rate.get_ref().is_finite() && *rate.get_ref() >= 0.0) {
            return Err(self.error_at(rate, "rate_hz must be ≥ 0 (0 = as fast as possible)"));
        }
        let mut names = BTreeSet::new();
        for t in &f.tracker {
            self.tracker_config(t)?;
            if !names.insert(tracker_name(t)) {
                let msg = format!(
                    "duplicate tracker name `{}`: give each [[tracker]] a name",
                    tracker_name(t)
                );
                return Err(Error::format(&self.path, msg));
            }
        }
        if let Some(s) = &f.source {
            self.validate_source(s)?;
        }
        self.validate_run()
    }

    fn validate_run(&self) -> Result<()> {
        let f = &self.file;
        let need =
            |what: &str| Error::format(&self.path, format!("run = {:?} needs {what}", f.run));
        match f.run {
            RunKind::Track | RunKind::ControlLoop if f.source.is_none() => {
                Err(need("a [source] table"))
            }
            RunKind::Track | RunKind::ControlLoop if f.tracker.is_empty() => {
                Err(need("at least one [[tracker]]"))
            }
            RunKind::ControlLoop if f.control_loop.is_none() => Err(need("a [control_loop] table")),
            RunKind::Localization if f.localization.is_none() => {
                Err(need("a [localization] table"))
            }
            _ => Ok(()),
        }
    }

    fn validate_source(&self, s: &SourceSpec) -> Result<()> {
        for sc in &s.scenes {
            parse_scene(sc.get_ref()).map_err(|why| self.error_at(sc, why))?;
        }
        let missing = |k: &str| {
            Error::format(
                &self.path,
                format!("[source] kind = {:?} needs `{k}`", s.kind),
            )
        };
        match s.kind {
            SourceKind::Bop if s.dataset.is_none() => Err(missing("dataset")),
            SourceKind::Bop if s.scenes.is_empty() && s.synth.is_none() => Err(missing("scenes")),
            SourceKind::Dir if s.path.is_none() => Err(missing("path")),
            SourceKind::Synth if s.synth.is_none() => Err(missing("a [source.synth] table")),
            _ => match &s.synth {
                Some(spec) => synth_config(Path::new("."), spec, 0).map(drop),
                None => Ok(()),
            },
        }
    }

    /// The tracker configuration of `[[tracker]]` `t`, values checked.
    pub fn tracker_config(&self, t: &TrackerSpec) -> Result<TrackerConfig> {
        let modalities = parse_modalities(&t.modalities.get_ref().join(","))
            .map_err(|e| self.error_at(&t.modalities, e))?;
        let init_noise = match &t.init_noise {
            Some(s) => Some(
                s.get_ref()
                    .parse::<InitNoise>()
                    .map_err(|e| self.error_at(s, e))?,
            ),
            None => None,
        };
        let motion = match t.motion.as_ref() {
            None => MotionModel::RandomWalk,
            Some(m) => m.get_ref().parse().map_err(|e| self.error_at(m, e))?,
        };
        if *t.particles.get_ref() == 0 {
            return Err(self.error_at(&t.particles, "need at least one particle"));
        }
        let mut c = TrackerConfig::new(t.filter, *t.particles.get_ref(), self.file.seed)
            .with_init_noise(init_noise);
        c.modalities = modalities;
        c.joint = t.joint;
        c.motion = motion;
        if let Some(eta) = t.eta {
            c.eta = eta;
        }
        Ok(c)
    }
}

/// `"test/49"` → `("test", 49)`.
pub fn parse_scene(s: &str) -> std::result::Result<(String, u32), String> {
    let (split, id) = s
        .rsplit_once('/')
        .ok_or_else(|| format!("scene `{s}`: expected \"split/scene_id\", e.g. \"test/49\""))?;
    let id = id
        .parse()
        .map_err(|_| format!("scene `{s}`: `{id}` is not a scene id"))?;
    Ok((split.to_string(), id))
}

fn tracker_name(t: &TrackerSpec) -> String {
    t.name
        .clone()
        .unwrap_or_else(|| t.filter.name().to_string())
}

// ---------------------------------------------------------------------------------------------
// Running

/// The demo launch file, embedded so that the main job runs from any working directory.
pub const DEMO: &str = include_str!("../../launch/demo.toml");

/// Run a launch file (what `hdpf launch` does): prints progress and the summary.
pub fn run(args: &LaunchArgs) -> Result<()> {
    execute(load(&args.file, &args.set)?)
}

/// Run the embedded demo (`launch/demo.toml`): what `hdpf` with no subcommand does.
pub fn run_demo() -> Result<()> {
    execute(load_str(Path::new("launch/demo.toml"), DEMO, &[])?)
}

fn execute(launch: Launch) -> Result<()> {
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
    let spec = f
        .source
        .as_ref()
        .ok_or_else(|| Error::format(&launch.path, "no [source] table"))?;
    prepare_dataset(launch, spec)?;
    let (source, meshes, timeline) = open_source(launch, spec)?;
    let rate = *f.pipeline.rate_hz.get_ref();
    let config = PipelineConfig {
        policy: f.pipeline.policy,
        capacity: f.pipeline.capacity,
        rate_hz: (rate > 0.0).then_some(rate),
        max_frames: f.pipeline.max_frames,
        progress: f.pipeline.progress,
    };
    let mut p = Pipeline::new(config, source);
    let meshes = Arc::new(meshes);
    for t in &f.tracker {
        let cfg = launch.tracker_config(t)?;
        let proc = TrackerProcessor::new(tracker_name(t), cfg, meshes.clone(), t.objects.clone());
        p.add_tracker(Box::new(proc));
    }
    p.set_models(model_points(&meshes));
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

/// Render the synthetic sequence of `[source.synth]` if the dataset does not exist yet.
fn prepare_dataset(launch: &Launch, spec: &SourceSpec) -> Result<()> {
    let (Some(synth), Some(root), SourceKind::Bop) = (&spec.synth, &spec.dataset, spec.kind) else {
        return Ok(());
    };
    if root.exists() {
        return Ok(());
    }
    crate::runtime::pipeline::synthetic::render_dataset(root, synth, launch.file.seed)
}

type Opened = (Box<dyn Source>, MeshLibrary, GtTimeline);

fn open_source(launch: &Launch, spec: &SourceSpec) -> Result<Opened> {
    let rate = *launch.file.pipeline.rate_hz.get_ref();
    match spec.kind {
        SourceKind::Bop => {
            let root = spec.dataset.clone().unwrap_or_default();
            let scenes = scene_list(spec, &root)?;
            let src =
                crate::runtime::pipeline::SequenceSource::open(&root, &scenes, spec.max_frames)?;
            let ds = BopDataset::open(&root)?;
            let timeline = GtTimeline::from_scenes(&ds, &scenes, spec.max_frames, rate)?;
            let meshes = load_meshes(&ds, &timeline.object_ids())?;
            Ok((Box::new(src), meshes, timeline))
        }
        SourceKind::Synth => {
            let spec = spec
                .synth
                .as_ref()
                .ok_or_else(|| Error::format(&launch.path, "no [source.synth]"))?;
            let root = spec_root(spec);
            let src = SynthSource::new(&synth_config(&root, spec, launch.file.seed)?)?;
            let frames = src
                .ground_truth()
                .into_iter()
                .map(|gt| gt.into_iter().map(|g| (g.obj_id, g.pose)).collect())
                .collect();
            let meshes = src.meshes();
            Ok((Box::new(src), meshes, GtTimeline::new(rate, frames)))
        }
        SourceKind::Dir => {
            let dir = spec.path.clone().unwrap_or_default();
            let idle = std::time::Duration::from_secs_f64(spec.idle_timeout_s.max(0.0));
            let src = crate::runtime::pipeline::DirectorySource::new(dir, spec.scene_id, idle);
            let meshes = match &spec.dataset {
                Some(root) => load_all_meshes(&BopDataset::open(root)?)?,
                None => MeshLibrary::new(),
            };
            Ok((Box::new(src), meshes, GtTimeline::default()))
        }
    }
}

/// Where a live synthetic source would write (it writes nothing).
fn spec_root(_spec: &SynthSpec) -> PathBuf {
    std::env::temp_dir().join("hdpf-synth-live")
}

/// The scenes of `[source]`, or every scene of a rendered synthetic dataset.
fn scene_list(spec: &SourceSpec, root: &Path) -> Result<Vec<(String, u32)>> {
    if !spec.scenes.is_empty() {
        return spec
            .scenes
            .iter()
            .map(|s| parse_scene(s.get_ref()).map_err(Error::Other))
            .collect();
    }
    crate::runtime::pipeline::synthetic::scenes_of(root)
}

fn load_meshes(ds: &BopDataset, ids: &[u32]) -> Result<MeshLibrary> {
    ids.iter()
        .map(|&id| Ok((id, Arc::new(ds.model(id)?))))
        .collect()
}

fn load_all_meshes(ds: &BopDataset) -> Result<MeshLibrary> {
    let ids: Vec<u32> = ds.models_info()?.keys().copied().collect();
    load_meshes(ds, &ids)
}

/// Up to 500 vertices per mesh, for the ADD column.
fn model_points(meshes: &MeshLibrary) -> ModelPoints {
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

fn sinks(
    launch: &Launch,
    meshes: &Arc<MeshLibrary>,
    clock: crate::runtime::pipeline::Clock,
) -> Result<Vec<Box<dyn Sink>>> {
    let s = &launch.file.sinks;
    let mut out: Vec<Box<dyn Sink>> = Vec::new();
    if let Some(target) = &s.jsonl {
        let target: JsonTarget = target.parse()?;
        create_parent(&target)?;
        out.push(Box::new(JsonLinesSink::open(&target, clock)?));
    }
    if let Some(csv) = &s.csv {
        out.push(Box::new(CsvSink::new(csv.clone())));
    }
    match &s.rerun {
        Some(_) if !cfg!(feature = "rerun") => eprintln!(
            "warning: {}: [sinks.rerun] skipped: hdpf was built without the `rerun` feature \
             (build with --features rerun)",
            launch.path.display()
        ),
        Some(r) => out.push(crate::app::viz::rerun_sink(
            r,
            meshes.clone(),
            model_points(meshes),
        )?),
        None => {}
    }
    Ok(out)
}

fn create_parent(t: &JsonTarget) -> Result<()> {
    if let JsonTarget::File(p) = t {
        if let Some(d) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
        }
    }
    Ok(())
}

/// Run a `track` launch: the pipeline to the end, the summary printed (and saved), the failure
/// returned after everything produced was flushed.
pub fn run_track(launch: &Launch) -> Result<RunSummary> {
    let built = build(launch)?;
    let outcome = built.pipeline.run();
    report(launch, &outcome.summary)?;
    outcome.into_result()
}

fn report(launch: &Launch, summary: &RunSummary) -> Result<()> {
    eprintln!("{summary}");
    if let Some(p) = &launch.file.sinks.summary_json {
        let json =
            serde_json::to_string_pretty(summary).map_err(|e| Error::Other(e.to_string()))?;
        create_parent(&JsonTarget::File(p.clone()))?;
        std::fs::write(p, json).map_err(|e| Error::io(p, e))?;
    }
    Ok(())
}

fn run_control_loop(launch: &Launch) -> Result<()> {
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
    println!("{}", line.to_json());
    outcome.into_result().map(drop)
}

fn run_localization(launch: &Launch) -> Result<()> {
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

fn scalar(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
