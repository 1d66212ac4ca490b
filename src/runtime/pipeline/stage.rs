//! The stage threads: source (pacing, capture stamps), decode, filter (one per tracker) and sinks,
//! and the shared state through which they stop together.
//!
//! Shutdown: the source stops at end of stream, on Ctrl-C or when a stage has failed; each stage
//! then drains what is queued and ends when its input closes, so every result produced is flushed.
//!
//! Faults (each leaves every result produced so far on disk, and the run summary says what happened):
//! * a **stage that fails or panics** (a model that panics inside a filter, a sink that panics) ends
//!   the run with an error naming the stage, the frame and the panic message;
//! * a **sink that fails** ends the run ([`SinkFailure::EndRun`], files: a full or unwritable disk) or
//!   is dropped while the run goes on ([`SinkFailure::Drop`], viewers and network peers), listed in the
//!   summary's `dropped_sinks`;
//! * a **source that stalls** (no frame for `stall_timeout`) ends the run with an error saying so;
//! * **Ctrl-C** stops the source; queued frames are processed and every sink is finished.

use crate::core::error::{Error, Result};
use crate::domains::pose::bop::decode_frame;
use crate::domains::pose::frame::RgbdFrame;
use crate::runtime::pipeline::control::{ControlHandle, Published};
use crate::runtime::pipeline::message::{
    Clock, EstimateMsg, FrameData, FrameMsg, SinkMsg, SkippedFrame,
};
use crate::runtime::pipeline::processor::{FrameInput, FrameProcessor};
use crate::runtime::pipeline::queue::{Broadcast, QueueReceiver, QueueSender};
use crate::runtime::pipeline::sink::{Sink, SinkFailure};
use crate::runtime::pipeline::source::{Poll, Source};
use crate::runtime::pipeline::summary::SummaryCollector;
use crossbeam_channel::{Receiver, Sender};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a live source waits before polling again.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

static CTRL_C: AtomicBool = AtomicBool::new(false);

/// Install a Ctrl-C handler that asks every running pipeline to stop (idempotent).
pub fn install_ctrlc() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Another handler may already be installed by the host program; then it decides.
        let _ = ctrlc::set_handler(|| CTRL_C.store(true, Ordering::SeqCst));
    });
}

/// Whether Ctrl-C was pressed since [`install_ctrlc`].
pub fn ctrlc_requested() -> bool {
    CTRL_C.load(Ordering::SeqCst)
}

/// State shared by all stages of one run.
#[derive(Clone)]
pub struct Shared {
    /// The run's clock.
    pub clock: Clock,
    /// Set to stop the source (user request or failure).
    pub stop: Arc<AtomicBool>,
    /// The first stage failure.
    pub failure: Arc<Mutex<Option<Error>>>,
    /// Frames emitted by the source.
    pub emitted: Arc<AtomicU64>,
    /// Sinks dropped after a failure while the run went on, with the reason.
    pub dropped_sinks: Arc<Mutex<Vec<String>>>,
}

impl Shared {
    /// Fresh state on `clock`.
    pub fn new(clock: Clock) -> Self {
        Self {
            clock,
            stop: Arc::new(AtomicBool::new(false)),
            failure: Arc::new(Mutex::new(None)),
            emitted: Arc::new(AtomicU64::new(0)),
            dropped_sinks: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Record a failure (the first one wins) and stop the run.
    pub fn fail(&self, e: Error) {
        if let Ok(mut slot) = self.failure.lock() {
            slot.get_or_insert(e);
        }
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Whether the source should stop.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || ctrlc_requested()
    }
}

/// Stage error naming the stage and frame.
pub fn stage_error(stage: &str, frame: i64, e: impl std::fmt::Display) -> Error {
    Error::Stage {
        stage: stage.to_string(),
        frame,
        msg: e.to_string(),
    }
}

/// Source stage settings.
#[derive(Clone, Copy, Debug)]
pub struct Playback {
    /// Frames per second, or `None` for as fast as possible.
    pub rate_hz: Option<f64>,
    /// Stop after this many frames.
    pub max_frames: Option<u64>,
    /// End the run with an error when the source yields no frame for this long.
    pub stall_timeout: Option<Duration>,
}

/// Run the source: pace, stamp and number frames, until end of stream or stop.
pub fn run_source(
    mut source: Box<dyn Source>,
    out: QueueSender<FrameMsg>,
    play: Playback,
    sh: &Shared,
) {
    let mut seq = 0u64;
    let mut last_im = -1i64;
    let mut last_frame = std::time::Instant::now();
    while !sh.stopping() && play.max_frames.is_none_or(|m| seq < m) {
        let frame = match source.poll() {
            Ok(Poll::Frame(f)) => f,
            Ok(Poll::Pending) => {
                if let Some(limit) = play.stall_timeout.filter(|&l| last_frame.elapsed() > l) {
                    let why = format!(
                        "stalled: no frame for {:.1} s (pipeline.stall_timeout_s)",
                        limit.as_secs_f64()
                    );
                    return sh.fail(stage_error("source", last_im + 1, why));
                }
                std::thread::sleep(POLL_INTERVAL);
                continue;
            }
            Ok(Poll::End) => break,
            Err(e) => return sh.fail(stage_error("source", last_im + 1, e)),
        };
        if let Some(rate) = play.rate_hz {
            sleep_until(sh.clock.instant(seq as f64 / rate));
        }
        last_im = i64::from(frame.im_id);
        last_frame = std::time::Instant::now();
        let msg = FrameMsg {
            seq,
            scene_id: frame.scene_id,
            im_id: frame.im_id,
            capture: sh.clock.now(),
            gt: frame.gt,
            data: frame.data,
        };
        if out.send(msg).is_err() {
            break;
        }
        seq += 1;
        sh.emitted.store(seq, Ordering::Relaxed);
    }
}

fn sleep_until(t: std::time::Instant) {
    let now = std::time::Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// Decode an encoded frame: RGB and depth PNGs, checked against the camera resolution.
pub fn decode(msg: &FrameMsg) -> Result<Arc<RgbdFrame>> {
    match &msg.data {
        FrameData::Decoded(f) => Ok(f.clone()),
        FrameData::Encoded(e) => {
            let paths = (e.rgb.as_path(), e.depth.as_path());
            Ok(Arc::new(decode_frame(msg.im_id, paths, &e.camera)?))
        }
        FrameData::Undecodable(why) => Err(crate::core::error::Error::Other(why.to_string())),
    }
}

/// Run the decode stage: decode each frame, skip (and report) frames that fail, fan out the rest.
pub fn run_decode(
    input: QueueReceiver<FrameMsg>,
    mut out: Broadcast<FrameMsg>,
    sink: Sender<SinkMsg>,
    frames_to_sink: bool,
) {
    while let Some(m) = input.recv() {
        let frame = match guarded(|| decode(&m)) {
            Ok(f) => f,
            Err(e) => {
                let skipped = SkippedFrame {
                    stage: "decode".into(),
                    seq: m.seq,
                    im_id: m.im_id,
                    reason: e.to_string(),
                };
                let _ = sink.send(SinkMsg::Skipped(skipped));
                continue;
            }
        };
        let decoded = FrameMsg {
            data: FrameData::Decoded(frame),
            ..m
        };
        if frames_to_sink {
            let _ = sink.send(SinkMsg::Frame(decoded.clone()));
        }
        if out.send(decoded).is_err() {
            break;
        }
    }
}

/// Run one tracker: process each frame, publish to the control handle and the sinks.
pub fn run_filter(
    mut proc: Box<dyn FrameProcessor>,
    input: QueueReceiver<FrameMsg>,
    sink: Sender<SinkMsg>,
    handle: Option<ControlHandle>,
    sh: &Shared,
) {
    let stage = format!("filter:{}", proc.name());
    while let Some(m) = input.recv() {
        let est = match guarded(|| process_one(proc.as_mut(), &m, sh)) {
            Ok(est) => est,
            Err(e) => return sh.fail(stage_error(&stage, i64::from(m.im_id), e)),
        };
        if let Some(h) = &handle {
            h.publish(Published::from(&est));
        }
        if sink.send(SinkMsg::Estimate(Box::new(est))).is_err() {
            break;
        }
    }
}

/// Runs `f`, turning a panic into an error carrying the panic message, so that a panicking model
/// or sink ends the run like a failing one (named stage and frame, results kept) instead of
/// silently killing its thread.
pub fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a non-text panic payload".into());
        Err(Error::Other(format!("panicked: {msg}")))
    })
}

fn process_one(proc: &mut dyn FrameProcessor, m: &FrameMsg, sh: &Shared) -> Result<EstimateMsg> {
    let frame = m
        .decoded()
        .ok_or_else(|| Error::Other("frame reached the filter undecoded".into()))?;
    let start = sh.clock.now();
    let input = FrameInput {
        seq: m.seq,
        scene_id: m.scene_id,
        capture: m.capture,
        frame,
        gt: &m.gt,
    };
    let objects = proc.process(&input)?;
    let publish = sh.clock.now();
    Ok(EstimateMsg {
        tracker: proc.name().to_string(),
        seq: m.seq,
        scene_id: m.scene_id,
        im_id: m.im_id,
        capture: m.capture,
        stamp: frame.stamp,
        publish,
        process_seconds: publish - start,
        objects,
        gt: m.gt.clone(),
    })
}

/// A progress callback, called about once a second by the sink stage.
pub type Progress = Box<dyn FnMut(&SummaryCollector) + Send>;

/// Run the sinks until every producer has gone; returns the summary collector.
///
/// A failing sink ends the run or is dropped ([`Sink::on_failure`]); the other sinks keep receiving
/// everything already produced.
pub fn run_sinks(
    rx: Receiver<SinkMsg>,
    mut sinks: Vec<Box<dyn Sink>>,
    mut summary: SummaryCollector,
    progress: Option<Progress>,
    sh: &Shared,
) -> SummaryCollector {
    let mut progress = progress;
    let mut last = std::time::Instant::now();
    for msg in rx.iter() {
        match &msg {
            SinkMsg::Estimate(m) => summary.add_estimate(m),
            SinkMsg::Skipped(s) => summary.add_skipped(s),
            SinkMsg::Frame(_) => {}
        }
        sinks.retain_mut(|s| deliver(s.as_mut(), &msg, sh));
        if let Some(p) = progress
            .as_mut()
            .filter(|_| last.elapsed() > Duration::from_secs(1))
        {
            p(&summary);
            last = std::time::Instant::now();
        }
    }
    for s in &mut sinks {
        if let Err(e) = s.finish() {
            sh.fail(stage_error(&format!("sink:{}", s.name()), -1, e));
        }
    }
    summary
}

fn deliver(s: &mut dyn Sink, msg: &SinkMsg, sh: &Shared) -> bool {
    let frame = match msg {
        SinkMsg::Estimate(m) => i64::from(m.im_id),
        SinkMsg::Skipped(k) => i64::from(k.im_id),
        SinkMsg::Frame(f) => i64::from(f.im_id),
    };
    let Err(e) = guarded(|| s.handle(msg)) else {
        return true;
    };
    let e = stage_error(&format!("sink:{}", s.name()), frame, e);
    match s.on_failure() {
        SinkFailure::EndRun => sh.fail(e),
        SinkFailure::Drop => {
            eprintln!("warning: {e}; the run goes on without this sink");
            if let Ok(mut d) = sh.dropped_sinks.lock() {
                d.push(e.to_string());
            }
        }
    }
    false
}
