//! ROS 2 type hashes (REP 2016, `RIHS01_…`) and DDS type names of the messages hdpf speaks.
//!
//! A type hash is `RIHS01_` + hex(SHA-256(J)), where `J` is the type's description serialised as
//! Python's `json.dumps(d, separators=(", ", ": "))` (what `rosidl_generator_type_description`
//! does), with
//! `d = {"type_description": T, "referenced_type_descriptions": [R₁, …]}`, the `Rᵢ` every type
//! `T` uses (transitively), sorted by name, each `{"type_name": …, "fields": [F, …]}` and each field
//! `F = {"name": …, "type": {"type_id": …, "capacity": …, "string_capacity": …,
//! "nested_type_name": …}}` (default values are left out of the hash). `type_id` is the
//! `type_description_interfaces/msg/FieldType` code: the element's code (nested 1, uint8 3,
//! int32 6, uint32 7, uint64 9, float64 11, bool 15, string 17) plus 48 for a fixed array
//! (`capacity` = its length), 144 for an unbounded sequence.
//!
//! rmw_zenoh puts the hash in every topic key expression and liveliness token, so a ROS 2 node
//! only matches a publisher whose hash equals its own for the type.

use sha2::{Digest, Sha256};

/// One field of a message.
#[derive(Clone, Copy, Debug)]
pub struct Field(
    /// Field name.
    pub &'static str,
    /// `FieldType` code.
    pub u8,
    /// Array capacity (0 unless a fixed array).
    pub u64,
    /// Nested type name (`""` for primitives).
    pub &'static str,
);

/// A message type: its full name (`pkg/msg/Type`) and fields in declaration order.
#[derive(Clone, Copy, Debug)]
pub struct TypeDescription {
    /// `sensor_msgs/msg/Image`.
    pub name: &'static str,
    /// The fields.
    pub fields: &'static [Field],
}

const NESTED: u8 = 1;
const UINT8: u8 = 3;
const INT32: u8 = 6;
const UINT32: u8 = 7;
const UINT64: u8 = 9;
const FLOAT64: u8 = 11;
const BOOL: u8 = 15;
const STRING: u8 = 17;
/// Offset of a fixed array `T[N]` over `T`'s code.
const ARRAY: u8 = 48;
/// Offset of an unbounded sequence `T[]` over `T`'s code.
const SEQUENCE: u8 = 144;

macro_rules! ty {
    ($name:literal: $( ($f:literal, $id:expr, $cap:expr, $nested:literal) ),* $(,)?) => {
        TypeDescription { name: $name, fields: &[$(Field($f, $id, $cap, $nested)),*] }
    };
}

/// Every type hdpf publishes or subscribes, with the types they use.
pub const TYPES: &[TypeDescription] = &[
    ty!("builtin_interfaces/msg/Time": ("sec", INT32, 0, ""), ("nanosec", UINT32, 0, "")),
    ty!("std_msgs/msg/Header":
        ("stamp", NESTED, 0, "builtin_interfaces/msg/Time"), ("frame_id", STRING, 0, "")),
    ty!("std_msgs/msg/String": ("data", STRING, 0, "")),
    ty!("std_msgs/msg/UInt64": ("data", UINT64, 0, "")),
    ty!("sensor_msgs/msg/Image":
        ("header", NESTED, 0, "std_msgs/msg/Header"), ("height", UINT32, 0, ""),
        ("width", UINT32, 0, ""), ("encoding", STRING, 0, ""), ("is_bigendian", UINT8, 0, ""),
        ("step", UINT32, 0, ""), ("data", UINT8 + SEQUENCE, 0, "")),
    ty!("sensor_msgs/msg/CompressedImage":
        ("header", NESTED, 0, "std_msgs/msg/Header"), ("format", STRING, 0, ""),
        ("data", UINT8 + SEQUENCE, 0, "")),
    ty!("sensor_msgs/msg/RegionOfInterest":
        ("x_offset", UINT32, 0, ""), ("y_offset", UINT32, 0, ""), ("height", UINT32, 0, ""),
        ("width", UINT32, 0, ""), ("do_rectify", BOOL, 0, "")),
    ty!("sensor_msgs/msg/CameraInfo":
        ("header", NESTED, 0, "std_msgs/msg/Header"), ("height", UINT32, 0, ""),
        ("width", UINT32, 0, ""), ("distortion_model", STRING, 0, ""),
        ("d", FLOAT64 + SEQUENCE, 0, ""), ("k", FLOAT64 + ARRAY, 9, ""),
        ("r", FLOAT64 + ARRAY, 9, ""), ("p", FLOAT64 + ARRAY, 12, ""),
        ("binning_x", UINT32, 0, ""), ("binning_y", UINT32, 0, ""),
        ("roi", NESTED, 0, "sensor_msgs/msg/RegionOfInterest")),
    ty!("geometry_msgs/msg/Point": ("x", FLOAT64, 0, ""), ("y", FLOAT64, 0, ""), ("z", FLOAT64, 0, "")),
    ty!("geometry_msgs/msg/Quaternion":
        ("x", FLOAT64, 0, ""), ("y", FLOAT64, 0, ""), ("z", FLOAT64, 0, ""), ("w", FLOAT64, 0, "")),
    ty!("geometry_msgs/msg/Pose":
        ("position", NESTED, 0, "geometry_msgs/msg/Point"),
        ("orientation", NESTED, 0, "geometry_msgs/msg/Quaternion")),
    ty!("geometry_msgs/msg/PoseWithCovariance":
        ("pose", NESTED, 0, "geometry_msgs/msg/Pose"), ("covariance", FLOAT64 + ARRAY, 36, "")),
    ty!("geometry_msgs/msg/PoseWithCovarianceStamped":
        ("header", NESTED, 0, "std_msgs/msg/Header"),
        ("pose", NESTED, 0, "geometry_msgs/msg/PoseWithCovariance")),
    ty!("hdpf_msgs/msg/BopObject":
        ("obj_id", UINT32, 0, ""), ("cam_r_m2c", FLOAT64 + ARRAY, 9, ""),
        ("cam_t_m2c", FLOAT64 + ARRAY, 3, ""), ("extra_json", STRING, 0, "")),
    ty!("hdpf_msgs/msg/BopFrame":
        ("header", NESTED, 0, "std_msgs/msg/Header"), ("split", STRING, 0, ""),
        ("scene_id", UINT32, 0, ""), ("im_id", UINT32, 0, ""), ("depth_scale", FLOAT64, 0, ""),
        ("has_cam_w2c", BOOL, 0, ""), ("cam_r_w2c", FLOAT64 + ARRAY, 9, ""),
        ("cam_t_w2c", FLOAT64 + ARRAY, 3, ""), ("has_gt", BOOL, 0, ""),
        ("gt", NESTED + SEQUENCE, 0, "hdpf_msgs/msg/BopObject"), ("extra_json", STRING, 0, "")),
];

/// The description of `name` (`pkg/msg/Type`), if hdpf knows it.
pub fn description(name: &str) -> Option<&'static TypeDescription> {
    TYPES.iter().find(|t| t.name == name)
}

/// The types `t` uses, transitively, sorted by name (`None` when one is unknown).
fn referenced(t: &TypeDescription) -> Option<Vec<&'static TypeDescription>> {
    let mut out: Vec<&'static TypeDescription> = Vec::new();
    let mut todo: Vec<&str> = t.fields.iter().map(|f| f.3).collect();
    while let Some(n) = todo.pop() {
        if n.is_empty() || out.iter().any(|r| r.name == n) {
            continue;
        }
        let r = description(n)?;
        todo.extend(r.fields.iter().map(|f| f.3));
        out.push(r);
    }
    out.sort_by_key(|r| r.name);
    Some(out)
}

/// `{"type_name": …, "fields": [...]}` as `json.dumps` writes it with `", "`, `": "`.
fn json_of(t: &TypeDescription) -> String {
    let fields: Vec<String> = (t.fields.iter())
        .map(|Field(name, id, cap, nested)| {
            format!(
                "{{\"name\": \"{name}\", \"type\": {{\"type_id\": {id}, \"capacity\": {cap}, \
                 \"string_capacity\": 0, \"nested_type_name\": \"{nested}\"}}}}"
            )
        })
        .collect();
    format!(
        "{{\"type_name\": \"{}\", \"fields\": [{}]}}",
        t.name,
        fields.join(", ")
    )
}

/// The hashed text `J` of type `name` (see the module docs), `None` for an unknown type.
pub fn hashed_json(name: &str) -> Option<String> {
    let t = description(name)?;
    let refs: Vec<String> = referenced(t)?.into_iter().map(json_of).collect();
    Some(format!(
        "{{\"type_description\": {}, \"referenced_type_descriptions\": [{}]}}",
        json_of(t),
        refs.join(", ")
    ))
}

/// `RIHS01_<hex SHA-256 of J>` of type `name` (REP 2016), `None` for an unknown type.
pub fn rihs01(name: &str) -> Option<String> {
    let digest = Sha256::digest(hashed_json(name)?.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("RIHS01_{hex}"))
}

/// The DDS name of a ROS type, as rmw implementations mangle it:
/// `sensor_msgs/msg/Image` → `sensor_msgs::msg::dds_::Image_`.
pub fn dds_type_name(name: &str) -> String {
    match name.rsplit_once('/') {
        Some((pkg, ty)) => format!("{}::dds_::{ty}_", pkg.replace('/', "::")),
        None => format!("{name}_"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hashes of standard types as ROS 2 (Jazzy) publishes them (the `type_hashes` of
    /// `share/<pkg>/msg/<Type>.json`, also what `ros2 topic info -v` prints): written by hand.
    #[test]
    fn hashes_of_standard_types_match_ros() {
        for (name, hash) in [
            (
                "std_msgs/msg/String",
                "df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18",
            ),
            (
                "sensor_msgs/msg/Image",
                "d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47",
            ),
            (
                "sensor_msgs/msg/CompressedImage",
                "15640771531571185e2efc8a100baf923961a4d15d5569652e6cb6691e8e371a",
            ),
            (
                "sensor_msgs/msg/CameraInfo",
                "b3dfd68ff46c9d56c80fd3bd4ed22c7a4ddce8c8348f2f59c299e73118e7e275",
            ),
            (
                "geometry_msgs/msg/PoseWithCovarianceStamped",
                "26432f9803e43727d3c8f668d1fdb3c630f548af631e2f4e31382371bfea3b6e",
            ),
        ] {
            assert_eq!(rihs01(name).unwrap(), format!("RIHS01_{hash}"), "{name}");
        }
        assert!(rihs01("pkg/msg/Unknown").is_none());
    }

    #[test]
    fn json_is_what_rosidl_hashes() {
        let j = hashed_json("std_msgs/msg/Header").unwrap();
        assert_eq!(
            j,
            "{\"type_description\": {\"type_name\": \"std_msgs/msg/Header\", \"fields\": [\
             {\"name\": \"stamp\", \"type\": {\"type_id\": 1, \"capacity\": 0, \"string_capacity\": 0, \
             \"nested_type_name\": \"builtin_interfaces/msg/Time\"}}, {\"name\": \"frame_id\", \"type\": \
             {\"type_id\": 17, \"capacity\": 0, \"string_capacity\": 0, \"nested_type_name\": \"\"}}]}, \
             \"referenced_type_descriptions\": [{\"type_name\": \"builtin_interfaces/msg/Time\", \"fields\": \
             [{\"name\": \"sec\", \"type\": {\"type_id\": 6, \"capacity\": 0, \"string_capacity\": 0, \
             \"nested_type_name\": \"\"}}, {\"name\": \"nanosec\", \"type\": {\"type_id\": 7, \"capacity\": 0, \
             \"string_capacity\": 0, \"nested_type_name\": \"\"}}]}]}"
        );
        // Every known type resolves its references.
        assert!(TYPES.iter().all(|t| rihs01(t.name).is_some()));
    }

    #[test]
    fn dds_names() {
        assert_eq!(
            dds_type_name("sensor_msgs/msg/Image"),
            "sensor_msgs::msg::dds_::Image_"
        );
        assert_eq!(
            dds_type_name("geometry_msgs/msg/PoseWithCovarianceStamped"),
            "geometry_msgs::msg::dds_::PoseWithCovarianceStamped_"
        );
    }
}
