//! A tracked object's geometry, a component of the tracker.

use crate::core::error::{Error, Result};
use crate::domains::pose::mesh::Mesh;
use crate::domains::pose::modality::views::{Shape, ViewParams, Views};
use nalgebra::Vector3;

/// A tracked object's geometry: oriented surface samples and the rotation centre (model frame).
#[derive(Clone, Debug)]
pub struct ObjectModel {
    /// BOP object id.
    pub obj_id: u32,
    /// Surface samples with normals (metres), and their views when the tracker uses them
    /// ([`super::TrackerConfig::views`]).
    pub points: Shape,
    /// Bounding-box centre (rotation centre of the chart).
    pub centre: Vector3<f64>,
    /// Largest distance of a sample from the centre.
    pub radius: f64,
    /// Half the bounding box's extent along each model axis (about `centre`).
    pub half_extent: Vector3<f64>,
}

impl ObjectModel {
    /// Sample `n` oriented points of `mesh` (deterministic in `seed`).
    pub fn from_mesh(obj_id: u32, mesh: &Mesh, n: usize, seed: u64) -> Result<Self> {
        let points = mesh.sample_surface(n, seed);
        if points.is_empty() {
            return Err(Error::param("mesh", obj_id, "object model has no surface"));
        }
        let (lo, hi) = mesh.bounding_box();
        let centre = (lo.coords + hi.coords) / 2.0;
        let points = Shape::new(points);
        let radius = points.radius_about(&centre);
        let half_extent = (hi.coords - lo.coords) / 2.0;
        Ok(Self {
            obj_id,
            points,
            centre,
            radius,
            half_extent,
        })
    }

    /// With its sparse viewpoint model ([`crate::domains::pose::modality::views`], default
    /// [`ViewParams`]) about its centre for the selections `views` names, or without one
    /// ([`Views::Off`]): every selection at its pose.
    pub fn with_views(mut self, views: Views) -> Self {
        self.points = (self.points).with_views(ViewParams::default(), self.centre, views);
        self
    }
}
