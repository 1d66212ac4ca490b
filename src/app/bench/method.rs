//! The methods `hdpf bench tracking` compares: the engine's presets by name, and RF-PF with
//! perturbed observations.

use crate::core::error::{Error, Result};
use crate::core::filter::{FilterKind, Preset};
use std::fmt;
use std::str::FromStr;

/// A tracking method: one of the engine's filters, or RF-PF with perturbed observations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// An engine preset.
    Filter(FilterKind),
    /// RF-PF where particle `i` is moved by the loss of its own perturbed observation `y + v_i`,
    /// `v_i ~ N(0, rI)` (an extension, not the paper).
    RfpfPo,
}

impl Method {
    /// Every method, in table order (the position also keys each method's random streams, so
    /// new methods are appended).
    pub const ALL: [Method; 9] = [
        Method::Filter(FilterKind::Rfpf),
        Method::RfpfPo,
        Method::Filter(FilterKind::Grad),
        Method::Filter(FilterKind::Sir),
        Method::Filter(FilterKind::Mcl),
        Method::Filter(FilterKind::RfpfNewton),
        Method::Filter(FilterKind::Svgd),
        Method::Filter(FilterKind::Enkf),
        Method::Filter(FilterKind::Etkf),
    ];

    /// The engine preset behind the method.
    pub fn kind(self) -> FilterKind {
        match self {
            Method::Filter(k) => k,
            Method::RfpfPo => FilterKind::Rfpf,
        }
    }

    /// Position in [`Method::ALL`].
    pub(crate) fn order(self) -> usize {
        Method::ALL
            .iter()
            .position(|&m| m == self)
            .unwrap_or(usize::MAX)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Method::Filter(k) => write!(f, "{k}"),
            Method::RfpfPo => f.write_str("rfpf-po"),
        }
    }
}

impl FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "rfpf-po" => Ok(Method::RfpfPo),
            _ => s.parse::<FilterKind>().map(Method::Filter).map_err(|_| {
                let names: Vec<String> = Method::ALL.iter().map(|m| m.to_string()).collect();
                Error::param("method", s, format!("expected one of {}", names.join(", ")))
            }),
        }
    }
}

/// One preset parameter set on the command line: `KIND.KEY=VALUE`, e.g. `rfpf-newton.shrinkage=0.5`
/// (`VALUE` is a TOML value: a number, `true`, `"text"`).
#[derive(Clone, Debug, PartialEq)]
pub struct PresetParam {
    /// The preset it applies to.
    pub kind: FilterKind,
    /// The preset's key.
    pub key: String,
    /// The value.
    pub value: toml::Value,
}

impl FromStr for PresetParam {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::param("param", s, why.to_string());
        let (lhs, value) = s
            .split_once('=')
            .ok_or_else(|| bad("expected KIND.KEY=VALUE, e.g. rfpf-newton.shrinkage=0.5"))?;
        let (kind, key) = lhs
            .trim()
            .split_once('.')
            .ok_or_else(|| bad("expected KIND.KEY before '='"))?;
        let kind: FilterKind = kind.parse()?;
        let doc: toml::Table = format!("v = {}", value.trim())
            .parse()
            .map_err(|_| bad("the value is not a TOML value (a number, true/false, \"text\")"))?;
        let value = doc
            .get("v")
            .cloned()
            .ok_or_else(|| bad("the value is not a TOML value"))?;
        Ok(Self {
            kind,
            key: key.trim().to_string(),
            value,
        })
    }
}

/// The preset `kind` with its defaults overridden by the `params` that name it (the last one of a
/// key wins); an unknown key or a value of the wrong type is an error naming the key.
pub fn preset_with(kind: FilterKind, params: &[PresetParam]) -> Result<Preset> {
    let preset = Preset::new(kind);
    let mine: Vec<&PresetParam> = params.iter().filter(|p| p.kind == kind).collect();
    if mine.is_empty() {
        return Ok(preset);
    }
    let mut table = toml::Table::try_from(preset)
        .map_err(|e| Error::Other(format!("preset {kind} as a table: {e}")))?;
    for p in &mine {
        table.insert(p.key.clone(), p.value.clone());
    }
    let keys: Vec<String> = mine.iter().map(|p| format!("{kind}.{}", p.key)).collect();
    table
        .try_into::<Preset>()
        .map_err(|e| Error::param("param", keys.join(", "), e.to_string()))
}

/// Parse a `--param` for clap.
pub fn parse_param(s: &str) -> std::result::Result<PresetParam, String> {
    s.parse().map_err(|e: Error| e.to_string())
}
