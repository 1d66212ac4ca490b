//! `hdpf dataset info FILE.mcap [--json]`: the topics, schemas, encodings, message counts and time
//! range of any valid MCAP file (chunked or not, compressed or not, with or without a summary
//! section, with or without images); a broken file is refused naming the fault.

use crate::{Error, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `hdpf dataset info FILE.mcap [--json]`.
#[derive(clap::Args, Debug, Clone)]
pub struct InfoArgs {
    /// The MCAP file.
    pub file: PathBuf,
    /// Print JSON `{"topics":[{"topic","schema","encoding","messages"}],"start_ns","end_ns"}`.
    #[arg(long)]
    pub json: bool,
}

/// One channel of an MCAP file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicInfo {
    /// Topic name.
    pub topic: String,
    /// Schema name (`""` for a schemaless channel).
    pub schema: String,
    /// The channel's message encoding (`cdr`, `json`, ...).
    pub encoding: String,
    /// Messages on the channel.
    pub messages: u64,
}

/// What `hdpf dataset info` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct McapInfo {
    /// Every channel, by topic then channel id.
    pub topics: Vec<TopicInfo>,
    /// Earliest message log time, ns (`null` without messages).
    pub start_ns: Option<u64>,
    /// Latest message log time, ns (`null` without messages).
    pub end_ns: Option<u64>,
}

/// Reads every record of any valid MCAP file (chunked or not, compressed or not, with or without a
/// summary) and counts the messages of each channel; a broken file is refused naming the fault.
pub fn mcap_info(path: impl AsRef<Path>) -> Result<McapInfo> {
    use mcap::records::Record;
    let path = path.as_ref();
    let bytes = crate::core::memory::read_file(path, 1)?;
    let (mut schemas, mut channels) = (BTreeMap::new(), BTreeMap::new());
    let mut counts: BTreeMap<u16, u64> = BTreeMap::new();
    let (mut start, mut end) = (None::<u64>, None::<u64>);
    for record in super::mcap_records::records(path, &bytes)? {
        match record? {
            Record::Schema { header, .. } => {
                schemas.entry(header.id).or_insert(header.name);
            }
            Record::Channel(c) => {
                channels.entry(c.id).or_insert(c);
            }
            Record::Message { header, .. } => {
                if !channels.contains_key(&header.channel_id) {
                    return Err(Error::format(
                        path,
                        format!("broken MCAP file: a message on channel {} that no Channel record defines", header.channel_id),
                    ));
                }
                *counts.entry(header.channel_id).or_default() += 1;
                start = Some(start.map_or(header.log_time, |s| s.min(header.log_time)));
                end = Some(end.map_or(header.log_time, |e| e.max(header.log_time)));
            }
            _ => {}
        }
    }
    let mut topics: Vec<(u16, TopicInfo)> = channels
        .into_values()
        .map(|c| {
            let t = TopicInfo {
                schema: schemas.get(&c.schema_id).cloned().unwrap_or_default(),
                encoding: c.message_encoding,
                messages: counts.get(&c.id).copied().unwrap_or(0),
                topic: c.topic,
            };
            (c.id, t)
        })
        .collect();
    topics.sort_by(|a, b| (&a.1.topic, a.0).cmp(&(&b.1.topic, b.0)));
    Ok(McapInfo {
        topics: topics.into_iter().map(|(_, t)| t).collect(),
        start_ns: start,
        end_ns: end,
    })
}

/// Runs `hdpf dataset info`: a table, or the JSON with `--json`.
pub fn run_info(args: &InfoArgs) -> Result<McapInfo> {
    let info = mcap_info(&args.file)?;
    if args.json {
        crate::outln!(
            "{}",
            serde_json::to_string(&info).map_err(|e| Error::Other(e.to_string()))?
        );
        return Ok(info);
    }
    crate::outln!("{}", args.file.display());
    let w = info
        .topics
        .iter()
        .map(|t| t.topic.len())
        .max()
        .unwrap_or(5)
        .max(5);
    crate::outln!(
        "  {:<w$}  {:>8}  {:<8}  schema",
        "topic",
        "messages",
        "encoding"
    );
    for t in &info.topics {
        crate::outln!(
            "  {:<w$}  {:>8}  {:<8}  {}",
            t.topic,
            t.messages,
            t.encoding,
            t.schema
        );
    }
    match (info.start_ns, info.end_ns) {
        (Some(s), Some(e)) => {
            crate::outln!("  time: {s} .. {e} ns ({:.3} s)", (e - s) as f64 / 1e9)
        }
        _ => crate::outln!("  no messages"),
    }
    Ok(info)
}
