//! Robot recordings: ROS 2 messages in CDR, and MCAP (rosbag2's default storage) ⇄ BOP scenes.
//!
//! - [`cdr`]: the XCDR1 encoder/decoder (4-byte encapsulation header, aligned primitives).
//! - [`ros_msgs`]: `sensor_msgs/Image`, `CompressedImage`, `CameraInfo`,
//!   `geometry_msgs/PoseWithCovarianceStamped`, and our `hdpf_msgs/BopFrame`.
//! - [`mcap_bop`]: `hdpf dataset convert` (BOP scene ⇄ MCAP); [`mcap_info`]: `hdpf dataset info`.
//! - [`mcap_records`]: the records of an MCAP file, read with a length limit after a pre-scan of its chunks.
//! - [`frame_msgs`]: a decoded RGB-D frame as camera-driver messages (the MCAP sink's `inputs`).
//! - [`images`]: colour and depth decoding of Image / CompressedImage messages.
//! - [`mcap_read`]: frames out of any MCAP recording (the one place that pairs colour, depth and
//!   camera_info, and refuses what would silently give wrong poses).
//! - [`live_pair`]: pairing of live colour / depth / camera_info streams (the zenoh source).
//! - [`type_hash`]: REP 2016 type hashes (`RIHS01_…`) and DDS type names.
//! - `rmw_zenoh` (feature `zenoh`): rmw_zenoh's key expressions, attachment and liveliness tokens.
//!
//! # Topics written by `hdpf dataset convert --from SCENE_DIR --to FILE.mcap`
//! | topic | type | content |
//! |---|---|---|
//! | `/camera/color/image_raw/compressed` | `sensor_msgs/msg/CompressedImage` | `png`: the BOP `rgb/` file bytes unchanged (default, `--color png`) |
//! | `/camera/color/image_raw` | `sensor_msgs/msg/Image` | `rgb8` (with `--color raw`) |
//! | `/camera/color/camera_info` | `sensor_msgs/msg/CameraInfo` | `K` = `cam_K`, no distortion (`plumb_bob`, `d` = 0) |
//! | `/camera/aligned_depth_to_color/image_raw` | `sensor_msgs/msg/Image` | `16UC1`, the raw BOP values (default, `--depth raw`) |
//! | `/camera/aligned_depth_to_color/image_raw/compressedDepth` | `sensor_msgs/msg/CompressedImage` | `16UC1; compressedDepth png`: 12-byte header + the BOP `depth/` file bytes (with `--depth png`) |
//! | `/hdpf/bop_frame` | `hdpf_msgs/msg/BopFrame` | split, scene and image ids, `depth_scale`, `cam_R/t_w2c`, GT |
//!
//! Every message of image `im_id` has the header stamp (and MCAP log time)
//! `im_id · 10⁹ / fps` ns (`--fps`, default 30: BOP ships no timestamps) and the frame id
//! `camera_color_optical_frame`. Messages are CDR (`message_encoding = "cdr"`), schemas are
//! `ros2msg` (what rosbag2 writes), so `ros2 bag play`, Foxglove and `mcap` tools read the file.
//!
//! Estimates (the pipeline's `[sinks.mcap]`): one `geometry_msgs/msg/PoseWithCovarianceStamped`
//! per tracker and object on `/hdpf/<tracker>/obj_<id:06>/pose`, model→camera in metres, in the
//! colour optical frame ([`ros_msgs::estimate_message`], [`ros_msgs::estimate_topic`]).
//!
//! **Depth units.** ROS reads a `16UC1` image as millimetres (REP 118); BOP's raw values are
//! millimetres × `depth_scale` (0.1 for YCB-V). The depth topic keeps the raw values (lossless), and
//! `/hdpf/bop_frame` carries the scale; a reader without our topic would see YCB-V depth 10× too
//! far. hdpf's reader ([`mcap_read`]) applies the scale when the topic is there, else uses mm.

pub mod cdr;
pub mod frame_msgs;
pub mod images;
pub mod live_pair;
pub mod mcap_bop;
pub mod mcap_info;
pub mod mcap_read;
pub mod mcap_records;
#[cfg(feature = "zenoh")]
pub mod rmw_zenoh;
pub mod ros_msgs;
pub mod type_hash;
