//! Pairing of live image streams (the streaming twin of [`super::mcap_read`]'s pairing): colour
//! messages wait, in arrival order, for a depth message within the tolerance of their header stamp
//! and for a camera_info; our `BopFrame` record within the tolerance is attached when it has
//! arrived. A colour message is given up (counted unpaired) once a depth message newer than its
//! stamp + tolerance arrived without a match, or when the stream ends.
//!
//! The first pair is checked as a recording is: depth registered to colour (same optical frame and
//! size) and a camera_info without distortion of the images' size.
//!
//! At most [`WAITING`] messages of each kind wait (older ones are given up), and a stream that has
//! given up [`GIVE_UP`] colour or depth messages without ever pairing is an error naming the topic
//! that is silent: a misspelled topic holds bounded memory and says so, instead of growing until
//! the process is killed.

use super::images::ImageMsg;
use super::mcap_read::{check_info, check_registration, image_size, PairedFrame};
use super::ros_msgs::{BopFrame, CameraInfo};
use crate::core::error::{Error, Result};
use std::collections::VecDeque;
use std::path::PathBuf;

/// Messages of one kind that wait for their partners, at most: about 2 s of a 30 Hz camera.
pub const WAITING: usize = 64;

/// Colour or depth messages given up before the first pair at which the stream is an error.
pub const GIVE_UP: usize = 4 * WAITING;

/// Live pairing state.
#[derive(Debug)]
pub struct LivePairer {
    /// Names the stream in errors (`zenoh:tcp/…`).
    pub origin: PathBuf,
    /// Colour, depth and camera_info topics, for errors.
    pub topics: [String; 3],
    /// Largest |colour stamp − depth stamp| paired, ns.
    pub tolerance_ns: u64,
    colors: VecDeque<ImageMsg>,
    depths: VecDeque<ImageMsg>,
    bops: VecDeque<BopFrame>,
    info: Option<CameraInfo>,
    checked: bool,
    /// Colour messages given up.
    pub unpaired: usize,
    /// Depth messages given up unread (more than [`WAITING`] waiting).
    dropped_depths: usize,
}

impl LivePairer {
    /// Empty state for a stream named `origin` with `topics` (colour, depth, camera_info).
    pub fn new(origin: PathBuf, topics: [String; 3], tolerance_ns: u64) -> LivePairer {
        LivePairer {
            origin,
            topics,
            tolerance_ns,
            colors: VecDeque::new(),
            depths: VecDeque::new(),
            bops: VecDeque::new(),
            info: None,
            checked: false,
            unpaired: 0,
            dropped_depths: 0,
        }
    }

    /// A colour image arrived (the oldest waiting one is given up beyond [`WAITING`]).
    pub fn color(&mut self, m: ImageMsg) {
        self.unpaired += bounded_push(&mut self.colors, m);
    }

    /// A depth image arrived (the oldest waiting one is dropped beyond [`WAITING`]).
    pub fn depth(&mut self, m: ImageMsg) {
        self.dropped_depths += bounded_push(&mut self.depths, m);
    }

    /// A camera_info arrived (the latest one is used).
    pub fn info(&mut self, m: CameraInfo) {
        self.info = Some(m);
    }

    /// Our BopFrame record arrived.
    pub fn bop(&mut self, m: BopFrame) {
        bounded_push(&mut self.bops, m);
    }

    /// The error of a stream that gave up [`GIVE_UP`] colour or depth messages and never paired,
    /// naming the topic that stays silent.
    fn never_paired(&self) -> Option<Error> {
        if self.checked || self.unpaired.max(self.dropped_depths) < GIVE_UP {
            return None;
        }
        let msg = format!(
            "no frame after {} colour and {} depth messages given up: {}",
            self.unpaired,
            self.dropped_depths,
            self.silent_topic()
        );
        Some(Error::format(&self.origin, msg))
    }

    /// Which topic keeps frames from pairing, as far as what arrived tells: no camera_info, no
    /// colour, no depth, or no depth near a colour stamp.
    pub fn silent_topic(&self) -> String {
        let [ct, dt, it] = self.topics.each_ref().map(String::as_str);
        match (
            self.info.is_some(),
            self.colors.is_empty(),
            self.depths.is_empty(),
        ) {
            (false, _, _) => format!("nothing arrived on the camera_info topic {it}"),
            (true, true, _) => format!("nothing arrived on the colour topic {ct}"),
            (true, false, true) => format!("nothing arrived on the depth topic {dt}"),
            (true, false, false) => format!(
                "no depth message on {dt} within {} ms of a colour stamp on {ct}",
                self.tolerance_ns as f64 / 1e6
            ),
        }
    }

    /// The next complete frame, if any; `ended`: no more messages will come, so a colour message
    /// still without depth is given up.
    pub fn next(&mut self, ended: bool) -> Result<Option<PairedFrame>> {
        if let Some(e) = self.never_paired() {
            return Err(e);
        }
        while let Some(c) = self.colors.front() {
            let s = c.stamp_ns();
            let tol = self.tolerance_ns;
            let best = (self.depths.iter().enumerate())
                .filter(|(_, d)| d.stamp_ns().abs_diff(s) <= tol)
                .min_by_key(|(_, d)| d.stamp_ns().abs_diff(s))
                .map(|(j, _)| j);
            let newer = self.depths.iter().any(|d| d.stamp_ns() > s + tol);
            match (best, self.info.clone()) {
                (Some(j), Some(info)) => return self.pair(j, info).map(Some),
                (None, _) if newer || ended => {
                    self.colors.pop_front();
                    self.unpaired += 1;
                }
                (Some(_), None) if ended => {
                    self.colors.pop_front();
                    self.unpaired += 1;
                }
                _ => return Ok(None),
            }
        }
        Ok(None)
    }

    /// Pairs the front colour with depth `j` and `info`; drops the older depth and BopFrame
    /// messages.
    fn pair(&mut self, j: usize, info: CameraInfo) -> Result<PairedFrame> {
        let color = self.colors.pop_front().unwrap_or_else(|| unreachable!());
        let depth = self.depths.remove(j).unwrap_or_else(|| unreachable!());
        self.depths.drain(..j);
        let s = color.stamp_ns();
        let tol = self.tolerance_ns;
        let [ct, dt, it] = self.topics.each_ref().map(String::as_str);
        if !self.checked {
            let size = image_size(&self.origin, ct, &color)?;
            check_registration(&self.origin, (ct, &color, size), (dt, &depth))?;
            check_info(&self.origin, it, &info, size)?;
            self.checked = true;
        }
        while self
            .bops
            .front()
            .is_some_and(|b| b.header.stamp_ns + tol < s)
        {
            self.bops.pop_front();
        }
        let bop = match self.bops.front() {
            Some(b) if b.header.stamp_ns.abs_diff(s) <= tol => self.bops.pop_front(),
            _ => None,
        };
        Ok(PairedFrame {
            color,
            depth,
            info,
            bop,
        })
    }
}

/// Push `m`, dropping the oldest beyond [`WAITING`]; returns how many were dropped (0 or 1).
fn bounded_push<T>(queue: &mut VecDeque<T>, m: T) -> usize {
    queue.push_back(m);
    let over = queue.len() > WAITING;
    if over {
        queue.pop_front();
    }
    over as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domains::recording::ros_msgs::{Header, Image};

    fn img(stamp: u64, encoding: &str) -> ImageMsg {
        let bpp = if encoding == "16UC1" { 2 } else { 3 };
        ImageMsg::Raw(Image {
            header: Header::new(stamp, "cam"),
            height: 2,
            width: 2,
            encoding: encoding.into(),
            is_bigendian: 0,
            step: 2 * bpp,
            data: vec![0; 4 * bpp as usize],
        })
    }

    fn pairer() -> LivePairer {
        let topics = ["c".to_string(), "d".into(), "i".into()];
        LivePairer::new(PathBuf::from("zenoh:test"), topics, 10)
    }

    #[test]
    fn colour_waits_for_depth_and_info_and_takes_the_nearest() {
        let mut p = pairer();
        p.color(img(100, "rgb8"));
        assert!(p.next(false).unwrap().is_none());
        p.depth(img(95, "16UC1"));
        assert!(p.next(false).unwrap().is_none(), "no camera_info yet");
        p.info(CameraInfo::pinhole(Header::new(100, "cam"), 2, 2, [1.0; 9]));
        p.depth(img(101, "16UC1"));
        p.bop(BopFrame {
            header: Header::new(100, "cam"),
            im_id: 7,
            ..BopFrame::default()
        });
        let f = p.next(false).unwrap().unwrap();
        assert_eq!((f.color.stamp_ns(), f.depth.stamp_ns()), (100, 101));
        assert_eq!(f.bop.unwrap().im_id, 7);
        // A colour with no depth within 10 ns is given up once a newer depth arrives.
        p.color(img(200, "rgb8"));
        p.color(img(300, "rgb8"));
        p.depth(img(299, "16UC1"));
        let f = p.next(false).unwrap().unwrap();
        assert_eq!((f.color.stamp_ns(), p.unpaired), (300, 1));
        assert!(f.bop.is_none());
        p.color(img(400, "rgb8"));
        assert!(p.next(true).unwrap().is_none());
        assert_eq!(p.unpaired, 2);
    }

    #[test]
    fn unregistered_depth_is_refused() {
        let mut p = pairer();
        p.info(CameraInfo::pinhole(Header::new(0, "cam"), 2, 2, [1.0; 9]));
        p.color(img(0, "rgb8"));
        let mut d = img(0, "16UC1");
        if let ImageMsg::Raw(m) = &mut d {
            m.header.frame_id = "depth_optical".into();
        }
        p.depth(d);
        let e = p.next(false).unwrap_err().to_string();
        assert!(e.contains("not registered"), "{e}");
    }

    /// A stream that never pairs holds at most [`WAITING`] messages of each kind and, once it has
    /// given up [`GIVE_UP`] of them, is an error naming the silent topic: no camera_info (colour
    /// and depth arriving in step), then no colour (depth alone).
    #[test]
    fn a_stream_that_never_pairs_is_bounded_and_names_the_silent_topic() {
        let mut p = pairer();
        let mut err = None;
        for k in 0..2 * GIVE_UP as u64 {
            p.color(img(100 * k, "rgb8"));
            p.depth(img(100 * k, "16UC1"));
            assert!(p.colors.len() <= WAITING && p.depths.len() <= WAITING);
            if let Err(e) = p.next(false) {
                err = Some((k, e.to_string()));
                break;
            }
        }
        let (k, e) = err.expect("no error after 2 GIVE_UP colour messages");
        // The first WAITING messages wait; each later one gives up the oldest.
        assert_eq!(k as usize + 1, WAITING + GIVE_UP, "{e}");
        assert!(
            e.contains("zenoh:test") && e.contains("camera_info topic i"),
            "{e}"
        );
        let mut p = pairer();
        p.info(CameraInfo::pinhole(Header::new(0, "cam"), 2, 2, [1.0; 9]));
        for k in 0..(WAITING + GIVE_UP - 1) as u64 {
            p.depth(img(100 * k, "16UC1"));
            assert!(p.next(false).is_ok(), "{k}");
        }
        p.depth(img(0, "16UC1"));
        let e = p.next(false).unwrap_err().to_string();
        assert!(e.contains("colour topic c"), "{e}");
    }
}
