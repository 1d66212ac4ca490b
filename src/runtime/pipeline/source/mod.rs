//! Sources: what a source is ([`Source`]) and one file per kind — recorded BOP scenes ([`bop`]), a
//! scene directory still being written ([`dir`]), a synthetic sequence rendered live ([`synth`])
//! and a rosbag2 / MCAP recording ([`mcap`]). Each kind also owns its `[source]` launch table
//! (a [`crate::runtime::pipeline::plugin::SourcePlugin`]).
//!
//! A source only says which frame comes next; the source stage paces playback, stamps capture
//! times and numbers frames.

pub mod bop;
pub mod dir;
pub mod mcap;
pub mod synth;
#[cfg(feature = "zenoh")]
pub mod zenoh;

pub use bop::{BopSourceSpec, SequenceSource};
pub use dir::{DirSourceSpec, DirectorySource};
pub use mcap::{McapSource, McapSourceSpec};
pub use synth::{SynthSource, SynthSourceSpec};
#[cfg(feature = "zenoh")]
pub use zenoh::{ZenohSource, ZenohSourceSpec};

use crate::core::error::Result;
use crate::domains::pose::bop::GtPose;
use crate::runtime::pipeline::message::FrameData;
use std::sync::Arc;

/// A frame as a source produces it.
#[derive(Clone, Debug)]
pub struct SourceFrame {
    /// BOP scene id.
    pub scene_id: u32,
    /// BOP image id.
    pub im_id: u32,
    /// Ground truth, when known.
    pub gt: Arc<Vec<GtPose>>,
    /// The images.
    pub data: FrameData,
}

/// What a source has to offer right now.
#[derive(Debug)]
pub enum Poll {
    /// The next frame.
    Frame(SourceFrame),
    /// Nothing yet (live sources); ask again shortly.
    Pending,
    /// End of stream.
    End,
}

/// A stream of frames.
pub trait Source: Send {
    /// Name for messages.
    fn name(&self) -> String;
    /// The next frame, [`Poll::Pending`] if a live source has none yet, or [`Poll::End`].
    fn poll(&mut self) -> Result<Poll>;
    /// Number of frames, when known in advance.
    fn len_hint(&self) -> Option<usize> {
        None
    }
}
