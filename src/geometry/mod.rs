//! Geometry with no knowledge of particles or datasets: the SE(3) Lie group ([`se3`]) and the
//! pinhole camera ([`camera`]).

pub mod camera;
pub mod se3;

pub use camera::Camera;
