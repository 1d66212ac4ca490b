//! 6D object pose estimation on RGB-D: meshes ([`mesh`]), the BOP dataset and results formats
//! ([`bop`]), pose-error metrics ([`metrics`]), a CPU rasterizer ([`render`]) and synthetic
//! BOP-format recordings ([`synth`]).

pub mod bop;
pub mod mesh;
pub mod metrics;
pub mod modality;
pub mod tracker;
pub mod render;
pub mod synth;

pub use mesh::{Mesh, SurfacePoint};
