//! `sinks.jsonl`: one JSON object per line (`estimate` and `skipped` messages) to stdout, a file
//! or UDP datagrams.

use super::{create_parent, Sink};
use crate::core::error::{Error, Result};
use crate::runtime::pipeline::message::{
    Clock, EstimateMsg, ObjectEstimate, SinkMsg, SkippedFrame,
};
use crate::runtime::pipeline::plugin::{SinkContext, SinkPlugin, SpecError};
use serde::Deserialize;
use serde_json::{json, Value};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::UdpSocket;
use std::path::PathBuf;

/// Where JSON lines go.
#[derive(Clone, Debug, PartialEq)]
pub enum JsonTarget {
    /// Standard output.
    Stdout,
    /// A file (created or truncated).
    File(PathBuf),
    /// One UDP datagram per line to this address (`host:port`).
    Udp(String),
}

impl std::str::FromStr for JsonTarget {
    type Err = Error;
    /// `-` or `stdout`; `udp://host:port`; anything else is a file path.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "" => Err(Error::param("jsonl", s, "empty target")),
            "-" | "stdout" => Ok(JsonTarget::Stdout),
            _ => Ok(s
                .strip_prefix("udp://")
                .map_or_else(|| JsonTarget::File(s.into()), |a| JsonTarget::Udp(a.into()))),
        }
    }
}

enum JsonOut {
    Writer(Box<dyn Write + Send>),
    Udp(UdpSocket, String),
}

/// Writes one JSON object per line: `estimate` and `skipped` messages (schema in the README, "JSON-lines messages").
pub struct JsonLinesSink {
    out: JsonOut,
    clock: Clock,
    target: String,
}

impl JsonLinesSink {
    /// Open `target`; times are converted to Unix time with `clock`.
    pub fn open(target: &JsonTarget, clock: Clock) -> Result<Self> {
        let out = match target {
            JsonTarget::Stdout => JsonOut::Writer(Box::new(std::io::stdout())),
            JsonTarget::File(p) => {
                let f = File::create(p).map_err(|e| Error::io(p, e))?;
                JsonOut::Writer(Box::new(BufWriter::new(f)))
            }
            JsonTarget::Udp(addr) => {
                let sock = UdpSocket::bind("0.0.0.0:0").map_err(|e| Error::io(addr, e))?;
                JsonOut::Udp(sock, addr.clone())
            }
        };
        Ok(Self {
            out,
            clock,
            target: format!("{target:?}"),
        })
    }

    fn write_line(&mut self, v: &Value) -> Result<()> {
        let line = v.to_string();
        let err = |e| Error::Other(format!("jsonl sink {}: {e}", self.target));
        match &mut self.out {
            JsonOut::Writer(w) => writeln!(w, "{line}").and_then(|_| w.flush()).map_err(err),
            JsonOut::Udp(sock, addr) => sock
                .send_to(line.as_bytes(), addr.as_str())
                .map(drop)
                .map_err(err),
        }
    }
}

/// The JSON of one object estimate.
pub fn object_json(o: &ObjectEstimate) -> Value {
    let t = o.pose.translation.vector;
    let q = o.pose.rotation.quaternion();
    let r = o.pose.rotation.to_rotation_matrix();
    let rm: Vec<f64> = (0..3)
        .flat_map(|i| (0..3).map(move |j| r[(i, j)]))
        .collect();
    let cov: Vec<f64> = (0..6)
        .flat_map(|i| (0..6).map(move |j| o.covariance[(i, j)]))
        .collect();
    json!({
        "obj_id": o.obj_id,
        "t": [t.x, t.y, t.z],
        "q": [q.w, q.i, q.j, q.k],
        "R": rm,
        "cov": cov,
        "velocity": o.velocity.as_slice(),
        "ess": o.diagnostics.ess,
        "loss_std": o.diagnostics.loss_std,
        "quality": o.judgement.quality,
        "visible": o.judgement.visible,
        "held": o.judgement.held,
        "lost": o.judgement.lost,
    })
}

/// The JSON of one estimate message (`"type": "estimate"`).
pub fn estimate_json(m: &EstimateMsg, clock: &Clock) -> Value {
    json!({
        "type": "estimate",
        "tracker": m.tracker,
        "seq": m.seq,
        "scene_id": m.scene_id,
        "im_id": m.im_id,
        "capture": m.capture,
        "publish": m.publish,
        "capture_unix": clock.unix(m.capture),
        "publish_unix": clock.unix(m.publish),
        "latency_ms": m.latency() * 1e3,
        "objects": m.objects.iter().map(object_json).collect::<Vec<_>>(),
    })
}

/// The JSON of one skipped frame (`"type": "skipped"`).
pub fn skipped_json(s: &SkippedFrame) -> Value {
    json!({"type": "skipped", "stage": s.stage, "seq": s.seq, "im_id": s.im_id, "reason": s.reason})
}

impl Sink for JsonLinesSink {
    fn name(&self) -> &str {
        "jsonl"
    }

    fn handle(&mut self, msg: &SinkMsg) -> Result<()> {
        match msg {
            SinkMsg::Estimate(m) => self.write_line(&estimate_json(m, &self.clock)),
            SinkMsg::Skipped(s) => self.write_line(&skipped_json(s)),
            SinkMsg::Frame(_) => Ok(()),
        }
    }
}

/// `sinks.jsonl = "TARGET"`: `-` (stdout), a file, or `udp://host:port`.
#[derive(Clone, Debug, Deserialize)]
#[serde(transparent)]
pub struct JsonlSinkSpec(pub toml::Spanned<String>);

impl SinkPlugin for JsonlSinkSpec {
    fn check(&self) -> std::result::Result<(), SpecError> {
        let target = self.0.get_ref().parse::<JsonTarget>();
        target
            .map(drop)
            .map_err(|e| SpecError::at(&self.0, e.to_string()))
    }

    fn open(&self, ctx: &SinkContext) -> Result<Option<Box<dyn Sink>>> {
        let target: JsonTarget = self.0.get_ref().parse()?;
        if let JsonTarget::File(p) = &target {
            create_parent(p)?;
        }
        Ok(Some(Box::new(JsonLinesSink::open(&target, ctx.clock)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An object's line carries the tracker's judgement as published.
    #[test]
    fn an_object_line_carries_quality_visible_held_and_lost() {
        let v = object_json(&ObjectEstimate::judged(0.3, 0.6, true, false));
        assert_eq!(
            (v["quality"].as_f64(), v["visible"].as_f64()),
            (Some(0.3), Some(0.6))
        );
        assert_eq!(
            (&v["held"], &v["lost"]),
            (&Value::Bool(true), &Value::Bool(false))
        );
        let v = object_json(&ObjectEstimate::judged(0.1, f64::NAN, true, true));
        assert_eq!(
            (&v["visible"], &v["lost"]),
            (&Value::Null, &Value::Bool(true))
        );
    }

    #[test]
    fn parses_targets() {
        assert_eq!("-".parse::<JsonTarget>().unwrap(), JsonTarget::Stdout);
        assert_eq!(
            "udp://127.0.0.1:9000".parse::<JsonTarget>().unwrap(),
            JsonTarget::Udp("127.0.0.1:9000".into())
        );
        assert_eq!(
            "a/b.jsonl".parse::<JsonTarget>().unwrap(),
            JsonTarget::File("a/b.jsonl".into())
        );
    }
}
