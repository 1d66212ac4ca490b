//! The registry of source and sink kinds: one line per kind. Each kind's table is parsed from the
//! launch text by the kind's own serde struct (unknown keys rejected), so errors keep their file,
//! line and key; the launch schema itself only reads `[source] kind` and the names under `[sinks]`.
//!
//! A new source: a file in `runtime/pipeline/source/` (the [`Source`] and its spec implementing
//! [`SourcePlugin`]) and one line in [`SOURCES`]. A new sink: its spec implementing
//! [`SinkPlugin`] and one line in [`SINKS`].
//!
//! [`Source`]: crate::runtime::pipeline::Source

use super::overrides::located;
use super::Launch;
use crate::app::viz::RerunSpec;
use crate::core::error::{Error, Result};
use crate::runtime::pipeline::plugin::{SinkPlugin, SourcePlugin, SpecError};
use crate::runtime::pipeline::sink::{CsvSinkSpec, JsonlSinkSpec, McapSinkSpec};
use crate::runtime::pipeline::source::{
    BopSourceSpec, DirSourceSpec, McapSourceSpec, SynthSourceSpec,
};
use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::Deserializer;
use std::marker::PhantomData;

/// Parses a plug-in's table at `path` of the launch text.
type Parse<P> = fn(&Launch, &[&str]) -> Result<Box<P>>;

/// Source kinds: `[source] kind = "…"`.
pub const SOURCES: &[(&str, Parse<dyn SourcePlugin>)] = &[
    ("bop", boxed_source::<BopSourceSpec>),
    ("dir", boxed_source::<DirSourceSpec>),
    ("synth", boxed_source::<SynthSourceSpec>),
    ("mcap", boxed_source::<McapSourceSpec>),
    #[cfg(feature = "zenoh")]
    (
        "zenoh",
        boxed_source::<crate::runtime::pipeline::source::ZenohSourceSpec>,
    ),
];

/// Sink kinds: the keys of `[sinks]` (besides `summary_json`, the run summary written at the end),
/// in the order they are opened: the network peers and viewers first, which can fail at start
/// (no viewer on PATH, a port taken), so that such a failure leaves an earlier run's files as
/// they were instead of truncated.
pub const SINKS: &[(&str, Parse<dyn SinkPlugin>)] = &[
    #[cfg(feature = "zenoh")]
    (
        "zenoh",
        boxed_sink::<crate::runtime::pipeline::sink::ZenohSinkSpec>,
    ),
    ("rerun", boxed_sink::<RerunSpec>),
    ("jsonl", boxed_sink::<JsonlSinkSpec>),
    ("csv", boxed_sink::<CsvSinkSpec>),
    ("mcap", boxed_sink::<McapSinkSpec>),
];

fn boxed_source<T: SourcePlugin + DeserializeOwned + 'static>(
    launch: &Launch,
    path: &[&str],
) -> Result<Box<dyn SourcePlugin>> {
    Ok(Box::new(parse::<T>(launch, path)?))
}

fn boxed_sink<T: SinkPlugin + DeserializeOwned + 'static>(
    launch: &Launch,
    path: &[&str],
) -> Result<Box<dyn SinkPlugin>> {
    Ok(Box::new(parse::<T>(launch, path)?))
}

/// The key of `[sinks]` that names the summary file rather than a streaming sink.
pub const SUMMARY_KEY: &str = "summary_json";

/// The `[source]` plug-in of `launch`, parsed and checked (`None` without a `[source]` table).
pub fn source(launch: &Launch) -> Result<Option<Box<dyn SourcePlugin>>> {
    let Some(head) = &launch.file.source else {
        return Ok(None);
    };
    let kind = head.kind.get_ref();
    let Some((_, parse)) = SOURCES.iter().find(|(k, _)| k == kind) else {
        let known: Vec<&str> = SOURCES.iter().map(|(k, _)| *k).collect();
        let why = format!(
            "unknown source kind `{kind}` (known: {}){}",
            known.join(", "),
            feature_hint(kind)
        );
        return Err(launch.error_at(&head.kind, why));
    };
    let plugin = parse(launch, &["source"])?;
    plugin
        .check()
        .map_err(|e| spec_error(launch, "source", e))?;
    Ok(Some(plugin))
}

/// That this binary lacks cargo feature `feature`, and how to build one that has it.
pub fn missing_feature(feature: &str) -> String {
    format!(
        "this binary was built without the `{feature}` feature (cargo build --release --features \
         {feature})"
    )
}

/// For a source or sink that a cargo feature brings (`zenoh`, `rerun`) and this binary lacks:
/// [`missing_feature`] after a `; `; empty otherwise.
fn feature_hint(kind: &str) -> String {
    match kind {
        "zenoh" | "rerun" => format!("; {}", missing_feature(kind)),
        _ => String::new(),
    }
}

/// The `[sinks]` plug-ins of `launch` in the order of the registry, parsed and checked.
pub fn sinks(launch: &Launch) -> Result<Vec<(&'static str, Box<dyn SinkPlugin>)>> {
    for (key, value) in &launch.file.sinks {
        if key != SUMMARY_KEY && !SINKS.iter().any(|(k, _)| k == key) {
            let mut known: Vec<&str> = SINKS.iter().map(|(k, _)| *k).collect();
            known.push(SUMMARY_KEY);
            let why = format!(
                "unknown sink `{key}` (known: {}){}",
                known.join(", "),
                feature_hint(key)
            );
            return Err(launch.error_at(value, why));
        }
    }
    let present = SINKS
        .iter()
        .filter(|(k, _)| launch.file.sinks.contains_key(*k));
    present
        .map(|(kind, parse)| {
            let plugin = parse(launch, &["sinks", kind])?;
            let at = format!("sinks.{kind}");
            plugin.check().map_err(|e| spec_error(launch, &at, e))?;
            Ok((*kind, plugin))
        })
        .collect()
}

/// `e` located in the launch text (at its span, or at the table `table`).
fn spec_error(launch: &Launch, table: &str, e: SpecError) -> Error {
    match e.span {
        Some(span) => located(
            &launch.path,
            &launch.text,
            Some(span.start),
            &launch.overrides,
            &e.message,
        ),
        None => Error::format(&launch.path, format!("[{table}]: {}", e.message)),
    }
}

/// Deserialises the value at `path` of the launch text as `T`, with toml's error spans.
fn parse<T: DeserializeOwned>(launch: &Launch, path: &[&str]) -> Result<T> {
    let de = toml::de::Deserializer::new(&launch.text);
    let picked = Pick::<T>::new(path).deserialize(de).map_err(|e| {
        let at = e.span().map(|s| s.start);
        located(
            &launch.path,
            &launch.text,
            at,
            &launch.overrides,
            e.message(),
        )
    })?;
    picked.ok_or_else(|| {
        let key = path.join(".");
        Error::format(&launch.path, format!("no `{key}` in the file"))
    })
}

/// A serde seed that walks down the tables of `path`, ignoring every other key, and
/// deserialises what it finds there as `T` (`None` when a key on the way is absent).
struct Pick<'a, T> {
    path: &'a [&'a str],
    _t: PhantomData<T>,
}

impl<'a, T> Pick<'a, T> {
    fn new(path: &'a [&'a str]) -> Self {
        Self {
            path,
            _t: PhantomData,
        }
    }
}

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for Pick<'_, T> {
    type Value = Option<T>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Option<T>, D::Error> {
        match self.path.is_empty() {
            true => T::deserialize(d).map(Some),
            false => d.deserialize_map(self),
        }
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for Pick<'_, T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "a table holding `{}`", self.path.join("."))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Option<T>, A::Error> {
        let (head, rest) = (self.path[0], &self.path[1..]);
        let mut found = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == head {
                found = map.next_value_seed(Pick::<T>::new(rest))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}
