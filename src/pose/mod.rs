//! 6D object pose estimation on RGB-D: meshes ([`mesh`]), the BOP dataset and results formats
//! ([`bop`]) and pose-error metrics ([`metrics`]).

pub mod bop;
pub mod mesh;
pub mod metrics;

pub use mesh::{Mesh, SurfacePoint};
