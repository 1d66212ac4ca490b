//! What ROS 2's `rmw_zenoh_cpp` puts on the wire besides the CDR payload, so that ROS 2 nodes
//! running rmw_zenoh see hdpf's topics and hdpf sees theirs.
//!
//! **Version followed:** `ros2/rmw_zenoh` as of its `rolling` branch in 2025 (the conventions of the
//! Jazzy 0.2.x and Kilted 0.6.x releases: the 13-part liveliness tokens with node id, entity
//! id, enclave and type hash, the keyed attachment, XXH3 GIDs). Read from
//! `rmw_zenoh_cpp/src/detail/liveliness_utils.cpp` and `attachment_helpers.cpp`. Earlier
//! (pre-release, 2024) versions used other token layouts and are not supported.
//!
//! - **Topic key expression** ([`topic_keyexpr`]):
//!   `<domain_id>/<topic without leading or trailing '/'>/<dds type>/<RIHS01 hash>`, e.g.
//!   `0/camera/color/image_raw/sensor_msgs::msg::dds_::Image_/RIHS01_d31d…7d47`.
//! - **Payload**: the CDR message with its 4-byte encapsulation header (see [`super::cdr`]).
//! - **Attachment** ([`Attachment`]): zenoh-ext serialisation of `"sequence_number"`, `i64`,
//!   `"source_timestamp"`, `i64` (publish time, ns since the Unix epoch), `"source_gid"`, 16 bytes;
//!   a string or byte buffer is a LEB128 length then the bytes, an `i64` 8 bytes little-endian.
//! - **Liveliness tokens** ([`liveliness_keyexpr`]):
//!   `@ros2_lv/<domain>/<zid>/<node id>/<entity id>/<NN|MP|MS>/<enclave>/<namespace>/<node>`
//!   and, for a publisher (`MP`) or subscription (`MS`),
//!   `/<topic>/<dds type>/<RIHS01 hash>/<qos>`; every `/` inside a name is written `%` (the root
//!   namespace and enclave `/` become `%`). ROS 2 builds its graph (`ros2 node list`,
//!   `ros2 topic list`) from these tokens.
//! - **GID** ([`entity_gid`]): XXH3-128 of the entity's liveliness key expression, low 64 bits then
//!   high 64 bits, each little-endian.

use super::type_hash::{dds_type_name, rihs01};
use crate::core::error::{Error, Result};

/// The admin space of liveliness tokens.
pub const ADMIN_SPACE: &str = "@ros2_lv";

/// QoS of every hdpf publisher and subscription in a token: reliable (1), volatile (2), keep last
/// (1) with depth 10, default deadline, lifespan and liveliness (empty fields) — rmw_zenoh's
/// `<reliability>:<durability>:<history>,<depth>:<deadline s>,<ns>:<lifespan s>,<ns>:<liveliness>,<lease s>,<ns>`.
pub const QOS: &str = "1:2:1,10:,:,:,,";

/// `<dds type>/<RIHS01 hash>` of ROS type `ros_type` (`sensor_msgs/msg/Image`).
fn type_part(ros_type: &str) -> Result<String> {
    let hash = rihs01(ros_type).ok_or_else(|| {
        Error::param("type", ros_type, "hdpf has no description of this ROS type")
    })?;
    Ok(format!("{}/{hash}", dds_type_name(ros_type)))
}

/// The key expression rmw_zenoh publishes topic `topic` of type `ros_type` on in `domain_id`.
pub fn topic_keyexpr(domain_id: u32, topic: &str, ros_type: &str) -> Result<String> {
    let name = topic.trim_start_matches('/').trim_end_matches('/');
    if name.is_empty() || name.contains("//") || name.contains(['*', '$', '?', '#']) {
        return Err(Error::param("topic", topic, "not a valid ROS 2 topic name"));
    }
    Ok(format!("{domain_id}/{name}/{}", type_part(ros_type)?))
}

/// `/` → `%`, as rmw_zenoh writes names inside a token.
pub fn mangle(name: &str) -> String {
    name.replace('/', "%")
}

/// What a liveliness token announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntityKind {
    /// A node (`NN`).
    Node,
    /// A publisher (`MP`).
    Publisher,
    /// A subscription (`MS`).
    Subscription,
}

impl EntityKind {
    fn code(self) -> &'static str {
        match self {
            EntityKind::Node => "NN",
            EntityKind::Publisher => "MP",
            EntityKind::Subscription => "MS",
        }
    }
}

/// The node an entity belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// ROS domain id.
    pub domain_id: u32,
    /// The zenoh session id as zenoh prints it (hex).
    pub zid: String,
    /// Node id within the session (rmw_zenoh counts entities per context).
    pub node_id: u64,
    /// Node name (`hdpf_tracker`).
    pub name: String,
    /// Namespace (`/`).
    pub namespace: String,
}

/// The liveliness key expression of entity `entity_id` of `kind` on `node`; a publisher or
/// subscription names its `(topic, ros type)`.
pub fn liveliness_keyexpr(
    node: &NodeInfo,
    entity_id: u64,
    kind: EntityKind,
    topic: Option<(&str, &str)>,
) -> Result<String> {
    let mut parts = vec![
        ADMIN_SPACE.to_string(),
        node.domain_id.to_string(),
        node.zid.clone(),
        node.node_id.to_string(),
        entity_id.to_string(),
        kind.code().to_string(),
        mangle("/"),
        mangle(&node.namespace),
        mangle(&node.name),
    ];
    if let Some((name, ros_type)) = topic {
        parts.push(mangle(name));
        parts.push(type_part(ros_type)?);
        parts.push(QOS.to_string());
    }
    Ok(parts.join("/"))
}

/// The 16-byte GID rmw_zenoh gives the entity whose token is `keyexpr`.
pub fn entity_gid(keyexpr: &str) -> [u8; 16] {
    let h = xxhash_rust::xxh3::xxh3_128(keyexpr.as_bytes());
    let mut gid = [0u8; 16];
    gid[..8].copy_from_slice(&(h as u64).to_le_bytes());
    gid[8..].copy_from_slice(&((h >> 64) as u64).to_le_bytes());
    gid
}

/// The attachment of every rmw_zenoh sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// Per publisher, from 1.
    pub sequence_number: i64,
    /// Publish time, ns since the Unix epoch.
    pub source_timestamp: i64,
    /// The publisher's GID ([`entity_gid`]).
    pub source_gid: [u8; 16],
}

/// LEB128 length then bytes (zenoh-ext's string / buffer encoding).
fn put_buf(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut n = bytes.len();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
    out.extend_from_slice(bytes);
}

/// A reader over attachment bytes.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(Error::param("attachment", what, "truncated"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    fn buf(&mut self, what: &str) -> Result<&'a [u8]> {
        let (mut n, mut shift) = (0usize, 0);
        loop {
            let b = self.take(1, what)?[0];
            n |= ((b & 0x7f) as usize) << shift;
            shift += 7;
            if b & 0x80 == 0 || shift > 63 {
                break;
            }
        }
        self.take(n, what)
    }

    fn keyed_i64(&mut self, key: &str) -> Result<i64> {
        self.key(key)?;
        let b = self.take(8, key)?;
        Ok(i64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    }

    fn key(&mut self, key: &str) -> Result<()> {
        match self.buf(key)? == key.as_bytes() {
            true => Ok(()),
            false => Err(Error::param("attachment", key, "key not found in order")),
        }
    }
}

impl Attachment {
    /// The bytes rmw_zenoh writes (see the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(80);
        put_buf(&mut out, b"sequence_number");
        out.extend_from_slice(&self.sequence_number.to_le_bytes());
        put_buf(&mut out, b"source_timestamp");
        out.extend_from_slice(&self.source_timestamp.to_le_bytes());
        put_buf(&mut out, b"source_gid");
        put_buf(&mut out, &self.source_gid);
        out
    }

    /// Reads what [`Attachment::to_bytes`] writes (and rmw_zenoh sends).
    pub fn from_bytes(bytes: &[u8]) -> Result<Attachment> {
        let mut c = Cursor(bytes);
        let sequence_number = c.keyed_i64("sequence_number")?;
        let source_timestamp = c.keyed_i64("source_timestamp")?;
        c.key("source_gid")?;
        let gid = c.buf("source_gid")?;
        let source_gid = gid
            .try_into()
            .map_err(|_| Error::param("attachment", gid.len(), "source_gid must have 16 bytes"))?;
        Ok(Attachment {
            sequence_number,
            source_timestamp,
            source_gid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> NodeInfo {
        NodeInfo {
            domain_id: 0,
            zid: "a1b2c3".into(),
            node_id: 0,
            name: "hdpf_tracker".into(),
            namespace: "/".into(),
        }
    }

    #[test]
    fn topic_key_expressions() {
        assert_eq!(
            topic_keyexpr(0, "/camera/color/image_raw", "sensor_msgs/msg/Image").unwrap(),
            "0/camera/color/image_raw/sensor_msgs::msg::dds_::Image_/\
             RIHS01_d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47"
        );
        assert_eq!(
            topic_keyexpr(
                7,
                "/hdpf/rfpf/obj_000001/pose",
                "geometry_msgs/msg/PoseWithCovarianceStamped"
            )
            .unwrap(),
            "7/hdpf/rfpf/obj_000001/pose/geometry_msgs::msg::dds_::PoseWithCovarianceStamped_/\
             RIHS01_26432f9803e43727d3c8f668d1fdb3c630f548af631e2f4e31382371bfea3b6e"
        );
        assert!(topic_keyexpr(0, "/a//b", "sensor_msgs/msg/Image").is_err());
        assert!(topic_keyexpr(0, "/", "sensor_msgs/msg/Image").is_err());
        assert!(topic_keyexpr(0, "/a", "foo_msgs/msg/Bar").is_err());
    }

    #[test]
    fn liveliness_tokens() {
        assert_eq!(
            liveliness_keyexpr(&node(), 0, EntityKind::Node, None).unwrap(),
            "@ros2_lv/0/a1b2c3/0/0/NN/%/%/hdpf_tracker"
        );
        let t = (
            "/hdpf/rfpf/obj_000001/pose",
            "geometry_msgs/msg/PoseWithCovarianceStamped",
        );
        assert_eq!(
            liveliness_keyexpr(&node(), 3, EntityKind::Publisher, Some(t)).unwrap(),
            "@ros2_lv/0/a1b2c3/0/3/MP/%/%/hdpf_tracker/%hdpf%rfpf%obj_000001%pose/\
             geometry_msgs::msg::dds_::PoseWithCovarianceStamped_/\
             RIHS01_26432f9803e43727d3c8f668d1fdb3c630f548af631e2f4e31382371bfea3b6e/1:2:1,10:,:,:,,"
        );
        let ns = NodeInfo {
            namespace: "/robot1".into(),
            ..node()
        };
        let s = liveliness_keyexpr(
            &ns,
            4,
            EntityKind::Subscription,
            Some(("/a", "std_msgs/msg/UInt64")),
        );
        assert!(s.unwrap().starts_with("@ros2_lv/0/a1b2c3/0/4/MS/%/%robot1/hdpf_tracker/%a/std_msgs::msg::dds_::UInt64_/RIHS01_"));
    }

    /// XXH3-128 of the empty input is 0x99aa06d3014798d8_6001c324468d497f (the xxHash test
    /// vector); rmw_zenoh stores the low half first, little-endian.
    #[test]
    fn gid_is_xxh3_low_then_high() {
        assert_eq!(
            entity_gid(""),
            [
                0x7f, 0x49, 0x8d, 0x46, 0x24, 0xc3, 0x01, 0x60, 0xd8, 0x98, 0x47, 0x01, 0xd3, 0x06,
                0xaa, 0x99
            ]
        );
    }

    #[test]
    fn attachment_bytes_by_hand() {
        let a = Attachment {
            sequence_number: 1,
            source_timestamp: 0x0102_0304_0506_0708,
            source_gid: std::array::from_fn(|i| i as u8),
        };
        let mut want = vec![15u8];
        want.extend_from_slice(b"sequence_number");
        want.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        want.push(16);
        want.extend_from_slice(b"source_timestamp");
        want.extend_from_slice(&[8, 7, 6, 5, 4, 3, 2, 1]);
        want.push(10);
        want.extend_from_slice(b"source_gid");
        want.push(16);
        want.extend(0u8..16);
        assert_eq!(want.len(), 77);
        assert_eq!(a.to_bytes(), want);
        assert_eq!(Attachment::from_bytes(&want).unwrap(), a);
        assert!(Attachment::from_bytes(&want[..70]).is_err());
        let mut wrong = want.clone();
        wrong[1] = b'S';
        assert!(Attachment::from_bytes(&wrong).is_err());
        // A 200-byte length takes two LEB128 bytes.
        let mut v = Vec::new();
        put_buf(&mut v, &[0u8; 200]);
        assert_eq!(&v[..2], &[0xc8, 0x01]);
    }
}
