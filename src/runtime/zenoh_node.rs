//! A ROS 2 node on zenoh, as `rmw_zenoh` makes one (feature `zenoh`): a zenoh session in peer mode
//! (TCP only, no multicast scouting), the node's liveliness token, publishers and subscriptions
//! with their tokens, key expressions, CDR payloads and attachments
//! ([`crate::domains::recording::rmw_zenoh`]).
//!
//! Discovery: ROS 2 nodes running rmw_zenoh find each other through a router (`rmw_zenohd`,
//! listening on `tcp/localhost:7447` by default); hdpf joins such a system by *connecting* to the
//! router. Two hdpf processes need no router: one *listens* on an endpoint, the other connects to
//! it (peer to peer). Samples are sent reliably with congestion control `Block` (a full
//! transmission queue blocks the publisher instead of dropping).

use crate::core::error::{Error, Result};
use crate::domains::recording::rmw_zenoh::{
    entity_gid, liveliness_keyexpr, topic_keyexpr, Attachment, EntityKind, NodeInfo,
};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use zenoh::bytes::ZBytes;
use zenoh::liveliness::LivelinessToken;
use zenoh::pubsub::{Publisher, Subscriber};
use zenoh::qos::CongestionControl;
use zenoh::{Session, Wait};

/// hdpf's stream control, as `std_msgs/msg/UInt64`: the zenoh source publishes how many frames
/// its pipeline has taken so far (at start, every [`TAKEN_HEARTBEAT`] while idle, after each
/// frame); `hdpf replay` in lossless mode keeps at most [`LOSSLESS_WINDOW`] frames beyond it in
/// flight.
pub const TAKEN_TOPIC: &str = "/hdpf/source/frames_taken";
/// The end-of-stream marker of `hdpf replay`, as `std_msgs/msg/UInt64`: the number of frames sent.
pub const END_TOPIC: &str = "/hdpf/replay/end_of_stream";
/// Frames `hdpf replay` sends ahead of the receiver's count in lossless mode.
pub const LOSSLESS_WINDOW: u64 = 2;
/// How often an idle zenoh source repeats its count (so a replay started later sees it).
pub const TAKEN_HEARTBEAT: std::time::Duration = std::time::Duration::from_millis(200);

/// The variable rmw_zenoh reads for a session configuration file (json5); hdpf starts from that
/// file too (transport tuning, TLS-free TCP options, timeouts), then sets the mode (peer), turns
/// multicast scouting off and sets the endpoints itself.
pub const SESSION_CONFIG_ENV: &str = "ZENOH_SESSION_CONFIG_URI";

/// zenoh's defaults, or the file named by [`SESSION_CONFIG_ENV`].
fn base_config() -> Result<zenoh::Config> {
    config_from(std::env::var_os(SESSION_CONFIG_ENV).as_deref())
}

/// zenoh's defaults without a file, else the file at `path`.
fn config_from(path: Option<&std::ffi::OsStr>) -> Result<zenoh::Config> {
    let Some(path) = path.map(std::path::Path::new) else {
        return Ok(zenoh::Config::default());
    };
    zenoh::Config::from_file(path).map_err(|e| {
        let why = format!("{SESSION_CONFIG_ENV}: not a zenoh configuration: {e}");
        Error::format(path, why)
    })
}

/// The ROS type of an image topic by image_transport's naming: `…/compressed` and
/// `…/compressedDepth` carry `sensor_msgs/msg/CompressedImage`, anything else `sensor_msgs/msg/Image`.
pub fn image_type(topic: &str) -> &'static str {
    match topic.ends_with("/compressed") || topic.ends_with("/compressedDepth") {
        true => "sensor_msgs/msg/CompressedImage",
        false => "sensor_msgs/msg/Image",
    }
}

/// Where a session reaches its peers: endpoints it listens on and endpoints it connects to
/// (`tcp/HOST:PORT`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoints {
    /// Endpoints to listen on.
    pub listen: Vec<String>,
    /// Endpoints (a router, or a listening peer) to connect to.
    pub connect: Vec<String>,
}

impl Endpoints {
    /// Checks every endpoint is `tcp/HOST:PORT` (this build has only the TCP transport).
    pub fn check(&self) -> std::result::Result<(), String> {
        for e in self.listen.iter().chain(&self.connect) {
            let Some(addr) = e.strip_prefix("tcp/") else {
                return Err(format!(
                    "endpoint `{e}`: only `tcp/HOST:PORT` is supported (feature zenoh is TCP only)"
                ));
            };
            if addr
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_none()
            {
                return Err(format!("endpoint `{e}`: expected tcp/HOST:PORT"));
            }
        }
        match self.listen.is_empty() && self.connect.is_empty() {
            true => Err("give an endpoint to listen on or to connect to".into()),
            false => Ok(()),
        }
    }
}

fn zerr(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Other(format!("zenoh: {what}: {e}"))
}

/// ns since the Unix epoch now.
pub fn unix_ns() -> i64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    d.map_or(0, |d| d.as_nanos() as i64)
}

/// A node: one zenoh session and its liveliness token.
pub struct RosNode {
    session: Session,
    info: NodeInfo,
    next_id: AtomicU64,
    _token: LivelinessToken,
}

/// A publisher of one topic.
pub struct RosPublisher {
    publisher: Publisher<'static>,
    gid: [u8; 16],
    seq: i64,
    _token: LivelinessToken,
}

/// A sample as a subscription hands it over.
#[derive(Clone, Debug)]
pub struct Received {
    /// Which subscription (the tag given to [`RosNode::subscribe`]).
    pub tag: usize,
    /// The CDR payload as zenoh delivered it (not copied: see [`Received::payload`]; it holds
    /// zenoh's receive buffers until dropped).
    bytes: ZBytes,
    /// rmw_zenoh's attachment, when the sender wrote a valid one.
    pub attachment: Option<Attachment>,
    /// Arrival time, ns since the Unix epoch.
    pub received_ns: i64,
}

impl Received {
    /// The CDR payload: borrowed when zenoh holds it in one piece (a sample that fit in one
    /// batch), copied into one buffer otherwise (a reassembled sample is one slice per 64 KB
    /// fragment) — on the caller's thread, not on zenoh's receive thread.
    pub fn payload(&self) -> Cow<'_, [u8]> {
        self.bytes.to_bytes()
    }
}

/// Where subscriptions put their samples: a bounded queue and a count of the samples it refused.
///
/// Subscription callbacks run on zenoh's receive thread and must not block it (the link's other
/// samples and keep-alives wait behind them), so a full queue drops the arriving sample and
/// counts it instead of growing: a live camera faster than a lossless pipeline costs frames,
/// reported at the end, never unbounded memory. `hdpf replay` paces itself by the receiver's
/// count ([`LOSSLESS_WINDOW`] frames ahead), far below any capacity used here.
#[derive(Clone, Debug)]
pub struct Inbox {
    tx: Sender<Received>,
    dropped: Arc<AtomicU64>,
}

impl Inbox {
    /// An inbox holding at most `capacity` samples, and its receiving end.
    pub fn bounded(capacity: usize) -> (Inbox, Receiver<Received>) {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        (Inbox { tx, dropped }, rx)
    }

    /// Queues `r`, or counts it dropped when the queue is full. A closed receiver means the
    /// reader is gone: nothing is left to do with samples, and they are not counted.
    pub fn offer(&self, r: Received) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(r) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Samples dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// A live subscription (dropping it undeclares it).
pub struct RosSubscription {
    _subscriber: Subscriber<()>,
    _token: LivelinessToken,
}

impl RosNode {
    /// Opens a session on `endpoints` and announces node `name` (root namespace) in `domain_id`.
    pub fn open(name: &str, domain_id: u32, endpoints: &Endpoints) -> Result<RosNode> {
        endpoints.check().map_err(Error::Other)?;
        let mut config = base_config()?;
        let json = |v: &[String]| serde_json::to_string(v).unwrap_or_default();
        let settings = [
            ("mode", "\"peer\"".to_string()),
            ("scouting/multicast/enabled", "false".to_string()),
            ("listen/endpoints", json(&endpoints.listen)),
            ("connect/endpoints", json(&endpoints.connect)),
        ];
        for (key, value) in settings {
            config
                .insert_json5(key, &value)
                .map_err(|e| zerr(&format!("config {key} = {value}"), e))?;
        }
        let session = zenoh::open(config).wait().map_err(|e| {
            let at = endpoints.listen.iter().chain(&endpoints.connect);
            zerr(
                &format!("cannot open a session on {:?}", at.collect::<Vec<_>>()),
                e,
            )
        })?;
        let info = NodeInfo {
            domain_id,
            zid: session.zid().to_string(),
            node_id: 0,
            name: name.to_string(),
            namespace: "/".to_string(),
        };
        let key = liveliness_keyexpr(&info, 0, EntityKind::Node, None)?;
        let token = declare_token(&session, key)?;
        Ok(RosNode {
            session,
            info,
            next_id: AtomicU64::new(1),
            _token: token,
        })
    }

    /// The node's identity (domain, zenoh id, name).
    pub fn info(&self) -> &NodeInfo {
        &self.info
    }

    /// A reliable, blocking publisher of `topic` with ROS type `ros_type`, announced by its token.
    pub fn publisher(&self, topic: &str, ros_type: &str) -> Result<RosPublisher> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let token_key = liveliness_keyexpr(
            &self.info,
            id,
            EntityKind::Publisher,
            Some((topic, ros_type)),
        )?;
        let key = topic_keyexpr(self.info.domain_id, topic, ros_type)?;
        let publisher = (self.session.declare_publisher(key.clone()))
            .congestion_control(CongestionControl::Block)
            .wait()
            .map_err(|e| zerr(&format!("declare publisher {key}"), e))?;
        Ok(RosPublisher {
            publisher,
            gid: entity_gid(&token_key),
            seq: 0,
            _token: declare_token(&self.session, token_key)?,
        })
    }

    /// Subscribes to `topic` of `ros_type`: every sample is offered to `inbox`, tagged `tag`.
    pub fn subscribe(
        &self,
        topic: &str,
        ros_type: &str,
        tag: usize,
        inbox: Inbox,
    ) -> Result<RosSubscription> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let token_key = liveliness_keyexpr(
            &self.info,
            id,
            EntityKind::Subscription,
            Some((topic, ros_type)),
        )?;
        let key = topic_keyexpr(self.info.domain_id, topic, ros_type)?;
        let subscriber = (self.session.declare_subscriber(key.clone()))
            .callback(move |sample| {
                // Arrival: stamped before anything is copied out of the sample.
                let received_ns = unix_ns();
                let attachment =
                    (sample.attachment()).and_then(|a| Attachment::from_bytes(&a.to_bytes()).ok());
                inbox.offer(Received {
                    tag,
                    // Not copied here: this runs on zenoh's receive thread, ahead of the
                    // link's next samples (a frame's colour image waits behind its depth's).
                    bytes: sample.payload().clone(),
                    attachment,
                    received_ns,
                });
            })
            .wait()
            .map_err(|e| zerr(&format!("declare subscriber {key}"), e))?;
        Ok(RosSubscription {
            _subscriber: subscriber,
            _token: declare_token(&self.session, token_key)?,
        })
    }

    /// Closes the session (pending samples are flushed first).
    pub fn close(self) -> Result<()> {
        self.session.close().wait().map_err(|e| zerr("close", e))
    }
}

fn declare_token(session: &Session, key: String) -> Result<LivelinessToken> {
    (session.liveliness().declare_token(key.clone()))
        .wait()
        .map_err(|e| zerr(&format!("liveliness token {key}"), e))
}

impl RosPublisher {
    /// Publishes one CDR payload with the next sequence number; returns its source timestamp.
    pub fn publish(&mut self, cdr: Vec<u8>) -> Result<i64> {
        self.seq += 1;
        let a = Attachment {
            sequence_number: self.seq,
            source_timestamp: unix_ns(),
            source_gid: self.gid,
        };
        (self.publisher.put(cdr))
            .attachment(a.to_bytes())
            .wait()
            .map_err(|e| zerr(&format!("put on {}", self.publisher.key_expr()), e))?;
        Ok(a.source_timestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(tag: usize) -> Received {
        let bytes = ZBytes::from(vec![tag as u8; 3]);
        let (attachment, received_ns) = (None, 0);
        Received {
            tag,
            bytes,
            attachment,
            received_ns,
        }
    }

    #[test]
    fn a_full_inbox_keeps_the_oldest_samples_and_counts_the_rest() {
        let (inbox, rx) = Inbox::bounded(3);
        (0..5).for_each(|tag| inbox.offer(sample(tag)));
        assert_eq!(inbox.dropped(), 2);
        let kept: Vec<usize> = rx.try_iter().map(|r| r.tag).collect();
        assert_eq!(kept, [0, 1, 2]);
        // Room again once read; a clone counts into the same total.
        inbox.clone().offer(sample(7));
        assert_eq!(
            (rx.try_recv().map(|r| r.tag).ok(), inbox.dropped()),
            (Some(7), 2)
        );
        // A reader that is gone is not a drop.
        drop(rx);
        inbox.offer(sample(8));
        assert_eq!(inbox.dropped(), 2);
    }

    #[test]
    fn a_session_config_file_is_read_or_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("hdpf-zenoh-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.json5");
        std::fs::write(
            &good,
            "{ transport: { link: { tx: { queue: { size: { data: 8 } } } } } }",
        )
        .unwrap();
        let config = config_from(Some(good.as_os_str())).unwrap();
        let size = config
            .get_json("transport/link/tx/queue/size/data")
            .unwrap();
        assert_eq!(size, "8");
        let bad = dir.join("bad.json5");
        std::fs::write(&bad, "{ transport: { no_such_key: 1 } }").unwrap();
        let err = config_from(Some(bad.as_os_str())).unwrap_err().to_string();
        assert!(
            err.contains("bad.json5") && err.contains(SESSION_CONFIG_ENV),
            "{err}"
        );
        let missing = dir.join("missing.json5");
        let err = config_from(Some(missing.as_os_str()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.json5"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn endpoints_are_checked() {
        let e = |l: &[&str], c: &[&str]| Endpoints {
            listen: l.iter().map(|s| s.to_string()).collect(),
            connect: c.iter().map(|s| s.to_string()).collect(),
        };
        assert!(e(&["tcp/127.0.0.1:7447"], &[]).check().is_ok());
        assert!(e(&[], &["tcp/localhost:7447"]).check().is_ok());
        assert!(e(&[], &[]).check().unwrap_err().contains("endpoint"));
        assert!(e(&["udp/1.2.3.4:5"], &[])
            .check()
            .unwrap_err()
            .contains("TCP only"));
        assert!(e(&["tcp/1.2.3.4"], &[]).check().is_err());
    }
}
