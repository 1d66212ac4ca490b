//! The methods `hdpf bench tracking` compares: the engine's presets by name, and RF-PF with
//! perturbed observations.

use crate::core::error::{Error, Result};
pub use crate::core::filter::presets::{check_params_used, parse_param, preset_with, PresetParam};
use crate::core::filter::FilterKind;
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
