//! Geometry with no knowledge of particles or datasets: the SE(3) Lie group ([`se3`]), the pinhole
//! camera ([`camera`]) and a 3-D k-d tree for nearest-neighbour queries ([`kdtree`]).

pub mod camera;
pub mod kdtree;
pub mod se3;

pub use camera::Camera;
pub use kdtree::KdTree;
