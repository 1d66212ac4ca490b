//! The benchmark models: the RF-PF paper's localization model and the linear-Gaussian tracking
//! model ([`models`]), and Gaussian moments of a particle set ([`gaussian`]). The studies that run
//! them (`hdpf bench …`) are application code in `crate::app::bench`.

pub mod gaussian;
pub mod models;
