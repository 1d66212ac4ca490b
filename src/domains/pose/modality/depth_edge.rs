//! Depth-edge modality: the model's occluding contour against a distance transform of the depth
//! image's own occluding contours (depth jumps and borders of missing depth), computed once per
//! frame. It gives silhouette points a pull in the image plane, which point-to-plane depth
//! residuals lack (sliding a face along itself leaves them unchanged) — for large frame-to-frame
//! motion. The per-object term is the edge modality's
//! ([`super::edge::EdgeModality`], contour points).

use super::edge::{distance_transform, EdgeFrame, EdgeParams, EdgePoints};
use super::spec::{FrameTerm, ModalitySpec, Needs};
use super::visible::VisibilityParams;
use super::ImageF32;
use super::RgbdFrame;
use crate::core::error::Result;
use std::sync::Arc;

/// Parameters of the depth-edge modality: the edge modality's, with `threshold` the depth jump
/// in metres that makes a contour.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DepthEdgeParams(pub EdgeParams);

impl Default for DepthEdgeParams {
    fn default() -> Self {
        Self(EdgeParams {
            threshold: 0.03,
            visibility: VisibilityParams {
                cell_px: 2.0,
                max_points: 150,
                ..VisibilityParams::default()
            },
            ..EdgeParams::default()
        })
    }
}

impl ModalitySpec for DepthEdgeParams {
    fn name(&self) -> &'static str {
        "depth-edge"
    }

    fn needs(&self) -> Needs {
        Needs {
            depth: true,
            grey: false,
        }
    }

    /// The distance map of the depth image's occluding contours ([`depth_edge_distance_map`]).
    fn prepare_frame(&self, frame: &RgbdFrame) -> Result<Arc<dyn FrameTerm>> {
        let depth = frame.need_depth(self.name())?;
        let p = &self.0;
        let dist = Arc::new(depth_edge_distance_map(&depth, p.threshold, p.truncate));
        Ok(Arc::new(EdgeFrame::new(dist, *p, EdgePoints::Contour)))
    }

    fn boxed(&self) -> Box<dyn ModalitySpec> {
        Box::new(*self)
    }
}

/// The per-frame *depth-edge* distance map of a depth image (metres, 0 = missing): distance to the
/// nearest valid pixel that borders missing depth or a jump of more than `jump` metres to a
/// 4-neighbour — the occluding contours of the objects as a depth sensor sees them. Used with
/// [`super::edge::EdgeModality`] it gives silhouette points a pull in the image plane, which point-to-plane
/// depth residuals lack (sliding a face along itself leaves them unchanged).
pub fn depth_edge_distance_map(depth: &ImageF32, jump: f32, truncate: f32) -> ImageF32 {
    let (w, h) = (depth.width, depth.height);
    let d = &depth.data;
    let edge = |i: usize| {
        let z = d[i];
        if z <= 0.0 {
            return false;
        }
        let (x, y) = (i % w, i / w);
        let differs = |j: usize| d[j] <= 0.0 || (d[j] - z).abs() > jump;
        (x > 0 && differs(i - 1))
            || (x + 1 < w && differs(i + 1))
            || (y > 0 && differs(i - w))
            || (y + 1 < h && differs(i + w))
    };
    distance_transform(w, h, edge, truncate)
}
