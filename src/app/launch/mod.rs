//! Launch files: a pipeline (or a benchmark) written down as TOML, `hdpf launch FILE [--set k=v …]`.
//!
//! The schema is the serde structs below (every table rejects unknown keys). Errors name the file,
//! the line and the dotted key, e.g. `launch/demo.toml: line 14, key tracker[1].particles: invalid
//! type: string "many", expected usize`. `--set a.b=value` overrides a key before validation
//! (`tracker.1.particles=50` indexes `[[tracker]]` tables; values are TOML, bare words are strings).

use crate::core::error::{Error, Result};
use crate::core::filter::particles::BUFFERS;
use crate::core::filter::FilterKind;
use crate::domains::pose::tracker::{
    parse_modalities, InitNoise, RedetectConfig, TrackerConfig, Views,
};
use crate::runtime::pipeline::control_loop::{ControlLoopConfig, GtTimeline};
use crate::runtime::pipeline::tracking::{MeshLibrary, TrackerProcessor};
use crate::runtime::pipeline::{ModelPoints, Pipeline, PipelineConfig, QueuePolicy, RunSummary};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toml::Spanned;

mod overrides;
pub mod plugins;
mod run;

pub use crate::runtime::pipeline::source::bop::parse_scene;
pub use overrides::key_at_line;
use overrides::{apply_overrides, located};
pub use run::{build, run, run_demo, run_track, table_to_flags, Built, DEMO};

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

impl RunKind {
    /// The value of `run` in a launch file.
    pub fn name(self) -> &'static str {
        match self {
            RunKind::Track => "track",
            RunKind::ControlLoop => "control_loop",
            RunKind::Localization => "localization",
        }
    }
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
    /// Where frames come from: `kind` names the plug-in ([`plugins::SOURCES`]), which reads the
    /// rest of the table.
    pub source: Option<SourceHead>,
    /// Queues and playback.
    #[serde(default)]
    pub pipeline: PipelineSpec,
    /// One filter stage per `[[tracker]]`.
    #[serde(default)]
    pub tracker: Vec<TrackerSpec>,
    /// Outputs: each key names a sink plug-in ([`plugins::SINKS`]) that reads its value, plus
    /// `summary_json` (the run summary as JSON, written at the end).
    #[serde(default)]
    pub sinks: BTreeMap<String, Spanned<toml::Value>>,
    /// The control loop of `run = "control_loop"`.
    pub control_loop: Option<ControlLoopSpec>,
    /// Flags of `hdpf bench localization` for `run = "localization"` (key = flag without `--`).
    pub localization: Option<toml::Table>,
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
    /// End the run with an error after this many seconds without a frame from the source.
    pub stall_timeout_s: Option<Spanned<f64>>,
}

impl Default for PipelineSpec {
    fn default() -> Self {
        Self {
            policy: QueuePolicy::Lossless,
            rate_hz: default_rate(),
            capacity: default_capacity(),
            max_frames: None,
            progress: true,
            stall_timeout_s: None,
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

fn default_views() -> Views {
    crate::domains::pose::tracker::VIEWS
}

/// A launch file's `views`: `"off"`, `"contour"` or `"on"`, or a bool (`true` is `"on"`).
fn views_key<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Views, D::Error> {
    struct Key;
    impl serde::de::Visitor<'_> for Key {
        type Value = Views;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("views = \"off\", \"contour\" or \"on\" (or a bool)")
        }
        fn visit_bool<E: serde::de::Error>(self, v: bool) -> std::result::Result<Views, E> {
            Ok(if v { Views::On } else { Views::Off })
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Views, E> {
            v.parse().map_err(E::custom)
        }
    }
    d.deserialize_any(Key)
}

/// `[[tracker]]`: one filter stage.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackerSpec {
    /// Stage name (default: the filter name).
    pub name: Option<String>,
    /// A filter preset name: `rfpf`, `rfpf-newton`, `gn`, `grad`, `sir`, `mcl`, …
    pub filter: FilterKind,
    /// The filter preset's parameters that differ from its defaults, as `hdpf track --param`:
    /// e.g. `params = { inflation = 1.0 }` for `rfpf-newton` (README, "Filter parameters").
    pub params: Option<Spanned<toml::Table>>,
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
    /// `auto` (the default: the random walk on slow frames; on fast ones the damped constant
    /// velocity for rfpf-newton, both for the other filters), `random_walk`,
    /// `constant_velocity` or `best_of`.
    pub motion: Option<Spanned<String>>,
    /// The fraction of the last increment a constant-velocity prediction repeats (finite, ≥ 0;
    /// default the filter's own, [`crate::domains::pose::tracker::default_velocity_damping`]), as
    /// `hdpf track --velocity-damping`.
    pub velocity_damping: Option<Spanned<f64>>,
    /// Object ids to track (default: every object with ground truth in the first frame).
    pub objects: Option<Vec<u32>>,
    /// Gradient step η of rfpf / grad (finite, > 0).
    pub eta: Option<Spanned<f64>>,
    /// Re-detection after loss (default true, as `hdpf track --redetect`).
    #[serde(default = "default_true")]
    pub redetect: bool,
    /// The mean step after each correspondence round (default true, as `hdpf track --mean-step`).
    #[serde(default = "default_true")]
    pub mean_step: bool,
    /// Whether each object's depth term leaves out the readings other tracked objects explain
    /// (default true, as `hdpf track --ownership`).
    #[serde(default = "default_true")]
    pub ownership: bool,
    /// Which of the depth and region modalities' selections come from each object's sparse
    /// viewpoint model: `"off"`, `"contour"` or `"on"` (`true` / `false` read as `"on"` /
    /// `"off"`; default [`crate::domains::pose::tracker::VIEWS`]), as `hdpf track --views`.
    #[serde(default = "default_views", deserialize_with = "views_key")]
    pub views: Views,
    /// Correspondence rounds per fast frame, at most (1–20, default
    /// [`crate::domains::pose::tracker::DEFAULT_ROUNDS`], 8).
    pub rounds: Option<Spanned<usize>>,
    /// Rounds of a frame that move every particle (1–20, default
    /// [`crate::domains::pose::tracker::PARTICLE_ROUNDS`], 5), as `hdpf track --particle-rounds`.
    pub particle_rounds: Option<Spanned<usize>>,
    /// A cloud's update reads about 1/N of the correspondences (1–20, default the filter's own,
    /// [`crate::domains::pose::tracker::default_particle_stride`]), as `hdpf track
    /// --particle-stride`.
    pub particle_stride: Option<Spanned<usize>>,
    /// Correspondence rounds per slow frame (1–20, default
    /// [`crate::domains::pose::tracker::SLOW_ROUNDS`], 2).
    pub slow_rounds: Option<Spanned<usize>>,
    /// The pace threshold, millimetres of surface motion per frame (default 6; `0`: every frame
    /// is fast), as `hdpf track --fast-motion-mm`.
    pub fast_motion_mm: Option<Spanned<f64>>,
}

fn default_particles() -> Spanned<usize> {
    Spanned::new(0..0, 100)
}
/// The modalities of [`TrackerConfig::default`] by name: a `[[tracker]]` table without
/// `modalities` gets what `hdpf track` does.
fn default_modalities() -> Spanned<Vec<String>> {
    let names = (TrackerConfig::default().modalities.iter())
        .map(|m| m.spec().name().to_string())
        .collect();
    Spanned::new(0..0, names)
}

/// What the launch schema reads of `[source]`: the kind. The kind's plug-in parses the whole
/// table (and rejects keys it does not know).
#[derive(Clone, Debug, Deserialize)]
pub struct SourceHead {
    /// `bop`, `dir`, `synth` or `mcap`.
    pub kind: Spanned<String>,
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

/// The fastest control loop a launch file may ask for (Hz): a period of 1 µs, beyond which the
/// loop's sleep would round to nothing.
const MAX_LOOP_HZ: f64 = 1e6;

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

impl Launch {
    /// `sinks.summary_json`: where the run summary goes, if anywhere.
    pub fn summary_path(&self) -> Result<Option<PathBuf>> {
        let Some(v) = self.file.sinks.get(plugins::SUMMARY_KEY) else {
            return Ok(None);
        };
        match v.get_ref() {
            toml::Value::String(p) => Ok(Some(PathBuf::from(p))),
            _ => Err(self.error_at(v, "expected a file path (a string)")),
        }
    }

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
        if let Some(st) = f.pipeline.stall_timeout_s.as_ref() {
            if !(st.get_ref().is_finite() && *st.get_ref() > 0.0 && *st.get_ref() < 1e9) {
                let why = format!("stall_timeout_s = {} must be > 0 seconds", st.get_ref());
                return Err(self.error_at(st, why));
            }
        }
        if let Some(hz) = f.control_loop.as_ref().map(|c| c.hz) {
            if !(hz > 0.0 && hz <= MAX_LOOP_HZ) {
                let why = format!("[control_loop] hz = {hz} must be > 0 and at most {MAX_LOOP_HZ}");
                return Err(Error::format(&self.path, why));
            }
        }
        let cap = f.pipeline.capacity;
        if cap == 0 {
            return Err(Error::format(&self.path, "[pipeline] capacity must be ≥ 1"));
        }
        let slot = std::mem::size_of::<crate::runtime::pipeline::message::FrameMsg>();
        crate::core::memory::check("[pipeline] capacity", cap, &[cap], slot)
            .map_err(|e| Error::format(&self.path, e.to_string()))?;
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
        plugins::source(self)?;
        plugins::sinks(self)?;
        self.summary_path()?;
        self.validate_run()
    }

    fn validate_run(&self) -> Result<()> {
        let f = &self.file;
        let run = f.run.name();
        let need = |what: &str| Error::format(&self.path, format!("run = \"{run}\" needs {what}"));
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
            None => TrackerConfig::default().motion,
            Some(m) => m.get_ref().parse().map_err(|e| self.error_at(m, e))?,
        };
        if *t.particles.get_ref() == 0 {
            return Err(self.error_at(&t.particles, "need at least one particle"));
        }
        // One object's filter (6 dimensions) must fit in memory, checked before anything runs.
        let n = *t.particles.get_ref();
        crate::core::memory::check("particles", n, &[n, 6, BUFFERS], 8)
            .map_err(|e| self.error_at(&t.particles, e))?;
        let mut c = TrackerConfig::new(t.filter, *t.particles.get_ref(), self.file.seed)
            .with_init_noise(init_noise);
        if let Some(p) = &t.params {
            c = (c.with_filter_params(p.get_ref().clone())).map_err(|e| self.error_at(p, e))?;
            let step = ["eta", "gamma"]
                .iter()
                .find(|k| p.get_ref().contains_key(**k));
            if let (Some(eta), Some(key)) = (&t.eta, step) {
                let why = format!("params.{key} sets the filter's step too: give one of them");
                return Err(self.error_at(eta, why));
            }
        }
        c.modalities = modalities;
        c.joint = t.joint;
        c.motion = motion;
        if let Some(d) = &t.velocity_damping {
            c = (c.with_velocity_damping(Some(*d.get_ref()))).map_err(|e| self.error_at(d, e))?;
        }
        if let Some(eta) = &t.eta {
            if !(eta.get_ref().is_finite() && *eta.get_ref() > 0.0) {
                let why = format!("eta = {} must be finite and > 0", eta.get_ref());
                return Err(self.error_at(eta, why));
            }
            c.eta = *eta.get_ref();
        }
        c.redetect = t.redetect.then(RedetectConfig::default);
        c.mean_step = t.mean_step;
        c.ownership = t.ownership;
        c.views = t.views;
        if let Some(r) = &t.rounds {
            c = c
                .with_rounds(*r.get_ref())
                .map_err(|e| self.error_at(r, e))?;
        }
        if let Some(r) = &t.particle_rounds {
            c = (c.with_particle_rounds(*r.get_ref())).map_err(|e| self.error_at(r, e))?;
        }
        if let Some(r) = &t.particle_stride {
            c = (c.with_particle_stride(*r.get_ref())).map_err(|e| self.error_at(r, e))?;
        }
        if let Some(r) = &t.slow_rounds {
            let fast_motion = c.fast_motion;
            c = (c.with_pace(*r.get_ref(), fast_motion)).map_err(|e| self.error_at(r, e))?;
        }
        if let Some(mm) = &t.fast_motion_mm {
            let slow_rounds = c.slow_rounds;
            c = (c.with_pace_mm(slow_rounds, *mm.get_ref())).map_err(|e| self.error_at(mm, e))?;
        }
        Ok(c)
    }
}

fn tracker_name(t: &TrackerSpec) -> String {
    t.name
        .clone()
        .unwrap_or_else(|| t.filter.name().to_string())
}
