//! The `hdpf bench …` studies: the RF-PF paper's synthetic localization experiment, linear-Gaussian
//! tracking against the Kalman filter, and per-step timing.

pub mod gaussian;
pub mod models;
