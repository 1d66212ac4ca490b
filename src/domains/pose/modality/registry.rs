//! The one list of modality names, for the CLI (`--modalities`) and launch files
//! (`modalities = [...]`). A new modality is its file plus one line here.

use super::depth::DepthParams;
use super::depth_edge::DepthEdgeParams;
use super::edge::EdgeParams;
use super::region::RegionParams;
use super::spec::ModalityConfig;
use crate::core::error::{Error, Result};

/// A registry entry: the names (the first is canonical) and the default configuration.
type Entry = (&'static [&'static str], fn() -> ModalityConfig);

/// Every modality.
const MODALITIES: &[Entry] = &[
    (&["depth"], || ModalityConfig::new(DepthParams::default())),
    (&["edge", "rgb"], || {
        ModalityConfig::new(EdgeParams::default())
    }),
    (&["depth-edge", "depthedge", "contour"], || {
        ModalityConfig::new(DepthEdgeParams::default())
    }),
    (&["region"], || ModalityConfig::new(RegionParams::default())),
];

/// Names that were retired: `(old, new)` (`region` named the RGB edge modality until the region
/// modality took the name).
const RETIRED: &[(&str, &str)] = &[];

/// The canonical names, in registry order.
pub fn names() -> Vec<&'static str> {
    MODALITIES.iter().map(|(n, _)| n[0]).collect()
}

/// The modality called `name`, with its default parameters.
pub fn modality(name: &str) -> Result<ModalityConfig> {
    if let Some((_, new)) = RETIRED.iter().find(|(old, _)| *old == name) {
        let why = format!("renamed: the RGB edge-distance modality is now called `{new}`");
        return Err(Error::param("modalities", name, why));
    }
    MODALITIES
        .iter()
        .find(|(n, _)| n.contains(&name))
        .map(|(_, make)| make())
        .ok_or_else(|| {
            Error::param(
                "modalities",
                name,
                format!("expected {}", names().join(", ")),
            )
        })
}

/// A comma-separated modality list, e.g. `depth,edge`.
pub fn parse_modalities(s: &str) -> Result<Vec<ModalityConfig>> {
    let v: Vec<ModalityConfig> = s
        .split(',')
        .map(|m| modality(m.trim()))
        .collect::<Result<_>>()?;
    if v.is_empty() {
        return Err(Error::param("modalities", s, "empty list"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        let m = parse_modalities("depth, edge,depth-edge,region").unwrap();
        let names: Vec<&str> = m.iter().map(|c| c.spec().name()).collect();
        assert_eq!(names, ["depth", "edge", "depth-edge", "region"]);
        let err = modality("sonar").unwrap_err().to_string();
        assert!(err.contains("depth, edge, depth-edge"), "{err}");
    }
}
