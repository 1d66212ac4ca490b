//! The streaming pipeline: a source, a decode stage, one filter stage per tracker and a sink stage,
//! each on its own thread, connected by bounded crossbeam queues.
//!
//! ```text
//! source ──q──▶ decode ──q──▶ filter:rfpf ──┐
//!   (pacing,      (PNG →  └─q──▶ filter:sir ──┼──▶ sinks (JSON lines, CSV, rerun, summary)
//!    capture t)    images)                    └──▶ control handle (latest estimate, lock-free)
//! ```
//! Queues `q` follow the run's [`QueuePolicy`]: `lossless` blocks and processes every frame exactly
//! once; `latest` keeps one frame per stage and counts the drops. The sink queue is always lossless.
//!
//! ```no_run
//! # use hdpf::runtime::pipeline::*;
//! # fn demo(source: Box<dyn Source>, tracker: Box<dyn FrameProcessor>) -> hdpf::Result<()> {
//! let mut p = Pipeline::new(PipelineConfig::default(), source);
//! p.add_tracker(tracker);
//! let handle = p.control_handle();          // poll handle.latest() from a control thread
//! let summary = p.run().into_result()?;
//! println!("{summary}");
//! # Ok(()) }
//! ```

pub mod control;
pub mod control_loop;
pub mod message;
pub mod plugin;
pub mod processor;
pub mod queue;
pub mod sink;
pub mod source;
pub mod stage;
pub mod summary;
pub mod tracking;

pub use control::{ControlHandle, ObjectState, Published};
pub use message::{
    Clock, EncodedFrame, EstimateMsg, FrameData, FrameMsg, ObjectEstimate, ParticleCloud, SinkMsg,
    SkippedFrame,
};
pub use processor::{FrameInput, FrameProcessor};
pub use queue::QueuePolicy;
pub use sink::{CsvSink, JsonLinesSink, JsonTarget, Sink, SinkFailure};
pub use source::{DirectorySource, Poll, SequenceSource, Source, SourceFrame, SynthSource};
pub use stage::{ctrlc_requested, install_ctrlc, Playback};
pub use summary::{ModelPoints, RunSummary, SummaryCollector, TrackerSummary};
pub use tracking::{MeshLibrary, TrackerProcessor};

use crate::core::error::{Error, Result};
use queue::queue;
use stage::Shared;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

/// Run-wide settings.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Queue policy between source, decode and filter stages.
    pub policy: QueuePolicy,
    /// Capacity of `lossless` queues.
    pub capacity: usize,
    /// Playback rate (Hz), `None` for as fast as possible.
    pub rate_hz: Option<f64>,
    /// Stop after this many frames.
    pub max_frames: Option<u64>,
    /// Print a progress line to stderr every second.
    pub progress: bool,
    /// End the run with an error when the source yields no frame for this long (`None`: wait).
    pub stall_timeout: Option<std::time::Duration>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            policy: QueuePolicy::Lossless,
            capacity: 4,
            rate_hz: Some(30.0),
            max_frames: None,
            progress: false,
            stall_timeout: None,
        }
    }
}

/// How a run ended: the summary of everything produced, and the failure if one stopped it.
pub struct RunOutcome {
    /// The summary (always complete up to the stop).
    pub summary: RunSummary,
    /// The first stage failure, naming stage and frame.
    pub error: Option<Error>,
}

impl RunOutcome {
    /// The summary, or the failure.
    pub fn into_result(self) -> Result<RunSummary> {
        self.error.map_or(Ok(self.summary), Err)
    }
}

/// A pipeline being assembled.
pub struct Pipeline {
    config: PipelineConfig,
    source: Box<dyn Source>,
    trackers: Vec<Box<dyn FrameProcessor>>,
    sinks: Vec<Box<dyn Sink>>,
    models: ModelPoints,
    handle: Option<(String, ControlHandle)>,
    shared: Shared,
}

impl Pipeline {
    /// A pipeline reading from `source`.
    pub fn new(config: PipelineConfig, source: Box<dyn Source>) -> Self {
        Self {
            config,
            source,
            trackers: Vec::new(),
            sinks: Vec::new(),
            models: ModelPoints::new(),
            handle: None,
            shared: Shared::new(Clock::new()),
        }
    }

    /// The run's clock (every timestamp is on it).
    pub fn clock(&self) -> Clock {
        self.shared.clock
    }

    /// Add a filter stage.
    pub fn add_tracker(&mut self, tracker: Box<dyn FrameProcessor>) {
        self.trackers.push(tracker);
    }

    /// The names of the trackers added so far, in order.
    pub fn tracker_names(&self) -> Vec<String> {
        self.trackers.iter().map(|t| t.name().to_string()).collect()
    }

    /// Add a sink.
    pub fn add_sink(&mut self, sink: Box<dyn Sink>) {
        self.sinks.push(sink);
    }

    /// Model points for the ADD column of the summary.
    pub fn set_models(&mut self, models: ModelPoints) {
        self.models = models;
    }

    /// A handle on the latest estimate of the first tracker added.
    pub fn control_handle(&mut self) -> ControlHandle {
        self.control_handle_for(None)
    }

    /// A handle on the latest estimate of tracker `name` (`None`: the first tracker).
    pub fn control_handle_for(&mut self, name: Option<&str>) -> ControlHandle {
        let h = ControlHandle::new(self.shared.clock);
        self.handle = Some((name.unwrap_or_default().to_string(), h.clone()));
        h
    }

    /// Ask a running pipeline to stop (as Ctrl-C does); returns a closure usable from any thread.
    pub fn stopper(&self) -> impl Fn() + Send + Sync + 'static {
        let stop = self.shared.stop.clone();
        move || stop.store(true, Ordering::SeqCst)
    }

    /// Run to the end of the stream, a stop request or a failure.
    pub fn run(self) -> RunOutcome {
        self.spawn().join()
    }

    /// Start every stage thread and return at once.
    pub fn spawn(self) -> Running {
        let Pipeline {
            config,
            source,
            trackers,
            sinks,
            models,
            handle,
            shared,
        } = self;
        let (sink_tx, sink_rx) = crossbeam_channel::bounded(256);
        let (src_tx, src_rx) = queue(config.policy, config.capacity);
        let mut dropped = vec![("decode".to_string(), src_rx.drop_counter())];
        let mut tracker_txs = Vec::new();
        let mut threads = Vec::new();
        let mut collector = SummaryCollector::new(models);
        let handle_name = handle.as_ref().map(|(n, _)| n.clone());
        for (i, t) in trackers.into_iter().enumerate() {
            let (tx, rx) = queue(config.policy, config.capacity);
            let name = t.name().to_string();
            collector.register(&name);
            dropped.push((format!("filter:{name}"), rx.drop_counter()));
            tracker_txs.push(tx);
            let wants = handle_name
                .as_deref()
                .is_some_and(|n| n == name || (n.is_empty() && i == 0));
            let h = handle.as_ref().filter(|_| wants).map(|(_, h)| h.clone());
            let (sink, sh) = (sink_tx.clone(), shared.clone());
            threads.push(spawn(&format!("filter:{name}"), move || {
                stage::run_filter(t, rx, sink, h, &sh)
            }));
        }
        let frames_to_sink = sinks.iter().any(|s| s.wants_frames());
        let sink = sink_tx.clone();
        let bc = queue::Broadcast::new(tracker_txs);
        threads.push(spawn("decode", move || {
            stage::run_decode(src_rx, bc, sink, frames_to_sink)
        }));
        drop(sink_tx);
        let play = Playback {
            rate_hz: config.rate_hz,
            max_frames: config.max_frames,
            stall_timeout: config.stall_timeout,
        };
        let sh = shared.clone();
        threads.push(spawn("source", move || {
            stage::run_source(source, src_tx, play, &sh)
        }));
        let progress = config.progress.then(|| progress_printer(shared.clone()));
        let sh = shared.clone();
        let sink_thread = std::thread::Builder::new()
            .name("sinks".into())
            .spawn(move || stage::run_sinks(sink_rx, sinks, collector, progress, &sh))
            .expect("spawning a thread");
        Running {
            config,
            shared,
            threads,
            sink_thread,
            dropped,
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .expect("spawning a thread")
}

fn progress_printer(sh: Shared) -> stage::Progress {
    Box::new(move |c: &SummaryCollector| {
        let per: Vec<String> = c
            .tracker_summaries()
            .iter()
            .map(|t| format!("{} {}", t.tracker, t.frames))
            .collect();
        eprintln!(
            "[{:7.2} s] source {} | {} | latency p50 {:.1} ms",
            sh.clock.now(),
            sh.emitted.load(Ordering::Relaxed),
            per.join(", "),
            c.latency_p50_ms()
        );
    })
}

/// A running pipeline.
pub struct Running {
    config: PipelineConfig,
    shared: Shared,
    threads: Vec<JoinHandle<()>>,
    sink_thread: JoinHandle<SummaryCollector>,
    dropped: Vec<(String, std::sync::Arc<std::sync::atomic::AtomicU64>)>,
}

impl Running {
    /// Ask the pipeline to stop; stages drain what is queued.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }

    /// Frames the source has emitted so far, and frames dropped so far over all `latest` queues.
    pub fn counters(&self) -> (u64, u64) {
        let dropped = self
            .dropped
            .iter()
            .map(|(_, c)| c.load(Ordering::Relaxed))
            .sum();
        (self.shared.emitted.load(Ordering::Relaxed), dropped)
    }

    /// Whether every stage has ended.
    pub fn is_finished(&self) -> bool {
        self.sink_thread.is_finished()
    }

    /// Wait for every stage to end and collect the outcome.
    pub fn join(self) -> RunOutcome {
        for t in self.threads {
            if t.join().is_err() {
                self.shared
                    .fail(Error::Other("a pipeline stage panicked".into()));
            }
        }
        let collector = self.sink_thread.join().unwrap_or_else(|_| {
            self.shared
                .fail(Error::Other("the sink stage panicked".into()));
            SummaryCollector::default()
        });
        let error = self.shared.failure.lock().ok().and_then(|mut e| e.take());
        let summary = RunSummary {
            policy: self.config.policy.name().to_string(),
            rate_hz: self.config.rate_hz,
            source_frames: self.shared.emitted.load(Ordering::Relaxed),
            dropped: self
                .dropped
                .iter()
                .map(|(n, c)| (n.clone(), c.load(Ordering::Relaxed)))
                .collect(),
            skipped: collector.skipped(),
            trackers: collector.tracker_summaries(),
            seconds: self.shared.clock.now(),
            interrupted: ctrlc_requested(),
            failure: error.as_ref().map(|e| e.to_string()),
            dropped_sinks: self
                .shared
                .dropped_sinks
                .lock()
                .map(|d| d.clone())
                .unwrap_or_default(),
        };
        RunOutcome { summary, error }
    }
}
