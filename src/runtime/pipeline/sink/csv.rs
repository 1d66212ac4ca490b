//! `sinks.csv`: BOP19 results, one CSV file per tracker.

use super::Sink;
use crate::core::error::{Error, Result};
use crate::domains::pose::bop::{PoseResult, ResultsWriter};
use crate::runtime::pipeline::message::SinkMsg;
use crate::runtime::pipeline::plugin::{SinkContext, SinkPlugin, SpecError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Writes BOP19 results, one CSV file per tracker: `pattern` with `{tracker}` replaced.
pub struct CsvSink {
    pattern: String,
    writers: BTreeMap<String, ResultsWriter>,
}

impl CsvSink {
    /// A sink writing to `pattern` (e.g. `out/results_{tracker}.csv`); without `{tracker}` the
    /// file is `STEM_{tracker}.csv` beside the pattern's path.
    pub fn new(pattern: impl Into<String>) -> Self {
        Self {
            pattern: pattern.into(),
            writers: BTreeMap::new(),
        }
    }

    /// The file of `tracker`.
    pub fn path_for(&self, tracker: &str) -> PathBuf {
        if self.pattern.contains("{tracker}") {
            return self.pattern.replace("{tracker}", tracker).into();
        }
        let p = PathBuf::from(&self.pattern);
        let stem = p
            .file_stem()
            .map_or("results".into(), |s| s.to_string_lossy().to_string());
        p.with_file_name(format!("{stem}_{tracker}.csv"))
    }

    fn writer(&mut self, tracker: &str) -> Result<&mut ResultsWriter> {
        if !self.writers.contains_key(tracker) {
            let path = self.path_for(tracker);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            }
            self.writers
                .insert(tracker.to_string(), ResultsWriter::create(&path)?);
        }
        Ok(self.writers.get_mut(tracker).expect("inserted above"))
    }
}

impl Sink for CsvSink {
    fn name(&self) -> &str {
        "csv"
    }

    fn handle(&mut self, msg: &SinkMsg) -> Result<()> {
        let SinkMsg::Estimate(m) = msg else {
            return Ok(());
        };
        let w = self.writer(&m.tracker)?;
        for o in &m.objects {
            w.write(&PoseResult {
                scene_id: m.scene_id,
                im_id: m.im_id,
                obj_id: o.obj_id,
                score: 1.0,
                pose: o.pose,
                time: m.process_seconds,
            })?;
        }
        w.flush()
    }

    fn finish(&mut self) -> Result<()> {
        self.writers.values_mut().try_for_each(ResultsWriter::flush)
    }
}

/// `sinks.csv = "PATTERN"`: BOP19 results per tracker (`{tracker}` is replaced by its name).
#[derive(Clone, Debug, Deserialize)]
#[serde(transparent)]
pub struct CsvSinkSpec(pub toml::Spanned<String>);

impl SinkPlugin for CsvSinkSpec {
    fn check(&self) -> std::result::Result<(), SpecError> {
        match self.0.get_ref().is_empty() {
            true => Err(SpecError::at(&self.0, "empty file pattern")),
            false => Ok(()),
        }
    }

    fn open(&self, _ctx: &SinkContext) -> Result<Option<Box<dyn Sink>>> {
        Ok(Some(Box::new(CsvSink::new(self.0.get_ref().clone()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_paths_per_tracker() {
        assert_eq!(
            CsvSink::new("o/r_{tracker}.csv").path_for("sir"),
            PathBuf::from("o/r_sir.csv")
        );
        assert_eq!(
            CsvSink::new("o/r.csv").path_for("sir"),
            PathBuf::from("o/r_sir.csv")
        );
    }
}
