//! `[sinks.zenoh]` (feature `zenoh`): estimates published as ROS 2 messages over zenoh, as
//! rmw_zenoh publishes them: per tracker and object one `geometry_msgs/msg/PoseWithCovarianceStamped`
//! on `/hdpf/<tracker>/obj_<id:06>/pose` ([`crate::domains::recording::ros_msgs::estimate_topic`]), the same messages as
//! [`super::mcap`] writes (stamped as its input frame, covariance in ROS's convention). A
//! ROS 2 system sees them through its router: `ros2 topic echo /hdpf/rfpf/obj_000001/pose`.

use super::{default_frame_id, ros_estimates, Sink, SinkFailure};
use crate::core::error::Result;
use crate::domains::recording::ros_msgs::{PoseWithCovarianceStamped, RosMessage};
use crate::runtime::pipeline::message::{Clock, SinkMsg};
use crate::runtime::pipeline::plugin::{SinkContext, SinkPlugin, SpecError};
use crate::runtime::zenoh_node::{Endpoints, RosNode, RosPublisher};
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// `[sinks.zenoh]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZenohSinkSpec {
    /// Endpoint to listen on (controllers connect here).
    pub listen: Option<Spanned<String>>,
    /// Endpoint to connect to (a router such as `rmw_zenohd` on `tcp/localhost:7447`).
    pub connect: Option<Spanned<String>>,
    /// ROS domain id.
    #[serde(default)]
    pub domain_id: u32,
    /// `frame_id` of the estimates (the camera's optical frame).
    #[serde(default = "default_frame_id")]
    pub frame_id: String,
}

impl ZenohSinkSpec {
    fn endpoints(&self) -> Endpoints {
        let one = |e: &Option<Spanned<String>>| e.iter().map(|s| s.get_ref().clone()).collect();
        Endpoints {
            listen: one(&self.listen),
            connect: one(&self.connect),
        }
    }
}

impl SinkPlugin for ZenohSinkSpec {
    fn check(&self) -> std::result::Result<(), SpecError> {
        self.endpoints().check().map_err(|why| {
            match self.listen.as_ref().or(self.connect.as_ref()) {
                Some(v) => SpecError::at(v, why),
                None => SpecError::table(format!("needs `listen` or `connect`: {why}")),
            }
        })
    }

    fn open(&self, ctx: &SinkContext) -> Result<Option<Box<dyn Sink>>> {
        let node = RosNode::open("hdpf_estimates", self.domain_id, &self.endpoints())?;
        let name = format!("zenoh:{}", node.info().zid);
        Ok(Some(Box::new(ZenohSink {
            node: Some(node),
            publishers: BTreeMap::new(),
            frame_id: self.frame_id.clone(),
            clock: ctx.clock,
            name,
        })))
    }
}

/// Publishes every estimate; one publisher per topic, declared at its first estimate.
pub struct ZenohSink {
    node: Option<RosNode>,
    publishers: BTreeMap<String, RosPublisher>,
    frame_id: String,
    clock: Clock,
    name: String,
}

impl Sink for ZenohSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&mut self, msg: &SinkMsg) -> Result<()> {
        let (SinkMsg::Estimate(e), Some(node)) = (msg, self.node.as_ref()) else {
            return Ok(());
        };
        let (_, messages) = ros_estimates(e, &self.clock, &self.frame_id);
        for (topic, m) in messages {
            if !self.publishers.contains_key(&topic) {
                let p = node.publisher(&topic, PoseWithCovarianceStamped::NAME)?;
                self.publishers.insert(topic.clone(), p);
            }
            if let Some(p) = self.publishers.get_mut(&topic) {
                p.publish(m.to_cdr())?;
            }
        }
        Ok(())
    }

    /// A network peer: its failure (the link to a router lost, say) drops the sink, the run goes
    /// on. Subscribers that come and go are not failures at all: zenoh publishes to whoever listens.
    fn on_failure(&self) -> SinkFailure {
        SinkFailure::Drop
    }

    fn finish(&mut self) -> Result<()> {
        self.publishers.clear();
        self.node.take().map_or(Ok(()), RosNode::close)
    }
}
