//! Sources and sinks as plug-ins: each kind owns its launch-file table (a serde struct that rejects
//! unknown keys), the checks serde cannot make, and how it opens. The application keeps one
//! registry line per kind (`app::launch::plugins`), so a new source or sink is one file plus
//! that line.

use crate::core::error::{Error, Result};
use crate::domains::pose::bop::BopDataset;
use crate::runtime::pipeline::control_loop::GtTimeline;
use crate::runtime::pipeline::message::Clock;
use crate::runtime::pipeline::sink::Sink;
use crate::runtime::pipeline::source::Source;
use crate::runtime::pipeline::summary::ModelPoints;
use crate::runtime::pipeline::tracking::MeshLibrary;
use std::ops::Range;
use std::sync::Arc;

/// A value of a launch table that is wrong: where (the byte span of the value in the launch
/// text, when known) and why. The launch loader turns it into `FILE: line N, key K: why`.
#[derive(Clone, Debug, PartialEq)]
pub struct SpecError {
    /// Byte span of the offending value in the launch text.
    pub span: Option<Range<usize>>,
    /// What is wrong with it.
    pub message: String,
}

impl SpecError {
    /// An error about the value at `span`.
    pub fn at<T>(value: &toml::Spanned<T>, message: impl Into<String>) -> Self {
        Self {
            span: Some(value.span()),
            message: message.into(),
        }
    }

    /// An error about the table as a whole.
    pub fn table(message: impl Into<String>) -> Self {
        Self {
            span: None,
            message: message.into(),
        }
    }
}

/// Run-wide values a source may use when it opens.
#[derive(Clone, Copy, Debug)]
pub struct SourceContext {
    /// The launch file's seed (synthetic sources).
    pub seed: u64,
    /// Playback rate in Hz (0: as fast as possible), for the ground-truth timeline.
    pub rate_hz: f64,
}

/// What opening a source gives: the stream, the meshes of its objects and the ground truth over
/// playback time (empty when the source has none).
pub struct OpenedSource {
    /// The frame stream.
    pub source: Box<dyn Source>,
    /// Meshes of the objects the trackers may be asked to follow.
    pub meshes: MeshLibrary,
    /// Ground truth over playback time, for a control loop's error.
    pub timeline: GtTimeline,
    /// The dataset's own evaluation points per object (BOP `models_points/`, as YCB-Video's
    /// `points.xyz`) where it ships them: the summary's ADD is measured on these, else on mesh
    /// vertices.
    pub eval_points: ModelPoints,
}

/// A `[source]` kind: its table (`kind = "…"` plus its own keys) parsed into `Self`.
pub trait SourcePlugin: Send + Sync + std::fmt::Debug {
    /// Checks serde cannot make (combinations, formats), at load time.
    fn check(&self) -> std::result::Result<(), SpecError>;
    /// Prepare what it needs (e.g. render a missing synthetic dataset) and open the stream.
    fn open(&self, ctx: &SourceContext) -> Result<OpenedSource>;
}

/// What a sink may use when it opens.
#[derive(Clone)]
pub struct SinkContext {
    /// The pipeline clock (timestamps).
    pub clock: Clock,
    /// Meshes of the tracked objects (viewers).
    pub meshes: Arc<MeshLibrary>,
    /// Model points per object (error columns).
    pub models: ModelPoints,
}

/// A `[sinks]` kind: the value of `sinks.KIND` (a string or a table) parsed into `Self`.
pub trait SinkPlugin: Send + Sync + std::fmt::Debug {
    /// Checks serde cannot make, at load time.
    fn check(&self) -> std::result::Result<(), SpecError> {
        Ok(())
    }
    /// Open the sink (create files, sockets, viewers); `None` when this build cannot offer it
    /// (a feature left out), after saying so on stderr.
    fn open(&self, ctx: &SinkContext) -> Result<Option<Box<dyn Sink>>>;
}

/// Meshes `ids` of the dataset `ds`.
pub fn load_meshes(ds: &BopDataset, ids: &[u32]) -> Result<MeshLibrary> {
    ids.iter()
        .map(|&id| Ok((id, Arc::new(ds.model(id)?))))
        .collect()
}

/// Every mesh of the dataset `ds`.
pub fn load_all_meshes(ds: &BopDataset) -> Result<MeshLibrary> {
    let ids: Vec<u32> = ds.models_info()?.keys().copied().collect();
    load_meshes(ds, &ids)
}

/// An error naming the `[source]` key a kind needs.
pub fn missing(kind: &str, key: &str) -> SpecError {
    SpecError::table(format!("[source] kind = \"{kind}\" needs `{key}`"))
}

impl From<SpecError> for Error {
    fn from(e: SpecError) -> Self {
        Error::Other(e.message)
    }
}
