//! An RGB-D frame as the ROS 2 messages a camera driver publishes, for recording what a pipeline
//! saw (`[sinks.mcap] inputs = true`): the recording then replays through `hdpf track --dataset`
//! or `source.kind = "mcap"` to the same frames, and opens in any MCAP tool.
//!
//! | topic | type | content |
//! |---|---|---|
//! | [`COLOR_RAW_TOPIC`] | `sensor_msgs/msg/Image` | `rgb8`, the decoded colour |
//! | [`DEPTH_RAW_TOPIC`] | `sensor_msgs/msg/Image` | `32FC1`, depth in metres exactly as the trackers saw it (0 = missing) |
//! | [`CAMERA_INFO_TOPIC`] | `sensor_msgs/msg/CameraInfo` | the frame's pinhole `K`, no distortion |
//! | [`BOP_FRAME_TOPIC`] | `hdpf_msgs/msg/BopFrame` | scene and image ids, ground truth when known (`depth_scale` 1: the depth is not raw) |
//!
//! All four carry the same header stamp (the frame's capture time, Unix ns) and frame id.

use super::mcap_bop::{
    RosMcapWriter, BOP_FRAME_TOPIC, CAMERA_INFO_TOPIC, COLOR_RAW_TOPIC, DEPTH_RAW_TOPIC,
};
use super::ros_msgs::{BopFrame, BopObject, CameraInfo, Header, Image};
use crate::domains::pose::bop::GtPose;
use crate::domains::pose::frame::RgbdFrame;
use crate::Result;

/// The messages of one frame (colour and depth where the frame has them).
#[derive(Debug, Clone)]
pub struct FrameMessages {
    /// `rgb8` colour on [`COLOR_RAW_TOPIC`].
    pub color: Option<Image>,
    /// `32FC1` depth (metres) on [`DEPTH_RAW_TOPIC`].
    pub depth: Option<Image>,
    /// Intrinsics on [`CAMERA_INFO_TOPIC`].
    pub info: CameraInfo,
    /// Ids and ground truth on [`BOP_FRAME_TOPIC`].
    pub bop: BopFrame,
}

impl FrameMessages {
    /// The messages of `frame` (scene `scene_id`, ground truth `gt`), stamped `stamp_ns` in
    /// `frame_id`.
    pub fn new(
        frame: &RgbdFrame,
        scene_id: u32,
        gt: &[GtPose],
        stamp_ns: u64,
        frame_id: &str,
    ) -> FrameMessages {
        let header = Header::new(stamp_ns, frame_id);
        let c = &frame.camera;
        let color = (frame.rgb.as_ref()).map(|rgb| Image::rgb8(header.clone(), (**rgb).clone()));
        let depth = frame.depth.as_ref().map(|d| Image {
            header: header.clone(),
            height: d.height as u32,
            width: d.width as u32,
            encoding: "32FC1".into(),
            is_bigendian: 0,
            step: d.width as u32 * 4,
            data: d.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
        let k = [c.fx, 0.0, c.cx, 0.0, c.fy, c.cy, 0.0, 0.0, 1.0];
        let bop = BopFrame {
            header: header.clone(),
            split: String::new(),
            scene_id,
            im_id: frame.im_id,
            depth_scale: 1.0,
            has_gt: !gt.is_empty(),
            gt: gt.iter().map(bop_object).collect(),
            ..BopFrame::default()
        };
        FrameMessages {
            color,
            depth,
            info: CameraInfo::pinhole(header, c.width, c.height, k),
            bop,
        }
    }

    /// Records the messages on their topics, with their header stamp as log time.
    pub fn write(&self, w: &mut RosMcapWriter) -> Result<()> {
        let stamp = self.info.header.stamp_ns;
        if let Some(m) = &self.color {
            w.write(COLOR_RAW_TOPIC, stamp, m)?;
        }
        if let Some(m) = &self.depth {
            w.write(DEPTH_RAW_TOPIC, stamp, m)?;
        }
        w.write(CAMERA_INFO_TOPIC, stamp, &self.info)?;
        w.write(BOP_FRAME_TOPIC, stamp, &self.bop)
    }
}

/// A ground-truth pose as our topic holds it: `cam_R_m2c` row-major, `cam_t_m2c` in millimetres.
fn bop_object(g: &GtPose) -> BopObject {
    let r = g.pose.rotation.to_rotation_matrix();
    let t = g.pose.translation.vector * 1e3;
    BopObject {
        obj_id: g.obj_id,
        cam_r_m2c: std::array::from_fn(|k| r[(k / 3, k % 3)]),
        cam_t_m2c: [t.x, t.y, t.z],
        extra_json: String::new(),
    }
}
