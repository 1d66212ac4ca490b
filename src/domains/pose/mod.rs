//! 6D object pose estimation on RGB-D: meshes ([`mesh`]), the BOP dataset and results formats
//! ([`bop`]), pose-error metrics ([`metrics`]) and the calibration of published covariances
//! ([`calibration`]), a CPU rasterizer ([`render`]) and synthetic
//! BOP-format recordings ([`synth`]),
//! the modalities and the tracker ([`tracker`]) with its driver ([`driver`]) and scoring ([`scoring`]).

pub mod bop;
pub mod calibration;
pub mod driver;
pub mod frame;
pub mod mesh;
pub mod metrics;
pub mod modality;
pub mod render;
pub mod scoring;
pub mod synth;
pub mod tracker;

pub use mesh::{Mesh, SurfacePoint};
