//! The ROS 2 messages hdpf reads and writes, their CDR layout, and their `ros2msg` definitions (the
//! schema text an MCAP file carries, dependencies appended as rosbag2 does).
//!
//! - In: `sensor_msgs/msg/Image`, `sensor_msgs/msg/CompressedImage`, `sensor_msgs/msg/CameraInfo`.
//! - Out (estimates): one `geometry_msgs/msg/PoseWithCovarianceStamped` per object and frame, on
//!   the topic `/hdpf/objects/obj_<id:06>/pose`. Chosen over `vision_msgs/msg/Detection3DArray`
//!   because `geometry_msgs` ships with every ROS 2 install (vision_msgs is a separate package
//!   whose `Detection3D` layout changed between releases), and every tool (`ros2 topic echo`,
//!   RViz, Foxglove) displays it. The covariance is converted from hdpf's tangent space with
//!   [`covariance_to_ros`].
//! - Ours: `hdpf_msgs/msg/BopFrame` ([`BopFrame`]), what ROS messages do not carry (see
//!   [`crate::domains::recording`] for the topic list).

use super::cdr::{CdrError, CdrReader, CdrWriter};
use crate::core::geometry::se3::skew;
use nalgebra::{Isometry3, Matrix3, Matrix6, Quaternion, Translation3, UnitQuaternion};

/// A ROS 2 message type: its name, its `ros2msg` definition and its CDR encoding.
pub trait RosMessage: Sized {
    /// Full type name as rosbag2 writes it (`sensor_msgs/msg/Image`).
    const NAME: &'static str;
    /// `ros2msg` definition text, dependencies appended after `=`×80 / `MSG: pkg/Type` lines.
    const DEFINITION: &'static str;
    /// Appends the fields (after the encapsulation header).
    fn write(&self, w: &mut CdrWriter);
    /// Reads the fields.
    fn read(r: &mut CdrReader<'_>) -> Result<Self, CdrError>;
    /// The whole CDR payload, header included.
    fn to_cdr(&self) -> Vec<u8> {
        let mut w = CdrWriter::new();
        self.write(&mut w);
        w.finish()
    }
    /// Decodes a whole CDR payload (trailing padding is ignored).
    fn from_cdr(bytes: &[u8]) -> Result<Self, CdrError> {
        Self::read(&mut CdrReader::new(bytes)?)
    }
}

/// The separator rosbag2 puts between a definition and each dependency.
macro_rules! dep {
    ($name:literal, $def:expr) => {
        concat!(
            "\n================================================================================\nMSG: ",
            $name,
            "\n",
            $def
        )
    };
}

macro_rules! header_deps {
    () => {
        concat!(
            dep!(
                "std_msgs/Header",
                "builtin_interfaces/Time stamp\nstring frame_id\n"
            ),
            dep!("builtin_interfaces/Time", "int32 sec\nuint32 nanosec\n")
        )
    };
}

/// `std_msgs/msg/Header`: stamp (`builtin_interfaces/Time`) and frame id.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Header {
    /// Stamp, nanoseconds since the epoch (`sec·10⁹ + nanosec`).
    pub stamp_ns: u64,
    /// Coordinate frame of the data (`camera_color_optical_frame`).
    pub frame_id: String,
}

impl Header {
    /// A header at `stamp_ns` in frame `frame_id`.
    pub fn new(stamp_ns: u64, frame_id: &str) -> Header {
        Header {
            stamp_ns,
            frame_id: frame_id.to_string(),
        }
    }

    fn write(&self, w: &mut CdrWriter) {
        // ROS time is (int32 sec, uint32 nanosec); stamps past 2038 saturate.
        let sec = (self.stamp_ns / 1_000_000_000).min(i32::MAX as u64) as i32;
        w.write_i32(sec);
        w.write_u32((self.stamp_ns % 1_000_000_000) as u32);
        w.write_string(&self.frame_id);
    }

    fn read(r: &mut CdrReader<'_>) -> Result<Header, CdrError> {
        let sec = r.read_i32("header.stamp.sec")?;
        let nanosec = r.read_u32("header.stamp.nanosec")?;
        // Negative stamps (before 1970) are clamped to 0: hdpf only orders stamps.
        let stamp_ns = (sec.max(0) as u64) * 1_000_000_000 + nanosec as u64;
        Ok(Header {
            stamp_ns,
            frame_id: r.read_string("header.frame_id")?,
        })
    }
}

/// `sensor_msgs/msg/Image`: uncompressed pixels, `step` bytes per row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Image {
    /// Stamp and optical frame.
    pub header: Header,
    /// Rows.
    pub height: u32,
    /// Columns.
    pub width: u32,
    /// Pixel encoding (`rgb8`, `bgr8`, `mono8`, `16UC1`, `32FC1`, ...).
    pub encoding: String,
    /// 1 when multi-byte pixels are big-endian.
    pub is_bigendian: u8,
    /// Bytes per row.
    pub step: u32,
    /// `height · step` bytes.
    pub data: Vec<u8>,
}

impl Image {
    /// An `rgb8` image (rows packed, `step = 3·width`) of `rgb`.
    pub fn rgb8(header: Header, rgb: image::RgbImage) -> Image {
        Image {
            header,
            height: rgb.height(),
            width: rgb.width(),
            encoding: "rgb8".into(),
            is_bigendian: 0,
            step: rgb.width() * 3,
            data: rgb.into_raw(),
        }
    }
}

impl RosMessage for Image {
    const NAME: &'static str = "sensor_msgs/msg/Image";
    const DEFINITION: &'static str = concat!(
        "std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\nuint8 is_bigendian\nuint32 step\nuint8[] data\n",
        header_deps!()
    );
    fn write(&self, w: &mut CdrWriter) {
        self.header.write(w);
        w.write_u32(self.height);
        w.write_u32(self.width);
        w.write_string(&self.encoding);
        w.write_u8(self.is_bigendian);
        w.write_u32(self.step);
        w.write_bytes(&self.data);
    }
    fn read(r: &mut CdrReader<'_>) -> Result<Image, CdrError> {
        Ok(Image {
            header: Header::read(r)?,
            height: r.read_u32("height")?,
            width: r.read_u32("width")?,
            encoding: r.read_string("encoding")?,
            is_bigendian: r.read_u8("is_bigendian")?,
            step: r.read_u32("step")?,
            data: r.read_bytes("data")?,
        })
    }
}

/// `sensor_msgs/msg/CompressedImage`: an encoded image (`png`, `jpeg`, or
/// `16UC1; compressedDepth png` with its 12-byte header, see [`COMPRESSED_DEPTH_HEADER_LEN`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CompressedImage {
    /// Stamp and optical frame.
    pub header: Header,
    /// Codec description.
    pub format: String,
    /// Encoded bytes.
    pub data: Vec<u8>,
}

/// Length of the header `compressed_depth_image_transport` puts before the PNG: `int32` format
/// (0 = `INV_DEPTH`), `float32 depthQuantA`, `float32 depthQuantB`, little-endian. For `16UC1`
/// the PNG holds the raw values and the two floats are unused; for `32FC1` the PNG holds
/// `q = A / d + B` and `d = A / (q − B)` (q = 0: no depth).
pub const COMPRESSED_DEPTH_HEADER_LEN: usize = 12;

impl RosMessage for CompressedImage {
    const NAME: &'static str = "sensor_msgs/msg/CompressedImage";
    const DEFINITION: &'static str = concat!(
        "std_msgs/Header header\nstring format\nuint8[] data\n",
        header_deps!()
    );
    fn write(&self, w: &mut CdrWriter) {
        self.header.write(w);
        w.write_string(&self.format);
        w.write_bytes(&self.data);
    }
    fn read(r: &mut CdrReader<'_>) -> Result<CompressedImage, CdrError> {
        Ok(CompressedImage {
            header: Header::read(r)?,
            format: r.read_string("format")?,
            data: r.read_bytes("data")?,
        })
    }
}

/// `sensor_msgs/msg/CameraInfo` (with its `RegionOfInterest`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CameraInfo {
    /// Stamp and optical frame.
    pub header: Header,
    /// Calibrated image rows.
    pub height: u32,
    /// Calibrated image columns.
    pub width: u32,
    /// `plumb_bob`, `rational_polynomial`, `equidistant`, or empty.
    pub distortion_model: String,
    /// Distortion coefficients (hdpf requires them all zero).
    pub d: Vec<f64>,
    /// Intrinsics `K`, row-major 3×3.
    pub k: [f64; 9],
    /// Rectification rotation, row-major 3×3.
    pub r: [f64; 9],
    /// Projection `P`, row-major 3×4.
    pub p: [f64; 12],
    /// Horizontal binning (0 or 1 = none).
    pub binning_x: u32,
    /// Vertical binning (0 or 1 = none).
    pub binning_y: u32,
    /// `roi`: x_offset, y_offset, height, width (all 0 = full image).
    pub roi: [u32; 4],
    /// `roi.do_rectify`.
    pub roi_do_rectify: bool,
}

impl CameraInfo {
    /// The CameraInfo of an undistorted pinhole camera with intrinsics `k` (row-major).
    pub fn pinhole(header: Header, width: u32, height: u32, k: [f64; 9]) -> CameraInfo {
        CameraInfo {
            header,
            height,
            width,
            distortion_model: "plumb_bob".into(),
            d: vec![0.0; 5],
            k,
            r: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
            p: [
                k[0], k[1], k[2], 0.0, k[3], k[4], k[5], 0.0, k[6], k[7], k[8], 0.0,
            ],
            binning_x: 0,
            binning_y: 0,
            roi: [0; 4],
            roi_do_rectify: false,
        }
    }
}

impl RosMessage for CameraInfo {
    const NAME: &'static str = "sensor_msgs/msg/CameraInfo";
    const DEFINITION: &'static str = concat!(
        "std_msgs/Header header\nuint32 height\nuint32 width\nstring distortion_model\nfloat64[] d\nfloat64[9] k\nfloat64[9] r\nfloat64[12] p\nuint32 binning_x\nuint32 binning_y\nsensor_msgs/RegionOfInterest roi\n",
        header_deps!(),
        dep!(
            "sensor_msgs/RegionOfInterest",
            "uint32 x_offset\nuint32 y_offset\nuint32 height\nuint32 width\nbool do_rectify\n"
        )
    );
    fn write(&self, w: &mut CdrWriter) {
        self.header.write(w);
        w.write_u32(self.height);
        w.write_u32(self.width);
        w.write_string(&self.distortion_model);
        w.write_f64_seq(&self.d);
        w.write_f64_array(&self.k);
        w.write_f64_array(&self.r);
        w.write_f64_array(&self.p);
        w.write_u32(self.binning_x);
        w.write_u32(self.binning_y);
        self.roi.iter().for_each(|&v| w.write_u32(v));
        w.write_bool(self.roi_do_rectify);
    }
    fn read(r: &mut CdrReader<'_>) -> Result<CameraInfo, CdrError> {
        Ok(CameraInfo {
            header: Header::read(r)?,
            height: r.read_u32("height")?,
            width: r.read_u32("width")?,
            distortion_model: r.read_string("distortion_model")?,
            d: r.read_f64_seq("d")?,
            k: r.read_f64_array("k")?,
            r: r.read_f64_array("r")?,
            p: r.read_f64_array("p")?,
            binning_x: r.read_u32("binning_x")?,
            binning_y: r.read_u32("binning_y")?,
            roi: [
                r.read_u32("roi.x_offset")?,
                r.read_u32("roi.y_offset")?,
                r.read_u32("roi.height")?,
                r.read_u32("roi.width")?,
            ],
            roi_do_rectify: r.read_bool("roi.do_rectify")?,
        })
    }
}

/// `geometry_msgs/msg/PoseWithCovarianceStamped`: an object's model→camera pose (metres, the
/// header's frame is the camera optical frame) and its covariance in ROS order.
#[derive(Debug, Clone, PartialEq)]
pub struct PoseWithCovarianceStamped {
    /// Stamp of the frame the estimate belongs to, camera optical frame.
    pub header: Header,
    /// Model→camera pose, metres.
    pub pose: Isometry3<f64>,
    /// Row-major 6×6 over (x, y, z, rotation about X, Y, Z); see [`covariance_to_ros`].
    pub covariance: [f64; 36],
}

impl RosMessage for PoseWithCovarianceStamped {
    const NAME: &'static str = "geometry_msgs/msg/PoseWithCovarianceStamped";
    const DEFINITION: &'static str = concat!(
        "std_msgs/Header header\ngeometry_msgs/PoseWithCovariance pose\n",
        header_deps!(),
        dep!(
            "geometry_msgs/PoseWithCovariance",
            "geometry_msgs/Pose pose\nfloat64[36] covariance\n"
        ),
        dep!(
            "geometry_msgs/Pose",
            "geometry_msgs/Point position\ngeometry_msgs/Quaternion orientation\n"
        ),
        dep!("geometry_msgs/Point", "float64 x\nfloat64 y\nfloat64 z\n"),
        dep!(
            "geometry_msgs/Quaternion",
            "float64 x 0\nfloat64 y 0\nfloat64 z 0\nfloat64 w 1\n"
        )
    );
    fn write(&self, w: &mut CdrWriter) {
        self.header.write(w);
        let t = &self.pose.translation.vector;
        let q = self.pose.rotation.quaternion();
        w.write_f64_array(&[t.x, t.y, t.z, q.i, q.j, q.k, q.w]);
        w.write_f64_array(&self.covariance);
    }
    fn read(r: &mut CdrReader<'_>) -> Result<PoseWithCovarianceStamped, CdrError> {
        let header = Header::read(r)?;
        let v: [f64; 7] = r.read_f64_array("pose.pose")?;
        let q = Quaternion::new(v[6], v[3], v[4], v[5]);
        let finite = q.coords.iter().all(|c| c.is_finite());
        if !(finite && q.coords.amax() > 0.0) {
            return Err(CdrError {
                field: "pose.pose.orientation".into(),
                offset: 0,
                msg: format!("quaternion {v:?} has no direction"),
            });
        }
        Ok(PoseWithCovarianceStamped {
            header,
            pose: Isometry3::from_parts(Translation3::new(v[0], v[1], v[2]), unit_as_written(q)),
            covariance: r.read_f64_array("pose.covariance")?,
        })
    }
}

/// Largest |‖q‖ − 1| that [`unit_as_written`] takes for rounding: normalising a quaternion leaves
/// its norm within a few ulps of 1 (4 components, one square root, one division each).
const UNIT_ROUNDING: f64 = 8.0 * f64::EPSILON;

/// A received orientation as a unit quaternion: kept exactly as written when it is unit up to
/// rounding (so that decoding what hdpf encoded and encoding it again gives the same bytes),
/// normalised otherwise, `q̃ / ‖q̃‖` with `q̃ = q / max|qₖ|`: scaling by the largest component
/// first keeps ‖q̃‖ ∈ [1, 2] exact to rounding even when the squares of `q` would underflow or
/// overflow, so the result is unit to rounding and decodes as written next time. The caller has
/// checked that every component is finite and one is not zero.
fn unit_as_written(q: Quaternion<f64>) -> UnitQuaternion<f64> {
    match (q.norm() - 1.0).abs() <= UNIT_ROUNDING {
        true => UnitQuaternion::new_unchecked(q),
        false => UnitQuaternion::from_quaternion(q / q.coords.amax()),
    }
}

/// `std_msgs/msg/UInt64`: hdpf's stream-control messages on zenoh (frames taken, frames sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UInt64 {
    /// The value.
    pub data: u64,
}

impl RosMessage for UInt64 {
    const NAME: &'static str = "std_msgs/msg/UInt64";
    const DEFINITION: &'static str = "uint64 data\n";
    fn write(&self, w: &mut CdrWriter) {
        w.write_u64(self.data);
    }
    fn read(r: &mut CdrReader<'_>) -> Result<UInt64, CdrError> {
        Ok(UInt64 {
            data: r.read_u64("data")?,
        })
    }
}

/// One ground-truth object of a [`BopFrame`], numbers exactly as `scene_gt.json` holds them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BopObject {
    /// BOP object id.
    pub obj_id: u32,
    /// `cam_R_m2c`: model→camera rotation, row-major.
    pub cam_r_m2c: [f64; 9],
    /// `cam_t_m2c`: model→camera translation, millimetres.
    pub cam_t_m2c: [f64; 3],
    /// Other fields of this `scene_gt.json` entry as a JSON object, or empty.
    pub extra_json: String,
}

/// `hdpf_msgs/msg/BopFrame`, hdpf's own per-image record: what a BOP scene holds that ROS
/// messages do not (ids, the raw depth scale, the world→camera pose, ground truth), with BOP's
/// numbers unchanged (rotations row-major, translations in millimetres) so that a converted scene
/// converts back bit for bit. Its header has the stamp and frame id of the colour image.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BopFrame {
    /// Stamp and frame of the colour image this record belongs to.
    pub header: Header,
    /// BOP split (`test`, `train_real`, ...).
    pub split: String,
    /// BOP scene id.
    pub scene_id: u32,
    /// BOP image id.
    pub im_id: u32,
    /// `depth_scale`: millimetres per raw depth unit (`depth_mm = raw · depth_scale`).
    pub depth_scale: f64,
    /// Whether `cam_r_w2c` / `cam_t_w2c` are present.
    pub has_cam_w2c: bool,
    /// `cam_R_w2c`: world→camera rotation, row-major (zeros when absent).
    pub cam_r_w2c: [f64; 9],
    /// `cam_t_w2c`: world→camera translation, millimetres (zeros when absent).
    pub cam_t_w2c: [f64; 3],
    /// Ground truth, in `scene_gt.json` order.
    pub gt: Vec<BopObject>,
    /// Whether the scene had a `scene_gt.json` entry for this image (an empty list is still one).
    pub has_gt: bool,
    /// Other fields of this image's `scene_camera.json` entry as a JSON object, or empty.
    pub extra_json: String,
}

impl RosMessage for BopFrame {
    const NAME: &'static str = "hdpf_msgs/msg/BopFrame";
    const DEFINITION: &'static str = concat!(
        "# hdpf: what a BOP image has that ROS messages do not; BOP numbers unchanged (mm, row-major)\n",
        "std_msgs/Header header\nstring split\nuint32 scene_id\nuint32 im_id\n",
        "float64 depth_scale  # mm per raw depth unit of the depth image topic\n",
        "bool has_cam_w2c\nfloat64[9] cam_r_w2c\nfloat64[3] cam_t_w2c  # mm\n",
        "bool has_gt\nhdpf_msgs/BopObject[] gt\nstring extra_json  # other scene_camera.json fields\n",
        header_deps!(),
        dep!(
            "hdpf_msgs/BopObject",
            "uint32 obj_id\nfloat64[9] cam_r_m2c\nfloat64[3] cam_t_m2c  # mm\nstring extra_json  # other scene_gt.json fields\n"
        )
    );
    fn write(&self, w: &mut CdrWriter) {
        self.header.write(w);
        w.write_string(&self.split);
        w.write_u32(self.scene_id);
        w.write_u32(self.im_id);
        w.write_f64(self.depth_scale);
        w.write_bool(self.has_cam_w2c);
        w.write_f64_array(&self.cam_r_w2c);
        w.write_f64_array(&self.cam_t_w2c);
        w.write_bool(self.has_gt);
        w.write_len(self.gt.len());
        for g in &self.gt {
            w.write_u32(g.obj_id);
            w.write_f64_array(&g.cam_r_m2c);
            w.write_f64_array(&g.cam_t_m2c);
            w.write_string(&g.extra_json);
        }
        w.write_string(&self.extra_json);
    }
    fn read(r: &mut CdrReader<'_>) -> Result<BopFrame, CdrError> {
        let mut f = BopFrame {
            header: Header::read(r)?,
            split: r.read_string("split")?,
            scene_id: r.read_u32("scene_id")?,
            im_id: r.read_u32("im_id")?,
            depth_scale: r.read_f64("depth_scale")?,
            has_cam_w2c: r.read_bool("has_cam_w2c")?,
            cam_r_w2c: r.read_f64_array("cam_r_w2c")?,
            cam_t_w2c: r.read_f64_array("cam_t_w2c")?,
            has_gt: r.read_bool("has_gt")?,
            ..BopFrame::default()
        };
        // Each object takes at least 4 + 96 + 4 bytes.
        let n = r.read_len(104, "gt")?;
        for _ in 0..n {
            f.gt.push(BopObject {
                obj_id: r.read_u32("gt.obj_id")?,
                cam_r_m2c: r.read_f64_array("gt.cam_r_m2c")?,
                cam_t_m2c: r.read_f64_array("gt.cam_t_m2c")?,
                extra_json: r.read_string("gt.extra_json")?,
            });
        }
        f.extra_json = r.read_string("extra_json")?;
        Ok(f)
    }
}

/// The Jacobian `A` with `δ_ros = A·ξ` at pose `T = (R, t)`: hdpf's tangent `ξ = [ρ; φ]` perturbs
/// on the left, `T' = exp(ξ)·T` (see [`crate::core::geometry::se3`]), so to first order
/// `R' = exp([φ]×)·R` and `t' = t + ρ + φ × t`. ROS's (x, y, z, rotation about X, Y, Z) is
/// `t' = t + δt`, `R' = exp([δθ]×)·R` with both parts in the header (camera) frame, the rotation
/// about its fixed axes. Hence `δt = ρ − [t]×φ`, `δθ = φ`: `A = [[I, −[t]×], [0, I]]`.
fn tangent_to_ros_jacobian(pose: &Isometry3<f64>) -> Matrix6<f64> {
    let mut a = Matrix6::identity();
    a.fixed_view_mut::<3, 3>(0, 3)
        .copy_from(&(-skew(&pose.translation.vector)));
    a
}

/// hdpf's 6×6 covariance of the left-perturbation tangent `[ρ; φ]` at `pose` → ROS's row-major
/// `float64[36]` over (x, y, z, rotation about X, Y, Z): `Σ_ros = A Σ Aᵀ` (see
/// `tangent_to_ros_jacobian`; first order, exact for rotation-free or origin-centred poses).
pub fn covariance_to_ros(pose: &Isometry3<f64>, cov: &Matrix6<f64>) -> [f64; 36] {
    let a = tangent_to_ros_jacobian(pose);
    let c = a * cov * a.transpose();
    std::array::from_fn(|i| c[(i / 6, i % 6)])
}

/// The inverse of [`covariance_to_ros`]: ROS's row-major covariance → hdpf's `[ρ; φ]` covariance.
pub fn covariance_from_ros(pose: &Isometry3<f64>, cov: &[f64; 36]) -> Matrix6<f64> {
    let mut a_inv = Matrix6::identity();
    let t: Matrix3<f64> = skew(&pose.translation.vector);
    a_inv.fixed_view_mut::<3, 3>(0, 3).copy_from(&t);
    let c = Matrix6::from_row_slice(cov);
    a_inv * c * a_inv.transpose()
}

/// The topic of object `obj_id`'s estimates by tracker `tracker`:
/// `/hdpf/<tracker>/obj_<id:06>/pose`, with every character of the tracker name that a ROS 2 name
/// does not allow (anything but `[A-Za-z0-9_]`) written as `_` (`rfpf-newton` → `rfpf_newton`).
pub fn estimate_topic(tracker: &str, obj_id: u32) -> String {
    let name: String = tracker
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("/hdpf/{name}/obj_{obj_id:06}/pose")
}

/// One estimate as a ROS message: model→camera `pose` (metres) in `frame_id` at `stamp_ns`, with
/// hdpf's tangent covariance converted by [`covariance_to_ros`]; `None` (unknown) is written as all
/// zeros, which ROS tools read as "no covariance".
pub fn estimate_message(
    pose: &Isometry3<f64>,
    cov: Option<&Matrix6<f64>>,
    stamp_ns: u64,
    frame_id: &str,
) -> PoseWithCovarianceStamped {
    PoseWithCovarianceStamped {
        header: Header::new(stamp_ns, frame_id),
        pose: *pose,
        covariance: cov.map_or([0.0; 36], |c| covariance_to_ros(pose, c)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::geometry::se3;
    use nalgebra::{Vector3, Vector6};

    fn le32(v: u32) -> Vec<u8> {
        v.to_le_bytes().to_vec()
    }

    #[test]
    fn image_bytes_match_the_spec_by_hand() {
        let img = Image {
            header: Header::new(1_000_000_002, "f"),
            height: 1,
            width: 2,
            encoding: "mono8".into(),
            is_bigendian: 0,
            step: 2,
            data: vec![7, 9],
        };
        let expected: Vec<u8> = [
            vec![0, 1, 0, 0],
            le32(1),             // stamp.sec      @0
            le32(2),             // stamp.nanosec  @4
            le32(2),             // frame_id len   @8
            vec![b'f', 0],       //                @12
            vec![0, 0],          // pad to 16
            le32(1),             // height         @16
            le32(2),             // width          @20
            le32(6),             // encoding len   @24
            b"mono8\0".to_vec(), //                @28
            vec![0],             // is_bigendian   @34
            vec![0],             // pad to 36
            le32(2),             // step           @36
            le32(2),             // data count     @40
            vec![7, 9],          //                @44
        ]
        .concat();
        assert_eq!(img.to_cdr(), expected);
        assert_eq!(Image::from_cdr(&expected).unwrap(), img);
    }

    #[test]
    fn uint64_bytes_by_hand() {
        let m = UInt64 {
            data: 0x0102_0304_0506_0708,
        };
        let want = [0, 1, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1];
        assert_eq!(m.to_cdr(), want);
        assert_eq!(UInt64::from_cdr(&want).unwrap(), m);
    }

    #[test]
    fn camera_info_aligns_its_float64_sequence_to_8() {
        let k = [500.0, 0.0, 320.0, 0.0, 501.0, 240.0, 0.0, 0.0, 1.0];
        let mut info = CameraInfo::pinhole(Header::new(0, ""), 640, 480, k);
        info.distortion_model = String::new();
        info.d = vec![0.25];
        let bytes = info.to_cdr();
        let body = &bytes[4..];
        // header 0..13, height @16, width @20, distortion_model "" @24..29, d count @32,
        // pad 36..40, d[0] @40, k @48, r @120, p @192, binning @288/292, roi @296..312, bool @312.
        assert_eq!(body[..4], [0, 0, 0, 0]);
        assert_eq!(body[8..13], [1, 0, 0, 0, 0]);
        assert_eq!(body[16..20], le32(480)[..]);
        assert_eq!(body[20..24], le32(640)[..]);
        assert_eq!(body[24..29], [1, 0, 0, 0, 0]);
        assert_eq!(body[32..36], le32(1)[..]);
        assert_eq!(body[36..40], [0, 0, 0, 0]);
        assert_eq!(body[40..48], 0.25f64.to_le_bytes());
        assert_eq!(body[48..56], 500.0f64.to_le_bytes());
        assert_eq!(body[120..128], 1.0f64.to_le_bytes()); // r[0]
        assert_eq!(body[192..200], 500.0f64.to_le_bytes()); // p[0]
        assert_eq!(body.len(), 313);
        assert_eq!(CameraInfo::from_cdr(&bytes).unwrap(), info);
    }

    #[test]
    fn messages_round_trip() {
        let c = CompressedImage {
            header: Header::new(5, "cam"),
            format: "16UC1; compressedDepth png".into(),
            data: vec![1, 2, 3, 4, 5],
        };
        assert_eq!(CompressedImage::from_cdr(&c.to_cdr()).unwrap(), c);
        let f = BopFrame {
            header: Header::new(33_333_333, "camera_color_optical_frame"),
            split: "test".into(),
            scene_id: 49,
            im_id: 1,
            depth_scale: 0.1,
            has_cam_w2c: true,
            cam_r_w2c: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
            cam_t_w2c: [1.5, -2.25, 1000.125],
            has_gt: true,
            gt: vec![BopObject {
                obj_id: 3,
                cam_r_m2c: [0.1; 9],
                cam_t_m2c: [0.30000000000000004, 2.0, 3.0],
                extra_json: String::new(),
            }],
            extra_json: r#"{"elev":45}"#.into(),
        };
        assert_eq!(BopFrame::from_cdr(&f.to_cdr()).unwrap(), f);
        let p = PoseWithCovarianceStamped {
            header: Header::new(7, "cam"),
            pose: Isometry3::new(Vector3::new(0.1, 0.2, 0.9), Vector3::new(0.3, -0.2, 0.1)),
            covariance: std::array::from_fn(|i| i as f64),
        };
        let back = PoseWithCovarianceStamped::from_cdr(&p.to_cdr()).unwrap();
        assert_eq!(back.covariance, p.covariance);
        let e = estimate_message(&p.pose, None, 7, "cam");
        assert_eq!(
            (e.covariance, estimate_topic("rfpf-newton", 5).as_str()),
            ([0.0; 36], "/hdpf/rfpf_newton/obj_000005/pose")
        );
        assert!((back.pose.to_homogeneous() - p.pose.to_homogeneous()).norm() < 1e-15);
        // Truncated payloads name the field that ran out.
        let bytes = f.to_cdr();
        let e = BopFrame::from_cdr(&bytes[..bytes.len() - 3]).unwrap_err();
        assert!(e.field.contains("extra_json"), "{e}");
    }

    /// Regression (fuzz target `cdr`): decoding renormalised every quaternion, so decode → encode
    /// moved already-unit components by an ulp and was not idempotent. Non-unit quaternions (as
    /// any publisher may write them) are normalised once; what hdpf wrote decodes bit for bit.
    #[test]
    fn pose_decode_encode_is_idempotent() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..2000 {
            let c: [f64; 4] = std::array::from_fn(|_| rng.random_range(-1.0..1.0));
            let scale = rng.random_range(0.5..2.0);
            let q = Quaternion::new(c[0], c[1], c[2], c[3]) * scale;
            let written = PoseWithCovarianceStamped {
                header: Header::new(1, "cam"),
                pose: Isometry3::from_parts(
                    Translation3::new(0.1, 0.2, 0.3),
                    UnitQuaternion::new_unchecked(q),
                ),
                covariance: [0.0; 36],
            };
            let once = PoseWithCovarianceStamped::from_cdr(&written.to_cdr()).unwrap();
            assert!((once.pose.rotation.quaternion().norm() - 1.0).abs() <= UNIT_ROUNDING);
            let bytes = once.to_cdr();
            let twice = PoseWithCovarianceStamped::from_cdr(&bytes).unwrap();
            assert_eq!(twice.to_cdr(), bytes, "q = {q:?}");
        }
    }

    /// Fuzz regression (cdr target): a quaternion whose squares underflow (w = −2.3e−156 beside
    /// subnormal components) was normalised to a non-unit one, so a second decode changed it again;
    /// components near the overflow end had no direction at all.
    #[test]
    fn extreme_quaternions_decode_to_unit_ones_and_stay_put() {
        /// A pose message whose orientation (x, y, z, w) is written as `q`.
        fn with_quaternion(q: [f64; 4]) -> Vec<u8> {
            let mut bytes = PoseWithCovarianceStamped {
                header: Header::new(1, "cam"),
                pose: Isometry3::identity(),
                covariance: [0.0; 36],
            }
            .to_cdr();
            let at = bytes.len() - 36 * 8 - 4 * 8;
            for (k, c) in q.iter().enumerate() {
                bytes[at + 8 * k..at + 8 * k + 8].copy_from_slice(&c.to_le_bytes());
            }
            bytes
        }
        let cases = [
            [0.0, 0.0, 6e-323, -2.303_311_105_457_825_5e-156],
            [1e-310, 0.0, 0.0, 3e-320],
            [1e200, -3e199, 0.0, 5e-300],
            [f64::MAX, f64::MAX, 0.0, 1.0],
        ];
        for q in cases {
            let once = PoseWithCovarianceStamped::from_cdr(&with_quaternion(q)).unwrap();
            let norm = once.pose.rotation.quaternion().norm();
            assert!((norm - 1.0).abs() <= UNIT_ROUNDING, "{q:?}: ‖q‖ = {norm}");
            let again = once.to_cdr();
            let twice = PoseWithCovarianceStamped::from_cdr(&again).unwrap();
            assert_eq!(twice.to_cdr(), again);
        }
        // Second fuzz finding: a NaN component passed the check (a NaN-ignoring max) and was
        // normalised to an all-NaN quaternion, which our own decoder then refused.
        for q in [
            [f64::NAN, 0.0, 0.0, 1.0],
            [0.0, f64::INFINITY, 0.0, 1.0],
            [0.0; 4],
        ] {
            let e = PoseWithCovarianceStamped::from_cdr(&with_quaternion(q)).unwrap_err();
            assert!(e.to_string().contains("orientation"), "{e}");
        }
    }

    #[test]
    fn definitions_name_their_dependencies() {
        assert!(Image::DEFINITION.contains("\nMSG: std_msgs/Header\n"));
        assert!(CameraInfo::DEFINITION.contains("\nMSG: sensor_msgs/RegionOfInterest\n"));
        assert!(BopFrame::DEFINITION.contains("\nMSG: hdpf_msgs/BopObject\n"));
        assert!(PoseWithCovarianceStamped::DEFINITION.contains("\nMSG: geometry_msgs/Quaternion\n"));
    }

    /// The ROS perturbation (δt, δθ) of `exp(ξ)·T` relative to `T`, computed exactly.
    fn ros_delta(pose: &Isometry3<f64>, xi: &Vector6<f64>) -> Vector6<f64> {
        let p = se3::perturb(pose, xi);
        let dt = p.translation.vector - pose.translation.vector;
        let dth = se3::so3_log(&(p.rotation * pose.rotation.inverse()));
        Vector6::new(dt.x, dt.y, dt.z, dth.x, dth.y, dth.z)
    }

    #[test]
    fn covariance_conversion_matches_perturbed_poses() {
        let pose = Isometry3::new(Vector3::new(0.2, -0.1, 0.8), Vector3::new(0.4, 0.3, -0.5));
        // A full-rank hdpf covariance Σ = L Lᵀ with millimetre / milliradian spreads.
        let mut l = nalgebra::Matrix6::<f64>::zeros();
        for i in 0..6 {
            for j in 0..=i {
                l[(i, j)] = if i == j {
                    1e-3
                } else {
                    2e-4 * (i + j) as f64 / 10.0
                };
            }
        }
        let sigma = l * l.transpose();
        // Sigma points ±L e_j: their covariance is Σ; map each to the ROS delta exactly.
        let mut emp = nalgebra::Matrix6::<f64>::zeros();
        for j in 0..6 {
            for s in [1.0, -1.0] {
                let d = ros_delta(&pose, &(l.column(j) * s));
                emp += d * d.transpose() * 0.5;
            }
        }
        let ros = Matrix6::from_row_slice(&covariance_to_ros(&pose, &sigma));
        let rel = (ros - emp).norm() / ros.norm();
        assert!(rel < 2e-3, "relative error {rel}");
        // Inverse conversion.
        let back = covariance_from_ros(&pose, &covariance_to_ros(&pose, &sigma));
        assert!((back - sigma).norm() < 1e-18);
        // A rotation about the camera's z axis moves an object at x = 1 m along y.
        let at_x = Isometry3::translation(1.0, 0.0, 0.0);
        let mut rot_z = Matrix6::zeros();
        rot_z[(5, 5)] = 1e-4;
        let c = covariance_to_ros(&at_x, &rot_z);
        assert!((c[6 + 1] - 1e-4).abs() < 1e-18); // var(y)
        assert!((c[6 + 5] - 1e-4).abs() < 1e-18); // cov(y, rot z)
        assert_eq!(c[0], 0.0); // var(x)
    }
}
